//! The forward plugin's metrics, with CoreDNS's names and labels.
//!
//! Written by forwarder tasks, read by the admin scrape. Series are
//! pre-registered: each upstream of each [`Forwarder`] owns a slot of atomics
//! (requests, then per RCODE: responses and a duration histogram), so the
//! label values are only the configured upstreams (`to`) and the sixteen
//! header RCODEs. Recording never locks; the registry's mutex is taken only
//! when a forwarder starts and at scrape time.
//!
//! [`Forwarder`]: super::Forwarder

use signpost_model::metrics::{Exposition, Kind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// CoreDNS's duration buckets: 0.25 ms doubling up to about 8 s.
const DURATION_BUCKETS_NANOS: [u64; 16] = {
    let mut out = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = 250_000 << i;
        i += 1;
    }
    out
};
/// Buckets, then count, then sum (nanoseconds).
const HISTOGRAM_WIDTH: usize = DURATION_BUCKETS_NANOS.len() + 2;

/// Names of the 4-bit header RCODEs (RFC 1035, RFC 2136); 11–15 are unassigned
/// and shown as numbers, as CoreDNS does.
const RCODE_NAMES: [&str; 16] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "11", "12", "13", "14", "15",
];

/// Counters of one upstream.
#[derive(Debug)]
pub(crate) struct UpstreamMetrics {
    to: SocketAddr,
    requests: AtomicU64,
    health_check_failures: AtomicU64,
    responses: [AtomicU64; 16],
    durations: Box<[AtomicU64]>,
    /// Queries sent on a kept socket: UDP, TCP.
    conn_cache_hits: [AtomicU64; 2],
    /// Sockets opened (UDP) and connections dialled (TCP).
    conn_cache_misses: [AtomicU64; 2],
    /// Replies that matched no query in flight.
    unmatched_replies: AtomicU64,
}

/// The metrics of the forwarders of one server (listener).
#[derive(Debug)]
pub struct ForwardMetrics {
    server: String,
    /// Registered upstreams. Locked only when a forwarder starts and at scrape.
    upstreams: Mutex<Vec<Arc<UpstreamMetrics>>>,
    health_check_broken: AtomicU64,
    max_concurrent_rejects: AtomicU64,
}

// === impl UpstreamMetrics ===

impl UpstreamMetrics {
    /// Counts one query sent to this upstream (`coredns_forward_requests_total`).
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// Counts one reply and how long its exchange took.
    pub(crate) fn response(&self, rcode: u8, elapsed: Duration) {
        let code = usize::from(rcode & 0x0f);
        self.responses[code].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let base = code * HISTOGRAM_WIDTH;
        if let Some(bucket) = DURATION_BUCKETS_NANOS.iter().position(|&b| nanos <= b) {
            self.durations[base + bucket].fetch_add(1, Relaxed);
        }
        self.durations[base + DURATION_BUCKETS_NANOS.len()].fetch_add(1, Relaxed);
        self.durations[base + DURATION_BUCKETS_NANOS.len() + 1].fetch_add(nanos, Relaxed);
    }

    /// Counts one failed health probe.
    pub(crate) fn health_check_failure(&self) {
        self.health_check_failures.fetch_add(1, Relaxed);
    }

    /// Counts a query sent on a kept socket (`coredns_proxy_conn_cache_hits_total`).
    pub(crate) fn conn_cache_hit(&self, tcp: bool) {
        self.conn_cache_hits[usize::from(tcp)].fetch_add(1, Relaxed);
    }

    /// Counts a socket opened or a connection dialled (`coredns_proxy_conn_cache_misses_total`).
    pub(crate) fn conn_cache_miss(&self, tcp: bool) {
        self.conn_cache_misses[usize::from(tcp)].fetch_add(1, Relaxed);
    }

    /// Counts a reply that matched no query in flight (a late reply or a forgery).
    pub(crate) fn unmatched_reply(&self) {
        self.unmatched_replies.fetch_add(1, Relaxed);
    }

    /// Sockets opened so far, UDP or TCP (tests).
    #[cfg(test)]
    pub(crate) fn sockets_opened(&self, tcp: bool) -> u64 {
        self.conn_cache_misses[usize::from(tcp)].load(Relaxed)
    }

    /// Queries sent on kept sockets so far, UDP or TCP (tests).
    #[cfg(test)]
    pub(crate) fn sockets_reused(&self, tcp: bool) -> u64 {
        self.conn_cache_hits[usize::from(tcp)].load(Relaxed)
    }

    /// Unmatched replies so far (tests).
    #[cfg(test)]
    pub(crate) fn unmatched_replies(&self) -> u64 {
        self.unmatched_replies.load(Relaxed)
    }

    /// Queries sent so far (tests).
    #[cfg(test)]
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Failed health probes so far (tests).
    #[cfg(test)]
    pub(crate) fn health_check_failures(&self) -> u64 {
        self.health_check_failures.load(Relaxed)
    }
}

// === impl ForwardMetrics ===

impl ForwardMetrics {
    /// Metrics for the forwarders of `server` (like `dns://127.0.0.1:53`; used in logs).
    pub fn new(server: String) -> Self {
        Self {
            server,
            upstreams: Mutex::new(Vec::new()),
            health_check_broken: AtomicU64::new(0),
            max_concurrent_rejects: AtomicU64::new(0),
        }
    }

    /// The server these metrics belong to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Registers an upstream; a forwarder calls this once per upstream at start.
    pub(crate) fn upstream(&self, to: SocketAddr) -> Arc<UpstreamMetrics> {
        let metrics = Arc::new(UpstreamMetrics {
            to,
            requests: AtomicU64::new(0),
            health_check_failures: AtomicU64::new(0),
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            durations: (0..16 * HISTOGRAM_WIDTH)
                .map(|_| AtomicU64::new(0))
                .collect(),
            conn_cache_hits: std::array::from_fn(|_| AtomicU64::new(0)),
            conn_cache_misses: std::array::from_fn(|_| AtomicU64::new(0)),
            unmatched_replies: AtomicU64::new(0),
        });
        self.lock().push(metrics.clone());
        metrics
    }

    /// Counts a query that found every upstream down.
    pub(crate) fn health_check_broken(&self) {
        self.health_check_broken.fetch_add(1, Relaxed);
    }

    /// Counts a query refused by `max_concurrent`.
    pub(crate) fn max_concurrent_reject(&self) {
        self.max_concurrent_rejects.fetch_add(1, Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<UpstreamMetrics>>> {
        // The vector is only pushed to; a panic elsewhere cannot leave it half-written.
        self.upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Renders the Prometheus text exposition of these metrics, HELP and TYPE included.
    pub fn render(&self, out: &mut String) {
        render_refs(&[self], out);
    }
}

/// Renders the metrics of several servers as one exposition: each metric's
/// HELP and TYPE once, and an upstream used by several servers summed into
/// one series, since CoreDNS's forward metrics carry no `server` label.
pub fn render_all(servers: &[Arc<ForwardMetrics>], out: &mut String) {
    render_refs(&servers.iter().map(AsRef::as_ref).collect::<Vec<_>>(), out);
}

fn render_refs(servers: &[&ForwardMetrics], out: &mut String) {
    let out = &mut Exposition::new(out);
    let upstreams: Vec<Arc<UpstreamMetrics>> =
        servers.iter().flat_map(|s| s.lock().clone()).collect();
    let mut targets: Vec<SocketAddr> = upstreams.iter().map(|u| u.to).collect();
    targets.sort();
    targets.dedup();
    let sum = |to: SocketAddr, pick: &dyn Fn(&UpstreamMetrics) -> u64| -> u64 {
        upstreams
            .iter()
            .filter(|u| u.to == to)
            .map(|u| pick(u))
            .sum()
    };

    out.family(
        "coredns_forward_requests_total",
        Kind::Counter,
        "Counter of requests made per upstream.",
    );
    for &to in &targets {
        let value = sum(to, &|u| u.requests.load(Relaxed));
        out.sample("coredns_forward_requests_total", &[("to", &to)], value);
    }

    out.family(
        "coredns_forward_responses_total",
        Kind::Counter,
        "Counter of responses received per upstream.",
    );
    for &to in &targets {
        for (code, name) in RCODE_NAMES.iter().enumerate() {
            let value = sum(to, &|u| u.responses[code].load(Relaxed));
            if value > 0 {
                out.sample(
                    "coredns_forward_responses_total",
                    &[("to", &to), ("rcode", name)],
                    value,
                );
            }
        }
    }

    let name = "coredns_forward_request_duration_seconds";
    out.family(
        name,
        Kind::Histogram,
        "Histogram of the time each request took.",
    );
    for &to in &targets {
        for (code, rcode) in RCODE_NAMES.iter().enumerate() {
            let base = code * HISTOGRAM_WIDTH;
            let slot = |i: usize| sum(to, &|u| u.durations[base + i].load(Relaxed));
            let count = slot(DURATION_BUCKETS_NANOS.len());
            if count == 0 {
                continue;
            }
            let buckets = DURATION_BUCKETS_NANOS
                .iter()
                .enumerate()
                .map(|(i, bound)| (*bound as f64 / 1e9, slot(i)));
            let total = slot(DURATION_BUCKETS_NANOS.len() + 1) as f64 / 1e9;
            out.histogram(
                name,
                &[("to", &to), ("rcode", rcode)],
                buckets,
                count,
                total,
            );
        }
    }

    out.family(
        "coredns_forward_healthcheck_failures_total",
        Kind::Counter,
        "Counter of the number of failed healthchecks.",
    );
    for &to in &targets {
        let value = sum(to, &|u| u.health_check_failures.load(Relaxed));
        out.sample(
            "coredns_forward_healthcheck_failures_total",
            &[("to", &to)],
            value,
        );
    }

    for (name, help, counters) in [
        (
            "coredns_proxy_conn_cache_hits_total",
            "Counter of connection cache hits per upstream and protocol.",
            &(|u: &UpstreamMetrics, proto: usize| u.conn_cache_hits[proto].load(Relaxed))
                as &dyn Fn(&UpstreamMetrics, usize) -> u64,
        ),
        (
            "coredns_proxy_conn_cache_misses_total",
            "Counter of connection cache misses per upstream and protocol.",
            &|u: &UpstreamMetrics, proto: usize| u.conn_cache_misses[proto].load(Relaxed),
        ),
    ] {
        out.family(name, Kind::Counter, help);
        for &to in &targets {
            for (index, proto) in ["udp", "tcp"].into_iter().enumerate() {
                let value = sum(to, &|u| counters(u, index));
                out.sample(
                    name,
                    &[("proxy_name", &"forward"), ("to", &to), ("proto", &proto)],
                    value,
                );
            }
        }
    }

    out.family(
        "signpost_forward_unmatched_replies_total",
        Kind::Counter,
        "Replies from an upstream that matched no query in flight (late, or forged); each retires its socket.",
    );
    for &to in &targets {
        let value = sum(to, &|u| u.unmatched_replies.load(Relaxed));
        out.sample(
            "signpost_forward_unmatched_replies_total",
            &[("to", &to)],
            value,
        );
    }

    for (name, help, value) in [
        (
            "coredns_forward_healthcheck_broken_total",
            "Counter of the number of complete failures of the healthchecks.",
            servers
                .iter()
                .map(|s| s.health_check_broken.load(Relaxed))
                .sum::<u64>(),
        ),
        (
            "coredns_forward_max_concurrent_rejects_total",
            "Counter of the number of queries rejected because the concurrent queries were at maximum.",
            servers
                .iter()
                .map(|s| s.max_concurrent_rejects.load(Relaxed))
                .sum(),
        ),
    ] {
        out.family(name, Kind::Counter, help);
        out.sample(name, &[], value);
    }
}
