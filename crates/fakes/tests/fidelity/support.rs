//! Test support: a small HTTP client for the fake (plain HTTP on loopback), a watch-stream reader, and
//! deadlines. Nothing here sleeps to synchronise: waits are for observable events, bounded by
//! [`DEADLINE`], which is generous so a loaded 2-core machine does not flake.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use signpost_fakes::{FakeApiServer, ServerOptions};

/// The longest any single wait in these tests may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// A plain-HTTP server with bookmarks every 100 ms and the control endpoints on.
pub(crate) async fn plain_server() -> FakeApiServer {
    start(ServerOptions {
        tls: false,
        control_endpoints: true,
        bookmark_interval: Duration::from_millis(100),
        ..ServerOptions::default()
    })
    .await
}

pub(crate) async fn start(options: ServerOptions) -> FakeApiServer {
    FakeApiServer::start(options)
        .await
        .expect("fake API server starts")
}

/// One response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

/// A client for one server.
#[derive(Clone)]
pub(crate) struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: Option<String>,
}

impl Api {
    pub(crate) fn new(server: &FakeApiServer) -> Self {
        Self::for_url(&server.url())
    }

    pub(crate) fn for_url(url: &str) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: url.to_owned(),
            token: None,
        }
    }

    pub(crate) fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> hyper::Response<Incoming> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some((content_type, bytes)) => builder
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(bytes))),
            None => builder.body(Full::new(Bytes::new())),
        }
        .expect("request builds");
        tokio::time::timeout(DEADLINE, self.client.request(request))
            .await
            .expect("response within the deadline")
            .expect("request succeeds")
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Value)>,
    ) -> Reply {
        let response = self
            .raw(
                method,
                path,
                body.map(|(ct, v)| (ct, serde_json::to_vec(&v).unwrap())),
            )
            .await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = tokio::time::timeout(DEADLINE, response.into_body().collect())
            .await
            .expect("body within the deadline")
            .expect("body reads")
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(("application/json", body)))
            .await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(("application/json", body)))
            .await
    }

    pub(crate) async fn patch(&self, path: &str, content_type: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some((content_type, body)))
            .await
    }

    pub(crate) async fn delete(&self, path: &str, options: Option<Value>) -> Reply {
        self.send(
            Method::DELETE,
            path,
            options.map(|o| ("application/json", o)),
        )
        .await
    }

    /// Starts a watch; the status is checked by the caller through [`WatchStream::status`].
    pub(crate) async fn watch(&self, path: &str) -> WatchStream {
        let response = self.raw(Method::GET, path, None).await;
        WatchStream {
            status: response.status().as_u16(),
            body: response.into_body(),
            buffer: Vec::new(),
        }
    }
}

/// What reading a watch produced.
#[derive(Debug)]
pub(crate) enum Next {
    Event(Value),
    /// The server ended the stream cleanly.
    End,
    /// The stream broke (connection aborted mid-body).
    Broken,
}

/// Newline-delimited JSON events of one watch.
pub(crate) struct WatchStream {
    pub(crate) status: u16,
    body: Incoming,
    buffer: Vec<u8>,
}

impl WatchStream {
    /// The next event, within [`DEADLINE`] (panics otherwise).
    pub(crate) async fn next(&mut self) -> Next {
        tokio::time::timeout(DEADLINE, self.next_inner())
            .await
            .expect("watch event or end within the deadline")
    }

    async fn next_inner(&mut self) -> Next {
        loop {
            if let Some(position) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=position).collect();
                if line.len() > 1 {
                    return Next::Event(serde_json::from_slice(&line).expect("event is JSON"));
                }
                continue;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) => return Next::Broken,
                None => return Next::End,
            }
        }
    }

    /// The next event, skipping BOOKMARKs.
    pub(crate) async fn next_change(&mut self) -> Value {
        loop {
            match self.next().await {
                Next::Event(event) if event["type"] == "BOOKMARK" => continue,
                Next::Event(event) => return event,
                other => panic!("watch ended before the next change: {other:?}"),
            }
        }
    }
}

pub(crate) fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {object}"))
}

pub(crate) fn service(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "test"}},
        "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": name}},
    })
}

pub(crate) fn lease(namespace: &str, name: &str, holder: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    })
}

pub(crate) fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    addresses: &[String],
) -> Value {
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"addresses": [a]}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"port": 80, "name": "http", "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}
