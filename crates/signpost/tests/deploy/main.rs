//! Issue 16: the deployment under `deploy/` is checked with the tools an operator's cluster and
//! monitoring stack would apply to it, and run for real where this machine can run it.
//!
//! 1. [`manifests`]: every manifest against the Kubernetes 1.28 and newest schemas
//!    (`kubernetes-validate`) and the Prometheus Operator's CRD schemas; the Corefile in the
//!    ConfigMap passes `signpost check`; the controller's config passes `signpost health
//!    --validate`; the sync arguments parse and run.
//! 2. [`alerts`]: `promtool check rules` and `promtool test rules`, one firing and one silent unit
//!    test per alert.
//! 3. [`metrics`]: every dashboard expression parses (promtool), and every metric name of the rules
//!    and the dashboard is exported by a running `signpost` (dns, sync and health roles).
//! 4. [`image`]: `make docker-build` with podman builds the image; its filesystem, exported, runs
//!    `signpost --version` under chroot as the image's non-root user.
//! 5. [`reference`]: the manifests' Corefile and the geographic example, served by a real
//!    `signpost dns`, answer the reference deployment's example queries.
//!
//! `scripts/test` installs the tools (Debian's `prometheus` for promtool and `podman`, PyPI's
//! `kubernetes-validate`); a missing tool fails the test that needs it, naming the package.

mod alerts;
mod common;
#[path = "../../../discovery/tests/support/etcd_server.rs"]
mod etcd_server;
mod image;
mod manifests;
mod metrics;
mod reference;
#[path = "../e2e/support.rs"]
mod support;
#[path = "../e2e/upstream.rs"]
mod upstream;
