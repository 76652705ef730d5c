//! `--provider=coredns` against a real etcd (`etcd` from Debian's
//! etcd-server), the SkyDNS layout cross-checked with `etcdctl`.

use super::*;
use serde_json::Value;
use std::sync::OnceLock;

/// A running etcd.
pub struct Etcd {
    pub daemon: Daemon,
    pub port: u16,
    pub peer_port: u16,
    pub dir: PathBuf,
}

impl Etcd {
    pub fn start(
        name: &str,
        ports: Option<(u16, u16)>,
        dir: Option<PathBuf>,
        cleanup: bool,
    ) -> Self {
        let dir = dir.unwrap_or_else(|| server_dir(name));
        let (port, peer_port) = ports.unwrap_or_else(|| (free_port(), free_port()));
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let args: Vec<String> = vec![
            "--name=test".to_owned(),
            format!("--data-dir={}", dir.join("data").display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=test={peer}"),
            "--log-level=warn".to_owned(),
        ];
        let daemon = Daemon::start(
            "etcd",
            &args,
            &dir.join("etcd.log"),
            cleanup.then_some(dir.as_path()),
        );
        let etcd = Self {
            daemon,
            port,
            peer_port,
            dir,
        };
        let ready = wait_until(Duration::from_secs(30), || {
            etcd.etcdctl(&["endpoint", "health"]).is_some()
        });
        assert!(ready, "etcd did not start; log:\n{}", etcd.daemon.log());
        etcd
    }

    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Etcd> = OnceLock::new();
        SHARED.get_or_init(|| Self::start("etcd", None, None, true))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `etcdctl` (v3 API); stdout on success.
    pub fn etcdctl(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url()))
            .arg("--command-timeout=3s")
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A prefix of an etcd server standing for a zone.
pub struct EtcdZone<'a> {
    pub etcd: &'a Etcd,
    pub zone: &'static str,
    pub prefix: &'static str,
}

impl ZoneUnderTest for EtcdZone<'_> {
    fn zone(&self) -> String {
        self.zone.to_owned()
    }

    fn provider_args(&self) -> Vec<String> {
        vec![
            "--provider=coredns".to_owned(),
            format!("--coredns-prefix={}", self.prefix),
        ]
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("ETCD_URLS".to_owned(), self.etcd.url())]
    }

    fn records(&self) -> BTreeSet<Row> {
        let text = self
            .etcd
            .etcdctl(&["get", "--prefix", self.prefix])
            .expect("etcdctl get");
        let lines: Vec<&str> = text.lines().collect();
        let mut rows = BTreeSet::new();
        for pair in lines.chunks(2) {
            let [key, value] = pair else { continue };
            let Some(path) = key.strip_prefix(self.prefix) else {
                continue;
            };
            let value: Value = serde_json::from_str(value).expect("SkyDNS JSON");
            let strip = value["targetstrip"].as_u64().unwrap_or(0) as usize;
            let mut labels: Vec<&str> = path.split('/').filter(|l| !l.is_empty()).collect();
            labels.reverse();
            let name = labels[strip..].join(".");
            if let Some(host) = value["host"].as_str() {
                let record_type = match host.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(_)) => "A",
                    Ok(std::net::IpAddr::V6(_)) => "AAAA",
                    Err(_) => "CNAME",
                };
                rows.insert((name.clone(), record_type.to_owned(), host.to_owned()));
            }
            if let Some(text) = value["text"].as_str() {
                rows.insert((name, "TXT".to_owned(), text.trim_matches('"').to_owned()));
            }
        }
        rows
    }

    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>) {
        let key = |name: &str, leaf: &str| {
            let labels: Vec<&str> = name.split('.').rev().collect();
            format!("{}{}/{leaf}", self.prefix, labels.join("/"))
        };
        let value = format!("{{\"host\":\"{ip}\",\"targetstrip\":1}}");
        self.etcd
            .etcdctl(&["put", &key(name, "0000beef"), &value])
            .expect("etcdctl put");
        if let Some(owner) = owner {
            let text = serde_json::json!({"text": format!("\"{}\"", ownership(owner, "service/other/x")), "targetstrip": 1});
            self.etcd
                .etcdctl(&[
                    "put",
                    &key(&format!("a-{name}"), "0000cafe"),
                    &text.to_string(),
                ])
                .expect("etcdctl put");
        }
    }
}

/// Issue 13 "Done when" 3 on etcd.
#[test]
fn etcd_lifecycle_under_sync() {
    lifecycle_under_sync(&EtcdZone {
        etcd: Etcd::shared(),
        zone: "etcd-sync.test",
        prefix: "/skydns-sync/",
    });
}

/// Issue 13 "Done when" 3 on etcd: upsert-only keeps records.
#[test]
fn etcd_upsert_only_keeps_deleted_services_records() {
    deletion_kept_under_upsert_only(&EtcdZone {
        etcd: Etcd::shared(),
        zone: "etcd-upsert.test",
        prefix: "/skydns-upsert/",
    });
}

/// Issue 13 "Done when" 4 on etcd: etcd stops mid-run; errors counted,
/// nothing foreign deleted, convergence when it is back.
#[test]
fn etcd_down_mid_run() {
    let etcd = Etcd::start("etcd-failure", None, None, false);
    let _cleanup = RemoveOnDrop(etcd.dir.clone());
    let zone = EtcdZone {
        etcd: &etcd,
        zone: "etcd-failure.test",
        prefix: "/skydns/",
    };
    let foreign = "foreign.etcd-failure.test";
    let web = "web.etcd-failure.test";
    zone.add_foreign(foreign, "198.51.100.1", Some("other-owner"));
    let catalog = Catalog::new();
    catalog.service("web", &format!("{web},{foreign}"), "192.0.2.60", "");
    let sync = SyncProcess::start(&catalog, &sync_args(&zone, "sync"), &zone.env());
    let created = wait_until(INTERVAL * 2 + MARGIN, || {
        has(&zone.records(), web, "A", "192.0.2.60")
    });
    assert!(
        created,
        "web not created: {:?}\n{}",
        zone.records(),
        sync.log()
    );

    etcd.daemon.stop();
    catalog.service("web", &format!("{web},{foreign}"), "192.0.2.61", "");
    let counted = wait_until(INTERVAL * 4 + MARGIN * 2, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unreachable\"}")
            .is_some_and(|v| v >= 1.0)
    });
    assert!(
        counted,
        "etcd down not counted:\n{}\n{}",
        sync.scrape(),
        sync.log()
    );
    let back = Etcd::start(
        "etcd-failure",
        Some((etcd.port, etcd.peer_port)),
        Some(etcd.dir.clone()),
        false,
    );
    let back_zone = EtcdZone {
        etcd: &back,
        zone: "etcd-failure.test",
        prefix: "/skydns/",
    };
    let converged = wait_until(INTERVAL * 3 + MARGIN * 2, || {
        let records = back_zone.records();
        has(&records, web, "A", "192.0.2.61") && !has(&records, web, "A", "192.0.2.60")
    });
    assert!(
        converged,
        "no convergence after restart: {:?}\n{}",
        back_zone.records(),
        sync.log()
    );
    let records = back_zone.records();
    assert!(
        has(&records, foreign, "A", "198.51.100.1"),
        "foreign record lost: {records:?}"
    );
    assert!(has(
        &records,
        &format!("a-{foreign}"),
        "TXT",
        &ownership("other-owner", "service/other/x")
    ));
    // Exactly one key per target: the update replaced, it did not add.
    assert_eq!(rows_at(&records, web).len(), 1, "{records:?}");
    back.daemon.stop();
}

/// `dig +short` lines for `name type` from `server`, sorted.
fn served(server: &crate::support::TestServer, name: &str, record_type: &str) -> Vec<String> {
    let mut lines: Vec<String> = server
        .dig(&[name, record_type, "+short"])
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Etcd issue, "Done when" 4: what `signpost sync --provider=coredns`
/// writes, `signpost dns`'s `etcd` plugin serves — the record, its update,
/// the ownership TXT, and NXDOMAIN after the Service is deleted.
#[test]
fn records_synced_to_etcd_are_served_by_the_etcd_plugin() {
    let etcd = Etcd::shared();
    let zone = EtcdZone {
        etcd,
        zone: "served.test",
        prefix: "/skydns-served/",
    };
    let corefile = format!(
        "served.test:{{PORT}} {{\n    bind 127.0.0.1\n    etcd {{\n        path /skydns-served\n        endpoint {}\n    }}\n    ready 127.0.0.1:{{ADMIN}}\n}}\n",
        etcd.url()
    );
    let server = crate::support::TestServer::start_with(&corefile, &[], true);
    let catalog = Catalog::new();
    let sync = SyncProcess::start(&catalog, &sync_args(&zone, "sync"), &zone.env());
    sync.wait_first_sync();

    let web = "web.served.test";
    let check = |name: &str, record_type: &str, want: &[&str]| {
        let ok = wait_until(INTERVAL + MARGIN, || {
            served(&server, name, record_type) == want
        });
        assert!(
            ok,
            "{name} {record_type}: {:?}, want {want:?}\nkeys: {:?}\nsync:\n{}\ndns:\n{}",
            served(&server, name, record_type),
            zone.records(),
            sync.log(),
            server.log()
        );
    };
    catalog.service("web", web, "192.0.2.90", "");
    check(web, "A", &["192.0.2.90"]);
    // external-dns stores the registry value quoted in `text`, and CoreDNS's
    // etcd plugin serves `text` byte for byte: the TXT string holds the quotes.
    let txt = format!(
        "\"\\\"{}\\\"\"",
        ownership("default", "service/default/web")
    );
    check(&format!("a-{web}"), "TXT", &[txt.as_str()]);

    catalog.service("web", web, "192.0.2.91", "");
    check(web, "A", &["192.0.2.91"]);

    catalog.remove("web.yaml");
    check(web, "A", &[]);
    let status = server.dig(&[web, "A"]);
    assert!(status.contains("status: NXDOMAIN"), "{status}");
}
