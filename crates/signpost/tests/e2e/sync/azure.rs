//! `--provider=azure` against `signpost_fakes::azure_dns`, a strict fake of
//! Azure DNS (Resource Manager) and the Microsoft identity platform's token
//! endpoint (no runnable Azure DNS exists outside Azure), on loopback.

use super::*;
use serde_json::json;
use signpost_fakes::azure_dns::FakeAzureDns;
use std::sync::OnceLock;

const TENANT: &str = "tenant-0f1e";
const CLIENT: &str = "client-7a2b";
const SECRET: &str = "azure-shared-secret-3c4d";
const SUBSCRIPTION: &str = "sub-9e8d";
const GROUP: &str = "my-rg";

fn fake() -> &'static FakeAzureDns {
    static SHARED: OnceLock<FakeAzureDns> = OnceLock::new();
    SHARED.get_or_init(|| FakeAzureDns::start(TENANT, CLIENT, SECRET, SUBSCRIPTION, GROUP))
}

/// A zone of the fake as the shared scenario sees it.
pub struct AzureZone {
    pub fake: FakeAzureDns,
    pub zone: String,
    pub env: Vec<(String, String)>,
    pub extra_args: Vec<String>,
}

impl AzureZone {
    pub fn new(zone: &str) -> Self {
        Self::on(fake().clone(), zone, SECRET)
    }

    pub fn on(fake: FakeAzureDns, zone: &str, secret: &str) -> Self {
        fake.add_zone(zone);
        Self {
            fake,
            zone: zone.to_owned(),
            env: vec![
                ("AZURE_TENANT_ID".to_owned(), TENANT.to_owned()),
                ("AZURE_CLIENT_ID".to_owned(), CLIENT.to_owned()),
                ("AZURE_CLIENT_SECRET".to_owned(), secret.to_owned()),
            ],
            extra_args: Vec::new(),
        }
    }
}

impl ZoneUnderTest for AzureZone {
    fn zone(&self) -> String {
        self.zone.clone()
    }

    fn provider_args(&self) -> Vec<String> {
        let mut args = vec![
            "--provider=azure".to_owned(),
            format!("--azure-resource-group={GROUP}"),
            format!("--azure-subscription-id={SUBSCRIPTION}"),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("AZURE_AUTHORITY_HOST".to_owned(), self.fake.url()));
        env.push((
            "AZURE_RESOURCE_MANAGER_ENDPOINT".to_owned(),
            self.fake.url(),
        ));
        env
    }

    fn records(&self) -> BTreeSet<Row> {
        let mut rows = BTreeSet::new();
        for (relative, record_type, properties) in self.fake.record_sets(&self.zone) {
            let name = if relative == "@" {
                self.zone.clone()
            } else {
                format!("{relative}.{}", self.zone)
            };
            let values: Vec<String> = match record_type.as_str() {
                "A" => properties["ARecords"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["ipv4Address"].as_str().unwrap().to_owned())
                    .collect(),
                "AAAA" => properties["AAAARecords"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["ipv6Address"].as_str().unwrap().to_owned())
                    .collect(),
                "CNAME" => vec![
                    properties["CNAMERecord"]["cname"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ],
                "TXT" => properties["TXTRecords"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["value"][0].as_str().unwrap().trim_matches('"').to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            for value in values {
                rows.insert((name.clone(), record_type.clone(), value));
            }
        }
        rows
    }

    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>) {
        let relative = name.strip_suffix(&format!(".{}", self.zone)).unwrap();
        self.fake.insert(
            &self.zone,
            relative,
            "A",
            json!({"TTL": 300, "ARecords": [{"ipv4Address": ip}]}),
        );
        if let Some(owner) = owner {
            self.fake.insert(
                &self.zone,
                &format!("a-{relative}"),
                "TXT",
                json!({"TTL": 300, "TXTRecords": [{"value": [format!("\"{}\"", ownership(owner, "service/other/x"))]}]}),
            );
        }
    }
}

/// Issue 14 "Done when" 1 on Azure DNS (fake), the shared scenario.
#[test]
fn azure_lifecycle_under_sync() {
    lifecycle_under_sync(&AzureZone::new("az-sync.test"));
}

/// Issue 14 "Done when" 1 on Azure DNS (fake): upsert-only keeps records.
#[test]
fn azure_upsert_only_keeps_deleted_services_records() {
    deletion_kept_under_upsert_only(&AzureZone::new("az-upsert.test"));
}

/// Issue 14 "Done when" 4 and 5 for Azure: the reference arguments
/// (`--provider=azure --azure-resource-group=my-rg`) with the Secret's keys
/// mounted (`azure-tenant-id`, `azure-client-id`, `azure-client-secret`),
/// then from the environment in a dry run, then a wrong secret refused and
/// counted; a 429 mid-run is waited out; the secret and the tokens are in no
/// output.
#[test]
fn azure_credentials_reference_arguments_and_secrets_never_leak() {
    let secret = "azure-S3CRET-5e6f7a8b";
    let fake = FakeAzureDns::start(TENANT, CLIENT, secret, SUBSCRIPTION, GROUP);
    let mut zone = AzureZone::on(fake, "az-creds.test", secret);
    let catalog = Catalog::new();
    catalog.service("creds", "creds.az-creds.test", "192.0.2.75", "");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("azure-tenant-id"), format!("{TENANT}\n")).unwrap();
    std::fs::write(dir.path().join("azure-client-id"), format!("{CLIENT}\n")).unwrap();
    std::fs::write(
        dir.path().join("azure-client-secret"),
        format!("{secret}\n"),
    )
    .unwrap();
    let env = zone.env.clone();
    zone.env.clear();
    zone.fake.rate_limit_next(1);
    let mut args = sync_args(&zone, "sync");
    args.extend([
        format!("--credentials-dir={}", dir.path().display()),
        "--once".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let (status, file_log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{file_log}");
    assert!(
        file_log.contains("retrying"),
        "the 429 was not retried:\n{file_log}"
    );
    assert!(has(
        &zone.records(),
        "creds.az-creds.test",
        "A",
        "192.0.2.75"
    ));
    assert!(has(
        &zone.records(),
        "a-creds.az-creds.test",
        "TXT",
        &ownership("default", "service/default/creds")
    ));

    zone.env = env;
    catalog.service("creds", "creds.az-creds.test", "192.0.2.76", "");
    let mut args = sync_args(&zone, "sync");
    args.extend([
        "--once".to_owned(),
        "--dry-run".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let (status, dry_log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{dry_log}");
    assert!(dry_log.contains("planned change"), "{dry_log}");

    zone.env = vec![
        ("AZURE_TENANT_ID".to_owned(), TENANT.to_owned()),
        ("AZURE_CLIENT_ID".to_owned(), CLIENT.to_owned()),
        (
            "AZURE_CLIENT_SECRET".to_owned(),
            "azure-S3CRET-wrong".to_owned(),
        ),
    ];
    let mut args = sync_args(&zone, "sync");
    args.push("--log-level=debug".to_owned());
    let sync = SyncProcess::start(&catalog, &args, &zone.env());
    let refused = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"unauthorized\"}")
            .is_some_and(|v| v >= 1.0)
    });
    let (scrape, error_log) = (sync.scrape(), sync.log());
    assert!(refused, "{scrape}\n{error_log}");
    assert!(error_log.contains("invalid_client"), "{error_log}");
    drop(sync);

    for text in [&file_log, &dry_log, &scrape, &error_log] {
        assert!(!text.contains("S3CRET"), "a secret leaked:\n{text}");
        assert!(!text.contains("fake-arm-token"), "a token leaked:\n{text}");
    }
    let statuses: Vec<u16> = zone.fake.seen().iter().map(|s| s.status).collect();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, 200 | 201 | 204 | 401 | 429)),
        "the fake rejected a request: {statuses:?}"
    );
}

/// Issue 14 "Done when" 3 on Azure DNS (same approach as Cloudflare and
/// Google): plain A records of the healthy regions only.
#[test]
fn azure_geo_name_holds_only_healthy_regions() {
    let zone = AzureZone::new("az-geo-health.test");
    geo_follows_verdicts(&zone, &plain_records_of);
}
