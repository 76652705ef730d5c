//! The status page: server-rendered HTML, one renderer for the whole page
//! and for the fragments the page's script fetches to stay live.
//!
//! Admin plane. Pure functions from the role's documents to HTML; every
//! value that came from the cluster goes through [`escape`]. The page works
//! without JavaScript (search and explain are plain GET forms); the script
//! (`assets/signpost.js`) only refreshes the `data-live` sections every two
//! seconds, searches as you type and shows explanations in place, by fetching
//! `/fragments/live` and `/fragments/explain` and swapping them in.

use signpost_model::Refusal;
use signpost_model::status::{
    EndpointReport, Explanation, GeoList, Overview, RecursionList, ServiceList, ServiceStatus,
};
use std::fmt::Write as _;

/// What the page was asked for.
#[derive(Debug, Default)]
pub(crate) struct Query {
    /// Service search text.
    pub(crate) search: String,
    /// The explain form's name.
    pub(crate) name: String,
    /// The explain form's client.
    pub(crate) client: String,
}

/// The whole page.
pub(crate) fn render(
    overview: &Overview,
    services: &ServiceList,
    geo: &GeoList,
    recursion: &RecursionList,
    query: &Query,
    explanation: Option<&Result<Explanation, Refusal>>,
) -> String {
    let live = Live::render(overview, services, geo, recursion, &query.search);
    let mut out = String::with_capacity(16 * 1024);
    let role = escape(&overview.role);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>signpost {role}</title><link rel=\"stylesheet\" href=\"/assets/signpost.css\">\
<script src=\"/assets/signpost.js\" defer></script></head>\n<body>\n<header>\
<h1>signpost <span class=\"role\">{role}</span></h1>\
<span class=\"meta\">version {}</span>\
<span class=\"meta\" id=\"updated\" aria-live=\"polite\">rendered by the server</span></header>\n<main>\n",
        escape(&overview.version),
    );
    out.push_str(&live.summary);
    out.push_str(&live.listeners);
    let _ = writeln!(
        out,
        "<section id=\"search-section\"><form id=\"search-form\" action=\"/\" method=\"get\" role=\"search\">\
<label for=\"search\">Search services</label> <input id=\"search\" name=\"search\" type=\"search\" \
autocomplete=\"off\" placeholder=\"namespace/name\" value=\"{}\"></form></section>",
        escape(&query.search)
    );
    out.push_str(&live.services);
    out.push_str(&live.geo);
    out.push_str(
        "<section id=\"explain-section\"><h2>Explain a geographic answer</h2>\
<form id=\"explain-form\" action=\"/\" method=\"get\" class=\"row\">",
    );
    let _ = write!(
        out,
        "<label>Name <input id=\"explain-name\" name=\"name\" list=\"geo-names\" required \
placeholder=\"api.geo.example.com\" value=\"{}\"></label>\
<label>Client <input id=\"explain-client\" name=\"client\" required \
placeholder=\"203.0.113.7 or 203.0.113.0/24\" value=\"{}\"></label>\
<button type=\"submit\">Explain</button></form><datalist id=\"geo-names\">",
        escape(&query.name),
        escape(&query.client)
    );
    for name in &geo.names {
        let _ = write!(out, "<option value=\"{}\">", escape(&name.name));
    }
    out.push_str("</datalist><div id=\"explanation\" aria-live=\"polite\">");
    if let Some(explanation) = explanation {
        render_explanation(&mut out, explanation);
    }
    out.push_str("</div></section>\n");
    out.push_str(&live.recursion);
    out.push_str("</main>\n</body></html>\n");
    out
}

/// The parts of the page that refresh, each one `<section id=.. data-live>`
/// (always present, `hidden` when empty) that the script swaps whole.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Readiness, uptime, health counts, reload state, source problems.
    pub(crate) summary: String,
    /// Listeners with zones and snapshots.
    pub(crate) listeners: String,
    /// Services matching the search, with endpoint health and history.
    pub(crate) services: String,
    /// Geographic names with their regions.
    pub(crate) geo: String,
    /// Cache and forwarders.
    pub(crate) recursion: String,
}

// === impl Live ===

impl Live {
    /// Renders every live section.
    pub(crate) fn render(
        overview: &Overview,
        services: &ServiceList,
        geo: &GeoList,
        recursion: &RecursionList,
        search: &str,
    ) -> Self {
        let now = unix_now();
        Self {
            summary: summary(overview, now),
            listeners: listeners(overview),
            services: service_list(services, search, now),
            geo: geo_names(geo),
            recursion: recursion_state(recursion),
        }
    }

    /// The sections one after another (the `/fragments/live` body).
    pub(crate) fn concat(&self) -> String {
        [
            &self.summary,
            &self.listeners,
            &self.services,
            &self.geo,
            &self.recursion,
        ]
        .into_iter()
        .map(String::as_str)
        .collect()
    }
}

fn section(id: &str, inner: &str) -> String {
    if inner.is_empty() {
        format!("<section id=\"{id}\" data-live hidden></section>\n")
    } else {
        format!("<section id=\"{id}\" data-live>{inner}</section>\n")
    }
}

fn summary(overview: &Overview, now: f64) -> String {
    let mut out = String::new();
    let (ready_class, ready_text) = if overview.ready {
        ("healthy", "ready")
    } else {
        ("unhealthy", "not ready")
    };
    let _ = write!(
        out,
        "<span class=\"badge {ready_class}\" id=\"ready\">{ready_text}</span> \
<span class=\"meta\">up {}</span>",
        duration(now - overview.started_unix)
    );
    if let Some(health) = &overview.health {
        let _ = write!(
            out,
            " <span class=\"meta\">{} checked endpoints, {} in answers, {} removed</span>",
            health.endpoints, health.serving, health.unhealthy
        );
    }
    if let Some(reload) = &overview.reload {
        let _ = write!(
            out,
            " <span class=\"meta\">reload every {}: {} applied, {} failed</span>",
            duration(reload.interval_seconds),
            reload.successes,
            reload.failures
        );
        if let Some(error) = &reload.last_error {
            let _ = write!(
                out,
                "<p class=\"problem\">Last reload failed: {}</p>",
                escape(error)
            );
        }
    }
    if let Some(sync) = &overview.sync {
        let _ = write!(
            out,
            " <span class=\"meta\">last sync {}, {} planned changes</span>",
            sync.last_sync_unix.map_or_else(
                || "never".to_owned(),
                |t| format!("{} ago", duration(now - t))
            ),
            sync.last_plan.len()
        );
        for error in &sync.errors {
            let _ = write!(out, "<p class=\"problem\">Sync: {}</p>", escape(error));
        }
    }
    if let Some(publisher) = &overview.publisher {
        let _ = write!(
            out,
            " <span class=\"meta\">{}, last publish {}</span>",
            if publisher.leader {
                "leader".to_owned()
            } else {
                format!(
                    "follower of {}",
                    escape(publisher.holder.as_deref().unwrap_or("?"))
                )
            },
            publisher.last_publish_unix.map_or_else(
                || "never".to_owned(),
                |t| format!("{} ago", duration(now - t))
            )
        );
        if let Some(error) = &publisher.last_error {
            let _ = write!(
                out,
                "<p class=\"problem\">Publish failed: {}</p>",
                escape(error)
            );
        }
    }
    for problem in &overview.problems {
        let line = problem.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = write!(
            out,
            "<p class=\"problem\">{}{}: {} (the previous data keeps serving)</p>",
            escape(&problem.file),
            line,
            escape(&problem.message)
        );
    }
    section("summary", &out)
}

fn listeners(overview: &Overview) -> String {
    let mut out = String::new();
    if !overview.listeners.is_empty() {
        out.push_str(
            "<h2>Listeners</h2><table><thead><tr><th>Address</th><th>Zones</th>\
<th>Snapshot</th><th>Built</th><th>Names</th><th>Records</th><th>Plugins</th></tr></thead><tbody>",
        );
        for listener in &overview.listeners {
            let snapshot = listener.snapshot.as_ref();
            let _ = write!(
                out,
                "<tr><td data-label=\"Address\">{}</td><td data-label=\"Zones\">{}</td>\
<td data-label=\"Snapshot\">{}</td><td data-label=\"Built\">{}</td><td data-label=\"Names\">{}</td>\
<td data-label=\"Records\">{}</td><td data-label=\"Plugins\">{}</td></tr>",
                escape(&listener.addresses.join(" ")),
                escape(&listener.zones.join(" ")),
                snapshot.map_or_else(
                    || "none yet".to_owned(),
                    |s| format!("generation {}", s.generation)
                ),
                snapshot.map_or_else(String::new, |s| format!("{} ago", duration(s.age_seconds))),
                snapshot.map_or(0, |s| s.names),
                snapshot.map_or(0, |s| s.records),
                escape(&listener.plugins.join(" ")),
            );
        }
        out.push_str("</tbody></table>");
    }
    section("listeners", &out)
}

fn service_list(services: &ServiceList, search: &str, now: f64) -> String {
    let mut out = String::new();
    let wanted = search.trim().to_lowercase();
    let shown: Vec<&ServiceStatus> = services
        .services
        .iter()
        .filter(|s| {
            wanted.is_empty()
                || format!("{}/{}", s.namespace, s.name)
                    .to_lowercase()
                    .contains(&wanted)
        })
        .collect();
    let _ = write!(
        out,
        "<h2>Services <span class=\"meta\">{} of {}</span></h2>",
        shown.len(),
        services.services.len()
    );
    if shown.is_empty() {
        out.push_str("<p class=\"meta\">No service matches.</p>");
    }
    for service in shown {
        render_service(&mut out, service, now);
    }
    section("services", &out)
}

fn geo_names(geo: &GeoList) -> String {
    let mut out = String::new();
    if !geo.names.is_empty() {
        out.push_str("<h2>Geographic names</h2>");
        for name in &geo.names {
            let _ = write!(
                out,
                "<article class=\"card\" data-geo=\"{}\"><h3>{} <span class=\"meta\">zone {}</span></h3><ul class=\"regions\">",
                escape(&name.name),
                escape(&name.name),
                escape(&name.zone)
            );
            for region in &name.regions {
                let (class, word) = if region.healthy {
                    ("healthy", "healthy")
                } else {
                    ("unhealthy", "unhealthy")
                };
                let _ = write!(
                    out,
                    "<li><span class=\"badge {class}\">{word}</span> <strong>{}</strong> \
<span class=\"meta\">priority {}</span> {}</li>",
                    escape(region.region.as_deref().unwrap_or("?")),
                    region.priority,
                    escape(&region.addresses.join(" "))
                );
            }
            out.push_str("</ul></article>");
        }
    }
    section("geo", &out)
}

fn recursion_state(recursion: &RecursionList) -> String {
    let mut out = String::new();
    if !recursion.listeners.is_empty() {
        out.push_str("<h2>Cache and forwarders</h2>");
        for listener in &recursion.listeners {
            let _ = write!(
                out,
                "<article class=\"card\"><h3>{}</h3><ul>",
                escape(&listener.server)
            );
            if let Some(cache) = &listener.cache {
                let _ = write!(
                    out,
                    "<li>cache: {} entries (capacity {} + {}), {} hits, {} misses, {} stale answers</li>",
                    cache.entries,
                    cache.success_capacity,
                    cache.denial_capacity,
                    cache.hits,
                    cache.misses,
                    cache.served_stale
                );
            }
            for forwarder in &listener.forwarders {
                let _ = write!(out, "<li>forward {} to ", escape(&forwarder.from));
                for upstream in &forwarder.upstreams {
                    let (class, word) = if upstream.down {
                        ("unhealthy", "down")
                    } else {
                        ("healthy", "up")
                    };
                    let _ = write!(
                        out,
                        "{} <span class=\"badge {class}\">{word}</span> ",
                        escape(&upstream.address)
                    );
                }
                out.push_str("</li>");
            }
            out.push_str("</ul></article>");
        }
    }
    section("recursion", &out)
}

fn render_service(out: &mut String, service: &ServiceStatus, now: f64) {
    let id = format!("{}/{}", service.namespace, service.name);
    let _ = write!(
        out,
        "<article class=\"card service\" data-service=\"{}\"><h3>{}</h3><p class=\"meta\">{} {}",
        escape(&id),
        escape(&id),
        escape(&service.kind.replace('_', " ")),
        escape(&service.addresses.join(" ")),
    );
    if !service.ports.is_empty() {
        let _ = write!(out, " · ports {}", escape(&service.ports.join(" ")));
    }
    if let Some(region) = &service.region {
        let _ = write!(out, " · region {}", escape(region));
    }
    out.push_str("</p>");
    if service.endpoints.is_empty() {
        out.push_str("<p class=\"meta\">No endpoints.</p></article>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Endpoint</th><th>Health</th><th>In answers</th><th>Failures in a row</th>\
<th>Last check</th><th>Last error</th><th>Recent changes</th></tr></thead><tbody>",
    );
    for endpoint in &service.endpoints {
        let health: Option<&EndpointReport> = endpoint.health.as_ref();
        let state = health.map_or("unchecked", |h| h.state.as_str());
        let _ = write!(
            out,
            "<tr class=\"endpoint\" data-endpoint=\"{}/{}\" data-state=\"{}\">\
<td data-label=\"Endpoint\">{}{}</td><td data-label=\"Health\"><span class=\"badge {}\">{}</span></td>\
<td data-label=\"In answers\">{}</td><td data-label=\"Failures in a row\">{}</td>\
<td data-label=\"Last check\">{}</td><td data-label=\"Last error\">{}</td><td data-label=\"Recent changes\">",
            escape(&id),
            escape(&endpoint.address),
            escape(state),
            escape(&endpoint.address),
            endpoint
                .hostname
                .as_ref()
                .map(|h| format!(" <span class=\"meta\">{}</span>", escape(h)))
                .unwrap_or_default(),
            escape(state),
            escape(state),
            if endpoint.serving { "yes" } else { "no" },
            health.map_or(0, |h| h.consecutive_failures),
            health
                .and_then(|h| h.last_check_unix)
                .map(|t| format!("{} ago", duration(now - t)))
                .unwrap_or_default(),
            escape(health.and_then(|h| h.last_error.as_deref()).unwrap_or("")),
        );
        if let Some(health) = health {
            out.push_str("<ol class=\"history\">");
            for change in &health.history {
                let _ = write!(
                    out,
                    "<li class=\"dot {}\" title=\"{} ago: {} → {}{}\">{}</li>",
                    escape(&change.to),
                    duration(now - change.unix),
                    escape(&change.from),
                    escape(&change.to),
                    change
                        .error
                        .as_ref()
                        .map(|e| format!(" ({})", escape(e)))
                        .unwrap_or_default(),
                    escape(&change.to),
                );
            }
            out.push_str("</ol>");
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></article>");
}

/// The explain result (or why there is none).
pub(crate) fn render_explanation(out: &mut String, explanation: &Result<Explanation, Refusal>) {
    let explanation = match explanation {
        Ok(explanation) => explanation,
        Err(refusal) => {
            let _ = write!(
                out,
                "<p class=\"problem\" id=\"explain-error\">{}</p>",
                escape(&refusal.to_string())
            );
            return;
        }
    };
    let location = &explanation.location;
    let placed = match location.source.as_str() {
        "client_network" => format!(
            "its network belongs to region {}",
            escape(location.home.as_deref().unwrap_or("?"))
        ),
        "database" => match location.coordinates {
            Some([lat, lon]) => format!("the GeoIP database places it at {lat:.2}, {lon:.2}"),
            None => "the GeoIP database knows it".to_owned(),
        },
        _ => "its location is unknown".to_owned(),
    };
    let _ = write!(
        out,
        "<article class=\"card\" id=\"explain-result\" data-chosen=\"{}\"><h3>{} → <strong>{}</strong></h3>\
<p>Client {}: {placed} (answer scope /{}). Policy {}: {}.</p>\
<table><thead><tr><th>Region</th><th>Health</th><th>Priority</th><th>Expected latency</th></tr></thead><tbody>",
        escape(&explanation.chosen),
        escape(&explanation.name),
        escape(&explanation.chosen),
        escape(&explanation.client),
        location.scope,
        escape(&explanation.policy),
        escape(&explanation.reason),
    );
    for candidate in &explanation.candidates {
        let (class, word) = if candidate.healthy {
            ("healthy", "healthy")
        } else {
            ("unhealthy", "unhealthy")
        };
        let _ = write!(
            out,
            "<tr><td data-label=\"Region\">{}</td><td data-label=\"Health\"><span class=\"badge {class}\">{word}</span></td>\
<td data-label=\"Priority\">{}</td><td data-label=\"Expected latency\">{:.1} ms</td></tr>",
            escape(candidate.region.as_deref().unwrap_or("?")),
            candidate.priority,
            candidate.expected_latency_ms
        );
    }
    out.push_str("</tbody></table></article>");
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A short human duration: `4 s`, `3 min`, `2 h`, `5 d`.
fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 5400.0 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds < 172_800.0 {
        format!("{:.0} h", seconds / 3600.0)
    } else {
        format!("{:.0} d", seconds / 86400.0)
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use signpost_model::status::{ServiceEndpoint, Transition};

    /// Cluster data reaches the page only escaped: a service name holding
    /// markup shows as text.
    #[test]
    fn cluster_text_is_escaped() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
        let services = ServiceList {
            services: vec![ServiceStatus {
                namespace: "web".to_owned(),
                name: "<script>alert(1)</script>".to_owned(),
                endpoints: vec![ServiceEndpoint {
                    address: "10.0.0.1".to_owned(),
                    health: Some(EndpointReport {
                        state: "unhealthy".to_owned(),
                        last_error: Some("status 500 <oops>".to_owned()),
                        history: vec![Transition {
                            unix: 1.0,
                            from: "failing".to_owned(),
                            to: "unhealthy".to_owned(),
                            error: None,
                        }],
                        ..EndpointReport::default()
                    }),
                    ..ServiceEndpoint::default()
                }],
                ..ServiceStatus::default()
            }],
        };
        let html = render(
            &Overview::default(),
            &services,
            &GeoList::default(),
            &RecursionList::default(),
            &Query::default(),
            None,
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("status 500 &lt;oops&gt;"));
        assert!(html.contains("data-state=\"unhealthy\""));
        assert!(html.contains("<li class=\"dot unhealthy\""));
    }

    /// The sections of other roles show when present: sync state and errors,
    /// leadership and publish errors (escaped like everything else).
    #[test]
    fn other_roles_sections_render() {
        use signpost_model::status::{PublisherStatus, SyncStatus};
        let overview = Overview {
            sync: Some(SyncStatus {
                last_sync_unix: None,
                last_plan: Vec::new(),
                errors: vec!["route53 <throttled>".to_owned()],
            }),
            publisher: Some(PublisherStatus {
                leader: false,
                holder: Some("signpost-health-1".to_owned()),
                last_publish_unix: None,
                last_error: None,
            }),
            ..Overview::default()
        };
        let live = Live::render(
            &overview,
            &ServiceList::default(),
            &GeoList::default(),
            &RecursionList::default(),
            "",
        );
        assert!(
            live.summary.contains("last sync never, 0 planned changes"),
            "{}",
            live.summary
        );
        assert!(live.summary.contains("Sync: route53 &lt;throttled&gt;"));
        assert!(live.summary.contains("follower of signpost-health-1"));
        assert!(
            live.geo.contains("hidden"),
            "an empty section stays in place, hidden"
        );
    }

    /// Search keeps matching services (case-insensitive, on namespace/name).
    #[test]
    fn search_filters_services() {
        let service = |namespace: &str, name: &str| ServiceStatus {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..ServiceStatus::default()
        };
        let services = ServiceList {
            services: vec![service("web", "api"), service("db", "postgres")],
        };
        let out = Live::render(
            &Overview::default(),
            &services,
            &GeoList::default(),
            &RecursionList::default(),
            "WEB/",
        )
        .concat();
        assert!(out.contains("data-service=\"web/api\""));
        assert!(!out.contains("data-service=\"db/postgres\""));
        assert!(out.contains("1 of 2"));
    }
}
