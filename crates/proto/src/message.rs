//! Whole messages signpost sends as a client or streams out: queries to
//! upstreams (forwarding, prefetch, health probes) and zone-transfer
//! messages. The query path's answers are written by `response`.
//!
//! Control plane: these allocate one `Vec` per message.

use crate::{ADVERTISED_UDP_SIZE, rtype};

/// The EDNS(0) part of a query (RFC 6891 §6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdnsQuery {
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
}

/// A standard query for one question (wire name, type and class, as a
/// question section holds them): ID, RD and CD as given, an OPT record
/// advertising signpost's UDP size when `edns` is set.
pub fn query(
    id: u16,
    question: &[u8],
    recursion_desired: bool,
    checking_disabled: bool,
    edns: Option<EdnsQuery>,
) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + question.len() + 11);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.push(u8::from(recursion_desired));
    packet.push(if checking_disabled { 0x10 } else { 0 });
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    packet.extend_from_slice(question);
    if let Some(edns) = edns {
        let size = ADVERTISED_UDP_SIZE.to_be_bytes();
        // Root owner, OPT, CLASS = UDP size, TTL = extended RCODE 0, version 0, flags.
        packet.extend_from_slice(&[0]);
        packet.extend_from_slice(&rtype::OPT.to_be_bytes());
        packet.extend_from_slice(&size);
        packet.extend_from_slice(&[0, 0, if edns.dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    packet
}

/// An authoritative answer message (QR, AA, NOERROR) carrying `count`
/// records already encoded in `records`, for `question` (RFC 5936 §2.2:
/// every AXFR message repeats the question... in the first, and signpost
/// repeats it in each, which clients accept).
pub fn authoritative(id: [u8; 2], question: &[u8], count: u16, records: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(12 + question.len() + records.len());
    message.extend_from_slice(&id);
    // QR, opcode QUERY, AA; RCODE NOERROR; one question.
    message.extend_from_slice(&[0x84, 0x00, 0, 1]);
    message.extend_from_slice(&count.to_be_bytes());
    message.extend_from_slice(&[0, 0, 0, 0]);
    message.extend_from_slice(question);
    message.extend_from_slice(records);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_query;

    /// A built query parses back with its flags and EDNS (RFC 6891 §6.1.2).
    #[test]
    fn query_round_trips() {
        let question = b"\x07example\x00\x00\x01\x00\x01";
        let packet = query(7, question, true, true, Some(EdnsQuery { dnssec_ok: true }));
        let parsed = parse_query(&packet).unwrap();
        assert_eq!(parsed.id(), 7);
        assert!(parsed.recursion_desired());
        assert!(parsed.checking_disabled());
        let edns = parsed.edns.unwrap();
        assert!(edns.dnssec_ok);
        assert_eq!(edns.udp_size, ADVERTISED_UDP_SIZE);
        let plain = query(8, question, false, false, None);
        assert_eq!(plain.len(), 12 + question.len());
        assert!(parse_query(&plain).unwrap().edns.is_none());
    }
}
