//! From one query datagram to one answer: the synchronous hot path.
//!
//! Data plane. [`Responder::answer`] loads the snapshot once (invariant I2),
//! looks the question up and writes the answer into the caller's buffer. It
//! never allocates, locks or awaits; the per-query log line, when the `log`
//! plugin is on, is the only output besides the answer.

use crate::exchange::Exchange;
use crate::metrics::{Observation, Responder as MetricResponder, Shard, Transport};
use crate::querylog::QueryLog;
use crate::recursion::Recursion;
use arc_swap::ArcSwap;
use signpost_proto::{
    CLASS_IN, MAX_TCP_MESSAGE, Name, ParseError, Query, RecordWriter, ResponseMeta, is_within_wire,
    parse_query, rcode, rtype, write_error, write_header_only, write_response,
    write_response_scoped,
};
use signpost_zone::{GeoName, Lookup, Snapshot};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// What every worker of one listener shares.
#[derive(Debug)]
pub struct Responder {
    /// The current snapshot; replaced whole by the compiler.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Server-block zones of this listener, longest first, with their metric slot.
    zones: Vec<(Name, usize)>,
    dropped_zone: usize,
    log: bool,
    recursion: Option<Arc<Recursion>>,
    loadbalance: bool,
    /// Metric shards: one per UDP worker, then one for TCP.
    shards: Vec<Arc<Shard>>,
    geo: Option<Arc<GeoRouting>>,
    loop_guard: Option<Arc<crate::loopcheck::LoopGuard>>,
}

/// The `geo` plugin as the answer path uses it.
#[derive(Debug)]
pub struct GeoRouting {
    /// Placement and choice.
    pub geo: signpost_geo::Geo,
    /// The zone label of `dns_geo_answers_total`.
    pub zone: String,
    /// Answers per region, then one for "all" (fail open).
    pub answers: Box<[std::sync::atomic::AtomicU64]>,
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer of this many bytes is in the buffer.
    Reply(usize),
    /// Nothing to send (a response, or fewer than 12 bytes).
    Drop,
    /// Not in any zone nor the cache: resolve it with
    /// [`Recursion::resolve`] off the worker.
    Defer {
        /// The metric slot of the matched server-block zone.
        zone: usize,
        /// The answer size limit.
        limit: usize,
    },
}

// === impl Responder ===

impl Responder {
    /// A responder for a listener serving the given server-block zones.
    pub fn new(
        snapshot: Arc<ArcSwap<Snapshot>>,
        zones: &[Name],
        dropped_zone: usize,
        log: bool,
    ) -> Self {
        let mut zones: Vec<(Name, usize)> = zones
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, z)| (z, i))
            .collect();
        zones.sort_by_key(|(z, _)| std::cmp::Reverse(z.as_wire().len()));
        Self {
            snapshot,
            zones,
            dropped_zone,
            log,
            recursion: None,
            loadbalance: false,
            shards: Vec::new(),
            geo: None,
            loop_guard: None,
        }
    }

    /// Adds the cache and forwarders for names no zone holds.
    pub fn with_recursion(mut self, recursion: Arc<Recursion>) -> Self {
        self.recursion = Some(recursion);
        self
    }

    /// Metric shards for the workers: index `i` for UDP worker `i`, the last for TCP.
    pub fn with_shards(mut self, shards: Vec<Arc<Shard>>) -> Self {
        self.shards = shards;
        self
    }

    /// The metric shard of worker `index` (the last one, TCP's, past the end).
    /// Panics if the responder has no shards.
    pub fn shard(&self, index: usize) -> &Shard {
        &self.shards[index.min(self.shards.len() - 1)]
    }

    /// Answers geographic names with `geo`'s placement and policy.
    pub fn with_geo(mut self, geo: Arc<GeoRouting>) -> Self {
        self.geo = Some(geo);
        self
    }

    /// Counts the `loop` plugin's probe on its way to the forwarder.
    pub fn with_loop_guard(mut self, guard: Arc<crate::loopcheck::LoopGuard>) -> Self {
        self.loop_guard = Some(guard);
        self
    }

    /// The `loop` plugin's guard, if any.
    pub fn loop_guard(&self) -> Option<&Arc<crate::loopcheck::LoopGuard>> {
        self.loop_guard.as_ref()
    }

    /// The `geo` plugin, if any.
    pub fn geo(&self) -> Option<&Arc<GeoRouting>> {
        self.geo.as_ref()
    }

    /// Rotates A, AAAA and MX records in every answer (`loadbalance`).
    pub fn with_loadbalance(mut self, on: bool) -> Self {
        self.loadbalance = on;
        self
    }

    /// The cache and forwarders, if any.
    pub fn recursion(&self) -> Option<&Arc<Recursion>> {
        self.recursion.as_ref()
    }

    /// Answers one message into `out`: authoritative data and cache hits are
    /// written here, synchronously; a name to forward is [`Outcome::Defer`]red.
    pub fn answer(
        &self,
        packet: &[u8],
        out: &mut [u8],
        exchange: Exchange<'_>,
        log: &mut QueryLog,
    ) -> Outcome {
        let started = exchange.received;
        let query = match parse_query(packet) {
            Ok(query) => query,
            Err(ParseError::Drop) => return Outcome::Drop,
            Err(error) => {
                let code = if error == ParseError::NotImp {
                    rcode::NOTIMP
                } else {
                    rcode::FORMERR
                };
                let meta = write_header_only(packet, code, out);
                self.observe(
                    exchange,
                    self.dropped_zone,
                    0,
                    packet.len(),
                    meta,
                    MetricResponder::Server,
                    started,
                );
                return Outcome::Reply(meta.len);
            }
        };
        let limit = match exchange.transport {
            Transport::Udp => query.udp_limit(),
            Transport::Tcp => MAX_TCP_MESSAGE,
        };
        let zone = self
            .zones
            .iter()
            .find(|(z, _)| is_within_wire(query.qname_lower(), z.as_wire()))
            .map(|(_, i)| *i);
        let Some((meta, responder)) = self.respond(&query, zone.is_some(), exchange, out, limit)
        else {
            return Outcome::Defer {
                zone: zone.unwrap_or(self.dropped_zone),
                limit,
            };
        };
        if self.loadbalance {
            signpost_proto::rotate_answers(&mut out[..meta.len], crate::exchange::next_turn());
        }
        self.observe(
            exchange,
            zone.unwrap_or(self.dropped_zone),
            query.qtype,
            packet.len(),
            meta,
            responder,
            started,
        );
        if self.log {
            log.write(&query, exchange, meta, started.elapsed());
        }
        Outcome::Reply(meta.len)
    }

    /// The synchronous answer, or `None` to defer to the forwarder.
    fn respond(
        &self,
        query: &Query<'_>,
        in_zone: bool,
        exchange: Exchange<'_>,
        out: &mut [u8],
        limit: usize,
    ) -> Option<(ResponseMeta, MetricResponder)> {
        let client = exchange.client;
        // RFC 6891 §6.1.3: a version we do not implement gets BADVERS.
        if query.edns.is_some_and(|e| e.version > 0) {
            return Some((
                write_error(query, rcode::BADVERS, out),
                MetricResponder::Server,
            ));
        }
        if query.qclass != CLASS_IN || !in_zone || matches!(query.qtype, rtype::AXFR | 251) {
            return Some((
                write_error(query, rcode::REFUSED, out),
                MetricResponder::Server,
            ));
        }
        let snapshot = self.snapshot.load();
        match snapshot.lookup(query.qname_lower(), query.qtype) {
            Lookup::Answer(view) => Some((
                write_response(query, view, out, limit),
                MetricResponder::Kubernetes,
            )),
            Lookup::Geo(name, aaaa) => Some((
                self.answer_geo(query, client, name, aaaa, out, limit),
                MetricResponder::Kubernetes,
            )),
            Lookup::Pod(pod) => {
                let mut scratch = [0u8; 32];
                Some((
                    write_response(query, pod.render(&mut scratch), out, limit),
                    MetricResponder::Kubernetes,
                ))
            }
            // Names no zone holds (or that fall through): the cache, then the forwarder.
            Lookup::Fallthrough | Lookup::NotAuthoritative => {
                drop(snapshot);
                if let Some(guard) = &self.loop_guard {
                    guard.saw(query.qname_lower(), query.qtype, client);
                }
                let Some(recursion) = &self.recursion else {
                    return Some((
                        write_error(query, rcode::REFUSED, out),
                        MetricResponder::Server,
                    ));
                };
                if let Some(meta) = recursion.from_cache(query, exchange.received, out, limit) {
                    return Some((meta, MetricResponder::Cache));
                }
                if recursion.forwards(query.qname_lower()) {
                    return None;
                }
                Some((
                    write_error(query, rcode::REFUSED, out),
                    MetricResponder::Server,
                ))
            }
        }
    }

    /// Picks the region of a geographic name for this client: the ECS subnet
    /// when the query has one (and `ecs on`), else the source address; the
    /// echoed ECS scope says how much of the subnet decided (RFC 7871 §7.2.1).
    fn answer_geo(
        &self,
        query: &Query<'_>,
        client: SocketAddr,
        name: &GeoName,
        aaaa: bool,
        out: &mut [u8],
        limit: usize,
    ) -> ResponseMeta {
        let Some(geo) = &self.geo else {
            return write_response(query, name.answer(None, aaaa), out, limit);
        };
        let subnet = query
            .edns
            .and_then(|e| e.client_subnet)
            .filter(|_| geo.geo.settings().ecs);
        let location = match subnet {
            Some(ecs) => geo.geo.locate(ecs.ip(), Some(ecs.source_prefix)),
            None => geo.geo.locate(client.ip(), None),
        };
        let (choice, _) = geo.geo.choose(&location, &name.candidates);
        let slot = choice
            .and_then(|i| name.candidates.get(i))
            .map_or(geo.answers.len() - 1, |c| c.region);
        if let Some(counter) = geo.answers.get(slot) {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let scope = if subnet.is_some() { location.scope } else { 0 };
        write_response_scoped(query, name.answer(choice, aaaa), out, limit, scope)
    }

    /// Answers an AXFR query for a zone loaded from a file (RFC 5936), over
    /// TCP only: the SOA, every other record, the SOA again, split into
    /// messages of at most 16 KiB. Returns `None` when `packet` is not such a
    /// query, so the caller answers it normally.
    pub fn transfer(&self, packet: &[u8]) -> Option<Vec<Vec<u8>>> {
        let query = parse_query(packet).ok()?;
        if query.qtype != rtype::AXFR || query.qclass != CLASS_IN {
            return None;
        }
        let snapshot = self.snapshot.load();
        let zone = snapshot.zone_file(query.qname_lower())?;
        let soa = zone.records.iter().find(|r| r.rtype == rtype::SOA)?;
        let others = zone.records.iter().filter(|r| r.rtype != rtype::SOA);
        let ordered = std::iter::once(soa)
            .chain(others)
            .chain(std::iter::once(soa));
        let mut messages = Vec::new();
        let mut writer = RecordWriter::new();
        let finish = |writer: &RecordWriter, messages: &mut Vec<Vec<u8>>| {
            let id = [query.header()[0], query.header()[1]];
            messages.push(signpost_proto::message::authoritative(
                id,
                query.question(),
                writer.count(),
                writer.bytes(),
            ));
        };
        for record in ordered {
            if writer.bytes().len() > 16 * 1024 {
                finish(&writer, &mut messages);
                writer = RecordWriter::new();
            }
            writer.record(Some(&record.owner), record.rtype, record.ttl, &record.rdata);
        }
        finish(&writer, &mut messages);
        Some(messages)
    }

    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        exchange: Exchange<'_>,
        zone: usize,
        qtype: u16,
        request_size: usize,
        meta: ResponseMeta,
        responder: MetricResponder,
        started: Instant,
    ) {
        exchange.shard.observe(&Observation {
            zone,
            transport: exchange.transport,
            ipv6: exchange.client.is_ipv6(),
            qtype,
            rcode: meta.rcode,
            responder,
            request_size,
            response_size: meta.len,
            duration: started.elapsed(),
        });
    }
}
