//! Cache tests: replies are encoded by hickory-proto (which compresses names),
//! answers written by [`write_cached`] are parsed back by hickory-proto.

use super::*;
use hickory_proto::op::{self, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{self, RData, Record, RecordType, rdata};
use signpost_corefile::Location;
use signpost_proto::{parse_query, rcode};
use std::net::Ipv4Addr;
use std::path::Path;

// === helpers ===

fn location() -> Location {
    Location {
        file: Arc::from(Path::new("/etc/signpost/Corefile")),
        line: 1,
    }
}

fn name(text: &str) -> rr::Name {
    rr::Name::from_ascii(text).expect("valid test name")
}

/// Query options: DO (implies EDNS), CD, EDNS without DO.
#[derive(Clone, Copy, Default)]
struct Asked {
    edns: bool,
    dnssec_ok: bool,
    checking_disabled: bool,
}

fn query_bytes(id: u16, qname: &str, qtype: RecordType, asked: Asked) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = asked.checking_disabled;
    message.add_query(op::Query::query(name(qname), qtype));
    if asked.edns || asked.dnssec_ok {
        let mut edns = op::Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(asked.dnssec_ok);
        message.set_edns(edns);
    }
    message.to_vec().expect("hickory encodes the query")
}

fn a(owner: &str, ttl: u32, last: u8) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::A(rdata::A(Ipv4Addr::new(192, 0, 2, last))),
    )
}

fn soa(owner: &str, ttl: u32, minimum: u32) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::SOA(rdata::SOA::new(
            name(&format!("ns.{owner}")),
            name(&format!("hostmaster.{owner}")),
            2024,
            3600,
            600,
            86400,
            minimum,
        )),
    )
}

/// An upstream reply to `qname`/`qtype` with the given sections; OPT when `edns`.
struct Reply {
    qname: &'static str,
    qtype: RecordType,
    code: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    edns: bool,
    authentic_data: bool,
}

impl Reply {
    fn new(qname: &'static str, qtype: RecordType) -> Self {
        Self {
            qname,
            qtype,
            code: ResponseCode::NoError,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            edns: true,
            authentic_data: false,
        }
    }

    fn bytes(self) -> Vec<u8> {
        let mut message = Message::new(0x4242, MessageType::Response, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.metadata.recursion_available = true;
        message.metadata.authoritative = true;
        message.metadata.authentic_data = self.authentic_data;
        message.metadata.response_code = self.code;
        message.add_query(op::Query::query(name(self.qname), self.qtype));
        for record in self.answers {
            message.add_answer(record);
        }
        for record in self.authorities {
            message.add_authority(record);
        }
        for record in self.additionals {
            message.add_additional(record);
        }
        if self.edns {
            let mut edns = op::Edns::new();
            edns.set_max_payload(4096);
            message.set_edns(edns);
        }
        message.to_vec().expect("hickory encodes the reply")
    }
}

fn success_reply(qname: &'static str, ttl: u32) -> Vec<u8> {
    let mut reply = Reply::new(qname, RecordType::A);
    reply.answers = vec![a(qname, ttl, 1), a(qname, ttl + 100, 2)];
    reply.bytes()
}

fn nxdomain_reply(qname: &'static str, soa_ttl: u32, minimum: u32) -> Vec<u8> {
    let mut reply = Reply::new(qname, RecordType::A);
    reply.code = ResponseCode::NXDomain;
    reply.authorities = vec![soa("example.org.", soa_ttl, minimum)];
    reply.bytes()
}

fn cache_with(config: CacheConfig) -> Cache {
    Cache::with_seed(config, &[Name::root()], "dns://:53".into(), 7)
}

fn cache() -> Cache {
    cache_with(CacheConfig::new(location()))
}

fn hickory_parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).unwrap_or_else(|e| panic!("hickory rejects {bytes:02x?}: {e}"))
}

fn write(entry: &Entry, packet: &[u8], now: Instant, limit: usize) -> (ResponseMeta, Message) {
    let query = parse_query(packet).expect("query parses");
    let mut out = vec![0u8; 65535];
    let meta = entry.write(&query, now, &mut out, limit);
    (meta, hickory_parse(&out[..meta.len]))
}

fn all_ttls(message: &Message) -> Vec<u32> {
    message
        .answers
        .iter()
        .chain(&message.authorities)
        .chain(&message.additionals)
        .map(|r| r.ttl)
        .collect()
}

fn insert(cache: &Cache, packet: &[u8], reply: &[u8], now: Instant) -> Arc<Entry> {
    let query = parse_query(packet).expect("query parses");
    cache
        .insert(&query, reply, now)
        .expect("reply is cacheable")
}

fn lookup(cache: &Cache, packet: &[u8], now: Instant) -> Lookup {
    cache.lookup(&parse_query(packet).expect("query parses"), now)
}

// === parsing replies ===

/// The body keeps answer, authority and additional records, drops the upstream
/// OPT (RFC 6891 §6.1.1: hop-by-hop), and every TTL offset points at a TTL field.
#[test]
fn reply_body_drops_opt_and_indexes_every_ttl() {
    let mut reply = Reply::new("www.example.org.", RecordType::A);
    reply.answers = vec![a("www.example.org.", 300, 1)];
    reply.authorities = vec![Record::from_rdata(
        name("example.org."),
        600,
        RData::NS(rdata::NS(name("ns1.example.org."))),
    )];
    reply.additionals = vec![a("ns1.example.org.", 900, 53)];
    let bytes = reply.bytes();
    let packet = query_bytes(1, "www.example.org.", RecordType::A, Asked::default());
    let query = parse_query(&packet).unwrap();
    let bounds = TtlBounds {
        max_ttl: 3600,
        min_ttl: 5,
    };
    let answer =
        CachedAnswer::try_new(&query, &bytes, bounds, bounds, false, Instant::now()).unwrap();
    assert_eq!(answer.counts(), [1, 1, 1]);
    assert_eq!(answer.kind(), Kind::Success);
    assert_eq!(answer.rcode(), rcode::NOERROR);
    assert_eq!(answer.ttl(), 300, "the smallest record TTL");
    let ttls: Vec<u32> = answer
        .ttl_offsets()
        .iter()
        .map(|&o| {
            let o = usize::from(o);
            u32::from_be_bytes(answer.body()[o..o + 4].try_into().unwrap())
        })
        .collect();
    assert_eq!(ttls, [300, 600, 900]);
    let body_start = 12 + query.question().len();
    assert_eq!(
        answer.body(),
        &bytes[body_start..bytes.len() - 11],
        "OPT removed"
    );
    let required = usize::try_from(answer.required_len()).unwrap();
    assert!(required < answer.body().len() && required > 0);
}

/// Malformed, truncated and error replies are not cached; a reply to another
/// question is a drop (CoreDNS `coredns_cache_drops_total`).
#[test]
fn uncacheable_replies_are_rejected() {
    let cache = cache();
    let packet = query_bytes(1, "www.example.org.", RecordType::A, Asked::default());
    let query = parse_query(&packet).unwrap();
    let now = Instant::now();
    let good = success_reply("www.example.org.", 60);

    let mut truncated = good.clone();
    truncated[2] |= 0x02;
    assert!(cache.insert(&query, &truncated, now).is_none());
    assert!(cache.insert(&query, &good[..good.len() - 3], now).is_none());
    let mut servfail = Reply::new("www.example.org.", RecordType::A);
    servfail.code = ResponseCode::ServFail;
    assert!(cache.insert(&query, &servfail.bytes(), now).is_none());
    assert_eq!(cache.metrics().drops.load(Relaxed), 0);

    let other = success_reply("mail.example.org.", 60);
    assert!(cache.insert(&query, &other, now).is_none());
    let aaaa = query_bytes(1, "www.example.org.", RecordType::AAAA, Asked::default());
    assert!(
        cache
            .insert(&parse_query(&aaaa).unwrap(), &good, now)
            .is_none()
    );
    assert_eq!(cache.metrics().drops.load(Relaxed), 2);
    assert!(cache.is_empty());

    // The same question in another case is the same question (RFC 4343).
    assert!(
        cache
            .insert(&query, &success_reply("WWW.Example.ORG.", 60), now)
            .is_some()
    );
}

/// Records after an OPT that is not last are dropped so nothing moves.
#[test]
fn records_after_a_middle_opt_are_dropped() {
    let packet = query_bytes(1, "a.example.", RecordType::A, Asked::default());
    let query = parse_query(&packet).unwrap();
    let mut reply = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 2];
    reply.extend_from_slice(query.question());
    let record = |ttl: u32| {
        let mut r = vec![0xc0, 0x0c, 0, 1, 0, 1];
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        r
    };
    reply.extend(record(60));
    reply.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    reply.extend(record(70));
    let bounds = TtlBounds {
        max_ttl: 3600,
        min_ttl: 5,
    };
    let answer =
        CachedAnswer::try_new(&query, &reply, bounds, bounds, false, Instant::now()).unwrap();
    assert_eq!(answer.counts(), [1, 0, 0]);
    assert_eq!(answer.body(), &record(60)[..]);
}

// === TTLs ===

/// CoreDNS: an entry is served with its TTL minus its age; after 10 s every
/// record's TTL is 10 lower.
#[test]
fn ttls_count_down_with_age() {
    let cache = cache();
    let now = Instant::now();
    let packet = query_bytes(9, "www.example.org.", RecordType::A, Asked::default());
    let entry = insert(&cache, &packet, &success_reply("www.example.org.", 60), now);
    assert_eq!(entry.answer().ttl(), 60);
    let (_, fresh) = write(&entry, &packet, now, 512);
    assert_eq!(all_ttls(&fresh), [60, 60]);
    let (_, aged) = write(&entry, &packet, now + Duration::from_secs(10), 512);
    assert_eq!(all_ttls(&aged), [50, 50]);
    let (_, nearly) = write(&entry, &packet, now + Duration::from_millis(59_900), 512);
    assert_eq!(all_ttls(&nearly), [1, 1]);
}

/// CoreDNS `keepttl`: the stored TTL is served unaged while the entry is fresh.
#[test]
fn keepttl_serves_the_stored_ttl() {
    let mut config = CacheConfig::new(location());
    config.keep_ttl = true;
    let cache = cache_with(config);
    let now = Instant::now();
    let packet = query_bytes(1, "www.example.org.", RecordType::A, Asked::default());
    let entry = insert(&cache, &packet, &success_reply("www.example.org.", 60), now);
    let (_, message) = write(&entry, &packet, now + Duration::from_secs(10), 512);
    assert_eq!(all_ttls(&message), [60, 60]);
}

/// CoreDNS: success TTLs are capped at the configured TTL and raised to MINTTL.
#[test]
fn success_ttl_is_capped_and_floored() {
    let mut config = CacheConfig::new(location());
    config.success.max_ttl = 30;
    let cache = cache_with(config);
    let now = Instant::now();
    let long = query_bytes(1, "long.example.", RecordType::A, Asked::default());
    let entry = insert(&cache, &long, &success_reply("long.example.", 7200), now);
    assert_eq!(entry.answer().ttl(), 30);
    let (_, message) = write(&entry, &long, now + Duration::from_secs(5), 512);
    assert_eq!(all_ttls(&message), [25, 25], "no record outlives the entry");
    let short = query_bytes(1, "short.example.", RecordType::A, Asked::default());
    let entry = insert(&cache, &short, &success_reply("short.example.", 1), now);
    assert_eq!(entry.answer().ttl(), 5, "MINTTL 5");
}

/// RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM),
/// capped by the denial TTL; NODATA is a denial too.
#[test]
fn negative_answers_use_the_soa() {
    let cache = cache();
    let now = Instant::now();
    let packet = query_bytes(1, "missing.example.org.", RecordType::A, Asked::default());
    let entry = insert(
        &cache,
        &packet,
        &nxdomain_reply("missing.example.org.", 300, 60),
        now,
    );
    assert_eq!(entry.kind(), Kind::Denial);
    assert_eq!(entry.answer().rcode(), rcode::NXDOMAIN);
    assert_eq!(entry.answer().ttl(), 60, "SOA MINIMUM below the SOA TTL");
    let (_, message) = write(&entry, &packet, now + Duration::from_secs(20), 512);
    assert_eq!(message.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(all_ttls(&message), [40]);

    let other = query_bytes(1, "gone.example.org.", RecordType::A, Asked::default());
    let entry = insert(
        &cache,
        &other,
        &nxdomain_reply("gone.example.org.", 45, 600),
        now,
    );
    assert_eq!(entry.answer().ttl(), 45, "SOA TTL below MINIMUM");

    let mut config = CacheConfig::new(location());
    config.denial.max_ttl = 30;
    let capped = cache_with(config);
    let entry = insert(
        &capped,
        &packet,
        &nxdomain_reply("missing.example.org.", 300, 600),
        now,
    );
    assert_eq!(entry.answer().ttl(), 30, "denial TTL caps it");

    let mut nodata = Reply::new("www.example.org.", RecordType::AAAA);
    nodata.authorities = vec![soa("example.org.", 900, 120)];
    let aaaa = query_bytes(1, "www.example.org.", RecordType::AAAA, Asked::default());
    let entry = insert(&cache, &aaaa, &nodata.bytes(), now);
    assert_eq!((entry.kind(), entry.answer().ttl()), (Kind::Denial, 120));
}

// === keys ===

/// RFC 4343: names match case-insensitively; qtype, DO and CD are part of the key.
#[test]
fn key_folds_case_and_respects_qtype_dnssec_ok_and_checking_disabled() {
    let cache = cache();
    let now = Instant::now();
    let plain = Asked::default();
    let stored = query_bytes(1, "www.example.org.", RecordType::A, plain);
    insert(&cache, &stored, &success_reply("www.example.org.", 60), now);

    let upper = query_bytes(2, "WWW.EXAMPLE.org.", RecordType::A, plain);
    assert!(matches!(lookup(&cache, &upper, now), Lookup::Hit(_)));
    let with_edns = Asked {
        edns: true,
        ..plain
    };
    let edns = query_bytes(3, "www.example.org.", RecordType::A, with_edns);
    assert!(
        matches!(lookup(&cache, &edns, now), Lookup::Hit(_)),
        "EDNS without DO shares the entry"
    );
    for (qtype, asked) in [
        (RecordType::AAAA, plain),
        (
            RecordType::A,
            Asked {
                dnssec_ok: true,
                ..plain
            },
        ),
        (
            RecordType::A,
            Asked {
                checking_disabled: true,
                ..plain
            },
        ),
    ] {
        let packet = query_bytes(4, "www.example.org.", qtype, asked);
        assert!(matches!(lookup(&cache, &packet, now), Lookup::Miss));
    }
    let metrics = cache.metrics();
    assert_eq!(metrics.requests.load(Relaxed), 5);
    assert_eq!(metrics.hits[0].load(Relaxed), 2);
    assert_eq!(metrics.misses.load(Relaxed), 3);
}

/// Names outside the cache's zones are neither looked up nor stored.
#[test]
fn only_the_cached_zones_are_covered() {
    let mut config = CacheConfig::new(location());
    config.zones = vec![Name::from_ascii("example.org").unwrap()];
    let cache = cache_with(config);
    let now = Instant::now();
    let outside = query_bytes(1, "www.example.com.", RecordType::A, Asked::default());
    let query = parse_query(&outside).unwrap();
    assert!(
        cache
            .insert(&query, &success_reply("www.example.com.", 60), now)
            .is_none()
    );
    assert!(matches!(cache.lookup(&query, now), Lookup::Miss));
    assert_eq!(cache.metrics().requests.load(Relaxed), 0, "not counted");
    let axfr = query_bytes(1, "example.org.", RecordType::AXFR, Asked::default());
    assert!(!cache.covers(&parse_query(&axfr).unwrap()));
}

/// CoreDNS `cache { disable success ZONE; disable denial ZONE }` (the kubeadm
/// Corefile since Kubernetes 1.32): answers of that kind under the zones are
/// passed on uncached; the other kind and other names are still cached.
#[test]
fn disabled_kinds_are_not_kept() {
    let config = parse_directive(
        ".:53 {\n    cache 30 {\n        disable success example.org\n        disable denial example.net\n    }\n}\n",
    )
    .expect("parses");
    let cache = cache_with(config);
    let now = Instant::now();
    let try_insert = |qname: &'static str, reply: Vec<u8>| {
        let packet = query_bytes(1, qname, RecordType::A, Asked::default());
        cache
            .insert(&parse_query(&packet).unwrap(), &reply, now)
            .is_some()
    };
    assert!(!try_insert(
        "www.example.org.",
        success_reply("www.example.org.", 60)
    ));
    assert!(try_insert(
        "gone.example.org.",
        nxdomain_reply("gone.example.org.", 60, 60)
    ));
    assert!(try_insert(
        "www.example.net.",
        success_reply("www.example.net.", 60)
    ));
    assert!(!try_insert(
        "gone.example.net.",
        nxdomain_reply("gone.example.net.", 60, 60)
    ));
    assert!(try_insert(
        "www.example.com.",
        success_reply("www.example.com.", 60)
    ));
}

// === capacity and eviction ===

/// Each cache holds at most its capacity; every eviction is counted by type.
#[test]
fn capacity_is_respected_under_many_inserts() {
    let mut config = CacheConfig::new(location());
    config.success.capacity = 50;
    config.denial.capacity = 20;
    let cache = cache_with(config);
    let now = Instant::now();
    let names: Vec<&'static str> = (0..500)
        .map(|i| &*Box::leak(format!("host{i}.example.org.").into_boxed_str()))
        .collect();
    for (i, qname) in names.iter().enumerate() {
        let packet = query_bytes(1, qname, RecordType::A, Asked::default());
        let reply = if i % 2 == 0 {
            success_reply(qname, 60 + i as u32)
        } else {
            nxdomain_reply(qname, 60, 60)
        };
        insert(&cache, &packet, &reply, now);
        assert!(cache.len() <= 70);
    }
    let metrics = cache.metrics();
    assert_eq!(cache.len(), 70);
    assert_eq!(metrics.entries[0].load(Relaxed), 50);
    assert_eq!(metrics.entries[1].load(Relaxed), 20);
    assert_eq!(metrics.evictions[0].load(Relaxed), 200);
    assert_eq!(metrics.evictions[1].load(Relaxed), 230);
    // The most recent insert is always present.
    let last = query_bytes(1, names[499], RecordType::A, Asked::default());
    assert!(matches!(lookup(&cache, &last, now), Lookup::Hit(_)));
}

/// Replacing an entry does not evict, and an entry moving from success to denial
/// leaves the success count.
#[test]
fn replacing_an_entry_keeps_the_counts_right() {
    let mut config = CacheConfig::new(location());
    config.success.capacity = 2;
    let cache = cache_with(config);
    let now = Instant::now();
    let packet = query_bytes(1, "www.example.org.", RecordType::A, Asked::default());
    for _ in 0..5 {
        insert(&cache, &packet, &success_reply("www.example.org.", 60), now);
    }
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.metrics().evictions[0].load(Relaxed), 0);
    insert(
        &cache,
        &packet,
        &nxdomain_reply("www.example.org.", 60, 60),
        now,
    );
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.metrics().entries[0].load(Relaxed), 0);
    assert_eq!(cache.metrics().entries[1].load(Relaxed), 1);
}

/// Eviction samples prefer entries that expire soonest: with an expired entry
/// among few residents, it is the one evicted.
#[test]
fn eviction_prefers_expired_entries() {
    let mut config = CacheConfig::new(location());
    config.success.capacity = 2;
    let cache = cache_with(config);
    let start = Instant::now();
    let old = query_bytes(1, "old.example.", RecordType::A, Asked::default());
    let keep = query_bytes(1, "keep.example.", RecordType::A, Asked::default());
    let new = query_bytes(1, "new.example.", RecordType::A, Asked::default());
    insert(&cache, &old, &success_reply("old.example.", 10), start);
    let later = start + Duration::from_secs(60);
    insert(&cache, &keep, &success_reply("keep.example.", 600), later);
    insert(&cache, &new, &success_reply("new.example.", 600), later);
    assert!(matches!(lookup(&cache, &keep, later), Lookup::Hit(_)));
    assert!(matches!(lookup(&cache, &new, later), Lookup::Hit(_)));
}

// === prefetch ===

/// CoreDNS: AMOUNT hits with no gap of DURATION, and the remaining TTL at most
/// PERCENTAGE of the original; claimed once until the refresh fails or lands.
#[test]
fn prefetch_needs_popularity_and_a_low_ttl() {
    let mut config = CacheConfig::new(location());
    config.prefetch = Some(PrefetchConfig {
        amount: 3,
        window: Duration::from_secs(60),
        percentage: 10,
    });
    let cache = cache_with(config);
    let start = Instant::now();
    let packet = query_bytes(1, "hot.example.", RecordType::A, Asked::default());
    insert(&cache, &packet, &success_reply("hot.example.", 100), start);
    let hit = |at: Instant| match lookup(&cache, &packet, at) {
        Lookup::Hit(entry) => entry,
        other => panic!("expected a hit, got {other:?}"),
    };
    // Two hits, then one after a gap longer than the window: the count restarts.
    hit(start + Duration::from_secs(1));
    hit(start + Duration::from_secs(2));
    let entry = hit(start + Duration::from_secs(70));
    assert_eq!(entry.hits(), 1);
    // Popular now, but 28 s left of 100 is above 10%.
    hit(start + Duration::from_secs(71));
    let entry = hit(start + Duration::from_secs(72));
    assert_eq!(entry.hits(), 3);
    assert!(!cache.wants_prefetch(&entry, start + Duration::from_secs(72)));
    // 10 s left: at the threshold.
    let at = start + Duration::from_secs(90);
    let entry = hit(at);
    assert!(cache.wants_prefetch(&entry, at));
    assert!(!cache.wants_prefetch(&entry, at), "claimed once");
    cache.refresh_failed(&entry);
    assert!(
        cache.wants_prefetch(&entry, at),
        "claimable again after a failure"
    );
    assert_eq!(cache.metrics().prefetches.load(Relaxed), 2);

    // The refresh replaces the entry and keeps its popularity.
    let fresh = insert(&cache, &packet, &success_reply("hot.example.", 100), at);
    assert_eq!(fresh.hits(), entry.hits());
    assert!(!cache.wants_prefetch(&fresh, at));
}

/// Without `prefetch`, nothing is prefetched.
#[test]
fn prefetch_off_by_default() {
    let cache = cache();
    let now = Instant::now();
    let packet = query_bytes(1, "hot.example.", RecordType::A, Asked::default());
    let entry = insert(&cache, &packet, &success_reply("hot.example.", 10), now);
    assert!(!cache.wants_prefetch(&entry, now + Duration::from_secs(9)));
}

// === serve_stale ===

/// CoreDNS serve_stale: an expired entry is served (TTL 0) for DURATION after
/// expiry, then it is a miss. Without serve_stale expiry is a miss at once.
#[test]
fn serve_stale_window() {
    let packet = query_bytes(1, "www.example.org.", RecordType::A, Asked::default());
    let start = Instant::now();

    let plain = cache();
    insert(
        &plain,
        &packet,
        &success_reply("www.example.org.", 30),
        start,
    );
    assert!(matches!(
        lookup(&plain, &packet, start + Duration::from_secs(29)),
        Lookup::Hit(_)
    ));
    assert!(matches!(
        lookup(&plain, &packet, start + Duration::from_secs(30)),
        Lookup::Miss
    ));

    let mut config = CacheConfig::new(location());
    config.serve_stale = Some(ServeStaleConfig {
        duration: Duration::from_secs(60),
        mode: StaleMode::Immediate,
    });
    let stale = cache_with(config);
    insert(
        &stale,
        &packet,
        &success_reply("www.example.org.", 30),
        start,
    );
    let at = start + Duration::from_secs(50);
    let Lookup::Stale(entry) = lookup(&stale, &packet, at) else {
        panic!("expected a stale entry");
    };
    let (_, message) = write(&entry, &packet, at, 512);
    assert_eq!(all_ttls(&message), [STALE_TTL, STALE_TTL]);
    assert!(stale.claim_refresh(&entry));
    assert!(!stale.claim_refresh(&entry), "one refresh in flight");
    stale.note_served_stale();
    assert_eq!(stale.metrics().served_stale.load(Relaxed), 1);
    assert!(matches!(
        lookup(&stale, &packet, start + Duration::from_secs(89)),
        Lookup::Stale(_)
    ));
    assert!(matches!(
        lookup(&stale, &packet, start + Duration::from_secs(90)),
        Lookup::Miss
    ));
}

// === the write path ===

/// The answer carries the client's ID and question spelling, QR and RA set, AA
/// clear, RD and CD copied; names compressed by upstream still decode.
#[test]
fn written_answer_parses_with_hickory() {
    let cache = cache();
    let now = Instant::now();
    let mut reply = Reply::new("www.example.org.", RecordType::A);
    reply.answers = vec![
        Record::from_rdata(
            name("www.example.org."),
            120,
            RData::CNAME(rdata::CNAME(name("web.example.org."))),
        ),
        a("web.example.org.", 120, 7),
    ];
    reply.authorities = vec![Record::from_rdata(
        name("example.org."),
        120,
        RData::NS(rdata::NS(name("ns1.example.org."))),
    )];
    let asked = Asked {
        edns: true,
        dnssec_ok: false,
        checking_disabled: true,
    };
    let stored = query_bytes(1, "www.example.org.", RecordType::A, asked);
    insert(&cache, &stored, &reply.bytes(), now);

    let packet = query_bytes(0xbeef, "WwW.ExAmPlE.oRg.", RecordType::A, asked);
    let Lookup::Hit(entry) = lookup(&cache, &packet, now) else {
        panic!("expected a hit");
    };
    let (meta, message) = write(&entry, &packet, now, 1232);
    assert!(!meta.truncated);
    let header = &message.metadata;
    assert_eq!(header.id, 0xbeef);
    assert_eq!(header.message_type, MessageType::Response);
    assert!(header.recursion_available && header.recursion_desired && header.checking_disabled);
    assert!(!header.authoritative && !header.truncation && !header.authentic_data);
    assert_eq!(message.queries[0].name().to_ascii(), "WwW.ExAmPlE.oRg.");
    assert_eq!(message.answers.len(), 2);
    assert!(message.answers[0].name.eq_case(&name("WwW.ExAmPlE.oRg.")));
    assert!(matches!(&message.answers[0].data, RData::CNAME(c) if c.0 == name("web.example.org.")));
    assert!(matches!(&message.answers[1].data, RData::A(a) if a.0 == Ipv4Addr::new(192, 0, 2, 7)));
    assert!(
        matches!(&message.authorities[0].data, RData::NS(ns) if ns.0 == name("ns1.example.org."))
    );
    let edns = message.edns.as_ref().expect("OPT for an EDNS client");
    assert_eq!(edns.max_payload(), signpost_proto::ADVERTISED_UDP_SIZE);

    // Without EDNS there is no OPT (and without CD, none is copied).
    let plain = query_bytes(2, "www.example.org.", RecordType::A, Asked::default());
    let (_, message) = write(&entry, &plain, now, 512);
    assert!(message.edns.is_none() && !message.metadata.checking_disabled);
}

/// RFC 6840 §5.8: AD only when upstream set it and the client asked with DO or AD.
#[test]
fn authentic_data_only_for_clients_that_ask() {
    let cache = cache();
    let now = Instant::now();
    let mut reply = Reply::new("signed.example.", RecordType::A);
    reply.answers = vec![a("signed.example.", 60, 1)];
    reply.authentic_data = true;
    let reply = reply.bytes();
    let dnssec = Asked {
        dnssec_ok: true,
        ..Asked::default()
    };
    let with_do = query_bytes(1, "signed.example.", RecordType::A, dnssec);
    let entry = insert(&cache, &with_do, &reply, now);
    assert!(write(&entry, &with_do, now, 1232).1.metadata.authentic_data);
    let plain = query_bytes(1, "signed.example.", RecordType::A, Asked::default());
    assert!(!write(&entry, &plain, now, 512).1.metadata.authentic_data);
}

/// RFC 2181 §9, as proto's writer: over 512 bytes the additional section goes
/// first; if answer and authority still do not fit, TC and no records.
#[test]
fn cached_answer_truncates_at_512() {
    let cache = cache();
    let now = Instant::now();
    let packet = query_bytes(1, "many.example.", RecordType::A, Asked::default());
    let mut reply = Reply::new("many.example.", RecordType::A);
    reply.answers = (0..40).map(|i| a("many.example.", 60, i)).collect();
    let entry = insert(&cache, &packet, &reply.bytes(), now);
    let (meta, message) = write(&entry, &packet, now, 512);
    assert!(meta.truncated && meta.len <= 512);
    assert!(message.metadata.truncation);
    assert!(message.answers.is_empty());
    let (meta, message) = write(&entry, &packet, now, 1232);
    assert!(!meta.truncated);
    assert_eq!(message.answers.len(), 40);

    let few = query_bytes(1, "few.example.", RecordType::A, Asked::default());
    let mut reply = Reply::new("few.example.", RecordType::A);
    reply.answers = vec![a("few.example.", 60, 1)];
    reply.additionals = (0..40).map(|i| a("extra.example.", 60, i)).collect();
    let entry = insert(&cache, &few, &reply.bytes(), now);
    let (meta, message) = write(&entry, &few, now + Duration::from_secs(3), 512);
    assert!(!meta.truncated && meta.len <= 512);
    assert_eq!((message.answers.len(), message.additionals.len()), (1, 0));
    assert_eq!(message.answers[0].ttl, 57);
}

/// An answer written for a question of another length would misplace its
/// pointers: SERVFAIL instead.
#[test]
fn writing_for_another_question_is_servfail() {
    let cache = cache();
    let now = Instant::now();
    let packet = query_bytes(1, "www.example.org.", RecordType::A, Asked::default());
    let entry = insert(&cache, &packet, &success_reply("www.example.org.", 60), now);
    let other = query_bytes(1, "example.org.", RecordType::A, Asked::default());
    let (meta, message) = write(&entry, &other, now, 512);
    assert_eq!(meta.rcode, rcode::SERVFAIL);
    assert!(message.answers.is_empty());
}

// === metrics ===

/// CoreDNS's names and label sets, with HELP and TYPE lines.
#[test]
fn metrics_render_with_coredns_names() {
    let cache = cache();
    let now = Instant::now();
    let packet = query_bytes(1, "www.example.org.", RecordType::A, Asked::default());
    insert(&cache, &packet, &success_reply("www.example.org.", 60), now);
    lookup(&cache, &packet, now);
    let mut out = String::new();
    cache.render(&mut out);
    for line in [
        "# TYPE coredns_cache_entries gauge",
        "coredns_cache_entries{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 1",
        "coredns_cache_entries{server=\"dns://:53\",zones=\".\",view=\"\",type=\"denial\"} 0",
        "coredns_cache_hits_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 1",
        "coredns_cache_evictions_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"denial\"} 0",
        "coredns_cache_requests_total{server=\"dns://:53\",zones=\".\",view=\"\"} 1",
        "coredns_cache_misses_total{server=\"dns://:53\",zones=\".\",view=\"\"} 0",
        "coredns_cache_prefetch_total{server=\"dns://:53\",zones=\".\",view=\"\"} 0",
        "coredns_cache_drops_total{server=\"dns://:53\",zones=\".\",view=\"\"} 0",
        "coredns_cache_served_stale_total{server=\"dns://:53\",zones=\".\",view=\"\"} 0",
        "# HELP coredns_cache_served_stale_total The number of requests served from stale cache entries.",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}

// === configuration ===

fn parse_directive(text: &str) -> Result<CacheConfig, Vec<signpost_corefile::Error>> {
    let corefile =
        signpost_corefile::parse_str(text, Path::new("/etc/signpost/Corefile"), &|_| None)
            .expect("Corefile syntax");
    let directive = corefile.blocks[0]
        .directives_named("cache")
        .next()
        .expect("a cache directive");
    let mut errors = signpost_corefile::Errors::default();
    crate::plugins::parse_cache(directive, &mut errors).ok_or(errors.0)
}

/// The reference deployment's cache block: max TTL 30 for both, capacities 9984, prefetch 10 in 60 s.
#[test]
fn seed_cache_block_parses() {
    let config = parse_directive(
        ".:53 {\n    cache 30 {\n        success 9984 30    # Cache successful responses for 30s\n        denial 9984 30     # Cache NXDOMAIN for 30s\n        prefetch 10 60s    # Prefetch expiring records\n    }\n}\n",
    )
    .unwrap();
    assert_eq!(
        config.success,
        CapacityConfig {
            capacity: 9984,
            max_ttl: 30,
            min_ttl: 5
        }
    );
    assert_eq!(config.denial, config.success);
    assert_eq!(
        config.prefetch,
        Some(PrefetchConfig {
            amount: 10,
            window: Duration::from_secs(60),
            percentage: 10
        })
    );
    assert!(config.serve_stale.is_none() && !config.keep_ttl && config.zones.is_empty());
}

/// A bare `cache` has CoreDNS's defaults; options fill theirs in.
#[test]
fn defaults_and_options() {
    let config = parse_directive(".:53 {\n    cache\n}\n").unwrap();
    assert_eq!(
        (config.success.max_ttl, config.denial.max_ttl),
        (3600, 1800)
    );
    assert_eq!((config.success.min_ttl, config.denial.min_ttl), (5, 5));
    assert_eq!(
        (config.success.capacity, config.denial.capacity),
        (9984, 9984)
    );
    assert!(config.prefetch.is_none() && config.serve_stale.is_none());

    let config = parse_directive(
        ".:53 {\n    cache example.org example.net {\n        prefetch 2\n        serve_stale\n        keepttl\n        denial 100 60 10\n    }\n}\n",
    )
    .unwrap();
    assert_eq!(config.zones.len(), 2);
    assert_eq!(config.success.max_ttl, 3600);
    assert_eq!(
        config.prefetch,
        Some(PrefetchConfig {
            amount: 2,
            ..PrefetchConfig::default()
        })
    );
    assert_eq!(
        config.serve_stale,
        Some(ServeStaleConfig {
            duration: Duration::from_secs(3600),
            mode: StaleMode::Immediate
        })
    );
    assert!(config.keep_ttl);
    assert_eq!(
        config.denial,
        CapacityConfig {
            capacity: 100,
            max_ttl: 60,
            min_ttl: 10
        }
    );

    let config = parse_directive(
        ".:53 {\n    cache {\n        prefetch 5 10m 30%\n        serve_stale 2h verify\n    }\n}\n",
    )
    .unwrap();
    let prefetch = config.prefetch.unwrap();
    assert_eq!(
        (prefetch.window, prefetch.percentage),
        (Duration::from_secs(600), 30)
    );
    assert_eq!(config.serve_stale.unwrap().mode, StaleMode::Verify);
}

/// Every problem is reported, each at its own line.
#[test]
fn every_cache_error_at_its_line() {
    let errors = parse_directive(
        ".:53 {\n    cache 0 bad..zone {\n        success abc\n        denial 10 5 60\n        prefetch 0 5%\n        serve_stale soon later\n        keepttl now\n        servfail 5s\n        frobnicate\n    }\n}\n",
    )
    .unwrap_err();
    let lines: Vec<u32> = errors.iter().map(|e| e.location.line).collect();
    assert_eq!(lines, [2, 2, 3, 4, 5, 5, 6, 6, 7, 8, 9], "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| &*e.location.file == Path::new("/etc/signpost/Corefile"))
    );
    assert!(
        errors[3]
            .message
            .contains("MINTTL (60) is larger than its TTL (5)")
    );
}

// === concurrency ===

/// Readers on several threads see entries while a writer inserts and evicts.
#[test]
fn concurrent_lookups_during_inserts() {
    let mut config = CacheConfig::new(location());
    config.success.capacity = 16;
    let cache = Arc::new(cache_with(config));
    let now = Instant::now();
    let packets: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            query_bytes(
                1,
                &format!("h{i}.example."),
                RecordType::A,
                Asked::default(),
            )
        })
        .collect();
    let replies: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let qname: &'static str = Box::leak(format!("h{i}.example.").into_boxed_str());
            success_reply(qname, 60)
        })
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let cache = Arc::clone(&cache);
            let packets = &packets;
            scope.spawn(move || {
                let mut out = vec![0u8; 1232];
                for round in 0..2000 {
                    let packet = &packets[round % packets.len()];
                    let query = parse_query(packet).unwrap();
                    if let Lookup::Hit(entry) = cache.lookup(&query, now) {
                        let meta = entry.write(&query, now, &mut out, 1232);
                        assert!(meta.len > 0 && !meta.truncated);
                    }
                }
            });
        }
        for round in 0..5 {
            for (packet, reply) in packets.iter().zip(&replies).skip(round) {
                insert(&cache, packet, reply, now);
            }
        }
    });
    assert_eq!(cache.len(), 16);
}
