//! The `log` plugin: one line per query in CoreDNS's common log format.
//!
//! Data plane, opt-in. The line is formatted into a buffer the worker owns and
//! reuses, then written to standard output in one call.

use crate::exchange::Exchange;
use crate::metrics::Transport;
use signpost_proto::{Name, Query, ResponseMeta};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

/// A worker's reusable log buffer.
#[derive(Debug, Default)]
pub struct QueryLog {
    line: String,
}

// === impl QueryLog ===

impl QueryLog {
    /// Formats and writes one line:
    /// `[INFO] {remote}:{port} - {id} "{type} {class} {name} {proto} {size} {do} {bufsize}" {rcode} {flags} {rsize} {duration}`.
    pub fn write(
        &mut self,
        query: &Query<'_>,
        exchange: Exchange<'_>,
        meta: ResponseMeta,
        took: Duration,
    ) {
        self.line.clear();
        let name = Name::from_wire(query.qname_lower())
            .map(|n| n.to_string())
            .unwrap_or_default();
        let proto = match exchange.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        let (dnssec_ok, bufsize) = query
            .edns
            .map_or((false, 512), |e| (e.dnssec_ok, e.udp_size));
        let _ = writeln!(
            self.line,
            "[INFO] {} - {} \"{} {} {name} {proto} {} {dnssec_ok} {bufsize}\" {} {} {} {:.9}s",
            exchange.client,
            query.id(),
            type_name(query.qtype),
            if query.qclass == 1 {
                "IN".to_owned()
            } else {
                format!("CLASS{}", query.qclass)
            },
            query.question().len() + 12,
            rcode_name(meta.rcode),
            if meta.truncated { "qr,aa,tc" } else { "qr,aa" },
            meta.len,
            took.as_secs_f64(),
        );
        let _ = std::io::stdout().lock().write_all(self.line.as_bytes());
    }
}

fn type_name(qtype: u16) -> String {
    let known = match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        255 => "ANY",
        _ => return format!("TYPE{qtype}"),
    };
    known.to_owned()
}

fn rcode_name(code: u16) -> &'static str {
    match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        16 => "BADVERS",
        _ => "RCODE",
    }
}
