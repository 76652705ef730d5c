//! The Kubernetes cluster zone: records from services and their endpoints.
//!
//! Control plane. Implements the Kubernetes DNS-Based Service Discovery
//! specification, schema 1.1.0 (dual-stack), with CoreDNS's choices where the
//! specification leaves room (SRV weights, dashed IPv6 host names, the SOA and
//! `ns.dns.<zone>`). Sources translate their objects into [`ClusterService`]s,
//! so this module knows nothing about how they were found.

use crate::builder::{SnapshotBuilder, ZoneSettings};
use crate::snapshot::{GeoRegion, PodMode};
use signpost_model::{
    AllHealthy, AllUnhealthy, ClusterEndpoint, ClusterService, EndpointHealth, Protocol,
    ServiceKind,
};
use signpost_proto::{Name, rdata, rtype};
use std::net::IpAddr;

/// The version of the specification served at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The `geo` plugin's zones and regions, for compiling geographic names.
#[derive(Debug, Clone)]
pub struct GeoOptions {
    /// Zones the geographic and regional names live in.
    pub zones: Vec<Name>,
    /// Region names in configuration order.
    pub regions: Vec<String>,
    /// TTL of geographic answers.
    pub ttl: u32,
    /// SOA serial of the zones.
    pub serial: u32,
}

/// Geographic names compiled from services: name → regions.
type GeoNames = std::collections::BTreeMap<Name, Vec<GeoRegion>>;

/// Adds the geo zones, every regional hostname with its region's addresses,
/// and every geographic name with its regions (chosen per query).
pub fn compile_geo<'a>(
    builder: &mut SnapshotBuilder,
    services: impl IntoIterator<Item = &'a ClusterService>,
    options: &GeoOptions,
    health: &dyn EndpointHealth,
    problems: &mut Vec<String>,
) {
    for zone in &options.zones {
        let (Ok(primary), Ok(mailbox)) = (
            zone.child("dns").and_then(|n| n.child("ns")),
            zone.child("hostmaster"),
        ) else {
            continue;
        };
        builder.add_zone(ZoneSettings {
            apex: zone.clone(),
            ttl: options.ttl,
            primary,
            mailbox,
            serial: options.serial,
            minimum: options.ttl,
            fallthrough: Vec::new(),
            pods: PodMode::Disabled,
        });
    }
    let in_zones = |name: &Name| options.zones.iter().any(|z| name.is_within(z));
    let mut names = GeoNames::new();
    for service in services {
        let Some(spec) = &service.geo else { continue };
        let Some(region) = options.regions.iter().position(|r| *r == spec.region) else {
            problems.push(format!(
                "service {}/{}: region {:?} is not configured in the geo plugin",
                service.namespace, service.name, spec.region
            ));
            continue;
        };
        let ready: Vec<(&ClusterEndpoint, IpAddr)> = service
            .endpoints
            .iter()
            .filter(|e| e.ready || service.publish_not_ready)
            .flat_map(|e| e.addresses.iter().map(move |&a| (e, a)))
            .collect();
        let healthy_endpoints: Vec<IpAddr> = ready
            .iter()
            .filter(|(_, a)| !health.is_unhealthy(&service.namespace, &service.name, *a))
            .map(|(_, a)| *a)
            .collect();
        let healthy = service.health_check.is_none() || !healthy_endpoints.is_empty();
        let addresses = if !service.external_addresses.is_empty() {
            service.external_addresses.clone()
        } else if healthy_endpoints.is_empty() {
            ready.iter().map(|(_, a)| *a).collect()
        } else {
            healthy_endpoints
        };
        let regional = match spec.regional_name.as_deref().map(host_name) {
            None => None,
            Some(Ok(name)) => Some(name),
            Some(Err(why)) => {
                problems.push(format!(
                    "service {}/{}: regional hostname {:?} {why}",
                    service.namespace,
                    service.name,
                    spec.regional_name.as_deref().unwrap_or_default()
                ));
                None
            }
        };
        if let Some(regional) = regional
            && in_zones(&regional)
        {
            for &address in &addresses {
                let (rr_type, data) = match address {
                    IpAddr::V4(v4) => (rtype::A, rdata::a(v4)),
                    IpAddr::V6(v6) => (rtype::AAAA, rdata::aaaa(v6)),
                };
                if let Err(error) = builder.add_record(regional.clone(), rr_type, options.ttl, data)
                {
                    problems.push(error.to_string());
                }
            }
        }
        let geo_name = match spec.geo_name().as_deref().map(host_name) {
            Some(Ok(name)) => name,
            Some(Err(why)) => {
                problems.push(format!(
                    "service {}/{}: geo name {:?} {why}",
                    service.namespace,
                    service.name,
                    spec.geo_name().unwrap_or_default()
                ));
                continue;
            }
            None => {
                problems.push(format!(
                    "service {}/{}: no geo name (set dns.aikernel.io/geo-hostname)",
                    service.namespace, service.name
                ));
                continue;
            }
        };
        if !in_zones(&geo_name) {
            problems.push(format!(
                "service {}/{}: {geo_name} is outside the geo zones",
                service.namespace, service.name
            ));
            continue;
        }
        names.entry(geo_name).or_default().push(GeoRegion {
            region,
            priority: spec.priority,
            healthy,
            addresses,
        });
    }
    for (name, regions) in names {
        // The name exists (NODATA for other types); its A/AAAA are chosen per query.
        if let Err(error) = builder.add_empty_name(name.clone()) {
            problems.push(error.to_string());
            continue;
        }
        builder.add_geo_name(name, options.ttl, regions);
    }
}

/// A name from an annotation as a host name (RFC 1123 §2.1, RFC 952): labels of
/// letters, digits and inner hyphens, 1–63 octets each, 253 in all. Annotations
/// are written by whoever may create a Service, so anything else (spaces,
/// backslashes, `*`, control characters, escapes that `Name` would accept as
/// octets) is refused with the reason rather than served.
fn host_name(text: &str) -> Result<Name, String> {
    let text = text.trim_end_matches('.');
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.len() > 253 {
        return Err(format!("is {} characters long (at most 253)", text.len()));
    }
    for label in text.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "has a label of {} characters (1 to 63)",
                label.len()
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "has {label:?}: only letters, digits and '-' make a host name"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has {label:?}: a label cannot start or end with '-'"
            ));
        }
    }
    Name::from_ascii(text).map_err(|error| format!("is not a DNS name: {error}"))
}

/// Options of the `kubernetes` plugin that shape the records.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The plugin's zones: forward zones (like `cluster.local.`) and reverse
    /// zones (below `in-addr.arpa.` or `ip6.arpa.`).
    pub zones: Vec<Name>,
    /// TTL of every record (CoreDNS `ttl`, default 30, the reference deployment's value).
    pub ttl: u32,
    /// Pod records.
    pub pods: PodMode,
    /// Name headless endpoints without a hostname after their pod.
    pub endpoint_pod_names: bool,
    /// Zones that fall through (CoreDNS `fallthrough [ZONES...]`).
    pub fallthrough: Vec<Name>,
    /// SOA serial.
    pub serial: u32,
    /// What a checked service whose endpoints are all unhealthy serves.
    pub all_unhealthy: AllUnhealthy,
}

/// The default record TTL: 30 seconds, the reference deployment's.
pub const DEFAULT_TTL: u32 = 30;

/// True for zones below `in-addr.arpa.` or `ip6.arpa.`.
pub fn is_reverse_zone(zone: &Name) -> bool {
    let v4 = Name::from_ascii("in-addr.arpa.").expect("valid literal");
    let v6 = Name::from_ascii("ip6.arpa.").expect("valid literal");
    zone.is_within(&v4) || zone.is_within(&v6)
}

/// Adds the plugin's zones and the records of `services` to `builder`, with
/// every endpoint healthy. Returns one message per object that could not be
/// served in full.
pub fn compile(
    builder: &mut SnapshotBuilder,
    services: &[ClusterService],
    options: &ClusterOptions,
) -> Vec<String> {
    compile_with_health(builder, services, options, &AllHealthy)
}

/// Like [`compile`], leaving out endpoint addresses `health` marks unhealthy
/// (headless A/AAAA, endpoint names, SRV and PTR records).
pub fn compile_with_health(
    builder: &mut SnapshotBuilder,
    services: &[ClusterService],
    options: &ClusterOptions,
    health: &dyn EndpointHealth,
) -> Vec<String> {
    compile_services(builder, services.iter(), options, health)
}

/// [`compile_with_health`] over any sequence of services: the zones, their
/// own records, then every service's [`ServiceRecords`].
pub fn compile_services<'a>(
    builder: &mut SnapshotBuilder,
    services: impl IntoIterator<Item = &'a ClusterService>,
    options: &ClusterOptions,
    health: &dyn EndpointHealth,
) -> Vec<String> {
    let mut problems = add_zones(builder, options);
    for service in services {
        let records = ServiceRecords::compile(service, options, health);
        records.add_into(builder, &mut problems);
    }
    problems
}

/// [`compile_services`] with the services' records compiled on up to
/// `threads` scoped threads while this one adds them to `builder` in the
/// services' order (so the builder, and every answer, is the same as
/// [`compile_services`] gives). A first build of a large cluster spends a
/// third of its time here.
pub fn compile_services_parallel(
    builder: &mut SnapshotBuilder,
    services: &[&ClusterService],
    options: &ClusterOptions,
    health: &(dyn EndpointHealth + Sync),
    threads: usize,
) -> Vec<String> {
    /// Services per unit of work: large enough that the hand-over costs
    /// nothing next to the compiling, small enough to keep both sides busy.
    const CHUNK: usize = 2048;
    if threads <= 1 || services.len() <= CHUNK {
        return compile_services(builder, services.iter().copied(), options, health);
    }
    let mut problems = add_zones(builder, options);
    let chunks: Vec<&[&ClusterService]> = services.chunks(CHUNK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Compiled chunks wait at most this many ahead of the one being added,
    // so the records in flight stay a small part of the heap.
    let (sender, compiled) =
        std::sync::mpsc::sync_channel::<(usize, Vec<ServiceRecords>)>(threads * 2);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(chunks.len()) {
            let sender = sender.clone();
            let (chunks, next) = (&chunks, &next);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(index) else {
                        break;
                    };
                    let records = chunk
                        .iter()
                        .map(|service| ServiceRecords::compile(service, options, health))
                        .collect();
                    if sender.send((index, records)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut waiting: std::collections::BTreeMap<usize, Vec<ServiceRecords>> =
            std::collections::BTreeMap::new();
        let mut wanted = 0;
        for (index, records) in compiled.iter() {
            waiting.insert(index, records);
            while let Some(records) = waiting.remove(&wanted) {
                for service in records {
                    service.add_into(builder, &mut problems);
                }
                wanted += 1;
            }
        }
    });
    problems
}

/// Adds the plugin's zones with their SOA, NS, `dns-version` and (with pod
/// records) `pod` names. Returns the zones it could not add.
pub fn add_zones(builder: &mut SnapshotBuilder, options: &ClusterOptions) -> Vec<String> {
    let mut problems = Vec::new();
    for zone in &options.zones {
        let Some(settings) = zone_settings(zone, options) else {
            problems.push(format!("zone {zone} is too long to hold its SOA names"));
            continue;
        };
        builder.add_zone(settings);
    }
    for zone in options.zones.iter().filter(|z| !is_reverse_zone(z)) {
        if let Ok(version) = zone.child("dns-version") {
            let data = rdata::txt(&[SCHEMA_VERSION]);
            if let Err(error) = builder.add_record(version, rtype::TXT, options.ttl, data) {
                problems.push(error.to_string());
            }
        }
        if options.pods != PodMode::Disabled
            && let Ok(pod) = zone.child("pod")
            && let Err(error) = builder.add_empty_name(pod)
        {
            problems.push(error.to_string());
        }
    }
    problems
}

/// The SOA settings of one of the plugin's zones (`None`: too long a name).
pub fn zone_settings(zone: &Name, options: &ClusterOptions) -> Option<ZoneSettings> {
    let primary = zone.child("dns").and_then(|n| n.child("ns")).ok()?;
    let mailbox = zone.child("hostmaster").ok()?;
    Some(ZoneSettings {
        apex: zone.clone(),
        ttl: options.ttl,
        primary,
        mailbox,
        serial: options.serial,
        minimum: options.ttl,
        fallthrough: options
            .fallthrough
            .iter()
            .filter(|f| f.is_within(zone) || zone.is_within(f))
            .cloned()
            .collect(),
        pods: if is_reverse_zone(zone) {
            PodMode::Disabled
        } else {
            options.pods
        },
    })
}

/// Everything one service contributes to the cluster zones: records (all
/// with the plugin's TTL) and names that exist without records, each once,
/// sorted. Building from scratch adds every service's; a change takes the
/// old service's back ([`Self::remove_from`]) and adds the new one's, which
/// gives the same answers as building from scratch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceRecords {
    /// (owner, type, RDATA).
    pub records: Vec<(Name, u16, Vec<u8>)>,
    /// Names that exist without records.
    pub empty: Vec<Name>,
    /// Parts of the service that could not be named.
    pub problems: Vec<String>,
    ttl: u32,
}

// === impl ServiceRecords ===

impl ServiceRecords {
    /// Compiles one service.
    pub fn compile(
        service: &ClusterService,
        options: &ClusterOptions,
        health: &dyn EndpointHealth,
    ) -> Self {
        let mut out = Self {
            ttl: options.ttl,
            ..Self::default()
        };
        let reverse: Vec<&Name> = options
            .zones
            .iter()
            .filter(|z| is_reverse_zone(z))
            .collect();
        let forward = options.zones.iter().filter(|z| !is_reverse_zone(z));
        let mut compiler = Compiler {
            out: &mut out,
            options,
            reverse: &reverse,
            health,
        };
        let mut first = None;
        for zone in forward {
            first.get_or_insert(zone);
            compiler.service_records(zone, service);
        }
        // PTR targets live in the first forward zone, as in CoreDNS.
        if let Some(first) = first {
            compiler.reverse_records(first, service);
        }
        out.records.sort_unstable();
        out.records.dedup();
        out.empty.sort_unstable();
        out.empty.dedup();
        out
    }

    /// Adds everything to `builder`; what it rejects goes to `problems`.
    pub fn add_to(&self, builder: &mut SnapshotBuilder, problems: &mut Vec<String>) {
        problems.extend(self.problems.iter().cloned());
        for name in &self.empty {
            if let Err(error) = builder.add_empty_name(name.clone()) {
                problems.push(error.to_string());
            }
        }
        for (owner, rr_type, data) in &self.records {
            if let Err(error) = builder.add_record(owner.clone(), *rr_type, self.ttl, data.clone())
            {
                problems.push(error.to_string());
            }
        }
    }

    /// [`Self::add_to`], moving the names and RDATA into the builder instead
    /// of copying them (a full build, which does not keep the records).
    pub fn add_into(self, builder: &mut SnapshotBuilder, problems: &mut Vec<String>) {
        problems.extend(self.problems);
        for name in self.empty {
            if let Err(error) = builder.add_empty_name(name) {
                problems.push(error.to_string());
            }
        }
        for (owner, rr_type, data) in self.records {
            if let Err(error) = builder.add_record(owner, rr_type, self.ttl, data) {
                problems.push(error.to_string());
            }
        }
    }

    /// Takes back what [`Self::add_to`] added (a record the builder rejected
    /// then is not there to take back, which is fine).
    pub fn remove_from(&self, builder: &mut SnapshotBuilder) {
        for (owner, rr_type, data) in &self.records {
            builder.remove_record(owner, *rr_type, self.ttl, data);
        }
        for name in &self.empty {
            builder.remove_empty_name(name);
        }
    }
}

/// `pods verified`: an A or AAAA record at `<dashed-ip>.<namespace>.pod.<zone>`
/// for each address of each running pod, in every forward zone (CoreDNS
/// answers only addresses a pod in that namespace has).
pub fn compile_pods(
    builder: &mut SnapshotBuilder,
    pods: &[signpost_model::ClusterPod],
    options: &ClusterOptions,
    problems: &mut Vec<String>,
) {
    let forward: Vec<&Name> = options
        .zones
        .iter()
        .filter(|z| !is_reverse_zone(z))
        .collect();
    for zone in forward {
        for pod in pods {
            for &address in &pod.addresses {
                let name =
                    Name::from_ascii(&format!("{}.{}.pod.{zone}", dashed(address), pod.namespace));
                let Ok(name) = name else {
                    problems.push(format!("pod {}/{}: name too long", pod.namespace, pod.name));
                    continue;
                };
                let (rr_type, data) = match address {
                    IpAddr::V4(v4) => (rtype::A, rdata::a(v4)),
                    IpAddr::V6(v6) => (rtype::AAAA, rdata::aaaa(v6)),
                };
                if let Err(error) = builder.add_record(name, rr_type, options.ttl, data) {
                    problems.push(error.to_string());
                }
            }
        }
    }
}

/// A named port of a headless service and its (port, target) pairs.
struct SrvSet(String, Protocol, Vec<(u16, Name)>);

struct Compiler<'a> {
    out: &'a mut ServiceRecords,
    options: &'a ClusterOptions,
    reverse: &'a [&'a Name],
    health: &'a dyn EndpointHealth,
}

// === impl Compiler ===

impl Compiler<'_> {
    fn add(&mut self, owner: &Name, rr_type: u16, data: Vec<u8>) {
        self.out.records.push((owner.clone(), rr_type, data));
    }

    fn add_address(&mut self, owner: &Name, address: IpAddr) {
        match address {
            IpAddr::V4(v4) => self.add(owner, rtype::A, rdata::a(v4)),
            IpAddr::V6(v6) => self.add(owner, rtype::AAAA, rdata::aaaa(v6)),
        }
    }

    fn name(&mut self, parent: &Name, labels: &[&str]) -> Option<Name> {
        let mut name = parent.clone();
        for label in labels.iter().rev() {
            match name.child(label) {
                Ok(child) => name = child,
                Err(error) => {
                    self.out
                        .problems
                        .push(format!("cannot name a record below {parent}: {error}"));
                    return None;
                }
            }
        }
        Some(name)
    }

    fn service_records(&mut self, zone: &Name, service: &ClusterService) {
        let Some(namespace) = self.name(zone, &[service.namespace.as_str(), "svc"]) else {
            return;
        };
        self.empty(namespace.clone());
        let Some(service_name) = self.name(&namespace, &[service.name.as_str()]) else {
            return;
        };
        match &service.kind {
            ServiceKind::ClusterIp(addresses) => self.cluster_ip(&service_name, service, addresses),
            ServiceKind::Headless => self.headless(&service_name, service),
            ServiceKind::ExternalName(target) => match Name::from_ascii(target) {
                Ok(target) => self.add(&service_name, rtype::CNAME, rdata::name(&target)),
                Err(error) => self.out.problems.push(format!(
                    "service {}/{}: externalName {target:?} is not a domain name: {error}",
                    service.namespace, service.name
                )),
            },
        }
        // CoreDNS answers the name server with the DNS service's addresses.
        if service.namespace == "kube-system"
            && service.name == "kube-dns"
            && let (ServiceKind::ClusterIp(addresses), Some(ns)) =
                (&service.kind, self.name(zone, &["ns", "dns"]))
        {
            for &address in addresses {
                self.add_address(&ns, address);
            }
        }
    }

    fn empty(&mut self, name: Name) {
        self.out.empty.push(name);
    }

    fn cluster_ip(&mut self, service_name: &Name, service: &ClusterService, addresses: &[IpAddr]) {
        for &address in addresses {
            self.add_address(service_name, address);
        }
        for port in service.ports.iter().filter(|p| !p.name.is_empty()) {
            let port_label = format!("_{}", port.name);
            if let Some(srv) = self.name(
                service_name,
                &[port_label.as_str(), port.protocol.srv_label()],
            ) {
                self.add(
                    &srv,
                    rtype::SRV,
                    rdata::srv(0, 100, port.port, service_name),
                );
            }
        }
    }

    /// The (endpoint, address) pairs a service serves: ready ones (or all with
    /// `publishNotReadyAddresses`), minus those health checks took out; when
    /// checks took out every one, [`AllUnhealthy`] decides.
    fn served_addresses<'s>(
        &self,
        service: &'s ClusterService,
    ) -> Vec<(&'s ClusterEndpoint, IpAddr)> {
        let all = service.publish_not_ready;
        let candidates: Vec<(&ClusterEndpoint, IpAddr)> = service
            .endpoints
            .iter()
            .filter(|e| all || e.ready)
            .flat_map(|e| e.addresses.iter().map(move |&a| (e, a)))
            .collect();
        if service.health_check.is_none() {
            return candidates;
        }
        let healthy: Vec<(&ClusterEndpoint, IpAddr)> = candidates
            .iter()
            .copied()
            .filter(|(_, a)| {
                !self
                    .health
                    .is_unhealthy(&service.namespace, &service.name, *a)
            })
            .collect();
        if healthy.is_empty() && self.options.all_unhealthy == AllUnhealthy::ServeAll {
            return candidates;
        }
        healthy
    }

    /// The endpoint's host label: hostname, else pod name, else the dashed address.
    fn host_label(&self, endpoint: &ClusterEndpoint, address: IpAddr) -> String {
        if let Some(hostname) = endpoint.hostname.as_deref().filter(|h| !h.is_empty()) {
            return hostname.to_owned();
        }
        if self.options.endpoint_pod_names
            && let Some(pod) = endpoint.pod_name.as_deref().filter(|p| !p.is_empty())
        {
            return pod.to_owned();
        }
        dashed(address)
    }

    fn headless(&mut self, service_name: &Name, service: &ClusterService) {
        let served = self.served_addresses(service);
        // Named ports with the SRV records they collect, in first-seen order.
        let mut srv_sets: Vec<SrvSet> = Vec::new();
        for (endpoint, address) in served {
            self.add_address(service_name, address);
            let label = self.host_label(endpoint, address);
            let Some(host) = self.name(service_name, &[label.as_str()]) else {
                continue;
            };
            self.add_address(&host, address);
            for port in endpoint.ports.iter().filter(|p| !p.name.is_empty()) {
                match srv_sets
                    .iter_mut()
                    .find(|s| s.0 == port.name && s.1 == port.protocol)
                {
                    Some(set) => set.2.push((port.port, host.clone())),
                    None => srv_sets.push(SrvSet(
                        port.name.clone(),
                        port.protocol,
                        vec![(port.port, host.clone())],
                    )),
                }
            }
        }
        for SrvSet(port_name, protocol, targets) in srv_sets {
            let port_label = format!("_{port_name}");
            let Some(srv) = self.name(service_name, &[port_label.as_str(), protocol.srv_label()])
            else {
                continue;
            };
            // CoreDNS spreads weight evenly: 100 / number of targets.
            let weight = (100 / targets.len().max(1)).max(1) as u16;
            for (port, target) in targets {
                self.add(&srv, rtype::SRV, rdata::srv(0, weight, port, &target));
            }
        }
    }

    fn reverse_records(&mut self, zone: &Name, service: &ClusterService) {
        let Some(service_name) = self.name(
            zone,
            &[service.name.as_str(), service.namespace.as_str(), "svc"],
        ) else {
            return;
        };
        match &service.kind {
            ServiceKind::ClusterIp(addresses) => {
                for &address in addresses {
                    self.ptr(address, &service_name);
                }
            }
            ServiceKind::Headless => {
                for (endpoint, address) in self.served_addresses(service) {
                    let label = self.host_label(endpoint, address);
                    if let Some(host) = self.name(&service_name, &[label.as_str()]) {
                        self.ptr(address, &host);
                    }
                }
            }
            ServiceKind::ExternalName(_) => {}
        }
    }

    fn ptr(&mut self, address: IpAddr, target: &Name) {
        let Ok(owner) = Name::from_ascii(&reverse_name(address)) else {
            return;
        };
        if self.reverse.iter().any(|zone| owner.is_within(zone)) {
            self.add(&owner, rtype::PTR, rdata::name(target));
        }
    }
}

/// `10-1-2-3` for IPv4; IPv6 with every `:` as `-` (`fd00--1`), as CoreDNS does.
pub fn dashed(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The reverse-lookup name of an address (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(73);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            out.push_str("ip6.arpa.");
            out
        }
    }
}

#[cfg(test)]
mod host_name_tests {
    use super::host_name;

    #[test]
    fn annotation_names_must_be_host_names() {
        assert_eq!(
            host_name("api.aikernel.io.").unwrap().to_string(),
            "api.aikernel.io."
        );
        assert!(host_name("API-1.eu-west-1.aikernel.io").is_ok());
        let long_label = format!("{}.aikernel.io", "a".repeat(64));
        let long_name = format!("{}aikernel.io", "a23456789.".repeat(25));
        for (bad, why) in [
            ("", "empty"),
            ("we ird.aikernel.io", "only letters"),
            ("we\\000ird.aikernel.io", "only letters"),
            ("*.aikernel.io", "only letters"),
            ("_sip.aikernel.io", "only letters"),
            ("a..aikernel.io", "label of 0"),
            ("-api.aikernel.io", "start or end"),
            (long_label.as_str(), "label of 64"),
            (long_name.as_str(), "at most 253"),
        ] {
            let error = host_name(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }
}
