//! Header bits, TTLs and letter case of answers (RFC 1035 §4.1.1, RFC 4343).

use crate::fixtures::{assert_answer, cluster, cluster_with, dig_records, dig_status};
use crate::support::{render, standard_corefile};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// Encodes a query by hand: `id`, flag byte 2 (QR, opcode, AA, TC, RD) as
/// given, one question for `name` (dotted, no trailing dot) of `qtype` IN.
pub(crate) fn raw_query(id: u16, flags: u8, name: &str, qtype: u16) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[flags, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet
}

/// Kubernetes DNS spec 1.1.0 leaves TTLs to the implementation; CoreDNS's
/// default, which signpost keeps, is 30 s for every record.
#[test]
fn default_ttl_is_30() {
    let server = cluster();
    let answer = server.query("_postgres._tcp.db.web.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &answer,
        &[
            "_postgres._tcp.db.web.svc.cluster.local. 30 SRV 0 50 5432 db-0.db.web.svc.cluster.local.",
            "_postgres._tcp.db.web.svc.cluster.local. 30 SRV 0 50 5432 db-1.db.web.svc.cluster.local.",
        ],
    );
    assert!(!answer.additionals.is_empty(), "{answer}");
    for record in &answer.additionals {
        assert_eq!(record.ttl, 30, "TTL of {record}:\n{answer}");
    }
}

/// CoreDNS `ttl 5` in the kubernetes block sets the TTL of every record,
/// the apex SOA and NS included.
#[test]
fn ttl_option_sets_every_ttl() {
    let server = cluster_with("        ttl 5");
    let answer = server.query("api.web.svc.cluster.local.", RecordType::A);
    assert_answer(&answer, &["api.web.svc.cluster.local. 5 A 10.96.1.10"]);
    let ns = server.query("cluster.local.", RecordType::NS);
    assert_answer(&ns, &["cluster.local. 5 NS ns.dns.cluster.local."]);
    let ptr = server.query("10.1.96.10.in-addr.arpa.", RecordType::PTR);
    assert_answer(
        &ptr,
        &["10.1.96.10.in-addr.arpa. 5 PTR api.web.svc.cluster.local."],
    );
}

/// RFC 4343 §3 and §4.1: names match case-insensitively, and the question's
/// case is kept; the answer owner (a pointer to the question) comes back in
/// the client's spelling. Checked with hickory and with dig.
#[test]
fn mixed_case_query_is_answered_in_its_case() {
    let server = cluster();
    let qname = "Api.WEB.Svc.Cluster.LOCAL.";
    let answer = server.query(qname, RecordType::A);
    assert_answer(&answer, &[&format!("{qname} 30 A 10.96.1.10")]);
    assert_eq!(answer.queries[0].name().to_string(), qname, "{answer}");
    let dig = server.dig(&["+noall", "+answer", "DB-0.Db.Web.svc.cluster.local", "A"]);
    assert_eq!(
        dig_records(&dig),
        ["DB-0.Db.Web.svc.cluster.local. 30 IN A 10.0.0.10"],
        "{dig}"
    );
}

/// RFC 4343 §3 in reverse zones and SRV names: `_HTTP._TCP` matches `_http._tcp`.
#[test]
fn mixed_case_srv_and_ptr_match() {
    let server = cluster();
    let srv = server.query("_HTTP._Tcp.api.web.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &srv,
        &["_HTTP._Tcp.api.web.svc.cluster.local. 30 SRV 0 100 80 api.web.svc.cluster.local."],
    );
    let ptr = server.query("10.1.96.10.IN-ADDR.ARPA.", RecordType::PTR);
    assert_answer(
        &ptr,
        &["10.1.96.10.IN-ADDR.ARPA. 30 PTR api.web.svc.cluster.local."],
    );
}

/// RFC 1035 §4.1.1: the answer copies the ID and RD of the query, sets QR and
/// AA (RFC 1035 §4.1.1 "authoritative answer"), and leaves RA clear (no
/// recursion). Checked for RD set and clear, on raw bytes.
#[test]
fn header_copies_id_and_rd_and_sets_aa() {
    let server = cluster();
    for (id, flags) in [(0xbeef_u16, 0x01_u8), (0x1234, 0x00)] {
        let reply = server
            .udp_raw(&raw_query(id, flags, "api.web.svc.cluster.local", 1))
            .expect("a reply");
        let message = Message::from_vec(&reply).expect("parse");
        assert_eq!(u16::from_be_bytes([reply[0], reply[1]]), id, "{message}");
        assert_eq!(reply[2] & 0x80, 0x80, "QR set:\n{message}");
        assert_eq!(reply[2] & 0x04, 0x04, "AA set:\n{message}");
        assert_eq!(reply[2] & 0x01, flags & 0x01, "RD copied:\n{message}");
        assert_eq!(reply[3] & 0x80, 0, "RA clear:\n{message}");
        assert_eq!(reply[3] & 0x0f, 0, "NOERROR:\n{message}");
    }
}

/// RFC 1035 §4.1.1 as seen by kdig: `aa` and `rd` in the flags, answer
/// NOERROR, and the A record.
#[test]
fn kdig_sees_authoritative_answer() {
    let server = cluster();
    let output = server.kdig(&["api.web.svc.cluster.local", "A"]);
    assert_eq!(dig_status(&output).as_deref(), Some("NOERROR"), "{output}");
    let flags = output
        .lines()
        .find(|l| l.starts_with(";; Flags:"))
        .unwrap_or_else(|| panic!("no flags line:\n{output}"));
    assert!(
        flags.contains(" aa") && flags.contains(" rd") && !flags.contains(" ra"),
        "{output}"
    );
    assert!(
        output.contains("api.web.svc.cluster.local.\t30\tIN\tA\t10.96.1.10"),
        "{output}"
    );
}

/// CoreDNS `ttl`: out-of-range values are a configuration error reported by
/// `signpost check`, so a bad TTL never reaches clients.
#[test]
fn ttl_out_of_range_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corefile = render(&standard_corefile("        ttl 99999"));
    std::fs::write(dir.path().join("Corefile"), corefile).expect("write");
    std::fs::create_dir_all(dir.path().join("catalog")).expect("mkdir");
    let output = std::process::Command::new(crate::support::binary())
        .args(["check", "--conf"])
        .arg(dir.path().join("Corefile"))
        .output()
        .expect("run signpost check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "stderr: {stderr}");
    assert!(stderr.contains("ttl"), "stderr: {stderr}");
}
