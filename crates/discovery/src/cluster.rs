//! Kubernetes objects as the DNS cluster zone's input.
//!
//! Control plane. Wraps any source of [`ClusterObjects`] (the catalog, the
//! Kubernetes API) and delivers the cluster model the compiler needs. The
//! translation runs on a blocking thread (a million endpoints take a while),
//! and when states arrive faster than they translate only the newest one is
//! translated. What the cluster zone cannot serve is logged once per object
//! and counted (`signpost_source_skipped_objects_total`); the rest serves.

use crate::metrics::DiscoveryMetrics;
use crate::objects::ClusterObjects;
use crate::translate::{Skipped, cluster_pods, cluster_services, skipped_objects};
use signpost_model::{BoxFuture, ClusterState, Sink, Source, Update};
use signpost_zone::Input;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A source of cluster objects seen as a source of cluster zone input.
pub struct ClusterInput {
    inner: Box<dyn Source<Arc<ClusterObjects>>>,
    metrics: Arc<DiscoveryMetrics>,
}

// === impl ClusterInput ===

impl ClusterInput {
    /// Wraps `inner`, counting skipped objects into `metrics`.
    pub fn new(
        inner: Box<dyn Source<Arc<ClusterObjects>>>,
        metrics: Arc<DiscoveryMetrics>,
    ) -> Self {
        Self { inner, metrics }
    }
}

impl Source<Input> for ClusterInput {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Input>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Latest wins: the inner source overwrites, the translator takes the newest.
            let (sender, mut receiver) =
                watch::channel::<Option<Update<Arc<ClusterObjects>>>>(None);
            let inner = Sink::new(move |update| {
                sender.send_replace(Some(update));
            });
            let source = tokio::spawn(self.inner.run(inner, cancel.clone()));
            let mut reported: Arc<BTreeSet<Skipped>> = Arc::default();
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    changed = receiver.changed() => if changed.is_err() { break },
                }
                let update = receiver.borrow_and_update().clone();
                match update {
                    Some(Update::State(objects)) => {
                        let previous = reported.clone();
                        let translated = tokio::task::spawn_blocking(move || {
                            let services = objects.services.iter().map(AsRef::as_ref);
                            let slices = objects.endpoint_slices.iter().map(AsRef::as_ref);
                            let skipped: BTreeSet<Skipped> =
                                skipped_objects(services.clone(), slices.clone())
                                    .into_iter()
                                    .collect();
                            let fresh: Vec<Skipped> =
                                skipped.difference(&previous).cloned().collect();
                            let state = ClusterState {
                                services: cluster_services(services, slices),
                                pods: cluster_pods(objects.pods.iter().map(AsRef::as_ref)),
                            };
                            (state, skipped, fresh)
                        })
                        .await;
                        let Ok((state, skipped, fresh)) = translated else {
                            break;
                        };
                        for item in &fresh {
                            self.metrics.skipped(item.reason);
                            tracing::warn!(kind = item.kind, object = %item.object, reason = item.reason, detail = %item.detail, "object left out of answers");
                        }
                        reported = Arc::new(skipped);
                        sink.state(Input::Cluster(Arc::new(state)));
                    }
                    Some(Update::Problems(problems)) => sink.problems(problems),
                    None => {}
                }
            }
            let _ = source.await;
        })
    }
}
