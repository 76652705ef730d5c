//! Health verdicts over etcd: one leader publishes the set of unhealthy
//! endpoints, every DNS replica follows it.
//!
//! Control plane. The whole set is one value, `<prefix>unhealthy`, JSON
//! `{"unhealthy":["<namespace>/<service>/<address>", ...],"publishedAt":…,"publishedBy":…}`
//! (entries sorted; `publishedAt` in Unix seconds): a subscriber never sees
//! half of a change, and a new leader or replica reads the complete current
//! set with one key. Its size limit is etcd's request limit
//! (`--max-request-bytes`, 1.5 MiB by default): [`MAX_VALUE_BYTES`] (1 MiB,
//! roughly 10,000 endpoints at 100 bytes each) is refused before it is sent,
//! logged and counted, and the previous set stays published.
//!
//! [`EtcdVerdictStore`] is the [`VerdictStore`]; the shared publisher and
//! follower (`crate::verdicts`) drive it. [`EtcdVerdictPublisher`] and
//! [`EtcdVerdictSubscriber`] are those two over this store, for callers that
//! need no leadership gate or metrics of their own.
//!
//! Invariants: the writer always ends up writing the latest set (it retries
//! with backoff and skips sets that were superseded); a subscriber that
//! cannot reach etcd keeps the last verdicts it had, then fails open after
//! the staleness bound (`crate::verdicts::DEFAULT_STALE_AFTER` unless set).

use super::client::{EtcdError, connect};
use super::metrics::METRICS;
use crate::verdicts::{
    Change, Changes, DEFAULT_STALE_AFTER, FollowMetrics, PublishMetrics, Published, PublisherParts,
    Read, Record, StoreError, VerdictFollower, VerdictPublisher, VerdictStore, WriteOutcome,
    parse_key,
};
use etcd_client::{Client, EventType, WatchOptions};
use futures_util::StreamExt as _;
use signpost_model::verdict::Deliver;
use signpost_model::{BoxFuture, PublishVerdicts, SubscribeVerdicts, Verdicts};
use signpost_zone::EtcdSpec;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest verdict value written (etcd refuses requests over 1.5 MiB by default).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The key holding the verdicts under `prefix` (`/signpost/verdicts/` →
/// `/signpost/verdicts/unhealthy`).
pub fn verdict_key(prefix: &str) -> String {
    format!("{prefix}unhealthy")
}

/// The verdict key of one etcd cluster.
pub struct EtcdVerdictStore {
    spec: EtcdSpec,
    key: String,
    describe: String,
    // A client kept between writes (clones share one connection); reset
    // after a failure. Control plane only, never held across `.await`.
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for EtcdVerdictStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdVerdictStore")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

// === impl EtcdVerdictStore ===

impl EtcdVerdictStore {
    /// The key `<prefix>unhealthy` of `spec`'s cluster.
    pub fn new(spec: EtcdSpec, prefix: &str) -> Self {
        METRICS.used.store(true, Ordering::Relaxed);
        let key = verdict_key(prefix);
        Self {
            spec,
            describe: format!("etcd key {key}"),
            key,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<Client, StoreError> {
        let kept = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(client) = kept {
            return Ok(client);
        }
        let client = connect(&self.spec).await.map_err(unavailable)?;
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(client.clone());
        Ok(client)
    }

    fn forget_client(&self) {
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    async fn write_record(&self, record: &Record) -> Result<WriteOutcome, StoreError> {
        let value = encode(record);
        if value.len() > MAX_VALUE_BYTES {
            METRICS
                .verdict_publish_failures
                .fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::TooLarge {
                bytes: value.len(),
                limit: MAX_VALUE_BYTES,
            });
        }
        let mut client = self.client().await?;
        let result: Result<WriteOutcome, etcd_client::Error> = async {
            let current = client.get(self.key.as_str(), None).await?;
            if let Some(kv) = current.kvs().first()
                && decode(kv.value())
                    .is_ok_and(|p| p.verdicts.unhealthy == record.verdicts.unhealthy)
            {
                return Ok(WriteOutcome::Unchanged);
            }
            client.put(self.key.as_str(), value.clone(), None).await?;
            Ok(WriteOutcome::Written { bytes: value.len() })
        }
        .await;
        match result {
            Ok(outcome) => {
                if matches!(outcome, WriteOutcome::Written { .. }) {
                    METRICS.verdict_publishes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(outcome)
            }
            Err(error) => {
                METRICS
                    .verdict_publish_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.forget_client();
                Err(unavailable(EtcdError::from(error)))
            }
        }
    }
}

impl VerdictStore for EtcdVerdictStore {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn read(&self) -> BoxFuture<'_, Result<Read, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let response = match client.get(self.key.as_str(), None).await {
                Ok(response) => response,
                Err(error) => {
                    self.forget_client();
                    return Err(unavailable(EtcdError::from(error)));
                }
            };
            let revision = response.header().map_or(0, |h| h.revision());
            let published = match response.kvs().first() {
                Some(kv) => Some(decode(kv.value())?),
                None => None,
            };
            Ok(Read {
                published,
                position: revision.to_string(),
            })
        })
    }

    fn watch(&self, position: &str) -> BoxFuture<'_, Result<Changes, StoreError>> {
        let revision: i64 = position.parse().unwrap_or(0);
        Box::pin(async move {
            let mut client = self.client().await?;
            let options = WatchOptions::new().with_start_revision(revision + 1);
            let stream = match client.watch(self.key.as_str(), Some(options)).await {
                Ok(stream) => stream,
                Err(error) => {
                    self.forget_client();
                    return Err(unavailable(EtcdError::from(error)));
                }
            };
            // The client travels with the stream: it owns the connection.
            let changes = futures_util::stream::unfold(
                (
                    stream,
                    client,
                    Vec::<Result<Change, StoreError>>::new(),
                    false,
                ),
                |(mut stream, client, mut queued, done)| async move {
                    loop {
                        if let Some(next) = queued.pop() {
                            return Some((next, (stream, client, queued, done)));
                        }
                        if done {
                            return None;
                        }
                        let response = match stream.next().await {
                            Some(Ok(response)) => response,
                            Some(Err(error)) => {
                                let error = unavailable(EtcdError::from(error));
                                return Some((Err(error), (stream, client, queued, true)));
                            }
                            None => return None,
                        };
                        if response.canceled() {
                            let reason = if response.compact_revision() > 0 {
                                EtcdError::Compacted {
                                    compacted: response.compact_revision(),
                                }
                            } else {
                                EtcdError::WatchEnded(response.cancel_reason().to_owned())
                            };
                            return Some((
                                Err(unavailable(reason)),
                                (stream, client, queued, true),
                            ));
                        }
                        // Reversed so `pop` yields them in order.
                        for event in response.events().iter().rev() {
                            queued.push(match (event.event_type(), event.kv()) {
                                (EventType::Put, Some(kv)) => {
                                    decode(kv.value()).map(Change::Published)
                                }
                                _ => Ok(Change::Deleted),
                            });
                        }
                    }
                },
            );
            Ok(changes.boxed())
        })
    }

    fn write(&self, record: &Record) -> BoxFuture<'_, Result<WriteOutcome, StoreError>> {
        let record = record.clone();
        Box::pin(async move { self.write_record(&record).await })
    }
}

fn unavailable(error: EtcdError) -> StoreError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    StoreError::Unavailable(message)
}

/// The JSON value.
fn encode(record: &Record) -> Vec<u8> {
    let mut keys: Vec<String> = record
        .verdicts
        .unhealthy
        .iter()
        .map(ToString::to_string)
        .collect();
    keys.sort();
    serde_json::to_vec(&serde_json::json!({
        "unhealthy": keys,
        "publishedAt": record.at_unix,
        "publishedBy": record.by,
    }))
    .unwrap_or_default()
}

/// Decodes the JSON value; entries that are not `namespace/service/address` are skipped.
fn decode(value: &[u8]) -> Result<Published, StoreError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        unhealthy: Vec<String>,
        published_at: Option<f64>,
    }
    let raw: Raw =
        serde_json::from_slice(value).map_err(|e| StoreError::Undecodable(e.to_string()))?;
    let mut unhealthy = HashSet::new();
    for entry in raw.unhealthy {
        match parse_key(&entry) {
            Some(key) => {
                unhealthy.insert(key);
            }
            None => {
                tracing::warn!(entry = %entry, "verdict entry skipped: not namespace/service/address");
            }
        }
    }
    Ok(Published {
        verdicts: Verdicts { unhealthy },
        at_unix: raw.published_at,
    })
}

/// Publishes verdicts to etcd from a background task, without a leadership
/// gate (the caller decides when it publishes).
#[derive(Debug)]
pub struct EtcdVerdictPublisher {
    inner: VerdictPublisher,
}

impl EtcdVerdictPublisher {
    /// Starts the writer task on the current tokio runtime; it runs until
    /// `cancel` fires. Nothing is written until the first [`PublishVerdicts::publish`].
    pub fn start(spec: EtcdSpec, prefix: &str, cancel: CancellationToken) -> Self {
        let (always, leading) = tokio::sync::watch::channel(true);
        let parts = PublisherParts {
            store: Arc::new(EtcdVerdictStore::new(spec, prefix)),
            identity: String::new(),
            leading,
            observed: None,
            metrics: Arc::new(PublishMetrics::default()),
        };
        let (inner, task) = VerdictPublisher::start(parts, cancel);
        // The gate stays open for as long as the writer runs.
        tokio::spawn(async move {
            let _ = task.await;
            drop(always);
        });
        Self { inner }
    }
}

impl PublishVerdicts for EtcdVerdictPublisher {
    fn publish(&self, verdicts: Arc<Verdicts>) {
        self.inner.publish(verdicts);
    }
}

/// Follows the published verdicts; subscribers get the current set, then every change.
#[derive(Debug, Clone)]
pub struct EtcdVerdictSubscriber {
    inner: VerdictFollower,
}

impl EtcdVerdictSubscriber {
    /// Starts the follower on the current tokio runtime with the default
    /// staleness bound; it runs until `cancel` fires. Until the first read,
    /// subscribers see no unhealthy endpoint.
    pub fn start(spec: EtcdSpec, prefix: &str, cancel: CancellationToken) -> Self {
        Self::with_stale_after(spec, prefix, DEFAULT_STALE_AFTER, cancel)
    }

    /// [`Self::start`] with a staleness bound of `stale_after`.
    pub fn with_stale_after(
        spec: EtcdSpec,
        prefix: &str,
        stale_after: Duration,
        cancel: CancellationToken,
    ) -> Self {
        let store = Arc::new(EtcdVerdictStore::new(spec, prefix));
        let inner = VerdictFollower::start(
            store,
            stale_after,
            Arc::new(FollowMetrics::default()),
            cancel,
        );
        Self { inner }
    }

    /// Resolves once the published verdicts were read the first time.
    pub async fn wait_synced(&self) {
        self.inner.wait_synced().await;
    }
}

impl SubscribeVerdicts for EtcdVerdictSubscriber {
    fn subscribe_with(&self, deliver: Deliver) {
        self.inner.subscribe_with(deliver);
    }
}
