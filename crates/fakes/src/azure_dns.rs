//! A fake Azure DNS (Azure Resource Manager) and Microsoft identity platform
//! token endpoint for signpost's tests, strictly as the published REST
//! references describe them.
//!
//! References:
//! - Azure DNS REST API 2018-05-01, <https://learn.microsoft.com/en-us/rest/api/dns/>:
//!   "Zones - List By Resource Group", "Record Sets - List All By Dns Zone"
//!   (`$top`, `nextLink` paging), "Record Sets - Create Or Update" (PUT),
//!   "Record Sets - Delete" (200, or 204 when absent); record set properties
//!   `TTL`, `ARecords[].ipv4Address`, `AAAARecords[].ipv6Address`,
//!   `CNAMERecord.cname`, `TXTRecords[].value[]`, `MXRecords[]`,
//!   `NSRecords[]`; ARM errors `{"error": {"code", "message"}}`, 429 with
//!   `Retry-After`, `api-version` required;
//! - Microsoft identity platform, "OAuth 2.0 client credentials flow",
//!   <https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>:
//!   `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`,
//!   `client_id`, `client_secret`, `scope`; errors `invalid_client`,
//!   `unauthorized_client`, `invalid_scope` as `{"error", "error_description"}`.
//!
//! Strict: unknown body fields, a missing or wrong bearer token (401
//! `AuthenticationFailed`), a wrong subscription or resource group (404
//! `ResourceGroupNotFound`), a record type whose data does not match the
//! URL's type, a TTL above 2,147,483,647, a CNAME set with more than one
//! target or beside other record sets, a missing `api-version`.
//!
//! A std-thread HTTP/1.1 server (one request per connection, then close);
//! tests read and seed its state directly.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const API_VERSION: &str = "2018-05-01";

/// One record set: (zone, relative name, type) → properties.
pub type Key = (String, String, String);

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The request head.
    pub head: String,
    /// The request body.
    pub body: String,
}

#[derive(Debug, Default)]
struct State {
    base: String,
    tenant: String,
    client_id: String,
    client_secret: String,
    subscription: String,
    resource_group: String,
    tokens: Vec<String>,
    zones: Vec<String>,
    sets: BTreeMap<Key, Value>,
    rate_limited: usize,
    seen: Vec<Seen>,
    next: u64,
}

/// A running fake.
#[derive(Debug, Clone)]
pub struct FakeAzureDns {
    port: u16,
    state: Arc<Mutex<State>>,
}

type Answer = (u16, Value);

fn arm_error(status: u16, code: &str, message: &str) -> Answer {
    (status, json!({"error": {"code": code, "message": message}}))
}

// === impl FakeAzureDns ===

impl FakeAzureDns {
    /// Starts the fake; only this tenant, client and secret get tokens, and
    /// only this subscription and resource group exist.
    pub fn start(
        tenant: &str,
        client_id: &str,
        client_secret: &str,
        subscription: &str,
        resource_group: &str,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Azure fake");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State {
            base: format!("http://127.0.0.1:{port}"),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            ..State::default()
        }));
        let fake = Self { port, state };
        let server = fake.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || server.serve(stream));
            }
        });
        fake
    }

    /// `http://127.0.0.1:<port>`: both the authority host and the resource
    /// manager endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a DNS zone to the resource group.
    pub fn add_zone(&self, zone: &str) {
        self.lock().zones.push(zone.to_owned());
    }

    /// Every record set of a zone: (relative name, type, properties).
    pub fn record_sets(&self, zone: &str) -> Vec<(String, String, Value)> {
        self.lock()
            .sets
            .iter()
            .filter(|((z, _, _), _)| z == zone)
            .map(|((_, name, t), p)| (name.clone(), t.clone(), p.clone()))
            .collect()
    }

    /// Seeds a record set behind the API's back.
    pub fn insert(&self, zone: &str, name: &str, record_type: &str, properties: Value) {
        self.lock().sets.insert(
            (zone.to_owned(), name.to_owned(), record_type.to_owned()),
            properties,
        );
    }

    /// Answers the next `n` ARM requests with 429.
    pub fn rate_limit_next(&self, n: usize) {
        self.lock().rate_limited = n;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some((head, body)) = read_request(&mut stream) else {
            return;
        };
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or("").to_owned();
        let target = words.next().unwrap_or("").to_owned();
        let (status, value, retry) = {
            let mut state = self.lock();
            let is_token = target.contains("/oauth2/v2.0/token");
            let (status, value, retry) = if !is_token && state.rate_limited > 0 {
                state.rate_limited -= 1;
                let (s, v) = arm_error(429, "TooManyRequests", "The request is being throttled.");
                (s, v, true)
            } else if is_token {
                let (s, v) = token(&mut state, &method, &target, &body);
                (s, v, false)
            } else {
                let (s, v) = arm(&mut state, &method, &target, &head, &body);
                (s, v, false)
            };
            state.seen.push(Seen {
                method: method.clone(),
                path: target.clone(),
                status,
                head: head.clone(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            (status, value, retry)
        };
        let text = if status == 204 {
            String::new()
        } else {
            value.to_string()
        };
        let extra = if retry { "Retry-After: 1\r\n" } else { "" };
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    }
}

fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16384];
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some((head, buffer[end..end + length].to_vec()))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(v) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn params(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

fn token(state: &mut State, method: &str, target: &str, body: &[u8]) -> Answer {
    let failure = |status: u16, error: &str, description: &str| {
        (
            status,
            json!({"error": error, "error_description": description}),
        )
    };
    if method != "POST" {
        return failure(
            405,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts POST requests.",
        );
    }
    let tenant = target
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if tenant != state.tenant {
        return failure(400, "invalid_request", "AADSTS90002: Tenant not found.");
    }
    let form = params(&String::from_utf8_lossy(body));
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return failure(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if form.get("scope").map(String::as_str) != Some("https://management.azure.com/.default") {
        return failure(
            400,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid.",
        );
    }
    if form.get("client_id") != Some(&state.client_id) {
        return failure(
            400,
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    if form.get("client_secret") != Some(&state.client_secret) {
        return failure(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    state.next += 1;
    let token = format!("fake-arm-token-{}-{}", state.next, state.tenant.len());
    state.tokens.push(token.clone());
    (
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

/// The record data key of each type.
fn data_key(record_type: &str) -> Option<&'static str> {
    Some(match record_type {
        "A" => "ARecords",
        "AAAA" => "AAAARecords",
        "CNAME" => "CNAMERecord",
        "TXT" => "TXTRecords",
        "MX" => "MXRecords",
        "NS" => "NSRecords",
        "SRV" => "SRVRecords",
        "PTR" => "PTRRecords",
        "CAA" => "caaRecords",
        _ => return None,
    })
}

fn arm(state: &mut State, method: &str, target: &str, head: &str, body: &[u8]) -> Answer {
    let bearer = header(head, "authorization").unwrap_or_default();
    let known = bearer
        .strip_prefix("Bearer ")
        .is_some_and(|t| state.tokens.iter().any(|k| k == t));
    if !known {
        return arm_error(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or invalid.",
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = params(query);
    if query.get("api-version").map(String::as_str) != Some(API_VERSION) {
        return arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Network/dnsZones[/{zone}[/...]]
    if parts.len() < 6
        || parts[0] != "subscriptions"
        || !parts[2].eq_ignore_ascii_case("resourceGroups")
        || parts[4] != "providers"
        || !parts[5].eq_ignore_ascii_case("Microsoft.Network")
    {
        return arm_error(
            404,
            "InvalidResourceType",
            "The resource type could not be found in the namespace.",
        );
    }
    if parts[1] != state.subscription {
        return arm_error(
            404,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", parts[1]),
        );
    }
    if !parts[3].eq_ignore_ascii_case(&state.resource_group) {
        return arm_error(
            404,
            "ResourceGroupNotFound",
            &format!("Resource group '{}' could not be found.", parts[3]),
        );
    }
    let prefix = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnszones",
        state.subscription, state.resource_group
    );
    match (method, &parts[6..]) {
        ("GET", ["dnsZones" | "dnszones"]) => {
            let value: Vec<Value> = state
                .zones
                .iter()
                .map(|z| json!({"id": format!("{prefix}/{z}"), "name": z, "type": "Microsoft.Network/dnszones", "location": "global", "properties": {"zoneType": "Public"}}))
                .collect();
            (200, json!({"value": value}))
        }
        (_, ["dnsZones" | "dnszones", zone, ..]) if !state.zones.iter().any(|z| z == zone) => {
            arm_error(
                404,
                "ResourceNotFound",
                &format!("The Resource 'Microsoft.Network/dnszones/{zone}' was not found."),
            )
        }
        ("GET", ["dnsZones" | "dnszones", zone, "recordsets" | "all"]) => {
            let top: usize = query
                .get("$top")
                .and_then(|t| t.parse().ok())
                .unwrap_or(100);
            let skip: usize = query
                .get("$skipToken")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let all: Vec<Value> = state
                .sets
                .iter()
                .filter(|((z, _, _), _)| z == zone)
                .map(|((z, name, t), p)| record_set_json(&prefix, z, name, t, p))
                .collect();
            let page: Vec<Value> = all.iter().skip(skip).take(top).cloned().collect();
            let mut out = json!({"value": page});
            if skip + top < all.len() {
                out["nextLink"] = json!(format!(
                    "{}{path}?api-version={API_VERSION}&$top={top}&$skipToken={}",
                    state.base,
                    skip + top
                ));
            }
            (200, out)
        }
        ("PUT", ["dnsZones" | "dnszones", zone, record_type, name]) => {
            let Some(key) = data_key(record_type) else {
                return arm_error(
                    400,
                    "BadRequest",
                    &format!("The record type '{record_type}' is not supported."),
                );
            };
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
                return arm_error(
                    400,
                    "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized.",
                );
            };
            if body.keys().any(|k| k != "properties" && k != "etag") {
                return arm_error(
                    400,
                    "InvalidRequestContent",
                    "The request content contains unknown members.",
                );
            }
            let Some(Value::Object(properties)) = body.get("properties") else {
                return arm_error(400, "InvalidRequestContent", "properties is required.");
            };
            if let Some(problem) = check_properties(record_type, key, properties) {
                return arm_error(400, "BadRequest", &problem);
            }
            let others_at_name = state
                .sets
                .keys()
                .any(|(z, n, t)| z == zone && n == name && t != record_type);
            let cname_at_name = state
                .sets
                .keys()
                .any(|(z, n, t)| z == zone && n == name && t == "CNAME");
            if (record_type == &"CNAME" && others_at_name)
                || (record_type != &"CNAME" && cname_at_name)
            {
                return arm_error(
                    409,
                    "Conflict",
                    "The CNAME record could not be created because another record with the same name already exists in this zone.",
                );
            }
            let key_tuple = (
                (*zone).to_owned(),
                (*name).to_owned(),
                (*record_type).to_owned(),
            );
            let created = !state.sets.contains_key(&key_tuple);
            let properties = Value::Object(properties.clone());
            state.sets.insert(key_tuple, properties.clone());
            (
                if created { 201 } else { 200 },
                record_set_json(&prefix, zone, name, record_type, &properties),
            )
        }
        ("DELETE", ["dnsZones" | "dnszones", zone, record_type, name]) => {
            let key = (
                (*zone).to_owned(),
                (*name).to_owned(),
                (*record_type).to_owned(),
            );
            match state.sets.remove(&key) {
                Some(_) => (200, Value::Null),
                None => (204, Value::Null),
            }
        }
        _ => arm_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed on this resource.",
        ),
    }
}

fn record_set_json(
    prefix: &str,
    zone: &str,
    name: &str,
    record_type: &str,
    properties: &Value,
) -> Value {
    let mut properties = properties.clone();
    let fqdn = if name == "@" {
        format!("{zone}.")
    } else {
        format!("{name}.{zone}.")
    };
    properties["fqdn"] = json!(fqdn);
    properties["provisioningState"] = json!("Succeeded");
    json!({
        "id": format!("{prefix}/{zone}/{record_type}/{name}"),
        "name": name,
        "type": format!("Microsoft.Network/dnszones/{record_type}"),
        "etag": "00000000-0000-0000-0000-000000000000",
        "properties": properties,
    })
}

fn check_properties(
    record_type: &str,
    key: &str,
    properties: &Map<String, Value>,
) -> Option<String> {
    let allowed = ["TTL", "metadata", key];
    if let Some(unknown) = properties.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Some(format!(
            "The property '{unknown}' is not valid for a record set of type {record_type}."
        ));
    }
    if properties
        .get("TTL")
        .is_some_and(|ttl| ttl.as_u64().is_none_or(|t| t > 2_147_483_647))
    {
        return Some("The TTL must be between 0 and 2147483647.".to_owned());
    }
    let Some(data) = properties.get(key) else {
        return Some(format!("A record set of type {record_type} needs {key}."));
    };
    let entries: Vec<&Value> = match (record_type, data) {
        ("CNAME", Value::Object(_)) => vec![data],
        ("CNAME", _) => return Some("CNAMERecord must be an object with one cname.".to_owned()),
        (_, Value::Array(list)) => list.iter().collect(),
        _ => return Some(format!("{key} must be an array.")),
    };
    for entry in entries {
        let ok = match record_type {
            "A" => entry["ipv4Address"]
                .as_str()
                .is_some_and(|a| a.parse::<std::net::Ipv4Addr>().is_ok()),
            "AAAA" => entry["ipv6Address"]
                .as_str()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
            "CNAME" => entry["cname"].as_str().is_some_and(|c| !c.is_empty()),
            "TXT" => entry["value"]
                .as_array()
                .is_some_and(|v| v.iter().all(Value::is_string)),
            "MX" => entry["preference"].is_u64() && entry["exchange"].is_string(),
            "NS" => entry["nsdname"].is_string(),
            _ => true,
        };
        if !ok {
            return Some(format!("An entry of {key} is invalid: {entry}"));
        }
    }
    None
}
