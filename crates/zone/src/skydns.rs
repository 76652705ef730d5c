//! SkyDNS records (CoreDNS's `etcd` plugin) compiled into pre-rendered answers.
//!
//! Control plane. CoreDNS reads etcd on every query: the key of a name is the
//! path prefix followed by its labels reversed (`x1.skydns.local.` under
//! `/skydns` is `/skydns/local/skydns/x1`), a lookup returns every key at or
//! below that key (the *subtree*), and the answer is made from the JSON
//! values found (`host`, `port`, `priority`, `weight`, `text`, `mail`, `ttl`,
//! `targetstrip`, `group`). signpost keeps the whole subtree of a source in
//! memory instead and renders, at compile time, every answer a query can get:
//! one node per name that has a key at or below it, plus one per wildcard
//! pattern (`*` or `any` labels) that matches a key, so the query path stays
//! a hash lookup and a copy.
//!
//! ```text
//! etcd key ─SkyRecord::parse─▶ SkyRecord ─compile─▶ SnapshotBuilder::add_rendered_name (names, patterns)
//! ```
//!
//! Semantics follow CoreDNS v1.14.7 (`plugin/etcd`, `plugin/backend_lookup.go`):
//! subtree reads with the exact key as fallback, the group filter, SRV
//! weights, CNAME chains inside the zone (10 hops), `apex.dns` and `ns.dns`,
//! the SOA of every zone (TTL 30, `ns.dns.<zone>`, `hostmaster.<zone>`).
//! Where signpost differs it says so at the line: a CNAME to a name outside
//! the zone is answered with the CNAME alone (the client's resolver follows
//! it, instead of the server asking itself), a leased key's TTL is its lease's
//! granted TTL (not the time left), the SOA serial is the build time, and
//! wildcard labels count only in the first four labels below the zone.
//!
//! Invariant: compiling never fails; a value that is not a SkyDNS record was
//! refused by [`SkyRecord::parse`] before it got here.

use crate::builder::SnapshotBuilder;
use serde::Deserialize;
use signpost_proto::{Name, RecordWriter, Rendered, rcode, rdata, rtype};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The SOA and negative TTL of every SkyDNS zone (CoreDNS: `minTTL` 30).
pub const SOA_TTL: u32 = 30;
/// A record's TTL when neither its value nor a lease gives one.
pub const DEFAULT_TTL: u32 = 300;
/// A record's SRV priority and MX preference when its value gives none.
pub const DEFAULT_PRIORITY: u16 = 10;
/// Lowest TTL a lease gives a record (CoreDNS `min-lease-ttl` default).
pub const DEFAULT_MIN_LEASE_TTL: u32 = 30;
/// Highest TTL a lease gives a record (CoreDNS `max-lease-ttl` default).
pub const DEFAULT_MAX_LEASE_TTL: u32 = 86400;
/// Longest CNAME chain followed (CoreDNS `maxCnameChainLength`).
const MAX_CHAIN: usize = 10;
/// Wildcard labels count in this many labels below the zone apex: each key
/// yields at most 2^4 - 1 patterns per depth, so the rendered patterns grow
/// linearly with the number of keys.
pub const WILDCARD_DEPTH: usize = 4;
/// Records visited while rendering one answer, at most: bounds the work of
/// CNAME fan-out (each hop may lead to several names).
const WORK_BUDGET: usize = 100_000;

/// One etcd key under the path prefix, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkyRecord {
    /// The key without the path prefix and its slash: the name's labels
    /// reversed, joined by `/` (`local/skydns/x1`); a key ending in `/` keeps
    /// it (`local/skydns/`) and belongs to the subtree of its parent name.
    pub path: String,
    /// What `host` holds.
    pub host: SkyHost,
    /// SRV port; `-1` means "no SRV record".
    pub port: i32,
    /// SRV priority and MX preference (0 becomes 10 when answering).
    pub priority: u16,
    /// SRV weight input (0 counts as 100).
    pub weight: u16,
    /// TXT data.
    pub text: String,
    /// An MX candidate.
    pub mail: bool,
    /// TTL in seconds (0: none given).
    pub ttl: u32,
    /// Leftmost labels stripped from a synthesized SRV, MX or NS target.
    pub target_strip: usize,
    /// Entries at different depths of a subtree with different groups exclude each other.
    pub group: String,
    /// The granted TTL of the key's lease, if it has one.
    pub lease_ttl: Option<u32>,
}

/// The `host` field: an address, a name, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkyHost {
    /// No host (a text-only record).
    None,
    /// An IPv4 address (an IPv4-mapped IPv6 literal counts as IPv4, as Go's `To4`).
    V4(Ipv4Addr),
    /// An IPv6 address.
    V6(Ipv6Addr),
    /// A domain name (CNAME, SRV, MX and PTR target).
    Name(Name),
}

/// Why an etcd key or value is not a SkyDNS record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SkyError {
    /// The key is not below the path prefix, or a segment cannot be a label.
    #[error("key is not a name under the path: {0}")]
    Key(String),
    /// The value is not JSON of the SkyDNS record shape (unknown fields included).
    #[error("value is not a SkyDNS record: {0}")]
    Json(#[source] serde_json::Error),
    /// `host` is neither an IP address nor a domain name.
    #[error("host {0:?} is neither an IP address nor a domain name")]
    Host(String),
    /// A number is outside what its record field holds.
    #[error("{field} {value} is out of range")]
    Range {
        /// The JSON field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
}

/// The JSON value as CoreDNS's `msg.Service` reads it; `owner` is what
/// external-dns's `coredns` provider adds with strict ownership (ignored).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    host: Option<String>,
    port: Option<i64>,
    priority: Option<i64>,
    weight: Option<i64>,
    text: Option<String>,
    mail: Option<bool>,
    ttl: Option<u32>,
    targetstrip: Option<i64>,
    group: Option<String>,
    #[serde(rename = "owner")]
    _owner: Option<serde::de::IgnoredAny>,
}

/// How a `etcd` plugin's records become answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkyOptions {
    /// Zones it answers for.
    pub zones: Vec<Name>,
    /// Names below these that do not exist go to the next plugin.
    pub fallthrough: Vec<Name>,
    /// Lowest TTL a lease gives (CoreDNS `min-lease-ttl`, default 30).
    pub min_lease_ttl: u32,
    /// Highest TTL a lease gives (CoreDNS `max-lease-ttl`, default 86400).
    pub max_lease_ttl: u32,
}

// === impl SkyRecord ===

impl SkyRecord {
    /// Decodes one key and value. `prefix` is the path with a leading and a
    /// trailing slash (`/skydns/`); `lease_ttl` is the granted TTL of the
    /// key's lease.
    pub fn parse(
        prefix: &str,
        key: &str,
        value: &[u8],
        lease_ttl: Option<u32>,
    ) -> Result<Self, SkyError> {
        let path = parse_key(prefix, key)?;
        let raw: RawService = serde_json::from_slice(value).map_err(SkyError::Json)?;
        let host = match raw.host.as_deref().unwrap_or_default() {
            "" => SkyHost::None,
            text => parse_host(text).ok_or_else(|| SkyError::Host(text.to_owned()))?,
        };
        let range = |field: &'static str, value: Option<i64>, low: i64, high: i64| {
            let value = value.unwrap_or_default();
            if (low..=high).contains(&value) {
                Ok(value)
            } else {
                Err(SkyError::Range { field, value })
            }
        };
        Ok(Self {
            path,
            host,
            port: range("port", raw.port, -1, 65535)? as i32,
            priority: range("priority", raw.priority, 0, 65535)? as u16,
            weight: range("weight", raw.weight, 0, 65535)? as u16,
            text: raw.text.unwrap_or_default(),
            mail: raw.mail.unwrap_or_default(),
            ttl: raw.ttl.unwrap_or_default(),
            target_strip: range("targetstrip", raw.targetstrip, 0, 255)? as usize,
            group: raw.group.unwrap_or_default(),
            lease_ttl,
        })
    }

    /// Depth in the key tree (CoreDNS counts the slashes of the key).
    fn depth(&self) -> usize {
        self.path.matches('/').count()
    }

    /// What the record is for a query (CoreDNS `HostType`): an address, a
    /// name to follow, or text.
    fn kind(&self) -> Kind<'_> {
        match &self.host {
            SkyHost::V4(address) => Kind::A(*address),
            SkyHost::V6(address) => Kind::Aaaa(*address),
            SkyHost::Name(name) if self.text.is_empty() => Kind::Cname(name),
            SkyHost::Name(_) | SkyHost::None => Kind::Txt,
        }
    }

    /// The name the key spells (`local/skydns/x1` → `x1.skydns.local.`),
    /// CoreDNS `msg.Domain`: synthesized SRV, MX and NS targets.
    fn key_name(&self) -> Option<Name> {
        path_name(self.path.strip_suffix('/').unwrap_or(&self.path))
    }
}

/// What a record answers, by CoreDNS's `HostType`.
enum Kind<'a> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(&'a Name),
    Txt,
}

/// The key below `prefix`, checked to be reversed labels: lower case (CoreDNS
/// lower-cases the query name, so other keys never match), no empty segment
/// except a trailing one, no dots, at most 63 bytes each.
fn parse_key(prefix: &str, key: &str) -> Result<String, SkyError> {
    let invalid = |why: &str| SkyError::Key(format!("{key:?}: {why}"));
    let path = key
        .strip_prefix(prefix)
        .ok_or_else(|| invalid("not under the path"))?;
    let body = path.strip_suffix('/').unwrap_or(path);
    if body.is_empty() {
        return Err(invalid("names no domain"));
    }
    for segment in body.split('/') {
        if segment.is_empty() {
            return Err(invalid("empty segment"));
        }
        if segment.len() > 63 || segment.contains('.') {
            return Err(invalid("segment is not a DNS label"));
        }
        if segment.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("upper-case letters (keys must be lower case)"));
        }
    }
    if path_name(body).is_none() {
        return Err(invalid("name longer than 255 bytes"));
    }
    Ok(path.to_owned())
}

/// An IP address (Go's `net.ParseIP`) or a host name of letters, digits,
/// `-` and `_` (a trailing dot optional).
fn parse_host(text: &str) -> Option<SkyHost> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(match address {
            IpAddr::V4(v4) => SkyHost::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SkyHost::V4(v4),
                None => SkyHost::V6(v6),
            },
        });
    }
    let body = text.strip_suffix('.').unwrap_or(text);
    let valid = !body.is_empty()
        && body.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return None;
    }
    Name::from_ascii(body).ok().map(SkyHost::Name)
}

/// The name of a key path (`local/skydns/x1` → `x1.skydns.local.`).
fn path_name(path: &str) -> Option<Name> {
    if path.is_empty() {
        return Some(Name::root());
    }
    let labels: Vec<&str> = path.split('/').rev().collect();
    Name::from_ascii(&labels.join(".")).ok()
}

/// The key path of a name (`x1.skydns.local.` → `local/skydns/x1`).
fn name_path(name: &Name) -> String {
    let labels: Vec<String> = name
        .labels()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    labels.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The SOA of a SkyDNS zone (CoreDNS `plugin.SOA`): TTL and RDATA.
pub fn zone_soa(apex: &Name, serial: u32) -> (u32, Vec<u8>) {
    let mname = Name::from_ascii("ns.dns")
        .ok()
        .and_then(|n| join(&n, apex))
        .unwrap_or_else(|| apex.clone());
    let rname = apex.child("hostmaster").unwrap_or_else(|_| apex.clone());
    let soa = rdata::soa(&mname, &rname, serial, [7200, 1800, 86400, SOA_TTL]);
    (SOA_TTL, soa)
}

/// `prefix.suffix` for a relative `prefix` written as an absolute name.
fn join(prefix: &Name, suffix: &Name) -> Option<Name> {
    let mut wire = prefix.as_wire()[..prefix.as_wire().len() - 1].to_vec();
    wire.extend_from_slice(suffix.as_wire());
    Name::from_wire(&wire)
}

/// Compiles one `etcd` plugin's records into `builder`: a rendered zone per
/// plugin zone, a node per name with a key at or below it, and a node per
/// wildcard pattern that matches a key. Returns how many names and patterns
/// were rendered.
pub fn compile(
    builder: &mut SnapshotBuilder,
    records: &[SkyRecord],
    options: &SkyOptions,
    serial: u32,
) -> usize {
    let mut sorted: Vec<&SkyRecord> = records.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    sorted.dedup_by(|a, b| a.path == b.path);
    let mut rendered = 0;
    for zone in &options.zones {
        let soa = zone_soa(zone, serial);
        let compiler = ZoneCompiler {
            records: &sorted,
            options,
            zone,
            zone_path: name_path(zone),
            soa: soa.clone(),
            work: std::cell::Cell::new(0),
        };
        builder.add_rendered_zone(zone.clone(), soa, options.fallthrough.clone());
        let deeper: Vec<&Name> = options
            .zones
            .iter()
            .filter(|z| *z != zone && z.is_within(zone))
            .collect();
        let (names, patterns, in_zone) = compiler.names(&deeper);
        builder.count_rendered_records(in_zone);
        for path in names {
            let Some(name) = path_name(&path) else {
                continue;
            };
            let (answers, otherwise) = compiler.render_name(&name, &path);
            builder.add_rendered_name(name, answers, otherwise);
            rendered += 1;
        }
        for (pattern, matched) in patterns {
            let Some(name) = path_name(&pattern) else {
                continue;
            };
            let matched: Vec<&SkyRecord> = matched.iter().map(|&i| sorted[i]).collect();
            let answers = compiler.render_pattern(&name, &pattern, &matched);
            builder.add_rendered_name(name, answers, None);
            rendered += 1;
        }
    }
    rendered
}

/// Renders the answers of one zone.
struct ZoneCompiler<'a> {
    /// Every record of the source, sorted by path (etcd's key order).
    records: &'a [&'a SkyRecord],
    options: &'a SkyOptions,
    zone: &'a Name,
    zone_path: String,
    soa: (u32, Vec<u8>),
    work: std::cell::Cell<usize>,
}

/// A record as one answer uses it: with its effective TTL and priority.
#[derive(Clone, Copy)]
struct Service<'a> {
    record: &'a SkyRecord,
    ttl: u32,
    priority: u16,
}

/// One resource record of an answer; `owner` `None` is the question name.
#[derive(Clone, PartialEq, Eq)]
struct Rr {
    owner: Option<Name>,
    rtype: u16,
    ttl: u32,
    rdata: Vec<u8>,
}

/// Why a lookup has no records (CoreDNS: a name error, or any other error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No key at or below the name: NXDOMAIN.
    NameError,
    /// The data cannot be answered (an NS record with a name host): SERVFAIL.
    ServerFailure,
}

/// The answer and additional sections of one lookup.
type Sections = (Vec<Rr>, Vec<Rr>);

// === impl ZoneCompiler ===

impl<'a> ZoneCompiler<'a> {
    /// The names to render (paths of every name with a key at or below it,
    /// the apex included), the wildcard patterns with the records they
    /// match, and the number of records in the zone.
    #[allow(clippy::type_complexity)]
    fn names(&self, deeper: &[&Name]) -> (BTreeSet<String>, BTreeMap<String, Vec<usize>>, usize) {
        let mut names = BTreeSet::new();
        let mut patterns: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        names.insert(self.zone_path.clone());
        let zone_segments = if self.zone_path.is_empty() {
            0
        } else {
            self.zone_path.split('/').count()
        };
        let mut in_zone = 0;
        for (index, record) in self.records.iter().enumerate() {
            let inside = self.zone_path.is_empty()
                || record.path == self.zone_path
                || record.path.starts_with(&format!("{}/", self.zone_path));
            if !inside {
                continue;
            }
            in_zone += 1;
            let segments: Vec<&str> = record.path.split('/').collect();
            let relative = &segments[zone_segments..];
            // The record's own name (a trailing-slash key: its parent) and
            // every ancestor down from the apex, up to the first label a query
            // would read as a wildcard.
            let named = relative
                .iter()
                .take_while(|s| !s.is_empty() && !is_wildcard(s))
                .count();
            let mut path = self.zone_path.clone();
            for segment in &relative[..named] {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(segment);
                if let Some(name) = path_name(&path)
                    && deeper.iter().any(|d| name.is_within(d))
                {
                    break;
                }
                names.insert(path.clone());
            }
            for length in 1..=relative.len() {
                let positions = length.min(WILDCARD_DEPTH);
                for mask in 1u32..(1 << positions) {
                    let mut pattern = Vec::with_capacity(length);
                    let mut queryable = true;
                    for (position, segment) in relative[..length].iter().enumerate() {
                        if position < positions && mask & (1 << position) != 0 {
                            pattern.push("*");
                        } else if segment.is_empty() || is_wildcard(segment) {
                            queryable = false;
                            break;
                        } else {
                            pattern.push(segment);
                        }
                    }
                    if !queryable {
                        continue;
                    }
                    let mut path = self.zone_path.clone();
                    for segment in pattern {
                        if !path.is_empty() {
                            path.push('/');
                        }
                        path.push_str(segment);
                    }
                    if let Some(name) = path_name(&path)
                        && deeper.iter().any(|d| name.is_within(d))
                    {
                        continue;
                    }
                    let matched = patterns.entry(path).or_default();
                    if matched.last() != Some(&index) {
                        matched.push(index);
                    }
                }
            }
        }
        (names, patterns, in_zone)
    }

    /// Every answer of a name (its key path `path`).
    fn render_name(&self, name: &Name, path: &str) -> (Vec<(u16, Rendered)>, Option<Rendered>) {
        let subtree = self.read(path, true);
        let exact = self.read(path, false);
        let apex = name == self.zone;
        let mut answers = Vec::new();
        for qtype in [rtype::A, rtype::AAAA] {
            let found = if apex {
                self.apex_read()
            } else {
                subtree.clone()
            };
            let result = found.map(|records| {
                let services = self.services(&records, qtype);
                (
                    self.addresses(name, None, qtype, &services, &mut Vec::new()),
                    Vec::new(),
                )
            });
            self.push(&mut answers, qtype, result);
        }
        let txt = subtree.clone().map(|records| {
            let services = self.services(&records, rtype::TXT);
            (
                self.texts(name, None, &services, &mut Vec::new()),
                Vec::new(),
            )
        });
        self.push(&mut answers, rtype::TXT, txt);
        let srv = subtree
            .clone()
            .map(|records| self.srv(&self.services(&records, rtype::SRV)));
        self.push(&mut answers, rtype::SRV, srv);
        let mx = subtree
            .clone()
            .map(|records| self.mx(&self.services(&records, rtype::MX)));
        self.push(&mut answers, rtype::MX, mx);
        let cname = exact.clone().map(|records| {
            let services = self.services(&records, rtype::CNAME);
            (cname(&services), Vec::new())
        });
        self.push(&mut answers, rtype::CNAME, cname);
        let ptr = exact.map(|records| (ptr(&self.services(&records, rtype::PTR)), Vec::new()));
        self.push(&mut answers, rtype::PTR, ptr);
        if apex {
            let ns = self.ns();
            self.push(&mut answers, rtype::NS, ns);
        }
        self.push_soa(&mut answers);
        // Every other type: CoreDNS does a hidden A lookup for NXDOMAIN vs NODATA.
        let exists = if apex {
            self.apex_read().is_ok()
        } else {
            subtree.is_ok()
        };
        let otherwise = (!exists).then(|| self.rendered(Err(Failure::NameError)));
        (answers, otherwise)
    }

    /// Every answer of a wildcard pattern (its key path `pattern`, with `*`
    /// segments) from the records it matches (CoreDNS `loopNodes`).
    fn render_pattern(
        &self,
        name: &Name,
        pattern: &str,
        matched: &[&SkyRecord],
    ) -> Vec<(u16, Rendered)> {
        let mut answers = Vec::new();
        for qtype in [rtype::A, rtype::AAAA] {
            let services = self.services(matched, qtype);
            let records = self.addresses(name, None, qtype, &services, &mut Vec::new());
            self.push(&mut answers, qtype, Ok((records, Vec::new())));
        }
        let services = self.services(matched, rtype::TXT);
        let txt = self.texts(name, None, &services, &mut Vec::new());
        self.push(&mut answers, rtype::TXT, Ok((txt, Vec::new())));
        let srv = self.srv(&self.services(matched, rtype::SRV));
        self.push(&mut answers, rtype::SRV, Ok(srv));
        let mx = self.mx(&self.services(matched, rtype::MX));
        self.push(&mut answers, rtype::MX, Ok(mx));
        // CNAME and PTR read the exact key above the first wildcard, which
        // never has enough segments to match: NODATA if it exists.
        let above: Vec<&str> = pattern.split('/').take_while(|s| *s != "*").collect();
        let exact = self
            .read(&above.join("/"), false)
            .map(|_| (Vec::new(), Vec::new()));
        self.push(&mut answers, rtype::CNAME, exact.clone());
        self.push(&mut answers, rtype::PTR, exact);
        self.push_soa(&mut answers);
        answers
    }

    /// Adds the answer for `qtype` unless it is the zone's plain NODATA.
    fn push(
        &self,
        answers: &mut Vec<(u16, Rendered)>,
        qtype: u16,
        result: Result<Sections, Failure>,
    ) {
        if matches!(&result, Ok((answer, _)) if answer.is_empty()) {
            return;
        }
        answers.push((qtype, self.rendered(result)));
    }

    /// The SOA answers any name of the zone, owned by the zone (CoreDNS `plugin.SOA`).
    fn push_soa(&self, answers: &mut Vec<(u16, Rendered)>) {
        let soa = Rr {
            owner: Some(self.zone.clone()),
            rtype: rtype::SOA,
            ttl: self.soa.0,
            rdata: self.soa.1.clone(),
        };
        answers.push((rtype::SOA, self.rendered(Ok((vec![soa], Vec::new())))));
    }

    /// A finished answer: records, or NODATA, NXDOMAIN or SERVFAIL with the
    /// zone's SOA in the authority section (RFC 2308 §3; CoreDNS `BackendError`).
    fn rendered(&self, result: Result<Sections, Failure>) -> Rendered {
        let mut answer = RecordWriter::new();
        let mut authority = RecordWriter::new();
        let mut additional = RecordWriter::new();
        let code = match result {
            Ok((records, extra)) => {
                for rr in &records {
                    answer.record(rr.owner.as_ref(), rr.rtype, rr.ttl, &rr.rdata);
                }
                for rr in &extra {
                    additional.record(rr.owner.as_ref(), rr.rtype, rr.ttl, &rr.rdata);
                }
                rcode::NOERROR
            }
            Err(Failure::NameError) => rcode::NXDOMAIN,
            Err(Failure::ServerFailure) => rcode::SERVFAIL,
        };
        if answer.count() == 0 {
            authority.record(Some(self.zone), rtype::SOA, self.soa.0, &self.soa.1);
        }
        Rendered::new(code, true, &answer, &authority, &additional)
    }

    /// CoreDNS `Etcd.get`: with `recursive`, every key below `path/` or, when
    /// there is none, the key `path` itself; otherwise only the key `path`.
    fn read(&self, path: &str, recursive: bool) -> Result<Vec<&'a SkyRecord>, Failure> {
        if recursive {
            let prefix = if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            };
            let start = self
                .records
                .partition_point(|r| r.path.as_str() < prefix.as_str());
            let below: Vec<&SkyRecord> = self.records[start..]
                .iter()
                .take_while(|r| r.path.starts_with(&prefix))
                .copied()
                .collect();
            if !below.is_empty() {
                return Ok(below);
            }
        }
        match self.records.binary_search_by(|r| r.path.as_str().cmp(path)) {
            Ok(index) => Ok(vec![self.records[index]]),
            Err(_) => Err(Failure::NameError),
        }
    }

    /// CoreDNS `checkForApex`: A and AAAA of the zone apex read
    /// `apex.dns.<zone>` when it exists, else the whole zone.
    fn apex_read(&self) -> Result<Vec<&'a SkyRecord>, Failure> {
        let apex_dns = if self.zone_path.is_empty() {
            "dns/apex".to_owned()
        } else {
            format!("{}/dns/apex", self.zone_path)
        };
        match self.read(&apex_dns, true) {
            Err(Failure::NameError) => self.read(&self.zone_path, true),
            found => found,
        }
    }

    /// The records a query of `qtype` uses, with TTL and priority resolved,
    /// after CoreDNS's inclusion rule (a host, or text for TXT) and group filter.
    fn services(&self, records: &[&'a SkyRecord], qtype: u16) -> Vec<Service<'a>> {
        let kept: Vec<Service<'a>> = records
            .iter()
            .filter(|r| {
                self.work.set(self.work.get() + 1);
                r.host != SkyHost::None || (qtype == rtype::TXT && !r.text.is_empty())
            })
            .map(|r| Service {
                record: r,
                ttl: self.ttl(r),
                priority: if r.priority == 0 {
                    DEFAULT_PRIORITY
                } else {
                    r.priority
                },
            })
            .collect();
        group(kept)
    }

    /// The smaller of the lease's TTL (clamped to the lease bounds) and the
    /// value's; 300 when neither is set (CoreDNS `Etcd.TTL`). signpost uses
    /// the lease's granted TTL: answers are rendered ahead of the query.
    fn ttl(&self, record: &SkyRecord) -> u32 {
        let lease = record
            .lease_ttl
            .filter(|&t| t > 0)
            .map(|t| t.clamp(self.options.min_lease_ttl, self.options.max_lease_ttl));
        match (lease, record.ttl) {
            (None, 0) => DEFAULT_TTL,
            (None, ttl) => ttl,
            (Some(lease), 0) => lease,
            (Some(lease), ttl) => lease.min(ttl),
        }
    }

    fn exhausted(&self) -> bool {
        self.work.get() > WORK_BUDGET
    }

    /// The records of `qname`'s A or AAAA lookup (CoreDNS `plugin.A`/`AAAA`).
    /// `owner` `None` writes the question name; `chain` holds the CNAMEs
    /// followed so far.
    fn addresses(
        &self,
        qname: &Name,
        owner: Option<&Name>,
        qtype: u16,
        services: &[Service<'a>],
        chain: &mut Vec<(Name, Name)>,
    ) -> Vec<Rr> {
        let mut records = Vec::new();
        let mut seen: HashSet<IpAddr> = HashSet::new();
        for service in services {
            match service.record.kind() {
                Kind::A(address) if qtype == rtype::A => {
                    if seen.insert(IpAddr::V4(address)) {
                        records.push(rr(owner, rtype::A, service.ttl, rdata::a(address)));
                    }
                }
                Kind::Aaaa(address) if qtype == rtype::AAAA => {
                    if seen.insert(IpAddr::V6(address)) {
                        records.push(rr(owner, rtype::AAAA, service.ttl, rdata::aaaa(address)));
                    }
                }
                Kind::Cname(target) => {
                    let lookup = |name: &Name, chain: &mut Vec<(Name, Name)>| {
                        self.lookup(name, qtype, chain)
                    };
                    self.follow(
                        qname,
                        owner,
                        target,
                        service.ttl,
                        chain,
                        &mut records,
                        lookup,
                    );
                }
                Kind::A(_) | Kind::Aaaa(_) | Kind::Txt => {}
            }
        }
        records
    }

    /// The records of `qname`'s TXT lookup (CoreDNS `plugin.TXT`).
    fn texts(
        &self,
        qname: &Name,
        owner: Option<&Name>,
        services: &[Service<'a>],
        chain: &mut Vec<(Name, Name)>,
    ) -> Vec<Rr> {
        let mut records = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for service in services {
            match service.record.kind() {
                Kind::Txt => {
                    if seen.insert(&service.record.text) {
                        let data = rdata::txt(&[&service.record.text]);
                        records.push(rr(owner, rtype::TXT, service.ttl, data));
                    }
                }
                Kind::Cname(target) => {
                    let lookup = |name: &Name, chain: &mut Vec<(Name, Name)>| {
                        self.lookup(name, rtype::TXT, chain)
                    };
                    self.follow(
                        qname,
                        owner,
                        target,
                        service.ttl,
                        chain,
                        &mut records,
                        lookup,
                    );
                }
                Kind::A(_) | Kind::Aaaa(_) => {}
            }
        }
        records
    }

    /// Adds `qname CNAME target` and, for a target in the zone, what the
    /// target's own lookup finds; the CNAME is kept only when that lookup
    /// found records (CoreDNS). A target outside the zone is answered with the
    /// CNAME alone: the client's resolver follows it (CoreDNS asks its own
    /// server chain instead).
    #[allow(clippy::too_many_arguments)]
    fn follow(
        &self,
        qname: &Name,
        owner: Option<&Name>,
        target: &Name,
        ttl: u32,
        chain: &mut Vec<(Name, Name)>,
        records: &mut Vec<Rr>,
        lookup: impl Fn(&Name, &mut Vec<(Name, Name)>) -> Result<Vec<Rr>, Failure>,
    ) {
        // `x CNAME x` and `w.x CNAME x` are loops in a subtree lookup.
        if target.is_within(qname) || chain.len() > MAX_CHAIN || self.exhausted() {
            return;
        }
        if chain.iter().any(|(o, t)| o == qname && t == target) {
            return;
        }
        let cname = rr(owner, rtype::CNAME, ttl, rdata::name(target));
        if !target.is_within(self.zone) {
            records.push(cname);
            return;
        }
        chain.push((qname.clone(), target.clone()));
        let next = lookup(target, chain);
        chain.pop();
        if let Ok(next) = next
            && !next.is_empty()
        {
            records.push(cname);
            records.extend(next);
        }
    }

    /// A lookup re-issued for a CNAME or SRV/MX target inside the zone (A,
    /// AAAA or TXT), its records owned by `name`.
    fn lookup(
        &self,
        name: &Name,
        qtype: u16,
        chain: &mut Vec<(Name, Name)>,
    ) -> Result<Vec<Rr>, Failure> {
        let path = name_path(name);
        let found = if qtype != rtype::TXT && name == self.zone {
            self.apex_read()?
        } else {
            self.read(&path, true)?
        };
        let services = self.services(&found, qtype);
        Ok(match qtype {
            rtype::TXT => self.texts(name, Some(name), &services, chain),
            _ => self.addresses(name, Some(name), qtype, &services, chain),
        })
    }

    /// SRV answers (CoreDNS `plugin.SRV`): weights split per priority, name
    /// hosts as targets with their in-zone addresses as additionals, address
    /// hosts under a target named by their key.
    fn srv(&self, services: &[Service<'a>]) -> Sections {
        let mut totals: BTreeMap<u16, u64> = BTreeMap::new();
        for service in services {
            let weight = match service.record.weight {
                0 => 100,
                w => u64::from(w),
            };
            *totals.entry(service.priority).or_default() += weight;
        }
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen_targets: HashSet<Name> = HashSet::new();
        let mut seen_srv: HashSet<(Name, u16)> = HashSet::new();
        let mut seen_address: HashSet<(Name, IpAddr)> = HashSet::new();
        for service in services {
            let record = service.record;
            if record.port == -1 {
                continue;
            }
            let total = totals.get(&service.priority).copied().unwrap_or(100) as f64;
            let input = match record.weight {
                0 => 100.0,
                w => f64::from(w),
            };
            let weight = ((100.0 / total * input).floor() as u16).max(1);
            let port = record.port as u16;
            match record.kind() {
                Kind::Cname(host) => {
                    let target = strip(host, record.target_strip);
                    let data = rdata::srv(service.priority, weight, port, &target);
                    records.push(rr(None, rtype::SRV, service.ttl, data));
                    if seen_targets.insert(target.clone()) {
                        extra.extend(self.target_addresses(&target));
                    }
                }
                Kind::A(_) | Kind::Aaaa(_) => {
                    let Some(target) = record.key_name() else {
                        continue;
                    };
                    let target = strip(&target, record.target_strip);
                    if seen_srv.insert((target.clone(), port)) {
                        let data = rdata::srv(service.priority, weight, port, &target);
                        records.push(rr(None, rtype::SRV, service.ttl, data));
                    }
                    extra.extend(address_record(&target, service, &mut seen_address));
                }
                Kind::Txt => {}
            }
        }
        (records, extra)
    }

    /// MX answers (CoreDNS `plugin.MX`): records with `mail`, preference = priority.
    fn mx(&self, services: &[Service<'a>]) -> Sections {
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen_targets: HashSet<Name> = HashSet::new();
        let mut seen_mx: HashSet<(Name, u16)> = HashSet::new();
        let mut seen_address: HashSet<(Name, IpAddr)> = HashSet::new();
        for service in services.iter().filter(|s| s.record.mail) {
            let record = service.record;
            match record.kind() {
                Kind::Cname(host) => {
                    let target = strip(host, record.target_strip);
                    records.push(rr(
                        None,
                        rtype::MX,
                        service.ttl,
                        mx(service.priority, &target),
                    ));
                    if seen_targets.insert(target.clone()) {
                        extra.extend(self.target_addresses(&target));
                    }
                }
                Kind::A(_) | Kind::Aaaa(_) => {
                    let Some(target) = record.key_name() else {
                        continue;
                    };
                    let target = strip(&target, record.target_strip);
                    if seen_mx.insert((target.clone(), service.priority)) {
                        let data = mx(service.priority, &target);
                        records.push(rr(None, rtype::MX, service.ttl, data));
                    }
                    extra.extend(address_record(&target, service, &mut seen_address));
                }
                Kind::Txt => {}
            }
        }
        (records, extra)
    }

    /// Addresses of an SRV or MX target named by a host: the target's A
    /// lookup when it is in the zone (CoreDNS looks up A only); nothing for
    /// other targets (the client resolves them).
    fn target_addresses(&self, target: &Name) -> Vec<Rr> {
        if !target.is_within(self.zone) || self.exhausted() {
            return Vec::new();
        }
        self.lookup(target, rtype::A, &mut Vec::new())
            .unwrap_or_default()
    }

    /// NS of the zone apex (CoreDNS `plugin.NS`): the records under
    /// `ns.dns.<zone>`, each named by its key, with its address as additional;
    /// a record with a name host fails the whole answer.
    fn ns(&self) -> Result<Sections, Failure> {
        let path = if self.zone_path.is_empty() {
            "dns/ns".to_owned()
        } else {
            format!("{}/dns/ns", self.zone_path)
        };
        let found = self.read(&path, true)?;
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen: HashSet<Name> = HashSet::new();
        for service in self.services(&found, rtype::NS) {
            let address = match service.record.kind() {
                Kind::Cname(_) => return Err(Failure::ServerFailure),
                Kind::A(v4) => (rtype::A, rdata::a(v4)),
                Kind::Aaaa(v6) => (rtype::AAAA, rdata::aaaa(v6)),
                Kind::Txt => continue,
            };
            let Some(target) = service.record.key_name() else {
                continue;
            };
            let target = strip(&target, service.record.target_strip);
            extra.push(rr(Some(&target), address.0, service.ttl, address.1));
            if seen.insert(target.clone()) {
                records.push(rr(None, rtype::NS, service.ttl, rdata::name(&target)));
            }
        }
        Ok((records, extra))
    }
}

/// A record owned by `owner` (`None`: the question name).
fn rr(owner: Option<&Name>, rtype: u16, ttl: u32, rdata: Vec<u8>) -> Rr {
    Rr {
        owner: owner.cloned(),
        rtype,
        ttl,
        rdata,
    }
}

/// The additional address of an SRV or MX target named by a key, once per
/// (target, address).
fn address_record(
    target: &Name,
    service: &Service<'_>,
    seen: &mut HashSet<(Name, IpAddr)>,
) -> Option<Rr> {
    let (address, rtype, data) = match service.record.kind() {
        Kind::A(v4) => (IpAddr::V4(v4), rtype::A, rdata::a(v4)),
        Kind::Aaaa(v6) => (IpAddr::V6(v6), rtype::AAAA, rdata::aaaa(v6)),
        Kind::Cname(_) | Kind::Txt => return None,
    };
    seen.insert((target.clone(), address))
        .then(|| rr(Some(target), rtype, service.ttl, data))
}

/// CNAME at the exact key (CoreDNS `plugin.CNAME`): the first record, if its host is not an address.
fn cname(services: &[Service<'_>]) -> Vec<Rr> {
    match services.first() {
        Some(service) => match &service.record.host {
            SkyHost::Name(target) => vec![rr(None, rtype::CNAME, service.ttl, rdata::name(target))],
            _ => Vec::new(),
        },
        None => Vec::new(),
    }
}

/// PTR at the exact key (CoreDNS `plugin.PTR`): every name host, once.
fn ptr(services: &[Service<'_>]) -> Vec<Rr> {
    let mut seen = HashSet::new();
    services
        .iter()
        .filter_map(|service| match &service.record.host {
            SkyHost::Name(target) if seen.insert(target.clone()) => {
                Some(rr(None, rtype::PTR, service.ttl, rdata::name(target)))
            }
            _ => None,
        })
        .collect()
}

/// MX RDATA (RFC 1035 §3.3.9).
fn mx(preference: u16, exchange: &Name) -> Vec<u8> {
    let mut data = preference.to_be_bytes().to_vec();
    data.extend_from_slice(exchange.as_wire());
    data
}

/// CoreDNS `targetStrip`: drops `count` leftmost labels, unless that would
/// leave nothing.
fn strip(name: &Name, count: usize) -> Name {
    if count == 0 || count >= name.label_count() {
        return name.clone();
    }
    let mut stripped = name.clone();
    for _ in 0..count {
        stripped = stripped.parent().unwrap_or(stripped);
    }
    stripped
}

/// A `*` or `any` label, which CoreDNS reads as a wildcard.
fn is_wildcard(label: &str) -> bool {
    label == "*" || label == "any"
}

/// CoreDNS `msg.Group`: the shallowest grouped record decides the group;
/// records of other groups are dropped, ungrouped ones kept, and two groups
/// at the deciding depth disable the filter.
fn group(services: Vec<Service<'_>>) -> Vec<Service<'_>> {
    let Some(first) = services.first() else {
        return services;
    };
    let mut group = first.record.group.as_str();
    let mut depth = first.record.depth();
    // CoreDNS measures depths only up to where its first walk stops; the
    // records after that count as depth 0 in the conflict check.
    let mut measured = services.len();
    for (index, service) in services.iter().enumerate() {
        let d = service.record.depth();
        if d < depth {
            if service.record.group.is_empty() {
                measured = index;
                break;
            }
            depth = d;
            group = &service.record.group;
        }
    }
    if group.is_empty() {
        return services;
    }
    let conflict = services.iter().enumerate().any(|(index, s)| {
        let d = if index < measured {
            s.record.depth()
        } else {
            0
        };
        !s.record.group.is_empty() && d == depth && s.record.group != group
    });
    if conflict {
        return services;
    }
    let group = group.to_owned();
    services
        .into_iter()
        .filter(|s| s.record.group.is_empty() || s.record.group == group)
        .collect()
}

#[cfg(test)]
mod tests;
