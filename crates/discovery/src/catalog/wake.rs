//! Wakes the catalog's poll the moment a file in a watched directory is
//! written, moved or removed (Linux inotify), so a change reaches answers
//! within milliseconds instead of up to one poll interval later, and says
//! which files to look at, so a one-file change stats one file instead of
//! listing every directory.
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
//! `IN_MODIFY`, which fire while a writer is still writing. A hint names
//! files ([`Hint::Files`]) only when every event since the last poll was a
//! write, rename into place or attribute change of a visible catalog file
//! (`*.yaml`, `*.yml`, `*.json`, no leading `.`); anything else (a removal,
//! a hidden name such as `..data`, a directory, a lost watch, a queue
//! overflow) asks for a full listing ([`Hint::Everything`]). When inotify
//! is not available (no kernel support, the watch limit reached), the
//! catalog polls every interval as before and says so once at debug level.

use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Events read at once; a burst larger than this is read on the next wake.
const BUFFER: usize = 4096;

/// Files named by events before the hint gives up and asks for a listing.
const MOST_FILES: usize = 64;

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

/// What the events since the last poll say to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hint {
    /// List every directory and stat every file.
    Everything,
    /// Stat only these files (each a visible catalog file in a watched
    /// directory, as the walk names it: the directory joined with the name).
    Files(Vec<PathBuf>),
}

/// The inotify watches of the catalog's directories.
pub(crate) struct Wake {
    stream: Option<EventStream<[u8; BUFFER]>>,
    watched: HashSet<PathBuf>,
    /// The directory of each watch, to name an event's file.
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// What the events since the last [`Wake::take`] ask for.
    pending: Option<Hint>,
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
            dirs: HashMap::new(),
            pending: None,
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
                Ok(descriptor) => {
                    self.watched.insert(dir.clone());
                    self.dirs.insert(descriptor, dir.clone());
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

    /// True when every one of `dirs` is watched: a change anywhere in them
    /// wakes the poll, so the interval poll is only a safety net.
    pub(crate) fn covers(&self, dirs: &[PathBuf]) -> bool {
        self.stream.is_some() && dirs.iter().all(|dir| self.watched.contains(dir))
    }

    /// Returns when an event arrived, after reading every event already
    /// queued; never when inotify is not available.
    pub(crate) async fn changed(&mut self) {
        use futures_util::FutureExt as _;
        use futures_util::StreamExt as _;
        let Some(stream) = &mut self.stream else {
            return std::future::pending().await;
        };
        let mut next = stream.next().await;
        loop {
            match next {
                Some(Ok(event)) => {
                    let hint = self.hint_of(event.wd, event.mask, event.name.as_deref());
                    self.note(hint);
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "catalog: inotify failed, polling only");
                    self.stream = None;
                    self.note(Hint::Everything);
                    return;
                }
                None => {
                    self.stream = None;
                    self.note(Hint::Everything);
                    return;
                }
            }
            // Whatever else is queued goes into the same hint.
            let Some(stream) = &mut self.stream else {
                return;
            };
            match stream.next().now_or_never() {
                Some(event) => next = event,
                None => return,
            }
        }
    }

    /// What the events since the last call ask the poll to look at
    /// (everything when there were none: an interval poll).
    pub(crate) fn take(&mut self) -> Hint {
        self.pending.take().unwrap_or(Hint::Everything)
    }

    fn note(&mut self, hint: Hint) {
        self.pending = Some(match (self.pending.take(), hint) {
            (None, hint) => hint,
            (Some(Hint::Files(mut files)), Hint::Files(more)) => {
                for file in more {
                    if !files.contains(&file) {
                        files.push(file);
                    }
                }
                if files.len() > MOST_FILES {
                    Hint::Everything
                } else {
                    Hint::Files(files)
                }
            }
            _ => Hint::Everything,
        });
    }

    fn hint_of(&mut self, wd: WatchDescriptor, mask: EventMask, name: Option<&OsStr>) -> Hint {
        // The kernel dropped this watch (its directory went away): the next
        // poll's walk decides whether to watch it again.
        if mask.contains(EventMask::IGNORED) {
            self.watched.clear();
            self.dirs.clear();
            return Hint::Everything;
        }
        let file_event = (mask.contains(EventMask::CLOSE_WRITE)
            || mask.contains(EventMask::MOVED_TO)
            || mask.contains(EventMask::ATTRIB))
            && !mask.contains(EventMask::ISDIR)
            && !mask.contains(EventMask::Q_OVERFLOW);
        match (file_event, name, self.dirs.get(&wd)) {
            (true, Some(name), Some(dir)) if is_catalog_name(name) => {
                Hint::Files(vec![dir.join(name)])
            }
            _ => Hint::Everything,
        }
    }
}

/// A name the walk reads inside a directory: visible, with a catalog
/// extension.
fn is_catalog_name(name: &OsStr) -> bool {
    !name.as_encoded_bytes().starts_with(b".")
        && super::walk::has_catalog_extension(Path::new(name))
}
