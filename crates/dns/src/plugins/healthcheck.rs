//! `healthcheck { ... }`: active checks of annotated services' endpoints
//! (options in `signpost_health::directive`).
//!
//! One checker serves the whole process, so every server block that has a
//! `healthcheck` must give it the same settings; a block that differs is
//! rejected at its line rather than silently ignored.

use super::setup::{Block, Plugin, Setup};
use signpost_corefile::{Directive, Errors, Location};
use signpost_health::HealthcheckConfig;

#[derive(Debug)]
struct Healthcheck(HealthcheckConfig, Location);

pub(super) fn parse(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    let config = HealthcheckConfig::parse(directive, errors);
    Some(Box::new(Healthcheck(config, directive.location.clone())))
}

impl Plugin for Healthcheck {
    fn apply(&self, setup: &mut Setup<'_>) {
        match &setup.process.healthcheck {
            None => setup.process.healthcheck = Some((self.0, self.1.clone())),
            Some((first, at)) if *first != self.0 => {
                let message = format!(
                    "this `healthcheck` differs from the one at {at}: one health checker serves every server block, so they must have the same settings"
                );
                setup.errors.push(&self.1, message);
                return;
            }
            Some(_) => {}
        }
        setup.listener.healthcheck = setup.listener.healthcheck.or(Some(self.0));
    }
}
