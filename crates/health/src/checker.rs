//! The scheduler: checks every target once per interval, spread over the
//! interval, with bounded concurrency, and publishes verdict changes.
//!
//! Control plane: one task owns all endpoint state (no locks); probes run as
//! short tasks holding a semaphore permit and report back over a channel.
//! Each target's first check is offset by a hash of its key within the
//! interval (plus optional random-free jitter), so 10,000 endpoints at 10 s
//! make a steady 1,000 checks per second rather than bursts.

use crate::metrics::HealthMetrics;
use crate::probe::{CheckKind, ProbeError, Prober};
use crate::state::{Change, EndpointState, HealthPolicy, Phase};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use signpost_model::status::Transition;
use signpost_model::{EndpointKey, PublishVerdicts, Verdicts};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One endpoint to check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Which endpoint.
    pub key: EndpointKey,
    /// How.
    pub kind: CheckKind,
    /// Port to check.
    pub port: u16,
    /// HTTP path.
    pub path: String,
}

/// Runs one check; the real one is [`Prober`], tests inject their own.
pub trait Probe: Send + Sync + 'static {
    /// Checks `target`, failing after `timeout`.
    fn check(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

impl Probe for Prober {
    fn check(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let prober = self.clone();
        let target = target.clone();
        Box::pin(async move {
            let address = SocketAddr::new(target.key.address, target.port);
            prober
                .check(&target.kind, address, &target.path, timeout)
                .await
                .map_err(|e: ProbeError| e.to_string())
        })
    }
}

/// Scheduler settings beyond the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerOptions {
    /// Extra spread added to each target's offset, up to this much.
    pub jitter: Duration,
    /// Checks in flight at once.
    pub max_concurrent: usize,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        Self {
            jitter: Duration::ZERO,
            max_concurrent: 256,
        }
    }
}

/// The state of one checked endpoint, as `/api/v1/endpoints` shows it.
pub use signpost_model::status::EndpointReport;

/// State changes kept per endpoint for `/api/v1/endpoints` and the status
/// page: the newest [`HISTORY`] are kept, older ones dropped, so memory per
/// endpoint is bounded however often it flaps.
pub const HISTORY: usize = 16;

struct Entry {
    target: Target,
    state: EndpointState,
    due: Instant,
    in_flight: bool,
    failures: u32,
    successes: u32,
    last_check: Option<SystemTime>,
    last_error: Option<String>,
    /// The newest state changes, oldest first, at most [`HISTORY`].
    history: VecDeque<Transition>,
}

struct Outcome {
    key: EndpointKey,
    result: Result<(), String>,
    took: Duration,
}

/// What the checker needs besides its channels.
#[derive(Clone)]
pub struct CheckerParts {
    /// Thresholds and timings.
    pub policy: HealthPolicy,
    /// Spread and concurrency.
    pub options: CheckerOptions,
    /// How to check.
    pub probe: Arc<dyn Probe>,
    /// Where verdicts go.
    pub publisher: Arc<dyn PublishVerdicts>,
    /// Where counts go.
    pub metrics: Arc<HealthMetrics>,
}

/// Spawns the checker on the current runtime. It follows `targets`, checks,
/// publishes every change of the set of unhealthy endpoints, and answers
/// report requests. Every endpoint starts healthy.
pub fn spawn(
    parts: CheckerParts,
    targets: watch::Receiver<Arc<Vec<Target>>>,
    reports: mpsc::Receiver<ReportRequest>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    spawn_from(parts, &Verdicts::default(), targets, reports, cancel)
}

/// [`spawn`] for a checker that takes over from another one (a new leader of
/// `signpost health`): the endpoints `published` holds start out of answers
/// (unhealthy, no passes yet) and return only after `success_threshold`
/// passes, so a takeover never puts an endpoint back without a check. The
/// first publication is the published set itself (without endpoints that are no
/// longer targets), so nothing changes in answers at the handover.
///
/// `targets` must already hold a complete target list: the checker
/// publishes after reading it.
pub fn spawn_from(
    parts: CheckerParts,
    published: &Verdicts,
    targets: watch::Receiver<Arc<Vec<Target>>>,
    reports: mpsc::Receiver<ReportRequest>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let checker = Checker {
        seed: published.unhealthy.clone(),
        policy: parts.policy,
        options: parts.options,
        probe: parts.probe,
        publisher: parts.publisher,
        metrics: parts.metrics,
        entries: BTreeMap::new(),
        queue: BinaryHeap::new(),
    };
    tokio::spawn(checker.run(targets, reports, cancel))
}

/// A request for every endpoint's state; the checker answers on the channel.
pub type ReportRequest = tokio::sync::oneshot::Sender<Vec<EndpointReport>>;

struct Checker {
    /// Endpoints that start unhealthy (a predecessor's published verdicts);
    /// used by the first reconcile only.
    seed: HashSet<EndpointKey>,
    policy: HealthPolicy,
    options: CheckerOptions,
    probe: Arc<dyn Probe>,
    publisher: Arc<dyn PublishVerdicts>,
    metrics: Arc<HealthMetrics>,
    entries: BTreeMap<EndpointKey, Entry>,
    /// Due times; stale items (entry gone or rescheduled) are skipped when popped.
    queue: BinaryHeap<Reverse<(Instant, EndpointKey)>>,
}

/// Checks due this soon after the earliest one start together.
const BATCH_WINDOW: Duration = Duration::from_millis(10);

// === impl Checker ===

impl Checker {
    async fn run(
        mut self,
        mut targets: watch::Receiver<Arc<Vec<Target>>>,
        mut reports: mpsc::Receiver<ReportRequest>,
        cancel: CancellationToken,
    ) {
        // Probes run inside this task (no task per check, no channel): the
        // checker and its probes never wake each other across threads.
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Outcome>> = FuturesUnordered::new();
        let current = targets.borrow_and_update().clone();
        self.reconcile(&current);
        loop {
            let next = self.queue.peek().map(|Reverse((due, _))| *due);
            let sleep = tokio::time::sleep_until(
                next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            let room = in_flight.len() < self.options.max_concurrent.max(1);
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = targets.changed() => {
                    if changed.is_err() { return; }
                    let current = targets.borrow_and_update().clone();
                    self.reconcile(&current);
                }
                Some(outcome) = in_flight.next(), if !in_flight.is_empty() => self.finish(outcome),
                Some(request) = reports.recv() => { let _ = request.send(self.reports()); }
                () = sleep, if room => self.run_due(&mut in_flight),
            }
        }
    }

    /// Adds new targets (spread over the interval) and drops vanished ones.
    fn reconcile(&mut self, targets: &[Target]) {
        let now = Instant::now();
        let wanted: HashSet<&EndpointKey> = targets.iter().map(|t| &t.key).collect();
        let before = self.entries.len();
        self.entries.retain(|key, _| wanted.contains(key));
        let mut changed = self.entries.len() != before;
        for target in targets {
            if let Some(entry) = self.entries.get_mut(&target.key) {
                entry.target = target.clone();
                continue;
            }
            let due = now + self.offset(&target.key);
            self.queue.push(Reverse((due, target.key.clone())));
            let state = if self.seed.contains(&target.key) {
                EndpointState {
                    phase: Phase::Unhealthy { passes: 0 },
                }
            } else {
                EndpointState::default()
            };
            self.entries.insert(
                target.key.clone(),
                Entry {
                    target: target.clone(),
                    state,
                    due,
                    in_flight: false,
                    failures: 0,
                    successes: 0,
                    last_check: None,
                    last_error: None,
                    history: VecDeque::new(),
                },
            );
            changed = true;
        }
        // The initial set describes the state at the start only; an endpoint that
        // leaves and comes back later is new.
        self.seed = HashSet::new();
        if changed {
            self.publish(false);
        }
    }

    /// A stable offset within one interval (plus jitter) for a key.
    fn offset(&self, key: &EndpointKey) -> Duration {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        let span = self.policy.interval + self.options.jitter;
        let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(hash % nanos)
    }

    fn run_due(&mut self, in_flight: &mut FuturesUnordered<BoxFuture<'static, Outcome>>) {
        let now = Instant::now();
        // Checks due within the next few milliseconds start now too, so a
        // steady stream of checks wakes the checker ~100 times a second, not
        // once per check.
        let horizon = now + BATCH_WINDOW;
        let mut verdict_changed = false;
        while let Some(Reverse((due, _))) = self.queue.peek() {
            if *due > horizon || in_flight.len() >= self.options.max_concurrent.max(1) {
                break;
            }
            let Some(Reverse((due, key))) = self.queue.pop() else {
                break;
            };
            let policy = self.policy;
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            // The delay rule may remove an endpoint between checks.
            if entry.state.deadline(&policy).is_some_and(|d| d <= now) {
                verdict_changed |= self.apply(&key, Change::None, now);
            }
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.due != due || entry.in_flight {
                continue;
            }
            entry.in_flight = true;
            entry.due = due + policy.interval;
            self.queue.push(Reverse((entry.due, key.clone())));
            if let Some(deadline) = entry.state.deadline(&policy) {
                self.queue.push(Reverse((deadline, key.clone())));
            }
            let check = self.probe.check(&entry.target, policy.timeout);
            let key = key.clone();
            in_flight.push(Box::pin(async move {
                let started = Instant::now();
                let result = check.await;
                Outcome {
                    key,
                    result,
                    took: started.elapsed(),
                }
            }));
        }
        if verdict_changed {
            self.publish(true);
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        let now = Instant::now();
        self.metrics
            .observe_check(outcome.result.is_ok(), outcome.took);
        let policy = self.policy;
        let Some(entry) = self.entries.get_mut(&outcome.key) else {
            return;
        };
        entry.in_flight = false;
        entry.last_check = Some(SystemTime::now());
        let passed = outcome.result.is_ok();
        entry.successes = if passed {
            entry.successes.saturating_add(1)
        } else {
            0
        };
        entry.failures = if passed {
            0
        } else {
            entry.failures.saturating_add(1)
        };
        if let Err(error) = &outcome.result {
            tracing::debug!(endpoint = %outcome.key, %error, "health check failed");
            entry.last_error = Some(error.clone());
        }
        let before = phase_name(entry.state.phase);
        let change = entry.state.record(passed, now, &policy);
        let after = phase_name(entry.state.phase);
        if before != after {
            let error = if passed {
                None
            } else {
                entry.last_error.clone()
            };
            remember(&mut entry.history, before, after, error);
        }
        if let Some(deadline) = entry.state.deadline(&policy) {
            self.queue.push(Reverse((deadline, outcome.key.clone())));
        }
        if self.apply(&outcome.key, change, now) {
            self.publish(true);
        }
    }

    /// Applies the delay rule and counts a change; true when the unhealthy set changed.
    fn apply(&mut self, key: &EndpointKey, change: Change, now: Instant) -> bool {
        let policy = self.policy;
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let change = if change == Change::None {
            let before = phase_name(entry.state.phase);
            let change = entry.state.evaluate(now, &policy);
            let after = phase_name(entry.state.phase);
            if before != after {
                remember(&mut entry.history, before, after, None);
            }
            change
        } else {
            change
        };
        match change {
            Change::None => false,
            Change::Removed => {
                tracing::warn!(endpoint = %key, "endpoint unhealthy; removed from answers");
                self.metrics
                    .endpoints_removed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Change::Added => {
                tracing::info!(endpoint = %key, "endpoint healthy again; back in answers");
                self.metrics
                    .endpoints_added
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
        }
    }

    fn publish(&mut self, count_update: bool) {
        let unhealthy: HashSet<EndpointKey> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.state.is_serving())
            .map(|(k, _)| k.clone())
            .collect();
        self.metrics
            .set_counts(self.entries.len() - unhealthy.len(), unhealthy.len());
        if count_update {
            self.metrics
                .updates
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.publisher.publish(Arc::new(Verdicts { unhealthy }));
    }

    /// Every endpoint's state, built only when asked (`/api/v1/endpoints`).
    fn reports(&self) -> Vec<EndpointReport> {
        self.entries
            .values()
            .map(|entry| EndpointReport {
                namespace: entry.target.key.namespace.clone(),
                service: entry.target.key.service.clone(),
                address: entry.target.key.address.to_string(),
                port: entry.target.port,
                kind: entry.target.kind.as_str().to_owned(),
                state: phase_name(entry.state.phase).to_owned(),
                consecutive_failures: entry.failures,
                consecutive_successes: entry.successes,
                last_check_unix: entry
                    .last_check
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64()),
                last_error: entry.last_error.clone(),
                history: entry.history.iter().cloned().collect(),
            })
            .collect()
    }
}

/// The name `/api/v1/endpoints` gives a phase.
fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Healthy => "healthy",
        Phase::Failing { .. } => "failing",
        Phase::Unhealthy { .. } => "unhealthy",
    }
}

/// Appends a state change, dropping the oldest beyond [`HISTORY`].
fn remember(history: &mut VecDeque<Transition>, from: &str, to: &str, error: Option<String>) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(Transition {
        unix: unix_now(),
        from: from.to_owned(),
        to: to.to_owned(),
        error,
    });
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
