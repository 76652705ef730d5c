//! Every record form of the cluster zone, queried over UDP and checked record
//! by record (Kubernetes DNS-Based Service Discovery specification 1.1.0,
//! <https://github.com/kubernetes/dns/blob/master/docs/specification.md>).

use crate::fixtures::{
    CLUSTER, assert_answer, assert_negative, assert_section, cluster, cluster_with,
};
use crate::support::{TestServer, standard_corefile};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::time::{SystemTime, UNIX_EPOCH};

/// Spec §2.3.1: a ClusterIP service `<service>.<ns>.svc.<zone>` has an A record
/// with its cluster IP.
#[test]
fn cluster_ip_service_has_a_record() {
    let server = cluster();
    let answer = server.query("api.web.svc.cluster.local.", RecordType::A);
    assert_answer(&answer, &["api.web.svc.cluster.local. 30 A 10.96.1.10"]);
}

/// Spec §2.3.1 (dual stack, schema 1.1.0): a service with an IPv4 and an IPv6
/// cluster IP has both an A and an AAAA record.
#[test]
fn dual_stack_service_has_a_and_aaaa() {
    let server = cluster();
    let a = server.query("dual.web.svc.cluster.local.", RecordType::A);
    assert_answer(&a, &["dual.web.svc.cluster.local. 30 A 10.96.1.20"]);
    let aaaa = server.query("dual.web.svc.cluster.local.", RecordType::AAAA);
    assert_answer(&aaaa, &["dual.web.svc.cluster.local. 30 AAAA fd00::20"]);
}

/// Spec §2.4.1: a headless service has one A record per ready endpoint
/// address; db-2 is not ready and is left out. An endpoint with no
/// `conditions` counts as ready (EndpointSlice API: nil `ready` means true).
#[test]
fn headless_service_lists_every_ready_endpoint() {
    let server = cluster();
    let db = server.query("db.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &db,
        &[
            "db.web.svc.cluster.local. 30 A 10.0.0.10",
            "db.web.svc.cluster.local. 30 A 10.0.0.11",
        ],
    );
    let cache = server.query("cache.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &cache,
        &[
            "cache.web.svc.cluster.local. 30 A 10.1.0.5",
            "cache.web.svc.cluster.local. 30 A 10.1.0.6",
        ],
    );
    let cache6 = server.query("cache.web.svc.cluster.local.", RecordType::AAAA);
    assert_answer(&cache6, &["cache.web.svc.cluster.local. 30 AAAA fd00::1"]);
}

/// Spec §2.4.1: a ready endpoint with a hostname has
/// `<hostname>.<service>.<ns>.svc.<zone>` A <address>.
#[test]
fn headless_endpoint_hostname_has_a_record() {
    let server = cluster();
    let answer = server.query("db-1.db.web.svc.cluster.local.", RecordType::A);
    assert_answer(&answer, &["db-1.db.web.svc.cluster.local. 30 A 10.0.0.11"]);
}

/// Spec §2.4.1 applies to ready endpoints only: the not-ready db-2 has no
/// name, so the query is NXDOMAIN (RFC 2308 §2.1, SOA in authority).
#[test]
fn not_ready_endpoint_hostname_is_nxdomain() {
    let server = cluster();
    let answer = server.query("db-2.db.web.svc.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NXDomain, 30);
}

/// CoreDNS `endpoint_pod_names` (spec §2.4.1 leaves the identifier of an
/// endpoint without hostname to the implementation): such endpoints are named
/// after their pod (`targetRef.name`); endpoints with a hostname keep it.
#[test]
fn endpoint_pod_names_names_endpoints_after_pods() {
    let server = cluster_with("        endpoint_pod_names");
    let worker = server.query("worker-a1.workers.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &worker,
        &["worker-a1.workers.web.svc.cluster.local. 30 A 10.3.0.1"],
    );
    let srv = server.query("_http._tcp.workers.web.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &srv,
        &[
            "_http._tcp.workers.web.svc.cluster.local. 30 SRV 0 50 8080 worker-a1.workers.web.svc.cluster.local.",
            "_http._tcp.workers.web.svc.cluster.local. 30 SRV 0 50 8080 worker-b2.workers.web.svc.cluster.local.",
        ],
    );
    let db = server.query("db-0.db.web.svc.cluster.local.", RecordType::A);
    assert_answer(&db, &["db-0.db.web.svc.cluster.local. 30 A 10.0.0.10"]);
    let dashed = server.query("10-3-0-1.workers.web.svc.cluster.local.", RecordType::A);
    assert_negative(&dashed, ResponseCode::NXDomain, 30);
}

/// Spec §2.4.1 (system-assigned identifier), CoreDNS's choice: without
/// `endpoint_pod_names` an endpoint without hostname is named by its address
/// with dots as dashes, even when it has a pod.
#[test]
fn endpoint_without_hostname_has_dashed_ipv4_name() {
    let server = cluster();
    let answer = server.query("10-1-0-5.cache.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &answer,
        &["10-1-0-5.cache.web.svc.cluster.local. 30 A 10.1.0.5"],
    );
    let worker = server.query("10-3-0-2.workers.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &worker,
        &["10-3-0-2.workers.web.svc.cluster.local. 30 A 10.3.0.2"],
    );
}

/// Spec §2.4.1 for IPv6 endpoints (CoreDNS's form): the name is the address
/// as written (`fd00::1`) with each `:` as `-`, so `fd00--1`, with an AAAA record.
#[test]
fn endpoint_without_hostname_has_dashed_ipv6_name() {
    let server = cluster();
    let answer = server.query("fd00--1.cache.web.svc.cluster.local.", RecordType::AAAA);
    assert_answer(
        &answer,
        &["fd00--1.cache.web.svc.cluster.local. 30 AAAA fd00::1"],
    );
}

/// Spec §2.3.2: a named port of a ClusterIP service has
/// `_<port>._<proto>.<service>.<ns>.svc.<zone>` SRV 0 100 <port> <service name>,
/// and RFC 2782 / RFC 1034 §4.3.2 step 6: the target's address is in the
/// additional section. The port is the service port, not the target port.
#[test]
fn cluster_ip_srv_targets_the_service_with_address_in_additional() {
    let server = cluster();
    let answer = server.query("_grpc._tcp.api.web.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &answer,
        &["_grpc._tcp.api.web.svc.cluster.local. 30 SRV 0 100 9000 api.web.svc.cluster.local."],
    );
    assert_section(
        &answer,
        &answer.additionals,
        &["api.web.svc.cluster.local. 30 A 10.96.1.10"],
    );
}

/// Spec §2.3.2 with a dual-stack service: the SRV target's A and AAAA are both
/// in the additional section.
#[test]
fn dual_stack_srv_additional_has_both_families() {
    let server = cluster();
    let answer = server.query("_http._tcp.dual.web.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &answer,
        &["_http._tcp.dual.web.svc.cluster.local. 30 SRV 0 100 80 dual.web.svc.cluster.local."],
    );
    assert_section(
        &answer,
        &answer.additionals,
        &[
            "dual.web.svc.cluster.local. 30 A 10.96.1.20",
            "dual.web.svc.cluster.local. 30 AAAA fd00::20",
        ],
    );
}

/// Spec §2.4.2: a headless service has one SRV record per ready endpoint and
/// named port, targeting `<hostname>.<service>.<ns>.svc.<zone>`, with the
/// endpoint port; the targets' addresses go in the additional section.
#[test]
fn headless_srv_has_one_record_per_ready_endpoint() {
    let server = cluster();
    let answer = server.query("_postgres._tcp.db.web.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &answer,
        &[
            "_postgres._tcp.db.web.svc.cluster.local. 30 SRV 0 50 5432 db-0.db.web.svc.cluster.local.",
            "_postgres._tcp.db.web.svc.cluster.local. 30 SRV 0 50 5432 db-1.db.web.svc.cluster.local.",
        ],
    );
    assert_section(
        &answer,
        &answer.additionals,
        &[
            "db-0.db.web.svc.cluster.local. 30 A 10.0.0.10",
            "db-1.db.web.svc.cluster.local. 30 A 10.0.0.11",
        ],
    );
}

/// Spec §2.3.2: SRV records exist only for the protocol the port uses; the
/// HTTP port is TCP, so `_http._udp` does not exist (NXDOMAIN, RFC 2308 §2.1).
#[test]
fn srv_for_wrong_protocol_is_nxdomain() {
    let server = cluster();
    let answer = server.query("_http._udp.api.web.svc.cluster.local.", RecordType::SRV);
    assert_negative(&answer, ResponseCode::NXDomain, 30);
}

/// Spec §2.3.3: a cluster IP has a PTR record in in-addr.arpa pointing to the
/// service name (RFC 1035 §3.5 reverse name).
#[test]
fn cluster_ip_has_ipv4_ptr() {
    let server = cluster();
    let answer = server.query("10.1.96.10.in-addr.arpa.", RecordType::PTR);
    assert_answer(
        &answer,
        &["10.1.96.10.in-addr.arpa. 30 PTR api.web.svc.cluster.local."],
    );
}

/// Spec §2.3.3 with RFC 3596 §2.5: the IPv6 cluster IP of a dual-stack service
/// has a PTR record in ip6.arpa (nibbles in reverse order).
#[test]
fn cluster_ip_has_ipv6_ptr() {
    let server = cluster();
    let name = "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    let answer = server.query(name, RecordType::PTR);
    assert_answer(
        &answer,
        &[&format!("{name} 30 PTR dual.web.svc.cluster.local.")],
    );
}

/// Spec §2.4.3: a ready headless endpoint with a hostname has a PTR record to
/// `<hostname>.<service>.<ns>.svc.<zone>`; a not-ready one has none.
#[test]
fn headless_endpoint_has_ptr() {
    let server = cluster();
    let answer = server.query("10.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_answer(
        &answer,
        &["10.0.0.10.in-addr.arpa. 30 PTR db-0.db.web.svc.cluster.local."],
    );
    let not_ready = server.query("12.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_negative(&not_ready, ResponseCode::NXDomain, 30);
}

/// Spec §2.4.3 for IPv6 (RFC 3596 §2.5): an IPv6 headless endpoint has a PTR
/// in ip6.arpa to its (dashed) endpoint name.
#[test]
fn headless_ipv6_endpoint_has_ptr() {
    let server = cluster();
    let name = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    let answer = server.query(name, RecordType::PTR);
    assert_answer(
        &answer,
        &[&format!(
            "{name} 30 PTR fd00--1.cache.web.svc.cluster.local."
        )],
    );
}

/// Spec §2.5: an ExternalName service is a CNAME to its external name. The
/// target is outside every served zone, so the answer is the CNAME alone
/// (RFC 1034 §4.3.2 step 3a: chasing stops when the data leaves the zone).
#[test]
fn external_name_outside_is_cname_only() {
    let server = cluster();
    let answer = server.query("external.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &answer,
        &["external.web.svc.cluster.local. 30 CNAME api.stripe.com."],
    );
    assert!(
        answer.authorities.is_empty(),
        "no authority expected:\n{answer}"
    );
}

/// Spec §2.5 and RFC 1034 §4.3.2 step 3a: an ExternalName pointing inside the
/// zone is followed, so the answer holds the CNAME and the target's A.
#[test]
fn external_name_in_cluster_is_followed() {
    let server = cluster();
    let answer = server.query("alias.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &answer,
        &[
            "alias.web.svc.cluster.local. 30 CNAME api.web.svc.cluster.local.",
            "api.web.svc.cluster.local. 30 A 10.96.1.10",
        ],
    );
}

/// Spec §2.2: `dns-version.<zone>` has TXT "1.1.0", the schema version.
#[test]
fn dns_version_is_1_1_0() {
    let server = cluster();
    let answer = server.query("dns-version.cluster.local.", RecordType::TXT);
    assert_answer(&answer, &["dns-version.cluster.local. 30 TXT 1.1.0"]);
}

/// CoreDNS `pods insecure` (the spec's deprecated pod A records):
/// `<a-b-c-d>.<ns>.pod.<zone>` has A a.b.c.d without checking the pod exists.
#[test]
fn pods_insecure_answers_dashed_ipv4() {
    let server = cluster_with("        pods insecure");
    let answer = server.query("1-2-3-4.web.pod.cluster.local.", RecordType::A);
    assert_answer(&answer, &["1-2-3-4.web.pod.cluster.local. 30 A 1.2.3.4"]);
}

/// CoreDNS `pods insecure` for IPv6 pods: colons written as dashes. An
/// address with three groups after `::` (`fd00::1:2:3`, dashed `fd00--1-2-3`)
/// has four dashes; one with two (`fd00::1:2`, dashed `fd00--1-2`) has three
/// dashes, like an IPv4 name, and must still be read as IPv6.
#[test]
fn pods_insecure_answers_dashed_ipv6() {
    let server = cluster_with("        pods insecure");
    let answer = server.query("fd00--1-2-3.web.pod.cluster.local.", RecordType::AAAA);
    assert_answer(
        &answer,
        &["fd00--1-2-3.web.pod.cluster.local. 30 AAAA fd00::1:2:3"],
    );
    let three_dashes = server.query("fd00--1-2.web.pod.cluster.local.", RecordType::AAAA);
    assert_answer(
        &three_dashes,
        &["fd00--1-2.web.pod.cluster.local. 30 AAAA fd00::1:2"],
    );
}

/// CoreDNS `pods disabled` (the default): pod names do not exist, NXDOMAIN
/// with the SOA (RFC 2308 §2.1).
#[test]
fn pods_disabled_is_nxdomain() {
    let server = cluster();
    let answer = server.query("1-2-3-4.web.pod.cluster.local.", RecordType::A);
    assert_negative(&answer, ResponseCode::NXDomain, 30);
}

/// RFC 1035 §6.1 / RFC 1034 §4.3.4: the apex has an SOA; signpost follows
/// CoreDNS (`ns.dns.<zone>`, `hostmaster.<zone>`, refresh 7200, retry 1800,
/// expire 86400, MINIMUM = the TTL) and, as CoreDNS does, uses the Unix time
/// of the snapshot as the serial: a time between just before the server
/// started and the answer.
#[test]
fn apex_has_soa() {
    let unix_now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    let before = unix_now();
    let server = cluster();
    let answer = server.query("cluster.local.", RecordType::SOA);
    let after = unix_now();
    let expected: Vec<String> = (before..=after)
        .map(|serial| {
            format!(
                "cluster.local. 30 SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 30"
            )
        })
        .collect();
    let found = crate::fixtures::lines(&answer.answers);
    assert!(
        expected.iter().any(|line| found == [line.clone()]),
        "want one SOA with a serial in {before}..={after}:\n{answer}"
    );
    assert_answer(&answer, &[&found[0]]);
}

/// RFC 1034 §4.2.1: the apex has NS records; the name server's address (the
/// kube-dns cluster IP, as in CoreDNS) is in the additional section (RFC 1034
/// §4.3.2 step 6).
#[test]
fn apex_has_ns_with_address() {
    let server = cluster();
    let answer = server.query("cluster.local.", RecordType::NS);
    assert_answer(&answer, &["cluster.local. 30 NS ns.dns.cluster.local."]);
    assert_section(
        &answer,
        &answer.additionals,
        &["ns.dns.cluster.local. 30 A 10.96.0.10"],
    );
}

/// Spec §2.4.1 with `publishNotReadyAddresses: true`: not-ready endpoints are
/// served too (A records, hostnames and SRV).
#[test]
fn publish_not_ready_addresses_includes_not_ready_endpoints() {
    let server = cluster();
    let answer = server.query("peers.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &answer,
        &[
            "peers.web.svc.cluster.local. 30 A 10.4.0.1",
            "peers.web.svc.cluster.local. 30 A 10.4.0.2",
        ],
    );
    let host = server.query("peer-1.peers.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &host,
        &["peer-1.peers.web.svc.cluster.local. 30 A 10.4.0.2"],
    );
    let srv = server.query("_gossip._udp.peers.web.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &srv,
        &[
            "_gossip._udp.peers.web.svc.cluster.local. 30 SRV 0 50 7946 peer-0.peers.web.svc.cluster.local.",
            "_gossip._udp.peers.web.svc.cluster.local. 30 SRV 0 50 7946 peer-1.peers.web.svc.cluster.local.",
        ],
    );
}

/// Spec §2.3.1 for a service with only `spec.clusterIP` (no `clusterIPs`, as
/// older manifests are written): the A record comes from `clusterIP`.
#[test]
fn cluster_ip_without_cluster_ips_list() {
    const CATALOG: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: old, namespace: legacy}\nspec:\n  clusterIP: 10.96.9.9\n  ports: [{name: http, port: 80}]\n";
    let server = TestServer::start(&[("catalog/old.yaml", CATALOG)]);
    let answer = server.query("old.legacy.svc.cluster.local.", RecordType::A);
    assert_answer(&answer, &["old.legacy.svc.cluster.local. 30 A 10.96.9.9"]);
}

/// The catalog may be split over several files and directories: the same
/// cluster as one file per object kind answers the same.
#[test]
fn catalog_split_over_files_answers_the_same() {
    let documents: Vec<&str> = CLUSTER.split("\n---\n").collect();
    let (services, slices): (Vec<&str>, Vec<&str>) = documents
        .iter()
        .partition(|d| d.contains("kind: Service\n"));
    let services = services.join("\n---\n");
    let slices = slices.join("\n---\n");
    let server = TestServer::start_with(
        &standard_corefile(""),
        &[
            ("catalog/services.yaml", &services),
            ("catalog/slices/all.yml", &slices),
        ],
        true,
    );
    let answer = server.query("db.web.svc.cluster.local.", RecordType::A);
    assert_answer(
        &answer,
        &[
            "db.web.svc.cluster.local. 30 A 10.0.0.10",
            "db.web.svc.cluster.local. 30 A 10.0.0.11",
        ],
    );
}
