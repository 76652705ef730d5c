//! `--provider=aws` against a real Route 53 implementation: moto's server
//! mode (`moto_server`, PyPI `moto[server]`) on loopback, started once per
//! test binary, read and written through its Route 53 REST API (the same
//! XML API signpost speaks) with an HTTP client of the test's own.
//!
//! moto accepts requests without checking their SigV4 signature (its
//! Route 53 backend rejects even boto3's signatures when auth is switched
//! on), so [`Route53Proxy`], a small recording proxy in front of it, checks
//! what the signature names (the access key id and scope) and can answer one
//! change with Route 53's `Throttling` error before forwarding the rest.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// A running `moto_server`.
pub struct Moto {
    pub daemon: Daemon,
    pub port: u16,
}

impl Moto {
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(|| {
            let dir = server_dir("moto");
            let port = free_port();
            let daemon = Daemon::start(
                "moto_server",
                &[
                    "-H".to_owned(),
                    "127.0.0.1".to_owned(),
                    "-p".to_owned(),
                    port.to_string(),
                ],
                &dir.join("moto.log"),
                Some(&dir),
            );
            let moto = Self { daemon, port };
            let ready = wait_until(Duration::from_secs(60), || {
                moto.call("GET", "/2013-04-01/hostedzone", "").0 == 200
            });
            assert!(
                ready,
                "moto_server did not start (pip install 'moto[server]'); log:\n{}",
                moto.daemon.log()
            );
            moto
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One unsigned request to moto's Route 53 API: (status, body).
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http_call(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            method,
            path,
            body,
        )
    }

    /// Creates a hosted zone; its id (without `/hostedzone/`).
    pub fn create_zone(&self, name: &str, private: bool) -> String {
        let vpc = if private {
            "<HostedZoneConfig><PrivateZone>true</PrivateZone></HostedZoneConfig><VPC><VPCRegion>us-east-1</VPCRegion><VPCId>vpc-0signpost</VPCId></VPC>"
        } else {
            ""
        };
        static CALLER: AtomicUsize = AtomicUsize::new(0);
        let reference = CALLER.fetch_add(1, Ordering::Relaxed);
        let body = format!(
            "<CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Name>{name}.</Name><CallerReference>signpost-{}-{reference}</CallerReference>{vpc}</CreateHostedZoneRequest>",
            std::process::id()
        );
        let (status, text) = self.call("POST", "/2013-04-01/hostedzone", &body);
        assert!(
            status == 200 || status == 201,
            "creating {name}: {status} {text}"
        );
        xml_values(&text, "Id")[0]
            .trim_start_matches("/hostedzone/")
            .to_owned()
    }

    /// Every record set of a zone as rows (alias targets as `ALIAS <zone> <name>`),
    /// paged as Route 53 pages.
    pub fn records(&self, zone_id: &str) -> BTreeSet<Row> {
        let mut rows = BTreeSet::new();
        let mut next = String::new();
        loop {
            let (status, text) = self.call(
                "GET",
                &format!("/2013-04-01/hostedzone/{zone_id}/rrset?maxitems=300{next}"),
                "",
            );
            assert_eq!(status, 200, "{text}");
            for set in xml_blocks(&text, "ResourceRecordSet") {
                let name = xml_values(&set, "Name")[0]
                    .trim_end_matches('.')
                    .replace("\\052", "*")
                    .to_ascii_lowercase();
                let record_type = xml_values(&set, "Type")[0].clone();
                if let Some(alias) = xml_blocks(&set, "AliasTarget").first() {
                    let value = format!(
                        "ALIAS {} {} {}",
                        xml_values(alias, "HostedZoneId")[0],
                        xml_values(alias, "DNSName")[0].trim_end_matches('.'),
                        xml_values(alias, "EvaluateTargetHealth")[0]
                    );
                    rows.insert((name.clone(), record_type.clone(), value));
                }
                for value in xml_values(&set, "Value") {
                    let value = value.trim_matches('"').trim_end_matches('.').to_owned();
                    rows.insert((name.clone(), record_type.clone(), value));
                }
            }
            if xml_values(&text, "IsTruncated").first().map(String::as_str) != Some("true") {
                break;
            }
            next = format!(
                "&name={}&type={}",
                xml_values(&text, "NextRecordName")[0],
                xml_values(&text, "NextRecordType")[0]
            );
        }
        rows
    }

    /// One ChangeResourceRecordSets call with `changes` (`<Change>` elements).
    pub fn change(&self, zone_id: &str, changes: &str) {
        let body = format!(
            "<ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes>{changes}</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
        );
        let (status, text) = self.call(
            "POST",
            &format!("/2013-04-01/hostedzone/{zone_id}/rrset"),
            &body,
        );
        assert_eq!(status, 200, "{text}");
    }
}

/// A minimal HTTP/1.1 exchange (Connection: close): (status, body). moto
/// picks the service from the Authorization header's credential scope, so
/// one naming Route 53 goes along (its signature is not checked).
pub fn http_call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIATESTREADER000000/20260101/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The texts of every `<tag>` element (no nesting of the same tag).
pub fn xml_values(text: &str, tag: &str) -> Vec<String> {
    xml_blocks(text, tag)
        .into_iter()
        .map(|v| {
            v.replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

fn xml_blocks(text: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + close.len()..];
    }
    out
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub head: String,
    pub body: String,
    pub throttled: bool,
}

/// A recording HTTP proxy in front of moto; answers the next `throttle`
/// ChangeResourceRecordSets calls with Route 53's Throttling error.
pub struct Route53Proxy {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub throttle: Arc<AtomicUsize>,
}

impl Route53Proxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let throttle = Arc::new(AtomicUsize::new(0));
        let (seen2, throttle2) = (seen.clone(), throttle.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, throttle) = (seen2.clone(), throttle2.clone());
                std::thread::spawn(move || proxy_one(stream, upstream, &seen, &throttle));
            }
        });
        Self {
            port,
            seen,
            throttle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn proxy_one(
    mut client: TcpStream,
    upstream: u16,
    seen: &Mutex<Vec<Seen>>,
    throttle: &AtomicUsize,
) {
    let Some((head, body)) = read_request(&mut client) else {
        return;
    };
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    let authorization = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let is_change = method == "POST" && path.ends_with("/rrset");
    let throttled = is_change
        && throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    seen.lock().unwrap().push(Seen {
        method,
        path,
        authorization,
        head: head.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        throttled,
    });
    if throttled {
        let error = "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>signpost-test</RequestId></ErrorResponse>";
        let _ = write!(
            client,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{error}",
            error.len()
        );
        return;
    }
    let _ = client.write_all(&forward(upstream, &head, &body));
}

/// A moto hosted zone as the shared scenario sees it.
pub struct Route53Zone {
    pub moto: &'static Moto,
    pub zone: String,
    pub id: String,
    /// Where signpost sends its requests (moto or a proxy).
    pub endpoint: String,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Route53Zone {
    pub fn new(zone: &str) -> Self {
        let moto = Moto::shared();
        let id = moto.create_zone(zone, false);
        Self {
            moto,
            zone: zone.to_owned(),
            id,
            endpoint: moto.url(),
            extra_args: Vec::new(),
            env: vec![
                (
                    "AWS_ACCESS_KEY_ID".to_owned(),
                    "AKIASIGNPOSTTEST0001".to_owned(),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    "route53-secret-default-0001".to_owned(),
                ),
            ],
        }
    }
}

impl ZoneUnderTest for Route53Zone {
    fn zone(&self) -> String {
        self.zone.clone()
    }

    fn provider_args(&self) -> Vec<String> {
        let mut args = vec![
            "--provider=aws".to_owned(),
            "--aws-batch-change-interval=0s".to_owned(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push((
            "AWS_ENDPOINT_URL_ROUTE_53".to_owned(),
            self.endpoint.clone(),
        ));
        // No shared credentials file of the machine's user is read.
        env.push((
            "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
            "/nonexistent".to_owned(),
        ));
        env
    }

    fn records(&self) -> BTreeSet<Row> {
        self.moto.records(&self.id)
    }

    fn add_foreign(&self, name: &str, ip: &str, owner: Option<&str>) {
        let mut changes = format!(
            "<Change><Action>CREATE</Action><ResourceRecordSet><Name>{name}.</Name><Type>A</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>{ip}</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>"
        );
        if let Some(owner) = owner {
            changes.push_str(&format!(
                "<Change><Action>CREATE</Action><ResourceRecordSet><Name>a-{name}.</Name><Type>TXT</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>&quot;{}&quot;</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>",
                ownership(owner, "service/other/x")
            ));
        }
        self.moto.change(&self.id, &changes);
    }
}

/// Issue 14 "Done when" 1 on Route 53 (moto), the shared scenario.
#[test]
fn aws_lifecycle_under_sync() {
    lifecycle_under_sync(&Route53Zone::new("aws-sync.test"));
}

/// Issue 14 "Done when" 1 on Route 53 (moto): upsert-only keeps records.
#[test]
fn aws_upsert_only_keeps_deleted_services_records() {
    deletion_kept_under_upsert_only(&Route53Zone::new("aws-upsert.test"));
}

/// Issue 14 "Done when" 2: 1,250 names and their ownership TXTs (2,500
/// changes) go out in batches Route 53 accepts (≤ 1,000 changes, ≤ 1,000
/// values, ≤ 32,000 characters of values, a record never apart from its
/// TXT); the first batch is answered with Throttling and retried; every
/// record lands.
#[test]
fn aws_large_change_is_batched_and_throttling_retried() {
    let mut zone = Route53Zone::new("aws-batch.test");
    let proxy = Route53Proxy::start(zone.moto.port);
    proxy.throttle.store(1, Ordering::SeqCst);
    zone.endpoint = proxy.url();
    let names: Vec<String> = (0..1250)
        .map(|i| format!("h{i:04}.aws-batch.test"))
        .collect();
    let catalog = Catalog::new();
    catalog.service("many", &names.join(","), "192.0.2.80", "");
    let mut args = sync_args(&zone, "sync");
    args.push("--once".to_owned());
    let sync = SyncProcess::start(&catalog, &args, &zone.env());
    let (status, log) = sync.exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(
        log.contains("retrying"),
        "the throttled batch was not retried:\n{log}"
    );

    let changes: Vec<Seen> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/rrset"))
        .collect();
    assert!(changes[0].throttled, "{:?}", changes[0].path);
    let sent: Vec<&Seen> = changes.iter().filter(|s| !s.throttled).collect();
    assert!(sent.len() >= 3, "{} batches", sent.len());
    assert_eq!(
        changes[1].body, changes[0].body,
        "the throttled batch was not resent as is"
    );
    let mut total = 0;
    for batch in &sent {
        let count = xml_blocks(&batch.body, "Change").len();
        let values = xml_values(&batch.body, "Value");
        let chars: usize = values.iter().map(String::len).sum();
        assert!(count <= 1000, "{count} changes in one batch");
        assert!(values.len() <= 1000, "{} values in one batch", values.len());
        assert!(chars <= 32000, "{chars} characters of values in one batch");
        for name in xml_values(&batch.body, "Name")
            .iter()
            .filter(|n| n.starts_with('h'))
        {
            assert!(
                batch.body.contains(&format!("<Name>a-{name}</Name>")),
                "{name} went without its TXT"
            );
        }
        total += count;
    }
    assert_eq!(total, 2500);
    let records = zone.records();
    for name in &names {
        assert!(has(&records, name, "A", "192.0.2.80"), "{name} missing");
        assert!(
            has(
                &records,
                &format!("a-{name}"),
                "TXT",
                &ownership("default", "service/default/many")
            ),
            "a-{name} missing"
        );
    }
    // Signed with the access key from the environment, scoped to Route 53.
    for seen in proxy.seen() {
        assert!(
            seen.authorization
                .starts_with("AWS4-HMAC-SHA256 Credential=AKIASIGNPOSTTEST0001/")
                && seen
                    .authorization
                    .contains("/us-east-1/route53/aws4_request"),
            "{}",
            seen.authorization
        );
    }
}

/// Issue 14 "Done when" 2 and 5: a public and a private zone of the same
/// name; `--aws-zone-type=public` (the reference deployment's argument)
/// writes only to the public one, `private` only to the private one, and no
/// filter to both.
#[test]
fn aws_zone_type_selects_public_or_private_zones() {
    let moto = Moto::shared();
    let public = Route53Zone::new("aws-split.test");
    let private_id = moto.create_zone("aws-split.test", true);
    let run = |zone_type: Option<&str>, host: &str, ip: &str| {
        let catalog = Catalog::new();
        catalog.service("split", host, ip, "");
        let mut args = sync_args(&public, "upsert-only");
        args.push("--once".to_owned());
        if let Some(zone_type) = zone_type {
            args.push(format!("--aws-zone-type={zone_type}"));
        }
        let (status, log) = SyncProcess::start(&catalog, &args, &public.env()).exit_status();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    };
    run(Some("public"), "pub.aws-split.test", "192.0.2.91");
    run(Some("private"), "priv.aws-split.test", "192.0.2.92");
    run(None, "both.aws-split.test", "192.0.2.93");
    let (public_rows, private_rows) = (public.records(), moto.records(&private_id));
    assert!(
        has(&public_rows, "pub.aws-split.test", "A", "192.0.2.91"),
        "{public_rows:?}"
    );
    assert!(
        rows_at(&private_rows, "pub.aws-split.test").is_empty(),
        "{private_rows:?}"
    );
    assert!(
        has(&private_rows, "priv.aws-split.test", "A", "192.0.2.92"),
        "{private_rows:?}"
    );
    assert!(
        rows_at(&public_rows, "priv.aws-split.test").is_empty(),
        "{public_rows:?}"
    );
    assert!(has(&public_rows, "both.aws-split.test", "A", "192.0.2.93"));
    assert!(has(&private_rows, "both.aws-split.test", "A", "192.0.2.93"));
}

/// Issue 14 "Done when" 2: a LoadBalancer whose ingress is an ELB host name
/// becomes an A and an AAAA alias to the ELB's canonical hosted zone, with
/// their ownership TXTs; the next run finds nothing to change; with
/// `--aws-prefer-cname` it stays a CNAME.
#[test]
fn aws_elb_hostname_becomes_alias() {
    let zone = Route53Zone::new("aws-alias.test");
    let catalog = Catalog::new();
    let elb = |name: &str, host: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    external-dns.kubernetes.io/hostname: \"{host}\"\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\nstatus:\n  loadBalancer:\n    ingress:\n    - hostname: my-lb-1234567890.us-east-1.elb.amazonaws.com\n"
        )
    };
    catalog.write("lb.yaml", &elb("lb", "lb.aws-alias.test"));
    let sync = SyncProcess::start(&catalog, &sync_args(&zone, "sync"), &zone.env());
    let alias = "ALIAS Z35SXDOTRQ7X7K my-lb-1234567890.us-east-1.elb.amazonaws.com true";
    let created = wait_until(INTERVAL + MARGIN + Duration::from_secs(10), || {
        let records = zone.records();
        has(&records, "lb.aws-alias.test", "A", alias)
            && has(&records, "lb.aws-alias.test", "AAAA", alias)
    });
    assert!(
        created,
        "no alias: {:?}\nlog:\n{}",
        zone.records(),
        sync.log()
    );
    let records = zone.records();
    let txt = ownership("default", "service/default/lb");
    assert!(
        has(&records, "a-lb.aws-alias.test", "TXT", &txt),
        "{records:?}"
    );
    assert!(
        has(&records, "aaaa-lb.aws-alias.test", "TXT", &txt),
        "{records:?}"
    );
    assert!(
        rows_at(&records, "lb.aws-alias.test")
            .iter()
            .all(|(_, t, _)| t != "CNAME")
    );
    sync.wait_next_sync();
    let log = sync.log();
    sync.wait_next_sync();
    let later = sync.log();
    assert!(
        later[log.len()..].contains("All records are already up to date"),
        "a settled alias is rewritten on every run:\n{later}"
    );
    drop(sync);

    let mut cname_zone = Route53Zone::new("aws-cname.test");
    cname_zone.extra_args.push("--aws-prefer-cname".to_owned());
    let catalog = Catalog::new();
    catalog.write("lb.yaml", &elb("lb", "lb.aws-cname.test"));
    let mut args = sync_args(&cname_zone, "sync");
    args.push("--once".to_owned());
    let (status, log) = SyncProcess::start(&catalog, &args, &cname_zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    let records = cname_zone.records();
    assert!(
        has(
            &records,
            "lb.aws-cname.test",
            "CNAME",
            "my-lb-1234567890.us-east-1.elb.amazonaws.com"
        ),
        "{records:?}"
    );
}

/// Issue 14 "Done when" 4 for Route 53: the Secret's keys as mounted files
/// (`--credentials-dir`) and as environment variables each sign the
/// requests (the proxy sees their access key id); the secret access key is
/// in no log line, metric, dry-run output or error message, even when the
/// API answers with an error.
#[test]
fn aws_credentials_from_secret_files_and_environment_never_leak() {
    let mut zone = Route53Zone::new("aws-creds.test");
    let proxy = Route53Proxy::start(zone.moto.port);
    zone.endpoint = proxy.url();
    let secret = "route53-S3CRET-4f9a1c7e-files";
    let env_secret = "route53-S3CRET-8b2d6e0f-env";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws-access-key-id"),
        "AKIAFROMSECRETFILES1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("aws-secret-access-key"),
        format!("{secret}\n"),
    )
    .unwrap();
    zone.env = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            "AKIAFROMENVIRONMENT1".to_owned(),
        ),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), env_secret.to_owned()),
    ];
    let catalog = Catalog::new();
    catalog.service("creds", "creds.aws-creds.test", "192.0.2.95", "");

    // Mounted files win over the environment.
    let mut args = sync_args(&zone, "sync");
    args.extend([
        format!("--credentials-dir={}", dir.path().display()),
        "--once".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let (status, files_log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{files_log}");
    assert!(has(
        &zone.records(),
        "creds.aws-creds.test",
        "A",
        "192.0.2.95"
    ));
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .all(|s| s.authorization.contains("Credential=AKIAFROMSECRETFILES1/")),
        "{seen:?}"
    );

    // The environment alone; a dry run prints its plan.
    catalog.service("creds", "creds.aws-creds.test", "192.0.2.96", "");
    let mut args = sync_args(&zone, "sync");
    args.extend([
        "--once".to_owned(),
        "--dry-run".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let before = proxy.seen().len();
    let (status, dry_log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{dry_log}");
    assert!(dry_log.contains("planned change"), "{dry_log}");
    assert!(
        proxy.seen()[before..]
            .iter()
            .all(|s| s.authorization.contains("Credential=AKIAFROMENVIRONMENT1/"))
    );
    assert!(
        has(&zone.records(), "creds.aws-creds.test", "A", "192.0.2.95"),
        "the dry run wrote"
    );

    // A refusing API (the proxy throttles every change): errors logged and counted.
    proxy.throttle.store(usize::MAX / 2, Ordering::SeqCst);
    let mut args = sync_args(&zone, "sync");
    args.extend([
        "--aws-api-retries=1".to_owned(),
        "--log-level=debug".to_owned(),
    ]);
    let sync = SyncProcess::start(&catalog, &args, &zone.env());
    let counted = wait_until(INTERVAL * 3 + MARGIN, || {
        sync.metric("signpost_sync_provider_errors_total{kind=\"server\"}")
            .is_some_and(|v| v >= 1.0)
    });
    let (scrape, error_log) = (sync.scrape(), sync.log());
    assert!(counted, "throttling not counted:\n{scrape}\n{error_log}");
    assert!(error_log.contains("Throttling"), "{error_log}");
    drop(sync);

    for text in [&files_log, &dry_log, &scrape, &error_log] {
        assert!(
            !text.contains(secret) && !text.contains(env_secret),
            "a secret leaked:\n{text}"
        );
        assert!(!text.contains("S3CRET"), "part of a secret leaked:\n{text}");
    }
    for seen in proxy.seen() {
        assert!(!seen.head.contains("S3CRET") && !seen.body.contains("S3CRET"));
    }
}

/// Issue 14 "Done when" 5: the reference deployment's arguments, as its
/// README writes them (`--provider=aws --aws-zone-type=public` with its
/// domain filters, cache and interval), run against Route 53: the public
/// zone gets the record, the private twin does not.
#[test]
fn aws_reference_arguments_are_accepted() {
    let zone = Route53Zone::new("aikernel.io");
    let private_id = zone.moto.create_zone("aikernel.io", true);
    let catalog = Catalog::new();
    catalog.service("api", "api.aikernel.io", "192.0.2.99", "");
    let args: Vec<String> = [
        "--source=service",
        "--provider=aws",
        "--aws-zone-type=public",
        "--policy=sync",
        "--domain-filter=aikernel.io",
        "--domain-filter=example.com",
        "--txt-cache-interval=30s",
        "--interval=30s",
        "--txt-owner-id=default",
        "--once",
    ]
    .map(str::to_owned)
    .to_vec();
    let (status, log) = SyncProcess::start(&catalog, &args, &zone.env()).exit_status();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(
        has(&zone.records(), "api.aikernel.io", "A", "192.0.2.99"),
        "{:?}",
        zone.records()
    );
    assert!(rows_at(&zone.moto.records(&private_id), "api.aikernel.io").is_empty());
}

/// Issue 14 "Done when" 3, first half: three regional Services behind one
/// public name (`dns.aikernel.io/geo-region`) become one Route 53 latency
/// record set per region (SetIdentifier and Region = the region), each
/// with its ownership TXT under the same routing; deleting one region's
/// Service withdraws only that region's set.
#[test]
fn aws_geo_regions_become_latency_record_sets() {
    let zone = Route53Zone::new("aws-geo.test");
    let catalog = Catalog::new();
    let regions = [
        ("us-east-1", "192.0.2.101"),
        ("eu-west-1", "192.0.2.102"),
        ("ap-southeast-1", "192.0.2.103"),
    ];
    for (region, ip) in regions {
        catalog.service(
            &format!("app-{region}"),
            "app.aws-geo.test",
            ip,
            &format!("    dns.aikernel.io/geo-region: {region}\n"),
        );
    }
    let sets = || latency_sets(&zone, "app.aws-geo.test.");
    let sync = SyncProcess::start(&catalog, &sync_args(&zone, "sync"), &zone.env());
    let all = wait_until(INTERVAL + MARGIN + Duration::from_secs(10), || {
        sets().iter().filter(|s| s.1 == "A").count() == 3
    });
    assert!(all, "{:?}\n{}", sets(), sync.log());
    let found = sets();
    for (region, ip) in regions {
        assert!(
            found.iter().any(|(n, t, id, r, v)| n == "app.aws-geo.test."
                && t == "A"
                && id == region
                && r == region
                && v == &[ip.to_owned()]),
            "no latency set for {region}: {found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(n, t, id, r, _)| n == "a-app.aws-geo.test."
                    && t == "TXT"
                    && id == region
                    && r == region),
            "no ownership TXT for {region}: {found:?}"
        );
    }

    catalog.remove("app-eu-west-1.yaml");
    let withdrawn = wait_until(INTERVAL + MARGIN, || {
        let now = sets();
        !now.iter().any(|s| s.2 == "eu-west-1") && now.iter().filter(|s| s.1 == "A").count() == 2
    });
    assert!(withdrawn, "{:?}\n{}", sets(), sync.log());
}

/// The record sets at `name` (with the trailing dot) and at its TXT twin:
/// (name, type, set identifier, region, values).
fn latency_sets(
    zone: &Route53Zone,
    name: &str,
) -> Vec<(String, String, String, String, Vec<String>)> {
    let (status, text) = zone.moto.call(
        "GET",
        &format!("/2013-04-01/hostedzone/{}/rrset?maxitems=300", zone.id),
        "",
    );
    assert_eq!(status, 200, "{text}");
    xml_blocks(&text, "ResourceRecordSet")
        .into_iter()
        .filter(|set| xml_values(set, "Name")[0].ends_with(name))
        .map(|set| {
            (
                xml_values(&set, "Name")[0].clone(),
                xml_values(&set, "Type")[0].clone(),
                xml_values(&set, "SetIdentifier")
                    .first()
                    .cloned()
                    .unwrap_or_default(),
                xml_values(&set, "Region")
                    .first()
                    .cloned()
                    .unwrap_or_default(),
                xml_values(&set, "Value"),
            )
        })
        .collect()
}

/// Issue 14 "Done when" 3, second half, on Route 53: a region whose
/// endpoints all fail their health checks loses its latency record set and
/// its ownership TXT set (same SetIdentifier) within the debounce plus the
/// margin, comes back when the verdicts clear, and every region failing
/// publishes all three (fail open).
#[test]
fn aws_geo_region_follows_health_verdicts() {
    let zone = Route53Zone::new("aws-geo-health.test");
    let name = "app.aws-geo-health.test.";
    let published = |_: &dyn ZoneUnderTest, regions: &[&str]| {
        let sets = latency_sets(&zone, name);
        let wanted: BTreeSet<(String, String)> = GEO_REGIONS
            .iter()
            .filter(|(region, _, _)| regions.contains(region))
            .map(|(region, ip, _)| ((*region).to_owned(), (*ip).to_owned()))
            .collect();
        let a: BTreeSet<(String, String)> = sets
            .iter()
            .filter(|(n, t, id, r, _)| n == name && t == "A" && id == r)
            .flat_map(|(_, _, id, _, values)| values.iter().map(move |v| (id.clone(), v.clone())))
            .collect();
        let txt: BTreeSet<String> = sets
            .iter()
            .filter(|(n, t, _, _, _)| n == &format!("a-{name}") && t == "TXT")
            .map(|(_, _, id, _, _)| id.clone())
            .collect();
        let wanted_ids: BTreeSet<String> = wanted.iter().map(|(id, _)| id.clone()).collect();
        let a_count = sets.iter().filter(|s| s.1 == "A").count();
        a == wanted && a_count == wanted.len() && txt == wanted_ids
    };
    geo_follows_verdicts(&zone, &published);
}
