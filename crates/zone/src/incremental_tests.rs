//! Issue 18: a snapshot built incrementally (a kept builder taking back old
//! services' records and rendering only the names they touch) answers
//! exactly as one built from scratch from the same inputs. Random clusters,
//! random changes (services added, removed, endpoints moved, kinds changed,
//! ExternalName chains into the zone, shared pod addresses in reverse zones,
//! health verdicts), seeded so a failure replays.

use crate::PodMode;
use crate::cluster::ClusterOptions;
use crate::input::{BuildKind, BuildOptions, Builds, Input, Recipe, build};
use crate::snapshot::Snapshot;
use signpost_model::{
    AllUnhealthy, CheckProtocol, ClusterChanges, ClusterEndpoint, ClusterService, ClusterState,
    EndpointKey, HealthCheckSpec, Protocol, ServiceChange, ServiceKind, ServicePort, Verdicts,
};
use signpost_proto::Name;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// xorshift64*: enough randomness for test data, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ports(rng: &mut Rng) -> Vec<ServicePort> {
    let names = ["http", "grpc", "dns"];
    (0..rng.below(3))
        .map(|i| ServicePort {
            name: names[i as usize].to_owned(),
            protocol: if i == 2 { Protocol::Udp } else { Protocol::Tcp },
            port: 80 + i as u16,
        })
        .collect()
}

/// A random service; addresses come from a small pool so pods are shared
/// between services (PTR names with several owners) and names collide.
fn service(rng: &mut Rng, namespace: usize, name: usize) -> ClusterService {
    let address = |rng: &mut Rng| IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1 + rng.below(12) as u8));
    let kind = match rng.below(6) {
        0 | 1 => ServiceKind::ClusterIp(vec![IpAddr::V4(Ipv4Addr::new(
            10,
            96,
            namespace as u8,
            name as u8 + 1,
        ))]),
        2 => ServiceKind::ExternalName(match rng.below(3) {
            // In the zone: the chain is followed (and may end nowhere).
            0 => format!("svc-{}.ns-{}.svc.cluster.local", rng.below(6), rng.below(3)),
            1 => format!("nothing-{}.ns-0.svc.cluster.local", rng.below(2)),
            _ => "example.org".to_owned(),
        }),
        _ => ServiceKind::Headless,
    };
    let slice_ports: Arc<[ServicePort]> = ports(rng).into();
    let endpoints = (0..rng.below(5))
        .map(|i| ClusterEndpoint {
            addresses: vec![address(rng)],
            hostname: (rng.below(3) == 0).then(|| format!("host-{}", rng.below(3))),
            pod_name: Some(format!("pod-{i}")),
            ready: rng.below(5) != 0,
            ports: slice_ports.clone(),
        })
        .collect();
    ClusterService {
        namespace: format!("ns-{namespace}"),
        name: format!("svc-{name}"),
        kind,
        ports: ports(rng),
        endpoints,
        publish_not_ready: rng.below(4) == 0,
        health_check: (rng.below(3) == 0).then(|| HealthCheckSpec {
            protocol: CheckProtocol::Http,
            path: Some("/health".to_owned()),
            port: 80,
        }),
        geo: None,
        external_addresses: Vec::new(),
    }
}

fn options(rng: &mut Rng) -> ClusterOptions {
    ClusterOptions {
        zones: vec![
            Name::from_ascii("cluster.local.").unwrap(),
            Name::from_ascii("in-addr.arpa.").unwrap(),
        ],
        ttl: 30,
        pods: if rng.below(2) == 0 {
            PodMode::Insecure
        } else {
            PodMode::Disabled
        },
        endpoint_pod_names: rng.below(2) == 0,
        fallthrough: Vec::new(),
        serial: 0,
        all_unhealthy: AllUnhealthy::ServeAll,
    }
}

fn verdicts(rng: &mut Rng, services: &[Arc<ClusterService>]) -> Arc<Verdicts> {
    let mut unhealthy = std::collections::HashSet::new();
    for service in services {
        for endpoint in &service.endpoints {
            for &address in &endpoint.addresses {
                if rng.below(4) == 0 {
                    unhealthy.insert(EndpointKey {
                        namespace: service.namespace.clone(),
                        service: service.name.clone(),
                        address,
                    });
                }
            }
        }
    }
    Arc::new(Verdicts { unhealthy })
}

/// Every answer of `a` equals `b`'s: zones, names, record counts.
fn assert_same(incremental: &Snapshot, scratch: &Snapshot, context: &str) {
    assert_eq!(
        incremental.zones, scratch.zones,
        "{context}: zone answers differ"
    );
    assert_eq!(
        incremental.record_count, scratch.record_count,
        "{context}: record counts differ"
    );
    let mut left: Vec<(&[u8], _)> = incremental.names.iter().collect();
    let mut right: Vec<(&[u8], _)> = scratch.names.iter().collect();
    left.sort_by(|a, b| a.0.cmp(b.0));
    right.sort_by(|a, b| a.0.cmp(b.0));
    let names = |v: &[(&[u8], &crate::snapshot::Node)]| -> Vec<String> {
        v.iter()
            .map(|(k, _)| Name::from_wire(k).map_or_else(|| format!("{k:?}"), |n| n.to_string()))
            .collect()
    };
    assert_eq!(names(&left), names(&right), "{context}: names differ");
    for ((name, a), (_, b)) in left.iter().zip(&right) {
        assert_eq!(
            a,
            b,
            "{context}: answers of {} differ",
            Name::from_wire(name).map_or_else(String::new, |n| n.to_string())
        );
    }
    assert_eq!(incremental.names.len(), scratch.names.len());
}

/// Issue 18, "a property test that applies random deltas incrementally and
/// compares with a from-scratch build": 60 seeded clusters, 25 changes each.
#[test]
fn random_changes_build_what_a_fresh_build_builds() {
    let mut incremental_builds = 0;
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let options = options(&mut rng);
        let recipe = Recipe::Cluster(options.clone());
        let mut services: Vec<Arc<ClusterService>> = Vec::new();
        for namespace in 0..3 {
            for name in 0..rng.below(6) as usize {
                services.push(Arc::new(service(&mut rng, namespace, name)));
            }
        }
        let mut health = verdicts(&mut rng, &services);
        let mut state = Arc::new(ClusterState {
            services: services.clone(),
            revision: 1,
            ..ClusterState::default()
        });
        let mut builds = Builds::default();
        let mut serial = 1000;
        for step in 0..25u64 {
            let input = Input::Cluster(state.clone());
            let parts = [(&recipe, &input)];
            let build_options = BuildOptions {
                generation: step + 1,
                geo: None,
                health: &health,
                all_unhealthy: options.all_unhealthy,
                serial,
            };
            let (snapshot, _, kind) = builds.build(&parts, &build_options);
            if matches!(kind, BuildKind::Changes { .. }) {
                incremental_builds += 1;
            }
            let (scratch, _) = build(&parts, &build_options);
            assert_same(
                &snapshot,
                &scratch,
                &format!("seed {seed} step {step} ({kind:?})"),
            );
            // The next change: a few services replaced, added or removed,
            // sometimes new verdicts, sometimes a new serial.
            let mut changes = Vec::new();
            for _ in 0..1 + rng.below(3) {
                match rng.below(4) {
                    0 if !services.is_empty() => {
                        let at = rng.below(services.len() as u64) as usize;
                        let old = services.remove(at);
                        changes.push((Some(old), None));
                    }
                    1 => {
                        let (namespace, name) = (rng.below(3) as usize, rng.below(8) as usize);
                        let new = Arc::new(service(&mut rng, namespace, name));
                        match services
                            .iter()
                            .position(|s| s.namespace == new.namespace && s.name == new.name)
                        {
                            Some(at) => {
                                let old = std::mem::replace(&mut services[at], new.clone());
                                changes.push((Some(old), Some(new)));
                            }
                            None => {
                                services.push(new.clone());
                                changes.push((None, Some(new)));
                            }
                        }
                    }
                    _ if !services.is_empty() => {
                        let at = rng.below(services.len() as u64) as usize;
                        let old = services[at].clone();
                        let mut new = service(&mut rng, 0, 0);
                        new.namespace = old.namespace.clone();
                        new.name = old.name.clone();
                        let new = Arc::new(new);
                        services[at] = new.clone();
                        changes.push((Some(old), Some(new)));
                    }
                    _ => {}
                }
            }
            // A source reports each service once: its state before and after.
            let mut merged: Vec<ServiceChange> = Vec::new();
            for (old, new) in changes {
                let key = old
                    .as_ref()
                    .or(new.as_ref())
                    .map(|s| (s.namespace.clone(), s.name.clone()));
                match merged.iter_mut().find(|(o, n)| {
                    o.as_ref()
                        .or(n.as_ref())
                        .map(|s| (s.namespace.clone(), s.name.clone()))
                        == key
                }) {
                    Some(entry) => entry.1 = new,
                    None => merged.push((old, new)),
                }
            }
            let changes = merged;
            if rng.below(4) == 0 {
                health = verdicts(&mut rng, &services);
            }
            if rng.below(3) == 0 {
                serial += 1;
            }
            // Half the time the source says what changed, else the
            // compiler finds out by comparing.
            let says = rng.below(2) == 0;
            // The first state is revision 1; the state after step n is n + 2.
            let revision = step + 2;
            state = Arc::new(ClusterState {
                services: services.clone(),
                pods: Vec::new(),
                revision: if says { revision } else { 0 },
                changes: says.then(|| {
                    Arc::new(ClusterChanges {
                        since: state.revision,
                        services: changes,
                        pods: false,
                    })
                }),
            });
        }
    }
    assert!(
        incremental_builds > 1000,
        "only {incremental_builds} builds were incremental"
    );
}

/// An incremental build shares every name shard a change does not touch.
#[test]
fn one_change_copies_few_shards() {
    let mut rng = Rng(7);
    let options = options(&mut rng);
    let recipe = Recipe::Cluster(options.clone());
    let mut services: Vec<Arc<ClusterService>> = (0..2000)
        .map(|i| Arc::new(service(&mut rng, i % 40, i / 40)))
        .collect();
    let health = Arc::new(Verdicts::default());
    let state = Arc::new(ClusterState {
        services: services.clone(),
        ..ClusterState::default()
    });
    let input = Input::Cluster(state);
    let build_options = BuildOptions {
        generation: 1,
        geo: None,
        health: &health,
        all_unhealthy: AllUnhealthy::ServeAll,
        serial: 1,
    };
    let mut builds = Builds::default();
    let (first, _, _) = builds.build(&[(&recipe, &input)], &build_options);
    let old = services[100].clone();
    let mut new = (*old).clone();
    new.endpoints.push(ClusterEndpoint {
        addresses: vec!["10.9.9.9".parse().unwrap()],
        hostname: None,
        pod_name: None,
        ready: true,
        ports: Vec::new().into(),
    });
    let new = Arc::new(new);
    services[100] = new.clone();
    let input = Input::Cluster(Arc::new(ClusterState {
        services,
        ..ClusterState::default()
    }));
    let (second, _, kind) = builds.build(&[(&recipe, &input)], &build_options);
    assert_eq!(kind, BuildKind::Changes { services: 1 });
    let (shared, total) = second.shared_shards(&first);
    assert!(total >= 64, "{total} shards");
    assert!(
        total - shared <= 12,
        "{} of {total} shards copied",
        total - shared
    );
}

/// A first build compiles services on several threads
/// (`compile_services_parallel`); its snapshot and problems equal compiling
/// them one after another, for a cluster large enough to be cut into many
/// chunks.
#[test]
fn services_compiled_on_threads_build_the_same_snapshot() {
    use crate::builder::SnapshotBuilder;
    use crate::cluster::{compile_services, compile_services_parallel};
    let mut rng = Rng(0x18_0001);
    let options = options(&mut rng);
    let mut services: Vec<Arc<ClusterService>> = Vec::new();
    for namespace in 0..50 {
        for name in 0..180 {
            services.push(Arc::new(service(&mut rng, namespace, name)));
        }
    }
    let health = verdicts(&mut rng, &services);
    let refs: Vec<&ClusterService> = services.iter().map(|s| &**s).collect();
    let mut one = SnapshotBuilder::new(1);
    let one_problems = compile_services(&mut one, refs.iter().copied(), &options, &*health);
    let mut many = SnapshotBuilder::new(1);
    let many_problems = compile_services_parallel(&mut many, &refs, &options, &*health, 3);
    assert_eq!(one_problems, many_problems);
    assert_same(&many.build(), &one.build(), "threads");
}
