//! The metrics of `signpost sync`, under external-dns's names, labels and
//! help texts (v0.22, `controller/metrics.go`, `plan/metrics.go`,
//! `source/wrappers/metrics.go`), so existing dashboards and alerts keep
//! working.
//!
//! Admin plane. The controller task writes, `/metrics` reads; both take the
//! one mutex for a few map operations and never across `.await` (a scrape
//! copies nothing but numbers). `record_type` label values are lower case
//! (`a`, `aaaa`, `cname`), as external-dns writes them since v0.18. The
//! owner-mismatch gauge carries names from the zone (`foreign_owner`,
//! `domain`); it is reset on every plan, so it holds only what the last
//! plan saw.
//!
//! signpost adds, under its own prefix, `signpost_sync_provider_errors_total{kind}`
//! (why provider calls failed: a closed set), `signpost_sync_changes_total{action}`
//! (record sets written), `signpost_sync_leader` (1 while this replica writes),
//! and with `--health-verdicts` `signpost_sync_geo_region_withdrawn{name,region}`
//! (1 per region left out of a name) and `signpost_sync_geo_fail_open{name}`
//! (1 per name published whole because every region fails).

use crate::endpoint::RecordType;
use crate::plan::{Changes, OwnerMismatch};
use crate::verdicts::GeoHealth;
use signpost_model::metrics::{Exposition, Kind};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Every metric of the sync role.
#[derive(Debug, Default)]
pub struct SyncMetrics {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_reconcile: f64,
    last_sync: f64,
    no_op_runs: u64,
    consecutive_soft_errors: u64,
    registry_endpoints: usize,
    registry_errors: u64,
    registry_records: BTreeMap<RecordType, u64>,
    source_endpoints: usize,
    source_errors: u64,
    source_records: BTreeMap<RecordType, u64>,
    verified_records: BTreeMap<RecordType, u64>,
    owner_id: String,
    owner_mismatch: BTreeMap<OwnerMismatch, u64>,
    invalid_endpoints: BTreeMap<(String, &'static str), u64>,
    deduplicated_endpoints: BTreeMap<(RecordType, &'static str), u64>,
    provider_errors: BTreeMap<&'static str, u64>,
    changes: BTreeMap<&'static str, u64>,
    leader: bool,
    /// What the verdicts withdrew in the last run (`--health-verdicts`).
    geo: GeoHealth,
    /// Whether `--health-verdicts` is on (the geo families are rendered).
    geo_on: bool,
    /// The last plan, for the status API: (action, name, type, targets).
    last_plan: Vec<PlannedRow>,
    /// The last run's error, if it failed (never a secret: provider errors carry none).
    last_error: Option<String>,
}

/// One planned change as the status API shows it: (action, name, type, targets).
pub type PlannedRow = (&'static str, String, RecordType, Vec<String>);

/// A problem with one desired endpoint, for `source_invalid_endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Invalid {
    /// Lower-case record type, or `""` when no record could be typed.
    pub record_type: String,
    /// The source: `service` or `ingress`.
    pub source_type: &'static str,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn count_types<'a>(records: impl IntoIterator<Item = &'a RecordType>) -> BTreeMap<RecordType, u64> {
    let mut counts = BTreeMap::new();
    for record_type in records {
        *counts.entry(*record_type).or_insert(0) += 1;
    }
    counts
}

// === impl SyncMetrics ===

impl SyncMetrics {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a plain store; a panic mid-update leaves numbers, not broken maps.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A run starts.
    pub fn reconcile_started(&self) {
        self.lock().last_reconcile = now();
    }

    /// The registry listed `records`.
    pub fn registry_listed(&self, records: &[crate::endpoint::Endpoint]) {
        let mut state = self.lock();
        state.registry_endpoints = records.len();
        state.registry_records = count_types(records.iter().map(|r| &r.record_type));
    }

    /// The registry (or the provider under it) failed.
    pub fn registry_failed(&self, kind: &'static str) {
        let mut state = self.lock();
        state.registry_errors += 1;
        *state.provider_errors.entry(kind).or_insert(0) += 1;
    }

    /// The sources yielded `desired`, of which `verified` exist in the registry.
    pub fn source_listed(&self, desired: &[crate::endpoint::Endpoint], verified: &[RecordType]) {
        let mut state = self.lock();
        state.source_endpoints = desired.len();
        state.source_records = count_types(desired.iter().map(|r| &r.record_type));
        state.verified_records = count_types(verified);
    }

    /// The sources could not be read.
    pub fn source_failed(&self) {
        self.lock().source_errors += 1;
    }

    /// This run's rejected and duplicate desired endpoints (replacing the last run's).
    pub fn source_rejected(&self, invalid: &[Invalid], duplicates: &[(RecordType, &'static str)]) {
        let mut state = self.lock();
        state.invalid_endpoints.clear();
        for item in invalid {
            *state
                .invalid_endpoints
                .entry((item.record_type.clone(), item.source_type))
                .or_insert(0) += 1;
        }
        state.deduplicated_endpoints.clear();
        for item in duplicates {
            *state.deduplicated_endpoints.entry(*item).or_insert(0) += 1;
        }
    }

    /// The plan's blocked creates (replacing the last plan's).
    pub fn planned(&self, owner_id: &str, mismatches: &[OwnerMismatch]) {
        let mut state = self.lock();
        owner_id.clone_into(&mut state.owner_id);
        state.owner_mismatch.clear();
        for mismatch in mismatches {
            *state.owner_mismatch.entry(mismatch.clone()).or_insert(0) += 1;
        }
    }

    /// The plan of the last run (applied or, with `--dry-run`, printed).
    pub fn plan(&self, changes: &Changes) {
        let rows = changes
            .create
            .iter()
            .map(|e| ("create", e))
            .chain(changes.update_new.iter().map(|e| ("update", e)))
            .chain(changes.delete.iter().map(|e| ("delete", e)))
            .map(|(action, e)| (action, e.dns_name.clone(), e.record_type, e.targets.clone()))
            .collect();
        self.lock().last_plan = rows;
    }

    /// The last run's error (`None` after a success).
    pub fn set_error(&self, error: Option<String>) {
        self.lock().last_error = error;
    }

    /// The status API's view: the last plan and error.
    pub fn last_plan_and_error(&self) -> (Vec<PlannedRow>, Option<String>) {
        let state = self.lock();
        (state.last_plan.clone(), state.last_error.clone())
    }

    /// Changes were written.
    pub fn applied(&self, changes: &Changes) {
        let mut state = self.lock();
        for (action, count) in [
            ("create", changes.create.len()),
            ("update", changes.update_new.len()),
            ("delete", changes.delete.len()),
        ] {
            *state.changes.entry(action).or_insert(0) += count as u64;
        }
    }

    /// A run ended successfully; `no_op` when nothing had to change.
    pub fn succeeded(&self, no_op: bool) {
        let mut state = self.lock();
        if no_op {
            state.no_op_runs += 1;
        }
        state.consecutive_soft_errors = 0;
        state.last_sync = now();
    }

    /// A run failed; returns how many failed in a row.
    pub fn failed(&self) -> u64 {
        let mut state = self.lock();
        state.consecutive_soft_errors += 1;
        state.consecutive_soft_errors
    }

    /// How many runs failed in a row so far.
    pub fn failed_count(&self) -> u64 {
        self.lock().consecutive_soft_errors
    }

    /// Whether this replica writes.
    pub fn set_leader(&self, leading: bool) {
        self.lock().leader = leading;
    }

    /// Turns the geo families on (`--health-verdicts`).
    pub fn follow_verdicts(&self) {
        self.lock().geo_on = true;
    }

    /// What the verdicts withdrew in the last run.
    pub fn geo(&self) -> GeoHealth {
        self.lock().geo.clone()
    }

    /// Records what the verdicts withdrew in this run.
    pub fn set_geo(&self, geo: GeoHealth) {
        let mut state = self.lock();
        state.geo_on = true;
        state.geo = geo;
    }

    /// Successful runs so far have set this (seconds since the epoch), or 0.
    pub fn last_sync(&self) -> f64 {
        self.lock().last_sync
    }

    /// Writes every family.
    pub fn render(&self, out: &mut String) {
        let state = self.lock();
        let mut x = Exposition::new(out);
        let gauge =
            |x: &mut Exposition<'_>, name: &str, help: &str, value: &dyn std::fmt::Display| {
                x.family(name, Kind::Gauge, help);
                x.sample(name, &[], value);
            };
        gauge(
            &mut x,
            "external_dns_controller_last_reconcile_timestamp_seconds",
            "Timestamp of last attempted sync with the DNS provider",
            &state.last_reconcile,
        );
        gauge(
            &mut x,
            "external_dns_controller_last_sync_timestamp_seconds",
            "Timestamp of last successful sync with the DNS provider",
            &state.last_sync,
        );
        x.family(
            "external_dns_controller_no_op_runs_total",
            Kind::Counter,
            "Number of reconcile loops ending up with no changes on the DNS provider side.",
        );
        x.sample(
            "external_dns_controller_no_op_runs_total",
            &[],
            state.no_op_runs,
        );
        gauge(
            &mut x,
            "external_dns_controller_consecutive_soft_errors",
            "Number of consecutive soft errors in reconciliation loop.",
            &state.consecutive_soft_errors,
        );
        by_type(
            &mut x,
            "external_dns_controller_verified_records",
            "Number of DNS records that exists both in source and registry (vector).",
            &state.verified_records,
        );
        gauge(
            &mut x,
            "external_dns_registry_endpoints_total",
            "Number of Endpoints in the registry",
            &state.registry_endpoints,
        );
        x.family(
            "external_dns_registry_errors_total",
            Kind::Counter,
            "Number of Registry errors.",
        );
        x.sample(
            "external_dns_registry_errors_total",
            &[],
            state.registry_errors,
        );
        by_type(
            &mut x,
            "external_dns_registry_records",
            "Number of registry records partitioned by label name (vector).",
            &state.registry_records,
        );
        let name = "external_dns_registry_skipped_records_owner_mismatch_per_sync";
        x.family(name, Kind::Gauge, "Number of records skipped with owner mismatch for each record type, owner mismatch ID and domain (vector).");
        for (mismatch, count) in &state.owner_mismatch {
            x.sample(
                name,
                &[
                    ("record_type", &mismatch.record_type.lower()),
                    ("owner", &state.owner_id),
                    ("foreign_owner", &mismatch.foreign_owner),
                    ("domain", &mismatch.domain),
                ],
                count,
            );
        }
        gauge(
            &mut x,
            "external_dns_source_endpoints_total",
            "Number of Endpoints in all sources",
            &state.source_endpoints,
        );
        x.family(
            "external_dns_source_errors_total",
            Kind::Counter,
            "Number of Source errors.",
        );
        x.sample("external_dns_source_errors_total", &[], state.source_errors);
        by_type(
            &mut x,
            "external_dns_source_records",
            "Number of source records partitioned by label name (vector).",
            &state.source_records,
        );
        let name = "external_dns_source_invalid_endpoints";
        x.family(name, Kind::Gauge, "Number of endpoints currently rejected due to invalid configuration, partitioned by record type and source.");
        for ((record_type, source_type), count) in &state.invalid_endpoints {
            x.sample(
                name,
                &[("record_type", record_type), ("source_type", source_type)],
                count,
            );
        }
        let name = "external_dns_source_deduplicated_endpoints";
        x.family(name, Kind::Gauge, "Number of endpoints currently removed as duplicates, partitioned by record type and source.");
        for ((record_type, source_type), count) in &state.deduplicated_endpoints {
            x.sample(
                name,
                &[
                    ("record_type", &record_type.lower()),
                    ("source_type", source_type),
                ],
                count,
            );
        }
        let name = "signpost_sync_provider_errors_total";
        x.family(
            name,
            Kind::Counter,
            "Failed provider calls by kind (unreachable, server, unauthorized, rejected, partial).",
        );
        for kind in [
            "unreachable",
            "server",
            "unauthorized",
            "rejected",
            "partial",
        ] {
            x.sample(
                name,
                &[("kind", &kind)],
                state.provider_errors.get(kind).copied().unwrap_or(0),
            );
        }
        let name = "signpost_sync_changes_total";
        x.family(
            name,
            Kind::Counter,
            "Record sets written to the provider, by action.",
        );
        for action in ["create", "update", "delete"] {
            x.sample(
                name,
                &[("action", &action)],
                state.changes.get(action).copied().unwrap_or(0),
            );
        }
        gauge(
            &mut x,
            "signpost_sync_leader",
            "1 while this replica is the one that writes records.",
            &u8::from(state.leader),
        );
        if state.geo_on {
            let name = "signpost_sync_geo_region_withdrawn";
            x.family(
                name,
                Kind::Gauge,
                "1 for each region left out of a name because every endpoint of it fails its health checks.",
            );
            for (dns_name, region) in &state.geo.withdrawn {
                x.sample(name, &[("name", dns_name), ("region", region)], 1);
            }
            let name = "signpost_sync_geo_fail_open";
            x.family(
                name,
                Kind::Gauge,
                "1 for each name published with every region because all of them fail their health checks.",
            );
            for dns_name in &state.geo.fail_open {
                x.sample(name, &[("name", dns_name)], 1);
            }
        }
    }
}

/// A gauge vector by lower-case record type.
fn by_type(x: &mut Exposition<'_>, name: &str, help: &str, counts: &BTreeMap<RecordType, u64>) {
    x.family(name, Kind::Gauge, help);
    for (record_type, count) in counts {
        x.sample(name, &[("record_type", &record_type.lower())], count);
    }
}
