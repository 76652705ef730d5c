//! The `hosts` plugin's source: a hosts file plus the Corefile's inline entries.
//!
//! Control plane. Reads the file at start and again whenever its
//! modification time changed, checked every `reload` (CoreDNS default 5 s;
//! zero reads once). A missing file is not an error: the inline entries
//! still serve, as in CoreDNS.

use signpost_model::{BoxFuture, Sink, Source};
use signpost_zone::Input;
use signpost_zone::hosts::{HostsEntry, parse_hosts};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// A `hosts` plugin's file and inline entries.
#[derive(Debug)]
pub struct HostsSource {
    /// The hosts file, if any.
    pub path: Option<PathBuf>,
    /// Entries written in the Corefile.
    pub inline: Vec<HostsEntry>,
    /// Check interval; zero reads once.
    pub reload: Duration,
}

impl Source<Input> for HostsSource {
    fn kind(&self) -> &'static str {
        "hosts"
    }

    fn run(
        self: Box<Self>,
        sink: Sink<Input>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut seen: Option<Option<SystemTime>> = None;
            loop {
                let modified = self
                    .path
                    .as_ref()
                    .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
                if seen != Some(modified) {
                    seen = Some(modified);
                    let mut entries = self.inline.clone();
                    if let Some(path) = &self.path {
                        match std::fs::read_to_string(path) {
                            Ok(text) => entries.extend(parse_hosts(&text)),
                            // CoreDNS carries on with the inline entries when the file is missing.
                            Err(error) => {
                                tracing::warn!(file = %path.display(), %error, "hosts file not readable");
                            }
                        }
                    }
                    sink.state(Input::Hosts(Arc::new(entries)));
                }
                if self.reload.is_zero() {
                    cancel.cancelled().await;
                    return;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(self.reload) => {}
                }
            }
        })
    }
}
