//! The admin HTTP endpoints: `/health`, `/ready` and `/metrics`.
//!
//! Admin plane, on the async runtime, never on a query worker. Only GET (and
//! HEAD) of these three paths is served; each connection carries one request
//! and is closed, with a deadline so a slow client cannot hold it. The
//! endpoints are small and fixed, so a few lines of HTTP/1.1 replace a web
//! framework here; the status page and APIs of later issues may bring one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Renders the metrics exposition.
pub type RenderMetrics = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Extra JSON routes: given the request target (path and query), a status
/// line and body, or `None` when the path is not theirs.
pub type Routes = Arc<dyn Fn(&str) -> Option<(&'static str, String)> + Send + Sync>;

/// What the endpoints report.
#[derive(Clone)]
pub struct AdminState {
    /// Extra routes (the geo API).
    pub routes: Option<Routes>,
    /// True once the first complete snapshot serves (invariant I4).
    pub ready: Arc<AtomicBool>,
    /// Metrics renderer.
    pub metrics: RenderMetrics,
    /// Asks the health checker for every endpoint's state (`/api/v1/endpoints`).
    pub endpoints: Option<tokio::sync::mpsc::Sender<signpost_health::ReportRequest>>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8192;

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, state: AdminState, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_DEADLINE, handle(stream, &state)).await;
        });
    }
}

async fn handle(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 || request.len() + read > MAX_REQUEST {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let extra = state
        .routes
        .as_ref()
        .and_then(|routes| routes(std::str::from_utf8(target).unwrap_or_default()));
    let (status, content_type, body) = if method != b"GET" && method != b"HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_owned(),
        )
    } else if let Some((status, body)) = extra {
        (status, "application/json", body)
    } else {
        match path {
            b"/health" => ("200 OK", "text/plain", "OK".to_owned()),
            b"/ready" if state.ready.load(Ordering::Acquire) => {
                ("200 OK", "text/plain", "OK".to_owned())
            }
            b"/ready" => (
                "503 Service Unavailable",
                "text/plain",
                "not ready: no complete snapshot yet\n".to_owned(),
            ),
            b"/api/v1/endpoints" => match endpoint_reports(state).await {
                Some(body) => ("200 OK", "application/json", body),
                None => (
                    "404 Not Found",
                    "text/plain",
                    "health checks are off: no `healthcheck` plugin\n".to_owned(),
                ),
            },
            b"/metrics" => {
                let mut body = String::with_capacity(16 * 1024);
                (state.metrics)(&mut body);
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
            }
            _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// Every checked endpoint as JSON: `{"endpoints": [...]}`.
async fn endpoint_reports(state: &AdminState) -> Option<String> {
    let requests = state.endpoints.as_ref()?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    requests.send(reply).await.ok()?;
    let endpoints = answer.await.ok()?;
    serde_json::to_string_pretty(&serde_json::json!({ "endpoints": endpoints })).ok()
}
