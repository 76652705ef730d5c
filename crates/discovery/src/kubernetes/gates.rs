//! Pod readiness gates set by `signpost health`: the Pods that declare
//! `spec.readinessGates: [{conditionType: dns.aikernel.io/healthy}]` get that
//! condition in their status from the published health verdicts, so the
//! kubelet reports a failing Pod not ready and the EndpointSlice controller
//! takes its endpoint out of the Service's routing (kube-proxy, meshes),
//! not only out of DNS answers.
//!
//! Control plane.
//!
//! ```text
//! Pods (watch, every replica) ──▶ GatedPods: gated Pods and their condition ──┐
//! the role: gated Pod ──▶ its checked endpoints (from the EndpointSlices) ─────┤
//! published verdicts (the follower, every replica) ────────────────────────────┤
//! leadership ──────────────────────────────────────────────────────────────────┴─▶ GatePatcher (leader only)
//!                                        token bucket (--pod-status-qps / burst) ─▶ PATCH pods/NAME/status
//! ```
//!
//! Invariants:
//! - the desired status of a gated Pod is a pure function of the published
//!   verdicts: `False` when any checked endpoint of the Pod is published
//!   unhealthy, else `True`. Every replica computes the same, so a new leader
//!   writes only what the published set says; it never flips a condition a
//!   verdict did not change (a takeover starts from the published verdicts);
//! - only the leader writes, only while the published verdicts are readable,
//!   and only Pods whose spec declares the gate and that are behind at least
//!   one checked endpoint; a Pod whose condition already has the desired
//!   status is not written (so `lastTransitionTime` moves only with the
//!   status, and the message keeps the error of the change);
//! - writes are strategic merge patches of `pods/status` holding the one
//!   condition (the API server merges conditions by `type`, so the kubelet's
//!   conditions are untouched); nothing else is written;
//! - writes are rate-limited by a token bucket and at most
//!   [`IN_FLIGHT`] run at once; a write that fails is retried after
//!   [`RETRY_AFTER`], one log line per failing streak.
//! - the Pod watch never reads on past a lost event: a stream line that is
//!   no watch event lists all Pods again after [`RETRY_AFTER`], doubling up
//!   to 30 s while lines keep being lost.
//! - each Pod is decoded on its own: one that does not decode is left out with
//!   a warning, and the other Pods' gates are kept.

use super::client::connect;
use super::decode::Lenient;
use crate::verdicts::Observed;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use signpost_model::metrics::{Exposition, Kind};
use signpost_model::{BoxFuture, EndpointKey};
use signpost_zone::KubeConnection;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The readiness-gate condition type signpost owns.
pub const CONDITION: &str = "dns.aikernel.io/healthy";

/// Reason of a `True` condition.
pub const REASON_PASSED: &str = "HealthCheckPassed";

/// Reason of a `False` condition.
pub const REASON_FAILED: &str = "HealthCheckFailed";

/// Patches in flight at once.
pub const IN_FLIGHT: usize = 16;

/// How long a failed patch waits before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The longest wait before the Pod watch lists again after lost events
/// (from [`RETRY_AFTER`], doubling while events keep being lost).
const LONGEST_RELIST_DELAY: Duration = Duration::from_secs(30);

/// How long one patch may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A Pod: (namespace, name).
pub type PodKey = (String, String);

/// Each gated Pod's checked endpoints.
pub type PodEndpoints = BTreeMap<PodKey, Vec<EndpointKey>>;

/// What the Pod watch knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatedPods {
    /// Pods whose spec declares the gate, with the condition's status:
    /// `Some(true)` True, `Some(false)` False, `None` absent or Unknown.
    pub pods: BTreeMap<PodKey, Option<bool>>,
    /// False when Pods cannot be listed (RBAC denies it): then no Pod is
    /// known to be gated and nothing is patched.
    pub readable: bool,
}

/// The desired status of each gated Pod behind a checked endpoint, and the
/// Pod's endpoints that are published unhealthy (empty for `True`).
pub fn desired<'a>(
    pods: &'a GatedPods,
    endpoints: &'a PodEndpoints,
    unhealthy: &'a HashSet<EndpointKey>,
) -> impl Iterator<Item = (&'a PodKey, bool, Vec<EndpointKey>)> + 'a {
    pods.pods.keys().filter_map(move |pod| {
        let keys = endpoints.get(pod).filter(|k| !k.is_empty())?;
        let failing: Vec<EndpointKey> = keys
            .iter()
            .filter(|k| unhealthy.contains(k))
            .cloned()
            .collect();
        Some((pod, failing.is_empty(), failing))
    })
}

/// Whether `pod` declares the gate.
pub fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|gates| gates.iter().any(|g| g.condition_type == CONDITION))
}

/// The status of the gate condition in `pod`.
pub fn condition_of(pod: &Pod) -> Option<bool> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let condition = conditions.iter().find(|c| c.type_ == CONDITION)?;
    match condition.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

/// The Pod, or for one that does not decode its metadata alone (so it reads
/// as ungated and is left out), with one warning per Pod.
fn decoded(pod: Lenient<Pod>, undecodable: &mut HashSet<PodKey>) -> Pod {
    match pod {
        Lenient::Decoded(pod) => {
            if let Some(key) = key_of(&pod) {
                undecodable.remove(&key);
            }
            pod
        }
        Lenient::Undecodable { metadata, error } => {
            let pod = Pod {
                metadata: *metadata,
                ..Pod::default()
            };
            if let Some(key) = key_of(&pod)
                && undecodable.insert(key.clone())
            {
                tracing::warn!(namespace = %key.0, name = %key.1, %error, "readiness gates: Pod left out: it does not decode");
            }
            pod
        }
    }
}

fn key_of(pod: &Pod) -> Option<PodKey> {
    Some((pod.metadata.namespace.clone()?, pod.metadata.name.clone()?))
}

/// Watches every Pod and keeps the gated ones. The receiver holds `None`
/// until the first complete list (or until listing is found forbidden).
pub fn watch_gated_pods(
    connection: KubeConnection,
    cancel: CancellationToken,
) -> watch::Receiver<Option<Arc<GatedPods>>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let client = loop {
            match connect(&connection).await {
                Ok(client) => break client,
                Err(error) => {
                    tracing::warn!(%error, "readiness gates: cannot build a Kubernetes client; retrying");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(RETRY_AFTER) => {}
            }
        };
        // Each Pod decoded on its own: one that does not decode is left out
        // with a warning, never the whole list (as the cluster source does).
        let api: Api<Lenient<Pod>> = Api::all(client);
        let start = || {
            watcher::watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .boxed()
        };
        let mut events = start();
        let mut current = GatedPods {
            pods: BTreeMap::new(),
            readable: true,
        };
        let mut building: Option<BTreeMap<PodKey, Option<bool>>> = None;
        let mut forbidden = false;
        // Pods that did not decode, warned about once each.
        let mut undecodable: HashSet<PodKey> = HashSet::new();
        // Doubles with each relist after a lost event; an event of the
        // watch after the list starts it over.
        let mut relist_in = RETRY_AFTER;
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = events.next() => event,
            };
            let Some(event) = event else { return };
            if matches!(
                event,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))
            ) {
                relist_in = RETRY_AFTER;
            }
            let event = event.map(|event| match event {
                watcher::Event::Apply(pod) => watcher::Event::Apply(decoded(pod, &mut undecodable)),
                watcher::Event::InitApply(pod) => {
                    watcher::Event::InitApply(decoded(pod, &mut undecodable))
                }
                watcher::Event::Delete(pod) => {
                    watcher::Event::Delete(decoded(pod, &mut undecodable))
                }
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitDone => watcher::Event::InitDone,
            });
            let changed = match event {
                Ok(watcher::Event::Init) => {
                    building = Some(BTreeMap::new());
                    false
                }
                Ok(watcher::Event::InitApply(pod)) => {
                    if let (Some(map), Some(key)) = (building.as_mut(), key_of(&pod))
                        && is_gated(&pod)
                    {
                        map.insert(key, condition_of(&pod));
                    }
                    false
                }
                Ok(watcher::Event::InitDone) => {
                    if std::mem::take(&mut forbidden) {
                        tracing::info!("readiness gates: Pods can be listed again");
                    }
                    current = GatedPods {
                        pods: building.take().unwrap_or_default(),
                        readable: true,
                    };
                    true
                }
                Ok(watcher::Event::Apply(pod)) => match key_of(&pod) {
                    Some(key) if is_gated(&pod) => {
                        let status = condition_of(&pod);
                        current.pods.insert(key, status) != Some(status)
                    }
                    Some(key) => current.pods.remove(&key).is_some(),
                    None => false,
                },
                Ok(watcher::Event::Delete(pod)) => {
                    key_of(&pod).is_some_and(|key| current.pods.remove(&key).is_some())
                }
                Err(error) => {
                    // Refused by RBAC: the list or the watch request answered 403.
                    let denied = matches!(
                        &error,
                        watcher::Error::InitialListFailed(kube::Error::Api(status))
                            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
                            if status.code == 403
                    );
                    // A line of the stream that is no watch event (kube-rs
                    // reports it as a serde error, or as a `Status` when it
                    // is any JSON object): the event it replaced is lost, so
                    // list again (as the cluster source does).
                    let lost = matches!(
                        &error,
                        watcher::Error::WatchFailed(
                            kube::Error::SerdeError(_) | kube::Error::Api(_)
                        )
                    );
                    if denied && !forbidden {
                        forbidden = true;
                        tracing::warn!(%error, "readiness gates: listing Pods is forbidden; no readiness gate is set until RBAC allows get, list and watch of pods");
                        current = GatedPods::default();
                        tx.send_replace(Some(Arc::new(current.clone())));
                    } else if lost {
                        let delay = relist_in;
                        relist_in = (relist_in * 2).min(LONGEST_RELIST_DELAY);
                        tracing::warn!(%error, relist_in = ?delay, "readiness gates: a Pod watch event does not decode; listing again");
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(delay) => {}
                        }
                        building = None;
                        events = start();
                    } else if !denied {
                        tracing::debug!(%error, "readiness gates: Pod watch failed; retrying with backoff");
                    }
                    false
                }
            };
            if changed {
                tx.send_replace(Some(Arc::new(current.clone())));
            }
        }
    });
    rx
}

/// The patcher's counters (`signpost_health_pod_gate_*`), rendered by the role.
#[derive(Debug, Default)]
pub struct GateMetrics {
    written_true: AtomicU64,
    written_false: AtomicU64,
    failed: AtomicU64,
    gone: AtomicU64,
    gated: AtomicU64,
    pending: AtomicU64,
}

impl GateMetrics {
    /// Conditions written with `status` so far.
    pub fn written(&self, status: bool) -> u64 {
        if status {
            self.written_true.load(Relaxed)
        } else {
            self.written_false.load(Relaxed)
        }
    }

    /// Appends the families to `out`.
    pub fn render(&self, out: &mut String) {
        let mut exposition = Exposition::new(out);
        exposition.family(
            "signpost_health_pod_gate_patches_total",
            Kind::Counter,
            "Patches of the dns.aikernel.io/healthy Pod condition by result: written (with the status set), failed, gone (the Pod no longer exists).",
        );
        exposition.sample(
            "signpost_health_pod_gate_patches_total",
            &[("result", &"written"), ("status", &"True")],
            self.written_true.load(Relaxed),
        );
        exposition.sample(
            "signpost_health_pod_gate_patches_total",
            &[("result", &"written"), ("status", &"False")],
            self.written_false.load(Relaxed),
        );
        exposition.sample(
            "signpost_health_pod_gate_patches_total",
            &[("result", &"failed")],
            self.failed.load(Relaxed),
        );
        exposition.sample(
            "signpost_health_pod_gate_patches_total",
            &[("result", &"gone")],
            self.gone.load(Relaxed),
        );
        exposition.family(
            "signpost_health_gated_pods",
            Kind::Gauge,
            "Pods that declare the dns.aikernel.io/healthy readiness gate.",
        );
        exposition.sample("signpost_health_gated_pods", &[], self.gated.load(Relaxed));
        exposition.family(
            "signpost_health_pod_gate_pending",
            Kind::Gauge,
            "Gated Pods whose condition differs from the published verdicts and waits for a patch (leader only).",
        );
        exposition.sample(
            "signpost_health_pod_gate_pending",
            &[],
            self.pending.load(Relaxed),
        );
    }
}

/// The rate limit of patches: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Patches per second, on average.
    pub qps: f64,
    /// Patches that may go at once after a quiet time.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            qps: 50.0,
            burst: 100,
        }
    }
}

/// client-go's token bucket (`flowcontrol.NewTokenBucketRateLimiter`).
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.limit.qps).min(f64::from(self.limit.burst.max(1)));
        self.at = now;
    }

    /// When the next token is there (now when one is).
    fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.limit.qps.max(1e-3))
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// The last probe error of unhealthy endpoints, for the condition message
/// (the leader's checker knows it; empty when nothing is known).
pub type LastErrors =
    Arc<dyn Fn(Vec<EndpointKey>) -> BoxFuture<'static, HashMap<EndpointKey, String>> + Send + Sync>;

/// What the patcher follows.
pub struct GateParts {
    /// The Kubernetes connection.
    pub connection: KubeConnection,
    /// True while this replica leads.
    pub leading: watch::Receiver<bool>,
    /// The gated Pods (from [`watch_gated_pods`]).
    pub pods: watch::Receiver<Option<Arc<GatedPods>>>,
    /// Each gated Pod's checked endpoints (the role maps EndpointSlice
    /// `targetRef`s); `None` until the targets are known.
    pub endpoints: watch::Receiver<Option<Arc<PodEndpoints>>>,
    /// The published verdicts.
    pub observed: watch::Receiver<Observed>,
    /// Where the message's last error comes from.
    pub last_errors: LastErrors,
    /// The rate limit.
    pub limit: RateLimit,
    /// Counters.
    pub metrics: Arc<GateMetrics>,
}

/// One write to do.
#[derive(Debug, Clone)]
struct Work {
    pod: PodKey,
    status: bool,
    failing: Vec<EndpointKey>,
    message: String,
}

/// How a patch ended.
enum Outcome {
    Written,
    Gone,
    Failed(String),
}

/// Runs the patcher until `cancel`.
pub async fn run_patcher(mut parts: GateParts, cancel: CancellationToken) {
    let client = loop {
        match connect(&parts.connection).await {
            Ok(client) => break client,
            Err(error) => {
                tracing::warn!(%error, "readiness gates: cannot build a Kubernetes client; retrying");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(RETRY_AFTER) => {}
        }
    };
    let mut bucket = Bucket::new(parts.limit);
    // Written by this term and not yet seen in the watch: pod → status.
    let mut sent: HashMap<PodKey, bool> = HashMap::new();
    // Failed writes: pod → when to try again.
    let mut retry: HashMap<PodKey, Instant> = HashMap::new();
    let mut queue: VecDeque<Work> = VecDeque::new();
    let mut busy: HashSet<PodKey> = HashSet::new();
    let mut in_flight: FuturesUnordered<BoxFuture<'static, (Work, Outcome)>> =
        FuturesUnordered::new();
    let mut failing_streak = false;
    let mut dirty = true;
    loop {
        let leading = *parts.leading.borrow_and_update();
        let idle = sent.is_empty() && in_flight.is_empty() && retry.is_empty();
        if !leading && !idle {
            // A former leader's writes in flight are dropped (cancelled).
            sent.clear();
            retry.clear();
            busy.clear();
            in_flight = FuturesUnordered::new();
        }
        if dirty {
            dirty = false;
            let previous = std::mem::take(&mut queue);
            queue = if leading {
                plan(&parts, &mut sent, &retry, &busy)
            } else {
                VecDeque::new()
            };
            parts.metrics.pending.store(queue.len() as u64, Relaxed);
            // Messages already built for the same write are kept: the checker
            // is asked only about writes that are new since the last plan.
            let known: HashMap<&PodKey, &Work> = previous.iter().map(|w| (&w.pod, w)).collect();
            let mut wanted: Vec<EndpointKey> = Vec::new();
            for work in &mut queue {
                match known.get(&work.pod) {
                    Some(old) if old.status == work.status && old.failing == work.failing => {
                        work.message.clone_from(&old.message);
                    }
                    _ => wanted.extend(work.failing.iter().cloned()),
                }
            }
            let errors = if wanted.is_empty() {
                HashMap::new()
            } else {
                (parts.last_errors)(wanted).await
            };
            for work in queue.iter_mut().filter(|w| w.message.is_empty()) {
                work.message = message(work.status, &work.failing, &errors);
            }
            // First come, first served: writes already waiting keep their
            // place, new ones queue behind them.
            let place: HashMap<&PodKey, usize> = previous
                .iter()
                .enumerate()
                .map(|(i, w)| (&w.pod, i))
                .collect();
            queue
                .make_contiguous()
                .sort_by_key(|w| place.get(&w.pod).copied().unwrap_or(usize::MAX));
        }
        let now = Instant::now();
        let send_at =
            (!queue.is_empty() && in_flight.len() < IN_FLIGHT).then(|| bucket.ready_at(now));
        let retry_at = retry.values().min().copied();
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = parts.leading.changed() => { if changed.is_err() { return } dirty = true; }
            changed = parts.pods.changed() => { if changed.is_err() { return } dirty = true; }
            changed = parts.endpoints.changed() => { if changed.is_err() { return } dirty = true; }
            changed = parts.observed.changed() => { if changed.is_err() { return } dirty = true; }
            Some((work, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                busy.remove(&work.pod);
                match outcome {
                    Outcome::Written => {
                        if std::mem::take(&mut failing_streak) {
                            tracing::info!("readiness gates: Pod status patches succeed again");
                        }
                        if work.status {
                            parts.metrics.written_true.fetch_add(1, Relaxed);
                        } else {
                            parts.metrics.written_false.fetch_add(1, Relaxed);
                        }
                        tracing::info!(pod = %format!("{}/{}", work.pod.0, work.pod.1), status = if work.status { "True" } else { "False" }, "readiness gate {CONDITION} set");
                        sent.insert(work.pod, work.status);
                    }
                    Outcome::Gone => {
                        parts.metrics.gone.fetch_add(1, Relaxed);
                    }
                    Outcome::Failed(error) => {
                        parts.metrics.failed.fetch_add(1, Relaxed);
                        if !std::mem::replace(&mut failing_streak, true) {
                            tracing::warn!(pod = %format!("{}/{}", work.pod.0, work.pod.1), %error, "readiness gates: patching the Pod's status failed; retrying");
                        }
                        retry.insert(work.pod, Instant::now() + RETRY_AFTER);
                    }
                }
                dirty = true;
            }
            () = sleep_until(retry_at) => {
                let now = Instant::now();
                retry.retain(|_, at| *at > now);
                dirty = true;
            }
            () = sleep_until(send_at) => {
                if let Some(work) = queue.pop_front() {
                    bucket.take();
                    parts.metrics.pending.store(queue.len() as u64, Relaxed);
                    busy.insert(work.pod.clone());
                    let api: Api<Pod> = Api::namespaced(client.clone(), &work.pod.0);
                    in_flight.push(Box::pin(async move {
                        let outcome = patch(&api, &work).await;
                        (work, outcome)
                    }));
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The writes the inputs call for now, False first (taking a failing Pod out
/// of routing matters more than returning one); the caller keeps the order of
/// writes that were already waiting (the sort is stable).
fn plan(
    parts: &GateParts,
    sent: &mut HashMap<PodKey, bool>,
    retry: &HashMap<PodKey, Instant>,
    busy: &HashSet<PodKey>,
) -> VecDeque<Work> {
    let pods = parts.pods.borrow().clone();
    let endpoints = parts.endpoints.borrow().clone();
    let observed = parts.observed.borrow().clone();
    let (Some(pods), Some(endpoints), Some(verdicts)) = (pods, endpoints, observed.verdicts) else {
        return VecDeque::new();
    };
    parts.metrics.gated.store(pods.pods.len() as u64, Relaxed);
    if !observed.readable || !pods.readable {
        return VecDeque::new();
    }
    // A write the watch already shows is no longer ours to remember.
    sent.retain(|pod, status| pods.pods.get(pod).is_some_and(|c| *c != Some(*status)));
    let mut work: Vec<Work> = desired(&pods, &endpoints, &verdicts.unhealthy)
        .filter(|(pod, status, _)| {
            pods.pods.get(*pod).copied().flatten() != Some(*status)
                && sent.get(*pod) != Some(status)
                && !retry.contains_key(*pod)
                && !busy.contains(*pod)
        })
        .map(|(pod, status, failing)| Work {
            pod: pod.clone(),
            status,
            failing,
            message: String::new(),
        })
        .collect();
    work.sort_by_key(|w| w.status);
    work.into()
}

/// The condition message of a write.
pub fn message(
    status: bool,
    failing: &[EndpointKey],
    errors: &HashMap<EndpointKey, String>,
) -> String {
    if status {
        return "health checks pass".to_owned();
    }
    let mut parts = Vec::new();
    for key in failing {
        match errors.get(key) {
            Some(error) => parts.push(format!("{key}: {error}")),
            None => parts.push(format!("{key}: unhealthy")),
        }
    }
    format!("health checks failed: {}", parts.join("; "))
}

/// The strategic merge patch of one condition.
pub fn patch_body(status: bool, message: &str, now: &str) -> serde_json::Value {
    serde_json::json!({"status": {"conditions": [{
        "type": CONDITION,
        "status": if status { "True" } else { "False" },
        "reason": if status { REASON_PASSED } else { REASON_FAILED },
        "message": message,
        "lastTransitionTime": now,
    }]}})
}

/// Now as a `metav1.Time` (RFC 3339, seconds).
fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map_or_else(|_| now.to_string(), |t| t.to_string())
}

async fn patch(api: &Api<Pod>, work: &Work) -> Outcome {
    let body = patch_body(work.status, &work.message, &now_rfc3339());
    let params = PatchParams::default();
    let patch = Patch::Strategic(&body);
    let request = api.patch_status(&work.pod.1, &params, &patch);
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(_)) => Outcome::Written,
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => Outcome::Gone,
        Ok(Err(kube::Error::Api(status))) => {
            Outcome::Failed(format!("{} ({})", status.message, status.code))
        }
        Ok(Err(error)) => Outcome::Failed(error.to_string()),
        Err(_) => Outcome::Failed(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signpost_fakes::{FakeApiServer, ServerOptions};

    fn key(address: &str) -> EndpointKey {
        EndpointKey {
            namespace: "shop".to_owned(),
            service: "web".to_owned(),
            address: address.parse().unwrap(),
        }
    }

    fn pod(name: &str) -> PodKey {
        ("shop".to_owned(), name.to_owned())
    }

    /// False when any checked endpoint of the Pod is unhealthy; Pods behind
    /// no checked endpoint get nothing.
    #[test]
    fn desired_status_follows_the_published_set() {
        let pods = GatedPods {
            pods: [(pod("a"), Some(true)), (pod("b"), None), (pod("c"), None)]
                .into_iter()
                .collect(),
            readable: true,
        };
        let endpoints: PodEndpoints = [
            (pod("a"), vec![key("10.0.0.1"), key("fd00::1")]),
            (pod("b"), vec![key("10.0.0.2")]),
        ]
        .into_iter()
        .collect();
        let unhealthy: HashSet<EndpointKey> = [key("fd00::1")].into_iter().collect();
        let got: Vec<(PodKey, bool, Vec<EndpointKey>)> = desired(&pods, &endpoints, &unhealthy)
            .map(|(p, s, f)| (p.clone(), s, f))
            .collect();
        assert_eq!(
            got,
            [
                (pod("a"), false, vec![key("fd00::1")]),
                (pod("b"), true, Vec::new())
            ]
        );
    }

    /// The message names each failing endpoint with its last error.
    #[test]
    fn messages_and_the_patch_body() {
        let errors: HashMap<EndpointKey, String> = [(key("10.0.0.1"), "HTTP 503".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            message(false, &[key("10.0.0.1"), key("10.0.0.2")], &errors),
            "health checks failed: shop/web/10.0.0.1: HTTP 503; shop/web/10.0.0.2: unhealthy"
        );
        assert_eq!(message(true, &[], &errors), "health checks pass");
        let body = patch_body(false, "m", "2026-11-30T12:00:00Z");
        assert_eq!(
            body,
            serde_json::json!({"status": {"conditions": [{"type": CONDITION, "status": "False",
                "reason": REASON_FAILED, "message": "m", "lastTransitionTime": "2026-11-30T12:00:00Z"}]}})
        );
    }

    /// The bucket gives `burst` at once, then one every 1/qps, and refills
    /// no further than the burst.
    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        let mut bucket = Bucket::new(RateLimit {
            qps: 10.0,
            burst: 3,
        });
        let start = bucket.at;
        for _ in 0..3 {
            assert_eq!(bucket.ready_at(start), start);
            bucket.take();
        }
        let next = bucket.ready_at(start);
        assert_eq!(next - start, Duration::from_millis(100));
        let later = start + Duration::from_secs(10);
        assert_eq!(bucket.ready_at(later), later);
        assert!(bucket.tokens <= 3.0, "refill caps at the burst");
    }

    fn gated_pod(condition: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "web", "image": "web"}],
                     "readinessGates": [{"conditionType": CONDITION}]},
            "status": {"conditions": [{"type": CONDITION, "status": condition}]}
        })
    }

    /// Writes the gate condition of `shop/web-1` (a create drops the status,
    /// as kube-apiserver's does).
    fn set_condition(server: &FakeApiServer, condition: &str) {
        let mut stored = server.get("pods", Some("shop"), "web-1").unwrap();
        stored["status"] = gated_pod(condition)["status"].clone();
        server.update_status(stored).unwrap();
    }

    /// A fake API server holding the gated Pod `shop/web-1`, its condition
    /// `False`, and a connection to it.
    async fn shop() -> (FakeApiServer, KubeConnection) {
        let server = FakeApiServer::start(ServerOptions::default())
            .await
            .unwrap();
        server
            .create(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "shop"}}))
            .unwrap();
        server.create(gated_pod("False")).unwrap();
        set_condition(&server, "False");
        let connection = KubeConnection::Kubeconfig {
            path: server.kubeconfig_path().to_owned(),
            context: None,
        };
        (server, connection)
    }

    /// A watch line that is no watch event loses the event it replaced; the
    /// Pod watch lists again, so the gate's state still catches up.
    #[tokio::test]
    async fn an_undecodable_pod_event_lists_again() {
        let (server, connection) = shop().await;
        let cancel = CancellationToken::new();
        let mut pods = watch_gated_pods(connection, cancel.clone());
        let key = ("shop".to_owned(), "web-1".to_owned());
        let status = |pods: &watch::Receiver<Option<Arc<GatedPods>>>| {
            pods.borrow()
                .as_ref()
                .and_then(|p| p.pods.get(&key).copied())
        };
        let until = |want: Option<bool>, mut pods: watch::Receiver<Option<Arc<GatedPods>>>| async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                while status(&pods) != Some(want) {
                    pods.changed().await.unwrap();
                }
            })
            .await
            .unwrap_or_else(|_| panic!("the gate never became {want:?}"));
        };
        until(Some(false), pods.clone()).await;
        server.garble_next_watch_event("pods");
        set_condition(&server, "True");
        until(Some(true), pods.clone()).await;
        pods.borrow_and_update();
        cancel.cancel();
    }

    /// A Pod that does not decode is left out; the others' gates still
    /// count (the whole list used to fail, and no gate was known).
    #[tokio::test]
    async fn an_undecodable_pod_is_left_out_not_the_list() {
        let (server, connection) = shop().await;
        let mut bad = gated_pod("True");
        bad["metadata"]["name"] = "web-2".into();
        bad["spec"]["containers"] = "not a list".into();
        server.create_unvalidated(bad).unwrap();
        let cancel = CancellationToken::new();
        let mut pods = watch_gated_pods(connection, cancel.clone());
        let listed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(listed) = pods.borrow_and_update().clone() {
                    return listed;
                }
                pods.changed().await.unwrap();
            }
        })
        .await
        .expect("the Pods were never listed");
        assert!(listed.readable);
        assert_eq!(
            listed.pods.iter().collect::<Vec<_>>(),
            [(&("shop".to_owned(), "web-1".to_owned()), &Some(false))]
        );
        cancel.cancel();
    }
}
