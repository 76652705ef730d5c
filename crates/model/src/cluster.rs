//! The cluster model every source produces and every role reads.
//!
//! Control plane. A source (catalog files, the Kubernetes API, etcd) turns its
//! objects into [`ClusterService`]s: a Service with the endpoints of all of
//! its EndpointSlices and what its annotations ask for (health checks, a
//! region). The cluster zone, the health checker and record sync read only
//! this, so none of them knows where the objects came from.

use std::net::IpAddr;
use std::sync::Arc;

/// A Service with its endpoints, as the cluster zone sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterService {
    /// The namespace.
    pub namespace: String,
    /// The service name.
    pub name: String,
    /// How the service is addressed.
    pub kind: ServiceKind,
    /// The service's ports (from its spec).
    pub ports: Vec<ServicePort>,
    /// Endpoints from all of the service's EndpointSlices.
    pub endpoints: Vec<ClusterEndpoint>,
    /// `spec.publishNotReadyAddresses`: serve endpoints that are not ready.
    pub publish_not_ready: bool,
    /// Active health checking of the endpoints
    /// (`dns.aikernel.io/health-check-enabled: "true"`).
    pub health_check: Option<HealthCheckSpec>,
    /// Membership of a geographic name (`dns.aikernel.io/geo-region`).
    pub geo: Option<GeoSpec>,
    /// Addresses clients outside the cluster use: `status.loadBalancer.ingress`
    /// IPs, else `spec.externalIPs`.
    pub external_addresses: Vec<IpAddr>,
}

/// A Service's place in a geographic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoSpec {
    /// Region name (`dns.aikernel.io/geo-region`).
    pub region: String,
    /// Lower wins under `policy priority` (`dns.aikernel.io/geo-priority`, default 100).
    pub priority: u32,
    /// The geographic name (`dns.aikernel.io/geo-hostname`, else derived from the
    /// regional hostname by dropping `-<region>` from its first label).
    pub name: Option<String>,
    /// The regional hostname (`external-dns.alpha.kubernetes.io/hostname`, first entry).
    pub regional_name: Option<String>,
}

// === impl GeoSpec ===

impl GeoSpec {
    /// The geographic name: explicit, or `api-us-east-1.example.com` →
    /// `api.example.com` when the first label ends in `-<region>`.
    pub fn geo_name(&self) -> Option<String> {
        if let Some(name) = &self.name {
            return Some(name.clone());
        }
        let regional = self.regional_name.as_deref()?;
        let (first, rest) = regional.split_once('.')?;
        let base = first.strip_suffix(&format!("-{}", self.region))?;
        (!base.is_empty()).then(|| format!("{base}.{rest}"))
    }
}

/// How a service's endpoints are checked (from its annotations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// `http`, `https` or `tcp` (`dns.aikernel.io/health-check-protocol`, default `http`).
    pub protocol: CheckProtocol,
    /// HTTP path (`dns.aikernel.io/health-check-path`); `None` without the
    /// annotation: the checker's default path (`/health`, or the health
    /// controller's `endpoints.healthCheckPath`).
    pub path: Option<String>,
    /// Port on each endpoint (`dns.aikernel.io/health-check-port`, else the service's first port).
    pub port: u16,
}

/// Health-check protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckProtocol {
    /// HTTP GET; 2xx and 3xx pass.
    Http,
    /// HTTPS GET.
    Https,
    /// TCP connect.
    Tcp,
}

/// Which endpoint addresses health checks took out of answers.
pub trait EndpointHealth {
    /// True when `address` of `namespace/service` must leave answers.
    fn is_unhealthy(&self, namespace: &str, service: &str, address: IpAddr) -> bool;
}

/// No verdicts: every endpoint is healthy.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllHealthy;

impl EndpointHealth for AllHealthy {
    fn is_unhealthy(&self, _namespace: &str, _service: &str, _address: IpAddr) -> bool {
        false
    }
}

/// How a service is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP per family (`spec.clusterIPs`).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the endpoints' addresses are served directly.
    Headless,
    /// A CNAME to `spec.externalName`.
    ExternalName(String),
}

/// A port, from the service spec or from an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name; SRV records exist only for named ports.
    pub name: String,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The port number.
    pub port: u16,
}

/// Transport protocols a Kubernetes port may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEndpoint {
    /// Its addresses (an EndpointSlice holds one family).
    pub addresses: Vec<IpAddr>,
    /// `hostname`, set for StatefulSet pods behind a headless service.
    pub hostname: Option<String>,
    /// The pod's name from `targetRef`, used with `endpoint_pod_names`.
    pub pod_name: Option<String>,
    /// `conditions.ready` (absent counts as ready).
    pub ready: bool,
    /// The ports of the EndpointSlice that holds this endpoint (shared by
    /// all of its endpoints).
    pub ports: Arc<[ServicePort]>,
}

// === impl Protocol ===

impl Protocol {
    /// The SRV label: `_tcp`, `_udp` or `_sctp`.
    pub fn srv_label(self) -> &'static str {
        match self {
            Self::Tcp => "_tcp",
            Self::Udp => "_udp",
            Self::Sctp => "_sctp",
        }
    }
}

/// What to serve when every endpoint of a checked service is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllUnhealthy {
    /// Serve them all (fail open, as Route53 and Envoy do).
    #[default]
    ServeAll,
    /// Serve none: the name answers NXDOMAIN like a service without endpoints.
    NxDomain,
}

/// A running Pod's addresses (`pods verified` answers only these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPod {
    /// The namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// `status.podIPs` (or `status.podIP`).
    pub addresses: Vec<IpAddr>,
}

/// Everything the cluster zone is built from, from one source.
///
/// Services are shared (`Arc`): a source that changes one service hands out a
/// new state holding the same `Arc`s for every other, and says which it
/// changed ([`ClusterChanges`]), so the DNS compiler renders only those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Services with their endpoints.
    pub services: Vec<Arc<ClusterService>>,
    /// Running pods (empty unless the source watches them for `pods verified`).
    pub pods: Vec<ClusterPod>,
    /// Increases with every state a source delivers; 0 when the source does
    /// not number its states.
    pub revision: u64,
    /// What changed since the state numbered `changes.since`, when known.
    pub changes: Option<Arc<ClusterChanges>>,
}

/// One service as it was and as it is: `None` before when it was added,
/// `None` after when it was removed.
pub type ServiceChange = (Option<Arc<ClusterService>>, Option<Arc<ClusterService>>);

/// How one state of a source differs from the one before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterChanges {
    /// The revision of the state these changes apply to.
    pub since: u64,
    /// Services changed, added (`None` before) or removed (`None` after):
    /// (before, after).
    pub services: Vec<ServiceChange>,
    /// The pods changed.
    pub pods: bool,
}
