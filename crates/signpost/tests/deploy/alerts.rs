//! Issue 16, point 2: the eight alerts pass `promtool check rules`, and `promtool test rules` runs a
//! unit test per alert that fires on series that should fire it and stays silent on series that
//! should not. Also: the PrometheusRule and the dashboard ConfigMap of dns-monitoring.yaml are the
//! sources, regenerated.

use crate::common::{documents, manifest_path, read, repo, run, run_ok, shown};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

/// The reference deployment's eight alerts.
const ALERTS: [&str; 8] = [
    "CoreDNSDown",
    "HighDNSErrorRate",
    "HighDNSLatency",
    "LowCacheHitRate",
    "HighUnhealthyEndpoints",
    "DNSHealthControllerDown",
    "ExternalDNSSyncFailure",
    "CoreDNSPodCrashLooping",
];

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(&repo().join(path))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The alert names of `deploy/monitoring/rules.yaml`, in order.
pub(crate) fn alert_names() -> Vec<String> {
    yaml("deploy/monitoring/rules.yaml")["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

/// `promtool check rules` accepts the rule file (syntax, PromQL, templates) and finds the eight alerts.
#[test]
fn promtool_checks_the_rules() {
    let output = run_ok(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(repo().join("deploy/monitoring/rules.yaml")),
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("SUCCESS: 8 rules found"),
        "{}",
        shown(&output)
    );
    assert_eq!(alert_names(), ALERTS);
}

/// `promtool test rules` passes every unit test of rules_test.yaml.
#[test]
fn promtool_unit_tests_of_the_alerts_pass() {
    let output = run_ok(
        Command::new("promtool")
            .args(["test", "rules", "rules_test.yaml"])
            .current_dir(repo().join("deploy/monitoring")),
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("SUCCESS"),
        "{}",
        shown(&output)
    );
}

/// Every alert has a unit test where it fires and one where it stays silent.
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let tests = yaml("deploy/monitoring/rules_test.yaml");
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let entry = seen.entry(name).or_default();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    for alert in ALERTS {
        let (firing, silent) = seen.get(alert).copied().unwrap_or_default();
        assert!(
            firing >= 1 && silent >= 1,
            "{alert}: {firing} firing and {silent} silent unit tests"
        );
    }
}

/// A changed threshold makes a unit test fail: the tests pin the alerts' behaviour.
#[test]
fn the_unit_tests_catch_a_changed_threshold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = read(&repo().join("deploy/monitoring/rules.yaml"));
    let loosened = rules.replace("        > 0.05\n", "        > 0.01\n");
    assert_ne!(loosened, rules, "the HighDNSErrorRate threshold moved");
    std::fs::write(dir.path().join("rules.yaml"), loosened).expect("write");
    std::fs::copy(
        repo().join("deploy/monitoring/rules_test.yaml"),
        dir.path().join("rules_test.yaml"),
    )
    .expect("copy");
    let output = run(Command::new("promtool")
        .args(["test", "rules", "rules_test.yaml"])
        .current_dir(dir.path()));
    assert!(!output.status.success(), "{}", shown(&output));
    assert!(
        shown(&output).contains("HighDNSErrorRate stays silent"),
        "{}",
        shown(&output)
    );
}

/// dns-monitoring.yaml is what `deploy/monitoring/generate.py` builds from the sources, and its
/// PrometheusRule and dashboard are those sources, unchanged.
#[test]
fn dns_monitoring_yaml_is_generated_from_the_sources() {
    run_ok(
        Command::new("python3")
            .arg(repo().join("deploy/monitoring/generate.py"))
            .arg("--check"),
    );
    let documents = documents(&manifest_path("dns-monitoring.yaml"));
    let rule = documents
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("PrometheusRule");
    assert_eq!(rule["spec"], yaml("deploy/monitoring/rules.yaml"));
    let dashboard = documents
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("dashboard ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let embedded: Value = serde_json::from_str(
        dashboard["data"]["dns-service-discovery.json"]
            .as_str()
            .expect("dashboard JSON"),
    )
    .expect("dashboard parses");
    let source: Value =
        serde_json::from_str(&read(&repo().join("deploy/monitoring/dashboard.json")))
            .expect("json");
    assert_eq!(embedded, source);
    assert_eq!(source["title"], "DNS Service Discovery");
    let monitors: Vec<&str> = documents
        .iter()
        .filter(|d| d["kind"] == "ServiceMonitor")
        .map(|d| d["metadata"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        monitors,
        ["coredns-custom", "external-dns", "dns-health-controller"]
    );
}
