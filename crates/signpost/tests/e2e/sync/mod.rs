//! `signpost sync` end to end (issues 13 and 14): the real binary against
//! real BIND 9, PowerDNS, etcd and moto (Route 53), and strict fakes of
//! Cloudflare's API, Azure DNS and Google Cloud DNS, started on loopback by the tests, objects from a catalog directory the tests edit. Every provider
//! runs the same scenario functions ([`lifecycle_under_sync`],
//! [`deletion_kept_under_upsert_only`]) through its [`ZoneUnderTest`].
//!
//! Shared servers are started once per test binary ([`Daemon`] under a
//! `OnceLock`) and stopped when the binary exits: each runs under a small
//! shell that kills it, and removes its directory, when its stdin (a pipe
//! from this process) closes. Tests that stop a server start their own.

#![allow(dead_code, unreachable_pub)]

mod aws;
mod azure;
mod bind;
mod chaos;
mod cli;
mod cloudflare;
mod etcd;
mod google;
mod kubernetes;
mod pdns;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use crate::support::{binary, free_port, http_get};

/// How long the interval is in these tests, and the margin a change may take
/// beyond one interval (catalog poll 250 ms, process scheduling, provider).
pub const INTERVAL: Duration = Duration::from_secs(2);
pub const MARGIN: Duration = Duration::from_secs(4);

/// Polls `check` every 100 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server process that lives until [`Daemon::stop`] or until this test
/// binary exits (its watchdog shell sees stdin close), whichever is first.
pub struct Daemon {
    child: Mutex<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `program args` with its output in `log`; `cleanup` (a
    /// directory) is removed when it stops.
    pub fn start(program: &str, args: &[String], log: &Path, cleanup: Option<&Path>) -> Self {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("daemon log");
        let script = r#"prog="$1"; shift; "$prog" "$@" & child=$!; read _unused; kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; if [ -n "$CLEANUP" ]; then rm -rf "$CLEANUP"; fi"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .args(args)
            .env(
                "CLEANUP",
                cleanup.map(|p| p.display().to_string()).unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::from(output.try_clone().expect("clone log")))
            .stderr(Stdio::from(output))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Self {
            child: Mutex::new(child),
            log: log.to_path_buf(),
        }
    }

    /// Stops the server and waits for it.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap();
        drop(child.stdin.take());
        let _ = child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A directory for a server's files that outlives the test function (the
/// daemon's watchdog removes it).
pub fn server_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("signpost-sync-{name}-"))
        .tempdir()
        .expect("tempdir")
        .keep()
}

/// Removes a server directory when the test ends, passed or not.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A catalog directory the test writes Services into.
pub struct Catalog {
    pub dir: tempfile::TempDir,
}

impl Catalog {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("catalog")
    }

    /// Writes (or replaces) a LoadBalancer Service named `name` with the
    /// hostname annotation `hosts` and ingress IP `ip`; `extra` adds annotation lines.
    pub fn service(&self, name: &str, hosts: &str, ip: &str, extra: &str) {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    external-dns.kubernetes.io/hostname: \"{hosts}\"\n{extra}spec:\n  type: LoadBalancer\n  ports:\n  - port: 80\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: {ip}\n"
        );
        self.write(&format!("{name}.yaml"), &yaml);
    }

    /// Writes a file into the catalog atomically (rename), so the poller
    /// never reads half of it.
    pub fn write(&self, file: &str, text: &str) {
        std::fs::create_dir_all(self.path()).unwrap();
        let temporary = self.dir.path().join(format!(".{file}.tmp"));
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, self.path().join(file)).unwrap();
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.path().join(file)).unwrap();
    }
}

/// A running `signpost sync`. Killed on drop.
pub struct SyncProcess {
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SyncProcess {
    /// Starts `signpost sync` with `args` (plus `--metrics-address` and
    /// `--catalog`) and environment `env`.
    pub fn start(catalog: &Catalog, args: &[String], env: &[(String, String)]) -> Self {
        std::fs::create_dir_all(catalog.path()).unwrap();
        let mut all = vec![format!("--catalog={}", catalog.path().display())];
        all.extend_from_slice(args);
        Self::spawn(&all, env)
    }

    /// Starts `signpost sync` with `args` (plus `--metrics-address`) and
    /// environment `env`: the arguments name the source of objects.
    pub fn spawn(args: &[String], env: &[(String, String)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sync.log");
        let file = std::fs::File::create(&log).expect("log");
        // Port 0: the system picks the port, the log line says which.
        let child = Command::new(binary())
            .arg("sync")
            .arg("--metrics-address=127.0.0.1:0")
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start signpost sync");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// The metrics and health address as bound, from the log line
    /// `metrics and health endpoints listening http=ADDR`; `None` until it
    /// is logged.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("metrics and health endpoints listening"))?;
        let start = line.find(" http=")? + " http=".len();
        line[start..].split_whitespace().next()?.parse().ok()
    }

    /// The metrics and health address, once it is logged (60 s at most).
    pub fn metrics(&self) -> SocketAddr {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(60), || {
            found = self.metrics_address();
            found.is_some()
        });
        assert!(ok, "no metrics address in the log:\n{}", self.log());
        found.expect("found")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn scrape(&self) -> String {
        self.metrics_address()
            .and_then(|address| http_get(address, "/metrics"))
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The value of one series (`name` or `name{labels}`), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric(&self.scrape(), series)
    }

    /// Waits for the first successful reconciliation.
    pub fn wait_first_sync(&self) {
        let ok = wait_until(Duration::from_secs(30), || {
            self.metric("external_dns_controller_last_sync_timestamp_seconds")
                .is_some_and(|v| v > 0.0)
        });
        assert!(ok, "no successful sync; log:\n{}", self.log());
    }

    /// Waits until a reconciliation that started after now has succeeded.
    pub fn wait_next_sync(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let ok = wait_until(INTERVAL * 3 + MARGIN, || {
            self.metric("external_dns_controller_last_reconcile_timestamp_seconds")
                .is_some_and(|v| v > now)
                && self
                    .metric("external_dns_controller_last_sync_timestamp_seconds")
                    .is_some_and(|v| v > now)
        });
        assert!(
            ok,
            "no successful sync after the change; log:\n{}",
            self.log()
        );
    }

    /// Waits for the process to exit: its status and its log.
    pub fn exit_status(mut self) -> (Option<std::process::ExitStatus>, String) {
        wait_until(Duration::from_secs(30), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        (self.child.try_wait().ok().flatten(), self.log())
    }
}

impl Drop for SyncProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One series' value in a Prometheus text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
}

/// A record as the tests compare them: lower-case name without the
/// trailing dot, type, value (TXT without quotes).
pub type Row = (String, String, String);

/// What every provider's end-to-end test needs from its zone.
pub trait ZoneUnderTest {
    /// The zone (no trailing dot).
    fn zone(&self) -> String;
    /// `--provider=...` and its flags.
    fn provider_args(&self) -> Vec<String>;
    /// Environment for `signpost sync`.
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Every record, read with the server's own tools.
    fn records(&self) -> BTreeSet<Row>;
    /// Adds an A record (and an ownership TXT for `owner`) behind sync's back.
    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>);
}

pub fn ownership(owner: &str, resource: &str) -> String {
    format!("heritage=external-dns,external-dns/owner={owner},external-dns/resource={resource}")
}

pub fn rows_at<'a>(records: &'a BTreeSet<Row>, name: &str) -> Vec<&'a Row> {
    records.iter().filter(|(n, _, _)| n == name).collect()
}

pub fn has(records: &BTreeSet<Row>, name: &str, record_type: &str, value: &str) -> bool {
    records.contains(&(name.to_owned(), record_type.to_owned(), value.to_owned()))
}

pub fn sync_args(zone: &dyn ZoneUnderTest, policy: &str) -> Vec<String> {
    let mut args = vec![
        "--source=service".to_owned(),
        format!("--policy={policy}"),
        format!("--interval={}s", INTERVAL.as_secs()),
        format!("--domain-filter={}", zone.zone()),
        "--txt-owner-id=default".to_owned(),
    ];
    args.extend(zone.provider_args());
    args
}

/// Issue 13, "Done when" 3, under `--policy=sync`: annotate ⇒ the record and
/// its ownership TXT within one interval; change ⇒ updated; delete the
/// Service ⇒ both removed; a foreign (another owner's) and an unowned record
/// at wanted names block the creates, are counted, and are never touched.
pub fn lifecycle_under_sync(zone: &dyn ZoneUnderTest) {
    let z = zone.zone();
    let (web, taken, plain) = (
        format!("web.{z}"),
        format!("taken.{z}"),
        format!("plain.{z}"),
    );
    zone.add_foreign(&taken, "198.51.100.9", Some("other-owner"));
    zone.add_foreign(&plain, "198.51.100.10", None);
    let foreign = |records: &BTreeSet<Row>| -> BTreeSet<Row> {
        records
            .iter()
            .filter(|(n, _, _)| n.contains("taken.") || n.contains("plain."))
            .cloned()
            .collect()
    };
    let before = foreign(&zone.records());
    assert!(has(&before, &taken, "A", "198.51.100.9"), "{before:?}");

    let catalog = Catalog::new();
    let sync = SyncProcess::start(&catalog, &sync_args(zone, "sync"), &zone.env());
    sync.wait_first_sync();

    // Annotate: within one interval (plus the margin).
    let started = Instant::now();
    catalog.service("web", &format!("{web},{taken},{plain}"), "192.0.2.10", "");
    let txt = ownership("default", "service/default/web");
    let created = wait_until(INTERVAL + MARGIN, || {
        let records = zone.records();
        has(&records, &web, "A", "192.0.2.10") && has(&records, &format!("a-{web}"), "TXT", &txt)
    });
    assert!(
        created,
        "web not created within {:?}: {:?}\nlog:\n{}",
        INTERVAL + MARGIN,
        zone.records(),
        sync.log()
    );
    assert!(started.elapsed() <= INTERVAL + MARGIN);
    sync.wait_next_sync();
    let scrape = sync.scrape();
    for foreign_owner in ["other-owner", ""] {
        let series = format!(
            "external_dns_registry_skipped_records_owner_mismatch_per_sync{{record_type=\"a\",owner=\"default\",foreign_owner=\"{foreign_owner}\",domain=\"{z}\"}}"
        );
        assert_eq!(metric(&scrape, &series), Some(1.0), "{series} in\n{scrape}");
    }
    assert_eq!(foreign(&zone.records()), before, "a foreign record changed");

    // Change: updated.
    catalog.service("web", &format!("{web},{taken},{plain}"), "192.0.2.11", "");
    let updated = wait_until(INTERVAL + MARGIN, || {
        let records = zone.records();
        has(&records, &web, "A", "192.0.2.11") && !has(&records, &web, "A", "192.0.2.10")
    });
    assert!(
        updated,
        "web not updated: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );
    assert!(has(&zone.records(), &format!("a-{web}"), "TXT", &txt));

    // Delete the Service: record and TXT removed; foreign ones stay.
    catalog.remove("web.yaml");
    let removed = wait_until(INTERVAL + MARGIN, || {
        let records = zone.records();
        rows_at(&records, &web).is_empty() && rows_at(&records, &format!("a-{web}")).is_empty()
    });
    assert!(
        removed,
        "web not removed: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );
    sync.wait_next_sync();
    assert_eq!(foreign(&zone.records()), before, "a foreign record changed");
    assert_eq!(
        sync.metric("external_dns_registry_errors_total"),
        Some(0.0),
        "{}",
        sync.log()
    );
}

/// Issue 13, "Done when" 3, under `--policy=upsert-only`: deleting the
/// Service keeps its record (and TXT) through later runs.
pub fn deletion_kept_under_upsert_only(zone: &dyn ZoneUnderTest) {
    let z = zone.zone();
    let keep = format!("keep.{z}");
    let catalog = Catalog::new();
    catalog.service("keep", &keep, "192.0.2.20", "");
    let sync = SyncProcess::start(&catalog, &sync_args(zone, "upsert-only"), &zone.env());
    let created = wait_until(INTERVAL + MARGIN + Duration::from_secs(10), || {
        has(&zone.records(), &keep, "A", "192.0.2.20")
    });
    assert!(
        created,
        "keep not created: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );
    catalog.remove("keep.yaml");
    sync.wait_next_sync();
    sync.wait_next_sync();
    let records = zone.records();
    assert!(has(&records, &keep, "A", "192.0.2.20"), "{records:?}");
    assert!(
        has(
            &records,
            &format!("a-{keep}"),
            "TXT",
            &ownership("default", "service/default/keep")
        ),
        "{records:?}"
    );
}

/// Reads one HTTP/1.1 request (head through the blank line, and a
/// `Content-Length` body) from a test proxy's client: `None` when the client
/// closes or stalls for 30 s first.
pub fn read_request(client: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use std::io::Read as _;
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    Some((head, buffer[head_end..head_end + length].to_vec()))
}

/// Sends one request (as [`read_request`] returned it) to `127.0.0.1:upstream`
/// with `Connection: close` and returns the whole response; empty when the
/// upstream cannot be reached.
pub fn forward(upstream: u16, head: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let Ok(mut server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
        return Vec::new();
    };
    let _ = server.set_read_timeout(Some(Duration::from_secs(60)));
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    let _ = server.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
    let _ = server.write_all(body);
    let mut response = Vec::new();
    let _ = server.read_to_end(&mut response);
    response
}

/// Writes `text` to a command's stdin and returns its stdout; panics on failure.
pub fn run_with_input(command: &mut Command, text: &str) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The regions of the geographic-routing scenarios: (region, load-balancer
/// address, endpoint addresses).
pub const GEO_REGIONS: [(&str, &str, [&str; 2]); 3] = [
    ("us-east-1", "192.0.2.101", ["10.1.0.1", "10.1.0.2"]),
    ("eu-west-1", "192.0.2.102", ["10.2.0.1", "10.2.0.2"]),
    ("ap-southeast-1", "192.0.2.103", ["10.3.0.1", "10.3.0.2"]),
];

/// The sync interval of the verdict scenario: long, so a change within the
/// scenario's bound can only come from the verdict trigger.
pub const GEO_INTERVAL: Duration = Duration::from_secs(60);
/// `--health-verdicts-debounce` in the verdict scenario.
pub const GEO_DEBOUNCE: Duration = Duration::from_secs(1);

/// Writes one regional Service of `GEO_REGIONS` behind `name` (a
/// LoadBalancer with `dns.aikernel.io/geo-region`) and its EndpointSlice.
pub fn geo_service(catalog: &Catalog, name: &str, region: &str, ip: &str, endpoints: &[&str]) {
    let service = format!("app-{region}");
    catalog.service(
        &service,
        name,
        ip,
        &format!("    dns.aikernel.io/geo-region: {region}\n"),
    );
    let endpoints: String = endpoints
        .iter()
        .map(|a| format!("- addresses: [\"{a}\"]\n  conditions:\n    ready: true\n"))
        .collect();
    catalog.write(
        &format!("{service}-slice.yaml"),
        &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-abcde\n  namespace: default\n  labels:\n    kubernetes.io/service-name: {service}\naddressType: IPv4\nports:\n- port: 80\nendpoints:\n{endpoints}"
        ),
    );
}

/// The health controller's verdicts in etcd (`--health-verdicts=etcd:PREFIX`),
/// written as `signpost health` writes them.
pub struct EtcdVerdicts {
    pub etcd: &'static etcd::Etcd,
    pub prefix: String,
}

impl EtcdVerdicts {
    pub fn new(name: &str) -> Self {
        Self {
            etcd: etcd::Etcd::shared(),
            prefix: format!("/signpost-test/{name}/health/"),
        }
    }

    /// `signpost sync`'s flag and environment for these verdicts.
    pub fn args(&self) -> Vec<String> {
        vec![
            format!("--health-verdicts=etcd:{}", self.prefix),
            format!("--health-verdicts-debounce={}s", GEO_DEBOUNCE.as_secs()),
        ]
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![("ETCD_URLS".to_owned(), self.etcd.url())]
    }

    /// Publishes `unhealthy` (`namespace/service/address` entries).
    pub fn publish(&self, unhealthy: &[String]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let value = serde_json::json!({
            "unhealthy": unhealthy,
            "publishedAt": now,
            "publishedBy": "e2e",
        });
        self.etcd
            .etcdctl(&[
                "put",
                &format!("{}unhealthy", self.prefix),
                &value.to_string(),
            ])
            .expect("etcdctl put");
    }
}

/// Every endpoint of the regions `regions` as verdict entries, plus `extra`.
pub fn failing(regions: &[&str], extra: &[&str]) -> Vec<String> {
    let mut entries: Vec<String> = GEO_REGIONS
        .iter()
        .filter(|(region, _, _)| regions.contains(region))
        .flat_map(|(region, _, endpoints)| {
            endpoints
                .iter()
                .map(move |a| format!("default/app-{region}/{a}"))
        })
        .collect();
    entries.extend(extra.iter().map(|e| (*e).to_owned()));
    entries
}

/// Issue 14 "Done when" 3, second half, on any provider: three regional
/// Services behind `app.<zone>`, verdicts from the health controller's etcd
/// key (real etcd). The sync interval is 60 s, so every change within the
/// bound (debounce + [`MARGIN`]) was caused by the verdict change.
///
/// 1. eu-west-1's endpoints all fail (and one of us-east-1's: a partial
///    failure keeps a region) before sync starts ⇒ only us-east-1 and
///    ap-southeast-1 are published;
/// 2. verdicts cleared ⇒ eu-west-1 is back within the bound;
/// 3. every region fails ⇒ all three stay published (fail open, counted);
/// 4. eu-west-1 alone fails ⇒ it is withdrawn within the bound while the
///    other two stay.
///
/// The order never re-creates a record set sync deleted before: moto 5
/// rejects a CREATE identical to one in its change journal while any set of
/// that name and type exists (it ignores the SetIdentifier there), which
/// real Route 53 accepts. `published(zone, regions)` checks the provider's
/// own shape (Route 53 latency sets with their TXT twins, plain records)
/// for exactly those regions.
pub fn geo_follows_verdicts(
    zone: &dyn ZoneUnderTest,
    published: &dyn Fn(&dyn ZoneUnderTest, &[&str]) -> bool,
) {
    let z = zone.zone();
    let name = format!("app.{z}");
    let verdicts = EtcdVerdicts::new(&z);
    verdicts.publish(&failing(
        &["eu-west-1"],
        &["default/app-us-east-1/10.1.0.1"],
    ));
    let catalog = Catalog::new();
    for (region, ip, endpoints) in GEO_REGIONS {
        geo_service(&catalog, &name, region, ip, &endpoints);
    }
    let mut args = sync_args(zone, "sync");
    args.retain(|a| !a.starts_with("--interval="));
    args.push(format!("--interval={}s", GEO_INTERVAL.as_secs()));
    args.extend(verdicts.args());
    let mut env = zone.env();
    env.extend(verdicts.env());
    let sync = SyncProcess::start(&catalog, &args, &env);
    let all = ["us-east-1", "eu-west-1", "ap-southeast-1"];
    let healthy = ["us-east-1", "ap-southeast-1"];
    let owned = |records: &BTreeSet<Row>| {
        records.iter().any(|(n, t, v)| {
            n == &format!("a-{name}") && t == "TXT" && v.contains("external-dns/owner=default")
        })
    };
    let bound = GEO_DEBOUNCE + MARGIN;
    let withdrawn_series =
        format!("signpost_sync_geo_region_withdrawn{{name=\"{name}\",region=\"eu-west-1\"}}");
    let fail_open_series = format!("signpost_sync_geo_fail_open{{name=\"{name}\"}}");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };

    // 1. Failing from the start: never published.
    let first = wait_until(Duration::from_secs(30), || published(zone, &healthy));
    assert!(first, "{:?}\n{}", zone.records(), sync.log());
    assert!(owned(&zone.records()), "{:?}", zone.records());
    let counted = wait_until(MARGIN, || sync.metric(&withdrawn_series) == Some(1.0));
    assert!(counted, "{}", sync.scrape());
    assert!(sync.log().contains("region withdrawn"), "{}", sync.log());

    // 2. Recovery: the verdicts clear, the region comes back.
    let started = Instant::now();
    verdicts.publish(&[]);
    let back = wait_until(bound, || published(zone, &all));
    assert!(
        back,
        "eu-west-1 not back within {bound:?}: {:?}\n{}",
        zone.records(),
        sync.log()
    );
    assert!(started.elapsed() < GEO_INTERVAL);
    let cleared = wait_until(MARGIN, || sync.metric(&withdrawn_series).is_none());
    assert!(cleared, "{}", sync.scrape());
    assert!(
        sync.log().contains("region published again"),
        "{}",
        sync.log()
    );

    // 3. Every region fails: a run after the change keeps all three (fail open).
    let changed_at = now();
    verdicts.publish(&failing(&all, &[]));
    let ran = wait_until(bound, || {
        sync.metric(&fail_open_series) == Some(1.0)
            && sync
                .metric("external_dns_controller_last_sync_timestamp_seconds")
                .is_some_and(|t| t > changed_at)
    });
    assert!(
        ran,
        "no fail-open run within {bound:?}:\n{}\n{}",
        sync.scrape(),
        sync.log()
    );
    assert!(
        published(zone, &all),
        "{:?}\n{}",
        zone.records(),
        sync.log()
    );
    assert!(
        sync.metric(&withdrawn_series).is_none(),
        "{}",
        sync.scrape()
    );
    assert!(sync.log().contains("fail open"), "{}", sync.log());

    // 4. eu-west-1 alone fails: withdrawn within the bound, the others stay.
    let started = Instant::now();
    verdicts.publish(&failing(&["eu-west-1"], &[]));
    let gone = wait_until(bound, || published(zone, &healthy));
    assert!(
        gone,
        "eu-west-1 not withdrawn within {bound:?}: {:?}\n{}",
        zone.records(),
        sync.log()
    );
    assert!(started.elapsed() < GEO_INTERVAL);
    assert!(owned(&zone.records()), "{:?}", zone.records());
    let counted = wait_until(MARGIN, || {
        sync.metric(&withdrawn_series) == Some(1.0) && sync.metric(&fail_open_series).is_none()
    });
    assert!(counted, "{}", sync.scrape());
    assert_eq!(
        sync.metric("external_dns_registry_errors_total"),
        Some(0.0),
        "{}",
        sync.log()
    );
    assert!(
        !sync.log().contains("failed to do run once"),
        "{}",
        sync.log()
    );
}

/// `published` for providers without routing policies: the name holds
/// plain A records of exactly `regions`' load-balancer addresses.
pub fn plain_records_of(zone: &dyn ZoneUnderTest, regions: &[&str]) -> bool {
    let name = format!("app.{}", zone.zone());
    let records = zone.records();
    let found: BTreeSet<&str> = records
        .iter()
        .filter(|(n, t, _)| n == &name && t == "A")
        .map(|(_, _, v)| v.as_str())
        .collect();
    let wanted: BTreeSet<&str> = GEO_REGIONS
        .iter()
        .filter(|(region, _, _)| regions.contains(region))
        .map(|(_, ip, _)| *ip)
        .collect();
    found == wanted
}
