//! Allocation budget of the hot path (design.md, "The hot path"): after
//! warm-up, answering an authoritative query allocates nothing. A counting
//! global allocator wraps the system one; the test drives the same
//! `Responder::answer` the UDP workers call, including the snapshot load and
//! the metrics, for positive answers, NODATA, NXDOMAIN, pod records, REFUSED
//! and FORMERR, and SkyDNS (`etcd`) names with `*` and `any` wildcards.

// The counting allocator needs `unsafe`; it only forwards to `System`.
#![allow(unsafe_code)]

use arc_swap::ArcSwap;
use signpost_dns::answer::{Outcome, Responder};
use signpost_dns::exchange::Exchange;
use signpost_dns::metrics::{ServerMetrics, Transport};
use signpost_dns::querylog::QueryLog;
use signpost_model::{ClusterEndpoint, ClusterService, Protocol, ServiceKind, ServicePort};
use signpost_proto::{Name, rdata, rtype};
use signpost_zone::cluster::{self, ClusterOptions};
use signpost_zone::skydns::{self, SkyOptions, SkyRecord};
use signpost_zone::{PodMode, SnapshotBuilder};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only the thread under test counts: the test harness's own threads may
    // allocate at any time. A const-initialized Cell needs no allocation.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut packet = vec![
        (id >> 8) as u8,
        id as u8,
        0x01,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        u8::from(edns),
    ];
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        packet.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]);
    }
    packet
}

fn snapshot() -> signpost_zone::Snapshot {
    let port = ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    let services = vec![
        ClusterService {
            namespace: "default".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec![
                "10.96.0.5".parse().unwrap(),
                "fd00::5".parse().unwrap(),
            ]),
            ports: vec![port.clone()],
            endpoints: vec![],
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        },
        ClusterService {
            namespace: "default".into(),
            name: "db".into(),
            kind: ServiceKind::Headless,
            ports: vec![port.clone()],
            endpoints: (0..3)
                .map(|i| ClusterEndpoint {
                    addresses: vec![format!("10.1.0.{i}").parse().unwrap()],
                    hostname: Some(format!("db-{i}")),
                    pod_name: None,
                    ready: true,
                    ports: vec![port.clone()].into(),
                })
                .collect(),
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        },
    ];
    let options = ClusterOptions {
        zones: vec![
            Name::from_ascii("cluster.local").unwrap(),
            Name::from_ascii("in-addr.arpa").unwrap(),
        ],
        ttl: 30,
        pods: PodMode::Insecure,
        endpoint_pod_names: false,
        fallthrough: vec![],
        serial: 1,
        all_unhealthy: Default::default(),
    };
    let mut builder = SnapshotBuilder::new(1);
    assert!(cluster::compile(&mut builder, &services, &options).is_empty());
    // A file-style zone with a wildcard and a zone cut: the missing-name walk.
    let apex = Name::from_ascii("example.test").unwrap();
    builder.add_file_zone(apex.clone(), Vec::new());
    let ns = Name::from_ascii("ns.example.test").unwrap();
    let soa = rdata::soa(&ns, &apex, 1, [7200, 1800, 86400, 60]);
    let records = [
        ("example.test", rtype::SOA, soa),
        ("example.test", rtype::NS, rdata::name(&ns)),
        (
            "ns.example.test",
            rtype::A,
            rdata::a("192.0.2.1".parse().unwrap()),
        ),
        (
            "*.wild.example.test",
            rtype::A,
            rdata::a("192.0.2.9".parse().unwrap()),
        ),
        (
            "sub.example.test",
            rtype::NS,
            rdata::name(&Name::from_ascii("ns.sub.example.test").unwrap()),
        ),
        (
            "ns.sub.example.test",
            rtype::A,
            rdata::a("192.0.2.53".parse().unwrap()),
        ),
    ];
    for (owner, rr_type, data) in records {
        builder
            .add_record(Name::from_ascii(owner).unwrap(), rr_type, 300, data)
            .unwrap();
    }
    // A SkyDNS zone (the `etcd` plugin): wildcards are rewritten on the stack.
    let sky: Vec<SkyRecord> = [
        (
            "/skydns/test/skydns/region1/prod/a",
            r#"{"host":"10.0.0.1","port":80}"#,
        ),
        (
            "/skydns/test/skydns/region1/prod/b",
            r#"{"host":"10.0.0.2","port":80}"#,
        ),
    ]
    .iter()
    .map(|(key, value)| SkyRecord::parse("/skydns/", key, value.as_bytes(), None).unwrap())
    .collect();
    let sky_options = SkyOptions {
        zones: vec![Name::from_ascii("skydns.test").unwrap()],
        fallthrough: Vec::new(),
        min_lease_ttl: 30,
        max_lease_ttl: 86400,
    };
    skydns::compile(&mut builder, &sky, &sky_options, 1);
    builder.build()
}

/// Zero allocations per authoritative answer after warm-up.
#[test]
fn authoritative_answers_do_not_allocate() {
    let zones = [
        Name::from_ascii("cluster.local").unwrap(),
        Name::from_ascii("in-addr.arpa").unwrap(),
        Name::from_ascii("example.test").unwrap(),
        Name::from_ascii("skydns.test").unwrap(),
    ];
    let mut metrics = ServerMetrics::new(
        "dns://test".into(),
        zones.iter().map(ToString::to_string).collect(),
    );
    let shard = metrics.shard();
    let responder = Responder::new(
        Arc::new(ArcSwap::from_pointee(snapshot())),
        &zones,
        metrics.dropped_zone(),
        false,
    )
    // `loadbalance` rotates records in place: still no allocation.
    .with_loadbalance(true);
    let queries = [
        query(1, "web.default.svc.cluster.local", 1, false),
        query(2, "WEB.Default.svc.cluster.local", 28, true),
        query(3, "_http._tcp.db.default.svc.cluster.local", 33, true),
        query(4, "db-1.db.default.svc.cluster.local", 1, false),
        query(5, "missing.default.svc.cluster.local", 1, true),
        query(6, "default.svc.cluster.local", 1, false),
        query(7, "10-1-2-3.default.pod.cluster.local", 1, false),
        query(8, "5.0.96.10.in-addr.arpa", 12, false),
        query(9, "example.com", 1, false),
        query(10, "dns-version.cluster.local", 16, true),
        query(12, "a.b.wild.example.test", 1, true),
        query(13, "host.sub.example.test", 1, false),
        query(14, "missing.example.test", 28, true),
        query(15, "prod.region1.skydns.test", 33, true),
        query(16, "prod.*.skydns.test", 1, false),
        query(17, "prod.ANY.skydns.test", 33, true),
        query(18, "nothing.*.skydns.test", 1, false),
        query(19, "missing.skydns.test", 1, false),
    ];
    let mut malformed = query(11, "web.default.svc.cluster.local", 1, false);
    malformed[5] = 2; // QDCOUNT 2: FORMERR
    let mut out = vec![0u8; 65535];
    let mut log = QueryLog::default();
    let exchange = Exchange {
        client: "127.0.0.1:5000".parse().unwrap(),
        transport: Transport::Udp,
        shard: &shard,
        received: tokio::time::Instant::now(),
    };
    let run = |out: &mut Vec<u8>, log: &mut QueryLog| {
        let mut written = 0;
        for packet in queries.iter().chain([&malformed]) {
            let outcome = responder.answer(packet, out, exchange, log);
            let Outcome::Reply(len) = outcome else {
                panic!("no answer: {outcome:?}")
            };
            written += len;
        }
        written
    };
    // Warm-up: first use of thread-locals (arc-swap's debt list) may allocate.
    let expected = run(&mut out, &mut log);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..1000 {
        assert_eq!(run(&mut out, &mut log), expected);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations during 20,000 answers"
    );
}
