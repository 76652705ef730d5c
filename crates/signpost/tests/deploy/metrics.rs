//! Issue 16, point 3: every PromQL expression of the dashboard parses (promtool, each wrapped as a
//! recording rule), and every metric name the rules and the dashboard use is exported by a running
//! `signpost`: the DNS role over the reference Corefile (cluster zone, the controller's verdicts,
//! geographic name, forwarder and cache, all with traffic), the sync role over a loopback provider, and the
//! health controller over a catalog and etcd; every label an expression matches or groups by is on
//! the samples of its metrics.

use crate::common::{object, read, repo, run, run_ok, shown, signpost};
use crate::etcd_server::EtcdCluster;
use crate::manifests::{health_arguments, sync_arguments, sync_with_loopback_provider};
use crate::reference::Reference;
use crate::support::{free_port, http_get};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// Names that come from elsewhere than signpost: `up` is Prometheus's own per-target series;
/// kube-state-metrics (installed with the Prometheus Operator's usual stacks) reports pod restarts
/// and waiting reasons for CoreDNSPodCrashLooping (docs/deploy.md says so).
const NOT_SIGNPOST: [&str; 3] = [
    "up",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_waiting_reason",
];

/// Grafana's variables and what stands in for them when promtool parses an expression.
const GRAFANA_VARIABLES: [(&str, &str); 1] = [("$__rate_interval", "5m")];

/// (where, expression) of every dashboard query, Grafana variables substituted.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value =
        serde_json::from_str(&read(&repo().join("deploy/monitoring/dashboard.json")))
            .expect("json");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut expr = target["expr"].as_str().expect("expr").to_owned();
            for (variable, value) in GRAFANA_VARIABLES {
                expr = expr.replace(variable, value);
            }
            assert!(
                !expr.contains('$'),
                "a Grafana variable this test does not substitute: {expr}"
            );
            let title = panel["title"].as_str().expect("title");
            queries.push((format!("panel {title:?} {}", target["refId"]), expr));
        }
    }
    queries
}

/// (alert, expression) of every rule.
fn rule_expressions() -> Vec<(String, String)> {
    let rules: Value =
        serde_yaml_ng::from_str(&read(&repo().join("deploy/monitoring/rules.yaml"))).expect("yaml");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| {
            (
                r["alert"].as_str().expect("alert").to_owned(),
                r["expr"].as_str().expect("expr").to_owned(),
            )
        })
        .collect()
}

/// The metric names a PromQL expression selects: identifiers outside label matchers, ranges and
/// strings that are not functions, aggregations, keywords or grouping labels.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Operators, modifiers, and the aggregations (which may put `by (...)` before their parenthesis).
    const KEYWORDS: [&str; 27] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips past `close`, stepping over quoted strings.
    let skip_to = |i: &mut usize, close: char| {
        while *i < chars.len() && chars[*i] != close {
            if chars[*i] == '"' {
                *i += 1;
                while *i < chars.len() && chars[*i] != '"' {
                    *i += if chars[*i] == '\\' { 2 } else { 1 };
                }
            }
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            skip_to(&mut i, '}');
        } else if c == '[' {
            skip_to(&mut i, ']');
        } else if c == '"' {
            i += 1;
            skip_to(&mut i, '"');
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let lower = word.to_ascii_lowercase();
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&lower.as_str())
                && chars.get(next) == Some(&'(')
            {
                i = next + 1;
                skip_to(&mut i, ')');
            } else if chars.get(next) != Some(&'(') && !KEYWORDS.contains(&lower.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The extractor finds exactly the selected names.
#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{job="x",le=~"0.1|inf"}[5m])))
           / on (job) group_left (instance) b_total offset 5m > bool 0.1 and time() - c > 1e3
           or absent(up{job="y"} == 1) unless sum without (zone) (d:rate5m)"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["a_bucket", "b_total", "c", "d:rate5m", "up"]
    );
}

/// Labels Prometheus adds to every series of a target (from the ServiceMonitor and the pod), not
/// the exporter: an expression may match or group by them whatever signpost exports.
const TARGET_LABELS: [&str; 7] = [
    "job",
    "instance",
    "namespace",
    "pod",
    "service",
    "endpoint",
    "container",
];

/// The label names an expression matches on (`{name="..."}`) or groups by (`by`, `without`, `on`,
/// `ignoring`, `group_left`, `group_right`), target labels left out.
fn label_names(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    let mut rest = expr;
    // Label matchers: the identifiers before `=`, `!=`, `=~`, `!~` inside braces.
    while let Some(open) = rest.find('{') {
        let body = &rest[open + 1..];
        let close = closing(body, '}');
        for matcher in split_outside_quotes(&body[..close]) {
            let name = matcher.split(['=', '!']).next().unwrap_or_default().trim();
            if !name.is_empty() {
                labels.insert(name.to_owned());
            }
        }
        rest = &body[close..];
    }
    // Grouping clauses.
    let words: Vec<char> = expr.chars().collect();
    let text: String = words.iter().collect();
    for keyword in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut from = 0;
        while let Some(found) = text[from..].find(keyword) {
            let start = from + found;
            let end = start + keyword.len();
            from = end;
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let after = text[end..].trim_start();
            if let Some(list) = after.strip_prefix('(') {
                let close = list.find(')').unwrap_or(list.len());
                for label in list[..close].split(',') {
                    let label = label.trim();
                    if !label.is_empty() {
                        labels.insert(label.to_owned());
                    }
                }
            }
        }
    }
    labels.retain(|l| !TARGET_LABELS.contains(&l.as_str()));
    labels
}

/// The index of the `close` that ends `text`, quoted strings stepped over.
fn closing(text: &str, close: char) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == close && !quoted => return i,
            _ => {}
        }
    }
    text.len()
}

/// `a="x,y",b=~"z"` split at the commas outside quoted strings.
fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The extractor finds the matched and grouping labels, not the target labels.
#[test]
fn label_names_are_found_in_expressions() {
    let labels = label_names(
        r#"histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{job="x",rcode=~"A,B|C"}[5m])))
           / on (zone) group_left (region) b_total{to!="1.1.1.1:53", proto !~ "tcp"}
           or sum without (type)(c) unless byte_total{instance="i"} and notby (x) (d)"#,
    );
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        ["le", "proto", "rcode", "region", "to", "type", "zone"]
    );
}

/// Issue 16, point 3: every dashboard expression parses: each becomes a recording rule of a rule
/// file that `promtool check rules` must accept (and a broken expression makes it fail).
#[test]
fn every_dashboard_expression_parses() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} dashboard queries", queries.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = |queries: &[(String, String)]| {
        json!({"groups": [{"name": "dashboard", "rules": queries.iter().enumerate().map(|(i, (_, expr))| {
            json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        }).collect::<Vec<_>>()}]})
    };
    let path = dir.path().join("dashboard-rules.yaml");
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&rules(&queries)).expect("yaml"),
    )
    .expect("write");
    let output = run_ok(Command::new("promtool").args(["check", "rules"]).arg(&path));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{}",
        shown(&output)
    );

    let mut broken = queries.clone();
    broken.push(("broken".to_owned(), "sum(rate(x[5m])".to_owned()));
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&rules(&broken)).expect("yaml"),
    )
    .expect("write");
    let output = run(Command::new("promtool").args(["check", "rules"]).arg(&path));
    assert!(!output.status.success(), "{}", shown(&output));
}

/// Every name of the rules and the dashboard, with where it is used.
fn used_names() -> Vec<(String, String)> {
    let mut used = Vec::new();
    for (place, expr) in rule_expressions().into_iter().chain(dashboard_queries()) {
        for name in metric_names(&expr) {
            used.push((name, place.clone()));
        }
    }
    assert!(used.len() > 30, "{used:?}");
    used
}

/// The label names of the samples of an exposition, per metric name.
fn exported_labels(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default().to_owned();
        let names = labels.entry(name.clone()).or_default();
        if let Some(body) = line[name.len()..].strip_prefix('{') {
            for pair in split_outside_quotes(&body[..closing(body, '}')]) {
                if let Some((label, _)) = pair.split_once('=') {
                    names.insert(label.trim().to_owned());
                }
            }
        }
    }
    labels
}

/// What the expressions selected by `wanted` (the signpost names they use) need and `exposition`
/// lacks: a metric name, or a label that none of the expression's metrics carries (a `by (type)` on
/// a metric without `type` parses, and then shows one flat line).
fn missing_in(exposition: &str, wanted: impl Fn(&str) -> bool) -> BTreeSet<String> {
    let exported = exported_labels(exposition);
    let mut missing = BTreeSet::new();
    for (place, expr) in rule_expressions().into_iter().chain(dashboard_queries()) {
        let names: Vec<String> = metric_names(&expr)
            .into_iter()
            .filter(|n| wanted(n))
            .collect();
        if names.is_empty() {
            continue;
        }
        for name in &names {
            if !exported.contains_key(name) {
                missing.insert(name.clone());
            }
        }
        for label in label_names(&expr) {
            let carried = names
                .iter()
                .any(|n| exported.get(n).is_some_and(|l| l.contains(&label)));
            if !carried {
                missing.insert(format!("label {label} of {place}"));
            }
        }
    }
    missing
}

/// Issue 16, point 3, DNS role: every name the rules and the dashboard use (other than sync's
/// `external_dns_*`, the health controller's `dns_*` and the names of [`NOT_SIGNPOST`]) is a sample
/// on the `prometheus` address of a `signpost dns` running the reference Corefile, once it has served
/// cluster names, forwarded and cached names and geographic names; and every label an expression matches or
/// groups by is on a sample of one of its metrics.
#[test]
fn the_dns_role_exports_every_name_the_rules_and_dashboard_use() {
    // The health names (`dns_*` but `dns_geo_*`) are the controller's: the DNS role follows its
    // verdicts and checks nothing (the health role's test below).
    let health_name = |name: &str| name.starts_with("dns_") && !name.starts_with("dns_geo_");
    let dns_name = |name: &str| {
        !name.starts_with("external_dns_") && !health_name(name) && !NOT_SIGNPOST.contains(&name)
    };
    let wanted = used_names().into_iter().filter(|(name, _)| dns_name(name));
    assert!(wanted.count() >= 20);
    let server = Reference::start();
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let missing = loop {
        server.dig(&["kubernetes.default.svc.cluster.local", "A"]);
        server.dig(&["google.com", "A"]);
        server.dig(&["nothing.google.com", "A"]);
        server.dig(&["api.aikernel.io", "A", "+subnet=10.2.0.0/24"]);
        let missing = missing_in(&server.metrics(), dns_name);
        if missing.is_empty() || SystemTime::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}; log:\n{}",
        server.log()
    );
}

/// Issue 16, point 3, sync role: every `external_dns_*` name the rules and the dashboard use is a
/// sample on `--metrics-address` of `signpost sync` run with the manifest's arguments, its provider
/// swapped for `coredns` over a real etcd on loopback. Another owner (`--txt-owner-id=other-cluster`)
/// first publishes the same names with other addresses, so the run also meets records it must not
/// change: the owner-mismatch gauge and the registry's records exist, as in a zone shared with others.
/// Every label an expression matches or groups by is on a sample of one of its metrics.
#[test]
fn the_sync_role_exports_every_name_the_rules_and_dashboard_use() {
    let wanted: BTreeSet<String> = used_names()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("external_dns_"))
        .collect();
    assert!(wanted.len() >= 5, "{wanted:?}");
    let etcd = EtcdCluster::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let coredns = |command: &mut Command| {
        command
            .args(["--provider=coredns", "--coredns-prefix=/skydns/"])
            .env("ETCD_URLS", etcd.endpoint(0));
    };

    // Another cluster's syncer publishes the names first.
    let mut other = sync_with_loopback_provider(
        &sync_arguments(),
        dir.path(),
        &["--txt-owner-id"],
        "198.51.100",
    );
    coredns(&mut other);
    run_ok(other.args([
        "--txt-owner-id=other-cluster",
        "--metrics-address=127.0.0.1:0",
        "--once",
    ]));

    let port = free_port();
    let log = std::fs::File::create(dir.path().join("sync.log")).expect("log");
    let mut command = sync_with_loopback_provider(&sync_arguments(), dir.path(), &[], "192.0.2");
    coredns(&mut command);
    let mut child = command
        .arg(format!("--metrics-address=127.0.0.1:{port}"))
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start signpost sync");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = SystemTime::now() + Duration::from_secs(30);
    let mut missing = wanted.clone();
    while SystemTime::now() < deadline {
        if let (Some((200, _)), Some((200, body))) =
            (http_get(address, "/ready"), http_get(address, "/metrics"))
        {
            missing = missing_in(&body, |name| name.starts_with("external_dns_"));
            if missing.is_empty() {
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "signpost sync exited ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("sync.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}; log:\n{}",
        std::fs::read_to_string(dir.path().join("sync.log")).unwrap_or_default()
    );
}

/// Issue 16, point 3, health controller: every name of the controller's metrics (`dns_*` other than
/// the DNS role's `dns_geo_*`) the rules and the dashboard use is a sample on the `--listen` address
/// of `signpost health`, run with dns-health-controller.yaml's arguments and its ConfigMap's
/// configuration; only the Kubernetes API gives way to what runs on loopback: a catalog holding one
/// annotated Service, whose two endpoints refuse connections (so checks run, fail and remove them),
/// and a real etcd for the election and the verdicts. Every label an expression matches or groups by
/// is on a sample of one of its metrics. Fails until `signpost health` exists.
#[test]
fn the_health_role_exports_every_name_the_rules_and_dashboard_use() {
    let health_name = |name: &str| name.starts_with("dns_") && !name.starts_with("dns_geo_");
    let wanted = used_names()
        .into_iter()
        .filter(|(name, _)| health_name(name));
    assert!(wanted.count() >= 7);
    let etcd = EtcdCluster::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = object(
        "dns-health-controller.yaml",
        "ConfigMap",
        "dns-health-controller-config",
    );
    let config_path = dir.path().join("config.yaml");
    std::fs::write(
        &config_path,
        config["data"]["config.yaml"].as_str().expect("config.yaml"),
    )
    .expect("write config");
    // Nothing listens on this port of 127.0.0.81 and .82: every check fails.
    let closed = free_port();
    let catalog = dir.path().join("services.yaml");
    std::fs::write(
        &catalog,
        format!(
            r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations:
    dns.aikernel.io/health-check-enabled: "true"
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: {closed}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: {closed}
endpoints:
- addresses: ["127.0.0.81"]
  conditions: {{ready: true}}
- addresses: ["127.0.0.82"]
  conditions: {{ready: true}}
"#
        ),
    )
    .expect("write catalog");
    let port = free_port();
    let args: Vec<String> = health_arguments()
        .into_iter()
        .map(|arg| {
            if arg.starts_with("--config=") {
                format!("--config={}", config_path.display())
            } else if arg.starts_with("--listen=") {
                format!("--listen=127.0.0.1:{port}")
            } else {
                arg
            }
        })
        .collect();
    let log_path = dir.path().join("health.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = signpost()
        .arg("health")
        .args(&args)
        .arg(format!("--catalog={}", catalog.display()))
        .arg(format!("--etcd-endpoints={}", etcd.endpoint(0)))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start signpost health");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    // The configured interval is 10 s: the first checks come within it.
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let mut missing = BTreeSet::from(["(no scrape)".to_owned()]);
    while SystemTime::now() < deadline {
        if let (Some((200, _)), Some((200, body))) =
            (http_get(address, "/ready"), http_get(address, "/metrics"))
        {
            missing = missing_in(&body, health_name);
            if missing.is_empty() {
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "signpost health exited ({status}):\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}; log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}
