//! `log`: one line per query on standard error (CoreDNS's common format).

use super::setup::{Apply, Block, Plugin};
use signpost_corefile::{Directive, Errors};

pub(super) fn parse(_: &Directive, _: &Block<'_>, _: &mut Errors) -> Option<Box<dyn Plugin>> {
    Some(Box::new(Apply(
        "log",
        |setup: &mut super::setup::Setup<'_>| {
            setup.listener.log = true;
        },
    )))
}
