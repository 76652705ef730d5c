//! The in-process health checker (`healthcheck`) and its links to the compilers.
//!
//! Control plane. One checker serves every listener of the process: each
//! compiler writes its listener's targets into one slot of a [`TargetBoard`]
//! after a build, the checker sees their union, and its verdicts reach every
//! compiler through the verdict bus as [`crate::compiler::Event::Verdicts`].
//! With `healthcheck { verdicts ... }` there is no checker: the bus is the
//! subscription to a `signpost health` leader's verdicts, and the targets
//! the compilers write go nowhere.

use signpost_health::checker::{self, CheckerParts, ReportRequest, Target};
use signpost_health::{HealthMetrics, HealthcheckConfig, Prober};
use signpost_model::{AllUnhealthy, LocalVerdicts, SubscribeVerdicts};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The process's health checker and the channels around it.
pub(crate) struct Health {
    pub(crate) bus: Arc<dyn SubscribeVerdicts>,
    pub(crate) targets: Arc<TargetBoard>,
    /// The checker's report channel; `None` when following a controller.
    pub(crate) reports: Option<tokio::sync::mpsc::Sender<ReportRequest>>,
    /// The checker's metrics; `None` when following a controller.
    pub(crate) metrics: Option<Arc<HealthMetrics>>,
}

/// Every listener's health targets; the checker sees their union.
pub(crate) struct TargetBoard {
    // Control plane only: compilers write their slot after a build.
    slots: Mutex<Vec<Arc<Vec<Target>>>>,
    sender: tokio::sync::watch::Sender<Arc<Vec<Target>>>,
}

/// A compiler's connection to the health checker.
pub(crate) struct HealthLink {
    pub(crate) targets: Arc<TargetBoard>,
    pub(crate) slot: usize,
    pub(crate) all_unhealthy: AllUnhealthy,
}

// === impl Health ===

impl Health {
    /// Starts the checker on the current runtime.
    pub(crate) fn start(
        settings: HealthcheckConfig,
        listeners: usize,
        cancel: CancellationToken,
    ) -> Self {
        let bus = Arc::new(LocalVerdicts::default());
        let metrics = Arc::new(HealthMetrics::default());
        let (sender, targets) = tokio::sync::watch::channel(Arc::new(Vec::new()));
        let (reports, report_requests) = tokio::sync::mpsc::channel(8);
        let parts = CheckerParts {
            policy: settings.policy,
            options: settings.options,
            probe: Arc::new(Prober::new()),
            publisher: bus.clone(),
            metrics: metrics.clone(),
        };
        checker::spawn(parts, targets, report_requests, cancel);
        Self {
            bus,
            targets: Arc::new(TargetBoard::new(listeners, sender)),
            reports: Some(reports),
            metrics: Some(metrics),
        }
    }

    /// Follows published verdicts instead of checking.
    pub(crate) fn follow(verdicts: Arc<dyn SubscribeVerdicts>, listeners: usize) -> Self {
        let (sender, _) = tokio::sync::watch::channel(Arc::new(Vec::new()));
        Self {
            bus: verdicts,
            targets: Arc::new(TargetBoard::new(listeners, sender)),
            reports: None,
            metrics: None,
        }
    }
}

// === impl TargetBoard ===

impl TargetBoard {
    fn new(listeners: usize, sender: tokio::sync::watch::Sender<Arc<Vec<Target>>>) -> Self {
        Self {
            slots: Mutex::new((0..listeners).map(|_| Arc::new(Vec::new())).collect()),
            sender,
        }
    }

    /// Replaces one listener's targets; the checker sees the union.
    pub(crate) fn set(&self, slot: usize, targets: Vec<Target>) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slots[slot].as_slice() == targets.as_slice() {
            return;
        }
        slots[slot] = Arc::new(targets);
        let mut union: Vec<Target> = slots.iter().flat_map(|s| s.iter().cloned()).collect();
        union.sort_by(|a, b| a.key.cmp(&b.key));
        union.dedup_by(|a, b| a.key == b.key);
        self.sender.send_replace(Arc::new(union));
    }
}
