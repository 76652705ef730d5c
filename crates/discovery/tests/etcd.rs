//! The etcd source against real etcd (Debian's `etcd-server`, started here
//! on loopback): the initial read, the watch, compaction, an unreachable
//! cluster, and malformed values (issue 15).

mod support {
    pub(crate) mod etcd_server;
}

use signpost_discovery::etcd::{EtcdSource, render_metrics};
use signpost_model::{Sink, Source, Update};
use signpost_zone::skydns::{SkyHost, SkyRecord};
use signpost_zone::{EtcdSpec, Input};
use std::sync::OnceLock;
use std::time::Duration;
use support::etcd_server::EtcdCluster;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One etcd node shared by the tests of this binary; each test has its own prefix.
fn node() -> &'static EtcdCluster {
    static NODE: OnceLock<EtcdCluster> = OnceLock::new();
    NODE.get_or_init(|| EtcdCluster::start(1))
}

fn spec(cluster: &EtcdCluster, prefix: &str) -> EtcdSpec {
    EtcdSpec {
        endpoints: cluster.endpoints(),
        prefix: prefix.to_owned(),
        credentials: None,
        tls: None,
    }
}

/// Runs a source; its states arrive on the returned channel.
fn run(source: EtcdSource) -> (mpsc::UnboundedReceiver<Vec<SkyRecord>>, CancellationToken) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let sink = Sink::new(move |update| {
        if let Update::State(Input::Sky(records)) = update {
            let _ = sender.send(records.as_ref().clone());
        }
    });
    let cancel = CancellationToken::new();
    tokio::spawn(Box::new(source).run(sink, cancel.clone()));
    (receiver, cancel)
}

/// Waits (30 s at most) for a state whose record paths are exactly `paths`.
async fn wait_for(
    states: &mut mpsc::UnboundedReceiver<Vec<SkyRecord>>,
    paths: &[&str],
) -> Vec<SkyRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = Vec::new();
    loop {
        let state = tokio::time::timeout_at(deadline, states.recv())
            .await
            .unwrap_or_else(|_| panic!("no state with {paths:?}; last: {last:?}"))
            .expect("source ended");
        let got: Vec<String> = state.iter().map(|r| r.path.clone()).collect();
        if got == paths {
            return state;
        }
        last = got;
    }
}

fn metric(name: &str) -> f64 {
    let mut text = String::new();
    render_metrics(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// One range read gives the whole prefix (keys outside it ignored); the
/// watch then delivers every put and delete, each as a complete state.
#[tokio::test(flavor = "multi_thread")]
async fn reads_then_follows_the_watch() {
    let etcd = node();
    etcd.put("/follow/test/skydns/a", r#"{"host":"10.0.0.1"}"#);
    etcd.put("/follow/test/skydns/b", r#"{"host":"10.0.0.2","port":80}"#);
    etcd.put("/followers/test/x", r#"{"host":"10.9.9.9"}"#);
    let (mut states, cancel) = run(EtcdSource::new(spec(etcd, "/follow/")));
    let first = wait_for(&mut states, &["test/skydns/a", "test/skydns/b"]).await;
    assert_eq!(first[1].port, 80);
    etcd.put("/follow/test/skydns/c", r#"{"host":"db.skydns.test"}"#);
    let state = wait_for(
        &mut states,
        &["test/skydns/a", "test/skydns/b", "test/skydns/c"],
    )
    .await;
    assert_eq!(
        state[2].host,
        SkyHost::Name(signpost_proto::Name::from_ascii("db.skydns.test").unwrap())
    );
    etcd.put("/follow/test/skydns/a", r#"{"host":"10.0.0.9"}"#);
    let state = wait_for(
        &mut states,
        &["test/skydns/a", "test/skydns/b", "test/skydns/c"],
    )
    .await;
    assert_eq!(state[0].host, SkyHost::V4("10.0.0.9".parse().unwrap()));
    etcd.delete("/follow/test/skydns/b");
    wait_for(&mut states, &["test/skydns/a", "test/skydns/c"]).await;
    cancel.cancel();
}

/// A watch that starts at a compacted revision is cancelled by etcd with
/// `ErrCompacted`; the source reads the prefix again and carries on with
/// exactly the keys that exist, counting the restart.
#[tokio::test(flavor = "multi_thread")]
async fn compaction_rereads_the_prefix() {
    let etcd = node();
    etcd.put("/compact/test/a", r#"{"host":"10.0.0.1"}"#);
    let old = etcd.revision();
    etcd.put("/compact/test/b", r#"{"host":"10.0.0.2"}"#);
    etcd.delete("/compact/test/a");
    etcd.compact();
    let restarts = metric("signpost_etcd_watch_restarts_total{reason=\"compacted\"}");
    let source = EtcdSource::new(spec(etcd, "/compact/")).with_first_watch_from(old);
    let (mut states, cancel) = run(source);
    wait_for(&mut states, &["test/b"]).await;
    // The compacted watch is replaced by a read and a watch that works.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric("signpost_etcd_watch_restarts_total{reason=\"compacted\"}") < restarts + 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no compaction restart counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    etcd.put("/compact/test/c", r#"{"host":"10.0.0.3"}"#);
    wait_for(&mut states, &["test/b", "test/c"]).await;
    cancel.cancel();
}

/// Bad JSON, unknown fields and a host that is neither IP nor name are
/// skipped (one log line and a count each); the other keys still serve.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_values_are_skipped() {
    let etcd = node();
    let before = metric("signpost_etcd_invalid_values_total");
    etcd.put("/malformed/test/good", r#"{"host":"10.0.0.1"}"#);
    etcd.put("/malformed/test/json", r#"{"host":"#);
    etcd.put(
        "/malformed/test/field",
        r#"{"host":"10.0.0.2","colour":"blue"}"#,
    );
    etcd.put("/malformed/test/host", r#"{"host":"not a host!"}"#);
    let (mut states, cancel) = run(EtcdSource::new(spec(etcd, "/malformed/")));
    wait_for(&mut states, &["test/good"]).await;
    assert!(metric("signpost_etcd_invalid_values_total") >= before + 3.0);
    etcd.put("/malformed/test/later", r#"{"host":"::1"}"#);
    etcd.put("/malformed/test/worse", "[]");
    wait_for(&mut states, &["test/good", "test/later"]).await;
    // `worse` is its own watch event: it may be decoded after the state that
    // carries `later` was delivered, so wait for its count.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric("signpost_etcd_invalid_values_total") < before + 4.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the `[]` value was not counted as invalid"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
}

/// With the cluster down, the source delivers nothing (the last state keeps
/// serving) and counts itself unreachable; when it is back, the source reads
/// again and follows new writes.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_cluster_keeps_the_last_state() {
    let mut etcd = EtcdCluster::start(1);
    etcd.put("/down/test/a", r#"{"host":"10.0.0.1"}"#);
    let (mut states, cancel) = run(EtcdSource::new(spec(&etcd, "/down/")));
    wait_for(&mut states, &["test/a"]).await;
    etcd.kill(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric("signpost_etcd_sources{state=\"unreachable\"}") < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never counted unreachable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        states.try_recv().is_err(),
        "a state was delivered while etcd was down"
    );
    etcd.restart(0);
    etcd.put("/down/test/b", r#"{"host":"10.0.0.2"}"#);
    wait_for(&mut states, &["test/a", "test/b"]).await;
    cancel.cancel();
}

// === verdicts ===

use signpost_discovery::etcd::{
    EtcdElector, EtcdVerdictPublisher, EtcdVerdictSubscriber, MAX_VALUE_BYTES,
};
use signpost_model::{
    Elector, EndpointKey, Leadership, PublishVerdicts, SubscribeVerdicts, Verdicts,
};
use std::collections::HashSet;
use std::sync::Arc;

fn verdicts(entries: &[(&str, &str, &str)]) -> Arc<Verdicts> {
    Arc::new(Verdicts {
        unhealthy: entries
            .iter()
            .map(|(namespace, service, address)| EndpointKey {
                namespace: (*namespace).to_owned(),
                service: (*service).to_owned(),
                address: address.parse().unwrap(),
            })
            .collect::<HashSet<_>>(),
    })
}

/// Waits (30 s at most) until `receiver` delivers `expected`.
async fn wait_verdicts(receiver: &std::sync::mpsc::Receiver<Arc<Verdicts>>, expected: &Verdicts) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match receiver.try_recv() {
            Ok(got) if *got == *expected => return,
            Ok(_) => continue,
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "verdicts {expected:?} never delivered"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A published set reaches a subscriber (IPv4 and IPv6 endpoints); a
/// subscriber started later reads the current set at once; each change, an
/// emptied set included, is delivered.
#[tokio::test(flavor = "multi_thread")]
async fn published_verdicts_reach_subscribers() {
    let etcd = node();
    let cancel = CancellationToken::new();
    let spec = spec(etcd, "/unused/");
    let publisher = EtcdVerdictPublisher::start(spec.clone(), "/verdicts/a/", cancel.clone());
    let early = EtcdVerdictSubscriber::start(spec.clone(), "/verdicts/a/", cancel.clone());
    early.wait_synced().await;
    let from_early = early.subscribe();
    let first = verdicts(&[("default", "web", "10.0.0.1"), ("shop", "api", "fd00::1")]);
    publisher.publish(first.clone());
    wait_verdicts(&from_early, &first).await;
    let late = EtcdVerdictSubscriber::start(spec.clone(), "/verdicts/a/", cancel.clone());
    late.wait_synced().await;
    let from_late = late.subscribe();
    wait_verdicts(&from_late, &first).await;
    let second = verdicts(&[("default", "web", "10.0.0.2")]);
    publisher.publish(second.clone());
    wait_verdicts(&from_early, &second).await;
    wait_verdicts(&from_late, &second).await;
    publisher.publish(Arc::new(Verdicts::default()));
    wait_verdicts(&from_early, &Verdicts::default()).await;
    cancel.cancel();
}

/// A set too large for one etcd value is refused (counted); the previous
/// set stays published.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_verdicts_keep_the_previous_set() {
    let etcd = node();
    let cancel = CancellationToken::new();
    let spec = spec(etcd, "/unused/");
    let publisher = EtcdVerdictPublisher::start(spec.clone(), "/verdicts/big/", cancel.clone());
    let subscriber = EtcdVerdictSubscriber::start(spec.clone(), "/verdicts/big/", cancel.clone());
    subscriber.wait_synced().await;
    let receiver = subscriber.subscribe();
    let small = verdicts(&[("default", "web", "10.0.0.1")]);
    publisher.publish(small.clone());
    wait_verdicts(&receiver, &small).await;
    let failures = metric("signpost_etcd_verdict_publishes_total{result=\"failure\"}");
    let long = "s".repeat(60);
    let huge = Arc::new(Verdicts {
        unhealthy: (0..MAX_VALUE_BYTES / 60)
            .map(|i| EndpointKey {
                namespace: "default".to_owned(),
                service: long.clone(),
                address: std::net::IpAddr::V4(std::net::Ipv4Addr::from(i as u32)),
            })
            .collect(),
    });
    publisher.publish(huge);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric("signpost_etcd_verdict_publishes_total{result=\"failure\"}") < failures + 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "oversized set not refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let current = etcd.etcdctl(&["get", "--print-value-only", "/verdicts/big/unhealthy"]);
    let current: serde_json::Value = serde_json::from_str(current.trim()).unwrap();
    assert_eq!(
        current["unhealthy"],
        serde_json::json!(["default/web/10.0.0.1"])
    );
    cancel.cancel();
}

/// With etcd down the subscriber keeps the last verdicts (nothing is
/// delivered); once etcd is back a new set arrives.
#[tokio::test(flavor = "multi_thread")]
async fn subscriber_keeps_verdicts_while_etcd_is_down() {
    let mut etcd = EtcdCluster::start(1);
    let cancel = CancellationToken::new();
    let spec = spec(&etcd, "/unused/");
    let publisher = EtcdVerdictPublisher::start(spec.clone(), "/verdicts/", cancel.clone());
    let subscriber = EtcdVerdictSubscriber::start(spec.clone(), "/verdicts/", cancel.clone());
    subscriber.wait_synced().await;
    let receiver = subscriber.subscribe();
    let first = verdicts(&[("default", "web", "10.0.0.1")]);
    publisher.publish(first.clone());
    wait_verdicts(&receiver, &first).await;
    etcd.kill(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.try_recv().is_err(),
        "a set was delivered while etcd was down"
    );
    let current = Arc::new(std::sync::Mutex::new(None));
    let seen = current.clone();
    subscriber.subscribe_with(Box::new(move |v| {
        *seen.lock().unwrap() = Some(v);
        true
    }));
    assert_eq!(current.lock().unwrap().as_deref(), Some(&*first));
    etcd.restart(0);
    let second = verdicts(&[("default", "web", "10.0.0.3")]);
    publisher.publish(second.clone());
    wait_verdicts(&receiver, &second).await;
    cancel.cancel();
}

// === leader election ===

/// Waits (the given bound) until exactly the candidates in `expected` lead.
async fn wait_leading(
    leaderships: &[&Leadership],
    expected: &[bool],
    within: Duration,
) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        let now: Vec<bool> = leaderships.iter().map(|l| l.is_leading()).collect();
        if now == expected {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "leadership {now:?}, want {expected:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn candidate(
    etcd: &EtcdCluster,
    election: &str,
    identity: &str,
    ttl: Duration,
) -> (Leadership, CancellationToken, tokio::task::JoinHandle<()>) {
    let elector = Box::new(EtcdElector::new(
        spec(etcd, "/unused/"),
        election,
        identity,
        ttl,
    ));
    assert_eq!(elector.identity(), identity);
    let leadership = Leadership::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(elector.run(leadership.clone(), cancel.clone()));
    (leadership, cancel, task)
}

/// Two candidates: one leads; when it is cancelled it resigns and the other
/// leads at once; when that one is killed (its task dropped, no resign), the
/// first leads again within the lease TTL (2 s) plus etcd's 500 ms
/// expiry check and a 1 s margin. Never do both lead.
#[tokio::test(flavor = "multi_thread")]
async fn one_candidate_leads_and_the_other_takes_over() {
    let etcd = node();
    let ttl = Duration::from_secs(2);
    let (a, a_cancel, a_task) = candidate(etcd, "/election/a", "a", ttl);
    wait_leading(&[&a], &[true], Duration::from_secs(10)).await;
    let (b, _b_cancel, b_task) = candidate(etcd, "/election/a", "b", ttl);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.is_leading() && !b.is_leading());
    let mut client = signpost_discovery::etcd::connect(&spec(etcd, "/unused/"))
        .await
        .unwrap();
    let recorded = client.leader("/election/a").await.unwrap();
    let value = recorded.kv().map(|kv| kv.value().to_vec());
    assert_eq!(value.as_deref(), Some(&b"a"[..]), "etcd's leader record");
    // Cancel: resign, the other leads within a request or two.
    let cancelled = tokio::time::Instant::now();
    a_cancel.cancel();
    a_task.await.unwrap();
    wait_leading(&[&a, &b], &[false, true], Duration::from_secs(5)).await;
    let handover = cancelled.elapsed();
    // Kill: no resign; the lease must expire first.
    let (a, _a_cancel, _a_task) = candidate(etcd, "/election/a", "a", ttl);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!a.is_leading());
    b_task.abort();
    let killed = tokio::time::Instant::now();
    let _ = b_task.await;
    wait_leading(&[&a], &[true], ttl + Duration::from_millis(1500)).await;
    let takeover = killed.elapsed();
    eprintln!(
        "elector: resign hand-over {handover:?}, takeover after a killed leader {takeover:?} (lease TTL {ttl:?})"
    );
}

/// A leader cut off from etcd (the member frozen with SIGSTOP: connections
/// stay open, nothing answers) reports `false` before its lease can have
/// expired: within 2/3 of the TTL after its last acknowledged renewal.
#[tokio::test(flavor = "multi_thread")]
async fn leader_cut_off_stops_leading_before_the_lease_expires() {
    let etcd = EtcdCluster::start(1);
    let ttl = Duration::from_secs(3);
    let (a, cancel, _task) = candidate(&etcd, "/election/cut", "a", ttl);
    wait_leading(&[&a], &[true], Duration::from_secs(10)).await;
    let mut changes = a.watch();
    etcd.pause(0);
    let killed = tokio::time::Instant::now();
    tokio::time::timeout(ttl, changes.wait_for(|leading| !leading))
        .await
        .expect("still leading when the lease may have expired")
        .unwrap();
    let stopped = killed.elapsed();
    eprintln!("elector: stopped leading {stopped:?} after etcd went away (lease TTL {ttl:?})");
    assert!(
        stopped < ttl,
        "stopped leading {stopped:?} after losing etcd (TTL {ttl:?})"
    );
    cancel.cancel();
}
