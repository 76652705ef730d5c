//! Real etcd members (Debian's `etcd-server`) on loopback for tests: one node
//! or a cluster of several processes with their own client and peer ports and
//! data directories in a temporary directory.
//!
//! Each member runs under `sh`, which starts `etcd`, prints its pid and kills
//! it as soon as its standard input closes, so no member outlives the test
//! process, even one shared through a `static` (never dropped) or one left
//! behind by a panic. Ports are picked free (bind port 0) and the whole
//! cluster is started again on new ports if a member cannot bind.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// A running etcd cluster.
pub(crate) struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    token: String,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<Process>,
}

struct Process {
    wrapper: Child,
    /// Held open: closing it makes the wrapper kill etcd.
    _stdin: ChildStdin,
    pid: u32,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one answers.
    pub(crate) fn start(size: usize) -> Self {
        for _ in 0..5 {
            if let Some(cluster) = Self::try_start(size) {
                return cluster;
            }
        }
        panic!("etcd did not start (is Debian's etcd-server installed?)");
    }

    fn try_start(size: usize) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ports = free_ports(size * 2);
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                process: None,
            })
            .collect();
        let token = format!("signpost-test-{}", ports[0]);
        let mut cluster = Self {
            dir,
            members,
            token,
        };
        for index in 0..size {
            cluster.launch(index);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if (0..size).all(|i| cluster.healthy(i)) {
                return Some(cluster);
            }
            if cluster.members.iter_mut().any(|m| {
                m.process
                    .as_mut()
                    .is_some_and(|p| p.wrapper.try_wait().ok().flatten().is_some())
            }) {
                return None; // a member died (a port taken meanwhile): new ports
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn launch(&mut self, index: usize) {
        let initial = self.initial_cluster();
        let data = self.dir.path().join(&self.members[index].name);
        let member = &self.members[index];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let args = [
            "--name",
            &member.name,
            "--data-dir",
            &data.display().to_string(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &initial,
            "--initial-cluster-token",
            &self.token,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--logger",
            "zap",
            "--log-level",
            "error",
        ]
        .map(shell_quote)
        .join(" ");
        let log = self.dir.path().join(format!("{}.log", member.name));
        let script = format!(
            "etcd {args} >>{} 2>&1 & pid=$!; echo $pid; read _; kill -9 $pid 2>/dev/null",
            shell_quote(&log.display().to_string())
        );
        let mut wrapper = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh");
        let stdin = wrapper.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(wrapper.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("etcd pid");
        let pid = line.trim().parse().expect("etcd pid");
        self.members[index].process = Some(Process {
            wrapper,
            _stdin: stdin,
            pid,
        });
    }

    /// True when member `index` answers a linearizable read.
    pub(crate) fn healthy(&self, index: usize) -> bool {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                &format!("--endpoints={}", self.endpoint(index)),
                "--command-timeout=2s",
                "endpoint",
                "health",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Every member's client URL.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `index`'s client URL.
    pub(crate) fn endpoint(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }

    /// Kills member `index` with SIGKILL (no clean shutdown).
    pub(crate) fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.members[index].process.take() {
            let _ = Command::new("kill")
                .args(["-9", &process.pid.to_string()])
                .status();
            drop(process._stdin);
            let _ = process.wrapper.wait();
        }
    }

    /// Freezes member `index` (SIGSTOP): its connections stay open but
    /// nothing answers, as with a partition.
    pub(crate) fn pause(&self, index: usize) {
        self.signal(index, "-STOP");
    }

    /// Lets a paused member run again (SIGCONT).
    pub(crate) fn resume(&self, index: usize) {
        self.signal(index, "-CONT");
    }

    fn signal(&self, index: usize, signal: &str) {
        if let Some(process) = &self.members[index].process {
            let _ = Command::new("kill")
                .args([signal, &process.pid.to_string()])
                .status();
        }
    }

    /// Starts member `index` again on its data directory and waits until it answers.
    pub(crate) fn restart(&mut self, index: usize) {
        self.launch(index);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.healthy(index) {
            assert!(
                Instant::now() < deadline,
                "etcd member {index} did not come back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `etcdctl` against every live member; returns its standard output.
    pub(crate) fn etcdctl(&self, args: &[&str]) -> String {
        let live: Vec<String> = (0..self.members.len())
            .filter(|&i| self.members[i].process.is_some())
            .map(|i| self.endpoint(i))
            .collect();
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", live.join(",")))
            .args(args)
            .output()
            .expect("etcdctl");
        assert!(
            output.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Writes one key.
    pub(crate) fn put(&self, key: &str, value: &str) {
        self.etcdctl(&["put", key, value]);
    }

    /// Deletes one key.
    pub(crate) fn delete(&self, key: &str) {
        self.etcdctl(&["del", key]);
    }

    /// The current revision of the cluster.
    pub(crate) fn revision(&self) -> i64 {
        let out = self.etcdctl(&["endpoint", "status", "--write-out=json"]);
        let start = out.find("\"revision\":").expect("revision") + "\"revision\":".len();
        out[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("revision")
    }

    /// Compacts the history up to the current revision (physically), so a
    /// watch from an older revision fails with `ErrCompacted`.
    pub(crate) fn compact(&self) -> i64 {
        let revision = self.revision();
        self.etcdctl(&["compaction", "--physical", &revision.to_string()]);
        revision
    }

    /// The member logs, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut text = String::new();
        for member in &self.members {
            let path: PathBuf = self.dir.path().join(format!("{}.log", member.name));
            text.push_str(&format!("--- {} ---\n", member.name));
            text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
        text
    }

    /// The temporary directory (for other test files).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.resume(index);
            self.kill(index);
        }
    }
}

/// `count` distinct free TCP ports on 127.0.0.1.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
