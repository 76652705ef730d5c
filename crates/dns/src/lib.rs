//! The DNS role (`signpost dns`): listeners, workers, the answer path,
//! recursion, the snapshot compiler and the Corefile plugins.
//!
//! Data plane: [`answer`], [`exchange`], [`udp`], [`tcp`] and [`metrics`]
//! recording; names no zone holds go through [`recursion`] to the [`cache`]
//! and the [`forward`]er. Control plane: [`config`] and `plugins` (Corefile
//! → typed config), `compiler` (sources → snapshots), `checking` (the
//! in-process health checker) and [`server`] (wiring, reload, drain).
//!
//! This crate never depends on Kubernetes, etcd, provider SDKs or the admin
//! HTTP server: sources arrive through a [`SourceFactory`] of
//! `signpost_model::Source`s, and [`server::DnsStatus`] implements
//! `signpost_model::Status` for whoever serves the admin endpoints.

pub mod answer;
pub mod cache;
pub(crate) mod checking;
pub(crate) mod compiler;
pub mod config;
pub mod exchange;
pub mod forward;
pub mod geoapi;
pub mod loopcheck;
pub mod memory;
pub mod metrics;
pub(crate) mod plugins;
pub mod querylog;
pub mod recursion;
pub mod server;
pub mod tcp;
#[cfg(test)]
pub(crate) mod testing;
pub mod udp;

pub use config::{Config, ConfigErrors};
pub use server::{DnsStatus, RunError, RunOptions, Server, SourceFactory, VerdictFactory};
