//! `--provider=google`: Google Cloud DNS (API v1) with a service-account
//! key (the JWT bearer grant, RS256 signed with `ring`).
//!
//! Control plane. Requests (Cloud DNS API reference, notes §7.6):
//!
//! ```text
//! POST {token_uri}                                             JWT (iss = client email, scope ndev.clouddns.readwrite) ─▶ bearer token, cached
//! GET  {base}/projects/{p}/managedZones?pageToken=             zones, paged; --google-zone-visibility and the domain filter narrow them
//! GET  {base}/projects/{p}/managedZones/{z}/rrsets?pageToken=  record sets, paged
//! POST {base}/projects/{p}/managedZones/{z}/changes            {"additions", "deletions"}: one atomic change
//! ```
//!
//! A change holds additions (creates, new versions of updates) and
//! deletions (old versions, deletes) for one zone, at most
//! `--google-batch-change-size` of them, a record and its ownership TXT in
//! the same change; Cloud DNS applies a change atomically.
//! `--google-batch-change-interval` separates changes. 429, 5xx and
//! transport failures are retried three times (`Retry-After`, else 250 ms,
//! 500 ms, 1 s); a 401 drops the cached token and asks for a new one once.
//!
//! Invariant: the private key signs locally and never leaves the process;
//! tokens travel only in the `Authorization` header; neither is in an
//! error, a log line or `Debug` output.

use super::http::{HttpClient, TlsFiles, percent_encode, quote, redact};
use super::{Provider, ProviderError};
use crate::endpoint::{Endpoint, OWNED_RECORD_LABEL, RecordType};
use crate::filter::DomainFilter;
use crate::plan::Changes;
use base64::Engine as _;
use http_body_util::Full;
use hyper::Method;
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use signpost_model::BoxFuture;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const PROVIDER: &str = "google";
/// The public API's base URL.
pub const DEFAULT_ENDPOINT: &str = "https://dns.googleapis.com/dns/v1";
/// TTL written when an endpoint configures none.
pub const DEFAULT_TTL: u32 = 300;
const SCOPE: &str = "https://www.googleapis.com/auth/ndev.clouddns.readwrite";
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A service-account key file (`key.json`), the fields used.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    /// `service_account`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The key's project.
    #[serde(default)]
    pub project_id: String,
    /// The key id (the JWT's `kid`).
    #[serde(default)]
    pub private_key_id: String,
    /// PKCS#8 PEM (secret).
    pub private_key: String,
    /// The account (`iss`).
    pub client_email: String,
    /// Where tokens come from (`aud`).
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key", &"******")
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// The provider's settings.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// The API base (`CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS`, else [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// The service account.
    pub account: ServiceAccount,
    /// `--google-project`.
    pub project: String,
    /// `--google-zone-visibility`: `public`, `private` or empty.
    pub visibility: String,
    /// `--google-batch-change-size`.
    pub batch_size: usize,
    /// `--google-batch-change-interval`.
    pub batch_interval: Duration,
    /// `--zone-id-filter`: zone ids or names.
    pub zone_ids: Vec<String>,
    /// The user's domain filter.
    pub domain_filter: DomainFilter,
    /// `--tls-ca` and friends.
    pub tls: TlsFiles,
}

#[derive(Debug, Clone)]
struct Zone {
    name: String,
    /// Lower case, no trailing dot.
    dns_name: String,
}

/// The Cloud DNS provider.
pub struct Google {
    config: GoogleConfig,
    api: HttpClient,
    login: HttpClient,
    login_path: String,
    key: Arc<ring::signature::RsaKeyPair>,
    token: Mutex<Option<(String, Instant)>>,
    zones: Mutex<Vec<Zone>>,
}

impl fmt::Debug for Google {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Google")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    rrdatas: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct Change {
    additions: Vec<RrSet>,
    deletions: Vec<RrSet>,
}

impl Change {
    fn len(&self) -> usize {
        self.additions.len() + self.deletions.len()
    }
}

// === impl Google ===

impl Google {
    /// A provider for `config`.
    pub fn new(config: GoogleConfig) -> Result<Self, String> {
        let api = HttpClient::new(
            PROVIDER,
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS",
            &config.endpoint,
            &config.tls,
        )?;
        let uri = &config.account.token_uri;
        let (origin, login_path) = match uri
            .find("://")
            .and_then(|at| uri[at + 3..].find('/').map(|p| at + 3 + p))
        {
            Some(at) => (&uri[..at], uri[at..].to_owned()),
            None => (uri.as_str(), "/".to_owned()),
        };
        let login = HttpClient::new(PROVIDER, "token_uri", origin, &config.tls)?;
        let der = rustls_pemfile::private_key(&mut config.account.private_key.as_bytes())
            .ok()
            .flatten()
            .ok_or("the service account's private_key is not a PEM private key")?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der())
            .map_err(|_| "the service account's private_key is not a PKCS#8 RSA key".to_owned())?;
        Ok(Self {
            config,
            api,
            login,
            login_path,
            key: Arc::new(key),
            token: Mutex::new(None),
            zones: Mutex::new(Vec::new()),
        })
    }

    fn error(&self, status: u16, endpoint: String, detail: String) -> ProviderError {
        let mut secrets = vec![self.config.account.private_key.clone()];
        if let Some((token, _)) = &*self.token.lock().unwrap_or_else(PoisonError::into_inner) {
            secrets.push(token.clone());
        }
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let detail = redact(&detail, &refs);
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

    /// The signed JWT assertion (RFC 7523 §2.1, RS256 per RFC 7518 §3.3).
    fn assertion(&self) -> Result<String, String> {
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.config.account.private_key_id});
        let claims = serde_json::json!({
            "iss": self.config.account.client_email,
            "scope": SCOPE,
            "aud": self.config.account.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let message = format!(
            "{}.{}",
            url.encode(header.to_string()),
            url.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the token request failed".to_owned())?;
        Ok(format!("{message}.{}", url.encode(signature)))
    }

    async fn bearer(&self) -> Result<String, ProviderError> {
        if let Some((token, until)) = &*self.token.lock().unwrap_or_else(PoisonError::into_inner)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let endpoint = format!("{}{}", self.login.base(), self.login_path);
        let assertion = self
            .assertion()
            .map_err(|e| self.error(400, endpoint.clone(), e))?;
        let form = format!(
            "grant_type={}&assertion={}",
            percent_encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            percent_encode(&assertion)
        );
        let request = self
            .login
            .builder(&Method::POST, &self.login_path)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| self.error(400, endpoint.clone(), format!("building the request: {e}")))?;
        let response = self.login.send(request).await?;
        let status = response.status.as_u16();
        if !response.status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&response.body)
                .ok()
                .and_then(|v| {
                    Some(format!(
                        "{}: {}",
                        v.get("error")?.as_str()?,
                        v.get("error_description")
                            .and_then(|d| d.as_str())
                            .unwrap_or("")
                    ))
                })
                .unwrap_or_else(|| quote(&response.body, &[]));
            // invalid_grant is a credential problem (a bad key, a deleted account).
            let status = if detail.starts_with("invalid_grant") {
                401
            } else {
                status
            };
            return Err(self.error(
                status,
                endpoint,
                format!("token request: HTTP {}: {detail}", response.status.as_u16()),
            ));
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default)]
            expires_in: u64,
        }
        let answer: Answer = serde_json::from_slice(&response.body)
            .map_err(|e| self.error(502, endpoint, format!("unexpected token answer: {e}")))?;
        let lifetime = Duration::from_secs(answer.expires_in.saturating_sub(60).max(30));
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }

    async fn request_once(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Bytes, (ProviderError, Option<Duration>)> {
        let token = self.bearer().await.map_err(|e| (e, None))?;
        let endpoint = format!(
            "{}{}",
            self.api.base(),
            path.split('?').next().unwrap_or("")
        );
        let request = self
            .api
            .builder(method, path)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| {
                (
                    self.error(400, endpoint.clone(), format!("building the request: {e}")),
                    None,
                )
            })?;
        let response = self.api.send(request).await.map_err(|e| (e, None))?;
        let status = response.status.as_u16();
        if response.status.is_success() {
            return Ok(response.body);
        }
        if status == 401 {
            *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        let detail = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| quote(&response.body, &[]));
        let retry = (status == 429).then(|| {
            response
                .retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER)
        });
        Err((
            self.error(status, endpoint, format!("HTTP {status}: {detail}")),
            retry,
        ))
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Bytes, ProviderError> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            let (error, retry_after) = match self.request_once(&method, path, body).await {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            if matches!(error, ProviderError::Unauthorized { .. }) && !renewed {
                renewed = true;
                continue;
            }
            if !error.is_retryable() || attempt >= BACKOFF.len() {
                return Err(error);
            }
            let pause = retry_after.unwrap_or(BACKOFF[attempt]);
            tracing::warn!(error = %error, retry_in = ?pause, "Cloud DNS request failed; retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn project_path(&self) -> String {
        format!(
            "/projects/{}/managedZones",
            percent_encode(&self.config.project)
        )
    }

    /// Every item of `field` over all pages.
    async fn list_all(
        &self,
        path: &str,
        field: &str,
    ) -> Result<Vec<serde_json::Value>, ProviderError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = match &token {
                Some(t) => format!(
                    "{path}{}pageToken={}",
                    if path.contains('?') { '&' } else { '?' },
                    percent_encode(t)
                ),
                None => path.to_owned(),
            };
            let body = self.request(Method::GET, &url, &[]).await?;
            let (items, next) = list_page(&body, field)
                .map_err(|e| self.error(502, self.api.base(), format!("unexpected answer: {e}")))?;
            out.extend(items);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<Endpoint>, ProviderError> {
        let zones = self.list_all(&self.project_path(), "managedZones").await?;
        let zones: Vec<Zone> = zones
            .iter()
            .filter(|z| z.get("visibility").and_then(|v| v.as_str()) != Some("peering"))
            .filter(|z| {
                self.config.visibility.is_empty()
                    || z.get("visibility")
                        .and_then(|v| v.as_str())
                        .unwrap_or("public")
                        == self.config.visibility
            })
            .filter_map(|z| {
                let name = z.get("name")?.as_str()?.to_owned();
                let id = z.get("id").and_then(|v| v.as_str()).unwrap_or("");
                if !self.config.zone_ids.is_empty()
                    && !self
                        .config
                        .zone_ids
                        .iter()
                        .any(|f| f == id || name.ends_with(f.as_str()))
                {
                    return None;
                }
                let dns_name = z
                    .get("dnsName")?
                    .as_str()?
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                Some(Zone { name, dns_name })
            })
            .filter(|z| self.config.domain_filter.matches(&z.dns_name))
            .collect();
        let mut out = Vec::new();
        for zone in &zones {
            let path = format!(
                "{}/{}/rrsets?maxResults=100",
                self.project_path(),
                percent_encode(&zone.name)
            );
            out.extend(
                self.list_all(&path, "rrsets")
                    .await?
                    .into_iter()
                    .filter_map(endpoint_of),
            );
        }
        *self.zones.lock().unwrap_or_else(PoisonError::into_inner) = zones;
        Ok(out)
    }

    fn zone_of(&self, name: &str) -> Option<Zone> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.zones
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|z| name == z.dns_name || name.ends_with(&format!(".{}", z.dns_name)))
            .max_by_key(|z| z.dns_name.len())
            .cloned()
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
        // zone → group (record name, its TXT's ownedRecord) → change.
        let mut by_zone: BTreeMap<String, BTreeMap<String, Change>> = BTreeMap::new();
        let mut add = |endpoint: &Endpoint, addition: bool| {
            let Some(zone) = self.zone_of(&endpoint.dns_name) else {
                tracing::warn!(name = %endpoint.dns_name, "no Cloud DNS zone holds this name; skipped");
                return;
            };
            let group = endpoint
                .labels
                .get(OWNED_RECORD_LABEL)
                .filter(|_| endpoint.record_type == RecordType::Txt)
                .unwrap_or(&endpoint.dns_name)
                .to_ascii_lowercase();
            let change = by_zone
                .entry(zone.name)
                .or_default()
                .entry(group)
                .or_default();
            let set = rrset(endpoint);
            if addition {
                change.additions.push(set);
            } else {
                change.deletions.push(set);
            }
        };
        for endpoint in changes.create.iter().chain(&changes.update_new) {
            add(endpoint, true);
        }
        for endpoint in changes.update_old.iter().chain(&changes.delete) {
            add(endpoint, false);
        }
        let mut failures = Vec::new();
        let mut total = 0;
        let mut first = true;
        for (zone, groups) in by_zone {
            let mut batches: Vec<Change> = Vec::new();
            let mut current = Change::default();
            for (name, group) in groups {
                if group.len() > self.config.batch_size {
                    tracing::warn!(
                        zone,
                        name,
                        "these changes exceed --google-batch-change-size on their own; skipped"
                    );
                    continue;
                }
                if current.len() + group.len() > self.config.batch_size {
                    batches.push(std::mem::take(&mut current));
                }
                current.additions.extend(group.additions);
                current.deletions.extend(group.deletions);
            }
            if current.len() > 0 {
                batches.push(current);
            }
            for batch in batches {
                if !first && !self.config.batch_interval.is_zero() {
                    tokio::time::sleep(self.config.batch_interval).await;
                }
                first = false;
                total += 1;
                let body = serde_json::to_vec(&batch).unwrap_or_default();
                let path = format!("{}/{}/changes", self.project_path(), percent_encode(&zone));
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
}

/// An endpoint as a Cloud DNS record set: names with a trailing dot, name
/// targets of CNAME, MX, SRV and NS too, TTL 300 unless configured.
fn rrset(endpoint: &Endpoint) -> RrSet {
    let dotted = matches!(
        endpoint.record_type,
        RecordType::Cname | RecordType::Mx | RecordType::Srv | RecordType::Ns
    );
    RrSet {
        name: format!("{}.", endpoint.dns_name.trim_end_matches('.')),
        record_type: endpoint.record_type.as_str().to_owned(),
        ttl: if endpoint.ttl > 0 {
            endpoint.ttl
        } else {
            DEFAULT_TTL
        },
        rrdatas: endpoint
            .targets
            .iter()
            .map(|t| {
                if dotted && !t.ends_with('.') {
                    format!("{t}.")
                } else {
                    t.clone()
                }
            })
            .collect(),
    }
}

impl Provider for Google {
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

    fn zone_filter(&self) -> Option<DomainFilter> {
        let zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        let names: Vec<String> = zones.iter().map(|z| z.dns_name.clone()).collect();
        Some(DomainFilter::new(&names, &[]))
    }
}

/// Reads one page of a Cloud DNS list: the items under `field` and a
/// non-empty `nextPageToken`. A pure function of the bytes Google sent
/// (fuzzed by `fuzz/fuzz_targets/provider_responses.rs`).
pub fn list_page(
    body: &[u8],
    field: &str,
) -> Result<(Vec<serde_json::Value>, Option<String>), serde_json::Error> {
    let page: serde_json::Value = serde_json::from_slice(body)?;
    let items = page
        .get(field)
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let next = page
        .get("nextPageToken")
        .and_then(|v| v.as_str())
        .filter(|next| !next.is_empty())
        .map(str::to_owned);
    Ok((items, next))
}

/// A Cloud DNS `ResourceRecordSet` as an endpoint; `None` for a malformed
/// set, a type external-dns does not manage, or one without data.
pub fn endpoint_of(set: serde_json::Value) -> Option<Endpoint> {
    let set = serde_json::from_value::<RrSet>(set).ok()?;
    let record_type = set.record_type.parse::<RecordType>().ok()?;
    if set.rrdatas.is_empty() {
        return None;
    }
    Some(Endpoint::new(&set.name, record_type, set.rrdatas).with_ttl(set.ttl))
}
