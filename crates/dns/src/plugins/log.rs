//! `log`: one line per query on standard error (CoreDNS's common format).

use super::{Apply, Block, Plugin};
use signpost_corefile::{Directive, Errors};

pub(super) fn parse(_: &Directive, _: &Block<'_>, _: &mut Errors) -> Option<Box<dyn Plugin>> {
    Some(Box::new(Apply("log", |setup: &mut super::Setup<'_>| {
        setup.listener.log = true;
    })))
}
