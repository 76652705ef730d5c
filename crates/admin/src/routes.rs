//! The router: which path answers on which address, the JSON APIs, and the
//! checks every request passes (method, body, token).
//!
//! Admin plane. Every handler is read-only: the role's [`Status`] documents
//! are built per request from state the role already keeps. Order of checks:
//! a method other than GET or HEAD is 405, a request with a body 413, an
//! admin path without the token 401, a path this address does not serve 404.
//! The token is compared in constant time and never logged or echoed.

use crate::page;
use crate::site::{AdminMetrics, Site, Surface, Token};
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use signpost_model::{Refusal, Status};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// The OpenAPI description of the JSON paths, served at `/api/v1/openapi.yaml`.
pub(crate) const OPENAPI: &str = include_str!("../../../docs/admin-openapi.yaml");
const SCRIPT: &str = include_str!("../assets/signpost.js");
const STYLE: &str = include_str!("../assets/signpost.css");

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) status: Arc<dyn Status>,
    pub(crate) metrics: Arc<AdminMetrics>,
    token: Option<Token>,
}

/// Builds the router of one address: only the paths its `surface` names.
pub(crate) fn router(status: Arc<dyn Status>, site: &Site) -> Router {
    let app = App {
        status,
        metrics: site.metrics.clone(),
        token: site.token.clone(),
    };
    let Surface {
        health,
        ready,
        metrics,
        healthz,
        admin,
    } = site.surface;
    let mut router = Router::new();
    if health {
        router = router.route("/health", get(|| async { text(StatusCode::OK, "OK") }));
    }
    if healthz {
        router = router.route("/healthz", get(|| async { text(StatusCode::OK, "OK") }));
    }
    if ready {
        router = router.route("/ready", get(ready_handler));
    }
    if metrics {
        router = router.route("/metrics", get(metrics_handler));
    }
    if admin {
        let guarded = Router::new()
            .route("/", get(page_handler))
            .route("/fragments/live", get(live_fragment))
            .route("/fragments/explain", get(explain_fragment))
            .route(
                "/assets/signpost.js",
                get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
            )
            .route(
                "/assets/signpost.css",
                get(|| async { asset("text/css; charset=utf-8", STYLE) }),
            )
            .route(
                "/api/v1/openapi.yaml",
                get(|| async { asset("application/yaml", OPENAPI) }),
            )
            .route("/api/v1/status", get(overview_handler))
            .route("/api/v1/services", get(services_handler))
            .route("/api/v1/endpoints", get(endpoints_handler))
            .route("/api/v1/geo", get(geo_handler))
            .route("/api/v1/geo/explain", get(explain_handler))
            .route("/api/v1/recursion", get(recursion_handler))
            .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
        router = router.merge(guarded);
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn(read_only))
        .with_state(app)
}

// === checks ===

/// GET and HEAD only, no body, and the headers every answer carries.
async fn read_only(request: Request, next: Next) -> Response {
    let mut response = if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: the admin endpoints are read-only\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    } else if has_body(request.headers()) {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "requests to the admin endpoints carry no body\n",
        )
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    response
}

fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    length || headers.contains_key(header::TRANSFER_ENCODING)
}

/// The admin paths need the token when one is configured: `Authorization:
/// Bearer TOKEN`, or HTTP Basic with the token as the password (so a browser
/// can prompt for it).
async fn require_token(State(app): State<App>, request: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(request).await;
    };
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| credential(value.as_bytes()));
    if offered
        .as_deref()
        .is_some_and(|offered| token.matches(offered))
    {
        return next.run(request).await;
    }
    app.metrics.unauthorized.fetch_add(1, Relaxed);
    let mut response = json_error(StatusCode::UNAUTHORIZED, "a bearer token is required");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"signpost admin\", Basic realm=\"signpost admin\""),
    );
    response
}

/// The secret an `Authorization` header carries: a Bearer token, or the
/// password of Basic credentials.
fn credential(header: &[u8]) -> Option<Vec<u8>> {
    let (scheme, rest) = header.split_at(header.iter().position(|&b| b == b' ')?);
    let rest = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return Some(rest.to_vec());
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64_decode(rest)?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

/// RFC 4648 §4 base64 (with padding), as HTTP Basic credentials use it.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.chunks(4) {
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 {
            return None;
        }
        let mut bits = 0u32;
        for &c in &chunk[..4 - padding] {
            bits = (bits << 6) | value(c)?;
        }
        bits <<= 6 * padding;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}

// === handlers ===

async fn ready_handler(State(app): State<App>) -> Response {
    if app.status.ready() {
        text(StatusCode::OK, "OK")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no complete snapshot yet\n",
        )
    }
}

async fn metrics_handler(State(app): State<App>) -> Response {
    let mut body = String::with_capacity(16 * 1024);
    app.status.render_metrics(&mut body);
    app.metrics.render(&mut body);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn page_handler(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let query = page_query(query.as_deref());
    let overview = app.status.overview();
    let services = app.status.services().await;
    let geo = app.status.geo();
    let recursion = app.status.recursion();
    let explanation = (!query.name.is_empty() && !query.client.is_empty())
        .then(|| app.status.explain(query.name.trim(), query.client.trim()));
    let html = page::render(
        &overview,
        &services,
        &geo,
        &recursion,
        &query,
        explanation.as_ref(),
    );
    html_response(html)
}

async fn live_fragment(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let query = page_query(query.as_deref());
    let live = page::Live::render(
        &app.status.overview(),
        &app.status.services().await,
        &app.status.geo(),
        &app.status.recursion(),
        &query.search,
    );
    html_response(live.concat())
}

async fn explain_fragment(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let query = page_query(query.as_deref());
    let mut html = String::new();
    let explanation = app.status.explain(query.name.trim(), query.client.trim());
    page::render_explanation(&mut html, &explanation);
    html_response(html)
}

fn page_query(query: Option<&str>) -> page::Query {
    page::Query {
        search: parameter(query, "search").unwrap_or_default(),
        name: parameter(query, "name").unwrap_or_default(),
        client: parameter(query, "client").unwrap_or_default(),
    }
}

fn html_response(html: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn overview_handler(State(app): State<App>) -> Response {
    json(&app.status.overview())
}

async fn services_handler(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let mut list = app.status.services().await;
    if let Some(search) = parameter(query.as_deref(), "search").filter(|s| !s.is_empty()) {
        let search = search.to_lowercase();
        list.services.retain(|s| {
            format!("{}/{}", s.namespace, s.name)
                .to_lowercase()
                .contains(&search)
        });
    }
    json(&list)
}

async fn endpoints_handler(State(app): State<App>) -> Response {
    match app.status.endpoints().await {
        Some(endpoints) => json(&serde_json::json!({ "endpoints": endpoints })),
        None => json_error(
            StatusCode::NOT_FOUND,
            "health checks are off: no `healthcheck` plugin",
        ),
    }
}

async fn geo_handler(State(app): State<App>) -> Response {
    json(&app.status.geo())
}

async fn explain_handler(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let query = query.as_deref();
    let (Some(name), Some(client)) = (parameter(query, "name"), parameter(query, "client")) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected ?name=NAME&client=ADDRESS[/PREFIX]",
        );
    };
    let client = match parameter(query, "prefix") {
        None => client,
        Some(prefix) => match prefix.parse::<u8>() {
            Ok(prefix) if prefix <= 128 && !client.contains('/') => {
                format!("{}/{prefix}", client.trim())
            }
            Ok(_) if client.contains('/') => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "give the prefix once: in client or in prefix",
                );
            }
            _ => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "prefix is not a number from 0 to 128",
                );
            }
        },
    };
    match app.status.explain(name.trim(), client.trim()) {
        Ok(explanation) => json(&explanation),
        Err(Refusal::NotFound(message)) => json_error(StatusCode::NOT_FOUND, &message),
        Err(refusal) => json_error(StatusCode::BAD_REQUEST, &refusal.to_string()),
    }
}

async fn recursion_handler(State(app): State<App>) -> Response {
    json(&app.status.recursion())
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        json_error(StatusCode::NOT_FOUND, "no such path")
    } else {
        text(StatusCode::NOT_FOUND, "not found\n")
    }
}

// === helpers ===

/// The first value of `key` in a query string, percent-decoded.
fn parameter(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn json(document: &impl Serialize) -> Response {
    match serde_json::to_string_pretty(document) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn json_error(code: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn text(code: StatusCode, body: &'static str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7617 §2: Basic credentials are base64 of `user:password`; the
    /// password is the token. RFC 6750 §2.1: `Bearer TOKEN`.
    #[test]
    fn credentials_are_read_from_both_schemes() {
        assert_eq!(credential(b"Bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(credential(b"bearer  abc "), Some(b"abc".to_vec()));
        // "admin:s3cret"
        assert_eq!(
            credential(b"Basic YWRtaW46czNjcmV0"),
            Some(b"s3cret".to_vec())
        );
        // ":x"
        assert_eq!(credential(b"Basic Ong="), Some(b"x".to_vec()));
        assert_eq!(credential(b"Basic !!!!"), None);
        assert_eq!(credential(b"Digest abc"), None);
        assert_eq!(credential(b"Bearer"), None);
    }

    #[test]
    fn base64_round_numbers() {
        assert_eq!(base64_decode(b"").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode(b"Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64_decode(b"Zm8=").as_deref(), Some(&b"fo"[..]));
        assert_eq!(base64_decode(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(base64_decode(b"Zm9=v"), None);
        assert_eq!(base64_decode(b"Z==="), None);
    }
}
