//! `--source=ingress`: endpoints for Ingresses (networking.k8s.io/v1), as
//! external-dns v0.22 derives them (`source/ingress.go`).
//!
//! Control plane, pure. Targets: the `target` annotation, else every
//! `status.loadBalancer.ingress[]` IP and hostname. Names: `spec.rules[].host`
//! (unless `--ignore-ingress-rules-spec`), `spec.tls[].hosts[]` (unless
//! `--ignore-ingress-tls-spec`), the `hostname` annotation (unless
//! `--ignore-hostname-annotation`), narrowed by `ingress-hostname-source`
//! (`defined-hosts-only`, `annotation-only`); `--fqdn-template` names when
//! there are none (or always, with `--combine-fqdn-annotation`).

use super::common::{
    Annotations, Problem, SourceConfig, object_context, selected, split_list, template_value,
};
use crate::endpoint::Endpoint;
use k8s_openapi::api::networking::v1::Ingress;
use signpost_discovery::objects::ClusterObjects;

const SOURCE: &str = "ingress";

/// Every endpoint the Ingresses of `objects` call for.
pub(crate) fn endpoints(
    objects: &ClusterObjects,
    config: &SourceConfig,
    problems: &mut Vec<Problem>,
) -> Vec<Endpoint> {
    let mut all = Vec::new();
    for ingress in &objects.ingresses {
        if !selected(&ingress.metadata, config) || !class_matches(ingress, config) {
            continue;
        }
        let annotations = Annotations::new(&ingress.metadata, config);
        let mut context = object_context(SOURCE, &ingress.metadata, config, problems);
        let targets: Vec<String> = match annotations.get("target") {
            Some(target) => split_list(target),
            None => load_balancer_targets(ingress),
        };
        if targets.is_empty() {
            tracing::debug!(object = %context.resource, "no targets: the ingress has no load balancer status");
            continue;
        }
        let source = annotations
            .get("ingress-hostname-source")
            .map(str::to_ascii_lowercase);
        let (spec_hosts, annotation_hosts) = match source.as_deref() {
            None => (true, true),
            Some("defined-hosts-only") => (true, false),
            Some("annotation-only") => (false, true),
            Some(other) => {
                context.problem(
                    "",
                    format!(
                        "unknown ingress-hostname-source {other:?}; no records for this ingress"
                    ),
                );
                continue;
            }
        };
        let mut names: Vec<String> = Vec::new();
        let spec = ingress.spec.clone().unwrap_or_default();
        if spec_hosts && !config.ignore_ingress_rules_spec {
            names.extend(spec.rules.iter().flatten().filter_map(|r| r.host.clone()));
        }
        if spec_hosts && !config.ignore_ingress_tls_spec {
            names.extend(
                spec.tls
                    .iter()
                    .flatten()
                    .flat_map(|t| t.hosts.clone().unwrap_or_default()),
            );
        }
        if annotation_hosts && !config.ignore_hostname_annotation {
            names.extend(
                annotations
                    .get("hostname")
                    .map(split_list)
                    .unwrap_or_default(),
            );
        }
        names.retain(|n| !n.is_empty());
        let mut found = Vec::new();
        for name in &names {
            found.extend(context.endpoints_for(name.trim_end_matches('.'), &targets));
        }
        if let Some(template) = &config.fqdn_template
            && (found.is_empty() || config.combine_fqdn_annotation)
        {
            let value = template_value(ingress.as_ref(), "Ingress", "networking.k8s.io/v1");
            for name in template.hostnames(&value) {
                found.extend(context.endpoints_for(&name, &targets));
            }
        }
        all.extend(found);
    }
    all
}

fn load_balancer_targets(ingress: &Ingress) -> Vec<String> {
    let entries = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut targets = Vec::new();
    for entry in entries.into_iter().flatten() {
        targets.extend(entry.ip.iter().filter(|ip| !ip.is_empty()).cloned());
        targets.extend(entry.hostname.iter().filter(|h| !h.is_empty()).cloned());
    }
    targets
}

/// `--ingress-class`: `spec.ingressClassName`, else the
/// `kubernetes.io/ingress.class` annotation, must be one of them.
fn class_matches(ingress: &Ingress, config: &SourceConfig) -> bool {
    if config.ingress_class.is_empty() {
        return true;
    }
    let class = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .filter(|c| !c.is_empty())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
        });
    class.is_some_and(|c| config.ingress_class.contains(&c))
}
