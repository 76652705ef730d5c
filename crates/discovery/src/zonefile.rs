//! The `file` plugin's source: one zone of a master file.
//!
//! Control plane. Loads the file at start (retrying every `retry` until the
//! first good load), then every `reload` interval, and delivers the zone when
//! its SOA serial changed (CoreDNS's rule: an edit without a serial bump is
//! not picked up). A broken file keeps the last good zone serving.

use signpost_model::{BoxFuture, Sink, Source, SourceProblem};
use signpost_proto::Name;
use signpost_zone::Input;
use signpost_zone::zonefile::load_zone_file;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One zone of a `file` plugin.
#[derive(Debug)]
pub struct ZoneFileSource {
    /// The master file.
    pub path: PathBuf,
    /// The zone it holds.
    pub apex: Name,
    /// Serial check interval; zero loads once.
    pub reload: Duration,
    /// Retry interval until the first good load.
    pub retry: Duration,
}

impl Source<Input> for ZoneFileSource {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Input>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut serial: Option<u32> = None;
            loop {
                let (path, apex) = (self.path.clone(), self.apex.clone());
                let loaded =
                    tokio::task::spawn_blocking(move || load_zone_file(&path, &apex)).await;
                let Ok(loaded) = loaded else { return };
                match loaded {
                    Ok(zone) if Some(zone.serial) == serial => {}
                    Ok(zone) => {
                        tracing::info!(zone = %self.apex, serial = zone.serial, file = %self.path.display(), "zone loaded");
                        serial = Some(zone.serial);
                        sink.state(Input::Zone(Arc::new(zone)));
                    }
                    Err(error) => sink.problems(vec![SourceProblem {
                        file: error.file.display().to_string(),
                        line: error.line,
                        message: error.message,
                    }]),
                }
                let wait = match serial {
                    None => self.retry,
                    Some(_) if self.reload.is_zero() => {
                        cancel.cancelled().await;
                        return;
                    }
                    Some(_) => self.reload,
                };
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        })
    }
}
