//! One exchange as the answer path sees it: who asked, over what, counted where.
//!
//! Data plane. Shared by the answer chain, recursion, the query log and the
//! listeners, so none of them needs to know the others.

use crate::metrics::{Shard, Transport};
use std::net::SocketAddr;
use tokio::time::Instant;

/// Where an answer goes.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The client.
    pub client: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The worker's metric shard.
    pub shard: &'a Shard,
    /// When the message arrived: read once per receive call (a UDP worker
    /// reads the clock once per batch of datagrams), and used as "now" for
    /// cache TTLs and as the start of the request duration.
    pub received: Instant,
}

thread_local! {
    // Per-worker round-robin position for `loadbalance` (no sharing, no allocation).
    static TURN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The next round-robin position of this thread (`loadbalance`).
pub fn next_turn() -> usize {
    TURN.with(|turn| {
        let value = turn.get().wrapping_add(1);
        turn.set(value);
        value
    })
}
