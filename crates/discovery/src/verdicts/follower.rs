//! Following the published verdicts: every DNS replica (and every standby
//! `signpost health`) reads the verdict object, watches it, and hands each
//! new set to its subscribers.
//!
//! Control plane. Two tasks:
//!
//! ```text
//! reader:  read ─▶ watch ─▶ watch ─▶ … (re-read when the watch ends; backoff on errors)
//!            │ Observed { verdicts, readable }
//!            ▼
//! applier: readable   ─▶ deliver the published set (when it differs)
//!          unreadable ─▶ keep the last set; after `stale_after` deliver the
//!                        empty set (fail open) until readable again
//!            ▼
//!          LocalVerdicts ─▶ SubscribeVerdicts (the compilers)
//! ```
//!
//! Invariants: a set is delivered whole or not at all; while the object
//! cannot be read the last set stays in use for `stale_after`, then every
//! endpoint is served; each state change (unreadable, failed open, readable
//! again) is logged once and shown in `signpost_health_verdicts_readable`
//! and `signpost_health_verdicts_fail_open`, never once per retry. Before
//! the first read nothing is unhealthy. "Unreadable" means a read that
//! fails, a value that does not decode, or an object deleted after it
//! existed; an object that never existed is an empty set.

use super::metrics::FollowMetrics;
use super::store::{Change, Published, StoreError, VerdictStore, unix_now};
use futures_util::StreamExt as _;
use signpost_model::verdict::Deliver;
use signpost_model::{LocalVerdicts, PublishVerdicts, SubscribeVerdicts, Verdicts};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The default staleness bound: how long a replica keeps the last verdicts
/// while it cannot read new ones before it serves every endpoint.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// What the reader knows of the published verdicts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The last set read; `None` before the first successful read.
    pub verdicts: Option<Arc<Verdicts>>,
    /// Whether the object can be read right now.
    pub readable: bool,
    /// Why not, when not.
    pub problem: Option<String>,
}

/// Follows a verdict store; subscribers get the current set, then every change.
#[derive(Clone)]
pub struct VerdictFollower {
    bus: Arc<LocalVerdicts>,
    observed: watch::Receiver<Observed>,
}

impl std::fmt::Debug for VerdictFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictFollower").finish_non_exhaustive()
    }
}

// === impl VerdictFollower ===

impl VerdictFollower {
    /// Starts the reader and applier tasks on the current runtime; they run
    /// until `cancel` fires.
    pub fn start(
        store: Arc<dyn VerdictStore>,
        stale_after: Duration,
        metrics: Arc<FollowMetrics>,
        cancel: CancellationToken,
    ) -> Self {
        let bus = Arc::new(LocalVerdicts::default());
        let (sender, observed) = watch::channel(Observed::default());
        let reader = Reader {
            store: store.clone(),
            observed: sender,
            metrics: metrics.clone(),
        };
        let reader_cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = reader_cancel.cancelled() => {}
                () = reader.run() => {}
            }
        });
        let applier = Applier {
            describe: store.describe().to_owned(),
            bus: bus.clone(),
            stale_after,
            metrics,
        };
        tokio::spawn(applier.run(observed.clone(), cancel));
        Self { bus, observed }
    }

    /// The published verdicts as last read (whatever the staleness bound
    /// says): what a new leader starts from.
    pub fn observed(&self) -> watch::Receiver<Observed> {
        self.observed.clone()
    }

    /// Resolves once the published verdicts were read the first time.
    pub async fn wait_synced(&self) {
        let mut observed = self.observed.clone();
        let _ = observed.wait_for(|o| o.verdicts.is_some()).await;
    }
}

impl SubscribeVerdicts for VerdictFollower {
    fn subscribe_with(&self, deliver: Deliver) {
        self.bus.subscribe_with(deliver);
    }
}

/// Reads and watches the store, reporting through `observed`.
struct Reader {
    store: Arc<dyn VerdictStore>,
    observed: watch::Sender<Observed>,
    metrics: Arc<FollowMetrics>,
}

/// How long the reader waits after a failed read: 100 ms doubling to 5 s.
const RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

impl Reader {
    async fn run(self) {
        let mut delay = RETRY.0;
        loop {
            match self.follow().await {
                // The watch ended normally (server timeout): read again at once.
                Ok(()) => delay = RETRY.0,
                Err(error) => {
                    self.unreadable(&error);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY.1);
                }
            }
        }
    }

    /// One read and the watch after it.
    async fn follow(&self) -> Result<(), StoreError> {
        let read = self.store.read().await?;
        match read.published {
            Some(published) => self.apply(published),
            None => {
                let held_some = self
                    .observed
                    .borrow()
                    .verdicts
                    .as_ref()
                    .is_some_and(|v| !v.unhealthy.is_empty());
                if held_some {
                    // Deleted after it held a set: keep the last one (and fail
                    // open after the bound) rather than trust an absence.
                    self.unreadable(&StoreError::Unavailable(
                        "the verdict object does not exist".to_owned(),
                    ));
                } else {
                    self.apply(Published {
                        verdicts: Verdicts::default(),
                        at_unix: None,
                    });
                }
            }
        }
        let mut changes = self.store.watch(&read.position).await?;
        while let Some(change) = changes.next().await {
            match change {
                Ok(Change::Published(published)) => self.apply(published),
                Ok(Change::Deleted) => self.unreadable(&StoreError::Unavailable(
                    "the verdict object was deleted".to_owned(),
                )),
                // One bad value: keep the last set, go on watching.
                Err(error @ StoreError::Undecodable(_)) => self.unreadable(&error),
                // The watch broke: read again (a failed read marks unreadable).
                Err(error) => {
                    tracing::debug!(store = %self.store.describe(), %error, "verdict watch ended; reading again");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn apply(&self, published: Published) {
        if let Some(at) = published.at_unix {
            let took = (unix_now() - at).max(0.0);
            self.metrics.propagated(Duration::from_secs_f64(took));
        }
        let verdicts = Arc::new(published.verdicts);
        self.observed.send_modify(|observed| {
            observed.verdicts = Some(verdicts);
            observed.readable = true;
            observed.problem = None;
        });
    }

    fn unreadable(&self, error: &StoreError) {
        self.observed.send_if_modified(|observed| {
            let problem = Some(error.to_string());
            let changed = observed.readable || observed.problem != problem;
            observed.readable = false;
            observed.problem = problem;
            changed
        });
    }
}

/// Turns observations into delivered sets, applying the staleness bound.
struct Applier {
    describe: String,
    bus: Arc<LocalVerdicts>,
    stale_after: Duration,
    metrics: Arc<FollowMetrics>,
}

impl Applier {
    async fn run(self, mut observed: watch::Receiver<Observed>, cancel: CancellationToken) {
        let mut delivered: Arc<Verdicts> = Arc::new(Verdicts::default());
        let mut unreadable_since: Option<Instant> = None;
        let mut fail_open = false;
        let mut ever_read = false;
        loop {
            let deadline = unreadable_since
                .filter(|_| !fail_open)
                .map(|since| since + self.stale_after);
            let stale = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = observed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = stale => {
                    fail_open = true;
                    self.metrics.set_fail_open(true);
                    tracing::error!(store = %self.describe, stale_after = ?self.stale_after, "verdicts unreadable past the staleness bound; serving every endpoint (fail open) until they can be read");
                    if !delivered.unhealthy.is_empty() {
                        delivered = Arc::new(Verdicts::default());
                        self.deliver(&delivered);
                    }
                    continue;
                }
            }
            let current = observed.borrow_and_update().clone();
            if current.readable {
                if unreadable_since.take().is_some() {
                    tracing::info!(store = %self.describe, "verdicts readable again");
                }
                if fail_open {
                    fail_open = false;
                    self.metrics.set_fail_open(false);
                }
                self.metrics.set_readable(true);
                let Some(verdicts) = current.verdicts else {
                    continue;
                };
                if !ever_read || verdicts.unhealthy != delivered.unhealthy {
                    ever_read = true;
                    delivered = verdicts;
                    self.deliver(&delivered);
                }
            } else if unreadable_since.is_none() {
                unreadable_since = Some(Instant::now());
                self.metrics.set_readable(false);
                tracing::warn!(store = %self.describe, problem = current.problem.as_deref().unwrap_or("unknown"), keep_for = ?self.stale_after, "verdicts unreadable; keeping the last ones");
            }
        }
    }

    fn deliver(&self, verdicts: &Arc<Verdicts>) {
        self.metrics.applied(verdicts.unhealthy.len());
        self.bus.publish(verdicts.clone());
    }
}
