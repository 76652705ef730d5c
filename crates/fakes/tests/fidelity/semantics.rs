//! The documented API semantics, checked over HTTP against the in-process fake.
//!
//! Each test names the section of the Kubernetes API Concepts page (or the Status reference / apimachinery
//! message) it follows.

use hyper::Method;
use serde_json::{Value, json};
use signpost_fakes::{AuthConfig, FaultRule, ServerOptions};
use std::collections::{BTreeMap, BTreeSet};

use crate::support::{
    Api, DEADLINE, Next, endpoint_slice, lease, plain_server, rv_of, service, start,
};

const SERVICES: &str = "/api/v1/namespaces/default/services";

/// API Concepts, "Resource versions": one counter for every type, every write a larger value, lists carry
/// the newest resourceVersion.
#[tokio::test]
async fn resource_versions_increase_across_types() {
    let server = plain_server().await;
    let api = Api::new(&server);
    let mut seen = Vec::new();
    let created = api.post(SERVICES, service("default", "a")).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    seen.push(rv_of(&created.body));
    let leased = api
        .post(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            lease("default", "l", "x"),
        )
        .await;
    seen.push(rv_of(&leased.body));
    let patched = api
        .patch(
            &format!("{SERVICES}/a"),
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"b": "c"}}}),
        )
        .await;
    seen.push(rv_of(&patched.body));
    let deleted = api.delete(&format!("{SERVICES}/a"), None).await;
    assert_eq!(deleted.status, 200);
    seen.push(rv_of(&deleted.body));
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not increasing: {seen:?}"
    );
    let list = api.get("/api/v1/services").await;
    assert_eq!(list.body["kind"], "ServiceList");
    assert_eq!(list.body["apiVersion"], "v1");
    assert_eq!(rv_of(&list.body), *seen.last().unwrap());
    assert_eq!(server.resource_version(), *seen.last().unwrap());
}

/// API Concepts, "Efficient detection of changes": list, then watch from the list's resourceVersion,
/// sees every later change exactly once, even with writes racing the list and the watch start.
#[tokio::test]
async fn list_then_watch_misses_nothing_under_concurrent_writes() {
    let server = plain_server().await;
    let api = Api::new(&server);
    let writer_api = api.clone();
    let writer = tokio::spawn(async move {
        for i in 0..150 {
            let name = format!("s{}", i % 40);
            let reply = writer_api.post(SERVICES, service("default", &name)).await;
            if reply.status == 409 {
                let path = format!("{SERVICES}/{name}");
                let reply = if i % 3 == 0 {
                    writer_api.delete(&path, None).await
                } else {
                    writer_api
                        .patch(
                            &path,
                            "application/merge-patch+json",
                            json!({"metadata": {"labels": {"round": i.to_string()}}}),
                        )
                        .await
                };
                assert!(reply.status == 200, "{reply:?}");
            }
        }
    });
    // List while the writer runs, then watch from the list's resourceVersion.
    let list = api.get(&format!("{SERVICES}?limit=7")).await;
    let mut state: BTreeMap<String, u64> = BTreeMap::new();
    let mut page = list.body;
    let list_rv = rv_of(&page);
    loop {
        for item in page["items"].as_array().unwrap() {
            state.insert(
                item["metadata"]["name"].as_str().unwrap().to_owned(),
                rv_of(item),
            );
        }
        let Some(token) = page["metadata"]["continue"].as_str() else {
            break;
        };
        page = api
            .get(&format!("{SERVICES}?limit=7&continue={token}"))
            .await
            .body;
        assert_eq!(
            rv_of(&page),
            list_rv,
            "every page at the first page's resourceVersion"
        );
    }
    let mut watch = api
        .watch(&format!("{SERVICES}?watch=1&resourceVersion={list_rv}"))
        .await;
    assert_eq!(watch.status, 200);
    writer.await.unwrap();
    let final_rv = server.resource_version();
    let mut last = list_rv;
    while last < final_rv {
        let event = watch.next_change().await;
        let rv = rv_of(&event["object"]);
        assert!(
            rv > last,
            "events in order and after the list: {rv} after {last}"
        );
        last = rv;
        let name = event["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        match event["type"].as_str().unwrap() {
            "ADDED" => assert!(state.insert(name, rv).is_none(), "ADDED for a known object"),
            "MODIFIED" => assert!(
                state.insert(name, rv).is_some(),
                "MODIFIED for an unknown object"
            ),
            "DELETED" => assert!(
                state.remove(&name).is_some(),
                "DELETED for an unknown object"
            ),
            other => panic!("unexpected event {other}"),
        }
    }
    let truth: BTreeMap<String, u64> = server
        .list("services", Some("default"))
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().unwrap().to_owned(), rv_of(o)))
        .collect();
    assert_eq!(state, truth, "list + watch reconstructs the final state");
}

/// API Concepts, "Retrieving large results sets in chunks": all pages of a paginated list come from one
/// snapshot (the first page's resourceVersion), whatever is written meanwhile, with remainingItemCount.
#[tokio::test]
async fn pagination_is_one_consistent_snapshot() {
    let server = plain_server().await;
    let api = Api::new(&server);
    server
        .create_many((0..250).map(|i| service("default", &format!("svc-{i:03}"))))
        .unwrap();
    let snapshot = server.resource_version();
    let mut names = Vec::new();
    let mut path = format!("{SERVICES}?limit=60");
    let mut remaining = Vec::new();
    let mut page_number = 0;
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, 200);
        assert_eq!(
            rv_of(&page.body),
            snapshot,
            "page {page_number} at the snapshot"
        );
        for item in page.body["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_owned());
        }
        // Writes between pages: delete one not yet seen, create one, modify one.
        server
            .delete(
                "services",
                Some("default"),
                &format!("svc-{:03}", 249 - page_number),
            )
            .unwrap();
        server
            .create(service("default", &format!("new-{page_number}")))
            .unwrap();
        remaining.push(page.body["metadata"]["remainingItemCount"].as_u64());
        page_number += 1;
        match page.body["metadata"]["continue"].as_str() {
            Some(token) => path = format!("{SERVICES}?limit=60&continue={token}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..250).map(|i| format!("svc-{i:03}")).collect();
    assert_eq!(
        names, expected,
        "exactly the snapshot's objects, in key order"
    );
    assert_eq!(remaining, [Some(190), Some(130), Some(70), Some(10), None]);
    // The same snapshot is also served whole with resourceVersionMatch=Exact.
    let exact = api
        .get(&format!(
            "{SERVICES}?resourceVersion={snapshot}&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!(exact.body["items"].as_array().unwrap().len(), 250);
    // And a selector page may come back short but still carries a token (etcd's behaviour).
    let selected = api
        .get(&format!("{SERVICES}?limit=1000&labelSelector=app%3Dtest"))
        .await;
    assert!(
        selected.body["metadata"]
            .get("remainingItemCount")
            .is_none()
    );
}

/// API Concepts, "410 Gone responses" and the watch cache: after compaction a watch from an older
/// resourceVersion gets 200 + one ERROR event with a 410 Expired Status; an exact list is 410; an expired
/// continue token is 410 with a new token that continues at the newest state.
#[tokio::test]
async fn compaction_makes_old_resource_versions_gone() {
    let server = plain_server().await;
    let api = Api::new(&server);
    server
        .create_many((0..5).map(|i| service("default", &format!("s{i}"))))
        .unwrap();
    let old = server.resource_version();
    let first = api.get(&format!("{SERVICES}?limit=2")).await.body;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    server.create(service("default", "later")).unwrap();
    server.compact();
    let compacted = server.resource_version();

    let mut watch = api
        .watch(&format!("{SERVICES}?watch=true&resourceVersion={old}"))
        .await;
    assert_eq!(watch.status, 200, "the watch cache answers 200 then ERROR");
    let Next::Event(event) = watch.next().await else {
        panic!("expected an ERROR event");
    };
    assert_eq!(
        event,
        json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {old} ({compacted})"),
            "reason": "Expired", "code": 410}})
    );
    assert!(matches!(watch.next().await, Next::End));

    let exact = api
        .get(&format!(
            "{SERVICES}?resourceVersion={old}&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!(exact.status, 410);
    assert_eq!(exact.body["reason"], "Expired");
    assert_eq!(
        exact.body["message"],
        "The resourceVersion for the provided list is too old."
    );

    let expired = api
        .get(&format!("{SERVICES}?limit=2&continue={token}"))
        .await;
    assert_eq!(expired.status, 410);
    assert_eq!(expired.body["reason"], "Expired");
    let fresh = expired.body["metadata"]["continue"]
        .as_str()
        .expect("410 carries a new token");
    let rest = api
        .get(&format!("{SERVICES}?limit=100&continue={fresh}"))
        .await;
    let names: Vec<&str> = rest.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["s2", "s3", "s4"],
        "continues after the token's key at the newest state"
    );
    assert_eq!(rv_of(&rest.body), compacted);

    // A watch from the compaction point itself still works.
    let mut watch = api
        .watch(&format!(
            "{SERVICES}?watch=true&resourceVersion={compacted}"
        ))
        .await;
    server.create(service("default", "after")).unwrap();
    assert_eq!(
        watch.next_change().await["object"]["metadata"]["name"],
        "after"
    );
}

/// API Concepts, "Watch bookmarks" and "Streaming lists": BOOKMARK objects carry only kind, apiVersion
/// and metadata.resourceVersion; sendInitialEvents ends its ADDED events with an annotated bookmark.
#[tokio::test]
async fn bookmarks_and_streaming_lists() {
    let server = plain_server().await;
    let api = Api::new(&server);
    server.create(service("default", "one")).unwrap();
    let start = server.resource_version();
    let mut watch = api
        .watch(&format!(
            "{SERVICES}?watch=1&resourceVersion={start}&allowWatchBookmarks=true"
        ))
        .await;
    let Next::Event(bookmark) = watch.next().await else {
        panic!("expected a bookmark");
    };
    assert_eq!(
        bookmark,
        json!({"type": "BOOKMARK", "object": {"kind": "Service", "apiVersion": "v1",
               "metadata": {"resourceVersion": start.to_string()}}})
    );
    server.create(service("default", "two")).unwrap();
    assert_eq!(watch.next_change().await["type"], "ADDED");
    loop {
        let Next::Event(event) = watch.next().await else {
            panic!("stream ended");
        };
        if event["type"] == "BOOKMARK" {
            assert_eq!(
                rv_of(&event["object"]),
                server.resource_version(),
                "bookmark after the event"
            );
            break;
        }
    }

    let mut stream = api
        .watch(&format!(
            "{SERVICES}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    let mut added = BTreeSet::new();
    loop {
        let Next::Event(event) = stream.next().await else {
            panic!("stream ended");
        };
        match event["type"].as_str().unwrap() {
            "ADDED" => {
                added.insert(
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            "BOOKMARK" => {
                assert_eq!(
                    event["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true",
                    "first bookmark ends the initial events: {event}"
                );
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(added, BTreeSet::from(["one".to_owned(), "two".to_owned()]));

    // sendInitialEvents without resourceVersionMatch=NotOlderThan is invalid (validateWatchOptions).
    let invalid = api
        .get(&format!("{SERVICES}?watch=1&sendInitialEvents=true"))
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(
        invalid.body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents \
         requires setting resourceVersionMatch to NotOlderThan"
    );
}

/// With the WatchList feature gate off (kube-apiserver 1.33's default), a streaming list is refused by
/// `validateWatchOptions` with 422 Invalid naming `sendInitialEvents`; a plain list and watch still work.
#[tokio::test]
async fn streaming_lists_refused_with_the_watch_list_gate_off() {
    let server = start(ServerOptions {
        tls: false,
        watch_list: false,
        ..ServerOptions::default()
    })
    .await;
    let api = Api::new(&server);
    server.create(service("default", "one")).unwrap();
    let refused = api
        .get(&format!(
            "{SERVICES}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true"
        ))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["reason"], "Invalid");
    assert_eq!(
        refused.body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is \
         forbidden for watch unless the WatchList feature gate is enabled"
    );
    assert_eq!(
        refused.body["details"]["causes"][0]["field"],
        "sendInitialEvents"
    );
    let list = api.get(SERVICES).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
}

/// API Concepts, watch without resourceVersion ("Get State and Start at Most Recent"), timeoutSeconds,
/// and the watch cache's selector filtering (an object leaving the selection arrives as DELETED).
#[tokio::test]
async fn watch_initial_state_selectors_and_timeout() {
    let server = plain_server().await;
    let api = Api::new(&server);
    server.create(service("default", "blue")).unwrap();
    let mut watch = api
        .watch(&format!(
            "{SERVICES}?watch=1&labelSelector=app%3Dtest&timeoutSeconds=30"
        ))
        .await;
    let initial = watch.next_change().await;
    assert_eq!(
        (
            initial["type"].as_str(),
            initial["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("blue"))
    );
    let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
    api.patch(
        &format!("{SERVICES}/blue"),
        "application/merge-patch+json",
        relabel("other"),
    )
    .await;
    let left = watch.next_change().await;
    assert_eq!(left["type"], "DELETED");
    assert_eq!(
        left["object"]["metadata"]["labels"]["app"], "test",
        "previous content"
    );
    assert_eq!(
        rv_of(&left["object"]),
        server.resource_version(),
        "at the event's resourceVersion"
    );
    api.patch(
        &format!("{SERVICES}/blue"),
        "application/merge-patch+json",
        relabel("test"),
    )
    .await;
    assert_eq!(watch.next_change().await["type"], "ADDED");

    let mut short = api
        .watch(&format!("{SERVICES}?watch=1&timeoutSeconds=1"))
        .await;
    let _ = short.next_change().await; // the initial ADDED
    assert!(
        matches!(short.next().await, Next::End),
        "timeoutSeconds ends the stream cleanly"
    );
}

/// Lease-based leader election relies on optimistic concurrency: an update with a stale
/// metadata.resourceVersion is 409 Conflict with the generic registry's message (also for patches that
/// carry a resourceVersion and for delete preconditions); an update that changes nothing is not a write.
#[tokio::test]
async fn stale_writes_conflict() {
    let server = plain_server().await;
    let api = Api::new(&server);
    let path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/signpost";
    let created = api
        .post(
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
            lease("kube-system", "signpost", "a"),
        )
        .await;
    assert_eq!(created.status, 201);
    let mut mine = created.body.clone();
    mine["spec"]["holderIdentity"] = json!("a-renewed");
    let renewed = api.put(path, mine.clone()).await;
    assert_eq!(renewed.status, 200);
    assert!(rv_of(&renewed.body) > rv_of(&created.body));
    assert_eq!(
        renewed.body["metadata"]["uid"],
        created.body["metadata"]["uid"]
    );
    // A second candidate holding the first version loses.
    let mut theirs = created.body.clone();
    theirs["spec"]["holderIdentity"] = json!("b");
    let conflict = api.put(path, theirs).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Operation cannot be fulfilled on leases.coordination.k8s.io \"signpost\": the object \
                           has been modified; please apply your changes to the latest version and try again",
               "reason": "Conflict",
               "details": {"name": "signpost", "group": "coordination.k8s.io", "kind": "leases"},
               "code": 409})
    );
    let stale = created.body["metadata"]["resourceVersion"].clone();
    let patch = api
        .patch(
            path,
            "application/merge-patch+json",
            json!({"metadata": {"resourceVersion": stale}}),
        )
        .await;
    assert_eq!(patch.status, 409);
    let precondition = api
        .delete(
            path,
            Some(json!({"preconditions": {"resourceVersion": stale}})),
        )
        .await;
    assert_eq!(precondition.status, 409);
    assert!(
        precondition.body["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: ResourceVersion")
    );
    // No-op update: same resourceVersion back, no new write.
    let before = server.resource_version();
    let same = api.put(path, renewed.body.clone()).await;
    assert_eq!(same.status, 200);
    assert_eq!(rv_of(&same.body), rv_of(&renewed.body));
    assert_eq!(server.resource_version(), before);
    // Count the Lease updates the server saw.
    let updates = server
        .request_log()
        .iter()
        .filter(|r| r.verb.as_deref() == Some("update") && r.resource.as_deref() == Some("leases"))
        .count();
    assert_eq!(updates, 3);
}

/// Authenticating (bearer tokens): missing or unknown token → 401. RBAC: a request no rule allows → 403
/// with the authorizer's message; resourceNames and namespaces narrow a rule.
#[tokio::test]
async fn authentication_and_authorization() {
    let auth = AuthConfig::from_json(
        r#"{"users": [{"token": "reader", "user": "system:serviceaccount:kube-system:signpost",
             "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["services"]},
                       {"verbs": ["get", "update"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                        "resourceNames": ["signpost"], "namespaces": ["kube-system"]}]}]}"#,
    )
    .unwrap();
    let server = start(ServerOptions {
        tls: false,
        auth: Some(auth),
        ..ServerOptions::default()
    })
    .await;
    let anonymous = Api::new(&server);
    let missing = anonymous.get("/api/v1/services").await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    assert_eq!(
        anonymous
            .clone()
            .with_token("wrong")
            .get("/version")
            .await
            .status,
        401
    );
    let reader = anonymous.with_token("reader");
    assert_eq!(reader.get("/api/v1/services").await.status, 200);
    assert_eq!(
        reader.get("/version").await.status,
        200,
        "discovery open to authenticated users"
    );
    let forbidden = reader.get("/apis/discovery.k8s.io/v1/endpointslices").await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.body["message"],
        "endpointslices.discovery.k8s.io is forbidden: User \"system:serviceaccount:kube-system:signpost\" \
         cannot list resource \"endpointslices\" in API group \"discovery.k8s.io\" at the cluster scope"
    );
    assert_eq!(forbidden.body["reason"], "Forbidden");
    let create = reader.post(SERVICES, service("default", "x")).await;
    assert_eq!(create.status, 403);
    assert_eq!(
        create.body["message"],
        "services is forbidden: User \"system:serviceaccount:kube-system:signpost\" cannot create resource \
         \"services\" in API group \"\" in the namespace \"default\""
    );
    server
        .create(lease("kube-system", "signpost", "a"))
        .unwrap();
    server.create(lease("kube-system", "other", "a")).unwrap();
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    assert_eq!(reader.get(&format!("{leases}/signpost")).await.status, 200);
    let other = reader.get(&format!("{leases}/other")).await;
    assert_eq!(other.status, 403);
    assert_eq!(
        other.body["message"],
        "leases.coordination.k8s.io \"other\" is forbidden: User \"system:serviceaccount:kube-system:signpost\" \
         cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""
    );
    let log = server.request_log();
    assert_eq!(log[0].user, None, "401 requests have no user");
    assert_eq!(
        log.last().unwrap().user.as_deref(),
        Some("system:serviceaccount:kube-system:signpost")
    );
}

/// Validation as the real server reports it: 422 Invalid with one cause per field error (apimachinery
/// NewInvalid), and 404 NotFound Status for unknown resources and missing namespaces.
#[tokio::test]
async fn invalid_objects_and_unknown_resources() {
    let server = plain_server().await;
    let api = Api::new(&server);
    let slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
    let mut slice = endpoint_slice("default", "web-1", "web", &["10.0.0.1".to_owned()]);
    slice["addressType"] = json!("IPX");
    let invalid = api.post(slices, slice).await;
    assert_eq!(invalid.status, 422);
    assert_eq!(
        invalid.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "EndpointSlice.discovery.k8s.io \"web-1\" is invalid: addressType: Unsupported value: \
                           \"IPX\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
               "reason": "Invalid",
               "details": {"name": "web-1", "group": "discovery.k8s.io", "kind": "EndpointSlice",
                           "causes": [{"reason": "FieldValueNotSupported",
                                       "message": "Unsupported value: \"IPX\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
                                       "field": "addressType"}]},
               "code": 422})
    );
    let mut bad_ip = service("default", "web");
    bad_ip["spec"]["clusterIP"] = json!("not-an-ip");
    let reply = api.post(SERVICES, bad_ip).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.body["details"]["causes"][0]["field"],
        "spec.clusterIPs[0]"
    );
    let mut headless = service("default", "headless");
    headless["spec"]["clusterIP"] = json!("None");
    assert_eq!(api.post(SERVICES, headless).await.status, 201);
    let bad_name = api.post(SERVICES, service("default", "Bad_Name")).await;
    assert_eq!(bad_name.status, 422);
    assert_eq!(
        bad_name.body["details"]["causes"][0]["field"],
        "metadata.name"
    );
    let unnamed = api
        .post(
            SERVICES,
            json!({"metadata": {}, "spec": {"clusterIP": "None"}}),
        )
        .await;
    assert_eq!(unnamed.status, 422);
    assert_eq!(
        unnamed.body["message"],
        "Service \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    let generated = api
        .post(
            SERVICES,
            json!({"metadata": {"generateName": "gen-"}, "spec": {"clusterIP": "None"}}),
        )
        .await;
    assert_eq!(generated.status, 201);
    assert!(
        generated.body["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("gen-")
    );

    let unknown = api.get("/api/v1/widgets").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["reason"], "NotFound");
    assert_eq!(
        unknown.body["message"],
        "the server could not find the requested resource"
    );
    let missing = api.get(&format!("{SERVICES}/nope")).await;
    assert_eq!(missing.body["message"], "services \"nope\" not found");
    let no_namespace = api
        .post(
            "/api/v1/namespaces/nowhere/services",
            service("nowhere", "x"),
        )
        .await;
    assert_eq!(no_namespace.status, 404);
    assert_eq!(
        no_namespace.body["message"],
        "namespaces \"nowhere\" not found"
    );
    let apply = api
        .patch(
            &format!("{SERVICES}/headless"),
            "application/apply-patch+yaml",
            json!({}),
        )
        .await;
    assert_eq!(apply.status, 415);
    let duplicate = api.post(SERVICES, service("default", "headless")).await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.body["reason"], "AlreadyExists");
    assert_eq!(
        duplicate.body["message"],
        "services \"headless\" already exists"
    );
}

/// Fault injection: the next N matching requests fail with the chosen code (429 with Retry-After),
/// open watches can be dropped, and a simulated crash closes everything until restart, which keeps the
/// objects and the resourceVersion but not the history (old resourceVersions get 410, as after an API
/// server restart).
#[tokio::test]
async fn fault_injection() {
    let server = plain_server().await;
    let api = Api::new(&server);
    server.fail_next(FaultRule {
        verb: Some("list".to_owned()),
        resource: Some("services".to_owned()),
        code: 429,
        count: 2,
        retry_after_seconds: Some(3),
    });
    for _ in 0..2 {
        let throttled = api.get(SERVICES).await;
        assert_eq!(throttled.status, 429);
        assert_eq!(throttled.headers["retry-after"], "3");
        assert_eq!(throttled.body["details"]["retryAfterSeconds"], 3);
    }
    assert_eq!(
        api.get(SERVICES).await.status,
        200,
        "only the next two fail"
    );
    // Over the control endpoint too.
    let control = api
        .post(
            "/fake/fail",
            json!({"verb": "create", "resource": "services", "code": 500}),
        )
        .await;
    assert_eq!(control.status, 200);
    let failed = api.post(SERVICES, service("default", "x")).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.body["reason"], "InternalError");

    let mut watch = api.watch(&format!("{SERVICES}?watch=1")).await;
    server.drop_watches();
    assert!(
        matches!(watch.next().await, Next::Broken),
        "dropped watches break mid-stream"
    );

    server.create(service("default", "kept")).unwrap();
    let before = server.resource_version();
    server.crash();
    let refused = Api::new(&server);
    let outcome = tokio::time::timeout(DEADLINE, async {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>()
            .get(format!("{}/version", server.url()).parse().unwrap())
            .await
    })
    .await
    .unwrap();
    assert!(outcome.is_err(), "no one listens after a crash");
    server.restart().await.unwrap();
    let after = refused.get(&format!("{SERVICES}/kept")).await;
    assert_eq!(after.status, 200);
    assert_eq!(server.resource_version(), before);
    let mut old = refused
        .watch(&format!(
            "{SERVICES}?watch=1&resourceVersion={}",
            before - 1
        ))
        .await;
    let Next::Event(error) = old.next().await else {
        panic!("expected ERROR");
    };
    assert_eq!(error["object"]["code"], 410);
}

/// Discovery documents kubectl and client libraries read: /version, /api, /api/v1, /apis, group versions.
#[tokio::test]
async fn discovery_documents() {
    let server = plain_server().await;
    let api = Api::new(&server);
    let api_v1 = api.get("/api/v1").await.body;
    assert_eq!(api_v1["kind"], "APIResourceList");
    let names: Vec<&str> = api_v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for expected in [
        "services",
        "services/status",
        "namespaces",
        "pods",
        "pods/status",
        "configmaps",
        "secrets",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let groups = api.get("/apis").await.body;
    let group_names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        group_names,
        [
            "discovery.k8s.io",
            "coordination.k8s.io",
            "networking.k8s.io"
        ]
    );
    let slices = api.get("/apis/discovery.k8s.io/v1").await.body;
    assert_eq!(slices["groupVersion"], "discovery.k8s.io/v1");
    assert_eq!(api.get("/version").await.body["major"], "1");
    assert_eq!(api.get("/api").await.body["versions"], json!(["v1"]));
    let table = api.send(Method::GET, SERVICES, None).await;
    assert_eq!(table.body["kind"], "ServiceList");
}

/// Scale: 100,000 Services and 100,000 EndpointSlices of 10 endpoints (1,000,000 endpoints) load and
/// page through completely with limit/continue at one snapshot. Timing is printed, not asserted
/// (speed is for benchmarks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lists_page_through_completely() {
    let server = plain_server().await;
    let api = Api::new(&server);
    let started = tokio::time::Instant::now();
    let count = 100_000;
    server
        .create_many((0..count).map(|i| {
            let mut s = service("default", &format!("svc-{i:06}"));
            s["spec"]["clusterIP"] = json!("None");
            s
        }))
        .unwrap();
    server
        .create_many((0..count).map(|i| {
            let addresses: Vec<String> = (0..10)
                .map(|j| format!("10.{}.{}.{j}", i / 256 % 256, i % 256))
                .collect();
            endpoint_slice(
                "default",
                &format!("svc-{i:06}-abcde"),
                &format!("svc-{i:06}"),
                &addresses,
            )
        }))
        .unwrap();
    let loaded = started.elapsed();
    for (path, kind) in [
        (SERVICES.to_owned(), "services"),
        (
            "/apis/discovery.k8s.io/v1/endpointslices".to_owned(),
            "endpointslices",
        ),
    ] {
        let started = tokio::time::Instant::now();
        let mut seen = 0usize;
        let mut endpoints = 0usize;
        let mut next = format!("{path}?limit=5000");
        let mut snapshot = None;
        loop {
            let page = api.get(&next).await;
            assert_eq!(page.status, 200, "{:?}", page.body["message"]);
            let rv = rv_of(&page.body);
            assert_eq!(*snapshot.get_or_insert(rv), rv);
            for item in page.body["items"].as_array().unwrap() {
                seen += 1;
                endpoints += item["endpoints"].as_array().map_or(0, Vec::len);
            }
            match page.body["metadata"]["continue"].as_str() {
                Some(token) => next = format!("{path}?limit=5000&continue={token}"),
                None => break,
            }
        }
        assert_eq!(seen, count);
        if kind == "endpointslices" {
            assert_eq!(endpoints, count * 10);
        }
        eprintln!(
            "paged {count} {kind} in {:?} (load took {loaded:?})",
            started.elapsed()
        );
    }
    // One unpaginated list streams all of them.
    let started = tokio::time::Instant::now();
    let whole = api.get(SERVICES).await;
    assert_eq!(whole.body["items"].as_array().unwrap().len(), count);
    eprintln!(
        "one unpaginated list of {count} services in {:?}",
        started.elapsed()
    );
}

/// Status subresource (API Concepts, "Subresources"): PUT/PATCH on `pods/status` change only `status`;
/// the main resource ignores `status`; `generation` grows with spec changes only; GET on /status returns
/// the object.
#[tokio::test]
async fn pod_status_subresource() {
    let server = plain_server().await;
    let api = Api::new(&server);
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                     "status": {"phase": "Running"}});
    let created = api.post(pods, pod).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(
        created.body["status"]["phase"], "Pending",
        "the client's status is dropped on create"
    );
    assert_eq!(created.body["metadata"]["generation"], 1);
    let patched = api
        .patch(
            &format!("{pods}/p/status"),
            "application/merge-patch+json",
            json!({"status": {"phase": "Running", "podIP": "10.2.0.7"}, "spec": {"nodeName": "ignored"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["status"]["podIP"], "10.2.0.7");
    assert!(
        patched.body["spec"].get("nodeName").is_none(),
        "status writes leave spec alone"
    );
    assert_eq!(patched.body["metadata"]["generation"], 1);
    let mut whole = patched.body.clone();
    whole["status"]["phase"] = json!("Failed");
    whole["spec"]["activeDeadlineSeconds"] = json!(30);
    let updated = api.put(&format!("{pods}/p"), whole).await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(
        updated.body["status"]["phase"], "Running",
        "the main resource ignores status"
    );
    assert_eq!(
        updated.body["metadata"]["generation"], 2,
        "a spec change bumps generation"
    );
    let status = api.get(&format!("{pods}/p/status")).await;
    assert_eq!(status.body["kind"], "Pod");
    let log = server.request_log();
    assert_eq!(log[1].resource.as_deref(), Some("pods/status"));
    assert_eq!(log[1].verb.as_deref(), Some("patch"));
}

/// `/fake/crash` over HTTP: the response arrives, then every connection closes (an open watch breaks),
/// and the server comes back on the same address with its objects and resourceVersion but no history.
#[tokio::test]
async fn crash_over_the_control_endpoint() {
    let server = plain_server().await;
    let api = Api::new(&server);
    server.create(service("default", "kept")).unwrap();
    let before = server.resource_version();
    let mut watch = api
        .watch(&format!("{SERVICES}?watch=1&resourceVersion={before}"))
        .await;
    let reply = api.post("/fake/crash", json!({"downMillis": 100})).await;
    assert_eq!(reply.status, 200);
    assert!(
        matches!(watch.next().await, Next::Broken),
        "the crash breaks open connections"
    );
    // Back within the deadline: poll (each attempt is a fresh connection) until it answers.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let back = loop {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let uri = format!("{}{SERVICES}/kept", server.url()).parse().unwrap();
        match client.get(uri).await {
            Ok(response) => break response.status().as_u16(),
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "server back within the deadline"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    assert_eq!(back, 200);
    assert_eq!(server.resource_version(), before);
    let mut old = api
        .watch(&format!(
            "{SERVICES}?watch=1&resourceVersion={}",
            before - 1
        ))
        .await;
    let Next::Event(error) = old.next().await else {
        panic!("expected ERROR");
    };
    assert_eq!(error["object"]["code"], 410);
}

/// Readiness gates: a strategic merge patch of `pods/status` merges `status.conditions` by `type` (the
/// kubelet's conditions stay); a JSON merge patch replaces the list; conditions need a `type` and a
/// `status` of True, False or Unknown; a stale `resourceVersion` is 409; RBAC tells `pods/status` from
/// `pods`; with the EndpointSlice controller, Pod Ready ⇔ every gate True and endpoint ready ⇔ Pod Ready.
#[tokio::test]
async fn pod_status_conditions_and_the_endpoint_slice_controller() {
    let auth = AuthConfig::from_json(
        r#"{"users": [{"token": "admin", "user": "admin",
             "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
            {"token": "gates", "user": "system:serviceaccount:kube-system:dns-health-controller",
             "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]},
                       {"verbs": ["patch"], "apiGroups": [""], "resources": ["pods/status"]}]}]}"#,
    )
    .unwrap();
    let server = start(ServerOptions {
        tls: false,
        auth: Some(auth),
        endpoint_slice_controller: true,
        ..ServerOptions::default()
    })
    .await;
    let admin = Api::new(&server).with_token("admin");
    let gates = Api::new(&server).with_token("gates");
    let pods = "/api/v1/namespaces/default/pods";
    let gate = "dns.aikernel.io/healthy";
    for (name, gated) in [("gated", true), ("plain", false)] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if gated {
            pod["spec"]["readinessGates"] = json!([{"conditionType": gate}]);
        }
        let created = admin.post(pods, pod).await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        let ready = &created.body["status"]["conditions"][0];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], if gated { "False" } else { "True" });
    }
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 80}],
        "endpoints": [
            {"addresses": ["10.2.0.1"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "gated"}},
            {"addresses": ["10.2.0.2"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "plain"}},
            {"addresses": ["10.2.0.3"], "conditions": {"ready": false}}]});
    let created = admin
        .post(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            slice,
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let ready_of = |slice: &Value| -> Vec<Value> {
        slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["conditions"]["ready"].clone())
            .collect()
    };
    assert_eq!(
        ready_of(&created.body),
        [json!(false), json!(true), json!(false)],
        "the controller overrides what the client wrote for endpoints with a Pod"
    );

    // RBAC: `pods` does not cover `pods/status`, nor the reverse.
    let status_path = format!("{pods}/gated/status");
    let condition = |status: &str| {
        json!({"status": {"conditions": [{"type": gate, "status": status, "reason": "HealthCheckPassed",
               "lastTransitionTime": "2026-11-30T12:00:00Z"}]}})
    };
    let denied = gates
        .patch(
            &format!("{pods}/gated"),
            "application/strategic-merge-patch+json",
            condition("True"),
        )
        .await;
    assert_eq!(denied.status, 403, "{:?}", denied.body);
    assert_eq!(
        gates.put(&status_path, created.body.clone()).await.status,
        403
    );
    // Strategic merge: the gate condition joins the kubelet's Ready condition; Ready follows.
    let patched = gates
        .patch(
            &status_path,
            "application/strategic-merge-patch+json",
            condition("True"),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let conditions = patched.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(conditions.len(), 2, "{conditions:?}");
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == gate && c["status"] == "True")
    );
    let slice = admin
        .get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1")
        .await;
    assert_eq!(
        ready_of(&slice.body),
        [json!(true), json!(true), json!(false)]
    );
    // Strict validation of conditions.
    for (bad, field) in [
        (
            json!({"type": gate, "status": "Maybe"}),
            "status.conditions[1].status",
        ),
        (
            json!({"type": gate, "status": null}),
            "status.conditions[1].status",
        ),
        (
            json!({"type": "not a name", "status": "True"}),
            "status.conditions[2].Type",
        ),
        (
            json!({"type": gate, "status": "True", "lastTransitionTime": "yesterday"}),
            "status.conditions[1].lastTransitionTime",
        ),
    ] {
        let refused = gates
            .patch(
                &status_path,
                "application/strategic-merge-patch+json",
                json!({"status": {"conditions": [bad]}}),
            )
            .await;
        assert_eq!(refused.status, 422, "{:?}", refused.body);
        assert_eq!(
            refused.body["details"]["causes"][0]["field"], field,
            "{:?}",
            refused.body
        );
    }
    let keyless = gates
        .patch(
            &status_path,
            "application/strategic-merge-patch+json",
            json!({"status": {"conditions": [{"status": "True"}]}}),
        )
        .await;
    assert_eq!(keyless.status, 400, "{:?}", keyless.body);
    // A stale resourceVersion in the patch is a conflict.
    let mut stale = condition("False");
    stale["metadata"] = json!({"resourceVersion": "1"});
    let conflict = gates
        .patch(
            &status_path,
            "application/strategic-merge-patch+json",
            stale,
        )
        .await;
    assert_eq!(conflict.status, 409, "{:?}", conflict.body);
    // False: the Pod and its endpoint turn not ready (a MODIFIED slice).
    let patched = gates
        .patch(
            &status_path,
            "application/strategic-merge-patch+json",
            condition("False"),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let slice = admin
        .get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1")
        .await;
    assert_eq!(
        ready_of(&slice.body),
        [json!(false), json!(true), json!(false)]
    );
    // A JSON merge patch replaces the whole list: without the gate condition the Pod stays not ready.
    let replaced = gates
        .patch(
            &status_path,
            "application/merge-patch+json",
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}),
        )
        .await;
    assert_eq!(replaced.status, 200, "{:?}", replaced.body);
    let kinds: Vec<&str> = replaced.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(kinds, ["PodScheduled", "Ready"]);
    let log = server.request_log();
    let patches = log
        .iter()
        .filter(|r| {
            r.verb.as_deref() == Some("patch") && r.resource.as_deref() == Some("pods/status")
        })
        .count();
    assert_eq!(patches, 9);
}
