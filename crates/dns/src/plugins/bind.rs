//! `bind ADDRESS...`: the addresses a server block's listeners bind
//! (default: every IPv4 address). `localhost` is 127.0.0.1.

use super::setup::{Block, Plugin, Setup};
use signpost_corefile::{Directive, Errors};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug)]
struct Bind(Vec<IpAddr>);

pub(super) fn parse(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    errors.no_block(directive);
    if directive.args.is_empty() {
        errors.push(&directive.location, "`bind` expects at least one address");
    }
    let addresses = directive
        .args
        .iter()
        .filter_map(|arg| match arg.as_str() {
            "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            text => match text.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    errors.push(
                        &directive.location,
                        format!("`bind`: {text:?} is not an IP address"),
                    );
                    None
                }
            },
        })
        .collect();
    Some(Box::new(Bind(addresses)))
}

impl Plugin for Bind {
    fn apply(&self, _: &mut Setup<'_>) {}

    fn bind_addresses(&self) -> &[IpAddr] {
        &self.0
    }
}
