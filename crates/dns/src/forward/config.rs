//! The `forward` plugin's settings (read by `plugins/forward.rs`).
//!
//! Control plane. Syntax (CoreDNS):
//!
//! ```text
//! forward FROM TO... {
//!     except IGNORED_NAMES...
//!     force_tcp
//!     prefer_udp
//!     expire DURATION
//!     max_fails INTEGER
//!     health_check DURATION [no_rec] [domain FQDN]
//!     policy random|round_robin|sequential
//!     max_concurrent MAX
//!     failfast_all_unhealthy_upstreams
//! }
//! ```
//!
//! `TO` is `IP`, `IP:PORT`, `[IPv6]:PORT`, any of those behind `dns://`, or
//! the path of a `resolv.conf`-style file whose `nameserver` lines are read
//! (relative paths are taken from the Corefile's directory).

use signpost_corefile::Location;
use signpost_proto::Name;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The most one exchange with one upstream may take before the next upstream
/// is tried. CoreDNS adapts its read timeout to observed latency; a fixed 2 s
/// keeps two fail-overs inside the default 5 s query timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The port an upstream without one gets.
pub const DEFAULT_UPSTREAM_PORT: u16 = 53;
/// CoreDNS refuses more upstreams than this.
pub const MAX_UPSTREAMS: usize = 15;

/// A validated `forward` plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The zone whose names are forwarded (`FROM`, usually the root).
    pub from: Name,
    /// Names under `from` that are not forwarded (`except`).
    pub except: Vec<Name>,
    /// Where queries go, in the order written (`TO`).
    pub upstreams: Vec<SocketAddr>,
    /// Always use TCP to the upstreams (`force_tcp`).
    pub force_tcp: bool,
    /// Use UDP first even for clients that came over TCP (`prefer_udp`).
    pub prefer_udp: bool,
    /// Lifetime of kept sockets (`expire`, default 10 s): a TCP connection
    /// idle this long is closed (as CoreDNS), and a pooled UDP socket takes
    /// new queries for this long after it opens, then closes once its last
    /// query is answered.
    pub expire: Duration,
    /// Consecutive failures after which an upstream is down (`max_fails`,
    /// default 2). 0 turns health tracking off: every upstream is always up.
    pub max_fails: u32,
    /// Interval between health probes of a down upstream (`health_check`, default 0.5 s).
    pub health_check: Duration,
    /// Set RD on health probes (cleared by `health_check ... no_rec`).
    pub health_check_recursion: bool,
    /// The name health probes ask `NS` for (`health_check ... domain FQDN`, default the root).
    pub health_check_domain: Name,
    /// How the upstream order is chosen for each query (`policy`, default random).
    pub policy: Policy,
    /// Client queries in flight above which new ones are refused (`max_concurrent`).
    pub max_concurrent: Option<usize>,
    /// With every upstream down, fail at once instead of trying one anyway
    /// (`failfast_all_unhealthy_upstreams`).
    pub fail_fast_all_down: bool,
    /// The most a client query waits for the whole exchange, fail-overs
    /// included. Not a Corefile option; CoreDNS uses 5 s.
    pub timeout: Duration,
    /// Where the directive is.
    pub location: Location,
}

/// The order in which upstreams are tried (`policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// A fresh random order per query.
    #[default]
    Random,
    /// Rotate the starting upstream by one per query.
    RoundRobin,
    /// Always the written order: the first healthy upstream gets every query.
    Sequential,
}

impl ForwardConfig {
    /// A configuration with CoreDNS's defaults, forwarding `from` to `upstreams`.
    pub fn new(from: Name, upstreams: Vec<SocketAddr>) -> Self {
        Self {
            from,
            except: Vec::new(),
            upstreams,
            force_tcp: false,
            prefer_udp: false,
            expire: Duration::from_secs(10),
            max_fails: 2,
            health_check: Duration::from_millis(500),
            health_check_recursion: true,
            health_check_domain: Name::root(),
            policy: Policy::Random,
            max_concurrent: None,
            fail_fast_all_down: false,
            timeout: Duration::from_secs(5),
            location: Location {
                file: Path::new("").into(),
                line: 0,
            },
        }
    }
}
