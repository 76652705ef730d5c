//! `healthcheck { ... }`: health-aware answers, from checks this process
//! runs (options in `signpost_health::directive`) or from the verdicts a
//! `signpost health` leader publishes (`verdicts`).
//!
//! ```text
//! healthcheck {
//!     verdicts kubernetes [NAMESPACE/NAME] {  # default kube-system/signpost-health-verdicts
//!         kubeconfig PATH [CONTEXT]         # or: endpoint URL + tls CERT KEY CACERT;
//!                                           # default: the pod's service account
//!         stale_after 60s                   # keep the last verdicts this long while unreadable
//!     }
//!     all_unhealthy serve_all               # or nxdomain
//! }
//! healthcheck {
//!     verdicts etcd {
//!         path /signpost/health             # the key is PATH/unhealthy
//!         endpoint http://127.0.0.1:2379...
//!         credentials USER PASSWORD
//!         tls [CERT [KEY [CACERT]]]
//!         stale_after 60s
//!     }
//! }
//! ```
//!
//! With `verdicts` the process checks nothing: timings and thresholds are the
//! controller's, so the checker's options next to `verdicts` are errors.
//! One checker (or one verdict subscription) serves the whole process, so
//! every server block that has a `healthcheck` must give it the same
//! settings; a block that differs is rejected at its line rather than
//! silently ignored.

use super::etcd::connection_option;
use super::setup::{Block, Plugin, Setup};
use signpost_corefile::{Directive, Errors, Location};
use signpost_health::HealthcheckConfig;
use signpost_zone::{EtcdSpec, KubeConnection, VerdictSpec, VerdictStoreSpec};
use std::path::PathBuf;
use std::time::Duration;

/// The default verdict ConfigMap (the reference deployment's namespace).
pub(crate) const DEFAULT_CONFIGMAP: (&str, &str) = ("kube-system", "signpost-health-verdicts");

/// The default etcd prefix of the verdict key.
pub(crate) const DEFAULT_ETCD_PREFIX: &str = "/signpost/health/";

/// How long a replica keeps the last verdicts while it cannot read them.
pub(crate) const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// The checker's own options, meaningless when verdicts come from the controller.
const CHECKER_OPTIONS: &[&str] = &[
    "interval",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "remove_unhealthy_delay",
    "jitter",
    "max_concurrent",
];

#[derive(Debug)]
struct Healthcheck {
    config: HealthcheckConfig,
    verdicts: Option<VerdictSpec>,
    location: Location,
}

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let (subscriptions, checker): (Vec<&Directive>, Vec<&Directive>) = directive
        .block
        .iter()
        .partition(|option| option.name == "verdicts");
    let rest = Directive {
        block: checker.iter().map(|d| (*d).clone()).collect(),
        ..directive.clone()
    };
    let config = HealthcheckConfig::parse(&rest, errors);
    let mut verdicts = None;
    for (index, option) in subscriptions.iter().enumerate() {
        if index > 0 {
            errors.push(&option.location, "only one `verdicts` per `healthcheck`");
            continue;
        }
        verdicts = parse_verdicts(option, block, errors);
        for other in checker
            .iter()
            .filter(|o| CHECKER_OPTIONS.contains(&o.name.as_str()))
        {
            errors.push(
                &other.location,
                format!(
                    "`{}` has no effect with `verdicts`: the health controller (`signpost health`) checks, with the timings of its own configuration",
                    other.name
                ),
            );
        }
    }
    Some(Box::new(Healthcheck {
        config,
        verdicts,
        location: directive.location.clone(),
    }))
}

/// `verdicts kubernetes [NAMESPACE/NAME] { ... }` or `verdicts etcd { ... }`.
fn parse_verdicts(
    option: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<VerdictSpec> {
    let mut stale_after = DEFAULT_STALE_AFTER;
    let mut read_stale_after = |o: &Directive, errors: &mut Errors| -> bool {
        if o.name != "stale_after" {
            return false;
        }
        match errors.duration(o) {
            Some(d) if !d.is_zero() => stale_after = d,
            Some(_) => errors.push(&o.location, "`stale_after` must be a positive duration"),
            None => {}
        }
        true
    };
    let store = match option.args.first().map(String::as_str) {
        Some("kubernetes") => {
            let (namespace, name) = match option.args.get(1..).unwrap_or_default() {
                [] => (
                    DEFAULT_CONFIGMAP.0.to_owned(),
                    DEFAULT_CONFIGMAP.1.to_owned(),
                ),
                [object] => match object.split_once('/') {
                    Some((namespace, name))
                        if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
                    {
                        (namespace.to_owned(), name.to_owned())
                    }
                    _ => {
                        errors.push(
                            &option.location,
                            format!("`verdicts kubernetes` expects NAMESPACE/NAME of the verdict ConfigMap, found {object:?}"),
                        );
                        return None;
                    }
                },
                _ => {
                    errors.push(
                        &option.location,
                        "`verdicts kubernetes` takes at most NAMESPACE/NAME",
                    );
                    return None;
                }
            };
            let mut kubeconfig: Option<(PathBuf, Option<String>)> = None;
            let mut endpoint: Option<String> = None;
            let mut tls: Option<[PathBuf; 3]> = None;
            for o in &option.block {
                if read_stale_after(o, errors) {
                    continue;
                }
                let at = &o.location;
                match (o.name.as_str(), o.args.as_slice()) {
                    ("kubeconfig", [path]) => kubeconfig = Some((block.base.join(path), None)),
                    ("kubeconfig", [path, context]) => {
                        kubeconfig = Some((block.base.join(path), Some(context.clone())));
                    }
                    ("kubeconfig", _) => errors.push(at, "`kubeconfig` expects PATH [CONTEXT]"),
                    ("endpoint", [url]) if url.starts_with("https://") || url.starts_with("http://") => {
                        endpoint = Some(url.clone());
                    }
                    ("endpoint", _) => errors.push(at, "`endpoint` expects the API server's http:// or https:// URL"),
                    ("tls", [cert, key, ca]) => {
                        tls = Some([block.base.join(cert), block.base.join(key), block.base.join(ca)]);
                    }
                    ("tls", _) => errors.push(at, "`tls` expects CERT KEY CACERT"),
                    (other, _) => errors.push(
                        at,
                        format!("unknown `verdicts kubernetes` option `{other}` (expected kubeconfig, endpoint, tls or stale_after)"),
                    ),
                }
            }
            let connection = match (kubeconfig, endpoint) {
                (Some((path, context)), _) => KubeConnection::Kubeconfig { path, context },
                (None, Some(url)) => KubeConnection::Endpoint { url, tls },
                (None, None) => KubeConnection::InCluster,
            };
            VerdictStoreSpec::Kubernetes {
                connection,
                namespace,
                name,
            }
        }
        Some("etcd") => {
            if option.args.len() > 1 {
                errors.push(
                    &option.location,
                    "`verdicts etcd` takes its options in a block",
                );
            }
            let mut spec = EtcdSpec {
                endpoints: vec!["http://localhost:2379".to_owned()],
                prefix: DEFAULT_ETCD_PREFIX.to_owned(),
                credentials: None,
                tls: None,
            };
            for o in &option.block {
                if read_stale_after(o, errors) || connection_option(o, &mut spec, block, errors) {
                    continue;
                }
                errors.push(
                    &o.location,
                    format!("unknown `verdicts etcd` option `{}` (expected path, endpoint, credentials, tls or stale_after)", o.name),
                );
            }
            VerdictStoreSpec::Etcd(spec)
        }
        other => {
            errors.push(
                &option.location,
                format!(
                    "`verdicts` expects `kubernetes [NAMESPACE/NAME]` or `etcd`, found {:?}",
                    other.unwrap_or("nothing")
                ),
            );
            return None;
        }
    };
    Some(VerdictSpec { store, stale_after })
}

impl Plugin for Healthcheck {
    fn apply(&self, setup: &mut Setup<'_>) {
        let settings = (self.config, self.verdicts.clone());
        match &setup.process.healthcheck {
            None => {
                setup.process.healthcheck = Some((self.config, self.location.clone()));
                setup.process.verdicts = self.verdicts.clone();
            }
            Some((first, at)) if (*first, setup.process.verdicts.clone()) != settings => {
                let message = format!(
                    "this `healthcheck` differs from the one at {at}: one health checker serves every server block, so they must have the same settings"
                );
                setup.errors.push(&self.location, message);
                return;
            }
            Some(_) => {}
        }
        setup.listener.healthcheck = setup.listener.healthcheck.or(Some(self.config));
    }
}
