//! Wakes the catalog's poll the moment a file in a watched directory is
//! written, moved or removed (Linux inotify), so a change reaches answers
//! within milliseconds instead of up to one poll interval later.
//!
//! Control plane, async (the events arrive on the runtime's reactor).
//!
//! Invariants: a wake-up is only a hint. What changed is always decided by
//! the poll itself (file metadata compared with what was loaded), so a lost,
//! duplicated or spurious event costs at most one poll interval or one extra
//! stat pass, never a wrong state. Events are taken on writes that finish
//! (`IN_CLOSE_WRITE`), renames into or out of a directory (`IN_MOVED_TO`,
//! `IN_MOVED_FROM`: an atomic replace, the `..data` swap of a ConfigMap
//! mount), removals and attribute changes; not on `IN_CREATE` or
//! `IN_MODIFY`, which fire while a writer is still writing. When inotify is
//! not available (no kernel support, the watch limit reached), the catalog
//! polls every interval as before and says so once at debug level.

use inotify::{EventStream, Inotify, WatchMask};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Events read at once; a burst larger than this is read on the next wake.
const BUFFER: usize = 4096;

/// Directory events that mean a catalog file may have changed.
fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ATTRIB
}

/// The inotify watches of the catalog's directories.
pub(crate) struct Wake {
    stream: Option<EventStream<[u8; BUFFER]>>,
    watched: HashSet<PathBuf>,
}

// === impl Wake ===

impl Wake {
    /// A watcher with no directories yet; must be called inside the tokio
    /// runtime. Without inotify it never wakes.
    pub(crate) fn new() -> Self {
        let stream = Inotify::init()
            .and_then(|inotify| inotify.into_event_stream([0u8; BUFFER]))
            .map_err(|error| {
                tracing::debug!(%error, "catalog: no inotify, polling only");
            })
            .ok();
        Self {
            stream,
            watched: HashSet::new(),
        }
    }

    /// Watches each of `dirs` not yet watched; true when a watch was added
    /// (the caller polls once more then: a change made between its listing
    /// and the new watch would otherwise wait for the interval). A directory
    /// removed since loses its watch in the kernel; it is watched again when
    /// it returns.
    pub(crate) fn watch(&mut self, dirs: &[PathBuf]) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        let mut added = false;
        let mut watches = stream.watches();
        let current: HashSet<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        self.watched.retain(|dir| current.contains(dir.as_path()));
        for dir in dirs {
            if self.watched.contains(dir) {
                continue;
            }
            match watches.add(dir, mask()) {
                Ok(_) => {
                    self.watched.insert(dir.clone());
                    added = true;
                }
                Err(error) => {
                    tracing::debug!(
                        dir = %dir.display(),
                        %error,
                        "catalog: cannot watch directory, polling it"
                    );
                }
            }
        }
        added
    }

    /// Returns when an event arrived; never when inotify is not available.
    pub(crate) async fn changed(&mut self) {
        use futures_util::StreamExt as _;
        let Some(stream) = &mut self.stream else {
            return std::future::pending().await;
        };
        match stream.next().await {
            Some(Ok(event)) => {
                // The kernel dropped this watch (its directory went away):
                // the next poll's walk decides whether to watch it again.
                if event.mask.contains(inotify::EventMask::IGNORED) {
                    self.watched.clear();
                }
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "catalog: inotify failed, polling only");
                self.stream = None;
            }
            None => self.stream = None,
        }
    }
}
