//! Health-aware answers end to end (issue 4, point 1 and 3): real HTTP and TCP
//! servers on loopback addresses behind a headless service, checked by the
//! real binary with short test timings; answers observed with a real client.
//!
//! Timings in these tests: interval 1 s, timeout 500 ms, failure threshold 2,
//! success threshold 1, remove_unhealthy_delay 2 s. An endpoint that starts
//! failing leaves answers no earlier than the delay (2 s after it started
//! failing, since the first failure of the run comes after that) and no later
//! than one interval (the first failing check) plus the delay, 3 s, plus a
//! [`MARGIN`] of 5 s for a loaded machine; it returns within
//! success_threshold × interval = 1 s of recovering, plus the same margin.
//! The lower bounds are exact: load only delays.

use crate::fixtures::assert_answer;
use crate::support::{self, Backend, CLOSED, FAILING, HANGING, HEALTHY, START_LIMIT, TestServer};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// Three backends on 127.0.0.2, .3 and .4, all on one port.
fn backends() -> (u16, Vec<Backend>) {
    support::backends_on(&[
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    ])
}

/// A headless service `web` in `shop` with three endpoints, `web-0..2`, annotated for checks.
fn catalog(annotations: &str, service_port: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations:
    dns.aikernel.io/health-check-enabled: \"true\"
{annotations}spec:
  clusterIP: None
  ports:
{service_port}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: [127.0.0.2]
  hostname: web-0
- addresses: [127.0.0.3]
  hostname: web-1
- addresses: [127.0.0.4]
  hostname: web-2
ports:
- name: http
  port: 8080
"
    )
}

fn corefile(extra: &str) -> String {
    format!(
        "cluster.local:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        catalog catalog
    }}
    healthcheck {{
        interval 1s
        timeout 500ms
        failure_threshold 2
        success_threshold 1
        remove_unhealthy_delay 2s
{extra}    }}
    prometheus 127.0.0.1:{{ADMIN}}
    ready 127.0.0.1:{{ADMIN}}
    admin 127.0.0.2:{{API}}
}}
"
    )
}

fn start(annotations: &str, service_port: &str, extra: &str) -> TestServer {
    TestServer::start_with(
        &corefile(extra),
        &[("catalog/web.yaml", &catalog(annotations, service_port))],
        true,
    )
}

fn addresses(server: &TestServer) -> Vec<String> {
    let answer = server.query("web.shop.svc.cluster.local", RecordType::A);
    let mut found: Vec<String> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

const ALL: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// What a loaded machine may add to the upper bounds of the removal and
/// return windows (scheduling of checks, builds and the test's own polling).
const MARGIN: Duration = Duration::from_secs(5);

/// Waits until every endpoint passed a check (so later failures start from Healthy).
fn wait_checked(server: &TestServer, backends: &[Backend]) {
    let deadline = SystemTime::now() + START_LIMIT;
    while backends
        .iter()
        .any(|b| b.requests.load(Ordering::Relaxed) == 0)
    {
        assert!(
            SystemTime::now() < deadline,
            "checks never reached the backends; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Switches `backend` to `mode` and measures when `address` leaves answers;
/// asserts the removal window (not before the 2 s delay, at most one interval
/// plus the delay plus [`MARGIN`]).
fn assert_removed_in_window(server: &TestServer, backend: &Backend, mode: u8, address: &str) {
    let started = SystemTime::now();
    backend.set(mode);
    loop {
        let now = addresses(server);
        let waited = started.elapsed().expect("clock");
        if !now.iter().any(|a| a == address) {
            assert!(
                waited >= Duration::from_secs(2),
                "{address} left after {waited:?}, before the 2 s delay"
            );
            break;
        }
        assert!(
            waited <= Duration::from_secs(3) + MARGIN,
            "{address} still served after {waited:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_returns(server: &TestServer, backend: &Backend, address: &str) {
    let started = SystemTime::now();
    backend.set(HEALTHY);
    while !addresses(server).iter().any(|a| a == address) {
        let waited = started.elapsed().expect("clock");
        assert!(
            waited <= Duration::from_secs(1) + MARGIN,
            "{address} not back after {waited:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The health rule (3 failures out, 1 success back) with test timings: a failing HTTP endpoint (503) leaves the
/// A answer, its hostname and the SRV set within the window and not earlier;
/// one pass brings it back. The path and port annotations decide what is checked.
#[test]
fn failing_http_endpoint_leaves_and_returns() {
    let (port, backends) = backends();
    let annotations = format!(
        "    dns.aikernel.io/health-check-path: /healthz\n    dns.aikernel.io/health-check-port: \"{port}\"\n"
    );
    let server = start(
        &annotations,
        "  - {name: http, port: 80, targetPort: 8080}\n",
        "",
    );
    wait_checked(&server, &backends);
    assert_eq!(addresses(&server), ALL);
    assert_removed_in_window(&server, &backends[1], FAILING, "127.0.0.3");
    assert_eq!(addresses(&server), ["127.0.0.2", "127.0.0.4"]);
    let host = server.query("web-1.web.shop.svc.cluster.local", RecordType::A);
    assert_eq!(
        host.metadata.response_code,
        ResponseCode::NXDomain,
        "hostname of the removed endpoint"
    );
    let srv = server.query("_http._tcp.web.shop.svc.cluster.local", RecordType::SRV);
    assert_answer(
        &srv,
        &[
            "_http._tcp.web.shop.svc.cluster.local. 30 SRV 0 50 8080 web-0.web.shop.svc.cluster.local.",
            "_http._tcp.web.shop.svc.cluster.local. 30 SRV 0 50 8080 web-2.web.shop.svc.cluster.local.",
        ],
    );
    assert_returns(&server, &backends[1], "127.0.0.3");
    assert_eq!(addresses(&server), ALL);
    // The checks used the annotated path on the annotated port (the backends listen nowhere else).
    let paths = backends[0].paths.lock().unwrap().clone();
    assert!(
        !paths.is_empty() && paths.iter().all(|p| p == "/healthz"),
        "{paths:?}"
    );
}

/// A server that accepts and never answers fails by timeout.
#[test]
fn hanging_endpoint_fails_by_timeout() {
    let (port, backends) = backends();
    let annotations = format!("    dns.aikernel.io/health-check-port: \"{port}\"\n");
    let server = start(&annotations, "  - {name: http, port: 80}\n", "");
    wait_checked(&server, &backends);
    assert_removed_in_window(&server, &backends[2], HANGING, "127.0.0.4");
    let (_, body) = server.api_get("/api/v1/endpoints").expect("endpoints api");
    assert!(body.contains("timed out"), "{body}");
}

/// `dns.aikernel.io/health-check-protocol: tcp` checks by connecting: a closed
/// port fails, a reopened one passes.
#[test]
fn tcp_check_follows_the_listener() {
    let (port, backends) = backends();
    let annotations = format!(
        "    dns.aikernel.io/health-check-protocol: tcp\n    dns.aikernel.io/health-check-port: \"{port}\"\n"
    );
    let server = start(&annotations, "  - {name: http, port: 80}\n", "");
    wait_checked(&server, &backends);
    assert_removed_in_window(&server, &backends[0], CLOSED, "127.0.0.2");
    assert_returns(&server, &backends[0], "127.0.0.2");
}

/// Without a port annotation the service's first port is checked (here its
/// numeric targetPort), and the path defaults to /health. When every endpoint
/// fails, answers fail open and keep all of them.
#[test]
fn all_unhealthy_fails_open_on_the_default_port_and_path() {
    let (port, backends) = backends();
    let server = start(
        "",
        &format!("  - {{name: http, port: 80, targetPort: {port}}}\n"),
        "",
    );
    wait_checked(&server, &backends);
    for backend in &backends {
        backend.set(FAILING);
    }
    // The checker marks all three unhealthy (and has published that)...
    let deadline = SystemTime::now() + START_LIMIT;
    loop {
        let (_, body) = server.api_get("/api/v1/endpoints").expect("endpoints api");
        if body.matches("\"state\": \"unhealthy\"").count() == 3 {
            break;
        }
        assert!(SystemTime::now() < deadline, "never all unhealthy: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...and the compiler has applied it once a catalog change made after
    // that is served: verdicts and source updates reach it in order.
    server.write_file(
        "catalog/marker.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: marker, namespace: shop}\nspec: {clusterIP: 10.96.5.5}\n",
    );
    let deadline = SystemTime::now() + START_LIMIT;
    while server
        .query("marker.shop.svc.cluster.local", RecordType::A)
        .answers
        .is_empty()
    {
        assert!(SystemTime::now() < deadline, "marker service never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(addresses(&server), ALL, "fail open: all endpoints stay");
    let paths = backends[1].paths.lock().unwrap().clone();
    assert!(paths.iter().all(|p| p == "/health"), "{paths:?}");
}

/// `all_unhealthy nxdomain` serves no endpoint when all fail.
#[test]
fn all_unhealthy_nxdomain_when_asked() {
    let (port, backends) = backends();
    let annotations = format!("    dns.aikernel.io/health-check-port: \"{port}\"\n");
    let server = start(
        &annotations,
        "  - {name: http, port: 80}\n",
        "        all_unhealthy nxdomain\n",
    );
    wait_checked(&server, &backends);
    for backend in &backends {
        backend.set(FAILING);
    }
    let started = SystemTime::now();
    loop {
        let answer = server.query("web.shop.svc.cluster.local", RecordType::A);
        if answer.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        assert!(
            started.elapsed().expect("clock") <= Duration::from_secs(3) + MARGIN,
            "{answer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The seven health metrics of the reference deployment and the endpoints API with every field.
#[test]
fn health_metrics_and_endpoints_api() {
    let (port, backends) = backends();
    let annotations = format!("    dns.aikernel.io/health-check-port: \"{port}\"\n");
    let server = start(&annotations, "  - {name: http, port: 80}\n", "");
    wait_checked(&server, &backends);
    assert_removed_in_window(&server, &backends[1], FAILING, "127.0.0.3");
    assert_returns(&server, &backends[1], "127.0.0.3");
    let (status, metrics) = server.http_get("/metrics").expect("scrape");
    assert_eq!(status, 200);
    for (name, kind) in [
        ("dns_health_checks_total", "counter"),
        ("dns_health_check_duration_seconds", "histogram"),
        ("dns_healthy_endpoints", "gauge"),
        ("dns_unhealthy_endpoints", "gauge"),
        ("dns_updates_total", "counter"),
        ("dns_endpoints_removed_total", "counter"),
        ("dns_endpoints_added_total", "counter"),
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} {kind}")),
            "{name} missing:\n{metrics}"
        );
    }
    for line in [
        "dns_endpoints_removed_total 1",
        "dns_endpoints_added_total 1",
        "dns_healthy_endpoints 3",
        "dns_unhealthy_endpoints 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    // The check counts against what the backends saw: every check is one
    // connection, and at most one check per endpoint can be between its
    // connection and its count when the scrape is taken.
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
    };
    let failures = value("dns_health_checks_total{result=\"failure\"}");
    let successes = value("dns_health_checks_total{result=\"success\"}");
    let timed = value("dns_health_check_duration_seconds_count");
    let connections: usize = backends
        .iter()
        .map(|b| b.requests.load(Ordering::Relaxed))
        .sum();
    let failing_connections = backends[1].requests.load(Ordering::Relaxed);
    assert!(
        failures >= 2.0 && failures <= failing_connections as f64,
        "{failures} failed checks: at least the threshold (2), at most the \
         {failing_connections} connections to the failing backend:\n{metrics}"
    );
    assert!(
        (timed - (failures + successes)).abs() <= 3.0,
        "{timed} timed checks for {failures} + {successes} counted:\n{metrics}"
    );
    assert!(
        timed <= connections as f64 && timed + 3.0 >= connections as f64,
        "{timed} checks counted, {connections} connections seen:\n{metrics}"
    );
    let (status, body) = server.api_get("/api/v1/endpoints").expect("endpoints api");
    assert_eq!(status, 200);
    for field in [
        "\"namespace\": \"shop\"",
        "\"service\": \"web\"",
        "\"address\": \"127.0.0.3\"",
        "\"state\": \"healthy\"",
        "\"consecutive_failures\"",
        "\"consecutive_successes\"",
        "\"last_check_unix\"",
        "\"last_error\": \"status 503\"",
    ] {
        assert!(body.contains(field), "{field} missing:\n{body}");
    }
}
