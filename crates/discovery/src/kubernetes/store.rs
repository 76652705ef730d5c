//! One resource's objects as the Kubernetes source holds them.
//!
//! Control plane, owned by the source's task. A relist (at start, and after
//! `410 Gone`) fills a side buffer that replaces the live objects only when
//! the list is complete, so a partial or paginated list is never served and
//! objects that vanished while the watch was down disappear with the swap.

use std::collections::BTreeMap;
use std::sync::Arc;

/// `namespace/name` (cluster-scoped objects have an empty namespace).
pub(crate) type Key = (String, String);

/// The objects of one resource.
#[derive(Debug)]
pub(crate) struct Store<T> {
    live: BTreeMap<Key, Arc<T>>,
    relisting: Option<BTreeMap<Key, Arc<T>>>,
    /// A complete list has been swapped in at least once.
    pub(crate) ready: bool,
}

// === impl Store ===

impl<T> Store<T> {
    pub(crate) fn new() -> Self {
        Self {
            live: BTreeMap::new(),
            relisting: None,
            ready: false,
        }
    }

    /// A list begins: objects go to the side buffer until [`Store::finish_relist`].
    pub(crate) fn start_relist(&mut self) {
        self.relisting = Some(BTreeMap::new());
    }

    /// An object of the list in progress.
    pub(crate) fn relisted(&mut self, key: Key, object: Arc<T>) {
        self.relisting
            .get_or_insert_with(BTreeMap::new)
            .insert(key, object);
    }

    /// The list is complete: it replaces the live objects at once. Returns
    /// the keys whose object differs from the live one (added, changed or
    /// gone) when a complete list was live before, so a relist after
    /// `410 Gone` hands on only what changed while the watch was down;
    /// nothing for the first list.
    pub(crate) fn finish_relist(&mut self) -> Vec<Key>
    where
        T: PartialEq,
    {
        let mut changed = Vec::new();
        if let Some(listed) = self.relisting.take() {
            if self.ready {
                changed = differences(&self.live, &listed);
            }
            self.live = listed;
        }
        self.ready = true;
        changed
    }

    /// An object added or changed while watching.
    pub(crate) fn apply(&mut self, key: Key, object: Arc<T>) {
        self.live.insert(key, object);
    }

    /// An object deleted while watching.
    pub(crate) fn delete(&mut self, key: &Key) {
        self.live.remove(key);
    }

    /// The live object of `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<&Arc<T>> {
        self.live.get(key)
    }

    /// The live objects, in key order.
    pub(crate) fn objects(&self) -> impl Iterator<Item = (&Key, &Arc<T>)> {
        self.live.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}

/// Keys in either map whose objects differ; both maps are in key order,
/// so one merge pass finds them.
fn differences<T: PartialEq>(old: &BTreeMap<Key, Arc<T>>, new: &BTreeMap<Key, Arc<T>>) -> Vec<Key> {
    let mut changed = Vec::new();
    let mut old = old.iter().peekable();
    let mut new = new.iter().peekable();
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => return changed,
            (Some((key, _)), None) => {
                changed.push((*key).clone());
                old.next();
            }
            (None, Some((key, _))) => {
                changed.push((*key).clone());
                new.next();
            }
            (Some((a, x)), Some((b, y))) => match a.cmp(b) {
                std::cmp::Ordering::Less => {
                    changed.push((*a).clone());
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    changed.push((*b).clone());
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(x, y) && x != y {
                        changed.push((*a).clone());
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("default".to_owned(), name.to_owned())
    }

    /// Design invariant I1: a relist in progress is never visible; when it
    /// completes, what it did not list is gone.
    #[test]
    fn relist_swaps_whole() {
        let mut store = Store::new();
        store.start_relist();
        store.relisted(key("a"), Arc::new(1));
        assert!(!store.ready);
        assert_eq!(store.len(), 0);
        assert!(
            store.finish_relist().is_empty(),
            "the first list is everything"
        );
        store.apply(key("b"), Arc::new(2));
        store.start_relist();
        store.relisted(key("c"), Arc::new(3));
        let live: Vec<&str> = store.objects().map(|(k, _)| k.1.as_str()).collect();
        assert_eq!(live, ["a", "b"], "a partial list must not show");
        assert_eq!(
            store.finish_relist(),
            [key("a"), key("b"), key("c")],
            "gone, gone, new"
        );
        let live: Vec<&str> = store.objects().map(|(k, _)| k.1.as_str()).collect();
        assert_eq!(live, ["c"]);
        store.delete(&key("c"));
        assert_eq!(store.len(), 0);
    }

    /// A relist after `410 Gone` names only what differs from the live
    /// objects: an unchanged object (equal, not the same `Arc`) is not named.
    #[test]
    fn relist_names_only_differences() {
        let mut store = Store::new();
        store.start_relist();
        for (name, value) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
            store.relisted(key(name), Arc::new(value));
        }
        store.finish_relist();
        store.start_relist();
        for (name, value) in [("a", 1), ("b", 20), ("d", 4), ("e", 5)] {
            store.relisted(key(name), Arc::new(value));
        }
        assert_eq!(store.finish_relist(), [key("b"), key("c"), key("e")]);
        let live: Vec<(&str, i32)> = store.objects().map(|(k, v)| (k.1.as_str(), **v)).collect();
        assert_eq!(live, [("a", 1), ("b", 20), ("d", 4), ("e", 5)]);
    }
}
