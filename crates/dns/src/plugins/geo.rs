//! `geo [ZONES...] { ... }`: answer geographic names with the nearest
//! healthy region (see docs/geo.md).
//!
//! ```text
//! geo aikernel.io {
//!     region us-east-1 38.9 -77.0      # NAME LATITUDE LONGITUDE
//!     client 10.1.0.0/16 us-east-1     # client networks placed by hand
//!     mmdb /var/lib/GeoLite2-City.mmdb # MaxMind database
//!     latency us-east-1 eu-west-1 80   # measured milliseconds
//!     policy latency|priority
//!     ecs on|off
//!     ttl 30
//! }
//! ```

use super::setup::{Block, Plugin, Setup};
use crate::config::GeoConfig;
use signpost_corefile::toolkit::parse_cidr;
use signpost_corefile::{Directive, Errors, Location};
use signpost_geo::{ClientNetwork, GeoSettings, Policy, Region};

#[derive(Debug)]
struct Geo(GeoConfig);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    geo(directive, block, errors).map(|config| Box::new(Geo(config)) as Box<dyn Plugin>)
}

impl Plugin for Geo {
    fn apply(&self, setup: &mut Setup<'_>) {
        // The first `geo` of the blocks sharing a listener serves it.
        if setup.listener.geo.is_none() {
            setup.listener.geo = Some(self.0.clone());
        }
    }
}

fn geo(directive: &Directive, block: &Block<'_>, errors: &mut Errors) -> Option<GeoConfig> {
    let zones = errors.plugin_zones(&directive.location, &directive.args, block.zones);
    let mut settings = GeoSettings {
        ecs: true,
        ttl: 30,
        ..GeoSettings::default()
    };
    let before = errors.len();
    // Regions first: clients and latencies name them.
    for option in directive.block.iter().filter(|o| o.name == "region") {
        match option.args.as_slice() {
            [name, latitude, longitude] => {
                match (latitude.parse::<f64>(), longitude.parse::<f64>()) {
                    (Ok(latitude), Ok(longitude))
                        if (-90.0..=90.0).contains(&latitude)
                            && (-180.0..=180.0).contains(&longitude) =>
                    {
                        if settings.regions.iter().any(|r| r.name == *name) {
                            errors.push(
                                &option.location,
                                format!("region {name:?} is defined twice"),
                            );
                        }
                        settings.regions.push(Region {
                            name: name.clone(),
                            latitude,
                            longitude,
                        });
                    }
                    _ => errors.push(
                        &option.location,
                        "`region` expects NAME LATITUDE LONGITUDE in degrees".to_owned(),
                    ),
                }
            }
            _ => errors.push(
                &option.location,
                "`region` expects NAME LATITUDE LONGITUDE".to_owned(),
            ),
        }
    }
    let region_index = |errors: &mut Errors, location: &Location, name: &str| {
        let found = settings.regions.iter().position(|r| r.name == name);
        if found.is_none() {
            errors.push(
                location,
                format!("unknown region {name:?}: define it with `region`"),
            );
        }
        found
    };
    for option in &directive.block {
        let args = option.args.as_slice();
        match option.name.as_str() {
            "region" => {}
            "client" => match args {
                [cidr, region] => {
                    let network = parse_cidr(cidr);
                    if network.is_none() {
                        errors.push(
                            &option.location,
                            format!("`client` expects an address/prefix, found {cidr:?}"),
                        );
                    }
                    if let (Some((address, prefix)), Some(region)) =
                        (network, region_index(errors, &option.location, region))
                    {
                        settings.clients.push(ClientNetwork {
                            address,
                            prefix,
                            region,
                        });
                    }
                }
                _ => errors.push(&option.location, "`client` expects CIDR REGION".to_owned()),
            },
            "mmdb" => match args {
                [path] => settings.mmdb = Some(block.base.join(path)),
                _ => errors.push(&option.location, "`mmdb` expects one file".to_owned()),
            },
            "latency" => match args {
                [from, to, ms] => {
                    let from = region_index(errors, &option.location, from);
                    let to = region_index(errors, &option.location, to);
                    match (from, to, ms.parse::<u32>()) {
                        (Some(from), Some(to), Ok(ms)) => settings.latency.push((from, to, ms)),
                        (_, _, Err(_)) => errors.push(
                            &option.location,
                            format!("`latency` expects milliseconds, found {ms:?}"),
                        ),
                        _ => {}
                    }
                }
                _ => errors.push(
                    &option.location,
                    "`latency` expects FROM TO MILLISECONDS".to_owned(),
                ),
            },
            "policy" => match args {
                [policy] if policy == "latency" => settings.policy = Policy::Latency,
                [policy] if policy == "priority" => settings.policy = Policy::Priority,
                _ => errors.push(
                    &option.location,
                    "`policy` expects `latency` or `priority`".to_owned(),
                ),
            },
            "ecs" => match args {
                [on] if on == "on" => settings.ecs = true,
                [off] if off == "off" => settings.ecs = false,
                _ => errors.push(&option.location, "`ecs` expects `on` or `off`".to_owned()),
            },
            "ttl" => match args {
                [ttl] => match ttl.parse::<u32>() {
                    Ok(ttl) if ttl <= 3600 => settings.ttl = ttl,
                    _ => errors.push(
                        &option.location,
                        format!("`ttl` expects seconds from 0 to 3600, found {ttl:?}"),
                    ),
                },
                _ => errors.push(&option.location, "`ttl` expects one value".to_owned()),
            },
            other => errors.push(&option.location, format!("unknown `geo` option `{other}`")),
        }
    }
    if settings.regions.is_empty() {
        errors.push(
            &directive.location,
            "`geo` needs at least one `region NAME LATITUDE LONGITUDE`".to_owned(),
        );
    }
    if let Some(path) = &settings.mmdb
        && let Err(error) = signpost_geo::Geo::new(GeoSettings {
            mmdb: Some(path.clone()),
            ..GeoSettings::default()
        })
    {
        errors.push(
            &directive.location,
            format!(
                "{error}: {}",
                std::error::Error::source(&error).map_or(String::new(), ToString::to_string)
            ),
        );
    }
    (errors.len() == before).then(|| GeoConfig {
        zones,
        settings,
        location: directive.location.clone(),
    })
}
