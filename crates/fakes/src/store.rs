//! The multi-version object store: one global resourceVersion, per-key version chains, the event history.
//!
//! Follows the Kubernetes API Concepts page, "Resource versions" and "Efficient detection of changes":
//! every write takes the next value of one global counter (like etcd's revision), so resourceVersions are
//! totally ordered across types; a list can be served at any retained resourceVersion (all pages of a
//! paginated list come from the same snapshot); a watch from resourceVersion R delivers every change after
//! R exactly once, in order.
//!
//! ```text
//!   write ──▶ rv += 1 ──▶ version chain of the key  (rv, Some(object) | None = deleted)
//!                    └──▶ events (rv, type, object, previous object) ──▶ watchers (woken via `rv` watch channel)
//!                    └──▶ journal line (when a state file is configured)
//!   compact(C): events with rv <= C dropped; each chain keeps its newest version <= C and everything after
//! ```
//!
//! Control plane of the fake. Single writer: the store lives behind one `std::sync::Mutex` in the server's
//! shared state and every operation is synchronous and short (no `.await` while it is held). Invariants:
//! `compacted <= rv`; the retained events are exactly those with `compacted < event.rv <= rv`, one per rv;
//! a list or watch from a resourceVersion below `compacted` is answered 410 Expired.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::persist::Journal;

/// The key of an object within its type: (namespace, name); the namespace is empty for cluster-scoped types.
pub(crate) type Key = (String, String);

/// One stored object version, pre-serialised.
#[derive(Debug)]
pub(crate) struct Stored {
    /// `metadata.resourceVersion` of this version.
    pub(crate) rv: u64,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) labels: Vec<(String, String)>,
    /// Resource-specific selectable fields (`status.phase` of a Pod), by path.
    pub(crate) fields: Vec<(&'static str, String)>,
    /// The object as JSON without `kind` and `apiVersion` (list items carry neither); always a non-empty
    /// JSON object, so `kind`/`apiVersion` can be spliced in after its opening brace.
    pub(crate) body: Bytes,
}

// === impl Stored ===

impl Stored {
    /// Encodes an object; `kind` and `apiVersion` are dropped from the stored bytes.
    pub(crate) fn encode(mut object: Value, rv: u64) -> Self {
        if let Value::Object(map) = &mut object {
            map.remove("kind");
            map.remove("apiVersion");
        }
        let metadata = &object["metadata"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let labels = metadata["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let namespace = text(&metadata["namespace"]);
        let name = text(&metadata["name"]);
        let uid = text(&metadata["uid"]);
        let fields = crate::selector::all_extra_fields()
            .filter_map(|path| {
                let mut value = &object;
                for part in path.split('.') {
                    value = &value[part];
                }
                value.as_str().map(|v| (path, v.to_owned()))
            })
            .collect();
        let body = Bytes::from(serde_json::to_vec(&object).unwrap_or_else(|_| b"{}".to_vec()));
        Self {
            rv,
            namespace,
            name,
            uid,
            labels,
            fields,
            body,
        }
    }

    /// The object as a JSON value, with `kind` and `apiVersion`.
    pub(crate) fn to_value(&self, api_version: &str, kind: &str) -> Value {
        let mut value: Value =
            serde_json::from_slice(&self.body).unwrap_or(Value::Object(Map::new()));
        if let Value::Object(map) = &mut value {
            map.insert("apiVersion".into(), Value::String(api_version.to_owned()));
            map.insert("kind".into(), Value::String(kind.to_owned()));
        }
        value
    }

    /// The object's bytes with `prefix` (`{"apiVersion":"v1","kind":"Service",`) spliced in.
    pub(crate) fn with_kind(&self, prefix: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(prefix);
        if self.body.len() > 2 {
            out.extend_from_slice(&self.body[1..]);
        } else {
            // `{}`: drop the trailing comma of the prefix.
            out.pop();
            out.push(b'}');
        }
    }

    pub(crate) fn key(&self) -> Key {
        (self.namespace.clone(), self.name.clone())
    }
}

/// The three kinds of change a watch reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

// === impl EventType ===

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One write, as the watch history keeps it.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) resource: usize,
    pub(crate) kind: EventType,
    /// The new object; for a deletion, the deleted object with `resourceVersion` = the deletion's rv.
    pub(crate) object: Arc<Stored>,
    /// The object before the write (for ADDED, none).
    pub(crate) prev: Option<Arc<Stored>>,
}

#[derive(Debug)]
struct Version {
    rv: u64,
    object: Option<Arc<Stored>>,
}

/// One page of a list.
pub(crate) struct Page {
    pub(crate) items: Vec<Arc<Stored>>,
    /// Set when more keys follow the page: the last key the page covered.
    pub(crate) last_key: Option<Key>,
    /// Keys alive at the snapshot after the page (only computed when asked).
    pub(crate) remaining: Option<usize>,
}

/// Why a read at a resourceVersion cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Compacted {
    /// The newest resourceVersion no longer retained.
    pub(crate) compacted: u64,
}

/// The store.
pub(crate) struct Store {
    rv: u64,
    compacted: u64,
    collections: Vec<BTreeMap<Key, Vec<Version>>>,
    events: VecDeque<Arc<Event>>,
    history_limit: usize,
    notify: watch::Sender<u64>,
    journal: Option<Journal>,
    next_service_ip: u32,
    /// Whether the EndpointSlice controller and the kubelet's Ready condition run ([`crate::endpoints`]).
    pub(crate) endpoint_slice_controller: bool,
}

// === impl Store ===

impl Store {
    /// An empty store for `types` resource types, keeping at most `history_limit` events.
    pub(crate) fn new(types: usize, history_limit: usize) -> Self {
        let (notify, _) = watch::channel(0);
        Self {
            rv: 0,
            compacted: 0,
            collections: (0..types).map(|_| BTreeMap::new()).collect(),
            events: VecDeque::new(),
            history_limit: history_limit.max(1),
            notify,
            journal: None,
            next_service_ip: 10,
            endpoint_slice_controller: false,
        }
    }

    /// A receiver that sees the current resourceVersion after every write.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    pub(crate) fn set_journal(&mut self, journal: Option<Journal>) {
        self.journal = journal;
    }

    pub(crate) fn journal_mut(&mut self) -> Option<&mut Journal> {
        self.journal.as_mut()
    }

    /// The current (newest) resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// The newest resourceVersion no longer retained (0 = everything retained).
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// The resourceVersion the next write will get.
    pub(crate) fn next_rv(&self) -> u64 {
        self.rv + 1
    }

    /// Loads a version without history (state file): sets the object at its own rv, no event.
    pub(crate) fn load(&mut self, resource: usize, object: Stored) {
        let key = object.key();
        let rv = object.rv;
        self.collections[resource].insert(
            key,
            vec![Version {
                rv,
                object: Some(Arc::new(object)),
            }],
        );
    }

    /// After loading: the counter continues at `rv` and no history before it is available, as after an API
    /// server restart (its watch cache starts empty at the current revision).
    pub(crate) fn finish_load(&mut self, rv: u64) {
        self.rv = rv;
        self.compacted = rv;
        self.notify.send_replace(rv);
    }

    /// Forgets all history: watches and continues from any earlier resourceVersion get 410.
    pub(crate) fn forget_history(&mut self) {
        self.compact(self.rv);
    }

    /// Allocates a Service cluster IP from 10.96.0.0/12.
    pub(crate) fn allocate_service_ip(&mut self) -> String {
        let n = self.next_service_ip;
        self.next_service_ip = self.next_service_ip.wrapping_add(1) % (1 << 20);
        let address = (10u32 << 24) | (96u32 << 16) | n;
        std::net::Ipv4Addr::from(address).to_string()
    }

    /// The current version of an object.
    pub(crate) fn get(&self, resource: usize, key: &Key) -> Option<Arc<Stored>> {
        self.collections[resource]
            .get(key)
            .and_then(|chain| chain.last())
            .and_then(|v| v.object.clone())
    }

    /// Every current object of a type (optionally one namespace), in key order.
    pub(crate) fn current(&self, resource: usize, namespace: Option<&str>) -> Vec<Arc<Stored>> {
        self.list(
            resource,
            namespace,
            self.rv,
            None,
            &|_| true,
            usize::MAX,
            false,
        )
        .map(|p| p.items)
        .unwrap_or_default()
    }

    /// A page of objects alive at `at`, after `start_after`, that satisfy `filter`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn list(
        &self,
        resource: usize,
        namespace: Option<&str>,
        at: u64,
        start_after: Option<&Key>,
        filter: &dyn Fn(&Stored) -> bool,
        limit: usize,
        count_remaining: bool,
    ) -> Result<Page, Compacted> {
        if at < self.compacted {
            return Err(Compacted {
                compacted: self.compacted,
            });
        }
        let collection = &self.collections[resource];
        let lower = match (start_after, namespace) {
            (Some(key), _) => Bound::Excluded(key.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut iter = collection
            .range((lower, Bound::Unbounded))
            .take_while(|(key, _)| namespace.is_none_or(|ns| key.0 == ns))
            .filter_map(|(key, chain)| version_at(chain, at).map(|object| (key, object)));
        let mut last_key = None;
        for (key, object) in iter.by_ref() {
            if filter(object) {
                items.push(object.clone());
                if items.len() >= limit {
                    last_key = Some(key.clone());
                    break;
                }
            }
        }
        let mut remaining = None;
        if last_key.is_some() {
            if count_remaining {
                let count = iter.count();
                remaining = Some(count);
                if count == 0 {
                    last_key = None;
                }
            } else if iter.next().is_none() {
                last_key = None;
            }
        }
        Ok(Page {
            items,
            last_key,
            remaining,
        })
    }

    /// Records a write: the key's new version (`None` = deleted) at the next resourceVersion, its event,
    /// its journal line; wakes watchers. `object.rv` must be [`Self::next_rv`].
    pub(crate) fn commit(
        &mut self,
        resource: usize,
        key: Key,
        kind: EventType,
        object: Arc<Stored>,
        group_resource: (&str, &str),
    ) -> u64 {
        self.rv += 1;
        let rv = self.rv;
        debug_assert_eq!(object.rv, rv);
        let chain = self.collections[resource].entry(key).or_default();
        let prev = chain.last().and_then(|v| v.object.clone());
        let stored_version = if kind == EventType::Deleted {
            None
        } else {
            Some(object.clone())
        };
        chain.push(Version {
            rv,
            object: stored_version,
        });
        if let Some(journal) = &mut self.journal {
            let body = (kind != EventType::Deleted).then_some(&object.body[..]);
            journal.append(
                rv,
                group_resource.0,
                group_resource.1,
                &object.namespace,
                &object.name,
                body,
            );
        }
        self.events.push_back(Arc::new(Event {
            rv,
            resource,
            kind,
            object,
            prev,
        }));
        // Amortised automatic compaction: keep at most history_limit events.
        if self.events.len() > self.history_limit + self.history_limit / 8 {
            let drop_to = self.events[self.events.len() - self.history_limit - 1].rv;
            self.compact(drop_to);
        }
        self.notify.send_replace(rv);
        rv
    }

    /// Drops history up to and including `upto` (capped at the current resourceVersion).
    pub(crate) fn compact(&mut self, upto: u64) {
        let upto = upto.min(self.rv);
        if upto <= self.compacted {
            return;
        }
        while let Some(event) = self.events.front() {
            if event.rv > upto {
                break;
            }
            let event = self.events.pop_front().expect("front exists");
            let key = event.object.key();
            let collection = &mut self.collections[event.resource];
            let mut remove = false;
            if let Some(chain) = collection.get_mut(&key) {
                // Keep the newest version <= upto and everything after it.
                let newest_old = chain.iter().rposition(|v| v.rv <= upto);
                if let Some(index) = newest_old {
                    chain.drain(..index);
                    remove = chain.len() == 1 && chain[0].object.is_none();
                }
            }
            if remove {
                collection.remove(&key);
            }
        }
        self.compacted = upto;
    }

    /// Up to `max` events after `cursor`, or [`Compacted`] when events after it were dropped.
    pub(crate) fn events_after(
        &self,
        cursor: u64,
        max: usize,
    ) -> Result<Vec<Arc<Event>>, Compacted> {
        if cursor < self.compacted {
            return Err(Compacted {
                compacted: self.compacted,
            });
        }
        let start = self.events.partition_point(|e| e.rv <= cursor);
        Ok(self.events.range(start..).take(max).cloned().collect())
    }

    /// Every current object of every type, for a state snapshot.
    pub(crate) fn all_current(&self) -> Vec<(usize, Arc<Stored>)> {
        let mut all = Vec::new();
        for (resource, collection) in self.collections.iter().enumerate() {
            for chain in collection.values() {
                if let Some(object) = chain.last().and_then(|v| v.object.clone()) {
                    all.push((resource, object));
                }
            }
        }
        all
    }

    /// Number of current objects across all types.
    pub(crate) fn live_objects(&self) -> usize {
        self.collections
            .iter()
            .map(|c| {
                c.values()
                    .filter(|chain| chain.last().is_some_and(|v| v.object.is_some()))
                    .count()
            })
            .sum()
    }
}

/// The version of a chain alive at `at`.
fn version_at(chain: &[Version], at: u64) -> Option<&Arc<Stored>> {
    chain
        .iter()
        .rev()
        .find(|v| v.rv <= at)
        .and_then(|v| v.object.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &mut Store, name: &str, value: i64) -> u64 {
        let rv = store.next_rv();
        let object = Stored::encode(
            json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string()}, "v": value}),
            rv,
        );
        let kind = if store.get(0, &("ns".into(), name.into())).is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        store.commit(
            0,
            ("ns".into(), name.into()),
            kind,
            Arc::new(object),
            ("", "things"),
        )
    }

    fn delete(store: &mut Store, name: &str) -> u64 {
        let rv = store.next_rv();
        let object = Stored::encode(json!({"metadata": {"name": name, "namespace": "ns"}}), rv);
        store.commit(
            0,
            ("ns".into(), name.into()),
            EventType::Deleted,
            Arc::new(object),
            ("", "things"),
        )
    }

    fn names(page: &Page) -> Vec<String> {
        page.items.iter().map(|o| o.name.clone()).collect()
    }

    /// API Concepts, resource versions: a list at an older resourceVersion sees the objects as they were
    /// then, including ones deleted since.
    #[test]
    fn list_at_old_resource_version_sees_old_state() {
        let mut store = Store::new(1, 100);
        put(&mut store, "a", 1);
        let before = put(&mut store, "b", 1);
        delete(&mut store, "a");
        put(&mut store, "c", 1);
        let old = store
            .list(0, Some("ns"), before, None, &|_| true, 10, false)
            .unwrap();
        assert_eq!(names(&old), ["a", "b"]);
        let now = store
            .list(0, Some("ns"), store.rv(), None, &|_| true, 10, false)
            .unwrap();
        assert_eq!(names(&now), ["b", "c"]);
    }

    /// Compaction keeps the newest version at or before the compaction point: reads at or after it work,
    /// reads before it and watches from before it are refused.
    #[test]
    fn compaction_refuses_older_reads_only() {
        let mut store = Store::new(1, 100);
        put(&mut store, "a", 1);
        put(&mut store, "a", 2);
        let mid = put(&mut store, "b", 1);
        delete(&mut store, "b");
        store.compact(mid);
        assert_eq!(
            store
                .list(0, None, mid - 1, None, &|_| true, 10, false)
                .err(),
            Some(Compacted { compacted: mid })
        );
        let at_mid = store
            .list(0, None, mid, None, &|_| true, 10, false)
            .unwrap();
        assert_eq!(names(&at_mid), ["a", "b"]);
        assert!(store.events_after(mid - 1, 10).is_err());
        assert_eq!(store.events_after(mid, 10).unwrap().len(), 1);
    }

    /// Pagination: limit, the last key, and the count of keys after the page.
    #[test]
    fn pages_report_remaining_items() {
        let mut store = Store::new(1, 100);
        for name in ["a", "b", "c", "d", "e"] {
            put(&mut store, name, 1);
        }
        let rv = store.rv();
        let first = store.list(0, None, rv, None, &|_| true, 2, true).unwrap();
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.remaining, Some(3));
        let key = first.last_key.unwrap();
        let last = store
            .list(0, None, rv, Some(&key), &|_| true, 4, true)
            .unwrap();
        assert_eq!(names(&last), ["c", "d", "e"]);
        assert!(last.last_key.is_none());
    }

    /// The history limit compacts automatically.
    #[test]
    fn history_limit_compacts() {
        let mut store = Store::new(1, 8);
        for i in 0..20 {
            put(&mut store, "a", i);
        }
        assert!(store.compacted() > 0);
        assert!(store.events_after(store.compacted(), 100).unwrap().len() <= 9);
    }
}
