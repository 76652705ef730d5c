//! The geo plugin's admin side: metrics, `/api/v1/geo` and the explain
//! endpoint that answers "why did this client get that region".
//!
//! Admin plane: reads the current snapshots and the `geo` settings; never
//! touches the query path.

use crate::answer::Responder;
use serde_json::json;
use signpost_model::Reply;
use signpost_model::metrics::{Exposition, Kind};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `dns_geo_answers_total{zone,region}` and `dns_geo_region_healthy{name,region}`.
pub fn render_metrics(responders: &[Arc<Responder>], out: &mut String) {
    let routed: Vec<&Arc<Responder>> = responders.iter().filter(|r| r.geo().is_some()).collect();
    if routed.is_empty() {
        return;
    }
    let out = &mut Exposition::new(out);
    out.family(
        "dns_geo_answers_total",
        Kind::Counter,
        "Geographic answers by the region chosen (all: every region was unhealthy).",
    );
    for responder in &routed {
        let Some(geo) = responder.geo() else { continue };
        let regions = &geo.geo.settings().regions;
        for (slot, counter) in geo.answers.iter().enumerate() {
            let region = regions.get(slot).map_or("all", |r| r.name.as_str());
            out.sample(
                "dns_geo_answers_total",
                &[("zone", &geo.zone), ("region", &region)],
                counter.load(Ordering::Relaxed),
            );
        }
    }
    out.family(
        "dns_geo_region_healthy",
        Kind::Gauge,
        "1 while a region of a geographic name has a healthy endpoint (or no health checks).",
    );
    for responder in &routed {
        let Some(geo) = responder.geo() else { continue };
        let regions = &geo.geo.settings().regions;
        let snapshot = responder.snapshot.load();
        for name in snapshot.geo_names() {
            for candidate in name.candidates.iter() {
                let region = regions
                    .get(candidate.region)
                    .map_or("?", |r| r.name.as_str());
                out.sample(
                    "dns_geo_region_healthy",
                    &[("name", &name.name), ("region", &region)],
                    u8::from(candidate.healthy),
                );
            }
        }
    }
}

/// Serves `/api/v1/geo` and `/api/v1/geo/explain?name=NAME&client=ADDRESS[/PREFIX]`.
pub fn route(responders: &[Arc<Responder>], target: &str) -> Option<Reply> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/api/v1/geo" => Some(Reply {
            status: "200 OK",
            body: overview(responders),
        }),
        "/api/v1/geo/explain" => {
            let (status, body) = explain(responders, query);
            Some(Reply { status, body })
        }
        _ => None,
    }
}

fn overview(responders: &[Arc<Responder>]) -> String {
    let mut names = Vec::new();
    for responder in responders {
        let Some(geo) = responder.geo() else { continue };
        let regions = &geo.geo.settings().regions;
        let snapshot = responder.snapshot.load();
        for name in snapshot.geo_names() {
            let entries: Vec<_> = name
                .regions
                .iter()
                .map(|r| {
                    json!({
                        "region": regions.get(r.region).map(|x| x.name.clone()),
                        "priority": r.priority,
                        "healthy": r.healthy,
                        "addresses": r.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            names.push(
                json!({ "name": name.name.to_string(), "zone": geo.zone, "regions": entries }),
            );
        }
    }
    serde_json::to_string_pretty(&json!({ "names": names })).unwrap_or_default()
}

fn explain(responders: &[Arc<Responder>], query: &str) -> (&'static str, String) {
    let parameter = |key: &str| {
        query.split('&').find_map(|pair| {
            pair.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.to_owned())
        })
    };
    let error = |message: &str| ("400 Bad Request", json!({ "error": message }).to_string());
    let (Some(name), Some(client)) = (parameter("name"), parameter("client")) else {
        return error("expected ?name=NAME&client=ADDRESS[/PREFIX]");
    };
    let client = client.replace("%2F", "/").replace("%2f", "/");
    let (address, prefix) = match client.split_once('/') {
        Some((address, prefix)) => (address.to_owned(), prefix.parse::<u8>().ok()),
        None => (client.clone(), None),
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return error("client is not an IP address");
    };
    let Ok(wanted) = signpost_proto::Name::from_ascii(&name) else {
        return error("name is not a domain name");
    };
    for responder in responders {
        let Some(geo) = responder.geo() else { continue };
        let snapshot = responder.snapshot.load();
        let Some(found) = snapshot.geo_names().iter().find(|n| n.name == wanted) else {
            continue;
        };
        let regions = &geo.geo.settings().regions;
        let location = geo.geo.locate(address, prefix);
        let (choice, reason) = geo.geo.choose(&location, &found.candidates);
        let region_name = |index: usize| regions.get(index).map(|r| r.name.clone());
        let candidates: Vec<_> = found
            .candidates
            .iter()
            .map(|c| {
                json!({
                    "region": region_name(c.region),
                    "priority": c.priority,
                    "healthy": c.healthy,
                    "expected_latency_ms": geo.geo.cost(&location, c.region),
                })
            })
            .collect();
        let chosen = choice
            .and_then(|i| found.candidates.get(i))
            .and_then(|c| region_name(c.region));
        let reason = match reason {
            signpost_geo::Reason::Latency(ms) => {
                format!("lowest expected latency among healthy regions ({ms:.1} ms)")
            }
            signpost_geo::Reason::Priority(p) => {
                format!("lowest priority among healthy regions ({p})")
            }
            signpost_geo::Reason::AllUnhealthy => {
                "every region is unhealthy: all are served".to_owned()
            }
        };
        let source = match location.source {
            signpost_geo::LocationSource::ClientNetwork => "client_network",
            signpost_geo::LocationSource::Database => "database",
            signpost_geo::LocationSource::Unknown => "unknown",
        };
        let body = json!({
            "name": found.name.to_string(),
            "client": client,
            "location": {
                "source": source,
                "home": location.home.and_then(region_name),
                "coordinates": location.coordinates.map(|(lat, lon)| [lat, lon]),
                "scope": location.scope,
            },
            "policy": format!("{:?}", geo.geo.settings().policy).to_lowercase(),
            "chosen": chosen.unwrap_or_else(|| "all".to_owned()),
            "reason": reason,
            "candidates": candidates,
        });
        return (
            "200 OK",
            serde_json::to_string_pretty(&body).unwrap_or_default(),
        );
    }
    (
        "404 Not Found",
        json!({ "error": format!("{name} is not a geographic name") }).to_string(),
    )
}
