//! The `etcd` plugin's source: SkyDNS keys under a prefix, followed by a watch.
//!
//! Control plane, one task per plugin:
//!
//! ```text
//! connect ─▶ paginated range read at one revision R ─▶ Sink (complete state)
//!              ▲                                        │
//!              │ compacted / lost stream / error         ▼
//!              └──────── backoff ◀──────────── watch from R+1: every response ─▶ Sink
//! ```
//!
//! Invariants: a state is delivered only whole: the initial read, and every
//! re-read after a compaction (`ErrCompacted`) or a lost stream, is built
//! aside and handed over in one piece (never a partial state); while the
//! cluster is unreachable nothing is delivered, so the last state keeps
//! serving, and retries back off (100 ms doubling to 5 s). The state changes
//! (synced, unreachable) are logged once each and counted; a malformed value
//! is logged once per write and counted, and the other keys still serve.

use super::client::{Backoff, EtcdError, connect};
use super::metrics::{METRICS, adjust};
use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use signpost_model::{BoxFuture, Sink, Source};
use signpost_zone::skydns::SkyRecord;
use signpost_zone::{EtcdSpec, Input};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

/// Keys read per range request of a full read.
const PAGE: i64 = 1000;

/// SkyDNS records under one prefix of one etcd cluster.
#[derive(Debug)]
pub struct EtcdSource {
    spec: EtcdSpec,
    /// Tests only: the first watch starts here instead of after the read.
    first_watch: Option<i64>,
}

/// One key as last seen: its revision and what it decoded to.
#[derive(Debug)]
struct Entry {
    mod_revision: i64,
    record: Option<SkyRecord>,
}

/// The keys of the prefix, and what the metrics know of them.
#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// Granted TTL of each lease seen, looked up once.
    leases: HashMap<i64, Option<u32>>,
    counted_keys: i64,
    counted_invalid: i64,
}

/// Whether the source follows the cluster; logged when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Synced,
    Unreachable,
}

// === impl EtcdSource ===

impl EtcdSource {
    /// A source for `spec`.
    pub fn new(spec: EtcdSpec) -> Self {
        METRICS.used.store(true, Ordering::Relaxed);
        Self {
            spec,
            first_watch: None,
        }
    }

    /// Starts the first watch at `revision` instead of right after the
    /// initial read: a test reproduces the race in which a compaction lands
    /// between the read and the watch (the watch is cancelled with
    /// `ErrCompacted` and the prefix is read again).
    #[doc(hidden)]
    pub fn with_first_watch_from(mut self, revision: i64) -> Self {
        self.first_watch = Some(revision);
        self
    }

    /// Reads, watches, and starts over after every failure, forever.
    async fn follow(mut self, sink: Sink<Input>) {
        let mut state = State::default();
        let mut health = Health::Starting;
        let mut backoff = Backoff::new();
        let mut client: Option<Client> = None;
        loop {
            let error = self
                .session(&mut client, &mut state, &sink, &mut health, &mut backoff)
                .await;
            match &error {
                EtcdError::Compacted { compacted } => {
                    METRICS.restarts_compacted.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(prefix = %self.spec.prefix, compacted, "etcd watch compacted; re-reading the prefix");
                    continue;
                }
                EtcdError::WatchEnded(reason) if health == Health::Synced => {
                    METRICS.restarts_lost.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(prefix = %self.spec.prefix, %reason, "etcd watch lost; re-reading the prefix");
                }
                error => {
                    if health == Health::Synced {
                        METRICS.restarts_lost.fetch_add(1, Ordering::Relaxed);
                    }
                    if health != Health::Unreachable {
                        tracing::warn!(
                            prefix = %self.spec.prefix,
                            error = %error_chain(error),
                            "etcd unreachable; the last records keep serving, retrying with backoff"
                        );
                        self.set_health(&mut health, Health::Unreachable);
                    } else {
                        tracing::debug!(error = %error_chain(error), "etcd still unreachable");
                    }
                    if matches!(error, EtcdError::Request(_)) {
                        // A fresh channel on the next try (new connections to every endpoint).
                        client = None;
                    }
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One full read and the watch after it; returns why it ended.
    async fn session(
        &mut self,
        client: &mut Option<Client>,
        state: &mut State,
        sink: &Sink<Input>,
        health: &mut Health,
        backoff: &mut Backoff,
    ) -> EtcdError {
        let client = match client {
            Some(client) => client,
            None => match connect(&self.spec).await {
                Ok(connected) => client.insert(connected),
                Err(error) => return error,
            },
        };
        let revision = match self.read(client, state).await {
            Ok(revision) => revision,
            Err(error) => {
                METRICS.reads_failure.fetch_add(1, Ordering::Relaxed);
                return error;
            }
        };
        METRICS.reads_success.fetch_add(1, Ordering::Relaxed);
        sink.state(state.input());
        METRICS.revision.fetch_max(revision, Ordering::Relaxed);
        backoff.reset();
        if *health != Health::Synced {
            tracing::info!(
                prefix = %self.spec.prefix,
                keys = state.entries.len(),
                revision,
                "etcd records loaded; watching for changes"
            );
            self.set_health(health, Health::Synced);
        }
        let start = self.first_watch.take().unwrap_or(revision + 1);
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut watch = match client.watch(self.spec.prefix.as_str(), Some(options)).await {
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
            if response.events().is_empty() {
                continue;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => {
                        let lease_ttl = lease_ttl(client, &mut state.leases, kv.lease()).await;
                        state.put(&self.spec.prefix, kv, lease_ttl);
                    }
                    EventType::Delete => state.delete(kv),
                }
            }
            state.count();
            sink.state(state.input());
            if let Some(header) = response.header() {
                METRICS
                    .revision
                    .fetch_max(header.revision(), Ordering::Relaxed);
            }
        }
    }

    /// Reads every key under the prefix at one revision, page by page, into
    /// a new state that replaces `state` only when the read completed.
    async fn read(&self, client: &mut Client, state: &mut State) -> Result<i64, EtcdError> {
        let prefix = self.spec.prefix.as_bytes();
        let end = prefix_end(prefix);
        let mut fresh = State::default();
        let mut from = prefix.to_vec();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let response = client.get(from.clone(), Some(options)).await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for kv in response.kvs() {
                let unchanged = kv.key_str().ok().and_then(|key| {
                    state
                        .entries
                        .get(key)
                        .filter(|e| e.mod_revision == kv.mod_revision())
                });
                match unchanged {
                    // Same write as before: no second log line, no second count.
                    Some(entry) => {
                        fresh.entries.insert(
                            kv.key_str().unwrap_or_default().to_owned(),
                            Entry {
                                mod_revision: entry.mod_revision,
                                record: entry.record.clone(),
                            },
                        );
                    }
                    None => {
                        let lease_ttl = lease_ttl(client, &mut fresh.leases, kv.lease()).await;
                        fresh.put(&self.spec.prefix, kv, lease_ttl);
                    }
                }
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        // The gauges move from the old state to the new one (the old one's
        // drop must not take them back).
        fresh.counted_keys = std::mem::take(&mut state.counted_keys);
        fresh.counted_invalid = std::mem::take(&mut state.counted_invalid);
        fresh.count();
        *state = fresh;
        Ok(revision)
    }

    fn set_health(&self, health: &mut Health, next: Health) {
        let gauge = |h: Health| match h {
            Health::Synced => Some(&METRICS.synced),
            Health::Unreachable => Some(&METRICS.unreachable),
            Health::Starting => None,
        };
        if let Some(old) = gauge(*health) {
            adjust(old, -1);
        }
        if let Some(new) = gauge(next) {
            adjust(new, 1);
        }
        *health = next;
    }
}

impl Source<Input> for EtcdSource {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Input>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = self.follow(sink) => {}
            }
        })
    }
}

// === impl State ===

impl State {
    /// Records a write; a value that is not a SkyDNS record is logged once
    /// (per write) and counted, and the key serves nothing.
    fn put(&mut self, prefix: &str, kv: &KeyValue, lease_ttl: Option<u32>) {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let record = match kv.key_str() {
            Ok(text) => {
                SkyRecord::parse(prefix, text, kv.value(), lease_ttl).map_err(|e| e.to_string())
            }
            Err(_) => Err("key is not UTF-8".to_owned()),
        };
        let record = match record {
            Ok(record) => Some(record),
            Err(error) => {
                METRICS.invalid_values.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = %key, %error, "etcd value skipped: not a SkyDNS record");
                None
            }
        };
        self.entries.insert(
            key,
            Entry {
                mod_revision: kv.mod_revision(),
                record,
            },
        );
    }

    fn delete(&mut self, kv: &KeyValue) {
        self.entries
            .remove(String::from_utf8_lossy(kv.key()).as_ref());
    }

    /// Brings the key gauges up to date with this state.
    fn count(&mut self) {
        let invalid = self.entries.values().filter(|e| e.record.is_none()).count() as i64;
        let keys = self.entries.len() as i64 - invalid;
        adjust(&METRICS.keys, keys - self.counted_keys);
        adjust(&METRICS.invalid_keys, invalid - self.counted_invalid);
        self.counted_keys = keys;
        self.counted_invalid = invalid;
    }

    /// The records as the compiler takes them, in key order.
    fn input(&self) -> Input {
        let records: Vec<SkyRecord> = self
            .entries
            .values()
            .filter_map(|e| e.record.clone())
            .collect();
        Input::Sky(Arc::new(records))
    }
}

impl Drop for State {
    fn drop(&mut self) {
        adjust(&METRICS.keys, -self.counted_keys);
        adjust(&METRICS.invalid_keys, -self.counted_invalid);
    }
}

/// The granted TTL of `lease` (0: no lease), asked once per lease.
async fn lease_ttl(
    client: &mut Client,
    leases: &mut HashMap<i64, Option<u32>>,
    lease: i64,
) -> Option<u32> {
    if lease == 0 {
        return None;
    }
    if let Some(known) = leases.get(&lease) {
        return *known;
    }
    let granted = match client.lease_time_to_live(lease, None).await {
        Ok(response) => u32::try_from(response.granted_ttl())
            .ok()
            .filter(|&t| t > 0),
        Err(error) => {
            tracing::debug!(lease, error = %error, "etcd lease TTL unknown");
            None
        }
    };
    leases.insert(lease, granted);
    granted
}

/// The first key after every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// An error with its causes, for one log field.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
