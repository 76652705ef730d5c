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

/// Delivers verdicts to subscribers.
pub trait SubscribeVerdicts: Send + Sync {
    /// Calls `deliver` with the current verdicts, then with every set
    /// published from now on, until it returns false (the subscriber is gone).
    fn subscribe_with(&self, deliver: Deliver);

    /// A channel receiving the current verdicts, then every set published
    /// from now on.
    fn subscribe(&self) -> std::sync::mpsc::Receiver<Arc<Verdicts>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.subscribe_with(Box::new(move |verdicts| sender.send(verdicts).is_ok()));
        receiver
    }
}

/// A subscriber's callback: returns false once it no longer wants verdicts.
pub type Deliver = Box<dyn Fn(Arc<Verdicts>) -> bool + Send + Sync>;

/// The in-process verdict bus.
#[derive(Debug, Default)]
pub struct LocalVerdicts {
    // A short synchronous critical section on the control plane only (publish
    // happens on verdict changes, subscribe at start-up); never on the query path.
    inner: Mutex<LocalInner>,
}

#[derive(Default)]
struct LocalInner {
    current: Arc<Verdicts>,
    subscribers: Vec<Deliver>,
}

impl fmt::Debug for LocalInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalInner")
            .field("current", &self.current)
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}

impl PublishVerdicts for LocalVerdicts {
    fn publish(&self, verdicts: Arc<Verdicts>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.current = verdicts.clone();
        inner
            .subscribers
            .retain(|deliver| deliver(verdicts.clone()));
    }
}

impl SubscribeVerdicts for LocalVerdicts {
    fn subscribe_with(&self, deliver: Deliver) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if deliver(inner.current.clone()) {
            inner.subscribers.push(deliver);
        }
    }
}

impl crate::EndpointHealth for Verdicts {
    fn is_unhealthy(&self, namespace: &str, service: &str, address: IpAddr) -> bool {
        !self.unhealthy.is_empty()
            && self.unhealthy.contains(&EndpointKey {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                address,
            })
    }
}
