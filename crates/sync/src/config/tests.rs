//! Issue 13, "Done when" 5: the reference AI-Kernel deployment's
//! external-dns arguments are accepted as written; the cloud providers say
//! they are not built yet. Plus external-dns v0.22's start-up validation.

use super::*;
use clap::Parser;
use std::ffi::OsString;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SyncArgs,
}

fn parse(args: &[&str]) -> SyncArgs {
    let argv: Vec<OsString> = std::iter::once("sync")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    Cli::try_parse_from(crate::flags::normalise_args(argv))
        .expect("flags parse")
        .args
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The deployment's arguments (domain filters, TXT cache, 30 s interval)
/// plus what external-dns v0.22 requires (a source, a policy) and where
/// objects come from without a cluster (`--catalog`).
const REFERENCE: &[&str] = &[
    "--source=service",
    "--policy=sync",
    "--catalog=/etc/signpost/catalog",
    "--domain-filter=aikernel.io",
    "--domain-filter=example.com",
    "--txt-cache-interval=30s",
    "--interval=30s",
    "--annotation-prefix=external-dns.alpha.kubernetes.io/",
];

#[test]
fn reference_deployment_arguments() {
    let providers: [&[&str]; 4] = [
        &["--provider=aws", "--aws-zone-type=public"],
        &["--provider=google", "--google-project=my-project"],
        &["--provider=azure", "--azure-resource-group=my-rg"],
        &["--provider=cloudflare", "--cloudflare-proxied"],
    ];
    for provider in providers {
        let all: Vec<&str> = REFERENCE.iter().chain(provider).copied().collect();
        let args = parse(&all);
        let errors = settings(&args, &no_env).expect_err("cloud providers are not built");
        let name = provider[0].trim_start_matches("--provider=");
        assert_eq!(
            errors.0,
            [format!(
                "--provider={name}: this provider is not built into signpost yet (built: inmemory, rfc2136, pdns, coredns)"
            )],
            "{provider:?}"
        );
    }
    // The same arguments with a built provider run as written.
    let all: Vec<&str> = REFERENCE
        .iter()
        .copied()
        .chain(["--provider=inmemory"])
        .collect();
    let settings = settings(&parse(&all), &no_env).unwrap();
    assert_eq!(settings.schedule.interval, Duration::from_secs(30));
    assert_eq!(
        settings.txt.unwrap().cache_interval,
        Duration::from_secs(30)
    );
    assert!(settings.plan.domain_filter.matches("api.aikernel.io"));
    assert!(settings.plan.domain_filter.matches("www.example.com"));
    assert!(!settings.plan.domain_filter.matches("example.org"));
    assert_eq!(
        settings.sources.annotation_prefixes,
        ["external-dns.alpha.kubernetes.io/"]
    );
    assert_eq!(settings.metrics_address, "0.0.0.0:7979".parse().unwrap());
}

/// external-dns v0.22's start-up errors, all reported at once.
#[test]
fn every_problem_at_once() {
    let args = parse(&[
        "--provider=rfc2136",
        "--txt-prefix=a-",
        "--txt-suffix=-b",
        "--annotation-prefix=no-slash",
        "--label-filter=bad key=1",
        "--ignore-hostname-annotation",
        "--rfc2136-tsig-secret-alg=hmac-md5",
        "--rfc2136-batch-change-size=0",
        "--create-ptr",
        "--log-format=xml",
    ]);
    let errors = settings(&args, &no_env).unwrap_err().0;
    for expected in [
        "no sources specified",
        "--policy must be set explicitly (one of: sync, upsert-only, create-only)",
        "txt-prefix and txt-suffix are mutual exclusive",
        "--annotation-prefix must end with '/'",
        "--label-filter does not specify a valid label selector",
        "FQDN Template must be set if ignoring annotations",
        "hmac-md5 is not supported TSIG algorithm",
        "batch size specified for rfc2136 cannot be less than 1",
        "--create-ptr is not supported by signpost yet",
        "unsupported log format: xml",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "missing {expected:?} in {errors:#?}"
        );
    }
}

/// Secrets from flags never appear in the errors or the configuration line.
#[test]
fn secrets_stay_out_of_errors() {
    let args = parse(&[
        "--source=service",
        "--policy=sync",
        "--provider=rfc2136",
        "--rfc2136-host=127.0.0.1",
        "--rfc2136-tsig-keyname=k",
        "--rfc2136-tsig-secret=not*base64*TOPSECRET",
        "--rfc2136-tsig-secret-alg=hmac-sha256",
        "--pdns-api-key=TOPSECRET2",
        "--txt-encrypt-aes-key=TOPSECRET3",
    ]);
    let errors = settings(&args, &no_env).unwrap_err().to_string();
    assert!(!errors.contains("TOPSECRET"), "{errors}");
    assert!(!args.describe().contains("TOPSECRET"));
}
