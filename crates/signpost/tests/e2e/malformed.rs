//! Robustness: malformed, hostile and random input against the real server.
//!
//! Every test sends a batch of bad input, checks the server's reaction to it
//! (no reply, FORMERR, or an ordinary answer) and then shows with
//! [`expect_healthy`] that a normal query still gets the right answer
//! promptly over both UDP and TCP. "No reply" is proven without waiting out a
//! timeout per packet: the bad datagrams are followed by a valid query from
//! the same socket, which one UDP worker handles in order, so the first reply
//! must be the valid query's.

use crate::support::{TestServer, query_bytes, read_tcp_message};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream, UdpSocket};
use std::time::Duration;

/// The catalog: one ClusterIP service.
const WEB: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.1.1
  ports:
  - name: http
    port: 80
";

const WEB_NAME: &str = "web.shop.svc.cluster.local.";

/// A headless service whose 40 addresses (about 700 bytes of answer) fit
/// 1232 bytes but not 512, so the UDP limit a query asks for decides
/// between a full answer and TC=1.
const BIG_NAME: &str = "big.shop.svc.cluster.local.";

fn big() -> String {
    let mut text = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: shop}\nspec: {clusterIP: None}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: big-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: big}\naddressType: IPv4\nendpoints:\n",
    );
    for i in 1..=40 {
        text.push_str(&format!("- addresses: [10.2.0.{i}]\n"));
    }
    text
}

/// How long a reply may take on loopback before it counts as missing: far
/// above what a healthy server needs, so a loaded machine is slower, not a
/// failure. No test here shows speed with it; "no reply" is shown by the
/// order of replies on one flow (see [`expect_no_replies`]), and "others
/// are not kept waiting" by what is still open when they are answered.
const PROMPT: Duration = crate::support::REPLY_LIMIT;

fn start() -> TestServer {
    TestServer::start(&[("catalog/web.yaml", WEB), ("catalog/big.yaml", &big())])
}

/// The question `web.shop.svc.cluster.local. IN A` in wire format, case as given.
fn question(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
    out
}

/// A hand-built message: ID 0x5150, the given flags and counts, then `sections`.
fn message(flags: [u8; 2], counts: [u16; 4], sections: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x51, 0x50, flags[0], flags[1]];
    for count in counts {
        packet.extend_from_slice(&count.to_be_bytes());
    }
    packet.extend_from_slice(sections);
    packet
}

/// An OPT record (RFC 6891 §6.1.2) owned by `owner`, size 1232, with RDLENGTH
/// `rdlength` and no RDATA.
fn opt(owner: &[u8], rdlength: u16) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&[0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    out.extend_from_slice(&rdlength.to_be_bytes());
    out
}

fn udp_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(PROMPT)).expect("timeout");
    socket
}

/// Checks that `reply` answers the query for [`WEB_NAME`] A with 10.96.1.1.
fn assert_web_answer(reply: &Message, id: u16, transport: &str) {
    assert_eq!(reply.metadata.id, id, "{transport}: wrong ID in {reply:?}");
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{transport}: {reply:?}"
    );
    let addresses: Vec<Ipv4Addr> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(
        addresses,
        [Ipv4Addr::new(10, 96, 1, 1)],
        "{transport}: {reply:?}"
    );
}

/// A normal query gets the right answer within [`PROMPT`] over UDP and over a
/// fresh TCP connection.
fn expect_healthy(server: &TestServer) {
    let socket = udp_socket();
    let query = query_bytes(WEB_NAME, RecordType::A, None);
    let id = u16::from_be_bytes([query[0], query[1]]);
    socket.send_to(&query, server.addr()).expect("send");
    let mut buf = [0u8; 2048];
    let len = socket.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no UDP answer within {PROMPT:?}: {e}; log:\n{}",
            server.log()
        )
    });
    let reply = Message::from_vec(&buf[..len]).expect("parse UDP answer");
    assert_web_answer(&reply, id, "udp");

    let mut stream = TcpStream::connect_timeout(&server.addr(), PROMPT).expect("TCP connect");
    stream.set_read_timeout(Some(PROMPT)).expect("timeout");
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).expect("TCP write");
    let reply = read_tcp_message(&mut stream).unwrap_or_else(|e| {
        panic!(
            "no TCP answer within {PROMPT:?}: {e}; log:\n{}",
            server.log()
        )
    });
    assert_web_answer(&reply, id, "tcp");
}

/// Sends every packet in `silent` from one socket, then a valid query; the
/// first reply must be the valid query's answer, so no packet in `silent`
/// was answered (one flow is served by one UDP worker, in order).
fn expect_no_replies(server: &TestServer, silent: &[Vec<u8>]) {
    let socket = udp_socket();
    for packet in silent {
        socket.send_to(packet, server.addr()).expect("send");
    }
    let query = query_bytes(WEB_NAME, RecordType::A, None);
    socket.send_to(&query, server.addr()).expect("send");
    let mut buf = [0u8; 2048];
    let len = socket.recv(&mut buf).expect("the valid query is answered");
    assert_eq!(
        buf[..2],
        query[..2],
        "a packet that must be ignored was answered: {:02x?}",
        &buf[..len]
    );
}

/// Sends one datagram and returns the reply, which must come within [`PROMPT`].
fn expect_reply(server: &TestServer, packet: &[u8]) -> Vec<u8> {
    let socket = udp_socket();
    socket.send_to(packet, server.addr()).expect("send");
    let mut buf = vec![0u8; 65535];
    let len = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no reply to {packet:02x?}: {e}"));
    buf.truncate(len);
    buf
}

/// The reply to `packet` is FORMERR with the query's ID and QR set.
fn expect_formerr(server: &TestServer, what: &str, packet: &[u8]) {
    let reply = expect_reply(server, packet);
    assert!(reply.len() >= 12, "{what}: short reply {reply:02x?}");
    assert_eq!(reply[..2], packet[..2], "{what}: ID not copied");
    assert_eq!(reply[2] & 0x80, 0x80, "{what}: QR not set");
    assert_eq!(
        reply[3] & 0x0f,
        1,
        "{what}: expected FORMERR, got {reply:02x?}"
    );
}

/// xorshift64*: a tiny seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// === UDP ===

/// RFC 1035 §4.1.1: a message shorter than the 12-byte header cannot carry an
/// ID to answer, so datagrams of 0 to 11 bytes get no reply at all.
#[test]
fn truncated_headers_get_no_reply() {
    let server = start();
    let valid = message([1, 0], [1, 0, 0, 0], &question(WEB_NAME));
    let silent: Vec<Vec<u8>> = (0..12).map(|len| valid[..len].to_vec()).collect();
    expect_no_replies(&server, &silent);
    expect_healthy(&server);
}

/// RFC 1035 §4.1.1: QR=1 marks a response. Answering one could start a
/// reflection loop between two servers, so a message with QR set gets no
/// reply, whatever else it holds.
#[test]
fn responses_get_no_reply() {
    let server = start();
    let silent = vec![
        message([0x81, 0], [1, 0, 0, 0], &question(WEB_NAME)),
        message([0x85, 0x80], [1, 1, 0, 0], &question(WEB_NAME)),
        message([0x80, 0], [0, 0, 0, 0], &[]),
        message([0xff, 0xff], [0xffff; 4], &[]),
    ];
    expect_no_replies(&server, &silent);
    expect_healthy(&server);
}

/// RFC 1035 §4.1.1: a header whose counts promise sections that are not
/// there is malformed: FORMERR, header only, never a read past the datagram.
#[test]
fn counts_without_data_get_formerr() {
    let server = start();
    expect_formerr(
        &server,
        "QDCOUNT 1, nothing",
        &message([1, 0], [1, 0, 0, 0], &[]),
    );
    expect_formerr(
        &server,
        "every count 65535",
        &message([1, 0], [0xffff; 4], &[]),
    );
    let with_question = message([1, 0], [1, 0xffff, 0xffff, 0xffff], &question(WEB_NAME));
    expect_formerr(&server, "question, then nothing", &with_question);
    let mut cut = message([1, 0], [1, 0, 0, 0], &question(WEB_NAME));
    cut.truncate(cut.len() - 2);
    expect_formerr(&server, "QCLASS cut off", &cut);
    expect_healthy(&server);
}

/// RFC 9619 (updating RFC 1035 §4.1.2): a QUERY carries exactly one question;
/// QDCOUNT 0 or 2 is FORMERR.
#[test]
fn question_count_other_than_one_gets_formerr() {
    let server = start();
    expect_formerr(&server, "QDCOUNT 0", &message([1, 0], [0, 0, 0, 0], &[]));
    let two = [question(WEB_NAME), question(WEB_NAME)].concat();
    expect_formerr(&server, "QDCOUNT 2", &message([1, 0], [2, 0, 0, 0], &two));
    expect_healthy(&server);
}

/// RFC 1035 §4.1.4: a pointer refers to a prior occurrence of a name, and the
/// question is the first name in a message, so any pointer in it (here one to
/// itself, and two that point at each other) is FORMERR rather than a loop.
/// In the additional section pointers end a skipped name and are never
/// followed, so a record whose owner points at itself cannot hang the parser:
/// the query is answered normally.
#[test]
fn compression_pointer_loops_are_not_followed() {
    let server = start();
    let to_itself = message([1, 0], [1, 0, 0, 0], &[0xc0, 12, 0, 1, 0, 1]);
    expect_formerr(&server, "question points at itself", &to_itself);
    let ping_pong = message([1, 0], [1, 0, 0, 0], &[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
    expect_formerr(&server, "question pointers loop", &ping_pong);
    let after_label = message(
        [1, 0],
        [1, 0, 0, 0],
        &[3, b'w', b'e', b'b', 0xc0, 12, 0, 1, 0, 1],
    );
    expect_formerr(&server, "pointer after a label", &after_label);

    let mut sections = question(WEB_NAME);
    let record_at = (12 + sections.len()) as u8;
    sections.extend_from_slice(&[0xc0, record_at, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]);
    let reply = expect_reply(&server, &message([1, 0], [1, 0, 0, 1], &sections));
    let reply = Message::from_vec(&reply).expect("parse answer");
    assert_web_answer(&reply, 0x5150, "additional pointer loop");

    // The same self-pointing owner with its fixed part missing is FORMERR.
    sections.truncate(sections.len() - 14);
    expect_formerr(
        &server,
        "additional pointer loop, cut",
        &message([1, 0], [1, 0, 0, 1], &sections),
    );
    expect_healthy(&server);
}

/// RFC 1035 §3.1 and §4.1.4: a label is at most 63 bytes (length bytes 0x40
/// to 0xBF are not labels) and a name at most 255 bytes in wire format;
/// anything longer is FORMERR. A name of exactly 255 bytes is still answered.
#[test]
fn oversized_labels_and_names_get_formerr() {
    let server = start();
    let long_label = format!("{}.cluster.local.", "a".repeat(64));
    expect_formerr(
        &server,
        "64-byte label",
        &message([1, 0], [1, 0, 0, 0], &question(&long_label)),
    );
    let extended = message([1, 0], [1, 0, 0, 0], &[0x41, b'x', 0, 0, 1, 0, 1]);
    expect_formerr(&server, "extended label type 0x40", &extended);
    let reserved = message([1, 0], [1, 0, 0, 0], &[0x80, b'x', 0, 0, 1, 0, 1]);
    expect_formerr(&server, "reserved label type 0x80", &reserved);

    // "cluster.local." is 15 bytes; four 59-byte labels make 240 more: 255.
    let label = "b".repeat(59);
    let at_limit = format!("{label}.{label}.{label}.{label}.cluster.local.");
    assert_eq!(question(&at_limit).len(), 255 + 4);
    let reply = expect_reply(
        &server,
        &message([1, 0], [1, 0, 0, 0], &question(&at_limit)),
    );
    let reply = Message::from_vec(&reply).expect("parse answer");
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(reply.queries[0].name().to_ascii(), at_limit);

    let over = format!("c{at_limit}");
    expect_formerr(
        &server,
        "256-byte name",
        &message([1, 0], [1, 0, 0, 0], &question(&over)),
    );
    // A long run of labels with no terminating root label.
    let endless: Vec<u8> = std::iter::repeat_n([63u8; 64], 20).flatten().collect();
    expect_formerr(
        &server,
        "no root label",
        &message([1, 0], [1, 0, 0, 0], &endless),
    );
    expect_healthy(&server);
}

/// RFC 6891 §6.1.1: "If a query message with more than one OPT RR is
/// received, a FORMERR (RCODE=1) MUST be returned", and by §6.1.2 the OPT
/// owner "MUST be 0 (root domain)". An OPT whose RDLENGTH runs past the datagram is
/// malformed too (RFC 1035 §4.1.3).
#[test]
fn malformed_opt_records_get_formerr() {
    let server = start();
    let base = question(WEB_NAME);
    let two = [base.clone(), opt(&[0], 0), opt(&[0], 0)].concat();
    expect_formerr(
        &server,
        "two OPT records",
        &message([1, 0], [1, 0, 0, 2], &two),
    );
    let owned = [base.clone(), opt(&[3, b'w', b'e', b'b', 0], 0)].concat();
    expect_formerr(
        &server,
        "OPT owned by web.",
        &message([1, 0], [1, 0, 0, 1], &owned),
    );
    let pointer_owner = [base.clone(), opt(&[0xc0, 12], 0)].concat();
    expect_formerr(
        &server,
        "OPT owner is a pointer",
        &message([1, 0], [1, 0, 0, 1], &pointer_owner),
    );
    let past_end = [base.clone(), opt(&[0], 40), vec![0; 4]].concat();
    expect_formerr(
        &server,
        "OPT RDLENGTH past the end",
        &message([1, 0], [1, 0, 0, 1], &past_end),
    );

    // Control: one well-formed OPT is answered with an OPT.
    let one = [base, opt(&[0], 0)].concat();
    let reply = Message::from_vec(&expect_reply(&server, &message([1, 0], [1, 0, 0, 1], &one)))
        .expect("parse answer");
    assert_web_answer(&reply, 0x5150, "one OPT");
    assert_eq!(reply.edns.expect("OPT in answer").max_payload(), 1232);
    expect_healthy(&server);
}

/// Robustness against arbitrary input: a few thousand seeded random
/// datagrams, half pure noise and half valid queries (some for a name whose
/// answer needs more than 512 bytes) with one to four bytes mutated or the
/// end cut, never crash or wedge the server. What comes back is checked
/// against the input, not against the server's own decisions:
///
/// - every datagram of at least 12 bytes without QR gets exactly one reply,
///   and no other datagram gets one (RFC 1035 §4.1.1; shorter ones carry no
///   header to answer, responses are never answered);
/// - each reply is a response with the query's ID, and a truncated one
///   carries no answer or authority records (RFC 2181 §9);
/// - a reply is at most 512 bytes unless its query advertised more in an OPT
///   record (RFC 1035 §4.2.1, RFC 6891 §6.2.5), and never over 1232. Which
///   queries carry OPT is known from how they were built: mutations cannot
///   make an OPT out of bytes that held none; where a mutation or the cut hit
///   the OPT record, the 1232 cap applies.
///
/// Datagrams go out in batches of 50 from one socket, each batch followed by
/// a marker query: one flow is served by one worker in order, so when the
/// marker's reply arrives every reply of the batch has arrived (nothing is
/// read late or lost to a timer), and at most 51 datagrams are in flight.
#[test]
fn random_datagrams_do_not_disturb_service() {
    const COUNT: usize = 3000;
    const BATCH: usize = 50;
    /// IDs of the markers; the datagrams use their index (below 3000).
    const MARKER: u16 = 0xf000;
    let server = start();
    let mut rng = Rng(0x5eed_2026_0519_0001);
    let socket = udp_socket();
    // (query, the UDP size its OPT asks for, if any)
    let valid: Vec<(Vec<u8>, Option<u16>)> = vec![
        (query_bytes(WEB_NAME, RecordType::A, None), None),
        (
            query_bytes(WEB_NAME, RecordType::SRV, Some(4096)),
            Some(4096),
        ),
        (
            query_bytes(
                "_http._tcp.web.shop.svc.cluster.local.",
                RecordType::SRV,
                Some(1232),
            ),
            Some(1232),
        ),
        (
            query_bytes("10.96.1.1.in-addr.arpa.", RecordType::PTR, None),
            None,
        ),
        (query_bytes(BIG_NAME, RecordType::A, None), None),
        (query_bytes(BIG_NAME, RecordType::A, Some(4096)), Some(4096)),
        (query_bytes(BIG_NAME, RecordType::A, Some(600)), Some(600)),
    ];
    // The OPT record hickory writes at the end: root owner, type, class, TTL, RDLENGTH 0.
    const OPT_LEN: usize = 11;
    struct Sent {
        packet: Vec<u8>,
        /// Largest reply allowed.
        limit: usize,
    }
    let mut sent: Vec<Sent> = Vec::with_capacity(COUNT);
    for index in 0..COUNT {
        let (mut packet, limit) = if index % 2 == 0 {
            let len = rng.below(600);
            // Noise never holds a zone's name, so its reply is header,
            // question and perhaps OPT: under 300 bytes.
            (rng.bytes(len), 512)
        } else {
            let (original, size) = valid[rng.below(valid.len())].clone();
            let mut packet = original;
            let opt_at = packet.len() - OPT_LEN;
            let mut opt_touched = false;
            for _ in 0..=rng.below(4) {
                let at = rng.below(packet.len());
                packet[at] = rng.next() as u8;
                opt_touched |= at >= opt_at;
            }
            if rng.below(4) == 0 {
                let keep = rng.below(packet.len() + 1);
                opt_touched |= keep < packet.len();
                packet.truncate(keep);
            }
            let limit = match size {
                None => 512,
                Some(_) if opt_touched => 1232,
                Some(size) => usize::from(size).clamp(512, 1232),
            };
            (packet, limit)
        };
        if packet.len() >= 2 {
            packet[..2].copy_from_slice(&(index as u16).to_be_bytes());
        }
        sent.push(Sent { packet, limit });
    }

    let mut replies: Vec<Vec<Vec<u8>>> = vec![Vec::new(); COUNT];
    let mut buf = vec![0u8; 65535];
    for (batch, indices) in (0..COUNT).collect::<Vec<_>>().chunks(BATCH).enumerate() {
        for &index in indices {
            socket
                .send_to(&sent[index].packet, server.addr())
                .expect("send");
        }
        let marker_id = MARKER + batch as u16;
        let mut marker = query_bytes(WEB_NAME, RecordType::A, None);
        marker[..2].copy_from_slice(&marker_id.to_be_bytes());
        socket.send_to(&marker, server.addr()).expect("send");
        loop {
            let len = socket.recv(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "batch {batch}: no reply to its marker within {PROMPT:?}: {e}; log:\n{}",
                    server.log()
                )
            });
            let reply = &buf[..len];
            assert!(len >= 12, "short reply {reply:02x?}");
            let id = u16::from_be_bytes([reply[0], reply[1]]);
            if id == marker_id {
                let answer = Message::from_vec(reply).expect("parse marker answer");
                assert_web_answer(&answer, marker_id, "marker");
                break;
            }
            let index = usize::from(id);
            assert!(
                indices.contains(&index),
                "batch {batch}: reply with ID {id}, which no datagram of the batch carries: {reply:02x?}"
            );
            replies[index].push(reply.to_vec());
        }
    }

    let mut answered = 0;
    for (index, (datagram, got)) in sent.iter().zip(&replies).enumerate() {
        let packet = &datagram.packet;
        let expected = packet.len() >= 12 && packet[2] & 0x80 == 0;
        assert_eq!(
            got.len(),
            usize::from(expected),
            "datagram {index} ({} bytes, {packet:02x?}) got {} replies",
            packet.len(),
            got.len()
        );
        for reply in got {
            assert_eq!(reply[2] & 0x80, 0x80, "reply without QR: {reply:02x?}");
            assert!(
                reply.len() <= datagram.limit,
                "reply of {} bytes to datagram {index}, allowed {}: {packet:02x?}",
                reply.len(),
                datagram.limit
            );
            let truncated = reply[2] & 0x02 != 0;
            let answers = u16::from_be_bytes([reply[6], reply[7]]);
            let authorities = u16::from_be_bytes([reply[8], reply[9]]);
            assert!(
                !truncated || (answers == 0 && authorities == 0),
                "truncated reply with records: {reply:02x?}"
            );
            answered += 1;
        }
    }
    eprintln!("random datagrams: {COUNT} sent, {answered} answered");
    expect_healthy(&server);
}

// === TCP ===

/// RFC 7766 §6.2.3 and §10: a client that sends a length prefix promising
/// more than it sends, then goes silent, ties up only its own connection;
/// it gets no answer, and other clients are served at once (the server does
/// not wait for the idle timeout to serve them).
#[test]
fn tcp_length_prefix_longer_than_data_does_not_block_others() {
    let server = start();
    let mut stalled = TcpStream::connect(server.addr()).expect("connect");
    let query = query_bytes(WEB_NAME, RecordType::A, None);
    let mut partial = 512u16.to_be_bytes().to_vec();
    partial.extend_from_slice(&query);
    stalled.write_all(&partial).expect("write");
    expect_healthy(&server);
    expect_healthy(&server);

    stalled
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    match stalled.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the incomplete message must not be answered: {other:?}"),
    }
}

/// RFC 1035 §4.2.2 frames each TCP message with a two-byte length. A zero
/// length frames no message, so there is nothing to answer; the connection
/// stays usable and the next, pipelined query is answered (RFC 7766 §6.2.1.1).
/// A framed but malformed message gets FORMERR on the same connection.
#[test]
fn tcp_zero_length_and_malformed_messages_keep_the_connection() {
    let server = start();
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(PROMPT)).expect("timeout");
    let query = query_bytes(WEB_NAME, RecordType::A, None);
    let id = u16::from_be_bytes([query[0], query[1]]);
    let bad = message([1, 0], [0, 0, 0, 0], &[]);
    let mut framed = vec![0, 0];
    for part in [&bad, &query] {
        framed.extend_from_slice(&(part.len() as u16).to_be_bytes());
        framed.extend_from_slice(part);
    }
    stream.write_all(&framed).expect("write");

    let formerr = read_tcp_message(&mut stream).expect("FORMERR over TCP");
    assert_eq!(formerr.metadata.id, 0x5150);
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
    let reply = read_tcp_message(&mut stream).expect("answer after the zero-length frame");
    assert_web_answer(&reply, id, "tcp after zero length");
    expect_healthy(&server);
}

/// Robustness over TCP: connections that send seeded random bytes and then
/// close their sending side get, at most, well-framed responses, are closed
/// by the server at end of input, and do not disturb other clients.
#[test]
fn tcp_random_bytes_do_not_disturb_service() {
    let server = start();
    let mut rng = Rng(0x7cb_0000_0000_0042);
    for round in 0..40 {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        stream.set_read_timeout(Some(PROMPT)).expect("timeout");
        let len = rng.below(2000);
        let mut bytes = rng.bytes(len);
        if round % 4 == 0 && bytes.len() >= 2 {
            // Make the first frame's length fit, so some frames reach the parser.
            let frame = (bytes.len() - 2).min(300) as u16;
            bytes[..2].copy_from_slice(&frame.to_be_bytes());
        }
        stream.write_all(&bytes).expect("write");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .unwrap_or_else(|e| panic!("round {round}: server did not close after EOF: {e}"));
        // Whatever came back is a sequence of framed responses.
        let mut at = 0;
        while at < received.len() {
            let frame = u16::from_be_bytes([received[at], received[at + 1]]) as usize;
            let reply = &received[at + 2..at + 2 + frame];
            assert!(
                reply.len() >= 12 && reply[2] & 0x80 != 0,
                "round {round}: {reply:02x?}"
            );
            at += 2 + frame;
        }
    }
    expect_healthy(&server);
}

/// RFC 7766 §6.2.3 (idle timeouts) and §10 (denial of service): 200 half-open
/// connections, half sending nothing and half a single byte of a length
/// prefix, hold only their own tasks; UDP and new TCP clients are served
/// promptly while they stay open.
#[test]
fn tcp_half_open_connections_do_not_block_others() {
    let server = start();
    let mut held = Vec::new();
    for i in 0..200 {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        if i % 2 == 1 {
            stream.write_all(&[0]).expect("write one byte");
        }
        held.push(stream);
    }
    for _ in 0..3 {
        expect_healthy(&server);
    }
    drop(held);
    expect_healthy(&server);
}

/// RFC 7766 §6.2.3: a server may keep an idle connection open for a while
/// (signpost: 10 s) but must keep serving everyone else meanwhile. A client
/// holding a connection without sending does not delay other clients, and
/// its connection still answers when it finally sends (well within 10 s).
#[test]
fn idle_tcp_client_does_not_block_others() {
    let server = start();
    let mut idle = TcpStream::connect(server.addr()).expect("connect");
    for _ in 0..5 {
        expect_healthy(&server);
    }
    let queries = vec![
        query_bytes(WEB_NAME, RecordType::A, None),
        query_bytes(WEB_NAME, RecordType::A, None),
    ];
    for (query, reply) in queries.iter().zip(server.query_tcp_pipelined(&queries)) {
        assert_web_answer(
            &reply,
            u16::from_be_bytes([query[0], query[1]]),
            "pipelined tcp",
        );
    }

    idle.set_read_timeout(Some(PROMPT)).expect("timeout");
    let query = query_bytes(WEB_NAME, RecordType::A, None);
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    idle.write_all(&framed).expect("write");
    let reply = read_tcp_message(&mut idle).expect("the idle connection still answers");
    assert_web_answer(
        &reply,
        u16::from_be_bytes([query[0], query[1]]),
        "formerly idle tcp",
    );
}
