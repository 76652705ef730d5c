//! Reading every catalog file into one state, on scoped threads.

use super::document::{self, FileOutput, Located};
use super::state::{CatalogState, LoadError, LoadErrors};
use super::walk;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// Loads every Service, EndpointSlice, Ingress, Node and Pod under `paths`.
///
/// A path that is a file is read whatever its extension. A directory is walked recursively,
/// reading `*.yaml`, `*.yml` and `*.json` in sorted order and skipping entries whose name starts
/// with `.` (such as the `..data` link of a ConfigMap mount). A missing path is an error.
///
/// Files hold multi-document YAML, JSON, or a `kind: List`
/// (`ServiceList`, `EndpointSliceList`, `IngressList`, `NodeList`, `PodList`) as
/// `kubectl get svc,endpointslices,ingresses,nodes,pods -A -o yaml` prints it. Objects of other
/// kinds are skipped.
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
    let mut seen_ingresses: HashMap<(String, String), (usize, u32)> = HashMap::new();
    let mut seen_nodes: HashMap<(String, String), (usize, u32)> = HashMap::new();
    let mut seen_pods: HashMap<(String, String), (usize, u32)> = HashMap::new();
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
            state.services.push(std::sync::Arc::new(object));
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
            state.endpoint_slices.push(std::sync::Arc::new(object));
        }
        let files = &walked.files;
        for Located { object, line } in output.ingresses {
            let meta = &object.metadata;
            match unique(
                &mut seen_ingresses,
                files,
                file,
                line,
                "Ingress",
                meta,
                index,
            ) {
                Some(error) => errors.push(error),
                None => state.ingresses.push(Arc::new(object)),
            }
        }
        for Located { object, line } in output.nodes {
            match unique(
                &mut seen_nodes,
                files,
                file,
                line,
                "Node",
                &object.metadata,
                index,
            ) {
                Some(error) => errors.push(error),
                None => state.nodes.push(Arc::new(object)),
            }
        }
        for Located { object, line } in output.pods {
            match unique(
                &mut seen_pods,
                files,
                file,
                line,
                "Pod",
                &object.metadata,
                index,
            ) {
                Some(error) => errors.push(error),
                None => state.pods.push(Arc::new(object)),
            }
        }
    }

    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    tracing::debug!(
        files = walked.files.len(),
        services = state.services.len(),
        endpoint_slices = state.endpoint_slices.len(),
        ingresses = state.ingresses.len(),
        nodes = state.nodes.len(),
        pods = state.pods.len(),
        "catalog loaded"
    );
    Ok(state)
}

// === helpers ===

/// Records an object's name; returns the duplicate error when it was seen.
fn unique(
    seen: &mut HashMap<(String, String), (usize, u32)>,
    files: &[walk::FoundFile],
    file: &Path,
    line: u32,
    kind: &str,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    index: usize,
) -> Option<LoadError> {
    let first = check_duplicate(seen, namespaced_name(metadata), (index, line))?;
    Some(duplicate_error(files, file, line, kind, metadata, first))
}

/// Parses files on scoped worker threads; the result is in the order of `files`.
fn load_files(files: &[&Path]) -> Vec<FileOutput> {
    parse_files(files, |output| output)
}

/// Parses files on scoped worker threads and hands each file's output to
/// `read` on the thread that parsed it (so a caller that keeps only parts of
/// the objects never holds every file's objects at once); the result is in
/// the order of `files`.
pub(crate) fn parse_files<T: Send>(
    files: &[&Path],
    read: impl Fn(FileOutput) -> T + Sync,
) -> Vec<T> {
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    if workers <= 1 {
        return files
            .iter()
            .map(|file| read(document::load_file(file)))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let read = &read;
    let mut outputs: Vec<(usize, T)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(index) else { break };
                        done.push((index, read(document::load_file(file))));
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
