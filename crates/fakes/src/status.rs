//! `Status` objects: every error the fake returns, shaped as the real API server shapes them.
//!
//! Follows the API reference for the `Status` kind (meta/v1, `kind: Status`, `status: Failure`, `reason`,
//! `details`, `code`) and the constructors of k8s.io/apimachinery `pkg/api/errors` for the exact messages:
//! `NotFound` (`services "x" not found`), `AlreadyExists`, `Conflict` (`Operation cannot be fulfilled on …`),
//! `Invalid` (`Service "x" is invalid: field: Invalid value: …`, one cause per field error), `Forbidden`,
//! `Unauthorized`, `Expired` (410), `TooManyRequests`, `InternalError`, `Timeout`, `BadRequest`,
//! `UnsupportedMediaType`, `MethodNotAllowed`.
//!
//! Control plane of the fake; no I/O here. Invariant: [`ApiError::to_json`] always yields a complete Status
//! object (`kind`, `apiVersion`, `metadata`, `status`, `message`, `reason`, `code`).

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

/// An API error: the HTTP status code plus the `Status` object the real server would send.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code, also `Status.code`.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the real server sets it.
    pub details: Option<Box<Value>>,
    /// `Status.metadata.continue`: set only on a 410 for an expired continue token.
    pub continue_token: Option<Box<str>>,
    /// Seconds for a `Retry-After` header (429, 504).
    pub retry_after_seconds: Option<u64>,
}

/// One field error, as k8s.io/apimachinery `field.Error` renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueForbidden`, …
    pub cause_type: &'static str,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    /// `ErrorBody()`: `Required value`, `Invalid value: "x": detail`, …
    pub body: String,
}

// === impl FieldError ===

impl FieldError {
    /// `field.Required`: `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            cause_type: "FieldValueRequired",
            field: field.into(),
            body: with_detail("Required value".to_owned(), detail),
        }
    }

    /// `field.Invalid` with a value that is rendered the way Go renders it (strings quoted, numbers bare,
    /// anything else as JSON).
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            cause_type: "FieldValueInvalid",
            field: field.into(),
            body: with_detail(format!("Invalid value: {}", go_value(value)), detail),
        }
    }

    /// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|v| format!("{v:?}")).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        Self {
            cause_type: "FieldValueNotSupported",
            field: field.into(),
            body: with_detail(format!("Unsupported value: {}", go_value(value)), &detail),
        }
    }

    /// `field.TooLong` of a size in bytes: `Too long: may not be more than N bytes` (the value is not
    /// shown).
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        Self {
            cause_type: "FieldValueTooLong",
            field: field.into(),
            body: format!("Too long: may not be more than {max_bytes} bytes"),
        }
    }

    /// `field.Forbidden`: `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            cause_type: "FieldValueForbidden",
            field: field.into(),
            body: with_detail("Forbidden".to_owned(), detail),
        }
    }

    fn error_string(&self) -> String {
        format!("{}: {}", self.field, self.body)
    }
}

fn with_detail(mut body: String, detail: &str) -> String {
    if !detail.is_empty() {
        body.push_str(": ");
        body.push_str(detail);
    }
    body
}

/// Go's rendering of a bad value in `field.Error.ErrorBody`: `%q` for strings, `%v` for numbers and booleans,
/// JSON otherwise.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

// === impl ApiError ===

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        Self {
            code,
            reason,
            message,
            details: None,
            continue_token: None,
            retry_after_seconds: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// `NewNotFound`: 404, `services "x" not found`.
    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", resource.group_resource()),
        )
        .with_details(resource_details(resource, name))
    }

    /// `NewNotFound` for a namespace that does not exist (the NamespaceLifecycle admission plugin).
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("namespaces {namespace:?} not found"),
        )
        .with_details(json!({"name": namespace, "kind": "namespaces"}))
    }

    /// The 404 for a path no resource serves: what the API server's not-found handler sends.
    pub fn unknown_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
        )
        .with_details(json!({}))
    }

    /// `NewAlreadyExists`: 409, `services "x" already exists`.
    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", resource.group_resource()),
        )
        .with_details(resource_details(resource, name))
    }

    /// `NewConflict`: 409, `Operation cannot be fulfilled on leases.coordination.k8s.io "x": <cause>`.
    pub fn conflict(resource: &ResourceType, name: &str, cause: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {cause}",
                resource.group_resource()
            ),
        )
        .with_details(resource_details(resource, name))
    }

    /// The optimistic-concurrency conflict of an update with a stale `metadata.resourceVersion`
    /// (`OptimisticLockErrorMsg` of the generic registry).
    pub fn stale_update(resource: &ResourceType, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `NewInvalid`: 422, `Kind[.group] "name" is invalid: <errors>`, one cause per field error.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        // k8s.io/apimachinery util/errors aggregate: one error bare, several deduplicated inside [ ].
        let mut seen: Vec<String> = Vec::new();
        for error in errors {
            let text = error.error_string();
            if !seen.contains(&text) {
                seen.push(text);
            }
        }
        let message = match seen.len() {
            0 => format!("{qualified_kind} {name:?} is invalid"),
            1 => format!("{qualified_kind} {name:?} is invalid: {}", seen[0]),
            _ => format!(
                "{qualified_kind} {name:?} is invalid: [{}]",
                seen.join(", ")
            ),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.cause_type, "message": e.body, "field": e.field}))
            .collect();
        let mut details = Map::new();
        if !name.is_empty() {
            details.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            details.insert("group".into(), json!(group));
        }
        details.insert("kind".into(), json!(kind));
        details.insert("causes".into(), Value::Array(causes));
        Self::new(422, "Invalid", message).with_details(Value::Object(details))
    }

    /// Invalid list or watch options (`ListOptions.meta.k8s.io "" is invalid: …`).
    pub fn invalid_list_options(errors: &[FieldError]) -> Self {
        Self::invalid("meta.k8s.io", "ListOptions", "", errors)
    }

    /// `NewForbidden` with the authorizer's message (`User "u" cannot list resource "services" in API
    /// group "" at the cluster scope`).
    pub fn forbidden(
        resource: &ResourceType,
        subresource: Option<&str>,
        name: &str,
        user: &str,
        verb: &str,
        namespace: Option<&str>,
    ) -> Self {
        let mut resource_path = resource.resource.clone();
        if let Some(sub) = subresource {
            resource_path.push('/');
            resource_path.push_str(sub);
        }
        let scope = match namespace {
            Some(ns) if !ns.is_empty() => format!("in the namespace {ns:?}"),
            _ => "at the cluster scope".to_owned(),
        };
        let reason = format!(
            "User {user:?} cannot {verb} resource {resource_path:?} in API group {:?} {scope}",
            resource.group
        );
        // responsewriters.ForbiddenStatusError sanitizes &, < and > (quotes are kept).
        let reason = reason
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let message = if name.is_empty() {
            format!("{} is forbidden: {reason}", resource.group_resource())
        } else {
            format!(
                "{} {name:?} is forbidden: {reason}",
                resource.group_resource()
            )
        };
        Self::new(403, "Forbidden", message).with_details(resource_details(resource, name))
    }

    /// Forbidden for a non-resource path (`User "u" cannot get path "/version"`).
    pub fn forbidden_path(user: &str, verb: &str, path: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
        )
        .with_details(json!({}))
    }

    /// 401 as the authentication filter sends it.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".to_owned())
    }

    /// `NewResourceExpired`: 410 with reason `Expired`.
    pub fn expired(message: String) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The watch cache's answer to a watch from a compacted resourceVersion:
    /// `too old resource version: X (Y)` where Y is the newest resourceVersion no longer retained.
    pub fn too_old_resource_version(requested: u64, compacted: u64) -> Self {
        Self::expired(format!(
            "too old resource version: {requested} ({compacted})"
        ))
    }

    /// A list at an exact resourceVersion that was compacted (etcd3 store's `expired`).
    pub fn list_expired() -> Self {
        Self::expired("The resourceVersion for the provided list is too old.".to_owned())
    }

    /// A continue token whose snapshot was compacted (etcd3 store's `inconsistentContinue`), carrying a
    /// new token that continues from the same key at the newest resourceVersion.
    pub fn continue_expired(new_token: String) -> Self {
        let mut error = Self::expired(
            "The provided continue parameter is too old to display a consistent list result. You can \
             start a new list without the continue parameter, or use the continue token in this response \
             to retrieve the remainder of the results. Continuing with the provided token results in an \
             inconsistent list - objects that were created, modified, or deleted between the time the \
             first chunk was returned and now may show up in the list."
                .to_owned(),
        );
        error.continue_token = Some(new_token.into_boxed_str());
        error
    }

    /// `NewBadRequest`: 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    /// `NewMethodNotSupported`: 405, `create is not supported on resources of kind "x"`.
    pub fn method_not_supported(resource: &ResourceType, action: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{action} is not supported on resources of kind {:?}",
                resource.group_resource()
            ),
        )
        .with_details(json!({"group": resource.group, "kind": resource.resource}))
    }

    /// 415 for a body or patch type the fake does not accept.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        let _ = content_type;
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 406 for an `Accept` header the fake cannot serve.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
        )
    }

    /// `NewTooManyRequests`: 429 with `details.retryAfterSeconds` and a `Retry-After` header.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        let mut error = Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.".to_owned(),
        )
        .with_details(json!({"retryAfterSeconds": retry_after_seconds}));
        error.retry_after_seconds = Some(retry_after_seconds);
        error
    }

    /// `NewInternalError`: 500, `Internal error occurred: <cause>`.
    pub fn internal(cause: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {cause}"),
        )
        .with_details(json!({"causes": [{"message": cause}]}))
    }

    /// `NewTooLargeResourceVersionError`: 504 after waiting for a resourceVersion the store has not reached.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        let mut error = Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }));
        error.retry_after_seconds = Some(1);
        error
    }

    /// A Status with an arbitrary code, for injected faults of codes without a dedicated constructor.
    pub fn generic(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Self::new(
            code,
            reason,
            format!(
                "the server responded with the status code {code} but did not return more information"
            ),
        )
    }

    /// The `Status` object as JSON.
    pub fn to_json(&self) -> Value {
        let mut metadata = Map::new();
        if let Some(token) = &self.continue_token {
            metadata.insert("continue".into(), json!(&**token));
        }
        let mut status = Map::new();
        status.insert("kind".into(), json!("Status"));
        status.insert("apiVersion".into(), json!("v1"));
        status.insert("metadata".into(), Value::Object(metadata));
        status.insert("status".into(), json!("Failure"));
        status.insert("message".into(), json!(self.message));
        status.insert("reason".into(), json!(self.reason));
        if let Some(details) = &self.details {
            status.insert("details".into(), (**details).clone());
        }
        status.insert("code".into(), json!(self.code));
        Value::Object(status)
    }
}

/// `StatusDetails` for a resource error: `name` (when known), `group` (omitted for core), `kind` = resource.
fn resource_details(resource: &ResourceType, name: &str) -> Value {
    let mut details = Map::new();
    if !name.is_empty() {
        details.insert("name".into(), json!(name));
    }
    if !resource.group.is_empty() {
        details.insert("group".into(), json!(resource.group));
    }
    details.insert("kind".into(), json!(resource.resource));
    Value::Object(details)
}

/// A `Status` with `status: Success`, as DELETE returns for most resources.
pub fn success_status(resource: &ResourceType, name: &str, uid: &str) -> Value {
    let mut details = Map::new();
    details.insert("name".into(), json!(name));
    if !resource.group.is_empty() {
        details.insert("group".into(), json!(resource.group));
    }
    details.insert("kind".into(), json!(resource.resource));
    details.insert("uid".into(), json!(uid));
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": Value::Object(details),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    /// apimachinery `NewConflict` + `OptimisticLockErrorMsg`: the message Lease-based leader election sees.
    #[test]
    fn conflict_message_matches_the_generic_registry() {
        let registry = Registry::builtin();
        let leases = registry.find("coordination.k8s.io", "leases").unwrap();
        let error = ApiError::stale_update(leases, "signpost");
        assert_eq!(
            error.message,
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"signpost\": the object has been \
             modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(
            error.to_json()["details"],
            json!({"name": "signpost", "group": "coordination.k8s.io", "kind": "leases"})
        );
    }

    /// apiserver `forbiddenMessage` + apimachinery `NewForbidden` for a cluster-scope list.
    #[test]
    fn forbidden_message_matches_the_authorizer() {
        let registry = Registry::builtin();
        let services = registry.find("", "services").unwrap();
        let error = ApiError::forbidden(
            services,
            None,
            "",
            "system:serviceaccount:kube-system:signpost",
            "list",
            None,
        );
        assert_eq!(
            error.message,
            "services is forbidden: User \"system:serviceaccount:kube-system:signpost\" cannot list \
             resource \"services\" in API group \"\" at the cluster scope"
        );
    }

    /// apimachinery `NewInvalid` aggregates several field errors inside brackets, one cause each.
    #[test]
    fn invalid_aggregates_field_errors() {
        let errors = [
            FieldError::required("addressType", ""),
            FieldError::not_supported("addressType", &json!("IPX"), &["FQDN", "IPv4", "IPv6"]),
        ];
        let error = ApiError::invalid("discovery.k8s.io", "EndpointSlice", "web", &errors);
        assert_eq!(
            error.message,
            "EndpointSlice.discovery.k8s.io \"web\" is invalid: [addressType: Required value, addressType: \
             Unsupported value: \"IPX\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"]"
        );
        assert_eq!(
            error.to_json()["details"]["causes"][1]["reason"],
            "FieldValueNotSupported"
        );
    }
}
