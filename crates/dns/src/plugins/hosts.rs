//! `hosts [FILE [ZONES...]] { ADDRESS NAMES...; ttl; no_reverse; reload; fallthrough }`:
//! CoreDNS's hosts plugin. FILE defaults to `/etc/hosts`; `ttl` to 3600;
//! `reload` (how often the file's modification time is checked) to 5s, 0
//! disables.

use super::setup::{Block, Plugin, Setup};
use crate::config::SourcePlan;
use signpost_corefile::{Directive, Errors};
use signpost_proto::Name;
use signpost_zone::hosts::HostsOptions;
use signpost_zone::{Recipe, SourceSpec};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug)]
struct Hosts(SourcePlan);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let mut args = directive.args.iter();
    let path = args
        .next()
        .map_or_else(|| PathBuf::from("/etc/hosts"), |p| block.base.join(p));
    let zones = errors.plugin_zones(&directive.location, args.as_slice(), block.zones);
    let mut options = HostsOptions {
        zones,
        ttl: 3600,
        no_reverse: false,
        fallthrough: Vec::new(),
        location: directive.location.to_string(),
    };
    let mut reload = Duration::from_secs(5);
    let mut inline = Vec::new();
    for option in &directive.block {
        if let Ok(address) = option.name.parse::<IpAddr>() {
            let names: Vec<Name> = option
                .args
                .iter()
                .filter_map(|n| errors.name(&option.location, n))
                .collect();
            if names.is_empty() {
                errors.push(
                    &option.location,
                    format!("hosts entry {address} has no names"),
                );
            }
            inline.push((address, names));
            continue;
        }
        match (option.name.as_str(), option.args.as_slice()) {
            ("ttl", [value]) => match value.parse::<u32>() {
                Ok(ttl) if ttl <= 65535 => options.ttl = ttl,
                _ => errors.push(
                    &option.location,
                    format!("`ttl` expects seconds, found {value:?}"),
                ),
            },
            ("no_reverse", []) => options.no_reverse = true,
            ("reload", _) => reload = errors.duration(option).unwrap_or(reload),
            ("fallthrough", _) => options.fallthrough = errors.fallthrough(option, &options.zones),
            (other, _) => errors.push(
                &option.location,
                format!("unknown or malformed `hosts` option `{other}`"),
            ),
        }
    }
    Some(Box::new(Hosts(SourcePlan {
        spec: SourceSpec::Hosts {
            path: Some(path),
            inline,
            reload,
        },
        recipe: Recipe::Hosts(options),
        location: directive.location.clone(),
    })))
}

impl Plugin for Hosts {
    fn apply(&self, setup: &mut Setup<'_>) {
        setup.listener.sources.push(self.0.clone());
    }
}
