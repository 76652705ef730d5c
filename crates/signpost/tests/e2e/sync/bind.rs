//! `--provider=rfc2136` against real BIND 9 (`named` from Debian's bind9):
//! keys from `tsig-keygen`, zones that allow update and transfer only with
//! those keys; cross-checked with `dig AXFR` and `nsupdate`.

use super::*;
use std::sync::OnceLock;

const ALGORITHMS: [&str; 5] = [
    "hmac-sha1",
    "hmac-sha224",
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
];
/// The zones of the shared server, one per test.
const ZONES: [&str; 6] = [
    "bind-sync.test",
    "bind-upsert.test",
    "bind-algorithms.test",
    "bind-cli.test",
    "bind-partial.test",
    "bind-readonly.test",
];

/// A running `named`.
pub struct Bind {
    pub daemon: Daemon,
    pub port: u16,
    pub dir: PathBuf,
    /// (algorithm, key name, secret) — the server's keys.
    pub keys: Vec<(String, String, String)>,
}

/// A fresh TSIG key from `tsig-keygen`: (key name, secret).
pub fn keygen(algorithm: &str, name: &str) -> (String, String) {
    let output = Command::new("tsig-keygen")
        .args(["-a", algorithm, name])
        .output()
        .expect("tsig-keygen (Debian bind9) runs");
    assert!(output.status.success(), "tsig-keygen failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let secret = text
        .split("secret \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("tsig-keygen prints a secret");
    (name.to_owned(), secret.to_owned())
}

impl Bind {
    /// Starts `named` serving `zones` on a free port with `keys`.
    /// With `cleanup`, the directory goes when the server stops.
    pub fn start(
        name: &str,
        zones: &[&str],
        keys: Vec<(String, String, String)>,
        port: Option<u16>,
        dir: Option<PathBuf>,
        cleanup: bool,
    ) -> Self {
        let dir = dir.unwrap_or_else(|| server_dir(name));
        let port = port.unwrap_or_else(free_port);
        let mut conf = String::new();
        for (algorithm, key, secret) in &keys {
            conf.push_str(&format!(
                "key \"{key}\" {{ algorithm {algorithm}; secret \"{secret}\"; }};\n"
            ));
        }
        let key_list: String = keys
            .iter()
            .map(|(_, key, _)| format!("key \"{key}\"; "))
            .collect();
        conf.push_str(&format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; notify no; allow-query {{ any; }}; }};\ncontrols {{ }};\n",
            d = dir.display()
        ));
        for zone in zones {
            let file = dir.join(format!("{zone}.db"));
            if !file.exists() {
                std::fs::write(
                    &file,
                    format!("$TTL 300\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300\n@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n"),
                )
                .unwrap();
            }
            // Zones named `*readonly*` refuse updates (the partial-failure test).
            let update = if zone.contains("readonly") {
                "none; ".to_owned()
            } else {
                key_list.clone()
            };
            conf.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{}\"; allow-update {{ {update}}}; allow-transfer {{ {key_list}}}; }};\n",
                file.display()
            ));
        }
        let conf_path = dir.join("named.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let args: Vec<String> = ["-g", "-n", "1", "-c"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([conf_path.display().to_string()])
            .collect();
        let daemon = Daemon::start(
            "named",
            &args,
            &dir.join("named.log"),
            cleanup.then_some(dir.as_path()),
        );
        let bind = Self {
            daemon,
            port,
            dir,
            keys,
        };
        let zone = zones[0];
        let ready = wait_until(Duration::from_secs(20), || bind.try_axfr(zone, 0).is_some());
        assert!(ready, "named did not start; log:\n{}", bind.daemon.log());
        bind
    }

    /// The shared server of this test binary: every algorithm's key, one zone per test.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Bind> = OnceLock::new();
        SHARED.get_or_init(|| {
            let keys = ALGORITHMS
                .iter()
                .map(|algorithm| {
                    let (name, secret) = keygen(algorithm, &format!("k-{algorithm}"));
                    ((*algorithm).to_owned(), name, secret)
                })
                .collect();
            Self::start("bind", &ZONES, keys, None, None, true)
        })
    }

    fn key_arg(&self, index: usize) -> String {
        let (algorithm, name, secret) = &self.keys[index];
        format!("{algorithm}:{name}:{secret}")
    }

    /// `dig AXFR` with key `index`; `None` when the transfer fails.
    pub fn try_axfr(&self, zone: &str, index: usize) -> Option<BTreeSet<Row>> {
        let output = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-y",
                &self.key_arg(index),
            ])
            .args([zone, "AXFR", "+noall", "+answer", "+tries=1", "+time=2"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !text.contains("SOA") {
            return None;
        }
        let mut rows = BTreeSet::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 {
                continue;
            }
            let value = fields[4..].join(" ");
            rows.insert((
                fields[0].trim_end_matches('.').to_ascii_lowercase(),
                fields[3].to_owned(),
                value.trim_matches('"').trim_end_matches('.').to_owned(),
            ));
        }
        Some(rows)
    }

    /// `nsupdate` with key `index`.
    pub fn nsupdate(&self, zone: &str, index: usize, commands: &str) {
        let script = format!(
            "server 127.0.0.1 {}\nzone {zone}\n{commands}\nsend\n",
            self.port
        );
        run_with_input(
            Command::new("nsupdate").args(["-y", &self.key_arg(index)]),
            &script,
        );
    }
}

/// A zone of a BIND server, with the key (by index) sync uses.
pub struct BindZone<'a> {
    pub bind: &'a Bind,
    pub zone: &'static str,
    pub key: usize,
    /// A different secret for sync than the server's (the wrong-key test).
    pub secret_override: Option<String>,
}

impl ZoneUnderTest for BindZone<'_> {
    fn zone(&self) -> String {
        self.zone.to_owned()
    }

    fn provider_args(&self) -> Vec<String> {
        let (algorithm, name, secret) = &self.bind.keys[self.key];
        let secret = self.secret_override.as_ref().unwrap_or(secret);
        vec![
            "--provider=rfc2136".to_owned(),
            "--rfc2136-host=127.0.0.1".to_owned(),
            format!("--rfc2136-port={}", self.bind.port),
            format!("--rfc2136-zone={}", self.zone),
            format!("--rfc2136-tsig-keyname={name}"),
            format!("--rfc2136-tsig-secret={secret}"),
            format!("--rfc2136-tsig-secret-alg={algorithm}"),
            "--rfc2136-axfr".to_owned(),
        ]
    }

    fn records(&self) -> BTreeSet<Row> {
        self.bind.try_axfr(self.zone, self.key).unwrap_or_else(|| {
            panic!(
                "AXFR of {} failed; log:\n{}",
                self.zone,
                self.bind.daemon.log()
            )
        })
    }

    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>) {
        let mut commands = format!("update add {name}. 300 A {ip}\n");
        if let Some(owner) = owner {
            commands.push_str(&format!(
                "update add a-{name}. 300 TXT \"{}\"\n",
                ownership(owner, "service/other/x")
            ));
        }
        self.bind.nsupdate(self.zone, self.key, &commands);
    }
}

/// Issue 13 "Done when" 3 on BIND with hmac-sha256.
#[test]
fn bind_lifecycle_under_sync() {
    let zone = BindZone {
        bind: Bind::shared(),
        zone: "bind-sync.test",
        key: 2,
        secret_override: None,
    };
    lifecycle_under_sync(&zone);
}

/// Issue 13 "Done when" 3 on BIND with hmac-sha512: upsert-only keeps records.
#[test]
fn bind_upsert_only_keeps_deleted_services_records() {
    let zone = BindZone {
        bind: Bind::shared(),
        zone: "bind-upsert.test",
        key: 4,
        secret_override: None,
    };
    deletion_kept_under_upsert_only(&zone);
}

/// RFC 8945 §6: every HMAC algorithm external-dns accepts signs UPDATE and
/// AXFR that BIND accepts (one `--once` run per algorithm).
#[test]
fn bind_every_tsig_algorithm() {
    let bind = Bind::shared();
    let catalog = Catalog::new();
    for (index, algorithm) in ALGORITHMS.iter().enumerate() {
        let host = format!("{algorithm}.bind-algorithms.test");
        catalog.service(
            &format!("svc-{index}"),
            &host,
            &format!("192.0.2.{}", 30 + index),
            "",
        );
        let zone = BindZone {
            bind,
            zone: "bind-algorithms.test",
            key: index,
            secret_override: None,
        };
        let mut args = sync_args(&zone, "sync");
        args.push("--once".to_owned());
        let sync = SyncProcess::start(&catalog, &args, &[]);
        let (status, log) = sync.exit_status();
        let status = status.expect("--once exits");
        assert!(status.success(), "{algorithm}: --once failed:\n{log}");
        let records = zone.records();
        assert!(
            has(&records, &host, "A", &format!("192.0.2.{}", 30 + index)),
            "{algorithm}: {records:?}\n{log}"
        );
    }
}

/// Issue 13 "Done when" 4 on BIND: a wrong TSIG key, then the server down
/// mid-run: nothing foreign deleted, errors counted, convergence once the
/// server is back (with the right key); the TSIG secrets appear in no log
/// line and no metric, even at debug level.
#[test]
fn bind_wrong_key_and_server_down() {
    let (name, server_secret) = keygen("hmac-sha256", "failure-key");
    let (_, sync_secret) = keygen("hmac-sha256", "failure-key");
    let zone_name = "bind-failure.test";
    let bind = Bind::start(
        "bind-failure",
        &[zone_name],
        vec![(
            "hmac-sha256".to_owned(),
            name.clone(),
            server_secret.clone(),
        )],
        None,
        None,
        false,
    );
    let _cleanup = RemoveOnDrop(bind.dir.clone());
    let zone = BindZone {
        bind: &bind,
        zone: zone_name,
        key: 0,
        secret_override: Some(sync_secret.clone()),
    };
    zone.add_foreign(
        &format!("foreign.{zone_name}"),
        "198.51.100.1",
        Some("other-owner"),
    );
    let foreign = format!("foreign.{zone_name}");
    let web = format!("web.{zone_name}");

    let catalog = Catalog::new();
    catalog.service("web", &format!("{web},{foreign}"), "192.0.2.40", "");
    let mut args = sync_args(&zone, "sync");
    args.push("--log-level=debug".to_owned());
    let sync = SyncProcess::start(&catalog, &args, &[]);
    let refused = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unauthorized\"}")
            .is_some_and(|v| v >= 2.0)
    });
    assert!(refused, "wrong key not counted:\n{}", sync.scrape());
    assert!(
        sync.metric("external_dns_registry_errors_total")
            .is_some_and(|v| v >= 2.0)
    );
    assert!(has(&zone.records(), &foreign, "A", "198.51.100.1"));
    assert!(rows_at(&zone.records(), &web).is_empty());

    // The server gets sync's key: it converges without a restart of sync.
    bind.daemon.stop();
    let fixed = Bind::start(
        "bind-failure",
        &[zone_name],
        vec![("hmac-sha256".to_owned(), name.clone(), sync_secret.clone())],
        Some(bind.port),
        Some(bind.dir.clone()),
        false,
    );
    let fixed_zone = BindZone {
        bind: &fixed,
        zone: zone_name,
        key: 0,
        secret_override: None,
    };
    let converged = wait_until(INTERVAL * 2 + MARGIN, || {
        has(&fixed_zone.records(), &web, "A", "192.0.2.40")
    });
    assert!(
        converged,
        "no convergence with the right key: {:?}\n{}",
        fixed_zone.records(),
        sync.log()
    );

    // The server stops mid-run; a change waits; it converges when back.
    fixed.daemon.stop();
    catalog.service("web", &format!("{web},{foreign}"), "192.0.2.41", "");
    let counted = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unreachable\"}")
            .is_some_and(|v| v >= 1.0)
    });
    assert!(counted, "server down not counted:\n{}", sync.scrape());
    let back = Bind::start(
        "bind-failure",
        &[zone_name],
        vec![("hmac-sha256".to_owned(), name, sync_secret.clone())],
        Some(bind.port),
        Some(bind.dir.clone()),
        false,
    );
    let back_zone = BindZone {
        bind: &back,
        zone: zone_name,
        key: 0,
        secret_override: None,
    };
    let converged = wait_until(INTERVAL * 3 + MARGIN, || {
        has(&back_zone.records(), &web, "A", "192.0.2.41")
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
    assert_eq!(
        sync.metric("external_dns_controller_consecutive_soft_errors"),
        Some(0.0)
    );

    let log = sync.log();
    let scrape = sync.scrape();
    for secret in [&server_secret, &sync_secret] {
        assert!(
            !log.contains(secret.as_str()),
            "a TSIG secret is in the log"
        );
        assert!(
            !scrape.contains(secret.as_str()),
            "a TSIG secret is in the metrics"
        );
    }
    assert!(log.contains("--rfc2136-tsig-secret=******"), "{log}");
    back.daemon.stop();
}

/// Issue 13, bad input and failures: a provider error in the middle of a
/// change set (one zone's UPDATE refused, the other's accepted) is counted,
/// retried at the next interval, and the registry never claims a record that
/// was not written: the accepted zone holds each record with its TXT, the
/// refused zone holds neither.
#[test]
fn bind_refused_batch_claims_nothing() {
    let bind = Bind::shared();
    let zone = BindZone {
        bind,
        zone: "bind-partial.test",
        key: 2,
        secret_override: None,
    };
    let catalog = Catalog::new();
    catalog.service("ok", "ok.bind-partial.test", "192.0.2.80", "");
    catalog.service("refused", "refused.bind-readonly.test", "192.0.2.81", "");
    let mut args = sync_args(&zone, "sync");
    args.retain(|a| !a.starts_with("--domain-filter"));
    args.push("--rfc2136-zone=bind-readonly.test".to_owned());
    args.push("--rfc2136-batch-change-size=1".to_owned());
    let sync = SyncProcess::start(&catalog, &args, &[]);
    // The first run writes one zone and fails the other (a partial
    // failure); later runs retry only what is missing.
    let retried = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"partial\"}") == Some(1.0)
            && sync
                .metric("external_dns_registry_errors_total")
                .is_some_and(|v| v >= 2.0)
    });
    assert!(
        retried,
        "partial failure not counted and retried:\n{}\n{}",
        sync.scrape(),
        sync.log()
    );
    let accepted = zone.records();
    assert!(
        has(&accepted, "ok.bind-partial.test", "A", "192.0.2.80"),
        "{accepted:?}"
    );
    assert!(
        has(
            &accepted,
            "a-ok.bind-partial.test",
            "TXT",
            &ownership("default", "service/default/ok")
        ),
        "{accepted:?}"
    );
    let refused = bind
        .try_axfr("bind-readonly.test", 2)
        .expect("AXFR of the read-only zone");
    assert!(
        rows_at(&refused, "refused.bind-readonly.test").is_empty(),
        "{refused:?}"
    );
    assert!(
        rows_at(&refused, "a-refused.bind-readonly.test").is_empty(),
        "{refused:?}"
    );
    assert!(
        sync.metric("external_dns_registry_errors_total")
            .is_some_and(|v| v >= 2.0)
    );
    assert!(sync.log().contains("REFUSED"), "{}", sync.log());
}
