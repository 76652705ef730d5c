//! The service and ingress sources against external-dns v0.22's rules
//! (notes §3, suggested conformance test 6).

use super::common::ALPHA_ANNOTATION_PREFIX;
use super::selector::Selector;
use super::template::Template;
use super::*;
use serde_json::json;
use std::sync::Arc;

fn objects(items: serde_json::Value) -> ClusterObjects {
    let mut objects = ClusterObjects::default();
    for item in items.as_array().unwrap() {
        match item["kind"].as_str().unwrap() {
            "Service" => objects
                .services
                .push(Arc::new(serde_json::from_value(item.clone()).unwrap())),
            "Ingress" => objects
                .ingresses
                .push(Arc::new(serde_json::from_value(item.clone()).unwrap())),
            "Pod" => objects
                .pods
                .push(Arc::new(serde_json::from_value(item.clone()).unwrap())),
            "Node" => objects
                .nodes
                .push(Arc::new(serde_json::from_value(item.clone()).unwrap())),
            "EndpointSlice" => objects
                .endpoint_slices
                .push(Arc::new(serde_json::from_value(item.clone()).unwrap())),
            other => panic!("{other}"),
        }
    }
    objects
}

fn service(
    name: &str,
    annotations: serde_json::Value,
    spec: serde_json::Value,
    status: serde_json::Value,
) -> serde_json::Value {
    json!({"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": "default", "annotations": annotations},
           "spec": spec, "status": status})
}

fn rows(output: &SourceOutput) -> Vec<String> {
    output
        .endpoints
        .iter()
        .map(|e| {
            format!(
                "{} {} {} ttl={}",
                e.dns_name,
                e.record_type,
                e.targets.join(","),
                e.ttl
            )
        })
        .collect()
}

fn run(items: serde_json::Value, config: &SourceConfig) -> SourceOutput {
    endpoints(&objects(items), config, "inmemory", 0)
}

/// LoadBalancer: ingress IP and hostname give an A and a CNAME; ttl; the
/// internal-hostname annotation points at the cluster IP.
#[test]
fn load_balancer_and_internal_hostname() {
    let items = json!([service(
        "web",
        json!({"external-dns.kubernetes.io/hostname": "web.example.com, www.example.com.",
               "external-dns.kubernetes.io/internal-hostname": "web.internal.example.com",
               "external-dns.kubernetes.io/ttl": "10m"}),
        json!({"type": "LoadBalancer", "clusterIP": "10.0.0.5"}),
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "lb.example.net"}]}})
    )]);
    let output = run(items, &SourceConfig::default());
    assert_eq!(
        rows(&output),
        [
            "web.example.com A 192.0.2.10 ttl=600",
            "web.example.com CNAME lb.example.net ttl=600",
            "web.internal.example.com A 10.0.0.5 ttl=600",
            "www.example.com A 192.0.2.10 ttl=600",
            "www.example.com CNAME lb.example.net ttl=600",
        ]
    );
    assert_eq!(
        output.endpoints[0].labels["resource"],
        "service/default/web"
    );
    assert!(output.problems.is_empty());
}

/// The alpha prefix is read only when configured (v0.22), and then works as
/// the reference deployment writes it.
#[test]
fn annotation_prefix() {
    let items = json!([service(
        "api",
        json!({"external-dns.alpha.kubernetes.io/hostname": "api.aikernel.io",
               "external-dns.alpha.kubernetes.io/ttl": "60"}),
        json!({"type": "LoadBalancer"}),
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}})
    )]);
    assert!(
        run(items.clone(), &SourceConfig::default())
            .endpoints
            .is_empty()
    );
    let config = SourceConfig {
        annotation_prefixes: vec![ALPHA_ANNOTATION_PREFIX.to_owned()],
        ..SourceConfig::default()
    };
    assert_eq!(
        rows(&run(items, &config)),
        ["api.aikernel.io A 192.0.2.7 ttl=60"]
    );
}

/// ClusterIP only with --publish-internal-services; target annotation
/// overrides; bad names, TTLs and targets are problems, the rest still syncs.
#[test]
fn cluster_ip_target_and_bad_input() {
    let items = json!([
        service(
            "a",
            json!({"external-dns.kubernetes.io/hostname": "a.example.com"}),
            json!({"type": "ClusterIP", "clusterIP": "10.0.0.1"}),
            json!({})
        ),
        service(
            "b",
            json!({"external-dns.kubernetes.io/hostname": "b.example.com",
                            "external-dns.kubernetes.io/target": "2001:db8::1,203.0.113.9"}),
            json!({"type": "ClusterIP", "clusterIP": "10.0.0.2"}),
            json!({})
        ),
        service(
            "c",
            json!({"external-dns.kubernetes.io/hostname": "bad_name!.example.com,ok.example.com",
                            "external-dns.kubernetes.io/ttl": "abc",
                            "external-dns.kubernetes.io/target": "1.2.3.4,bad_target!"}),
            json!({"type": "ClusterIP"}),
            json!({})
        ),
    ]);
    let output = run(items.clone(), &SourceConfig::default());
    assert_eq!(
        rows(&output),
        [
            "b.example.com A 203.0.113.9 ttl=0",
            "b.example.com AAAA 2001:db8::1 ttl=0",
            "ok.example.com A 1.2.3.4 ttl=0",
        ]
    );
    let messages: Vec<&str> = output.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("invalid ttl annotation \"abc\""));
    assert!(messages[1].contains("invalid host name \"bad_name!.example.com\""));
    assert!(messages[2].contains("\"bad_target!\" of ok.example.com"));
    let config = SourceConfig {
        publish_internal_services: true,
        ..SourceConfig::default()
    };
    assert!(rows(&run(items, &config)).contains(&"a.example.com A 10.0.0.1 ttl=0".to_owned()));
}

/// NodePort: node ExternalIPs (InternalIPs without any), SRV per node port.
#[test]
fn node_port() {
    let items = json!([
        service("web", json!({"external-dns.kubernetes.io/hostname": "web.example.com"}),
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}), json!({})),
        {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"},
         "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.1"}, {"type": "ExternalIP", "address": "198.51.100.1"}]}},
        {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n2"}, "spec": {"unschedulable": true},
         "status": {"addresses": [{"type": "ExternalIP", "address": "198.51.100.2"}]}},
    ]);
    let output = run(items, &SourceConfig::default());
    assert_eq!(
        rows(&output),
        [
            "_web._tcp.web.example.com SRV 0 50 30080 web.example.com. ttl=0",
            "web.example.com A 198.51.100.1 ttl=0"
        ]
    );
}

/// Headless: one record per ready pod, plus `<pod hostname>.<name>`.
#[test]
fn headless() {
    let items = json!([
        service("db", json!({"external-dns.kubernetes.io/hostname": "db.example.com"}),
                json!({"clusterIP": "None", "selector": {"app": "db"}}), json!({})),
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "db-0", "namespace": "default", "labels": {"app": "db"}}, "spec": {"hostname": "db-0", "containers": []}},
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "db-1", "namespace": "default", "labels": {"app": "db"}}, "spec": {"containers": []}},
        {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
         "metadata": {"name": "db-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}},
         "endpoints": [
            {"addresses": ["10.2.0.1"], "targetRef": {"kind": "Pod", "name": "db-0"}},
            {"addresses": ["10.2.0.2"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "db-1"}}]},
    ]);
    assert_eq!(
        rows(&run(items, &SourceConfig::default())),
        [
            "db-0.db.example.com A 10.2.0.1 ttl=0",
            "db.example.com A 10.2.0.1 ttl=0"
        ]
    );
}

/// Ingress: rules, TLS hosts and the annotation; ingress-hostname-source;
/// the annotation filter; FQDN templates when nothing else names it.
#[test]
fn ingress_names_and_filters() {
    let ingress = |name: &str, annotations: serde_json::Value, rules: serde_json::Value| {
        json!({"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
               "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
               "spec": {"rules": rules, "tls": [{"hosts": ["tls.example.com"]}]},
               "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.30"}]}}})
    };
    let items = json!([
        ingress(
            "one",
            json!({"external-dns.kubernetes.io/hostname": "extra.example.com", "team": "a"}),
            json!([{"host": "rule.example.com"}])
        ),
        ingress(
            "two",
            json!({"external-dns.kubernetes.io/ingress-hostname-source": "annotation-only", "team": "b"}),
            json!([{"host": "two.example.com"}])
        ),
    ]);
    let config = SourceConfig {
        sources: vec!["ingress".to_owned()],
        ..SourceConfig::default()
    };
    assert_eq!(
        rows(&run(items.clone(), &config)),
        [
            "rule.example.com A 192.0.2.30 ttl=0",
            "tls.example.com A 192.0.2.30 ttl=0",
            "extra.example.com A 192.0.2.30 ttl=0",
        ]
    );
    let filtered = SourceConfig {
        annotation_filter: Selector::parse("team=b").unwrap(),
        fqdn_template: Some(
            Template::parse(&["{{.Name}}.{{.Namespace}}.example.com".to_owned()]).unwrap(),
        ),
        ..config
    };
    assert_eq!(
        rows(&run(items, &filtered)),
        ["two.shop.example.com A 192.0.2.30 ttl=0"]
    );
}

/// Exact duplicates are dropped and counted; --min-ttl fills unset TTLs;
/// properties of other providers are pruned.
#[test]
fn dedup_min_ttl_and_pruning() {
    let annotations = json!({"external-dns.kubernetes.io/hostname": "x.example.com",
                             "external-dns.kubernetes.io/aws-weight": "10",
                             "external-dns.kubernetes.io/coredns-group": "g"});
    let items = json!([service(
        "x",
        annotations,
        json!({"type": "LoadBalancer"}),
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}})
    )]);
    let config = SourceConfig {
        sources: vec!["service".to_owned(), "service".to_owned()],
        ..SourceConfig::default()
    };
    let output = endpoints(&objects(items), &config, "coredns", 120);
    assert_eq!(rows(&output), ["x.example.com A 192.0.2.1 ttl=120"]);
    assert_eq!(output.duplicates, [(RecordType::A, "service")]);
    assert_eq!(
        output.endpoints[0].provider_specific,
        [("coredns/group".to_owned(), "g".to_owned())]
    );
}

/// `dns.aikernel.io/geo-region` becomes Route 53 latency routing (set
/// identifier and `aws/region`) only for the aws provider; an explicit
/// `set-identifier` wins.
#[test]
fn geo_region_is_latency_routing_for_aws() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let meta = |extra: &[(&str, &str)]| ObjectMeta {
        name: Some("app".to_owned()),
        namespace: Some("default".to_owned()),
        annotations: Some(
            [("dns.aikernel.io/geo-region", "eu-west-1")]
                .iter()
                .chain(extra)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ObjectMeta::default()
    };
    let aws = SourceConfig {
        geo_region_latency: true,
        ..SourceConfig::default()
    };
    let mut problems = Vec::new();
    let context = crate::source::common::object_context("service", &meta(&[]), &aws, &mut problems);
    assert_eq!(context.set_identifier, "eu-west-1");
    assert!(
        context
            .provider_specific
            .contains(&("aws/region".to_owned(), "eu-west-1".to_owned()))
    );
    let explicit = meta(&[("external-dns.kubernetes.io/set-identifier", "eu-a")]);
    let context = crate::source::common::object_context("service", &explicit, &aws, &mut problems);
    assert_eq!(context.set_identifier, "eu-a");
    let other = SourceConfig::default();
    let context =
        crate::source::common::object_context("service", &meta(&[]), &other, &mut problems);
    assert_eq!(context.set_identifier, "");
    assert!(context.provider_specific.is_empty());
}
