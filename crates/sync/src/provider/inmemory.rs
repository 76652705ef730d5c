//! The in-memory provider (`--provider=inmemory`, `--inmemory-zone`).
//!
//! Control plane. Zones are maps keyed by (name, type, set identifier) behind
//! a mutex held only for one map operation, never across `.await`. A change
//! goes to the longest zone that is a suffix of its name (on label
//! boundaries, unlike external-dns's plain string suffix); a change outside
//! every zone is ignored, as in external-dns. Every change set is validated
//! whole before anything is stored, so a rejected set changes nothing:
//! a create must not exist (`record already exists`), a delete must exist
//! (`record not found`), one key may not appear twice (`invalid batch request`).

use super::{Provider, ProviderError};
use crate::endpoint::{Endpoint, EndpointKey};
use crate::plan::Changes;
use signpost_model::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

type Zone = BTreeMap<EndpointKey, Endpoint>;

/// Records held in this process.
#[derive(Debug)]
pub struct InMemory {
    zones: Mutex<BTreeMap<String, Zone>>,
}

// === impl InMemory ===

impl InMemory {
    /// Empty zones named `zones` (no trailing dot); an empty list or an empty
    /// name is one zone holding every name.
    pub fn new(zones: &[String]) -> Self {
        let mut map = BTreeMap::new();
        for zone in zones {
            let zone = zone.trim_end_matches('.').to_ascii_lowercase();
            if map.insert(zone.clone(), Zone::new()).is_some() {
                tracing::warn!(zone = %zone, "duplicate --inmemory-zone");
            }
        }
        if map.is_empty() {
            map.insert(String::new(), Zone::new());
        }
        Self {
            zones: Mutex::new(map),
        }
    }

    /// Stores records directly, bypassing validation (for tests and fixtures).
    pub fn insert(&self, endpoints: impl IntoIterator<Item = Endpoint>) {
        let mut zones = self.lock();
        for endpoint in endpoints {
            if let Some(zone) = zone_of(&zones, &endpoint.dns_name)
                && let Some(map) = zones.get_mut(&zone)
            {
                map.insert(endpoint.key(), endpoint);
            }
        }
    }

    /// Every record, sorted by key.
    pub fn snapshot(&self) -> Vec<Endpoint> {
        self.lock()
            .values()
            .flat_map(|z| z.values().cloned())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Zone>> {
        // A panic while holding the lock leaves consistent maps (every
        // mutation is a single insert or remove), so poisoning is ignored.
        self.zones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply(&self, changes: &Changes) -> Result<(), ProviderError> {
        let mut zones = self.lock();
        let reject = |detail: String| ProviderError::Rejected {
            provider: "inmemory",
            endpoint: "inmemory".to_owned(),
            detail,
        };
        let mut seen = BTreeSet::new();
        let mut check_unique = |e: &Endpoint| {
            if seen.insert(e.key()) {
                Ok(())
            } else {
                Err(reject(format!("invalid batch request: {e} appears twice")))
            }
        };
        for e in changes
            .create
            .iter()
            .chain(&changes.update_new)
            .chain(&changes.delete)
        {
            check_unique(e)?;
        }
        let stored = |zones: &BTreeMap<String, Zone>, e: &Endpoint| {
            zone_of(zones, &e.dns_name)
                .and_then(|z| zones.get(&z))
                .and_then(|z| z.get(&e.key()))
                .is_some()
        };
        for e in &changes.create {
            if stored(&zones, e) {
                return Err(reject(format!("record already exists: {e}")));
            }
        }
        for e in &changes.delete {
            if !stored(&zones, e) {
                return Err(reject(format!("record not found: {e}")));
            }
        }
        for e in changes.update_old.iter().chain(&changes.delete) {
            if let Some(zone) = zone_of(&zones, &e.dns_name)
                && let Some(map) = zones.get_mut(&zone)
            {
                map.remove(&e.key());
            }
        }
        for e in changes.create.iter().chain(&changes.update_new) {
            tracing::debug!(record = %e, "inmemory: stored");
            if let Some(zone) = zone_of(&zones, &e.dns_name)
                && let Some(map) = zones.get_mut(&zone)
            {
                let mut stored = e.clone();
                stored.labels.clear();
                map.insert(stored.key(), stored);
            }
        }
        Ok(())
    }
}

/// The longest zone that holds `name`.
fn zone_of(zones: &BTreeMap<String, Zone>, name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    zones
        .keys()
        .filter(|zone| {
            zone.is_empty()
                || name == **zone
                || name
                    .strip_suffix(zone.as_str())
                    .is_some_and(|r| r.ends_with('.'))
        })
        .max_by_key(|zone| zone.len())
        .cloned()
}

impl Provider for InMemory {
    fn name(&self) -> &'static str {
        "inmemory"
    }

    fn records(&self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>> {
        let records = self.snapshot();
        Box::pin(async move { Ok(records) })
    }

    fn apply_changes<'a>(
        &'a self,
        changes: &'a Changes,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        let result = self.apply(changes);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::RecordType;

    fn a(name: &str, target: &str) -> Endpoint {
        Endpoint::new(name, RecordType::A, vec![target.to_owned()])
    }

    /// A rejected change set changes nothing; zones match on label boundaries.
    #[test]
    fn validation_is_all_or_nothing() {
        let provider = InMemory::new(&["example.com".to_owned()]);
        provider.insert([a("x.example.com", "1.1.1.1")]);
        let bad = Changes {
            create: vec![a("y.example.com", "2.2.2.2"), a("x.example.com", "3.3.3.3")],
            ..Changes::default()
        };
        assert!(matches!(
            provider.apply(&bad),
            Err(ProviderError::Rejected { .. })
        ));
        assert_eq!(provider.snapshot().len(), 1);
        let outside = Changes {
            create: vec![a("x.badexample.com", "1.1.1.1")],
            ..Changes::default()
        };
        provider.apply(&outside).unwrap();
        assert_eq!(provider.snapshot().len(), 1);
        let delete = Changes {
            delete: vec![a("nope.example.com", "1.1.1.1")],
            ..Changes::default()
        };
        assert!(provider.apply(&delete).is_err());
    }
}
