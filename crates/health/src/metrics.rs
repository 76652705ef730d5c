//! Health-check metrics with the reference deployment's names.

use signpost_model::metrics::{Exposition, Kind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Check duration buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Counters and gauges of the health checker; lock-free, rendered on scrape.
#[derive(Debug, Default)]
pub struct HealthMetrics {
    checks_success: AtomicU64,
    checks_failure: AtomicU64,
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_nanos: AtomicU64,
    healthy: AtomicU64,
    unhealthy: AtomicU64,
    /// Verdict publications that changed answers.
    pub updates: AtomicU64,
    /// Endpoints taken out of answers.
    pub endpoints_removed: AtomicU64,
    /// Endpoints put back.
    pub endpoints_added: AtomicU64,
}

// === impl HealthMetrics ===

impl HealthMetrics {
    /// Counts one finished check.
    pub fn observe_check(&self, passed: bool, took: Duration) {
        if passed {
            &self.checks_success
        } else {
            &self.checks_failure
        }
        .fetch_add(1, Relaxed);
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.duration_buckets[bucket].fetch_add(1, Relaxed);
        }
        self.duration_count.fetch_add(1, Relaxed);
        self.duration_sum_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Sets the endpoint gauges.
    pub fn set_counts(&self, healthy: usize, unhealthy: usize) {
        self.healthy.store(healthy as u64, Relaxed);
        self.unhealthy.store(unhealthy as u64, Relaxed);
    }

    /// The endpoint gauges: (serving, unhealthy).
    pub fn counts(&self) -> (u64, u64) {
        (self.healthy.load(Relaxed), self.unhealthy.load(Relaxed))
    }

    /// Renders the Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let out = &mut Exposition::new(out);
        out.family(
            "dns_health_checks_total",
            Kind::Counter,
            "Health checks run, by result.",
        );
        out.sample(
            "dns_health_checks_total",
            &[("result", &"success")],
            self.checks_success.load(Relaxed),
        );
        out.sample(
            "dns_health_checks_total",
            &[("result", &"failure")],
            self.checks_failure.load(Relaxed),
        );
        out.family(
            "dns_health_check_duration_seconds",
            Kind::Histogram,
            "Time one health check took.",
        );
        let buckets = BUCKETS
            .iter()
            .zip(&self.duration_buckets)
            .map(|(bound, count)| (*bound, count.load(Relaxed)));
        out.histogram(
            "dns_health_check_duration_seconds",
            &[],
            buckets,
            self.duration_count.load(Relaxed),
            self.duration_sum_nanos.load(Relaxed) as f64 / 1e9,
        );
        for (name, kind, help, value) in [
            (
                "dns_healthy_endpoints",
                Kind::Gauge,
                "Checked endpoints in answers.",
                &self.healthy,
            ),
            (
                "dns_unhealthy_endpoints",
                Kind::Gauge,
                "Checked endpoints out of answers.",
                &self.unhealthy,
            ),
            (
                "dns_updates_total",
                Kind::Counter,
                "Verdict changes published to DNS answers.",
                &self.updates,
            ),
            (
                "dns_endpoints_removed_total",
                Kind::Counter,
                "Endpoints removed from answers as unhealthy.",
                &self.endpoints_removed,
            ),
            (
                "dns_endpoints_added_total",
                Kind::Counter,
                "Endpoints returned to answers after recovering.",
                &self.endpoints_added,
            ),
        ] {
            out.family(name, kind, help);
            out.sample(name, &[], value.load(Relaxed));
        }
    }
}
