//! `health [ADDRESS] { lameduck DURATION }` (after SIGTERM, keep answering
//! DURATION with `/ready` failing, then stop), `ready [ADDRESS]` and
//! `prometheus [ADDRESS]`: where the admin endpoints listen.
//!
//! Addresses are `:PORT`, `HOST:PORT` or `[V6]:PORT`. Defaults as CoreDNS's:
//! `health` on :8080, `ready` on :8181 (every address), `prometheus` on
//! localhost:9153. Each address serves only its directive's path (several
//! directives may share an address); the JSON APIs are the `admin` directive's.

use super::setup::{Block, Plugin, Setup};
use signpost_corefile::toolkit::parse_host_port;
use signpost_corefile::{Directive, Errors};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Health,
    Ready,
    Prometheus,
}

#[derive(Debug)]
struct Admin(Endpoint, SocketAddr, Option<std::time::Duration>);

pub(super) fn parse_health(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    parse(directive, errors, Endpoint::Health, 8080)
}

pub(super) fn parse_ready(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    parse(directive, errors, Endpoint::Ready, 8181)
}

pub(super) fn parse_prometheus(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    parse(directive, errors, Endpoint::Prometheus, 9153)
}

fn parse(
    directive: &Directive,
    errors: &mut Errors,
    endpoint: Endpoint,
    default_port: u16,
) -> Option<Box<dyn Plugin>> {
    // `health { lameduck DURATION }`: keep answering that long after SIGTERM.
    let mut lameduck = None;
    for inner in &directive.block {
        if directive.name == "health" && inner.name == "lameduck" {
            lameduck = errors.duration(inner);
        } else {
            errors.push(
                &inner.location,
                format!("`{}` does not take `{}`", directive.name, inner.name),
            );
        }
    }
    if directive.args.len() > 1 {
        errors.push(
            &directive.location,
            format!("`{}` expects at most one address", directive.name),
        );
    }
    let address = match directive.arg(0) {
        None => {
            let host = if matches!(endpoint, Endpoint::Prometheus) {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            SocketAddr::new(host, default_port)
        }
        Some(text) => match parse_host_port(text) {
            Some(address) => address,
            None => {
                errors.push(
                    &directive.location,
                    format!("`{}`: expected [HOST]:PORT, found {text:?}", directive.name),
                );
                return None;
            }
        },
    };
    Some(Box::new(Admin(endpoint, address, lameduck)))
}

impl Plugin for Admin {
    fn apply(&self, setup: &mut Setup<'_>) {
        let addresses = match self.0 {
            Endpoint::Health => &mut setup.process.health,
            Endpoint::Ready => &mut setup.process.ready,
            Endpoint::Prometheus => &mut setup.process.prometheus,
        };
        if !addresses.contains(&self.1) {
            addresses.push(self.1);
        }
        if let Some(lameduck) = self.2 {
            let longest = setup.process.lameduck.map_or(lameduck, |d| d.max(lameduck));
            setup.process.lameduck = Some(longest);
        }
    }
}
