//! `--provider=rfc2136`: DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945),
//! records listed by zone transfer (RFC 5936), over TCP.
//!
//! Control plane. Wire formats come from `signpost_proto` (`update`, `tsig`,
//! `walk`); this module holds the transport and the mapping between
//! endpoints and records:
//!
//! ```text
//! records:  per --rfc2136-zone: AXFR (signed) ─▶ every message verified ─▶ A AAAA CNAME DNAME NS PTR TXT SRV MX
//! apply:    creates, then updates, then deletes; a record and its TXT in one message (atomic, RFC 2136 §3.7)
//!           batches of --rfc2136-batch-change-size record sets, one UPDATE per zone per batch
//! ```
//!
//! Differences from external-dns v0.22, each deliberate: a record and its
//! ownership TXT always share one UPDATE message (external-dns can split them
//! across batches, leaving a TXT that claims a record never written); a name
//! in no configured zone is skipped with a warning (external-dns sends it to
//! the root zone); the TTL written without `--rfc2136-min-ttl` or a TTL
//! annotation is 300 s (external-dns writes 0); SRV and MX records are read
//! back (external-dns cannot), and a TXT record's character-strings are read
//! as one target (external-dns reads only the first, which breaks long
//! encrypted values).
//!
//! Invariant: the TSIG secret stays inside [`tsig::Key`]; no error or log
//! line carries it.

use super::{Provider, ProviderError, grouped};
use crate::endpoint::{Endpoint, RecordType};
use crate::filter::DomainFilter;
use crate::plan::Changes;
use signpost_model::BoxFuture;
use signpost_proto::tsig::{self, TsigError};
use signpost_proto::update::UpdateBuilder;
use signpost_proto::walk::{self, Records};
use signpost_proto::{CLASS_IN, MAX_NAME_LEN, Name, rcode, rtype};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROVIDER: &str = "rfc2136";
/// TTL written when neither the endpoint nor `--rfc2136-min-ttl` sets one.
pub const DEFAULT_TTL: u32 = 300;
/// How long one connection, request or transfer message may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `--rfc2136-load-balancing-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The first host; the next only when it fails.
    Disabled,
    /// Each request starts at the next host.
    RoundRobin,
    /// Each request starts at a random host.
    Random,
}

/// The provider's settings.
#[derive(Debug, Clone)]
pub struct Rfc2136Config {
    /// `--rfc2136-host` with `--rfc2136-port`.
    pub servers: Vec<String>,
    /// `--rfc2136-zone`, without trailing dots.
    pub zones: Vec<String>,
    /// The TSIG key (none with `--rfc2136-insecure`).
    pub key: Option<tsig::Key>,
    /// `--rfc2136-axfr`: list records by zone transfer.
    pub axfr: bool,
    /// `--rfc2136-min-ttl` in seconds.
    pub min_ttl: u32,
    /// `--rfc2136-batch-change-size`.
    pub batch_size: usize,
    /// `--rfc2136-load-balancing-strategy`.
    pub strategy: Strategy,
}

/// One request to a server.
#[derive(Clone, Copy)]
enum Exchange<'a> {
    Transfer(&'a Name),
    Update(&'a [u8]),
}

/// The RFC 2136 provider.
#[derive(Debug)]
pub struct Rfc2136 {
    config: Rfc2136Config,
    zones: Vec<Name>,
    next: AtomicUsize,
}

// === impl Rfc2136 ===

impl Rfc2136 {
    /// A provider for `config`; zone names must be valid.
    pub fn new(config: Rfc2136Config) -> Result<Self, String> {
        let mut zones = Vec::new();
        for zone in &config.zones {
            zones
                .push(Name::from_ascii(zone).map_err(|e| format!("--rfc2136-zone {zone:?}: {e}"))?);
        }
        if zones.is_empty() {
            zones.push(Name::root());
        }
        // Most specific first.
        zones.sort_by_key(|z| std::cmp::Reverse(z.label_count()));
        Ok(Self {
            config,
            zones,
            next: AtomicUsize::new(0),
        })
    }

    fn zone_of(&self, name: &Name) -> Option<&Name> {
        self.zones.iter().find(|zone| name.is_within(zone))
    }

    /// The servers in the order this request tries them.
    fn servers(&self) -> Vec<&String> {
        let count = self.config.servers.len();
        let start = match self.config.strategy {
            Strategy::Disabled => 0,
            Strategy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed),
            Strategy::Random => {
                let mut bytes = [0u8; 8];
                let _ = getrandom::getrandom(&mut bytes);
                usize::from_ne_bytes(bytes)
            }
        };
        (0..count)
            .map(|i| &self.config.servers[(start + i) % count.max(1)])
            .collect()
    }

    /// Runs one exchange against each server until one succeeds; the last
    /// retryable error otherwise (a non-retryable one stops at once).
    async fn exchange(&self, operation: Exchange<'_>) -> Result<Vec<Endpoint>, ProviderError> {
        let mut last = None;
        for server in self.servers() {
            let result = match operation {
                Exchange::Transfer(zone) => self.transfer(server, zone).await,
                Exchange::Update(message) => {
                    self.send_update(server, message).await.map(|()| Vec::new())
                }
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) if error.is_retryable() => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::Unreachable {
            provider: PROVIDER,
            endpoint: String::new(),
            detail: "no --rfc2136-host given".to_owned(),
        }))
    }

    async fn transfer(&self, server: &str, zone: &Name) -> Result<Vec<Endpoint>, ProviderError> {
        let unreachable = |detail: String| ProviderError::Unreachable {
            provider: PROVIDER,
            endpoint: server.to_owned(),
            detail,
        };
        let mut stream = connect(server).await?;
        let id = random_id();
        let mut question = zone.as_wire().to_vec();
        question.extend_from_slice(&rtype::AXFR.to_be_bytes());
        question.extend_from_slice(&CLASS_IN.to_be_bytes());
        let mut query = signpost_proto::message::query(id, &question, false, false, None);
        let mut verifier = self
            .config
            .key
            .as_ref()
            .map(|key| tsig::Verifier::new(key, key.sign(&mut query, now())));
        send(&mut stream, &query)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut records: BTreeMap<(String, RecordType), Endpoint> = BTreeMap::new();
        let mut soa_seen = 0;
        let mut messages = 0usize;
        while soa_seen < 2 {
            let message = receive(&mut stream)
                .await
                .map_err(|e| unreachable(format!("zone transfer of {zone}: {e}")))?;
            messages += 1;
            check_reply(&message, id, server, &format!("zone transfer of {zone}"))?;
            if let Some(verifier) = verifier.as_mut() {
                verifier
                    .verify(&message, now())
                    .map_err(|e| tsig_error(e, server))?;
            }
            let (rows, soa) = transfer_message(&message).ok_or_else(|| malformed(server))?;
            soa_seen += soa;
            for row in rows {
                let entry = records
                    .entry((row.name.clone(), row.record_type))
                    .or_insert_with(|| {
                        Endpoint::new(&row.name, row.record_type, Vec::new()).with_ttl(row.ttl)
                    });
                entry.targets.push(row.target);
            }
            if messages > 1_000_000 {
                return Err(malformed(server));
            }
        }
        if let Some(verifier) = &verifier {
            // RFC 8945 §5.3.1: the last message of a transfer must be signed.
            if !verifier.ended_signed() {
                return Err(tsig_error(TsigError::Unsigned, server));
            }
        }
        Ok(records.into_values().collect())
    }

    async fn send_update(&self, server: &str, message: &[u8]) -> Result<(), ProviderError> {
        let mut message = message.to_vec();
        let id = u16::from_be_bytes([message[0], message[1]]);
        let mut verifier = self
            .config
            .key
            .as_ref()
            .map(|key| tsig::Verifier::new(key, key.sign(&mut message, now())));
        let mut stream = connect(server).await?;
        let io = |e: std::io::Error| ProviderError::Unreachable {
            provider: PROVIDER,
            endpoint: server.to_owned(),
            detail: e.to_string(),
        };
        send(&mut stream, &message).await.map_err(io)?;
        let reply = receive(&mut stream).await.map_err(io)?;
        check_reply(&reply, id, server, "update")?;
        if let Some(verifier) = verifier.as_mut() {
            verifier
                .verify(&reply, now())
                .map_err(|e| tsig_error(e, server))?;
        }
        Ok(())
    }

    /// The UPDATE messages of one batch, one per zone.
    fn messages(
        &self,
        adds: &[&Endpoint],
        deletes: &[&Endpoint],
    ) -> Result<Vec<(Name, Vec<u8>)>, ProviderError> {
        let mut builders: BTreeMap<Name, UpdateBuilder> = BTreeMap::new();
        for (endpoint, add) in deletes
            .iter()
            .map(|e| (e, false))
            .chain(adds.iter().map(|e| (e, true)))
        {
            let owner = Name::from_ascii(&endpoint.dns_name)
                .map_err(|e| rejected(&endpoint.dns_name, &e.to_string()))?;
            let Some(zone) = self.zone_of(&owner).cloned() else {
                tracing::warn!(name = %endpoint.dns_name, "no --rfc2136-zone holds this name; skipped");
                continue;
            };
            let ttl = if endpoint.ttl > 0 {
                endpoint.ttl.max(self.config.min_ttl)
            } else if self.config.min_ttl > 0 {
                self.config.min_ttl
            } else {
                DEFAULT_TTL
            };
            let builder = builders
                .entry(zone.clone())
                .or_insert_with(|| UpdateBuilder::new(random_id(), &zone));
            for target in &endpoint.targets {
                let (record_type, rdata) = rdata(endpoint.record_type, target)
                    .map_err(|detail| rejected(&endpoint.dns_name, &detail))?;
                if add {
                    builder.add(&owner, record_type, ttl, &rdata);
                } else {
                    builder.delete(&owner, record_type, &rdata);
                }
            }
        }
        Ok(builders
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(zone, b)| (zone, b.finish()))
            .collect())
    }

    async fn apply(&self, changes: &Changes) -> Result<(), ProviderError> {
        let size = self.config.batch_size.max(1);
        // (adds, deletes) per batch; a record and its TXT stay in one group.
        let mut batches: Vec<(Vec<&Endpoint>, Vec<&Endpoint>)> = Vec::new();
        for group in batch(grouped(&changes.create), size) {
            batches.push((group, Vec::new()));
        }
        let pairs: Vec<(&Endpoint, &Endpoint)> =
            changes.update_old.iter().zip(&changes.update_new).collect();
        let news: Vec<Endpoint> = pairs.iter().map(|(_, n)| (*n).clone()).collect();
        let by_name: Vec<Vec<&Endpoint>> = grouped(&news);
        let mut update_groups: Vec<Vec<(&Endpoint, &Endpoint)>> = Vec::new();
        for group in &by_name {
            update_groups.push(
                group
                    .iter()
                    .filter_map(|new| pairs.iter().find(|(_, n)| *n == *new).copied())
                    .collect(),
            );
        }
        let mut current: Vec<(&Endpoint, &Endpoint)> = Vec::new();
        for group in update_groups {
            if !current.is_empty() && current.len() + group.len() > size {
                batches.push((
                    current.iter().map(|p| p.1).collect(),
                    current.iter().map(|p| p.0).collect(),
                ));
                current.clear();
            }
            current.extend(group);
        }
        if !current.is_empty() {
            batches.push((
                current.iter().map(|p| p.1).collect(),
                current.iter().map(|p| p.0).collect(),
            ));
        }
        for group in batch(grouped(&changes.delete), size) {
            batches.push((Vec::new(), group));
        }

        let mut failures = Vec::new();
        let mut total = 0;
        for (adds, deletes) in &batches {
            for (zone, message) in self.messages(adds, deletes)? {
                total += 1;
                let result = self.exchange(Exchange::Update(&message)).await;
                if let Err(error) = result {
                    tracing::warn!(zone = %zone, error = %error, "update failed");
                    failures.push(error);
                }
            }
        }
        match failures.len() {
            0 => Ok(()),
            1 if total == 1 => Err(failures.remove(0)),
            failed => Err(ProviderError::Partial {
                provider: PROVIDER,
                failed,
                total,
                first: Box::new(failures.remove(0)),
            }),
        }
    }
}

/// Packs groups into batches of at most `size` record sets (a group larger
/// than `size` is its own batch: a record never leaves its TXT).
fn batch(groups: Vec<Vec<&Endpoint>>, size: usize) -> Vec<Vec<&Endpoint>> {
    let mut out: Vec<Vec<&Endpoint>> = Vec::new();
    let mut current: Vec<&Endpoint> = Vec::new();
    for group in groups {
        if !current.is_empty() && current.len() + group.len() > size {
            out.push(std::mem::take(&mut current));
        }
        current.extend(group);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl Provider for Rfc2136 {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn records(&self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>> {
        Box::pin(async move {
            if !self.config.axfr {
                return Ok(Vec::new());
            }
            let mut all = Vec::new();
            for zone in &self.zones {
                let records = self.exchange(Exchange::Transfer(zone)).await?;
                all.extend(records);
            }
            Ok(all)
        })
    }

    fn apply_changes<'a>(
        &'a self,
        changes: &'a Changes,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.apply(changes))
    }

    fn zone_filter(&self) -> Option<DomainFilter> {
        if self.config.zones.is_empty() {
            return None;
        }
        Some(DomainFilter::new(&self.config.zones, &[]))
    }
}

// === wire helpers ===

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::getrandom(&mut bytes);
    u16::from_ne_bytes(bytes)
}

fn malformed(server: &str) -> ProviderError {
    ProviderError::Server {
        provider: PROVIDER,
        endpoint: server.to_owned(),
        detail: "malformed reply".to_owned(),
    }
}

fn rejected(name: &str, detail: &str) -> ProviderError {
    ProviderError::Rejected {
        provider: PROVIDER,
        endpoint: name.to_owned(),
        detail: detail.to_owned(),
    }
}

fn tsig_error(error: TsigError, server: &str) -> ProviderError {
    ProviderError::Unauthorized {
        provider: PROVIDER,
        endpoint: server.to_owned(),
        detail: error.to_string(),
    }
}

/// Checks ID, QR and RCODE of a reply.
fn check_reply(message: &[u8], id: u16, server: &str, what: &str) -> Result<(), ProviderError> {
    if message.len() < walk::HEADER_LEN
        || u16::from_be_bytes([message[0], message[1]]) != id
        || message[2] & 0x80 == 0
    {
        return Err(malformed(server));
    }
    let code = u16::from(message[3] & 0x0f);
    let endpoint = server.to_owned();
    let name = rcode_name(code);
    match code {
        rcode::NOERROR => Ok(()),
        // RFC 8945 §5.3.2: NOTAUTH with a TSIG error: our key was refused.
        9 => Err(ProviderError::Unauthorized {
            provider: PROVIDER,
            endpoint,
            detail: format!("{what}: {name}"),
        }),
        rcode::SERVFAIL => Err(ProviderError::Server {
            provider: PROVIDER,
            endpoint,
            detail: format!("{what}: {name}"),
        }),
        _ => Err(ProviderError::Rejected {
            provider: PROVIDER,
            endpoint,
            detail: format!("{what}: {name}"),
        }),
    }
}

fn rcode_name(code: u16) -> &'static str {
    match code {
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "error",
    }
}

async fn connect(server: &str) -> Result<TcpStream, ProviderError> {
    let unreachable = |detail: String| ProviderError::Unreachable {
        provider: PROVIDER,
        endpoint: server.to_owned(),
        detail,
    };
    match tokio::time::timeout(TIMEOUT, TcpStream::connect(server)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(unreachable(error.to_string())),
        Err(_) => Err(unreachable("connection timed out".to_owned())),
    }
}

/// RFC 1035 §4.2.2: TCP messages carry a two-byte length.
async fn send(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    tokio::time::timeout(TIMEOUT, stream.write_all(&framed))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

async fn receive(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let read = async {
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).await?;
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut message).await?;
        Ok(message)
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))?
}

/// One record of a zone transfer, in the form the planner compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    /// Owner name, lower case, no trailing dot.
    pub name: String,
    /// Its type (only the types sync manages; others are left out).
    pub record_type: RecordType,
    /// The value in presentation form (TXT quoted).
    pub target: String,
    /// Its TTL.
    pub ttl: u32,
}

/// One message of a zone transfer (RFC 5936 §2.2): the class-IN records of
/// its answer section that sync manages, and how many SOA records it holds
/// (the second SOA ends the transfer). `None` when the message is malformed.
pub fn transfer_message(message: &[u8]) -> Option<(Vec<TransferRow>, usize)> {
    let [_, answers, _, _] = walk::section_counts(message)?;
    let start = walk::question_end(message)?;
    let mut rows = Vec::new();
    let mut soa = 0;
    for record in Records::new(message, start, u32::from(answers)) {
        let record = record.ok()?;
        if record.rtype == rtype::SOA {
            soa += 1;
            continue;
        }
        if record.class != CLASS_IN {
            continue;
        }
        if let Some((name, record_type, target)) = presentation(message, &record) {
            rows.push(TransferRow {
                name,
                record_type,
                target,
                ttl: record.ttl,
            });
        }
    }
    Some((rows, soa))
}

fn read_name(message: &[u8], at: usize) -> Option<(Name, usize)> {
    let mut buffer = [0u8; MAX_NAME_LEN];
    let (len, after) = walk::read_name(message, at, &mut buffer).ok()?;
    Some((Name::from_wire(&buffer[..len].to_ascii_lowercase())?, after))
}

/// A name in presentation form without the final dot; `None` for a name with
/// bytes that print only as `\DDD` or `\.` escapes. Such names are not host
/// names, so sync never owns them, and what it could not write back as UPDATE
/// RDATA it leaves out of its view of the zone rather than fail on later.
fn text(name: &Name) -> Option<String> {
    let mut text = name.to_string();
    if text.contains('\\') {
        return None;
    }
    text.pop();
    Some(text)
}

/// A record as (owner, type, target) in presentation form, for the types
/// endpoints carry.
fn presentation(message: &[u8], record: &walk::Record) -> Option<(String, RecordType, String)> {
    let (owner, _) = read_name(message, record.start)?;
    let rdata = &message[record.rdata..record.end];
    let u16_at = |at: usize| {
        rdata
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (record_type, target) = match record.rtype {
        rtype::A => (
            RecordType::A,
            Ipv4Addr::from(<[u8; 4]>::try_from(rdata).ok()?).to_string(),
        ),
        rtype::AAAA => (
            RecordType::Aaaa,
            Ipv6Addr::from(<[u8; 16]>::try_from(rdata).ok()?).to_string(),
        ),
        rtype::CNAME => (
            RecordType::Cname,
            text(&read_name(message, record.rdata)?.0)?,
        ),
        rtype::NS => (RecordType::Ns, text(&read_name(message, record.rdata)?.0)?),
        rtype::PTR => (RecordType::Ptr, text(&read_name(message, record.rdata)?.0)?),
        39 => (
            RecordType::Dname,
            text(&read_name(message, record.rdata)?.0)?,
        ),
        rtype::MX => (
            RecordType::Mx,
            format!(
                "{} {}",
                u16_at(0)?,
                text(&read_name(message, record.rdata + 2)?.0)?
            ),
        ),
        rtype::SRV => (
            RecordType::Srv,
            format!(
                "{} {} {} {}",
                u16_at(0)?,
                u16_at(2)?,
                u16_at(4)?,
                text(&read_name(message, record.rdata + 6)?.0)? + "."
            ),
        ),
        rtype::TXT => (RecordType::Txt, quote_txt(rdata)?),
        _ => return None,
    };
    Some((text(&owner)?, record_type, target))
}

/// TXT RDATA as one quoted string: the character-strings joined (RFC 1035
/// §3.3.14), `"` and `\` escaped, other non-printable bytes as `\DDD`.
fn quote_txt(rdata: &[u8]) -> Option<String> {
    let mut out = String::from("\"");
    let mut at = 0;
    while at < rdata.len() {
        let len = usize::from(rdata[at]);
        let chunk = rdata.get(at + 1..at + 1 + len)?;
        for &b in chunk {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x20..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        at += 1 + len;
    }
    out.push('"');
    Some(out)
}

/// TXT presentation text (one or more quoted strings, or one bare word)
/// into character-strings of at most 255 bytes.
fn unquote_txt(text: &str) -> Result<Vec<u8>, String> {
    let mut strings: Vec<Vec<u8>> = Vec::new();
    let bytes = text.trim().as_bytes();
    if !bytes.starts_with(b"\"") {
        strings.push(bytes.to_vec());
    } else {
        let mut at = 0;
        while at < bytes.len() {
            match bytes[at] {
                b' ' | b'\t' => at += 1,
                b'"' => {
                    at += 1;
                    let mut current = Vec::new();
                    loop {
                        match bytes.get(at) {
                            None => return Err(format!("unterminated TXT string {text:?}")),
                            Some(b'"') => {
                                at += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let digits = bytes
                                    .get(at + 1..at + 4)
                                    .filter(|d| d.iter().all(u8::is_ascii_digit));
                                if let Some(digits) = digits {
                                    let value: u16 = std::str::from_utf8(digits)
                                        .ok()
                                        .and_then(|d| d.parse().ok())
                                        .unwrap_or(256);
                                    current.push(
                                        u8::try_from(value)
                                            .map_err(|_| format!("bad escape in {text:?}"))?,
                                    );
                                    at += 4;
                                } else {
                                    current.push(
                                        *bytes
                                            .get(at + 1)
                                            .ok_or_else(|| format!("bad escape in {text:?}"))?,
                                    );
                                    at += 2;
                                }
                            }
                            Some(&b) => {
                                current.push(b);
                                at += 1;
                            }
                        }
                    }
                    strings.push(current);
                }
                _ => return Err(format!("unexpected text after a TXT string in {text:?}")),
            }
        }
    }
    let mut rdata = Vec::new();
    for string in strings {
        if string.is_empty() {
            rdata.push(0);
        }
        for chunk in string.chunks(255) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk);
        }
    }
    Ok(rdata)
}

fn name_rdata(target: &str) -> Result<Vec<u8>, String> {
    Name::from_ascii(target)
        .map(|n| n.as_wire().to_vec())
        .map_err(|e| e.to_string())
}

/// A target in presentation form as (type, RDATA), as an UPDATE carries it;
/// every target [`transfer_message`] reads encodes (sync deletes what it read).
pub fn rdata(record_type: RecordType, target: &str) -> Result<(u16, Vec<u8>), String> {
    let bad = || format!("{record_type} target {target:?} is not valid");
    Ok(match record_type {
        RecordType::A => match target.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => (rtype::A, ip.octets().to_vec()),
            _ => return Err(bad()),
        },
        RecordType::Aaaa => match target.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => (rtype::AAAA, ip.octets().to_vec()),
            _ => return Err(bad()),
        },
        RecordType::Cname => (rtype::CNAME, name_rdata(target)?),
        RecordType::Ns => (rtype::NS, name_rdata(target)?),
        RecordType::Ptr => (rtype::PTR, name_rdata(target)?),
        RecordType::Dname => (39, name_rdata(target)?),
        RecordType::Txt => (rtype::TXT, unquote_txt(target)?),
        RecordType::Mx => {
            let (preference, host) = target.split_once(' ').ok_or_else(bad)?;
            let mut out = preference
                .parse::<u16>()
                .map_err(|_| bad())?
                .to_be_bytes()
                .to_vec();
            out.extend(name_rdata(host.trim())?);
            (rtype::MX, out)
        }
        RecordType::Srv => {
            let fields: Vec<&str> = target.split_whitespace().collect();
            let [priority, weight, port, host] = fields.as_slice() else {
                return Err(bad());
            };
            let mut out = Vec::new();
            for number in [priority, weight, port] {
                out.extend(number.parse::<u16>().map_err(|_| bad())?.to_be_bytes());
            }
            out.extend(name_rdata(host)?);
            (rtype::SRV, out)
        }
        RecordType::Naptr => {
            return Err(format!(
                "{record_type} records are not supported by rfc2136"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: an NS target with bytes that print only as `\DDD`
    /// escapes could not be encoded again, so sync could never delete what it
    /// read. Such names are left out of the transfer; every row read encodes.
    #[test]
    fn names_that_print_with_escapes_are_left_out_of_a_transfer() {
        let hex = "00000184000001000600000000076578606d706c6503636f6d0000fc0001c00c000200010000012c00003d00017332266578616d70949afc9c9092ff804e000000000000fa0000151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000100000000000000000000000000000037373737373737370004c00002";
        let message: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let (rows, _) = transfer_message(&message[1..]).expect("a readable message");
        for row in &rows {
            assert!(!row.target.contains('\\'), "{row:?}");
            rdata(row.record_type, &row.target).unwrap_or_else(|e| panic!("{row:?}: {e}"));
        }
    }

    /// TXT text survives a round trip through RDATA, long values are split
    /// into 255-byte strings and read back as one target.
    #[test]
    fn txt_round_trip() {
        let value = "\"heritage=external-dns,external-dns/owner=default,external-dns/resource=service/default/nginx\"";
        let (_, rdata) = rdata(RecordType::Txt, value).unwrap();
        assert_eq!(quote_txt(&rdata).unwrap(), value);
        let long = format!("\"{}\"", "x".repeat(300));
        let (_, rdata) = super::rdata(RecordType::Txt, &long).unwrap();
        assert_eq!(rdata[0], 255);
        assert_eq!(quote_txt(&rdata).unwrap(), long);
        let escaped = "\"a\\\"b\\\\c\\010\"";
        let (_, rdata) = super::rdata(RecordType::Txt, escaped).unwrap();
        assert_eq!(&rdata[1..], b"a\"b\\c\n");
        assert_eq!(quote_txt(&rdata).unwrap(), escaped);
        assert!(super::rdata(RecordType::Txt, "\"open").is_err());
    }

    #[test]
    fn other_rdata() {
        assert_eq!(
            rdata(RecordType::A, "192.0.2.1").unwrap(),
            (rtype::A, vec![192, 0, 2, 1])
        );
        assert!(rdata(RecordType::A, "::1").is_err());
        assert_eq!(
            rdata(RecordType::Srv, "0 50 30080 web.example.com.")
                .unwrap()
                .1[..6],
            [0, 0, 0, 50, 0x75, 0x80]
        );
        assert_eq!(
            rdata(RecordType::Mx, "10 mail.example.com").unwrap().1[..2],
            [0, 10]
        );
    }

    /// Groups never split: a record and its TXT share a batch even when the
    /// batch size is smaller.
    #[test]
    fn batches_keep_groups() {
        let record = Endpoint::new("a.example.com", RecordType::A, vec!["192.0.2.1".to_owned()]);
        let txt = Endpoint::new("a-a.example.com", RecordType::Txt, vec!["\"x\"".to_owned()])
            .with_label(crate::endpoint::OWNED_RECORD_LABEL, "a.example.com");
        let other = Endpoint::new("b.example.com", RecordType::A, vec!["192.0.2.2".to_owned()]);
        let all = vec![record, other, txt];
        let batches = batch(grouped(&all), 1);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].len(), 2);
    }
}
