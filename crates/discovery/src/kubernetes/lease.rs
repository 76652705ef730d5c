//! Leader election over a `coordination.k8s.io/v1` Lease, with client-go's
//! algorithm (`tools/leaderelection`), for the replicas of `signpost health`
//! (and later `signpost sync`).
//!
//! Control plane. One task per candidate:
//!
//! ```text
//!            ┌──────────── watch of the Lease (fieldSelector metadata.name) ─── observed record + when seen
//!            ▼
//! standby ──try (GET; POST if missing; PUT with its resourceVersion)──▶ leading ──renew every retry period──┐
//!    ▲        when the holder is empty, or its lease expired as observed         │ (PUT; on 409 GET + PUT)    │
//!    └───────────────── no renewal acknowledged within the renew deadline ◀──────┴────────────────────────────┘
//!                       cancel: release (holder "", duration 1 s), then not leading
//! ```
//!
//! A lease is expired when `leaseDurationSeconds` (the holder's) have passed
//! since this candidate *observed* its record change, never by comparing
//! clocks with the holder's `renewTime` (client-go's rule). Observations come
//! from a watch of the Lease as well as from each try, so a standby sees a
//! renewal within milliseconds and takes over as soon as the lease it saw
//! last expires, not up to a retry period later.
//!
//! Invariant (model `leader` module): a leader reports `false` once the renew
//! deadline has passed since it *sent* its last acknowledged renewal; the
//! renew deadline is shorter than the lease duration, and every other
//! candidate observed that renewal no earlier than it was sent, so no other
//! candidate can have taken the lease while this one still reports `true`
//! (with clocks that run at the same rate). Updates carry the
//! `resourceVersion` they read, so two candidates never both win a try: the
//! API server answers the later one 409 Conflict.

use super::client::connect;
use futures_util::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use signpost_model::{BoxFuture, Elector, Leadership};
use signpost_zone::KubeConnection;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lease timings, client-go's names and defaults (15 s, 10 s, 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long candidates wait after they last observed a renewal before
    /// they take the lease (`leaseDurationSeconds`, whole seconds, at least 1).
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// Time between tries.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Campaigns for the Lease `namespace/name`.
pub struct LeaseElector {
    connection: KubeConnection,
    namespace: String,
    name: String,
    identity: String,
    timings: LeaseTimings,
    holder: watch::Sender<Option<String>>,
}

impl std::fmt::Debug for LeaseElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseElector")
            .field("lease", &format!("{}/{}", self.namespace, self.name))
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The parts of a Lease that make up the election record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: String,
    duration_seconds: i32,
    acquire_time: Option<MicroTime>,
    renew_time: Option<MicroTime>,
    transitions: i32,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.unwrap_or_default(),
            duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time,
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    fn spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.duration_seconds),
            acquire_time: self.acquire_time.clone(),
            renew_time: self.renew_time.clone(),
            lease_transitions: Some(self.transitions),
            ..LeaseSpec::default()
        }
    }
}

/// A record and when this candidate first saw it.
#[derive(Debug, Clone)]
struct Observation {
    record: Record,
    at: Instant,
}

impl Observation {
    /// When the lease expires as this candidate sees it.
    fn expiry(&self) -> Instant {
        let seconds = u64::try_from(self.record.duration_seconds).unwrap_or(0);
        self.at + Duration::from_secs(seconds)
    }
}

// === impl LeaseElector ===

impl LeaseElector {
    /// A candidate named `identity` (unique among the candidates: pod name
    /// plus a random suffix) for the Lease `namespace/name`.
    pub fn new(
        connection: KubeConnection,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: LeaseTimings,
    ) -> Self {
        Self {
            connection,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            holder: watch::Sender::new(None),
        }
    }

    /// Who holds the lease as this candidate last observed it (`None` when
    /// nobody does or it expired).
    pub fn holder(&self) -> watch::Receiver<Option<String>> {
        self.holder.subscribe()
    }

    async fn campaign(self, leadership: Leadership, cancel: CancellationToken) {
        let describe = format!("lease {}/{}", self.namespace, self.name);
        let mut reported: Option<String> = None;
        let client = loop {
            match connect(&self.connection).await {
                Ok(client) => break client,
                Err(error) => {
                    let message = error.to_string();
                    if reported.as_ref() != Some(&message) {
                        tracing::error!(lease = %describe, error = %message, "leader election: cannot build a Kubernetes client; retrying");
                        reported = Some(message);
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.timings.retry_period) => {}
            }
        };
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut events = watcher::watcher(api.clone(), config)
            .default_backoff()
            .boxed();
        let mut campaign = Campaign {
            api,
            identity: self.identity.clone(),
            name: self.name.clone(),
            duration_seconds: i32::try_from(self.timings.lease_duration.as_secs().max(1))
                .unwrap_or(i32::MAX),
            observed: None,
            cached: None,
            holder: self.holder,
        };
        let timings = self.timings;
        let mut leading = false;
        // Send time of the last acknowledged renewal, while leading.
        let mut renewed = Instant::now();
        let mut next_try = Instant::now();
        let mut failing = false;
        loop {
            let lose_at = leading.then(|| renewed + timings.renew_deadline);
            let lose = async {
                match lose_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => {
                    if leading {
                        leadership.set(false);
                        campaign.release().await;
                        tracing::info!(lease = %describe, identity = %self.identity, "released the lease");
                    }
                    leadership.set(false);
                    return;
                }
                event = events.next() => {
                    // A leader learns of its own writes from their answers; a
                    // watch event may lag behind them, so only standbys use it.
                    match event {
                        Some(Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease))) if !leading => {
                            campaign.observe(&lease);
                            campaign.cached = Some(lease);
                            next_try = next_try.min(campaign.standby_try(timings.retry_period));
                        }
                        Some(Err(error)) => {
                            tracing::debug!(lease = %describe, %error, "lease watch failed; retrying with backoff");
                        }
                        _ => {}
                    }
                    continue;
                }
                () = lose => {
                    leading = false;
                    leadership.set(false);
                    tracing::warn!(lease = %describe, identity = %self.identity, renew_deadline = ?timings.renew_deadline, "no renewal within the renew deadline; not leading");
                    next_try = Instant::now();
                    continue;
                }
                () = tokio::time::sleep_until(next_try) => {}
            }
            let started = Instant::now();
            let limit = match lose_at {
                Some(at) => at.saturating_duration_since(started),
                None => REQUEST_TIMEOUT,
            };
            let won = tokio::select! {
                () = cancel.cancelled() => continue,
                result = tokio::time::timeout(limit, campaign.try_acquire_or_renew(leading)) => result,
            };
            match won {
                Ok(Ok(true)) => {
                    renewed = started;
                    if !leading {
                        leading = true;
                        leadership.set(true);
                        tracing::info!(lease = %describe, identity = %self.identity, "leading");
                    }
                    if std::mem::take(&mut failing) {
                        tracing::info!(lease = %describe, "lease requests succeed again");
                    }
                    next_try = started + timings.retry_period;
                }
                Ok(Ok(false)) => next_try = campaign.standby_try(timings.retry_period),
                Ok(Err(error)) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(lease = %describe, error = %error, "leader election request failed; retrying");
                    }
                    next_try = Instant::now() + timings.retry_period;
                }
                Err(_) => next_try = Instant::now() + timings.retry_period,
            }
            if leading && Instant::now() >= renewed + timings.renew_deadline {
                leading = false;
                leadership.set(false);
                tracing::warn!(lease = %describe, identity = %self.identity, "no renewal within the renew deadline; not leading");
            }
        }
    }
}

impl Elector for LeaseElector {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn run(
        self: Box<Self>,
        leadership: Leadership,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(self.campaign(leadership, cancel))
    }
}

/// One candidate's view of the Lease.
struct Campaign {
    api: Api<Lease>,
    identity: String,
    name: String,
    duration_seconds: i32,
    observed: Option<Observation>,
    /// The newest Lease object seen, for its resourceVersion.
    cached: Option<Lease>,
    holder: watch::Sender<Option<String>>,
}

impl Campaign {
    /// Records `lease` as observed now if its record changed.
    fn observe(&mut self, lease: &Lease) {
        let record = Record::of(lease);
        if self.observed.as_ref().is_some_and(|o| o.record == record) {
            return;
        }
        let holder = (!record.holder.is_empty()).then(|| record.holder.clone());
        self.holder.send_if_modified(|current| {
            let changed = *current != holder;
            current.clone_from(&holder);
            changed
        });
        self.observed = Some(Observation {
            record,
            at: Instant::now(),
        });
    }

    /// Another candidate holds an unexpired lease.
    fn held_by_other(&self) -> bool {
        self.observed.as_ref().is_some_and(|o| {
            !o.record.holder.is_empty()
                && o.record.holder != self.identity
                && o.expiry() > Instant::now()
        })
    }

    /// When a standby tries next: at once for a free lease, when the
    /// observed lease expires, and at least every retry period.
    fn standby_try(&self, retry_period: Duration) -> Instant {
        let now = Instant::now();
        match &self.observed {
            Some(o) if self.held_by_other() => o.expiry().min(now + retry_period),
            Some(_) => now,
            None => now + retry_period,
        }
    }

    /// client-go's `tryAcquireOrRenew`: true when this candidate holds the
    /// lease afterwards.
    async fn try_acquire_or_renew(&mut self, leading: bool) -> Result<bool, String> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        // Fast path: a leader renews the object it wrote last.
        if leading
            && let Some(cached) = self.cached.clone()
            && Record::of(&cached).holder == self.identity
        {
            let mut record = Record::of(&cached);
            record.renew_time = Some(now.clone());
            record.duration_seconds = self.duration_seconds;
            if let Ok(written) = self.replace(cached, &record).await {
                self.remember(written);
                return Ok(true);
            }
        }
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| describe_error(&e))?;
        let Some(current) = current else {
            let record = Record {
                holder: self.identity.clone(),
                duration_seconds: self.duration_seconds,
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                transitions: 0,
            };
            let mut lease = Lease::default();
            lease.metadata.name = Some(self.name.clone());
            lease.spec = Some(record.spec());
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.remember(created);
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
                Err(error) => Err(describe_error(&error)),
            };
        };
        self.observe(&current);
        self.cached = Some(current.clone());
        if self.held_by_other() {
            return Ok(false);
        }
        let old = Record::of(&current);
        let record = if old.holder == self.identity {
            Record {
                renew_time: Some(now),
                duration_seconds: self.duration_seconds,
                ..old
            }
        } else {
            Record {
                holder: self.identity.clone(),
                duration_seconds: self.duration_seconds,
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                transitions: old.transitions.saturating_add(1),
            }
        };
        match self.replace(current, &record).await {
            Ok(written) => {
                self.remember(written);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
            Err(error) => Err(describe_error(&error)),
        }
    }

    /// PUT `lease` with `record`, conditioned on `lease`'s resourceVersion.
    async fn replace(&self, mut lease: Lease, record: &Record) -> Result<Lease, kube::Error> {
        let mut spec = lease.spec.take().unwrap_or_default();
        let fresh = record.spec();
        spec.holder_identity = fresh.holder_identity;
        spec.lease_duration_seconds = fresh.lease_duration_seconds;
        spec.acquire_time = fresh.acquire_time;
        spec.renew_time = fresh.renew_time;
        spec.lease_transitions = fresh.lease_transitions;
        lease.spec = Some(spec);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
    }

    fn remember(&mut self, lease: Lease) {
        self.observe(&lease);
        self.cached = Some(lease);
    }

    /// client-go's release: holder empty, duration 1 s, so the next candidate
    /// takes over at its next try. Best effort.
    async fn release(&mut self) {
        let Some(cached) = self.cached.clone() else {
            return;
        };
        if Record::of(&cached).holder != self.identity {
            return;
        }
        let release = async {
            let mut current = cached;
            // Twice at most: a renew cancelled after the server applied it
            // leaves the cached resourceVersion stale, and the first write
            // then conflicts; the Lease read again is the one to release.
            for _ in 0..2 {
                if Record::of(&current).holder != self.identity {
                    return;
                }
                let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
                let record = Record {
                    holder: String::new(),
                    duration_seconds: 1,
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    transitions: Record::of(&current).transitions,
                };
                match self.replace(current, &record).await {
                    Err(kube::Error::Api(status)) if status.is_conflict() => {
                        match self.api.get_opt(&self.name).await {
                            Ok(Some(fresh)) => current = fresh,
                            _ => return,
                        }
                    }
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, release).await;
    }
}

fn describe_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}
