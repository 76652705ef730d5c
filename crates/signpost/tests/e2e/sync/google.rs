//! `--provider=google` against `signpost_fakes::google_dns`, a strict fake
//! of Cloud DNS API v1 and Google's OAuth 2.0 token endpoint (no runnable
//! Cloud DNS exists outside Google), on loopback. The service-account key is
//! a fresh RSA key made by `openssl genpkey`; the fake verifies every JWT's
//! signature with it.

use super::*;
use signpost_fakes::google_dns::{FakeGoogleDns, RrSet};
use std::sync::OnceLock;

const PROJECT: &str = "my-project";
const ACCOUNT: &str = "external-dns@my-project.iam.gserviceaccount.com";

/// A PKCS#8 PEM RSA key, made once per test binary.
fn private_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let output = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl (Debian package openssl) generates the service-account key");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    })
}

fn fake() -> &'static FakeGoogleDns {
    static SHARED: OnceLock<FakeGoogleDns> = OnceLock::new();
    SHARED.get_or_init(|| FakeGoogleDns::start(PROJECT, ACCOUNT, private_key()))
}

/// A service-account key file for `fake`, as the Secret's `key.json`.
pub fn key_json(fake: &FakeGoogleDns, key_id: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": key_id,
        "private_key": private_key(),
        "client_email": ACCOUNT,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": fake.token_uri(),
    })
    .to_string()
}

/// A managed zone of the fake as the shared scenario sees it.
pub struct GoogleZone {
    pub fake: FakeGoogleDns,
    pub zone: String,
    pub managed: String,
    pub key_file: tempfile::NamedTempFile,
    pub extra_args: Vec<String>,
}

impl GoogleZone {
    pub fn new(zone: &str) -> Self {
        Self::on(fake().clone(), zone, "public")
    }

    pub fn on(fake: FakeGoogleDns, zone: &str, visibility: &str) -> Self {
        let managed = zone.replace('.', "-");
        fake.add_zone(&managed, zone, visibility);
        let key_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key_file.path(), key_json(&fake, "key-1")).unwrap();
        Self {
            fake,
            zone: zone.to_owned(),
            managed,
            key_file,
            extra_args: Vec::new(),
        }
    }
}

impl ZoneUnderTest for GoogleZone {
    fn zone(&self) -> String {
        self.zone.clone()
    }

    fn provider_args(&self) -> Vec<String> {
        let mut args = vec![
            "--provider=google".to_owned(),
            format!("--google-project={PROJECT}"),
            "--google-batch-change-interval=0s".to_owned(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
                self.key_file.path().display().to_string(),
            ),
            (
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS".to_owned(),
                self.fake.url(),
            ),
        ]
    }

    fn records(&self) -> BTreeSet<Row> {
        let mut rows = BTreeSet::new();
        for set in self.fake.rrsets(&self.managed) {
            for data in &set.rrdatas {
                rows.insert((
                    set.name.trim_end_matches('.').to_owned(),
                    set.record_type.clone(),
                    data.trim_matches('"').trim_end_matches('.').to_owned(),
                ));
            }
        }
        rows
    }

    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>) {
        let set = |name: String, record_type: &str, data: String| RrSet {
            name,
            record_type: record_type.to_owned(),
            ttl: 300,
            rrdatas: vec![data],
            kind: "dns#resourceRecordSet".to_owned(),
        };
        self.fake
            .insert(&self.managed, set(format!("{name}."), "A", ip.to_owned()));
        if let Some(owner) = owner {
            self.fake.insert(
                &self.managed,
                set(
                    format!("a-{name}."),
                    "TXT",
                    format!("\"{}\"", ownership(owner, "service/other/x")),
                ),
            );
        }
    }
}

/// Issue 14 "Done when" 1 on Cloud DNS (fake), the shared scenario.
#[test]
fn google_lifecycle_under_sync() {
    lifecycle_under_sync(&GoogleZone::new("gc-sync.test"));
}

/// Issue 14 "Done when" 1 on Cloud DNS (fake): upsert-only keeps records.
#[test]
fn google_upsert_only_keeps_deleted_services_records() {
    deletion_kept_under_upsert_only(&GoogleZone::new("gc-upsert.test"));
}

/// Issue 14 "Done when" 4 and 5 for Google: `--provider=google
/// --google-project=my-project` with the Secret's `key.json` mounted, a
/// dry run with `GOOGLE_APPLICATION_CREDENTIALS`, `--google-zone-visibility`
/// choosing between a public and a private zone of the same name, a 429
/// waited out, a key the fake does not know refused and counted; the
/// private key and the tokens are in no output.
#[test]
fn google_credentials_visibility_and_secrets_never_leak() {
    let fake = FakeGoogleDns::start(PROJECT, ACCOUNT, private_key());
    let zone = GoogleZone::on(fake.clone(), "gc-creds.test", "public");
    fake.add_zone("gc-creds-private", "gc-creds.test", "private");
    let catalog = Catalog::new();
    catalog.service("creds", "creds.gc-creds.test", "192.0.2.85", "");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.json"), key_json(&fake, "key-1")).unwrap();
    fake.rate_limit_next(1);
    let mut args = sync_args(&zone, "sync");
    args.extend([
        format!("--credentials-dir={}", dir.path().display()),
        "--google-zone-visibility=public".to_owned(),
        "--once".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let (status, file_log) = SyncProcess::start(
        &catalog,
        &args,
        &[("CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS".to_owned(), fake.url())],
    )
    .exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{file_log}");
    assert!(
        file_log.contains("retrying"),
        "the 429 was not retried:\n{file_log}"
    );
    assert!(
        has(&zone.records(), "creds.gc-creds.test", "A", "192.0.2.85"),
        "{:?}",
        zone.records()
    );
    assert!(
        fake.rrsets("gc-creds-private").is_empty(),
        "the private zone was written"
    );

    catalog.service("creds", "creds.gc-creds.test", "192.0.2.86", "");
    let mut args = sync_args(&zone, "sync");
    args.extend([
        "--once".to_owned(),
        "--dry-run".to_owned(),
        "--google-zone-visibility=public".to_owned(),
    ]);
    let (status, dry_log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{dry_log}");
    assert!(dry_log.contains("planned change"), "{dry_log}");

    // A key the fake does not know: the token request is refused.
    let other = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .unwrap();
    let other_key = String::from_utf8(other.stdout).unwrap();
    let wrong = tempfile::NamedTempFile::new().unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&key_json(&fake, "key-2")).unwrap();
    json["private_key"] = serde_json::json!(other_key);
    std::fs::write(wrong.path(), json.to_string()).unwrap();
    let mut args = sync_args(&zone, "sync");
    args.push("--log-level=debug".to_owned());
    let env = vec![
        (
            "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
            wrong.path().display().to_string(),
        ),
        ("CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS".to_owned(), fake.url()),
    ];
    let sync = SyncProcess::start(&catalog, &args, &env);
    let refused = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unauthorized\"}")
            .is_some_and(|v| v >= 1.0)
    });
    let (scrape, error_log) = (sync.scrape(), sync.log());
    assert!(refused, "{scrape}\n{error_log}");
    assert!(error_log.contains("invalid_grant"), "{error_log}");
    drop(sync);

    let key_lines: Vec<&str> = private_key()
        .lines()
        .chain(other_key.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for text in [&file_log, &dry_log, &scrape, &error_log] {
        assert!(
            !text.contains("fake-google-token"),
            "a token leaked:\n{text}"
        );
        for line in &key_lines {
            assert!(!text.contains(line), "the private key leaked:\n{text}");
        }
    }
    // Only the unknown key's token requests were refused; every API call
    // signpost made was one Cloud DNS accepts.
    let api: Vec<(String, u16)> = fake
        .seen()
        .iter()
        .filter(|s| s.path != "/token")
        .map(|s| (s.path.clone(), s.status))
        .collect();
    assert!(
        api.iter().all(|(_, s)| matches!(s, 200 | 429)),
        "the fake rejected a request: {api:?}"
    );
}

/// Issue 14 "Done when" 3 on Google: the geographic name is plain
/// A records of the healthy regions only, following the health verdicts
/// (withdrawn, back after recovery, all published when every region fails).
#[test]
fn google_geo_name_holds_only_healthy_regions() {
    let zone = GoogleZone::new("google-geo-health.test");
    geo_follows_verdicts(&zone, &plain_records_of);
}
