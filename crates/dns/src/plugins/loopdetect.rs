//! `loop`: detect at start that the upstreams send this server's queries
//! back to it, and stop with a clear error (CoreDNS's `loop`; see
//! `crate::loopcheck` for how).

use super::setup::{Block, Plugin, Setup};
use signpost_corefile::{Directive, Errors};
use signpost_proto::Name;

#[derive(Debug)]
struct Loop(Name);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    errors.no_args(directive);
    errors.no_block(directive);
    // Only the first zone of the server block is probed, as in CoreDNS.
    let zone = block.zones.first().cloned().unwrap_or_else(Name::root);
    Some(Box::new(Loop(zone)))
}

impl Plugin for Loop {
    fn apply(&self, setup: &mut Setup<'_>) {
        if setup.listener.loop_zone.is_none() {
            setup.listener.loop_zone = Some(self.0.clone());
        }
    }
}
