//! The official Python client (PyPI `kubernetes`, found through `python3` on PATH; `scripts/test`
//! installs it) against the fake over TLS with the generated kubeconfig.

use std::time::Duration;

use signpost_fakes::ServerOptions;

use crate::support::start;

/// tests/python/client_fidelity.py: list with resource_version, limit/_continue over 250 objects at one
/// snapshot, watch from a resource_version (ADDED, MODIFIED, DELETED), ApiException 410 after compaction,
/// 409 for a stale replace or patch and a duplicate create. The script exits 1 when any check fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_fidelity() {
    let server = start(ServerOptions {
        control_endpoints: true,
        ..ServerOptions::default()
    })
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/client_fidelity.py"
    );
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg(server.kubeconfig_path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the Python checks finish within 5 minutes")
        .expect("python3 runs (scripts/test installs the kubernetes package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(" passed, 0 failed"),
        "python client checks failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
