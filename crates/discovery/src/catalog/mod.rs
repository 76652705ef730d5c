//! The embedded catalog source: Kubernetes `Service`, `EndpointSlice`, `Ingress`, `Node` and `Pod`
//! manifests read from files and directories instead of an API server.
//!
//! Control plane. A load yields a full [`CatalogState`]; [`CatalogSource`] turns it into the
//! cluster model and hands it to the compiler, which replaces everything it had from this source
//! at once.
//!
//! ```text
//!  paths ──walk──▶ files ──split on `---`──▶ documents ──kind──▶ Service ─────────┐
//!  (sorted dirs,                (YAML, JSON)          │        EndpointSlice ─────┼─▶ validate ─▶ CatalogState
//!   hidden skipped)                                   └─ List / ServiceList /     │             or LoadErrors
//!                                                        EndpointSliceList items ─┘
//!  CatalogWatcher: stat only; says when to call load_paths again
//!  CatalogChanges (the DNS cluster zone): re-reads only changed files; inotify names them
//! ```
//!
//! Invariants:
//! - [`load_paths`] returns either a complete state or every error it found, never a partial
//!   state (design invariants 1 and 3: a bad file keeps the previous snapshot serving).
//! - Every error names a file and, where one is known, the line in that file.
//! - Every returned object has a namespace (`default` when the manifest has none); every Service
//!   has a name; Service names and namespaces are RFC 1123 labels; no namespace/name pair appears
//!   twice; cluster IPs and endpoint addresses parse as IP addresses of their family.
//! - Order is deterministic: the given paths in order, directories in sorted order, then
//!   documents and list items in file order.
//! - Work is linear in the size of the input, so a million endpoints in a hundred files load in
//!   seconds. Files are parsed on scoped threads; no thread outlives [`load_paths`].

mod changes;
mod document;
mod load;
mod state;
mod validate;
mod wake;
mod walk;
mod watch;

#[cfg(test)]
mod tests;

pub use changes::CatalogChanges;
pub use load::load_paths;
pub use state::{CatalogState, EndpointSlice, LoadError, LoadErrors, Service};
pub use watch::CatalogWatcher;

use crate::objects::ClusterObjects;
use signpost_model::{BoxFuture, Sink, Source, SourceProblem};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The catalog as a source: polls the files' metadata every `poll` and, when
/// anything changed, loads every file and delivers every object.
#[derive(Debug)]
pub struct CatalogSource {
    paths: Vec<PathBuf>,
    poll: Duration,
}

// === impl CatalogSource ===

impl CatalogSource {
    /// A source over the same paths [`load_paths`] takes.
    pub fn new(paths: Vec<PathBuf>, poll: Duration) -> Self {
        Self { paths, poll }
    }
}

impl Source<Arc<ClusterObjects>> for CatalogSource {
    fn kind(&self) -> &'static str {
        "catalog"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Arc<ClusterObjects>>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut watcher = Some(CatalogWatcher::new(self.paths.clone()));
            loop {
                let Some(mut taken) = watcher.take() else {
                    return;
                };
                // Stat, read and parse off the runtime's threads: a large
                // catalog takes seconds to load.
                let checked = tokio::task::spawn_blocking(move || {
                    let loaded = taken.fingerprint_changed().then(|| taken.load());
                    (taken, loaded)
                })
                .await;
                let Ok((taken, loaded)) = checked else {
                    return;
                };
                watcher = Some(taken);
                match loaded {
                    Some(Ok(objects)) => sink.state(Arc::new(objects)),
                    Some(Err(errors)) => sink.problems(problems(errors)),
                    None => {}
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(self.poll) => {}
                }
            }
        })
    }
}

/// Load errors as source problems.
pub fn problems(errors: LoadErrors) -> Vec<SourceProblem> {
    errors.into_problems()
}
