//! etcd: the `etcd` plugin's SkyDNS source, and (for `signpost health`)
//! verdicts and leader election over etcd.
//!
//! Control plane. Every part talks to etcd through `etcd-client` (v3 gRPC
//! API, which etcd 3.4 and later serve), connected by [`connect`] from an
//! [`signpost_zone::EtcdSpec`]; failures are retried with [`Backoff`] and
//! counted in the `signpost_etcd_*` families ([`render_metrics`]).
//!
//! ```text
//! EtcdSource             prefix ─range read + watch─▶ Input::Sky ─▶ compiler
//! EtcdVerdictStore       <prefix>unhealthy (one JSON value): the verdict store
//! EtcdVerdictPublisher   Verdicts ─put─▶ <prefix>unhealthy
//! EtcdVerdictSubscriber  <prefix>unhealthy ─read + watch─▶ SubscribeVerdicts
//! EtcdElector            lease + keep-alive + campaign ─▶ Leadership
//! ```

mod client;
mod elector;
mod metrics;
mod source;
mod verdicts;

pub use client::{Backoff, EtcdError, REQUEST_TIMEOUT, connect};
pub use elector::EtcdElector;
pub use metrics::render_metrics;
pub use source::EtcdSource;
pub use verdicts::{
    EtcdVerdictPublisher, EtcdVerdictStore, EtcdVerdictSubscriber, MAX_VALUE_BYTES, verdict_key,
};
