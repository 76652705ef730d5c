//! Batched UDP receive and send: `recvmmsg(2)` and `sendmmsg(2)` (Linux).
//!
//! Data plane. One system call moves up to [`BATCH`] datagrams each way, which
//! the load benchmark showed is where a query's time goes (three quarters of
//! it in the kernel, one receive and one send call per query). All buffers
//! are allocated once per worker and reused; nothing here allocates per
//! datagram.
//!
//! This module lifts the workspace's `unsafe_code` ban: the two calls take
//! raw pointers into buffers this struct owns, and the kernel's sockaddr
//! results are read back through `libc`'s C layouts.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;

/// A worker's receive and send buffers with their message headers.
pub(crate) struct Batch {
    packets: Vec<Box<[u8]>>,
    replies: Vec<Box<[u8]>>,
    addresses: Vec<libc::sockaddr_storage>,
    address_lens: Vec<libc::socklen_t>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: Vec<usize>,
    /// Replies queued for the next send: (slot, length).
    queued: Vec<(usize, usize)>,
}

// === impl Batch ===

impl Batch {
    /// Buffers for `BATCH` datagrams of up to `packet_len` bytes and replies of `reply_len`.
    pub(crate) fn new(packet_len: usize, reply_len: usize) -> Self {
        Self {
            packets: (0..BATCH)
                .map(|_| vec![0u8; packet_len].into_boxed_slice())
                .collect(),
            replies: (0..BATCH)
                .map(|_| vec![0u8; reply_len].into_boxed_slice())
                .collect(),
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
            addresses: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            address_lens: vec![0; BATCH],
            // SAFETY: iovec and mmsghdr are plain old data; their pointers are set before every call.
            iovecs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            headers: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            received: vec![0; BATCH],
            queued: Vec::with_capacity(BATCH),
        }
    }

    /// Blocks until at least one datagram arrives (or the socket's read
    /// timeout passes), then takes every one already queued, up to `BATCH`.
    /// Returns how many were received.
    pub(crate) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.receive_with(socket, libc::MSG_WAITFORONE)
    }

    /// Takes every datagram already queued, up to `BATCH`, without waiting:
    /// `WouldBlock` when there is none.
    pub(crate) fn receive_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.receive_with(socket, libc::MSG_DONTWAIT)
    }

    fn receive_with(&mut self, socket: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        for slot in 0..BATCH {
            self.iovecs[slot] = libc::iovec {
                iov_base: self.packets[slot].as_mut_ptr().cast(),
                iov_len: self.packets[slot].len(),
            };
            let header = &mut self.headers[slot].msg_hdr;
            header.msg_name = (&raw mut self.addresses[slot]).cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &raw mut self.iovecs[slot];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
            self.headers[slot].msg_len = 0;
        }
        // SAFETY: `headers` holds BATCH initialized mmsghdr whose name and iovec
        // pointers refer to buffers owned by `self`, alive and unaliased for
        // the duration of the call; the kernel writes at most the given lengths.
        let count = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        let count = count as usize;
        for slot in 0..count {
            self.received[slot] = self.headers[slot].msg_len as usize;
            self.address_lens[slot] = self.headers[slot].msg_hdr.msg_namelen;
        }
        self.queued.clear();
        Ok(count)
    }

    /// The datagram in `slot`, its sender, and the reply buffer of that slot.
    pub(crate) fn datagram(&mut self, slot: usize) -> (&[u8], Option<SocketAddr>, &mut [u8]) {
        let client = socket_address(&self.addresses[slot], self.address_lens[slot]);
        let length = self.received[slot].min(self.packets[slot].len());
        (
            &self.packets[slot][..length],
            client,
            &mut self.replies[slot],
        )
    }

    /// Queues the reply written into `slot`'s buffer for the sender of `slot`.
    pub(crate) fn queue_reply(&mut self, slot: usize, length: usize) {
        self.queued.push((slot, length));
    }

    /// Sends every queued reply, in as few calls as the kernel allows.
    pub(crate) fn send(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let total = self.queued.len();
        for (index, &(slot, length)) in self.queued.iter().enumerate() {
            self.iovecs[index] = libc::iovec {
                iov_base: self.replies[slot].as_mut_ptr().cast(),
                iov_len: length,
            };
            let header = &mut self.headers[index].msg_hdr;
            header.msg_name = (&raw mut self.addresses[slot]).cast();
            header.msg_namelen = self.address_lens[slot];
            header.msg_iov = &raw mut self.iovecs[index];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
        }
        let mut sent = 0;
        while sent < total {
            // SAFETY: headers[sent..total] were initialized above and point into
            // buffers owned by `self` that live across the call.
            let count = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.headers.as_mut_ptr().add(sent),
                    (total - sent) as libc::c_uint,
                    0,
                )
            };
            if count <= 0 {
                let error = io::Error::last_os_error();
                // Skip the datagram that failed (like a failed send_to) and go on.
                tracing::debug!(%error, "udp send failed");
                sent += 1;
                continue;
            }
            sent += count as usize;
        }
        self.queued.clear();
        Ok(())
    }
}

/// Waits until one of `sockets` is readable (or has an error to report), at
/// most `timeout`; marks each socket's entry in `readable`. `poll(2)`.
pub(crate) fn wait_readable(
    sockets: &[&UdpSocket],
    readable: &mut [bool],
    timeout: std::time::Duration,
) -> io::Result<()> {
    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; POLL_MAX];
    let count = sockets.len().min(POLL_MAX);
    for (fd, socket) in fds.iter_mut().zip(&sockets[..count]) {
        fd.fd = socket.as_raw_fd();
        fd.events = libc::POLLIN;
    }
    let millis = timeout.as_millis().clamp(0, i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a live array of `count` initialized pollfd (count <=
    // its length); the kernel writes only their `revents`.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), count as libc::nfds_t, millis) };
    if ready < 0 {
        return Err(io::Error::last_os_error());
    }
    for (flag, fd) in readable.iter_mut().zip(&fds[..count]) {
        *flag = fd.revents != 0;
    }
    Ok(())
}

/// Most sockets [`wait_readable`] watches at once.
pub(crate) const POLL_MAX: usize = 64;

/// Reads a kernel-filled sockaddr back into a `SocketAddr`.
fn socket_address(storage: &libc::sockaddr_storage, length: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET if length as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let v4 = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 if length as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
