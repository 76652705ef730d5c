//! Upstream sockets kept and shared: a pool of connected UDP sockets and one
//! pipelined TCP connection per upstream.
//!
//! Control plane (tokio). Opening a socket per query cost more CPU than the
//! rest of a forwarded query together (socket, bind, connect, two epoll
//! registrations and a close per miss); here a query costs one `send` on a
//! socket that is already open, and its reply is read by the socket's reader
//! task, which hands it to the waiting query by message ID.
//!
//! ```text
//! udp_exchange ─▶ random slot of UDP_SOCKETS ─▶ open? (younger than `expire`, not retired) ─ no ─▶ new socket + reader
//!      │ fresh random ID, unique among the socket's waiting queries; register (ID, question) ─▶ send
//!      ▼
//! reader task: recv ─▶ ID waiting and question equal? ─ yes ─▶ hand over (oneshot)
//!                                                     └ no ──▶ discard, count, retire the socket
//! tcp_exchange ─▶ the upstream's connection (dial when none; one dial at a time) ─▶ frame + write
//!      reader task: frames ─▶ by ID, in any order (RFC 7766 §6.2.1.1) ; closed idle after `expire`
//! ```
//!
//! Spoofing (RFC 5452). A forged reply must hit an open source port, the
//! right message ID and the question in flight. Sharing sockets keeps that
//! as hard as a socket per query:
//! - every query sent still has its own unpredictable (port, ID) pair: the
//!   socket is picked at random among [`UDP_SOCKETS`] bound to ports the
//!   kernel picked at random from its ephemeral range, and the ID is fresh and
//!   random (§9.2), so a blind attacker faces the same search space
//!   (ports × 2^16 per query in flight);
//! - sockets are connected (§9.1: the kernel drops datagrams from any other
//!   source, and a scan from any other address cannot find the ports, which
//!   look closed to it);
//! - a socket takes new queries for at most `expire` (10 s by default) after
//!   it opens, then closes once its queries are answered, so the ports keep
//!   moving;
//! - the first reply that matches no query in flight on a socket (wrong ID or
//!   wrong question: a late reply, or someone guessing) retires that socket
//!   at once, so a guesser who found a port loses it after one wrong guess.
//!
//! Invariants: the waiting maps' locks are synchronous and held for one map
//! operation, never across an `.await`; a waiting entry is removed exactly
//! once (by the reply, or by the query's guard, matched by serial number so a
//! reused ID is never removed by the wrong query); a pool slot only ever
//! holds a socket that is open.

use super::metrics::UpstreamMetrics;
use super::random::Random;
use super::wire::{self, AttemptError, MAX_MESSAGE};
use signpost_proto::{HEADER_LEN, MAX_NAME_LEN};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Connected UDP sockets per upstream. Each carries any number of queries at
/// once (each under its own ID); a handful spreads queries over several
/// random source ports.
pub const UDP_SOCKETS: usize = 8;
/// Queries one socket or connection carries at once; more fail that attempt
/// (the next upstream is tried), which no realistic load reaches.
const MAX_WAITING: usize = 8192;
/// The longest a query waits for its reply once sent (the forwarder's attempt
/// timeout): a retired socket closes at the latest this long after its last query.
const LINGER: Duration = super::config::ATTEMPT_TIMEOUT;
/// Largest question: a name of at most 255 bytes, type and class.
const MAX_QUESTION: usize = MAX_NAME_LEN + 4;

/// The sockets kept for one upstream.
#[derive(Debug)]
pub(crate) struct Pool {
    upstream: SocketAddr,
    expire: Duration,
    udp: Box<[Mutex<Option<Arc<UdpChannel>>>]>,
    /// The kept TCP connection. An async mutex: held across a dial, so
    /// concurrent queries wait for one connection instead of each dialling.
    tcp: tokio::sync::Mutex<Option<Arc<TcpChannel>>>,
    random: Arc<Random>,
    metrics: Arc<UpstreamMetrics>,
    cancel: CancellationToken,
}

/// The queries in flight on one socket, by message ID.
#[derive(Debug, Default)]
struct Waiting {
    by_id: HashMap<u16, Waiter>,
    next_serial: u64,
}

/// One query in flight.
#[derive(Debug)]
struct Waiter {
    serial: u64,
    question: Question,
    reply: oneshot::Sender<Result<Vec<u8>, AttemptError>>,
}

/// A question section as sent, kept inline (no allocation per query).
#[derive(Debug, Clone, Copy)]
struct Question {
    bytes: [u8; MAX_QUESTION],
    len: u16,
}

/// One connected UDP socket and its queries in flight.
#[derive(Debug)]
struct UdpChannel {
    socket: UdpSocket,
    waiting: Mutex<Waiting>,
    opened: Instant,
    /// No new queries: too old, or a reply matched nothing.
    retired: AtomicBool,
}

/// One TCP connection and its queries in flight.
#[derive(Debug)]
struct TcpChannel {
    /// The write half and a reusable frame buffer; an async mutex, so a
    /// query's frame is written whole before the next one starts.
    writer: tokio::sync::Mutex<TcpWriter>,
    waiting: Mutex<Waiting>,
    closed: AtomicBool,
    /// When a query was last sent, in nanoseconds since `opened` (idle expiry).
    last_used: AtomicU64,
    opened: Instant,
}

#[derive(Debug)]
struct TcpWriter {
    half: OwnedWriteHalf,
    frame: Vec<u8>,
}

/// Removes a query's waiting entry when the query is done (or abandoned),
/// unless the reply already took it.
struct Registration<'a> {
    waiting: &'a Mutex<Waiting>,
    id: u16,
    serial: u64,
}

// === impl Pool ===

impl Pool {
    /// An empty pool; sockets open on first use.
    pub(crate) fn new(
        upstream: SocketAddr,
        expire: Duration,
        random: Arc<Random>,
        metrics: Arc<UpstreamMetrics>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            upstream,
            expire,
            udp: (0..UDP_SOCKETS).map(|_| Mutex::new(None)).collect(),
            tcp: tokio::sync::Mutex::new(None),
            random,
            metrics,
            cancel,
        }
    }

    /// Sends `query` (its ID is replaced) over a pooled UDP socket and waits
    /// until `deadline` for the reply that matches its ID and question.
    pub(crate) async fn udp_exchange(
        self: &Arc<Self>,
        query: &mut [u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, AttemptError> {
        let question = Question::of(query).ok_or(AttemptError::BadReply)?;
        let channel = self.udp_channel()?;
        let (registration, receiver) = register(&channel.waiting, question, &self.random)?;
        // RFC 5452 §9.2: an unpredictable ID per query sent.
        wire::set_id(query, registration.id);
        channel.socket.send(query).await?;
        let result = match timeout_at(deadline, receiver).await {
            Ok(Ok(result)) => result,
            // The socket's reader ended (shutdown) before a reply.
            Ok(Err(_)) => Err(AttemptError::Network(io::ErrorKind::ConnectionAborted)),
            Err(_) => Err(AttemptError::Timeout),
        };
        drop(registration);
        result
    }

    /// Sends `query` (its ID is replaced) over the upstream's kept TCP
    /// connection, dialling one when there is none, and waits until
    /// `deadline` for its reply. A kept connection that turns out closed
    /// (the upstream may drop idle connections at any time, RFC 7766 §6.2.3)
    /// is replaced and the query sent once more.
    pub(crate) async fn tcp_exchange(
        self: &Arc<Self>,
        query: &mut [u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, AttemptError> {
        let question = Question::of(query).ok_or(AttemptError::BadReply)?;
        let mut fresh_only = false;
        loop {
            let (channel, reused) = self.tcp_channel(deadline, fresh_only).await?;
            match channel
                .exchange(question, query, deadline, &self.random)
                .await
            {
                Err(AttemptError::Network(_)) if reused => fresh_only = true,
                result => return result,
            }
        }
    }

    /// A UDP socket for one more query: a random slot's, or a new one there.
    fn udp_channel(self: &Arc<Self>) -> io::Result<Arc<UdpChannel>> {
        let now = Instant::now();
        let slot = self.random.below(self.udp.len());
        let mut kept = lock(&self.udp[slot]);
        if let Some(channel) = kept.as_ref() {
            if !channel.retired.load(Relaxed) && now < channel.opened + self.expire {
                self.metrics.conn_cache_hit(false);
                return Ok(channel.clone());
            }
            // Its time is up: it finishes its queries and closes.
            channel.retired.store(true, Relaxed);
        }
        let channel = Arc::new(UdpChannel::open(self.upstream, now)?);
        *kept = Some(channel.clone());
        drop(kept);
        self.metrics.conn_cache_miss(false);
        let reader = read_udp(self.clone(), slot, channel.clone());
        tokio::spawn(
            reader.instrument(tracing::debug_span!("forward_udp", upstream = %self.upstream)),
        );
        Ok(channel)
    }

    /// The kept TCP connection (and true), or a new one (and false).
    async fn tcp_channel(
        self: &Arc<Self>,
        deadline: Instant,
        fresh_only: bool,
    ) -> Result<(Arc<TcpChannel>, bool), AttemptError> {
        let mut kept = timeout_at(deadline, self.tcp.lock())
            .await
            .map_err(|_| AttemptError::Timeout)?;
        if let Some(channel) = kept.as_ref() {
            if !channel.closed.load(Relaxed) && !fresh_only {
                self.metrics.conn_cache_hit(true);
                return Ok((channel.clone(), true));
            }
            channel.close();
        }
        let stream = timeout_at(deadline, TcpStream::connect(self.upstream))
            .await
            .map_err(|_| AttemptError::Timeout)??;
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let channel = Arc::new(TcpChannel {
            writer: tokio::sync::Mutex::new(TcpWriter {
                half: write_half,
                frame: Vec::new(),
            }),
            waiting: Mutex::new(Waiting::default()),
            closed: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
            opened: Instant::now(),
        });
        *kept = Some(channel.clone());
        drop(kept);
        self.metrics.conn_cache_miss(true);
        let reader = read_tcp(self.clone(), channel.clone(), read_half);
        tokio::spawn(
            reader.instrument(tracing::debug_span!("forward_tcp", upstream = %self.upstream)),
        );
        Ok((channel, false))
    }
}

/// Takes a slot's or a waiting map's lock. Each critical section is one map
/// or slot operation, so a panic elsewhere cannot leave either inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a query's reply (or the reason there is none) arrives.
type ReplyReceiver = oneshot::Receiver<Result<Vec<u8>, AttemptError>>;

/// Registers a query under a fresh random ID not in flight on this socket.
fn register<'a>(
    waiting: &'a Mutex<Waiting>,
    question: Question,
    random: &Random,
) -> Result<(Registration<'a>, ReplyReceiver), AttemptError> {
    let (sender, receiver) = oneshot::channel();
    let mut map = lock(waiting);
    if map.by_id.len() >= MAX_WAITING {
        return Err(AttemptError::Network(io::ErrorKind::WouldBlock));
    }
    let id = loop {
        let id = random.id();
        if !map.by_id.contains_key(&id) {
            break id;
        }
    };
    map.next_serial += 1;
    let serial = map.next_serial;
    map.by_id.insert(
        id,
        Waiter {
            serial,
            question,
            reply: sender,
        },
    );
    Ok((
        Registration {
            waiting,
            id,
            serial,
        },
        receiver,
    ))
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut map = lock(self.waiting);
        if map
            .by_id
            .get(&self.id)
            .is_some_and(|waiter| waiter.serial == self.serial)
        {
            map.by_id.remove(&self.id);
        }
    }
}

// === impl Waiting ===

impl Waiting {
    /// Hands `reply` to the query it answers; false when it answers none.
    fn deliver(&mut self, reply: &[u8]) -> bool {
        if reply.len() < HEADER_LEN {
            return false;
        }
        let id = u16::from_be_bytes([reply[0], reply[1]]);
        let matches = self
            .by_id
            .get(&id)
            .is_some_and(|waiter| wire::answers_question(waiter.question.as_bytes(), reply));
        if !matches {
            return false;
        }
        if let Some(waiter) = self.by_id.remove(&id) {
            let _ = waiter.reply.send(Ok(reply.to_vec()));
        }
        true
    }

    /// Fails every query in flight with `error`.
    fn fail_all(&mut self, error: AttemptError) {
        for (_, waiter) in self.by_id.drain() {
            let _ = waiter.reply.send(Err(error));
        }
    }
}

// === impl Question ===

impl Question {
    /// The question section of `query`; `None` if it has none or it is too long.
    fn of(query: &[u8]) -> Option<Self> {
        let end = wire::question_end(query)?;
        let section = &query[HEADER_LEN..end];
        let mut bytes = [0u8; MAX_QUESTION];
        bytes.get_mut(..section.len())?.copy_from_slice(section);
        Some(Self {
            bytes,
            len: section.len() as u16,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

// === impl UdpChannel ===

impl UdpChannel {
    /// A socket on a port the kernel picks at random from its ephemeral
    /// range, connected to `upstream`.
    fn open(upstream: SocketAddr, now: Instant) -> io::Result<Self> {
        let local: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = std::net::UdpSocket::bind(local)?;
        socket.connect(upstream)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: UdpSocket::from_std(socket)?,
            waiting: Mutex::new(Waiting::default()),
            opened: now,
            retired: AtomicBool::new(false),
        })
    }
}

/// The reader of one UDP socket: hands replies to their queries until the
/// socket is retired and idle (retirement comes `expire` after it opened, or
/// with a reply that matches nothing) or the forwarder stops; then empties
/// its slot, which closes the socket. A retired socket with queries in
/// flight waits for them at most [`LINGER`].
async fn read_udp(pool: Arc<Pool>, slot: usize, channel: Arc<UdpChannel>) {
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let retire = tokio::time::sleep_until(channel.opened + pool.expire);
    tokio::pin!(retire);
    let mut lingering = false;
    loop {
        let received = tokio::select! {
            biased;
            () = pool.cancel.cancelled() => break,
            () = &mut retire => {
                if lingering {
                    break;
                }
                // No query is sent on it any more; those in flight get LINGER.
                channel.retired.store(true, Relaxed);
                if lock(&channel.waiting).by_id.is_empty() {
                    break;
                }
                lingering = true;
                retire.as_mut().reset(Instant::now() + LINGER);
                continue;
            }
            received = channel.socket.recv(&mut buffer) => received,
        };
        match received {
            Ok(len) => {
                let delivered = lock(&channel.waiting).deliver(&buffer[..len]);
                if !delivered {
                    pool.metrics.unmatched_reply();
                    tracing::debug!(
                        len,
                        "discarding a udp reply that matches no query in flight; retiring the socket"
                    );
                    channel.retired.store(true, Relaxed);
                    if !lingering {
                        lingering = true;
                        retire.as_mut().reset(Instant::now() + LINGER);
                    }
                }
                if channel.retired.load(Relaxed) && lock(&channel.waiting).by_id.is_empty() {
                    break;
                }
            }
            // An ICMP error for something sent on this socket: the upstream
            // is unreachable for every query on it, so fail them all now.
            Err(error) => {
                lock(&channel.waiting).fail_all(AttemptError::Network(error.kind()));
                if !matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                ) {
                    tracing::debug!(%error, "udp socket failed; closing it");
                    break;
                }
            }
        }
    }
    channel.retired.store(true, Relaxed);
    lock(&channel.waiting).fail_all(AttemptError::Network(io::ErrorKind::ConnectionAborted));
    let mut kept = lock(&pool.udp[slot]);
    if kept.as_ref().is_some_and(|c| Arc::ptr_eq(c, &channel)) {
        *kept = None;
    }
}

// === impl TcpChannel ===

impl TcpChannel {
    /// Sends one query on this connection and waits for its reply.
    async fn exchange(
        &self,
        question: Question,
        query: &mut [u8],
        deadline: Instant,
        random: &Random,
    ) -> Result<Vec<u8>, AttemptError> {
        if self.closed.load(Relaxed) {
            return Err(AttemptError::Network(io::ErrorKind::NotConnected));
        }
        let (registration, receiver) = register(&self.waiting, question, random)?;
        wire::set_id(query, registration.id);
        self.last_used.store(
            Instant::now()
                .saturating_duration_since(self.opened)
                .as_nanos() as u64,
            Relaxed,
        );
        let written = timeout_at(deadline, async {
            let mut writer = self.writer.lock().await;
            let TcpWriter { half, frame } = &mut *writer;
            // RFC 7766 §8: a two-byte length, then the message, in one write.
            frame.clear();
            frame.extend_from_slice(&u16::try_from(query.len()).unwrap_or(u16::MAX).to_be_bytes());
            frame.extend_from_slice(query);
            half.write_all(frame).await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                self.close();
                return Err(error.into());
            }
            Err(_) => return Err(AttemptError::Timeout),
        }
        let result = match timeout_at(deadline, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AttemptError::Network(io::ErrorKind::ConnectionReset)),
            Err(_) => Err(AttemptError::Timeout),
        };
        drop(registration);
        result
    }

    /// Takes no more queries; the reader fails those in flight and stops.
    fn close(&self) {
        self.closed.store(true, Relaxed);
    }
}

/// The reader of one TCP connection: reads length-prefixed replies and hands
/// each to its query, in whatever order they come (RFC 7766 §7), until the
/// upstream closes, a reply matches nothing, the connection has been idle for
/// `expire` (CoreDNS's `expire`), or the forwarder stops.
async fn read_tcp(pool: Arc<Pool>, channel: Arc<TcpChannel>, mut reader: OwnedReadHalf) {
    let mut buffer = vec![0u8; 2 * (MAX_MESSAGE + 2)];
    let mut filled = 0usize;
    let idle_check = tokio::time::sleep(pool.expire);
    tokio::pin!(idle_check);
    let error = 'read: loop {
        if channel.closed.load(Relaxed) {
            break AttemptError::Network(io::ErrorKind::NotConnected);
        }
        let read = tokio::select! {
            biased;
            () = pool.cancel.cancelled() => break AttemptError::Network(io::ErrorKind::ConnectionAborted),
            () = &mut idle_check => {
                let last_used = channel.opened + Duration::from_nanos(channel.last_used.load(Relaxed));
                let idle_until = last_used + pool.expire;
                if Instant::now() >= idle_until && lock(&channel.waiting).by_id.is_empty() {
                    break AttemptError::Network(io::ErrorKind::NotConnected);
                }
                idle_check.as_mut().reset(idle_until.max(Instant::now() + LINGER.min(pool.expire)));
                continue;
            }
            // `read` is cancel-safe: when another branch wins, nothing was read.
            read = reader.read(&mut buffer[filled..]) => read,
        };
        match read {
            Ok(0) => break AttemptError::Network(io::ErrorKind::UnexpectedEof),
            Ok(len) => filled += len,
            Err(error) => break AttemptError::Network(error.kind()),
        }
        // Every complete frame in the buffer.
        let mut start = 0;
        while filled - start >= 2 {
            let len = usize::from(u16::from_be_bytes([buffer[start], buffer[start + 1]]));
            if filled - start < 2 + len {
                break;
            }
            let reply = &buffer[start + 2..start + 2 + len];
            if !lock(&channel.waiting).deliver(reply) {
                // Not an answer to anything we sent: the stream cannot be trusted.
                pool.metrics.unmatched_reply();
                tracing::debug!(
                    len,
                    "a tcp reply matches no query in flight; closing the connection"
                );
                break 'read AttemptError::BadReply;
            }
            start += 2 + len;
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
    };
    channel.close();
    lock(&channel.waiting).fail_all(error);
    let mut kept = pool.tcp.lock().await;
    if kept.as_ref().is_some_and(|c| Arc::ptr_eq(c, &channel)) {
        *kept = None;
    }
}
