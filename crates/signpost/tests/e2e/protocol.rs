//! Transport and message handling: TCP, EDNS(0), truncation and malformed or
//! unsupported messages (RFC 1035, RFC 2181 §9, RFC 6891, RFC 7766, RFC 9619).

use crate::fixtures::{assert_answer, assert_negative, assert_section, cluster, dig_records};
use crate::header::raw_query;
use crate::support::{TestServer, query_bytes};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// A headless service `big.load` with `count` ready endpoints 10.9.x.y and
/// a named port `http`.
fn big_catalog(count: usize) -> String {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: load}\nspec:\n  clusterIP: None\n  ports: [{name: http, port: 80, protocol: TCP}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: big-1\n  namespace: load\n  labels: {kubernetes.io/service-name: big}\naddressType: IPv4\nports: [{name: http, port: 80, protocol: TCP}]\nendpoints:\n",
    );
    for i in 0..count {
        yaml.push_str(&format!(
            "- addresses: [10.9.{}.{}]\n  conditions: {{ready: true}}\n",
            i / 200,
            i % 200 + 1
        ));
    }
    yaml
}

/// A server over [`big_catalog`] with 100 endpoints: the A answer is about
/// 1.7 kB, more than any UDP answer signpost sends (1232 bytes).
fn big_server() -> TestServer {
    TestServer::start(&[("catalog/big.yaml", &big_catalog(100))])
}

/// RFC 7766 §5 and RFC 1035 §4.2.2: a query over TCP, length-prefixed, gets the
/// same answer as over UDP.
#[test]
fn tcp_single_query() {
    let server = cluster();
    let answer = server.query_tcp("api.web.svc.cluster.local.", RecordType::A);
    assert_answer(&answer, &["api.web.svc.cluster.local. 30 A 10.96.1.10"]);
    let dig = server.dig(&["+tcp", "+noall", "+answer", "db-0.db.web.svc.cluster.local"]);
    assert_eq!(
        dig_records(&dig),
        ["db-0.db.web.svc.cluster.local. 30 IN A 10.0.0.10"],
        "{dig}"
    );
}

/// RFC 7766 §6.2.1.1: a server must read pipelined queries on one connection
/// and answer all of them; signpost answers in order. Each answer matches its
/// query's ID and question.
#[test]
fn tcp_pipelined_queries_are_answered_in_order() {
    let server = cluster();
    let questions = [
        ("api.web.svc.cluster.local.", RecordType::A),
        ("dual.web.svc.cluster.local.", RecordType::AAAA),
        ("nothere.web.svc.cluster.local.", RecordType::A),
        ("_postgres._tcp.db.web.svc.cluster.local.", RecordType::SRV),
        ("example.com.", RecordType::A),
    ];
    let queries: Vec<Vec<u8>> = questions
        .iter()
        .enumerate()
        .map(|(i, (name, rtype))| {
            let mut query = query_bytes(name, *rtype, None);
            query[..2].copy_from_slice(&(1000 + i as u16).to_be_bytes());
            query
        })
        .collect();
    let answers = server.query_tcp_pipelined(&queries);
    assert_eq!(answers.len(), questions.len());
    for (i, (answer, (name, rtype))) in answers.iter().zip(&questions).enumerate() {
        assert_eq!(
            answer.metadata.id,
            1000 + i as u16,
            "answer {i} out of order:\n{answer}"
        );
        assert_eq!(answer.queries[0].name().to_string(), *name, "{answer}");
        assert_eq!(answer.queries[0].query_type(), *rtype, "{answer}");
    }
    assert_answer(&answers[0], &["api.web.svc.cluster.local. 30 A 10.96.1.10"]);
    assert_answer(
        &answers[1],
        &["dual.web.svc.cluster.local. 30 AAAA fd00::20"],
    );
    assert_negative(&answers[2], ResponseCode::NXDomain, 30);
    assert_answer(
        &answers[3],
        &[
            "_postgres._tcp.db.web.svc.cluster.local. 30 SRV 0 50 5432 db-0.db.web.svc.cluster.local.",
            "_postgres._tcp.db.web.svc.cluster.local. 30 SRV 0 50 5432 db-1.db.web.svc.cluster.local.",
        ],
    );
    assert_eq!(
        answers[4].metadata.response_code,
        ResponseCode::Refused,
        "{}",
        answers[4]
    );
    assert!(
        answers[4].answers.is_empty() && answers[4].authorities.is_empty(),
        "{}",
        answers[4]
    );
}

/// RFC 6891 §6.1.1 and §7: a query with an OPT record gets an OPT record back,
/// version 0, advertising signpost's UDP size, 1232 (DNS flag day 2020); a query
/// without one gets none.
#[test]
fn edns_opt_is_echoed_with_1232() {
    let server = cluster();
    for size in [512, 1232, 4096] {
        let answer = server.query_edns("api.web.svc.cluster.local.", RecordType::A, size);
        let edns = answer
            .edns
            .as_ref()
            .unwrap_or_else(|| panic!("no OPT in answer to EDNS {size}:\n{answer}"));
        assert_eq!(edns.max_payload(), 1232, "{answer}");
        assert_eq!(edns.version(), 0, "{answer}");
        assert_answer(&answer, &["api.web.svc.cluster.local. 30 A 10.96.1.10"]);
    }
    let plain = server.query("api.web.svc.cluster.local.", RecordType::A);
    assert!(
        plain.edns.is_none(),
        "OPT without EDNS in the query:\n{plain}"
    );
}

/// RFC 6891 §6.1.3: a query with an EDNS version the server does not implement
/// (1) gets BADVERS: extended RCODE 16, split as header RCODE 0 and OPT
/// extended-RCODE 1, in an OPT of version 0, with no answer records.
#[test]
fn edns_version_1_gets_badvers() {
    let server = cluster();
    let mut query = Message::new(0x4242, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(
        Name::from_ascii("api.web.svc.cluster.local.").expect("name"),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_version(1);
    query.set_edns(edns);
    let reply = server
        .udp_raw(&query.to_vec().expect("encode"))
        .expect("a reply");
    assert_eq!(reply[3] & 0x0f, 0, "header RCODE is BADVERS's low bits (0)");
    // The reply is header, question, OPT: the OPT's TTL starts with the
    // extended RCODE, then the version.
    let opt_ttl = reply.len() - 6;
    assert_eq!(
        &reply[reply.len() - 11..reply.len() - 8],
        &[0, 0, 41],
        "OPT last"
    );
    assert_eq!(reply[opt_ttl], 1, "extended RCODE 1 (16 >> 4)");
    assert_eq!(reply[opt_ttl + 1], 0, "answered with version 0");
    let message = Message::from_vec(&reply).expect("parse");
    assert_eq!(message.metadata.id, 0x4242);
    assert!(message.answers.is_empty(), "{message}");
    let edns = message.edns.as_ref().expect("OPT in the answer");
    assert_eq!(edns.rcode_high(), 1, "{message}");
}

/// RFC 6891 §6.1.3 as seen by kdig: `+edns=1` is answered BADVERS.
#[test]
fn kdig_edns_version_1_sees_badvers() {
    let server = cluster();
    let output = server.kdig(&["+edns=1", "api.web.svc.cluster.local"]);
    assert!(output.contains("status: BADVERS"), "{output}");
    assert!(output.contains("Version: 0"), "{output}");
}

/// RFC 6891 §6.1.1: "If a query message with more than one OPT RR is
/// received, a FORMERR (RCODE=1) MUST be returned."
#[test]
fn two_opt_records_get_formerr() {
    let server = cluster();
    let mut packet = raw_query(7, 0x01, "api.web.svc.cluster.local", 1);
    packet[11] = 2; // ARCOUNT
    for _ in 0..2 {
        packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    let reply = server.udp_raw(&packet).expect("a reply");
    assert_eq!(u16::from_be_bytes([reply[0], reply[1]]), 7);
    assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
}

/// RFC 1035 §4.2.1 and RFC 2181 §9: a UDP answer without EDNS is at most 512
/// bytes; one that does not fit is sent with TC=1 and, so that no client caches
/// a partial RRset, with no answer records at all.
#[test]
fn big_answer_over_udp_without_edns_is_truncated_and_empty() {
    let server = big_server();
    let answer = server.query("big.load.svc.cluster.local.", RecordType::A);
    assert!(answer.metadata.truncation, "TC must be set:\n{answer}");
    assert!(answer.answers.is_empty(), "no partial RRset:\n{answer}");
    assert!(
        answer.authorities.is_empty() && answer.additionals.is_empty(),
        "{answer}"
    );
    assert_eq!(answer.queries.len(), 1, "question echoed:\n{answer}");
}

/// RFC 6891 §6.2.5 and DNS flag day 2020: a client offering 4096 bytes still
/// gets at most 1232 bytes over UDP, so a 1.7 kB answer is truncated (TC=1,
/// empty answer, OPT present).
#[test]
fn big_answer_over_udp_with_edns_4096_is_truncated_at_1232() {
    let server = big_server();
    let reply = server
        .udp_raw(&query_bytes(
            "big.load.svc.cluster.local.",
            RecordType::A,
            Some(4096),
        ))
        .expect("a reply");
    assert!(reply.len() <= 1232, "{} bytes over UDP", reply.len());
    let answer = Message::from_vec(&reply).expect("parse");
    assert!(answer.metadata.truncation, "TC must be set:\n{answer}");
    assert!(answer.answers.is_empty(), "no partial RRset:\n{answer}");
    assert!(answer.edns.is_some(), "OPT still echoed:\n{answer}");
}

/// RFC 7766 §5: over TCP the full answer is sent (all 100 records, no TC).
#[test]
fn big_answer_over_tcp_is_complete() {
    let server = big_server();
    let answer = server.query_tcp("big.load.svc.cluster.local.", RecordType::A);
    assert!(!answer.metadata.truncation, "{answer}");
    assert_eq!(answer.answers.len(), 100, "{answer}");
}

/// RFC 7766 §5 from the client side: dig, seeing TC=1, retries over TCP and
/// prints the full answer (dig says ";; Truncated, retrying in TCP mode.").
#[test]
fn dig_retries_truncated_answer_over_tcp() {
    let server = big_server();
    let output = server.dig(&["big.load.svc.cluster.local", "A"]);
    assert!(
        output.contains(";; Truncated, retrying in TCP mode."),
        "{output}"
    );
    assert!(output.contains("ANSWER: 100,"), "{output}");
    let records = dig_records(&output);
    assert_eq!(records.len(), 100, "{output}");
    assert!(
        records.contains(&"big.load.svc.cluster.local. 30 IN A 10.9.0.100".to_owned()),
        "{output}"
    );
}

/// RFC 2181 §9: TC is set only when required data did not fit; additional
/// records that do not fit are left out without TC. Eight SRV records fit in
/// 512 bytes, their eight A records do not: the answer comes whole, without
/// additional section and without TC. With EDNS 1232 everything fits.
#[test]
fn additional_section_that_does_not_fit_is_dropped_without_tc() {
    let server = TestServer::start(&[("catalog/srv.yaml", &big_catalog(8))]);
    let qname = "_http._tcp.big.load.svc.cluster.local.";
    let answer = server.query(qname, RecordType::SRV);
    assert!(!answer.metadata.truncation, "TC must be clear:\n{answer}");
    assert_eq!(answer.answers.len(), 8, "{answer}");
    assert!(answer.additionals.is_empty(), "{answer}");
    let with_edns = server.query_edns(qname, RecordType::SRV, 1232);
    assert!(!with_edns.metadata.truncation, "{with_edns}");
    assert_eq!(with_edns.answers.len(), 8, "{with_edns}");
    let additional: Vec<String> = (1..=8)
        .map(|i| format!("10-9-0-{i}.big.load.svc.cluster.local. 30 A 10.9.0.{i}"))
        .collect();
    let additional: Vec<&str> = additional.iter().map(String::as_str).collect();
    assert_section(&with_edns, &with_edns.additionals, &additional);
}

/// RFC 9619 §3 (and RFC 1035 §4.1.2): a QUERY must hold exactly one question;
/// QDCOUNT 0 is FORMERR, answered with the header only and the ID copied.
#[test]
fn no_question_is_formerr() {
    let server = cluster();
    let packet = [0x12, 0x34, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let reply = server.udp_raw(&packet).expect("a reply");
    assert_eq!(&reply[..2], &[0x12, 0x34], "ID copied");
    assert_eq!(reply[2] & 0x80, 0x80, "QR set");
    assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
}

/// RFC 9619 §3: QDCOUNT 2 is FORMERR.
#[test]
fn two_questions_are_formerr() {
    let server = cluster();
    let mut packet = raw_query(0x2222, 0x01, "api.web.svc.cluster.local", 1);
    packet[5] = 2; // QDCOUNT
    let second = raw_query(0, 0, "db.web.svc.cluster.local", 1);
    packet.extend_from_slice(&second[12..]);
    let reply = server.udp_raw(&packet).expect("a reply");
    assert_eq!(&reply[..2], &[0x22, 0x22], "ID copied");
    assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
    let message = Message::from_vec(&reply).expect("parse");
    assert!(message.answers.is_empty(), "{message}");
}

/// RFC 1035 §4.1.1 (RCODE 4, "Not Implemented"): opcode 2 (STATUS) and opcode
/// 4 (NOTIFY, RFC 1996) are not implemented; the answer copies ID and opcode.
#[test]
fn status_and_notify_are_notimp() {
    let server = cluster();
    for opcode in [2u8, 4] {
        let packet = raw_query(0x3300 + u16::from(opcode), opcode << 3, "cluster.local", 6);
        let reply = server.udp_raw(&packet).expect("a reply");
        assert_eq!(
            u16::from_be_bytes([reply[0], reply[1]]),
            0x3300 + u16::from(opcode)
        );
        assert_eq!(reply[2] & 0x80, 0x80, "QR set");
        assert_eq!((reply[2] >> 3) & 0x0f, opcode, "opcode copied");
        assert_eq!(reply[3] & 0x0f, 4, "NOTIMP for opcode {opcode}");
    }
}

/// RFC 1035 §4.1.1 (QR) and RFC 5452 hygiene: a message with QR=1 is a
/// response; answering it could start a loop between servers, so it gets no
/// reply at all. Shown without waiting out a timer: a query sent right
/// behind it from the same socket (one flow, one worker, in order) gets the
/// first reply.
#[test]
fn response_gets_no_reply() {
    let server = cluster();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(crate::support::REPLY_LIMIT))
        .expect("timeout");
    let response = raw_query(0x5555, 0x80 | 0x04, "api.web.svc.cluster.local", 1);
    let query = raw_query(0x6666, 0x01, "api.web.svc.cluster.local", 1);
    socket.send_to(&response, server.addr()).expect("send");
    socket.send_to(&query, server.addr()).expect("send");
    let mut buffer = [0u8; 1024];
    let len = socket.recv(&mut buffer).expect("the query is answered");
    let answer = Message::from_vec(&buffer[..len]).expect("parse");
    assert_eq!(
        answer.metadata.id, 0x6666,
        "a response must not be answered: {answer}"
    );
    assert_answer(&answer, &["api.web.svc.cluster.local. 30 A 10.96.1.10"]);
}
