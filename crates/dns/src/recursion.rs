//! Names no zone holds: the cache, then the forwarder.
//!
//! ```text
//! worker thread: Responder::answer ─▶ not authoritative ─▶ Recursion::from_cache ─hit──▶ written (no allocation)
//!                                                               │ miss
//!                                                               ▼
//!                                         Outcome::Defer ─▶ task on the control runtime:
//!                                         Recursion::resolve ─▶ Forwarder ─▶ Cache::insert ─▶ answer bytes
//! ```
//!
//! The hit path is the data plane: synchronous, lock-free (the cache map is
//! lock-free), allocation-free. Only a miss leaves the worker: the query is
//! copied and one task per forwarded query runs on the control runtime (the
//! one place design.md allows a task per query). Prefetch and stale-refresh
//! tasks are spawned the same way, in the background.

use crate::cache::{Cache, Entry, Lookup as CacheLookup, StaleMode};
use crate::forward::{ForwardError, Forwarder, fit_udp};
use crate::metrics::{Observation, Responder as MetricResponder, Shard, Transport};
use signpost_proto::message::EdnsQuery;
use signpost_proto::{Query, ResponseMeta, parse_query, rcode, write_error};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// The cache and forwarders of one listener.
#[derive(Debug)]
pub struct Recursion {
    forwarders: Vec<Forwarder>,
    cache: Option<Arc<Cache>>,
    runtime: tokio::runtime::Handle,
    shard: Arc<Shard>,
    loadbalance: bool,
}

/// Who asked a forwarded query, as the answer's metrics need it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asker {
    /// The client's transport.
    pub(crate) transport: Transport,
    /// The client.
    pub(crate) client: SocketAddr,
    /// The metric slot of the matched server-block zone.
    pub(crate) zone: usize,
    /// The answer size limit.
    pub(crate) limit: usize,
    /// When the query arrived (the answer's duration starts here).
    pub(crate) started: Instant,
    /// The query's size in bytes.
    pub(crate) request_size: usize,
}

// === impl Recursion ===

impl Recursion {
    /// Builds the path; `shard` counts forwarded answers.
    pub fn new(
        forwarders: Vec<Forwarder>,
        cache: Option<Arc<Cache>>,
        runtime: tokio::runtime::Handle,
        shard: Arc<Shard>,
    ) -> Self {
        Self {
            forwarders,
            cache,
            runtime,
            shard,
            loadbalance: false,
        }
    }

    /// Rotates A, AAAA and MX records of forwarded answers (`loadbalance`).
    pub fn with_loadbalance(mut self, on: bool) -> Self {
        self.loadbalance = on;
        self
    }

    /// The cache, if configured.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// The forwarders, in Corefile order (admin endpoints).
    pub fn forwarders(&self) -> &[Forwarder] {
        &self.forwarders
    }

    /// The forwarder for a lower-case wire name (the first that handles it).
    pub(crate) fn forwarder_for(&self, qname: &[u8]) -> Option<&Forwarder> {
        self.forwarders.iter().find(|f| f.handles(qname))
    }

    /// True when a miss for this name can be forwarded.
    pub fn forwards(&self, qname: &[u8]) -> bool {
        self.forwarder_for(qname).is_some()
    }

    /// Answers from the cache when it holds a fresh entry (or a stale one in
    /// `serve_stale immediate` mode), starting a background refresh when the
    /// entry asks for one. Synchronous, lock-free, no allocation on a hit
    /// without refresh. `now` is the caller's clock reading (the worker's,
    /// taken once per receive), so a hit reads no clock of its own.
    pub fn from_cache(
        &self,
        query: &Query<'_>,
        now: Instant,
        out: &mut [u8],
        limit: usize,
    ) -> Option<ResponseMeta> {
        let cache = self.cache.as_ref()?;
        if !cache.covers(query) {
            return None;
        }
        match cache.lookup(query, now) {
            CacheLookup::Hit(entry) => {
                let meta = entry.write(query, now, out, limit);
                if cache.wants_prefetch(&entry, now) {
                    self.refresh(query, entry);
                }
                Some(meta)
            }
            CacheLookup::Stale(entry)
                if cache
                    .config()
                    .serve_stale
                    .is_some_and(|s| s.mode == StaleMode::Immediate) =>
            {
                let meta = entry.write(query, now, out, limit);
                cache.note_served_stale();
                if cache.claim_refresh(&entry) {
                    self.refresh(query, entry);
                }
                Some(meta)
            }
            CacheLookup::Stale(_) | CacheLookup::Miss => None,
        }
    }

    /// Refreshes `entry` from upstream in the background (prefetch, or a
    /// stale answer already served).
    fn refresh(&self, query: &Query<'_>, entry: Arc<Entry>) {
        let (Some(cache), Some(forwarder)) = (
            self.cache.clone(),
            self.forwarder_for(query.qname_lower()).cloned(),
        ) else {
            return;
        };
        let packet = refresh_query(query);
        self.runtime.spawn(async move {
            let Ok(parsed) = parse_query(&packet) else {
                return;
            };
            match forwarder.resolve(&packet).await {
                Ok(reply) if cache.insert(&parsed, &reply, Instant::now()).is_some() => {}
                _ => cache.refresh_failed(&entry),
            }
        });
    }

    /// Answers a query the worker deferred: forward, store, write. Never
    /// fails: an upstream failure becomes a stale answer when `serve_stale`
    /// allows one, else SERVFAIL (REFUSED when `max_concurrent` is reached).
    pub async fn resolve(
        &self,
        packet: &[u8],
        transport: Transport,
        client: SocketAddr,
        zone: usize,
        limit: usize,
    ) -> Vec<u8> {
        self.resolve_via(packet, transport, client, zone, limit, false)
            .await
    }

    /// [`Recursion::resolve`]; `upstream_tcp` asks the upstream over TCP
    /// whatever the client's transport (a truncated UDP reply's retry).
    async fn resolve_via(
        &self,
        packet: &[u8],
        transport: Transport,
        client: SocketAddr,
        zone: usize,
        limit: usize,
        upstream_tcp: bool,
    ) -> Vec<u8> {
        let started = Instant::now();
        let mut out = vec![0u8; limit.max(512)];
        let Ok(query) = parse_query(packet) else {
            return Vec::new();
        };
        let Some(forwarder) = self.forwarder_for(query.qname_lower()) else {
            let meta = write_error(&query, rcode::REFUSED, &mut out);
            out.truncate(meta.len);
            return out;
        };
        let reply = if upstream_tcp {
            forwarder.resolve_over_tcp(packet).await
        } else {
            forwarder.resolve_from(packet, transport).await
        };
        let asker = Asker {
            transport,
            client,
            zone,
            limit,
            started,
            request_size: packet.len(),
        };
        let len = self.finish(
            &query,
            reply.as_deref().map_err(|error| *error),
            &asker,
            &mut out,
        );
        out.truncate(len);
        out
    }

    /// Writes the answer to a forwarded query into `out` (at least `limit`
    /// and 512 bytes): the upstream's reply (its ID and question already the
    /// client's) stored in the cache and written from there, or on failure a
    /// stale answer when `serve_stale` allows one, else the error's RCODE.
    /// Counts the answer (its duration from `started`) and rotates records
    /// with `loadbalance`. Returns the answer's length.
    pub(crate) fn finish(
        &self,
        query: &Query<'_>,
        reply: Result<&[u8], ForwardError>,
        asker: &Asker,
        out: &mut [u8],
    ) -> usize {
        let limit = asker.limit;
        let (meta, responder) = match reply {
            Ok(reply) => (
                self.store_and_write(query, reply, out, limit),
                MetricResponder::Forward,
            ),
            Err(error) => match self.stale(query, out, limit) {
                Some(meta) => (meta, MetricResponder::Cache),
                None => {
                    tracing::debug!(error = error.as_str(), "forward failed");
                    (
                        write_error(query, error.rcode(), out),
                        MetricResponder::Forward,
                    )
                }
            },
        };
        self.shard.observe(&Observation {
            zone: asker.zone,
            transport: asker.transport,
            ipv6: asker.client.is_ipv6(),
            qtype: query.qtype,
            rcode: meta.rcode,
            responder,
            request_size: asker.request_size,
            response_size: meta.len,
            duration: asker.started.elapsed(),
        });
        if self.loadbalance {
            signpost_proto::rotate_answers(&mut out[..meta.len], crate::exchange::next_turn());
        }
        meta.len
    }

    fn store_and_write(
        &self,
        query: &Query<'_>,
        reply: &[u8],
        out: &mut [u8],
        limit: usize,
    ) -> ResponseMeta {
        let now = Instant::now();
        if let Some(cache) = self.cache.as_ref().filter(|c| c.covers(query))
            && let Some(entry) = cache.insert(query, reply, now)
        {
            return entry.write(query, now, out, limit);
        }
        // Not cacheable (or no cache): pass the upstream's answer on, cut to fit.
        let fitted = fit_udp(reply, limit);
        let len = fitted.len().min(out.len());
        out[..len].copy_from_slice(&fitted[..len]);
        let code = fitted
            .get(3)
            .map_or(rcode::SERVFAIL, |b| u16::from(b & 0x0f));
        ResponseMeta {
            len,
            rcode: code,
            truncated: fitted.get(2).is_some_and(|b| b & 0x02 != 0),
        }
    }

    /// A stale answer when the upstreams failed (RFC 8767 §4).
    fn stale(&self, query: &Query<'_>, out: &mut [u8], limit: usize) -> Option<ResponseMeta> {
        let cache = self.cache.as_ref()?;
        let now = Instant::now();
        match cache.lookup(query, now) {
            CacheLookup::Stale(entry) => {
                cache.note_served_stale();
                Some(entry.write(query, now, out, limit))
            }
            // Another query stored a fresh answer meanwhile.
            CacheLookup::Hit(entry) => Some(entry.write(query, now, out, limit)),
            CacheLookup::Miss => None,
        }
    }

    /// Spawns the deferred resolution of a UDP query; the answer goes out
    /// through the worker's socket.
    pub fn spawn_udp(
        self: &Arc<Self>,
        packet: &[u8],
        client: SocketAddr,
        zone: usize,
        limit: usize,
        socket: Arc<std::net::UdpSocket>,
    ) {
        self.spawn_udp_via(packet, client, zone, limit, socket, false);
    }

    /// [`Recursion::spawn_udp`] asking the upstream over TCP: a UDP worker
    /// got a truncated reply for this query (RFC 7766 §5).
    pub(crate) fn spawn_udp_over_tcp(
        self: &Arc<Self>,
        packet: &[u8],
        client: SocketAddr,
        zone: usize,
        limit: usize,
        socket: Arc<std::net::UdpSocket>,
    ) {
        self.spawn_udp_via(packet, client, zone, limit, socket, true);
    }

    fn spawn_udp_via(
        self: &Arc<Self>,
        packet: &[u8],
        client: SocketAddr,
        zone: usize,
        limit: usize,
        socket: Arc<std::net::UdpSocket>,
        upstream_tcp: bool,
    ) {
        let this = self.clone();
        let packet = packet.to_vec();
        self.runtime.spawn(async move {
            let answer = this
                .resolve_via(&packet, Transport::Udp, client, zone, limit, upstream_tcp)
                .await;
            if !answer.is_empty()
                && let Err(error) = socket.send_to(&answer, client)
            {
                tracing::debug!(%error, %client, "udp send failed");
            }
        });
    }
}

/// A query for the same question with RD set, for a background refresh; DO
/// and CD as the client asked, so the refreshed entry has the same key.
fn refresh_query(query: &Query<'_>) -> Vec<u8> {
    signpost_proto::message::query(
        0,
        query.question(),
        true,
        query.checking_disabled(),
        query.edns.map(|e| EdnsQuery {
            dnssec_ok: e.dnssec_ok,
        }),
    )
}
