//! The controller: when to reconcile, and one reconciliation.
//!
//! Control plane, one task. [`Reconciler::run_once`] is external-dns v0.22's
//! `RunOnce`: read the registry, plan against the desired endpoints, apply
//! (or, with `--dry-run`, print the plan). [`Controller::run`] schedules it:
//!
//! ```text
//! Source ──state──▶ latest objects ─┐
//!                                   ├─ first run at once, then every --interval (start to start)
//! --events: a new state ────────────┘  brings the next run to max(last start + --min-event-sync-interval,
//!                                       min(now + 5 s, next run))
//! Leadership: runs only while leading (no elector: always)
//! --health-verdicts: a new verdict set brings the next run to
//!                    min(now + debounce, next run)
//! ```
//!
//! With verdicts, each run leaves failing regions out of the desired
//! endpoints ([`crate::verdicts`]); withdrawals, returns and fail-open
//! names are logged once per change and shown in the geo gauges.
//!
//! Every failure is soft (external-dns terminates on some; signpost logs,
//! counts and retries at the next interval), so a provider that is down or a
//! wrong key never stops the process. `--once` runs one reconciliation and
//! returns its result.

use crate::endpoint::{Endpoint, RecordType};
use crate::filter::{DomainFilter, ManagedTypes};
use crate::metrics::{Invalid, SyncMetrics};
use crate::plan::{Changes, Policy};
use crate::provider::ProviderError;
use crate::registry::Registry;
use crate::source::common::{Problem, SourceConfig};
use crate::verdicts::GeoHealth;
use signpost_discovery::objects::ClusterObjects;
use signpost_model::{Leadership, Source, Update, Verdicts};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a run plans.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// `--policy`.
    pub policy: Policy,
    /// The user's domain filter.
    pub domain_filter: DomainFilter,
    /// Managed record types.
    pub managed: ManagedTypes,
    /// `--migrate-from-txt-owner`.
    pub old_owner_id: String,
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The planned changes (applied unless dry run).
    pub changes: Changes,
    /// Whether nothing had to change.
    pub no_op: bool,
    /// Desired endpoints outside every domain filter.
    pub filtered_out: Vec<Endpoint>,
}

/// One reconciliation at a time over a registry.
pub struct Reconciler {
    registry: Box<dyn Registry>,
    settings: PlanSettings,
    dry_run: bool,
    metrics: Arc<SyncMetrics>,
}

// === impl Reconciler ===

impl Reconciler {
    /// A reconciler writing through `registry`.
    pub fn new(
        registry: Box<dyn Registry>,
        settings: PlanSettings,
        dry_run: bool,
        metrics: Arc<SyncMetrics>,
    ) -> Self {
        Self {
            registry,
            settings,
            dry_run,
            metrics,
        }
    }

    /// The provider's name.
    pub fn provider_name(&self) -> &'static str {
        self.registry.provider().name()
    }

    /// One reconciliation towards `desired`.
    pub async fn run_once(&mut self, desired: Vec<Endpoint>) -> Result<Outcome, ProviderError> {
        self.metrics.reconcile_started();
        let current = match self.registry.records().await {
            Ok(current) => current,
            Err(error) => {
                self.metrics.registry_failed(error.kind());
                return Err(error);
            }
        };
        self.metrics.registry_listed(&current);
        let existing: HashSet<(String, RecordType)> = current
            .iter()
            .map(|r| (r.dns_name.to_ascii_lowercase(), r.record_type))
            .collect();
        let verified: Vec<RecordType> = desired
            .iter()
            .filter(|d| existing.contains(&(d.dns_name.to_ascii_lowercase(), d.record_type)))
            .map(|d| d.record_type)
            .collect();
        self.metrics.source_listed(&desired, &verified);
        let provider = self.registry.provider().clone();
        let desired = provider.adjust_endpoints(desired);
        let mut config = crate::plan::PlanConfig {
            policy: self.settings.policy,
            domain_filter: self.settings.domain_filter.clone(),
            managed: self.settings.managed.clone(),
            owner_id: self.registry.owner_id().to_owned(),
            old_owner_id: self.settings.old_owner_id.clone(),
        };
        if let Some(zones) = provider.zone_filter() {
            config.domain_filter = config.domain_filter.and(zones);
        }
        let plan = crate::plan::calculate(&current, &desired, &config);
        self.metrics
            .planned(&config.owner_id, &plan.owner_mismatches);
        let changes = plan.changes;
        self.metrics.plan(&changes);
        let no_op = !changes.has_changes();
        if no_op {
            tracing::info!("All records are already up to date");
        } else if self.dry_run {
            log_changes(&changes, true);
        } else {
            log_changes(&changes, false);
            if let Err(error) = self.registry.apply_changes(changes.clone()).await {
                self.metrics.registry_failed(error.kind());
                return Err(error);
            }
            self.metrics.applied(&changes);
        }
        self.metrics.succeeded(no_op);
        Ok(Outcome {
            changes,
            no_op,
            filtered_out: plan.filtered_out,
        })
    }
}

/// One info line per planned change: action, name, type, TTL, targets, set id.
fn log_changes(changes: &Changes, dry_run: bool) {
    let lines = changes
        .create
        .iter()
        .map(|e| ("CREATE", e))
        .chain(changes.update_new.iter().map(|e| ("UPDATE", e)))
        .chain(changes.delete.iter().map(|e| ("DELETE", e)));
    for (action, endpoint) in lines {
        tracing::info!(
            dry_run,
            action,
            name = %endpoint.dns_name,
            record_type = %endpoint.record_type,
            ttl = endpoint.ttl,
            targets = %endpoint.targets.join(","),
            set_identifier = %endpoint.set_identifier,
            "{}change",
            if dry_run { "planned " } else { "" }
        );
    }
}

/// When to run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `--interval`.
    pub interval: Duration,
    /// `--once`.
    pub once: bool,
    /// `--events`.
    pub events: bool,
    /// `--min-event-sync-interval`.
    pub min_event_sync_interval: Duration,
}

/// The whole role: a source of objects, the endpoint derivation, a
/// reconciler, a schedule, and optionally leadership.
pub struct Controller {
    /// Where Kubernetes objects come from.
    pub input: Box<dyn Source<Arc<ClusterObjects>>>,
    /// How objects become endpoints.
    pub sources: SourceConfig,
    /// `--min-ttl` in seconds.
    pub min_ttl: u32,
    /// The reconciler.
    pub reconciler: Reconciler,
    /// When to run.
    pub schedule: Schedule,
    /// Present when several replicas elect one writer.
    pub leadership: Option<Leadership>,
    /// Shared with the admin endpoints.
    pub metrics: Arc<SyncMetrics>,
    /// `--health-verdicts`: the followed verdict sets; `None`: no verdicts.
    pub health: Option<HealthInput>,
}

/// The verdicts a run follows (`--health-verdicts`).
#[derive(Debug, Clone)]
pub struct HealthInput {
    /// The current set, replaced on every change.
    pub verdicts: watch::Receiver<Arc<Verdicts>>,
    /// How long after a change the run starts (`--health-verdicts-debounce`):
    /// changes within it share one run.
    pub debounce: Duration,
}

/// `--once` failed, or the source ended before delivering anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The reconciliation failed.
    #[error("failed to do run once")]
    Run(#[source] ProviderError),
    /// Cancelled or the source stopped before its first state.
    #[error("the source of Kubernetes objects stopped before delivering a state")]
    NoState,
}

/// The events' fixed debounce (external-dns's 5 s).
const EVENT_DELAY: Duration = Duration::from_secs(5);

// === impl Controller ===

impl Controller {
    /// Runs until `cancel` fires (or, with `--once`, for one reconciliation).
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), RunError> {
        let (sender, mut states) = watch::channel::<Option<Arc<ClusterObjects>>>(None);
        // Held here too, so the channel stays open if the source task ends.
        let sender = Arc::new(sender);
        let _keep_open = sender.clone();
        let source_cancel = cancel.child_token();
        let kind = self.input.kind();
        let sink = signpost_model::Sink::new(move |update| match update {
            Update::State(objects) => {
                sender.send_replace(Some(objects));
            }
            Update::Problems(problems) => {
                for problem in problems {
                    tracing::warn!(source = kind, %problem, "source input is broken; keeping the last good state");
                }
            }
        });
        let input = std::mem::replace(&mut self.input, Box::new(Never));
        let source_task = tokio::spawn(input.run(sink, source_cancel.clone()));
        let _stop_source = source_cancel.drop_guard();

        // Wait for the first complete state (external-dns waits for its caches).
        let first = tokio::select! {
            () = cancel.cancelled() => return Err(RunError::NoState),
            changed = states.wait_for(Option::is_some) => changed.is_ok(),
        };
        if !first {
            return Err(RunError::NoState);
        }
        let mut reported: BTreeSet<Problem> = BTreeSet::new();
        if self.schedule.once {
            let result = self.reconcile(&states, &mut reported).await;
            source_task.abort();
            return result.map(|_| ()).map_err(RunError::Run);
        }

        let mut leading = self.leadership.as_ref().map(Leadership::watch);
        let mut verdict_changes = self.health.as_ref().map(|h| h.verdicts.clone());
        let mut next_run = Instant::now();
        let mut last_start: Option<Instant> = None;
        loop {
            let is_leader = self.leadership.as_ref().is_none_or(Leadership::is_leading);
            self.metrics.set_leader(is_leader);
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(next_run) => {
                    next_run = Instant::now() + self.schedule.interval;
                    if !is_leader {
                        continue;
                    }
                    last_start = Some(Instant::now());
                    if self.reconcile(&states, &mut reported).await.is_err() {
                        let failed = self.metrics.failed();
                        tracing::debug!(consecutive_soft_errors = failed, "run failed; retrying at the next interval");
                    }
                }
                changed = states.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if self.schedule.events {
                        let soon = (Instant::now() + EVENT_DELAY).min(next_run);
                        let earliest = last_start.map_or(soon, |s| s + self.schedule.min_event_sync_interval);
                        next_run = soon.max(earliest);
                    }
                }
                Some(()) = next_verdicts(&mut verdict_changes) => {
                    let debounce = self.health.as_ref().map_or(Duration::ZERO, |h| h.debounce);
                    next_run = next_run.min(Instant::now() + debounce);
                }
                Some(now_leading) = next_leadership(&mut leading) => {
                    if now_leading {
                        tracing::info!("became the leader; syncing now");
                        next_run = Instant::now();
                    } else {
                        tracing::info!("lost leadership; not writing");
                    }
                }
            }
        }
    }

    async fn reconcile(
        &mut self,
        states: &watch::Receiver<Option<Arc<ClusterObjects>>>,
        reported: &mut BTreeSet<Problem>,
    ) -> Result<Outcome, ProviderError> {
        let objects = states.borrow().clone().unwrap_or_default();
        let output = match &self.health {
            Some(health) => {
                let verdicts = health.verdicts.borrow().clone();
                let (output, geo) = crate::verdicts::desired(
                    &objects,
                    &verdicts,
                    &self.sources,
                    self.reconciler.provider_name(),
                    self.min_ttl,
                );
                self.report_geo(geo);
                output
            }
            None => crate::source::endpoints(
                &objects,
                &self.sources,
                self.reconciler.provider_name(),
                self.min_ttl,
            ),
        };
        let mut current: BTreeSet<Problem> = output.problems.iter().cloned().collect();
        let mut invalid: Vec<Invalid> = output
            .problems
            .iter()
            .map(|p| Invalid {
                record_type: p.record_type.clone(),
                source_type: p.source_type,
            })
            .collect();
        let result = self.reconciler.run_once(output.endpoints).await;
        self.metrics
            .set_error(result.as_ref().err().map(ToString::to_string));
        match &result {
            Ok(outcome) => {
                for endpoint in &outcome.filtered_out {
                    let source_type = source_of(endpoint);
                    current.insert(Problem {
                        source_type,
                        object: endpoint
                            .labels
                            .get(crate::endpoint::RESOURCE_LABEL)
                            .cloned()
                            .unwrap_or_default(),
                        record_type: endpoint.record_type.lower().to_owned(),
                        message: format!(
                            "{} is outside every domain filter and zone",
                            endpoint.dns_name
                        ),
                    });
                    invalid.push(Invalid {
                        record_type: endpoint.record_type.lower().to_owned(),
                        source_type,
                    });
                }
            }
            Err(error) => {
                let failures = self.metrics.failed_count() + 1;
                if error.is_retryable() {
                    tracing::warn!(error = %error, consecutive_soft_errors = failures, "failed to do run once");
                } else {
                    tracing::error!(error = %error, consecutive_soft_errors = failures, "failed to do run once");
                }
                // The filter problems of the last good run still hold.
                current.extend(
                    reported
                        .iter()
                        .filter(|p| p.message.ends_with("outside every domain filter and zone"))
                        .cloned(),
                );
            }
        }
        // One log line per problem while it lasts, not one per run.
        for problem in current.difference(reported) {
            tracing::warn!(source = problem.source_type, object = %problem.object, "skipping: {}", problem.message);
        }
        *reported = current;
        self.metrics.source_rejected(&invalid, &output.duplicates);
        result
    }
}

impl Controller {
    /// Logs what changed since the last run's [`GeoHealth`] (once per
    /// change, not per run) and sets the geo gauges.
    fn report_geo(&mut self, geo: GeoHealth) {
        let last = self.metrics.geo();
        for (name, region) in geo.withdrawn.difference(&last.withdrawn) {
            tracing::warn!(name = %name, region = %region, "region withdrawn: every endpoint of it fails its health checks");
        }
        for (name, region) in last.withdrawn.difference(&geo.withdrawn) {
            if !geo.fail_open.contains(name) {
                tracing::info!(name = %name, region = %region, "region published again: its endpoints pass their health checks");
            }
        }
        for name in geo.fail_open.difference(&last.fail_open) {
            tracing::error!(name = %name, "every region of this name fails its health checks; publishing all of them (fail open)");
        }
        for name in last.fail_open.difference(&geo.fail_open) {
            tracing::info!(name = %name, "a region of this name passes its health checks again; no longer failing open");
        }
        self.metrics.set_geo(geo);
    }
}

fn source_of(endpoint: &Endpoint) -> &'static str {
    match endpoint.labels.get(crate::endpoint::RESOURCE_LABEL) {
        Some(resource) if resource.starts_with("ingress/") => "ingress",
        _ => "service",
    }
}

/// The next verdict change; pending forever without verdicts or once the
/// follower is gone.
async fn next_verdicts(watch: &mut Option<watch::Receiver<Arc<Verdicts>>>) -> Option<()> {
    match watch {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => {
                receiver.borrow_and_update();
                Some(())
            }
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn next_leadership(watch: &mut Option<watch::Receiver<bool>>) -> Option<bool> {
    match watch {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => Some(*receiver.borrow_and_update()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// A placeholder source after the real one moved into its task.
struct Never;

impl Source<Arc<ClusterObjects>> for Never {
    fn kind(&self) -> &'static str {
        "none"
    }

    fn run(
        self: Box<Self>,
        _sink: signpost_model::Sink<Arc<ClusterObjects>>,
        cancel: CancellationToken,
    ) -> signpost_model::BoxFuture<'static, ()> {
        Box::pin(async move { cancel.cancelled().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::inmemory::InMemory;
    use crate::registry::noop::NoopRegistry;
    use signpost_model::{BoxFuture, Sink};

    /// A source that delivers one state and then waits.
    struct Fixed(Arc<ClusterObjects>);

    impl Source<Arc<ClusterObjects>> for Fixed {
        fn kind(&self) -> &'static str {
            "fixed"
        }

        fn run(
            self: Box<Self>,
            sink: Sink<Arc<ClusterObjects>>,
            cancel: CancellationToken,
        ) -> BoxFuture<'static, ()> {
            Box::pin(async move {
                sink.state(self.0);
                cancel.cancelled().await;
            })
        }
    }

    fn objects() -> Arc<ClusterObjects> {
        let service = serde_json::json!({
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": {"external-dns.kubernetes.io/hostname": "web.example.com"}},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        });
        Arc::new(ClusterObjects {
            services: vec![Arc::new(serde_json::from_value(service).unwrap())],
            ..ClusterObjects::default()
        })
    }

    /// A source whose states the test sends.
    struct Channel(tokio::sync::mpsc::UnboundedReceiver<Arc<ClusterObjects>>);

    impl Source<Arc<ClusterObjects>> for Channel {
        fn kind(&self) -> &'static str {
            "channel"
        }

        fn run(
            mut self: Box<Self>,
            sink: Sink<Arc<ClusterObjects>>,
            cancel: CancellationToken,
        ) -> BoxFuture<'static, ()> {
            Box::pin(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        Some(state) = self.0.recv() => sink.state(state),
                    }
                }
            })
        }
    }

    /// external-dns's scheduling with `--events`: a change brings the next
    /// run to within 5 s, never sooner than --min-event-sync-interval after
    /// the last run started; without events it waits for the interval.
    #[tokio::test(start_paused = true)]
    async fn events_bring_the_next_run_forward() {
        for events in [true, false] {
            let provider = Arc::new(InMemory::new(&[]));
            let metrics = Arc::new(SyncMetrics::default());
            let settings = PlanSettings {
                policy: Policy::Sync,
                domain_filter: DomainFilter::default(),
                managed: ManagedTypes::default(),
                old_owner_id: String::new(),
            };
            let registry = Box::new(NoopRegistry::new(provider.clone()));
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            sender.send(Arc::new(ClusterObjects::default())).unwrap();
            let controller = Controller {
                input: Box::new(Channel(receiver)),
                sources: SourceConfig::default(),
                min_ttl: 0,
                reconciler: Reconciler::new(registry, settings, false, metrics.clone()),
                schedule: Schedule {
                    interval: Duration::from_secs(60),
                    once: false,
                    events,
                    min_event_sync_interval: Duration::from_secs(10),
                },
                leadership: None,
                metrics,
                health: None,
            };
            let cancel = CancellationToken::new();
            let task = tokio::spawn(controller.run(cancel.clone()));
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender.send(objects()).unwrap();
            // The minimum (10 s after the first run) wins over now + 5 s.
            tokio::time::sleep(Duration::from_secs(7)).await;
            assert!(
                provider.snapshot().is_empty(),
                "events={events}: ran before the minimum"
            );
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(
                provider.snapshot().len(),
                usize::from(events),
                "events={events} at 11 s"
            );
            tokio::time::sleep(Duration::from_secs(50)).await;
            assert_eq!(
                provider.snapshot().len(),
                1,
                "events={events}: the interval run"
            );
            cancel.cancel();
            task.await.unwrap().unwrap();
        }
    }

    /// Issue 13 point 6's controller side: a replica writes only while it
    /// leads, and syncs at once when it becomes the leader.
    #[tokio::test(start_paused = true)]
    async fn writes_only_while_leading() {
        let provider = Arc::new(InMemory::new(&[]));
        let metrics = Arc::new(SyncMetrics::default());
        let settings = PlanSettings {
            policy: Policy::Sync,
            domain_filter: DomainFilter::default(),
            managed: ManagedTypes::default(),
            old_owner_id: String::new(),
        };
        let reconciler = Reconciler::new(
            Box::new(NoopRegistry::new(provider.clone())),
            settings,
            false,
            metrics.clone(),
        );
        let leadership = Leadership::new();
        let controller = Controller {
            input: Box::new(Fixed(objects())),
            sources: SourceConfig::default(),
            min_ttl: 0,
            reconciler,
            schedule: Schedule {
                interval: Duration::from_secs(30),
                once: false,
                events: false,
                min_event_sync_interval: Duration::from_secs(5),
            },
            leadership: Some(leadership.clone()),
            metrics,
            health: None,
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(controller.run(cancel.clone()));
        tokio::time::sleep(Duration::from_secs(95)).await;
        assert!(provider.snapshot().is_empty(), "a follower wrote");
        leadership.set(true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            provider.snapshot().len(),
            1,
            "the new leader did not sync at once"
        );
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    /// A verdict change brings the next run to the debounce, not the
    /// interval: the failing region leaves after 1 s, not 60 s.
    #[tokio::test(start_paused = true)]
    async fn a_verdict_change_runs_after_the_debounce() {
        let regional = |name: &str, region: &str, ip: &str| {
            Arc::new(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "namespace": "default", "annotations": {
                        "external-dns.kubernetes.io/hostname": "app.example.com",
                        "dns.aikernel.io/geo-region": region}},
                    "spec": {"type": "LoadBalancer"},
                    "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
                }))
                .unwrap(),
            )
        };
        let slice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app-eu-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "app-eu"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.2.0.1"], "conditions": {"ready": true}}]
        }))
        .unwrap();
        let objects = Arc::new(ClusterObjects {
            services: vec![
                regional("app-us", "us-east-1", "192.0.2.1"),
                regional("app-eu", "eu-west-1", "192.0.2.2"),
            ],
            endpoint_slices: vec![Arc::new(slice)],
            ..ClusterObjects::default()
        });
        let provider = Arc::new(InMemory::new(&[]));
        let metrics = Arc::new(SyncMetrics::default());
        let settings = PlanSettings {
            policy: Policy::Sync,
            domain_filter: DomainFilter::default(),
            managed: ManagedTypes::default(),
            old_owner_id: String::new(),
        };
        let (sender, verdicts) = watch::channel(Arc::new(Verdicts::default()));
        let controller = Controller {
            input: Box::new(Fixed(objects)),
            sources: SourceConfig::default(),
            min_ttl: 0,
            reconciler: Reconciler::new(
                Box::new(NoopRegistry::new(provider.clone())),
                settings,
                false,
                metrics.clone(),
            ),
            schedule: Schedule {
                interval: Duration::from_secs(60),
                once: false,
                events: false,
                min_event_sync_interval: Duration::from_secs(5),
            },
            leadership: None,
            metrics: metrics.clone(),
            health: Some(HealthInput {
                verdicts,
                debounce: Duration::from_secs(1),
            }),
        };
        let targets = || -> Vec<String> {
            provider
                .snapshot()
                .into_iter()
                .flat_map(|e| e.targets)
                .collect()
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(controller.run(cancel.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(targets(), ["192.0.2.1", "192.0.2.2"]);
        sender.send_replace(Arc::new(Verdicts {
            unhealthy: [signpost_model::EndpointKey {
                namespace: "default".to_owned(),
                service: "app-eu".to_owned(),
                address: "10.2.0.1".parse().unwrap(),
            }]
            .into(),
        }));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            targets(),
            ["192.0.2.1", "192.0.2.2"],
            "ran before the debounce"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(targets(), ["192.0.2.1"], "the verdict change did not run");
        assert_eq!(metrics.geo().withdrawn.len(), 1);
        sender.send_replace(Arc::new(Verdicts::default()));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(targets(), ["192.0.2.1", "192.0.2.2"], "not back");
        assert!(metrics.geo().withdrawn.is_empty());
        cancel.cancel();
        task.await.unwrap().unwrap();
    }
}
