//! The single writer of one listener's snapshot.
//!
//! Control plane, on its own thread: loading and compiling a large cluster
//! takes seconds and must not hold a runtime thread that TCP clients need.
//!
//! ```text
//! source tasks ──Sink (Event::Source)──┐
//! verdict bus ───Event::Verdicts───────┴─▶ channel ─▶ Compiler::run ─▶ zone::build ─▶ ArcSwap<Snapshot>
//! ```
//!
//! Sources push: the compiler sleeps on its channel and wakes the moment a
//! source delivers a state or the verdicts change, then drains whatever else
//! arrived meanwhile and builds once.
//!
//! Invariants: a snapshot is built only once every source has delivered a
//! complete state (I1); a source's problems keep its previous state serving
//! and are reported by log and metric (I3).

use crate::checking::HealthLink;
use crate::config::{ListenerConfig, SourcePlan};
use arc_swap::ArcSwap;
use signpost_model::metrics::{Exposition, Kind};
use signpost_model::{AllUnhealthy, ClusterState, SourceProblem, Update, Verdicts};
use signpost_zone::cluster::GeoOptions;
use signpost_zone::{BuildKind, BuildOptions, Builds, Input, Recipe, Snapshot};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What wakes a compiler.
#[derive(Debug)]
pub(crate) enum Event {
    /// Source `index` delivered.
    Source(usize, Update<Input>),
    /// The health checker published new verdicts.
    Verdicts(Arc<Verdicts>),
}

/// How long a replaced snapshot is kept (so this thread, not a query worker,
/// frees it), and how often the thread looks at its cancellation token.
const IDLE_TICK: Duration = Duration::from_millis(250);

/// Control-plane state shown by `/metrics`, shared by every compiler.
#[derive(Debug, Default)]
pub(crate) struct CompilerStatus {
    problems: Mutex<Vec<SourceProblem>>,
    reload_success: AtomicU64,
    reload_failure: AtomicU64,
    generation: AtomicU64,
    records: AtomicU64,
}

/// The single writer of one listener's snapshot.
pub(crate) struct Compiler {
    pub(crate) listener: ListenerConfig,
    /// The listener's sources, in the order they compile.
    pub(crate) plans: Vec<SourcePlan>,
    pub(crate) events: Receiver<Event>,
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) status: Arc<CompilerStatus>,
    /// The generation serving, 0 until the first complete snapshot.
    pub(crate) built: Arc<AtomicU64>,
    pub(crate) health: Option<HealthLink>,
    /// What the admin endpoints read of this listener's builds.
    pub(crate) shown: Arc<Shown>,
}

/// What one listener's compiler shows the admin endpoints: when the serving
/// snapshot was built and the services it was built from. Written once per
/// build, read per admin request; never touched by queries.
#[derive(Debug, Default)]
pub(crate) struct Shown {
    /// Unix time of the serving snapshot's build, milliseconds (0: none yet).
    pub(crate) built_unix_ms: AtomicU64,
    /// The cluster services of the serving snapshot (every cluster source's).
    pub(crate) services: ArcSwap<Vec<Arc<ClusterState>>>,
}

// === impl Compiler ===

impl Compiler {
    /// Sources in the order their records are added: the cluster zone, then
    /// zone files, then hosts files, then etcd (a name two of them hold keeps
    /// the first).
    pub(crate) fn order(mut plans: Vec<SourcePlan>) -> Vec<SourcePlan> {
        plans.sort_by_key(|plan| match plan.recipe {
            Recipe::Cluster(_) => 0,
            Recipe::ZoneFile => 1,
            Recipe::Hosts(_) => 2,
            Recipe::Etcd(_) => 3,
        });
        plans
    }

    /// Builds a snapshot whenever an event changes the inputs, until `cancel` fires.
    pub(crate) fn run(self, cancel: &CancellationToken) {
        let count = self.plans.len();
        let mut states: Vec<Option<Input>> = vec![None; count];
        let mut problems: Vec<Vec<SourceProblem>> = vec![Vec::new(); count];
        let mut verdicts = Arc::new(Verdicts::default());
        let mut generation = 0u64;
        // Nothing to wait for without sources: the first (empty) build serves.
        let mut dirty = true;
        // The snapshot replaced last time, freed here after an idle tick.
        let mut retired: Option<Arc<Snapshot>> = None;
        // What the last build made, so a change renders only what it touches.
        let mut builds = Builds::default();
        while !cancel.is_cancelled() {
            if !dirty || states.iter().any(Option::is_none) {
                match self.events.recv_timeout(IDLE_TICK) {
                    Ok(event) => {
                        let mut problems_changed = false;
                        dirty |= apply(
                            event,
                            &mut states,
                            &mut problems,
                            &mut verdicts,
                            &mut problems_changed,
                            &self.status,
                        );
                        // Whatever else arrived meanwhile goes into the same build.
                        while let Ok(event) = self.events.try_recv() {
                            dirty |= apply(
                                event,
                                &mut states,
                                &mut problems,
                                &mut verdicts,
                                &mut problems_changed,
                                &self.status,
                            );
                        }
                        if problems_changed {
                            self.report(problems.concat());
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        // A quiet moment after a build: free what only the
                        // replaced snapshot held, then hand the pages the
                        // build left free back to the kernel.
                        if let Some(old) = retired.take() {
                            drop(old);
                            crate::memory::release_free_memory();
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            // I1: every source has a complete state.
            dirty = false;
            generation += 1;
            let snapshot = self.build(&mut builds, generation, &states, &verdicts);
            // The replaced snapshot shares most of its names with the new
            // one; what only it holds is freed here after an idle tick.
            retired = Some(self.snapshot.swap(snapshot));
            self.shown.services.store(Arc::new(
                states
                    .iter()
                    .flatten()
                    .filter_map(|state| match state {
                        Input::Cluster(services) => Some(services.clone()),
                        _ => None,
                    })
                    .collect(),
            ));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            self.shown.built_unix_ms.store(now, Ordering::Release);
            self.built.store(generation, Ordering::Release);
            // The snapshot serves: now the bookkeeping for the next change.
            builds.settle();
        }
    }

    fn build(
        &self,
        builds: &mut Builds,
        generation: u64,
        states: &[Option<Input>],
        verdicts: &Arc<Verdicts>,
    ) -> Arc<Snapshot> {
        let started = tokio::time::Instant::now();
        let parts: Vec<(&Recipe, &Input)> = self
            .plans
            .iter()
            .zip(states)
            .filter_map(|(plan, state)| state.as_ref().map(|state| (&plan.recipe, state)))
            .collect();
        let geo = self.listener.geo.as_ref().map(|geo| GeoOptions {
            zones: geo.zones.clone(),
            regions: geo
                .settings
                .regions
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            ttl: geo.settings.ttl,
            serial: 0,
        });
        let all_unhealthy = self
            .health
            .as_ref()
            .map_or(AllUnhealthy::ServeAll, |h| h.all_unhealthy);
        let options = BuildOptions {
            generation,
            geo: geo.as_ref(),
            health: verdicts,
            all_unhealthy,
            serial: signpost_zone::serial_now(),
        };
        let (snapshot, skipped, kind) = builds.build(&parts, &options);
        if let Some(link) = &self.health {
            let services = parts
                .iter()
                .flat_map(|(_, input)| input.services())
                .map(|s| &**s);
            link.targets
                .set(link.slot, signpost_health::health_targets(services));
        }
        for problem in &skipped {
            tracing::warn!(problem = %problem, "record skipped");
        }
        self.status.generation.store(generation, Ordering::Relaxed);
        self.status
            .records
            .store(snapshot.record_count() as u64, Ordering::Relaxed);
        self.status.reload_success.fetch_add(1, Ordering::Relaxed);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match kind {
            BuildKind::Full => tracing::info!(
                generation,
                names = snapshot.name_count(),
                records = snapshot.record_count(),
                elapsed_ms,
                "snapshot serving"
            ),
            // One per change: a busy cluster makes many, so not at info.
            BuildKind::Changes { services } => tracing::debug!(
                generation,
                names = snapshot.name_count(),
                records = snapshot.record_count(),
                services,
                elapsed_ms,
                "snapshot serving"
            ),
        }
        snapshot
    }

    /// Publishes the current problems of this listener's sources (empty when all loaded).
    fn report(&self, problems: Vec<SourceProblem>) {
        for problem in &problems {
            tracing::error!(
                file = %problem.file,
                line = problem.line.unwrap_or(0),
                error = %problem.message,
                "catalog load failed; the previous snapshot keeps serving"
            );
        }
        // Short critical section on the control plane only; never touched by queries.
        *self
            .status
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problems;
    }
}

/// Applies one event; returns true when the inputs of the next build changed.
fn apply(
    event: Event,
    states: &mut [Option<Input>],
    problems: &mut [Vec<SourceProblem>],
    verdicts: &mut Arc<Verdicts>,
    problems_changed: &mut bool,
    status: &CompilerStatus,
) -> bool {
    match event {
        Event::Source(index, Update::State(state)) => {
            states[index] = Some(state);
            *problems_changed |= !problems[index].is_empty();
            problems[index].clear();
            true
        }
        Event::Source(index, Update::Problems(found)) => {
            // I3: this source keeps its previous state; only its problems change.
            if !found.is_empty() {
                status.reload_failure.fetch_add(1, Ordering::Relaxed);
            }
            problems[index] = found;
            *problems_changed = true;
            false
        }
        Event::Verdicts(latest) => {
            let changed = latest.unhealthy != verdicts.unhealthy;
            *verdicts = latest;
            changed
        }
    }
}

// === impl CompilerStatus ===

impl CompilerStatus {
    /// The current problems of every source.
    pub(crate) fn problems(&self) -> Vec<SourceProblem> {
        self.problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The catalog and snapshot families, plus CoreDNS's build info.
    pub(crate) fn render(&self, out: &mut Exposition<'_>) {
        out.family(
            "coredns_build_info",
            Kind::Gauge,
            "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
        );
        out.sample(
            "coredns_build_info",
            &[
                ("version", &env!("CARGO_PKG_VERSION")),
                (
                    "revision",
                    &option_env!("SIGNPOST_REVISION").unwrap_or("unknown"),
                ),
                (
                    "goversion",
                    &concat!("rust-", env!("CARGO_PKG_RUST_VERSION")),
                ),
            ],
            1,
        );
        out.family(
            "signpost_catalog_reloads_total",
            Kind::Counter,
            "Catalog loads by result.",
        );
        out.sample(
            "signpost_catalog_reloads_total",
            &[("result", &"success")],
            self.reload_success.load(Ordering::Relaxed),
        );
        out.sample(
            "signpost_catalog_reloads_total",
            &[("result", &"failure")],
            self.reload_failure.load(Ordering::Relaxed),
        );
        out.family(
            "signpost_catalog_errors",
            Kind::Gauge,
            "Problems in the last failed catalog load, by file and line; empty once a load succeeds.",
        );
        for problem in self
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            out.sample(
                "signpost_catalog_errors",
                &[
                    ("file", &problem.file),
                    ("line", &problem.line.unwrap_or(0)),
                ],
                1,
            );
        }
        out.family(
            "signpost_snapshot_generation",
            Kind::Gauge,
            "Generation of the snapshot serving answers.",
        );
        out.sample(
            "signpost_snapshot_generation",
            &[],
            self.generation.load(Ordering::Relaxed),
        );
        out.family(
            "signpost_snapshot_records",
            Kind::Gauge,
            "Resource records in the snapshot serving answers.",
        );
        out.sample(
            "signpost_snapshot_records",
            &[],
            self.records.load(Ordering::Relaxed),
        );
    }
}
