//! The `cache` plugin: upstream answers kept and replayed without locks.
//!
//! Data plane reads, control plane writes. UDP workers call [`Cache::lookup`]
//! and, on a hit, [`Entry::write`] straight into their buffer: a hash lookup in
//! a lock-free map (`papaya`), one `Arc` clone, a copy with TTLs patched. No
//! lock, no `.await`, no allocation (`tests/cache_alloc.rs`). Inserts come from
//! the forwarder's replies on the tokio runtime and are serialized by one short
//! synchronous mutex that only writers take (it guards the eviction bookkeeping;
//! nothing awaits while it is held, and lookups never touch it).
//!
//! ```text
//! worker: parse_query ─▶ not authoritative ─▶ cache.lookup(query, now)
//!    Hit(entry)   ─▶ entry.write(..) ─▶ send;  cache.wants_prefetch(&entry, now)? ─▶ spawn refresh
//!    Stale(entry) ─▶ immediate: entry.write(..) (TTL 0), note_served_stale(),
//!                    claim_refresh(&entry)? ─▶ spawn refresh
//!                    verify: forward first; on failure entry.write(..) (TTL 0), note_served_stale()
//!    Miss         ─▶ forward ─▶ reply ─▶ cache.insert(query, reply, now) ─▶ Some(entry) ─▶ entry.write(..)
//!                                                                        None ─▶ relay the reply itself
//! refresh: forward ─▶ cache.insert(..) replaces the entry (hit counts carried over);
//!          on failure cache.refresh_failed(&entry) so a later hit may try again
//! ```
//!
//! Keys are (lower-case qname, qtype, qclass, DO, CD), built on the stack for
//! lookups, and hashed with foldhash under a key drawn from the operating
//! system's randomness once per process (plus one per cache). Clients choose
//! the names, so a hash they could predict would let them fill one bucket
//! (hash flooding); foldhash with a secret seed has no seed-independent
//! collisions, and nothing here shows a client a hash or the map's order.
//! It replaced SipHash, which took about 6 % of a cache hit. Each of the two caches (success, denial) holds at most its
//! capacity. Eviction when one is full: sample four of its entries at random
//! and evict the one that expires soonest, so expired entries go first and
//! otherwise the choice is close to CoreDNS's random eviction. Entries are not
//! removed when they expire: a lookup ignores them (or serves them stale) and
//! the next insert for the key replaces them, as in CoreDNS.
//!
//! Invariants: every map write happens under the writers' mutex, so the map
//! and the per-kind resident lists agree; a resident list never grows past its
//! capacity.

mod answer;
mod config;
mod metrics;
#[cfg(test)]
mod tests;

pub use answer::{CachedAnswer, Kind, Rejection, STALE_TTL, TtlBounds, write_cached};
pub use config::{
    CacheConfig, CapacityConfig, DEFAULT_CAPACITY, DEFAULT_DENIAL_TTL, DEFAULT_MIN_TTL,
    DEFAULT_SUCCESS_TTL, PrefetchConfig, ServeStaleConfig, StaleMode,
};
pub use metrics::{CacheMetrics, render_all};

use signpost_proto::{MAX_NAME_LEN, Name, Query, ResponseMeta, is_within_wire, rtype};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The outcome of a lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A fresh entry: write it.
    Hit(Arc<Entry>),
    /// Expired, but within the `serve_stale` window.
    Stale(Arc<Entry>),
    /// Nothing usable (also for names outside the cached zones, uncounted).
    Miss,
}

/// A cached answer and its bookkeeping.
#[derive(Debug)]
pub struct Entry {
    answer: CachedAnswer,
    key: Arc<[u8]>,
    /// Index in the resident list of its kind; only changed under the writers' mutex.
    slot: AtomicUsize,
    /// Hits with no gap of the prefetch window between them (CoreDNS's `freq`).
    hits: AtomicU32,
    /// Time of the last hit, in nanoseconds since the cache's epoch.
    last_hit: AtomicU64,
    /// A prefetch or stale refresh is in flight.
    refreshing: AtomicBool,
}

/// The cache of one listener.
#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    zones: Vec<Name>,
    map: papaya::HashMap<Arc<[u8]>, Arc<Entry>, KeyHasher>,
    writers: Mutex<Residents>,
    metrics: CacheMetrics,
    epoch: Instant,
}

/// The entries of each kind, for eviction. Guarded by the writers' mutex.
#[derive(Debug)]
struct Residents {
    kinds: [Vec<Arc<Entry>>; 2],
    rng: u64,
}

/// The key hash: foldhash, keyed per process and per cache (see the module notes).
type KeyHasher = foldhash::fast::SeedableRandomState;

/// A key hasher under secret random seeds: a process-wide one from the
/// operating system's randomness (std's `RandomState` keys), and one per cache.
fn key_hasher() -> KeyHasher {
    static SHARED: std::sync::OnceLock<foldhash::SharedSeed> = std::sync::OnceLock::new();
    let random = std::collections::hash_map::RandomState::new();
    let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(random.hash_one(0u64)));
    KeyHasher::with_seed(random.hash_one(1u64), shared)
}

/// The map's first size; it grows with what is cached, up to the capacity.
const INITIAL_SLOTS: usize = 1024;

/// Entries sampled per eviction.
const EVICTION_SAMPLES: usize = 4;

/// Key bytes: flags (DO, CD), qtype, qclass, then the lower-case qname.
const KEY_PREFIX_LEN: usize = 5;

/// A lookup key on the stack.
struct Key {
    bytes: [u8; KEY_PREFIX_LEN + MAX_NAME_LEN],
    len: usize,
}

// === impl Key ===

impl Key {
    fn of(query: &Query<'_>) -> Self {
        let qname = query.qname_lower();
        let mut bytes = [0u8; KEY_PREFIX_LEN + MAX_NAME_LEN];
        let dnssec_ok = query.edns.is_some_and(|edns| edns.dnssec_ok);
        bytes[0] = u8::from(dnssec_ok) | u8::from(query.checking_disabled()) << 1;
        bytes[1..3].copy_from_slice(&query.qtype.to_be_bytes());
        bytes[3..5].copy_from_slice(&query.qclass.to_be_bytes());
        bytes[KEY_PREFIX_LEN..KEY_PREFIX_LEN + qname.len()].copy_from_slice(qname);
        Self {
            bytes,
            len: KEY_PREFIX_LEN + qname.len(),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

// === impl Entry ===

impl Entry {
    /// The stored answer.
    pub fn answer(&self) -> &CachedAnswer {
        &self.answer
    }

    /// Success or denial.
    pub fn kind(&self) -> Kind {
        self.answer.kind()
    }

    /// Writes the entry as the answer to `query` (see [`write_cached`]).
    pub fn write(
        &self,
        query: &Query<'_>,
        now: Instant,
        out: &mut [u8],
        limit: usize,
    ) -> ResponseMeta {
        write_cached(query, &self.answer, now, out, limit)
    }

    /// Hits counted toward prefetching.
    pub fn hits(&self) -> u32 {
        self.hits.load(Relaxed)
    }

    /// CoreDNS's frequency counter: a gap longer than `window` starts the count again.
    fn record_hit(&self, now_nanos: u64, window: Duration) {
        let last = self.last_hit.swap(now_nanos, Relaxed);
        if u128::from(now_nanos.saturating_sub(last)) > window.as_nanos() {
            self.hits.store(1, Relaxed);
        } else {
            self.hits.fetch_add(1, Relaxed);
        }
    }
}

// === impl Cache ===

impl Cache {
    /// A cache for a listener called `server` whose block zones are `block_zones`
    /// (used when the directive names none). The eviction sampler is seeded randomly.
    pub fn new(config: CacheConfig, block_zones: &[Name], server: String) -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0u64);
        Self::with_seed(config, block_zones, server, seed)
    }

    /// [`Self::new`] with a fixed seed for the eviction sampler (deterministic tests).
    pub fn with_seed(config: CacheConfig, block_zones: &[Name], server: String, seed: u64) -> Self {
        let zones = if config.zones.is_empty() {
            block_zones.to_vec()
        } else {
            config.zones.clone()
        };
        let label = zones
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Self {
            // Sized for what is cached, not for the capacity: a table sized
            // for 2,000,000 entries holding 11,000 spreads them over 30 MB,
            // and every hit then misses the CPU caches and the TLB (a third
            // of a hit's user time). The table doubles as it fills
            // (incrementally, on inserts; lookups never wait).
            map: papaya::HashMap::with_capacity_and_hasher(
                (config.success.capacity + config.denial.capacity).min(INITIAL_SLOTS),
                key_hasher(),
            ),
            writers: Mutex::new(Residents {
                kinds: [Vec::new(), Vec::new()],
                rng: seed | 1,
            }),
            metrics: CacheMetrics::new(server, label),
            epoch: Instant::now(),
            zones,
            config,
        }
    }

    /// The configuration (the integrator reads `prefetch` and `serve_stale` here).
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The counters.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// Entries held now, success and denial.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether answers to `query` may be cached: its name is in the cached zones
    /// and it is not a zone transfer or meta query (CoreDNS caches neither).
    pub fn covers(&self, query: &Query<'_>) -> bool {
        // TKEY 249, TSIG 250, IXFR 251, AXFR 252, and the OPT pseudo-type.
        if (249..=252).contains(&query.qtype) || query.qtype == rtype::OPT {
            return false;
        }
        let qname = query.qname_lower();
        self.zones
            .iter()
            .any(|zone| is_within_wire(qname, zone.as_wire()))
    }

    /// Looks `query` up. Lock-free and allocation-free; counts requests, hits and
    /// misses, and the entry's hits for prefetching.
    pub fn lookup(&self, query: &Query<'_>, now: Instant) -> Lookup {
        if !self.covers(query) {
            return Lookup::Miss;
        }
        CacheMetrics::count(&self.metrics.requests);
        let key = Key::of(query);
        let entry = {
            let guard = self.map.guard();
            self.map.get(key.as_bytes(), &guard).cloned()
        };
        let Some(entry) = entry else {
            CacheMetrics::count(&self.metrics.misses);
            return Lookup::Miss;
        };
        let fresh = entry.answer.remaining_ttl(now) > 0;
        let stale = !fresh
            && self.config.serve_stale.is_some_and(|stale| {
                now.saturating_duration_since(entry.answer.expires()) < stale.duration
            });
        if !fresh && !stale {
            CacheMetrics::count(&self.metrics.misses);
            return Lookup::Miss;
        }
        // CoreDNS counts a stale entry found within the window as a hit too.
        CacheMetrics::count(&self.metrics.hits[entry.kind() as usize]);
        if let Some(prefetch) = self.config.prefetch {
            entry.record_hit(self.nanos(now), prefetch.window);
        }
        if fresh {
            Lookup::Hit(entry)
        } else {
            Lookup::Stale(entry)
        }
    }

    /// Whether a hit on `entry` should start a background refresh now, and if so
    /// claims it (true once per entry until [`Self::refresh_failed`] or a new entry).
    ///
    /// CoreDNS: the entry was asked `AMOUNT` times with no gap of `DURATION`,
    /// and its remaining TTL is at most `PERCENTAGE` of its original TTL, rounded
    /// up to whole seconds (so at the latest 1 s before it expires).
    pub fn wants_prefetch(&self, entry: &Entry, now: Instant) -> bool {
        let Some(prefetch) = self.config.prefetch else {
            return false;
        };
        let remaining = entry.answer.remaining_ttl(now);
        let threshold =
            (u64::from(entry.answer.ttl()) * u64::from(prefetch.percentage)).div_ceil(100);
        if remaining == 0 || u64::from(remaining) > threshold || entry.hits() < prefetch.amount {
            return false;
        }
        if !self.claim_refresh(entry) {
            return false;
        }
        CacheMetrics::count(&self.metrics.prefetches);
        true
    }

    /// Claims the one background refresh of `entry` (a stale entry in `immediate`
    /// mode); false if one is already in flight.
    pub fn claim_refresh(&self, entry: &Entry) -> bool {
        entry
            .refreshing
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_ok()
    }

    /// Releases the claim after a refresh that brought no cacheable answer.
    pub fn refresh_failed(&self, entry: &Entry) {
        entry.refreshing.store(false, Relaxed);
    }

    /// Counts an answer written from a stale entry (`coredns_cache_served_stale_total`).
    pub fn note_served_stale(&self) {
        CacheMetrics::count(&self.metrics.served_stale);
    }

    /// Stores `reply`, the upstream answer to `query`, replacing any entry for the
    /// same key. `None` when it is not cacheable (outside the zones, a transfer,
    /// malformed, truncated, an error RCODE, or a different question, which
    /// counts as a drop). Control plane: allocates and takes the writers' mutex.
    pub fn insert(&self, query: &Query<'_>, reply: &[u8], now: Instant) -> Option<Arc<Entry>> {
        if !self.covers(query) {
            return None;
        }
        let bounds = |c: CapacityConfig| TtlBounds {
            max_ttl: c.max_ttl,
            min_ttl: c.min_ttl,
        };
        let answer = match CachedAnswer::try_new(
            query,
            reply,
            bounds(self.config.success),
            bounds(self.config.denial),
            self.config.keep_ttl,
            now,
        ) {
            Ok(answer) => answer,
            Err(Rejection::QuestionMismatch) => {
                CacheMetrics::count(&self.metrics.drops);
                return None;
            }
            Err(_) => return None,
        };
        let kind = answer.kind();
        // `disable success|denial ZONES`: answers of that kind under those zones are not kept.
        let disabled = match kind {
            Kind::Success => &self.config.disable_success,
            Kind::Denial => &self.config.disable_denial,
        };
        if disabled
            .iter()
            .any(|zone| is_within_wire(query.qname_lower(), zone.as_wire()))
        {
            return None;
        }
        let key: Arc<[u8]> = Arc::from(Key::of(query).as_bytes());
        let entry = Arc::new(Entry {
            answer,
            key: Arc::clone(&key),
            slot: AtomicUsize::new(0),
            hits: AtomicU32::new(0),
            last_hit: AtomicU64::new(self.nanos(now)),
            refreshing: AtomicBool::new(false),
        });

        let mut residents = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        let guard = self.map.guard();
        if let Some(old) = self.map.get(&key[..], &guard) {
            // A refresh keeps the popularity of what it replaces (CoreDNS resets
            // the new item's frequency to the old hit count).
            entry.hits.store(old.hits(), Relaxed);
            entry.last_hit.store(old.last_hit.load(Relaxed), Relaxed);
            residents.remove(old);
        }
        let capacity = match kind {
            Kind::Success => self.config.success.capacity,
            Kind::Denial => self.config.denial.capacity,
        };
        while residents.kinds[kind as usize].len() >= capacity.max(1) {
            let victim = residents.pick_victim(kind);
            self.map.remove(&victim.key[..], &guard);
            residents.remove(&victim);
            CacheMetrics::count(&self.metrics.evictions[kind as usize]);
        }
        self.map.insert(key, Arc::clone(&entry), &guard);
        residents.push(Arc::clone(&entry));
        for kind in [Kind::Success, Kind::Denial] {
            self.metrics.entries[kind as usize]
                .store(residents.kinds[kind as usize].len() as u64, Relaxed);
        }
        Some(entry)
    }

    /// Renders this cache's metrics with HELP and TYPE lines (several listeners:
    /// [`render_all`]).
    pub fn render(&self, out: &mut String) {
        render_all([&self.metrics], out);
    }

    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

// === impl Residents ===

impl Residents {
    fn push(&mut self, entry: Arc<Entry>) {
        let list = &mut self.kinds[entry.kind() as usize];
        entry.slot.store(list.len(), Relaxed);
        list.push(entry);
    }

    fn remove(&mut self, entry: &Entry) {
        let list = &mut self.kinds[entry.kind() as usize];
        let slot = entry.slot.load(Relaxed);
        debug_assert!(std::ptr::eq(Arc::as_ptr(&list[slot]), entry));
        list.swap_remove(slot);
        if let Some(moved) = list.get(slot) {
            moved.slot.store(slot, Relaxed);
        }
    }

    /// Samples a few entries of `kind` and returns the one that expires soonest.
    fn pick_victim(&mut self, kind: Kind) -> Arc<Entry> {
        let len = self.kinds[kind as usize].len();
        let mut best: Option<usize> = None;
        for _ in 0..EVICTION_SAMPLES.min(len) {
            let index = (self.next_random() % len as u64) as usize;
            let list = &self.kinds[kind as usize];
            if best.is_none_or(|b| list[index].answer.expires() < list[b].answer.expires()) {
                best = Some(index);
            }
        }
        Arc::clone(&self.kinds[kind as usize][best.unwrap_or(0)])
    }

    /// xorshift64*: cheap, seedable, good enough to pick eviction samples.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
