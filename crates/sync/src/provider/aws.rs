//! `--provider=aws`: Amazon Route 53 through its REST XML API (version
//! 2013-04-01), each request SigV4 signed by the `aws-sigv4` crate.
//!
//! Control plane. Requests, as external-dns v0.22 makes them (notes §7.5):
//!
//! ```text
//! GET  /2013-04-01/hostedzone?marker=M                     zones, paged; filtered by --aws-zone-type, --zone-id-filter, the domain filter
//! GET  /2013-04-01/hostedzone/{id}/rrset?maxitems=300&...   record sets, paged by (name, type, identifier)
//! POST /2013-04-01/hostedzone/{id}/rrset                    ChangeResourceRecordSets: CREATE, UPSERT, DELETE in batches
//! ```
//!
//! Batches keep Route 53's limits (API reference, ChangeResourceRecordSets:
//! at most 1,000 ResourceRecord elements and 32,000 characters of values per
//! request, an UPSERT counting twice) through `--aws-batch-change-size`,
//! `--aws-batch-change-size-values` and `--aws-batch-change-size-bytes`. A
//! record and its ownership TXT (the TXT's `ownedRecord` label) always share
//! a batch, and Route 53 applies a batch atomically, so a TXT never claims a
//! record that was not written. `Throttling`, `PriorRequestNotComplete`, 5xx
//! and transport failures are retried `--aws-api-retries` times with
//! exponential backoff; a batch Route 53 rejects is retried group by group so
//! one bad record does not hold back the others.
//!
//! CNAMEs to AWS load balancers, CloudFront and Global Accelerator become
//! alias records (an A and an AAAA) unless `--aws-prefer-cname`; the alias
//! target's hosted zone comes from AWS's published table of canonical
//! hosted zones, or `aws/target-hosted-zone`.
//!
//! Why `aws-sigv4` and not the AWS SDK: the SDK's Route 53 crate pulls in
//! the smithy runtime, its own HTTP stack and credential chain (hundreds of
//! crates, minutes of build) and its current releases need a newer Rust than
//! the workspace's 1.89; three API calls and a signer are all we need.
//!
//! Invariant: the secret key never leaves [`AwsCredentials`]: it is not in
//! `Debug` output, errors, logs or metrics; error bodies are redacted.

use super::http::{HttpClient, TlsFiles, percent_encode as query_escape, quote, redact};
use super::{Provider, ProviderError, grouped};
use crate::endpoint::{Endpoint, OWNED_RECORD_LABEL, RecordType};
use crate::filter::DomainFilter;
use crate::plan::Changes;
use http_body_util::Full;
use hyper::Method;
use hyper::body::Bytes;
use quick_xml::escape::{escape, unescape};
use serde::Deserialize;
use signpost_model::BoxFuture;
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

const PROVIDER: &str = "aws";
/// Route 53's endpoint outside China and GovCloud.
pub const DEFAULT_ENDPOINT: &str = "https://route53.amazonaws.com";
/// TTL of records that configure none, and of alias records as read back.
pub const DEFAULT_TTL: u32 = 300;
/// Route 53 signs in us-east-1 whatever the caller's region (it is global).
const SIGNING_REGION: &str = "us-east-1";
const API: &str = "/2013-04-01";
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
/// Route 53 answers at most 300 record sets per page.
const PAGE_SIZE: u32 = 300;

/// Access keys, with where they came from (for the start-up log line).
#[derive(Clone)]
pub struct AwsCredentials {
    /// `AWS_ACCESS_KEY_ID` or the Secret's `aws-access-key-id`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY` or the Secret's `aws-secret-access-key` (secret).
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials (secret).
    pub session_token: Option<String>,
    /// Where they were read: "the environment", a file path, ...
    pub source: String,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"******")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "******"),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// Which hosted zones `--aws-zone-type` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneType {
    /// Every zone (the flag empty).
    Any,
    /// Public zones only.
    Public,
    /// Private (VPC) zones only.
    Private,
}

/// The provider's settings.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The API's base URL: `AWS_ENDPOINT_URL_ROUTE_53`, `AWS_ENDPOINT_URL`
    /// or [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    /// The access keys.
    pub credentials: AwsCredentials,
    /// `--aws-zone-type`.
    pub zone_type: ZoneType,
    /// `--zone-id-filter`: zone ids, matched as suffixes.
    pub zone_ids: Vec<String>,
    /// `--aws-batch-change-size`: changes per request.
    pub batch_changes: usize,
    /// `--aws-batch-change-size-bytes`: characters of values per request.
    pub batch_bytes: usize,
    /// `--aws-batch-change-size-values`: values per request.
    pub batch_values: usize,
    /// `--aws-batch-change-interval`: pause between requests.
    pub batch_interval: Duration,
    /// `--aws-evaluate-target-health`: the alias default.
    pub evaluate_target_health: bool,
    /// `--aws-api-retries`.
    pub api_retries: u32,
    /// `--aws-prefer-cname`: never turn CNAMEs into aliases.
    pub prefer_cname: bool,
    /// The user's domain filter: only matching zones are read.
    pub domain_filter: DomainFilter,
    /// `--tls-ca` and friends, for an `https://` endpoint override.
    pub tls: TlsFiles,
}

/// A hosted zone.
#[derive(Debug, Clone)]
struct Zone {
    /// Without the `/hostedzone/` prefix.
    id: String,
    /// Lower case, no trailing dot.
    name: String,
    private: bool,
}

/// The Route 53 provider.
pub struct Aws {
    config: AwsConfig,
    http: HttpClient,
    identity: aws_smithy_runtime_api::client::identity::Identity,
    /// The zones of the last listing.
    zones: Mutex<Vec<Zone>>,
}

impl fmt::Debug for Aws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aws")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// Response shapes (Route 53 API reference, 2013-04-01). Unknown elements are
// ignored, as the SDKs do.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListHostedZonesResponse {
    hosted_zones: HostedZones,
    is_truncated: bool,
    next_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HostedZones {
    #[serde(rename = "HostedZone", default)]
    zones: Vec<HostedZone>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostedZone {
    id: String,
    name: String,
    config: Option<HostedZoneConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostedZoneConfig {
    #[serde(default)]
    private_zone: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRecordSetsResponse {
    resource_record_sets: RecordSets,
    is_truncated: bool,
    next_record_name: Option<String>,
    next_record_type: Option<String>,
    next_record_identifier: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RecordSets {
    #[serde(rename = "ResourceRecordSet", default)]
    sets: Vec<RecordSet>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordSet {
    name: String,
    #[serde(rename = "Type")]
    record_type: String,
    set_identifier: Option<String>,
    weight: Option<u64>,
    region: Option<String>,
    failover: Option<String>,
    multi_value_answer: Option<bool>,
    geo_location: Option<GeoLocation>,
    #[serde(rename = "TTL")]
    ttl: Option<u32>,
    resource_records: Option<ResourceRecords>,
    alias_target: Option<AliasTarget>,
    health_check_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GeoLocation {
    continent_code: Option<String>,
    country_code: Option<String>,
    subdivision_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResourceRecords {
    #[serde(rename = "ResourceRecord", default)]
    records: Vec<ResourceRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceRecord {
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasTarget {
    #[serde(rename = "DNSName")]
    dns_name: String,
    #[serde(default)]
    evaluate_target_health: bool,
}

/// One change of a ChangeBatch, rendered.
#[derive(Debug, Clone)]
struct Change {
    action: &'static str,
    /// Sort key inside a batch: (action rank, name, type).
    order: (u8, String, &'static str),
    /// Batch group: the record's name (its TXT's `ownedRecord`) and set id.
    group: String,
    /// `<ResourceRecordSet>...</ResourceRecordSet>`.
    xml: String,
    /// ResourceRecord elements, doubled for UPSERT.
    values: usize,
    /// Characters of values, doubled for UPSERT.
    chars: usize,
}

// === impl Aws ===

impl Aws {
    /// A provider for `config`.
    pub fn new(config: AwsConfig) -> Result<Self, String> {
        let http = HttpClient::new(
            PROVIDER,
            "AWS_ENDPOINT_URL_ROUTE_53",
            &config.endpoint,
            &config.tls,
        )?;
        let credentials = aws_credential_types::Credentials::new(
            config.credentials.access_key_id.clone(),
            config.credentials.secret_access_key.clone(),
            config.credentials.session_token.clone(),
            None,
            "signpost",
        );
        Ok(Self {
            config,
            http,
            identity: credentials.into(),
            zones: Mutex::new(Vec::new()),
        })
    }

    fn secrets(&self) -> Vec<&str> {
        let mut secrets = vec![self.config.credentials.secret_access_key.as_str()];
        if let Some(token) = &self.config.credentials.session_token {
            secrets.push(token);
        }
        secrets
    }

    fn error(&self, kind: ErrorKind, path: &str, detail: String) -> ProviderError {
        let endpoint = format!(
            "{}{}",
            self.http.base(),
            path.split('?').next().unwrap_or("")
        );
        let detail = redact(&detail, &self.secrets());
        match kind {
            ErrorKind::Server => ProviderError::Server {
                provider: PROVIDER,
                endpoint,
                detail,
            },
            ErrorKind::Unauthorized => ProviderError::Unauthorized {
                provider: PROVIDER,
                endpoint,
                detail,
            },
            ErrorKind::Rejected => ProviderError::Rejected {
                provider: PROVIDER,
                endpoint,
                detail,
            },
        }
    }

    /// One signed request: the body of a 2xx answer, or a classified error.
    async fn request_once(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Bytes, ProviderError> {
        let url = format!("{}{path}", self.http.base());
        let mut request = self
            .http
            .builder(method, path)
            .header(hyper::header::CONTENT_TYPE, "text/xml")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| {
                self.error(
                    ErrorKind::Rejected,
                    path,
                    format!("building the request: {e}"),
                )
            })?;
        self.sign(&mut request, &url, body)
            .map_err(|e| self.error(ErrorKind::Rejected, path, format!("signing: {e}")))?;
        let response = self.http.send(request).await?;
        if response.status.is_success() {
            return Ok(response.body);
        }
        let status = response.status.as_u16();
        let code = xml_text(&response.body, "Code").unwrap_or_default();
        let message = xml_text(&response.body, "Message")
            .unwrap_or_else(|| quote(&response.body, &self.secrets()));
        let detail = format!("HTTP {status} {code}: {message}");
        // Route 53 API reference, "Common Errors" and ChangeResourceRecordSets:
        // Throttling and PriorRequestNotComplete (both HTTP 400) mean "later".
        let kind = match (status, code.as_str()) {
            (429, _) | (_, "Throttling" | "ThrottlingException" | "PriorRequestNotComplete") => {
                ErrorKind::Server
            }
            (401 | 403, _)
            | (
                _,
                "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "UnrecognizedClientException",
            ) => ErrorKind::Unauthorized,
            (500.., _) => ErrorKind::Server,
            _ => ErrorKind::Rejected,
        };
        Err(self.error(kind, path, detail))
    }

    /// SigV4 (AWS General Reference, "Signature Version 4 signing process"):
    /// the canonical request over method, path, query, host and body hash.
    fn sign(
        &self,
        request: &mut hyper::Request<Full<Bytes>>,
        url: &str,
        body: &[u8],
    ) -> Result<(), String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(SIGNING_REGION)
            .name("route53")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }

    /// A request with retries and exponential backoff.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Bytes, ProviderError> {
        let mut attempt = 0;
        loop {
            let error = match self.request_once(&method, path, body).await {
                Ok(body) => return Ok(body),
                Err(error) => error,
            };
            if !error.is_retryable() || attempt >= self.config.api_retries {
                return Err(error);
            }
            let pause = Duration::from_millis(250 << attempt.min(6));
            tracing::warn!(error = %error, retry_in = ?pause, "Route 53 request failed; retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn bad_xml(&self, path: &str, error: &quick_xml::DeError) -> ProviderError {
        self.error(
            ErrorKind::Server,
            path,
            format!("unexpected answer: {error}"),
        )
    }

    /// Every hosted zone passing the filters.
    async fn list_zones(&self) -> Result<Vec<Zone>, ProviderError> {
        let mut zones = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(marker) => format!("{API}/hostedzone?marker={}", query_escape(marker)),
                None => format!("{API}/hostedzone"),
            };
            let body = self.request(Method::GET, &path, &[]).await?;
            let page: ListHostedZonesResponse =
                quick_xml::de::from_reader(body.as_ref()).map_err(|e| self.bad_xml(&path, &e))?;
            for zone in page.hosted_zones.zones {
                let zone = Zone {
                    id: zone.id.trim_start_matches("/hostedzone/").to_owned(),
                    name: unescape_name(&zone.name)
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                    private: zone.config.is_some_and(|c| c.private_zone),
                };
                let type_ok = match self.config.zone_type {
                    ZoneType::Any => true,
                    ZoneType::Public => !zone.private,
                    ZoneType::Private => zone.private,
                };
                let id_ok = self.config.zone_ids.is_empty()
                    || self
                        .config
                        .zone_ids
                        .iter()
                        .any(|id| zone.id.ends_with(id.trim_start_matches("/hostedzone/")));
                if type_ok && id_ok && self.config.domain_filter.matches(&zone.name) {
                    zones.push(zone);
                }
            }
            match page.next_marker.filter(|_| page.is_truncated) {
                Some(next) => marker = Some(next),
                None => break,
            }
        }
        for zone in &zones {
            tracing::debug!(id = %zone.id, name = %zone.name, private = zone.private, "considering hosted zone");
        }
        Ok(zones)
    }

    async fn list(&self) -> Result<Vec<Endpoint>, ProviderError> {
        let zones = self.list_zones().await?;
        let mut out = Vec::new();
        for zone in &zones {
            let mut next: Option<(String, String, Option<String>)> = None;
            loop {
                let mut path = format!("{API}/hostedzone/{}/rrset?maxitems={PAGE_SIZE}", zone.id);
                if let Some((name, record_type, identifier)) = &next {
                    let _ = write!(
                        path,
                        "&name={}&type={}",
                        query_escape(name),
                        query_escape(record_type)
                    );
                    if let Some(identifier) = identifier {
                        let _ = write!(path, "&identifier={}", query_escape(identifier));
                    }
                }
                let body = self.request(Method::GET, &path, &[]).await?;
                let page = record_sets_page(&body).map_err(|e| self.bad_xml(&path, &e))?;
                out.extend(page.endpoints);
                match page.next {
                    Some(position) => next = Some(position),
                    None => break,
                }
            }
        }
        *self.zones.lock().unwrap_or_else(PoisonError::into_inner) = zones;
        Ok(out)
    }

    /// The zones a change to `name` goes to: the longest matching public
    /// zone and every matching private zone (external-dns v0.22).
    fn zones_for(&self, endpoint: &Endpoint) -> Vec<Zone> {
        let zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = endpoint.property("aws/hosted-zone-id") {
            return zones
                .iter()
                .filter(|z| z.id == id.trim_start_matches("/hostedzone/"))
                .cloned()
                .collect();
        }
        let name = endpoint.dns_name.trim_end_matches('.').to_ascii_lowercase();
        let matching =
            |zone: &&Zone| name == zone.name || name.ends_with(&format!(".{}", zone.name));
        let mut out: Vec<Zone> = zones
            .iter()
            .filter(|z| z.private)
            .filter(matching)
            .cloned()
            .collect();
        if let Some(public) = zones
            .iter()
            .filter(|z| !z.private)
            .filter(matching)
            .max_by_key(|z| z.name.len())
        {
            out.push(public.clone());
        }
        out
    }

    /// Renders one change.
    fn change(&self, action: &'static str, endpoint: &Endpoint, zone: &Zone) -> Change {
        let (xml, values, chars) = record_set_xml(endpoint, zone);
        let factor = if action == "UPSERT" { 2 } else { 1 };
        let rank = match action {
            "DELETE" => 0,
            "UPSERT" => 1,
            _ => 2,
        };
        let group_name = endpoint
            .labels
            .get(OWNED_RECORD_LABEL)
            .filter(|_| endpoint.record_type == RecordType::Txt)
            .unwrap_or(&endpoint.dns_name)
            .to_ascii_lowercase();
        Change {
            action,
            order: (
                rank,
                endpoint.dns_name.to_ascii_lowercase(),
                endpoint.record_type.as_str(),
            ),
            group: format!("{group_name}\0{}", endpoint.set_identifier),
            xml,
            values: values * factor,
            chars: chars * factor,
        }
    }

    /// Every change by zone id.
    fn changes_by_zone(&self, changes: &Changes) -> BTreeMap<String, Vec<Change>> {
        let mut by_zone: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        let mut add = |action: &'static str, endpoint: &Endpoint| {
            let zones = self.zones_for(endpoint);
            if zones.is_empty() {
                tracing::warn!(name = %endpoint.dns_name, "no hosted zone holds this name; skipped");
            }
            for zone in zones {
                let change = self.change(action, endpoint, &zone);
                by_zone.entry(zone.id).or_default().push(change);
            }
        };
        for group in grouped(&changes.create) {
            for endpoint in group {
                add("CREATE", endpoint);
            }
        }
        for (old, new) in changes.update_old.iter().zip(&changes.update_new) {
            if needs_recreate(old, new) {
                add("DELETE", old);
                add("CREATE", new);
            } else {
                add("UPSERT", new);
            }
        }
        for endpoint in &changes.delete {
            add("DELETE", endpoint);
        }
        by_zone
    }

    /// Cuts one zone's changes into batches within the limits.
    fn batches(&self, zone: &str, mut changes: Vec<Change>) -> Vec<Vec<Change>> {
        let limits = (
            self.config.batch_changes,
            self.config.batch_values,
            self.config.batch_bytes,
        );
        let size = |changes: &[Change]| {
            (
                changes.len(),
                changes.iter().map(|c| c.values).sum::<usize>(),
                changes.iter().map(|c| c.chars).sum::<usize>(),
            )
        };
        let fits =
            |(n, v, b): (usize, usize, usize)| n <= limits.0 && v <= limits.1 && b <= limits.2;
        if fits(size(&changes)) {
            changes.sort_by(|a, b| a.order.cmp(&b.order));
            return vec![changes];
        }
        let mut groups: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for change in changes {
            groups.entry(change.group.clone()).or_default().push(change);
        }
        let mut batches: Vec<Vec<Change>> = Vec::new();
        let mut current: Vec<Change> = Vec::new();
        for (key, group) in groups {
            if !fits(size(&group)) {
                tracing::warn!(zone, record = %key.split('\0').next().unwrap_or(""), "these changes exceed one Route 53 batch on their own; skipped");
                continue;
            }
            let mut candidate = current.clone();
            candidate.extend(group.iter().cloned());
            if fits(size(&candidate)) {
                current = candidate;
            } else {
                batches.push(std::mem::replace(&mut current, group));
            }
        }
        if !current.is_empty() {
            batches.push(current);
        }
        for batch in &mut batches {
            batch.sort_by(|a, b| a.order.cmp(&b.order));
        }
        batches
    }

    async fn submit(&self, zone: &str, batch: &[Change]) -> Result<(), ProviderError> {
        let mut body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest xmlns=\"{XMLNS}\"><ChangeBatch><Changes>"
        );
        for change in batch {
            let _ = write!(
                body,
                "<Change><Action>{}</Action>{}</Change>",
                change.action, change.xml
            );
        }
        body.push_str("</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
        let path = format!("{API}/hostedzone/{zone}/rrset");
        self.request(Method::POST, &path, body.as_bytes())
            .await
            .map(drop)
    }

    async fn apply(&self, changes: &Changes) -> Result<(), ProviderError> {
        if self
            .zones
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
        {
            self.list().await?;
        }
        let mut failures: Vec<ProviderError> = Vec::new();
        let mut total = 0;
        let mut first_batch = true;
        for (zone, changes) in self.changes_by_zone(changes) {
            for batch in self.batches(&zone, changes) {
                if !first_batch && !self.config.batch_interval.is_zero() {
                    tokio::time::sleep(self.config.batch_interval).await;
                }
                first_batch = false;
                total += 1;
                tracing::info!(zone = %zone, changes = batch.len(), "submitting a Route 53 change batch");
                match self.submit(&zone, &batch).await {
                    Ok(()) => {}
                    Err(error) if error.is_retryable() => failures.push(error),
                    Err(error) => {
                        // One bad record must not hold back the rest: group by group.
                        tracing::warn!(error = %error, "Route 53 rejected a batch; retrying it record by record");
                        let mut groups: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
                        for change in &batch {
                            groups
                                .entry(change.group.as_str())
                                .or_default()
                                .push(change.clone());
                        }
                        if groups.len() == 1 {
                            failures.push(error);
                            continue;
                        }
                        for (_, mut group) in groups {
                            group.sort_by(|a, b| a.order.cmp(&b.order));
                            total += 1;
                            if let Err(error) = self.submit(&zone, &group).await {
                                tracing::warn!(error = %error, "Route 53 rejected a change");
                                failures.push(error);
                            }
                        }
                    }
                }
            }
        }
        match failures.len() {
            0 => Ok(()),
            1 if total == 1 => Err(failures.remove(0)),
            failed => Err(ProviderError::Partial {
                provider: PROVIDER,
                failed,
                total,
                first: Box::new(failures.remove(0)),
            }),
        }
    }

    /// external-dns v0.22 `AdjustEndpoints` for Route 53 (notes §7.5).
    fn adjust(&self, desired: Vec<Endpoint>) -> Vec<Endpoint> {
        let mut out = Vec::with_capacity(desired.len());
        for mut endpoint in desired {
            match endpoint.record_type {
                RecordType::Cname => {
                    let alias = match endpoint.property("alias") {
                        Some(value) => value.to_owned(),
                        None => {
                            let canonical = !self.config.prefer_cname
                                && endpoint
                                    .targets
                                    .first()
                                    .is_some_and(|t| canonical_hosted_zone(t).is_some());
                            if canonical { "true" } else { "false" }.to_owned()
                        }
                    };
                    match alias.as_str() {
                        "true" | "A" | "AAAA" => {
                            endpoint.ttl = DEFAULT_TTL;
                            let evaluate = endpoint
                                .property("aws/evaluate-target-health")
                                .map(str::to_owned)
                                .unwrap_or_else(|| self.config.evaluate_target_health.to_string());
                            endpoint.set_property("aws/evaluate-target-health", &evaluate);
                            endpoint.set_property("alias", "true");
                            let mut a = endpoint.clone();
                            a.record_type = RecordType::A;
                            let mut aaaa = endpoint;
                            aaaa.record_type = RecordType::Aaaa;
                            match alias.as_str() {
                                "A" => out.push(a),
                                "AAAA" => out.push(aaaa),
                                _ => {
                                    out.push(a);
                                    out.push(aaaa);
                                }
                            }
                        }
                        _ => {
                            endpoint.set_property("alias", "false");
                            endpoint
                                .provider_specific
                                .retain(|(n, _)| n != "aws/evaluate-target-health");
                            out.push(endpoint);
                        }
                    }
                }
                RecordType::A | RecordType::Aaaa if endpoint.property("alias") == Some("true") => {
                    endpoint.ttl = DEFAULT_TTL;
                    if endpoint.property("aws/evaluate-target-health").is_none() {
                        let evaluate = self.config.evaluate_target_health.to_string();
                        endpoint.set_property("aws/evaluate-target-health", &evaluate);
                    }
                    out.push(endpoint);
                }
                _ => {
                    endpoint
                        .provider_specific
                        .retain(|(n, _)| n != "alias" && n != "aws/evaluate-target-health");
                    out.push(endpoint);
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum ErrorKind {
    Server,
    Unauthorized,
    Rejected,
}

/// Whether an update must be a DELETE and a CREATE rather than an UPSERT:
/// Route 53 cannot change a set's type, alias-ness, set identifier or
/// routing policy in place.
fn needs_recreate(old: &Endpoint, new: &Endpoint) -> bool {
    let alias = |e: &Endpoint| e.property("alias") == Some("true");
    let routing = |e: &Endpoint| {
        [
            "aws/weight",
            "aws/region",
            "aws/failover",
            "aws/multi-value-answer",
            "aws/geolocation-continent-code",
            "aws/geolocation-country-code",
            "aws/geolocation-subdivision-code",
        ]
        .into_iter()
        .find(|p| e.property(p).is_some())
    };
    old.record_type != new.record_type
        || alias(old) != alias(new)
        || old.set_identifier != new.set_identifier
        || routing(old) != routing(new)
}

/// One page of `ListResourceRecordSets`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSetsPage {
    /// The record sets external-dns manages, as endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Where the next page starts (name, type, set identifier) when the
    /// answer says it is truncated and names a next record.
    pub next: Option<(String, String, Option<String>)>,
}

/// Reads one `ListResourceRecordSetsResponse` body: a pure function of
/// the bytes Route 53 sent (fuzzed by `fuzz/fuzz_targets/provider_responses.rs`).
pub fn record_sets_page(body: &[u8]) -> Result<RecordSetsPage, quick_xml::DeError> {
    let page: ListRecordSetsResponse = quick_xml::de::from_reader(body)?;
    let next = match (
        page.is_truncated,
        page.next_record_name,
        page.next_record_type,
    ) {
        (true, Some(name), Some(record_type)) => {
            Some((name, record_type, page.next_record_identifier))
        }
        _ => None,
    };
    Ok(RecordSetsPage {
        endpoints: page
            .resource_record_sets
            .sets
            .into_iter()
            .filter_map(endpoint_of)
            .collect(),
        next,
    })
}

/// A Route 53 record set as an endpoint; `None` for types external-dns
/// does not manage (SOA, SPF, CAA, ...).
fn endpoint_of(set: RecordSet) -> Option<Endpoint> {
    let record_type: RecordType = set.record_type.parse().ok()?;
    let name = unescape_name(&set.name);
    let mut endpoint = if let Some(alias) = &set.alias_target {
        if !matches!(record_type, RecordType::A | RecordType::Aaaa) {
            return None;
        }
        let mut endpoint = Endpoint::new(&name, record_type, vec![alias.dns_name.clone()])
            .with_ttl(set.ttl.filter(|t| *t > 0).unwrap_or(DEFAULT_TTL));
        endpoint.set_property("alias", "true");
        endpoint.set_property(
            "aws/evaluate-target-health",
            if alias.evaluate_target_health {
                "true"
            } else {
                "false"
            },
        );
        endpoint
    } else {
        let targets: Vec<String> = set
            .resource_records
            .map(|r| r.records.into_iter().map(|r| r.value).collect())
            .unwrap_or_default();
        if targets.is_empty() {
            return None;
        }
        let mut endpoint =
            Endpoint::new(&name, record_type, targets).with_ttl(set.ttl.unwrap_or(0));
        if record_type == RecordType::Cname {
            endpoint.set_property("alias", "false");
        }
        endpoint
    };
    if let Some(identifier) = &set.set_identifier {
        endpoint.set_identifier.clone_from(identifier);
        if let Some(weight) = set.weight {
            endpoint.set_property("aws/weight", &weight.to_string());
        } else if let Some(region) = &set.region {
            endpoint.set_property("aws/region", region);
        } else if let Some(failover) = &set.failover {
            endpoint.set_property("aws/failover", failover);
        } else if set.multi_value_answer == Some(true) {
            endpoint.set_property("aws/multi-value-answer", "");
        } else if let Some(geo) = &set.geo_location {
            if let Some(code) = &geo.continent_code {
                endpoint.set_property("aws/geolocation-continent-code", code);
            } else {
                if let Some(code) = &geo.country_code {
                    endpoint.set_property("aws/geolocation-country-code", code);
                }
                if let Some(code) = &geo.subdivision_code {
                    endpoint.set_property("aws/geolocation-subdivision-code", code);
                }
            }
        }
    }
    if let Some(id) = &set.health_check_id {
        endpoint.set_property("aws/health-check-id", id);
    }
    Some(endpoint)
}

/// `<ResourceRecordSet>` for `endpoint` in `zone`: the XML, the number of
/// values and their characters.
fn record_set_xml(endpoint: &Endpoint, zone: &Zone) -> (String, usize, usize) {
    let name = format!("{}.", endpoint.dns_name.trim_end_matches('.'));
    let mut xml = format!(
        "<ResourceRecordSet><Name>{}</Name><Type>{}</Type>",
        escape(&name),
        endpoint.record_type.as_str()
    );
    if !endpoint.set_identifier.is_empty() {
        let _ = write!(
            xml,
            "<SetIdentifier>{}</SetIdentifier>",
            escape(&endpoint.set_identifier)
        );
        routing_xml(endpoint, &mut xml);
    }
    let alias = matches!(endpoint.record_type, RecordType::A | RecordType::Aaaa)
        && endpoint.property("alias") == Some("true");
    let (values, chars) = if alias {
        let target = endpoint.targets.first().map_or("", String::as_str);
        let hosted_zone = endpoint
            .property("aws/target-hosted-zone")
            .map(str::to_owned)
            .or_else(|| canonical_hosted_zone(target).map(str::to_owned))
            .unwrap_or_else(|| zone.id.clone());
        let evaluate = endpoint.property("aws/evaluate-target-health") == Some("true");
        let _ = write!(
            xml,
            "<AliasTarget><HostedZoneId>{}</HostedZoneId><DNSName>{}</DNSName><EvaluateTargetHealth>{evaluate}</EvaluateTargetHealth></AliasTarget>",
            escape(&hosted_zone),
            escape(target)
        );
        (1, target.len())
    } else {
        let ttl = if endpoint.ttl > 0 {
            endpoint.ttl
        } else {
            DEFAULT_TTL
        };
        let _ = write!(xml, "<TTL>{ttl}</TTL><ResourceRecords>");
        let dotted = matches!(
            endpoint.record_type,
            RecordType::Cname | RecordType::Ns | RecordType::Ptr
        );
        let mut chars = 0;
        for target in &endpoint.targets {
            let value = if dotted && !target.ends_with('.') {
                format!("{target}.")
            } else {
                target.clone()
            };
            chars += value.len();
            let _ = write!(
                xml,
                "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                escape(&value)
            );
        }
        xml.push_str("</ResourceRecords>");
        (endpoint.targets.len(), chars)
    };
    if let Some(id) = endpoint.property("aws/health-check-id") {
        let _ = write!(xml, "<HealthCheckId>{}</HealthCheckId>", escape(id));
    }
    xml.push_str("</ResourceRecordSet>");
    (xml, values, chars)
}

/// The routing policy elements of a set with an identifier.
fn routing_xml(endpoint: &Endpoint, xml: &mut String) {
    if let Some(weight) = endpoint.property("aws/weight") {
        let weight: u64 = weight.parse().unwrap_or(0);
        let _ = write!(xml, "<Weight>{weight}</Weight>");
    } else if let Some(region) = endpoint.property("aws/region") {
        let _ = write!(xml, "<Region>{}</Region>", escape(region));
    } else if let Some(failover) = endpoint.property("aws/failover") {
        let _ = write!(xml, "<Failover>{}</Failover>", escape(failover));
    } else if endpoint.property("aws/multi-value-answer").is_some() {
        xml.push_str("<MultiValueAnswer>true</MultiValueAnswer>");
    } else {
        let continent = endpoint.property("aws/geolocation-continent-code");
        let country = endpoint.property("aws/geolocation-country-code");
        let subdivision = endpoint.property("aws/geolocation-subdivision-code");
        if continent.is_some() || country.is_some() {
            xml.push_str("<GeoLocation>");
            if let Some(code) = continent {
                let _ = write!(xml, "<ContinentCode>{}</ContinentCode>", escape(code));
            } else {
                if let Some(code) = country {
                    let _ = write!(xml, "<CountryCode>{}</CountryCode>", escape(code));
                }
                if let Some(code) = subdivision {
                    let _ = write!(xml, "<SubdivisionCode>{}</SubdivisionCode>", escape(code));
                }
            }
            xml.push_str("</GeoLocation>");
        }
    }
}

/// Route 53 writes some characters of names as `\ooo` octal escapes (its
/// developer guide, "DNS domain name format"), a wildcard as `\052`.
fn unescape_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Three octal digits name one octet: `\000` to `\377`; anything
        // above (`\400` to `\777`) is not an escape and stays as written.
        let octet = (bytes[i] == b'\\')
            .then(|| bytes.get(i + 1..i + 4))
            .flatten()
            .filter(|digits| digits.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| {
                u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0')
            })
            .and_then(|value| u8::try_from(value).ok());
        if let Some(octet) = octet {
            out.push(octet);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text of the first `<tag>` element of an XML body (an error answer's
/// `Code` or `Message`).
pub fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(
        unescape(&text[start..end])
            .map(|t| t.into_owned())
            .unwrap_or_else(|_| text[start..end].to_owned()),
    )
}

/// The canonical hosted zone of an AWS service's host name (AWS General
/// Reference, "Elastic Load Balancing endpoints and quotas", CloudFront and
/// Global Accelerator): the zone an alias to it names.
fn canonical_hosted_zone(host: &str) -> Option<&'static str> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    CANONICAL_HOSTED_ZONES
        .iter()
        .find(|(suffix, _)| host.ends_with(&format!(".{suffix}")) || host == *suffix)
        .map(|(_, zone)| *zone)
}

/// Suffix → hosted zone id, from AWS's published endpoint tables.
const CANONICAL_HOSTED_ZONES: &[(&str, &str)] = &[
    // Application and Classic Load Balancers.
    ("us-east-2.elb.amazonaws.com", "Z3AADJGX6KTTL2"),
    ("us-east-1.elb.amazonaws.com", "Z35SXDOTRQ7X7K"),
    ("us-west-1.elb.amazonaws.com", "Z368ELLRRE2KJ0"),
    ("us-west-2.elb.amazonaws.com", "Z1H1FL5HABSF5"),
    ("ca-central-1.elb.amazonaws.com", "ZQSVJUPU6J1EY"),
    ("ap-east-1.elb.amazonaws.com", "Z3DQVH9N71FHZ0"),
    ("ap-south-1.elb.amazonaws.com", "ZP97RAFLXTNZK"),
    ("ap-northeast-2.elb.amazonaws.com", "ZWKZPGTI48KDX"),
    ("ap-northeast-3.elb.amazonaws.com", "Z5LXEXXYW11ES"),
    ("ap-southeast-1.elb.amazonaws.com", "Z1LMS91P8CMLE5"),
    ("ap-southeast-2.elb.amazonaws.com", "Z1GM3OXH4ZPM65"),
    ("ap-northeast-1.elb.amazonaws.com", "Z14GRHDCWA56QT"),
    ("eu-central-1.elb.amazonaws.com", "Z215JYRZR1TBD5"),
    ("eu-west-1.elb.amazonaws.com", "Z32O12XQLNTSW2"),
    ("eu-west-2.elb.amazonaws.com", "ZHURV8PSTC4K8"),
    ("eu-west-3.elb.amazonaws.com", "Z3Q77PNBQS71R4"),
    ("eu-north-1.elb.amazonaws.com", "Z23TAZ6LKFMNIO"),
    ("eu-south-1.elb.amazonaws.com", "Z3ULH7SSC9OV64"),
    ("sa-east-1.elb.amazonaws.com", "Z2P70J7HTTTPLU"),
    ("cn-north-1.elb.amazonaws.com.cn", "Z1GDH35T77C1KE"),
    ("cn-northwest-1.elb.amazonaws.com.cn", "ZM7IZAIOVVDZF"),
    ("us-gov-west-1.elb.amazonaws.com", "Z33AYJ8TM3BH4J"),
    ("us-gov-east-1.elb.amazonaws.com", "Z166TLBEWOO7G0"),
    ("me-south-1.elb.amazonaws.com", "ZS929ML54UICD"),
    ("af-south-1.elb.amazonaws.com", "Z268VQBMOI5EKX"),
    // Network Load Balancers.
    ("elb.us-east-2.amazonaws.com", "ZLMOA37VPKANP"),
    ("elb.us-east-1.amazonaws.com", "Z26RNL4JYFTOTI"),
    ("elb.us-west-1.amazonaws.com", "Z24FKFUX50B4VW"),
    ("elb.us-west-2.amazonaws.com", "Z18D5FSROUN65G"),
    ("elb.ca-central-1.amazonaws.com", "Z2EPGBW3API2WT"),
    ("elb.ap-east-1.amazonaws.com", "Z12Y7K3UBGUAD1"),
    ("elb.ap-south-1.amazonaws.com", "ZVDDRBQ08TROA"),
    ("elb.ap-northeast-2.amazonaws.com", "ZIBE1TIR4HY56"),
    ("elb.ap-southeast-1.amazonaws.com", "ZKVM4W9LS7TM"),
    ("elb.ap-southeast-2.amazonaws.com", "ZCT6FZBF4DROD"),
    ("elb.ap-northeast-1.amazonaws.com", "Z31USIVHYNEOWT"),
    ("elb.eu-central-1.amazonaws.com", "Z3F0SRJ5LGBH90"),
    ("elb.eu-west-1.amazonaws.com", "Z2IFOLAFXWLO4F"),
    ("elb.eu-west-2.amazonaws.com", "ZD4D7Y8KGAS4G"),
    ("elb.eu-west-3.amazonaws.com", "Z1CMS0P5QUZ6D5"),
    ("elb.eu-north-1.amazonaws.com", "Z1UDT6IFJ4EJM"),
    ("elb.eu-south-1.amazonaws.com", "Z23146JA1KNAFP"),
    ("elb.sa-east-1.amazonaws.com", "ZTK26PT1VY4CU"),
    ("elb.cn-north-1.amazonaws.com.cn", "Z3QFB96KMJ7ED6"),
    ("elb.cn-northwest-1.amazonaws.com.cn", "ZQEIKTCZ8352D"),
    ("elb.us-gov-west-1.amazonaws.com", "ZMG1MZ2THAWF1"),
    ("elb.us-gov-east-1.amazonaws.com", "Z1ZSMQQ6Q24QQ8"),
    ("elb.me-south-1.amazonaws.com", "Z3QSRYVP46NYYV"),
    ("elb.af-south-1.amazonaws.com", "Z203XCE67M25HM"),
    // Global Accelerator and CloudFront.
    ("awsglobalaccelerator.com", "Z2BJ6XQ5FK7U4H"),
    ("cloudfront.net", "Z2FDTNDATAQYW2"),
];

impl Provider for Aws {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn records(&self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>> {
        Box::pin(self.list())
    }

    fn apply_changes<'a>(
        &'a self,
        changes: &'a Changes,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.apply(changes))
    }

    fn adjust_endpoints(&self, desired: Vec<Endpoint>) -> Vec<Endpoint> {
        self.adjust(desired)
    }

    fn zone_filter(&self) -> Option<DomainFilter> {
        let zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        let names: Vec<String> = zones.iter().map(|z| z.name.clone()).collect();
        Some(DomainFilter::new(&names, &[]))
    }
}

#[cfg(test)]
mod tests;
