//! Kubernetes objects as the DNS cluster zone's input.
//!
//! Control plane. Wraps any source of [`ClusterObjects`] (the catalog, the
//! Kubernetes API) and delivers the cluster model the compiler needs. The
//! translation runs on a blocking thread (a million endpoints take a while),
//! and when states arrive faster than they translate only the newest one is
//! translated.

use crate::objects::ClusterObjects;
use crate::translate::cluster_services;
use signpost_model::{BoxFuture, Sink, Source, Update};
use signpost_zone::Input;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A source of cluster objects seen as a source of cluster zone input.
pub struct ClusterInput(pub Box<dyn Source<Arc<ClusterObjects>>>);

impl Source<Input> for ClusterInput {
    fn kind(&self) -> &'static str {
        self.0.kind()
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
            let source = tokio::spawn(self.0.run(inner, cancel.clone()));
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    changed = receiver.changed() => if changed.is_err() { break },
                }
                let update = receiver.borrow_and_update().clone();
                match update {
                    Some(Update::State(objects)) => {
                        let translated = tokio::task::spawn_blocking(move || {
                            cluster_services(&objects.services, &objects.endpoint_slices)
                        })
                        .await;
                        let Ok(services) = translated else { break };
                        sink.state(Input::Cluster(Arc::new(services)));
                    }
                    Some(Update::Problems(problems)) => sink.problems(problems),
                    None => {}
                }
            }
            let _ = source.await;
        })
    }
}
