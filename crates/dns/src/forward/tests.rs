//! Forwarding against real upstream servers (Knot on loopback), plus small
//! fake upstreams where a test must count or misbehave on purpose.

use super::*;
use crate::testing::{Knot, TempDir, answer_data, parse, query, query_with, udp_ask_within};
use hickory_proto::op::{Edns, ResponseCode};
use hickory_proto::rr::RecordType;
use signpost_proto::Name;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex as StdMutex;
use tokio::net::{TcpListener, UdpSocket};

/// Records in the big RRset: 60 A records are about 1 KB, over the 512-byte
/// UDP limit of a query without EDNS (RFC 1035 §4.2.1).
const BIG_RRSET: u8 = 60;

/// `example.test` with `who` pointing at `10.0.0.<id>`, so a test can tell which upstream answered.
fn zone(id: u8) -> String {
    let mut text = format!(
        "@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\nwho A 10.0.0.{id}\n"
    );
    for i in 0..BIG_RRSET {
        text.push_str(&format!("big A 192.0.2.{i}\n"));
    }
    text
}

fn knot(id: u8) -> Knot {
    Knot::start(&[("example.test", &zone(id))])
}

fn config(upstreams: &[SocketAddr]) -> ForwardConfig {
    let mut config = ForwardConfig::new(Name::root(), upstreams.to_vec());
    config.health_check = Duration::from_millis(100);
    config
}

fn start(config: ForwardConfig) -> (Forwarder, Arc<ForwardMetrics>) {
    let metrics = Arc::new(ForwardMetrics::new("dns://127.0.0.1:53".to_owned()));
    (Forwarder::new(config, metrics.clone()), metrics)
}

fn requests(forwarder: &Forwarder, upstream: SocketAddr) -> u64 {
    forwarder
        .inner
        .upstreams
        .iter()
        .find(|u| u.address == upstream)
        .map_or(0, |u| u.metrics.requests())
}

async fn who(forwarder: &Forwarder) -> Result<Vec<String>, ForwardError> {
    let reply = forwarder
        .resolve(&query(7, "who.example.test", RecordType::A))
        .await?;
    Ok(answer_data(&reply))
}

/// What a loaded machine may add to a time bound on top of the configured
/// timeout (scheduling, not behaviour).
const MARGIN: Duration = Duration::from_secs(2);

/// How long to wait for something that happens within a few health-check
/// intervals (100 ms here): far more, so that only a thing that never
/// happens fails.
const PATIENCE: Duration = Duration::from_secs(30);

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

// === answers ===

/// Answers come back from either upstream with the client's ID and question
/// spelling (RFC 4343 §4.1: the question is echoed as asked).
#[tokio::test]
async fn answers_through_two_upstreams() {
    let (one, two) = (knot(1), knot(2));
    let (forwarder, _) = start(config(&[one.address(), two.address()]));
    let mut seen = std::collections::BTreeSet::new();
    for id in 0..20u16 {
        let reply = forwarder
            .resolve(&query(0xbee0 + id, "WhO.ExAmple.TEST", RecordType::A))
            .await
            .expect("an upstream answers");
        let message = parse(&reply);
        assert_eq!(message.metadata.id, 0xbee0 + id);
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        assert_eq!(message.queries[0].name().to_string(), "WhO.ExAmple.TEST.");
        seen.extend(answer_data(&reply));
    }
    // Random policy over 20 queries: both are used (chance of not: 2^-19).
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["10.0.0.1", "10.0.0.2"]
    );
    assert!(requests(&forwarder, one.address()) > 0 && requests(&forwarder, two.address()) > 0);

    // NXDOMAIN and REFUSED are answers too: passed through, not failed over.
    let reply = forwarder
        .resolve(&query(1, "nothing.example.test", RecordType::A))
        .await
        .unwrap();
    assert_eq!(parse(&reply).metadata.response_code, ResponseCode::NXDomain);
    let reply = forwarder
        .resolve(&query(1, "elsewhere.invalid", RecordType::A))
        .await
        .unwrap();
    assert_eq!(parse(&reply).metadata.response_code, ResponseCode::Refused);
}

/// `sequential` sends everything to the first healthy upstream.
#[tokio::test]
async fn sequential_policy_picks_the_first_upstream() {
    let (one, two) = (knot(1), knot(2));
    let mut config = config(&[one.address(), two.address()]);
    config.policy = Policy::Sequential;
    let (forwarder, _) = start(config);
    for _ in 0..10 {
        assert_eq!(who(&forwarder).await.unwrap(), ["10.0.0.1"]);
    }
    assert_eq!(requests(&forwarder, two.address()), 0);
}

/// `round_robin` moves the first choice by one per query.
#[tokio::test]
async fn round_robin_policy_alternates() {
    let (one, two) = (knot(1), knot(2));
    let mut config = config(&[one.address(), two.address()]);
    config.policy = Policy::RoundRobin;
    let (forwarder, _) = start(config);
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(who(&forwarder).await.unwrap().join(","));
    }
    assert_eq!(answers, ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"]);
}

// === failure and health ===

/// A dead upstream costs no answers: queries fail over, after `max_fails`
/// failures it is skipped, and once it answers health probes again it is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_upstream_is_skipped_then_restored_by_health_checks() {
    let (mut one, two) = (knot(1), knot(2));
    let mut config = config(&[one.address(), two.address()]);
    config.policy = Policy::Sequential;
    let (forwarder, metrics) = start(config);
    assert_eq!(who(&forwarder).await.unwrap(), ["10.0.0.1"]);

    one.stop();
    for _ in 0..3 {
        assert_eq!(who(&forwarder).await.unwrap(), ["10.0.0.2"], "fails over");
    }
    assert!(
        eventually(PATIENCE, || forwarder.is_down(one.address()) == Some(true)).await,
        "marked down after max_fails"
    );
    let sent_to_dead = requests(&forwarder, one.address());
    for _ in 0..5 {
        assert_eq!(who(&forwarder).await.unwrap(), ["10.0.0.2"]);
    }
    assert_eq!(
        requests(&forwarder, one.address()),
        sent_to_dead,
        "a down upstream is skipped"
    );

    let dead = forwarder
        .inner
        .upstreams
        .iter()
        .find(|u| u.address == one.address())
        .unwrap()
        .clone();
    assert!(
        eventually(PATIENCE, || dead.metrics.health_check_failures() > 0).await,
        "the down upstream is probed"
    );

    one.restart();
    assert!(
        eventually(PATIENCE, || forwarder.is_down(one.address()) == Some(false)).await,
        "a health probe brings it back"
    );
    assert_eq!(who(&forwarder).await.unwrap(), ["10.0.0.1"]);
    let mut text = String::new();
    metrics.render(&mut text);
    let failures = format!(
        "coredns_forward_healthcheck_failures_total{{to=\"{}\"}} {}",
        one.address(),
        dead.metrics.health_check_failures()
    );
    assert!(
        text.lines().any(|l| l == failures),
        "no {failures} in\n{text}"
    );
}

/// With every upstream dead, callers get an error within the 2 s timeout
/// (plus [`MARGIN`]), never a hang; once all are marked down the error says
/// so and the broken counter rises.
#[tokio::test]
async fn all_upstreams_down_is_an_error_within_the_timeout() {
    let (mut one, mut two) = (knot(1), knot(2));
    let mut config = config(&[one.address(), two.address()]);
    config.timeout = Duration::from_secs(2);
    let (forwarder, metrics) = start(config);
    one.stop();
    two.stop();
    let started = Instant::now();
    let error = who(&forwarder).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2) + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error, ForwardError::Unreachable);

    assert!(
        eventually(PATIENCE, || {
            forwarder.is_down(one.address()) == Some(true)
                && forwarder.is_down(two.address()) == Some(true)
        })
        .await
    );
    let started = Instant::now();
    assert_eq!(who(&forwarder).await, Err(ForwardError::NoHealthyUpstream));
    assert!(started.elapsed() < Duration::from_secs(2) + MARGIN);
    assert_eq!(
        ForwardError::NoHealthyUpstream.rcode(),
        signpost_proto::rcode::SERVFAIL
    );
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(
        text.contains("coredns_forward_healthcheck_broken_total 1\n"),
        "{text}"
    );
}

/// `failfast_all_unhealthy_upstreams`: with all down, nothing is tried.
#[tokio::test]
async fn fail_fast_when_all_upstreams_are_down() {
    let mut one = knot(1);
    let mut config = config(&[one.address()]);
    config.fail_fast_all_down = true;
    config.max_fails = 1;
    let (forwarder, _) = start(config);
    one.stop();
    assert_eq!(who(&forwarder).await, Err(ForwardError::Unreachable));
    let sent = requests(&forwarder, one.address());
    assert_eq!(who(&forwarder).await, Err(ForwardError::NoHealthyUpstream));
    assert_eq!(requests(&forwarder, one.address()), sent);
}

/// An upstream that never replies: the caller gets Timeout at the query's
/// timeout, not before and not later (plus [`MARGIN`] for a loaded machine).
#[tokio::test]
async fn silent_upstream_times_out() {
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut config = config(&[silent.local_addr().unwrap()]);
    config.timeout = Duration::from_millis(700);
    let (forwarder, _) = start(config);
    let started = Instant::now();
    assert_eq!(who(&forwarder).await, Err(ForwardError::Timeout));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(650) && elapsed < Duration::from_millis(700) + MARGIN,
        "{elapsed:?}"
    );
}

/// A silent first upstream costs one attempt timeout (not less; at most
/// [`MARGIN`] more), then the next answers.
#[tokio::test]
async fn silent_upstream_fails_over_after_the_attempt_timeout() {
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let two = knot(2);
    let mut config = config(&[silent.local_addr().unwrap(), two.address()]);
    config.policy = Policy::Sequential;
    let (forwarder, _) = start(config);
    let started = Instant::now();
    assert_eq!(who(&forwarder).await.unwrap(), ["10.0.0.2"]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= ATTEMPT_TIMEOUT && elapsed < ATTEMPT_TIMEOUT + MARGIN,
        "{elapsed:?}"
    );
}

// === transports ===

/// RFC 7766 §5: a truncated UDP reply is retried over TCP, which carries the whole RRset.
#[tokio::test]
async fn truncated_reply_is_retried_over_tcp() {
    let one = knot(1);
    let big = query(9, "big.example.test", RecordType::A);
    let direct = udp_ask_within(one.address(), &big, Duration::from_secs(2)).expect("knot answers");
    assert!(
        direct.metadata.truncation,
        "the zone's big RRset must not fit 512 bytes"
    );

    let (forwarder, _) = start(config(&[one.address()]));
    let reply = forwarder.resolve(&big).await.unwrap();
    let message = parse(&reply);
    assert!(!message.metadata.truncation);
    assert_eq!(message.answers.len(), usize::from(BIG_RRSET));
    assert_eq!(message.metadata.id, 9);
    assert_eq!(
        requests(&forwarder, one.address()),
        2,
        "one UDP and one TCP exchange"
    );

    // For a UDP client the caller cuts it back to header and question with TC.
    let fitted = fit_udp(&reply, 512);
    let message = parse(&fitted);
    assert!(message.metadata.truncation && message.answers.is_empty());
    assert_eq!(message.queries.len(), 1);
}

/// A TCP-only relay in front of Knot: no UDP listener on its port.
struct TcpRelay {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn tcp_relay(to: SocketAddr) -> TcpRelay {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    TcpRelay {
        address,
        connections,
    }
}

/// `force_tcp` never tries UDP: it works through a TCP-only path, and the
/// same path fails without it.
#[tokio::test]
async fn force_tcp_uses_tcp_only() {
    let one = knot(1);
    let relay = tcp_relay(one.address()).await;
    let mut forced = config(&[relay.address]);
    forced.force_tcp = true;
    let (forwarder, _) = start(forced);
    assert_eq!(who(&forwarder).await.unwrap(), ["10.0.0.1"]);
    assert_eq!(relay.connections.load(Ordering::Relaxed), 1);

    let (plain, _) = start(config(&[relay.address]));
    assert_eq!(who(&plain).await, Err(ForwardError::Unreachable));
}

/// A TCP client's query goes upstream over TCP; `prefer_udp` sends it over UDP.
#[tokio::test]
async fn tcp_clients_use_tcp_unless_prefer_udp() {
    let one = knot(1);
    let relay = tcp_relay(one.address()).await;
    let question = query(3, "who.example.test", RecordType::A);
    let (forwarder, _) = start(config(&[relay.address]));
    let reply = forwarder
        .resolve_from(&question, Transport::Tcp)
        .await
        .unwrap();
    assert_eq!(answer_data(&reply), ["10.0.0.1"]);

    let mut prefer = config(&[relay.address]);
    prefer.prefer_udp = true;
    let (forwarder, _) = start(prefer);
    assert_eq!(
        forwarder.resolve_from(&question, Transport::Tcp).await,
        Err(ForwardError::Unreachable)
    );
}

// === limits and coalescing, with fake upstreams that count ===

/// How a fake upstream treats each query.
#[derive(Clone, Copy)]
enum Fake {
    /// Answer `1.2.3.4` after a delay.
    Answer(Duration),
    /// Answer `1.2.3.4` once the test adds a permit to the upstream's `gate`
    /// (one permit per reply): the test decides when an exchange ends.
    Gated,
    /// First a reply with the wrong ID, then one for another question (both
    /// answering `6.6.6.6`), then the right one.
    Decoys,
}

/// A UDP upstream written for counting: it records every query it gets.
struct FakeUpstream {
    address: SocketAddr,
    queries: Arc<StdMutex<Vec<Vec<u8>>>>,
    /// Permits for [`Fake::Gated`] replies.
    gate: Arc<tokio::sync::Semaphore>,
}

async fn fake_upstream(behaviour: Fake) -> FakeUpstream {
    let socket = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
    let address = socket.local_addr().unwrap();
    let queries = Arc::new(StdMutex::new(Vec::new()));
    let seen = queries.clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gate_for_replies = gate.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65535];
        while let Ok((len, client)) = socket.recv_from(&mut buffer).await {
            let query = buffer[..len].to_vec();
            seen.lock().unwrap().push(query.clone());
            let socket = socket.clone();
            let gate = gate_for_replies.clone();
            tokio::spawn(async move {
                let reply = answer(&query, [1, 2, 3, 4]);
                match behaviour {
                    Fake::Answer(delay) => {
                        tokio::time::sleep(delay).await;
                    }
                    Fake::Gated => {
                        gate.acquire().await.expect("gate open").forget();
                    }
                    Fake::Decoys => {
                        let mut wrong_id = answer(&query, [6, 6, 6, 6]);
                        wire::set_id(&mut wrong_id, u16::from_be_bytes([query[0], query[1]]) ^ 1);
                        let _ = socket.send_to(&wrong_id, client).await;
                        let other = answer(
                            &query_with(
                                u16::from_be_bytes([query[0], query[1]]),
                                "other.example.test",
                                RecordType::A,
                                |_| {},
                            ),
                            [6, 6, 6, 6],
                        );
                        let _ = socket.send_to(&other, client).await;
                    }
                }
                let _ = socket.send_to(&reply, client).await;
            });
        }
    });
    FakeUpstream {
        address,
        queries,
        gate,
    }
}

/// Header and question of `query` with QR and RA set, and one A record.
fn answer(query: &[u8], address: [u8; 4]) -> Vec<u8> {
    let end = wire::question_end(query).expect("a question");
    let mut reply = query[..end].to_vec();
    reply[2] |= 0x80;
    reply[3] = 0x80;
    reply[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    reply.extend_from_slice(&address);
    reply
}

/// Identical questions in flight share one upstream exchange; each asker
/// still gets its own ID and spelling. A different type or DO bit is a
/// different question.
#[tokio::test]
async fn identical_queries_share_one_exchange() {
    let upstream = fake_upstream(Fake::Answer(Duration::from_millis(300))).await;
    let (forwarder, _) = start(config(&[upstream.address]));
    let spellings = ["who.example.test", "WHO.example.test", "Who.Example.Test"];
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..9u16 {
        let forwarder = forwarder.clone();
        let name = spellings[usize::from(id) % 3];
        tasks.spawn(async move {
            let reply = forwarder
                .resolve(&query(100 + id, name, RecordType::A))
                .await
                .unwrap();
            (id, name, reply)
        });
    }
    let mut others = tokio::task::JoinSet::new();
    for (qtype, dnssec_ok) in [(RecordType::AAAA, false), (RecordType::A, true)] {
        let forwarder = forwarder.clone();
        others.spawn(async move {
            forwarder
                .resolve(&query_with(1, "who.example.test", qtype, |m| {
                    let mut edns = Edns::new();
                    edns.set_dnssec_ok(dnssec_ok);
                    m.set_edns(edns);
                }))
                .await
                .unwrap()
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (id, name, reply) = done.unwrap();
        let message = parse(&reply);
        assert_eq!(message.metadata.id, 100 + id);
        assert_eq!(message.queries[0].name().to_string(), format!("{name}."));
        assert_eq!(answer_data(&reply), ["1.2.3.4"]);
    }
    others.join_all().await;
    assert_eq!(
        upstream.queries.lock().unwrap().len(),
        3,
        "one exchange for the nine identical questions, one each for AAAA and DO"
    );
    // Once finished, the same question is asked again.
    assert_eq!(who(&forwarder).await.unwrap(), ["1.2.3.4"]);
    assert_eq!(upstream.queries.lock().unwrap().len(), 4);
}

/// RFC 5452 §9: replies with the wrong ID or question are ignored, and each
/// query upstream gets a fresh, unpredictable ID rather than the client's
/// (§9.2). Twenty client queries all carry ID 7; upstream, the IDs must not
/// repeat the client's, not repeat each other, and not count up (a counter
/// would be predictable). Each is allowed to happen once by chance, so
/// random 16-bit IDs fail the test with a probability of about 4·10⁻⁶ (two
/// repeats among 190 pairs), far less for the other two.
#[tokio::test]
async fn mismatched_replies_are_ignored_and_ids_are_fresh() {
    const QUERIES: usize = 20;
    let upstream = fake_upstream(Fake::Decoys).await;
    let (forwarder, _) = start(config(&[upstream.address]));
    for _ in 0..QUERIES {
        assert_eq!(who(&forwarder).await.unwrap(), ["1.2.3.4"]);
    }
    let ids: Vec<u16> = upstream
        .queries
        .lock()
        .unwrap()
        .iter()
        .map(|q| u16::from_be_bytes([q[0], q[1]]))
        .collect();
    assert_eq!(
        ids.len(),
        QUERIES,
        "one upstream query per client query: {ids:?}"
    );
    let distinct: std::collections::BTreeSet<u16> = ids.iter().copied().collect();
    assert!(distinct.len() >= QUERIES - 1, "IDs repeat: {ids:?}");
    assert!(
        ids.iter().filter(|&&id| id == 7).count() <= 1,
        "the client's ID 7 went upstream: {ids:?}"
    );
    let steps_of_one = ids
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    assert!(steps_of_one <= 1, "the IDs count up: {ids:?}");
}

/// `max_concurrent`: one query over the limit is refused at once (CoreDNS
/// answers REFUSED); when the others finish, queries are admitted again.
/// "At once" is shown by order, not by a clock: the two admitted exchanges
/// cannot end before the test opens the fake upstream's gate, and the
/// refusal comes while both are still in flight.
#[tokio::test]
async fn max_concurrent_rejects_excess_queries() {
    let upstream = fake_upstream(Fake::Gated).await;
    let mut config = config(&[upstream.address]);
    config.max_concurrent = Some(2);
    let (forwarder, metrics) = start(config);
    let mut busy = tokio::task::JoinSet::new();
    for name in ["a.example.test", "b.example.test"] {
        let forwarder = forwarder.clone();
        busy.spawn(async move { forwarder.resolve(&query(1, name, RecordType::A)).await });
    }
    assert!(
        eventually(PATIENCE, || {
            forwarder.inner.in_flight.load(Ordering::Relaxed) == 2
        })
        .await
    );
    let refused = forwarder
        .resolve(&query(1, "c.example.test", RecordType::A))
        .await;
    assert_eq!(refused, Err(ForwardError::Overloaded));
    assert_eq!(
        forwarder.inner.in_flight.load(Ordering::Relaxed),
        2,
        "refused while the admitted exchanges still run"
    );
    assert_eq!(busy.len(), 2);
    assert_eq!(
        ForwardError::Overloaded.rcode(),
        signpost_proto::rcode::REFUSED
    );
    upstream.gate.add_permits(2);
    for done in busy.join_all().await {
        let reply = done.expect("admitted queries are answered");
        assert_eq!(answer_data(&reply), ["1.2.3.4"]);
    }
    upstream.gate.add_permits(1);
    assert_eq!(who(&forwarder).await.unwrap(), ["1.2.3.4"]);
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(
        text.contains("coredns_forward_max_concurrent_rejects_total 1\n"),
        "{text}"
    );
}

/// A malformed message is refused without sending anything.
#[tokio::test]
async fn malformed_query_is_not_sent() {
    let upstream = fake_upstream(Fake::Answer(Duration::ZERO)).await;
    let (forwarder, _) = start(config(&[upstream.address]));
    assert_eq!(
        forwarder.resolve(&[0, 1, 2]).await,
        Err(ForwardError::Malformed)
    );
    assert!(upstream.queries.lock().unwrap().is_empty());
}

// === metrics ===

/// The exposition uses CoreDNS's names, HELP and TYPE, and labels from the
/// configured upstreams and the RCODE set only.
#[tokio::test]
async fn metrics_use_coredns_names_and_labels() {
    let one = knot(1);
    let (forwarder, metrics) = start(config(&[one.address()]));
    who(&forwarder).await.unwrap();
    forwarder
        .resolve(&query(1, "nothing.example.test", RecordType::A))
        .await
        .unwrap();
    let mut text = String::new();
    metrics.render(&mut text);
    let to = one.address();
    for expected in [
        "# HELP coredns_forward_requests_total ",
        "# TYPE coredns_forward_requests_total counter",
        &format!("coredns_forward_requests_total{{to=\"{to}\"}} 2"),
        "# TYPE coredns_forward_responses_total counter",
        &format!("coredns_forward_responses_total{{to=\"{to}\",rcode=\"NOERROR\"}} 1"),
        &format!("coredns_forward_responses_total{{to=\"{to}\",rcode=\"NXDOMAIN\"}} 1"),
        "# TYPE coredns_forward_request_duration_seconds histogram",
        &format!(
            "coredns_forward_request_duration_seconds_bucket{{to=\"{to}\",rcode=\"NOERROR\",le=\"+Inf\"}} 1"
        ),
        &format!(
            "coredns_forward_request_duration_seconds_count{{to=\"{to}\",rcode=\"NXDOMAIN\"}} 1"
        ),
        &format!("coredns_forward_healthcheck_failures_total{{to=\"{to}\"}} 0"),
        "# TYPE coredns_forward_healthcheck_broken_total counter",
        "coredns_forward_healthcheck_broken_total 0",
        "# TYPE coredns_forward_max_concurrent_rejects_total counter",
        "coredns_forward_max_concurrent_rejects_total 0",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(expected)),
            "missing {expected:?} in\n{text}"
        );
    }
    // Every metric has HELP and TYPE exactly once, even across servers.
    let other = Arc::new(ForwardMetrics::new("dns://[::1]:53".to_owned()));
    let _second = Forwarder::new(config(&[one.address()]), other.clone());
    let mut both = String::new();
    render_all(&[metrics, other], &mut both);
    assert_eq!(
        both.matches("# TYPE coredns_forward_requests_total")
            .count(),
        1
    );
    assert_eq!(
        both.matches(&format!("coredns_forward_requests_total{{to=\"{to}\"}}"))
            .count(),
        1,
        "{both}"
    );
}

// === configuration ===

fn parse_directive(
    text: &str,
    base: &Path,
) -> Result<ForwardConfig, Vec<signpost_corefile::Error>> {
    let corefile = signpost_corefile::parse_str(text, &base.join("Corefile"), &|_| None)
        .expect("corefile parses");
    let mut errors = signpost_corefile::Errors::default();
    let config =
        crate::plugins::parse_forward(&corefile.blocks[0].directives[0], base, &mut errors);
    config.ok_or(errors.0)
}

/// CoreDNS's defaults, and every option read into the typed config.
#[test]
fn parses_defaults_and_options() {
    let base = Path::new("/etc/signpost");
    let config = parse_directive(
        ".:53 {\n    forward . 8.8.8.8 dns://1.1.1.1:5353 [2001:db8::1]:53 ::1\n}\n",
        base,
    )
    .unwrap();
    assert_eq!(config.from, Name::root());
    assert_eq!(
        config.upstreams,
        [
            "8.8.8.8:53".parse::<SocketAddr>().unwrap(),
            "1.1.1.1:5353".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
        ]
    );
    assert_eq!(config.max_fails, 2);
    assert_eq!(config.health_check, Duration::from_millis(500));
    assert_eq!(config.expire, Duration::from_secs(10));
    assert_eq!(config.policy, Policy::Random);
    assert_eq!(config.max_concurrent, None);
    assert_eq!(config.timeout, Duration::from_secs(5));
    assert!(config.health_check_recursion && !config.force_tcp && !config.prefer_udp);
    assert_eq!(config.location.line, 2);

    let config = parse_directive(
        "example.org {\n    forward example.org 127.0.0.1:5300 {\n        except a.example.org B.example.org\n        force_tcp\n        expire 30s\n        max_fails 0\n        health_check 1.5s no_rec domain health.example.\n        policy sequential\n        max_concurrent 100\n        failfast_all_unhealthy_upstreams\n    }\n}\n",
        base,
    )
    .unwrap();
    assert_eq!(config.from, Name::from_ascii("example.org").unwrap());
    assert_eq!(config.except.len(), 2);
    assert!(config.force_tcp && config.fail_fast_all_down);
    assert_eq!(config.expire, Duration::from_secs(30));
    assert_eq!(config.max_fails, 0);
    assert_eq!(config.health_check, Duration::from_millis(1500));
    assert!(!config.health_check_recursion);
    assert_eq!(
        config.health_check_domain,
        Name::from_ascii("health.example").unwrap()
    );
    assert_eq!(config.policy, Policy::Sequential);
    assert_eq!(config.max_concurrent, Some(100));
}

/// Every problem is reported at once, each at its own file and line.
#[test]
fn reports_every_error_with_its_line() {
    let errors = parse_directive(
        ".:53 {\n    forward . 8.8.8.8:99999 1.2.3 tls://9.9.9.9 {\n        expire soon\n        max_fails -1\n        health_check 0s\n        policy fastest\n        max_concurrent 0\n        tls cert key\n        bogus\n        force_tcp\n        prefer_udp\n    }\n}\n",
        Path::new("/etc/signpost"),
    )
    .unwrap_err();
    let lines: Vec<u32> = errors.iter().map(|e| e.location.line).collect();
    assert_eq!(lines, [2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 2], "{errors:#?}");
    let text: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.location, e.message))
        .collect();
    for (index, needle) in [
        (
            0,
            "/etc/signpost/Corefile:2: `forward`: upstream \"8.8.8.8:99999\" is not IP[:PORT]",
        ),
        (1, "\"1.2.3\" is not IP[:PORT]"),
        (2, "`tls://` is not supported yet"),
        (3, "`expire` expects one duration"),
        (4, "`max_fails` expects one whole number"),
        (5, "`health_check` expects a positive duration"),
        (
            6,
            "`policy` expects `random`, `round_robin` or `sequential`, found \"fastest\"",
        ),
        (7, "`max_concurrent` expects one positive whole number"),
        (8, "needs DNS over TLS"),
        (9, "unknown `forward` option `bogus`"),
        (10, "`force_tcp` and `prefer_udp` cannot both be set"),
    ] {
        assert!(
            text[index].contains(needle),
            "{index}: {:?} lacks {needle:?}",
            text[index]
        );
    }

    let errors = parse_directive(".:53 {\n    forward .\n}\n", Path::new("/x")).unwrap_err();
    assert!(
        errors[0]
            .message
            .contains("expects FROM and at least one TO")
    );
}

/// A `TO` that is a file is read as resolv.conf: its `nameserver` lines, relative to the Corefile.
#[test]
fn reads_upstreams_from_a_resolv_conf_file() {
    let dir = TempDir::new("signpost-forward-config");
    std::fs::write(
        dir.path().join("resolv.conf"),
        "# comment\nsearch example.org\nnameserver 192.0.2.1\nnameserver 2001:db8::53\noptions ndots:5\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.conf"), "search x\n").unwrap();
    let config = parse_directive(
        ".:53 {\n    forward . resolv.conf 192.0.2.9\n}\n",
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        config.upstreams,
        [
            "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
            "[2001:db8::53]:53".parse().unwrap(),
            "192.0.2.9:53".parse().unwrap(),
        ]
    );
    let errors = parse_directive(
        ".:53 {\n    forward . empty.conf missing.conf\n}\n",
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].message.contains("has no `nameserver` lines"),
        "{errors:?}"
    );
    assert!(
        errors[1]
            .message
            .contains("neither IP[:PORT] nor a readable resolv.conf"),
        "{errors:?}"
    );
}

/// Go durations, as CoreDNS writes them, fractions included (the one parser
/// every plugin uses).
#[test]
fn parses_go_durations() {
    let parse_go_duration = |text: &str| signpost_corefile::toolkit::parse_duration(text).ok();
    for (text, expected) in [
        ("0.5s", Duration::from_millis(500)),
        ("500ms", Duration::from_millis(500)),
        ("1m30s", Duration::from_secs(90)),
        ("2h", Duration::from_secs(7200)),
        ("100us", Duration::from_micros(100)),
    ] {
        assert_eq!(parse_go_duration(text), Some(expected), "{text}");
    }
    for bad in ["", "5", "s", "1x", "1.2.3s", "-1s"] {
        assert_eq!(parse_go_duration(bad), None, "{bad}");
    }
}

/// `handles`: within FROM, minus the `except` subtrees.
#[tokio::test]
async fn handles_from_minus_except() {
    let mut config = ForwardConfig::new(
        Name::from_ascii("example.org").unwrap(),
        vec!["192.0.2.1:53".parse().unwrap()],
    );
    config.except = vec![Name::from_ascii("internal.example.org").unwrap()];
    let (forwarder, _) = start(config);
    let wire = |text: &str| Name::from_ascii(text).unwrap().as_wire().to_vec();
    assert!(forwarder.handles(&wire("example.org")));
    assert!(forwarder.handles(&wire("www.example.org")));
    assert!(!forwarder.handles(&wire("internal.example.org")));
    assert!(!forwarder.handles(&wire("db.internal.example.org")));
    assert!(!forwarder.handles(&wire("example.com")));
}

/// `fit_udp` keeps a reply that fits, and cuts one that does not to header,
/// question and OPT with TC set (RFC 2181 §9, RFC 6891 §7).
#[test]
fn fit_udp_cuts_to_question_and_opt() {
    let query = query_with(5, "big.example.test", RecordType::A, |m| {
        m.set_edns(Edns::new());
    });
    let mut reply = parse(&query);
    reply.metadata.message_type = hickory_proto::op::MessageType::Response;
    for i in 0..40u8 {
        reply.add_answer(hickory_proto::rr::Record::from_rdata(
            hickory_proto::rr::Name::from_ascii("big.example.test.").unwrap(),
            60,
            hickory_proto::rr::RData::A(Ipv4Addr::new(192, 0, 2, i).into()),
        ));
    }
    let bytes = reply.to_vec().unwrap();
    assert_eq!(fit_udp(&bytes, 4096), bytes);
    let fitted = parse(&fit_udp(&bytes, 512));
    assert!(fitted.metadata.truncation);
    assert!(fitted.answers.is_empty());
    assert_eq!(fitted.queries.len(), 1);
    assert!(fitted.edns.is_some(), "OPT kept");
}
