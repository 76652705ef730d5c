//! The Corefile directives signpost implements: one module each, one line
//! each in [`REGISTRY`].
//!
//! Control plane (configuration loading). A plugin module reads its
//! directive with the shared toolkit (`signpost_corefile::toolkit`: errors
//! with file:line, Go durations, zones, addresses) into a value that
//! implements `Plugin` (`setup.rs`); `apply` then adds it to the listener its server
//! block joins. Order inside a block does not matter: like CoreDNS, the
//! answer chain has a fixed order (authoritative data, then geographic
//! names, then cache, then forward).
//!
//! Adding a plugin: write `plugins/<name>.rs` with a `parse` function and a
//! type implementing `Plugin`, then add one line to [`REGISTRY`]
//! (CONTRIBUTING.md walks through `loadbalance` as the example).

use crate::config::{Config, ConfigErrors, DEFAULT_PORT, ListenerConfig};
use setup::{Block, Plugin, Setup};
use signpost_corefile::{Corefile, Directive, Errors};
use signpost_proto::Name;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

mod admin;
mod bind;
mod cache;
mod errors;
mod etcd;
mod file;
mod forward;
mod geo;
mod health;
mod healthcheck;
mod hosts;
mod kubernetes;
mod loadbalance;
mod log;
mod loopdetect;
mod reload;
mod setup;

#[cfg(test)]
pub(crate) use cache::parse_cache;
#[cfg(test)]
pub(crate) use forward::parse_forward;

/// Reads one directive of a server block; `None` after recording why it is wrong.
pub(crate) type Parse = fn(&Directive, &Block<'_>, &mut Errors) -> Option<Box<dyn Plugin>>;

/// Every directive signpost implements, by name.
pub(crate) const REGISTRY: &[(&str, Parse)] = &[
    ("admin", admin::parse),
    ("bind", bind::parse),
    ("cache", cache::parse),
    ("errors", errors::parse),
    ("etcd", etcd::parse),
    ("file", file::parse),
    ("forward", forward::parse),
    ("geo", geo::parse),
    ("health", health::parse_health),
    ("healthcheck", healthcheck::parse),
    ("hosts", hosts::parse),
    ("kubernetes", kubernetes::parse),
    ("loadbalance", loadbalance::parse),
    ("log", log::parse),
    ("loop", loopdetect::parse),
    ("prometheus", health::parse_prometheus),
    ("ready", health::parse_ready),
    ("reload", reload::parse),
];

/// CoreDNS plugins signpost does not implement yet: named as such, not "unknown".
const NOT_YET: &[&str] = &[
    "rewrite",
    "template",
    "auto",
    "secondary",
    "dnssec",
    "transfer",
    "acl",
    "any",
    "autopath",
    "bufsize",
    "debug",
    "dns64",
    "erratic",
    "header",
    "k8s_external",
    "local",
    "metadata",
    "minimal",
    "nsid",
    "pprof",
    "root",
    "route53",
    "azure",
    "clouddns",
    "sign",
    "tls",
    "trace",
    "view",
    "whoami",
    "chaos",
    "cancel",
    "geoip",
    "grpc",
];

/// Hands `directive` to its plugin.
pub(crate) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let name = directive.name.as_str();
    if let Some((_, parse)) = REGISTRY.iter().find(|(n, _)| *n == name) {
        return parse(directive, block, errors);
    }
    let message = if NOT_YET.contains(&name) {
        format!("directive `{name}` is a CoreDNS plugin signpost does not implement yet")
    } else {
        format!("unknown directive `{name}`")
    };
    errors.push(&directive.location, message);
    None
}

// === impl Config ===

impl Config {
    /// Validates a parsed Corefile.
    pub fn from_corefile(corefile: &Corefile) -> Result<Self, ConfigErrors> {
        let mut errors = Errors::default();
        let mut config = Self::default();
        for block in &corefile.blocks {
            let zones: Vec<Name> = block
                .keys
                .iter()
                .filter_map(|k| errors.name(&k.location, &k.zone))
                .collect();
            let base = block
                .location
                .file
                .parent()
                .unwrap_or_else(|| Path::new(""));
            let context = Block {
                zones: &zones,
                base,
            };
            let parsed: Vec<Box<dyn Plugin>> = block
                .directives
                .iter()
                .filter_map(|directive| parse(directive, &context, &mut errors))
                .collect();
            let mut binds: Vec<IpAddr> = parsed
                .iter()
                .flat_map(|p| p.bind_addresses().iter().copied())
                .collect();
            if binds.is_empty() {
                binds = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
            }
            // The block's keys grouped by the listener they join, in key order.
            let mut groups: Vec<(Vec<SocketAddr>, Vec<Name>)> = Vec::new();
            for key in &block.keys {
                let port = key.port.unwrap_or(DEFAULT_PORT);
                let addresses: Vec<SocketAddr> =
                    binds.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
                let zone = errors.name(&key.location, &key.zone);
                match groups.iter_mut().find(|(a, _)| *a == addresses) {
                    Some((_, group_zones)) => group_zones.extend(zone),
                    None => groups.push((addresses, zone.into_iter().collect())),
                }
            }
            for (addresses, group_zones) in groups {
                let index = match config
                    .listeners
                    .iter()
                    .position(|l| l.addresses == addresses)
                {
                    Some(index) => index,
                    None => {
                        config.listeners.push(ListenerConfig {
                            addresses,
                            ..ListenerConfig::default()
                        });
                        config.listeners.len() - 1
                    }
                };
                let listener = &mut config.listeners[index];
                listener.zones.extend(group_zones);
                let mut setup = Setup {
                    listener,
                    process: &mut config.process,
                    errors: &mut errors,
                };
                for plugin in &parsed {
                    plugin.apply(&mut setup);
                }
            }
        }
        errors.into_result(config)
    }
}
