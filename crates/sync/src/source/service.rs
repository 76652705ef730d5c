//! `--source=service`: endpoints for annotated Services, as external-dns
//! v0.22 derives them (`source/service.go`).
//!
//! Control plane, pure. Per host name (the `hostname` annotation, the
//! `internal-hostname` annotation, or `--fqdn-template` names):
//!
//! | `spec.type` | `hostname` | `internal-hostname` |
//! |---|---|---|
//! | LoadBalancer | `spec.externalIPs`, else every ingress IP and hostname | cluster IP |
//! | ClusterIP, headless | one record per ready pod (and `<pod hostname>.<name>`) | same |
//! | ClusterIP | cluster IP with `--publish-internal-services` | cluster IP |
//! | NodePort | node addresses, plus SRV `_<svc>._<proto>.<name>` | same |
//! | ExternalName | `spec.externalIPs`, else `spec.externalName` | same |
//!
//! A `target` annotation replaces all of that. Endpoints of different
//! Services with the same (name, type, set id) are merged in `resource` order.

use super::common::{
    Annotations, ObjectContext, Problem, SourceConfig, object_context, selected, split_list,
    template_value,
};
use crate::endpoint::{Endpoint, RESOURCE_LABEL, RecordType, normalise_targets, suitable_type};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use signpost_discovery::objects::ClusterObjects;
use std::collections::BTreeMap;

const SOURCE: &str = "service";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Internal,
}

/// Every endpoint the Services of `objects` call for.
pub(crate) fn endpoints(
    objects: &ClusterObjects,
    config: &SourceConfig,
    problems: &mut Vec<Problem>,
) -> Vec<Endpoint> {
    let mut all = Vec::new();
    for service in &objects.services {
        if !selected(&service.metadata, config) {
            continue;
        }
        let spec_type = service
            .spec
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("ClusterIP");
        if !config.service_type_filter.is_empty()
            && !config.service_type_filter.iter().any(|t| t == spec_type)
        {
            continue;
        }
        let mut context = object_context(SOURCE, &service.metadata, config, problems);
        let found = service_endpoints(service, spec_type, objects, config, &mut context);
        if found.is_empty() {
            tracing::debug!(object = %context.resource, "no endpoints could be generated");
        }
        all.extend(found);
    }
    merge_by_resource(all)
}

fn service_endpoints(
    service: &Service,
    spec_type: &str,
    objects: &ClusterObjects,
    config: &SourceConfig,
    context: &mut ObjectContext<'_>,
) -> Vec<Endpoint> {
    let annotations = Annotations::new(&service.metadata, config);
    let mut found = Vec::new();
    if !config.ignore_hostname_annotation {
        for host in annotations
            .get("hostname")
            .map(split_list)
            .unwrap_or_default()
        {
            found.extend(generate(
                service,
                spec_type,
                &host,
                Kind::Normal,
                objects,
                config,
                context,
            ));
        }
        for host in annotations
            .get("internal-hostname")
            .map(split_list)
            .unwrap_or_default()
        {
            found.extend(generate(
                service,
                spec_type,
                &host,
                Kind::Internal,
                objects,
                config,
                context,
            ));
        }
    }
    if let Some(template) = &config.fqdn_template
        && (found.is_empty() || config.combine_fqdn_annotation)
    {
        let value = template_value(service, "Service", "v1");
        for host in template.hostnames(&value) {
            found.extend(generate(
                service,
                spec_type,
                &host,
                Kind::Normal,
                objects,
                config,
                context,
            ));
        }
    }
    found
}

fn generate(
    service: &Service,
    spec_type: &str,
    host: &str,
    kind: Kind,
    objects: &ClusterObjects,
    config: &SourceConfig,
    context: &mut ObjectContext<'_>,
) -> Vec<Endpoint> {
    let annotations = Annotations::new(&service.metadata, config);
    if let Some(targets) = annotations.get("target") {
        return context.endpoints_for(host, &split_list(targets));
    }
    let spec = service.spec.clone().unwrap_or_default();
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    let cluster_targets = || -> Vec<String> {
        if cluster_ip.is_empty() || cluster_ip == "None" {
            Vec::new()
        } else {
            vec![cluster_ip.clone()]
        }
    };
    let targets = match (spec_type, kind) {
        ("LoadBalancer", Kind::Internal) => cluster_targets(),
        ("LoadBalancer", Kind::Normal) => {
            let external = spec.external_ips.clone().unwrap_or_default();
            if external.is_empty() {
                load_balancer_targets(service)
            } else {
                external
            }
        }
        ("ClusterIP", _) if cluster_ip == "None" => {
            return headless(service, host, objects, config, context);
        }
        ("ClusterIP", Kind::Normal) if !config.publish_internal_services => Vec::new(),
        ("ClusterIP", _) => cluster_targets(),
        ("NodePort", _) => return node_port(service, host, objects, config, context),
        ("ExternalName", _) => {
            let external = spec.external_ips.clone().unwrap_or_default();
            if external.is_empty() {
                spec.external_name.clone().into_iter().collect()
            } else {
                external
            }
        }
        _ => Vec::new(),
    };
    context.endpoints_for(host, &targets)
}

/// Every `status.loadBalancer.ingress[]` IP and hostname.
fn load_balancer_targets(service: &Service) -> Vec<String> {
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut targets = Vec::new();
    for entry in ingress.into_iter().flatten() {
        targets.extend(entry.ip.iter().filter(|ip| !ip.is_empty()).cloned());
        targets.extend(entry.hostname.iter().filter(|h| !h.is_empty()).cloned());
    }
    targets
}

/// The pods the Service's selector selects, in its namespace.
fn selected_pods<'a>(service: &Service, objects: &'a ClusterObjects) -> Vec<&'a Pod> {
    let namespace = service.metadata.namespace.as_deref();
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return Vec::new();
    };
    if selector.is_empty() {
        return Vec::new();
    }
    objects
        .pods
        .iter()
        .filter(|pod| pod.metadata.namespace.as_deref() == namespace)
        .filter(|pod| {
            let labels = pod.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .map(AsRef::as_ref)
        .collect()
}

/// Records per ready pod of a headless Service.
fn headless(
    service: &Service,
    host: &str,
    objects: &ClusterObjects,
    config: &SourceConfig,
    context: &mut ObjectContext<'_>,
) -> Vec<Endpoint> {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let namespace = service.metadata.namespace.as_deref();
    let annotations = Annotations::new(&service.metadata, config);
    let endpoints_type = annotations.get("endpoints-type");
    let publish_pod_ips = endpoints_type.is_none() && !config.publish_host_ip;
    let publish_not_ready = config.always_publish_not_ready_addresses
        || service
            .spec
            .as_ref()
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false);
    let pods = selected_pods(service, objects);
    // (name, type) ⇒ targets in first-seen order.
    let mut grouped: BTreeMap<(String, RecordType), Vec<String>> = BTreeMap::new();
    for slice in &objects.endpoint_slices {
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(signpost_model::annotations::SERVICE_NAME_LABEL));
        if slice.metadata.namespace.as_deref() != namespace
            || owner.map(String::as_str) != Some(name)
        {
            continue;
        }
        if publish_pod_ips && !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready && !publish_not_ready {
                continue;
            }
            let Some(reference) = endpoint.target_ref.as_ref() else {
                continue;
            };
            if reference.kind.as_deref() != Some("Pod") {
                continue;
            }
            let Some(pod) = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == reference.name.as_deref())
            else {
                tracing::debug!(service = %context.resource, pod = ?reference.name, "endpoint's pod is not among the selected pods");
                continue;
            };
            let mut names = vec![host.to_owned()];
            if let Some(hostname) = pod.spec.as_ref().and_then(|s| s.hostname.as_deref()) {
                names.push(format!("{hostname}.{host}"));
            }
            let pod_annotations = Annotations::new(&pod.metadata, config);
            let targets: Vec<String> = if let Some(target) = pod_annotations.get("target") {
                split_list(target)
            } else if endpoints_type == Some("NodeExternalIP") {
                node_of(pod, objects)
                    .map(|node| node_addresses(node, "ExternalIP", config.expose_internal_ipv6))
                    .unwrap_or_default()
            } else if endpoints_type == Some("HostIP") || config.publish_host_ip {
                pod.status
                    .as_ref()
                    .and_then(|s| s.host_ip.clone())
                    .into_iter()
                    .collect()
            } else {
                endpoint.addresses.first().cloned().into_iter().collect()
            };
            for name in &names {
                for target in &targets {
                    let list = grouped
                        .entry((name.clone(), suitable_type(target)))
                        .or_default();
                    if !list.contains(target) {
                        list.push(target.clone());
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for ((name, record_type), targets) in grouped {
        if context.check_name(&name, &targets) {
            out.push(context.endpoint(&name, record_type, targets));
        }
    }
    out
}

fn node_of<'a>(pod: &Pod, objects: &'a ClusterObjects) -> Option<&'a Node> {
    let node = pod.spec.as_ref()?.node_name.as_deref()?;
    objects
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .map(AsRef::as_ref)
}

/// A node's addresses of one kind; with `with_ipv6_internal`, its IPv6
/// InternalIPs too.
fn node_addresses(node: &Node, kind: &str, with_ipv6_internal: bool) -> Vec<String> {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    addresses
        .iter()
        .filter(|a| {
            a.type_ == kind
                || (with_ipv6_internal
                    && a.type_ == "InternalIP"
                    && suitable_type(&a.address) == RecordType::Aaaa)
        })
        .map(|a| a.address.clone())
        .collect()
}

/// Node addresses (A/AAAA) and an SRV per node port.
fn node_port(
    service: &Service,
    host: &str,
    objects: &ClusterObjects,
    config: &SourceConfig,
    context: &mut ObjectContext<'_>,
) -> Vec<Endpoint> {
    let spec = service.spec.clone().unwrap_or_default();
    let local = spec.external_traffic_policy.as_deref() == Some("Local");
    let nodes: Vec<&Node> = if local {
        // Nodes running a selected pod, at the best rank present anywhere:
        // ready and not terminating (3) > ready and terminating (2) > running (1).
        let mut ranked: BTreeMap<String, u8> = BTreeMap::new();
        for pod in selected_pods(service, objects) {
            let status = pod.status.as_ref();
            if status.and_then(|s| s.phase.as_deref()) != Some("Running") {
                continue;
            }
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let terminating = pod.metadata.deletion_timestamp.is_some();
            let rank = match (ready, terminating) {
                (true, false) => 3,
                (true, true) => 2,
                _ => 1,
            };
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
                let slot = ranked.entry(node).or_insert(0);
                *slot = (*slot).max(rank);
            }
        }
        let best = ranked.values().copied().max().unwrap_or(0);
        objects
            .nodes
            .iter()
            .filter(|n| {
                n.metadata
                    .name
                    .as_ref()
                    .is_some_and(|name| ranked.get(name) == Some(&best))
            })
            .map(AsRef::as_ref)
            .collect()
    } else {
        objects.nodes.iter().map(AsRef::as_ref).collect()
    };
    let nodes: Vec<&Node> = nodes
        .into_iter()
        .filter(|n| {
            !(config.exclude_unschedulable
                && n.spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false))
        })
        .collect();
    let access = Annotations::new(&service.metadata, config).get("access");
    let external: Vec<String> = nodes
        .iter()
        .flat_map(|n| node_addresses(n, "ExternalIP", config.expose_internal_ipv6))
        .collect();
    let internal: Vec<String> = nodes
        .iter()
        .flat_map(|n| node_addresses(n, "InternalIP", false))
        .collect();
    let targets = match access {
        Some("public") => external,
        Some("private") => internal,
        _ if nodes
            .iter()
            .any(|n| !node_addresses(n, "ExternalIP", false).is_empty()) =>
        {
            external
        }
        _ => internal,
    };
    let mut out = context.endpoints_for(host, &targets);
    let service_name = service.metadata.name.as_deref().unwrap_or_default();
    for port in spec.ports.iter().flatten() {
        let Some(node_port) = port.node_port.filter(|p| *p > 0) else {
            continue;
        };
        let protocol = port
            .protocol
            .as_deref()
            .unwrap_or("TCP")
            .to_ascii_lowercase();
        let name = format!("_{service_name}._{protocol}.{host}");
        if context.check_name(&name, &[]) {
            let target = format!("0 50 {node_port} {host}.");
            out.push(context.endpoint(&name, RecordType::Srv, vec![target]));
        }
    }
    out
}

/// Merges endpoints of several Services wanting one (name, type, set id):
/// non-CNAME targets are united and the first `resource` keeps its labels and
/// TTL; CNAMEs stay separate for the planner to resolve.
fn merge_by_resource(mut all: Vec<Endpoint>) -> Vec<Endpoint> {
    all.sort_by(|a, b| {
        a.labels
            .get(RESOURCE_LABEL)
            .cmp(&b.labels.get(RESOURCE_LABEL))
    });
    let mut merged: Vec<Endpoint> = Vec::new();
    let mut index: BTreeMap<crate::endpoint::EndpointKey, usize> = BTreeMap::new();
    for endpoint in all {
        if endpoint.record_type != RecordType::Cname {
            if let Some(&at) = index.get(&endpoint.key()) {
                merged[at].targets.extend(endpoint.targets);
                normalise_targets(&mut merged[at].targets);
                continue;
            }
            index.insert(endpoint.key(), merged.len());
        }
        merged.push(endpoint);
    }
    merged.sort_by(|a, b| {
        (a.dns_name.as_str(), a.record_type).cmp(&(b.dns_name.as_str(), b.record_type))
    });
    merged
}
