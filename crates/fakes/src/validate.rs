//! Validation and defaulting of the kinds signpost writes, with the real server's field paths and messages.
//!
//! Follows k8s.io/apimachinery `util/validation` (DNS-1123/1035 names, label values, IP addresses) and the
//! validation of the kubernetes `pkg/apis/{core,discovery}` packages for what the fake checks:
//!
//! - every kind: `metadata.name` (or `generateName`) required and well-formed for its [`NameRule`],
//!   label values well-formed;
//! - `Service`: `spec.type` supported, `spec.clusterIP` a valid IP, `None` or empty (reported on
//!   `spec.clusterIPs[0]`, as the real server reports it after copying `clusterIP` into `clusterIPs`),
//!   immutable once allocated, ports in 1..=65535, `spec.ports` required unless headless or ExternalName;
//! - `EndpointSlice`: `addressType` required and one of `FQDN`, `IPv4`, `IPv6` (immutable), each endpoint
//!   with 1 to 100 addresses valid for the address type. Like the real server, an absent or empty
//!   `endpoints` list is accepted (the EndpointSlice controller writes such placeholder slices);
//! - `Pod`: `spec.containers` required; `spec.readinessGates[].conditionType` a qualified name; each of
//!   `status.conditions` with a `type` (a qualified name unless one of the kubelet's own, as
//!   `validatePodConditions` requires), a `status` of `True`, `False` or `Unknown` (the `ConditionStatus`
//!   values; the fake is stricter than the server here), a `lastTransitionTime` that is an RFC 3339 time
//!   when present, and no type twice; `Lease`: `spec.leaseDurationSeconds` > 0 when set;
//! - `ConfigMap` (`ValidateConfigMap`): every `data` and `binaryData` key a valid config key
//!   (`IsConfigMapKey`), no key in both, and the values together at most 1 MiB
//!   ([`MAX_CONFIG_MAP_BYTES`], reported on the field `[]`, as the real server words it).
//!
//! Defaulting mirrors what a client reads back: Service `type`, `sessionAffinity`, port `protocol` and
//! `targetPort`, an allocated `clusterIP` from 10.96.0.0/12 with `clusterIPs`/`ipFamilies`/`ipFamilyPolicy`;
//! EndpointSlice port `protocol`; Namespace `status.phase` and the `kubernetes.io/metadata.name` label;
//! Pod `status.phase: Pending`; Secret `stringData` folded into `data`.
//!
//! Control plane of the fake; pure functions except the Service IP allocator, owned by the store.

use std::net::IpAddr;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::resources::{NameRule, ResourceType};
use crate::status::FieldError;
use crate::util;

/// Messages of a name that breaks `rule` (empty when the name is valid).
pub fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Dns1123Subdomain => dns1123_subdomain(name),
        NameRule::Dns1123Label => dns1123_label(name),
        NameRule::Dns1035Label => dns1035_label(name),
    }
}

fn is_label(value: &str, first_alpha: bool) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && (if first_alpha {
            bytes[0].is_ascii_lowercase()
        } else {
            bytes[0] != b'-'
        })
        && bytes[bytes.len() - 1] != b'-'
}

/// `validation.IsDNS1123Label`.
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !is_label(value, false) {
        errors.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and \
             must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used \
             for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    errors
}

/// `validation.IsDNS1123Subdomain`.
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    if !value.split('.').all(|label| is_label(label, false)) {
        errors.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or \
             '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used \
             for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned(),
        );
    }
    errors
}

/// `validation.IsDNS1035Label`.
pub fn dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !is_label(value, true) {
        errors.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
             alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', \
             regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    errors
}

/// `validation.IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    let bytes = value.as_bytes();
    let ok = bytes.is_empty()
        || (bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
    if !ok {
        errors.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or \
             '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  \
             or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_owned(),
        );
    }
    errors
}

/// Validates an object about to be stored; `old` is the stored object on update.
pub fn validate(resource: &ResourceType, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let metadata = &object["metadata"];
    let name = metadata["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for message in name_errors(resource.name_rule, name) {
            errors.push(FieldError::invalid("metadata.name", &json!(name), &message));
        }
    }
    if let Some(labels) = metadata["labels"].as_object() {
        for value in labels.values() {
            let text = value.as_str().unwrap_or("");
            for message in label_value_errors(text) {
                errors.push(FieldError::invalid("metadata.labels", value, &message));
            }
        }
    }
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Service") => validate_service(object, old, &mut errors),
        ("discovery.k8s.io", "EndpointSlice") => validate_endpoint_slice(object, old, &mut errors),
        ("", "Pod") => validate_pod(object, &mut errors),
        ("", "ConfigMap") => validate_config_map(object, &mut errors),
        ("coordination.k8s.io", "Lease") => {
            if let Some(seconds) = object["spec"]["leaseDurationSeconds"].as_i64()
                && seconds <= 0
            {
                errors.push(FieldError::invalid(
                    "spec.leaseDurationSeconds",
                    &json!(seconds),
                    "must be greater than 0",
                ));
            }
        }
        _ => {}
    }
    errors
}

/// The pod condition types the kubelet owns (`validatePodConditions` skips their name check).
const SYSTEM_POD_CONDITIONS: &[&str] = &[
    "PodScheduled",
    "Ready",
    "Initialized",
    "ContainersReady",
    "PodReadyToStartContainers",
];

fn validate_pod(object: &Value, errors: &mut Vec<FieldError>) {
    if object["spec"]["containers"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        errors.push(FieldError::required("spec.containers", ""));
    }
    if let Some(gates) = object["spec"]["readinessGates"].as_array() {
        for (i, gate) in gates.iter().enumerate() {
            let field = format!("spec.readinessGates[{i}].conditionType");
            let value = &gate["conditionType"];
            for message in qualified_name_errors(value.as_str().unwrap_or("")) {
                errors.push(FieldError::invalid(&field, value, &message));
            }
        }
    }
    let Some(conditions) = object["status"]["conditions"].as_array() else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for (i, condition) in conditions.iter().enumerate() {
        let field = |name: &str| format!("status.conditions[{i}].{name}");
        match condition["type"].as_str() {
            None | Some("") => errors.push(FieldError::required(field("type"), "")),
            Some(kind) => {
                if !SYSTEM_POD_CONDITIONS.contains(&kind) {
                    for message in qualified_name_errors(kind) {
                        errors.push(FieldError::invalid(
                            field("Type"),
                            &condition["type"],
                            &message,
                        ));
                    }
                }
                if !seen.insert(kind.to_owned()) {
                    errors.push(FieldError {
                        cause_type: "FieldValueDuplicate",
                        field: field("type"),
                        body: format!("Duplicate value: {kind:?}"),
                    });
                }
            }
        }
        match condition["status"].as_str() {
            Some("True" | "False" | "Unknown") => {}
            None => errors.push(FieldError::required(field("status"), "")),
            Some(_) => errors.push(FieldError::not_supported(
                field("status"),
                &condition["status"],
                &["False", "True", "Unknown"],
            )),
        }
        for time in ["lastTransitionTime", "lastProbeTime"] {
            let value = &condition[time];
            if !value.is_null()
                && value
                    .as_str()
                    .is_none_or(|t| util::parse_rfc3339(t).is_none())
            {
                errors.push(FieldError::invalid(
                    field(time),
                    value,
                    "must be an RFC 3339 time",
                ));
            }
        }
    }
}

/// `IsQualifiedName`: an optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
/// characters, alphanumeric at both ends, with `-`, `_` and `.` inside.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errors.push("prefix part must be non-empty".to_owned());
        } else {
            errors.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_owned());
    } else if !edge(name.chars().next())
        || !edge(name.chars().last())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        errors.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_owned());
    }
    errors
}

/// `corev1.MaxSecretSize`, the limit on a ConfigMap's (and a Secret's) data: 1 MiB.
pub const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

/// `ValidateConfigMap`: keys, duplicates between `data` and `binaryData`, total size of the values
/// (`binaryData` values counted decoded, as the server stores them).
fn validate_config_map(object: &Value, errors: &mut Vec<FieldError>) {
    let mut total = 0;
    if let Some(data) = object["data"].as_object() {
        for (key, value) in data {
            for message in config_map_key_errors(key) {
                errors.push(FieldError::invalid(
                    format!("data[{key}]"),
                    &json!(key),
                    &message,
                ));
            }
            total += value.as_str().map_or(0, str::len);
        }
    }
    if let Some(binary) = object["binaryData"].as_object() {
        for (key, value) in binary {
            for message in config_map_key_errors(key) {
                errors.push(FieldError::invalid(
                    format!("binaryData[{key}]"),
                    &json!(key),
                    &message,
                ));
            }
            if object["data"].get(key).is_some() {
                errors.push(FieldError::invalid(
                    format!("binaryData[{key}]"),
                    &json!(key),
                    "duplicate key in both data and binaryData",
                ));
            }
            let encoded = value.as_str().unwrap_or("");
            total += base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_or(encoded.len(), |bytes| bytes.len());
        }
    }
    if total > MAX_CONFIG_MAP_BYTES {
        errors.push(FieldError::too_long("[]", MAX_CONFIG_MAP_BYTES));
    }
}

/// `validation.IsConfigMapKey`.
fn config_map_key_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if key.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        errors.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  \
             or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .to_owned(),
        );
    }
    if key == "." {
        errors.push("must not be '.'".to_owned());
    } else if key == ".." {
        errors.push("must not be '..'".to_owned());
    } else if key.starts_with("..") {
        errors.push("must not start with '..'".to_owned());
    }
    errors
}

fn validate_service(object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let spec = &object["spec"];
    let service_type = spec["type"].as_str().unwrap_or("ClusterIP");
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&service_type) {
        errors.push(FieldError::not_supported("spec.type", &spec["type"], TYPES));
    }
    let cluster_ip = spec["clusterIP"].as_str().unwrap_or("");
    if !cluster_ip.is_empty() && cluster_ip != "None" && cluster_ip.parse::<IpAddr>().is_err() {
        errors.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            &json!(cluster_ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    if let Some(old) = old {
        let before = old["spec"]["clusterIP"].as_str().unwrap_or("");
        if !before.is_empty() && !cluster_ip.is_empty() && before != cluster_ip {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &json!(cluster_ip),
                "may not change once set",
            ));
        }
    }
    if service_type == "ExternalName" {
        if spec["externalName"].as_str().unwrap_or("").is_empty() {
            errors.push(FieldError::required("spec.externalName", ""));
        }
        return;
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if ports.is_empty() && cluster_ip != "None" {
        errors.push(FieldError::required("spec.ports", ""));
    }
    for (i, port) in ports.iter().enumerate() {
        let number = port["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errors.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                &json!(number),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if ports.len() > 1 && port["name"].as_str().unwrap_or("").is_empty() {
            errors.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
    }
}

fn validate_endpoint_slice(object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    let address_type = object["addressType"].as_str().unwrap_or("");
    if address_type.is_empty() {
        errors.push(FieldError::required("addressType", ""));
    } else if !TYPES.contains(&address_type) {
        errors.push(FieldError::not_supported(
            "addressType",
            &object["addressType"],
            TYPES,
        ));
    }
    if let Some(old) = old
        && old["addressType"] != object["addressType"]
    {
        errors.push(FieldError::invalid(
            "addressType",
            &object["addressType"],
            "field is immutable",
        ));
    }
    let endpoints = object["endpoints"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if endpoints.len() > 1000 {
        errors.push(FieldError {
            cause_type: "FieldValueTooMany",
            field: "endpoints".to_owned(),
            body: format!(
                "Too many: {}: must have at most 1000 items",
                endpoints.len()
            ),
        });
        return;
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}].addresses");
        let addresses = endpoint["addresses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if addresses.is_empty() {
            errors.push(FieldError::required(
                path.clone(),
                "must contain at least 1 address",
            ));
        } else if addresses.len() > 100 {
            errors.push(FieldError {
                cause_type: "FieldValueTooMany",
                field: path.clone(),
                body: format!("Too many: {}: must have at most 100 items", addresses.len()),
            });
        }
        for (j, address) in addresses.iter().enumerate() {
            let text = address.as_str().unwrap_or("");
            let field = format!("{path}[{j}]");
            let problem = match address_type {
                "IPv4" => (!matches!(text.parse::<IpAddr>(), Ok(IpAddr::V4(_))))
                    .then_some("must be a valid IPv4 address"),
                "IPv6" => (!matches!(text.parse::<IpAddr>(), Ok(IpAddr::V6(_))))
                    .then_some("must be a valid IPv6 address"),
                "FQDN" => {
                    let name = text.strip_suffix('.').unwrap_or(text);
                    (!dns1123_subdomain(name).is_empty() || !name.contains('.')).then_some(
                        "should be a domain with at least two segments separated by dots",
                    )
                }
                _ => None,
            };
            if let Some(message) = problem {
                errors.push(FieldError::invalid(field, address, message));
            }
        }
    }
}

/// Fills in the defaults the real server sets on create (`old` = `None`) or keeps across an update.
pub fn default(
    resource: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
    allocate_ip: &mut dyn FnMut() -> String,
) {
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Service") => default_service(object, old, allocate_ip),
        ("discovery.k8s.io", "EndpointSlice") => {
            if let Some(ports) = object["ports"].as_array_mut() {
                for port in ports {
                    if port.get("protocol").is_none() {
                        port["protocol"] = json!("TCP");
                    }
                    if port.get("name").is_none() {
                        port["name"] = json!("");
                    }
                }
            }
        }
        ("", "Namespace") => {
            let name = object["metadata"]["name"].clone();
            if !object["metadata"]["labels"].is_object() {
                object["metadata"]["labels"] = json!({});
            }
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            if old.is_none() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
                object["status"] = json!({"phase": "Active"});
            }
        }
        ("", "Pod") if old.is_none() && object["status"]["phase"].is_null() => {
            object["status"] = json!({"phase": "Pending"});
        }
        ("", "Secret") => {
            if object.get("type").is_none() {
                object["type"] = json!("Opaque");
            }
            if let Some(Value::Object(string_data)) =
                object.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                if !object["data"].is_object() {
                    object["data"] = json!({});
                }
                for (key, value) in string_data {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(value.as_str().unwrap_or("").as_bytes());
                    object["data"][key] = json!(encoded);
                }
            }
        }
        _ => {}
    }
}

fn default_service(
    object: &mut Value,
    old: Option<&Value>,
    allocate_ip: &mut dyn FnMut() -> String,
) {
    if !object["spec"].is_object() {
        object["spec"] = json!({});
    }
    let spec = &mut object["spec"];
    if spec["type"].is_null() {
        spec["type"] = json!("ClusterIP");
    }
    let external_name = spec["type"] == "ExternalName";
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for port in ports {
            if port["protocol"].is_null() {
                port["protocol"] = json!("TCP");
            }
            if port["targetPort"].is_null() {
                port["targetPort"] = port["port"].clone();
            }
        }
    }
    if external_name {
        return;
    }
    // On update an omitted clusterIP keeps the allocated one (the service strategy's patchAllocatedValues).
    if spec["clusterIP"].as_str().unwrap_or("").is_empty() {
        let kept = old
            .and_then(|o| o["spec"]["clusterIP"].as_str())
            .unwrap_or("");
        spec["clusterIP"] = if kept.is_empty() {
            json!(allocate_ip())
        } else {
            json!(kept)
        };
    }
    let ip = spec["clusterIP"].as_str().unwrap_or("").to_owned();
    if !ip.is_empty() && (spec["clusterIPs"].is_null() || old.is_some()) {
        spec["clusterIPs"] = json!([ip]);
    }
    if spec["ipFamilies"].is_null() {
        let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
        spec["ipFamilies"] = json!([family]);
    }
    if spec["ipFamilyPolicy"].is_null() {
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
    if spec["internalTrafficPolicy"].is_null() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn kind(group: &str, resource: &str) -> ResourceType {
        Registry::builtin().find(group, resource).unwrap().clone()
    }

    /// apimachinery IsDNS1123Label/Subdomain/IsDNS1035Label: boundaries and the leading-digit rule.
    #[test]
    fn dns_name_rules() {
        assert!(dns1123_subdomain("a.b-c.d").is_empty());
        assert!(!dns1123_subdomain("A").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(dns1123_label("1abc").is_empty());
        assert!(!dns1035_label("1abc").is_empty());
        assert!(!dns1123_label(&"a".repeat(64)).is_empty());
        assert!(dns1123_label(&"a".repeat(63)).is_empty());
    }

    /// Discovery validation: addressType required and from a closed set; each endpoint needs an address of
    /// that type; no endpoints at all is accepted like the real server does.
    #[test]
    fn endpoint_slice_rules() {
        let slices = kind("discovery.k8s.io", "endpointslices");
        let ok = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
                        "endpoints": [{"addresses": ["10.0.0.1"]}]});
        assert!(validate(&slices, &ok, None).is_empty());
        let placeholder = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4"});
        assert!(validate(&slices, &placeholder, None).is_empty());
        let missing = json!({"metadata": {"name": "web-abc"}, "endpoints": []});
        let errors = validate(&slices, &missing, None);
        assert_eq!(errors[0].field, "addressType");
        assert_eq!(errors[0].body, "Required value");
        let wrong = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv6",
                           "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": []}]});
        let errors = validate(&slices, &wrong, None);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].field, "endpoints[0].addresses[0]");
        assert_eq!(
            errors[1].body,
            "Required value: must contain at least 1 address"
        );
    }

    /// Core `ValidateConfigMap`: config keys, and at most 1 MiB of values (`MaxSecretSize`), reported on `[]`
    /// as `Too long: may not be more than 1048576 bytes`; exactly 1 MiB is accepted.
    #[test]
    fn config_map_rules() {
        let config_maps = kind("", "configmaps");
        let ok = json!({"metadata": {"name": "c"}, "data": {"a.yaml": "x", "B_2-c": "y"}});
        assert!(validate(&config_maps, &ok, None).is_empty());
        let bad_keys = json!({"metadata": {"name": "c"}, "data": {"a/b": "x", "..x": "y"}});
        let errors = validate(&config_maps, &bad_keys, None);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].field, "data[..x]");
        assert!(
            errors[0].body.ends_with("must not start with '..'"),
            "{errors:?}"
        );
        assert_eq!(errors[1].field, "data[a/b]");
        let full = json!({"metadata": {"name": "c"},
                          "data": {"a": "x".repeat(MAX_CONFIG_MAP_BYTES - 1), "b": "y"}});
        assert!(validate(&config_maps, &full, None).is_empty());
        let over = json!({"metadata": {"name": "c"},
                          "data": {"a": "x".repeat(MAX_CONFIG_MAP_BYTES), "b": "y"}});
        let errors = validate(&config_maps, &over, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "[]");
        assert_eq!(
            errors[0].body,
            "Too long: may not be more than 1048576 bytes"
        );
        assert_eq!(errors[0].cause_type, "FieldValueTooLong");
    }

    /// Core validation: clusterIP must be an IP, "None" or empty; ports are required unless headless.
    #[test]
    fn service_rules() {
        let services = kind("", "services");
        let bad = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.300",
                         "ports": [{"port": 80}]}});
        let errors = validate(&services, &bad, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].body,
            "Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
        let headless = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "None"}});
        assert!(validate(&services, &headless, None).is_empty());
        let no_ports = json!({"metadata": {"name": "web"}, "spec": {}});
        assert_eq!(validate(&services, &no_ports, None)[0].field, "spec.ports");
        let bad_name = json!({"metadata": {"name": "1web"}, "spec": {"clusterIP": "None"}});
        assert_eq!(
            validate(&services, &bad_name, None)[0].field,
            "metadata.name"
        );
    }
}
