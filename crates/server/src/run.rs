//! Wiring: listeners, workers, the snapshot compiler, admin endpoints, drain.
//!
//! ```text
//! ClusterSource::poll ──(every poll interval)──▶ compiler thread ──▶ ArcSwap<Snapshot> per listener
//!                                                                         │ load() per query
//! UDP worker threads (SO_REUSEPORT) ─┬─▶ Responder::answer ◀──────────────┘
//! TCP connection tasks ──────────────┘
//! admin tasks: /health /ready /metrics
//! ```
//!
//! Invariants: a failed load keeps the previous snapshot serving and is
//! reported by log and metric (I3); `/ready` turns true only after every
//! listener has its first complete snapshot (I4). On SIGTERM or SIGINT the
//! listeners stop, in-flight queries finish, then the process exits.

use crate::admin::{self, AdminState};
use crate::answer::GeoRouting;
use crate::answer::Responder;
use crate::cache::Cache;
use crate::config::{
    Config, ConfigErrors, GeoConfig, HealthcheckConfig, HostsConfig, KubernetesConfig,
    ListenerConfig,
};
use crate::forward::{ForwardMetrics, Forwarder};
use crate::metrics::Shard;
use crate::metrics::{self, ServerMetrics};
use crate::recursion::Recursion;
use crate::tcp::{self, TcpLimits};
use crate::udp;
use arc_swap::ArcSwap;
use signpost_health::checker::{self, CheckerParts, ReportRequest, Target};
use signpost_health::{
    CheckKind, EndpointKey, HealthMetrics, LocalVerdicts, Prober, SubscribeVerdicts, Verdicts,
};
use signpost_proto::Name;
use signpost_zone::cluster::{self, ClusterOptions, ClusterService};
use signpost_zone::cluster::{AllUnhealthy, CheckProtocol, EndpointHealth};
use signpost_zone::zonefile::{ZoneFile, load_zone_file};
use signpost_zone::{Snapshot, SnapshotBuilder};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// A source of cluster services: the catalog today, the API server later.
pub trait ClusterSource: Send {
    /// Returns the full new state when it changed since the last call, and
    /// `None` when nothing changed. Errors leave the previous state serving.
    fn poll(&mut self) -> Option<Result<Vec<ClusterService>, Vec<SourceProblem>>>;
}

/// Makes the source for one `kubernetes` plugin.
pub type SourceFactory = Arc<dyn Fn(&KubernetesConfig) -> Box<dyn ClusterSource> + Send + Sync>;

/// A problem in a source's input, such as a bad catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The file.
    pub file: String,
    /// The line, when known.
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
}

/// Process-level settings that are not in the Corefile.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// UDP worker threads per address (default: the number of cores).
    pub workers: usize,
    /// TCP limits.
    pub tcp: TcpLimits,
    /// How often sources are polled for changes.
    pub poll_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tcp: TcpLimits::default(),
            poll_interval: Duration::from_millis(250),
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

/// Control-plane state shown by `/metrics`.
#[derive(Debug, Default)]
struct CatalogStatus {
    problems: Mutex<Vec<SourceProblem>>,
    reload_success: AtomicU64,
    reload_failure: AtomicU64,
    generation: AtomicU64,
    records: AtomicU64,
}

/// Runs until SIGTERM or SIGINT. With a `reload` directive, `corefile` is
/// re-read every interval and a changed configuration is applied without
/// closing the sockets of listeners that stay.
pub fn run(
    config: Config,
    factory: SourceFactory,
    options: RunOptions,
    corefile: Option<PathBuf>,
) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signpost-control")
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let cancel = CancellationToken::new();
    let health = config
        .listeners
        .iter()
        .find_map(|l| l.healthcheck)
        .map(|settings| {
            let _guard = runtime.enter();
            Health::start(
                settings,
                config.listeners.len().max(1),
                cancel.child_token(),
            )
        });
    let mut server = Server {
        runtime,
        cancel,
        factory,
        options,
        status: Arc::new(CatalogStatus::default()),
        ready: Arc::new(AtomicBool::new(false)),
        registry: Arc::new(Registry::default()),
        health,
        listeners: Vec::new(),
        config: config.clone(),
    };
    let generations = server.prepare(&config)?;
    server.commit(generations)?;
    server.start_admin(&config)?;

    let reload = config.reload.zip(corefile);
    let mut last_corefile = reload.as_ref().and_then(|(_, path)| {
        signpost_corefile::parse_file(path, &|name| std::env::var(name).ok()).ok()
    });
    loop {
        let wait = reload
            .as_ref()
            .map_or(Duration::from_secs(3600), |(settings, _)| settings.interval);
        let signalled = server.runtime.block_on(async {
            tokio::select! {
                () = wait_for_signal() => true,
                () = tokio::time::sleep(wait) => false,
            }
        });
        if signalled {
            break;
        }
        let Some((_, path)) = &reload else { continue };
        server.reload(path, &mut last_corefile);
    }
    server.shutdown();
    Ok(())
}

/// Everything the admin plane renders, replaced on reload.
#[derive(Debug, Default)]
struct Registry {
    responders: ArcSwap<Vec<Arc<Responder>>>,
    servers: ArcSwap<Vec<Arc<ServerMetrics>>>,
    caches: ArcSwap<Vec<Arc<Cache>>>,
    forwards: ArcSwap<Vec<Arc<ForwardMetrics>>>,
    reload_failures: AtomicU64,
}

/// The running server: listeners whose answering state a reload replaces.
struct Server {
    runtime: tokio::runtime::Runtime,
    cancel: CancellationToken,
    factory: SourceFactory,
    options: RunOptions,
    status: Arc<CatalogStatus>,
    ready: Arc<AtomicBool>,
    registry: Arc<Registry>,
    health: Option<Health>,
    listeners: Vec<Listener>,
    config: Config,
}

/// Sockets and workers of one set of addresses; they outlive reloads.
struct Listener {
    addresses: Vec<SocketAddr>,
    current: Arc<ArcSwap<Responder>>,
    generation: Generation,
    shutdown: Arc<AtomicBool>,
    cancel: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What one configuration builds for one listener: the responder with its
/// snapshot, cache and forwarders, and the compiler that feeds the snapshot.
struct Generation {
    responder: Arc<Responder>,
    metrics: Arc<ServerMetrics>,
    cache: Option<Arc<Cache>>,
    forward_metrics: Option<Arc<ForwardMetrics>>,
    built: Arc<AtomicU64>,
    cancel: CancellationToken,
    compiler: Option<std::thread::JoinHandle<()>>,
}

// === impl Server ===

impl Server {
    /// Builds a generation per listener of `config` and waits until each
    /// serves its first complete snapshot.
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
        let responder = Arc::new(
            responder
                .with_loadbalance(listener.loadbalance)
                .with_shards(worker_shards),
        );

        let mut sources: Vec<Box<dyn PollSource>> = listener
            .kubernetes
            .iter()
            .map(|k| Box::new(ClusterAdapter((self.factory)(k))) as Box<dyn PollSource>)
            .collect();
        for hosts in &listener.hosts {
            sources.push(Box::new(HostsSource {
                config: hosts.clone(),
                next_check: None,
                seen: None,
            }));
        }
        for file in &listener.files {
            for zone in &file.zones {
                sources.push(Box::new(FileZoneSource {
                    path: file.path.clone(),
                    apex: zone.clone(),
                    reload: file.reload,
                    next_check: None,
                    serial: None,
                }));
            }
        }
        let health = self.health.as_ref().map(|h| HealthLink {
            verdicts: h.bus.subscribe(),
            targets: h.targets.clone(),
            slot: index,
            all_unhealthy: listener.healthcheck.unwrap_or_default().all_unhealthy,
        });
        let built = Arc::new(AtomicU64::new(0));
        let compiler = Compiler {
            listener: listener.clone(),
            sources,
            snapshot,
            status: self.status.clone(),
            built: built.clone(),
            poll_interval: self.options.poll_interval,
            health,
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
            cancel,
            compiler: Some(thread),
        })
    }

    /// Puts prepared generations into service: existing listeners switch to
    /// theirs in one atomic swap (no socket closes, no query is lost), new
    /// addresses are bound, listeners no longer configured stop.
    fn commit(&mut self, prepared: Vec<(ListenerConfig, Generation)>) -> Result<(), RunError> {
        let mut old: Vec<Listener> = std::mem::take(&mut self.listeners);
        for (config, generation) in prepared {
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
        self.registry.servers.store(Arc::new(
            self.listeners
                .iter()
                .map(|l| l.generation.metrics.clone())
                .collect(),
        ));
        self.registry.responders.store(Arc::new(
            self.listeners
                .iter()
                .map(|l| l.generation.responder.clone())
                .collect(),
        ));
        self.registry.caches.store(Arc::new(
            self.listeners
                .iter()
                .filter_map(|l| l.generation.cache.clone())
                .collect(),
        ));
        self.registry.forwards.store(Arc::new(
            self.listeners
                .iter()
                .filter_map(|l| l.generation.forward_metrics.clone())
                .collect(),
        ));
        // I4: ready once every listener serves a complete snapshot.
        let ready = Arc::new(
            self.listeners
                .iter()
                .map(|l| l.generation.built.clone())
                .collect::<Vec<_>>(),
        );
        let flag = self.ready.clone();
        if !flag.load(Ordering::Acquire) {
            std::thread::Builder::new()
                .name("readiness".to_owned())
                .spawn(move || {
                    while !ready.iter().all(|b| b.load(Ordering::Acquire) > 0) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    flag.store(true, Ordering::Release);
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
        for &address in &config.addresses {
            let sockets = udp::bind_sockets(address, self.options.workers).map_err(|source| {
                RunError::Bind {
                    protocol: "udp",
                    address,
                    source,
                }
            })?;
            let bound = sockets[0].local_addr().map_err(RunError::Runtime)?;
            let tcp_listener = bind_tcp(&self.runtime, bound)?;
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
            current,
            generation,
            shutdown,
            cancel,
            threads,
        })
    }

    fn start_admin(&self, config: &Config) -> Result<(), RunError> {
        let registry = self.registry.clone();
        let status = self.status.clone();
        let health_metrics = self.health.as_ref().map(|h| h.metrics.clone());
        let responders = self.registry.clone();
        let state = AdminState {
            routes: Some(Arc::new(move |target: &str| {
                crate::geoapi::route(&responders.responders.load(), target)
            })),
            ready: self.ready.clone(),
            endpoints: self.health.as_ref().map(|h| h.reports.clone()),
            metrics: Arc::new(move |out: &mut String| {
                metrics::render(&registry.servers.load(), out);
                render_control_metrics(&status, out);
                metrics::header(
                    out,
                    "coredns_reload_failed_total",
                    "counter",
                    "Counter of the number of failed reload attempts.",
                );
                let _ = writeln!(
                    out,
                    "coredns_reload_failed_total {}",
                    registry.reload_failures.load(Ordering::Relaxed)
                );
                let caches = registry.caches.load();
                if !caches.is_empty() {
                    crate::cache::render_all(caches.iter().map(|c| c.metrics()), out);
                }
                let forwards = registry.forwards.load();
                if !forwards.is_empty() {
                    crate::forward::render_all(&forwards, out);
                }
                if let Some(health_metrics) = &health_metrics {
                    health_metrics.render(out);
                }
                crate::geoapi::render_metrics(&registry.responders.load(), out);
            }),
        };
        let mut addresses: Vec<SocketAddr> = Vec::new();
        for address in config
            .health
            .iter()
            .chain(&config.ready)
            .chain(&config.prometheus)
        {
            if !addresses.contains(address) {
                addresses.push(*address);
            }
        }
        for address in addresses {
            let listener = bind_tcp(&self.runtime, address).map_err(|e| match e {
                RunError::Bind {
                    address, source, ..
                } => RunError::Bind {
                    protocol: "http",
                    address,
                    source,
                },
                other => other,
            })?;
            let bound = listener.local_addr().map_err(RunError::Runtime)?;
            tracing::info!(http = %bound, "admin endpoints listening");
            self.runtime.spawn(admin::serve(
                listener,
                state.clone(),
                self.cancel.child_token(),
            ));
        }
        Ok(())
    }

    /// Re-reads the Corefile; when it changed and is valid, prepares the new
    /// generations (waiting for their first snapshots) and commits them. A
    /// broken Corefile or a failed start keeps the running configuration.
    fn reload(&mut self, path: &Path, last: &mut Option<signpost_corefile::Corefile>) {
        let env = |name: &str| std::env::var(name).ok();
        let parsed = match signpost_corefile::parse_file(path, &env) {
            Ok(parsed) => parsed,
            Err(errors) => {
                self.reload_failed(&ConfigErrors::from(errors).to_string());
                return;
            }
        };
        if last.as_ref() == Some(&parsed) {
            return;
        }
        let config = match Config::from_corefile(&parsed) {
            Ok(config) => config,
            Err(errors) => {
                self.reload_failed(&errors.to_string());
                *last = Some(parsed);
                return;
            }
        };
        *last = Some(parsed);
        if config.health != self.config.health
            || config.ready != self.config.ready
            || config.prometheus != self.config.prometheus
        {
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
                self.config = config;
                tracing::info!("reload complete");
            }
            Err(error) => self.reload_failed(&error.to_string()),
        }
    }

    fn reload_failed(&self, why: &str) {
        self.registry
            .reload_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %why, "reload failed; the running configuration stays");
    }

    fn shutdown(self) {
        tracing::info!("shutting down: draining in-flight queries");
        self.cancel.cancel();
        for listener in self.listeners {
            stop_listener(listener);
        }
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        tracing::info!("stopped");
    }
}

/// How long a reload waits for the new configuration's first snapshots.
const RELOAD_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Stops a generation that no longer serves: its compiler and forwarders.
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

fn bind_tcp(
    runtime: &tokio::runtime::Runtime,
    address: SocketAddr,
) -> Result<tokio::net::TcpListener, RunError> {
    let bind = || -> std::io::Result<tokio::net::TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
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
        protocol: "tcp",
        address,
        source,
    })
}

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

/// The single writer of one listener's snapshot.
struct Compiler {
    listener: ListenerConfig,
    sources: Vec<Box<dyn PollSource>>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    status: Arc<CatalogStatus>,
    /// The generation serving, 0 until the first complete snapshot.
    built: Arc<AtomicU64>,
    poll_interval: Duration,
    health: Option<HealthLink>,
}

/// The process's health checker and the channels around it.
struct Health {
    bus: Arc<LocalVerdicts>,
    targets: Arc<TargetBoard>,
    reports: tokio::sync::mpsc::Sender<ReportRequest>,
    metrics: Arc<HealthMetrics>,
}

impl Health {
    /// Starts the checker on the current runtime.
    fn start(settings: HealthcheckConfig, listeners: usize, cancel: CancellationToken) -> Self {
        let bus = Arc::new(LocalVerdicts::default());
        let metrics = Arc::new(HealthMetrics::default());
        let (sender, targets) = tokio::sync::watch::channel(Arc::new(Vec::new()));
        let (reports, report_requests) = tokio::sync::mpsc::channel(8);
        let parts = CheckerParts {
            policy: settings.policy,
            options: settings.options,
            probe: Arc::new(Prober::new()),
            publisher: bus.clone(),
            metrics: metrics.clone(),
        };
        checker::spawn(parts, targets, report_requests, cancel);
        let board = TargetBoard {
            slots: Mutex::new((0..listeners).map(|_| Arc::new(Vec::new())).collect()),
            sender,
        };
        Self {
            bus,
            targets: Arc::new(board),
            reports,
            metrics,
        }
    }
}

/// Every listener's health targets; the checker sees their union.
struct TargetBoard {
    // Control plane only: compilers write their slot after a build.
    slots: Mutex<Vec<Arc<Vec<Target>>>>,
    sender: tokio::sync::watch::Sender<Arc<Vec<Target>>>,
}

impl TargetBoard {
    fn set(&self, slot: usize, targets: Vec<Target>) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slots[slot].as_slice() == targets.as_slice() {
            return;
        }
        slots[slot] = Arc::new(targets);
        let mut union: Vec<Target> = slots.iter().flat_map(|s| s.iter().cloned()).collect();
        union.sort_by(|a, b| a.key.cmp(&b.key));
        union.dedup_by(|a, b| a.key == b.key);
        self.sender.send_replace(Arc::new(union));
    }
}

/// A compiler's connection to the health checker.
struct HealthLink {
    verdicts: std::sync::mpsc::Receiver<Arc<Verdicts>>,
    targets: Arc<TargetBoard>,
    slot: usize,
    all_unhealthy: AllUnhealthy,
}

/// Verdicts seen through the cluster zone's interface.
struct VerdictView<'a>(&'a Verdicts);

impl EndpointHealth for VerdictView<'_> {
    fn is_unhealthy(&self, namespace: &str, service: &str, address: IpAddr) -> bool {
        !self.0.unhealthy.is_empty()
            && self.0.unhealthy.contains(&EndpointKey {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                address,
            })
    }
}

/// The endpoints to check: every served address of every annotated service.
fn health_targets(services: &[Arc<Vec<ClusterService>>]) -> Vec<Target> {
    let mut targets = Vec::new();
    for service in services.iter().flat_map(|s| s.iter()) {
        let Some(check) = &service.health_check else {
            continue;
        };
        let kind = match check.protocol {
            CheckProtocol::Http => CheckKind::Http,
            CheckProtocol::Https => CheckKind::Https,
            CheckProtocol::Tcp => CheckKind::Tcp,
        };
        for endpoint in service
            .endpoints
            .iter()
            .filter(|e| e.ready || service.publish_not_ready)
        {
            for &address in &endpoint.addresses {
                targets.push(Target {
                    key: EndpointKey {
                        namespace: service.namespace.clone(),
                        service: service.name.clone(),
                        address,
                    },
                    kind: kind.clone(),
                    port: check.port,
                    path: check.path.clone(),
                });
            }
        }
    }
    targets
}

// === impl Compiler ===

impl Compiler {
    /// Polls the sources and swaps in new snapshots until `cancel` fires. Runs
    /// on its own thread: loading and compiling a large catalog takes seconds
    /// and must not hold a runtime thread that TCP clients need.
    fn run(mut self, cancel: &CancellationToken) {
        let mut states: Vec<Option<SourceState>> = vec![None; self.sources.len()];
        let mut problems: Vec<Vec<SourceProblem>> = vec![Vec::new(); self.sources.len()];
        let mut generation = 0u64;
        let mut dirty = true;
        // The snapshot replaced last time. Holding it one more poll interval
        // makes this thread, not a query worker, the one that frees it.
        let mut retired: Option<Arc<Snapshot>> = None;
        let mut verdicts = Arc::new(Verdicts::default());
        while !cancel.is_cancelled() {
            let mut problems_changed = false;
            for (index, source) in self.sources.iter_mut().enumerate() {
                match source.poll() {
                    None => {}
                    Some(Ok(state)) => {
                        states[index] = Some(state);
                        problems_changed |= !problems[index].is_empty();
                        problems[index].clear();
                        dirty = true;
                    }
                    Some(Err(found)) => {
                        // I3: this source keeps its previous state; only its problems change.
                        problems[index] = found;
                        problems_changed = true;
                        self.status.reload_failure.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if problems_changed {
                self.report(problems.concat());
            }
            // I1: build only from complete states of every source.
            if !dirty || states.iter().any(Option::is_none) {
                drop(retired.take());
                dirty |= self.wait(&mut verdicts);
                continue;
            }
            dirty = false;
            generation += 1;
            let inputs: Vec<Arc<Vec<ClusterService>>> = states
                .iter()
                .flatten()
                .filter_map(|s| match s {
                    SourceState::Cluster(services) => Some(services.clone()),
                    SourceState::Zone(_) | SourceState::Hosts(_) => None,
                })
                .collect();
            let zone_files: Vec<Arc<ZoneFile>> = states
                .iter()
                .flatten()
                .filter_map(|s| match s {
                    SourceState::Zone(zone) => Some(zone.clone()),
                    SourceState::Cluster(_) | SourceState::Hosts(_) => None,
                })
                .collect();
            let hosts: Vec<Arc<HostsData>> = states
                .iter()
                .flatten()
                .filter_map(|s| match s {
                    SourceState::Hosts(hosts) => Some(hosts.clone()),
                    SourceState::Cluster(_) | SourceState::Zone(_) => None,
                })
                .collect();
            let plugins = self.listener.kubernetes.clone();
            let all_unhealthy = self
                .health
                .as_ref()
                .map_or(AllUnhealthy::ServeAll, |h| h.all_unhealthy);
            let sources = BuildInputs {
                plugins: &plugins,
                inputs: &inputs,
                zone_files: &zone_files,
                hosts: &hosts,
                geo: self.listener.geo.as_ref(),
            };
            let (snapshot, skipped) =
                build_snapshot(generation, &sources, &VerdictView(&verdicts), all_unhealthy);
            if let Some(link) = &self.health {
                link.targets.set(link.slot, health_targets(&inputs));
            }
            for problem in &skipped {
                tracing::warn!(problem = %problem, "record skipped");
            }
            self.status.generation.store(generation, Ordering::Relaxed);
            self.status
                .records
                .store(snapshot.record_count() as u64, Ordering::Relaxed);
            self.status.reload_success.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                generation,
                names = snapshot.name_count(),
                records = snapshot.record_count(),
                "snapshot serving"
            );
            retired = Some(self.snapshot.swap(Arc::new(snapshot)));
            self.built.store(generation, Ordering::Release);
        }
    }

    /// Waits one poll interval, or less when new verdicts arrive (they must
    /// reach answers within 100 ms). Returns true when verdicts changed.
    fn wait(&self, verdicts: &mut Arc<Verdicts>) -> bool {
        let Some(link) = &self.health else {
            std::thread::sleep(self.poll_interval);
            return false;
        };
        match link.verdicts.recv_timeout(self.poll_interval) {
            Ok(latest) => {
                let latest = link.verdicts.try_iter().last().unwrap_or(latest);
                let changed = latest.unhealthy != verdicts.unhealthy;
                *verdicts = latest;
                changed
            }
            Err(_) => false,
        }
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

/// What one snapshot is built from.
struct BuildInputs<'a> {
    plugins: &'a [KubernetesConfig],
    inputs: &'a [Arc<Vec<ClusterService>>],
    zone_files: &'a [Arc<ZoneFile>],
    hosts: &'a [Arc<HostsData>],
    geo: Option<&'a GeoConfig>,
}

fn build_snapshot(
    generation: u64,
    sources: &BuildInputs<'_>,
    health: &dyn EndpointHealth,
    all_unhealthy: AllUnhealthy,
) -> (Snapshot, Vec<String>) {
    let BuildInputs {
        plugins,
        inputs,
        zone_files,
        hosts,
        geo,
    } = *sources;
    let serial = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let mut builder = SnapshotBuilder::new(generation);
    let mut problems = Vec::new();
    for (plugin, services) in plugins.iter().zip(inputs) {
        let options = ClusterOptions {
            zones: plugin.zones.clone(),
            ttl: plugin.ttl,
            pods: plugin.pods,
            endpoint_pod_names: plugin.endpoint_pod_names,
            fallthrough: plugin.fallthrough.clone(),
            serial,
            all_unhealthy,
        };
        problems.extend(cluster::compile_with_health(
            &mut builder,
            services,
            &options,
            health,
        ));
    }
    for zone in zone_files {
        builder.add_file_zone(zone.apex.clone(), Vec::new());
        for record in &zone.records {
            if let Err(error) = builder.add_record(
                record.owner.clone(),
                record.rtype,
                record.ttl,
                record.rdata.clone(),
            ) {
                problems.push(format!(
                    "{}:{}: {error}",
                    record.file.display(),
                    record.line
                ));
            }
        }
        builder.attach_zone_file(zone.clone());
    }
    for entries in hosts {
        add_hosts(&mut builder, entries, &mut problems);
    }
    if let Some(geo) = geo {
        let services: Vec<ClusterService> = inputs.iter().flat_map(|s| s.iter().cloned()).collect();
        let options = cluster::GeoOptions {
            zones: geo.zones.clone(),
            regions: geo
                .settings
                .regions
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            ttl: geo.settings.ttl,
            serial,
        };
        cluster::compile_geo(&mut builder, &services, &options, health, &mut problems);
    }
    (builder.build(), problems)
}

/// What a source delivered last.
#[derive(Debug, Clone)]
enum SourceState {
    /// Services for a `kubernetes` plugin.
    Cluster(Arc<Vec<ClusterService>>),
    /// A zone for a `file` plugin.
    Zone(Arc<ZoneFile>),
    /// Entries for a `hosts` plugin.
    Hosts(Arc<HostsData>),
}

/// A `hosts` plugin's configuration with the entries of its file.
#[derive(Debug)]
struct HostsData {
    config: HostsConfig,
    entries: Vec<(IpAddr, Vec<Name>)>,
}

/// A `hosts` plugin: the file re-read when its modification time changes
/// (checked every `reload`), plus the inline entries.
struct HostsSource {
    config: HostsConfig,
    next_check: Option<SystemTime>,
    seen: Option<Option<SystemTime>>,
}

impl PollSource for HostsSource {
    fn poll(&mut self) -> Option<Result<SourceState, Vec<SourceProblem>>> {
        let now = SystemTime::now();
        if self.next_check.is_some_and(|next| now < next) {
            return None;
        }
        self.next_check = Some(
            now + if self.config.reload.is_zero() {
                Duration::from_secs(u64::from(u32::MAX))
            } else {
                self.config.reload
            },
        );
        let modified = self
            .config
            .path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        if self.seen == Some(modified) {
            return None;
        }
        self.seen = Some(modified);
        let mut entries = self.config.inline.clone();
        if let Some(path) = &self.config.path {
            match std::fs::read_to_string(path) {
                Ok(text) => entries.extend(parse_hosts(&text)),
                // CoreDNS carries on with the inline entries when the file is missing.
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "hosts file not readable")
                }
            }
        }
        Some(Ok(SourceState::Hosts(Arc::new(HostsData {
            config: self.config.clone(),
            entries,
        }))))
    }
}

/// Parses /etc/hosts lines: an address, then names; `#` starts a comment.
/// Lines that do not parse are skipped, as every resolver does.
fn parse_hosts(text: &str) -> Vec<(IpAddr, Vec<Name>)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let address: IpAddr = fields.next()?.parse().ok()?;
            let names: Vec<Name> = fields.filter_map(|n| Name::from_ascii(n).ok()).collect();
            (!names.is_empty()).then_some((address, names))
        })
        .collect()
}

/// Adds a `hosts` plugin's zones and records: A/AAAA per name, PTR per
/// address unless `no_reverse` (each only where one of its zones holds it).
fn add_hosts(builder: &mut SnapshotBuilder, hosts: &HostsData, problems: &mut Vec<String>) {
    let config = &hosts.config;
    for zone in &config.zones {
        builder.add_file_zone(zone.clone(), config.fallthrough.clone());
    }
    let in_zones = |name: &Name| config.zones.iter().any(|z| name.is_within(z));
    for (address, names) in &hosts.entries {
        for name in names.iter().filter(|n| in_zones(n)) {
            let (rr_type, data) = match address {
                IpAddr::V4(v4) => (signpost_proto::rtype::A, signpost_proto::rdata::a(*v4)),
                IpAddr::V6(v6) => (
                    signpost_proto::rtype::AAAA,
                    signpost_proto::rdata::aaaa(*v6),
                ),
            };
            if let Err(error) = builder.add_record(name.clone(), rr_type, config.ttl, data) {
                problems.push(format!("{}: {error}", config.location));
            }
        }
        if config.no_reverse {
            continue;
        }
        let Some(first) = names.first() else { continue };
        if let Ok(reverse) = Name::from_ascii(&cluster::reverse_name(*address))
            && in_zones(&reverse)
            && let Err(error) = builder.add_record(
                reverse,
                signpost_proto::rtype::PTR,
                config.ttl,
                signpost_proto::rdata::name(first),
            )
        {
            problems.push(format!("{}: {error}", config.location));
        }
    }
}

/// A source as the compiler polls it.
trait PollSource: Send {
    fn poll(&mut self) -> Option<Result<SourceState, Vec<SourceProblem>>>;
}

/// A `kubernetes` plugin's source.
struct ClusterAdapter(Box<dyn ClusterSource>);

impl PollSource for ClusterAdapter {
    fn poll(&mut self) -> Option<Result<SourceState, Vec<SourceProblem>>> {
        self.0
            .poll()
            .map(|r| r.map(|services| SourceState::Cluster(Arc::new(services))))
    }
}

/// One zone of a `file` plugin: loaded at start, then re-read every `reload`
/// interval and swapped in when the SOA serial changed (CoreDNS's rule).
struct FileZoneSource {
    path: std::path::PathBuf,
    apex: Name,
    reload: Duration,
    next_check: Option<std::time::SystemTime>,
    serial: Option<u32>,
}

impl PollSource for FileZoneSource {
    fn poll(&mut self) -> Option<Result<SourceState, Vec<SourceProblem>>> {
        let now = SystemTime::now();
        if self.next_check.is_some_and(|next| now < next) {
            return None;
        }
        // Until the first good load, retry at every poll; then at the reload interval.
        if self.serial.is_some() {
            if self.reload.is_zero() {
                self.next_check = Some(now + Duration::from_secs(u64::from(u32::MAX)));
                return None;
            }
            self.next_check = Some(now + self.reload);
        }
        match load_zone_file(&self.path, &self.apex) {
            Ok(zone) if Some(zone.serial) == self.serial => None,
            Ok(zone) => {
                tracing::info!(zone = %self.apex, serial = zone.serial, file = %self.path.display(), "zone loaded");
                self.serial = Some(zone.serial);
                Some(Ok(SourceState::Zone(Arc::new(zone))))
            }
            Err(error) => Some(Err(vec![SourceProblem {
                file: error.file.display().to_string(),
                line: error.line,
                message: error.message,
            }])),
        }
    }
}

fn render_control_metrics(status: &CatalogStatus, out: &mut String) {
    metrics::header(
        out,
        "coredns_build_info",
        "gauge",
        "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
    );
    let _ = writeln!(
        out,
        "coredns_build_info{{version=\"{}\",revision=\"{}\",goversion=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        option_env!("SIGNPOST_REVISION").unwrap_or("unknown"),
        concat!("rust-", env!("CARGO_PKG_RUST_VERSION")),
    );
    metrics::header(
        out,
        "signpost_catalog_reloads_total",
        "counter",
        "Catalog loads by result.",
    );
    let _ = writeln!(
        out,
        "signpost_catalog_reloads_total{{result=\"success\"}} {}",
        status.reload_success.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "signpost_catalog_reloads_total{{result=\"failure\"}} {}",
        status.reload_failure.load(Ordering::Relaxed)
    );
    metrics::header(
        out,
        "signpost_catalog_errors",
        "gauge",
        "Problems in the last failed catalog load, by file and line; empty once a load succeeds.",
    );
    for problem in status
        .problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        let _ = writeln!(
            out,
            "signpost_catalog_errors{{file=\"{}\",line=\"{}\"}} 1",
            escape_label(&problem.file),
            problem.line.unwrap_or(0)
        );
    }
    metrics::header(
        out,
        "signpost_snapshot_generation",
        "gauge",
        "Generation of the snapshot serving answers.",
    );
    let _ = writeln!(
        out,
        "signpost_snapshot_generation {}",
        status.generation.load(Ordering::Relaxed)
    );
    metrics::header(
        out,
        "signpost_snapshot_records",
        "gauge",
        "Resource records in the snapshot serving answers.",
    );
    let _ = writeln!(
        out,
        "signpost_snapshot_records {}",
        status.records.load(Ordering::Relaxed)
    );
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
