//! What every plugin needs to read its options: error collection, zone
//! names, durations, addresses.
//!
//! Control plane (configuration loading). Plugins report every problem into
//! one [`Errors`] with the location of the offending line and keep going, so
//! an operator sees every mistake in one run. The helpers here are the only
//! parsers of their kind: every plugin reads a duration, a `HOST:PORT` or a
//! CIDR the same way.

use crate::{Directive, Error, Errors, Location};
use signpost_proto::Name;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

pub use crate::duration::{DurationError, parse_duration};

// === impl Errors ===

impl Errors {
    /// Records a problem at `location`.
    pub fn push(&mut self, location: &Location, message: impl Into<String>) {
        self.0.push(Error {
            location: location.clone(),
            message: message.into(),
        });
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(value)` when nothing was recorded, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// A zone or host name, or `None` after recording why it is not one.
    pub fn name(&mut self, location: &Location, text: &str) -> Option<Name> {
        match Name::from_ascii(text) {
            Ok(name) => Some(name),
            Err(error) => {
                self.push(location, format!("invalid zone {text:?}: {error}"));
                None
            }
        }
    }

    /// A plugin's zone arguments, or the server block's zones when it gives
    /// none (CoreDNS's rule for every plugin that takes `[ZONES...]`).
    pub fn plugin_zones(
        &mut self,
        location: &Location,
        args: &[String],
        block_zones: &[Name],
    ) -> Vec<Name> {
        let zones: Vec<Name> = args.iter().filter_map(|z| self.name(location, z)).collect();
        if zones.is_empty() {
            block_zones.to_vec()
        } else {
            zones
        }
    }

    /// The zones of a `fallthrough [ZONES...]` option: all of `zones` when it
    /// names none.
    pub fn fallthrough(&mut self, option: &Directive, zones: &[Name]) -> Vec<Name> {
        if option.args.is_empty() {
            zones.to_vec()
        } else {
            option
                .args
                .iter()
                .filter_map(|z| self.name(&option.location, z))
                .collect()
        }
    }

    /// A duration option's value (`NAME DURATION`), or `None` after recording
    /// the problem.
    pub fn duration(&mut self, option: &Directive) -> Option<Duration> {
        match option.args.as_slice() {
            [value] => match parse_duration(value) {
                Ok(duration) => Some(duration),
                Err(error) => {
                    self.push(
                        &option.location,
                        format!("`{}`: {error}, found {value:?}", option.name),
                    );
                    None
                }
            },
            _ => {
                self.push(
                    &option.location,
                    format!("`{}` expects one duration", option.name),
                );
                None
            }
        }
    }

    /// Records a problem when `directive` has a block it must not have.
    pub fn no_block(&mut self, directive: &Directive) {
        if let Some(inner) = directive.block.first() {
            self.push(
                &inner.location,
                format!("`{}` takes no block", directive.name),
            );
        }
    }

    /// Records a problem when `directive` has arguments it must not have.
    pub fn no_args(&mut self, directive: &Directive) {
        if !directive.args.is_empty() {
            self.push(
                &directive.location,
                format!("`{}` takes no arguments", directive.name),
            );
        }
    }
}

/// Parses `:PORT`, `HOST:PORT` or `[V6]:PORT` (`localhost` is 127.0.0.1; an
/// empty host is every IPv4 address), as CoreDNS's `health`, `ready` and
/// `prometheus` read their addresses.
pub fn parse_host_port(text: &str) -> Option<SocketAddr> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address);
    }
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "[::]" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        other => other.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses `ADDRESS/PREFIX` (a bare address is a host route).
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = if prefix.is_empty() {
        max
    } else {
        prefix.parse().ok()?
    };
    (prefix <= max).then_some((address, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admin addresses accept CoreDNS's forms.
    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port(":9153"),
            Some("0.0.0.0:9153".parse().unwrap())
        );
        assert_eq!(
            parse_host_port("localhost:8080"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_host_port("[::1]:8181"),
            Some("[::1]:8181".parse().unwrap())
        );
        assert_eq!(parse_host_port("nothing"), None);
    }

    /// A bare address is a host route; prefixes are bounded by the family.
    #[test]
    fn cidr_forms() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(parse_cidr("::1"), Some(("::1".parse().unwrap(), 128)));
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(parse_cidr("nope/8"), None);
    }
}
