//! Issue 18, point 4: a UDP client's cache miss is forwarded by the UDP
//! worker itself (`udp::inline`), on a few connected sockets per upstream
//! that it keeps, not on a socket per query. The real binary (two workers)
//! against a real `knotd`, or a scripted upstream socket where the test must
//! forge replies.
//!
//! ```text
//! client threads ──UDP──▶ signpost worker ×2 ──(≤ 4 connected sockets each)──▶ upstream
//!                                      /proc/net/udp, /proc/<pid>/fd and /metrics are watched
//! ```
//!
//! Sockets are observed from the kernel (`/proc/net/udp`: rows whose remote
//! end is the test's upstream, which has its own port) and from the
//! forwarder's own counters (`coredns_proxy_conn_cache_{hits,misses}_total`:
//! a query sent on a kept socket, a socket opened). Every wait is bounded.

use crate::support::TestServer;
use crate::upstream::{Knot, ask_udp};
use hickory_proto::rr::{RData, RecordType};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// UDP workers of a `TestServer` (`--workers 2`).
const WORKERS: usize = 2;
/// Connected sockets a worker keeps per upstream (`udp::inline`).
const SOCKETS_PER_WORKER: usize = 4;

/// signpost on `.` with `cache 30` and `forward . UPSTREAM { BLOCK }`, plus
/// `ready` and `prometheus` on the admin port.
fn signpost(upstream: SocketAddr, block: &str) -> TestServer {
    let corefile = format!(
        ".:{{PORT}} {{\n    bind 127.0.0.1\n    cache 30\n    forward . {upstream} {{\n{block}\n    }}\n    \
         ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n"
    );
    TestServer::start_with(&corefile, &[], true)
}

/// The sum of every sample of `name` whose label set contains `label`
/// (`key="value"`), from `/metrics`.
fn metric(server: &TestServer, name: &str, label: &str) -> f64 {
    let (status, text) = server
        .http_get("/metrics")
        .unwrap_or_else(|| panic!("cannot scrape /metrics; log:\n{}", server.log()));
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Local ports of the UDP sockets on this machine connected to `upstream`
/// (`/proc/net/udp`; the upstream's port is the test's own).
fn udp_sockets_to(upstream: SocketAddr) -> Vec<u16> {
    let SocketAddr::V4(upstream) = upstream else {
        panic!("tests use IPv4 upstreams");
    };
    let remote = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(upstream.ip().octets()),
        upstream.port()
    );
    std::fs::read_to_string("/proc/net/udp")
        .expect("read /proc/net/udp")
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, peer) = (fields.get(1)?, fields.get(2)?);
            (*peer == remote).then(|| u16::from_str_radix(local.rsplit(':').next()?, 16).ok())?
        })
        .collect()
}

/// Sockets the process `pid` holds (`/proc/<pid>/fd` links to `socket:[…]`).
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Polls `condition` every 20 ms for up to `limit`.
fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = SystemTime::now() + limit;
    while SystemTime::now() < until {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// The A addresses of an answer.
fn addresses(server: &TestServer, name: &str) -> Vec<Ipv4Addr> {
    let reply = ask_udp(server.addr(), name, RecordType::A, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no reply for {name}; log:\n{}", server.log()));
    reply
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// 2,000 cache misses (every name different), from 8 client threads at
/// once, are all answered, while the signpost process never holds more than
/// 2 workers × 4 sockets connected to the upstream (distinct local ports,
/// sampled from /proc/net/udp throughout), opens no more than that many in all
/// (`coredns_proxy_conn_cache_misses_total`), sends every other query on a
/// kept socket, and holds as many sockets at the end as after the first
/// miss's socket count settled (/proc/<pid>/fd).
#[test]
fn udp_misses_share_a_few_worker_sockets() {
    const NAMES: usize = 2_000;
    const CLIENTS: usize = 8;
    let upstream = Knot::serving(&[(
        "pool.test.",
        "$ORIGIN pool.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 20\n@ NS ns\nns A 192.0.2.53\n\
         * A 192.0.2.7\n",
    )]);
    // expire 60s: no socket rotates during the test, so every socket opened is counted once.
    let server = signpost(upstream.addr(), "        expire 60s");
    let to = format!("to=\"{}\"", upstream.addr());
    let fds_before = sockets_of(server.pid());

    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, most, address) = (done.clone(), most.clone(), upstream.addr());
        std::thread::spawn(move || {
            let mut samples = 0usize;
            while !done.load(Ordering::Relaxed) {
                // Distinct ports: /proc/net/udp is not read atomically, and a
                // row can show twice while sockets open meanwhile.
                let ports: BTreeSet<u16> = udp_sockets_to(address).into_iter().collect();
                most.fetch_max(ports.len(), Ordering::Relaxed);
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (address, wrong) = (server.addr(), wrong.clone());
            std::thread::spawn(move || {
                for n in (client..NAMES).step_by(CLIENTS) {
                    let name = format!("miss-{n}.pool.test.");
                    let reply = ask_udp(address, &name, RecordType::A, Duration::from_secs(5));
                    let ok = reply.is_some_and(|m| {
                        m.answers.iter().any(|r| {
                            matches!(&r.data, RData::A(a) if a.0 == Ipv4Addr::new(192, 0, 2, 7))
                        })
                    });
                    if !ok {
                        wrong.lock().unwrap().push(name);
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
    // Before any further /metrics scrape, whose connection would count too.
    let fds_after = sockets_of(server.pid());
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler thread");
    let wrong = wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "{} names unanswered or wrong, e.g. {:?}; log:\n{}",
        wrong.len(),
        &wrong[..wrong.len().min(5)],
        server.log()
    );

    let bound = WORKERS * SOCKETS_PER_WORKER;
    let most = most.load(Ordering::Relaxed);
    assert!(
        (1..=bound).contains(&most),
        "at most {bound} sockets connected to the upstream at once, saw {most} ({samples} samples)"
    );
    let opened = metric(&server, "coredns_proxy_conn_cache_misses_total", &to);
    let kept = metric(&server, "coredns_proxy_conn_cache_hits_total", &to);
    let requests = metric(&server, "coredns_forward_requests_total", &to);
    assert_eq!(requests, NAMES as f64, "every miss asked the upstream once");
    assert!(
        opened >= 1.0 && opened <= bound as f64,
        "sockets opened for {NAMES} misses: {opened} (at most {bound})"
    );
    assert_eq!(
        opened + kept,
        requests,
        "each query opened or kept a socket"
    );
    assert!(
        fds_after <= fds_before + bound,
        "signpost holds {fds_after} sockets after {NAMES} misses, {fds_before} before"
    );
}

/// A scripted upstream: every query gets, in this order, a forged reply
/// (right ID and question, `6.6.6.6`) from 127.0.0.2, a reply with the wrong
/// ID (`6.6.6.6`) from the upstream's own address, and the real reply
/// (`1.2.3.4`). Records each query's source port.
struct ScriptedUpstream {
    address: SocketAddr,
    ports: Arc<Mutex<Vec<u16>>>,
}

impl ScriptedUpstream {
    fn start() -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind upstream");
        // The whole of 127/8 is loopback, but 127.0.0.2 is not the upstream.
        let attacker = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).expect("bind attacker");
        let address = socket.local_addr().expect("address");
        let ports = Arc::new(Mutex::new(Vec::new()));
        let seen = ports.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65535];
            // Ends when the test process does; an idle recv costs nothing.
            while let Ok((len, client)) = socket.recv_from(&mut buffer) {
                let query = &buffer[..len];
                seen.lock().unwrap().push(client.port());
                let _ = attacker.send_to(&reply(query, [6, 6, 6, 6], 0), client);
                let _ = socket.send_to(&reply(query, [6, 6, 6, 6], 0x5555), client);
                let _ = socket.send_to(&reply(query, [1, 2, 3, 4], 0), client);
            }
        });
        Self { address, ports }
    }
}

/// `query`'s header (ID XOR `flip`) and question with QR, RA and one A record.
fn reply(query: &[u8], address: [u8; 4], flip: u16) -> Vec<u8> {
    // Header, then the question: labels up to the root, then type and class.
    let mut end = 12;
    while query[end] != 0 {
        end += usize::from(query[end]) + 1;
    }
    end += 5;
    let mut reply = query[..end].to_vec();
    let id = u16::from_be_bytes([query[0], query[1]]) ^ flip;
    reply[..2].copy_from_slice(&id.to_be_bytes());
    reply[2] |= 0x80;
    reply[3] = 0x80;
    reply[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    reply.extend_from_slice(&address);
    reply
}

/// RFC 5452 on the worker's shared sockets: a forged reply from another
/// address is never seen (the socket is connected), a reply from the
/// upstream with an ID no query in flight has is counted
/// (`signpost_forward_unmatched_replies_total`) and retires its socket, so
/// every query after it is sent on a newly opened socket (each query opened
/// one: `coredns_proxy_conn_cache_misses_total` = queries, hits 0), and the
/// real reply still answers the client.
#[test]
fn worker_ignores_forged_and_mismatched_replies() {
    const QUERIES: usize = 20;
    let upstream = ScriptedUpstream::start();
    let server = signpost(upstream.address, "        max_fails 0");
    let to = format!("to=\"{}\"", upstream.address);
    for n in 0..QUERIES {
        let name = format!("q-{n}.forged.test.");
        assert_eq!(
            addresses(&server, &name),
            vec![Ipv4Addr::new(1, 2, 3, 4)],
            "{name}: the upstream's real answer only; log:\n{}",
            server.log()
        );
    }
    let unmatched = metric(&server, "signpost_forward_unmatched_replies_total", &to);
    assert_eq!(unmatched, QUERIES as f64, "one wrong-ID reply per query");
    let opened = metric(&server, "coredns_proxy_conn_cache_misses_total", &to);
    let kept = metric(&server, "coredns_proxy_conn_cache_hits_total", &to);
    assert_eq!(
        (opened, kept),
        (QUERIES as f64, 0.0),
        "a socket that saw a wrong ID takes no further query"
    );
    assert_eq!(upstream.ports.lock().unwrap().len(), QUERIES);
    assert!(
        eventually(Duration::from_secs(10), || udp_sockets_to(upstream.address)
            .is_empty()),
        "retired sockets close once their query is answered: {:?}",
        udp_sockets_to(upstream.address)
    );
}

/// CoreDNS `expire`: a worker's socket takes queries for `expire` after it
/// opens and is closed once idle after that (gone from /proc/net/udp, no
/// fixed wait: polled up to 10 s for `expire 1s`); the next miss opens a new
/// socket (`coredns_proxy_conn_cache_misses_total` grows) and is answered.
#[test]
fn worker_sockets_close_after_expire() {
    let upstream = Knot::serving(&[(
        "expire.test.",
        "$ORIGIN expire.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 20\n@ NS ns\nns A 192.0.2.53\n\
         * A 192.0.2.8\n",
    )]);
    let server = signpost(upstream.addr(), "        expire 1s");
    let to = format!("to=\"{}\"", upstream.addr());
    assert_eq!(
        addresses(&server, "first.expire.test."),
        vec![Ipv4Addr::new(192, 0, 2, 8)]
    );
    let opened = metric(&server, "coredns_proxy_conn_cache_misses_total", &to);
    assert_eq!(opened, 1.0, "the first miss opened one socket");
    assert!(
        eventually(Duration::from_secs(10), || udp_sockets_to(upstream.addr())
            .is_empty()),
        "the socket closes after expire: {:?}",
        udp_sockets_to(upstream.addr())
    );
    assert_eq!(
        addresses(&server, "second.expire.test."),
        vec![Ipv4Addr::new(192, 0, 2, 8)]
    );
    assert_eq!(
        metric(&server, "coredns_proxy_conn_cache_misses_total", &to),
        2.0,
        "the next miss opened a new socket"
    );
}
