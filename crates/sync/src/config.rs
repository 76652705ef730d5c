//! From raw flags to typed settings, every problem reported at once, and the
//! provider and registry those settings describe.
//!
//! Control plane, start-up only. Validation follows external-dns v0.22
//! (notes §8.3) with its messages; flags for behaviour signpost does not
//! have yet are rejected by name rather than silently ignored, and the cloud
//! providers (aws, google, azure, cloudflare and the rest) are accepted on
//! the command line but refused at start-up as not built yet.

use crate::controller::{PlanSettings, Schedule};
use crate::endpoint::RecordType;
use crate::filter::{DomainFilter, ManagedTypes};
use crate::flags::SyncArgs;
use crate::plan::Policy;
use crate::provider::Provider;
use crate::registry::Registry;
use crate::registry::crypto::AesKey;
use crate::registry::names::TxtNames;
use crate::registry::noop::NoopRegistry;
use crate::registry::txt::{TxtConfig, TxtRegistry};
use crate::source::common::SourceConfig;
use crate::source::selector::Selector;
use crate::source::template::Template;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which provider, with its settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProviderSettings {
    /// `inmemory` with its zones.
    #[cfg(feature = "inmemory")]
    InMemory(Vec<String>),
    /// `rfc2136`.
    #[cfg(feature = "rfc2136")]
    Rfc2136(crate::provider::rfc2136::Rfc2136Config),
    /// `pdns`.
    #[cfg(feature = "pdns")]
    Pdns(crate::provider::pdns::PdnsConfig),
    /// `coredns` / `skydns`.
    #[cfg(feature = "coredns")]
    CoreDns(crate::provider::coredns::CoreDnsConfig),
}

/// Everything `signpost sync` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The sources.
    pub sources: SourceConfig,
    /// `--catalog` paths.
    pub catalog: Vec<PathBuf>,
    /// The provider.
    pub provider: ProviderSettings,
    /// `None` for `--registry=noop`.
    pub txt: Option<TxtConfig>,
    /// The planner's settings.
    pub plan: PlanSettings,
    /// When to run.
    pub schedule: Schedule,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--min-ttl` in seconds.
    pub min_ttl: u32,
    /// `--metrics-address`.
    pub metrics_address: SocketAddr,
    /// `--log-level` as a tracing filter.
    pub log_filter: &'static str,
    /// `--log-format=json`.
    pub log_json: bool,
}

/// Every configuration problem; the binary exits 64 with them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// Providers external-dns v0.22 has and signpost does not build yet.
const NOT_BUILT: &[&str] = &[
    "alibabacloud",
    "aws",
    "aws-sd",
    "azure",
    "azure-dns",
    "azure-private-dns",
    "civo",
    "cloudflare",
    "dnsimple",
    "exoscale",
    "gandi",
    "godaddy",
    "google",
    "linode",
    "ns1",
    "oci",
    "ovh",
    "pihole",
    "scaleway",
    "webhook",
];

/// Flags whose behaviour signpost does not have yet: giving one is an error.
const UNSUPPORTED: &[&str] = &[
    "create-ptr",
    "prefer-alias",
    "events-emit",
    "target-template",
    "fqdn-target-template",
    "resolve-service-load-balancer-hostname",
    "default-targets",
    "force-default-targets",
    "target-net-filter",
    "exclude-target-net",
    "nat64-networks",
    "compatibility",
    "provider-cache-time",
    "rfc2136-use-tls",
    "rfc2136-skip-tls-verify",
    "rfc2136-gss-tsig",
    "rfc2136-kerberos-username",
    "rfc2136-kerberos-password",
    "rfc2136-kerberos-realm",
];

struct Collector(Vec<String>);

impl Collector {
    fn check<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    fn duration(&mut self, args: &SyncArgs, flag: &str) -> Duration {
        let value = args.get(flag);
        self.check(crate::duration::parse(value).map_err(|e| format!("--{flag}: {e}")))
            .unwrap_or_default()
    }
}

fn seconds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

/// Typed settings from the flags; `env` reads the environment (`ETCD_*`).
pub fn settings(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigErrors> {
    let mut c = Collector(Vec::new());
    if args.all("source").is_empty() {
        c.0.push("no sources specified".to_owned());
    }
    for source in args.all("source") {
        if !matches!(source.as_str(), "service" | "ingress") {
            c.0.push(format!(
                "--source={source} is not supported yet (supported: service, ingress)"
            ));
        }
    }
    let provider_name = args.get("provider");
    if provider_name.is_empty() {
        c.0.push("no provider specified".to_owned());
    } else if NOT_BUILT.contains(&provider_name) {
        c.0.push(format!(
            "--provider={provider_name}: this provider is not built into signpost yet (built: inmemory, rfc2136, pdns, coredns)"
        ));
    }
    let policy = match args.get("policy") {
        "" => {
            c.0.push(
                "--policy must be set explicitly (one of: sync, upsert-only, create-only)"
                    .to_owned(),
            );
            None
        }
        value => c.check(
            value
                .parse::<Policy>()
                .map_err(|e| format!("--policy: {e}")),
        ),
    };
    for flag in UNSUPPORTED {
        if args.given(flag) {
            c.0.push(format!("--{flag} is not supported by signpost yet"));
        }
    }
    if args.given("txt-new-format-only") {
        tracing::warn!(
            "--txt-new-format-only has no effect: only the typed TXT format is written (external-dns v0.18 and later)"
        );
    }
    let log_json = match args.get("log-format") {
        "text" => false,
        "json" => true,
        other => {
            c.0.push(format!("unsupported log format: {other}"));
            false
        }
    };
    let log_filter = match args.get("log-level") {
        "panic" | "fatal" | "error" => "error",
        "warning" => "warn",
        "info" => "info",
        "debug" => "debug",
        "trace" => "trace",
        other => {
            c.0.push(format!("--log-level: unknown level {other:?}"));
            "info"
        }
    };

    // Sources.
    let mut prefixes = args.all("annotation-prefix").to_vec();
    for prefix in &prefixes {
        if prefix.is_empty() {
            c.0.push("--annotation-prefix cannot be empty".to_owned());
        } else if !prefix.ends_with('/') {
            c.0.push("--annotation-prefix must end with '/'".to_owned());
        }
    }
    prefixes.dedup();
    let selector = |c: &mut Collector, flag: &str| {
        c.check(
            Selector::parse(args.get(flag))
                .map_err(|_| format!("--{flag} does not specify a valid label selector")),
        )
        .unwrap_or_default()
    };
    let annotation_filter = selector(&mut c, "annotation-filter");
    let label_filter = selector(&mut c, "label-filter");
    let templates = args.all("fqdn-template");
    let fqdn_template = if templates.is_empty() {
        None
    } else {
        c.check(Template::parse(templates).map_err(|e| e.to_string()))
    };
    if args.flag("ignore-hostname-annotation") && templates.is_empty() {
        c.0.push("FQDN Template must be set if ignoring annotations".to_owned());
    }
    let ingress_class = args.all("ingress-class").to_vec();
    if !ingress_class.is_empty() && annotation_filter.mentions("kubernetes.io/ingress.class") {
        c.0.push("--ingress-class is mutually exclusive with the kubernetes.io/ingress.class annotation filter".to_owned());
    }
    for service_type in args.all("service-type-filter") {
        if !matches!(
            service_type.as_str(),
            "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
        ) {
            c.0.push(format!(
                "--service-type-filter: unknown service type {service_type:?}"
            ));
        }
    }
    let sources = SourceConfig {
        sources: args.all("source").to_vec(),
        annotation_prefixes: prefixes,
        namespace: args.get("namespace").to_owned(),
        annotation_filter,
        label_filter,
        fqdn_template,
        combine_fqdn_annotation: args.flag("combine-fqdn-annotation"),
        ignore_hostname_annotation: args.flag("ignore-hostname-annotation"),
        publish_internal_services: args.flag("publish-internal-services"),
        publish_host_ip: args.flag("publish-host-ip"),
        always_publish_not_ready_addresses: args.flag("always-publish-not-ready-addresses"),
        service_type_filter: args.all("service-type-filter").to_vec(),
        exclude_unschedulable: args.flag("exclude-unschedulable"),
        expose_internal_ipv6: args.flag("expose-internal-ipv6"),
        ingress_class,
        ignore_ingress_tls_spec: args.flag("ignore-ingress-tls-spec"),
        ignore_ingress_rules_spec: args.flag("ignore-ingress-rules-spec"),
    };
    let catalog: Vec<PathBuf> = args.all("catalog").iter().map(PathBuf::from).collect();
    if catalog.is_empty() {
        c.0.push(
            "no source of Kubernetes objects: give --catalog PATH (the Kubernetes API source is not built into this version yet)"
                .to_owned(),
        );
    }

    // Planner.
    let types = |c: &mut Collector, flag: &str| -> Vec<RecordType> {
        args.all(flag)
            .iter()
            .filter_map(|t| {
                c.check(
                    t.parse::<RecordType>()
                        .map_err(|e| format!("--{flag}: {e}")),
                )
            })
            .collect()
    };
    let managed = ManagedTypes::new(
        &types(&mut c, "managed-record-types"),
        &types(&mut c, "exclude-record-types"),
    );
    let domain_filter = c
        .check(
            DomainFilter::from_flags(
                args.all("domain-filter"),
                args.all("exclude-domains"),
                args.get("regex-domain-filter"),
                args.get("regex-domain-exclusion"),
            )
            .map_err(|e| format!("{e}: {}", e.source)),
        )
        .unwrap_or_default();

    // Registry.
    let owner_id = args.get("txt-owner-id").to_owned();
    let txt = match args.get("registry") {
        "noop" => None,
        "txt" => {
            if owner_id.is_empty() {
                c.0.push("owner id cannot be empty".to_owned());
            }
            let names = c.check(
                TxtNames::new(
                    args.get("txt-prefix"),
                    args.get("txt-suffix"),
                    args.get("txt-wildcard-replacement"),
                )
                .map_err(|e| e.to_string()),
            );
            let key_text = args.get("txt-encrypt-aes-key");
            let key = if key_text.is_empty() {
                None
            } else {
                c.check(AesKey::parse(key_text).map_err(|e| e.to_string()))
            };
            let encrypt = args.flag("txt-encrypt-enabled");
            if encrypt && key_text.is_empty() {
                c.0.push("--txt-encrypt-enabled needs --txt-encrypt-aes-key".to_owned());
            }
            Some(TxtConfig {
                owner_id: owner_id.clone(),
                names: names.unwrap_or_default(),
                key,
                encrypt,
                cache_interval: c.duration(args, "txt-cache-interval"),
                managed: managed.clone(),
                old_owner_id: args.get("migrate-from-txt-owner").to_owned(),
            })
        }
        other => {
            c.0.push(format!(
                "--registry={other} is not supported (supported: txt, noop)"
            ));
            None
        }
    };

    let schedule = Schedule {
        interval: c.duration(args, "interval"),
        once: args.flag("once"),
        events: args.flag("events"),
        min_event_sync_interval: c.duration(args, "min-event-sync-interval"),
    };
    if schedule.interval.is_zero() && !schedule.once {
        c.0.push("--interval must be greater than 0".to_owned());
    }
    let min_ttl = seconds(c.duration(args, "min-ttl"));
    let metrics_address = c
        .check(parse_listen(args.get("metrics-address")))
        .unwrap_or_else(|| ([127, 0, 0, 1], 7979).into());

    let provider = provider_settings(args, env, &mut c, &domain_filter, &owner_id);
    let (Some(policy), Some(provider)) = (policy, provider) else {
        return Err(ConfigErrors(c.0));
    };
    if !c.0.is_empty() {
        return Err(ConfigErrors(c.0));
    }
    Ok(Settings {
        sources,
        catalog,
        provider,
        txt,
        plan: PlanSettings {
            policy,
            domain_filter,
            managed,
            old_owner_id: args.get("migrate-from-txt-owner").to_owned(),
        },
        schedule,
        dry_run: args.flag("dry-run"),
        min_ttl,
        metrics_address,
        log_filter,
        log_json,
    })
}

/// `:7979`, `0.0.0.0:7979`, `[::1]:7979`.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    full.parse()
        .map_err(|_| format!("--metrics-address {text:?} is not HOST:PORT"))
}

#[allow(unused_variables)]
fn provider_settings(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector,
    domain_filter: &DomainFilter,
    owner_id: &str,
) -> Option<ProviderSettings> {
    match args.get("provider") {
        #[cfg(feature = "inmemory")]
        "inmemory" => Some(ProviderSettings::InMemory(
            args.all("inmemory-zone").to_vec(),
        )),
        #[cfg(feature = "rfc2136")]
        "rfc2136" => rfc2136_settings(args, c).map(ProviderSettings::Rfc2136),
        #[cfg(feature = "pdns")]
        "pdns" => {
            let api_key = args.get("pdns-api-key").to_owned();
            if api_key.is_empty() {
                c.0.push("missing API Key for PDNS. Specify using --pdns-api-key=".to_owned());
            }
            Some(ProviderSettings::Pdns(crate::provider::pdns::PdnsConfig {
                server: args.get("pdns-server").to_owned(),
                server_id: args.get("pdns-server-id").to_owned(),
                api_key,
                skip_tls_verify: args.flag("pdns-skip-tls-verify"),
                tls_ca: args.get("tls-ca").to_owned(),
                tls_client_cert: args.get("tls-client-cert").to_owned(),
                tls_client_key: args.get("tls-client-cert-key").to_owned(),
                domain_filter: domain_filter.clone(),
            }))
        }
        #[cfg(feature = "coredns")]
        "coredns" | "skydns" => {
            let urls = env("ETCD_URLS").unwrap_or_else(|| "http://localhost:2379".to_owned());
            let endpoints: Vec<String> = urls
                .split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect();
            if endpoints.first().is_some_and(|u| u.starts_with("https://")) {
                c.0.push("ETCD_URLS: TLS to etcd is not supported by signpost yet (use http:// on a trusted network)".to_owned());
            } else if !endpoints.iter().all(|u| u.starts_with("http://")) {
                c.0.push(format!(
                    "ETCD_URLS {urls:?}: every URL must start with http://"
                ));
            }
            let user = match (env("ETCD_USERNAME"), env("ETCD_PASSWORD")) {
                (Some(user), Some(password)) if !user.is_empty() => Some((user, password)),
                _ => None,
            };
            Some(ProviderSettings::CoreDns(
                crate::provider::coredns::CoreDnsConfig {
                    endpoints,
                    user,
                    prefix: args.get("coredns-prefix").to_owned(),
                    strictly_owned: args
                        .flag("coredns-strictly-owned")
                        .then(|| owner_id.to_owned()),
                },
            ))
        }
        "" => None,
        other if NOT_BUILT.contains(&other) => None,
        other => {
            c.0.push(format!("--provider={other}: unknown provider"));
            None
        }
    }
}

#[cfg(feature = "rfc2136")]
fn rfc2136_settings(
    args: &SyncArgs,
    c: &mut Collector,
) -> Option<crate::provider::rfc2136::Rfc2136Config> {
    use crate::provider::rfc2136::{Rfc2136Config, Strategy};
    use signpost_proto::tsig::{Algorithm, Key};
    let port = args.get("rfc2136-port");
    let port: u16 = match port.parse() {
        Ok(0) | Err(_) => {
            c.0.push(format!(
                "--rfc2136-port {port:?}: give the server's port (such as 53)"
            ));
            0
        }
        Ok(port) => port,
    };
    let hosts = args.all("rfc2136-host");
    if hosts.is_empty() {
        c.0.push("--rfc2136-host is required".to_owned());
    }
    let servers = hosts
        .iter()
        .map(|host| {
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        })
        .collect();
    let insecure = args.flag("rfc2136-insecure");
    let key = if insecure {
        None
    } else {
        let algorithm_name = args.get("rfc2136-tsig-secret-alg");
        let algorithm =
            Algorithm::from_name(algorithm_name).filter(|_| !algorithm_name.ends_with('.'));
        if algorithm.is_none() {
            c.0.push(format!("{algorithm_name} is not supported TSIG algorithm"));
        }
        let name = args.get("rfc2136-tsig-keyname");
        let name = c.check(
            signpost_proto::Name::from_ascii(name)
                .map_err(|e| format!("--rfc2136-tsig-keyname: {e}")),
        );
        let secret = args.get("rfc2136-tsig-secret");
        if secret.is_empty() {
            c.0.push("--rfc2136-tsig-secret is required unless --rfc2136-insecure".to_owned());
        }
        match (name, algorithm) {
            (Some(name), Some(algorithm)) if !secret.is_empty() => c.check(
                Key::new(&name, algorithm, secret)
                    .map_err(|_| "--rfc2136-tsig-secret is not valid base64".to_owned()),
            ),
            _ => None,
        }
    };
    let batch_size = match args.get("rfc2136-batch-change-size").parse::<usize>() {
        Ok(size) if size >= 1 => size,
        _ => {
            c.0.push("batch size specified for rfc2136 cannot be less than 1".to_owned());
            1
        }
    };
    let strategy = match args.get("rfc2136-load-balancing-strategy") {
        "disabled" => Strategy::Disabled,
        "round-robin" => Strategy::RoundRobin,
        "random" => Strategy::Random,
        other => {
            c.0.push(format!(
                "--rfc2136-load-balancing-strategy: unknown strategy {other:?}"
            ));
            Strategy::Disabled
        }
    };
    let axfr = args.flag("rfc2136-axfr") || args.flag("rfc2136-tsig-axfr");
    if !axfr && args.get("policy") != "create-only" {
        tracing::warn!(
            "without --rfc2136-axfr no records can be read, so nothing is ever updated or deleted"
        );
    }
    let min_ttl = seconds(c.duration(args, "rfc2136-min-ttl"));
    Some(Rfc2136Config {
        servers,
        zones: args
            .all("rfc2136-zone")
            .iter()
            .map(|z| z.trim_end_matches('.').to_owned())
            .collect(),
        key,
        axfr,
        min_ttl,
        batch_size,
        strategy,
    })
}

/// The provider `settings` describe.
pub fn build_provider(settings: &ProviderSettings) -> Result<Arc<dyn Provider>, String> {
    Ok(match settings {
        #[cfg(feature = "inmemory")]
        ProviderSettings::InMemory(zones) => {
            Arc::new(crate::provider::inmemory::InMemory::new(zones))
        }
        #[cfg(feature = "rfc2136")]
        ProviderSettings::Rfc2136(config) => {
            Arc::new(crate::provider::rfc2136::Rfc2136::new(config.clone())?)
        }
        #[cfg(feature = "pdns")]
        ProviderSettings::Pdns(config) => {
            Arc::new(crate::provider::pdns::Pdns::new(config.clone())?)
        }
        #[cfg(feature = "coredns")]
        ProviderSettings::CoreDns(config) => {
            Arc::new(crate::provider::coredns::CoreDns::new(config.clone()))
        }
    })
}

/// The registry over `provider`.
pub fn build_registry(txt: Option<&TxtConfig>, provider: Arc<dyn Provider>) -> Box<dyn Registry> {
    match txt {
        Some(config) => Box::new(TxtRegistry::new(provider, config.clone())),
        None => Box::new(NoopRegistry::new(provider)),
    }
}

#[cfg(test)]
mod tests;
