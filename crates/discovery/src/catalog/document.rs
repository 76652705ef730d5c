//! Turns one catalog file into typed Services, EndpointSlices, Ingresses, Nodes and Pods, with
//! file:line for every error.
//!
//! Control plane, synchronous, one call per file (files are parsed in parallel by the caller).
//!
//! ```text
//!  file ──▶ YAML: split on `---` lines ─┐
//!           JSON: stream of values ─────┴▶ Fragment ──header (kind, apiVersion)──▶ typed parse ──▶ validate
//!                                            └─ List: one Fragment per item ───────────┘
//! ```
//!
//! Invariants:
//! - Every fragment knows the file line its text starts on, so a parser location inside it maps
//!   to a line in the file; errors from a list item say `items[N]`.
//! - Each object is parsed from its own text once for its header and once typed (a JSON list's
//!   items are split out in the same pass that finds the file's documents), so the cost is
//!   linear in the file size, also for a `kind: List` holding a whole cluster. Block-style list
//!   items are cut out of the text by indentation; only other lists (flow style) go through
//!   `serde_yaml_ng::Value`, losing per-item lines. A YAML alias cannot refer to an anchor in
//!   another item of a block-style list (kubectl never writes anchors).

use std::borrow::Cow;
use std::fs;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tracing::debug;

use super::state::LoadError;
use super::validate;

/// What one file contributed: objects with the line they start on, and every error.
#[derive(Debug, Default)]
pub(crate) struct FileOutput {
    pub(crate) services: Vec<Located<Service>>,
    pub(crate) endpoint_slices: Vec<Located<EndpointSlice>>,
    pub(crate) ingresses: Vec<Located<Ingress>>,
    pub(crate) nodes: Vec<Located<Node>>,
    pub(crate) pods: Vec<Located<Pod>>,
    pub(crate) errors: Vec<LoadError>,
}

/// An object and the line in its file where it starts.
#[derive(Debug)]
pub(crate) struct Located<T> {
    pub(crate) object: T,
    pub(crate) line: u32,
}

/// Reads and parses one file. Never fails as a whole: problems are in [`FileOutput::errors`].
pub(crate) fn load_file(path: &Path) -> FileOutput {
    let mut loader = Loader {
        file: path,
        out: FileOutput::default(),
    };
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            loader
                .out
                .errors
                .push(LoadError::new(path, None, format!("cannot read: {err}")));
            return loader.out;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            let line = line_number(count_newlines(valid));
            loader
                .out
                .errors
                .push(LoadError::new(path, Some(line), "file is not valid UTF-8"));
            return loader.out;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);

    let is_json_file = path
        .extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json_file {
        loader.load_json(text, true);
    } else if !(text.trim_start().starts_with('{') && loader.load_json(text, false)) {
        // Not JSON, or `{`-prefixed YAML flow style that JSON rejects.
        loader.load_yaml(text);
    }
    loader.out
}

/// The fields read before choosing a type.
#[derive(Debug, Default, Deserialize)]
struct Header {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

/// One object's text (a document, or an item of a list) and where it sits in the file.
struct Fragment<'a> {
    body: Body<'a>,
    /// File line of the first line of the body text; parser line 1 maps to it.
    base_line: u32,
    /// File line reported for problems with the object as a whole.
    line: u32,
    /// Index in the enclosing list, if any.
    item: Option<usize>,
    /// A JSON list's items, when the pass that split the file's documents
    /// split them too (so a whole-cluster list is not scanned a third time).
    items: Option<Vec<&'a RawValue>>,
}

enum Body<'a> {
    Yaml(Cow<'a, str>),
    Json(&'a str),
    /// An item of a flow-style YAML list: parsed already, no locations inside.
    Value(serde_yaml_ng::Value),
}

/// A problem inside one fragment, already mapped to a file line.
#[derive(Debug)]
struct Problem {
    line: u32,
    message: String,
}

/// Parses one file, collecting objects and errors.
struct Loader<'p> {
    file: &'p Path,
    out: FileOutput,
}

// === impl Loader ===

impl Loader<'_> {
    /// Loads a stream of JSON values. When `strict` is false and the text is not JSON, loads
    /// nothing and returns false so the caller can try YAML.
    fn load_json(&mut self, text: &str, strict: bool) -> bool {
        if let Some(documents) = split_json(text) {
            let mut lines = LineCounter::new(text);
            for (raw, items) in documents {
                let line = lines.line_at(offset_in(text, raw));
                self.load_object(
                    Fragment {
                        body: Body::Json(raw),
                        base_line: line,
                        line,
                        item: None,
                        items,
                    },
                    None,
                );
            }
            return true;
        }
        let mut documents = Vec::new();
        for document in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
            match document {
                Ok(raw) => documents.push(raw),
                Err(_) if !strict => return false,
                Err(err) => {
                    let problem = json_problem(&err, 1, 1);
                    self.out.errors.push(LoadError::new(
                        self.file,
                        Some(problem.line),
                        problem.message,
                    ));
                    break;
                }
            }
        }
        let mut lines = LineCounter::new(text);
        for raw in documents {
            let line = lines.line_at(offset_in(text, raw.get()));
            self.load_object(
                Fragment {
                    body: Body::Json(raw.get()),
                    base_line: line,
                    line,
                    item: None,
                    items: None,
                },
                None,
            );
        }
        true
    }

    /// Loads multi-document YAML, split on `---` lines.
    fn load_yaml(&mut self, text: &str) {
        for document in split_documents(text) {
            // Documents holding only comments and blank lines are skipped.
            let Some(content) = first_content_line(document.text) else {
                continue;
            };
            self.load_object(
                Fragment {
                    body: Body::Yaml(Cow::Borrowed(document.text)),
                    base_line: document.first_line,
                    line: document.first_line + content,
                    item: None,
                    items: None,
                },
                None,
            );
        }
    }

    /// Loads one object; `list` is the kind of the enclosing list, if any.
    fn load_object(&mut self, fragment: Fragment<'_>, list: Option<&str>) {
        let header = match fragment.header() {
            Ok(header) => header,
            Err(problem) => return self.fail(&fragment, problem),
        };
        // Items of typed lists from the API server (`ServiceList`) carry no kind or apiVersion.
        let defaults = match list {
            Some("ServiceList") => Some(("Service", "v1")),
            Some("EndpointSliceList") => Some(("EndpointSlice", "discovery.k8s.io/v1")),
            Some("IngressList") => Some(("Ingress", "networking.k8s.io/v1")),
            Some("NodeList") => Some(("Node", "v1")),
            Some("PodList") => Some(("Pod", "v1")),
            _ => None,
        };
        let kind = header
            .kind
            .or_else(|| defaults.map(|(kind, _)| kind.to_owned()));
        let api_version = header
            .api_version
            .or_else(|| defaults.map(|(_, version)| version.to_owned()));
        let (kind, api_version) = match (kind, api_version) {
            (Some(kind), Some(api_version)) => (kind, api_version),
            (kind, api_version) => {
                let missing = match (kind, api_version) {
                    (None, None) => "kind and apiVersion",
                    (None, Some(_)) => "kind",
                    _ => "apiVersion",
                };
                let line = fragment.line;
                return self.fail(
                    &fragment,
                    Problem {
                        line,
                        message: format!("missing {missing}"),
                    },
                );
            }
        };

        match kind.as_str() {
            "Service" => {
                if let Err(problem) = check_api_version(&fragment, &kind, &api_version, "v1") {
                    return self.fail(&fragment, problem);
                }
                match fragment.parse::<Service>() {
                    Ok(mut service) => {
                        let issues = validate::service(&mut service);
                        if self.report(&fragment, issues) {
                            self.out.services.push(Located {
                                object: service,
                                line: fragment.line,
                            });
                        }
                    }
                    Err(problem) => self.fail(&fragment, problem),
                }
            }
            "EndpointSlice" => {
                if let Err(problem) =
                    check_api_version(&fragment, &kind, &api_version, "discovery.k8s.io/v1")
                {
                    return self.fail(&fragment, problem);
                }
                match fragment.parse::<EndpointSlice>() {
                    Ok(mut slice) => {
                        let issues = validate::endpoint_slice(&mut slice);
                        if self.report(&fragment, issues) {
                            self.out.endpoint_slices.push(Located {
                                object: slice,
                                line: fragment.line,
                            });
                        }
                    }
                    Err(problem) => self.fail(&fragment, problem),
                }
            }
            "Ingress" => {
                if let Err(problem) =
                    check_api_version(&fragment, &kind, &api_version, "networking.k8s.io/v1")
                {
                    return self.fail(&fragment, problem);
                }
                match fragment.parse::<Ingress>() {
                    Ok(mut ingress) => {
                        let issues = validate::ingress(&mut ingress);
                        if self.report(&fragment, issues) {
                            let line = fragment.line;
                            self.out.ingresses.push(Located {
                                object: ingress,
                                line,
                            });
                        }
                    }
                    Err(problem) => self.fail(&fragment, problem),
                }
            }
            "Node" => {
                if let Err(problem) = check_api_version(&fragment, &kind, &api_version, "v1") {
                    return self.fail(&fragment, problem);
                }
                match fragment.parse::<Node>() {
                    Ok(node) => {
                        let issues = validate::node(&node);
                        if self.report(&fragment, issues) {
                            let line = fragment.line;
                            self.out.nodes.push(Located { object: node, line });
                        }
                    }
                    Err(problem) => self.fail(&fragment, problem),
                }
            }
            "Pod" => {
                if let Err(problem) = check_api_version(&fragment, &kind, &api_version, "v1") {
                    return self.fail(&fragment, problem);
                }
                match fragment.parse::<Pod>() {
                    Ok(mut pod) => {
                        let issues = validate::pod(&mut pod);
                        if self.report(&fragment, issues) {
                            let line = fragment.line;
                            self.out.pods.push(Located { object: pod, line });
                        }
                    }
                    Err(problem) => self.fail(&fragment, problem),
                }
            }
            "List" | "ServiceList" | "EndpointSliceList" | "IngressList" | "NodeList"
            | "PodList" => {
                if list.is_some() {
                    let line = fragment.line;
                    let message = format!("a {kind} inside a list is not supported");
                    return self.fail(&fragment, Problem { line, message });
                }
                self.load_list(&fragment, &kind);
            }
            other => {
                debug!(file = %self.file.display(), line = fragment.line, kind = other, "skipping object of unsupported kind");
            }
        }
    }

    /// Loads every item of a list document.
    fn load_list(&mut self, list: &Fragment<'_>, kind: &str) {
        match &list.body {
            Body::Yaml(text) => {
                if let Some(items) = slice_items(text) {
                    for (index, item) in items.into_iter().enumerate() {
                        let line = list.base_line + item.line_index;
                        let body = Body::Yaml(Cow::Owned(item.text));
                        self.load_object(
                            Fragment {
                                body,
                                base_line: line,
                                line,
                                item: Some(index),
                                items: None,
                            },
                            Some(kind),
                        );
                    }
                    return;
                }
                #[derive(Deserialize)]
                struct ValueList {
                    items: Option<Vec<serde_yaml_ng::Value>>,
                }
                match serde_yaml_ng::from_str::<ValueList>(text) {
                    Ok(parsed) => {
                        for (index, value) in
                            parsed.items.unwrap_or_default().into_iter().enumerate()
                        {
                            let (base_line, line) = (list.line, list.line);
                            let body = Body::Value(value);
                            self.load_object(
                                Fragment {
                                    body,
                                    base_line,
                                    line,
                                    item: Some(index),
                                    items: None,
                                },
                                Some(kind),
                            );
                        }
                    }
                    Err(err) => {
                        self.fail(list, yaml_problem(&err, text, list.base_line, list.line))
                    }
                }
            }
            Body::Json(text) => {
                #[derive(Deserialize)]
                struct JsonList<'a> {
                    #[serde(borrow)]
                    items: Option<Vec<&'a RawValue>>,
                }
                let items = match &list.items {
                    Some(items) => Ok(items.clone()),
                    None => serde_json::from_str::<JsonList<'_>>(text)
                        .map(|parsed| parsed.items.unwrap_or_default()),
                };
                match items {
                    Ok(items) => {
                        let mut lines = LineCounter::new(text);
                        for (index, raw) in items.into_iter().enumerate() {
                            let line =
                                list.base_line + lines.line_at(offset_in(text, raw.get())) - 1;
                            let body = Body::Json(raw.get());
                            self.load_object(
                                Fragment {
                                    body,
                                    base_line: line,
                                    line,
                                    item: Some(index),
                                    items: None,
                                },
                                Some(kind),
                            );
                        }
                    }
                    Err(err) => self.fail(list, json_problem(&err, list.base_line, list.line)),
                }
            }
            // Lists inside lists are rejected before we get here.
            Body::Value(_) => {}
        }
    }

    /// Records validation issues; returns true when there were none.
    fn report(&mut self, fragment: &Fragment<'_>, issues: Vec<validate::Issue>) -> bool {
        let valid = issues.is_empty();
        for issue in issues {
            let line = issue
                .near
                .as_deref()
                .and_then(|needle| fragment.line_of(needle))
                .unwrap_or(fragment.line);
            self.fail(
                fragment,
                Problem {
                    line,
                    message: issue.message,
                },
            );
        }
        valid
    }

    fn fail(&mut self, fragment: &Fragment<'_>, problem: Problem) {
        let message = match fragment.item {
            Some(index) => format!("items[{index}]: {}", problem.message),
            None => problem.message,
        };
        self.out
            .errors
            .push(LoadError::new(self.file, Some(problem.line), message));
    }
}

// === impl Fragment ===

impl Fragment<'_> {
    /// Reads `kind` and `apiVersion` without building the object.
    fn header(&self) -> Result<Header, Problem> {
        match &self.body {
            Body::Yaml(text) => match scan_header(text) {
                Some(header) => Ok(header),
                None => serde_yaml_ng::from_str(text)
                    .map_err(|err| yaml_problem(&err, text, self.base_line, self.line)),
            },
            Body::Json(text) => match scan_json_header(text) {
                Some(header) => Ok(header),
                None => serde_json::from_str(text)
                    .map_err(|err| json_problem(&err, self.base_line, self.line)),
            },
            Body::Value(value) => serde_yaml_ng::from_value(value.clone()).map_err(|err| Problem {
                line: self.line,
                message: err.to_string(),
            }),
        }
    }

    /// Parses the typed object.
    fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        match &self.body {
            Body::Yaml(text) => serde_yaml_ng::from_str(text)
                .map_err(|err| yaml_problem(&err, text, self.base_line, self.line)),
            Body::Json(text) => serde_json::from_str(text)
                .map_err(|err| json_problem(&err, self.base_line, self.line)),
            Body::Value(value) => serde_yaml_ng::from_value(value.clone()).map_err(|err| Problem {
                line: self.line,
                message: err.to_string(),
            }),
        }
    }

    /// Best effort: the file line where `needle` first appears in this fragment's text.
    fn line_of(&self, needle: &str) -> Option<u32> {
        let text: &str = match &self.body {
            Body::Yaml(text) => text,
            Body::Json(text) => text,
            Body::Value(_) => return None,
        };
        if needle.is_empty() {
            return None;
        }
        let offset = text.find(needle)?;
        Some(self.base_line + count_newlines(&text.as_bytes()[..offset]))
    }
}

// === helpers ===

/// A JSON document as [`split_json`] reads it: only a list's items.
#[derive(Deserialize)]
struct JsonTop<'a> {
    #[serde(borrow, default)]
    items: Option<JsonItems<'a>>,
}

/// `items` split into its elements when it is an array; anything else is
/// left to the list's own parse (and its error).
enum JsonItems<'a> {
    Split(Vec<&'a RawValue>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonItems<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Items<'a> {
            type Value = JsonItems<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    items.push(item);
                }
                Ok(JsonItems::Split(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::IgnoredAny;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(JsonItems::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(JsonItems::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(JsonItems::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(JsonItems::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(JsonItems::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(JsonItems::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(JsonItems::Other)
            }
        }
        deserializer.deserialize_any(Items(std::marker::PhantomData))
    }
}

/// One JSON document's text and, for an array `items`, the items' texts.
type JsonDocument<'a> = (&'a str, Option<Vec<&'a RawValue>>);

/// A JSON text's documents in one pass; `None` when the text is not a clean
/// stream of objects (then the general path finds and reports the problem).
fn split_json(text: &str) -> Option<Vec<JsonDocument<'_>>> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<JsonTop<'_>>();
    let mut documents = Vec::new();
    let mut start = 0;
    while let Some(next) = stream.next() {
        let top = next.ok()?;
        let end = stream.byte_offset();
        let raw = text[start..end].trim_start_matches([' ', '\t', '\n', '\r']);
        let items = match top.items {
            Some(JsonItems::Split(items)) => Some(items),
            _ => None,
        };
        documents.push((raw, items));
        start = end;
    }
    Some(documents)
}

fn check_api_version(
    fragment: &Fragment<'_>,
    kind: &str,
    found: &str,
    want: &str,
) -> Result<(), Problem> {
    if found == want {
        return Ok(());
    }
    let line = fragment.line_of(found).unwrap_or(fragment.line);
    Err(Problem {
        line,
        message: format!("unsupported apiVersion {found:?} for {kind} (want {want:?})"),
    })
}

/// One YAML document: its text and the file line that text starts on.
struct Document<'a> {
    text: &'a str,
    first_line: u32,
}

/// Splits YAML on lines that are exactly `---`, optionally followed by whitespace or a comment.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    for line in Lines::new(text) {
        if is_document_separator(line.text) {
            documents.push(Document {
                text: &text[start..line.start],
                first_line,
            });
            start = line.end;
            first_line = line_number(line.index + 1);
        }
    }
    documents.push(Document {
        text: &text[start..],
        first_line,
    });
    documents
}

fn is_document_separator(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("---") else {
        return false;
    };
    let trimmed = rest.trim_start();
    // A comment needs whitespace before it: `---#x` is not a separator.
    trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())
}

/// The 0-based index of the first line that is not blank, a comment, a directive or `...`.
fn first_content_line(text: &str) -> Option<u32> {
    Lines::new(text)
        .find(|line| {
            let trimmed = line.text.trim();
            !(trimmed.is_empty()
                || trimmed.starts_with('#')
                || trimmed.starts_with('%')
                || trimmed == "...")
        })
        .map(|line| line.index)
}

/// Fast path for the header of a block-style mapping: reads the top-level `kind:` and
/// `apiVersion:` lines without parsing the whole object. Returns `None` whenever the text is
/// not plainly such a mapping, and the caller parses properly.
fn scan_header(text: &str) -> Option<Header> {
    let mut header = Header::default();
    let mut first = true;
    for line in Lines::new(text) {
        let trimmed = line.text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let top_level = trimmed.len() == line.text.len();
        let sequence_entry = trimmed == "-" || trimmed.starts_with("- ");
        if first
            && (!top_level
                || sequence_entry
                || trimmed.starts_with(['{', '[', '%', '!', '&', '?', '"', '\'']))
        {
            return None;
        }
        first = false;
        // Indented lines and compact sequence entries (`items:` then `- ...`) belong to values.
        if !top_level || sequence_entry {
            continue;
        }
        let (slot, value) = if let Some(value) = trimmed.strip_prefix("kind:") {
            (&mut header.kind, value)
        } else if let Some(value) = trimmed.strip_prefix("apiVersion:") {
            (&mut header.api_version, value)
        } else {
            continue;
        };
        if slot.is_some() || value.trim().is_empty() {
            return None;
        }
        *slot = Some(serde_yaml_ng::from_str::<String>(value).ok()?);
    }
    // Missing fields are confirmed (or the text rejected) by the full parse.
    (header.kind.is_some() && header.api_version.is_some()).then_some(header)
}

/// Fast path for the header of a JSON object whose first members are plain strings (as
/// `kubectl get -o json` and most generators write them: `apiVersion`, then `kind`): reads them
/// and stops once both are known, instead of scanning the whole object. Returns `None` for
/// anything else (an escape, a non-string value first, a member missing), and the caller
/// parses properly; a duplicate or malformed member later in the text fails the typed parse.
fn scan_json_header(text: &str) -> Option<Header> {
    /// The plain string starting at `at` (after its opening quote), and where it ends.
    fn plain_string(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let length = bytes
            .get(at..)?
            .iter()
            .position(|&b| b == b'"' || b == b'\\')?;
        (bytes[at + length] == b'"').then(|| (&bytes[at..at + length], at + length + 1))
    }
    fn skip_space(bytes: &[u8], mut at: usize) -> usize {
        while bytes
            .get(at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            at += 1;
        }
        at
    }
    let bytes = text.as_bytes();
    let mut header = Header::default();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_space(bytes, at);
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let (key, after) = plain_string(bytes, at + 1)?;
        at = skip_space(bytes, after);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(bytes, at + 1);
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let (value, after) = plain_string(bytes, at + 1)?;
        let slot = match key {
            b"kind" => Some(&mut header.kind),
            b"apiVersion" => Some(&mut header.api_version),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return None;
            }
            *slot = Some(std::str::from_utf8(value).ok()?.to_owned());
            if header.kind.is_some() && header.api_version.is_some() {
                return Some(header);
            }
        }
        at = skip_space(bytes, after);
        if bytes.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
}

/// An item of a block-style list, with the list's dash turned into a space so the text is a
/// mapping that parses on its own.
struct ItemText {
    text: String,
    /// 0-based line of the item within the list document.
    line_index: u32,
}

/// Cuts the items of a block-style top-level `items:` sequence out of `text` by indentation.
/// Returns `None` when `items` is not laid out that way; the caller then parses the whole list.
fn slice_items(text: &str) -> Option<Vec<ItemText>> {
    let mut lines = Lines::new(text);
    loop {
        let line = lines.next()?;
        let Some(rest) = line.text.strip_prefix("items:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.is_empty() || rest.starts_with('#') {
            break;
        }
        let empty_flow = rest.strip_prefix("[]").map(str::trim_start);
        return empty_flow
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
            .then(Vec::new);
    }

    // (start offset, line index) of each item, and the offset where the sequence ends.
    let mut starts: Vec<(usize, u32)> = Vec::new();
    let mut dash_indent = None;
    let mut end = text.len();
    for line in lines {
        let content = line.text.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.text.len() - content.len();
        let is_dash = content == "-" || content.starts_with("- ");
        match dash_indent {
            None if is_dash => {
                dash_indent = Some(indent);
                starts.push((line.start, line.index));
            }
            // `items:` with no value (null) followed by the next top-level key.
            None if indent == 0 => {
                end = line.start;
                break;
            }
            None => return None,
            Some(dash) if indent > dash => {}
            Some(dash) if indent == dash && is_dash => starts.push((line.start, line.index)),
            Some(_) => {
                end = line.start;
                break;
            }
        }
    }

    let dash = dash_indent.unwrap_or(0);
    let mut items = Vec::with_capacity(starts.len());
    for (position, &(start, line_index)) in starts.iter().enumerate() {
        let stop = starts.get(position + 1).map_or(end, |next| next.0);
        let mut item = text[start..stop].to_owned();
        item.replace_range(dash..=dash, " ");
        items.push(ItemText {
            text: item,
            line_index,
        });
    }
    Some(items)
}

/// A YAML error in `text` (which starts on file line `base_line`) at the
/// line it names. libyaml places an error found at the end of a text that
/// does not end in a newline on the line after it; that line does not exist
/// in the file, so the error names the text's last line instead (found by
/// `fuzz/fuzz_targets/catalog.rs`).
fn yaml_problem(err: &serde_yaml_ng::Error, text: &str, base_line: u32, fallback: u32) -> Problem {
    match err.location() {
        Some(location) => {
            let line = base_line + to_u32(location.line()).saturating_sub(1);
            let message = rewrite_locations(
                &err.to_string(),
                base_line - 1,
                line,
                to_u32(location.column()),
            );
            let last = base_line.saturating_add(count_newlines(text.as_bytes()));
            Problem {
                line: line.min(last),
                message,
            }
        }
        None => Problem {
            line: fallback,
            message: err.to_string(),
        },
    }
}

fn json_problem(err: &serde_json::Error, base_line: u32, fallback: u32) -> Problem {
    if err.line() == 0 {
        return Problem {
            line: fallback,
            message: err.to_string(),
        };
    }
    let line = base_line + to_u32(err.line()) - 1;
    let message = rewrite_locations(&err.to_string(), base_line - 1, line, to_u32(err.column()));
    Problem { line, message }
}

/// Shifts every `line N` in a parser message by `offset` so it names a file line, and drops the
/// ` at line L column C` that the error's own line already says.
fn rewrite_locations(message: &str, offset: u32, line: u32, column: u32) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<u32>() {
            Ok(number) => out.push_str(&(number + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out.replacen(&format!(" at line {line} column {column}"), "", 1)
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Converts a 0-based line index into a 1-based line number.
fn line_number(index: u32) -> u32 {
    index + 1
}

fn count_newlines(bytes: &[u8]) -> u32 {
    to_u32(bytes.iter().filter(|&&byte| byte == b'\n').count())
}

/// Byte offset of `inner` in `outer`; `inner` must be a subslice of `outer`.
fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Maps increasing byte offsets to 1-based lines, counting each newline once.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u32,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, offset: usize) -> u32 {
        let offset = offset.clamp(self.offset, self.text.len());
        self.line += count_newlines(&self.text[self.offset..offset]);
        self.offset = offset;
        self.line
    }
}

/// A line of text without its line ending, with its byte range (ending included) and 0-based index.
struct Line<'a> {
    text: &'a str,
    start: usize,
    end: usize,
    index: u32,
}

struct Lines<'a> {
    text: &'a str,
    offset: usize,
    index: u32,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            offset: 0,
            index: 0,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.offset >= self.text.len() {
            return None;
        }
        let start = self.offset;
        let rest = &self.text[start..];
        let (raw, end) = match rest.find('\n') {
            Some(newline) => (&rest[..newline], start + newline + 1),
            None => (rest, self.text.len()),
        };
        let line = Line {
            text: raw.strip_suffix('\r').unwrap_or(raw),
            start,
            end,
            index: self.index,
        };
        self.offset = end;
        self.index += 1;
        Some(line)
    }
}
