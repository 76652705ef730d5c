//! Checks on typed objects that the Kubernetes API server would have made, since catalog files
//! reach us without one.
//!
//! Control plane, pure functions. Invariants on success: `metadata.namespace` is set (`default`
//! when missing), Service names and namespaces are DNS labels, every cluster IP and every
//! endpoint address parses as an address of the declared family, and every EndpointSlice names
//! its Service in the `kubernetes.io/service-name` label.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use signpost_model::annotations::SERVICE_NAME_LABEL;

/// The namespace of objects that do not name one, as with `kubectl apply`.
const DEFAULT_NAMESPACE: &str = "default";

/// One validation problem; `near` is text from the manifest that locates it, when there is some.
#[derive(Debug)]
pub(crate) struct Issue {
    pub(crate) near: Option<String>,
    pub(crate) message: String,
}

/// Validates a Service and fills in its namespace.
pub(crate) fn service(service: &mut Service) -> Vec<Issue> {
    let mut issues = Vec::new();
    let namespace = fill_namespace("Service", &mut service.metadata, &mut issues);
    let name = match service.metadata.name.as_deref() {
        Some(name) if !name.is_empty() => name,
        _ => {
            issues.push(Issue {
                near: None,
                message: "Service has no metadata.name".to_owned(),
            });
            return issues;
        }
    };
    if !is_dns_label(name) {
        issues.push(Issue {
            near: Some(name.to_owned()),
            message: format!("Service name {name:?} is not a valid DNS label ({DNS_LABEL_RULE})"),
        });
    }
    let Some(spec) = &service.spec else {
        return issues;
    };
    let cluster_ips = spec
        .cluster_ip
        .iter()
        .map(|ip| ("spec.clusterIP".to_owned(), ip))
        .chain(
            spec.cluster_ips
                .iter()
                .flatten()
                .enumerate()
                .map(|(index, ip)| (format!("spec.clusterIPs[{index}]"), ip)),
        );
    for (field, ip) in cluster_ips {
        // Headless Services say "None"; an empty string means "allocate one".
        if ip != "None" && !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            issues.push(Issue {
                near: Some(ip.clone()),
                message: format!("Service {namespace}/{name}: {field} {ip:?} is not an IP address"),
            });
        }
    }
    issues
}

/// Validates an EndpointSlice and fills in its namespace.
pub(crate) fn endpoint_slice(slice: &mut EndpointSlice) -> Vec<Issue> {
    let mut issues = Vec::new();
    let namespace = fill_namespace("EndpointSlice", &mut slice.metadata, &mut issues);
    let who = format!(
        "EndpointSlice {namespace}/{}",
        slice.metadata.name.as_deref().unwrap_or("<unnamed>")
    );

    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(SERVICE_NAME_LABEL));
    match service {
        Some(service) if is_dns_label(service) => {}
        Some(service) => issues.push(Issue {
            near: Some(service.clone()),
            message: format!("{who}: label {SERVICE_NAME_LABEL} {service:?} is not a valid Service name ({DNS_LABEL_RULE})"),
        }),
        None => issues.push(Issue { near: None, message: format!("{who}: missing label {SERVICE_NAME_LABEL}") }),
    }

    let parses: fn(&str) -> bool = match slice.address_type.as_str() {
        "IPv4" => |address| address.parse::<Ipv4Addr>().is_ok(),
        "IPv6" => |address| address.parse::<Ipv6Addr>().is_ok(),
        "FQDN" => return issues,
        other => {
            issues.push(Issue {
                near: Some(format!("addressType: {other}")),
                message: format!(
                    "{who}: unsupported addressType {other:?} (want IPv4, IPv6 or FQDN)"
                ),
            });
            return issues;
        }
    };
    for (endpoint_index, endpoint) in slice.endpoints.iter().enumerate() {
        for (address_index, address) in endpoint.addresses.iter().enumerate() {
            if !parses(address) {
                issues.push(Issue {
                    near: Some(address.clone()),
                    message: format!(
                        "{who}: endpoints[{endpoint_index}].addresses[{address_index}] {address:?} is not an {} address",
                        slice.address_type
                    ),
                });
            }
        }
    }
    issues
}

/// Validates an Ingress and fills in its namespace: it needs a name, and
/// every rule host and TLS host must be a DNS name (a leading `*.` allowed).
pub(crate) fn ingress(ingress: &mut Ingress) -> Vec<Issue> {
    let mut issues = Vec::new();
    let namespace = fill_namespace("Ingress", &mut ingress.metadata, &mut issues);
    let Some(name) = named("Ingress", &ingress.metadata, &mut issues) else {
        return issues;
    };
    let spec = ingress.spec.as_ref();
    let rule_hosts = spec
        .and_then(|s| s.rules.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| r.host.as_deref());
    let tls_hosts = spec
        .and_then(|s| s.tls.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten().map(String::as_str));
    for host in rule_hosts.chain(tls_hosts) {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if !bare.split('.').all(is_dns_label) {
            issues.push(Issue {
                near: Some(host.to_owned()),
                message: format!(
                    "Ingress {namespace}/{name}: host {host:?} is not a valid DNS name"
                ),
            });
        }
    }
    issues
}

/// Validates a Node: it needs a name; addresses of type InternalIP and
/// ExternalIP must parse as IP addresses.
pub(crate) fn node(node: &Node) -> Vec<Issue> {
    let mut issues = Vec::new();
    let Some(name) = named("Node", &node.metadata, &mut issues) else {
        return issues;
    };
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    for address in addresses.into_iter().flatten() {
        if matches!(address.type_.as_str(), "InternalIP" | "ExternalIP")
            && address.address.parse::<IpAddr>().is_err()
        {
            issues.push(Issue {
                near: Some(address.address.clone()),
                message: format!(
                    "Node {name}: {} {:?} is not an IP address",
                    address.type_, address.address
                ),
            });
        }
    }
    issues
}

/// Validates a Pod and fills in its namespace: it needs a name; its pod and
/// host IPs must parse.
pub(crate) fn pod(pod: &mut Pod) -> Vec<Issue> {
    let mut issues = Vec::new();
    let namespace = fill_namespace("Pod", &mut pod.metadata, &mut issues);
    let Some(name) = named("Pod", &pod.metadata, &mut issues) else {
        return issues;
    };
    let status = pod.status.as_ref();
    let ips = status
        .and_then(|s| s.pod_ip.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.host_ip.as_ref()));
    for ip in ips {
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            issues.push(Issue {
                near: Some(ip.clone()),
                message: format!("Pod {namespace}/{name}: {ip:?} is not an IP address"),
            });
        }
    }
    issues
}

/// The object's name, or an issue when it has none.
fn named(kind: &str, metadata: &ObjectMeta, issues: &mut Vec<Issue>) -> Option<String> {
    match metadata.name.as_deref() {
        Some(name) if !name.is_empty() => Some(name.to_owned()),
        _ => {
            issues.push(Issue {
                near: None,
                message: format!("{kind} has no metadata.name"),
            });
            None
        }
    }
}

/// Sets a missing namespace to `default`, checks it, and returns it.
fn fill_namespace(kind: &str, metadata: &mut ObjectMeta, issues: &mut Vec<Issue>) -> String {
    let namespace = metadata.namespace.get_or_insert_with(String::new);
    if namespace.is_empty() {
        DEFAULT_NAMESPACE.clone_into(namespace);
    }
    if !is_dns_label(namespace) {
        issues.push(Issue {
            near: Some(namespace.clone()),
            message: format!(
                "{kind} {}: namespace {namespace:?} is not a valid DNS label ({DNS_LABEL_RULE})",
                metadata.name.as_deref().unwrap_or("<unnamed>")
            ),
        });
    }
    namespace.clone()
}

const DNS_LABEL_RULE: &str = "RFC 1123: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit";

/// Whether `label` is a Kubernetes DNS label: RFC 1123 §2.1 host name label syntax (a leading
/// digit is allowed), at most 63 octets (RFC 1035 §2.3.4), lower case only.
pub(crate) fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alphanumeric = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes.iter().all(|byte| alphanumeric(byte) || *byte == b'-')
}
