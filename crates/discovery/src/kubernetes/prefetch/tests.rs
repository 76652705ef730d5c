use super::*;
use kube::api::{ListParams, VersionMatch};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A list response as kube-apiserver writes it: `metadata` before `items`.
fn page(items: &[&str], next: Option<&str>) -> String {
    let meta = match next {
        Some(token) => {
            format!(r#"{{"resourceVersion":"7","continue":"{token}","remainingItemCount":3}}"#)
        }
        None => r#"{"resourceVersion":"7"}"#.to_owned(),
    };
    let items: Vec<String> = items
        .iter()
        .map(|name| format!(r#"{{"metadata":{{"name":"{name}"}}}}"#))
        .collect();
    format!(
        r#"{{"kind":"ServiceList","apiVersion":"v1","metadata":{meta},"items":[{}]}}"#,
        items.join(",")
    )
}

#[test]
fn the_continue_token_is_read_from_the_head() {
    assert_eq!(
        continue_token(page(&["a"], Some("tok-1")).as_bytes()).as_deref(),
        Some("tok-1")
    );
    assert_eq!(continue_token(page(&["a"], None).as_bytes()), None);
    assert_eq!(continue_token(page(&["a"], Some("")).as_bytes()), None);
    // Escapes in the token are decoded.
    assert_eq!(
        continue_token(br#"{"metadata":{"continue":"a\/b"},"items":[]}"#).as_deref(),
        Some("a/b")
    );
    // Items before metadata: not read, nothing fetched ahead.
    assert_eq!(
        continue_token(br#"{"items":[],"metadata":{"continue":"x"}}"#),
        None
    );
    // The items are not read: what follows the metadata may be anything.
    assert_eq!(
        continue_token(br#"{"kind":"L","metadata":{"continue":"x"},"items":[ not json"#).as_deref(),
        Some("x")
    );
    for junk in [
        &b""[..],
        b"[]",
        b"null",
        b"{\"metadata\":",
        b"\xff\xfe",
        b"{\"metadata\":{\"continue\":7}}",
    ] {
        assert_eq!(continue_token(junk), None, "{junk:?}");
    }
}

/// The request kube-rs's watcher sends for `lp`'s list.
fn kube_request(lp: &ListParams) -> Request<Vec<u8>> {
    kube::core::Request::new("/apis/discovery.k8s.io/v1/endpointslices")
        .list(lp)
        .unwrap()
}

#[test]
fn the_page_fetched_ahead_is_the_one_kube_asks_for_next() {
    let first_pages = [
        ListParams::default().limit(500),
        ListParams::default()
            .limit(500)
            .labels("app=web")
            .fields("metadata.namespace!=kube-system"),
        ListParams {
            resource_version: Some("123".into()),
            version_match: Some(VersionMatch::NotOlderThan),
            ..ListParams::default().limit(500)
        },
        ListParams {
            resource_version: Some("456".into()),
            version_match: Some(VersionMatch::Exact),
            ..ListParams::default().limit(2)
        },
    ];
    for lp in first_pages {
        let first = kube_request(&lp);
        assert!(PageKey::of(&first).is_some(), "{}", first.uri());
        let predicted =
            next_page(first.uri(), first.headers(), Default::default(), "tok/+=").unwrap();
        let mut next = lp.clone();
        next.continue_token = Some("tok/+=".into());
        let asked = kube_request(&next);
        assert_eq!(
            PageKey::of(&predicted),
            PageKey::of(&asked),
            "{} then {}",
            first.uri(),
            asked.uri()
        );
        // And the page after that, from a continued request.
        let again = next_page(asked.uri(), asked.headers(), Default::default(), "tok-3").unwrap();
        next.continue_token = Some("tok-3".into());
        assert_eq!(PageKey::of(&again), PageKey::of(&kube_request(&next)));
    }
}

#[test]
fn only_paged_lists_are_fetched_ahead() {
    let get = |uri: &str| Request::get(uri).body(()).unwrap();
    assert!(PageKey::of(&get("/api/v1/services?limit=500")).is_some());
    assert!(
        PageKey::of(&get("/api/v1/services")).is_none(),
        "a whole list has no next page"
    );
    assert!(PageKey::of(&get("/api/v1/services?watch=true&limit=500")).is_none());
    assert!(PageKey::of(&get("/api/v1/namespaces/default/services/web")).is_none());
    let post = Request::post("/api/v1/services?limit=500")
        .body(())
        .unwrap();
    assert!(PageKey::of(&post).is_none());
    // A metadata-only list of the same query is another request.
    let metadata = Request::get("/api/v1/services?limit=500")
        .header(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .body(())
        .unwrap();
    assert_ne!(
        PageKey::of(&metadata),
        PageKey::of(&get("/api/v1/services?limit=500"))
    );
    // The order of the parameters does not matter.
    assert_eq!(
        PageKey::of(&get("/api/v1/services?limit=500&continue=x")),
        PageKey::of(&get("/api/v1/services?continue=x&limit=500"))
    );
}

/// A server of one three-page list under `/api/v1/services`: it records
/// every request's query, answers the one numbered `fail` (from 0) with 500
/// and fails the one numbered `broken` without an answer (a connection
/// error).
#[derive(Clone)]
struct Pages {
    seen: Arc<Mutex<Vec<String>>>,
    fail: Arc<AtomicUsize>,
    broken: Arc<AtomicUsize>,
}

impl Default for Pages {
    fn default() -> Self {
        Self {
            seen: Arc::default(),
            fail: Arc::new(AtomicUsize::new(usize::MAX)),
            broken: Arc::new(AtomicUsize::new(usize::MAX)),
        }
    }
}

impl Pages {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn client(
        &self,
    ) -> PrefetchPages<
        impl Service<Request<Body>, Response = Answer, Error = BoxError, Future: Send> + Send + use<>,
    > {
        let pages = self.clone();
        PrefetchLayer.layer(tower::service_fn(move |request: Request<Body>| {
            let pages = pages.clone();
            async move {
                let query = request.uri().query().unwrap_or_default().to_owned();
                let number = {
                    let mut seen = pages.seen.lock().unwrap();
                    seen.push(query.clone());
                    seen.len() - 1
                };
                if number == pages.broken.load(Ordering::SeqCst) {
                    return Err(BoxError::from("connection reset"));
                }
                let failing = number == pages.fail.load(Ordering::SeqCst);
                let (status, body) = if failing {
                    (500, r#"{"kind":"Status","code":500}"#.to_owned())
                } else if query.contains("continue=two") {
                    (200, page(&["c", "d"], Some("three")))
                } else if query.contains("continue=three") {
                    (200, page(&["e"], None))
                } else if query.contains("watch") || !query.contains("limit") {
                    (200, page(&["whole"], Some("ignored")))
                } else {
                    (200, page(&["a", "b"], Some("two")))
                };
                let response = Response::builder()
                    .status(status)
                    .body(whole(Bytes::from(body)))
                    .unwrap();
                Ok::<_, BoxError>(response)
            }
        }))
    }
}

async fn ask(
    client: &mut PrefetchPages<
        impl Service<Request<Body>, Response = Answer, Error = BoxError, Future: Send> + Send + 'static,
    >,
    uri: &str,
) -> (u16, String) {
    let request = Request::get(uri)
        .header("accept", "application/json")
        .body(Body::empty())
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn each_page_is_fetched_once_and_ahead_of_its_request() {
    let pages = Pages::default();
    let mut client = pages.client();
    let (status, body) = ask(&mut client, "/api/v1/services?limit=2&resourceVersion=0").await;
    assert_eq!((status, body), (200, page(&["a", "b"], Some("two"))));
    // Page two is asked for before the caller asks.
    until("page two fetched ahead", || pages.seen().len() == 2).await;
    assert_eq!(pages.seen()[1], "limit=2&continue=two");
    let (_, body) = ask(&mut client, "/api/v1/services?limit=2&continue=two").await;
    assert_eq!(body, page(&["c", "d"], Some("three")));
    until("page three fetched ahead", || pages.seen().len() == 3).await;
    let (_, body) = ask(&mut client, "/api/v1/services?continue=three&limit=2").await;
    assert_eq!(body, page(&["e"], None));
    // The last page names no next one: nothing more is fetched.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        pages.seen(),
        [
            "limit=2&resourceVersion=0",
            "limit=2&continue=two",
            "limit=2&continue=three"
        ]
    );
}

#[tokio::test]
async fn an_error_answer_fetched_ahead_is_handed_out_not_asked_again() {
    let pages = Pages::default();
    // Request 1 is the fetch ahead of page two; its 500 is the answer the
    // caller would have got (after kube's own retries, not run twice).
    pages.fail.store(1, Ordering::SeqCst);
    let mut client = pages.client();
    ask(&mut client, "/api/v1/services?limit=2").await;
    until("page two fetched ahead", || pages.seen().len() == 2).await;
    let (status, body) = ask(&mut client, "/api/v1/services?limit=2&continue=two").await;
    assert_eq!(
        (status, body.as_str()),
        (500, r#"{"kind":"Status","code":500}"#)
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pages.seen(), ["limit=2", "limit=2&continue=two"]);
}

#[tokio::test]
async fn a_fetch_ahead_without_an_answer_is_asked_again() {
    let pages = Pages::default();
    // Request 1, the fetch ahead of page two, gets no answer at all.
    pages.broken.store(1, Ordering::SeqCst);
    let mut client = pages.client();
    ask(&mut client, "/api/v1/services?limit=2").await;
    until("page two fetched ahead", || pages.seen().len() == 2).await;
    let (status, body) = ask(&mut client, "/api/v1/services?limit=2&continue=two").await;
    assert_eq!((status, body), (200, page(&["c", "d"], Some("three"))));
    until("page three fetched ahead", || pages.seen().len() == 4).await;
    assert_eq!(
        pages.seen(),
        [
            "limit=2",
            "limit=2&continue=two",
            "limit=2&continue=two",
            "limit=2&continue=three"
        ]
    );
}

#[tokio::test]
async fn other_requests_pass_through() {
    let pages = Pages::default();
    let mut client = pages.client();
    // A whole list and a watch: answered as they come, nothing fetched ahead.
    let (_, body) = ask(&mut client, "/api/v1/services").await;
    assert_eq!(body, page(&["whole"], Some("ignored")));
    ask(&mut client, "/api/v1/services?watch=true&limit=2").await;
    // An error answer to a paged list is passed on as it is.
    pages.fail.store(2, Ordering::SeqCst);
    let (status, body) = ask(&mut client, "/api/v1/services?limit=2").await;
    assert_eq!(
        (status, body.as_str()),
        (500, r#"{"kind":"Status","code":500}"#)
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pages.seen().len(), 3, "{:?}", pages.seen());
}

#[tokio::test]
async fn pages_nobody_asks_for_are_dropped() {
    let mut ahead = Ahead::default();
    let key = |n: usize| PageKey {
        path: "/api/v1/services".into(),
        query: vec![("continue".into(), n.to_string())],
        accept: None,
    };
    let never = || tokio::spawn(std::future::pending::<Option<Page>>());
    let start = Instant::now();
    for n in 0..MAX_AHEAD + 4 {
        ahead.insert(key(n), never(), start + Duration::from_millis(n as u64));
    }
    assert_eq!(ahead.pages.len(), MAX_AHEAD);
    assert!(ahead.take(&key(0)).is_none(), "the oldest went first");
    assert!(ahead.take(&key(MAX_AHEAD + 3)).is_some());
    // Past AHEAD_FOR a page is not handed out, and everything older is
    // dropped at the next insert.
    let late = start + AHEAD_FOR + Duration::from_secs(1);
    assert!(ahead.take_at(&key(MAX_AHEAD + 2), late).is_none());
    ahead.insert(key(99), never(), late);
    assert_eq!(ahead.pages.len(), 1);
    // A dropped client's fetches stop.
    let running = never();
    let stopped = running.abort_handle();
    ahead.insert(key(100), running, late);
    drop(ahead);
    until("the fetch aborted", || stopped.is_finished()).await;
}
