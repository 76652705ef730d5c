//! Active health checks that take failing endpoints out of DNS answers.
//!
//! Control plane. The [`checker`] owns every endpoint's [`state`] and runs
//! [`probe`]s with bounded concurrency; verdict changes travel as data
//! through `signpost_model::verdict` (publish, subscribe) to the snapshot compilers, so the
//! query path sees health only through the next snapshot, never a lock.
//!
//! ```text
//! targets (from the compiler) ─▶ checker task ─▶ probe tasks (HTTP / HTTPS / TCP)
//!                                     │ results
//!                                     ▼
//!                   EndpointState::record ─▶ Verdicts ─▶ PublishVerdicts ─▶ compilers
//! ```

pub mod checker;
pub mod controller;
pub mod directive;
pub mod metrics;
pub mod probe;
pub mod state;
pub mod targets;

pub use checker::{CheckerOptions, CheckerParts, EndpointReport, Probe, ReportRequest, Target};
pub use controller::{ControllerConfig, ElectionTimings};
pub use directive::HealthcheckConfig;
pub use metrics::HealthMetrics;
pub use probe::{CheckKind, Prober};
pub use state::{Change, EndpointState, HealthPolicy, Phase};
pub use targets::{health_targets, health_targets_where, health_targets_with};

#[cfg(test)]
mod tests;
