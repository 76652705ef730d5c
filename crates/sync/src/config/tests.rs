//! Issue 13, "Done when" 5: the reference AI-Kernel deployment's
//! external-dns arguments are accepted as written; aws and cloudflare run,
//! the other cloud providers say they are not built yet. Plus external-dns v0.22's start-up validation.

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
    // Every provider of the reference deployment is built; one external-dns
    // has and signpost does not still says so.
    let all: Vec<&str> = REFERENCE
        .iter()
        .copied()
        .chain(["--provider=ns1"])
        .collect();
    let errors = settings(&parse(&all), &no_env).expect_err("ns1 is not built");
    assert_eq!(
        errors.0,
        [
            "--provider=ns1: this provider is not built into signpost yet (built: inmemory, rfc2136, pdns, coredns, aws, azure, cloudflare, google)"
        ]
    );
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

/// An owner id the ownership TXT value cannot carry is refused at start-up:
/// with a `,` or `"` in it sync would read its own records back as another
/// owner's (external-dns v0.22 accepts it and then never owns them).
#[test]
fn owner_ids_that_do_not_read_back_are_refused() {
    for (flag, value) in [
        ("--txt-owner-id", "team,a"),
        ("--txt-owner-id", "team\""),
        ("--migrate-from-txt-owner", "old,owner"),
    ] {
        let arg = format!("{flag}={value}");
        let args = parse(&[REFERENCE, &[arg.as_str()]].concat());
        let errors = settings(&args, &no_env).unwrap_err().0;
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{flag} ")) && e.contains("ownership TXT value")),
            "{flag}={value}: {errors:#?}"
        );
    }
    let args = parse(
        &[
            REFERENCE,
            &["--provider=inmemory", "--txt-owner-id=team-a=1"],
        ]
        .concat(),
    );
    settings(&args, &no_env).expect("'=' reads back (split at the first '=')");
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

/// Issue 14 "Done when" 4 and 5: `--provider=aws --aws-zone-type=public`
/// and `--provider=cloudflare --cloudflare-proxied` as the reference
/// deployment writes them, with credentials from the mounted Secret or the
/// environment; without credentials a clear error that names no secret.
#[test]
fn cloud_reference_arguments_and_credentials() {
    use crate::provider::aws::ZoneType;
    let aws: Vec<&str> = REFERENCE
        .iter()
        .copied()
        .chain(["--provider=aws", "--aws-zone-type=public"])
        .collect();
    let errors = settings(&parse(&aws), &no_env).unwrap_err();
    assert!(errors.0[0].starts_with("no AWS credentials"), "{errors}");
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIAENV".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("env-secret-key".to_owned()),
        "CF_API_TOKEN" => Some("env-cf-token".to_owned()),
        _ => None,
    };
    let ProviderSettings::Aws(config) = settings(&parse(&aws), &env).unwrap().provider else {
        panic!("not aws");
    };
    assert_eq!(config.zone_type, ZoneType::Public);
    assert_eq!(config.credentials.access_key_id, "AKIAENV");
    assert_eq!(config.endpoint, "https://route53.amazonaws.com");
    assert_eq!((config.batch_changes, config.batch_bytes), (1000, 32000));
    assert!(!format!("{config:?}").contains("env-secret-key"));

    // The mounted Secret wins over the environment.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aws-access-key-id"), "AKIAFILE\n").unwrap();
    std::fs::write(dir.path().join("aws-secret-access-key"), "file-secret\n").unwrap();
    std::fs::write(dir.path().join("cloudflare-api-token"), "file-cf-token\n").unwrap();
    let flag = format!("--credentials-dir={}", dir.path().display());
    let mut with_dir = aws.clone();
    with_dir.push(&flag);
    let ProviderSettings::Aws(config) = settings(&parse(&with_dir), &env).unwrap().provider else {
        panic!("not aws");
    };
    assert_eq!(config.credentials.access_key_id, "AKIAFILE");
    assert_eq!(config.credentials.secret_access_key, "file-secret");

    // A shared credentials file, profile from AWS_PROFILE.
    let shared = dir.path().join("credentials");
    std::fs::write(
        &shared,
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n[ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=o\n",
    )
    .unwrap();
    let shared_text = shared.display().to_string();
    let shared_env = |name: &str| match name {
        "AWS_SHARED_CREDENTIALS_FILE" => Some(shared_text.clone()),
        "AWS_PROFILE" => Some("ops".to_owned()),
        _ => None,
    };
    let ProviderSettings::Aws(config) = settings(&parse(&aws), &shared_env).unwrap().provider
    else {
        panic!("not aws");
    };
    assert_eq!(config.credentials.access_key_id, "AKIAOPS");

    let cloudflare: Vec<&str> = REFERENCE
        .iter()
        .copied()
        .chain(["--provider=cloudflare", "--cloudflare-proxied"])
        .collect();
    let errors = settings(&parse(&cloudflare), &no_env).unwrap_err();
    assert!(
        errors.0[0].starts_with("no Cloudflare credentials"),
        "{errors}"
    );
    let ProviderSettings::Cloudflare(config) =
        settings(&parse(&cloudflare), &env).unwrap().provider
    else {
        panic!("not cloudflare");
    };
    assert!(config.proxied);
    assert_eq!(config.token, "env-cf-token");
    assert_eq!(
        config.proxied_property,
        "external-dns.alpha.kubernetes.io/cloudflare-proxied"
    );
    let mut with_dir = cloudflare.clone();
    with_dir.push(&flag);
    let ProviderSettings::Cloudflare(config) = settings(&parse(&with_dir), &env).unwrap().provider
    else {
        panic!("not cloudflare");
    };
    assert_eq!(config.token, "file-cf-token");
    assert!(!format!("{config:?}").contains("file-cf-token"));
}

/// Issue 14 "Done when" 4 and 5 for Azure: `--provider=azure
/// --azure-resource-group=my-rg` with the Secret's keys mounted, or the
/// config file in external-dns's format; missing pieces named, no secret.
#[test]
fn azure_reference_arguments_and_credentials() {
    let azure: Vec<&str> = REFERENCE
        .iter()
        .copied()
        .chain(["--provider=azure", "--azure-resource-group=my-rg"])
        .collect();
    let errors = settings(&parse(&azure), &no_env).unwrap_err();
    assert!(
        errors.0.iter().any(|e| e.contains("no client secret")),
        "{errors}"
    );
    assert!(
        !errors.0.iter().any(|e| e.contains("resource group")),
        "{errors}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("azure-tenant-id"), "tenant-1\n").unwrap();
    std::fs::write(dir.path().join("azure-client-id"), "client-1\n").unwrap();
    std::fs::write(
        dir.path().join("azure-client-secret"),
        "azure-file-secret\n",
    )
    .unwrap();
    let flag = format!("--credentials-dir={}", dir.path().display());
    let mut with_dir = azure.clone();
    with_dir.extend([flag.as_str(), "--azure-subscription-id=sub-1"]);
    let ProviderSettings::Azure(config) = settings(&parse(&with_dir), &no_env).unwrap().provider
    else {
        panic!("not azure");
    };
    assert_eq!(
        (config.tenant_id.as_str(), config.client_id.as_str()),
        ("tenant-1", "client-1")
    );
    assert_eq!(config.client_secret, "azure-file-secret");
    assert_eq!(config.resource_group, "my-rg");
    assert_eq!(config.resource_manager, "https://management.azure.com");
    assert!(!format!("{config:?}").contains("azure-file-secret"));

    let file = dir.path().join("azure.json");
    std::fs::write(
        &file,
        r#"{"cloud": "AzurePublicCloud", "tenantId": "t-2", "subscriptionId": "s-2", "resourceGroup": "rg-2", "aadClientId": "c-2", "aadClientSecret": "json-secret", "location": "westeurope"}"#,
    )
    .unwrap();
    let file_flag = format!("--azure-config-file={}", file.display());
    let ProviderSettings::Azure(config) = settings(
        &parse(&[
            "--source=service",
            "--policy=sync",
            "--catalog=/x",
            "--provider=azure",
            &file_flag,
        ]),
        &no_env,
    )
    .unwrap()
    .provider
    else {
        panic!("not azure");
    };
    assert_eq!(
        (
            config.subscription_id.as_str(),
            config.resource_group.as_str()
        ),
        ("s-2", "rg-2")
    );
    assert_eq!(config.client_secret, "json-secret");
    std::fs::write(&file, "{\"tenantId\": }").unwrap();
    let errors = settings(
        &parse(&[
            "--source=service",
            "--policy=sync",
            "--catalog=/x",
            "--provider=azure",
            &file_flag,
        ]),
        &no_env,
    )
    .unwrap_err();
    assert!(errors.0[0].contains("line 1 column"), "{errors}");
}

/// How sync reaches the API server: external-dns's order (`--kubeconfig`,
/// else `~/.kube/config` when it exists, else in-cluster; `--server` alone
/// connects to that URL); both flags at once and a schemeless URL refused.
#[test]
fn kubernetes_connection() {
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().display().to_string();
    let with_home = |name: &str| (name == "HOME").then(|| home_path.clone());
    let base = ["--source=service", "--policy=sync", "--provider=inmemory"];
    let get = |extra: &[&str], env: &dyn Fn(&str) -> Option<String>| {
        let all: Vec<&str> = base.iter().chain(extra).copied().collect();
        settings(&parse(&all), env)
    };

    // No kubeconfig anywhere: in-cluster.
    let kube = get(&[], &with_home).unwrap().kubernetes;
    assert_eq!((kube.kubeconfig, kube.server), (None, None));
    assert!(kube.services && !kube.ingresses);
    // ~/.kube/config exists: used.
    std::fs::create_dir_all(home.path().join(".kube")).unwrap();
    std::fs::write(home.path().join(".kube/config"), "apiVersion: v1\n").unwrap();
    let kube = get(&[], &with_home).unwrap().kubernetes;
    assert_eq!(kube.kubeconfig, Some(home.path().join(".kube/config")));
    // --server alone wins over the default kubeconfig.
    let kube = get(&["--server=https://10.0.0.1:6443"], &with_home)
        .unwrap()
        .kubernetes;
    assert_eq!(
        (kube.kubeconfig, kube.server.as_deref()),
        (None, Some("https://10.0.0.1:6443"))
    );
    // An explicit kubeconfig, the namespace and the ingress source.
    let kube = get(
        &["--kubeconfig=/k", "--namespace=web", "--source=ingress"],
        &with_home,
    )
    .unwrap()
    .kubernetes;
    assert_eq!(kube.kubeconfig, Some(PathBuf::from("/k")));
    assert_eq!(kube.namespace, "web");
    assert!(kube.services && kube.ingresses);
    // Refused: both at once; a URL without a scheme.
    let errors = get(&["--kubeconfig=/k", "--server=https://x"], &no_env)
        .unwrap_err()
        .0;
    assert!(
        errors[0].starts_with("--server with --kubeconfig"),
        "{errors:?}"
    );
    let errors = get(&["--server=10.0.0.1:6443"], &no_env).unwrap_err().0;
    assert_eq!(
        errors,
        ["--server=10.0.0.1:6443: the API server URL must start with https:// or http://"]
    );
}

/// `--leader-elect` and client-go's checks of the Lease timings.
#[test]
fn leader_election_settings() {
    let base = ["--source=service", "--policy=sync", "--provider=inmemory"];
    let get = |extra: &[&str]| {
        let all: Vec<&str> = base.iter().chain(extra).copied().collect();
        settings(&parse(&all), &no_env)
    };
    assert_eq!(get(&[]).unwrap().election, None);
    let election = get(&["--leader-elect"]).unwrap().election.unwrap();
    assert_eq!(
        (election.name.as_str(), election.namespace.as_str()),
        ("signpost-sync", "")
    );
    assert_eq!(
        (
            election.lease_duration,
            election.renew_deadline,
            election.retry_period
        ),
        (
            Duration::from_secs(15),
            Duration::from_secs(10),
            Duration::from_secs(2)
        )
    );
    let errors = get(&[
        "--leader-elect",
        "--leader-elect-lease-duration=5s",
        "--leader-elect-renew-deadline=5s",
        "--leader-elect-retry-period=5s",
    ])
    .unwrap_err()
    .0;
    assert_eq!(
        errors,
        [
            "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline",
            "--leader-elect-renew-deadline must be greater than 1.2 times --leader-elect-retry-period",
        ]
    );
}

/// `--health-verdicts`: off by default; `kubernetes` and `etcd` with their
/// defaults and explicit objects; bad values are errors naming the flag;
/// the etcd password never shows in the settings' Debug form.
#[test]
fn health_verdicts_settings() {
    let base = ["--source=service", "--policy=sync", "--provider=inmemory"];
    let with = |extra: &[&str], env: &dyn Fn(&str) -> Option<String>| {
        let all: Vec<&str> = base.iter().chain(extra).copied().collect();
        settings(&parse(&all), env)
    };
    assert_eq!(with(&[], &no_env).unwrap().health, None);

    let health = with(&["--health-verdicts=kubernetes"], &no_env)
        .unwrap()
        .health
        .unwrap();
    assert_eq!(
        health.store,
        VerdictSource::Kubernetes {
            namespace: "kube-system".to_owned(),
            name: "signpost-health-verdicts".to_owned()
        }
    );
    assert_eq!(health.debounce, Duration::from_secs(1));
    assert_eq!(health.stale_after, Duration::from_secs(60));

    let health = with(
        &[
            "--health-verdicts=kubernetes:dns/verdicts",
            "--health-verdicts-debounce=250ms",
        ],
        &no_env,
    )
    .unwrap()
    .health
    .unwrap();
    assert_eq!(
        health.store,
        VerdictSource::Kubernetes {
            namespace: "dns".to_owned(),
            name: "verdicts".to_owned()
        }
    );
    assert_eq!(health.debounce, Duration::from_millis(250));

    let env = |name: &str| match name {
        "ETCD_URLS" => Some("http://10.0.0.1:2379,http://10.0.0.2:2379".to_owned()),
        "ETCD_USERNAME" => Some("sync".to_owned()),
        "ETCD_PASSWORD" => Some("pw-S3CRET-9f".to_owned()),
        _ => None,
    };
    for (flag, prefix) in [
        ("--health-verdicts=etcd", "/signpost/health/"),
        ("--health-verdicts=etcd:/dns/health", "/dns/health/"),
        ("--health-verdicts=etcd:dns/health/", "/dns/health/"),
    ] {
        let settings = with(&[flag], &env).unwrap();
        let Some(VerdictSource::Etcd {
            endpoints,
            prefix: found,
            user,
        }) = settings.health.as_ref().map(|h| h.store.clone())
        else {
            panic!("{flag}: not etcd");
        };
        assert_eq!(found, prefix, "{flag}");
        assert_eq!(endpoints.len(), 2);
        assert_eq!(user.map(|u| u.0), Some("sync".to_owned()));
        assert!(!format!("{settings:?}").contains("S3CRET"));
    }

    for bad in [
        "--health-verdicts=configmap",
        "--health-verdicts=kubernetes:only-a-name",
        "--health-verdicts=kubernetes:a/b/c",
    ] {
        let errors = with(&[bad], &no_env).unwrap_err().to_string();
        assert!(errors.contains("--health-verdicts="), "{bad}: {errors}");
    }
    let errors = with(
        &["--health-verdicts=etcd", "--health-verdicts-debounce=soon"],
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("--health-verdicts-debounce"), "{errors}");
}
