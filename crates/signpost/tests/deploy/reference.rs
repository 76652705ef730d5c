//! Issue 16, point 5: the manifests' Corefile and the geographic example, served by a real
//! `signpost dns`, answer the reference deployment's example queries.
//!
//! `signpost dns` runs with coredns-deployment.yaml's arguments. The Corefile is the
//! `coredns-custom` ConfigMap's, unchanged but for where it listens and what it forwards to: port 53
//! and the probe ports become free loopback ports, and the public resolvers (8.8.8.8, 8.8.4.4,
//! 1.1.1.1) become a `knotd` on loopback serving `google.com` (tests send traffic
//! to loopback only). Its in-cluster `kubernetes` plugin reaches the fake API server of
//! `crates/fakes` through `$KUBECONFIG`, as it does on a workstation. The fake holds what the
//! manifests create (the `aikernel` namespace and the three regional Services of
//! geographic-routing.yaml, the load balancers' addresses written to their status as a cloud
//! controller would) and what a cluster has anyway (`kubernetes.default`, a `catalog-api` Service
//! with endpoints). The regional Services' endpoints are HTTP servers on loopback; their health-check
//! port annotation is pointed at them (8080 may be taken on a shared machine).
//!
//! The Corefile's `healthcheck` follows the verdicts of the health controller, so `signpost health`
//! runs too, with dns-health-controller.yaml's arguments and configuration (only `--config` and
//! `--listen` point at the test's file and a loopback port), against the same fake API server. The
//! fake enforces RBAC: each role authenticates as its ServiceAccount and may do exactly what the
//! manifests' Roles and ClusterRoles bound to that ServiceAccount grant, and the verdict ConfigMap and
//! the Lease are created as dns-health-controller.yaml creates them.

use crate::common::{MANIFESTS, documents, manifest_path, object, shown};
use crate::manifests::{corefile, dns_arguments, health_arguments};
use crate::support::{Backend, FAILING, HEALTHY, backends_on, free_port, http_get};
use crate::upstream::Knot;
use serde_json::{Value, json};
use signpost_fakes::{AuthConfig, FakeApiServer, Rule, ServerOptions, UserConfig};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// The three regions of geographic-routing.yaml: Service, load-balancer address (documentation
/// range, DNS data only), the client network the Corefile's `client` line maps to it, and the
/// loopback address of its endpoint.
pub(crate) const REGIONS: [(&str, &str, &str, Ipv4Addr); 3] = [
    (
        "api-us-east-1",
        "192.0.2.1",
        "10.1.0.0/24",
        Ipv4Addr::new(127, 0, 61, 1),
    ),
    (
        "api-eu-west-1",
        "192.0.2.2",
        "10.2.0.0/24",
        Ipv4Addr::new(127, 0, 61, 2),
    ),
    (
        "api-ap-southeast-1",
        "192.0.2.3",
        "10.3.0.0/24",
        Ipv4Addr::new(127, 0, 61, 3),
    ),
];

/// The upstream's zone: what "the public resolvers" answer for google.com.
const GOOGLE: &str = "$ORIGIN google.com.
$TTL 300
@    IN SOA ns1 hostmaster 1 3600 600 86400 300
@    IN NS  ns1
ns1  IN A   192.0.2.53
@    IN A   192.0.2.80
";

/// The fake API server on its own runtime.
struct Cluster {
    server: FakeApiServer,
    _runtime: tokio::runtime::Runtime,
}

/// The ServiceAccounts the DNS role and the health controller run as (kube-system).
const DNS_ACCOUNT: &str = "coredns-custom";
const HEALTH_ACCOUNT: &str = "dns-health-controller";

/// A `signpost dns` over the reference Corefile and the `signpost health` whose verdicts it follows,
/// with their cluster, upstream and endpoints.
pub(crate) struct Reference {
    child: Child,
    controller: Child,
    dir: tempfile::TempDir,
    /// The DNS port on 127.0.0.1.
    pub(crate) port: u16,
    metrics: u16,
    ready: u16,
    /// `catalog-api.aikernel`'s cluster IP, as the fake allocated it.
    pub(crate) catalog_api_ip: String,
    /// One health endpoint per region, in [`REGIONS`] order.
    pub(crate) backends: Vec<Backend>,
    cluster: Cluster,
    _knot: Knot,
}

impl Reference {
    /// Starts everything and waits for `/ready`.
    pub(crate) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let auth = AuthConfig {
            users: [DNS_ACCOUNT, HEALTH_ACCOUNT]
                .into_iter()
                .map(|account| UserConfig {
                    token: format!("{account}-token"),
                    user: format!("system:serviceaccount:kube-system:{account}"),
                    groups: vec!["system:serviceaccounts".to_owned()],
                    rules: granted_to(account),
                })
                .collect(),
        };
        let server = runtime
            .block_on(FakeApiServer::start(ServerOptions {
                auth: Some(auth),
                ..ServerOptions::default()
            }))
            .expect("fake API server starts");
        let knot = Knot::serving(&[("google.com.", GOOGLE)]);
        let addresses: Vec<Ipv4Addr> = REGIONS.iter().map(|r| r.3).collect();
        let (health_port, backends) = backends_on(&addresses);
        let catalog_api_ip = populate(&server, health_port);

        let dir = tempfile::tempdir().expect("tempdir");
        let (port, metrics, ready, health, admin, controller_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let controller = start_controller(&server, dir.path(), controller_port);
        let corefile = local(
            &corefile(),
            &[
                (".:53 {", format!(".:{port} {{\n    bind 127.0.0.1")),
                ("    health {", format!("    health 127.0.0.1:{health} {{")),
                ("    ready\n", format!("    ready 127.0.0.1:{ready}\n")),
                (
                    "    prometheus :9153",
                    format!("    prometheus 127.0.0.1:{metrics}"),
                ),
                (
                    "    admin 127.0.0.1:9154",
                    format!("    admin 127.0.0.1:{admin}"),
                ),
                (
                    "    forward . 8.8.8.8 8.8.4.4 1.1.1.1 {",
                    format!("    forward . {} {{", knot.addr()),
                ),
            ],
        );
        std::fs::write(dir.path().join("Corefile"), corefile).expect("write Corefile");
        let log = std::fs::File::create(dir.path().join("signpost.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(dns_arguments(&dir.path().join("Corefile")))
            .env(
                "KUBECONFIG",
                kubeconfig_for(&server, dir.path(), DNS_ACCOUNT),
            )
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start signpost dns");
        let reference = Self {
            child,
            controller,
            dir,
            port,
            metrics,
            ready,
            catalog_api_ip,
            backends,
            cluster: Cluster {
                server,
                _runtime: runtime,
            },
            _knot: knot,
        };
        reference.wait(Duration::from_secs(30), "/ready answers 200", || {
            matches!(reference.get(reference.ready, "/ready"), Some((200, _)))
        });
        // The only controller replica takes the Lease the manifest created (no holder yet) at once.
        reference.wait(
            Duration::from_secs(30),
            "the health controller leads",
            || {
                reference
                    .get(controller_port, "/metrics")
                    .is_some_and(|(status, body)| {
                        status == 200 && body.lines().any(|l| l == "signpost_health_leader 1")
                    })
            },
        );
        reference
    }

    /// The logs so far: `signpost dns`'s, then `signpost health`'s.
    pub(crate) fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "{}\n--- signpost health:\n{}",
            read("signpost.log"),
            read("health.log")
        )
    }

    fn get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        http_get(SocketAddr::from(([127, 0, 0, 1], port)), path)
    }

    /// The `namespace/service/address` lines of the verdict ConfigMap the controller publishes.
    pub(crate) fn published_unhealthy(&self) -> Vec<String> {
        let name = health_arguments()
            .iter()
            .find_map(|a| a.strip_prefix("--verdicts=").map(str::to_owned))
            .expect("--verdicts=");
        self.cluster
            .server
            .get("configmaps", Some("kube-system"), &name)
            .and_then(|o| o["data"]["unhealthy"].as_str().map(str::to_owned))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The Prometheus exposition of the `prometheus` address.
    pub(crate) fn metrics(&self) -> String {
        match self.get(self.metrics, "/metrics") {
            Some((200, body)) => body,
            other => panic!("/metrics: {other:?}; log:\n{}", self.log()),
        }
    }

    /// Polls `done` every 50 ms until it holds; panics with the log after `limit`.
    pub(crate) fn wait(&self, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = SystemTime::now() + limit;
        while !done() {
            assert!(
                SystemTime::now() < deadline,
                "waited {limit:?} for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `dig @127.0.0.1 -p PORT ARGS... +noall +answer`: the answer lines, whitespace-normalised.
    pub(crate) fn dig(&self, args: &[&str]) -> Vec<String> {
        let output = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+time=2",
                "+tries=1",
            ])
            .args(args)
            .args(["+noall", "+answer"])
            .output()
            .expect("dig (bind9-dnsutils)");
        assert!(output.status.success(), "dig {args:?}: {}", shown(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The data of the answer records (last field onwards after the type), sorted.
    pub(crate) fn answer(&self, args: &[&str]) -> Vec<String> {
        let mut data: Vec<String> = self
            .dig(args)
            .iter()
            .map(|line| line.splitn(5, ' ').nth(4).unwrap_or_default().to_owned())
            .collect();
        data.sort();
        data
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        for child in [&mut self.child, &mut self.controller] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the manifests grant `account` (kube-system), as the fake's rules: the rules of every
/// ClusterRole bound by a ClusterRoleBinding (any namespace), and of every Role or ClusterRole bound by
/// a RoleBinding (the binding's namespace only).
fn granted_to(account: &str) -> Vec<Rule> {
    let all: Vec<Value> = MANIFESTS
        .iter()
        .flat_map(|file| documents(&manifest_path(file)))
        .collect();
    let mut rules = Vec::new();
    for binding in all
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
    {
        let binds = binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == account
                    && s["namespace"] == "kube-system"
            })
        });
        if !binds {
            continue;
        }
        let namespaces: Vec<String> = if binding["kind"] == "RoleBinding" {
            vec![
                binding["metadata"]["namespace"]
                    .as_str()
                    .expect("RoleBinding namespace")
                    .to_owned(),
            ]
        } else {
            Vec::new()
        };
        let role_ref = &binding["roleRef"];
        let role = all
            .iter()
            .find(|d| {
                d["kind"] == role_ref["kind"]
                    && d["metadata"]["name"] == role_ref["name"]
                    && (role_ref["kind"] == "ClusterRole"
                        || d["metadata"]["namespace"] == binding["metadata"]["namespace"])
            })
            .unwrap_or_else(|| {
                panic!("{} binds a missing {role_ref}", binding["metadata"]["name"])
            });
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().expect("string").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        for rule in role["rules"].as_array().expect("rules") {
            rules.push(Rule {
                verbs: strings(&rule["verbs"]),
                api_groups: Some(strings(&rule["apiGroups"])),
                resources: strings(&rule["resources"]),
                resource_names: strings(&rule["resourceNames"]),
                namespaces: namespaces.clone(),
            });
        }
    }
    assert!(!rules.is_empty(), "the manifests grant {account} nothing");
    rules
}

/// A copy of the fake's kubeconfig in `dir` carrying `account`'s token.
fn kubeconfig_for(server: &FakeApiServer, dir: &Path, account: &str) -> PathBuf {
    let text = std::fs::read_to_string(server.kubeconfig_path()).expect("kubeconfig");
    let text: Vec<String> = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("token: ") {
            Some(_) => format!(
                "{}token: {account}-token",
                &line[..line.len() - line.trim_start().len()]
            ),
            None => line.to_owned(),
        })
        .collect();
    assert!(
        text.iter()
            .any(|l| l.trim() == format!("token: {account}-token")),
        "the fake's kubeconfig has no token line"
    );
    let path = dir.join(format!("kubeconfig-{account}"));
    std::fs::write(&path, text.join("\n")).expect("write kubeconfig");
    path
}

/// Creates what dns-health-controller.yaml creates for the controller to write (the verdict
/// ConfigMap and the Lease named in its arguments) and starts `signpost health` with the manifest's
/// arguments, its ConfigMap's `config.yaml` and the pod's environment, listening on `port`.
fn start_controller(server: &FakeApiServer, dir: &Path, port: u16) -> Child {
    let args = health_arguments();
    let named = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{flag}=")))
            .unwrap_or_else(|| panic!("health args lack --{flag}"))
            .to_owned()
    };
    for (kind, name) in [("ConfigMap", named("verdicts")), ("Lease", named("lease"))] {
        let document = object("dns-health-controller.yaml", kind, &name);
        server
            .create(document.clone())
            .unwrap_or_else(|e| panic!("create {document}: {e:?}"));
    }
    let config = object(
        "dns-health-controller.yaml",
        "ConfigMap",
        "dns-health-controller-config",
    );
    let config_path = dir.join("config.yaml");
    std::fs::write(
        &config_path,
        config["data"]["config.yaml"].as_str().expect("config.yaml"),
    )
    .expect("write config");
    let args: Vec<String> = args
        .into_iter()
        .map(|arg| {
            if arg.starts_with("--config=") {
                format!("--config={}", config_path.display())
            } else if arg.starts_with("--listen=") {
                format!("--listen=127.0.0.1:{port}")
            } else {
                arg
            }
        })
        .collect();
    let log = std::fs::File::create(dir.join("health.log")).expect("log");
    Command::new(env!("CARGO_BIN_EXE_signpost"))
        .arg("health")
        .args(&args)
        .env("KUBECONFIG", kubeconfig_for(server, dir, HEALTH_ACCOUNT))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("POD_NAME", "dns-health-controller-0")
        .env("POD_NAMESPACE", "kube-system")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start signpost health")
}

/// Applies `replacements` to the Corefile, each of which must match exactly once (a changed
/// manifest fails here with a clear message instead of testing something else).
fn local(corefile: &str, replacements: &[(&str, String)]) -> String {
    let mut text = corefile.to_owned();
    for (from, to) in replacements {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the ConfigMap's Corefile should contain {from:?} once:\n{corefile}"
        );
        text = text.replace(from, to);
    }
    text
}

/// Loads the cluster: the objects of geographic-routing.yaml (health-check port pointed at the
/// loopback endpoints, load-balancer addresses in their status), an EndpointSlice per region, the
/// `kubernetes` Service and `catalog-api` with two endpoints. Returns catalog-api's cluster IP.
fn populate(server: &FakeApiServer, health_port: u16) -> String {
    let create = |object: Value| {
        server
            .create(object.clone())
            .unwrap_or_else(|e| panic!("create {object}: {e:?}"))
    };
    for mut object in documents(&manifest_path("geographic-routing.yaml")) {
        let is_service = object["kind"] == "Service";
        if is_service {
            object["metadata"]["annotations"]["dns.aikernel.io/health-check-port"] =
                json!(health_port.to_string());
        }
        let created = create(object);
        if is_service {
            let name = created["metadata"]["name"]
                .as_str()
                .expect("name")
                .to_owned();
            let (_, address, _, endpoint) = REGIONS
                .iter()
                .find(|r| r.0 == name)
                .unwrap_or_else(|| panic!("{name} is not one of the test's regions"));
            let mut with_status = created.clone();
            with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": address}]}});
            server
                .update_status(with_status)
                .unwrap_or_else(|e| panic!("status of {name}: {e:?}"));
            create(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-1"), "namespace": "aikernel",
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [endpoint.to_string()], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": 8443, "protocol": "TCP"},
                          {"name": "health", "port": health_port, "protocol": "TCP"}]
            }));
        }
    }
    create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
    }));
    let catalog_api = create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "catalog-api", "namespace": "aikernel"},
        "spec": {"selector": {"app": "catalog-api"},
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    }));
    create(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "catalog-api-1", "namespace": "aikernel",
                     "labels": {"kubernetes.io/service-name": "catalog-api"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
                      {"addresses": ["10.244.2.7"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }));
    catalog_api["spec"]["clusterIP"]
        .as_str()
        .expect("cluster IP allocated")
        .to_owned()
}

/// The TTL field of each answer line.
fn ttls(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .map(|l| {
            l.split(' ')
                .nth(1)
                .and_then(|t| t.parse().ok())
                .expect("TTL")
        })
        .collect()
}

/// Issue 16, point 5: the reference deployment's example queries, through the manifests' Corefile:
/// `kubernetes.default` and `catalog-api.aikernel.svc.cluster.local` with the 30 s TTL, the SRV
/// record `_http._tcp.catalog-api.aikernel.svc.cluster.local`, `google.com` through the forwarder
/// and then from the cache, and `api.aikernel.io` "from the US" and "from the EU" (EDNS Client
/// Subnet in each region's client network) answered with that region's load balancer.
#[test]
fn the_reference_queries_are_answered() {
    let server = Reference::start();

    let kubernetes = server.dig(&["kubernetes.default.svc.cluster.local", "A"]);
    assert_eq!(
        kubernetes,
        ["kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"],
        "log:\n{}",
        server.log()
    );
    let catalog = server.dig(&["catalog-api.aikernel.svc.cluster.local", "A"]);
    assert_eq!(
        catalog,
        [format!(
            "catalog-api.aikernel.svc.cluster.local. 30 IN A {}",
            server.catalog_api_ip
        )]
    );
    assert_eq!(
        server.answer(&["_http._tcp.catalog-api.aikernel.svc.cluster.local", "SRV"]),
        ["0 100 8080 catalog-api.aikernel.svc.cluster.local."]
    );
    let reverse = format!("{}.in-addr.arpa", {
        let mut octets: Vec<&str> = server.catalog_api_ip.split('.').collect();
        octets.reverse();
        octets.join(".")
    });
    assert_eq!(
        server.answer(&[&reverse, "PTR"]),
        ["catalog-api.aikernel.svc.cluster.local."]
    );

    // Names outside the cluster: forwarded once, then answered from the cache; `cache 30` caps the
    // upstream's 300 s TTL at 30 s (as CoreDNS's cache does), and a hit carries the aged TTL.
    let first = server.dig(&["google.com", "A"]);
    assert_eq!(
        first,
        ["google.com. 30 IN A 192.0.2.80"],
        "log:\n{}",
        server.log()
    );
    let second = server.dig(&["google.com", "A"]);
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(ttls(&second)[0] <= 30, "{second:?}");
    let metrics = server.metrics();
    let hits: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("coredns_cache_hits_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(hits >= 1.0, "no cache hit counted:\n{metrics}");

    // The geographic name: each region's clients get that region's load balancer.
    for (service, address, network, _) in REGIONS {
        let subnet = format!("+subnet={network}");
        server.wait(
            Duration::from_secs(30),
            &format!("{service} for {network}"),
            || server.answer(&["api.aikernel.io", "A", &subnet]) == [address],
        );
        let lines = server.dig(&["api.aikernel.io", "A", &subnet]);
        assert_eq!(ttls(&lines), [30], "the geo block's ttl 30: {lines:?}");
        assert_eq!(
            server.answer(&[&format!("{service}.aikernel.io"), "A"]),
            [address],
            "the regional hostname answers its own region"
        );
    }
}

/// Issue 16, point 5, the reference deployment's failover with its own timings (checks every 10 s,
/// 3 failures, removal 30 s after the first failure, return after 1 pass), decided by the health
/// controller and followed by the DNS role through the verdict ConfigMap: when eu-west-1's endpoint
/// fails, European clients get the nearest healthy region (us-east-1), never before 30 s and within
/// 30 s + one interval + one timeout + 10 s of margin; when it recovers they get eu-west-1 back within
/// one interval + one timeout + 10 s. The verdict ConfigMap names the failed endpoint while it is out.
#[test]
fn a_failing_region_leaves_answers_after_the_reference_delay_and_returns() {
    let server = Reference::start();
    let europe = ["api.aikernel.io", "A", "+subnet=10.2.0.0/24"];
    server.wait(
        Duration::from_secs(30),
        "eu-west-1 for European clients",
        || server.answer(&europe) == ["192.0.2.2"],
    );
    // Let the endpoint pass a check first, so the failing run starts from a healthy verdict.
    server.wait(
        Duration::from_secs(30),
        "a first check of eu-west-1",
        || {
            server.backends[1]
                .requests
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        },
    );

    let failed_at = SystemTime::now();
    server.backends[1].set(FAILING);
    server.wait(Duration::from_secs(60), "failover to us-east-1", || {
        server.answer(&europe) != ["192.0.2.2"]
    });
    let removed_after = failed_at.elapsed().expect("clock");
    assert_eq!(
        server.answer(&europe),
        ["192.0.2.1"],
        "the nearest healthy region"
    );
    assert!(
        removed_after >= Duration::from_secs(30),
        "removed after {removed_after:?}, before the 30 s removal delay"
    );
    assert!(
        removed_after <= Duration::from_secs(30 + 10 + 3 + 10),
        "removed after {removed_after:?}"
    );
    assert_eq!(
        server.published_unhealthy(),
        [format!("aikernel/api-eu-west-1/{}", REGIONS[1].3)],
        "the controller's verdicts"
    );
    // The replica's view of them, on its `prometheus` address (the runbook's check).
    let metrics = server.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l == "signpost_health_verdicts_unhealthy 1"),
        "{metrics}"
    );

    let recovered_at = SystemTime::now();
    server.backends[1].set(HEALTHY);
    server.wait(Duration::from_secs(30), "eu-west-1 back", || {
        server.answer(&europe) == ["192.0.2.2"]
    });
    let returned_after = recovered_at.elapsed().expect("clock");
    assert!(
        returned_after <= Duration::from_secs(10 + 3 + 10),
        "returned after {returned_after:?}"
    );
}
