//! The verdict state machine and the scheduler under paused time
//! (the defaults: interval 10 s, timeout 3 s, 3 failures,
//! 1 success, removeUnhealthyDelay 30 s).

use crate::checker::{self, CheckerOptions, Probe, Target};
use crate::metrics::HealthMetrics;
use crate::probe::CheckKind;
use crate::state::{Change, EndpointState, HealthPolicy};
use signpost_model::{EndpointKey, LocalVerdicts, SubscribeVerdicts};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

fn seed() -> HealthPolicy {
    HealthPolicy::default()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Seed defaults: three failures at 0, 10 and 20 s reach the threshold, but
/// the endpoint leaves only when 30 s have passed since the first failure.
#[tokio::test(start_paused = true)]
async fn removal_waits_for_the_delay_rule() {
    let policy = seed();
    let start = Instant::now();
    let mut state = EndpointState::default();
    assert_eq!(state.record(false, start, &policy), Change::None);
    assert_eq!(state.record(false, start + secs(10), &policy), Change::None);
    assert_eq!(state.record(false, start + secs(20), &policy), Change::None);
    assert!(
        state.is_serving(),
        "threshold reached but the delay has not passed"
    );
    assert_eq!(state.deadline(&policy), Some(start + secs(30)));
    assert_eq!(state.evaluate(start + secs(29), &policy), Change::None);
    assert_eq!(state.evaluate(start + secs(30), &policy), Change::Removed);
    assert!(!state.is_serving());
}

/// With a short delay the threshold decides: removal at the third failure, not before.
#[tokio::test(start_paused = true)]
async fn removal_at_threshold_when_delay_already_passed() {
    let policy = HealthPolicy {
        remove_unhealthy_delay: secs(5),
        ..seed()
    };
    let start = Instant::now();
    let mut state = EndpointState::default();
    state.record(false, start, &policy);
    assert_eq!(state.record(false, start + secs(10), &policy), Change::None);
    assert!(state.is_serving());
    assert_eq!(
        state.record(false, start + secs(20), &policy),
        Change::Removed
    );
}

/// Flapping: a pass resets the failing run, so fail-fail-pass-fail-fail never removes.
#[tokio::test(start_paused = true)]
async fn flapping_never_reaches_the_threshold() {
    let policy = HealthPolicy {
        remove_unhealthy_delay: Duration::ZERO,
        ..seed()
    };
    let start = Instant::now();
    let mut state = EndpointState::default();
    for (i, passed) in [false, false, true, false, false, true, false, false]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            state.record(passed, start + secs(10 * i as u64), &policy),
            Change::None,
            "check {i}"
        );
        assert!(state.is_serving());
    }
    // The delay counts from the first failure of the current run, not an earlier one.
    let policy = HealthPolicy {
        remove_unhealthy_delay: secs(25),
        failure_threshold: 2,
        ..seed()
    };
    let mut state = EndpointState::default();
    state.record(false, start, &policy);
    state.record(true, start + secs(10), &policy);
    state.record(false, start + secs(20), &policy);
    assert_eq!(
        state.record(false, start + secs(30), &policy),
        Change::None,
        "only 10 s into this run"
    );
    assert_eq!(state.evaluate(start + secs(45), &policy), Change::Removed);
}

/// Recovery needs success_threshold passes in a row; a failure in between restarts the count.
#[tokio::test(start_paused = true)]
async fn recovery_needs_consecutive_passes() {
    let policy = HealthPolicy {
        success_threshold: 2,
        remove_unhealthy_delay: Duration::ZERO,
        failure_threshold: 1,
        ..seed()
    };
    let start = Instant::now();
    let mut state = EndpointState::default();
    assert_eq!(state.record(false, start, &policy), Change::Removed);
    assert_eq!(state.record(true, start + secs(10), &policy), Change::None);
    assert_eq!(state.record(false, start + secs(20), &policy), Change::None);
    assert_eq!(state.record(true, start + secs(30), &policy), Change::None);
    assert!(!state.is_serving());
    assert_eq!(state.record(true, start + secs(40), &policy), Change::Added);
    assert!(state.is_serving());
}

/// The default success threshold of 1: one pass brings the endpoint back.
#[tokio::test(start_paused = true)]
async fn one_pass_returns_with_seed_defaults() {
    let policy = HealthPolicy {
        remove_unhealthy_delay: Duration::ZERO,
        ..seed()
    };
    let start = Instant::now();
    let mut state = EndpointState::default();
    for i in 0..3 {
        state.record(false, start + secs(10 * i), &policy);
    }
    assert!(!state.is_serving());
    assert_eq!(state.record(true, start + secs(30), &policy), Change::Added);
}

/// A probe whose verdict the test flips.
struct Switch(Arc<AtomicBool>);

impl Probe for Switch {
    fn check(
        &self,
        _target: &Target,
        _timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let healthy = self.0.load(Ordering::SeqCst);
        Box::pin(async move {
            if healthy {
                Ok(())
            } else {
                Err("switched off".to_owned())
            }
        })
    }
}

fn target(address: &str) -> Target {
    Target {
        key: EndpointKey {
            namespace: "shop".into(),
            service: "db".into(),
            address: address.parse().unwrap(),
        },
        kind: CheckKind::Http,
        port: 8080,
        path: "/health".into(),
    }
}

/// The scheduler with seed defaults under paused time: after the probe starts
/// failing, the verdict is published between 30 s (the delay) and 30 s plus
/// one interval, never earlier; one pass brings it back within one interval.
#[tokio::test(start_paused = true)]
async fn scheduler_publishes_removal_and_recovery_on_time() {
    let healthy = Arc::new(AtomicBool::new(true));
    let bus = Arc::new(LocalVerdicts::default());
    let verdicts = bus.subscribe();
    let (targets_tx, targets_rx) =
        tokio::sync::watch::channel(Arc::new(vec![target("10.0.0.1"), target("10.0.0.2")]));
    let (reports_tx, reports_rx) = tokio::sync::mpsc::channel(1);
    let metrics = Arc::new(HealthMetrics::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let parts = checker::CheckerParts {
        policy: seed(),
        options: CheckerOptions::default(),
        probe: Arc::new(Switch(healthy.clone())),
        publisher: bus.clone(),
        metrics: metrics.clone(),
    };
    let handle = checker::spawn(parts, targets_rx, reports_rx, cancel.clone());
    let report = || async {
        let (reply, answer) = tokio::sync::oneshot::channel();
        reports_tx.send(reply).await.unwrap();
        let mut reports = answer.await.unwrap();
        reports.sort_by(|a, b| a.address.cmp(&b.address));
        reports
    };
    // Let both endpoints be checked once while healthy.
    tokio::time::sleep(secs(11)).await;
    let failing_since = Instant::now();
    healthy.store(false, Ordering::SeqCst);
    let removed_at = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(latest) = verdicts.try_iter().last() {
            if latest.unhealthy.len() == 2 {
                break Instant::now();
            }
            assert!(
                latest.unhealthy.is_empty() || Instant::now() - failing_since >= secs(30),
                "removed before the delay rule allows"
            );
        }
        assert!(
            Instant::now() - failing_since < secs(45),
            "not removed in time"
        );
    };
    let took = removed_at - failing_since;
    assert!(
        took >= secs(30) && took <= secs(41),
        "removed after {took:?}"
    );
    healthy.store(true, Ordering::SeqCst);
    let recovering_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if verdicts
            .try_iter()
            .last()
            .is_some_and(|v| v.unhealthy.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() - recovering_since <= secs(11),
            "not back within one interval"
        );
    }
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(text.contains("dns_endpoints_removed_total 2"), "{text}");
    assert!(text.contains("dns_endpoints_added_total 2"), "{text}");
    // Removing a target drops its state: it leaves the reports and the
    // gauges, and when it comes back it starts afresh, with no checks, no
    // counts and no history from before.
    let before = report().await;
    let second = &before[1];
    assert_eq!(second.address, "10.0.0.2");
    assert!(
        second.consecutive_successes >= 1
            && second.history.len() >= 2
            && second.last_check_unix.is_some(),
        "10.0.0.2 has a past: {second:?}"
    );
    // The checker takes target changes and report requests as they come:
    // ask until the change shows (a bounded number of times).
    let report_with = |count: usize| {
        let report = &report;
        async move {
            for _ in 0..100 {
                let reports = report().await;
                if reports.len() == count {
                    return reports;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("the checker never reported {count} endpoints");
        }
    };
    targets_tx.send(Arc::new(vec![target("10.0.0.1")])).unwrap();
    let after = report_with(1).await;
    assert_eq!(after[0].address, "10.0.0.1");
    assert_eq!(metrics.counts(), (1, 0));
    targets_tx
        .send(Arc::new(vec![target("10.0.0.1"), target("10.0.0.2")]))
        .unwrap();
    let again = report_with(2).await;
    let fresh = &again[1];
    assert_eq!(fresh.address, "10.0.0.2");
    assert_eq!(
        (
            fresh.consecutive_failures,
            fresh.consecutive_successes,
            fresh.last_check_unix,
            fresh.history.len(),
        ),
        (0, 0, None, 0),
        "10.0.0.2 came back with old state: {fresh:?}"
    );
    assert_eq!(fresh.state, "healthy");
    assert_eq!(metrics.counts(), (2, 0));
    cancel.cancel();
    handle.await.unwrap();
}

/// Issue 17: each endpoint's report carries its recent state changes, oldest
/// first, with the failure that caused them, and keeps at most
/// `checker::HISTORY` however often the endpoint flaps.
#[tokio::test(start_paused = true)]
async fn reports_keep_a_bounded_history_of_changes() {
    let healthy = Arc::new(AtomicBool::new(true));
    let bus = Arc::new(LocalVerdicts::default());
    let (_targets_tx, targets_rx) = tokio::sync::watch::channel(Arc::new(vec![target("10.0.0.1")]));
    let (reports_tx, reports_rx) = tokio::sync::mpsc::channel(1);
    let cancel = tokio_util::sync::CancellationToken::new();
    let parts = checker::CheckerParts {
        policy: seed(),
        options: CheckerOptions::default(),
        probe: Arc::new(Switch(healthy.clone())),
        publisher: bus,
        metrics: Arc::new(HealthMetrics::default()),
    };
    let handle = checker::spawn(parts, targets_rx, reports_rx, cancel.clone());
    let report = || async {
        let (reply, answer) = tokio::sync::oneshot::channel();
        reports_tx.send(reply).await.unwrap();
        answer.await.unwrap().remove(0)
    };
    tokio::time::sleep(secs(11)).await;
    assert!(report().await.history.is_empty());
    // One failure: healthy → failing, with the probe's error.
    healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(secs(10)).await;
    let first = report().await;
    assert_eq!(first.state, "failing");
    assert_eq!(first.history.len(), 1, "{:?}", first.history);
    assert_eq!(first.history[0].from, "healthy");
    assert_eq!(first.history[0].to, "failing");
    assert_eq!(first.history[0].error.as_deref(), Some("switched off"));
    // Flap for a long time: the history stays bounded and ends with the newest change.
    for _ in 0..40 {
        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(secs(10)).await;
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(secs(10)).await;
    }
    let last = report().await;
    assert_eq!(last.history.len(), checker::HISTORY, "{:?}", last.history);
    assert_eq!(last.history.last().map(|t| t.to.as_str()), Some("failing"));
    assert!(
        last.history
            .windows(2)
            .all(|w| w[0].to == w[1].from && w[0].unix <= w[1].unix)
    );
    cancel.cancel();
    handle.await.unwrap();
}

/// Issue 12: a checker that takes over (a new `signpost health` leader)
/// starts from the published verdicts, never from "all healthy": its first
/// publication is the published set, a published endpoint that still fails
/// stays out, and one that passes returns only after `success_threshold`
/// passes.
#[tokio::test(start_paused = true)]
async fn takeover_starts_from_the_published_verdicts() {
    let healthy = Arc::new(AtomicBool::new(false));
    let bus = Arc::new(LocalVerdicts::default());
    let verdicts = bus.subscribe();
    // The bus's own starting value, before any checker published.
    assert!(verdicts.recv().unwrap().unhealthy.is_empty());
    let (_targets_tx, targets_rx) =
        tokio::sync::watch::channel(Arc::new(vec![target("10.0.0.1"), target("10.0.0.2")]));
    let (_reports_tx, reports_rx) = tokio::sync::mpsc::channel(1);
    let cancel = tokio_util::sync::CancellationToken::new();
    let published = signpost_model::Verdicts {
        unhealthy: [target("10.0.0.1").key, target("10.0.0.9").key]
            .into_iter()
            .collect(),
    };
    let parts = checker::CheckerParts {
        policy: HealthPolicy {
            success_threshold: 2,
            ..seed()
        },
        options: CheckerOptions::default(),
        probe: Arc::new(Switch(healthy.clone())),
        publisher: bus.clone(),
        metrics: Arc::new(HealthMetrics::default()),
    };
    let handle = checker::spawn_from(parts, &published, targets_rx, reports_rx, cancel.clone());
    tokio::time::sleep(Duration::from_millis(1)).await;
    let out = |v: &signpost_model::Verdicts| {
        let mut a: Vec<String> = v.unhealthy.iter().map(|k| k.address.to_string()).collect();
        a.sort();
        a
    };
    // Before any check: the published set, less the endpoint that is no longer a target.
    let initial: Vec<Arc<signpost_model::Verdicts>> = verdicts.try_iter().collect();
    assert!(
        initial.iter().all(|v| out(v) == ["10.0.0.1"]),
        "{initial:?}"
    );
    assert!(!initial.is_empty(), "nothing published at the start");
    // Failing checks keep it out; 10.0.0.2 (healthy when published) fails a
    // run but stays in until the delay rule allows.
    tokio::time::sleep(secs(25)).await;
    for v in verdicts.try_iter() {
        assert_eq!(out(&v), ["10.0.0.1"], "a failing endpoint came back early");
    }
    // Passing now: one pass is not enough (success_threshold 2), two are.
    healthy.store(true, Ordering::SeqCst);
    let passing_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(latest) = verdicts.try_iter().last()
            && latest.unhealthy.is_empty()
        {
            break;
        }
        assert!(Instant::now() - passing_since <= secs(21), "never returned");
    }
    assert!(
        Instant::now() - passing_since > secs(10),
        "returned after a single pass"
    );
    cancel.cancel();
    handle.await.unwrap();
}
