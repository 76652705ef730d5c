//! What a running role shows on its admin endpoints.
//!
//! Admin plane. Each role (`signpost dns`, later `signpost health` and
//! `signpost sync`) implements [`Status`]; the `signpost-admin` crate serves
//! it over HTTP without knowing which role it is.

use crate::source::BoxFuture;

/// A role as the admin endpoints see it.
pub trait Status: Send + Sync + 'static {
    /// True once the role serves (`/ready` answers 200).
    fn ready(&self) -> bool;

    /// Appends the Prometheus text exposition (`/metrics`).
    fn render_metrics(&self, out: &mut String);

    /// Answers a JSON API request for `target` (path and query), or `None`
    /// when the path is not one of the role's.
    fn route(&self, target: &str) -> BoxFuture<'_, Option<Reply>>;
}

/// An admin API answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status line after the version, such as `200 OK`.
    pub status: &'static str,
    /// The body (JSON, or text for errors).
    pub body: String,
}
