//! CoreDNS plugins around the zones: `reload`, `hosts`, `loadbalance`
//! (issue 3, point 4 and "What to build").

use crate::support::{TestServer, query_bytes};
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
#[test]
fn reload_applies_changes_without_losing_a_query() {
    let server = TestServer::start_with(&corefile(30), &[("catalog/web.yaml", WEB)], true);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let seen_new_ttl = Arc::new(AtomicBool::new(false));
    let address = server.addr();
    let load = {
        let (stop, sent, lost, seen_new_ttl) = (
            stop.clone(),
            sent.clone(),
            lost.clone(),
            seen_new_ttl.clone(),
        );
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            let query = query_bytes("web.shop.svc.cluster.local", RecordType::A, None);
            let mut buffer = [0u8; 512];
            // Bounded: about 2,000 queries a second, for at most 30 s.
            let started = SystemTime::now();
            for _ in 0..60_000 {
                if stop.load(Ordering::Relaxed)
                    || started.elapsed().unwrap_or_default() > Duration::from_secs(30)
                {
                    break;
                }
                std::thread::sleep(Duration::from_micros(300));
                socket.send_to(&query, address).expect("send");
                sent.fetch_add(1, Ordering::Relaxed);
                match socket.recv(&mut buffer) {
                    Ok(len) => {
                        let answer = Message::from_vec(&buffer[..len]).expect("parse");
                        let good = answer.metadata.response_code == ResponseCode::NoError
                            && matches!(answer.answers.first().map(|r| &r.data), Some(RData::A(_)));
                        if !good {
                            lost.fetch_add(1, Ordering::Relaxed);
                        } else if answer.answers[0].ttl == 7 {
                            seen_new_ttl.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(
        server.path("Corefile"),
        corefile(7)
            .replace("{PORT}", &server.port.to_string())
            .replace("{ADMIN}", &server.admin_port.to_string()),
    )
    .expect("edit");
    let deadline = SystemTime::now() + Duration::from_secs(10);
    while !seen_new_ttl.load(Ordering::Relaxed) {
        assert!(
            SystemTime::now() < deadline,
            "reload not applied; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep querying across the old generation's retirement too.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    let (sent, lost) = (sent.load(Ordering::Relaxed), lost.load(Ordering::Relaxed));
    eprintln!("reload under load: {sent} queries, {lost} unanswered");
    assert!(sent > 100, "only {sent} queries sent");
    assert_eq!(
        lost, 0,
        "{lost} of {sent} queries unanswered or wrong during the reload"
    );

    // A broken Corefile keeps the running configuration.
    std::fs::write(
        server.path("Corefile"),
        "cluster.local {\n    kubernetes {\n",
    )
    .expect("break");
    let deadline = SystemTime::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = server.http_get("/metrics").expect("scrape");
        if metrics.contains("coredns_reload_failed_total 1") {
            break;
        }
        assert!(
            SystemTime::now() < deadline,
            "reload failure not counted:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = server.query("web.shop.svc.cluster.local", RecordType::A);
    assert_eq!(
        answer.answers[0].ttl, 7,
        "still the last good configuration"
    );
    assert!(
        server.log().contains("Corefile:2:") || server.log().contains("Corefile:3:"),
        "{}",
        server.log()
    );
}

/// CoreDNS `hosts`: file and inline entries, PTR records, TTL, fallthrough
/// for names it does not hold.
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
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].ttl, 60);
    let aaaa = server.query("web.example.org", RecordType::AAAA);
    assert_eq!(aaaa.answers.len(), 1);
    let inline = server.query("inline.example.org", RecordType::A);
    assert_eq!(inline.answers.len(), 1);
    let ptr = server.query("5.0.0.10.in-addr.arpa", RecordType::PTR);
    let RData::PTR(target) = &ptr.answers[0].data else {
        panic!("{ptr:?}")
    };
    assert_eq!(target.0.to_ascii(), "web.example.org.");
    let missing = server.query("nope.example.org", RecordType::A);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    // The file is re-read when it changes (reload defaults to 5s).
    std::fs::write(server.path("hosts"), "10.0.0.6 web.example.org\n").expect("edit");
    let deadline = SystemTime::now() + Duration::from_secs(8);
    loop {
        let answer = server.query("web.example.org", RecordType::A);
        if answer.answers.first().map(|r| r.data.to_string()) == Some("10.0.0.6".to_owned()) {
            break;
        }
        assert!(SystemTime::now() < deadline, "hosts change not picked up");
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
        assert_eq!(answer.answers.len(), 3);
        firsts.insert(answer.answers[0].data.to_string());
    }
    assert_eq!(
        firsts.len(),
        3,
        "every address comes first sometimes: {firsts:?}"
    );
}
