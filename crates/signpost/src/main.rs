//! The `signpost` binary: command line, wiring, exit codes.
//!
//! `signpost dns --conf Corefile` serves DNS; `--validate` (or `signpost
//! check`) reports every problem of the Corefile and the catalogs it names,
//! each with its file and line, and exits 64 if there is any.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use signpost_dns::{Config, RunOptions, Server, SourceFactory};
use signpost_zone::SourceSpec;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// sysexits.h EX_USAGE: the configuration is wrong.
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "signpost",
    version,
    about = "DNS service discovery for Kubernetes and beyond"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS as a Corefile describes.
    Dns {
        /// The Corefile.
        #[arg(long, value_name = "FILE", default_value = "Corefile")]
        conf: PathBuf,
        /// Check the Corefile and the catalogs it names, print every problem, and exit.
        #[arg(long)]
        validate: bool,
        /// UDP worker threads per listen address (default: one per core).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Check a Corefile and its catalogs (same as `dns --validate`).
    Check {
        /// The Corefile.
        #[arg(long, value_name = "FILE", default_value = "Corefile")]
        conf: PathBuf,
    },
}

/// A configuration problem: exit code 64.
#[derive(Debug)]
struct InvalidConfig(String);

impl std::fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidConfig {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<InvalidConfig>() => {
            eprintln!("invalid configuration:\n{error:#}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { conf } => validate(&conf),
        Command::Dns {
            conf,
            validate: true,
            ..
        } => validate(&conf),
        Command::Dns {
            conf,
            validate: false,
            workers,
        } => {
            let config = load_config(&conf)?;
            let mut options = RunOptions::default();
            if let Some(workers) = workers {
                options.workers = workers.max(1);
            }
            serve_dns(config, options, &conf)
        }
    }
}

/// Runs the DNS role with its admin endpoints until SIGTERM or SIGINT.
fn serve_dns(config: Config, options: RunOptions, conf: &Path) -> anyhow::Result<()> {
    let factory: SourceFactory = Arc::new(signpost_discovery::open);
    let admin = config.admin_addresses();
    let server = Server::start(config, factory, options).context("serving DNS")?;
    let status: Arc<dyn signpost_model::Status> = server.status();
    for address in admin {
        let listener = signpost_dns::server::bind_tcp(server.runtime(), address, "http")
            .context("serving DNS")?;
        let bound = listener.local_addr().context("serving DNS")?;
        tracing::info!(http = %bound, "admin endpoints listening");
        server.runtime().spawn(signpost_admin::serve(
            listener,
            status.clone(),
            server.shutdown_token(),
        ));
    }
    server.run_until_signal(Some(conf));
    Ok(())
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
