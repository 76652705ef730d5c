//! kubectl (found on PATH; `scripts/test` installs it) against the fake over TLS with a bearer token
//! from the generated kubeconfig: discovery, OpenAPI-based validation, Table output, JSON output, watch,
//! create and delete.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use signpost_fakes::{AuthConfig, FakeApiServer, ServerOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{DEADLINE, service, start};

const MANIFEST: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abcde
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 80, protocol: TCP}
endpoints:
- addresses: [10.1.0.1]
- addresses: [10.1.0.2]
";

struct Kubectl<'a> {
    server: &'a FakeApiServer,
}

impl Kubectl<'_> {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig_path())
            .args(args)
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl to completion: (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} finishes"))
            .expect("kubectl runs (scripts/test installs it)");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.run(args).await;
        assert!(success, "kubectl {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }
}

/// kubectl create -f, get -A -o json, get endpointslices, get --watch, delete, and the NotFound message,
/// each checked against the output kubectl prints for a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_fidelity() {
    let auth = AuthConfig::from_json(
        r#"{"users": [{"token": "admin-token", "user": "kubernetes-admin",
             "rules": [{"verbs": ["*"], "resources": ["*"]}]}]}"#,
    )
    .unwrap();
    let server = start(ServerOptions {
        auth: Some(auth),
        ..ServerOptions::default()
    })
    .await;
    let kubectl = Kubectl { server: &server };
    let manifest = server.dir().join("web.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();

    let created = kubectl
        .ok(&["create", "-f", manifest.to_str().unwrap()])
        .await;
    assert_eq!(
        created,
        "service/web created\nendpointslice.discovery.k8s.io/web-abcde created\n"
    );

    let listed: Value =
        serde_json::from_str(&kubectl.ok(&["get", "svc", "-A", "-o", "json"]).await).unwrap();
    assert_eq!(listed["kind"], "List");
    let web = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metadata"]["name"] == "web")
        .expect("web listed");
    assert_eq!(web["kind"], "Service", "kubectl restores each item's kind");
    assert_eq!(web["spec"]["type"], "ClusterIP");
    assert!(
        web["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96.")
    );

    let slices = kubectl
        .ok(&["get", "endpointslices", "-n", "default"])
        .await;
    let mut lines = slices.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web-abcde", "IPv4", "80", "10.1.0.1,10.1.0.2"]);

    // get --watch: the table of current services, then a row per change; kill it after that.
    let mut watch = kubectl
        .command(&["get", "svc", "-n", "default", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    let mut output = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(DEADLINE, output.next_line())
            .await
            .expect("kubectl prints within the deadline")
            .unwrap()
            .expect("kubectl still running")
    };
    let header: Vec<String> = next_line()
        .await
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(next_line().await.starts_with("web "));
    // The watch request is open once the server has logged it; then create a service.
    server
        .wait_for_request(|r| r.verb.as_deref() == Some("watch"), DEADLINE)
        .await
        .expect("kubectl watches");
    server.create(service("default", "second")).unwrap();
    let row = next_line().await;
    assert!(row.starts_with("second "), "watch row: {row}");
    assert!(row.contains("ClusterIP") && row.contains("80/TCP"), "{row}");
    watch.kill().await.unwrap();

    let deleted = kubectl.ok(&["delete", "svc", "web"]).await;
    assert_eq!(deleted, "service \"web\" deleted\n");
    let (success, _, stderr) = kubectl.run(&["get", "svc", "web"]).await;
    assert!(!success);
    assert_eq!(
        stderr.trim(),
        "Error from server (NotFound): services \"web\" not found"
    );

    // Every request carried the kubeconfig's token.
    assert!(
        server
            .request_log()
            .iter()
            .all(|r| r.user.as_deref() == Some("kubernetes-admin"))
    );
}
