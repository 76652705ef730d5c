//! The per-endpoint verdict state machine (control plane, pure).
//!
//! ```text
//!            pass                        fail (run starts: first_failure = now)
//!   ┌──────────────┐            ┌───────────────────────────┐
//!   ▼              │            │                           ▼
//! Healthy ─────────┘      Healthy ──fail──▶ Failing { failures, since } ──pass──▶ Healthy
//!   ▲                                         │ failures ≥ failure_threshold
//!   │                                         │ and now − since ≥ remove_unhealthy_delay
//!   │ passes ≥ success_threshold              ▼
//!   └──────────────────────────────── Unhealthy { passes } ◀──fail (passes = 0)
//! ```
//!
//! An endpoint starts Healthy (it is in DNS until checks say otherwise, so a
//! restart of signpost never empties answers). It leaves answers once it has
//! failed `failure_threshold` checks in a row **and** `remove_unhealthy_delay`
//! has passed since the first failure of that run (the reference deployment's
//! `removeUnhealthyDelay`). It returns after `success_threshold` passes in a
//! row. [`EndpointState::deadline`] tells the scheduler when the delay rule can
//! next change the verdict without a new check.

use std::time::Duration;
use tokio::time::Instant;

/// The health-check settings (defaults: 10 s interval, 3 s timeout, 3 failures, 1 success, 30 s removal delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Time between checks of one endpoint (default 10 s).
    pub interval: Duration,
    /// Time a check may take before it fails (default 3 s).
    pub timeout: Duration,
    /// Failures in a row that make an endpoint unhealthy (default 3).
    pub failure_threshold: u32,
    /// Passes in a row that make it healthy again (default 1).
    pub success_threshold: u32,
    /// Minimum time from the first failure of a run to removal (default 30 s).
    pub remove_unhealthy_delay: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            failure_threshold: 3,
            success_threshold: 1,
            remove_unhealthy_delay: Duration::from_secs(30),
        }
    }
}

/// Where an endpoint is in the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// In answers; the last check passed (or none ran yet).
    Healthy,
    /// In answers; failing, not yet removed.
    Failing {
        /// Failures in a row.
        failures: u32,
        /// When the first failure of this run was seen.
        since: Instant,
    },
    /// Out of answers.
    Unhealthy {
        /// Passes in a row since the last failure.
        passes: u32,
    },
}

/// What a transition did to the endpoint's place in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing visible changed.
    None,
    /// The endpoint left answers.
    Removed,
    /// The endpoint came back.
    Added,
}

/// One endpoint's verdict state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    /// The phase.
    pub phase: Phase,
}

impl Default for EndpointState {
    fn default() -> Self {
        Self {
            phase: Phase::Healthy,
        }
    }
}

// === impl EndpointState ===

impl EndpointState {
    /// True while the endpoint belongs in answers.
    pub fn is_serving(&self) -> bool {
        !matches!(self.phase, Phase::Unhealthy { .. })
    }

    /// Applies one check result seen at `now`.
    pub fn record(&mut self, passed: bool, now: Instant, policy: &HealthPolicy) -> Change {
        self.phase = match (self.phase, passed) {
            (Phase::Healthy | Phase::Failing { .. }, true) => Phase::Healthy,
            (Phase::Healthy, false) => Phase::Failing {
                failures: 1,
                since: now,
            },
            (Phase::Failing { failures, since }, false) => Phase::Failing {
                failures: failures.saturating_add(1),
                since,
            },
            (Phase::Unhealthy { passes }, true) => {
                let passes = passes.saturating_add(1);
                if passes >= policy.success_threshold.max(1) {
                    self.phase = Phase::Healthy;
                    return Change::Added;
                }
                Phase::Unhealthy { passes }
            }
            (Phase::Unhealthy { .. }, false) => Phase::Unhealthy { passes: 0 },
        };
        self.evaluate(now, policy)
    }

    /// Applies the delay rule at `now` without a new check.
    pub fn evaluate(&mut self, now: Instant, policy: &HealthPolicy) -> Change {
        if let Phase::Failing { failures, since } = self.phase
            && failures >= policy.failure_threshold.max(1)
            && now.saturating_duration_since(since) >= policy.remove_unhealthy_delay
        {
            self.phase = Phase::Unhealthy { passes: 0 };
            return Change::Removed;
        }
        Change::None
    }

    /// When the delay rule will remove this endpoint if nothing else happens:
    /// only for a failing run that already reached the failure threshold.
    pub fn deadline(&self, policy: &HealthPolicy) -> Option<Instant> {
        match self.phase {
            Phase::Failing { failures, since } if failures >= policy.failure_threshold.max(1) => {
                Some(since + policy.remove_unhealthy_delay)
            }
            _ => None,
        }
    }
}
