//! `etcd [ZONES...] { ... }`: CoreDNS's etcd plugin, SkyDNS records kept in
//! etcd v3 (the layout external-dns's `coredns` provider writes).
//!
//! ```text
//! etcd skydns.local 10.0.0.0/24 {
//!     path /skydns                       # key prefix, default /skydns
//!     endpoint http://127.0.0.1:2379...  # default http://localhost:2379
//!     credentials USER PASSWORD
//!     tls [CERT [KEY [CACERT]]]          # 0: system roots, 1: CA, 2: cert+key, 3: all
//!     min-lease-ttl 30                   # seconds or a Go duration, default 30s
//!     max-lease-ttl 24h                  # default 86400s
//!     fallthrough [ZONES...]
//! }
//! ```
//!
//! Zones default to the server block's; a CIDR (`10.0.0.0/24`) stands for its
//! reverse zones. `stubzones`, `debug` and `upstream` are accepted and
//! ignored, as CoreDNS does. Errors carry the file and line of the option.

use super::setup::{Block, Plugin, Setup};
use crate::config::SourcePlan;
use signpost_corefile::toolkit::parse_cidr;
use signpost_corefile::{Directive, Errors, Location};
use signpost_proto::Name;
use signpost_zone::skydns::{DEFAULT_MAX_LEASE_TTL, DEFAULT_MIN_LEASE_TTL, SkyOptions};
use signpost_zone::{EtcdSpec, EtcdTls, Recipe, Secret, SourceSpec};
use std::net::IpAddr;

#[derive(Debug)]
struct Etcd(SourcePlan);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let mut zones = Vec::new();
    for arg in &directive.args {
        match reverse_zones(arg) {
            Some(reverse) => zones.extend(reverse),
            None => zones.extend(errors.name(&directive.location, arg)),
        }
    }
    if zones.is_empty() {
        zones = block.zones.to_vec();
    }
    let mut options = SkyOptions {
        zones,
        fallthrough: Vec::new(),
        min_lease_ttl: DEFAULT_MIN_LEASE_TTL,
        max_lease_ttl: DEFAULT_MAX_LEASE_TTL,
    };
    let mut spec = EtcdSpec {
        endpoints: vec!["http://localhost:2379".to_owned()],
        prefix: "/skydns/".to_owned(),
        credentials: None,
        tls: None,
    };
    for option in &directive.block {
        if connection_option(option, &mut spec, block, errors) {
            continue;
        }
        let args = option.args.as_slice();
        let location = &option.location;
        match option.name.as_str() {
            "fallthrough" => options.fallthrough = errors.fallthrough(option, &options.zones),
            "min-lease-ttl" => {
                if let Some(ttl) = lease_ttl(option.name.as_str(), args, location, errors) {
                    options.min_lease_ttl = ttl;
                }
            }
            "max-lease-ttl" => {
                if let Some(ttl) = lease_ttl(option.name.as_str(), args, location, errors) {
                    options.max_lease_ttl = ttl;
                }
            }
            // Accepted and ignored by CoreDNS too.
            "stubzones" | "debug" | "upstream" => {}
            other => errors.push(location, format!("unknown property '{other}'")),
        }
    }
    if options.min_lease_ttl > options.max_lease_ttl {
        errors.push(
            &directive.location,
            format!(
                "min-lease-ttl ({}s) is larger than max-lease-ttl ({}s)",
                options.min_lease_ttl, options.max_lease_ttl
            ),
        );
    }
    Some(Box::new(Etcd(SourcePlan {
        spec: SourceSpec::Etcd(spec),
        recipe: Recipe::Etcd(options),
        location: directive.location.clone(),
    })))
}

/// Reads one connection option of an etcd client (`path`, `endpoint`,
/// `credentials`, `tls`) into `spec`; false for any other option. Shared
/// with `healthcheck { verdicts etcd { ... } }`.
pub(super) fn connection_option(
    option: &Directive,
    spec: &mut EtcdSpec,
    block: &Block<'_>,
    errors: &mut Errors,
) -> bool {
    let args = option.args.as_slice();
    let location = &option.location;
    match option.name.as_str() {
        "path" => match args {
            [path] => spec.prefix = key_prefix(path),
            _ => errors.push(location, "`path` expects one key prefix"),
        },
        "endpoint" => match args {
            [] => errors.push(location, "`endpoint` expects at least one URL"),
            urls => {
                for url in urls {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        errors.push(
                            location,
                            format!("endpoint {url:?} must start with http:// or https://"),
                        );
                    }
                }
                spec.endpoints = urls.to_vec();
            }
        },
        "credentials" => match args {
            [] => errors.push(location, "`credentials` expects a user name and a password"),
            [user, password] => {
                spec.credentials = Some((user.clone(), Secret(password.clone())));
            }
            // The password may be among the arguments: never repeated in the message.
            _ => errors.push(
                location,
                "credentials requires 2 arguments, username and password",
            ),
        },
        "tls" => {
            let path = |p: &String| Some(block.base.join(p));
            spec.tls = match args {
                [] => Some(EtcdTls::default()),
                [ca] => Some(EtcdTls {
                    ca: path(ca),
                    ..EtcdTls::default()
                }),
                [cert, key] => Some(EtcdTls {
                    cert: path(cert),
                    key: path(key),
                    ca: None,
                }),
                [cert, key, ca] => Some(EtcdTls {
                    cert: path(cert),
                    key: path(key),
                    ca: path(ca),
                }),
                more => {
                    errors.push(
                        location,
                        format!(
                            "maximum of three arguments allowed for TLS config, found {}",
                            more.len()
                        ),
                    );
                    None
                }
            };
        }
        _ => return false,
    }
    true
}

impl Plugin for Etcd {
    fn apply(&self, setup: &mut Setup<'_>) {
        setup.listener.sources.push(self.0.clone());
    }
}

/// `/skydns`, `skydns` and `/skydns/` all mean keys starting `/skydns/`
/// (CoreDNS joins `"/" + path + "/"` with the labels and cleans the result).
fn key_prefix(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}/", segments.join("/"))
    }
}

/// CoreDNS's lease bounds: whole seconds, or a Go duration (fractions of a
/// second dropped), non-negative, at most 2^32 - 1 seconds.
fn lease_ttl(name: &str, args: &[String], location: &Location, errors: &mut Errors) -> Option<u32> {
    let [value] = args else {
        errors.push(location, format!("`{name}` expects one value"));
        return None;
    };
    let seconds: i128 = match value.parse::<i64>() {
        Ok(seconds) => i128::from(seconds),
        Err(_) => {
            let (negative, text) = match value.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, value.as_str()),
            };
            match signpost_corefile::toolkit::parse_duration(text) {
                Ok(duration) if negative => -i128::from(duration.as_secs()),
                Ok(duration) => i128::from(duration.as_secs()),
                Err(_) => {
                    errors.push(
                        location,
                        format!("invalid {name} value: invalid TTL format, use format like '30', '30s', '5m', '1h', or '2h30m'"),
                    );
                    return None;
                }
            }
        }
    };
    if seconds < 0 {
        errors.push(
            location,
            format!("invalid {name} value: TTL must be non-negative"),
        );
        return None;
    }
    match u32::try_from(seconds) {
        Ok(ttl) => Some(ttl),
        Err(_) => {
            errors.push(
                location,
                format!("invalid {name} value: TTL too large, maximum is 4294967295 seconds"),
            );
            None
        }
    }
}

/// The reverse zones a CIDR stands for (CoreDNS normalizes `10.0.0.0/24` to
/// `0.0.10.in-addr.arpa.`): a prefix that is not on a label boundary (8 bits
/// for IPv4, 4 for IPv6) becomes every zone of the next boundary inside it.
fn reverse_zones(text: &str) -> Option<Vec<Name>> {
    if !text.contains('/') {
        return None;
    }
    let (address, prefix) = parse_cidr(text)?;
    let (step, width, octets): (u8, u8, Vec<u8>) = match address {
        IpAddr::V4(v4) => (8, 32, v4.octets().to_vec()),
        IpAddr::V6(v6) => (4, 128, v6.octets().to_vec()),
    };
    let boundary = prefix.div_ceil(step) * step;
    let boundary = boundary.min(width);
    let extra_bits = boundary - prefix;
    let digits = |value: &[u8]| -> Vec<u8> {
        // The address as its labels' digits, most significant first.
        match address {
            IpAddr::V4(_) => value.to_vec(),
            IpAddr::V6(_) => value.iter().flat_map(|b| [b >> 4, b & 0xf]).collect(),
        }
    };
    let base = u128::from_be_bytes({
        let mut full = [0u8; 16];
        full[16 - octets.len()..].copy_from_slice(&octets);
        full
    });
    let mut zones = Vec::new();
    for variant in 0u128..(1u128 << extra_bits) {
        let shift = u32::from(width - boundary);
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (u32::from(width) - u32::from(prefix))
        };
        let value = ((base & mask) | (variant << shift))
            & if width == 32 {
                u128::from(u32::MAX)
            } else {
                u128::MAX
            };
        let bytes = value.to_be_bytes();
        let labels = digits(&bytes[16 - octets.len()..]);
        let kept = usize::from(boundary / step);
        let mut name: Vec<String> = labels[..kept]
            .iter()
            .rev()
            .map(|d| match address {
                IpAddr::V4(_) => d.to_string(),
                IpAddr::V6(_) => format!("{d:x}"),
            })
            .collect();
        name.push(if address.is_ipv4() {
            "in-addr.arpa".to_owned()
        } else {
            "ip6.arpa".to_owned()
        });
        zones.push(Name::from_ascii(&name.join(".")).ok()?);
    }
    Some(zones)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CoreDNS zone normalization: CIDRs become their reverse zones.
    #[test]
    fn cidr_zones() {
        let names = |text| {
            reverse_zones(text)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("10.0.0.0/24"), ["0.0.10.in-addr.arpa."]);
        assert_eq!(names("10.0.0.0/8"), ["10.in-addr.arpa."]);
        assert_eq!(
            names("10.0.0.0/23"),
            ["0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."]
        );
        assert_eq!(names("10.0.0.0/17").len(), 128);
        assert_eq!(names("fd00::/16"), ["0.0.d.f.ip6.arpa."]);
        assert_eq!(reverse_zones("skydns.local"), None);
    }

    /// `path` forms all name the same key prefix.
    #[test]
    fn path_forms() {
        assert_eq!(key_prefix("/skydns"), "/skydns/");
        assert_eq!(key_prefix("skydns"), "/skydns/");
        assert_eq!(key_prefix("/a/b/"), "/a/b/");
        assert_eq!(key_prefix("/"), "/");
    }
}
