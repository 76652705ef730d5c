//! The state file: objects and the resourceVersion counter survive a killed and restarted process.
//!
//! Two files: `FILE`, a snapshot written atomically (temporary file, fsync, rename), and `FILE.journal`,
//! one line appended per write. Both are JSON lines:
//!
//! ```text
//! FILE:          {"resourceVersion":"1234"}                        first line: the counter
//!                {"rv":"17","group":"","resource":"services","object":{...}}
//! FILE.journal:  {"rv":"1235","group":"","resource":"services","namespace":"a","name":"b","object":{...}|null}
//! ```
//!
//! Loading reads the snapshot, replays journal lines newer than it (a torn last line is ignored), then
//! writes a fresh snapshot and empties the journal. The journal is written with one `write` per line and no
//! fsync: a killed process loses nothing (the kernel holds the data); a machine crash may lose the tail,
//! which a test fake can afford. When the journal grows past twice the live objects (and 10,000 lines) the
//! store writes a new snapshot.
//!
//! Control plane of the fake; called with the store's lock held.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// An error reading or writing the state file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file could not be read or written.
    #[error("state file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of the snapshot is not what this module writes.
    #[error("state file {path} line {line}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One object read back from the state file.
pub(crate) struct LoadedObject {
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) object: Value,
    pub(crate) rv: u64,
}

/// What a state file held.
pub(crate) struct Loaded {
    pub(crate) rv: u64,
    pub(crate) objects: Vec<LoadedObject>,
}

/// The open journal of a state file.
pub(crate) struct Journal {
    path: PathBuf,
    journal_path: PathBuf,
    file: File,
    lines: usize,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

fn rv_of(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Reads the snapshot and journal at `path` (both may be missing: an empty state).
pub(crate) fn load(path: &Path) -> Result<Loaded, StateError> {
    let mut loaded = Loaded {
        rv: 0,
        objects: Vec::new(),
    };
    // Keyed by (group, resource, namespace, name) so journal lines replace snapshot objects.
    let mut index: std::collections::HashMap<(String, String, String, String), usize> =
        std::collections::HashMap::new();
    match File::open(path) {
        Ok(file) => {
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(io_error(path))?;
                if line.trim().is_empty() {
                    continue;
                }
                let format = |message: &str| StateError::Format {
                    path: path.to_owned(),
                    line: n + 1,
                    message: message.to_owned(),
                };
                let value: Value =
                    serde_json::from_str(&line).map_err(|e| format(&e.to_string()))?;
                if n == 0 {
                    loaded.rv = rv_of(&value["resourceVersion"])
                        .ok_or_else(|| format("first line must hold resourceVersion"))?;
                    continue;
                }
                let object = value["object"].clone();
                let key = (
                    value["group"].as_str().unwrap_or("").to_owned(),
                    value["resource"].as_str().unwrap_or("").to_owned(),
                    object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                );
                index.insert(key.clone(), loaded.objects.len());
                loaded.objects.push(LoadedObject {
                    group: key.0,
                    resource: key.1,
                    rv: rv_of(&value["rv"]).ok_or_else(|| format("object line without rv"))?,
                    object,
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(path)(e)),
    }
    let journal = journal_path(path);
    match File::open(&journal) {
        Ok(file) => {
            for line in BufReader::new(file).lines() {
                let line = line.map_err(io_error(&journal))?;
                // A torn last line (killed mid-write) is not valid JSON: stop there.
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    break;
                };
                let Some(rv) = rv_of(&value["rv"]) else {
                    break;
                };
                if rv <= loaded.rv {
                    continue;
                }
                loaded.rv = rv;
                let key = (
                    value["group"].as_str().unwrap_or("").to_owned(),
                    value["resource"].as_str().unwrap_or("").to_owned(),
                    value["namespace"].as_str().unwrap_or("").to_owned(),
                    value["name"].as_str().unwrap_or("").to_owned(),
                );
                let object = value["object"].clone();
                match (index.get(&key), object.is_null()) {
                    (Some(&i), true) => loaded.objects[i].rv = 0,
                    (Some(&i), false) => {
                        loaded.objects[i].object = object;
                        loaded.objects[i].rv = rv;
                    }
                    (None, true) => {}
                    (None, false) => {
                        index.insert(key.clone(), loaded.objects.len());
                        loaded.objects.push(LoadedObject {
                            group: key.0,
                            resource: key.1,
                            rv,
                            object,
                        });
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&journal)(e)),
    }
    // rv 0 marks objects deleted by the journal.
    loaded.objects.retain(|o| o.rv != 0);
    Ok(loaded)
}

// === impl Journal ===

impl Journal {
    /// Opens (creating or truncating) the journal of the state file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StateError> {
        let journal_path = journal_path(path);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(io_error(&journal_path))?;
        Ok(Self {
            path: path.to_owned(),
            journal_path,
            file,
            lines: 0,
        })
    }

    /// Appends one write; `body` is `None` for a deletion.
    pub(crate) fn append(
        &mut self,
        rv: u64,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        body: Option<&[u8]>,
    ) {
        let mut line = serde_json::to_vec(&serde_json::json!({
            "rv": rv.to_string(),
            "group": group,
            "resource": resource,
            "namespace": namespace,
            "name": name,
        }))
        .unwrap_or_default();
        line.pop(); // the closing brace
        line.extend_from_slice(b",\"object\":");
        line.extend_from_slice(body.unwrap_or(b"null"));
        line.extend_from_slice(b"}\n");
        if let Err(error) = self.file.write_all(&line) {
            tracing::error!(path = %self.journal_path.display(), %error, "state journal write failed");
        }
        self.lines += 1;
    }

    /// Whether the journal has grown enough that a new snapshot should be written.
    pub(crate) fn wants_snapshot(&self, live_objects: usize) -> bool {
        self.lines > 10_000 && self.lines > 2 * live_objects
    }

    /// Writes a snapshot atomically and empties the journal. `objects` yields (group, resource, rv, body).
    pub(crate) fn snapshot<'a>(
        &mut self,
        rv: u64,
        objects: impl Iterator<Item = (&'a str, &'a str, u64, &'a [u8])>,
    ) -> Result<(), StateError> {
        let mut temporary = self.path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let file = File::create(&temporary).map_err(io_error(&temporary))?;
        let mut out = std::io::BufWriter::new(file);
        let write = |out: &mut std::io::BufWriter<File>| -> std::io::Result<()> {
            writeln!(out, "{{\"resourceVersion\":\"{rv}\"}}")?;
            for (group, resource, object_rv, body) in objects {
                let head = serde_json::json!({"rv": object_rv.to_string(), "group": group, "resource": resource});
                let mut line = serde_json::to_vec(&head)?;
                line.pop();
                out.write_all(&line)?;
                out.write_all(b",\"object\":")?;
                out.write_all(body)?;
                out.write_all(b"}\n")?;
            }
            out.flush()?;
            out.get_ref().sync_all()
        };
        write(&mut out).map_err(io_error(&temporary))?;
        fs::rename(&temporary, &self.path).map_err(io_error(&self.path))?;
        self.file.set_len(0).map_err(io_error(&self.journal_path))?;
        self.lines = 0;
        Ok(())
    }
}
