//! `loadbalance [round_robin]`: rotate A, AAAA and MX records in every
//! answer, as CoreDNS's `loadbalance` does.

use super::setup::{Apply, Block, Plugin, Setup};
use signpost_corefile::{Directive, Errors};

pub(super) fn parse(
    directive: &Directive,
    _: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    match directive.args.as_slice() {
        [] => {}
        [policy] if policy == "round_robin" => {}
        _ => errors.push(
            &directive.location,
            "`loadbalance` takes only `round_robin` (the default)",
        ),
    }
    Some(Box::new(Apply("loadbalance", |setup: &mut Setup<'_>| {
        setup.listener.loadbalance = true;
    })))
}
