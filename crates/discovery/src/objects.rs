//! The Kubernetes objects every source of cluster data yields, whoever
//! reads them (the DNS cluster zone, the health controller, record sync).
//!
//! Control plane. A state is always complete, never a delta: the consumer
//! replaces the source's previous state with it (design invariant I1). The
//! catalog fills it from manifest files, the Kubernetes source from the API
//! server; objects always carry `metadata.namespace` where their kind is
//! namespaced.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use std::sync::Arc;

/// Every object of the kinds signpost reads, from one source. Objects are
/// shared (`Arc`), so a source that keeps its own store hands out a new state
/// without copying every object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterObjects {
    /// Services, in load order.
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices (discovery.k8s.io/v1), in load order.
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Ingresses (networking.k8s.io/v1), read by record sync.
    pub ingresses: Vec<Arc<Ingress>>,
    /// Nodes (for NodePort services' addresses in record sync).
    pub nodes: Vec<Arc<Node>>,
    /// Pods (`pods verified`, headless records in record sync, readiness gates).
    pub pods: Vec<Arc<Pod>>,
    /// Namespaces (`namespace_labels`).
    pub namespaces: Vec<Arc<Namespace>>,
}
