//! The `kubernetes` plugin's source: Services, EndpointSlices, Namespaces
//! (and Pods for `pods verified`) watched on a Kubernetes API server; record
//! sync adds Ingresses and Nodes.
//!
//! Control plane. One watcher task per resource (kube-runtime's `watcher`:
//! a streaming list (`sendInitialEvents`) first or, where the API server
//! does not serve one, a paginated list, then a watch from the list's
//! resourceVersion with bookmarks, resumed from the last resourceVersion
//! after a dropped connection, a full paged relist after `410 Gone`;
//! exponential backoff with jitter on errors, quick when the server is
//! unreachable and patient when it answers with an error); one task owns the
//! stores and delivers after every batch of events. The same watches serve
//! two consumers, each with its own `Form` of the stored objects:
//!
//! - [`KubernetesChanges`] (the DNS cluster zone) reads each object into its
//!   compact part as it is decoded ([`crate::translate::ServicePart`],
//!   [`crate::translate::SlicePart`], a [`ClusterPod`]) and drops the
//!   Kubernetes object, as CoreDNS's informers keep only their transformed
//!   objects; it delivers everything after the first list, then the objects
//!   that changed as an [`ObjectBatch`] (after a relist, those that differ
//!   from what it held: a relist of a million endpoints with one change
//!   renders one service again, not all).
//! - [`KubernetesSource`] (record sync) keeps whole objects and delivers a
//!   complete [`ClusterObjects`] after every batch of events (coalesced:
//!   everything queued meanwhile goes into the same state).
//!
//! ```text
//! watcher(services) ──┐
//! watcher(slices) ────┼─ Change ─▶ stores (relists swap whole) ─▶ ObjectBatch (parts; Reset after
//! watcher(namespaces)─┤            exposed namespaces only           the first list, else Changes) ─▶ Sink
//! watcher(pods) ──────┤                                          or ClusterObjects (whole) ─▶ Sink
//! watcher(ingresses) ─┤  (record sync)
//! watcher(nodes) ─────┘  (record sync; cluster-scoped)
//! ```
//!
//! Invariants: nothing is delivered before every watched resource has
//! completed its first list (so `/ready` waits for it); a partial or
//! paginated list is never delivered; while the API server is unreachable the
//! last state keeps serving, and each watch logs once when it goes down and
//! once when it comes back. Objects are decoded one by one: one that does not
//! decode is skipped with a log line and a metric, never the rest.

mod client;
mod decode;
mod lease;
mod lists;
mod prefetch;
mod store;
mod verdicts;

pub use client::{ConnectError, connect};
pub mod gates;
pub use lease::{LeaseElector, LeaseTimings};
pub use verdicts::{ConfigMapVerdicts, DATA_KEY, MAX_DATA_BYTES, PUBLISHED_AT, PUBLISHED_BY};

use crate::cluster::{ObjectBatch, ObjectChange, Read};
use crate::metrics::{DiscoveryMetrics, Event as EventKind, Resource};
use crate::objects::ClusterObjects;
use crate::translate::{
    ServicePart, SlicePart, cluster_pods, is_malformed, skipped_service, skipped_slice,
};
use decode::Lenient;
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Resource as _;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use lists::{Fallback, Lists};
use serde::de::DeserializeOwned;
use signpost_model::{BoxFuture, ClusterPod, Sink, Source, SourceProblem};
use signpost_zone::KubernetesApi;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use store::{Key, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Watches a Kubernetes API server and delivers the changed objects the
/// cluster zone needs, read into their compact parts.
pub struct KubernetesChanges {
    spec: KubernetesApi,
    metrics: Arc<DiscoveryMetrics>,
}

/// Watches a Kubernetes API server and delivers every watched object whole
/// (record sync): a complete state after every batch of events.
pub struct KubernetesSource {
    spec: KubernetesApi,
    metrics: Arc<DiscoveryMetrics>,
}

/// How the stores keep each kind, and what they deliver.
trait Form: Sized + Send + 'static {
    type Service: PartialEq + Send + Sync + 'static;
    type Slice: PartialEq + Send + Sync + 'static;
    type Namespace: PartialEq + Send + Sync + 'static;
    type Pod: PartialEq + Send + Sync + 'static;
    type Ingress: PartialEq + Send + Sync + 'static;
    type Node: PartialEq + Send + Sync + 'static;
    type Output: Send + 'static;
    fn service(object: Service) -> Self::Service;
    fn slice(object: EndpointSlice) -> Self::Slice;
    fn namespace(object: Namespace) -> Self::Namespace;
    fn pod(object: Pod) -> Self::Pod;
    fn ingress(object: Ingress) -> Self::Ingress;
    fn node(object: Node) -> Self::Node;
    /// What to deliver after a batch of events; `first`: the first delivery.
    fn deliver(stores: &mut Stores<Self>, spec: &KubernetesApi, first: bool) -> Self::Output;
}

/// Compact parts, for the DNS cluster zone. The DNS path watches no
/// Ingresses or Nodes; were it asked to, it would keep nothing of them.
struct Parts;

/// Whole objects, for record sync.
struct Whole;

/// One watched object, decoded and kept in its form.
enum Object<F: Form> {
    Service(Arc<F::Service>),
    Slice(Arc<F::Slice>),
    Namespace(Arc<F::Namespace>),
    Pod(Arc<F::Pod>),
    Ingress(Arc<F::Ingress>),
    Node(Arc<F::Node>),
}

/// What a watcher task tells the store owner.
enum Change<F: Form> {
    StartRelist(Resource),
    Relisted(Resource, Key, Object<F>),
    FinishRelist(Resource),
    Apply(Resource, Key, Object<F>),
    Delete(Resource, Key),
}

/// The stores of every watched resource.
struct Stores<F: Form> {
    services: Store<F::Service>,
    slices: Store<F::Slice>,
    namespaces: Store<F::Namespace>,
    pods: Store<F::Pod>,
    ingresses: Store<F::Ingress>,
    nodes: Store<F::Node>,
    /// Objects changed since the last delivery, by resource.
    changed: BTreeSet<(Resource, Key)>,
}

// === impl KubernetesChanges ===

impl KubernetesChanges {
    /// A source for `spec`, counting into `metrics`.
    pub fn new(spec: KubernetesApi, metrics: Arc<DiscoveryMetrics>) -> Self {
        Self { spec, metrics }
    }
}

impl Source<ObjectBatch> for KubernetesChanges {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<ObjectBatch>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run::<Parts>(self.spec, self.metrics, sink, cancel))
    }
}

// === impl KubernetesSource ===

impl KubernetesSource {
    /// A source for `spec`, counting into `metrics`.
    pub fn new(spec: KubernetesApi, metrics: Arc<DiscoveryMetrics>) -> Self {
        Self { spec, metrics }
    }
}

impl Source<Arc<ClusterObjects>> for KubernetesSource {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Arc<ClusterObjects>>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run::<Whole>(self.spec, self.metrics, sink, cancel))
    }
}

/// Starts the watches `spec` asks for and delivers in form `F` until cancelled.
async fn run<F: Form>(
    spec: KubernetesApi,
    metrics: Arc<DiscoveryMetrics>,
    sink: Sink<F::Output>,
    cancel: CancellationToken,
) {
    let Some(client) = connect_retrying(&spec, &sink, &cancel).await else {
        return;
    };
    let (sender, mut changes) = mpsc::channel::<Change<F>>(4096);
    let spec = &spec;
    let mut watches = Vec::new();
    let selected = |config: watcher::Config| match &spec.labels {
        Some(labels) => config.labels(labels),
        None => config,
    };
    watches.push(tokio::spawn(watch::<Service, F>(
        client.clone(),
        Resource::Services,
        selected(watcher::Config::default()),
        sender.clone(),
        metrics.clone(),
        cancel.clone(),
    )));
    if spec.endpoints {
        watches.push(tokio::spawn(watch::<EndpointSlice, F>(
            client.clone(),
            Resource::EndpointSlices,
            selected(watcher::Config::default()),
            sender.clone(),
            metrics.clone(),
            cancel.clone(),
        )));
    }
    // CoreDNS watches Namespaces always: a name in a namespace that
    // does not exist (or does not match `namespace_labels`) is NXDOMAIN.
    let namespaces = match &spec.namespace_labels {
        Some(labels) => watcher::Config::default().labels(labels),
        None => watcher::Config::default(),
    };
    watches.push(tokio::spawn(watch::<Namespace, F>(
        client.clone(),
        Resource::Namespaces,
        namespaces,
        sender.clone(),
        metrics.clone(),
        cancel.clone(),
    )));
    if spec.pods {
        let running = watcher::Config::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown");
        watches.push(tokio::spawn(watch::<Pod, F>(
            client.clone(),
            Resource::Pods,
            selected(running),
            sender.clone(),
            metrics.clone(),
            cancel.clone(),
        )));
    }
    if spec.ingresses {
        watches.push(tokio::spawn(watch::<Ingress, F>(
            client.clone(),
            Resource::Ingresses,
            selected(watcher::Config::default()),
            sender.clone(),
            metrics.clone(),
            cancel.clone(),
        )));
    }
    if spec.nodes {
        // Every node: the label selector is for namespaced objects.
        watches.push(tokio::spawn(watch::<Node, F>(
            client,
            Resource::Nodes,
            watcher::Config::default(),
            sender.clone(),
            metrics.clone(),
            cancel.clone(),
        )));
    }
    drop(sender);
    let mut stores = Stores::<F> {
        services: Store::new(),
        slices: Store::new(),
        namespaces: Store::new(),
        pods: Store::new(),
        ingresses: Store::new(),
        nodes: Store::new(),
        changed: BTreeSet::new(),
    };
    let mut announced = false;
    let mut delivered = false;
    loop {
        let change = tokio::select! {
            () = cancel.cancelled() => break,
            change = changes.recv() => change,
        };
        let Some(change) = change else { break };
        stores.apply(change, &metrics);
        // Everything that arrived meanwhile goes into the same state.
        while let Ok(change) = changes.try_recv() {
            stores.apply(change, &metrics);
        }
        if !stores.ready(spec) {
            continue;
        }
        if !announced {
            announced = true;
            tracing::info!(
                services = stores.services.len(),
                endpoint_slices = stores.slices.len(),
                namespaces = stores.namespaces.len(),
                pods = stores.pods.len(),
                ingresses = stores.ingresses.len(),
                nodes = stores.nodes.len(),
                "kubernetes: initial lists complete"
            );
        }
        let first = announced_first(&mut delivered);
        sink.state(F::deliver(&mut stores, spec, first));
    }
    for watch in watches {
        watch.abort();
    }
}

/// Builds the client, retrying with backoff; `None` when cancelled first.
async fn connect_retrying<T>(
    spec: &KubernetesApi,
    sink: &Sink<T>,
    cancel: &CancellationToken,
) -> Option<kube::Client> {
    let mut delay = Duration::from_millis(500);
    let mut last: Option<String> = None;
    loop {
        match connect(&spec.connection).await {
            Ok(client) => return Some(client),
            Err(error) => {
                let message = error.to_string();
                if last.as_ref() != Some(&message) {
                    tracing::error!(error = %message, retry_in = ?delay, "kubernetes: cannot build a client");
                    sink.problems(vec![SourceProblem {
                        file: "kubernetes".to_owned(),
                        line: None,
                        message: message.clone(),
                    }]);
                    last = Some(message);
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

// === impl Parts ===

impl Form for Parts {
    type Service = Read<ServicePart>;
    type Slice = Read<SlicePart>;
    type Namespace = ();
    /// `None`: a pod that is not running (or has no address yet).
    type Pod = Option<ClusterPod>;
    type Ingress = ();
    type Node = ();
    type Output = ObjectBatch;

    fn service(object: Service) -> Self::Service {
        let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let part =
            (!is_malformed(&object)).then(|| Arc::new(ServicePart::new(namespace, name, &object)));
        Read {
            part,
            skipped: skipped_service(&object).into_iter().collect(),
        }
    }

    fn slice(object: EndpointSlice) -> Self::Slice {
        Read {
            part: Some(Arc::new(SlicePart::new(&object))),
            skipped: skipped_slice(&object),
        }
    }

    fn namespace(_: Namespace) -> Self::Namespace {}

    fn pod(object: Pod) -> Self::Pod {
        cluster_pods(std::iter::once(&object)).pop()
    }

    fn ingress(_: Ingress) -> Self::Ingress {}

    fn node(_: Node) -> Self::Node {}

    fn deliver(stores: &mut Stores<Self>, spec: &KubernetesApi, first: bool) -> ObjectBatch {
        stores.batch(spec, first)
    }
}

// === impl Whole ===

impl Form for Whole {
    type Service = Service;
    type Slice = EndpointSlice;
    type Namespace = Namespace;
    type Pod = Pod;
    type Ingress = Ingress;
    type Node = Node;
    type Output = Arc<ClusterObjects>;

    fn service(object: Service) -> Self::Service {
        object
    }

    fn slice(object: EndpointSlice) -> Self::Slice {
        object
    }

    fn namespace(object: Namespace) -> Self::Namespace {
        object
    }

    fn pod(object: Pod) -> Self::Pod {
        object
    }

    fn ingress(object: Ingress) -> Self::Ingress {
        object
    }

    fn node(object: Node) -> Self::Node {
        object
    }

    fn deliver(stores: &mut Stores<Self>, spec: &KubernetesApi, _: bool) -> Arc<ClusterObjects> {
        stores.changed.clear();
        Arc::new(stores.objects(spec))
    }
}

// === impl Stores ===

impl<F: Form> Stores<F> {
    fn apply(&mut self, change: Change<F>, metrics: &DiscoveryMetrics) {
        let resource = match &change {
            Change::StartRelist(r)
            | Change::Relisted(r, ..)
            | Change::FinishRelist(r)
            | Change::Apply(r, ..)
            | Change::Delete(r, _) => *r,
        };
        match change {
            Change::StartRelist(resource) => match resource {
                Resource::Services => self.services.start_relist(),
                Resource::EndpointSlices => self.slices.start_relist(),
                Resource::Namespaces => self.namespaces.start_relist(),
                Resource::Pods => self.pods.start_relist(),
                Resource::Ingresses => self.ingresses.start_relist(),
                Resource::Nodes => self.nodes.start_relist(),
            },
            Change::Relisted(_, key, object) => match object {
                Object::Service(o) => self.services.relisted(key, o),
                Object::Slice(o) => self.slices.relisted(key, o),
                Object::Namespace(o) => self.namespaces.relisted(key, o),
                Object::Pod(o) => self.pods.relisted(key, o),
                Object::Ingress(o) => self.ingresses.relisted(key, o),
                Object::Node(o) => self.nodes.relisted(key, o),
            },
            Change::FinishRelist(resource) => {
                metrics.event(resource, EventKind::Relist);
                // A relist after the first (a watch that expired with
                // `410 Gone`) hands on only what differs from the live
                // objects: at a million endpoints a full state would
                // join and render everything again.
                let changed = match resource {
                    Resource::Services => self.services.finish_relist(),
                    Resource::EndpointSlices => self.slices.finish_relist(),
                    Resource::Namespaces => self.namespaces.finish_relist(),
                    Resource::Pods => self.pods.finish_relist(),
                    Resource::Ingresses => self.ingresses.finish_relist(),
                    Resource::Nodes => self.nodes.finish_relist(),
                };
                self.changed
                    .extend(changed.into_iter().map(|key| (resource, key)));
            }
            Change::Apply(resource, key, object) => {
                metrics.event(resource, EventKind::Apply);
                self.changed.insert((resource, key.clone()));
                match object {
                    Object::Service(o) => self.services.apply(key, o),
                    Object::Slice(o) => self.slices.apply(key, o),
                    Object::Namespace(o) => self.namespaces.apply(key, o),
                    Object::Pod(o) => self.pods.apply(key, o),
                    Object::Ingress(o) => self.ingresses.apply(key, o),
                    Object::Node(o) => self.nodes.apply(key, o),
                }
            }
            Change::Delete(resource, key) => {
                metrics.event(resource, EventKind::Delete);
                self.changed.insert((resource, key.clone()));
                match resource {
                    Resource::Services => self.services.delete(&key),
                    Resource::EndpointSlices => self.slices.delete(&key),
                    Resource::Namespaces => self.namespaces.delete(&key),
                    Resource::Pods => self.pods.delete(&key),
                    Resource::Ingresses => self.ingresses.delete(&key),
                    Resource::Nodes => self.nodes.delete(&key),
                }
            }
        }
        let count = match resource {
            Resource::Services => self.services.len(),
            Resource::EndpointSlices => self.slices.len(),
            Resource::Namespaces => self.namespaces.len(),
            Resource::Pods => self.pods.len(),
            Resource::Ingresses => self.ingresses.len(),
            Resource::Nodes => self.nodes.len(),
        };
        metrics.set_objects(resource, count);
    }

    /// Every watched resource has completed its first list.
    fn ready(&self, spec: &KubernetesApi) -> bool {
        self.services.ready
            && (!spec.endpoints || self.slices.ready)
            && self.namespaces.ready
            && (!spec.pods || self.pods.ready)
            && (!spec.ingresses || self.ingresses.ready)
            && (!spec.nodes || self.nodes.ready)
    }

    /// Whether `namespace` is exposed: listed in `namespaces` (when set) and
    /// present (matching `namespace_labels`, when set).
    fn exposer<'a>(&'a self, spec: &'a KubernetesApi) -> impl Fn(&str) -> bool + 'a {
        let present: HashSet<&str> = self
            .namespaces
            .objects()
            .map(|(key, _)| key.1.as_str())
            .collect();
        move |namespace: &str| {
            present.contains(namespace)
                && (spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n == namespace))
        }
    }
}

impl Stores<Whole> {
    /// The objects of exposed namespaces (Nodes and Namespaces all).
    fn objects(&self, spec: &KubernetesApi) -> ClusterObjects {
        fn of<T>(store: &Store<T>, exposed: &dyn Fn(&str) -> bool) -> Vec<Arc<T>> {
            store
                .objects()
                .filter(|(key, _)| exposed(&key.0))
                .map(|(_, o)| o.clone())
                .collect()
        }
        let exposed = self.exposer(spec);
        ClusterObjects {
            services: of(&self.services, &exposed),
            endpoint_slices: of(&self.slices, &exposed),
            pods: of(&self.pods, &exposed),
            ingresses: of(&self.ingresses, &exposed),
            nodes: self.nodes.objects().map(|(_, o)| o.clone()).collect(),
            namespaces: self.namespaces.objects().map(|(_, o)| o.clone()).collect(),
        }
    }
}

impl Stores<Parts> {
    /// What changed since the last delivery, of exposed namespaces only
    /// (listed in `namespaces` when set, and present, matching
    /// `namespace_labels` when set): everything after a list or at first.
    fn batch(&mut self, spec: &KubernetesApi, first: bool) -> ObjectBatch {
        let changed = std::mem::take(&mut self.changed);
        let exposed = self.exposer(spec);
        if first {
            let mut all = Vec::new();
            for (key, read) in self.services.objects() {
                if exposed(&key.0) {
                    all.push(ObjectChange::Service(key.clone(), Some((**read).clone())));
                }
            }
            for (key, read) in self.slices.objects() {
                if exposed(&key.0) {
                    all.push(ObjectChange::Slice(key.clone(), Some((**read).clone())));
                }
            }
            for (key, pod) in self.pods.objects() {
                if exposed(&key.0)
                    && let Some(pod) = &**pod
                {
                    all.push(ObjectChange::Pod(key.clone(), Some(pod.clone())));
                }
            }
            return ObjectBatch::Reset(all);
        }
        let mut changes = Vec::new();
        let service = |store: &Store<Read<ServicePart>>, key: &Key| {
            ObjectChange::Service(
                key.clone(),
                store
                    .get(key)
                    .filter(|_| exposed(&key.0))
                    .map(|r| (**r).clone()),
            )
        };
        let slice = |store: &Store<Read<SlicePart>>, key: &Key| {
            ObjectChange::Slice(
                key.clone(),
                store
                    .get(key)
                    .filter(|_| exposed(&key.0))
                    .map(|r| (**r).clone()),
            )
        };
        let pod = |store: &Store<Option<ClusterPod>>, key: &Key| {
            ObjectChange::Pod(
                key.clone(),
                store
                    .get(key)
                    .filter(|_| exposed(&key.0))
                    .and_then(|p| (**p).clone()),
            )
        };
        for (resource, key) in &changed {
            match resource {
                Resource::Services => changes.push(service(&self.services, key)),
                Resource::EndpointSlices => changes.push(slice(&self.slices, key)),
                Resource::Pods => changes.push(pod(&self.pods, key)),
                // A namespace that came or went shows or hides all of its objects.
                Resource::Namespaces => {
                    let namespace = key.1.as_str();
                    for (key, _) in self.services.objects().filter(|(k, _)| k.0 == namespace) {
                        changes.push(service(&self.services, key));
                    }
                    for (key, _) in self.slices.objects().filter(|(k, _)| k.0 == namespace) {
                        changes.push(slice(&self.slices, key));
                    }
                    for (key, _) in self.pods.objects().filter(|(k, _)| k.0 == namespace) {
                        changes.push(pod(&self.pods, key));
                    }
                }
                // Not part of the cluster zone.
                Resource::Ingresses | Resource::Nodes => {}
            }
        }
        ObjectBatch::Changes(changes)
    }
}

/// True the first time: the first delivery is everything.
fn announced_first(delivered: &mut bool) -> bool {
    !std::mem::replace(delivered, true)
}

/// A kind the source watches: how it decodes and how it is stored.
trait Watched:
    kube::Resource<DynamicType = ()>
    + DeserializeOwned
    + Clone
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    fn wrap<F: Form>(self) -> Object<F>;
}

impl Watched for Service {
    fn wrap<F: Form>(self) -> Object<F> {
        Object::Service(Arc::new(F::service(self)))
    }
}

impl Watched for EndpointSlice {
    fn wrap<F: Form>(self) -> Object<F> {
        Object::Slice(Arc::new(F::slice(self)))
    }
}

impl Watched for Namespace {
    fn wrap<F: Form>(self) -> Object<F> {
        Object::Namespace(Arc::new(F::namespace(self)))
    }
}

impl Watched for Pod {
    fn wrap<F: Form>(self) -> Object<F> {
        Object::Pod(Arc::new(F::pod(self)))
    }
}

impl Watched for Ingress {
    fn wrap<F: Form>(self) -> Object<F> {
        Object::Ingress(Arc::new(F::ingress(self)))
    }
}

impl Watched for Node {
    fn wrap<F: Form>(self) -> Object<F> {
        Object::Node(Arc::new(F::node(self)))
    }
}

/// Watches one resource until cancelled, turning watcher events into
/// [`Change`]s. Each object is decoded on its own ([`Lenient`]), so one
/// object that does not decode does not stop the list.
async fn watch<K: Watched, F: Form>(
    client: kube::Client,
    resource: Resource,
    config: watcher::Config,
    changes: mpsc::Sender<Change<F>>,
    metrics: Arc<DiscoveryMetrics>,
    cancel: CancellationToken,
) {
    let api: Api<Lenient<K>> = Api::all(client.clone());
    // The first list streams, later ones page (the `lists` module). Every
    // new stream starts with a list of its own, never the rest of a cut one.
    let mut lists = Lists::new(config);
    let start = |lists: &mut Lists| {
        lists.restart();
        watcher::watcher(api.clone(), lists.config()).boxed()
    };
    let mut stream = start(&mut lists);
    let mut delays = RetryDelays::new();
    // Relists after lost events: a list that succeeds does not reset these,
    // only an event of the watch after it, so a proxy that garbles every
    // line is relisted ever more slowly (up to 30 s), not in a loop.
    let mut lost_delays = RetryDelays::new();
    let name = crate::metrics::RESOURCES[resource as usize];
    let mut up: Option<bool> = None;
    let mut undecodable: HashSet<Key> = HashSet::new();
    // While down, the API server is asked for its version every second: a
    // resumed watch yields nothing until something changes, so this is how a
    // recovery shows (in the log, and in `signpost_kubernetes_watch_up`).
    let mut probe = tokio::time::interval(Duration::from_secs(1));
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => return,
            item = stream.next() => item,
            _ = probe.tick(), if up == Some(false) => {
                if client.apiserver_version().await.is_ok() {
                    tracing::info!(resource = name, "kubernetes: watch resumed");
                    up = Some(true);
                    metrics.set_up(resource, true);
                }
                continue;
            }
        };
        let Some(item) = item else { return };
        // The watch stops streaming its lists: a refusal, repeated failures
        // or a stream cut short. Not an outage: list again, in pages, now.
        let fallback = match &item {
            Ok(Event::Init) => lists.init(),
            Ok(_) => None,
            Err(error) => lists.failed(error),
        };
        if let Some(why) = fallback {
            if why == Fallback::Failing {
                metrics.watch_error(resource);
            }
            match (why, &item) {
                (Fallback::Refused, Err(error)) => {
                    tracing::info!(resource = name, %error, "{}", why.message());
                }
                (_, Err(error)) => tracing::warn!(resource = name, %error, "{}", why.message()),
                (_, Ok(_)) => tracing::warn!(resource = name, "{}", why.message()),
            }
            stream = start(&mut lists);
            continue;
        }
        let event = match item {
            // `Init` says nothing about the API server: in a paged list it
            // comes before the first request.
            Ok(event) if matches!(event, Event::Init) => event,
            Ok(event) => {
                if matches!(event, Event::InitDone) {
                    lists.init_done();
                }
                if matches!(event, Event::Apply(_) | Event::Delete(_)) {
                    lost_delays.reset();
                }
                delays.reset();
                if up != Some(true) {
                    if up == Some(false) {
                        tracing::info!(resource = name, "kubernetes: watch resumed");
                    }
                    up = Some(true);
                    metrics.set_up(resource, true);
                }
                event
            }
            // 410 Gone: the resourceVersion expired, which is routine. List
            // again, in pages once the first list is done (kube-rs by itself
            // would stream again, from whatever state the cache holds).
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::info!(resource = name, reason = %status.message, "kubernetes: watch expired (410 Gone); relisting");
                stream = start(&mut lists);
                continue;
            }
            // A watch event that does not decode as a whole (not one object of
            // it: those are `Lenient::Undecodable`) is lost to the watcher,
            // which reads on. kube-rs reports such a line as a `SerdeError`,
            // or, when it parses as a `Status` (any JSON object does: every
            // field of one is optional), as an API error from the stream;
            // the API server's own errors come as `ERROR` events instead
            // (`WatchError`, above). List again, after a backoff of its own
            // (`lost_delays`), so the state catches up; the store hands on
            // only what differs.
            Err(
                error @ watcher::Error::WatchFailed(
                    kube::Error::SerdeError(_) | kube::Error::Api(_),
                ),
            ) => {
                metrics.watch_error(resource);
                let delay = lost_delays.after(&error);
                tracing::warn!(resource = name, %error, relist_in = ?delay, "kubernetes: a watch event does not decode; listing again");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                stream = start(&mut lists);
                continue;
            }
            Err(error) => {
                metrics.watch_error(resource);
                let delay = delays.after(&error);
                if up != Some(false) {
                    tracing::warn!(resource = name, %error, retry_in = ?delay, "kubernetes: watch failed; retrying with backoff, the last state keeps serving");
                    up = Some(false);
                    metrics.set_up(resource, false);
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                // An object without a resourceVersion sends kube-rs back to
                // its first list, with the configuration it started with:
                // list again here instead, so that list pages once the first
                // is done.
                if matches!(error, watcher::Error::NoResourceVersion) {
                    stream = start(&mut lists);
                }
                continue;
            }
        };
        let mut decode = |object: Lenient<K>| -> (Key, Option<Object<F>>) {
            let meta = object.meta();
            let key = (
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            );
            match object {
                Lenient::Decoded(typed) => {
                    undecodable.remove(&key);
                    (key, Some(typed.wrap::<F>()))
                }
                Lenient::Undecodable { error, .. } => {
                    if undecodable.insert(key.clone()) {
                        metrics.skipped("undecodable");
                        tracing::warn!(resource = name, namespace = %key.0, name = %key.1, %error, "kubernetes: object skipped: it does not decode");
                    }
                    (key, None)
                }
            }
        };
        let change = match event {
            Event::Init => Change::StartRelist(resource),
            Event::InitApply(object) => match decode(object) {
                (key, Some(object)) => Change::Relisted(resource, key, object),
                (_, None) => continue,
            },
            Event::InitDone => Change::FinishRelist(resource),
            Event::Apply(object) => match decode(object) {
                (key, Some(object)) => Change::Apply(resource, key, object),
                // A version that does not decode replaces none: the object leaves answers.
                (key, None) => Change::Delete(resource, key),
            },
            Event::Delete(object) => {
                let (key, _) = decode(object);
                undecodable.remove(&key);
                Change::Delete(resource, key)
            }
        };
        if changes.send(change).await.is_err() {
            return;
        }
    }
}

/// How long a failed watch waits before it retries. A connection that could
/// not be made (the API server restarting, its address not answering) costs
/// the server nothing: retried from 100 ms, doubling, up to 1 s, so answers
/// are current again within about a second of its return. An API server that
/// answers with an error (overloaded: 429, 5xx; or forbidding) is given room:
/// from 800 ms, doubling, up to 30 s, client-go's reflector schedule. Each
/// delay is drawn between half and all of its value (jitter, so replicas do
/// not retry in step); both schedules start over after a success.
struct RetryDelays {
    unreachable: Duration,
    answered: Duration,
    state: u64,
}

impl RetryDelays {
    const UNREACHABLE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));
    const ANSWERED: (Duration, Duration) = (Duration::from_millis(800), Duration::from_secs(30));

    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() as u64 | 1);
        Self {
            unreachable: Self::UNREACHABLE.0,
            answered: Self::ANSWERED.0,
            state: seed,
        }
    }

    fn reset(&mut self) {
        self.unreachable = Self::UNREACHABLE.0;
        self.answered = Self::ANSWERED.0;
    }

    /// The delay before retrying after `error`.
    fn after(&mut self, error: &watcher::Error) -> Duration {
        let client_error = match error {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => Some(e),
            watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => None,
        };
        let answered = !matches!(
            client_error,
            Some(kube::Error::HyperError(_) | kube::Error::Service(_))
        );
        let (slot, longest) = if answered {
            (&mut self.answered, Self::ANSWERED.1)
        } else {
            (&mut self.unreachable, Self::UNREACHABLE.1)
        };
        let full = *slot;
        *slot = (*slot * 2).min(longest);
        // xorshift64: jitter needs no more than this.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        full.mul_f64(0.5 + (self.state % 1000) as f64 / 2000.0)
    }
}
