//! Finds the catalog files under the configured paths.
//!
//! Control plane, synchronous, stat and readdir only. Shared by the loader and the watcher so
//! both see exactly the same set of files.
//!
//! Invariants: a path given explicitly is used whatever its name; inside directories only
//! `*.yaml`, `*.yml` and `*.json` are taken, names starting with `.` are skipped (the `..data`
//! and `..2024_..` entries of a ConfigMap mount), visible symlinks are followed, each directory
//! is entered at most once (no symlink loops), entries come in byte-wise sorted order, and each
//! file appears once.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use super::state::LoadError;

/// Extensions read when walking a directory.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// A file to load, with the metadata read while finding it.
#[derive(Debug)]
pub(crate) struct FoundFile {
    pub(crate) path: PathBuf,
    pub(crate) metadata: Metadata,
}

/// The files found, and the paths that could not be read.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    pub(crate) files: Vec<FoundFile>,
    /// The directories entered, and the directory of each path given as a
    /// file: where a change to the catalog shows (for change notification).
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) errors: Vec<LoadError>,
}

/// Lists every catalog file under `paths`, in load order.
pub(crate) fn collect_files(paths: &[PathBuf]) -> Walk {
    let mut walker = Walker::default();
    for path in paths {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => walker.walk_dir(path),
            Ok(metadata) => {
                if let Some(parent) = path.parent() {
                    let parent = if parent.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        parent
                    };
                    walker.walk.dirs.push(parent.to_path_buf());
                }
                walker.push_file(path.clone(), metadata);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                walker
                    .walk
                    .errors
                    .push(LoadError::new(path, None, "path does not exist"));
            }
            Err(err) => {
                walker
                    .walk
                    .errors
                    .push(LoadError::new(path, None, format!("cannot read: {err}")))
            }
        }
    }
    walker.walk
}

#[derive(Default)]
struct Walker {
    walk: Walk,
    /// Canonical paths of the directories entered and files taken, so a symlink loop or a path
    /// given twice does not load anything twice.
    seen: HashSet<PathBuf>,
}

// === impl Walker ===

impl Walker {
    fn walk_dir(&mut self, dir: &Path) {
        if !self.first_visit(dir) {
            return;
        }
        self.walk.dirs.push(dir.to_path_buf());
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                self.walk.errors.push(LoadError::new(
                    dir,
                    None,
                    format!("cannot read directory: {err}"),
                ));
                return;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name();
                    if !name.as_encoded_bytes().starts_with(b".") {
                        names.push(name);
                    }
                }
                Err(err) => {
                    self.walk.errors.push(LoadError::new(
                        dir,
                        None,
                        format!("cannot read directory: {err}"),
                    ));
                }
            }
        }
        names.sort_unstable();
        for name in names {
            let path = dir.join(&name);
            // `fs::metadata` follows symlinks: a ConfigMap's visible names are links into `..data`.
            match fs::metadata(&path) {
                Ok(metadata) if metadata.is_dir() => self.walk_dir(&path),
                Ok(metadata) if has_catalog_extension(&path) => self.push_file(path, metadata),
                Ok(_) => {}
                // Gone since the directory was listed (a writer's temporary file renamed over
                // its target): nothing to read, and the change that removed it brings a fresh
                // load. A dangling symlink stays and is reported, but only under a name the
                // walk would read: another file's problems are not the catalog's.
                Err(err) => {
                    let vanished = err.kind() == std::io::ErrorKind::NotFound
                        && fs::symlink_metadata(&path).is_err();
                    if !vanished && has_catalog_extension(&path) {
                        self.walk.errors.push(LoadError::new(
                            &path,
                            None,
                            format!("cannot read: {err}"),
                        ));
                    }
                }
            }
        }
    }

    fn push_file(&mut self, path: PathBuf, metadata: Metadata) {
        if self.first_visit(&path) {
            self.walk.files.push(FoundFile { path, metadata });
        }
    }

    fn first_visit(&mut self, path: &Path) -> bool {
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.seen.insert(canonical)
    }
}

pub(crate) fn has_catalog_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| EXTENSIONS.iter().any(|want| ext.eq_ignore_ascii_case(want)))
}
