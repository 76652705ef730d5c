//! What the sources report about themselves on `/metrics`.
//!
//! Control plane writes (relaxed atomics), admin plane reads. One
//! [`DiscoveryMetrics`] per process, shared by every source the process
//! opens; labels come from closed sets (resource kinds, event types, skip
//! reasons), never from object names.

use signpost_model::metrics::{Exposition, Kind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The Kubernetes resources a source watches.
pub const RESOURCES: [&str; 6] = [
    "services",
    "endpointslices",
    "namespaces",
    "pods",
    "ingresses",
    "nodes",
];
/// Watch event types counted.
pub const EVENTS: [&str; 3] = ["apply", "delete", "relist"];
/// Why an object is left out of answers.
pub const SKIP_REASONS: [&str; 5] = [
    "no-service-name-label",
    "address-type",
    "address",
    "cluster-ip",
    "undecodable",
];

/// Counters of every source in the process.
#[derive(Debug, Default)]
pub struct DiscoveryMetrics {
    watch_up: [AtomicU64; RESOURCES.len()],
    watch_errors: [AtomicU64; RESOURCES.len()],
    events: [[AtomicU64; EVENTS.len()]; RESOURCES.len()],
    objects: [AtomicU64; RESOURCES.len()],
    skipped: [AtomicU64; SKIP_REASONS.len()],
}

/// Index of a resource in [`RESOURCES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// core/v1 Service.
    Services = 0,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlices = 1,
    /// core/v1 Namespace.
    Namespaces = 2,
    /// core/v1 Pod.
    Pods = 3,
    /// networking.k8s.io/v1 Ingress.
    Ingresses = 4,
    /// core/v1 Node (cluster-scoped).
    Nodes = 5,
}

/// Index of an event type in [`EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An object added or changed.
    Apply = 0,
    /// An object deleted.
    Delete = 1,
    /// A complete list swapped in (start, or after `410 Gone`).
    Relist = 2,
}

// === impl DiscoveryMetrics ===

impl DiscoveryMetrics {
    /// Records whether a watch of `resource` is connected.
    pub fn set_up(&self, resource: Resource, up: bool) {
        self.watch_up[resource as usize].store(u64::from(up), Relaxed);
    }

    /// Counts a failed list or watch call.
    pub fn watch_error(&self, resource: Resource) {
        self.watch_errors[resource as usize].fetch_add(1, Relaxed);
    }

    /// Counts an event applied to the store.
    pub fn event(&self, resource: Resource, event: Event) {
        self.events[resource as usize][event as usize].fetch_add(1, Relaxed);
    }

    /// Sets how many objects of `resource` the store holds.
    pub fn set_objects(&self, resource: Resource, count: usize) {
        self.objects[resource as usize].store(count as u64, Relaxed);
    }

    /// Counts an object left out of answers (`reason` from [`SKIP_REASONS`]).
    pub fn skipped(&self, reason: &str) {
        let index = SKIP_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(SKIP_REASONS.len() - 1);
        self.skipped[index].fetch_add(1, Relaxed);
    }

    /// Appends the Prometheus exposition.
    pub fn render(&self, out: &mut String) {
        let out = &mut Exposition::new(out);
        out.family(
            "signpost_kubernetes_watch_up",
            Kind::Gauge,
            "1 while the watch of a resource on the Kubernetes API server is connected.",
        );
        for (index, resource) in RESOURCES.iter().enumerate() {
            out.sample(
                "signpost_kubernetes_watch_up",
                &[("resource", resource)],
                self.watch_up[index].load(Relaxed),
            );
        }
        out.family(
            "signpost_kubernetes_watch_errors_total",
            Kind::Counter,
            "Failed list or watch calls to the Kubernetes API server (retried with backoff).",
        );
        for (index, resource) in RESOURCES.iter().enumerate() {
            out.sample(
                "signpost_kubernetes_watch_errors_total",
                &[("resource", resource)],
                self.watch_errors[index].load(Relaxed),
            );
        }
        out.family(
            "signpost_kubernetes_events_total",
            Kind::Counter,
            "Watch events applied, by resource and type (relist: a complete list swapped in).",
        );
        for (index, resource) in RESOURCES.iter().enumerate() {
            for (event_index, event) in EVENTS.iter().enumerate() {
                out.sample(
                    "signpost_kubernetes_events_total",
                    &[("resource", resource), ("type", event)],
                    self.events[index][event_index].load(Relaxed),
                );
            }
        }
        out.family(
            "signpost_kubernetes_objects",
            Kind::Gauge,
            "Objects held from the Kubernetes API server, by resource.",
        );
        for (index, resource) in RESOURCES.iter().enumerate() {
            out.sample(
                "signpost_kubernetes_objects",
                &[("resource", resource)],
                self.objects[index].load(Relaxed),
            );
        }
        out.family(
            "signpost_source_skipped_objects_total",
            Kind::Counter,
            "Objects (or endpoint addresses) left out of answers because the cluster zone cannot serve them, by reason.",
        );
        for (index, reason) in SKIP_REASONS.iter().enumerate() {
            out.sample(
                "signpost_source_skipped_objects_total",
                &[("reason", reason)],
                self.skipped[index].load(Relaxed),
            );
        }
    }
}
