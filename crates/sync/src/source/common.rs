//! What the service and ingress sources share: their configuration, object
//! selection, annotation parsing, and the A/AAAA/CNAME split of targets.
//!
//! Control plane, pure. Annotation names are `<prefix><name>` with
//! `--annotation-prefix` (external-dns v0.22 default
//! `external-dns.kubernetes.io/`). Bad input never stops a run: a bad host
//! name, TTL or target becomes a [`Problem`] and is skipped.

use super::selector::Selector;
use super::template::Template;
use crate::endpoint::{Endpoint, RESOURCE_LABEL, RecordType, is_host_name, suitable_type};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The annotation prefix external-dns v0.22 reads by default.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "external-dns.kubernetes.io/";
/// The prefix external-dns up to v0.21 read (and the reference AI-Kernel
/// deployment writes).
pub const ALPHA_ANNOTATION_PREFIX: &str = "external-dns.alpha.kubernetes.io/";

/// Which objects the sources read and how they turn into endpoints.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `--source` values (`service`, `ingress`), in order.
    pub sources: Vec<String>,
    /// `--annotation-prefix` values (the first is external-dns's; more are a
    /// signpost extension read in order, the first present wins).
    pub annotation_prefixes: Vec<String>,
    /// `--namespace` (empty: all).
    pub namespace: String,
    /// `--annotation-filter`.
    pub annotation_filter: Selector,
    /// `--label-filter`.
    pub label_filter: Selector,
    /// `--fqdn-template`.
    pub fqdn_template: Option<Template>,
    /// `--combine-fqdn-annotation`.
    pub combine_fqdn_annotation: bool,
    /// `--ignore-hostname-annotation`.
    pub ignore_hostname_annotation: bool,
    /// `--publish-internal-services`.
    pub publish_internal_services: bool,
    /// `--publish-host-ip`.
    pub publish_host_ip: bool,
    /// `--always-publish-not-ready-addresses`.
    pub always_publish_not_ready_addresses: bool,
    /// `--service-type-filter`.
    pub service_type_filter: Vec<String>,
    /// `--exclude-unschedulable`.
    pub exclude_unschedulable: bool,
    /// `--expose-internal-ipv6`.
    pub expose_internal_ipv6: bool,
    /// `--ingress-class`.
    pub ingress_class: Vec<String>,
    /// `--ignore-ingress-tls-spec`.
    pub ignore_ingress_tls_spec: bool,
    /// `--ignore-ingress-rules-spec`.
    pub ignore_ingress_rules_spec: bool,
    /// signpost: publish `dns.aikernel.io/geo-region` as Route 53 latency
    /// routing (set identifier and `aws/region` = the region) when the
    /// object names neither; on for `--provider=aws`.
    pub geo_region_latency: bool,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            sources: vec!["service".to_owned()],
            annotation_prefixes: vec![DEFAULT_ANNOTATION_PREFIX.to_owned()],
            namespace: String::new(),
            annotation_filter: Selector::default(),
            label_filter: Selector::default(),
            fqdn_template: None,
            combine_fqdn_annotation: false,
            ignore_hostname_annotation: false,
            publish_internal_services: false,
            publish_host_ip: false,
            always_publish_not_ready_addresses: false,
            service_type_filter: Vec::new(),
            exclude_unschedulable: true,
            expose_internal_ipv6: false,
            ingress_class: Vec::new(),
            ignore_ingress_tls_spec: false,
            ignore_ingress_rules_spec: false,
            geo_region_latency: false,
        }
    }
}

/// Bad input in one object, skipped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// `service` or `ingress`.
    pub source_type: &'static str,
    /// `service/<ns>/<name>`.
    pub object: String,
    /// Lower-case type of what was skipped, or `""`.
    pub record_type: String,
    /// What is wrong.
    pub message: String,
}

/// One object's annotations, read through the configured prefixes.
pub(crate) struct Annotations<'a> {
    map: Option<&'a BTreeMap<String, String>>,
    prefixes: &'a [String],
}

impl<'a> Annotations<'a> {
    pub(crate) fn new(meta: &'a ObjectMeta, config: &'a SourceConfig) -> Self {
        Self {
            map: meta.annotations.as_ref(),
            prefixes: &config.annotation_prefixes,
        }
    }

    /// `<prefix><name>` for the first prefix that has it.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        let map = self.map?;
        self.prefixes
            .iter()
            .find_map(|prefix| map.get(&format!("{prefix}{name}")))
            .map(String::as_str)
    }

    /// Provider-specific properties from annotations: `alias` (only `true`),
    /// `coredns-group` ⇒ `coredns/group`, `aws-<x>` ⇒ `aws/<x>`, and the
    /// `cloudflare-*` keys under their full annotation name.
    pub(crate) fn provider_specific(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.get("alias") == Some("true") {
            out.push(("alias".to_owned(), "true".to_owned()));
        }
        if let Some(group) = self.get("coredns-group") {
            out.push(("coredns/group".to_owned(), group.to_owned()));
        }
        let Some(map) = self.map else { return out };
        for (key, value) in map {
            for prefix in self.prefixes {
                let Some(name) = key.strip_prefix(prefix.as_str()) else {
                    continue;
                };
                if let Some(aws) = name.strip_prefix("aws-") {
                    out.push((format!("aws/{aws}"), value.clone()));
                } else if name.starts_with("cloudflare-") {
                    out.push((key.clone(), value.clone()));
                }
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// The comma-separated list of an annotation: spaces removed, one trailing
/// dot removed per item, empty items skipped (external-dns keeps them).
pub(crate) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|item| {
            item.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
        })
        .map(|item| item.strip_suffix('.').map(str::to_owned).unwrap_or(item))
        .filter(|item| !item.is_empty())
        .collect()
}

/// The `ttl` annotation: a Go duration (fractions truncated) or whole
/// seconds, within 1..=2147483647; `0` means not configured.
pub(crate) fn parse_ttl(value: &str) -> Result<u32, String> {
    let seconds = match crate::duration::parse(value) {
        Ok(duration) => i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        Err(_) => value.trim().parse::<i64>().map_err(|_| {
            format!("invalid ttl annotation {value:?}: not a number of seconds or a duration")
        })?,
    };
    if seconds == 0 && value.trim() == "0" {
        return Ok(0);
    }
    if !(1..=i64::from(i32::MAX)).contains(&seconds) {
        return Err(format!(
            "invalid ttl annotation {value:?}: outside 1..2147483647 seconds"
        ));
    }
    Ok(u32::try_from(seconds).unwrap_or(u32::MAX))
}

/// Everything the sources need to make endpoints for one object.
pub(crate) struct ObjectContext<'a> {
    pub(crate) source_type: &'static str,
    pub(crate) resource: String,
    pub(crate) ttl: u32,
    pub(crate) set_identifier: String,
    pub(crate) provider_specific: Vec<(String, String)>,
    pub(crate) problems: &'a mut Vec<Problem>,
}

impl ObjectContext<'_> {
    /// Records bad input in this object.
    pub(crate) fn problem(&mut self, record_type: &str, message: String) {
        self.problems.push(Problem {
            source_type: self.source_type,
            object: self.resource.clone(),
            record_type: record_type.to_owned(),
            message,
        });
    }

    /// Whether `name` is a host name we may publish; records a problem otherwise.
    pub(crate) fn check_name(&mut self, name: &str, targets: &[String]) -> bool {
        if is_host_name(name) {
            return true;
        }
        let record_type = targets.first().map_or("", |t| suitable_type(t).lower());
        self.problem(record_type, format!("invalid host name {name:?}"));
        false
    }

    /// An endpoint of `record_type` at `name` with this object's settings.
    pub(crate) fn endpoint(
        &self,
        name: &str,
        record_type: RecordType,
        targets: Vec<String>,
    ) -> Endpoint {
        let mut endpoint = Endpoint::new(name, record_type, targets)
            .with_ttl(self.ttl)
            .with_set_identifier(&self.set_identifier)
            .with_label(RESOURCE_LABEL, &self.resource);
        endpoint
            .provider_specific
            .clone_from(&self.provider_specific);
        endpoint
    }

    /// Up to three endpoints at `name`: A for IPv4 targets, AAAA for IPv6,
    /// CNAME for names (external-dns `EndpointsForHostname`). Targets that
    /// are neither an IP nor a host name are skipped as problems.
    pub(crate) fn endpoints_for(&mut self, name: &str, targets: &[String]) -> Vec<Endpoint> {
        if !self.check_name(name, targets) {
            return Vec::new();
        }
        let mut by_type: [(RecordType, Vec<String>); 3] = [
            (RecordType::A, Vec::new()),
            (RecordType::Aaaa, Vec::new()),
            (RecordType::Cname, Vec::new()),
        ];
        for target in targets {
            let record_type = suitable_type(target);
            if record_type == RecordType::Cname && !is_host_name(target) {
                self.problem(
                    "cname",
                    format!("target {target:?} of {name} is neither an IP address nor a host name"),
                );
                continue;
            }
            let target = match target.parse::<IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => target.trim_end_matches('.').to_owned(),
            };
            let slot = by_type.iter_mut().find(|(t, _)| *t == record_type);
            if let Some((_, list)) = slot {
                list.push(target);
            }
        }
        by_type
            .into_iter()
            .filter(|(_, targets)| !targets.is_empty())
            .map(|(record_type, mut targets)| {
                crate::endpoint::normalise_targets(&mut targets);
                self.endpoint(name, record_type, targets)
            })
            .collect()
    }
}

/// Whether an object is selected: namespace, `--annotation-filter`,
/// `--label-filter`, and the `controller` annotation (only `dns-controller`
/// or absent).
pub(crate) fn selected(meta: &ObjectMeta, config: &SourceConfig) -> bool {
    if !config.namespace.is_empty() && meta.namespace.as_deref() != Some(config.namespace.as_str())
    {
        return false;
    }
    if !config.annotation_filter.matches(meta.annotations.as_ref())
        || !config.label_filter.matches(meta.labels.as_ref())
    {
        return false;
    }
    let annotations = Annotations::new(meta, config);
    annotations
        .get("controller")
        .is_none_or(|c| c == "dns-controller")
}

/// The object's settings: TTL (a bad one is a problem and ignored), set
/// identifier, provider-specific properties.
pub(crate) fn object_context<'a>(
    source_type: &'static str,
    meta: &ObjectMeta,
    config: &SourceConfig,
    problems: &'a mut Vec<Problem>,
) -> ObjectContext<'a> {
    let annotations = Annotations::new(meta, config);
    let resource = format!(
        "{source_type}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    );
    let mut context = ObjectContext {
        source_type,
        resource,
        ttl: 0,
        set_identifier: annotations
            .get("set-identifier")
            .unwrap_or_default()
            .to_owned(),
        provider_specific: annotations.provider_specific(),
        problems,
    };
    // The reference deployment's geographic routing at the provider: one
    // public name, one latency record set per region (Route 53 answers each
    // client from the region with the lowest latency).
    let geo_region = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(signpost_model::annotations::GEO_REGION))
        .map(|r| r.trim())
        .filter(|r| !r.is_empty());
    if let Some(region) = geo_region.filter(|_| config.geo_region_latency) {
        if context.set_identifier.is_empty() {
            region.clone_into(&mut context.set_identifier);
        }
        if !context
            .provider_specific
            .iter()
            .any(|(n, _)| n == "aws/region")
        {
            context
                .provider_specific
                .push(("aws/region".to_owned(), region.to_owned()));
        }
    }
    if let Some(ttl) = annotations.get("ttl") {
        match parse_ttl(ttl) {
            Ok(ttl) => context.ttl = ttl,
            Err(message) => context.problem("", message),
        }
    }
    context
}

/// Object JSON for templates, with `kind` and `apiVersion` filled in.
pub(crate) fn template_value(
    object: &impl serde::Serialize,
    kind: &str,
    api_version: &str,
) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.entry("kind").or_insert_with(|| kind.into());
        map.entry("apiVersion")
            .or_insert_with(|| api_version.into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notes §3.3 and §10.6: TTL parsing rules.
    #[test]
    fn ttl_rules() {
        assert_eq!(parse_ttl("600"), Ok(600));
        assert_eq!(parse_ttl("10m"), Ok(600));
        assert_eq!(parse_ttl("1.5s"), Ok(1));
        assert_eq!(parse_ttl("0"), Ok(0));
        assert!(parse_ttl("-1").is_err());
        assert!(parse_ttl("abc").is_err());
        assert!(parse_ttl("2147483648").is_err());
        assert!(parse_ttl("0.5s").is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(
            split_list(" a.example.com., ,b.example.com "),
            ["a.example.com", "b.example.com"]
        );
    }
}
