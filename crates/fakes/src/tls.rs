//! TLS material and the kubeconfig: a CA kept in the chosen directory, a fresh server certificate for
//! `127.0.0.1`, `::1` and `localhost` on every start, and a kubeconfig that trusts the CA.
//!
//! The CA key is stored beside `ca.crt` (`ca.key`, test material only) so that a restarted server, in
//! process or a new process on the same `--dir`, is trusted by clients that read the kubeconfig earlier.
//! The server offers ALPN `h2` and `http/1.1`, as the real API server does (kubectl speaks HTTP/2, the
//! Python client HTTP/1.1).
//!
//! Control plane of the fake; runs once per start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::StartError;

/// The CA and the server's TLS configuration.
pub(crate) struct Pki {
    /// `ca.crt` in PEM.
    pub(crate) ca_pem: String,
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "signpost-fake-apiserver-ca");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

fn tls_error(error: impl std::fmt::Display) -> StartError {
    StartError::Tls(error.to_string())
}

/// Loads the CA of `dir` (creating it when missing) and issues a server certificate.
pub(crate) fn prepare(dir: &Path) -> Result<Pki, StartError> {
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let (ca_pem, ca_key) = if ca_cert_path.exists() && ca_key_path.exists() {
        let pem = std::fs::read_to_string(&ca_cert_path).map_err(io(&ca_cert_path))?;
        let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
        (pem, KeyPair::from_pem(&key_pem).map_err(tls_error)?)
    } else {
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = ca_params().self_signed(&key).map_err(tls_error)?;
        let pem = cert.pem();
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&ca_cert_path, &pem).map_err(io(&ca_cert_path))?;
        (pem, key)
    };
    // The issuer is rebuilt from the same parameters and key: its name and key identifier match ca.crt.
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(tls_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "signpost-fake-apiserver");
    let server_key = KeyPair::generate().map_err(tls_error)?;
    let server_cert = params.signed_by(&server_key, &issuer).map_err(tls_error)?;
    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Pki {
        ca_pem,
        server_config: Arc::new(config),
    })
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), StartError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(contents).map_err(io(path))
}

/// Writes `kubeconfig` in `dir`: one cluster, one user (with `token` when given), one context with
/// namespace `default`. Returns its path.
pub(crate) fn write_kubeconfig(
    dir: &Path,
    server_url: &str,
    ca_pem: Option<&str>,
    token: Option<&str>,
) -> Result<PathBuf, StartError> {
    let path = dir.join("kubeconfig");
    let mut cluster = format!("    server: {server_url}\n");
    if let Some(pem) = ca_pem {
        let data = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
        cluster.push_str(&format!("    certificate-authority-data: {data}\n"));
    }
    let user = match token {
        Some(token) => format!("    token: {token}\n"),
        None => "    {}\n".to_owned(),
    };
    let user = if token.is_some() {
        format!("  user:\n{user}")
    } else {
        "  user: {}\n".to_owned()
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: signpost-fake\n  cluster:\n{cluster}\
         contexts:\n- name: signpost-fake\n  context:\n    cluster: signpost-fake\n    user: signpost-fake\n    \
         namespace: default\ncurrent-context: signpost-fake\nusers:\n- name: signpost-fake\n{user}"
    );
    let temporary = dir.join("kubeconfig.tmp");
    write_private(&temporary, text.as_bytes())?;
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    Ok(path)
}
