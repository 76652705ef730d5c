//! Connecting to etcd: endpoints, credentials and TLS as the `etcd` plugin
//! (and the verdict backend and elector) give them.
//!
//! Control plane. `etcd-client` connects lazily: [`connect`] only checks the
//! configuration (and logs in when credentials are given), so an unreachable
//! cluster shows up as failing requests, which every caller retries with
//! [`Backoff`]. Passwords never reach a log line or an error message.

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use signpost_zone::EtcdSpec;
use std::time::Duration;

/// Why talking to etcd failed. Every variant is retried with backoff by its caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// A TLS file could not be read.
    #[error("cannot read TLS file {path}")]
    TlsFile {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The client could not be built, or a request failed.
    #[error("etcd request failed")]
    Request(#[source] etcd_client::Error),
    /// A watch ended or was cancelled by the server.
    #[error("etcd watch ended: {0}")]
    WatchEnded(String),
    /// The watch's start revision was compacted away; the state is re-read.
    #[error("etcd watch compacted at revision {compacted}; re-reading")]
    Compacted {
        /// The oldest revision still available.
        compacted: i64,
    },
}

impl From<etcd_client::Error> for EtcdError {
    fn from(error: etcd_client::Error) -> Self {
        Self::Request(error)
    }
}

/// How long one request may take (CoreDNS's etcd plugin: 5 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for `spec`'s cluster. With TLS, `http://` endpoints are dialled
/// as `https://` (the Go client CoreDNS uses does the same with a TLS config).
pub async fn connect(spec: &EtcdSpec) -> Result<Client, EtcdError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(Duration::from_secs(5), REQUEST_TIMEOUT)
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    if let Some((user, password)) = &spec.credentials
        && !user.is_empty()
        && !password.0.is_empty()
    {
        options = options.with_user(user.clone(), password.0.clone());
    }
    let mut endpoints = spec.endpoints.clone();
    if let Some(tls) = &spec.tls {
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).map_err(|source| EtcdError::TlsFile {
                path: path.display().to_string(),
                source,
            })
        };
        let mut config = TlsOptions::new();
        config = match &tls.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => config.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(config);
        for endpoint in &mut endpoints {
            if let Some(rest) = endpoint.strip_prefix("http://") {
                *endpoint = format!("https://{rest}");
            }
        }
    }
    Ok(Client::connect(endpoints, Some(options)).await?)
}

/// Exponential backoff between retries: 100 ms doubling to 5 s, reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    /// Starts at the first step.
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The delay before the next retry; doubles each call.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    /// Back to the first step after a success.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}
