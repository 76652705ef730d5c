//! End-to-end tests: the real `signpost` binary on loopback, queried by real
//! clients (dig, kdig, and hickory-proto over std sockets).
//!
//! One integration binary (ripgrep's `autotests = false` layout); each module
//! covers one area. Every test starts its own server on free ports.

mod admin;
mod differential;
mod distributions;
mod etcd;
#[path = "../../../discovery/tests/support/etcd_server.rs"]
mod etcd_server;
mod example;
mod fixtures;
mod gates;
mod geo;
mod header;
mod health;
mod health_controller;
mod kubernetes;
mod kubernetes_churn;
mod malformed;
mod negative;
mod operations;
mod plugins;
mod protocol;
mod records;
mod recursion;
mod support;
mod sync;
mod upstream;
mod worker_forward;
