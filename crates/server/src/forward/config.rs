//! The `forward` directive, validated into a [`ForwardConfig`].
//!
//! Control plane. [`parse_forward`] checks the whole directive and returns
//! every problem, each with its file and line, as [`Config::from_corefile`]
//! does for the other plugins. Syntax (CoreDNS):
//!
//! ```text
//! forward FROM TO... {
//!     except IGNORED_NAMES...
//!     force_tcp
//!     prefer_udp
//!     expire DURATION
//!     max_fails INTEGER
//!     health_check DURATION [no_rec] [domain FQDN]
//!     policy random|round_robin|sequential
//!     max_concurrent MAX
//!     failfast_all_unhealthy_upstreams
//! }
//! ```
//!
//! `TO` is `IP`, `IP:PORT`, `[IPv6]:PORT`, any of those behind `dns://`, or
//! the path of a `resolv.conf`-style file whose `nameserver` lines are read
//! (relative paths are taken from the Corefile's directory).
//!
//! [`Config::from_corefile`]: crate::config::Config::from_corefile

use crate::config::ConfigError;
use signpost_corefile::{Directive, Location};
use signpost_proto::Name;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// The port an upstream without one gets.
pub const DEFAULT_UPSTREAM_PORT: u16 = 53;
/// CoreDNS refuses more upstreams than this.
pub const MAX_UPSTREAMS: usize = 15;

/// A validated `forward` plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The zone whose names are forwarded (`FROM`, usually the root).
    pub from: Name,
    /// Names under `from` that are not forwarded (`except`).
    pub except: Vec<Name>,
    /// Where queries go, in the order written (`TO`).
    pub upstreams: Vec<SocketAddr>,
    /// Always use TCP to the upstreams (`force_tcp`).
    pub force_tcp: bool,
    /// Use UDP first even for clients that came over TCP (`prefer_udp`).
    pub prefer_udp: bool,
    /// Idle lifetime of a reused connection (`expire`, default 10 s). Accepted
    /// for compatibility; signpost opens one socket per exchange, so it is unused.
    pub expire: Duration,
    /// Consecutive failures after which an upstream is down (`max_fails`,
    /// default 2). 0 turns health tracking off: every upstream is always up.
    pub max_fails: u32,
    /// Interval between health probes of a down upstream (`health_check`, default 0.5 s).
    pub health_check: Duration,
    /// Set RD on health probes (cleared by `health_check ... no_rec`).
    pub health_check_recursion: bool,
    /// The name health probes ask `NS` for (`health_check ... domain FQDN`, default the root).
    pub health_check_domain: Name,
    /// How the upstream order is chosen for each query (`policy`, default random).
    pub policy: Policy,
    /// Client queries in flight above which new ones are refused (`max_concurrent`).
    pub max_concurrent: Option<usize>,
    /// With every upstream down, fail at once instead of trying one anyway
    /// (`failfast_all_unhealthy_upstreams`).
    pub fail_fast_all_down: bool,
    /// The most a client query waits for the whole exchange, fail-overs
    /// included. Not a Corefile option; CoreDNS uses 5 s.
    pub timeout: Duration,
    /// Where the directive is.
    pub location: Location,
}

/// The order in which upstreams are tried (`policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// A fresh random order per query.
    #[default]
    Random,
    /// Rotate the starting upstream by one per query.
    RoundRobin,
    /// Always the written order: the first healthy upstream gets every query.
    Sequential,
}

impl ForwardConfig {
    /// A configuration with CoreDNS's defaults, forwarding `from` to `upstreams`.
    pub fn new(from: Name, upstreams: Vec<SocketAddr>) -> Self {
        Self {
            from,
            except: Vec::new(),
            upstreams,
            force_tcp: false,
            prefer_udp: false,
            expire: Duration::from_secs(10),
            max_fails: 2,
            health_check: Duration::from_millis(500),
            health_check_recursion: true,
            health_check_domain: Name::root(),
            policy: Policy::Random,
            max_concurrent: None,
            fail_fast_all_down: false,
            timeout: Duration::from_secs(5),
            location: Location {
                file: Path::new("").into(),
                line: 0,
            },
        }
    }
}

/// Validates one `forward` directive. `base_dir` resolves relative
/// `resolv.conf`-style paths (the Corefile's directory).
pub fn parse_forward(
    directive: &Directive,
    base_dir: &Path,
) -> Result<ForwardConfig, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut push = |location: &Location, message: String| {
        errors.push(ConfigError {
            location: location.clone(),
            message,
        });
    };
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

    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

fn expected(option: &str, what: &str, args: &[String]) -> String {
    format!("`{option}` expects {what}, found {:?}", args.join(" "))
}

fn one_duration(args: &[String]) -> Option<Duration> {
    match args {
        [value] => parse_go_duration(value),
        _ => None,
    }
}

/// `health_check DURATION [no_rec] [domain FQDN]`.
fn health_check(args: &[String]) -> Result<(Duration, bool, Name), String> {
    let usage = "`health_check` expects DURATION [no_rec] [domain FQDN]";
    let Some((interval, rest)) = args.split_first() else {
        return Err(usage.to_owned());
    };
    let interval = parse_go_duration(interval)
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

/// Parses a Go duration as CoreDNS reads them, fractions included: `0.5s`,
/// `500ms`, `1m30s`, `1.5h`. Units: `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
/// (`config::parse_duration` takes whole numbers only, and CoreDNS's own
/// default here is `0.5s`.)
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}
