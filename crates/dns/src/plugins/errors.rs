//! `errors`: log failed answers (accepted as CoreDNS has it; the failures
//! are logged anyway).

use super::setup::{Apply, Block, Plugin};
use signpost_corefile::{Directive, Errors};

pub(super) fn parse(_: &Directive, _: &Block<'_>, _: &mut Errors) -> Option<Box<dyn Plugin>> {
    Some(Box::new(Apply(
        "errors",
        |setup: &mut super::setup::Setup<'_>| {
            setup.listener.errors = true;
        },
    )))
}
