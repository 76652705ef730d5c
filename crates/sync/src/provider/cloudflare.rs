//! `--provider=cloudflare`: Cloudflare's DNS API (v4) with an API token.
//!
//! Control plane. Requests (Cloudflare API reference, notes §7.8):
//!
//! ```text
//! GET  {base}/zones?page=N&per_page=50                        zones, paged; the domain filter and --zone-id-filter narrow them
//! GET  {base}/zones/{id}/dns_records?page=N&per_page=P        records, paged by --cloudflare-dns-records-per-page
//! POST {base}/zones/{id}/dns_records/batch                    {"deletes", "puts", "posts"}: one transaction
//! ```
//!
//! Cloudflare keeps one record per (name, type, content); an endpoint is all
//! records of its name and type. A change becomes per-target operations
//! (removed targets deleted, kept ones overwritten, new ones created) sent
//! through the batch endpoint, which Cloudflare applies all or nothing; a
//! record's operations and its ownership TXT's always share a batch, batches
//! hold at most `--batch-change-size` operations. `--cloudflare-proxied` sets
//! the default of the `cloudflare-proxied` annotation; only A, AAAA and
//! CNAME can be proxied, and a proxied record's TTL is automatic (1). HTTP
//! 429 is retried after its `Retry-After` (at most 10 s), 5xx and transport
//! failures after 250 ms, 500 ms, 1 s.
//!
//! Invariant: the API token is sent only in the `Authorization` header; it
//! is in no error, log line or `Debug` output.

use super::http::{HttpClient, TlsFiles, quote, redact};
use super::{Provider, ProviderError};
use crate::endpoint::{Endpoint, OWNED_RECORD_LABEL, RecordType};
use crate::filter::DomainFilter;
use crate::plan::Changes;
use http_body_util::Full;
use hyper::Method;
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use signpost_model::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const PROVIDER: &str = "cloudflare";
/// The public API's base URL.
pub const DEFAULT_ENDPOINT: &str = "https://api.cloudflare.com/client/v4";
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The provider's settings.
#[derive(Clone)]
pub struct CloudflareConfig {
    /// The API base URL (`CF_API_BASE_URL`, else [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// The API token (secret).
    pub token: String,
    /// Where the token was read (for the start-up log).
    pub token_source: String,
    /// `--cloudflare-proxied`: the default when no annotation says.
    pub proxied: bool,
    /// The property the annotation becomes (`<prefix>cloudflare-proxied`).
    pub proxied_property: String,
    /// `--cloudflare-dns-records-per-page`.
    pub per_page: usize,
    /// `--batch-change-size`: operations per batch.
    pub batch_size: usize,
    /// `--zone-id-filter`.
    pub zone_ids: Vec<String>,
    /// The user's domain filter: only matching zones are read.
    pub domain_filter: DomainFilter,
    /// `--tls-ca` and friends, for an `https://` override.
    pub tls: TlsFiles,
}

impl fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &"******")
            .field("token_source", &self.token_source)
            .field("proxied", &self.proxied)
            .field("per_page", &self.per_page)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Zone {
    id: String,
    name: String,
}

/// The Cloudflare provider.
pub struct Cloudflare {
    config: CloudflareConfig,
    http: HttpClient,
    zones: Mutex<Vec<Zone>>,
    /// (lower-case name, type, content) → record id, from the last listing.
    ids: Mutex<HashMap<(String, String, String), String>>,
}

impl fmt::Debug for Cloudflare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cloudflare")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    #[serde(default)]
    page: usize,
    #[serde(default)]
    total_pages: usize,
}

/// A zone as `GET /zones` lists it.
#[derive(Debug, Deserialize)]
pub struct ZoneSummary {
    id: String,
    name: String,
}

/// A DNS record as `GET /zones/{id}/dns_records` lists it.
#[derive(Debug, Deserialize)]
pub struct ApiRecord {
    id: String,
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    content: String,
    #[serde(default)]
    proxied: bool,
    #[serde(default)]
    ttl: u32,
    priority: Option<u16>,
}

#[derive(Debug, Serialize)]
struct RecordBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type")]
    record_type: &'static str,
    name: String,
    content: String,
    ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
}

#[derive(Debug, Serialize)]
struct IdOnly {
    id: String,
}

#[derive(Debug, Default, Serialize)]
struct Batch {
    deletes: Vec<IdOnly>,
    puts: Vec<RecordBody>,
    posts: Vec<RecordBody>,
}

impl Batch {
    fn len(&self) -> usize {
        self.deletes.len() + self.puts.len() + self.posts.len()
    }

    fn append(&mut self, other: Self) {
        self.deletes.extend(other.deletes);
        self.puts.extend(other.puts);
        self.posts.extend(other.posts);
    }
}

// === impl Cloudflare ===

impl Cloudflare {
    /// A provider for `config`.
    pub fn new(config: CloudflareConfig) -> Result<Self, String> {
        let http = HttpClient::new(PROVIDER, "CF_API_BASE_URL", &config.endpoint, &config.tls)?;
        Ok(Self {
            config,
            http,
            zones: Mutex::new(Vec::new()),
            ids: Mutex::new(HashMap::new()),
        })
    }

    fn error(&self, status: u16, path: &str, detail: String) -> ProviderError {
        let endpoint = format!(
            "{}{}",
            self.http.base(),
            path.split('?').next().unwrap_or("")
        );
        let detail = redact(&detail, &[&self.config.token]);
        match status {
            401 | 403 => ProviderError::Unauthorized {
                provider: PROVIDER,
                endpoint,
                detail,
            },
            429 | 500.. => ProviderError::Server {
                provider: PROVIDER,
                endpoint,
                detail,
            },
            _ => ProviderError::Rejected {
                provider: PROVIDER,
                endpoint,
                detail,
            },
        }
    }

    /// One request: the body of a successful answer, or the error and how
    /// long the server asked us to wait.
    async fn request_once(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Bytes, (ProviderError, Option<Duration>)> {
        let request = self
            .http
            .builder(method, path)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.config.token),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| {
                (
                    self.error(400, path, format!("building the request: {e}")),
                    None,
                )
            })?;
        let response = self.http.send(request).await.map_err(|e| (e, None))?;
        if response.status.is_success() {
            return Ok(response.body);
        }
        let status = response.status.as_u16();
        let detail = match serde_json::from_slice::<Envelope<serde_json::Value>>(&response.body) {
            Ok(envelope) if !envelope.errors.is_empty() => envelope
                .errors
                .iter()
                .map(|e| format!("{} {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            _ => quote(&response.body, &[&self.config.token]),
        };
        let retry_after = (status == 429).then(|| {
            response
                .retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER)
        });
        Err((
            self.error(status, path, format!("HTTP {status}: {detail}")),
            retry_after,
        ))
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Bytes, ProviderError> {
        let mut attempt = 0;
        loop {
            let (error, retry_after) = match self.request_once(&method, path, body).await {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            if !error.is_retryable() || attempt >= BACKOFF.len() {
                return Err(error);
            }
            let pause = retry_after.unwrap_or(BACKOFF[attempt]);
            tracing::warn!(error = %error, retry_in = ?pause, "Cloudflare request failed; retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// Every page of a list.
    async fn list_all<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        per_page: usize,
    ) -> Result<Vec<T>, ProviderError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let url = format!("{path}{separator}page={page}&per_page={per_page}");
            let body = self.request(Method::GET, &url, &[]).await?;
            let (items, next) =
                list_page::<T>(&body).map_err(|message| self.error(502, &url, message))?;
            out.extend(items);
            match next {
                Some(next) => page = next,
                None => break,
            }
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<Endpoint>, ProviderError> {
        let zones: Vec<ZoneSummary> = self.list_all("/zones", 50).await?;
        let zones: Vec<Zone> = zones
            .into_iter()
            .map(|z| Zone {
                id: z.id,
                name: z.name.trim_end_matches('.').to_ascii_lowercase(),
            })
            .filter(|z| self.config.domain_filter.matches(&z.name))
            .filter(|z| self.config.zone_ids.is_empty() || self.config.zone_ids.contains(&z.id))
            .collect();
        let mut ids = HashMap::new();
        let mut sets: BTreeMap<(String, RecordType), (Vec<String>, u32, bool)> = BTreeMap::new();
        for zone in &zones {
            let path = format!("/zones/{}/dns_records", zone.id);
            let records: Vec<ApiRecord> = self.list_all(&path, self.config.per_page).await?;
            for record in records {
                let Ok(record_type) = record.record_type.parse::<RecordType>() else {
                    continue;
                };
                let name = record.name.trim_end_matches('.').to_ascii_lowercase();
                let target = match (record_type, record.priority) {
                    (RecordType::Mx, Some(priority)) => format!("{priority} {}", record.content),
                    _ => record.content.clone(),
                };
                ids.insert(
                    (
                        name.clone(),
                        record_type.as_str().to_owned(),
                        target.trim_end_matches('.').to_owned(),
                    ),
                    record.id,
                );
                let entry =
                    sets.entry((name, record_type))
                        .or_insert((Vec::new(), record.ttl, false));
                entry.0.push(target);
                entry.2 |= record.proxied;
            }
        }
        *self.zones.lock().unwrap_or_else(PoisonError::into_inner) = zones;
        *self.ids.lock().unwrap_or_else(PoisonError::into_inner) = ids;
        Ok(sets
            .into_iter()
            .map(|((name, record_type), (targets, ttl, proxied))| {
                let mut endpoint = Endpoint::new(&name, record_type, targets).with_ttl(ttl);
                endpoint.set_property(
                    &self.config.proxied_property,
                    if proxied { "true" } else { "false" },
                );
                endpoint
            })
            .collect())
    }

    fn zone_of(&self, name: &str) -> Option<Zone> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.zones
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|z| name == z.name || name.ends_with(&format!(".{}", z.name)))
            .max_by_key(|z| z.name.len())
            .cloned()
    }

    fn id_of(&self, endpoint: &Endpoint, target: &str) -> Option<String> {
        let key = (
            endpoint.dns_name.trim_end_matches('.').to_ascii_lowercase(),
            endpoint.record_type.as_str().to_owned(),
            target.trim_end_matches('.').to_owned(),
        );
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned()
    }

    fn body(&self, endpoint: &Endpoint, target: &str, id: Option<String>) -> RecordBody {
        let proxiable = matches!(
            endpoint.record_type,
            RecordType::A | RecordType::Aaaa | RecordType::Cname
        );
        let proxied = proxiable && endpoint.property(&self.config.proxied_property) == Some("true");
        let (priority, content) = match endpoint.record_type {
            RecordType::Mx => match target.split_once(' ') {
                Some((priority, host)) => (priority.parse().ok(), host.to_owned()),
                None => (Some(10), target.to_owned()),
            },
            _ => (None, target.to_owned()),
        };
        RecordBody {
            id,
            record_type: endpoint.record_type.as_str(),
            name: endpoint.dns_name.trim_end_matches('.').to_owned(),
            content,
            // 1 is "automatic" in Cloudflare's API; proxied records must use it.
            ttl: if proxied || endpoint.ttl == 0 {
                1
            } else {
                endpoint.ttl
            },
            proxied: proxiable.then_some(proxied),
            priority,
        }
    }

    /// The operations of one change, by zone id and batch group.
    fn operations(&self, changes: &Changes) -> BTreeMap<String, BTreeMap<String, Batch>> {
        let mut out: BTreeMap<String, BTreeMap<String, Batch>> = BTreeMap::new();
        let group_of = |e: &Endpoint| {
            e.labels
                .get(OWNED_RECORD_LABEL)
                .filter(|_| e.record_type == RecordType::Txt)
                .unwrap_or(&e.dns_name)
                .to_ascii_lowercase()
        };
        let mut add = |endpoint: &Endpoint, batch: Batch| {
            let Some(zone) = self.zone_of(&endpoint.dns_name) else {
                tracing::warn!(name = %endpoint.dns_name, "no Cloudflare zone holds this name; skipped");
                return;
            };
            out.entry(zone.id)
                .or_default()
                .entry(group_of(endpoint))
                .or_default()
                .append(batch);
        };
        let missing = |endpoint: &Endpoint, target: &str| {
            tracing::warn!(name = %endpoint.dns_name, record_type = %endpoint.record_type, target, "record not found at Cloudflare; nothing to delete");
        };
        for endpoint in &changes.create {
            let posts = endpoint
                .targets
                .iter()
                .map(|t| self.body(endpoint, t, None))
                .collect();
            add(
                endpoint,
                Batch {
                    posts,
                    ..Batch::default()
                },
            );
        }
        for (old, new) in changes.update_old.iter().zip(&changes.update_new) {
            let mut batch = Batch::default();
            for target in &old.targets {
                if !new.targets.contains(target) {
                    match self.id_of(old, target) {
                        Some(id) => batch.deletes.push(IdOnly { id }),
                        None => missing(old, target),
                    }
                }
            }
            for target in &new.targets {
                match old
                    .targets
                    .contains(target)
                    .then(|| self.id_of(old, target))
                    .flatten()
                {
                    Some(id) => batch.puts.push(self.body(new, target, Some(id))),
                    None => batch.posts.push(self.body(new, target, None)),
                }
            }
            add(new, batch);
        }
        for endpoint in &changes.delete {
            let mut batch = Batch::default();
            for target in &endpoint.targets {
                match self.id_of(endpoint, target) {
                    Some(id) => batch.deletes.push(IdOnly { id }),
                    None => missing(endpoint, target),
                }
            }
            add(endpoint, batch);
        }
        out
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
        let mut failures = Vec::new();
        let mut total = 0;
        for (zone, groups) in self.operations(changes) {
            let mut batches: Vec<Batch> = Vec::new();
            let mut current = Batch::default();
            for (name, group) in groups {
                if group.len() == 0 {
                    continue;
                }
                if group.len() > self.config.batch_size {
                    tracing::warn!(
                        zone,
                        name,
                        "these changes exceed one batch (--batch-change-size) on their own; skipped"
                    );
                    continue;
                }
                if current.len() + group.len() > self.config.batch_size {
                    batches.push(std::mem::take(&mut current));
                }
                current.append(group);
            }
            if current.len() > 0 {
                batches.push(current);
            }
            for batch in batches {
                total += 1;
                let body = serde_json::to_vec(&batch).unwrap_or_default();
                let path = format!("/zones/{zone}/dns_records/batch");
                if let Err(error) = self.request(Method::POST, &path, &body).await {
                    failures.push(error);
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

    /// external-dns v0.22 `AdjustEndpoints`: the effective proxied flag
    /// written into the property (false for types that cannot be proxied),
    /// TTL unconfigured for proxied records.
    fn adjust(&self, desired: Vec<Endpoint>) -> Vec<Endpoint> {
        desired
            .into_iter()
            .map(|mut endpoint| {
                let proxiable = matches!(
                    endpoint.record_type,
                    RecordType::A | RecordType::Aaaa | RecordType::Cname
                );
                let wanted = match endpoint.property(&self.config.proxied_property) {
                    Some(value) => value == "true",
                    None => self.config.proxied,
                };
                let proxied = proxiable && wanted;
                endpoint.set_property(
                    &self.config.proxied_property,
                    if proxied { "true" } else { "false" },
                );
                if proxied {
                    endpoint.ttl = 0;
                }
                endpoint
            })
            .collect()
    }
}

impl Provider for Cloudflare {
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

/// Reads one page of a v4 list envelope: its items and the next page
/// number (when `result_info` says there is one and this page was not
/// empty). A pure function of the bytes Cloudflare sent (fuzzed by
/// `fuzz/fuzz_targets/provider_responses.rs` with [`ApiRecord`] and
/// [`ZoneSummary`]).
pub fn list_page<T: for<'de> Deserialize<'de>>(
    body: &[u8],
) -> Result<(Vec<T>, Option<usize>), String> {
    let envelope: Envelope<Vec<T>> =
        serde_json::from_slice(body).map_err(|e| format!("unexpected answer: {e}"))?;
    if !envelope.success {
        return Err("the answer says it did not succeed".to_owned());
    }
    let items = envelope.result.unwrap_or_default();
    let next = match envelope.result_info {
        Some(info) if info.page < info.total_pages && !items.is_empty() => Some(info.page + 1),
        _ => None,
    };
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(proxied: bool) -> CloudflareConfig {
        CloudflareConfig {
            endpoint: "http://127.0.0.1:1/client/v4".to_owned(),
            token: "cf-unit-token-secret".to_owned(),
            token_source: "test".to_owned(),
            proxied,
            proxied_property: "external-dns.kubernetes.io/cloudflare-proxied".to_owned(),
            per_page: 100,
            batch_size: 200,
            zone_ids: Vec::new(),
            domain_filter: DomainFilter::default(),
            tls: TlsFiles::default(),
        }
    }

    /// `--cloudflare-proxied` is the default, the annotation wins, TXT is
    /// never proxied, proxied records have an automatic TTL.
    #[test]
    fn proxied_flag_and_annotation() {
        let provider = Cloudflare::new(config(true)).unwrap();
        let a = Endpoint::new("a.example.com", RecordType::A, vec!["192.0.2.1".to_owned()])
            .with_ttl(120);
        let mut off = Endpoint::new("b.example.com", RecordType::A, vec!["192.0.2.2".to_owned()]);
        off.set_property("external-dns.kubernetes.io/cloudflare-proxied", "false");
        let txt = Endpoint::new("a-a.example.com", RecordType::Txt, vec!["\"x\"".to_owned()]);
        let adjusted = provider.adjust(vec![a, off, txt]);
        let proxied: Vec<Option<&str>> = adjusted
            .iter()
            .map(|e| e.property("external-dns.kubernetes.io/cloudflare-proxied"))
            .collect();
        assert_eq!(proxied, [Some("true"), Some("false"), Some("false")]);
        assert_eq!(adjusted[0].ttl, 0);
        let body = serde_json::to_string(&provider.body(&adjusted[0], "192.0.2.1", None)).unwrap();
        assert_eq!(
            body,
            r#"{"type":"A","name":"a.example.com","content":"192.0.2.1","ttl":1,"proxied":true}"#
        );
        let body = serde_json::to_string(&provider.body(&adjusted[2], "\"x\"", None)).unwrap();
        assert_eq!(
            body,
            r#"{"type":"TXT","name":"a-a.example.com","content":"\"x\"","ttl":1}"#
        );
        assert!(!format!("{provider:?}").contains("cf-unit-token-secret"));
    }
}
