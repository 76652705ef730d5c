//! The Corefile directives signpost implements: one module each, one line
//! each in [`REGISTRY`].
//!
//! Control plane (configuration loading). A plugin module reads its
//! directive with the shared toolkit (`signpost_corefile::toolkit`: errors
//! with file:line, Go durations, zones, addresses) into a value that
//! implements [`Plugin`]; `apply` then adds it to the listener its server
//! block joins. Order inside a block does not matter: like CoreDNS, the
//! answer chain has a fixed order (authoritative data, then geographic
//! names, then cache, then forward).
//!
//! Adding a plugin: write `plugins/<name>.rs` with a `parse` function and a
//! type implementing [`Plugin`], then add one line to [`REGISTRY`]
//! (CONTRIBUTING.md walks through `loadbalance` as the example).

use crate::config::{ListenerConfig, ProcessConfig};
use signpost_corefile::{Directive, Errors};
use signpost_proto::Name;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

mod bind;
mod cache;
mod errors;
mod file;
mod forward;
mod geo;
mod health;
mod healthcheck;
mod hosts;
mod kubernetes;
mod loadbalance;
mod log;
mod reload;

#[cfg(test)]
pub(crate) use cache::parse_cache;
#[cfg(test)]
pub(crate) use forward::parse_forward;

/// Reads one directive of a server block; `None` after recording why it is wrong.
pub(crate) type Parse = fn(&Directive, &Block<'_>, &mut Errors) -> Option<Box<dyn Plugin>>;

/// Every directive signpost implements, by name.
pub(crate) const REGISTRY: &[(&str, Parse)] = &[
    ("bind", bind::parse),
    ("cache", cache::parse),
    ("errors", errors::parse),
    ("file", file::parse),
    ("forward", forward::parse),
    ("geo", geo::parse),
    ("health", health::parse_health),
    ("healthcheck", healthcheck::parse),
    ("hosts", hosts::parse),
    ("kubernetes", kubernetes::parse),
    ("loadbalance", loadbalance::parse),
    ("log", log::parse),
    ("prometheus", health::parse_prometheus),
    ("ready", health::parse_ready),
    ("reload", reload::parse),
];

/// CoreDNS plugins signpost does not implement yet: named as such, not "unknown".
const NOT_YET: &[&str] = &[
    "loop",
    "rewrite",
    "template",
    "etcd",
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

/// The server block a directive is in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block<'a> {
    /// The block's zones (every key), which plugins default to.
    pub(crate) zones: &'a [Name],
    /// The Corefile's directory: relative paths are taken from here.
    pub(crate) base: &'a Path,
}

/// What a plugin may change when it joins a listener.
pub(crate) struct Setup<'a> {
    /// The listener the block's keys on one address share.
    pub(crate) listener: &'a mut ListenerConfig,
    /// Process-wide settings.
    pub(crate) process: &'a mut ProcessConfig,
    /// Where problems go (blocks that contradict each other, say).
    pub(crate) errors: &'a mut Errors,
}

/// A parsed directive.
pub(crate) trait Plugin: fmt::Debug {
    /// Adds this directive to `setup`'s listener; called once for each
    /// listener its server block joins.
    fn apply(&self, setup: &mut Setup<'_>);

    /// Addresses this directive binds the block's listeners to (`bind`).
    fn bind_addresses(&self) -> &[IpAddr] {
        &[]
    }
}

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

/// A plugin whose only effect is a flag or a setting: `apply` runs the closure.
pub(crate) struct Apply<F>(pub(crate) &'static str, pub(crate) F);

impl<F: Fn(&mut Setup<'_>)> Plugin for Apply<F> {
    fn apply(&self, setup: &mut Setup<'_>) {
        (self.1)(setup);
    }
}

impl<F> fmt::Debug for Apply<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Apply").field(&self.0).finish()
    }
}
