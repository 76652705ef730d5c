//! Fuzzes `parse_query` on arbitrary bytes, then the writers on what it accepts.
//!
//! Proves: parsing never panics or reads out of bounds; the parsed qname is at
//! most 255 bytes (RFC 1035 §3.1) and its lookup key is its lower-case form;
//! every answer written for an accepted query is within its limit and parses
//! with hickory-proto with the same ID and question.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_fuzz::{Expected, check_answer};
use signpost_proto::{
    HEADER_LEN, MAX_NAME_LEN, MAX_TCP_MESSAGE, Name, ParseError, RecordWriter, Rendered,
    parse_query, rcode, rdata, rtype, write_error, write_header_only, write_response,
};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

/// One answer record owned by the question, one NS in authority, one A in additional.
fn rendered() -> &'static Rendered {
    static RENDERED: OnceLock<Rendered> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let zone = Name::from_ascii("cluster.local").expect("valid literal");
        let ns = Name::from_ascii("ns.dns.cluster.local").expect("valid literal");
        let mut answer = RecordWriter::new();
        answer.record(None, rtype::A, 30, &rdata::a(Ipv4Addr::new(10, 96, 0, 1)));
        let mut authority = RecordWriter::new();
        authority.record(Some(&zone), rtype::NS, 30, &rdata::name(&ns));
        let mut additional = RecordWriter::new();
        additional.record(
            Some(&ns),
            rtype::A,
            30,
            &rdata::a(Ipv4Addr::new(10, 96, 0, 10)),
        );
        Rendered::new(rcode::NOERROR, true, &answer, &authority, &additional)
    })
}

fuzz_target!(|packet: &[u8]| {
    let mut out = vec![0u8; MAX_TCP_MESSAGE];
    let query = match parse_query(packet) {
        Ok(query) => query,
        Err(ParseError::Drop) => {
            assert!(packet.len() < HEADER_LEN || packet[2] & 0x80 != 0);
            return;
        }
        Err(error) => {
            let code = if error == ParseError::NotImp {
                rcode::NOTIMP
            } else {
                rcode::FORMERR
            };
            let meta = write_header_only(packet, code, &mut out);
            assert_eq!(meta.len, HEADER_LEN);
            assert_eq!(out[..2], packet[..2]);
            assert_eq!(out[2] & 0x80, 0x80, "QR must be set");
            assert_eq!(u16::from(out[3] & 0x0f), code);
            return;
        }
    };

    let wire = query.qname_wire();
    assert!(wire.len() <= MAX_NAME_LEN);
    assert_eq!(query.qname_lower(), wire.to_ascii_lowercase().as_slice());
    assert_eq!(query.question().len(), wire.len() + 4);
    assert!((512..=1232).contains(&query.udp_limit()));

    let view = rendered().view();
    for limit in [query.udp_limit(), 512, 300, MAX_TCP_MESSAGE] {
        let meta = write_response(&query, view, &mut out, limit);
        let expected = Expected {
            limit,
            rcode: rcode::NOERROR,
        };
        check_answer(packet, &query, &out[..meta.len], meta, expected);
    }
    let mut codes = vec![rcode::FORMERR, rcode::REFUSED, rcode::SERVFAIL];
    if query.edns.is_some() {
        // RFC 6891 §6.1.3: BADVERS needs an OPT record to carry its upper bits.
        codes.push(rcode::BADVERS);
    }
    for code in codes {
        let meta = write_error(&query, code, &mut out);
        check_answer(
            packet,
            &query,
            &out[..meta.len],
            meta,
            Expected {
                limit: MAX_TCP_MESSAGE,
                rcode: code,
            },
        );
    }
});
