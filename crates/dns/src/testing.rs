//! Test helpers: real DNS servers on loopback, and messages built and read
//! by an independent implementation (hickory-proto).
//!
//! Tests only. [`Knot`] runs `knotd` (Debian package `knot`) as a child
//! process on a loopback port no other socket holds (checked once it runs,
//! see [`sole_owner`]), serving zones given as zone-file text,
//! in a private temporary directory; it is killed when dropped, and can be
//! stopped and restarted on the same port to test fail-over and recovery.
//!
//! ```text
//! let knot = Knot::start(&[("example.test", "@ SOA ns hostmaster 1 3600 600 86400 60\n...")]);
//! let reply = udp_ask(knot.address(), &query(7, "who.example.test", RecordType::A));
//! ```
//!
//! Starting and waiting are blocking (std process and socket calls, at most
//! a few seconds): call them before the code under test runs, or from a
//! multi-threaded tokio test so other tasks keep running.

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a server may take to answer its first query after starting: far
/// above the tens of milliseconds it takes, so a loaded machine is slow, not
/// a failure.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory named after `prefix`, the process and a counter.
    pub(crate) fn new(prefix: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A `knotd` child process serving zones on `127.0.0.1:PORT` (UDP and TCP).
#[derive(Debug)]
pub(crate) struct Knot {
    child: Option<Child>,
    dir: TempDir,
    address: SocketAddr,
    /// The first zone's origin; its SOA is asked to see that knotd is ready.
    probe_zone: String,
}

impl Knot {
    /// Starts knotd serving each `(origin, zone file text)` on a free port,
    /// and waits until it answers. `$ORIGIN` and `$TTL 300` are prepended to
    /// each zone text, so records may use relative names. Panics, with
    /// knotd's log, when it does not come up.
    pub(crate) fn start(zones: &[(&str, &str)]) -> Self {
        assert!(!zones.is_empty(), "knotd needs at least one zone");
        let dir = TempDir::new("signpost-knot");
        let mut zone_config = String::new();
        for (origin, text) in zones {
            let origin = origin.trim_end_matches('.');
            let file = dir.path().join(format!("{origin}.zone"));
            std::fs::write(&file, format!("$ORIGIN {origin}.\n$TTL 300\n{text}\n"))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
            let _ = writeln!(
                zone_config,
                "  - domain: {origin}\n    file: \"{}\"",
                file.display()
            );
        }
        std::fs::write(dir.path().join("zones.conf"), zone_config).expect("write zones.conf");
        let mut knot = Self {
            child: None,
            dir,
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            probe_zone: zones[0].0.trim_end_matches('.').to_owned(),
        };
        let mut last_failure = String::new();
        // A free port can be taken between choosing it and knotd binding it:
        // then knotd fails to start or `sole_owner` sees the other socket,
        // and it starts again on another port.
        for _ in 0..5 {
            knot.address = SocketAddr::from((Ipv4Addr::LOCALHOST, unused_port()));
            match knot.spawn() {
                Ok(()) => return knot,
                Err(failure) => {
                    knot.stop();
                    last_failure = failure;
                }
            }
        }
        panic!("knotd did not start: {last_failure}");
    }

    /// Where it listens (UDP and TCP).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Kills knotd and waits for it to exit; the port stops answering.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts knotd again on the same port with the same zones. Panics if it
    /// does not come up.
    pub(crate) fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn() {
            panic!("knotd did not restart on {}: {failure}", self.address);
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let config = dir.join("knot.conf");
        let zones = std::fs::read_to_string(dir.join("zones.conf")).expect("read zones.conf");
        let text = format!(
            "server:\n    rundir: \"{dir}\"\n    listen: {ip}@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{dir}\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             zone:\n{zones}",
            dir = dir.display(),
            ip = self.address.ip(),
            port = self.address.port(),
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let log_path = dir.join("knotd.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run knotd (is the `knot` package installed?): {e}"))?;
        self.child = Some(child);
        let probe = query(1, &self.probe_zone, RecordType::SOA);
        let started = std::time::SystemTime::now();
        while started.elapsed().unwrap_or_default() < START_TIMEOUT {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("knotd exited with {status}: {log}"));
            }
            if let Some(reply) = udp_ask_within(self.address, &probe, Duration::from_millis(200))
                && reply.metadata.response_code == hickory_proto::op::ResponseCode::NoError
            {
                let pid = self.child.as_ref().map_or(0, Child::id);
                return sole_owner(pid, self.address.port());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(format!(
            "knotd did not answer within {START_TIMEOUT:?}: {log}"
        ))
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free for both UDP and TCP right now, chosen by the
/// system (a UDP socket without `SO_REUSEPORT` is only given a port no
/// socket holds). knotd cannot be told to bind port 0 and report it, so the
/// port is released again before knotd binds it; [`sole_owner`] then shows
/// that nobody took it meanwhile.
pub(crate) fn unused_port() -> u16 {
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
pub(crate) fn sole_owner(pid: u32, port: u16) -> Result<(), String> {
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

/// A query for `name`/`qtype` with RD set and no EDNS, encoded by hickory-proto.
pub(crate) fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    query_with(id, name, qtype, |_| {})
}

/// A query like [`query`], adjusted by `edit` before encoding (EDNS, flags).
pub(crate) fn query_with(
    id: u16,
    name: &str,
    qtype: RecordType,
    edit: impl FnOnce(&mut Message),
) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid test name"),
        qtype,
    ));
    edit(&mut message);
    message.to_vec().expect("hickory encodes the query")
}

/// Decodes a reply with hickory-proto; panics with the bytes if it cannot.
pub(crate) fn parse(reply: &[u8]) -> Message {
    Message::from_vec(reply).unwrap_or_else(|e| panic!("hickory rejects {reply:02x?}: {e}"))
}

/// The answer section's RDATA in presentation format, sorted.
pub(crate) fn answer_data(reply: &[u8]) -> Vec<String> {
    let mut data: Vec<String> = parse(reply)
        .answers
        .iter()
        .map(|r| r.data.to_string())
        .collect();
    data.sort();
    data
}

/// Asks `server` over UDP (blocking) and returns the decoded reply, or `None`
/// after `wait` without one.
pub(crate) fn udp_ask_within(server: SocketAddr, query: &[u8], wait: Duration) -> Option<Message> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    socket.set_read_timeout(Some(wait)).ok()?;
    socket.send_to(query, server).ok()?;
    let mut buffer = [0u8; 65535];
    let (len, _) = socket.recv_from(&mut buffer).ok()?;
    Message::from_vec(&buffer[..len]).ok()
}
