//! Connecting to the Kubernetes API server the way CoreDNS's `kubernetes`
//! plugin does.
//!
//! Control plane. Precedence (CoreDNS `getClientConfig`): `kubeconfig PATH
//! [CONTEXT]` (that file only), then `endpoint URL` (with `tls CERT KEY
//! CACERT`), then the pod's service account. signpost adds one fallback CoreDNS
//! does not have: outside a cluster (no `KUBERNETES_SERVICE_HOST`), a set
//! `$KUBECONFIG` is used, so a stock Corefile runs on a workstation too.
//! kube-rs re-reads the service-account token file about every minute, so a
//! rotated token is picked up. Paged lists fetch their next page while the
//! caller decodes the last ([`super::prefetch`]).

use super::prefetch::PrefetchLayer;
use kube::config::{KubeConfigOptions, Kubeconfig};
use signpost_zone::KubeConnection;
use std::path::Path;

/// Why no client could be built. The source reports it and retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// In-cluster configuration is missing or unreadable.
    #[error("in-cluster configuration: {0}")]
    InCluster(String),
    /// The `endpoint` URL or its TLS files are unusable.
    #[error("endpoint {url}: {message}")]
    Endpoint {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The client could not be built from a valid configuration.
    #[error("kubernetes client: {0}")]
    Client(String),
}

/// Builds a client for `connection`.
pub async fn connect(connection: &KubeConnection) -> Result<kube::Client, ConnectError> {
    let config = match connection {
        KubeConnection::Kubeconfig { path, context } => {
            from_kubeconfig(path, context.clone()).await?
        }
        KubeConnection::Endpoint { url, tls } => {
            let endpoint_error = |message: String| ConnectError::Endpoint {
                url: url.clone(),
                message,
            };
            let uri = url
                .parse::<http::Uri>()
                .map_err(|e| endpoint_error(e.to_string()))?;
            let mut config = kube::Config::new(uri);
            if let Some([cert, key, ca]) = tls {
                let ca = std::fs::read(ca)
                    .map_err(|e| endpoint_error(format!("{}: {e}", ca.display())))?;
                config.root_cert = Some(pem_to_der(&ca).map_err(endpoint_error)?);
                config.auth_info.client_certificate = Some(cert.display().to_string());
                config.auth_info.client_key = Some(key.display().to_string());
            }
            config
        }
        KubeConnection::InCluster => {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none()
                && let Some(path) = std::env::var_os("KUBECONFIG")
            {
                from_kubeconfig(Path::new(&path), None).await?
            } else {
                kube::Config::incluster().map_err(|e| ConnectError::InCluster(e.to_string()))?
            }
        }
    };
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ConnectError::Client(e.to_string()))?;
    Ok(builder.with_layer(&PrefetchLayer).build())
}

async fn from_kubeconfig(
    path: &Path,
    context: Option<String>,
) -> Result<kube::Config, ConnectError> {
    let error = |message: String| ConnectError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| error(e.to_string()))
}

/// The DER certificates of a PEM bundle.
fn pem_to_der(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the CA file is not PEM text".to_owned())?;
    let mut certificates = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let encoded = body.take().unwrap_or_default();
            certificates.push(decode_base64(&encoded).ok_or("the CA file has bad base64")?);
        } else if let Some(body) = body.as_mut() {
            body.push_str(line);
        }
    }
    if certificates.is_empty() {
        return Err("the CA file holds no certificate".to_owned());
    }
    Ok(certificates)
}

/// Standard base64 (RFC 4648 §4), padding optional.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        buffer = (buffer << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10 test vectors.
    #[test]
    fn base64_vectors() {
        for (encoded, decoded) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(decode_base64(encoded).unwrap(), decoded.as_bytes());
        }
        assert_eq!(decode_base64("Zm9v!"), None);
    }
}
