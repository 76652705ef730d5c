//! `meta.k8s.io/v1` `Table` output, what kubectl asks for with `Accept: application/json;as=Table;…`.
//!
//! Follows the API Concepts page, "Receiving resources as Tables": `columnDefinitions`, one row per
//! object with `cells`, and `object` as `PartialObjectMetadata` (`includeObject=Metadata`, the default),
//! the full object (`Object`) or nothing (`None`). Columns follow the real server's printers for the types
//! signpost uses (services, endpointslices, namespaces, pods, configmaps, secrets, leases); other types get
//! the default `Name` / `Created At` columns.
//!
//! Control plane of the fake; pure functions.

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::util;

/// Renders one row's cells.
type Cells = fn(&Value) -> Vec<Value>;

fn column(name: &str, kind: &str, format: &str, priority: u8) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
}

fn age(object: &Value) -> String {
    object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(util::parse_rfc3339)
        .map(|created| util::human_age(util::unix_now() - created))
        .unwrap_or_else(|| "<unknown>".to_owned())
}

fn text_or(value: &Value, default: &str) -> String {
    value
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
        .to_owned()
}

/// Builds a Table of `objects`.
pub(crate) fn build(
    resource: &ResourceType,
    objects: &[Value],
    rv: Option<u64>,
    continue_token: Option<String>,
    remaining: Option<usize>,
    include_object: &str,
) -> Value {
    let (columns, cells): (Vec<Value>, Cells) =
        match (resource.group.as_str(), resource.resource.as_str()) {
            ("", "services") => (
                vec![
                    column("Name", "string", "name", 0),
                    column("Type", "string", "", 0),
                    column("Cluster-IP", "string", "", 0),
                    column("External-IP", "string", "", 0),
                    column("Port(s)", "string", "", 0),
                    column("Age", "string", "", 0),
                    column("Selector", "string", "", 1),
                ],
                service_cells,
            ),
            ("discovery.k8s.io", "endpointslices") => (
                vec![
                    column("Name", "string", "name", 0),
                    column("AddressType", "string", "", 0),
                    column("Ports", "string", "", 0),
                    column("Endpoints", "string", "", 0),
                    column("Age", "string", "", 0),
                ],
                endpoint_slice_cells,
            ),
            ("", "namespaces") => (
                vec![
                    column("Name", "string", "name", 0),
                    column("Status", "string", "", 0),
                    column("Age", "string", "", 0),
                ],
                |o| {
                    vec![
                        o["metadata"]["name"].clone(),
                        json!(text_or(&o["status"]["phase"], "")),
                        json!(age(o)),
                    ]
                },
            ),
            ("", "pods") => (
                vec![
                    column("Name", "string", "name", 0),
                    column("Ready", "string", "", 0),
                    column("Status", "string", "", 0),
                    column("Restarts", "string", "", 0),
                    column("Age", "string", "", 0),
                    column("IP", "string", "", 1),
                    column("Node", "string", "", 1),
                ],
                pod_cells,
            ),
            ("", "configmaps") => (
                vec![
                    column("Name", "string", "name", 0),
                    column("Data", "integer", "", 0),
                    column("Age", "string", "", 0),
                ],
                |o| {
                    let data = o["data"].as_object().map_or(0, |m| m.len())
                        + o["binaryData"].as_object().map_or(0, |m| m.len());
                    vec![o["metadata"]["name"].clone(), json!(data), json!(age(o))]
                },
            ),
            ("", "secrets") => (
                vec![
                    column("Name", "string", "name", 0),
                    column("Type", "string", "", 0),
                    column("Data", "integer", "", 0),
                    column("Age", "string", "", 0),
                ],
                |o| {
                    let data = o["data"].as_object().map_or(0, |m| m.len());
                    vec![
                        o["metadata"]["name"].clone(),
                        o["type"].clone(),
                        json!(data),
                        json!(age(o)),
                    ]
                },
            ),
            ("coordination.k8s.io", "leases") => (
                vec![
                    column("Name", "string", "name", 0),
                    column("Holder", "string", "", 0),
                    column("Age", "string", "", 0),
                ],
                |o| {
                    vec![
                        o["metadata"]["name"].clone(),
                        json!(text_or(&o["spec"]["holderIdentity"], "")),
                        json!(age(o)),
                    ]
                },
            ),
            _ => (
                vec![
                    column("Name", "string", "name", 0),
                    column("Created At", "date", "", 0),
                ],
                |o| {
                    vec![
                        o["metadata"]["name"].clone(),
                        o["metadata"]["creationTimestamp"].clone(),
                    ]
                },
            ),
        };
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": cells(object)});
            match include_object {
                "None" => {}
                "Object" => row["object"] = object.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object["metadata"].clone(),
                    });
                }
            }
            row
        })
        .collect();
    let mut metadata = serde_json::Map::new();
    if let Some(rv) = rv {
        metadata.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    if let Some(token) = continue_token {
        metadata.insert("continue".into(), json!(token));
        if let Some(remaining) = remaining {
            metadata.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": Value::Object(metadata),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn service_cells(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let service_type = text_or(&spec["type"], "ClusterIP");
    let cluster_ip = text_or(&spec["clusterIP"], "<none>");
    let mut external: Vec<String> = spec["externalIPs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ingress) = o["status"]["loadBalancer"]["ingress"].as_array() {
        for entry in ingress {
            if let Some(ip) = entry["ip"].as_str().or(entry["hostname"].as_str()) {
                external.push(ip.to_owned());
            }
        }
    }
    let external = match (service_type.as_str(), external.is_empty()) {
        ("ExternalName", _) => text_or(&spec["externalName"], "<none>"),
        ("LoadBalancer", true) => "<pending>".to_owned(),
        (_, true) => "<none>".to_owned(),
        (_, false) => external.join(","),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let protocol = text_or(&p["protocol"], "TCP");
                    match p["nodePort"].as_i64() {
                        Some(node) => format!("{}:{node}/{protocol}", p["port"]),
                        None => format!("{}/{protocol}", p["port"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    let selector: Vec<String> = spec["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let selector = if selector.is_empty() {
        "<none>".to_owned()
    } else {
        selector.join(",")
    };
    vec![
        o["metadata"]["name"].clone(),
        json!(service_type),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(age(o)),
        json!(selector),
    ]
}

fn endpoint_slice_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    p["port"]
                        .as_i64()
                        .map_or_else(|| "<unset>".to_owned(), |n| n.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        "<unset>".to_owned()
    } else {
        ports.join(",")
    };
    let addresses: Vec<String> = o["endpoints"]
        .as_array()
        .map(|endpoints| {
            endpoints
                .iter()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let endpoints = match addresses.len() {
        0 => "<unset>".to_owned(),
        1..=3 => addresses.join(","),
        n => format!("{} + {} more...", addresses[..3].join(","), n - 3),
    };
    vec![
        o["metadata"]["name"].clone(),
        o["addressType"].clone(),
        json!(ports),
        json!(endpoints),
        json!(age(o)),
    ]
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let containers = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = o["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
    vec![
        o["metadata"]["name"].clone(),
        json!(format!("{ready}/{containers}")),
        json!(text_or(&o["status"]["phase"], "Unknown")),
        json!("0"),
        json!(age(o)),
        json!(text_or(&o["status"]["podIP"], "<none>")),
        json!(text_or(&o["spec"]["nodeName"], "<none>")),
    ]
}
