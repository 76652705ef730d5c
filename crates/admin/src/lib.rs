//! The admin HTTP endpoints: `/health`, `/ready`, `/metrics` and a role's JSON APIs.
//!
//! Admin plane, on the async runtime, never on a query worker. Only GET (and
//! HEAD) is served; each connection carries one request and is closed, with a
//! deadline so a slow client cannot hold it. What the endpoints show comes
//! from the role's [`Status`], so every role serves the same way.

use signpost_model::Status;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8192;

/// Serves `status` on `listener` until `cancel` fires.
pub async fn serve(listener: TcpListener, status: Arc<dyn Status>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let status = status.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_DEADLINE, handle(stream, status.as_ref())).await;
        });
    }
}

async fn handle(mut stream: TcpStream, status: &dyn Status) -> std::io::Result<()> {
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
    let target = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let (code, content_type, body) = if method != b"GET" && method != b"HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_owned(),
        )
    } else if let Some(reply) = status.route(target).await {
        (reply.status, "application/json", reply.body)
    } else {
        match path {
            "/health" => ("200 OK", "text/plain", "OK".to_owned()),
            "/ready" if status.ready() => ("200 OK", "text/plain", "OK".to_owned()),
            "/ready" => (
                "503 Service Unavailable",
                "text/plain",
                "not ready: no complete snapshot yet\n".to_owned(),
            ),
            "/metrics" => {
                let mut body = String::with_capacity(16 * 1024);
                status.render_metrics(&mut body);
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
            }
            _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        }
    };
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
