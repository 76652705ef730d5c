//! Fuzzes the catalog loader: Kubernetes manifests (YAML or JSON, one or
//! many documents, `List`s) as `kubectl get -o yaml` prints them.
//!
//! Proves: any bytes as one manifest file either load into a catalog state
//! or give errors that name the file at a line inside it — never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_fuzz::{last_line, scratch_file};

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("catalog.yaml");
    std::fs::write(&path, data).expect("scratch write");
    if let Err(errors) = signpost_discovery::catalog::load_paths(std::slice::from_ref(&path)) {
        for error in errors.iter() {
            assert!(!error.message.is_empty());
            if let (Some(line), true) = (error.line, error.file == path) {
                assert!(
                    (1..=last_line(data)).contains(&line),
                    "line {line} outside the file: {error}"
                );
            }
        }
    }
});
