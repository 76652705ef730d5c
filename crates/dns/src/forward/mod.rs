//! The `forward` plugin: sends queries for a zone to upstream resolvers.
//!
//! Control plane (the tokio runtime), called by the answer path for names the
//! local data does not hold. Everything here may allocate; nothing blocks.
//!
//! ```text
//! resolve(query) ─▶ max_concurrent? ─▶ coalesce by (qname, qtype, qclass, DO, CD, RD, transport)
//!                                        │ first asker spawns the exchange; later askers wait on it
//!                                        ▼
//!        order upstreams by policy, skip down ones (all down: one at random)
//!                                        ▼
//!        per upstream: pooled UDP socket, fresh random ID (TC=1 ─▶ the kept TCP connection) or TCP
//!                      ≤ 2 s per attempt, all within the query's timeout (5 s)
//!                                        ▼
//!        reply with the client's ID and question restored
//! ```
//!
//! Health, as CoreDNS: every failed exchange counts against its upstream and
//! wakes that upstream's health task, which probes `. IN NS` (RD set unless
//! `no_rec`) every `health_check` interval until a probe gets any reply;
//! failed probes count too. After `max_fails` consecutive failures the
//! upstream is down and skipped; any reply (query or probe) makes it
//! healthy again. With `max_fails 0` upstreams are never down.
//!
//! Sockets (`pool`): per upstream, a few connected UDP sockets shared by
//! every query (a reply is matched by ID and question; why that resists
//! spoofing as well as a socket per query is in `pool`'s notes, after RFC
//! 5452) and one TCP connection that carries queries pipelined, each kept
//! for `expire`.
//!
//! A UDP client's miss does not go through `resolve`: the UDP worker forwards it
//! itself on sockets of its own (`udp::inline`), with the same order, health,
//! `max_concurrent` and metrics through [`Forwarder`]'s crate-internal hooks
//! (`attempt_order`, `admit_query`, `note_*`); this path serves TCP clients,
//! `force_tcp`, TCP retries of truncated replies and background refreshes.
//!
//! Invariants: no caller waits longer than [`ForwardConfig::timeout`]; the
//! upstream never sees the client's message ID (RFC 5452 §9.2: a fresh random
//! ID per query sent, on a source port picked at random); the coalescing
//! map's lock is held only to look up, insert or remove, never across an
//! `.await`.
//!
//! Differences from CoreDNS: a UDP socket also retires `expire` after it
//! opened, busy or not (CoreDNS closes only idle ones), so source ports keep
//! changing; a fixed per-attempt timeout instead of CoreDNS's adaptive read
//! timeout; a truncated UDP reply is always retried over TCP (CoreDNS does so
//! only with `prefer_udp` and otherwise hands the truncated reply to the
//! client); the caller fits a reply for a UDP client with [`fit_udp`].

mod config;
mod metrics;
mod pool;
mod random;
mod wire;

#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod tests;

pub use config::{ATTEMPT_TIMEOUT, DEFAULT_UPSTREAM_PORT, ForwardConfig, MAX_UPSTREAMS, Policy};
pub use metrics::{ForwardMetrics, render_all};
pub use pool::UDP_SOCKETS;
pub use wire::fit_udp;
pub(crate) use wire::{answers_question, question_end, set_id, truncated};

use crate::metrics::Transport;
use metrics::UpstreamMetrics;
use pool::Pool;
use random::Random;
use signpost_proto::{is_within_wire, parse_query, rcode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use wire::AttemptError;

/// The most a health probe waits for its reply.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a forwarded query got no upstream reply. Allocation-free and `Copy`,
/// for metrics; [`ForwardError::rcode`] says what the client is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// `max_concurrent` client queries are already in flight. Not retried;
    /// answered REFUSED, as CoreDNS does.
    #[error("too many forwarded queries in flight")]
    Overloaded,
    /// Every upstream was down, and the one tried anyway failed too (or
    /// `failfast_all_unhealthy_upstreams` is set).
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    /// No upstream replied within the query's timeout.
    #[error("upstreams did not answer in time")]
    Timeout,
    /// Every upstream tried failed (refused, unreachable, malformed replies)
    /// before the timeout.
    #[error("every upstream failed")]
    Unreachable,
    /// The message is not a well-formed query; nothing was sent.
    #[error("the query is malformed")]
    Malformed,
}

impl ForwardError {
    /// The RCODE to answer the client with: REFUSED when overloaded, FORMERR
    /// for a malformed query, SERVFAIL otherwise.
    pub fn rcode(self) -> u16 {
        match self {
            Self::Overloaded => rcode::REFUSED,
            Self::Malformed => rcode::FORMERR,
            _ => rcode::SERVFAIL,
        }
    }

    /// A short name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::NoHealthyUpstream => "no_healthy_upstream",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Malformed => "malformed",
        }
    }
}

/// A running forwarder: its upstreams' health, in-flight exchanges and
/// metrics. Cheap to clone; clones share everything. The health tasks stop
/// when the last clone is dropped or the cancellation token fires.
#[derive(Debug, Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ForwardConfig,
    upstreams: Vec<Arc<Upstream>>,
    metrics: Arc<ForwardMetrics>,
    random: Arc<Random>,
    in_flight: AtomicUsize,
    next_round_robin: AtomicUsize,
    /// Exchanges in progress by coalescing key. A synchronous mutex: it is
    /// held for one map operation and never across an `.await`.
    pending: Mutex<HashMap<Box<[u8]>, watch::Receiver<Outcome>>>,
    cancel: CancellationToken,
}

/// What an exchange produced; `None` until it finishes.
type Outcome = Option<Result<Arc<[u8]>, ForwardError>>;

/// One upstream and its health.
#[derive(Debug)]
struct Upstream {
    address: SocketAddr,
    /// Consecutive failed exchanges and probes; reset by any reply.
    fails: AtomicU32,
    /// Wakes the health task after a failure.
    wake: Notify,
    metrics: Arc<UpstreamMetrics>,
    /// The sockets kept for it.
    pool: Arc<Pool>,
}

// === impl Forwarder ===

impl Forwarder {
    /// Starts a forwarder. Must be called inside a tokio runtime: it spawns
    /// one health task per upstream (none with `max_fails 0`).
    pub fn new(config: ForwardConfig, metrics: Arc<ForwardMetrics>) -> Self {
        Self::with_cancellation(config, metrics, &CancellationToken::new())
    }

    /// [`Forwarder::new`], with health tasks that also stop when `parent` is cancelled.
    pub fn with_cancellation(
        config: ForwardConfig,
        metrics: Arc<ForwardMetrics>,
        parent: &CancellationToken,
    ) -> Self {
        let random = Arc::new(Random::new());
        let cancel = parent.child_token();
        let upstreams: Vec<Arc<Upstream>> = config
            .upstreams
            .iter()
            .map(|&address| {
                let upstream_metrics = metrics.upstream(address);
                Arc::new(Upstream {
                    address,
                    fails: AtomicU32::new(0),
                    wake: Notify::new(),
                    pool: Arc::new(Pool::new(
                        address,
                        config.expire,
                        random.clone(),
                        upstream_metrics.clone(),
                        cancel.clone(),
                    )),
                    metrics: upstream_metrics,
                })
            })
            .collect();
        let inner = Arc::new(Inner {
            upstreams,
            metrics,
            random,
            in_flight: AtomicUsize::new(0),
            next_round_robin: AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
            cancel,
            config,
        });
        if inner.config.max_fails > 0 {
            for upstream in &inner.upstreams {
                let task = HealthTask {
                    upstream: upstream.clone(),
                    interval: inner.config.health_check,
                    probe: wire::probe_query(
                        0,
                        inner.config.health_check_domain.as_wire(),
                        inner.config.health_check_recursion,
                    ),
                    tcp: inner.config.force_tcp,
                    max_fails: inner.config.max_fails,
                    server: inner.metrics.server().to_owned(),
                    random: inner.random.clone(),
                    cancel: inner.cancel.clone(),
                };
                let span = tracing::info_span!("forward_health", upstream = %upstream.address);
                tokio::spawn(task.run().instrument(span));
            }
        }
        Self { inner }
    }

    /// The configuration it runs.
    pub fn config(&self) -> &ForwardConfig {
        &self.inner.config
    }

    /// Whether a query for this name (lower-case wire format) is forwarded:
    /// within `from` and not within any `except` name.
    pub fn handles(&self, qname_lower_wire: &[u8]) -> bool {
        let config = &self.inner.config;
        is_within_wire(qname_lower_wire, config.from.as_wire())
            && !config
                .except
                .iter()
                .any(|name| is_within_wire(qname_lower_wire, name.as_wire()))
    }

    /// Whether `upstream` is currently down (skipped); `None` if it is not configured.
    pub fn is_down(&self, upstream: SocketAddr) -> Option<bool> {
        self.inner
            .upstreams
            .iter()
            .find(|u| u.address == upstream)
            .map(|u| u.is_down(self.inner.config.max_fails))
    }

    /// Resolves one query from a UDP client: [`Forwarder::resolve_from`] with UDP.
    pub async fn resolve(&self, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        self.resolve_from(query, Transport::Udp).await
    }

    /// Resolves one query (the client's wire bytes) and returns the
    /// upstream's reply with the client's ID and question (letter case
    /// included) restored. As CoreDNS, the upstream is asked over the
    /// client's transport, unless `force_tcp` (always TCP) or `prefer_udp`
    /// (UDP first) says otherwise. The reply may exceed a UDP client's limit:
    /// pass it through [`fit_udp`].
    pub async fn resolve_from(
        &self,
        query: &[u8],
        client: Transport,
    ) -> Result<Vec<u8>, ForwardError> {
        let config = &self.inner.config;
        let tcp = config.force_tcp || (client == Transport::Tcp && !config.prefer_udp);
        self.resolve_over(query, tcp).await
    }

    /// [`Forwarder::resolve_from`] over TCP whatever the client's transport:
    /// the retry of a query whose UDP reply came back truncated (RFC 7766
    /// §5), for a UDP worker that got that reply itself (`udp::inline`).
    pub(crate) async fn resolve_over_tcp(&self, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        self.resolve_over(query, true).await
    }

    /// Resolves `query` over TCP (`tcp`) or UDP first.
    async fn resolve_over(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        let parsed = parse_query(query).map_err(|_| ForwardError::Malformed)?;
        let _admission = self.admit()?;
        let config = &self.inner.config;
        let deadline = Instant::now() + config.timeout;

        let mut key = Vec::with_capacity(parsed.qname_lower().len() + 5);
        key.extend_from_slice(parsed.qname_lower());
        key.extend_from_slice(&parsed.qtype.to_be_bytes());
        key.extend_from_slice(&parsed.qclass.to_be_bytes());
        let dnssec_ok = parsed.edns.is_some_and(|e| e.dnssec_ok);
        key.push(
            u8::from(dnssec_ok)
                | u8::from(parsed.checking_disabled()) << 1
                | u8::from(parsed.recursion_desired()) << 2
                | u8::from(tcp) << 3,
        );
        let mut outcome = self.join_or_start(key.into_boxed_slice(), query, tcp, deadline);
        let reply = match tokio::time::timeout_at(deadline, outcome.wait_for(Option::is_some)).await
        {
            Ok(Ok(done)) => match done.as_ref() {
                Some(Ok(reply)) => reply.clone(),
                Some(Err(error)) => return Err(*error),
                None => return Err(ForwardError::Timeout),
            },
            // The exchange task ended without a result (runtime shutting down), or time is up.
            Ok(Err(_)) | Err(_) => return Err(ForwardError::Timeout),
        };
        let mut reply = reply.to_vec();
        wire::set_id(&mut reply, parsed.id());
        // A coalesced reply echoes the first asker's spelling; give each client its own.
        let question = parsed.question();
        if wire::question_end(&reply) == Some(wire::question_end(query).unwrap_or(0)) {
            reply[signpost_proto::HEADER_LEN..][..question.len()].copy_from_slice(question);
        }
        Ok(reply)
    }

    /// Counts the query in flight, or refuses it over `max_concurrent`.
    fn admit(&self) -> Result<Admission<'_>, ForwardError> {
        let in_flight = self.inner.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let admission = Admission(&self.inner.in_flight);
        if self
            .inner
            .config
            .max_concurrent
            .is_some_and(|max| in_flight > max)
        {
            drop(admission);
            self.inner.metrics.max_concurrent_reject();
            return Err(ForwardError::Overloaded);
        }
        Ok(admission)
    }

    /// Joins the exchange in flight for `key`, or starts one.
    fn join_or_start(
        &self,
        key: Box<[u8]>,
        query: &[u8],
        tcp: bool,
        deadline: Instant,
    ) -> watch::Receiver<Outcome> {
        let mut pending = self.inner.lock_pending();
        if let Some(outcome) = pending.get(&key) {
            return outcome.clone();
        }
        let (sender, receiver) = watch::channel(None);
        pending.insert(key.clone(), receiver.clone());
        drop(pending);
        let inner = self.inner.clone();
        let query = query.to_vec();
        tokio::spawn(async move {
            // Declared first so it drops last: the key is removed only after the result is sent.
            let _entry = PendingEntry {
                inner: &inner,
                key: &key,
            };
            let result = inner.exchange(query, tcp, deadline).await;
            let _ = sender.send(Some(result));
        });
        receiver
    }
}

// === the worker's own forwarding ===

/// What a UDP worker needs to forward a query itself, on its own sockets and
/// without a task (`udp::inline`): the same upstream order, health, limits
/// and metrics as [`Forwarder::resolve_from`].
impl Forwarder {
    /// The upstreams to try for one query (see `Inner::order`).
    pub(crate) fn attempt_order(&self, order: &mut Order) -> Result<(), ForwardError> {
        self.inner.order(order)
    }

    /// The address of upstream `index`.
    pub(crate) fn upstream_address(&self, index: u8) -> SocketAddr {
        self.inner.upstreams[usize::from(index)].address
    }

    /// A fresh unpredictable message ID (RFC 5452 §9.2).
    pub(crate) fn random_id(&self) -> u16 {
        self.inner.random.id()
    }

    /// A number in `0..bound` from the forwarder's keyed sequence.
    pub(crate) fn random_below(&self, bound: usize) -> usize {
        self.inner.random.below(bound)
    }

    /// Counts one more client query in flight, or refuses it over
    /// `max_concurrent` (counted in `coredns_forward_max_concurrent_rejects_total`;
    /// the caller answers REFUSED, as CoreDNS). An admitted query is
    /// uncounted by [`Forwarder::release_query`].
    pub(crate) fn admit_query(&self) -> Result<(), ForwardError> {
        self.admit().map(std::mem::forget)
    }

    /// Uncounts a query [`Forwarder::admit_query`] counted.
    pub(crate) fn release_query(&self) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts a query sent to upstream `index`, and whether its socket was
    /// opened for it (`coredns_proxy_conn_cache_misses_total`) or kept.
    pub(crate) fn note_sent(&self, index: u8, opened_socket: bool) {
        let metrics = &self.inner.upstreams[usize::from(index)].metrics;
        metrics.request();
        if opened_socket {
            metrics.conn_cache_miss(false);
        } else {
            metrics.conn_cache_hit(false);
        }
    }

    /// Counts upstream `index`'s reply and marks it healthy.
    pub(crate) fn note_reply(&self, index: u8, reply: &[u8], elapsed: Duration) {
        let upstream = &self.inner.upstreams[usize::from(index)];
        upstream.metrics.response(wire::rcode(reply), elapsed);
        upstream.succeeded(self.inner.metrics.server());
    }

    /// Counts a failed attempt at upstream `index` toward `max_fails`.
    pub(crate) fn note_failure(&self, index: u8) {
        self.inner.upstreams[usize::from(index)]
            .failed(self.inner.config.max_fails, self.inner.metrics.server());
    }

    /// Counts a reply from upstream `index` that matched no query in flight.
    pub(crate) fn note_unmatched(&self, index: u8) {
        self.inner.upstreams[usize::from(index)]
            .metrics
            .unmatched_reply();
    }
}

/// A query counted in flight; uncounted on drop.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Removes a finished (or abandoned) exchange from the coalescing map.
struct PendingEntry<'a> {
    inner: &'a Inner,
    key: &'a [u8],
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.inner.lock_pending().remove(self.key);
    }
}

// === impl Inner ===

impl Inner {
    fn lock_pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, watch::Receiver<Outcome>>> {
        // Each critical section is one map operation; a panic cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One client question's exchange: fail over through the upstreams until
    /// one replies or the deadline passes.
    async fn exchange(
        &self,
        mut query: Vec<u8>,
        tcp: bool,
        deadline: Instant,
    ) -> Result<Arc<[u8]>, ForwardError> {
        let mut order = Order::default();
        self.order(&mut order)?;
        let mut last_error = ForwardError::Timeout;
        for &index in order.as_slice() {
            if Instant::now() >= deadline {
                return Err(ForwardError::Timeout);
            }
            let upstream = &self.upstreams[usize::from(index)];
            match self.attempt(upstream, &mut query, tcp, deadline).await {
                Ok(reply) => return Ok(reply.into()),
                Err(error) => {
                    tracing::debug!(upstream = %upstream.address, ?error, "forward attempt failed");
                    upstream.failed(self.config.max_fails, self.metrics.server());
                    last_error = match error {
                        AttemptError::Timeout => ForwardError::Timeout,
                        AttemptError::Network(_) | AttemptError::BadReply => {
                            ForwardError::Unreachable
                        }
                    };
                }
            }
        }
        if order.all_down {
            return Err(ForwardError::NoHealthyUpstream);
        }
        Err(last_error)
    }

    /// One attempt at one upstream: UDP, then TCP if the reply is truncated
    /// (RFC 7766 §5: a TC=1 reply is retried over TCP), or TCP alone.
    async fn attempt(
        &self,
        upstream: &Upstream,
        query: &mut [u8],
        tcp: bool,
        deadline: Instant,
    ) -> Result<Vec<u8>, AttemptError> {
        let mut use_tcp = tcp;
        loop {
            let started = Instant::now();
            let attempt_deadline = deadline.min(started + ATTEMPT_TIMEOUT);
            upstream.metrics.request();
            // The pool gives the query a fresh random ID (RFC 5452 §9.2).
            let reply = if use_tcp {
                upstream.pool.tcp_exchange(query, attempt_deadline).await?
            } else {
                upstream.pool.udp_exchange(query, attempt_deadline).await?
            };
            upstream
                .metrics
                .response(wire::rcode(&reply), started.elapsed());
            upstream.succeeded(self.metrics.server());
            if !use_tcp && wire::truncated(&reply) {
                use_tcp = true;
                continue;
            }
            return Ok(reply);
        }
    }

    /// The upstreams to try for one query: in policy order with the down ones
    /// left out; when every one is down, one at random (CoreDNS: health
    /// checking itself has probably failed), or none with
    /// `failfast_all_unhealthy_upstreams`. No allocation.
    fn order(&self, order: &mut Order) -> Result<(), ForwardError> {
        let count = self.upstreams.len();
        if count == 0 {
            return Err(ForwardError::NoHealthyUpstream);
        }
        let mut all: [u8; MAX_UPSTREAMS] = std::array::from_fn(|i| i as u8);
        let all = &mut all[..count];
        match self.config.policy {
            Policy::Sequential => {}
            Policy::RoundRobin => {
                let start = self.next_round_robin.fetch_add(1, Ordering::Relaxed) % count;
                all.rotate_left(start);
            }
            Policy::Random => {
                // Fisher–Yates.
                for i in (1..count).rev() {
                    all.swap(i, self.random.below(i + 1));
                }
            }
        }
        order.len = 0;
        for &index in all.iter() {
            if !self.upstreams[usize::from(index)].is_down(self.config.max_fails) {
                order.indices[order.len] = index;
                order.len += 1;
            }
        }
        order.all_down = order.len == 0;
        if order.all_down {
            self.metrics.health_check_broken();
            if self.config.fail_fast_all_down {
                return Err(ForwardError::NoHealthyUpstream);
            }
            order.indices[0] = self.random.below(count) as u8;
            order.len = 1;
        }
        Ok(())
    }
}

/// Upstream indices in the order one query tries them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Order {
    indices: [u8; MAX_UPSTREAMS],
    len: usize,
    /// Every upstream was down; the one listed is tried anyway.
    pub(crate) all_down: bool,
}

impl Order {
    /// The indices, first choice first.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.indices[..self.len]
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

// === impl Upstream ===

impl Upstream {
    fn is_down(&self, max_fails: u32) -> bool {
        max_fails > 0 && self.fails.load(Ordering::Relaxed) >= max_fails
    }

    /// Records a failure; wakes the health task; logs the moment it goes down.
    fn failed(&self, max_fails: u32, server: &str) {
        if max_fails == 0 {
            return;
        }
        let fails = self.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if fails == max_fails {
            tracing::warn!(server, upstream = %self.address, fails, "forward upstream is down; health checking it");
        }
        self.wake.notify_one();
    }

    /// Records a reply; logs the moment a down upstream comes back.
    fn succeeded(&self, server: &str) {
        let before = self.fails.swap(0, Ordering::Relaxed);
        if before > 0 {
            tracing::info!(server, upstream = %self.address, "forward upstream is healthy again");
        }
    }
}

/// The health task of one upstream: sleeps until a failure wakes it, then
/// probes every interval until a probe gets a reply.
struct HealthTask {
    upstream: Arc<Upstream>,
    interval: Duration,
    /// The probe message; its ID is replaced per probe.
    probe: Vec<u8>,
    tcp: bool,
    max_fails: u32,
    server: String,
    random: Arc<Random>,
    cancel: CancellationToken,
}

impl HealthTask {
    async fn run(mut self) {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = self.upstream.wake.notified() => {}
            }
            loop {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep(self.interval) => {}
                }
                if self.probe_once().await {
                    self.upstream.succeeded(&self.server);
                    break;
                }
                self.upstream.metrics.health_check_failure();
                self.upstream.failed(self.max_fails, &self.server);
            }
        }
    }

    /// One probe; any reply counts as healthy (CoreDNS: REFUSED and SERVFAIL too).
    async fn probe_once(&mut self) -> bool {
        wire::set_id(&mut self.probe, self.random.id());
        let deadline = Instant::now() + PROBE_TIMEOUT;
        let result = if self.tcp {
            wire::tcp_exchange(self.upstream.address, &self.probe, deadline).await
        } else {
            wire::udp_exchange(self.upstream.address, &self.probe, deadline).await
        };
        if let Err(error) = &result {
            tracing::debug!(?error, "forward health probe failed");
        }
        result.is_ok()
    }
}
