//! The admin surface over real sockets on loopback: which paths each address
//! serves, the token, read-only methods, and the limits (issue 17, point 1 and
//! the limits of point 4).

use super::*;
use signpost_model::status::{
    EndpointReport, Explanation, GeoList, Overview, RecursionList, ServiceList,
};
use signpost_model::{BoxFuture, Refusal};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A role with nothing to show but its readiness.
struct Empty;

impl Status for Empty {
    fn ready(&self) -> bool {
        true
    }
    fn render_metrics(&self, out: &mut String) {
        out.push_str("# role metrics\n");
    }
    fn overview(&self) -> Overview {
        Overview {
            role: "dns".to_owned(),
            ..Overview::default()
        }
    }
    fn services(&self) -> BoxFuture<'_, ServiceList> {
        Box::pin(async { ServiceList::default() })
    }
    fn endpoints(&self) -> BoxFuture<'_, Option<Vec<EndpointReport>>> {
        Box::pin(async { None })
    }
    fn geo(&self) -> GeoList {
        GeoList::default()
    }
    fn explain(&self, name: &str, _: &str) -> Result<Explanation, Refusal> {
        Err(Refusal::NotFound(format!(
            "{name} is not a geographic name"
        )))
    }
    fn recursion(&self) -> RecursionList {
        RecursionList::default()
    }
}

const TOKEN: &str = "tk-5f1e0c-very-secret";

async fn start(surface: Surface, token: Option<&str>, limits: Limits) -> (SocketAddr, Site) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let site = Site {
        surface,
        token: token.map(Token::new),
        limits,
        metrics: Arc::new(AdminMetrics::default()),
    };
    tokio::spawn(serve(
        listener,
        Arc::new(Empty),
        site.clone(),
        CancellationToken::new(),
    ));
    (address, site)
}

/// One request on a fresh connection; returns the status code and the whole response.
async fn request(address: SocketAddr, raw: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

async fn get(address: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    request(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"),
    )
    .await
}

const ADMIN_PATHS: &[&str] = &[
    "/",
    "/api/v1/status",
    "/api/v1/services",
    "/api/v1/geo",
    "/api/v1/recursion",
    "/api/v1/openapi.yaml",
    "/fragments/live",
    "/assets/signpost.js",
];

/// Issue 17 point 1: a `health` address answers `/health` and nothing else;
/// a `ready` address `/ready`; neither shows any API.
#[tokio::test]
async fn each_address_serves_only_its_directives_paths() {
    let health = Surface {
        health: true,
        ..Surface::default()
    };
    let (address, _) = start(health, None, Limits::default()).await;
    assert_eq!(get(address, "/health", "").await.0, 200);
    for path in ["/ready", "/metrics"].iter().chain(ADMIN_PATHS) {
        assert_eq!(
            get(address, path, "").await.0,
            404,
            "{path} on the health port"
        );
    }
    let ready = Surface {
        ready: true,
        ..Surface::default()
    };
    let (address, _) = start(ready, None, Limits::default()).await;
    assert_eq!(get(address, "/ready", "").await.0, 200);
    for path in ["/health", "/metrics"].iter().chain(ADMIN_PATHS) {
        assert_eq!(
            get(address, path, "").await.0,
            404,
            "{path} on the ready port"
        );
    }
    let admin = Surface {
        admin: true,
        ..Surface::default()
    };
    let (address, _) = start(admin, None, Limits::default()).await;
    for path in ADMIN_PATHS {
        assert_eq!(
            get(address, path, "").await.0,
            200,
            "{path} on the admin port"
        );
    }
    assert_eq!(get(address, "/health", "").await.0, 404);
}

/// Issue 17 point 1: with a token, every admin path answers 401 without it
/// (and with a wrong one), 200 with it as Bearer or as the Basic password;
/// `/health` on the same address stays open for probes. The token appears
/// in no response.
#[tokio::test]
async fn token_guards_the_admin_paths() {
    let surface = Surface {
        health: true,
        admin: true,
        ..Surface::default()
    };
    let (address, site) = start(surface, Some(TOKEN), Limits::default()).await;
    let basic = "Authorization: Basic dXNlcjp0ay01ZjFlMGMtdmVyeS1zZWNyZXQ=\r\n"; // user:TOKEN
    for path in ADMIN_PATHS {
        let (code, text) = get(address, path, "").await;
        assert_eq!(code, 401, "{path} without a token: {text}");
        assert!(
            text.contains("WWW-Authenticate: Bearer") || text.contains("www-authenticate: Bearer"),
            "{text}"
        );
        assert!(!text.contains(TOKEN));
        let wrong = get(
            address,
            path,
            "Authorization: Bearer tk-5f1e0c-very-secreT\r\n",
        )
        .await;
        assert_eq!(wrong.0, 401, "{path} with a wrong token");
        let (code, text) = get(address, path, &format!("Authorization: Bearer {TOKEN}\r\n")).await;
        assert_eq!(code, 200, "{path} with the token");
        assert!(!text.contains(TOKEN), "{path} echoes the token");
        assert_eq!(get(address, path, basic).await.0, 200, "{path} with Basic");
    }
    assert_eq!(get(address, "/health", "").await.0, 200);
    assert_eq!(
        site.metrics.unauthorized.load(Relaxed),
        2 * ADMIN_PATHS.len() as u64
    );
}

/// Every endpoint is read-only: other methods are 405 with `Allow`, a body is 413.
#[tokio::test]
async fn only_reads_are_served() {
    let surface = Surface {
        health: true,
        admin: true,
        ..Surface::default()
    };
    let (address, _) = start(surface, None, Limits::default()).await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let (code, text) = request(
            address,
            &format!("{method} /api/v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(code, 405, "{method}: {text}");
        assert!(text.to_lowercase().contains("allow: get, head"), "{text}");
    }
    let (code, _) = request(
        address,
        "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(code, 413);
    let (code, text) = request(
        address,
        "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 200);
    assert!(!text.ends_with("OK"), "HEAD carries no body: {text}");
}

/// Too many headers or too large a head is refused (431) before any handler runs.
#[tokio::test]
async fn request_heads_are_bounded() {
    let surface = Surface {
        health: true,
        ..Surface::default()
    };
    let (address, _) = start(surface, None, Limits::default()).await;
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    let (code, _) = get(address, "/health", &many).await;
    assert_eq!(code, 431, "40 headers");
    let huge = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let (code, text) = get(address, "/health", &huge).await;
    assert!(code == 431 || code == 0, "a 20 kB header: {code} {text}");
    assert_eq!(get(address, "/health", "").await.0, 200);
}

/// A client that never finishes its headers (slowloris) is disconnected
/// after the header timeout; so is one idle after a request. Behavioural
/// bound: not before the timeout, and within it plus a 3 s margin.
#[tokio::test]
async fn slow_and_idle_clients_time_out() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let surface = Surface {
        health: true,
        ..Surface::default()
    };
    let (address, site) = start(surface, None, limits).await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(address).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut idle = TcpStream::connect(address).await.expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(address).await.expect("connect");
    for (name, stream) in [
        ("slow", &mut slow),
        ("idle", &mut idle),
        ("silent", &mut silent),
    ] {
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_millis(3500), async {
            // Trickle a header byte now and then: it must not keep the connection.
            loop {
                let mut buf = [0u8; 1024];
                match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
                {
                    Ok(Ok(0) | Err(_)) => return,
                    Ok(Ok(n)) => sink.extend_from_slice(&buf[..n]),
                    Err(_) => {
                        let _ = stream.write_all(b"X").await;
                    }
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{name} connection still open after 3.5 s");
    }
    assert!(started.elapsed() >= Duration::from_millis(450));
    // All three are gone from the open count.
    let deadline = Instant::now() + Duration::from_secs(5);
    while site.metrics.open() > 0 {
        assert!(Instant::now() < deadline, "connections still counted open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Past `max_connections`, new connections are closed at once and counted;
/// those in hand keep working, and capacity returns when they close.
#[tokio::test]
async fn connections_are_bounded() {
    let limits = Limits {
        max_connections: 8,
        ..Limits::default()
    };
    let surface = Surface {
        health: true,
        metrics: true,
        ..Surface::default()
    };
    let (address, site) = start(surface, None, limits).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(address).await.expect("connect"));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while site.metrics.open() < 8 {
        assert!(Instant::now() < deadline, "8 connections not open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut extra = TcpStream::connect(address).await.expect("connect");
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        read.is_err() || buf.is_empty(),
        "the ninth was served: {buf:?}"
    );
    assert_eq!(site.metrics.rejected.load(Relaxed), 1);
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, text) = get(address, "/metrics", "").await;
        if code == 200 {
            assert!(
                text.contains("signpost_admin_connections_rejected_total 1"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "capacity did not return");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
