//! A fake Kubernetes API server for signpost's tests: the documented list/watch/write behaviour, strictly.
//!
//! Documents this crate follows (each module names the sections it implements):
//!
//! - Kubernetes API Concepts, <https://kubernetes.io/docs/reference/using-api/api-concepts/>: resource
//!   versions and their semantics for get, list and watch (`resourceVersion` unset = most recent, `"0"` =
//!   any, `resourceVersionMatch` `Exact` / `NotOlderThan`), efficient detection of changes (watch from a
//!   list's resourceVersion misses nothing), watch bookmarks, streaming lists (`sendInitialEvents`),
//!   retrieving large results sets in chunks (`limit` / `continue`, `remainingItemCount`, one snapshot per
//!   paginated list), and 410 Gone / reason `Expired` for resourceVersions older than the retained history;
//! - the Kubernetes API reference for the `Status` kind (meta/v1,
//!   <https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/>): every error is a
//!   `Status` with `status: Failure`, `message`, `reason`, `details` and `code`, with the messages of
//!   k8s.io/apimachinery `pkg/api/errors` and k8s.io/apiserver (checked against their source);
//! - RFC 7386 (JSON merge patch) and RFC 6902 (JSON patch); strategic merge patch is applied as a merge
//!   patch, exact for the object shapes used here (see [`patch`]); server-side apply is answered 415;
//! - the Kubernetes "Labels and Selectors", "Authenticating" (bearer tokens) and "Using RBAC
//!   Authorization" pages for selectors, 401 and 403.
//!
//! ```text
//!  client ──HTTP/1.1 or h2, TLS or plain──▶ server::handle ── auth ── faults ── route
//!                                               │                               │
//!                     discovery, /version ◀─────┘       list / get / write ─────┤──▶ Store (one Mutex)
//!                                                        watch task ◀── woken by the rv watch channel
//! ```
//!
//! Control plane only (no DNS). Invariants: one global resourceVersion counter, bumped by every write and
//! never reused (also across restarts with a state file); the store's lock is never held across `.await`.
//!
//! [`cloudflare`], [`azure_dns`] and [`google_dns`] fake other services, Cloudflare's DNS API, Azure DNS
//! and Google Cloud DNS with their token endpoints, for `signpost sync`'s tests (each names its own reference at its top).
//!
//! Start one in process with [`FakeApiServer::start`]; the binary `signpost-fake-apiserver` serves the same
//! for out-of-process clients (see the crate README).

pub mod auth;
pub mod azure_dns;
pub mod cloudflare;
mod discovery;
mod endpoints;
pub mod google_dns;
mod ops;
pub mod patch;
mod persist;
pub mod resources;
pub mod selector;
mod server;
pub mod status;
mod store;
mod table;
mod tls;
mod util;
pub mod validate;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use auth::{AuthConfig, Rule, UserConfig};
pub use persist::StateError;
pub use resources::{NameRule, Registry, ResourceType};
pub use status::ApiError;

/// How to start a fake API server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated CA (default) or plain HTTP.
    pub tls: bool,
    /// Directory for `ca.crt`, `ca.key` and `kubeconfig`; default a temporary directory removed when the
    /// handle drops.
    pub dir: Option<PathBuf>,
    /// Bearer tokens and rules; `None` allows every request.
    pub auth: Option<AuthConfig>,
    /// The token written into the kubeconfig; default the first configured user's token.
    pub kubeconfig_token: Option<String>,
    /// Persist objects and the resourceVersion counter here (see the `persist` module docs).
    pub state_file: Option<PathBuf>,
    /// Serve the fault-injection endpoints under `/fake/` on the same port.
    pub control_endpoints: bool,
    /// Most watch events kept; older resourceVersions get 410 Expired. Default 100,000.
    pub history_limit: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK. Default 1 s.
    pub bookmark_interval: Duration,
    /// How long a list or get with a not-yet-reached resourceVersion waits before 504. Default 3 s.
    pub too_large_resource_version_wait: Duration,
    /// Namespaces that exist at start (on an empty state). Default `default`, `kube-system`, `kube-public`,
    /// `kube-node-lease`.
    pub namespaces: Vec<String>,
    /// Resource types served besides the built-in ones.
    pub extra_resources: Vec<ResourceType>,
    /// Runs a small EndpointSlice controller and the kubelet's Ready condition: Pod Ready ⇔ every
    /// readiness-gate condition `True`, an endpoint's `ready` ⇔ its Pod's Ready (see `endpoints.rs`).
    /// Default off: slices keep what clients write.
    pub endpoint_slice_controller: bool,
    /// The WatchList feature gate: serve streaming lists (`sendInitialEvents=true`). Default on, as in
    /// kube-apiserver 1.32 and from 1.34. Off (its default in 1.27–1.31 and 1.33), such a watch is
    /// answered 422 Invalid: `sendInitialEvents is forbidden for watch unless the WatchList feature gate
    /// is enabled`.
    pub watch_list: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            dir: None,
            auth: None,
            kubeconfig_token: None,
            state_file: None,
            control_endpoints: false,
            history_limit: 100_000,
            bookmark_interval: Duration::from_secs(1),
            too_large_resource_version_wait: Duration::from_secs(3),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .map(str::to_owned)
                .to_vec(),
            extra_resources: Vec::new(),
            endpoint_slice_controller: false,
            watch_list: true,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A file or directory could not be written or read.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificates could not be generated or loaded.
    #[error("tls setup failed: {0}")]
    Tls(String),
    /// The state file could not be loaded.
    #[error("loading state")]
    State(#[from] StateError),
    /// An object in the state file does not belong to a served type.
    #[error("state file object of unknown type {0}")]
    UnknownStateType(String),
}

/// One request as the server saw it, for tests to assert on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// Authenticated user (`system:admin` without auth; `None` when authentication failed).
    pub user: Option<String>,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`) for resource
    /// requests.
    pub verb: Option<String>,
    /// `resource` or `resource/subresource` for resource requests.
    pub resource: Option<String>,
    /// Namespace of the request, when any.
    pub namespace: Option<String>,
    /// Object name, when any.
    pub name: Option<String>,
    /// HTTP status code (a watch is logged with 200 when its stream starts).
    pub status: u16,
}

/// An injected failure: the next `count` requests that match fail with `code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Verb to match (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`); `None` = any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource to match (`leases`, `pods/status`); `None` = any resource request.
    #[serde(default)]
    pub resource: Option<String>,
    /// HTTP status: 429 adds `Retry-After`, 403 uses the authorizer's message, 500 an internal error.
    pub code: u16,
    /// How many requests fail.
    #[serde(default = "one")]
    pub count: u32,
    /// Seconds for `Retry-After` with 429 (default 1).
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

fn one() -> u32 {
    1
}

/// A running fake API server.
pub struct FakeApiServer {
    shared: Arc<server::Shared>,
    dir: PathBuf,
    kubeconfig: PathBuf,
    _temporary: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

// === impl FakeApiServer ===

impl FakeApiServer {
    /// Starts a server: loads the state file if any, prepares TLS and the kubeconfig, binds, serves.
    pub async fn start(options: ServerOptions) -> Result<Self, StartError> {
        let (dir, temporary) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StartError::Io {
                    path: dir.clone(),
                    source,
                })?;
                (dir.clone(), None)
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("signpost-fake-apiserver")
                    .tempdir()
                    .map_err(|source| StartError::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temporary.path().to_owned(), Some(temporary))
            }
        };
        let shared = server::Shared::new(&options, &dir)?;
        shared.clone().bind(Some(options.listen))?;
        let token = options.kubeconfig_token.clone().or_else(|| {
            options
                .auth
                .as_ref()
                .and_then(|a| a.users.first().map(|u| u.token.clone()))
        });
        // Without auth the server ignores tokens, but kubectl prompts for a user name when the
        // kubeconfig identifies no user, so it always names one.
        let token = token.or_else(|| options.auth.is_none().then(|| "signpost-fake".to_owned()));
        let kubeconfig = tls::write_kubeconfig(
            &dir,
            &shared.url(),
            shared.ca_pem().as_deref(),
            token.as_deref(),
        )?;
        Ok(Self {
            shared,
            dir,
            kubeconfig,
            _temporary: temporary,
        })
    }

    /// Base URL, e.g. `https://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.shared.url()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr()
    }

    /// Path of the kubeconfig (server URL, CA, token).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Path of `ca.crt` (TLS only).
    pub fn ca_cert_path(&self) -> Option<PathBuf> {
        self.shared.ca_pem().map(|_| self.dir.join("ca.crt"))
    }

    /// The CA certificate in PEM (TLS only).
    pub fn ca_pem(&self) -> Option<String> {
        self.shared.ca_pem()
    }

    /// The directory holding `ca.crt` and `kubeconfig`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.shared.resource_version()
    }

    /// The served resource types.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Creates an object (type from `apiVersion` + `kind`, namespace from `metadata.namespace`, default
    /// `default`) exactly as a POST would; returns the stored object.
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        self.shared.create_value(object)
    }

    /// Stores an object that the real API server's validation would reject (an EndpointSlice with an
    /// unknown `addressType`, a Service with a malformed `clusterIP`), as one written by an older server or
    /// straight into etcd would be: for testing that clients survive objects they do not expect. Defaulting
    /// still applies; nothing else differs from [`FakeApiServer::create`].
    pub fn create_unvalidated(&self, object: Value) -> Result<Value, ApiError> {
        self.shared.create_value_checked(object, false)
    }

    /// Creates many objects at once (one lock acquisition): the quick way to load large fixtures.
    pub fn create_many(&self, objects: impl IntoIterator<Item = Value>) -> Result<u64, ApiError> {
        self.shared.create_many(objects)
    }

    /// Replaces an object's status exactly as a PUT on its `status` subresource would (the kubelet's and
    /// controllers' way to write status; 409 on a stale `metadata.resourceVersion`).
    pub fn update_status(&self, object: Value) -> Result<Value, ApiError> {
        self.shared.update_value_at(object, true)
    }

    /// Replaces an object exactly as a PUT would (409 on a stale `metadata.resourceVersion`).
    pub fn update(&self, object: Value) -> Result<Value, ApiError> {
        self.shared.update_value(object)
    }

    /// Deletes an object; `resource` is the plural name (`services`) or `resource.group`.
    pub fn delete(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        self.shared.delete_value(resource, namespace, name)
    }

    /// The current object, if any.
    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.shared.get_value(resource, namespace, name)
    }

    /// The current objects of a type, optionally in one namespace, in key order.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        self.shared.list_values(resource, namespace)
    }

    /// Ends every open watch abruptly, as a broken connection would.
    pub fn drop_watches(&self) {
        self.shared.drop_watches();
    }

    /// Ends the next streaming list (a watch with `sendInitialEvents=true`) of `resource`
    /// (`services`, `endpointslices`) after its initial objects, before the closing bookmark, as a
    /// proxy that cuts long responses would. Each call cuts one list.
    pub fn cut_next_streaming_list(&self, resource: &str) {
        self.shared
            .arm_stream_fault(server::StreamFault::CutStreamingList, resource);
    }

    /// Sends the next change event of a watch of `resource` (after the initial objects) as the
    /// line `{"type":"GARBLED","object":{}}`, which no client decodes as a watch event (an unknown
    /// type), as a broken proxy might; the watch goes on after it. Each call garbles one event.
    pub fn garble_next_watch_event(&self, resource: &str) {
        self.shared
            .arm_stream_fault(server::StreamFault::GarbleEvent, resource);
    }

    /// Drops all history: watches and continue tokens from any earlier resourceVersion get 410 Expired.
    pub fn compact(&self) {
        self.shared.compact();
    }

    /// Makes the next matching requests fail.
    pub fn fail_next(&self, rule: FaultRule) {
        self.shared.fail_next(rule);
    }

    /// Adds latency before every API request is handled (zero removes it).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    /// Simulated crash: stops accepting and closes every connection. State is kept in memory.
    pub fn crash(&self) {
        self.shared.crash();
    }

    /// Serves again on the same address after [`Self::crash`] (crashing first if still serving). Like an
    /// API server restart, the watch history is gone: older resourceVersions get 410.
    pub async fn restart(&self) -> Result<(), StartError> {
        self.shared.crash();
        self.shared.forget_history();
        self.shared.clone().bind(None)
    }

    /// Stops serving for good and writes the state file's snapshot, if any.
    pub async fn shutdown(self) {
        self.shared.crash();
        self.shared.flush_state();
    }

    /// Every request so far, in arrival order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.request_log()
    }

    /// Forgets the request log.
    pub fn clear_request_log(&self) {
        self.shared.clear_request_log();
    }

    /// Waits until a logged request satisfies `predicate` or `timeout` passes; returns it.
    pub async fn wait_for_request(
        &self,
        predicate: impl Fn(&RequestRecord) -> bool,
        timeout: Duration,
    ) -> Option<RequestRecord> {
        self.shared.wait_for_request(predicate, timeout).await
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shared.crash();
    }
}
