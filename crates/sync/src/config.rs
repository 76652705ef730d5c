//! From raw flags to typed settings, every problem reported at once, and the
//! provider and registry those settings describe.
//!
//! Control plane, start-up only. Validation follows external-dns v0.22
//! (notes §8.3) with its messages; flags for behaviour signpost does not
//! have yet are rejected by name rather than silently ignored, and the cloud
//! providers not built yet (google, azure, cloudflare and the rest) are
//! accepted on the command line but refused at start-up. Provider
//! credentials come from the mounted Secret (`--credentials-dir`), the
//! environment or the provider's own files, never from a log line.

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
    /// `aws` (Route 53).
    #[cfg(feature = "aws")]
    Aws(crate::provider::aws::AwsConfig),
    /// `azure` / `azure-dns`.
    #[cfg(feature = "azure")]
    Azure(crate::provider::azure::AzureConfig),
    /// `google`.
    #[cfg(feature = "google")]
    Google(crate::provider::google::GoogleConfig),
    /// `cloudflare`.
    #[cfg(feature = "cloudflare")]
    Cloudflare(crate::provider::cloudflare::CloudflareConfig),
}

/// Everything `signpost sync` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The sources.
    pub sources: SourceConfig,
    /// `--catalog` paths; when empty, objects come from the Kubernetes API.
    pub catalog: Vec<PathBuf>,
    /// How to reach the Kubernetes API (when there is no `--catalog`, and
    /// for the Lease).
    pub kubernetes: KubeSettings,
    /// `--leader-elect`: the Lease to hold while writing; `None`: always write.
    pub election: Option<ElectionSettings>,
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
    /// `--health-verdicts`: the verdicts geographic regions follow; `None`: off.
    pub health: Option<HealthSettings>,
}

/// `--health-verdicts*`: where the health controller publishes its verdicts
/// and how sync follows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// The verdict object.
    pub store: VerdictSource,
    /// `--health-verdicts-debounce`.
    pub debounce: Duration,
    /// `--health-verdicts-stale-after`.
    pub stale_after: Duration,
}

/// The object `--health-verdicts` names.
#[derive(Clone, PartialEq, Eq)]
pub enum VerdictSource {
    /// `kubernetes[:NAMESPACE/NAME]`: a ConfigMap, reached as the sources
    /// reach the API server (default `kube-system/signpost-health-verdicts`).
    Kubernetes {
        /// The ConfigMap's namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `etcd[:PREFIX]`: the key `PREFIX/unhealthy` (default prefix
    /// `/signpost/health`), on the cluster of `ETCD_URLS`.
    Etcd {
        /// Client URLs.
        endpoints: Vec<String>,
        /// The prefix with a leading and a trailing slash.
        prefix: String,
        /// `ETCD_USERNAME` and `ETCD_PASSWORD`.
        user: Option<(String, String)>,
    },
}

impl fmt::Debug for VerdictSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kubernetes { namespace, name } => {
                write!(f, "Kubernetes({namespace}/{name})")
            }
            // The password never reaches a log line.
            Self::Etcd {
                endpoints,
                prefix,
                user,
            } => f
                .debug_struct("Etcd")
                .field("endpoints", endpoints)
                .field("prefix", prefix)
                .field("user", &user.as_ref().map(|(name, _)| name))
                .finish(),
        }
    }
}

/// `--health-verdicts`' value: `kubernetes[:NAMESPACE/NAME]` or `etcd[:PREFIX]`.
fn health_settings(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector,
) -> Option<HealthSettings> {
    let value = args.get("health-verdicts").trim();
    if value.is_empty() {
        return None;
    }
    let (kind, object) = value.split_once(':').unwrap_or((value, ""));
    let store = match kind {
        "kubernetes" => {
            let (namespace, name) = if object.is_empty() {
                ("kube-system", "signpost-health-verdicts")
            } else if let Some((namespace, name)) = object
                .split_once('/')
                .filter(|(n, m)| !n.is_empty() && !m.is_empty() && !m.contains('/'))
            {
                (namespace, name)
            } else {
                c.0.push(format!(
                    "--health-verdicts={value}: the ConfigMap must be NAMESPACE/NAME"
                ));
                return None;
            };
            VerdictSource::Kubernetes {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }
        }
        "etcd" => {
            let (endpoints, user) = etcd_connection(env, c);
            let segments: Vec<&str> = (if object.is_empty() {
                "/signpost/health"
            } else {
                object
            })
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
            let prefix = if segments.is_empty() {
                "/".to_owned()
            } else {
                format!("/{}/", segments.join("/"))
            };
            VerdictSource::Etcd {
                endpoints,
                prefix,
                user,
            }
        }
        _ => {
            c.0.push(format!(
                "--health-verdicts={value}: expected kubernetes[:NAMESPACE/NAME] or etcd[:PREFIX]"
            ));
            return None;
        }
    };
    Some(HealthSettings {
        store,
        debounce: c.duration(args, "health-verdicts-debounce"),
        stale_after: c.duration(args, "health-verdicts-stale-after"),
    })
}

/// The etcd cluster of `ETCD_URLS` (default `http://localhost:2379`),
/// `ETCD_USERNAME` and `ETCD_PASSWORD`, as the coredns provider reads them.
fn etcd_connection(
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector,
) -> (Vec<String>, Option<(String, String)>) {
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
    (endpoints, user)
}

/// How `signpost sync` reaches the Kubernetes API server, as external-dns
/// decides it: `--kubeconfig` (or `~/.kube/config` when that exists), with
/// `--server` overriding the URL; neither: the pod's service account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubeSettings {
    /// `--kubeconfig`, or `~/.kube/config` when the flag is empty and the file exists.
    pub kubeconfig: Option<PathBuf>,
    /// `--server`: the API server's URL.
    pub server: Option<String>,
    /// `--namespace`: only this namespace's objects (empty: all).
    pub namespace: String,
    /// Watch Services, EndpointSlices and Nodes (`--source=service`).
    pub services: bool,
    /// Watch Ingresses (`--source=ingress`).
    pub ingresses: bool,
}

/// The Lease `signpost sync` holds while it writes (`--leader-elect*`,
/// client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionSettings {
    /// The Lease's name.
    pub name: String,
    /// Its namespace (empty: the pod's namespace, else `default`).
    pub namespace: String,
    /// How long standbys wait after the last renewal they saw.
    pub lease_duration: Duration,
    /// How long the leader tries to renew before it stops writing.
    pub renew_deadline: Duration,
    /// Time between tries.
    pub retry_period: Duration,
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
    "aws-sd",
    "azure-private-dns",
    "civo",
    "dnsimple",
    "exoscale",
    "gandi",
    "godaddy",
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
    "aws-zone-tags",
    "aws-profile",
    "aws-assume-role",
    "aws-assume-role-external-id",
    "aws-zone-match-parent",
    "cloudflare-custom-hostnames",
    "cloudflare-custom-hostnames-min-tls-version",
    "cloudflare-custom-hostnames-certificate-authority",
    "cloudflare-regional-services",
    "cloudflare-region-key",
    "cloudflare-record-comment",
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
            "--provider={provider_name}: this provider is not built into signpost yet (built: inmemory, rfc2136, pdns, coredns, aws, azure, cloudflare, google)"
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
        geo_region_latency: provider_name == "aws",
    };
    let catalog: Vec<PathBuf> = args.all("catalog").iter().map(PathBuf::from).collect();
    let non_empty = |flag: &str| Some(args.get(flag).to_owned()).filter(|v| !v.is_empty());
    let server = non_empty("server");
    let explicit_kubeconfig = non_empty("kubeconfig").map(PathBuf::from);
    if explicit_kubeconfig.is_some() && server.is_some() {
        c.0.push(
            "--server with --kubeconfig: overriding a kubeconfig's server is not supported; \
             give --server alone, or a kubeconfig whose current context names the server"
                .to_owned(),
        );
    }
    let kubeconfig = explicit_kubeconfig.or_else(|| {
        // external-dns: an empty --kubeconfig means ~/.kube/config when it
        // exists; --server alone connects to that URL instead.
        env("HOME")
            .filter(|_| server.is_none())
            .map(|home| PathBuf::from(home).join(".kube/config"))
            .filter(|path| path.is_file())
    });
    if let Some(url) = server
        .as_ref()
        .filter(|url| !(url.starts_with("https://") || url.starts_with("http://")))
    {
        c.0.push(format!(
            "--server={url}: the API server URL must start with https:// or http://"
        ));
    }
    let election = args.flag("leader-elect").then(|| {
        let election = ElectionSettings {
            name: args.get("leader-elect-resource-name").to_owned(),
            namespace: args.get("leader-elect-resource-namespace").to_owned(),
            lease_duration: c.duration(args, "leader-elect-lease-duration"),
            renew_deadline: c.duration(args, "leader-elect-renew-deadline"),
            retry_period: c.duration(args, "leader-elect-retry-period"),
        };
        // client-go's own checks (leaderelection.NewLeaderElector).
        if election.lease_duration <= election.renew_deadline {
            c.0.push("--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline".to_owned());
        }
        if election.renew_deadline.as_secs_f64() <= 1.2 * election.retry_period.as_secs_f64() {
            c.0.push("--leader-elect-renew-deadline must be greater than 1.2 times --leader-elect-retry-period".to_owned());
        }
        if election.lease_duration < Duration::from_secs(1) || election.retry_period.is_zero() {
            c.0.push("--leader-elect-lease-duration must be at least 1s and --leader-elect-retry-period above 0".to_owned());
        }
        if election.name.is_empty() {
            c.0.push("--leader-elect-resource-name must not be empty".to_owned());
        }
        election
    });
    let kubernetes = KubeSettings {
        kubeconfig,
        server,
        namespace: args.get("namespace").to_owned(),
        services: sources.sources.iter().any(|s| s == "service"),
        ingresses: sources.sources.iter().any(|s| s == "ingress"),
    };

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
            for flag in ["txt-owner-id", "migrate-from-txt-owner"] {
                if let Some(why) = crate::registry::labels::unrepresentable(args.get(flag)) {
                    c.0.push(format!("--{flag} {:?}: {why}", args.get(flag)));
                }
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
    let health = health_settings(args, env, &mut c);
    let (Some(policy), Some(provider)) = (policy, provider) else {
        return Err(ConfigErrors(c.0));
    };
    if !c.0.is_empty() {
        return Err(ConfigErrors(c.0));
    }
    Ok(Settings {
        sources,
        catalog,
        kubernetes,
        election,
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
        health,
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
            let (endpoints, user) = etcd_connection(env, c);
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
        #[cfg(feature = "aws")]
        "aws" => aws_settings(args, env, c, domain_filter).map(ProviderSettings::Aws),
        #[cfg(feature = "azure")]
        "azure" | "azure-dns" => {
            azure_settings(args, env, c, domain_filter).map(ProviderSettings::Azure)
        }
        #[cfg(feature = "google")]
        "google" => google_settings(args, env, c, domain_filter).map(ProviderSettings::Google),
        #[cfg(feature = "cloudflare")]
        "cloudflare" => {
            cloudflare_settings(args, env, c, domain_filter).map(ProviderSettings::Cloudflare)
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

/// Reads one key of the mounted credentials Secret (`--credentials-dir`):
/// `Ok(None)` when the directory or the file is absent.
fn secret_file(args: &SyncArgs, key: &str) -> Result<Option<String>, String> {
    let dir = args.get("credentials-dir");
    if dir.is_empty() {
        return Ok(None);
    }
    let path = std::path::Path::new(dir).join(key);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "--credentials-dir: cannot read {}: {}",
            path.display(),
            e.kind()
        )),
    }
}

/// A positive integer flag.
fn positive(c: &mut Collector, args: &SyncArgs, flag: &str) -> usize {
    match args.get(flag).parse::<usize>() {
        Ok(n) if n >= 1 => n,
        _ => {
            c.0.push(format!(
                "--{flag} {:?}: give a whole number of at least 1",
                args.get(flag)
            ));
            1
        }
    }
}

/// Route 53 access keys, first found wins: the mounted Secret's
/// `aws-access-key-id` / `aws-secret-access-key` (`--credentials-dir`), the
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
/// `AWS_PROFILE` or `default`).
#[cfg(feature = "aws")]
fn aws_credentials(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::provider::aws::AwsCredentials, String> {
    use crate::provider::aws::AwsCredentials;
    let id = secret_file(args, "aws-access-key-id")?;
    let key = secret_file(args, "aws-secret-access-key")?;
    match (id, key) {
        (Some(id), Some(key)) if !id.is_empty() && !key.is_empty() => {
            return Ok(AwsCredentials {
                access_key_id: id,
                secret_access_key: key,
                session_token: None,
                source: format!("the Secret mounted at {}", args.get("credentials-dir")),
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!(
                "--credentials-dir {}: aws-access-key-id and aws-secret-access-key must both be present",
                args.get("credentials-dir")
            ));
        }
        _ => {}
    }
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let (Some(id), Some(key)) = (
        non_empty("AWS_ACCESS_KEY_ID"),
        non_empty("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(AwsCredentials {
            access_key_id: id,
            secret_access_key: key,
            session_token: non_empty("AWS_SESSION_TOKEN"),
            source: "the environment".to_owned(),
        });
    }
    let file = non_empty("AWS_SHARED_CREDENTIALS_FILE")
        .or_else(|| non_empty("HOME").map(|home| format!("{home}/.aws/credentials")));
    let profile = non_empty("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    if let Some(file) = file {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let (id, key, token) = shared_credentials(&text, &profile);
                if let (Some(id), Some(key)) = (id, key) {
                    return Ok(AwsCredentials {
                        access_key_id: id,
                        secret_access_key: key,
                        session_token: token,
                        source: format!("{file} [{profile}]"),
                    });
                }
                return Err(format!(
                    "{file}: profile [{profile}] has no aws_access_key_id and aws_secret_access_key"
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{file}: {}", e.kind())),
        }
    }
    Err("no AWS credentials: mount the Secret's aws-access-key-id and aws-secret-access-key and give --credentials-dir, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or provide a shared credentials file".to_owned())
}

/// One profile of an AWS shared credentials file (INI): key id, secret, token.
#[cfg(feature = "aws")]
fn shared_credentials(
    text: &str,
    profile: &str,
) -> (Option<String>, Option<String>, Option<String>) {
    let (mut id, mut key, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            inside = section == profile || section == format!("profile {profile}");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => key = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    (id, key, token)
}

#[cfg(feature = "aws")]
fn aws_settings(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector,
    domain_filter: &DomainFilter,
) -> Option<crate::provider::aws::AwsConfig> {
    use crate::provider::aws::{AwsConfig, DEFAULT_ENDPOINT, ZoneType};
    let zone_type = match args.get("aws-zone-type") {
        "" => ZoneType::Any,
        "public" => ZoneType::Public,
        "private" => ZoneType::Private,
        other => {
            c.0.push(format!(
                "--aws-zone-type={other}: give public, private or nothing"
            ));
            ZoneType::Any
        }
    };
    let batch_changes = positive(c, args, "aws-batch-change-size");
    let batch_bytes = positive(c, args, "aws-batch-change-size-bytes");
    let batch_values = positive(c, args, "aws-batch-change-size-values");
    let api_retries = match args.get("aws-api-retries").parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            c.0.push(format!(
                "--aws-api-retries {:?}: give a whole number",
                args.get("aws-api-retries")
            ));
            0
        }
    };
    if args.given("aws-zones-cache-duration") {
        tracing::warn!(
            "--aws-zones-cache-duration has no effect: hosted zones are listed on every run"
        );
    }
    let endpoint = env("AWS_ENDPOINT_URL_ROUTE_53")
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let credentials = c.check(aws_credentials(args, env))?;
    Some(AwsConfig {
        endpoint,
        credentials,
        zone_type,
        zone_ids: args.all("zone-id-filter").to_vec(),
        batch_changes,
        batch_bytes,
        batch_values,
        batch_interval: c.duration(args, "aws-batch-change-interval"),
        evaluate_target_health: args.flag("aws-evaluate-target-health"),
        api_retries,
        prefer_cname: args.flag("aws-prefer-cname"),
        domain_filter: domain_filter.clone(),
        tls: crate::provider::http::TlsFiles {
            skip_verify: false,
            ca: args.get("tls-ca").to_owned(),
            client_cert: args.get("tls-client-cert").to_owned(),
            client_key: args.get("tls-client-cert-key").to_owned(),
        },
    })
}

/// The Cloudflare API token, first found wins: the mounted Secret's
/// `cloudflare-api-token` (`--credentials-dir`), then `CF_API_TOKEN` (a
/// `file:/path` value names a file holding it, as in external-dns).
#[cfg(feature = "cloudflare")]
fn cloudflare_token(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String), String> {
    if let Some(token) = secret_file(args, "cloudflare-api-token")?.filter(|t| !t.is_empty()) {
        return Ok((
            token,
            format!("the Secret mounted at {}", args.get("credentials-dir")),
        ));
    }
    if let Some(value) = env("CF_API_TOKEN").filter(|v| !v.is_empty()) {
        if let Some(path) = value.strip_prefix("file:") {
            let token = std::fs::read_to_string(path)
                .map_err(|e| format!("CF_API_TOKEN: cannot read {path}: {}", e.kind()))?;
            return Ok((token.trim().to_owned(), path.to_owned()));
        }
        return Ok((value.trim().to_owned(), "the environment".to_owned()));
    }
    if env("CF_API_KEY").is_some_and(|v| !v.is_empty()) {
        return Err("CF_API_KEY and CF_API_EMAIL (the global API key) are not supported: create an API token with Zone:Read and DNS:Edit and give it as the Secret's cloudflare-api-token or CF_API_TOKEN".to_owned());
    }
    Err("no Cloudflare credentials: mount the Secret's cloudflare-api-token and give --credentials-dir, or set CF_API_TOKEN".to_owned())
}

#[cfg(feature = "cloudflare")]
fn cloudflare_settings(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector,
    domain_filter: &DomainFilter,
) -> Option<crate::provider::cloudflare::CloudflareConfig> {
    use crate::provider::cloudflare::{CloudflareConfig, DEFAULT_ENDPOINT};
    let per_page = match args.get("cloudflare-dns-records-per-page").parse::<usize>() {
        Ok(n) if (5..=5000).contains(&n) => n,
        _ => {
            c.0.push(format!(
                "--cloudflare-dns-records-per-page {:?}: give a number from 5 to 5000",
                args.get("cloudflare-dns-records-per-page")
            ));
            100
        }
    };
    let batch_size = positive(c, args, "batch-change-size");
    let prefix = args
        .all("annotation-prefix")
        .first()
        .cloned()
        .unwrap_or_else(|| "external-dns.kubernetes.io/".to_owned());
    let endpoint = env("CF_API_BASE_URL")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let (token, token_source) = c.check(cloudflare_token(args, env))?;
    Some(CloudflareConfig {
        endpoint,
        token,
        token_source,
        proxied: args.flag("cloudflare-proxied"),
        proxied_property: format!("{prefix}cloudflare-proxied"),
        per_page,
        batch_size,
        zone_ids: args.all("zone-id-filter").to_vec(),
        domain_filter: domain_filter.clone(),
        tls: crate::provider::http::TlsFiles {
            skip_verify: false,
            ca: args.get("tls-ca").to_owned(),
            client_cert: args.get("tls-client-cert").to_owned(),
            client_key: args.get("tls-client-cert-key").to_owned(),
        },
    })
}

/// external-dns's Azure config file (`--azure-config-file`), the fields
/// signpost reads.
#[cfg(feature = "azure")]
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzureFile {
    #[serde(default)]
    cloud: String,
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    subscription_id: String,
    #[serde(default)]
    resource_group: String,
    #[serde(default)]
    aad_client_id: String,
    #[serde(default)]
    aad_client_secret: String,
    #[serde(default)]
    use_managed_identity_extension: bool,
    #[serde(default)]
    use_workload_identity_extension: bool,
    #[serde(default)]
    active_directory_authority_host: String,
    #[serde(default)]
    resource_manager_endpoint: String,
}

/// Azure settings, each field first found: the mounted Secret
/// (`azure-tenant-id`, `azure-client-id`, `azure-client-secret`), the flags
/// (`--azure-subscription-id`, `--azure-resource-group`), the config file,
/// the environment (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
/// `AZURE_CLIENT_SECRET`, `AZURE_SUBSCRIPTION_ID`).
#[cfg(feature = "azure")]
fn azure_settings(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector,
    domain_filter: &DomainFilter,
) -> Option<crate::provider::azure::AzureConfig> {
    use crate::provider::azure::{AzureConfig, DEFAULT_AUTHORITY, DEFAULT_RESOURCE_MANAGER};
    let path = args.get("azure-config-file");
    let file = match std::fs::read_to_string(path) {
        Ok(text) => c
            .check(serde_json::from_str::<AzureFile>(&text).map_err(|e| {
                format!("--azure-config-file {path}: line {} column {}: not valid external-dns Azure JSON ({:?} error)", e.line(), e.column(), e.classify())
            }))
            .unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !args.given("azure-config-file") => AzureFile::default(),
        Err(e) => {
            c.0.push(format!("--azure-config-file {path}: {}", e.kind()));
            AzureFile::default()
        }
    };
    if file.use_managed_identity_extension || file.use_workload_identity_extension {
        c.0.push(format!("--azure-config-file {path}: managed and workload identities are not supported yet; use a client id and secret"));
    }
    if !matches!(file.cloud.as_str(), "" | "AzurePublicCloud" | "AzureCloud")
        && file.resource_manager_endpoint.is_empty()
    {
        c.0.push(format!("--azure-config-file {path}: cloud {:?} needs resourceManagerEndpoint and activeDirectoryAuthorityHost", file.cloud));
    }
    let non_empty = |value: String| Some(value).filter(|v| !v.is_empty());
    let mut pick = |secret: &str, flag: Option<&str>, from_file: &str, variable: &str| -> String {
        let from_secret = match secret_file(args, secret) {
            Ok(value) => value.filter(|v| !v.is_empty()),
            Err(e) => {
                c.0.push(e);
                None
            }
        };
        from_secret
            .or_else(|| flag.and_then(|f| non_empty(args.get(f).to_owned())))
            .or_else(|| non_empty(from_file.to_owned()))
            .or_else(|| env(variable).filter(|v| !v.is_empty()))
            .unwrap_or_default()
    };
    let tenant_id = pick("azure-tenant-id", None, &file.tenant_id, "AZURE_TENANT_ID");
    let client_id = pick(
        "azure-client-id",
        None,
        &file.aad_client_id,
        "AZURE_CLIENT_ID",
    );
    let client_secret = pick(
        "azure-client-secret",
        None,
        &file.aad_client_secret,
        "AZURE_CLIENT_SECRET",
    );
    let subscription_id = pick(
        "azure-subscription-id",
        Some("azure-subscription-id"),
        &file.subscription_id,
        "AZURE_SUBSCRIPTION_ID",
    );
    let resource_group = pick(
        "azure-resource-group",
        Some("azure-resource-group"),
        &file.resource_group,
        "AZURE_RESOURCE_GROUP",
    );
    for (value, what) in [
        (
            &tenant_id,
            "tenant id (Secret key azure-tenant-id, tenantId, AZURE_TENANT_ID)",
        ),
        (
            &client_id,
            "client id (Secret key azure-client-id, aadClientId, AZURE_CLIENT_ID)",
        ),
        (
            &client_secret,
            "client secret (Secret key azure-client-secret, aadClientSecret, AZURE_CLIENT_SECRET)",
        ),
        (
            &subscription_id,
            "subscription (--azure-subscription-id, subscriptionId, AZURE_SUBSCRIPTION_ID)",
        ),
        (
            &resource_group,
            "resource group (--azure-resource-group, resourceGroup)",
        ),
    ] {
        if value.is_empty() {
            c.0.push(format!("azure: no {what}"));
        }
    }
    let authority = non_empty(file.active_directory_authority_host.clone())
        .or_else(|| env("AZURE_AUTHORITY_HOST").filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned())
        .trim_end_matches('/')
        .to_owned();
    let resource_manager = non_empty(file.resource_manager_endpoint.clone())
        .or_else(|| env("AZURE_RESOURCE_MANAGER_ENDPOINT").filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_RESOURCE_MANAGER.to_owned())
        .trim_end_matches('/')
        .to_owned();
    let max_retries = match args.get("azure-maxretries-count").parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            c.0.push("--azure-maxretries-count: give a whole number".to_owned());
            3
        }
    };
    Some(AzureConfig {
        authority,
        resource_manager,
        tenant_id,
        client_id,
        client_secret,
        subscription_id,
        resource_group,
        zone_names: args.all("zone-name-filter").to_vec(),
        max_retries,
        domain_filter: domain_filter.clone(),
        tls: crate::provider::http::TlsFiles {
            skip_verify: false,
            ca: args.get("tls-ca").to_owned(),
            client_cert: args.get("tls-client-cert").to_owned(),
            client_key: args.get("tls-client-cert-key").to_owned(),
        },
    })
}

/// Google settings: the service-account key from the mounted Secret
/// (`key.json` under `--credentials-dir`) or `GOOGLE_APPLICATION_CREDENTIALS`;
/// the project from `--google-project`, else the key's `project_id`.
#[cfg(feature = "google")]
fn google_settings(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector,
    domain_filter: &DomainFilter,
) -> Option<crate::provider::google::GoogleConfig> {
    use crate::provider::google::{DEFAULT_ENDPOINT, GoogleConfig, ServiceAccount};
    let visibility = args.get("google-zone-visibility").to_owned();
    if !matches!(visibility.as_str(), "" | "public" | "private") {
        c.0.push(format!(
            "--google-zone-visibility={visibility}: give public, private or nothing"
        ));
    }
    let batch_size = positive(c, args, "google-batch-change-size");
    let batch_interval = c.duration(args, "google-batch-change-interval");
    let dir = args.get("credentials-dir");
    let mounted = std::path::Path::new(dir).join("key.json");
    let path = if !dir.is_empty() && mounted.exists() {
        mounted.display().to_string()
    } else if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
        path
    } else {
        c.0.push("no Google credentials: mount the Secret's key.json and give --credentials-dir, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (the metadata server is not supported yet)".to_owned());
        return None;
    };
    let text =
        c.check(std::fs::read_to_string(&path).map_err(|e| format!("{path}: {}", e.kind())))?;
    let account = c.check(serde_json::from_str::<ServiceAccount>(&text).map_err(|e| {
        format!(
            "{path}: line {} column {}: not a service-account key ({:?} error)",
            e.line(),
            e.column(),
            e.classify()
        )
    }))?;
    if account.kind != "service_account" {
        c.0.push(format!(
            "{path}: type {:?} is not supported (give a service_account key)",
            account.kind
        ));
    }
    let project = match args.get("google-project") {
        "" => account.project_id.clone(),
        project => project.to_owned(),
    };
    if project.is_empty() {
        c.0.push("--google-project is required (the key file names no project_id)".to_owned());
    }
    let endpoint = env("CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS")
        .filter(|v| !v.is_empty())
        .map(|v| v.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    Some(GoogleConfig {
        endpoint,
        account,
        project,
        visibility,
        batch_size,
        batch_interval,
        zone_ids: args.all("zone-id-filter").to_vec(),
        domain_filter: domain_filter.clone(),
        tls: crate::provider::http::TlsFiles {
            skip_verify: false,
            ca: args.get("tls-ca").to_owned(),
            client_cert: args.get("tls-client-cert").to_owned(),
            client_key: args.get("tls-client-cert-key").to_owned(),
        },
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
        #[cfg(feature = "aws")]
        ProviderSettings::Aws(config) => Arc::new(crate::provider::aws::Aws::new(config.clone())?),
        #[cfg(feature = "azure")]
        ProviderSettings::Azure(config) => {
            Arc::new(crate::provider::azure::Azure::new(config.clone())?)
        }
        #[cfg(feature = "google")]
        ProviderSettings::Google(config) => {
            Arc::new(crate::provider::google::Google::new(config.clone())?)
        }
        #[cfg(feature = "cloudflare")]
        ProviderSettings::Cloudflare(config) => Arc::new(
            crate::provider::cloudflare::Cloudflare::new(config.clone())?,
        ),
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
