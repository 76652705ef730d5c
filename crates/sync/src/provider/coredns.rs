//! `--provider=coredns` (alias `skydns`): records in etcd in the SkyDNS
//! layout CoreDNS's `etcd` plugin serves, as external-dns writes them.
//!
//! Control plane. One key per target under a random 8-hex-digit leaf, the
//! name's labels reversed under `--coredns-prefix` (default `/skydns/`):
//!
//! ```text
//! /skydns/com/example/nginx/1b2c3d4e    {"host":"192.0.2.10","targetstrip":1}
//! /skydns/com/example/a-nginx/0a1b2c3d  {"text":"\"heritage=external-dns,...\"","targetstrip":1}
//! ```
//!
//! A value with `host` is an A, AAAA or CNAME by the shape of the host (PTR
//! under a reverse zone); a value with `text` is a TXT. Connection from the
//! environment as external-dns reads it: `ETCD_URLS` (comma-separated,
//! default `http://localhost:2379`), `ETCD_USERNAME`, `ETCD_PASSWORD`.
//!
//! Differences from external-dns v0.22, each deliberate: the keys read in
//! `records` are remembered per (name, type), and deletes and updates address
//! exactly those keys (external-dns deletes by prefix, addresses one key of a
//! multi-target record, and leaks ownership TXT keys on update and delete);
//! every change set is one etcd transaction per group of at most 128
//! operations, with a record and its ownership TXT in the same transaction;
//! TXT values always get keys of their own.
//!
//! Invariant: with `--coredns-strictly-owned`, keys whose `owner` is another
//! id are neither read nor written.

use super::{Provider, ProviderError, grouped};
use crate::endpoint::{Endpoint, RecordType, suitable_type};
use crate::plan::Changes;
use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use signpost_model::BoxFuture;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const PROVIDER: &str = "coredns";
/// Every etcd call has this long (external-dns: 5 s).
const TIMEOUT: Duration = Duration::from_secs(5);
/// etcd's default `--max-txn-ops` is 128.
const MAX_TXN_OPS: usize = 128;

/// The provider's settings.
#[derive(Clone)]
pub struct CoreDnsConfig {
    /// etcd endpoints (`ETCD_URLS`).
    pub endpoints: Vec<String>,
    /// `ETCD_USERNAME` and `ETCD_PASSWORD`.
    pub user: Option<(String, String)>,
    /// `--coredns-prefix`.
    pub prefix: String,
    /// `--coredns-strictly-owned`: the owner id to write and require.
    pub strictly_owned: Option<String>,
}

impl fmt::Debug for CoreDnsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreDnsConfig")
            .field("endpoints", &self.endpoints)
            .field(
                "user",
                &self.user.as_ref().map(|(name, _)| (name, "******")),
            )
            .field("prefix", &self.prefix)
            .field("strictly_owned", &self.strictly_owned)
            .finish()
    }
}

/// A SkyDNS value (CoreDNS `msg.Service`); fields left empty are omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Value {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    host: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    port: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    priority: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    weight: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    text: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    ttl: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    targetstrip: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    owner: String,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Keys as last read: (lower-case name, type) ⇒ [(key, target)].
type KeyMap = BTreeMap<(String, RecordType), Vec<(String, String)>>;

/// The CoreDNS/etcd provider.
pub struct CoreDns {
    config: CoreDnsConfig,
    client: tokio::sync::Mutex<Option<Client>>,
    keys: Mutex<KeyMap>,
}

impl fmt::Debug for CoreDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreDns")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// === impl CoreDns ===

impl CoreDns {
    /// A provider for `config`; connects on first use.
    pub fn new(mut config: CoreDnsConfig) -> Self {
        if !config.prefix.ends_with('/') {
            config.prefix.push('/');
        }
        Self {
            config,
            client: tokio::sync::Mutex::new(None),
            keys: Mutex::new(KeyMap::new()),
        }
    }

    fn endpoint(&self) -> String {
        self.config.endpoints.join(",")
    }

    fn error(&self, error: etcd_client::Error) -> ProviderError {
        let endpoint = self.endpoint();
        match error {
            etcd_client::Error::GRpcStatus(status) => {
                let detail = format!("{:?}: {}", status.code(), status.message());
                match i32::from(status.code()) {
                    grpc_code::UNAUTHENTICATED | grpc_code::PERMISSION_DENIED => {
                        ProviderError::Unauthorized {
                            provider: PROVIDER,
                            endpoint,
                            detail,
                        }
                    }
                    grpc_code::UNAVAILABLE | grpc_code::DEADLINE_EXCEEDED => {
                        ProviderError::Unreachable {
                            provider: PROVIDER,
                            endpoint,
                            detail,
                        }
                    }
                    grpc_code::INVALID_ARGUMENT | grpc_code::FAILED_PRECONDITION => {
                        ProviderError::Rejected {
                            provider: PROVIDER,
                            endpoint,
                            detail,
                        }
                    }
                    _ => ProviderError::Server {
                        provider: PROVIDER,
                        endpoint,
                        detail,
                    },
                }
            }
            other => ProviderError::Unreachable {
                provider: PROVIDER,
                endpoint,
                detail: other.to_string(),
            },
        }
    }

    fn timed_out(&self) -> ProviderError {
        ProviderError::Unreachable {
            provider: PROVIDER,
            endpoint: self.endpoint(),
            detail: "etcd did not answer within 5 s".to_owned(),
        }
    }

    /// The connected client (connecting if needed).
    async fn client(&self) -> Result<Client, ProviderError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let mut options = ConnectOptions::new()
            .with_timeout(TIMEOUT)
            .with_connect_timeout(TIMEOUT);
        if let Some((user, password)) = &self.config.user {
            options = options.with_user(user.clone(), password.clone());
        }
        let connect = Client::connect(&self.config.endpoints, Some(options));
        let client = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.error(e))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn forget_client(&self) {
        *self.client.lock().await = None;
    }

    /// `prefix` + the labels of `name` reversed, joined by `/`.
    fn key_of(&self, name: &str) -> String {
        let mut key = self.config.prefix.clone();
        let labels: Vec<&str> = name.trim_end_matches('.').split('.').rev().collect();
        key.push_str(&labels.join("/"));
        key
    }

    /// The name a key stands for, without its first `strip` labels.
    fn name_of(&self, key: &str, strip: u32) -> Option<String> {
        let path = key.strip_prefix(&self.config.prefix)?;
        let mut labels: Vec<&str> = path.split('/').filter(|l| !l.is_empty()).collect();
        labels.reverse();
        let strip = usize::try_from(strip).ok()?;
        (labels.len() > strip).then(|| labels[strip..].join("."))
    }

    async fn list(&self) -> Result<Vec<Endpoint>, ProviderError> {
        let mut client = self.client().await?;
        let get = client.get(
            self.config.prefix.as_str(),
            Some(GetOptions::new().with_prefix()),
        );
        let response = match tokio::time::timeout(TIMEOUT, get).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                self.forget_client().await;
                return Err(self.error(error));
            }
            Err(_) => {
                self.forget_client().await;
                return Err(self.timed_out());
            }
        };
        let mut keys = KeyMap::new();
        let mut endpoints: BTreeMap<(String, RecordType), Endpoint> = BTreeMap::new();
        for kv in response.kvs() {
            let (Ok(key), Ok(text)) = (kv.key_str(), kv.value_str()) else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                tracing::debug!(key, "not a SkyDNS value; ignored");
                continue;
            };
            if let Some(owner) = &self.config.strictly_owned
                && &value.owner != owner
            {
                continue;
            }
            let Some(name) = self.name_of(key, value.targetstrip) else {
                continue;
            };
            let mut add = |record_type: RecordType, target: String| {
                keys.entry((name.to_ascii_lowercase(), record_type))
                    .or_default()
                    .push((key.to_owned(), target.clone()));
                endpoints
                    .entry((name.to_ascii_lowercase(), record_type))
                    .or_insert_with(|| {
                        Endpoint::new(&name, record_type, Vec::new()).with_ttl(value.ttl)
                    })
                    .targets
                    .push(target);
            };
            if !value.host.is_empty() {
                let reverse = name.ends_with(".in-addr.arpa") || name.ends_with(".ip6.arpa");
                let record_type = if reverse {
                    RecordType::Ptr
                } else {
                    suitable_type(&value.host)
                };
                add(record_type, value.host.trim_end_matches('.').to_owned());
            }
            if !value.text.is_empty() {
                add(RecordType::Txt, value.text.clone());
            }
        }
        *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(endpoints.into_values().collect())
    }

    /// The keys last read for an endpoint: (key, target).
    fn known_keys(&self, endpoint: &Endpoint) -> Vec<(String, String)> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(&(endpoint.dns_name.to_ascii_lowercase(), endpoint.record_type))
            .cloned()
            .unwrap_or_default()
    }

    fn value_for(&self, endpoint: &Endpoint, target: &str) -> Value {
        let mut value = Value {
            ttl: endpoint.ttl,
            targetstrip: 1,
            group: endpoint
                .property("coredns/group")
                .unwrap_or_default()
                .to_owned(),
            owner: self.config.strictly_owned.clone().unwrap_or_default(),
            ..Value::default()
        };
        if endpoint.record_type == RecordType::Txt {
            value.text = target.to_owned();
        } else {
            value.host = target.to_owned();
        }
        value
    }

    /// Operations writing `endpoint` (replacing `old`, when updating).
    fn writes(
        &self,
        endpoint: &Endpoint,
        old: Option<&Endpoint>,
        ops: &mut Vec<TxnOp>,
    ) -> Result<(), ProviderError> {
        if !matches!(
            endpoint.record_type,
            RecordType::A
                | RecordType::Aaaa
                | RecordType::Cname
                | RecordType::Txt
                | RecordType::Ptr
        ) {
            return Err(ProviderError::Rejected {
                provider: PROVIDER,
                endpoint: endpoint.dns_name.clone(),
                detail: format!(
                    "{} records cannot be written in the SkyDNS layout",
                    endpoint.record_type
                ),
            });
        }
        let existing = old.map(|o| self.known_keys(o)).unwrap_or_default();
        let mut kept: HashSet<&str> = HashSet::new();
        for target in &endpoint.targets {
            let key = match existing
                .iter()
                .find(|(_, t)| t.eq_ignore_ascii_case(target))
            {
                Some((key, _)) => {
                    kept.insert(key.as_str());
                    key.clone()
                }
                None => format!("{}/{}", self.key_of(&endpoint.dns_name), random_label()),
            };
            let value =
                serde_json::to_string(&self.value_for(endpoint, target)).unwrap_or_default();
            tracing::debug!(key = %key, "etcd: put");
            ops.push(TxnOp::put(key, value, None));
        }
        for (key, _) in &existing {
            if !kept.contains(key.as_str()) {
                ops.push(TxnOp::delete(key.clone(), None));
            }
        }
        Ok(())
    }

    fn deletes(&self, endpoint: &Endpoint, ops: &mut Vec<TxnOp>) {
        for (key, target) in self.known_keys(endpoint) {
            if endpoint
                .targets
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&target))
                || endpoint.targets.is_empty()
            {
                tracing::debug!(key = %key, "etcd: delete");
                ops.push(TxnOp::delete(key, None));
            }
        }
    }

    async fn commit(&self, batches: Vec<Vec<TxnOp>>) -> Result<(), ProviderError> {
        let total = batches.len();
        let mut client = self.client().await?;
        for (done, ops) in batches.into_iter().enumerate() {
            if ops.is_empty() {
                continue;
            }
            let result = tokio::time::timeout(TIMEOUT, client.txn(Txn::new().and_then(ops))).await;
            let error = match result {
                Ok(Ok(_)) => continue,
                Ok(Err(error)) => self.error(error),
                Err(_) => self.timed_out(),
            };
            self.forget_client().await;
            if done == 0 {
                return Err(error);
            }
            return Err(ProviderError::Partial {
                provider: PROVIDER,
                failed: total - done,
                total,
                first: Box::new(error),
            });
        }
        Ok(())
    }

    async fn apply(&self, changes: &Changes) -> Result<(), ProviderError> {
        // Each group (a record and its TXT) becomes a run of operations that
        // stays inside one transaction.
        let mut groups: Vec<Vec<TxnOp>> = Vec::new();
        for group in grouped(&changes.create) {
            let mut ops = Vec::new();
            for endpoint in group {
                self.writes(endpoint, None, &mut ops)?;
            }
            groups.push(ops);
        }
        for (old, new) in changes.update_old.iter().zip(&changes.update_new) {
            let mut ops = Vec::new();
            self.writes(new, Some(old), &mut ops)?;
            groups.push(ops);
        }
        for group in grouped(&changes.delete) {
            let mut ops = Vec::new();
            for endpoint in group {
                self.deletes(endpoint, &mut ops);
            }
            groups.push(ops);
        }
        let mut batches: Vec<Vec<TxnOp>> = vec![Vec::new()];
        for ops in groups {
            let last = batches.last().map_or(0, Vec::len);
            if last > 0 && last + ops.len() > MAX_TXN_OPS {
                batches.push(Vec::new());
            }
            if let Some(batch) = batches.last_mut() {
                batch.extend(ops);
            }
        }
        self.commit(batches).await
    }
}

/// gRPC status codes (grpc/doc/statuscodes.md).
mod grpc_code {
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const FAILED_PRECONDITION: i32 = 9;
    pub(super) const UNAVAILABLE: i32 = 14;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

fn random_label() -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::getrandom(&mut bytes);
    format!("{:08x}", u32::from_ne_bytes(bytes) & 0x7fff_ffff)
}

impl Provider for CoreDns {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn records(&self) -> BoxFuture<'_, Result<Vec<Endpoint>, ProviderError>> {
        Box::pin(self.list())
    }

    fn apply_changes<'a>(
        &'a self,
        changes: &'a Changes,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.apply(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CoreDns {
        CoreDns::new(CoreDnsConfig {
            endpoints: vec!["http://127.0.0.1:1".to_owned()],
            user: Some(("root".to_owned(), "pw-secret".to_owned())),
            prefix: "/skydns".to_owned(),
            strictly_owned: None,
        })
    }

    /// The SkyDNS layout: reversed labels under the prefix, the leaf stripped.
    #[test]
    fn keys_and_values() {
        let provider = provider();
        assert_eq!(
            provider.key_of("nginx.example.com."),
            "/skydns/com/example/nginx"
        );
        assert_eq!(
            provider
                .name_of("/skydns/com/example/nginx/1b2c3d4e", 1)
                .unwrap(),
            "nginx.example.com"
        );
        assert_eq!(
            provider.name_of("/skydns/com/example/nginx", 0).unwrap(),
            "nginx.example.com"
        );
        let endpoint = Endpoint::new(
            "nginx.example.com",
            RecordType::A,
            vec!["192.0.2.10".to_owned()],
        );
        let value = serde_json::to_string(&provider.value_for(&endpoint, "192.0.2.10")).unwrap();
        assert_eq!(value, r#"{"host":"192.0.2.10","targetstrip":1}"#);
        let label = random_label();
        assert_eq!(label.len(), 8);
        assert!(!format!("{provider:?}").contains("pw-secret"));
    }
}
