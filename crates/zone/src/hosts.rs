//! Hosts files (`/etc/hosts` syntax) as records: CoreDNS's `hosts` plugin.
//!
//! Control plane. [`parse_hosts`] reads the file's lines; [`add_hosts`] puts
//! an A or AAAA record per name and a PTR per address (unless `no_reverse`)
//! into a snapshot, each only where one of the plugin's zones holds it.

use crate::builder::SnapshotBuilder;
use crate::cluster::reverse_name;
use signpost_proto::{Name, rdata, rtype};
use std::net::IpAddr;

/// One line of a hosts file, or one inline entry: an address and its names.
pub type HostsEntry = (IpAddr, Vec<Name>);

/// How a `hosts` plugin's entries become records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsOptions {
    /// Zones it answers for.
    pub zones: Vec<Name>,
    /// TTL of its records (CoreDNS default 3600).
    pub ttl: u32,
    /// No PTR records.
    pub no_reverse: bool,
    /// Zones that fall through.
    pub fallthrough: Vec<Name>,
    /// Where the directive is, for problems (`file:line`).
    pub location: String,
}

/// Parses /etc/hosts lines: an address, then names; `#` starts a comment.
/// Lines that do not parse are skipped, as every resolver does.
pub fn parse_hosts(text: &str) -> Vec<HostsEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let address: IpAddr = fields.next()?.parse().ok()?;
            let names: Vec<Name> = fields.filter_map(|n| Name::from_ascii(n).ok()).collect();
            (!names.is_empty()).then_some((address, names))
        })
        .collect()
}

/// Adds a `hosts` plugin's zones and records: A/AAAA per name, PTR per
/// address unless `no_reverse` (each only where one of its zones holds it).
pub fn add_hosts(
    builder: &mut SnapshotBuilder,
    entries: &[HostsEntry],
    options: &HostsOptions,
    problems: &mut Vec<String>,
) {
    for zone in &options.zones {
        builder.add_file_zone(zone.clone(), options.fallthrough.clone());
    }
    let in_zones = |name: &Name| options.zones.iter().any(|z| name.is_within(z));
    for (address, names) in entries {
        for name in names.iter().filter(|n| in_zones(n)) {
            let (rr_type, data) = match address {
                IpAddr::V4(v4) => (rtype::A, rdata::a(*v4)),
                IpAddr::V6(v6) => (rtype::AAAA, rdata::aaaa(*v6)),
            };
            if let Err(error) = builder.add_record(name.clone(), rr_type, options.ttl, data) {
                problems.push(format!("{}: {error}", options.location));
            }
        }
        if options.no_reverse {
            continue;
        }
        let Some(first) = names.first() else { continue };
        if let Ok(reverse) = Name::from_ascii(&reverse_name(*address))
            && in_zones(&reverse)
            && let Err(error) =
                builder.add_record(reverse, rtype::PTR, options.ttl, rdata::name(first))
        {
            problems.push(format!("{}: {error}", options.location));
        }
    }
}
