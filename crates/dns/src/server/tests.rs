//! Sources push: a state a source delivers reaches answers at once, with no
//! polling interval in between (issue 10, "Sources push").

use super::*;
use crate::config::{ListenerConfig, SourcePlan};
use crate::testing::{query, udp_ask_within};
use hickory_proto::rr::RecordType;
use signpost_corefile::Location;
use signpost_model::{AllUnhealthy, ClusterService, ClusterState, ServiceKind};
use signpost_proto::Name;
use signpost_zone::cluster::ClusterOptions;
use signpost_zone::{PodMode, Recipe};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// A source that delivers whatever the test sends it, when it sends it.
struct PushedSource(mpsc::UnboundedReceiver<Vec<ClusterService>>);

impl Source<Input> for PushedSource {
    fn kind(&self) -> &'static str {
        "test"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Input>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        let mut receiver = self.0;
        Box::pin(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    services = receiver.recv() => match services {
                        Some(services) => sink.state(Input::Cluster(Arc::new(ClusterState { services, pods: Vec::new() }))),
                        None => return,
                    },
                }
            }
        })
    }
}

fn service(index: u8) -> ClusterService {
    ClusterService {
        namespace: "default".to_owned(),
        name: format!("svc-{index}"),
        kind: ServiceKind::ClusterIp(vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, index))]),
        ports: Vec::new(),
        endpoints: Vec::new(),
        publish_not_ready: false,
        health_check: None,
        geo: None,
        external_addresses: Vec::new(),
    }
}

/// Twenty updates pushed one after another each reach answers; the median
/// time from push to answer is within 50 ms (a compiler that polled its
/// sources every 250 ms would take 125 ms on average), and none takes longer
/// than a generous 5 s on a loaded machine.
#[test]
fn pushed_state_reaches_answers_at_once() {
    let (sender, receiver) = mpsc::unbounded_channel();
    let receiver = Mutex::new(Some(receiver));
    let factory: SourceFactory = Arc::new(move |_spec: &SourceSpec| {
        let receiver = receiver
            .lock()
            .unwrap()
            .take()
            .expect("one source is opened");
        Box::new(PushedSource(receiver)) as Box<dyn Source<Input>>
    });
    let zone = Name::from_ascii("cluster.local").unwrap();
    let listener = ListenerConfig {
        addresses: vec!["127.0.0.1:0".parse().unwrap()],
        zones: vec![zone.clone()],
        sources: vec![SourcePlan {
            spec: SourceSpec::Catalog {
                paths: vec![PathBuf::from("unused")],
                poll: Duration::from_secs(3600),
            },
            recipe: Recipe::Cluster(ClusterOptions {
                zones: vec![zone],
                ttl: 30,
                pods: PodMode::Disabled,
                endpoint_pod_names: false,
                fallthrough: Vec::new(),
                serial: 0,
                all_unhealthy: AllUnhealthy::ServeAll,
            }),
            location: Location {
                file: std::path::Path::new("test").into(),
                line: 1,
            },
        }],
        ..ListenerConfig::default()
    };
    let config = Config {
        listeners: vec![listener],
        ..Config::default()
    };
    let options = RunOptions {
        workers: 1,
        ..RunOptions::default()
    };
    let server = Server::start(config, factory, options).expect("server starts");
    let address = server.local_addresses()[0];
    let mut latencies = Vec::new();
    for index in 1..=20u8 {
        let services: Vec<ClusterService> = (1..=index).map(service).collect();
        let name = format!("svc-{index}.default.svc.cluster.local");
        let pushed = tokio::time::Instant::now();
        sender.send(services).unwrap();
        loop {
            let reply = udp_ask_within(
                address,
                &query(u16::from(index), &name, RecordType::A),
                Duration::from_secs(1),
            );
            if reply.is_some_and(|r| !r.answers.is_empty()) {
                break;
            }
            assert!(
                pushed.elapsed() < Duration::from_secs(5),
                "update {index} did not reach answers within 5 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(pushed.elapsed());
    }
    server.shutdown();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median <= Duration::from_millis(50),
        "median push-to-answer {median:?} (all: {latencies:?})"
    );
}

/// CoreDNS `reload` tries each changed Corefile once: a file that does not
/// parse is one failure (`coredns_reload_failed_total`) and one error line,
/// however many checks find it unchanged; a differently broken file is
/// another failure, and a good file clears the memory. Regression test for
/// issue 21: every check of the same broken file counted again.
#[test]
fn an_unchanged_broken_corefile_counts_one_failure() {
    let factory: SourceFactory =
        Arc::new(|_spec: &SourceSpec| -> Box<dyn Source<Input>> { unreachable!("no sources") });
    let mut server =
        Server::start(Config::default(), factory, RunOptions::default()).expect("server starts");
    let dir = crate::testing::TempDir::new("signpost-reload");
    let path = dir.path().join("Corefile");
    let mut memory = ReloadMemory::default();
    let failures = |server: &Server| server.status.reload.failures.load(Ordering::Relaxed);

    std::fs::write(&path, "cluster.local {\n    kubernetes {\n").unwrap();
    for _ in 0..3 {
        server.reload(&path, &mut memory);
    }
    assert_eq!(failures(&server), 1, "one broken file, three checks");

    std::fs::write(&path, "cluster.local {\n}\n}\n").unwrap();
    server.reload(&path, &mut memory);
    server.reload(&path, &mut memory);
    assert_eq!(failures(&server), 2, "a differently broken file");

    // Parsed again (an empty block set is still a valid parse), then the
    // first broken file once more: a new failure.
    std::fs::write(&path, "cluster.local:0 {\n}\n").unwrap();
    server.reload(&path, &mut memory);
    assert_eq!(memory.broken, None);
    std::fs::write(&path, "cluster.local {\n    kubernetes {\n").unwrap();
    server.reload(&path, &mut memory);
    assert_eq!(failures(&server), 3);
    server.shutdown();
}
