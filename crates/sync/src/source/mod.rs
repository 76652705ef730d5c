//! Sources: the endpoints Kubernetes objects ask for.
//!
//! Control plane, pure: [`endpoints`] turns one complete
//! [`ClusterObjects`] state (from the catalog or the Kubernetes API) into
//! the desired endpoints, then runs external-dns v0.22's wrapper chain:
//!
//! ```text
//! service ─┐
//! ingress ─┴─ concat (--source order) ─▶ merge same key+TTL ─▶ dedup + validate ─▶ --min-ttl, property pruning
//! ```
//!
//! Invariant: bad input (a bad host name, TTL or target, an invalid
//! endpoint) is skipped and reported as a [`Problem`]; it never stops the
//! rest from syncing.

pub mod common;
mod ingress;
pub mod selector;
mod service;
pub mod template;

use crate::endpoint::{Endpoint, EndpointKey, RecordType};
use common::{Problem, SourceConfig};
use signpost_discovery::objects::ClusterObjects;
use std::collections::{BTreeMap, BTreeSet};

/// The desired endpoints and what was skipped on the way.
#[derive(Debug, Clone, Default)]
pub struct SourceOutput {
    /// Endpoints to publish.
    pub endpoints: Vec<Endpoint>,
    /// Bad input, skipped.
    pub problems: Vec<Problem>,
    /// Exact duplicates dropped: (type, source).
    pub duplicates: Vec<(RecordType, &'static str)>,
}

/// The desired endpoints of `objects`. `provider` names the provider whose
/// properties survive pruning; `min_ttl` fills unconfigured TTLs.
pub fn endpoints(
    objects: &ClusterObjects,
    config: &SourceConfig,
    provider: &str,
    min_ttl: u32,
) -> SourceOutput {
    let mut output = SourceOutput::default();
    let mut collected: Vec<(Endpoint, &'static str)> = Vec::new();
    for source in &config.sources {
        let (found, source_type) = match source.as_str() {
            "service" => (
                service::endpoints(objects, config, &mut output.problems),
                "service",
            ),
            "ingress" => (
                ingress::endpoints(objects, config, &mut output.problems),
                "ingress",
            ),
            _ => continue,
        };
        collected.extend(merge(found).into_iter().map(|e| (e, source_type)));
    }
    let mut seen: BTreeSet<(EndpointKey, Vec<String>)> = BTreeSet::new();
    for (mut endpoint, source_type) in collected {
        if let Some(problem) = endpoint.problem() {
            output.problems.push(Problem {
                source_type,
                object: endpoint
                    .labels
                    .get(crate::endpoint::RESOURCE_LABEL)
                    .cloned()
                    .unwrap_or_default(),
                record_type: endpoint.record_type.lower().to_owned(),
                message: format!("invalid endpoint {endpoint}: {problem}"),
            });
            continue;
        }
        if endpoint.has_long_label() {
            output.problems.push(Problem {
                source_type,
                object: endpoint
                    .labels
                    .get(crate::endpoint::RESOURCE_LABEL)
                    .cloned()
                    .unwrap_or_default(),
                record_type: endpoint.record_type.lower().to_owned(),
                message: format!(
                    "a label of {} is longer than 63 characters",
                    endpoint.dns_name
                ),
            });
            continue;
        }
        if !seen.insert((endpoint.key(), endpoint.targets.clone())) {
            output.duplicates.push((endpoint.record_type, source_type));
            continue;
        }
        if endpoint.ttl == 0 {
            endpoint.ttl = min_ttl;
        }
        let own = format!("{provider}/");
        if provider != "cloudflare" {
            endpoint
                .provider_specific
                .retain(|(name, _)| !name.contains('/') || name.starts_with(&own));
        }
        endpoint.provider_specific.sort();
        output.endpoints.push(endpoint);
    }
    output
}

/// external-dns's generic merge: endpoints with the same key and TTL unite
/// their targets; CNAMEs are never merged.
fn merge(endpoints: Vec<Endpoint>) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let mut index: BTreeMap<(EndpointKey, u32), usize> = BTreeMap::new();
    for endpoint in endpoints {
        if endpoint.record_type != RecordType::Cname {
            let key = (endpoint.key(), endpoint.ttl);
            if let Some(&at) = index.get(&key) {
                out[at].targets.extend(endpoint.targets);
                crate::endpoint::normalise_targets(&mut out[at].targets);
                continue;
            }
            index.insert(key, out.len());
        }
        out.push(endpoint);
    }
    out
}

#[cfg(test)]
mod tests;
