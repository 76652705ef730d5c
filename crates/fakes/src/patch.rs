//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch.
//!
//! Strategic merge patch is applied as a JSON merge patch, except for `status.conditions`, which merges by
//! its patch merge key `type` as the real server does (`PodStatus.Conditions`, `NodeStatus.Conditions`,
//! `ServiceStatus.Conditions` and the other core condition lists carry `patchStrategy:"merge"
//! patchMergeKey:"type"`): a patched condition replaces the fields it names of the stored condition of the
//! same type, a condition of a new type is appended, conditions the patch does not name stay. A patched
//! condition without `type` is refused, as k8s.io/apimachinery `strategicpatch` refuses a map that lacks
//! the declared merge key. That is exact for the object shapes the fake's users patch (maps such as
//! `metadata.labels`, `metadata.annotations`, `spec`, `status` scalars and conditions, other lists replaced
//! whole) and differs from the real server only for the other lists with a patch merge key (`containers`,
//! `ports`, …), which the real server merges by key and the fake replaces, and for `$patch`/`$retainKeys`
//! directives, which the fake rejects. Server-side apply
//! (`application/apply-patch+yaml`) is not implemented and answered with 415.
//!
//! Control plane of the fake; pure functions.

use serde_json::Value;

use crate::status::ApiError;

/// The patch types of the `Content-Type` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json` (applied as a merge patch; see the module docs).
    StrategicMerge,
    /// `application/json-patch+json`.
    Json,
}

/// The media types accepted for PATCH, in the order the real server lists them.
pub const ACCEPTED_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

// === impl PatchType ===

impl PatchType {
    /// The patch type of a `Content-Type` header value; `None` for anything else (including apply).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/json-patch+json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Applies a patch document to an object.
pub fn apply(patch_type: PatchType, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Merge => Ok(merge_patch(target, patch)),
        PatchType::StrategicMerge => {
            if contains_directive(patch) {
                return Err(ApiError::bad_request(
                    "strategic merge patch directives ($patch, $retainKeys, $setElementOrder, \
                     $deleteFromPrimitiveList) are not supported by this fake",
                ));
            }
            strategic_merge(target, patch, &mut Vec::new())
        }
        PatchType::Json => json_patch(target, patch),
    }
}

/// The lists a strategic merge patch merges by key: (path of object keys, merge key).
const MERGE_KEYS: &[(&[&str], &str)] = &[(&["status", "conditions"], "type")];

/// Strategic merge patch: RFC 7386 member by member, except that the lists of [`MERGE_KEYS`] merge their
/// items by the merge key.
fn strategic_merge(
    target: &Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<Value, ApiError> {
    if let Some((_, merge_key)) = MERGE_KEYS.iter().find(|(keys, _)| {
        keys.len() == path.len() && keys.iter().zip(path.iter()).all(|(a, b)| a == b)
    }) && let Value::Array(items) = patch
    {
        let mut merged: Vec<Value> = match target {
            Value::Array(current) => current.clone(),
            _ => Vec::new(),
        };
        for item in items {
            let Some(key) = item.get(*merge_key).filter(|k| !k.is_null()) else {
                return Err(ApiError::bad_request(format!(
                    "map: {item} does not contain declared merge key: {merge_key}"
                )));
            };
            match merged.iter_mut().find(|m| m.get(*merge_key) == Some(key)) {
                Some(existing) => *existing = merge_patch(existing, item),
                None => merged.push(merge_patch(&Value::Null, item)),
            }
        }
        return Ok(Value::Array(merged));
    }
    let Value::Object(patch_map) = patch else {
        return Ok(patch.clone());
    };
    let mut result = match target {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    for (key, value) in patch_map {
        if value.is_null() {
            result.remove(key);
        } else {
            path.push(key.clone());
            let merged = strategic_merge(result.get(key).unwrap_or(&Value::Null), value, path);
            path.pop();
            result.insert(key.clone(), merged?);
        }
    }
    Ok(Value::Object(result))
}

fn contains_directive(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with('$') || contains_directive(v)),
        Value::Array(items) => items.iter().any(contains_directive),
        _ => false,
    }
}

/// RFC 7386 §2 MergePatch: objects merge member by member, `null` removes a member, anything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    for (key, value) in patch_map {
        if value.is_null() {
            result.remove(key);
        } else {
            let merged = merge_patch(result.get(key).unwrap_or(&Value::Null), value);
            result.insert(key.clone(), merged);
        }
    }
    Value::Object(result)
}

/// RFC 6902 JSON patch: `add`, `remove`, `replace`, `move`, `copy`, `test`, applied in order, all or nothing.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let Value::Array(operations) = patch else {
        return Err(ApiError::bad_request(
            "the JSON patch must be an array of operations",
        ));
    };
    let mut document = target.clone();
    for operation in operations {
        let op = operation.get("op").and_then(Value::as_str).unwrap_or("");
        let path = operation
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("JSON patch operation without a path"))?;
        let value = || {
            operation
                .get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request(format!("JSON patch {op} without a value")))
        };
        let from = || {
            operation
                .get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request(format!("JSON patch {op} without from")))
        };
        match op {
            // RFC 6902 §4.1 add.
            "add" => add(&mut document, path, value()?)?,
            // RFC 6902 §4.2 remove: the target location MUST exist.
            "remove" => {
                remove(&mut document, path)?;
            }
            // RFC 6902 §4.3 replace: the target location MUST exist.
            "replace" => {
                let slot = pointer_mut(&mut document, path)?;
                *slot = value()?;
            }
            // RFC 6902 §4.4 move.
            "move" => {
                let moved = remove(&mut document, from()?)?;
                add(&mut document, path, moved)?;
            }
            // RFC 6902 §4.5 copy.
            "copy" => {
                let copied = pointer_mut(&mut document, from()?)?.clone();
                add(&mut document, path, copied)?;
            }
            // RFC 6902 §4.6 test.
            "test" => {
                let actual = pointer_mut(&mut document, path)?;
                if *actual != value()? {
                    return Err(ApiError::invalid_patch(format!(
                        "testing value {path} failed"
                    )));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!("Unexpected kind: {other}")));
            }
        }
    }
    Ok(document)
}

/// RFC 6901 §4: `~1` is `/` and `~0` is `~`.
fn tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ApiError::invalid_patch(format!(
            "JSON pointer {path:?} does not start with /"
        )));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &str) -> ApiError {
    ApiError::invalid_patch(format!("doc is missing path: {path:?}"))
}

fn pointer_mut<'a>(document: &'a mut Value, path: &str) -> Result<&'a mut Value, ApiError> {
    let mut current = document;
    for token in tokens(path)? {
        current = match current {
            Value::Object(map) => map.get_mut(&token).ok_or_else(|| missing(path))?,
            Value::Array(items) => {
                let index: usize = token.parse().map_err(|_| missing(path))?;
                items.get_mut(index).ok_or_else(|| missing(path))?
            }
            _ => return Err(missing(path)),
        };
    }
    Ok(current)
}

fn split_parent(path: &str) -> Result<(String, String), ApiError> {
    let mut parts = tokens(path)?;
    let last = parts
        .pop()
        .ok_or_else(|| ApiError::invalid_patch("the root cannot be added to or removed"))?;
    let parent = parts
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect();
    Ok((parent, last))
}

fn add(document: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *document = value;
        return Ok(());
    }
    let (parent, last) = split_parent(path)?;
    match pointer_mut(document, &parent)? {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let index: usize = last.parse().map_err(|_| missing(path))?;
                if index > items.len() {
                    return Err(missing(path));
                }
                items.insert(index, value);
            }
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(document: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = split_parent(path)?;
    match pointer_mut(document, &parent)? {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index: usize = last.parse().map_err(|_| missing(path))?;
            if index >= items.len() {
                return Err(missing(path));
            }
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

impl ApiError {
    /// A patch that cannot be applied: 422 with reason `Invalid`, as the patcher reports it.
    pub(crate) fn invalid_patch(message: impl Into<String>) -> Self {
        let mut error = Self::bad_request(message);
        error.code = 422;
        error.reason = "Invalid";
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `status.conditions` merges by `type` in a strategic merge patch (kept, replaced field by field,
    /// appended); a JSON merge patch replaces the list; a condition without `type` is refused.
    #[test]
    fn strategic_merge_merges_conditions_by_type() {
        let pod = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "dns.aikernel.io/healthy", "status": "True", "reason": "HealthChecksPass"}]}});
        let patch = json!({"status": {"conditions": [
            {"type": "dns.aikernel.io/healthy", "status": "False", "reason": null, "message": "503"},
            {"type": "example.com/other", "status": "Unknown"}]}});
        let merged = apply(PatchType::StrategicMerge, &pod, &patch).unwrap();
        assert_eq!(
            merged["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"},
                   {"type": "dns.aikernel.io/healthy", "status": "False", "message": "503"},
                   {"type": "example.com/other", "status": "Unknown"}])
        );
        assert_eq!(merged["status"]["phase"], "Running");
        let replaced = apply(PatchType::Merge, &pod, &patch).unwrap();
        assert_eq!(
            replaced["status"]["conditions"].as_array().unwrap().len(),
            2
        );
        let keyless = json!({"status": {"conditions": [{"status": "True"}]}});
        let error = apply(PatchType::StrategicMerge, &pod, &keyless).unwrap_err();
        assert_eq!(error.code, 400, "{error:?}");
    }

    /// RFC 7386 §3 example: members merge, null removes, arrays replace.
    #[test]
    fn merge_patch_follows_rfc_7386_example() {
        let target = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                            "tags": ["example", "sample"], "content": "This will be unchanged"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
                           "author": {"familyName": null}, "tags": ["example"]});
        let expected = json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                              "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"});
        assert_eq!(merge_patch(&target, &patch), expected);
    }

    /// RFC 6902 §4: each operation, `-` appends, a failed test aborts the whole patch.
    #[test]
    fn json_patch_operations() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "remove", "path": "/list/0"},
            {"op": "copy", "from": "/list", "path": "/copy"},
            {"op": "move", "from": "/copy", "path": "/moved"},
            {"op": "test", "path": "/moved/1", "value": 3}
        ]);
        let result = json_patch(&target, &patch).unwrap();
        assert_eq!(
            result,
            json!({"metadata": {"labels": {"a": "x", "b/c": "2"}}, "list": [2, 3], "moved": [2, 3]})
        );
        let failing = json!([{"op": "test", "path": "/list/0", "value": 9}]);
        assert_eq!(json_patch(&target, &failing).unwrap_err().code, 422);
        let missing = json!([{"op": "remove", "path": "/nope"}]);
        assert_eq!(json_patch(&target, &missing).unwrap_err().code, 422);
    }
}
