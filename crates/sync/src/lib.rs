//! `signpost sync`: external-dns's job, compatible with its flags,
//! annotations and TXT ownership registry.
//!
//! Control plane. One reconciliation reads the zone through the registry,
//! derives the desired endpoints from Kubernetes objects, plans, and writes:
//!
//! ```text
//! Source<Arc<ClusterObjects>> ─▶ source::endpoints ─▶ desired ─┐
//!                  provider ─▶ registry (txt | noop) ─▶ current ─┴─▶ plan::calculate ─▶ registry ─▶ provider
//! ```
//!
//! With `--health-verdicts`, [`verdicts`] leaves regions whose endpoints
//! all fail their health checks out of the desired endpoints.
//!
//! Invariant I5: the syncer never changes a record it does not own (the
//! planner and the TXT registry both check the owner label).

pub mod config;
pub mod controller;
pub mod duration;
pub mod endpoint;
pub mod filter;
pub mod flags;
pub mod metrics;
pub mod plan;
pub mod provider;
pub mod registry;
pub mod source;
pub mod verdicts;
