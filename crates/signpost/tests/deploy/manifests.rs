//! Issue 16, point 1: the six manifests validate as the API server would check them, and each role's
//! configuration in them is accepted by the role itself.

use crate::common::{
    MANIFESTS, documents, manifest_path, object, read, repo, run, run_ok, shown, signpost,
};
use serde_json::{Value, json};
use std::process::Command;

/// The validator: kubernetes-validate for built-in kinds, the vendored CRD schemas for the
/// Prometheus Operator's kinds (`crates/signpost/tests/deploy/validate_manifests.py`).
fn validator(files: &[std::path::PathBuf]) -> Command {
    let mut command = Command::new("python3");
    command
        .arg(repo().join("crates/signpost/tests/deploy/validate_manifests.py"))
        .arg(repo().join("deploy/monitoring/schemas"))
        .args(files);
    command
}

/// Issue 16, point 1: every document of the six files validates, strictly (unknown fields are
/// errors), against Kubernetes 1.28 (the oldest supported) and the newest schema kubernetes-validate
/// ships; ServiceMonitors and the PrometheusRule against the Prometheus Operator's CRD schemas.
#[test]
fn every_manifest_validates_against_kubernetes_1_28_the_newest_schemas_and_the_crds() {
    let files: Vec<_> = MANIFESTS.iter().map(|name| manifest_path(name)).collect();
    let output = run_ok(&mut validator(&files));
    let report = String::from_utf8_lossy(&output.stdout);
    // Every document was checked: twice (two versions) for built-in kinds, once for CRD kinds.
    for file in &files {
        for document in documents(file) {
            let name = document["metadata"]["name"].as_str().expect("name");
            let kind = document["kind"].as_str().expect("kind");
            let checks = report
                .lines()
                .filter(|line| {
                    line.starts_with("ok ") && line.contains(&format!(" {kind}/{name} "))
                })
                .filter(|line| line.contains(&file.display().to_string()))
                .count();
            let expected = if document["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
            {
                1
            } else {
                2
            };
            assert_eq!(
                checks,
                expected,
                "{kind}/{name} of {}:\n{report}",
                file.display()
            );
        }
    }
    assert!(report.contains("against Kubernetes 1.28.0"), "{report}");
}

/// The validator fails where the API server would: an unknown field in a ServiceMonitor (strict
/// field validation of a structural CRD schema), a wrong type in a Deployment, an unknown field in a
/// PrometheusRule rule. Without this, a validator that accepts everything would pass the test above.
#[test]
fn the_validator_rejects_what_the_api_server_rejects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut monitoring = documents(&manifest_path("dns-monitoring.yaml"));
    monitoring[0]["spec"]["endpoints"][0]["scrapeIntervall"] = json!("15s");
    monitoring[3]["spec"]["groups"][0]["rules"][0]["severity"] = json!("critical");
    let mut deployment = documents(&manifest_path("coredns-deployment.yaml"));
    let index = deployment
        .iter()
        .position(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    deployment[index]["spec"]["replicas"] = json!("three");
    for (name, docs) in [
        ("monitoring.yaml", &monitoring),
        ("deployment.yaml", &deployment),
    ] {
        let text: Vec<String> = docs
            .iter()
            .map(|d| serde_yaml_ng::to_string(d).expect("yaml"))
            .collect();
        std::fs::write(dir.path().join(name), text.join("---\n")).expect("write");
    }
    let output = run(&mut validator(&[
        dir.path().join("monitoring.yaml"),
        dir.path().join("deployment.yaml"),
    ]));
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", shown(&output));
    for expected in [
        "ServiceMonitor/coredns-custom against the ServiceMonitor CRD schema: spec.endpoints.0: Additional properties are not allowed ('scrapeIntervall'",
        "PrometheusRule/dns-service-discovery against the PrometheusRule CRD schema: spec.groups.0.rules.0: Additional properties are not allowed ('severity'",
        "Deployment/coredns-custom against Kubernetes 1.28.0: spec.replicas",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
}

/// The reference deployment's numbers and names, as the manifests carry them: 3 replicas, HPA 3-10 at
/// 70 % CPU / 80 % memory, requests and limits per role, probes on /ready and /health, a PDB, the
/// Secret's key names, the names the runbook's commands use (`-l app=coredns`, `svc/coredns-custom`,
/// `deploy/external-dns`, `svc/dns-health-controller` on 8080), and the Corefile's TTL, cache and
/// upstreams.
#[test]
fn the_manifests_carry_the_reference_deployment_settings() {
    let dns = object("coredns-deployment.yaml", "Deployment", "coredns-custom");
    assert_eq!(dns["metadata"]["namespace"], "kube-system");
    assert_eq!(dns["spec"]["replicas"], 3);
    assert_eq!(
        dns["spec"]["template"]["metadata"]["labels"]["app"],
        "coredns"
    );
    let container = &dns["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}})
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(
        container["args"],
        json!(["dns", "--conf", "/etc/signpost/Corefile", "--workers", "2"])
    );
    assert!(
        dns["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_object(),
        "anti-affinity"
    );
    let hpa = object(
        "coredns-deployment.yaml",
        "HorizontalPodAutoscaler",
        "coredns-custom",
    );
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 10);
    let targets: Vec<(String, i64)> = hpa["spec"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            (
                m["resource"]["name"].as_str().expect("name").to_owned(),
                m["resource"]["target"]["averageUtilization"]
                    .as_i64()
                    .expect("target"),
            )
        })
        .collect();
    assert_eq!(targets, [("cpu".to_owned(), 70), ("memory".to_owned(), 80)]);
    object(
        "coredns-deployment.yaml",
        "PodDisruptionBudget",
        "coredns-custom",
    );
    let service = object("coredns-deployment.yaml", "Service", "coredns-custom");
    let ports: Vec<(i64, &str)> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().expect("port"),
                p["protocol"].as_str().expect("protocol"),
            )
        })
        .collect();
    assert_eq!(ports, [(53, "UDP"), (53, "TCP"), (9153, "TCP")]);

    let sync = object("external-dns.yaml", "Deployment", "external-dns");
    let container = &sync["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}})
    );
    let args = container["args"].as_array().expect("args");
    for flag in [
        "--domain-filter=aikernel.io",
        "--domain-filter=example.com",
        "--txt-cache-interval=30s",
        "--interval=30s",
        "--registry=txt",
        "--provider=aws",
        "--aws-zone-type=public",
    ] {
        assert!(
            args.iter().any(|a| a == flag),
            "external-dns args lack {flag}"
        );
    }
    // The Secret external-dns-credentials, mounted read-only where `--credentials-dir` reads it; no
    // key in the environment.
    assert!(
        args.iter()
            .any(|a| a == "--credentials-dir=/etc/signpost/credentials"),
        "external-dns args lack --credentials-dir"
    );
    assert_eq!(
        container["volumeMounts"],
        json!([{"name": "credentials", "mountPath": "/etc/signpost/credentials", "readOnly": true}])
    );
    assert_eq!(
        sync["spec"]["template"]["spec"]["volumes"][0],
        json!({"name": "credentials",
               "secret": {"secretName": "external-dns-credentials", "defaultMode": 0o440}})
    );
    assert_eq!(
        sync["spec"]["template"]["spec"]["securityContext"]["fsGroup"],
        65532
    );
    assert!(container["env"].is_null(), "no credentials in env");

    let health = object(
        "dns-health-controller.yaml",
        "Deployment",
        "dns-health-controller",
    );
    let container = &health["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
    );
    let service = object(
        "dns-health-controller.yaml",
        "Service",
        "dns-health-controller",
    );
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    // The controller writes exactly the objects its Role grants by name, and the manifest creates
    // them; the DNS replicas may read the verdicts.
    let args = health_arguments();
    let named = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{flag}=")))
            .unwrap_or_else(|| panic!("health args lack --{flag}"))
            .to_owned()
    };
    let (verdicts, lease) = (named("verdicts"), named("lease"));
    object("dns-health-controller.yaml", "ConfigMap", &verdicts);
    object("dns-health-controller.yaml", "Lease", &lease);
    let role = object(
        "dns-health-controller.yaml",
        "Role",
        "dns-health-controller",
    );
    let grants: Vec<(String, Value)> = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["resources"][0].as_str().expect("resource").to_owned(),
                r["resourceNames"].clone(),
            )
        })
        .collect();
    assert_eq!(
        grants,
        [
            ("configmaps".to_owned(), json!([verdicts])),
            ("leases".to_owned(), json!([lease]))
        ]
    );
    // Readiness gates: Pods are read and only their status is patched (nothing else of a Pod is
    // written, nothing but `patch` on the status).
    let checks = object(
        "dns-health-controller.yaml",
        "ClusterRole",
        "signpost-health",
    );
    let pod_rules: Vec<&Value> = checks["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| {
            r["resources"].as_array().is_some_and(|list| {
                list.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.starts_with("pods")))
            })
        })
        .collect();
    assert_eq!(
        pod_rules,
        [
            &json!({"apiGroups": [""], "resources": ["services", "namespaces", "pods"],
                    "verbs": ["get", "list", "watch"]}),
            &json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]})
        ]
    );
    // The DNS replicas read that object and nothing else of kube-system; their Corefile follows it.
    let reader = object("coredns-deployment.yaml", "Role", "signpost-dns-verdicts");
    assert_eq!(
        reader["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [verdicts],
                "verbs": ["get", "list", "watch"]}])
    );
    let binding = object(
        "coredns-deployment.yaml",
        "RoleBinding",
        "signpost-dns-verdicts",
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "coredns-custom", "namespace": "kube-system"}])
    );
    // The checks' timings are the controller's: 10 s interval, 3 s timeout, 3 failures, 1 success,
    // 30 s removal delay.
    let config = object(
        "dns-health-controller.yaml",
        "ConfigMap",
        "dns-health-controller-config",
    );
    let config: Value =
        serde_yaml_ng::from_str(config["data"]["config.yaml"].as_str().expect("config.yaml"))
            .expect("config.yaml is YAML");
    assert_eq!(
        config,
        json!({"healthCheck": {"interval": "10s", "timeout": "3s", "failureThreshold": 3,
                               "successThreshold": 1},
               "endpoints": {"healthCheckPath": "/health", "removeUnhealthyDelay": "30s"}})
    );

    let corefile = corefile();
    for line in [
        "ttl 30",
        "success 9984 30",
        "denial 9984 30",
        "prefetch 10 60s",
        "forward . 8.8.8.8 8.8.4.4 1.1.1.1 {",
        "lameduck 5s",
        &format!("verdicts kubernetes kube-system/{verdicts}"),
    ] {
        assert!(
            corefile.lines().any(|l| l.trim() == line),
            "the Corefile lacks {line:?}:\n{corefile}"
        );
    }
}

/// The Corefile of the `coredns-custom` ConfigMap.
pub(crate) fn corefile() -> String {
    object("coredns-config.yaml", "ConfigMap", "coredns-custom")["data"]["Corefile"]
        .as_str()
        .expect("Corefile")
        .to_owned()
}

/// Issue 16, point 1: the Corefile inside the ConfigMap passes `signpost check` (every directive and
/// option known and valid, each problem reported with file:line otherwise).
#[test]
fn the_corefile_in_the_config_map_passes_signpost_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    std::fs::write(&path, corefile()).expect("write");
    let output = run_ok(signpost().arg("check").arg("--conf").arg(&path));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("configuration is valid")
            || String::from_utf8_lossy(&output.stderr).contains("configuration is valid"),
        "{}",
        shown(&output)
    );
}

/// Issue 16, point 1: the health controller's configuration passes `signpost health --validate`,
/// both as the ConfigMap manifest and as the `config.yaml` the pod mounts, the latter with the
/// Deployment's own arguments (so its flags parse too).
#[test]
fn the_health_controller_config_passes_signpost_health_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_map = object(
        "dns-health-controller.yaml",
        "ConfigMap",
        "dns-health-controller-config",
    );
    let manifest = dir.path().join("dns-health-controller-config.yaml");
    std::fs::write(
        &manifest,
        serde_yaml_ng::to_string(&config_map).expect("yaml"),
    )
    .expect("write");
    let mounted = dir.path().join("config.yaml");
    std::fs::write(
        &mounted,
        config_map["data"]["config.yaml"]
            .as_str()
            .expect("config.yaml"),
    )
    .expect("write");
    run_ok(
        signpost()
            .args(["health", "--validate", "--config"])
            .arg(&manifest),
    );
    let mut args = health_arguments();
    let config = args
        .iter_mut()
        .find(|a| a.starts_with("--config="))
        .expect("--config=");
    assert_eq!(config, "--config=/etc/dns-health-controller/config.yaml");
    *config = format!("--config={}", mounted.display());
    run_ok(signpost().arg("health").args(&args).arg("--validate"));
}

/// The geographic example's Services with the addresses a cloud load balancer would have given
/// them, `<network>.1` to `.3` (use a documentation range).
pub(crate) fn geographic_services_with_addresses(network: &str) -> Vec<Value> {
    documents(&manifest_path("geographic-routing.yaml"))
        .into_iter()
        .filter(|d| d["kind"] == "Service")
        .enumerate()
        .map(|(index, mut service)| {
            service["spec"]["clusterIP"] = json!(format!("10.96.50.{}", index + 1));
            service["status"] =
                json!({"loadBalancer": {"ingress": [{"ip": format!("{network}.{}", index + 1)}]}});
            service
        })
        .collect()
}

/// Issue 16, point 1: the sync arguments of external-dns.yaml are accepted as written: every flag is
/// one `signpost sync` knows (its `--help` lists it), and the arguments, with only the provider swapped
/// for a loopback one (`inmemory`) and the objects given as a catalog, run one dry reconciliation that
/// plans the geographic example's regional hostnames.
#[test]
fn the_sync_arguments_are_accepted_and_plan_the_records() {
    let args = sync_arguments();
    let help = run_ok(signpost().args(["sync", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout);
    for arg in &args {
        let flag = arg.split('=').next().expect("flag");
        assert!(
            help.contains(&format!("{flag} "))
                || help.contains(&format!("{flag}="))
                || help.contains(&format!("{flag}\n")),
            "`signpost sync --help` does not list {flag}:\n{help}"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_ok(
        sync_with_loopback_provider(&args, dir.path(), &[], "192.0.2").args([
            "--provider=inmemory",
            "--inmemory-zone=aikernel.io",
            "--metrics-address=127.0.0.1:0",
            "--once",
            "--dry-run",
        ]),
    );
    let log = shown(&output);
    for name in [
        "api-us-east-1.aikernel.io",
        "api-eu-west-1.aikernel.io",
        "api-ap-southeast-1.aikernel.io",
    ] {
        assert!(
            log.contains(name),
            "the dry run plans no record for {name}:\n{log}"
        );
    }
}

/// Issue 16, point 1: external-dns.yaml's sync arguments run as written against Route 53: moto's
/// server on loopback (`AWS_ENDPOINT_URL_ROUTE_53`) holds the public zone aikernel.io, the Secret's
/// two keys are files in a directory `--credentials-dir` points at, and only that directory,
/// `--metrics-address` and the source (a catalog of the geographic example's Services) differ from
/// the manifest. One reconciliation (`--once`) writes the three regional hostnames, with their
/// ownership records, into the zone, and the secret key is in none of the output.
#[test]
fn the_sync_arguments_write_route53_with_the_mounted_credentials() {
    let args = sync_arguments();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port();
    let moto_log = std::fs::File::create(dir.path().join("moto.log")).expect("log");
    let moto = MotoServer(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::from(
                moto_log.try_clone().expect("log"),
            ))
            .stderr(std::process::Stdio::from(moto_log))
            .spawn()
            .expect("moto_server (scripts/test installs PyPI moto[server])"),
    );
    let url = format!("http://127.0.0.1:{port}");
    // moto routes a request to its Route 53 backend by the signature's scope (it checks no signature).
    let call = |method: &str, path: &str, body: &str| -> Option<(u16, String)> {
        let output = Command::new("curl")
            .args(["-sS", "-X", method, "-w", "\n%{http_code}", "-H"])
            .arg(
                "Authorization: AWS4-HMAC-SHA256 Credential=AKIADEPLOYTEST000001/20260101/\
                 us-east-1/route53/aws4_request, SignedHeaders=host, Signature=00",
            )
            .args(["-H", "Content-Type: text/xml"])
            .args(["--data-binary", body])
            .arg(format!("{url}{path}"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n')?;
        Some((status.trim().parse().ok()?, body.to_owned()))
    };
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    while !matches!(call("GET", "/2013-04-01/hostedzone", ""), Some((200, _))) {
        assert!(
            std::time::SystemTime::now() < deadline,
            "moto_server did not start: {}",
            read(&dir.path().join("moto.log"))
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, created) = call(
        "POST",
        "/2013-04-01/hostedzone",
        "<CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Name>aikernel.io.</Name><CallerReference>deploy-test</CallerReference>\
         </CreateHostedZoneRequest>",
    )
    .expect("create the zone");
    assert!(status < 300, "create the zone: {status} {created}");
    let zone = created
        .split("<Id>/hostedzone/")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no zone id in {created}"))
        .to_owned();

    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).expect("mkdir");
    const SECRET: &str = "deployTestSecretKey0123456789abcdefABCDEF";
    std::fs::write(
        credentials.join("aws-access-key-id"),
        "AKIADEPLOYTEST000001",
    )
    .expect("key");
    std::fs::write(credentials.join("aws-secret-access-key"), SECRET).expect("secret");
    let output = run_ok(
        sync_with_loopback_provider(&args, dir.path(), &[], "192.0.2")
            .args(
                args.iter()
                    .filter(|a| a.starts_with("--provider=") || a.starts_with("--aws-")),
            )
            .arg(format!("--credentials-dir={}", credentials.display()))
            .args(["--metrics-address=127.0.0.1:0", "--once"])
            .env("AWS_ENDPOINT_URL_ROUTE_53", &url)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none")),
    );
    let log = shown(&output);
    assert!(
        !log.contains(SECRET),
        "the secret key is in the output:\n{log}"
    );
    let (_, records) =
        call("GET", &format!("/2013-04-01/hostedzone/{zone}/rrset"), "").expect("list the zone");
    for (index, region) in ["us-east-1", "eu-west-1", "ap-southeast-1"]
        .iter()
        .enumerate()
    {
        let name = format!("<Name>api-{region}.aikernel.io.</Name>");
        assert!(
            records.contains(&name),
            "{name} not written:\n{records}\nsync:\n{log}"
        );
        assert!(
            records.contains(&format!("<Value>192.0.2.{}</Value>", index + 1)),
            "192.0.2.{} not written:\n{records}",
            index + 1
        );
    }
    assert!(
        records.contains("heritage=external-dns,external-dns/owner=aikernel"),
        "no ownership records:\n{records}"
    );
    drop(moto);
}

/// `moto_server`, killed on drop.
struct MotoServer(std::process::Child);

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The manifest's sync arguments without the provider's flags (and `--credentials-dir`),
/// `--metrics-address` and the flags
/// named in `replaced` (the caller gives a loopback provider, an address and the replacements),
/// reading the geographic example's Services, at `<network>.1` to `.3`, from a catalog in `dir`.
pub(crate) fn sync_with_loopback_provider(
    args: &[String],
    dir: &std::path::Path,
    replaced: &[&str],
    network: &str,
) -> Command {
    let catalog: Vec<String> = geographic_services_with_addresses(network)
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).expect("yaml"))
        .collect();
    let path = dir.join(format!("services-{network}.yaml"));
    std::fs::write(&path, catalog.join("---\n")).expect("write catalog");
    let kept = args.iter().filter(|a| {
        let flag = a.split('=').next().unwrap_or_default();
        !flag.starts_with("--aws-")
            && !["--provider", "--credentials-dir", "--metrics-address"].contains(&flag)
            && !replaced.contains(&flag)
    });
    let mut command = signpost();
    command
        .arg("sync")
        .args(kept)
        .arg(format!("--catalog={}", path.display()))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    command
}

/// The container arguments of coredns-deployment.yaml, with the `--conf` path (the ConfigMap's
/// mount) replaced by `conf`.
pub(crate) fn dns_arguments(conf: &std::path::Path) -> Vec<String> {
    let deployment = object("coredns-deployment.yaml", "Deployment", "coredns-custom");
    let mut args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_owned())
        .collect();
    assert_eq!(args[0], "dns");
    let at = args.iter().position(|a| a == "--conf").expect("--conf");
    assert_eq!(args[at + 1], "/etc/signpost/Corefile");
    args[at + 1] = conf.display().to_string();
    args
}

/// The container arguments of dns-health-controller.yaml, after `health`.
pub(crate) fn health_arguments() -> Vec<String> {
    let deployment = object(
        "dns-health-controller.yaml",
        "Deployment",
        "dns-health-controller",
    );
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_owned())
        .collect();
    assert_eq!(args[0], "health");
    args[1..].to_vec()
}

/// The container arguments of external-dns.yaml, after `sync`.
pub(crate) fn sync_arguments() -> Vec<String> {
    let deployment = object("external-dns.yaml", "Deployment", "external-dns");
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_owned())
        .collect();
    assert_eq!(args[0], "sync");
    args[1..].to_vec()
}

/// The manifests reference one image, the one `make docker-build` tags (the workspace version).
#[test]
fn every_role_runs_the_image_make_builds() {
    let version = read(&repo().join("Cargo.toml"))
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("workspace version")
        .to_owned();
    let expected = format!("ghcr.io/aikernel/signpost:{version}");
    let mut seen = 0;
    for file in MANIFESTS {
        for document in documents(&manifest_path(file)) {
            if document["kind"] == "Deployment" {
                for container in document["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .expect("containers")
                {
                    assert_eq!(container["image"], expected.as_str(), "{file}");
                    seen += 1;
                }
            }
        }
    }
    assert_eq!(seen, 3, "one container per role");
}
