//! Placement and region choice (issue 5): client networks, distance, the
//! latency table, both policies, fail open.

use super::*;

fn region(name: &str, latitude: f64, longitude: f64) -> Region {
    Region {
        name: name.into(),
        latitude,
        longitude,
    }
}

fn settings(policy: Policy) -> GeoSettings {
    GeoSettings {
        regions: vec![
            region("us-east-1", 38.9, -77.0),
            region("eu-west-1", 53.3, -6.3),
            region("ap-southeast-1", 1.35, 103.8),
        ],
        clients: vec![
            ClientNetwork {
                address: "127.0.1.0".parse().unwrap(),
                prefix: 24,
                region: 0,
            },
            ClientNetwork {
                address: "127.0.2.0".parse().unwrap(),
                prefix: 24,
                region: 1,
            },
            ClientNetwork {
                address: "127.0.0.0".parse().unwrap(),
                prefix: 8,
                region: 2,
            },
            ClientNetwork {
                address: "fd00::".parse().unwrap(),
                prefix: 16,
                region: 1,
            },
        ],
        latency: vec![],
        mmdb: None,
        policy,
        ecs: true,
        ttl: 30,
    }
}

fn all_healthy() -> Vec<Candidate> {
    (0..3)
        .map(|region| Candidate {
            region,
            priority: 100,
            healthy: true,
        })
        .collect()
}

/// The longest matching client network wins and sets the ECS scope.
#[test]
fn client_networks_longest_prefix() {
    let geo = Geo::new(settings(Policy::Latency)).unwrap();
    let near = geo.locate("127.0.2.9".parse().unwrap(), None);
    assert_eq!((near.home, near.scope), (Some(1), 24));
    let wide = geo.locate("127.9.9.9".parse().unwrap(), None);
    assert_eq!((wide.home, wide.scope), (Some(2), 8));
    let v6 = geo.locate("fd00::1".parse().unwrap(), None);
    assert_eq!(v6.home, Some(1));
    // An ECS /16 cannot decide a /24 mapping; the /8 still matches.
    let coarse = geo.locate("127.0.2.0".parse().unwrap(), Some(16));
    assert_eq!(coarse.home, Some(2));
    let unknown = geo.locate("192.0.2.1".parse().unwrap(), None);
    assert_eq!(unknown.source, LocationSource::Unknown);
}

/// Policy latency: the home region, else the nearest by distance.
#[test]
fn latency_policy_prefers_home_then_nearest() {
    let geo = Geo::new(settings(Policy::Latency)).unwrap();
    let location = geo.locate("127.0.1.5".parse().unwrap(), None);
    assert_eq!(geo.choose(&location, &all_healthy()).0, Some(0));
    let mut without_home = all_healthy();
    without_home[0].healthy = false;
    // From us-east-1, eu-west-1 (~5,500 km) is nearer than ap-southeast-1 (~15,500 km).
    assert_eq!(geo.choose(&location, &without_home).0, Some(1));
}

/// A latency table entry beats distance.
#[test]
fn latency_table_overrides_distance() {
    let mut config = settings(Policy::Latency);
    config.latency = vec![(0, 2, 20), (0, 1, 90)];
    let geo = Geo::new(config).unwrap();
    let location = geo.locate("127.0.1.5".parse().unwrap(), None);
    let mut without_home = all_healthy();
    without_home[0].healthy = false;
    assert_eq!(geo.choose(&location, &without_home).0, Some(2));
}

/// Policy priority: the lowest priority among healthy regions, whatever the distance.
#[test]
fn priority_policy_ignores_distance() {
    let geo = Geo::new(settings(Policy::Priority)).unwrap();
    let location = geo.locate("127.0.1.5".parse().unwrap(), None);
    let mut candidates = all_healthy();
    candidates[2].priority = 1;
    assert_eq!(
        geo.choose(&location, &candidates),
        (Some(2), Reason::Priority(1))
    );
    candidates[2].healthy = false;
    // Equal priorities: latency breaks the tie, home first.
    assert_eq!(geo.choose(&location, &candidates).0, Some(0));
}

/// No healthy region: serve all (fail open).
#[test]
fn all_unhealthy_fails_open() {
    let geo = Geo::new(settings(Policy::Latency)).unwrap();
    let location = geo.locate("127.0.1.5".parse().unwrap(), None);
    let down: Vec<Candidate> = all_healthy()
        .into_iter()
        .map(|c| Candidate {
            healthy: false,
            ..c
        })
        .collect();
    assert_eq!(geo.choose(&location, &down), (None, Reason::AllUnhealthy));
}

/// Great-circle distance London–New York is about 5,570 km.
#[test]
fn haversine() {
    let km = distance_km(51.5074, -0.1278, 40.7128, -74.0060);
    assert!((km - 5570.0).abs() < 30.0, "{km}");
}
