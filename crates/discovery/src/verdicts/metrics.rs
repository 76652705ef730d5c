//! Counters of the verdict publisher (`signpost health`) and follower (every
//! replica), rendered by the role that owns them.
//!
//! Admin plane. Relaxed atomics written by the publisher and follower tasks;
//! `last_error` is a short critical section on the admin plane only.

use signpost_model::metrics::{Exposition, Kind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Histogram buckets in seconds, for publish latency and propagation.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram of [`BUCKETS`].
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[bucket].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, out: &mut Exposition<'_>, name: &str) {
        let buckets = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| (*bound, count.load(Relaxed)));
        out.histogram(
            name,
            &[],
            buckets,
            self.count.load(Relaxed),
            self.sum_nanos.load(Relaxed) as f64 / 1e9,
        );
    }
}

/// The publisher's counters (`signpost_health_publish*`).
#[derive(Debug, Default)]
pub struct PublishMetrics {
    latency: Histogram,
    written: AtomicU64,
    unchanged: AtomicU64,
    failed: AtomicU64,
    too_large: AtomicU64,
    bytes: AtomicU64,
    last_publish_millis: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// How one publish attempt ended, for [`PublishMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    Written { took: Duration, bytes: usize },
    Unchanged,
    Failed,
    TooLarge,
}

impl PublishMetrics {
    pub(crate) fn record(&self, attempt: Attempt, error: Option<String>) {
        match attempt {
            Attempt::Written { took, bytes } => {
                self.latency.observe(took);
                self.written.fetch_add(1, Relaxed);
                self.bytes.store(bytes as u64, Relaxed);
                let now = (super::store::unix_now() * 1000.0) as u64;
                self.last_publish_millis.store(now, Relaxed);
            }
            Attempt::Unchanged => {
                self.unchanged.fetch_add(1, Relaxed);
            }
            Attempt::Failed => {
                self.failed.fetch_add(1, Relaxed);
            }
            Attempt::TooLarge => {
                self.too_large.fetch_add(1, Relaxed);
            }
        }
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = error;
    }

    /// Unix time of the last write, if any.
    pub fn last_publish_unix(&self) -> Option<f64> {
        match self.last_publish_millis.load(Relaxed) {
            0 => None,
            millis => Some(millis as f64 / 1000.0),
        }
    }

    /// Why the last attempt failed, `None` after a success.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }

    /// Renders the publisher's families.
    pub fn render(&self, out: &mut String) {
        let out = &mut Exposition::new(out);
        out.family(
            "signpost_health_publish_duration_seconds",
            Kind::Histogram,
            "Time from a verdict change to its write being acknowledged by the verdict store.",
        );
        self.latency
            .render(out, "signpost_health_publish_duration_seconds");
        out.family(
            "signpost_health_publishes_total",
            Kind::Counter,
            "Verdict publish attempts, by result.",
        );
        for (result, counter) in [
            ("written", &self.written),
            ("unchanged", &self.unchanged),
            ("failed", &self.failed),
            ("too_large", &self.too_large),
        ] {
            out.sample(
                "signpost_health_publishes_total",
                &[("result", &result)],
                counter.load(Relaxed),
            );
        }
        out.family(
            "signpost_health_published_bytes",
            Kind::Gauge,
            "Size of the last verdict set written, bytes.",
        );
        out.sample(
            "signpost_health_published_bytes",
            &[],
            self.bytes.load(Relaxed),
        );
    }
}

/// The follower's counters (`signpost_health_verdict*`).
#[derive(Debug, Default)]
pub struct FollowMetrics {
    readable: AtomicU64,
    fail_open: AtomicU64,
    unhealthy: AtomicU64,
    updates: AtomicU64,
    propagation: Histogram,
}

impl FollowMetrics {
    pub(crate) fn set_readable(&self, readable: bool) {
        self.readable.store(u64::from(readable), Relaxed);
    }

    pub(crate) fn set_fail_open(&self, fail_open: bool) {
        self.fail_open.store(u64::from(fail_open), Relaxed);
    }

    pub(crate) fn applied(&self, unhealthy: usize) {
        self.unhealthy.store(unhealthy as u64, Relaxed);
        self.updates.fetch_add(1, Relaxed);
    }

    pub(crate) fn propagated(&self, took: Duration) {
        self.propagation.observe(took);
    }

    /// Whether the published verdicts can be read right now.
    pub fn readable(&self) -> bool {
        self.readable.load(Relaxed) == 1
    }

    /// Whether the replica serves every endpoint because the verdicts are too old.
    pub fn fail_open(&self) -> bool {
        self.fail_open.load(Relaxed) == 1
    }

    /// Renders the follower's families.
    pub fn render(&self, out: &mut String) {
        let out = &mut Exposition::new(out);
        for (name, help, value) in [
            (
                "signpost_health_verdicts_readable",
                "1 while the published verdicts can be read, 0 while the last ones are kept.",
                &self.readable,
            ),
            (
                "signpost_health_verdicts_fail_open",
                "1 while the verdicts have been unreadable past the staleness bound and every endpoint is served.",
                &self.fail_open,
            ),
            (
                "signpost_health_verdicts_unhealthy",
                "Endpoints the applied verdicts take out of answers.",
                &self.unhealthy,
            ),
        ] {
            out.family(name, Kind::Gauge, help);
            out.sample(name, &[], value.load(Relaxed));
        }
        out.family(
            "signpost_health_verdict_updates_total",
            Kind::Counter,
            "Verdict sets applied.",
        );
        out.sample(
            "signpost_health_verdict_updates_total",
            &[],
            self.updates.load(Relaxed),
        );
        out.family(
            "signpost_health_verdict_propagation_seconds",
            Kind::Histogram,
            "Time from the leader's write of a verdict set to this process reading it.",
        );
        self.propagation
            .render(out, "signpost_health_verdict_propagation_seconds");
    }
}
