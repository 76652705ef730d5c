//! The HTTP/1.1 client the HTTP providers (`pdns`, `aws`) share: a parsed
//! base URL, TLS, one request with a deadline, and redaction of echoed
//! bodies.
//!
//! Control plane. A fresh connection per request (a sync makes a handful,
//! and a stale pooled connection would be one more failure mode); plain
//! HTTP for `http://`, rustls for `https://` with a CA file, a client
//! certificate or the system roots. Providers own their retry policy: this
//! module sends once and classifies nothing but transport failures.
//!
//! Invariant: no credential passes through this module's errors. Request
//! headers (API keys, signatures, bearer tokens) are never formatted, and
//! `redact` removes known secrets from response bodies a provider quotes.

use super::ProviderError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error body a message quotes.
const QUOTED: usize = 300;

/// TLS files and switches (`--tls-ca`, `--tls-client-cert`,
/// `--tls-client-cert-key`, a provider's skip-verify flag).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Accept any server certificate (signatures still checked).
    pub skip_verify: bool,
    /// CA bundle (PEM); empty: the system roots.
    pub ca: String,
    /// Client certificate (PEM); empty: none.
    pub client_cert: String,
    /// Client key (PEM).
    pub client_key: String,
}

/// An answer: status, body and `Retry-After` (seconds form, RFC 9110 §10.2.3).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) retry_after: Option<Duration>,
}

/// A client for one base URL.
pub(crate) struct HttpClient {
    provider: &'static str,
    https: bool,
    host: String,
    port: u16,
    prefix: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base())
            .finish_non_exhaustive()
    }
}

// === impl HttpClient ===

impl HttpClient {
    /// A client for `url` (`http://` or `https://`, a path prefix kept);
    /// `flag` names the setting in error messages.
    pub(crate) fn new(
        provider: &'static str,
        flag: &str,
        url: &str,
        tls: &TlsFiles,
    ) -> Result<Self, String> {
        let bad = || format!("{flag} {url:?} is not an http:// or https:// URL");
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, prefix) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, rest) = bracketed.split_once(']').ok_or_else(bad)?;
            let port = rest
                .strip_prefix(':')
                .map(str::parse::<u16>)
                .transpose()
                .map_err(|_| bad())?;
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (
                    host.to_owned(),
                    Some(port.parse::<u16>().map_err(|_| bad())?),
                ),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let tls = if https {
            Some(tls_connector(tls)?)
        } else {
            None
        };
        Ok(Self {
            provider,
            https,
            host,
            port: port.unwrap_or(if https { 443 } else { 80 }),
            prefix: prefix.to_owned(),
            tls,
        })
    }

    /// `scheme://host:port/prefix`, for messages and signing.
    pub(crate) fn base(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.prefix)
    }

    /// The `Host` header: `host` on the scheme's default port, else `host:port`.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// A request builder for `path` (below the prefix) with `Host` set.
    pub(crate) fn builder(
        &self,
        method: &hyper::Method,
        path: &str,
    ) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, self.authority())
    }

    fn unreachable(&self, detail: String) -> ProviderError {
        ProviderError::Unreachable {
            provider: self.provider,
            endpoint: self.base(),
            detail,
        }
    }

    /// Sends one request over a fresh connection, within the deadline.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response, ProviderError> {
        let exchange = async {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| self.unreachable(e.to_string()))?;
            let response = match &self.tls {
                None => send(TokioIo::new(stream), request).await,
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                        .map_err(|e| self.unreachable(format!("server name: {e}")))?;
                    let tls = connector
                        .connect(name, stream)
                        .await
                        .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
                    send(TokioIo::new(tls), request).await
                }
            };
            response.map_err(|e| self.unreachable(e))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| self.unreachable("request timed out".to_owned()))?
    }
}

/// The first few hundred bytes of a body, as text, with every secret in
/// `secrets` replaced by `******`.
pub(crate) fn quote(body: &[u8], secrets: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    text = redact(&text, secrets);
    if text.len() > QUOTED {
        let mut end = QUOTED;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text.trim().to_owned()
}

/// Percent-encodes a query or form value (RFC 3986 §2.3: unreserved kept).
pub(crate) fn percent_encode(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `text` with every non-empty secret replaced by `******`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "******");
    }
    text
}

async fn send<T>(io: TokioIo<T>, request: Request<Full<Bytes>>) -> Result<Response, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status,
        body,
        retry_after,
    })
}

fn tls_connector(files: &TlsFiles) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if files.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if files.ca.is_empty() {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        } else {
            for cert in read_pem_certs(&files.ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("--tls-ca {}: {e}", files.ca))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let client = if files.client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = read_pem_certs(&files.client_cert)?;
        let key_file = std::fs::read(&files.client_key)
            .map_err(|e| format!("--tls-client-cert-key {}: {e}", files.client_key))?;
        let key = rustls_pemfile::private_key(&mut key_file.as_slice())
            .ok()
            .flatten()
            .ok_or_else(|| format!("--tls-client-cert-key {}: no private key", files.client_key))?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("--tls-client-cert: {e}"))?
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(client)))
}

fn read_pem_certs(path: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))
}

/// Skip-verify: accepts any certificate (signatures still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
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
    fn urls() {
        let tls = TlsFiles::default();
        let client = HttpClient::new("t", "--x", "http://pdns.example:8443/pdns/", &tls).unwrap();
        assert_eq!(client.base(), "http://pdns.example:8443/pdns");
        let client = HttpClient::new("t", "--x", "http://[::1]:8081", &tls).unwrap();
        assert_eq!((client.host.as_str(), client.port), ("::1", 8081));
        assert_eq!(client.authority(), "[::1]:8081");
        let client = HttpClient::new("t", "--x", "http://route53.example", &tls).unwrap();
        assert_eq!(client.authority(), "route53.example");
        assert!(HttpClient::new("t", "--x", "ftp://x", &tls).is_err());
        assert!(HttpClient::new("t", "--x", "http://user:pw@x", &tls).is_err());
    }

    #[test]
    fn quoting_redacts_and_shortens() {
        let body = format!("bad token sekret-123 {}", "x".repeat(1000));
        let quoted = quote(body.as_bytes(), &["sekret-123"]);
        assert!(quoted.starts_with("bad token ****** x"), "{quoted}");
        assert!(quoted.len() <= QUOTED + 3);
    }
}
