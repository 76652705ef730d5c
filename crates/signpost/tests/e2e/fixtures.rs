//! Shared catalogs and assertion helpers for the end-to-end tests.
//!
//! [`CLUSTER`] is a small cluster written for the record tests: every record
//! form of the Kubernetes DNS specification 1.1.0 has one service that shows
//! it. The helpers turn answers into one presentation-format line per record
//! (`owner ttl TYPE rdata`), so a failed assertion prints the whole answer.

#![allow(dead_code, unreachable_pub)]

use crate::support::{self, TestServer};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use std::path::Path;

/// A small cluster covering every record form.
///
/// ```text
/// kube-system/kube-dns  ClusterIP 10.96.0.10          dns/53 UDP, dns-tcp/53 TCP, metrics/9153
/// web/api               ClusterIP 10.96.1.10          http/80, grpc/9000, unnamed 8080
/// web/dual              ClusterIP 10.96.1.20 fd00::20 http/80 (RequireDualStack)
/// web/db                headless, db-0 db-1 ready, db-2 not ready      postgres/5432
/// web/cache             headless, no hostnames: 10.1.0.5 10.1.0.6 fd00::1   redis/6379
/// web/workers           headless, no hostnames, pods worker-a1 worker-b2   http/8080
/// web/peers             headless, publishNotReadyAddresses, peer-0 ready, peer-1 not   gossip/7946 UDP
/// web/external          ExternalName api.stripe.com
/// web/alias             ExternalName api.web.svc.cluster.local
/// idle/sleeper          headless, its only endpoint not ready
/// ```
pub const CLUSTER: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: web}
spec:
  clusterIP: 10.96.1.10
  clusterIPs: [10.96.1.10]
  ports:
  - {name: http, port: 80, protocol: TCP}
  - {name: grpc, port: 9000, protocol: TCP}
  - {port: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: web}
spec:
  clusterIP: 10.96.1.20
  clusterIPs: [10.96.1.20, "fd00::20"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: RequireDualStack
  ports:
  - {name: http, port: 80, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dual-v4
  namespace: web
  labels: {kubernetes.io/service-name: dual}
addressType: IPv4
endpoints:
- addresses: [10.2.0.1]
  conditions: {ready: true}
ports:
- {name: http, port: 8080, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dual-v6
  namespace: web
  labels: {kubernetes.io/service-name: dual}
addressType: IPv6
endpoints:
- addresses: ["fd00:2::1"]
  conditions: {ready: true}
ports:
- {name: http, port: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: web}
spec:
  clusterIP: None
  ports:
  - {name: postgres, port: 5432, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abcde
  namespace: web
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
endpoints:
- addresses: [10.0.0.10]
  hostname: db-0
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: web, name: db-0}
- addresses: [10.0.0.11]
  hostname: db-1
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: web, name: db-1}
- addresses: [10.0.0.12]
  hostname: db-2
  conditions: {ready: false}
  targetRef: {kind: Pod, namespace: web, name: db-2}
ports:
- {name: postgres, port: 5432, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: web}
spec:
  clusterIP: None
  ports:
  - {name: redis, port: 6379, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: cache-v4
  namespace: web
  labels: {kubernetes.io/service-name: cache}
addressType: IPv4
endpoints:
- addresses: [10.1.0.5]
- addresses: [10.1.0.6]
  conditions: {ready: true}
ports:
- {name: redis, port: 6379, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: cache-v6
  namespace: web
  labels: {kubernetes.io/service-name: cache}
addressType: IPv6
endpoints:
- addresses: ["fd00::1"]
  conditions: {ready: true}
ports:
- {name: redis, port: 6379, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: workers, namespace: web}
spec:
  clusterIP: None
  ports:
  - {name: http, port: 8080, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: workers-x1
  namespace: web
  labels: {kubernetes.io/service-name: workers}
addressType: IPv4
endpoints:
- addresses: [10.3.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: web, name: worker-a1}
- addresses: [10.3.0.2]
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: web, name: worker-b2}
ports:
- {name: http, port: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: peers, namespace: web}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports:
  - {name: gossip, port: 7946, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: peers-x1
  namespace: web
  labels: {kubernetes.io/service-name: peers}
addressType: IPv4
endpoints:
- addresses: [10.4.0.1]
  hostname: peer-0
  conditions: {ready: true}
- addresses: [10.4.0.2]
  hostname: peer-1
  conditions: {ready: false}
ports:
- {name: gossip, port: 7946, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: external, namespace: web}
spec:
  type: ExternalName
  externalName: api.stripe.com
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: web}
spec:
  type: ExternalName
  externalName: api.web.svc.cluster.local
---
apiVersion: v1
kind: Service
metadata: {name: sleeper, namespace: idle}
spec:
  clusterIP: None
  ports:
  - {name: http, port: 80, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: sleeper-x1
  namespace: idle
  labels: {kubernetes.io/service-name: sleeper}
addressType: IPv4
endpoints:
- addresses: [10.5.0.1]
  conditions: {ready: false}
ports:
- {name: http, port: 80, protocol: TCP}
"#;

/// Starts the standard Corefile over [`CLUSTER`].
pub fn cluster() -> TestServer {
    TestServer::start(&[("catalog/cluster.yaml", CLUSTER)])
}

/// Starts [`CLUSTER`] with `extra` lines inside the kubernetes block.
pub fn cluster_with(extra: &str) -> TestServer {
    TestServer::start_with(
        &support::standard_corefile(extra),
        &[("catalog/cluster.yaml", CLUSTER)],
        true,
    )
}

/// The files of `examples/catalog/`, as `(catalog/<name>, contents)`.
pub fn example_catalog() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            let name = entry.expect("dir entry").file_name();
            let name = name.to_str().expect("utf-8 file name").to_owned();
            let contents = support::example(&format!("catalog/{name}"));
            (format!("catalog/{name}"), contents)
        })
        .collect();
    files.sort();
    files
}

/// Starts the standard Corefile (with `extra` in the kubernetes block) over
/// the example catalog.
pub fn example_cluster(extra: &str) -> TestServer {
    let files = example_catalog();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, contents)| (path.as_str(), contents.as_str()))
        .collect();
    TestServer::start_with(&support::standard_corefile(extra), &borrowed, true)
}

/// One record as `owner ttl TYPE rdata`, the owner in the case it was sent.
pub fn line(record: &Record) -> String {
    format!(
        "{} {} {} {}",
        record.name,
        record.ttl,
        record.record_type(),
        record.data
    )
}

/// A section as sorted presentation lines.
pub fn lines(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records.iter().map(line).collect();
    lines.sort();
    lines
}

/// Asserts that a section holds exactly `expected` (order ignored), printing
/// the whole message otherwise.
#[track_caller]
pub fn assert_section(message: &Message, section: &[Record], expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(
        lines(section),
        expected,
        "\nunexpected section in answer:\n{message}"
    );
}

/// Asserts the RCODE and AA, printing the whole message otherwise.
#[track_caller]
pub fn assert_rcode(message: &Message, code: ResponseCode) {
    assert_eq!(
        message.metadata.response_code, code,
        "\nunexpected rcode in answer:\n{message}"
    );
}

/// Asserts a NOERROR, authoritative answer holding exactly `expected`.
#[track_caller]
pub fn assert_answer(message: &Message, expected: &[&str]) {
    assert_rcode(message, ResponseCode::NoError);
    assert!(message.metadata.authoritative, "AA not set in:\n{message}");
    assert_section(message, &message.answers, expected);
}

/// Asserts a negative answer (NXDOMAIN or NODATA, RFC 2308 §2): the RCODE,
/// AA, an empty answer section, and exactly the zone SOA in the authority
/// section with TTL = min(SOA TTL, SOA MINIMUM) (RFC 2308 §3), where the SOA's
/// own TTL comes from `apex_soa_ttl`.
#[track_caller]
pub fn assert_negative(message: &Message, code: ResponseCode, apex_soa_ttl: u32) {
    assert_rcode(message, code);
    assert!(message.metadata.authoritative, "AA not set in:\n{message}");
    assert!(
        message.answers.is_empty(),
        "answer not empty in:\n{message}"
    );
    assert_eq!(message.authorities.len(), 1, "want one SOA in:\n{message}");
    let soa = &message.authorities[0];
    assert_eq!(
        soa.record_type(),
        RecordType::SOA,
        "want SOA in:\n{message}"
    );
    let hickory_proto::rr::RData::SOA(data) = &soa.data else {
        panic!("SOA without SOA data in:\n{message}");
    };
    assert_eq!(
        soa.ttl,
        apex_soa_ttl.min(data.minimum),
        "negative SOA TTL must be min(SOA TTL, MINIMUM) in:\n{message}"
    );
}

/// The answer lines of `dig +noall +answer` output, whitespace normalized.
pub fn dig_records(output: &str) -> Vec<String> {
    let mut records: Vec<String> = output
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    records.sort();
    records
}

/// The `status:` of dig or kdig output (`NOERROR`, `NXDOMAIN`, ...).
pub fn dig_status(output: &str) -> Option<String> {
    let at = output.find("status: ")? + "status: ".len();
    let status: String = output[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    Some(status)
}
