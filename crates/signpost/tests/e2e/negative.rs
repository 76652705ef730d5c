//! Negative answers: NXDOMAIN, NODATA and REFUSED (RFC 2308, RFC 1035 §4.1.1,
//! RFC 8020 for empty non-terminals).

use crate::fixtures::{assert_negative, assert_rcode, cluster, cluster_with, dig_status};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// RFC 2308 §2.1 and §3: a name that does not exist is NXDOMAIN with the zone
/// SOA in the authority section, its TTL min(SOA TTL, SOA MINIMUM).
#[test]
fn missing_service_is_nxdomain_with_soa() {
    let server = cluster();
    let answer = server.query("nothere.web.svc.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NXDomain, 30);
    assert_eq!(
        answer.authorities[0].name.to_string(),
        "cluster.local.",
        "SOA owner is the apex:\n{answer}"
    );
}

/// RFC 2308 §3 with a SOA whose TTL and MINIMUM come from `ttl 5`: the
/// negative TTL follows the configured TTL, not a hard-coded one.
#[test]
fn negative_ttl_follows_configured_ttl() {
    let server = cluster_with("        ttl 5");
    let soa = server.query("cluster.local.", RecordType::SOA);
    let apex_ttl = soa.answers[0].ttl;
    assert_eq!(apex_ttl, 5, "SOA TTL:\n{soa}");
    let answer = server.query("nothere.web.svc.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NXDomain, apex_ttl);
}

/// Spec §2.4.1: a headless service with no ready endpoints has no records, so
/// its name does not exist: NXDOMAIN (RFC 2308 §2.1).
#[test]
fn headless_service_without_ready_endpoints_is_nxdomain() {
    let server = cluster();
    let answer = server.query("sleeper.idle.svc.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NXDomain, 30);
    let srv = server.query(
        "_http._tcp.sleeper.idle.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_negative(&srv, ResponseCode::NXDomain, 30);
}

/// RFC 2308 §2.2: an existing name without data of the asked type is NODATA:
/// NOERROR, empty answer, SOA in the authority section. `api` is IPv4 only.
#[test]
fn aaaa_on_ipv4_only_service_is_nodata() {
    let server = cluster();
    let answer = server.query("api.web.svc.cluster.local.", RecordType::AAAA);
    assert_negative(&answer, ResponseCode::NoError, 30);
}

/// RFC 2308 §2.2: NODATA for other types too (TXT at a headless endpoint name).
#[test]
fn txt_on_endpoint_name_is_nodata() {
    let server = cluster();
    let answer = server.query("db-0.db.web.svc.cluster.local.", RecordType::TXT);
    assert_negative(&answer, ResponseCode::NoError, 30);
}

/// RFC 8020 §2 and RFC 2308 §2.2: `<ns>.svc.<zone>` is an empty non-terminal
/// (it has names below it), so it exists: NODATA, not NXDOMAIN. This also
/// holds for a namespace whose only service has no ready endpoints.
#[test]
fn namespace_empty_non_terminal_is_nodata() {
    let server = cluster();
    let answer = server.query("web.svc.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NoError, 30);
    let idle = server.query("idle.svc.cluster.local.", RecordType::A);
    assert_negative(&idle, ResponseCode::NoError, 30);
}

/// RFC 8020 §2 and RFC 2308 §2.2: `svc.<zone>` is an empty non-terminal: NODATA.
#[test]
fn svc_empty_non_terminal_is_nodata() {
    let server = cluster();
    let answer = server.query("svc.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NoError, 30);
    let srv_parent = server.query("_tcp.api.web.svc.cluster.local.", RecordType::SRV);
    assert_negative(&srv_parent, ResponseCode::NoError, 30);
}

/// RFC 2308 §2.1: a namespace that has no services does not exist.
#[test]
fn unknown_namespace_is_nxdomain() {
    let server = cluster();
    let answer = server.query("nowhere.svc.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NXDomain, 30);
}

/// RFC 1035 §4.1.1 (REFUSED: "the name server refuses to perform the specified
/// operation for policy reasons"): a name outside every served zone, with no
/// forwarder, is refused, not answered authoritatively. Checked with dig too.
#[test]
fn name_outside_zones_is_refused() {
    let server = cluster();
    let answer = server.query("example.com.", RecordType::A);
    assert_rcode(&answer, ResponseCode::Refused);
    assert!(
        !answer.metadata.authoritative,
        "AA must be clear:\n{answer}"
    );
    assert!(
        answer.answers.is_empty() && answer.authorities.is_empty(),
        "{answer}"
    );
    let dig = server.dig(&["example.com", "A"]);
    assert_eq!(dig_status(&dig).as_deref(), Some("REFUSED"), "{dig}");
}

/// RFC 2308 §2.1 in a reverse zone: an address no service has is NXDOMAIN
/// with the in-addr.arpa SOA.
#[test]
fn unknown_address_ptr_is_nxdomain() {
    let server = cluster();
    let answer = server.query("99.99.99.10.in-addr.arpa.", RecordType::PTR);
    assert_negative(&answer, ResponseCode::NXDomain, 30);
    assert_eq!(
        answer.authorities[0].name.to_string(),
        "in-addr.arpa.",
        "SOA of the reverse zone:\n{answer}"
    );
}
