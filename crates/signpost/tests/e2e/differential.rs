//! Differential test of the `file` plugin against Knot DNS (issue 3, point 1).
//!
//! The zones under `tests/e2e/data/zones/` are loaded into `knotd` (Debian's
//! `knot`, the reference) and into signpost's `file` plugin. A seeded query
//! set generated from the zone contents goes to both, and every answer must
//! agree in RCODE, AA, TC and the answer, authority and additional sections,
//! each compared as a multiset of normalized records. The zones exercise the
//! authoritative algorithm of RFC 1034 §4.3.2: CNAME chains, referrals with
//! glue, RFC 4592 wildcards, empty non-terminals, additional-section
//! processing and RFC 2308 negative answers.
//!
//! ```text
//!                   ┌──► knotd (reference) ──────┐
//! data/zones/*.zone ┤                            ├──► compare normalized answers
//!                   └──► signpost `file` (peer) ─┘
//!          ▲
//!          └── AXFR from knotd: owners, cuts, wildcards and ENTs for the generator
//! ```
//!
//! Two environment variables help when working on the harness itself:
//! `SIGNPOST_DIFFERENTIAL_PEER=knot` replaces signpost with a second `knotd`
//! (every answer must then agree), and `SIGNPOST_DIFFERENTIAL_SEED=<u64>`
//! changes the seed of the query set.
//!
//! ANY is not queried: RFC 8482 lets servers answer it in different ways.

use crate::support::{self, TestServer};
use crate::upstream::Knot;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The zones both servers load: origin and file under `data/zones/`.
const ZONES: &[(&str, &str)] = &[
    ("example.test.", "example.test.zone"),
    ("2.0.192.in-addr.arpa.", "reverse.zone"),
];

/// The seed of the query set unless `SIGNPOST_DIFFERENTIAL_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x7369_676e_706f_7374;

/// The issue asks for at least this many queries.
const MINIMUM_QUERIES: usize = 2_000;

/// Every this many queries, the query is also sent over TCP.
const TCP_EVERY: usize = 7;

/// How many mismatches the failure message shows in full.
const SHOWN_MISMATCHES: usize = 20;

/// EDNS UDP payload size advertised in every query (DNS Flag Day 2020).
const EDNS_PAYLOAD: u16 = 1232;

/// RFC 1034 §4.3.2, RFC 2308 and RFC 4592: every generated query gets the
/// same RCODE, AA, TC and sections from signpost's `file` plugin as from Knot.
#[test]
fn file_plugin_answers_like_knot() {
    let reference = start_knot();
    let peer = Peer::start();
    let zones: Vec<ZoneContents> = ZONES
        .iter()
        .map(|(origin, _)| ZoneContents::transfer(reference.addr(), origin))
        .collect();
    let seed = seed();
    let probes = generate(&zones, seed);
    assert!(
        probes.len() >= MINIMUM_QUERIES,
        "only {} queries generated, want at least {MINIMUM_QUERIES}",
        probes.len()
    );

    let mut reference_client = Client::new(reference.addr());
    let mut peer_client = Client::new(peer.addr());
    let mut mismatches = Vec::new();
    let mut sent = 0;
    for (index, probe) in probes.iter().enumerate() {
        let mut transports = vec![Transport::Udp];
        if index % TCP_EVERY == 0 {
            transports.push(Transport::Tcp);
        }
        for transport in transports {
            let expected = reference_client.exchange(probe, transport);
            let actual = peer_client.exchange(probe, transport);
            sent += 1;
            if expected != actual {
                mismatches.push(Mismatch {
                    probe,
                    transport,
                    expected,
                    actual,
                });
            }
        }
    }

    eprintln!(
        "differential: seed {seed:#x}, {} queries ({sent} exchanges) against {}: {}",
        probes.len(),
        peer.describe(),
        summarize(probes.iter().map(|p| p.category.label()))
    );
    if !mismatches.is_empty() {
        panic!(
            "{}\n{} log:\n{}",
            report(&mismatches, sent, seed, &peer),
            peer.describe(),
            peer.log()
        );
    }
}

/// RFC 5936 §2.2: a zone transfer from signpost starts and ends with the SOA
/// and holds exactly the records Knot transfers for the same zone file.
#[test]
fn file_plugin_axfr_matches_knot() {
    let reference = start_knot();
    let peer = Peer::start();
    let mut failures = String::new();
    for (origin, _) in ZONES {
        let expected = kdig_axfr(reference.addr(), origin);
        let actual = kdig_axfr(peer.addr(), origin);
        check_axfr_envelope("knotd", origin, &expected);
        if let Err(problem) = axfr_envelope(&actual) {
            let _ = writeln!(
                failures,
                "AXFR {origin} from {}: {problem}",
                peer.describe()
            );
        }
        let (missing, extra) = multiset_difference(&expected, &actual);
        if !missing.is_empty() || !extra.is_empty() {
            let _ = writeln!(
                failures,
                "AXFR {origin}: {} records only in knotd's transfer, {} only in {}'s",
                missing.len(),
                extra.len(),
                peer.describe()
            );
            for line in &missing {
                let _ = writeln!(failures, "  - {line}");
            }
            for line in &extra {
                let _ = writeln!(failures, "  + {line}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{failures}\n{} log:\n{}",
        peer.describe(),
        peer.log()
    );
}

// === Probe generation ===

/// One query of the generated set.
#[derive(Clone, Debug)]
struct Probe {
    qname: String,
    qtype: RecordType,
    category: Category,
}

/// What a probe was generated to exercise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    /// An owner name in the zone's authoritative data.
    Existing,
    /// An owner holding a CNAME (chains, out-of-zone and dangling targets).
    CnameChain,
    /// A delegation point, glue, or a name below a zone cut.
    Delegation,
    /// A name synthesized from a wildcard, or the wildcard owner itself.
    Wildcard,
    /// An empty non-terminal (RFC 8020 §2: NODATA, not NXDOMAIN).
    EmptyNonTerminal,
    /// A name that does not exist, at depth one to three below a node.
    Nxdomain,
    /// A name outside every served zone.
    OutOfZone,
    /// Any of the above with the qname's letters in random case (RFC 4343).
    MixedCase,
}

impl Category {
    fn label(self) -> &'static str {
        match self {
            Self::Existing => "existing",
            Self::CnameChain => "cname",
            Self::Delegation => "delegation",
            Self::Wildcard => "wildcard",
            Self::EmptyNonTerminal => "empty-non-terminal",
            Self::Nxdomain => "nxdomain",
            Self::OutOfZone => "out-of-zone",
            Self::MixedCase => "mixed-case",
        }
    }
}

/// Every qtype asked for each name: the types in the zones, TYPE65280 (in
/// the zone, RFC 3597 form) and TYPE65400 (nowhere, unknown to both servers).
fn qtypes() -> Vec<RecordType> {
    vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::MX,
        RecordType::TXT,
        RecordType::SRV,
        RecordType::NS,
        RecordType::SOA,
        RecordType::CNAME,
        RecordType::PTR,
        RecordType::CAA,
        RecordType::from(65280),
        RecordType::from(65400),
    ]
}

/// Builds the query set from the zones' contents; the same seed gives the
/// same set.
fn generate(zones: &[ZoneContents], seed: u64) -> Vec<Probe> {
    let mut random = SplitMix64::new(seed);
    let qtypes = qtypes();
    let mut probes = Vec::new();
    let push_all_types = |probes: &mut Vec<Probe>, qname: &str, category| {
        for &qtype in &qtypes {
            probes.push(Probe {
                qname: qname.to_owned(),
                qtype,
                category,
            });
        }
    };

    for zone in zones {
        let tree = ZoneTree::new(zone);

        // Every owner and every empty non-terminal, with every qtype.
        for owner in &tree.owners {
            let category = if tree.below_or_at_cut(owner) {
                Category::Delegation
            } else if tree.cnames.contains(owner) {
                Category::CnameChain
            } else if owner.starts_with("*.") {
                Category::Wildcard
            } else {
                Category::Existing
            };
            push_all_types(&mut probes, owner, category);
        }
        for ent in &tree.empty_non_terminals {
            let category = if tree.below_or_at_cut(ent) {
                Category::Delegation
            } else {
                Category::EmptyNonTerminal
            };
            push_all_types(&mut probes, ent, category);
        }

        // Names below each zone cut, at depth one to three.
        for cut in &tree.cuts {
            for depth in [1, 1, 2, 3] {
                let qname = random.child_of(cut, depth);
                push_all_types(&mut probes, &qname, Category::Delegation);
            }
        }

        // RFC 4592 §3.3.1: names the wildcards synthesize, at several depths.
        for wildcard in tree.owners.iter().filter(|o| o.starts_with("*.")) {
            let parent = &wildcard[2..];
            for depth in [1, 1, 2, 2, 3] {
                let qname = random.child_of(parent, depth);
                push_all_types(&mut probes, &qname, Category::Wildcard);
            }
        }

        // Names that do not exist, under every node not below a cut (under
        // a wildcard's parent they are synthesized instead, under an owner
        // that blocks a wildcard they are NXDOMAIN: both are wanted).
        let nodes: Vec<&String> = tree
            .owners
            .iter()
            .chain(&tree.empty_non_terminals)
            .filter(|n| !tree.below_or_at_cut(n))
            .collect();
        for node in nodes {
            for _ in 0..2 {
                let depth = 1 + random.below(3) as usize;
                let qname = random.child_of(node, depth);
                for _ in 0..4 {
                    let qtype = qtypes[random.below(qtypes.len() as u64) as usize];
                    probes.push(Probe {
                        qname: qname.clone(),
                        qtype,
                        category: Category::Nxdomain,
                    });
                }
            }
        }
        for depth in 1..=3 {
            let qname = random.child_of(&zone.origin, depth);
            push_all_types(&mut probes, &qname, Category::Nxdomain);
        }
    }

    // Names no zone covers: both servers should refuse them.
    for qname in [
        "example.net.",
        "test.",
        "xexample.test.",
        "3.0.192.in-addr.arpa.",
    ] {
        for qtype in [RecordType::A, RecordType::SOA, RecordType::NS] {
            probes.push(Probe {
                qname: qname.to_owned(),
                qtype,
                category: Category::OutOfZone,
            });
        }
    }

    // RFC 4343: a third of the set again, in mixed case.
    let mut mixed = Vec::new();
    for probe in &probes {
        if random.below(3) == 0 {
            mixed.push(Probe {
                qname: random.mix_case(&probe.qname),
                qtype: probe.qtype,
                category: Category::MixedCase,
            });
        }
    }
    probes.extend(mixed);
    probes
}

/// The shape of one zone as the generator needs it. Names are lower-case,
/// absolute, with the trailing dot.
struct ZoneTree {
    owners: BTreeSet<String>,
    empty_non_terminals: BTreeSet<String>,
    /// Owners of NS records other than the apex: delegation points.
    cuts: BTreeSet<String>,
    cnames: BTreeSet<String>,
}

impl ZoneTree {
    fn new(zone: &ZoneContents) -> Self {
        let owners: BTreeSet<String> = zone.records.iter().map(|r| r.owner.clone()).collect();
        let cuts = zone
            .records
            .iter()
            .filter(|r| r.rtype == "NS" && r.owner != zone.origin)
            .map(|r| r.owner.clone())
            .collect();
        let cnames = zone
            .records
            .iter()
            .filter(|r| r.rtype == "CNAME")
            .map(|r| r.owner.clone())
            .collect();
        let mut empty_non_terminals = BTreeSet::new();
        for owner in &owners {
            let mut name = owner.as_str();
            while let Some((_, parent)) = name.split_once('.') {
                if parent.len() <= zone.origin.len() {
                    break;
                }
                if !owners.contains(parent) {
                    empty_non_terminals.insert(parent.to_owned());
                }
                name = parent;
            }
        }
        Self {
            owners,
            empty_non_terminals,
            cuts,
            cnames,
        }
    }

    /// Whether `name` is a delegation point or below one.
    fn below_or_at_cut(&self, name: &str) -> bool {
        self.cuts
            .iter()
            .any(|cut| name == cut || name.ends_with(&format!(".{cut}")))
    }
}

/// A small deterministic generator (SplitMix64): no dependency, and the
/// same seed gives the same query set on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A random label of one to ten letters, digits and inner hyphens.
    fn label(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let len = 1 + self.below(10) as usize;
        (0..len)
            .map(|i| {
                if i > 0 && i + 1 < len && self.below(8) == 0 {
                    '-'
                } else {
                    ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char
                }
            })
            .collect()
    }

    /// `depth` random labels prepended to `parent`.
    fn child_of(&mut self, parent: &str, depth: usize) -> String {
        let mut name = String::new();
        for _ in 0..depth {
            name.push_str(&self.label());
            name.push('.');
        }
        name.push_str(parent);
        name
    }

    /// `name` with each letter upper-cased at random, at least one of them
    /// when there is any letter.
    fn mix_case(&mut self, name: &str) -> String {
        let mixed: String = name
            .chars()
            .map(|c| {
                if self.below(2) == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        if mixed == name {
            name.to_ascii_uppercase()
        } else {
            mixed
        }
    }
}

fn seed() -> u64 {
    match std::env::var("SIGNPOST_DIFFERENTIAL_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("SIGNPOST_DIFFERENTIAL_SEED={text}: {e}"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

// === Exchanges and normalized answers ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What the comparison looks at in an answer: RCODE, AA, TC, and each
/// section as a sorted list of normalized records. The OPT record is not
/// part of the additional section here (hickory keeps it apart).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    rcode: String,
    authoritative: bool,
    truncated: bool,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

impl Outcome {
    fn from_message(message: &Message) -> Self {
        Self {
            rcode: format!("{:?}", message.metadata.response_code),
            authoritative: message.metadata.authoritative,
            truncated: message.metadata.truncation,
            answer: normalize_section(&message.answers),
            authority: normalize_section(&message.authorities),
            additional: normalize_section(&message.additionals),
        }
    }

    fn render(&self, out: &mut String) {
        let flag = |set: bool| if set { 1 } else { 0 };
        let _ = writeln!(
            out,
            "      rcode {} aa {} tc {}",
            self.rcode,
            flag(self.authoritative),
            flag(self.truncated)
        );
        for (name, section) in [
            ("answer", &self.answer),
            ("authority", &self.authority),
            ("additional", &self.additional),
        ] {
            if section.is_empty() {
                continue;
            }
            let _ = writeln!(out, "      {name}:");
            for line in section {
                let _ = writeln!(out, "        {line}");
            }
        }
    }

    /// Names of the parts that differ from `other`.
    fn differences(&self, other: &Self) -> Vec<&'static str> {
        let mut parts = Vec::new();
        if self.rcode != other.rcode {
            parts.push("rcode");
        }
        if self.authoritative != other.authoritative {
            parts.push("aa");
        }
        if self.truncated != other.truncated {
            parts.push("tc");
        }
        if self.answer != other.answer {
            parts.push("answer");
        }
        if self.authority != other.authority {
            parts.push("authority");
        }
        if self.additional != other.additional {
            parts.push("additional");
        }
        parts
    }
}

/// One answer, or why there was none (no reply, unparseable reply).
type Reply = Result<Outcome, String>;

fn normalize_section(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| {
            normalize_record(
                &r.name.to_ascii(),
                r.ttl,
                &type_name(r.record_type()),
                &r.data.to_string(),
            )
        })
        .collect();
    lines.sort();
    lines
}

/// `owner ttl TYPE rdata` with the owner lower-cased and, for types whose
/// rdata holds only names and numbers, the rdata lower-cased too (RFC 4343:
/// names compare case-insensitively; TXT and CAA text does not).
fn normalize_record(owner: &str, ttl: u32, rtype: &str, rdata: &str) -> String {
    let rdata = match rtype {
        "CNAME" | "NS" | "PTR" | "MX" | "SRV" | "SOA" | "DNAME" => rdata.to_ascii_lowercase(),
        _ => rdata.to_owned(),
    };
    let mut owner = owner.to_ascii_lowercase();
    if !owner.ends_with('.') {
        owner.push('.');
    }
    format!("{owner} {ttl} {rtype} {}", rdata.trim())
}

/// The type mnemonic, or RFC 3597's `TYPEnnn` for types hickory does not
/// know (its own `Display` prints "Unknown" for all of them).
fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// A client of one server: one UDP socket and one TCP connection, opened on
/// first use, with sequential message IDs.
struct Client {
    server: SocketAddr,
    udp: UdpSocket,
    tcp: Option<TcpStream>,
    next_id: u16,
}

impl Client {
    fn new(server: SocketAddr) -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        udp.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("udp timeout");
        Self {
            server,
            udp,
            tcp: None,
            next_id: 1,
        }
    }

    fn exchange(&mut self, probe: &Probe, transport: Transport) -> Reply {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let query = encode_query(id, probe)?;
        let message = match transport {
            Transport::Udp => self.exchange_udp(id, &query)?,
            Transport::Tcp => self.exchange_tcp(&query)?,
        };
        if message.metadata.id != id {
            return Err(format!(
                "reply id {} for query id {id}",
                message.metadata.id
            ));
        }
        Ok(Outcome::from_message(&message))
    }

    /// Sends over UDP, retrying twice on silence (loopback rarely drops, but
    /// a busy CI machine may).
    fn exchange_udp(&mut self, id: u16, query: &[u8]) -> Result<Message, String> {
        let mut buffer = vec![0u8; 65_535];
        for _ in 0..3 {
            self.udp
                .send_to(query, self.server)
                .map_err(|e| format!("send: {e}"))?;
            while let Ok((len, _)) = self.udp.recv_from(&mut buffer) {
                let message = Message::from_vec(&buffer[..len])
                    .map_err(|e| format!("unparseable reply: {e}"))?;
                // A late reply to an earlier, retried query: skip it.
                if message.metadata.id == id {
                    return Ok(message);
                }
            }
        }
        Err("no reply over UDP".to_owned())
    }

    fn exchange_tcp(&mut self, query: &[u8]) -> Result<Message, String> {
        if self.tcp.is_none() {
            let stream = TcpStream::connect_timeout(&self.server, Duration::from_secs(2))
                .map_err(|e| format!("tcp connect: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| format!("tcp timeout: {e}"))?;
            self.tcp = Some(stream);
        }
        let stream = self.tcp.as_mut().expect("connected above");
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        let result = stream
            .write_all(&framed)
            .map_err(|e| format!("tcp write: {e}"))
            .and_then(|()| support::read_tcp_message(stream).map_err(|e| format!("tcp read: {e}")));
        if result.is_err() {
            self.tcp = None; // reconnect for the next query
        }
        result
    }
}

/// A query with RD clear (as a resolver asks an authoritative server) and
/// an OPT record advertising [`EDNS_PAYLOAD`].
fn encode_query(id: u16, probe: &Probe) -> Result<Vec<u8>, String> {
    let name =
        Name::from_ascii(&probe.qname).map_err(|e| format!("bad qname {}: {e}", probe.qname))?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name, probe.qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    message.to_vec().map_err(|e| format!("encode query: {e}"))
}

// === Mismatch report ===

struct Mismatch<'a> {
    probe: &'a Probe,
    transport: Transport,
    expected: Reply,
    actual: Reply,
}

fn report(mismatches: &[Mismatch<'_>], sent: usize, seed: u64, peer: &Peer) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} of {sent} exchanges differ between knotd and {} (seed {seed:#x}); by category: {}",
        mismatches.len(),
        peer.describe(),
        summarize(mismatches.iter().map(|m| m.probe.category.label()))
    );
    let _ = writeln!(
        out,
        "differing parts: {}",
        summarize(
            mismatches
                .iter()
                .flat_map(|m| match (&m.expected, &m.actual) {
                    (Ok(expected), Ok(actual)) => expected.differences(actual),
                    _ => vec!["no answer"],
                })
        )
    );
    for mismatch in mismatches.iter().take(SHOWN_MISMATCHES) {
        let probe = mismatch.probe;
        let _ = writeln!(
            out,
            "\n  {} {} over {:?} ({})",
            probe.qname,
            type_name(probe.qtype),
            mismatch.transport,
            probe.category.label()
        );
        for (who, reply) in [
            ("knotd", &mismatch.expected),
            (peer.describe(), &mismatch.actual),
        ] {
            let _ = writeln!(out, "    {who}:");
            match reply {
                Ok(outcome) => outcome.render(&mut out),
                Err(error) => {
                    let _ = writeln!(out, "      error: {error}");
                }
            }
        }
    }
    if mismatches.len() > SHOWN_MISMATCHES {
        let _ = writeln!(
            out,
            "\n  ... and {} more",
            mismatches.len() - SHOWN_MISMATCHES
        );
    }
    out
}

/// `label count, label count, ...` in label order.
fn summarize<'a>(labels: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for label in labels {
        *counts.entry(label).or_default() += 1;
    }
    counts
        .iter()
        .map(|(label, count)| format!("{label} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// === Zone contents and AXFR ===

/// A zone's records as Knot transfers them.
struct ZoneContents {
    origin: String,
    records: Vec<ZoneRecord>,
}

/// One record from `kdig` output, normalized.
struct ZoneRecord {
    owner: String,
    rtype: String,
}

impl ZoneContents {
    fn transfer(server: SocketAddr, origin: &str) -> Self {
        let lines = kdig_axfr_raw(server, origin);
        let records = lines
            .iter()
            .map(|line| {
                let fields = split_presentation(line);
                ZoneRecord {
                    owner: fields.owner.to_ascii_lowercase(),
                    rtype: fields.rtype.to_owned(),
                }
            })
            .collect();
        Self {
            origin: origin.to_ascii_lowercase(),
            records,
        }
    }
}

/// The fields of one presentation-format line from `kdig`.
struct PresentationLine<'a> {
    owner: &'a str,
    ttl: u32,
    rtype: &'a str,
    rdata: &'a str,
}

/// Splits `owner ttl class type rdata`; the rdata keeps its inner spacing.
fn split_presentation(line: &str) -> PresentationLine<'_> {
    let mut rest = line.trim();
    let mut fields = [""; 4];
    for field in &mut fields {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        *field = &rest[..end];
        rest = rest[end..].trim_start();
    }
    let [owner, ttl, _class, rtype] = fields;
    PresentationLine {
        owner,
        ttl: ttl
            .parse()
            .unwrap_or_else(|e| panic!("bad TTL in kdig line {line:?}: {e}")),
        rtype,
        rdata: rest,
    }
}

/// The record lines of `kdig AXFR`, in transfer order, unnormalized.
fn kdig_axfr_raw(server: SocketAddr, origin: &str) -> Vec<String> {
    let output = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+timeout=5", "+retry=0", "+noall", "+answer"])
        .args(["-t", "AXFR", origin])
        .output()
        .unwrap_or_else(|e| panic!("cannot run kdig (install knot-dnsutils): {e}"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(str::to_owned)
        .collect()
}

/// `kdig AXFR` as normalized records, in transfer order.
fn kdig_axfr(server: SocketAddr, origin: &str) -> Vec<String> {
    kdig_axfr_raw(server, origin)
        .iter()
        .map(|line| {
            let fields = split_presentation(line);
            normalize_record(fields.owner, fields.ttl, fields.rtype, fields.rdata)
        })
        .collect()
}

/// RFC 5936 §2.2: the transfer starts and ends with the zone's SOA.
fn axfr_envelope(records: &[String]) -> Result<(), String> {
    let is_soa = |line: &str| line.split(' ').nth(2) == Some("SOA");
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Err("empty transfer".to_owned());
    };
    if records.len() < 2 || !is_soa(first) || !is_soa(last) {
        return Err(format!(
            "transfer does not start and end with the SOA: first {first:?}, last {last:?}"
        ));
    }
    if first != last {
        return Err(format!("first SOA {first:?} differs from last {last:?}"));
    }
    Ok(())
}

#[track_caller]
fn check_axfr_envelope(server: &str, origin: &str, records: &[String]) {
    if let Err(problem) = axfr_envelope(records) {
        panic!("AXFR {origin} from {server}: {problem}");
    }
}

/// Two transfers as multisets: (records only in `expected`, records only in
/// `actual`), counting duplicates.
fn multiset_difference(expected: &[String], actual: &[String]) -> (Vec<String>, Vec<String>) {
    let mut remaining: BTreeMap<&String, usize> = BTreeMap::new();
    for line in actual {
        *remaining.entry(line).or_default() += 1;
    }
    let mut missing = Vec::new();
    for line in expected {
        match remaining.get_mut(line) {
            Some(count) if *count > 0 => *count -= 1,
            _ => missing.push(line.clone()),
        }
    }
    let extra = remaining
        .into_iter()
        .flat_map(|(line, count)| std::iter::repeat_n(line.clone(), count))
        .collect();
    (missing, extra)
}

// === Servers ===

/// The server compared with Knot: signpost, or (for validating this harness)
/// a second `knotd`.
enum Peer {
    Signpost(TestServer),
    Knot(Knot),
}

impl Peer {
    fn start() -> Self {
        match std::env::var("SIGNPOST_DIFFERENTIAL_PEER").as_deref() {
            Ok("knot") => Self::Knot(start_knot()),
            Ok("signpost") | Ok("") | Err(_) => Self::Signpost(start_signpost()),
            Ok(other) => panic!("SIGNPOST_DIFFERENTIAL_PEER={other}: want signpost or knot"),
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Self::Signpost(server) => server.addr(),
            Self::Knot(knot) => knot.addr(),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::Signpost(_) => "signpost",
            Self::Knot(_) => "knotd (peer)",
        }
    }

    fn log(&self) -> String {
        match self {
            Self::Signpost(server) => server.log(),
            Self::Knot(knot) => knot.log(),
        }
    }
}

/// The zone files, read in place by both servers.
fn zone_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/data/zones")
}

/// signpost serving every zone in [`ZONES`] with the `file` plugin; waits
/// for `/ready`.
fn start_signpost() -> TestServer {
    let dir = zone_dir();
    let mut corefile = String::new();
    let keys: Vec<String> = ZONES
        .iter()
        .map(|(origin, _)| format!("{}:{{PORT}}", origin.trim_end_matches('.')))
        .collect();
    let _ = writeln!(corefile, "{} {{", keys.join(" "));
    let _ = writeln!(corefile, "    bind 127.0.0.1");
    for (origin, file) in ZONES {
        let _ = writeln!(
            corefile,
            "    file {} {}",
            dir.join(file).display(),
            origin.trim_end_matches('.')
        );
    }
    let _ = writeln!(corefile, "    ready 127.0.0.1:{{ADMIN}}");
    let _ = writeln!(corefile, "}}");
    TestServer::start_with(&corefile, &[], true)
}

/// A `knotd` serving [`ZONES`] from the files in place; waits until every
/// zone's SOA is answered.
fn start_knot() -> Knot {
    let dir = zone_dir();
    let files: Vec<(&str, PathBuf)> = ZONES
        .iter()
        .map(|(origin, file)| (*origin, dir.join(file)))
        .collect();
    let borrowed: Vec<(&str, &Path)> = files
        .iter()
        .map(|(origin, path)| (*origin, path.as_path()))
        .collect();
    Knot::serving_files(&borrowed)
}
