//! Checks shared by the fuzz targets: an answer signpost wrote must be a
//! well-formed DNS message that matches the query it answers.
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
