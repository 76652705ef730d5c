//! Wire-level tests of the hot path against an independent implementation:
//! queries encoded by hickory-proto are parsed by [`parse_query`], and answers
//! written by [`write_response`] and [`write_error`] are parsed by hickory-proto.

use crate::{
    ADVERTISED_UDP_SIZE, Edns, HEADER_LEN, Name, ParseError, Query, RecordWriter, Rendered,
    parse_query, rcode, rdata, rtype, write_error, write_header_only, write_response,
};
use hickory_proto::op::{self, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{self, DNSClass, RData, RecordType};
use std::net::Ipv4Addr;

/// EDNS settings for a test query: UDP size, version, DO.
type EdnsSpec = (u16, u8, bool);

/// Encodes a query with hickory-proto: RD and CD set, one question, optional OPT.
fn hickory_query(id: u16, name: &str, qtype: RecordType, edns: Option<EdnsSpec>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = true;
    message.add_query(op::Query::query(
        rr::Name::from_ascii(name).expect("valid test name"),
        qtype,
    ));
    if let Some((size, version, dnssec_ok)) = edns {
        let mut opt = op::Edns::new();
        opt.set_max_payload(size);
        opt.set_version(version);
        opt.set_dnssec_ok(dnssec_ok);
        message.set_edns(opt);
    }
    message.to_vec().expect("hickory encodes the query")
}

/// A query built by hand: header with the given counts, then `sections` verbatim.
fn raw_query(flags: [u8; 2], counts: [u16; 4], sections: &[u8]) -> Vec<u8> {
    let mut packet = vec![0xab, 0xcd, flags[0], flags[1]];
    for count in counts {
        packet.extend_from_slice(&count.to_be_bytes());
    }
    packet.extend_from_slice(sections);
    packet
}

/// `name` in uncompressed wire format, case kept.
fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Question `name` IN A in wire format.
fn question(name: &str) -> Vec<u8> {
    let mut out = wire(name);
    out.extend_from_slice(&[0, 1, 0, 1]);
    out
}

/// An OPT record owned by `owner` (wire format) with the given RDLENGTH and no RDATA.
fn opt_record(owner: &[u8], rdlength: u16) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&[0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    out.extend_from_slice(&rdlength.to_be_bytes());
    out
}

fn parse(packet: &[u8]) -> Query<'_> {
    parse_query(packet).unwrap_or_else(|e| panic!("query rejected with {e:?}: {packet:02x?}"))
}

fn hickory_parse(answer: &[u8]) -> Message {
    Message::from_vec(answer).unwrap_or_else(|e| panic!("hickory rejects {answer:02x?}: {e}"))
}

/// `answers` A records owned by the question, one SOA in authority and
/// `additionals` A records for `ns.example.` in additional.
fn rendered(answers: u8, additionals: u8) -> Rendered {
    let apex = Name::from_ascii("example").expect("valid literal");
    let ns = Name::from_ascii("ns.example").expect("valid literal");
    let mut answer = RecordWriter::new();
    for i in 0..answers {
        answer.record(None, rtype::A, 30, &rdata::a(Ipv4Addr::new(192, 0, 2, i)));
    }
    let mut authority = RecordWriter::new();
    authority.record(
        Some(&apex),
        rtype::SOA,
        30,
        &rdata::soa(&ns, &apex, 7, [3600, 600, 86400, 30]),
    );
    let mut additional = RecordWriter::new();
    for i in 0..additionals {
        additional.record(
            Some(&ns),
            rtype::A,
            30,
            &rdata::a(Ipv4Addr::new(198, 51, 100, i)),
        );
    }
    Rendered::new(rcode::NOERROR, true, &answer, &authority, &additional)
}

// === parse_query against hickory-encoded queries ===

/// RFC 1035 §4.1.2: QNAME, QTYPE and QCLASS are read as encoded; without EDNS
/// the UDP limit is 512 (RFC 1035 §4.2.1).
#[test]
fn parses_name_type_and_class() {
    let packet = hickory_query(
        0x1234,
        "kubernetes.default.svc.cluster.local.",
        RecordType::AAAA,
        None,
    );
    let query = parse(&packet);
    assert_eq!(query.id(), 0x1234);
    assert_eq!(
        query.qname_wire(),
        wire("kubernetes.default.svc.cluster.local")
    );
    assert_eq!(query.qtype, rtype::AAAA);
    assert_eq!(query.qclass, crate::CLASS_IN);
    assert!(query.recursion_desired());
    assert!(query.checking_disabled());
    assert_eq!(query.edns, None);
    assert_eq!(query.udp_limit(), 512);

    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    let mut chaos = op::Query::query(
        rr::Name::from_ascii("version.bind.").expect("name"),
        RecordType::TXT,
    );
    chaos.set_query_class(DNSClass::CH);
    message.add_query(chaos);
    let packet = message.to_vec().expect("encode");
    let query = parse(&packet);
    assert_eq!((query.qtype, query.qclass), (rtype::TXT, 3));
    assert!(!query.recursion_desired());
}

/// RFC 6891 §6.1.2/§6.1.3: the OPT record's class is the UDP size and its TTL
/// carries the version and the DO bit (RFC 3225 §3).
#[test]
fn parses_edns_size_version_and_dnssec_ok() {
    let packet = hickory_query(1, "a.example.", RecordType::A, Some((4096, 0, true)));
    let query = parse(&packet);
    assert_eq!(
        query.edns,
        Some(Edns {
            udp_size: 4096,
            version: 0,
            dnssec_ok: true,
            client_subnet: None,
        })
    );
    assert_eq!(query.udp_limit(), usize::from(ADVERTISED_UDP_SIZE));

    let packet = hickory_query(1, "a.example.", RecordType::A, Some((1400, 1, false)));
    let edns = parse(&packet).edns.expect("OPT parsed");
    assert_eq!(
        (edns.udp_size, edns.version, edns.dnssec_ok),
        (1400, 1, false)
    );
}

/// RFC 6891 §6.2.5: a requestor's UDP size below 512 is treated as 512.
#[test]
fn small_edns_size_means_512() {
    let mut packet = hickory_query(1, "a.example.", RecordType::A, Some((512, 0, false)));
    // hickory raises sizes below 512 when encoding, so patch the OPT CLASS by hand.
    let class_at = packet.len() - 8;
    packet[class_at..class_at + 2].copy_from_slice(&100u16.to_be_bytes());
    let query = parse(&packet);
    assert_eq!(query.edns.expect("OPT").udp_size, 100);
    assert_eq!(query.udp_limit(), 512);
}

/// RFC 4343 §4.1: the question keeps the client's case; only the lookup key is folded.
#[test]
fn question_keeps_case_and_key_is_folded() {
    let packet = hickory_query(
        9,
        "KuBeRnEtEs.Default.SVC.cluster.LOCAL.",
        RecordType::A,
        None,
    );
    let query = parse(&packet);
    assert_eq!(
        query.qname_wire(),
        wire("KuBeRnEtEs.Default.SVC.cluster.LOCAL")
    );
    assert_eq!(
        query.qname_lower(),
        wire("kubernetes.default.svc.cluster.local")
    );
    assert_eq!(
        &query.question()[..query.qname_wire().len()],
        query.qname_wire()
    );
}

/// RFC 1035 §3.1: a name of exactly 255 bytes is valid; 256 bytes is not.
#[test]
fn name_length_boundary() {
    // Four 62-byte labels: 4 * 63 + 1 = 253 bytes; add a one-byte label: 255.
    let long = ["x".repeat(62).as_str(); 4].join(".");
    let at_limit = format!("a.{long}");
    assert_eq!(wire(&at_limit).len(), 255);
    let packet = raw_query([1, 0], [1, 0, 0, 0], &question(&at_limit));
    assert_eq!(parse(&packet).qname_wire().len(), 255);

    let over = format!("ab.{long}");
    assert_eq!(wire(&over).len(), 256);
    let packet = raw_query([1, 0], [1, 0, 0, 0], &question(&over));
    assert_eq!(parse_query(&packet).unwrap_err(), ParseError::FormErr);
}

/// What each malformed shape parses to: Drop for short messages and responses
/// (RFC 1035 §4.1.1 QR), NotImp for other opcodes, FormErr for the rest.
#[test]
fn malformed_queries_are_classified() {
    let ok = question("a.example");
    let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
        ("11 bytes", vec![0; 11], ParseError::Drop),
        (
            "QR set",
            raw_query([0x81, 0], [1, 0, 0, 0], &ok),
            ParseError::Drop,
        ),
        (
            "opcode STATUS",
            raw_query([0x10, 0], [1, 0, 0, 0], &ok),
            ParseError::NotImp,
        ),
        (
            "QDCOUNT 0",
            raw_query([1, 0], [0, 0, 0, 0], &[]),
            ParseError::FormErr,
        ),
        (
            "QDCOUNT 2",
            raw_query([1, 0], [2, 0, 0, 0], &[ok.clone(), ok.clone()].concat()),
            ParseError::FormErr,
        ),
        (
            "counts, no data",
            raw_query([1, 0], [1, 5, 5, 5], &[]),
            ParseError::FormErr,
        ),
        (
            "question cut short",
            raw_query([1, 0], [1, 0, 0, 0], &ok[..ok.len() - 1]),
            ParseError::FormErr,
        ),
        // RFC 1035 §4.1.4: the only earlier offsets are in the header, so a
        // pointer in the question is malformed (this one points at itself).
        (
            "pointer in question",
            raw_query([1, 0], [1, 0, 0, 0], &[0xc0, 12, 0, 1, 0, 1]),
            ParseError::FormErr,
        ),
        (
            "label of 64",
            raw_query([1, 0], [1, 0, 0, 0], &question(&"y".repeat(64))),
            ParseError::FormErr,
        ),
        (
            "label type 0x40",
            raw_query([1, 0], [1, 0, 0, 0], &[0x41, b'a', 0, 0, 1, 0, 1]),
            ParseError::FormErr,
        ),
        (
            "two OPT records",
            raw_query(
                [1, 0],
                [1, 0, 0, 2],
                &[ok.clone(), opt_record(&[0], 0), opt_record(&[0], 0)].concat(),
            ),
            ParseError::FormErr,
        ),
        (
            "OPT owned by a.",
            raw_query(
                [1, 0],
                [1, 0, 0, 1],
                &[ok.clone(), opt_record(&[1, b'a', 0], 0)].concat(),
            ),
            ParseError::FormErr,
        ),
        (
            "OPT RDLENGTH past the end",
            raw_query(
                [1, 0],
                [1, 0, 0, 1],
                &[ok.clone(), opt_record(&[0], 4)].concat(),
            ),
            ParseError::FormErr,
        ),
        (
            "additional pointer to itself, no fixed part",
            raw_query(
                [1, 0],
                [1, 0, 0, 1],
                &[ok.clone(), vec![0xc0, 12 + ok.len() as u8]].concat(),
            ),
            ParseError::FormErr,
        ),
    ];
    for (what, packet, expected) in cases {
        assert_eq!(
            parse_query(&packet).map(|q| q.id()),
            Err(expected),
            "{what}: {packet:02x?}"
        );
    }
}

/// RFC 1035 §4.1.4: a compression pointer in a later section ends the name
/// and is never followed, so a pointer loop there cannot hang the parser.
#[test]
fn pointer_loop_in_additional_is_not_followed() {
    let ok = question("a.example");
    let loop_at = (HEADER_LEN + ok.len()) as u8;
    let mut record = vec![0xc0, loop_at];
    record.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 30, 0, 0]);
    let packet = raw_query([1, 0], [1, 0, 0, 1], &[ok, record].concat());
    let query = parse(&packet);
    assert_eq!(query.edns, None);
}

// === write_response and write_error, parsed by hickory ===

/// RFC 1035 §4.1.1: the answer copies ID, opcode and RD, sets QR and AA;
/// RFC 4035 §3.1.6 copies CD; RFC 4343 §4.1 echoes the question byte for byte;
/// RFC 6891 §6.1.1 answers an OPT with an OPT (size 1232) and RFC 3225 §3
/// copies DO.
#[test]
fn response_header_question_and_opt() {
    let packet = hickory_query(0xbeef, "WWW.Example.", RecordType::A, Some((4096, 0, true)));
    let query = parse(&packet);
    let mut out = vec![0u8; 65535];
    let meta = write_response(&query, rendered(2, 1).view(), &mut out, query.udp_limit());
    assert!(!meta.truncated);
    let answer = &out[..meta.len];
    assert_eq!(
        &answer[HEADER_LEN..HEADER_LEN + query.question().len()],
        query.question()
    );

    let message = hickory_parse(answer);
    let metadata = &message.metadata;
    assert_eq!(metadata.id, 0xbeef);
    assert_eq!(metadata.message_type, MessageType::Response);
    assert_eq!(metadata.op_code, OpCode::Query);
    assert!(metadata.authoritative && metadata.recursion_desired && metadata.checking_disabled);
    assert!(!metadata.truncation && !metadata.recursion_available && !metadata.authentic_data);
    assert_eq!(metadata.response_code, ResponseCode::NoError);
    assert_eq!(message.queries.len(), 1);
    let echoed = message.queries[0].name();
    assert!(echoed.eq_case(&rr::Name::from_ascii("WWW.Example.").expect("name")));
    // Records owned by the question point at it, so they carry the client's spelling.
    assert_eq!(message.answers.len(), 2);
    assert!(message.answers.iter().all(|r| r.name.eq_case(echoed)));
    assert!(matches!(message.answers[0].data, RData::A(a) if a.0 == Ipv4Addr::new(192, 0, 2, 0)));
    assert_eq!(message.authorities.len(), 1);
    assert_eq!(message.additionals.len(), 1);
    let edns = message.edns.as_ref().expect("OPT in the answer");
    assert_eq!(edns.max_payload(), ADVERTISED_UDP_SIZE);
    assert_eq!(edns.version(), 0);
    assert!(edns.flags().dnssec_ok);
}

/// RFC 3225 §3: DO clear in the query stays clear; no OPT in, no OPT out.
#[test]
fn response_without_dnssec_ok_or_edns() {
    let mut out = vec![0u8; 65535];
    let packet = hickory_query(5, "a.example.", RecordType::A, Some((1232, 0, false)));
    let query = parse(&packet);
    let meta = write_response(&query, rendered(1, 0).view(), &mut out, 1232);
    let message = hickory_parse(&out[..meta.len]);
    assert!(!message.edns.expect("OPT").flags().dnssec_ok);

    let packet = hickory_query(5, "a.example.", RecordType::A, None);
    let query = parse(&packet);
    let meta = write_response(&query, rendered(1, 0).view(), &mut out, 512);
    let message = hickory_parse(&out[..meta.len]);
    assert!(message.edns.is_none());
    assert_eq!(message.additionals.len(), 0);
}

/// RFC 2181 §9: TC is set only when required data does not fit, so the
/// additional section is dropped first without TC.
#[test]
fn additional_is_dropped_first_without_tc() {
    let packet = hickory_query(3, "a.example.", RecordType::A, None);
    let query = parse(&packet);
    let answer = rendered(1, 40);
    let mut out = vec![0u8; 65535];
    let fixed = HEADER_LEN + query.question().len();

    // Everything fits exactly at the limit.
    let meta = write_response(&query, answer.view(), &mut out, fixed + answer.body.len());
    assert_eq!(meta.len, fixed + answer.body.len());
    assert_eq!(hickory_parse(&out[..meta.len]).additionals.len(), 40);

    // One byte less: the additional section goes, TC stays clear.
    let meta = write_response(
        &query,
        answer.view(),
        &mut out,
        fixed + answer.body.len() - 1,
    );
    assert!(!meta.truncated);
    assert_eq!(meta.len, fixed + answer.required_len as usize);
    let message = hickory_parse(&out[..meta.len]);
    assert!(!message.metadata.truncation);
    assert_eq!((message.answers.len(), message.authorities.len()), (1, 1));
    assert!(message.additionals.is_empty());
}

/// RFC 2181 §9 and RFC 1035 §4.2.1: when answer plus authority do not fit,
/// TC is set and no records are sent, so the client never sees a partial RRset.
#[test]
fn tc_and_empty_sections_when_required_data_does_not_fit() {
    let packet = hickory_query(4, "a.example.", RecordType::A, Some((1232, 0, true)));
    let query = parse(&packet);
    let answer = rendered(60, 0); // 60 * 16 bytes + SOA: over 512, under 1232
    let mut out = vec![0u8; 65535];

    let meta = write_response(&query, answer.view(), &mut out, 512);
    assert!(meta.truncated);
    assert!(meta.len <= 512);
    let message = hickory_parse(&out[..meta.len]);
    assert!(message.metadata.truncation);
    assert!(message.answers.is_empty() && message.authorities.is_empty());
    assert!(message.additionals.is_empty());
    assert_eq!(message.queries.len(), 1);
    assert!(message.edns.is_some(), "the OPT survives truncation");

    let meta = write_response(&query, answer.view(), &mut out, 1232);
    assert!(!meta.truncated);
    assert_eq!(hickory_parse(&out[..meta.len]).answers.len(), 60);
}

/// RFC 6891 §6.1.3: BADVERS (16) is split: the low 4 bits in the header
/// RCODE, the upper 8 bits in the OPT's extended RCODE; the answer's OPT has
/// the highest version the server implements, 0.
#[test]
fn badvers_is_split_across_header_and_opt() {
    let packet = hickory_query(6, "a.example.", RecordType::A, Some((1232, 1, true)));
    let query = parse(&packet);
    let mut out = vec![0u8; 65535];
    let meta = write_error(&query, rcode::BADVERS, &mut out);
    assert_eq!(meta.rcode, rcode::BADVERS);
    let answer = &out[..meta.len];
    assert_eq!(answer[3] & 0x0f, 0, "header RCODE holds the low bits of 16");
    let opt = &answer[meta.len - 11..];
    assert_eq!(opt[..3], [0, 0, 41], "OPT owned by the root");
    assert_eq!((opt[5], opt[6]), (1, 0), "extended RCODE 1, version 0");
    assert_eq!(opt[7], 0x80, "DO copied");

    let message = hickory_parse(answer);
    // hickory decodes 16 as BADSIG, which shares the value with BADVERS (RFC 6891 §9).
    assert_eq!(u16::from(message.metadata.response_code), rcode::BADVERS);
    assert_eq!(message.edns.as_ref().expect("OPT").version(), 0);
    assert!(message.answers.is_empty());
    assert_eq!(message.queries.len(), 1);
}

/// RFC 1035 §4.1.1: an error answer echoes the question, has no records and
/// leaves AA clear; without EDNS there is no OPT.
#[test]
fn error_answers_echo_the_question() {
    let packet = hickory_query(8, "Other.Zone.", RecordType::MX, None);
    let query = parse(&packet);
    let mut out = vec![0u8; 65535];
    let meta = write_error(&query, rcode::REFUSED, &mut out);
    assert_eq!(meta.len, HEADER_LEN + query.question().len());
    let message = hickory_parse(&out[..meta.len]);
    assert_eq!(message.metadata.response_code, ResponseCode::Refused);
    assert!(!message.metadata.authoritative);
    assert!(
        message.queries[0]
            .name()
            .eq_case(&rr::Name::from_ascii("Other.Zone.").expect("name"))
    );
    assert!(message.edns.is_none());
}

/// RFC 1035 §4.1.1: a query that cannot be parsed gets a header-only FORMERR
/// (or NOTIMP) with its ID and opcode, QR set and all counts zero.
#[test]
fn header_only_answers() {
    let packet = raw_query([0x11, 0x10], [1, 0, 0, 0], &question("a.example"));
    let mut out = [0u8; 12];
    let meta = write_header_only(&packet, rcode::NOTIMP, &mut out);
    assert_eq!(meta.len, HEADER_LEN);
    let message = hickory_parse(&out);
    assert_eq!(message.metadata.id, 0xabcd);
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert_eq!(message.metadata.op_code, OpCode::Status);
    assert!(message.metadata.recursion_desired && message.metadata.checking_disabled);
    assert_eq!(message.metadata.response_code, ResponseCode::NotImp);
    assert!(message.queries.is_empty());
}

/// CoreDNS `loadbalance`: runs of A records rotate; other records stay.
#[test]
fn rotate_answers_rotates_address_runs() {
    let mut answer = RecordWriter::new();
    for last in 1..=3u8 {
        answer.record(None, crate::rtype::A, 30, &[10, 0, 0, last]);
    }
    let rendered = Rendered::new(0, true, &answer, &RecordWriter::new(), &RecordWriter::new());
    let packet = hickory_query(7, "web.test.", RecordType::A, None);
    let query = parse_query(&packet).unwrap();
    let mut out = vec![0u8; 512];
    let meta = write_response(&query, rendered.view(), &mut out, 512);
    let first_address = |out: &[u8]| {
        let message = hickory_parse(&out[..meta.len]);
        message.answers[0].data.to_string()
    };
    assert_eq!(first_address(&out), "10.0.0.1");
    crate::rotate_answers(&mut out[..meta.len], 1);
    assert_eq!(first_address(&out), "10.0.0.2");
    crate::rotate_answers(&mut out[..meta.len], 2);
    assert_eq!(first_address(&out), "10.0.0.1");
}

/// RFC 7871 §7.1.2 and §7.2.1: a well-formed Client Subnet option is parsed
/// and echoed with the scope; malformed ones are FORMERR.
#[test]
fn client_subnet_is_parsed_validated_and_echoed() {
    let ecs = |family: u16, source: u8, scope: u8, address: &[u8]| {
        let mut data = family.to_be_bytes().to_vec();
        data.extend_from_slice(&[source, scope]);
        data.extend_from_slice(address);
        let mut option = 8u16.to_be_bytes().to_vec();
        option.extend_from_slice(&(data.len() as u16).to_be_bytes());
        option.extend_from_slice(&data);
        let mut packet = raw_query([0x01, 0], [1, 0, 0, 1], &question("web.test."));
        packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        packet.extend_from_slice(&(option.len() as u16).to_be_bytes());
        packet.extend_from_slice(&option);
        packet
    };
    let good = ecs(1, 24, 0, &[192, 0, 2]);
    let query = parse_query(&good).unwrap();
    let subnet = query.edns.unwrap().client_subnet.unwrap();
    assert_eq!(subnet.ip().to_string(), "192.0.2.0");
    assert_eq!(subnet.source_prefix, 24);
    let mut out = vec![0u8; 512];
    let meta = crate::write_response_scoped(&query, rendered(1, 0).view(), &mut out, 512, 16);
    let answer = hickory_parse(&out[..meta.len]);
    let echoed = format!("{:?}", answer.edns);
    assert!(echoed.contains("Subnet"), "{echoed}");
    // The option sits at the very end: family 1, source 24, scope 16, 3 address bytes.
    assert_eq!(&out[meta.len - 7..meta.len], &[0, 1, 24, 16, 192, 0, 2]);
    for bad in [
        ecs(3, 8, 0, &[1]),              // unknown family
        ecs(1, 33, 0, &[1, 2, 3, 4, 5]), // prefix longer than IPv4
        ecs(1, 24, 0, &[192, 0]),        // too few address bytes
        ecs(1, 20, 0, &[192, 0, 0x2f]),  // bits set past the prefix
        ecs(1, 24, 8, &[192, 0, 2]),     // non-zero scope in a query
    ] {
        assert_eq!(parse_query(&bad).unwrap_err(), ParseError::FormErr);
    }
}
