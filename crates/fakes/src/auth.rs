//! Bearer-token authentication and RBAC-like authorization.
//!
//! Follows the Kubernetes "Authenticating" page (static bearer tokens: `Authorization: Bearer <token>`;
//! a missing or unknown token is 401 Unauthorized) and the "Using RBAC Authorization" page for the shape
//! of a rule: verbs × API groups × resources (`resource/subresource`), optional resource names, and here
//! also optional namespaces (a rule without namespaces acts like a ClusterRoleBinding; with namespaces like
//! RoleBindings in those namespaces, which do not cover cluster-scope requests). `*` matches any verb,
//! group or resource. Non-resource paths (discovery, `/version`, health) are open to every authenticated
//! user, like the default `system:discovery` role.
//!
//! The tokens file (`--tokens FILE`) is JSON:
//!
//! ```json
//! {"users": [{"token": "s3cret", "user": "system:serviceaccount:kube-system:signpost",
//!             "groups": ["system:serviceaccounts"],
//!             "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": ["", "discovery.k8s.io"],
//!                        "resources": ["services", "endpointslices"]},
//!                       {"verbs": ["get", "update"], "apiGroups": ["coordination.k8s.io"],
//!                        "resources": ["leases"], "resourceNames": ["signpost"],
//!                        "namespaces": ["kube-system"]}]}]}
//! ```
//!
//! With no tokens configured every request is allowed as user `system:admin`.
//!
//! Control plane of the fake; pure functions.

use serde::{Deserialize, Serialize};

/// Users, their tokens and what they may do.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct AuthConfig {
    /// The known users.
    pub users: Vec<UserConfig>,
}

/// One user.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct UserConfig {
    /// The bearer token.
    pub token: String,
    /// The user name, e.g. `system:serviceaccount:kube-system:signpost`.
    pub user: String,
    /// Groups (informational: rules are per user).
    #[serde(default)]
    pub groups: Vec<String>,
    /// What the user may do; no rule = nothing.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One permission rule.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, or `*`.
    pub verbs: Vec<String>,
    /// API groups (`""` = core); absent = any group.
    #[serde(default)]
    pub api_groups: Option<Vec<String>>,
    /// Resources, `resource/subresource` for subresources, or `*`.
    pub resources: Vec<String>,
    /// Object names the rule is limited to; empty = any.
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// Namespaces the rule is limited to; empty = every namespace and cluster scope.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// What one request does, for authorization.
#[derive(Clone, Debug)]
pub(crate) struct Attributes<'a> {
    pub(crate) verb: &'a str,
    pub(crate) group: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) subresource: Option<&'a str>,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) name: &'a str,
}

fn any_or(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == "*" || item == value)
}

// === impl AuthConfig ===

impl AuthConfig {
    /// Reads a tokens file.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The user a bearer token belongs to.
    pub(crate) fn authenticate(&self, token: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.token == token)
    }
}

// === impl UserConfig ===

impl UserConfig {
    /// Whether any rule allows the request.
    pub(crate) fn allows(&self, request: &Attributes<'_>) -> bool {
        let resource = match request.subresource {
            Some(sub) => format!("{}/{sub}", request.resource),
            None => request.resource.to_owned(),
        };
        self.rules.iter().any(|rule| {
            any_or(&rule.verbs, request.verb)
                && rule
                    .api_groups
                    .as_ref()
                    .is_none_or(|groups| any_or(groups, request.group))
                && any_or(&rule.resources, &resource)
                && (rule.resource_names.is_empty()
                    || (!request.name.is_empty()
                        && rule.resource_names.iter().any(|n| n == request.name)))
                && (rule.namespaces.is_empty()
                    || request
                        .namespace
                        .is_some_and(|ns| rule.namespaces.iter().any(|n| n == ns)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserConfig {
        let config = AuthConfig::from_json(
            r#"{"users": [{"token": "t", "user": "u", "rules": [
                {"verbs": ["list", "watch"], "apiGroups": [""], "resources": ["services"]},
                {"verbs": ["*"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "resourceNames": ["signpost"], "namespaces": ["kube-system"]}]}]}"#,
        )
        .unwrap();
        config.authenticate("t").unwrap().clone()
    }

    fn request<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        ns: Option<&'a str>,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource: None,
            namespace: ns,
            name,
        }
    }

    /// RBAC semantics: verbs, groups, resource names and namespaces all have to match.
    #[test]
    fn rules_match_like_rbac() {
        let user = user();
        assert!(user.allows(&request("list", "", "services", None, "")));
        assert!(!user.allows(&request("get", "", "services", None, "x")));
        assert!(!user.allows(&request("list", "discovery.k8s.io", "services", None, "")));
        assert!(user.allows(&request(
            "update",
            "coordination.k8s.io",
            "leases",
            Some("kube-system"),
            "signpost"
        )));
        assert!(!user.allows(&request(
            "update",
            "coordination.k8s.io",
            "leases",
            Some("default"),
            "signpost"
        )));
        assert!(!user.allows(&request(
            "update",
            "coordination.k8s.io",
            "leases",
            Some("kube-system"),
            "other"
        )));
        // resourceNames cannot authorize a create or a list: those requests carry no name.
        assert!(!user.allows(&request(
            "create",
            "coordination.k8s.io",
            "leases",
            Some("kube-system"),
            ""
        )));
    }
}
