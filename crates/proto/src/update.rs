//! DNS UPDATE messages (RFC 2136), as record sync's rfc2136 provider sends
//! them.
//!
//! Control plane: one `Vec` per message. The zone section names the zone
//! (SOA, IN); there are no prerequisites; the update section adds records
//! (class IN, RFC 2136 §2.5.1) and deletes single records (class NONE, TTL
//! 0, exact RDATA, §2.5.4). Owner names are written uncompressed.
//!
//! ```text
//! | header: ID, opcode UPDATE, ZOCOUNT 1, PRCOUNT 0, UPCOUNT n, ADCOUNT 0 |
//! | zone: name SOA IN | update: owner type class ttl rdlength rdata ...   |
//! ```

use crate::name::Name;
use crate::{CLASS_IN, rtype};

/// RFC 2136 §2.2: the UPDATE opcode.
pub const OPCODE_UPDATE: u8 = 5;
/// RFC 2136 §2.5.4: class NONE marks "delete this RR".
pub const CLASS_NONE: u16 = 254;

/// Builds one UPDATE message.
#[derive(Debug, Clone)]
pub struct UpdateBuilder {
    message: Vec<u8>,
    count: u16,
}

// === impl UpdateBuilder ===

impl UpdateBuilder {
    /// An UPDATE of `zone` with message ID `id`.
    pub fn new(id: u16, zone: &Name) -> Self {
        let mut message = Vec::with_capacity(512);
        message.extend_from_slice(&id.to_be_bytes());
        // RFC 2136 §2.2: QR 0, opcode UPDATE, the other bits zero.
        message.push(OPCODE_UPDATE << 3);
        message.push(0);
        message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        // RFC 2136 §2.3: the zone section holds the zone's SOA question.
        message.extend_from_slice(zone.as_wire());
        message.extend_from_slice(&rtype::SOA.to_be_bytes());
        message.extend_from_slice(&CLASS_IN.to_be_bytes());
        Self { message, count: 0 }
    }

    fn record(&mut self, owner: &Name, record_type: u16, class: u16, ttl: u32, rdata: &[u8]) {
        self.message.extend_from_slice(owner.as_wire());
        self.message.extend_from_slice(&record_type.to_be_bytes());
        self.message.extend_from_slice(&class.to_be_bytes());
        self.message.extend_from_slice(&ttl.to_be_bytes());
        self.message
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.message.extend_from_slice(rdata);
        self.count += 1;
    }

    /// RFC 2136 §2.5.1: add to an RRset.
    pub fn add(&mut self, owner: &Name, record_type: u16, ttl: u32, rdata: &[u8]) {
        self.record(owner, record_type, CLASS_IN, ttl, rdata);
    }

    /// RFC 2136 §2.5.4: delete an RR from an RRset (class NONE, TTL 0).
    pub fn delete(&mut self, owner: &Name, record_type: u16, rdata: &[u8]) {
        self.record(owner, record_type, CLASS_NONE, 0, rdata);
    }

    /// Number of records in the update section.
    pub fn len(&self) -> u16 {
        self.count
    }

    /// Whether the update section is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished message (UPCOUNT filled in).
    pub fn finish(mut self) -> Vec<u8> {
        self.message[8..10].copy_from_slice(&self.count.to_be_bytes());
        self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::Records;

    /// RFC 2136 §2.2–2.5: header counts, zone section, add and delete records.
    #[test]
    fn layout() {
        let zone = Name::from_ascii("example.com").unwrap();
        let owner = Name::from_ascii("a.example.com").unwrap();
        let mut update = UpdateBuilder::new(7, &zone);
        update.add(&owner, rtype::A, 300, &[192, 0, 2, 1]);
        update.delete(&owner, rtype::A, &[192, 0, 2, 2]);
        assert_eq!(update.len(), 2);
        let message = update.finish();
        assert_eq!(&message[..12], &[0, 7, 0x28, 0, 0, 1, 0, 0, 0, 2, 0, 0]);
        let records: Vec<_> = Records::after_question(&message)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!((records[0].class, records[0].ttl), (CLASS_IN, 300));
        assert_eq!((records[1].class, records[1].ttl), (CLASS_NONE, 0));
        assert_eq!(&message[records[1].rdata..records[1].end], &[192, 0, 2, 2]);
    }
}
