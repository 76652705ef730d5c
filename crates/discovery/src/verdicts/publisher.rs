//! Publishing verdicts: the `signpost health` leader's checker hands every
//! new set to [`VerdictPublisher`], which writes it to the verdict store.
//!
//! Control plane. One writer task:
//!
//! ```text
//! PublishVerdicts::publish ─watch (latest wins)─▶ writer ─write─▶ store
//!                  leadership (watch) ───────────▶   │  ◀── observed object (follower)
//! ```
//!
//! Invariants:
//! - Only a leader writes: the writer checks leadership before every
//!   attempt, forgets the set it was asked for when leadership is lost, and
//!   writes again only what the checker of a new term publishes.
//! - The latest set wins: a set superseded while a write was retried is
//!   never written after the newer one.
//! - The object converges on the leader's set: when the follower sees the
//!   object differ from the last set published (a late write of a deposed
//!   leader, a manual edit), the writer writes the set again.
//! - A set over the store's limit is not written: the previous set stays
//!   published, logged once and counted (`result="too_large"`).

use super::follower::Observed;
use super::metrics::{Attempt, PublishMetrics};
use super::store::{Record, StoreError, VerdictStore, WriteOutcome, unix_now};
use signpost_model::{PublishVerdicts, Verdicts};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A set the checker decided and when.
#[derive(Debug, Clone)]
struct Pending {
    verdicts: Arc<Verdicts>,
    decided: Instant,
}

/// Hands verdict sets to the writer task; cheap, never blocks.
#[derive(Debug)]
pub struct VerdictPublisher {
    latest: watch::Sender<Option<Pending>>,
}

/// What the writer task needs.
pub struct PublisherParts {
    /// Where sets go.
    pub store: Arc<dyn VerdictStore>,
    /// This process's identity, recorded with each set.
    pub identity: String,
    /// Whether this process leads; the writer writes only while it does.
    pub leading: watch::Receiver<bool>,
    /// The object as the follower reads it, to notice a differing object.
    pub observed: Option<watch::Receiver<Observed>>,
    /// Counters.
    pub metrics: Arc<PublishMetrics>,
}

/// How long the writer waits after a failed write: 100 ms doubling to 5 s.
const RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

// === impl VerdictPublisher ===

impl VerdictPublisher {
    /// Starts the writer task on the current runtime; it runs until `cancel`
    /// fires (finishing nothing in flight: a cancelled write may or may not
    /// land, as with any request).
    pub fn start(
        parts: PublisherParts,
        cancel: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (latest, changes) = watch::channel(None);
        let writer = Writer {
            store: parts.store,
            identity: parts.identity,
            metrics: parts.metrics,
            failing: false,
            too_large: false,
        };
        let handle = tokio::spawn(writer.run(changes, parts.leading, parts.observed, cancel));
        (Self { latest }, handle)
    }
}

impl PublishVerdicts for VerdictPublisher {
    fn publish(&self, verdicts: Arc<Verdicts>) {
        self.latest.send_replace(Some(Pending {
            verdicts,
            decided: Instant::now(),
        }));
    }
}

struct Writer {
    store: Arc<dyn VerdictStore>,
    identity: String,
    metrics: Arc<PublishMetrics>,
    /// The last attempt failed (logged once until one succeeds).
    failing: bool,
    /// The last set was too large (logged once until one fits).
    too_large: bool,
}

impl Writer {
    async fn run(
        mut self,
        mut changes: watch::Receiver<Option<Pending>>,
        mut leading: watch::Receiver<bool>,
        mut observed: Option<watch::Receiver<Observed>>,
        cancel: CancellationToken,
    ) {
        // The set this term's checker asked for last, and whether the store holds it.
        let mut desired: Option<Pending> = None;
        let mut written = false;
        loop {
            let observed_changed = async {
                match observed.as_mut() {
                    Some(receiver) => receiver.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    desired = changes.borrow_and_update().clone();
                    written = false;
                }
                changed = leading.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                alive = observed_changed => {
                    if !alive {
                        observed = None;
                        continue;
                    }
                    let differs = observed.as_ref().and_then(|o| o.borrow().verdicts.clone()).zip(desired.as_ref())
                        .is_some_and(|(seen, want)| seen.unhealthy != want.verdicts.unhealthy);
                    if !differs {
                        continue;
                    }
                    // The object holds something else than this leader's set.
                    written = false;
                }
            }
            if !*leading.borrow_and_update() {
                // A deposed leader forgets its set; the next term's checker publishes anew.
                desired = None;
                continue;
            }
            if written {
                continue;
            }
            let Some(pending) = desired.clone() else {
                continue;
            };
            match self
                .write(&pending, &mut changes, &mut leading, &cancel)
                .await
            {
                Some(Settled::Done) => written = true,
                Some(Settled::Superseded(newer)) => {
                    // Handled by the next turn: the newer set is desired now.
                    desired = Some(newer);
                    written = false;
                    changes.mark_changed();
                }
                Some(Settled::Deposed) => desired = None,
                None => return,
            }
        }
    }

    /// Writes `pending`, retrying with backoff, until it is written, a newer
    /// set supersedes it, leadership is lost, or cancellation (`None`).
    async fn write(
        &mut self,
        pending: &Pending,
        changes: &mut watch::Receiver<Option<Pending>>,
        leading: &mut watch::Receiver<bool>,
        cancel: &CancellationToken,
    ) -> Option<Settled> {
        let mut delay = RETRY.0;
        loop {
            if !*leading.borrow() {
                return Some(Settled::Deposed);
            }
            let record = Record {
                verdicts: pending.verdicts.clone(),
                by: self.identity.clone(),
                at_unix: unix_now(),
            };
            let result = tokio::select! {
                () = cancel.cancelled() => return None,
                result = self.store.write(&record) => result,
            };
            match result {
                Ok(outcome) => {
                    let attempt = match outcome {
                        WriteOutcome::Written { bytes } => Attempt::Written {
                            took: pending.decided.elapsed(),
                            bytes,
                        },
                        WriteOutcome::Unchanged => Attempt::Unchanged,
                    };
                    self.metrics.record(attempt, None);
                    if std::mem::take(&mut self.failing) || std::mem::take(&mut self.too_large) {
                        tracing::info!(store = %self.store.describe(), "verdicts published again");
                    }
                    if let WriteOutcome::Written { bytes } = outcome {
                        tracing::debug!(store = %self.store.describe(), unhealthy = pending.verdicts.unhealthy.len(), bytes, "verdicts published");
                    }
                    return Some(Settled::Done);
                }
                Err(error @ StoreError::TooLarge { .. }) => {
                    self.metrics
                        .record(Attempt::TooLarge, Some(error.to_string()));
                    if !std::mem::replace(&mut self.too_large, true) {
                        tracing::error!(store = %self.store.describe(), %error, unhealthy = pending.verdicts.unhealthy.len(), "verdicts not published: too large; the previous set stays published");
                    }
                    return Some(Settled::Done);
                }
                Err(error) => {
                    self.metrics
                        .record(Attempt::Failed, Some(error.to_string()));
                    if !std::mem::replace(&mut self.failing, true) {
                        tracing::warn!(store = %self.store.describe(), %error, "cannot publish verdicts; retrying with backoff");
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    if let Some(newer) = changes.borrow_and_update().clone() {
                        return Some(Settled::Superseded(newer));
                    }
                }
                changed = leading.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
            delay = (delay * 2).min(RETRY.1);
        }
    }
}

/// How a write of one set ended.
enum Settled {
    /// Written, or found in place, or refused for good (too large).
    Done,
    /// A newer set arrived while retrying.
    Superseded(Pending),
    /// Leadership was lost.
    Deposed,
}
