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
            // The problem last reported: a file that stays broken is reported
            // (and logged) once, not at every retry.
            let mut reported: Option<SourceProblem> = None;
            loop {
                let (path, apex) = (self.path.clone(), self.apex.clone());
                let loaded =
                    tokio::task::spawn_blocking(move || load_zone_file(&path, &apex)).await;
                let Ok(loaded) = loaded else { return };
                match loaded {
                    Ok(zone) if Some(zone.serial) == serial => {
                        if reported.take().is_some() {
                            sink.problems(Vec::new());
                        }
                    }
                    Ok(zone) => {
                        tracing::info!(zone = %self.apex, serial = zone.serial, file = %self.path.display(), "zone loaded");
                        serial = Some(zone.serial);
                        reported = None;
                        sink.state(Input::Zone(Arc::new(zone)));
                    }
                    Err(error) => {
                        let problem = SourceProblem {
                            file: error.file.display().to_string(),
                            line: error.line,
                            message: error.message,
                        };
                        if reported.as_ref() != Some(&problem) {
                            reported = Some(problem.clone());
                            sink.problems(vec![problem]);
                        }
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use signpost_model::Update;
    use tokio::sync::mpsc;

    const GOOD: &str = "$ORIGIN example.org.\n@ 3600 IN SOA ns hostmaster 7 7200 3600 1209600 3600\n@ 3600 IN NS ns\nns 3600 IN A 192.0.2.1\n";

    fn write(path: &std::path::Path, text: &str) {
        let staged = path.with_extension("new");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, path).unwrap();
    }

    /// Waits (10 s at most) for the next update.
    async fn next(updates: &mut mpsc::UnboundedReceiver<Update<Input>>) -> Update<Input> {
        tokio::time::timeout(Duration::from_secs(10), updates.recv())
            .await
            .expect("an update within 10 s")
            .expect("the source runs")
    }

    /// A file that stays broken is reported once, not at every 10 ms retry; a
    /// different mistake is reported again; the fix clears the problem.
    #[tokio::test]
    async fn a_broken_file_is_reported_once_per_mistake() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.example.org");
        write(&path, &format!("{GOOD}www 3600 IN A 999.0.2.1\n"));
        let (sender, mut updates) = mpsc::unbounded_channel();
        let sink = Sink::new(move |update| {
            let _ = sender.send(update);
        });
        let cancel = CancellationToken::new();
        let source = Box::new(ZoneFileSource {
            path: path.clone(),
            apex: Name::from_ascii("example.org.").unwrap(),
            reload: Duration::from_millis(10),
            retry: Duration::from_millis(10),
        });
        let running = tokio::spawn(source.run(sink, cancel.clone()));

        let Update::Problems(first) = next(&mut updates).await else {
            panic!("a broken file is a problem");
        };
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].line, Some(5), "{first:?}");
        // Dozens of retries of the same broken file: nothing more is reported.
        let quiet = tokio::time::timeout(Duration::from_millis(400), updates.recv()).await;
        assert!(quiet.is_err(), "reported again: {quiet:?}");

        write(&path, &format!("{GOOD}\nwww 3600 IN A 999.0.2.1\n"));
        let Update::Problems(second) = next(&mut updates).await else {
            panic!("another mistake is reported");
        };
        assert_eq!(second[0].line, Some(6), "{second:?}");

        write(&path, GOOD);
        assert!(matches!(next(&mut updates).await, Update::State(_)));
        let quiet = tokio::time::timeout(Duration::from_millis(200), updates.recv()).await;
        assert!(quiet.is_err(), "an unchanged serial is not delivered again");
        cancel.cancel();
        running.await.unwrap();
    }
}
