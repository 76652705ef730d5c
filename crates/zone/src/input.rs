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
use crate::cluster::{self, ClusterOptions, GeoOptions};
use crate::hosts::{HostsEntry, HostsOptions, add_hosts};
use crate::skydns::{SkyOptions, SkyRecord};
use crate::snapshot::Snapshot;
use crate::zonefile::ZoneFile;
use signpost_model::{AllUnhealthy, ClusterService, ClusterState, EndpointHealth};
use signpost_proto::Name;
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
    pub health: &'a dyn EndpointHealth,
    /// What a checked service whose endpoints all fail serves.
    pub all_unhealthy: AllUnhealthy,
}

/// Builds a snapshot from every source's current input, in order. Returns it
/// with one message per record that could not be served.
pub fn build(parts: &[(&Recipe, &Input)], options: &BuildOptions<'_>) -> (Snapshot, Vec<String>) {
    let serial = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let mut builder = SnapshotBuilder::new(options.generation);
    let mut problems = Vec::new();
    for (recipe, input) in parts {
        match (recipe, input) {
            (Recipe::Cluster(cluster_options), Input::Cluster(services)) => {
                let cluster_options = ClusterOptions {
                    serial,
                    all_unhealthy: options.all_unhealthy,
                    ..cluster_options.clone()
                };
                problems.extend(cluster::compile_with_health(
                    &mut builder,
                    &services.services,
                    &cluster_options,
                    options.health,
                ));
                if cluster_options.pods == crate::PodMode::Verified {
                    cluster::compile_pods(
                        &mut builder,
                        &services.pods,
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
        let services: Vec<ClusterService> = parts
            .iter()
            .filter_map(|(_, input)| match input {
                Input::Cluster(state) => Some(state.services.iter().cloned()),
                Input::Zone(_) | Input::Hosts(_) | Input::Sky(_) => None,
            })
            .flatten()
            .collect();
        let geo = GeoOptions {
            serial,
            ..geo.clone()
        };
        cluster::compile_geo(&mut builder, &services, &geo, options.health, &mut problems);
    }
    (builder.build(), problems)
}

// === impl Input ===

impl Input {
    /// Services, when this is a cluster input.
    pub fn services(&self) -> &[ClusterService] {
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
