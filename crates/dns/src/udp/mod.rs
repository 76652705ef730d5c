//! UDP workers: one `SO_REUSEPORT` socket and one OS thread per worker.
//!
//! Data plane. Each worker blocks in `recvmmsg`, answers every datagram of
//! the batch synchronously into buffers it owns, and sends the answers with
//! one `sendmmsg`. No task per packet, no lock, no allocation.
//! The kernel spreads datagrams across the sockets by flow hash.
//! A short receive timeout lets a worker see the shutdown flag; a worker
//! always finishes the query in hand before it exits (drain).

use crate::answer::{Outcome, Responder};
use crate::exchange::Exchange;
use crate::metrics::Transport;
use crate::querylog::QueryLog;
use inline::Inline;
use mmsg::Batch;

mod inline;
mod mmsg;
use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest datagram read; anything longer is cut and then fails to parse.
const RECEIVE_BUFFER: usize = 65535;
/// How often an idle worker checks for shutdown.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// Binds one socket per worker on `address`; all workers share one port.
///
/// With port 0 the port is chosen first by a socket bound *without*
/// `SO_REUSEPORT`, which the kernel only gives a port no socket holds, and
/// the workers' sockets then bind that port. Letting the first
/// `SO_REUSEPORT` socket choose would not do: Linux's port choice skips only
/// ports it could not share (`udp_lib_get_port`), so it may hand out a port
/// another `SO_REUSEPORT` socket of the same user already holds, and the two
/// servers would split each other's traffic without an error.
pub fn bind_sockets(address: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    let mut address = address;
    if address.port() == 0 {
        let chooser = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if address.is_ipv6() {
            chooser.set_only_v6(true)?;
        }
        chooser.bind(&address.into())?;
        let chosen = chooser
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound UDP socket has no IP address"))?;
        address.set_port(chosen.port());
        // Closed before the workers bind: a socket without SO_REUSEPORT
        // would keep them out.
        drop(chooser);
    }
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        socket.set_reuse_port(true)?;
        if address.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        // A bigger receive buffer absorbs bursts; the kernel caps it at rmem_max.
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket.bind(&address.into())?;
        socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
        sockets.push(socket.into());
    }
    Ok(sockets)
}

/// Starts one named thread per socket. Each packet is answered by the
/// responder current at that moment, so a configuration reload swaps it
/// under running workers without closing a socket.
pub fn spawn_workers(
    sockets: Vec<UdpSocket>,
    current: Arc<ArcSwap<Responder>>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(index, socket)| {
            let current = current.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(format!("udp-{index}"))
                .spawn(move || run_worker(&Arc::new(socket), &current, index, &shutdown))
        })
        .collect()
}

fn run_worker(
    socket: &Arc<UdpSocket>,
    current: &ArcSwap<Responder>,
    index: usize,
    shutdown: &AtomicBool,
) {
    let mut batch = Batch::new(RECEIVE_BUFFER, signpost_proto::ADVERTISED_UDP_SIZE as usize);
    let mut log = QueryLog::default();
    let mut inline = Inline::new();
    while !shutdown.load(Ordering::Relaxed) {
        // Nothing forwarded in flight: block on the client socket alone (the
        // hit path's one system call per batch). Otherwise wait on it and the
        // upstream sockets together, answering replies as they come.
        let received = if inline.is_idle() {
            batch.receive(socket)
        } else if inline.poll(socket, SHUTDOWN_POLL) {
            batch.receive_now(socket)
        } else {
            Ok(0)
        };
        let count = match received {
            Ok(count) => count,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(error) => {
                tracing::debug!(%error, "udp receive failed");
                0
            }
        };
        if count == 0 {
            inline.maintain(tokio::time::Instant::now(), socket);
            continue;
        }
        // One responder and one clock reading for the whole batch: a reload
        // swaps the responder between batches, and every datagram of the batch
        // arrived by the time the receive call returned.
        let responder = current.load();
        let received = tokio::time::Instant::now();
        for slot in 0..count {
            let (packet, client, out) = batch.datagram(slot);
            let Some(client) = client else { continue };
            let exchange = Exchange {
                client,
                transport: Transport::Udp,
                shard: responder.shard(index),
                received,
            };
            match responder.answer(packet, out, exchange, &mut log) {
                Outcome::Reply(answer_len) => batch.queue_reply(slot, answer_len),
                Outcome::Drop => {}
                Outcome::Defer { zone, limit } => {
                    if let Some(recursion) = responder.recursion()
                        && !inline.start(recursion, packet, client, zone, limit, received, socket)
                    {
                        recursion.spawn_udp(packet, client, zone, limit, socket.clone());
                    }
                }
            }
        }
        if let Err(error) = batch.send(socket) {
            tracing::debug!(%error, "udp send failed");
        }
        inline.maintain(received, socket);
    }
}
