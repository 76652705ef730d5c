//! The example in `examples/`: its Corefile validates and its catalog (hand
//! written and `kubectl get -o yaml` output mixed) answers what
//! `examples/README.md` promises, as seen by dig and kdig.

use crate::fixtures::{dig_records, dig_status, example_cluster};
use crate::support::binary;
use std::path::Path;

/// `signpost check` accepts `examples/Corefile` with its catalog: the example
/// stays runnable as documented.
#[test]
fn example_corefile_is_valid() {
    let corefile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/Corefile");
    let output = std::process::Command::new(binary())
        .args(["check", "--conf"])
        .arg(&corefile)
        .output()
        .expect("run signpost check");
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Spec §2.3.1 and §2.3.2 on the kubectl `List` file: kube-dns has its cluster
/// IP and one SRV per named port and protocol (`_dns._udp`, `_dns-tcp._tcp`),
/// the SRV target's address in the additional section. Read with dig.
#[test]
fn example_kube_dns_records_with_dig() {
    let server = example_cluster("");
    let a = server.dig(&[
        "+noall",
        "+answer",
        "kube-dns.kube-system.svc.cluster.local",
    ]);
    assert_eq!(
        dig_records(&a),
        ["kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10"],
        "{a}"
    );
    let srv = server.dig(&[
        "+noall",
        "+answer",
        "+additional",
        "_dns._udp.kube-dns.kube-system.svc.cluster.local",
        "SRV",
    ]);
    assert_eq!(
        dig_records(&srv),
        [
            "_dns._udp.kube-dns.kube-system.svc.cluster.local. 30 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.",
            "kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10",
        ],
        "{srv}"
    );
    let tcp = server.dig(&[
        "+short",
        "_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local",
        "SRV",
    ]);
    assert_eq!(
        tcp.trim(),
        "0 100 53 kube-dns.kube-system.svc.cluster.local.",
        "{tcp}"
    );
}

/// Spec §2.4.1: the StatefulSet `db` serves db-0 and db-1 and not the
/// not-ready db-2; spec §2.4.3: db-0's address maps back to its name. kdig.
#[test]
fn example_statefulset_with_kdig() {
    let server = example_cluster("");
    let a = server.kdig(&["+short", "db.shop.svc.cluster.local", "A"]);
    let mut addresses: Vec<&str> = a.lines().collect();
    addresses.sort_unstable();
    assert_eq!(addresses, ["10.244.1.40", "10.244.2.41"], "{a}");
    let missing = server.kdig(&["db-2.db.shop.svc.cluster.local", "A"]);
    assert_eq!(
        dig_status(&missing).as_deref(),
        Some("NXDOMAIN"),
        "{missing}"
    );
    let ptr = server.kdig(&["+short", "-x", "10.244.1.40"]);
    assert_eq!(ptr.trim(), "db-0.db.shop.svc.cluster.local.", "{ptr}");
}

/// Spec §2.3.1 (dual stack) on the `RequireDualStack` ledger, and RFC 3596
/// §2.5: its IPv6 cluster IP has a PTR in ip6.arpa. dig.
#[test]
fn example_dual_stack_ledger() {
    let server = example_cluster("");
    let a = server.dig(&["+short", "ledger.payments.svc.cluster.local", "A"]);
    assert_eq!(a.trim(), "10.96.40.7", "{a}");
    let aaaa = server.dig(&["+short", "ledger.payments.svc.cluster.local", "AAAA"]);
    assert_eq!(aaaa.trim(), "fd00:10:96::4007", "{aaaa}");
    let ptr = server.dig(&["+short", "-x", "fd00:10:96::4007"]);
    assert_eq!(ptr.trim(), "ledger.payments.svc.cluster.local.", "{ptr}");
}

/// Spec §2.5 and RFC 1034 §4.3.2: `storefront` (in-cluster ExternalName) is
/// followed to frontend's A; `stripe` stops at the outside CNAME. dig.
#[test]
fn example_external_names() {
    let server = example_cluster("");
    let inside = server.dig(&["+noall", "+answer", "storefront.shop.svc.cluster.local"]);
    assert_eq!(
        dig_records(&inside),
        [
            "frontend.shop.svc.cluster.local. 30 IN A 10.96.12.40",
            "storefront.shop.svc.cluster.local. 30 IN CNAME frontend.shop.svc.cluster.local.",
        ],
        "{inside}"
    );
    let outside = server.dig(&["+noall", "+answer", "stripe.shop.svc.cluster.local"]);
    assert_eq!(
        dig_records(&outside),
        ["stripe.shop.svc.cluster.local. 30 IN CNAME api.stripe.com."],
        "{outside}"
    );
}

/// Spec §2.4.1: the publishNotReadyAddresses service serves its not-ready
/// peer; the headless service without ready endpoints is NXDOMAIN; the
/// headless service without hostnames uses dashed addresses. dig.
#[test]
fn example_headless_variants() {
    let server = example_cluster("");
    let peers = server.dig(&[
        "+short",
        "alertmanager-main-1.alertmanager-operated.monitoring.svc.cluster.local",
    ]);
    assert_eq!(peers.trim(), "10.244.1.71", "{peers}");
    let settlement = server.dig(&["settlement.payments.svc.cluster.local"]);
    assert_eq!(
        dig_status(&settlement).as_deref(),
        Some("NXDOMAIN"),
        "{settlement}"
    );
    let search = server.dig(&["+short", "10-244-2-51.search.shop.svc.cluster.local"]);
    assert_eq!(search.trim(), "10.244.2.51", "{search}");
}

/// Spec §2.2 and the example's `pods insecure`: dns-version and a pod name,
/// with the example Corefile's options in the kubernetes block. kdig.
#[test]
fn example_version_and_pods() {
    let server = example_cluster("        pods insecure");
    let version = server.kdig(&["+short", "dns-version.cluster.local", "TXT"]);
    assert_eq!(version.trim(), "\"1.1.0\"", "{version}");
    let pod = server.kdig(&["+short", "10-244-1-21.shop.pod.cluster.local"]);
    assert_eq!(pod.trim(), "10.244.1.21", "{pod}");
}
