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
    assert!(metric("signpost_etcd_invalid_values_total") >= before + 4.0);
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
