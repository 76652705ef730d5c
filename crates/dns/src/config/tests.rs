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

/// The kubernetes block loads with signpost's TTL default of 30 s (CoreDNS's is 5).
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

/// Issue 12: `healthcheck { verdicts kubernetes|etcd ... }` subscribes to a
/// `signpost health` leader's verdicts: defaults, explicit objects and
/// connections, and the staleness bound.
#[test]
fn healthcheck_verdicts_from_the_controller() {
    use signpost_zone::{KubeConnection, VerdictStoreSpec};
    let config = parse(
        ".:53 {\n    healthcheck {\n        verdicts kubernetes\n        all_unhealthy nxdomain\n    }\n}\n",
    )
    .unwrap();
    let spec = config.process.verdicts.expect("verdicts");
    assert_eq!(spec.stale_after, std::time::Duration::from_secs(60));
    assert_eq!(
        spec.store,
        VerdictStoreSpec::Kubernetes {
            connection: KubeConnection::InCluster,
            namespace: "kube-system".into(),
            name: "signpost-health-verdicts".into(),
        }
    );
    assert_eq!(
        config.listeners[0].healthcheck.map(|h| h.all_unhealthy),
        Some(signpost_model::AllUnhealthy::NxDomain)
    );
    let config = parse(
        ".:53 {\n    healthcheck {\n        verdicts kubernetes dns/verdicts {\n            kubeconfig kube.yaml ctx\n            stale_after 2m\n        }\n    }\n}\n",
    )
    .unwrap();
    let spec = config.process.verdicts.unwrap();
    assert_eq!(spec.stale_after, std::time::Duration::from_secs(120));
    assert_eq!(
        spec.store,
        VerdictStoreSpec::Kubernetes {
            connection: KubeConnection::Kubeconfig {
                path: PathBuf::from("/etc/signpost/kube.yaml"),
                context: Some("ctx".into()),
            },
            namespace: "dns".into(),
            name: "verdicts".into(),
        }
    );
    let config = parse(
        ".:53 {\n    healthcheck {\n        verdicts etcd {\n            endpoint http://10.0.0.5:2379\n            path /dns/health\n        }\n    }\n}\n",
    )
    .unwrap();
    match config.process.verdicts.unwrap().store {
        VerdictStoreSpec::Etcd(etcd) => {
            assert_eq!(etcd.endpoints, ["http://10.0.0.5:2379"]);
            assert_eq!(etcd.prefix, "/dns/health/");
        }
        other => panic!("{other:?}"),
    }
}

/// Every mistake of a `verdicts` subscription at its line: the checker's
/// own options next to it, a bad object name, an unknown backend or option.
#[test]
fn healthcheck_verdicts_errors_at_their_lines() {
    let errors = parse(
        ".:53 {\n    healthcheck {\n        verdicts kubernetes kube-system\n        interval 5s\n        verdicts consul\n    }\n}\n",
    )
    .unwrap_err();
    assert_eq!(lines(&errors), [3, 4, 5], "{errors}");
    let text = errors.to_string();
    assert!(text.contains("NAMESPACE/NAME"), "{text}");
    assert!(
        text.contains("`interval` has no effect with `verdicts`"),
        "{text}"
    );
    assert!(text.contains("only one `verdicts`"), "{text}");
    let errors =
        parse(".:53 {\n    healthcheck {\n        verdicts consul\n    }\n}\n").unwrap_err();
    assert_eq!(lines(&errors), [3], "{errors}");
    assert!(errors.to_string().contains("found \"consul\""), "{errors}");
    let errors = parse(
        ".:53 {\n    healthcheck {\n        verdicts etcd {\n            stale_after 0s\n            color blue\n        }\n    }\n}\n",
    )
    .unwrap_err();
    assert_eq!(lines(&errors), [4, 5], "{errors}");
    let text = errors.to_string();
    assert!(
        text.contains("unknown `verdicts etcd` option `color`"),
        "{text}"
    );
}

/// The `etcd` plugin with CoreDNS's defaults (path `/skydns`, endpoint
/// `http://localhost:2379`, lease TTL bounds 30 s and 86400 s) and with every
/// option of its README; a CIDR names its reverse zones.
#[test]
fn etcd_defaults_and_options() {
    let etcd = |config: &Config| {
        config.listeners[0]
            .sources
            .iter()
            .find_map(|plan| match (&plan.spec, &plan.recipe) {
                (SourceSpec::Etcd(spec), Recipe::Etcd(options)) => {
                    Some((spec.clone(), options.clone()))
                }
                _ => None,
            })
            .unwrap()
    };
    let (spec, options) = etcd(&parse("skydns.local {\n    etcd\n}\n").unwrap());
    assert_eq!(spec.prefix, "/skydns/");
    assert_eq!(spec.endpoints, ["http://localhost:2379"]);
    assert_eq!(spec.credentials, None);
    assert_eq!(
        options.zones,
        [signpost_proto::Name::from_ascii("skydns.local").unwrap()]
    );
    assert_eq!((options.min_lease_ttl, options.max_lease_ttl), (30, 86400));
    let (spec, options) = etcd(
        &parse(
            ".:53 {\n    etcd skydns.local 10.0.0.0/24 {\n        path /dns\n        endpoint http://127.0.0.1:2379 http://127.0.0.1:4001\n        credentials root s3cr3t\n        tls cert.pem key.pem ca.pem\n        min-lease-ttl 60\n        max-lease-ttl 1h\n        fallthrough\n        stubzones\n    }\n}\n",
        )
        .unwrap(),
    );
    assert_eq!(spec.prefix, "/dns/");
    assert_eq!(spec.endpoints.len(), 2);
    assert!(
        !format!("{spec:?}").contains("s3cr3t"),
        "the password shows in Debug"
    );
    let tls = spec.tls.unwrap();
    assert_eq!(tls.ca, Some(PathBuf::from("/etc/signpost/ca.pem")));
    let zones: Vec<String> = options.zones.iter().map(ToString::to_string).collect();
    assert_eq!(zones, ["skydns.local.", "0.0.10.in-addr.arpa."]);
    assert_eq!((options.min_lease_ttl, options.max_lease_ttl), (60, 3600));
    assert_eq!(options.fallthrough.len(), 2);
}

/// Every `etcd` mistake at its line, with CoreDNS's messages; a password
/// given with the wrong argument count is not repeated.
#[test]
fn etcd_errors_at_their_lines() {
    let errors = parse(
        ".:53 {\n    etcd skydns.local {\n        path\n        endpoint\n        credentials root s3cr3t extra\n        tls a b c d\n        min-lease-ttl soon\n        max-lease-ttl -5\n        colour blue\n    }\n}\n",
    )
    .unwrap_err();
    assert_eq!(lines(&errors), [3, 4, 5, 6, 7, 8, 9], "{errors}");
    let text = errors.to_string();
    assert!(
        text.contains("credentials requires 2 arguments, username and password"),
        "{text}"
    );
    assert!(
        text.contains("maximum of three arguments allowed for TLS config, found 4"),
        "{text}"
    );
    assert!(
        text.contains("invalid min-lease-ttl value: invalid TTL format"),
        "{text}"
    );
    assert!(
        text.contains("invalid max-lease-ttl value: TTL must be non-negative"),
        "{text}"
    );
    assert!(text.contains("unknown property 'colour'"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}

/// Issue 17: `admin` is off unless written, defaults to loopback port 9154,
/// takes `token_file` relative to the Corefile, and reports every mistake at
/// its line: a bad address, an unknown option, two token files, and two
/// blocks giving one address different token files.
#[test]
fn admin_directive_defaults_and_errors() {
    let config = parse(".:53 {\n    health\n    ready\n}\n").unwrap();
    assert!(config.process.admin.is_empty());
    assert!(!config.admin_addresses().iter().any(|a| a.port() == 9154));

    let config = parse(".:53 {\n    admin\n}\n.:54 {\n    admin 127.0.0.1:9999 {\n        token_file secrets/admin.token\n    }\n}\n").unwrap();
    let admin = &config.process.admin;
    assert_eq!(admin.len(), 2);
    assert_eq!(admin[0].address, "127.0.0.1:9154".parse().unwrap());
    assert_eq!(admin[0].token_file, None);
    assert_eq!(
        admin[1].token_file.as_deref(),
        Some(Path::new("/etc/signpost/secrets/admin.token"))
    );
    assert!(config.admin_addresses().contains(&admin[1].address));

    let errors = parse(
        ".:53 {\n    admin nowhere\n    admin :9000 {\n        token_file a\n        token_file b\n        max_body 1\n        token_file\n    }\n}\n.:54 {\n    admin :9000 {\n        token_file c\n    }\n}\n",
    )
    .unwrap_err();
    assert_eq!(lines(&errors), [2, 5, 6, 7, 11], "{errors}");
    assert!(
        errors.to_string().contains("different token_file"),
        "{errors}"
    );
}
