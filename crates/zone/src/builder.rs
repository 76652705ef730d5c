//! Building a [`Snapshot`] from records (control plane; allocates freely).

use crate::snapshot::{Node, PodMode, Snapshot, ZoneEntry};
use rustc_hash::FxHashMap;
use signpost_proto::{Name, RecordWriter, Rendered, rcode, rdata, rtype};
use std::collections::{BTreeMap, BTreeSet};

/// How a zone is set up.
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

/// Collects zones and records, then renders every answer once.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    zones: Vec<ZoneSettings>,
    records: BTreeMap<Name, BTreeMap<u16, RrSet>>,
    generation: u64,
}

/// Longest CNAME chain followed inside the served data.
const MAX_CHAIN: usize = 8;

/// A type no name has: renders the answer for "any other type" at a CNAME.
const OTHER_TYPE: u16 = 0xff00;

// === impl SnapshotBuilder ===

impl SnapshotBuilder {
    /// A builder for the snapshot with the given generation number.
    pub fn new(generation: u64) -> Self {
        Self {
            generation,
            ..Self::default()
        }
    }

    /// Adds a zone with its SOA and NS records at the apex.
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
        self.zones.push(settings);
        self.insert(apex.clone(), rtype::SOA, ttl, soa);
        self.insert(apex, rtype::NS, ttl, ns);
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

    /// Renders every answer and returns the snapshot.
    pub fn build(mut self) -> Snapshot {
        self.zones
            .sort_by_key(|z| std::cmp::Reverse(z.apex.as_wire().len()));
        let zones: Vec<ZoneEntry> = self
            .zones
            .iter()
            .map(|settings| {
                let negative = self.negative_authority(settings);
                let none = RecordWriter::new();
                ZoneEntry {
                    apex: settings.apex.clone(),
                    nxdomain: Rendered::new(rcode::NXDOMAIN, true, &none, &negative, &none),
                    nodata: Rendered::new(rcode::NOERROR, true, &none, &negative, &none),
                    fallthrough: settings.fallthrough.clone(),
                    pods: settings.pods,
                    ttl: settings.ttl,
                }
            })
            .collect();

        let mut names: FxHashMap<Box<[u8]>, Node> = FxHashMap::default();
        names.reserve(self.records.len() * 2);
        let mut record_count = 0;
        for (owner, sets) in &self.records {
            let Some(zone) = self.zone_index(owner) else {
                continue;
            };
            record_count += sets.values().map(|s| s.rdatas.len()).sum::<usize>();
            let mut answers: Vec<(u16, Rendered)> = Vec::with_capacity(sets.len() + 1);
            let mut otherwise = None;
            if sets.is_empty() {
                // An explicitly empty name: NODATA for every type.
            } else if sets.contains_key(&rtype::CNAME) {
                answers.push((rtype::CNAME, self.render(owner, rtype::CNAME)));
                for qtype in self.chain_types(owner) {
                    answers.push((qtype, self.render(owner, qtype)));
                }
                otherwise = Some(self.render(owner, OTHER_TYPE));
            } else {
                for &qtype in sets.keys() {
                    answers.push((qtype, self.render(owner, qtype)));
                }
                answers.push((rtype::ANY, self.render_any(owner, sets)));
            }
            names.insert(
                owner.as_wire().into(),
                Node {
                    zone: zone as u16,
                    answers: answers.into_boxed_slice(),
                    otherwise,
                },
            );
            // Empty non-terminals between the owner and its apex answer NODATA.
            let apex = &self.zones[zone].apex;
            let mut parent = owner.parent();
            while let Some(name) = parent {
                if !name.is_within(apex)
                    || names.contains_key(name.as_wire())
                    || self.records.contains_key(&name)
                {
                    break;
                }
                let node = Node {
                    zone: zone as u16,
                    answers: Box::new([]),
                    otherwise: None,
                };
                names.insert(name.as_wire().into(), node);
                parent = name.parent();
            }
        }
        Snapshot {
            zones,
            names,
            generation: self.generation,
            record_count,
        }
    }

    /// The SOA for negative answers: TTL = min(SOA TTL, MINIMUM) (RFC 2308 §3).
    fn negative_authority(&self, settings: &ZoneSettings) -> RecordWriter {
        let mut authority = RecordWriter::new();
        if let Some(set) = self
            .records
            .get(&settings.apex)
            .and_then(|s| s.get(&rtype::SOA))
        {
            for data in &set.rdatas {
                authority.record(
                    Some(&settings.apex),
                    rtype::SOA,
                    set.ttl.min(settings.minimum),
                    data,
                );
            }
        }
        authority
    }

    /// Types worth pre-rendering at a CNAME: those the end of its chain holds.
    fn chain_types(&self, owner: &Name) -> Vec<u16> {
        let mut current = owner.clone();
        for _ in 0..MAX_CHAIN {
            let Some(sets) = self.records.get(&current) else {
                break;
            };
            match sets.get(&rtype::CNAME) {
                Some(set) => match set.rdatas.first().and_then(|d| Name::from_wire(d)) {
                    Some(next) => current = next,
                    None => break,
                },
                None => return sets.keys().copied().chain([rtype::ANY]).collect(),
            }
        }
        Vec::new()
    }

    /// Renders the answer for `owner` and `qtype`, following CNAMEs inside the
    /// served data (RFC 1034 §4.3.2 step 3a); the RCODE describes the last name
    /// of the chain (RFC 6604 §2).
    fn render(&self, owner: &Name, qtype: u16) -> Rendered {
        let mut answer = RecordWriter::new();
        let mut authority = RecordWriter::new();
        let mut additional = RecordWriter::new();
        let mut current = owner.clone();
        let mut code = rcode::NOERROR;
        for hop in 0..MAX_CHAIN {
            let owner_ref = if hop == 0 { None } else { Some(&current) };
            let Some(sets) = self.records.get(&current) else {
                // The chain left the data: NXDOMAIN when the target is in one of
                // our zones (and is not a fall-through one), else just the CNAMEs.
                if let Some(zone) = self.zone_index(&current).map(|i| &self.zones[i]) {
                    let falls_through = zone.fallthrough.iter().any(|f| current.is_within(f));
                    if !falls_through && !self.is_empty_non_terminal(&current) {
                        code = rcode::NXDOMAIN;
                    }
                    authority = self.negative_authority(zone);
                }
                break;
            };
            if let Some(set) = sets.get(&qtype) {
                for data in &set.rdatas {
                    answer.record(owner_ref, qtype, set.ttl, data);
                    self.add_additional(qtype, data, &mut additional);
                }
                break;
            }
            if let (Some(set), true) = (sets.get(&rtype::CNAME), qtype != rtype::CNAME) {
                let Some(data) = set.rdatas.first() else {
                    break;
                };
                answer.record(owner_ref, rtype::CNAME, set.ttl, data);
                match Name::from_wire(data) {
                    Some(next) => current = next,
                    None => break,
                }
                continue;
            }
            if let Some(zone) = self.zone_index(&current).map(|i| &self.zones[i]) {
                authority = self.negative_authority(zone);
            }
            break;
        }
        Rendered::new(code, true, &answer, &authority, &additional)
    }

    fn is_empty_non_terminal(&self, name: &Name) -> bool {
        // Linear, but only reached for a CNAME whose in-zone target is missing.
        self.records
            .keys()
            .any(|other| other != name && other.is_within(name))
    }

    /// RFC 8482 allows a subset; signpost answers ANY with every RRset it has.
    fn render_any(&self, _owner: &Name, sets: &BTreeMap<u16, RrSet>) -> Rendered {
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
    /// targets and name servers when they are in the served data.
    fn add_additional(&self, rr_type: u16, data: &[u8], additional: &mut RecordWriter) {
        let target = match rr_type {
            rtype::SRV => data.get(6..).and_then(Name::from_wire),
            rtype::NS => Name::from_wire(data),
            rtype::MX => data.get(2..).and_then(Name::from_wire),
            _ => None,
        };
        let Some(target) = target else { return };
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
