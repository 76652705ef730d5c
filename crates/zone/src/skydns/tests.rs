//! CoreDNS `etcd` plugin semantics, checked on compiled snapshots with the
//! fixtures of CoreDNS v1.14.7: `plugin/etcd/lookup_test.go`, `cname_test.go`,
//! `other_test.go`, `group_test.go` and the examples of `plugin/etcd/README.md`
//! (the same records as SkyDNS keys must give the answers they list).

use super::*;
use crate::{Lookup, Snapshot, SnapshotBuilder};
use hickory_proto::op::Message;
use hickory_proto::rr::{Record, RecordType};
use signpost_proto::{parse_query, write_response};

const PREFIX: &str = "/skydns/";

/// A record from a fixture line: a name (written as its key under
/// `/skydns/`) or a raw key (starting with `/`), and its JSON value.
fn record(name_or_key: &str, json: &str) -> SkyRecord {
    let key = if name_or_key.starts_with('/') {
        name_or_key.to_owned()
    } else {
        let labels: Vec<&str> = name_or_key.trim_end_matches('.').split('.').rev().collect();
        format!("{PREFIX}{}", labels.join("/"))
    };
    SkyRecord::parse(PREFIX, &key, json.as_bytes(), None).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn snapshot(zones: &[&str], data: &[(&str, &str)]) -> Snapshot {
    let records: Vec<SkyRecord> = data.iter().map(|(n, j)| record(n, j)).collect();
    let options = SkyOptions {
        zones: zones.iter().map(|z| Name::from_ascii(z).unwrap()).collect(),
        fallthrough: Vec::new(),
        min_lease_ttl: DEFAULT_MIN_LEASE_TTL,
        max_lease_ttl: DEFAULT_MAX_LEASE_TTL,
    };
    let mut builder = SnapshotBuilder::new(1);
    compile(&mut builder, &records, &options, 1_700_000_000);
    builder.build()
}

/// An answer as text: the RCODE name, then sorted answer, authority and
/// additional records (`owner ttl TYPE rdata`), as the CoreDNS tests compare sets.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    rcode: u16,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

fn text(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect();
    lines.sort();
    lines
}

fn ask(snapshot: &Snapshot, qname: &str, qtype: RecordType) -> Answer {
    let mut query = Message::query();
    query.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(qname).unwrap(),
        qtype,
    ));
    let bytes = query.to_vec().unwrap();
    let parsed = parse_query(&bytes).unwrap();
    let Lookup::Answer(view) = snapshot.lookup(parsed.qname_lower(), parsed.qtype) else {
        panic!("{qname} {qtype}: not an authoritative answer");
    };
    let mut out = vec![0u8; 65535];
    let meta = write_response(&parsed, view, &mut out, 65535);
    let message = Message::from_vec(&out[..meta.len]).unwrap();
    assert!(message.metadata.authoritative, "{qname} {qtype}: AA clear");
    Answer {
        rcode: u16::from(message.metadata.response_code),
        answer: text(&message.answers),
        authority: text(&message.authorities)
            .into_iter()
            .map(|l| l.split(' ').take(4).collect::<Vec<_>>().join(" "))
            .collect(),
        additional: text(&message.additionals),
    }
}

/// Checks rcode and the answer and additional sections (sorted).
#[track_caller]
fn check(
    snapshot: &Snapshot,
    qname: &str,
    qtype: RecordType,
    rcode: u16,
    answer: &[&str],
    additional: &[&str],
) {
    let got = ask(snapshot, qname, qtype);
    let mut want_answer: Vec<String> = answer.iter().map(|s| s.to_string()).collect();
    want_answer.sort();
    let mut want_additional: Vec<String> = additional.iter().map(|s| s.to_string()).collect();
    want_additional.sort();
    assert_eq!(
        (got.rcode, &got.answer, &got.additional),
        (rcode, &want_answer, &want_additional),
        "{qname} {qtype}: full answer {got:#?}"
    );
    if answer.is_empty() {
        assert_eq!(
            got.authority.len(),
            1,
            "{qname} {qtype}: negative answers carry the SOA"
        );
    }
}

const NOERROR: u16 = rcode::NOERROR;
const NXDOMAIN: u16 = rcode::NXDOMAIN;

/// Data set of `lookup_test.go` (`services`), zones of its test plugin.
fn lookup_data() -> Snapshot {
    snapshot(
        &[
            "skydns.test.",
            "skydns_extra.test.",
            "skydns_zonea.test.",
            "skydns_zoneb.test.",
            "skydns_zonec.test.",
            "skydns_zoned.test.",
            "in-addr.arpa.",
        ],
        &[
            (
                "a.server1.dev.region1.skydns.test",
                r#"{"host":"dev.server1","port":8080}"#,
            ),
            (
                "a.server1.prod.region1.skydns.test",
                r#"{"host":"10.0.0.1","port":8080}"#,
            ),
            (
                "b.server1.prod.region1.skydns.test",
                r#"{"host":"10.0.0.2","port":8080}"#,
            ),
            (
                "b.server6.prod.region1.skydns.test",
                r#"{"host":"::1","port":8080}"#,
            ),
            (
                "a.txt.server1.prod.region1.skydns.test",
                r#"{"text":"sometext"}"#,
            ),
            (
                "b.txt.server1.prod.region1.skydns.test",
                r#"{"text":"moretext"}"#,
            ),
            (
                "cname.prod.region1.skydns.test",
                r#"{"host":"unresolvable.skydns.test"}"#,
            ),
            (
                "priority.skydns.test",
                r#"{"host":"priority.server1","priority":333,"port":8080}"#,
            ),
            (
                "a.sub.region1.skydns.test",
                r#"{"host":"sub.server1","port":0}"#,
            ),
            (
                "b.sub.region1.skydns.test",
                r#"{"host":"sub.server2","port":80}"#,
            ),
            (
                "c.sub.region1.skydns.test",
                r#"{"host":"10.0.0.1","port":8080}"#,
            ),
            (
                "a.targetstrip.skydns.test",
                r#"{"host":"10.0.0.1","port":8080,"targetstrip":1}"#,
            ),
            ("b.cname.skydns.test", r#"{"host":"a.cname.skydns.test"}"#),
            ("a.cname.skydns.test", r#"{"host":"b.cname.skydns.test"}"#),
            ("a.ns.dns.skydns.test", r#"{"host":"10.0.0.2"}"#),
            ("b.ns.dns.skydns.test", r#"{"host":"10.0.0.3"}"#),
            (
                "ns1.c.ns.dns.skydns.test",
                r#"{"host":"10.0.0.4","targetstrip":1}"#,
            ),
            (
                "ns2.c.ns.dns.skydns.test",
                r#"{"host":"10.0.0.5","targetstrip":1}"#,
            ),
            ("x.skydns_zonea.test", r#"{"host":"10.0.0.2"}"#),
            ("y.skydns_zonea.test", r#"{"host":"10.0.0.3"}"#),
            ("x.skydns_zoneb.test", r#"{"host":"10.0.0.2"}"#),
            ("y.skydns_zoneb.test", r#"{"host":"10.0.0.3"}"#),
            ("apex.dns.skydns_zoneb.test", r#"{"host":"10.0.0.4"}"#),
            ("x.skydns_zonec.test", r#"{"host":"10.0.0.2"}"#),
            ("y.skydns_zonec.test", r#"{"host":"10.0.0.3"}"#),
            ("a1.apex.dns.skydns_zonec.test", r#"{"host":"10.0.0.4"}"#),
            ("a2.apex.dns.skydns_zonec.test", r#"{"host":"10.0.0.5"}"#),
            ("x.skydns_zoned.test", r#"{"host":"10.0.0.2"}"#),
            ("y.skydns_zoned.test", r#"{"host":"10.0.0.3"}"#),
            ("a1.apex.dns.skydns_zoned.test", r#"{"host":"10.0.0.4"}"#),
            ("a2.apex.dns.skydns_zoned.test", r#"{"host":"10.0.0.5"}"#),
            ("a3.apex.dns.skydns_zoned.test", r#"{"host":"2003::8:1"}"#),
            ("a4.apex.dns.skydns_zoned.test", r#"{"host":"2003::8:2"}"#),
            ("1.0.0.10.in-addr.arpa", r#"{"host":"reverse.example.com"}"#),
        ],
    )
}

/// `lookup_test.go`: SRV from name and address hosts, subtree reads, priority,
/// weights, targetstrip, AAAA, TXT, NXDOMAIN vs NODATA.
#[test]
fn coredns_lookup_fixtures() {
    let s = lookup_data();
    use RecordType::*;
    check(
        &s,
        "a.server1.dev.region1.skydns.test.",
        SRV,
        NOERROR,
        &["a.server1.dev.region1.skydns.test. 300 SRV 10 100 8080 dev.server1."],
        &[],
    );
    check(
        &s,
        "a.SERVer1.dEv.region1.skydns.tEst.",
        SRV,
        NOERROR,
        &["a.SERVer1.dEv.region1.skydns.tEst. 300 SRV 10 100 8080 dev.server1."],
        &[],
    );
    check(&s, "doesnotexist.skydns.test.", A, NXDOMAIN, &[], &[]);
    check(
        &s,
        "a.server1.prod.region1.skydns.test.",
        A,
        NOERROR,
        &["a.server1.prod.region1.skydns.test. 300 A 10.0.0.1"],
        &[],
    );
    check(
        &s,
        "a.server1.prod.region1.skydns.test.",
        SRV,
        NOERROR,
        &[
            "a.server1.prod.region1.skydns.test. 300 SRV 10 100 8080 a.server1.prod.region1.skydns.test.",
        ],
        &["a.server1.prod.region1.skydns.test. 300 A 10.0.0.1"],
    );
    check(
        &s,
        "b.server6.prod.region1.skydns.test.",
        AAAA,
        NOERROR,
        &["b.server6.prod.region1.skydns.test. 300 AAAA ::1"],
        &[],
    );
    check(
        &s,
        "server1.prod.region1.skydns.test.",
        A,
        NOERROR,
        &[
            "server1.prod.region1.skydns.test. 300 A 10.0.0.1",
            "server1.prod.region1.skydns.test. 300 A 10.0.0.2",
        ],
        &[],
    );
    check(
        &s,
        "priority.skydns.test.",
        SRV,
        NOERROR,
        &["priority.skydns.test. 300 SRV 333 100 8080 priority.server1."],
        &[],
    );
    check(
        &s,
        "sub.region1.skydns.test.",
        SRV,
        NOERROR,
        &[
            "sub.region1.skydns.test. 300 SRV 10 33 0 sub.server1.",
            "sub.region1.skydns.test. 300 SRV 10 33 80 sub.server2.",
            "sub.region1.skydns.test. 300 SRV 10 33 8080 c.sub.region1.skydns.test.",
        ],
        &["c.sub.region1.skydns.test. 300 A 10.0.0.1"],
    );
    check(
        &s,
        "targetstrip.skydns.test.",
        SRV,
        NOERROR,
        &["targetstrip.skydns.test. 300 SRV 10 100 8080 targetstrip.skydns.test."],
        &["targetstrip.skydns.test. 300 A 10.0.0.1"],
    );
    // An in-zone CNAME target that does not resolve: the CNAME is dropped (NODATA).
    check(&s, "cname.prod.region1.skydns.test.", A, NOERROR, &[], &[]);
    check(
        &s,
        "txt.server1.prod.region1.skydns.test.",
        TXT,
        NOERROR,
        &[
            "txt.server1.prod.region1.skydns.test. 300 TXT moretext",
            "txt.server1.prod.region1.skydns.test. 300 TXT sometext",
        ],
        &[],
    );
    // A CNAME loop (a.cname -> b.cname -> a.cname) yields nothing.
    check(&s, "a.cname.skydns.test.", A, NOERROR, &[], &[]);
    check(
        &s,
        "a.server1.dev.region1.skydns.test.",
        HINFO,
        NOERROR,
        &[],
        &[],
    );
    check(
        &s,
        "a.server1.nonexistent.region1.skydns.test.",
        HINFO,
        NXDOMAIN,
        &[],
        &[],
    );
    check(
        &s,
        "skydns.test.",
        NS,
        NOERROR,
        &[
            "skydns.test. 300 NS a.ns.dns.skydns.test.",
            "skydns.test. 300 NS b.ns.dns.skydns.test.",
            "skydns.test. 300 NS c.ns.dns.skydns.test.",
        ],
        &[
            "a.ns.dns.skydns.test. 300 A 10.0.0.2",
            "b.ns.dns.skydns.test. 300 A 10.0.0.3",
            "c.ns.dns.skydns.test. 300 A 10.0.0.4",
            "c.ns.dns.skydns.test. 300 A 10.0.0.5",
        ],
    );
    check(&s, "a.skydns.test.", NS, NXDOMAIN, &[], &[]);
    check(
        &s,
        "ns.dns.skydns.test.",
        A,
        NOERROR,
        &[
            "ns.dns.skydns.test. 300 A 10.0.0.2",
            "ns.dns.skydns.test. 300 A 10.0.0.3",
            "ns.dns.skydns.test. 300 A 10.0.0.4",
            "ns.dns.skydns.test. 300 A 10.0.0.5",
        ],
        &[],
    );
    // Apex A: no apex.dns → the whole zone; apex.dns key; apex.dns subtree.
    check(
        &s,
        "skydns_zonea.test.",
        A,
        NOERROR,
        &[
            "skydns_zonea.test. 300 A 10.0.0.2",
            "skydns_zonea.test. 300 A 10.0.0.3",
        ],
        &[],
    );
    check(
        &s,
        "skydns_zoneb.test.",
        A,
        NOERROR,
        &["skydns_zoneb.test. 300 A 10.0.0.4"],
        &[],
    );
    check(
        &s,
        "skydns_zonec.test.",
        A,
        NOERROR,
        &[
            "skydns_zonec.test. 300 A 10.0.0.4",
            "skydns_zonec.test. 300 A 10.0.0.5",
        ],
        &[],
    );
    check(
        &s,
        "skydns_zoned.test.",
        A,
        NOERROR,
        &[
            "skydns_zoned.test. 300 A 10.0.0.4",
            "skydns_zoned.test. 300 A 10.0.0.5",
        ],
        &[],
    );
    check(
        &s,
        "skydns_zoned.test.",
        AAAA,
        NOERROR,
        &[
            "skydns_zoned.test. 300 AAAA 2003::8:1",
            "skydns_zoned.test. 300 AAAA 2003::8:2",
        ],
        &[],
    );
    check(
        &s,
        "1.0.0.10.in-addr.arpa.",
        PTR,
        NOERROR,
        &["1.0.0.10.in-addr.arpa. 300 PTR reverse.example.com."],
        &[],
    );
}

/// `lookup_test.go`: the SOA of every zone, for the apex and any other name
/// (owner: the zone), TTL 30, MNAME `ns.dns.<zone>`, RNAME `hostmaster.<zone>`.
#[test]
fn coredns_soa_fixtures() {
    let s = lookup_data();
    for (qname, zone) in [
        ("skydns.test.", "skydns.test."),
        ("skydns_extra.test.", "skydns_extra.test."),
        ("a.server1.prod.region1.skydns.test.", "skydns.test."),
    ] {
        check(
            &s,
            qname,
            RecordType::SOA,
            NOERROR,
            &[&format!(
                "{zone} 30 SOA ns.dns.{zone} hostmaster.{zone} 1700000000 7200 1800 86400 30"
            )],
            &[],
        );
    }
    let negative = ask(&s, "doesnotexist.skydns.test.", RecordType::A);
    assert_eq!(
        negative.authority,
        ["skydns.test. 30 SOA ns.dns.skydns.test."]
    );
}

/// `lookup_test.go`: `*` and `any` labels are wildcards at any position;
/// weights split over every match (8 hosts: 12 each, 4 hosts: 25 each).
#[test]
fn coredns_wildcard_fixtures() {
    let s = lookup_data();
    check(
        &s,
        "*.region1.skydns.test.",
        RecordType::SRV,
        NOERROR,
        &[
            "*.region1.skydns.test. 300 SRV 10 12 0 sub.server1.",
            "*.region1.skydns.test. 300 SRV 10 12 0 unresolvable.skydns.test.",
            "*.region1.skydns.test. 300 SRV 10 12 80 sub.server2.",
            "*.region1.skydns.test. 300 SRV 10 12 8080 a.server1.prod.region1.skydns.test.",
            "*.region1.skydns.test. 300 SRV 10 12 8080 b.server1.prod.region1.skydns.test.",
            "*.region1.skydns.test. 300 SRV 10 12 8080 b.server6.prod.region1.skydns.test.",
            "*.region1.skydns.test. 300 SRV 10 12 8080 c.sub.region1.skydns.test.",
            "*.region1.skydns.test. 300 SRV 10 12 8080 dev.server1.",
        ],
        &[
            "a.server1.prod.region1.skydns.test. 300 A 10.0.0.1",
            "b.server1.prod.region1.skydns.test. 300 A 10.0.0.2",
            "b.server6.prod.region1.skydns.test. 300 AAAA ::1",
            "c.sub.region1.skydns.test. 300 A 10.0.0.1",
        ],
    );
    for qname in [
        "prod.*.skydns.test.",
        "prod.any.skydns.test.",
        "prod.ANY.skydns.test.",
    ] {
        check(
            &s,
            qname,
            RecordType::SRV,
            NOERROR,
            &[
                &format!("{qname} 300 SRV 10 25 0 unresolvable.skydns.test."),
                &format!("{qname} 300 SRV 10 25 8080 a.server1.prod.region1.skydns.test."),
                &format!("{qname} 300 SRV 10 25 8080 b.server1.prod.region1.skydns.test."),
                &format!("{qname} 300 SRV 10 25 8080 b.server6.prod.region1.skydns.test."),
            ],
            &[
                "a.server1.prod.region1.skydns.test. 300 A 10.0.0.1",
                "b.server1.prod.region1.skydns.test. 300 A 10.0.0.2",
                "b.server6.prod.region1.skydns.test. 300 AAAA ::1",
            ],
        );
    }
    // A pattern nothing matches under an existing name: NODATA (CoreDNS reads
    // the subtree above the wildcard, then filters it to nothing).
    check(
        &s,
        "nothing.*.skydns.test.",
        RecordType::A,
        NOERROR,
        &[],
        &[],
    );
    check(
        &s,
        "*.nothing.skydns.test.",
        RecordType::A,
        NXDOMAIN,
        &[],
        &[],
    );
    check(
        &s,
        "a.*.prod.region1.skydns.test.",
        RecordType::A,
        NOERROR,
        &["a.*.prod.region1.skydns.test. 300 A 10.0.0.1"],
        &[],
    );
}

/// `cname_test.go`: CNAME chains inside the zone, each hop with its own owner.
#[test]
fn coredns_cname_fixtures() {
    let s = snapshot(
        &["skydns.test."],
        &[
            (
                "a.server1.dev.region1.skydns.test",
                r#"{"host":"cname1.region2.skydns.test"}"#,
            ),
            (
                "cname1.region2.skydns.test",
                r#"{"host":"cname2.region2.skydns.test"}"#,
            ),
            (
                "cname2.region2.skydns.test",
                r#"{"host":"cname3.region2.skydns.test"}"#,
            ),
            (
                "cname3.region2.skydns.test",
                r#"{"host":"cname4.region2.skydns.test"}"#,
            ),
            (
                "cname4.region2.skydns.test",
                r#"{"host":"cname5.region2.skydns.test"}"#,
            ),
            (
                "cname5.region2.skydns.test",
                r#"{"host":"cname6.region2.skydns.test"}"#,
            ),
            (
                "cname6.region2.skydns.test",
                r#"{"host":"endpoint.region2.skydns.test"}"#,
            ),
            ("endpoint.region2.skydns.test", r#"{"host":"10.240.0.1"}"#),
            (
                "region2.skydns.test",
                r#"{"host":"mainendpoint.region2.skydns.test"}"#,
            ),
            (
                "cname3.region3.skydns.test",
                r#"{"host":"cname2.region3.skydns.test"}"#,
            ),
            (
                "cname2.region3.skydns.test",
                r#"{"host":"cname1.region3.skydns.test"}"#,
            ),
            (
                "cname1.region3.skydns.test",
                r#"{"host":"endpoint.region3.skydns.test"}"#,
            ),
            (
                "endpoint.region3.skydns.test",
                r#"{"text":"SOME-RECORD-TEXT"}"#,
            ),
        ],
    );
    use RecordType::*;
    check(
        &s,
        "a.server1.dev.region1.skydns.test.",
        SRV,
        NOERROR,
        &["a.server1.dev.region1.skydns.test. 300 SRV 10 100 0 cname1.region2.skydns.test."],
        &[
            "cname1.region2.skydns.test. 300 CNAME cname2.region2.skydns.test.",
            "cname2.region2.skydns.test. 300 CNAME cname3.region2.skydns.test.",
            "cname3.region2.skydns.test. 300 CNAME cname4.region2.skydns.test.",
            "cname4.region2.skydns.test. 300 CNAME cname5.region2.skydns.test.",
            "cname5.region2.skydns.test. 300 CNAME cname6.region2.skydns.test.",
            "cname6.region2.skydns.test. 300 CNAME endpoint.region2.skydns.test.",
            "endpoint.region2.skydns.test. 300 A 10.240.0.1",
        ],
    );
    check(
        &s,
        "region2.skydns.test.",
        CNAME,
        NOERROR,
        &["region2.skydns.test. 300 CNAME mainendpoint.region2.skydns.test."],
        &[],
    );
    check(
        &s,
        "endpoint.region3.skydns.test.",
        CNAME,
        NOERROR,
        &[],
        &[],
    );
    check(
        &s,
        "cname3.region3.skydns.test.",
        TXT,
        NOERROR,
        &[
            "cname3.region3.skydns.test. 300 CNAME cname2.region3.skydns.test.",
            "cname2.region3.skydns.test. 300 CNAME cname1.region3.skydns.test.",
            "cname1.region3.skydns.test. 300 CNAME endpoint.region3.skydns.test.",
            "endpoint.region3.skydns.test. 300 TXT SOME-RECORD-TEXT",
        ],
        &[],
    );
}

/// `other_test.go`: MX from `mail` records, TXT splitting, address dedup.
#[test]
fn coredns_other_fixtures() {
    let large = |n: usize| format!(r#"{{"text":"{}"}}"#, "0".repeat(n));
    let (l400, l600, l2000) = (large(400), large(600), large(2000));
    let s = snapshot(
        &["skydns.test."],
        &[
            (
                "a.server1.dev.region1.skydns.test",
                r#"{"host":"dev.server1","port":8080}"#,
            ),
            (
                "a.mail.skydns.test",
                r#"{"host":"mx.skydns.test","priority":50,"mail":true}"#,
            ),
            (
                "b.mail.skydns.test",
                r#"{"host":"mx.miek.nl","priority":50,"mail":true}"#,
            ),
            (
                "a.mx.skydns.test",
                r#"{"host":"a.ipaddr.skydns.test","priority":30,"mail":true}"#,
            ),
            (
                "a.mx2.skydns.test",
                r#"{"host":"a.ipaddr.skydns.test","mail":true}"#,
            ),
            (
                "b.mx2.skydns.test",
                r#"{"host":"b.ipaddr.skydns.test","mail":true}"#,
            ),
            (
                "a.mx3.skydns.test",
                r#"{"host":"a.ipaddr.skydns.test","priority":20,"mail":true}"#,
            ),
            (
                "b.mx3.skydns.test",
                r#"{"host":"a.ipaddr.skydns.test","priority":30,"mail":true}"#,
            ),
            ("a.ipaddr.skydns.test", r#"{"host":"172.16.1.1"}"#),
            ("b.ipaddr.skydns.test", r#"{"host":"172.16.1.2"}"#),
            ("a1.txt.skydns.test", r#"{"text":"abc"}"#),
            ("a2.txt.skydns.test", r#"{"text":"abc abc"}"#),
            ("large400.skydns.test", &l400),
            ("large600.skydns.test", &l600),
            ("large2000.skydns.test", &l2000),
            (
                "http.multiport.http.skydns.test",
                r#"{"host":"10.11.11.10","port":80}"#,
            ),
            (
                "https.multiport.http.skydns.test",
                r#"{"host":"10.11.11.10","port":443}"#,
            ),
        ],
    );
    use RecordType::*;
    check(
        &s,
        "a.server1.dev.region1.skydns.test.",
        MX,
        NOERROR,
        &[],
        &[],
    );
    check(
        &s,
        "a.mail.skydns.test.",
        MX,
        NOERROR,
        &["a.mail.skydns.test. 300 MX 50 mx.skydns.test."],
        &[
            "mx.skydns.test. 300 CNAME a.ipaddr.skydns.test.",
            "a.ipaddr.skydns.test. 300 A 172.16.1.1",
        ],
    );
    check(
        &s,
        "mx2.skydns.test.",
        MX,
        NOERROR,
        &[
            "mx2.skydns.test. 300 MX 10 a.ipaddr.skydns.test.",
            "mx2.skydns.test. 300 MX 10 b.ipaddr.skydns.test.",
        ],
        &[
            "a.ipaddr.skydns.test. 300 A 172.16.1.1",
            "b.ipaddr.skydns.test. 300 A 172.16.1.2",
        ],
    );
    check(
        &s,
        "mx3.skydns.test.",
        MX,
        NOERROR,
        &[
            "mx3.skydns.test. 300 MX 20 a.ipaddr.skydns.test.",
            "mx3.skydns.test. 300 MX 30 a.ipaddr.skydns.test.",
        ],
        &["a.ipaddr.skydns.test. 300 A 172.16.1.1"],
    );
    check(
        &s,
        "a1.txt.skydns.test.",
        TXT,
        NOERROR,
        &["a1.txt.skydns.test. 300 TXT abc"],
        &[],
    );
    check(
        &s,
        "a2.txt.skydns.test.",
        TXT,
        NOERROR,
        &["a2.txt.skydns.test. 300 TXT abc abc"],
        &[],
    );
    check(
        &s,
        "multiport.http.skydns.test.",
        A,
        NOERROR,
        &["multiport.http.skydns.test. 300 A 10.11.11.10"],
        &[],
    );
    // TXT data longer than 255 bytes is split into 255-byte strings.
    for (qname, strings) in [
        ("large400.skydns.test.", vec![255, 145]),
        ("large600.skydns.test.", vec![255, 255, 90]),
        (
            "large2000.skydns.test.",
            vec![255; 7].into_iter().chain([215]).collect(),
        ),
    ] {
        let mut query = Message::query();
        query.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii(qname).unwrap(),
            TXT,
        ));
        let bytes = query.to_vec().unwrap();
        let parsed = parse_query(&bytes).unwrap();
        let Lookup::Answer(view) = s.lookup(parsed.qname_lower(), parsed.qtype) else {
            panic!()
        };
        let mut out = vec![0u8; 65535];
        let meta = write_response(&parsed, view, &mut out, 65535);
        let message = Message::from_vec(&out[..meta.len]).unwrap();
        let hickory_proto::rr::RData::TXT(txt) = &message.answers[0].data else {
            panic!("not TXT")
        };
        let lengths: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(lengths, strings, "{qname}");
    }
}

/// `group_test.go`: the shallowest grouped entry decides; other groups below
/// it are dropped; ungrouped entries always pass.
#[test]
fn coredns_group_fixtures() {
    let s = snapshot(
        &["skydns.test."],
        &[
            ("a.dom.skydns.test", r#"{"host":"127.0.0.1","group":"g1"}"#),
            (
                "b.sub.dom.skydns.test",
                r#"{"host":"127.0.0.2","group":"g1"}"#,
            ),
            ("a.dom2.skydns.test", r#"{"host":"127.0.0.1","group":"g1"}"#),
            ("b.sub.dom2.skydns.test", r#"{"host":"127.0.0.2"}"#),
            ("a.dom1.skydns.test", r#"{"host":"127.0.0.1","group":"g1"}"#),
            (
                "b.sub.dom1.skydns.test",
                r#"{"host":"127.0.0.2","group":"g2"}"#,
            ),
            ("a.dom3.skydns.test", r#"{"text":"foo","group":"g1"}"#),
            ("b.sub.dom3.skydns.test", r#"{"text":"bar","group":"g1"}"#),
        ],
    );
    use RecordType::*;
    check(
        &s,
        "dom.skydns.test.",
        A,
        NOERROR,
        &[
            "dom.skydns.test. 300 A 127.0.0.1",
            "dom.skydns.test. 300 A 127.0.0.2",
        ],
        &[],
    );
    check(
        &s,
        "dom2.skydns.test.",
        A,
        NOERROR,
        &[
            "dom2.skydns.test. 300 A 127.0.0.1",
            "dom2.skydns.test. 300 A 127.0.0.2",
        ],
        &[],
    );
    check(
        &s,
        "dom1.skydns.test.",
        A,
        NOERROR,
        &["dom1.skydns.test. 300 A 127.0.0.1"],
        &[],
    );
    check(
        &s,
        "dom3.skydns.test.",
        TXT,
        NOERROR,
        &[
            "dom3.skydns.test. 300 TXT bar",
            "dom3.skydns.test. 300 TXT foo",
        ],
        &[],
    );
}

/// `plugin/etcd/README.md` examples, each replayed on an empty store as the
/// README shows them: the zone name as A and AAAA (keys below it), SRV, TXT,
/// a key ending in `/`, and the reverse zone of `etcd skydns.local 10.0.0.0/24`.
#[test]
fn coredns_readme_examples() {
    use RecordType::*;
    let zone = ["skydns.local."];
    let s = snapshot(
        &zone,
        &[("/skydns/local/skydns/", r#"{"host":"1.1.1.1","ttl":60}"#)],
    );
    check(
        &s,
        "skydns.local.",
        A,
        NOERROR,
        &["skydns.local. 60 A 1.1.1.1"],
        &[],
    );
    let s = snapshot(
        &zone,
        &[
            ("/skydns/local/skydns/x1", r#"{"host":"1.1.1.1","ttl":60}"#),
            ("/skydns/local/skydns/x2", r#"{"host":"1.1.1.2","ttl":60}"#),
        ],
    );
    check(
        &s,
        "skydns.local.",
        A,
        NOERROR,
        &["skydns.local. 60 A 1.1.1.1", "skydns.local. 60 A 1.1.1.2"],
        &[],
    );
    let s = snapshot(
        &zone,
        &[
            (
                "/skydns/local/skydns/x3",
                r#"{"host":"2003::8:1","ttl":60}"#,
            ),
            (
                "/skydns/local/skydns/x4",
                r#"{"host":"2003::8:2","ttl":60}"#,
            ),
        ],
    );
    check(
        &s,
        "skydns.local.",
        AAAA,
        NOERROR,
        &[
            "skydns.local. 60 AAAA 2003::8:1",
            "skydns.local. 60 AAAA 2003::8:2",
        ],
        &[],
    );
    let s = snapshot(
        &zone,
        &[(
            "/skydns/local/skydns/x5",
            r#"{"host":"skydns-local.server","ttl":60,"priority":10,"port":8080}"#,
        )],
    );
    check(
        &s,
        "skydns.local.",
        SRV,
        NOERROR,
        &["skydns.local. 60 SRV 10 100 8080 skydns-local.server."],
        &[],
    );
    let s = snapshot(
        &zone,
        &[
            (
                "/skydns/local/skydns/x6",
                r#"{"ttl":60,"text":"this is a random text message."}"#,
            ),
            (
                "/skydns/local/skydns/x7",
                r#"{"ttl":60,"text":"this is a another random text message."}"#,
            ),
        ],
    );
    check(
        &s,
        "skydns.local.",
        TXT,
        NOERROR,
        &[
            "skydns.local. 60 TXT this is a random text message.",
            "skydns.local. 60 TXT this is a another random text message.",
        ],
        &[],
    );
    let s = snapshot(
        &["skydns.local.", "0.0.10.in-addr.arpa."],
        &[(
            "/skydns/arpa/in-addr/10/0/0/127",
            r#"{"host":"reverse.skydns.local."}"#,
        )],
    );
    check(
        &s,
        "127.0.0.10.in-addr.arpa.",
        PTR,
        NOERROR,
        &["127.0.0.10.in-addr.arpa. 300 PTR reverse.skydns.local."],
        &[],
    );
}

/// The README examples kept together, as its caveats describe: the
/// trailing-slash key and x1 both say 1.1.1.1 (one A), and every address
/// record takes part in the apex SRV answer under a name from its key.
#[test]
fn coredns_readme_examples_cumulative() {
    let s = snapshot(
        &["skydns.local."],
        &[
            ("/skydns/local/skydns/", r#"{"host":"1.1.1.1","ttl":60}"#),
            ("/skydns/local/skydns/x1", r#"{"host":"1.1.1.1","ttl":60}"#),
            ("/skydns/local/skydns/x2", r#"{"host":"1.1.1.2","ttl":60}"#),
        ],
    );
    check(
        &s,
        "skydns.local.",
        RecordType::A,
        NOERROR,
        &["skydns.local. 60 A 1.1.1.1", "skydns.local. 60 A 1.1.1.2"],
        &[],
    );
    check(
        &s,
        "skydns.local.",
        RecordType::SRV,
        NOERROR,
        &[
            "skydns.local. 60 SRV 10 33 0 skydns.local.",
            "skydns.local. 60 SRV 10 33 0 x1.skydns.local.",
            "skydns.local. 60 SRV 10 33 0 x2.skydns.local.",
        ],
        &[
            "skydns.local. 60 A 1.1.1.1",
            "x1.skydns.local. 60 A 1.1.1.1",
            "x2.skydns.local. 60 A 1.1.1.2",
        ],
    );
    // `*.skydns.local` matches the trailing-slash key too (its empty segment).
    check(
        &s,
        "*.skydns.local.",
        RecordType::A,
        NOERROR,
        &[
            "*.skydns.local. 60 A 1.1.1.1",
            "*.skydns.local. 60 A 1.1.1.2",
        ],
        &[],
    );
}

/// A CNAME to a name outside the zone is answered with the CNAME alone (the
/// client's resolver follows it); a leased key takes the smaller of its
/// clamped lease TTL and its own.
#[test]
fn out_of_zone_cname_and_lease_ttl() {
    let s = snapshot(
        &["skydns.test."],
        &[("www.skydns.test", r#"{"host":"example.org"}"#)],
    );
    check(
        &s,
        "www.skydns.test.",
        RecordType::A,
        NOERROR,
        &["www.skydns.test. 300 CNAME example.org."],
        &[],
    );
    let records = vec![
        SkyRecord::parse(
            PREFIX,
            "/skydns/test/skydns/short",
            br#"{"host":"10.0.0.1"}"#,
            Some(5),
        )
        .unwrap(),
        SkyRecord::parse(
            PREFIX,
            "/skydns/test/skydns/long",
            br#"{"host":"10.0.0.2","ttl":100}"#,
            Some(600),
        )
        .unwrap(),
    ];
    let options = SkyOptions {
        zones: vec![Name::from_ascii("skydns.test.").unwrap()],
        fallthrough: Vec::new(),
        min_lease_ttl: DEFAULT_MIN_LEASE_TTL,
        max_lease_ttl: DEFAULT_MAX_LEASE_TTL,
    };
    let mut builder = SnapshotBuilder::new(1);
    compile(&mut builder, &records, &options, 1);
    let s = builder.build();
    check(
        &s,
        "short.skydns.test.",
        RecordType::A,
        NOERROR,
        &["short.skydns.test. 30 A 10.0.0.1"],
        &[],
    );
    check(
        &s,
        "long.skydns.test.",
        RecordType::A,
        NOERROR,
        &["long.skydns.test. 100 A 10.0.0.2"],
        &[],
    );
}

/// Values that are not SkyDNS records are refused with a reason; external-dns's
/// `owner` field is accepted.
#[test]
fn malformed_values_are_refused() {
    let parse = |key: &str, value: &str| SkyRecord::parse(PREFIX, key, value.as_bytes(), None);
    assert!(matches!(
        parse("/skydns/test/a", "{not json"),
        Err(SkyError::Json(_))
    ));
    assert!(matches!(
        parse("/skydns/test/a", ""),
        Err(SkyError::Json(_))
    ));
    let unknown = parse("/skydns/test/a", r#"{"host":"10.0.0.1","colour":"blue"}"#).unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `colour`"),
        "{unknown}"
    );
    assert!(matches!(
        parse("/skydns/test/a", r#"{"host":"not a host!"}"#),
        Err(SkyError::Host(_))
    ));
    assert!(matches!(
        parse("/skydns/test/a", r#"{"host":"a..b"}"#),
        Err(SkyError::Host(_))
    ));
    assert!(matches!(
        parse("/skydns/test/a", r#"{"port":70000}"#),
        Err(SkyError::Range { field: "port", .. })
    ));
    assert!(matches!(
        parse("/skydns/test/A", r#"{"host":"10.0.0.1"}"#),
        Err(SkyError::Key(_))
    ));
    assert!(matches!(
        parse("/skydns/test//a", r#"{"host":"10.0.0.1"}"#),
        Err(SkyError::Key(_))
    ));
    assert!(matches!(
        parse("/other/test/a", r#"{"host":"10.0.0.1"}"#),
        Err(SkyError::Key(_))
    ));
    let owned = parse(
        "/skydns/org/example/www/1a2b3c4d",
        r#"{"host":"1.2.3.4","targetstrip":1,"owner":"default"}"#,
    )
    .unwrap();
    assert_eq!(owned.host, SkyHost::V4("1.2.3.4".parse().unwrap()));
    let mapped = parse("/skydns/test/a", r#"{"host":"::ffff:10.0.0.1"}"#).unwrap();
    assert_eq!(mapped.host, SkyHost::V4("10.0.0.1".parse().unwrap()));
}
