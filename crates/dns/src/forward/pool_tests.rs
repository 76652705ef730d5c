//! The upstream socket pool against real upstreams (Knot on loopback) and
//! small fake ones that record where each query came from: sockets are
//! reused across many misses, expire, never accept a forged or mismatched
//! reply, and TCP connections are kept, pipelined and redialled.

use super::*;
use crate::testing::{Knot, answer_data, query};
use hickory_proto::rr::RecordType;
use signpost_proto::Name;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex as StdMutex;
use tokio::net::UdpSocket;

/// A zone that answers every name under `pool.test` (a wildcard), so each
/// query of a test can be a different name: a cache miss, as far as an
/// upstream can tell.
fn wildcard_knot() -> Knot {
    Knot::start(&[(
        "pool.test",
        "@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n* A 192.0.2.7\n",
    )])
}

fn config(upstreams: &[SocketAddr], expire: Duration) -> ForwardConfig {
    let mut config = ForwardConfig::new(Name::root(), upstreams.to_vec());
    config.expire = expire;
    config
}

fn start(config: ForwardConfig) -> (Forwarder, Arc<ForwardMetrics>) {
    let metrics = Arc::new(ForwardMetrics::new("dns://127.0.0.1:53".to_owned()));
    (Forwarder::new(config, metrics.clone()), metrics)
}

fn upstream_metrics(forwarder: &Forwarder, upstream: SocketAddr) -> Arc<UpstreamMetrics> {
    forwarder
        .inner
        .upstreams
        .iter()
        .find(|u| u.address == upstream)
        .map(|u| u.metrics.clone())
        .expect("a configured upstream")
}

/// Sockets of this process and every other on the machine whose remote end
/// is `upstream`, from `/proc/net/{udp,tcp}`: (local port, state). Each test
/// has its own upstream port, so tests running in parallel do not see each
/// other's sockets.
fn sockets_to(upstream: SocketAddr, tcp: bool) -> Vec<(u16, u8)> {
    let table = if tcp {
        "/proc/net/tcp"
    } else {
        "/proc/net/udp"
    };
    let text = std::fs::read_to_string(table).expect("read /proc/net");
    let SocketAddr::V4(upstream) = upstream else {
        panic!("tests use IPv4 upstreams");
    };
    let remote = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(upstream.ip().octets()),
        upstream.port()
    );
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, peer, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            (*peer == remote).then(|| {
                let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
                Some((port, u8::from_str_radix(state, 16).ok()?))
            })?
        })
        .collect()
}

/// TCP state ESTABLISHED in `/proc/net/tcp`.
const ESTABLISHED: u8 = 1;

/// Waits up to `limit` for `condition`, polling every 20 ms.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// A fake UDP upstream that records the source port of every query and
/// answers `1.2.3.4`; with `forger`, each query first gets a forged reply
/// (right ID and question, `6.6.6.6`) from another loopback address, and a
/// reply with the wrong ID from the upstream's own address.
struct RecordingUpstream {
    address: SocketAddr,
    ports: Arc<StdMutex<Vec<u16>>>,
}

async fn recording_upstream(forger: bool) -> RecordingUpstream {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let address = socket.local_addr().unwrap();
    // 127.0.0.2 is loopback too (the whole 127/8 is), but not the upstream.
    let attacker = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .unwrap();
    let ports = Arc::new(StdMutex::new(Vec::new()));
    let seen = ports.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65535];
        while let Ok((len, client)) = socket.recv_from(&mut buffer).await {
            let query = &buffer[..len];
            seen.lock().unwrap().push(client.port());
            if forger {
                let _ = attacker.send_to(&reply(query, [6, 6, 6, 6]), client).await;
                let mut wrong_id = reply(query, [6, 6, 6, 6]);
                wire::set_id(
                    &mut wrong_id,
                    u16::from_be_bytes([query[0], query[1]]) ^ 0x5555,
                );
                let _ = socket.send_to(&wrong_id, client).await;
            }
            let _ = socket.send_to(&reply(query, [1, 2, 3, 4]), client).await;
        }
    });
    RecordingUpstream { address, ports }
}

/// Header and question of `query` with QR and RA set, and one A record.
fn reply(query: &[u8], address: [u8; 4]) -> Vec<u8> {
    let end = wire::question_end(query).expect("a question");
    let mut reply = query[..end].to_vec();
    reply[2] |= 0x80;
    reply[3] = 0x80;
    reply[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    reply.extend_from_slice(&address);
    reply
}

/// Resolves `count` different names under `pool.test`, `parallel` at a time.
async fn resolve_many(forwarder: &Forwarder, count: u16, parallel: u16) -> Vec<Vec<String>> {
    let mut answers = Vec::new();
    for batch in 0..count.div_ceil(parallel) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..parallel.min(count - batch * parallel) {
            let forwarder = forwarder.clone();
            let n = batch * parallel + i;
            tasks.spawn(async move {
                let reply = forwarder
                    .resolve(&query(n, &format!("name-{n}.pool.test"), RecordType::A))
                    .await
                    .unwrap_or_else(|e| panic!("name-{n}: {e}"));
                answer_data(&reply)
            });
        }
        answers.extend(tasks.join_all().await);
    }
    answers
}

// === UDP ===

/// Issue 18: the forwarder opens no socket per query. 2,000 misses (every
/// name different, 50 in flight at a time) reach the upstream from at most
/// `UDP_SOCKETS` source ports, and at no point does this process hold more
/// than that many sockets connected to the upstream (/proc/net/udp).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_misses_share_a_few_udp_sockets() {
    let upstream = recording_upstream(false).await;
    let (forwarder, _) = start(config(&[upstream.address], Duration::from_secs(60)));
    let mut most_open = 0;
    for _ in 0..10 {
        let answers = resolve_many(&forwarder, 200, 50).await;
        assert!(answers.iter().all(|a| a == &["1.2.3.4"]), "{answers:?}");
        // Distinct ports: /proc/net/udp is not read atomically and may show a row twice.
        let open: BTreeSet<u16> = sockets_to(upstream.address, false)
            .into_iter()
            .map(|(port, _)| port)
            .collect();
        most_open = most_open.max(open.len());
    }
    let ports: BTreeSet<u16> = upstream.ports.lock().unwrap().iter().copied().collect();
    let sent = upstream.ports.lock().unwrap().len();
    assert_eq!(sent, 2000, "every miss went upstream once");
    assert!(
        ports.len() <= UDP_SOCKETS,
        "2,000 queries came from {} source ports (at most {UDP_SOCKETS}): {ports:?}",
        ports.len()
    );
    assert!(
        (1..=UDP_SOCKETS).contains(&most_open),
        "{most_open} sockets open to the upstream at once"
    );
    let metrics = upstream_metrics(&forwarder, upstream.address);
    assert_eq!(
        metrics.sockets_opened(false) + metrics.sockets_reused(false),
        2000
    );
    assert!(metrics.sockets_opened(false) <= UDP_SOCKETS as u64);
}

/// CoreDNS's `expire`: pooled sockets close once they are `expire` old and
/// idle, and the next query goes out from a newly opened socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_udp_sockets_expire() {
    let knot = wildcard_knot();
    let (forwarder, _) = start(config(&[knot.address()], Duration::from_millis(300)));
    resolve_many(&forwarder, 40, 20).await;
    let first: BTreeSet<u16> = sockets_to(knot.address(), false)
        .into_iter()
        .map(|(port, _)| port)
        .collect();
    assert!(!first.is_empty(), "sockets stay open between queries");
    assert!(
        eventually(Duration::from_secs(5), || sockets_to(knot.address(), false)
            .is_empty())
        .await,
        "still open after expire: {:?}",
        sockets_to(knot.address(), false)
    );
    let metrics = upstream_metrics(&forwarder, knot.address());
    let opened = metrics.sockets_opened(false);
    assert_eq!(
        resolve_many(&forwarder, 1, 1).await,
        [["192.0.2.7"]],
        "answers after the sockets expired"
    );
    assert_eq!(metrics.sockets_opened(false), opened + 1, "a new socket");
}

/// RFC 5452 §9.1: a reply is accepted only from the upstream's address and
/// with the ID and question of a query in flight. A forged reply with the
/// right ID from another address never reaches the forwarder (the socket is
/// connected), a reply with a wrong ID is discarded and counted, and the
/// socket that got it is retired: it closes, and the next query goes out from
/// a newly opened socket. (The test counts sockets rather than comparing
/// ports: once the retired socket is closed, the kernel may hand its port to
/// a later socket, and did so in one CI run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_mismatched_replies_are_ignored() {
    let upstream = recording_upstream(true).await;
    let (forwarder, _) = start(config(&[upstream.address], Duration::from_secs(60)));
    let metrics = upstream_metrics(&forwarder, upstream.address);
    let answers = resolve_many(&forwarder, 1, 1).await;
    assert_eq!(answers, [["1.2.3.4"]], "the genuine answer, not a forgery");
    let retired = upstream.ports.lock().unwrap()[0];
    assert!(
        eventually(Duration::from_secs(2), || metrics.unmatched_replies() == 1).await,
        "the wrong-ID reply is counted, the forged one never arrives: {}",
        metrics.unmatched_replies()
    );
    assert!(
        eventually(Duration::from_secs(2), || !sockets_to(
            upstream.address,
            false
        )
        .iter()
        .any(|&(port, _)| port == retired))
        .await,
        "the socket on port {retired} got a mismatched reply, yet stays open"
    );
    let answers = resolve_many(&forwarder, 30, 1).await;
    assert!(answers.iter().all(|a| a == &["1.2.3.4"]), "{answers:?}");
    // Every query drew a wrong-ID reply, so none may reuse an earlier socket
    // (a retry after a slow reply would open one more, never reuse one).
    assert_eq!(
        metrics.sockets_reused(false),
        0,
        "a socket that got a mismatched reply was used again: {:?}",
        upstream.ports.lock().unwrap()
    );
    assert!(metrics.sockets_opened(false) >= 31, "one socket per query");
    let mut text = String::new();
    forwarder.inner.metrics.render(&mut text);
    let unmatched = format!(
        "signpost_forward_unmatched_replies_total{{to=\"{}\"}} {}",
        upstream.address,
        metrics.unmatched_replies()
    );
    assert!(
        text.lines().any(|l| l == unmatched),
        "no {unmatched} in\n{text}"
    );
}

/// An upstream that dies: the ICMP port unreachable its socket gets fails
/// the query at once (no wait for the attempt timeout), and a second
/// upstream answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_fails_over_on_the_pooled_socket() {
    let (mut dead, alive) = (wildcard_knot(), wildcard_knot());
    let mut config = config(&[dead.address()], Duration::from_secs(60));
    config.max_fails = 0;
    let (forwarder, _) = start(config.clone());
    assert_eq!(resolve_many(&forwarder, 5, 5).await.len(), 5);
    dead.stop();
    let error = forwarder
        .resolve(&query(1, "after.pool.test", RecordType::A))
        .await
        .expect_err("the only upstream is dead");
    assert_eq!(error, ForwardError::Unreachable, "refused, not timed out");

    config.upstreams = vec![dead.address(), alive.address()];
    config.policy = Policy::Sequential;
    let (forwarder, _) = start(config);
    let answers = resolve_many(&forwarder, 20, 5).await;
    assert!(answers.iter().all(|a| a == &["192.0.2.7"]), "{answers:?}");
}

// === TCP ===

/// RFC 7766 §6.2.1.1: queries are pipelined on one kept connection. 200
/// different names, 50 in flight at a time, over `force_tcp` to Knot: every
/// answer right, one connection dialled (and one open, /proc/net/tcp).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_queries_share_one_pipelined_connection() {
    let knot = wildcard_knot();
    let mut config = config(&[knot.address()], Duration::from_secs(60));
    config.force_tcp = true;
    let (forwarder, _) = start(config);
    let answers = resolve_many(&forwarder, 200, 50).await;
    assert!(answers.iter().all(|a| a == &["192.0.2.7"]), "{answers:?}");
    let metrics = upstream_metrics(&forwarder, knot.address());
    assert_eq!(metrics.sockets_opened(true), 1, "one connection dialled");
    assert_eq!(metrics.sockets_reused(true), 199);
    let established: Vec<_> = sockets_to(knot.address(), true)
        .into_iter()
        .filter(|&(_, state)| state == ESTABLISHED)
        .collect();
    assert_eq!(established.len(), 1, "{established:?}");
}

/// A kept connection whose upstream restarted is found closed, and the
/// query is sent again on a new connection: the client sees no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connection_is_redialled_after_the_upstream_restarts() {
    let mut knot = wildcard_knot();
    let mut config = config(&[knot.address()], Duration::from_secs(60));
    config.force_tcp = true;
    config.max_fails = 0;
    let (forwarder, _) = start(config);
    assert_eq!(resolve_many(&forwarder, 3, 3).await.len(), 3);
    knot.restart();
    let answers = resolve_many(&forwarder, 10, 5).await;
    assert!(answers.iter().all(|a| a == &["192.0.2.7"]), "{answers:?}");
    let metrics = upstream_metrics(&forwarder, knot.address());
    assert_eq!(metrics.sockets_opened(true), 2, "redialled once");
}

/// CoreDNS's `expire`: a kept TCP connection idle that long is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connection_expires() {
    let knot = wildcard_knot();
    let mut config = config(&[knot.address()], Duration::from_millis(300));
    config.force_tcp = true;
    let (forwarder, _) = start(config);
    resolve_many(&forwarder, 5, 5).await;
    let open = || {
        sockets_to(knot.address(), true)
            .into_iter()
            .filter(|&(_, state)| state == ESTABLISHED)
            .count()
    };
    assert_eq!(open(), 1);
    assert!(
        eventually(Duration::from_secs(5), || open() == 0).await,
        "the idle connection is still open"
    );
    assert_eq!(resolve_many(&forwarder, 1, 1).await, [["192.0.2.7"]]);
    let metrics = upstream_metrics(&forwarder, knot.address());
    assert_eq!(metrics.sockets_opened(true), 2);
}
