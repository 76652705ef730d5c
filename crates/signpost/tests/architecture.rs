//! The crate layout holds: dependencies as ARCHITECTURE.md states them, the
//! query-serving crates free of Kubernetes, etcd, provider clients and the
//! discovery, sync and admin crates, and no two modules of a crate
//! importing each other (issue 10: "Architecture for many sources and roles").

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/signpost is two levels below the root")
        .to_path_buf()
}

/// `cargo metadata` for this machine's platform (other platforms' crates
/// may not be downloaded).
fn metadata() -> Value {
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Package id → (name, normal dependency ids), from the resolved graph.
fn graph(metadata: &Value) -> BTreeMap<String, (String, Vec<String>)> {
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .map(|node| {
            let id = node["id"].as_str().unwrap().to_owned();
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|kind| kind["kind"].is_null())
                })
                .map(|dep| dep["pkg"].as_str().unwrap().to_owned())
                .collect();
            (id.clone(), (names[id.as_str()].to_owned(), deps))
        })
        .collect()
}

/// Every package `name` depends on at run time, directly or not.
fn closure(graph: &BTreeMap<String, (String, Vec<String>)>, name: &str) -> BTreeSet<String> {
    let start = graph
        .iter()
        .find(|(_, (n, _))| n == name)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no package {name}"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in &graph[&id].1 {
            if seen.insert(graph[dep].0.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

/// The crate table of ARCHITECTURE.md: crate → the signpost crates it may depend on.
fn documented_table() -> BTreeMap<String, BTreeSet<String>> {
    let text =
        std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| crate |") && line.contains("depends on") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            if !rows.is_empty() {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`').to_owned();
        let depends: BTreeSet<String> = cells
            .last()
            .unwrap()
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_owned())
            .filter(|d| !d.is_empty() && d != "—" && d != "all")
            .collect();
        rows.insert(name, depends);
    }
    assert!(!rows.is_empty(), "ARCHITECTURE.md has no crate table");
    rows
}

/// The signpost crates each workspace crate depends on directly (normal deps).
fn actual_table(metadata: &Value) -> BTreeMap<String, BTreeSet<String>> {
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            metadata["workspace_members"]
                .as_array()
                .unwrap()
                .contains(&p["id"])
        })
        .map(|p| {
            let name = p["name"].as_str().unwrap();
            let short = name.strip_prefix("signpost-").unwrap_or(name).to_owned();
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str().unwrap().strip_prefix("signpost-"))
                .map(str::to_owned)
                .collect();
            (short, deps)
        })
        .collect()
}

/// Every crate's signpost dependencies are exactly those ARCHITECTURE.md
/// lists (the binary, `signpost`, may use all of them).
#[test]
fn crate_dependencies_match_architecture_md() {
    let metadata = metadata();
    let documented = documented_table();
    let actual = actual_table(&metadata);
    for (name, deps) in &actual {
        if name == "signpost" {
            continue;
        }
        let Some(allowed) = documented.get(name) else {
            panic!("crate `{name}` is missing from ARCHITECTURE.md's crate table");
        };
        assert_eq!(
            deps, allowed,
            "crate `{name}`: depends on {deps:?}, ARCHITECTURE.md says {allowed:?}"
        );
    }
    for name in documented.keys() {
        assert!(
            actual.contains_key(name),
            "ARCHITECTURE.md lists `{name}`, which is not a workspace crate"
        );
    }
}

/// The query-serving crates never reach Kubernetes, etcd, cloud provider
/// clients or the discovery, sync and admin crates, directly or through
/// another crate.
#[test]
fn serving_crates_stay_free_of_outside_clients() {
    let graph = graph(&metadata());
    let forbidden = |dep: &str| {
        matches!(
            dep,
            "signpost-discovery"
                | "signpost-sync"
                | "signpost-admin"
                | "k8s-openapi"
                | "etcd-client"
                | "tonic"
                | "prost"
                | "reqwest"
                | "hyper"
                | "axum"
        ) || dep.starts_with("kube")
            || dep.starts_with("aws-")
    };
    for name in [
        "signpost-proto",
        "signpost-zone",
        "signpost-geo",
        "signpost-dns",
        "signpost-model",
        "signpost-corefile",
    ] {
        let reached: Vec<String> = closure(&graph, name)
            .into_iter()
            .filter(|dep| forbidden(dep))
            .collect();
        assert!(
            reached.is_empty(),
            "{name} depends on {reached:?}, which only discovery, sync, admin and the binary may use"
        );
    }
}

/// One source file's module path, relative to its crate's `src`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules a file refers to: `crate::a::b`, `super::x`, `self::c`, and
/// bare `child::` paths to its own declared children; each resolved to the
/// longest known module. Comments and test modules are not code.
fn references(
    text: &str,
    module: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    // An inline test module (at the bottom, by the house style) is test code,
    // and its `super::` means the file's own module.
    let text = text
        .find("#[cfg(test)]\nmod tests {")
        .map_or(text, |at| &text[..at]);
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let children: Vec<&String> = modules
        .iter()
        .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
        .map(|m| m.last().unwrap())
        .collect();
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        // A path starts at an identifier not preceded by `::` or an identifier character.
        let c = bytes[start];
        let boundary = start == 0 || {
            let p = bytes[start - 1];
            !(p.is_ascii_alphanumeric() || p == b'_' || p == b':')
        };
        if !(boundary && (c.is_ascii_alphabetic() || c == b'_')) {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        let token = &code[start..end];
        // `use super::{A, B}` names the module before the braces.
        let group = token.ends_with("::") && bytes.get(end) == Some(&b'{');
        let mut path: Vec<&str> = token.split("::").filter(|s| !s.is_empty()).collect();
        if group {
            path.push("{");
        }
        start = end.max(start + 1);
        if path.len() < 2 {
            continue;
        }
        let (mut base, rest): (Vec<String>, &[&str]) = match path[0] {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (module.to_vec(), &path[1..]),
            "super" => {
                let mut base = module.to_vec();
                let mut rest = &path[..];
                while rest.first() == Some(&"super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            first if children.iter().any(|c| c.as_str() == first) => (module.to_vec(), &path[..]),
            _ => continue,
        };
        let mut resolved = base.clone();
        for segment in rest {
            base.push((*segment).to_owned());
            if modules.contains(&base) {
                resolved = base.clone();
            } else {
                break;
            }
        }
        if !resolved.is_empty() && resolved != module {
            found.insert(resolved);
        }
    }
    found
}

/// No two modules of a crate import each other, directly or in a longer
/// cycle (the crate root, which declares every module, and test-only
/// modules are left out).
#[test]
fn no_module_import_cycles() {
    let crates = workspace_root().join("crates");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let is_test = |m: &[String]| m.iter().any(|s| s == "tests" || s == "testing");
        let modules: BTreeSet<Vec<String>> = files
            .iter()
            .map(|f| module_path(&src, f))
            .filter(|m| !is_test(m))
            .collect();
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for file in &files {
            let module = module_path(&src, file);
            if module.is_empty() || is_test(&module) {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let targets = references(&text, &module, &modules)
                .into_iter()
                .filter(|t| !is_test(t))
                .collect();
            edges.insert(module, targets);
        }
        for cycle in cycles(&edges) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            problems.push(format!("{}: {}", src.display(), names.join(" → ")));
        }
    }
    assert!(
        problems.is_empty(),
        "modules that import each other:\n{}",
        problems.join("\n")
    );
}

/// Every elementary cycle's first appearance, found by depth-first search.
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    let mut found: Vec<Vec<Vec<String>>> = Vec::new();
    let mut seen_sets: BTreeSet<BTreeSet<Vec<String>>> = BTreeSet::new();
    for start in edges.keys() {
        let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> =
            vec![(start.clone(), vec![start.clone()])];
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    let set: BTreeSet<Vec<String>> = path.iter().cloned().collect();
                    if seen_sets.insert(set) {
                        found.push(cycle);
                    }
                } else if !path.contains(next) && path.len() < 6 {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

/// The checker itself: two sibling modules naming each other (through
/// `crate::`, `super::{..}`) form a cycle; a child using its parent's item
/// while the parent names the child by a bare path does too; one-way
/// imports do not.
#[test]
fn cycle_finder_sees_mutual_imports() {
    let module = |path: &str| -> Vec<String> { path.split("::").map(str::to_owned).collect() };
    let modules: BTreeSet<Vec<String>> = [
        "answer",
        "recursion",
        "plugins",
        "plugins::bind",
        "plugins::setup",
    ]
    .iter()
    .map(|m| module(m))
    .collect();
    let files = [
        (
            "answer",
            "use crate::recursion::Recursion; // crate::plugins in a comment",
        ),
        (
            "recursion",
            "fn turn() -> usize { crate::answer::next_turn() }",
        ),
        (
            "plugins",
            "const REGISTRY: &[Parse] = &[bind::parse];\nuse setup::Plugin;",
        ),
        ("plugins::bind", "use super::{Block, Plugin};"),
        ("plugins::setup", "pub(crate) trait Plugin {}"),
    ];
    let edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = files
        .iter()
        .map(|(name, text)| (module(name), references(text, &module(name), &modules)))
        .collect();
    let found: Vec<Vec<String>> = cycles(&edges)
        .into_iter()
        .map(|cycle| cycle.iter().map(|m| m.join("::")).collect())
        .collect();
    assert_eq!(
        found,
        [
            vec!["answer", "recursion", "answer"],
            vec!["plugins", "plugins::bind", "plugins"],
        ],
        "{edges:?}"
    );
}
