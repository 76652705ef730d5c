//! Issue 16, point 3: every PromQL expression of the dashboard parses (promtool, each wrapped as a
//! recording rule), and every metric name the rules and the dashboard use is exported by a running
//! `signpost`: the DNS role over the reference Corefile (cluster zone, health checks, geographic
//! name, forwarder and cache, all with traffic), and the sync role over a loopback provider.

use crate::common::{read, repo, run, run_ok, shown};
use crate::etcd_server::EtcdCluster;
use crate::manifests::{sync_arguments, sync_with_loopback_provider};
use crate::reference::Reference;
use crate::support::{free_port, http_get};
use serde_json::{Value, json};
use std::collections::BTreeSet;
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

/// The metric names of the samples of an exposition.
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// Issue 16, point 3, DNS role: every name the rules and the dashboard use (other than sync's
/// `external_dns_*` and the names of [`NOT_SIGNPOST`]) is a sample on the `prometheus` address of a
/// `signpost dns` running the reference Corefile, once it has served cluster names, forwarded and
/// cached names, geographic names, and checked endpoints.
#[test]
fn the_dns_role_exports_every_name_the_rules_and_dashboard_use() {
    let server = Reference::start();
    let wanted: BTreeSet<String> = used_names()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !name.starts_with("external_dns_") && !NOT_SIGNPOST.contains(&name.as_str()))
        .collect();
    let mut missing = BTreeSet::new();
    server.wait(Duration::from_secs(60), "every name exported", || {
        server.dig(&["kubernetes.default.svc.cluster.local", "A"]);
        server.dig(&["google.com", "A"]);
        server.dig(&["nothing.google.com", "A"]);
        server.dig(&["api.aikernel.io", "A", "+subnet=10.2.0.0/24"]);
        let exported = exported(&server.metrics());
        missing = wanted.difference(&exported).cloned().collect();
        missing.is_empty()
    });
    assert!(missing.is_empty(), "not exported: {missing:?}");
}

/// Issue 16, point 3, sync role: every `external_dns_*` name the rules and the dashboard use is a
/// sample on `--metrics-address` of `signpost sync` run with the manifest's arguments, its provider
/// swapped for `coredns` over a real etcd on loopback. Another owner (`--txt-owner-id=other-cluster`)
/// first publishes the same names with other addresses, so the run also meets records it must not
/// change: the owner-mismatch gauge and the registry's records exist, as in a zone shared with others.
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
            missing = wanted.difference(&exported(&body)).cloned().collect();
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
