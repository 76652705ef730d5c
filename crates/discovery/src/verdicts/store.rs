//! Where published verdicts live: the one object a `signpost health` leader
//! writes and every replica reads, behind [`VerdictStore`].
//!
//! Control plane. A store holds one whole verdict set (the set of unhealthy
//! endpoints) in one object, so a reader never sees half of a change and a
//! new leader reads everything with one request. Two stores exist: a
//! Kubernetes ConfigMap (`crate::kubernetes::ConfigMapVerdicts`) and an etcd
//! key (`crate::etcd::EtcdVerdictStore`); the publisher and the follower of
//! this module drive either.

use signpost_model::{BoxFuture, EndpointKey, Verdicts};
use std::collections::HashSet;
use std::sync::Arc;

/// What a leader writes: the set, who decided it and when.
#[derive(Debug, Clone)]
pub struct Record {
    /// The unhealthy endpoints.
    pub verdicts: Arc<Verdicts>,
    /// The writer's identity (its Lease holder identity).
    pub by: String,
    /// When it was written, Unix seconds.
    pub at_unix: f64,
}

/// One read of the store.
#[derive(Debug, Clone)]
pub struct Read {
    /// The published set; `None` when nothing was ever published (no object).
    pub published: Option<Published>,
    /// Where a watch continues from (a resourceVersion, an etcd revision);
    /// empty for "from now on".
    pub position: String,
}

/// A published set as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The unhealthy endpoints.
    pub verdicts: Verdicts,
    /// When the writer wrote it, Unix seconds, when the object says.
    pub at_unix: Option<f64>,
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new set was written.
    Published(Published),
    /// The object was deleted.
    Deleted,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The object now holds the set; `bytes` is the size of the set's value.
    Written {
        /// Bytes of the encoded set.
        bytes: usize,
    },
    /// The object already held that set; nothing was written.
    Unchanged,
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer, or answered with an error (retried with backoff).
    #[error("{0}")]
    Unavailable(String),
    /// The object holds something that is not a verdict set (the last good
    /// set stays in use until a good one is read).
    #[error("the published verdicts do not decode: {0}")]
    Undecodable(String),
    /// The set is larger than the store holds; it is not written and the
    /// previous set stays published (not retried: the next change is).
    #[error("the verdicts need {bytes} bytes, over the store's limit of {limit} bytes")]
    TooLarge {
        /// Size of the encoded set.
        bytes: usize,
        /// The store's limit.
        limit: usize,
    },
}

/// Changes after a read, in order; ends when the store closes the watch.
pub type Changes = futures_util::stream::BoxStream<'static, Result<Change, StoreError>>;

/// One verdict object: read it, follow it, replace it.
pub trait VerdictStore: Send + Sync + 'static {
    /// The object, for logs: `configmap kube-system/signpost-health-verdicts`.
    fn describe(&self) -> &str;

    /// Reads the current set.
    fn read(&self) -> BoxFuture<'_, Result<Read, StoreError>>;

    /// Follows changes after `position` (from [`Read::position`]).
    fn watch(&self, position: &str) -> BoxFuture<'_, Result<Changes, StoreError>>;

    /// Replaces the published set with `record`'s, unless it already holds
    /// the same set.
    fn write(&self, record: &Record) -> BoxFuture<'_, Result<WriteOutcome, StoreError>>;
}

// === encoding ===

/// The text form of a set: one `namespace/service/address` per line, sorted.
pub fn encode_lines(verdicts: &Verdicts) -> String {
    let mut keys: Vec<String> = verdicts.unhealthy.iter().map(ToString::to_string).collect();
    keys.sort();
    let mut text = String::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
    for key in keys {
        text.push_str(&key);
        text.push('\n');
    }
    text
}

/// Reads the text form; blank lines are ignored. An entry that is not
/// `namespace/service/address` makes the whole set undecodable (a replica
/// never applies a set it cannot fully read).
pub fn decode_lines(text: &str) -> Result<Verdicts, StoreError> {
    let mut unhealthy = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let key = parse_key(line).ok_or_else(|| {
            StoreError::Undecodable(format!(
                "line {}: {line:?} is not namespace/service/address",
                index + 1
            ))
        })?;
        unhealthy.insert(key);
    }
    Ok(Verdicts { unhealthy })
}

/// `namespace/service/address` → the endpoint.
pub fn parse_key(text: &str) -> Option<EndpointKey> {
    let mut parts = text.splitn(3, '/');
    let namespace = parts.next().filter(|p| !p.is_empty())?;
    let service = parts.next().filter(|p| !p.is_empty())?;
    let address = parts.next()?.parse().ok()?;
    Some(EndpointKey {
        namespace: namespace.to_owned(),
        service: service.to_owned(),
        address,
    })
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_sorted() {
        let verdicts = Verdicts {
            unhealthy: ["b/web/10.0.0.2", "a/db/fd00::1", "a/db/10.0.0.1"]
                .iter()
                .map(|k| parse_key(k).unwrap())
                .collect(),
        };
        let text = encode_lines(&verdicts);
        assert_eq!(text, "a/db/10.0.0.1\na/db/fd00::1\nb/web/10.0.0.2\n");
        assert_eq!(decode_lines(&text).unwrap(), verdicts);
        assert_eq!(decode_lines("").unwrap(), Verdicts::default());
        assert!(matches!(
            decode_lines("a/db/10.0.0.1\nnonsense\n"),
            Err(StoreError::Undecodable(message)) if message.starts_with("line 2:")
        ));
    }
}
