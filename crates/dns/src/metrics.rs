//! Query metrics with CoreDNS's names and labels, recorded without locks.
//!
//! Data plane writes, admin plane reads. Every label comes from a closed set
//! fixed at start-up (server block zones, protocol, family, a fixed list of
//! query types, response codes), so each series is a slot in a flat array of
//! atomics. Each UDP worker owns a [`Shard`]; a scrape sums the shards. No
//! query ever takes a lock or allocates to be counted.

use signpost_model::metrics::{Exposition, Kind, Labels};
use signpost_proto::{rcode, rtype};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Query types with their own `type` label, as CoreDNS's `plugin/metrics/vars` lists them;
/// everything else is counted as `other`.
const TYPES: [(u16, &str); 18] = [
    (rtype::A, "A"),
    (rtype::NS, "NS"),
    (rtype::CNAME, "CNAME"),
    (rtype::SOA, "SOA"),
    (rtype::PTR, "PTR"),
    (rtype::MX, "MX"),
    (rtype::TXT, "TXT"),
    (rtype::AAAA, "AAAA"),
    (rtype::SRV, "SRV"),
    (35, "NAPTR"),
    (43, "DS"),
    (48, "DNSKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (257, "CAA"),
    (251, "IXFR"),
    (rtype::AXFR, "AXFR"),
    (rtype::ANY, "ANY"),
];
const TYPE_LABELS: usize = TYPES.len() + 1;

const RCODES: [(u16, &str); 7] = [
    (rcode::NOERROR, "NOERROR"),
    (rcode::FORMERR, "FORMERR"),
    (rcode::SERVFAIL, "SERVFAIL"),
    (rcode::NXDOMAIN, "NXDOMAIN"),
    (rcode::NOTIMP, "NOTIMP"),
    (rcode::REFUSED, "REFUSED"),
    (rcode::BADVERS, "BADVERS"),
];
const RCODE_LABELS: usize = RCODES.len() + 1;

/// Which plugin wrote the response (`plugin` label of `coredns_dns_responses_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    /// The server itself (malformed queries, REFUSED).
    Server = 0,
    /// Authoritative data: the `kubernetes` and `file` plugins.
    Kubernetes = 1,
    /// The `cache` plugin.
    Cache = 2,
    /// The `forward` plugin.
    Forward = 3,
}
const RESPONDERS: [&str; 4] = ["", "kubernetes", "cache", "forward"];

/// Transport of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp = 0,
    /// TCP.
    Tcp = 1,
}
const PROTOCOLS: [&str; 2] = ["udp", "tcp"];

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
/// CoreDNS's size buckets in bytes.
const SIZE_BUCKETS: [u64; 14] = [
    0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000,
];

/// One finished exchange, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Index of the matched server-block zone (the last index is "no zone").
    pub zone: usize,
    /// Transport.
    pub transport: Transport,
    /// True for IPv6 clients (`family` label 2).
    pub ipv6: bool,
    /// Query type.
    pub qtype: u16,
    /// Response code, extended codes included.
    pub rcode: u16,
    /// Who answered.
    pub responder: Responder,
    /// Query size in bytes.
    pub request_size: usize,
    /// Response size in bytes.
    pub response_size: usize,
    /// Time from receipt to the answer being ready.
    pub duration: Duration,
}

/// Counters for one worker.
#[derive(Debug)]
pub struct Shard {
    zones: usize,
    requests: Box<[AtomicU64]>,
    responses: Box<[AtomicU64]>,
    duration: Box<[AtomicU64]>,
    request_size: Box<[AtomicU64]>,
    response_size: Box<[AtomicU64]>,
}

/// Histogram slots: buckets, then count, then sum.
const fn histogram_width(buckets: usize) -> usize {
    buckets + 2
}

fn atomics(len: usize) -> Box<[AtomicU64]> {
    (0..len).map(|_| AtomicU64::new(0)).collect()
}

// === impl Shard ===

impl Shard {
    fn new(zones: usize) -> Self {
        Self {
            zones,
            requests: atomics(zones * 2 * 2 * TYPE_LABELS),
            responses: atomics(zones * RCODE_LABELS * RESPONDERS.len()),
            duration: atomics(zones * TYPE_LABELS * histogram_width(DURATION_BUCKETS_NANOS.len())),
            request_size: atomics(zones * 2 * histogram_width(SIZE_BUCKETS.len())),
            response_size: atomics(zones * 2 * histogram_width(SIZE_BUCKETS.len())),
        }
    }

    /// Counts one exchange.
    pub fn observe(&self, o: &Observation) {
        let zone = o.zone.min(self.zones - 1);
        let type_index = type_index(o.qtype);
        let proto = o.transport as usize;
        let family = usize::from(o.ipv6);
        self.requests[((zone * 2 + proto) * 2 + family) * TYPE_LABELS + type_index]
            .fetch_add(1, Relaxed);
        self.responses[(zone * RCODE_LABELS + rcode_index(o.rcode)) * RESPONDERS.len()
            + o.responder as usize]
            .fetch_add(1, Relaxed);
        let nanos = u64::try_from(o.duration.as_nanos()).unwrap_or(u64::MAX);
        observe_histogram(
            &self.duration,
            zone * TYPE_LABELS + type_index,
            &DURATION_BUCKETS_NANOS,
            nanos,
        );
        observe_histogram(
            &self.request_size,
            zone * 2 + proto,
            &SIZE_BUCKETS,
            o.request_size as u64,
        );
        observe_histogram(
            &self.response_size,
            zone * 2 + proto,
            &SIZE_BUCKETS,
            o.response_size as u64,
        );
    }
}

fn observe_histogram(slots: &[AtomicU64], series: usize, buckets: &[u64], value: u64) {
    let base = series * histogram_width(buckets.len());
    // Cumulative buckets are formed at scrape time; here only the first bucket that holds the value counts.
    if let Some(bucket) = buckets.iter().position(|&bound| value <= bound) {
        slots[base + bucket].fetch_add(1, Relaxed);
    }
    slots[base + buckets.len()].fetch_add(1, Relaxed);
    slots[base + buckets.len() + 1].fetch_add(value, Relaxed);
}

fn type_index(qtype: u16) -> usize {
    TYPES
        .iter()
        .position(|(t, _)| *t == qtype)
        .unwrap_or(TYPES.len())
}

fn rcode_index(code: u16) -> usize {
    RCODES
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(RCODES.len())
}

/// The metrics of one listener (`server` label), with one shard per worker.
#[derive(Debug)]
pub struct ServerMetrics {
    server: String,
    zones: Vec<String>,
    shards: Vec<Arc<Shard>>,
}

// === impl ServerMetrics ===

impl ServerMetrics {
    /// Metrics for `server` (like `dns://127.0.0.1:5353`) with its server-block zones.
    pub fn new(server: String, mut zones: Vec<String>) -> Self {
        // The last zone slot counts queries that matched no zone.
        zones.push("dropped".to_owned());
        Self {
            server,
            zones,
            shards: Vec::new(),
        }
    }

    /// A new shard for one worker.
    pub fn shard(&mut self) -> Arc<Shard> {
        let shard = Arc::new(Shard::new(self.zones.len()));
        self.shards.push(shard.clone());
        shard
    }

    /// The server-block zone labels (without the `dropped` slot).
    pub fn zone_labels(&self) -> &[String] {
        &self.zones[..self.zones.len() - 1]
    }

    /// Every shard created so far.
    pub fn shards(&self) -> &[Arc<Shard>] {
        &self.shards
    }

    /// The zone slot for queries matching no server block.
    pub fn dropped_zone(&self) -> usize {
        self.zones.len() - 1
    }

    fn sum(&self, pick: impl Fn(&Shard) -> &[AtomicU64], index: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| pick(s)[index].load(Relaxed))
            .sum()
    }

    fn render_counters(&self, out: &mut Exposition<'_>) {
        for (z, zone) in self.zones.iter().enumerate() {
            for (p, proto) in PROTOCOLS.iter().enumerate() {
                for family in 0..2 {
                    for t in 0..TYPE_LABELS {
                        let value = self.sum(
                            |s| &s.requests,
                            ((z * 2 + p) * 2 + family) * TYPE_LABELS + t,
                        );
                        if value > 0 {
                            out.sample(
                                "coredns_dns_requests_total",
                                &[
                                    ("server", &self.server),
                                    ("zone", zone),
                                    ("view", &""),
                                    ("proto", proto),
                                    ("family", &(family + 1)),
                                    ("type", &type_name(t)),
                                ],
                                value,
                            );
                        }
                    }
                }
            }
        }
    }

    fn render_responses(&self, out: &mut Exposition<'_>) {
        for (z, zone) in self.zones.iter().enumerate() {
            for r in 0..RCODE_LABELS {
                for (p, plugin) in RESPONDERS.iter().enumerate() {
                    let value = self.sum(
                        |s| &s.responses,
                        (z * RCODE_LABELS + r) * RESPONDERS.len() + p,
                    );
                    if value > 0 {
                        out.sample(
                            "coredns_dns_responses_total",
                            &[
                                ("server", &self.server),
                                ("zone", zone),
                                ("view", &""),
                                ("rcode", &RCODES.get(r).map_or("other", |(_, n)| n)),
                                ("plugin", plugin),
                            ],
                            value,
                        );
                    }
                }
            }
        }
    }

    /// One histogram series per `(slot, labels)`, skipping empty ones.
    fn render_histogram(
        &self,
        out: &mut Exposition<'_>,
        name: &str,
        pick: impl Fn(&Shard) -> &[AtomicU64] + Copy,
        buckets: &[u64],
        scale: f64,
        series: &[(usize, Labels<'_>)],
    ) {
        let width = histogram_width(buckets.len());
        for (index, labels) in series {
            let base = index * width;
            let count = self.sum(pick, base + buckets.len());
            if count == 0 {
                continue;
            }
            let counts = buckets
                .iter()
                .enumerate()
                .map(|(b, bound)| (*bound as f64 / scale, self.sum(pick, base + b)));
            let sum = self.sum(pick, base + buckets.len() + 1) as f64 / scale;
            out.histogram(name, labels, counts, count, sum);
        }
    }
}

fn type_name(index: usize) -> &'static str {
    TYPES.get(index).map_or("other", |(_, n)| n)
}

/// Renders the Prometheus text exposition for all listeners.
pub fn render(servers: &[Arc<ServerMetrics>], out: &mut String) {
    let out = &mut Exposition::new(out);
    out.family(
        "coredns_dns_requests_total",
        Kind::Counter,
        "Counter of DNS requests made per zone, protocol and family.",
    );
    for s in servers {
        s.render_counters(out);
    }
    out.family(
        "coredns_dns_responses_total",
        Kind::Counter,
        "Counter of response status codes.",
    );
    for s in servers {
        s.render_responses(out);
    }
    out.family(
        "coredns_dns_request_duration_seconds",
        Kind::Histogram,
        "Histogram of the time (in seconds) each request took.",
    );
    for s in servers {
        let names: Vec<(&str, &str)> = (0..s.zones.len())
            .flat_map(|z| (0..TYPE_LABELS).map(move |t| (z, t)))
            .map(|(z, t)| (s.zones[z].as_str(), type_name(t)))
            .collect();
        let labels: Vec<[(&str, &dyn std::fmt::Display); 4]> = names
            .iter()
            .map(|(zone, qtype)| {
                [
                    ("server", &s.server as &dyn std::fmt::Display),
                    ("zone", zone),
                    ("view", &""),
                    ("type", qtype),
                ]
            })
            .collect();
        let series: Vec<(usize, Labels<'_>)> = labels
            .iter()
            .enumerate()
            .map(|(index, labels)| (index, labels.as_slice()))
            .collect();
        s.render_histogram(
            out,
            "coredns_dns_request_duration_seconds",
            |x| &x.duration,
            &DURATION_BUCKETS_NANOS,
            1e9,
            &series,
        );
    }
    for (name, help, is_request) in [
        (
            "coredns_dns_request_size_bytes",
            "Size of the EDNS0 UDP buffer in bytes (64K for TCP).",
            true,
        ),
        (
            "coredns_dns_response_size_bytes",
            "Size of the returned response in bytes.",
            false,
        ),
    ] {
        out.family(name, Kind::Histogram, help);
        for s in servers {
            let names: Vec<(&str, &str)> = (0..s.zones.len())
                .flat_map(|z| (0..2).map(move |p| (z, p)))
                .map(|(z, p)| (s.zones[z].as_str(), PROTOCOLS[p]))
                .collect();
            let labels: Vec<[(&str, &dyn std::fmt::Display); 4]> = names
                .iter()
                .map(|(zone, proto)| {
                    [
                        ("server", &s.server as &dyn std::fmt::Display),
                        ("zone", zone),
                        ("view", &""),
                        ("proto", proto),
                    ]
                })
                .collect();
            let series: Vec<(usize, Labels<'_>)> = labels
                .iter()
                .enumerate()
                .map(|(index, labels)| (index, labels.as_slice()))
                .collect();
            if is_request {
                s.render_histogram(out, name, |x| &x.request_size, &SIZE_BUCKETS, 1.0, &series);
            } else {
                s.render_histogram(out, name, |x| &x.response_size, &SIZE_BUCKETS, 1.0, &series);
            }
        }
    }
}
