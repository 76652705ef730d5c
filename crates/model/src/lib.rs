//! Shared data and seams of signpost's roles.
//!
//! Every role (`signpost dns`, `signpost health`, `signpost sync`) and every
//! source (catalog files, the Kubernetes API, etcd) speaks these types, so no
//! crate that serves queries needs to know where its data came from:
//!
//! ```text
//!  discovery (catalog, kubernetes, etcd) ──Source::run──▶ Sink ──▶ compiler (dns)
//!                                          ClusterService     ▲
//!  health checker ──PublishVerdicts──▶ Verdicts ──SubscribeVerdicts
//!  every role ──▶ metrics::Exposition ──▶ /metrics
//! ```
//!
//! This crate depends on no other signpost crate and on nothing that does I/O.

pub mod annotations;
pub mod cluster;
pub mod leader;
pub mod metrics;
pub mod source;
pub mod status;
pub mod verdict;

pub use cluster::{
    AllHealthy, AllUnhealthy, CheckProtocol, ClusterChanges, ClusterEndpoint, ClusterPod,
    ClusterService, ClusterState, EndpointHealth, GeoSpec, HealthCheckSpec, Protocol,
    ServiceChange, ServiceKind, ServicePort,
};
pub use leader::{Elector, Leadership};
pub use source::{BoxFuture, Sink, Source, SourceProblem, Update};
pub use status::{Refusal, Status};
pub use verdict::{EndpointKey, LocalVerdicts, PublishVerdicts, SubscribeVerdicts, Verdicts};
