//! What a running role shows on its admin endpoints.
//!
//! Admin plane. Each role (`signpost dns`, later `signpost health` and
//! `signpost sync`) implements [`Status`]; the `signpost-admin` crate serves
//! it over HTTP (JSON APIs and the status page) without knowing which role it
//! is. The documents are role-neutral: a section a role does not have is
//! `None` (`null` in JSON) or empty, never an error, so one page and one
//! OpenAPI description (`docs/admin-openapi.yaml`) serve every role.
//!
//! Invariants: every method is read-only and answers from state the role
//! already keeps (atomics, `ArcSwap` loads, one request to the checker task);
//! none touches a query worker. Documents never carry secrets (tokens, TSIG
//! keys): they describe what is served and why.

use crate::source::BoxFuture;
use serde::Serialize;

/// A role as the admin endpoints see it.
pub trait Status: Send + Sync + 'static {
    /// True once the role serves (`/ready` answers 200).
    fn ready(&self) -> bool;

    /// Appends the Prometheus text exposition (`/metrics`).
    fn render_metrics(&self, out: &mut String);

    /// The role at a glance (`/api/v1/status`): listeners and zones, snapshot
    /// generation and age, reload state, source problems, and the sync and
    /// publisher sections of the roles that have them.
    fn overview(&self) -> Overview;

    /// Every service the role serves with its endpoints and their health
    /// (`/api/v1/services`).
    fn services(&self) -> BoxFuture<'_, ServiceList>;

    /// Every health-checked endpoint (`/api/v1/endpoints`), or `None` when the
    /// role checks no health.
    fn endpoints(&self) -> BoxFuture<'_, Option<Vec<EndpointReport>>>;

    /// Geographic names with their regions and health (`/api/v1/geo`).
    fn geo(&self) -> GeoList;

    /// Which region `client` (an address, optionally `/PREFIX`) gets for the
    /// geographic name `name`, and why (`/api/v1/geo/explain`).
    fn explain(&self, name: &str, client: &str) -> Result<Explanation, Refusal>;

    /// Cache and forwarder state of every listener (`/api/v1/recursion`).
    fn recursion(&self) -> RecursionList;
}

/// Why a request for a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request is malformed (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// What the request names does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
}

/// The role at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Overview {
    /// `dns`, `health` or `sync`.
    pub role: String,
    /// The signpost version.
    pub version: String,
    /// `/ready` would answer 200.
    pub ready: bool,
    /// Unix time the process started, seconds.
    pub started_unix: f64,
    /// DNS listeners (empty for roles that serve no DNS).
    pub listeners: Vec<ListenerStatus>,
    /// The `reload` state, `None` without a `reload` directive.
    pub reload: Option<ReloadStatus>,
    /// Current problems of the sources (each keeps its previous state serving).
    pub problems: Vec<SourceProblemStatus>,
    /// Health checking: `None` when the role checks no health.
    pub health: Option<HealthSummary>,
    /// `signpost sync`: its last plan, last sync time and errors.
    pub sync: Option<SyncStatus>,
    /// `signpost health`: leadership and publish state.
    pub publisher: Option<PublisherStatus>,
}

/// One DNS listener and the snapshot it serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListenerStatus {
    /// Addresses as bound (`127.0.0.1:53`).
    pub addresses: Vec<String>,
    /// Zones of the server blocks on these addresses.
    pub zones: Vec<String>,
    /// The snapshot serving, `None` before the first complete one.
    pub snapshot: Option<SnapshotStatus>,
    /// Plugins that answer on this listener beyond authoritative data
    /// (`cache`, `forward`, `geo`, `healthcheck`, `loadbalance`, `log`).
    pub plugins: Vec<String>,
}

/// The snapshot a listener serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SnapshotStatus {
    /// Builds since the listener's configuration was loaded (1 = first).
    pub generation: u64,
    /// Unix time it was built, seconds.
    pub built_unix: f64,
    /// Seconds since it was built.
    pub age_seconds: f64,
    /// Owner names.
    pub names: u64,
    /// Records.
    pub records: u64,
}

/// The `reload` directive's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReloadStatus {
    /// How often the Corefile is read, seconds.
    pub interval_seconds: f64,
    /// Reloads applied.
    pub successes: u64,
    /// Reloads that failed (the running configuration stayed).
    pub failures: u64,
    /// Unix time of the last applied reload.
    pub last_success_unix: Option<f64>,
    /// Unix time of the last failed reload.
    pub last_failure_unix: Option<f64>,
    /// Why the last reload failed (file and line for a Corefile problem).
    pub last_error: Option<String>,
}

/// A source that could not load; its previous state keeps serving.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceProblemStatus {
    /// The file (or object) at fault.
    pub file: String,
    /// Its line, when known.
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
}

/// Counts of the health checker.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthSummary {
    /// Endpoints checked.
    pub endpoints: u64,
    /// Of which in answers (healthy or still failing below the threshold).
    pub serving: u64,
    /// Of which removed from answers.
    pub unhealthy: u64,
}

/// `signpost sync`'s state (the section is `None` in other roles).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncStatus {
    /// Unix time of the last finished sync.
    pub last_sync_unix: Option<f64>,
    /// Changes of the last plan.
    pub last_plan: Vec<PlannedChange>,
    /// Errors of the last sync.
    pub errors: Vec<String>,
}

/// One change of a sync plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlannedChange {
    /// `create`, `update` or `delete`.
    pub action: String,
    /// The record name.
    pub name: String,
    /// The record type.
    pub record_type: String,
    /// The record data after the change.
    pub targets: Vec<String>,
}

/// `signpost health`'s leadership and publish state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PublisherStatus {
    /// This process leads (publishes verdicts).
    pub leader: bool,
    /// Who leads, when known.
    pub holder: Option<String>,
    /// Unix time verdicts were last published.
    pub last_publish_unix: Option<f64>,
    /// Why the last publish failed.
    pub last_error: Option<String>,
}

/// Services with their endpoints and health.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceList {
    /// Sorted by namespace, then name.
    pub services: Vec<ServiceStatus>,
}

/// One service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceStatus {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `cluster_ip`, `headless` or `external_name`.
    pub kind: String,
    /// Cluster IPs (or the external name).
    pub addresses: Vec<String>,
    /// Ports as `name/port/protocol`.
    pub ports: Vec<String>,
    /// Geographic region of the service, if annotated.
    pub region: Option<String>,
    /// Endpoints with their health.
    pub endpoints: Vec<ServiceEndpoint>,
}

/// One endpoint of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceEndpoint {
    /// Address.
    pub address: String,
    /// Hostname, if set.
    pub hostname: Option<String>,
    /// Kubernetes readiness.
    pub ready: bool,
    /// In DNS answers now.
    pub serving: bool,
    /// The health check's view, `None` when the service is not checked.
    pub health: Option<EndpointReport>,
}

/// The state of one checked endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointReport {
    /// Namespace.
    pub namespace: String,
    /// Service.
    pub service: String,
    /// Address.
    pub address: String,
    /// Port checked.
    pub port: u16,
    /// `http`, `https` or `tcp`.
    pub kind: String,
    /// `healthy`, `failing` or `unhealthy`.
    pub state: String,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Passes in a row.
    pub consecutive_successes: u32,
    /// Unix time of the last finished check, seconds.
    pub last_check_unix: Option<f64>,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// Recent state changes, oldest first (bounded).
    pub history: Vec<Transition>,
}

/// One change of an endpoint's health state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Transition {
    /// Unix time, seconds.
    pub unix: f64,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
    /// The failure that caused it, if any.
    pub error: Option<String>,
}

/// Geographic names.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GeoList {
    /// Every geographic name of every listener.
    pub names: Vec<GeoNameStatus>,
}

/// One geographic name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GeoNameStatus {
    /// The name.
    pub name: String,
    /// The zone the `geo` plugin serves it in.
    pub zone: String,
    /// Its regions.
    pub regions: Vec<GeoRegionStatus>,
}

/// One region of a geographic name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GeoRegionStatus {
    /// Region name.
    pub region: Option<String>,
    /// Priority (lower first under the `priority` policy).
    pub priority: u32,
    /// Has a healthy endpoint (or no health checks).
    pub healthy: bool,
    /// The addresses it answers with.
    pub addresses: Vec<String>,
}

/// Why a client gets a region.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Explanation {
    /// The geographic name.
    pub name: String,
    /// The client as asked.
    pub client: String,
    /// Where the client was placed.
    pub location: Location,
    /// `latency` or `priority`.
    pub policy: String,
    /// The region chosen (`all` when every region is unhealthy).
    pub chosen: String,
    /// Why, in words.
    pub reason: String,
    /// Every region considered.
    pub candidates: Vec<Candidate>,
}

/// Where a client was placed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Location {
    /// `client_network`, `database` or `unknown`.
    pub source: String,
    /// The region of the client's network, if one matched.
    pub home: Option<String>,
    /// Latitude and longitude from the database.
    pub coordinates: Option<[f64; 2]>,
    /// The prefix length the answer holds for (ECS scope).
    pub scope: u8,
}

/// One region considered for a client.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Candidate {
    /// Region name.
    pub region: Option<String>,
    /// Priority.
    pub priority: u32,
    /// Has a healthy endpoint.
    pub healthy: bool,
    /// Expected latency from the client, milliseconds.
    pub expected_latency_ms: f64,
}

/// Cache and forwarder state per listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecursionList {
    /// Listeners with a `cache` or `forward` plugin.
    pub listeners: Vec<RecursionStatus>,
}

/// One listener's cache and forwarders.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecursionStatus {
    /// `dns://ADDRESS`.
    pub server: String,
    /// The cache, if any.
    pub cache: Option<CacheStatus>,
    /// The forwarders, in Corefile order.
    pub forwarders: Vec<ForwarderStatus>,
}

/// A cache's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStatus {
    /// Entries now.
    pub entries: u64,
    /// Capacity for positive answers.
    pub success_capacity: u64,
    /// Capacity for negative answers.
    pub denial_capacity: u64,
    /// Answers served from the cache.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
    /// Expired answers served (`serve_stale`).
    pub served_stale: u64,
}

/// A `forward` plugin's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ForwarderStatus {
    /// The zone forwarded.
    pub from: String,
    /// Its upstreams.
    pub upstreams: Vec<UpstreamStatus>,
}

/// One upstream of a forwarder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpstreamStatus {
    /// `IP:PORT`.
    pub address: String,
    /// Marked down after `max_fails` failures in a row.
    pub down: bool,
}
