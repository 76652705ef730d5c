//! Exchanging one message with one upstream, and the few wire checks it needs.
//!
//! Control plane (tokio). The fresh-socket exchanges here serve health
//! probes (queries go through [`super::pool`]): a UDP socket bound
//! to an ephemeral port and connected to the upstream (so the kernel drops
//! datagrams from anyone else and an ICMP port unreachable surfaces as an
//! error at once), or one TCP connection carrying one query.
//! RFC 5452 §9.1: a reply is accepted only when its ID, source and question
//! match what was sent; anything else is discarded and the wait goes on.

use signpost_proto::{HEADER_LEN, rtype, walk};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

/// Largest DNS message (two-byte TCP length prefix; RFC 1035 §4.2.2).
pub(crate) const MAX_MESSAGE: usize = 65535;

/// Why one exchange with one upstream failed. All are retried on the next upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptError {
    /// No acceptable reply before the deadline.
    Timeout,
    /// The socket failed (refused, unreachable, reset).
    Network(io::ErrorKind),
    /// A TCP reply that does not answer the query.
    BadReply,
}

impl From<io::Error> for AttemptError {
    fn from(error: io::Error) -> Self {
        Self::Network(error.kind())
    }
}

/// Sends `query` over UDP and waits until `deadline` for the matching reply.
pub(crate) async fn udp_exchange(
    upstream: SocketAddr,
    query: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, AttemptError> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; MAX_MESSAGE];
    loop {
        let len = timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| AttemptError::Timeout)??;
        let reply = &buffer[..len];
        if answers(query, reply) {
            return Ok(reply.to_vec());
        }
        tracing::debug!(%upstream, len, "discarding a udp reply that does not match the query");
    }
}

/// Sends `query` over a new TCP connection (RFC 7766 §8: two-byte length
/// prefix) and reads one reply, all before `deadline`.
pub(crate) async fn tcp_exchange(
    upstream: SocketAddr,
    query: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, AttemptError> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        let _ = stream.set_nodelay(true);
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&u16::try_from(query.len()).unwrap_or(u16::MAX).to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await? as usize;
        let mut reply = vec![0u8; len];
        stream.read_exact(&mut reply).await?;
        Ok::<_, io::Error>(reply)
    };
    let reply = timeout_at(deadline, exchange)
        .await
        .map_err(|_| AttemptError::Timeout)??;
    if answers(query, &reply) {
        Ok(reply)
    } else {
        Err(AttemptError::BadReply)
    }
}

/// Whether `reply` answers `query`: same ID, and [`answers_question`].
pub(crate) fn answers(query: &[u8], reply: &[u8]) -> bool {
    reply.len() >= HEADER_LEN
        && query.len() >= HEADER_LEN
        && reply[..2] == query[..2]
        && question_end(query).is_some_and(|end| answers_question(&query[HEADER_LEN..end], reply))
}

/// Whether `reply` is a response to `question` (the question section as
/// sent: name, type, class): QR set and the same question, the name compared
/// case-insensitively (RFC 4343), type and class exactly. A reply without a
/// question is accepted only with an error RCODE (servers answer FORMERR
/// that way). The ID is the caller's to check.
pub(crate) fn answers_question(question: &[u8], reply: &[u8]) -> bool {
    if reply.len() < HEADER_LEN || reply[2] & 0x80 == 0 || question.len() < 5 {
        return false;
    }
    let question_count = u16::from_be_bytes([reply[4], reply[5]]);
    if question_count == 0 {
        return rcode(reply) != 0;
    }
    let Some(end) = question_end(reply) else {
        return false;
    };
    let (name, type_class) = question.split_at(question.len() - 4);
    let sent = &reply[HEADER_LEN..end];
    question_count == 1
        && sent.len() == question.len()
        && sent[..name.len()].eq_ignore_ascii_case(name)
        && &sent[name.len()..] == type_class
}

/// The end of the first question (name without compression, type, class).
pub(crate) fn question_end(message: &[u8]) -> Option<usize> {
    signpost_proto::walk::question_end(message)
}

/// The header RCODE (4 bits; an extended RCODE in OPT is not folded in).
pub(crate) fn rcode(message: &[u8]) -> u8 {
    message.get(3).map_or(0, |b| b & 0x0f)
}

/// The TC bit.
pub(crate) fn truncated(message: &[u8]) -> bool {
    message.get(2).is_some_and(|b| b & 0x02 != 0)
}

/// Writes the message ID.
pub(crate) fn set_id(message: &mut [u8], id: u16) {
    message[..2].copy_from_slice(&id.to_be_bytes());
}

/// A health probe: `domain IN NS`, RD as asked, no EDNS.
pub(crate) fn probe_query(id: u16, domain: &[u8], recursion: bool) -> Vec<u8> {
    let mut question = Vec::with_capacity(domain.len() + 4);
    question.extend_from_slice(domain);
    question.extend_from_slice(&rtype::NS.to_be_bytes());
    question.extend_from_slice(&signpost_proto::CLASS_IN.to_be_bytes());
    signpost_proto::message::query(id, &question, recursion, false, None)
}

/// Fits a forwarded reply into a UDP client's limit.
///
/// The upstream's reply can be larger than the client may receive over UDP
/// (after a TCP retry, or when a coalesced query came from a client with a
/// bigger EDNS size). RFC 2181 §9: rather than cutting an RRset, send the
/// header and question with TC set, so the client retries over TCP. The OPT
/// record is kept (RFC 6891 §7: a responder includes OPT in a response to a
/// query with OPT). A reply that fits is returned unchanged.
pub fn fit_udp(reply: &[u8], limit: usize) -> Vec<u8> {
    if reply.len() <= limit {
        return reply.to_vec();
    }
    let Some(question) = question_end(reply) else {
        // Unparseable: the header alone, with TC and no sections.
        let mut header = reply[..HEADER_LEN.min(reply.len())].to_vec();
        if header.len() == HEADER_LEN {
            header[2] |= 0x02;
            header[4..].fill(0);
        }
        return header;
    };
    let mut out = reply[..question].to_vec();
    out[2] |= 0x02;
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..12].fill(0);
    if let Some(opt) = find_opt(reply, question)
        && out.len() + opt.len() <= limit
    {
        out.extend_from_slice(opt);
        out[10..12].copy_from_slice(&1u16.to_be_bytes());
    }
    out
}

/// The OPT record of a message, found by walking every record after the question.
fn find_opt(message: &[u8], question_end: usize) -> Option<&[u8]> {
    let [_, answers, authorities, additionals] = walk::section_counts(message)?;
    let count = u32::from(answers) + u32::from(authorities) + u32::from(additionals);
    walk::Records::new(message, question_end, count)
        .map_while(Result::ok)
        .find(|record| record.rtype == rtype::OPT)
        .map(|record| &message[record.start..record.end])
}
