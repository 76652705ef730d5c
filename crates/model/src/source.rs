//! Sources push complete states to whoever compiles them.
//!
//! Control plane. A [`Source`] runs as one task for as long as its consumer
//! wants it and hands every complete state to its [`Sink`] the moment it has
//! one, so the consumer (the DNS compiler, the health controller, record sync)
//! wakes at once instead of polling. How a source learns about changes is its
//! own business: the catalog polls file metadata, the Kubernetes source
//! follows watch streams, the etcd source a watch from a revision.
//!
//! Invariant: a source delivers only complete states, never a partial list; a
//! failed read delivers [`Update::Problems`] and the consumer keeps the last
//! good state (design invariants I1 and I3).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of states of type `T` (for DNS: a service list, a zone file, a
/// hosts file).
pub trait Source<T>: Send + 'static {
    /// A short name for logs and metrics (`catalog`, `file`, `kubernetes`).
    fn kind(&self) -> &'static str;

    /// Runs until `cancel` fires, giving `sink` every new complete state (or
    /// the problems that keep one from loading) as soon as it is known.
    fn run(self: Box<Self>, sink: Sink<T>, cancel: CancellationToken) -> BoxFuture<'static, ()>;
}

/// What a source delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Update<T> {
    /// A complete new state; it replaces everything the source gave before.
    State(T),
    /// The source's input is broken; the previous state keeps serving. An
    /// empty list means the problems are gone without a new state.
    Problems(Vec<SourceProblem>),
}

/// Where a source's updates go; cheap to clone.
pub struct Sink<T> {
    deliver: Arc<dyn Fn(Update<T>) + Send + Sync>,
}

/// A problem in a source's input, such as a bad catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The file (or object, or endpoint) at fault.
    pub file: String,
    /// The line, when known.
    pub line: Option<u32>,
    /// What is wrong, lower-case, without a trailing period.
    pub message: String,
}

// === impl Sink ===

impl<T> Sink<T> {
    /// A sink that calls `deliver` with every update (from the source's task).
    pub fn new(deliver: impl Fn(Update<T>) + Send + Sync + 'static) -> Self {
        Self {
            deliver: Arc::new(deliver),
        }
    }

    /// Delivers a complete new state.
    pub fn state(&self, state: T) {
        (self.deliver)(Update::State(state));
    }

    /// Reports problems that keep a new state from loading.
    pub fn problems(&self, problems: Vec<SourceProblem>) {
        (self.deliver)(Update::Problems(problems));
    }
}

impl<T> Clone for Sink<T> {
    fn clone(&self) -> Self {
        Self {
            deliver: self.deliver.clone(),
        }
    }
}

impl<T> fmt::Debug for Sink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

// === impl SourceProblem ===

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}
