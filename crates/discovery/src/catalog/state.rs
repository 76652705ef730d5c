//! What a catalog load yields: every object, or every problem.

use std::fmt;
use std::path::{Path, PathBuf};

pub use k8s_openapi::api::core::v1::Service;
pub use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Everything the catalog holds: every object of every file, or nothing.
pub type CatalogState = crate::objects::ClusterObjects;

/// One problem found while loading the catalog, with where it is.
///
/// Displays as `file:line: message`, or `file: message` when no line is known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", place(.file, .line))]
pub struct LoadError {
    /// The file (or the path given) the problem is in.
    pub file: PathBuf,
    /// The 1-based line in `file`, when known.
    pub line: Option<u32>,
    /// What is wrong, lower-case, without a trailing period.
    pub message: String,
}

/// Every problem found while loading the catalog; never empty when returned as an error.
///
/// Displays one [`LoadError`] per line, so an operator sees every mistake in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

// === impl LoadError ===

impl LoadError {
    /// Creates an error at `file`, optionally at a line.
    pub fn new(file: impl Into<PathBuf>, line: Option<u32>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

/// Formats `file:line` or `file`.
fn place(file: &Path, line: &Option<u32>) -> String {
    match line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    }
}

// === impl LoadErrors ===

impl LoadErrors {
    /// The errors, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors as source problems (file, line, message).
    pub fn into_problems(self) -> Vec<signpost_model::SourceProblem> {
        self.0
            .into_iter()
            .map(|e| signpost_model::SourceProblem {
                file: e.file.display().to_string(),
                line: e.line,
                message: e.message,
            })
            .collect()
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
