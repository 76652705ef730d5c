//! The HTTP side: listener, TLS, authentication, fault injection, routing, and the get/list/write verbs.
//!
//! Follows the Kubernetes API Concepts page for URL structure (`/api/v1/...`, `/apis/GROUP/VERSION/...`,
//! `namespaces/NS/RESOURCE[/NAME[/SUBRESOURCE]]`, cluster-wide `RESOURCE` collections), the verbs of each
//! method, and "Retrieving large results sets in chunks" (the continue token encodes the snapshot's
//! resourceVersion and the last key; a token whose snapshot was compacted is 410 Expired with a new token
//! that continues at the newest resourceVersion, as the etcd3 store does).
//!
//! Control plane of the fake. Runtime topology: one accept task per start, one task per connection (both
//! stop when the crash token is cancelled, which closes every socket), one task per watch and per large
//! list. Invariant: the store's lock is taken only inside synchronous blocks, never across `.await`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio_util::sync::CancellationToken;

use crate::auth::{Attributes, AuthConfig};
use crate::patch::{ACCEPTED_PATCH_TYPES, PatchType};
use crate::persist::{self, Journal};
use crate::resources::Registry;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, FieldError, success_status};
use crate::store::{Compacted, Key, Store, Stored};
use crate::{
    FaultRule, RequestRecord, ServerOptions, StartError, discovery, ops, table, tls, watch,
};

/// The response body: a whole buffer or a stream fed by a task.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// The user of a server without authentication.
const ADMIN: &str = "system:admin";

/// A one-shot fault in a watch stream (`FakeApiServer::cut_next_streaming_list`,
/// `FakeApiServer::garble_next_watch_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// A streaming list ends after its objects, without the closing bookmark.
    CutStreamingList,
    /// A watch event is sent as a line no client decodes.
    GarbleEvent,
}

/// Server state shared by every connection and the library handle.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    store: Mutex<Store>,
    /// `{"apiVersion":"…","kind":"…",` per type, spliced before stored bodies.
    pub(crate) prefixes: Vec<Vec<u8>>,
    auth: Option<AuthConfig>,
    control: bool,
    pub(crate) bookmark_interval: Duration,
    /// The WatchList feature gate ([`crate::ServerOptions::watch_list`]).
    pub(crate) watch_list: bool,
    too_large_wait: Duration,
    faults: Mutex<Faults>,
    log: Mutex<Vec<RequestRecord>>,
    log_len: tokio_watch::Sender<usize>,
    watch_drop: Mutex<CancellationToken>,
    /// One-shot stream faults still to happen, by resource.
    stream_faults: Mutex<Vec<(StreamFault, String)>>,
    serving: Mutex<Serving>,
    tls: Option<Arc<rustls::ServerConfig>>,
    ca_pem: Option<String>,
}

#[derive(Default)]
struct Faults {
    rules: Vec<FaultRule>,
    latency: Duration,
}

struct Serving {
    address: SocketAddr,
    crash: CancellationToken,
}

/// Locks a mutex, recovering from poisoning (a panicked request must not wedge the fake).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

// === impl Shared ===

impl Shared {
    pub(crate) fn new(options: &ServerOptions, dir: &Path) -> Result<Arc<Self>, StartError> {
        let mut registry = Registry::builtin();
        for extra in &options.extra_resources {
            registry.register(extra.clone());
        }
        let mut store = Store::new(registry.types().len(), options.history_limit);
        store.endpoint_slice_controller = options.endpoint_slice_controller;
        let mut fresh = true;
        if let Some(path) = &options.state_file {
            let loaded = persist::load(path)?;
            fresh = loaded.rv == 0;
            for object in loaded.objects {
                let index = registry
                    .index_of(&object.group, &object.resource)
                    .ok_or_else(|| {
                        StartError::UnknownStateType(format!(
                            "{}.{}",
                            object.resource, object.group
                        ))
                    })?;
                store.load(index, Stored::encode(object.object, object.rv));
            }
            store.finish_load(loaded.rv);
        }
        if fresh {
            let namespaces = registry.index_of("", "namespaces").expect("built in");
            for name in &options.namespaces {
                let object =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                ops::create(&registry, &mut store, namespaces, "", object)
                    .map_err(|e| StartError::Tls(format!("seeding namespace {name}: {e}")))?;
            }
        }
        if let Some(path) = &options.state_file {
            let mut journal = Journal::open(path)?;
            let all = store.all_current();
            journal.snapshot(
                store.rv(),
                all.iter().map(|(index, object)| {
                    let resource = registry.get(*index);
                    (
                        resource.group.as_str(),
                        resource.resource.as_str(),
                        object.rv,
                        &object.body[..],
                    )
                }),
            )?;
            store.set_journal(Some(journal));
        }
        let prefixes = registry
            .types()
            .iter()
            .map(|t| {
                format!(
                    "{{\"apiVersion\":{},\"kind\":{},",
                    json!(t.api_version()),
                    json!(t.kind)
                )
                .into_bytes()
            })
            .collect();
        let (ca_pem, tls) = if options.tls {
            let pki = tls::prepare(dir)?;
            (Some(pki.ca_pem), Some(pki.server_config))
        } else {
            (None, None)
        };
        let (log_len, _) = tokio_watch::channel(0);
        Ok(Arc::new(Self {
            registry,
            store: Mutex::new(store),
            prefixes,
            auth: options.auth.clone(),
            control: options.control_endpoints,
            bookmark_interval: options.bookmark_interval,
            watch_list: options.watch_list,
            too_large_wait: options.too_large_resource_version_wait,
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            log_len,
            watch_drop: Mutex::new(CancellationToken::new()),
            stream_faults: Mutex::new(Vec::new()),
            serving: Mutex::new(Serving {
                address: options.listen,
                crash: CancellationToken::new(),
            }),
            tls,
            ca_pem,
        }))
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Binds `address` (or the previous address) and starts accepting. Synchronous (std bind, which sets
    /// SO_REUSEADDR, so a restart can take the same port at once); must run inside the tokio runtime.
    pub(crate) fn bind(self: Arc<Self>, address: Option<SocketAddr>) -> Result<(), StartError> {
        let address = address.unwrap_or_else(|| lock(&self.serving).address);
        let error = |source| StartError::Bind { address, source };
        let listener = std::net::TcpListener::bind(address).map_err(error)?;
        listener.set_nonblocking(true).map_err(error)?;
        let bound = listener.local_addr().map_err(error)?;
        let listener = TcpListener::from_std(listener).map_err(error)?;
        let crash = CancellationToken::new();
        {
            let mut serving = lock(&self.serving);
            serving.address = bound;
            serving.crash = crash.clone();
        }
        let acceptor = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(accept_loop(self, listener, acceptor, crash));
        Ok(())
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        lock(&self.serving).address
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    pub(crate) fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.store().rv()
    }

    pub(crate) fn crash(&self) {
        lock(&self.serving).crash.cancel();
        self.drop_watches();
    }

    pub(crate) fn forget_history(&self) {
        self.store().forget_history();
    }

    pub(crate) fn flush_state(&self) {
        let mut store = self.store();
        let rv = store.rv();
        let all = store.all_current();
        let registry = &self.registry;
        if let Some(journal) = store.journal_mut() {
            let result = journal.snapshot(
                rv,
                all.iter().map(|(index, object)| {
                    let resource = registry.get(*index);
                    (
                        resource.group.as_str(),
                        resource.resource.as_str(),
                        object.rv,
                        &object.body[..],
                    )
                }),
            );
            if let Err(error) = result {
                tracing::error!(%error, "writing the state snapshot failed");
            }
        }
    }

    /// Writes a snapshot when the journal has grown large.
    fn maybe_snapshot(&self, store: &mut Store) {
        let live = store.live_objects();
        let wants = store.journal_mut().is_some_and(|j| j.wants_snapshot(live));
        if wants {
            let rv = store.rv();
            let all = store.all_current();
            let registry = &self.registry;
            if let Some(journal) = store.journal_mut() {
                let result = journal.snapshot(
                    rv,
                    all.iter().map(|(index, object)| {
                        let resource = registry.get(*index);
                        (
                            resource.group.as_str(),
                            resource.resource.as_str(),
                            object.rv,
                            &object.body[..],
                        )
                    }),
                );
                if let Err(error) = result {
                    tracing::error!(%error, "writing the state snapshot failed");
                }
            }
        }
    }

    pub(crate) fn drop_watches(&self) {
        let mut token = lock(&self.watch_drop);
        token.cancel();
        *token = CancellationToken::new();
    }

    /// Arms `fault` for the next watch stream of `resource` it applies to.
    pub(crate) fn arm_stream_fault(&self, fault: StreamFault, resource: &str) {
        lock(&self.stream_faults).push((fault, resource.to_owned()));
    }

    /// Whether `fault` is armed for `resource`; it is used up.
    pub(crate) fn take_stream_fault(&self, fault: StreamFault, resource: &str) -> bool {
        let mut faults = lock(&self.stream_faults);
        match faults
            .iter()
            .position(|(f, r)| *f == fault && r == resource)
        {
            Some(at) => {
                faults.remove(at);
                true
            }
            None => false,
        }
    }

    pub(crate) fn watch_drop_token(&self) -> CancellationToken {
        lock(&self.watch_drop).clone()
    }

    pub(crate) fn compact(&self) {
        let mut store = self.store();
        let rv = store.rv();
        store.compact(rv);
    }

    pub(crate) fn fail_next(&self, rule: FaultRule) {
        lock(&self.faults).rules.push(rule);
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        lock(&self.faults).latency = latency;
    }

    pub(crate) fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.log).clone()
    }

    pub(crate) fn clear_request_log(&self) {
        lock(&self.log).clear();
    }

    fn record(&self, record: RequestRecord) {
        let mut log = lock(&self.log);
        log.push(record);
        self.log_len.send_replace(log.len());
    }

    pub(crate) async fn wait_for_request(
        &self,
        predicate: impl Fn(&RequestRecord) -> bool,
        timeout: Duration,
    ) -> Option<RequestRecord> {
        let mut changes = self.log_len.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(found) = lock(&self.log).iter().find(|r| predicate(r)) {
                return Some(found.clone());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    fn resolve(&self, resource: &str) -> Option<usize> {
        match resource.split_once('.') {
            Some((plural, group)) => self.registry.index_of(group, plural),
            None => self
                .registry
                .types()
                .iter()
                .position(|t| t.resource == resource),
        }
    }

    pub(crate) fn create_value(&self, object: Value) -> Result<Value, ApiError> {
        self.create_value_checked(object, true)
    }

    pub(crate) fn create_value_checked(
        &self,
        object: Value,
        validate: bool,
    ) -> Result<Value, ApiError> {
        let (index, namespace) = self.target_of(&object)?;
        let mut store = self.store();
        let stored = ops::create_checked(
            &self.registry,
            &mut store,
            index,
            &namespace,
            object,
            validate,
        )?;
        self.maybe_snapshot(&mut store);
        let resource = self.registry.get(index);
        Ok(stored.to_value(&resource.api_version(), &resource.kind))
    }

    pub(crate) fn create_many(
        &self,
        objects: impl IntoIterator<Item = Value>,
    ) -> Result<u64, ApiError> {
        let mut store = self.store();
        for object in objects {
            let (index, namespace) = self.target_of(&object)?;
            ops::create(&self.registry, &mut store, index, &namespace, object)?;
        }
        self.maybe_snapshot(&mut store);
        Ok(store.rv())
    }

    pub(crate) fn update_value(&self, object: Value) -> Result<Value, ApiError> {
        self.update_value_at(object, false)
    }

    /// PUT on the object or (with `status`) its status subresource.
    pub(crate) fn update_value_at(&self, object: Value, status: bool) -> Result<Value, ApiError> {
        let (index, namespace) = self.target_of(&object)?;
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let mut store = self.store();
        let stored = ops::update(
            &self.registry,
            &mut store,
            index,
            &namespace,
            &name,
            object,
            status,
        )?;
        self.maybe_snapshot(&mut store);
        let resource = self.registry.get(index);
        Ok(stored.to_value(&resource.api_version(), &resource.kind))
    }

    pub(crate) fn delete_value(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let index = self.resolve(resource).ok_or_else(ApiError::unknown_path)?;
        let mut store = self.store();
        ops::delete(
            &self.registry,
            &mut store,
            index,
            namespace.unwrap_or(""),
            name,
            &Value::Null,
        )?;
        self.maybe_snapshot(&mut store);
        Ok(())
    }

    pub(crate) fn get_value(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let index = self.resolve(resource)?;
        let rt = self.registry.get(index);
        let ns = if rt.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        self.store()
            .get(index, &(ns.to_owned(), name.to_owned()))
            .map(|s| s.to_value(&rt.api_version(), &rt.kind))
    }

    pub(crate) fn list_values(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(index) = self.resolve(resource) else {
            return Vec::new();
        };
        let rt = self.registry.get(index);
        self.store()
            .current(index, namespace)
            .iter()
            .map(|s| s.to_value(&rt.api_version(), &rt.kind))
            .collect()
    }

    fn target_of(&self, object: &Value) -> Result<(usize, String), ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or("");
        let kind = object["kind"].as_str().unwrap_or("");
        let resource = self.registry.find_kind(api_version, kind).ok_or_else(|| {
            ApiError::bad_request(format!(
                "no resource type serves apiVersion {api_version:?} kind {kind:?}"
            ))
        })?;
        let index = self
            .registry
            .index_of(&resource.group, &resource.resource)
            .expect("found above");
        let namespace = if resource.namespaced {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        Ok((index, namespace))
    }

    /// Waits until the store reaches `rv` (list/get with a resourceVersion not yet seen), at most the
    /// configured time; then 504 like the watch cache's "Too large resource version".
    async fn wait_for_rv(&self, rv: u64) -> Result<(), ApiError> {
        let mut changes = self.store().subscribe();
        let deadline = tokio::time::Instant::now() + self.too_large_wait;
        loop {
            let current = *changes.borrow_and_update();
            let current = current.max(self.store().rv());
            if current >= rv {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(ApiError::too_large_resource_version(rv, self.store().rv())),
            }
        }
    }
}

// === accept loop ===

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    crash: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = crash.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let crash = crash.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, request, peer).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(acceptor) => {
                    let tls = tokio::select! {
                        _ = crash.cancelled() => return,
                        tls = acceptor.accept(stream) => tls,
                    };
                    let Ok(tls) = tls else {
                        return;
                    };
                    let connection = builder.serve_connection(TokioIo::new(tls), service);
                    tokio::select! {
                        _ = crash.cancelled() => {}
                        _ = connection => {}
                    }
                }
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = crash.cancelled() => {}
                        _ = connection => {}
                    }
                }
            }
        });
    }
}

// === responses ===

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn json_response(status: u16, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

fn value_response(status: u16, value: &Value) -> Response<Body> {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

pub(crate) fn error_response(error: &ApiError) -> Response<Body> {
    let mut response = value_response(error.code, &error.to_json());
    if let Some(seconds) = error.retry_after_seconds
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A body fed by a task through a bounded channel; an `Err` item aborts the response mid-stream. The
/// optional oneshot sender is dropped with the body, which tells its receiver the response is done.
pub(crate) struct ChannelBody {
    receiver: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    _done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(Frame::data)))
    }
}

pub(crate) fn streaming_response(
    receiver: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> Response<Body> {
    let mut response = Response::new(
        ChannelBody {
            receiver,
            _done: None,
        }
        .boxed(),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

// === request handling ===

/// A parsed resource request.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) index: usize,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

enum Route {
    Resource(Target),
    NonResource,
    Unknown,
}

fn route(registry: &Registry, path: &str) -> Route {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Route::NonResource,
    };
    let find = |resource: &str| registry.lookup(group, version, resource);
    let target = |index, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(Target {
            index,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        })
    };
    match rest {
        [] => Route::NonResource,
        ["namespaces", ns, resource, more @ ..]
            if group.is_empty()
                && !(more.is_empty() && matches!(*resource, "status" | "finalize")) =>
        {
            let Some(index) = find(resource) else {
                return Route::Unknown;
            };
            if !registry.get(index).namespaced {
                return Route::Unknown;
            }
            match more {
                [] => target(index, Some(ns), None, None),
                [name] => target(index, Some(ns), Some(name), None),
                [name, "status"] if registry.get(index).status_subresource => {
                    target(index, Some(ns), Some(name), Some("status"))
                }
                _ => Route::Unknown,
            }
        }
        ["namespaces", ns, resource, more @ ..] if !group.is_empty() => {
            let Some(index) = find(resource) else {
                return Route::Unknown;
            };
            if !registry.get(index).namespaced {
                return Route::Unknown;
            }
            match more {
                [] => target(index, Some(ns), None, None),
                [name] => target(index, Some(ns), Some(name), None),
                [name, "status"] if registry.get(index).status_subresource => {
                    target(index, Some(ns), Some(name), Some("status"))
                }
                _ => Route::Unknown,
            }
        }
        [resource, more @ ..] => {
            let Some(index) = find(resource) else {
                return Route::Unknown;
            };
            let namespaced = registry.get(index).namespaced;
            match more {
                [] => target(index, None, None, None),
                [name] if !namespaced => target(index, None, Some(name), None),
                [name, "status"] if !namespaced && registry.get(index).status_subresource => {
                    target(index, None, Some(name), Some("status"))
                }
                _ => Route::Unknown,
            }
        }
    }
}

type Query = HashMap<String, String>;

fn parse_query(query: &str) -> Query {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn flag(query: &Query, key: &str) -> bool {
    matches!(
        query.get(key).map(String::as_str),
        Some("1" | "true" | "True")
    )
}

/// The Kubernetes verb of a request. `watch=true` makes a collection GET a watch; on a named object the
/// fake ignores it (clients watch one object as a collection watch with `fieldSelector=metadata.name=`;
/// the deprecated `/watch/` paths are not served).
fn verb_of(method: &Method, target: &Target, query: &Query) -> &'static str {
    match (method, target.name.is_some()) {
        (&Method::GET, false) if flag(query, "watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, false) => "deletecollection",
        (&Method::DELETE, true) => "delete",
        _ => "unknown",
    }
}

/// What the `Accept` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Json,
    Table,
}

fn negotiate(accept: Option<&str>) -> Result<Output, ApiError> {
    let Some(accept) = accept else {
        return Ok(Output::Json);
    };
    let mut json_ok = false;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if media == "application/json"
            && param("as") == Some("Table")
            && param("g") == Some("meta.k8s.io")
        {
            if matches!(param("v"), Some("v1") | Some("v1beta1")) {
                return Ok(Output::Table);
            }
            continue;
        }
        if param("as").is_some() {
            continue;
        }
        if matches!(media, "application/json" | "*/*" | "application/*" | "") {
            json_ok = true;
        }
    }
    if json_ok {
        Ok(Output::Json)
    } else {
        Err(ApiError::not_acceptable(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ]))
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or("").to_owned();
    let query = parse_query(&raw_query);
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query,
        user: None,
        verb: None,
        resource: None,
        namespace: None,
        name: None,
        status: 0,
    };
    if shared.control && path.starts_with("/fake/") {
        let response = control(&shared, &method, &path, request).await;
        record.status = response.status().as_u16();
        shared.record(record);
        return response;
    }
    let latency = lock(&shared.faults).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match serve(&shared, request, &method, &path, &query, &mut record).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    record.status = response.status().as_u16();
    shared.record(record);
    response
}

async fn serve(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    method: &Method,
    path: &str,
    query: &Query,
    record: &mut RequestRecord,
) -> Result<Response<Body>, ApiError> {
    // Authentication: a bearer token, when tokens are configured.
    let user = match &shared.auth {
        None => None,
        Some(auth) => {
            let token = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            match token.and_then(|t| auth.authenticate(t)) {
                Some(user) => Some(user.clone()),
                None => return Err(ApiError::unauthorized()),
            }
        }
    };
    record.user = Some(user.as_ref().map_or(ADMIN.to_owned(), |u| u.user.clone()));
    let target = match route(&shared.registry, path) {
        Route::Unknown => return Err(ApiError::unknown_path()),
        Route::NonResource if path == "/openapi/v2" => {
            let accept = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            return Ok(discovery::openapi_v2(accept.unwrap_or("")));
        }
        Route::NonResource => {
            return match discovery::serve(shared, method, path) {
                Some(value) => Ok(value_response(200, &value)),
                None => Err(ApiError::unknown_path()),
            };
        }
        Route::Resource(target) => target,
    };
    let resource = shared.registry.get(target.index).clone();
    let verb = verb_of(method, &target, query);
    let resource_label = match &target.subresource {
        Some(sub) => format!("{}/{sub}", resource.resource),
        None => resource.resource.clone(),
    };
    record.verb = Some(verb.to_owned());
    record.resource = Some(resource_label.clone());
    record.namespace = target.namespace.clone();
    record.name = target.name.clone();
    // A watch of one object via fieldSelector is authorized with its name, like the real server.
    let field_selector = query.get("fieldSelector").map(String::as_str).unwrap_or("");
    let selected_name = FieldSelector::parse(field_selector, &resource.resource)
        .ok()
        .and_then(|s| s.pinned_name().map(str::to_owned));
    let auth_name = target.name.clone().or(selected_name).unwrap_or_default();
    if let Some(user) = &user {
        let attributes = Attributes {
            verb,
            group: &resource.group,
            resource: &resource.resource,
            subresource: target.subresource.as_deref(),
            namespace: target.namespace.as_deref(),
            name: &auth_name,
        };
        if !user.allows(&attributes) {
            return Err(ApiError::forbidden(
                &resource,
                target.subresource.as_deref(),
                target.name.as_deref().unwrap_or(""),
                &user.user,
                verb,
                target.namespace.as_deref(),
            ));
        }
    }
    if let Some(error) = injected_fault(shared, verb, &resource_label, &target, record) {
        return Err(error);
    }
    let output = negotiate(
        request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    )?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let status_sub = target.subresource.as_deref() == Some("status");
    match verb {
        "get" => get(shared, &target, query, output).await,
        "list" => list(shared, &target, query, output).await,
        "watch" => watch::start(shared.clone(), &target, query, output).await,
        "create" => {
            if target.name.is_some() {
                return Err(ApiError::method_not_supported(&resource, "create"));
            }
            let body = read_json(request).await?;
            if flag(query, "dryRun") || query.get("dryRun").is_some_and(|v| v == "All") {
                return Err(ApiError::bad_request(
                    "dryRun is not supported by this fake",
                ));
            }
            let stored = {
                let mut store = shared.store();
                let stored =
                    ops::create(&shared.registry, &mut store, target.index, &namespace, body)?;
                shared.maybe_snapshot(&mut store);
                stored
            };
            Ok(object_response(shared, target.index, 201, &stored))
        }
        "update" => {
            let body = read_json(request).await?;
            let stored = {
                let mut store = shared.store();
                let stored = ops::update(
                    &shared.registry,
                    &mut store,
                    target.index,
                    &namespace,
                    &name,
                    body,
                    status_sub,
                )?;
                shared.maybe_snapshot(&mut store);
                stored
            };
            Ok(object_response(shared, target.index, 200, &stored))
        }
        "patch" => {
            let Some(patch_type) = PatchType::from_content_type(&content_type) else {
                return Err(ApiError::unsupported_media_type(
                    &content_type,
                    ACCEPTED_PATCH_TYPES,
                ));
            };
            let body = read_json(request).await?;
            let stored = {
                let mut store = shared.store();
                let stored = ops::patch(
                    &shared.registry,
                    &mut store,
                    target.index,
                    &namespace,
                    &name,
                    patch_type,
                    &body,
                    status_sub,
                )?;
                shared.maybe_snapshot(&mut store);
                stored
            };
            Ok(object_response(shared, target.index, 200, &stored))
        }
        "delete" => {
            if status_sub {
                return Err(ApiError::method_not_supported(&resource, "delete"));
            }
            let body = read_body(request).await?;
            let options: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
            };
            let outcome = {
                let mut store = shared.store();
                let outcome = ops::delete(
                    &shared.registry,
                    &mut store,
                    target.index,
                    &namespace,
                    &name,
                    &options,
                )?;
                shared.maybe_snapshot(&mut store);
                outcome
            };
            Ok(match outcome {
                ops::Deleted::Pending(stored) => {
                    object_response(shared, target.index, 200, &stored)
                }
                ops::Deleted::Now(stored) => {
                    // Services, pods and namespaces return the deleted object (as the delete operations
                    // of their OpenAPI say); other types a Success Status.
                    if resource.group.is_empty()
                        && matches!(
                            resource.resource.as_str(),
                            "services" | "pods" | "namespaces"
                        )
                    {
                        object_response(shared, target.index, 200, &stored)
                    } else {
                        value_response(200, &success_status(&resource, &name, &stored.uid))
                    }
                }
            })
        }
        _ => Err(ApiError::method_not_supported(&resource, verb)),
    }
}

fn injected_fault(
    shared: &Shared,
    verb: &str,
    resource: &str,
    target: &Target,
    record: &RequestRecord,
) -> Option<ApiError> {
    let mut faults = lock(&shared.faults);
    let position = faults.rules.iter().position(|rule| {
        rule.verb.as_deref().is_none_or(|v| v == verb)
            && rule.resource.as_deref().is_none_or(|r| r == resource)
    })?;
    let rule = &mut faults.rules[position];
    let code = rule.code;
    let retry = rule.retry_after_seconds.unwrap_or(1);
    rule.count = rule.count.saturating_sub(1);
    if rule.count == 0 {
        faults.rules.remove(position);
    }
    drop(faults);
    let rt = shared.registry.get(target.index);
    Some(match code {
        429 => ApiError::too_many_requests(retry),
        403 => ApiError::forbidden(
            rt,
            target.subresource.as_deref(),
            target.name.as_deref().unwrap_or(""),
            record.user.as_deref().unwrap_or(ADMIN),
            verb,
            target.namespace.as_deref(),
        ),
        500 => ApiError::internal("injected fault"),
        other => ApiError::generic(other),
    })
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

async fn read_json(request: Request<Incoming>) -> Result<Value, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    if media == "application/apply-patch+yaml"
        || media == "application/yaml"
        || media.contains("protobuf")
    {
        return Err(ApiError::unsupported_media_type(
            &media,
            ACCEPTED_PATCH_TYPES,
        ));
    }
    let body = read_body(request).await?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

fn object_response(shared: &Shared, index: usize, status: u16, stored: &Stored) -> Response<Body> {
    let mut out = Vec::with_capacity(stored.body.len() + 64);
    stored.with_kind(&shared.prefixes[index], &mut out);
    json_response(status, out)
}

/// GET of one object.
async fn get(
    shared: &Arc<Shared>,
    target: &Target,
    query: &Query,
    output: Output,
) -> Result<Response<Body>, ApiError> {
    if let Some(rv) = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
    {
        let rv: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
        shared.wait_for_rv(rv).await?;
    }
    let resource = shared.registry.get(target.index);
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let stored = shared
        .store()
        .get(target.index, &(namespace, name.clone()))
        .ok_or_else(|| ApiError::not_found(resource, &name))?;
    if output == Output::Table {
        let value = stored.to_value(&resource.api_version(), &resource.kind);
        let table = table::build(
            resource,
            &[value],
            Some(stored.rv),
            None,
            None,
            include_object(query),
        );
        return Ok(value_response(200, &table));
    }
    if target.subresource.is_some() {
        // GET on /status returns the whole object, as the real server does.
    }
    Ok(object_response(shared, target.index, 200, &stored))
}

pub(crate) fn include_object(query: &Query) -> &str {
    query
        .get("includeObject")
        .map(String::as_str)
        .unwrap_or("Metadata")
}

/// The continue token: base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":"<namespace>/<name>"}`; rv -1
/// continues at the newest resourceVersion (what a 410 for an expired token hands out).
pub(crate) fn encode_continue(rv: i64, key: &Key) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}", key.0, key.1)});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(i64, Key), ApiError> {
    let invalid = |why: &str| ApiError::bad_request(format!("invalid continue token: {why}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| invalid(&e.to_string()))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
    if value["v"] != "meta.k8s.io/v1" {
        return Err(invalid("continue key is not valid"));
    }
    let rv = value["rv"]
        .as_i64()
        .ok_or_else(|| invalid("continue key is not valid"))?;
    let start = value["start"]
        .as_str()
        .ok_or_else(|| invalid("continue key is not valid"))?;
    let (namespace, name) = start
        .split_once('/')
        .ok_or_else(|| invalid("continue key is not valid"))?;
    Ok((rv, (namespace.to_owned(), name.to_owned())))
}

/// How a list picks its snapshot (API Concepts, "Semantics for get and list").
enum Snapshot {
    /// The newest state (unset resourceVersion, `"0"`, NotOlderThan after waiting).
    MostRecent,
    /// Exactly this resourceVersion.
    Exact(u64),
}

pub(crate) struct Selectors {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Selectors {
    pub(crate) fn parse(query: &Query, resource: &str) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(
                query.get("labelSelector").map(String::as_str).unwrap_or(""),
            )?,
            fields: FieldSelector::parse(
                query.get("fieldSelector").map(String::as_str).unwrap_or(""),
                resource,
            )?,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub(crate) fn matches(&self, object: &Stored) -> bool {
        self.labels.matches(&object.labels)
            && self
                .fields
                .matches(&object.namespace, &object.name, &object.fields)
    }
}

/// LIST of a collection.
async fn list(
    shared: &Arc<Shared>,
    target: &Target,
    query: &Query,
    output: Output,
) -> Result<Response<Body>, ApiError> {
    let resource = shared.registry.get(target.index).clone();
    let selectors = Selectors::parse(query, &resource.resource)?;
    let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();
    let rv_match = query
        .get("resourceVersionMatch")
        .cloned()
        .unwrap_or_default();
    let continue_token = query.get("continue").cloned().unwrap_or_default();
    let limit: usize = match query.get("limit") {
        Some(text) if !text.is_empty() => {
            let n: i64 = text
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {text}")))?;
            if n <= 0 { usize::MAX } else { n as usize }
        }
        _ => usize::MAX,
    };
    // meta/internalversion ValidateListOptions.
    let mut errors = Vec::new();
    if !rv_match.is_empty() {
        if rv_param.is_empty() {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if !continue_token.is_empty() {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if rv_match != "Exact" && rv_match != "NotOlderThan" {
            errors.push(FieldError::not_supported(
                "resourceVersionMatch",
                &json!(rv_match),
                &["Exact", "NotOlderThan", ""],
            ));
        }
        if rv_match == "Exact" && rv_param == "0" {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if query.contains_key("sendInitialEvents") {
        errors.push(FieldError::forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_list_options(&errors));
    }
    let parse_rv = |text: &str| -> Result<u64, ApiError> {
        text.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text}")))
    };
    let mut start_after: Option<Key> = None;
    let snapshot = if !continue_token.is_empty() {
        if !rv_param.is_empty() && rv_param != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (rv, key) = decode_continue(&continue_token)?;
        start_after = Some(key);
        if rv < 0 {
            Snapshot::MostRecent
        } else {
            Snapshot::Exact(rv as u64)
        }
    } else if rv_param.is_empty() || rv_param == "0" {
        Snapshot::MostRecent
    } else {
        let rv = parse_rv(&rv_param)?;
        // Exact when asked, or (legacy) when paging without resourceVersionMatch.
        let exact = rv_match == "Exact" || (rv_match.is_empty() && limit != usize::MAX);
        shared.wait_for_rv(rv).await?;
        if exact {
            Snapshot::Exact(rv)
        } else {
            Snapshot::MostRecent
        }
    };
    let paging = limit != usize::MAX;
    let count_remaining = paging && selectors.is_empty();
    let (at, page) = {
        let store = shared.store();
        let at = match snapshot {
            Snapshot::MostRecent => store.rv(),
            Snapshot::Exact(rv) => rv,
        };
        let filter = |object: &Stored| selectors.matches(object);
        let page = store.list(
            target.index,
            target.namespace.as_deref(),
            at,
            start_after.as_ref(),
            &filter,
            limit,
            count_remaining,
        );
        (at, page)
    };
    let page = match page {
        Ok(page) => page,
        Err(Compacted { .. }) => {
            return Err(match start_after {
                Some(key) => ApiError::continue_expired(encode_continue(-1, &key)),
                None => ApiError::list_expired(),
            });
        }
    };
    let continue_out = page
        .last_key
        .as_ref()
        .map(|key| encode_continue(at as i64, key));
    if output == Output::Table {
        let values: Vec<Value> = page
            .items
            .iter()
            .map(|s| s.to_value(&resource.api_version(), &resource.kind))
            .collect();
        let mut table = table::build(
            &resource,
            &values,
            Some(at),
            continue_out,
            page.remaining,
            include_object(query),
        );
        if values.is_empty() {
            table["rows"] = json!([]);
        }
        return Ok(value_response(200, &table));
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("resourceVersion".into(), json!(at.to_string()));
    if let Some(token) = continue_out {
        metadata.insert("continue".into(), json!(token));
        if let Some(remaining) = page.remaining {
            metadata.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        json!(resource.list_kind()),
        json!(resource.api_version()),
        Value::Object(metadata)
    );
    const STREAM_ABOVE: usize = 2_000;
    if page.items.len() <= STREAM_ABOVE {
        let mut out = head.into_bytes();
        for (i, item) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&item.body);
        }
        out.extend_from_slice(b"]}");
        return Ok(json_response(200, out));
    }
    // Large lists stream in ~1 MiB chunks from a task, so the response starts at once.
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut chunk = head.into_bytes();
        for (i, item) in page.items.iter().enumerate() {
            if i > 0 {
                chunk.push(b',');
            }
            chunk.extend_from_slice(&item.body);
            if chunk.len() >= 1 << 20 {
                let full_chunk = std::mem::take(&mut chunk);
                if sender.send(Ok(Bytes::from(full_chunk))).await.is_err() {
                    return;
                }
            }
        }
        chunk.extend_from_slice(b"]}");
        let _ = sender.send(Ok(Bytes::from(chunk))).await;
    });
    Ok(streaming_response(receiver))
}

// === control endpoints ===

async fn control(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    request: Request<Incoming>,
) -> Response<Body> {
    let body = read_body(request).await.unwrap_or_default();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
        }
    };
    let ok = || {
        value_response(
            200,
            &json!({"ok": true, "resourceVersion": shared.resource_version().to_string()}),
        )
    };
    match (method, path) {
        (&Method::GET, "/fake/requests") => {
            let log = shared.request_log();
            value_response(200, &serde_json::to_value(log).unwrap_or_default())
        }
        (&Method::DELETE, "/fake/requests") => {
            shared.clear_request_log();
            ok()
        }
        (&Method::GET, "/fake/state") => ok(),
        (&Method::POST, "/fake/drop-watches") => {
            shared.drop_watches();
            ok()
        }
        (&Method::POST, "/fake/compact") => {
            shared.compact();
            ok()
        }
        (&Method::POST, "/fake/fail") => match serde_json::from_value::<FaultRule>(body) {
            Ok(rule) => {
                shared.fail_next(rule);
                ok()
            }
            Err(e) => error_response(&ApiError::bad_request(e.to_string())),
        },
        (&Method::POST, "/fake/latency") => {
            let millis = body["millis"].as_u64().unwrap_or(0);
            shared.set_latency(Duration::from_millis(millis));
            ok()
        }
        (&Method::POST, "/fake/crash") => {
            // Down for `downMillis` (default 1000), then serving again on the same address with the same
            // objects and no history. The crash starts once this response has been sent: the body is a
            // channel, and hyper drops its receiver after writing the last frame.
            let down = Duration::from_millis(body["downMillis"].as_u64().unwrap_or(1000));
            let (sender, receiver) = mpsc::channel(1);
            let text =
                json!({"ok": true, "resourceVersion": shared.resource_version().to_string()})
                    .to_string();
            let _ = sender.try_send(Ok(Bytes::from(text)));
            drop(sender);
            let (done, sent) = tokio::sync::oneshot::channel::<()>();
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = sent.await;
                shared.crash();
                shared.forget_history();
                tokio::time::sleep(down).await;
                if let Err(error) = shared.clone().bind(None) {
                    tracing::error!(%error, "restart after simulated crash failed");
                }
            });
            let mut response = Response::new(
                ChannelBody {
                    receiver,
                    _done: Some(done),
                }
                .boxed(),
            );
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        _ => error_response(&ApiError::unknown_path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// URL structure of the API Concepts page: namespaced, cluster-wide, cluster-scoped, subresources,
    /// and unknown resources.
    #[test]
    fn routes() {
        type Expected<'a> = Option<(&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>)>;
        let registry = Registry::builtin();
        let check = |path: &str, expected: Expected<'_>| match (route(&registry, path), expected) {
            (Route::Resource(t), Some((resource, ns, name, sub))) => {
                assert_eq!(registry.get(t.index).resource, resource, "{path}");
                assert_eq!(t.namespace.as_deref(), ns, "{path}");
                assert_eq!(t.name.as_deref(), name, "{path}");
                assert_eq!(t.subresource.as_deref(), sub, "{path}");
            }
            (Route::Unknown, None) => {}
            (_, expected) => panic!("{path}: unexpected route, expected {expected:?}"),
        };
        check("/api/v1/services", Some(("services", None, None, None)));
        check(
            "/api/v1/namespaces/a/services",
            Some(("services", Some("a"), None, None)),
        );
        check(
            "/api/v1/namespaces/a/pods/p/status",
            Some(("pods", Some("a"), Some("p"), Some("status"))),
        );
        check(
            "/api/v1/namespaces/a",
            Some(("namespaces", None, Some("a"), None)),
        );
        check(
            "/api/v1/namespaces/a/status",
            Some(("namespaces", None, Some("a"), Some("status"))),
        );
        check(
            "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/e",
            Some(("endpointslices", Some("a"), Some("e"), None)),
        );
        check(
            "/apis/coordination.k8s.io/v1/leases",
            Some(("leases", None, None, None)),
        );
        check("/api/v1/services/x", None);
        check("/api/v1/widgets", None);
        check("/apis/discovery.k8s.io/v2/endpointslices", None);
    }

    /// Continue tokens round-trip and garbage is a 400.
    #[test]
    fn continue_tokens() {
        let key = ("ns".to_owned(), "name".to_owned());
        let token = encode_continue(42, &key);
        assert_eq!(decode_continue(&token).unwrap(), (42, key));
        assert_eq!(decode_continue("not-a-token").unwrap_err().code, 400);
    }

    /// kubectl's Accept header asks for a Table; plain JSON otherwise; protobuf alone is refused.
    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)).unwrap(), Output::Table);
        assert_eq!(negotiate(Some("application/json")).unwrap(), Output::Json);
        assert_eq!(negotiate(None).unwrap(), Output::Json);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")).unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            406
        );
    }
}
