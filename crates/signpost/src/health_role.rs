//! `signpost health`: the standalone health controller shared by many DNS
//! replicas (the reference deployment's `dns-health-controller`).
//!
//! Control plane. Every replica of the controller watches the same targets
//! (annotated Services and their EndpointSlices, from the Kubernetes API or
//! a catalog) and follows the published verdicts; only the leader probes
//! and publishes:
//!
//! ```text
//! targets (kubernetes / catalog) ──▶ health_targets ──▶ watch ─────────────┐
//! verdict store ──VerdictFollower──▶ observed (published set) ──seed──┐    │
//! elector (Lease / etcd) ──Leadership──▶ controller loop: leading ─▶ checker::spawn_from
//!                                                                     │ verdicts
//!                                              VerdictPublisher ◀─────┘ ──write──▶ verdict store
//! admin (metrics, /health, /ready, /api/v1/endpoints) ◀── HealthRoleStatus
//! ```
//!
//! Invariants: a term starts only once the targets' first complete list and
//! the published verdicts have been read, and starts from those verdicts;
//! a term ends (its checker stops) as soon as leadership is lost; the
//! publisher writes only while leading. On SIGTERM the checker and the
//! publisher stop first, then the elector releases the lease.

use crate::InvalidConfig;
use anyhow::Context as _;
use signpost_discovery::kubernetes::gates::{self, GateMetrics, GatedPods, PodEndpoints};
use signpost_discovery::metrics::DiscoveryMetrics;
use signpost_discovery::verdicts::{
    FollowMetrics, Observed, PublishMetrics, PublisherParts, VerdictFollower, VerdictPublisher,
};
use signpost_health::checker::{self, CheckerParts, ReportRequest, Target};
use signpost_health::{ControllerConfig, HealthMetrics, Prober};
use signpost_model::metrics::{Exposition, Kind};
use signpost_model::status::{
    EndpointReport, Explanation, GeoList, HealthSummary, Overview, PublisherStatus, RecursionList,
    ServiceList,
};
use signpost_model::{
    BoxFuture, ClusterEndpoint, ClusterService, Elector, EndpointKey, Leadership, PublishVerdicts,
    Refusal, Sink, Status, Update,
};
use signpost_zone::{
    EtcdSpec, EtcdTls, Input, KubeConnection, KubernetesApi, Secret, SourceSpec, VerdictStoreSpec,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// `signpost health`.
#[derive(clap::Args)]
pub(crate) struct HealthArgs {
    /// The controller configuration: the reference deployment's YAML, bare
    /// or inside its ConfigMap manifest.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Check the configuration, print every problem, and exit (64 when invalid).
    #[arg(long)]
    validate: bool,
    /// Where metrics, /health, /ready and the admin APIs (/api/v1/endpoints) listen.
    #[arg(long, value_name = "ADDRESS", default_value = "0.0.0.0:8080")]
    listen: String,
    /// A file holding the bearer token the admin APIs require.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Kubernetes: this kubeconfig file (default: the pod's service account;
    /// outside a cluster, $KUBECONFIG).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes: the kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    context: Option<String>,
    /// Kubernetes: the API server's URL, without a kubeconfig.
    #[arg(long, value_name = "URL", conflicts_with = "kubeconfig")]
    api_server: Option<String>,
    /// Namespace of the Lease and the verdict ConfigMap (default: the pod's
    /// namespace, else kube-system).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Name of the verdict ConfigMap.
    #[arg(long, value_name = "NAME", default_value = "signpost-health-verdicts")]
    verdicts: String,
    /// Name of the Lease.
    #[arg(long, value_name = "NAME", default_value = "signpost-health")]
    lease: String,
    /// This replica's identity in the Lease (default: $POD_NAME or the host
    /// name, with a random suffix).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// Services and EndpointSlices from these manifest files or directories
    /// instead of the Kubernetes API.
    #[arg(long, value_name = "PATH")]
    catalog: Vec<PathBuf>,
    /// etcd client URLs (comma-separated): verdicts and the election go to
    /// etcd instead of the Kubernetes API.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// etcd key prefix: verdicts at PREFIX/unhealthy, the election under PREFIX/leader.
    #[arg(long, value_name = "PREFIX", default_value = "/signpost/health")]
    etcd_prefix: String,
    /// etcd user; the password comes from $SIGNPOST_ETCD_PASSWORD.
    #[arg(long, value_name = "USER")]
    etcd_user: Option<String>,
    /// etcd TLS: CA bundle (PEM).
    #[arg(long, value_name = "FILE")]
    etcd_ca: Option<PathBuf>,
    /// etcd TLS: client certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    etcd_cert: Option<PathBuf>,
    /// etcd TLS: client key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    /// Set the dns.aikernel.io/healthy condition of Pods that declare it as
    /// a readiness gate (needs get, list, watch of pods and patch of
    /// pods/status; off with --catalog).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pod_readiness_gates: bool,
    /// Readiness gates: Pod status patches per second, on average.
    #[arg(long, value_name = "QPS", default_value_t = 50.0)]
    pod_status_qps: f64,
    /// Readiness gates: Pod status patches that may go at once after a quiet time.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pod_status_burst: u32,
}

/// The environment variable holding the etcd password (never a flag: flags
/// show in process listings).
const ETCD_PASSWORD: &str = "SIGNPOST_ETCD_PASSWORD";

/// How often a catalog is checked for changes.
const CATALOG_POLL: Duration = Duration::from_millis(250);

/// How long shutdown waits for the lease release.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the controller until SIGTERM or SIGINT (or validates, with `--validate`).
pub(crate) fn run(args: HealthArgs) -> anyhow::Result<()> {
    let config =
        ControllerConfig::load(&args.config).map_err(|errors| InvalidConfig(errors.to_string()))?;
    let listen = signpost_corefile::toolkit::parse_host_port(&args.listen).ok_or_else(|| {
        InvalidConfig(format!(
            "--listen {:?}: expected ADDRESS:PORT or :PORT",
            args.listen
        ))
    })?;
    let token = match &args.admin_token_file {
        Some(path) => Some(
            signpost_admin::Token::from_file(path)
                .map_err(|e| InvalidConfig(format!("{:#}", anyhow::Error::from(e))))?,
        ),
        None => None,
    };
    if !(args.pod_status_qps.is_finite() && args.pod_status_qps > 0.0) {
        return Err(InvalidConfig(format!(
            "--pod-status-qps {}: expected a positive number of patches per second",
            args.pod_status_qps
        ))
        .into());
    }
    if args.pod_status_burst == 0 {
        return Err(InvalidConfig(
            "--pod-status-burst 0: expected at least 1 (patches that may go at once)".to_owned(),
        )
        .into());
    }
    if args.validate {
        #[allow(clippy::print_stdout)]
        {
            println!("{}: configuration is valid", args.config.display());
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signpost-control")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args, config, listen, token))
}

/// Where the role's state lives, for the admin endpoints.
struct HealthRoleStatus {
    started_unix: f64,
    leadership: Leadership,
    holder: Option<watch::Receiver<Option<String>>>,
    targets: watch::Receiver<Option<Arc<Vec<Target>>>>,
    observed: watch::Receiver<Observed>,
    checks: Arc<HealthMetrics>,
    publishes: Arc<PublishMetrics>,
    follows: Arc<FollowMetrics>,
    sources: Arc<DiscoveryMetrics>,
    /// Readiness-gate counters, when gates are on.
    gates: Option<Arc<GateMetrics>>,
    // The current term's report channel; admin plane only.
    reports: Mutex<Option<mpsc::Sender<ReportRequest>>>,
}

async fn serve(
    args: HealthArgs,
    config: ControllerConfig,
    listen: SocketAddr,
    token: Option<signpost_admin::Token>,
) -> anyhow::Result<()> {
    let connection = connection(&args);
    let namespace = namespace(&args);
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| crate::pod::identity("signpost-health"));
    let etcd = etcd_spec(&args);
    // Every task but the elector stops on `work`; the elector after them, so
    // the lease is released only once nothing publishes.
    let work = CancellationToken::new();
    let election = CancellationToken::new();

    // Targets: the same sources and annotations as `signpost dns`.
    let sources = Arc::new(DiscoveryMetrics::default());
    let spec = if args.catalog.is_empty() {
        SourceSpec::Kubernetes(KubernetesApi {
            connection: connection.clone(),
            namespaces: Vec::new(),
            labels: None,
            namespace_labels: None,
            endpoints: true,
            pods: false,
            ingresses: false,
            nodes: false,
        })
    } else {
        SourceSpec::Catalog {
            paths: args.catalog.clone(),
            poll: CATALOG_POLL,
        }
    };
    let (targets_tx, targets) = watch::channel::<Option<Arc<Vec<Target>>>>(None);
    let (services_tx, services) = watch::channel::<Option<Services>>(None);
    let sink = Sink::new(move |update| match update {
        Update::State(Input::Cluster(state)) => {
            services_tx.send_replace(Some(Arc::new(state.services.clone())));
        }
        Update::State(_) => {}
        Update::Problems(problems) => {
            for problem in problems {
                tracing::warn!(%problem, "health targets: source problem; the last targets stay");
            }
        }
    });
    tokio::spawn(signpost_discovery::open(&spec, &sources).run(sink, work.child_token()));

    // Readiness gates: the gated Pods (every replica), so a gated Pod's
    // endpoint stays checked while the gate holds it not ready.
    let gates_on = args.pod_readiness_gates && args.catalog.is_empty();
    let (gated_tx, gated) = watch::channel::<Option<Arc<GatedPods>>>(None);
    let gated = if gates_on {
        gates::watch_gated_pods(connection.clone(), work.child_token())
    } else {
        gated_tx.send_replace(Some(Arc::new(GatedPods::default())));
        gated
    };
    let (pod_endpoints_tx, pod_endpoints) = watch::channel(None);
    tokio::spawn(combine_targets(
        services,
        gated.clone(),
        config.default_path.clone(),
        targets_tx,
        pod_endpoints_tx,
        work.child_token(),
    ));

    // The published verdicts: followed by every replica, written by the leader.
    let store_spec = match &etcd {
        Some(etcd) => VerdictStoreSpec::Etcd(etcd.clone()),
        None => VerdictStoreSpec::Kubernetes {
            connection: connection.clone(),
            namespace: namespace.clone(),
            name: args.verdicts.clone(),
        },
    };
    let store = signpost_discovery::verdict_store(&store_spec);
    let follows = Arc::new(FollowMetrics::default());
    let follower = VerdictFollower::start(
        store.clone(),
        signpost_discovery::verdicts::DEFAULT_STALE_AFTER,
        follows.clone(),
        work.child_token(),
    );

    // Leader election.
    let leadership = Leadership::new();
    let timings = config.election;
    let (elector, holder): (Box<dyn Elector>, _) = match &etcd {
        Some(etcd) => (
            Box::new(signpost_discovery::etcd::EtcdElector::new(
                etcd.clone(),
                &format!("{}leader", etcd.prefix),
                &identity,
                timings.lease_duration,
            )),
            None,
        ),
        None => {
            let elector = signpost_discovery::kubernetes::LeaseElector::new(
                connection.clone(),
                &namespace,
                &args.lease,
                &identity,
                signpost_discovery::kubernetes::LeaseTimings {
                    lease_duration: timings.lease_duration,
                    renew_deadline: timings.renew_deadline,
                    retry_period: timings.retry_period,
                },
            );
            let holder = elector.holder();
            (Box::new(elector), Some(holder))
        }
    };
    let elector_task = tokio::spawn(elector.run(leadership.clone(), election.clone()));

    let publishes = Arc::new(PublishMetrics::default());
    let (publisher, publisher_task) = VerdictPublisher::start(
        PublisherParts {
            store,
            identity: identity.clone(),
            leading: leadership.watch(),
            observed: Some(follower.observed()),
            metrics: publishes.clone(),
        },
        work.child_token(),
    );
    let publisher: Arc<dyn PublishVerdicts> = Arc::new(publisher);

    let status = Arc::new(HealthRoleStatus {
        started_unix: signpost_discovery::verdicts::unix_now(),
        leadership: leadership.clone(),
        holder,
        targets: targets.clone(),
        observed: follower.observed(),
        checks: Arc::new(HealthMetrics::default()),
        publishes,
        follows,
        sources,
        gates: gates_on.then(|| Arc::new(GateMetrics::default())),
        reports: Mutex::new(None),
    });
    if let Some(metrics) = &status.gates {
        let reports = status.clone();
        let last_errors: gates::LastErrors = Arc::new(move |keys: Vec<EndpointKey>| {
            let reports = reports.clone();
            Box::pin(async move { reports.last_errors(&keys).await })
        });
        tokio::spawn(gates::run_patcher(
            gates::GateParts {
                connection: connection.clone(),
                leading: leadership.watch(),
                pods: gated.clone(),
                endpoints: pod_endpoints,
                observed: follower.observed(),
                last_errors,
                limit: gates::RateLimit {
                    qps: args.pod_status_qps,
                    burst: args.pod_status_burst,
                },
                metrics: metrics.clone(),
            },
            work.child_token(),
        ));
        tracing::info!(
            qps = args.pod_status_qps,
            burst = args.pod_status_burst,
            "readiness gates: Pods declaring {} get it from the published verdicts",
            gates::CONDITION
        );
    }
    let _gated_tx = gated_tx;

    // Metrics, /health, /ready and the admin APIs on one address.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr().context("listening")?;
    if token.is_none() && !bound.ip().is_loopback() {
        tracing::warn!(http = %bound, "the admin APIs listen beyond loopback without --admin-token-file; anyone who reaches this address can read the checked endpoints");
    }
    let site = signpost_admin::Site {
        surface: signpost_admin::Surface {
            health: true,
            ready: true,
            metrics: true,
            healthz: false,
            admin: true,
        },
        token,
        limits: signpost_admin::Limits::default(),
        metrics: Arc::new(signpost_admin::AdminMetrics::default()),
    };
    tokio::spawn(signpost_admin::serve(
        listener,
        status.clone() as Arc<dyn Status>,
        site,
        work.child_token(),
    ));
    tracing::info!(http = %bound, identity = %identity, store = %store_spec_name(&store_spec), "signpost health started");

    let controller = tokio::spawn(control(
        config,
        status.clone(),
        publisher,
        follower,
        work.child_token(),
    ));
    wait_for_signal().await;
    tracing::info!("shutting down: stopping checks, then releasing the lease");
    work.cancel();
    let _ = controller.await;
    let _ = publisher_task.await;
    election.cancel();
    if tokio::time::timeout(RELEASE_TIMEOUT, elector_task)
        .await
        .is_err()
    {
        tracing::warn!("the lease release did not finish in time; the lease expires on its own");
    }
    Ok(())
}

/// The controller loop: one checker per leadership term.
async fn control(
    config: ControllerConfig,
    status: Arc<HealthRoleStatus>,
    publisher: Arc<dyn PublishVerdicts>,
    follower: VerdictFollower,
    cancel: CancellationToken,
) {
    let mut leading = status.leadership.watch();
    let mut targets = status.targets.clone();
    let mut observed = follower.observed();
    loop {
        // A term starts when this replica leads and knows both the targets and the published verdicts.
        let ready = async {
            leading.wait_for(|l| *l).await.is_ok()
                && targets.wait_for(Option::is_some).await.is_ok()
                && observed.wait_for(|o| o.verdicts.is_some()).await.is_ok()
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            ok = ready => if !ok { return },
        }
        if !*leading.borrow_and_update() {
            continue;
        }
        let seed = observed.borrow().verdicts.clone().unwrap_or_default();
        let term = cancel.child_token();
        let (term_targets_tx, term_targets) =
            watch::channel(targets.borrow().clone().unwrap_or_default());
        let (reports_tx, reports_rx) = mpsc::channel(8);
        *status
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reports_tx);
        tracing::info!(
            targets = term_targets.borrow().len(),
            published_unhealthy = seed.unhealthy.len(),
            "leading: checking, starting from the published verdicts"
        );
        let parts = CheckerParts {
            policy: config.policy,
            options: config.options,
            probe: Arc::new(Prober::new()),
            publisher: publisher.clone(),
            metrics: status.checks.clone(),
        };
        let checker = checker::spawn_from(parts, &seed, term_targets, reports_rx, term.clone());
        // Until leadership is lost: keep the checker's targets current.
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                changed = leading.changed() => {
                    if changed.is_err() || !*leading.borrow_and_update() {
                        break;
                    }
                }
                changed = targets.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if let Some(list) = targets.borrow_and_update().clone() {
                        term_targets_tx.send_replace(list);
                    }
                }
            }
        }
        term.cancel();
        let _ = checker.await;
        *status
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        if !cancel.is_cancelled() {
            tracing::warn!("no longer leading: checks stopped, following the published verdicts");
        }
    }
}

/// The services of the cluster model.
type Services = Arc<Vec<Arc<ClusterService>>>;

/// Turns the cluster model and the gated Pods into the checker's targets
/// (endpoints of gated Pods are checked even while not ready) and each gated
/// Pod's checked endpoints. Neither is sent before both inputs are known, so
/// a new term never starts without the gated endpoints (its first publication
/// would drop them from the published set and flip their gates).
async fn combine_targets(
    mut services: watch::Receiver<Option<Services>>,
    mut gated: watch::Receiver<Option<Arc<GatedPods>>>,
    default_path: String,
    targets_tx: watch::Sender<Option<Arc<Vec<Target>>>>,
    endpoints_tx: watch::Sender<Option<Arc<PodEndpoints>>>,
    cancel: CancellationToken,
) {
    // What the last computation used: a change of a gated Pod's condition
    // alone (every patch comes back through the watch) changes nothing here.
    let mut last: Option<(Services, Arc<GatedPods>)> = None;
    loop {
        let current = services.borrow_and_update().clone();
        let pods = gated.borrow_and_update().clone();
        let same = |(s, p): &(Services, Arc<GatedPods>)| {
            current.as_ref().is_some_and(|c| Arc::ptr_eq(c, s))
                && pods
                    .as_ref()
                    .is_some_and(|q| q.readable == p.readable && q.pods.keys().eq(p.pods.keys()))
        };
        if last.as_ref().is_some_and(same) {
            // Nothing this task derives has changed.
        } else if let (Some(current), Some(pods)) = (current, pods) {
            last = Some((current.clone(), pods.clone()));
            let is_gated = |service: &ClusterService, endpoint: &ClusterEndpoint| {
                endpoint.pod_name.as_ref().is_some_and(|pod| {
                    pods.pods
                        .contains_key(&(service.namespace.clone(), pod.clone()))
                })
            };
            let list = signpost_health::health_targets_where(
                current.iter().map(|s| &**s),
                &default_path,
                is_gated,
            );
            let mut map = PodEndpoints::new();
            for service in current.iter().filter(|s| s.health_check.is_some()) {
                for endpoint in &service.endpoints {
                    if !is_gated(service, endpoint) {
                        continue;
                    }
                    let Some(pod) = &endpoint.pod_name else {
                        continue;
                    };
                    let keys = map
                        .entry((service.namespace.clone(), pod.clone()))
                        .or_default();
                    keys.extend(endpoint.addresses.iter().map(|&address| EndpointKey {
                        namespace: service.namespace.clone(),
                        service: service.name.clone(),
                        address,
                    }));
                }
            }
            targets_tx.send_if_modified(|current| {
                let changed = current.as_deref() != Some(&list);
                if changed {
                    *current = Some(Arc::new(list));
                }
                changed
            });
            endpoints_tx.send_if_modified(|current| {
                let changed = current.as_deref() != Some(&map);
                if changed {
                    *current = Some(Arc::new(map));
                }
                changed
            });
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = services.changed() => if changed.is_err() { return },
            changed = gated.changed() => if changed.is_err() { return },
        }
    }
}

// === impl HealthRoleStatus ===

impl HealthRoleStatus {
    /// The last probe error of each of `keys` the checker knows (leader only).
    async fn last_errors(&self, keys: &[EndpointKey]) -> HashMap<EndpointKey, String> {
        let wanted: std::collections::HashSet<&EndpointKey> = keys.iter().collect();
        let reports = self.endpoints().await.unwrap_or_default();
        reports
            .into_iter()
            .filter_map(|report| {
                let key = EndpointKey {
                    namespace: report.namespace,
                    service: report.service,
                    address: report.address.parse().ok()?,
                };
                let error = report.last_error?;
                wanted.contains(&key).then_some((key, error))
            })
            .collect()
    }

    /// The published verdicts over the known targets, as a standby reports
    /// them (the leader's checker reports its own state).
    fn published_reports(&self) -> Vec<EndpointReport> {
        let targets = self.targets.borrow().clone().unwrap_or_default();
        let published = self.observed.borrow().verdicts.clone().unwrap_or_default();
        targets
            .iter()
            .map(|target| EndpointReport {
                namespace: target.key.namespace.clone(),
                service: target.key.service.clone(),
                address: target.key.address.to_string(),
                port: target.port,
                kind: target.kind.as_str().to_owned(),
                state: if published.unhealthy.contains(&target.key) {
                    "unhealthy"
                } else {
                    "healthy"
                }
                .to_owned(),
                ..EndpointReport::default()
            })
            .collect()
    }

    fn published_counts(&self) -> (usize, usize) {
        let targets = self.targets.borrow().clone().unwrap_or_default();
        let published = self.observed.borrow().verdicts.clone().unwrap_or_default();
        let unhealthy = targets
            .iter()
            .filter(|t| published.unhealthy.contains(&t.key))
            .count();
        (targets.len() - unhealthy, unhealthy)
    }
}

impl Status for HealthRoleStatus {
    fn ready(&self) -> bool {
        self.targets.borrow().is_some() && self.observed.borrow().verdicts.is_some()
    }

    fn render_metrics(&self, out: &mut String) {
        let leading = self.leadership.is_leading();
        if !leading {
            // A standby shows the published state, not a past term's.
            let (healthy, unhealthy) = self.published_counts();
            self.checks.set_counts(healthy, unhealthy);
        }
        self.checks.render(out);
        {
            let mut exposition = Exposition::new(out);
            exposition.family(
                "signpost_health_leader",
                Kind::Gauge,
                "1 while this replica leads (probes and publishes), 0 while it stands by.",
            );
            exposition.sample("signpost_health_leader", &[], u8::from(leading));
        }
        self.publishes.render(out);
        self.follows.render(out);
        self.sources.render(out);
        if let Some(gates) = &self.gates {
            gates.render(out);
        }
        signpost_discovery::etcd::render_metrics(out);
    }

    fn overview(&self) -> Overview {
        let (serving, unhealthy) = if self.leadership.is_leading() {
            let (serving, unhealthy) = self.checks.counts();
            (serving as usize, unhealthy as usize)
        } else {
            self.published_counts()
        };
        Overview {
            role: "health".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ready: self.ready(),
            started_unix: self.started_unix,
            health: Some(HealthSummary {
                endpoints: (serving + unhealthy) as u64,
                serving: serving as u64,
                unhealthy: unhealthy as u64,
            }),
            publisher: Some(PublisherStatus {
                leader: self.leadership.is_leading(),
                holder: self.holder.as_ref().and_then(|h| h.borrow().clone()),
                last_publish_unix: self.publishes.last_publish_unix(),
                last_error: self.publishes.last_error(),
            }),
            ..Overview::default()
        }
    }

    fn services(&self) -> BoxFuture<'_, ServiceList> {
        Box::pin(async { ServiceList::default() })
    }

    fn endpoints(&self) -> BoxFuture<'_, Option<Vec<EndpointReport>>> {
        let reports = self
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(async move {
            if let Some(reports) = reports {
                let (reply, answer) = tokio::sync::oneshot::channel();
                if reports.send(reply).await.is_ok()
                    && let Ok(list) = answer.await
                {
                    return Some(list);
                }
            }
            Some(self.published_reports())
        })
    }

    fn geo(&self) -> GeoList {
        GeoList::default()
    }

    fn explain(&self, _name: &str, _client: &str) -> Result<Explanation, Refusal> {
        Err(Refusal::NotFound(
            "signpost health serves no geographic names".to_owned(),
        ))
    }

    fn recursion(&self) -> RecursionList {
        RecursionList::default()
    }
}

// === flags ===

/// The Kubernetes connection the flags ask for, in CoreDNS's precedence:
/// a kubeconfig, else an API server URL, else the pod's service account.
fn connection(args: &HealthArgs) -> KubeConnection {
    match (&args.kubeconfig, &args.api_server) {
        (Some(path), _) => KubeConnection::Kubeconfig {
            path: path.clone(),
            context: args.context.clone(),
        },
        (None, Some(url)) => KubeConnection::Endpoint {
            url: url.clone(),
            tls: None,
        },
        (None, None) => KubeConnection::InCluster,
    }
}

/// `--namespace`, else the pod's, else `kube-system` (the reference
/// deployment's).
fn namespace(args: &HealthArgs) -> String {
    args.namespace
        .clone()
        .or_else(crate::pod::namespace)
        .unwrap_or_else(|| "kube-system".to_owned())
}

/// The etcd cluster of `--etcd-endpoints`, if given.
fn etcd_spec(args: &HealthArgs) -> Option<EtcdSpec> {
    if args.etcd_endpoints.is_empty() {
        return None;
    }
    let segments: Vec<&str> = args
        .etcd_prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let prefix = if segments.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}/", segments.join("/"))
    };
    let credentials = args.etcd_user.as_ref().map(|user| {
        let password = std::env::var(ETCD_PASSWORD).unwrap_or_default();
        (user.clone(), Secret(password))
    });
    let tls = (args.etcd_ca.is_some() || args.etcd_cert.is_some()).then(|| EtcdTls {
        cert: args.etcd_cert.clone(),
        key: args.etcd_key.clone(),
        ca: args.etcd_ca.clone(),
    });
    Some(EtcdSpec {
        endpoints: args.etcd_endpoints.clone(),
        prefix,
        credentials,
        tls,
    })
}

fn store_spec_name(spec: &VerdictStoreSpec) -> String {
    match spec {
        VerdictStoreSpec::Kubernetes {
            namespace, name, ..
        } => format!("configmap {namespace}/{name}"),
        VerdictStoreSpec::Etcd(etcd) => format!("etcd key {}unhealthy", etcd.prefix),
    }
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
