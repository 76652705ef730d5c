//! `--provider=azure` (alias `azure-dns`): Azure DNS through the Azure
//! Resource Manager REST API (2018-05-01), with a client-credentials token
//! from the Microsoft identity platform.
//!
//! Control plane. Requests (Azure DNS REST reference, notes §7.7):
//!
//! ```text
//! POST {authority}/{tenant}/oauth2/v2.0/token                                  client id + secret ─▶ bearer token (cached until a minute before expiry)
//! GET  {arm}/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Network/dnsZones          zones (nextLink paging)
//! GET  {arm}/.../dnsZones/{zone}/recordsets?$top=100                           record sets (nextLink paging)
//! PUT  {arm}/.../dnsZones/{zone}/{type}/{relative name}                         create or replace one record set
//! DELETE the same                                                              delete one record set
//! ```
//!
//! ARM has no multi-record transaction, so a record and its ownership TXT
//! are written in order, record first, and the TXT is not written when its
//! record failed: a failure can orphan a TXT but never leaves one claiming a
//! record that was not written. Deletes go first, then creates and updates
//! (external-dns's order). 429 is retried after its `Retry-After` (at most
//! 10 s), 5xx and transport failures with backoff, `--azure-maxretries-count`
//! times; a 401 drops the cached token and asks for a new one once.
//!
//! Invariant: the client secret and the tokens are sent only to the token
//! endpoint and in the `Authorization` header; they are in no error, log
//! line or `Debug` output.

use super::http::{HttpClient, TlsFiles, percent_encode, quote, redact};
use super::{Provider, ProviderError, grouped};
use crate::endpoint::{Endpoint, RecordType};
use crate::filter::DomainFilter;
use crate::plan::Changes;
use http_body_util::Full;
use hyper::Method;
use hyper::body::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use signpost_model::BoxFuture;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

const PROVIDER: &str = "azure";
const API_VERSION: &str = "2018-05-01";
/// Azure's public cloud.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Azure's public cloud.
pub const DEFAULT_RESOURCE_MANAGER: &str = "https://management.azure.com";
/// TTL written when an endpoint configures none.
pub const DEFAULT_TTL: u32 = 300;
const SCOPE: &str = "https://management.azure.com/.default";
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The provider's settings.
#[derive(Clone)]
pub struct AzureConfig {
    /// The identity platform's host (`activeDirectoryAuthorityHost`,
    /// `AZURE_AUTHORITY_HOST`, else [`DEFAULT_AUTHORITY`]).
    pub authority: String,
    /// The resource manager (`resourceManagerEndpoint`,
    /// `AZURE_RESOURCE_MANAGER_ENDPOINT`, else [`DEFAULT_RESOURCE_MANAGER`]).
    pub resource_manager: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret (secret).
    pub client_secret: String,
    /// Subscription.
    pub subscription_id: String,
    /// Resource group holding the zones.
    pub resource_group: String,
    /// `--zone-name-filter`: exact zone names.
    pub zone_names: Vec<String>,
    /// `--azure-maxretries-count`.
    pub max_retries: u32,
    /// The user's domain filter: only matching zones are read.
    pub domain_filter: DomainFilter,
    /// `--tls-ca` and friends, for `https://` overrides.
    pub tls: TlsFiles,
}

impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConfig")
            .field("authority", &self.authority)
            .field("resource_manager", &self.resource_manager)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"******")
            .field("subscription_id", &self.subscription_id)
            .field("resource_group", &self.resource_group)
            .finish_non_exhaustive()
    }
}

/// The Azure DNS provider.
pub struct Azure {
    config: AzureConfig,
    login: HttpClient,
    arm: HttpClient,
    token: Mutex<Option<(String, Instant)>>,
    zones: Mutex<Vec<String>>,
}

impl fmt::Debug for Azure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Azure")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

// === impl Azure ===

impl Azure {
    /// A provider for `config`.
    pub fn new(config: AzureConfig) -> Result<Self, String> {
        let login = HttpClient::new(
            PROVIDER,
            "activeDirectoryAuthorityHost",
            &config.authority,
            &config.tls,
        )?;
        let arm = HttpClient::new(
            PROVIDER,
            "resourceManagerEndpoint",
            &config.resource_manager,
            &config.tls,
        )?;
        Ok(Self {
            config,
            login,
            arm,
            token: Mutex::new(None),
            zones: Mutex::new(Vec::new()),
        })
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.config.client_secret.clone()];
        if let Some((token, _)) = &*self.token.lock().unwrap_or_else(PoisonError::into_inner) {
            secrets.push(token.clone());
        }
        secrets
    }

    fn error(&self, status: u16, endpoint: String, detail: String) -> ProviderError {
        let secrets = self.secrets();
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

    /// A valid bearer token, fetched when none is cached or it is about to expire.
    async fn bearer(&self) -> Result<String, ProviderError> {
        if let Some((token, until)) = &*self.token.lock().unwrap_or_else(PoisonError::into_inner)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let path = format!(
            "/{}/oauth2/v2.0/token",
            percent_encode(&self.config.tenant_id)
        );
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            percent_encode(&self.config.client_id),
            percent_encode(&self.config.client_secret),
            percent_encode(SCOPE)
        );
        let endpoint = format!("{}{path}", self.login.base());
        let request = self
            .login
            .builder(&Method::POST, &path)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| self.error(400, endpoint.clone(), format!("building the request: {e}")))?;
        let response = self.login.send(request).await?;
        let status = response.status.as_u16();
        if !response.status.is_success() {
            #[derive(Deserialize)]
            struct Failure {
                error: String,
                #[serde(default)]
                error_description: String,
            }
            let detail = serde_json::from_slice::<Failure>(&response.body)
                .map(|f| {
                    format!(
                        "{}: {}",
                        f.error,
                        f.error_description.lines().next().unwrap_or("")
                    )
                })
                .unwrap_or_else(|_| quote(&response.body, &[&self.config.client_secret]));
            // invalid_client and unauthorized_client are credential problems whatever the status.
            let status = if detail.starts_with("invalid_client")
                || detail.starts_with("unauthorized_client")
            {
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
        let answer: TokenAnswer = serde_json::from_slice(&response.body)
            .map_err(|e| self.error(502, endpoint, format!("unexpected token answer: {e}")))?;
        let lifetime = Duration::from_secs(answer.expires_in.saturating_sub(60).max(30));
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }

    /// One ARM request: the status and body of a 2xx answer, or the error
    /// and the `Retry-After` of a 429.
    async fn arm_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Bytes), (ProviderError, Option<Duration>)> {
        let token = self.bearer().await.map_err(|e| (e, None))?;
        let endpoint = format!(
            "{}{}",
            self.arm.base(),
            path.split('?').next().unwrap_or("")
        );
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let request = self
            .arm
            .builder(method, path)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| {
                (
                    self.error(400, endpoint.clone(), format!("building the request: {e}")),
                    None,
                )
            })?;
        let response = self.arm.send(request).await.map_err(|e| (e, None))?;
        let status = response.status.as_u16();
        if response.status.is_success() {
            return Ok((status, response.body));
        }
        if status == 401 {
            *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        let detail = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?;
                Some(format!(
                    "{}: {}",
                    error.get("code")?.as_str()?,
                    error.get("message").and_then(Value::as_str).unwrap_or("")
                ))
            })
            .unwrap_or_else(|| quote(&response.body, &[&self.config.client_secret]));
        let retry = (status == 429).then(|| {
            response
                .retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER)
        });
        Err((
            self.error(status, endpoint, format!("HTTP {status} {detail}")),
            retry,
        ))
    }

    async fn arm_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Bytes), ProviderError> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            let (error, retry_after) = match self.arm_once(&method, path, body).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if matches!(error, ProviderError::Unauthorized { .. }) && !renewed {
                renewed = true;
                continue;
            }
            if !error.is_retryable() || attempt >= self.config.max_retries {
                return Err(error);
            }
            let pause = retry_after.unwrap_or(Duration::from_millis(250 << attempt.min(6)));
            tracing::warn!(error = %error, retry_in = ?pause, "Azure request failed; retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn zones_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones",
            percent_encode(&self.config.subscription_id),
            percent_encode(&self.config.resource_group)
        )
    }

    /// Every item of a paged list, following `nextLink` on the same host.
    async fn list_all(&self, first: String) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        let mut path = Some(first);
        while let Some(current) = path.take() {
            let (_, body) = self.arm_request(Method::GET, &current, None).await?;
            let (items, next_link) = list_page(&body)
                .map_err(|e| self.error(502, self.arm.base(), format!("unexpected answer: {e}")))?;
            out.extend(items);
            if let Some(next) = next_link {
                match next.strip_prefix(&self.arm.base()) {
                    Some(rest) => path = Some(rest.to_owned()),
                    None => {
                        return Err(self.error(
                            502,
                            self.arm.base(),
                            "nextLink points to another host".to_owned(),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<Endpoint>, ProviderError> {
        let zones = self
            .list_all(format!("{}?api-version={API_VERSION}", self.zones_path()))
            .await?;
        let zones: Vec<String> = zones
            .iter()
            .filter_map(|z| z.get("name")?.as_str())
            .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
            .filter(|z| self.config.domain_filter.matches(z))
            .filter(|z| {
                self.config.zone_names.is_empty()
                    || self
                        .config
                        .zone_names
                        .iter()
                        .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(z))
            })
            .collect();
        let mut out = Vec::new();
        for zone in &zones {
            let sets = self
                .list_all(format!(
                    "{}/{zone}/recordsets?api-version={API_VERSION}&$top=100",
                    self.zones_path()
                ))
                .await?;
            out.extend(sets.iter().filter_map(|set| endpoint_of(zone, set)));
        }
        *self.zones.lock().unwrap_or_else(PoisonError::into_inner) = zones;
        Ok(out)
    }

    fn zone_of(&self, name: &str) -> Option<String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.zones
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|z| name == **z || name.ends_with(&format!(".{z}")))
            .max_by_key(|z| z.len())
            .cloned()
    }

    fn set_path(&self, zone: &str, endpoint: &Endpoint) -> String {
        let name = endpoint.dns_name.trim_end_matches('.').to_ascii_lowercase();
        let relative = if name == zone {
            "@".to_owned()
        } else {
            name.strip_suffix(&format!(".{zone}"))
                .unwrap_or(&name)
                .to_owned()
        };
        format!(
            "{}/{zone}/{}/{}?api-version={API_VERSION}",
            self.zones_path(),
            endpoint.record_type.as_str(),
            percent_encode(&relative)
        )
    }

    /// Writes (`put`) or deletes each group in order, record before TXT;
    /// a group stops at its first failure.
    async fn write(
        &self,
        endpoints: &[Endpoint],
        put: bool,
        failures: &mut Vec<ProviderError>,
        total: &mut usize,
    ) {
        for group in grouped(endpoints) {
            let mut ordered = group;
            ordered.sort_by_key(|e| e.record_type == RecordType::Txt);
            for endpoint in ordered {
                let Some(zone) = self.zone_of(&endpoint.dns_name) else {
                    tracing::warn!(name = %endpoint.dns_name, "no Azure DNS zone holds this name; skipped");
                    continue;
                };
                *total += 1;
                let path = self.set_path(&zone, endpoint);
                let result = if put {
                    let body = record_set_body(endpoint);
                    self.arm_request(Method::PUT, &path, Some(&body)).await
                } else {
                    self.arm_request(Method::DELETE, &path, None).await
                };
                if let Err(error) = result {
                    failures.push(error);
                    break;
                }
            }
        }
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
        self.write(&changes.delete, false, &mut failures, &mut total)
            .await;
        self.write(&changes.create, true, &mut failures, &mut total)
            .await;
        self.write(&changes.update_new, true, &mut failures, &mut total)
            .await;
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

/// Reads one page of an ARM list: its items and `nextLink`. A pure function
/// of the bytes Azure sent (fuzzed by `fuzz/fuzz_targets/provider_responses.rs`).
pub fn list_page(body: &[u8]) -> Result<(Vec<Value>, Option<String>), serde_json::Error> {
    let page: Page = serde_json::from_slice(body)?;
    Ok((page.value, page.next_link))
}

/// An ARM record set of `zone` as an endpoint; `None` for types
/// external-dns does not manage.
pub fn endpoint_of(zone: &str, set: &Value) -> Option<Endpoint> {
    let relative = set.get("name")?.as_str()?;
    let record_type = set.get("type")?.as_str()?.rsplit('/').next()?;
    let record_type: RecordType = record_type.parse().ok()?;
    let properties = set.get("properties")?;
    let name = if relative == "@" {
        zone.to_owned()
    } else {
        format!("{relative}.{zone}")
    };
    let strings = |key: &str, field: &str| -> Vec<String> {
        properties
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| e.get(field)?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let targets: Vec<String> = match record_type {
        RecordType::A => strings("ARecords", "ipv4Address"),
        RecordType::Aaaa => strings("AAAARecords", "ipv6Address"),
        RecordType::Cname => properties
            .get("CNAMERecord")
            .and_then(|c| c.get("cname")?.as_str())
            .map(|c| vec![c.to_owned()])
            .unwrap_or_default(),
        RecordType::Ns => strings("NSRecords", "nsdname"),
        RecordType::Txt => properties
            .get("TXTRecords")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| {
                        let parts: Vec<&str> = e
                            .get("value")?
                            .as_array()?
                            .iter()
                            .filter_map(Value::as_str)
                            .collect();
                        Some(parts.concat())
                    })
                    .collect()
            })
            .unwrap_or_default(),
        RecordType::Mx => properties
            .get("MXRecords")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| {
                        Some(format!(
                            "{} {}",
                            e.get("preference")?.as_u64()?,
                            e.get("exchange")?.as_str()?
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => return None,
    };
    if targets.is_empty() {
        return None;
    }
    let ttl = properties.get("TTL").and_then(Value::as_u64).unwrap_or(0);
    Some(
        Endpoint::new(&name, record_type, targets).with_ttl(u32::try_from(ttl).unwrap_or(u32::MAX)),
    )
}

/// The PUT body of a record set.
fn record_set_body(endpoint: &Endpoint) -> Value {
    let ttl = if endpoint.ttl > 0 {
        endpoint.ttl
    } else {
        DEFAULT_TTL
    };
    let targets = &endpoint.targets;
    let data = match endpoint.record_type {
        RecordType::A => ("ARecords", json!(targets.iter().map(|t| json!({"ipv4Address": t})).collect::<Vec<_>>())),
        RecordType::Aaaa => ("AAAARecords", json!(targets.iter().map(|t| json!({"ipv6Address": t})).collect::<Vec<_>>())),
        RecordType::Cname => ("CNAMERecord", json!({"cname": targets.first().cloned().unwrap_or_default()})),
        RecordType::Ns => ("NSRecords", json!(targets.iter().map(|t| json!({"nsdname": t})).collect::<Vec<_>>())),
        RecordType::Mx => (
            "MXRecords",
            json!(targets
                .iter()
                .map(|t| {
                    let (preference, exchange) = t.split_once(' ').unwrap_or(("10", t));
                    json!({"preference": preference.parse::<u16>().unwrap_or(10), "exchange": exchange})
                })
                .collect::<Vec<_>>()),
        ),
        // TXT values are stored verbatim, quotes included (external-dns v0.22).
        _ => ("TXTRecords", json!(targets.iter().map(|t| json!({"value": [t]})).collect::<Vec<_>>())),
    };
    let mut properties = serde_json::Map::new();
    properties.insert("TTL".to_owned(), json!(ttl));
    properties.insert(data.0.to_owned(), data.1);
    json!({ "properties": properties })
}

impl Provider for Azure {
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
        Some(DomainFilter::new(&zones, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sets_round_trip() {
        let txt = Endpoint::new(
            "a-www.example.com",
            RecordType::Txt,
            vec!["\"heritage=external-dns\"".to_owned()],
        );
        let body = record_set_body(&txt);
        assert_eq!(
            body.to_string(),
            r#"{"properties":{"TTL":300,"TXTRecords":[{"value":["\"heritage=external-dns\""]}]}}"#
        );
        let set = json!({"name": "a-www", "type": "Microsoft.Network/dnszones/TXT", "properties": body["properties"]});
        let back = endpoint_of("example.com", &set).unwrap();
        assert_eq!(back.dns_name, "a-www.example.com");
        assert_eq!(back.targets, txt.targets);
        let apex = json!({"name": "@", "type": "Microsoft.Network/dnszones/A", "properties": {"TTL": 60, "ARecords": [{"ipv4Address": "192.0.2.1"}]}});
        let back = endpoint_of("example.com", &apex).unwrap();
        assert_eq!((back.dns_name.as_str(), back.ttl), ("example.com", 60));
        let soa = json!({"name": "@", "type": "Microsoft.Network/dnszones/SOA", "properties": {}});
        assert!(endpoint_of("example.com", &soa).is_none());
    }
}
