//! `cache [TTL] [ZONES...] { success; denial; prefetch; serve_stale; keepttl }`:
//! CoreDNS's cache for forwarded answers (settings in `crate::cache::config`).
//! Every problem is reported at its own file:line.

use super::setup::{Block, Plugin, Setup};
use crate::cache::{CacheConfig, PrefetchConfig, ServeStaleConfig, StaleMode};
use signpost_corefile::toolkit::parse_duration;
use signpost_corefile::{Directive, Errors, Location};
use signpost_proto::Name;
use std::time::Duration;

#[derive(Debug)]
struct Cache(CacheConfig);

pub(super) fn parse(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    parse_cache(directive, errors).map(|config| Box::new(Cache(config)) as Box<dyn Plugin>)
}

impl Plugin for Cache {
    fn apply(&self, setup: &mut Setup<'_>) {
        // The first `cache` of the blocks sharing a listener serves it.
        if setup.listener.cache.is_none() {
            setup.listener.cache = Some(self.0.clone());
        }
    }
}

/// Validates a `cache` directive. Every problem comes back, each at its line.
pub(crate) fn parse_cache(directive: &Directive, errors: &mut Errors) -> Option<CacheConfig> {
    let before = errors.len();
    let mut push = |location: &Location, message: String| errors.push(location, message);
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

    let mut seen: Vec<String> = Vec::new();
    for option in &directive.block {
        let name = option.name.as_str();
        let here = &option.location;
        // `disable` appears once per kind (success, denial).
        let once = match (name, option.args.first()) {
            ("disable", Some(kind)) => format!("disable {kind}"),
            _ => name.to_owned(),
        };
        if seen.contains(&once) {
            push(here, format!("`cache` option `{once}` given twice"));
        }
        seen.push(once);
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
                            Ok(window) if !window.is_zero() => prefetch.window = window,
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
                        Ok(duration) => stale.duration = duration,
                        Err(_) => push(
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
            "disable" => {
                // CoreDNS: `disable success|denial [ZONES...]`, zones default to the cache's.
                let Some((kind, zones)) = args.split_first() else {
                    push(
                        here,
                        "`disable` expects `success` or `denial` and optional zones".to_owned(),
                    );
                    continue;
                };
                let mut names = Vec::new();
                for zone in zones {
                    match Name::from_ascii(zone) {
                        Ok(name) => names.push(name),
                        Err(error) => {
                            push(here, format!("`disable`: invalid zone {zone:?}: {error}"))
                        }
                    }
                }
                if names.is_empty() {
                    names = if config.zones.is_empty() {
                        vec![Name::root()]
                    } else {
                        config.zones.clone()
                    };
                }
                match *kind {
                    "success" => config.disable_success = names,
                    "denial" => config.disable_denial = names,
                    other => push(
                        here,
                        format!("`disable` expects `success` or `denial`, found {other:?}"),
                    ),
                }
            }
            "servfail" => push(
                here,
                format!("`cache` option `{name}` is not implemented by signpost yet"),
            ),
            other => push(here, format!("unknown `cache` option `{other}`")),
        }
    }
    (errors.len() == before).then_some(config)
}

fn positive_seconds(text: &str) -> Option<u32> {
    text.parse::<u32>().ok().filter(|&ttl| ttl > 0)
}
