//! The write verbs: create, update (PUT), patch, delete, with the real server's metadata rules.
//!
//! Follows the Kubernetes API Concepts page ("Resource versions", "Server-side apply" is not implemented)
//! and the generic registry of k8s.io/apiserver:
//!
//! - create: the server sets `uid`, `creationTimestamp`, `generation: 1`, `resourceVersion`; a
//!   `resourceVersion` in the body is an error; `generateName` gets a 5-character suffix; the namespace
//!   must exist (NamespaceLifecycle admission); a taken name is 409 AlreadyExists;
//! - update: a `metadata.resourceVersion` that is not the stored one is 409 Conflict (optimistic
//!   concurrency, what Lease-based leader election relies on); without one the update is unconditional;
//!   a missing object is 404 (no type here allows create-on-update); an update that changes nothing writes
//!   nothing (no new resourceVersion, no event); `generation` grows when anything outside `metadata` and
//!   `status` changes; for types with a status subresource the main resource ignores `status` and
//!   `<resource>/status` changes only `status`;
//! - patch: the patch is applied to the stored object and the result is an update whose precondition is
//!   the stored resourceVersion unless the patch itself set another one;
//! - delete: `preconditions.resourceVersion` / `preconditions.uid` must match (409 otherwise); an object
//!   with `metadata.finalizers` only gets `deletionTimestamp` and goes when an update empties its
//!   finalizers. Deleting a namespace deletes its objects at once (the real server does this later, in the
//!   namespace controller) and pods are deleted without a grace period.
//!
//! Control plane of the fake: every function runs with the store's lock held and never blocks.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::endpoints;
use crate::patch::{self, PatchType};
use crate::resources::{Registry, ResourceType};
use crate::status::ApiError;
use crate::store::{EventType, Key, Store, Stored};
use crate::util;
use crate::validate;

/// The outcome of a delete.
pub(crate) enum Deleted {
    /// Gone; the object as it was deleted.
    Now(Arc<Stored>),
    /// Finalizers pending: the object now carries `deletionTimestamp`.
    Pending(Arc<Stored>),
}

fn check_kind(resource: &ResourceType, body: &Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != resource.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind
        )));
    }
    if let Some(api_version) = body.get("apiVersion").and_then(Value::as_str)
        && api_version != resource.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    Ok(())
}

fn set_namespace(
    resource: &ResourceType,
    body: &mut Value,
    namespace: &str,
) -> Result<(), ApiError> {
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    let metadata = body["metadata"]
        .as_object_mut()
        .expect("metadata is an object");
    if resource.namespaced {
        match metadata.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                metadata.insert("namespace".into(), json!(namespace));
            }
        }
    } else {
        metadata.remove("namespace");
    }
    Ok(())
}

fn namespace_must_exist(
    registry: &Registry,
    store: &Store,
    namespace: &str,
) -> Result<(), ApiError> {
    let namespaces = registry
        .index_of("", "namespaces")
        .expect("namespaces are built in");
    if store
        .get(namespaces, &(String::new(), namespace.to_owned()))
        .is_none()
    {
        return Err(ApiError::namespace_not_found(namespace));
    }
    Ok(())
}

/// The status a create starts from for types with a status subresource (the client's is dropped).
fn initial_status(resource: &ResourceType) -> Option<Value> {
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Service") | ("networking.k8s.io", "Ingress") => Some(json!({"loadBalancer": {}})),
        _ => None,
    }
}

fn parse_rv(value: &Value) -> Option<Result<u64, ()>> {
    match value.as_str() {
        None | Some("") => None,
        Some(text) => Some(text.parse().map_err(|_| ())),
    }
}

fn key_of(resource: &ResourceType, namespace: &str, name: &str) -> Key {
    let ns = if resource.namespaced { namespace } else { "" };
    (ns.to_owned(), name.to_owned())
}

/// POST: creates an object in `namespace` (ignored for cluster-scoped types).
pub(crate) fn create(
    registry: &Registry,
    store: &mut Store,
    index: usize,
    namespace: &str,
    body: Value,
) -> Result<Arc<Stored>, ApiError> {
    create_checked(registry, store, index, namespace, body, true)
}

/// Like [`create`]; with `validate` false the object skips validation (but
/// not defaulting), as one written directly into etcd or by an older server
/// would.
pub(crate) fn create_checked(
    registry: &Registry,
    store: &mut Store,
    index: usize,
    namespace: &str,
    mut body: Value,
    validate: bool,
) -> Result<Arc<Stored>, ApiError> {
    let resource = registry.get(index);
    check_kind(resource, &body)?;
    set_namespace(resource, &mut body, namespace)?;
    if resource.namespaced {
        namespace_must_exist(registry, store, namespace)?;
    }
    if parse_rv(&body["metadata"]["resourceVersion"]).is_some() {
        // The etcd3 store's check, surfaced as an internal error like the real server does.
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let generate = body["metadata"]["generateName"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if name.is_empty() && !generate.is_empty() {
        let mut candidate = format!("{generate}{}", util::name_suffix());
        while store
            .get(index, &key_of(resource, namespace, &candidate))
            .is_some()
        {
            candidate = format!("{generate}{}", util::name_suffix());
        }
        body["metadata"]["name"] = json!(candidate);
    }
    if resource.status_subresource {
        match initial_status(resource) {
            Some(status) => body["status"] = status,
            None => {
                if let Value::Object(map) = &mut body {
                    map.remove("status");
                }
            }
        }
    }
    {
        let metadata = body["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    validate::default(resource, &mut body, None, &mut || {
        store.allocate_service_ip()
    });
    endpoints::prepare(registry, store, index, &mut body);
    let name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let errors = if validate {
        validate::validate(resource, &body, None)
    } else {
        Vec::new()
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            &resource.group,
            &resource.kind,
            &name,
            &errors,
        ));
    }
    let key = key_of(resource, namespace, &name);
    if store.get(index, &key).is_some() {
        return Err(ApiError::already_exists(resource, &name));
    }
    let rv = store.next_rv();
    let metadata = &mut body["metadata"];
    metadata["uid"] = json!(util::new_uid());
    metadata["creationTimestamp"] = json!(util::rfc3339(util::unix_now()));
    metadata["generation"] = json!(1);
    metadata["resourceVersion"] = json!(rv.to_string());
    let stored = Arc::new(Stored::encode(body, rv));
    store.commit(
        index,
        key,
        EventType::Added,
        stored.clone(),
        (&resource.group, &resource.resource),
    );
    run_controllers(registry, store, index, &stored);
    Ok(stored)
}

/// PUT on the resource (`status` = false) or on `<resource>/status` (`status` = true).
pub(crate) fn update(
    registry: &Registry,
    store: &mut Store,
    index: usize,
    namespace: &str,
    name: &str,
    mut body: Value,
    status: bool,
) -> Result<Arc<Stored>, ApiError> {
    let resource = registry.get(index);
    check_kind(resource, &body)?;
    set_namespace(resource, &mut body, namespace)?;
    body["apiVersion"] = json!(resource.api_version());
    body["kind"] = json!(resource.kind);
    let body_name = body["metadata"]["name"].as_str().unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let key = key_of(resource, namespace, name);
    let Some(current) = store.get(index, &key) else {
        return Err(ApiError::not_found(resource, name));
    };
    match parse_rv(&body["metadata"]["resourceVersion"]) {
        Some(Ok(rv)) if rv == current.rv => {}
        Some(_) => return Err(ApiError::stale_update(resource, name)),
        None => {}
    }
    let old = current.to_value(&resource.api_version(), &resource.kind);
    let mut new = if status {
        let mut merged = old.clone();
        merged["status"] = body.get("status").cloned().unwrap_or(Value::Null);
        if merged["status"].is_null()
            && let Value::Object(map) = &mut merged
        {
            map.remove("status");
        }
        merged
    } else {
        if resource.status_subresource {
            match old.get("status") {
                Some(s) => body["status"] = s.clone(),
                None => {
                    if let Value::Object(map) = &mut body {
                        map.remove("status");
                    }
                }
            }
        }
        body
    };
    {
        let metadata = new["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old["metadata"].get(field) {
                Some(v) => {
                    metadata.insert(field.into(), v.clone());
                }
                None => {
                    metadata.remove(field);
                }
            }
        }
        metadata.insert("resourceVersion".into(), json!(current.rv.to_string()));
    }
    validate::default(resource, &mut new, Some(&old), &mut || {
        store.allocate_service_ip()
    });
    endpoints::prepare(registry, store, index, &mut new);
    let errors = validate::validate(resource, &new, Some(&old));
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            &resource.group,
            &resource.kind,
            name,
            &errors,
        ));
    }
    if spec_of(&new) != spec_of(&old) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
    // A write that changes nothing is not a write (the etcd3 store skips identical bytes).
    if new == old {
        return Ok(current);
    }
    let rv = store.next_rv();
    new["metadata"]["resourceVersion"] = json!(rv.to_string());
    let finalizers_done = old["metadata"]["deletionTimestamp"].is_string()
        && new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
    let stored = Arc::new(Stored::encode(new, rv));
    let kind = if finalizers_done {
        EventType::Deleted
    } else {
        EventType::Modified
    };
    store.commit(
        index,
        key,
        kind,
        stored.clone(),
        (&resource.group, &resource.resource),
    );
    run_controllers(registry, store, index, &stored);
    Ok(stored)
}

/// The fake's EndpointSlice controller after a write ([`endpoints`]): its own slice updates,
/// unconditional and validated like any other write.
fn run_controllers(registry: &Registry, store: &mut Store, index: usize, stored: &Arc<Stored>) {
    for (slices, namespace, name, value) in endpoints::after_commit(registry, store, index, stored)
    {
        if let Err(error) = update(registry, store, slices, &namespace, &name, value, false) {
            tracing::warn!(slice = %name, ?error, "fake EndpointSlice controller: update refused");
        }
    }
}

/// Everything but `metadata` and `status`: what `generation` tracks.
fn spec_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Value::Object(map) = &mut copy {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// PATCH on the resource or its status subresource.
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    registry: &Registry,
    store: &mut Store,
    index: usize,
    namespace: &str,
    name: &str,
    patch_type: PatchType,
    patch_body: &Value,
    status: bool,
) -> Result<Arc<Stored>, ApiError> {
    let resource = registry.get(index);
    let key = key_of(resource, namespace, name);
    let Some(current) = store.get(index, &key) else {
        return Err(ApiError::not_found(resource, name));
    };
    let full = current.to_value(&resource.api_version(), &resource.kind);
    let patched = patch::apply(patch_type, &full, patch_body)?;
    if !patched.is_object() {
        return Err(ApiError::invalid_patch(
            "the patched object is not a JSON object",
        ));
    }
    update(registry, store, index, namespace, name, patched, status)
}

/// DELETE with optional `DeleteOptions` (`preconditions`).
pub(crate) fn delete(
    registry: &Registry,
    store: &mut Store,
    index: usize,
    namespace: &str,
    name: &str,
    options: &Value,
) -> Result<Deleted, ApiError> {
    let resource = registry.get(index);
    let key = key_of(resource, namespace, name);
    let Some(current) = store.get(index, &key) else {
        return Err(ApiError::not_found(resource, name));
    };
    let storage_key = format!(
        "/registry/{}/{}",
        resource.group_resource(),
        if resource.namespaced {
            format!("{namespace}/{name}")
        } else {
            name.to_owned()
        }
    );
    let preconditions = &options["preconditions"];
    if let Some(uid) = preconditions["uid"].as_str()
        && uid != current.uid
    {
        return Err(ApiError::conflict(
            resource,
            name,
            &format!(
                "StorageError: invalid object, Code: 4, Key: {storage_key}, ResourceVersion: 0, \
                     AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current.uid
            ),
        ));
    }
    if let Some(rv) = preconditions["resourceVersion"].as_str()
        && rv != current.rv.to_string()
    {
        return Err(ApiError::conflict(
            resource,
            name,
            &format!(
                "StorageError: invalid object, Code: 4, Key: {storage_key}, ResourceVersion: 0, \
                     AdditionalErrorMsg: Precondition failed: ResourceVersion in precondition: {rv}, \
                     ResourceVersion in object meta: {}",
                current.rv
            ),
        ));
    }
    let mut object = current.to_value(&resource.api_version(), &resource.kind);
    let has_finalizers = object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if object["metadata"]["deletionTimestamp"].is_string() {
            return Ok(Deleted::Pending(current));
        }
        let rv = store.next_rv();
        object["metadata"]["deletionTimestamp"] = json!(util::rfc3339(util::unix_now()));
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Arc::new(Stored::encode(object, rv));
        store.commit(
            index,
            key,
            EventType::Modified,
            stored.clone(),
            (&resource.group, &resource.resource),
        );
        return Ok(Deleted::Pending(stored));
    }
    if resource.group.is_empty() && resource.resource == "namespaces" {
        delete_namespace_contents(registry, store, name);
    }
    let rv = store.next_rv();
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    let stored = Arc::new(Stored::encode(object, rv));
    store.commit(
        index,
        key,
        EventType::Deleted,
        stored.clone(),
        (&resource.group, &resource.resource),
    );
    Ok(Deleted::Now(stored))
}

fn delete_namespace_contents(registry: &Registry, store: &mut Store, namespace: &str) {
    for (index, resource) in registry.types().iter().enumerate() {
        if !resource.namespaced {
            continue;
        }
        for object in store.current(index, Some(namespace)) {
            let mut value = object.to_value(&resource.api_version(), &resource.kind);
            let rv = store.next_rv();
            value["metadata"]["resourceVersion"] = json!(rv.to_string());
            let stored = Arc::new(Stored::encode(value, rv));
            store.commit(
                index,
                object.key(),
                EventType::Deleted,
                stored,
                (&resource.group, &resource.resource),
            );
        }
    }
}
