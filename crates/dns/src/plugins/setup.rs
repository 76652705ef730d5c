//! What a plugin sees and may change: its server block, the listener it
//! joins, process-wide settings, and where problems go.

use crate::config::{ListenerConfig, ProcessConfig};
use signpost_corefile::Errors;
use signpost_proto::Name;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// How often sources that poll (catalog files, a zone file before its first
/// good load) look for changes.
pub(crate) const SOURCE_POLL: Duration = Duration::from_millis(250);

/// The server block a directive is in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block<'a> {
    /// The block's zones (every key), which plugins default to.
    pub(crate) zones: &'a [Name],
    /// The Corefile's directory: relative paths are taken from here.
    pub(crate) base: &'a Path,
}

/// What a plugin may change when it joins a listener.
pub(crate) struct Setup<'a> {
    /// The listener the block's keys on one address share.
    pub(crate) listener: &'a mut ListenerConfig,
    /// Process-wide settings.
    pub(crate) process: &'a mut ProcessConfig,
    /// Where problems go (blocks that contradict each other, say).
    pub(crate) errors: &'a mut Errors,
}

/// A parsed directive.
pub(crate) trait Plugin: fmt::Debug {
    /// Adds this directive to `setup`'s listener; called once for each
    /// listener its server block joins.
    fn apply(&self, setup: &mut Setup<'_>);

    /// Addresses this directive binds the block's listeners to (`bind`).
    fn bind_addresses(&self) -> &[IpAddr] {
        &[]
    }
}

/// A plugin whose only effect is a flag or a setting: `apply` runs the closure.
pub(crate) struct Apply<F>(pub(crate) &'static str, pub(crate) F);

impl<F: Fn(&mut Setup<'_>)> Plugin for Apply<F> {
    fn apply(&self, setup: &mut Setup<'_>) {
        (self.1)(setup);
    }
}

impl<F> fmt::Debug for Apply<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Apply").field(&self.0).finish()
    }
}
