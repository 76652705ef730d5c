//! `--provider=pdns`: the PowerDNS Authoritative HTTP API (`--pdns-server`,
//! `--pdns-server-id`, `--pdns-api-key`).
//!
//! Control plane. Requests, as external-dns v0.22 makes them (notes §7.3):
//!
//! ```text
//! GET   {server}/api/v1/servers/{id}/zones              zones (their names are the provider's filter)
//! GET   {server}/api/v1/servers/{id}/zones/{zone}       rrsets ─▶ endpoints (disabled records left out, ALIAS read as CNAME)
//! PATCH {server}/api/v1/servers/{id}/zones/{zone}       {"rrsets": [...]}: REPLACE for creates and updates, DELETE for deletes
//! ```
//!
//! One PATCH per zone per phase (creates, updates, deletes); PowerDNS applies
//! a PATCH in one transaction, so a record and its ownership TXT (same zone)
//! are written together or not at all. Retryable failures are retried three
//! times (250 ms, 500 ms, 1 s). HTTP/1.1 over a fresh connection per request
//! (a sync makes a handful), TLS with `--tls-ca`/`--tls-client-cert` or the
//! system roots for `https://`.
//!
//! Invariant: the API key is sent only in the `X-API-Key` header; it is in
//! no error, log line or `Debug` output. Unlike external-dns, `--dry-run`
//! works (the controller never calls the provider to write).

use super::http::{HttpClient, TlsFiles, quote};
use super::{Provider, ProviderError};
use crate::endpoint::{Endpoint, RecordType};
use crate::filter::DomainFilter;
use crate::plan::Changes;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use signpost_model::BoxFuture;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const PROVIDER: &str = "pdns";
/// TTL sent when an endpoint configures none (external-dns's default).
pub const DEFAULT_TTL: u32 = 300;
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];
/// The longest wait for a 429's `Retry-After` within a run: a longer one is
/// cut to this (each of the three retries waits at most 10 s).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The provider's settings.
#[derive(Clone)]
pub struct PdnsConfig {
    /// `--pdns-server`, e.g. `http://127.0.0.1:8081` (a path prefix is kept).
    pub server: String,
    /// `--pdns-server-id`.
    pub server_id: String,
    /// `--pdns-api-key` (secret).
    pub api_key: String,
    /// `--pdns-skip-tls-verify`.
    pub skip_tls_verify: bool,
    /// `--tls-ca` (PEM file), `--tls-client-cert`, `--tls-client-cert-key`.
    pub tls_ca: String,
    /// Client certificate (PEM file).
    pub tls_client_cert: String,
    /// Client key (PEM file).
    pub tls_client_key: String,
    /// The user's domain filter: only matching zones are read.
    pub domain_filter: DomainFilter,
}

impl fmt::Debug for PdnsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdnsConfig")
            .field("server", &self.server)
            .field("server_id", &self.server_id)
            .field("api_key", &"******")
            .finish_non_exhaustive()
    }
}

/// The PowerDNS provider.
pub struct Pdns {
    config: PdnsConfig,
    http: HttpClient,
    /// Zone names of the last listing (with trailing dots).
    zones: Mutex<Vec<String>>,
}

impl fmt::Debug for Pdns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pdns")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct ZoneSummary {
    name: String,
    id: String,
}

#[derive(Debug, Deserialize)]
struct Zone {
    #[serde(default)]
    rrsets: Vec<RrSet>,
}

#[derive(Debug, Deserialize, Serialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    changetype: Option<&'static str>,
    #[serde(default)]
    records: Vec<Record>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Record {
    content: String,
    #[serde(default)]
    disabled: bool,
}

#[derive(Serialize)]
struct Patch<'a> {
    rrsets: &'a [RrSet],
}

// === impl Pdns ===

impl Pdns {
    /// A provider for `config`.
    pub fn new(config: PdnsConfig) -> Result<Self, String> {
        let tls = TlsFiles {
            skip_verify: config.skip_tls_verify,
            ca: config.tls_ca.clone(),
            client_cert: config.tls_client_cert.clone(),
            client_key: config.tls_client_key.clone(),
        };
        let http = HttpClient::new(PROVIDER, "--pdns-server", &config.server, &tls)?;
        Ok(Self {
            config,
            http,
            zones: Mutex::new(Vec::new()),
        })
    }

    fn endpoint(&self) -> String {
        self.http.base()
    }

    /// One HTTP request; the status, the body and a 429's `Retry-After`.
    async fn request_once(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<(StatusCode, Bytes, Option<Duration>), ProviderError> {
        let request = self
            .http
            .builder(method, path)
            .header("X-API-Key", &self.config.api_key)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| ProviderError::Unreachable {
                provider: PROVIDER,
                endpoint: self.endpoint(),
                detail: format!("building the request: {e}"),
            })?;
        let response = self.http.send(request).await?;
        let retry_after = (response.status == StatusCode::TOO_MANY_REQUESTS)
            .then_some(response.retry_after)
            .flatten()
            .map(|wait| wait.min(MAX_RETRY_AFTER));
        Ok((response.status, response.body, retry_after))
    }

    /// A request with retries (after a 429's `Retry-After`, else 250 ms,
    /// 500 ms, 1 s); the body of a 2xx answer.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Bytes, ProviderError> {
        let mut attempt = 0;
        loop {
            let (error, retry_after) = match self.request_once(&method, path, body).await {
                Ok((status, body, _)) if status.is_success() => return Ok(body),
                Ok((status, body, retry_after)) => {
                    (self.status_error(status, &body, path), retry_after)
                }
                Err(error) => (error, None),
            };
            if !error.is_retryable() || attempt >= BACKOFF.len() {
                return Err(error);
            }
            let pause = retry_after.unwrap_or(BACKOFF[attempt]);
            tracing::debug!(error = %error, retry_in = ?pause, "PowerDNS request failed; retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn status_error(&self, status: StatusCode, body: &[u8], path: &str) -> ProviderError {
        #[derive(Deserialize)]
        struct ApiError {
            error: String,
        }
        let reason = serde_json::from_slice::<ApiError>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| quote(body, &[&self.config.api_key]));
        let reason = super::http::redact(&reason, &[&self.config.api_key]);
        let endpoint = format!("{}{path}", self.endpoint());
        let detail = format!("HTTP {}: {reason}", status.as_u16());
        // 429 (a rate-limiting proxy in front of the API) means "later",
        // as 5xx does: retried at the next run, counted as `server`.
        match status.as_u16() {
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

    fn zones_path(&self) -> String {
        format!("/api/v1/servers/{}/zones", self.config.server_id)
    }

    async fn list(&self) -> Result<Vec<Endpoint>, ProviderError> {
        let body = self.request(Method::GET, &self.zones_path(), &[]).await?;
        let zones: Vec<ZoneSummary> =
            serde_json::from_slice(&body).map_err(|e| self.bad_json(&e))?;
        *self.zones.lock().unwrap_or_else(PoisonError::into_inner) =
            zones.iter().map(|z| z.name.clone()).collect();
        let mut out = Vec::new();
        for zone in zones {
            if !self.config.domain_filter.matches(&zone.name) {
                continue;
            }
            let path = format!("{}/{}", self.zones_path(), zone.id);
            let body = self.request(Method::GET, &path, &[]).await?;
            out.extend(zone_endpoints(&body).map_err(|e| self.bad_json(&e))?);
        }
        Ok(out)
    }

    fn bad_json(&self, error: &serde_json::Error) -> ProviderError {
        ProviderError::Server {
            provider: PROVIDER,
            endpoint: self.endpoint(),
            detail: format!("unexpected answer: {error}"),
        }
    }

    /// The zone (with trailing dot) holding `name`: the longest one.
    fn zone_of(&self, name: &str) -> Option<String> {
        let fqdn = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        let zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        zones
            .iter()
            .filter(|zone| {
                let zone = zone.to_ascii_lowercase();
                fqdn == zone || fqdn.ends_with(&format!(".{zone}"))
            })
            .max_by_key(|zone| zone.len())
            .cloned()
    }

    async fn patch(&self, endpoints: &[Endpoint], delete: bool) -> Result<(), ProviderError> {
        let mut by_zone: BTreeMap<String, Vec<RrSet>> = BTreeMap::new();
        let mut sorted: Vec<&Endpoint> = endpoints.iter().collect();
        sorted.sort_by(|a, b| (&a.dns_name, a.record_type).cmp(&(&b.dns_name, b.record_type)));
        for endpoint in sorted {
            let Some(zone) = self.zone_of(&endpoint.dns_name) else {
                tracing::warn!(name = %endpoint.dns_name, "no PowerDNS zone holds this name; skipped");
                continue;
            };
            by_zone
                .entry(zone)
                .or_default()
                .push(rrset(endpoint, delete));
        }
        for (zone, rrsets) in by_zone {
            let body = serde_json::to_vec(&Patch { rrsets: &rrsets }).unwrap_or_default();
            let path = format!("{}/{zone}", self.zones_path());
            self.request(Method::PATCH, &path, &body).await?;
        }
        Ok(())
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
        self.patch(&changes.create, false).await?;
        self.patch(&changes.update_new, false).await?;
        self.patch(&changes.delete, true).await
    }
}

/// One endpoint as a PATCH rrset.
/// The records of one zone as PowerDNS's `GET .../zones/{id}` answers it
/// (its `rrsets`): enabled records of the types sync knows, `ALIAS` as CNAME.
pub fn zone_endpoints(body: &[u8]) -> Result<Vec<Endpoint>, serde_json::Error> {
    let zone: Zone = serde_json::from_slice(body)?;
    let mut out = Vec::new();
    for rrset in zone.rrsets {
        let record_type = match rrset.record_type.as_str() {
            "ALIAS" => RecordType::Cname,
            other => match other.parse::<RecordType>() {
                Ok(t) => t,
                Err(_) => continue,
            },
        };
        let targets: Vec<String> = rrset
            .records
            .into_iter()
            .filter(|r| !r.disabled)
            .map(|r| r.content)
            .collect();
        if targets.is_empty() {
            continue;
        }
        out.push(Endpoint::new(&rrset.name, record_type, targets).with_ttl(rrset.ttl.unwrap_or(0)));
    }
    Ok(out)
}

fn rrset(endpoint: &Endpoint, delete: bool) -> RrSet {
    let alias =
        endpoint.record_type == RecordType::Cname && endpoint.property("alias") == Some("true");
    let dotted = matches!(
        endpoint.record_type,
        RecordType::Cname
            | RecordType::Dname
            | RecordType::Mx
            | RecordType::Srv
            | RecordType::Ns
            | RecordType::Ptr
    );
    let records = endpoint
        .targets
        .iter()
        .map(|target| {
            let content = if dotted
                && !target.ends_with('.')
                && target.parse::<std::net::IpAddr>().is_err()
            {
                format!("{target}.")
            } else {
                target.clone()
            };
            Record {
                content,
                disabled: false,
            }
        })
        .collect();
    RrSet {
        name: format!("{}.", endpoint.dns_name.trim_end_matches('.')),
        record_type: if alias {
            "ALIAS".to_owned()
        } else {
            endpoint.record_type.as_str().to_owned()
        },
        ttl: (!delete).then_some(if endpoint.ttl > 0 {
            endpoint.ttl
        } else {
            DEFAULT_TTL
        }),
        changetype: Some(if delete { "DELETE" } else { "REPLACE" }),
        records,
    }
}

impl Provider for Pdns {
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
        let names: Vec<String> = zones
            .iter()
            .map(|z| z.trim_end_matches('.').to_owned())
            .collect();
        Some(DomainFilter::new(&names, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(server: &str, api_key: &str) -> PdnsConfig {
        PdnsConfig {
            server: server.to_owned(),
            server_id: "localhost".to_owned(),
            api_key: api_key.to_owned(),
            skip_tls_verify: false,
            tls_ca: String::new(),
            tls_client_cert: String::new(),
            tls_client_key: String::new(),
            domain_filter: DomainFilter::default(),
        }
    }

    /// external-dns's PATCH body: FQDNs, REPLACE with TTL 300 by default,
    /// trailing dots on name targets, TXT verbatim, DELETE without TTL.
    #[test]
    fn patch_body() {
        let cname = Endpoint::new(
            "www.example.com",
            RecordType::Cname,
            vec!["lb.example.net".to_owned()],
        );
        let txt = Endpoint::new(
            "a-www.example.com",
            RecordType::Txt,
            vec!["\"heritage=external-dns\"".to_owned()],
        );
        let body = serde_json::to_string(&Patch {
            rrsets: &[rrset(&cname, false), rrset(&txt, true)],
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"rrsets":[{"name":"www.example.com.","type":"CNAME","ttl":300,"changetype":"REPLACE","records":[{"content":"lb.example.net.","disabled":false}]},{"name":"a-www.example.com.","type":"TXT","changetype":"DELETE","records":[{"content":"\"heritage=external-dns\"","disabled":false}]}]}"#
        );
        let secret = config("http://x", "top-secret");
        assert!(!format!("{secret:?}").contains("top-secret"));
    }

    /// A 429 is waited out for its `Retry-After` within the run, then the
    /// request succeeds.
    #[tokio::test]
    async fn throttled_requests_wait_for_retry_after() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut arrivals = Vec::new();
            for (n, stream) in listener.incoming().take(2).enumerate() {
                let mut stream = stream.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                arrivals.push(tokio::time::Instant::now());
                let (status, extra, body) = if n == 0 {
                    (
                        "429 Too Many Requests",
                        "Retry-After: 1\r\n",
                        r#"{"error":"slow down"}"#,
                    )
                } else {
                    ("200 OK", "", "[]")
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(reply.as_bytes()).unwrap();
            }
            arrivals
        });
        let pdns = Pdns::new(config(&format!("http://127.0.0.1:{port}"), "key")).unwrap();
        let body = pdns
            .request(Method::GET, "/api/v1/servers/localhost/zones", &[])
            .await
            .unwrap();
        assert_eq!(&body[..], b"[]");
        let arrivals = server.join().unwrap();
        // Retry-After (1 s), not the first backoff step (250 ms).
        assert!(
            arrivals[1] - arrivals[0] >= Duration::from_millis(950),
            "{arrivals:?}"
        );
    }

    /// 401/403 need an operator, 429 and 5xx only time, other 4xx are the
    /// change's fault; the API key never reaches the detail.
    #[test]
    fn status_errors_by_kind() {
        let pdns = Pdns::new(config("http://127.0.0.1:8081", "top-secret")).unwrap();
        for (status, kind, retryable) in [
            (401, "unauthorized", false),
            (403, "unauthorized", false),
            (422, "rejected", false),
            (429, "server", true),
            (500, "server", true),
            (503, "server", true),
        ] {
            let error = pdns.status_error(
                StatusCode::from_u16(status).unwrap(),
                br#"{"error": "no: top-secret"}"#,
                "/api/v1/servers/localhost/zones",
            );
            assert_eq!(
                (error.kind(), error.is_retryable()),
                (kind, retryable),
                "{status}"
            );
            assert!(!error.to_string().contains("top-secret"), "{error}");
        }
    }
}
