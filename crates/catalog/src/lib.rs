//! The embedded catalog source: Kubernetes `Service` and `EndpointSlice` manifests read from
//! files and directories instead of an API server.
//!
//! Control plane. A source yields a full [`CatalogState`]; the compiler replaces everything it
//! had from this source with that state at once. The same type will carry the state of the live
//! Kubernetes source, so nothing here depends on where the objects came from.
//!
//! ```text
//!  paths ──walk──▶ files ──split on `---`──▶ documents ──kind──▶ Service ─────────┐
//!  (sorted dirs,                (YAML, JSON)          │        EndpointSlice ─────┼─▶ validate ─▶ CatalogState
//!   hidden skipped)                                   └─ List / ServiceList /     │             or LoadErrors
//!                                                        EndpointSliceList items ─┘
//!  CatalogWatcher: stat only; says when to call load_paths again
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

mod cluster;
mod document;
mod validate;
mod walk;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

pub use cluster::{
    EXTERNAL_DNS_HOSTNAME, GEO_HOSTNAME, GEO_PRIORITY, GEO_REGION, HEALTH_CHECK_ENABLED,
    HEALTH_CHECK_PATH, HEALTH_CHECK_PORT, HEALTH_CHECK_PROTOCOL, cluster_services,
};
pub use k8s_openapi::api::core::v1::Service;
pub use k8s_openapi::api::discovery::v1::EndpointSlice;
pub use watch::CatalogWatcher;

use document::{FileOutput, Located};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Everything one source knows: all of its Services and EndpointSlices.
///
/// It is always a full state, never a delta: the consumer replaces the source's previous state
/// with it. Objects from the catalog always have `metadata.namespace` set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CatalogState {
    /// Services, in load order.
    pub services: Vec<Service>,
    /// EndpointSlices (discovery.k8s.io/v1), in load order.
    pub endpoint_slices: Vec<EndpointSlice>,
}

/// One problem found while loading the catalog, with where it is.
///
/// Displays as `file:line: message`, or `file: message` when no line is known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", place(.file, .line))]
pub struct LoadError {
    /// The file (or the path given) the problem is in.
    pub file: PathBuf,
    /// The 1-based line in `file`, when known.
    pub line: Option<u32>,
    /// What is wrong, lower-case, without a trailing period.
    pub message: String,
}

/// Every problem found while loading the catalog; never empty when returned as an error.
///
/// Displays one [`LoadError`] per line, so an operator sees every mistake in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

/// Loads every Service and EndpointSlice under `paths`.
///
/// A path that is a file is read whatever its extension. A directory is walked recursively,
/// reading `*.yaml`, `*.yml` and `*.json` in sorted order and skipping entries whose name starts
/// with `.` (such as the `..data` link of a ConfigMap mount). A missing path is an error.
///
/// Files hold multi-document YAML, JSON, or a `kind: List` (`ServiceList`, `EndpointSliceList`)
/// as `kubectl get svc,endpointslices -A -o yaml` prints it. Objects of other kinds are skipped.
///
/// Blocking: it reads and parses every file (on scoped threads, one per core), so async callers
/// run it with `spawn_blocking`.
///
/// # Errors
///
/// Returns every error found in every file, not just the first; see [`LoadError`].
pub fn load_paths(paths: &[PathBuf]) -> Result<CatalogState, LoadErrors> {
    let walked = walk::collect_files(paths);
    let mut errors = walked.errors;
    let outputs = load_files(
        &walked
            .files
            .iter()
            .map(|f| f.path.as_path())
            .collect::<Vec<_>>(),
    );

    let mut state = CatalogState::default();
    let mut seen_services: HashMap<(String, String), (usize, u32)> = HashMap::new();
    let mut seen_slices: HashMap<(String, String), (usize, u32)> = HashMap::new();
    for (index, output) in outputs.into_iter().enumerate() {
        let file = &walked.files[index].path;
        errors.extend(output.errors);
        for Located { object, line } in output.services {
            let key = namespaced_name(&object.metadata);
            if let Some(first) = check_duplicate(&mut seen_services, key, (index, line)) {
                errors.push(duplicate_error(
                    &walked.files,
                    file,
                    line,
                    "Service",
                    &object.metadata,
                    first,
                ));
                continue;
            }
            state.services.push(object);
        }
        for Located { object, line } in output.endpoint_slices {
            // Slices written by hand may have no name; only named ones can collide.
            if object
                .metadata
                .name
                .as_deref()
                .is_some_and(|name| !name.is_empty())
            {
                let key = namespaced_name(&object.metadata);
                if let Some(first) = check_duplicate(&mut seen_slices, key, (index, line)) {
                    errors.push(duplicate_error(
                        &walked.files,
                        file,
                        line,
                        "EndpointSlice",
                        &object.metadata,
                        first,
                    ));
                    continue;
                }
            }
            state.endpoint_slices.push(object);
        }
    }

    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    tracing::debug!(
        files = walked.files.len(),
        services = state.services.len(),
        endpoint_slices = state.endpoint_slices.len(),
        "catalog loaded"
    );
    Ok(state)
}

// === impl LoadError ===

impl LoadError {
    /// Creates an error at `file`, optionally at a line.
    pub fn new(file: impl Into<PathBuf>, line: Option<u32>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

/// Formats `file:line` or `file`.
fn place(file: &Path, line: &Option<u32>) -> String {
    match line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    }
}

// === impl LoadErrors ===

impl LoadErrors {
    /// The errors, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

// === helpers ===

/// Parses files on scoped worker threads; the result is in the order of `files`.
fn load_files(files: &[&Path]) -> Vec<FileOutput> {
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    if workers <= 1 {
        return files.iter().map(|file| document::load_file(file)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut outputs: Vec<(usize, FileOutput)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(index) else { break };
                        done.push((index, document::load_file(file)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    outputs.sort_unstable_by_key(|(index, _)| *index);
    outputs.into_iter().map(|(_, output)| output).collect()
}

fn namespaced_name(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, String) {
    (
        metadata.namespace.clone().unwrap_or_default(),
        metadata.name.clone().unwrap_or_default(),
    )
}

/// Records `place` for `key`; returns the earlier place when the key was already seen.
fn check_duplicate(
    seen: &mut HashMap<(String, String), (usize, u32)>,
    key: (String, String),
    place: (usize, u32),
) -> Option<(usize, u32)> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(entry) => Some(*entry.get()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            entry.insert(place);
            None
        }
    }
}

fn duplicate_error(
    files: &[walk::FoundFile],
    file: &Path,
    line: u32,
    kind: &str,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    (first_file, first_line): (usize, u32),
) -> LoadError {
    let (namespace, name) = namespaced_name(metadata);
    LoadError::new(
        file,
        Some(line),
        format!(
            "duplicate {kind} {namespace}/{name}; first defined at {}:{first_line}",
            files[first_file].path.display()
        ),
    )
}
