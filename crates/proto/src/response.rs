//! Writing answers into a caller-owned buffer (data plane, no allocation).

use crate::ADVERTISED_UDP_SIZE;
use crate::query::Query;
use crate::render::RecordWriter;
use crate::walk::HEADER_LEN;

/// A pre-rendered answer: the sections after the question, ready to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The response code (below 16; extended codes are written by [`write_error`]).
    pub rcode: u16,
    /// Whether to set AA.
    pub authoritative: bool,
    /// Records in the answer section.
    pub answer_count: u16,
    /// Records in the authority section.
    pub authority_count: u16,
    /// Records in the additional section (not counting OPT).
    pub additional_count: u16,
    /// Bytes of answer plus authority: what must fit or the answer is truncated.
    pub required_len: u32,
    /// Answer, authority and additional records, in that order.
    pub body: Box<[u8]>,
}

/// A borrowed answer, pre-rendered or synthesized on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerView<'a> {
    /// The response code (below 16).
    pub rcode: u16,
    /// Whether to set AA.
    pub authoritative: bool,
    /// Records in the answer section.
    pub answer_count: u16,
    /// Records in the authority section.
    pub authority_count: u16,
    /// Records in the additional section (not counting OPT).
    pub additional_count: u16,
    /// Bytes of answer plus authority.
    pub required_len: u32,
    /// Answer, authority and additional records, in that order.
    pub body: &'a [u8],
}

/// What the writer decided, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta {
    /// Bytes written.
    pub len: usize,
    /// The response code written (extended codes included).
    pub rcode: u16,
    /// Whether TC was set.
    pub truncated: bool,
}

/// Size of the OPT record signpost writes: root owner, type, class, TTL, RDLENGTH 0.
const OPT_LEN: usize = 11;

// === impl Rendered ===

impl Rendered {
    /// Assembles an answer from its three sections.
    pub fn new(
        rcode: u16,
        authoritative: bool,
        answer: &RecordWriter,
        authority: &RecordWriter,
        additional: &RecordWriter,
    ) -> Self {
        let mut body = Vec::with_capacity(
            answer.bytes().len() + authority.bytes().len() + additional.bytes().len(),
        );
        body.extend_from_slice(answer.bytes());
        body.extend_from_slice(authority.bytes());
        let required_len = body.len() as u32;
        body.extend_from_slice(additional.bytes());
        Self {
            rcode,
            authoritative,
            answer_count: answer.count(),
            authority_count: authority.count(),
            additional_count: additional.count(),
            required_len,
            body: body.into_boxed_slice(),
        }
    }

    /// Borrows the answer for [`write_response`].
    pub fn view(&self) -> AnswerView<'_> {
        AnswerView {
            rcode: self.rcode,
            authoritative: self.authoritative,
            answer_count: self.answer_count,
            authority_count: self.authority_count,
            additional_count: self.additional_count,
            required_len: self.required_len,
            body: &self.body,
        }
    }
}

/// Writes the answer to `query` into `out`, never longer than `limit` bytes.
///
/// `out` must be at least `limit` bytes long. If everything does not fit, the
/// additional section is dropped first (RFC 2181 §9: TC is only for data that
/// was required); if the answer and authority sections still do not fit, TC is
/// set and no records are sent, so a client never sees a partial RRset.
pub fn write_response(
    query: &Query<'_>,
    rendered: AnswerView<'_>,
    out: &mut [u8],
    limit: usize,
) -> ResponseMeta {
    write_response_patched(query, rendered, Patch::NONE, out, limit)
}

/// How a copied body differs from an authoritative answer: header bits of a
/// recursive answer and one TTL written over every record (a cached answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch<'a> {
    /// Set RA (RFC 1035 §4.1.1): the answer came through recursion.
    pub recursion_available: bool,
    /// Set AD (RFC 4035 §3.2.3).
    pub authentic_data: bool,
    /// Offsets within the body of each record's four-byte TTL field, ascending.
    pub ttl_offsets: &'a [u16],
    /// The TTL written at every offset inside the part of the body that is sent.
    pub ttl: u32,
    /// SCOPE PREFIX-LENGTH of the echoed Client Subnet option (RFC 7871 §7.2):
    /// how many bits of the client's subnet the answer depends on.
    pub ecs_scope: u8,
}

impl Patch<'_> {
    /// No change: the body is copied as it is, RA and AD clear.
    pub const NONE: Patch<'static> = Patch {
        recursion_available: false,
        authentic_data: false,
        ttl_offsets: &[],
        ttl: 0,
        ecs_scope: 0,
    };
}

/// [`write_response`] with header bits and TTLs patched while copying; the same
/// truncation rules apply. Allocation-free.
pub fn write_response_patched(
    query: &Query<'_>,
    rendered: AnswerView<'_>,
    patch: Patch<'_>,
    out: &mut [u8],
    limit: usize,
) -> ResponseMeta {
    let question = query.question();
    let opt_len = query.edns.map_or(0, |edns| {
        OPT_LEN + edns.client_subnet.map_or(0, |ecs| 8 + ecs.address_len())
    });
    let fixed = HEADER_LEN + question.len() + opt_len;
    let limit = limit.min(out.len());

    let (body, answers, authorities, additionals, truncated) =
        if fixed + rendered.body.len() <= limit {
            (
                rendered.body,
                rendered.answer_count,
                rendered.authority_count,
                rendered.additional_count,
                false,
            )
        } else if fixed + rendered.required_len as usize <= limit {
            (
                &rendered.body[..rendered.required_len as usize],
                rendered.answer_count,
                rendered.authority_count,
                0,
                false,
            )
        } else {
            (&rendered.body[..0], 0, 0, 0, true)
        };
    if fixed > limit {
        // Only possible for a limit below 12 + 255 + 4 + 11, which callers never pass.
        return ResponseMeta {
            len: 0,
            rcode: rendered.rcode,
            truncated: true,
        };
    }

    let counts = [
        1,
        answers,
        authorities,
        additionals + u16::from(opt_len > 0),
    ];
    write_header(
        query.header(),
        out,
        rendered.rcode,
        rendered.authoritative,
        truncated,
        counts,
    );
    if patch.recursion_available {
        out[3] |= 0x80;
    }
    if patch.authentic_data {
        out[3] |= 0x20;
    }
    let mut at = HEADER_LEN;
    out[at..at + question.len()].copy_from_slice(question);
    at += question.len();
    let copied = &mut out[at..at + body.len()];
    copied.copy_from_slice(body);
    let ttl = patch.ttl.to_be_bytes();
    for &offset in patch.ttl_offsets {
        let offset = offset as usize;
        match copied.get_mut(offset..offset + 4) {
            Some(field) => field.copy_from_slice(&ttl),
            None => break,
        }
    }
    at += body.len();
    if let Some(edns) = query.edns {
        at += write_opt(&mut out[at..], 0, edns.dnssec_ok);
        if let Some(ecs) = edns.client_subnet {
            at += write_client_subnet(&mut out[at..], &ecs, patch.ecs_scope);
            // The OPT record's RDLENGTH covers the option just written.
            let rdlength = (8 + ecs.address_len()) as u16;
            out[at - 8 - ecs.address_len() - 2..at - 8 - ecs.address_len()]
                .copy_from_slice(&rdlength.to_be_bytes());
        }
    }
    ResponseMeta {
        len: at,
        rcode: rendered.rcode,
        truncated,
    }
}

/// Writes an answer with no records and the given code, echoing the question
/// and OPT. BADVERS (16) is split between the header and the OPT record
/// (RFC 6891 §6.1.3) and answered with an OPT of version 0.
pub fn write_error(query: &Query<'_>, code: u16, out: &mut [u8]) -> ResponseMeta {
    let question = query.question();
    let has_opt = query.edns.is_some();
    let counts = [1, 0, 0, u16::from(has_opt)];
    write_header(query.header(), out, code & 0x0f, false, false, counts);
    let mut at = HEADER_LEN;
    out[at..at + question.len()].copy_from_slice(question);
    at += question.len();
    if let Some(edns) = query.edns {
        at += write_opt(&mut out[at..], (code >> 4) as u8, edns.dnssec_ok);
    }
    ResponseMeta {
        len: at,
        rcode: code,
        truncated: false,
    }
}

/// Writes a header-only answer (no question) for a datagram that could not be
/// parsed: FORMERR or NOTIMP. `packet` must be at least 12 bytes.
pub fn write_header_only(packet: &[u8], code: u16, out: &mut [u8]) -> ResponseMeta {
    write_header(&packet[..HEADER_LEN], out, code, false, false, [0, 0, 0, 0]);
    ResponseMeta {
        len: HEADER_LEN,
        rcode: code,
        truncated: false,
    }
}

fn write_header(
    query_header: &[u8],
    out: &mut [u8],
    code: u16,
    aa: bool,
    tc: bool,
    counts: [u16; 4],
) {
    out[0] = query_header[0];
    out[1] = query_header[1];
    // QR, the query's opcode, AA, TC and the query's RD (RFC 1035 §4.1.1).
    out[2] =
        0x80 | (query_header[2] & 0x79) | if aa { 0x04 } else { 0 } | if tc { 0x02 } else { 0 };
    // RA clear, Z clear, AD clear, CD copied (RFC 4035 §3.1.6), RCODE.
    out[3] = (query_header[3] & 0x10) | (code as u8 & 0x0f);
    for (i, count) in counts.iter().enumerate() {
        out[4 + 2 * i..6 + 2 * i].copy_from_slice(&count.to_be_bytes());
    }
}

/// Writes the Client Subnet option echoing the query's family, source prefix
/// and address, with the given scope (RFC 7871 §7.2.1).
fn write_client_subnet(out: &mut [u8], ecs: &crate::query::ClientSubnet, scope: u8) -> usize {
    let len = ecs.address_len();
    out[..2].copy_from_slice(&crate::query::OPTION_CLIENT_SUBNET.to_be_bytes());
    out[2..4].copy_from_slice(&((4 + len) as u16).to_be_bytes());
    out[4..6].copy_from_slice(&ecs.family.to_be_bytes());
    out[6] = ecs.source_prefix;
    out[7] = scope.min(if ecs.family == 1 { 32 } else { 128 });
    out[8..8 + len].copy_from_slice(&ecs.address[..len]);
    8 + len
}

/// [`write_response`] echoing the query's Client Subnet option with `scope`.
pub fn write_response_scoped(
    query: &Query<'_>,
    rendered: AnswerView<'_>,
    out: &mut [u8],
    limit: usize,
    scope: u8,
) -> ResponseMeta {
    write_response_patched(
        query,
        rendered,
        Patch {
            ecs_scope: scope,
            ..Patch::NONE
        },
        out,
        limit,
    )
}

fn write_opt(out: &mut [u8], extended_rcode: u8, dnssec_ok: bool) -> usize {
    let size = ADVERTISED_UDP_SIZE.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    let opt = [
        0,
        0,
        41,
        size[0],
        size[1],
        extended_rcode,
        0,
        flags,
        0,
        0,
        0,
    ];
    out[..OPT_LEN].copy_from_slice(&opt);
    OPT_LEN
}

/// Rotates each run of consecutive answer records of type A, AAAA or MX that
/// have the same length by `turn` places, in place (CoreDNS `loadbalance`
/// round robin). A message that does not parse is left as it is. No allocation.
pub fn rotate_answers(message: &mut [u8], turn: usize) {
    let Some([_, answers, _, _]) = crate::walk::section_counts(message) else {
        return;
    };
    let Some(mut at) = crate::walk::question_end(message) else {
        return;
    };
    // (start, record length, type) of the current run, and its count.
    let mut run: Option<(usize, usize, u16)> = None;
    let mut count = 0usize;
    for _ in 0..answers {
        // Rotating a run of equal-length records moves no later record, so
        // the walk can go on in the message being rotated.
        let Ok(record) = crate::walk::record_at(message, at) else {
            return;
        };
        let (len, rr_type) = (record.end - at, record.rtype);
        let rotatable = matches!(
            rr_type,
            crate::rtype::A | crate::rtype::AAAA | crate::rtype::MX
        );
        match run {
            Some((_, run_len, run_type)) if rotatable && run_len == len && run_type == rr_type => {
                count += 1
            }
            _ => {
                if let Some((start, run_len, _)) = run {
                    rotate_run(message, start, run_len, count, turn);
                }
                run = rotatable.then_some((at, len, rr_type));
                count = usize::from(rotatable);
            }
        }
        at = record.end;
    }
    if let Some((start, run_len, _)) = run {
        rotate_run(message, start, run_len, count, turn);
    }
}

fn rotate_run(message: &mut [u8], start: usize, len: usize, count: usize, turn: usize) {
    if count > 1 {
        message[start..start + len * count].rotate_left((turn % count) * len);
    }
}
