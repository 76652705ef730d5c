//! Forwarding on the UDP worker itself: a UDP client's cache miss is sent
//! upstream from sockets the worker owns and answered when the reply
//! arrives, with no task, no channel and no other thread.
//!
//! Data plane (the worker thread). Measured first: handing a miss to a task
//! on the control runtime cost about 25 µs of CPU per query (release build,
//! one pinned worker), most of it context switches between the worker and the
//! runtime's threads, while Unbound's single event loop spent about 6 µs.
//! Allocation happens on a miss only (the cache entry, a follower list);
//! buffers are recycled.
//!
//! ```text
//! worker loop: nothing in flight ─▶ recvmmsg(client socket, blocking)     the hit path, unchanged
//!              queries in flight ─▶ poll(client + upstream sockets, until the next deadline)
//!                                    ─▶ recvmmsg of each readable socket, without waiting
//! miss  ─▶ start: same question in flight? join it (coalescing) : order upstreams (policy, health)
//!          ─▶ send on a random socket of the first, under a fresh random ID
//! reply ─▶ (socket, ID) in flight and the question equal? ─▶ cache insert, answer every asker (send_to)
//!          TC=1 ─▶ the task path (TCP retry);  no match ─▶ counted, its socket retired
//! deadline (2 s per attempt, 5 s per query) ─▶ next upstream, or a stale answer / SERVFAIL
//! ```
//!
//! Sockets follow the forwarder pool's rules (`forward::pool`, RFC 5452):
//! connected (the kernel drops datagrams from anyone but the upstream), on
//! ports the kernel picks at random, at most [`SOCKETS_PER_UPSTREAM`] per
//! upstream and worker with a random one chosen per query, each taking new
//! queries for `expire` after it opens and closed once idle after that, and
//! retired at the first reply that matches no query in flight. Every query
//! has its own random (port, ID) pair. Upstream order, health (`max_fails`),
//! `max_concurrent` and the metrics are the forwarder's (`attempt_order`,
//! `note_*`), so both paths behave alike. TCP clients, `force_tcp`, the TCP
//! retry of a truncated reply (straight to TCP, RFC 7766 §5), prefetch and
//! stale refreshes take the task path (`Recursion::resolve`).
//!
//! Invariants: every query admitted is answered or handed to the task path
//! exactly once (or dropped at shutdown, uncounted); an entry of `by_wire`
//! always names a pending query whose socket is open.

use super::mmsg::{self, Batch};
use crate::forward::{
    ATTEMPT_TIMEOUT, ForwardError, Order, answers_question, question_end, set_id, truncated,
};
use crate::metrics::Transport;
use crate::recursion::{Asker, Recursion};
use signpost_proto::{HEADER_LEN, Query, parse_query};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Connected sockets per upstream in each worker.
pub(crate) const SOCKETS_PER_UPSTREAM: usize = 4;
/// Queries a worker keeps in flight itself; past this, misses take the task path.
const MAX_PENDING: usize = 4096;
/// Largest upstream reply read.
const MAX_REPLY: usize = 65535;

/// A worker's own forwarding state.
pub(crate) struct Inline {
    sockets: Vec<Option<Socket>>,
    pending: Vec<Option<Pending>>,
    free: Vec<usize>,
    in_flight: usize,
    /// (socket serial, message ID) → pending slot.
    by_wire: HashMap<(u64, u16), usize, foldhash::fast::RandomState>,
    /// Hash of the coalescing key → the slot of the query asking it.
    by_question: HashMap<u64, usize, foldhash::fast::RandomState>,
    /// Keys the coalescing hash (clients pick the names).
    question_keys: std::collections::hash_map::RandomState,
    replies: Batch,
    /// An answer being written, a query or reply being patched, and a reply
    /// copied out of the receive batch.
    out: Box<[u8]>,
    scratch: Vec<u8>,
    incoming: Vec<u8>,
    /// Recycled query buffers.
    spare: Vec<Vec<u8>>,
    next_serial: u64,
    /// The earliest attempt deadline in flight.
    next_deadline: Option<Instant>,
    readable: Vec<bool>,
}

/// One connected socket to one upstream.
struct Socket {
    serial: u64,
    /// The forwarder and upstream index of the query that opened it (for
    /// counting unmatched replies).
    owner: (Arc<Recursion>, usize, u8),
    upstream: SocketAddr,
    socket: UdpSocket,
    opened: Instant,
    expire: Duration,
    retired: bool,
    in_flight: usize,
}

/// A query in flight, with everyone who asked the same question meanwhile.
struct Pending {
    recursion: Arc<Recursion>,
    /// Index of its forwarder in `recursion.forwarders()`.
    forwarder: usize,
    /// The first asker's query, as it arrived.
    packet: Vec<u8>,
    asker: Asker,
    followers: Vec<Follower>,
    order: Order,
    /// Position in `order` of the upstream tried now.
    next: usize,
    socket: usize,
    socket_serial: u64,
    id: u16,
    sent: Instant,
    attempt_deadline: Instant,
    deadline: Instant,
    question_hash: u64,
    last_error: ForwardError,
}

/// A client whose query joined one already in flight.
struct Follower {
    packet: Vec<u8>,
    asker: Asker,
}

// === impl Inline ===

impl Inline {
    /// An idle state: no sockets, nothing in flight.
    pub(crate) fn new() -> Self {
        Self {
            sockets: Vec::new(),
            pending: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
            by_wire: HashMap::default(),
            by_question: HashMap::default(),
            question_keys: std::collections::hash_map::RandomState::new(),
            replies: Batch::new(MAX_REPLY, 0),
            out: vec![0u8; signpost_proto::MAX_TCP_MESSAGE].into_boxed_slice(),
            scratch: Vec::with_capacity(MAX_REPLY),
            incoming: Vec::with_capacity(MAX_REPLY),
            spare: Vec::new(),
            next_serial: 0,
            next_deadline: None,
            readable: Vec::new(),
        }
    }

    /// Whether no query is in flight (the worker may block on its client socket alone).
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight == 0
    }

    /// Takes a UDP client's deferred query if this worker can forward it
    /// itself; false sends it to the task path.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        recursion: &Arc<Recursion>,
        packet: &[u8],
        client: SocketAddr,
        zone: usize,
        limit: usize,
        received: Instant,
        client_socket: &Arc<UdpSocket>,
    ) -> bool {
        if self.in_flight >= MAX_PENDING {
            return false;
        }
        let Ok(query) = parse_query(packet) else {
            return false;
        };
        let Some(index) = recursion
            .forwarders()
            .iter()
            .position(|f| f.handles(query.qname_lower()))
        else {
            return false;
        };
        let forwarder = &recursion.forwarders()[index];
        if forwarder.config().force_tcp {
            // TCP upstreams are the task path's.
            return false;
        }
        let asker = Asker {
            transport: Transport::Udp,
            client,
            zone,
            limit,
            started: received,
            request_size: packet.len(),
        };
        if let Err(error) = forwarder.admit_query() {
            // Over max_concurrent: REFUSED (or a stale answer), counted once.
            let len = recursion.finish(&query, Err(error), &asker, &mut self.out);
            send_answer(client_socket, &self.out[..len], client);
            return true;
        }
        let question_hash = self.question_hash(recursion, index, &query);
        if let Some(&slot) = self.by_question.get(&question_hash)
            && let Some(leader) = self.pending[slot].as_mut()
            && same_question(leader, recursion, index, &query)
        {
            let packet = recycled(&mut self.spare, packet);
            leader.followers.push(Follower { packet, asker });
            return true;
        }
        let mut order = Order::default();
        if let Err(error) = forwarder.attempt_order(&mut order) {
            forwarder.release_query();
            let len = recursion.finish(&query, Err(error), &asker, &mut self.out);
            send_answer(client_socket, &self.out[..len], client);
            return true;
        }
        let timeout = forwarder.config().timeout;
        let pending = Pending {
            recursion: recursion.clone(),
            forwarder: index,
            packet: recycled(&mut self.spare, packet),
            asker,
            followers: Vec::new(),
            order,
            next: 0,
            socket: 0,
            socket_serial: u64::MAX,
            id: 0,
            sent: received,
            attempt_deadline: received,
            deadline: received + timeout,
            question_hash,
            last_error: ForwardError::Timeout,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.pending[slot] = Some(pending);
                slot
            }
            None => {
                self.pending.push(Some(pending));
                self.pending.len() - 1
            }
        };
        self.in_flight += 1;
        self.by_question.entry(question_hash).or_insert(slot);
        self.send(slot, received, client_socket);
        true
    }

    /// Waits until the client socket or an upstream socket is readable, the
    /// next deadline passes, or `idle` (the shutdown poll) runs out; reads
    /// and answers every upstream reply that arrived. Returns whether the
    /// client socket has datagrams.
    pub(crate) fn poll(&mut self, client_socket: &Arc<UdpSocket>, idle: Duration) -> bool {
        let now = Instant::now();
        let wait = self
            .next_deadline
            .map_or(idle, |deadline| deadline.saturating_duration_since(now))
            .min(idle);
        let mut watched: [Option<usize>; mmsg::POLL_MAX] = [None; mmsg::POLL_MAX];
        let mut fds: [&UdpSocket; mmsg::POLL_MAX] = [client_socket; mmsg::POLL_MAX];
        let mut count = 1;
        for (index, socket) in self.sockets.iter().enumerate() {
            if let Some(socket) = socket
                && count < mmsg::POLL_MAX
            {
                fds[count] = &socket.socket;
                watched[count] = Some(index);
                count += 1;
            }
        }
        self.readable.clear();
        self.readable.resize(count, false);
        if let Err(error) = mmsg::wait_readable(&fds[..count], &mut self.readable, wait) {
            if error.kind() != io::ErrorKind::Interrupted {
                tracing::debug!(%error, "poll failed");
            }
            return false;
        }
        let client_ready = self.readable[0];
        let now = Instant::now();
        for (position, index) in watched.iter().enumerate().take(count).skip(1) {
            if self.readable[position]
                && let Some(index) = *index
            {
                self.read_socket(index, now, client_socket);
            }
        }
        client_ready
    }

    /// Fails over queries whose attempt ran out of time, and closes sockets
    /// that are past `expire` and idle. Cheap when nothing is due.
    pub(crate) fn maintain(&mut self, now: Instant, client_socket: &Arc<UdpSocket>) {
        if self.next_deadline.is_some_and(|deadline| deadline <= now) {
            let mut next: Option<Instant> = None;
            for slot in 0..self.pending.len() {
                let Some(pending) = self.pending[slot].as_ref() else {
                    continue;
                };
                if pending.attempt_deadline > now {
                    next = Some(next.map_or(pending.attempt_deadline, |n| {
                        n.min(pending.attempt_deadline)
                    }));
                    continue;
                }
                self.attempt_failed(slot, ForwardError::Timeout, now, client_socket);
                if let Some(pending) = self.pending[slot].as_ref() {
                    next = Some(next.map_or(pending.attempt_deadline, |n| {
                        n.min(pending.attempt_deadline)
                    }));
                }
            }
            self.next_deadline = next;
        }
        for socket in &mut self.sockets {
            if let Some(open) = socket
                && (open.retired || now >= open.opened + open.expire)
            {
                open.retired = true;
                if open.in_flight == 0 {
                    *socket = None;
                }
            }
        }
    }

    /// The random coalescing hash of a question: forwarder, name (lower
    /// case), type, class, DO, CD and RD.
    fn question_hash(
        &self,
        recursion: &Arc<Recursion>,
        forwarder: usize,
        query: &Query<'_>,
    ) -> u64 {
        let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
        let flags = u8::from(dnssec_ok)
            | u8::from(query.checking_disabled()) << 1
            | u8::from(query.recursion_desired()) << 2;
        self.question_keys.hash_one((
            Arc::as_ptr(recursion) as usize,
            forwarder,
            query.qname_lower(),
            query.qtype,
            query.qclass,
            flags,
        ))
    }

    /// Sends pending query `slot` to the next upstream of its order that
    /// takes it; answers it with an error when none is left or time is up.
    fn send(&mut self, slot: usize, now: Instant, client_socket: &Arc<UdpSocket>) {
        loop {
            let Some(pending) = self.pending[slot].as_mut() else {
                return;
            };
            let recursion = pending.recursion.clone();
            let forwarder = &recursion.forwarders()[pending.forwarder];
            if pending.next >= pending.order.as_slice().len() || now >= pending.deadline {
                let error = if pending.order.all_down {
                    ForwardError::NoHealthyUpstream
                } else if now >= pending.deadline {
                    ForwardError::Timeout
                } else {
                    pending.last_error
                };
                self.finish(slot, Err(error), client_socket);
                return;
            }
            let upstream = pending.order.as_slice()[pending.next];
            let address = forwarder.upstream_address(upstream);
            let expire = forwarder.config().expire;
            let owner = (recursion.clone(), pending.forwarder, upstream);
            let (socket, opened) = match self.socket_for(address, expire, now, owner) {
                Ok(found) => found,
                Err(error) => {
                    tracing::debug!(%error, upstream = %address, "cannot open an upstream socket");
                    forwarder.note_failure(upstream);
                    if let Some(pending) = self.pending[slot].as_mut() {
                        pending.next += 1;
                        pending.last_error = ForwardError::Unreachable;
                    }
                    continue;
                }
            };
            let serial = self.sockets[socket].as_ref().map_or(u64::MAX, |s| s.serial);
            // RFC 5452 §9.2: a fresh unpredictable ID, unique on this socket.
            let id = loop {
                let id = forwarder.random_id();
                if !self.by_wire.contains_key(&(serial, id)) {
                    break id;
                }
            };
            let Some(pending) = self.pending[slot].as_mut() else {
                return;
            };
            self.scratch.clear();
            self.scratch.extend_from_slice(&pending.packet);
            set_id(&mut self.scratch, id);
            let sent = self.sockets[socket]
                .as_ref()
                .map(|s| s.socket.send(&self.scratch));
            match sent {
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, upstream = %address, "upstream send failed");
                    forwarder.note_failure(upstream);
                    pending.next += 1;
                    pending.last_error = ForwardError::Unreachable;
                    continue;
                }
                None => {
                    pending.next += 1;
                    continue;
                }
            }
            forwarder.note_sent(upstream, opened);
            pending.socket = socket;
            pending.socket_serial = serial;
            pending.id = id;
            pending.sent = now;
            pending.attempt_deadline = (now + ATTEMPT_TIMEOUT).min(pending.deadline);
            let deadline = pending.attempt_deadline;
            self.by_wire.insert((serial, id), slot);
            if let Some(open) = self.sockets[socket].as_mut() {
                open.in_flight += 1;
            }
            self.next_deadline = Some(self.next_deadline.map_or(deadline, |d| d.min(deadline)));
            return;
        }
    }

    /// A socket to `upstream` for one more query, and whether it was opened for it.
    fn socket_for(
        &mut self,
        upstream: SocketAddr,
        expire: Duration,
        now: Instant,
        owner: (Arc<Recursion>, usize, u8),
    ) -> io::Result<(usize, bool)> {
        let mut usable = [0usize; SOCKETS_PER_UPSTREAM];
        let mut count = 0;
        for (index, socket) in self.sockets.iter_mut().enumerate() {
            if let Some(open) = socket
                && open.upstream == upstream
                && !open.retired
            {
                if now >= open.opened + open.expire {
                    open.retired = true;
                    continue;
                }
                if count < SOCKETS_PER_UPSTREAM {
                    usable[count] = index;
                    count += 1;
                }
            }
        }
        if count == SOCKETS_PER_UPSTREAM {
            let forwarder = &owner.0.forwarders()[owner.1];
            return Ok((usable[forwarder.random_below(count)], false));
        }
        let local: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(upstream)?;
        socket.set_nonblocking(true)?;
        self.next_serial += 1;
        let open = Socket {
            serial: self.next_serial,
            owner,
            upstream,
            socket,
            opened: now,
            expire,
            retired: false,
            in_flight: 0,
        };
        let index = match self.sockets.iter().position(Option::is_none) {
            Some(index) => {
                self.sockets[index] = Some(open);
                index
            }
            None => {
                self.sockets.push(Some(open));
                self.sockets.len() - 1
            }
        };
        Ok((index, true))
    }

    /// Reads every reply queued on socket `index` and answers what they answer.
    fn read_socket(&mut self, index: usize, now: Instant, client_socket: &Arc<UdpSocket>) {
        loop {
            let Some(socket) = self.sockets[index].as_ref() else {
                return;
            };
            let count = match self.replies.receive_now(&socket.socket) {
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // ICMP unreachable (or worse) for this socket's upstream:
                    // every query on it fails over now.
                    tracing::debug!(%error, "upstream socket error");
                    self.fail_socket(index, now, client_socket);
                    return;
                }
            };
            for slot in 0..count {
                // Copied out of the batch, so answering may use `self`.
                let mut incoming = std::mem::take(&mut self.incoming);
                incoming.clear();
                incoming.extend_from_slice(self.replies.datagram(slot).0);
                self.on_reply(index, &incoming, now, client_socket);
                self.incoming = incoming;
            }
            if count < mmsg::BATCH {
                return;
            }
        }
    }

    /// One reply on socket `index`.
    fn on_reply(
        &mut self,
        index: usize,
        reply: &[u8],
        now: Instant,
        client_socket: &Arc<UdpSocket>,
    ) {
        let Some(serial) = self.sockets[index].as_ref().map(|s| s.serial) else {
            return;
        };
        let id = match reply {
            [high, low, ..] if reply.len() >= HEADER_LEN => u16::from_be_bytes([*high, *low]),
            _ => 0,
        };
        let slot = self.by_wire.get(&(serial, id)).copied().filter(|&slot| {
            self.pending[slot].as_ref().is_some_and(|pending| {
                question_end(&pending.packet)
                    .is_some_and(|end| answers_question(&pending.packet[HEADER_LEN..end], reply))
            })
        });
        let Some(slot) = slot else {
            // RFC 5452: a reply for nothing in flight is late, or a guess; the
            // socket takes no more queries.
            if let Some(socket) = self.sockets[index].as_mut() {
                socket.retired = true;
                let (recursion, forwarder, upstream) = &socket.owner;
                recursion.forwarders()[*forwarder].note_unmatched(*upstream);
            }
            tracing::debug!(
                len = reply.len(),
                "discarding an upstream reply that matches no query in flight; retiring the socket"
            );
            return;
        };
        self.by_wire.remove(&(serial, id));
        if let Some(socket) = self.sockets[index].as_mut() {
            socket.in_flight = socket.in_flight.saturating_sub(1);
        }
        let Some(pending) = self.pending[slot].as_mut() else {
            return;
        };
        pending.socket_serial = u64::MAX;
        let upstream = pending.order.as_slice()[pending.next];
        let elapsed = now.saturating_duration_since(pending.sent);
        pending.recursion.forwarders()[pending.forwarder].note_reply(upstream, reply, elapsed);
        if truncated(reply) {
            // RFC 7766 §5: retry over TCP, which the task path does.
            self.hand_over(slot, client_socket);
            return;
        }
        self.finish(slot, Ok(reply), client_socket);
    }

    /// Every query on socket `index` fails this attempt (the socket reported an error).
    fn fail_socket(&mut self, index: usize, now: Instant, client_socket: &Arc<UdpSocket>) {
        let Some(serial) = self.sockets[index].as_ref().map(|s| s.serial) else {
            return;
        };
        for slot in 0..self.pending.len() {
            if self.pending[slot]
                .as_ref()
                .is_some_and(|p| p.socket_serial == serial)
            {
                self.attempt_failed(slot, ForwardError::Unreachable, now, client_socket);
            }
        }
    }

    /// The attempt of `slot` failed: count it against its upstream and try the next.
    fn attempt_failed(
        &mut self,
        slot: usize,
        error: ForwardError,
        now: Instant,
        client_socket: &Arc<UdpSocket>,
    ) {
        let Some(pending) = self.pending[slot].as_mut() else {
            return;
        };
        if self
            .by_wire
            .remove(&(pending.socket_serial, pending.id))
            .is_some()
            && let Some(Some(socket)) = self.sockets.get_mut(pending.socket)
            && socket.serial == pending.socket_serial
        {
            socket.in_flight = socket.in_flight.saturating_sub(1);
        }
        let upstream = pending.order.as_slice()[pending.next];
        pending.recursion.forwarders()[pending.forwarder].note_failure(upstream);
        tracing::debug!(?error, "forward attempt failed");
        pending.next += 1;
        pending.last_error = error;
        pending.socket_serial = u64::MAX;
        self.send(slot, now, client_socket);
    }

    /// Removes query `slot` from the tables.
    fn take(&mut self, slot: usize) -> Option<Pending> {
        let pending = self.pending[slot].take()?;
        self.free.push(slot);
        self.in_flight -= 1;
        if self.by_question.get(&pending.question_hash) == Some(&slot) {
            self.by_question.remove(&pending.question_hash);
        }
        if pending.socket_serial != u64::MAX {
            self.by_wire.remove(&(pending.socket_serial, pending.id));
        }
        Some(pending)
    }

    /// Answers every asker of `slot` from `reply` (or the error), and forgets it.
    fn finish(
        &mut self,
        slot: usize,
        reply: Result<&[u8], ForwardError>,
        client_socket: &Arc<UdpSocket>,
    ) {
        let Some(pending) = self.take(slot) else {
            return;
        };
        let forwarder = &pending.recursion.forwarders()[pending.forwarder];
        let askers = std::iter::once((pending.packet, pending.asker)).chain(
            pending
                .followers
                .into_iter()
                .map(|follower| (follower.packet, follower.asker)),
        );
        for (packet, asker) in askers {
            forwarder.release_query();
            if let Ok(query) = parse_query(&packet) {
                let len = match reply {
                    Ok(reply) => {
                        // The asker's ID, and its spelling of the question.
                        let mut patched = std::mem::take(&mut self.scratch);
                        patched.clear();
                        patched.extend_from_slice(reply);
                        set_id(&mut patched, query.id());
                        let question = query.question();
                        if question_end(&patched) == Some(HEADER_LEN + question.len()) {
                            patched[HEADER_LEN..][..question.len()].copy_from_slice(question);
                        }
                        let len =
                            pending
                                .recursion
                                .finish(&query, Ok(&patched), &asker, &mut self.out);
                        self.scratch = patched;
                        len
                    }
                    Err(error) => {
                        pending
                            .recursion
                            .finish(&query, Err(error), &asker, &mut self.out)
                    }
                };
                send_answer(client_socket, &self.out[..len], asker.client);
            }
            self.spare.push(packet);
        }
    }

    /// Hands every asker of `slot` to the task path (a truncated reply: TCP).
    fn hand_over(&mut self, slot: usize, client_socket: &Arc<UdpSocket>) {
        let Some(pending) = self.take(slot) else {
            return;
        };
        let forwarder = &pending.recursion.forwarders()[pending.forwarder];
        let askers = std::iter::once((pending.packet, pending.asker)).chain(
            pending
                .followers
                .into_iter()
                .map(|follower| (follower.packet, follower.asker)),
        );
        for (packet, asker) in askers {
            forwarder.release_query();
            pending.recursion.spawn_udp_over_tcp(
                &packet,
                asker.client,
                asker.zone,
                asker.limit,
                client_socket.clone(),
            );
            self.spare.push(packet);
        }
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        // Shutdown: queries still in flight are dropped; uncount them.
        for pending in self.pending.iter().flatten() {
            let forwarder = &pending.recursion.forwarders()[pending.forwarder];
            for _ in 0..=pending.followers.len() {
                forwarder.release_query();
            }
        }
    }
}

/// Whether `leader` asks the question of `query` through the same forwarder.
fn same_question(
    leader: &Pending,
    recursion: &Arc<Recursion>,
    forwarder: usize,
    query: &Query<'_>,
) -> bool {
    if !Arc::ptr_eq(&leader.recursion, recursion) || leader.forwarder != forwarder {
        return false;
    }
    let Ok(first) = parse_query(&leader.packet) else {
        return false;
    };
    let flags = |q: &Query<'_>| {
        (
            q.edns.is_some_and(|e| e.dnssec_ok),
            q.checking_disabled(),
            q.recursion_desired(),
        )
    };
    first.qname_lower() == query.qname_lower()
        && first.qtype == query.qtype
        && first.qclass == query.qclass
        && flags(&first) == flags(query)
}

/// A copy of `packet` in a recycled buffer.
fn recycled(spare: &mut Vec<Vec<u8>>, packet: &[u8]) -> Vec<u8> {
    let mut buffer = spare.pop().unwrap_or_default();
    buffer.clear();
    buffer.extend_from_slice(packet);
    buffer
}

fn send_answer(socket: &UdpSocket, answer: &[u8], client: SocketAddr) {
    if answer.is_empty() {
        return;
    }
    if let Err(error) = socket.send_to(answer, client) {
        tracing::debug!(%error, %client, "udp send failed");
    }
}
