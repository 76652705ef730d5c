//! The catalog as the DNS cluster zone reads it: only changed files are
//! read again, and only the objects that changed reach the compiler.
//!
//! Control plane. Each poll lists the files and compares each one's
//! metadata (size, mtime, inode) with what was loaded; a poll runs every
//! interval and at once when inotify reports a write or rename in a watched
//! directory ([`super::wake`]); only files that
//! differ are parsed (on scoped threads, as a full load does). Each object
//! is read into its part at once ([`ServicePart`], [`SlicePart`]) and the
//! Kubernetes object is dropped: the catalog keeps, per file, only the
//! names of what it defined.
//!
//! Invariants, the same as a full load's ([`super::load::load_paths`]): a change
//! is delivered only when every file loads without error and no object is
//! defined twice; otherwise every error of every file is reported (each
//! file's errors are remembered from its last parse) and the last good
//! state keeps serving (design invariants I1 and I3). Problems are
//! reported once per change on disk, not once per poll.

use super::document::{FileOutput, Located};
use super::state::{LoadError, LoadErrors};
use super::wake::Wake;
use super::walk;
use crate::cluster::{Key, ObjectBatch, ObjectChange, Read};
use crate::translate::{ServicePart, SlicePart, is_malformed, skipped_service, skipped_slice};
use rustc_hash::FxHashMap as HashMap;
use signpost_model::{BoxFuture, Sink, Source};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The catalog as a source of object changes.
#[derive(Debug)]
pub struct CatalogChanges {
    paths: Vec<PathBuf>,
    poll: Duration,
}

/// What the catalog knows of one file.
#[derive(Debug, Clone, Default)]
struct FileEntry {
    stamp: Option<Stamp>,
    /// Services and named slices it defines, with their lines.
    services: Vec<(Key, u32)>,
    slices: Vec<(Key, u32)>,
    /// Namespaces of the slices without a name (their position names them).
    anonymous: Vec<String>,
    errors: Vec<LoadError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// One file's parse, read into parts.
struct Parsed {
    entry: FileEntry,
    changes: Vec<ObjectChange>,
}

/// The loaded catalog.
#[derive(Default)]
struct Loaded {
    /// Every file, in load order (sorted paths as the walk gives them).
    /// Entries are shared with the catalog being built on a change, so an
    /// unchanged file costs a pointer, not a copy of its keys.
    files: BTreeMap<usize, (PathBuf, Arc<FileEntry>)>,
    /// The last listing: path → stamp, to notice a change.
    listing: Option<Vec<(PathBuf, Option<Stamp>)>>,
    /// Whether a complete state was delivered yet.
    delivered: bool,
    /// The directories of the last listing (to watch for changes).
    dirs: Vec<PathBuf>,
}

// === impl CatalogChanges ===

impl CatalogChanges {
    /// A source over the same paths [`super::load::load_paths`] takes.
    pub fn new(paths: Vec<PathBuf>, poll: Duration) -> Self {
        Self { paths, poll }
    }
}

impl Source<ObjectBatch> for CatalogChanges {
    fn kind(&self) -> &'static str {
        "catalog"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<ObjectBatch>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut loaded = Some(Loaded::default());
            let mut wake = Wake::new();
            loop {
                let Some(mut taken) = loaded.take() else {
                    return;
                };
                let paths = self.paths.clone();
                let sink_now = sink.clone();
                // Stat, read and parse off the runtime's threads.
                let polled = tokio::task::spawn_blocking(move || {
                    taken.poll(&paths, &sink_now);
                    taken
                })
                .await;
                let Ok(polled) = polled else {
                    return;
                };
                let watching_more = wake.watch(&polled.dirs);
                loaded = Some(polled);
                if watching_more {
                    continue;
                }
                // The next poll: at once when a watched directory changes,
                // else after the interval (files inotify cannot see, such as
                // those on network file systems, and directories not yet
                // watched).
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(self.poll) => {}
                    () = wake.changed() => {}
                }
            }
        })
    }
}

// === impl Loaded ===

impl Loaded {
    /// Lists the files; when anything changed, parses the changed files and
    /// delivers their changes, or every problem.
    fn poll(&mut self, paths: &[PathBuf], sink: &Sink<ObjectBatch>) {
        let mut walked = walk::collect_files(paths);
        self.dirs = std::mem::take(&mut walked.dirs);
        let listing: Vec<(PathBuf, Option<Stamp>)> = walked
            .files
            .iter()
            .map(|f| (f.path.clone(), Some(stamp(&f.metadata))))
            .chain(walked.errors.iter().map(|e| (e.file.clone(), None)))
            .collect();
        if self.listing.as_ref() == Some(&listing) {
            return;
        }
        self.listing = Some(listing);
        // Files whose metadata differs from what was loaded are parsed again.
        let known: HashMap<&PathBuf, &Arc<FileEntry>> = self
            .files
            .values()
            .map(|(path, entry)| (path, entry))
            .collect();
        let stale: Vec<&std::path::Path> = walked
            .files
            .iter()
            .filter(|f| {
                known
                    .get(&f.path)
                    .is_none_or(|entry| entry.stamp.as_ref() != Some(&stamp(&f.metadata)))
            })
            .map(|f| f.path.as_path())
            .collect();
        let mut parsed: HashMap<PathBuf, Parsed> = stale
            .iter()
            .zip(super::load::parse_files(&stale, read_file))
            .map(|(path, parsed)| (path.to_path_buf(), parsed))
            .collect();
        for file in &walked.files {
            if let Some(parsed) = parsed.get_mut(&file.path) {
                parsed.entry.stamp = Some(stamp(&file.metadata));
            }
        }
        // The catalog as it would be: every file, old or new.
        let mut next: Vec<(PathBuf, Arc<FileEntry>)> = Vec::with_capacity(walked.files.len());
        for file in &walked.files {
            let entry = match parsed.get(&file.path) {
                Some(parsed) => Arc::new(parsed.entry.clone()),
                None => known[&file.path].clone(),
            };
            next.push((file.path.clone(), entry));
        }
        let mut errors = walked.errors;
        let mut seen_services: HashMap<&Key, (usize, u32)> = HashMap::default();
        let mut seen_slices: HashMap<&Key, (usize, u32)> = HashMap::default();
        for (index, (path, entry)) in next.iter().enumerate() {
            errors.extend(entry.errors.iter().cloned());
            for (kind, keys, seen) in [
                ("Service", &entry.services, &mut seen_services),
                ("EndpointSlice", &entry.slices, &mut seen_slices),
            ] {
                for (key, line) in keys {
                    if let Some(&(first, first_line)) = seen.get(key) {
                        errors.push(LoadError::new(
                            path,
                            Some(*line),
                            format!(
                                "duplicate {kind} {}/{}; first defined at {}:{first_line}",
                                key.0,
                                key.1,
                                next[first].0.display()
                            ),
                        ));
                    } else {
                        seen.insert(key, (index, *line));
                    }
                }
            }
        }
        if !errors.is_empty() {
            sink.problems(LoadErrors(errors).into_problems());
            return;
        }
        // Everything loads: what left (removed files, objects gone from a
        // changed file) is removed first, then what the changed files hold.
        let mut removed: Vec<ObjectChange> = Vec::new();
        let staying: HashMap<&PathBuf, ()> = next.iter().map(|(p, _)| (p, ())).collect();
        for (path, entry) in self.files.values() {
            if staying.contains_key(path) && !parsed.contains_key(path) {
                continue;
            }
            for (key, _) in &entry.services {
                if !seen_services.contains_key(key) {
                    removed.push(ObjectChange::Service(key.clone(), None));
                }
            }
            for (key, _) in &entry.slices {
                if !seen_slices.contains_key(key) {
                    removed.push(ObjectChange::Slice(key.clone(), None));
                }
            }
            for (position, namespace) in entry.anonymous.iter().enumerate() {
                removed.push(ObjectChange::Slice(
                    anonymous_key(namespace, path, position),
                    None,
                ));
            }
        }
        let mut changes = removed;
        for (path, _) in &next {
            if let Some(parsed) = parsed.remove(path) {
                changes.extend(parsed.changes.into_iter().map(|change| match change {
                    // Unnamed slices are named by their file and position.
                    ObjectChange::Slice(key, read) if key.1.starts_with('\u{0}') => {
                        let position: usize = key.1[1..].parse().unwrap_or(0);
                        ObjectChange::Slice(anonymous_key(&key.0, path, position), read)
                    }
                    other => other,
                }));
            }
        }
        let services: usize = next.iter().map(|(_, e)| e.services.len()).sum();
        let slices: usize = next
            .iter()
            .map(|(_, e)| e.slices.len() + e.anonymous.len())
            .sum();
        tracing::debug!(
            files = next.len(),
            services,
            endpoint_slices = slices,
            "catalog loaded"
        );
        self.files = next.into_iter().enumerate().collect();
        let batch = if self.delivered {
            ObjectBatch::Changes(changes)
        } else {
            ObjectBatch::Reset(changes)
        };
        self.delivered = true;
        sink.state(batch);
    }
}

/// The key of an EndpointSlice without a name: its namespace, file and
/// position (such a slice cannot collide with another).
fn anonymous_key(namespace: &str, path: &std::path::Path, position: usize) -> Key {
    (
        namespace.to_owned(),
        format!("\u{0}{}\u{0}{position}", path.display()),
    )
}

/// One file's objects read into parts; the objects themselves are dropped.
fn read_file(output: FileOutput) -> Parsed {
    let mut entry = FileEntry {
        errors: output.errors,
        ..FileEntry::default()
    };
    let mut changes = Vec::new();
    for Located { object, line } in output.services {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let key = (namespace.clone(), name.clone());
        entry.services.push((key.clone(), line));
        let part = (!is_malformed(&object))
            .then(|| Arc::new(ServicePart::new(&namespace, &name, &object)));
        let skipped = skipped_service(&object).into_iter().collect();
        changes.push(ObjectChange::Service(key, Some(Read { part, skipped })));
    }
    for Located { object, line } in output.endpoint_slices {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let key = if name.is_empty() {
            // Named by file and position once the file's path is known.
            let position = entry.anonymous.len();
            entry.anonymous.push(namespace.clone());
            (namespace, format!("\u{0}{position}"))
        } else {
            entry.slices.push(((namespace.clone(), name.clone()), line));
            (namespace, name)
        };
        let read = Read {
            part: Some(Arc::new(SlicePart::new(&object))),
            skipped: skipped_slice(&object),
        };
        changes.push(ObjectChange::Slice(key, Some(read)));
    }
    Parsed { entry, changes }
}

fn stamp(metadata: &std::fs::Metadata) -> Stamp {
    Stamp {
        len: metadata.len(),
        modified: metadata.modified().ok(),
        inode: inode(metadata),
    }
}

#[cfg(unix)]
fn inode(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.ino()
}

#[cfg(not(unix))]
fn inode(_metadata: &std::fs::Metadata) -> u64 {
    0
}
