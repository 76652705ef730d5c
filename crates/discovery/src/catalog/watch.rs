//! Polling change detection for the catalog files.
//!
//! Control plane. No threads, no timers, no inotify: the owner calls
//! [`CatalogWatcher::fingerprint_changed`] on its own schedule (every 250 ms, say) and reloads
//! when it says so. A poll only lists directories and stats files.
//!
//! Invariant: the fingerprint is taken before the owner loads, so a change made while a load is
//! running is seen by the next poll; a change is never lost, at worst loaded twice.

use std::path::PathBuf;
use std::time::SystemTime;

use super::load::load_paths;
use super::state::{CatalogState, LoadErrors};
use super::walk;

/// Watches catalog paths by polling file metadata.
///
/// ```no_run
/// # use signpost_discovery::catalog::CatalogWatcher;
/// let mut watcher = CatalogWatcher::new(vec!["/etc/signpost/catalog".into()]);
/// if watcher.fingerprint_changed() {
///     match watcher.load() {
///         Ok(state) => { /* hand the full state to the compiler */ }
///         Err(errors) => { /* keep serving the previous state; report every error */ }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct CatalogWatcher {
    paths: Vec<PathBuf>,
    last: Option<Vec<Stamp>>,
}

/// What one path looked like at the last poll.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    state: StampState,
}

#[derive(Debug, PartialEq, Eq)]
enum StampState {
    /// The path could not be read (missing, dangling link, no permission).
    Unreadable(String),
    File {
        len: u64,
        modified: Option<SystemTime>,
        inode: u64,
    },
}

// === impl CatalogWatcher ===

impl CatalogWatcher {
    /// Creates a watcher over the same paths [`load_paths`] takes.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths, last: None }
    }

    /// The watched paths.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Cheap check (stat only): true when any file under the paths was added, removed, or
    /// changed (mtime, size, inode) since the last call to `fingerprint_changed` (first call
    /// returns true).
    pub fn fingerprint_changed(&mut self) -> bool {
        let walked = walk::collect_files(&self.paths);
        let mut stamps: Vec<Stamp> = walked
            .files
            .into_iter()
            .map(|file| Stamp {
                state: StampState::File {
                    len: file.metadata.len(),
                    modified: file.metadata.modified().ok(),
                    inode: inode(&file.metadata),
                },
                path: file.path,
            })
            .collect();
        stamps.extend(walked.errors.into_iter().map(|error| Stamp {
            path: error.file,
            state: StampState::Unreadable(error.message),
        }));
        let changed = self.last.as_ref() != Some(&stamps);
        self.last = Some(stamps);
        changed
    }

    /// Loads the watched paths; see [`load_paths`].
    ///
    /// # Errors
    ///
    /// Every error in every file.
    pub fn load(&self) -> Result<CatalogState, LoadErrors> {
        load_paths(&self.paths)
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
