//! A small EndpointSlice controller and the kubelet's Ready condition, for readiness-gate tests
//! (enabled by [`crate::ServerOptions::endpoint_slice_controller`]; off by default).
//!
//! References, played here as one step of each write:
//!
//! - the kubelet (`pkg/kubelet/status/generate.go` `GeneratePodReadyCondition`, and the "Pod readiness
//!   gate" section of the Pod Lifecycle page, <https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate>):
//!   a Pod is Ready when all its containers are ready AND every condition named by
//!   `spec.readinessGates[].conditionType` is present with status `True`; a gate condition that is absent
//!   counts as `False`. The fake has no containers to run and takes them as ready, so here
//!   **Pod Ready ⇔ every readiness-gate condition is `True`**. The `Ready` condition is written into the
//!   Pod's status on every create and update of a Pod, with `lastTransitionTime` set only when its status
//!   changes (the kubelet writes it in a later update of its own; the fake in the same one);
//! - the kube-controller-manager's EndpointSlice controller (`pkg/controller/endpointslice`,
//!   `podToEndpoint` in `k8s.io/endpointslice/utils.go`): an endpoint's `conditions.ready` is the Pod's
//!   Ready condition (`podutil.IsPodReady`), `serving` the same for a Pod that is not terminating, and
//!   `terminating` false. Here **endpoint ready ⇔ Pod Ready**, for every endpoint whose `targetRef` names
//!   a Pod (kind `Pod`, the slice's namespace unless the reference names one) that exists: when a Pod's
//!   Ready condition changes the slices that reference it are rewritten (a MODIFIED event each), and a
//!   slice written by a client gets the conditions of the Pods it references before it is stored, as the
//!   real controller would overwrite it.
//!
//! Simplifications (stated, not hidden): slices are not created from Service selectors (tests write them
//! with `targetRef`s), endpoints whose Pod does not exist keep what the client wrote, and Pods are not
//! scheduled or run.
//!
//! Control plane of the fake: runs inside the write that triggers it, with the store's lock held.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::resources::Registry;
use crate::store::{Key, Store, Stored};
use crate::util;

/// Whether `pod` (a Pod object) is Ready by the kubelet's rule above.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    let conditions = pod["status"]["conditions"].as_array();
    pod["spec"]["readinessGates"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|gate| gate["conditionType"].as_str())
        .all(|kind| {
            conditions.is_some_and(|list| {
                list.iter().any(|c| {
                    c["type"].as_str() == Some(kind) && c["status"].as_str() == Some("True")
                })
            })
        })
}

/// Before a write is stored: a Pod gets its Ready condition; an EndpointSlice gets the ready conditions of
/// the Pods its endpoints reference.
pub(crate) fn prepare(registry: &Registry, store: &Store, index: usize, object: &mut Value) {
    if !store.endpoint_slice_controller {
        return;
    }
    let resource = registry.get(index);
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => set_ready_condition(object),
        ("discovery.k8s.io", "EndpointSlice") => {
            let Some(pods) = registry.index_of("", "pods") else {
                return;
            };
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            if let Some(endpoints) = object["endpoints"].as_array_mut() {
                for endpoint in endpoints {
                    let Some(pod) = referenced_pod(endpoint, &namespace) else {
                        continue;
                    };
                    if let Some(stored) = store.get(pods, &pod) {
                        let ready = pod_ready(&stored.to_value("v1", "Pod"));
                        set_endpoint_ready(endpoint, ready);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The controller's own update of one EndpointSlice: (type index, namespace, name, the new object).
pub(crate) type SliceUpdate = (usize, String, String, Value);

/// After a Pod is stored: the slices whose endpoints reference it and disagree with its Ready condition,
/// rewritten (the caller stores them as unconditional updates).
pub(crate) fn after_commit(
    registry: &Registry,
    store: &Store,
    index: usize,
    stored: &Arc<Stored>,
) -> Vec<SliceUpdate> {
    let mut updates = Vec::new();
    if !store.endpoint_slice_controller {
        return updates;
    }
    let resource = registry.get(index);
    if !(resource.group.is_empty() && resource.kind == "Pod") {
        return updates;
    }
    let Some(slices) = registry.index_of("discovery.k8s.io", "endpointslices") else {
        return updates;
    };
    let pod = stored.to_value("v1", "Pod");
    let ready = pod_ready(&pod);
    let (namespace, name) = stored.key();
    let key: Key = (namespace.clone(), name);
    for slice in store.current(slices, Some(&namespace)) {
        let mut value = slice.to_value("discovery.k8s.io/v1", "EndpointSlice");
        let mut changed = false;
        if let Some(endpoints) = value["endpoints"].as_array_mut() {
            for endpoint in endpoints {
                if referenced_pod(endpoint, &namespace).as_ref() == Some(&key) {
                    changed |= set_endpoint_ready(endpoint, ready);
                }
            }
        }
        if changed {
            let slice_name = value["metadata"]["name"].as_str().unwrap_or("").to_owned();
            updates.push((slices, namespace.clone(), slice_name, value));
        }
    }
    updates
}

/// The Pod an endpoint's `targetRef` names, if it names one.
fn referenced_pod(endpoint: &Value, slice_namespace: &str) -> Option<Key> {
    let reference = &endpoint["targetRef"];
    if reference["kind"].as_str() != Some("Pod") {
        return None;
    }
    let name = reference["name"].as_str()?;
    let namespace = reference["namespace"].as_str().unwrap_or(slice_namespace);
    Some((namespace.to_owned(), name.to_owned()))
}

/// Sets `conditions` to `{ready, serving: ready, terminating: false}`; true when that changed them.
fn set_endpoint_ready(endpoint: &mut Value, ready: bool) -> bool {
    let wanted = json!({"ready": ready, "serving": ready, "terminating": false});
    if endpoint["conditions"] == wanted {
        return false;
    }
    endpoint["conditions"] = wanted;
    true
}

/// Writes the Pod's `Ready` condition from its readiness gates (`lastTransitionTime` on change only).
fn set_ready_condition(pod: &mut Value) {
    let status = if pod_ready(pod) { "True" } else { "False" };
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(conditions) = pod["status"]["conditions"].as_array_mut() else {
        return;
    };
    let now = util::rfc3339(util::unix_now());
    match conditions.iter_mut().find(|c| c["type"] == "Ready") {
        Some(ready) if ready["status"] == status => {}
        Some(ready) => {
            ready["status"] = json!(status);
            ready["lastTransitionTime"] = json!(now);
            set_reason(ready, status);
        }
        None => {
            let mut ready = json!({"type": "Ready", "status": status, "lastTransitionTime": now});
            set_reason(&mut ready, status);
            conditions.push(ready);
        }
    }
}

/// The kubelet's reason when a gate holds the Pod back (`ReadinessGatesNotReady`).
fn set_reason(ready: &mut Value, status: &str) {
    if let Value::Object(map) = ready {
        if status == "True" {
            map.remove("reason");
            map.remove("message");
        } else {
            map.insert("reason".into(), json!("ReadinessGatesNotReady"));
            map.insert(
                "message".into(),
                json!("corresponding condition of pod readiness gate is not True"),
            );
        }
    }
}
