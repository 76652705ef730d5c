//! The catalog as the DNS cluster zone reads it: only changed files are
//! read again, and only the objects of changed files reach the compiler.
//!
//! Control plane. When inotify reports writes or renames of named catalog
//! files ([`super::wake`]), the poll stats only those files; otherwise
//! (the first poll, a removal, a hidden name such as a ConfigMap's `..data`
//! swap, a new directory, the interval) it lists every file and compares
//! each one's metadata (size, mtime, inode) with what was loaded. The
//! interval is the configured one while some directory is not watched, and
//! ten times that as a safety net while inotify watches them all. Only
//! files that differ are parsed (on scoped threads, as a full load does).
//! Each object is read into its part at once ([`ServicePart`],
//! [`SlicePart`]) and the Kubernetes object is dropped: the catalog keeps,
//! per file, only the names of what it defined, and a count per key hash
//! of the names every file defines, so a change checks only its own names
//! for duplicates (the full comparison runs only when a hash repeats, and
//! names both places).
//!
//! Invariants, the same as a full load's ([`super::load::load_paths`]): a change
//! is delivered only when every file loads without error and no object is
//! defined twice; otherwise every error of every file is reported (each
//! file's errors are remembered from its last parse) and the last good
//! state keeps serving (design invariants I1 and I3). Problems are
//! reported once per change on disk, not once per poll.

use super::document::{FileOutput, Located};
use super::state::{LoadError, LoadErrors};
use super::wake::{Hint, Wake};
use super::walk;
use crate::cluster::{Key, ObjectBatch, ObjectChange, Read};
use crate::translate::{ServicePart, SlicePart, is_malformed, skipped_service, skipped_slice};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use signpost_model::{BoxFuture, Sink, Source};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The catalog as a source of object changes.
#[derive(Debug)]
pub struct CatalogChanges {
    paths: Vec<PathBuf>,
    poll: Duration,
}

/// With every directory watched by inotify, the full listing runs this many
/// poll intervals apart (2.5 s at the default 250 ms); a woken poll stats
/// only the files the events name.
const SAFETY_NET: u32 = 10;

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
    /// Every file of the last delivered state, in load order (sorted paths
    /// as the walk gives them). Entries are shared with the catalog being
    /// built on a change, so an unchanged file costs a pointer, not a copy
    /// of its keys.
    files: Vec<(PathBuf, Arc<FileEntry>)>,
    /// The last listing: path → stamp, to notice a change.
    listing: Option<Vec<(PathBuf, Option<Stamp>)>>,
    /// Where each file of the listing is in `files` (for a hint's files).
    listed: HashMap<PathBuf, usize>,
    /// The last poll delivered the listing as it is (no error anywhere), so
    /// `files` is the listing and a hint's files can be checked alone.
    clean: bool,
    /// How many files define each Service and each named EndpointSlice key
    /// of `files` (by a hash of the key): a change checks only its own keys
    /// for duplicates.
    defined: Defined,
    /// Whether a complete state was delivered yet.
    delivered: bool,
    /// The directories of the last listing (to watch for changes).
    dirs: Vec<PathBuf>,
}

/// Definitions per key hash, Services and EndpointSlices apart. A hash
/// shared by two different keys only sends a change down the full check,
/// which compares the keys themselves.
#[derive(Default)]
struct Defined {
    services: HashMap<u64, u32>,
    slices: HashMap<u64, u32>,
}

/// A change to the files: what the next state would be.
struct Next {
    /// Every file in load order, old or new.
    files: Vec<(PathBuf, Arc<FileEntry>)>,
    /// The files parsed again (changed or new), by path.
    parsed: HashMap<PathBuf, Parsed>,
    /// Paths that could not be listed.
    errors: Vec<LoadError>,
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
            let mut hint = Hint::Everything;
            loop {
                let Some(mut taken) = loaded.take() else {
                    return;
                };
                let paths = self.paths.clone();
                let sink_now = sink.clone();
                let hint_now = std::mem::replace(&mut hint, Hint::Everything);
                // Stat, read and parse off the runtime's threads.
                let polled = tokio::task::spawn_blocking(move || {
                    taken.poll(&paths, &hint_now, &sink_now);
                    taken
                })
                .await;
                let Ok(polled) = polled else {
                    return;
                };
                let watching_more = wake.watch(&polled.dirs);
                // Every directory watched: a change wakes the poll, and the
                // interval's full listing is only a safety net (file
                // systems whose changes inotify does not see, such as a
                // network file system's from other hosts, or a symlinked
                // file's target elsewhere).
                let interval = if wake.covers(&polled.dirs) {
                    self.poll.saturating_mul(SAFETY_NET)
                } else {
                    self.poll
                };
                loaded = Some(polled);
                if watching_more {
                    continue;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(interval) => {
                        let _ = wake.take();
                    }
                    () = wake.changed() => hint = wake.take(),
                }
            }
        })
    }
}

// === impl Loaded ===

impl Loaded {
    /// Looks at what `hint` names (every file when it says so); when
    /// anything changed, parses the changed files and delivers their
    /// changes, or every problem.
    fn poll(&mut self, paths: &[PathBuf], hint: &Hint, sink: &Sink<ObjectBatch>) {
        if let Hint::Files(files) = hint
            && self.poll_files(files, sink)
        {
            return;
        }
        self.poll_all(paths, sink);
    }

    /// Stats only `files`; false when that cannot decide (a file not in
    /// the listing or gone, or the last poll found a problem): the caller
    /// lists everything then.
    fn poll_files(&mut self, files: &[PathBuf], sink: &Sink<ObjectBatch>) -> bool {
        if !self.clean {
            return false;
        }
        let Some(listing) = &mut self.listing else {
            return false;
        };
        let mut stale: Vec<(usize, Stamp)> = Vec::new();
        for file in files {
            let Some(&at) = self.listed.get(file) else {
                return false;
            };
            let Ok(metadata) = std::fs::metadata(file) else {
                return false;
            };
            let now = stamp(&metadata);
            if self.files[at].1.stamp.as_ref() != Some(&now) {
                stale.push((at, now));
            }
        }
        if stale.is_empty() {
            return true;
        }
        for (at, now) in &stale {
            listing[*at].1 = Some(now.clone());
        }
        let paths: Vec<&Path> = stale
            .iter()
            .map(|(at, _)| self.files[*at].0.as_path())
            .collect();
        let mut parsed: HashMap<PathBuf, Parsed> = HashMap::default();
        for ((at, now), mut one) in stale
            .iter()
            .zip(super::load::parse_files(&paths, read_file))
        {
            one.entry.stamp = Some(now.clone());
            parsed.insert(self.files[*at].0.clone(), one);
        }
        let files = self
            .files
            .iter()
            .map(|(path, entry)| match parsed.get_mut(path) {
                Some(one) => (path.clone(), Arc::new(std::mem::take(&mut one.entry))),
                None => (path.clone(), entry.clone()),
            })
            .collect();
        self.apply(
            Next {
                files,
                parsed,
                errors: Vec::new(),
            },
            sink,
        );
        true
    }

    /// Lists the files; when anything changed, parses the changed files and
    /// delivers their changes, or every problem.
    fn poll_all(&mut self, paths: &[PathBuf], sink: &Sink<ObjectBatch>) {
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
        self.listed = walked
            .files
            .iter()
            .enumerate()
            .map(|(at, file)| (file.path.clone(), at))
            .collect();
        self.listing = Some(listing);
        // Files whose metadata differs from what was loaded are parsed again.
        let known: HashMap<&PathBuf, &Arc<FileEntry>> = self
            .files
            .iter()
            .map(|(path, entry)| (path, entry))
            .collect();
        let stale: Vec<&Path> = walked
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
        let mut files: Vec<(PathBuf, Arc<FileEntry>)> = Vec::with_capacity(walked.files.len());
        for file in &walked.files {
            let entry = match parsed.get_mut(&file.path) {
                // Moved: only the parse's changes are read after this.
                Some(parsed) => Arc::new(std::mem::take(&mut parsed.entry)),
                None => known[&file.path].clone(),
            };
            files.push((file.path.clone(), entry));
        }
        drop(known);
        self.apply(
            Next {
                files,
                parsed,
                errors: walked.errors,
            },
            sink,
        );
    }

    /// Delivers `next` when every file loads and no object is defined
    /// twice; otherwise reports every problem and keeps the last state.
    fn apply(&mut self, next: Next, sink: &Sink<ObjectBatch>) {
        let Next {
            files: next,
            mut parsed,
            mut errors,
        } = next;
        // Files that leave (removed, or parsed again) and files that arrive.
        let staying: HashSet<&PathBuf> = next.iter().map(|(path, _)| path).collect();
        let leaving: Vec<(&PathBuf, &FileEntry)> = self
            .files
            .iter()
            .filter(|(path, _)| !staying.contains(path) || parsed.contains_key(path))
            .map(|(path, entry)| (path, &**entry))
            .collect();
        let arriving: Vec<&FileEntry> = next
            .iter()
            .filter(|(path, _)| parsed.contains_key(path))
            .map(|(_, entry)| &**entry)
            .collect();
        // The last state had no problem, so only an arriving file can have
        // one: its errors, or a key another file defines too (the count of
        // the key's hash says so; the full check compares the keys).
        let old = leaving.iter().map(|(_, entry)| *entry);
        let twice = self.defined.replace(old, arriving.iter().copied());
        if twice || !errors.is_empty() || arriving.iter().any(|e| !e.errors.is_empty()) {
            errors.extend(problems(&next));
            if !errors.is_empty() {
                let old = leaving.iter().map(|(_, entry)| *entry);
                self.defined.replace(arriving.iter().copied(), old);
                self.clean = false;
                sink.problems(LoadErrors(errors).into_problems());
                return;
            }
            // Otherwise two keys share a hash: counted apart, no harm.
        }
        // Everything loads: what left (removed files, objects gone from a
        // changed file) is removed first, then what the changed files hold.
        // A key the last state defined once is defined again only if an
        // arriving file defines it.
        // (Nothing leaves on the first load: no need to index what arrives.)
        let mut kept_services: HashSet<&Key> = HashSet::default();
        let mut kept_slices: HashSet<&Key> = HashSet::default();
        for entry in arriving.iter().filter(|_| !leaving.is_empty()) {
            kept_services.extend(entry.services.iter().map(|(key, _)| key));
            kept_slices.extend(entry.slices.iter().map(|(key, _)| key));
        }
        let mut changes: Vec<ObjectChange> = Vec::new();
        for (path, entry) in &leaving {
            for (key, _) in &entry.services {
                if !kept_services.contains(key) {
                    changes.push(ObjectChange::Service(key.clone(), None));
                }
            }
            for (key, _) in &entry.slices {
                if !kept_slices.contains(key) {
                    changes.push(ObjectChange::Slice(key.clone(), None));
                }
            }
            for (position, namespace) in entry.anonymous.iter().enumerate() {
                changes.push(ObjectChange::Slice(
                    anonymous_key(namespace, path, position),
                    None,
                ));
            }
        }
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
        self.files = next;
        self.clean = true;
        let batch = if self.delivered {
            ObjectBatch::Changes(changes)
        } else {
            ObjectBatch::Reset(changes)
        };
        self.delivered = true;
        sink.state(batch);
    }
}

/// Every file's errors and every duplicate definition in `files` (at the
/// second one, naming the first), file by file.
fn problems(files: &[(PathBuf, Arc<FileEntry>)]) -> Vec<LoadError> {
    let mut errors = Vec::new();
    let mut seen_services: HashMap<&Key, (usize, u32)> = HashMap::default();
    let mut seen_slices: HashMap<&Key, (usize, u32)> = HashMap::default();
    for (index, (path, entry)) in files.iter().enumerate() {
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
                            files[first].0.display()
                        ),
                    ));
                } else {
                    seen.insert(key, (index, *line));
                }
            }
        }
    }
    errors
}

// === impl Defined ===

impl Defined {
    /// Takes out the keys of `leaving` and adds those of `arriving`; true
    /// when a key hash of `arriving` is now defined more than once.
    fn replace<'a>(
        &mut self,
        leaving: impl Iterator<Item = &'a FileEntry>,
        arriving: impl Iterator<Item = &'a FileEntry>,
    ) -> bool {
        for entry in leaving {
            for (keys, counts) in [
                (&entry.services, &mut self.services),
                (&entry.slices, &mut self.slices),
            ] {
                for (key, _) in keys {
                    let hash = key_hash(key);
                    if let Some(count) = counts.get_mut(&hash) {
                        *count -= 1;
                        if *count == 0 {
                            counts.remove(&hash);
                        }
                    }
                }
            }
        }
        let mut twice = false;
        for entry in arriving {
            for (keys, counts) in [
                (&entry.services, &mut self.services),
                (&entry.slices, &mut self.slices),
            ] {
                for (key, _) in keys {
                    let count = counts.entry(key_hash(key)).or_insert(0);
                    *count += 1;
                    twice |= *count > 1;
                }
            }
        }
        twice
    }
}

/// The hash of a `namespace/name` key in [`Defined`].
fn key_hash(key: &Key) -> u64 {
    use std::hash::BuildHasher as _;
    rustc_hash::FxBuildHasher.hash_one(key)
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
