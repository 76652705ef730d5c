//! Real upstream DNS servers for the end-to-end tests: `knotd` (Debian's
//! `knot`) on a loopback port no other socket holds, and a silent UDP socket.
//!
//! knotd cannot bind port 0 and report the port, and it binds UDP with
//! `SO_REUSEPORT`, which lets a second server of the same user share the
//! port without an error. So the port is chosen by the system for a socket
//! without that option, released, given to knotd, and once knotd answers,
//! `/proc` shows whether any other socket holds the port; if one does, knotd
//! starts again on another port.
//!
//! Test support, shared by the differential test (Knot as the reference
//! server) and the recursion tests (Knot as the upstream of `forward`).
//!
//! ```text
//! let mut knot = Knot::serving(&[("upstream.test.", ZONE_TEXT)]);   // waits until every SOA answers
//! forward . {knot.addr()} ...                                          // the test's Corefile
//! knot.stop();                                                         // the port stops answering
//! ```
//!
//! knotd reads the zone files in place and never writes them back
//! (`zonefile-sync: -1`, no journal); AXFR is allowed from loopback. Every
//! wait is bounded; a server that does not come up panics with knotd's log.
//! A `Knot` is killed when dropped.

#![allow(dead_code, unreachable_pub)]

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// How long knotd may take to load its zones and answer (far above what it
/// takes, so that a loaded machine is slow rather than failing).
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running `knotd` on `127.0.0.1:port` (UDP and TCP). Killed on drop.
pub struct Knot {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    /// Origins (absolute, with the trailing dot) and their zone files.
    zones: Vec<(String, PathBuf)>,
}

// === impl Knot ===

impl Knot {
    /// Starts knotd serving zone files read in place: `(origin, path)`.
    /// Returns once every zone's SOA is answered authoritatively.
    pub fn serving_files(zones: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let zones = zones
            .iter()
            .map(|(origin, path)| (absolute(origin), path.to_path_buf()))
            .collect();
        Self::launch(dir, zones)
    }

    /// Starts knotd serving zones given as zone-file text: `(origin, text)`.
    /// The text is written as is, so it should set `$ORIGIN` or use absolute
    /// names, and give `$TTL` or explicit TTLs.
    pub fn serving(zones: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let zones = zones
            .iter()
            .map(|(origin, text)| {
                let origin = absolute(origin);
                let path = dir.path().join(format!("{origin}zone"));
                std::fs::write(&path, text).expect("write zone file");
                (origin, path)
            })
            .collect();
        Self::launch(dir, zones)
    }

    fn launch(dir: tempfile::TempDir, zones: Vec<(String, PathBuf)>) -> Self {
        assert!(!zones.is_empty(), "knotd needs at least one zone");
        let mut knot = Self {
            child: None,
            dir,
            port: 0,
            zones,
        };
        // A free port can be taken between choosing it and knotd binding it:
        // knotd then fails or `sole_owner` sees the other socket; try again.
        let mut failure = String::new();
        for _ in 0..5 {
            knot.port = unused_port();
            match knot.spawn() {
                Ok(()) => return knot,
                Err(message) => {
                    knot.stop();
                    failure = message;
                }
            }
        }
        panic!("knotd did not start: {failure}");
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// knotd's log so far (all runs on this port).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    /// Kills knotd and waits for it to exit: the port stops answering (UDP
    /// queries to it get ICMP port unreachable, TCP connections are refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts knotd again on the same port with the same zones.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn() {
            panic!("knotd did not restart on {}: {failure}", self.addr());
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let config_path = self.dir.path().join("knot.conf");
        std::fs::write(&config_path, self.config()).map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("knotd.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new(knotd())
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot run knotd (install Debian's `knot`): {e}"))?;
        self.child = Some(child);
        self.wait_loaded()
    }

    /// Waits until every zone's SOA comes back authoritative, or knotd exits.
    fn wait_loaded(&mut self) -> Result<(), String> {
        let deadline = SystemTime::now() + START_LIMIT;
        while SystemTime::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("knotd exited with {status}; log:\n{}", self.log()));
            }
            let loaded = self.zones.iter().all(|(origin, _)| {
                ask_udp(
                    self.addr(),
                    origin,
                    RecordType::SOA,
                    Duration::from_millis(200),
                )
                .is_some_and(|reply| {
                    reply.metadata.authoritative
                        && reply.metadata.response_code == ResponseCode::NoError
                        && reply.answers.len() == 1
                })
            });
            if loaded {
                let pid = self.child.as_ref().map_or(0, Child::id);
                return sole_owner(pid, self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "knotd did not load its zones within {START_LIMIT:?}; log:\n{}",
            self.log()
        ))
    }

    /// The zone files are read in place and never written back
    /// (`zonefile-sync: -1`, no journal); transfers are allowed from loopback.
    fn config(&self) -> String {
        let run = self.dir.path().display();
        let mut config = format!(
            "server:
    listen: 127.0.0.1@{port}
    rundir: {run}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: {run}/db
log:
  - target: stderr
    any: info
acl:
  - id: loopback-transfer
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    acl: loopback-transfer
zone:
",
            port = self.port,
        );
        for (origin, path) in &self.zones {
            let _ = writeln!(config, "  - domain: {origin}\n    file: {}", path.display());
        }
        config
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A UDP socket on loopback that receives queries and never answers: an
/// upstream that hangs. Datagrams queue in the kernel until it is dropped.
pub struct SilentUpstream {
    socket: UdpSocket,
}

impl SilentUpstream {
    /// Binds a free loopback port.
    pub fn bind() -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").expect("bind a silent upstream"),
        }
    }

    /// Where it listens (UDP only).
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }
}

/// Asks `server` over UDP with RD set and no EDNS; `None` without a reply in `wait`.
pub fn ask_udp(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let mut message = Message::new(next_id(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).ok()?, qtype));
    let bytes = message.to_vec().ok()?;
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(wait)).ok()?;
    socket.send_to(&bytes, server).ok()?;
    let mut buffer = vec![0u8; 65535];
    let deadline = SystemTime::now() + wait;
    loop {
        let len = socket.recv(&mut buffer).ok()?;
        if let Ok(reply) = Message::from_vec(&buffer[..len])
            && reply.metadata.id == message.metadata.id
        {
            return Some(reply);
        }
        if SystemTime::now() >= deadline {
            return None;
        }
    }
}

fn next_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn absolute(origin: &str) -> String {
    format!("{}.", origin.trim_end_matches('.'))
}

/// `knotd` from PATH, or Debian's location (`/usr/sbin` is not in every
/// user's PATH).
fn knotd() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/knotd");
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("knotd").is_file()))
        .unwrap_or(false);
    if !on_path && debian.is_file() {
        debian
    } else {
        PathBuf::from("knotd")
    }
}

/// A loopback port free for both UDP and TCP right now, chosen by the
/// system (a UDP socket without `SO_REUSEPORT` is only given a port no
/// socket holds). Released again before the server binds it; [`sole_owner`] then
/// shows that nobody took it meanwhile. (The same as `signpost-dns`'s test
/// helpers, which this test binary cannot reach.)
pub fn unused_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a udp port");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// Checks that process `pid` alone listens on `port` of loopback: every UDP
/// socket bound there and every TCP listener there is one of its open
/// files (`/proc/net/{udp,tcp}` against `/proc/PID/fd`). knotd binds UDP
/// with `SO_REUSEPORT`, so a second server of the same user on that port
/// would share its queries without either failing to bind; this is how such
/// a collision is seen, and the caller starts again on another port.
pub fn sole_owner(pid: u32, port: u16) -> Result<(), String> {
    let own: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("cannot list the sockets of {pid}: {e}"))?
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.ok()?.path()).ok()?;
            let target = target.to_string_lossy();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut strangers = Vec::new();
    for (table, listening_only) in [("/proc/net/udp", false), ("/proc/net/tcp", true)] {
        let text = std::fs::read_to_string(table).map_err(|e| format!("{table}: {e}"))?;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some((local, state, inode)) = fields
                .get(1)
                .zip(fields.get(3))
                .zip(fields.get(9))
                .map(|((l, s), i)| (*l, *s, *i))
            else {
                continue;
            };
            let Some((address, hex_port)) = local.split_once(':') else {
                continue;
            };
            // 127.0.0.1 or 0.0.0.0, in /proc's little-endian hex; 0A is LISTEN.
            let on_loopback = address == "0100007F" || address == "00000000";
            if u16::from_str_radix(hex_port, 16) == Ok(port)
                && on_loopback
                && (!listening_only || state == "0A")
                && !own.contains(inode)
            {
                strangers.push(format!("{table} inode {inode}"));
            }
        }
    }
    if strangers.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "another process also holds 127.0.0.1:{port}: {}",
            strangers.join(", ")
        ))
    }
}
