//! Probes: one check of one endpoint over HTTP, HTTPS or TCP.
//!
//! Control plane, on the async runtime. A check has one deadline covering
//! connect, handshake, request and the status line, so a server that accepts
//! and never answers fails by timeout. HTTP and HTTPS pass on a 2xx or 3xx
//! status, as Kubernetes' HTTP probes do; HTTPS does not verify the
//! certificate (pods are checked by IP, which certificates rarely name; the
//! kubelet's probes do the same).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How an endpoint is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// `GET path` over HTTP/1.1; 2xx and 3xx pass.
    Http,
    /// The same over TLS.
    Https,
    /// A TCP connect.
    Tcp,
}

impl CheckKind {
    /// `http`, `https` or `tcp`, as the annotation writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Tcp => "tcp",
        }
    }
}

/// Why a check failed. Counted by kind in metrics-friendly form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting, the handshake or the exchange failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server answered with a status that does not pass.
    #[error("status {0}")]
    Status(u16),
    /// The answer was not HTTP.
    #[error("malformed HTTP response")]
    Malformed,
}

/// Checks one endpoint.
#[derive(Clone)]
pub struct Prober {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober").finish_non_exhaustive()
    }
}

impl Default for Prober {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Prober ===

impl Prober {
    /// A prober with a TLS client that accepts any server certificate.
    pub fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|builder| {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                    .with_no_client_auth()
            })
            .unwrap_or_else(|_| unreachable_config());
        Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// Runs one check with a deadline.
    pub async fn check(
        &self,
        kind: &CheckKind,
        address: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<(), ProbeError> {
        match tokio::time::timeout(timeout, self.check_inner(kind, address, path)).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::Timeout(timeout)),
        }
    }

    async fn check_inner(
        &self,
        kind: &CheckKind,
        address: SocketAddr,
        path: &str,
    ) -> Result<(), ProbeError> {
        let stream = TcpStream::connect(address).await?;
        match kind {
            CheckKind::Tcp => Ok(()),
            CheckKind::Http => http_get(stream, address, path).await,
            CheckKind::Https => {
                let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
                let stream = self.tls.connect(name, stream).await?;
                http_get(stream, address, path).await
            }
        }
    }
}

/// Never reached: the ring provider supports the default protocol versions.
fn unreachable_config() -> rustls::ClientConfig {
    panic!("the ring crypto provider supports TLS 1.2 and 1.3")
}

async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    address: SocketAddr,
    path: &str,
) -> Result<(), ProbeError> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: signpost-health/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let mut len = 0;
    // The status line is all we need: "HTTP/1.1 200 ...".
    while len < 12 {
        let read = stream.read(&mut head[len..]).await?;
        if read == 0 {
            break;
        }
        len += read;
    }
    let status = parse_status(&head[..len]).ok_or(ProbeError::Malformed)?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(ProbeError::Status(status))
    }
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Accepts any certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0"), None);
    }
}
