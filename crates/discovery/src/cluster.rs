//! Kubernetes objects as the DNS cluster zone's input, kept compact and
//! joined incrementally.
//!
//! Control plane. A source of cluster objects (the catalog, the Kubernetes
//! API) reads each object into a part as it arrives ([`ServicePart`],
//! [`SlicePart`], [`ClusterPod`]) and drops the object, so a million
//! endpoints are held once, in the cluster model's own compact form. It
//! hands [`ObjectBatch`]es to [`ClusterInput`]: everything at once (a first
//! load, a relist) or the objects that changed. The translator joins each
//! Service with its EndpointSlices and delivers a [`ClusterState`] that
//! shares every unchanged service (`Arc`) with the one before and says which
//! services changed ([`ClusterChanges`]), so the compiler renders only those.
//!
//! ```text
//! source ──ObjectBatch (Reset | Changes)──▶ translator thread ──ClusterState + ClusterChanges──▶ Sink
//!                                            services by namespace/name, slices by service
//! ```
//!
//! Invariants: a batch is applied whole and in order (none is skipped, unlike
//! a latest-wins channel); a Reset replaces everything the source gave
//! before (design invariant I1); the endpoints of a service are held once,
//! inside its joined [`ClusterService`], in the order of its slices' names,
//! and services are delivered in namespace/name order. What the cluster zone
//! cannot serve is logged once per object and counted
//! (`signpost_source_skipped_objects_total`); the rest serves.

use crate::metrics::DiscoveryMetrics;
use crate::translate::{ServicePart, Skipped, SlicePart};
use rustc_hash::FxHashMap;
use signpost_model::{
    BoxFuture, ClusterChanges, ClusterEndpoint, ClusterPod, ClusterService, ClusterState, Sink,
    Source, Update,
};
use signpost_zone::Input;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `namespace/name` of an object.
pub type Key = (String, String);

/// What a source of cluster objects hands the translator.
#[derive(Debug, Clone)]
pub enum ObjectBatch {
    /// Every object: replaces everything the source gave before.
    Reset(Vec<ObjectChange>),
    /// Objects added, changed or removed since the last batch.
    Changes(Vec<ObjectChange>),
}

/// One object, read: `None` when it is gone.
#[derive(Debug, Clone)]
pub enum ObjectChange {
    /// A Service: its part (`None` inside when it serves nothing) and what it leaves out.
    Service(Key, Option<Read<ServicePart>>),
    /// An EndpointSlice.
    Slice(Key, Option<Read<SlicePart>>),
    /// A running Pod (`pods verified`).
    Pod(Key, Option<ClusterPod>),
}

/// An object read into its part, with what of it the cluster zone leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Read<T> {
    /// The part; `None` when nothing of the object serves.
    pub part: Option<Arc<T>>,
    /// What is left out, and why.
    pub skipped: Vec<Skipped>,
}

/// A source of object batches seen as a source of cluster zone input.
pub struct ClusterInput {
    inner: Box<dyn Source<ObjectBatch>>,
    metrics: Arc<DiscoveryMetrics>,
}

// === impl ClusterInput ===

impl ClusterInput {
    /// Wraps `inner`, counting skipped objects into `metrics`.
    pub fn new(inner: Box<dyn Source<ObjectBatch>>, metrics: Arc<DiscoveryMetrics>) -> Self {
        Self { inner, metrics }
    }
}

impl Source<Input> for ClusterInput {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Input>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Every batch, in order: a delta cannot be skipped.
            let (sender, batches) = mpsc::channel::<Update<ObjectBatch>>();
            let inner = Sink::new(move |update| {
                let _ = sender.send(update);
            });
            let source = tokio::spawn(self.inner.run(inner, cancel.clone()));
            let metrics = self.metrics.clone();
            // Joining a million endpoints takes a while: its own thread,
            // which ends when the source (and so the channel) does.
            let translator = tokio::task::spawn_blocking(move || {
                let mut joined = Joined::default();
                while let Ok(update) = batches.recv() {
                    match update {
                        Update::State(batch) => {
                            // Batches that queued meanwhile go into the same state.
                            let mut batches_now = vec![batch];
                            let mut problems = None;
                            while let Ok(next) = batches.try_recv() {
                                match next {
                                    Update::State(batch) => batches_now.push(batch),
                                    Update::Problems(found) => problems = Some(found),
                                }
                            }
                            let state = joined.apply_all(batches_now, &metrics);
                            sink.state(Input::Cluster(Arc::new(state)));
                            if let Some(problems) = problems {
                                sink.problems(problems);
                            }
                        }
                        Update::Problems(problems) => sink.problems(problems),
                    }
                }
            });
            let _ = source.await;
            let _ = translator.await;
        })
    }
}

/// The translator's state: every service joined with its slices.
#[derive(Default)]
struct Joined {
    services: BTreeMap<Key, Entry>,
    /// Slice key → the service key it joined.
    slice_owner: FxHashMap<Key, Key>,
    pods: BTreeMap<Key, ClusterPod>,
    /// What was reported skipped, per kind and object.
    reported: HashMap<(&'static str, Key), Vec<Skipped>>,
    revision: u64,
}

/// One service key: the Service (if any), its slices, and the joined result.
#[derive(Default)]
struct Entry {
    part: Option<Arc<ServicePart>>,
    /// By slice name, sorted. A Vec, not a map: nearly every service has
    /// one slice, and a one-entry BTreeMap allocates a whole node (about
    /// 1.4 kB here, 140 MB at 100,000 services).
    slots: Vec<(String, Slot)>,
    /// The service with its endpoints; while there is one, the slots'
    /// endpoints live only in it.
    joined: Option<Arc<ClusterService>>,
}

/// One slice of a service.
struct Slot {
    /// The slice without its endpoints (kept for the health-check port).
    shape: SlicePart,
    /// How many endpoints it gives (its range in `joined`).
    count: usize,
    /// Its endpoints while no Service holds them.
    held: Option<Vec<ClusterEndpoint>>,
}

/// A slice change for one service: add or replace (`Some`) or remove.
type SliceEdit = (String, Option<Arc<SlicePart>>);

// === impl Joined ===

impl Joined {
    /// Applies batches in order; returns the new state.
    fn apply_all(&mut self, batches: Vec<ObjectBatch>, metrics: &DiscoveryMetrics) -> ClusterState {
        let since = self.revision;
        let mut before: HashMap<Key, Option<Arc<ClusterService>>> = HashMap::new();
        let mut reset = false;
        let mut pods_changed = false;
        for batch in batches {
            let changes = match batch {
                ObjectBatch::Reset(changes) => {
                    reset = true;
                    self.services.clear();
                    self.slice_owner.clear();
                    self.pods.clear();
                    pods_changed = true;
                    let mut fresh: HashMap<(&'static str, Key), Vec<Skipped>> = HashMap::new();
                    for change in &changes {
                        let (kind, key, skipped) = match change {
                            ObjectChange::Service(key, Some(read)) => {
                                ("Service", key, &read.skipped)
                            }
                            ObjectChange::Slice(key, Some(read)) => {
                                ("EndpointSlice", key, &read.skipped)
                            }
                            _ => continue,
                        };
                        if !skipped.is_empty() {
                            fresh.insert((kind, key.clone()), skipped.clone());
                        }
                    }
                    let previous = std::mem::take(&mut self.reported);
                    for (id, skipped) in &fresh {
                        let known = previous.get(id);
                        for item in skipped {
                            if known.is_none_or(|k| !k.contains(item)) {
                                report(item, metrics);
                            }
                        }
                    }
                    self.reported = fresh;
                    changes
                }
                ObjectBatch::Changes(changes) => {
                    for change in &changes {
                        let (kind, key, skipped) = match change {
                            ObjectChange::Service(key, read) => {
                                ("Service", key, read.as_ref().map(|r| &r.skipped))
                            }
                            ObjectChange::Slice(key, read) => {
                                ("EndpointSlice", key, read.as_ref().map(|r| &r.skipped))
                            }
                            ObjectChange::Pod(..) => continue,
                        };
                        let id = (kind, key.clone());
                        match skipped.filter(|s| !s.is_empty()) {
                            Some(skipped) => {
                                let known = self.reported.get(&id);
                                for item in skipped {
                                    if known.is_none_or(|k| !k.contains(item)) {
                                        report(item, metrics);
                                    }
                                }
                                self.reported.insert(id, skipped.clone());
                            }
                            None => {
                                self.reported.remove(&id);
                            }
                        }
                    }
                    changes
                }
            };
            pods_changed |= if self.services.is_empty() && self.slice_owner.is_empty() {
                // A first load or a relist: everything is new, so no
                // service's slices need taking apart (the same result as
                // `apply` on an empty state, in one sort instead of maps).
                self.apply_fresh(changes)
            } else {
                self.apply(changes, &mut before)
            };
        }
        self.revision += 1;
        let services: Vec<Arc<ClusterService>> = self
            .services
            .values()
            .filter_map(|entry| entry.joined.clone())
            .collect();
        let changes = (!reset).then(|| {
            let services = before
                .into_iter()
                .filter_map(|(key, old)| {
                    let new = self.services.get(&key).and_then(|e| e.joined.clone());
                    let same = match (&old, &new) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                        (None, None) => true,
                        _ => false,
                    };
                    (!same).then_some((old, new))
                })
                .collect();
            Arc::new(ClusterChanges {
                since,
                services,
                pods: pods_changed,
            })
        });
        ClusterState {
            services,
            pods: self.pods.values().cloned().collect(),
            revision: self.revision,
            changes,
        }
    }

    /// Applies one batch to an empty state: the same services, slots and
    /// slice owners as [`Self::apply`] would leave, without its per-key maps
    /// and copies (a million endpoints join in one sort). Returns true when
    /// pods changed.
    fn apply_fresh(&mut self, changes: Vec<ObjectChange>) -> bool {
        let mut pods_changed = false;
        let mut parts: Vec<(Key, Option<Arc<ServicePart>>)> = Vec::new();
        let mut slices: Vec<(Key, Option<Arc<SlicePart>>)> = Vec::new();
        for change in changes {
            match change {
                ObjectChange::Service(key, read) => {
                    parts.push((key, read.and_then(|r| r.part)));
                }
                ObjectChange::Slice(key, read) => {
                    slices.push((key, read.and_then(|r| r.part)));
                }
                ObjectChange::Pod(key, pod) => {
                    pods_changed = true;
                    match pod {
                        Some(pod) => self.pods.insert(key, pod),
                        None => self.pods.remove(&key),
                    };
                }
            }
        }
        // Stable sorts keep the arrival order of equal keys, so the dedup
        // keeps the later object of a key; they also take time linear in
        // the sorted runs the input already has (a catalog file or a list
        // page is mostly in order).
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        dedup_keep_last(&mut parts);
        slices.sort_by(|a, b| a.0.cmp(&b.0));
        dedup_keep_last(&mut slices);
        // Slices that join a service, by (owner, slice name).
        let mut owned: Vec<(Key, String, Arc<SlicePart>)> = Vec::with_capacity(slices.len());
        self.slice_owner.reserve(slices.len());
        for (key, part) in slices {
            let Some(part) = part else { continue };
            let Some(service) = part.service.clone() else {
                continue;
            };
            let owner = (key.0.clone(), service);
            let name = key.1.clone();
            self.slice_owner.insert(key, owner.clone());
            owned.push((owner, name, part));
        }
        owned.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut parts = parts.into_iter().peekable();
        let mut owned = owned.into_iter().peekable();
        let mut entries: Vec<(Key, Entry)> = Vec::with_capacity(parts.len());
        loop {
            // The smaller of the next service key and the next slice owner,
            // moved out of whichever side holds it.
            let slice_first = match (parts.peek(), owned.peek()) {
                (Some((a, _)), Some((b, ..))) => b < a,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (None, None) => break,
            };
            let mut shapes: Vec<(String, SlicePart, Vec<ClusterEndpoint>)> = Vec::new();
            let (key, part) = if slice_first {
                let (owner, name, slice) = owned.next().expect("peeked");
                let (shape, own) = SlicePart::split(slice);
                shapes.push((name, shape, own));
                (owner, None)
            } else {
                parts.next().expect("peeked")
            };
            while let Some((_, name, slice)) = owned.next_if(|(owner, ..)| *owner == key) {
                let (shape, own) = SlicePart::split(slice);
                shapes.push((name, shape, own));
            }
            if part.is_none() && shapes.is_empty() {
                continue;
            }
            let mut entry = Entry {
                part,
                slots: Vec::with_capacity(shapes.len()),
                joined: None,
            };
            if let Some(part) = &entry.part {
                let mut service = part.join(shapes.iter().map(|(_, shape, _)| shape));
                // Nearly every service has one slice: its endpoints are moved, not copied.
                let single = shapes.len() == 1;
                let mut endpoints = Vec::new();
                if !single {
                    endpoints.reserve_exact(shapes.iter().map(|(_, _, own)| own.len()).sum());
                }
                for (name, shape, own) in shapes {
                    let count = own.len();
                    if single {
                        endpoints = own;
                    } else {
                        endpoints.extend(own);
                    }
                    let held = None;
                    entry.slots.push((name, Slot { shape, count, held }));
                }
                service.endpoints = endpoints;
                entry.joined = Some(Arc::new(service));
            } else {
                for (name, shape, own) in shapes {
                    let count = own.len();
                    let held = Some(own);
                    entry.slots.push((name, Slot { shape, count, held }));
                }
            }
            entries.push((key, entry));
        }
        // Sorted and unique: the map is built in one pass.
        self.services = entries.into_iter().collect();
        pods_changed
    }

    /// Applies one batch's changes; remembers in `before` the joined
    /// service each touched key had first. Returns true when pods changed.
    fn apply(
        &mut self,
        changes: Vec<ObjectChange>,
        before: &mut HashMap<Key, Option<Arc<ClusterService>>>,
    ) -> bool {
        let mut pods_changed = false;
        let mut parts: HashMap<Key, Option<Arc<ServicePart>>> = HashMap::new();
        let mut edits: HashMap<Key, Vec<SliceEdit>> = HashMap::new();
        for change in changes {
            match change {
                ObjectChange::Service(key, read) => {
                    parts.insert(key, read.and_then(|r| r.part));
                }
                ObjectChange::Slice(key, read) => {
                    let part = read.and_then(|r| r.part);
                    let owner = part
                        .as_ref()
                        .and_then(|p| p.service.clone())
                        .map(|service| (key.0.clone(), service));
                    let previous = self.slice_owner.get(&key).cloned();
                    if let Some(previous) = previous
                        && Some(&previous) != owner.as_ref()
                    {
                        edits
                            .entry(previous)
                            .or_default()
                            .push((key.1.clone(), None));
                        self.slice_owner.remove(&key);
                    }
                    if let Some(owner) = owner {
                        self.slice_owner.insert(key.clone(), owner.clone());
                        edits.entry(owner).or_default().push((key.1, part));
                    }
                }
                ObjectChange::Pod(key, pod) => {
                    pods_changed = true;
                    match pod {
                        Some(pod) => self.pods.insert(key, pod),
                        None => self.pods.remove(&key),
                    };
                }
            }
        }
        let mut keys: Vec<Key> = parts.keys().chain(edits.keys()).cloned().collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let entry = self.services.entry(key.clone()).or_default();
            before
                .entry(key.clone())
                .or_insert_with(|| entry.joined.clone());
            // The endpoints of every slot, out of the joined service.
            let mut endpoints: Vec<(String, Vec<ClusterEndpoint>)> = Vec::new();
            let mut offset = 0;
            for (name, slot) in &mut entry.slots {
                let own = match slot.held.take() {
                    Some(held) => held,
                    None => entry.joined.as_ref().map_or_else(Vec::new, |joined| {
                        joined.endpoints[offset..offset + slot.count].to_vec()
                    }),
                };
                offset += slot.count;
                endpoints.push((name.clone(), own));
            }
            let mut slots: BTreeMap<String, (SlicePart, Vec<ClusterEndpoint>)> = entry
                .slots
                .iter()
                .zip(endpoints)
                .map(|((name, slot), (_, own))| (name.clone(), (slot.shape.clone(), own)))
                .collect();
            for (name, part) in edits.remove(&key).unwrap_or_default() {
                match part {
                    Some(part) => {
                        let shape = part.shape();
                        slots.insert(name, (shape, SlicePart::into_endpoints(part)));
                    }
                    None => {
                        slots.remove(&name);
                    }
                }
            }
            if let Some(part) = parts.remove(&key) {
                entry.part = part;
            }
            let counts: Vec<(String, SlicePart, usize)> = slots
                .iter()
                .map(|(name, (shape, own))| (name.clone(), shape.clone(), own.len()))
                .collect();
            let holds = entry.part.is_some();
            let mut held: Vec<Vec<ClusterEndpoint>> = Vec::new();
            entry.joined = match &entry.part {
                Some(part) => {
                    let full: Vec<SlicePart> = slots
                        .into_values()
                        .map(|(shape, own)| shape.with_endpoints(own))
                        .collect();
                    Some(Arc::new(part.join_owned(full)))
                }
                None => {
                    held = slots.into_values().map(|(_, own)| own).collect();
                    None
                }
            };
            let mut held = held.into_iter();
            entry.slots = counts
                .into_iter()
                .map(|(name, shape, count)| {
                    let slot = Slot {
                        shape,
                        count,
                        held: if holds { None } else { held.next() },
                    };
                    (name, slot)
                })
                .collect();
            if entry.part.is_none() && entry.slots.is_empty() {
                self.services.remove(&key);
            }
        }
        pods_changed
    }
}

/// Keeps the last of each run of items with equal keys, in place.
fn dedup_keep_last<T>(items: &mut Vec<(Key, T)>) {
    items.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
}

fn report(item: &Skipped, metrics: &DiscoveryMetrics) {
    metrics.skipped(item.reason);
    tracing::warn!(kind = item.kind, object = %item.object, reason = item.reason, detail = %item.detail, "object left out of answers");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    /// A small deterministic generator (no dependency for one test).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    fn service(random: &mut Lcg, namespace: &str, name: &str) -> Option<Read<ServicePart>> {
        let headless = random.below(2) == 0;
        let object: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "clusterIP": if headless { "None".to_owned() } else { format!("10.96.0.{}", random.below(200)) },
                "ports": [{"name": "http", "port": 80 + random.below(3), "protocol": "TCP"}],
            },
        }))
        .unwrap();
        match random.below(6) {
            0 => None,
            1 => Some(Read {
                part: None,
                skipped: Vec::new(),
            }),
            _ => Some(Read {
                part: Some(Arc::new(ServicePart::new(namespace, name, &object))),
                skipped: Vec::new(),
            }),
        }
    }

    fn slice(random: &mut Lcg, services: u64) -> Option<Read<SlicePart>> {
        let endpoints: Vec<serde_json::Value> = (0..random.below(4))
            .map(|_| serde_json::json!({"addresses": [format!("10.64.0.{}", random.below(250))]}))
            .collect();
        let mut labels = serde_json::Map::new();
        if random.below(8) != 0 {
            labels.insert(
                "kubernetes.io/service-name".to_owned(),
                format!("svc-{}", random.below(services)).into(),
            );
        }
        let object: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "labels": labels},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080}],
        }))
        .unwrap();
        (random.below(6) != 0).then(|| Read {
            part: Some(Arc::new(SlicePart::new(&object))),
            skipped: Vec::new(),
        })
    }

    fn batch(random: &mut Lcg, size: u64) -> Vec<ObjectChange> {
        let namespaces = ["a", "b", "c"];
        (0..size)
            .map(|_| {
                let namespace = namespaces[random.below(3) as usize].to_owned();
                if random.below(2) == 0 {
                    let name = format!("svc-{}", random.below(8));
                    let read = service(random, &namespace, &name);
                    ObjectChange::Service((namespace, name), read)
                } else {
                    let name = format!("slice-{}", random.below(12));
                    let read = slice(random, 8);
                    ObjectChange::Slice((namespace, name), read)
                }
            })
            .collect()
    }

    type Seen = Vec<(
        Key,
        Option<ServicePart>,
        Vec<(String, SlicePart, usize, Option<Vec<ClusterEndpoint>>)>,
        Option<ClusterService>,
    )>;

    fn seen(joined: &Joined) -> (Seen, Vec<(Key, Key)>) {
        let services = joined
            .services
            .iter()
            .map(|(key, entry)| {
                let slots = entry
                    .slots
                    .iter()
                    .map(|(name, slot)| {
                        (
                            name.clone(),
                            slot.shape.clone(),
                            slot.count,
                            slot.held.clone(),
                        )
                    })
                    .collect();
                (
                    key.clone(),
                    entry.part.as_deref().cloned(),
                    slots,
                    entry.joined.as_deref().cloned(),
                )
            })
            .collect();
        let mut owners: Vec<(Key, Key)> = joined
            .slice_owner
            .iter()
            .map(|(slice, owner)| (slice.clone(), owner.clone()))
            .collect();
        owners.sort();
        (services, owners)
    }

    /// The one-sort join of a first load leaves exactly what applying the
    /// same batch change by change leaves, and later changes apply to it the same.
    #[test]
    fn fresh_join_matches_the_general_one() {
        let mut random = Lcg(18);
        for round in 0..300 {
            let size = 1 + random.below(40);
            let first = batch(&mut random, size);
            let size = 1 + random.below(10);
            let later = batch(&mut random, size);
            let mut general = Joined::default();
            general.apply(first.clone(), &mut HashMap::new());
            let mut fresh = Joined::default();
            fresh.apply_fresh(first);
            assert_eq!(seen(&general), seen(&fresh), "round {round}: first batch");
            general.apply(later.clone(), &mut HashMap::new());
            fresh.apply(later, &mut HashMap::new());
            assert_eq!(seen(&general), seen(&fresh), "round {round}: later batch");
        }
    }
}
