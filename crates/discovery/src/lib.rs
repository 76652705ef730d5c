//! Where signpost's data comes from: every source, behind one trait.
//!
//! Control plane. Each source runs as one task and pushes complete states
//! through a [`signpost_model::Sink`] the moment it has them:
//!
//! ```text
//! SourceSpec ──open──▶ catalog  (files; polls metadata, reloads on change)  ─┐
//!                      file     (master file; reloads on a new serial)       ├─▶ Input ─▶ Sink ─▶ compiler
//!                      hosts    (hosts file + inline entries)                │
//!                      etcd     (SkyDNS keys; range read, then a watch)     ─┘
//! ```
//!
//! Sources of Kubernetes objects for the DNS cluster zone read each object
//! into its compact part ([`translate`]) and deliver the ones that changed
//! ([`cluster::ObjectBatch`]); [`cluster::ClusterInput`] joins them into the
//! cluster model the DNS compiler needs, whichever source found them. Record
//! sync reads whole objects ([`objects::ClusterObjects`], from
//! [`catalog::CatalogSource`] or [`kubernetes::KubernetesSource`]). The query-serving crates
//! never depend on this one: the binary hands [`open`] to them.
//!
//! For `signpost health` and its replicas: [`verdicts`] publishes and follows
//! verdict sets in a Kubernetes ConfigMap or an etcd key, and
//! [`kubernetes::LeaseElector`] / [`etcd::EtcdElector`] elect the one
//! process that publishes.

pub mod catalog;
pub mod cluster;
pub mod etcd;
pub mod hosts;
pub mod kubernetes;
pub mod metrics;
pub mod objects;
pub mod translate;
pub mod verdicts;
pub mod zonefile;

use signpost_model::Source;
use signpost_zone::{Input, SourceSpec, VerdictStoreSpec};
use std::sync::Arc;

/// The verdict store `spec` names: a ConfigMap, or an etcd key under `spec.prefix`.
pub fn verdict_store(spec: &VerdictStoreSpec) -> Arc<dyn verdicts::VerdictStore> {
    match spec {
        VerdictStoreSpec::Kubernetes {
            connection,
            namespace,
            name,
        } => Arc::new(kubernetes::ConfigMapVerdicts::new(
            connection.clone(),
            namespace,
            name,
        )),
        VerdictStoreSpec::Etcd(etcd) => {
            Arc::new(etcd::EtcdVerdictStore::new(etcd.clone(), &etcd.prefix))
        }
    }
}

/// Opens the source `spec` describes; the sources count into `metrics`.
pub fn open(spec: &SourceSpec, metrics: &Arc<metrics::DiscoveryMetrics>) -> Box<dyn Source<Input>> {
    match spec {
        SourceSpec::Kubernetes(api) => Box::new(cluster::ClusterInput::new(
            Box::new(kubernetes::KubernetesChanges::new(
                api.clone(),
                metrics.clone(),
            )),
            metrics.clone(),
        )),
        SourceSpec::Catalog { paths, poll } => Box::new(cluster::ClusterInput::new(
            Box::new(catalog::CatalogChanges::new(paths.clone(), *poll)),
            metrics.clone(),
        )),
        SourceSpec::ZoneFile {
            path,
            apex,
            reload,
            retry,
        } => Box::new(zonefile::ZoneFileSource {
            path: path.clone(),
            apex: apex.clone(),
            reload: *reload,
            retry: *retry,
        }),
        SourceSpec::Hosts {
            path,
            inline,
            reload,
        } => Box::new(hosts::HostsSource {
            path: path.clone(),
            inline: inline.clone(),
            reload: *reload,
        }),
        SourceSpec::Etcd(spec) => Box::new(etcd::EtcdSource::new(spec.clone())),
    }
}
