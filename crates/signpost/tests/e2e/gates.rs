//! Pod readiness gates set by `signpost health` (issue 20), end to end: two
//! real controllers (one leads) against the fake API server with its small
//! EndpointSlice controller (Pod Ready ⇔ every readiness-gate condition
//! True, endpoint ready ⇔ Pod Ready; `crates/fakes/src/endpoints.rs`), and
//! three HTTP endpoints served by this test on loopback. The fixtures are the
//! health-controller test's (same configuration: 1 s interval, 3 failures,
//! 3 s removal delay, 3 s lease).

use crate::health_controller::{
    Controller, DELAY, Endpoints, INTERVAL, LEASE, LEASE_DURATION, Timeline, VERDICTS,
    controller_rules, kubeconfig_for, observe, wait,
};
use crate::kubernetes::FakeCluster;
use serde_json::{Value, json};
use signpost_fakes::{AuthConfig, RequestRecord, ServerOptions, UserConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const NAMESPACE: &str = "gates-e2e";
const GATE: &str = "dns.aikernel.io/healthy";
/// Two Pods with the gate, one without.
const PODS: [&str; 3] = ["web-gated-0", "web-gated-1", "web-plain"];

/// The gate condition's status of a Pod (`None`: absent).
fn condition(cluster: &FakeCluster, pod: &str) -> Option<String> {
    condition_object(cluster, pod).map(|c| c["status"].as_str().unwrap_or("").to_owned())
}

fn condition_object(cluster: &FakeCluster, pod: &str) -> Option<Value> {
    let object = cluster.server.get("pods", Some(NAMESPACE), pod)?;
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == GATE)
        .cloned()
}

/// `conditions.ready` of each endpoint of the Service's slice, in Pod order.
fn slice_ready(cluster: &FakeCluster) -> Vec<bool> {
    let Some(slice) =
        cluster
            .server
            .get("endpointslices.discovery.k8s.io", Some(NAMESPACE), "web-1")
    else {
        return Vec::new();
    };
    slice["endpoints"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| e["conditions"]["ready"].as_bool().unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

/// Successful patches of `pods/status` per Pod in `log`, in Pod order.
fn patches(log: &[RequestRecord]) -> Vec<usize> {
    PODS.iter()
        .map(|pod| {
            log.iter()
                .filter(|r| {
                    r.verb.as_deref() == Some("patch")
                        && r.resource.as_deref() == Some("pods/status")
                        && r.name.as_deref() == Some(*pod)
                        && r.status == 200
                })
                .count()
        })
        .collect()
}

/// Writes to Pods other than patches of `pods/status` (there must be none).
fn other_pod_writes(log: &[RequestRecord]) -> Vec<RequestRecord> {
    log.iter()
        .filter(|r| {
            r.resource.as_deref().is_some_and(|x| x.starts_with("pods"))
                && !matches!(r.verb.as_deref(), Some("get" | "list" | "watch"))
                && !(r.verb.as_deref() == Some("patch")
                    && r.resource.as_deref() == Some("pods/status"))
        })
        .cloned()
        .collect()
}

fn load(cluster: &FakeCluster, endpoints: &Endpoints) {
    cluster
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}));
    cluster.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": NAMESPACE, "annotations": {
            "dns.aikernel.io/health-check-enabled": "true",
            "dns.aikernel.io/health-check-port": endpoints.port.to_string()}},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }));
    for pod in PODS {
        let mut object = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": NAMESPACE, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}});
        if pod.contains("gated") {
            object["spec"]["readinessGates"] = json!([{"conditionType": GATE}]);
        }
        cluster.create(object);
    }
    let list: Vec<Value> = PODS
        .iter()
        .zip(&endpoints.addresses)
        .map(|(pod, address)| {
            json!({"addresses": [address.to_string()], "conditions": {"ready": true},
                   "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": pod}})
        })
        .collect();
    cluster.create(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": list,
        "ports": [{"name": "http", "port": endpoints.port, "protocol": "TCP"}]
    }));
    cluster.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": VERDICTS, "namespace": "kube-system"}}));
    cluster.create(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": "kube-system"}, "spec": {}}),
    );
}

/// Issue 20, "Done when" 1 and 2, in one run: a ClusterIP Service with two
/// gated Pods and one without the gate, two controllers.
///
/// 1. The gated Pods start not ready (no condition yet) and get True from
///    the leader; a failing gated endpoint gets False no earlier than the
///    removal delay (3 s) after it starts failing and within delay +
///    interval + 3 s, its EndpointSlice endpoint turns not ready, and both
///    return after recovery (within interval + 3 s). The Pod without the
///    gate is never patched, and nothing but `pods/status` is written.
/// 2. With one gated Pod False and one True, the leader is SIGKILLed: the
///    standby leads and keeps checking, and patches nothing while no verdict
///    changes (every patch of the run is one verdict change: exactly True,
///    False, True per gated Pod; the observed conditions never flap).
#[test]
fn readiness_gates_follow_verdicts_across_a_leader_kill() {
    let auth = AuthConfig {
        users: vec![UserConfig {
            token: "controller-token".into(),
            user: "system:serviceaccount:kube-system:dns-health-controller".into(),
            groups: Vec::new(),
            rules: controller_rules(),
        }],
    };
    let cluster = Arc::new(FakeCluster::start_with(ServerOptions {
        auth: Some(auth),
        endpoint_slice_controller: true,
        ..ServerOptions::default()
    }));
    let endpoints = Endpoints::start(PODS.len());
    load(&cluster, &endpoints);
    // The fake's kubelet: the gated Pods are not ready until their gate is True.
    assert_eq!(slice_ready(&cluster), [false, false, true]);
    let files = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kubeconfig_for(&cluster, files.path(), "controller", "controller-token");

    let args = Controller::kubernetes_args(&kubeconfig);
    let (mut a, b) = Controller::pair(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Observers of each gated Pod's condition and of the slice, every 10 ms.
    let running = Arc::new(AtomicBool::new(true));
    let mut timelines: Vec<Timeline<Option<String>>> = Vec::new();
    let mut threads = Vec::new();
    for pod in &PODS[..2] {
        let (cluster, pod) = (cluster.clone(), (*pod).to_owned());
        let (timeline, thread) = observe(&running, Duration::from_millis(10), move || {
            Some(condition(&cluster, &pod))
        });
        timelines.push(timeline);
        threads.push(thread);
    }

    // New gated Pods whose endpoints are healthy get True promptly (no check
    // needed: a new endpoint starts healthy), and their endpoints turn ready.
    wait(
        "gated Pods get True",
        Duration::from_secs(10),
        || {
            PODS[..2]
                .iter()
                .all(|p| condition(&cluster, p).as_deref() == Some("True"))
        },
        || a.log(),
    );
    wait(
        "all endpoints ready",
        Duration::from_secs(5),
        || slice_ready(&cluster) == [true, true, true],
        || format!("{:?}", slice_ready(&cluster)),
    );
    let first = condition_object(&cluster, PODS[0]).expect("condition");
    assert_eq!(first["reason"], "HealthCheckPassed", "{first}");
    assert!(first["lastTransitionTime"].is_string(), "{first}");

    // 1. Endpoint 0 fails: False after the removal delay, endpoint not ready.
    let failed_at = Instant::now();
    endpoints.set_failing(&[0], true);
    wait(
        "gated-0 False",
        DELAY + INTERVAL + Duration::from_secs(3),
        || condition(&cluster, PODS[0]).as_deref() == Some("False"),
        || a.log(),
    );
    let took = failed_at.elapsed();
    assert!(
        took >= DELAY,
        "False {took:?} after the first failure, before the removal delay {DELAY:?}"
    );
    wait(
        "endpoint 0 not ready",
        Duration::from_secs(5),
        || slice_ready(&cluster) == [false, true, true],
        || format!("{:?}", slice_ready(&cluster)),
    );
    let failed = condition_object(&cluster, PODS[0]).expect("condition");
    assert_eq!(failed["reason"], "HealthCheckFailed", "{failed}");
    let message = failed["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&endpoints.addresses[0].to_string()) && message.contains("503"),
        "the message names the endpoint and the last probe error: {failed}"
    );
    assert_eq!(condition(&cluster, PODS[1]).as_deref(), Some("True"));
    // Recovery: True again, endpoint ready again.
    let recovered_at = Instant::now();
    endpoints.set_failing(&[0], false);
    wait(
        "gated-0 True again",
        INTERVAL + Duration::from_secs(3),
        || condition(&cluster, PODS[0]).as_deref() == Some("True"),
        || a.log(),
    );
    eprintln!(
        "gates: False {took:?} after the failure started, True {:?} after recovery",
        recovered_at.elapsed()
    );
    wait(
        "endpoint 0 ready again",
        Duration::from_secs(5),
        || slice_ready(&cluster) == [true, true, true],
        || format!("{:?}", slice_ready(&cluster)),
    );

    // 2. Endpoint 1 fails and is taken out; then the leader is killed.
    endpoints.set_failing(&[1], true);
    wait(
        "gated-1 False",
        DELAY + INTERVAL + Duration::from_secs(3),
        || condition(&cluster, PODS[1]).as_deref() == Some("False"),
        || a.log(),
    );
    wait(
        "endpoint 1 not ready",
        Duration::from_secs(5),
        || slice_ready(&cluster) == [true, false, true],
        || format!("{:?}", slice_ready(&cluster)),
    );
    let before_kill = cluster.server.request_log().len();
    a.kill();
    let killed_at = Instant::now();
    wait(
        "b leads after the kill",
        LEASE_DURATION + Duration::from_secs(5),
        || b.leading() == Some(true),
        || b.log(),
    );
    eprintln!("gates: b leads {:?} after the kill", killed_at.elapsed());
    // b checks every endpoint at least twice (its own verdicts, not a copy).
    let probes = endpoints.probe_counts();
    wait(
        "b checks every endpoint twice",
        INTERVAL * 4 + Duration::from_secs(3),
        || {
            endpoints
                .probe_counts()
                .iter()
                .zip(&probes)
                .all(|(now, then)| *now >= then + 2)
        },
        || b.log(),
    );
    let after = cluster.server.request_log();
    assert_eq!(
        patches(&after[before_kill..]),
        [0, 0, 0],
        "the new leader patched a condition no verdict changed\n{}",
        b.log()
    );
    assert_eq!(condition(&cluster, PODS[0]).as_deref(), Some("True"));
    assert_eq!(condition(&cluster, PODS[1]).as_deref(), Some("False"));
    // b's recovery of endpoint 1.
    endpoints.set_failing(&[1], false);
    wait(
        "gated-1 True from the new leader",
        INTERVAL + Duration::from_secs(3),
        || condition(&cluster, PODS[1]).as_deref() == Some("True"),
        || b.log(),
    );
    wait(
        "all endpoints ready at the end",
        Duration::from_secs(5),
        || slice_ready(&cluster) == [true, true, true],
        || format!("{:?}", slice_ready(&cluster)),
    );
    running.store(false, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("observer");
    }

    let log = cluster.server.request_log();
    assert_eq!(
        patches(&log),
        [3, 3, 0],
        "one patch per verdict change (True, False, True) per gated Pod, none for the Pod without the gate"
    );
    assert!(
        other_pod_writes(&log).is_empty(),
        "{:?}",
        other_pod_writes(&log)
    );
    let expected: Vec<Option<String>> = [None, Some("True"), Some("False"), Some("True")]
        .into_iter()
        .map(|s| s.map(str::to_owned))
        .collect();
    for (pod, timeline) in PODS.iter().zip(&timelines) {
        let seen: Vec<Option<String>> = timeline
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        let seen: Vec<Option<String>> = if seen.first() == Some(&None) {
            seen
        } else {
            std::iter::once(None).chain(seen).collect()
        };
        assert_eq!(
            seen, expected,
            "{pod}: the condition over the run (no flapping)"
        );
    }
    let metrics = b.metrics();
    assert!(
        metrics.contains(
            "signpost_health_pod_gate_patches_total{result=\"written\",status=\"True\"} 1"
        ),
        "{metrics}"
    );
}
