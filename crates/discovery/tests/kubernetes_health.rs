//! Leader election over a Lease and verdicts in a ConfigMap (issue 12),
//! against the fake API server of `crates/fakes` (the documented API
//! behaviour: resourceVersion preconditions answered 409, watches pinned by
//! `metadata.name`, ConfigMaps over 1 MiB refused with 422).

use serde_json::json;
use signpost_discovery::kubernetes::{
    ConfigMapVerdicts, LeaseElector, LeaseTimings, MAX_DATA_BYTES, PUBLISHED_BY,
};
use signpost_discovery::verdicts::{
    FollowMetrics, PublishMetrics, PublisherParts, VerdictFollower, VerdictPublisher, VerdictStore,
};
use signpost_fakes::{FakeApiServer, FaultRule, ServerOptions};
use signpost_model::{
    Elector, EndpointKey, Leadership, PublishVerdicts, SubscribeVerdicts, Verdicts,
};
use signpost_zone::KubeConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

async fn fake() -> FakeApiServer {
    FakeApiServer::start(ServerOptions::default())
        .await
        .expect("fake API server starts")
}

fn connection(server: &FakeApiServer) -> KubeConnection {
    KubeConnection::Kubeconfig {
        path: server.kubeconfig_path().to_path_buf(),
        context: None,
    }
}

fn verdicts(addresses: &[&str]) -> Arc<Verdicts> {
    Arc::new(Verdicts {
        unhealthy: addresses
            .iter()
            .map(|a| EndpointKey {
                namespace: "shop".to_owned(),
                service: "web".to_owned(),
                address: a.parse().unwrap(),
            })
            .collect(),
    })
}

/// Short timings, valid by client-go's rules (3 s > 2 s > 1.2 × 0.25 s).
const TIMINGS: LeaseTimings = LeaseTimings {
    lease_duration: Duration::from_secs(3),
    renew_deadline: Duration::from_secs(2),
    retry_period: Duration::from_millis(250),
};

struct Candidate {
    leadership: Leadership,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn candidate(server: &FakeApiServer, identity: &str) -> Candidate {
    let elector = Box::new(LeaseElector::new(
        connection(server),
        "kube-system",
        "signpost-health",
        identity,
        TIMINGS,
    ));
    let leadership = Leadership::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(elector.run(leadership.clone(), cancel.clone()));
    Candidate {
        leadership,
        cancel,
        task,
    }
}

/// Waits until `check` holds, sampling every 10 ms; panics after `within`.
async fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

fn holder(server: &FakeApiServer) -> String {
    server
        .get(
            "leases.coordination.k8s.io",
            Some("kube-system"),
            "signpost-health",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// client-go's algorithm: one candidate leads, the other waits; when the
/// leader dies without releasing, the other takes over once the lease it
/// last saw renewed expires (within the lease duration of the death, plus a
/// margin for scheduling), and never while both report leading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_within_the_lease_duration_of_a_crash() {
    let server = fake().await;
    let a = candidate(&server, "a");
    wait_until(Duration::from_secs(10), "a leads", || {
        a.leadership.is_leading()
    })
    .await;
    let b = candidate(&server, "b");
    // b sees a's renewals and stays standby for several lease durations' worth of renewals.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!b.leadership.is_leading(), "b leads while a renews");
    assert_eq!(holder(&server), "a");
    // a crashes: its task stops without releasing the lease.
    a.task.abort();
    let crashed = Instant::now();
    wait_until(Duration::from_secs(10), "b leads", || {
        b.leadership.is_leading()
    })
    .await;
    let took = crashed.elapsed();
    assert!(
        took <= TIMINGS.lease_duration + Duration::from_millis(500),
        "b took over {took:?} after the crash"
    );
    assert!(
        took >= TIMINGS.lease_duration - TIMINGS.retry_period - Duration::from_millis(100),
        "b took over {took:?} after the crash, before a's lease could expire"
    );
    let lease = server
        .get(
            "leases.coordination.k8s.io",
            Some("kube-system"),
            "signpost-health",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 3);
    b.cancel.cancel();
    b.task.await.unwrap();
}

/// A leader that is cancelled releases the lease (holder empty, as
/// client-go's ReleaseOnCancel): the standby leads at its next try, well
/// before the lease duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_leader_releases_and_the_standby_leads_at_once() {
    let server = fake().await;
    let a = candidate(&server, "a");
    wait_until(Duration::from_secs(10), "a leads", || {
        a.leadership.is_leading()
    })
    .await;
    let b = candidate(&server, "b");
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.cancel.cancel();
    a.task.await.unwrap();
    assert!(!a.leadership.is_leading());
    let took = wait_until(Duration::from_secs(10), "b leads", || {
        b.leadership.is_leading()
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "b took over {took:?} after a release"
    );
    b.cancel.cancel();
    b.task.await.unwrap();
}

/// A leader whose renewals fail stops leading within the renew deadline,
/// before its lease can expire for the others; at no sampled moment do two
/// candidates lead. The API answers every lease update 500 for a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_renewals_stop_the_leader_before_anyone_else_leads() {
    let server = fake().await;
    let a = candidate(&server, "a");
    wait_until(Duration::from_secs(10), "a leads", || {
        a.leadership.is_leading()
    })
    .await;
    let b = candidate(&server, "b");
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.fail_next(FaultRule {
        verb: Some("update".into()),
        resource: Some("leases".into()),
        code: 500,
        count: 20,
        retry_after_seconds: None,
    });
    let failing = Instant::now();
    let mut stopped = None;
    while !b.leadership.is_leading() {
        assert!(
            !(a.leadership.is_leading() && b.leadership.is_leading()),
            "two leaders"
        );
        if stopped.is_none() && !a.leadership.is_leading() {
            stopped = Some(failing.elapsed());
        }
        assert!(
            failing.elapsed() < Duration::from_secs(20),
            "nobody took over"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = stopped.expect("a stopped before b led");
    assert!(
        stopped <= TIMINGS.renew_deadline + Duration::from_millis(300),
        "a kept leading {stopped:?} without a renewal"
    );
    for candidate in [a, b] {
        candidate.cancel.cancel();
        candidate.task.await.unwrap();
    }
}

fn store(server: &FakeApiServer) -> Arc<ConfigMapVerdicts> {
    Arc::new(ConfigMapVerdicts::new(
        connection(server),
        "kube-system",
        "signpost-health-verdicts",
    ))
}

fn configmap(server: &FakeApiServer) -> Option<serde_json::Value> {
    server.get(
        "configmaps",
        Some("kube-system"),
        "signpost-health-verdicts",
    )
}

async fn wait_delivered(receiver: &std::sync::mpsc::Receiver<Arc<Verdicts>>, expected: &Verdicts) {
    let start = Instant::now();
    loop {
        if receiver.try_iter().last().is_some_and(|v| *v == *expected) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never delivered {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A leader's sets reach a follower through the ConfigMap, in the
/// documented format; a deposed publisher writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_travel_through_the_configmap() {
    let server = fake().await;
    let cancel = CancellationToken::new();
    let follower = VerdictFollower::start(
        store(&server),
        Duration::from_secs(60),
        Arc::new(FollowMetrics::default()),
        cancel.clone(),
    );
    follower.wait_synced().await;
    let received = follower.subscribe();
    let (leading_tx, leading) = tokio::sync::watch::channel(true);
    let metrics = Arc::new(PublishMetrics::default());
    let (publisher, _task) = VerdictPublisher::start(
        PublisherParts {
            store: store(&server),
            identity: "leader-1".to_owned(),
            leading,
            observed: Some(follower.observed()),
            metrics: metrics.clone(),
        },
        cancel.clone(),
    );
    let first = verdicts(&["10.0.0.2", "10.0.0.1", "fd00::1"]);
    publisher.publish(first.clone());
    wait_delivered(&received, &first).await;
    let object = configmap(&server).expect("the ConfigMap was created");
    assert_eq!(
        object["data"]["unhealthy"],
        "shop/web/10.0.0.1\nshop/web/10.0.0.2\nshop/web/fd00::1\n"
    );
    assert_eq!(object["metadata"]["annotations"][PUBLISHED_BY], "leader-1");
    assert_eq!(
        object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "signpost-health"
    );
    let second = verdicts(&["10.0.0.3"]);
    publisher.publish(second.clone());
    wait_delivered(&received, &second).await;
    // Someone edits the object behind the leader's back: it is put back.
    let mut edited = configmap(&server).unwrap();
    edited["data"]["unhealthy"] = json!("shop/web/10.9.9.9\n");
    server.update(edited).unwrap();
    let start = Instant::now();
    while configmap(&server).unwrap()["data"]["unhealthy"] != "shop/web/10.0.0.3\n" {
        assert!(start.elapsed() < Duration::from_secs(5), "the edit stayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Deposed: nothing more is written.
    leading_tx.send_replace(false);
    let written = metrics.written();
    publisher.publish(verdicts(&[]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metrics.written(), written);
    assert_eq!(
        configmap(&server).unwrap()["data"]["unhealthy"],
        "shop/web/10.0.0.3\n"
    );
    cancel.cancel();
}

/// The API server refuses a ConfigMap over 1 MiB (422, its own message);
/// the publisher refuses such a set before sending it, counts it, and the
/// previous set stays published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_sets_are_refused_and_the_previous_one_stays() {
    let server = fake().await;
    let too_big = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "kube-system"},
        "data": {"unhealthy": "x".repeat(MAX_DATA_BYTES + 1)}});
    let error = server.create(too_big).unwrap_err();
    assert_eq!(error.code, 422);
    assert!(
        error
            .message
            .ends_with("is invalid: []: Too long: may not be more than 1048576 bytes"),
        "{}",
        error.message
    );
    let cancel = CancellationToken::new();
    let (_leading_tx, leading) = tokio::sync::watch::channel(true);
    let metrics = Arc::new(PublishMetrics::default());
    let (publisher, _task) = VerdictPublisher::start(
        PublisherParts {
            store: store(&server),
            identity: "leader-1".to_owned(),
            leading,
            observed: None,
            metrics: metrics.clone(),
        },
        cancel.clone(),
    );
    publisher.publish(verdicts(&["10.0.0.1"]));
    let start = Instant::now();
    while configmap(&server).is_none() {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let huge = Arc::new(Verdicts {
        unhealthy: (0..40_000u32)
            .map(|i| EndpointKey {
                namespace: "a-long-namespace-name".to_owned(),
                service: "a-long-service-name".to_owned(),
                address: std::net::IpAddr::V4(i.into()),
            })
            .collect(),
    });
    publisher.publish(huge);
    let start = Instant::now();
    loop {
        let mut text = String::new();
        metrics.render(&mut text);
        if text.contains("signpost_health_publishes_total{result=\"too_large\"} 1") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        metrics
            .last_error()
            .unwrap()
            .contains("over the store's limit of 1048576 bytes")
    );
    assert_eq!(
        configmap(&server).unwrap()["data"]["unhealthy"],
        "shop/web/10.0.0.1\n"
    );
    cancel.cancel();
}

/// While the API server is down a follower keeps the last verdicts (the
/// readable gauge says so), fails open after the staleness bound, and
/// applies the published set again once it can read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_verdicts_are_kept_then_fail_open() {
    let server = fake().await;
    server
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "signpost-health-verdicts", "namespace": "kube-system"},
            "data": {"unhealthy": "shop/web/10.0.0.1\n"}}))
        .unwrap();
    let cancel = CancellationToken::new();
    let metrics = Arc::new(FollowMetrics::default());
    let stale_after = Duration::from_secs(2);
    let follower =
        VerdictFollower::start(store(&server), stale_after, metrics.clone(), cancel.clone());
    let received = follower.subscribe();
    let published = verdicts(&["10.0.0.1"]);
    wait_delivered(&received, &published).await;
    assert!(metrics.readable());
    server.crash();
    let down = Instant::now();
    wait_until(Duration::from_secs(10), "unreadable", || {
        !metrics.readable()
    })
    .await;
    // Kept until the bound, then every endpoint is served.
    wait_delivered(&received, &Verdicts::default()).await;
    let open = down.elapsed();
    assert!(open >= stale_after, "failed open after {open:?}");
    assert!(metrics.fail_open());
    server.restart().await.unwrap();
    wait_delivered(&received, &published).await;
    assert!(metrics.readable() && !metrics.fail_open());
    cancel.cancel();
}

/// A ConfigMap without `data.unhealthy` (created empty by a manifest) holds no verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_configmap_holds_no_verdicts() {
    let server = fake().await;
    server
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "signpost-health-verdicts", "namespace": "kube-system"}}))
        .unwrap();
    let read = store(&server).read().await.unwrap();
    assert_eq!(read.published.unwrap().verdicts, Verdicts::default());
}
