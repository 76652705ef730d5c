//! The `signpost` binary: command line, wiring, exit codes.
//!
//! One module per role wires that role's crates together; this file holds
//! the command line and maps failures to exit codes (64 for a configuration
//! problem, 1 for anything else).
//!
//! - `signpost dns --conf Corefile` serves DNS ([`dns_role`]);
//! - `signpost check` / `signpost dns --validate` reports every problem of the
//!   Corefile and the catalogs it names, each with its file and line;
//! - `signpost sync` publishes records for annotated Services and Ingresses
//!   with external-dns's flags ([`sync_role`]);
//! - `signpost health --config FILE` runs the leader-elected health
//!   controller shared by many DNS replicas ([`health_role`]).

mod dns_role;
mod health_role;
mod pod;
mod sync_role;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve DNS as a Corefile describes.
    Dns(dns_role::DnsArgs),
    /// Check a Corefile and its catalogs (same as `dns --validate`).
    Check(dns_role::CheckArgs),
    /// Publish DNS records for Kubernetes objects, as external-dns does (same flags).
    Sync(signpost_sync::flags::SyncArgs),
    /// Run the health controller: probe annotated services' endpoints while
    /// leading, and publish the verdicts every DNS replica follows.
    Health(health_role::HealthArgs),
}

/// A configuration problem: exit code 64.
#[derive(Debug)]
pub(crate) struct InvalidConfig(pub(crate) String);

impl std::fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidConfig {}

/// Logs to stderr at `level` (`RUST_LOG` wins), as text or JSON lines.
fn init_logging(level: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .init();
    }
}

/// jemalloc for every role: a large cluster zone's heap stays compact across
/// changes (see `signpost_dns::memory`).
#[global_allocator]
static ALLOCATOR: signpost_dns::memory::Allocator = signpost_dns::memory::Allocator {};

/// jemalloc's built-in options (its `malloc_conf`, read once at its first
/// allocation; `_RJEM_MALLOC_CONF` in the environment overrides them): one
/// arena, so the blocks a build frees are the ones later changes reuse.
/// Measured at 100,000 services / 1,000,000 endpoints: RSS after 1,000
/// endpoint changes −0.5 to −0.6 % with one arena and the purge after
/// builds, up to +10.4 % with jemalloc's default of four arenas per core,
/// and start-up as fast (docs/performance.md, "jemalloc").
#[allow(unsafe_code)]
// SAFETY: jemalloc reads this symbol as a `const char *`; a `&u8` is a thin
// pointer, here to the first byte of a NUL-terminated static string.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"narenas:1\0"[0];

fn main() -> ExitCode {
    // external-dns's negated booleans (`--no-flag`) for `signpost sync`.
    let cli = Cli::parse_from(signpost_sync::flags::normalise_args(std::env::args_os()));
    let result = match cli.command {
        Command::Dns(args) => {
            init_logging("info", false);
            dns_role::run(args)
        }
        Command::Check(args) => {
            init_logging("info", false);
            dns_role::check(&args)
        }
        Command::Sync(args) => match sync_role::settings(&args) {
            Ok(settings) => {
                init_logging(settings.log_filter, settings.log_json);
                sync_role::run(&args, settings)
            }
            Err(error) => Err(error),
        },
        Command::Health(args) => {
            init_logging("info", false);
            health_role::run(args)
        }
    };
    match result {
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

#[cfg(test)]
mod tests {
    /// The built-in jemalloc options reach the allocator: a renamed symbol
    /// (for example jemalloc built without its `_rjem_` prefix) would leave
    /// the default of four arenas per core without a word.
    #[test]
    fn jemalloc_runs_with_one_arena() {
        assert!(
            std::env::var_os("_RJEM_MALLOC_CONF").is_none(),
            "unset _RJEM_MALLOC_CONF to run this test: it overrides the built-in options"
        );
        assert_eq!(signpost_dns::memory::configured_arenas(), Some(1));
    }
}
