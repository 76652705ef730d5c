//! `--provider=pdns` against a real PowerDNS Authoritative server
//! (`pdns_server` with `pdns-backend-sqlite3`, API on), cross-checked with
//! PowerDNS's own HTTP API through curl.

use super::*;
use serde_json::Value;
use std::sync::OnceLock;

/// Debian's pdns-backend-sqlite3 schema.
const SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";
const ZONES: [&str; 2] = ["pdns-sync.test", "pdns-upsert.test"];

/// A running `pdns_server`.
pub struct Pdns {
    pub daemon: Daemon,
    pub api_port: u16,
    pub dns_port: u16,
    pub dir: PathBuf,
    pub key: String,
}

impl Pdns {
    /// Starts PowerDNS with API key `key`; creates `zones` when the database is new.
    pub fn start(
        name: &str,
        zones: &[&str],
        key: &str,
        ports: Option<(u16, u16)>,
        dir: Option<PathBuf>,
        cleanup: bool,
    ) -> Self {
        let dir = dir.unwrap_or_else(|| server_dir(name));
        let database = dir.join("pdns.db");
        let fresh = !database.exists();
        if fresh {
            let schema = std::fs::read_to_string(SCHEMA).expect("pdns-backend-sqlite3 schema");
            run_with_input(Command::new("sqlite3").arg(&database), &schema);
        }
        let (api_port, dns_port) = ports.unwrap_or_else(|| (free_port(), free_port()));
        let conf = format!(
            "launch=gsqlite3\ngsqlite3-database={}\nlocal-address=127.0.0.1\nlocal-port={dns_port}\napi=yes\napi-key={key}\nwebserver=yes\nwebserver-address=127.0.0.1\nwebserver-port={api_port}\nwebserver-allow-from=127.0.0.0/8\nsocket-dir={d}\nguardian=no\ndaemon=no\ndisable-syslog=yes\nwrite-pid=no\nloglevel=4\n",
            database.display(),
            d = dir.display()
        );
        std::fs::write(dir.join("pdns.conf"), conf).unwrap();
        let args = vec![format!("--config-dir={}", dir.display())];
        let daemon = Daemon::start(
            "pdns_server",
            &args,
            &dir.join("pdns.log"),
            cleanup.then_some(dir.as_path()),
        );
        let pdns = Self {
            daemon,
            api_port,
            dns_port,
            dir,
            key: key.to_owned(),
        };
        let ready = wait_until(Duration::from_secs(20), || {
            pdns.api("GET", "/api/v1/servers/localhost", None).0 == 200
        });
        assert!(
            ready,
            "pdns_server did not start; log:\n{}",
            pdns.daemon.log()
        );
        if fresh {
            for zone in zones {
                let body = format!(
                    "{{\"name\":\"{zone}.\",\"kind\":\"Native\",\"nameservers\":[\"ns.{zone}.\"]}}"
                );
                let (status, text) =
                    pdns.api("POST", "/api/v1/servers/localhost/zones", Some(&body));
                assert_eq!(status, 201, "creating {zone}: {text}");
            }
        }
        pdns
    }

    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Pdns> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start("pdns", &ZONES, "shared-api-key-1f2e3d", None, None, true))
    }

    /// One API call with curl: (HTTP status, body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut command = Command::new("curl");
        command
            .args([
                "-s",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "-X",
                method,
                "--max-time",
                "5",
            ])
            .args([
                "-H",
                &format!("X-API-Key: {}", self.key),
                "-H",
                "Content-Type: application/json",
            ])
            .arg(format!("http://127.0.0.1:{}{path}", self.api_port));
        if let Some(body) = body {
            command.args(["--data", body]);
        }
        let Ok(output) = command.output() else {
            return (0, String::new());
        };
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (status.trim().parse().unwrap_or(0), body.to_owned())
    }
}

/// A zone of a PowerDNS server and the API key sync uses.
pub struct PdnsZone<'a> {
    pub pdns: &'a Pdns,
    pub zone: &'static str,
    pub sync_key: String,
}

impl ZoneUnderTest for PdnsZone<'_> {
    fn zone(&self) -> String {
        self.zone.to_owned()
    }

    fn provider_args(&self) -> Vec<String> {
        vec![
            "--provider=pdns".to_owned(),
            format!("--pdns-server=http://127.0.0.1:{}", self.pdns.api_port),
            format!("--pdns-api-key={}", self.sync_key),
        ]
    }

    fn records(&self) -> BTreeSet<Row> {
        let (status, body) = self.pdns.api(
            "GET",
            &format!("/api/v1/servers/localhost/zones/{}.", self.zone),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let zone: Value = serde_json::from_str(&body).unwrap();
        let mut rows = BTreeSet::new();
        for rrset in zone["rrsets"].as_array().unwrap() {
            for record in rrset["records"].as_array().unwrap() {
                rows.insert((
                    rrset["name"]
                        .as_str()
                        .unwrap()
                        .trim_end_matches('.')
                        .to_owned(),
                    rrset["type"].as_str().unwrap().to_owned(),
                    record["content"]
                        .as_str()
                        .unwrap()
                        .trim_matches('"')
                        .trim_end_matches('.')
                        .to_owned(),
                ));
            }
        }
        rows
    }

    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>) {
        let mut rrsets = vec![format!(
            "{{\"name\":\"{name}.\",\"type\":\"A\",\"ttl\":300,\"changetype\":\"REPLACE\",\"records\":[{{\"content\":\"{ip}\",\"disabled\":false}}]}}"
        )];
        if let Some(owner) = owner {
            rrsets.push(format!(
                "{{\"name\":\"a-{name}.\",\"type\":\"TXT\",\"ttl\":300,\"changetype\":\"REPLACE\",\"records\":[{{\"content\":\"\\\"{}\\\"\",\"disabled\":false}}]}}",
                ownership(owner, "service/other/x")
            ));
        }
        let body = format!("{{\"rrsets\":[{}]}}", rrsets.join(","));
        let (status, text) = self.pdns.api(
            "PATCH",
            &format!("/api/v1/servers/localhost/zones/{}.", self.zone),
            Some(&body),
        );
        assert_eq!(status, 204, "{text}");
    }
}

/// Issue 13 "Done when" 3 on PowerDNS.
#[test]
fn pdns_lifecycle_under_sync() {
    let pdns = Pdns::shared();
    lifecycle_under_sync(&PdnsZone {
        pdns,
        zone: "pdns-sync.test",
        sync_key: pdns.key.clone(),
    });
}

/// Issue 13 "Done when" 3 on PowerDNS: upsert-only keeps records.
#[test]
fn pdns_upsert_only_keeps_deleted_services_records() {
    let pdns = Pdns::shared();
    deletion_kept_under_upsert_only(&PdnsZone {
        pdns,
        zone: "pdns-upsert.test",
        sync_key: pdns.key.clone(),
    });
}

/// Issue 13 "Done when" 4 on PowerDNS: a refused API key, then the server
/// down mid-run: nothing foreign deleted, errors counted, convergence when it
/// is back; the API keys appear in no log line and no metric.
#[test]
fn pdns_refused_key_and_server_down() {
    let zone_name = "pdns-failure.test";
    let server_key = "server-key-7a1c9e";
    let sync_key = "sync-key-4b8d2f";
    let pdns = Pdns::start("pdns-failure", &[zone_name], server_key, None, None, false);
    let _cleanup = RemoveOnDrop(pdns.dir.clone());
    let zone = PdnsZone {
        pdns: &pdns,
        zone: zone_name,
        sync_key: sync_key.to_owned(),
    };
    let foreign = format!("foreign.{zone_name}");
    let web = format!("web.{zone_name}");
    zone.add_foreign(&foreign, "198.51.100.1", Some("other-owner"));

    let catalog = Catalog::new();
    catalog.service("web", &format!("{web},{foreign}"), "192.0.2.50", "");
    let mut args = sync_args(&zone, "sync");
    args.push("--log-level=debug".to_owned());
    let sync = SyncProcess::start(&catalog, &args, &[]);
    let refused = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unauthorized\"}")
            .is_some_and(|v| v >= 2.0)
    });
    assert!(
        refused,
        "refused key not counted:\n{}\n{}",
        sync.scrape(),
        sync.log()
    );
    assert!(rows_at(&zone.records(), &web).is_empty());

    // The server now accepts sync's key.
    pdns.daemon.stop();
    let ports = Some((pdns.api_port, pdns.dns_port));
    let fixed = Pdns::start(
        "pdns-failure",
        &[zone_name],
        sync_key,
        ports,
        Some(pdns.dir.clone()),
        false,
    );
    let fixed_zone = PdnsZone {
        pdns: &fixed,
        zone: zone_name,
        sync_key: sync_key.to_owned(),
    };
    let converged = wait_until(INTERVAL * 2 + MARGIN, || {
        has(&fixed_zone.records(), &web, "A", "192.0.2.50")
    });
    assert!(
        converged,
        "no convergence with the accepted key: {:?}\n{}",
        fixed_zone.records(),
        sync.log()
    );

    // Down mid-run; a change waits; it converges when the server is back.
    fixed.daemon.stop();
    catalog.service("web", &format!("{web},{foreign}"), "192.0.2.51", "");
    let counted = wait_until(INTERVAL * 4 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unreachable\"}")
            .is_some_and(|v| v >= 1.0)
    });
    assert!(counted, "server down not counted:\n{}", sync.scrape());
    let back = Pdns::start(
        "pdns-failure",
        &[zone_name],
        sync_key,
        ports,
        Some(pdns.dir.clone()),
        false,
    );
    let back_zone = PdnsZone {
        pdns: &back,
        zone: zone_name,
        sync_key: sync_key.to_owned(),
    };
    let converged = wait_until(INTERVAL * 3 + MARGIN, || {
        has(&back_zone.records(), &web, "A", "192.0.2.51")
    });
    assert!(
        converged,
        "no convergence after restart: {:?}\n{}",
        back_zone.records(),
        sync.log()
    );
    let records = back_zone.records();
    assert!(
        has(&records, &foreign, "A", "198.51.100.1"),
        "foreign record lost: {records:?}"
    );
    assert!(has(
        &records,
        &format!("a-{foreign}"),
        "TXT",
        &ownership("other-owner", "service/other/x")
    ));

    let log = sync.log();
    let scrape = sync.scrape();
    for secret in [server_key, sync_key] {
        assert!(!log.contains(secret), "an API key is in the log");
        assert!(!scrape.contains(secret), "an API key is in the metrics");
    }
    back.daemon.stop();
}
