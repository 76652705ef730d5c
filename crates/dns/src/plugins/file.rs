//! `file DBFILE [ZONES...] { reload DURATION }`: zones from RFC 1035 master
//! files, re-read every `reload` (default 1m; 0 disables) when the SOA
//! serial changed. Relative paths are taken from the Corefile's directory.

use super::setup::{Block, Plugin, SOURCE_POLL, Setup};
use crate::config::SourcePlan;
use signpost_corefile::{Directive, Errors};
use signpost_zone::{Recipe, SourceSpec};
use std::time::Duration;

#[derive(Debug)]
struct File(Vec<SourcePlan>);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let Some((path, zones)) = directive.args.split_first() else {
        errors.push(
            &directive.location,
            "`file` expects a zone file and optional zones",
        );
        return None;
    };
    let zones = errors.plugin_zones(&directive.location, zones, block.zones);
    let mut reload = Duration::from_secs(60);
    for option in &directive.block {
        match option.name.as_str() {
            "reload" => reload = errors.duration(option).unwrap_or(reload),
            other => errors.push(&option.location, format!("unknown `file` option `{other}`")),
        }
    }
    let path = block.base.join(path);
    let plans = zones
        .into_iter()
        .map(|apex| SourcePlan {
            spec: SourceSpec::ZoneFile {
                path: path.clone(),
                apex,
                reload,
                // Until the first good load, retry as often as catalogs are checked.
                retry: SOURCE_POLL,
            },
            recipe: Recipe::ZoneFile,
            location: directive.location.clone(),
        })
        .collect();
    Some(Box::new(File(plans)))
}

impl Plugin for File {
    fn apply(&self, setup: &mut Setup<'_>) {
        setup.listener.sources.extend(self.0.iter().cloned());
    }
}
