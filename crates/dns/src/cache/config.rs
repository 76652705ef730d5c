//! The `cache` plugin's settings (read by `plugins/cache.rs`; control plane).
//!
//! ```text
//! cache [TTL] [ZONES...] {
//!     success CAPACITY [TTL] [MINTTL]
//!     denial CAPACITY [TTL] [MINTTL]
//!     prefetch AMOUNT [[DURATION] [PERCENTAGE%]]
//!     serve_stale [DURATION] [immediate|verify]
//!     keepttl
//! }
//! ```
//!
//! Defaults are CoreDNS's.

use signpost_corefile::Location;
use signpost_proto::Name;
use std::time::Duration;

/// CoreDNS's default capacity of each of the two caches (256 shards × 39).
pub const DEFAULT_CAPACITY: usize = 9984;
/// CoreDNS's default maximum TTL of success answers.
pub const DEFAULT_SUCCESS_TTL: u32 = 3600;
/// CoreDNS's default maximum TTL of denials.
pub const DEFAULT_DENIAL_TTL: u32 = 1800;
/// CoreDNS's default minimum TTL of both.
pub const DEFAULT_MIN_TTL: u32 = 5;

/// The `cache` plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Zones to cache; empty means the server block's zones.
    pub zones: Vec<Name>,
    /// NOERROR answers and referrals.
    pub success: CapacityConfig,
    /// NXDOMAIN and NODATA answers.
    pub denial: CapacityConfig,
    /// Refresh popular entries before they expire.
    pub prefetch: Option<PrefetchConfig>,
    /// Serve expired entries while upstream cannot be reached.
    pub serve_stale: Option<ServeStaleConfig>,
    /// Serve the stored TTL instead of aging it (`keepttl`).
    pub keep_ttl: bool,
    /// `disable success ZONES...`: positive answers under these zones are not kept.
    pub disable_success: Vec<Name>,
    /// `disable denial ZONES...`: negative answers under these zones are not kept.
    pub disable_denial: Vec<Name>,
    /// Where the directive is.
    pub location: Location,
}

/// One of the two caches (`success` or `denial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityConfig {
    /// Most entries held; one is evicted to make room beyond it.
    pub capacity: usize,
    /// Largest TTL an entry is cached for, in seconds.
    pub max_ttl: u32,
    /// Smallest TTL an entry is cached for, in seconds.
    pub min_ttl: u32,
}

/// `prefetch AMOUNT [[DURATION] [PERCENTAGE%]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// Hits needed, with no gap of `window` or more between them.
    pub amount: u32,
    /// The longest gap between hits that keeps an entry popular (default 1m).
    pub window: Duration,
    /// Refresh once the remaining TTL is at most this share of the original (default 10).
    pub percentage: u8,
}

/// `serve_stale [DURATION] [immediate|verify]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeStaleConfig {
    /// How long after expiry an entry may still be served (default 1h).
    pub duration: Duration,
    /// When to ask upstream.
    pub mode: StaleMode,
}

/// When a stale entry is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleMode {
    /// Answer stale at once, then refresh in the background (the default).
    Immediate,
    /// Ask upstream first; answer stale only if that fails.
    Verify,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        Self {
            amount: 1,
            window: Duration::from_secs(60),
            percentage: 10,
        }
    }
}

impl CacheConfig {
    /// CoreDNS's defaults, as a bare `cache` line gives.
    pub fn new(location: Location) -> Self {
        Self {
            zones: Vec::new(),
            success: CapacityConfig {
                capacity: DEFAULT_CAPACITY,
                max_ttl: DEFAULT_SUCCESS_TTL,
                min_ttl: DEFAULT_MIN_TTL,
            },
            denial: CapacityConfig {
                capacity: DEFAULT_CAPACITY,
                max_ttl: DEFAULT_DENIAL_TTL,
                min_ttl: DEFAULT_MIN_TTL,
            },
            prefetch: None,
            serve_stale: None,
            keep_ttl: false,
            disable_success: Vec::new(),
            disable_denial: Vec::new(),
            location,
        }
    }
}
