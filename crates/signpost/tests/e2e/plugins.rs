//! CoreDNS plugins around the zones: `reload`, `hosts`, `loadbalance`
//! (issue 3, point 4 and "What to build").

use crate::fixtures::assert_answer;
use crate::support::{REPLY_LIMIT, TestServer, query_bytes, render};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

const WEB: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.1.1
";

fn corefile(ttl: u32) -> String {
    format!(
        "cluster.local:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        catalog catalog
        ttl {ttl}
    }}
    reload 2s
    prometheus 127.0.0.1:{{ADMIN}}
    ready 127.0.0.1:{{ADMIN}}
}}
"
    )
}

/// CoreDNS `reload`: a changed Corefile applies while a client keeps
/// querying, and not one query goes unanswered; a broken Corefile keeps the
/// running configuration and counts a failure.
///
/// The client asks one query at a time with its own ID and waits for that
/// reply (up to [`REPLY_LIMIT`], far above loopback latency, so a loaded
/// machine slows it down but cannot fake a loss). It runs from before the
/// edit until it has seen [`AFTER_RELOAD`] answers with the new TTL, which
/// spans the swap and the old generation's retirement.
#[test]
fn reload_applies_changes_without_losing_a_query() {
    /// Answers with the new TTL the client must see before it stops.
    const AFTER_RELOAD: usize = 500;
    let server = TestServer::start_with(&corefile(30), &[("catalog/web.yaml", WEB)], true);
    let stop = Arc::new(AtomicBool::new(false));
    let old_ttl = Arc::new(AtomicUsize::new(0));
    let new_ttl = Arc::new(AtomicUsize::new(0));
    let address = server.addr();
    let load = {
        let (stop, old_ttl, new_ttl) = (stop.clone(), old_ttl.clone(), new_ttl.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.set_read_timeout(Some(REPLY_LIMIT)).expect("timeout");
            let mut buffer = [0u8; 512];
            // Bounded in count: the test stops it long before.
            for sent in 0..200_000u32 {
                if stop.load(Ordering::Relaxed) || new_ttl.load(Ordering::Relaxed) >= AFTER_RELOAD {
                    return Ok(sent as usize);
                }
                let mut query = query_bytes("web.shop.svc.cluster.local", RecordType::A, None);
                let id = (sent % 65_536) as u16;
                query[..2].copy_from_slice(&id.to_be_bytes());
                socket.send_to(&query, address).expect("send");
                let answer = loop {
                    let len = socket
                        .recv(&mut buffer)
                        .map_err(|e| format!("query {sent} unanswered: {e}"))?;
                    let answer = Message::from_vec(&buffer[..len]).expect("parse");
                    if answer.metadata.id == id {
                        break answer;
                    }
                };
                let ttl = match (answer.metadata.response_code, answer.answers.as_slice()) {
                    (ResponseCode::NoError, [record]) if matches!(record.data, RData::A(_)) => {
                        record.ttl
                    }
                    _ => return Err(format!("query {sent} got a wrong answer:\n{answer}")),
                };
                match ttl {
                    30 => old_ttl.fetch_add(1, Ordering::Relaxed),
                    7 => new_ttl.fetch_add(1, Ordering::Relaxed),
                    other => return Err(format!("query {sent}: TTL {other}")),
                };
            }
            Err("the client ran out of queries".to_owned())
        })
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = SystemTime::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                SystemTime::now() < deadline && !load.is_finished(),
                "{what}; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("no answers before the edit", &|| {
        old_ttl.load(Ordering::Relaxed) >= 100
    });
    server.write_file("Corefile", &render(&corefile(7)));
    wait("reload not applied", &|| {
        new_ttl.load(Ordering::Relaxed) >= AFTER_RELOAD
    });
    stop.store(true, Ordering::Relaxed);
    let sent = load
        .join()
        .expect("load thread")
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", server.log()));
    eprintln!(
        "reload under load: {sent} queries, {} with the old TTL, {} with the new",
        old_ttl.load(Ordering::Relaxed),
        new_ttl.load(Ordering::Relaxed)
    );

    // A broken Corefile keeps the running configuration.
    server.write_file("Corefile", "cluster.local {\n    kubernetes {\n");
    let deadline = SystemTime::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = server.http_get("/metrics").expect("scrape");
        if metrics.contains("coredns_reload_failed_total 1\n") {
            break;
        }
        assert!(
            SystemTime::now() < deadline,
            "reload failure not counted:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = server.query("web.shop.svc.cluster.local", RecordType::A);
    assert_answer(&answer, &["web.shop.svc.cluster.local. 7 A 10.96.1.1"]);
    assert!(
        server.log().contains("Corefile:2:") || server.log().contains("Corefile:3:"),
        "{}",
        server.log()
    );
}

/// CoreDNS `hosts`: file and inline entries, PTR records, TTL, fallthrough
/// for names it does not hold; the file is read again when it changes
/// (`reload`, 5 s by default), seen here within a generous 60 s.
#[test]
fn hosts_serves_file_and_inline_entries() {
    let corefile = "example.org:{PORT} 10.in-addr.arpa:{PORT} {
    bind 127.0.0.1
    hosts hosts example.org 10.in-addr.arpa {
        10.0.0.9 inline.example.org
        ttl 60
    }
    ready 127.0.0.1:{ADMIN}
}
";
    let hosts = "# a hosts file\n10.0.0.5 web.example.org web\nfd00::5 web.example.org\n";
    let server = TestServer::start_with(corefile, &[("hosts", hosts)], true);
    let a = server.query("web.example.org", RecordType::A);
    assert_answer(&a, &["web.example.org. 60 A 10.0.0.5"]);
    let aaaa = server.query("web.example.org", RecordType::AAAA);
    assert_answer(&aaaa, &["web.example.org. 60 AAAA fd00::5"]);
    let inline = server.query("inline.example.org", RecordType::A);
    assert_answer(&inline, &["inline.example.org. 60 A 10.0.0.9"]);
    let ptr = server.query("5.0.0.10.in-addr.arpa", RecordType::PTR);
    assert_answer(&ptr, &["5.0.0.10.in-addr.arpa. 60 PTR web.example.org."]);
    let missing = server.query("nope.example.org", RecordType::A);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    server.write_file("hosts", "10.0.0.6 web.example.org\n");
    let deadline = SystemTime::now() + Duration::from_secs(60);
    loop {
        let answer = server.query("web.example.org", RecordType::A);
        if answer.answers.first().map(|r| r.data.to_string()) == Some("10.0.0.6".to_owned()) {
            assert_answer(&answer, &["web.example.org. 60 A 10.0.0.6"]);
            break;
        }
        assert!(
            SystemTime::now() < deadline,
            "hosts change not picked up: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CoreDNS `loadbalance`: the order of A records changes between answers.
#[test]
fn loadbalance_rotates_address_records() {
    let catalog = "apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: shop
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
endpoints:
- addresses: [10.1.0.1]
- addresses: [10.1.0.2]
- addresses: [10.1.0.3]
";
    let corefile = "cluster.local:{PORT} {
    bind 127.0.0.1
    kubernetes cluster.local {
        catalog catalog
    }
    loadbalance
    ready 127.0.0.1:{ADMIN}
}
";
    let server = TestServer::start_with(corefile, &[("catalog/db.yaml", catalog)], true);
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let answer = server.query("db.shop.svc.cluster.local", RecordType::A);
        assert_answer(
            &answer,
            &[
                "db.shop.svc.cluster.local. 30 A 10.1.0.1",
                "db.shop.svc.cluster.local. 30 A 10.1.0.2",
                "db.shop.svc.cluster.local. 30 A 10.1.0.3",
            ],
        );
        firsts.insert(answer.answers[0].data.to_string());
    }
    assert_eq!(
        firsts.len(),
        3,
        "every address comes first sometimes: {firsts:?}"
    );
}
