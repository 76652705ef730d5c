//! `kubernetes [ZONES...] { ... }`: the cluster zone, by the Kubernetes DNS
//! specification 1.1.0.
//!
//! ```text
//! kubernetes cluster.local in-addr.arpa ip6.arpa {
//!     catalog PATH...            # Service and EndpointSlice manifests
//!     ttl 30                     # 0..3600, default 30 (CoreDNS's is 5)
//!     pods disabled|insecure
//!     endpoint_pod_names
//!     fallthrough [ZONES...]
//! }
//! ```

use super::setup::{Block, Plugin, SOURCE_POLL, Setup};
use crate::config::SourcePlan;
use signpost_corefile::{Directive, Errors};
use signpost_model::AllUnhealthy;
use signpost_zone::cluster::{ClusterOptions, DEFAULT_TTL};
use signpost_zone::{PodMode, Recipe, SourceSpec};
use std::path::PathBuf;

#[derive(Debug)]
struct Kubernetes(SourcePlan);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let zones = errors.plugin_zones(&directive.location, &directive.args, block.zones);
    let mut options = ClusterOptions {
        zones,
        ttl: DEFAULT_TTL,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        fallthrough: Vec::new(),
        serial: 0,
        all_unhealthy: AllUnhealthy::default(),
    };
    let mut catalog: Vec<PathBuf> = Vec::new();
    for option in &directive.block {
        let args = &option.args;
        match option.name.as_str() {
            "ttl" => match args.as_slice() {
                [value] => match value.parse::<u32>() {
                    Ok(ttl) if ttl <= 3600 => options.ttl = ttl,
                    _ => errors.push(&option.location, format!("`ttl` expects seconds from 0 to 3600, found {value:?}")),
                },
                _ => errors.push(&option.location, "`ttl` expects one value in seconds"),
            },
            "pods" => match args.as_slice() {
                [mode] if mode == "disabled" => options.pods = PodMode::Disabled,
                [mode] if mode == "insecure" => options.pods = PodMode::Insecure,
                [mode] if mode == "verified" => {
                    errors.push(&option.location, "`pods verified` needs the API-server source, which signpost does not have yet");
                }
                _ => errors.push(&option.location, "`pods` expects `disabled` or `insecure`"),
            },
            "endpoint_pod_names" => {
                if !args.is_empty() {
                    errors.push(&option.location, "`endpoint_pod_names` takes no arguments");
                }
                options.endpoint_pod_names = true;
            }
            "fallthrough" => options.fallthrough = errors.fallthrough(option, &options.zones),
            "catalog" => {
                if args.is_empty() {
                    errors.push(&option.location, "`catalog` expects at least one file or directory");
                }
                catalog.extend(args.iter().map(|p| block.base.join(p)));
            }
            "endpoint" | "kubeconfig" | "namespaces" | "labels" | "namespace_labels" | "noendpoints" | "ignore"
            | "multicluster" | "startup_timeout" | "tls" => errors.push(
                &option.location,
                format!("`kubernetes` option `{}` needs the API-server source, which signpost does not have yet", option.name),
            ),
            other => errors.push(&option.location, format!("unknown `kubernetes` option `{other}`")),
        }
    }
    if catalog.is_empty() {
        errors.push(
            &directive.location,
            "`kubernetes` needs a source: add `catalog PATH` (the API-server source is not available yet)",
        );
        return None;
    }
    Some(Box::new(Kubernetes(SourcePlan {
        spec: SourceSpec::Catalog {
            paths: catalog,
            poll: SOURCE_POLL,
        },
        recipe: Recipe::Cluster(options),
        location: directive.location.clone(),
    })))
}

impl Plugin for Kubernetes {
    fn apply(&self, setup: &mut Setup<'_>) {
        setup.listener.sources.push(self.0.clone());
    }
}
