//! The `loop` plugin: detect a forwarding loop back to this server at start.
//!
//! Control plane sends, data plane counts. As CoreDNS's `loop` does: a task
//! sends `HINFO <random>.<random>.<zone>` to the listener's own address once a
//! second (for at most 30 s) until any reply comes back, and switches the check
//! off 2 s after that reply. The answer path counts queries for exactly that
//! name on their way to the forwarder; when it has been seen twice, the query
//! came back through the upstreams: the process logs the loop and
//! exits with status 1, because a looping DNS server only burns CPU until
//! every query times out (in Kubernetes: CrashLoopBackOff, which is visible).
//!
//! ```text
//! prober ─HINFO n1.n2.zone─▶ listener ─▶ not authoritative ─▶ LoopGuard::saw ─▶ forward ─▶ (upstream) ─┐
//!                                ▲                                                                       │
//!                                └────────────────────────── same query back? count > 2 ⇒ exit(1) ◀───────┘
//! ```

use signpost_proto::Name;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// HINFO (RFC 1035 §3.3.2), the type CoreDNS's probe uses.
const HINFO: u16 = 13;

/// One listener's probe name and how often it came back.
#[derive(Debug)]
pub struct LoopGuard {
    /// The probe name, lower-case wire format.
    probe: Name,
    zone: Name,
    seen: AtomicU32,
    off: AtomicBool,
}

// === impl LoopGuard ===

impl LoopGuard {
    /// A guard for `zone` (the first zone of the server block with `loop`)
    /// with a fresh random probe name.
    pub fn new(zone: Name) -> Self {
        let random = || {
            let mut bytes = [0u8; 8];
            // Unpredictable enough for a probe name; no crate needed.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let state = std::collections::hash_map::RandomState::new();
            let hash = std::hash::BuildHasher::hash_one(&state, nanos);
            bytes.copy_from_slice(&hash.to_le_bytes());
            u64::from_le_bytes(bytes) >> 2
        };
        let probe = zone
            .child(&random().to_string())
            .and_then(|name| name.child(&random().to_string()))
            // A zone too long for two more labels: probe with one, or the zone itself.
            .or_else(|_| zone.child(&random().to_string()))
            .unwrap_or_else(|_| zone.clone());
        Self {
            probe,
            zone,
            seen: AtomicU32::new(0),
            off: AtomicBool::new(false),
        }
    }

    /// Data plane: a query on its way to the forwarder. Exits the process
    /// when the probe has come back more than twice.
    pub fn saw(&self, qname_lower: &[u8], qtype: u16, client: SocketAddr) {
        if qtype != HINFO || self.off.load(Ordering::Relaxed) || qname_lower != self.probe.as_wire()
        {
            return;
        }
        let seen = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        // CoreDNS waits for a third arrival; signpost's forwarder coalesces
        // identical questions in flight, so a loop shows exactly one return.
        // Only the prober sends this random name, once per attempt: a second
        // arrival is the query coming back.
        if seen >= 2 {
            tracing::error!(
                "plugin/loop: Loop ({client} -> listener) detected for zone \"{}\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
                self.zone,
                self.probe
            );
            eprintln!(
                "fatal: forwarding loop detected for zone \"{}\" (query HINFO {} came back {seen} times): the upstreams send this server's queries back to it",
                self.zone, self.probe
            );
            std::process::exit(1);
        }
    }

    /// Control plane: probes `target` (the listener's address; an
    /// unspecified address means this host) until a reply, then stops
    /// checking 2 s later, or after 30 s in any case.
    pub async fn probe(self: std::sync::Arc<Self>, target: SocketAddr, cancel: CancellationToken) {
        let target = match target.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, target.port()))
            }
            ip if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, target.port())),
            _ => target,
        };
        let packet = signpost_proto::message::query(
            0x1007,
            &[
                self.probe.as_wire(),
                &HINFO.to_be_bytes(),
                &signpost_proto::CLASS_IN.to_be_bytes(),
            ]
            .concat(),
            true,
            false,
            None,
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline && !cancel.is_cancelled() {
            let packet = packet.clone();
            let answered = tokio::task::spawn_blocking(move || exchange(&packet, target))
                .await
                .unwrap_or(false);
            if answered {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                break;
            }
            // CoreDNS resets the count when an attempt fails.
            self.seen.store(0, Ordering::Relaxed);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        self.off.store(true, Ordering::Relaxed);
    }
}

/// One UDP exchange with a 2 s wait: true when any reply came.
fn exchange(packet: &[u8], target: SocketAddr) -> bool {
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(socket) = UdpSocket::bind(local) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
    if socket.send_to(packet, target).is_err() {
        return false;
    }
    let mut buffer = [0u8; 512];
    socket.recv_from(&mut buffer).is_ok()
}
