//! The `signpost` binary: command line, wiring, exit codes.
//!
//! `signpost dns --conf Corefile` serves DNS; `--validate` (or `signpost
//! check`) reports every problem of the Corefile and the catalogs it names,
//! each with its file and line, and exits 64 if there is any.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use signpost_catalog::{CatalogWatcher, LoadErrors};
use signpost_server::config::KubernetesConfig;
use signpost_server::{
    ClusterSource, Config, ConfigErrors, RunOptions, SourceFactory, SourceProblem,
};
use signpost_zone::cluster::ClusterService;
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
            let factory: SourceFactory = Arc::new(|plugin: &KubernetesConfig| {
                Box::new(CatalogSource::new(plugin.catalog.clone())) as Box<dyn ClusterSource>
            });
            signpost_server::run(config, factory, options, Some(conf)).context("serving DNS")
        }
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let env = |name: &str| std::env::var(name).ok();
    let corefile = signpost_corefile::parse_file(path, &env)
        .map_err(|errors| InvalidConfig(ConfigErrors::from(errors).to_string()))?;
    Config::from_corefile(&corefile).map_err(|errors| InvalidConfig(errors.to_string()).into())
}

/// Prints every problem at once: the Corefile's, then every catalog's.
fn validate(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let mut problems = Vec::new();
    let mut seen: Vec<&PathBuf> = Vec::new();
    for plugin in config.listeners.iter().flat_map(|l| &l.kubernetes) {
        let fresh: Vec<PathBuf> = plugin
            .catalog
            .iter()
            .filter(|p| !seen.contains(p))
            .cloned()
            .collect();
        seen.extend(plugin.catalog.iter());
        if fresh.is_empty() {
            continue;
        }
        if let Err(errors) = signpost_catalog::load_paths(&fresh) {
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

/// The catalog source: files and directories of manifests, polled for changes.
struct CatalogSource {
    paths: Vec<PathBuf>,
    watcher: CatalogWatcher,
}

impl CatalogSource {
    fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            watcher: CatalogWatcher::new(paths.clone()),
            paths,
        }
    }
}

impl ClusterSource for CatalogSource {
    fn poll(&mut self) -> Option<Result<Vec<ClusterService>, Vec<SourceProblem>>> {
        if !self.watcher.fingerprint_changed() {
            return None;
        }
        Some(match signpost_catalog::load_paths(&self.paths) {
            Ok(state) => Ok(signpost_catalog::cluster_services(&state)),
            Err(errors) => Err(problems(errors)),
        })
    }
}

fn problems(errors: LoadErrors) -> Vec<SourceProblem> {
    errors
        .0
        .into_iter()
        .map(|e| SourceProblem {
            file: e.file.display().to_string(),
            line: e.line,
            message: e.message,
        })
        .collect()
}
