//! Wiring: listeners, workers, generations, reload and drain.
//!
//! ```text
//! Source tasks ──Sink──▶ compiler thread ──▶ ArcSwap<Snapshot> per listener
//!                                                   │ load() per query
//! UDP worker threads (SO_REUSEPORT) ─┬─▶ Responder::answer
//! TCP connection tasks ──────────────┘
//! admin (signpost-admin) ◀── DnsStatus: ready, metrics, JSON routes
//! ```
//!
//! A [`Server`] separates listeners (sockets and worker threads, which live
//! as long as their addresses are configured) from generations (responder,
//! snapshot, compiler, sources, cache, forwarders: one per configuration). A
//! reload builds new generations beside the running ones, waits for their
//! first complete snapshots, then swaps each listener's `ArcSwap<Responder>`.
//!
//! Invariants: a failed load keeps the previous snapshot serving and is
//! reported by log and metric (I3); `/ready` turns true only after every
//! listener has its first complete snapshot (I4). On SIGTERM or SIGINT the
//! listeners stop, in-flight queries finish, then the process exits.

use crate::answer::{GeoRouting, Responder};
use crate::cache::Cache;
use crate::checking::{Health, HealthLink};
use crate::compiler::{Compiler, CompilerStatus, Event, Shown};
use crate::config::{Config, ConfigErrors, ListenerConfig};
use crate::forward::{ForwardMetrics, Forwarder};
use crate::metrics::{ServerMetrics, Shard};
use crate::recursion::Recursion;
use crate::tcp::{self, TcpLimits};
use crate::udp;
use arc_swap::ArcSwap;
use signpost_model::metrics::{Exposition, Kind};
use signpost_model::status::{
    CacheStatus, EndpointReport, ForwarderStatus, GeoList, HealthSummary, ListenerStatus, Overview,
    RecursionList, RecursionStatus, ReloadStatus, ServiceEndpoint, ServiceList, ServiceStatus,
    SnapshotStatus, SourceProblemStatus, UpstreamStatus,
};
use signpost_model::{
    BoxFuture, ClusterService, Refusal, ServiceKind, Sink, Source, Status, SubscribeVerdicts,
};
use signpost_zone::{Input, Snapshot, SourceSpec, VerdictSpec};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Opens the source a plan names; the binary passes `signpost_discovery::open`.
pub type SourceFactory = Arc<dyn Fn(&SourceSpec) -> Box<dyn Source<Input>> + Send + Sync>;

/// Subscribes to the verdicts `healthcheck { verdicts ... }` names, on the
/// current runtime, until the token is cancelled; the binary passes
/// `signpost_discovery`'s verdict follower.
pub type VerdictFactory =
    Arc<dyn Fn(&VerdictSpec, CancellationToken) -> Arc<dyn SubscribeVerdicts> + Send + Sync>;

/// Process-level settings that are not in the Corefile.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// UDP worker threads per address (default: the number of cores).
    pub workers: usize,
    /// TCP limits.
    pub tcp: TcpLimits,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tcp: TcpLimits::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A socket could not be bound.
    #[error("cannot listen on {protocol} {address}")]
    Bind {
        /// `udp`, `tcp` or `http`.
        protocol: &'static str,
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or a thread could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}

/// The running DNS role: listeners whose answering state a reload replaces.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    cancel: CancellationToken,
    factory: SourceFactory,
    options: RunOptions,
    status: Arc<DnsStatus>,
    health: Option<Health>,
    listeners: Vec<Listener>,
    config: Config,
}

/// What the admin endpoints show of a running `signpost dns`.
pub struct DnsStatus {
    compilers: Arc<CompilerStatus>,
    ready: AtomicBool,
    started_unix: f64,
    /// Shutting down: `/ready` stays false whatever the listeners say.
    lameduck: AtomicBool,
    responders: ArcSwap<Vec<Arc<Responder>>>,
    views: ArcSwap<Vec<ListenerView>>,
    reload: ReloadState,
    servers: ArcSwap<Vec<Arc<ServerMetrics>>>,
    caches: ArcSwap<Vec<Arc<Cache>>>,
    forwards: ArcSwap<Vec<Arc<ForwardMetrics>>>,
    health_metrics: Option<Arc<signpost_health::HealthMetrics>>,
    reports: Option<tokio::sync::mpsc::Sender<signpost_health::ReportRequest>>,
}

/// One listener as the admin endpoints see it.
struct ListenerView {
    bound: Vec<SocketAddr>,
    zones: Vec<String>,
    plugins: Vec<String>,
    responder: Arc<Responder>,
    shown: Arc<Shown>,
}

/// The `reload` directive's state (admin plane only).
#[derive(Default)]
struct ReloadState {
    /// The interval in milliseconds; 0 without a `reload` directive.
    interval_ms: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    // Written by the reload loop, read by admin requests; never on the query path.
    last: std::sync::Mutex<LastReload>,
}

#[derive(Default, Clone)]
struct LastReload {
    success_unix: Option<f64>,
    failure_unix: Option<f64>,
    error: Option<String>,
}

/// What the reload loop remembers between two checks of the Corefile.
#[derive(Debug, Default)]
struct ReloadMemory {
    /// The last Corefile that parsed, applied or rejected: an unchanged one
    /// is not applied (nor rejected) again.
    corefile: Option<signpost_corefile::Corefile>,
    /// The errors of the last Corefile that did not parse, so the same broken
    /// file is reported once, not at every check.
    broken: Option<String>,
}

/// Sockets and workers of one set of addresses; they outlive reloads.
struct Listener {
    addresses: Vec<SocketAddr>,
    /// The addresses as bound (the system's port for a port 0).
    bound: Vec<SocketAddr>,
    current: Arc<ArcSwap<Responder>>,
    generation: Generation,
    shutdown: Arc<AtomicBool>,
    cancel: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What one configuration builds for one listener: the responder with its
/// snapshot, cache and forwarders, and the compiler and sources that feed
/// the snapshot.
struct Generation {
    responder: Arc<Responder>,
    metrics: Arc<ServerMetrics>,
    cache: Option<Arc<Cache>>,
    forward_metrics: Option<Arc<ForwardMetrics>>,
    built: Arc<AtomicU64>,
    shown: Arc<Shown>,
    cancel: CancellationToken,
    compiler: Option<std::thread::JoinHandle<()>>,
}

/// How long a reload waits for the new configuration's first snapshots.
const RELOAD_READY_TIMEOUT: Duration = Duration::from_secs(30);

// === impl Server ===

impl Server {
    /// Starts every listener of `config` and its sources; returns once the
    /// sockets are bound (answers follow each listener's first snapshot).
    pub fn start(
        config: Config,
        factory: SourceFactory,
        options: RunOptions,
    ) -> Result<Self, RunError> {
        Self::start_with_verdicts(config, factory, None, options)
    }

    /// [`Self::start`] for configurations that may follow published
    /// verdicts (`healthcheck { verdicts ... }`), opened with `verdicts`.
    pub fn start_with_verdicts(
        config: Config,
        factory: SourceFactory,
        verdicts: Option<VerdictFactory>,
        options: RunOptions,
    ) -> Result<Self, RunError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("signpost-control")
            .enable_all()
            .build()
            .map_err(RunError::Runtime)?;
        let cancel = CancellationToken::new();
        let listeners = config.listeners.len().max(1);
        let health = match (&config.process.healthcheck, &config.process.verdicts) {
            (None, _) => None,
            (Some((settings, _)), None) => {
                let _guard = runtime.enter();
                Some(Health::start(*settings, listeners, cancel.child_token()))
            }
            (Some(_), Some(spec)) => {
                let open = verdicts.as_ref().ok_or_else(|| {
                    RunError::Runtime(std::io::Error::other(
                        "`healthcheck { verdicts ... }` needs a verdict backend",
                    ))
                })?;
                let _guard = runtime.enter();
                Some(Health::follow(open(spec, cancel.child_token()), listeners))
            }
        };
        let status = Arc::new(DnsStatus {
            compilers: Arc::new(CompilerStatus::default()),
            ready: AtomicBool::new(false),
            started_unix: unix_now(),
            lameduck: AtomicBool::new(false),
            responders: ArcSwap::default(),
            views: ArcSwap::default(),
            reload: ReloadState::default(),
            servers: ArcSwap::default(),
            caches: ArcSwap::default(),
            forwards: ArcSwap::default(),
            health_metrics: health.as_ref().and_then(|h| h.metrics.clone()),
            reports: health.as_ref().and_then(|h| h.reports.clone()),
        });
        let mut server = Self {
            runtime,
            cancel,
            factory,
            options,
            status,
            health,
            listeners: Vec::new(),
            config: config.clone(),
        };
        let generations = server.prepare(&config)?;
        server.commit(generations)?;
        server.set_reload_interval(&config);
        Ok(server)
    }

    /// The addresses the listeners are bound to (a port 0 in the
    /// configuration becomes the port the system chose).
    pub fn local_addresses(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .flat_map(|l| l.bound.iter().copied())
            .collect()
    }

    /// What the admin endpoints serve.
    pub fn status(&self) -> Arc<DnsStatus> {
        self.status.clone()
    }

    /// The control runtime, for tasks that serve beside DNS (admin endpoints).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// A token cancelled when the server shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// Serves until SIGTERM or SIGINT, then drains. With a `reload`
    /// directive, `corefile` is re-read every interval and a changed
    /// configuration is applied without closing the sockets of listeners
    /// that stay.
    pub fn run_until_signal(mut self, corefile: Option<&Path>) {
        let reload = self.config.process.reload.zip(corefile);
        let mut memory = ReloadMemory {
            corefile: reload.as_ref().and_then(|(_, path)| {
                signpost_corefile::parse_file(path, &|name| std::env::var(name).ok()).ok()
            }),
            broken: None,
        };
        loop {
            let wait = reload
                .as_ref()
                .map_or(Duration::from_secs(3600), |(settings, _)| settings.interval);
            let signalled = self.runtime.block_on(async {
                tokio::select! {
                    () = wait_for_signal() => true,
                    () = tokio::time::sleep(wait) => false,
                }
            });
            if signalled {
                if let Some(lameduck) = self.config.process.lameduck {
                    // CoreDNS's lameduck: keep answering, fail /ready, then stop.
                    tracing::info!(duration = ?lameduck, "going into lameduck mode");
                    self.status.ready.store(false, Ordering::Release);
                    self.status.lameduck.store(true, Ordering::Release);
                    std::thread::sleep(lameduck);
                }
                break;
            }
            let Some((_, path)) = &reload else { continue };
            self.reload(path, &mut memory);
        }
        self.shutdown();
    }

    /// Builds a generation per listener of `config`.
    fn prepare(&mut self, config: &Config) -> Result<Vec<(ListenerConfig, Generation)>, RunError> {
        let mut prepared = Vec::new();
        for (index, listener) in config.listeners.iter().enumerate() {
            let generation = self.generation(listener, index)?;
            prepared.push((listener.clone(), generation));
        }
        Ok(prepared)
    }

    fn generation(&self, listener: &ListenerConfig, index: usize) -> Result<Generation, RunError> {
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let server_label = format!(
            "dns://{}",
            listener
                .addresses
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        let zone_labels: Vec<String> = listener.zones.iter().map(ToString::to_string).collect();
        // Keep counting into the same series when the zones did not change.
        let reused = self
            .listeners
            .iter()
            .find(|l| l.addresses == listener.addresses)
            .map(|l| l.generation.metrics.clone())
            .filter(|m| m.zone_labels() == zone_labels.as_slice());
        let (metrics, shards) = match reused {
            Some(metrics) => {
                let shards = metrics.shards().to_vec();
                (metrics, shards)
            }
            None => {
                let mut metrics = ServerMetrics::new(server_label.clone(), zone_labels);
                // One shard per UDP worker, one for TCP, one for forwarded answers.
                let shards: Vec<Arc<Shard>> = (0..self.options.workers + 2)
                    .map(|_| metrics.shard())
                    .collect();
                (Arc::new(metrics), shards)
            }
        };
        let mut responder = Responder::new(
            snapshot.clone(),
            &listener.zones,
            metrics.dropped_zone(),
            listener.log,
        );
        let mut cache = None;
        let mut forward_metrics = None;
        let cancel = self.cancel.child_token();
        if !listener.forward.is_empty() || listener.cache.is_some() {
            let _guard = self.runtime.enter();
            let shared = Arc::new(ForwardMetrics::new(server_label.clone()));
            let forwarders = listener
                .forward
                .iter()
                .map(|config| Forwarder::with_cancellation(config.clone(), shared.clone(), &cancel))
                .collect();
            cache = listener
                .cache
                .clone()
                .map(|config| Arc::new(Cache::new(config, &listener.zones, server_label.clone())));
            forward_metrics = Some(shared);
            let recursion_shard = shards[shards.len() - 1].clone();
            let recursion = Recursion::new(
                forwarders,
                cache.clone(),
                self.runtime.handle().clone(),
                recursion_shard,
            )
            .with_loadbalance(listener.loadbalance);
            responder = responder.with_recursion(Arc::new(recursion));
        }
        let worker_shards = shards[..shards.len() - 1].to_vec();
        if let Some(config) = &listener.geo {
            let geo = signpost_geo::Geo::new(config.settings.clone())
                .map_err(|e| RunError::Runtime(std::io::Error::other(e.to_string())))?;
            let answers = (0..=config.settings.regions.len())
                .map(|_| AtomicU64::new(0))
                .collect();
            let zone = config
                .zones
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            responder = responder.with_geo(Arc::new(GeoRouting { geo, zone, answers }));
        }
        if let Some(zone) = &listener.loop_zone {
            responder =
                responder.with_loop_guard(Arc::new(crate::loopcheck::LoopGuard::new(zone.clone())));
        }
        let responder = Arc::new(
            responder
                .with_loadbalance(listener.loadbalance)
                .with_shards(worker_shards),
        );

        // Sources push into the compiler's channel; each runs as one task.
        let plans = Compiler::order(listener.sources.clone());
        let (events, receiver) = std::sync::mpsc::channel::<Event>();
        for (slot, plan) in plans.iter().enumerate() {
            let source = (self.factory)(&plan.spec);
            let events = events.clone();
            let sink = Sink::new(move |update| {
                let _ = events.send(Event::Source(slot, update));
            });
            self.runtime.spawn(source.run(sink, cancel.child_token()));
        }
        let health = self.health.as_ref().map(|h| {
            let events = events.clone();
            h.bus.subscribe_with(Box::new(move |verdicts| {
                events.send(Event::Verdicts(verdicts)).is_ok()
            }));
            HealthLink {
                targets: h.targets.clone(),
                slot: index,
                all_unhealthy: listener.healthcheck.unwrap_or_default().all_unhealthy,
            }
        });
        drop(events);
        let built = Arc::new(AtomicU64::new(0));
        let shown = Arc::new(Shown::default());
        let compiler = Compiler {
            listener: listener.clone(),
            plans,
            events: receiver,
            snapshot,
            status: self.status.compilers.clone(),
            built: built.clone(),
            health,
            shown: shown.clone(),
        };
        let compiler_cancel = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("compiler".to_owned())
            .spawn(move || compiler.run(&compiler_cancel))
            .map_err(RunError::Runtime)?;
        Ok(Generation {
            responder,
            metrics,
            cache,
            forward_metrics,
            built,
            shown,
            cancel,
            compiler: Some(thread),
        })
    }

    /// Puts prepared generations into service: existing listeners switch to
    /// theirs in one atomic swap (no socket closes, no query is lost), new
    /// addresses are bound, listeners no longer configured stop.
    fn commit(&mut self, prepared: Vec<(ListenerConfig, Generation)>) -> Result<(), RunError> {
        let mut old: Vec<Listener> = std::mem::take(&mut self.listeners);
        let mut views = Vec::new();
        for (config, generation) in prepared {
            views.push((
                config.zones.clone(),
                plugins(&config),
                generation.shown.clone(),
            ));
            if let Some(position) = old.iter().position(|l| l.addresses == config.addresses) {
                let mut listener = old.remove(position);
                listener.current.store(generation.responder.clone());
                let previous = std::mem::replace(&mut listener.generation, generation);
                retire(previous);
                self.listeners.push(listener);
                continue;
            }
            let listener = self.start_listener(&config, generation)?;
            self.listeners.push(listener);
        }
        for listener in old {
            tracing::info!(addresses = ?listener.addresses, "listener removed by reload");
            stop_listener(listener);
        }
        // `loop`: each new generation probes its listener once it serves.
        for listener in &self.listeners {
            if let (Some(guard), Some(&address)) = (
                listener.generation.responder.loop_guard(),
                listener.bound.first(),
            ) {
                self.runtime.spawn(
                    guard
                        .clone()
                        .probe(address, listener.generation.cancel.clone()),
                );
            }
        }
        let status = &self.status;
        status.views.store(Arc::new(
            self.listeners
                .iter()
                .zip(views)
                .map(|(l, (zones, plugins, shown))| ListenerView {
                    bound: l.bound.clone(),
                    zones: zones.iter().map(ToString::to_string).collect(),
                    plugins,
                    responder: l.generation.responder.clone(),
                    shown,
                })
                .collect(),
        ));
        status.servers.store(Arc::new(
            self.listeners
                .iter()
                .map(|l| l.generation.metrics.clone())
                .collect(),
        ));
        status.responders.store(Arc::new(
            self.listeners
                .iter()
                .map(|l| l.generation.responder.clone())
                .collect(),
        ));
        status.caches.store(Arc::new(
            self.listeners
                .iter()
                .filter_map(|l| l.generation.cache.clone())
                .collect(),
        ));
        status.forwards.store(Arc::new(
            self.listeners
                .iter()
                .filter_map(|l| l.generation.forward_metrics.clone())
                .collect(),
        ));
        // I4: ready once every listener serves a complete snapshot.
        let built: Vec<Arc<AtomicU64>> = self
            .listeners
            .iter()
            .map(|l| l.generation.built.clone())
            .collect();
        if !status.ready.load(Ordering::Acquire) {
            let status = self.status.clone();
            std::thread::Builder::new()
                .name("readiness".to_owned())
                .spawn(move || {
                    while !built.iter().all(|b| b.load(Ordering::Acquire) > 0) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    status
                        .ready
                        .store(!status.lameduck.load(Ordering::Acquire), Ordering::Release);
                })
                .map_err(RunError::Runtime)?;
        }
        Ok(())
    }

    fn start_listener(
        &self,
        config: &ListenerConfig,
        generation: Generation,
    ) -> Result<Listener, RunError> {
        let current = Arc::new(ArcSwap::new(generation.responder.clone()));
        let shutdown = Arc::new(AtomicBool::new(false));
        let cancel = self.cancel.child_token();
        let mut threads = Vec::new();
        let mut bound_addresses = Vec::new();
        for &address in &config.addresses {
            let (sockets, bound, tcp_listener) = self.bind_address(address)?;
            bound_addresses.push(bound);
            tracing::info!(udp = %bound, tcp = %bound, workers = sockets.len(), "listening");
            threads.extend(
                udp::spawn_workers(sockets, current.clone(), shutdown.clone())
                    .map_err(RunError::Runtime)?,
            );
            self.runtime.spawn(tcp::serve(
                tcp_listener,
                current.clone(),
                self.options.tcp,
                cancel.clone(),
            ));
        }
        Ok(Listener {
            addresses: config.addresses.clone(),
            bound: bound_addresses,
            current,
            generation,
            shutdown,
            cancel,
            threads,
        })
    }

    /// Binds UDP (one socket per worker) and TCP on one port of `address`.
    /// For port 0 the system picks a port free for UDP, which TCP may still
    /// hold; then the pair is bound again on another port, a few times.
    fn bind_address(
        &self,
        address: SocketAddr,
    ) -> Result<
        (
            Vec<std::net::UdpSocket>,
            SocketAddr,
            tokio::net::TcpListener,
        ),
        RunError,
    > {
        const PORT_ZERO_ATTEMPTS: usize = 8;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sockets = udp::bind_sockets(address, self.options.workers).map_err(|source| {
                RunError::Bind {
                    protocol: "udp",
                    address,
                    source,
                }
            })?;
            let bound = sockets[0].local_addr().map_err(RunError::Runtime)?;
            // A configured port is shared with another replica (UDP and TCP
            // alike); a port the system chose is not.
            match bind_tcp(&self.runtime, bound, "tcp", address.port() != 0) {
                Ok(tcp) => return Ok((sockets, bound, tcp)),
                Err(RunError::Bind { source, .. })
                    if address.port() == 0
                        && attempt < PORT_ZERO_ATTEMPTS
                        && source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    tracing::debug!(udp = %bound, "TCP port taken; choosing another port");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Re-reads the Corefile; when it changed and is valid, prepares the new
    /// generations (waiting for their first snapshots) and commits them. A
    /// broken Corefile or a failed start keeps the running configuration.
    fn reload(&mut self, path: &Path, memory: &mut ReloadMemory) {
        let env = |name: &str| std::env::var(name).ok();
        let parsed = match signpost_corefile::parse_file(path, &env) {
            Ok(parsed) => parsed,
            Err(errors) => {
                // A file that still fails the same way is the same broken
                // file: reported (log line, failure count) once, as CoreDNS's
                // `reload` tries each changed file once.
                let why = ConfigErrors::from(errors).to_string();
                if memory.broken.as_deref() != Some(why.as_str()) {
                    self.reload_failed(&why);
                    memory.broken = Some(why);
                }
                return;
            }
        };
        memory.broken = None;
        if memory.corefile.as_ref() == Some(&parsed) {
            return;
        }
        let config = match Config::from_corefile(&parsed) {
            Ok(config) => config,
            Err(errors) => {
                self.reload_failed(&errors.to_string());
                memory.corefile = Some(parsed);
                return;
            }
        };
        memory.corefile = Some(parsed);
        if config.admin_addresses() != self.config.admin_addresses() {
            tracing::warn!("admin addresses changed; they apply after a restart");
        }
        tracing::info!(file = %path.display(), "Corefile changed; reloading");
        let prepared = match self.prepare(&config) {
            Ok(prepared) => prepared,
            Err(error) => {
                self.reload_failed(&error.to_string());
                return;
            }
        };
        // Wait for every new generation's first snapshot before it serves.
        let deadline = std::time::SystemTime::now() + RELOAD_READY_TIMEOUT;
        while !prepared
            .iter()
            .all(|(_, g)| g.built.load(Ordering::Acquire) > 0)
        {
            if std::time::SystemTime::now() > deadline {
                for (_, generation) in prepared {
                    retire(generation);
                }
                self.reload_failed("the new configuration's sources did not load in time");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        match self.commit(prepared) {
            Ok(()) => {
                self.set_reload_interval(&config);
                self.config = config;
                self.status.reload.successes.fetch_add(1, Ordering::Relaxed);
                self.status.reload.lock().success_unix = Some(unix_now());
                tracing::info!("reload complete");
            }
            Err(error) => self.reload_failed(&error.to_string()),
        }
    }

    fn reload_failed(&self, why: &str) {
        self.status.reload.failures.fetch_add(1, Ordering::Relaxed);
        {
            let mut last = self.status.reload.lock();
            last.failure_unix = Some(unix_now());
            last.error = Some(why.to_owned());
        }
        tracing::error!(error = %why, "reload failed; the running configuration stays");
    }

    fn set_reload_interval(&self, config: &Config) {
        let ms = config.process.reload.map_or(0, |r| {
            u64::try_from(r.interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1)
        });
        self.status.reload.interval_ms.store(ms, Ordering::Relaxed);
    }

    /// Stops accepting, lets in-flight queries finish, and stops every task.
    pub fn shutdown(self) {
        tracing::info!("shutting down: draining in-flight queries");
        self.cancel.cancel();
        for listener in self.listeners {
            stop_listener(listener);
        }
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        tracing::info!("stopped");
    }
}

/// The plugins that shape a listener's answers beyond authoritative data.
fn plugins(config: &ListenerConfig) -> Vec<String> {
    let mut plugins = Vec::new();
    let mut add = |on: bool, name: &str| {
        if on {
            plugins.push(name.to_owned());
        }
    };
    add(config.cache.is_some(), "cache");
    add(!config.forward.is_empty(), "forward");
    add(config.geo.is_some(), "geo");
    add(config.healthcheck.is_some(), "healthcheck");
    add(config.loadbalance, "loadbalance");
    add(config.log, "log");
    plugins
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Stops a generation that no longer serves: its compiler, sources and forwarders.
fn retire(mut generation: Generation) {
    generation.cancel.cancel();
    if let Some(thread) = generation.compiler.take() {
        let _ = thread.join();
    }
}

fn stop_listener(listener: Listener) {
    listener.cancel.cancel();
    listener.shutdown.store(true, Ordering::Relaxed);
    for thread in listener.threads {
        let _ = thread.join();
    }
    retire(listener.generation);
}

/// Binds a TCP listener with `SO_REUSEADDR` (IPv6 sockets v6-only); with
/// `reuse_port` also `SO_REUSEPORT`, so a second replica started on the same
/// configured port shares it (the kernel spreads new connections between
/// them) and carries the load alone when the first one dies, as the UDP
/// sockets already do. Port 0 never asks for it: two servers of one user
/// could then be handed one port and share it without an error.
pub fn bind_tcp(
    runtime: &tokio::runtime::Runtime,
    address: SocketAddr,
    protocol: &'static str,
    reuse_port: bool,
) -> Result<tokio::net::TcpListener, RunError> {
    let bind = || -> std::io::Result<tokio::net::TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        if address.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&address.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(socket.into())
    };
    bind().map_err(|source| RunError::Bind {
        protocol,
        address,
        source,
    })
}

#[cfg(test)]
mod tests;

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

// === impl DnsStatus ===

impl Status for DnsStatus {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn render_metrics(&self, out: &mut String) {
        crate::metrics::render(&self.servers.load(), out);
        self.compilers.render(&mut Exposition::new(out));
        let mut exposition = Exposition::new(out);
        exposition.family(
            "coredns_reload_failed_total",
            Kind::Counter,
            "Counter of the number of failed reload attempts.",
        );
        exposition.sample(
            "coredns_reload_failed_total",
            &[],
            self.reload.failures.load(Ordering::Relaxed),
        );
        let caches = self.caches.load();
        if !caches.is_empty() {
            crate::cache::render_all(caches.iter().map(|c| c.metrics()), out);
        }
        let forwards = self.forwards.load();
        if !forwards.is_empty() {
            crate::forward::render_all(&forwards, out);
        }
        if let Some(health_metrics) = &self.health_metrics {
            health_metrics.render(out);
        }
        crate::geoapi::render_metrics(&self.responders.load(), out);
    }

    fn overview(&self) -> Overview {
        let now = unix_now();
        let listeners = self
            .views
            .load()
            .iter()
            .map(|view| {
                let snapshot = view.responder.snapshot.load();
                let built_ms = view.shown.built_unix_ms.load(Ordering::Acquire);
                #[allow(clippy::cast_precision_loss)]
                let built_unix = built_ms as f64 / 1000.0;
                ListenerStatus {
                    addresses: view.bound.iter().map(ToString::to_string).collect(),
                    zones: view.zones.clone(),
                    snapshot: (built_ms > 0).then(|| SnapshotStatus {
                        generation: snapshot.generation(),
                        built_unix,
                        age_seconds: (now - built_unix).max(0.0),
                        names: snapshot.name_count() as u64,
                        records: snapshot.record_count() as u64,
                    }),
                    plugins: view.plugins.clone(),
                }
            })
            .collect();
        let interval_ms = self.reload.interval_ms.load(Ordering::Relaxed);
        let reload = (interval_ms > 0).then(|| {
            let last = self.reload.lock().clone();
            #[allow(clippy::cast_precision_loss)]
            let interval_seconds = interval_ms as f64 / 1000.0;
            ReloadStatus {
                interval_seconds,
                successes: self.reload.successes.load(Ordering::Relaxed),
                failures: self.reload.failures.load(Ordering::Relaxed),
                last_success_unix: last.success_unix,
                last_failure_unix: last.failure_unix,
                last_error: last.error,
            }
        });
        let problems = self
            .compilers
            .problems()
            .into_iter()
            .map(|p| SourceProblemStatus {
                file: p.file,
                line: p.line,
                message: p.message,
            })
            .collect();
        let health = self.health_metrics.as_ref().map(|metrics| {
            let (serving, unhealthy) = metrics.counts();
            HealthSummary {
                endpoints: serving + unhealthy,
                serving,
                unhealthy,
            }
        });
        Overview {
            role: "dns".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ready: self.ready(),
            started_unix: self.started_unix,
            listeners,
            reload,
            problems,
            health,
            sync: None,
            publisher: None,
        }
    }

    fn services(&self) -> BoxFuture<'_, ServiceList> {
        Box::pin(async move {
            let reports = self.endpoint_reports().await.unwrap_or_default();
            let mut services: Vec<ServiceStatus> = Vec::new();
            for view in self.views.load().iter() {
                for state in view.shown.services.load().iter() {
                    for service in &state.services {
                        let known = services
                            .iter()
                            .any(|s| s.namespace == service.namespace && s.name == service.name);
                        if !known {
                            services.push(service_status(service, &reports));
                        }
                    }
                }
            }
            services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            ServiceList { services }
        })
    }

    fn endpoints(&self) -> BoxFuture<'_, Option<Vec<EndpointReport>>> {
        Box::pin(self.endpoint_reports())
    }

    fn geo(&self) -> GeoList {
        crate::geoapi::list(&self.responders.load())
    }

    fn explain(
        &self,
        name: &str,
        client: &str,
    ) -> Result<signpost_model::status::Explanation, Refusal> {
        crate::geoapi::explain(&self.responders.load(), name, client)
    }

    fn recursion(&self) -> RecursionList {
        let mut listeners = Vec::new();
        for view in self.views.load().iter() {
            let Some(recursion) = view.responder.recursion() else {
                continue;
            };
            let cache = recursion.cache().map(|cache| {
                let (hits, misses, served_stale) = cache.metrics().summary();
                CacheStatus {
                    entries: cache.len() as u64,
                    success_capacity: cache.config().success.capacity as u64,
                    denial_capacity: cache.config().denial.capacity as u64,
                    hits,
                    misses,
                    served_stale,
                }
            });
            let forwarders = recursion
                .forwarders()
                .iter()
                .map(|forwarder| ForwarderStatus {
                    from: forwarder.config().from.to_string(),
                    upstreams: forwarder
                        .config()
                        .upstreams
                        .iter()
                        .map(|&upstream| UpstreamStatus {
                            address: upstream.to_string(),
                            down: forwarder.is_down(upstream).unwrap_or(false),
                        })
                        .collect(),
                })
                .collect();
            listeners.push(RecursionStatus {
                server: format!(
                    "dns://{}",
                    view.bound
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
                cache,
                forwarders,
            });
        }
        RecursionList { listeners }
    }
}

impl DnsStatus {
    /// Every checked endpoint, or `None` without a `healthcheck` plugin.
    async fn endpoint_reports(&self) -> Option<Vec<EndpointReport>> {
        let requests = self.reports.as_ref()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        requests.send(reply).await.ok()?;
        answer.await.ok()
    }
}

/// A cluster service with its endpoints and their health reports.
fn service_status(service: &ClusterService, reports: &[EndpointReport]) -> ServiceStatus {
    let (kind, addresses) = match &service.kind {
        ServiceKind::ClusterIp(ips) => {
            ("cluster_ip", ips.iter().map(ToString::to_string).collect())
        }
        ServiceKind::Headless => ("headless", Vec::new()),
        ServiceKind::ExternalName(name) => ("external_name", vec![name.clone()]),
    };
    let ports = service
        .ports
        .iter()
        .map(|p| {
            let protocol = match p.protocol {
                signpost_model::Protocol::Tcp => "tcp",
                signpost_model::Protocol::Udp => "udp",
                signpost_model::Protocol::Sctp => "sctp",
            };
            format!("{}/{}/{protocol}", p.name, p.port)
        })
        .collect();
    let mut endpoints = Vec::new();
    for endpoint in &service.endpoints {
        for address in &endpoint.addresses {
            let text = address.to_string();
            let health = reports
                .iter()
                .find(|r| {
                    r.namespace == service.namespace
                        && r.service == service.name
                        && r.address == text
                })
                .cloned();
            let healthy = health.as_ref().is_none_or(|h| h.state != "unhealthy");
            endpoints.push(ServiceEndpoint {
                address: text,
                hostname: endpoint.hostname.clone(),
                ready: endpoint.ready,
                serving: (endpoint.ready || service.publish_not_ready) && healthy,
                health,
            });
        }
    }
    ServiceStatus {
        namespace: service.namespace.clone(),
        name: service.name.clone(),
        kind: kind.to_owned(),
        addresses,
        ports,
        region: service.geo.as_ref().map(|g| g.region.clone()),
        endpoints,
    }
}

// === impl ReloadState ===

impl ReloadState {
    fn lock(&self) -> std::sync::MutexGuard<'_, LastReload> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
