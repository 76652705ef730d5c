//! Route 53 request rendering, batching and the alias decision, without a
//! server (the end-to-end tests run against moto).

use super::*;

fn config() -> AwsConfig {
    AwsConfig {
        endpoint: "http://127.0.0.1:1".to_owned(),
        credentials: AwsCredentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI-unit-secret".to_owned(),
            session_token: None,
            source: "test".to_owned(),
        },
        zone_type: ZoneType::Any,
        zone_ids: Vec::new(),
        batch_changes: 1000,
        batch_bytes: 32000,
        batch_values: 1000,
        batch_interval: Duration::ZERO,
        evaluate_target_health: true,
        api_retries: 3,
        prefer_cname: false,
        domain_filter: DomainFilter::default(),
        tls: TlsFiles::default(),
    }
}

fn zone() -> Zone {
    Zone {
        id: "Z1".to_owned(),
        name: "example.com".to_owned(),
        private: false,
    }
}

/// 2,500 records, each with its ownership TXT (5,000 changes): every batch
/// within 1,000 changes, 1,000 values and 32,000 characters; a record and
/// its TXT never split; nothing lost.
#[test]
fn batches_keep_route53_limits() {
    let aws = Aws::new(config()).unwrap();
    let mut changes = Vec::new();
    for i in 0..2500 {
        let name = format!("host-{i:04}.example.com");
        let record = Endpoint::new(
            &name,
            RecordType::A,
            vec![format!("10.0.{}.{}", i / 250, i % 250)],
        );
        let txt = Endpoint::new(
            &format!("a-{name}"),
            RecordType::Txt,
            vec!["\"heritage=external-dns,external-dns/owner=default,external-dns/resource=service/default/web\"".to_owned()],
        )
        .with_label(OWNED_RECORD_LABEL, &name);
        changes.push(aws.change("CREATE", &record, &zone()));
        changes.push(aws.change("CREATE", &txt, &zone()));
    }
    let batches = aws.batches("Z1", changes);
    assert!(batches.len() >= 5, "{} batches", batches.len());
    let mut total = 0;
    for batch in &batches {
        assert!(batch.len() <= 1000);
        assert!(batch.iter().map(|c| c.values).sum::<usize>() <= 1000);
        assert!(batch.iter().map(|c| c.chars).sum::<usize>() <= 32000);
        let groups: std::collections::HashSet<&str> =
            batch.iter().map(|c| c.group.as_str()).collect();
        assert_eq!(
            groups.len() * 2,
            batch.len(),
            "a record was split from its TXT"
        );
        total += batch.len();
    }
    assert_eq!(total, 5000);
}

/// A set bigger than a batch on its own is skipped, the rest still sent.
#[test]
fn oversized_group_is_skipped() {
    let mut settings = config();
    settings.batch_values = 3;
    let aws = Aws::new(settings).unwrap();
    let big = Endpoint::new(
        "big.example.com",
        RecordType::A,
        (1..=5).map(|i| format!("10.0.0.{i}")).collect(),
    );
    let small = Endpoint::new(
        "small.example.com",
        RecordType::A,
        vec!["10.0.0.9".to_owned()],
    );
    let other = Endpoint::new(
        "other.example.com",
        RecordType::A,
        vec!["10.0.0.8".to_owned()],
    );
    let changes = vec![
        aws.change("CREATE", &big, &zone()),
        aws.change("CREATE", &small, &zone()),
        aws.change("CREATE", &other, &zone()),
    ];
    let batches = aws.batches("Z1", changes);
    let names: Vec<&str> = batches
        .iter()
        .flatten()
        .map(|c| c.order.1.as_str())
        .collect();
    assert_eq!(names, ["other.example.com", "small.example.com"]);
}

/// An ELB host name becomes an A and an AAAA alias to the ELB's canonical
/// zone, TTL 300, evaluate-target-health from the flag; `--aws-prefer-cname`
/// keeps the CNAME.
#[test]
fn elb_hostnames_become_aliases() {
    let aws = Aws::new(config()).unwrap();
    let cname = Endpoint::new(
        "web.example.com",
        RecordType::Cname,
        vec!["my-lb-1234.us-east-1.elb.amazonaws.com".to_owned()],
    );
    let adjusted = aws.adjust(vec![cname.clone()]);
    assert_eq!(adjusted.len(), 2);
    assert_eq!(adjusted[0].record_type, RecordType::A);
    assert_eq!(adjusted[1].record_type, RecordType::Aaaa);
    for endpoint in &adjusted {
        assert_eq!(endpoint.ttl, 300);
        assert_eq!(endpoint.property("alias"), Some("true"));
        assert_eq!(
            endpoint.property("aws/evaluate-target-health"),
            Some("true")
        );
    }
    let (xml, values, _) = record_set_xml(&adjusted[0], &zone());
    assert_eq!(
        xml,
        "<ResourceRecordSet><Name>web.example.com.</Name><Type>A</Type><AliasTarget><HostedZoneId>Z35SXDOTRQ7X7K</HostedZoneId><DNSName>my-lb-1234.us-east-1.elb.amazonaws.com</DNSName><EvaluateTargetHealth>true</EvaluateTargetHealth></AliasTarget></ResourceRecordSet>"
    );
    assert_eq!(values, 1);

    let other = Endpoint::new(
        "www.example.com",
        RecordType::Cname,
        vec!["example.net".to_owned()],
    );
    let adjusted = aws.adjust(vec![other]);
    assert_eq!(adjusted[0].record_type, RecordType::Cname);
    assert_eq!(adjusted[0].property("alias"), Some("false"));

    let mut settings = config();
    settings.prefer_cname = true;
    let aws = Aws::new(settings).unwrap();
    let adjusted = aws.adjust(vec![cname]);
    assert_eq!(adjusted.len(), 1);
    assert_eq!(adjusted[0].record_type, RecordType::Cname);
}

/// Record sets read back: alias, TTL, routing, wildcard escape; types
/// external-dns does not manage left out.
#[test]
fn record_sets_parse() {
    let xml = r#"<?xml version="1.0"?>
<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
<ResourceRecordSets>
<ResourceRecordSet><Name>example.com.</Name><Type>SOA</Type><TTL>900</TTL><ResourceRecords><ResourceRecord><Value>ns. host. 1 2 3 4 5</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>
<ResourceRecordSet><Name>\052.example.com.</Name><Type>A</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord><ResourceRecord><Value>192.0.2.2</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>
<ResourceRecordSet><Name>lb.example.com.</Name><Type>AAAA</Type><AliasTarget><HostedZoneId>Z35SXDOTRQ7X7K</HostedZoneId><DNSName>x.us-east-1.elb.amazonaws.com.</DNSName><EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget></ResourceRecordSet>
<ResourceRecordSet><Name>geo.example.com.</Name><Type>A</Type><SetIdentifier>eu</SetIdentifier><Region>eu-west-1</Region><TTL>30</TTL><ResourceRecords><ResourceRecord><Value>192.0.2.9</Value></ResourceRecord></ResourceRecords><HealthCheckId>hc-1</HealthCheckId></ResourceRecordSet>
</ResourceRecordSets>
<IsTruncated>true</IsTruncated><NextRecordName>z.example.com.</NextRecordName><NextRecordType>A</NextRecordType><MaxItems>300</MaxItems>
</ListResourceRecordSetsResponse>"#;
    let page: ListRecordSetsResponse = quick_xml::de::from_str(xml).unwrap();
    assert!(page.is_truncated);
    assert_eq!(page.next_record_name.as_deref(), Some("z.example.com."));
    let endpoints: Vec<Endpoint> = page
        .resource_record_sets
        .sets
        .into_iter()
        .filter_map(endpoint_of)
        .collect();
    assert_eq!(endpoints.len(), 3);
    assert_eq!(endpoints[0].dns_name, "*.example.com");
    assert_eq!(endpoints[0].targets, ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(endpoints[0].ttl, 60);
    assert_eq!(endpoints[1].targets, ["x.us-east-1.elb.amazonaws.com"]);
    assert_eq!(endpoints[1].ttl, 300);
    assert_eq!(
        endpoints[1].property("aws/evaluate-target-health"),
        Some("false")
    );
    assert_eq!(endpoints[2].set_identifier, "eu");
    assert_eq!(endpoints[2].property("aws/region"), Some("eu-west-1"));
    assert_eq!(endpoints[2].property("aws/health-check-id"), Some("hc-1"));
    let (xml, _, _) = record_set_xml(&endpoints[2], &zone());
    assert!(
        xml.contains("<SetIdentifier>eu</SetIdentifier><Region>eu-west-1</Region><TTL>30</TTL>"),
        "{xml}"
    );
}

/// Updates that Route 53 cannot make in place become DELETE + CREATE.
#[test]
fn recreate_when_type_or_routing_changes() {
    let a = Endpoint::new("x.example.com", RecordType::A, vec!["192.0.2.1".to_owned()]);
    let b = Endpoint::new("x.example.com", RecordType::A, vec!["192.0.2.2".to_owned()]);
    assert!(!needs_recreate(&a, &b));
    let mut weighted = b.clone().with_set_identifier("one");
    weighted.set_property("aws/weight", "10");
    assert!(needs_recreate(&a, &weighted));
}

/// The request is signed for route53 in us-east-1 and carries no secret.
#[test]
fn requests_are_signed_without_the_secret() {
    let aws = Aws::new(config()).unwrap();
    let mut request = aws
        .http
        .builder(&Method::GET, "/2013-04-01/hostedzone")
        .body(Full::new(Bytes::new()))
        .unwrap();
    aws.sign(
        &mut request,
        "http://127.0.0.1:1/2013-04-01/hostedzone",
        &[],
    )
    .unwrap();
    let authorization = request.headers()["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/us-east-1/route53/aws4_request"),
        "{authorization}"
    );
    assert!(request.headers().contains_key("x-amz-date"));
    for (_, value) in request.headers() {
        assert!(!value.to_str().unwrap_or("").contains("unit-secret"));
    }
    assert!(!format!("{aws:?}").contains("unit-secret"));
}

#[test]
fn names_and_errors() {
    assert_eq!(unescape_name("\\052.a.example.com."), "*.a.example.com.");
    assert_eq!(unescape_name("plain\\"), "plain\\");
    // Found by fuzzing: above \377 three octal digits are no octet (no overflow).
    assert_eq!(unescape_name("a\\777.b\\400."), "a\\777.b\\400.");
    assert_eq!(unescape_name("\\377"), "\u{fffd}");
    assert_eq!(query_escape("a b.c/d"), "a%20b.c%2Fd");
    let body = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
    assert_eq!(xml_text(body, "Code").as_deref(), Some("Throttling"));
    assert_eq!(
        canonical_hosted_zone("abc.elb.eu-west-1.amazonaws.com."),
        Some("Z2IFOLAFXWLO4F")
    );
    assert_eq!(canonical_hosted_zone("example.com"), None);
}
