//! `kubernetes [ZONES...] { ... }`: the cluster zone, by the Kubernetes DNS
//! specification 1.1.0, from an API server or from catalog files.
//!
//! ```text
//! kubernetes cluster.local in-addr.arpa ip6.arpa {
//!     kubeconfig PATH [CONTEXT]     # or: endpoint URL + tls CERT KEY CACERT;
//!                                   # default: the pod's service account
//!     namespaces NAMESPACE...       # serve only these
//!     labels SELECTOR               # Services, EndpointSlices, Pods
//!     namespace_labels SELECTOR     # serve only matching namespaces
//!     noendpoints                   # do not watch EndpointSlices
//!     pods disabled|insecure|verified
//!     endpoint_pod_names
//!     ttl 30                        # 0..3600, default 30 (CoreDNS's is 5)
//!     fallthrough [ZONES...]
//!     startup_timeout 5s            # accepted; see docs/kubernetes.md
//!     catalog PATH...               # manifests instead of an API server
//! }
//! ```
//!
//! Options, defaults and error messages follow CoreDNS 1.14's `kubernetes`
//! plugin, each error at its file and line. `catalog` is signpost's own: with
//! it, Services and EndpointSlices come from manifest files and no API server
//! is contacted.

use super::setup::{Block, Plugin, SOURCE_POLL, Setup};
use crate::config::SourcePlan;
use signpost_corefile::{Directive, Errors, Location};
use signpost_model::AllUnhealthy;
use signpost_zone::cluster::{ClusterOptions, DEFAULT_TTL, is_reverse_zone};
use signpost_zone::{KubeConnection, KubernetesApi, PodMode, Recipe, SourceSpec};
use std::path::PathBuf;

#[derive(Debug)]
struct Kubernetes(SourcePlan);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let before = errors.len();
    let zones = errors.plugin_zones(&directive.location, &directive.args, block.zones);
    if !zones.is_empty() && zones.iter().all(is_reverse_zone) {
        errors.push(
            &directive.location,
            "`kubernetes`: non-reverse zone name must be used",
        );
    }
    let mut options = ClusterOptions {
        zones,
        ttl: DEFAULT_TTL,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        fallthrough: Vec::new(),
        serial: 0,
        all_unhealthy: AllUnhealthy::default(),
    };
    let mut api = KubernetesApi {
        connection: KubeConnection::InCluster,
        namespaces: Vec::new(),
        labels: None,
        namespace_labels: None,
        endpoints: true,
        pods: false,
        ingresses: false,
        nodes: false,
    };
    let mut endpoint: Option<String> = None;
    let mut tls: Option<[PathBuf; 3]> = None;
    let mut kubeconfig: Option<(PathBuf, Option<String>)> = None;
    let mut catalog: Vec<PathBuf> = Vec::new();
    let mut api_options: Vec<&Location> = Vec::new();
    for option in &directive.block {
        let args = &option.args;
        let at = &option.location;
        let name = option.name.as_str();
        match name {
            "ttl" => match args.first() {
                Some(value) => match value.parse::<u32>() {
                    Ok(ttl) if ttl <= 3600 => options.ttl = ttl,
                    Ok(ttl) => errors.push(at, format!("`ttl` must be in range [0, 3600]: {ttl}")),
                    Err(_) => errors.push(at, format!("`ttl` expects seconds from 0 to 3600, found {value:?}")),
                },
                None => errors.push(at, "`ttl` expects one value in seconds"),
            },
            "pods" => match args.as_slice() {
                [mode] if mode == "disabled" => options.pods = PodMode::Disabled,
                [mode] if mode == "insecure" => options.pods = PodMode::Insecure,
                [mode] if mode == "verified" => {
                    options.pods = PodMode::Verified;
                    api.pods = true;
                    api_options.push(at);
                }
                [other] => errors.push(at, format!("wrong value for pods: {other}, must be one of: disabled, verified, insecure")),
                _ => errors.push(at, "`pods` expects one of: disabled, verified, insecure"),
            },
            "endpoint_pod_names" | "noendpoints" => {
                if !args.is_empty() {
                    errors.push(at, format!("`{name}` takes no arguments"));
                }
                if name == "noendpoints" {
                    api.endpoints = false;
                    api_options.push(at);
                } else {
                    options.endpoint_pod_names = true;
                }
            }
            "fallthrough" => options.fallthrough = errors.fallthrough(option, &options.zones),
            "catalog" => {
                if args.is_empty() {
                    errors.push(at, "`catalog` expects at least one file or directory");
                }
                catalog.extend(args.iter().map(|p| block.base.join(p)));
            }
            "endpoint" => match args.as_slice() {
                [] => errors.push(at, "`endpoint` expects the API server's URL"),
                [first, rest @ ..] => {
                    if !rest.is_empty() {
                        tracing::warn!(location = %at, "Multiple endpoints have been deprecated, only the first specified endpoint '{first}' is used");
                    }
                    if !(first.starts_with("https://") || first.starts_with("http://")) {
                        errors.push(at, format!("`endpoint` expects an http:// or https:// URL, found {first:?}"));
                    }
                    endpoint = Some(first.clone());
                    api_options.push(at);
                }
            },
            "tls" => match args.as_slice() {
                [cert, key, ca] => {
                    tls = Some([block.base.join(cert), block.base.join(key), block.base.join(ca)]);
                    api_options.push(at);
                }
                _ => errors.push(at, "`tls` expects CERT KEY CACERT"),
            },
            "kubeconfig" => match args.as_slice() {
                [path] => kubeconfig = Some((block.base.join(path), None)),
                [path, context] => kubeconfig = Some((block.base.join(path), Some(context.clone()))),
                _ => errors.push(at, "`kubeconfig` expects PATH [CONTEXT]"),
            },
            "namespaces" => {
                if args.is_empty() {
                    errors.push(at, "`namespaces` expects at least one namespace");
                }
                api.namespaces.extend(args.iter().cloned());
                api_options.push(at);
            }
            "labels" | "namespace_labels" => {
                let selector = args.join(" ");
                if let Err(problem) = check_selector(&selector) {
                    let what = if name == "labels" { "label selector" } else { "namespace_label selector" };
                    errors.push(at, format!("unable to parse {what} value: '{selector}': {problem}"));
                }
                if name == "labels" {
                    api.labels = Some(selector);
                } else {
                    api.namespace_labels = Some(selector);
                }
                api_options.push(at);
            }
            "startup_timeout" => {
                if args.is_empty() {
                    errors.push(at, "`startup_timeout` expects a duration");
                } else if let Err(error) = signpost_corefile::toolkit::parse_duration(&args[0]) {
                    errors.push(at, format!("failed to parse startup_timeout: {}, {error}", args[0]));
                }
            }
            "apiserver_qps" | "apiserver_burst" | "apiserver_max_inflight" => match args.as_slice() {
                [value] if value.parse::<f64>().is_ok_and(|v| v >= 0.0) => {
                    tracing::warn!(location = %at, option = name, "accepted but not enforced: signpost's client does not throttle its API requests");
                }
                [value] => errors.push(at, format!("invalid {name} {value:?}: expected a number >= 0")),
                _ => errors.push(at, format!("`{name}` expects one value")),
            },
            "ignore" | "multicluster" | "zonal" => errors.push(
                at,
                format!("`kubernetes` option `{name}` is not supported by signpost yet"),
            ),
            other => errors.push(at, format!("unknown property '{other}'")),
        }
    }
    if api.namespace_labels.is_some() && !api.namespaces.is_empty() {
        errors.push(
            &directive.location,
            "namespaces and namespace_labels cannot both be set",
        );
    }
    let spec = if catalog.is_empty() {
        api.connection = match (kubeconfig, endpoint) {
            (Some((path, context)), _) => KubeConnection::Kubeconfig { path, context },
            (None, Some(url)) => KubeConnection::Endpoint { url, tls },
            (None, None) => KubeConnection::InCluster,
        };
        SourceSpec::Kubernetes(api)
    } else {
        // Options that only mean something to an API server have nothing to act on.
        for at in api_options {
            errors.push(
                at,
                "this option needs the API server, and `catalog` replaces it: remove one of them",
            );
        }
        if options.pods == PodMode::Verified {
            options.pods = PodMode::Insecure;
        }
        SourceSpec::Catalog {
            paths: catalog,
            poll: SOURCE_POLL,
        }
    };
    (errors.len() == before).then(|| {
        Box::new(Kubernetes(SourcePlan {
            spec,
            recipe: Recipe::Cluster(options),
            location: directive.location.clone(),
        })) as Box<dyn Plugin>
    })
}

impl Plugin for Kubernetes {
    fn apply(&self, setup: &mut Setup<'_>) {
        setup.listener.sources.push(self.0.clone());
    }
}

/// Checks a Kubernetes label selector (`key=value`, `key==value`,
/// `key!=value`, `key in (a,b)`, `key notin (a)`, `key`, `!key`, joined by
/// commas), as the API server would parse it.
fn check_selector(selector: &str) -> Result<(), String> {
    let mut rest = selector.trim();
    if rest.is_empty() {
        return Err("empty selector".to_owned());
    }
    let key_ok = |key: &str| {
        let name = key.rsplit('/').next().unwrap_or_default();
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let value_ok = |value: &str| {
        value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    while !rest.is_empty() {
        // One requirement, up to a comma outside parentheses.
        let mut depth = 0;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                c == ',' && depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let requirement = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or("").trim();
        if let Some(key) = requirement.strip_prefix('!') {
            if !key_ok(key.trim()) {
                return Err(format!("invalid label key {:?}", key.trim()));
            }
            continue;
        }
        let (key, operator, value) = if let Some((key, value)) = requirement.split_once("!=") {
            (key, "!=", value)
        } else if let Some((key, value)) = requirement.split_once("==") {
            (key, "==", value)
        } else if let Some((key, value)) = requirement.split_once('=') {
            (key, "=", value)
        } else if let Some((key, set)) = requirement.split_once(" notin ") {
            (key, "notin", set)
        } else if let Some((key, set)) = requirement.split_once(" in ") {
            (key, "in", set)
        } else {
            (requirement, "", "")
        };
        if !key_ok(key.trim()) {
            return Err(format!("invalid label key {:?}", key.trim()));
        }
        match operator {
            "in" | "notin" => {
                let set = value.trim();
                let inner = set
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(')'))
                    .ok_or_else(|| format!("expected ( VALUES ) after `{operator}`"))?;
                if inner.split(',').any(|v| !value_ok(v.trim())) {
                    return Err(format!("invalid value in {set:?}"));
                }
            }
            "" => {}
            _ if !value_ok(value.trim()) => {
                return Err(format!("invalid label value {:?}", value.trim()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_selector;

    /// The label selector grammar of the Kubernetes API (labels.Parse).
    #[test]
    fn selectors() {
        for good in [
            "app=dns",
            "app==dns,tier!=cache",
            "environment in (production, qa)",
            "tier notin (frontend,backend)",
            "partition",
            "!partition",
            "example.com/team=core",
        ] {
            assert_eq!(check_selector(good), Ok(()), "{good}");
        }
        for bad in ["", "=dns", "app in production", "a b=c", "app=d n s"] {
            assert!(check_selector(bad).is_err(), "{bad}");
        }
    }
}
