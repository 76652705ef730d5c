//! The typed server configuration, validated from a parsed Corefile.
//!
//! Control plane. [`Config::from_corefile`] hands every directive to its
//! plugin (`crate::plugins`: one module per directive, one line each in the
//! registry) and collects every problem, each with its file and line, so an
//! operator sees all mistakes in one run (`signpost dns --validate`). Unknown
//! directives are errors; CoreDNS directives that signpost does not implement
//! yet say so.
//!
//! ```text
//! Corefile ─▶ server block ─▶ directive ─▶ REGISTRY[name].parse ─▶ Box<dyn Plugin>
//!                 │ keys grouped by address                              │ apply
//!                 ▼                                                      ▼
//!            ListenerConfig (one per distinct bind address and port) ◀───┘
//! ```
//!
//! Server blocks on one address share a listener: their zones add up, and
//! each plugin's `apply` says how it joins what is there (sources add up, the
//! first `cache` wins, a second `healthcheck` must match the first).

use crate::cache::CacheConfig;
use crate::forward::ForwardConfig;
use crate::plugins::{self, Block, Setup};
use signpost_corefile::{Corefile, Errors, Location};
use signpost_geo::GeoSettings;
use signpost_health::HealthcheckConfig;
use signpost_proto::Name;
use signpost_zone::{Recipe, SourceSpec};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// The port a server block listens on when its key names none (CoreDNS: 53).
pub const DEFAULT_PORT: u16 = 53;

/// Every problem found in a configuration, each with its file and line.
pub type ConfigErrors = Errors;

/// A validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// DNS listeners, one per distinct bind address and port.
    pub listeners: Vec<ListenerConfig>,
    /// Process-wide settings: admin addresses, reload, the health checker.
    pub process: ProcessConfig,
}

/// What the whole process shares, whichever server block set it.
#[derive(Debug, Clone, Default)]
pub struct ProcessConfig {
    /// Addresses serving `/health`.
    pub health: Vec<SocketAddr>,
    /// Addresses serving `/ready`.
    pub ready: Vec<SocketAddr>,
    /// Addresses serving `/metrics`.
    pub prometheus: Vec<SocketAddr>,
    /// The `reload` directive: re-read the Corefile and apply changes.
    pub reload: Option<ReloadSettings>,
    /// The health checker's settings (one checker serves every listener),
    /// with where they were written.
    pub healthcheck: Option<(HealthcheckConfig, Location)>,
}

/// `reload [INTERVAL [JITTER]]`: how often the Corefile is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSettings {
    /// Check interval (CoreDNS default 30s, at least 2s).
    pub interval: Duration,
}

/// One DNS listener: the server blocks sharing an address and port.
#[derive(Debug, Clone, Default)]
pub struct ListenerConfig {
    /// Addresses to bind (UDP and TCP on each).
    pub addresses: Vec<SocketAddr>,
    /// The server-block zones, in file order.
    pub zones: Vec<Name>,
    /// Where authoritative data comes from (`kubernetes`, `file`, `hosts`),
    /// in directive order.
    pub sources: Vec<SourcePlan>,
    /// The `log` plugin is on.
    pub log: bool,
    /// The `errors` plugin is on.
    pub errors: bool,
    /// The `healthcheck` plugin of these blocks, if any.
    pub healthcheck: Option<HealthcheckConfig>,
    /// `forward` plugins: where names no zone holds are resolved.
    pub forward: Vec<ForwardConfig>,
    /// The `cache` plugin for forwarded answers.
    pub cache: Option<CacheConfig>,
    /// `loadbalance`: rotate A, AAAA and MX records in every answer.
    pub loadbalance: bool,
    /// The `geo` plugin.
    pub geo: Option<GeoConfig>,
}

/// One source of authoritative data and how its input becomes records.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Where the data comes from.
    pub spec: SourceSpec,
    /// How it is compiled.
    pub recipe: Recipe,
    /// The directive that asked for it.
    pub location: Location,
}

/// The `geo` plugin: `geo [ZONES...] { region; client; mmdb; latency; policy; ecs; ttl }`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoConfig {
    /// Zones holding the geographic and regional names (default: the block's zones).
    pub zones: Vec<Name>,
    /// Regions, client networks, database, latency table, policy.
    pub settings: GeoSettings,
    /// Where the directive is.
    pub location: Location,
}

// === impl Config ===

impl Config {
    /// Validates a parsed Corefile.
    pub fn from_corefile(corefile: &Corefile) -> Result<Self, ConfigErrors> {
        let mut errors = Errors::default();
        let mut config = Self::default();
        for block in &corefile.blocks {
            let zones: Vec<Name> = block
                .keys
                .iter()
                .filter_map(|k| errors.name(&k.location, &k.zone))
                .collect();
            let base = block
                .location
                .file
                .parent()
                .unwrap_or_else(|| Path::new(""));
            let context = Block {
                zones: &zones,
                base,
            };
            let parsed: Vec<Box<dyn plugins::Plugin>> = block
                .directives
                .iter()
                .filter_map(|directive| plugins::parse(directive, &context, &mut errors))
                .collect();
            let mut binds: Vec<IpAddr> = parsed
                .iter()
                .flat_map(|p| p.bind_addresses().iter().copied())
                .collect();
            if binds.is_empty() {
                binds = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
            }
            // The block's keys grouped by the listener they join, in key order.
            let mut groups: Vec<(Vec<SocketAddr>, Vec<Name>)> = Vec::new();
            for key in &block.keys {
                let port = key.port.unwrap_or(DEFAULT_PORT);
                let addresses: Vec<SocketAddr> =
                    binds.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
                let zone = errors.name(&key.location, &key.zone);
                match groups.iter_mut().find(|(a, _)| *a == addresses) {
                    Some((_, group_zones)) => group_zones.extend(zone),
                    None => groups.push((addresses, zone.into_iter().collect())),
                }
            }
            for (addresses, group_zones) in groups {
                let index = match config
                    .listeners
                    .iter()
                    .position(|l| l.addresses == addresses)
                {
                    Some(index) => index,
                    None => {
                        config.listeners.push(ListenerConfig {
                            addresses,
                            ..ListenerConfig::default()
                        });
                        config.listeners.len() - 1
                    }
                };
                let listener = &mut config.listeners[index];
                listener.zones.extend(group_zones);
                let mut setup = Setup {
                    listener,
                    process: &mut config.process,
                    errors: &mut errors,
                };
                for plugin in &parsed {
                    plugin.apply(&mut setup);
                }
            }
        }
        errors.into_result(config)
    }

    /// Every admin address (`health`, `ready`, `prometheus`), each once.
    pub fn admin_addresses(&self) -> Vec<SocketAddr> {
        let mut addresses: Vec<SocketAddr> = Vec::new();
        for address in self
            .process
            .health
            .iter()
            .chain(&self.process.ready)
            .chain(&self.process.prometheus)
        {
            if !addresses.contains(address) {
                addresses.push(*address);
            }
        }
        addresses
    }
}

#[cfg(test)]
mod tests;
