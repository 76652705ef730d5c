//! The typed server configuration: what a Corefile asks for, validated.
//!
//! Control plane. Data only: `Config::from_corefile` (in `crate::plugins`)
//! fills it, one plugin per directive, and the server runs it. Server blocks on
//! one address share a [`ListenerConfig`].

use crate::cache::CacheConfig;
use crate::forward::ForwardConfig;
use signpost_corefile::{Errors, Location};
use signpost_geo::GeoSettings;
use signpost_health::HealthcheckConfig;
use signpost_proto::Name;
use signpost_zone::{Recipe, SourceSpec, VerdictSpec};
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Addresses serving the JSON APIs and the status page (`admin`).
    pub admin: Vec<AdminConfig>,
    /// The `reload` directive: re-read the Corefile and apply changes.
    pub reload: Option<ReloadSettings>,
    /// The health checker's settings (one checker serves every listener),
    /// with where they were written.
    pub healthcheck: Option<(HealthcheckConfig, Location)>,
    /// `healthcheck { verdicts ... }`: answers follow the verdicts a
    /// `signpost health` leader publishes instead of checks of this process.
    pub verdicts: Option<VerdictSpec>,
    /// `health { lameduck DURATION }`: after SIGTERM, keep answering this
    /// long (with `/ready` failing) before stopping.
    pub lameduck: Option<Duration>,
}

/// `admin [ADDRESS] { token_file PATH }`: one address serving the APIs and the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where to listen.
    pub address: SocketAddr,
    /// The file holding the bearer token requests must carry, if any.
    pub token_file: Option<PathBuf>,
    /// Where the directive is.
    pub location: Location,
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
    /// `loop`: the zone whose forwarding is probed for a loop at start.
    pub loop_zone: Option<Name>,
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
    /// Every HTTP address (`health`, `ready`, `prometheus`, `admin`), each once.
    pub fn admin_addresses(&self) -> Vec<SocketAddr> {
        let mut addresses: Vec<SocketAddr> = Vec::new();
        for address in self
            .process
            .health
            .iter()
            .chain(&self.process.ready)
            .chain(&self.process.prometheus)
            .chain(self.process.admin.iter().map(|a| &a.address))
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
