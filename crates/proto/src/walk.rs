//! Walking a DNS message: the one way signpost finds the question and the
//! records in a message, whoever asks (query parsing, the cache storing an
//! upstream reply, the forwarder checking one, zone transfers and dynamic
//! updates read by record sync).
//!
//! Data plane: no allocation, every read bounds-checked, names skipped
//! without following compression pointers (a pointer ends a name, RFC 1035
//! §4.1.4), so a walk is linear in the message and cannot loop. Only
//! [`read_name`] follows pointers, each strictly backwards and at most as
//! many as a name has room for.
//!
//! ```text
//! | header (12) | question: name type class | record: owner type class ttl rdlength rdata | ...
//!               ^ HEADER_LEN                ^ question_end     Record { start, ttl_at, rdata, end }
//! ```

use crate::name::{MAX_LABEL_LEN, MAX_NAME_LEN};
use std::ops::Range;

/// Offset of the question section (RFC 1035 §4.1.1: the header is 12 bytes).
pub const HEADER_LEN: usize = 12;

/// A message that does not hold what its header says, or a bad name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed DNS message")]
pub struct Malformed;

/// Where one resource record's parts are in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Offset of the owner name.
    pub start: usize,
    /// The owner is the root (a single zero byte), as an OPT's must be.
    pub owner_is_root: bool,
    /// TYPE.
    pub rtype: u16,
    /// CLASS (for OPT: the sender's UDP payload size).
    pub class: u16,
    /// TTL as sent (for OPT: extended RCODE, version and flags).
    pub ttl: u32,
    /// Offset of the TTL field.
    pub ttl_at: usize,
    /// Offset of RDATA.
    pub rdata: usize,
    /// Offset just past the record.
    pub end: usize,
}

/// The records of a message from one offset on, as many as asked for.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    message: &'a [u8],
    at: usize,
    left: u32,
}

/// Skips a name at `at` without following a pointer; returns the offset past it.
#[inline]
pub fn skip_name(message: &[u8], mut at: usize) -> Result<usize, Malformed> {
    let start = at;
    loop {
        let len = *message.get(at).ok_or(Malformed)?;
        match len {
            0 => return Ok(at + 1),
            1..=63 => {
                at += 1 + usize::from(len);
                // RFC 1035 §3.1: a name is at most 255 bytes.
                if at - start >= MAX_NAME_LEN {
                    return Err(Malformed);
                }
            }
            // A pointer ends the name; it is never followed here.
            0xc0..=0xff => return Ok(at + 2),
            // 0x40 and 0x80: extended label types (RFC 6891 §5), none in use.
            _ => return Err(Malformed),
        }
    }
}

/// The record at `at`.
#[inline]
pub fn record_at(message: &[u8], at: usize) -> Result<Record, Malformed> {
    let fixed_at = skip_name(message, at)?;
    let fixed = message.get(fixed_at..fixed_at + 10).ok_or(Malformed)?;
    let rdata = fixed_at + 10;
    let end = rdata + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    if end > message.len() {
        return Err(Malformed);
    }
    Ok(Record {
        start: at,
        owner_is_root: fixed_at == at + 1,
        rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        class: u16::from_be_bytes([fixed[2], fixed[3]]),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ttl_at: fixed_at + 4,
        rdata,
        end,
    })
}

/// The end of the first question: a name without compression (labels of at
/// most 63 bytes), then type and class. `None` when the message has none.
pub fn question_end(message: &[u8]) -> Option<usize> {
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > MAX_LABEL_LEN {
            return None;
        }
        at += 1 + len;
    }
    (at + 4 <= message.len()).then_some(at + 4)
}

/// The four section counts of a message header: question, answer, authority, additional.
pub fn section_counts(message: &[u8]) -> Option<[u16; 4]> {
    let header = message.get(..HEADER_LEN)?;
    let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    Some([count(4), count(6), count(8), count(10)])
}

/// Reads the name at `at` into `out` as uncompressed wire format, following
/// compression pointers (each strictly backwards). Returns the name's length
/// in `out` and the offset just past the name where it was written.
pub fn read_name(
    message: &[u8],
    at: usize,
    out: &mut [u8; MAX_NAME_LEN],
) -> Result<(usize, usize), Malformed> {
    let mut position = at;
    let mut written = 0;
    let mut after: Option<usize> = None;
    // Pointers must go backwards, so a name cannot be followed forever.
    let mut limit = at;
    loop {
        let len = *message.get(position).ok_or(Malformed)?;
        match len {
            0 => {
                *out.get_mut(written).ok_or(Malformed)? = 0;
                written += 1;
                return Ok((written, after.unwrap_or(position + 1)));
            }
            1..=63 => {
                let label = message
                    .get(position..position + 1 + usize::from(len))
                    .ok_or(Malformed)?;
                if written + label.len() >= MAX_NAME_LEN {
                    return Err(Malformed);
                }
                out[written..written + label.len()].copy_from_slice(label);
                written += label.len();
                position += label.len();
            }
            0xc0..=0xff => {
                let low = *message.get(position + 1).ok_or(Malformed)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= limit {
                    return Err(Malformed);
                }
                after.get_or_insert(position + 2);
                limit = target;
                position = target;
            }
            _ => return Err(Malformed),
        }
    }
}

// === impl Records ===

impl<'a> Records<'a> {
    /// `count` records of `message` starting at `at`.
    pub fn new(message: &'a [u8], at: usize, count: u32) -> Self {
        Self {
            message,
            at,
            left: count,
        }
    }

    /// Every record after the first question, as the header counts them:
    /// answers, authority, then additional.
    pub fn after_question(message: &'a [u8]) -> Result<Self, Malformed> {
        let [_, answers, authorities, additionals] = section_counts(message).ok_or(Malformed)?;
        let at = question_end(message).ok_or(Malformed)?;
        Ok(Self::new(
            message,
            at,
            u32::from(answers) + u32::from(authorities) + u32::from(additionals),
        ))
    }

    /// Where the next record starts (after the last one once all are walked).
    pub fn position(&self) -> usize {
        self.at
    }

    /// The RDATA range of `record` in this message.
    pub fn rdata(record: &Record) -> Range<usize> {
        record.rdata..record.end
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, Malformed>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match record_at(self.message, self.at) {
            Ok(record) => {
                self.at = record.end;
                Some(Ok(record))
            }
            Err(error) => {
                self.left = 0;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `a.example. A` with one compressed answer and an OPT.
    fn reply() -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
        m.extend_from_slice(b"\x01a\x07example\x00\x00\x01\x00\x01");
        // Answer: pointer to the question name, A IN, TTL 300, 192.0.2.1.
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        // OPT: root owner, UDP size 1232.
        m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        m
    }

    /// RFC 1035 §4.1: every record after the question, pointers not followed.
    #[test]
    fn walks_every_record() {
        let message = reply();
        let records: Vec<Record> = Records::after_question(&message)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].rtype, records[0].ttl), (1, 300));
        assert_eq!(&message[Records::rdata(&records[0])], &[192, 0, 2, 1]);
        assert!(records[1].owner_is_root);
        assert_eq!((records[1].rtype, records[1].class), (41, 1232));
        assert_eq!(records[1].end, message.len());
    }

    /// A count larger than the message is malformed, and the walk stops there.
    #[test]
    fn short_message_is_malformed() {
        let mut message = reply();
        message[7] = 3;
        let results: Vec<_> = Records::after_question(&message).unwrap().collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[2], Err(Malformed));
        message.truncate(message.len() - 3);
        message[7] = 1;
        let results: Vec<_> = Records::after_question(&message).unwrap().collect();
        assert_eq!(results[1], Err(Malformed));
    }

    /// RFC 1035 §4.1.4: a pointer is followed when reading a name, backwards only.
    #[test]
    fn reads_compressed_names_and_rejects_loops() {
        let message = reply();
        let mut name = [0u8; MAX_NAME_LEN];
        let (len, after) = read_name(&message, 27, &mut name).unwrap();
        assert_eq!(&name[..len], b"\x01a\x07example\x00");
        assert_eq!(after, 29);
        // A pointer to itself.
        let looped = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 12];
        assert_eq!(read_name(&looped, 12, &mut name), Err(Malformed));
        // A name longer than 255 bytes.
        let mut long = vec![0u8; 12];
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'x'; 63]);
        }
        long.push(0);
        assert_eq!(read_name(&long, 12, &mut name), Err(Malformed));
        assert_eq!(skip_name(&long, 12), Err(Malformed));
    }
}
