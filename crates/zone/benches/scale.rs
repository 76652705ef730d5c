//! Where the memory of a large cluster goes, and what a build costs (issue 18).
//!
//! `cargo bench -p signpost-zone --bench scale [-- SERVICES ENDPOINTS]`
//! (default 100,000 services with 10 endpoints each: 90 % ClusterIP, 10 %
//! headless, two named ports, as `bench/dns/gen.py` writes them). A counting
//! allocator reports the live heap bytes after each stage: the services as a
//! source hands them over (`ClusterState`), the builder's records, the
//! rendered snapshot; then the time of a full build and of builds after one
//! endpoint change, and the bytes the change leaves.

#![allow(unsafe_code)]
// Wall time of builds, measured once; nothing here pauses time.
#![allow(clippy::disallowed_types, clippy::print_stdout)]

use signpost_model::{
    AllUnhealthy, ClusterEndpoint, ClusterService, ClusterState, Protocol, ServiceKind,
    ServicePort, Verdicts,
};
use signpost_proto::Name;
use signpost_zone::cluster::ClusterOptions;
use signpost_zone::{BuildOptions, Builds, Input, PodMode, Recipe};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn ports() -> Vec<ServicePort> {
    vec![
        ServicePort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        },
        ServicePort {
            name: "grpc".into(),
            protocol: Protocol::Tcp,
            port: 9090,
        },
    ]
}

fn service(index: usize, endpoints: usize, headless: bool) -> ClusterService {
    let slice_ports: Arc<[ServicePort]> = ports().into();
    let base = if headless { 0x0a20_0000 } else { 0x0a40_0000 };
    ClusterService {
        namespace: format!("ns-{:04}", index % 1000),
        name: if headless {
            format!("db-{index:05}")
        } else {
            format!("svc-{index:05}")
        },
        kind: if headless {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(vec![IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + index as u32))])
        },
        ports: ports(),
        endpoints: (0..endpoints)
            .map(|e| ClusterEndpoint {
                addresses: vec![IpAddr::V4(Ipv4Addr::from(
                    base + (index * endpoints + e) as u32,
                ))],
                hostname: None,
                pod_name: Some(format!("pod-{index}-{e}")),
                ready: true,
                ports: slice_ports.clone(),
            })
            .collect(),
        publish_not_ready: false,
        health_check: None,
        geo: None,
        external_addresses: Vec::new(),
    }
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let services_count = args.first().copied().unwrap_or(100_000);
    let endpoints = args.get(1).copied().unwrap_or(10);
    let headless = services_count / 10;
    let endpoint_total = services_count * endpoints;

    let start = live();
    let services: Vec<Arc<ClusterService>> = (0..services_count)
        .map(|i| Arc::new(service(i, endpoints, i < headless)))
        .collect();
    let state = Arc::new(ClusterState {
        services: services.clone(),
        ..ClusterState::default()
    });
    let source = live() - start;

    let options = ClusterOptions {
        zones: vec![Name::from_ascii("cluster.local.").unwrap()],
        ttl: 30,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        fallthrough: Vec::new(),
        serial: 1,
        all_unhealthy: AllUnhealthy::ServeAll,
    };
    let recipe = Recipe::Cluster(options);
    let health = Arc::new(Verdicts::default());
    let input = Input::Cluster(state);
    let build_options = BuildOptions {
        generation: 1,
        geo: None,
        health: &health,
        all_unhealthy: AllUnhealthy::ServeAll,
        serial: 1,
    };
    let before_build = live();
    let timer = std::time::Instant::now();
    let cpu_before = cpu_seconds();
    let mut builds = Builds::default();
    let (snapshot, _, _) = builds.build(&[(&recipe, &input)], &build_options);
    let full = timer.elapsed();
    let full_cpu = cpu_seconds() - cpu_before;
    let kept = live() - before_build;
    // The snapshot alone: a from-scratch build dropped right after.
    let before_alone = live();
    let (alone, _) = signpost_zone::build(&[(&recipe, &input)], &build_options);
    let snapshot_bytes = live() - before_alone;
    drop(alone);

    // One endpoint change at a time, 100 times.
    let mut state_services = services;
    let mut times = Vec::new();
    let mut current = snapshot;
    let before_changes = live();
    for change in 0..100usize {
        let at = change * 7 % headless.max(1);
        let mut changed = (*state_services[at]).clone();
        changed.endpoints[0].addresses = vec![IpAddr::V4(Ipv4Addr::new(
            10,
            250,
            (change / 250) as u8,
            (change % 250 + 1) as u8,
        ))];
        state_services[at] = Arc::new(changed);
        let input = Input::Cluster(Arc::new(ClusterState {
            services: state_services.clone(),
            ..ClusterState::default()
        }));
        let options = BuildOptions {
            generation: 2 + change as u64,
            ..build_options
        };
        let timer = std::time::Instant::now();
        let (next, _, kind) = builds.build(&[(&recipe, &input)], &options);
        times.push(timer.elapsed().as_secs_f64() * 1000.0);
        assert!(matches!(kind, signpost_zone::BuildKind::Changes { .. }));
        current = next;
    }
    let after_changes = live() - before_changes;
    times.sort_by(f64::total_cmp);
    let names = current.name_count();
    println!(
        "services {services_count}, endpoints {endpoint_total}, names {names}, records {}",
        current.record_count()
    );
    println!(
        "source state (ClusterState: services, endpoints): {:.1} MiB = {:.0} B/endpoint, {:.0} B/service",
        mib(source),
        source as f64 / endpoint_total as f64,
        source as f64 / services_count as f64
    );
    println!(
        "snapshot alone: {:.1} MiB = {:.0} B/name",
        mib(snapshot_bytes),
        snapshot_bytes as f64 / names as f64
    );
    println!(
        "kept builder (records, readers, names below) + snapshot: {:.1} MiB; builder alone {:.1} MiB = {:.0} B/name",
        mib(kept),
        mib(kept - snapshot_bytes),
        (kept - snapshot_bytes) as f64 / names as f64
    );
    println!(
        "full build: {:.0} ms wall, {:.0} ms CPU (load average {})",
        full.as_secs_f64() * 1000.0,
        full_cpu * 1000.0,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    println!(
        "one endpoint change, build: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (100 changes)",
        times[50], times[98], times[99]
    );
    println!("heap after 100 changes: {:+.1} MiB", mib(after_changes));
}
