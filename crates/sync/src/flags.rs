//! external-dns's command line, as `signpost sync` accepts it.
//!
//! Control plane, start-up only. Every flag of external-dns v0.22 that a
//! deployment of the providers and sources signpost knows may carry is
//! accepted as written (kingpin syntax, notes §8.1):
//!
//! - `--flag=value` and `--flag value`; booleans as `--flag`, `--no-flag`
//!   (and `--flag=true|false`, which kingpin rejects but is harmless);
//! - repeatable flags take one value per occurrence and are **not** split on
//!   commas (`--domain-filter=a.com,b.com` is one entry, as in external-dns);
//! - every flag also reads `EXTERNAL_DNS_<NAME>` from the environment (one
//!   value per line for repeatable flags); the command line wins.
//!
//! Flags are a table ([`FLAGS`]) rather than a derive, because there are
//! well over a hundred; [`SyncArgs`] holds the raw values and
//! [`crate::config`] turns them into typed settings, reporting every problem
//! at once. Secret flags are marked; their values never reach a log line,
//! an error message or `--help` (environment values hidden).

use clap::{Arg, ArgAction, ArgMatches, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;

/// How a flag takes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value; the last occurrence wins.
    Single,
    /// One value per occurrence.
    Repeated,
    /// `--flag`, `--no-flag`, `--flag=true|false`.
    Bool,
}

/// One flag of the table.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The long name without dashes.
    pub name: &'static str,
    /// How it takes values.
    pub kind: Kind,
    /// Default values (none: unset).
    pub default: &'static [&'static str],
    /// Whether the value is a secret (never logged).
    pub secret: bool,
    /// One line of help.
    pub help: &'static str,
}

const fn single(name: &'static str, default: &'static [&'static str], help: &'static str) -> Flag {
    Flag {
        name,
        kind: Kind::Single,
        default,
        secret: false,
        help,
    }
}
const fn repeated(
    name: &'static str,
    default: &'static [&'static str],
    help: &'static str,
) -> Flag {
    Flag {
        name,
        kind: Kind::Repeated,
        default,
        secret: false,
        help,
    }
}
const fn boolean(name: &'static str, default: bool, help: &'static str) -> Flag {
    Flag {
        name,
        kind: Kind::Bool,
        default: if default { &["true"] } else { &["false"] },
        secret: false,
        help,
    }
}
const fn secret(name: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        kind: Kind::Single,
        default: &[""],
        secret: true,
        help,
    }
}

/// Every flag `signpost sync` accepts.
pub const FLAGS: &[Flag] = &[
    // Core.
    repeated(
        "source",
        &[],
        "The resource types queried for endpoints: service, ingress (repeatable)",
    ),
    single(
        "provider",
        &[],
        "The DNS provider: inmemory, rfc2136, pdns, coredns (skydns), aws, cloudflare",
    ),
    single(
        "policy",
        &[],
        "Which changes to apply: sync, upsert-only, create-only (required, as in external-dns v0.22)",
    ),
    single("registry", &["txt"], "The ownership registry: txt, noop"),
    single(
        "txt-owner-id",
        &["default"],
        "This instance's owner id in TXT records",
    ),
    single(
        "txt-prefix",
        &[""],
        "Prefix of ownership TXT names; may contain %{record_type}",
    ),
    single(
        "txt-suffix",
        &[""],
        "Suffix of ownership TXT names; may contain %{record_type}",
    ),
    single(
        "txt-wildcard-replacement",
        &[""],
        "Replaces a leading * in ownership TXT names",
    ),
    boolean(
        "txt-encrypt-enabled",
        false,
        "Write ownership TXT values encrypted (AES-256-GCM)",
    ),
    secret(
        "txt-encrypt-aes-key",
        "32-byte key (raw or standard base64) for TXT encryption",
    ),
    single(
        "txt-cache-interval",
        &["0s"],
        "Serve registry reads from a cache this old at most (0s: off)",
    ),
    single(
        "migrate-from-txt-owner",
        &[""],
        "Adopt records owned by this old owner id",
    ),
    boolean(
        "txt-new-format-only",
        false,
        "Accepted for external-dns v0.16-v0.17 manifests; has no effect",
    ),
    single(
        "interval",
        &["1m"],
        "Time between reconciliations (start to start)",
    ),
    boolean(
        "once",
        false,
        "Run one reconciliation and exit (0 on success, 1 on failure)",
    ),
    boolean(
        "dry-run",
        false,
        "Plan and print the changes, write nothing",
    ),
    // Leader election (signpost; external-dns runs one replica). The names
    // are the Kubernetes components' own --leader-elect* flags.
    boolean(
        "leader-elect",
        false,
        "signpost: write only while holding a coordination.k8s.io/v1 Lease, so several replicas can run",
    ),
    single(
        "leader-elect-resource-name",
        &["signpost-sync"],
        "signpost: name of the Lease",
    ),
    single(
        "leader-elect-resource-namespace",
        &[""],
        "signpost: namespace of the Lease (empty: the pod's namespace, else default)",
    ),
    single(
        "leader-elect-lease-duration",
        &["15s"],
        "signpost: how long standbys wait after the last renewal before taking the Lease",
    ),
    single(
        "leader-elect-renew-deadline",
        &["10s"],
        "signpost: how long the leader keeps trying to renew before it stops writing",
    ),
    single(
        "leader-elect-retry-period",
        &["2s"],
        "signpost: time between tries to take or renew the Lease",
    ),
    boolean(
        "events",
        false,
        "Also reconcile soon after the Kubernetes objects change",
    ),
    single(
        "min-event-sync-interval",
        &["5s"],
        "Least time between two event-triggered runs",
    ),
    single(
        "health-verdicts",
        &[""],
        "signpost: follow the health controller's verdicts and withdraw failing geographic regions: \
         kubernetes[:NAMESPACE/NAME] (a ConfigMap) or etcd[:PREFIX] (ETCD_URLS); empty: off",
    ),
    single(
        "health-verdicts-debounce",
        &["1s"],
        "signpost: how long after a verdict change the sync run starts",
    ),
    single(
        "health-verdicts-stale-after",
        &["60s"],
        "signpost: how long unreadable verdicts are kept before every region is published",
    ),
    single("min-ttl", &["0s"], "TTL for endpoints that configure none"),
    repeated(
        "managed-record-types",
        &["A", "AAAA", "CNAME"],
        "Record types sync may touch (repeatable)",
    ),
    repeated(
        "exclude-record-types",
        &[],
        "Record types sync never touches (repeatable)",
    ),
    repeated(
        "domain-filter",
        &[],
        "Limit to these domains (repeatable; not split on commas)",
    ),
    repeated(
        "exclude-domains",
        &[],
        "Never touch these domains (repeatable)",
    ),
    single(
        "regex-domain-filter",
        &[""],
        "Limit to names matching this regex (replaces the lists)",
    ),
    single(
        "regex-domain-exclusion",
        &[""],
        "Never touch names matching this regex",
    ),
    repeated("zone-id-filter", &[], "Provider zone ids (cloud providers)"),
    repeated("zone-name-filter", &[], "Provider zone names (Azure)"),
    single(
        "log-level",
        &["info"],
        "panic, fatal, error, warning, info, debug, trace",
    ),
    single("log-format", &["text"], "text or json"),
    single(
        "metrics-address",
        &[":7979"],
        "Address of /healthz and /metrics",
    ),
    single(
        "provider-cache-time",
        &["0s"],
        "Not supported yet: must stay 0s",
    ),
    single(
        "batch-change-size",
        &["200"],
        "Changes per batch (cloud providers)",
    ),
    single(
        "batch-change-interval",
        &["1s"],
        "Pause between batches (cloud providers)",
    ),
    boolean("create-ptr", false, "Not supported yet"),
    boolean("prefer-alias", false, "Not supported yet"),
    repeated("events-emit", &[], "Not supported yet"),
    single(
        "tls-ca",
        &[""],
        "CA file for provider TLS (pdns, aws endpoint override)",
    ),
    single(
        "tls-client-cert",
        &[""],
        "Client certificate for provider TLS (pdns)",
    ),
    single(
        "tls-client-cert-key",
        &[""],
        "Client key for provider TLS (pdns)",
    ),
    single(
        "credentials-dir",
        &[""],
        "signpost: directory where the provider credentials Secret is mounted (aws-access-key-id, aws-secret-access-key, cloudflare-api-token)",
    ),
    // Kubernetes and sources.
    repeated(
        "catalog",
        &[],
        "signpost: read Kubernetes objects from these manifest files or directories instead of an API server",
    ),
    single(
        "kubeconfig",
        &[""],
        "Kubeconfig file (empty: ~/.kube/config if it exists, else in-cluster)",
    ),
    single("server", &[""], "Kubernetes API server URL override"),
    single(
        "kube-api-request-timeout",
        &["30s"],
        "Kubernetes request timeout",
    ),
    single(
        "request-timeout",
        &["30s"],
        "Deprecated alias of --kube-api-request-timeout",
    ),
    single("kube-api-qps", &["5"], "Kubernetes client QPS"),
    single("kube-api-burst", &["10"], "Kubernetes client burst"),
    single("namespace", &[""], "Limit to this namespace (empty: all)"),
    single(
        "annotation-filter",
        &[""],
        "Label-selector syntax over annotations",
    ),
    repeated(
        "annotation-prefix",
        &["external-dns.kubernetes.io/"],
        "Annotation prefix (repeatable in signpost: read in order)",
    ),
    single("label-filter", &[""], "Label selector"),
    repeated(
        "fqdn-template",
        &[],
        "Go template for host names (repeatable; joined with ,)",
    ),
    repeated("target-template", &[], "Not supported yet"),
    repeated("fqdn-target-template", &[], "Not supported yet"),
    boolean(
        "combine-fqdn-annotation",
        false,
        "Use template names as well as annotations",
    ),
    boolean(
        "ignore-hostname-annotation",
        false,
        "Ignore the hostname annotations (needs --fqdn-template)",
    ),
    boolean(
        "publish-internal-services",
        false,
        "Publish ClusterIP services' cluster IPs",
    ),
    boolean(
        "publish-host-ip",
        false,
        "Headless services publish pods' host IPs",
    ),
    boolean(
        "always-publish-not-ready-addresses",
        false,
        "Headless services publish not-ready pods too",
    ),
    boolean(
        "resolve-service-load-balancer-hostname",
        false,
        "Not supported yet",
    ),
    repeated(
        "service-type-filter",
        &[],
        "Only these service types (repeatable)",
    ),
    boolean(
        "listen-endpoint-events",
        false,
        "Accepted; EndpointSlice changes always count as changes here",
    ),
    boolean(
        "exclude-unschedulable",
        true,
        "Leave out unschedulable nodes",
    ),
    boolean(
        "expose-internal-ipv6",
        false,
        "Publish nodes' IPv6 InternalIPs as public",
    ),
    repeated(
        "ingress-class",
        &[],
        "Only ingresses of these classes (repeatable)",
    ),
    boolean(
        "ignore-ingress-tls-spec",
        false,
        "Ignore ingress spec.tls hosts",
    ),
    boolean(
        "ignore-ingress-rules-spec",
        false,
        "Ignore ingress spec.rules hosts",
    ),
    repeated("default-targets", &[], "Not supported yet"),
    boolean("force-default-targets", false, "Not supported yet"),
    repeated("target-net-filter", &[], "Not supported yet"),
    repeated("exclude-target-net", &[], "Not supported yet"),
    repeated("nat64-networks", &[], "Not supported yet"),
    single("compatibility", &[""], "Not supported yet"),
    // rfc2136.
    repeated("rfc2136-host", &[], "RFC 2136 server host (repeatable)"),
    single("rfc2136-port", &["0"], "RFC 2136 server port (required)"),
    repeated("rfc2136-zone", &[], "Zones to manage (repeatable)"),
    boolean("rfc2136-insecure", false, "No TSIG"),
    single("rfc2136-tsig-keyname", &[""], "TSIG key name"),
    secret("rfc2136-tsig-secret", "TSIG secret (base64)"),
    single(
        "rfc2136-tsig-secret-alg",
        &[""],
        "hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512",
    ),
    boolean("rfc2136-axfr", false, "List records by zone transfer"),
    boolean(
        "rfc2136-tsig-axfr",
        false,
        "Deprecated alias of --rfc2136-axfr",
    ),
    single("rfc2136-min-ttl", &["0s"], "Least TTL written"),
    single(
        "rfc2136-batch-change-size",
        &["50"],
        "Record sets per UPDATE message",
    ),
    boolean("rfc2136-use-tls", false, "Not supported yet"),
    boolean("rfc2136-skip-tls-verify", false, "Not supported yet"),
    boolean("rfc2136-gss-tsig", false, "Not supported yet"),
    single("rfc2136-kerberos-username", &[""], "Not supported yet"),
    secret("rfc2136-kerberos-password", "Not supported yet"),
    single("rfc2136-kerberos-realm", &[""], "Not supported yet"),
    single(
        "rfc2136-load-balancing-strategy",
        &["disabled"],
        "disabled, round-robin, random",
    ),
    // pdns.
    single(
        "pdns-server",
        &["http://localhost:8081"],
        "PowerDNS API URL",
    ),
    single("pdns-server-id", &["localhost"], "PowerDNS server id"),
    secret("pdns-api-key", "PowerDNS API key"),
    boolean(
        "pdns-skip-tls-verify",
        false,
        "Do not verify the PowerDNS API's certificate",
    ),
    // coredns.
    single("coredns-prefix", &["/skydns/"], "etcd key prefix"),
    boolean(
        "coredns-strictly-owned",
        false,
        "Only touch etcd keys owned by this owner id",
    ),
    // inmemory.
    repeated("inmemory-zone", &[], "In-memory zones (repeatable)"),
    // aws.
    single("aws-zone-type", &[""], "public, private or empty"),
    repeated("aws-zone-tags", &[], "Zone tags"),
    repeated("aws-profile", &[], "AWS profiles"),
    single("aws-assume-role", &[""], "Role to assume"),
    secret(
        "aws-assume-role-external-id",
        "External id of the assumed role",
    ),
    single("aws-batch-change-size", &["1000"], "Changes per batch"),
    single("aws-batch-change-size-bytes", &["32000"], "Bytes per batch"),
    single(
        "aws-batch-change-size-values",
        &["1000"],
        "Values per batch",
    ),
    single(
        "aws-batch-change-interval",
        &["1s"],
        "Pause between batches",
    ),
    boolean(
        "aws-evaluate-target-health",
        true,
        "Evaluate alias target health",
    ),
    single("aws-api-retries", &["3"], "API retries"),
    boolean("aws-prefer-cname", false, "CNAME instead of alias"),
    single("aws-zones-cache-duration", &["0s"], "Zone cache"),
    boolean("aws-zone-match-parent", false, "Match parent zones"),
    boolean("aws-sd-service-cleanup", false, "Cloud Map cleanup"),
    repeated("aws-sd-create-tag", &[], "Cloud Map tags"),
    single("dynamodb-region", &[""], "DynamoDB registry region"),
    single(
        "dynamodb-table",
        &["external-dns"],
        "DynamoDB registry table",
    ),
    // google.
    single("google-project", &[""], "Google Cloud project"),
    single("google-batch-change-size", &["1000"], "Changes per batch"),
    single(
        "google-batch-change-interval",
        &["1s"],
        "Pause between batches",
    ),
    single("google-zone-visibility", &[""], "public, private or empty"),
    // azure.
    single(
        "azure-config-file",
        &["/etc/kubernetes/azure.json"],
        "Azure config file",
    ),
    single("azure-resource-group", &[""], "Resource group"),
    single("azure-subscription-id", &[""], "Subscription"),
    single(
        "azure-user-assigned-identity-client-id",
        &[""],
        "Managed identity client id",
    ),
    single("azure-zones-cache-duration", &["0s"], "Zone cache"),
    single("azure-maxretries-count", &["3"], "Retries"),
    // cloudflare.
    boolean(
        "cloudflare-proxied",
        false,
        "Proxy records through Cloudflare by default",
    ),
    boolean("cloudflare-custom-hostnames", false, "Custom hostnames"),
    single(
        "cloudflare-custom-hostnames-min-tls-version",
        &["1.0"],
        "Custom hostnames' TLS version",
    ),
    single(
        "cloudflare-custom-hostnames-certificate-authority",
        &["none"],
        "Custom hostnames' CA",
    ),
    single("cloudflare-dns-records-per-page", &["100"], "Page size"),
    boolean("cloudflare-regional-services", false, "Regional services"),
    single("cloudflare-region-key", &[""], "Region key"),
    single("cloudflare-record-comment", &[""], "Record comment"),
];

/// The raw values of every flag (defaults filled in), by name.
#[derive(Clone, Default)]
pub struct SyncArgs {
    values: BTreeMap<&'static str, Vec<String>>,
    given: BTreeMap<&'static str, bool>,
}

// === impl SyncArgs ===

impl SyncArgs {
    /// The values of a flag (empty when unset).
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// The value of a single flag (the last occurrence), or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.all(name).last().map_or("", String::as_str)
    }

    /// A boolean flag.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == "true"
    }

    /// Whether the flag was given on the command line or the environment.
    pub fn given(&self, name: &str) -> bool {
        self.given.get(name).copied().unwrap_or(false)
    }

    /// The effective configuration as one line, secrets shown as `******`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for flag in FLAGS {
            if !self.given(flag.name) {
                continue;
            }
            let value = if flag.secret {
                "******".to_owned()
            } else {
                self.all(flag.name).join(",")
            };
            parts.push(format!("--{}={value}", flag.name));
        }
        parts.join(" ")
    }
}

impl std::fmt::Debug for SyncArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncArgs({})", self.describe())
    }
}

/// The environment variable of a flag: `EXTERNAL_DNS_` + upper case, `-` → `_`.
pub fn env_name(flag: &str) -> String {
    format!(
        "EXTERNAL_DNS_{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

fn arg(flag: &Flag) -> Arg {
    let mut arg = Arg::new(flag.name)
        .long(flag.name)
        .help(flag.help)
        .env(env_name(flag.name))
        .hide_env_values(flag.secret);
    arg = match flag.kind {
        Kind::Single => arg
            .action(ArgAction::Set)
            .num_args(1)
            .allow_hyphen_values(true),
        Kind::Repeated => arg
            .action(ArgAction::Append)
            .num_args(1)
            .value_delimiter('\n')
            .allow_hyphen_values(true),
        Kind::Bool => arg
            .action(ArgAction::Set)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_parser(["true", "false"]),
    };
    if !flag.default.is_empty() {
        arg = arg.default_values(flag.default);
    }
    if flag.secret {
        arg = arg.hide_default_value(true);
    }
    arg
}

impl clap::Args for SyncArgs {
    fn augment_args(command: Command) -> Command {
        FLAGS
            .iter()
            .fold(command, |command, flag| command.arg(arg(flag)))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for SyncArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        for flag in FLAGS {
            let values: Vec<String> = matches
                .get_many::<String>(flag.name)
                .map(|v| v.cloned().collect())
                .unwrap_or_default();
            let given = !matches!(
                matches.value_source(flag.name),
                None | Some(clap::parser::ValueSource::DefaultValue)
            );
            // An explicit occurrence of a repeatable flag replaces its default list.
            args.values.insert(flag.name, values);
            args.given.insert(flag.name, given);
        }
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Rewrites kingpin's negated booleans, `--no-<flag>`, into `--<flag>=false`
/// for the arguments after `sync` (clap has no negation of its own).
pub fn normalise_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut in_sync = false;
    for arg in args {
        if !in_sync {
            in_sync = arg == "sync";
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|text| {
            let name = text.strip_prefix("--no-")?;
            FLAGS
                .iter()
                .find(|f| f.kind == Kind::Bool && f.name == name)
                .map(|f| OsString::from(format!("--{}=false", f.name)))
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches, Parser};

    #[derive(Parser)]
    struct Test {
        #[command(flatten)]
        args: SyncArgs,
    }

    fn parse(args: &[&str]) -> Result<SyncArgs, clap::Error> {
        let argv: Vec<OsString> = std::iter::once("sync")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        Test::try_parse_from(normalise_args(argv)).map(|t| t.args)
    }

    /// kingpin syntax: `=` and space forms, repeatable flags not split on
    /// commas, booleans with `--no-`, defaults replaced by the first occurrence.
    #[test]
    fn kingpin_syntax() {
        let args = parse(&[
            "--source=service",
            "--source",
            "ingress",
            "--domain-filter=a.com,b.com",
            "--once",
            "--no-exclude-unschedulable",
            "--managed-record-types=A",
            "--interval",
            "30s",
        ])
        .unwrap();
        assert_eq!(args.all("source"), ["service", "ingress"]);
        assert_eq!(args.all("domain-filter"), ["a.com,b.com"]);
        assert!(args.flag("once"));
        assert!(!args.flag("exclude-unschedulable"));
        assert!(!args.flag("dry-run"));
        assert_eq!(args.all("managed-record-types"), ["A"]);
        assert_eq!(args.get("interval"), "30s");
        assert_eq!(
            parse(&[]).unwrap().all("managed-record-types"),
            ["A", "AAAA", "CNAME"]
        );
        assert!(parse(&["--no-such-flag"]).is_err());
        // A boolean does not swallow the next argument.
        assert!(parse(&["--once", "extra"]).is_err());
    }

    /// Secrets are masked in the configuration line.
    #[test]
    fn secrets_are_masked() {
        let args = parse(&["--pdns-api-key=s3cr3t-key", "--provider=pdns"]).unwrap();
        let line = args.describe();
        assert!(line.contains("--pdns-api-key=******"), "{line}");
        assert!(!line.contains("s3cr3t"), "{line}");
        assert!(!format!("{args:?}").contains("s3cr3t"));
    }

    #[test]
    fn from_matches_round_trip() {
        let command = <SyncArgs as clap::Args>::augment_args(Command::new("sync"));
        let matches = command
            .try_get_matches_from(["sync", "--txt-owner-id=x"])
            .unwrap();
        assert_eq!(
            SyncArgs::from_arg_matches(&matches)
                .unwrap()
                .get("txt-owner-id"),
            "x"
        );
        assert_eq!(env_name("txt-owner-id"), "EXTERNAL_DNS_TXT_OWNER_ID");
    }
}
