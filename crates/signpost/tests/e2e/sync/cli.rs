//! The `signpost sync` command itself: exit codes, the reference
//! deployment's arguments, bad input, metrics names, `/healthz`, dry runs.

use super::bind::{Bind, BindZone};
use super::*;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("sync")
        .args(args)
        .output()
        .expect("signpost runs")
}

/// Issue 13 "Done when" 5: the reference AI-Kernel deployment's external-dns
/// arguments parse as written; a provider external-dns has and signpost does
/// not says so and exits 64 (EX_USAGE). (The four cloud providers of the
/// reference deployment run: see `aws_reference_arguments_are_accepted`,
/// `azure_credentials_reference_arguments_and_secrets_never_leak`,
/// `cloudflare_proxied_flag_annotation_and_reference_arguments` and
/// `google_credentials_visibility_and_secrets_never_leak`.)
#[test]
fn reference_arguments_and_unbuilt_providers_exit_64() {
    let common = [
        "--source=service",
        "--policy=sync",
        "--catalog=/nonexistent",
        "--domain-filter=aikernel.io",
        "--domain-filter=example.com",
        "--txt-cache-interval=30s",
        "--interval=30s",
    ];
    let providers: [&[&str]; 1] = [&["--provider=ns1"]];
    for provider in providers {
        let args: Vec<&str> = common.iter().chain(provider).copied().collect();
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{provider:?}: {stderr}");
        assert!(
            stderr.contains("this provider is not built into signpost yet"),
            "{stderr}"
        );
        assert!(!stderr.contains("unexpected argument"), "{stderr}");
    }
    // external-dns v0.22: --policy has no default.
    let output = run(&["--source=service", "--provider=inmemory", "--catalog=/x"]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--policy must be set explicitly"));
}

/// Bad input (a bad host name, TTL or target, a name outside every filter)
/// is skipped with one log line each and counted in
/// `external_dns_source_invalid_endpoints`; the rest syncs. `/healthz`
/// answers, and the metrics carry external-dns's names and help texts.
#[test]
fn bad_input_is_skipped_logged_once_and_counted() {
    let catalog = Catalog::new();
    catalog.service("good", "good.example.com", "192.0.2.1", "");
    catalog.service("badname", "bad_name!.example.com", "192.0.2.2", "");
    catalog.service(
        "badttl",
        "ttl.example.com",
        "192.0.2.3",
        "    external-dns.kubernetes.io/ttl: \"forever\"\n",
    );
    catalog.service(
        "badtarget",
        "target.example.com",
        "192.0.2.4",
        "    external-dns.kubernetes.io/target: \"not_a_host!\"\n",
    );
    catalog.service("outside", "www.elsewhere.org", "192.0.2.5", "");
    let args: Vec<String> = [
        "--source=service",
        "--policy=sync",
        "--provider=inmemory",
        "--interval=1s",
        "--domain-filter=example.com",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let sync = SyncProcess::start(&catalog, &args, &[]);
    sync.wait_first_sync();
    sync.wait_next_sync();
    sync.wait_next_sync();
    let log = sync.log();
    for needle in [
        "invalid host name \"bad_name!.example.com\"",
        "invalid ttl annotation \"forever\"",
        "\"not_a_host!\" of target.example.com",
        "www.elsewhere.org is outside every domain filter and zone",
    ] {
        assert_eq!(
            log.matches(needle).count(),
            1,
            "{needle:?} should be logged once:\n{log}"
        );
    }
    assert!(log.contains("name=good.example.com"), "{log}");
    assert!(
        log.contains("name=ttl.example.com"),
        "a bad TTL does not drop the record:\n{log}"
    );
    let scrape = sync.scrape();
    // A bad host name and a name outside the filters (A), a bad target
    // (CNAME), a bad TTL (no record type: the record is still published).
    assert_eq!(
        metric(
            &scrape,
            "external_dns_source_invalid_endpoints{record_type=\"a\",source_type=\"service\"}"
        ),
        Some(2.0),
        "{scrape}"
    );
    assert_eq!(
        metric(
            &scrape,
            "external_dns_source_invalid_endpoints{record_type=\"\",source_type=\"service\"}"
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        metric(
            &scrape,
            "external_dns_source_invalid_endpoints{record_type=\"cname\",source_type=\"service\"}"
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        metric(&scrape, "external_dns_source_endpoints_total"),
        Some(3.0),
        "{scrape}"
    );
    for family in [
        "# HELP external_dns_registry_endpoints_total Number of Endpoints in the registry",
        "# HELP external_dns_registry_errors_total Number of Registry errors.",
        "# HELP external_dns_source_endpoints_total Number of Endpoints in all sources",
        "# HELP external_dns_controller_last_sync_timestamp_seconds Timestamp of last successful sync with the DNS provider",
        "# TYPE external_dns_controller_no_op_runs_total counter",
        "external_dns_registry_records{record_type=\"a\"} 2",
        "external_dns_source_records{record_type=\"a\"} 3",
        "external_dns_controller_verified_records{record_type=\"a\"} 2",
        "# HELP external_dns_registry_skipped_records_owner_mismatch_per_sync ",
    ] {
        assert!(scrape.contains(family), "{family:?} missing:\n{scrape}");
    }
    assert!(metric(&scrape, "external_dns_controller_no_op_runs_total").is_some_and(|v| v >= 1.0));
    assert_eq!(
        http_get(sync.metrics(), "/healthz").map(|(code, _)| code),
        Some(200)
    );
}

/// `--dry-run` prints the plan (action, name, type, TTL, targets) and writes nothing.
#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let zone = BindZone {
        bind: Bind::shared(),
        zone: "bind-cli.test",
        key: 2,
        secret_override: None,
    };
    let catalog = Catalog::new();
    catalog.service(
        "dry",
        "dry.bind-cli.test",
        "192.0.2.70",
        "    external-dns.kubernetes.io/ttl: \"120\"\n",
    );
    let mut args = sync_args(&zone, "sync");
    args.extend(["--dry-run".to_owned(), "--once".to_owned()]);
    let sync = SyncProcess::start(&catalog, &args, &[]);
    let (status, log) = sync.exit_status();
    assert!(status.expect("exits").success(), "{log}");
    assert!(
        log.contains("running in dry-run mode. No changes to DNS records will be made."),
        "{log}"
    );
    assert!(log.contains("planned change dry_run=true action=\"CREATE\" name=dry.bind-cli.test record_type=A ttl=120 targets=192.0.2.70"), "{log}");
    assert!(rows_at(&zone.records(), "dry.bind-cli.test").is_empty());
}
