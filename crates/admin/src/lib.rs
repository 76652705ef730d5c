//! signpost's HTTP surface: `/health`, `/ready`, `/metrics`, and on the
//! `admin` address the JSON APIs and the status page.
//!
//! Admin plane, on the control runtime, never on a query worker. Each
//! address serves only what its directives ask for ([`Surface`]): the
//! liveness port answers `/health` and nothing else, so the cluster's
//! topology is never readable through it. What the pages show comes from
//! the role's [`Status`], so every role serves the same way.
//!
//! ```text
//! accept ─▶ permit? ── no ──▶ close (signpost_admin_connections_rejected_total)
//!              │ yes
//!              ▼
//!  hyper HTTP/1.1 (header timeout, header count, head size, lifetime)
//!              ▼
//!  read_only (GET/HEAD, no body) ─▶ require_token (admin paths) ─▶ handler ─▶ Status
//! ```
//!
//! Invariants: every endpoint is read-only; connections are bounded by
//! [`Limits::max_connections`] and each is closed after
//! [`Limits::connection_lifetime`] or when its client stalls longer than
//! [`Limits::header_read_timeout`]; the token never reaches a log line, a
//! metric or a response.

mod page;
mod routes;
mod site;

pub use site::{AdminMetrics, Limits, Site, Surface, Token, TokenError};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use signpost_model::Status;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a connection past its lifetime (or at shutdown) may take to
/// finish the request in hand.
const DRAIN: Duration = Duration::from_secs(1);

/// Serves `status` on `listener` as `site` says until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    status: Arc<dyn Status>,
    site: Site,
    cancel: CancellationToken,
) {
    let router = routes::router(status, &site);
    let permits = Arc::new(Semaphore::new(site.limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::debug!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            site.metrics.rejected.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        };
        site.metrics.accepted.fetch_add(1, Relaxed);
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let limits = site.limits;
        let metrics = site.metrics.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            metrics.open.fetch_add(1, Relaxed);
            let _open = OpenGuard(&metrics);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_headers(limits.max_headers)
                .max_buf_size(limits.max_request_bytes.max(8192))
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = tokio::time::sleep(limits.connection_lifetime) => {}
                () = cancel.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, connection).await;
        });
    }
}

/// Counts a connection as open while it lives.
struct OpenGuard<'a>(&'a AdminMetrics);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests;
