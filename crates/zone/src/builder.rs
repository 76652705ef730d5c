//! Building a [`Snapshot`] from records (control plane; allocates freely).
//!
//! Every answer the snapshot can give is rendered here once, following
//! RFC 1034 §4.3.2: the RRset itself, CNAME chains inside the zone (step 3a),
//! referrals at and below zone cuts with glue (step 3b, AA clear), wildcard
//! nodes (step 3c; RFC 4592 — the query side finds them), additional-section
//! addresses for NS, MX and SRV targets (step 6), and negative answers with
//! the zone's SOA (RFC 2308).

use crate::snapshot::{
    GeoName, GeoRegion, Names, Node, PodMode, Shard, ShardLayout, Snapshot, ZoneEntry,
};
use rustc_hash::{FxHashMap, FxHashSet};
use signpost_proto::{Name, RecordWriter, Rendered, rcode, rdata, rtype};

/// A zone whose SOA and NS signpost writes itself (the cluster zone).
#[derive(Debug, Clone)]
pub struct ZoneSettings {
    /// The zone apex.
    pub apex: Name,
    /// TTL of the SOA and NS records.
    pub ttl: u32,
    /// SOA MNAME, also the NS target at the apex.
    pub primary: Name,
    /// SOA RNAME.
    pub mailbox: Name,
    /// SOA SERIAL.
    pub serial: u32,
    /// SOA MINIMUM: the negative-caching TTL bound (RFC 2308 §4).
    pub minimum: u32,
    /// Names below these that do not exist fall through to the next plugin
    /// instead of getting NXDOMAIN (CoreDNS `fallthrough [ZONES...]`).
    pub fallthrough: Vec<Name>,
    /// Pod record mode.
    pub pods: PodMode,
}

/// Why a record could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The owner is outside every zone added so far.
    #[error("{0} is not inside any served zone")]
    OutOfZone(Name),
    /// A CNAME cannot share its owner with other data (RFC 1034 §3.6.2).
    #[error("{0} has a CNAME and other records")]
    CnameAndOtherData(Name),
}

/// One RRset as the builder keeps it: every (RDATA, TTL) contribution with
/// the number of inputs that gave it, sorted, so an input can be taken back
/// (incremental builds) and the set renders exactly as if built from scratch.
#[derive(Debug, Default, Clone)]
struct RrSet {
    entries: Vec<Contribution>,
}

#[derive(Debug, Clone)]
struct Contribution {
    data: Box<[u8]>,
    ttl: u32,
    refs: u32,
}

/// The RRsets of one owner, by type, plus how many inputs made the name
/// exist without records ([`SnapshotBuilder::add_empty_name`]).
#[derive(Debug, Default, Clone)]
struct Sets {
    sets: Vec<(u16, RrSet)>,
    empty_refs: u32,
}

/// A zone as the builder keeps it.
#[derive(Debug, Clone)]
struct ZoneDef {
    apex: Name,
    ttl: u32,
    fallthrough: Vec<Name>,
    pods: PodMode,
    /// The SOA (TTL, RDATA) of a zone whose answers arrive pre-rendered
    /// ([`SnapshotBuilder::add_rendered_zone`]).
    soa: Option<(u32, Box<[u8]>)>,
}

/// A name whose answers its compiler rendered whole.
#[derive(Debug)]
struct RenderedName {
    answers: Vec<(u16, Rendered)>,
    otherwise: Option<Rendered>,
}

/// Collects zones and records, then renders every answer once; kept after a
/// build, it takes changes ([`Self::remove_record`], [`Self::add_record`])
/// and renders only the names they touch ([`Self::render_changes`]).
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    zones: Vec<ZoneDef>,
    geo_names: Vec<(Name, u32, Vec<GeoRegion>)>,
    zone_files: Vec<std::sync::Arc<crate::zonefile::ZoneFile>>,
    records: FxHashMap<Name, Sets>,
    /// Unique (owner, type, RDATA) triples in `records`.
    record_total: usize,
    /// Rendered names, first one wins.
    rendered: FxHashMap<Name, RenderedName>,
    rendered_records: usize,
    generation: u64,
    /// Some name other than an apex has NS records (a zone cut), as of the
    /// last full render; a cut added or taken away later forces a full render.
    has_cuts: bool,
    /// Set by the first render: from then on changes are tracked.
    tracking: Option<Tracking>,
}

/// What a kept builder knows about its last render.
#[derive(Debug, Default)]
struct Tracking {
    /// For every name with records below it (inside its zone), how many
    /// owners are below it: the empty non-terminals and the ancestors.
    below: FxHashMap<Name, u32>,
    /// Names whose answers read another name's data (CNAME chains,
    /// additional-section addresses, the SOA of negative answers), by the
    /// name read. May list a name that no longer reads it (a harmless extra render).
    readers: FxHashMap<Name, Vec<Name>>,
    /// The (name read, reader) pairs of the last full render, per render
    /// thread, not yet in `readers`: folded in by [`Tracking::settle`] after
    /// the snapshot serves (or by the first change), so the first snapshot of
    /// a large cluster does not wait for the index.
    unread: Vec<Vec<(Name, Name)>>,
    /// Geographic names and their index in the snapshot.
    geo: FxHashMap<Name, u32>,
    /// Per zone (in snapshot order): it has wildcards or zone cuts.
    walk: Vec<bool>,
    /// Names to render again.
    dirty: FxHashSet<Name>,
    /// A change the incremental path does not cover (a zone cut, a
    /// wildcard, a new zone): the next render starts from scratch.
    needs_full: bool,
}

/// What one thread of a full render made: its range of the snapshot's name
/// shards, filled, and (name read, reader) pairs for [`Tracking::readers`].
struct RenderedPart {
    shards: Vec<Shard>,
    reads: Vec<(Name, Name)>,
}

// === impl Tracking ===

impl Tracking {
    /// Folds the reads of the last full render into `readers`.
    fn settle(&mut self) {
        for reads in std::mem::take(&mut self.unread) {
            for (read, owner) in reads {
                self.readers.entry(read).or_default().push(owner);
            }
        }
    }

    /// Marks the names whose answers read `name` to render again.
    fn dirty_readers(&mut self, name: &Name) {
        self.settle();
        if let Some(readers) = self.readers.get(name) {
            self.dirty.extend(readers.iter().cloned());
        }
    }
}

/// Threads a full render uses at most: the machine's cores, up to this.
const RENDER_THREADS: usize = 4;

/// Names below which a full render stays on the calling thread. Unit tests
/// split every render of more than a few names over [`RENDER_THREADS`]
/// threads whatever the machine, so the incremental-versus-full tests
/// compare split renders with one-name-at-a-time ones.
#[cfg(not(test))]
const PARALLEL_RENDER_MIN: usize = 20_000;
#[cfg(test)]
const PARALLEL_RENDER_MIN: usize = 4;

/// Threads a full render of `names` names uses.
fn render_threads(names: usize) -> usize {
    if names < PARALLEL_RENDER_MIN {
        1
    } else if cfg!(test) {
        RENDER_THREADS
    } else {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, RENDER_THREADS)
    }
}

/// The results of scoped threads, in order; a thread's panic goes on in the caller.
fn join_all<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, T>>) -> Vec<T> {
    handles
        .into_iter()
        .map(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .collect()
}

/// Longest CNAME chain followed inside the served data.
const MAX_CHAIN: usize = 8;

/// A type no name has: renders the answer for "any other type" at a CNAME.
const OTHER_TYPE: u16 = 0xff00;

/// DS is answered by the parent side of a zone cut (RFC 4035 §3.1.4.1).
const DS: u16 = 43;

/// What a name resolves to inside the builder's data.
enum Found<'a> {
    /// The name has these RRsets (possibly through a wildcard).
    Sets(&'a Sets),
    /// The name is at or below this zone cut.
    Referral(Name),
    /// The name exists only as an empty non-terminal.
    Empty,
    /// The name does not exist.
    Missing,
}

// === impl RrSet ===

impl RrSet {
    /// The smallest TTL given (RFC 2181 §5.2).
    fn ttl(&self) -> u32 {
        self.entries.iter().map(|c| c.ttl).min().unwrap_or(0)
    }

    /// The distinct RDATAs, in order.
    fn rdatas(&self) -> impl Iterator<Item = &[u8]> {
        let mut previous: Option<&[u8]> = None;
        self.entries.iter().filter_map(move |c| {
            let data: &[u8] = &c.data;
            if previous == Some(data) {
                return None;
            }
            previous = Some(data);
            Some(data)
        })
    }

    fn first(&self) -> Option<&[u8]> {
        self.entries.first().map(|c| &*c.data)
    }

    /// Adds a contribution; true when the RDATA is new to the set.
    fn add(&mut self, data: Vec<u8>, ttl: u32) -> bool {
        let position = self
            .entries
            .binary_search_by(|c| (&*c.data, c.ttl).cmp(&(&data[..], ttl)));
        match position {
            Ok(at) => {
                self.entries[at].refs += 1;
                false
            }
            Err(at) => {
                let new = !self.entries.iter().any(|c| *c.data == data[..]);
                self.entries.insert(
                    at,
                    Contribution {
                        data: data.into_boxed_slice(),
                        ttl,
                        refs: 1,
                    },
                );
                new
            }
        }
    }

    /// Takes a contribution back; `Some(true)` when the RDATA left the set,
    /// `None` when it was never given.
    fn remove(&mut self, data: &[u8], ttl: u32) -> Option<bool> {
        let at = self
            .entries
            .binary_search_by(|c| (&*c.data, c.ttl).cmp(&(data, ttl)))
            .ok()?;
        self.entries[at].refs -= 1;
        if self.entries[at].refs > 0 {
            return Some(false);
        }
        self.entries.remove(at);
        Some(!self.entries.iter().any(|c| *c.data == *data))
    }
}

// === impl Sets ===

impl Sets {
    fn get(&self, rr_type: &u16) -> Option<&RrSet> {
        self.sets
            .binary_search_by_key(rr_type, |(t, _)| *t)
            .ok()
            .map(|at| &self.sets[at].1)
    }

    fn contains_key(&self, rr_type: &u16) -> bool {
        self.get(rr_type).is_some()
    }

    fn keys(&self) -> impl Iterator<Item = &u16> {
        self.sets.iter().map(|(t, _)| t)
    }

    fn iter(&self) -> impl Iterator<Item = (&u16, &RrSet)> {
        self.sets.iter().map(|(t, s)| (t, s))
    }

    fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Neither records nor an input that makes the name exist.
    fn is_unused(&self) -> bool {
        self.sets.is_empty() && self.empty_refs == 0
    }

    /// Adds a contribution; true when the RDATA is new to its RRset.
    fn add(&mut self, rr_type: u16, data: Vec<u8>, ttl: u32) -> bool {
        let at = match self.sets.binary_search_by_key(&rr_type, |(t, _)| *t) {
            Ok(at) => at,
            Err(at) => {
                self.sets.insert(at, (rr_type, RrSet::default()));
                at
            }
        };
        self.sets[at].1.add(data, ttl)
    }
}

/// A CNAME cannot share its owner with other data (RFC 1034 §3.6.2).
fn conflicts(sets: &Sets, rr_type: u16) -> bool {
    let has_cname = sets.contains_key(&rtype::CNAME);
    (rr_type == rtype::CNAME && sets.keys().any(|&t| t != rtype::CNAME))
        || (rr_type != rtype::CNAME && has_cname)
}

// === impl SnapshotBuilder ===

impl SnapshotBuilder {
    /// A builder for the snapshot with the given generation number.
    pub fn new(generation: u64) -> Self {
        Self {
            generation,
            ..Self::default()
        }
    }

    /// Sets the generation of the next snapshot.
    pub fn set_generation(&mut self, generation: u64) {
        self.generation = generation;
    }

    /// Adds a zone with the SOA and NS records signpost writes for it.
    pub fn add_zone(&mut self, settings: ZoneSettings) {
        let soa = rdata::soa(
            &settings.primary,
            &settings.mailbox,
            settings.serial,
            [7200, 1800, 86400, settings.minimum],
        );
        let apex = settings.apex.clone();
        let ns = rdata::name(&settings.primary);
        let ttl = settings.ttl;
        self.push_zone(ZoneDef {
            apex: settings.apex,
            ttl,
            fallthrough: settings.fallthrough,
            pods: settings.pods,
            soa: None,
        });
        self.insert(apex.clone(), rtype::SOA, ttl, soa);
        self.insert(apex, rtype::NS, ttl, ns);
    }

    /// The SOA RDATA [`Self::add_zone`] writes for `settings`, so a kept
    /// builder can swap the serial ([`Self::remove_record`], [`Self::add_record`]).
    pub fn zone_soa(settings: &ZoneSettings) -> Vec<u8> {
        rdata::soa(
            &settings.primary,
            &settings.mailbox,
            settings.serial,
            [7200, 1800, 86400, settings.minimum],
        )
    }

    fn push_zone(&mut self, zone: ZoneDef) {
        if let Some(tracking) = &mut self.tracking {
            tracking.needs_full = true;
        }
        self.zones.push(zone);
    }

    /// Adds a zone whose records, SOA and NS included, come from a zone file.
    pub fn add_file_zone(&mut self, apex: Name, fallthrough: Vec<Name>) {
        self.push_zone(ZoneDef {
            apex,
            ttl: 0,
            fallthrough,
            pods: PodMode::Disabled,
            soa: None,
        });
    }

    /// Adds a zone whose every answer its compiler renders itself (the `etcd`
    /// plugin's SkyDNS zones, [`crate::skydns`]): names added with
    /// [`Self::add_rendered_name`]; a missing name gets NXDOMAIN, a type a
    /// name has no answer for NODATA, both with this SOA (TTL, RDATA) in the
    /// authority section (RFC 2308 §3); qnames with `*` or `any` labels are
    /// looked up as SkyDNS wildcards.
    pub fn add_rendered_zone(&mut self, apex: Name, soa: (u32, Vec<u8>), fallthrough: Vec<Name>) {
        self.push_zone(ZoneDef {
            apex,
            ttl: soa.0,
            fallthrough,
            pods: PodMode::Disabled,
            soa: Some((soa.0, soa.1.into_boxed_slice())),
        });
    }

    /// Adds a name of a rendered zone with its answers by query type; other
    /// types get `otherwise`, or the zone's NODATA when `None`. A name another
    /// source already holds keeps that source's answers.
    pub fn add_rendered_name(
        &mut self,
        owner: Name,
        answers: Vec<(u16, Rendered)>,
        otherwise: Option<Rendered>,
    ) {
        if let Some(tracking) = &mut self.tracking {
            tracking.needs_full = true;
        }
        self.rendered
            .entry(owner)
            .or_insert(RenderedName { answers, otherwise });
    }

    /// Counts records a rendered zone serves (for `signpost_snapshot_records`).
    pub fn count_rendered_records(&mut self, count: usize) {
        self.rendered_records += count;
    }

    /// Adds a geographic name: its A and AAAA answers are chosen per query
    /// among `regions` (the name itself must exist, see [`Self::add_empty_name`]).
    pub fn add_geo_name(&mut self, name: Name, ttl: u32, regions: Vec<GeoRegion>) {
        if let Some(tracking) = &mut self.tracking {
            tracking.needs_full = true;
        }
        self.geo_names.push((name, ttl, regions));
    }

    /// Keeps a loaded zone file with the snapshot, so it can be transferred (AXFR).
    pub fn attach_zone_file(&mut self, zone: std::sync::Arc<crate::zonefile::ZoneFile>) {
        self.zone_files.push(zone);
    }

    /// Adds one record. Records of one type at one name form an RRset with the
    /// smallest TTL given (RFC 2181 §5.2); duplicates are dropped.
    pub fn add_record(
        &mut self,
        owner: Name,
        rr_type: u16,
        ttl: u32,
        data: Vec<u8>,
    ) -> Result<(), BuildError> {
        if !self.in_a_zone(&owner) {
            return Err(BuildError::OutOfZone(owner));
        }
        if self.tracking.is_none() {
            // Before the first render nothing is tracked: one hash of the owner.
            let entry = self.records.entry(owner);
            if let std::collections::hash_map::Entry::Occupied(sets) = &entry
                && conflicts(sets.get(), rr_type)
            {
                return Err(BuildError::CnameAndOtherData(sets.key().clone()));
            }
            if entry.or_default().add(rr_type, data, ttl) {
                self.record_total += 1;
            }
            return Ok(());
        }
        if let Some(sets) = self.records.get(&owner)
            && conflicts(sets, rr_type)
        {
            return Err(BuildError::CnameAndOtherData(owner));
        }
        self.insert(owner, rr_type, ttl, data);
        Ok(())
    }

    /// Takes back one record given earlier with [`Self::add_record`] (the
    /// same owner, type, TTL and RDATA); the record leaves the answers once
    /// every input that gave it took it back. False when it was never given.
    pub fn remove_record(&mut self, owner: &Name, rr_type: u16, ttl: u32, data: &[u8]) -> bool {
        let Some(sets) = self.records.get_mut(owner) else {
            return false;
        };
        let Ok(at) = sets.sets.binary_search_by_key(&rr_type, |(t, _)| *t) else {
            return false;
        };
        let Some(gone) = sets.sets[at].1.remove(data, ttl) else {
            return false;
        };
        if gone {
            self.record_total -= 1;
        }
        if sets.sets[at].1.entries.is_empty() {
            sets.sets.remove(at);
        }
        let unused = sets.is_unused();
        self.touched(owner, rr_type);
        if unused {
            self.drop_owner(owner);
        }
        true
    }

    /// Makes a name exist without records, so it answers NODATA rather than
    /// NXDOMAIN (for example `<namespace>.svc.<zone>` of a namespace whose only
    /// service has no ready endpoints).
    pub fn add_empty_name(&mut self, owner: Name) -> Result<(), BuildError> {
        if !self.in_a_zone(&owner) {
            return Err(BuildError::OutOfZone(owner));
        }
        if !self.records.contains_key(&owner) {
            self.new_owner(&owner);
        }
        self.records.entry(owner).or_default().empty_refs += 1;
        Ok(())
    }

    /// Takes back one [`Self::add_empty_name`].
    pub fn remove_empty_name(&mut self, owner: &Name) -> bool {
        let Some(sets) = self.records.get_mut(owner) else {
            return false;
        };
        if sets.empty_refs == 0 {
            return false;
        }
        sets.empty_refs -= 1;
        if sets.is_unused() {
            self.drop_owner(owner);
        }
        true
    }

    /// True when a name has records of any type.
    pub fn contains(&self, owner: &Name) -> bool {
        self.records.contains_key(owner)
    }

    fn insert(&mut self, owner: Name, rr_type: u16, ttl: u32, data: Vec<u8>) {
        if !self.records.contains_key(&owner) {
            self.new_owner(&owner);
        }
        self.touched(&owner, rr_type);
        if self
            .records
            .entry(owner)
            .or_default()
            .add(rr_type, data, ttl)
        {
            self.record_total += 1;
        }
    }

    /// After the first render: `owner`'s data of `rr_type` changed.
    fn touched(&mut self, owner: &Name, rr_type: u16) {
        let Some(index) = self.zone_index(owner) else {
            return;
        };
        let apex = &self.zones[index].apex;
        let Some(tracking) = &mut self.tracking else {
            return;
        };
        // RFC 1034 §4.2.1 zone cuts and RFC 4592 wildcards change what
        // names below them answer: rendered again from scratch.
        if (rr_type == rtype::NS && owner != apex) || owner.first_label() == Some(b"*") {
            tracking.needs_full = true;
        }
        tracking.dirty.insert(owner.clone());
        tracking.dirty_readers(owner);
    }

    /// After the first render: `owner` was added to `records`; its
    /// ancestors inside its zone gain a name below them.
    fn new_owner(&mut self, owner: &Name) {
        let Some(index) = self.zone_index(owner) else {
            return;
        };
        let apex = self.zones[index].apex.clone();
        let Some(tracking) = &mut self.tracking else {
            return;
        };
        tracking.dirty.insert(owner.clone());
        tracking.dirty_readers(owner);
        let mut parent = owner.parent();
        while let Some(name) = parent {
            if !name.is_within(&apex) {
                break;
            }
            let count = tracking.below.entry(name.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                // A name that may have just come into existence.
                tracking.dirty_readers(&name);
                tracking.dirty.insert(name.clone());
            }
            parent = name.parent();
        }
    }

    /// `owner` has neither records nor an empty-name input left.
    fn drop_owner(&mut self, owner: &Name) {
        self.records.remove(owner);
        let Some(index) = self.zone_index(owner) else {
            return;
        };
        let apex = self.zones[index].apex.clone();
        let Some(tracking) = &mut self.tracking else {
            return;
        };
        tracking.dirty.insert(owner.clone());
        tracking.dirty_readers(owner);
        let mut parent = owner.parent();
        while let Some(name) = parent {
            if !name.is_within(&apex) {
                break;
            }
            if let Some(count) = tracking.below.get_mut(&name) {
                *count -= 1;
                if *count == 0 {
                    tracking.below.remove(&name);
                    tracking.dirty_readers(&name);
                    tracking.dirty.insert(name.clone());
                }
            }
            parent = name.parent();
        }
    }

    /// Some zone holds `name` (cheaper than [`Self::zone_index`]: stops at
    /// the first zone that does; every record added asks).
    fn in_a_zone(&self, name: &Name) -> bool {
        self.zones.iter().any(|z| name.is_within(&z.apex))
    }

    fn zone_index(&self, name: &Name) -> Option<usize> {
        self.zones
            .iter()
            .enumerate()
            .filter(|(_, z)| name.is_within(&z.apex))
            .max_by_key(|(_, z)| z.apex.as_wire().len())
            .map(|(i, _)| i)
    }

    /// The highest zone cut at or above `name` inside its zone: an owner of NS
    /// records other than the apex (RFC 1034 §4.2.1).
    fn cut_of(&self, name: &Name, apex: &Name) -> Option<Name> {
        if !self.has_cuts || !name.is_within(apex) {
            return None;
        }
        // The name and its ancestors below the apex, as suffixes of its wire
        // form: no name is allocated unless there is a cut.
        let wire = name.as_wire();
        let apex_len = apex.as_wire().len();
        let mut cut = None;
        let mut at = 0;
        while wire.len() - at > apex_len {
            if self
                .records
                .get(&wire[at..])
                .is_some_and(|sets| sets.contains_key(&rtype::NS))
            {
                cut = Some(at);
            }
            at += 1 + wire[at] as usize;
        }
        cut.and_then(|at| Name::from_wire(&wire[at..]))
    }

    /// Resolves a name inside its zone: its own data, a referral, an empty
    /// non-terminal, a wildcard's data (RFC 4592 §3.3.1), or nothing.
    fn find(&self, name: &Name, apex: &Name, below: &FxHashMap<Name, u32>) -> Found<'_> {
        if let Some(cut) = self.cut_of(name, apex) {
            return Found::Referral(cut);
        }
        if let Some(sets) = self.records.get(name) {
            return Found::Sets(sets);
        }
        if below.contains_key(name) {
            return Found::Empty;
        }
        // The closest encloser is the longest existing ancestor; only its
        // `*` child may synthesize an answer.
        let mut ancestor = name.parent();
        while let Some(encloser) = ancestor {
            if !encloser.is_within(apex) {
                break;
            }
            if self.records.contains_key(&encloser) || below.contains_key(&encloser) {
                return match encloser.child("*").ok().and_then(|w| self.records.get(&w)) {
                    Some(sets) => Found::Sets(sets),
                    None => Found::Missing,
                };
            }
            ancestor = encloser.parent();
        }
        Found::Missing
    }

    /// Renders every answer and returns the snapshot.
    pub fn build(mut self) -> Snapshot {
        self.render()
    }

    /// Renders every answer; the builder is kept, so later changes can be
    /// rendered with [`Self::render_changes`].
    pub fn render(&mut self) -> Snapshot {
        self.zones
            .sort_by_key(|z| std::cmp::Reverse(z.apex.as_wire().len()));
        let below = self.count_below();
        let walk = self.walk_flags();
        self.has_cuts = self.records.iter().any(|(owner, sets)| {
            sets.contains_key(&rtype::NS) && !self.zones.iter().any(|z| &z.apex == owner)
        });
        let zones = self.zone_entries(&walk);
        let mut geo_index: FxHashMap<Name, u32> = FxHashMap::default();
        let owners: Vec<&Name> = self
            .records
            .keys()
            .chain(below.keys().filter(|n| !self.records.contains_key(*n)))
            .collect();
        // Rendered names (SkyDNS) that no record or name below shares.
        let alone: Vec<(&Name, &RenderedName)> = self
            .rendered
            .iter()
            .filter(|(owner, _)| !self.records.contains_key(*owner) && !below.contains_key(*owner))
            .collect();
        let layout = ShardLayout::for_capacity(owners.len() + alone.len());
        let mut shards = Vec::with_capacity(layout.count());
        let mut unread = Vec::new();
        for part in self.render_all(&owners, layout, &zones, &below) {
            shards.extend(part.shards);
            unread.push(part.reads);
        }
        let mut names = Names::from_shards(shards);
        for (owner, rendered) in alone {
            if let Some(node) = self.rendered_node(owner, rendered) {
                names.insert(owner.as_wire().into(), node);
            }
        }
        let mut geo = Vec::with_capacity(self.geo_names.len());
        for (name, ttl, regions) in &self.geo_names {
            let Some(node) = names.get_mut(name.as_wire()) else {
                continue;
            };
            node.geo = Some(geo.len() as u32);
            geo_index.insert(name.clone(), geo.len() as u32);
            let apex = self
                .zone_index(name)
                .map_or_else(Name::root, |z| self.zones[z].apex.clone());
            geo.push(self.render_geo(name, *ttl, regions, &apex));
        }
        self.tracking = Some(Tracking {
            below,
            readers: FxHashMap::default(),
            unread,
            geo: geo_index,
            walk,
            dirty: FxHashSet::default(),
            needs_full: false,
        });
        Snapshot {
            zones,
            names,
            generation: self.generation,
            record_count: self.record_total + self.rendered_records,
            zone_files: self.zone_files.clone(),
            geo: std::sync::Arc::new(geo),
        }
    }

    /// How many owners are below each name that has some inside its zone:
    /// every proper ancestor of an owner inside its zone exists (empty
    /// non-terminals). Counted on [`render_threads`] threads, each over a
    /// part of the owners, then summed.
    fn count_below(&self) -> FxHashMap<Name, u32> {
        let owners: Vec<&Name> = self.records.keys().collect();
        let threads = render_threads(owners.len());
        if threads == 1 {
            return self.count_below_of(&owners);
        }
        let mut parts: Vec<FxHashMap<Name, u32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = owners
                .chunks(owners.len().div_ceil(threads))
                .map(|chunk| scope.spawn(move || self.count_below_of(chunk)))
                .collect();
            join_all(handles)
        });
        parts.sort_by_key(|part| std::cmp::Reverse(part.len()));
        let mut parts = parts.into_iter();
        let mut below = parts.next().unwrap_or_default();
        for part in parts {
            for (name, count) in part {
                *below.entry(name).or_insert(0) += count;
            }
        }
        below
    }

    /// [`Self::count_below`] for some of the owners. The ancestors are
    /// suffixes of an owner's wire form: a name is allocated only for an
    /// ancestor seen first.
    fn count_below_of(&self, owners: &[&Name]) -> FxHashMap<Name, u32> {
        let mut below: FxHashMap<Name, u32> = FxHashMap::default();
        for owner in owners {
            let Some(zone) = self.zone_index(owner) else {
                continue;
            };
            let wire = owner.as_wire();
            let apex_len = self.zones[zone].apex.as_wire().len();
            let mut at = 0;
            while wire.len() - at > apex_len {
                at += 1 + wire[at] as usize;
                match below.get_mut(&wire[at..]) {
                    Some(count) => *count += 1,
                    None => {
                        if let Some(name) = Name::from_wire(&wire[at..]) {
                            below.insert(name, 1);
                        }
                    }
                }
            }
        }
        below
    }

    /// Renders the nodes of `owners` into the shards of `layout`, on up to
    /// [`RENDER_THREADS`] threads when there are many (rendering only reads
    /// the builder): each thread fills its own range of shards.
    fn render_all(
        &self,
        owners: &[&Name],
        layout: ShardLayout,
        zones: &[ZoneEntry],
        below: &FxHashMap<Name, u32>,
    ) -> Vec<RenderedPart> {
        let threads = render_threads(owners.len());
        let count = layout.count();
        if threads == 1 {
            return vec![self.render_part(owners, 0..count, layout, zones, below)];
        }
        let chunk = count.div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .step_by(chunk)
                .map(|start| {
                    let range = start..(start + chunk).min(count);
                    scope.spawn(move || self.render_part(owners, range, layout, zones, below))
                })
                .collect();
            join_all(handles)
        })
    }

    /// Renders the nodes of those `owners` that belong in the shards of
    /// `range`, with the names each one reads.
    fn render_part(
        &self,
        owners: &[&Name],
        range: std::ops::Range<usize>,
        layout: ShardLayout,
        zones: &[ZoneEntry],
        below: &FxHashMap<Name, u32>,
    ) -> RenderedPart {
        let mut part = RenderedPart {
            shards: range.clone().map(|_| layout.new_shard()).collect(),
            reads: Vec::new(),
        };
        let mut reads = Vec::new();
        for &owner in owners {
            let shard = layout.shard_of(owner.as_wire());
            if !range.contains(&shard) {
                continue;
            }
            reads.clear();
            let Some(node) = self.render_name(owner, zones, below, &mut reads) else {
                continue;
            };
            for read in reads.drain(..) {
                part.reads.push((read, owner.clone()));
            }
            part.shards[shard - range.start].insert(owner.as_wire().into(), node);
        }
        part
    }

    /// Renders only the names changed since the last render, sharing every
    /// other answer with `previous` (the snapshot that render returned).
    /// `None` when a change needs a render from scratch (a zone added, a
    /// zone cut or a wildcard changed, a rendered or geographic name added)
    /// or nothing was rendered yet: call [`Self::render`] then.
    pub fn render_changes(&mut self, previous: &Snapshot) -> Option<Snapshot> {
        let mut tracking = self.tracking.take()?;
        if tracking.needs_full {
            return None;
        }
        tracking.settle();
        let zones = self.zone_entries(&tracking.walk);
        let mut names = previous.names.clone();
        let mut reads = Vec::new();
        let dirty = std::mem::take(&mut tracking.dirty);
        for owner in &dirty {
            reads.clear();
            let exists = self.records.contains_key(owner) || tracking.below.contains_key(owner);
            let node = if exists {
                self.render_name(owner, &zones, &tracking.below, &mut reads)
            } else {
                self.rendered
                    .get(owner)
                    .and_then(|rendered| self.rendered_node(owner, rendered))
            };
            for read in reads.drain(..) {
                let list = tracking.readers.entry(read).or_default();
                if !list.contains(owner) {
                    list.push(owner.clone());
                }
            }
            match node {
                Some(mut node) => {
                    node.geo = tracking.geo.get(owner).copied();
                    names.insert(owner.as_wire().into(), node);
                }
                None => names.remove(owner.as_wire()),
            }
        }
        self.tracking = Some(tracking);
        Some(Snapshot {
            zones,
            names,
            generation: self.generation,
            record_count: self.record_total + self.rendered_records,
            zone_files: self.zone_files.clone(),
            geo: previous.geo.clone(),
        })
    }

    /// Finishes what the last full render left for later (the index of
    /// which names read which): call it once its snapshot serves. A change
    /// before that finishes it first.
    pub fn settle(&mut self) {
        if let Some(tracking) = &mut self.tracking {
            tracking.settle();
        }
    }

    /// Names changed since the last render (for tests and logs).
    pub fn pending_changes(&self) -> usize {
        self.tracking.as_ref().map_or(0, |t| t.dirty.len())
    }

    /// Per zone: it has wildcards or zone cuts, so a missing name needs the
    /// closest-encloser walk.
    fn walk_flags(&self) -> Vec<bool> {
        let mut walk = vec![false; self.zones.len()];
        for (name, sets) in &self.records {
            let wildcard = name.first_label() == Some(b"*");
            if !wildcard && !sets.contains_key(&rtype::NS) {
                continue;
            }
            for (index, zone) in self.zones.iter().enumerate() {
                if name.is_within(&zone.apex) && (wildcard || name != &zone.apex) {
                    walk[index] = true;
                }
            }
        }
        walk
    }

    /// The per-zone answers: NXDOMAIN and NODATA with the SOA.
    fn zone_entries(&self, walk: &[bool]) -> Vec<ZoneEntry> {
        self.zones
            .iter()
            .zip(walk)
            .map(|(zone, &has_wildcards_or_cuts)| {
                let negative = self.negative_authority(&zone.apex);
                let none = RecordWriter::new();
                ZoneEntry {
                    apex: zone.apex.clone(),
                    nxdomain: Rendered::new(rcode::NXDOMAIN, true, &none, &negative, &none),
                    nodata: Rendered::new(rcode::NOERROR, true, &none, &negative, &none),
                    fallthrough: zone.fallthrough.clone(),
                    pods: zone.pods,
                    ttl: zone.ttl,
                    walk: has_wildcards_or_cuts,
                    skydns: zone.soa.is_some(),
                }
            })
            .collect()
    }

    /// The node of a name that has records or names below it; `reads`
    /// collects the other names its answers read.
    fn render_name(
        &self,
        owner: &Name,
        zones: &[ZoneEntry],
        below: &FxHashMap<Name, u32>,
        reads: &mut Vec<Name>,
    ) -> Option<Node> {
        let zone = self.zone_index(owner)?;
        let apex = &self.zones[zone].apex;
        let sets = self.records.get(owner);
        Some(match self.cut_of(owner, apex) {
            Some(cut) => {
                let referral = self.render_referral(&cut);
                // DS at the cut belongs to the parent: NODATA without DNSSEC data.
                let answers: Box<[(u16, Rendered)]> = if &cut == owner {
                    Box::new([(DS, zones[zone].nodata.clone())])
                } else {
                    Box::new([])
                };
                Node {
                    zone: zone as u16,
                    answers,
                    otherwise: Some(referral),
                    referral: true,
                    geo: None,
                }
            }
            None => self.render_node(owner, sets, apex, below, zone, reads),
        })
    }

    fn rendered_node(&self, owner: &Name, rendered: &RenderedName) -> Option<Node> {
        let zone = self.zone_index(owner)?;
        Some(Node {
            zone: zone as u16,
            answers: rendered.answers.clone().into_boxed_slice(),
            otherwise: rendered.otherwise.clone(),
            referral: false,
            geo: None,
        })
    }

    fn render_geo(&self, name: &Name, ttl: u32, regions: &[GeoRegion], apex: &Name) -> GeoName {
        let render = |addresses: &mut dyn Iterator<Item = &std::net::IpAddr>, v6: bool| {
            let mut answer = RecordWriter::new();
            for address in addresses {
                match (address, v6) {
                    (std::net::IpAddr::V4(a), false) => {
                        answer.record(None, rtype::A, ttl, &rdata::a(*a))
                    }
                    (std::net::IpAddr::V6(a), true) => {
                        answer.record(None, rtype::AAAA, ttl, &rdata::aaaa(*a))
                    }
                    _ => {}
                }
            }
            let authority = if answer.count() == 0 {
                self.negative_authority(apex)
            } else {
                RecordWriter::new()
            };
            Rendered::new(
                rcode::NOERROR,
                true,
                &answer,
                &authority,
                &RecordWriter::new(),
            )
        };
        GeoName {
            name: name.clone(),
            candidates: regions
                .iter()
                .map(|r| signpost_geo::Candidate {
                    region: r.region,
                    priority: r.priority,
                    healthy: r.healthy,
                })
                .collect(),
            a: regions
                .iter()
                .map(|r| render(&mut r.addresses.iter(), false))
                .collect(),
            aaaa: regions
                .iter()
                .map(|r| render(&mut r.addresses.iter(), true))
                .collect(),
            all_a: render(&mut regions.iter().flat_map(|r| &r.addresses), false),
            all_aaaa: render(&mut regions.iter().flat_map(|r| &r.addresses), true),
            regions: regions.to_vec(),
        }
    }

    fn render_node(
        &self,
        owner: &Name,
        sets: Option<&Sets>,
        apex: &Name,
        below: &FxHashMap<Name, u32>,
        zone: usize,
        reads: &mut Vec<Name>,
    ) -> Node {
        let mut answers: Vec<(u16, Rendered)> = Vec::new();
        let mut otherwise = None;
        match sets {
            // An empty name: NODATA for every type.
            None => {}
            Some(sets) if sets.is_empty() => {}
            Some(sets) if sets.contains_key(&rtype::CNAME) => {
                answers.push((
                    rtype::CNAME,
                    self.render_answer(owner, rtype::CNAME, apex, below, reads),
                ));
                for qtype in self.chain_types(owner, apex, below) {
                    answers.push((qtype, self.render_answer(owner, qtype, apex, below, reads)));
                }
                otherwise = Some(self.render_answer(owner, OTHER_TYPE, apex, below, reads));
            }
            Some(sets) => {
                for &qtype in sets.keys() {
                    answers.push((qtype, self.render_answer(owner, qtype, apex, below, reads)));
                }
                answers.push((rtype::ANY, self.render_any(sets)));
            }
        }
        Node {
            zone: zone as u16,
            answers: answers.into_boxed_slice(),
            otherwise,
            referral: false,
            geo: None,
        }
    }

    /// The SOA for negative answers: TTL = min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
    fn negative_authority(&self, apex: &Name) -> RecordWriter {
        let mut authority = RecordWriter::new();
        if let Some((ttl, soa)) = self
            .zones
            .iter()
            .find(|z| &z.apex == apex)
            .and_then(|z| z.soa.as_ref())
        {
            authority.record(Some(apex), rtype::SOA, *ttl, soa);
            return authority;
        }
        if let Some(set) = self.records.get(apex).and_then(|s| s.get(&rtype::SOA)) {
            let ttl = set.ttl();
            for data in set.rdatas() {
                let minimum = data
                    .get(data.len().saturating_sub(4)..)
                    .and_then(|m| <[u8; 4]>::try_from(m).ok())
                    .map_or(ttl, u32::from_be_bytes);
                authority.record(Some(apex), rtype::SOA, ttl.min(minimum), data);
            }
        }
        authority
    }

    /// A referral to the zone cut `cut`: its NS RRset in authority, addresses
    /// of its name servers from our data in additional, AA clear (RFC 1034 §4.3.2 step 3b).
    fn render_referral(&self, cut: &Name) -> Rendered {
        let mut authority = RecordWriter::new();
        let mut additional = RecordWriter::new();
        self.write_referral(cut, &mut authority, &mut additional);
        Rendered::new(
            rcode::NOERROR,
            false,
            &RecordWriter::new(),
            &authority,
            &additional,
        )
    }

    fn write_referral(
        &self,
        cut: &Name,
        authority: &mut RecordWriter,
        additional: &mut RecordWriter,
    ) {
        if let Some(set) = self.records.get(cut).and_then(|s| s.get(&rtype::NS)) {
            let mut reads = Vec::new();
            for data in set.rdatas() {
                authority.record(Some(cut), rtype::NS, set.ttl(), data);
                if let Some(zone) = self.zone_index(cut) {
                    self.add_additional(
                        rtype::NS,
                        data,
                        &self.zones[zone].apex,
                        additional,
                        &mut reads,
                    );
                }
            }
        }
    }

    /// Types worth pre-rendering at a CNAME: those the end of its chain holds.
    fn chain_types(&self, owner: &Name, apex: &Name, below: &FxHashMap<Name, u32>) -> Vec<u16> {
        let mut current = owner.clone();
        for _ in 0..MAX_CHAIN {
            let Found::Sets(sets) = self.find(&current, apex, below) else {
                break;
            };
            match sets.get(&rtype::CNAME) {
                Some(set) => match set.first().and_then(|d| Name::from_wire(&lowercase(d))) {
                    Some(next) if next.is_within(apex) => current = next,
                    _ => break,
                },
                None => return sets.keys().copied().chain([rtype::ANY]).collect(),
            }
        }
        Vec::new()
    }

    /// Renders the answer for `owner` and `qtype`, following CNAMEs inside the
    /// zone (RFC 1034 §4.3.2 step 3a); the RCODE describes the last name of
    /// the chain (RFC 6604 §2).
    fn render_answer(
        &self,
        owner: &Name,
        qtype: u16,
        apex: &Name,
        below: &FxHashMap<Name, u32>,
        reads: &mut Vec<Name>,
    ) -> Rendered {
        let mut answer = RecordWriter::new();
        let mut authority = RecordWriter::new();
        let mut additional = RecordWriter::new();
        let mut current = std::borrow::Cow::Borrowed(owner);
        let mut code = rcode::NOERROR;
        for hop in 0..MAX_CHAIN {
            let owner_ref = if hop == 0 { None } else { Some(&*current) };
            if hop > 0 && !reads.contains(&current) {
                reads.push(current.clone().into_owned());
            }
            let sets = match self.find(&current, apex, below) {
                Found::Sets(sets) => sets,
                Found::Referral(cut) => {
                    self.write_referral(&cut, &mut authority, &mut additional);
                    break;
                }
                Found::Empty => {
                    authority = self.negative_authority(apex);
                    note_read(reads, apex);
                    break;
                }
                Found::Missing => {
                    let falls_through = self.zone_index(&current).is_some_and(|z| {
                        self.zones[z]
                            .fallthrough
                            .iter()
                            .any(|f| current.is_within(f))
                    });
                    if !falls_through {
                        code = rcode::NXDOMAIN;
                    }
                    authority = self.negative_authority(apex);
                    note_read(reads, apex);
                    break;
                }
            };
            if let Some(set) = sets.get(&qtype) {
                let ttl = set.ttl();
                for data in set.rdatas() {
                    answer.record(owner_ref, qtype, ttl, data);
                    self.add_additional(qtype, data, apex, &mut additional, reads);
                }
                break;
            }
            if let (Some(set), true) = (sets.get(&rtype::CNAME), qtype != rtype::CNAME) {
                let Some(data) = set.first() else {
                    break;
                };
                answer.record(owner_ref, rtype::CNAME, set.ttl(), data);
                match Name::from_wire(&lowercase(data)) {
                    // Only names in this zone are followed; the client resolves the rest.
                    Some(next) if next.is_within(apex) => current = std::borrow::Cow::Owned(next),
                    _ => break,
                }
                continue;
            }
            authority = self.negative_authority(apex);
            note_read(reads, apex);
            break;
        }
        Rendered::new(code, true, &answer, &authority, &additional)
    }

    /// RFC 8482 allows a subset; signpost answers ANY with every RRset it has.
    fn render_any(&self, sets: &Sets) -> Rendered {
        let mut answer = RecordWriter::new();
        for (&rr_type, set) in sets.iter() {
            let ttl = set.ttl();
            for data in set.rdatas() {
                answer.record(None, rr_type, ttl, data);
            }
        }
        let none = RecordWriter::new();
        Rendered::new(rcode::NOERROR, true, &answer, &none, &none)
    }

    /// Additional-section processing (RFC 1034 §4.3.2 step 6): addresses of SRV
    /// targets, mail exchangers and name servers when they are in the same
    /// zone's data (as Knot does: another zone's data is not offered).
    fn add_additional(
        &self,
        rr_type: u16,
        data: &[u8],
        apex: &Name,
        additional: &mut RecordWriter,
        reads: &mut Vec<Name>,
    ) {
        let target = match rr_type {
            rtype::SRV => data
                .get(6..)
                .map(lowercase)
                .and_then(|d| Name::from_wire(&d)),
            rtype::NS => Name::from_wire(&lowercase(data)),
            rtype::MX => data
                .get(2..)
                .map(lowercase)
                .and_then(|d| Name::from_wire(&d)),
            _ => None,
        };
        let Some(target) = target.filter(|t| t.is_within(apex)) else {
            return;
        };
        note_read(reads, &target);
        let Some(sets) = self.records.get(&target) else {
            return;
        };
        for address_type in [rtype::A, rtype::AAAA] {
            if let Some(set) = sets.get(&address_type) {
                let ttl = set.ttl();
                for address in set.rdatas() {
                    additional.record(Some(&target), address_type, ttl, address);
                }
            }
        }
    }
}

/// Notes that an answer read `name`'s data (once per name).
fn note_read(reads: &mut Vec<Name>, name: &Name) {
    if !reads.contains(name) {
        reads.push(name.clone());
    }
}

/// Wire-format names in zone-file RDATA keep their case; lookups use lower
/// case (copied only when some letter is upper case).
fn lowercase(wire: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !wire.iter().any(u8::is_ascii_uppercase) {
        return std::borrow::Cow::Borrowed(wire);
    }
    let mut out = wire.to_vec();
    let mut at = 0;
    while let Some(&len) = out.get(at) {
        if len == 0 || len > 63 {
            break;
        }
        let end = (at + 1 + len as usize).min(out.len());
        out[at + 1..end].make_ascii_lowercase();
        at = end;
    }
    std::borrow::Cow::Owned(out)
}
