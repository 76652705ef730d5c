//! Building answer sections ahead of time (control plane; allocates freely).
//!
//! Records owned by the question name are written with the owner `0xC00C`, a
//! compression pointer to the question (RFC 1035 §4.1.4), so one rendering serves
//! every letter-case spelling of the name and echoes the client's spelling.
//! Other names are written uncompressed.

use crate::name::Name;

/// Appends resource records to a section body.
#[derive(Debug, Default, Clone)]
pub struct RecordWriter {
    bytes: Vec<u8>,
    count: u16,
}

/// Pointer to the question name, which always starts at offset 12.
const QUESTION_POINTER: [u8; 2] = [0xc0, 0x0c];

// === impl RecordWriter ===

impl RecordWriter {
    /// An empty section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a record. `owner` of `None` means the question name.
    pub fn record(&mut self, owner: Option<&Name>, rtype: u16, ttl: u32, rdata: &[u8]) {
        match owner {
            None => self.bytes.extend_from_slice(&QUESTION_POINTER),
            Some(name) => self.bytes.extend_from_slice(name.as_wire()),
        }
        self.bytes.extend_from_slice(&rtype.to_be_bytes());
        self.bytes.extend_from_slice(&crate::CLASS_IN.to_be_bytes());
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        self.bytes
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(rdata);
        self.count += 1;
    }

    /// Appends every record of another writer.
    pub fn extend(&mut self, other: &Self) {
        self.bytes.extend_from_slice(&other.bytes);
        self.count += other.count;
    }

    /// Number of records written.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The encoded records.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// RDATA encoders for the types the cluster zone serves.
pub mod rdata {
    use super::Name;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A (RFC 1035 §3.4.1).
    pub fn a(address: Ipv4Addr) -> Vec<u8> {
        address.octets().to_vec()
    }

    /// AAAA (RFC 3596 §2.2).
    pub fn aaaa(address: Ipv6Addr) -> Vec<u8> {
        address.octets().to_vec()
    }

    /// A single domain name: CNAME, PTR or NS.
    pub fn name(target: &Name) -> Vec<u8> {
        target.as_wire().to_vec()
    }

    /// SRV (RFC 2782); the target is never compressed (RFC 2782, "Target").
    pub fn srv(priority: u16, weight: u16, port: u16, target: &Name) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + target.as_wire().len());
        out.extend_from_slice(&priority.to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&port.to_be_bytes());
        out.extend_from_slice(target.as_wire());
        out
    }

    /// TXT (RFC 1035 §3.3.14): each string at most 255 bytes, longer ones are split.
    pub fn txt(strings: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for text in strings {
            let bytes = text.as_bytes();
            if bytes.is_empty() {
                out.push(0);
            }
            for chunk in bytes.chunks(255) {
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        out
    }

    /// SOA (RFC 1035 §3.3.13).
    pub fn soa(mname: &Name, rname: &Name, serial: u32, timers: [u32; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(mname.as_wire());
        out.extend_from_slice(rname.as_wire());
        out.extend_from_slice(&serial.to_be_bytes());
        for timer in timers {
            out.extend_from_slice(&timer.to_be_bytes());
        }
        out
    }
}
