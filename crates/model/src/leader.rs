//! Leader election: one writer among several replicas of a role.
//!
//! Control plane. `signpost health` and `signpost sync` run as several
//! replicas; only the leader probes or writes. An [`Elector`] (a Kubernetes
//! `coordination.k8s.io/v1` Lease, or an etcd lease, in `signpost-discovery`)
//! campaigns for as long as it runs and reports through a [`Leadership`]
//! whether this replica leads right now.
//!
//! Invariant: an elector reports `false` before its lease can have expired
//! (it stops leading when a renewal does not succeed within its renew
//! deadline, which is shorter than the lease duration), so two replicas never
//! both believe they lead while their clocks agree within that margin.

use crate::source::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Campaigns for leadership until cancelled.
pub trait Elector: Send + 'static {
    /// This replica's identity as the lock records it (pod name, host name).
    fn identity(&self) -> &str;

    /// Campaigns, renews while leading, and reports every change through
    /// `leadership`; on cancellation gives the lock up if held.
    fn run(
        self: Box<Self>,
        leadership: Leadership,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()>;
}

/// Whether this replica leads; written by its elector, read by the role.
#[derive(Debug, Clone)]
pub struct Leadership {
    sender: watch::Sender<bool>,
}

// === impl Leadership ===

impl Leadership {
    /// Not leading, until an elector says otherwise.
    pub fn new() -> Self {
        Self {
            sender: watch::Sender::new(false),
        }
    }

    /// Records whether this replica leads (an elector calls this).
    pub fn set(&self, leading: bool) {
        self.sender.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
    }

    /// True while this replica leads.
    pub fn is_leading(&self) -> bool {
        *self.sender.borrow()
    }

    /// A receiver that wakes on every change.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.sender.subscribe()
    }
}

impl Default for Leadership {
    fn default() -> Self {
        Self::new()
    }
}
