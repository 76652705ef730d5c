//! Parsing a query datagram without allocating (data plane).

use crate::name::{MAX_LABEL_LEN, MAX_NAME_LEN};
use crate::rtype;
use crate::walk::{HEADER_LEN, Records};

/// A parsed query. Borrows the datagram; the question is echoed from it verbatim,
/// so the client's letter case comes back unchanged (RFC 4343 §4.1).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    packet: &'a [u8],
    qname_len: usize,
    lower: [u8; MAX_NAME_LEN],
    /// The query type.
    pub qtype: u16,
    /// The query class.
    pub qclass: u16,
    /// The EDNS(0) OPT record, if the query carried one.
    pub edns: Option<Edns>,
}

/// What a query's OPT record asked for (RFC 6891 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size, as sent.
    pub udp_size: u16,
    /// The EDNS version; only 0 is supported.
    pub version: u8,
    /// The DNSSEC OK bit (RFC 3225), copied into the answer.
    pub dnssec_ok: bool,
    /// The EDNS Client Subnet option (RFC 7871), if the query carried one.
    pub client_subnet: Option<ClientSubnet>,
}

/// An EDNS Client Subnet option (RFC 7871 §6), validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// Address family: 1 for IPv4, 2 for IPv6.
    pub family: u16,
    /// SOURCE PREFIX-LENGTH: how many leading bits of the address are given.
    pub source_prefix: u8,
    /// The address, zero-padded (only `source_prefix` bits are meaningful).
    pub address: [u8; 16],
}

/// The EDNS option code of Client Subnet (RFC 7871 §6).
pub const OPTION_CLIENT_SUBNET: u16 = 8;

// === impl ClientSubnet ===

impl ClientSubnet {
    /// The client's network address.
    pub fn ip(&self) -> std::net::IpAddr {
        match self.family {
            1 => std::net::IpAddr::from([
                self.address[0],
                self.address[1],
                self.address[2],
                self.address[3],
            ]),
            _ => std::net::IpAddr::from(self.address),
        }
    }

    /// Bytes of ADDRESS on the wire: the source prefix rounded up to octets.
    pub fn address_len(&self) -> usize {
        (self.source_prefix as usize).div_ceil(8)
    }

    /// Parses the option data. RFC 7871 §7.1.2: a query whose option is
    /// malformed (unknown family, prefix longer than the address, address
    /// bytes not matching the prefix, bits set past the prefix, or a
    /// non-zero SCOPE PREFIX-LENGTH) is answered with FORMERR.
    fn parse(data: &[u8]) -> Result<Self, ParseError> {
        let header = data.get(..4).ok_or(ParseError::FormErr)?;
        let family = u16::from_be_bytes([header[0], header[1]]);
        let (source_prefix, scope) = (header[2], header[3]);
        let max = match family {
            1 => 32,
            2 => 128,
            _ => return Err(ParseError::FormErr),
        };
        if source_prefix > max || scope != 0 {
            return Err(ParseError::FormErr);
        }
        let bytes = &data[4..];
        if bytes.len() != (source_prefix as usize).div_ceil(8) {
            return Err(ParseError::FormErr);
        }
        // RFC 7871 §6: ADDRESS bits past SOURCE PREFIX-LENGTH MUST be zero.
        if let Some(&last) = bytes.last() {
            let used = source_prefix % 8;
            if used != 0 && last & (0xff >> used) != 0 {
                return Err(ParseError::FormErr);
            }
        }
        let mut address = [0u8; 16];
        address[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            family,
            source_prefix,
            address,
        })
    }
}

/// Why a datagram is not answered normally. Allocation-free; maps onto an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than a header, or a response (QR=1): no reply at all, so a
    /// forged response cannot start a reflection loop.
    Drop,
    /// Malformed: answer FORMERR with the header only.
    FormErr,
    /// An opcode other than QUERY: answer NOTIMP with the header only.
    NotImp,
}

// === impl Query ===

impl<'a> Query<'a> {
    /// The 16-bit message ID.
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.packet[0], self.packet[1]])
    }

    /// The RD bit.
    pub fn recursion_desired(&self) -> bool {
        self.packet[2] & 0x01 != 0
    }

    /// The CD bit (RFC 4035 §3.1.6), copied into the answer.
    pub fn checking_disabled(&self) -> bool {
        self.packet[3] & 0x10 != 0
    }

    /// The qname in wire format as the client sent it (original case).
    pub fn qname_wire(&self) -> &'a [u8] {
        &self.packet[HEADER_LEN..HEADER_LEN + self.qname_len]
    }

    /// The qname in wire format, folded to lower case: the lookup key.
    pub fn qname_lower(&self) -> &[u8] {
        &self.lower[..self.qname_len]
    }

    /// The whole question section as received (qname, qtype, qclass).
    pub fn question(&self) -> &'a [u8] {
        &self.packet[HEADER_LEN..HEADER_LEN + self.qname_len + 4]
    }

    /// The raw header bytes of the query.
    pub fn header(&self) -> &'a [u8] {
        &self.packet[..HEADER_LEN]
    }

    /// Largest UDP answer this query may get: the client's EDNS size bounded to
    /// 512..=1232 (RFC 6891 §6.2.5: values below 512 are treated as 512), or 512
    /// without EDNS (RFC 1035 §4.2.1).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(edns) => (edns.udp_size as usize).clamp(512, crate::ADVERTISED_UDP_SIZE as usize),
            None => 512,
        }
    }
}

/// Parses a query datagram. Never panics, never loops: every read is bounds
/// checked and every section is walked forwards only.
pub fn parse_query(packet: &[u8]) -> Result<Query<'_>, ParseError> {
    if packet.len() < HEADER_LEN {
        return Err(ParseError::Drop);
    }
    let flags = packet[2];
    if flags & 0x80 != 0 {
        return Err(ParseError::Drop);
    }
    if (flags >> 3) & 0x0f != 0 {
        return Err(ParseError::NotImp);
    }
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    // RFC 9619: a QUERY carries exactly one question.
    if count(4) != 1 {
        return Err(ParseError::FormErr);
    }
    let (answers, authorities, additionals) = (count(6), count(8), count(10));

    let mut lower = [0u8; MAX_NAME_LEN];
    let mut at = HEADER_LEN;
    loop {
        let len = *packet.get(at).ok_or(ParseError::FormErr)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        // A compression pointer or reserved label type in the question is malformed.
        if len > MAX_LABEL_LEN {
            return Err(ParseError::FormErr);
        }
        if at + 1 + len - HEADER_LEN >= MAX_NAME_LEN {
            return Err(ParseError::FormErr);
        }
        let label = packet
            .get(at + 1..at + 1 + len)
            .ok_or(ParseError::FormErr)?;
        lower[at - HEADER_LEN] = len as u8;
        for (d, s) in lower[at + 1 - HEADER_LEN..].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        at += 1 + len;
    }
    let qname_len = at - HEADER_LEN;
    let fixed = packet.get(at..at + 4).ok_or(ParseError::FormErr)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    at += 4;

    let mut records = Records::new(packet, at, u32::from(answers) + u32::from(authorities));
    for record in records.by_ref() {
        record.map_err(|_| ParseError::FormErr)?;
    }
    let mut edns = None;
    for record in Records::new(packet, records.position(), u32::from(additionals)) {
        let record = record.map_err(|_| ParseError::FormErr)?;
        if record.rtype == rtype::OPT {
            // RFC 6891 §6.1.1: more than one OPT, or an OPT not owned by the root, is FORMERR.
            if edns.is_some() || !record.owner_is_root {
                return Err(ParseError::FormErr);
            }
            let mut client_subnet = None;
            let mut options = &packet[record.rdata..record.end];
            while !options.is_empty() {
                let head = options.get(..4).ok_or(ParseError::FormErr)?;
                let code = u16::from_be_bytes([head[0], head[1]]);
                let len = u16::from_be_bytes([head[2], head[3]]) as usize;
                let data = options.get(4..4 + len).ok_or(ParseError::FormErr)?;
                if code == OPTION_CLIENT_SUBNET {
                    // RFC 7871 §7.1.2 allows one ECS option per query.
                    if client_subnet.is_some() {
                        return Err(ParseError::FormErr);
                    }
                    client_subnet = Some(ClientSubnet::parse(data)?);
                }
                options = &options[4 + len..];
            }
            // RFC 6891 §6.1.3: CLASS is the UDP payload size; TTL holds the
            // extended RCODE, the version and the DO bit.
            let [_, version, flags, _] = record.ttl.to_be_bytes();
            edns = Some(Edns {
                udp_size: record.class,
                version,
                dnssec_ok: flags & 0x80 != 0,
                client_subnet,
            });
        }
    }
    Ok(Query {
        packet,
        qname_len,
        lower,
        qtype,
        qclass,
        edns,
    })
}
