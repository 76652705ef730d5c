//! `forward FROM TO... { ... }`: send names no zone holds to upstream
//! servers (CoreDNS's `forward`; options in `crate::forward::config`).
//!
//! Every problem is reported at its own file:line. `TO` is `IP`,
//! `IP:PORT`, `[IPv6]:PORT`, any of those behind `dns://`, or the path of a
//! `resolv.conf`-style file whose `nameserver` lines are read (relative paths
//! are taken from the Corefile's directory).

use super::setup::{Block, Plugin, Setup};
use crate::forward::{DEFAULT_UPSTREAM_PORT, ForwardConfig, MAX_UPSTREAMS, Policy};
use signpost_corefile::toolkit::parse_duration;
use signpost_corefile::{Directive, Errors, Location};
use signpost_proto::Name;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

#[derive(Debug)]
struct Forward(ForwardConfig);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    parse_forward(directive, block.base, errors)
        .map(|config| Box::new(Forward(config)) as Box<dyn Plugin>)
}

impl Plugin for Forward {
    fn apply(&self, setup: &mut Setup<'_>) {
        setup.listener.forward.push(self.0.clone());
    }
}

/// Validates one `forward` directive. `base_dir` resolves relative
/// `resolv.conf`-style paths (the Corefile's directory).
pub(crate) fn parse_forward(
    directive: &Directive,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<ForwardConfig> {
    let before = errors.len();
    let mut push = |location: &Location, message: String| errors.push(location, message);
    let here = &directive.location;
    let mut config = ForwardConfig::new(Name::root(), Vec::new());
    config.location = here.clone();

    match directive.args.as_slice() {
        [] | [_] => push(
            here,
            "`forward` expects FROM and at least one TO".to_owned(),
        ),
        [from, to @ ..] => {
            match Name::from_ascii(from.strip_prefix("dns://").unwrap_or(from)) {
                Ok(name) => config.from = name,
                Err(error) => push(
                    here,
                    format!("`forward`: invalid FROM zone {from:?}: {error}"),
                ),
            }
            for target in to {
                match parse_upstream(target, base_dir) {
                    Ok(addresses) => config.upstreams.extend(addresses),
                    Err(message) => push(here, format!("`forward`: {message}")),
                }
            }
            if config.upstreams.len() > MAX_UPSTREAMS {
                push(
                    here,
                    format!(
                        "`forward` allows at most {MAX_UPSTREAMS} upstreams, found {}",
                        config.upstreams.len()
                    ),
                );
            }
        }
    }

    for option in &directive.block {
        let at = &option.location;
        let args = option.args.as_slice();
        let name = option.name.as_str();
        match name {
            "except" => {
                if args.is_empty() {
                    push(at, "`except` expects at least one name".to_owned());
                }
                for text in args {
                    match Name::from_ascii(text) {
                        Ok(name) => config.except.push(name),
                        Err(error) => push(at, format!("`except`: invalid name {text:?}: {error}")),
                    }
                }
            }
            "force_tcp" | "prefer_udp" | "failfast_all_unhealthy_upstreams" => {
                if !args.is_empty() {
                    push(at, format!("`{name}` takes no arguments"));
                }
                match name {
                    "force_tcp" => config.force_tcp = true,
                    "prefer_udp" => config.prefer_udp = true,
                    _ => config.fail_fast_all_down = true,
                }
            }
            "expire" => match one_duration(args) {
                Some(duration) => config.expire = duration,
                None => push(at, expected(name, "one duration such as 10s or 1m", args)),
            },
            "max_fails" => match args {
                [value] if value.parse::<u32>().is_ok() => {
                    config.max_fails = value.parse().unwrap_or_default();
                }
                _ => push(
                    at,
                    expected(name, "one whole number (0 turns health checks off)", args),
                ),
            },
            "health_check" => match health_check(args) {
                Ok((interval, recursion, domain)) => {
                    config.health_check = interval;
                    config.health_check_recursion = recursion;
                    config.health_check_domain = domain;
                }
                Err(message) => push(at, message),
            },
            "policy" => match args {
                [value] if value == "random" => config.policy = Policy::Random,
                [value] if value == "round_robin" => config.policy = Policy::RoundRobin,
                [value] if value == "sequential" => config.policy = Policy::Sequential,
                _ => push(
                    at,
                    expected(name, "`random`, `round_robin` or `sequential`", args),
                ),
            },
            "max_concurrent" => match args {
                [value] if value.parse::<usize>().is_ok_and(|n| n > 0) => {
                    config.max_concurrent = value.parse().ok();
                }
                _ => push(at, expected(name, "one positive whole number", args)),
            },
            "tls" | "tls_servername" => push(
                at,
                format!(
                    "`forward` option `{name}` needs DNS over TLS, which signpost does not support yet"
                ),
            ),
            "next" => push(
                at,
                "`forward` option `next` is not supported yet: a failed forward answers SERVFAIL"
                    .to_owned(),
            ),
            other => push(at, format!("unknown `forward` option `{other}`")),
        }
    }
    if config.force_tcp && config.prefer_udp {
        push(
            here,
            "`forward`: `force_tcp` and `prefer_udp` cannot both be set".to_owned(),
        );
    }

    (errors.len() == before).then_some(config)
}

fn expected(option: &str, what: &str, args: &[String]) -> String {
    format!("`{option}` expects {what}, found {:?}", args.join(" "))
}

fn one_duration(args: &[String]) -> Option<Duration> {
    match args {
        [value] => parse_duration(value).ok(),
        _ => None,
    }
}

/// `health_check DURATION [no_rec] [domain FQDN]`.
fn health_check(args: &[String]) -> Result<(Duration, bool, Name), String> {
    let usage = "`health_check` expects DURATION [no_rec] [domain FQDN]";
    let Some((interval, rest)) = args.split_first() else {
        return Err(usage.to_owned());
    };
    let interval = parse_duration(interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("`health_check` expects a positive duration such as 0.5s, found {interval:?}")
        })?;
    let (mut recursion, mut domain) = (true, Name::root());
    let mut rest = rest.iter();
    while let Some(word) = rest.next() {
        match word.as_str() {
            "no_rec" => recursion = false,
            "domain" => {
                let text = rest
                    .next()
                    .ok_or_else(|| format!("{usage}: `domain` needs a name"))?;
                domain = Name::from_ascii(text)
                    .map_err(|error| format!("`health_check`: invalid domain {text:?}: {error}"))?;
            }
            other => return Err(format!("{usage}, found {other:?}")),
        }
    }
    Ok((interval, recursion, domain))
}

/// One `TO`: an address, `dns://` address, or a `resolv.conf`-style file.
fn parse_upstream(text: &str, base_dir: &Path) -> Result<Vec<SocketAddr>, String> {
    if let Some(scheme) = ["tls://", "https://", "grpc://", "quic://"]
        .iter()
        .find(|s| text.starts_with(*s))
    {
        return Err(format!(
            "upstream {text:?}: `{scheme}` is not supported yet; use plain DNS (`dns://` or no scheme)"
        ));
    }
    if let Some(address) = text.strip_prefix("dns://") {
        return parse_address(address)
            .map(|a| vec![a])
            .ok_or_else(|| format!("upstream {text:?} is not IP[:PORT]"));
    }
    if let Some(address) = parse_address(text) {
        return Ok(vec![address]);
    }
    // Anything that looks like an address but is not one is a typo, not a file name.
    let looks_like_address = text
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'));
    if looks_like_address {
        return Err(format!("upstream {text:?} is not IP[:PORT]"));
    }
    let path = base_dir.join(text);
    let contents = std::fs::read_to_string(&path).map_err(|error| {
        format!(
            "upstream {text:?} is neither IP[:PORT] nor a readable resolv.conf file ({}: {error})",
            path.display()
        )
    })?;
    let servers: Vec<SocketAddr> = contents
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(parse_address)
        })
        .collect();
    if servers.is_empty() {
        return Err(format!("{} has no `nameserver` lines", path.display()));
    }
    Ok(servers)
}

/// `IP`, `IP:PORT`, `[V6]` or `[V6]:PORT`. An IPv6 zone index (`%eth0`) is not supported.
fn parse_address(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, DEFAULT_UPSTREAM_PORT));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address);
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, DEFAULT_UPSTREAM_PORT))
}
