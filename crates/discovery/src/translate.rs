//! Translates Services and EndpointSlices into the cluster zone's model.
//!
//! Control plane. EndpointSlices join their Service by the
//! `kubernetes.io/service-name` label within the same namespace (as the
//! EndpointSlice controller sets it). What the cluster zone cannot serve is
//! skipped and reported by [`skipped_objects`], never fatal for the rest: a
//! slice without that label, a slice of another address type than IPv4 or
//! IPv6 (FQDN slices are deprecated and never written by the controller),
//! addresses that do not parse, and a Service whose cluster IP is malformed.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use signpost_model::annotations::{
    EXTERNAL_DNS_HOSTNAME, GEO_HOSTNAME, GEO_PRIORITY, GEO_REGION, HEALTH_CHECK_ENABLED,
    HEALTH_CHECK_PATH, HEALTH_CHECK_PORT, HEALTH_CHECK_PROTOCOL, SERVICE_NAME_LABEL,
};
use signpost_model::{
    CheckProtocol, ClusterEndpoint, ClusterPod, ClusterService, GeoSpec, HealthCheckSpec, Protocol,
    ServiceKind, ServicePort,
};
use std::collections::HashMap;
use std::net::IpAddr;

/// Builds one [`ClusterService`] per Service, with the endpoints of its slices.
pub fn cluster_services<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoint_slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<ClusterService> {
    let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in endpoint_slices {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or("default");
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        slices
            .entry((namespace, service.as_str()))
            .or_default()
            .push(slice);
    }
    services
        .into_iter()
        .filter(|service| malformed_cluster_ip(service).is_none())
        .filter_map(|service| {
            let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
            let name = service.metadata.name.as_deref()?;
            let own = slices
                .get(&(namespace, name))
                .map(Vec::as_slice)
                .unwrap_or_default();
            Some(convert(namespace, name, service, own))
        })
        .collect()
}

/// Running pods' addresses, for `pods verified`. A pod being deleted is left
/// out, as CoreDNS does.
pub fn cluster_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Vec<ClusterPod> {
    pods.into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let mut addresses: Vec<IpAddr> = status
                .pod_ips
                .iter()
                .flatten()
                .filter_map(|ip| ip.ip.parse().ok())
                .collect();
            if addresses.is_empty() {
                addresses.extend(
                    status
                        .pod_ip
                        .as_deref()
                        .and_then(|ip| ip.parse::<IpAddr>().ok()),
                );
            }
            Some(ClusterPod {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                addresses,
            })
        })
        .filter(|pod| !pod.addresses.is_empty())
        .collect()
}

/// An object (or part of one) the cluster zone leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Skipped {
    /// `Service` or `EndpointSlice`.
    pub kind: &'static str,
    /// `namespace/name`.
    pub object: String,
    /// Closed set, for the metric label: `no-service-name-label`,
    /// `address-type`, `address`, `cluster-ip`.
    pub reason: &'static str,
    /// What exactly, for the log line.
    pub detail: String,
}

/// Everything [`cluster_services`] leaves out of the same objects.
pub fn skipped_objects<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoint_slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<Skipped> {
    let qualified = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("")
        )
    };
    let mut skipped = Vec::new();
    for service in services {
        if let Some(address) = malformed_cluster_ip(service) {
            skipped.push(Skipped {
                kind: "Service",
                object: qualified(&service.metadata),
                reason: "cluster-ip",
                detail: format!("cluster IP {address:?} is not an IP address"),
            });
        }
    }
    for slice in endpoint_slices {
        let object = qualified(&slice.metadata);
        let labelled = slice
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SERVICE_NAME_LABEL));
        if !labelled {
            skipped.push(Skipped {
                kind: "EndpointSlice",
                object,
                reason: "no-service-name-label",
                detail: format!("no {SERVICE_NAME_LABEL} label, so no Service to join"),
            });
            continue;
        }
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            skipped.push(Skipped {
                kind: "EndpointSlice",
                object,
                reason: "address-type",
                detail: format!("address type {:?} is not IPv4 or IPv6", slice.address_type),
            });
            continue;
        }
        for address in slice.endpoints.iter().flat_map(|e| &e.addresses) {
            if address.parse::<IpAddr>().is_err() {
                skipped.push(Skipped {
                    kind: "EndpointSlice",
                    object: object.clone(),
                    reason: "address",
                    detail: format!("endpoint address {address:?} is not an IP address"),
                });
            }
        }
    }
    skipped
}

/// A cluster IP that is set, not `None`, and not an address.
fn malformed_cluster_ip(service: &Service) -> Option<&str> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.cluster_ip
        .iter()
        .chain(spec.cluster_ips.iter().flatten())
        .map(String::as_str)
        .find(|ip| !ip.is_empty() && *ip != "None" && ip.parse::<IpAddr>().is_err())
}

fn convert(
    namespace: &str,
    name: &str,
    service: &Service,
    slices: &[&EndpointSlice],
) -> ClusterService {
    let part = ServicePart::new(namespace, name, service);
    let parts: Vec<SlicePart> = slices.iter().map(|s| SlicePart::new(s)).collect();
    part.join(parts.iter())
}

/// What the cluster zone reads of one Service: everything but its
/// endpoints, which come from its EndpointSlices ([`ServicePart::join`]).
/// Sources keep this instead of the Service object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePart {
    /// The service with no endpoints and no health check yet.
    base: ClusterService,
    /// The health check, once its port is known.
    health: Option<HealthDraft>,
}

/// A health check whose port may come from the EndpointSlices.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HealthDraft {
    protocol: CheckProtocol,
    path: Option<String>,
    port: DraftPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DraftPort {
    Known(u16),
    /// The EndpointSlice port named like the service's first port, else `fallback`.
    Named {
        name: Option<String>,
        fallback: Option<u16>,
    },
    /// No port: no health check.
    None,
}

/// What the cluster zone reads of one EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePart {
    /// The Service it belongs to (`kubernetes.io/service-name`); `None`: it joins none.
    pub service: Option<String>,
    /// Its endpoints (none for an address type other than IPv4 and IPv6).
    pub endpoints: Vec<ClusterEndpoint>,
    /// Its ports as written (name, port), for a health check's port.
    ports: Vec<(Option<String>, Option<i32>)>,
}

// === impl ServicePart ===

impl ServicePart {
    /// Reads a Service (`namespace` defaulted by the caller).
    pub fn new(namespace: &str, name: &str, service: &Service) -> Self {
        let spec = service.spec.clone().unwrap_or_default();
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            ServiceKind::ExternalName(spec.external_name.clone().unwrap_or_default())
        } else if spec.cluster_ip.as_deref() == Some("None") {
            ServiceKind::Headless
        } else {
            let mut addresses: Vec<IpAddr> = spec
                .cluster_ips
                .iter()
                .flatten()
                .filter_map(|ip| ip.parse().ok())
                .collect();
            if addresses.is_empty() {
                addresses.extend(
                    spec.cluster_ip
                        .as_deref()
                        .and_then(|ip| ip.parse::<IpAddr>().ok()),
                );
            }
            ServiceKind::ClusterIp(addresses)
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(ServicePort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: protocol(p.protocol.as_deref()),
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect();
        Self {
            base: ClusterService {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                kind,
                ports,
                endpoints: Vec::new(),
                publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
                health_check: None,
                geo: geo(service),
                external_addresses: external_addresses(service, &spec),
            },
            health: health_draft(service, &spec),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.base.namespace
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.base.name
    }

    /// The service with the endpoints of `slices` (its own, in order),
    /// moved rather than copied.
    pub fn join_owned(&self, slices: Vec<SlicePart>) -> ClusterService {
        let shapes: Vec<SlicePart> = slices.iter().map(SlicePart::shape).collect();
        let mut service = self.join(shapes.iter());
        service.endpoints = slices.into_iter().flat_map(|s| s.endpoints).collect();
        service
    }

    /// The service with the endpoints of `slices` (its own, in order).
    pub fn join<'a>(&self, slices: impl Iterator<Item = &'a SlicePart> + Clone) -> ClusterService {
        let mut service = self.base.clone();
        service.health_check = self.health.as_ref().and_then(|draft| {
            let port = match &draft.port {
                DraftPort::Known(port) => *port,
                DraftPort::None => return None,
                DraftPort::Named { name, fallback } => slices
                    .clone()
                    .flat_map(|s| &s.ports)
                    .find(|(port_name, _)| port_name == name)
                    .and_then(|(_, port)| *port)
                    .and_then(|p| u16::try_from(p).ok())
                    .or(*fallback)?,
            };
            Some(HealthCheckSpec {
                protocol: draft.protocol,
                path: draft.path.clone(),
                port,
            })
        });
        service.endpoints = slices.flat_map(|s| s.endpoints.iter().cloned()).collect();
        service
    }
}

// === impl SlicePart ===

impl SlicePart {
    /// The same slice without its endpoints.
    pub fn shape(&self) -> Self {
        Self {
            service: self.service.clone(),
            endpoints: Vec::new(),
            ports: self.ports.clone(),
        }
    }

    /// Its endpoints, moved out when no one else holds the part.
    pub fn into_endpoints(part: std::sync::Arc<Self>) -> Vec<ClusterEndpoint> {
        std::sync::Arc::try_unwrap(part)
            .map_or_else(|shared| shared.endpoints.clone(), |p| p.endpoints)
    }

    /// Its shape (see [`Self::shape`]) and its endpoints, both moved out
    /// when no one else holds the part.
    pub fn split(part: std::sync::Arc<Self>) -> (Self, Vec<ClusterEndpoint>) {
        match std::sync::Arc::try_unwrap(part) {
            Ok(mut part) => {
                let endpoints = std::mem::take(&mut part.endpoints);
                (part, endpoints)
            }
            Err(shared) => (shared.shape(), shared.endpoints.clone()),
        }
    }

    /// The same slice with these endpoints.
    pub fn with_endpoints(&self, endpoints: Vec<ClusterEndpoint>) -> Self {
        Self {
            service: self.service.clone(),
            endpoints,
            ports: self.ports.clone(),
        }
    }

    /// Reads an EndpointSlice.
    pub fn new(slice: &EndpointSlice) -> Self {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.port))
            .collect();
        let mut endpoints = Vec::new();
        if matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            let slice_ports: std::sync::Arc<[ServicePort]> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(ServicePort {
                        name: p.name.clone().unwrap_or_default(),
                        protocol: protocol(p.protocol.as_deref()),
                        port: u16::try_from(p.port?).ok()?,
                    })
                })
                .collect();
            // Exactly as many as the slice has: the vector is kept as the
            // joined service's endpoints.
            endpoints.reserve_exact(slice.endpoints.len());
            for endpoint in &slice.endpoints {
                let pod_name = endpoint
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
                    .and_then(|r| r.name.clone());
                endpoints.push(ClusterEndpoint {
                    addresses: endpoint
                        .addresses
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect(),
                    hostname: endpoint.hostname.clone(),
                    pod_name,
                    // EndpointConditions: "ready ... nil should be interpreted as true".
                    ready: endpoint
                        .conditions
                        .as_ref()
                        .and_then(|c| c.ready)
                        .unwrap_or(true),
                    ports: slice_ports.clone(),
                });
            }
        }
        Self {
            service,
            endpoints,
            ports,
        }
    }
}

/// What a Service object alone says of its cluster-zone standing: skipped
/// (with why) or served.
pub fn skipped_service(service: &Service) -> Option<Skipped> {
    skipped_objects(std::iter::once(service), std::iter::empty())
        .into_iter()
        .next()
}

/// What one EndpointSlice leaves out of answers.
pub fn skipped_slice(slice: &EndpointSlice) -> Vec<Skipped> {
    skipped_objects(std::iter::empty(), std::iter::once(slice))
}

/// True when a Service's cluster IP does not parse: it serves nothing.
pub fn is_malformed(service: &Service) -> bool {
    malformed_cluster_ip(service).is_some()
}

fn protocol(text: Option<&str>) -> Protocol {
    match text {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// Reads the health-check annotations. The port is the annotation's, else the
/// service's first port as the endpoints see it: its numeric `targetPort`, or
/// the EndpointSlice port of that name, or the port itself.
fn health_draft(
    service: &Service,
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
) -> Option<HealthDraft> {
    let annotations = service.metadata.annotations.as_ref()?;
    if annotations.get(HEALTH_CHECK_ENABLED).map(String::as_str) != Some("true") {
        return None;
    }
    let protocol = match annotations.get(HEALTH_CHECK_PROTOCOL).map(String::as_str) {
        Some("https") => CheckProtocol::Https,
        Some("tcp") => CheckProtocol::Tcp,
        _ => CheckProtocol::Http,
    };
    let path = annotations.get(HEALTH_CHECK_PATH).cloned();
    let port = match annotations
        .get(HEALTH_CHECK_PORT)
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(port) => DraftPort::Known(port),
        None => {
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            match spec.ports.as_ref().and_then(|p| p.first()) {
                None => DraftPort::None,
                Some(first) => match &first.target_port {
                    Some(IntOrString::Int(port)) => match u16::try_from(*port) {
                        Ok(port) => DraftPort::Known(port),
                        Err(_) => DraftPort::None,
                    },
                    _ => DraftPort::Named {
                        name: first.name.clone(),
                        fallback: u16::try_from(first.port).ok(),
                    },
                },
            }
        }
    };
    Some(HealthDraft {
        protocol,
        path,
        port,
    })
}

fn geo(service: &Service) -> Option<GeoSpec> {
    let annotations = service.metadata.annotations.as_ref()?;
    let region = annotations.get(GEO_REGION)?.trim().to_owned();
    if region.is_empty() {
        return None;
    }
    let priority = annotations
        .get(GEO_PRIORITY)
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(100);
    let regional_name = annotations
        .get(EXTERNAL_DNS_HOSTNAME)
        .and_then(|h| h.split(',').next())
        .map(|h| h.trim().trim_end_matches('.').to_owned())
        .filter(|h| !h.is_empty());
    let name = annotations
        .get(GEO_HOSTNAME)
        .map(|h| h.trim().trim_end_matches('.').to_owned());
    Some(GeoSpec {
        region,
        priority,
        name,
        regional_name,
    })
}

/// `status.loadBalancer.ingress[].ip`, else `spec.externalIPs`.
fn external_addresses(
    service: &Service,
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
) -> Vec<IpAddr> {
    let ingress: Vec<IpAddr> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect();
    if !ingress.is_empty() {
        return ingress;
    }
    spec.external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}
