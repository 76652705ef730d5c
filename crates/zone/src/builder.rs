//! Building a [`Snapshot`] from records (control plane; allocates freely).
//!
//! Every answer the snapshot can give is rendered here once, following
//! RFC 1034 §4.3.2: the RRset itself, CNAME chains inside the zone (step 3a),
//! referrals at and below zone cuts with glue (step 3b, AA clear), wildcard
//! nodes (step 3c; RFC 4592 — the query side finds them), additional-section
//! addresses for NS, MX and SRV targets (step 6), and negative answers with
//! the zone's SOA (RFC 2308).

use crate::snapshot::{GeoName, GeoRegion, Node, PodMode, Snapshot, ZoneEntry};
use rustc_hash::FxHashMap;
use signpost_proto::{Name, RecordWriter, Rendered, rcode, rdata, rtype};
use std::collections::{BTreeMap, BTreeSet};

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

#[derive(Debug, Default)]
struct RrSet {
    ttl: u32,
    rdatas: BTreeSet<Box<[u8]>>,
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
    owner: Name,
    answers: Vec<(u16, Rendered)>,
    otherwise: Option<Rendered>,
}

/// Collects zones and records, then renders every answer once.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    zones: Vec<ZoneDef>,
    geo_names: Vec<(Name, u32, Vec<GeoRegion>)>,
    zone_files: Vec<std::sync::Arc<crate::zonefile::ZoneFile>>,
    records: BTreeMap<Name, BTreeMap<u16, RrSet>>,
    rendered: Vec<RenderedName>,
    rendered_records: usize,
    generation: u64,
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
    Sets(&'a BTreeMap<u16, RrSet>),
    /// The name is at or below this zone cut.
    Referral(Name),
    /// The name exists only as an empty non-terminal.
    Empty,
    /// The name does not exist.
    Missing,
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
        self.zones.push(ZoneDef {
            apex: settings.apex,
            ttl,
            fallthrough: settings.fallthrough,
            pods: settings.pods,
            soa: None,
        });
        self.insert(apex.clone(), rtype::SOA, ttl, soa);
        self.insert(apex, rtype::NS, ttl, ns);
    }

    /// Adds a zone whose records, SOA and NS included, come from a zone file.
    pub fn add_file_zone(&mut self, apex: Name, fallthrough: Vec<Name>) {
        self.zones.push(ZoneDef {
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
        self.zones.push(ZoneDef {
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
        self.rendered.push(RenderedName {
            owner,
            answers,
            otherwise,
        });
    }

    /// Counts records a rendered zone serves (for `signpost_snapshot_records`).
    pub fn count_rendered_records(&mut self, count: usize) {
        self.rendered_records += count;
    }

    /// Adds a geographic name: its A and AAAA answers are chosen per query
    /// among `regions` (the name itself must exist, see [`Self::add_empty_name`]).
    pub fn add_geo_name(&mut self, name: Name, ttl: u32, regions: Vec<GeoRegion>) {
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
        if self.zone_index(&owner).is_none() {
            return Err(BuildError::OutOfZone(owner));
        }
        if let Some(sets) = self.records.get(&owner) {
            let has_cname = sets.contains_key(&rtype::CNAME);
            if (rr_type == rtype::CNAME && sets.keys().any(|&t| t != rtype::CNAME))
                || (rr_type != rtype::CNAME && has_cname)
            {
                return Err(BuildError::CnameAndOtherData(owner));
            }
        }
        self.insert(owner, rr_type, ttl, data);
        Ok(())
    }

    /// Makes a name exist without records, so it answers NODATA rather than
    /// NXDOMAIN (for example `<namespace>.svc.<zone>` of a namespace whose only
    /// service has no ready endpoints).
    pub fn add_empty_name(&mut self, owner: Name) -> Result<(), BuildError> {
        if self.zone_index(&owner).is_none() {
            return Err(BuildError::OutOfZone(owner));
        }
        self.records.entry(owner).or_default();
        Ok(())
    }

    /// True when a name has records of any type.
    pub fn contains(&self, owner: &Name) -> bool {
        self.records.contains_key(owner)
    }

    fn insert(&mut self, owner: Name, rr_type: u16, ttl: u32, data: Vec<u8>) {
        let set = self
            .records
            .entry(owner)
            .or_default()
            .entry(rr_type)
            .or_insert_with(|| RrSet {
                ttl,
                rdatas: BTreeSet::new(),
            });
        set.ttl = set.ttl.min(ttl);
        set.rdatas.insert(data.into_boxed_slice());
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
        let mut cut = None;
        let mut current = Some(name.clone());
        while let Some(candidate) = current {
            if candidate == *apex || !candidate.is_within(apex) {
                break;
            }
            if self
                .records
                .get(&candidate)
                .is_some_and(|sets| sets.contains_key(&rtype::NS))
            {
                cut = Some(candidate.clone());
            }
            current = candidate.parent();
        }
        cut
    }

    /// Resolves a name inside its zone: its own data, a referral, an empty
    /// non-terminal, a wildcard's data (RFC 4592 §3.3.1), or nothing.
    fn find(&self, name: &Name, apex: &Name, descendants: &BTreeSet<Name>) -> Found<'_> {
        if let Some(cut) = self.cut_of(name, apex) {
            return Found::Referral(cut);
        }
        if let Some(sets) = self.records.get(name) {
            return Found::Sets(sets);
        }
        if descendants.contains(name) {
            return Found::Empty;
        }
        // The closest encloser is the longest existing ancestor; only its
        // `*` child may synthesize an answer.
        let mut ancestor = name.parent();
        while let Some(encloser) = ancestor {
            if !encloser.is_within(apex) {
                break;
            }
            if self.records.contains_key(&encloser) || descendants.contains(&encloser) {
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
        self.zones
            .sort_by_key(|z| std::cmp::Reverse(z.apex.as_wire().len()));
        // Every proper ancestor of an owner inside its zone exists (empty non-terminals).
        let mut descendants: BTreeSet<Name> = BTreeSet::new();
        for owner in self.records.keys() {
            let Some(zone) = self.zone_index(owner) else {
                continue;
            };
            let mut parent = owner.parent();
            while let Some(name) = parent {
                if !name.is_within(&self.zones[zone].apex) || !descendants.insert(name.clone()) {
                    break;
                }
                parent = name.parent();
            }
        }
        let zones: Vec<ZoneEntry> = self
            .zones
            .iter()
            .map(|zone| {
                let negative = self.negative_authority(&zone.apex);
                let none = RecordWriter::new();
                let has_wildcards_or_cuts = self.records.iter().any(|(name, sets)| {
                    name.is_within(&zone.apex)
                        && (name.first_label() == Some(b"*")
                            || (name != &zone.apex && sets.contains_key(&rtype::NS)))
                });
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
            .collect();

        let mut names: FxHashMap<Box<[u8]>, Node> = FxHashMap::default();
        names.reserve(self.records.len() + descendants.len());
        let mut record_count = 0;
        let all_names: BTreeSet<&Name> = self.records.keys().chain(descendants.iter()).collect();
        for owner in all_names {
            let Some(zone) = self.zone_index(owner) else {
                continue;
            };
            let apex = &self.zones[zone].apex;
            let sets = self.records.get(owner);
            record_count +=
                sets.map_or(0, |s| s.values().map(|set| set.rdatas.len()).sum::<usize>());
            let node = match self.cut_of(owner, apex) {
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
                None => self.render_node(owner, sets, apex, &descendants, zone),
            };
            names.insert(owner.as_wire().into(), node);
        }
        record_count += self.rendered_records;
        for rendered in std::mem::take(&mut self.rendered) {
            let Some(zone) = self.zone_index(&rendered.owner) else {
                continue;
            };
            names
                .entry(rendered.owner.as_wire().into())
                .or_insert_with(|| Node {
                    zone: zone as u16,
                    answers: rendered.answers.into_boxed_slice(),
                    otherwise: rendered.otherwise,
                    referral: false,
                    geo: None,
                });
        }
        let mut geo = Vec::with_capacity(self.geo_names.len());
        for (name, ttl, regions) in &self.geo_names {
            let Some(node) = names.get_mut(name.as_wire()) else {
                continue;
            };
            node.geo = Some(geo.len() as u32);
            let apex = self
                .zone_index(name)
                .map_or_else(Name::root, |z| self.zones[z].apex.clone());
            geo.push(self.render_geo(name, *ttl, regions, &apex));
        }
        Snapshot {
            zones,
            names,
            generation: self.generation,
            record_count,
            zone_files: self.zone_files,
            geo,
        }
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
        sets: Option<&BTreeMap<u16, RrSet>>,
        apex: &Name,
        descendants: &BTreeSet<Name>,
        zone: usize,
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
                    self.render(owner, rtype::CNAME, apex, descendants),
                ));
                for qtype in self.chain_types(owner, apex, descendants) {
                    answers.push((qtype, self.render(owner, qtype, apex, descendants)));
                }
                otherwise = Some(self.render(owner, OTHER_TYPE, apex, descendants));
            }
            Some(sets) => {
                for &qtype in sets.keys() {
                    answers.push((qtype, self.render(owner, qtype, apex, descendants)));
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
            for data in &set.rdatas {
                let minimum = data
                    .get(data.len().saturating_sub(4)..)
                    .and_then(|m| <[u8; 4]>::try_from(m).ok())
                    .map_or(set.ttl, u32::from_be_bytes);
                authority.record(Some(apex), rtype::SOA, set.ttl.min(minimum), data);
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
            for data in &set.rdatas {
                authority.record(Some(cut), rtype::NS, set.ttl, data);
                if let Some(zone) = self.zone_index(cut) {
                    self.add_additional(rtype::NS, data, &self.zones[zone].apex, additional);
                }
            }
        }
    }

    /// Types worth pre-rendering at a CNAME: those the end of its chain holds.
    fn chain_types(&self, owner: &Name, apex: &Name, descendants: &BTreeSet<Name>) -> Vec<u16> {
        let mut current = owner.clone();
        for _ in 0..MAX_CHAIN {
            let Found::Sets(sets) = self.find(&current, apex, descendants) else {
                break;
            };
            match sets.get(&rtype::CNAME) {
                Some(set) => match set
                    .rdatas
                    .first()
                    .and_then(|d| Name::from_wire(&lowercase(d)))
                {
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
    fn render(
        &self,
        owner: &Name,
        qtype: u16,
        apex: &Name,
        descendants: &BTreeSet<Name>,
    ) -> Rendered {
        let mut answer = RecordWriter::new();
        let mut authority = RecordWriter::new();
        let mut additional = RecordWriter::new();
        let mut current = owner.clone();
        let mut code = rcode::NOERROR;
        for hop in 0..MAX_CHAIN {
            let owner_ref = if hop == 0 { None } else { Some(&current) };
            let sets = match self.find(&current, apex, descendants) {
                Found::Sets(sets) => sets,
                Found::Referral(cut) => {
                    self.write_referral(&cut, &mut authority, &mut additional);
                    break;
                }
                Found::Empty => {
                    authority = self.negative_authority(apex);
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
                    break;
                }
            };
            if let Some(set) = sets.get(&qtype) {
                for data in &set.rdatas {
                    answer.record(owner_ref, qtype, set.ttl, data);
                    self.add_additional(qtype, data, apex, &mut additional);
                }
                break;
            }
            if let (Some(set), true) = (sets.get(&rtype::CNAME), qtype != rtype::CNAME) {
                let Some(data) = set.rdatas.first() else {
                    break;
                };
                answer.record(owner_ref, rtype::CNAME, set.ttl, data);
                match Name::from_wire(&lowercase(data)) {
                    // Only names in this zone are followed; the client resolves the rest.
                    Some(next) if next.is_within(apex) => current = next,
                    _ => break,
                }
                continue;
            }
            authority = self.negative_authority(apex);
            break;
        }
        Rendered::new(code, true, &answer, &authority, &additional)
    }

    /// RFC 8482 allows a subset; signpost answers ANY with every RRset it has.
    fn render_any(&self, sets: &BTreeMap<u16, RrSet>) -> Rendered {
        let mut answer = RecordWriter::new();
        for (&rr_type, set) in sets {
            for data in &set.rdatas {
                answer.record(None, rr_type, set.ttl, data);
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
        let Some(sets) = self.records.get(&target) else {
            return;
        };
        for address_type in [rtype::A, rtype::AAAA] {
            if let Some(set) = sets.get(&address_type) {
                for address in &set.rdatas {
                    additional.record(Some(&target), address_type, set.ttl, address);
                }
            }
        }
    }
}

/// Wire-format names in zone-file RDATA keep their case; lookups use lower case.
fn lowercase(wire: &[u8]) -> Vec<u8> {
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
    out
}
