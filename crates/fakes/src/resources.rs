//! The resource types the fake serves: group, version, plural resource, kind, scope, subresources.
//!
//! Control plane of the fake. The registry is fixed when the server starts (built-ins plus any extra types
//! in [`crate::ServerOptions::extra_resources`]); every object of a type is stored as JSON, so a new type
//! needs only its entry here. Invariant: (group, resource) is unique in a registry.

use serde_json::{Value, json};

/// How the names of a type's objects are validated (k8s.io/apimachinery `validation.IsDNS1123*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameRule {
    /// DNS-1123 subdomain (most types): at most 253 characters of `[a-z0-9.-]`.
    Dns1123Subdomain,
    /// DNS-1123 label (namespaces): at most 63 characters of `[a-z0-9-]`.
    Dns1123Label,
    /// DNS-1035 label (services): a DNS-1123 label that starts with a letter.
    Dns1035Label,
}

/// One resource type.
#[derive(Clone, Debug)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name used in URLs, e.g. `services`.
    pub resource: String,
    /// Singular name for discovery, e.g. `service`.
    pub singular: String,
    /// Kind, e.g. `Service`.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for discovery (`svc`).
    pub short_names: Vec<String>,
    /// Whether `<resource>/status` exists (PUT/PATCH on it change only `status`; the main resource ignores
    /// changes to `status`).
    pub status_subresource: bool,
    /// How object names are validated.
    pub name_rule: NameRule,
    /// Categories for discovery (`all`).
    pub categories: Vec<String>,
}

// === impl ResourceType ===

impl ResourceType {
    /// A namespaced or cluster-scoped type with DNS-1123 subdomain names and no status subresource.
    pub fn new(group: &str, version: &str, resource: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            namespaced,
            short_names: Vec::new(),
            status_subresource: false,
            name_rule: NameRule::Dns1123Subdomain,
            categories: Vec::new(),
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }

    fn in_all(mut self) -> Self {
        self.categories = vec!["all".to_owned()];
        self
    }

    /// `apiVersion` of objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `schema.GroupResource.String()`: `services`, `leases.coordination.k8s.io`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The kind of a list of this type, e.g. `ServiceList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The URL prefix of this type's group version: `/api/v1` or `/apis/group/version`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The `APIResource` entries of this type (and its status subresource) for discovery.
    pub(crate) fn discovery_entries(&self) -> Vec<Value> {
        let verbs = json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]);
        let mut main = json!({
            "name": self.resource,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut entries = vec![main];
        if self.status_subresource {
            entries.push(json!({
                "name": format!("{}/status", self.resource),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

/// The set of types a server serves, in registration order (the order of discovery documents).
#[derive(Clone, Debug)]
pub struct Registry {
    types: Vec<ResourceType>,
}

// === impl Registry ===

impl Registry {
    /// The built-in types signpost uses: core/v1 services, namespaces, pods, configmaps, secrets;
    /// nodes; discovery.k8s.io/v1 endpointslices; coordination.k8s.io/v1 leases; networking.k8s.io/v1
    /// ingresses.
    pub fn builtin() -> Self {
        let types = vec![
            ResourceType::new("", "v1", "namespaces", "Namespace", false)
                .short(&["ns"])
                .with_status()
                .names(NameRule::Dns1123Label),
            ResourceType::new("", "v1", "services", "Service", true)
                .short(&["svc"])
                .with_status()
                .names(NameRule::Dns1035Label)
                .in_all(),
            ResourceType::new("", "v1", "pods", "Pod", true)
                .short(&["po"])
                .with_status()
                .in_all(),
            ResourceType::new("", "v1", "nodes", "Node", false)
                .short(&["no"])
                .with_status(),
            ResourceType::new("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
            ResourceType::new("", "v1", "secrets", "Secret", true),
            ResourceType::new(
                "discovery.k8s.io",
                "v1",
                "endpointslices",
                "EndpointSlice",
                true,
            ),
            ResourceType::new("coordination.k8s.io", "v1", "leases", "Lease", true),
            ResourceType::new("networking.k8s.io", "v1", "ingresses", "Ingress", true)
                .short(&["ing"])
                .with_status(),
        ];
        Self { types }
    }

    /// Adds a type; a type with the same group and resource replaces the existing one.
    pub fn register(&mut self, resource: ResourceType) {
        if let Some(existing) = self
            .types
            .iter_mut()
            .find(|t| t.group == resource.group && t.resource == resource.resource)
        {
            *existing = resource;
        } else {
            self.types.push(resource);
        }
    }

    /// The type with this group and plural resource name.
    pub fn find(&self, group: &str, resource: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.resource == resource)
    }

    /// Index of a type, stable for the registry's lifetime.
    pub(crate) fn index_of(&self, group: &str, resource: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.group == group && t.resource == resource)
    }

    /// The type with this group, version and resource (as a URL names it).
    pub(crate) fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.group == group && t.version == version && t.resource == resource)
    }

    /// The type whose objects have this `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// The type at an index from [`Self::index_of`].
    pub(crate) fn get(&self, index: usize) -> &ResourceType {
        &self.types[index]
    }

    /// All types in registration order.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// Non-core groups with their version, in registration order, without duplicates.
    pub(crate) fn groups(&self) -> Vec<(String, String)> {
        let mut groups: Vec<(String, String)> = Vec::new();
        for t in &self.types {
            if !t.group.is_empty() && !groups.iter().any(|(g, _)| *g == t.group) {
                groups.push((t.group.clone(), t.version.clone()));
            }
        }
        groups
    }
}
