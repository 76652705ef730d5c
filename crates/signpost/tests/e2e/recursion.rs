//! The `forward` and `cache` plugins end to end (issue 3, points 2 to 5):
//! the real binary forwarding to real `knotd` upstreams on loopback, which
//! the tests start, kill and compare against.
//!
//! ```text
//! client ──UDP/TCP──▶ signpost (cache ─miss─▶ forward) ──UDP, TC ⇒ TCP──▶ knotd #1, knotd #2
//!    ▲ the same question asked of knotd directly is the expected answer ◀──────────┘
//! ```
//!
//! Counters come from `/metrics` (CoreDNS's names): `coredns_forward_requests_total`
//! shows whether a query reached an upstream, `coredns_cache_*` what the cache
//! did. Every wait is bounded, and timings are asserted with a margin.

use crate::fixtures::CLUSTER;
use crate::support::{REPLY_LIMIT, TestServer};
use crate::upstream::{Knot, SilentUpstream, ask_udp};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// The upstream zone. SOA TTL 60 and MINIMUM 20, so negative answers carry
/// 20 (RFC 2308 §3). `short` expires quickly (serve_stale), `prefetch` has
/// TTL 6, `long` TTL 3600 (the cache's caps), `*.many` gives any number of
/// names (capacity), `big` is 60 A records, too large for 512-byte UDP.
fn zone() -> String {
    let mut text = String::from(
        "$ORIGIN upstream.test.
$TTL 300
@        60 SOA ns hostmaster 1 3600 600 86400 20
@           NS  ns
ns          A   192.0.2.53
www         A   192.0.2.1
www         AAAA 2001:db8::1
mail        MX  10 mx
mx          A   192.0.2.25
txt         TXT \"hello from knot\"
alias       CNAME www
long   3600 A   192.0.2.36
short     1 A   192.0.2.37
prefetch  6 A   192.0.2.6
*.many      A   192.0.2.77
",
    );
    for i in 1..=60 {
        let _ = writeln!(text, "big A 198.51.100.{i}");
    }
    text
}

/// A zone for the cluster test: knotd also serves `cluster.local`, so a name
/// the catalog does not hold falls through to it.
const UPSTREAM_CLUSTER_ZONE: &str = "$ORIGIN cluster.local.
$TTL 300
@  60 SOA ns.upstream.test. hostmaster.upstream.test. 1 3600 600 86400 20
@     NS  ns.upstream.test.
outside.web.svc A 192.0.2.99
";

/// One knotd serving the test zone.
fn knot() -> Knot {
    Knot::serving(&[("upstream.test.", &zone())])
}

/// Starts signpost on `.` with `plugins` (forward, cache) inside the block,
/// plus `ready` and `prometheus` on the admin port; waits for `/ready`.
fn signpost(plugins: &str) -> TestServer {
    let corefile = format!(
        ".:{{PORT}} {{\n    bind 127.0.0.1\n{plugins}\n    ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n"
    );
    TestServer::start_with(&corefile, &[], true)
}

/// `forward . A B ...` with an optional block.
fn forward(upstreams: &[SocketAddr], block: &str) -> String {
    let to: Vec<String> = upstreams.iter().map(ToString::to_string).collect();
    if block.is_empty() {
        format!("    forward . {}", to.join(" "))
    } else {
        format!("    forward . {} {{\n{block}\n    }}", to.join(" "))
    }
}

/// Asks over UDP (no EDNS), waiting up to [`REPLY_LIMIT`]; panics with the
/// log when no reply comes.
fn ask(server: &TestServer, name: &str, qtype: RecordType) -> Message {
    ask_udp(server.addr(), name, qtype, REPLY_LIMIT).unwrap_or_else(|| {
        panic!(
            "no reply from signpost for {name} {qtype}; log:\n{}",
            server.log()
        )
    })
}

/// Asks knotd directly (the reference answer).
fn ask_knot(knot: &Knot, name: &str, qtype: RecordType) -> Message {
    ask_udp(knot.addr(), name, qtype, REPLY_LIMIT)
        .unwrap_or_else(|| panic!("no reply from knotd for {name} {qtype}"))
}

/// A section as sorted `owner ttl class type rdata` lines.
fn records(section: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = section
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name.to_ascii().to_lowercase(),
                r.ttl,
                r.record_type(),
                r.data
            )
        })
        .collect();
    lines.sort();
    lines
}

/// The first answer record's TTL; panics with the message when there is none.
fn first_ttl(message: &Message) -> u32 {
    message
        .answers
        .first()
        .unwrap_or_else(|| panic!("no answer records:\n{message}"))
        .ttl
}

/// Wall-clock time since a moment, for measuring real processes
/// (`std::time::Instant` is banned so unit tests can pause tokio time, which
/// cannot apply to a child process).
#[derive(Clone, Copy)]
struct Stopwatch(SystemTime);

impl Stopwatch {
    fn start() -> Self {
        Self(SystemTime::now())
    }

    fn elapsed(self) -> Duration {
        self.0.elapsed().unwrap_or_default()
    }
}

// === Metrics ===

/// One scrape of `/metrics`.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Scrape {
    fn of(server: &TestServer) -> Self {
        let (status, text) = server
            .http_get("/metrics")
            .unwrap_or_else(|| panic!("cannot scrape /metrics; log:\n{}", server.log()));
        assert_eq!(status, 200, "/metrics status; body:\n{text}");
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("bad sample line {line:?}")))
            .collect();
        Self { text, samples }
    }

    /// The sum over every series of `name` whose labels include `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// `coredns_forward_requests_total` over every upstream.
    fn forward_requests(&self) -> f64 {
        self.sum("coredns_forward_requests_total", &[])
    }
}

/// `name{k="v",...} value` or `name value`.
fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            for pair in split_labels(body) {
                let (key, quoted) = pair.split_once('=')?;
                let unquoted = quoted.strip_prefix('"')?.strip_suffix('"')?;
                labels.insert(key.to_owned(), unquoted.to_owned());
            }
            (name, labels)
        }
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Splits `a="x",b="y,z"` at the commas outside quotes.
fn split_labels(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in body.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < body.len() {
        parts.push(&body[start..]);
    }
    parts
}

// === Point 2: forwarding ===

/// CoreDNS `forward` README ("facilitates proxying DNS messages to upstream
/// resolvers"): with no cache, every answer through `forward . P1 P2` is
/// the upstream's own answer (RCODE, answer and authority sections, TTLs
/// included) over UDP and over TCP: positive answers of several types, a
/// CNAME, NXDOMAIN and NODATA with the SOA (RFC 2308 §2).
#[test]
fn forwarded_answers_match_the_upstream() {
    let (first, second) = (knot(), knot());
    let server = signpost(&forward(&[first.addr(), second.addr()], ""));
    let questions = [
        ("www.upstream.test.", RecordType::A),
        ("www.upstream.test.", RecordType::AAAA),
        ("mail.upstream.test.", RecordType::MX),
        ("txt.upstream.test.", RecordType::TXT),
        ("alias.upstream.test.", RecordType::A),
        ("upstream.test.", RecordType::NS),
        ("nothere.upstream.test.", RecordType::A),
        ("www.upstream.test.", RecordType::TXT),
    ];
    for (name, qtype) in questions {
        let expected = ask_knot(&first, name, qtype);
        for (transport, actual) in [
            ("udp", ask(&server, name, qtype)),
            ("tcp", server.query_tcp(name, qtype)),
        ] {
            let summary = |m: &Message| {
                (
                    m.metadata.response_code,
                    records(&m.answers),
                    records(&m.authorities),
                )
            };
            assert_eq!(
                summary(&actual),
                summary(&expected),
                "{name} {qtype} over {transport}: signpost:\n{actual}\nknotd:\n{expected}"
            );
            assert_eq!(
                actual.queries, expected.queries,
                "question echoed for {name} {qtype}"
            );
        }
    }
}

/// CoreDNS `forward` README: a failed exchange starts health checks every
/// `health_check` interval; after `max_fails` failures the upstream is down
/// and skipped. Killing one of two upstreams must not fail a single query:
/// an attempt at the dead one fails (ICMP port unreachable) and the same
/// query goes on to the other, well within the 5 s forward deadline, which
/// the client's wait ([`REPLY_LIMIT`]) exceeds. Sixty queries, one every
/// 50 ms, and the dead upstream's failed health checks show in
/// `coredns_forward_healthcheck_failures_total{to}`.
#[test]
fn queries_survive_one_dead_upstream() {
    let (mut dying, surviving) = (knot(), knot());
    let server = signpost(&forward(
        &[dying.addr(), surviving.addr()],
        "        health_check 0.5s\n        max_fails 2",
    ));
    let warm = ask(&server, "www.upstream.test.", RecordType::A);
    assert_eq!(warm.metadata.response_code, ResponseCode::NoError, "{warm}");

    dying.stop();
    let killed = Stopwatch::start();
    let mut failures = Vec::new();
    for sent in 0..60 {
        let reply = ask_udp(
            server.addr(),
            "www.upstream.test.",
            RecordType::A,
            REPLY_LIMIT,
        );
        let ok = reply.as_ref().is_some_and(|m| {
            records(&m.answers) == ["www.upstream.test. 300 A 192.0.2.1"]
                && m.metadata.response_code == ResponseCode::NoError
        });
        if !ok {
            failures.push((sent, killed.elapsed(), reply.map(|m| m.to_string())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        failures.is_empty(),
        "queries failed after one upstream died (query, time, reply): {failures:?}; log:\n{}",
        server.log()
    );
    let dead = dying.addr().to_string();
    let deadline = SystemTime::now() + Duration::from_secs(60);
    loop {
        let scrape = Scrape::of(&server);
        let failed = scrape.sum(
            "coredns_forward_healthcheck_failures_total",
            &[("to", &dead)],
        );
        if failed >= 1.0 {
            break;
        }
        assert!(
            SystemTime::now() < deadline,
            "the dead upstream was never health checked and failed:\n{}",
            scrape.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CoreDNS `forward`: with every upstream down the client gets SERVFAIL
/// (RFC 1035 §4.1.1: "the name server was unable to process this query"),
/// never silence. Dead upstreams (ports closed: ICMP unreachable, refused)
/// fail fast: the answer comes within the 5 s query timeout (plus a 2 s
/// margin for a loaded machine), measured from the client, also after the
/// health checks have marked both down
/// (`coredns_forward_healthcheck_broken_total` counts those queries). When
/// one comes back, its health check marks it up and answers resume.
#[test]
fn dead_upstreams_give_servfail_without_a_hang() {
    let (mut first, mut second) = (knot(), knot());
    let server = signpost(&forward(
        &[first.addr(), second.addr()],
        "        health_check 0.5s\n        max_fails 2",
    ));
    first.stop();
    second.stop();
    for round in 0..6 {
        let started = Stopwatch::start();
        let reply = ask_udp(
            server.addr(),
            "www.upstream.test.",
            RecordType::A,
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("round {round}: no reply at all; log:\n{}", server.log()));
        let elapsed = started.elapsed();
        eprintln!("dead upstreams, round {round}: SERVFAIL after {elapsed:?}");
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "{reply}"
        );
        assert!(
            elapsed < Duration::from_secs(5) + Duration::from_secs(2),
            "round {round}: {elapsed:?}"
        );
    }
    // The rounds above made every upstream fail twice: the next query finds
    // both down, and counts it (the counter rises once the health checks
    // agree, so wait for it).
    let deadline = SystemTime::now() + Duration::from_secs(60);
    loop {
        let reply = ask(&server, "www.upstream.test.", RecordType::A);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "{reply}"
        );
        let scrape = Scrape::of(&server);
        if scrape.sum("coredns_forward_healthcheck_broken_total", &[]) >= 1.0 {
            break;
        }
        assert!(
            SystemTime::now() < deadline,
            "no query found every upstream down:\n{}",
            scrape.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Recovery: one upstream back on its port; its health check (every
    // 0.5 s) or the random try finds it, and answers flow again.
    first.restart();
    let restarted = Stopwatch::start();
    let recovered = loop {
        let reply = ask_udp(
            server.addr(),
            "www.upstream.test.",
            RecordType::A,
            REPLY_LIMIT,
        );
        if reply.is_some_and(|m| m.metadata.response_code == ResponseCode::NoError) {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "no answer 60 s after an upstream came back; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("dead upstreams: answers again {recovered:?} after one restarted");
    for _ in 0..10 {
        let reply = ask(&server, "www.upstream.test.", RecordType::A);
        assert_eq!(
            records(&reply.answers),
            ["www.upstream.test. 300 A 192.0.2.1"],
            "{reply}"
        );
    }
}

/// CoreDNS `forward`: an upstream that never answers is given up on; the
/// client gets SERVFAIL at the query timeout (5 s, as CoreDNS), not a hang
/// and not before. Both upstreams are UDP sockets that read and never reply.
#[test]
fn silent_upstreams_give_servfail_within_the_timeout() {
    let (first, second) = (SilentUpstream::bind(), SilentUpstream::bind());
    let server = signpost(&forward(&[first.addr(), second.addr()], ""));
    let started = Stopwatch::start();
    let reply = ask_udp(
        server.addr(),
        "www.upstream.test.",
        RecordType::A,
        Duration::from_secs(20),
    )
    .unwrap_or_else(|| panic!("no reply within 20 s; log:\n{}", server.log()));
    let elapsed = started.elapsed();
    eprintln!("silent upstreams: SERVFAIL after {elapsed:?}");
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::ServFail,
        "{reply}"
    );
    // Not before the timeout (two silent upstreams, 2 s per attempt, give
    // up at the 5 s deadline) and not long after it (a 2 s margin for a
    // loaded machine).
    assert!(
        elapsed >= Duration::from_secs(4),
        "took {elapsed:?}: SERVFAIL before the upstreams could time out"
    );
    assert!(
        elapsed <= Duration::from_secs(5) + Duration::from_secs(2),
        "took {elapsed:?}, the timeout is 5 s"
    );
}

/// RFC 8767 §4 and CoreDNS `cache` `serve_stale [DURATION] [immediate|verify]`:
/// an entry cached before the upstreams died is served after it expires,
/// with TTL 0 as CoreDNS does, and `coredns_cache_served_stale_total` counts
/// it, in both refresh modes (`immediate` answers stale at once, `verify`
/// asks upstream first); a name never cached still gets SERVFAIL.
#[test]
fn serve_stale_answers_when_upstreams_are_dead() {
    for mode in ["", " verify"] {
        let (mut first, mut second) = (knot(), knot());
        let plugins = format!(
            "    cache 30 {{\n        success 100 30 1\n        serve_stale 1h{mode}\n    }}\n{}",
            forward(&[first.addr(), second.addr()], "")
        );
        let server = signpost(&plugins);
        let fresh = ask(&server, "short.upstream.test.", RecordType::A);
        assert_eq!(records(&fresh.answers).len(), 1, "{fresh}");
        assert_eq!(
            first_ttl(&fresh),
            1,
            "upstream TTL 1 is above MINTTL 1:\n{fresh}"
        );
        first.stop();
        second.stop();
        std::thread::sleep(Duration::from_millis(2200));

        let started = Stopwatch::start();
        let stale = ask(&server, "short.upstream.test.", RecordType::A);
        eprintln!(
            "serve_stale{mode}: stale answer after {:?}",
            started.elapsed()
        );
        assert_eq!(
            stale.metadata.response_code,
            ResponseCode::NoError,
            "serve_stale{mode}:\n{stale}"
        );
        assert_eq!(
            records(&stale.answers),
            vec!["short.upstream.test. 0 A 192.0.2.37".to_owned()],
            "serve_stale{mode}: the stale answer, TTL 0:\n{stale}"
        );
        let never = ask(&server, "www.upstream.test.", RecordType::A);
        assert_eq!(
            never.metadata.response_code,
            ResponseCode::ServFail,
            "{never}"
        );
        let scrape = Scrape::of(&server);
        assert!(
            scrape.sum("coredns_cache_served_stale_total", &[]) >= 1.0,
            "serve_stale{mode}:\n{}",
            scrape.text
        );
    }
}

/// RFC 1035 §4.2.1 and RFC 2181 §9: an answer too large for a 512-byte UDP
/// reply is sent with TC=1 (and no partial RRset); the client retries over
/// TCP and gets all 60 records. RFC 7766 §5: signpost itself, getting TC=1
/// from the upstream over UDP, asks the same upstream again over TCP: one
/// client query costs two upstream requests (`coredns_forward_requests_total`).
/// dig, which retries over TCP on TC, ends up with the full RRset.
#[test]
fn oversized_answers_truncate_over_udp_and_complete_over_tcp() {
    let upstream = knot();
    let direct = ask_knot(&upstream, "big.upstream.test.", RecordType::A);
    assert!(
        direct.metadata.truncation,
        "knotd itself truncates over UDP without EDNS:\n{direct}"
    );
    let server = signpost(&forward(&[upstream.addr()], ""));
    let to = upstream.addr().to_string();
    let before = Scrape::of(&server).sum("coredns_forward_requests_total", &[("to", &to)]);

    let udp = ask(&server, "big.upstream.test.", RecordType::A);
    assert!(udp.metadata.truncation, "TC=1 over UDP:\n{udp}");
    assert_eq!(udp.metadata.response_code, ResponseCode::NoError, "{udp}");
    assert!(udp.answers.is_empty(), "no partial RRset:\n{udp}");
    let after = Scrape::of(&server);
    assert_eq!(
        after.sum("coredns_forward_requests_total", &[("to", &to)]) - before,
        2.0,
        "UDP (truncated) then TCP to the upstream:\n{}",
        after.text
    );
    assert!(
        after.sum("coredns_forward_responses_total", &[("to", &to)]) >= 2.0,
        "{}",
        after.text
    );

    let tcp = server.query_tcp("big.upstream.test.", RecordType::A);
    assert!(!tcp.metadata.truncation, "{tcp}");
    assert_eq!(tcp.answers.len(), 60, "the whole RRset over TCP:\n{tcp}");

    let dig = server.dig(&["big.upstream.test.", "A", "+noedns"]);
    let lines = dig
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains("198.51.100."))
        .count();
    assert_eq!(
        lines, 60,
        "dig retries over TCP and sees 60 records:\n{dig}"
    );

    // With a cache: the full answer (got over TCP) is stored; a UDP client
    // still gets TC=1, and the TCP retry is a hit that asks no upstream.
    let cached = signpost(&format!(
        "    cache 30\n{}",
        forward(&[upstream.addr()], "")
    ));
    let before = Scrape::of(&cached).forward_requests();
    let udp = ask(&cached, "big.upstream.test.", RecordType::A);
    assert!(udp.metadata.truncation && udp.answers.is_empty(), "{udp}");
    let tcp = cached.query_tcp("big.upstream.test.", RecordType::A);
    assert_eq!(tcp.answers.len(), 60, "{tcp}");
    let after = Scrape::of(&cached);
    assert_eq!(
        after.forward_requests() - before,
        2.0,
        "UDP + TCP upstream for the first ask, none for the TCP hit:\n{}",
        after.text
    );
    assert_eq!(
        after.sum("coredns_cache_hits_total", &[("type", "success")]),
        1.0,
        "{}",
        after.text
    );
}

/// CoreDNS `forward` `max_concurrent`: "queries beyond this limit are
/// refused" (REFUSED) and counted in `coredns_forward_max_concurrent_rejects_total`.
/// One query is held by an upstream that never answers (until the 5 s
/// forward timeout); a second, for another name, sent once the first has
/// reached the upstream, is refused at once: its REFUSED arrives while the
/// first is still held.
#[test]
fn max_concurrent_refuses_extra_queries() {
    let silent = SilentUpstream::bind();
    let server = signpost(&forward(
        &[silent.addr()],
        "        max_concurrent 1\n        max_fails 0",
    ));
    let address = server.addr();
    let to = silent.addr().to_string();
    let before = Scrape::of(&server).sum("coredns_forward_requests_total", &[("to", &to)]);
    let held = std::thread::spawn(move || {
        ask_udp(
            address,
            "held.upstream.test.",
            RecordType::A,
            Duration::from_secs(20),
        )
    });
    // The held query is in flight once it was sent upstream.
    let deadline = SystemTime::now() + Duration::from_secs(60);
    while Scrape::of(&server).sum("coredns_forward_requests_total", &[("to", &to)]) <= before {
        assert!(
            SystemTime::now() < deadline && !held.is_finished(),
            "the held query never reached the upstream; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let extra = ask(&server, "extra.upstream.test.", RecordType::A);
    assert!(
        !held.is_finished(),
        "REFUSED came only after the held query finished"
    );
    assert_eq!(
        extra.metadata.response_code,
        ResponseCode::Refused,
        "{extra}"
    );
    let held = held.join().expect("held query thread");
    assert_eq!(
        held.map(|m| m.metadata.response_code),
        Some(ResponseCode::ServFail),
        "the held query times out into SERVFAIL"
    );
    let scrape = Scrape::of(&server);
    assert_eq!(
        scrape.sum("coredns_forward_max_concurrent_rejects_total", &[]),
        1.0,
        "{}",
        scrape.text
    );
}

/// CoreDNS `kubernetes` with `fallthrough` next to `forward .`: cluster
/// names are answered authoritatively (AA=1, Kubernetes DNS spec 1.1.0 §2.3.1)
/// from the catalog without asking upstream; a cluster name the catalog
/// lacks falls through to the forwarder; other names are forwarded.
#[test]
fn cluster_zone_and_forward_share_a_server() {
    let upstream = Knot::serving(&[
        ("upstream.test.", &zone()),
        ("cluster.local.", UPSTREAM_CLUSTER_ZONE),
    ]);
    let corefile = format!(
        ".:{{PORT}} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n        catalog catalog\n        fallthrough\n    }}\n{}\n    ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n",
        forward(&[upstream.addr()], "")
    );
    let server = TestServer::start_with(&corefile, &[("catalog/cluster.yaml", CLUSTER)], true);
    let before = Scrape::of(&server).forward_requests();

    let cluster = ask(&server, "api.web.svc.cluster.local.", RecordType::A);
    assert!(cluster.metadata.authoritative, "{cluster}");
    assert_eq!(
        records(&cluster.answers),
        // TTL 30: signpost's default `ttl` (docs/corefile.md).
        vec!["api.web.svc.cluster.local. 30 A 10.96.1.10".to_owned()],
        "{cluster}"
    );
    assert_eq!(
        Scrape::of(&server).forward_requests(),
        before,
        "a cluster name is not forwarded"
    );

    let fell = ask(&server, "outside.web.svc.cluster.local.", RecordType::A);
    assert_eq!(
        records(&fell.answers),
        vec!["outside.web.svc.cluster.local. 300 A 192.0.2.99".to_owned()],
        "fell through to the upstream:\n{fell}"
    );
    let forwarded = ask(&server, "www.upstream.test.", RecordType::A);
    assert_eq!(
        records(&forwarded.answers),
        vec!["www.upstream.test. 300 A 192.0.2.1".to_owned()],
        "{forwarded}"
    );
    assert_eq!(Scrape::of(&server).forward_requests() - before, 2.0);
}

// === Point 3: cache ===

/// CoreDNS `cache`: a cached answer's TTL counts down with its age ("the
/// TTL is decremented"), and a hit is served without asking upstream:
/// after 2 s the TTL is at least 2 lower and `coredns_forward_requests_total`
/// has not moved; `coredns_cache_hits_total{type="success"}` has.
#[test]
fn cached_ttl_counts_down_without_upstream_requests() {
    let (first, second) = (knot(), knot());
    let plugins = format!(
        "    cache 30\n{}",
        forward(&[first.addr(), second.addr()], "")
    );
    let server = signpost(&plugins);
    let fresh = ask(&server, "www.upstream.test.", RecordType::A);
    let fresh_ttl = first_ttl(&fresh);
    assert_eq!(fresh_ttl, 30, "300 capped by `cache 30`:\n{fresh}");
    let before = Scrape::of(&server);
    std::thread::sleep(Duration::from_millis(2100));
    let aged = ask(&server, "www.upstream.test.", RecordType::A);
    let after = Scrape::of(&server);
    assert!(
        first_ttl(&aged) + 2 <= fresh_ttl,
        "TTL {fresh_ttl} then {} after 2 s:\n{aged}",
        first_ttl(&aged)
    );
    assert_eq!(
        records(&aged.answers)
            .iter()
            .map(|l| l.split(' ').skip(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        vec!["A 192.0.2.1".to_owned()]
    );
    assert_eq!(
        after.forward_requests(),
        before.forward_requests(),
        "a hit is not forwarded:\n{}",
        after.text
    );
    assert_eq!(
        after.sum("coredns_cache_hits_total", &[("type", "success")])
            - before.sum("coredns_cache_hits_total", &[("type", "success")]),
        1.0
    );
}

/// RFC 2308 §3 and §5: a negative answer (NXDOMAIN, and NODATA) is cached
/// for min(SOA TTL, SOA MINIMUM) = min(60, 20) = 20 s, and CoreDNS's
/// `denial CAPACITY TTL` caps it further (8 s here). The second ask is a
/// hit: no upstream request, SOA TTL no higher. knotd already sends the SOA
/// with TTL 20 (RFC 2308 §3), so the cache's own min() on a SOA sent with
/// its full TTL is left to `cache/tests.rs`.
#[test]
fn negative_answers_are_cached_for_the_soa_minimum() {
    let upstream = knot();
    for (cache, expected) in [
        ("    cache 30".to_owned(), 20),
        ("    cache 30 {\n        denial 100 8\n    }".to_owned(), 8),
    ] {
        let server = signpost(&format!("{cache}\n{}", forward(&[upstream.addr()], "")));
        for (name, qtype, code) in [
            (
                "nothere.upstream.test.",
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            ("www.upstream.test.", RecordType::TXT, ResponseCode::NoError),
        ] {
            let first = ask(&server, name, qtype);
            assert_eq!(first.metadata.response_code, code, "{first}");
            assert!(first.answers.is_empty(), "{first}");
            let soa = first
                .authorities
                .iter()
                .find(|r| r.record_type() == RecordType::SOA)
                .unwrap_or_else(|| panic!("SOA in authority (RFC 2308 §3):\n{first}"));
            assert_eq!(soa.ttl, expected, "{cache:?}, {name} {qtype}:\n{first}");
            let before = Scrape::of(&server).forward_requests();
            let second = ask(&server, name, qtype);
            assert_eq!(second.metadata.response_code, code, "{second}");
            assert!(second.authorities[0].ttl <= expected, "{second}");
            assert_eq!(
                Scrape::of(&server).forward_requests(),
                before,
                "the denial is cached: {name} {qtype}"
            );
        }
        let scrape = Scrape::of(&server);
        assert_eq!(
            scrape.sum("coredns_cache_entries", &[("type", "denial")]),
            2.0,
            "{}",
            scrape.text
        );
    }
}

/// CoreDNS `cache` `prefetch AMOUNT DURATION PERCENTAGE%`: an entry asked
/// AMOUNT times without a DURATION gap is refreshed from upstream once its
/// remaining TTL drops to PERCENTAGE of the original, before it expires.
/// Record TTL 6, `prefetch 2 10s 50%`, asked every 100 ms for 8 s: the
/// upstream is asked again (requests grow) while every client answer is a
/// hit whose TTL never reaches 0 (misses stay at the first one), the TTL
/// jumps back up at least once, and `coredns_cache_prefetch_total` > 0.
#[test]
fn prefetch_refreshes_popular_entries_before_expiry() {
    let upstream = knot();
    let plugins = format!(
        "    cache 30 {{\n        prefetch 2 10s 50%\n    }}\n{}",
        forward(&[upstream.addr()], "")
    );
    let server = signpost(&plugins);
    let first = ask(&server, "prefetch.upstream.test.", RecordType::A);
    assert_eq!(first_ttl(&first), 6, "{first}");
    let start = Scrape::of(&server);
    let mut ttls = Vec::new();
    let began = Stopwatch::start();
    while began.elapsed() < Duration::from_secs(8) {
        let reply = ask(&server, "prefetch.upstream.test.", RecordType::A);
        assert_eq!(
            records(&reply.answers).len(),
            1,
            "after {:?}:\n{reply}",
            began.elapsed()
        );
        ttls.push(first_ttl(&reply));
        std::thread::sleep(Duration::from_millis(100));
    }
    let end = Scrape::of(&server);
    eprintln!("prefetch: TTLs seen {ttls:?}");
    assert!(ttls.iter().all(|&ttl| ttl > 0), "a TTL reached 0: {ttls:?}");
    assert!(
        ttls.windows(2).any(|w| w[1] > w[0]),
        "the TTL never went back up (no refresh): {ttls:?}"
    );
    assert!(
        end.forward_requests() > start.forward_requests(),
        "the upstream saw a refresh:\n{}",
        end.text
    );
    assert_eq!(
        end.sum("coredns_cache_misses_total", &[]),
        start.sum("coredns_cache_misses_total", &[]),
        "every hammering query was a hit:\n{}",
        end.text
    );
    assert!(
        end.sum("coredns_cache_prefetch_total", &[]) >= 1.0,
        "{}",
        end.text
    );
}

/// CoreDNS `cache` `success CAPACITY`: "the maximum number of packets we
/// cache before we start evicting". signpost's parser takes any positive
/// capacity (CoreDNS splits its capacity over 256 shards, so one this small
/// is not exact there). With `success 5`, twelve names never make
/// `coredns_cache_entries{type="success"}` exceed 5, and the seven extra
/// ones are evictions.
#[test]
fn cache_capacity_bounds_entries() {
    let upstream = knot();
    let plugins = format!(
        "    cache 30 {{\n        success 5\n    }}\n{}",
        forward(&[upstream.addr()], "")
    );
    let server = signpost(&plugins);
    for i in 0..12 {
        let name = format!("n{i}.many.upstream.test.");
        let reply = ask(&server, &name, RecordType::A);
        assert_eq!(reply.answers.len(), 1, "{reply}");
        let scrape = Scrape::of(&server);
        let entries = scrape.sum("coredns_cache_entries", &[("type", "success")]);
        assert!(
            entries <= 5.0,
            "{entries} entries after {} names:\n{}",
            i + 1,
            scrape.text
        );
        assert_eq!(entries, f64::from((i + 1).min(5)), "{}", scrape.text);
    }
    let scrape = Scrape::of(&server);
    assert_eq!(
        scrape.sum("coredns_cache_evictions_total", &[("type", "success")]),
        7.0,
        "{}",
        scrape.text
    );
}

// === Point 4: the reference deployment's cache fragment ===

/// The cache fragment of the reference AI-Kernel Corefile, verbatim (upstreams on loopback
/// instead of public resolvers), loads and answers; its `success 9984 30`
/// caps a 3600 s upstream TTL at 30 (CoreDNS `cache`: "TTL ... the maximum
/// TTL to cache"), and denials at 30 too (20 from the SOA here).
#[test]
fn seed_cache_fragment_loads_and_caps_ttls() {
    let (first, second) = (knot(), knot());
    let plugins = format!(
        "    cache 30 {{\n        success 9984 30\n        denial 9984 30\n        prefetch 10 60s\n    }}\n    forward . {} {}",
        first.addr(),
        second.addr()
    );
    let server = signpost(&plugins);
    let direct = ask_knot(&first, "long.upstream.test.", RecordType::A);
    assert_eq!(first_ttl(&direct), 3600, "{direct}");
    let capped = ask(&server, "long.upstream.test.", RecordType::A);
    assert_eq!(
        records(&capped.answers),
        vec!["long.upstream.test. 30 A 192.0.2.36".to_owned()],
        "{capped}"
    );
    let denial = ask(&server, "nothere.upstream.test.", RecordType::A);
    assert_eq!(
        denial.metadata.response_code,
        ResponseCode::NXDomain,
        "{denial}"
    );
    assert!(denial.authorities[0].ttl <= 30, "{denial}");
}

// === Point 5: metrics ===

/// CoreDNS `forward` and `cache` READMEs, "Metrics": every metric is
/// exposed with HELP and TYPE lines and CoreDNS's label names: `to` (and
/// `rcode`) on per-upstream forward metrics, none on the broken/reject
/// counters, `server`, `zones`, `view` (and `type` for entries, hits and
/// evictions) on the cache metrics.
#[test]
fn metrics_have_coredns_names_types_and_labels() {
    let upstream = knot();
    let plugins = format!(
        "    cache 30 {{\n        prefetch 1 10s 90%\n    }}\n{}",
        forward(&[upstream.addr()], "")
    );
    let server = signpost(&plugins);
    ask(&server, "www.upstream.test.", RecordType::A);
    ask(&server, "www.upstream.test.", RecordType::A);
    ask(&server, "nothere.upstream.test.", RecordType::A);
    let scrape = Scrape::of(&server);

    let cache_plain = ["server", "view", "zones"];
    let cache_typed = ["server", "type", "view", "zones"];
    let expected: [(&str, &str, &[&str]); 13] = [
        ("coredns_forward_requests_total", "counter", &["to"]),
        (
            "coredns_forward_responses_total",
            "counter",
            &["rcode", "to"],
        ),
        (
            "coredns_forward_request_duration_seconds",
            "histogram",
            &["rcode", "to"],
        ),
        (
            "coredns_forward_healthcheck_failures_total",
            "counter",
            &["to"],
        ),
        ("coredns_forward_healthcheck_broken_total", "counter", &[]),
        (
            "coredns_forward_max_concurrent_rejects_total",
            "counter",
            &[],
        ),
        ("coredns_cache_entries", "gauge", &cache_typed),
        ("coredns_cache_hits_total", "counter", &cache_typed),
        ("coredns_cache_misses_total", "counter", &cache_plain),
        ("coredns_cache_prefetch_total", "counter", &cache_plain),
        ("coredns_cache_drops_total", "counter", &cache_plain),
        ("coredns_cache_served_stale_total", "counter", &cache_plain),
        ("coredns_cache_evictions_total", "counter", &cache_typed),
    ];
    let mut problems = Vec::new();
    for (name, kind, labels) in expected {
        if !scrape.text.contains(&format!("# HELP {name} ")) {
            problems.push(format!("{name}: no HELP line"));
        }
        if !scrape.text.contains(&format!("# TYPE {name} {kind}\n")) {
            problems.push(format!("{name}: no `# TYPE {name} {kind}` line"));
        }
        let series: Vec<&Sample> = if kind == "histogram" {
            scrape
                .samples
                .iter()
                .filter(|s| s.name == format!("{name}_count"))
                .collect()
        } else {
            scrape.samples.iter().filter(|s| s.name == name).collect()
        };
        if series.is_empty() {
            problems.push(format!("{name}: no series"));
        }
        let want: BTreeSet<&str> = labels.iter().copied().collect();
        for sample in series {
            let have: BTreeSet<&str> = sample.labels.keys().map(String::as_str).collect();
            if have != want {
                problems.push(format!("{name}: labels {have:?}, want {want:?}"));
            }
        }
    }
    if scrape
        .samples
        .iter()
        .filter(|s| s.name == "coredns_forward_request_duration_seconds_bucket")
        .all(|s| s.labels.get("le").map(String::as_str) != Some("+Inf"))
    {
        problems.push("request_duration_seconds: no +Inf bucket".to_owned());
    }
    let to = upstream.addr().to_string();
    for (name, with, want) in [
        (
            "coredns_forward_requests_total",
            vec![("to", to.as_str())],
            2.0,
        ),
        (
            "coredns_forward_responses_total",
            vec![("to", to.as_str()), ("rcode", "NOERROR")],
            1.0,
        ),
        (
            "coredns_forward_responses_total",
            vec![("to", to.as_str()), ("rcode", "NXDOMAIN")],
            1.0,
        ),
        ("coredns_cache_hits_total", vec![("type", "success")], 1.0),
        ("coredns_cache_entries", vec![("type", "success")], 1.0),
        ("coredns_cache_entries", vec![("type", "denial")], 1.0),
        ("coredns_cache_misses_total", vec![], 2.0),
    ] {
        let value = scrape.sum(name, &with);
        if value != want {
            problems.push(format!("{name}{with:?} = {value}, want {want}"));
        }
    }
    if let Some(sample) = scrape
        .samples
        .iter()
        .find(|s| s.name == "coredns_cache_entries")
        && (sample.labels["zones"] != "." || !sample.labels["server"].starts_with("dns://"))
    {
        problems.push(format!(
            "coredns_cache_entries labels {:?}: want zones=\".\" and server=\"dns://…\"",
            sample.labels
        ));
    }
    assert!(
        problems.is_empty(),
        "metric problems:\n  {}\nscrape:\n{}",
        problems.join("\n  "),
        scrape.text
    );
}
