//! The snapshot and its lookup (data plane: no allocation, no lock).
//!
//! Names live in [`Names`]: a fixed number of hash-map shards, each behind
//! an `Arc`, picked by bits of the name's hash. A change renders the names it
//! touches into copies of their shards only; every other shard is shared
//! with the snapshot before, so swapping in one endpoint change costs a few
//! shard copies instead of a whole build. Lookups hash the name once more
//! than a plain map (to pick the shard) and never allocate or lock.
//!
//! Measured (`cargo bench -p signpost-zone --bench scale`, 100,000 services /
//! 1,000,000 endpoints, 501,003 names in 8,192 shards, on the shared 2-CPU
//! machine at load average 21): the snapshot holds 207.5 MiB (434 B per
//! name: key, node, rendered answers); the kept builder (records with their
//! input counts, readers, names below) 215.2 MiB (450 B per name); a full
//! build took 15.0 s of wall time, a build after one endpoint change p50
//! 5.8 ms, p99 14.7 ms over 100 changes, and 100 changes left +0.9 MiB of
//! heap. A one-service change copies at most 12 shards
//! (`incremental_tests::one_change_copies_few_shards`). Chosen over a
//! persistent map (`imbl`'s HAMT, not measured here): that would copy a path
//! of nodes per change too, but make every lookup follow one pointer per
//! level, where a shard costs one extra hash and no pointer.

use rustc_hash::{FxHashMap, FxHasher};
use signpost_proto::{AnswerView, Name, Rendered, is_within_wire, rcode, rtype};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Immutable authoritative data for every served zone.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Zones, longest apex first, so the first match is the closest enclosing zone.
    pub(crate) zones: Vec<ZoneEntry>,
    pub(crate) names: Names,
    pub(crate) generation: u64,
    pub(crate) record_count: usize,
    /// Zones loaded from files, for zone transfers.
    pub(crate) zone_files: Vec<std::sync::Arc<crate::zonefile::ZoneFile>>,
    /// Geographic names, indexed by `Node::geo`.
    pub(crate) geo: Arc<Vec<GeoName>>,
}

/// One shard of [`Names`]: owner names (lower-case wire format) to nodes.
pub(crate) type Shard = FxHashMap<Box<[u8]>, Node>;

/// Owner names (lower-case wire format) to their nodes, in shards that
/// snapshots share until a change copies one.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    shards: Box<[Arc<Shard>]>,
    /// `shards.len() - 1` (a power of two).
    mask: u64,
    len: usize,
}

/// Names per shard a full build aims for: a change copies about this many
/// nodes per name it touches.
const NAMES_PER_SHARD: usize = 64;

/// How many shards a table of some number of names has, and which shard
/// each name goes to: lets a full build fill disjoint ranges of shards on
/// several threads ([`Names::from_shards`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardLayout {
    mask: u64,
    per_shard: usize,
}

/// Unit tests give even a small table several shards, so their full
/// builds render on several threads (each fills its own range of shards)
/// and the incremental-versus-full tests compare split renders with
/// one-name-at-a-time ones.
#[cfg(not(test))]
const MIN_SHARDS: usize = 1;
#[cfg(test)]
const MIN_SHARDS: usize = 4;

/// Bits 32 and up of the hash pick the shard: the map inside uses the low
/// bits for its buckets and the top seven for its control bytes.
fn shard_index(key: &[u8], mask: u64) -> usize {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    ((hasher.finish() >> 32) & mask) as usize
}

// === impl ShardLayout ===

impl ShardLayout {
    /// Shards of about [`NAMES_PER_SHARD`] for `capacity` names.
    pub(crate) fn for_capacity(capacity: usize) -> Self {
        let count = (capacity / NAMES_PER_SHARD)
            .next_power_of_two()
            .clamp(MIN_SHARDS, 1 << 16);
        Self {
            mask: count as u64 - 1,
            per_shard: capacity / count + 1,
        }
    }

    pub(crate) fn count(self) -> usize {
        self.mask as usize + 1
    }

    pub(crate) fn shard_of(self, key: &[u8]) -> usize {
        shard_index(key, self.mask)
    }

    /// An empty shard with room for its share of the names.
    pub(crate) fn new_shard(self) -> Shard {
        FxHashMap::with_capacity_and_hasher(self.per_shard, Default::default())
    }
}

// === impl Names ===

impl Default for Names {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Names {
    /// Room for `capacity` names, in shards of about [`NAMES_PER_SHARD`].
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let layout = ShardLayout::for_capacity(capacity);
        Self::from_shards((0..layout.count()).map(|_| layout.new_shard()).collect())
    }

    /// The table made of `shards` (filled by [`ShardLayout::shard_of`] for
    /// their count, which is a power of two).
    pub(crate) fn from_shards(shards: Vec<Shard>) -> Self {
        debug_assert!(shards.len().is_power_of_two());
        let len = shards.iter().map(FxHashMap::len).sum();
        Self {
            mask: shards.len() as u64 - 1,
            shards: shards.into_iter().map(Arc::new).collect(),
            len,
        }
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        shard_index(key, self.mask)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Node> {
        self.shards[self.shard_of(key)].get(key)
    }

    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// A node to change; copies its shard when another snapshot shares it.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Node> {
        let shard = self.shard_of(key);
        if !self.shards[shard].contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.shards[shard]).get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: Box<[u8]>, node: Node) {
        let shard = self.shard_of(&key);
        if Arc::make_mut(&mut self.shards[shard])
            .insert(key, node)
            .is_none()
        {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        let shard = self.shard_of(key);
        if !self.shards[shard].contains_key(key) {
            return;
        }
        if Arc::make_mut(&mut self.shards[shard]).remove(key).is_some() {
            self.len -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Shards this table shares with `other` (for tests and measurements).
    pub(crate) fn shared_with(&self, other: &Self) -> usize {
        self.shards
            .iter()
            .zip(other.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Every name and node, in no particular order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(k, v)| (&**k, v)))
    }
}

/// One region of a geographic name, as the snapshot serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoRegion {
    /// Region index in the `geo` configuration.
    pub region: usize,
    /// Priority.
    pub priority: u32,
    /// At least one healthy endpoint, or no health checks.
    pub healthy: bool,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
}

/// A geographic name: one pre-rendered answer per region and family, picked per query.
#[derive(Debug)]
pub struct GeoName {
    /// The name.
    pub name: Name,
    /// Its regions, in the order of the answers.
    pub candidates: Box<[signpost_geo::Candidate]>,
    pub(crate) a: Box<[Rendered]>,
    pub(crate) aaaa: Box<[Rendered]>,
    pub(crate) all_a: Rendered,
    pub(crate) all_aaaa: Rendered,
    /// The regions with their addresses (for the admin API).
    pub regions: Vec<GeoRegion>,
}

// === impl GeoName ===

impl GeoName {
    /// The answer for the chosen candidate (`None`: all regions).
    pub fn answer(&self, choice: Option<usize>, aaaa: bool) -> AnswerView<'_> {
        let (per_region, all) = if aaaa {
            (&self.aaaa, &self.all_aaaa)
        } else {
            (&self.a, &self.all_a)
        };
        match choice.and_then(|i| per_region.get(i)) {
            Some(answer) => answer.view(),
            None => all.view(),
        }
    }
}

/// Per-zone answers shared by every name in the zone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ZoneEntry {
    pub(crate) apex: Name,
    pub(crate) nxdomain: Rendered,
    pub(crate) nodata: Rendered,
    pub(crate) fallthrough: Vec<Name>,
    pub(crate) pods: PodMode,
    pub(crate) ttl: u32,
    /// The zone has wildcards or zone cuts, so a missing name needs the
    /// closest-encloser walk.
    pub(crate) walk: bool,
    /// A SkyDNS zone (the `etcd` plugin): `*` and `any` labels are wildcards.
    pub(crate) skydns: bool,
}

/// One owner name: its answers by type, and what other types get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) zone: u16,
    pub(crate) answers: Box<[(u16, Rendered)]>,
    /// The answer for types not in `answers`; `None` means the zone's NODATA.
    pub(crate) otherwise: Option<Rendered>,
    /// At or below a zone cut: `otherwise` is the referral, also for names
    /// below this one that do not exist.
    pub(crate) referral: bool,
    /// A geographic name: index into `Snapshot::geo`.
    pub(crate) geo: Option<u32>,
}

/// How `<a-b-c-d>.<namespace>.pod.<zone>` names are answered (CoreDNS `pods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodMode {
    /// No pod records (CoreDNS's default).
    #[default]
    Disabled,
    /// Answer any well-formed dashed address without checking that a pod has it.
    Insecure,
    /// Answer only the addresses of running pods in that namespace (their
    /// records are compiled in, not synthesized per query).
    Verified,
}

/// The result of a lookup.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// A pre-rendered answer.
    Answer(AnswerView<'a>),
    /// A geographic name's A (false) or AAAA (true) answer: the caller picks the region.
    Geo(&'a GeoName, bool),
    /// A pod record synthesized from the name; render it with [`PodAnswer::render`].
    Pod(PodAnswer),
    /// The name is in a zone whose plugin falls through: the next plugin decides.
    Fallthrough,
    /// No served zone contains the name.
    NotAuthoritative,
}

/// A pod address answer, synthesized per query without allocation.
#[derive(Debug, Clone, Copy)]
pub struct PodAnswer {
    address: IpAddr,
    ttl: u32,
}

// === impl Snapshot ===

impl Snapshot {
    /// An empty snapshot: serves no zone.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Finds the answer for a lower-case wire qname and a qtype.
    pub fn lookup(&self, qname: &[u8], qtype: u16) -> Lookup<'_> {
        if let Some(node) = self.names.get(qname) {
            if let Some(index) = node.geo
                && matches!(qtype, rtype::A | rtype::AAAA)
                && let Some(geo) = self.geo.get(index as usize)
            {
                return Lookup::Geo(geo, qtype == rtype::AAAA);
            }
            return self.answer_at(node, qtype);
        }
        let Some(zone) = self
            .zones
            .iter()
            .find(|z| is_within_wire(qname, z.apex.as_wire()))
        else {
            return Lookup::NotAuthoritative;
        };
        if zone.skydns
            && let Some(found) = self.skydns_wildcard(qname, zone, qtype)
        {
            return found;
        }
        if zone.walk
            && let Some(found) = self.closest_encloser(qname, zone.apex.as_wire().len(), qtype)
        {
            return found;
        }
        if zone.pods == PodMode::Insecure
            && let Some(found) = pod_lookup(qname, zone)
        {
            return match found {
                PodName::Address(address) => match (address, qtype) {
                    (IpAddr::V4(_), rtype::A) | (IpAddr::V6(_), rtype::AAAA) | (_, rtype::ANY) => {
                        Lookup::Pod(PodAnswer {
                            address,
                            ttl: zone.ttl,
                        })
                    }
                    _ => Lookup::Answer(zone.nodata.view()),
                },
                PodName::Namespace => Lookup::Answer(zone.nodata.view()),
            };
        }
        if zone
            .fallthrough
            .iter()
            .any(|f| is_within_wire(qname, f.as_wire()))
        {
            return Lookup::Fallthrough;
        }
        Lookup::Answer(zone.nxdomain.view())
    }

    /// RFC 1034 §4.3.2 steps 3b and 3c for a name that does not exist: finds
    /// the closest existing ancestor; below a zone cut that is a referral,
    /// otherwise its `*` child, if any, answers (RFC 4592 §3.3.1). The
    /// wildcard's answers own the question name (pointer 0xC00C), so they
    /// are copied unchanged. No allocation: the `*` name is built on the stack.
    fn closest_encloser(&self, qname: &[u8], apex_len: usize, qtype: u16) -> Option<Lookup<'_>> {
        let mut at = 0;
        while qname.len() - at > apex_len {
            at += 1 + qname[at] as usize;
            let encloser = &qname[at..];
            let Some(node) = self.names.get(encloser) else {
                continue;
            };
            if node.referral {
                return node.otherwise.as_ref().map(|r| Lookup::Answer(r.view()));
            }
            let mut wildcard = [0u8; 256];
            if encloser.len() + 2 > wildcard.len() {
                return None;
            }
            wildcard[0] = 1;
            wildcard[1] = b'*';
            wildcard[2..2 + encloser.len()].copy_from_slice(encloser);
            let node = self.names.get(&wildcard[..2 + encloser.len()])?;
            return Some(self.answer_at(node, qtype));
        }
        None
    }

    /// A SkyDNS wildcard query (CoreDNS `msg.PathWithWildcard`): a label that
    /// is `*` or `any` matches any one key segment. Answers are pre-rendered
    /// under the name spelled with `*` only, so `any` labels are rewritten on
    /// the stack (no allocation) before the lookup. A pattern nothing matches
    /// is NODATA when the name above its highest wildcard exists (CoreDNS
    /// reads that subtree and filters it down to nothing), else `None`.
    fn skydns_wildcard<'a>(
        &'a self,
        qname: &[u8],
        zone: &'a ZoneEntry,
        qtype: u16,
    ) -> Option<Lookup<'a>> {
        let relative = qname.len() - zone.apex.as_wire().len();
        let mut canonical = [0u8; 256];
        let (mut at, mut out) = (0, 0);
        let mut above = None;
        while at < relative {
            let len = qname[at] as usize;
            let label = qname.get(at + 1..at + 1 + len)?;
            if label == b"*" || label == b"any" {
                canonical[out..out + 2].copy_from_slice(&[1, b'*']);
                out += 2;
                above = Some(at + 1 + len);
            } else {
                canonical[out] = len as u8;
                canonical[out + 1..out + 1 + len].copy_from_slice(label);
                out += 1 + len;
            }
            at += 1 + len;
        }
        let above = above?;
        let apex = &qname[relative..];
        canonical[out..out + apex.len()].copy_from_slice(apex);
        out += apex.len();
        if let Some(node) = self.names.get(&canonical[..out]) {
            return Some(self.answer_at(node, qtype));
        }
        self.names
            .contains_key(&qname[above..])
            .then(|| Lookup::Answer(zone.nodata.view()))
    }

    fn answer_at<'a>(&'a self, node: &'a Node, qtype: u16) -> Lookup<'a> {
        if let Some((_, answer)) = node.answers.iter().find(|(t, _)| *t == qtype) {
            return Lookup::Answer(answer.view());
        }
        match &node.otherwise {
            Some(answer) => Lookup::Answer(answer.view()),
            None => Lookup::Answer(self.zones[node.zone as usize].nodata.view()),
        }
    }

    /// The zone file whose apex is exactly `apex` (lower-case wire), for AXFR.
    pub fn zone_file(&self, apex: &[u8]) -> Option<&crate::zonefile::ZoneFile> {
        self.zone_files
            .iter()
            .find(|z| z.apex.as_wire() == apex)
            .map(|z| &**z)
    }

    /// The geographic names.
    pub fn geo_names(&self) -> &[GeoName] {
        &self.geo
    }

    /// How many of this snapshot's name shards are shared with `other`'s,
    /// and how many it has (after an incremental build, all but the
    /// shards the change touched).
    pub fn shared_shards(&self, other: &Self) -> (usize, usize) {
        (
            self.names.shared_with(&other.names),
            self.names.shard_count(),
        )
    }

    /// The generation number, increasing with every build.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of owner names (including empty non-terminals).
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Number of resource records rendered into answers.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// The apexes of the served zones.
    pub fn zones(&self) -> impl Iterator<Item = &Name> {
        self.zones.iter().map(|z| &z.apex)
    }

    /// The apex of the closest zone enclosing a lower-case wire name.
    pub fn zone_of(&self, qname: &[u8]) -> Option<&Name> {
        self.zones
            .iter()
            .find(|z| is_within_wire(qname, z.apex.as_wire()))
            .map(|z| &z.apex)
    }
}

enum PodName {
    Address(IpAddr),
    Namespace,
}

/// Recognizes `<dashed-ip>.<ns>.pod.<zone>` and `<ns>.pod.<zone>`.
fn pod_lookup(qname: &[u8], zone: &ZoneEntry) -> Option<PodName> {
    let relative = &qname[..qname.len() - zone.apex.as_wire().len()];
    // Collect up to three labels from the left.
    let mut labels: [&[u8]; 3] = [&[]; 3];
    let mut count = 0;
    let mut at = 0;
    while at < relative.len() {
        let len = relative[at] as usize;
        if count == 3 {
            return None;
        }
        labels[count] = &relative[at + 1..at + 1 + len];
        count += 1;
        at += 1 + len;
    }
    match count {
        2 if labels[1] == b"pod" => Some(PodName::Namespace),
        3 if labels[2] == b"pod" => parse_dashed(labels[0]).map(PodName::Address),
        _ => None,
    }
}

/// Parses `10-1-2-3` or `fd00--1` (colons written as dashes, as CoreDNS does).
/// Three dashes usually mean IPv4, but an IPv6 address with two groups after
/// `::` (`fd00--1-2`) has three too, so a label that is not IPv4 is tried as IPv6.
fn parse_dashed(label: &[u8]) -> Option<IpAddr> {
    let dashes = label.iter().filter(|&&b| b == b'-').count();
    let mut text = [0u8; 63];
    let text = text.get_mut(..label.len())?;
    if dashes == 3
        && !label.contains(&b':')
        && let Some(v4) = undash(label, b'.', text).and_then(|t| t.parse::<Ipv4Addr>().ok())
    {
        return Some(IpAddr::V4(v4));
    }
    undash(label, b':', text)
        .and_then(|t| t.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// Copies `label` into `text` with every `-` replaced (no allocation).
fn undash<'t>(label: &[u8], replacement: u8, text: &'t mut [u8]) -> Option<&'t str> {
    for (d, &s) in text.iter_mut().zip(label) {
        *d = if s == b'-' { replacement } else { s };
    }
    std::str::from_utf8(text).ok()
}

// === impl PodAnswer ===

impl PodAnswer {
    /// The synthesized address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Writes the single A or AAAA record into `scratch` and returns the view.
    pub fn render<'a>(&self, scratch: &'a mut [u8; 32]) -> AnswerView<'a> {
        let (rr_type, octets_len) = match self.address {
            IpAddr::V4(_) => (rtype::A, 4),
            IpAddr::V6(_) => (rtype::AAAA, 16),
        };
        scratch[..2].copy_from_slice(&[0xc0, 0x0c]);
        scratch[2..4].copy_from_slice(&rr_type.to_be_bytes());
        scratch[4..6].copy_from_slice(&signpost_proto::CLASS_IN.to_be_bytes());
        scratch[6..10].copy_from_slice(&self.ttl.to_be_bytes());
        scratch[10..12].copy_from_slice(&(octets_len as u16).to_be_bytes());
        match self.address {
            IpAddr::V4(v4) => scratch[12..16].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => scratch[12..28].copy_from_slice(&v6.octets()),
        }
        let len = 12 + octets_len;
        AnswerView {
            rcode: rcode::NOERROR,
            authoritative: true,
            answer_count: 1,
            authority_count: 0,
            additional_count: 0,
            required_len: len as u32,
            body: &scratch[..len],
        }
    }
}
