//! The test harness: start `signpost dns` with a Corefile and catalog written
//! to a temporary directory, on ports the system picks (port 0), learn the
//! ports from the server's own log, wait for `/ready`, and query it; HTTP
//! backends on loopback for its health checks.
//!
//! Ports: no test picks a port and hands it on (a port found free can be
//! taken by a parallel test before the server binds it, and two
//! `SO_REUSEPORT` sockets of one user share a port silently). Corefiles say
//! port 0 through the placeholders below, and the harness reads the bound
//! addresses from the log lines `listening udp=ADDR` (each DNS address) and
//! `HTTP endpoints listening http=ADDR health=.. ready=.. metrics=.. admin=..`
//! (each HTTP address).
//!
//! Waits: every wait is for an observable event (a log line, an answer, a
//! status code) with a generous deadline, so a loaded machine is slower but
//! never wrong.

#![allow(dead_code, unreachable_pub)]

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long the server may take to log its addresses or become ready. Far
/// above the milliseconds it takes on an idle machine: the limit only turns a
/// server that never comes up into a failure with its log.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// How long a query on loopback may take before the harness calls it lost.
/// Generous for the same reason; tests that show that no reply comes send a
/// second query behind the first instead of waiting this out.
pub const REPLY_LIMIT: Duration = Duration::from_secs(10);

/// A running `signpost dns`. Killed on drop.
pub struct TestServer {
    child: Child,
    /// The temporary directory holding the Corefile, the catalog and the log.
    pub dir: tempfile::TempDir,
    /// DNS port of the first DNS address on 127.0.0.1 (UDP and TCP).
    pub port: u16,
    /// Every DNS address as bound, in the order the server logged them.
    pub dns: Vec<SocketAddr>,
}

/// One HTTP address of the server as its log line describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// The address as bound.
    pub address: SocketAddr,
    /// Serves `/health`.
    pub health: bool,
    /// Serves `/ready`.
    pub ready: bool,
    /// Serves `/metrics`.
    pub metrics: bool,
    /// Serves the `admin` APIs and page.
    pub admin: bool,
}

/// A loopback port free for UDP and TCP right now, for the peers of the
/// sync tests that must be told their port before they start (`named`,
/// `pdns_server`, etcd; signpost itself always binds port 0). The port is
/// released before the peer binds it, so a parallel test could take it in
/// between; the system only hands out ports no socket holds, which keeps
/// that window small. (Knot's fixture in `upstream.rs` also checks
/// afterwards, through `/proc`, that nobody shares the port.)
pub fn free_port() -> u16 {
    crate::upstream::unused_port()
}

/// The path of the built binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_signpost"))
}

/// Fills a Corefile's placeholders: `{PORT}` (DNS keys, `zone:{PORT}`),
/// `{ADMIN}` (health, ready, prometheus, written `127.0.0.1:{ADMIN}`) and
/// `{API}` (the `admin` directive, written `127.0.0.2:{API}` so that it is an
/// address of its own) all become port 0. Reloaded Corefiles go through this
/// too, so a reload names the same addresses and keeps the same sockets.
pub fn render(corefile: &str) -> String {
    assert!(
        !corefile.contains("127.0.0.1:{API}"),
        "write the admin address as 127.0.0.2:{{API}}: with port 0 on both, \
         127.0.0.1:{{API}} would be the same address as 127.0.0.1:{{ADMIN}}"
    );
    corefile
        .replace("{PORT}", "0")
        .replace("{ADMIN}", "0")
        .replace("{API}", "0")
}

impl TestServer {
    /// Starts a server whose Corefile is `corefile` (placeholders filled by
    /// [`render`]), and whose directory holds `files` (relative path,
    /// contents). Waits for its DNS addresses in the log, then for `/ready`
    /// unless `wait_ready` is false.
    pub fn start_with(corefile: &str, files: &[(&str, &str)], wait_ready: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, contents) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, contents).expect("write file");
        }
        std::fs::write(dir.path().join("Corefile"), render(corefile)).expect("write Corefile");
        let log = std::fs::File::create(dir.path().join("signpost.log")).expect("log file");
        let child = Command::new(binary())
            .args(["dns", "--conf"])
            .arg(dir.path().join("Corefile"))
            .args(["--workers", "2"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start signpost");
        let mut server = Self {
            child,
            dir,
            port: 0,
            dns: Vec::new(),
        };
        // The listeners log their DNS addresses before any HTTP address is
        // bound, so the first HTTP line means every DNS line is there.
        // Without HTTP directives the first DNS line has to do.
        let http = render(corefile).lines().any(|line| {
            matches!(
                line.split_whitespace().next(),
                Some("health" | "ready" | "prometheus" | "admin")
            )
        });
        server.dns = server.wait_for_log("the DNS `listening` lines", |log| {
            let addresses = dns_addresses(log);
            let complete = !http || log.contains("HTTP endpoints listening");
            (complete && !addresses.is_empty()).then_some(addresses)
        });
        server.port = server
            .dns
            .iter()
            .find(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
            .unwrap_or(&server.dns[0])
            .port();
        if wait_ready {
            server.wait_ready(START_LIMIT);
        }
        server
    }

    /// Starts the standard cluster-zone Corefile over a catalog directory
    /// `catalog/` holding `files`.
    pub fn start(files: &[(&str, &str)]) -> Self {
        Self::start_with(&standard_corefile(""), files, true)
    }

    /// Waits until `pick` finds what it looks for in the log; panics with the
    /// log when the server exits first or after [`START_LIMIT`].
    pub fn wait_for_log<T>(&self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = SystemTime::now() + START_LIMIT;
        loop {
            let log = self.log();
            if let Some(found) = pick(&log) {
                return found;
            }
            assert!(
                SystemTime::now() < deadline,
                "{what}: not in the log within {START_LIMIT:?}; log:\n{log}"
            );
            assert!(
                !self.exited(),
                "{what}: signpost exited first; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn exited(&self) -> bool {
        // `try_wait` needs `&mut`; /proc says whether the child still runs
        // (a zombie counts as exited).
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    }

    /// Every HTTP address the server logged, once the first one is logged
    /// (all are bound in one go, right after the DNS listeners).
    pub fn sites(&self) -> Vec<Site> {
        self.wait_for_log("the `HTTP endpoints listening` lines", |log| {
            let sites = sites(log);
            (!sites.is_empty()).then_some(sites)
        })
    }

    /// The address serving `/health`, `/ready` or `/metrics` (`{ADMIN}`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.sites()
            .into_iter()
            .find(|s| s.health || s.ready || s.metrics)
            .unwrap_or_else(|| panic!("no health, ready or metrics address; log:\n{}", self.log()))
            .address
    }

    /// The `admin` directive's address (`{API}`): the JSON APIs and the page.
    pub fn api_addr(&self) -> SocketAddr {
        self.sites()
            .into_iter()
            .find(|s| s.admin)
            .unwrap_or_else(|| panic!("no admin address; log:\n{}", self.log()))
            .address
    }

    /// The DNS address bound on `ip` (a listener per `bind` address, each on
    /// a port of its own).
    pub fn dns_addr(&self, ip: IpAddr) -> SocketAddr {
        *self
            .dns
            .iter()
            .find(|a| a.ip() == ip)
            .unwrap_or_else(|| panic!("no DNS address on {ip} in {:?}", self.dns))
    }

    /// Waits until `/ready` answers 200; panics with the server log otherwise.
    pub fn wait_ready(&self, limit: Duration) {
        let address = self.admin_addr();
        let deadline = SystemTime::now() + limit;
        while SystemTime::now() < deadline {
            if let Some((200, _)) = http_get(address, "/ready") {
                return;
            }
            assert!(
                !self.exited(),
                "signpost exited before it was ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("signpost did not become ready; log:\n{}", self.log());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("signpost.log")).unwrap_or_default()
    }

    /// Path of a file in the server's directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Replaces a file in the server's directory atomically (written beside
    /// it, then renamed into place, as a ConfigMap update does), so a source
    /// that polls never reads it half written.
    pub fn write_file(&self, relative: &str, contents: &str) {
        write_atomic(&self.path(relative), contents);
    }

    /// GET on the `{ADMIN}` address: (status, body), or `None` if it cannot connect.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin_addr(), path)
    }

    /// GET on the `admin` directive's address (`{API}`): (status, body).
    pub fn api_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.api_addr(), path)
    }

    /// The DNS address on 127.0.0.1.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Runs dig against the server with extra arguments; returns stdout.
    pub fn dig(&self, args: &[&str]) -> String {
        run_client("dig", &self.port.to_string(), args)
    }

    /// Runs kdig against the server with extra arguments; returns stdout.
    pub fn kdig(&self, args: &[&str]) -> String {
        run_client("kdig", &self.port.to_string(), args)
    }

    /// Sends a raw datagram and returns the reply bytes, if one comes within
    /// [`REPLY_LIMIT`].
    pub fn udp_raw(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(REPLY_LIMIT)).expect("timeout");
        socket.send_to(packet, self.addr()).expect("send");
        let mut buf = vec![0u8; 65535];
        match socket.recv(&mut buf) {
            Ok(len) => Some(buf[..len].to_vec()),
            Err(_) => None,
        }
    }

    /// Sends a query over UDP and parses the reply.
    pub fn query(&self, name: &str, rtype: RecordType) -> Message {
        let reply = self
            .udp_raw(&query_bytes(name, rtype, None))
            .unwrap_or_else(|| panic!("no reply over UDP; log:\n{}", self.log()));
        Message::from_vec(&reply).expect("parse reply")
    }

    /// Sends a query with an EDNS UDP size over UDP and parses the reply.
    pub fn query_edns(&self, name: &str, rtype: RecordType, udp_size: u16) -> Message {
        let reply = self
            .udp_raw(&query_bytes(name, rtype, Some(udp_size)))
            .unwrap_or_else(|| panic!("no reply over UDP; log:\n{}", self.log()));
        Message::from_vec(&reply).expect("parse reply")
    }

    /// Sends several queries on one TCP connection, all written before any
    /// answer is read (pipelining), and returns the answers in order.
    pub fn query_tcp_pipelined(&self, queries: &[Vec<u8>]) -> Vec<Message> {
        let mut stream = TcpStream::connect(self.addr()).expect("connect");
        stream.set_read_timeout(Some(REPLY_LIMIT)).expect("timeout");
        let mut all = Vec::new();
        for query in queries {
            all.extend_from_slice(&(query.len() as u16).to_be_bytes());
            all.extend_from_slice(query);
        }
        stream.write_all(&all).expect("write");
        queries
            .iter()
            .map(|_| read_tcp_message(&mut stream).expect("read answer"))
            .collect()
    }

    /// One query over TCP.
    pub fn query_tcp(&self, name: &str, rtype: RecordType) -> Message {
        self.query_tcp_pipelined(&[query_bytes(name, rtype, None)])
            .remove(0)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = SystemTime::now() + START_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                SystemTime::now() < deadline,
                "signpost did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DNS addresses of every `listening udp=ADDR` line, in order.
fn dns_addresses(log: &str) -> Vec<SocketAddr> {
    log.lines()
        .filter(|line| line.contains(" listening udp="))
        .filter_map(|line| field(line, "udp")?.parse().ok())
        .collect()
}

/// Every `HTTP endpoints listening` line, in order.
fn sites(log: &str) -> Vec<Site> {
    log.lines()
        .filter(|line| line.contains("HTTP endpoints listening"))
        .filter_map(|line| {
            Some(Site {
                address: field(line, "http")?.parse().ok()?,
                health: field(line, "health")? == "true",
                ready: field(line, "ready")? == "true",
                metrics: field(line, "metrics")? == "true",
                admin: field(line, "admin")? == "true",
            })
        })
        .collect()
}

/// The value of ` key=value` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split_whitespace().next()
}

/// Writes `contents` to `path` atomically: a sibling file renamed over it.
pub fn write_atomic(path: &Path, contents: &str) {
    let parent = path.parent().expect("parent");
    std::fs::create_dir_all(parent).expect("mkdir");
    let staging = parent.join(format!(
        ".{}.staging",
        path.file_name().expect("file name").to_string_lossy()
    ));
    std::fs::write(&staging, contents).expect("write staging file");
    std::fs::rename(&staging, path).expect("rename into place");
}

/// The usual Corefile: cluster.local plus reverse zones on {PORT}, admin on
/// {ADMIN}, catalog in `catalog/`; `extra` is added inside the kubernetes block.
pub fn standard_corefile(extra: &str) -> String {
    format!(
        "cluster.local:{{PORT}} in-addr.arpa:{{PORT}} ip6.arpa:{{PORT}} {{\n    bind 127.0.0.1\n    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        catalog catalog\n{extra}\n    }}\n    health 127.0.0.1:{{ADMIN}}\n    ready 127.0.0.1:{{ADMIN}}\n    prometheus 127.0.0.1:{{ADMIN}}\n}}\n"
    )
}

/// Encodes a query with RD set and, optionally, an OPT record.
pub fn query_bytes(name: &str, rtype: RecordType, udp_size: Option<u16>) -> Vec<u8> {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    if let Some(size) = udp_size {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(size);
        message.set_edns(edns);
    }
    message.to_vec().expect("encode query")
}

fn rand_id() -> u16 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    (nanos ^ (nanos >> 16)) as u16
}

/// Reads one length-prefixed DNS message.
pub fn read_tcp_message(stream: &mut TcpStream) -> std::io::Result<Message> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf)?;
    Message::from_vec(&buf).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Minimal HTTP/1.1 GET.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(REPLY_LIMIT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn run_client(program: &str, port: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(["@127.0.0.1", "-p", port])
        .args(timeout_options(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (install bind9-dnsutils / knot-dnsutils): {e}")
        });
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One try with a 5 s timeout (a loaded machine answers late, not never), in
/// each client's spelling: kdig rejects dig's `+time`/`+tries` (and prints
/// its usage instead of querying).
fn timeout_options(program: &str) -> [&'static str; 2] {
    match program {
        "kdig" => ["+timeout=5", "+retry=0"],
        _ => ["+time=5", "+tries=1"],
    }
}

/// Reads a fixture from `examples/`.
pub fn example(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path);
    std::fs::read_to_string(&root).unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
}

// === impl Backend ===

/// [`Backend`] answers every request with 200.
pub const HEALTHY: u8 = 0;
/// [`Backend`] answers every request with 503.
pub const FAILING: u8 = 1;
/// [`Backend`] accepts and reads but never answers: only a timeout fails it.
pub const HANGING: u8 = 2;
/// [`Backend`] closes its listener: connections are refused.
pub const CLOSED: u8 = 3;

/// A tiny HTTP server on one loopback address whose behaviour a test
/// switches with [`Backend::set`]; the health checks of the real binary are
/// its only clients. Stops on drop.
pub struct Backend {
    mode: Arc<AtomicU8>,
    /// Request paths seen, in order.
    pub paths: Arc<Mutex<Vec<String>>>,
    /// Connections accepted.
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    /// Serves on `listener` (non-blocking, bound to `address`); rebinds
    /// `address` when switched back from [`CLOSED`].
    pub fn start(address: SocketAddr, listener: TcpListener) -> Self {
        let backend = Self {
            mode: Arc::new(AtomicU8::new(HEALTHY)),
            paths: Arc::new(Mutex::new(Vec::new())),
            requests: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (mode, paths, requests, stop) = (
            backend.mode.clone(),
            backend.paths.clone(),
            backend.requests.clone(),
            backend.stop.clone(),
        );
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let current = mode.load(Ordering::Relaxed);
                if current == CLOSED {
                    listener = None;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                if listener.is_none() {
                    listener = TcpListener::bind(address).ok();
                    listener.as_ref().map(|l| l.set_nonblocking(true));
                }
                let Some(accepting) = &listener else { continue };
                let Ok((mut stream, _)) = accepting.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                requests.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buffer = [0u8; 1024];
                let read = stream.read(&mut buffer).unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..read]).into_owned();
                if let Some(path) = request.split_whitespace().nth(1) {
                    paths.lock().unwrap().push(path.to_owned());
                }
                match current {
                    HEALTHY => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                    }
                    FAILING => {
                        let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    // Accepts and reads, never answers: only the timeout can fail it.
                    _ => held.push(stream),
                }
                held.truncate(64);
            }
        });
        backend
    }

    /// Switches the behaviour: [`HEALTHY`], [`FAILING`], [`HANGING`] or [`CLOSED`].
    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One [`Backend`] on each of `addresses` (loopback), all on one port.
pub fn backends_on(addresses: &[Ipv4Addr]) -> (u16, Vec<Backend>) {
    let (first, rest) = addresses.split_first().expect("at least one address");
    loop {
        let listener = TcpListener::bind((*first, 0)).expect("bind backend");
        let port = listener.local_addr().expect("addr").port();
        let others: Vec<TcpListener> = rest
            .iter()
            .filter_map(|address| TcpListener::bind((*address, port)).ok())
            .collect();
        if others.len() != rest.len() {
            continue;
        }
        let backends = std::iter::once(listener)
            .chain(others)
            .zip(addresses)
            .map(|(listener, address)| {
                listener.set_nonblocking(true).expect("nonblocking");
                Backend::start(SocketAddr::from((*address, port)), listener)
            })
            .collect();
        return (port, backends);
    }
}
