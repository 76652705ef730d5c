//! `signpost sync` reading objects from an API server (the fake in
//! `crates/fakes`, which follows the documented list/watch behaviour; no
//! real kube-apiserver runs here) and publishing to a real etcd: a
//! LoadBalancer Service annotated, its address assigned, changed and the
//! Service deleted; a headless Service's ready pods; an Ingress.

use super::etcd::{Etcd, EtcdZone};
use super::{
    INTERVAL, MARGIN, SyncProcess, ZoneUnderTest as _, has, ownership, rows_at, sync_args,
    wait_until,
};
use crate::kubernetes::{FakeCluster, slice};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

fn load_balancer(name: &str, hostname: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {"external-dns.alpha.kubernetes.io/hostname": hostname,
                                     "external-dns.alpha.kubernetes.io/ttl": "60"}},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.40", "clusterIPs": ["10.96.0.40"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })
}

/// Sets an object's status as its controller does: a PUT on the `status`
/// subresource (a create drops the status the client sends).
fn set_status(cluster: &FakeCluster, resource: &str, name: &str, status: Value) {
    let mut current = cluster
        .server
        .get(resource, Some("default"), name)
        .unwrap_or_else(|| panic!("{resource} {name} exists"));
    current["status"] = status;
    cluster
        .server
        .update_status(current)
        .unwrap_or_else(|e| panic!("status of {resource} {name}: {e:?}"));
}

/// The load balancer's address, as the cloud controller writes it.
fn assign(cluster: &FakeCluster, name: &str, ip: &str) {
    set_status(
        cluster,
        "services",
        name,
        json!({"loadBalancer": {"ingress": [{"ip": ip}]}}),
    );
}

/// Issue 13 "Done when" 3 with objects from the API server: annotate ⇒
/// records within one interval once the address is assigned; change ⇒
/// updated; delete ⇒ removed (`--policy=sync`).
#[test]
fn services_from_the_api_server_reach_etcd() {
    let cluster = FakeCluster::start();
    let zone = EtcdZone {
        etcd: Etcd::shared(),
        zone: "kube-sync.test",
        prefix: "/skydns-kube/",
    };
    let mut args = vec![format!("--kubeconfig={}", cluster.kubeconfig())];
    args.extend(sync_args(&zone, "sync"));
    args.push("--source=ingress".to_owned());
    args.push("--annotation-prefix=external-dns.alpha.kubernetes.io/".to_owned());
    let sync = SyncProcess::spawn(&args, &zone.env());
    sync.wait_first_sync();
    for resource in ["services", "endpointslices", "pods", "nodes", "ingresses"] {
        let series = format!("signpost_kubernetes_watch_up{{resource=\"{resource}\"}}");
        assert_eq!(
            sync.metric(&series),
            Some(1.0),
            "{series}\n{}",
            sync.scrape()
        );
    }

    // Annotated, no address yet: nothing to publish.
    let web = "web.kube-sync.test";
    cluster.create(load_balancer("web", web));
    sync.wait_next_sync();
    assert!(
        rows_at(&zone.records(), web).is_empty(),
        "{:?}",
        zone.records()
    );

    // The address is assigned: A record and its ownership TXT.
    assign(&cluster, "web", "192.0.2.70");
    let txt = ownership("default", "service/default/web");
    let created = wait_until(INTERVAL + MARGIN, || {
        let records = zone.records();
        has(&records, web, "A", "192.0.2.70") && has(&records, &format!("a-{web}"), "TXT", &txt)
    });
    assert!(
        created,
        "web not created: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );

    // The address changes: updated.
    assign(&cluster, "web", "192.0.2.71");
    let updated = wait_until(INTERVAL + MARGIN, || {
        let records = zone.records();
        has(&records, web, "A", "192.0.2.71") && !has(&records, web, "A", "192.0.2.70")
    });
    assert!(
        updated,
        "web not updated: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );

    // A headless Service publishes its ready pods' addresses.
    let db = "db.kube-sync.test";
    cluster.create(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}
    }));
    for (name, ip) in [("db-0", "10.244.0.10"), ("db-1", "10.244.0.11")] {
        cluster.create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "db:1"}], "nodeName": "node-a"}
        }));
        set_status(
            &cluster,
            "pods",
            name,
            json!({"phase": "Running", "podIP": ip}),
        );
    }
    cluster.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": "default",
                     "annotations": {"external-dns.alpha.kubernetes.io/hostname": db}},
        "spec": {"clusterIP": "None", "selector": {"app": "db"},
                 "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}
    }));
    let mut endpoints = slice("default", "db-abcde", "db", &["10.244.0.10", "10.244.0.11"]);
    for (endpoint, name) in endpoints["endpoints"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(["db-0", "db-1"])
    {
        endpoint["targetRef"] = json!({"kind": "Pod", "namespace": "default", "name": name});
    }
    cluster.create(endpoints);
    let headless = wait_until(INTERVAL + MARGIN, || {
        let records = zone.records();
        has(&records, db, "A", "10.244.0.10") && has(&records, db, "A", "10.244.0.11")
    });
    assert!(
        headless,
        "db not published: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );

    // An Ingress with a load balancer address publishes its rule's host.
    let shop = "shop.kube-sync.test";
    cluster.create(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"rules": [{"host": shop, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }));
    set_status(
        &cluster,
        "ingresses",
        "shop",
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.80"}]}}),
    );
    let published = wait_until(INTERVAL + MARGIN, || {
        has(&zone.records(), shop, "A", "192.0.2.80")
    });
    assert!(
        published,
        "shop not published: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );

    // The Service is deleted: its records go, the others stay.
    cluster.delete("services", "default", "web");
    let removed = wait_until(INTERVAL + MARGIN, || {
        let records = zone.records();
        rows_at(&records, web).is_empty() && rows_at(&records, &format!("a-{web}")).is_empty()
    });
    assert!(
        removed,
        "web not removed: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );
    let records = zone.records();
    assert!(
        has(&records, db, "A", "10.244.0.10") && has(&records, shop, "A", "192.0.2.80"),
        "{records:?}"
    );
    assert_eq!(
        sync.metric("external_dns_registry_errors_total"),
        Some(0.0),
        "{}",
        sync.log()
    );
}

/// `signpost sync --leader-elect` against the fake API server, with the
/// Lease timings shortened (3 s / 2 s / 0.5 s).
fn replica(cluster: &FakeCluster, zone: &EtcdZone<'_>) -> SyncProcess {
    let mut args = vec![
        format!("--kubeconfig={}", cluster.kubeconfig()),
        "--leader-elect".to_owned(),
        "--leader-elect-resource-namespace=default".to_owned(),
        "--leader-elect-lease-duration=3s".to_owned(),
        "--leader-elect-renew-deadline=2s".to_owned(),
        "--leader-elect-retry-period=500ms".to_owned(),
        "--annotation-prefix=external-dns.alpha.kubernetes.io/".to_owned(),
    ];
    args.extend(sync_args(zone, "sync"));
    SyncProcess::spawn(&args, &zone.env())
}

fn leading(sync: &SyncProcess) -> bool {
    sync.metric("signpost_sync_leader") == Some(1.0)
}

fn written(sync: &SyncProcess) -> f64 {
    ["create", "update", "delete"]
        .iter()
        .filter_map(|action| {
            sync.metric(&format!(
                "signpost_sync_changes_total{{action=\"{action}\"}}"
            ))
        })
        .sum()
}

/// Record-sync issue, "Done when" 6: two replicas, one writer at a time;
/// the leader killed, the other takes over within the lease duration (plus
/// one retry period and a scheduling margin) and the handover leaves the
/// zone as it was; the new leader then writes the next change.
#[test]
fn two_replicas_one_writer_and_a_clean_handover() {
    let cluster = FakeCluster::start();
    let zone = EtcdZone {
        etcd: Etcd::shared(),
        zone: "lease-sync.test",
        prefix: "/skydns-lease/",
    };
    let web = "web.lease-sync.test";
    cluster.create(load_balancer("web", web));
    assign(&cluster, "web", "192.0.2.100");

    let first = replica(&cluster, &zone);
    let second = replica(&cluster, &zone);
    let created = wait_until(Duration::from_secs(30), || {
        has(&zone.records(), web, "A", "192.0.2.100")
    });
    assert!(
        created,
        "not created: {:?}\n{}\n{}",
        zone.records(),
        first.log(),
        second.log()
    );

    // One writer: sampled for a few intervals, never both leading, and the
    // standby never writes.
    let deadline = Instant::now() + INTERVAL * 3;
    let mut seen_leader = false;
    while Instant::now() < deadline {
        let (a, b) = (leading(&first), leading(&second));
        assert!(!(a && b), "both replicas lead");
        seen_leader |= a || b;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen_leader, "no replica leads:\n{}", first.scrape());
    let (leader, standby) = if leading(&first) {
        (first, second)
    } else {
        (second, first)
    };
    assert!(written(&leader) >= 1.0, "{}", leader.scrape());
    assert_eq!(
        written(&standby),
        0.0,
        "the standby wrote:\n{}",
        standby.scrape()
    );

    // Kill the leader (SIGKILL: no release); the standby takes over within
    // the lease duration, plus a retry period and a margin.
    let before = zone.records();
    let killed = Instant::now();
    drop(leader);
    let took_over = wait_until(Duration::from_secs(10), || leading(&standby));
    let takeover = killed.elapsed();
    assert!(took_over, "no takeover:\n{}", standby.log());
    assert!(
        takeover <= Duration::from_millis(3_000 + 500 + 1_500),
        "takeover took {takeover:?}"
    );
    standby.wait_next_sync();
    assert_eq!(zone.records(), before, "the handover changed the zone");
    assert_eq!(
        written(&standby),
        0.0,
        "the handover wrote:\n{}",
        standby.scrape()
    );

    // The new leader writes the next change.
    assign(&cluster, "web", "192.0.2.101");
    let updated = wait_until(INTERVAL + MARGIN, || {
        has(&zone.records(), web, "A", "192.0.2.101")
    });
    assert!(
        updated,
        "not updated by the new leader: {:?}\n{}",
        zone.records(),
        standby.log()
    );
    eprintln!("takeover after SIGKILL of the leader: {takeover:?}");
}

/// Issue 14 "Done when" 3 with everything from the API server: regional
/// Services and their EndpointSlices watched, and the health controller's
/// verdicts in its ConfigMap (`--health-verdicts=kubernetes:NS/NAME`, the
/// object `signpost health` writes, `data.unhealthy` one entry a line). A
/// region whose endpoints all fail leaves the name within the debounce plus
/// the margin (the sync interval is 60 s); it is back when the ConfigMap
/// clears.
#[test]
fn geo_regions_follow_the_verdict_configmap() {
    use super::{GEO_DEBOUNCE, GEO_INTERVAL, GEO_REGIONS, failing, plain_records_of};
    let cluster = FakeCluster::start();
    let zone = EtcdZone {
        etcd: Etcd::shared(),
        zone: "kube-geo.test",
        prefix: "/skydns-kube-geo/",
    };
    let name = "app.kube-geo.test";
    for (region, ip, endpoints) in GEO_REGIONS {
        let service = format!("app-{region}");
        let mut object = load_balancer(&service, name);
        object["metadata"]["annotations"]["dns.aikernel.io/geo-region"] = json!(region);
        cluster.create(object);
        assign(&cluster, &service, ip);
        cluster.create(slice(
            "default",
            &format!("{service}-abcde"),
            &service,
            &endpoints,
        ));
    }
    let verdicts = |entries: &[String]| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "signpost-health-verdicts", "namespace": "kube-system"},
            "data": {"unhealthy": entries.iter().map(|e| format!("{e}\n")).collect::<String>()}
        })
    };
    cluster.create(verdicts(&[]));
    let mut args = vec![format!("--kubeconfig={}", cluster.kubeconfig())];
    args.extend(sync_args(&zone, "sync"));
    args.retain(|a| !a.starts_with("--interval="));
    args.extend([
        format!("--interval={}s", GEO_INTERVAL.as_secs()),
        "--annotation-prefix=external-dns.alpha.kubernetes.io/".to_owned(),
        "--health-verdicts=kubernetes:kube-system/signpost-health-verdicts".to_owned(),
        format!("--health-verdicts-debounce={}s", GEO_DEBOUNCE.as_secs()),
    ]);
    let sync = SyncProcess::spawn(&args, &zone.env());
    let all = ["us-east-1", "eu-west-1", "ap-southeast-1"];
    let first = wait_until(Duration::from_secs(30), || plain_records_of(&zone, &all));
    assert!(first, "{:?}\n{}", zone.records(), sync.log());

    let bound = GEO_DEBOUNCE + MARGIN;
    let started = Instant::now();
    cluster.update(verdicts(&failing(&["eu-west-1"], &[])));
    let gone = wait_until(bound, || {
        plain_records_of(&zone, &["us-east-1", "ap-southeast-1"])
    });
    assert!(gone, "{:?}\n{}", zone.records(), sync.log());
    assert!(started.elapsed() < GEO_INTERVAL);

    cluster.update(verdicts(&[]));
    let back = wait_until(bound, || plain_records_of(&zone, &all));
    assert!(back, "{:?}\n{}", zone.records(), sync.log());
    assert_eq!(
        sync.metric("signpost_health_verdicts_readable"),
        Some(1.0),
        "{}",
        sync.scrape()
    );
}
