//! Which names and record types sync may touch: `--domain-filter`,
//! `--exclude-domains`, `--regex-domain-filter`, `--regex-domain-exclusion`,
//! `--managed-record-types` and `--exclude-record-types`.
//!
//! Control plane, pure. Matching follows external-dns v0.22
//! (`endpoint/domain_filter.go`): a name matches an entry `F` when it equals
//! `F` or ends in `.F`; an entry starting with `.` matches sub-domains only.
//! When either regex is set the list filters are ignored.

use crate::endpoint::RecordType;
use regex::Regex;
use std::collections::BTreeSet;

/// A filter on DNS names.
#[derive(Debug, Clone, Default)]
pub struct DomainFilter {
    include: Vec<String>,
    exclude: Vec<String>,
    regex_include: Option<Regex>,
    regex_exclude: Option<Regex>,
    /// Filters that must also match (a provider's zones).
    also: Vec<Self>,
}

/// A regex that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: invalid regular expression")]
pub struct FilterError {
    /// The flag that held it.
    pub flag: &'static str,
    /// Why it does not compile.
    #[source]
    pub source: regex::Error,
}

// === impl DomainFilter ===

impl DomainFilter {
    /// A filter from list entries (trimmed, trailing dot removed, lower-cased,
    /// empty entries dropped).
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        Self {
            include: normalise_entries(include),
            exclude: normalise_entries(exclude),
            regex_include: None,
            regex_exclude: None,
            also: Vec::new(),
        }
    }

    /// This filter AND `other`.
    #[must_use]
    pub fn and(mut self, other: Self) -> Self {
        self.also.push(other);
        self
    }

    /// A filter from the four flags; the regexes win when either is non-empty.
    pub fn from_flags(
        include: &[String],
        exclude: &[String],
        regex_include: &str,
        regex_exclude: &str,
    ) -> Result<Self, FilterError> {
        let compile = |flag, text: &str| -> Result<Option<Regex>, FilterError> {
            if text.is_empty() {
                return Ok(None);
            }
            Regex::new(text)
                .map(Some)
                .map_err(|source| FilterError { flag, source })
        };
        let mut filter = Self::new(include, exclude);
        filter.regex_include = compile("--regex-domain-filter", regex_include)?;
        filter.regex_exclude = compile("--regex-domain-exclusion", regex_exclude)?;
        Ok(filter)
    }

    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.regex_include.is_none()
            && self.regex_exclude.is_none()
            && self.also.iter().all(Self::is_empty)
    }

    /// The include entries (for logs and provider zone selection).
    pub fn includes(&self) -> &[String] {
        &self.include
    }

    /// Whether `name` passes the filter.
    pub fn matches(&self, name: &str) -> bool {
        self.matches_own(name) && self.also.iter().all(|f| f.matches(name))
    }

    fn matches_own(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.regex_include.is_some() || self.regex_exclude.is_some() {
            if self
                .regex_exclude
                .as_ref()
                .is_some_and(|r| r.is_match(&name))
            {
                return false;
            }
            return self
                .regex_include
                .as_ref()
                .is_none_or(|r| r.is_match(&name));
        }
        let included =
            self.include.is_empty() || self.include.iter().any(|entry| entry_matches(entry, &name));
        included && !self.exclude.iter().any(|entry| entry_matches(entry, &name))
    }
}

fn normalise_entries(entries: &[String]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

fn entry_matches(entry: &str, name: &str) -> bool {
    if entry.starts_with('.') {
        return name.ends_with(entry);
    }
    name == entry
        || name
            .strip_suffix(entry)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The record types the planner may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedTypes {
    managed: BTreeSet<RecordType>,
}

// === impl ManagedTypes ===

impl ManagedTypes {
    /// `managed` minus `excluded`.
    pub fn new(managed: &[RecordType], excluded: &[RecordType]) -> Self {
        Self {
            managed: managed
                .iter()
                .filter(|t| !excluded.contains(t))
                .copied()
                .collect(),
        }
    }

    /// Whether the planner may touch records of `record_type`.
    pub fn contains(&self, record_type: RecordType) -> bool {
        self.managed.contains(&record_type)
    }
}

impl Default for ManagedTypes {
    /// external-dns's default: A, AAAA, CNAME.
    fn default() -> Self {
        Self::new(&[RecordType::A, RecordType::Aaaa, RecordType::Cname], &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// §4.5: whole-label suffix match; a leading dot means sub-domains only.
    #[test]
    fn list_filter() {
        let filter = DomainFilter::new(
            &list(&["example.com.", " .sub.org"]),
            &list(&["no.example.com"]),
        );
        assert!(filter.matches("example.com"));
        assert!(filter.matches("A.B.Example.COM."));
        assert!(!filter.matches("badexample.com"));
        assert!(!filter.matches("sub.org"));
        assert!(filter.matches("x.sub.org"));
        assert!(!filter.matches("x.no.example.com"));
        assert!(DomainFilter::new(&list(&[""]), &[]).matches("anything"));
    }

    /// §4.5: either regex replaces the lists.
    #[test]
    fn regex_filter() {
        let filter =
            DomainFilter::from_flags(&list(&["other.org"]), &[], r"example\.com$", r"^internal\.")
                .unwrap();
        assert!(filter.matches("a.example.com"));
        assert!(!filter.matches("internal.example.com"));
        assert!(!filter.matches("other.org"));
        assert!(DomainFilter::from_flags(&[], &[], "(", "").is_err());
    }
}
