//! Verdicts as data: which endpoints are out of answers, and how they travel.
//!
//! The checker publishes the full set of unhealthy endpoints whenever it
//! changes; subscribers (the snapshot compiler of every listener, and later
//! other replicas through the Kubernetes API or etcd) receive it. The
//! in-process bus is [`LocalVerdicts`].

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// One checked endpoint: a service's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// Endpoint address.
    pub address: IpAddr,
}

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.service, self.address)
    }
}

/// The verdicts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Endpoints that must leave answers.
    pub unhealthy: HashSet<EndpointKey>,
}

/// Publishes verdicts to every subscriber.
pub trait PublishVerdicts: Send + Sync {
    /// Replaces the current verdicts.
    fn publish(&self, verdicts: Arc<Verdicts>);
}

/// Delivers verdicts to a subscriber.
pub trait SubscribeVerdicts: Send + Sync {
    /// A channel receiving every verdict set published from now on, starting
    /// with the current one.
    fn subscribe(&self) -> std::sync::mpsc::Receiver<Arc<Verdicts>>;
}

/// The in-process verdict bus.
#[derive(Debug, Default)]
pub struct LocalVerdicts {
    // A short synchronous critical section on the control plane only (publish
    // happens on verdict changes, subscribe at start-up); never on the query path.
    inner: Mutex<LocalInner>,
}

#[derive(Debug, Default)]
struct LocalInner {
    current: Arc<Verdicts>,
    subscribers: Vec<std::sync::mpsc::Sender<Arc<Verdicts>>>,
}

impl PublishVerdicts for LocalVerdicts {
    fn publish(&self, verdicts: Arc<Verdicts>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.current = verdicts.clone();
        inner
            .subscribers
            .retain(|s| s.send(verdicts.clone()).is_ok());
    }
}

impl SubscribeVerdicts for LocalVerdicts {
    fn subscribe(&self) -> std::sync::mpsc::Receiver<Arc<Verdicts>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = sender.send(inner.current.clone());
        inner.subscribers.push(sender);
        receiver
    }
}
