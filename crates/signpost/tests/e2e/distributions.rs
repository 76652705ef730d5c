//! The default Corefiles of kubeadm and k3s run unchanged (issue 11, done-when
//! 3), each in a network namespace of its own, so they can have port 53, 8080,
//! 8181 and 9153 as written, with the API server (the fake, as a process) in
//! the same namespace on 127.0.0.1:6443 and the pod's service account, the
//! node's `/etc/resolv.conf` and k3s's `/etc/coredns/NodeHosts` provided by a
//! private mount namespace (an overlay over `/etc`, a tmpfs over `/run`). The
//! `loop` plugin detects a loop built on loopback: `/etc/resolv.conf` naming
//! the server itself.
//!
//! Fixtures: kubeadm's `CoreDNSConfigMap` (Kubernetes 1.32 and later,
//! `cmd/kubeadm/app/phases/addons/dns/manifests.go`) and k3s's
//! `manifests/coredns.yaml`, rendered for `cluster.local`.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

pub const KUBEADM: &str = include_str!("data/corefiles/kubeadm.Corefile");
pub const K3S: &str = include_str!("data/corefiles/k3s.Corefile");

/// A network namespace with loopback up; removed (with its processes) on drop.
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
}

impl Netns {
    pub fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "signpost-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Self {
            name,
            children: Vec::new(),
        }
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Keeps `child` to kill it on drop.
    pub fn keep(&mut self, child: Child) -> u32 {
        let id = child.id();
        self.children.push(child);
        id
    }

    /// Waits for the kept process `id` to exit, up to `limit`.
    pub fn wait_exit(&mut self, id: u32, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = SystemTime::now() + limit;
        let child = self.children.iter_mut().find(|c| c.id() == id)?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if SystemTime::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// dig inside the namespace: (status line, answer lines).
    pub fn dig(&self, args: &[&str]) -> String {
        let output = self
            .command("dig")
            .args(["@127.0.0.1", "+time=2", "+tries=1"])
            .args(args)
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// GET `url` inside the namespace: the HTTP status (0 when it could not connect).
    pub fn http_status(&self, url: &str) -> u16 {
        let script = format!(
            "import urllib.request,urllib.error\ntry:\n print(urllib.request.urlopen('{url}', timeout=2).status)\nexcept urllib.error.HTTPError as e:\n print(e.code)\nexcept Exception:\n print(0)\n"
        );
        let output = self
            .command("python3")
            .args(["-c", &script])
            .output()
            .expect("run python3");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    pub fn http_body(&self, url: &str) -> String {
        let script = format!(
            "import urllib.request\nprint(urllib.request.urlopen('{url}', timeout=2).read().decode())\n"
        );
        let output = self
            .command("python3")
            .args(["-c", &script])
            .output()
            .expect("run python3");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("run a setup command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The fake API server's binary, built beside `signpost` by `cargo test --workspace`.
fn fake_binary() -> PathBuf {
    let path = crate::support::binary().with_file_name("signpost-fake-apiserver");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p signpost-fakes` (scripts/test does)",
        path.display()
    );
    path
}

/// A cluster in a namespace: the fake API server on 127.0.0.1:6443 holding
/// `objects` (applied with kubectl), and `signpost dns` started as a kubeadm
/// or k3s node would start CoreDNS. The node's upstream resolver is a
/// `knotd` in a second namespace at 10.77.0.2, over a veth pair (the node is
/// 10.77.0.1), serving `example.` with `www.example. A 192.0.2.80`.
pub struct Node {
    pub netns: Netns,
    pub upstream: Netns,
    pub dir: tempfile::TempDir,
    pub signpost: u32,
}

/// The node's resolv.conf pointing at the upstream namespace.
pub const UPSTREAM_RESOLV: &str = "nameserver 10.77.0.2\n";

impl Node {
    /// `resolv` is the node's /etc/resolv.conf; `etc` files go under /etc.
    pub fn start(corefile: &str, resolv: &str, etc: &[(&str, &str)], objects: &str) -> Self {
        let mut netns = Netns::new();
        let mut upstream = Netns::new();
        let dir = tempfile::tempdir().expect("tempdir");
        // The link between the two namespaces.
        static LINKS: AtomicU32 = AtomicU32::new(0);
        let link = format!(
            "sp{}x{}",
            std::process::id() % 100_000,
            LINKS.fetch_add(1, Ordering::Relaxed)
        );
        let (near, far) = (format!("{link}a"), format!("{link}b"));
        run_ok(
            Command::new("ip").args(["link", "add", &near, "type", "veth", "peer", "name", &far]),
        );
        run_ok(Command::new("ip").args(["link", "set", &near, "netns", &netns.name]));
        run_ok(Command::new("ip").args(["link", "set", &far, "netns", &upstream.name]));
        run_ok(Command::new("ip").args([
            "-n",
            &netns.name,
            "addr",
            "add",
            "10.77.0.1/30",
            "dev",
            &near,
        ]));
        run_ok(Command::new("ip").args([
            "-n",
            &upstream.name,
            "addr",
            "add",
            "10.77.0.2/30",
            "dev",
            &far,
        ]));
        run_ok(Command::new("ip").args(["-n", &netns.name, "link", "set", &near, "up"]));
        run_ok(Command::new("ip").args(["-n", &upstream.name, "link", "set", &far, "up"]));
        let knot_dir = dir.path().join("knot");
        std::fs::create_dir_all(&knot_dir).expect("mkdir");
        std::fs::write(
            knot_dir.join("example.zone"),
            "$ORIGIN example.\n$TTL 300\n@ SOA ns.example. hostmaster.example. 1 3600 600 86400 300\n@ NS ns.example.\nns A 10.77.0.2\nwww A 192.0.2.80\n",
        )
        .expect("zone file");
        let knot = knot_dir.display();
        std::fs::write(
            knot_dir.join("knot.conf"),
            format!("server:\n    listen: 10.77.0.2@53\n    rundir: {knot}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\ndatabase:\n    storage: {knot}/db\ntemplate:\n  - id: default\n    zonefile-sync: -1\n    journal-content: none\nzone:\n  - domain: example.\n    file: {knot}/example.zone\n"),
        )
        .expect("knot.conf");
        let knotd = upstream
            .command("knotd")
            .arg("-c")
            .arg(knot_dir.join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start knotd (Debian package knot)");
        upstream.keep(knotd);
        let fake_dir = dir.path().join("apiserver");
        std::fs::create_dir_all(&fake_dir).expect("mkdir");
        let mut fake = netns
            .command(fake_binary().to_str().expect("utf-8 path"))
            .args(["--listen", "127.0.0.1:6443", "--dir"])
            .arg(&fake_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the fake API server");
        let mut first = String::new();
        BufReader::new(fake.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read the listening line");
        assert!(
            first.starts_with("listening https://127.0.0.1:6443"),
            "{first}"
        );
        netns.keep(fake);
        std::fs::write(dir.path().join("objects.yaml"), objects).expect("write objects");
        let applied = netns
            .command("kubectl")
            .arg("--kubeconfig")
            .arg(fake_dir.join("kubeconfig"))
            .args(["apply", "--validate=false", "-f"])
            .arg(dir.path().join("objects.yaml"))
            .output()
            .expect("run kubectl");
        assert!(
            applied.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
        // The node's files: the Corefile and friends under /etc/coredns, resolv.conf.
        let etc_files = dir.path().join("etc");
        let mut all: Vec<(String, String)> = vec![
            ("coredns/Corefile".to_owned(), corefile.to_owned()),
            ("resolv.conf".to_owned(), resolv.to_owned()),
        ];
        all.extend(etc.iter().map(|(p, c)| ((*p).to_owned(), (*c).to_owned())));
        for (path, contents) in &all {
            let full = etc_files.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, contents).expect("write");
        }
        let account = dir.path().join("serviceaccount");
        std::fs::create_dir_all(&account).expect("mkdir");
        std::fs::copy(fake_dir.join("ca.crt"), account.join("ca.crt")).expect("copy ca");
        std::fs::write(account.join("token"), "node-token").expect("token");
        std::fs::write(account.join("namespace"), "kube-system").expect("namespace");
        let log = std::fs::File::create(dir.path().join("signpost.log")).expect("log");
        let d = dir.path().display();
        let script = format!(
            "set -e\n\
             mkdir -p {d}/upper {d}/work\n\
             mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/upper,workdir={d}/work /etc\n\
             rm -f /etc/resolv.conf\n\
             cp -r {d}/etc/. /etc/\n\
             mount -t tmpfs tmpfs /run\n\
             mkdir -p /run/secrets/kubernetes.io\n\
             cp -r {d}/serviceaccount /run/secrets/kubernetes.io/serviceaccount\n\
             exec {} dns --conf /etc/coredns/Corefile",
            crate::support::binary().display()
        );
        let child = netns
            .command("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", "6443")
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start signpost in the namespace");
        let signpost = netns.keep(child);
        Self {
            netns,
            upstream,
            dir,
            signpost,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("signpost.log")).unwrap_or_default()
    }

    /// Waits for `/ready` on :8181 (panics with the log after a generous deadline).
    pub fn wait_ready(&self) {
        let deadline = SystemTime::now() + Duration::from_secs(60);
        while self.netns.http_status("http://127.0.0.1:8181/ready") != 200 {
            assert!(
                SystemTime::now() < deadline,
                "not ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The answer section of `dig` (short form), sorted.
    pub fn short(&self, name: &str, qtype: &str) -> Vec<String> {
        let output = self.netns.dig(&["+short", name, qtype]);
        let mut lines: Vec<String> = output.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }

    pub fn status(&self, name: &str, qtype: &str) -> String {
        let output = self.netns.dig(&[name, qtype]);
        output
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .map(|s| s.split(',').next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| format!("no answer: {output}"))
    }
}

/// A namespace, a ClusterIP Service, a headless one with an EndpointSlice.
const OBJECTS: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20]
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: default
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
endpoints:
- addresses: [10.1.2.3]
  conditions: {ready: true}
ports: [{name: pg, port: 5432, protocol: TCP}]
";

fn check_cluster_answers(node: &Node) {
    assert_eq!(
        node.short("web.default.svc.cluster.local", "A"),
        ["10.96.0.20"]
    );
    assert_eq!(
        node.short("db.default.svc.cluster.local", "A"),
        ["10.1.2.3"]
    );
    assert_eq!(
        node.short("_pg._tcp.db.default.svc.cluster.local", "SRV"),
        ["0 100 5432 10-1-2-3.db.default.svc.cluster.local."]
    );
    assert_eq!(
        node.short("20.0.96.10.in-addr.arpa", "PTR"),
        ["web.default.svc.cluster.local."]
    );
    // pods insecure: any dashed address in a namespace that exists.
    assert_eq!(
        node.short("10-9-8-7.default.pod.cluster.local", "A"),
        ["10.9.8.7"]
    );
    assert_eq!(
        node.status("nothing.default.svc.cluster.local", "A"),
        "NXDOMAIN"
    );
    // Names outside the cluster go to /etc/resolv.conf's nameserver.
    assert_eq!(node.short("www.example", "A"), ["192.0.2.80"]);
    assert_eq!(node.netns.http_status("http://127.0.0.1:8080/health"), 200);
    let metrics = node.netns.http_body("http://127.0.0.1:9153/metrics");
    assert!(
        metrics.contains("coredns_dns_requests_total{server=\"dns://0.0.0.0:53\""),
        "{metrics}"
    );
}

/// kubeadm's Corefile, unchanged: cluster answers from the API server through
/// the pod's service account, health on :8080, ready on :8181, metrics on
/// :9153, forwarding to the node's resolv.conf; SIGTERM starts the 5 s
/// lameduck (answers go on, `/ready` fails) and the process exits after it.
#[test]
fn kubeadm_default_corefile_runs_unchanged() {
    let mut node = Node::start(KUBEADM, UPSTREAM_RESOLV, &[], OBJECTS);
    node.wait_ready();
    check_cluster_answers(&node);
    assert!(!node.log().contains("Loop ("), "{}", node.log());
    // Lameduck: SIGTERM, then answers for 5 s with /ready failing.
    let terminated = SystemTime::now();
    let _ = Command::new("kill")
        .args(["-TERM", &node.signpost.to_string()])
        .status();
    let deadline = SystemTime::now() + Duration::from_secs(3);
    while node.netns.http_status("http://127.0.0.1:8181/ready") == 200 {
        assert!(
            SystemTime::now() < deadline,
            "/ready still 200 after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        node.short("web.default.svc.cluster.local", "A"),
        ["10.96.0.20"]
    );
    let status = node
        .netns
        .wait_exit(node.signpost, Duration::from_secs(30))
        .expect("exits after the lameduck");
    assert!(status.success(), "{status:?}; log:\n{}", node.log());
    let took = terminated.elapsed().unwrap_or_default();
    assert!(
        took >= Duration::from_secs(5),
        "stopped after {took:?}, before the 5 s lameduck"
    );
}

/// k3s's Corefile, unchanged: node names from /etc/coredns/NodeHosts, and
/// imports of /etc/coredns/custom that match nothing. Without a `ttl` line
/// records get signpost's default of 30 s (CoreDNS's is 5; the difference is
/// documented in docs/kubernetes.md).
#[test]
fn k3s_default_corefile_runs_unchanged() {
    let node = Node::start(
        K3S,
        UPSTREAM_RESOLV,
        &[("coredns/NodeHosts", "10.0.0.5 node-1\n")],
        OBJECTS,
    );
    node.wait_ready();
    check_cluster_answers(&node);
    assert_eq!(node.short("node-1", "A"), ["10.0.0.5"]);
    let answer = node
        .netns
        .dig(&["web.default.svc.cluster.local", "A", "+noall", "+answer"]);
    let fields: Vec<&str> = answer.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "web.default.svc.cluster.local.",
            "30",
            "IN",
            "A",
            "10.96.0.20"
        ],
        "{answer}"
    );
}

/// `loop` (CoreDNS semantics): with the node's resolv.conf naming the server
/// itself, the probe comes back through `forward`, and signpost stops with
/// status 1 and says why.
#[test]
fn loop_is_detected_and_fatal() {
    let mut node = Node::start(KUBEADM, "nameserver 127.0.0.1\n", &[], OBJECTS);
    let status = node
        .netns
        .wait_exit(node.signpost, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("still running; log:\n{}", node.log()));
    assert_eq!(status.code(), Some(1), "log:\n{}", node.log());
    let log = node.log();
    assert!(
        log.contains("plugin/loop: Loop (") && log.contains("detected for zone \".\""),
        "{log}"
    );
}
