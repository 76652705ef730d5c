//! The `healthcheck` Corefile directive: active checks inside `signpost dns`.
//!
//! Control plane (configuration loading).
//!
//! ```text
//! healthcheck {
//!     interval 10s                 # defaults: the reference AI-Kernel deployment's
//!     timeout 3s
//!     failure_threshold 3
//!     success_threshold 1
//!     remove_unhealthy_delay 30s
//!     jitter 1s
//!     max_concurrent 64
//!     all_unhealthy serve_all      # or nxdomain
//! }
//! ```
//!
//! Durations use Go's syntax (`0.5s`, `1m30s`), as every Corefile option does.

use crate::checker::CheckerOptions;
use crate::state::HealthPolicy;
use signpost_corefile::toolkit::parse_duration;
use signpost_corefile::{Directive, Errors};
use signpost_model::AllUnhealthy;

/// The `healthcheck` plugin: active checks of annotated services' endpoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthcheckConfig {
    /// Timings and thresholds (defaults: 10 s interval, 3 s timeout, 3
    /// failures, 1 success, 30 s removal delay).
    pub policy: HealthPolicy,
    /// Spread and concurrency.
    pub options: CheckerOptions,
    /// What a service whose endpoints all fail serves.
    pub all_unhealthy: AllUnhealthy,
}

impl Default for HealthcheckConfig {
    fn default() -> Self {
        Self {
            policy: HealthPolicy::default(),
            options: CheckerOptions::default(),
            all_unhealthy: AllUnhealthy::ServeAll,
        }
    }
}

// === impl HealthcheckConfig ===

impl HealthcheckConfig {
    /// Reads a `healthcheck` directive, recording every problem in `errors`.
    pub fn parse(directive: &Directive, errors: &mut Errors) -> Self {
        let mut config = Self::default();
        if !directive.args.is_empty() {
            errors.push(
                &directive.location,
                "`healthcheck` takes its options in a block",
            );
        }
        for option in &directive.block {
            let value = match option.args.as_slice() {
                [value] => value.as_str(),
                _ => {
                    errors.push(
                        &option.location,
                        format!("`{}` expects one value", option.name),
                    );
                    continue;
                }
            };
            let duration = || parse_duration(value).ok();
            let count = || value.parse::<u32>().ok().filter(|&n| n > 0);
            let ok = match option.name.as_str() {
                "interval" => duration()
                    .filter(|d| !d.is_zero())
                    .map(|d| config.policy.interval = d),
                "timeout" => duration()
                    .filter(|d| !d.is_zero())
                    .map(|d| config.policy.timeout = d),
                "remove_unhealthy_delay" => {
                    duration().map(|d| config.policy.remove_unhealthy_delay = d)
                }
                "jitter" => duration().map(|d| config.options.jitter = d),
                "failure_threshold" => count().map(|n| config.policy.failure_threshold = n),
                "success_threshold" => count().map(|n| config.policy.success_threshold = n),
                "max_concurrent" => count().map(|n| config.options.max_concurrent = n as usize),
                "all_unhealthy" => match value {
                    "serve_all" => Some(AllUnhealthy::ServeAll),
                    "nxdomain" => Some(AllUnhealthy::NxDomain),
                    _ => None,
                }
                .map(|choice| config.all_unhealthy = choice),
                other => {
                    errors.push(
                        &option.location,
                        format!("unknown `healthcheck` option `{other}`"),
                    );
                    continue;
                }
            };
            if ok.is_none() {
                let expected = match option.name.as_str() {
                    "failure_threshold" | "success_threshold" | "max_concurrent" => {
                        "a positive whole number"
                    }
                    "all_unhealthy" => "`serve_all` or `nxdomain`",
                    "interval" | "timeout" => "a positive duration such as 10s, 500ms or 1m",
                    _ => "a duration such as 10s, 500ms or 1m",
                };
                errors.push(
                    &option.location,
                    format!("`{}` expects {expected}, found {value:?}", option.name),
                );
            }
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<HealthcheckConfig, Errors> {
        let corefile = signpost_corefile::parse_str(text, Path::new("Corefile"), &|_| None)?;
        let mut errors = Errors::default();
        let config = HealthcheckConfig::parse(&corefile.blocks[0].directives[0], &mut errors);
        errors.into_result(config)
    }

    /// Go durations with fractions, as CoreDNS reads every duration.
    #[test]
    fn fractions_are_durations() {
        let config = parse(".:53 {\n  healthcheck {\n    interval 0.5s\n    timeout 250ms\n    remove_unhealthy_delay 1m30s\n  }\n}\n")
            .unwrap();
        assert_eq!(config.policy.interval, Duration::from_millis(500));
        assert_eq!(config.policy.timeout, Duration::from_millis(250));
        assert_eq!(
            config.policy.remove_unhealthy_delay,
            Duration::from_secs(90)
        );
    }

    /// Every bad option is reported at its own line.
    #[test]
    fn every_problem_with_its_line() {
        let errors = parse(".:53 {\n  healthcheck {\n    interval 0s\n    failure_threshold 0\n    all_unhealthy maybe\n    color blue\n  }\n}\n")
            .unwrap_err();
        let lines: Vec<u32> = errors.0.iter().map(|e| e.location.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{errors}");
    }
}
