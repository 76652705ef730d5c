//! Health verdicts shared between processes: one `signpost health` leader
//! publishes the set of unhealthy endpoints to one object, every DNS replica
//! follows it.
//!
//! Control plane. The object lives in a [`VerdictStore`] (a Kubernetes
//! ConfigMap, or an etcd key); the same publisher and follower drive both:
//!
//! ```text
//! checker ─PublishVerdicts─▶ VerdictPublisher ─write─▶ VerdictStore ─read + watch─▶ VerdictFollower ─SubscribeVerdicts─▶ compilers
//!                leadership ─┘                                                 └ staleness bound: keep, then fail open
//! ```

mod follower;
mod metrics;
mod publisher;
mod store;

pub use follower::{DEFAULT_STALE_AFTER, Observed, VerdictFollower};
pub use metrics::{FollowMetrics, PublishMetrics};
pub use publisher::{PublisherParts, VerdictPublisher};
pub use store::{
    Change, Changes, Published, Read, Record, StoreError, VerdictStore, WriteOutcome, decode_lines,
    encode_lines, parse_key, unix_now,
};
