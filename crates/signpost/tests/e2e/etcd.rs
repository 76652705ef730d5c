//! The `etcd` plugin end to end: the real `signpost` binary serving SkyDNS
//! keys from a real etcd (Debian's `etcd-server`, started on loopback) and
//! queried with dig and a Rust client (issue 15).
//!
//! - the examples of CoreDNS's `plugin/etcd/README.md` (v1.14.7), each replayed
//!   on an empty prefix, answer what the README prints, and a CNAME, a
//!   wildcard and a group from CoreDNS's test fixtures do too;
//! - malformed values are skipped with one log line each and counted;
//! - on a three-member cluster, 1,000 keys written at 100/s while a member is
//!   killed and restarted and the history is compacted: the answers end up
//!   equal to the final keys, each change reaches the answers quickly (p99
//!   printed), and names that existed throughout never fail.

use crate::etcd_server::EtcdCluster;
use crate::support::TestServer;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, SystemTime};

/// One etcd member shared by the single-node tests (each uses its own path).
fn node() -> &'static EtcdCluster {
    static NODE: OnceLock<EtcdCluster> = OnceLock::new();
    NODE.get_or_init(|| EtcdCluster::start(1))
}

/// A server with `etcd ZONES { path PATH; endpoint ... }` on 127.0.0.1.
fn serve(zones: &str, path: &str, endpoints: &[String]) -> TestServer {
    let corefile = format!(
        ".:{{PORT}} {{\n    bind 127.0.0.1\n    etcd {zones} {{\n        path {path}\n        endpoint {}\n    }}\n    health 127.0.0.1:{{ADMIN}}\n    ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n",
        endpoints.join(" ")
    );
    TestServer::start_with(&corefile, &[], true)
}

/// `dig +short` lines, sorted (the README's examples show sets).
fn short(server: &TestServer, args: &[&str]) -> Vec<String> {
    let mut args = args.to_vec();
    args.push("+short");
    let mut lines: Vec<String> = server.dig(&args).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Waits (20 s at most) until `dig +short args` prints `expected` (any order).
#[track_caller]
fn wait_short(server: &TestServer, args: &[&str], expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let deadline = SystemTime::now() + Duration::from_secs(20);
    loop {
        let got = short(server, args);
        if got == expected {
            return;
        }
        assert!(
            SystemTime::now() < deadline,
            "dig {args:?}: got {got:?}, want {expected:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CoreDNS `plugin/etcd/README.md` examples through the binary, each on an
/// empty prefix as the README shows them: the zone name as A (a key ending
/// in `/`, and keys below it) and AAAA, SRV, TXT, and the reverse zone of
/// `etcd skydns.local 10.0.0.0/24`; then fixtures of CoreDNS's tests: a
/// CNAME chain, a `*` wildcard with SRV weights, and a group.
#[test]
fn readme_examples() {
    let etcd = node();
    let server = serve("skydns.local 10.0.0.0/24", "/readme", &etcd.endpoints());
    let zone = ["skydns.local"];
    etcd.put("/readme/local/skydns/", r#"{"host":"1.1.1.1","ttl":60}"#);
    wait_short(&server, &zone, &["1.1.1.1"]);
    etcd.delete("/readme/local/skydns/");
    etcd.put("/readme/local/skydns/x1", r#"{"host":"1.1.1.1","ttl":60}"#);
    etcd.put("/readme/local/skydns/x2", r#"{"host":"1.1.1.2","ttl":60}"#);
    wait_short(&server, &zone, &["1.1.1.1", "1.1.1.2"]);
    etcd.etcdctl(&["del", "--prefix", "/readme/"]);
    etcd.put(
        "/readme/local/skydns/x3",
        r#"{"host":"2003::8:1","ttl":60}"#,
    );
    etcd.put(
        "/readme/local/skydns/x4",
        r#"{"host":"2003::8:2","ttl":60}"#,
    );
    wait_short(
        &server,
        &["skydns.local", "AAAA"],
        &["2003::8:1", "2003::8:2"],
    );
    etcd.etcdctl(&["del", "--prefix", "/readme/"]);
    etcd.put(
        "/readme/local/skydns/x5",
        r#"{"host":"skydns-local.server","ttl":60,"priority":10,"port":8080}"#,
    );
    wait_short(
        &server,
        &["skydns.local", "SRV"],
        &["10 100 8080 skydns-local.server."],
    );
    etcd.etcdctl(&["del", "--prefix", "/readme/"]);
    etcd.put(
        "/readme/local/skydns/x6",
        r#"{"ttl":60,"text":"this is a random text message."}"#,
    );
    etcd.put(
        "/readme/local/skydns/x7",
        r#"{"ttl":60,"text":"this is a another random text message."}"#,
    );
    wait_short(
        &server,
        &["skydns.local", "TXT"],
        &[
            "\"this is a random text message.\"",
            "\"this is a another random text message.\"",
        ],
    );
    etcd.etcdctl(&["del", "--prefix", "/readme/"]);
    etcd.put(
        "/readme/arpa/in-addr/10/0/0/127",
        r#"{"host":"reverse.skydns.local."}"#,
    );
    wait_short(&server, &["-x", "10.0.0.127"], &["reverse.skydns.local."]);

    // CoreDNS cname_test.go: a chain inside the zone, each hop its own owner.
    etcd.put(
        "/readme/local/skydns/region2/cname1",
        r#"{"host":"cname2.region2.skydns.local"}"#,
    );
    etcd.put(
        "/readme/local/skydns/region2/cname2",
        r#"{"host":"endpoint.region2.skydns.local"}"#,
    );
    etcd.put(
        "/readme/local/skydns/region2/endpoint",
        r#"{"host":"10.240.0.1"}"#,
    );
    wait_short(
        &server,
        &["cname1.region2.skydns.local"],
        &[
            "cname2.region2.skydns.local.",
            "endpoint.region2.skydns.local.",
            "10.240.0.1",
        ],
    );
    // lookup_test.go: `*` and `any` match one label; weights split per
    // priority (two records at priority 10: 50 each).
    etcd.put(
        "/readme/local/skydns/region1/prod/a",
        r#"{"host":"10.0.0.1","port":8080}"#,
    );
    etcd.put(
        "/readme/local/skydns/region1/prod/b",
        r#"{"host":"10.0.0.2","port":8080,"priority":20}"#,
    );
    etcd.put(
        "/readme/local/skydns/region3/prod/c",
        r#"{"host":"svc.example.org","port":443}"#,
    );
    wait_short(
        &server,
        &["prod.*.skydns.local", "SRV"],
        &[
            "10 50 8080 a.prod.region1.skydns.local.",
            "20 100 8080 b.prod.region1.skydns.local.",
            "10 50 443 svc.example.org.",
        ],
    );
    wait_short(
        &server,
        &["prod.any.skydns.local", "SRV"],
        &[
            "10 50 8080 a.prod.region1.skydns.local.",
            "20 100 8080 b.prod.region1.skydns.local.",
            "10 50 443 svc.example.org.",
        ],
    );
    // group_test.go: the shallowest grouped entry decides.
    etcd.put(
        "/readme/local/skydns/dom1/a",
        r#"{"host":"127.0.0.1","group":"g1"}"#,
    );
    etcd.put(
        "/readme/local/skydns/dom1/sub/b",
        r#"{"host":"127.0.0.2","group":"g2"}"#,
    );
    etcd.put("/readme/local/skydns/dom1/sub/c", r#"{"host":"127.0.0.3"}"#);
    wait_short(&server, &["dom1.skydns.local"], &["127.0.0.1", "127.0.0.3"]);
    // Names with no key at or below them do not exist; the SOA is CoreDNS's.
    let missing = server.query("nothing.skydns.local", RecordType::A);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    let soa = short(&server, &["skydns.local", "SOA"]);
    assert_eq!(soa.len(), 1);
    assert!(
        soa[0].starts_with("ns.dns.skydns.local. hostmaster.skydns.local. ")
            && soa[0].ends_with(" 7200 1800 86400 30"),
        "{soa:?}"
    );
}

/// Values under the path that are not SkyDNS records (bad JSON, an unknown
/// field, a host that is neither IP nor name) are skipped with one log line
/// each and counted in `/metrics`; the other keys still serve.
#[test]
fn malformed_values_are_skipped() {
    let etcd = node();
    etcd.put("/malformed/test/good", r#"{"host":"10.0.0.1"}"#);
    etcd.put("/malformed/test/json", r#"{"host":"#);
    etcd.put(
        "/malformed/test/field",
        r#"{"host":"10.0.0.2","colour":"blue"}"#,
    );
    etcd.put("/malformed/test/host", r#"{"host":"not a host!"}"#);
    let server = serve("test", "/malformed", &etcd.endpoints());
    wait_short(&server, &["good.test"], &["10.0.0.1"]);
    wait_short(&server, &["test"], &["10.0.0.1"]);
    for skipped in ["json.test", "field.test", "host.test"] {
        let answer = server.query(skipped, RecordType::A);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{skipped}"
        );
    }
    let log = server.log();
    for key in [
        "/malformed/test/json",
        "/malformed/test/field",
        "/malformed/test/host",
    ] {
        let lines = log
            .lines()
            .filter(|l| l.contains("etcd value skipped") && l.contains(key))
            .count();
        assert_eq!(lines, 1, "{key}: one log line; log:\n{log}");
    }
    let (_, metrics) = server.http_get("/metrics").expect("metrics");
    assert!(
        metrics.contains("signpost_etcd_invalid_values_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("signpost_etcd_invalid_keys 3"),
        "{metrics}"
    );
    assert!(metrics.contains("signpost_etcd_keys 1"), "{metrics}");
    assert!(
        metrics.contains("signpost_etcd_sources{state=\"synced\"} 1"),
        "{metrics}"
    );
}

/// `credentials USER PASSWORD` against an etcd with authentication on: the
/// right password serves, a wrong one is refused (not ready) with a message
/// that names neither password, and no password reaches the log or `/metrics`.
#[test]
fn credentials_authenticate_and_never_leak() {
    const PASSWORD: &str = "Etcd-S3cret-4f1c9a";
    const WRONG: &str = "Wr0ng-S3cret-77b2e0";
    let etcd = EtcdCluster::start(1);
    etcd.put("/cred/test/a", r#"{"host":"10.0.0.9"}"#);
    etcd.etcdctl(&["role", "add", "root"]);
    etcd.etcdctl(&[
        "user",
        "add",
        &format!("root:{PASSWORD}"),
        "--interactive=false",
    ]);
    etcd.etcdctl(&["user", "grant-role", "root", "root"]);
    etcd.etcdctl(&["auth", "enable"]);
    let with = |password: &str, wait: bool| {
        let corefile = format!(
            ".:{{PORT}} {{\n    bind 127.0.0.1\n    etcd test {{\n        path /cred\n        endpoint {}\n        credentials root {password}\n    }}\n    health 127.0.0.1:{{ADMIN}}\n    ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n",
            etcd.endpoint(0)
        );
        TestServer::start_with(&corefile, &[], wait)
    };
    let good = with(PASSWORD, true);
    wait_short(&good, &["a.test"], &["10.0.0.9"]);
    let wrong = with(WRONG, false);
    let refused = wrong.wait_for_log("the etcd source's refusal", |log| {
        log.lines()
            .find(|l| l.contains("etcd") && l.contains("authentication failed"))
            .map(str::to_owned)
    });
    let (status, _) = wrong.http_get("/ready").expect("ready answers");
    assert_eq!(status, 503, "a refused source is not ready: {refused}");
    for server in [&good, &wrong] {
        let (_, metrics) = server.http_get("/metrics").expect("metrics");
        let log = server.log();
        for secret in [PASSWORD, WRONG, "S3cret"] {
            assert!(!log.contains(secret), "{secret} in the log:\n{log}");
            assert!(!metrics.contains(secret), "{secret} in /metrics");
        }
    }
}

/// Base64 (RFC 4648 §4), for the etcd gRPC gateway's JSON.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One request to etcd's JSON gateway (`/v3/kv/put`, ...) on a kept-alive
/// connection: etcdctl's process start would cap the write rate.
struct Gateway {
    address: SocketAddr,
    stream: Option<TcpStream>,
}

impl Gateway {
    fn new(endpoint: &str) -> Self {
        let address = endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("endpoint");
        Self {
            address,
            stream: None,
        }
    }

    fn post(&mut self, path: &str, body: &str) -> String {
        for _ in 0..3 {
            if self.stream.is_none() {
                self.stream = TcpStream::connect(self.address).ok();
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(request.as_bytes()).is_ok()
                && let Some(response) = read_http(stream)
            {
                return response;
            }
            self.stream = None;
        }
        panic!("etcd gateway {path} failed");
    }

    fn put(&mut self, key: &str, value: &str) {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        let response = self.post("/v3/kv/put", &body);
        assert!(response.contains("\"revision\""), "put {key}: {response}");
    }

    fn delete(&mut self, key: &str) {
        let body = format!(r#"{{"key":"{}"}}"#, base64(key.as_bytes()));
        self.post("/v3/kv/deleterange", &body);
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body.
fn read_http(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut byte = [0u8; 1];
    while !buffer.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buffer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buffer).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    head.starts_with("http/1.1 200")
        .then(|| String::from_utf8_lossy(&body).into_owned())
}

/// The IPv4 addresses of an answer.
fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

fn address_of(index: usize) -> String {
    format!(
        "10.{}.{}.{}",
        1 + index / 65536,
        index / 256 % 256,
        index % 256
    )
}

/// Issue 15, done point 2: a three-member etcd cluster; 1,000 keys written
/// at 100/s (every tenth write also deletes an earlier key) while member 0
/// is killed (at write 300) and restarted (at write 600) and the history is
/// compacted (at write 500). Afterwards signpost answers exactly the final
/// keys; every sampled write reaches the answers (the write-to-answer
/// percentiles are printed); names that existed throughout never fail
/// (no SERVFAIL, no NXDOMAIN, no lost reply) while it happens. The speed
/// target, 1 s at the 99th percentile, is checked by `bench/etcd/run` on a
/// release build (`ETCD_CHURN_P99_LIMIT_MS=1000`); in the test suite, on a
/// debug build and a machine shared with other tests, the limit is 5 s.
#[test]
fn three_member_cluster_churn() {
    let mut etcd = EtcdCluster::start(3);
    let stable: Vec<String> = (0..20).map(|i| format!("s{i}.stable.churn.test")).collect();
    for (i, _) in stable.iter().enumerate() {
        etcd.put(
            &format!("/skydns/test/churn/stable/s{i}"),
            &format!(r#"{{"host":"10.0.0.{i}"}}"#),
        );
    }
    let server = serve("churn.test", "/skydns", &etcd.endpoints());
    let server = Arc::new(server);
    for (i, name) in stable.iter().enumerate() {
        let deadline = SystemTime::now() + Duration::from_secs(20);
        while addresses(&server.query(name, RecordType::A)) != [format!("10.0.0.{i}")] {
            assert!(
                SystemTime::now() < deadline,
                "{name} never served; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // Names that exist throughout, asked in a loop during the run.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let asked = {
        let (server, stop, failures, stable) = (
            server.clone(),
            stop.clone(),
            failures.clone(),
            stable.clone(),
        );
        std::thread::spawn(move || {
            let mut asked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (i, name) in stable.iter().enumerate() {
                    asked += 1;
                    let reply =
                        server.udp_raw(&crate::support::query_bytes(name, RecordType::A, None));
                    let outcome = match reply.map(|r| Message::from_vec(&r)) {
                        None => Some("no reply".to_owned()),
                        Some(Err(e)) => Some(format!("unparsable reply: {e}")),
                        Some(Ok(m)) if m.metadata.response_code != ResponseCode::NoError => {
                            Some(format!("{:?}", m.metadata.response_code))
                        }
                        Some(Ok(m)) if addresses(&m) != [format!("10.0.0.{i}")] => {
                            Some(format!("answer {:?}", addresses(&m)))
                        }
                        Some(Ok(_)) => None,
                    };
                    if let Some(outcome) = outcome {
                        failures.lock().unwrap().push(format!("{name}: {outcome}"));
                    }
                }
            }
            asked
        })
    };

    // Every tenth put is timed until the answer carries it.
    let (samples, pending) = mpsc::channel::<(String, String, tokio::time::Instant)>();
    let prober = {
        let server = server.clone();
        std::thread::spawn(move || {
            let mut waiting: Vec<(String, String, tokio::time::Instant)> = Vec::new();
            let mut latencies = Vec::new();
            let mut open = true;
            while open || !waiting.is_empty() {
                loop {
                    match pending.try_recv() {
                        Ok(sample) => waiting.push(sample),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                waiting.retain(|(name, address, written)| {
                    let reply =
                        server.udp_raw(&crate::support::query_bytes(name, RecordType::A, None));
                    let seen = reply
                        .and_then(|r| Message::from_vec(&r).ok())
                        .is_some_and(|m| addresses(&m) == [address.clone()]);
                    if seen {
                        latencies.push(written.elapsed());
                    }
                    let given_up = written.elapsed() > Duration::from_secs(30);
                    if given_up {
                        latencies.push(Duration::from_secs(30));
                    }
                    !seen && !given_up
                });
                std::thread::sleep(Duration::from_millis(2));
            }
            latencies
        })
    };

    let mut gateway = Gateway::new(&etcd.endpoint(1));
    let mut live: Vec<bool> = vec![false; 1000];
    let start = tokio::time::Instant::now();
    for i in 0..1000 {
        // 100 writes per second, paced by the clock.
        let due = start + Duration::from_millis(10 * i as u64);
        let now = tokio::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        match i {
            300 => etcd.kill(0),
            500 => {
                etcd.compact();
            }
            600 => etcd.restart(0),
            _ => {}
        }
        let key = format!("/skydns/test/churn/n{i}");
        gateway.put(&key, &format!(r#"{{"host":"{}"}}"#, address_of(i)));
        live[i] = true;
        if i % 10 == 0 {
            let _ = samples.send((
                format!("n{i}.churn.test"),
                address_of(i),
                tokio::time::Instant::now(),
            ));
        }
        if i % 10 == 9 {
            gateway.delete(&format!("/skydns/test/churn/n{}", i - 5));
            live[i - 5] = false;
        }
    }
    let written = start.elapsed();
    drop(samples);
    let mut latencies = prober.join().expect("prober");
    stop.store(true, Ordering::Relaxed);
    let asked = asked.join().expect("querier");

    // The answers converge on the final keys exactly.
    let deadline = SystemTime::now() + Duration::from_secs(30);
    let mut wrong: Vec<String>;
    loop {
        wrong = (0..1000)
            .filter_map(|i| {
                let name = format!("n{i}.churn.test");
                let answer = server.query(&name, RecordType::A);
                let ok = if live[i] {
                    addresses(&answer) == [address_of(i)]
                } else {
                    answer.metadata.response_code == ResponseCode::NXDomain
                };
                (!ok).then(|| {
                    format!(
                        "{name}: {:?} {:?}",
                        answer.metadata.response_code,
                        addresses(&answer)
                    )
                })
            })
            .collect();
        if wrong.is_empty() || SystemTime::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        wrong.is_empty(),
        "{} names differ from the final keys, e.g. {:?}; log:\n{}",
        wrong.len(),
        &wrong[..wrong.len().min(10)],
        server.log()
    );
    let (_, metrics) = server.http_get("/metrics").expect("metrics");
    let etcd_metrics: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("signpost_etcd_"))
        .collect();
    assert!(
        metrics.contains("signpost_etcd_keys 920"),
        "{etcd_metrics:#?}"
    );

    latencies.sort();
    let p = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let failures = failures.lock().unwrap().clone();
    // Reported in the issue's note: writes, duration, latency percentiles, queries.
    eprintln!(
        "etcd churn: 1000 writes + 100 deletes in {written:.1?}; write-to-answer over {} samples: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}; {asked} queries of names that existed throughout, {} failed; {}",
        latencies.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        latencies.last().copied().unwrap_or_default(),
        failures.len(),
        etcd_metrics
            .iter()
            .filter(|l| l.contains("reads_total") || l.contains("restarts_total"))
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        failures.is_empty(),
        "names that existed throughout failed: {:?}",
        &failures[..failures.len().min(20)]
    );
    assert_eq!(latencies.len(), 100);
    let limit = std::env::var("ETCD_CHURN_P99_LIMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_millis);
    assert!(
        p(0.99) <= limit,
        "p99 write-to-answer {:?} is over {limit:?}",
        p(0.99)
    );
}
