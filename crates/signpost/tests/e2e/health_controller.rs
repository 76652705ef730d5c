//! `signpost health`, the standalone health controller shared by many DNS
//! replicas (issue 12), end to end: the real binary as two controllers and
//! three `signpost dns` replicas against the fake Kubernetes API server of
//! `crates/fakes` (no real kube-apiserver runs here), 200 endpoints served
//! by this test on loopback addresses.

use crate::kubernetes::FakeCluster;
use crate::support::{TestServer, binary, free_port, http_get, query_bytes};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};
use signpost_fakes::{AuthConfig, Rule, ServerOptions, UserConfig};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const NAMESPACE: &str = "health-e2e";
const SERVICES: usize = 4;
const PER_SERVICE: usize = 50;
pub(crate) const LEASE: &str = "signpost-health";
pub(crate) const VERDICTS: &str = "signpost-health-verdicts";

// The test configuration's timings: a short interval and removal delay so the
// run stays under a minute; the bounds below are stated with these numbers.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);
pub(crate) const DELAY: Duration = Duration::from_secs(3);
pub(crate) const LEASE_DURATION: Duration = Duration::from_secs(3);
const CONFIG: &str = "# The reference deployment's keys, with test timings.
healthCheck:
  interval: 1s
  timeout: 500ms
  failureThreshold: 3
  successThreshold: 1
endpoints:
  healthCheckPath: /health
  removeUnhealthyDelay: 3s
leaderElection:
  leaseDuration: 3s
  renewDeadline: 2s
  retryPeriod: 500ms
";

/// The controller's RBAC as docs/health-controller.md gives it: read
/// services, endpointslices, namespaces and pods; patch pods/status (the
/// readiness gates); get, list, watch and update of the one verdict
/// ConfigMap and the one Lease, by name (both created beforehand, so no
/// `create`).
pub(crate) fn controller_rules() -> Vec<Rule> {
    vec![
        rule(
            &["get", "list", "watch"],
            "",
            &["services", "namespaces", "pods"],
            &[],
        ),
        rule(&["patch"], "", &["pods/status"], &[]),
        rule(
            &["get", "list", "watch"],
            "discovery.k8s.io",
            &["endpointslices"],
            &[],
        ),
        rule(
            &["get", "list", "watch", "update"],
            "",
            &["configmaps"],
            &[VERDICTS],
        ),
        rule(
            &["get", "list", "watch", "update"],
            "coordination.k8s.io",
            &["leases"],
            &[LEASE],
        ),
    ]
}

/// A DNS replica's: its cluster zone, and reading the verdict ConfigMap.
fn replica_rules() -> Vec<Rule> {
    vec![
        rule(
            &["get", "list", "watch"],
            "",
            &["services", "namespaces"],
            &[],
        ),
        rule(
            &["get", "list", "watch"],
            "discovery.k8s.io",
            &["endpointslices"],
            &[],
        ),
        rule(&["get", "list", "watch"], "", &["configmaps"], &[VERDICTS]),
    ]
}

pub(crate) fn rule(verbs: &[&str], group: &str, resources: &[&str], names: &[&str]) -> Rule {
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Rule {
        verbs: strings(verbs),
        api_groups: Some(vec![group.to_owned()]),
        resources: strings(resources),
        resource_names: strings(names),
        namespaces: if names.is_empty() {
            Vec::new()
        } else {
            vec!["kube-system".to_owned()]
        },
    }
}

// === the probed side ===

/// One HTTP listener per endpoint address on a common port, answering 200 or
/// 503 as the test says and counting the requests of each address.
pub(crate) struct Endpoints {
    pub(crate) addresses: Vec<Ipv4Addr>,
    pub(crate) port: u16,
    failing: Arc<Vec<AtomicBool>>,
    probes: Arc<Vec<AtomicU64>>,
    _runtime: tokio::runtime::Runtime,
}

impl Endpoints {
    pub(crate) fn start(count: usize) -> Self {
        let addresses: Vec<Ipv4Addr> = (0..count)
            .map(|i| Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8))
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let failing: Arc<Vec<AtomicBool>> =
            Arc::new((0..count).map(|_| AtomicBool::new(false)).collect());
        let probes: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
        let (port, listeners) = loop {
            let first = std::net::TcpListener::bind((addresses[0], 0)).expect("bind");
            let port = first.local_addr().expect("addr").port();
            let rest: Vec<std::net::TcpListener> = addresses[1..]
                .iter()
                .filter_map(|a| std::net::TcpListener::bind((*a, port)).ok())
                .collect();
            if rest.len() == count - 1 {
                break (port, std::iter::once(first).chain(rest).collect::<Vec<_>>());
            }
        };
        for (index, listener) in listeners.into_iter().enumerate() {
            listener.set_nonblocking(true).expect("nonblocking");
            let failing = failing.clone();
            let probes = probes.clone();
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    probes[index].fetch_add(1, Ordering::Relaxed);
                    let status = if failing[index].load(Ordering::Relaxed) {
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut head = [0u8; 1024];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut head))
                                .await;
                        let answer = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                    });
                }
            });
        }
        Self {
            addresses,
            port,
            failing,
            probes,
            _runtime: runtime,
        }
    }

    pub(crate) fn set_failing(&self, indices: &[usize], failing: bool) {
        for &i in indices {
            self.failing[i].store(failing, Ordering::Relaxed);
        }
    }

    pub(crate) fn probe_counts(&self) -> Vec<u64> {
        self.probes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

// === the controllers ===

/// A running `signpost health`. Killed on drop.
pub(crate) struct Controller {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Controller {
    /// Two controllers with the same `args`: `controller-a` started first and
    /// leading, then `controller-b` standing by.
    pub(crate) fn pair(args: &[&str]) -> (Self, Self) {
        let a = Self::spawn(args, "controller-a");
        wait(
            "a leads",
            Duration::from_secs(30),
            || a.leading() == Some(true),
            || a.log(),
        );
        let b = Self::spawn(args, "controller-b");
        wait(
            "b stands by",
            Duration::from_secs(30),
            || b.leading() == Some(false),
            || b.log(),
        );
        (a, b)
    }

    /// Targets, verdicts and Lease on the fake API server, as the reference
    /// deployment runs them.
    pub(crate) fn kubernetes_args(kubeconfig: &Path) -> Vec<String> {
        [
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--namespace",
            "kube-system",
            "--lease",
            LEASE,
            "--verdicts",
            VERDICTS,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// `signpost health` with the test configuration and `args` (where the
    /// targets, the verdicts and the election live).
    fn spawn(args: &[&str], identity: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("health.yaml"), CONFIG).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("health.log")).expect("log");
        let child = Command::new(binary())
            .arg("health")
            .arg("--config")
            .arg(dir.path().join("health.yaml"))
            .args(args)
            .args(["--identity", identity])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start signpost health");
        Self { child, dir, port }
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(crate) fn metrics(&self) -> String {
        http_get(self.address(), "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    pub(crate) fn leading(&self) -> Option<bool> {
        let text = http_get(self.address(), "/metrics")?.1;
        metric(&text, "signpost_health_leader").map(|v| v == 1.0)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("health.log")).unwrap_or_default()
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of an unlabelled sample in a Prometheus text exposition.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

// === observers ===

/// Changes seen over time, each with when it was first seen.
pub(crate) type Timeline<T> = Arc<Mutex<Vec<(Instant, T)>>>;

/// Records `sample()` every `period` while `running`, keeping only changes.
pub(crate) fn observe<T: PartialEq + Send + 'static>(
    running: &Arc<AtomicBool>,
    period: Duration,
    mut sample: impl FnMut() -> Option<T> + Send + 'static,
) -> (Timeline<T>, std::thread::JoinHandle<()>) {
    let timeline: Timeline<T> = Arc::new(Mutex::new(Vec::new()));
    let (running, out) = (running.clone(), timeline.clone());
    let handle = std::thread::spawn(move || {
        // One more sample after `running` clears, so the timeline always ends
        // with the state at the stop (a change just before it is not missed).
        loop {
            let stopping = !running.load(Ordering::Relaxed);
            let at = Instant::now();
            if let Some(value) = sample() {
                let mut out = out.lock().unwrap();
                if out.last().is_none_or(|(_, last)| *last != value) {
                    out.push((at, value));
                }
            }
            if stopping {
                break;
            }
            std::thread::sleep(period);
        }
    });
    (timeline, handle)
}

/// The endpoint addresses a replica leaves out of its answers (UDP, EDNS 4096).
fn absent(socket: &UdpSocket, port: u16, all: &[Ipv4Addr]) -> Option<BTreeSet<Ipv4Addr>> {
    let mut present = BTreeSet::new();
    for service in 0..SERVICES {
        let name = format!("hc-{service}.{NAMESPACE}.svc.cluster.local.");
        socket
            .send_to(
                &query_bytes(&name, RecordType::A, Some(4096)),
                ("127.0.0.1", port),
            )
            .ok()?;
        let mut buffer = [0u8; 4096];
        let length = socket.recv(&mut buffer).ok()?;
        let reply = Message::from_vec(&buffer[..length]).ok()?;
        for record in &reply.answers {
            if let RData::A(a) = &record.data {
                present.insert(a.0);
            }
        }
    }
    Some(
        all.iter()
            .copied()
            .filter(|a| !present.contains(a))
            .collect(),
    )
}

/// The addresses the verdict ConfigMap holds.
fn published(cluster: &FakeCluster) -> Option<BTreeSet<Ipv4Addr>> {
    let object = cluster
        .server
        .get("configmaps", Some("kube-system"), VERDICTS)?;
    let text = object["data"]["unhealthy"].as_str().unwrap_or("");
    Some(
        text.lines()
            .filter_map(|line| line.rsplit('/').next()?.parse().ok())
            .collect(),
    )
}

fn holder(cluster: &FakeCluster) -> Option<String> {
    let lease = cluster
        .server
        .get("leases.coordination.k8s.io", Some("kube-system"), LEASE)?;
    Some(
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

/// Waits until `check` holds (generous deadline); panics with `context()` otherwise.
pub(crate) fn wait(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    let rank = ((values.len() as f64) * p).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

// === the cluster ===

pub(crate) fn kubeconfig_for(
    cluster: &FakeCluster,
    dir: &Path,
    name: &str,
    token: &str,
) -> PathBuf {
    let text = std::fs::read_to_string(cluster.server.kubeconfig_path()).expect("kubeconfig");
    let text = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("token: ") {
            Some(_) => format!("    token: {token}"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

fn load_cluster(cluster: &FakeCluster, endpoints: &Endpoints) {
    cluster
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}));
    for service in 0..SERVICES {
        let name = format!("hc-{service}");
        cluster.create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {
                "dns.aikernel.io/health-check-enabled": "true",
                "dns.aikernel.io/health-check-port": endpoints.port.to_string()}},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }));
        let addresses: Vec<Value> = endpoints.addresses
            [service * PER_SERVICE..(service + 1) * PER_SERVICE]
            .iter()
            .map(|a| json!({"addresses": [a.to_string()], "conditions": {"ready": true}}))
            .collect();
        cluster.create(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": addresses,
            "ports": [{"name": "http", "port": endpoints.port, "protocol": "TCP"}]
        }));
    }
    // Created by the deployment's manifests, so RBAC needs no `create`.
    cluster.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": VERDICTS, "namespace": "kube-system"}}));
    cluster.create(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": "kube-system"}, "spec": {}}),
    );
}

fn replica_corefile(kubeconfig: &Path) -> String {
    let kubeconfig = kubeconfig.display();
    format!(
        "cluster.local:{{PORT}} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n        kubeconfig {kubeconfig}\n    }}\n    healthcheck {{\n        verdicts kubernetes kube-system/{VERDICTS} {{\n            kubeconfig {kubeconfig}\n        }}\n    }}\n    ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n"
    )
}

/// Issue 12, "Done when" 1–3, in one run: 200 endpoints, 20 of which start
/// failing, two controllers (one leads, one stands by) and three replicas.
///
/// 1. Each failing endpoint leaves every replica's answers no earlier than
///    the removal delay (3 s) after it starts failing and within delay +
///    interval + 1 s (5 s); after recovery each returns within interval +
///    1 s (2 s).
/// 2. The leader is SIGKILLed once they are out: the standby leads within
///    the lease duration (3 s, plus 0.5 s for scheduling), the published
///    verdicts stay the same across the handover (no failing endpoint
///    returns to any replica's answers), and checks continue (every
///    endpoint is probed again, and the recovery is the new leader's).
/// 3. Every published change is in each replica's answers within 1 s (p99
///    over the run, printed); one prober at a time: the two controllers
///    never both report leading, and per-endpoint probe counts over 4 s
///    windows with one Lease holder are those of one prober (3 to 5 at a
///    1 s interval; two probers would make about 8).
#[test]
fn leader_elected_controller_drives_three_replicas() {
    let auth = AuthConfig {
        users: vec![
            UserConfig {
                token: "controller-token".into(),
                user: "system:serviceaccount:kube-system:dns-health-controller".into(),
                groups: Vec::new(),
                rules: controller_rules(),
            },
            UserConfig {
                token: "replica-token".into(),
                user: "system:serviceaccount:kube-system:coredns".into(),
                groups: Vec::new(),
                rules: replica_rules(),
            },
        ],
    };
    let cluster = FakeCluster::start_with(ServerOptions {
        auth: Some(auth),
        ..ServerOptions::default()
    });
    let endpoints = Endpoints::start(SERVICES * PER_SERVICE);
    load_cluster(&cluster, &endpoints);
    let files = tempfile::tempdir().expect("tempdir");
    let controller_config =
        kubeconfig_for(&cluster, files.path(), "controller", "controller-token");
    let replica_config = kubeconfig_for(&cluster, files.path(), "replica", "replica-token");

    let replicas: Vec<TestServer> = (0..3)
        .map(|_| TestServer::start_with(&replica_corefile(&replica_config), &[], true))
        .collect();
    let all = endpoints.addresses.clone();
    let replica_state = |replica: &TestServer| {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        absent(&socket, replica.port, &all)
    };
    for replica in &replicas {
        wait(
            "replica serves every endpoint",
            Duration::from_secs(30),
            || replica_state(replica).is_some_and(|a| a.is_empty()),
            || replica.log(),
        );
    }

    let args = Controller::kubernetes_args(&controller_config);
    let (mut a, b) = Controller::pair(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Every endpoint checked at least once, all healthy.
    wait(
        "a checks every endpoint",
        Duration::from_secs(10),
        || endpoints.probe_counts().iter().all(|c| *c >= 1),
        || a.log(),
    );

    // Observers: each replica's answers every 20 ms, the verdict ConfigMap
    // and the Lease holder every 5 ms, both controllers' leader gauge every 50 ms.
    let running = Arc::new(AtomicBool::new(true));
    let mut threads = Vec::new();
    let mut answers = Vec::new();
    for replica in &replicas {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let (port, all) = (replica.port, all.clone());
        let (timeline, thread) = observe(&running, Duration::from_millis(20), move || {
            absent(&socket, port, &all)
        });
        answers.push(timeline);
        threads.push(thread);
    }
    let shared = Arc::new(cluster);
    let (verdicts, thread) = {
        let cluster = shared.clone();
        observe(&running, Duration::from_millis(5), move || {
            published(&cluster)
        })
    };
    threads.push(thread);
    let (holders, thread) = {
        let cluster = shared.clone();
        observe(&running, Duration::from_millis(5), move || holder(&cluster))
    };
    threads.push(thread);
    let both_lead = Arc::new(AtomicBool::new(false));
    let (a_address, b_address) = (a.address(), b.address());
    let thread = {
        let (running, both_lead) = (running.clone(), both_lead.clone());
        std::thread::spawn(move || {
            let leading = |address| {
                http_get(address, "/metrics")
                    .and_then(|(_, text)| metric(&text, "signpost_health_leader"))
                    == Some(1.0)
            };
            while running.load(Ordering::Relaxed) {
                if leading(a_address) && leading(b_address) {
                    both_lead.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    threads.push(thread);
    let cluster = &*shared;

    // One prober: probe counts over a window with one Lease holder.
    let one_prober = |label: &str| {
        let holder_before = holder(cluster);
        let before = endpoints.probe_counts();
        std::thread::sleep(Duration::from_secs(4));
        let after = endpoints.probe_counts();
        assert_eq!(
            holder(cluster),
            holder_before,
            "{label}: the holder changed in the window"
        );
        let counts: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        eprintln!("{label}: probes per endpoint in 4 s: {min}..={max}");
        assert!(
            *max <= 5,
            "{label}: an endpoint was probed {max} times in 4 s at a 1 s interval: two probers"
        );
        assert!(
            *min >= 3,
            "{label}: an endpoint was probed only {min} times in 4 s"
        );
    };
    one_prober("controller-a leading");

    // 1. Twenty endpoints start failing, five per service.
    let failing: Vec<usize> = (0..SERVICES)
        .flat_map(|s| (0..5).map(move |i| s * PER_SERVICE + i * 7))
        .collect();
    let failing_addresses: BTreeSet<Ipv4Addr> = failing.iter().map(|&i| all[i]).collect();
    let failed_at = Instant::now();
    endpoints.set_failing(&failing, true);
    for (index, timeline) in answers.iter().enumerate() {
        wait(
            "the failing endpoints leave every replica",
            Duration::from_secs(20),
            || {
                timeline
                    .lock()
                    .unwrap()
                    .last()
                    .is_some_and(|(_, a)| *a == failing_addresses)
            },
            || format!("{}\n{}", replicas[index].log(), a.log()),
        );
    }
    let removed_by = Instant::now();
    let removal = |timeline: &Timeline<BTreeSet<Ipv4Addr>>, address: Ipv4Addr| {
        timeline
            .lock()
            .unwrap()
            .iter()
            .find(|(_, absent)| absent.contains(&address))
            .map(|(at, _)| *at - failed_at)
            .expect("removed")
    };
    let mut slowest = Duration::ZERO;
    for (replica, timeline) in answers.iter().enumerate() {
        for &address in &failing_addresses {
            let took = removal(timeline, address);
            slowest = slowest.max(took);
            assert!(
                took >= DELAY,
                "replica {replica}: {address} left {took:?} after it started failing, before the removal delay"
            );
            assert!(
                took <= DELAY + INTERVAL + Duration::from_secs(1),
                "replica {replica}: {address} left {took:?} after it started failing"
            );
        }
        // Healthy endpoints never left.
        for (_, absent) in timeline.lock().unwrap().iter() {
            assert!(
                absent.is_subset(&failing_addresses),
                "replica {replica}: a healthy endpoint left: {absent:?}"
            );
        }
    }
    eprintln!(
        "removal after failing: slowest {slowest:?} (bounds {DELAY:?} ..= {:?})",
        DELAY + INTERVAL + Duration::from_secs(1)
    );

    // 2. SIGKILL the leader; the standby leads within the lease duration.
    assert_eq!(holder(cluster).as_deref(), Some("controller-a"));
    let killed_at = Instant::now();
    a.kill();
    wait(
        "b leads",
        Duration::from_secs(15),
        || b.leading() == Some(true),
        || b.log(),
    );
    // b may report leading before the Lease observer's next sample lands.
    let named_b = || {
        holders
            .lock()
            .unwrap()
            .iter()
            .find(|(at, holder)| *at >= killed_at && holder == "controller-b")
            .map(|(at, _)| *at - killed_at)
    };
    wait(
        "the Lease names controller-b",
        Duration::from_secs(5),
        || named_b().is_some(),
        || format!("{:?}", holders.lock().unwrap()),
    );
    let took_over = named_b().expect("the Lease names controller-b");
    eprintln!("takeover after SIGKILL: {took_over:?} (lease duration {LEASE_DURATION:?})");
    assert!(
        took_over <= LEASE_DURATION + Duration::from_millis(500),
        "controller-b took the lease {took_over:?} after the leader died"
    );
    // Checks continue: every endpoint is probed again by the new leader.
    let after_takeover = endpoints.probe_counts();
    wait(
        "b probes every endpoint",
        Duration::from_secs(5),
        || {
            endpoints
                .probe_counts()
                .iter()
                .zip(&after_takeover)
                .all(|(now, then)| now > then)
        },
        || b.log(),
    );
    one_prober("controller-b leading");
    let handover_checked = Instant::now();
    // Across the handover the published set never changed and no failing endpoint came back.
    for (at, set) in verdicts.lock().unwrap().iter() {
        if *at >= removed_by && *at < handover_checked {
            assert_eq!(
                set, &failing_addresses,
                "the published verdicts changed across the handover"
            );
        }
    }
    for (replica, timeline) in answers.iter().enumerate() {
        for (at, absent) in timeline.lock().unwrap().iter() {
            if *at >= removed_by {
                assert_eq!(
                    absent, &failing_addresses,
                    "replica {replica}: an endpoint returned across the handover"
                );
            }
        }
    }

    // Recovery, decided by the new leader.
    let recovered_at = Instant::now();
    endpoints.set_failing(&failing, false);
    for (index, timeline) in answers.iter().enumerate() {
        wait(
            "the endpoints return to every replica",
            Duration::from_secs(10),
            || {
                timeline
                    .lock()
                    .unwrap()
                    .last()
                    .is_some_and(|(_, a)| a.is_empty())
            },
            || format!("{}\n{}", replicas[index].log(), b.log()),
        );
    }
    let mut slowest = Duration::ZERO;
    for (replica, timeline) in answers.iter().enumerate() {
        for &address in &failing_addresses {
            let back = timeline
                .lock()
                .unwrap()
                .iter()
                .find(|(at, absent)| *at >= recovered_at && !absent.contains(&address))
                .map(|(at, _)| *at - recovered_at)
                .expect("returned");
            slowest = slowest.max(back);
            assert!(
                back <= INTERVAL + Duration::from_secs(1),
                "replica {replica}: {address} returned {back:?} after it recovered"
            );
        }
    }
    eprintln!(
        "return after recovery: slowest {slowest:?} (bound {:?})",
        INTERVAL + Duration::from_secs(1)
    );

    running.store(false, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("observer");
    }
    assert!(
        !both_lead.load(Ordering::Relaxed),
        "both controllers reported leading at once"
    );

    // 3. Apply time: from each ConfigMap change to the replica answering it
    // (or a later published set).
    let published_sets = verdicts.lock().unwrap().clone();
    let mut applied = Vec::new();
    for (replica, timeline) in answers.iter().enumerate() {
        let timeline = timeline.lock().unwrap();
        for (version, (at, _)) in published_sets.iter().enumerate() {
            // This set or a later one of the same phase (failing, then recovering).
            let phase_end = if *at < recovered_at {
                published_sets
                    .iter()
                    .position(|(t, _)| *t >= recovered_at)
                    .unwrap_or(published_sets.len())
            } else {
                published_sets.len()
            };
            let later: Vec<&BTreeSet<Ipv4Addr>> = published_sets[version..phase_end]
                .iter()
                .map(|(_, s)| s)
                .collect();
            // Already answered before the observer saw the change (it samples every 5 ms): 0.
            let before = timeline.iter().rev().find(|(seen_at, _)| *seen_at <= *at);
            let took = if before.is_some_and(|(_, absent)| later.contains(&absent)) {
                Some(Duration::ZERO)
            } else {
                timeline
                    .iter()
                    .find(|(seen_at, absent)| *seen_at >= *at && later.contains(&absent))
                    .map(|(seen_at, _)| *seen_at - *at)
            };
            let took = took.unwrap_or_else(|| {
                panic!("replica {replica} never applied published set {version}")
            });
            applied.push(took);
        }
    }
    let samples = applied.len();
    let p50 = percentile(&mut applied, 0.50);
    let p99 = percentile(&mut applied, 0.99);
    let max = *applied.last().unwrap();
    eprintln!(
        "apply time (ConfigMap change -> replica answers, 20 ms sampling), {samples} samples over {} published sets x 3 replicas: p50 {p50:?}, p99 {p99:?}, max {max:?}",
        published_sets.len()
    );
    assert!(p99 <= Duration::from_secs(1), "p99 apply time {p99:?}");

    // The controller's own surface: the seven dns_* names of the reference
    // deployment, leader state and publish latency, and /api/v1/endpoints.
    let text = b.metrics();
    for name in [
        "dns_health_checks_total",
        "dns_health_check_duration_seconds",
        "dns_healthy_endpoints",
        "dns_unhealthy_endpoints",
        "dns_updates_total",
        "dns_endpoints_removed_total",
        "dns_endpoints_added_total",
        "signpost_health_leader",
        "signpost_health_publish_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    assert_eq!(
        metric(&text, "dns_healthy_endpoints"),
        Some(200.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "dns_endpoints_added_total"),
        Some(20.0),
        "{text}"
    );
    let (status, body) = http_get(b.address(), "/api/v1/endpoints").expect("endpoints");
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(listed["endpoints"].as_array().map(Vec::len), Some(200));
    assert!(a.log().contains("leading"), "{}", a.log());
}

/// Issue 12, "Done when" 4, through the binary: `signpost health --validate`
/// takes the reference deployment's ConfigMap manifest unchanged (exit 0),
/// and reports each of five kinds of mistake once, at its file and line,
/// with exit 64 (as `signpost check`), inside the ConfigMap too.
#[test]
fn validate_takes_the_reference_configmap_and_reports_mistakes_at_their_lines() {
    let validate = |path: &Path| {
        let output = Command::new(binary())
            .args(["health", "--validate", "--config"])
            .arg(path)
            .output()
            .expect("run signpost health --validate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns-health-controller-config.yaml");
    let (code, text) = validate(&reference);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("configuration is valid"), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = std::fs::read_to_string(&reference).expect("reference");
    // The reference manifest with one line replaced: each mistake is
    // reported at that line of the outer file.
    let line_of = |key: &str| {
        manifest
            .lines()
            .position(|l| l.trim_start().starts_with(key))
            .expect("key in the reference")
            + 1
    };
    let cases = [
        // The parser notices the unclosed sequence on the next line and names where it opened.
        (
            "syntax",
            "timeout:",
            "      timeout: [3s",
            "flow sequence at line {line}",
        ),
        (
            "unknown key",
            "timeout:",
            "      timout: 3s",
            "unknown key `healthCheck.timout`",
        ),
        (
            "bad duration",
            "removeUnhealthyDelay:",
            "      removeUnhealthyDelay: 30 seconds",
            "`endpoints.removeUnhealthyDelay`",
        ),
        (
            "bad threshold",
            "failureThreshold:",
            "      failureThreshold: 0",
            "`healthCheck.failureThreshold`",
        ),
        (
            "bad path",
            "healthCheckPath:",
            "      healthCheckPath: health",
            "healthCheckPath",
        ),
    ];
    for (kind, key, replacement, expected) in cases {
        let line = line_of(key);
        let text = manifest
            .lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == line { replacement } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.path().join(format!("{}.yaml", kind.replace(' ', "-")));
        let expected = expected.replace("{line}", &line.to_string());
        let at = if kind == "syntax" { line + 1 } else { line };
        std::fs::write(&path, text).expect("write");
        let (code, output) = validate(&path);
        assert_eq!(code, Some(64), "{kind}: {output}");
        let errors: Vec<&str> = output
            .lines()
            .filter(|l| l.starts_with(&*path.to_string_lossy()))
            .collect();
        assert_eq!(errors.len(), 1, "{kind}: one error expected:\n{output}");
        assert!(
            errors[0].starts_with(&format!("{}:{at}: ", path.display())),
            "{kind}: at line {at}:\n{output}"
        );
        assert!(errors[0].contains(&expected), "{kind}: {output}");
    }
}

/// The etcd issue, "Done when" 3: the same controller and replicas with
/// etcd in place of the Kubernetes API for the verdicts and the election
/// (objects still come from the API server). Two controllers, three
/// replicas; 10 endpoints fail: every replica drops exactly them no earlier
/// than the removal delay; the leader is SIGKILLed: the standby leads
/// within the lease duration (+1.5 s) and no replica's answers change
/// across the handover; the endpoints recover: they return within interval
/// + margin, which only the new leader's probes can cause.
#[test]
fn etcd_carries_the_verdicts_and_the_election() {
    let cluster = FakeCluster::start();
    let endpoints = Endpoints::start(SERVICES * PER_SERVICE);
    load_cluster(&cluster, &endpoints);
    let etcd = crate::etcd_server::EtcdCluster::start(1);
    let url = etcd.endpoint(0);
    let prefix = "/signpost/health-e2e/";
    let kubeconfig = cluster.kubeconfig();
    let corefile = format!(
        "cluster.local:{{PORT}} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n        kubeconfig {kubeconfig}\n    }}\n    healthcheck {{\n        verdicts etcd {{\n            path /signpost/health-e2e\n            endpoint {url}\n        }}\n    }}\n    ready 127.0.0.1:{{ADMIN}}\n}}\n"
    );
    let replicas: Vec<TestServer> = (0..3)
        .map(|_| TestServer::start_with(&corefile, &[], true))
        .collect();
    let all = endpoints.addresses.clone();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let states = || -> Vec<Option<BTreeSet<Ipv4Addr>>> {
        replicas
            .iter()
            .map(|r| absent(&socket, r.port, &all))
            .collect()
    };
    wait(
        "replicas serve every endpoint",
        Duration::from_secs(30),
        || {
            states()
                .iter()
                .all(|s| s.as_ref().is_some_and(BTreeSet::is_empty))
        },
        || replicas[0].log(),
    );

    let args = [
        "--kubeconfig",
        kubeconfig.as_str(),
        "--etcd-endpoints",
        url.as_str(),
        "--etcd-prefix",
        prefix,
    ];
    let (mut a, b) = Controller::pair(&args);
    wait(
        "every endpoint checked",
        Duration::from_secs(10),
        || endpoints.probe_counts().iter().all(|c| *c >= 1),
        || a.log(),
    );

    // Ten endpoints fail: removed everywhere, not before the removal delay.
    let failing: Vec<usize> = (0..10).map(|i| i * 17).collect();
    let expected: BTreeSet<Ipv4Addr> = failing.iter().map(|&i| all[i]).collect();
    let started = Instant::now();
    endpoints.set_failing(&failing, true);
    let mut first_removal = None;
    wait(
        "the failing endpoints leave every replica",
        DELAY + INTERVAL * 3 + Duration::from_secs(5),
        || {
            let now = states();
            if first_removal.is_none()
                && now
                    .iter()
                    .any(|s| s.as_ref().is_some_and(|s| !s.is_empty()))
            {
                first_removal = Some(started.elapsed());
            }
            now.iter().all(|s| s.as_ref() == Some(&expected))
        },
        || format!("{:?}\n{}", states(), a.log()),
    );
    let first_removal = first_removal.unwrap_or_else(|| started.elapsed());
    assert!(
        first_removal >= DELAY,
        "an endpoint left after {first_removal:?}, before the removal delay {DELAY:?}"
    );
    let published = etcd.etcdctl(&["get", &format!("{prefix}unhealthy"), "--print-value-only"]);
    for address in &expected {
        assert!(
            published.contains(&address.to_string()),
            "{address} not in {published}"
        );
    }

    // The leader dies: the standby takes over; nothing changes in the answers.
    let killed = Instant::now();
    a.kill();
    let mut changed = Vec::new();
    wait(
        "b leads",
        LEASE_DURATION + Duration::from_millis(1_500),
        || {
            for state in states() {
                if state.as_ref() != Some(&expected) {
                    changed.push(state);
                }
            }
            b.leading() == Some(true)
        },
        || b.log(),
    );
    let takeover = killed.elapsed();
    // A few more intervals under the new leader: still the same answers.
    let settle = Instant::now() + INTERVAL * 3;
    while Instant::now() < settle {
        for state in states() {
            if state.as_ref() != Some(&expected) {
                changed.push(state);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        changed.is_empty(),
        "answers changed across the handover: {changed:?}"
    );

    // Recovery: only b probes now, so their return is b's doing.
    endpoints.set_failing(&failing, false);
    wait(
        "the endpoints return to every replica",
        INTERVAL * 3 + Duration::from_secs(4),
        || {
            states()
                .iter()
                .all(|s| s.as_ref().is_some_and(BTreeSet::is_empty))
        },
        || format!("{:?}\n{}", states(), b.log()),
    );
    eprintln!(
        "etcd verdicts: first removal after {first_removal:?} (delay {DELAY:?}); takeover {takeover:?} (lease {LEASE_DURATION:?})"
    );
}
