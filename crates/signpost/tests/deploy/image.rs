//! Issue 16, point 4: `make docker-build` builds the image with podman, and the image, checked
//! without running a container (deploy/image/check-image: its filesystem exported from a created
//! container, `signpost --version` run in it under chroot), runs as a non-root user and holds no
//! shell.
//!
//! The suite packages the binary `cargo test` built (`BINARY=`): the same Containerfile, staging and
//! checks as a release image, without the release build: about 580 CPU-seconds, at least 5 minutes
//! of the 2-core CI machine's 30-minute budget on top of the suite's own build, for nothing the
//! checks look at. `scripts/image-test` does the same from `cargo build --release`.

use crate::common::{repo, run_ok, shown};
use std::process::Command;

/// Issue 16, point 4 (quick variant): `make docker-build IMAGE_REGISTRY=...` with podman, then the
/// image checks; podman's storage lives in a temporary directory and goes with it.
#[test]
fn make_docker_build_builds_a_non_root_image_that_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let podman = format!(
        "podman --root {} --runroot {} --storage-driver vfs",
        dir.path().join("storage").display(),
        dir.path().join("run").display()
    );
    let version = env!("CARGO_PKG_VERSION");
    let output = run_ok(
        Command::new("make")
            .arg("-C")
            .arg(repo())
            .arg("docker-build")
            .arg("IMAGE_REGISTRY=localhost/signpost-test")
            .arg(format!("BINARY={}", env!("CARGO_BIN_EXE_signpost")))
            .arg(format!("CONTEXT={}", dir.path().join("context").display()))
            .arg(format!("CONTAINER_TOOL={podman}")),
    );
    assert!(
        shown(&output).contains(&format!("localhost/signpost-test/signpost:{version}")),
        "{}",
        shown(&output)
    );
    let output = run_ok(
        Command::new(repo().join("deploy/image/check-image"))
            .arg(format!("localhost/signpost-test/signpost:{version}"))
            .arg(version)
            .env("CONTAINER_TOOL", &podman),
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("runs as 65532:65532"),
        "{}",
        shown(&output)
    );
}
