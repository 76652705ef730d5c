//! Fuzzes the real answer path, `signpost_dns::answer::Responder::answer`
//! (what the UDP workers and TCP connections call), over a cluster zone, a
//! zone file and a SkyDNS zone.
//!
//! Proves, for any datagram, over UDP and TCP: no panic; and the reply is
//! what an independent reading of the datagram says it must be
//! (`signpost_fuzz::classify`, written from RFC 1035 §4.1, RFC 9619, RFC
//! 6891 and RFC 7871 without signpost's parser): no reply to a datagram
//! shorter than a header or to a response; a header-only NOTIMP to another
//! opcode and FORMERR to a malformed message; otherwise an answer that
//! hickory-proto parses, with the query's ID, flags and question, within 512
//! bytes over UDP without OPT (the advertised size, 512 to 1232, with one;
//! 65535 over TCP), an OPT exactly when the query had one, and an RCODE that
//! follows from the query: BADVERS for an EDNS version above 0, REFUSED (or
//! NOTIMP) for another class or a zone transfer, REFUSED for a name in no
//! zone of the server, NOERROR or NXDOMAIN (or REFUSED where `fallthrough`
//! sends it on) for a name in one.
//!
//! The zone holds a dual-stack ClusterIP, an ExternalName, a 120-endpoint
//! headless service (so UDP answers truncate), a 40-endpoint one (its A
//! answer fits 1232 bytes but not 512), insecure pod records, a zone
//! file with a wildcard and a delegation, and SkyDNS records.

#![no_main]

use arc_swap::ArcSwap;
use libfuzzer_sys::fuzz_target;
use signpost_dns::answer::{Outcome, Responder};
use signpost_dns::exchange::Exchange;
use signpost_dns::metrics::{ServerMetrics, Shard, Transport};
use signpost_dns::querylog::QueryLog;
use signpost_fuzz::{Expectation, check_header_only, check_reply, classify};
use signpost_model::{ClusterEndpoint, ClusterService, Protocol, ServiceKind, ServicePort};
use signpost_proto::{MAX_TCP_MESSAGE, Name, rcode, rdata, rtype};
use signpost_zone::cluster::{self, ClusterOptions};
use signpost_zone::skydns::{self, SkyOptions, SkyRecord};
use signpost_zone::{PodMode, Snapshot, SnapshotBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

/// The zones the responder serves, as labels.
const ZONES: [&[&str]; 5] = [
    &["cluster", "local"],
    &["10", "in-addr", "arpa"],
    &["ip6", "arpa"],
    &["example", "test"],
    &["skydns", "test"],
];

/// Where the cluster zone falls through (to a forwarder this server lacks).
const FALLTHROUGH: &[&str] = &["ip6", "arpa"];

struct Fixture {
    responder: Responder,
    shard: Arc<Shard>,
}

fn port(name: &str, protocol: Protocol, number: u16) -> ServicePort {
    ServicePort {
        name: name.to_owned(),
        protocol,
        port: number,
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("valid literal")
}

fn snapshot() -> Snapshot {
    let https = port("https", Protocol::Tcp, 443);
    let kubernetes = ClusterService {
        namespace: "default".to_owned(),
        name: "kubernetes".to_owned(),
        kind: ServiceKind::ClusterIp(vec![
            IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        ]),
        ports: vec![https],
        endpoints: vec![ClusterEndpoint {
            addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 49, 2))],
            hostname: None,
            pod_name: None,
            ready: true,
            ports: vec![port("https", Protocol::Tcp, 6443)],
        }],
        publish_not_ready: false,
        health_check: None,
        geo: None,
        external_addresses: Vec::new(),
    };
    let db_port = port("postgres", Protocol::Tcp, 5432);
    // 120 endpoints: A and SRV answers exceed every UDP limit.
    let endpoints = (0..120u8)
        .map(|i| ClusterEndpoint {
            addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 0, i))],
            hostname: Some(format!("db-{i}")),
            pod_name: None,
            ready: i % 7 != 0,
            ports: vec![db_port.clone(), port("metrics", Protocol::Udp, 9187)],
        })
        .collect();
    let db = ClusterService {
        namespace: "data".to_owned(),
        name: "db".to_owned(),
        kind: ServiceKind::Headless,
        ports: vec![db_port],
        endpoints,
        publish_not_ready: false,
        health_check: None,
        geo: None,
        external_addresses: Vec::new(),
    };
    // 40 endpoints: the A answer (about 700 bytes) fits the EDNS limit but
    // not 512, so the UDP limit a query carries decides between records
    // and TC.
    let cache = ClusterService {
        namespace: "data".to_owned(),
        name: "cache".to_owned(),
        kind: ServiceKind::Headless,
        ports: Vec::new(),
        endpoints: (1..=40u8)
            .map(|i| ClusterEndpoint {
                addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 2, 0, i))],
                hostname: None,
                pod_name: None,
                ready: true,
                ports: Vec::new(),
            })
            .collect(),
        publish_not_ready: false,
        health_check: None,
        geo: None,
        external_addresses: Vec::new(),
    };
    let external = ClusterService {
        namespace: "default".to_owned(),
        name: "search".to_owned(),
        kind: ServiceKind::ExternalName("www.example.com".to_owned()),
        ports: Vec::new(),
        endpoints: Vec::new(),
        publish_not_ready: false,
        health_check: None,
        geo: None,
        external_addresses: Vec::new(),
    };
    let options = ClusterOptions {
        zones: ["cluster.local", "10.in-addr.arpa", "ip6.arpa"]
            .map(name)
            .to_vec(),
        ttl: cluster::DEFAULT_TTL,
        pods: PodMode::Insecure,
        endpoint_pod_names: false,
        fallthrough: vec![name("ip6.arpa")],
        serial: 1,
        all_unhealthy: Default::default(),
    };
    let mut builder = SnapshotBuilder::new(1);
    let problems = cluster::compile(&mut builder, &[kubernetes, db, cache, external], &options);
    assert!(problems.is_empty(), "{problems:?}");

    // A zone file with a wildcard and a delegation (the missing-name walk).
    let apex = name("example.test");
    builder.add_file_zone(apex.clone(), Vec::new());
    let ns = name("ns.example.test");
    let records = [
        (
            "example.test",
            rtype::SOA,
            rdata::soa(&ns, &apex, 1, [7200, 1800, 86400, 60]),
        ),
        ("example.test", rtype::NS, rdata::name(&ns)),
        ("ns.example.test", rtype::A, rdata::a(Ipv4Addr::new(192, 0, 2, 1))),
        ("*.wild.example.test", rtype::A, rdata::a(Ipv4Addr::new(192, 0, 2, 9))),
        ("sub.example.test", rtype::NS, rdata::name(&name("ns.sub.example.test"))),
        ("ns.sub.example.test", rtype::A, rdata::a(Ipv4Addr::new(192, 0, 2, 53))),
    ];
    for (owner, rr_type, data) in records {
        builder
            .add_record(name(owner), rr_type, 300, data)
            .expect("valid record");
    }

    // SkyDNS records (the `etcd` plugin), wildcards answered on the stack.
    let sky: Vec<SkyRecord> = [
        ("/skydns/test/skydns/region1/prod/a", r#"{"host":"10.0.0.1","port":80}"#),
        ("/skydns/test/skydns/region1/prod/b", r#"{"host":"10.0.0.2","port":80}"#),
        ("/skydns/test/skydns/region1/mail", r#"{"host":"mx.example.net","mail":true,"priority":10}"#),
    ]
    .iter()
    .map(|(key, value)| SkyRecord::parse("/skydns/", key, value.as_bytes(), None).expect("valid"))
    .collect();
    let sky_options = SkyOptions {
        zones: vec![name("skydns.test")],
        fallthrough: Vec::new(),
        min_lease_ttl: 30,
        max_lease_ttl: 86400,
    };
    skydns::compile(&mut builder, &sky, &sky_options, 1);
    builder.build()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let zones: Vec<Name> = ZONES.iter().map(|labels| name(&labels.join("."))).collect();
        let mut metrics = ServerMetrics::new(
            "dns://fuzz".to_owned(),
            zones.iter().map(ToString::to_string).collect(),
        );
        let shard = metrics.shard();
        let responder = Responder::new(
            Arc::new(ArcSwap::from_pointee(snapshot())),
            &zones,
            metrics.dropped_zone(),
            false,
        )
        .with_shards(vec![shard.clone(), shard.clone()]);
        Fixture { responder, shard }
    })
}

/// The RCODEs a well-formed query may get, from the query alone.
fn allowed_rcodes(question: &signpost_fuzz::Question) -> &'static [u16] {
    // RFC 6891 §6.1.3: a version this server does not implement.
    if question.opt.is_some_and(|opt| opt.version > 0) {
        return &[rcode::BADVERS];
    }
    // Another class, or a zone transfer on the answer path (transfers are
    // served apart, over TCP): refused or not implemented.
    if question.qclass != 1 || matches!(question.qtype, rtype::AXFR | 251) {
        return &[rcode::REFUSED, rcode::NOTIMP];
    }
    if !ZONES.iter().any(|zone| question.is_within(zone)) {
        return &[rcode::REFUSED];
    }
    if question.is_within(FALLTHROUGH) {
        return &[rcode::NOERROR, rcode::NXDOMAIN, rcode::REFUSED];
    }
    &[rcode::NOERROR, rcode::NXDOMAIN]
}

fuzz_target!(|packet: &[u8]| {
    let fixture = fixture();
    let expected = classify(packet);
    let mut out = vec![0u8; MAX_TCP_MESSAGE];
    let mut log = QueryLog::default();
    for transport in [Transport::Udp, Transport::Tcp] {
        let exchange = Exchange {
            client: "192.0.2.7:5300".parse().expect("valid literal"),
            transport,
            shard: &fixture.shard,
        };
        let outcome = fixture.responder.answer(packet, &mut out, exchange, &mut log);
        let reply = match (&expected, outcome) {
            (Expectation::Drop, Outcome::Drop) => continue,
            (_, Outcome::Reply(len)) => &out[..len],
            (expected, outcome) => panic!(
                "expected {expected:?}, the responder gave {outcome:?}\nquery {}",
                signpost_fuzz::hex(packet)
            ),
        };
        match &expected {
            Expectation::Drop => panic!(
                "a reply to a datagram that must get none\nquery {}\nreply {}",
                signpost_fuzz::hex(packet),
                signpost_fuzz::hex(reply)
            ),
            Expectation::NotImp => check_header_only(packet, reply, 4),
            Expectation::FormErr(_) => check_header_only(packet, reply, 1),
            Expectation::Answer(question) => {
                let udp = transport == Transport::Udp;
                let limit = if udp {
                    question.udp_limit()
                } else {
                    MAX_TCP_MESSAGE
                };
                check_reply(packet, question, reply, limit, udp, allowed_rcodes(question));
            }
        }
    }
});
