//! Shared by the deploy tests: the repository's files, manifests as JSON values, and the external
//! tools, each run with its output shown when it fails.

#![allow(dead_code, unreachable_pub)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `deploy/kubernetes/<name>`.
pub fn manifest_path(name: &str) -> PathBuf {
    repo().join("deploy/kubernetes").join(name)
}

/// The six manifest files of the reference deployment, in the order they are applied.
pub const MANIFESTS: [&str; 6] = [
    "coredns-config.yaml",
    "coredns-deployment.yaml",
    "external-dns.yaml",
    "dns-health-controller.yaml",
    "geographic-routing.yaml",
    "dns-monitoring.yaml",
];

/// Reads a file of the repository.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every YAML document of `path` (separated by `---` lines), as JSON values.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut documents = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line == "---" {
            if current
                .lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                let value: Value = serde_yaml_ng::from_str(&current)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                documents.push(value);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
}

/// The document of `kind` named `name` in the manifest file `file`.
pub fn object(file: &str, kind: &str, name: &str) -> Value {
    documents(&manifest_path(file))
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{file} has no {kind} {name}"))
}

/// Runs `command`; panics with its output unless it exits 0.
pub fn run_ok(command: &mut Command) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        shown(&output)
    );
    output
}

/// Runs `command` and returns its output, whatever its exit status.
pub fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?}: {e}; scripts/test installs the deploy tests' tools \
             (Debian prometheus and podman, PyPI kubernetes-validate)",
            command.get_program()
        )
    })
}

/// Standard output and standard error, for messages.
pub fn shown(output: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `signpost` binary under test.
pub fn signpost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_signpost"))
}
