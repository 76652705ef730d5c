//! `reload [INTERVAL [JITTER]]`: re-read the Corefile every INTERVAL
//! (default 30s, at least 2s) and apply a changed configuration without
//! closing sockets. The jitter is accepted and not needed: each replica
//! watches its own file.

use super::setup::{Block, Plugin, Setup};
use crate::config::ReloadSettings;
use signpost_corefile::toolkit::parse_duration;
use signpost_corefile::{Directive, Errors};
use std::time::Duration;

#[derive(Debug)]
struct Reload(ReloadSettings);

pub(super) fn parse(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let interval = match directive.args.first() {
        None => Duration::from_secs(30),
        Some(text) => match parse_duration(text) {
            Ok(interval) if interval >= Duration::from_secs(2) => interval,
            _ => {
                errors.push(
                    &directive.location,
                    format!("`reload` expects an interval of at least 2s, found {text:?}"),
                );
                return None;
            }
        },
    };
    if let Some(jitter) = directive.args.get(1).filter(|j| parse_duration(j).is_err()) {
        errors.push(
            &directive.location,
            format!("`reload` jitter must be a duration, found {jitter:?}"),
        );
    }
    if directive.args.len() > 2 {
        errors.push(
            &directive.location,
            "`reload` takes at most an interval and a jitter",
        );
    }
    Some(Box::new(Reload(ReloadSettings { interval })))
}

impl Plugin for Reload {
    fn apply(&self, setup: &mut Setup<'_>) {
        // The first `reload` in the file sets the interval for the process.
        setup.process.reload = setup.process.reload.or(Some(self.0));
    }
}
