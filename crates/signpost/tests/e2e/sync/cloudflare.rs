//! `--provider=cloudflare` against `signpost_fakes::cloudflare`, a strict
//! fake of Cloudflare's DNS API v4 (no runnable Cloudflare exists outside
//! Cloudflare), started once per test binary on loopback.

use super::*;
use signpost_fakes::cloudflare::FakeCloudflare;
use std::sync::OnceLock;

const TOKEN: &str = "cf-token-shared-5d1e";

fn fake() -> &'static FakeCloudflare {
    static SHARED: OnceLock<FakeCloudflare> = OnceLock::new();
    SHARED.get_or_init(|| FakeCloudflare::start(TOKEN))
}

/// A zone of the fake as the shared scenario sees it.
pub struct CloudflareZone {
    pub fake: FakeCloudflare,
    pub zone: String,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl CloudflareZone {
    pub fn new(zone: &str) -> Self {
        Self::on(fake().clone(), zone, TOKEN)
    }

    pub fn on(fake: FakeCloudflare, zone: &str, token: &str) -> Self {
        fake.add_zone(zone);
        Self {
            fake,
            zone: zone.to_owned(),
            extra_args: Vec::new(),
            env: vec![("CF_API_TOKEN".to_owned(), token.to_owned())],
        }
    }

    /// The `proxied` flag of the record at `name` and `record_type`.
    pub fn proxied(&self, name: &str, record_type: &str) -> Option<bool> {
        self.fake
            .records(&self.zone)
            .into_iter()
            .find(|r| r.name == name && r.record_type == record_type)
            .map(|r| r.proxied)
    }
}

impl ZoneUnderTest for CloudflareZone {
    fn zone(&self) -> String {
        self.zone.clone()
    }

    fn provider_args(&self) -> Vec<String> {
        // The smallest page Cloudflare allows, so every listing pages.
        let mut args = vec![
            "--provider=cloudflare".to_owned(),
            "--cloudflare-dns-records-per-page=5".to_owned(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("CF_API_BASE_URL".to_owned(), self.fake.url()));
        env
    }

    fn records(&self) -> BTreeSet<Row> {
        self.fake
            .records(&self.zone)
            .into_iter()
            .map(|r| {
                (
                    r.name,
                    r.record_type,
                    r.content.trim_matches('"').to_owned(),
                )
            })
            .collect()
    }

    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>) {
        self.fake.insert(&self.zone, name, "A", ip);
        if let Some(owner) = owner {
            self.fake.insert(
                &self.zone,
                &format!("a-{name}"),
                "TXT",
                &format!("\"{}\"", ownership(owner, "service/other/x")),
            );
        }
    }
}

/// Issue 14 "Done when" 1 on Cloudflare (fake), the shared scenario, with
/// every listing paged five records at a time.
#[test]
fn cloudflare_lifecycle_under_sync() {
    lifecycle_under_sync(&CloudflareZone::new("cf-sync.test"));
}

/// Issue 14 "Done when" 1 on Cloudflare (fake): upsert-only keeps records.
#[test]
fn cloudflare_upsert_only_keeps_deleted_services_records() {
    deletion_kept_under_upsert_only(&CloudflareZone::new("cf-upsert.test"));
}

/// `--cloudflare-proxied` (the reference deployment's argument, "Done when"
/// 5) proxies A records by default; the `cloudflare-proxied: "false"`
/// annotation opts one out; ownership TXTs are never proxied; the reference
/// arguments run as written. A 429 with Retry-After mid-run is waited out.
#[test]
fn cloudflare_proxied_flag_annotation_and_reference_arguments() {
    // A fake of its own: the 429 must reach this test's requests.
    let zone = CloudflareZone::on(FakeCloudflare::start(TOKEN), "cf-proxied.test", TOKEN);
    let catalog = Catalog::new();
    catalog.service("on", "on.cf-proxied.test", "192.0.2.60", "");
    catalog.service(
        "off",
        "off.cf-proxied.test",
        "192.0.2.61",
        "    external-dns.kubernetes.io/cloudflare-proxied: \"false\"\n",
    );
    zone.fake.rate_limit_next(1);
    let args: Vec<String> = [
        "--source=service",
        "--provider=cloudflare",
        "--cloudflare-proxied",
        "--policy=sync",
        "--domain-filter=cf-proxied.test",
        "--domain-filter=example.com",
        "--txt-cache-interval=30s",
        "--interval=30s",
        "--txt-owner-id=default",
        "--once",
    ]
    .map(str::to_owned)
    .to_vec();
    let (status, log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(log.contains("retrying"), "the 429 was not retried:\n{log}");
    assert_eq!(
        zone.proxied("on.cf-proxied.test", "A"),
        Some(true),
        "{:?}",
        zone.records()
    );
    assert_eq!(zone.proxied("off.cf-proxied.test", "A"), Some(false));
    assert_eq!(zone.proxied("a-on.cf-proxied.test", "TXT"), Some(false));
    let statuses: Vec<u16> = zone.fake.seen().iter().map(|s| s.status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "the fake rejected a request: {statuses:?}"
    );

    // A second run finds nothing to change (the proxied flag reads back).
    let (status, log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(log.contains("All records are already up to date"), "{log}");
}

/// Issue 14 "Done when" 4 for Cloudflare: the token as the Secret's mounted
/// `cloudflare-api-token` and as `CF_API_TOKEN` each work; a wrong token is
/// refused and counted; the token is in no log line, metric, dry-run output
/// or error message.
#[test]
fn cloudflare_token_from_secret_file_and_environment_never_leaks() {
    let token = "cf-T0KEN-9c4e1b7a-distinctive";
    let fake = FakeCloudflare::start(token);
    let mut zone = CloudflareZone::on(fake, "cf-creds.test", token);
    let catalog = Catalog::new();
    catalog.service("creds", "creds.cf-creds.test", "192.0.2.65", "");

    // Mounted file, no environment.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cloudflare-api-token"),
        format!("{token}\n"),
    )
    .unwrap();
    let env = zone.env.clone();
    zone.env.clear();
    let mut args = sync_args(&zone, "sync");
    args.extend([
        format!("--credentials-dir={}", dir.path().display()),
        "--once".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let (status, file_log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{file_log}");
    assert!(has(
        &zone.records(),
        "creds.cf-creds.test",
        "A",
        "192.0.2.65"
    ));

    // Environment, dry run.
    zone.env = env;
    catalog.service("creds", "creds.cf-creds.test", "192.0.2.66", "");
    let mut args = sync_args(&zone, "sync");
    args.extend([
        "--once".to_owned(),
        "--dry-run".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let (status, dry_log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{dry_log}");
    assert!(dry_log.contains("planned change"), "{dry_log}");

    // A wrong token: refused, counted, not echoed.
    let wrong = "cf-T0KEN-0000-wrong-one";
    zone.env = vec![("CF_API_TOKEN".to_owned(), wrong.to_owned())];
    let mut args = sync_args(&zone, "sync");
    args.push("--log-level=debug".to_owned());
    let sync = SyncProcess::start(&catalog, &args, &zone.env());
    let refused = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unauthorized\"}")
            .is_some_and(|v| v >= 1.0)
    });
    let (scrape, error_log) = (sync.scrape(), sync.log());
    assert!(refused, "{scrape}\n{error_log}");
    assert!(error_log.contains("Authentication error"), "{error_log}");
    drop(sync);

    for text in [&file_log, &dry_log, &scrape, &error_log] {
        assert!(!text.contains("T0KEN"), "a token leaked:\n{text}");
    }
}

/// Issue 14 "Done when" 3 on Cloudflare: the geographic name is plain
/// A records of the healthy regions only, following the health verdicts
/// (withdrawn, back after recovery, all published when every region fails).
#[test]
fn cloudflare_geo_name_holds_only_healthy_regions() {
    let zone = CloudflareZone::new("cf-geo-health.test");
    geo_follows_verdicts(&zone, &plain_records_of);
}
