//! `signpost sync`: external-dns's job. Flags, annotations and the TXT
//! registry are external-dns v0.22's; objects come from the Kubernetes API
//! (watched as the `kubernetes` plugin watches it, plus Ingresses and Nodes)
//! or, with `--catalog`, from manifest files.
//!
//! Wiring only: settings (exit 64 with every problem), the provider and
//! registry, the controller on a two-thread runtime, `/healthz` and
//! `/metrics` on `--metrics-address` (external-dns's `:7979`), and SIGTERM or
//! SIGINT for a clean stop. `--once` exits 0 after a successful
//! reconciliation and 1 after a failed one. With `--health-verdicts`, a
//! verdict follower (the one `signpost dns` replicas use) feeds the
//! controller; its first read is awaited for at most [`FIRST_VERDICTS`].

use crate::InvalidConfig;
use anyhow::Context as _;
use signpost_discovery::catalog::CatalogSource;
use signpost_discovery::kubernetes::{KubernetesSource, LeaseElector, LeaseTimings};
use signpost_discovery::metrics::DiscoveryMetrics;
use signpost_discovery::objects::ClusterObjects;
use signpost_discovery::verdicts::{FollowMetrics, VerdictFollower};
use signpost_model::status::{
    EndpointReport, Explanation, GeoList, Overview, PlannedChange, RecursionList, ServiceList,
    SyncStatus as SyncSection,
};
use signpost_model::{
    BoxFuture, Elector, Leadership, Refusal, Source, Status, SubscribeVerdicts, Verdicts,
};
use signpost_sync::config::{self, HealthSettings, KubeSettings, Settings, VerdictSource};
use signpost_sync::controller::{Controller, HealthInput, Reconciler};
use signpost_sync::flags::SyncArgs;
use signpost_sync::metrics::SyncMetrics;
use signpost_zone::{EtcdSpec, KubeConnection, KubernetesApi, Secret, VerdictStoreSpec};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the catalog's files are checked for changes.
const CATALOG_POLL: Duration = Duration::from_millis(250);

/// How long the first run waits for the first read of the verdicts; after
/// that it runs with none (every region published) until they arrive.
const FIRST_VERDICTS: Duration = Duration::from_secs(10);

/// Validates the flags; the settings, or every problem (exit 64).
pub(crate) fn settings(args: &SyncArgs) -> anyhow::Result<Settings> {
    let env = |name: &str| std::env::var(name).ok();
    config::settings(args, &env).map_err(|errors| InvalidConfig(errors.to_string()).into())
}

/// Runs the sync role until SIGTERM or SIGINT (or once, with `--once`).
pub(crate) fn run(args: &SyncArgs, settings: Settings) -> anyhow::Result<()> {
    tracing::info!(config = %args.describe(), "config");
    if settings.dry_run {
        tracing::info!("running in dry-run mode. No changes to DNS records will be made.");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signpost-sync")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(settings))
}

/// What the API source watches for these settings, and how it connects.
fn kubernetes_api(settings: &KubeSettings) -> KubernetesApi {
    // The settings refuse --kubeconfig together with --server.
    let connection = match (&settings.kubeconfig, &settings.server) {
        (Some(path), _) => KubeConnection::Kubeconfig {
            path: path.clone(),
            context: None,
        },
        (None, Some(url)) => KubeConnection::Endpoint {
            url: url.clone(),
            tls: None,
        },
        (None, None) => KubeConnection::InCluster,
    };
    KubernetesApi {
        connection,
        namespaces: Some(settings.namespace.clone())
            .filter(|n| !n.is_empty())
            .into_iter()
            .collect(),
        // `--label-filter` is applied by the sources, to Services and
        // Ingresses only.
        labels: None,
        namespace_labels: None,
        endpoints: settings.services,
        // Headless Services publish their ready pods (and the pods' nodes).
        pods: settings.services,
        ingresses: settings.ingresses,
        nodes: settings.services,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let discovery = Arc::new(DiscoveryMetrics::default());
    let input: Box<dyn Source<Arc<ClusterObjects>>> = if settings.catalog.is_empty() {
        Box::new(KubernetesSource::new(
            kubernetes_api(&settings.kubernetes),
            discovery.clone(),
        ))
    } else {
        Box::new(CatalogSource::new(settings.catalog.clone(), CATALOG_POLL))
    };
    let provider = config::build_provider(&settings.provider).map_err(InvalidConfig)?;
    let registry = config::build_registry(settings.txt.as_ref(), provider);
    let metrics = Arc::new(SyncMetrics::default());
    let cancel = CancellationToken::new();
    let follow = Arc::new(FollowMetrics::default());
    let health = match &settings.health {
        Some(health) => {
            metrics.follow_verdicts();
            Some(
                follow_verdicts(health, &settings.kubernetes, follow.clone(), cancel.clone()).await,
            )
        }
        None => None,
    };
    let reconciler = Reconciler::new(
        registry,
        settings.plan.clone(),
        settings.dry_run,
        metrics.clone(),
    );
    let listener = tokio::net::TcpListener::bind(settings.metrics_address)
        .await
        .with_context(|| {
            format!(
                "listening on --metrics-address {}",
                settings.metrics_address
            )
        })?;
    let bound = listener
        .local_addr()
        .context("listening on --metrics-address")?;
    tracing::info!(http = %bound, "metrics and health endpoints listening");
    let status: Arc<dyn Status> = Arc::new(SyncStatus {
        metrics: metrics.clone(),
        discovery,
        follow: settings.health.is_some().then_some(follow),
        started_unix: unix_now(),
    });
    // external-dns's surface on --metrics-address: /healthz and /metrics
    // (plus signpost's /health and /ready).
    let site = signpost_admin::Site {
        surface: signpost_admin::Surface {
            health: true,
            ready: true,
            metrics: true,
            healthz: true,
            admin: false,
        },
        token: None,
        limits: signpost_admin::Limits::default(),
        metrics: Arc::new(signpost_admin::AdminMetrics::default()),
    };
    tokio::spawn(signpost_admin::serve(
        listener,
        status,
        site,
        cancel.clone(),
    ));
    let signals = cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("received a termination signal; stopping");
        signals.cancel();
    });
    // With --leader-elect, writes happen only while this replica holds the
    // Lease; the elector is cancelled after the controller has stopped, so
    // the Lease is released only once nothing writes.
    let election = CancellationToken::new();
    let (leadership, elector) = match &settings.election {
        Some(election_settings) => {
            let leadership = Leadership::new();
            let identity = crate::pod::identity("signpost-sync");
            let namespace = Some(election_settings.namespace.clone())
                .filter(|n| !n.is_empty())
                .or_else(crate::pod::namespace)
                .unwrap_or_else(|| "default".to_owned());
            tracing::info!(lease = %format!("{namespace}/{}", election_settings.name), identity = %identity, "leader election on");
            let elector = LeaseElector::new(
                kubernetes_api(&settings.kubernetes).connection,
                &namespace,
                &election_settings.name,
                &identity,
                LeaseTimings {
                    lease_duration: election_settings.lease_duration,
                    renew_deadline: election_settings.renew_deadline,
                    retry_period: election_settings.retry_period,
                },
            );
            let task = tokio::spawn(Box::new(elector).run(leadership.clone(), election.clone()));
            (Some(leadership), Some(task))
        }
        None => (None, None),
    };
    let controller = Controller {
        input,
        sources: settings.sources.clone(),
        min_ttl: settings.min_ttl,
        reconciler,
        schedule: settings.schedule.clone(),
        leadership,
        metrics,
        health,
    };
    let result = controller.run(cancel.clone()).await;
    cancel.cancel();
    election.cancel();
    if let Some(task) = elector
        && tokio::time::timeout(RELEASE_TIMEOUT, task).await.is_err()
    {
        tracing::warn!("the lease release did not finish in time; the lease expires on its own");
    }
    result.map_err(anyhow::Error::from)
}

/// Starts following the verdict object `health` names; waits for its first
/// read (at most [`FIRST_VERDICTS`]).
async fn follow_verdicts(
    health: &HealthSettings,
    kubernetes: &KubeSettings,
    metrics: Arc<FollowMetrics>,
    cancel: CancellationToken,
) -> HealthInput {
    let spec = match &health.store {
        VerdictSource::Kubernetes { namespace, name } => VerdictStoreSpec::Kubernetes {
            connection: kubernetes_api(kubernetes).connection,
            namespace: namespace.clone(),
            name: name.clone(),
        },
        VerdictSource::Etcd {
            endpoints,
            prefix,
            user,
        } => VerdictStoreSpec::Etcd(EtcdSpec {
            endpoints: endpoints.clone(),
            prefix: prefix.clone(),
            credentials: user
                .as_ref()
                .map(|(name, password)| (name.clone(), Secret(password.clone()))),
            tls: None,
        }),
    };
    let store = signpost_discovery::verdict_store(&spec);
    let describe = store.describe().to_owned();
    let follower = VerdictFollower::start(store, health.stale_after, metrics, cancel);
    if tokio::time::timeout(FIRST_VERDICTS, follower.wait_synced())
        .await
        .is_err()
    {
        tracing::warn!(store = %describe, waited = ?FIRST_VERDICTS, "health verdicts not read yet; publishing every region until they are");
    } else {
        tracing::info!(store = %describe, "following the health verdicts");
    }
    let (sender, verdicts) = tokio::sync::watch::channel(Arc::new(Verdicts::default()));
    follower.subscribe_with(Box::new(move |set| {
        sender.send_if_modified(|current| {
            let changed = current.unhealthy != set.unhealthy;
            *current = set;
            changed
        });
        !sender.is_closed()
    }));
    HealthInput {
        verdicts,
        debounce: health.debounce,
    }
}

/// How long shutdown waits for the Lease release.
const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The sync role on the admin endpoints: external-dns's `/healthz` and
/// `/metrics`, `/ready` once a reconciliation succeeded, and the `sync`
/// section of the status document (last sync, last plan, last error).
struct SyncStatus {
    metrics: Arc<SyncMetrics>,
    /// The Kubernetes source's watches (all zero with `--catalog`).
    discovery: Arc<DiscoveryMetrics>,
    /// The verdict follower's view, with `--health-verdicts`.
    follow: Option<Arc<FollowMetrics>>,
    started_unix: f64,
}

impl Status for SyncStatus {
    fn ready(&self) -> bool {
        self.metrics.last_sync() > 0.0
    }

    fn render_metrics(&self, out: &mut String) {
        self.metrics.render(out);
        self.discovery.render(out);
        if let Some(follow) = &self.follow {
            follow.render(out);
        }
    }

    fn overview(&self) -> Overview {
        let last_sync = self.metrics.last_sync();
        let (plan, error) = self.metrics.last_plan_and_error();
        Overview {
            role: "sync".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ready: self.ready(),
            started_unix: self.started_unix,
            sync: Some(SyncSection {
                last_sync_unix: (last_sync > 0.0).then_some(last_sync),
                last_plan: plan
                    .into_iter()
                    .map(|(action, name, record_type, targets)| PlannedChange {
                        action: action.to_owned(),
                        name,
                        record_type: record_type.to_string(),
                        targets,
                    })
                    .collect(),
                errors: error.into_iter().collect(),
            }),
            ..Overview::default()
        }
    }

    fn services(&self) -> BoxFuture<'_, ServiceList> {
        Box::pin(async { ServiceList::default() })
    }

    fn endpoints(&self) -> BoxFuture<'_, Option<Vec<EndpointReport>>> {
        Box::pin(async { None })
    }

    fn geo(&self) -> GeoList {
        GeoList::default()
    }

    fn explain(&self, _name: &str, _client: &str) -> Result<Explanation, Refusal> {
        Err(Refusal::NotFound(
            "signpost sync serves no geographic names".to_owned(),
        ))
    }

    fn recursion(&self) -> RecursionList {
        RecursionList::default()
    }
}
