//! Geographic names at the provider follow the health verdicts
//! (`--health-verdicts`): a region whose endpoints all fail their health
//! checks is withdrawn from the names it publishes, and comes back when its
//! verdicts clear.
//!
//! Control plane, pure: [`desired`] replaces [`crate::source::endpoints`]
//! for a run while verdicts are followed.
//!
//! ```text
//! objects ─▶ drop failing regional Services, trim unhealthy endpoints ─▶ endpoints (healthy)
//!    └──────────────────────────────────────────────────────────────────▶ endpoints (all)
//! per name: healthy has an address record ─▶ healthy's records
//!           none left (every region fails)  ─▶ all records (fail open)
//! ```
//!
//! The rules, the same `signpost dns` applies to a geographic name it serves:
//! - Only Services carrying `dns.aikernel.io/geo-region` (the regions) are
//!   affected; every other record is published as without verdicts.
//! - A region (one Service) is failing when it has served endpoints (ready,
//!   or any with `publishNotReadyAddresses`) and every one of their
//!   addresses is in the verdicts (`namespace/service/address`). A Service
//!   with no known endpoints is never failing: nothing says it is.
//! - Partial failure: the region stays. Its load-balancer address still
//!   fronts healthy endpoints; where it publishes endpoint addresses itself
//!   (headless, NodePort), the unhealthy ones are left out.
//! - Fail open: a name none of whose regions is healthy publishes every
//!   region, as Route 53 answers from all records when all health checks fail.
//!
//! Withdrawing removes the region's endpoint from the desired state, so the
//! planner deletes it with its ownership TXT (in the same atomic change, with
//! the same set identifier) exactly as if the Service were gone; recovery
//! creates both again. The registry never claims a record it did not write.

use crate::endpoint::{Endpoint, RecordType};
use crate::source::SourceOutput;
use crate::source::common::SourceConfig;
use k8s_openapi::api::core::v1::Service;
use signpost_discovery::objects::ClusterObjects;
use signpost_model::Verdicts;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// The label EndpointSlices name their Service with.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the verdicts did to one run's desired endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoHealth {
    /// (name, region) pairs left out of a name because the region fails.
    pub withdrawn: BTreeSet<(String, String)>,
    /// Names published whole because every region of them fails.
    pub fail_open: BTreeSet<String>,
    /// Failing regions: (namespace/service, region).
    pub failing: BTreeSet<(String, String)>,
}

/// A regional Service with unhealthy endpoints.
#[derive(Debug)]
struct Region {
    region: String,
    unhealthy: HashSet<IpAddr>,
}

/// The desired endpoints of `objects` under `verdicts` (see the module
/// doc), with what was withdrawn.
pub fn desired(
    objects: &Arc<ClusterObjects>,
    verdicts: &Verdicts,
    config: &SourceConfig,
    provider: &str,
    min_ttl: u32,
) -> (SourceOutput, GeoHealth) {
    let all = crate::source::endpoints(objects, config, provider, min_ttl);
    let (healthy_objects, failing) = apply(objects, verdicts);
    let Some(healthy_objects) = healthy_objects else {
        return (all, GeoHealth::default());
    };
    let mut output = crate::source::endpoints(&healthy_objects, config, provider, min_ttl);
    let has_address = |endpoints: &[Endpoint], name: &str| {
        endpoints.iter().any(|e| {
            e.dns_name.eq_ignore_ascii_case(name)
                && matches!(
                    e.record_type,
                    RecordType::A | RecordType::Aaaa | RecordType::Cname
                )
        })
    };
    let mut health = GeoHealth::default();
    // Which names each failing region publishes.
    for (key, region) in &failing {
        let Some(service) = objects.services.iter().find(|s| service_key(s) == *key) else {
            continue;
        };
        let alone = ClusterObjects {
            services: vec![service.clone()],
            ..(**objects).clone()
        };
        let names: BTreeSet<String> = crate::source::endpoints(&alone, config, provider, min_ttl)
            .endpoints
            .iter()
            .map(|e| e.dns_name.to_ascii_lowercase())
            .collect();
        for name in names {
            if has_address(&output.endpoints, &name) {
                health.withdrawn.insert((name, region.clone()));
            } else {
                health.fail_open.insert(name);
            }
        }
        health.failing.insert((key.clone(), region.clone()));
    }
    if !health.fail_open.is_empty() {
        output
            .endpoints
            .retain(|e| !health.fail_open.contains(&e.dns_name.to_ascii_lowercase()));
        output.endpoints.extend(
            all.endpoints
                .into_iter()
                .filter(|e| health.fail_open.contains(&e.dns_name.to_ascii_lowercase())),
        );
    }
    (output, health)
}

/// `namespace/name` of a Service.
fn service_key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or("default"),
        service.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `objects` without failing regions and with unhealthy endpoints of the
/// other regions left out; `None` when the verdicts touch no region. Also
/// the failing regions: (namespace/service, region).
fn apply(
    objects: &Arc<ClusterObjects>,
    verdicts: &Verdicts,
) -> (Option<Arc<ClusterObjects>>, BTreeMap<String, String>) {
    let mut failing = BTreeMap::new();
    if verdicts.unhealthy.is_empty() {
        return (None, failing);
    }
    let mut unhealthy: HashMap<(&str, &str), HashSet<IpAddr>> = HashMap::new();
    for key in &verdicts.unhealthy {
        unhealthy
            .entry((key.namespace.as_str(), key.service.as_str()))
            .or_default()
            .insert(key.address);
    }
    let mut regions: HashMap<String, Region> = HashMap::new();
    for service in &objects.services {
        let Some(region) = service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(signpost_model::annotations::GEO_REGION))
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
        else {
            continue;
        };
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or_default();
        if let Some(addresses) = unhealthy.get(&(namespace, name)) {
            regions.insert(
                service_key(service),
                Region {
                    region: region.to_owned(),
                    unhealthy: addresses.clone(),
                },
            );
        }
    }
    if regions.is_empty() {
        return (None, failing);
    }
    // The served endpoints of the regions the verdicts touch, as the DNS
    // server reads them.
    let touched = objects
        .services
        .iter()
        .filter(|s| regions.contains_key(&service_key(s)))
        .map(|s| &**s);
    let slices = objects.endpoint_slices.iter().map(|s| &**s);
    for service in signpost_discovery::translate::cluster_services(touched, slices) {
        let key = format!("{}/{}", service.namespace, service.name);
        let Some(region) = regions.get(&key) else {
            continue;
        };
        let mut served = service
            .endpoints
            .iter()
            .filter(|e| e.ready || service.publish_not_ready)
            .flat_map(|e| e.addresses.iter())
            .peekable();
        if served.peek().is_some() && served.all(|a| region.unhealthy.contains(a)) {
            failing.insert(key, region.region.clone());
        }
    }
    let mut healthy = (**objects).clone();
    healthy
        .services
        .retain(|s| !failing.contains_key(&service_key(s)));
    for slice in &mut healthy.endpoint_slices {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or("default");
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let Some(region) = regions.get(&format!("{namespace}/{service}")) else {
            continue;
        };
        let is_unhealthy = |address: &String| {
            address
                .parse::<IpAddr>()
                .is_ok_and(|a| region.unhealthy.contains(&a))
        };
        if slice
            .endpoints
            .iter()
            .any(|e| e.addresses.iter().any(is_unhealthy))
        {
            let mut trimmed = (**slice).clone();
            trimmed
                .endpoints
                .retain(|e| !e.addresses.iter().all(is_unhealthy));
            *slice = Arc::new(trimmed);
        }
    }
    (Some(Arc::new(healthy)), failing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use signpost_model::EndpointKey;

    fn service(name: &str, region: &str, ip: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "annotations": {
                    "external-dns.kubernetes.io/hostname": "app.example.com",
                    "dns.aikernel.io/geo-region": region}},
                "spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
            }))
            .unwrap(),
        )
    }

    fn slice(
        service: &str,
        addresses: &[&str],
    ) -> Arc<k8s_openapi::api::discovery::v1::EndpointSlice> {
        let endpoints: Vec<_> = addresses
            .iter()
            .map(|a| serde_json::json!({"addresses": [a], "conditions": {"ready": true}}))
            .collect();
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{service}-1"), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "endpoints": endpoints
            }))
            .unwrap(),
        )
    }

    fn objects() -> Arc<ClusterObjects> {
        Arc::new(ClusterObjects {
            services: vec![
                service("app-us", "us-east-1", "192.0.2.1"),
                service("app-eu", "eu-west-1", "192.0.2.2"),
            ],
            endpoint_slices: vec![
                slice("app-us", &["10.1.0.1", "10.1.0.2"]),
                slice("app-eu", &["10.2.0.1", "10.2.0.2"]),
            ],
            ..ClusterObjects::default()
        })
    }

    fn verdicts(keys: &[(&str, &str)]) -> Verdicts {
        Verdicts {
            unhealthy: keys
                .iter()
                .map(|(service, address)| EndpointKey {
                    namespace: "default".to_owned(),
                    service: (*service).to_owned(),
                    address: address.parse().unwrap(),
                })
                .collect(),
        }
    }

    fn targets(output: &SourceOutput) -> Vec<String> {
        let mut all: Vec<String> = output
            .endpoints
            .iter()
            .filter(|e| e.dns_name == "app.example.com")
            .flat_map(|e| e.targets.clone())
            .collect();
        all.sort();
        all
    }

    fn run(verdicts: &Verdicts) -> (SourceOutput, GeoHealth) {
        desired(
            &objects(),
            verdicts,
            &SourceConfig::default(),
            "cloudflare",
            0,
        )
    }

    #[test]
    fn a_region_leaves_only_when_all_its_endpoints_fail() {
        let (output, health) = run(&verdicts(&[]));
        assert_eq!(targets(&output), ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(health, GeoHealth::default());

        // Partial failure: the load balancer still fronts a healthy endpoint.
        let (output, health) = run(&verdicts(&[("app-eu", "10.2.0.1")]));
        assert_eq!(targets(&output), ["192.0.2.1", "192.0.2.2"]);
        assert!(health.withdrawn.is_empty());

        let (output, health) = run(&verdicts(&[("app-eu", "10.2.0.1"), ("app-eu", "10.2.0.2")]));
        assert_eq!(targets(&output), ["192.0.2.1"]);
        assert_eq!(
            health.withdrawn,
            BTreeSet::from([("app.example.com".to_owned(), "eu-west-1".to_owned())])
        );
        assert!(health.fail_open.is_empty());

        // Verdicts of a Service that is not a region change nothing.
        let (output, health) = run(&verdicts(&[("other", "10.2.0.1")]));
        assert_eq!(targets(&output), ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(health, GeoHealth::default());
    }

    #[test]
    fn every_region_failing_publishes_all() {
        let all = verdicts(&[
            ("app-eu", "10.2.0.1"),
            ("app-eu", "10.2.0.2"),
            ("app-us", "10.1.0.1"),
            ("app-us", "10.1.0.2"),
        ]);
        let (output, health) = run(&all);
        assert_eq!(targets(&output), ["192.0.2.1", "192.0.2.2"]);
        assert!(health.withdrawn.is_empty());
        assert_eq!(
            health.fail_open,
            BTreeSet::from(["app.example.com".to_owned()])
        );
        assert_eq!(health.failing.len(), 2);
    }

    #[test]
    fn a_region_without_known_endpoints_never_fails() {
        let mut objects = (*objects()).clone();
        objects.endpoint_slices.truncate(1);
        let (output, health) = desired(
            &Arc::new(objects),
            &verdicts(&[("app-eu", "10.2.0.1")]),
            &SourceConfig::default(),
            "cloudflare",
            0,
        );
        assert_eq!(targets(&output), ["192.0.2.1", "192.0.2.2"]);
        assert!(health.failing.is_empty());
    }
}
