//! Registries: who owns which record (`--registry=txt|noop`).
//!
//! Control plane. A [`Registry`] sits between the planner and the provider:
//! on read it attaches ownership labels to the provider's records (and hides
//! its own bookkeeping records); on write it adds that bookkeeping next to
//! each change. `txt` keeps ownership in TXT records in the zone, in
//! external-dns v0.22's format, so a zone external-dns managed is adopted
//! as is; `noop` keeps none and owns everything.
//!
//! This file holds only what the registries share; it names none of them.

pub mod crypto;
pub mod labels;
pub mod names;
pub mod noop;
pub mod txt;

use crate::endpoint::Endpoint;
use crate::plan::Changes;
use crate::provider::{Provider, ProviderError};
use signpost_model::BoxFuture;
use std::sync::Arc;

/// A registry of record ownership over a provider.
pub trait Registry: Send + 'static {
    /// The owner id the planner checks; empty means no ownership checks.
    fn owner_id(&self) -> &str;

    /// The provider underneath.
    fn provider(&self) -> &Arc<dyn Provider>;

    /// The provider's records with ownership labels attached and the
    /// registry's own records removed.
    fn records(&mut self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>>;

    /// Applies the planner's changes with the registry's bookkeeping.
    fn apply_changes(&mut self, changes: Changes) -> BoxFuture<'_, Result<(), ProviderError>>;
}
