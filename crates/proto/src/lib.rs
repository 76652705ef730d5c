//! DNS wire format for the query hot path: parse a query, write an answer.
//!
//! Data plane. Nothing here allocates, locks or does I/O: [`parse_query`] reads a
//! datagram into a [`Query`] that borrows it, and [`write_response`] copies a
//! pre-rendered [`Rendered`] body behind a header and the echoed question into a
//! caller-owned buffer. Names in queries are never decompressed: a compression
//! pointer in a question is malformed (the question is the first name in a
//! message, so a pointer can only point backwards into the header).
//!
//! ```text
//! datagram ─▶ parse_query ─▶ Query { id, flags, qname (case kept), qtype, edns }
//!                                     │ lookup elsewhere ▼
//! buffer   ◀─ write_response ◀── Rendered { rcode, aa, counts, body bytes }
//! ```

pub mod message;
mod name;
mod query;
mod render;
mod response;
pub mod tsig;
pub mod update;
pub mod walk;

pub use walk::HEADER_LEN;
#[cfg(test)]
mod tests;

pub use name::{MAX_LABEL_LEN, MAX_NAME_LEN, Name, NameError, is_within_wire};
pub use query::{ClientSubnet, Edns, OPTION_CLIENT_SUBNET, ParseError, Query, parse_query};
pub use render::{RecordWriter, rdata};
pub use response::{
    AnswerView, Patch, Rendered, ResponseMeta, rotate_answers, write_error, write_header_only,
    write_response, write_response_patched, write_response_scoped,
};

/// Resource record types the server names. Values from the IANA registry.
pub mod rtype {
    /// IPv4 address (RFC 1035).
    pub const A: u16 = 1;
    /// Name server (RFC 1035).
    pub const NS: u16 = 2;
    /// Canonical name (RFC 1035).
    pub const CNAME: u16 = 5;
    /// Start of authority (RFC 1035).
    pub const SOA: u16 = 6;
    /// Domain name pointer (RFC 1035).
    pub const PTR: u16 = 12;
    /// Mail exchange (RFC 1035).
    pub const MX: u16 = 15;
    /// Text strings (RFC 1035).
    pub const TXT: u16 = 16;
    /// IPv6 address (RFC 3596).
    pub const AAAA: u16 = 28;
    /// Service location (RFC 2782).
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record (RFC 6891).
    pub const OPT: u16 = 41;
    /// Zone transfer (RFC 5936).
    pub const AXFR: u16 = 252;
    /// Any type (RFC 1035, RFC 8482).
    pub const ANY: u16 = 255;
}

/// Response codes, including the extended BADVERS (RFC 6891).
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// Format error: the query was malformed.
    pub const FORMERR: u16 = 1;
    /// Server failure.
    pub const SERVFAIL: u16 = 2;
    /// The name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// The opcode is not implemented.
    pub const NOTIMP: u16 = 4;
    /// The server refuses to answer (not authoritative, no forwarder).
    pub const REFUSED: u16 = 5;
    /// EDNS version not supported (RFC 6891 §6.1.3); needs an OPT record.
    pub const BADVERS: u16 = 16;
}

/// The class IN (RFC 1035).
pub const CLASS_IN: u16 = 1;

/// The UDP payload size signpost advertises and caps UDP answers at (DNS flag day 2020).
pub const ADVERTISED_UDP_SIZE: u16 = 1232;

/// Largest answer over TCP: the two-byte length prefix bounds it (RFC 1035 §4.2.2).
pub const MAX_TCP_MESSAGE: usize = 65535;
