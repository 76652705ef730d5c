//! Immutable snapshots of authoritative data and the lookup over them.
//!
//! Data plane reads, control plane builds. A [`Snapshot`] maps every owner name
//! to pre-rendered answers, one per record type, so answering is a hash lookup
//! and a copy. The control plane fills a [`SnapshotBuilder`] from every
//! source's [`Input`] ([`input::build`]: the cluster zone through
//! [`cluster::compile`], zone files, hosts files) and swaps the finished snapshot in whole;
//! a query reads exactly one snapshot (invariant I2).
//!
//! ```text
//! records ─▶ SnapshotBuilder::build ─▶ Snapshot { names: lower-case wire name ─▶ Node }
//!                                          │
//! qname, qtype ─▶ Snapshot::lookup ─▶ Lookup::{Answer, Pod, Fallthrough, NotAuthoritative}
//! ```
//!
//! Negative answers follow RFC 2308: NXDOMAIN when no name exists, NODATA
//! (NOERROR, empty answer) for existing names and empty non-terminals, both with
//! the zone's SOA in the authority section.

mod builder;
pub mod cluster;
pub mod hosts;
pub mod input;
pub mod skydns;
mod snapshot;
pub mod zonefile;

pub use builder::{BuildError, SnapshotBuilder, ZoneSettings};
pub use input::{
    BuildKind, BuildOptions, Builds, EtcdSpec, EtcdTls, Input, KubeConnection, KubernetesApi,
    Recipe, Secret, SourceSpec, VerdictSpec, VerdictStoreSpec, build, serial_now,
};
pub use snapshot::{GeoName, GeoRegion, Lookup, PodAnswer, PodMode, Snapshot};

#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;
