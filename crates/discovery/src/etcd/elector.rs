//! Leader election over an etcd lease (etcd's `v3election` API), for the
//! replicas of `signpost health` when there is no Kubernetes API.
//!
//! Control plane. Each term:
//!
//! ```text
//! grant lease (TTL) ─▶ keep-alive every TTL/3 ─┐
//!        └─▶ campaign(election, identity, lease) ── returns ─▶ leading (Leadership = true)
//!                                                 │
//!   no renewal acknowledged for 2/3 TTL, lease gone, stream lost ─▶ not leading, new term after backoff
//!   cancel ─▶ resign + revoke the lease ─▶ not leading
//! ```
//!
//! Invariant (model `leader` module): leadership is reported `false` before
//! the lease can have expired. A lease lives TTL past the moment etcd
//! received the last keep-alive, which is after the moment it was sent; the
//! elector counts from the send time and gives up leading once 2/3 of the
//! TTL passed without an acknowledged renewal, so while clocks run at the
//! same rate no other replica can have won the election yet.

use super::client::{Backoff, EtcdError, REQUEST_TIMEOUT, connect};
use super::metrics::METRICS;
use etcd_client::{Client, LeaderKey, ResignOptions};
use signpost_model::{BoxFuture, Elector, Leadership};
use signpost_zone::EtcdSpec;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Campaigns for `election` with an etcd lease of `ttl`.
#[derive(Debug)]
pub struct EtcdElector {
    spec: EtcdSpec,
    election: String,
    identity: String,
    ttl: Duration,
}

/// How a term ended.
enum TermEnd {
    Cancelled,
    Lost(EtcdError),
}

impl EtcdElector {
    /// An elector for the election named `election` (an etcd key prefix, e.g.
    /// `/signpost/health/leader`), recording `identity` as its value, with a
    /// lease of `ttl` (whole seconds, at least 1; etcd may raise very short
    /// TTLs to its minimum).
    pub fn new(spec: EtcdSpec, election: &str, identity: &str, ttl: Duration) -> Self {
        METRICS.used.store(true, Ordering::Relaxed);
        Self {
            spec,
            election: election.to_owned(),
            identity: identity.to_owned(),
            ttl: ttl.max(Duration::from_secs(1)),
        }
    }

    async fn campaign(self, leadership: Leadership, cancel: CancellationToken) {
        let mut backoff = Backoff::new();
        loop {
            match self.term(&leadership, &cancel, &mut backoff).await {
                TermEnd::Cancelled => {
                    leadership.set(false);
                    return;
                }
                TermEnd::Lost(error) => {
                    if leadership.is_leading() {
                        tracing::warn!(election = %self.election, identity = %self.identity, error = %error, "leadership lost");
                    } else {
                        tracing::debug!(election = %self.election, error = %error, "campaign interrupted");
                    }
                    leadership.set(false);
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// One lease: campaign while keeping it alive, lead until a renewal is
    /// late or the lease is gone, or give it up on cancellation.
    async fn term(
        &self,
        leadership: &Leadership,
        cancel: &CancellationToken,
        backoff: &mut Backoff,
    ) -> TermEnd {
        let mut client = match connect(&self.spec).await {
            Ok(client) => client,
            Err(error) => return TermEnd::Lost(error),
        };
        let ttl_seconds = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        // The lease certainly lives until TTL after this moment.
        let mut renewed = Instant::now();
        let lease = match timed(client.lease_grant(ttl_seconds, None)).await {
            Ok(grant) => grant.id(),
            Err(error) => return TermEnd::Lost(error),
        };
        let granted = self.ttl;
        let renew_deadline = granted * 2 / 3;
        let (mut keeper, mut acks) = match timed(client.lease_keep_alive(lease)).await {
            Ok(pair) => pair,
            Err(error) => return TermEnd::Lost(error),
        };
        let mut sent: VecDeque<Instant> = VecDeque::new();
        let mut ticks = tokio::time::interval(granted / 3);
        let mut elections = client.election_client();
        let campaign = elections.campaign(self.election.as_str(), self.identity.as_str(), lease);
        tokio::pin!(campaign);
        let mut leader: Option<LeaderKey> = None;
        let end = loop {
            tokio::select! {
                () = cancel.cancelled() => break TermEnd::Cancelled,
                won = &mut campaign, if leader.is_none() => match won {
                    Ok(response) => {
                        // Only lead with time left on the lease.
                        if renewed.elapsed() >= renew_deadline {
                            break TermEnd::Lost(EtcdError::WatchEnded("lease renewal overdue".to_owned()));
                        }
                        leader = response.leader().cloned();
                        leadership.set(true);
                        backoff.reset();
                        tracing::info!(election = %self.election, identity = %self.identity, "leading");
                    }
                    Err(error) => break TermEnd::Lost(error.into()),
                },
                _ = ticks.tick() => {
                    if renewed.elapsed() >= renew_deadline {
                        // Report false before the lease can expire (module invariant).
                        leadership.set(false);
                        break TermEnd::Lost(EtcdError::WatchEnded("lease renewal overdue".to_owned()));
                    }
                    sent.push_back(Instant::now());
                    if let Err(error) = keeper.keep_alive().await {
                        break TermEnd::Lost(error.into());
                    }
                }
                ack = acks.message() => match ack {
                    Ok(Some(response)) if response.ttl() > 0 => {
                        if let Some(at) = sent.pop_front() {
                            renewed = renewed.max(at);
                        }
                    }
                    Ok(Some(_)) => break TermEnd::Lost(EtcdError::WatchEnded("lease expired".to_owned())),
                    Ok(None) => break TermEnd::Lost(EtcdError::WatchEnded("keep-alive stream closed".to_owned())),
                    Err(error) => break TermEnd::Lost(error.into()),
                },
            }
        };
        leadership.set(false);
        self.give_up(&mut client, leader, lease).await;
        end
    }

    /// Resigns (if leading) and revokes the lease, best effort: either ends
    /// the term at once for the other candidates; if etcd cannot be reached
    /// the lease simply expires.
    async fn give_up(&self, client: &mut Client, leader: Option<LeaderKey>, lease: i64) {
        if let Some(leader) = leader {
            let options = ResignOptions::new().with_leader(leader);
            if timed(client.resign(Some(options))).await.is_ok() {
                tracing::info!(election = %self.election, identity = %self.identity, "resigned");
            }
        }
        let _ = timed(client.lease_revoke(lease)).await;
    }
}

impl Elector for EtcdElector {
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

/// A request with the 5 s request timeout.
async fn timed<T>(
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, EtcdError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(EtcdError::WatchEnded("request timed out".to_owned())),
    }
}
