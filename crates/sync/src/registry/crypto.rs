//! Encrypted ownership TXT values (`--txt-encrypt-enabled`,
//! `--txt-encrypt-aes-key`).
//!
//! Control plane. The format of external-dns v0.22 (`endpoint/crypto.go`):
//! plaintext = the label string without quotes, gzip-compressed; AES-256-GCM
//! with a 12-byte nonce and no additional data; value = standard base64 of
//! nonce ‖ ciphertext ‖ tag. The first 16 base64 characters are therefore the
//! nonce. Any valid gzip member is accepted on read, so values written by
//! external-dns (Go's deflate) and by signpost (zlib's) both decrypt.
//!
//! Invariant: the key never leaves this module: [`AesKey`] prints as
//! `AesKey(******)`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::io::{Read as _, Write as _};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 32-byte AES key.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

/// The key is neither 32 bytes nor base64 of 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the AES Encryption key must be 32 bytes long, in either plain text or base64-encoded format"
)]
pub struct BadKey;

/// A value that does not decrypt with this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TXT value does not decrypt")]
pub struct DecryptError;

// === impl AesKey ===

impl AesKey {
    /// 32 raw bytes, or standard base64 (with padding) of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, BadKey> {
        let bytes = if text.len() == 32 {
            text.as_bytes().to_vec()
        } else {
            STANDARD.decode(text).map_err(|_| BadKey)?
        };
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| BadKey)
    }

    /// Encrypts `plaintext` with `nonce` (base64 of 12 bytes) or a fresh one.
    pub fn encrypt(&self, plaintext: &str, nonce: Option<&str>) -> String {
        let nonce: [u8; NONCE_LEN] = nonce
            .and_then(|n| STANDARD.decode(n).ok())
            .and_then(|n| <[u8; NONCE_LEN]>::try_from(n.as_slice()).ok())
            .unwrap_or_else(fresh_nonce);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing into a Vec cannot fail.
        let _ = gzip.write_all(plaintext.as_bytes());
        let compressed = gzip.finish().unwrap_or_default();
        let cipher = Aes256Gcm::new((&self.0).into());
        // Encryption fails only for inputs longer than GCM allows (64 GiB).
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), compressed.as_slice())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// Decrypts a value (without quotes); returns the plaintext and the base64 nonce.
    pub fn decrypt(&self, value: &str) -> Result<(String, String), DecryptError> {
        let bytes = STANDARD.decode(value.trim()).map_err(|_| DecryptError)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(DecryptError);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new((&self.0).into());
        let compressed = cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| DecryptError)?;
        let mut plaintext = String::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_string(&mut plaintext)
            .map_err(|_| DecryptError)?;
        Ok((plaintext, STANDARD.encode(nonce)))
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(******)")
    }
}

fn fresh_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    // Without an OS random source nothing here is safe; a zero nonce is
    // still unique per value only by luck, so fail loudly in the log.
    if getrandom::getrandom(&mut nonce).is_err() {
        tracing::error!("no OS random source for TXT encryption nonces");
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "passphrasewhichneedstobe32bytes!";
    const PLAIN: &str = "heritage=external-dns,external-dns/owner=default,external-dns/resource=service/default/nginx";

    /// Notes §5.5: the documented layout vector (nonce 01..0c, zlib level 9) decrypts.
    #[test]
    fn documented_vector_decrypts() {
        let key = AesKey::parse(KEY).unwrap();
        let value = "AQIDBAUGBwgJCgsM+UupjtEDBd9ydJ3g8OWSHVQG2HwdY1QwzWZof+ALZnAW0mSM//qiEjjxvlII5wM6gjl4/4XHo+lRRijSVGa2A/yaFps2bpfeQpQ1643pmLR2WcIg9q3/Qwb13VgITKXhg/Ld1A==";
        let (plain, nonce) = key.decrypt(value).unwrap();
        assert_eq!(plain, PLAIN);
        assert_eq!(nonce, "AQIDBAUGBwgJCgsM");
    }

    /// The known-answer vector of external-dns's own tests (produced by Go's
    /// gzip and AES-GCM) decrypts: values external-dns wrote are readable.
    #[test]
    fn go_vector_decrypts() {
        let key = AesKey::parse("s%zF`.*'5`9.AhI2!B,.~hmbs^.*TL?;").unwrap();
        let value = "0Mfzf6wsN8llrfX0ucDZ6nlc2+QiQfKKedjPPLu5atb2I35L9nUZeJcCnuLVW7CVW3K0h94vSuBLdXnMrj8Vcm0M09shxaoF48IcCpD03XtQbKXqk2hPbsW6+JybvplHIQGr16/PcjUSObGmR9yjf38+qEltApkKvrPjsyw43BX4eE10rL0Bln33UJD7/w+zazRDPFlAcbGtkt0ETKHnvyB3/aCddLipvrhjCXj2ZY/ktRF6h716kJRgXU10dCIQHFYU45MIdxI+k10HK3yZqhI2V0Gp2xjrFV/LRQ7/OS9SFee4asPWUYxbCEsnOzp8qc0dCPFSo1dtADzWnUZnsAcbnjtudT4milfLJc5CxDk1v3ykqQ/ajejwHjWQ7b8U6AsTErbezfdcqrb5IzkLgHb5TosnfrdDmNc9GcKfpsrCHbVY8KgNwMVdtwavLv7d9WM6sooUlZ3t0sABGkzagXQmPRvwLnkSOlie5XrnzWo8/8/4UByLga29CaXO";
        let (plain, _) = key.decrypt(value).unwrap();
        assert!(
            plain.starts_with("Lorem Ipsum is simply dummy text"),
            "{plain}"
        );
        assert!(plain.ends_with("versions of Lorem Ipsum."), "{plain}");
    }

    /// Round trip; the nonce is the first 16 characters and is reused when given.
    #[test]
    fn round_trip_and_nonce_reuse() {
        let key = AesKey::parse(&STANDARD.encode(KEY)).unwrap();
        let value = key.encrypt(PLAIN, None);
        let (plain, nonce) = key.decrypt(&value).unwrap();
        assert_eq!(plain, PLAIN);
        assert_eq!(&value[..16], nonce);
        assert_eq!(key.encrypt(PLAIN, Some(&nonce)), value);
        let other = AesKey::parse(&"x".repeat(32)).unwrap();
        assert_eq!(other.decrypt(&value), Err(DecryptError));
        assert_eq!(key.decrypt("not base64!"), Err(DecryptError));
    }

    #[test]
    fn key_forms() {
        assert!(AesKey::parse("short").is_err());
        assert!(AesKey::parse(&STANDARD.encode([0u8; 31])).is_err());
        assert_eq!(
            format!("{:?}", AesKey::parse(KEY).unwrap()),
            "AesKey(******)"
        );
    }
}
