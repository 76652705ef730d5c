//! A fake Cloudflare DNS API (v4) for signpost's tests: zones and DNS
//! records, strictly as Cloudflare's published API reference describes them.
//!
//! Reference: Cloudflare API v4, <https://developers.cloudflare.com/api/>:
//! "Zones › List Zones" (`GET /zones`, `page`, `per_page` 5–50), "DNS ›
//! Records › List DNS Records" (`GET /zones/{zone_id}/dns_records`, `page`,
//! `per_page` 5–5,000, default 100), "Batch DNS Records"
//! (`POST /zones/{zone_id}/dns_records/batch`: `deletes`, `patches`, `puts`,
//! `posts`, applied in that order as one transaction: all or nothing),
//! "Create/Overwrite/Delete DNS Record"; the v4 envelope (`success`,
//! `errors` `[{code, message}]`, `messages`, `result`, `result_info`); API
//! tokens as `Authorization: Bearer`; rate limiting (HTTP 429 with
//! `Retry-After`, error 971) from "Rate limits".
//!
//! Strict where the real API is: unknown body fields, a TTL other than 1
//! (automatic) or 60–86,400, a proxied record of a type that cannot be
//! proxied (only A, AAAA, CNAME can), a name outside the zone, an A/AAAA
//! content that is not an address of the family, an identical duplicate, a
//! CNAME beside other records at the name, an unknown record id, a
//! `per_page` out of range, a missing or wrong token: each answered with the
//! API's status and error code, and a rejected batch changes nothing.
//!
//! A std-thread HTTP/1.1 server (one request per connection, then close);
//! tests read and seed its state directly.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A DNS record as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Record id (32 hex digits).
    pub id: String,
    /// Zone id.
    pub zone_id: String,
    /// Zone name.
    pub zone_name: String,
    /// Fully qualified name, no trailing dot.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Content (TXT as given).
    pub content: String,
    /// Whether traffic goes through Cloudflare's proxy.
    pub proxied: bool,
    /// Whether the record could be proxied.
    pub proxiable: bool,
    /// TTL; 1 means automatic.
    pub ttl: u32,
    /// MX priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Comment.
    pub comment: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
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
    /// The request head (headers included).
    pub head: String,
    /// The request body.
    pub body: String,
}

#[derive(Debug, Default)]
struct State {
    token: String,
    zones: Vec<(String, String)>,
    records: Vec<Record>,
    next_id: u64,
    rate_limited: usize,
    seen: Vec<Seen>,
}

/// A running fake.
#[derive(Debug, Clone)]
pub struct FakeCloudflare {
    port: u16,
    state: Arc<Mutex<State>>,
}

/// The fields a record body may carry ("DNS Record" schema, the subset of
/// types signpost writes); anything else is rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    record_type: Option<String>,
    name: Option<String>,
    content: Option<String>,
    ttl: Option<u32>,
    proxied: Option<bool>,
    priority: Option<u16>,
    comment: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    deletes: Vec<IdOnly>,
    #[serde(default)]
    patches: Vec<RecordBody>,
    #[serde(default)]
    puts: Vec<RecordBody>,
    #[serde(default)]
    posts: Vec<RecordBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdOnly {
    id: String,
}

type Answer = (u16, Value);

fn failure(status: u16, code: u32, message: &str) -> Answer {
    (
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
    )
}

fn success(result: Value, info: Option<Value>) -> Answer {
    let mut body = json!({"success": true, "errors": [], "messages": [], "result": result});
    if let Some(info) = info {
        body["result_info"] = info;
    }
    (200, body)
}

// === impl FakeCloudflare ===

impl FakeCloudflare {
    /// Starts the fake on 127.0.0.1 (port 0); requests must carry `token`.
    pub fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Cloudflare fake");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            next_id: 1,
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

    /// The API base URL, `http://127.0.0.1:<port>/client/v4`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a zone; its id.
    pub fn add_zone(&self, name: &str) -> String {
        let mut state = self.lock();
        let id = format!("{:032x}", 0x00c0_ffee_0000_u64 + state.next_id);
        state.next_id += 1;
        state.zones.push((id.clone(), name.to_owned()));
        id
    }

    /// Every record of a zone.
    pub fn records(&self, zone: &str) -> Vec<Record> {
        self.lock()
            .records
            .iter()
            .filter(|r| r.zone_name == zone)
            .cloned()
            .collect()
    }

    /// Seeds a record behind the API's back.
    pub fn insert(&self, zone: &str, name: &str, record_type: &str, content: &str) {
        let mut state = self.lock();
        let zone_id = state
            .zones
            .iter()
            .find(|(_, n)| n == zone)
            .map(|(id, _)| id.clone())
            .expect("zone exists");
        let id = format!("{:032x}", state.next_id);
        state.next_id += 1;
        state.records.push(Record {
            id,
            zone_id,
            zone_name: zone.to_owned(),
            name: name.to_owned(),
            record_type: record_type.to_owned(),
            content: content.to_owned(),
            proxied: false,
            proxiable: matches!(record_type, "A" | "AAAA" | "CNAME"),
            ttl: 1,
            priority: None,
            comment: None,
            tags: Vec::new(),
        });
    }

    /// Answers the next `n` requests with 429 Too Many Requests.
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
        let authorization = header(&head, "authorization");
        let (status, value, retry_after) = {
            let mut state = self.lock();
            let (status, value, retry_after) = if state.rate_limited > 0 {
                state.rate_limited -= 1;
                let (status, value) = failure(
                    429,
                    971,
                    "Please wait and consider throttling your request speed",
                );
                (status, value, true)
            } else {
                let (status, value) = route(
                    &mut state,
                    &method,
                    &target,
                    authorization.as_deref(),
                    &body,
                );
                (status, value, false)
            };
            state.seen.push(Seen {
                method: method.clone(),
                path: target.clone(),
                status,
                head: head.clone(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            (status, value, retry_after)
        };
        let text = value.to_string();
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let extra = if retry_after {
            "Retry-After: 1\r\n"
        } else {
            ""
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
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

fn query(target: &str) -> Vec<(String, String)> {
    target
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `page` and `per_page` within `[min, max]`; 400 otherwise.
fn paging(target: &str, default: usize, min: usize, max: usize) -> Result<(usize, usize), Answer> {
    let params = query(target);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let page = match get("page") {
        None => 1,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| failure(400, 1001, "page must be a positive integer"))?,
    };
    let per_page = match get("per_page") {
        None => default,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|p| (min..=max).contains(p))
            .ok_or_else(|| {
                failure(
                    400,
                    1004,
                    &format!("per_page must be between {min} and {max}"),
                )
            })?,
    };
    Ok((page, per_page))
}

fn page_of<T: Serialize>(items: &[T], page: usize, per_page: usize) -> Answer {
    let start = (page - 1) * per_page;
    let slice: Vec<&T> = items.iter().skip(start).take(per_page).collect();
    let info = json!({
        "page": page,
        "per_page": per_page,
        "count": slice.len(),
        "total_count": items.len(),
        "total_pages": items.len().div_ceil(per_page),
    });
    success(json!(slice), Some(info))
}

fn route(
    state: &mut State,
    method: &str,
    target: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Answer {
    match authorization {
        None => return failure(400, 6003, "Invalid request headers"),
        Some(value) if value != format!("Bearer {}", state.token) => {
            return failure(403, 10000, "Authentication error");
        }
        Some(_) => {}
    }
    let path = target.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/client/v4/zones") else {
        return failure(404, 7003, "Could not route to the requested path");
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        ("GET", []) => {
            let (page, per_page) = match paging(target, 20, 5, 50) {
                Ok(p) => p,
                Err(answer) => return answer,
            };
            let zones: Vec<Value> = state
                .zones
                .iter()
                .map(|(id, name)| json!({"id": id, "name": name, "status": "active", "paused": false, "type": "full"}))
                .collect();
            page_of(&zones, page, per_page)
        }
        (_, [zone, "dns_records", ..]) if !state.zones.iter().any(|(id, _)| id == zone) => failure(
            404,
            7003,
            "Could not route to /zones/{zone_id}/dns_records, perhaps your object identifier is invalid?",
        ),
        ("GET", [zone, "dns_records"]) => {
            let (page, per_page) = match paging(target, 100, 5, 5000) {
                Ok(p) => p,
                Err(answer) => return answer,
            };
            let records: Vec<&Record> = state
                .records
                .iter()
                .filter(|r| r.zone_id == *zone)
                .collect();
            page_of(&records, page, per_page)
        }
        ("POST", [zone, "dns_records", "batch"]) => {
            let batch: BatchBody = match serde_json::from_slice(body) {
                Ok(b) => b,
                Err(e) => return failure(400, 9207, &format!("Request body is invalid: {e}")),
            };
            batch_apply(state, zone, batch)
        }
        ("POST", [zone, "dns_records"]) => {
            let record: RecordBody = match serde_json::from_slice(body) {
                Ok(b) => b,
                Err(e) => return failure(400, 9207, &format!("Request body is invalid: {e}")),
            };
            let batch = BatchBody {
                deletes: Vec::new(),
                patches: Vec::new(),
                puts: Vec::new(),
                posts: vec![record],
            };
            let (status, value) = batch_apply(state, zone, batch);
            if status != 200 {
                return (status, value);
            }
            success(value["result"]["posts"][0].clone(), None)
        }
        ("DELETE", [zone, "dns_records", id]) => {
            let batch = BatchBody {
                deletes: vec![IdOnly {
                    id: (*id).to_owned(),
                }],
                patches: Vec::new(),
                puts: Vec::new(),
                posts: Vec::new(),
            };
            let (status, value) = batch_apply(state, zone, batch);
            if status != 200 {
                return (status, value);
            }
            success(json!({"id": id}), None)
        }
        _ => failure(405, 10405, "Method not allowed for this path"),
    }
}

/// Validates and applies a batch on a copy; the copy replaces the records
/// only when every operation succeeded.
fn batch_apply(state: &mut State, zone_id: &str, batch: BatchBody) -> Answer {
    let zone_name = state
        .zones
        .iter()
        .find(|(id, _)| id == zone_id)
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    let mut records = state.records.clone();
    let mut next_id = state.next_id;
    let mut done: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for delete in &batch.deletes {
        let Some(at) = records
            .iter()
            .position(|r| r.id == delete.id && r.zone_id == zone_id)
        else {
            return failure(404, 81044, "Record does not exist.");
        };
        let removed = records.remove(at);
        done.entry("deletes").or_default().push(json!(removed));
    }
    for (kind, list) in [("patches", &batch.patches), ("puts", &batch.puts)] {
        for body in list {
            let Some(id) = &body.id else {
                return failure(400, 9000, "DNS record id is required");
            };
            let Some(at) = records
                .iter()
                .position(|r| &r.id == id && r.zone_id == zone_id)
            else {
                return failure(404, 81044, "Record does not exist.");
            };
            let old = records.remove(at);
            let merged = if kind == "patches" {
                RecordBody {
                    id: None,
                    record_type: body.record_type.clone().or(Some(old.record_type.clone())),
                    name: body.name.clone().or(Some(old.name.clone())),
                    content: body.content.clone().or(Some(old.content.clone())),
                    ttl: body.ttl.or(Some(old.ttl)),
                    proxied: body.proxied.or(Some(old.proxied)),
                    priority: body.priority.or(old.priority),
                    comment: body.comment.clone().or(old.comment.clone()),
                    tags: body.tags.clone().or(Some(old.tags.clone())),
                }
            } else {
                RecordBody {
                    id: None,
                    ..clone_body(body)
                }
            };
            let record = match validate(&merged, zone_id, &zone_name, &records, old.id.clone()) {
                Ok(r) => r,
                Err(answer) => return answer,
            };
            done.entry(kind).or_default().push(json!(record));
            records.push(record);
        }
    }
    for body in &batch.posts {
        if body.id.is_some() {
            return failure(400, 9207, "Request body is invalid: id is read-only");
        }
        let id = format!("{next_id:032x}");
        next_id += 1;
        let record = match validate(body, zone_id, &zone_name, &records, id) {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        done.entry("posts").or_default().push(json!(record));
        records.push(record);
    }
    state.records = records;
    state.next_id = next_id;
    let mut result = json!({"deletes": [], "patches": [], "puts": [], "posts": []});
    for (kind, list) in done {
        result[kind] = Value::Array(list);
    }
    success(result, None)
}

fn clone_body(body: &RecordBody) -> RecordBody {
    RecordBody {
        id: body.id.clone(),
        record_type: body.record_type.clone(),
        name: body.name.clone(),
        content: body.content.clone(),
        ttl: body.ttl,
        proxied: body.proxied,
        priority: body.priority,
        comment: body.comment.clone(),
        tags: body.tags.clone(),
    }
}

fn validate(
    body: &RecordBody,
    zone_id: &str,
    zone: &str,
    records: &[Record],
    id: String,
) -> Result<Record, Answer> {
    let (Some(record_type), Some(name), Some(content)) =
        (&body.record_type, &body.name, &body.content)
    else {
        return Err(failure(400, 9005, "type, name and content are required"));
    };
    let record_type = record_type.to_ascii_uppercase();
    if !matches!(
        record_type.as_str(),
        "A" | "AAAA" | "CNAME" | "TXT" | "MX" | "NS" | "SRV" | "CAA" | "PTR"
    ) {
        return Err(failure(400, 9007, "Invalid record type"));
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name != zone && !name.ends_with(&format!(".{zone}")) {
        return Err(failure(
            400,
            9005,
            "DNS name is invalid: it is not within the zone",
        ));
    }
    let ttl = body.ttl.unwrap_or(1);
    if ttl != 1 && !(60..=86400).contains(&ttl) {
        return Err(failure(
            400,
            9021,
            "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
        ));
    }
    let proxiable = matches!(record_type.as_str(), "A" | "AAAA" | "CNAME");
    let proxied = body.proxied.unwrap_or(false);
    if proxied && !proxiable {
        return Err(failure(400, 9004, "This record type cannot be proxied."));
    }
    match record_type.as_str() {
        "A" if content.parse::<std::net::Ipv4Addr>().is_err() => {
            return Err(failure(
                400,
                9005,
                "Content for A record is invalid. Must be a valid IPv4 address",
            ));
        }
        "AAAA" if content.parse::<std::net::Ipv6Addr>().is_err() => {
            return Err(failure(
                400,
                9005,
                "Content for AAAA record is invalid. Must be a valid IPv6 address",
            ));
        }
        "MX" if body.priority.is_none() => {
            return Err(failure(400, 9005, "MX records need a priority"));
        }
        _ => {}
    }
    let same_name: Vec<&Record> = records
        .iter()
        .filter(|r| r.zone_id == zone_id && r.name == name)
        .collect();
    if same_name
        .iter()
        .any(|r| r.record_type == record_type && r.content == *content)
    {
        return Err(failure(400, 81058, "An identical record already exists."));
    }
    if (record_type == "CNAME" && !same_name.is_empty())
        || same_name.iter().any(|r| r.record_type == "CNAME")
    {
        return Err(failure(
            400,
            81053,
            "An A, AAAA, or CNAME record with that host already exists.",
        ));
    }
    Ok(Record {
        id,
        zone_id: zone_id.to_owned(),
        zone_name: zone.to_owned(),
        name,
        record_type,
        content: content.clone(),
        proxied,
        proxiable,
        ttl: if proxied { 1 } else { ttl },
        priority: body.priority,
        comment: body.comment.clone(),
        tags: body.tags.clone().unwrap_or_default(),
    })
}
