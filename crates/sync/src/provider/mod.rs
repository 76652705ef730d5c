//! DNS providers: where records are read from and written to.
//!
//! Control plane. A [`Provider`] lists every record of its zones and applies
//! a [`Changes`] set; the registry and the planner above it never know which
//! provider they talk to. Each provider is one module behind one cargo
//! feature (all on by default):
//!
//! | module | feature | talks to |
//! |---|---|---|
//! | `inmemory` | `inmemory` | a map in this process |
//! | `rfc2136` | `rfc2136` | any RFC 2136 server: UPDATE with TSIG, AXFR to list |
//! | `pdns` | `pdns` | the PowerDNS Authoritative HTTP API |
//! | `aws` | `aws` | Amazon Route 53's REST API, SigV4 signed |
//! | `azure` | `azure` | Azure DNS through Azure Resource Manager |
//! | `google` | `google` | Google Cloud DNS API v1, service-account key |
//! | `cloudflare` | `cloudflare` | Cloudflare's DNS API (v4), batch endpoint |
//! | `coredns` | `coredns` | etcd, in the SkyDNS layout CoreDNS's `etcd` plugin serves |
//!
//! Invariants every provider keeps:
//! - `records` returns names and name-like targets without trailing dots, TTLs
//!   as stored, TXT targets as `"quoted text"`, and no labels;
//! - `apply_changes` writes a record and the ownership TXT next to it in one
//!   atomic step (one UPDATE message, one PATCH, one etcd transaction), so a
//!   failure never leaves a TXT claiming a record that was not written;
//! - errors say whether retrying can help ([`ProviderError::is_retryable`]) and
//!   never contain a secret (TSIG secret, API key).
//!
//! This file holds only what the providers share; it names none of them.
//! `http` is the HTTP/1.1 client the HTTP providers share.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "cloudflare")]
pub mod cloudflare;
#[cfg(feature = "coredns")]
pub mod coredns;
#[cfg(feature = "google")]
pub mod google;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "inmemory")]
pub mod inmemory;
#[cfg(feature = "pdns")]
pub mod pdns;
#[cfg(feature = "rfc2136")]
pub mod rfc2136;

use crate::endpoint::Endpoint;
use crate::filter::DomainFilter;
use crate::plan::Changes;
use signpost_model::BoxFuture;

/// A DNS provider.
pub trait Provider: Send + Sync + 'static {
    /// The provider's `--provider` name.
    fn name(&self) -> &'static str;

    /// Every record of the provider's zones.
    fn records(&self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>>;

    /// Applies creates, then updates, then deletes.
    fn apply_changes<'a>(
        &'a self,
        changes: &'a Changes,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Canonicalises desired endpoints to look like what `records` returns.
    fn adjust_endpoints(&self, desired: Vec<Endpoint>) -> Vec<Endpoint> {
        desired
    }

    /// The provider's own filter (its zones), ANDed with the user's; `None`
    /// lets every name through.
    fn zone_filter(&self) -> Option<DomainFilter> {
        None
    }
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The server could not be reached or the connection broke. Retryable.
    #[error("{provider}: cannot reach {endpoint}: {detail}")]
    Unreachable {
        /// The provider's name.
        provider: &'static str,
        /// Address or URL (without credentials).
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// The server answered with a transient failure (SERVFAIL, HTTP 5xx,
    /// etcd unavailable). Retryable.
    #[error("{provider}: {endpoint} failed: {detail}")]
    Server {
        /// The provider's name.
        provider: &'static str,
        /// Address or URL (without credentials).
        endpoint: String,
        /// What the server said.
        detail: String,
    },
    /// The server refused our credentials (TSIG BADKEY/BADSIG, NOTAUTH,
    /// HTTP 401/403). Retried, but needs an operator.
    #[error("{provider}: {endpoint} refused our credentials: {detail}")]
    Unauthorized {
        /// The provider's name.
        provider: &'static str,
        /// Address or URL (without credentials).
        endpoint: String,
        /// What the server said (never the secret).
        detail: String,
    },
    /// The server rejected the change itself (REFUSED, NOTZONE, HTTP 4xx,
    /// a record that already exists). Not retryable as is.
    #[error("{provider}: {endpoint} rejected the change: {detail}")]
    Rejected {
        /// The provider's name.
        provider: &'static str,
        /// Address, URL or zone.
        endpoint: String,
        /// What the server said.
        detail: String,
    },
    /// Some batches were written and others failed; the failures are listed.
    /// Retryable: the next run plans from what was written.
    #[error("{provider}: {failed} of {total} batches failed: {first}")]
    Partial {
        /// The provider's name.
        provider: &'static str,
        /// Batches that failed.
        failed: usize,
        /// Batches sent.
        total: usize,
        /// The first failure.
        first: Box<Self>,
    },
}

// === impl ProviderError ===

impl ProviderError {
    /// Whether trying again later can succeed without an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Server { .. } => true,
            Self::Unauthorized { .. } | Self::Rejected { .. } => false,
            Self::Partial { first, .. } => first.is_retryable(),
        }
    }

    /// A short, closed-set name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Server { .. } => "server",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Rejected { .. } => "rejected",
            Self::Partial { .. } => "partial",
        }
    }
}

/// Endpoints grouped so a record and its ownership TXT (the TXT carries the
/// `ownedRecord` label naming it) travel together, in the order given.
pub fn grouped(endpoints: &[Endpoint]) -> Vec<Vec<&Endpoint>> {
    use crate::endpoint::{OWNED_RECORD_LABEL, RecordType};
    let mut groups: Vec<Vec<&Endpoint>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for endpoint in endpoints {
        let owned = endpoint
            .labels
            .get(OWNED_RECORD_LABEL)
            .filter(|_| endpoint.record_type == RecordType::Txt);
        let key = match owned {
            Some(record) => format!(
                "{}\0{}",
                record.to_ascii_lowercase(),
                endpoint.set_identifier
            ),
            None => format!(
                "{}\0{}",
                endpoint.dns_name.to_ascii_lowercase(),
                endpoint.set_identifier
            ),
        };
        match index.get(&key) {
            Some(&at) => groups[at].push(endpoint),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![endpoint]);
            }
        }
    }
    groups
}
