//! A fake Google Cloud DNS API (v1) and Google OAuth 2.0 token endpoint for
//! signpost's tests, strictly as the published references describe them.
//!
//! References:
//! - Cloud DNS API v1, <https://cloud.google.com/dns/docs/reference/rest/v1>:
//!   `managedZones.list` (`pageToken`, `nextPageToken`, `visibility`),
//!   `resourceRecordSets.list` (`maxResults`, `pageToken`),
//!   `changes.create` (`additions`, `deletions`; applied atomically; a
//!   deletion must match the existing set exactly, an addition must not
//!   exist yet); Google API error bodies `{"error": {"code", "message",
//!   "errors": [{"domain", "reason"}], "status"}}`; 429 `rateLimitExceeded`;
//! - "Using OAuth 2.0 for Server to Server Applications",
//!   <https://developers.google.com/identity/protocols/oauth2/service-account>:
//!   `POST token_uri` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//!   and an RS256 JWT assertion (`iss` the client email, `scope`, `aud` the
//!   token URI, `iat`, `exp` at most an hour later); `invalid_grant` errors.
//!
//! Strict: the JWT's signature is verified against the service account's
//! key, its claims checked; bearer tokens must be ones it issued; unknown
//! body fields, a wrong project, names outside the zone or without a
//! trailing dot, a deletion that does not match, an addition that exists
//! are refused; a rejected change changes nothing.
//!
//! A std-thread HTTP/1.1 server (one request per connection, then close).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SCOPE: &str = "https://www.googleapis.com/auth/ndev.clouddns.readwrite";

/// One record set as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrSet {
    /// Fully qualified, with the trailing dot.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Data in presentation form.
    pub rrdatas: Vec<String>,
    /// Always `dns#resourceRecordSet` in answers; optional in requests.
    #[serde(default = "rrset_kind", skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

fn rrset_kind() -> String {
    "dns#resourceRecordSet".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    additions: Vec<RrSet>,
    #[serde(default)]
    deletions: Vec<RrSet>,
    #[serde(default)]
    kind: Option<String>,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The request body.
    pub body: String,
}

#[derive(Debug)]
struct Zone {
    name: String,
    dns_name: String,
    visibility: String,
    sets: Vec<RrSet>,
}

#[derive(Debug)]
struct State {
    project: String,
    client_email: String,
    public_key: Vec<u8>,
    token_path: String,
    tokens: Vec<String>,
    zones: Vec<Zone>,
    rate_limited: usize,
    seen: Vec<Seen>,
    next: u64,
}

/// A running fake.
#[derive(Debug, Clone)]
pub struct FakeGoogleDns {
    port: u16,
    state: Arc<Mutex<State>>,
}

type Answer = (u16, Value);

fn api_error(code: u16, reason: &str, status: &str, message: &str) -> Answer {
    (
        code,
        json!({"error": {"code": code, "message": message, "errors": [{"domain": "global", "reason": reason, "message": message}], "status": status}}),
    )
}

// === impl FakeGoogleDns ===

impl FakeGoogleDns {
    /// Starts the fake for `project`; tokens go to service account
    /// `client_email` whose PKCS#8 PEM private key is `private_key_pem`.
    pub fn start(project: &str, client_email: &str, private_key_pem: &str) -> Self {
        let der = pem_body(private_key_pem).expect("a PKCS#8 PEM private key");
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("an RSA key");
        let public_key = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Google fake");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State {
            project: project.to_owned(),
            client_email: client_email.to_owned(),
            public_key,
            token_path: "/token".to_owned(),
            tokens: Vec::new(),
            zones: Vec::new(),
            rate_limited: 0,
            seen: Vec::new(),
            next: 0,
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

    /// The API base URL, `http://127.0.0.1:<port>/dns/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/dns/v1", self.port)
    }

    /// The token URI for the service account file.
    pub fn token_uri(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a managed zone (`visibility` `public` or `private`).
    pub fn add_zone(&self, name: &str, dns_name: &str, visibility: &str) {
        self.lock().zones.push(Zone {
            name: name.to_owned(),
            dns_name: format!("{}.", dns_name.trim_end_matches('.')),
            visibility: visibility.to_owned(),
            sets: Vec::new(),
        });
    }

    /// Every record set of a managed zone.
    pub fn rrsets(&self, zone: &str) -> Vec<RrSet> {
        self.lock()
            .zones
            .iter()
            .find(|z| z.name == zone)
            .map(|z| z.sets.clone())
            .unwrap_or_default()
    }

    /// Seeds a record set behind the API's back.
    pub fn insert(&self, zone: &str, set: RrSet) {
        if let Some(z) = self.lock().zones.iter_mut().find(|z| z.name == zone) {
            z.sets.push(set);
        }
    }

    /// Answers the next `n` API requests with 429.
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
            let is_token = target.split('?').next() == Some(state.token_path.as_str());
            let (status, value, retry) = if is_token {
                let (s, v) = token(&mut state, &method, &body);
                (s, v, false)
            } else if state.rate_limited > 0 {
                state.rate_limited -= 1;
                let (s, v) = api_error(
                    429,
                    "rateLimitExceeded",
                    "RESOURCE_EXHAUSTED",
                    "Rate Limit Exceeded",
                );
                (s, v, true)
            } else {
                let bearer = header(&head, "authorization").unwrap_or_default();
                let (s, v) = api(&mut state, &method, &target, &bearer, &body);
                (s, v, false)
            };
            state.seen.push(Seen {
                method: method.clone(),
                path: target.clone(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            (status, value, retry)
        };
        let text = value.to_string();
        let extra = if retry { "Retry-After: 1\r\n" } else { "" };
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    }
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
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
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The JWT bearer grant (RFC 7523 §2.1) as Google's token endpoint checks it.
fn token(state: &mut State, method: &str, body: &[u8]) -> Answer {
    let grant_error = |description: &str| {
        (
            400,
            json!({"error": "invalid_grant", "error_description": description}),
        )
    };
    if method != "POST" {
        return (405, json!({"error": "invalid_request"}));
    }
    let form = params(&String::from_utf8_lossy(body));
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            400,
            json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return grant_error("Missing assertion");
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header_b64, claims_b64, signature_b64] = parts.as_slice() else {
        return grant_error(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        );
    };
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (Ok(header_json), Ok(claims_json), Ok(signature)) = (
        url.decode(header_b64),
        url.decode(claims_b64),
        url.decode(signature_b64),
    ) else {
        return grant_error("Invalid JWT: not base64url");
    };
    let header: Value = serde_json::from_slice(&header_json).unwrap_or(Value::Null);
    if header["alg"] != "RS256" {
        return grant_error("Invalid JWT: alg must be RS256");
    }
    let message = format!("{header_b64}.{claims_b64}");
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &state.public_key,
    );
    if key.verify(message.as_bytes(), &signature).is_err() {
        return grant_error("Invalid JWT Signature.");
    }
    let claims: Value = serde_json::from_slice(&claims_json).unwrap_or(Value::Null);
    if claims["iss"] != state.client_email.as_str() {
        return grant_error("Invalid JWT: iss is not the service account");
    }
    if !claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|s| s == SCOPE))
    {
        return (
            400,
            json!({"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."}),
        );
    }
    if !claims["aud"]
        .as_str()
        .is_some_and(|a| a.ends_with(&state.token_path))
    {
        return grant_error("Invalid JWT: aud is not the token URI");
    }
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    let t = now();
    if iat > t + 60 || exp <= t || exp > iat + 3600 {
        return grant_error(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    state.next += 1;
    let token = format!("ya29.fake-google-token-{}", state.next);
    state.tokens.push(token.clone());
    (
        200,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn api(state: &mut State, method: &str, target: &str, bearer: &str, body: &[u8]) -> Answer {
    let known = bearer
        .strip_prefix("Bearer ")
        .is_some_and(|t| state.tokens.iter().any(|k| k == t));
    if !known {
        return api_error(
            401,
            "authError",
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = params(query);
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let ["dns", "v1", "projects", project, "managedZones", rest @ ..] = parts.as_slice() else {
        return api_error(
            404,
            "notFound",
            "NOT_FOUND",
            "The requested URL was not found on this server.",
        );
    };
    if *project != state.project {
        return api_error(
            403,
            "forbidden",
            "PERMISSION_DENIED",
            &format!("Forbidden: project {project} (or it may not exist)"),
        );
    }
    let skip: usize = query
        .get("pageToken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    match (method, rest) {
        ("GET", []) => {
            let all: Vec<Value> = state
                .zones
                .iter()
                .enumerate()
                .map(|(i, z)| json!({"kind": "dns#managedZone", "id": (1000 + i).to_string(), "name": z.name, "dnsName": z.dns_name, "visibility": z.visibility}))
                .collect();
            let page: Vec<Value> = all.iter().skip(skip).take(2).cloned().collect();
            let mut out = json!({"kind": "dns#managedZonesListResponse", "managedZones": page});
            if skip + 2 < all.len() {
                out["nextPageToken"] = json!((skip + 2).to_string());
            }
            (200, out)
        }
        (_, [zone, ..]) if !state.zones.iter().any(|z| z.name == *zone) => api_error(
            404,
            "notFound",
            "NOT_FOUND",
            &format!("The 'parameters.managedZone' resource named '{zone}' does not exist."),
        ),
        ("GET", [zone, "rrsets"]) => {
            let max: usize = query
                .get("maxResults")
                .and_then(|t| t.parse().ok())
                .unwrap_or(100);
            if max == 0 || max > 1000 {
                return api_error(
                    400,
                    "invalid",
                    "INVALID_ARGUMENT",
                    "Invalid value for 'parameters.maxResults'",
                );
            }
            let sets = &state
                .zones
                .iter()
                .find(|z| z.name == *zone)
                .map(|z| z.sets.clone())
                .unwrap_or_default();
            let page: Vec<&RrSet> = sets.iter().skip(skip).take(max).collect();
            let mut out = json!({"kind": "dns#resourceRecordSetsListResponse", "rrsets": page});
            if skip + max < sets.len() {
                out["nextPageToken"] = json!((skip + max).to_string());
            }
            (200, out)
        }
        ("POST", [zone, "changes"]) => {
            let change: ChangeBody = match serde_json::from_slice(body) {
                Ok(c) => c,
                Err(e) => {
                    return api_error(
                        400,
                        "invalid",
                        "INVALID_ARGUMENT",
                        &format!("Invalid JSON payload received. {e}"),
                    );
                }
            };
            if change.kind.as_deref().is_some_and(|k| k != "dns#change") {
                return api_error(400, "invalid", "INVALID_ARGUMENT", "Invalid value for kind");
            }
            let Some(z) = state.zones.iter_mut().find(|z| z.name == *zone) else {
                return api_error(404, "notFound", "NOT_FOUND", "zone");
            };
            let mut sets = z.sets.clone();
            for (i, deletion) in change.deletions.iter().enumerate() {
                let Some(at) = sets.iter().position(|s| {
                    s.name == deletion.name
                        && s.record_type == deletion.record_type
                        && s.ttl == deletion.ttl
                        && s.rrdatas == deletion.rrdatas
                }) else {
                    return api_error(
                        412,
                        "conditionNotMet",
                        "FAILED_PRECONDITION",
                        &format!("Precondition not met for 'entity.change.deletions[{i}]'"),
                    );
                };
                sets.remove(at);
            }
            for (i, addition) in change.additions.iter().enumerate() {
                if !addition.name.ends_with('.')
                    || !(addition.name == z.dns_name
                        || addition.name.ends_with(&format!(".{}", z.dns_name)))
                {
                    return api_error(
                        400,
                        "invalid",
                        "INVALID_ARGUMENT",
                        &format!(
                            "Invalid value for 'entity.change.additions[{i}].name': '{}'",
                            addition.name
                        ),
                    );
                }
                if addition.rrdatas.is_empty() {
                    return api_error(
                        400,
                        "invalid",
                        "INVALID_ARGUMENT",
                        &format!("The resource 'entity.change.additions[{i}]' has no rrdatas"),
                    );
                }
                if addition.record_type == "A"
                    && addition
                        .rrdatas
                        .iter()
                        .any(|d| d.parse::<std::net::Ipv4Addr>().is_err())
                {
                    return api_error(
                        400,
                        "invalidRecordData",
                        "INVALID_ARGUMENT",
                        &format!("Invalid record data for 'entity.change.additions[{i}]'"),
                    );
                }
                if sets
                    .iter()
                    .any(|s| s.name == addition.name && s.record_type == addition.record_type)
                {
                    return api_error(
                        409,
                        "alreadyExists",
                        "ALREADY_EXISTS",
                        &format!(
                            "The resource 'entity.change.additions[{i}]' named '{} ({})' already exists",
                            addition.name, addition.record_type
                        ),
                    );
                }
                let cname_clash = sets.iter().any(|s| {
                    s.name == addition.name
                        && (s.record_type == "CNAME") != (addition.record_type == "CNAME")
                });
                if cname_clash {
                    return api_error(
                        400,
                        "cnameResourceRecordSetConflict",
                        "INVALID_ARGUMENT",
                        "A CNAME cannot coexist with other record sets at a name",
                    );
                }
                let mut set = addition.clone();
                set.kind = rrset_kind();
                sets.push(set);
            }
            z.sets = sets;
            state.next += 1;
            (
                200,
                json!({"kind": "dns#change", "id": state.next.to_string(), "status": "done", "additions": change.additions, "deletions": change.deletions}),
            )
        }
        _ => api_error(
            405,
            "methodNotAllowed",
            "METHOD_NOT_ALLOWED",
            "Method not allowed",
        ),
    }
}
