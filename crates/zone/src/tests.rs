//! Lookup semantics of compiled snapshots: RFC 1034 §4.3.2, RFC 2308, and the
//! Kubernetes DNS spec 1.1.0, checked on the rendered answers' headers and
//! decoded records.

use crate::cluster::{self, ClusterOptions};
use crate::{Lookup, PodMode, Snapshot, SnapshotBuilder};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use signpost_model::{ClusterEndpoint, ClusterService, Protocol, ServiceKind, ServicePort};
use signpost_proto::{Name, parse_query, rcode, rtype, write_response};

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: name.into(),
        protocol: Protocol::Tcp,
        port,
    }
}

fn services() -> Vec<ClusterService> {
    vec![
        ClusterService {
            namespace: "default".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec!["10.96.0.5".parse().unwrap()]),
            ports: vec![port("http", 80)],
            endpoints: vec![],
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        },
        ClusterService {
            namespace: "default".into(),
            name: "db".into(),
            kind: ServiceKind::Headless,
            ports: vec![port("pg", 5432)],
            endpoints: vec![
                ClusterEndpoint {
                    addresses: vec!["10.1.0.1".parse().unwrap()],
                    hostname: Some("db-0".into()),
                    pod_name: Some("db-0".into()),
                    ready: true,
                    ports: vec![port("pg", 5432)].into(),
                },
                ClusterEndpoint {
                    addresses: vec!["10.1.0.2".parse().unwrap()],
                    hostname: None,
                    pod_name: Some("db-1".into()),
                    ready: false,
                    ports: vec![port("pg", 5432)].into(),
                },
            ],
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        },
        ClusterService {
            namespace: "default".into(),
            name: "alias".into(),
            kind: ServiceKind::ExternalName("web.default.svc.cluster.local".into()),
            ports: vec![],
            endpoints: vec![],
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        },
        ClusterService {
            namespace: "default".into(),
            name: "dangling".into(),
            kind: ServiceKind::ExternalName("nothing.default.svc.cluster.local".into()),
            ports: vec![],
            endpoints: vec![],
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        },
        ClusterService {
            namespace: "empty".into(),
            name: "idle".into(),
            kind: ServiceKind::Headless,
            ports: vec![],
            endpoints: vec![],
            publish_not_ready: false,
            health_check: None,
            geo: None,
            external_addresses: Vec::new(),
        },
    ]
}

fn snapshot(pods: PodMode, fallthrough: &[&str]) -> Snapshot {
    let options = ClusterOptions {
        zones: vec![name("cluster.local"), name("in-addr.arpa")],
        ttl: 30,
        pods,
        endpoint_pod_names: false,
        fallthrough: fallthrough.iter().map(|z| name(z)).collect(),
        serial: 7,
        all_unhealthy: Default::default(),
    };
    let mut builder = SnapshotBuilder::new(1);
    let problems = cluster::compile(&mut builder, &services(), &options);
    assert!(problems.is_empty(), "{problems:?}");
    builder.build()
}

/// Runs a query through lookup and write_response and decodes the answer.
fn ask(snapshot: &Snapshot, qname: &str, qtype: RecordType) -> Option<Message> {
    let mut query = Message::query();
    query.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(qname).unwrap(),
        qtype,
    ));
    let bytes = query.to_vec().unwrap();
    let parsed = parse_query(&bytes).unwrap();
    let mut out = vec![0u8; 65535];
    let mut scratch = [0u8; 32];
    let view = match snapshot.lookup(parsed.qname_lower(), parsed.qtype) {
        Lookup::Answer(view) => view,
        Lookup::Pod(pod) => pod.render(&mut scratch),
        Lookup::Geo(name, aaaa) => name.answer(None, aaaa),
        Lookup::Fallthrough | Lookup::NotAuthoritative => return None,
    };
    let meta = write_response(&parsed, view, &mut out, 65535);
    Some(Message::from_vec(&out[..meta.len]).unwrap())
}

fn rcode_of(message: &Message) -> u16 {
    u16::from(message.metadata.response_code)
}

/// RFC 1034 §4.3.2: an existing name and type answers with its RRset, AA set.
#[test]
fn cluster_ip_answers_a() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "web.default.svc.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert!(answer.metadata.authoritative);
    assert_eq!(answer.answers.len(), 1);
    assert_eq!(answer.answers[0].ttl, 30);
}

/// RFC 2308 §2.2: NODATA is NOERROR with the SOA in authority.
#[test]
fn existing_name_other_type_is_nodata() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "web.default.svc.cluster.local",
        RecordType::AAAA,
    )
    .unwrap();
    assert_eq!(rcode_of(&answer), rcode::NOERROR);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authorities[0].record_type(), RecordType::SOA);
}

/// RFC 2308 §2.1 and §3: NXDOMAIN with the SOA, TTL min(SOA TTL, MINIMUM).
#[test]
fn missing_name_is_nxdomain_with_soa() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "nope.default.svc.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(rcode_of(&answer), rcode::NXDOMAIN);
    assert_eq!(answer.authorities[0].ttl, 30);
}

/// RFC 8020 / RFC 4592 §2.2.2: empty non-terminals exist, so they answer NODATA.
#[test]
fn empty_non_terminals_are_nodata() {
    let snapshot = snapshot(PodMode::Disabled, &[]);
    for ent in [
        "svc.cluster.local",
        "default.svc.cluster.local",
        "_tcp.web.default.svc.cluster.local",
        "empty.svc.cluster.local",
    ] {
        let answer = ask(&snapshot, ent, RecordType::A).unwrap();
        assert_eq!(rcode_of(&answer), rcode::NOERROR, "{ent}");
        assert!(answer.answers.is_empty(), "{ent}");
    }
}

/// Kubernetes DNS spec 2.4.1: a headless service without ready endpoints does not exist.
#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "idle.empty.svc.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(rcode_of(&answer), rcode::NXDOMAIN);
}

/// Spec 2.4.1: headless A records list only ready endpoints; hostnames get their own names.
#[test]
fn headless_serves_ready_endpoints_only() {
    let snapshot = snapshot(PodMode::Disabled, &[]);
    let answer = ask(&snapshot, "db.default.svc.cluster.local", RecordType::A).unwrap();
    assert_eq!(answer.answers.len(), 1);
    let host = ask(
        &snapshot,
        "db-0.db.default.svc.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(host.answers.len(), 1);
    let not_ready = ask(
        &snapshot,
        "10-1-0-2.db.default.svc.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(rcode_of(&not_ready), rcode::NXDOMAIN);
}

/// Spec 2.4.2 and RFC 2782: headless SRV targets the endpoint names, addresses in additional.
#[test]
fn headless_srv_has_additional_addresses() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "_pg._tcp.db.default.svc.cluster.local",
        RecordType::SRV,
    )
    .unwrap();
    assert_eq!(answer.answers.len(), 1);
    let RData::SRV(srv) = &answer.answers[0].data else {
        panic!("not SRV")
    };
    assert_eq!(srv.target.to_ascii(), "db-0.db.default.svc.cluster.local.");
    assert_eq!(answer.additionals.len(), 1);
}

/// RFC 1034 §4.3.2 step 3a: a CNAME inside the served data is followed.
#[test]
fn external_name_to_cluster_service_is_chased() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "alias.default.svc.cluster.local",
        RecordType::A,
    )
    .unwrap();
    let types: Vec<RecordType> = answer.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::CNAME, RecordType::A]);
}

/// RFC 6604 §2: the RCODE describes the last name of the chain.
#[test]
fn cname_to_missing_in_zone_name_is_nxdomain() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "dangling.default.svc.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(rcode_of(&answer), rcode::NXDOMAIN);
    assert_eq!(answer.answers[0].record_type(), RecordType::CNAME);
}

/// PTR for cluster IPs (spec 2.5.1).
#[test]
fn reverse_lookup_of_cluster_ip() {
    let answer = ask(
        &snapshot(PodMode::Disabled, &[]),
        "5.0.96.10.in-addr.arpa",
        RecordType::PTR,
    )
    .unwrap();
    let RData::PTR(target) = &answer.answers[0].data else {
        panic!("not PTR")
    };
    assert_eq!(target.0.to_ascii(), "web.default.svc.cluster.local.");
}

/// CoreDNS `fallthrough`: unknown names in a fall-through zone go to the next plugin.
#[test]
fn fallthrough_zone_passes_unknown_names() {
    let snapshot = snapshot(PodMode::Disabled, &["in-addr.arpa"]);
    assert!(ask(&snapshot, "9.9.9.9.in-addr.arpa", RecordType::PTR).is_none());
    let known = ask(&snapshot, "5.0.96.10.in-addr.arpa", RecordType::PTR).unwrap();
    assert_eq!(known.answers.len(), 1);
    let cluster = ask(&snapshot, "nope.cluster.local", RecordType::A).unwrap();
    assert_eq!(rcode_of(&cluster), rcode::NXDOMAIN);
}

/// CoreDNS `pods insecure`: dashed addresses answer directly; `pods disabled` does not.
#[test]
fn pod_records() {
    let insecure = snapshot(PodMode::Insecure, &[]);
    let v4 = ask(
        &insecure,
        "10-244-1-7.default.pod.cluster.local",
        RecordType::A,
    )
    .unwrap();
    let RData::A(address) = &v4.answers[0].data else {
        panic!("not A")
    };
    assert_eq!(address.0.to_string(), "10.244.1.7");
    let v6 = ask(
        &insecure,
        "fd00--7.default.pod.cluster.local",
        RecordType::AAAA,
    )
    .unwrap();
    assert_eq!(v6.answers.len(), 1);
    let bad = ask(
        &insecure,
        "not-an-ip.default.pod.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(rcode_of(&bad), rcode::NXDOMAIN);
    let namespace = ask(&insecure, "default.pod.cluster.local", RecordType::A).unwrap();
    assert_eq!(rcode_of(&namespace), rcode::NOERROR);
    let disabled = snapshot(PodMode::Disabled, &[]);
    let none = ask(
        &disabled,
        "10-244-1-7.default.pod.cluster.local",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(rcode_of(&none), rcode::NXDOMAIN);
}

/// Names outside every zone are not ours.
#[test]
fn outside_names_are_not_authoritative() {
    let snapshot = snapshot(PodMode::Disabled, &[]);
    assert!(matches!(
        snapshot.lookup(name("example.com").as_wire(), rtype::A),
        Lookup::NotAuthoritative
    ));
}

/// The apex holds SOA and NS; `dns-version` holds the schema version (spec 2.2).
#[test]
fn apex_and_schema_version() {
    let snapshot = snapshot(PodMode::Disabled, &[]);
    let soa = ask(&snapshot, "cluster.local", RecordType::SOA).unwrap();
    assert_eq!(soa.answers[0].record_type(), RecordType::SOA);
    let ns = ask(&snapshot, "cluster.local", RecordType::NS).unwrap();
    assert_eq!(ns.answers[0].record_type(), RecordType::NS);
    let txt = ask(&snapshot, "dns-version.cluster.local", RecordType::TXT).unwrap();
    let RData::TXT(text) = &txt.answers[0].data else {
        panic!("not TXT")
    };
    assert_eq!(text.to_string(), "1.1.0");
}

// === file zones: RFC 1034 §4.3.2 with cuts and wildcards, RFC 4592 ===

const ZONE: &str = "$ORIGIN example.test.
$TTL 300
@        IN SOA ns1 hostmaster ( 7 7200 1800 1209600 60 )
         IN NS  ns1
ns1      IN A   192.0.2.1
www      IN A   192.0.2.10
alias    IN CNAME www
*.wild   IN A   192.0.2.99
*.wild   IN TXT \"wild\"
blocked.wild IN A 192.0.2.98
deep.ent.wild IN A 192.0.2.97
sub      IN NS  ns.sub
ns.sub   IN A   192.0.2.53
mail     IN MX  10 www
unknown  IN TYPE65280 \\# 4 0a000001
$INCLUDE included.zone
";

fn file_snapshot() -> Snapshot {
    // A directory per call: tests run in parallel and must not see each other's half-written files.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("signpost-zone-test-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("example.zone"), ZONE).unwrap();
    std::fs::write(dir.join("included.zone"), "inc IN A 192.0.2.77\n").unwrap();
    let zone =
        crate::zonefile::load_zone_file(&dir.join("example.zone"), &name("example.test")).unwrap();
    assert_eq!(zone.serial, 7);
    let mut builder = SnapshotBuilder::new(1);
    builder.add_file_zone(zone.apex.clone(), Vec::new());
    for record in &zone.records {
        builder
            .add_record(
                record.owner.clone(),
                record.rtype,
                record.ttl,
                record.rdata.clone(),
            )
            .unwrap();
    }
    builder.build()
}

/// RFC 4592 §3.3.1: a missing name whose closest encloser has a `*` child gets
/// the wildcard's data with the question as owner.
#[test]
fn wildcard_synthesizes_answers() {
    let snapshot = file_snapshot();
    let answer = ask(&snapshot, "a.b.wild.example.test", RecordType::A).unwrap();
    assert_eq!(rcode_of(&answer), rcode::NOERROR);
    assert_eq!(answer.answers[0].name.to_ascii(), "a.b.wild.example.test.");
    let nodata = ask(&snapshot, "x.wild.example.test", RecordType::MX).unwrap();
    assert!(nodata.answers.is_empty() && rcode_of(&nodata) == rcode::NOERROR);
}

/// RFC 4592 §2.2.2: existing names and empty non-terminals block the wildcard.
#[test]
fn existing_names_block_the_wildcard() {
    let snapshot = file_snapshot();
    let blocked = ask(&snapshot, "blocked.wild.example.test", RecordType::TXT).unwrap();
    assert!(blocked.answers.is_empty(), "NODATA at an existing name");
    let ent = ask(&snapshot, "ent.wild.example.test", RecordType::A).unwrap();
    assert!(
        ent.answers.is_empty() && rcode_of(&ent) == rcode::NOERROR,
        "ENT blocks"
    );
    let below_ent = ask(&snapshot, "x.ent.wild.example.test", RecordType::A).unwrap();
    assert_eq!(
        rcode_of(&below_ent),
        rcode::NXDOMAIN,
        "closest encloser is the ENT, which has no `*`"
    );
}

/// RFC 1034 §4.3.2 step 3b: at and below a cut, a referral with glue and AA clear.
#[test]
fn delegation_gives_referral_with_glue() {
    let snapshot = file_snapshot();
    for qname in [
        "sub.example.test",
        "host.sub.example.test",
        "ns.sub.example.test",
        "a.b.sub.example.test",
    ] {
        let referral = ask(&snapshot, qname, RecordType::A).unwrap();
        assert!(!referral.metadata.authoritative, "{qname}");
        assert!(referral.answers.is_empty(), "{qname}");
        assert_eq!(
            referral.authorities[0].record_type(),
            RecordType::NS,
            "{qname}"
        );
        assert_eq!(
            referral.additionals[0].name.to_ascii(),
            "ns.sub.example.test.",
            "{qname}"
        );
    }
}

/// Zone files: $INCLUDE, unknown types (RFC 3597), MX additional processing.
#[test]
fn zone_file_features() {
    let snapshot = file_snapshot();
    assert_eq!(
        ask(&snapshot, "inc.example.test", RecordType::A)
            .unwrap()
            .answers
            .len(),
        1
    );
    let unknown = ask(
        &snapshot,
        "unknown.example.test",
        RecordType::Unknown(65280),
    )
    .unwrap();
    assert_eq!(unknown.answers.len(), 1);
    let mx = ask(&snapshot, "mail.example.test", RecordType::MX).unwrap();
    assert_eq!(mx.additionals.len(), 1);
    let chained = ask(&snapshot, "alias.example.test", RecordType::A).unwrap();
    assert_eq!(chained.answers.len(), 2);
    let negative = ask(&snapshot, "nope.example.test", RecordType::A).unwrap();
    assert_eq!(rcode_of(&negative), rcode::NXDOMAIN);
    assert_eq!(
        negative.authorities[0].ttl, 60,
        "min(SOA TTL 300, MINIMUM 60)"
    );
}

/// A syntax error names the file and line.
#[test]
fn zone_file_errors_have_lines() {
    let dir = std::env::temp_dir().join(format!("signpost-zone-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.zone");
    std::fs::write(&path, "$ORIGIN example.test.\n@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1\nwww 300 IN A 999.1.1.1\n").unwrap();
    let error = crate::zonefile::load_zone_file(&path, &name("example.test")).unwrap_err();
    assert_eq!(error.line, Some(4), "{error}");
    // A record the scanner cannot finish, right after the directives: the
    // record's line, not the `$ORIGIN` line read in the same step.
    std::fs::write(
        &path,
        "$ORIGIN example.test.\n$TTL 300\n; c\n@ 300 IN SOA ns1 h\n",
    )
    .unwrap();
    let error = crate::zonefile::load_zone_file(&path, &name("example.test")).unwrap_err();
    assert_eq!(error.line, Some(4), "{error}");
    // A mistake in a directive is the directive's line.
    std::fs::write(
        &path,
        "$ORIGIN example.test.\n$TTL forever\n@ 300 IN SOA ns1 h 1 2 3 4 5\n",
    )
    .unwrap();
    let error = crate::zonefile::load_zone_file(&path, &name("example.test")).unwrap_err();
    assert_eq!(error.line, Some(2), "{error}");
    std::fs::write(&path, "$ORIGIN example.test.\n@ 300 IN NS ns1\n").unwrap();
    let error = crate::zonefile::load_zone_file(&path, &name("example.test")).unwrap_err();
    assert!(error.message.contains("no SOA"), "{error}");
}

/// Found by `fuzz/fuzz_targets/zonefile.rs`: a last line without a line end
/// whose TXT character string is followed by blanks, a comment or a
/// parenthesis made the zone-file scanner panic (index out of bounds), which
/// ended the `file` plugin's reload task; each now loads like the same text
/// with a final newline.
#[test]
fn last_line_without_newline_does_not_panic() {
    let dir = std::env::temp_dir().join(format!("signpost-zone-eof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("eof.zone");
    let head = "$ORIGIN example.test.\n@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1\n";
    for tail in [
        "t IN TXT N ",
        "t IN TXT N\t",
        "t IN TXT \"N\" ",
        "t IN TXT a b ",
        "t IN TXT N ;c",
        "t IN TXT (N )",
        "t IN TXT \\065 ",
        "t IN TXT N",
    ] {
        std::fs::write(&path, format!("{head}{tail}")).unwrap();
        let zone = crate::zonefile::load_zone_file(&path, &name("example.test"))
            .unwrap_or_else(|e| panic!("{tail:?}: {e}"));
        std::fs::write(&path, format!("{head}{tail}\n")).unwrap();
        let with_newline = crate::zonefile::load_zone_file(&path, &name("example.test")).unwrap();
        assert_eq!(zone.records.len(), 3, "{tail:?}");
        assert_eq!(
            zone.records.iter().map(|r| &r.rdata).collect::<Vec<_>>(),
            with_newline
                .records
                .iter()
                .map(|r| &r.rdata)
                .collect::<Vec<_>>(),
            "{tail:?}"
        );
    }
    // Only the scanner's own problem remains: the minimal crash input.
    std::fs::write(&path, "t IN TXT N ").unwrap();
    let error = crate::zonefile::load_zone_file(&path, &name("example.test")).unwrap_err();
    assert!(error.message.contains("no SOA"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Found by `fuzz/fuzz_targets/zonefile.rs` (input kept as
/// tests/data/scanner-panic.zone): the zone-file scanner panics inside this
/// file; the loader reports an error at a line of the file instead, so the
/// `file` plugin keeps its previous zone and keeps reloading.
#[test]
fn scanner_panic_is_an_error_at_a_line() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scanner-panic.zone");
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    let error = crate::zonefile::load_zone_file(&path, &name("example.test")).unwrap_err();
    let line = error.line.expect("the error names a line");
    assert!(
        (1..=u32::try_from(lines).unwrap()).contains(&line),
        "{error}"
    );
    assert!(error.message.contains("scanner failed"), "{error}");
}
