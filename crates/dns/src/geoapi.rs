//! The geo plugin's admin side: metrics, `/api/v1/geo` and the explain
//! endpoint that answers "why did this client get that region".
//!
//! Admin plane: reads the current snapshots and the `geo` settings; never
//! touches the query path.

use crate::answer::Responder;
use signpost_model::Refusal;
use signpost_model::metrics::{Exposition, Kind};
use signpost_model::status::{
    Candidate, Explanation, GeoList, GeoNameStatus, GeoRegionStatus, Location,
};
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

/// Every geographic name of every listener (`/api/v1/geo`).
pub fn list(responders: &[Arc<Responder>]) -> GeoList {
    let mut names = Vec::new();
    for responder in responders {
        let Some(geo) = responder.geo() else { continue };
        let regions = &geo.geo.settings().regions;
        let snapshot = responder.snapshot.load();
        for name in snapshot.geo_names() {
            let entries = name
                .regions
                .iter()
                .map(|r| GeoRegionStatus {
                    region: regions.get(r.region).map(|x| x.name.clone()),
                    priority: r.priority,
                    healthy: r.healthy,
                    addresses: r.addresses.iter().map(ToString::to_string).collect(),
                })
                .collect();
            names.push(GeoNameStatus {
                name: name.name.to_string(),
                zone: geo.zone.clone(),
                regions: entries,
            });
        }
    }
    GeoList { names }
}

/// Which region `client` (`ADDRESS[/PREFIX]`) gets for `name`, and why
/// (`/api/v1/geo/explain`).
pub fn explain(
    responders: &[Arc<Responder>],
    name: &str,
    client: &str,
) -> Result<Explanation, Refusal> {
    let (address, prefix) = match client.split_once('/') {
        Some((address, prefix)) => {
            let Ok(prefix) = prefix.parse::<u8>() else {
                return Err(Refusal::BadRequest(
                    "client prefix is not a number".to_owned(),
                ));
            };
            (address, Some(prefix))
        }
        None => (client, None),
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return Err(Refusal::BadRequest(
            "client is not an IP address".to_owned(),
        ));
    };
    // A prefix longer than the address is the whole address.
    let limit = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.map(|p| p.min(limit));
    let Ok(wanted) = signpost_proto::Name::from_ascii(name) else {
        return Err(Refusal::BadRequest("name is not a domain name".to_owned()));
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
        let candidates = found
            .candidates
            .iter()
            .map(|c| Candidate {
                region: region_name(c.region),
                priority: c.priority,
                healthy: c.healthy,
                expected_latency_ms: geo.geo.cost(&location, c.region),
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
        return Ok(Explanation {
            name: found.name.to_string(),
            client: client.to_owned(),
            location: Location {
                source: source.to_owned(),
                home: location.home.and_then(region_name),
                coordinates: location.coordinates.map(|(lat, lon)| [lat, lon]),
                scope: location.scope,
            },
            policy: format!("{:?}", geo.geo.settings().policy).to_lowercase(),
            chosen: chosen.unwrap_or_else(|| "all".to_owned()),
            reason,
            candidates,
        });
    }
    Err(Refusal::NotFound(format!(
        "{name} is not a geographic name"
    )))
}
