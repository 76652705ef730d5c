//! Where a client is, and which region should answer it.
//!
//! Data plane (per query) with control-plane set-up. A [`Geo`] is built once
//! per configuration from the `geo` Corefile block: regions with coordinates,
//! exact client-network mappings, an optional MaxMind database, an optional
//! latency table and a policy. Per query, [`Geo::locate`] turns the client
//! subnet (EDNS Client Subnet, RFC 7871) or source address into a
//! [`Location`], and [`Geo::choose`] picks one of a name's regions; both
//! work on the stack without allocating, so the hot path stays a lookup.
//!
//! ```text
//! ECS subnet or source address ─▶ locate: client map (longest prefix) ─▶ home region
//!                                         └▶ GeoIP database ─▶ coordinates ─▶ nearest region
//! candidates (region, priority, healthy) ─▶ choose: policy latency | priority ─▶ index or all
//! ```

use std::net::IpAddr;
use std::path::PathBuf;

/// A region with its coordinates (degrees).
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Name, as in `dns.aikernel.io/geo-region`.
    pub name: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
}

/// An exact client-network mapping: `client CIDR REGION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNetwork {
    /// Network address.
    pub address: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// Index into the regions.
    pub region: usize,
}

/// How a region is chosen among the healthy ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The lowest expected latency; ties by priority.
    #[default]
    Latency,
    /// The lowest priority number; ties by latency.
    Priority,
}

/// The `geo` block, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeoSettings {
    /// Regions, in configuration order (their index is their identity).
    pub regions: Vec<Region>,
    /// Client networks.
    pub clients: Vec<ClientNetwork>,
    /// Explicit latencies in milliseconds: (from region, to region, ms).
    pub latency: Vec<(usize, usize, u32)>,
    /// A MaxMind-format database for client coordinates.
    pub mmdb: Option<PathBuf>,
    /// Region choice.
    pub policy: Policy,
    /// Use the EDNS Client Subnet option when a query carries one.
    pub ecs: bool,
    /// TTL of geographic answers.
    pub ttl: u32,
}

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoError {
    /// The GeoIP database could not be opened.
    #[error("cannot open the GeoIP database {path}")]
    Database {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: maxminddb::MaxMindDbError,
    },
}

/// How the client was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationSource {
    /// A `client` mapping matched.
    ClientNetwork,
    /// The GeoIP database placed it.
    Database,
    /// Nothing placed it.
    Unknown,
}

/// A located client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    /// The region the client belongs to (mapped, or nearest to its coordinates).
    pub home: Option<usize>,
    /// The client's coordinates, when the database knew them.
    pub coordinates: Option<(f64, f64)>,
    /// How many leading bits of the client address decided this (the ECS scope).
    pub scope: u8,
    /// How it was placed.
    pub source: LocationSource,
}

/// One region serving a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index into the regions.
    pub region: usize,
    /// Lower wins under `policy priority` (`dns.aikernel.io/geo-priority`, default 100).
    pub priority: u32,
    /// At least one healthy endpoint (or no health checks).
    pub healthy: bool,
}

/// Why a candidate was chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Lowest expected latency in milliseconds among healthy regions.
    Latency(f64),
    /// Lowest priority among healthy regions.
    Priority(u32),
    /// Every region is unhealthy: all are served (fail open).
    AllUnhealthy,
}

/// Regions, client placement and the policy, ready for queries.
#[derive(Debug)]
pub struct Geo {
    settings: GeoSettings,
    /// Latency by `from * regions + to`, in milliseconds.
    latency: Vec<Option<u32>>,
    database: Option<maxminddb::Reader<Vec<u8>>>,
}

/// Coordinates as the GeoIP database stores them; decoding borrows, no allocation.
#[derive(serde::Deserialize)]
struct DatabaseRecord {
    location: Option<DatabaseLocation>,
}

#[derive(serde::Deserialize)]
struct DatabaseLocation {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// Mean Earth radius, km.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// Expected round trip per km of great-circle distance: light in fibre covers
/// about 200 km per ms one way, so 100 km per ms of round trip.
const KM_PER_MS: f64 = 100.0;

// === impl Geo ===

impl Geo {
    /// Opens the database (if any) and indexes the latency table.
    pub fn new(mut settings: GeoSettings) -> Result<Self, GeoError> {
        let database = match &settings.mmdb {
            Some(path) => Some(maxminddb::Reader::open_readfile(path).map_err(|source| {
                GeoError::Database {
                    path: path.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let count = settings.regions.len();
        let mut latency = vec![None; count * count];
        for &(from, to, ms) in &settings.latency {
            if from < count && to < count {
                latency[from * count + to] = Some(ms);
            }
        }
        // Longest prefix first, so the first match is the most specific.
        settings
            .clients
            .sort_by_key(|c| std::cmp::Reverse(c.prefix));
        Ok(Self {
            settings,
            latency,
            database,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &GeoSettings {
        &self.settings
    }

    /// Places a client given its address and, for an ECS subnet, its source
    /// prefix length (a mapping more specific than the subnet cannot match).
    pub fn locate(&self, address: IpAddr, source_prefix: Option<u8>) -> Location {
        let address = canonical(address);
        for client in &self.settings.clients {
            if source_prefix.is_some_and(|p| p < client.prefix) {
                continue;
            }
            if same_network(address, client.address, client.prefix) {
                return Location {
                    home: Some(client.region),
                    coordinates: None,
                    scope: client.prefix,
                    source: LocationSource::ClientNetwork,
                };
            }
        }
        if let Some(database) = &self.database
            && let Ok(result) = database.lookup(address)
            && let Ok(Some(record)) = result.decode::<DatabaseRecord>()
            && let Some(DatabaseLocation {
                latitude: Some(latitude),
                longitude: Some(longitude),
            }) = record.location
        {
            let scope = result.network().map_or(0, |n| n.prefix());
            let scope = source_prefix.map_or(scope, |p| scope.min(p));
            return Location {
                home: self.nearest(latitude, longitude),
                coordinates: Some((latitude, longitude)),
                scope,
                source: LocationSource::Database,
            };
        }
        Location {
            home: None,
            coordinates: None,
            scope: 0,
            source: LocationSource::Unknown,
        }
    }

    fn nearest(&self, latitude: f64, longitude: f64) -> Option<usize> {
        self.settings
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (i, distance_km(latitude, longitude, r.latitude, r.longitude)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Expected latency from the client to a region, in milliseconds: the
    /// latency table from the client's home region when it has an entry,
    /// else great-circle distance from the client (or its home region).
    pub fn cost(&self, location: &Location, region: usize) -> f64 {
        let count = self.settings.regions.len();
        if let Some(ms) = location
            .home
            .and_then(|home| self.latency.get(home * count + region).copied().flatten())
        {
            return f64::from(ms);
        }
        let Some(target) = self.settings.regions.get(region) else {
            return f64::MAX;
        };
        let from = location.coordinates.or_else(|| {
            location
                .home
                .and_then(|h| self.settings.regions.get(h))
                .map(|r| (r.latitude, r.longitude))
        });
        match from {
            Some((latitude, longitude)) => {
                distance_km(latitude, longitude, target.latitude, target.longitude) / KM_PER_MS
            }
            // Unplaced clients see every region as equally far.
            None => 0.0,
        }
    }

    /// Picks a candidate by the policy among healthy ones; `None` when none
    /// is healthy (serve them all). Ties go to the earlier candidate.
    pub fn choose(&self, location: &Location, candidates: &[Candidate]) -> (Option<usize>, Reason) {
        let mut best: Option<(usize, f64, u32)> = None;
        for (index, candidate) in candidates.iter().enumerate().filter(|(_, c)| c.healthy) {
            let cost = self.cost(location, candidate.region);
            let better = match best {
                None => true,
                Some((_, best_cost, best_priority)) => match self.settings.policy {
                    Policy::Latency => {
                        cost < best_cost
                            || (cost == best_cost && candidate.priority < best_priority)
                    }
                    Policy::Priority => {
                        candidate.priority < best_priority
                            || (candidate.priority == best_priority && cost < best_cost)
                    }
                },
            };
            if better {
                best = Some((index, cost, candidate.priority));
            }
        }
        match best {
            None => (None, Reason::AllUnhealthy),
            Some((index, cost, priority)) => match self.settings.policy {
                Policy::Latency => (Some(index), Reason::Latency(cost)),
                Policy::Priority => (Some(index), Reason::Priority(priority)),
            },
        }
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 clients.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// True when the first `prefix` bits of `a` and `network` agree (same family).
pub fn same_network(a: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (a, network) {
        (IpAddr::V4(x), IpAddr::V4(y)) => prefix_equal(&x.octets(), &y.octets(), prefix),
        (IpAddr::V6(x), IpAddr::V6(y)) => prefix_equal(&x.octets(), &y.octets(), prefix),
        _ => false,
    }
}

fn prefix_equal(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let prefix = usize::from(prefix).min(a.len() * 8);
    let whole = prefix / 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = prefix % 8;
    rest == 0 || (a[whole] ^ b[whole]) & (0xff << (8 - rest)) == 0
}

/// Great-circle distance (haversine), km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().asin()
}

#[cfg(test)]
mod tests;
