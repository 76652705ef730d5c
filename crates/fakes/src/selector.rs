//! Label and field selectors of list and watch requests.
//!
//! Follows the Kubernetes "Labels and Selectors" concept page: equality-based requirements (`=`, `==`,
//! `!=`) and set-based ones (`in`, `notin`, `key` for exists, `!key` for does-not-exist), joined by commas
//! as a logical AND. `!=` and `notin` also match objects without the key. Field selectors support
//! `metadata.name` and `metadata.namespace` with `=`, `==` and `!=`, the fields every type supports; any
//! other field is a 400, as the real server answers for a field label a type does not support.
//!
//! Control plane of the fake; pure functions.

use crate::status::ApiError;

/// A parsed label selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

// === impl LabelSelector ===

impl LabelSelector {
    /// Parses the `labelSelector` query parameter; an empty string selects everything.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unable to parse requirement: found '{part}', expected: key, key=value, key!=value, \
                     key in (values), key notin (values), !key"
                ))
            })?);
        }
        Ok(Self { requirements })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether labels (key, value pairs) satisfy every requirement.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let get = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn parse_requirement(part: &str) -> Option<Requirement> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return (!key.is_empty() && key.chars().all(is_key_char))
            .then(|| Requirement::DoesNotExist(key.to_owned()));
    }
    let key_end = part.find(|c: char| !is_key_char(c)).unwrap_or(part.len());
    let key = &part[..key_end];
    if key.is_empty() {
        return None;
    }
    let rest = part[key_end..].trim_start();
    if rest.is_empty() {
        return Some(Requirement::Exists(key.to_owned()));
    }
    let value = |v: &str| {
        let v = v.trim();
        v.chars().all(is_key_char).then(|| v.to_owned())
    };
    if let Some(v) = rest.strip_prefix("==") {
        return Some(Requirement::Equals(key.to_owned(), value(v)?));
    }
    if let Some(v) = rest.strip_prefix("!=") {
        return Some(Requirement::NotEquals(key.to_owned(), value(v)?));
    }
    if let Some(v) = rest.strip_prefix('=') {
        return Some(Requirement::Equals(key.to_owned(), value(v)?));
    }
    let (set, negated) = if let Some(v) = rest.strip_prefix("notin") {
        (v, true)
    } else if let Some(v) = rest.strip_prefix("in") {
        (v, false)
    } else {
        return None;
    };
    let set = set.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Option<Vec<String>> = set.split(',').map(value).collect();
    let values = values?;
    if values.iter().any(String::is_empty) && values.len() > 1 {
        return None;
    }
    Some(if negated {
        Requirement::NotIn(key.to_owned(), values)
    } else {
        Requirement::In(key.to_owned(), values)
    })
}

/// A parsed field selector over `metadata.name`, `metadata.namespace` and
/// the fields a resource adds (Pods: `spec.nodeName`, `spec.restartPolicy`,
/// `spec.schedulerName`, `spec.serviceAccountName`, `status.phase`,
/// `status.podIP`, as the API server's pod field label conversion lists them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(Field, bool, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
    /// A resource-specific field, by its JSON path.
    Other(&'static str),
}

/// Resource-specific selectable fields (besides name and namespace).
pub const EXTRA_FIELDS: &[(&str, &[&str])] = &[(
    "pods",
    &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
    ],
)];

/// Every resource-specific selectable field of any resource, for storing.
pub(crate) fn all_extra_fields() -> impl Iterator<Item = &'static str> {
    EXTRA_FIELDS
        .iter()
        .flat_map(|(_, fields)| fields.iter().copied())
}

// === impl FieldSelector ===

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter for `resource`; an empty string selects everything.
    pub fn parse(text: &str, resource: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            let extra = EXTRA_FIELDS
                .iter()
                .find(|(r, _)| *r == resource)
                .map_or(&[][..], |(_, fields)| *fields);
            let field = match field.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => match extra.iter().find(|f| **f == other) {
                    Some(known) => Field::Other(known),
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {other}"
                        )));
                    }
                },
            };
            terms.push((field, equal, value.trim().to_owned()));
        }
        Ok(Self { terms })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The single name an equality term pins, used to narrow a scan.
    pub fn pinned_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, eq, _)| *f == Field::Name && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    /// Whether an object with this namespace, name and selectable fields is selected.
    pub fn matches(&self, namespace: &str, name: &str, fields: &[(&str, String)]) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = match field {
                Field::Name => name,
                Field::Namespace => namespace,
                Field::Other(path) => fields
                    .iter()
                    .find(|(p, _)| p == path)
                    .map_or("", |(_, v)| v.as_str()),
            };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Labels and Selectors concept page: every operator, AND across requirements, `!=`/`notin` match absent
    /// keys.
    #[test]
    fn label_selector_operators() {
        let object = labels(&[("app", "web"), ("tier", "frontend")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=backend", false),
            ("app in (web),tier notin (backend),!canary", true),
        ];
        for (text, expected) in cases {
            let selector = LabelSelector::parse(text).unwrap();
            assert_eq!(selector.matches(&object), expected, "selector {text:?}");
        }
    }

    /// A malformed requirement is a 400, not a silent match-all.
    #[test]
    fn malformed_label_selector_is_bad_request() {
        for text in ["app in web", "=x", "app<3"] {
            let error = LabelSelector::parse(text).unwrap_err();
            assert_eq!(error.code, 400, "selector {text:?}");
        }
    }

    /// Field selectors support metadata.name and metadata.namespace; other fields are rejected.
    #[test]
    fn field_selector_name_and_namespace() {
        let selector = FieldSelector::parse(
            "metadata.name=web,metadata.namespace!=kube-system",
            "services",
        )
        .unwrap();
        assert!(selector.matches("default", "web", &[]));
        assert!(!selector.matches("kube-system", "web", &[]));
        assert!(!selector.matches("default", "db", &[]));
        assert_eq!(selector.pinned_name(), Some("web"));
        let error = FieldSelector::parse("spec.clusterIP=None", "services").unwrap_err();
        assert_eq!(error.message, "field label not supported: spec.clusterIP");
        // Pods add their own field labels; other resources do not have them.
        let running =
            FieldSelector::parse("status.phase!=Succeeded,status.phase!=Failed", "pods").unwrap();
        let phase = |p: &str| vec![("status.phase", p.to_owned())];
        assert!(running.matches("default", "web-0", &phase("Running")));
        assert!(!running.matches("default", "web-0", &phase("Failed")));
        assert!(FieldSelector::parse("status.phase=Running", "services").is_err());
    }
}
