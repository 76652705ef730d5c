//! Checks shared by the fuzz targets: an answer signpost wrote must be a
//! well-formed DNS message that matches the query it answers; and, for the
//! `answer` target, an independent reading of a query (from the RFCs, not
//! from signpost's parser) that says what the reply must be.
//!
//! Test code, outside both planes. Every check panics with the query and the
//! answer in hex, so a crash artifact explains itself.

use hickory_proto::op::{Message, MessageType, OpCode};
use signpost_proto::{ADVERTISED_UDP_SIZE, Query, ResponseMeta, rcode};

/// What the writer was asked for, to check the answer against.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// The byte limit the writer was given.
    pub limit: usize,
    /// The full response code written (extended codes included).
    pub rcode: u16,
}

/// Parses `answer` with hickory-proto and checks it against `query`.
///
/// Checks: length within the limit, ID, QR, opcode, RD and CD (RFC 1035
/// §4.1.1, RFC 4035 §3.1.6), the question echoed byte for byte (RFC 4343 §4.1),
/// the OPT record present exactly when the query had one, advertising 1232 and
/// copying DO (RFC 6891 §6.1.1, RFC 3225), and a truncated answer carrying no
/// records (RFC 2181 §9).
pub fn check_answer(
    packet: &[u8],
    query: &Query<'_>,
    answer: &[u8],
    meta: ResponseMeta,
    expected: Expected,
) {
    let context = || format!("query {}\nanswer {}", hex(packet), hex(answer));
    assert_eq!(meta.len, answer.len(), "{}", context());
    assert!(
        answer.len() <= expected.limit,
        "answer over {} bytes\n{}",
        expected.limit,
        context()
    );
    let question = query.question();
    assert_eq!(
        answer.get(12..12 + question.len()),
        Some(question),
        "question not echoed\n{}",
        context()
    );
    let message = match Message::from_vec(answer) {
        Ok(message) => message,
        Err(error) => panic!("hickory cannot parse the answer: {error}\n{}", context()),
    };
    let metadata = &message.metadata;
    assert_eq!(metadata.id, query.id(), "{}", context());
    assert_eq!(
        metadata.message_type,
        MessageType::Response,
        "{}",
        context()
    );
    assert_eq!(metadata.op_code, OpCode::Query, "{}", context());
    assert_eq!(
        metadata.recursion_desired,
        query.recursion_desired(),
        "{}",
        context()
    );
    assert_eq!(
        metadata.checking_disabled,
        query.checking_disabled(),
        "{}",
        context()
    );
    assert!(!metadata.recursion_available, "{}", context());
    assert_eq!(metadata.truncation, meta.truncated, "{}", context());
    assert_eq!(
        u16::from(metadata.response_code),
        expected.rcode,
        "{}",
        context()
    );

    assert_eq!(message.queries.len(), 1, "{}", context());
    let echoed = &message.queries[0];
    let mut labels = Vec::new();
    let wire = query.qname_wire();
    let mut at = 0;
    while wire[at] != 0 {
        let len = wire[at] as usize;
        labels.push(&wire[at + 1..at + 1 + len]);
        at += 1 + len;
    }
    assert!(
        echoed.name().iter().eq(labels.iter().copied()),
        "qname differs\n{}",
        context()
    );
    assert_eq!(u16::from(echoed.query_type()), query.qtype, "{}", context());
    assert_eq!(
        u16::from(echoed.query_class()),
        query.qclass,
        "{}",
        context()
    );

    match (query.edns, &message.edns) {
        (None, None) => {}
        (Some(asked), Some(given)) => {
            assert_eq!(given.max_payload(), ADVERTISED_UDP_SIZE, "{}", context());
            assert_eq!(given.version(), 0, "{}", context());
            assert_eq!(given.flags().dnssec_ok, asked.dnssec_ok, "{}", context());
        }
        (asked, given) => panic!(
            "OPT mismatch: asked {asked:?}, given {given:?}\n{}",
            context()
        ),
    }
    if meta.truncated {
        assert!(
            message.answers.is_empty()
                && message.authorities.is_empty()
                && message.additionals.is_empty(),
            "truncated answer carries records\n{}",
            context()
        );
    }
    if expected.rcode == rcode::BADVERS {
        assert!(message.answers.is_empty(), "{}", context());
    }
}

/// Lower-case hex, for failure messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// === the answer target's independent view of a query ===

/// What a server must do with a datagram, decided from the RFCs alone (not
/// from signpost's parser): the answer target compares the real responder
/// with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// No reply: shorter than a header, or a response (QR=1), RFC 1035
    /// §4.1.1; answering a response could start a loop.
    Drop,
    /// NOTIMP, header only: an opcode other than QUERY (RFC 1035 §4.1.1).
    NotImp,
    /// FORMERR, header only: the message is malformed (the reason says how).
    FormErr(&'static str),
    /// A well-formed query: an answer echoing its question.
    Answer(Question),
}

/// A well-formed query as the classifier read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The question section's bytes: name, type, class.
    pub section: std::ops::Range<usize>,
    /// The name's labels, lower-cased (ASCII).
    pub labels: Vec<Vec<u8>>,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The OPT record, if the additional section holds one.
    pub opt: Option<Opt>,
}

/// What a query's OPT record says (RFC 6891 §6.1.2, §6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// The requestor's UDP payload size (the CLASS field).
    pub udp_size: u16,
    /// The EDNS version.
    pub version: u8,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
}

impl Question {
    /// The largest UDP reply allowed: 512 bytes without OPT (RFC 1035
    /// §4.2.1), else the advertised size, at least 512 (RFC 6891 §6.2.5) and
    /// at most signpost's advertised 1232.
    pub fn udp_limit(&self) -> usize {
        self.opt.map_or(512, |opt| {
            usize::from(opt.udp_size).clamp(512, usize::from(ADVERTISED_UDP_SIZE))
        })
    }

    /// True when the name is `zone` or below it (labels compared without
    /// case, RFC 4343 §3).
    pub fn is_within(&self, zone: &[&str]) -> bool {
        self.labels.len() >= zone.len()
            && self.labels[self.labels.len() - zone.len()..]
                .iter()
                .zip(zone)
                .all(|(label, zone)| label.as_slice() == zone.as_bytes())
    }
}

/// Classifies a datagram by the rules of RFC 1035 §4.1, RFC 9619, RFC 6891
/// and RFC 7871, written here without signpost's parser.
pub fn classify(packet: &[u8]) -> Expectation {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return Expectation::Drop;
    }
    if (packet[2] >> 3) & 0x0f != 0 {
        return Expectation::NotImp;
    }
    match read_query(packet) {
        Ok(question) => Expectation::Answer(question),
        Err(reason) => Expectation::FormErr(reason),
    }
}

fn read_query(packet: &[u8]) -> Result<Question, &'static str> {
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    // RFC 9619: a QUERY has exactly one question.
    if count(4) != 1 {
        return Err("QDCOUNT is not 1");
    }
    // The question's name: no name precedes it, so a compression pointer
    // there cannot point at a prior occurrence (RFC 1035 §4.1.4).
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *packet.get(at).ok_or("question name runs past the end")?;
        match len {
            0 => {
                at += 1;
                break;
            }
            1..=63 => {
                let label = packet
                    .get(at + 1..at + 1 + usize::from(len))
                    .ok_or("question label runs past the end")?;
                labels.push(label.to_ascii_lowercase());
                at += 1 + usize::from(len);
            }
            0xc0..=0xff => return Err("compression pointer in the question"),
            _ => return Err("extended label type (RFC 6891 §5)"),
        }
        // RFC 1035 §3.1: at most 255 bytes, the root label included.
        if at - 12 + 1 > 255 {
            return Err("question name over 255 bytes");
        }
    }
    let fixed = packet.get(at..at + 4).ok_or("QTYPE/QCLASS cut off")?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let section = 12..at + 4;
    at += 4;

    let mut opt = None;
    let answers_and_authority = u32::from(count(6)) + u32::from(count(8));
    for index in 0..answers_and_authority + u32::from(count(10)) {
        let owner = at;
        at = skip_owner(packet, at)?;
        let fixed = packet.get(at..at + 10).ok_or("record cut off")?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdata = at + 10;
        let end = rdata + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if end > packet.len() {
            return Err("RDATA runs past the end");
        }
        // RFC 6891 §6.1.1: the OPT pseudo-record of the additional section.
        if index >= answers_and_authority && rtype == 41 {
            if opt.is_some() {
                return Err("two OPT records (RFC 6891 §6.1.1)");
            }
            if at != owner + 1 {
                return Err("OPT owner is not the root (RFC 6891 §6.1.2)");
            }
            check_options(&packet[rdata..end])?;
            opt = Some(Opt {
                udp_size: u16::from_be_bytes([fixed[2], fixed[3]]),
                version: fixed[5],
                dnssec_ok: fixed[6] & 0x80 != 0,
            });
        }
        at = end;
    }
    Ok(Question {
        section,
        labels,
        qtype,
        qclass,
        opt,
    })
}

/// Skips a record's owner name: labels, then the root label or a pointer
/// (which ends a name, RFC 1035 §4.1.4). Where a pointer leads is left
/// alone: nothing in a query's records is read by name, so a server may
/// ignore it.
fn skip_owner(packet: &[u8], mut at: usize) -> Result<usize, &'static str> {
    let start = at;
    loop {
        let len = *packet.get(at).ok_or("record name runs past the end")?;
        match len {
            0 => return Ok(at + 1),
            1..=63 => at += 1 + usize::from(len),
            0xc0..=0xff => return Ok(at + 2),
            _ => return Err("extended label type in a record (RFC 6891 §5)"),
        }
        if at - start + 1 > 255 {
            return Err("record name over 255 bytes");
        }
    }
}

/// RFC 6891 §6.1.2 options, and RFC 7871 §6 and §7.1.2 for Client Subnet: a
/// malformed option or more than one ECS option is FORMERR.
fn check_options(mut options: &[u8]) -> Result<(), &'static str> {
    let mut subnet = false;
    while !options.is_empty() {
        let head = options.get(..4).ok_or("option header cut off")?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = options.get(4..4 + len).ok_or("option data cut off")?;
        if code == 8 {
            if subnet {
                return Err("two ECS options");
            }
            subnet = true;
            let fixed = data.get(..4).ok_or("ECS option too short")?;
            let max = match u16::from_be_bytes([fixed[0], fixed[1]]) {
                1 => 32,
                2 => 128,
                _ => return Err("ECS family unknown"),
            };
            let (source, scope) = (fixed[2], fixed[3]);
            if source > max {
                return Err("ECS source prefix longer than the address");
            }
            if scope != 0 {
                return Err("ECS scope prefix in a query");
            }
            let address = &data[4..];
            if address.len() != usize::from(source).div_ceil(8) {
                return Err("ECS address length differs from the prefix");
            }
            let used = source % 8;
            if used != 0 && address.last().is_some_and(|last| last & (0xff >> used) != 0) {
                return Err("ECS address bits set past the prefix");
            }
        }
        options = &options[4 + len..];
    }
    Ok(())
}

/// Checks a header-only error reply (FORMERR, NOTIMP): 12 bytes, the query's
/// ID, QR set, the expected RCODE, no sections (RFC 1035 §4.1.1).
pub fn check_header_only(packet: &[u8], reply: &[u8], rcode: u8) {
    let context = || format!("query {}\nreply {}", hex(packet), hex(reply));
    assert_eq!(reply.len(), 12, "{}", context());
    assert_eq!(reply[..2], packet[..2], "ID\n{}", context());
    assert_eq!(reply[2] & 0x80, 0x80, "QR\n{}", context());
    assert_eq!(reply[3] & 0x0f, rcode, "RCODE\n{}", context());
    assert_eq!(reply[4..12], [0; 8], "counts\n{}", context());
}

/// Checks an answer to a well-formed query against the query itself: within
/// `limit`, parsed by hickory-proto, the query's ID, QR, opcode QUERY, RD and
/// CD copied (RFC 1035 §4.1.1, RFC 4035 §3.1.6), RA clear (no recursion
/// here), the question echoed byte for byte (RFC 4343 §4.1), an OPT exactly
/// when the query had one, advertising 1232, version 0 and the query's DO
/// (RFC 6891 §6.1.1, RFC 3225), no records in a truncated answer (RFC 2181
/// §9, and TC only over UDP), and an RCODE among `rcodes`.
pub fn check_reply(
    packet: &[u8],
    question: &Question,
    reply: &[u8],
    limit: usize,
    udp: bool,
    rcodes: &[u16],
) {
    let context = || format!("query {}\nreply {}", hex(packet), hex(reply));
    assert!(
        reply.len() <= limit,
        "reply over {limit} bytes\n{}",
        context()
    );
    let echoed = 12..12 + question.section.len();
    assert_eq!(
        reply.get(echoed),
        packet.get(question.section.clone()),
        "question not echoed\n{}",
        context()
    );
    let message = match Message::from_vec(reply) {
        Ok(message) => message,
        Err(error) => panic!("hickory cannot parse the reply: {error}\n{}", context()),
    };
    let metadata = &message.metadata;
    assert_eq!(metadata.id, u16::from_be_bytes([packet[0], packet[1]]), "{}", context());
    assert_eq!(metadata.message_type, MessageType::Response, "{}", context());
    assert_eq!(metadata.op_code, OpCode::Query, "{}", context());
    assert_eq!(metadata.recursion_desired, packet[2] & 0x01 != 0, "{}", context());
    assert_eq!(metadata.checking_disabled, packet[3] & 0x10 != 0, "{}", context());
    assert!(!metadata.recursion_available, "{}", context());
    assert_eq!(message.queries.len(), 1, "{}", context());
    let rcode = u16::from(metadata.response_code);
    assert!(
        rcodes.contains(&rcode),
        "RCODE {rcode}, expected one of {rcodes:?}\n{}",
        context()
    );
    match (question.opt, &message.edns) {
        (None, None) => {}
        (Some(asked), Some(given)) => {
            assert_eq!(given.max_payload(), ADVERTISED_UDP_SIZE, "{}", context());
            assert_eq!(given.version(), 0, "{}", context());
            assert_eq!(given.flags().dnssec_ok, asked.dnssec_ok, "{}", context());
        }
        (asked, given) => panic!(
            "OPT mismatch: asked {asked:?}, given {given:?}\n{}",
            context()
        ),
    }
    if metadata.truncation {
        assert!(udp, "TC over TCP\n{}", context());
        assert!(
            message.answers.is_empty()
                && message.authorities.is_empty()
                && message.additionals.is_empty(),
            "truncated answer carries records\n{}",
            context()
        );
    }
}

/// Highest line number an error about `text` may name: its newlines plus
/// one (a message about the end of input points one past the last line).
pub fn last_line(text: &[u8]) -> u32 {
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(newlines)
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// A file in this process's own scratch directory, for parsers that read a
/// path (zone files, catalog manifests): one directory per process under the
/// system temp dir, `signpost-fuzz-<pid>`. `scripts/fuzz` and `scripts/test`
/// remove it after the run.
pub fn scratch_file(name: &str) -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("signpost-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    });
    dir.join(name)
}
