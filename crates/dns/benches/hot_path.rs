//! Micro-benchmarks of the query hot path: parse, lookup, encode, and the
//! whole `Responder::answer` the UDP workers call.
//!
//! Data plane only; no sockets. The snapshot is the cluster of `bench/dns`:
//! 10,000 ClusterIP services in 100 namespaces plus 1,000 headless services
//! with 5 endpoints each, every service with two named TCP ports, compiled
//! with `cluster::compile` exactly as the server does. Lookups cycle through
//! 1,024 different names so the hash table is not read from one hot line.
//!
//! ```text
//! cargo bench -p signpost-dns --bench hot_path            # all groups
//! cargo bench -p signpost-dns --bench hot_path -- lookup  # one group
//! ```

#![allow(missing_docs)]

use arc_swap::ArcSwap;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use signpost_dns::answer::{Outcome, Responder};
use signpost_dns::exchange::Exchange;
use signpost_dns::metrics::{ServerMetrics, Transport};
use signpost_dns::querylog::QueryLog;
use signpost_model::{ClusterEndpoint, ClusterService, Protocol, ServiceKind, ServicePort};
use signpost_proto::{Name, parse_query, rtype, write_response};
use signpost_zone::cluster::{self, ClusterOptions};
use signpost_zone::{Lookup, PodMode, Snapshot, SnapshotBuilder};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

const NAMESPACES: usize = 100;
const SERVICES_PER_NAMESPACE: usize = 100;
const HEADLESS: usize = 1_000;
const ENDPOINTS_PER_HEADLESS: usize = 5;
/// Distinct names each lookup benchmark cycles through.
const ROTATION: usize = 1_024;

fn ports() -> Vec<ServicePort> {
    vec![
        ServicePort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        },
        ServicePort {
            name: "grpc".into(),
            protocol: Protocol::Tcp,
            port: 9090,
        },
    ]
}

/// The cluster of `bench/dns/gen.py`, as `ClusterService`s.
fn services() -> Vec<ClusterService> {
    let mut services = Vec::with_capacity(NAMESPACES * SERVICES_PER_NAMESPACE + HEADLESS);
    for n in 0..NAMESPACES {
        for s in 0..SERVICES_PER_NAMESPACE {
            let index = n * SERVICES_PER_NAMESPACE + s;
            let address = Ipv4Addr::new(10, 96, (index / 250) as u8, (index % 250 + 1) as u8);
            services.push(ClusterService {
                namespace: format!("ns-{n:03}"),
                name: format!("svc-{s:03}"),
                kind: ServiceKind::ClusterIp(vec![IpAddr::V4(address)]),
                ports: ports(),
                endpoints: Vec::new(),
                publish_not_ready: false,
                health_check: None,
                geo: None,
                external_addresses: Vec::new(),
            });
        }
    }
    for h in 0..HEADLESS {
        services.push(ClusterService {
            namespace: format!("ns-{:03}", h % NAMESPACES),
            name: format!("db-{h:04}"),
            kind: ServiceKind::Headless,
            ports: ports(),
            endpoints: (0..ENDPOINTS_PER_HEADLESS)
                .map(|e| ClusterEndpoint {
                    addresses: vec![IpAddr::V4(Ipv4Addr::new(
                        10,
                        (100 + h / 250) as u8,
                        (h % 250) as u8,
                        (e + 1) as u8,
                    ))],
                    hostname: None,
                    pod_name: None,
                    ready: true,
                    ports: ports().into(),
                })
                .collect(),
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        });
    }
    services
}

fn snapshot() -> Snapshot {
    let options = ClusterOptions {
        zones: vec![Name::from_ascii("cluster.local").expect("valid zone")],
        ttl: cluster::DEFAULT_TTL,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        fallthrough: Vec::new(),
        serial: 1,
        all_unhealthy: Default::default(),
    };
    let mut builder = SnapshotBuilder::new(1);
    let problems = cluster::compile(&mut builder, &services(), &options);
    assert!(problems.is_empty(), "{problems:?}");
    builder.build()
}

/// A query datagram with EDNS (4096 bytes), as dnsperf `-e` sends it.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut packet = vec![(id >> 8) as u8, id as u8, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    packet
}

fn cluster_ip_name(i: usize) -> String {
    let index = (i * 7_919) % (NAMESPACES * SERVICES_PER_NAMESPACE);
    format!(
        "svc-{:03}.ns-{:03}.svc.cluster.local",
        index % SERVICES_PER_NAMESPACE,
        index / SERVICES_PER_NAMESPACE
    )
}

fn headless_name(i: usize) -> String {
    let h = (i * 7_919) % HEADLESS;
    format!("db-{h:04}.ns-{:03}.svc.cluster.local", h % NAMESPACES)
}

/// Query packets for one kind of question, `ROTATION` different names.
fn packets(name: impl Fn(usize) -> String, qtype: u16) -> Vec<Vec<u8>> {
    (0..ROTATION)
        .map(|i| query(i as u16, &name(i), qtype))
        .collect()
}

struct Mix {
    label: &'static str,
    packets: Vec<Vec<u8>>,
}

fn mixes() -> Vec<Mix> {
    vec![
        Mix {
            label: "a_cluster_ip",
            packets: packets(cluster_ip_name, rtype::A),
        },
        Mix {
            label: "a_headless_5",
            packets: packets(headless_name, rtype::A),
        },
        Mix {
            label: "srv_cluster_ip",
            packets: packets(|i| format!("_http._tcp.{}", cluster_ip_name(i)), rtype::SRV),
        },
        Mix {
            label: "aaaa_nodata",
            packets: packets(cluster_ip_name, rtype::AAAA),
        },
        Mix {
            label: "nxdomain",
            packets: packets(
                |i| format!("missing-{i}.ns-{:03}.svc.cluster.local", i % NAMESPACES),
                rtype::A,
            ),
        },
    ]
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for mix in mixes() {
        let mut i = 0;
        group.bench_function(mix.label, |b| {
            b.iter(|| {
                i = (i + 1) % ROTATION;
                let query = parse_query(black_box(&mix.packets[i])).expect("valid query");
                black_box(query.qtype)
            })
        });
    }
    group.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let snapshot = snapshot();
    let mut group = c.benchmark_group("lookup");
    for mix in mixes() {
        // The lower-case wire qname and qtype, as the responder passes them.
        let questions: Vec<(Vec<u8>, u16)> = mix
            .packets
            .iter()
            .map(|p| {
                let query = parse_query(p).expect("valid query");
                (query.qname_lower().to_vec(), query.qtype)
            })
            .collect();
        let mut i = 0;
        group.bench_function(mix.label, |b| {
            b.iter(|| {
                i = (i + 1) % ROTATION;
                let (qname, qtype) = &questions[i];
                match snapshot.lookup(black_box(qname), *qtype) {
                    Lookup::Answer(view) => black_box(view.answer_count),
                    other => panic!("not an answer: {other:?}"),
                }
            })
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let snapshot = snapshot();
    let mut out = vec![0u8; 65_535];
    let mut group = c.benchmark_group("encode");
    for mix in mixes() {
        let packet = &mix.packets[0];
        let query = parse_query(packet).expect("valid query");
        let Lookup::Answer(view) = snapshot.lookup(query.qname_lower(), query.qtype) else {
            panic!("{}: not an answer", mix.label);
        };
        let limit = query.udp_limit();
        group.bench_function(mix.label, |b| {
            b.iter(|| write_response(black_box(&query), black_box(view), &mut out, limit).len)
        });
    }
    group.finish();
}

fn bench_answer(c: &mut Criterion) {
    let zones = [Name::from_ascii("cluster.local").expect("valid zone")];
    let mut metrics = ServerMetrics::new("dns://bench".into(), vec!["cluster.local.".into()]);
    let shard = metrics.shard();
    let responder = Responder::new(
        Arc::new(ArcSwap::from_pointee(snapshot())),
        &zones,
        metrics.dropped_zone(),
        false,
    );
    let exchange = Exchange {
        client: "127.0.0.1:5300".parse().expect("valid address"),
        transport: Transport::Udp,
        shard: &shard,
        received: tokio::time::Instant::now(),
    };
    let mut log = QueryLog::default();
    let mut out = vec![0u8; 65_535];
    let mut group = c.benchmark_group("answer");
    for mix in mixes() {
        let mut i = 0;
        group.bench_function(mix.label, |b| {
            b.iter(|| {
                i = (i + 1) % ROTATION;
                match responder.answer(black_box(&mix.packets[i]), &mut out, exchange, &mut log) {
                    Outcome::Reply(len) => len,
                    other => panic!("no reply: {other:?}"),
                }
            })
        });
    }
    group.finish();
    // Building a snapshot of this cluster (control plane), for scale.
    let services = services();
    let options = ClusterOptions {
        zones: zones.to_vec(),
        ttl: cluster::DEFAULT_TTL,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        fallthrough: Vec::new(),
        serial: 1,
        all_unhealthy: Default::default(),
    };
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("compile_11k_services", |b| {
        b.iter_batched(
            || SnapshotBuilder::new(1),
            |mut builder| {
                cluster::compile(&mut builder, &services, &options);
                builder.build().name_count()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_lookup,
    bench_encode,
    bench_answer
);
criterion_main!(benches);
