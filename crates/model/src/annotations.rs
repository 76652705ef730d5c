//! Annotation and label names that steer signpost, in one place.
//!
//! Operators write these on Services; every source reads them through the
//! same names, and every role documents the same spelling.

/// `dns.aikernel.io/health-check-enabled: "true"` turns active checks on.
pub const HEALTH_CHECK_ENABLED: &str = "dns.aikernel.io/health-check-enabled";
/// The HTTP path to check (default `/health`).
pub const HEALTH_CHECK_PATH: &str = "dns.aikernel.io/health-check-path";
/// The port to check on each endpoint (default: the service's first port).
pub const HEALTH_CHECK_PORT: &str = "dns.aikernel.io/health-check-port";
/// `http` (default), `https` or `tcp`.
pub const HEALTH_CHECK_PROTOCOL: &str = "dns.aikernel.io/health-check-protocol";
/// `dns.aikernel.io/geo-region`: the region a Service serves.
pub const GEO_REGION: &str = "dns.aikernel.io/geo-region";
/// `dns.aikernel.io/geo-priority`: lower wins (default 100).
pub const GEO_PRIORITY: &str = "dns.aikernel.io/geo-priority";
/// `dns.aikernel.io/geo-hostname`: the geographic name, when not derived.
pub const GEO_HOSTNAME: &str = "dns.aikernel.io/geo-hostname";
/// external-dns's hostname annotation (comma-separated).
pub const EXTERNAL_DNS_HOSTNAME: &str = "external-dns.alpha.kubernetes.io/hostname";
/// external-dns's TTL annotation (seconds).
pub const EXTERNAL_DNS_TTL: &str = "external-dns.alpha.kubernetes.io/ttl";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
