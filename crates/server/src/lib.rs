//! The DNS server: listeners, workers, the answer path, metrics and admin.
//!
//! Data plane: [`answer`], [`udp`], [`tcp`] and [`metrics`] recording; names no
//! zone holds go through [`recursion`] to the [`cache`] and the [`forward`]er.
//! Control plane: [`config`] (Corefile → typed config) and [`run`](mod@run) (wiring,
//! the snapshot compiler, drain). Admin plane: [`admin`].
//! This crate never depends on Kubernetes or provider SDKs: sources plug in
//! through [`run::ClusterSource`].

pub mod admin;
pub mod answer;
pub mod cache;
pub mod config;
pub mod forward;
pub mod geoapi;
pub mod metrics;
pub mod querylog;
pub mod recursion;
pub mod run;
pub mod tcp;
#[cfg(test)]
pub(crate) mod testing;
pub mod udp;

pub use config::{Config, ConfigErrors};
pub use run::{ClusterSource, RunError, RunOptions, SourceFactory, SourceProblem, run};
