//! Fidelity tests of the fake API server: the documented semantics over HTTP (`semantics`), the binary
//! with a state file (`binary`), and real clients — the Python `kubernetes` package (`python`) and
//! `kubectl` (`kubectl`) — which must find nothing to object to.
//!
//! One integration binary; every server listens on 127.0.0.1 with port 0.

mod binary;
mod kubectl;
mod python;
mod semantics;
mod support;
