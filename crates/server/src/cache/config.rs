//! The `cache` directive, validated into a [`CacheConfig`] (control plane).
//!
//! ```text
//! cache [TTL] [ZONES...] {
//!     success CAPACITY [TTL] [MINTTL]
//!     denial CAPACITY [TTL] [MINTTL]
//!     prefetch AMOUNT [[DURATION] [PERCENTAGE%]]
//!     serve_stale [DURATION] [immediate|verify]
//!     keepttl
//! }
//! ```
//!
//! Defaults are CoreDNS's. Every problem is reported at its own file:line.

use crate::config::{ConfigError, parse_duration};
use signpost_corefile::{Directive, Location};
use signpost_proto::Name;
use std::time::Duration;

/// CoreDNS's default capacity of each of the two caches (256 shards × 39).
pub const DEFAULT_CAPACITY: usize = 9984;
/// CoreDNS's default maximum TTL of success answers.
pub const DEFAULT_SUCCESS_TTL: u32 = 3600;
/// CoreDNS's default maximum TTL of denials.
pub const DEFAULT_DENIAL_TTL: u32 = 1800;
/// CoreDNS's default minimum TTL of both.
pub const DEFAULT_MIN_TTL: u32 = 5;

/// The `cache` plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Zones to cache; empty means the server block's zones.
    pub zones: Vec<Name>,
    /// NOERROR answers and referrals.
    pub success: CapacityConfig,
    /// NXDOMAIN and NODATA answers.
    pub denial: CapacityConfig,
    /// Refresh popular entries before they expire.
    pub prefetch: Option<PrefetchConfig>,
    /// Serve expired entries while upstream cannot be reached.
    pub serve_stale: Option<ServeStaleConfig>,
    /// Serve the stored TTL instead of aging it (`keepttl`).
    pub keep_ttl: bool,
    /// Where the directive is.
    pub location: Location,
}

/// One of the two caches (`success` or `denial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityConfig {
    /// Most entries held; one is evicted to make room beyond it.
    pub capacity: usize,
    /// Largest TTL an entry is cached for, in seconds.
    pub max_ttl: u32,
    /// Smallest TTL an entry is cached for, in seconds.
    pub min_ttl: u32,
}

/// `prefetch AMOUNT [[DURATION] [PERCENTAGE%]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// Hits needed, with no gap of `window` or more between them.
    pub amount: u32,
    /// The longest gap between hits that keeps an entry popular (default 1m).
    pub window: Duration,
    /// Refresh once the remaining TTL is at most this share of the original (default 10).
    pub percentage: u8,
}

/// `serve_stale [DURATION] [immediate|verify]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeStaleConfig {
    /// How long after expiry an entry may still be served (default 1h).
    pub duration: Duration,
    /// When to ask upstream.
    pub mode: StaleMode,
}

/// When a stale entry is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleMode {
    /// Answer stale at once, then refresh in the background (the default).
    Immediate,
    /// Ask upstream first; answer stale only if that fails.
    Verify,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        Self {
            amount: 1,
            window: Duration::from_secs(60),
            percentage: 10,
        }
    }
}

impl CacheConfig {
    /// CoreDNS's defaults, as a bare `cache` line gives.
    pub fn new(location: Location) -> Self {
        Self {
            zones: Vec::new(),
            success: CapacityConfig {
                capacity: DEFAULT_CAPACITY,
                max_ttl: DEFAULT_SUCCESS_TTL,
                min_ttl: DEFAULT_MIN_TTL,
            },
            denial: CapacityConfig {
                capacity: DEFAULT_CAPACITY,
                max_ttl: DEFAULT_DENIAL_TTL,
                min_ttl: DEFAULT_MIN_TTL,
            },
            prefetch: None,
            serve_stale: None,
            keep_ttl: false,
            location,
        }
    }
}

/// Validates a `cache` directive. Every problem comes back, each at its line.
pub fn parse_cache(directive: &Directive) -> Result<CacheConfig, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut push = |location: &Location, message: String| {
        errors.push(ConfigError {
            location: location.clone(),
            message,
        });
    };
    let mut config = CacheConfig::new(directive.location.clone());
    let location = &directive.location;

    // `cache [TTL] [ZONES...]`: a leading number is the TTL of both caches.
    let mut zone_args = directive.args.as_slice();
    if let Some(first) = directive.arg(0)
        && first.starts_with(|c: char| c.is_ascii_digit())
    {
        match positive_seconds(first) {
            Some(ttl) => {
                config.success.max_ttl = ttl;
                config.denial.max_ttl = ttl;
            }
            None => push(
                location,
                format!("`cache` TTL must be a positive number of seconds, found {first:?}"),
            ),
        }
        zone_args = &zone_args[1..];
    }
    for zone in zone_args {
        match Name::from_ascii(zone) {
            Ok(name) => config.zones.push(name),
            Err(error) => push(location, format!("`cache`: invalid zone {zone:?}: {error}")),
        }
    }

    let mut seen: Vec<&str> = Vec::new();
    for option in &directive.block {
        let name = option.name.as_str();
        let here = &option.location;
        if seen.contains(&name) {
            push(here, format!("`cache` option `{name}` given twice"));
        }
        seen.push(name);
        let args: Vec<&str> = option.args.iter().map(String::as_str).collect();
        if !option.block.is_empty() {
            push(here, format!("`{name}` takes no block"));
        }
        match name {
            "success" | "denial" => {
                let target = if name == "success" {
                    &mut config.success
                } else {
                    &mut config.denial
                };
                if args.is_empty() || args.len() > 3 {
                    push(here, format!("`{name}` expects CAPACITY [TTL] [MINTTL]"));
                    continue;
                }
                match args[0].parse::<usize>() {
                    Ok(capacity) if capacity > 0 => target.capacity = capacity,
                    _ => push(
                        here,
                        format!(
                            "`{name}` CAPACITY must be a positive whole number, found {:?}",
                            args[0]
                        ),
                    ),
                }
                if let Some(text) = args.get(1) {
                    match positive_seconds(text) {
                        Some(ttl) => target.max_ttl = ttl,
                        None => push(
                            here,
                            format!(
                                "`{name}` TTL must be a positive number of seconds, found {text:?}"
                            ),
                        ),
                    }
                }
                if let Some(text) = args.get(2) {
                    match text.parse::<u32>() {
                        Ok(min_ttl) => target.min_ttl = min_ttl,
                        Err(_) => push(
                            here,
                            format!("`{name}` MINTTL must be a number of seconds, found {text:?}"),
                        ),
                    }
                }
                if target.min_ttl > target.max_ttl {
                    push(
                        here,
                        format!(
                            "`{name}` MINTTL ({}) is larger than its TTL ({})",
                            target.min_ttl, target.max_ttl
                        ),
                    );
                }
            }
            "prefetch" => {
                let mut prefetch = PrefetchConfig::default();
                if args.is_empty() || args.len() > 3 {
                    push(
                        here,
                        "`prefetch` expects AMOUNT [[DURATION] [PERCENTAGE%]]".to_owned(),
                    );
                    continue;
                }
                match args[0].parse::<u32>() {
                    Ok(amount) if amount > 0 => prefetch.amount = amount,
                    _ => push(
                        here,
                        format!(
                            "`prefetch` AMOUNT must be a positive whole number, found {:?}",
                            args[0]
                        ),
                    ),
                }
                for text in &args[1..] {
                    if let Some(number) = text.strip_suffix('%') {
                        match number.parse::<u8>() {
                            Ok(percentage) if (10..=90).contains(&percentage) => {
                                prefetch.percentage = percentage;
                            }
                            _ => push(
                                here,
                                format!(
                                    "`prefetch` PERCENTAGE must be from 10% to 90%, found {text:?}"
                                ),
                            ),
                        }
                    } else {
                        match parse_duration(text) {
                            Some(window) if !window.is_zero() => prefetch.window = window,
                            _ => push(
                                here,
                                format!(
                                    "`prefetch` expects a DURATION such as 1m or a PERCENTAGE such as 10%, found {text:?}"
                                ),
                            ),
                        }
                    }
                }
                config.prefetch = Some(prefetch);
            }
            "serve_stale" => {
                let mut stale = ServeStaleConfig {
                    duration: Duration::from_secs(3600),
                    mode: StaleMode::Immediate,
                };
                if args.len() > 2 {
                    push(
                        here,
                        "`serve_stale` expects [DURATION] [immediate|verify]".to_owned(),
                    );
                }
                if let Some(text) = args.first() {
                    match parse_duration(text) {
                        Some(duration) => stale.duration = duration,
                        None => push(
                            here,
                            format!(
                                "`serve_stale` DURATION must be a duration such as 1h, found {text:?}"
                            ),
                        ),
                    }
                }
                match args.get(1).copied() {
                    None | Some("immediate") => {}
                    // CoreDNS accepts `verify`; its README once spelt it `verified`.
                    Some("verify" | "verified") => stale.mode = StaleMode::Verify,
                    Some(other) => push(
                        here,
                        format!(
                            "`serve_stale` refresh mode must be `immediate` or `verify`, found {other:?}"
                        ),
                    ),
                }
                config.serve_stale = Some(stale);
            }
            "keepttl" => {
                if !args.is_empty() {
                    push(here, "`keepttl` takes no arguments".to_owned());
                }
                config.keep_ttl = true;
            }
            "servfail" | "disable" => push(
                here,
                format!("`cache` option `{name}` is not implemented by signpost yet"),
            ),
            other => push(here, format!("unknown `cache` option `{other}`")),
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

fn positive_seconds(text: &str) -> Option<u32> {
    text.parse::<u32>().ok().filter(|&ttl| ttl > 0)
}
