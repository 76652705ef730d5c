//! Cache metrics with CoreDNS's names and labels (`plugin/cache/metrics.go`).
//!
//! Data plane writes (relaxed atomics, no lock, no allocation), admin plane
//! reads. Labels are fixed at start-up: `server`, `zones` (the cached zones
//! joined by commas), `view` (always empty: signpost has no `view` plugin) and
//! `type` (`success` or `denial`).

use super::answer::Kind;
use signpost_model::metrics::{Exposition, Kind as MetricKind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one cache.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    server: String,
    zones: String,
    pub(super) entries: [AtomicU64; 2],
    pub(super) hits: [AtomicU64; 2],
    pub(super) evictions: [AtomicU64; 2],
    pub(super) requests: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) prefetches: AtomicU64,
    pub(super) drops: AtomicU64,
    pub(super) served_stale: AtomicU64,
}

const KINDS: [Kind; 2] = [Kind::Success, Kind::Denial];

// === impl CacheMetrics ===

impl CacheMetrics {
    /// Counters for the cache of `server` (such as `dns://:53`) covering `zones`.
    pub fn new(server: String, zones: String) -> Self {
        Self {
            server,
            zones,
            ..Self::default()
        }
    }

    /// (hits, misses, stale answers served), for the admin endpoints.
    pub fn summary(&self) -> (u64, u64, u64) {
        let hits = self.hits.iter().map(|h| h.load(Relaxed)).sum();
        (
            hits,
            self.misses.load(Relaxed),
            self.served_stale.load(Relaxed),
        )
    }

    pub(super) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    fn render_typed(&self, out: &mut Exposition<'_>, name: &str, values: &[AtomicU64; 2]) {
        for kind in KINDS {
            out.sample(
                name,
                &[
                    ("server", &self.server),
                    ("zones", &self.zones),
                    ("view", &""),
                    ("type", &kind.label()),
                ],
                values[kind as usize].load(Relaxed),
            );
        }
    }

    fn render_plain(&self, out: &mut Exposition<'_>, name: &str, value: &AtomicU64) {
        out.sample(
            name,
            &[
                ("server", &self.server),
                ("zones", &self.zones),
                ("view", &""),
            ],
            value.load(Relaxed),
        );
    }
}

/// Renders the cache metrics of every listener: HELP and TYPE once per metric.
pub fn render_all<'a>(
    caches: impl IntoIterator<Item = &'a CacheMetrics> + Clone,
    out: &mut String,
) {
    let out = &mut Exposition::new(out);
    type Typed = fn(&CacheMetrics) -> &[AtomicU64; 2];
    type Plain = fn(&CacheMetrics) -> &AtomicU64;
    let typed: [(&str, MetricKind, &str, Typed); 3] = [
        (
            "coredns_cache_entries",
            MetricKind::Gauge,
            "The number of elements in the cache.",
            |m| &m.entries,
        ),
        (
            "coredns_cache_hits_total",
            MetricKind::Counter,
            "The count of cache hits.",
            |m| &m.hits,
        ),
        (
            "coredns_cache_evictions_total",
            MetricKind::Counter,
            "The count of cache evictions.",
            |m| &m.evictions,
        ),
    ];
    let plain: [(&str, &str, Plain); 5] = [
        (
            "coredns_cache_requests_total",
            "The count of cache requests.",
            |m| &m.requests,
        ),
        (
            "coredns_cache_misses_total",
            "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
            |m| &m.misses,
        ),
        (
            "coredns_cache_prefetch_total",
            "The number of times the cache has prefetched a cached item.",
            |m| &m.prefetches,
        ),
        (
            "coredns_cache_drops_total",
            "The number responses that are not cached, because the reply is malformed.",
            |m| &m.drops,
        ),
        (
            "coredns_cache_served_stale_total",
            "The number of requests served from stale cache entries.",
            |m| &m.served_stale,
        ),
    ];
    for (name, kind, help, values) in typed {
        out.family(name, kind, help);
        for cache in caches.clone() {
            cache.render_typed(out, name, values(cache));
        }
    }
    for (name, help, value) in plain {
        out.family(name, MetricKind::Counter, help);
        for cache in caches.clone() {
            cache.render_plain(out, name, value(cache));
        }
    }
}
