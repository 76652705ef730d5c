//! Corefile → typed configuration: defaults, every error at once, listeners.

use super::*;
use signpost_zone::PodMode;
use std::path::{Path, PathBuf};

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let corefile =
        signpost_corefile::parse_str(text, Path::new("/etc/signpost/Corefile"), &|_| None)?;
    Config::from_corefile(&corefile)
}

fn lines(errors: &ConfigErrors) -> Vec<u32> {
    errors.0.iter().map(|e| e.location.line).collect()
}

/// The cluster options and catalog paths of a listener's `kubernetes` plugins.
fn kubernetes(
    listener: &ListenerConfig,
) -> Vec<(&signpost_zone::cluster::ClusterOptions, &[PathBuf])> {
    listener
        .sources
        .iter()
        .filter_map(|plan| match (&plan.recipe, &plan.spec) {
            (Recipe::Cluster(options), SourceSpec::Catalog { paths, .. }) => {
                Some((options, paths.as_slice()))
            }
            _ => None,
        })
        .collect()
}

/// The kubernetes block loads with the seed's TTL default of 30 s (CoreDNS's is 5).
#[test]
fn kubernetes_defaults_and_options() {
    let config = parse(
        ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        catalog ./catalog /srv/more.yaml\n        pods insecure\n        endpoint_pod_names\n        fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    health\n    ready\n}\n",
    )
    .unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.addresses, ["0.0.0.0:53".parse().unwrap()]);
    let (plugin, catalog) = kubernetes(listener)[0];
    assert_eq!(plugin.ttl, 30);
    assert_eq!(plugin.pods, PodMode::Insecure);
    assert!(plugin.endpoint_pod_names);
    assert_eq!(plugin.fallthrough.len(), 2);
    assert_eq!(
        catalog,
        [
            PathBuf::from("/etc/signpost/./catalog"),
            PathBuf::from("/srv/more.yaml")
        ]
    );
    assert_eq!(config.process.prometheus, ["0.0.0.0:9153".parse().unwrap()]);
    assert_eq!(config.process.health, ["0.0.0.0:8080".parse().unwrap()]);
    assert_eq!(config.process.ready, ["0.0.0.0:8181".parse().unwrap()]);
}

/// Every problem is reported at once, each at its own line.
#[test]
fn every_error_at_once() {
    let errors = parse(
        ".:53 {\n    kubernetes {\n        ttl 99999\n        pods sometimes\n        tls a b\n        namespaces a\n        namespace_labels x=y\n    }\n    rewrite name a b\n    nonsense\n    bind 1.2.3\n}\n",
    )
    .unwrap_err();
    assert_eq!(lines(&errors), [3, 4, 5, 2, 9, 10, 11], "{errors}");
    assert!(
        errors
            .to_string()
            .contains("/etc/signpost/Corefile:9: directive `rewrite` is a CoreDNS plugin"),
        "{errors}"
    );
}

/// Without `catalog` the plugin watches an API server: in the pod's cluster
/// by default, or as `kubeconfig`/`endpoint` say (CoreDNS's precedence:
/// kubeconfig, then endpoint), with its filters.
#[test]
fn kubernetes_api_source() {
    let config = parse(
        ".:53 {\n    kubernetes cluster.local {\n        endpoint https://10.0.0.1:6443\n        kubeconfig kube.yaml ctx\n        namespaces a b\n        labels app=dns\n        noendpoints\n        pods verified\n    }\n}\n",
    )
    .unwrap();
    let plan = &config.listeners[0].sources[0];
    let SourceSpec::Kubernetes(api) = &plan.spec else {
        panic!("expected an API source, got {:?}", plan.spec);
    };
    assert_eq!(
        api.connection,
        signpost_zone::KubeConnection::Kubeconfig {
            path: PathBuf::from("/etc/signpost/kube.yaml"),
            context: Some("ctx".to_owned())
        }
    );
    assert_eq!(api.namespaces, ["a", "b"]);
    assert_eq!(api.labels.as_deref(), Some("app=dns"));
    assert!(!api.endpoints && api.pods);
    let Recipe::Cluster(options) = &plan.recipe else {
        panic!("expected the cluster recipe");
    };
    assert_eq!(options.pods, PodMode::Verified);
    let in_cluster = parse(".:53 {\n    kubernetes cluster.local\n}\n").unwrap();
    assert!(matches!(
        &in_cluster.listeners[0].sources[0].spec,
        SourceSpec::Kubernetes(api) if api.connection == signpost_zone::KubeConnection::InCluster
    ));
}

/// Blocks on one port share a listener; `bind` sets the addresses.
#[test]
fn blocks_on_one_port_share_a_listener() {
    let config = parse(
        "cluster.local:5353 {\n    bind 127.0.0.1 ::1\n    kubernetes {\n        catalog c\n    }\n}\nexample.org:5353 {\n    bind 127.0.0.1 ::1\n    log\n}\nother:5354 {\n    log\n}\n",
    )
    .unwrap();
    assert_eq!(config.listeners.len(), 2);
    let shared = &config.listeners[0];
    assert_eq!(shared.zones.len(), 2);
    assert_eq!(shared.addresses.len(), 2);
    assert!(shared.log);
    assert_eq!(kubernetes(shared).len(), 1);
    assert_eq!(
        kubernetes(shared)[0].0.zones,
        [Name::from_ascii("cluster.local").unwrap()]
    );
}

/// A block with several keys on one port lists its plugins once.
#[test]
fn keys_on_one_port_apply_plugins_once() {
    let config = parse(
        "cluster.local:5353 in-addr.arpa:5353 {\n    kubernetes {\n        catalog c\n    }\n    forward . 127.0.0.1\n}\n",
    )
    .unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].zones.len(), 2);
    assert_eq!(kubernetes(&config.listeners[0]).len(), 1);
    assert_eq!(config.listeners[0].forward.len(), 1);
}

/// One health checker serves the process: blocks with different
/// `healthcheck` settings are rejected at the second block's line, and equal
/// ones are accepted.
#[test]
fn differing_healthcheck_blocks_are_rejected() {
    let errors = parse(
        "a.test:5353 {\n    healthcheck {\n        interval 5s\n    }\n}\nb.test:5354 {\n    healthcheck {\n        interval 10s\n    }\n}\n",
    )
    .unwrap_err();
    assert_eq!(lines(&errors), [7], "{errors}");
    assert!(
        errors
            .to_string()
            .contains("differs from the one at /etc/signpost/Corefile:2"),
        "{errors}"
    );
    let config = parse(
        "a.test:5353 {\n    healthcheck {\n        interval 0.5s\n    }\n}\nb.test:5354 {\n    healthcheck {\n        interval 500ms\n    }\n}\n",
    )
    .unwrap();
    assert!(config.listeners.iter().all(|l| l.healthcheck.is_some()));
    assert_eq!(
        config.process.healthcheck.map(|(h, _)| h.policy.interval),
        Some(std::time::Duration::from_millis(500))
    );
}
