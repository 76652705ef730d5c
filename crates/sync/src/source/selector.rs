//! Kubernetes label-selector syntax, for `--label-filter` (against labels)
//! and `--annotation-filter` (against annotations), as external-dns uses it.
//!
//! Control plane, pure. Requirements joined by `,` (AND): `k=v`, `k==v`,
//! `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (absent).

use std::collections::BTreeMap;

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

/// Text that is not a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector requirement {0:?}")]
pub struct BadSelector(pub String);

// === impl Selector ===

impl Selector {
    /// Parses selector text.
    pub fn parse(text: &str) -> Result<Self, BadSelector> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(requirement(part).ok_or_else(|| BadSelector(part.to_owned()))?);
        }
        Ok(Self { requirements })
    }

    /// Whether `map` (labels or annotations) satisfies every requirement.
    pub fn matches(&self, map: Option<&BTreeMap<String, String>>) -> bool {
        let get = |key: &str| map.and_then(|m| m.get(key));
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::Absent(k) => get(k).is_none(),
        })
    }

    /// Whether a requirement names `key`.
    pub fn mentions(&self, key: &str) -> bool {
        self.requirements.iter().any(|r| match r {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::Absent(k) => k == key,
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

fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
    });
    name_ok && prefix_ok
}

fn valid_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric())
}

fn requirement(part: &str) -> Option<Requirement> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key).then(|| Requirement::Absent(key.to_owned()));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            if !valid_key(key) || !valid_value(value) {
                return None;
            }
            return Some(if negate {
                Requirement::NotEquals(key.to_owned(), value.to_owned())
            } else {
                Requirement::Equals(key.to_owned(), value.to_owned())
            });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next()?.trim();
    let Some(rest) = words.next().map(str::trim) else {
        return valid_key(key).then(|| Requirement::Exists(key.to_owned()));
    };
    let (negate, list) = if let Some(list) = rest.strip_prefix("notin") {
        (true, list)
    } else if let Some(list) = rest.strip_prefix("in") {
        (false, list)
    } else {
        return None;
    };
    let list = list.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = list.split(',').map(|v| v.trim().to_owned()).collect();
    if !valid_key(key) || !values.iter().all(|v| valid_value(v)) {
        return None;
    }
    Some(if negate {
        Requirement::NotIn(key.to_owned(), values)
    } else {
        Requirement::In(key.to_owned(), values)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Kubernetes selector grammar: every operator, AND of requirements.
    #[test]
    fn operators() {
        let s =
            Selector::parse("kubernetes.io/ingress.class in (nginx-ext, nginx), team=a,!skip-dns")
                .unwrap();
        assert!(s.matches(Some(&map(&[
            ("kubernetes.io/ingress.class", "nginx"),
            ("team", "a")
        ]))));
        assert!(!s.matches(Some(&map(&[
            ("kubernetes.io/ingress.class", "nginx"),
            ("team", "a"),
            ("skip-dns", "")
        ]))));
        assert!(!s.matches(None));
        let s = Selector::parse("env!=prod,tier notin (db),app").unwrap();
        assert!(s.matches(Some(&map(&[("app", "x"), ("tier", "web")]))));
        assert!(!s.matches(Some(&map(&[("app", "x"), ("env", "prod")]))));
        assert!(Selector::parse("").unwrap().matches(None));
        assert!(Selector::parse("a in b").is_err());
        assert!(Selector::parse("bad key=1").is_err());
        assert!(Selector::parse("k=not valid").is_err());
        assert!(s.mentions("tier"));
    }
}
