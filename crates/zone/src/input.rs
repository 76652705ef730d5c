//! What a snapshot is built from: sources' states and how to compile each.
//!
//! Control plane. A source (in `signpost-discovery`) is opened from a
//! [`SourceSpec`] and delivers complete [`Input`]s; the plugin that asked for
//! it says how its input becomes records (a [`Recipe`]). [`build`] turns the
//! current input of every source into one [`Snapshot`]. Nothing here knows
//! where an input came from.
//!
//! ```text
//! SourceSpec ─open (discovery)─▶ Source ─Input─▶ compiler ─(Recipe, Input)…─▶ build ─▶ Snapshot
//! ```

use crate::builder::SnapshotBuilder;
use crate::cluster::{self, ClusterOptions, GeoOptions, ServiceRecords};
use crate::hosts::{HostsEntry, HostsOptions, add_hosts};
use crate::skydns::{SkyOptions, SkyRecord};
use crate::snapshot::Snapshot;
use crate::zonefile::ZoneFile;
use signpost_model::{AllUnhealthy, ClusterService, ClusterState, EndpointHealth, Verdicts};
use signpost_proto::{Name, rtype};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where a source's data comes from; `signpost-discovery` opens each kind.
/// Not `non_exhaustive`: a new kind must be opened by `signpost-discovery`,
/// and the compiler says where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Kubernetes manifests in files and directories (the `catalog` option),
    /// checked for changes every `poll`.
    Catalog {
        /// Files and directories.
        paths: Vec<PathBuf>,
        /// How often file metadata is checked.
        poll: Duration,
    },
    /// One zone of a master file, re-read every `reload` when its SOA serial
    /// changed (CoreDNS's `file` rule); `reload` zero loads once.
    ZoneFile {
        /// The master file.
        path: PathBuf,
        /// The zone it holds.
        apex: Name,
        /// Serial check interval.
        reload: Duration,
        /// Retry interval until the first good load.
        retry: Duration,
    },
    /// Services and EndpointSlices (and Namespaces, Pods when asked) watched
    /// on a Kubernetes API server.
    Kubernetes(KubernetesApi),
    /// A hosts file plus inline entries, re-read every `reload` when its
    /// modification time changed; `reload` zero reads once.
    Hosts {
        /// The hosts file, if any.
        path: Option<PathBuf>,
        /// Entries written in the Corefile.
        inline: Vec<HostsEntry>,
        /// Check interval.
        reload: Duration,
    },
    /// SkyDNS records under a path of an etcd cluster (the `etcd` plugin),
    /// read once and then followed by a watch.
    Etcd(EtcdSpec),
}

/// Where a DNS replica reads the verdicts a `signpost health` leader
/// publishes (`healthcheck { verdicts ... }`); `signpost-discovery` opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictSpec {
    /// The object holding them.
    pub store: VerdictStoreSpec,
    /// How long the last verdicts stay in use while they cannot be read;
    /// then every endpoint is served (fail open).
    pub stale_after: Duration,
}

/// The object holding published verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictStoreSpec {
    /// A ConfigMap on a Kubernetes API server.
    Kubernetes {
        /// How to reach the API server.
        connection: KubeConnection,
        /// The ConfigMap's namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The key `<prefix>unhealthy` of an etcd cluster (`spec.prefix`).
    Etcd(EtcdSpec),
}

/// Where an `etcd` plugin's records are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSpec {
    /// Client URLs (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The key prefix with a leading and a trailing slash (`/skydns/`).
    pub prefix: String,
    /// User name and password, if the cluster has authentication on.
    pub credentials: Option<(String, Secret)>,
    /// TLS towards the cluster, if any.
    pub tls: Option<EtcdTls>,
}

/// TLS files for an etcd client (CoreDNS `tls [CERT [KEY [CACERT]]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// CA bundle to verify the servers (PEM); the system's roots when absent.
    pub ca: Option<PathBuf>,
}

/// A secret string (a password): `Debug` never shows it, so it cannot reach
/// a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What the `kubernetes` plugin watches on an API server, and how it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesApi {
    /// How to reach and authenticate to the API server.
    pub connection: KubeConnection,
    /// Only these namespaces are served (`namespaces`); empty serves all.
    pub namespaces: Vec<String>,
    /// Label selector for Services, EndpointSlices and Pods (`labels`).
    pub labels: Option<String>,
    /// Label selector for Namespaces (`namespace_labels`): only matching
    /// namespaces are served.
    pub namespace_labels: Option<String>,
    /// Watch EndpointSlices (off with `noendpoints`).
    pub endpoints: bool,
    /// Watch Pods (`pods verified`).
    pub pods: bool,
    /// Watch Ingresses (networking.k8s.io/v1; record sync's `ingress` source).
    pub ingresses: bool,
    /// Watch Nodes (record sync: NodePort services publish node addresses).
    pub nodes: bool,
}

/// How the `kubernetes` plugin reaches its API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeConnection {
    /// In a cluster: the pod's service account (`KUBERNETES_SERVICE_HOST`,
    /// `KUBERNETES_SERVICE_PORT`, the token and CA under
    /// `/var/run/secrets/kubernetes.io/serviceaccount/`). Outside one, the
    /// kubeconfig named by `$KUBECONFIG` when that is set.
    InCluster,
    /// `kubeconfig PATH [CONTEXT]`: that file only, and its current context
    /// unless one is named.
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The context to use.
        context: Option<String>,
    },
    /// `endpoint URL` with an optional `tls CERT KEY CACERT`.
    Endpoint {
        /// The API server's URL (`https://` or `http://`).
        url: String,
        /// Client certificate, key and CA.
        tls: Option<[PathBuf; 3]>,
    },
}

/// A source's complete state.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Services with their endpoints (and pods, for `pods verified`).
    Cluster(Arc<ClusterState>),
    /// A zone from a master file.
    Zone(Arc<ZoneFile>),
    /// Hosts entries: the file's, then the inline ones.
    Hosts(Arc<Vec<HostsEntry>>),
    /// SkyDNS records read from etcd, in key order.
    Sky(Arc<Vec<SkyRecord>>),
}

/// How one source's input becomes records.
#[derive(Debug, Clone)]
pub enum Recipe {
    /// The Kubernetes cluster zone (`serial` and `all_unhealthy` are set at build).
    Cluster(ClusterOptions),
    /// A master file's records, as they are.
    ZoneFile,
    /// A hosts plugin's records.
    Hosts(HostsOptions),
    /// An `etcd` plugin's SkyDNS zones.
    Etcd(SkyOptions),
}

/// What a build needs besides the inputs.
pub struct BuildOptions<'a> {
    /// The snapshot's generation.
    pub generation: u64,
    /// Geographic names, when the `geo` plugin is on (`serial` is set at build).
    pub geo: Option<&'a GeoOptions>,
    /// Which endpoints health checks took out.
    pub health: &'a Arc<Verdicts>,
    /// What a checked service whose endpoints all fail serves.
    pub all_unhealthy: AllUnhealthy,
    /// The SOA serial of the zones signpost writes (Unix seconds of the build).
    pub serial: u32,
}

/// How a build went about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    /// Every name rendered.
    Full,
    /// Only the names of changed services rendered; the rest shared with
    /// the snapshot before.
    Changes {
        /// Services compiled again.
        services: usize,
    },
}

/// The Unix time in seconds, as the SOA serial of a build at this moment.
pub fn serial_now() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32)
}

/// Builds a snapshot from every source's current input, in order. Returns it
/// with one message per record that could not be served.
pub fn build(parts: &[(&Recipe, &Input)], options: &BuildOptions<'_>) -> (Snapshot, Vec<String>) {
    let (builder, problems) = fill(parts, options);
    (builder.build(), problems)
}

/// A new builder holding every part's records.
fn fill(parts: &[(&Recipe, &Input)], options: &BuildOptions<'_>) -> (SnapshotBuilder, Vec<String>) {
    let serial = options.serial;
    let health: &dyn EndpointHealth = &**options.health;
    let mut builder = SnapshotBuilder::new(options.generation);
    let mut problems = Vec::new();
    for (recipe, input) in parts {
        match (recipe, input) {
            (Recipe::Cluster(cluster_options), Input::Cluster(state)) => {
                let cluster_options = ClusterOptions {
                    serial,
                    all_unhealthy: options.all_unhealthy,
                    ..cluster_options.clone()
                };
                let services: Vec<&ClusterService> = state.services.iter().map(|s| &**s).collect();
                problems.extend(cluster::compile_services_parallel(
                    &mut builder,
                    &services,
                    &cluster_options,
                    &**options.health,
                    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
                ));
                if cluster_options.pods == crate::PodMode::Verified {
                    cluster::compile_pods(
                        &mut builder,
                        &state.pods,
                        &cluster_options,
                        &mut problems,
                    );
                }
            }
            (Recipe::ZoneFile, Input::Zone(zone)) => {
                builder.add_file_zone(zone.apex.clone(), Vec::new());
                for record in &zone.records {
                    if let Err(error) = builder.add_record(
                        record.owner.clone(),
                        record.rtype,
                        record.ttl,
                        record.rdata.clone(),
                    ) {
                        problems.push(format!(
                            "{}:{}: {error}",
                            record.file.display(),
                            record.line
                        ));
                    }
                }
                builder.attach_zone_file(zone.clone());
            }
            (Recipe::Hosts(hosts_options), Input::Hosts(entries)) => {
                add_hosts(&mut builder, entries, hosts_options, &mut problems);
            }
            (Recipe::Etcd(sky_options), Input::Sky(records)) => {
                crate::skydns::compile(&mut builder, records, sky_options, serial);
            }
            (recipe, input) => problems.push(format!(
                "internal: a {} input reached a {} recipe",
                input.kind(),
                recipe.kind()
            )),
        }
    }
    if let Some(geo) = options.geo {
        let services = parts
            .iter()
            .flat_map(|(_, input)| input.services())
            .map(|s| &**s);
        let geo = GeoOptions {
            serial,
            ..geo.clone()
        };
        cluster::compile_geo(&mut builder, services, &geo, health, &mut problems);
    }
    (builder, problems)
}

/// Builds snapshots for one listener, keeping what the last build made: when
/// only cluster services (or their health verdicts) changed, the next build
/// takes back the old services' records, adds the new ones' and renders only
/// the names they touch; the snapshot shares every other answer with the one
/// before. Anything else (a zone file, hosts, etcd, pods with `pods
/// verified`, a geographic service, a zone cut or wildcard) builds from
/// scratch. Either way the answers are the same as [`build`]'s.
#[derive(Default)]
pub struct Builds {
    last: Option<Last>,
}

/// What the last build made.
struct Last {
    builder: SnapshotBuilder,
    snapshot: Arc<Snapshot>,
    serial: u32,
    inputs: Vec<Input>,
    verdicts: Arc<Verdicts>,
    all_unhealthy: AllUnhealthy,
}

/// A service before and after a change.
type ServiceChange = (Option<Arc<ClusterService>>, Option<Arc<ClusterService>>);

// === impl Builds ===

impl Builds {
    /// Builds the snapshot of `parts` (the same parts, in the same order,
    /// every time; only their inputs change).
    pub fn build(
        &mut self,
        parts: &[(&Recipe, &Input)],
        options: &BuildOptions<'_>,
    ) -> (Arc<Snapshot>, Vec<String>, BuildKind) {
        if let Some(last) = self.last.as_mut()
            && let Some((snapshot, problems, services)) = last.apply_changes(parts, options)
        {
            return (snapshot, problems, BuildKind::Changes { services });
        }
        let (mut builder, problems) = fill(parts, options);
        let snapshot = Arc::new(builder.render());
        self.last = Some(Last {
            builder,
            snapshot: snapshot.clone(),
            serial: options.serial,
            inputs: parts.iter().map(|(_, input)| (*input).clone()).collect(),
            verdicts: options.health.clone(),
            all_unhealthy: options.all_unhealthy,
        });
        (snapshot, problems, BuildKind::Full)
    }

    /// Finishes the bookkeeping the last build left for later: call it
    /// after its snapshot serves, so a large first build serves sooner.
    pub fn settle(&mut self) {
        if let Some(last) = &mut self.last {
            last.builder.settle();
        }
    }

    /// Forgets the last build: the next one starts from scratch.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

// === impl Last ===

impl Last {
    /// The incremental build, or `None` when this change needs a full one
    /// (the kept state is then dropped by the caller's full build).
    fn apply_changes(
        &mut self,
        parts: &[(&Recipe, &Input)],
        options: &BuildOptions<'_>,
    ) -> Option<(Arc<Snapshot>, Vec<String>, usize)> {
        if parts.len() != self.inputs.len() || options.all_unhealthy != self.all_unhealthy {
            return None;
        }
        let verdicts_changed = !Arc::ptr_eq(options.health, &self.verdicts)
            && options.health.unhealthy != self.verdicts.unhealthy;
        // Services whose verdicts changed: (namespace, service).
        let sick: HashSet<(&str, &str)> = if verdicts_changed {
            if options.geo.is_some() {
                return None;
            }
            options
                .health
                .unhealthy
                .symmetric_difference(&self.verdicts.unhealthy)
                .map(|key| (key.namespace.as_str(), key.service.as_str()))
                .collect()
        } else {
            HashSet::new()
        };
        // Per cluster part: its options and its changed services.
        let mut work: Vec<(ClusterOptions, Vec<ServiceChange>)> = Vec::new();
        for ((recipe, input), before) in parts.iter().zip(&self.inputs) {
            match (recipe, input, before) {
                (Recipe::Cluster(cluster_options), Input::Cluster(now), Input::Cluster(then)) => {
                    let mut changes = if Arc::ptr_eq(now, then) {
                        Vec::new()
                    } else {
                        // Pod records are compiled from scratch (`pods verified`).
                        if cluster_options.pods == crate::PodMode::Verified
                            && (now.changes.as_ref().is_none_or(|c| c.pods)
                                || now.pods != then.pods)
                        {
                            return None;
                        }
                        service_changes(then, now)
                    };
                    if !sick.is_empty() {
                        let listed: HashSet<(String, String)> = changes
                            .iter()
                            .filter_map(|(_, after)| after.as_deref())
                            .map(|s| (s.namespace.clone(), s.name.clone()))
                            .collect();
                        let mut extra = Vec::new();
                        for service in &now.services {
                            let key = (service.namespace.as_str(), service.name.as_str());
                            if sick.contains(&key)
                                && !listed.contains(&(key.0.to_owned(), key.1.to_owned()))
                            {
                                extra.push((Some(service.clone()), Some(service.clone())));
                            }
                        }
                        changes.extend(extra);
                    }
                    if options.geo.is_some()
                        && changes.iter().any(|(before, after)| {
                            before.as_ref().is_some_and(|s| s.geo.is_some())
                                || after.as_ref().is_some_and(|s| s.geo.is_some())
                        })
                    {
                        return None;
                    }
                    let cluster_options = ClusterOptions {
                        serial: options.serial,
                        all_unhealthy: options.all_unhealthy,
                        ..cluster_options.clone()
                    };
                    work.push((cluster_options, changes));
                }
                (_, now, then) if same_input(now, then) => {}
                _ => return None,
            }
        }
        let old_health: &dyn EndpointHealth = &*self.verdicts;
        let new_health: &dyn EndpointHealth = &**options.health;
        let builder = &mut self.builder;
        // The SOA serial of the cluster zones is the build's time.
        if options.serial != self.serial {
            for (cluster_options, _) in &work {
                for zone in &cluster_options.zones {
                    let before = ClusterOptions {
                        serial: self.serial,
                        ..cluster_options.clone()
                    };
                    let (Some(old), Some(new)) = (
                        cluster::zone_settings(zone, &before),
                        cluster::zone_settings(zone, cluster_options),
                    ) else {
                        continue;
                    };
                    let old_soa = SnapshotBuilder::zone_soa(&old);
                    if builder.remove_record(zone, rtype::SOA, old.ttl, &old_soa) {
                        builder
                            .add_record(
                                zone.clone(),
                                rtype::SOA,
                                new.ttl,
                                SnapshotBuilder::zone_soa(&new),
                            )
                            .ok()?;
                    }
                }
            }
        }
        let mut problems = Vec::new();
        let mut compiled = 0;
        for (cluster_options, changes) in &work {
            let before = ClusterOptions {
                serial: self.serial,
                ..cluster_options.clone()
            };
            for (old, _) in changes {
                if let Some(old) = old {
                    ServiceRecords::compile(old, &before, old_health).remove_from(builder);
                }
            }
        }
        for (cluster_options, changes) in &work {
            for (_, new) in changes {
                let Some(new) = new else { continue };
                compiled += 1;
                let records = ServiceRecords::compile(new, cluster_options, new_health);
                let mut rejected = Vec::new();
                records.add_to(builder, &mut rejected);
                // A record the builder rejects (CNAME beside other data)
                // depends on the order services arrive in: build from scratch.
                if rejected.len() > records.problems.len() {
                    return None;
                }
                problems.extend(rejected);
            }
        }
        builder.set_generation(options.generation);
        let snapshot = Arc::new(builder.render_changes(&self.snapshot)?);
        self.snapshot = snapshot.clone();
        self.serial = options.serial;
        self.inputs = parts.iter().map(|(_, input)| (*input).clone()).collect();
        self.verdicts = options.health.clone();
        Some((snapshot, problems, compiled))
    }
}

/// The same input (the same shared state, not merely equal).
fn same_input(a: &Input, b: &Input) -> bool {
    match (a, b) {
        (Input::Cluster(a), Input::Cluster(b)) => Arc::ptr_eq(a, b),
        (Input::Zone(a), Input::Zone(b)) => Arc::ptr_eq(a, b),
        (Input::Hosts(a), Input::Hosts(b)) => Arc::ptr_eq(a, b),
        (Input::Sky(a), Input::Sky(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// The services that differ between two states of one source: from the
/// source's own account when it chains onto `then`, else by comparing the
/// lists (shared `Arc`s are unchanged services).
fn service_changes(then: &ClusterState, now: &ClusterState) -> Vec<ServiceChange> {
    if let Some(changes) = &now.changes
        && now.revision != 0
        && changes.since == then.revision
    {
        return changes.services.clone();
    }
    let same_order =
        then.services.len() == now.services.len()
            && then.services.iter().zip(&now.services).all(|(a, b)| {
                Arc::ptr_eq(a, b) || (a.namespace == b.namespace && a.name == b.name)
            });
    if same_order {
        return then
            .services
            .iter()
            .zip(&now.services)
            .filter(|(a, b)| !Arc::ptr_eq(a, b) && a != b)
            .map(|(a, b)| (Some(a.clone()), Some(b.clone())))
            .collect();
    }
    let key = |s: &Arc<ClusterService>| (s.namespace.clone(), s.name.clone());
    let mut before: HashMap<(String, String), &Arc<ClusterService>> =
        then.services.iter().map(|s| (key(s), s)).collect();
    let mut changes = Vec::new();
    for service in &now.services {
        match before.remove(&key(service)) {
            Some(old) if Arc::ptr_eq(old, service) || **old == **service => {}
            old => changes.push((old.cloned(), Some(service.clone()))),
        }
    }
    changes.extend(before.into_values().map(|old| (Some(old.clone()), None)));
    changes
}

// === impl Input ===

impl Input {
    /// Services, when this is a cluster input.
    pub fn services(&self) -> &[Arc<ClusterService>] {
        match self {
            Self::Cluster(state) => &state.services,
            Self::Zone(_) | Self::Hosts(_) | Self::Sky(_) => &[],
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Cluster(_) => "cluster",
            Self::Zone(_) => "zone file",
            Self::Hosts(_) => "hosts",
            Self::Sky(_) => "etcd",
        }
    }
}

// === impl Recipe ===

impl Recipe {
    fn kind(&self) -> &'static str {
        match self {
            Self::Cluster(_) => "cluster",
            Self::ZoneFile => "zone file",
            Self::Hosts(_) => "hosts",
            Self::Etcd(_) => "etcd",
        }
    }
}
