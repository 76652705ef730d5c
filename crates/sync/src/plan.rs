//! The planner: current records and desired endpoints in, changes out.
//!
//! Control plane, pure (no I/O, no clock). Follows external-dns v0.22
//! (`plan/plan.go`, `plan/conflict.go`, `plan/policy.go`):
//!
//! ```text
//! current ─┐ filter (domain, managed types) ┌─ rows by (name, set id) ─ per type: create / update / delete
//! desired ─┘                                └─ conflict rule (CNAME vs others), ResolveCreate/ResolveUpdate
//!            ─▶ policy (sync | upsert-only | create-only) ─▶ ownership filter ─▶ Changes
//! ```
//!
//! Invariants (I5, "the syncer never changes a record it does not own"): with
//! an owner id, every update and delete names a record whose `owner` label is
//! that id, and a create happens at a (name, set id) only when every current
//! record of a managed type there is ours. `UpdateOld[i]` is the current
//! version of `UpdateNew[i]`.

use crate::endpoint::{
    Endpoint, EndpointKey, OWNER_LABEL, RESOURCE_LABEL, RecordType, same_targets, targets_less,
};
use crate::filter::{DomainFilter, ManagedTypes};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// `--policy`: which kinds of change are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Create, update and delete.
    Sync,
    /// Create and update; never delete.
    UpsertOnly,
    /// Create only.
    CreateOnly,
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "sync" => Ok(Self::Sync),
            "upsert-only" => Ok(Self::UpsertOnly),
            "create-only" => Ok(Self::CreateOnly),
            other => Err(format!(
                "unknown policy {other:?} (one of: sync, upsert-only, create-only)"
            )),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sync => "sync",
            Self::UpsertOnly => "upsert-only",
            Self::CreateOnly => "create-only",
        })
    }
}

/// What to change in the zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Record sets to create.
    pub create: Vec<Endpoint>,
    /// Current versions of the record sets to update.
    pub update_old: Vec<Endpoint>,
    /// New versions, index-aligned with `update_old`.
    pub update_new: Vec<Endpoint>,
    /// Record sets to delete.
    pub delete: Vec<Endpoint>,
}

// === impl Changes ===

impl Changes {
    /// Whether anything would change.
    pub fn has_changes(&self) -> bool {
        !self.create.is_empty() || !self.delete.is_empty() || self.update_old != self.update_new
    }

    /// Number of record sets touched.
    pub fn len(&self) -> usize {
        self.create.len() + self.update_new.len() + self.delete.len()
    }

    /// Whether there are no changes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A current record that kept a create or an update from happening (another
/// owner's, or nobody's), for `registry_skipped_records_owner_mismatch_per_sync`.
/// external-dns counts only blocked creates; a wanted name held by a record
/// of the same type that is not ours is counted here too, so an operator sees
/// every name sync wants and may not take.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnerMismatch {
    /// Lower-case record type.
    pub record_type: RecordType,
    /// The record's owner label, or its set identifier if it has none.
    pub foreign_owner: String,
    /// The name without its first label (the name itself at two labels or fewer).
    pub domain: String,
}

/// What the planner needs besides the two record lists.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// `--policy`.
    pub policy: Policy,
    /// The user's filter AND the provider's own.
    pub domain_filter: DomainFilter,
    /// `--managed-record-types` minus `--exclude-record-types`.
    pub managed: ManagedTypes,
    /// `--txt-owner-id`; empty with the noop registry (no ownership checks).
    pub owner_id: String,
    /// `--migrate-from-txt-owner`; empty when not migrating.
    pub old_owner_id: String,
}

/// The planner's result.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The changes to apply.
    pub changes: Changes,
    /// Current records that blocked a create.
    pub owner_mismatches: Vec<OwnerMismatch>,
    /// Desired endpoints left out because their name is outside the filter.
    pub filtered_out: Vec<Endpoint>,
}

#[derive(Default)]
struct Slot {
    current: Option<Endpoint>,
    candidates: Vec<Endpoint>,
}

#[derive(Default)]
struct Row {
    current: Vec<Endpoint>,
    slots: BTreeMap<RecordType, Slot>,
}

/// Computes the changes that take `current` to `desired` under `config`.
pub fn calculate(current: &[Endpoint], desired: &[Endpoint], config: &PlanConfig) -> Plan {
    let mut plan = Plan::default();
    let visible = |e: &Endpoint| {
        config.managed.contains(e.record_type) && config.domain_filter.matches(&e.dns_name)
    };
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for record in current.iter().filter(|e| visible(e)) {
        let row = rows.entry(row_key(record)).or_default();
        row.current.push(record.clone());
        row.slots.entry(record.record_type).or_default().current = Some(record.clone());
    }
    for endpoint in desired {
        if !config.managed.contains(endpoint.record_type) {
            continue;
        }
        if !config.domain_filter.matches(&endpoint.dns_name) {
            plan.filtered_out.push(endpoint.clone());
            continue;
        }
        let row = rows.entry(row_key(endpoint)).or_default();
        row.slots
            .entry(endpoint.record_type)
            .or_default()
            .candidates
            .push(endpoint.clone());
    }

    let mut changes = Changes::default();
    for (_, mut row) in rows {
        resolve_type_conflict(&mut row);
        let has_candidates = row.slots.values().any(|s| !s.candidates.is_empty());
        if row.current.is_empty() {
            for slot in row.slots.values() {
                if !slot.candidates.is_empty() {
                    changes.create.push(resolve_create(&slot.candidates));
                }
            }
            continue;
        }
        if !has_candidates {
            changes.delete.extend(row.current.iter().cloned());
            continue;
        }
        let mut creates = Vec::new();
        for slot in row.slots.values() {
            match (&slot.current, slot.candidates.is_empty()) {
                (Some(current), true) => changes.delete.push(current.clone()),
                (None, false) => creates.push(resolve_create(&slot.candidates)),
                (Some(current), false) => {
                    let mut desired = resolve_update(current, &slot.candidates);
                    if should_update(current, &desired, &config.old_owner_id) {
                        desired
                            .labels
                            .insert(OWNER_LABEL.to_owned(), current.owner().to_owned());
                        changes.update_old.push(current.clone());
                        changes.update_new.push(desired);
                    }
                }
                (None, true) => {}
            }
        }
        if creates.is_empty() {
            continue;
        }
        if config.owner_id.is_empty() {
            changes.create.extend(creates);
            continue;
        }
        let foreign: Vec<&Endpoint> = row
            .current
            .iter()
            .filter(|r| !r.is_owned_by(&config.owner_id))
            .collect();
        if foreign.is_empty() {
            changes.create.extend(creates);
        } else {
            for record in foreign {
                tracing::debug!(record = %record, owner = record.owner(), "create skipped: a record at this name is not ours");
                plan.owner_mismatches.push(mismatch(record));
            }
        }
    }

    match config.policy {
        Policy::Sync => {}
        Policy::UpsertOnly => changes.delete.clear(),
        Policy::CreateOnly => {
            changes.delete.clear();
            changes.update_old.clear();
            changes.update_new.clear();
        }
    }

    if !config.owner_id.is_empty() {
        let ours = |e: &Endpoint| e.is_owned_by(&config.owner_id);
        changes.delete.retain(ours);
        let mut old = Vec::new();
        let mut new = Vec::new();
        for (current, desired) in changes
            .update_old
            .drain(..)
            .zip(changes.update_new.drain(..))
        {
            if ours(&current) && ours(&desired) {
                old.push(current);
                new.push(desired);
            } else {
                // A record of another owner (or nobody's) where we want one:
                // counted like a blocked create (external-dns counts only those).
                tracing::debug!(record = %current, owner = current.owner(), "update skipped: the record is not ours");
                plan.owner_mismatches.push(mismatch(&current));
            }
        }
        changes.update_old = old;
        changes.update_new = new;
        let mut seen: BTreeSet<EndpointKey> = BTreeSet::new();
        changes.delete.retain(|e| seen.insert(e.key()));
    }
    plan.changes = changes;
    plan
}

/// The row key: lower-case name with a trailing dot, and the set identifier.
fn row_key(endpoint: &Endpoint) -> (String, String) {
    let mut name = endpoint.dns_name.to_ascii_lowercase();
    name.push('.');
    (name, endpoint.set_identifier.clone())
}

/// When a row wants a CNAME and another type, the CNAME candidates go
/// (RFC 1034 §3.6.2: a CNAME cannot share its name).
fn resolve_type_conflict(row: &mut Row) {
    let candidates = |t: &RecordType, s: &Slot| (*t, !s.candidates.is_empty());
    let wanted: Vec<(RecordType, bool)> = row.slots.iter().map(|(t, s)| candidates(t, s)).collect();
    let cname = wanted.iter().any(|(t, c)| *c && *t == RecordType::Cname);
    let other = wanted.iter().any(|(t, c)| *c && *t != RecordType::Cname);
    if cname
        && other
        && let Some(slot) = row.slots.get_mut(&RecordType::Cname)
    {
        tracing::warn!(
            name = %slot.candidates[0].dns_name,
            "domain contains conflicting record type candidates; discarding CNAME record"
        );
        slot.candidates.clear();
    }
}

/// The candidate with the least targets (external-dns `ResolveCreate`).
fn resolve_create(candidates: &[Endpoint]) -> Endpoint {
    let mut best = &candidates[0];
    for candidate in &candidates[1..] {
        if targets_less(&candidate.targets, &best.targets) {
            best = candidate;
        }
    }
    best.clone()
}

/// The candidate from the resource that already holds the name, else the
/// least (external-dns `ResolveUpdate`).
fn resolve_update(current: &Endpoint, candidates: &[Endpoint]) -> Endpoint {
    let mut sorted: Vec<&Endpoint> = candidates.iter().collect();
    sorted.sort_by(|a, b| {
        if targets_less(&a.targets, &b.targets) {
            std::cmp::Ordering::Less
        } else if targets_less(&b.targets, &a.targets) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let resource = current.labels.get(RESOURCE_LABEL);
    sorted
        .iter()
        .find(|c| resource.is_some() && c.labels.get(RESOURCE_LABEL) == resource)
        .map_or_else(|| resolve_create(candidates), |c| (*c).clone())
}

/// external-dns `shouldUpdate*`: a configured TTL that differs, different
/// targets, different provider-specific properties, or an owner migration.
fn should_update(current: &Endpoint, desired: &Endpoint, old_owner_id: &str) -> bool {
    if desired.ttl > 0 && desired.ttl != current.ttl {
        return true;
    }
    if !same_targets(&current.targets, &desired.targets) {
        return true;
    }
    let mut a = current.provider_specific.clone();
    let mut b = desired.provider_specific.clone();
    a.sort();
    b.sort();
    if a != b {
        return true;
    }
    !old_owner_id.is_empty() && current.owner() != old_owner_id
}

/// The owner-mismatch report for a record that is not ours.
fn mismatch(record: &Endpoint) -> OwnerMismatch {
    OwnerMismatch {
        record_type: record.record_type,
        foreign_owner: match record.labels.get(OWNER_LABEL) {
            Some(owner) => owner.to_ascii_lowercase(),
            None => record.set_identifier.to_ascii_lowercase(),
        },
        domain: mismatch_domain(&record.dns_name),
    }
}

fn mismatch_domain(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.split('.').count() <= 2 {
        return name;
    }
    name.split_once('.')
        .map_or(name.clone(), |(_, rest)| rest.to_owned())
}

#[cfg(test)]
mod tests;
