//! Unpredictable numbers for the forwarder: message IDs, upstream order and
//! the choice of a pooled socket.
//!
//! Control plane. SipHash with the process's random keys over a counter (a
//! keyed PRF): an observer who sees every ID sent cannot predict the next
//! one without the keys (RFC 5452 §9.2), no extra dependency, no lock.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// A keyed pseudo-random sequence shared by a forwarder's tasks.
#[derive(Debug)]
pub(crate) struct Random {
    keys: std::collections::hash_map::RandomState,
    counter: AtomicU64,
}

// === impl Random ===

impl Random {
    /// A sequence under fresh random keys.
    pub(crate) fn new() -> Self {
        Self {
            keys: std::collections::hash_map::RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.keys
            .hash_one(self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// A message ID (RFC 5452 §9.2: unpredictable, from the whole 16-bit range).
    pub(crate) fn id(&self) -> u16 {
        (self.next() >> 24) as u16
    }

    /// A number in `0..bound` (`bound` > 0; the bias is negligible for small bounds).
    pub(crate) fn below(&self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}
