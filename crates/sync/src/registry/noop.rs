//! `--registry=noop`: no ownership records; the planner owns everything in
//! the domain filter ("sync" then means "make the zone equal the sources").

use super::Registry;
use crate::endpoint::Endpoint;
use crate::plan::Changes;
use crate::provider::{Provider, ProviderError};
use signpost_model::BoxFuture;
use std::sync::Arc;

/// Passes straight through to the provider.
pub struct NoopRegistry {
    provider: Arc<dyn Provider>,
}

impl NoopRegistry {
    /// A registry over `provider`.
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Self { provider }
    }
}

impl Registry for NoopRegistry {
    fn owner_id(&self) -> &str {
        ""
    }

    fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    fn records(&mut self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>> {
        self.provider.records()
    }

    fn apply_changes(&mut self, changes: Changes) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move { self.provider.apply_changes(&changes).await })
    }
}
