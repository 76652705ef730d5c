//! TSIG (RFC 8945): signing requests and verifying responses, including a
//! multi-message zone transfer, with HMAC-SHA1/224/256/384/512.
//!
//! Control plane (record sync's rfc2136 provider), sans I/O: the caller
//! sends and receives; this module appends and checks the TSIG record.
//! Invariants: a secret never appears in `Debug` output or an error; MACs
//! are compared in constant time; a response is accepted only with a valid
//! MAC over exactly what RFC 8945 §4.3 says, and a transfer only when its
//! first and last messages carry one (RFC 8945 §5.3.1).
//!
//! ```text
//! request:  message ‖ TSIG(key, alg, time, fudge, MAC = HMAC(message ‖ variables))
//! response: MAC = HMAC(len ‖ request MAC ‖ response without TSIG, original ID ‖ variables)
//! AXFR n:   MAC = HMAC(len ‖ prior MAC ‖ unsigned messages since ‖ message ‖ timers)
//! ```

use crate::name::Name;
use crate::walk::{self, HEADER_LEN, Records};
use hmac::Hmac;
use std::fmt;

/// The TSIG record type (RFC 8945 §4.2).
pub const TSIG: u16 = 250;
/// The class TSIG records carry (RFC 8945 §4.2: ANY).
pub const CLASS_ANY: u16 = 255;
/// The fudge signpost sends, in seconds (RFC 8945 §10 recommends 300).
pub const FUDGE: u16 = 300;

/// TSIG error codes (RFC 8945 §4.3, IANA DNS RCODEs).
pub mod error {
    /// The MAC did not verify.
    pub const BADSIG: u16 = 16;
    /// The key is not known to the receiver.
    pub const BADKEY: u16 = 17;
    /// The signature is outside the fudge window.
    pub const BADTIME: u16 = 18;
    /// The MAC was truncated below the allowed length.
    pub const BADTRUNC: u16 = 22;
}

/// HMAC algorithms (RFC 8945 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// hmac-sha1.
    HmacSha1,
    /// hmac-sha224.
    HmacSha224,
    /// hmac-sha256 (mandatory to implement).
    HmacSha256,
    /// hmac-sha384.
    HmacSha384,
    /// hmac-sha512.
    HmacSha512,
}

// === impl Algorithm ===

impl Algorithm {
    /// Parses `hmac-sha256` (with or without the trailing dot, any case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha1" => Some(Self::HmacSha1),
            "hmac-sha224" => Some(Self::HmacSha224),
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha384" => Some(Self::HmacSha384),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm's name as TSIG writes it (RFC 8945 §6).
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha1 => "hmac-sha1",
            Self::HmacSha224 => "hmac-sha224",
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn mac(self, secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: hmac::Mac + hmac::digest::KeyInit>(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC takes keys of any length (RFC 2104 §3).
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::HmacSha1 => run::<Hmac<sha1::Sha1>>(secret, parts),
            Self::HmacSha224 => run::<Hmac<sha2::Sha224>>(secret, parts),
            Self::HmacSha256 => run::<Hmac<sha2::Sha256>>(secret, parts),
            Self::HmacSha384 => run::<Hmac<sha2::Sha384>>(secret, parts),
            Self::HmacSha512 => run::<Hmac<sha2::Sha512>>(secret, parts),
        }
    }
}

/// A TSIG key: name, algorithm, secret.
#[derive(Clone)]
pub struct Key {
    name: Name,
    algorithm: Algorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({} {}, secret ******)",
            self.name,
            self.algorithm.name()
        )
    }
}

/// Why a TSIG exchange failed. No variant holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsigError {
    /// The response carries no TSIG where one is required.
    #[error("response is not signed")]
    Unsigned,
    /// The response's MAC does not verify with our key.
    #[error("response signature does not verify")]
    BadSignature,
    /// The server reported a TSIG error (BADKEY, BADSIG, BADTIME, ...).
    #[error("server reported TSIG error {}", error_name(*.0))]
    Server(u16),
    /// The response was signed with another key or algorithm.
    #[error("response signed with another key")]
    OtherKey,
    /// The signature time is outside the fudge window (RFC 8945 §5.2.3).
    #[error("response signature time is outside the allowed window")]
    BadTime,
    /// The TSIG record or message is malformed.
    #[error("malformed TSIG record")]
    Malformed,
}

fn error_name(code: u16) -> &'static str {
    match code {
        error::BADSIG => "BADSIG",
        error::BADKEY => "BADKEY",
        error::BADTIME => "BADTIME",
        error::BADTRUNC => "BADTRUNC",
        _ => "unknown",
    }
}

/// A key's secret is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TSIG secret is not valid base64")]
pub struct BadSecret;

// === impl Key ===

impl Key {
    /// A key from its name, algorithm and base64 secret (as BIND's
    /// `tsig-keygen` writes it).
    pub fn new(name: &Name, algorithm: Algorithm, secret_base64: &str) -> Result<Self, BadSecret> {
        Ok(Self {
            name: name.clone(),
            algorithm,
            secret: decode_base64(secret_base64.trim()).ok_or(BadSecret)?,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn algorithm_wire(&self) -> Name {
        // The names in `Algorithm::name` are valid DNS names.
        Name::from_ascii(self.algorithm.name()).unwrap_or_else(|_| Name::root())
    }

    /// RFC 8945 §4.3.3: the TSIG variables in canonical form.
    fn variables(&self, time: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(self.name.as_wire());
        out.extend_from_slice(&CLASS_ANY.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(self.algorithm_wire().as_wire());
        out.extend_from_slice(&time.to_be_bytes()[2..]);
        out.extend_from_slice(&fudge.to_be_bytes());
        out.extend_from_slice(&error.to_be_bytes());
        out.extend_from_slice(&(other.len() as u16).to_be_bytes());
        out.extend_from_slice(other);
        out
    }

    /// Signs a complete request in place (RFC 8945 §5.1): appends the TSIG
    /// record and counts it in ARCOUNT. Returns the MAC, which the response
    /// verification needs.
    pub fn sign(&self, message: &mut Vec<u8>, now: u64) -> Vec<u8> {
        let variables = self.variables(now, FUDGE, 0, &[]);
        let mac = self.algorithm.mac(&self.secret, &[message, &variables]);
        let id = [message[0], message[1]];
        self.append(message, now, &mac, id);
        mac
    }

    fn append(&self, message: &mut Vec<u8>, time: u64, mac: &[u8], original_id: [u8; 2]) {
        let algorithm = self.algorithm_wire();
        let mut rdata = Vec::with_capacity(algorithm.as_wire().len() + 16 + mac.len());
        rdata.extend_from_slice(algorithm.as_wire());
        rdata.extend_from_slice(&time.to_be_bytes()[2..]);
        rdata.extend_from_slice(&FUDGE.to_be_bytes());
        rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
        rdata.extend_from_slice(mac);
        rdata.extend_from_slice(&original_id);
        rdata.extend_from_slice(&0u16.to_be_bytes());
        rdata.extend_from_slice(&0u16.to_be_bytes());
        message.extend_from_slice(self.name.as_wire());
        message.extend_from_slice(&TSIG.to_be_bytes());
        message.extend_from_slice(&CLASS_ANY.to_be_bytes());
        message.extend_from_slice(&0u32.to_be_bytes());
        message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        message.extend_from_slice(&rdata);
        let additional = u16::from_be_bytes([message[10], message[11]]).wrapping_add(1);
        message[10..12].copy_from_slice(&additional.to_be_bytes());
    }
}

/// A TSIG record found at the end of a message.
struct Found {
    /// Offset where the TSIG record starts.
    start: usize,
    key_name: Name,
    algorithm: Name,
    time: u64,
    fudge: u16,
    mac: Vec<u8>,
    original_id: [u8; 2],
    error: u16,
    other: Vec<u8>,
}

/// The message's TSIG record, if its last record is one (RFC 8945 §5.2:
/// TSIG must be the last record).
fn find(message: &[u8]) -> Result<Option<Found>, TsigError> {
    let records = Records::after_question(message).map_err(|_| TsigError::Malformed)?;
    let mut last = None;
    for record in records {
        last = Some(record.map_err(|_| TsigError::Malformed)?);
    }
    let Some(record) = last.filter(|r| r.rtype == TSIG) else {
        return Ok(None);
    };
    let mut buffer = [0u8; crate::MAX_NAME_LEN];
    let (len, _) =
        walk::read_name(message, record.start, &mut buffer).map_err(|_| TsigError::Malformed)?;
    let key_name =
        Name::from_wire(&buffer[..len].to_ascii_lowercase()).ok_or(TsigError::Malformed)?;
    let rdata = &message[record.rdata..record.end];
    let (algorithm_len, after) =
        walk::read_name(message, record.rdata, &mut buffer).map_err(|_| TsigError::Malformed)?;
    let algorithm = Name::from_wire(&buffer[..algorithm_len].to_ascii_lowercase())
        .ok_or(TsigError::Malformed)?;
    let fixed = message.get(after..record.end).ok_or(TsigError::Malformed)?;
    let read16 = |at: usize| -> Result<u16, TsigError> {
        fixed
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(TsigError::Malformed)
    };
    let time_bytes = fixed.get(..6).ok_or(TsigError::Malformed)?;
    let mut time = [0u8; 8];
    time[2..].copy_from_slice(time_bytes);
    let fudge = read16(6)?;
    let mac_len = usize::from(read16(8)?);
    let mac = fixed
        .get(10..10 + mac_len)
        .ok_or(TsigError::Malformed)?
        .to_vec();
    let at = 10 + mac_len;
    let original = fixed.get(at..at + 2).ok_or(TsigError::Malformed)?;
    let error = read16(at + 2)?;
    let other_len = usize::from(read16(at + 4)?);
    let other = fixed
        .get(at + 6..at + 6 + other_len)
        .ok_or(TsigError::Malformed)?
        .to_vec();
    if at + 6 + other_len != fixed.len() || rdata.is_empty() {
        return Err(TsigError::Malformed);
    }
    Ok(Some(Found {
        start: record.start,
        key_name,
        algorithm,
        time: u64::from_be_bytes(time),
        fudge,
        mac,
        original_id: [original[0], original[1]],
        error,
        other,
    }))
}

/// Verifies the responses to one signed request: a single answer or every
/// message of a zone transfer, in order.
#[derive(Debug)]
pub struct Verifier {
    key: Key,
    /// The MAC of the request, then of the last signed response.
    prior_mac: Vec<u8>,
    /// Unsigned messages since the last signed one (RFC 8945 §5.3.1).
    pending: Vec<u8>,
    first: bool,
    last_signed: bool,
}

/// Whether a verified message carried a TSIG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// It was signed, and the MAC verified.
    Signed,
    /// It was not signed (allowed between signed messages of a transfer).
    Unsigned,
}

// === impl Verifier ===

impl Verifier {
    /// A verifier for the responses to a request signed with `key`, whose
    /// MAC was `request_mac`.
    pub fn new(key: &Key, request_mac: Vec<u8>) -> Self {
        Self {
            key: key.clone(),
            prior_mac: request_mac,
            pending: Vec::new(),
            first: true,
            last_signed: false,
        }
    }

    /// Checks the next response message at time `now`.
    pub fn verify(&mut self, message: &[u8], now: u64) -> Result<Verified, TsigError> {
        if message.len() < HEADER_LEN {
            return Err(TsigError::Malformed);
        }
        let Some(found) = find(message)? else {
            // RFC 8945 §5.3.1: the first message must be signed, and at most
            // 99 unsigned ones may follow a signed one.
            if self.first || self.pending.len() > 99 * usize::from(u16::MAX) {
                return Err(TsigError::Unsigned);
            }
            self.pending.extend_from_slice(message);
            self.last_signed = false;
            return Ok(Verified::Unsigned);
        };
        if found.error != 0 {
            return Err(TsigError::Server(found.error));
        }
        if found.key_name != self.key.name || found.algorithm != self.key.algorithm_wire() {
            return Err(TsigError::OtherKey);
        }
        // The message as the signer saw it: without the TSIG, ARCOUNT one
        // less, the original ID (RFC 8945 §4.3.1).
        let mut stripped = message[..found.start].to_vec();
        stripped[..2].copy_from_slice(&found.original_id);
        let additional = u16::from_be_bytes([stripped[10], stripped[11]]).wrapping_sub(1);
        stripped[10..12].copy_from_slice(&additional.to_be_bytes());
        let prior_len = (self.prior_mac.len() as u16).to_be_bytes();
        let variables = if self.first {
            self.key
                .variables(found.time, found.fudge, found.error, &found.other)
        } else {
            // RFC 8945 §5.3.1: later messages hash only the timers.
            let mut timers = found.time.to_be_bytes()[2..].to_vec();
            timers.extend_from_slice(&found.fudge.to_be_bytes());
            timers
        };
        let expected = self.key.algorithm.mac(
            &self.key.secret,
            &[
                &prior_len,
                &self.prior_mac,
                &self.pending,
                &stripped,
                &variables,
            ],
        );
        if !constant_time_eq(&expected, &found.mac) {
            return Err(TsigError::BadSignature);
        }
        // RFC 8945 §5.2.3: time within fudge of ours.
        if now.abs_diff(found.time) > u64::from(found.fudge) {
            return Err(TsigError::BadTime);
        }
        self.prior_mac = found.mac;
        self.pending.clear();
        self.first = false;
        self.last_signed = true;
        Ok(Verified::Signed)
    }

    /// Whether the last message seen was signed (a transfer must end signed).
    pub fn ended_signed(&self) -> bool {
        self.last_signed
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with padding (RFC 4648 §4), as key files hold secrets.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut word = 0u32;
        for &c in &chunk[..4 - pad] {
            word = (word << 6) | value(c)?;
        }
        word <<= 6 * pad as u32;
        let decoded = word.to_be_bytes();
        out.extend_from_slice(&decoded[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(algorithm: Algorithm) -> Key {
        Key::new(
            &Name::from_ascii("Sync-Key.").unwrap(),
            algorithm,
            "c2VjcmV0LWtleS1ieXRlcw==",
        )
        .unwrap()
    }

    fn query() -> Vec<u8> {
        crate::message::query(
            0x1234,
            b"\x07example\x00\x00\x06\x00\x01",
            false,
            false,
            None,
        )
    }

    /// A response signed the way RFC 8945 §5.3 says verifies; a changed
    /// byte, another key, or a stale time does not.
    #[test]
    fn sign_and_verify() {
        for algorithm in [
            Algorithm::HmacSha1,
            Algorithm::HmacSha224,
            Algorithm::HmacSha256,
            Algorithm::HmacSha384,
            Algorithm::HmacSha512,
        ] {
            let key = key(algorithm);
            let mut request = query();
            let request_mac = key.sign(&mut request, 1_000_000);
            assert_eq!(u16::from_be_bytes([request[10], request[11]]), 1);
            assert!(find(&request).unwrap().is_some());
            // The server's side: MAC over request MAC, response, variables.
            let mut response = query();
            response[2] |= 0x80;
            let variables = key.variables(1_000_010, FUDGE, 0, &[]);
            let len = (request_mac.len() as u16).to_be_bytes();
            let mac = key
                .algorithm
                .mac(&key.secret, &[&len, &request_mac, &response, &variables]);
            key.append(&mut response, 1_000_010, &mac, [0x12, 0x34]);
            let mut verifier = Verifier::new(&key, request_mac.clone());
            assert_eq!(verifier.verify(&response, 1_000_020), Ok(Verified::Signed));
            let mut tampered = response.clone();
            tampered[3] ^= 1;
            assert_eq!(
                Verifier::new(&key, request_mac.clone()).verify(&tampered, 1_000_020),
                Err(TsigError::BadSignature)
            );
            assert_eq!(
                Verifier::new(&key, request_mac.clone()).verify(&response, 2_000_000),
                Err(TsigError::BadTime)
            );
            let other =
                Key::new(&Name::from_ascii("other.").unwrap(), algorithm, "b3RoZXI=").unwrap();
            assert_eq!(
                Verifier::new(&other, request_mac).verify(&response, 1_000_020),
                Err(TsigError::OtherKey)
            );
        }
    }

    #[test]
    fn secrets_stay_secret() {
        let key = key(Algorithm::HmacSha256);
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        assert_eq!(
            decode_base64("c2VjcmV0LWtleS1ieXRlcw=="),
            Some(b"secret-key-bytes".to_vec())
        );
        assert_eq!(decode_base64("YQ=="), Some(b"a".to_vec()));
        assert!(decode_base64("not base64").is_none());
        assert_eq!(
            Algorithm::from_name("HMAC-SHA512."),
            Some(Algorithm::HmacSha512)
        );
        assert!(Algorithm::from_name("hmac-md5").is_none());
    }
}
