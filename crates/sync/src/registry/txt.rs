//! `--registry=txt`: ownership kept in TXT records next to the records, in
//! external-dns v0.22's format.
//!
//! Control plane. On read (`records`):
//!
//! ```text
//! provider records ─┬─ TXT whose first target has heritage=external-dns ─▶ labels by (name, type, set id)
//!                   │    (decrypted first when a key is configured)          + "TXT seen" set, raw value kept
//!                   └─ everything else ─▶ labels attached: typed TXT, else legacy untyped (not for AAAA)
//!                                          owned by us but typed TXT missing ─▶ txt/force-update
//! ```
//!
//! On write (`apply_changes`) every create gets `owner=<id>` and a typed TXT
//! (unless that TXT already exists, ours); a create whose typed TXT exists
//! with another owner's name is dropped: that owner claims the name, and a
//! record written under its TXT would read as theirs from then on (never
//! updated or deleted by us again). Updates and deletes carry their TXT
//! along. Deletes and update-olds reuse the TXT value exactly as read, so an
//! encrypted value (whose gzip bytes differ between Go and Rust) is removed
//! byte for byte, and an update whose labels did not change keeps its TXT
//! value as is (external-dns re-encrypts with the old nonce; signpost never
//! encrypts two plaintexts under one nonce). Legacy untyped TXT records are read but never written or
//! deleted (external-dns since v0.18).
//!
//! Invariants: only records owned by us are updated or deleted (checked again
//! here, after the planner); a record and its TXT go to the provider in the
//! same change set, which providers apply atomically; the cache
//! (`--txt-cache-interval`) is patched only after a successful apply and
//! dropped after a failed one.

use super::Registry;
use super::crypto::AesKey;
use super::labels;
use super::names::TxtNames;
use crate::endpoint::{
    Endpoint, FORCE_UPDATE, NONCE_LABEL, OWNED_RECORD_LABEL, OWNER_LABEL, RecordType,
};
use crate::filter::ManagedTypes;
use crate::plan::Changes;
use crate::provider::{Provider, ProviderError};
use signpost_model::BoxFuture;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The TXT registry's settings.
#[derive(Debug, Clone)]
pub struct TxtConfig {
    /// `--txt-owner-id` (never empty).
    pub owner_id: String,
    /// `--txt-prefix`, `--txt-suffix`, `--txt-wildcard-replacement`.
    pub names: TxtNames,
    /// `--txt-encrypt-aes-key`: read encrypted values with it.
    pub key: Option<AesKey>,
    /// `--txt-encrypt-enabled`: write encrypted values.
    pub encrypt: bool,
    /// `--txt-cache-interval`; zero turns the cache off.
    pub cache_interval: Duration,
    /// The planner's managed types (for the missing-TXT repair).
    pub managed: ManagedTypes,
    /// `--migrate-from-txt-owner`; empty when not migrating.
    pub old_owner_id: String,
}

/// Ownership in TXT records.
pub struct TxtRegistry {
    provider: Arc<dyn Provider>,
    config: TxtConfig,
    /// (lower-case TXT name, set id) of every ownership TXT last read.
    existing: HashSet<(String, String)>,
    /// The ownership TXT records last read, by the same key.
    raw: HashMap<(String, String), Endpoint>,
    cache: Option<(Instant, Vec<Endpoint>)>,
    /// Creates dropped for another owner's TXT claim, already logged.
    claimed: HashSet<(String, String)>,
}

type LabelKey = (String, Option<RecordType>, String);

// === impl TxtRegistry ===

impl TxtRegistry {
    /// A registry over `provider`.
    pub fn new(provider: Arc<dyn Provider>, config: TxtConfig) -> Self {
        Self {
            provider,
            config,
            existing: HashSet::new(),
            raw: HashMap::new(),
            cache: None,
            claimed: HashSet::new(),
        }
    }

    /// The owner named by the ownership TXT read at `key`, when it is
    /// another owner (neither us nor the owner we migrate from).
    fn other_claim(&self, key: &(String, String)) -> Option<String> {
        let raw = self.raw.get(key)?;
        let labels = raw.targets.first().and_then(|t| self.parse_value(t))?;
        let owner = labels.get(OWNER_LABEL)?;
        let ours = *owner == self.config.owner_id
            || (!self.config.old_owner_id.is_empty() && *owner == self.config.old_owner_id);
        (!ours).then(|| owner.clone())
    }

    /// Parses an ownership TXT target: labels, and the nonce if it was encrypted.
    fn parse_value(&self, value: &str) -> Option<BTreeMap<String, String>> {
        let text = labels::unquote(value);
        if let Some(key) = &self.config.key
            && let Ok((plain, nonce)) = key.decrypt(text)
        {
            let mut parsed = labels::parse(&plain).ok()?;
            parsed.insert(NONCE_LABEL.to_owned(), nonce);
            return Some(parsed);
        }
        labels::parse(text).ok()
    }

    async fn read(&mut self) -> Result<Vec<Endpoint>, ProviderError> {
        self.existing.clear();
        if !self.config.cache_interval.is_zero()
            && let Some((at, records)) = &self.cache
            && at.elapsed() < self.config.cache_interval
        {
            return Ok(records.clone());
        }
        self.raw.clear();
        let all = self.provider.records().await?;
        let mut owners: HashMap<LabelKey, BTreeMap<String, String>> = HashMap::new();
        let mut records = Vec::with_capacity(all.len());
        for record in all {
            if record.record_type == RecordType::Txt {
                let parsed = record.targets.first().and_then(|t| self.parse_value(t));
                if let Some(found) = parsed {
                    if let Some(mapped) = self.config.names.record_name(&record.dns_name) {
                        owners.insert(
                            (
                                mapped.name,
                                mapped.record_type,
                                record.set_identifier.clone(),
                            ),
                            found,
                        );
                    }
                    let key = (
                        record.dns_name.to_ascii_lowercase(),
                        record.set_identifier.clone(),
                    );
                    self.existing.insert(key.clone());
                    self.raw.insert(key, record);
                    continue;
                }
                if record.targets.is_empty() {
                    tracing::debug!(name = %record.dns_name, "TXT record has no targets");
                    continue;
                }
            }
            records.push(record);
        }
        let saw_registry = !self.existing.is_empty();
        for record in &mut records {
            let mut name = record.dns_name.to_ascii_lowercase();
            let wildcard = self.config.names.wildcard();
            if !wildcard.is_empty()
                && let Some(rest) = name.strip_prefix("*.")
            {
                name = format!("{wildcard}.{rest}");
            }
            let set = record.set_identifier.clone();
            let found = owners
                .get(&(name.clone(), Some(record.record_type), set.clone()))
                .or_else(|| {
                    (record.record_type != RecordType::Aaaa)
                        .then(|| owners.get(&(name, None, set)))
                        .flatten()
                });
            if let Some(found) = found {
                record
                    .labels
                    .extend(found.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let old = &self.config.old_owner_id;
            if !old.is_empty() && record.owner() == old {
                record
                    .labels
                    .insert(OWNER_LABEL.to_owned(), self.config.owner_id.clone());
            }
            if saw_registry
                && record.is_owned_by(&self.config.owner_id)
                && self.config.managed.contains(record.record_type)
            {
                let txt = self
                    .config
                    .names
                    .txt_name(&record.dns_name, record.record_type);
                if !self
                    .existing
                    .contains(&(txt.to_ascii_lowercase(), record.set_identifier.clone()))
                {
                    record.set_property(FORCE_UPDATE, "true");
                }
            }
        }
        if !self.config.cache_interval.is_zero() {
            self.cache = Some((Instant::now(), records.clone()));
        }
        Ok(records)
    }

    /// The ownership TXT to write for `record`, from its labels.
    fn new_txt(&self, record: &Endpoint) -> Endpoint {
        let mut owned = record.labels.clone();
        owned.remove(OWNED_RECORD_LABEL);
        let old = &self.config.old_owner_id;
        if !old.is_empty() && owned.get(OWNER_LABEL) == Some(old) {
            owned.insert(OWNER_LABEL.to_owned(), self.config.owner_id.clone());
        }
        let value = match (&self.config.key, self.config.encrypt) {
            // A fresh nonce every time: GCM must never see one nonce with two
            // plaintexts. (Unchanged labels keep their value; see `write`.)
            (Some(key), true) => format!("\"{}\"", key.encrypt(&labels::serialise(&owned), None)),
            _ => labels::serialise_quoted(&owned),
        };
        let name = self
            .config
            .names
            .txt_name(&record.dns_name, record.record_type);
        let mut txt = Endpoint::new(&name, RecordType::Txt, vec![value])
            .with_set_identifier(&record.set_identifier)
            .with_label(OWNED_RECORD_LABEL, &record.dns_name);
        txt.provider_specific.clone_from(&record.provider_specific);
        txt.provider_specific
            .retain(|(name, _)| name != FORCE_UPDATE);
        txt
    }

    /// The ownership TXT currently in the zone for `record`: as read when it
    /// was, regenerated otherwise.
    fn current_txt(&self, record: &Endpoint) -> Endpoint {
        let name = self
            .config
            .names
            .txt_name(&record.dns_name, record.record_type);
        match self
            .raw
            .get(&(name.to_ascii_lowercase(), record.set_identifier.clone()))
        {
            Some(raw) => {
                let mut txt = raw.clone();
                txt.labels.clear();
                txt.labels
                    .insert(OWNED_RECORD_LABEL.to_owned(), record.dns_name.clone());
                txt
            }
            None => self.new_txt(record),
        }
    }

    async fn write(&mut self, changes: Changes) -> Result<(), ProviderError> {
        let owner = self.config.owner_id.clone();
        let mut out = Changes::default();
        let mut claimed = HashSet::new();
        for mut record in changes.create {
            record.labels.insert(OWNER_LABEL.to_owned(), owner.clone());
            let txt = self.new_txt(&record);
            let key = (
                txt.dns_name.to_ascii_lowercase(),
                txt.set_identifier.clone(),
            );
            if let Some(other) = self.other_claim(&key) {
                // One log line while the claim lasts, not one per run.
                if !self.claimed.contains(&key) {
                    tracing::warn!(
                        name = %record.dns_name,
                        record_type = record.record_type.as_str(),
                        foreign_owner = %other,
                        "not creating: another owner's ownership TXT claims this name"
                    );
                }
                claimed.insert(key);
                continue;
            }
            let exists = self.existing.contains(&key);
            out.create.push(record);
            if !exists {
                out.create.push(txt);
            }
        }
        for (old, new) in changes.update_old.into_iter().zip(changes.update_new) {
            if !old.is_owned_by(&owner) || !new.is_owned_by(&owner) {
                continue;
            }
            let old_txt = self.current_txt(&old);
            // Unchanged labels keep the TXT exactly as it is (an encrypted
            // value is not re-encrypted).
            let new_txt = if labels::serialise(&old.labels) == labels::serialise(&new.labels) {
                let mut kept = old_txt.clone();
                kept.provider_specific.clone_from(&new.provider_specific);
                kept
            } else {
                self.new_txt(&new)
            };
            out.update_old.push(old);
            out.update_old.push(old_txt);
            out.update_new.push(new);
            out.update_new.push(new_txt);
        }
        for record in changes.delete {
            if !record.is_owned_by(&owner) {
                continue;
            }
            let txt = self.current_txt(&record);
            out.delete.push(record);
            out.delete.push(txt);
        }
        self.claimed = claimed;
        let result = self.provider.apply_changes(&out).await;
        match &result {
            Ok(()) => self.patch_cache(&out),
            Err(_) => self.cache = None,
        }
        result
    }

    fn patch_cache(&mut self, applied: &Changes) {
        let Some((_, records)) = &mut self.cache else {
            return;
        };
        let gone: HashSet<_> = applied
            .delete
            .iter()
            .chain(&applied.update_old)
            .filter(|e| {
                e.record_type != RecordType::Txt || !e.labels.contains_key(OWNED_RECORD_LABEL)
            })
            .map(Endpoint::key)
            .collect();
        records.retain(|r| !gone.contains(&r.key()));
        records.extend(
            applied
                .create
                .iter()
                .chain(&applied.update_new)
                .filter(|e| !e.labels.contains_key(OWNED_RECORD_LABEL))
                .cloned(),
        );
    }
}

impl Registry for TxtRegistry {
    fn owner_id(&self) -> &str {
        &self.config.owner_id
    }

    fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    fn records(&mut self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>> {
        Box::pin(self.read())
    }

    fn apply_changes(&mut self, changes: Changes) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.write(changes))
    }
}

#[cfg(test)]
mod tests;
