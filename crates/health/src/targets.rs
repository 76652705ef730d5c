//! Which endpoints to check: every served address of every annotated service.
//!
//! Control plane. Whoever holds the cluster model (the DNS compiler in
//! process, or `signpost health` watching the same sources) turns it into
//! [`Target`]s here, so every role checks the same endpoints the same way.

use crate::checker::Target;
use crate::probe::CheckKind;
use signpost_model::{CheckProtocol, ClusterEndpoint, ClusterService, EndpointKey};

/// The HTTP path checked when a service names none
/// (`dns.aikernel.io/health-check-path` absent).
pub const DEFAULT_PATH: &str = "/health";

/// The targets of `services`: each address of each endpoint that answers
/// serve (ready, or any with `publishNotReadyAddresses`) of each service
/// annotated `dns.aikernel.io/health-check-enabled: "true"`.
pub fn health_targets<'a>(services: impl IntoIterator<Item = &'a ClusterService>) -> Vec<Target> {
    health_targets_with(services, DEFAULT_PATH)
}

/// [`health_targets`] with `default_path` for services whose annotations
/// name no path (the health controller's `endpoints.healthCheckPath`).
pub fn health_targets_with<'a>(
    services: impl IntoIterator<Item = &'a ClusterService>,
    default_path: &str,
) -> Vec<Target> {
    health_targets_where(services, default_path, |_, _| false)
}

/// [`health_targets_with`] that also checks the endpoints that are not
/// ready for which `also_not_ready` holds: `signpost health` keeps checking
/// the endpoints of Pods with its readiness gate, which are not ready while
/// the gate is False (otherwise a Pod taken out would never return).
pub fn health_targets_where<'a>(
    services: impl IntoIterator<Item = &'a ClusterService>,
    default_path: &str,
    also_not_ready: impl Fn(&ClusterService, &ClusterEndpoint) -> bool,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for service in services {
        let Some(check) = &service.health_check else {
            continue;
        };
        let kind = match check.protocol {
            CheckProtocol::Http => CheckKind::Http,
            CheckProtocol::Https => CheckKind::Https,
            CheckProtocol::Tcp => CheckKind::Tcp,
        };
        for endpoint in service
            .endpoints
            .iter()
            .filter(|e| e.ready || service.publish_not_ready || also_not_ready(service, e))
        {
            for &address in &endpoint.addresses {
                targets.push(Target {
                    key: EndpointKey {
                        namespace: service.namespace.clone(),
                        service: service.name.clone(),
                        address,
                    },
                    kind: kind.clone(),
                    port: check.port,
                    path: check
                        .path
                        .clone()
                        .unwrap_or_else(|| default_path.to_owned()),
                });
            }
        }
    }
    targets
}
