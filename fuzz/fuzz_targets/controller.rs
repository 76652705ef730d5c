//! Fuzzes the configuration of `signpost health` (the health controller):
//! the `dns-health-controller-config` YAML, bare or inside a ConfigMap
//! manifest.
//!
//! Proves: any text either gives a configuration or errors that each name
//! the file at a line inside the text (`ControllerConfig::parse` promises
//! "every problem ... with the file and line"), never a panic; an accepted
//! configuration keeps the invariants the controller relies on: thresholds
//! of at least one, a timeout and an interval above zero, and client-go's
//! election rule (lease > renew deadline > 1.2 × retry period).

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_fuzz::last_line;
use signpost_health::ControllerConfig;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("controller.yaml");
    match ControllerConfig::parse(text, file) {
        Ok(config) => {
            let election = config.election;
            assert!(
                election.lease_duration > election.renew_deadline,
                "lease duration not above the renew deadline: {config:?}\n{text:?}"
            );
            assert!(
                election.renew_deadline.as_secs_f64() > election.retry_period.as_secs_f64() * 1.2,
                "renew deadline not above 1.2 retry periods: {config:?}\n{text:?}"
            );
            let policy = config.policy;
            assert!(
                policy.failure_threshold >= 1
                    && policy.success_threshold >= 1
                    && !policy.interval.is_zero()
                    && !policy.timeout.is_zero()
                    && config.options.max_concurrent >= 1,
                "a zero threshold, interval, timeout or concurrency: {config:?}\n{text:?}"
            );
            assert!(
                config.default_path.starts_with('/')
                    && !config.default_path.chars().any(char::is_whitespace),
                "health check path {:?}",
                config.default_path
            );
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error value without errors");
            let last = last_line(text.as_bytes());
            for error in &errors.0 {
                assert_eq!(&*error.location.file, file, "{error}");
                assert!(
                    (1..=last).contains(&error.location.line),
                    "line {} outside 1..={last}: {error}\n{text:?}",
                    error.location.line
                );
            }
        }
    }
});
