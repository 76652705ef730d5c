//! What one admin address serves and the limits it enforces: [`Surface`]
//! (which paths), [`Limits`] (sizes, counts, timeouts), [`Token`] (the bearer
//! token, compared in constant time, never printed) and [`AdminMetrics`].
//!
//! Admin plane. Plain data built at start-up; the counters are relaxed
//! atomics shared by every admin address of the process.

use signpost_model::metrics::{Exposition, Kind};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Everything one admin address needs besides its socket and the role.
#[derive(Debug, Clone)]
pub struct Site {
    /// Which paths answer.
    pub surface: Surface,
    /// The token the admin paths require, if any.
    pub token: Option<Token>,
    /// Bounds on connections and requests.
    pub limits: Limits,
    /// Counters shown on `/metrics`.
    pub metrics: std::sync::Arc<AdminMetrics>,
}

/// Which paths an address serves; every other path is 404.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Surface {
    /// `/health` (the `health` directive).
    pub health: bool,
    /// `/ready` (the `ready` directive).
    pub ready: bool,
    /// `/metrics` (the `prometheus` directive).
    pub metrics: bool,
    /// `/healthz`: external-dns's liveness path, served by `signpost sync`
    /// (whose Deployment manifests probe it) next to `/health`.
    pub healthz: bool,
    /// The JSON APIs under `/api/v1/`, the status page `/` and its assets
    /// (the `admin` directive).
    pub admin: bool,
}

/// Bounds that keep a slow or hostile client from holding resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Time to send a request's headers (also the idle time allowed between
    /// requests on a kept-alive connection); slower clients are disconnected.
    pub header_read_timeout: Duration,
    /// Request headers per request; more is answered 431.
    pub max_headers: usize,
    /// Bytes of a request head (request line and headers); more is answered 431.
    pub max_request_bytes: usize,
    /// How long one connection may live, however busy; it is then closed
    /// after the request in hand.
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(5),
            max_headers: 32,
            max_request_bytes: 16 * 1024,
            connection_lifetime: Duration::from_secs(60),
        }
    }
}

/// A bearer token. Compared in constant time; `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

/// Why a token could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read (not retried: fix the file and restart).
    #[error("cannot read the admin token file {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no token.
    #[error("the admin token file {path} is empty")]
    Empty {
        /// The file.
        path: String,
    },
    /// The token holds characters a header cannot carry.
    #[error("the admin token in {path} holds white space or control characters")]
    Invalid {
        /// The file.
        path: String,
    },
}

// === impl Token ===

impl Token {
    /// Reads a token from `path`; white space around it is ignored.
    pub fn from_file(path: &std::path::Path) -> Result<Self, TokenError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| TokenError::Read {
            path: shown.clone(),
            source,
        })?;
        let token = text.trim_ascii();
        if token.is_empty() {
            return Err(TokenError::Empty { path: shown });
        }
        if token.iter().any(|b| !b.is_ascii_graphic()) {
            return Err(TokenError::Invalid { path: shown });
        }
        Ok(Self(token.to_vec()))
    }

    /// A token from bytes (tests, other roles).
    pub fn new(token: impl Into<Vec<u8>>) -> Self {
        Self(token.into())
    }

    /// True when `offered` is this token. The time taken depends only on the
    /// lengths, not on where the bytes differ.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let mut difference = u8::from(offered.len() != self.0.len());
        for (index, expected) in self.0.iter().enumerate() {
            let got = offered.get(index).copied().unwrap_or(0);
            difference |= expected ^ got;
        }
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Counters of the admin addresses, rendered on `/metrics`.
#[derive(Debug, Default)]
pub struct AdminMetrics {
    pub(crate) open: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
}

// === impl AdminMetrics ===

impl AdminMetrics {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// Appends the admin families to a Prometheus exposition.
    pub fn render(&self, out: &mut String) {
        let out = &mut Exposition::new(out);
        out.family(
            "signpost_admin_connections_open",
            Kind::Gauge,
            "HTTP connections open on the health, ready, metrics and admin addresses.",
        );
        out.sample(
            "signpost_admin_connections_open",
            &[],
            self.open.load(Relaxed),
        );
        out.family(
            "signpost_admin_connections_accepted_total",
            Kind::Counter,
            "HTTP connections accepted on the health, ready, metrics and admin addresses.",
        );
        out.sample(
            "signpost_admin_connections_accepted_total",
            &[],
            self.accepted.load(Relaxed),
        );
        out.family(
            "signpost_admin_connections_rejected_total",
            Kind::Counter,
            "HTTP connections closed at once because the connection limit was reached.",
        );
        out.sample(
            "signpost_admin_connections_rejected_total",
            &[],
            self.rejected.load(Relaxed),
        );
        out.family(
            "signpost_admin_requests_unauthorized_total",
            Kind::Counter,
            "Admin requests refused with 401 for a missing or wrong bearer token.",
        );
        out.sample(
            "signpost_admin_requests_unauthorized_total",
            &[],
            self.unauthorized.load(Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token matches only itself: not a prefix, not a longer string, not
    /// the empty string.
    #[test]
    fn token_matches_only_itself() {
        let token = Token::new("s3cret-token");
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-toke"));
        assert!(!token.matches(b"s3cret-token!"));
        assert!(!token.matches(b"S3cret-token"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }

    /// The file's token is trimmed; an empty file or one with inner white
    /// space is refused, and the error names the file, never the contents.
    #[test]
    fn token_file_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc123\n").expect("write");
        assert!(Token::from_file(&path).expect("token").matches(b"abc123"));
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(
            Token::from_file(&path),
            Err(TokenError::Empty { .. })
        ));
        std::fs::write(&path, "abc 123").expect("write");
        let error = Token::from_file(&path).expect_err("inner space");
        assert!(!error.to_string().contains("abc"), "{error}");
        let missing = Token::from_file(&dir.path().join("missing")).expect_err("missing");
        assert!(missing.to_string().contains("missing"), "{missing}");
    }
}
