//! Counters of every etcd source, verdict backend and elector in the process.
//!
//! Admin plane. Process-wide atomics (a source counts without a lock or an
//! allocation), rendered through [`Exposition`] at scrape time by
//! [`render_metrics`], which the binary hooks into the DNS role's `/metrics`.
//! Nothing is rendered until something talked to etcd.

use signpost_model::metrics::{Exposition, Kind};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// The process's etcd counters.
#[derive(Debug, Default)]
pub(crate) struct EtcdMetrics {
    pub(crate) used: AtomicBool,
    pub(crate) reads_success: AtomicU64,
    pub(crate) reads_failure: AtomicU64,
    pub(crate) restarts_compacted: AtomicU64,
    pub(crate) restarts_lost: AtomicU64,
    pub(crate) invalid_values: AtomicU64,
    pub(crate) invalid_keys: AtomicI64,
    pub(crate) keys: AtomicI64,
    pub(crate) synced: AtomicI64,
    pub(crate) unreachable: AtomicI64,
    pub(crate) revision: AtomicI64,
    pub(crate) verdict_publishes: AtomicU64,
    pub(crate) verdict_publish_failures: AtomicU64,
}

/// The one set of counters.
pub(crate) static METRICS: EtcdMetrics = EtcdMetrics {
    used: AtomicBool::new(false),
    reads_success: AtomicU64::new(0),
    reads_failure: AtomicU64::new(0),
    restarts_compacted: AtomicU64::new(0),
    restarts_lost: AtomicU64::new(0),
    invalid_values: AtomicU64::new(0),
    invalid_keys: AtomicI64::new(0),
    keys: AtomicI64::new(0),
    synced: AtomicI64::new(0),
    unreachable: AtomicI64::new(0),
    revision: AtomicI64::new(0),
    verdict_publishes: AtomicU64::new(0),
    verdict_publish_failures: AtomicU64::new(0),
};

/// Adds a delta to a gauge.
pub(crate) fn adjust(gauge: &AtomicI64, delta: i64) {
    gauge.fetch_add(delta, Ordering::Relaxed);
}

/// Writes the etcd families (`signpost_etcd_*`) once anything used etcd.
pub fn render_metrics(out: &mut String) {
    let m = &METRICS;
    if !m.used.load(Ordering::Relaxed) {
        return;
    }
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let gauge = |g: &AtomicI64| g.load(Ordering::Relaxed);
    let mut out = Exposition::new(out);
    out.family(
        "signpost_etcd_reads_total",
        Kind::Counter,
        "Full reads of an etcd prefix (start-up, compaction, lost watch), by result.",
    );
    out.sample(
        "signpost_etcd_reads_total",
        &[("result", &"success")],
        load(&m.reads_success),
    );
    out.sample(
        "signpost_etcd_reads_total",
        &[("result", &"failure")],
        load(&m.reads_failure),
    );
    out.family(
        "signpost_etcd_watch_restarts_total",
        Kind::Counter,
        "Watches given up and replaced by a full read, by reason.",
    );
    out.sample(
        "signpost_etcd_watch_restarts_total",
        &[("reason", &"compacted")],
        load(&m.restarts_compacted),
    );
    out.sample(
        "signpost_etcd_watch_restarts_total",
        &[("reason", &"lost")],
        load(&m.restarts_lost),
    );
    out.family(
        "signpost_etcd_invalid_values_total",
        Kind::Counter,
        "Keys skipped because their value is not a SkyDNS record (each write counted once).",
    );
    out.sample(
        "signpost_etcd_invalid_values_total",
        &[],
        load(&m.invalid_values),
    );
    out.family(
        "signpost_etcd_invalid_keys",
        Kind::Gauge,
        "Keys currently skipped because their value is not a SkyDNS record.",
    );
    out.sample("signpost_etcd_invalid_keys", &[], gauge(&m.invalid_keys));
    out.family(
        "signpost_etcd_keys",
        Kind::Gauge,
        "SkyDNS keys currently served from etcd.",
    );
    out.sample("signpost_etcd_keys", &[], gauge(&m.keys));
    out.family(
        "signpost_etcd_sources",
        Kind::Gauge,
        "etcd sources by state: synced (watching) or unreachable (serving their last records).",
    );
    out.sample(
        "signpost_etcd_sources",
        &[("state", &"synced")],
        gauge(&m.synced),
    );
    out.sample(
        "signpost_etcd_sources",
        &[("state", &"unreachable")],
        gauge(&m.unreachable),
    );
    out.family(
        "signpost_etcd_revision",
        Kind::Gauge,
        "The etcd revision of the newest records a source delivered.",
    );
    out.sample("signpost_etcd_revision", &[], gauge(&m.revision));
    out.family(
        "signpost_etcd_verdict_publishes_total",
        Kind::Counter,
        "Verdict sets written to etcd, by result.",
    );
    out.sample(
        "signpost_etcd_verdict_publishes_total",
        &[("result", &"success")],
        load(&m.verdict_publishes),
    );
    out.sample(
        "signpost_etcd_verdict_publishes_total",
        &[("result", &"failure")],
        load(&m.verdict_publish_failures),
    );
}
