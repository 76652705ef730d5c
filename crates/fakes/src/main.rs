//! `signpost-fake-apiserver`: the fake Kubernetes API server as a process, for out-of-process clients
//! (kubectl, the Python client, a signpost binary under test).
//!
//! Prints `listening URL` as the first line of stdout once it accepts connections, then `kubeconfig PATH`
//! (a closed stdout does not stop the server).
//! SIGTERM/SIGINT write the state snapshot (when `--state` is given) and exit 0; a SIGKILL loses nothing
//! either, since every write is journaled before it is acknowledged. Exit 64 for bad arguments or a bad
//! tokens file, 1 for other startup failures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use signpost_fakes::{AuthConfig, FakeApiServer, ServerOptions};

/// A fake Kubernetes API server that follows the documented list/watch/write behaviour.
#[derive(Debug, Parser)]
#[command(name = "signpost-fake-apiserver", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Persist objects and the resourceVersion counter in this file (plus FILE.journal).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Directory for ca.crt, ca.key and kubeconfig (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Bearer tokens and rules (JSON, see the crate README); without it every request is allowed.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// Serve the fault-injection endpoints under /fake/.
    #[arg(long)]
    control: bool,
    /// Run a small EndpointSlice controller: Pod Ready ⇔ every readiness-gate condition True, an
    /// endpoint's ready ⇔ its Pod's Ready.
    #[arg(long)]
    endpoint_slice_controller: bool,
    /// Watch events kept before older resourceVersions get 410.
    #[arg(long, default_value_t = 100_000)]
    history_limit: usize,
    /// Milliseconds between watch bookmarks.
    #[arg(long, default_value_t = 1_000)]
    bookmark_interval_ms: u64,
    /// Before listening, create this many Services (for load tests): 90 % ClusterIP and 10 % headless,
    /// in namespaces of 100 services each (`ns-0`, `ns-1`, ...), each with one EndpointSlice.
    #[arg(long, default_value_t = 0)]
    seed_services: usize,
    /// Ready endpoints in each seeded Service's EndpointSlice.
    #[arg(long, default_value_t = 10)]
    seed_endpoints: usize,
    /// kube-apiserver's feature gates, `Name=true|false,...`. Only `WatchList` (streaming lists,
    /// default true) is known; `WatchList=false` refuses `sendInitialEvents` as kube-apiserver 1.33 does by
    /// default.
    #[arg(long, default_value = "")]
    feature_gates: String,
}

/// The WatchList gate from `--feature-gates` (true when not named).
fn watch_list_gate(gates: &str) -> Result<bool, UsageError> {
    let mut watch_list = true;
    for gate in gates.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let value = match gate.split_once('=') {
            Some(("WatchList", "true")) => true,
            Some(("WatchList", "false")) => false,
            _ => {
                return Err(UsageError(format!(
                    "--feature-gates: {gate:?}: only WatchList=true|false is known"
                )));
            }
        };
        watch_list = value;
    }
    Ok(watch_list)
}

/// A usage error: exit 64.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("fake-apiserver")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<UsageError>() => {
            eprintln!("invalid arguments: {error:#}");
            ExitCode::from(64)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let auth = match &args.tokens {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("reading {}: {e}", path.display())))?;
            Some(
                AuthConfig::from_json(&text)
                    .map_err(|e| UsageError(format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let options = ServerOptions {
        listen: args.listen,
        tls: !args.plain_http,
        dir: args.dir.clone(),
        auth,
        state_file: args.state.clone(),
        control_endpoints: args.control,
        history_limit: args.history_limit,
        endpoint_slice_controller: args.endpoint_slice_controller,
        bookmark_interval: Duration::from_millis(args.bookmark_interval_ms.max(1)),
        watch_list: watch_list_gate(&args.feature_gates)?,
        ..ServerOptions::default()
    };
    let server = FakeApiServer::start(options)
        .await
        .context("starting the fake API server")?;
    if args.seed_services > 0 {
        let namespaces = args.seed_services.div_ceil(100);
        server
            .create_many((0..namespaces).map(|n| {
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}})
            }))
            .context("seeding namespaces")?;
        let objects = (0..args.seed_services).flat_map(|index| seeded(index, args.seed_endpoints));
        let rv = server.create_many(objects).context("seeding services")?;
        tracing::info!(
            services = args.seed_services,
            resource_version = rv,
            "seeded"
        );
    }
    {
        // Both lines in one write; a reader that closes the pipe after the first line must not stop the
        // server, so a failed write is only reported.
        use std::io::Write as _;
        let text = format!(
            "listening {}\nkubeconfig {}\n",
            server.url(),
            server.kubeconfig_path().display()
        );
        let mut out = std::io::stdout().lock();
        if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            tracing::warn!(%error, "writing the address to stdout failed");
        }
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}

/// Service `index` of a seeded cluster and its EndpointSlice: every tenth is
/// headless; endpoint addresses are unique across the cluster.
fn seeded(index: usize, endpoints: usize) -> [serde_json::Value; 2] {
    let namespace = format!("ns-{}", index / 100);
    let name = format!("svc-{}", index % 100);
    let headless = index.is_multiple_of(10);
    let mut spec = serde_json::json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
    if headless {
        spec["clusterIP"] = serde_json::json!("None");
    }
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });
    let addresses: Vec<serde_json::Value> = (0..endpoints)
        .map(|e| {
            let n = index * endpoints + e;
            serde_json::json!({
                "addresses": [format!("10.{}.{}.{}", 128 + (n >> 16) % 128, (n >> 8) & 255, n & 255)],
                "conditions": {"ready": true},
            })
        })
        .collect();
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-1"), "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": addresses,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    });
    [service, slice]
}

#[cfg(test)]
mod tests {
    use super::watch_list_gate;

    #[test]
    fn feature_gates_name_watch_list_only() {
        assert_eq!(watch_list_gate("").ok(), Some(true));
        assert_eq!(watch_list_gate("WatchList=false").ok(), Some(false));
        assert_eq!(
            watch_list_gate("WatchList=false, WatchList=true").ok(),
            Some(true)
        );
        assert!(watch_list_gate("WatchList=no").is_err());
        assert!(watch_list_gate("ConsistentListFromCache=true").is_err());
    }
}
