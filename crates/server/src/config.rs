//! The typed server configuration, validated from a parsed Corefile.
//!
//! Control plane. [`Config::from_corefile`] checks every directive and
//! collects every problem, each with its file and line, so an operator sees
//! all mistakes in one run (`signpost dns --validate`). Unknown directives are
//! errors; CoreDNS directives that signpost does not implement yet say so.

use crate::cache::{CacheConfig, parse_cache};
use crate::forward::{ForwardConfig, parse_forward};
use signpost_corefile::{Corefile, Directive, Location};
use signpost_geo::{ClientNetwork, GeoSettings, Policy, Region};
use signpost_health::{CheckerOptions, HealthPolicy};
use signpost_proto::Name;
use signpost_zone::PodMode;
use signpost_zone::cluster::{AllUnhealthy, DEFAULT_TTL};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The port a server block listens on when its key names none (CoreDNS: 53).
pub const DEFAULT_PORT: u16 = 53;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// DNS listeners, one per distinct bind address and port.
    pub listeners: Vec<ListenerConfig>,
    /// Addresses serving `/health`.
    pub health: Vec<SocketAddr>,
    /// Addresses serving `/ready`.
    pub ready: Vec<SocketAddr>,
    /// Addresses serving `/metrics`.
    pub prometheus: Vec<SocketAddr>,
    /// The `reload` directive: re-read the Corefile and apply changes.
    pub reload: Option<ReloadSettings>,
}

/// `reload [INTERVAL [JITTER]]`: how often the Corefile is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSettings {
    /// Check interval (CoreDNS default 30s, at least 2s).
    pub interval: Duration,
}

/// One DNS listener: the server blocks sharing an address and port.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Addresses to bind (UDP and TCP on each).
    pub addresses: Vec<SocketAddr>,
    /// The server-block zones, in file order.
    pub zones: Vec<Name>,
    /// `kubernetes` plugins of the blocks.
    pub kubernetes: Vec<KubernetesConfig>,
    /// The `log` plugin is on.
    pub log: bool,
    /// The `errors` plugin is on.
    pub errors: bool,
    /// The `healthcheck` plugin, if a block has one.
    pub healthcheck: Option<HealthcheckConfig>,
    /// `file` plugins: zones served from master files.
    pub files: Vec<FileConfig>,
    /// `forward` plugins: where names no zone holds are resolved.
    pub forward: Vec<ForwardConfig>,
    /// The `cache` plugin for forwarded answers.
    pub cache: Option<CacheConfig>,
    /// `hosts` plugins.
    pub hosts: Vec<HostsConfig>,
    /// `loadbalance`: rotate A, AAAA and MX records in every answer.
    pub loadbalance: bool,
    /// The `geo` plugin.
    pub geo: Option<GeoConfig>,
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

/// The `hosts` plugin: `hosts [FILE [ZONES...]] { INLINE; ttl; no_reverse; reload; fallthrough }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsConfig {
    /// The hosts file (default `/etc/hosts`); `None` when only inline entries are used.
    pub path: Option<PathBuf>,
    /// Zones it answers for (default: the server block's zones).
    pub zones: Vec<Name>,
    /// TTL of its records (CoreDNS default 3600).
    pub ttl: u32,
    /// No PTR records.
    pub no_reverse: bool,
    /// How often the file is checked for changes (CoreDNS default 5s; 0 disables).
    pub reload: Duration,
    /// Zones that fall through.
    pub fallthrough: Vec<Name>,
    /// Entries written in the Corefile: (address, names).
    pub inline: Vec<(IpAddr, Vec<Name>)>,
    /// Where the directive is.
    pub location: Location,
}

/// The `file` plugin: `file DBFILE [ZONES...] { reload DURATION }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The master file (relative paths are relative to the Corefile).
    pub path: PathBuf,
    /// Zones it holds (default: the server block's zones).
    pub zones: Vec<Name>,
    /// How often the SOA serial is checked for a reload (CoreDNS default 1m; 0 disables).
    pub reload: Duration,
    /// Where the directive is.
    pub location: Location,
}

/// The `healthcheck` plugin: active checks of annotated services' endpoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthcheckConfig {
    /// Timings and thresholds (the seed's defaults).
    pub policy: HealthPolicy,
    /// Spread and concurrency.
    pub options: CheckerOptions,
    /// What a service whose endpoints all fail serves.
    pub all_unhealthy: AllUnhealthy,
}

impl Default for HealthcheckConfig {
    fn default() -> Self {
        Self {
            policy: HealthPolicy::default(),
            options: CheckerOptions::default(),
            all_unhealthy: AllUnhealthy::ServeAll,
        }
    }
}

/// The `kubernetes` plugin.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// Zones it is authoritative for.
    pub zones: Vec<Name>,
    /// Record TTL in seconds.
    pub ttl: u32,
    /// Pod records.
    pub pods: PodMode,
    /// Name headless endpoints after their pods.
    pub endpoint_pod_names: bool,
    /// Zones that fall through.
    pub fallthrough: Vec<Name>,
    /// Catalog files and directories.
    pub catalog: Vec<PathBuf>,
    /// Where the directive is.
    pub location: Location,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where.
    pub location: Location,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", error.location, error.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<signpost_corefile::Errors> for ConfigErrors {
    fn from(errors: signpost_corefile::Errors) -> Self {
        Self(
            errors
                .0
                .into_iter()
                .map(|e| ConfigError {
                    location: e.location,
                    message: e.message,
                })
                .collect(),
        )
    }
}

/// CoreDNS plugins signpost will implement but does not yet.
const NOT_YET: &[&str] = &[
    "loop",
    "rewrite",
    "template",
    "etcd",
    "auto",
    "secondary",
    "dnssec",
    "transfer",
    "acl",
    "any",
    "autopath",
    "bufsize",
    "debug",
    "dns64",
    "erratic",
    "header",
    "k8s_external",
    "local",
    "metadata",
    "minimal",
    "nsid",
    "pprof",
    "root",
    "route53",
    "azure",
    "clouddns",
    "sign",
    "tls",
    "trace",
    "view",
    "whoami",
    "chaos",
    "cancel",
    "geoip",
    "grpc",
];

// === impl Config ===

impl Config {
    /// Validates a parsed Corefile.
    pub fn from_corefile(corefile: &Corefile) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut config = Self {
            listeners: Vec::new(),
            health: Vec::new(),
            ready: Vec::new(),
            prometheus: Vec::new(),
            reload: None,
        };
        for block in &corefile.blocks {
            let mut binds: Vec<IpAddr> = Vec::new();
            let mut kubernetes = Vec::new();
            let (mut log, mut errors_on) = (false, false);
            let mut healthcheck = None;
            let mut files = Vec::new();
            let mut forward = Vec::new();
            let mut hosts = Vec::new();
            let mut loadbalance = false;
            let mut geo = None;
            let mut cache = None;
            let zones: Vec<Name> = block
                .keys
                .iter()
                .filter_map(|k| errors.name(&k.location, &k.zone))
                .collect();
            let base = block
                .location
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            for directive in &block.directives {
                match directive.name.as_str() {
                    "bind" => binds.extend(errors.bind(directive)),
                    "log" => log = true,
                    "errors" => errors_on = true,
                    "health" => {
                        push_unique(&mut config.health, errors.admin_address(directive, 8080))
                    }
                    "ready" => {
                        push_unique(&mut config.ready, errors.admin_address(directive, 8181))
                    }
                    "prometheus" => push_unique(
                        &mut config.prometheus,
                        errors.admin_address(directive, 9153),
                    ),
                    "kubernetes" => kubernetes.extend(errors.kubernetes(directive, &zones, &base)),
                    "healthcheck" => healthcheck = Some(errors.healthcheck(directive)),
                    "file" => files.extend(errors.file(directive, &zones, &base)),
                    "hosts" => hosts.push(errors.hosts(directive, &zones, &base)),
                    "reload" => config.reload = config.reload.or(errors.reload(directive)),
                    "geo" => geo = errors.geo(directive, &zones, &base),
                    "loadbalance" => {
                        match directive.args.as_slice() {
                            [] => {}
                            [policy] if policy == "round_robin" => {}
                            _ => errors.push(
                                &directive.location,
                                "`loadbalance` takes only `round_robin` (the default)".to_owned(),
                            ),
                        }
                        loadbalance = true;
                    }
                    "forward" => match parse_forward(directive, &base) {
                        Ok(config) => forward.push(config),
                        Err(found) => errors.0.extend(found),
                    },
                    "cache" => match parse_cache(directive) {
                        Ok(config) => cache = Some(config),
                        Err(found) => errors.0.extend(found),
                    },
                    name if NOT_YET.contains(&name) => errors.push(
                        &directive.location,
                        format!(
                            "directive `{name}` is a CoreDNS plugin signpost does not implement yet"
                        ),
                    ),
                    name => errors.push(&directive.location, format!("unknown directive `{name}`")),
                }
            }
            if binds.is_empty() {
                binds = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
            }
            for key in &block.keys {
                let port = key.port.unwrap_or(DEFAULT_PORT);
                let addresses: Vec<SocketAddr> =
                    binds.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
                let zone = errors.name(&key.location, &key.zone);
                match config
                    .listeners
                    .iter_mut()
                    .find(|l| l.addresses == addresses)
                {
                    Some(listener) => {
                        listener.zones.extend(zone);
                        listener.kubernetes.extend(kubernetes.iter().cloned());
                        listener.log |= log;
                        listener.errors |= errors_on;
                        listener.healthcheck = listener.healthcheck.or(healthcheck);
                        for entry in &hosts {
                            if !listener.hosts.contains(entry) {
                                listener.hosts.push(entry.clone());
                            }
                        }
                        for file in &files {
                            if !listener.files.contains(file) {
                                listener.files.push(file.clone());
                            }
                        }
                        for config in &forward {
                            if !listener
                                .forward
                                .iter()
                                .any(|f| f.location == config.location)
                            {
                                listener.forward.push(config.clone());
                            }
                        }
                        listener.cache = listener.cache.clone().or_else(|| cache.clone());
                        listener.loadbalance |= loadbalance;
                        listener.geo = listener.geo.clone().or_else(|| geo.clone());
                    }
                    None => config.listeners.push(ListenerConfig {
                        addresses,
                        zones: zone.into_iter().collect(),
                        kubernetes: kubernetes.clone(),
                        log,
                        errors: errors_on,
                        healthcheck,
                        files: files.clone(),
                        hosts: hosts.clone(),
                        loadbalance,
                        geo: geo.clone(),
                        forward: forward.clone(),
                        cache: cache.clone(),
                    }),
                }
            }
        }
        for listener in &mut config.listeners {
            // A block with several keys on one port lists its plugins once.
            listener
                .kubernetes
                .dedup_by(|a, b| a.location == b.location);
        }
        if errors.0.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

fn push_unique(into: &mut Vec<SocketAddr>, address: Option<SocketAddr>) {
    if let Some(address) = address
        && !into.contains(&address)
    {
        into.push(address);
    }
}

// === impl ConfigErrors ===

impl ConfigErrors {
    fn push(&mut self, location: &Location, message: String) {
        self.0.push(ConfigError {
            location: location.clone(),
            message,
        });
    }

    fn name(&mut self, location: &Location, text: &str) -> Option<Name> {
        match Name::from_ascii(text) {
            Ok(name) => Some(name),
            Err(error) => {
                self.push(location, format!("invalid zone {text:?}: {error}"));
                None
            }
        }
    }

    /// A plugin's zone arguments, or the server block's zones when it gives none (CoreDNS's rule).
    fn plugin_zones(
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

    fn no_block(&mut self, directive: &Directive) {
        if let Some(inner) = directive.block.first() {
            self.push(
                &inner.location,
                format!("`{}` takes no block", directive.name),
            );
        }
    }

    fn bind(&mut self, directive: &Directive) -> Vec<IpAddr> {
        self.no_block(directive);
        if directive.args.is_empty() {
            self.push(
                &directive.location,
                "`bind` expects at least one address".to_owned(),
            );
        }
        directive
            .args
            .iter()
            .filter_map(|arg| match arg.as_str() {
                "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                text => match text.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        self.push(
                            &directive.location,
                            format!("`bind`: {text:?} is not an IP address"),
                        );
                        None
                    }
                },
            })
            .collect()
    }

    /// `healthcheck { interval D; timeout D; failure_threshold N; success_threshold N;
    /// remove_unhealthy_delay D; jitter D; max_concurrent N; all_unhealthy serve_all|nxdomain }`.
    fn healthcheck(&mut self, directive: &Directive) -> HealthcheckConfig {
        let mut config = HealthcheckConfig::default();
        if !directive.args.is_empty() {
            self.push(
                &directive.location,
                "`healthcheck` takes its options in a block".to_owned(),
            );
        }
        for option in &directive.block {
            let value = match option.args.as_slice() {
                [value] => value.as_str(),
                _ => {
                    self.push(
                        &option.location,
                        format!("`{}` expects one value", option.name),
                    );
                    continue;
                }
            };
            let duration = || parse_duration(value);
            let count = || value.parse::<u32>().ok().filter(|&n| n > 0);
            let ok = match option.name.as_str() {
                "interval" => duration()
                    .filter(|d| !d.is_zero())
                    .map(|d| config.policy.interval = d),
                "timeout" => duration()
                    .filter(|d| !d.is_zero())
                    .map(|d| config.policy.timeout = d),
                "remove_unhealthy_delay" => {
                    duration().map(|d| config.policy.remove_unhealthy_delay = d)
                }
                "jitter" => duration().map(|d| config.options.jitter = d),
                "failure_threshold" => count().map(|n| config.policy.failure_threshold = n),
                "success_threshold" => count().map(|n| config.policy.success_threshold = n),
                "max_concurrent" => count().map(|n| config.options.max_concurrent = n as usize),
                "all_unhealthy" => match value {
                    "serve_all" => Some(AllUnhealthy::ServeAll),
                    "nxdomain" => Some(AllUnhealthy::NxDomain),
                    _ => None,
                }
                .map(|choice| config.all_unhealthy = choice),
                other => {
                    self.push(
                        &option.location,
                        format!("unknown `healthcheck` option `{other}`"),
                    );
                    continue;
                }
            };
            if ok.is_none() {
                let expected = match option.name.as_str() {
                    "failure_threshold" | "success_threshold" | "max_concurrent" => {
                        "a positive whole number"
                    }
                    "all_unhealthy" => "`serve_all` or `nxdomain`",
                    _ => "a duration such as 10s, 500ms or 1m",
                };
                self.push(
                    &option.location,
                    format!("`{}` expects {expected}, found {value:?}", option.name),
                );
            }
        }
        config
    }

    /// `geo [ZONES...] { region NAME LAT LON; client CIDR REGION; mmdb PATH;
    /// latency FROM TO MS; policy latency|priority; ecs on|off; ttl SECONDS }`.
    fn geo(
        &mut self,
        directive: &Directive,
        block_zones: &[Name],
        base: &Path,
    ) -> Option<GeoConfig> {
        let zones = self.plugin_zones(&directive.location, &directive.args, block_zones);
        let mut settings = GeoSettings {
            ecs: true,
            ttl: 30,
            ..GeoSettings::default()
        };
        let before = self.0.len();
        // Regions first: clients and latencies name them.
        for option in directive.block.iter().filter(|o| o.name == "region") {
            match option.args.as_slice() {
                [name, latitude, longitude] => {
                    match (latitude.parse::<f64>(), longitude.parse::<f64>()) {
                        (Ok(latitude), Ok(longitude))
                            if (-90.0..=90.0).contains(&latitude)
                                && (-180.0..=180.0).contains(&longitude) =>
                        {
                            if settings.regions.iter().any(|r| r.name == *name) {
                                self.push(
                                    &option.location,
                                    format!("region {name:?} is defined twice"),
                                );
                            }
                            settings.regions.push(Region {
                                name: name.clone(),
                                latitude,
                                longitude,
                            });
                        }
                        _ => self.push(
                            &option.location,
                            "`region` expects NAME LATITUDE LONGITUDE in degrees".to_owned(),
                        ),
                    }
                }
                _ => self.push(
                    &option.location,
                    "`region` expects NAME LATITUDE LONGITUDE".to_owned(),
                ),
            }
        }
        let region_index = |errors: &mut Self, location: &Location, name: &str| {
            let found = settings.regions.iter().position(|r| r.name == name);
            if found.is_none() {
                errors.push(
                    location,
                    format!("unknown region {name:?}: define it with `region`"),
                );
            }
            found
        };
        for option in &directive.block {
            let args = option.args.as_slice();
            match option.name.as_str() {
                "region" => {}
                "client" => match args {
                    [cidr, region] => {
                        let network = parse_cidr(cidr);
                        if network.is_none() {
                            self.push(
                                &option.location,
                                format!("`client` expects an address/prefix, found {cidr:?}"),
                            );
                        }
                        if let (Some((address, prefix)), Some(region)) =
                            (network, region_index(self, &option.location, region))
                        {
                            settings.clients.push(ClientNetwork {
                                address,
                                prefix,
                                region,
                            });
                        }
                    }
                    _ => self.push(&option.location, "`client` expects CIDR REGION".to_owned()),
                },
                "mmdb" => match args {
                    [path] => settings.mmdb = Some(base.join(path)),
                    _ => self.push(&option.location, "`mmdb` expects one file".to_owned()),
                },
                "latency" => match args {
                    [from, to, ms] => {
                        let from = region_index(self, &option.location, from);
                        let to = region_index(self, &option.location, to);
                        match (from, to, ms.parse::<u32>()) {
                            (Some(from), Some(to), Ok(ms)) => settings.latency.push((from, to, ms)),
                            (_, _, Err(_)) => self.push(
                                &option.location,
                                format!("`latency` expects milliseconds, found {ms:?}"),
                            ),
                            _ => {}
                        }
                    }
                    _ => self.push(
                        &option.location,
                        "`latency` expects FROM TO MILLISECONDS".to_owned(),
                    ),
                },
                "policy" => match args {
                    [policy] if policy == "latency" => settings.policy = Policy::Latency,
                    [policy] if policy == "priority" => settings.policy = Policy::Priority,
                    _ => self.push(
                        &option.location,
                        "`policy` expects `latency` or `priority`".to_owned(),
                    ),
                },
                "ecs" => match args {
                    [on] if on == "on" => settings.ecs = true,
                    [off] if off == "off" => settings.ecs = false,
                    _ => self.push(&option.location, "`ecs` expects `on` or `off`".to_owned()),
                },
                "ttl" => match args {
                    [ttl] => match ttl.parse::<u32>() {
                        Ok(ttl) if ttl <= 3600 => settings.ttl = ttl,
                        _ => self.push(
                            &option.location,
                            format!("`ttl` expects seconds from 0 to 3600, found {ttl:?}"),
                        ),
                    },
                    _ => self.push(&option.location, "`ttl` expects one value".to_owned()),
                },
                other => self.push(&option.location, format!("unknown `geo` option `{other}`")),
            }
        }
        if settings.regions.is_empty() {
            self.push(
                &directive.location,
                "`geo` needs at least one `region NAME LATITUDE LONGITUDE`".to_owned(),
            );
        }
        if let Some(path) = &settings.mmdb
            && let Err(error) = signpost_geo::Geo::new(GeoSettings {
                mmdb: Some(path.clone()),
                ..GeoSettings::default()
            })
        {
            self.push(
                &directive.location,
                format!(
                    "{error}: {}",
                    std::error::Error::source(&error).map_or(String::new(), ToString::to_string)
                ),
            );
        }
        (self.0.len() == before).then(|| GeoConfig {
            zones,
            settings,
            location: directive.location.clone(),
        })
    }

    /// `reload [INTERVAL [JITTER]]`; the jitter is accepted and not needed:
    /// replicas reload from their own file watches anyway.
    fn reload(&mut self, directive: &Directive) -> Option<ReloadSettings> {
        let interval = match directive.args.first() {
            None => Duration::from_secs(30),
            Some(text) => match parse_duration(text) {
                Some(interval) if interval >= Duration::from_secs(2) => interval,
                _ => {
                    self.push(
                        &directive.location,
                        format!("`reload` expects an interval of at least 2s, found {text:?}"),
                    );
                    return None;
                }
            },
        };
        if let Some(jitter) = directive
            .args
            .get(1)
            .filter(|j| parse_duration(j).is_none())
        {
            self.push(
                &directive.location,
                format!("`reload` jitter must be a duration, found {jitter:?}"),
            );
        }
        if directive.args.len() > 2 {
            self.push(
                &directive.location,
                "`reload` takes at most an interval and a jitter".to_owned(),
            );
        }
        Some(ReloadSettings { interval })
    }

    /// `hosts [FILE [ZONES...]] { ... }` (CoreDNS's hosts plugin).
    fn hosts(&mut self, directive: &Directive, block_zones: &[Name], base: &Path) -> HostsConfig {
        let mut args = directive.args.iter();
        let path = Some(
            args.next()
                .map_or_else(|| PathBuf::from("/etc/hosts"), |p| base.join(p)),
        );
        let zones = self.plugin_zones(&directive.location, args.as_slice(), block_zones);
        let mut config = HostsConfig {
            path,
            zones,
            ttl: 3600,
            no_reverse: false,
            reload: Duration::from_secs(5),
            fallthrough: Vec::new(),
            inline: Vec::new(),
            location: directive.location.clone(),
        };
        for option in &directive.block {
            if let Ok(address) = option.name.parse::<IpAddr>() {
                let names: Vec<Name> = option
                    .args
                    .iter()
                    .filter_map(|n| self.name(&option.location, n))
                    .collect();
                if names.is_empty() {
                    self.push(
                        &option.location,
                        format!("hosts entry {address} has no names"),
                    );
                }
                config.inline.push((address, names));
                continue;
            }
            match (option.name.as_str(), option.args.as_slice()) {
                ("ttl", [value]) => match value.parse::<u32>() {
                    Ok(ttl) if ttl <= 65535 => config.ttl = ttl,
                    _ => self.push(
                        &option.location,
                        format!("`ttl` expects seconds, found {value:?}"),
                    ),
                },
                ("no_reverse", []) => config.no_reverse = true,
                ("reload", [value]) => match parse_duration(value) {
                    Some(duration) => config.reload = duration,
                    None => self.push(
                        &option.location,
                        format!("`reload` expects a duration, found {value:?}"),
                    ),
                },
                ("fallthrough", zones) => {
                    config.fallthrough = if zones.is_empty() {
                        config.zones.clone()
                    } else {
                        zones
                            .iter()
                            .filter_map(|z| self.name(&option.location, z))
                            .collect()
                    };
                }
                (other, _) => self.push(
                    &option.location,
                    format!("unknown or malformed `hosts` option `{other}`"),
                ),
            }
        }
        config
    }

    /// `file DBFILE [ZONES...] { reload DURATION }`.
    fn file(
        &mut self,
        directive: &Directive,
        block_zones: &[Name],
        base: &Path,
    ) -> Option<FileConfig> {
        let Some((path, zones)) = directive.args.split_first() else {
            self.push(
                &directive.location,
                "`file` expects a zone file and optional zones".to_owned(),
            );
            return None;
        };
        let zones = self.plugin_zones(&directive.location, zones, block_zones);
        let mut reload = Duration::from_secs(60);
        for option in &directive.block {
            match (option.name.as_str(), option.args.as_slice()) {
                ("reload", [value]) => match parse_duration(value) {
                    Some(duration) => reload = duration,
                    None => self.push(
                        &option.location,
                        format!("`reload` expects a duration such as 30s, found {value:?}"),
                    ),
                },
                ("reload", _) => {
                    self.push(&option.location, "`reload` expects one duration".to_owned())
                }
                (other, _) => {
                    self.push(&option.location, format!("unknown `file` option `{other}`"))
                }
            }
        }
        Some(FileConfig {
            path: base.join(path),
            zones,
            reload,
            location: directive.location.clone(),
        })
    }

    /// `health [ADDR]`, `ready [ADDR]`, `prometheus [ADDR]`: `:PORT`, `HOST:PORT`.
    fn admin_address(&mut self, directive: &Directive, default_port: u16) -> Option<SocketAddr> {
        // CoreDNS's `health { lameduck DURATION }` is accepted; the drain on SIGTERM covers it.
        for inner in &directive.block {
            if !(directive.name == "health" && inner.name == "lameduck") {
                self.push(
                    &inner.location,
                    format!("`{}` does not take `{}`", directive.name, inner.name),
                );
            }
        }
        if directive.args.len() > 1 {
            self.push(
                &directive.location,
                format!("`{}` expects at most one address", directive.name),
            );
        }
        let Some(text) = directive.arg(0) else {
            let host = if directive.name == "prometheus" {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            return Some(SocketAddr::new(host, default_port));
        };
        match parse_host_port(text) {
            Some(address) => Some(address),
            None => {
                self.push(
                    &directive.location,
                    format!("`{}`: expected [HOST]:PORT, found {text:?}", directive.name),
                );
                None
            }
        }
    }

    fn kubernetes(
        &mut self,
        directive: &Directive,
        block_zones: &[Name],
        base: &Path,
    ) -> Option<KubernetesConfig> {
        let zones = self.plugin_zones(&directive.location, &directive.args, block_zones);
        let mut config = KubernetesConfig {
            zones,
            ttl: DEFAULT_TTL,
            pods: PodMode::Disabled,
            endpoint_pod_names: false,
            fallthrough: Vec::new(),
            catalog: Vec::new(),
            location: directive.location.clone(),
        };
        for option in &directive.block {
            let args = &option.args;
            match option.name.as_str() {
                "ttl" => match args.as_slice() {
                    [value] => match value.parse::<u32>() {
                        Ok(ttl) if ttl <= 3600 => config.ttl = ttl,
                        _ => self.push(&option.location, format!("`ttl` expects seconds from 0 to 3600, found {value:?}")),
                    },
                    _ => self.push(&option.location, "`ttl` expects one value in seconds".to_owned()),
                },
                "pods" => match args.as_slice() {
                    [mode] if mode == "disabled" => config.pods = PodMode::Disabled,
                    [mode] if mode == "insecure" => config.pods = PodMode::Insecure,
                    [mode] if mode == "verified" => {
                        self.push(&option.location, "`pods verified` needs the API-server source, which signpost does not have yet".to_owned());
                    }
                    _ => self.push(&option.location, "`pods` expects `disabled` or `insecure`".to_owned()),
                },
                "endpoint_pod_names" => {
                    if !args.is_empty() {
                        self.push(&option.location, "`endpoint_pod_names` takes no arguments".to_owned());
                    }
                    config.endpoint_pod_names = true;
                }
                "fallthrough" => {
                    config.fallthrough = if args.is_empty() {
                        config.zones.clone()
                    } else {
                        args.iter().filter_map(|z| self.name(&option.location, z)).collect()
                    };
                }
                "catalog" => {
                    if args.is_empty() {
                        self.push(&option.location, "`catalog` expects at least one file or directory".to_owned());
                    }
                    config.catalog.extend(args.iter().map(|p| base.join(p)));
                }
                "endpoint" | "kubeconfig" | "namespaces" | "labels" | "namespace_labels" | "noendpoints" | "ignore"
                | "multicluster" | "startup_timeout" | "tls" => self.push(
                    &option.location,
                    format!("`kubernetes` option `{}` needs the API-server source, which signpost does not have yet", option.name),
                ),
                other => self.push(&option.location, format!("unknown `kubernetes` option `{other}`")),
            }
        }
        if config.catalog.is_empty() {
            self.push(
                &directive.location,
                "`kubernetes` needs a source: add `catalog PATH` (the API-server source is not available yet)".to_owned(),
            );
            return None;
        }
        Some(config)
    }
}

/// Parses a Go-style duration as CoreDNS writes them: `10s`, `500ms`, `1m30s`, `2h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&i| i > 0)?;
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(value).ok()?)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Parses `ADDRESS/PREFIX` (a bare address is a host route).
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
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

/// Parses `:PORT`, `HOST:PORT` or `[V6]:PORT` (`localhost` is 127.0.0.1).
fn parse_host_port(text: &str) -> Option<SocketAddr> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let corefile =
            signpost_corefile::parse_str(text, Path::new("/etc/signpost/Corefile"), &|_| None)?;
        Config::from_corefile(&corefile)
    }

    fn lines(errors: &ConfigErrors) -> Vec<u32> {
        errors.0.iter().map(|e| e.location.line).collect()
    }

    /// The kubernetes block loads with the seed's TTL default of 30 s (CoreDNS's is 5).
    #[test]
    fn kubernetes_defaults_and_options() {
        let config = parse(
            ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        catalog ./catalog /srv/more.yaml\n        pods insecure\n        endpoint_pod_names\n        fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    health\n    ready\n}\n",
        )
        .unwrap();
        let listener = &config.listeners[0];
        assert_eq!(listener.addresses, ["0.0.0.0:53".parse().unwrap()]);
        let plugin = &listener.kubernetes[0];
        assert_eq!(plugin.ttl, 30);
        assert_eq!(plugin.pods, PodMode::Insecure);
        assert!(plugin.endpoint_pod_names);
        assert_eq!(plugin.fallthrough.len(), 2);
        assert_eq!(
            plugin.catalog,
            [
                PathBuf::from("/etc/signpost/./catalog"),
                PathBuf::from("/srv/more.yaml")
            ]
        );
        assert_eq!(config.prometheus, ["0.0.0.0:9153".parse().unwrap()]);
        assert_eq!(config.health, ["0.0.0.0:8080".parse().unwrap()]);
        assert_eq!(config.ready, ["0.0.0.0:8181".parse().unwrap()]);
    }

    /// Every problem is reported at once, each at its own line.
    #[test]
    fn every_error_at_once() {
        let errors = parse(
            ".:53 {\n    kubernetes {\n        ttl 99999\n        pods verified\n        kubeconfig /x\n    }\n    loop\n    nonsense\n    bind 1.2.3\n}\n",
        )
        .unwrap_err();
        assert_eq!(lines(&errors), [3, 4, 5, 2, 7, 8, 9], "{errors}");
        assert!(
            errors
                .to_string()
                .contains("/etc/signpost/Corefile:7: directive `loop` is a CoreDNS plugin")
        );
    }

    /// Blocks on one port share a listener; `bind` sets the addresses.
    #[test]
    fn blocks_on_one_port_share_a_listener() {
        let config = parse(
            "cluster.local:5353 {\n    bind 127.0.0.1 ::1\n    kubernetes {\n        catalog c\n    }\n}\nexample.org:5353 {\n    bind 127.0.0.1 ::1\n    log\n}\nother:5354 {\n    log\n}\n",
        )
        .unwrap();
        assert_eq!(config.listeners.len(), 2);
        let shared = &config.listeners[0];
        assert_eq!(shared.zones.len(), 2);
        assert_eq!(shared.addresses.len(), 2);
        assert!(shared.log);
        assert_eq!(shared.kubernetes.len(), 1);
        assert_eq!(
            shared.kubernetes[0].zones,
            [Name::from_ascii("cluster.local").unwrap()]
        );
    }

    /// Admin addresses accept CoreDNS's forms.
    #[test]
    fn admin_addresses() {
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
}
