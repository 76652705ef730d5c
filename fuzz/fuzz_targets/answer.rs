//! Fuzzes the whole synchronous answer path over a small cluster zone.
//!
//! Proves: for any datagram, parse + lookup + write never panics, and any
//! answer written is within the transport's limit (512..=1232 over UDP per
//! RFC 6891 §6.2.5, 65535 over TCP per RFC 1035 §4.2.2) and parses with
//! hickory-proto with the query's ID and question. The zone holds a
//! ClusterIP, an ExternalName, a large headless service (so UDP answers
//! truncate) and insecure pod records (so synthesized answers are covered).

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_fuzz::{Expected, check_answer};
use signpost_proto::{
    CLASS_IN, MAX_TCP_MESSAGE, Name, parse_query, rcode, rtype, write_error, write_response,
};
use signpost_zone::cluster::{self, ClusterOptions};
use signpost_model::{ClusterEndpoint, ClusterService, Protocol, ServiceKind, ServicePort};
use signpost_zone::{Lookup, PodMode, Snapshot, SnapshotBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

fn port(name: &str, protocol: Protocol, number: u16) -> ServicePort {
    ServicePort {
        name: name.to_owned(),
        protocol,
        port: number,
    }
}

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let https = port("https", Protocol::Tcp, 443);
        let kubernetes = ClusterService {
            namespace: "default".to_owned(),
            name: "kubernetes".to_owned(),
            kind: ServiceKind::ClusterIp(vec![
                IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            ]),
            ports: vec![https.clone()],
            endpoints: vec![ClusterEndpoint {
                addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 49, 2))],
                hostname: None,
                pod_name: None,
                ready: true,
                ports: vec![port("https", Protocol::Tcp, 6443)].into(),
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
                ports: vec![db_port.clone(), port("metrics", Protocol::Udp, 9187)].into(),
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
        let zones = ["cluster.local", "10.in-addr.arpa", "ip6.arpa"]
            .map(|z| Name::from_ascii(z).expect("valid literal"))
            .to_vec();
        let options = ClusterOptions {
            zones,
            ttl: cluster::DEFAULT_TTL,
            pods: PodMode::Insecure,
            endpoint_pod_names: false,
            fallthrough: vec![Name::from_ascii("ip6.arpa").expect("valid literal")],
            serial: 1,
            all_unhealthy: Default::default(),
        };
        let mut builder = SnapshotBuilder::new(1);
        let problems = cluster::compile(&mut builder, &[kubernetes, db, external], &options);
        assert!(problems.is_empty(), "{problems:?}");
        builder.build()
    })
}

fuzz_target!(|packet: &[u8]| {
    let Ok(query) = parse_query(packet) else {
        return; // header-only answers are covered by the parse_query target
    };
    let snapshot = snapshot();
    let mut out = vec![0u8; MAX_TCP_MESSAGE];
    for limit in [query.udp_limit(), MAX_TCP_MESSAGE] {
        // The same decisions as the server's `Responder::respond`.
        let (meta, code) = if query.edns.is_some_and(|e| e.version > 0) {
            (
                write_error(&query, rcode::BADVERS, &mut out),
                rcode::BADVERS,
            )
        } else if query.qclass != CLASS_IN || matches!(query.qtype, rtype::AXFR | 251) {
            (
                write_error(&query, rcode::REFUSED, &mut out),
                rcode::REFUSED,
            )
        } else {
            match snapshot.lookup(query.qname_lower(), query.qtype) {
                Lookup::Answer(view) => (write_response(&query, view, &mut out, limit), view.rcode),
                Lookup::Geo(name, aaaa) => {
                    let view = name.answer(None, aaaa);
                    (write_response(&query, view, &mut out, limit), view.rcode)
                }
                Lookup::Pod(pod) => {
                    let mut scratch = [0u8; 32];
                    let view = pod.render(&mut scratch);
                    (write_response(&query, view, &mut out, limit), view.rcode)
                }
                Lookup::Fallthrough | Lookup::NotAuthoritative => (
                    write_error(&query, rcode::REFUSED, &mut out),
                    rcode::REFUSED,
                ),
            }
        };
        check_answer(
            packet,
            &query,
            &out[..meta.len],
            meta,
            Expected { limit, rcode: code },
        );
    }
});
