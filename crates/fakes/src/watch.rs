//! WATCH: newline-delimited JSON events over a chunked (HTTP/1.1) or streamed (h2) response.
//!
//! Follows the Kubernetes API Concepts page, "Efficient detection of changes", "Watch bookmarks",
//! "Streaming lists" and "Semantics for watch":
//!
//! - `resourceVersion` unset: "Get State and Start at Most Recent" — synthetic ADDED events for every
//!   current object, then changes; `"0"`: "Get State and Start at Any" (served the same way); any other
//!   value: "Start at Exact" — every change after that resourceVersion, none before;
//! - `sendInitialEvents=true` (requires `resourceVersionMatch=NotOlderThan`): the current state as ADDED
//!   events, then, with `allowWatchBookmarks=true`, a BOOKMARK annotated `k8s.io/initial-events-end: "true"`;
//!   with the WatchList feature gate off ([`crate::ServerOptions::watch_list`]) the watch is refused with
//!   422 Invalid, as kube-apiserver's `validateWatchOptions` does;
//! - `allowWatchBookmarks=true`: BOOKMARK events every [`crate::ServerOptions::bookmark_interval`], whose
//!   object carries only `kind`, `apiVersion` and `metadata.resourceVersion` (every change up to it was sent);
//! - `timeoutSeconds`: the server ends the stream cleanly after that long;
//! - a watch from a resourceVersion older than the retained history is answered like the watch cache does:
//!   HTTP 200 and one ERROR event whose object is a 410 `Status`, reason `Expired`, message
//!   `too old resource version: X (Y)`; a running watch whose position is compacted away (a slow reader)
//!   gets the same ERROR event and ends;
//! - label and field selectors apply to both the new and the previous object, so an object that stops
//!   matching arrives as DELETED and one that starts matching as ADDED (the watch cache's filtering).
//!
//! Control plane of the fake: one task per watch, woken by the store's resourceVersion channel; the store's
//! lock is held only to copy out events.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::server::{
    Body, Output, Selectors, Shared, StreamFault, Target, include_object, streaming_response,
};
use crate::status::{ApiError, FieldError};
use crate::store::{EventType, Stored};
use crate::table;

type Query = std::collections::HashMap<String, String>;

/// Events copied out of the store per lock acquisition.
const BATCH: usize = 1_000;

fn flag(query: &Query, key: &str) -> Option<bool> {
    query
        .get(key)
        .map(|v| matches!(v.as_str(), "1" | "true" | "True"))
}

/// Validates the options, positions the watch, and starts its task.
pub(crate) async fn start(
    shared: Arc<Shared>,
    target: &Target,
    query: &Query,
    output: Output,
) -> Result<Response<Body>, ApiError> {
    let selectors = Selectors::parse(query, &shared.registry.get(target.index).resource)?;
    let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();
    let rv_match = query
        .get("resourceVersionMatch")
        .cloned()
        .unwrap_or_default();
    let send_initial = flag(query, "sendInitialEvents");
    let bookmarks = flag(query, "allowWatchBookmarks").unwrap_or(false);
    // meta/internalversion validateWatchOptions.
    let mut errors = Vec::new();
    if send_initial.is_some() {
        if rv_match != "NotOlderThan" {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !shared.watch_list {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
    }
    if !rv_match.is_empty() {
        if send_initial.is_none() {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        if rv_match != "NotOlderThan" {
            errors.push(FieldError::not_supported(
                "resourceVersionMatch",
                &json!(rv_match),
                &["NotOlderThan"],
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_list_options(&errors));
    }
    let requested: Option<u64> = match rv_param.as_str() {
        "" | "0" => None,
        text => Some(
            text.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(text) if !text.is_empty() => {
            let seconds: u64 = text
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {text}")))?;
            Some(std::time::Duration::from_secs(seconds))
        }
        _ => None,
    };
    let index = target.index;
    let namespace = target.namespace.clone();
    let matches = move |object: &Stored| {
        namespace.as_deref().is_none_or(|ns| object.namespace == ns) && selectors.matches(object)
    };
    // Position the watch: initial state and cursor are read under one lock, so nothing is missed.
    let with_initial_state = match send_initial {
        Some(initial) => initial,
        None => requested.is_none(),
    };
    let (initial, cursor, too_old) = {
        let store = shared.store();
        if with_initial_state {
            let items: Vec<Arc<Stored>> = store
                .current(index, target.namespace.as_deref())
                .into_iter()
                .filter(|o| matches(o))
                .collect();
            (items, store.rv(), None)
        } else {
            let cursor = requested.unwrap_or(store.rv());
            let too_old = (cursor < store.compacted())
                .then(|| ApiError::too_old_resource_version(cursor, store.compacted()));
            (Vec::new(), cursor, too_old)
        }
    };
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    if let Some(error) = too_old {
        // The watch cache answers a too-old resourceVersion with 200 and a single ERROR event.
        let _ = sender.try_send(Ok(error_event(&error)));
        return Ok(streaming_response(receiver));
    }
    let task = WatchTask {
        shared: shared.clone(),
        index,
        output,
        include_object: include_object(query).to_owned(),
        bookmarks,
        initial_end_bookmark: send_initial == Some(true) && bookmarks,
        sender,
    };
    tokio::spawn(task.run(initial, cursor, timeout, Box::new(matches)));
    Ok(streaming_response(receiver))
}

fn error_event(error: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": error.to_json()}))
        .unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

struct WatchTask {
    shared: Arc<Shared>,
    index: usize,
    output: Output,
    include_object: String,
    bookmarks: bool,
    initial_end_bookmark: bool,
    sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

enum Step {
    Continue,
    Stop,
}

// === impl WatchTask ===

impl WatchTask {
    async fn run(
        self,
        initial: Vec<Arc<Stored>>,
        mut cursor: u64,
        timeout: Option<std::time::Duration>,
        matches: Box<dyn Fn(&Stored) -> bool + Send + Sync>,
    ) {
        let dropped = self.shared.watch_drop_token();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut changes = self.shared.store().subscribe();
        for batch in initial.chunks(500) {
            let mut chunk = Vec::new();
            for object in batch {
                self.encode(&mut chunk, EventType::Added.as_str(), object);
            }
            if !self.send(chunk, &dropped).await {
                return;
            }
        }
        if self.initial_end_bookmark {
            if self.shared.take_stream_fault(
                StreamFault::CutStreamingList,
                &self.shared.registry.get(self.index).resource,
            ) {
                // Cut short (`FakeApiServer::cut_next_streaming_list`): no bookmark, the stream ends.
                return;
            }
            let line = self.bookmark(cursor, true);
            if !self.send(line, &dropped).await {
                return;
            }
        }
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + self.shared.bookmark_interval,
            self.shared.bookmark_interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            changes.borrow_and_update();
            let events = self.shared.store().events_after(cursor, BATCH);
            match events {
                Err(compacted) => {
                    let error = ApiError::too_old_resource_version(cursor, compacted.compacted);
                    let _ = self.sender.send(Ok(error_event(&error))).await;
                    return;
                }
                Ok(events) if !events.is_empty() => {
                    let mut chunk = Vec::new();
                    for event in &events {
                        cursor = event.rv;
                        if event.resource != self.index {
                            continue;
                        }
                        let now = event.kind != EventType::Deleted && matches(&event.object);
                        let before = match event.kind {
                            EventType::Deleted => matches(&event.object),
                            _ => event.prev.as_ref().is_some_and(|p| matches(p)),
                        };
                        match (before, now) {
                            (false, true) => self.encode(&mut chunk, "ADDED", &event.object),
                            (true, true) => self.encode(&mut chunk, "MODIFIED", &event.object),
                            (true, false) if event.kind == EventType::Deleted => {
                                self.encode(&mut chunk, "DELETED", &event.object)
                            }
                            (true, false) => {
                                // Left the selection: DELETED with the previous content at this rv.
                                let prev = event.prev.as_ref().expect("before implies prev");
                                let resource = self.shared.registry.get(self.index);
                                let mut value =
                                    prev.to_value(&resource.api_version(), &resource.kind);
                                value["metadata"]["resourceVersion"] = json!(event.rv.to_string());
                                let moved = Stored::encode(value, event.rv);
                                self.encode(&mut chunk, "DELETED", &moved);
                            }
                            (false, false) => {}
                        }
                    }
                    if !chunk.is_empty()
                        && self.shared.take_stream_fault(
                            StreamFault::GarbleEvent,
                            &self.shared.registry.get(self.index).resource,
                        )
                    {
                        // `FakeApiServer::garble_next_watch_event`: the first event's line replaced.
                        let first = chunk
                            .iter()
                            .position(|b| *b == b'\n')
                            .map_or(chunk.len(), |at| at + 1);
                        chunk.splice(
                            ..first,
                            b"{\"type\":\"GARBLED\",\"object\":{}}\n".iter().copied(),
                        );
                    }
                    if !chunk.is_empty() && !self.send(chunk, &dropped).await {
                        return;
                    }
                    continue;
                }
                Ok(_) => {}
            }
            let step = tokio::select! {
                _ = dropped.cancelled() => {
                    // Abort mid-stream, as a broken connection would.
                    let _ = self.sender.send(Err(std::io::Error::other("watch dropped"))).await;
                    Step::Stop
                }
                _ = sleep_until(deadline) => Step::Stop,
                _ = ticker.tick(), if self.bookmarks => {
                    let line = self.bookmark(cursor, false);
                    if self.send(line, &dropped).await { Step::Continue } else { Step::Stop }
                }
                changed = changes.changed() => {
                    if changed.is_ok() { Step::Continue } else { Step::Stop }
                }
                _ = self.sender.closed() => Step::Stop,
            };
            if let Step::Stop = step {
                return;
            }
        }
    }

    /// Sends a chunk; false when the client is gone or the watch was dropped.
    async fn send(&self, chunk: Vec<u8>, dropped: &tokio_util::sync::CancellationToken) -> bool {
        tokio::select! {
            _ = dropped.cancelled() => {
                let _ = self.sender.try_send(Err(std::io::Error::other("watch dropped")));
                false
            }
            sent = self.sender.send(Ok(Bytes::from(chunk))) => sent.is_ok(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>, kind: &str, object: &Stored) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self.output {
            Output::Json => object.with_kind(&self.shared.prefixes[self.index], out),
            Output::Table => {
                let resource = self.shared.registry.get(self.index);
                let value = object.to_value(&resource.api_version(), &resource.kind);
                let table = table::build(
                    resource,
                    &[value],
                    Some(object.rv),
                    None,
                    None,
                    &self.include_object,
                );
                out.extend_from_slice(&serde_json::to_vec(&table).unwrap_or_default());
            }
        }
        out.extend_from_slice(b"}\n");
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Vec<u8> {
        let resource = self.shared.registry.get(self.index);
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object: Value = json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": metadata});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object})).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
