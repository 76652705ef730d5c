//! `signpost dns`: the DNS role, its admin endpoints, and `signpost check`.

use crate::InvalidConfig;
use anyhow::Context as _;
use signpost_discovery::metrics::DiscoveryMetrics;
use signpost_discovery::verdicts::{FollowMetrics, VerdictFollower};
use signpost_dns::{Config, DnsStatus, RunOptions, Server, SourceFactory, VerdictFactory};
use signpost_model::status::{
    EndpointReport, Explanation, GeoList, Overview, RecursionList, ServiceList,
};
use signpost_model::{BoxFuture, Refusal, Status, SubscribeVerdicts};
use signpost_zone::{SourceSpec, VerdictSpec};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `signpost dns`.
#[derive(clap::Args)]
pub(crate) struct DnsArgs {
    /// The Corefile.
    #[arg(long, value_name = "FILE", default_value = "Corefile")]
    conf: PathBuf,
    /// Check the Corefile and the catalogs it names, print every problem, and exit.
    #[arg(long)]
    validate: bool,
    /// UDP worker threads per listen address (default: one per core).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

/// `signpost check`.
#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The Corefile.
    #[arg(long, value_name = "FILE", default_value = "Corefile")]
    conf: PathBuf,
}

/// Serves DNS until SIGTERM or SIGINT (or validates, with `--validate`).
pub(crate) fn run(args: DnsArgs) -> anyhow::Result<()> {
    if args.validate {
        return validate(&args.conf);
    }
    let config = load_config(&args.conf)?;
    let mut options = RunOptions::default();
    if let Some(workers) = args.workers {
        options.workers = workers.max(1);
    }
    serve(config, options, &args.conf)
}

/// `signpost check`: the same as `dns --validate`.
pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<()> {
    validate(&args.conf)
}

/// Runs the DNS role with its admin endpoints until SIGTERM or SIGINT.
fn serve(config: Config, options: RunOptions, conf: &Path) -> anyhow::Result<()> {
    let metrics = Arc::new(DiscoveryMetrics::default());
    let factory: SourceFactory = {
        let metrics = metrics.clone();
        Arc::new(move |spec: &SourceSpec| signpost_discovery::open(spec, &metrics))
    };
    // `healthcheck { verdicts ... }`: follow a `signpost health` leader.
    let follow_metrics = config
        .process
        .verdicts
        .as_ref()
        .map(|_| Arc::new(FollowMetrics::default()));
    let verdicts: Option<VerdictFactory> = follow_metrics.clone().map(|metrics| {
        Arc::new(move |spec: &VerdictSpec, cancel| {
            let store = signpost_discovery::verdict_store(&spec.store);
            let follower = VerdictFollower::start(store, spec.stale_after, metrics.clone(), cancel);
            Arc::new(follower) as Arc<dyn SubscribeVerdicts>
        }) as VerdictFactory
    });
    let sites = admin_sites(&config)?;
    let server =
        Server::start_with_verdicts(config, factory, verdicts, options).context("serving DNS")?;
    let status: Arc<dyn Status> = Arc::new(DnsRoleStatus {
        dns: server.status(),
        sources: metrics,
        verdicts: follow_metrics,
    });
    for (address, site) in sites {
        let listener = signpost_dns::server::bind_tcp(server.runtime(), address, "http", false)
            .context("serving DNS")?;
        let bound = listener.local_addr().context("serving DNS")?;
        let surface = site.surface;
        tracing::info!(
            http = %bound,
            health = surface.health,
            ready = surface.ready,
            metrics = surface.metrics,
            admin = surface.admin,
            token = site.token.is_some(),
            "HTTP endpoints listening"
        );
        if surface.admin && site.token.is_none() && !bound.ip().is_loopback() {
            tracing::warn!(
                http = %bound,
                "the admin APIs listen beyond loopback without a token_file; anyone who reaches this address can read the cluster's topology"
            );
        }
        server.runtime().spawn(signpost_admin::serve(
            listener,
            status.clone(),
            site,
            server.shutdown_token(),
        ));
    }
    server.run_until_signal(Some(conf));
    Ok(())
}

/// What each HTTP address serves: the paths of the directives that name it
/// (`health` → `/health`, `ready` → `/ready`, `prometheus` → `/metrics`,
/// `admin` → the APIs and the page), and the admin token read from its file.
fn admin_sites(config: &Config) -> anyhow::Result<Vec<(SocketAddr, signpost_admin::Site)>> {
    let metrics = Arc::new(signpost_admin::AdminMetrics::default());
    let process = &config.process;
    let mut sites = Vec::new();
    for address in config.admin_addresses() {
        let admin = process.admin.iter().find(|a| a.address == address);
        let token = match admin.and_then(|a| Some((a.token_file.as_deref()?, &a.location))) {
            Some((path, location)) => {
                Some(signpost_admin::Token::from_file(path).map_err(|error| {
                    InvalidConfig(format!("{location}: {:#}", anyhow::Error::from(error)))
                })?)
            }
            None => None,
        };
        let surface = signpost_admin::Surface {
            health: process.health.contains(&address),
            ready: process.ready.contains(&address),
            metrics: process.prometheus.contains(&address),
            healthz: false,
            admin: admin.is_some(),
        };
        let site = signpost_admin::Site {
            surface,
            token,
            limits: signpost_admin::Limits::default(),
            metrics: metrics.clone(),
        };
        sites.push((address, site));
    }
    Ok(sites)
}

/// The DNS role's admin view: the server's, plus what its sources report.
struct DnsRoleStatus {
    dns: Arc<DnsStatus>,
    sources: Arc<DiscoveryMetrics>,
    /// The verdict follower's counters, with `healthcheck { verdicts ... }`.
    verdicts: Option<Arc<FollowMetrics>>,
}

impl Status for DnsRoleStatus {
    fn ready(&self) -> bool {
        self.dns.ready()
    }

    fn render_metrics(&self, out: &mut String) {
        self.dns.render_metrics(out);
        self.sources.render(out);
        signpost_discovery::etcd::render_metrics(out);
        if let Some(verdicts) = &self.verdicts {
            verdicts.render(out);
        }
    }

    fn overview(&self) -> Overview {
        self.dns.overview()
    }

    fn services(&self) -> BoxFuture<'_, ServiceList> {
        self.dns.services()
    }

    fn endpoints(&self) -> BoxFuture<'_, Option<Vec<EndpointReport>>> {
        self.dns.endpoints()
    }

    fn geo(&self) -> GeoList {
        self.dns.geo()
    }

    fn explain(&self, name: &str, client: &str) -> Result<Explanation, Refusal> {
        self.dns.explain(name, client)
    }

    fn recursion(&self) -> RecursionList {
        self.dns.recursion()
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let env = |name: &str| std::env::var(name).ok();
    let corefile = signpost_corefile::parse_file(path, &env)
        .map_err(|errors| InvalidConfig(errors.to_string()))?;
    Config::from_corefile(&corefile).map_err(|errors| InvalidConfig(errors.to_string()).into())
}

/// Prints every problem at once: the Corefile's, then every catalog's.
fn validate(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let mut problems = Vec::new();
    let mut seen: Vec<&PathBuf> = Vec::new();
    let catalogs = config
        .listeners
        .iter()
        .flat_map(|l| &l.sources)
        .filter_map(|plan| match &plan.spec {
            SourceSpec::Catalog { paths, .. } => Some(paths),
            _ => None,
        });
    for catalog in catalogs {
        let fresh: Vec<PathBuf> = catalog
            .iter()
            .filter(|p| !seen.contains(p))
            .cloned()
            .collect();
        seen.extend(catalog.iter());
        if fresh.is_empty() {
            continue;
        }
        if let Err(errors) = signpost_discovery::catalog::load_paths(&fresh) {
            problems.push(errors.to_string());
        }
    }
    if !problems.is_empty() {
        return Err(InvalidConfig(problems.join("\n")).into());
    }
    #[allow(clippy::print_stdout)]
    {
        println!("{}: configuration is valid", path.display());
    }
    Ok(())
}
