//! Compatibility fixtures: zones as external-dns writes them (notes §5.9:
//! typed, legacy, encrypted, `cname-` and prefixed TXT). Records we own are
//! adopted and updated; foreign and unowned ones are never touched.

use super::*;
use crate::controller::{PlanSettings, Reconciler};
use crate::filter::DomainFilter;
use crate::metrics::SyncMetrics;
use crate::plan::Policy;
use crate::provider::inmemory::InMemory;
use crate::registry::names::TxtNames;

const OURS: &str = "\"heritage=external-dns,external-dns/owner=default,external-dns/resource=service/default/nginx\"";

fn record(name: &str, record_type: RecordType, targets: &[&str]) -> Endpoint {
    Endpoint::new(
        name,
        record_type,
        targets.iter().map(|t| (*t).to_owned()).collect(),
    )
}

fn txt(name: &str, value: &str) -> Endpoint {
    record(name, RecordType::Txt, &[value])
}

fn owner_txt(name: &str, owner: &str, resource: &str) -> Endpoint {
    txt(
        name,
        &format!(
            "\"heritage=external-dns,external-dns/owner={owner},external-dns/resource={resource}\""
        ),
    )
}

fn desired(name: &str, record_type: RecordType, targets: &[&str], resource: &str) -> Endpoint {
    record(name, record_type, targets).with_label("resource", resource)
}

struct Zone {
    provider: Arc<InMemory>,
    config: TxtConfig,
    metrics: Arc<SyncMetrics>,
}

impl Zone {
    fn new(records: Vec<Endpoint>) -> Self {
        let provider = Arc::new(InMemory::new(&["example.com".to_owned()]));
        provider.insert(records);
        Self {
            provider,
            config: TxtConfig {
                owner_id: "default".to_owned(),
                names: TxtNames::default(),
                key: None,
                encrypt: false,
                cache_interval: Duration::ZERO,
                managed: ManagedTypes::default(),
                old_owner_id: String::new(),
            },
            metrics: Arc::new(SyncMetrics::default()),
        }
    }

    async fn sync(&self, desired: Vec<Endpoint>, policy: Policy) -> Changes {
        let registry = TxtRegistry::new(self.provider.clone(), self.config.clone());
        let settings = PlanSettings {
            policy,
            domain_filter: DomainFilter::default(),
            managed: ManagedTypes::default(),
            old_owner_id: String::new(),
        };
        let mut reconciler =
            Reconciler::new(Box::new(registry), settings, false, self.metrics.clone());
        reconciler.run_once(desired).await.unwrap().changes
    }

    fn get(&self, name: &str, record_type: RecordType) -> Option<Vec<String>> {
        self.provider
            .snapshot()
            .into_iter()
            .find(|e| e.dns_name == name && e.record_type == record_type)
            .map(|e| e.targets)
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        self.metrics.render(&mut out);
        out
    }
}

/// Typed TXT (external-dns v0.18+ default): ours adopted and updated, another
/// owner's and an unowned record untouched, the foreign block counted.
#[tokio::test]
async fn typed_txt_zone() {
    let zone = Zone::new(vec![
        record("nginx.example.com", RecordType::A, &["192.0.2.10"]),
        txt("a-nginx.example.com", OURS),
        record("stale.example.com", RecordType::A, &["192.0.2.99"]),
        owner_txt("a-stale.example.com", "default", "service/default/stale"),
        record("other.example.com", RecordType::A, &["198.51.100.1"]),
        owner_txt("a-other.example.com", "cluster-b", "service/b/other"),
        record("plain.example.com", RecordType::A, &["203.0.113.1"]),
        txt("plain.example.com", "\"v=spf1 -all\""),
    ]);
    let before_foreign = zone.get("other.example.com", RecordType::A);
    let changes = zone
        .sync(
            vec![
                desired(
                    "nginx.example.com",
                    RecordType::A,
                    &["192.0.2.11"],
                    "service/default/nginx",
                ),
                desired(
                    "other.example.com",
                    RecordType::Aaaa,
                    &["2001:db8::1"],
                    "service/default/x",
                ),
                desired(
                    "plain.example.com",
                    RecordType::A,
                    &["192.0.2.1"],
                    "service/default/y",
                ),
            ],
            Policy::Sync,
        )
        .await;
    assert_eq!(changes.update_new.len(), 1, "{changes:?}");
    assert_eq!(
        zone.get("nginx.example.com", RecordType::A).unwrap(),
        ["192.0.2.11"]
    );
    assert_eq!(
        zone.get("a-nginx.example.com", RecordType::Txt).unwrap(),
        [OURS]
    );
    assert_eq!(zone.get("stale.example.com", RecordType::A), None);
    assert_eq!(zone.get("a-stale.example.com", RecordType::Txt), None);
    assert_eq!(zone.get("other.example.com", RecordType::A), before_foreign);
    assert_eq!(zone.get("other.example.com", RecordType::Aaaa), None);
    assert_eq!(
        zone.get("plain.example.com", RecordType::A).unwrap(),
        ["203.0.113.1"]
    );
    assert_eq!(
        zone.get("plain.example.com", RecordType::Txt).unwrap(),
        ["\"v=spf1 -all\""]
    );
    let metrics = zone.metrics();
    assert!(
        metrics.contains("external_dns_registry_skipped_records_owner_mismatch_per_sync{record_type=\"a\",owner=\"default\",foreign_owner=\"cluster-b\",domain=\"example.com\"} 1"),
        "{metrics}"
    );
    // A second run is a no-op.
    let again = zone
        .sync(
            vec![
                desired(
                    "nginx.example.com",
                    RecordType::A,
                    &["192.0.2.11"],
                    "service/default/nginx",
                ),
                desired(
                    "other.example.com",
                    RecordType::Aaaa,
                    &["2001:db8::1"],
                    "service/default/x",
                ),
            ],
            Policy::Sync,
        )
        .await;
    assert!(!again.has_changes(), "{again:?}");
}

/// Legacy untyped TXT (external-dns up to v0.17): adopted for A and CNAME,
/// the typed TXT written on the next update, the legacy one left alone; an
/// AAAA is not owned by a legacy TXT.
#[tokio::test]
async fn legacy_txt_zone() {
    let zone = Zone::new(vec![
        record("nginx.example.com", RecordType::A, &["192.0.2.10"]),
        record("nginx.example.com", RecordType::Aaaa, &["2001:db8::10"]),
        txt("nginx.example.com", OURS),
    ]);
    let changes = zone
        .sync(
            vec![
                desired(
                    "nginx.example.com",
                    RecordType::A,
                    &["192.0.2.10"],
                    "service/default/nginx",
                ),
                desired(
                    "nginx.example.com",
                    RecordType::Aaaa,
                    &["2001:db8::11"],
                    "service/default/nginx",
                ),
            ],
            Policy::Sync,
        )
        .await;
    // The A is ours through the legacy TXT; its typed TXT was missing, so it is rewritten.
    assert_eq!(changes.update_new.len(), 1, "{changes:?}");
    assert_eq!(
        zone.get("a-nginx.example.com", RecordType::Txt).unwrap(),
        [OURS]
    );
    assert_eq!(
        zone.get("nginx.example.com", RecordType::Txt).unwrap(),
        [OURS]
    );
    // The AAAA is nobody's: untouched.
    assert_eq!(
        zone.get("nginx.example.com", RecordType::Aaaa).unwrap(),
        ["2001:db8::10"]
    );
    assert_eq!(zone.get("aaaa-nginx.example.com", RecordType::Txt), None);
}

/// Encrypted TXT: read and adopted with the key, deleted byte for byte (the
/// value as read, not re-encrypted); without the key the record is unowned.
#[tokio::test]
async fn encrypted_txt_zone() {
    let key = AesKey::parse("passphrasewhichneedstobe32bytes!").unwrap();
    let plain = labels::unquote(OURS);
    let value = format!("\"{}\"", key.encrypt(plain, Some("AQIDBAUGBwgJCgsM")));
    let records = || {
        vec![
            record("nginx.example.com", RecordType::A, &["192.0.2.10"]),
            txt("a-nginx.example.com", &value),
            record("web.example.com", RecordType::A, &["192.0.2.20"]),
            txt("a-web.example.com", &value),
        ]
    };
    let mut zone = Zone::new(records());
    // Without the key: the encrypted TXT is not a registry record; nothing is ours.
    let changes = zone.sync(vec![], Policy::Sync).await;
    assert!(changes.delete.is_empty(), "{changes:?}");
    zone.config.key = Some(key.clone());
    zone.config.encrypt = true;
    let changes = zone
        .sync(
            vec![desired(
                "nginx.example.com",
                RecordType::A,
                &["192.0.2.12"],
                "service/default/nginx",
            )],
            Policy::Sync,
        )
        .await;
    assert_eq!(changes.update_new.len(), 1);
    assert_eq!(
        zone.get("nginx.example.com", RecordType::A).unwrap(),
        ["192.0.2.12"]
    );
    // The same labels and nonce give the same value.
    assert_eq!(
        zone.get("a-nginx.example.com", RecordType::Txt).unwrap(),
        [value.as_str()]
    );
    // web.example.com is ours (same encrypted labels) and no longer wanted: deleted with its TXT.
    assert_eq!(zone.get("web.example.com", RecordType::A), None);
    assert_eq!(zone.get("a-web.example.com", RecordType::Txt), None);
}

/// `cname-` TXT (CNAME records, and AWS aliases before v0.22) and a
/// `--txt-prefix=%{record_type}.` zone are adopted.
#[tokio::test]
async fn cname_and_prefixed_zones() {
    let zone = Zone::new(vec![
        record(
            "www.example.com",
            RecordType::Cname,
            &["abc123.elb.example.net"],
        ),
        owner_txt("cname-www.example.com", "default", "ingress/default/web"),
    ]);
    let changes = zone
        .sync(
            vec![desired(
                "www.example.com",
                RecordType::Cname,
                &["def456.elb.example.net"],
                "ingress/default/web",
            )],
            Policy::Sync,
        )
        .await;
    assert_eq!(changes.update_new.len(), 1);
    assert_eq!(
        zone.get("www.example.com", RecordType::Cname).unwrap(),
        ["def456.elb.example.net"]
    );

    let mut zone = Zone::new(vec![
        record("nginx.example.com", RecordType::A, &["192.0.2.10"]),
        txt("a.nginx.example.com", OURS),
    ]);
    zone.config.names = TxtNames::new("%{record_type}.", "", "").unwrap();
    let changes = zone.sync(vec![], Policy::UpsertOnly).await;
    assert!(!changes.has_changes());
    zone.sync(vec![], Policy::Sync).await;
    assert_eq!(zone.get("nginx.example.com", RecordType::A), None);
    assert_eq!(zone.get("a.nginx.example.com", RecordType::Txt), None);
}

/// Issue 19 (sync chaos): another owner's typed TXT with no record claims
/// the name; a create there is dropped, and the TXT is left alone. Written
/// under that TXT the record would read as the other owner's from the next
/// run on, and never be updated or deleted by us again.
#[tokio::test]
async fn another_owners_txt_claim_blocks_the_create() {
    let claim = owner_txt("a-nginx.example.com", "other-owner", "service/other/x");
    let zone = Zone::new(vec![claim.clone()]);
    for _ in 0..2 {
        zone.sync(
            vec![desired(
                "nginx.example.com",
                RecordType::A,
                &["192.0.2.10"],
                "service/default/nginx",
            )],
            Policy::Sync,
        )
        .await;
        assert_eq!(zone.get("nginx.example.com", RecordType::A), None);
        assert_eq!(
            zone.get("a-nginx.example.com", RecordType::Txt),
            Some(claim.targets.clone())
        );
    }
}

/// v0.19+: a create whose TXT already exists (the record was deleted by
/// hand) writes the record only.
#[tokio::test]
async fn existing_txt_suppresses_a_duplicate_create() {
    let zone = Zone::new(vec![txt("a-nginx.example.com", OURS)]);
    let changes = zone
        .sync(
            vec![desired(
                "nginx.example.com",
                RecordType::A,
                &["192.0.2.10"],
                "service/default/nginx",
            )],
            Policy::Sync,
        )
        .await;
    assert_eq!(changes.create.len(), 1);
    assert_eq!(
        zone.get("nginx.example.com", RecordType::A).unwrap(),
        ["192.0.2.10"]
    );
}
