//! Discovery and other non-resource endpoints: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/GROUP`,
//! `/apis/GROUP/VERSION`, `/healthz`, `/livez`, `/readyz`.
//!
//! Serves the legacy (unaggregated) discovery documents — `APIVersions`, `APIResourceList`,
//! `APIGroupList`, `APIGroup` — with `Content-Type: application/json`. Clients that ask for aggregated
//! discovery (`as=APIGroupDiscoveryList`) fall back to these when the response is plain JSON, as client-go
//! does against older servers.
//!
//! OpenAPI v3 is served only as far as kubectl needs it: `/openapi/v3` lists one document per group
//! version, and each document has, per type, a PATCH operation tagged `x-kubernetes-group-version-kind`
//! that declares the `fieldValidation` query parameter. From that kubectl concludes the server validates
//! fields itself and skips client-side schema validation (`kubectl create -f` works with its default
//! `--validate=strict`). There are no schemas; the fake accepts `fieldValidation` and ignores it.
//! Older kubectl (before 1.27, e.g. Debian's kubernetes-client) reads `/openapi/v2` as protobuf instead:
//! it gets an empty document, which it decodes as "no schemas" and so validates nothing client-side.
//!
//! Control plane of the fake; pure functions of the registry.

use hyper::Method;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use crate::server::{Body, Shared, full};

/// `/openapi/v2`: an empty protobuf `openapi_v2.Document` (zero bytes) when protobuf is asked for, as old
/// kubectl does, else an empty Swagger 2.0 document in JSON.
pub(crate) fn openapi_v2(accept: &str) -> hyper::Response<Body> {
    const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (content_type, body) = if accept.contains(PROTOBUF) {
        // Served as application/octet-stream: Go's mime parser rejects the `@` in the requested type.
        ("application/octet-stream", Vec::new())
    } else {
        let document = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
                              "paths": {}, "definitions": {}});
        (
            "application/json",
            serde_json::to_vec(&document).unwrap_or_default(),
        )
    };
    let mut response = hyper::Response::new(full(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The document for a non-resource path, if the fake serves it.
pub(crate) fn serve(shared: &Shared, method: &Method, path: &str) -> Option<Value> {
    if method != Method::GET {
        return None;
    }
    let registry = &shared.registry;
    let path = path.trim_end_matches('/');
    let resource_list = |group: &str, version: &str| {
        let resources: Vec<Value> = registry
            .types()
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .flat_map(|t| t.discovery_entries())
            .collect();
        if resources.is_empty() {
            return None;
        }
        let group_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    };
    let group_doc = |group: &str, version: &str| {
        let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
        json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
    };
    match path {
        "/version" => Some(json!({
            "major": "1",
            "minor": "33",
            "emulationMajor": "1",
            "emulationMinor": "33",
            "gitVersion": "v1.33.0-signpost-fake",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-04-23T00:00:00Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        })),
        "/healthz" | "/livez" | "/readyz" => Some(json!("ok")),
        "/api" => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.local_addr().to_string()}
            ],
        })),
        "/apis" => Some(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": registry
                .groups()
                .iter()
                .map(|(group, version)| group_doc(group, version))
                .collect::<Vec<_>>(),
        })),
        "/openapi/v3" => {
            let mut paths = serde_json::Map::new();
            let mut group_versions = vec![("".to_owned(), "v1".to_owned())];
            group_versions.extend(registry.groups());
            for (group, version) in group_versions {
                let relative = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                let url = format!("/openapi/v3/{relative}?hash=0");
                paths.insert(relative, json!({"serverRelativeURL": url}));
            }
            Some(json!({"paths": paths}))
        }
        _ => {
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match segments.as_slice() {
                ["openapi", "v3", "api", version] => openapi_document(shared, "", version),
                ["openapi", "v3", "apis", group, version] => {
                    openapi_document(shared, group, version)
                }
                ["api", version] => resource_list("", version),
                ["apis", group] => {
                    registry
                        .groups()
                        .iter()
                        .find(|(g, _)| g == group)
                        .map(|(g, v)| {
                            let mut doc = group_doc(g, v);
                            doc["kind"] = json!("APIGroup");
                            doc["apiVersion"] = json!("v1");
                            doc
                        })
                }
                ["apis", group, version] => resource_list(group, version),
                _ => None,
            }
        }
    }
}

/// A minimal OpenAPI v3 document for one group version: per type, the object path with a PATCH operation
/// that names its group-version-kind and accepts `fieldValidation`.
fn openapi_document(shared: &Shared, group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for resource in shared
        .registry
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let scope = if resource.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let path = format!(
            "{}{scope}/{}/{{name}}",
            resource.group_version_path(),
            resource.resource
        );
        let gvk = json!({"group": group, "version": version, "kind": resource.kind});
        let field_validation = json!({
            "name": "fieldValidation",
            "in": "query",
            "description": "accepted and ignored by the fake",
            "schema": {"type": "string", "uniqueItems": true},
        });
        let operation = |id: &str| {
            json!({
                "operationId": format!("{id}{}", resource.kind),
                "parameters": [field_validation.clone()],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": id,
                "x-kubernetes-group-version-kind": gvk.clone(),
            })
        };
        paths.insert(
            path,
            json!({"patch": operation("patch"), "put": operation("replace")}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
