//! The controller configuration (issue 12, "Done when" 4): the reference
//! deployment's YAML loads unchanged, bare or in its ConfigMap; each kind of
//! mistake is one error at its file and line.

use super::*;
use std::path::Path;

const REFERENCE_CONFIGMAP: &str =
    include_str!("../../../signpost/tests/data/dns-health-controller-config.yaml");

/// The YAML exactly as the reference deployment's operator guide prints it.
const REFERENCE_BARE: &str = "healthCheck:
  interval: 10s              # Check every 10 seconds
  timeout: 3s                # 3-second timeout
  failureThreshold: 3        # Remove after 3 failures
  successThreshold: 1        # Add after 1 success

endpoints:
  healthCheckPath: /health   # Health check endpoint
  removeUnhealthyDelay: 30s  # Wait before removal
";

fn parse(text: &str) -> Result<ControllerConfig, Errors> {
    ControllerConfig::parse(text, Path::new("health.yaml"))
}

/// The only error of `text`, as `file:line: message`.
fn only_error(text: &str) -> (u32, String) {
    let errors = parse(text).expect_err("the configuration is invalid");
    assert_eq!(errors.0.len(), 1, "expected one error, got:\n{errors}");
    let error = &errors.0[0];
    assert_eq!(&*error.location.file, Path::new("health.yaml"));
    (error.location.line, error.message.clone())
}

#[test]
fn reference_configuration_loads_bare_and_in_its_configmap() {
    let expected = ControllerConfig {
        policy: HealthPolicy {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            failure_threshold: 3,
            success_threshold: 1,
            remove_unhealthy_delay: Duration::from_secs(30),
        },
        ..ControllerConfig::default()
    };
    assert_eq!(parse(REFERENCE_BARE).unwrap(), expected);
    assert_eq!(parse(REFERENCE_CONFIGMAP).unwrap(), expected);
    // Defaults are the reference deployment's and client-go's.
    assert_eq!(parse("").unwrap(), expected);
    assert_eq!(
        expected.election,
        ElectionTimings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    );
}

#[test]
fn signpost_keys_and_other_manifests_around_the_configmap() {
    let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: dns-health-controller\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dns-health-controller-config\ndata:\n  config.yaml: |\n    healthCheck:\n      interval: 1s\n      jitter: 250ms\n      maxConcurrent: 64\n    endpoints:\n      healthCheckPath: /healthz\n      removeUnhealthyDelay: 0s\n    leaderElection:\n      leaseDuration: 3s\n      renewDeadline: 2s\n      retryPeriod: 500ms\n";
    let config = parse(text).unwrap();
    assert_eq!(config.policy.interval, Duration::from_secs(1));
    assert_eq!(config.policy.remove_unhealthy_delay, Duration::ZERO);
    assert_eq!(config.options.jitter, Duration::from_millis(250));
    assert_eq!(config.options.max_concurrent, 64);
    assert_eq!(config.default_path, "/healthz");
    assert_eq!(config.election.retry_period, Duration::from_millis(500));
}

/// Kind 1: YAML that does not parse, at the parser's line.
#[test]
fn syntax_error_at_its_line() {
    let (line, message) = only_error("healthCheck:\n  interval: 10s\n timeout: 3s\n");
    assert_eq!(line, 3, "{message}");
}

/// Kind 2: an unknown key, never ignored (a misspelling would silently keep a default).
#[test]
fn unknown_key_at_its_line() {
    let (line, message) =
        only_error("healthCheck:\n  interval: 10s\n  failureTreshold: 5\nendpoints: {}\n");
    assert_eq!(line, 3);
    assert!(
        message.contains("unknown key `healthCheck.failureTreshold`"),
        "{message}"
    );
    let (line, message) = only_error("healthcheck:\n  interval: 10s\n");
    assert_eq!(line, 1);
    assert!(message.contains("unknown key `healthcheck`"), "{message}");
}

/// Kind 3: a duration that is not one.
#[test]
fn bad_duration_at_its_line() {
    let (line, message) = only_error("endpoints:\n  removeUnhealthyDelay: 30 seconds\n");
    assert_eq!(line, 2);
    assert!(
        message.contains("`endpoints.removeUnhealthyDelay` expects a duration"),
        "{message}"
    );
    assert!(message.contains("\"30 seconds\""), "{message}");
    let (line, _) = only_error("healthCheck:\n  interval: 0s\n");
    assert_eq!(line, 2);
}

/// Kind 4: a threshold that is not a positive whole number.
#[test]
fn bad_threshold_at_its_line() {
    let (line, message) = only_error("healthCheck:\n  timeout: 3s\n  successThreshold: 0\n");
    assert_eq!(line, 3);
    assert!(
        message.contains("`healthCheck.successThreshold` expects a positive whole number, found 0"),
        "{message}"
    );
    let (line, _) = only_error("healthCheck:\n  failureThreshold: three\n");
    assert_eq!(line, 2);
}

/// Kind 5: election timings client-go would refuse.
#[test]
fn inconsistent_election_timings_at_their_line() {
    let (line, message) =
        only_error("leaderElection:\n  leaseDuration: 10s\n  renewDeadline: 10s\n");
    assert_eq!(line, 3);
    assert!(message.contains("must be greater than"), "{message}");
    let (line, message) = only_error("leaderElection:\n  renewDeadline: 2s\n  retryPeriod: 2s\n");
    assert_eq!(line, 3);
    assert!(message.contains("times 1.2"), "{message}");
}

/// Inside a ConfigMap, the line is the manifest's, not the embedded text's.
#[test]
fn lines_inside_a_configmap_are_the_manifests() {
    let text = REFERENCE_CONFIGMAP.replace("interval: 10s", "interval: soon");
    let (line, message) = only_error(&text);
    let expected = REFERENCE_CONFIGMAP
        .lines()
        .position(|l| l.contains("interval: 10s"))
        .unwrap()
        + 1;
    assert_eq!(line as usize, expected, "{message}");
    let text = REFERENCE_CONFIGMAP.replace("timeout: 3s", "timeout: 3s\n      color: blue");
    let (line, message) = only_error(&text);
    assert_eq!(line as usize, expected + 2, "{message}");
    // A syntax error inside the embedded text (the manifest itself is fine),
    // with the lines the parser names shifted to the manifest's.
    let text = REFERENCE_CONFIGMAP.replace("      timeout: 3s", "     timeout: 3s");
    let (line, message) = only_error(&text);
    assert_eq!(line as usize, expected + 1, "{message}");
    let text = REFERENCE_CONFIGMAP.replace("timeout: 3s", "timeout: [3s");
    let (_, message) = only_error(&text);
    assert!(
        message.contains(&format!("flow sequence at line {} column", expected + 1)),
        "{message}"
    );
}

/// Several problems are all reported in one run.
#[test]
fn every_problem_at_once() {
    let errors =
        parse("healthCheck:\n  interval: x\n  timeout: y\nendpoints:\n  healthCheckPath: health\nextra: 1\n")
            .unwrap_err();
    let lines: Vec<u32> = errors.0.iter().map(|e| e.location.line).collect();
    assert_eq!(lines, [2, 3, 5, 6], "{errors}");
}

/// A manifest without the ConfigMap, and a ConfigMap without usable data.
#[test]
fn manifests_without_the_configuration() {
    let (line, message) = only_error("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n");
    assert_eq!(line, 1);
    assert!(message.contains("no ConfigMap"), "{message}");
    let (line, message) = only_error(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"1\"\n  b: \"2\"\n",
    );
    assert_eq!(line, 5);
    assert!(message.contains("expected one key"), "{message}");
}

/// Found by `fuzz/fuzz_targets/controller.rs`: libyaml reports an error at
/// the end of a text without a final newline on the line after the last
/// one; the error names the last line, which the file has (bare and inside
/// a ConfigMap).
#[test]
fn yaml_error_at_the_end_of_the_file_names_its_last_line() {
    let (line, message) = only_error("-\nr");
    assert_eq!(line, 2, "{message}");
    let errors = parse("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  config.yaml: |\n    healthCheck:\n      interval: 10s\n    r")
        .expect_err("the configuration is invalid");
    for error in &errors.0 {
        assert!((1..=9).contains(&error.location.line), "{error}");
    }
}
