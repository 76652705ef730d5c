//! The `kubernetes` plugin against an API server: the fake in `crates/fakes`,
//! which follows the documented list/watch behaviour (no real kube-apiserver
//! runs here). Issue 11: watch semantics, filters, bad objects, outages.

#![allow(dead_code, unreachable_pub)]

use crate::support::TestServer;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};
use signpost_fakes::{FakeApiServer, FaultRule, ServerOptions};
use std::time::{Duration, SystemTime};

/// A fake API server on its own runtime, for synchronous tests.
pub struct FakeCluster {
    pub server: FakeApiServer,
    runtime: tokio::runtime::Runtime,
}

impl FakeCluster {
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(FakeApiServer::start(options))
            .expect("fake API server starts");
        Self { server, runtime }
    }

    pub fn kubeconfig(&self) -> String {
        self.server.kubeconfig_path().display().to_string()
    }

    pub fn create(&self, object: Value) -> Value {
        self.server
            .create(object.clone())
            .unwrap_or_else(|e| panic!("create {object}: {e:?}"))
    }

    pub fn update(&self, object: Value) -> Value {
        self.server
            .update(object.clone())
            .unwrap_or_else(|e| panic!("update {object}: {e:?}"))
    }

    /// Updates `object` over the stored `resource` of its name, at the stored resourceVersion.
    pub fn replace(&self, resource: &str, mut object: Value) -> Value {
        let metadata = &object["metadata"];
        let name = metadata["name"].as_str().expect("a name").to_owned();
        let namespace = metadata["namespace"].as_str().map(str::to_owned);
        let stored = self
            .server
            .get(resource, namespace.as_deref(), &name)
            .unwrap_or_else(|| panic!("{resource} {name} exists"));
        object["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
        self.update(object)
    }

    pub fn delete(&self, resource: &str, namespace: &str, name: &str) {
        self.server
            .delete(resource, Some(namespace), name)
            .unwrap_or_else(|e| panic!("delete {resource} {namespace}/{name}: {e:?}"));
    }

    pub fn crash(&self) {
        self.server.crash();
    }

    pub fn restart(&self) {
        self.runtime
            .block_on(self.server.restart())
            .expect("fake restarts");
    }
}

/// A ClusterIP Service.
pub fn service(namespace: &str, name: &str, cluster_ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })
}

/// A headless Service.
pub fn headless(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })
}

/// An IPv4 EndpointSlice for `service` with ready endpoints at `addresses`.
pub fn slice(namespace: &str, name: &str, service: &str, addresses: &[&str]) -> Value {
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    })
}

pub fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// A Corefile whose `kubernetes` plugin reads `kubeconfig`, with extra options.
pub fn corefile(kubeconfig: &str, options: &str) -> String {
    format!(
        "cluster.local:{{PORT}} in-addr.arpa:{{PORT}} {{\n    bind 127.0.0.1\n    kubernetes cluster.local in-addr.arpa {{\n        kubeconfig {kubeconfig}\n{options}\n    }}\n    ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n"
    )
}

/// Sorted answer data of `name`/`qtype`, with the rcode.
pub fn answers(server: &TestServer, name: &str, qtype: RecordType) -> (ResponseCode, Vec<String>) {
    let reply = server.query(name, qtype);
    let mut data: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    data.sort();
    (reply.metadata.response_code, data)
}

/// Waits until `name`'s answer is `expected` (generous deadline); panics with the log.
pub fn await_answer(server: &TestServer, name: &str, qtype: RecordType, expected: &[&str]) {
    let deadline = SystemTime::now() + Duration::from_secs(30);
    loop {
        let (_, data) = answers(server, name, qtype);
        if data == expected {
            return;
        }
        assert!(
            SystemTime::now() < deadline,
            "{name} {qtype}: still {data:?}, expected {expected:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `name` is NXDOMAIN.
pub fn await_nxdomain(server: &TestServer, name: &str) {
    let deadline = SystemTime::now() + Duration::from_secs(30);
    loop {
        let (code, _) = answers(server, name, RecordType::A);
        if code == ResponseCode::NXDomain {
            return;
        }
        assert!(
            SystemTime::now() < deadline,
            "{name} still answers {code:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Objects that exist before signpost starts are served once the initial
/// lists complete (and `/ready` says so only then); watch events then reach
/// answers: an endpoint added, a service deleted (issue 11: watch the API
/// server; CoreDNS semantics for ClusterIP and headless names).
#[test]
fn serves_the_cluster_and_follows_watch_events() {
    let cluster = FakeCluster::start();
    cluster.create(service("default", "web", "10.96.0.10"));
    cluster.create(headless("default", "db"));
    cluster.create(slice("default", "db-1", "db", &["10.1.0.1", "10.1.0.2"]));
    let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
    assert_eq!(
        answers(&server, "web.default.svc.cluster.local", RecordType::A),
        (ResponseCode::NoError, vec!["10.96.0.10".to_owned()])
    );
    assert_eq!(
        answers(&server, "db.default.svc.cluster.local", RecordType::A).1,
        ["10.1.0.1", "10.1.0.2"]
    );
    // A watch event: one more endpoint.
    cluster.replace(
        "endpointslices",
        slice(
            "default",
            "db-1",
            "db",
            &["10.1.0.1", "10.1.0.2", "10.1.0.3"],
        ),
    );
    await_answer(
        &server,
        "db.default.svc.cluster.local",
        RecordType::A,
        &["10.1.0.1", "10.1.0.2", "10.1.0.3"],
    );
    cluster.delete("services", "default", "web");
    await_nxdomain(&server, "web.default.svc.cluster.local");
    // PTR for a cluster IP of a service that exists.
    assert_eq!(
        answers(&server, "3.0.1.10.in-addr.arpa", RecordType::PTR).1,
        ["10-1-0-3.db.default.svc.cluster.local."]
    );
}

/// The first list is a streaming list (a watch with `sendInitialEvents`)
/// where the API server serves one, and paged `list` requests where it does
/// not (the WatchList feature gate off, kube-apiserver's default in 1.27–1.31
/// and 1.33): the refusal (422) makes that watch list in pages from then on,
/// with no retry storm, no outage logged, and watch events still followed.
/// Every relist after `410 Gone` pages, in both cases.
#[test]
fn lists_by_streaming_and_falls_back_to_pages_when_refused() {
    for watch_list in [true, false] {
        let cluster = FakeCluster::start_with(ServerOptions {
            watch_list,
            // No periodic bookmark moves a watch's resourceVersion, so the
            // compaction below leaves every watch behind (410 Gone).
            bookmark_interval: Duration::from_secs(3600),
            ..ServerOptions::default()
        });
        cluster.create(service("default", "web", "10.96.5.1"));
        cluster.create(headless("default", "db"));
        cluster.create(slice("default", "db-1", "db", &["10.1.5.1"]));
        let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
        await_answer(
            &server,
            "web.default.svc.cluster.local",
            RecordType::A,
            &["10.96.5.1"],
        );
        await_answer(
            &server,
            "db.default.svc.cluster.local",
            RecordType::A,
            &["10.1.5.1"],
        );
        // A change arrives through the watch that followed the first list.
        cluster.replace(
            "endpointslices",
            slice("default", "db-1", "db", &["10.1.5.1", "10.1.5.2"]),
        );
        await_answer(
            &server,
            "db.default.svc.cluster.local",
            RecordType::A,
            &["10.1.5.1", "10.1.5.2"],
        );
        // A dropped watch resumes by a plain watch from its resourceVersion,
        // asking for no initial state; refused once, streaming is not asked again.
        let resources = ["services", "endpointslices", "namespaces"];
        let dropped_at = cluster.server.request_log().len();
        cluster.server.drop_watches();
        cluster.create(service("default", "later", "10.96.5.2"));
        await_answer(
            &server,
            "later.default.svc.cluster.local",
            RecordType::A,
            &["10.96.5.2"],
        );
        await_true(&server, "every dropped watch to resume", || {
            let log = cluster.server.request_log();
            resources.iter().all(|resource| {
                log[dropped_at..].iter().any(|r| {
                    r.resource.as_deref() == Some(resource)
                        && r.verb.as_deref() == Some("watch")
                        && r.status == 200
                        && !r.query.contains("sendInitialEvents")
                        && r.query.contains("resourceVersion=")
                })
            })
        });
        let log = cluster.server.request_log();
        for resource in resources {
            let of = |verb: &str, streaming: bool| -> Vec<u16> {
                log.iter()
                    .filter(|r| {
                        r.resource.as_deref() == Some(resource)
                            && r.verb.as_deref() == Some(verb)
                            && r.query.contains("sendInitialEvents=true") == streaming
                    })
                    .map(|r| r.status)
                    .collect()
            };
            if watch_list {
                assert_eq!(
                    of("watch", true),
                    [200],
                    "watch_list=true, {resource}: one streaming list"
                );
                assert_eq!(
                    of("list", false),
                    [] as [u16; 0],
                    "watch_list=true, {resource}: no paged list"
                );
            } else {
                assert_eq!(
                    of("watch", true),
                    [422],
                    "watch_list=false, {resource}: refused once, not retried"
                );
                assert_eq!(
                    of("list", false),
                    [200],
                    "watch_list=false, {resource}: one paged list"
                );
                assert!(
                    log.iter().any(|r| r.resource.as_deref() == Some(resource)
                        && r.query.contains("limit=500")),
                    "watch_list=false, {resource}: the list is paged"
                );
            }
            assert!(
                of("watch", false).iter().all(|s| *s == 200),
                "watch_list={watch_list}, {resource}: every plain watch served: {:?}",
                of("watch", false)
            );
        }
        // A relist after 410 Gone pages, for the most recent state, whether
        // the first list streamed or not.
        // Taken first: a watch behind the compaction gets its 410 at once.
        let compacted_at = cluster.server.request_log().len();
        cluster.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "unwatched", "namespace": "default"}}));
        cluster.server.compact();
        cluster.server.drop_watches();
        await_true(&server, "every watch to list again after 410", || {
            let log = cluster.server.request_log();
            resources.iter().all(|resource| {
                log[compacted_at..].iter().any(|r| {
                    r.resource.as_deref() == Some(resource)
                        && r.verb.as_deref() == Some("list")
                        && r.status == 200
                })
            })
        });
        let relisted = &cluster.server.request_log()[compacted_at..];
        assert!(
            !relisted
                .iter()
                .any(|r| r.query.contains("sendInitialEvents")),
            "watch_list={watch_list}: no streaming list after the first: {relisted:?}"
        );
        cluster.create(service("default", "third", "10.96.5.3"));
        await_answer(
            &server,
            "third.default.svc.cluster.local",
            RecordType::A,
            &["10.96.5.3"],
        );
        let text = server.log();
        assert_eq!(
            text.matches("does not serve streaming lists").count(),
            if watch_list { 0 } else { 3 },
            "watch_list={watch_list}: one line per watch that fell back:\n{text}"
        );
        assert!(
            !text.contains("kubernetes: watch failed"),
            "watch_list={watch_list}: no outage logged:\n{text}"
        );
    }
}

/// A streaming list the API server keeps failing (three 500s in a row, not
/// a refusal) gives way to a paged list for that watch alone; the others
/// stream.
#[test]
fn repeated_streaming_failures_fall_back_to_pages() {
    let cluster = FakeCluster::start();
    cluster.server.fail_next(FaultRule {
        verb: Some("watch".into()),
        resource: Some("services".into()),
        code: 500,
        count: 3,
        retry_after_seconds: None,
    });
    cluster.create(service("default", "web", "10.96.6.1"));
    let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
    await_answer(
        &server,
        "web.default.svc.cluster.local",
        RecordType::A,
        &["10.96.6.1"],
    );
    let log = cluster.server.request_log();
    let services: Vec<(String, u16)> = log
        .iter()
        .filter(|r| r.resource.as_deref() == Some("services"))
        .map(|r| (r.verb.clone().unwrap_or_default(), r.status))
        .collect();
    let streamed: Vec<u16> = log
        .iter()
        .filter(|r| {
            r.resource.as_deref() == Some("services") && r.query.contains("sendInitialEvents=true")
        })
        .map(|r| r.status)
        .collect();
    assert_eq!(streamed, [500, 500, 500], "services: {services:?}");
    assert!(
        services.contains(&("list".to_owned(), 200)),
        "services listed in pages: {services:?}"
    );
    for other in ["endpointslices", "namespaces"] {
        assert!(
            log.iter().any(|r| r.resource.as_deref() == Some(other)
                && r.query.contains("sendInitialEvents=true")
                && r.status == 200)
                && !log
                    .iter()
                    .any(|r| r.resource.as_deref() == Some(other)
                        && r.verb.as_deref() == Some("list")),
            "{other} streamed"
        );
    }
    let text = server.log();
    assert_eq!(
        text.matches("streaming lists keep failing").count(),
        1,
        "{text}"
    );
}

/// A streaming list whose stream ends before its closing bookmark (a proxy
/// that cuts long responses) gives way to a paged list for that watch: its
/// objects are served once, from the paged list, and nothing partial is.
#[test]
fn a_streaming_list_cut_short_falls_back_to_pages() {
    let cluster = FakeCluster::start();
    cluster.server.cut_next_streaming_list("endpointslices");
    cluster.create(headless("default", "db"));
    cluster.create(slice("default", "db-1", "db", &["10.1.7.1", "10.1.7.2"]));
    let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
    await_answer(
        &server,
        "db.default.svc.cluster.local",
        RecordType::A,
        &["10.1.7.1", "10.1.7.2"],
    );
    let log = cluster.server.request_log();
    let slices: Vec<(String, u16, bool)> = log
        .iter()
        .filter(|r| r.resource.as_deref() == Some("endpointslices"))
        .map(|r| {
            (
                r.verb.clone().unwrap_or_default(),
                r.status,
                r.query.contains("sendInitialEvents=true"),
            )
        })
        .collect();
    // The cut list, kube-rs's second streaming list (dropped unread), then pages.
    assert!(
        slices.starts_with(&[
            ("watch".to_owned(), 200, true),
            ("watch".to_owned(), 200, true),
            ("list".to_owned(), 200, false),
        ]),
        "endpointslices: {slices:?}"
    );
    assert!(
        log.iter().any(|r| r.resource.as_deref() == Some("services")
            && r.query.contains("sendInitialEvents=true")
            && r.status == 200)
            && !log
                .iter()
                .any(|r| r.resource.as_deref() == Some("services")
                    && r.verb.as_deref() == Some("list")),
        "services streamed"
    );
    let text = server.log();
    assert_eq!(
        text.matches("a streaming list ended before its last object")
            .count(),
        1,
        "{text}"
    );
    assert!(!text.contains("kubernetes: watch failed"), "{text}");
}

/// A watch event that does not decode as a whole (not one bad object: a line
/// that is no watch event) is lost to kube-rs's watcher, which reads on. The
/// source lists again, so the change that event carried still reaches
/// answers.
#[test]
fn an_undecodable_watch_event_lists_again() {
    let cluster = FakeCluster::start();
    cluster.create(headless("default", "db"));
    cluster.create(slice("default", "db-1", "db", &["10.1.8.1"]));
    let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
    await_answer(
        &server,
        "db.default.svc.cluster.local",
        RecordType::A,
        &["10.1.8.1"],
    );
    let before = cluster.server.request_log().len();
    cluster.server.garble_next_watch_event("endpointslices");
    cluster.replace(
        "endpointslices",
        slice("default", "db-1", "db", &["10.1.8.1", "10.1.8.2"]),
    );
    await_answer(
        &server,
        "db.default.svc.cluster.local",
        RecordType::A,
        &["10.1.8.1", "10.1.8.2"],
    );
    let log = cluster.server.request_log();
    assert!(
        log[before..]
            .iter()
            .any(|r| r.resource.as_deref() == Some("endpointslices")
                && r.verb.as_deref() == Some("list")
                && r.status == 200),
        "the change came by a new list"
    );
    let text = server.log();
    assert_eq!(
        text.matches("a watch event does not decode; listing again")
            .count(),
        1,
        "{text}"
    );
}

/// A paged list gets each page once: the page the client stack fetches ahead
/// (kubernetes::prefetch) is the request kube-rs's watcher makes next, so no
/// page is asked for twice.
#[test]
fn paged_lists_fetch_each_page_once() {
    let cluster = FakeCluster::start_with(ServerOptions {
        watch_list: false,
        ..ServerOptions::default()
    });
    // Three pages of 500.
    let count = 1_201;
    let address = |i: usize| format!("10.97.{}.{}", i / 250, i % 250 + 1);
    cluster
        .server
        .create_many((0..count).map(|i| service("default", &format!("svc-{i}"), &address(i))))
        .expect("services");
    let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
    for i in [0, 500, count - 1] {
        await_answer(
            &server,
            &format!("svc-{i}.default.svc.cluster.local"),
            RecordType::A,
            &[&address(i)],
        );
    }
    let lists: Vec<(String, u16)> = cluster
        .server
        .request_log()
        .iter()
        .filter(|r| r.resource.as_deref() == Some("services") && r.verb.as_deref() == Some("list"))
        .map(|r| (r.query.clone(), r.status))
        .collect();
    assert_eq!(lists.len(), 3, "one request per page: {lists:?}");
    assert!(lists.iter().all(|(_, status)| *status == 200), "{lists:?}");
    assert!(!lists[0].0.contains("continue="), "{lists:?}");
    assert!(
        lists[1..]
            .iter()
            .all(|(query, _)| query.contains("continue=") && query.contains("limit=500")),
        "{lists:?}"
    );
    assert_ne!(lists[1].0, lists[2].0);
}

/// The value of a metric series in `/metrics` (0 when absent).
pub fn metric(server: &TestServer, series: &str) -> f64 {
    let (_, body) = server.http_get("/metrics").expect("metrics answer");
    body.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Waits until `check` holds (generous deadline), else panics with the log.
pub fn await_true(server: &TestServer, what: &str, check: impl Fn() -> bool) {
    let deadline = SystemTime::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            SystemTime::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CoreDNS's filters: `namespace_labels` serves only namespaces whose labels
/// match, and follows a namespace relabelled later; `labels` serves only
/// matching Services; `namespaces` serves only those listed. A filtered name
/// is NXDOMAIN, never REFUSED.
#[test]
fn namespace_and_label_filters() {
    let cluster = FakeCluster::start();
    cluster.create(namespace("team-a", json!({"dns": "on"})));
    cluster.create(namespace("team-b", json!({})));
    cluster.create(service("team-a", "api", "10.96.1.1"));
    cluster.create(service("team-b", "api", "10.96.2.1"));
    let mut labelled = service("team-a", "labelled", "10.96.1.2");
    labelled["metadata"]["labels"] = json!({"app": "dns"});
    cluster.create(labelled);
    let server = TestServer::start_with(
        &corefile(&cluster.kubeconfig(), "        namespace_labels dns=on"),
        &[],
        true,
    );
    await_answer(
        &server,
        "api.team-a.svc.cluster.local",
        RecordType::A,
        &["10.96.1.1"],
    );
    assert_eq!(
        answers(&server, "api.team-b.svc.cluster.local", RecordType::A).0,
        ResponseCode::NXDomain
    );
    cluster.replace("namespaces", namespace("team-b", json!({"dns": "on"})));
    await_answer(
        &server,
        "api.team-b.svc.cluster.local",
        RecordType::A,
        &["10.96.2.1"],
    );
    drop(server);

    let server = TestServer::start_with(
        &corefile(
            &cluster.kubeconfig(),
            "        labels app=dns\n        namespaces team-a",
        ),
        &[],
        true,
    );
    await_answer(
        &server,
        "labelled.team-a.svc.cluster.local",
        RecordType::A,
        &["10.96.1.2"],
    );
    for hidden in [
        "api.team-a.svc.cluster.local",
        "api.team-b.svc.cluster.local",
    ] {
        assert_eq!(
            answers(&server, hidden, RecordType::A).0,
            ResponseCode::NXDomain,
            "{hidden}"
        );
    }
}

/// `pods verified` answers a dashed address only when a running pod in that
/// namespace has it (CoreDNS's `pods verified`); `pods insecure` would answer
/// any address.
#[test]
fn pods_verified_answers_only_real_pods() {
    let cluster = FakeCluster::start();
    cluster.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }));
    let mut pod = cluster
        .server
        .get("pods", Some("default"), "web-0")
        .unwrap();
    pod["status"] =
        json!({"phase": "Running", "podIP": "10.2.0.7", "podIPs": [{"ip": "10.2.0.7"}]});
    cluster.server.update_status(pod).expect("pod status set");
    let server = TestServer::start_with(
        &corefile(&cluster.kubeconfig(), "        pods verified"),
        &[],
        true,
    );
    await_answer(
        &server,
        "10-2-0-7.default.pod.cluster.local",
        RecordType::A,
        &["10.2.0.7"],
    );
    assert_eq!(
        answers(&server, "10-2-0-8.default.pod.cluster.local", RecordType::A).0,
        ResponseCode::NXDomain
    );
    cluster.delete("pods", "default", "web-0");
    await_nxdomain(&server, "10-2-0-7.default.pod.cluster.local");
}

/// Objects the API would not accept today (an EndpointSlice without the
/// service-name label or with an unknown address type, a Service with a
/// malformed clusterIP, a Service that does not decode) are left out with one
/// log line each and a metric; everything else keeps serving (issue 11, bad
/// input).
#[test]
fn bad_objects_are_skipped_not_fatal() {
    let cluster = FakeCluster::start();
    cluster.create(headless("default", "good"));
    cluster.create(slice("default", "good-1", "good", &["10.3.0.1"]));
    let mut unlabelled = slice("default", "orphan-1", "good", &["10.3.0.9"]);
    unlabelled["metadata"]["labels"] = json!({});
    let mut fqdn = slice("default", "good-2", "good", &["10.3.0.8"]);
    fqdn["addressType"] = json!("FQDN");
    fqdn["endpoints"] = json!([{"addresses": ["example.com"]}]);
    let mut bad_ip = service("default", "broken", "10.96.0.1");
    bad_ip["spec"]["clusterIP"] = json!("10.96.0.999");
    bad_ip["spec"]["clusterIPs"] = json!(["10.96.0.999"]);
    let mut undecodable = service("default", "garbled", "10.96.0.2");
    undecodable["spec"]["ports"] = json!([{"name": "http", "port": "eighty"}]);
    for object in [unlabelled, fqdn, bad_ip, undecodable] {
        cluster
            .server
            .create_unvalidated(object.clone())
            .unwrap_or_else(|e| panic!("store {object}: {e:?}"));
    }
    let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
    await_answer(
        &server,
        "good.default.svc.cluster.local",
        RecordType::A,
        &["10.3.0.1"],
    );
    for gone in [
        "broken.default.svc.cluster.local",
        "garbled.default.svc.cluster.local",
    ] {
        assert_eq!(
            answers(&server, gone, RecordType::A).0,
            ResponseCode::NXDomain,
            "{gone}"
        );
    }
    for reason in [
        "no-service-name-label",
        "address-type",
        "cluster-ip",
        "undecodable",
    ] {
        let series = format!("signpost_source_skipped_objects_total{{reason=\"{reason}\"}}");
        await_true(&server, &series, || metric(&server, &series) == 1.0);
    }
    let log = server.log();
    for object in [
        "default/orphan-1",
        "default/good-2",
        "default/broken",
        "name=garbled",
    ] {
        assert_eq!(
            log.matches(object).count(),
            1,
            "one line for {object}:\n{log}"
        );
    }
    // A later event re-delivers the state; the skipped objects are not logged again.
    cluster.create(service("default", "late", "10.96.0.3"));
    await_answer(
        &server,
        "late.default.svc.cluster.local",
        RecordType::A,
        &["10.96.0.3"],
    );
    assert_eq!(server.log().matches("default/broken").count(), 1);
}

/// When the API server goes away the last state keeps serving (each watch
/// logs once that it failed and once that it resumed, and the up gauge says
/// so); after a restart the watch resumes and new changes arrive. A dropped
/// watch with the history compacted (`410 Gone` on resume) leads to a full
/// relist swapped in at once.
#[test]
fn outage_and_410_keep_serving_then_converge() {
    // The API server keeps its objects across a restart (they live in etcd).
    let state = tempfile::tempdir().expect("tempdir");
    let cluster = FakeCluster::start_with(ServerOptions {
        state_file: Some(state.path().join("state.json")),
        ..ServerOptions::default()
    });
    cluster.create(service("default", "steady", "10.96.3.1"));
    let server = TestServer::start_with(&corefile(&cluster.kubeconfig(), ""), &[], true);
    await_answer(
        &server,
        "steady.default.svc.cluster.local",
        RecordType::A,
        &["10.96.3.1"],
    );
    let up = "signpost_kubernetes_watch_up{resource=\"services\"}";
    await_true(&server, up, || metric(&server, up) == 1.0);

    cluster.crash();
    await_true(&server, "the watch to notice the outage", || {
        metric(&server, up) == 0.0
    });
    for _ in 0..20 {
        assert_eq!(
            answers(&server, "steady.default.svc.cluster.local", RecordType::A),
            (ResponseCode::NoError, vec!["10.96.3.1".to_owned()])
        );
    }
    cluster.restart();
    await_true(&server, "the watch to resume", || {
        metric(&server, up) == 1.0
    });
    cluster.create(service("default", "after", "10.96.3.2"));
    await_answer(
        &server,
        "after.default.svc.cluster.local",
        RecordType::A,
        &["10.96.3.2"],
    );

    // Watches that resume from a compacted resourceVersion get 410 and relist.
    let relists = || -> f64 {
        ["services", "endpointslices", "namespaces"]
            .iter()
            .map(|r| {
                metric(
                    &server,
                    &format!(
                        "signpost_kubernetes_events_total{{resource=\"{r}\",type=\"relist\"}}"
                    ),
                )
            })
            .sum()
    };
    let before = relists();
    cluster.server.compact();
    cluster.server.drop_watches();
    cluster.delete("services", "default", "after");
    await_nxdomain(&server, "after.default.svc.cluster.local");
    await_true(&server, "a relist after 410", || relists() > before);
    assert!(server.log().contains("watch expired (410 Gone); relisting"));
    // Each of the three watches retries on its own backoff, so a watch
    // other than `services` may still be between its failure and its
    // resume here: wait until every failure line has its resume line (and
    // every watch is up), then check that each was logged once.
    let balanced = |log: &str| {
        log.matches("kubernetes: watch failed").count()
            == log.matches("kubernetes: watch resumed").count()
    };
    await_true(&server, "a resume line for every failure line", || {
        balanced(&server.log())
            && ["services", "endpointslices", "namespaces"]
                .iter()
                .all(|r| {
                    metric(
                        &server,
                        &format!("signpost_kubernetes_watch_up{{resource=\"{r}\"}}"),
                    ) == 1.0
                })
    });
    let log = server.log();
    let failed = log.matches("kubernetes: watch failed").count();
    // A failure line per retry would outnumber the resumes; one per outage
    // matches them (and the outage was logged at all).
    assert!(failed >= 1, "the outage was never logged:\n{log}");
    assert!(
        balanced(&log),
        "every failure logged once and matched by a resume:\n{log}"
    );
}
