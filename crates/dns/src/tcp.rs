//! DNS over TCP (RFC 7766): several and pipelined queries per connection.
//!
//! Data plane on the async runtime: one task per connection (never per
//! query). Answers go back in query order. A connection closes after
//! [`TcpLimits::idle_timeout`] without a complete query, so half-open and
//! stalled connections cannot pin resources, and at most
//! [`TcpLimits::max_connections`] are open at once; further ones are closed
//! on accept (RFC 7766 §6.2.2 lets a server shed connections).

use crate::answer::{Outcome, Responder};
use crate::exchange::Exchange;
use crate::metrics::Transport;
use crate::querylog::QueryLog;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Limits on TCP clients.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Close a connection that has not sent a complete query for this long.
    pub idle_timeout: Duration,
    /// Open connections allowed at once.
    pub max_connections: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        // RFC 7766 §6.2.3 suggests idle timeouts of seconds; CoreDNS uses 10 s.
        Self {
            idle_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Accepts connections until `cancel` fires; open connections then finish the
/// query in hand and close.
pub async fn serve(
    listener: TcpListener,
    current: Arc<ArcSwap<Responder>>,
    limits: TcpLimits,
    cancel: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%client, "tcp connection limit reached; closing");
            drop(stream);
            continue;
        };
        let current = current.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            connection(stream, client, &current, limits, &cancel).await;
        });
    }
}

async fn connection(
    stream: TcpStream,
    client: std::net::SocketAddr,
    current: &ArcSwap<Responder>,
    limits: TcpLimits,
    cancel: &CancellationToken,
) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut query = vec![0u8; 512];
    let mut out = vec![0u8; signpost_proto::MAX_TCP_MESSAGE + 2];
    let mut log = QueryLog::default();
    loop {
        let read = async {
            let len = reader.read_u16().await? as usize;
            if query.len() < len {
                query.resize(len, 0);
            }
            reader.read_exact(&mut query[..len]).await?;
            Ok::<usize, std::io::Error>(len)
        };
        let len = tokio::select! {
            () = cancel.cancelled() => return,
            read = tokio::time::timeout(limits.idle_timeout, read) => match read {
                Ok(Ok(len)) => len,
                _ => return,
            },
        };
        // Each query sees the responder current when it arrives (reloads swap it).
        let responder = current.load_full();
        if let Some(messages) = responder.transfer(&query[..len]) {
            tracing::info!(%client, messages = messages.len(), "zone transfer");
            for message in messages {
                let mut framed = Vec::with_capacity(message.len() + 2);
                framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
                framed.extend_from_slice(&message);
                if !matches!(
                    tokio::time::timeout(limits.idle_timeout, writer.write_all(&framed)).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
            }
            continue;
        }
        let exchange = Exchange {
            client,
            transport: Transport::Tcp,
            shard: responder.shard(usize::MAX),
            received: tokio::time::Instant::now(),
        };
        let answer_len = match responder.answer(&query[..len], &mut out[2..], exchange, &mut log) {
            Outcome::Reply(answer_len) => answer_len,
            Outcome::Drop => continue,
            Outcome::Defer { zone, limit } => {
                let Some(recursion) = responder.recursion() else {
                    continue;
                };
                // Answers stay in query order: the connection waits for this one.
                let answer = recursion
                    .resolve(&query[..len], Transport::Tcp, client, zone, limit)
                    .await;
                if answer.is_empty() {
                    continue;
                }
                out[2..2 + answer.len()].copy_from_slice(&answer);
                answer.len()
            }
        };
        out[..2].copy_from_slice(&(answer_len as u16).to_be_bytes());
        let write = writer.write_all(&out[..answer_len + 2]);
        if !matches!(
            tokio::time::timeout(limits.idle_timeout, write).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}
