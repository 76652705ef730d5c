//! The `kubernetes` plugin's source: Services, EndpointSlices, Namespaces
//! (and Pods for `pods verified`) watched on a Kubernetes API server.
//!
//! Control plane. One watcher task per resource (kube-runtime's `watcher`:
//! paginated list, then a watch from the list's resourceVersion with
//! bookmarks, resumed from the last resourceVersion after a dropped
//! connection, a full relist after `410 Gone`; exponential backoff with
//! jitter on errors, quick when the server is unreachable and patient when it
//! answers with an error); one task owns the stores and, after every batch of
//! events, delivers the objects that changed (all of them after a list).
//! Each object is read into its compact part as it is decoded
//! ([`crate::translate::ServicePart`], [`crate::translate::SlicePart`], a
//! [`ClusterPod`]) and the Kubernetes object is dropped, as CoreDNS's
//! informers keep only their transformed objects.
//!
//! ```text
//! watcher(services) ──┐
//! watcher(slices) ────┼─ Change (parts) ─▶ stores (relists swap whole) ─▶ ObjectBatch ─▶ Sink
//! watcher(namespaces)─┤                    exposed namespaces only        (Reset after a list,
//! watcher(pods) ──────┘                                                    else Changes)
//! ```
//!
//! Invariants: nothing is delivered before every watched resource has
//! completed its first list (so `/ready` waits for it); a partial or
//! paginated list is never delivered; while the API server is unreachable the
//! last state keeps serving, and each watch logs once when it goes down and
//! once when it comes back. Objects are decoded one by one: one that does not
//! decode is skipped with a log line and a metric, never the rest.

mod client;
mod store;

pub use client::{ConnectError, connect};

use crate::cluster::{ObjectBatch, ObjectChange, Read};
use crate::metrics::{DiscoveryMetrics, Event as EventKind, Resource};
use crate::translate::{
    ServicePart, SlicePart, cluster_pods, is_malformed, skipped_service, skipped_slice,
};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use signpost_model::{BoxFuture, ClusterPod, Sink, Source, SourceProblem};
use signpost_zone::KubernetesApi;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use store::{Key, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Watches a Kubernetes API server and delivers every object the cluster zone needs.
pub struct KubernetesSource {
    spec: KubernetesApi,
    metrics: Arc<DiscoveryMetrics>,
}

/// One watched object, decoded and read into its part.
#[derive(Debug, Clone)]
enum Object {
    Service(Arc<Read<ServicePart>>),
    Slice(Arc<Read<SlicePart>>),
    Namespace(Arc<()>),
    /// `None`: a pod that is not running (or has no address yet).
    Pod(Arc<Option<ClusterPod>>),
}

/// What a watcher task tells the store owner.
#[derive(Debug)]
enum Change {
    StartRelist(Resource),
    Relisted(Resource, Key, Object),
    FinishRelist(Resource),
    Apply(Resource, Key, Object),
    Delete(Resource, Key),
}

/// The stores of every watched resource.
struct Stores {
    services: Store<Read<ServicePart>>,
    slices: Store<Read<SlicePart>>,
    namespaces: Store<()>,
    pods: Store<Option<ClusterPod>>,
    /// Objects changed since the last delivery, by resource.
    changed: BTreeSet<(Resource, Key)>,
    /// A list completed since the last delivery: deliver everything.
    relisted: bool,
}

// === impl KubernetesSource ===

impl KubernetesSource {
    /// A source for `spec`, counting into `metrics`.
    pub fn new(spec: KubernetesApi, metrics: Arc<DiscoveryMetrics>) -> Self {
        Self { spec, metrics }
    }
}

impl Source<ObjectBatch> for KubernetesSource {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<ObjectBatch>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Some(client) = self.connect(&sink, &cancel).await else {
                return;
            };
            let (sender, mut changes) = mpsc::channel::<Change>(4096);
            let spec = &self.spec;
            let mut watches = Vec::new();
            let selected = |config: watcher::Config| match &spec.labels {
                Some(labels) => config.labels(labels),
                None => config,
            };
            watches.push(tokio::spawn(watch::<Service>(
                client.clone(),
                Resource::Services,
                selected(watcher::Config::default()),
                sender.clone(),
                self.metrics.clone(),
                cancel.clone(),
            )));
            if spec.endpoints {
                watches.push(tokio::spawn(watch::<EndpointSlice>(
                    client.clone(),
                    Resource::EndpointSlices,
                    selected(watcher::Config::default()),
                    sender.clone(),
                    self.metrics.clone(),
                    cancel.clone(),
                )));
            }
            // CoreDNS watches Namespaces always: a name in a namespace that
            // does not exist (or does not match `namespace_labels`) is NXDOMAIN.
            let namespaces = match &spec.namespace_labels {
                Some(labels) => watcher::Config::default().labels(labels),
                None => watcher::Config::default(),
            };
            watches.push(tokio::spawn(watch::<Namespace>(
                client.clone(),
                Resource::Namespaces,
                namespaces,
                sender.clone(),
                self.metrics.clone(),
                cancel.clone(),
            )));
            if spec.pods {
                let running = watcher::Config::default()
                    .fields("status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown");
                watches.push(tokio::spawn(watch::<Pod>(
                    client,
                    Resource::Pods,
                    selected(running),
                    sender.clone(),
                    self.metrics.clone(),
                    cancel.clone(),
                )));
            }
            drop(sender);
            let mut stores = Stores {
                services: Store::new(),
                slices: Store::new(),
                namespaces: Store::new(),
                pods: Store::new(),
                changed: BTreeSet::new(),
                relisted: false,
            };
            let mut announced = false;
            let mut delivered = false;
            loop {
                let change = tokio::select! {
                    () = cancel.cancelled() => break,
                    change = changes.recv() => change,
                };
                let Some(change) = change else { break };
                stores.apply(change, &self.metrics);
                // Everything that arrived meanwhile goes into the same state.
                while let Ok(change) = changes.try_recv() {
                    stores.apply(change, &self.metrics);
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
                        "kubernetes: initial lists complete"
                    );
                }
                sink.state(stores.batch(spec, announced_first(&mut delivered)));
            }
            for watch in watches {
                watch.abort();
            }
        })
    }
}

impl KubernetesSource {
    /// Builds the client, retrying with backoff; `None` when cancelled first.
    async fn connect(
        &self,
        sink: &Sink<ObjectBatch>,
        cancel: &CancellationToken,
    ) -> Option<kube::Client> {
        let mut delay = Duration::from_millis(500);
        let mut last: Option<String> = None;
        loop {
            match connect(&self.spec.connection).await {
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
}

// === impl Stores ===

impl Stores {
    fn apply(&mut self, change: Change, metrics: &DiscoveryMetrics) {
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
            },
            Change::Relisted(_, key, object) => match object {
                Object::Service(o) => self.services.relisted(key, o),
                Object::Slice(o) => self.slices.relisted(key, o),
                Object::Namespace(o) => self.namespaces.relisted(key, o),
                Object::Pod(o) => self.pods.relisted(key, o),
            },
            Change::FinishRelist(resource) => {
                self.relisted = true;
                metrics.event(resource, EventKind::Relist);
                match resource {
                    Resource::Services => self.services.finish_relist(),
                    Resource::EndpointSlices => self.slices.finish_relist(),
                    Resource::Namespaces => self.namespaces.finish_relist(),
                    Resource::Pods => self.pods.finish_relist(),
                }
            }
            Change::Apply(resource, key, object) => {
                metrics.event(resource, EventKind::Apply);
                self.changed.insert((resource, key.clone()));
                match object {
                    Object::Service(o) => self.services.apply(key, o),
                    Object::Slice(o) => self.slices.apply(key, o),
                    Object::Namespace(o) => self.namespaces.apply(key, o),
                    Object::Pod(o) => self.pods.apply(key, o),
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
                }
            }
        }
        let count = match resource {
            Resource::Services => self.services.len(),
            Resource::EndpointSlices => self.slices.len(),
            Resource::Namespaces => self.namespaces.len(),
            Resource::Pods => self.pods.len(),
        };
        metrics.set_objects(resource, count);
    }

    /// Every watched resource has completed its first list.
    fn ready(&self, spec: &KubernetesApi) -> bool {
        self.services.ready
            && (!spec.endpoints || self.slices.ready)
            && self.namespaces.ready
            && (!spec.pods || self.pods.ready)
    }

    /// What changed since the last delivery, of exposed namespaces only
    /// (listed in `namespaces` when set, and present, matching
    /// `namespace_labels` when set): everything after a list or at first.
    fn batch(&mut self, spec: &KubernetesApi, first: bool) -> ObjectBatch {
        let present: HashSet<&str> = self
            .namespaces
            .objects()
            .map(|(key, _)| key.1.as_str())
            .collect();
        let exposed = |namespace: &str| {
            present.contains(namespace)
                && (spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n == namespace))
        };
        let changed = std::mem::take(&mut self.changed);
        if first || std::mem::take(&mut self.relisted) {
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
trait Watched: kube::Resource<DynamicType = ()> + DeserializeOwned + Send + Sync + 'static {
    fn wrap(self) -> Object;
}

impl Watched for Service {
    fn wrap(self) -> Object {
        let namespace = self.metadata.namespace.as_deref().unwrap_or("default");
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let part =
            (!is_malformed(&self)).then(|| Arc::new(ServicePart::new(namespace, name, &self)));
        Object::Service(Arc::new(Read {
            part,
            skipped: skipped_service(&self).into_iter().collect(),
        }))
    }
}

impl Watched for EndpointSlice {
    fn wrap(self) -> Object {
        Object::Slice(Arc::new(Read {
            part: Some(Arc::new(SlicePart::new(&self))),
            skipped: skipped_slice(&self),
        }))
    }
}

impl Watched for Namespace {
    fn wrap(self) -> Object {
        Object::Namespace(Arc::new(()))
    }
}

impl Watched for Pod {
    fn wrap(self) -> Object {
        Object::Pod(Arc::new(cluster_pods(std::iter::once(&self)).pop()))
    }
}

/// Watches one resource until cancelled, turning watcher events into
/// [`Change`]s. Objects arrive untyped and are decoded one by one, so one
/// object that does not decode does not stop the list.
async fn watch<K: Watched>(
    client: kube::Client,
    resource: Resource,
    config: watcher::Config,
    changes: mpsc::Sender<Change>,
    metrics: Arc<DiscoveryMetrics>,
    cancel: CancellationToken,
) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    let mut stream = watcher::watcher(api, config).boxed();
    let mut delays = RetryDelays::new();
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
        let event = match item {
            // `Init` comes before the list request; only what follows proves the API answers.
            Ok(event) if matches!(event, Event::Init) => event,
            Ok(event) => {
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
            // 410 Gone: the resourceVersion expired; the watcher relists, which is routine.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::info!(resource = name, reason = %status.message, "kubernetes: watch expired (410 Gone); relisting");
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
                continue;
            }
        };
        let mut decode = |object: DynamicObject| -> (Key, Option<Object>) {
            let key = (
                object.metadata.namespace.clone().unwrap_or_default(),
                object.metadata.name.clone().unwrap_or_default(),
            );
            match serde_json::to_value(&object).and_then(serde_json::from_value::<K>) {
                Ok(typed) => {
                    undecodable.remove(&key);
                    (key, Some(typed.wrap()))
                }
                Err(error) => {
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
