//! An upstream reply stored ready to replay: [`CachedAnswer`] and [`write_cached`].
//!
//! Built on the control side (after the forwarder's reply arrives; allocates),
//! replayed on the data plane (no allocation, no lock). The reply is walked
//! with bounds checks only: names are skipped, never decompressed, and the
//! sections after the question are kept byte for byte. Because the body is
//! written back at the offset it had upstream (12 + question length, and the
//! question has the same length as the client's, being the same name up to
//! case), compression pointers into the header, the question and earlier
//! records stay valid. Pointers into the question now name the client's
//! spelling, which is what the client asked for.
//!
//! ```text
//! reply:  header | question | answer authority additional(.. OPT ..)
//!                           └──────────── body ───────────┘   (records after OPT dropped)
//! answer: client header' | client question | body (TTLs patched) | own OPT
//! ```

use signpost_proto::walk::record_at;
use signpost_proto::{
    AnswerView, HEADER_LEN, Patch, Query, ResponseMeta, rcode, rtype, write_error,
    write_response_patched,
};
use tokio::time::Instant;

/// Which cache, and which capacity and TTL bounds, an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// NOERROR with data, or a referral (CoreDNS's success cache).
    Success = 0,
    /// NXDOMAIN or NODATA (RFC 2308; CoreDNS's denial cache).
    Denial = 1,
}

impl Kind {
    /// The `type` label of the cache metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denial => "denial",
        }
    }
}

/// Bounds on the TTL an answer is cached for, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlBounds {
    /// Never cache longer than this.
    pub max_ttl: u32,
    /// Never cache shorter than this (CoreDNS's MINTTL).
    pub min_ttl: u32,
}

/// Why a reply is not cached. Allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The reply is not a well-formed DNS response.
    Malformed,
    /// The reply's question is not the query's (CoreDNS counts these as drops).
    QuestionMismatch,
    /// TC was set: a partial answer is never cached.
    Truncated,
    /// An RCODE other than NOERROR and NXDOMAIN (SERVFAIL, REFUSED, ...).
    Uncacheable,
}

/// TTL of an answer served after its TTL ran out (serve_stale). CoreDNS serves stale
/// answers with TTL 0 (its README: "The responses have a TTL of 0"); RFC 8767 §4
/// recommends 30 s, which newer CoreDNS offers as an option. signpost keeps
/// CoreDNS's default so clients do not hold on to stale data.
pub const STALE_TTL: u32 = 0;

/// TTL used when a reply carries no records at all (CoreDNS's fail-safe, 5 s).
const FAILSAFE_TTL: u32 = 5;

/// A reply, kept as the bytes after its question plus what is needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    rcode: u16,
    kind: Kind,
    authentic_data: bool,
    answer_count: u16,
    authority_count: u16,
    additional_count: u16,
    required_len: u32,
    question_len: u16,
    body: Box<[u8]>,
    ttl_offsets: Box<[u16]>,
    ttl: u32,
    keep_ttl: bool,
    stored: Instant,
}

// === impl CachedAnswer ===

impl CachedAnswer {
    /// Parses `reply`, the upstream answer to `query`, and decides how long to keep it.
    ///
    /// Success answers live for the smallest record TTL, bounded by `success`;
    /// denials for the smallest record TTL and the SOA MINIMUM (RFC 2308 §5),
    /// bounded by `denial`. With `keep_ttl` the stored TTL is written unaged.
    pub fn try_new(
        query: &Query<'_>,
        reply: &[u8],
        success: TtlBounds,
        denial: TtlBounds,
        keep_ttl: bool,
        now: Instant,
    ) -> Result<Self, Rejection> {
        let header = reply.get(..HEADER_LEN).ok_or(Rejection::Malformed)?;
        // QR must be set and the opcode QUERY.
        if header[2] & 0x80 == 0 || header[2] & 0x78 != 0 {
            return Err(Rejection::Malformed);
        }
        if header[2] & 0x02 != 0 {
            return Err(Rejection::Truncated);
        }
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        if count(4) != 1 {
            return Err(Rejection::Malformed);
        }
        let code = u16::from(header[3] & 0x0f);
        if code != rcode::NOERROR && code != rcode::NXDOMAIN {
            return Err(Rejection::Uncacheable);
        }

        // The question: same name up to case (RFC 4343), same type and class.
        let question = query.question();
        let qname_len = question.len() - 4;
        let reply_question = reply
            .get(HEADER_LEN..HEADER_LEN + question.len())
            .ok_or(Rejection::QuestionMismatch)?;
        // Label lengths are below 0x40, so folding ASCII case only touches label bytes:
        // equal up to case means the same label structure too.
        if !reply_question[..qname_len].eq_ignore_ascii_case(&question[..qname_len])
            || reply_question[qname_len..] != question[qname_len..]
        {
            return Err(Rejection::QuestionMismatch);
        }
        let body_start = HEADER_LEN + question.len();

        let (answers, authorities, additionals) = (count(6), count(8), count(10));
        let mut at = body_start;
        let mut ttl_offsets = Vec::with_capacity(
            usize::from(answers) + usize::from(authorities) + usize::from(additionals),
        );
        let mut min_ttl: Option<u32> = None;
        let mut soa_seen = false;
        let mut ns_seen = false;
        let mut kept_additionals = 0u16;
        let mut required_len = None;
        let required_records = u32::from(answers) + u32::from(authorities);
        let total = required_records + u32::from(additionals);
        for index in 0..total {
            if index == required_records {
                required_len = Some(at - body_start);
            }
            let record = record_at(reply, at).map_err(|_| Rejection::Malformed)?;
            let in_authority = index >= u32::from(answers) && index < required_records;
            let in_additional = index >= required_records;
            if in_additional && record.rtype == rtype::OPT {
                // RFC 6891 §6.1.1: the OPT record is hop-by-hop; the client gets ours.
                // An extended RCODE (upper bits in the OPT TTL) is not NOERROR/NXDOMAIN.
                if record.ttl >> 24 != 0 {
                    return Err(Rejection::Uncacheable);
                }
                // Records after the OPT would move and break pointers into them;
                // additional data is optional, so they are dropped (a TSIG, always
                // last, goes with them: it signs the upstream's message, not ours).
                break;
            }
            // RFC 2181 §8: a TTL with the top bit set is treated as zero.
            let mut ttl = if record.ttl & 0x8000_0000 != 0 {
                0
            } else {
                record.ttl
            };
            if in_authority {
                match record.rtype {
                    rtype::SOA => {
                        soa_seen = true;
                        // RFC 2308 §5: a negative answer is cached for the minimum of
                        // the SOA's TTL and its MINIMUM field (the last 32 bits).
                        let rdata = &reply[record.rdata..record.end];
                        if (code == rcode::NXDOMAIN || answers == 0) && rdata.len() >= 22 {
                            let minimum = &rdata[rdata.len() - 4..];
                            ttl = ttl.min(u32::from_be_bytes([
                                minimum[0], minimum[1], minimum[2], minimum[3],
                            ]));
                        }
                    }
                    rtype::NS => ns_seen = true,
                    _ => {}
                }
            }
            min_ttl = Some(min_ttl.map_or(ttl, |m| m.min(ttl)));
            let offset =
                u16::try_from(record.ttl_at - body_start).map_err(|_| Rejection::Malformed)?;
            ttl_offsets.push(offset);
            if in_additional {
                kept_additionals += 1;
            }
            at = record.end;
        }
        let body_end = at;
        let required_len = required_len.unwrap_or(at - body_start);

        // CoreDNS's classification: NXDOMAIN and NOERROR without answers are denials,
        // except a referral (NS in authority, no SOA), which is a success.
        let kind = if code == rcode::NXDOMAIN || (answers == 0 && (soa_seen || !ns_seen)) {
            Kind::Denial
        } else {
            Kind::Success
        };
        let bounds = match kind {
            Kind::Success => success,
            Kind::Denial => denial,
        };
        let ttl = min_ttl
            .unwrap_or(FAILSAFE_TTL)
            .min(bounds.max_ttl)
            .max(bounds.min_ttl);
        let body: Box<[u8]> = reply[body_start..body_end].into();
        Ok(Self {
            rcode: code,
            kind,
            authentic_data: header[3] & 0x20 != 0,
            answer_count: answers,
            authority_count: authorities,
            additional_count: kept_additionals,
            required_len: required_len as u32,
            question_len: question.len() as u16,
            body,
            ttl_offsets: ttl_offsets.into_boxed_slice(),
            ttl,
            keep_ttl,
            stored: now,
        })
    }

    /// The response code (NOERROR or NXDOMAIN).
    pub fn rcode(&self) -> u16 {
        self.rcode
    }

    /// Success or denial.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Seconds the answer is fresh for, counted from [`Self::stored`].
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// When the answer was stored.
    pub fn stored(&self) -> Instant {
        self.stored
    }

    /// When the answer stops being fresh.
    pub fn expires(&self) -> Instant {
        self.stored + std::time::Duration::from_secs(u64::from(self.ttl))
    }

    /// Seconds of freshness left at `now` (whole seconds, rounded down as CoreDNS
    /// does); 0 once expired.
    pub fn remaining_ttl(&self, now: Instant) -> u32 {
        let age = now.saturating_duration_since(self.stored).as_secs();
        u64::from(self.ttl).saturating_sub(age) as u32
    }

    /// The answer, authority and additional records as stored.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Offsets within [`Self::body`] of every record's TTL field.
    pub fn ttl_offsets(&self) -> &[u16] {
        &self.ttl_offsets
    }

    /// Bytes of answer plus authority (what must fit or the answer is truncated).
    pub fn required_len(&self) -> u32 {
        self.required_len
    }

    /// Record counts: answer, authority, additional (the upstream OPT not counted).
    pub fn counts(&self) -> [u16; 3] {
        [
            self.answer_count,
            self.authority_count,
            self.additional_count,
        ]
    }
}

/// Writes `answer` as the response to `query` into `out`, never longer than `limit`.
///
/// Header: the client's ID, opcode, RD and CD; QR and RA set, AA clear, AD only
/// when upstream set it and the client asked with DO or AD (RFC 6840 §5.8).
/// Then the client's question (its case), the body with every TTL set to the
/// entry's remaining TTL (CoreDNS ages all records of an entry alike: each is
/// served with the entry's TTL minus its age; [`STALE_TTL`] once expired; the
/// stored TTL unaged with `keepttl`), and an OPT when the client sent one.
/// Truncation as [`signpost_proto::write_response`]. No allocation.
pub fn write_cached(
    query: &Query<'_>,
    answer: &CachedAnswer,
    now: Instant,
    out: &mut [u8],
    limit: usize,
) -> ResponseMeta {
    if query.question().len() != usize::from(answer.question_len) {
        // Not the question this answer was stored for: its pointers would be wrong.
        let limit = limit.min(out.len());
        return write_error(query, rcode::SERVFAIL, &mut out[..limit]);
    }
    let remaining = answer.remaining_ttl(now);
    let ttl = if remaining == 0 {
        STALE_TTL
    } else if answer.keep_ttl {
        answer.ttl
    } else {
        remaining
    };
    let asked_for_authentication =
        query.edns.is_some_and(|edns| edns.dnssec_ok) || query.header()[3] & 0x20 != 0;
    let view = AnswerView {
        rcode: answer.rcode,
        authoritative: false,
        answer_count: answer.answer_count,
        authority_count: answer.authority_count,
        additional_count: answer.additional_count,
        required_len: answer.required_len,
        body: &answer.body,
    };
    let patch = Patch {
        recursion_available: true,
        authentic_data: answer.authentic_data && asked_for_authentication,
        ttl_offsets: &answer.ttl_offsets,
        ttl,
        // The upstream answered for the whole subnet as far as we know.
        ecs_scope: 0,
    };
    write_response_patched(query, view, patch, out, limit)
}
