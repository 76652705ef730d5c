//! The configuration of `signpost health`, the standalone health controller:
//! the reference deployment's `dns-health-controller-config` YAML, read as
//! it is written.
//!
//! Control plane (configuration loading).
//!
//! ```text
//! healthCheck:
//!   interval: 10s              # time between checks of one endpoint
//!   timeout: 3s                # one deadline for connect, request and status line
//!   failureThreshold: 3        # failures in a row before removal
//!   successThreshold: 1        # passes in a row before return
//!   jitter: 0s                 # signpost: extra spread of first checks
//!   maxConcurrent: 256         # signpost: checks in flight at once
//! endpoints:
//!   healthCheckPath: /health   # path when a Service names none
//!   removeUnhealthyDelay: 30s  # minimum time from the first failure of a run to removal
//! leaderElection:              # signpost: client-go's defaults
//!   leaseDuration: 15s
//!   renewDeadline: 10s
//!   retryPeriod: 2s
//! ```
//!
//! The file is either that YAML ("bare") or a Kubernetes manifest holding
//! it: a `ConfigMap` (alone or among other documents separated by `---`)
//! whose `data` has one key with the YAML as its value, as `kubectl apply`
//! takes it. Every key is optional; the defaults are the reference
//! deployment's (10 s, 3 s, 3, 1, `/health`, 30 s).
//!
//! Invariants: every problem is reported at once, each with the file and
//! line it is about (inside a ConfigMap, the line in the manifest); unknown
//! keys are errors, never ignored. Values are read by a YAML parser
//! (`serde_yaml_ng`); lines come from a scan of the text, exact for block
//! style (the style of the reference deployment) and the line of the
//! enclosing key for flow style (`{...}`).

use crate::checker::CheckerOptions;
use crate::state::HealthPolicy;
use signpost_corefile::toolkit::parse_duration;
use signpost_corefile::{Errors, Location};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The name of the reference deployment's ConfigMap; preferred when a
/// manifest holds several ConfigMaps.
pub const CONFIGMAP_NAME: &str = "dns-health-controller-config";

/// Everything `signpost health` reads from its configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Timings and thresholds (`healthCheck.*`, `endpoints.removeUnhealthyDelay`).
    pub policy: HealthPolicy,
    /// Spread and concurrency (`healthCheck.jitter`, `healthCheck.maxConcurrent`).
    pub options: CheckerOptions,
    /// The HTTP path checked when a Service's annotations name none
    /// (`endpoints.healthCheckPath`, default `/health`).
    pub default_path: String,
    /// Lease timings (`leaderElection.*`).
    pub election: ElectionTimings,
}

/// Leader-election timings, client-go's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTimings {
    /// How long a lease is valid after its holder last renewed it, as the
    /// other candidates observe it (default 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading
    /// (default 10 s; shorter than the lease duration).
    pub renew_deadline: Duration,
    /// Time between tries to acquire or renew (default 2 s).
    pub retry_period: Duration,
}

impl Default for ElectionTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            policy: HealthPolicy::default(),
            options: CheckerOptions::default(),
            default_path: crate::targets::DEFAULT_PATH.to_owned(),
            election: ElectionTimings::default(),
        }
    }
}

/// client-go's `JitterFactor`: the renew deadline must exceed this many
/// retry periods (`renewDeadline must be greater than retryPeriod*JitterFactor`).
const JITTER_FACTOR: f64 = 1.2;

// === impl ControllerConfig ===

impl ControllerConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, Errors> {
        let file: Arc<Path> = Arc::from(path);
        let text = match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => {
                    let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
                    let line = 1 + valid.iter().filter(|b| **b == b'\n').count();
                    return Err(one(&file, line, "the file is not valid UTF-8".to_owned()));
                }
            },
            Err(error) => return Err(one(&file, 0, format!("cannot read the file: {error}"))),
        };
        Self::parse(&text, path)
    }

    /// Validates `text` as if read from `file` (which names it in errors).
    pub fn parse(text: &str, file: &Path) -> Result<Self, Errors> {
        let file: Arc<Path> = Arc::from(file);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut errors = Errors::default();
        let config = match locate(text, &file, &mut errors) {
            Some(Located {
                text: inner,
                offset,
            }) => {
                let reader = Reader {
                    file: &file,
                    lines: KeyLines::scan(&inner),
                    offset,
                };
                reader.config(&inner, &mut errors)
            }
            None => Self::default(),
        };
        // libyaml places an error found at the end of a text that does not
        // end in a newline (or of a ConfigMap's block value) on the line
        // after the last one, which the file does not have: such an error
        // names the last line (found by `fuzz/fuzz_targets/controller.rs`).
        let last = u32::try_from(text.bytes().filter(|&b| b == b'\n').count())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        for error in &mut errors.0 {
            error.location.line = error.location.line.min(last);
        }
        errors.into_result(config)
    }
}

/// The controller YAML inside a file, with the file line its first line is on
/// (minus one).
struct Located {
    text: String,
    offset: usize,
}

/// Finds the controller YAML: the whole text, or the value of a ConfigMap's
/// data key. `None` after recording why it cannot be found.
fn locate(text: &str, file: &Arc<Path>, errors: &mut Errors) -> Option<Located> {
    let documents = split_documents(text);
    let mut parsed = Vec::new();
    for document in &documents {
        match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&document.text) {
            Ok(serde_yaml_ng::Value::Null) => {}
            Ok(value) => parsed.push((document, value)),
            Err(error) => {
                let (line, message) = yaml_error(&error, document.offset);
                errors.push(&at(file, line), message);
            }
        }
    }
    if !errors.is_empty() {
        return None;
    }
    let is_manifest = |value: &serde_yaml_ng::Value| value.get("kind").is_some();
    if !parsed.iter().any(|(_, value)| is_manifest(value)) {
        return match parsed.as_slice() {
            [] => Some(Located {
                text: String::new(),
                offset: 0,
            }),
            [(document, _)] => Some(Located {
                text: document.text.clone(),
                offset: document.offset,
            }),
            [_, (second, _), ..] => {
                errors.push(
                    &at(file, second.offset + 1),
                    "several YAML documents without `kind`: the file holds either the controller configuration or Kubernetes manifests with its ConfigMap",
                );
                None
            }
        };
    }
    let config_maps: Vec<&(&Document, serde_yaml_ng::Value)> = parsed
        .iter()
        .filter(|(_, value)| value.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap"))
        .collect();
    let name_of = |value: &serde_yaml_ng::Value| {
        value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned)
    };
    let chosen = match config_maps.as_slice() {
        [] => {
            errors.push(
                &at(file, 1),
                "the manifests hold no ConfigMap: expected the controller configuration, bare or in a ConfigMap's data",
            );
            return None;
        }
        [only] => *only,
        several => match several
            .iter()
            .find(|(_, value)| name_of(value).as_deref() == Some(CONFIGMAP_NAME))
        {
            Some(found) => *found,
            None => {
                errors.push(
                    &at(file, several[1].0.offset + 1),
                    format!("several ConfigMaps and none named `{CONFIGMAP_NAME}`"),
                );
                return None;
            }
        },
    };
    let (document, value) = chosen;
    let lines = KeyLines::scan(&document.text);
    let line_in_file = |path: &[&str]| document.offset + lines.line(path);
    let Some(data) = value.get("data").and_then(|d| d.as_mapping()) else {
        errors.push(
            &at(file, line_in_file(&["data"])),
            "the ConfigMap has no `data` mapping holding the controller configuration",
        );
        return None;
    };
    let keys: Vec<&str> = data.keys().filter_map(|k| k.as_str()).collect();
    let key = match keys.as_slice() {
        [only] => *only,
        several => {
            let yaml: Vec<&str> = several
                .iter()
                .copied()
                .filter(|k| k.ends_with(".yaml") || k.ends_with(".yml"))
                .collect();
            match yaml.as_slice() {
                [only] => *only,
                _ => {
                    errors.push(
                        &at(file, line_in_file(&["data"])),
                        format!(
                            "the ConfigMap's data has keys {several:?}: expected one key, or one ending in .yaml or .yml, holding the controller configuration"
                        ),
                    );
                    return None;
                }
            }
        }
    };
    let Some(inner) = data.get(key).and_then(|v| v.as_str()) else {
        errors.push(
            &at(file, line_in_file(&["data", key])),
            format!("data key `{key}` must hold the controller configuration as text"),
        );
        return None;
    };
    // A block scalar (`key: |`) starts on the next line; anything else on the key's line.
    let key_line = line_in_file(&["data", key]);
    let offset = if lines.block_scalar(&["data", key]) {
        key_line
    } else {
        key_line - 1
    };
    Some(Located {
        text: inner.to_owned(),
        offset,
    })
}

/// One `---`-separated YAML document and the file line before its first line.
struct Document {
    text: String,
    offset: usize,
}

fn split_documents(text: &str) -> Vec<Document> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut offset = 0;
    for (index, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") || line == "..." {
            documents.push(Document {
                text: std::mem::take(&mut current),
                offset,
            });
            offset = index + 1;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    documents.push(Document {
        text: current,
        offset,
    });
    documents
}

/// The line and the message of a parser error, located in the file: the
/// error's own ` at line L column C` is dropped (the location says it), and
/// other lines the message names are shifted to file lines.
fn yaml_error(error: &serde_yaml_ng::Error, offset: usize) -> (usize, String) {
    let message = error.to_string();
    let Some(location) = error.location() else {
        return (offset + 1, message);
    };
    let own = format!(" at line {} column {}", location.line(), location.column());
    let message = message.replacen(&own, "", 1);
    let mut shifted = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(found) = rest.find("line ") {
        let (before, after) = rest.split_at(found + "line ".len());
        shifted.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<usize>() {
            Ok(number) => shifted.push_str(&(number + offset).to_string()),
            Err(_) => shifted.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    shifted.push_str(rest);
    (offset + location.line(), shifted)
}

fn at(file: &Arc<Path>, line: usize) -> Location {
    Location {
        file: Arc::clone(file),
        line: u32::try_from(line).unwrap_or(u32::MAX),
    }
}

fn one(file: &Arc<Path>, line: usize, message: String) -> Errors {
    let mut errors = Errors::default();
    errors.push(&at(file, line), message);
    errors
}

/// Reads the controller YAML into a [`ControllerConfig`].
struct Reader<'a> {
    file: &'a Arc<Path>,
    lines: KeyLines,
    offset: usize,
}

/// The keys of each section, for unknown-key messages.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "healthCheck",
        &[
            "interval",
            "timeout",
            "failureThreshold",
            "successThreshold",
            "jitter",
            "maxConcurrent",
        ],
    ),
    ("endpoints", &["healthCheckPath", "removeUnhealthyDelay"]),
    (
        "leaderElection",
        &["leaseDuration", "renewDeadline", "retryPeriod"],
    ),
];

impl Reader<'_> {
    fn location(&self, path: &[&str]) -> Location {
        at(self.file, self.offset + self.lines.line(path))
    }

    fn config(&self, text: &str, errors: &mut Errors) -> ControllerConfig {
        let mut config = ControllerConfig::default();
        let root = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
            Ok(root) => root,
            Err(error) => {
                let (line, message) = yaml_error(&error, self.offset);
                errors.push(&at(self.file, line), message);
                return config;
            }
        };
        let root = match root {
            serde_yaml_ng::Value::Null => return config,
            serde_yaml_ng::Value::Mapping(mapping) => mapping,
            _ => {
                errors.push(
                    &self.location(&[]),
                    "expected a mapping with healthCheck, endpoints and leaderElection",
                );
                return config;
            }
        };
        for (key, value) in &root {
            let Some(key) = key.as_str() else {
                errors.push(&self.location(&[]), "keys must be text");
                continue;
            };
            let Some((section, known)) = SECTIONS.iter().find(|(name, _)| *name == key) else {
                errors.push(
                    &self.location(&[key]),
                    format!(
                        "unknown key `{key}` (expected healthCheck, endpoints or leaderElection)"
                    ),
                );
                continue;
            };
            let mapping = match value {
                serde_yaml_ng::Value::Mapping(mapping) => mapping,
                serde_yaml_ng::Value::Null => continue,
                _ => {
                    errors.push(
                        &self.location(&[section]),
                        format!("`{section}` must be a mapping of {}", known.join(", ")),
                    );
                    continue;
                }
            };
            for (field, value) in mapping {
                let Some(field) = field.as_str() else {
                    errors.push(&self.location(&[section]), "keys must be text");
                    continue;
                };
                let path = [*section, field];
                let location = self.location(&path);
                if !known.contains(&field) {
                    errors.push(
                        &location,
                        format!(
                            "unknown key `{section}.{field}` (expected {})",
                            known.join(", ")
                        ),
                    );
                    continue;
                }
                self.field(&mut config, &path, value, &location, errors);
            }
        }
        self.check_election(&config.election, errors);
        config
    }

    /// Reads one known field into `config`.
    fn field(
        &self,
        config: &mut ControllerConfig,
        path: &[&str; 2],
        value: &serde_yaml_ng::Value,
        location: &Location,
        errors: &mut Errors,
    ) {
        let name = format!("{}.{}", path[0], path[1]);
        let duration = |errors: &mut Errors, positive: bool| -> Option<Duration> {
            let parsed = value.as_str().and_then(|text| parse_duration(text).ok());
            match parsed {
                Some(d) if !(positive && d.is_zero()) => Some(d),
                _ => {
                    let what = if positive {
                        "a positive duration such as 10s, 500ms or 1m"
                    } else {
                        "a duration such as 30s, 500ms or 1m"
                    };
                    errors.push(
                        location,
                        format!("`{name}` expects {what}, found {}", shown(value)),
                    );
                    None
                }
            }
        };
        let count = |errors: &mut Errors| -> Option<u32> {
            match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    errors.push(
                        location,
                        format!(
                            "`{name}` expects a positive whole number, found {}",
                            shown(value)
                        ),
                    );
                    None
                }
            }
        };
        match *path {
            ["healthCheck", "interval"] => {
                if let Some(d) = duration(errors, true) {
                    config.policy.interval = d;
                }
            }
            ["healthCheck", "timeout"] => {
                if let Some(d) = duration(errors, true) {
                    config.policy.timeout = d;
                }
            }
            ["healthCheck", "failureThreshold"] => {
                if let Some(n) = count(errors) {
                    config.policy.failure_threshold = n;
                }
            }
            ["healthCheck", "successThreshold"] => {
                if let Some(n) = count(errors) {
                    config.policy.success_threshold = n;
                }
            }
            ["healthCheck", "jitter"] => {
                if let Some(d) = duration(errors, false) {
                    config.options.jitter = d;
                }
            }
            ["healthCheck", "maxConcurrent"] => {
                if let Some(n) = count(errors) {
                    config.options.max_concurrent = n as usize;
                }
            }
            ["endpoints", "removeUnhealthyDelay"] => {
                if let Some(d) = duration(errors, false) {
                    config.policy.remove_unhealthy_delay = d;
                }
            }
            ["endpoints", "healthCheckPath"] => match value.as_str() {
                Some(path) if path.starts_with('/') && !path.chars().any(char::is_whitespace) => {
                    config.default_path = path.to_owned();
                }
                _ => errors.push(
                    location,
                    format!(
                        "`{name}` expects an HTTP path starting with /, found {}",
                        shown(value)
                    ),
                ),
            },
            ["leaderElection", "leaseDuration"] => {
                if let Some(d) = duration(errors, true) {
                    config.election.lease_duration = d;
                }
            }
            ["leaderElection", "renewDeadline"] => {
                if let Some(d) = duration(errors, true) {
                    config.election.renew_deadline = d;
                }
            }
            ["leaderElection", "retryPeriod"] => {
                if let Some(d) = duration(errors, true) {
                    config.election.retry_period = d;
                }
            }
            _ => {}
        }
    }

    /// client-go's rules for the election timings (`NewLeaderElector`): the
    /// lease outlives the renew deadline, which outlives 1.2 retry periods.
    fn check_election(&self, election: &ElectionTimings, errors: &mut Errors) {
        if election.lease_duration <= election.renew_deadline {
            errors.push(
                &self.location(&["leaderElection", "renewDeadline"]),
                format!(
                    "leaderElection.leaseDuration ({:?}) must be greater than leaderElection.renewDeadline ({:?}): a leader must stop leading before its lease can expire",
                    election.lease_duration, election.renew_deadline
                ),
            );
        }
        if election.renew_deadline.as_secs_f64()
            <= election.retry_period.as_secs_f64() * JITTER_FACTOR
        {
            errors.push(
                &self.location(&["leaderElection", "retryPeriod"]),
                format!(
                    "leaderElection.renewDeadline ({:?}) must be greater than leaderElection.retryPeriod ({:?}) times {JITTER_FACTOR}",
                    election.renew_deadline, election.retry_period
                ),
            );
        }
    }
}

/// A value as an error message shows it.
fn shown(value: &serde_yaml_ng::Value) -> String {
    match value {
        serde_yaml_ng::Value::String(text) => format!("{text:?}"),
        serde_yaml_ng::Value::Number(number) => number.to_string(),
        serde_yaml_ng::Value::Bool(flag) => flag.to_string(),
        serde_yaml_ng::Value::Null => "nothing".to_owned(),
        serde_yaml_ng::Value::Sequence(_) => "a list".to_owned(),
        serde_yaml_ng::Value::Mapping(_) => "a mapping".to_owned(),
        serde_yaml_ng::Value::Tagged(_) => "a tagged value".to_owned(),
    }
}

/// The line of every block-style key of a YAML text, by its path of keys.
struct KeyLines {
    /// (path, 1-based line, value starts a block scalar)
    keys: Vec<(Vec<String>, usize, bool)>,
}

impl KeyLines {
    /// Scans `text`: a key is `NAME:` (optionally quoted) at the start of a
    /// line after its indentation; deeper indentation nests. Block scalars'
    /// contents and list items are skipped.
    fn scan(text: &str) -> Self {
        let mut keys = Vec::new();
        let mut stack: Vec<(usize, String)> = Vec::new();
        let mut scalar_indent: Option<usize> = None;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if let Some(parent) = scalar_indent {
                if indent > parent {
                    continue;
                }
                scalar_indent = None;
            }
            let Some((key, rest)) = split_key(trimmed) else {
                continue;
            };
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let mut path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
            path.push(key.clone());
            let rest = rest.trim_start();
            let block = rest.starts_with('|') || rest.starts_with('>');
            if block {
                scalar_indent = Some(indent);
            }
            keys.push((path, index + 1, block));
            stack.push((indent, key));
        }
        Self { keys }
    }

    /// The line of `path`, else of its nearest ancestor found, else 1.
    fn line(&self, path: &[&str]) -> usize {
        (0..=path.len())
            .rev()
            .find_map(|len| self.find(&path[..len]).map(|(line, _)| line))
            .unwrap_or(1)
    }

    /// True when the value of `path` is a block scalar (`|`, `>`).
    fn block_scalar(&self, path: &[&str]) -> bool {
        self.find(path).is_some_and(|(_, block)| block)
    }

    fn find(&self, path: &[&str]) -> Option<(usize, bool)> {
        if path.is_empty() {
            return None;
        }
        self.keys
            .iter()
            .find(|(p, _, _)| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))
            .map(|(_, line, block)| (*line, *block))
    }
}

/// `key: rest` → (key, rest), with the quotes of a quoted key removed.
fn split_key(line: &str) -> Option<(String, &str)> {
    if line.starts_with("- ") || line == "-" {
        return None;
    }
    let (key, rest) = if let Some(quoted) = line.strip_prefix('"') {
        let end = quoted.find('"')?;
        (&quoted[..end], quoted[end + 1..].strip_prefix(':')?)
    } else if let Some(quoted) = line.strip_prefix('\'') {
        let end = quoted.find('\'')?;
        (&quoted[..end], quoted[end + 1..].strip_prefix(':')?)
    } else {
        let colon = line
            .find(": ")
            .or_else(|| line.strip_suffix(':').map(|k| k.len()))?;
        let key = &line[..colon];
        if key.contains('#') || key.contains('{') || key.contains('[') {
            return None;
        }
        (key, &line[colon + 1..])
    };
    Some((key.trim().to_owned(), rest))
}

#[cfg(test)]
mod tests;
