//! Geographic routing end to end (issue 5): three regional LoadBalancer
//! Services behind one geo name, `api.aikernel.io`, answered by the real
//! binary to clients on different loopback sources, in network namespaces
//! this module creates, and behind EDNS Client Subnet options (RFC 7871);
//! placement by a real GeoLite2 database; failover driven by real health
//! checks; the metrics and the admin API.
//!
//! ```text
//! region           LB ingress (DNS data only)   health endpoint (Backend)   client network
//! us-east-1        192.0.2.1    2001:db8:1::1   127.0.0.11                  127.0.1.0/24
//! eu-west-1        198.51.100.1 2001:db8:2::1   127.0.0.12                  127.0.2.0/24, 10.77.0.0/16
//! ap-southeast-1   203.0.113.1  2001:db8:3::1   127.0.0.13                  127.0.3.0/24, 2001:db8:3::/48
//! ```
//!
//! The ingress addresses are documentation ranges and are never contacted;
//! the health checks go to the EndpointSlice addresses, where a [`Backend`]
//! answers as the test says.
//!
//! Timings: interval 1 s, timeout 500 ms, failure_threshold 2, success
//! threshold 1 (default), remove_unhealthy_delay 2 s. A region whose only
//! endpoint starts failing turns unhealthy no earlier than the delay and no
//! later than failure_threshold × interval + delay + 1 s = 5 s; it is healthy
//! again within one interval of passing, bounded here at 3 s (one interval,
//! the check itself and the snapshot swap, with slack for two busy cores).
//!
//! The GeoIP tests need GeoLite2-City.mmdb: `scripts/test` fetches it (PyPI
//! `maxminddb-geolite2`) and sets `SIGNPOST_GEOIP_DB`; they fail without it.

use crate::support::{self, Backend, FAILING, HEALTHY, TestServer};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// One region of the fixture.
struct Region {
    name: &'static str,
    ipv4: &'static str,
    ipv6: &'static str,
    /// The health endpoints (EndpointSlice addresses, each a [`Backend`]).
    endpoints: &'static [Ipv4Addr],
    /// A client source address inside the region's `client` network.
    client: Ipv4Addr,
}

const US: Region = Region {
    name: "us-east-1",
    ipv4: "192.0.2.1",
    ipv6: "2001:db8:1::1",
    endpoints: &[Ipv4Addr::new(127, 0, 0, 11), Ipv4Addr::new(127, 0, 0, 14)],
    client: Ipv4Addr::new(127, 0, 1, 9),
};
const EU: Region = Region {
    name: "eu-west-1",
    ipv4: "198.51.100.1",
    ipv6: "2001:db8:2::1",
    endpoints: &[Ipv4Addr::new(127, 0, 0, 12)],
    client: Ipv4Addr::new(127, 0, 2, 9),
};
const AP: Region = Region {
    name: "ap-southeast-1",
    ipv4: "203.0.113.1",
    ipv6: "2001:db8:3::1",
    endpoints: &[Ipv4Addr::new(127, 0, 0, 13)],
    client: Ipv4Addr::new(127, 0, 3, 9),
};
const REGIONS: [&Region; 3] = [&US, &EU, &AP];

/// The geo name of the three `api-<region>` Services.
const API: &str = "api.aikernel.io";

/// Every region's IPv4 address, sorted as [`addresses`] returns them.
const ALL_IPV4: [&str; 3] = ["192.0.2.1", "198.51.100.1", "203.0.113.1"];

/// How long a failing region may keep answering (see the module docs).
const REMOVAL_LIMIT: Duration = Duration::from_secs(5);
/// Not before the remove_unhealthy_delay.
const REMOVAL_EARLIEST: Duration = Duration::from_secs(2);
/// How long a recovered region may stay out.
const RETURN_LIMIT: Duration = Duration::from_secs(3);

// === the fixture ===

/// The Corefile of the spec: `aikernel.io` and `cluster.local`, health checks
/// with test timings, and a `geo` block with the three regions, their client
/// networks, `ecs on` and `ttl 30`; `geo_lines` adds to the geo block
/// (policy, latency, mmdb) and `bind` lists the DNS addresses.
fn corefile(bind: &str, geo_lines: &str) -> String {
    format!(
        "aikernel.io:{{PORT}} cluster.local:{{PORT}} {{
    bind {bind}
    kubernetes cluster.local {{
        catalog catalog
    }}
    healthcheck {{
        interval 1s
        timeout 500ms
        failure_threshold 2
        remove_unhealthy_delay 2s
    }}
    geo aikernel.io {{
        region us-east-1 38.9 -77.0
        region eu-west-1 53.3 -6.3
        region ap-southeast-1 1.35 103.8
        client 127.0.1.0/24 us-east-1
        client 127.0.2.0/24 eu-west-1
        client 127.0.3.0/24 ap-southeast-1
        client 2001:db8:3::/48 ap-southeast-1
        ecs on
        ttl 30
{geo_lines}    }}
    prometheus 127.0.0.1:{{ADMIN}}
    ready 127.0.0.1:{{ADMIN}}
    admin 127.0.0.2:{{API}}
}}
"
    )
}

/// One regional Service of a geo name: a LoadBalancer named
/// `<service>-<region>` in `edge`, hostname `<service>-<region>.aikernel.io`,
/// whose ingress holds the region's addresses, plus an EndpointSlice with
/// the region's health endpoint. `annotations` are added as they are (four
/// spaces in).
fn regional_service(service: &str, region: &Region, annotations: &str) -> String {
    let Region {
        name,
        ipv4,
        ipv6,
        endpoints,
        ..
    } = region;
    let service_octet = if service == "api" { 0 } else { 1 };
    let cluster_ip = format!("10.96.{service_octet}.{}", endpoints[0].octets()[3]);
    let endpoints = endpoints
        .iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {service}-{name}
  namespace: edge
  annotations:
    dns.aikernel.io/geo-region: {name}
    external-dns.alpha.kubernetes.io/hostname: {service}-{name}.aikernel.io
{annotations}spec:
  type: LoadBalancer
  clusterIP: {cluster_ip}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
status:
  loadBalancer:
    ingress:
    - ip: {ipv4}
    - ip: {ipv6}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {service}-{name}-abc
  namespace: edge
  labels:
    kubernetes.io/service-name: {service}-{name}
addressType: IPv4
endpoints:
- addresses: [{endpoints}]
ports:
- name: http
  port: 8080
---
"
    )
}

/// The health-check annotations pointing at a [`Backend`] port.
fn health_annotations(port: u16) -> String {
    format!(
        "    dns.aikernel.io/health-check-enabled: \"true\"\n    dns.aikernel.io/health-check-port: \"{port}\"\n"
    )
}

/// The three `api-<region>` Services; `annotations(region)` adds to each.
fn api_catalog(annotations: impl Fn(&Region) -> String) -> String {
    REGIONS
        .iter()
        .map(|region| regional_service("api", region, &annotations(region)))
        .collect()
}

/// A server over `catalog` with the spec's Corefile.
fn start(bind: &str, geo_lines: &str, catalog: &str) -> TestServer {
    TestServer::start_with(
        &corefile(bind, geo_lines),
        &[("catalog/geo.yaml", catalog)],
        true,
    )
}

/// A [`Backend`] on every region's health endpoints, all on one port.
struct RegionBackends {
    port: u16,
    backends: Vec<(Ipv4Addr, Backend)>,
}

impl RegionBackends {
    fn start() -> Self {
        let addresses: Vec<Ipv4Addr> = REGIONS
            .iter()
            .flat_map(|region| region.endpoints.iter().copied())
            .collect();
        let (port, backends) = support::backends_on(&addresses);
        Self {
            port,
            backends: addresses.into_iter().zip(backends).collect(),
        }
    }

    /// The backend on `address`.
    fn at(&self, address: Ipv4Addr) -> &Backend {
        let found = self.backends.iter().find(|(a, _)| *a == address);
        &found.expect("a backend on that address").1
    }

    /// Switches every endpoint of `region`.
    fn set_region(&self, region: &Region, mode: u8) {
        for address in region.endpoints {
            self.at(*address).set(mode);
        }
    }

    /// Switches every endpoint of every region.
    fn set_all(&self, mode: u8) {
        for (_, backend) in &self.backends {
            backend.set(mode);
        }
    }
}

/// A server whose three regions are health-checked on `backends`, with
/// `dns.aikernel.io/geo-priority` set as `priority` says; waits until every
/// backend has been checked once, so later failures start from healthy.
fn start_checked(
    geo_lines: &str,
    backends: &RegionBackends,
    priority: &[(&str, u32)],
) -> TestServer {
    let port = backends.port;
    let catalog = api_catalog(|region| {
        let mut annotations = health_annotations(port);
        if let Some((_, value)) = priority.iter().find(|(name, _)| *name == region.name) {
            annotations.push_str(&format!("    dns.aikernel.io/geo-priority: \"{value}\"\n"));
        }
        annotations
    });
    let server = start("127.0.0.1", geo_lines, &catalog);
    wait_for(
        &server,
        Duration::from_secs(5),
        "first checks of every backend",
        || {
            backends
                .backends
                .iter()
                .all(|(_, b)| b.requests.load(Ordering::Relaxed) > 0)
                .then_some(())
        },
    );
    server
}

// === queries ===

/// Asks `server` from `source` (any local address: all of 127/8 is local)
/// over UDP, with an ECS option for `subnet` when given, and parses the reply.
fn ask(
    server: &TestServer,
    source: IpAddr,
    qname: &str,
    qtype: RecordType,
    subnet: Option<(IpAddr, u8)>,
) -> Message {
    let mut message = Message::new(0x4745, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(qname).expect("qname"), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some((address, prefix)) = subnet {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(address, prefix, 0)));
    }
    message.set_edns(edns);
    let reply = exchange(server, source, &message.to_vec().expect("encode"))
        .unwrap_or_else(|| panic!("no reply from {source}; log:\n{}", server.log()));
    Message::from_vec(&reply).expect("parse reply")
}

/// Sends one datagram from `source` (to 127.0.0.1, or to ::1 from an IPv6
/// source) and waits up to 2 s for the reply.
fn exchange(server: &TestServer, source: IpAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(SocketAddr::new(source, 0)).expect("bind client source");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let destination = match source {
        IpAddr::V4(_) => server.addr(),
        IpAddr::V6(_) => server.dns_addr(Ipv6Addr::LOCALHOST.into()),
    };
    socket.send_to(packet, destination).expect("send");
    let mut buffer = vec![0u8; 65535];
    let length = socket.recv(&mut buffer).ok()?;
    buffer.truncate(length);
    Some(buffer)
}

/// The A and AAAA addresses of a reply's answer section, sorted.
fn addresses(reply: &Message) -> Vec<String> {
    let mut found: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(aaaa) => Some(aaaa.0.to_string()),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

/// The A answer for `qname` asked from `source` without ECS.
fn ipv4_from(server: &TestServer, source: Ipv4Addr, qname: &str) -> Vec<String> {
    addresses(&ask(server, source.into(), qname, RecordType::A, None))
}

/// The ECS option of a reply.
fn reply_subnet(reply: &Message) -> Option<ClientSubnet> {
    match reply.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(subnet) => Some(*subnet),
        _ => None,
    }
}

/// Asks from 127.0.0.1 with an ECS `subnet`/`prefix`; returns (addresses,
/// SCOPE PREFIX-LENGTH), asserting the reply echoes FAMILY, SOURCE
/// PREFIX-LENGTH and ADDRESS (RFC 7871 §7.2.1).
fn ask_subnet(server: &TestServer, qname: &str, subnet: &str, prefix: u8) -> (Vec<String>, u8) {
    let address: IpAddr = subnet.parse().expect("subnet address");
    let reply = ask(
        server,
        Ipv4Addr::LOCALHOST.into(),
        qname,
        RecordType::A,
        Some((address, prefix)),
    );
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{reply:?}"
    );
    let echoed = reply_subnet(&reply).unwrap_or_else(|| {
        panic!("RFC 7871 §7.2.1: no ECS option in the reply to {subnet}/{prefix}: {reply:?}")
    });
    assert_eq!(
        (echoed.addr(), echoed.source_prefix()),
        (address, prefix),
        "RFC 7871 §7.2.1: FAMILY, SOURCE PREFIX-LENGTH and ADDRESS are copied from the query"
    );
    (addresses(&reply), echoed.scope_prefix())
}

/// Polls `check` every 50 ms until it yields a value; panics after `limit`
/// with `what` and the server log. Returns the value and the time it took.
fn wait_for<T>(
    server: &TestServer,
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    let started = SystemTime::now();
    loop {
        if let Some(value) = check() {
            return (value, started.elapsed().expect("clock"));
        }
        let waited = started.elapsed().expect("clock");
        assert!(
            waited <= limit,
            "{what}: not within {limit:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `limit` until `client` is answered `expected` for [`API`];
/// returns how long it took.
fn wait_moved(
    server: &TestServer,
    client: Ipv4Addr,
    expected: &[&str],
    limit: Duration,
) -> Duration {
    let mut last = Vec::new();
    let ((), waited) = wait_for(
        server,
        limit,
        &format!("{client} answered {expected:?}"),
        || {
            last = ipv4_from(server, client, API);
            (last == expected).then_some(())
        },
    );
    waited
}

// === GeoIP database ===

/// The GeoLite2-City database `scripts/test` provides.
fn geoip_database() -> PathBuf {
    let path = std::env::var_os("SIGNPOST_GEOIP_DB").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "SIGNPOST_GEOIP_DB is not set: the geo tests need GeoLite2-City.mmdb; run scripts/test \
             (it fetches it into target/geolite2/) or set SIGNPOST_GEOIP_DB to its path"
        )
    });
    assert!(
        path.is_file(),
        "SIGNPOST_GEOIP_DB={} is not a file; run scripts/test to fetch GeoLite2-City.mmdb",
        path.display()
    );
    path
}

/// Checks what the database says about `subnet` before a test relies on it:
/// its continent code and the prefix length of the database network holding it.
fn assert_database_places(
    database: &maxminddb::Reader<Vec<u8>>,
    subnet: &str,
    continent: &str,
    prefix: u8,
) {
    let address: IpAddr = subnet.parse().expect("subnet");
    let result = database.lookup(address).expect("lookup");
    let city: maxminddb::geoip2::City<'_> = result
        .decode()
        .expect("decode")
        .unwrap_or_else(|| panic!("GeoLite2 has no record for {subnet}"));
    assert_eq!(
        city.continent.code,
        Some(continent),
        "GeoLite2 places {subnet} elsewhere: {city:?}"
    );
    assert!(
        city.location.latitude.is_some() && city.location.longitude.is_some(),
        "GeoLite2 has no coordinates for {subnet}: {city:?}"
    );
    let network = result.network().expect("network");
    assert_eq!(
        network.prefix(),
        prefix,
        "GeoLite2 network of {subnet}: {network}"
    );
}

// === network namespaces ===

/// A network namespace joined to the host by a veth pair: `host` on the
/// host side (signpost binds it), `client` inside. Names are unique per
/// process and call; the links and the namespace are removed on drop, also
/// when the test panics.
struct ClientNamespace {
    name: String,
    host_link: String,
    host: Ipv4Addr,
    client: Ipv4Addr,
}

impl ClientNamespace {
    /// Creates the namespace on a 10.77.N.0/30 that no interface uses yet.
    fn create() -> Self {
        static CREATED: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id() as usize;
        let serial = CREATED.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{serial}", pid % 1_000_000);
        let in_use = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-o", "-4", "address", "show"])
                .output()
                .expect("ip address show (iproute2)")
                .stdout,
        )
        .into_owned();
        let third = (0..250)
            .map(|offset| ((pid + serial + offset) % 250 + 1) as u8)
            .find(|third| !in_use.contains(&format!("10.77.{third}.")))
            .expect("a free 10.77.N.0/30");
        // Built before the first command so that drop cleans up a half-made one.
        let namespace = Self {
            name: format!("signpost-geo-{tag}"),
            host_link: format!("spg{tag}h"),
            host: Ipv4Addr::new(10, 77, third, 1),
            client: Ipv4Addr::new(10, 77, third, 2),
        };
        let inner_link = format!("spg{tag}n");
        let (name, host_link) = (namespace.name.as_str(), namespace.host_link.as_str());
        ip(&["netns", "add", name]);
        ip(&[
            "link",
            "add",
            host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner_link,
        ]);
        ip(&["link", "set", &inner_link, "netns", name]);
        ip(&[
            "address",
            "add",
            &format!("{}/30", namespace.host),
            "dev",
            host_link,
        ]);
        ip(&["link", "set", host_link, "up"]);
        let inside = ["netns", "exec", name, "ip"];
        ip(&[
            &inside[..],
            &[
                "address",
                "add",
                &format!("{}/30", namespace.client),
                "dev",
                &inner_link,
            ],
        ]
        .concat());
        ip(&[&inside[..], &["link", "set", &inner_link, "up"]].concat());
        ip(&[&inside[..], &["link", "set", "lo", "up"]].concat());
        namespace
    }

    /// Runs dig inside the namespace against `server` on the host side.
    fn dig(&self, server: &TestServer, args: &[&str]) -> String {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name, "dig"])
            .arg(format!("@{}", self.host))
            .args([
                "-p",
                &server.dns_addr(self.host.into()).port().to_string(),
                "+time=5",
                "+tries=1",
            ])
            .args(args)
            .output()
            .expect("ip netns exec dig");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for ClientNamespace {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = Command::new("ip")
            .args(["link", "delete", &self.host_link])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// Runs `ip` and panics with its stderr when it fails (these tests run as
/// root, as CI does; without the rights the test fails rather than skips).
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

// === metrics and admin API ===

/// The value of the sample of `name` whose labels include `labels` (label
/// values compared without a trailing dot, so `aikernel.io.` matches).
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (label_text, value) = rest.rsplit_once("} ")?;
        let found: BTreeMap<&str, &str> = label_text
            .split(',')
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                Some((
                    key.trim(),
                    value.trim().trim_matches('"').trim_end_matches('.'),
                ))
            })
            .collect();
        labels
            .iter()
            .all(|(key, value)| found.get(key) == Some(value))
            .then(|| value.trim().parse().ok())?
    })
}

/// GET on the `admin` port, parsed as JSON; panics on a non-200 status.
fn admin_json(server: &TestServer, path: &str) -> Value {
    let (status, body) = server
        .api_get(path)
        .unwrap_or_else(|| panic!("GET {path}: no answer"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// Every object anywhere in `value` (depth first).
fn objects(value: &Value) -> Vec<&serde_json::Map<String, Value>> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                found.push(map);
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// The string at `key` of `object`, trailing dot removed.
fn text<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key)?.as_str().map(|s| s.trim_end_matches('.'))
}

// === 1. client networks, sources, namespaces and ECS ===

/// Issue 5, point 1: each client is answered with its own region's addresses
/// by its source address and the `client` mappings: UDP sockets bound to
/// 127.0.1.x, 127.0.2.x and 127.0.3.x, and `dig -b 127.0.2.5` over UDP and
/// TCP; A and AAAA;
/// the Corefile TTL; the regional hostnames answer their own region to
/// everyone. Without `mmdb` or `policy`, the default policy is latency.
#[test]
fn source_address_picks_the_client_network_region() {
    let server = start("127.0.0.1", "", &api_catalog(|_| String::new()));
    for region in REGIONS {
        let reply = ask(&server, region.client.into(), API, RecordType::A, None);
        assert_eq!(
            addresses(&reply),
            [region.ipv4],
            "A from {}: {reply:?}",
            region.client
        );
        assert!(
            reply.answers.iter().all(|record| record.ttl == 30),
            "the geo block's ttl 30: {reply:?}"
        );
        let reply = ask(&server, region.client.into(), API, RecordType::AAAA, None);
        assert_eq!(
            addresses(&reply),
            [region.ipv6],
            "AAAA from {}: {reply:?}",
            region.client
        );
        // Another host of the same /24.
        let neighbour = Ipv4Addr::from(u32::from(region.client) + 100);
        assert_eq!(
            ipv4_from(&server, neighbour, API),
            [region.ipv4],
            "from {neighbour}"
        );
        // The regional hostname answers that region, whoever asks.
        for asker in REGIONS {
            let regional = format!("api-{}.aikernel.io", region.name);
            assert_eq!(
                ipv4_from(&server, asker.client, &regional),
                [region.ipv4],
                "{regional} from {}",
                asker.client
            );
        }
    }
    let answer = server.dig(&["-b", "127.0.2.5", API, "A", "+short"]);
    assert_eq!(answer.trim(), EU.ipv4, "dig -b 127.0.2.5:\n{answer}");
    let answer = server.dig(&["-b", "127.0.2.5", "+tcp", API, "A", "+short"]);
    assert_eq!(answer.trim(), EU.ipv4, "dig -b 127.0.2.5 +tcp:\n{answer}");
    let answer = server.dig(&["-b", "127.0.3.77", API, "AAAA", "+short"]);
    assert_eq!(answer.trim(), AP.ipv6, "dig -b 127.0.3.77:\n{answer}");
}

/// Issue 5, point 1, with a real second host: a client in a network
/// namespace (veth pair, 10.77.N.2 inside, 10.77.N.1 on the host, which
/// signpost binds besides 127.0.0.1) is mapped by `client 10.77.0.0/16
/// eu-west-1`; the same client's ECS option for an AP network wins over its
/// source address (RFC 7871 §7.2.1: the answer is tailored to the option).
#[test]
fn namespace_client_gets_its_mapped_region() {
    let namespace = ClientNamespace::create();
    let bind = format!("127.0.0.1 {}", namespace.host);
    let server = start(
        &bind,
        "        client 10.77.0.0/16 eu-west-1\n",
        &api_catalog(|_| String::new()),
    );
    let answer = namespace.dig(&server, &[API, "A", "+short"]);
    assert_eq!(
        answer.trim(),
        EU.ipv4,
        "dig from {} in {}:\n{answer}",
        namespace.client,
        namespace.name
    );
    let answer = namespace.dig(&server, &[API, "AAAA", "+short"]);
    assert_eq!(answer.trim(), EU.ipv6, "AAAA from the namespace:\n{answer}");
    let answer = namespace.dig(&server, &["+subnet=127.0.3.0/24", API, "A"]);
    assert!(
        answer.contains("; CLIENT-SUBNET: 127.0.3.0/24/24"),
        "ECS scope from the namespace:\n{answer}"
    );
    assert!(
        answer.contains(&format!("\t{}", AP.ipv4)),
        "the ECS subnet's region, not the source's:\n{answer}"
    );
    // The host side still answers loopback clients by their own mapping.
    assert_eq!(ipv4_from(&server, US.client, API), [US.ipv4]);
}

/// Issue 5, point 1; RFC 7871 §7.2.1: with ECS the answer is chosen by the
/// subnet, not the source, and SCOPE PREFIX-LENGTH is the prefix of the
/// `client` network that matched: 24 for 127.0.3.0/24 and for the more
/// specific 127.0.2.128/25, 48 for 2001:db8:3::/48. A subnet shorter than
/// every mapping (127.0.0.0/16) or outside all (198.51.100.0/24, no
/// database) has no location: scope 0 (§7.2.1: the answer suits the whole
/// address family), still one region's addresses.
#[test]
fn ecs_subnet_picks_the_region_and_sets_the_scope() {
    let server = start("127.0.0.1", "", &api_catalog(|_| String::new()));
    for (subnet, prefix, expected, scope) in [
        ("127.0.3.0", 24, AP.ipv4, 24),
        ("127.0.2.128", 25, EU.ipv4, 24),
        ("127.0.1.0", 24, US.ipv4, 24),
        ("2001:db8:3:4::", 64, AP.ipv4, 48),
    ] {
        let (answer, found_scope) = ask_subnet(&server, API, subnet, prefix);
        assert_eq!(
            (answer, found_scope),
            (vec![expected.to_owned()], scope),
            "ECS {subnet}/{prefix}"
        );
    }
    for (subnet, prefix) in [("127.0.0.0", 16), ("198.51.100.0", 24)] {
        let (answer, scope) = ask_subnet(&server, API, subnet, prefix);
        assert_eq!(scope, 0, "ECS {subnet}/{prefix}: no location, scope 0");
        assert!(
            REGIONS.iter().any(|r| answer == [r.ipv4]),
            "ECS {subnet}/{prefix}: one region's addresses, got {answer:?}"
        );
    }
    // RFC 7871 §7.2.1: answers that do not depend on the client (a regional
    // name, a cluster name) say so with scope 0; so does a /0 subnet, which
    // carries no address to use (§7.1.2).
    for (qname, subnet, prefix) in [
        ("api-us-east-1.aikernel.io", "127.0.3.0", 24),
        ("api-us-east-1.edge.svc.cluster.local", "127.0.3.0", 24),
        (API, "0.0.0.0", 0),
    ] {
        let (answer, scope) = ask_subnet(&server, qname, subnet, prefix);
        assert_eq!(scope, 0, "{qname} with ECS {subnet}/{prefix}: {answer:?}");
        assert_eq!(
            answer.len(),
            1,
            "{qname} with ECS {subnet}/{prefix}: {answer:?}"
        );
    }
    // The subnet wins over the source: an EU source asking for an AP subnet.
    let reply = ask(
        &server,
        EU.client.into(),
        API,
        RecordType::A,
        Some(("127.0.3.0".parse().expect("ip"), 24)),
    );
    assert_eq!(addresses(&reply), [AP.ipv4], "{reply:?}");
    // dig's own view of the option.
    let answer = server.dig(&["-b", "127.0.1.5", "+subnet=127.0.3.0/24", API, "A"]);
    assert!(
        answer.contains("; CLIENT-SUBNET: 127.0.3.0/24/24"),
        "dig +subnet=127.0.3.0/24:\n{answer}"
    );
    assert!(answer.contains(&format!("\t{}", AP.ipv4)), "{answer}");
}

/// RFC 7871 §6: a query whose ECS option has non-zero ADDRESS bits beyond
/// SOURCE PREFIX-LENGTH, or too many or too few ADDRESS octets, is answered
/// FORMERR; so (issue 5 spec: malformed ECS → FORMERR) is an unknown FAMILY,
/// a source prefix longer than the family's addresses, and a non-zero SCOPE
/// PREFIX-LENGTH in a query (§6: it MUST be 0 in queries). The well-formed
/// control gets the subnet's region.
#[test]
fn malformed_ecs_is_formerr() {
    let server = start("127.0.0.1", "", &api_catalog(|_| String::new()));
    let well_formed = [0, 1, 24, 0, 127, 0, 3];
    let reply = exchange(
        &server,
        Ipv4Addr::LOCALHOST.into(),
        &query_with_option(API, &well_formed),
    )
    .expect("reply to the well-formed control");
    let reply = Message::from_vec(&reply).expect("parse");
    assert_eq!(addresses(&reply), [AP.ipv4], "control: {reply:?}");
    for (what, data) in [
        (
            "bits set past the source prefix",
            &[0u8, 1, 20, 0, 127, 0, 3][..],
        ),
        ("too many address octets", &[0, 1, 16, 0, 127, 0, 3]),
        ("too few address octets", &[0, 1, 24, 0, 127, 0]),
        ("unknown family 3", &[0, 3, 24, 0, 127, 0, 3]),
        ("IPv4 source prefix 33", &[0, 1, 33, 0, 127, 0, 3, 0, 0]),
        ("non-zero scope in a query", &[0, 1, 24, 24, 127, 0, 3]),
        ("option shorter than its header", &[0, 1, 24]),
    ] {
        let reply = exchange(
            &server,
            Ipv4Addr::LOCALHOST.into(),
            &query_with_option(API, data),
        )
        .unwrap_or_else(|| panic!("{what}: no reply"));
        assert_eq!(
            reply[3] & 0x0f,
            1,
            "{what}: RCODE FORMERR expected, got {reply:02x?}"
        );
        assert_eq!(
            &reply[..2],
            &[0x47, 0x45],
            "{what}: the reply keeps the query ID"
        );
    }
}

/// An A query for `qname` with an OPT record carrying one ECS option whose
/// data is `data`, byte for byte (so malformed options can be sent).
fn query_with_option(qname: &str, data: &[u8]) -> Vec<u8> {
    // ID 0x4745, RD, one question, one additional.
    let mut out = vec![0x47, 0x45, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in qname.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]); // root, A, IN
    // OPT: root owner, TYPE 41, CLASS = UDP size 1232, TTL 0, RDLENGTH.
    out.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    out.extend_from_slice(&(4 + data.len() as u16).to_be_bytes());
    out.extend_from_slice(&8u16.to_be_bytes()); // OPTION-CODE 8 (ECS)
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Issue 5 spec, region addresses: `status.loadBalancer.ingress[].ip`, else
/// `spec.externalIPs`, else the ready endpoints (a not-ready endpoint is not
/// served). Each region here is reached by its client network.
#[test]
fn region_addresses_fall_back_to_external_ips_then_ready_endpoints() {
    let service = |region: &str, kind: &str, extra_spec: &str, status: &str| {
        format!(
            "apiVersion: v1
kind: Service
metadata:
  name: db-{region}
  namespace: edge
  annotations:
    dns.aikernel.io/geo-region: {region}
    external-dns.alpha.kubernetes.io/hostname: db-{region}.aikernel.io
spec:
  type: {kind}
  ports:
  - {{name: sql, port: 5432}}
{extra_spec}{status}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-{region}-abc
  namespace: edge
  labels:
    kubernetes.io/service-name: db-{region}
addressType: IPv4
endpoints:
- addresses: [10.1.0.1]
- addresses: [10.1.0.2]
  conditions: {{ready: false}}
ports:
- name: sql
  port: 5432
---
"
        )
    };
    let catalog = [
        // Ingress and external IPs: the ingress wins.
        service(
            US.name,
            "LoadBalancer",
            "  clusterIP: 10.96.2.1\n  externalIPs: [192.0.2.99]\n",
            "status:\n  loadBalancer:\n    ingress:\n    - ip: 192.0.2.9\n",
        ),
        // No ingress yet (pending load balancer): the external IPs.
        service(
            EU.name,
            "LoadBalancer",
            "  clusterIP: 10.96.2.2\n  externalIPs: [198.51.100.9, 2001:db8:2::9]\n",
            "status:\n  loadBalancer: {}\n",
        ),
        // Neither: the ready endpoints.
        service(AP.name, "ClusterIP", "  clusterIP: 10.96.2.3\n", ""),
    ]
    .concat();
    let server = start("127.0.0.1", "", &catalog);
    let name = "db.aikernel.io";
    assert_eq!(ipv4_from(&server, US.client, name), ["192.0.2.9"]);
    assert_eq!(ipv4_from(&server, EU.client, name), ["198.51.100.9"]);
    let reply = ask(&server, EU.client.into(), name, RecordType::AAAA, None);
    assert_eq!(addresses(&reply), ["2001:db8:2::9"], "{reply:?}");
    assert_eq!(ipv4_from(&server, AP.client, name), ["10.1.0.1"]);
}

/// Issue 5 spec: `geo` without zones covers the server block's zones, and
/// `client` takes IPv6 networks for IPv6 sources: a client on ::1
/// (signpost binds it too) mapped by `client ::1/128 eu-west-1`.
#[test]
fn geo_without_zones_serves_the_block_zones_to_ipv6_sources() {
    let corefile = corefile("127.0.0.1 ::1", "        client ::1/128 eu-west-1\n")
        .replace("geo aikernel.io {", "geo {");
    let server = TestServer::start_with(
        &corefile,
        &[("catalog/geo.yaml", &api_catalog(|_| String::new()))],
        true,
    );
    let source = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for (qtype, expected) in [(RecordType::A, EU.ipv4), (RecordType::AAAA, EU.ipv6)] {
        let reply = ask(&server, source, API, qtype, None);
        assert_eq!(addresses(&reply), [expected], "{qtype} from ::1: {reply:?}");
    }
    assert_eq!(ipv4_from(&server, AP.client, API), [AP.ipv4]);
    let (answer, scope) = ask_subnet(&server, API, "127.0.1.0", 24);
    assert_eq!((answer, scope), (vec![US.ipv4.to_owned()], 24));
}

// === 2. a real GeoIP database ===

// Subnets placed by GeoLite2-City 2018-07 (the PyPI maxminddb-geolite2
// 2018.703 copy; each is re-checked against the database by
// `assert_database_places` before it is relied on):
//
// 24.0.0.0/24      North America: Woodbridge NJ (40.55, -74.29), network /20;
//                  296 km to us-east-1, 5,143 km to eu-west-1.
// 193.0.6.0/24     Europe: Amsterdam (52.37, 4.90), network /20 (RIPE NCC);
//                  758 km to eu-west-1, 6,187 km to us-east-1.
// 175.41.128.0/24  Asia: Singapore (1.29, 103.86), network /22; 9 km to
//                  ap-southeast-1, 11,211 km to eu-west-1.
// 18.0.0.0/8       North America: Cambridge MA (42.36, -71.10), network /11,
//                  wider than the /8 sent, so the scope is capped at 8.
// 2a00:1450:4001::/56  Europe: Frankfurt (50.12, 8.68), network /48;
//                  1,089 km to eu-west-1.

/// Issue 5, point 2; RFC 7871 §7.2.1: ECS subnets from three continents,
/// placed by the real GeoLite2 database, reach the nearest region by
/// great-circle distance, and the scope is the database network's prefix
/// capped by the source prefix (/20 of a /24; /8 of a /11). Client
/// mappings still win for the addresses they cover.
#[test]
fn geoip_database_places_subnets_in_the_nearest_region() {
    let path = geoip_database();
    let database = maxminddb::Reader::open_readfile(&path).expect("open GeoLite2");
    for (subnet, continent, prefix) in [
        ("24.0.0.0", "NA", 20),
        ("193.0.6.0", "EU", 20),
        ("175.41.128.0", "AS", 22),
        ("18.0.0.0", "NA", 11),
        ("2a00:1450:4001::", "EU", 48),
    ] {
        assert_database_places(&database, subnet, continent, prefix);
    }
    let server = start(
        "127.0.0.1",
        &format!("        mmdb {}\n        policy latency\n", path.display()),
        &api_catalog(|_| String::new()),
    );
    for (subnet, prefix, expected, scope) in [
        ("24.0.0.0", 24, US.ipv4, 20),
        ("193.0.6.0", 24, EU.ipv4, 20),
        ("175.41.128.0", 24, AP.ipv4, 22),
        ("18.0.0.0", 8, US.ipv4, 8),
        ("2a00:1450:4001::", 56, EU.ipv4, 48),
    ] {
        let (answer, found_scope) = ask_subnet(&server, API, subnet, prefix);
        assert_eq!(
            (answer, found_scope),
            (vec![expected.to_owned()], scope),
            "ECS {subnet}/{prefix}"
        );
    }
    let answer = server.dig(&["+subnet=193.0.6.0/24", API, "A"]);
    assert!(
        answer.contains("; CLIENT-SUBNET: 193.0.6.0/24/20"),
        "dig +subnet=193.0.6.0/24:\n{answer}"
    );
    // The client mapping beats the database (and the database knows no loopback).
    assert_eq!(ipv4_from(&server, AP.client, API), [AP.ipv4]);
}

/// Issue 5, point 2: the latency table overrides distance. `web.aikernel.io`
/// (named by `dns.aikernel.io/geo-hostname`) is served only by eu-west-1 and
/// ap-southeast-1. A New Jersey client (24.0.0.0/24, home us-east-1) is
/// 5,143 km (about 51 ms) from eu-west-1 and 15,352 km from ap-southeast-1:
/// by distance it gets eu-west-1 (the second server, without the table),
/// but `latency us-east-1 ap-southeast-1 20` makes ap-southeast-1 cheaper.
/// A European client, whose home has no table entry, keeps eu-west-1.
#[test]
fn latency_table_overrides_distance() {
    let path = geoip_database();
    let database = maxminddb::Reader::open_readfile(&path).expect("open GeoLite2");
    assert_database_places(&database, "24.0.0.0", "NA", 20);
    assert_database_places(&database, "193.0.6.0", "EU", 20);
    let web = |region: &Region| {
        regional_service(
            "web",
            &Region {
                ipv4: if region.name == EU.name {
                    "198.51.100.2"
                } else {
                    "203.0.113.2"
                },
                ..*region
            },
            "    dns.aikernel.io/geo-hostname: web.aikernel.io\n",
        )
    };
    let catalog = format!("{}{}", web(&EU), web(&AP));
    let mmdb = format!("        mmdb {}\n", path.display());
    let with_table = start(
        "127.0.0.1",
        &format!("{mmdb}        latency us-east-1 ap-southeast-1 20\n        policy latency\n"),
        &catalog,
    );
    let by_distance = start(
        "127.0.0.1",
        &format!("{mmdb}        policy latency\n"),
        &catalog,
    );
    let web_name = "web.aikernel.io";
    assert_eq!(
        ask_subnet(&by_distance, web_name, "24.0.0.0", 24).0,
        ["198.51.100.2"],
        "without the table the nearer eu-west-1 wins"
    );
    assert_eq!(
        ask_subnet(&with_table, web_name, "24.0.0.0", 24).0,
        ["203.0.113.2"],
        "latency us-east-1 ap-southeast-1 20 beats 51 ms of distance"
    );
    assert_eq!(
        ask_subnet(&with_table, web_name, "193.0.6.0", 24).0,
        ["198.51.100.2"]
    );
    // The mapped US loopback client too: home us-east-1, the table applies.
    assert_eq!(ipv4_from(&with_table, US.client, web_name), ["203.0.113.2"]);
    assert_eq!(
        ipv4_from(&by_distance, US.client, web_name),
        ["198.51.100.2"]
    );
}

// === 3. failover ===

/// Issue 5, point 3, policy latency: us-east-1 stays healthy while one of
/// its two endpoints is unhealthy (a region needs one healthy endpoint);
/// when the other fails too, its clients move within the health window
/// (not before the 2 s delay, within 5 s) to ap-southeast-1, the next region
/// by policy (`latency us-east-1 ap-southeast-1 20` beats the ~54 ms to
/// eu-west-1); other regions' clients never move; recovery brings them back
/// within 3 s; with all three regions down every client gets all three
/// regions' addresses (fail open).
#[test]
fn unhealthy_region_fails_over_by_latency_and_recovers() {
    let backends = RegionBackends::start();
    let server = start_checked(
        "        latency us-east-1 ap-southeast-1 20\n        policy latency\n",
        &backends,
        &[],
    );
    for region in REGIONS {
        assert_eq!(ipv4_from(&server, region.client, API), [region.ipv4]);
    }
    // One of two endpoints down: the region is still healthy.
    let (first, second) = (US.endpoints[0], US.endpoints[1]);
    backends.at(second).set(FAILING);
    wait_for(&server, REMOVAL_LIMIT, "127.0.0.14 unhealthy", || {
        let endpoints = admin_json(&server, "/api/v1/endpoints");
        objects(&endpoints)
            .into_iter()
            .any(|o| {
                text(o, "address") == Some("127.0.0.14") && text(o, "state") == Some("unhealthy")
            })
            .then_some(())
    });
    assert_eq!(
        ipv4_from(&server, US.client, API),
        [US.ipv4],
        "us-east-1 keeps a healthy endpoint"
    );
    backends.at(first).set(FAILING);
    let waited = wait_for(
        &server,
        REMOVAL_LIMIT,
        "us-east-1 clients moved to ap-southeast-1",
        || {
            let answer = ipv4_from(&server, US.client, API);
            assert!(
                answer == [US.ipv4] || answer == [AP.ipv4],
                "US client during failover: {answer:?}"
            );
            assert_eq!(
                ipv4_from(&server, EU.client, API),
                [EU.ipv4],
                "EU client never moves"
            );
            (answer == [AP.ipv4]).then_some(())
        },
    )
    .1;
    assert!(
        waited >= REMOVAL_EARLIEST,
        "us-east-1 failed over after {waited:?}, before the 2 s remove_unhealthy_delay"
    );
    assert_eq!(ipv4_from(&server, AP.client, API), [AP.ipv4]);
    let reply = ask(&server, US.client.into(), API, RecordType::AAAA, None);
    assert_eq!(
        addresses(&reply),
        [AP.ipv6],
        "AAAA fails over too: {reply:?}"
    );
    // The regional name keeps its own addresses while unhealthy.
    assert_eq!(
        ipv4_from(&server, AP.client, "api-us-east-1.aikernel.io"),
        [US.ipv4]
    );
    // One endpoint back is enough.
    backends.at(first).set(HEALTHY);
    wait_moved(&server, US.client, &[US.ipv4], RETURN_LIMIT);
    backends.set_all(FAILING);
    for region in REGIONS {
        wait_moved(&server, region.client, &ALL_IPV4, REMOVAL_LIMIT);
    }
    let reply = ask(&server, EU.client.into(), API, RecordType::AAAA, None);
    assert_eq!(
        addresses(&reply),
        ["2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1"],
        "fail open, AAAA: {reply:?}"
    );
    // One region back ends failing open: everyone gets it.
    backends.set_region(&EU, HEALTHY);
    for region in REGIONS {
        wait_moved(&server, region.client, &[EU.ipv4], RETURN_LIMIT);
    }
}

// === 4. policy priority ===

/// Issue 5, point 4: `policy priority` picks the lowest
/// `dns.aikernel.io/geo-priority` among healthy regions regardless of
/// distance: eu-west-1 ("1") answers the US and AP clients too. When it
/// fails, the others tie at the default 100 and each client gets the
/// nearest (ties by latency): US and AP clients their own region, the EU
/// client us-east-1 (~56 ms against ~110 ms to ap-southeast-1).
#[test]
fn priority_policy_prefers_the_lowest_priority_healthy_region() {
    let backends = RegionBackends::start();
    let server = start_checked("        policy priority\n", &backends, &[(EU.name, 1)]);
    for region in REGIONS {
        assert_eq!(
            ipv4_from(&server, region.client, API),
            [EU.ipv4],
            "priority 1 wins for {} clients",
            region.name
        );
    }
    backends.set_region(&EU, FAILING);
    wait_moved(&server, US.client, &[US.ipv4], REMOVAL_LIMIT);
    assert_eq!(ipv4_from(&server, AP.client, API), [AP.ipv4]);
    assert_eq!(ipv4_from(&server, EU.client, API), [US.ipv4]);
    backends.set_region(&EU, HEALTHY);
    wait_moved(&server, AP.client, &[EU.ipv4], RETURN_LIMIT);
}

// === 5. metrics and the admin API ===

/// Issue 5, point 5: `dns_geo_answers_total{zone,region}` counts answers per
/// chosen region ("all" when failing open) and
/// `dns_geo_region_healthy{name,region}` follows health; `GET /api/v1/geo`
/// lists each geo name's regions with health, priority and addresses;
/// `GET /api/v1/geo/explain` tells how a client was placed (client network,
/// database or unknown), its home region, scope, the chosen region and why,
/// with a cost per candidate.
#[test]
fn metrics_and_admin_api_explain_the_choice() {
    let path = geoip_database();
    let backends = RegionBackends::start();
    let server = start_checked(
        &format!(
            "        mmdb {}\n        latency us-east-1 ap-southeast-1 20\n        policy latency\n",
            path.display()
        ),
        &backends,
        &[(AP.name, 7)],
    );
    for region in REGIONS {
        for _ in 0..3 {
            assert_eq!(ipv4_from(&server, region.client, API), [region.ipv4]);
        }
    }
    let (status, metrics) = server.http_get("/metrics").expect("scrape");
    assert_eq!(status, 200);
    for (name, kind) in [
        ("dns_geo_answers_total", "counter"),
        ("dns_geo_region_healthy", "gauge"),
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} {kind}")),
            "{name} {kind} missing:\n{metrics}"
        );
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "{name} help:\n{metrics}"
        );
    }
    for region in REGIONS {
        let answers = sample(
            &metrics,
            "dns_geo_answers_total",
            &[("zone", "aikernel.io"), ("region", region.name)],
        );
        assert!(
            answers.is_some_and(|count| count >= 3.0),
            "answers for {}: {answers:?}\n{metrics}",
            region.name
        );
        let healthy = sample(
            &metrics,
            "dns_geo_region_healthy",
            &[("name", API), ("region", region.name)],
        );
        assert_eq!(healthy, Some(1.0), "{} healthy:\n{metrics}", region.name);
    }

    let listing = admin_json(&server, "/api/v1/geo");
    assert_eq!(listed_regions(&listing, API).len(), 3, "{listing:#}");
    for region in REGIONS {
        let entry = listed_region(&listing, API, region.name);
        assert_eq!(
            entry.get("healthy"),
            Some(&Value::Bool(true)),
            "{listing:#}"
        );
        let priority = if region.name == AP.name { 7 } else { 100 };
        assert_eq!(
            entry.get("priority").and_then(Value::as_u64),
            Some(priority),
            "{listing:#}"
        );
        let listed = entry
            .get("addresses")
            .map(Value::to_string)
            .unwrap_or_default();
        assert!(
            listed.contains(region.ipv4) && listed.contains(region.ipv6),
            "{} addresses: {listing:#}",
            region.name
        );
    }

    // Placed by a client network.
    let explain = admin_json(
        &server,
        &format!("/api/v1/geo/explain?name={API}&client={}", US.client),
    );
    assert_explained(&explain, "client_network", Some(US.name), US.name, 3);
    // Placed by the database: Amsterdam, network /20.
    let explain = admin_json(
        &server,
        &format!("/api/v1/geo/explain?name={API}&client=193.0.6.1"),
    );
    assert_explained(&explain, "database", Some(EU.name), EU.name, 3);
    let location = explain_location(&explain);
    assert_eq!(
        location.get("scope").and_then(Value::as_u64),
        Some(20),
        "{explain:#}"
    );
    let coordinates = location
        .get("coordinates")
        .map(Value::to_string)
        .unwrap_or_default();
    assert!(
        coordinates.contains("52.37") && coordinates.contains("4.89"),
        "{explain:#}"
    );
    // An ECS-style subnet: the database network's /11 capped by the /8 sent.
    let explain = admin_json(
        &server,
        &format!("/api/v1/geo/explain?name={API}&client=18.0.0.0/8"),
    );
    assert_explained(&explain, "database", Some(US.name), US.name, 3);
    assert_eq!(
        explain_location(&explain)
            .get("scope")
            .and_then(Value::as_u64),
        Some(8),
        "{explain:#}"
    );
    // Unknown: no mapping, and no database record for a documentation range.
    let explain = admin_json(
        &server,
        &format!("/api/v1/geo/explain?name={API}&client=198.51.100.7"),
    );
    assert_eq!(
        text(explain_location(&explain), "source"),
        Some("unknown"),
        "{explain:#}"
    );
    assert_eq!(
        explain_location(&explain)
            .get("scope")
            .and_then(Value::as_u64),
        Some(0)
    );

    // us-east-1 fails: its gauge drops, the listing says so, explain tells why.
    backends.set_region(&US, FAILING);
    wait_moved(&server, US.client, &[AP.ipv4], REMOVAL_LIMIT);
    let (_, metrics) = server.http_get("/metrics").expect("scrape");
    let healthy = |region: &str| {
        sample(
            &metrics,
            "dns_geo_region_healthy",
            &[("name", API), ("region", region)],
        )
    };
    assert_eq!(
        (healthy(US.name), healthy(EU.name), healthy(AP.name)),
        (Some(0.0), Some(1.0), Some(1.0)),
        "{metrics}"
    );
    let listing = admin_json(&server, "/api/v1/geo");
    for region in REGIONS {
        assert_eq!(
            listed_region(&listing, API, region.name).get("healthy"),
            Some(&Value::Bool(region.name != US.name)),
            "{listing:#}"
        );
    }
    let explain = admin_json(
        &server,
        &format!("/api/v1/geo/explain?name={API}&client={}", US.client),
    );
    assert_explained(&explain, "client_network", Some(US.name), AP.name, 3);

    // All down: every answer is every region, counted under region "all".
    backends.set_all(FAILING);
    wait_moved(&server, EU.client, &ALL_IPV4, REMOVAL_LIMIT);
    let (_, metrics) = server.http_get("/metrics").expect("scrape");
    let all = sample(
        &metrics,
        "dns_geo_answers_total",
        &[("zone", "aikernel.io"), ("region", "all")],
    );
    assert!(
        all.is_some_and(|count| count >= 1.0),
        "region=\"all\": {all:?}\n{metrics}"
    );
    let explain = admin_json(
        &server,
        &format!("/api/v1/geo/explain?name={API}&client={}", EU.client),
    );
    assert_eq!(explain_choice(&explain), Some("all"), "{explain:#}");
}

/// The `location` object of an explain answer.
fn explain_location(explain: &Value) -> &serde_json::Map<String, Value> {
    explain
        .get("location")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no location object: {explain:#}"))
}

/// The chosen region of an explain answer (a region, or "all").
fn explain_choice(explain: &Value) -> Option<&str> {
    explain.get("chosen")?.as_str()
}

/// The regions `GET /api/v1/geo` lists for the geo name `name`
/// (`{"names": [{"name", "zone", "regions": [...]}]}`).
fn listed_regions<'a>(listing: &'a Value, name: &str) -> &'a [Value] {
    listing
        .get("names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .find(|entry| text(entry, "name") == Some(name))
        .and_then(|entry| entry.get("regions")?.as_array())
        .unwrap_or_else(|| panic!("{name} missing from /api/v1/geo: {listing:#}"))
}

/// One region of a geo name in `GET /api/v1/geo`.
fn listed_region<'a>(
    listing: &'a Value,
    name: &str,
    region: &str,
) -> &'a serde_json::Map<String, Value> {
    listed_regions(listing, name)
        .iter()
        .filter_map(Value::as_object)
        .find(|entry| text(entry, "region") == Some(region))
        .unwrap_or_else(|| panic!("{name} {region} missing from /api/v1/geo: {listing:#}"))
}

/// Asserts an explain answer: how the client was placed, its home region,
/// the chosen region, a reason, and for each of `candidates` its health and
/// expected latency; under policy latency the chosen region is the cheapest
/// healthy one.
fn assert_explained(
    explain: &Value,
    source: &str,
    home: Option<&str>,
    chosen: &str,
    candidates: usize,
) {
    let location = explain_location(explain);
    assert_eq!(text(location, "source"), Some(source), "{explain:#}");
    assert_eq!(text(location, "home"), home, "{explain:#}");
    assert_eq!(explain_choice(explain), Some(chosen), "{explain:#}");
    assert!(
        explain
            .get("reason")
            .and_then(Value::as_str)
            .is_some_and(|reason| reason.contains("latency")),
        "the reason names the policy: {explain:#}"
    );
    let costs: Vec<(&str, bool, f64)> = explain
        .get("candidates")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no candidates: {explain:#}"))
        .iter()
        .map(|candidate| {
            let candidate = candidate.as_object().expect("candidate object");
            (
                text(candidate, "region").expect("candidate region"),
                candidate
                    .get("healthy")
                    .and_then(Value::as_bool)
                    .expect("candidate health"),
                candidate
                    .get("expected_latency_ms")
                    .and_then(Value::as_f64)
                    .unwrap_or_else(|| panic!("a cost per candidate: {explain:#}")),
            )
        })
        .collect();
    assert_eq!(costs.len(), candidates, "{explain:#}");
    let cheapest = costs
        .iter()
        .filter(|(_, healthy, _)| *healthy)
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(region, _, _)| *region);
    assert_eq!(
        cheapest,
        Some(chosen),
        "the cheapest healthy candidate: {explain:#}"
    );
}
