//! Health verdicts over etcd: one leader publishes the set of unhealthy
//! endpoints, every DNS replica follows it.
//!
//! Control plane. The whole set is one value, `<prefix>unhealthy`, JSON
//! `{"unhealthy":["<namespace>/<service>/<address>", ...]}` (sorted): a
//! subscriber never sees half of a change, and a new leader or replica reads
//! the complete current set with one key. Its size limit is etcd's request
//! limit (`--max-request-bytes`, 1.5 MiB by default): [`MAX_VALUE_BYTES`]
//! (1 MiB, roughly 10,000 endpoints at 100 bytes each) is refused before it
//! is sent, logged and counted, and the previous set stays published.
//!
//! ```text
//! PublishVerdicts::publish ─watch channel (latest wins)─▶ writer task ─put─▶ etcd
//! etcd ─range read + watch─▶ follower task ─▶ LocalVerdicts ─▶ SubscribeVerdicts
//! ```
//!
//! Invariants: the writer always ends up writing the latest set (it retries
//! with backoff and skips sets that were superseded); a subscriber that
//! cannot reach etcd keeps the last verdicts it had (it delivers nothing
//! until it can read again, then the current set).

use super::client::{Backoff, EtcdError, connect};
use super::metrics::METRICS;
use etcd_client::{Client, EventType, WatchOptions};
use signpost_model::verdict::Deliver;
use signpost_model::{EndpointKey, LocalVerdicts, PublishVerdicts, SubscribeVerdicts, Verdicts};
use signpost_zone::EtcdSpec;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Largest verdict value written (etcd refuses requests over 1.5 MiB by default).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The key holding the verdicts under `prefix` (`/signpost/verdicts/` →
/// `/signpost/verdicts/unhealthy`).
pub fn verdict_key(prefix: &str) -> String {
    format!("{prefix}unhealthy")
}

/// Publishes verdicts to etcd from a background task.
#[derive(Debug)]
pub struct EtcdVerdictPublisher {
    latest: watch::Sender<Arc<Verdicts>>,
}

impl EtcdVerdictPublisher {
    /// Starts the writer task on the current tokio runtime; it runs until
    /// `cancel` fires. Nothing is written until the first [`PublishVerdicts::publish`].
    pub fn start(spec: EtcdSpec, prefix: &str, cancel: CancellationToken) -> Self {
        METRICS.used.store(true, Ordering::Relaxed);
        let (latest, mut changes) = watch::channel(Arc::new(Verdicts::default()));
        changes.mark_unchanged();
        let key = verdict_key(prefix);
        tokio::spawn(async move {
            let mut client: Option<Client> = None;
            let mut backoff = Backoff::new();
            let mut failing = false;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                // Retry the latest set until it is written or superseded.
                loop {
                    let verdicts = changes.borrow_and_update().clone();
                    let Some(value) = encode(&verdicts) else {
                        METRICS
                            .verdict_publish_failures
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::error!(key = %key, endpoints = verdicts.unhealthy.len(), limit = MAX_VALUE_BYTES, "verdicts too large for one etcd value; the previous set stays published");
                        break;
                    };
                    match write(&spec, &mut client, &key, value).await {
                        Ok(()) => {
                            METRICS.verdict_publishes.fetch_add(1, Ordering::Relaxed);
                            if failing {
                                tracing::info!(key = %key, "verdicts published to etcd again");
                            }
                            failing = false;
                            backoff.reset();
                            break;
                        }
                        Err(error) => {
                            METRICS
                                .verdict_publish_failures
                                .fetch_add(1, Ordering::Relaxed);
                            if !failing {
                                tracing::warn!(key = %key, error = %error, "cannot publish verdicts to etcd; retrying with backoff");
                            }
                            failing = true;
                            client = None;
                            tokio::select! {
                                () = cancel.cancelled() => return,
                                () = tokio::time::sleep(backoff.next_delay()) => {}
                            }
                        }
                    }
                }
            }
        });
        Self { latest }
    }
}

impl PublishVerdicts for EtcdVerdictPublisher {
    fn publish(&self, verdicts: Arc<Verdicts>) {
        self.latest.send_replace(verdicts);
    }
}

async fn write(
    spec: &EtcdSpec,
    client: &mut Option<Client>,
    key: &str,
    value: Vec<u8>,
) -> Result<(), EtcdError> {
    let client = match client {
        Some(client) => client,
        None => client.insert(connect(spec).await?),
    };
    client.put(key, value, None).await?;
    Ok(())
}

/// The JSON value, or `None` over [`MAX_VALUE_BYTES`].
fn encode(verdicts: &Verdicts) -> Option<Vec<u8>> {
    let mut keys: Vec<String> = verdicts.unhealthy.iter().map(ToString::to_string).collect();
    keys.sort();
    let value = serde_json::to_vec(&serde_json::json!({ "unhealthy": keys })).ok()?;
    (value.len() <= MAX_VALUE_BYTES).then_some(value)
}

/// Decodes the JSON value; entries that are not `namespace/service/address` are skipped.
fn decode(value: &[u8]) -> Result<Verdicts, String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        unhealthy: Vec<String>,
    }
    let raw: Raw = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let mut unhealthy = HashSet::new();
    for entry in raw.unhealthy {
        let mut parts = entry.splitn(3, '/');
        match (
            parts.next(),
            parts.next(),
            parts.next().and_then(|a| a.parse().ok()),
        ) {
            (Some(namespace), Some(service), Some(address)) => {
                unhealthy.insert(EndpointKey {
                    namespace: namespace.to_owned(),
                    service: service.to_owned(),
                    address,
                });
            }
            _ => {
                tracing::warn!(entry = %entry, "verdict entry skipped: not namespace/service/address")
            }
        }
    }
    Ok(Verdicts { unhealthy })
}

/// Follows the published verdicts; subscribers get the current set, then every change.
#[derive(Debug, Clone)]
pub struct EtcdVerdictSubscriber {
    bus: Arc<LocalVerdicts>,
    synced: watch::Receiver<bool>,
}

impl EtcdVerdictSubscriber {
    /// Starts the follower task on the current tokio runtime; it runs until
    /// `cancel` fires. Until the first read, subscribers see no unhealthy
    /// endpoint.
    pub fn start(spec: EtcdSpec, prefix: &str, cancel: CancellationToken) -> Self {
        METRICS.used.store(true, Ordering::Relaxed);
        let bus = Arc::new(LocalVerdicts::default());
        let (synced_sender, synced) = watch::channel(false);
        let key = verdict_key(prefix);
        let follower = Follower {
            spec,
            key,
            bus: bus.clone(),
            synced: synced_sender,
        };
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = follower.run() => {}
            }
        });
        Self { bus, synced }
    }

    /// Resolves once the published verdicts were read the first time.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s).await;
    }
}

impl SubscribeVerdicts for EtcdVerdictSubscriber {
    fn subscribe_with(&self, deliver: Deliver) {
        self.bus.subscribe_with(deliver);
    }
}

struct Follower {
    spec: EtcdSpec,
    key: String,
    bus: Arc<LocalVerdicts>,
    synced: watch::Sender<bool>,
}

impl Follower {
    async fn run(self) {
        let mut backoff = Backoff::new();
        let mut current = Verdicts::default();
        let mut failing = false;
        loop {
            let error = self.follow(&mut current, &mut backoff).await;
            if !failing {
                tracing::warn!(key = %self.key, error = %error, "verdicts from etcd unavailable; keeping the last ones, retrying with backoff");
            }
            failing = !matches!(error, EtcdError::Compacted { .. });
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One read and the watch after it; returns why it ended.
    async fn follow(&self, current: &mut Verdicts, backoff: &mut Backoff) -> EtcdError {
        let mut client = match connect(&self.spec).await {
            Ok(client) => client,
            Err(error) => return error,
        };
        let response = match client.get(self.key.as_str(), None).await {
            Ok(response) => response,
            Err(error) => return error.into(),
        };
        let revision = response.header().map_or(0, |h| h.revision());
        let read = match response.kvs().first() {
            Some(kv) => decode(kv.value()),
            None => Ok(Verdicts::default()),
        };
        self.apply(current, read);
        self.synced.send_replace(true);
        backoff.reset();
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut watch = match client.watch(self.key.as_str(), Some(options)).await {
            Ok(watch) => watch,
            Err(error) => return error.into(),
        };
        loop {
            let response = match watch.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return EtcdError::WatchEnded("the stream closed".to_owned()),
                Err(error) => return error.into(),
            };
            if response.canceled() {
                if response.compact_revision() > 0 {
                    return EtcdError::Compacted {
                        compacted: response.compact_revision(),
                    };
                }
                return EtcdError::WatchEnded(response.cancel_reason().to_owned());
            }
            for event in response.events() {
                let next = match (event.event_type(), event.kv()) {
                    (EventType::Put, Some(kv)) => decode(kv.value()),
                    // No published set: nothing is unhealthy.
                    _ => Ok(Verdicts::default()),
                };
                self.apply(current, next);
            }
        }
    }

    /// Hands a new set to subscribers when it differs from the current one.
    fn apply(&self, current: &mut Verdicts, next: Result<Verdicts, String>) {
        match next {
            Ok(next) if next != *current => {
                *current = next.clone();
                self.bus.publish(Arc::new(next));
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(key = %self.key, %error, "published verdicts unreadable; keeping the last ones");
            }
        }
    }
}
