//! Paged lists fetched one page ahead.
//!
//! Control plane, a tower layer in every Kubernetes client signpost builds.
//! kube-rs's watcher lists in pages of 500 and asks for the next page only
//! after it has decoded the last one and handed out its objects, so the API
//! server and signpost take turns: one encodes while the other waits. A list
//! response names its next page (`metadata.continue`), and kube-apiserver
//! writes `metadata` before `items`. This layer reads the token from the head
//! of a page as soon as the page has arrived and asks for the next page at
//! once, so the server encodes page N+1 while the watch decodes page N. When
//! the watch then asks for that page it gets the response already fetched, or
//! waits for the one in flight. A continue token pins the list's snapshot
//! (its resourceVersion), so a page fetched early is the page the watch's own
//! request would have got.
//!
//! Only the paged path uses this: a streaming list (the first list on an API
//! server with the WatchList feature gate on) has no pages. It matters on
//! API servers that refuse streaming lists (1.27–1.31 and 1.33 by default) and
//! for every relist after `410 Gone`.
//!
//! Invariants:
//! - only a GET with `limit` and without `watch` is fetched ahead, one page
//!   ahead of the page the caller asked for;
//! - a page fetched ahead is handed out once, to a request with the same path,
//!   the same query parameters (in any order) and the same `Accept`;
//! - the caller sees only answers to requests it could have sent itself: a
//!   fetch ahead's whole answer, an error status included (after kube's own
//!   retries, which are not run twice), or, when the fetch failed on the
//!   connection or while reading the body, the answer to its own request;
//! - at most [`MAX_AHEAD`] pages wait, none longer than [`AHEAD_FOR`]; a page
//!   nobody asks for is dropped, and its fetch aborted if still running, as
//!   are all of a client's fetches when the client goes.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri, response};
use http_body_util::{BodyExt, Full};
use kube::client::{Body, DynBody};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::buffer::Buffer;
use tower::{BoxError, Layer, Service, ServiceExt};

/// Pages waiting to be asked for, across all the client's lists. Two lists
/// at a time (Services and EndpointSlices) use two.
const MAX_AHEAD: usize = 16;

/// How long a page fetched ahead waits to be asked for. The watch asks as
/// soon as it has handed out the page before; a page older than this
/// belongs to a list that was given up.
const AHEAD_FOR: Duration = Duration::from_secs(30);

/// Requests waiting for the inner stack (tower's `Buffer` bound).
const QUEUE: usize = 64;

/// The response type of kube's client stack.
type Answer = Response<Box<DynBody>>;

/// A page fetched ahead: the response's head and its whole body.
type Page = (response::Parts, Bytes);

/// The layer: wraps a kube client stack in [`PrefetchPages`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PrefetchLayer;

impl<S> Layer<S> for PrefetchLayer
where
    S: Service<Request<Body>, Response = Answer, Error = BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Service = PrefetchPages<S>;

    /// Must run inside a tokio runtime (the buffer's worker is a task).
    fn layer(&self, inner: S) -> Self::Service {
        PrefetchPages {
            inner: Buffer::new(inner, QUEUE),
            ahead: Arc::default(),
        }
    }
}

/// A kube client stack whose paged lists are fetched one page ahead.
pub(super) struct PrefetchPages<S>
where
    S: Service<Request<Body>>,
{
    inner: Buffer<Request<Body>, S::Future>,
    ahead: Arc<Mutex<Ahead>>,
}

impl<S> Service<Request<Body>> for PrefetchPages<S>
where
    S: Service<Request<Body>, Response = Answer, Error = BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, BoxError>> + Send>>;

    /// Always ready: each call waits for the buffer's capacity itself.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let ahead = self.ahead.clone();
        Box::pin(async move {
            let Some(key) = PageKey::of(&request) else {
                return inner.oneshot(request).await;
            };
            let uri = request.uri().clone();
            let headers = request.headers().clone();
            let extensions = request.extensions().clone();
            let waiting = ahead.lock().unwrap_or_else(|e| e.into_inner()).take(&key);
            let early = match waiting {
                Some(task) => task.await.ok().flatten(),
                None => None,
            };
            let (parts, bytes) = match early {
                Some(page) => {
                    tracing::trace!(%uri, "kubernetes: list page fetched ahead");
                    page
                }
                None => {
                    let response = inner.clone().oneshot(request).await?;
                    if response.status() != StatusCode::OK {
                        return Ok(response);
                    }
                    let (parts, body) = response.into_parts();
                    (parts, body.collect().await?.to_bytes())
                }
            };
            if parts.status == StatusCode::OK
                && let Some(token) = continue_token(&bytes)
                && let Some(next) = next_page(&uri, &headers, extensions, &token)
            {
                fetch_ahead(inner, &ahead, next);
            }
            Ok(Response::from_parts(parts, whole(bytes)))
        })
    }
}

/// Starts fetching `request`, a page nobody asked for yet, and keeps it in
/// `ahead` for the request that will.
fn fetch_ahead<F>(inner: Buffer<Request<Body>, F>, ahead: &Mutex<Ahead>, request: Request<Body>)
where
    F: Future<Output = Result<Answer, BoxError>> + Send + 'static,
{
    let Some(key) = PageKey::of(&request) else {
        return;
    };
    // `None` only when no whole answer came: the caller then sends its own.
    let task = tokio::spawn(async move {
        let response = inner.oneshot(request).await.ok()?;
        let (parts, body) = response.into_parts();
        Some((parts, body.collect().await.ok()?.to_bytes()))
    });
    ahead
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, task, Instant::now());
}

/// A body already read whole, as kube's stack types it.
fn whole(bytes: Bytes) -> Box<DynBody> {
    Box::new(Full::new(bytes).map_err(|never| match never {}))
}

/// Pages fetched ahead, by the request that will ask for them.
#[derive(Default)]
struct Ahead {
    pages: HashMap<PageKey, (Instant, JoinHandle<Option<Page>>)>,
}

impl Ahead {
    /// The fetch for `key`, unless it has waited longer than [`AHEAD_FOR`]
    /// (then dropped: its page may be long expired).
    fn take(&mut self, key: &PageKey) -> Option<JoinHandle<Option<Page>>> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&mut self, key: &PageKey, now: Instant) -> Option<JoinHandle<Option<Page>>> {
        let (since, task) = self.pages.remove(key)?;
        if now.duration_since(since) < AHEAD_FOR {
            Some(task)
        } else {
            task.abort();
            None
        }
    }

    /// Keeps `task` for `key`, first dropping pages older than [`AHEAD_FOR`]
    /// and, past [`MAX_AHEAD`], the oldest.
    fn insert(&mut self, key: PageKey, task: JoinHandle<Option<Page>>, now: Instant) {
        self.pages.retain(|_, (since, task)| {
            let keep = now.duration_since(*since) < AHEAD_FOR;
            if !keep {
                task.abort();
            }
            keep
        });
        while self.pages.len() >= MAX_AHEAD {
            let Some(oldest) = self
                .pages
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some((_, task)) = self.pages.remove(&oldest) {
                task.abort();
            }
        }
        if let Some((_, replaced)) = self.pages.insert(key, (now, task)) {
            replaced.abort();
        }
    }
}

impl Drop for Ahead {
    /// A dropped client's fetches stop.
    fn drop(&mut self) {
        for (_, task) in self.pages.values() {
            task.abort();
        }
    }
}

/// A paged list request: its path, its query parameters (sorted) and what it
/// accepts (a metadata-only list asks for another type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PageKey {
    path: String,
    query: Vec<(String, String)>,
    accept: Option<Vec<u8>>,
}

impl PageKey {
    /// The key of `request` if it is a paged list (a GET with `limit`, not a
    /// watch).
    fn of<B>(request: &Request<B>) -> Option<Self> {
        if request.method() != Method::GET {
            return None;
        }
        let query = query_pairs(request.uri());
        let has = |name: &str| query.iter().any(|(key, _)| key == name);
        if !has("limit") || has("watch") {
            return None;
        }
        let mut query = query;
        query.sort();
        Some(Self {
            path: request.uri().path().to_owned(),
            query,
            accept: request
                .headers()
                .get(http::header::ACCEPT)
                .map(|value| value.as_bytes().to_vec()),
        })
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The request for the page after the one `uri` asked for: the same
/// parameters with `continue` set, and without `resourceVersion` and
/// `resourceVersionMatch`, which the API server refuses next to a continue
/// token (kube-rs leaves them out the same way); the same headers and
/// extensions (kube's request labels, for its tracing).
fn next_page(
    uri: &Uri,
    headers: &http::HeaderMap,
    extensions: http::Extensions,
    token: &str,
) -> Option<Request<Body>> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in query_pairs(uri) {
        if !matches!(
            key.as_str(),
            "continue" | "resourceVersion" | "resourceVersionMatch"
        ) {
            query.append_pair(&key, &value);
        }
    }
    query.append_pair("continue", token);
    let target = format!("{}?{}", uri.path(), query.finish());
    let mut request = Request::get(target).body(Body::empty()).ok()?;
    *request.headers_mut() = headers.clone();
    *request.extensions_mut() = extensions;
    Some(request)
}

/// `metadata.continue` of a list response, read from the members before
/// `items` only. `None` when the list is complete, when the body is not a
/// JSON object, or when `items` comes first (nothing is fetched ahead then).
fn continue_token(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ListMeta {
        #[serde(rename = "continue", default)]
        next: Option<String>,
    }

    /// Reads members up to `metadata` and stops there.
    struct Head<'a>(&'a mut Option<String>);

    impl<'de> DeserializeSeed<'de> for Head<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Head<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "metadata" => {
                        *self.0 = map.next_value::<ListMeta>()?.next;
                        // Stop reading: the items are the watch's to decode.
                        return Err(de::Error::custom("read up to metadata"));
                    }
                    "items" => return Err(de::Error::custom("items before metadata")),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }

    let mut token = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let _stopped = Head(&mut token).deserialize(&mut deserializer);
    token.filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests;
