//! Health verdicts in a Kubernetes ConfigMap: the [`VerdictStore`] of
//! `signpost health` and `healthcheck { verdicts kubernetes }` replicas.
//!
//! Control plane. The leader owns one ConfigMap (by default
//! `kube-system/signpost-health-verdicts`):
//!
//! ```text
//! apiVersion: v1
//! kind: ConfigMap
//! metadata:
//!   name: signpost-health-verdicts
//!   namespace: kube-system
//!   labels: {app.kubernetes.io/managed-by: signpost-health}
//!   annotations:
//!     dns.aikernel.io/verdicts-published-at: "2025-06-01T12:00:00.123456Z"
//!     dns.aikernel.io/verdicts-published-by: dns-health-controller-7d9f_4242
//! data:
//!   unhealthy: |                     # one namespace/service/address per line, sorted
//!     shop/db/10.0.3.7
//!     shop/web/fd00::12
//! ```
//!
//! A ConfigMap without `data.unhealthy` (created empty by a manifest) holds
//! no verdicts. The API server refuses a ConfigMap whose data exceeds 1 MiB
//! ([`MAX_DATA_BYTES`]): about 25,000 entries of 40 bytes. A larger set is
//! refused before it is sent (`StoreError::TooLarge`), and the previous set
//! stays published.
//!
//! Reads are a GET of the object, watches a watch pinned by
//! `fieldSelector=metadata.name=NAME`, writes a GET and a PUT with the read
//! `resourceVersion` (a conflict is read again and retried), or a POST when
//! the object does not exist. So RBAC can be limited to that one name
//! (`get`, `list`, `watch`, `update`; `create` only when the ConfigMap is not
//! created beforehand).

use super::client::connect;
use crate::verdicts::{
    Change, Changes, Published, Read, Record, StoreError, VerdictStore, WriteOutcome, decode_lines,
    encode_lines,
};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use signpost_model::BoxFuture;
use signpost_zone::KubeConnection;
use std::collections::BTreeMap;
use std::time::Duration;

/// The API server's limit on a ConfigMap's data (the sum of its values):
/// `ConfigMap "x" is invalid: []: Too long: may not be more than 1048576 bytes`.
pub const MAX_DATA_BYTES: usize = 1 << 20;

/// The data key holding the set.
pub const DATA_KEY: &str = "unhealthy";

/// When the set was written (RFC 3339, microseconds).
pub const PUBLISHED_AT: &str = "dns.aikernel.io/verdicts-published-at";

/// Who wrote it (the leader's identity).
pub const PUBLISHED_BY: &str = "dns.aikernel.io/verdicts-published-by";

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the API server keeps one watch open before the follower reads again.
const WATCH_TIMEOUT_SECONDS: u32 = 60;

/// Conflicting writes (another writer in between) retried at once.
const CONFLICT_RETRIES: usize = 3;

/// One ConfigMap holding the verdicts.
pub struct ConfigMapVerdicts {
    connection: KubeConnection,
    namespace: String,
    name: String,
    describe: String,
    client: tokio::sync::OnceCell<kube::Client>,
}

impl std::fmt::Debug for ConfigMapVerdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapVerdicts")
            .field("object", &self.describe)
            .finish_non_exhaustive()
    }
}

// === impl ConfigMapVerdicts ===

impl ConfigMapVerdicts {
    /// The ConfigMap `namespace/name`, reached through `connection`. The
    /// client is built at the first request.
    pub fn new(connection: KubeConnection, namespace: &str, name: &str) -> Self {
        Self {
            connection,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            describe: format!("configmap {namespace}/{name}"),
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn api(&self) -> Result<Api<ConfigMap>, StoreError> {
        let client = self
            .client
            .get_or_try_init(|| connect(&self.connection))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Api::namespaced(client.clone(), &self.namespace))
    }

    async fn get(&self, api: &Api<ConfigMap>) -> Result<Option<ConfigMap>, StoreError> {
        Ok(timed(api.get_opt(&self.name)).await?)
    }

    async fn write_record(&self, record: &Record) -> Result<WriteOutcome, StoreError> {
        let value = encode_lines(&record.verdicts);
        if value.len() > MAX_DATA_BYTES {
            return Err(StoreError::TooLarge {
                bytes: value.len(),
                limit: MAX_DATA_BYTES,
            });
        }
        let api = self.api().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get(&api).await?;
            let result = match current {
                Some(mut object) => {
                    if decode(&object)
                        .is_ok_and(|p| p.verdicts.unhealthy == record.verdicts.unhealthy)
                    {
                        return Ok(WriteOutcome::Unchanged);
                    }
                    fill(&mut object, &value, record);
                    timed(api.replace(&self.name, &PostParams::default(), &object)).await
                }
                None => {
                    let mut object = ConfigMap::default();
                    object.metadata.name = Some(self.name.clone());
                    object.metadata.namespace = Some(self.namespace.clone());
                    object.metadata.labels = Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "signpost-health".to_owned(),
                    )]));
                    fill(&mut object, &value, record);
                    timed(api.create(&PostParams::default(), &object)).await
                }
            };
            match result {
                Ok(_) => return Ok(WriteOutcome::Written { bytes: value.len() }),
                // 409: someone wrote in between (or created it first): read again.
                Err(RequestError::Conflict) if attempt < CONFLICT_RETRIES => continue,
                Err(error) => return Err(error.into_store()),
            }
        }
    }
}

impl VerdictStore for ConfigMapVerdicts {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn read(&self) -> BoxFuture<'_, Result<Read, StoreError>> {
        Box::pin(async move {
            let api = self.api().await?;
            let Some(object) = self.get(&api).await? else {
                return Ok(Read {
                    published: None,
                    position: String::new(),
                });
            };
            let position = object.metadata.resource_version.clone().unwrap_or_default();
            Ok(Read {
                published: Some(decode(&object)?),
                position,
            })
        })
    }

    fn watch(&self, position: &str) -> BoxFuture<'_, Result<Changes, StoreError>> {
        let position = position.to_owned();
        Box::pin(async move {
            let api = self.api().await?;
            let params = WatchParams::default()
                .fields(&format!("metadata.name={}", self.name))
                .timeout(WATCH_TIMEOUT_SECONDS);
            let events = tokio::time::timeout(REQUEST_TIMEOUT, api.watch(&params, &position))
                .await
                .map_err(|_| StoreError::Unavailable("watch request timed out".to_owned()))?
                .map_err(|e| StoreError::Unavailable(describe_error(&e)))?;
            let changes = events.filter_map(|event| async move {
                match event {
                    Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)) => {
                        Some(decode(&object).map(Change::Published))
                    }
                    Ok(WatchEvent::Deleted(_)) => Some(Ok(Change::Deleted)),
                    Ok(WatchEvent::Bookmark(_)) => None,
                    Ok(WatchEvent::Error(status)) => Some(Err(StoreError::Unavailable(format!(
                        "watch error {}: {}",
                        status.code, status.message
                    )))),
                    Err(error) => Some(Err(StoreError::Unavailable(describe_error(&error)))),
                }
            });
            Ok(changes.boxed())
        })
    }

    fn write(&self, record: &Record) -> BoxFuture<'_, Result<WriteOutcome, StoreError>> {
        let record = record.clone();
        Box::pin(async move { self.write_record(&record).await })
    }
}

/// A failed request: a conflict (retried at once) or anything else.
enum RequestError {
    Conflict,
    Other(String),
}

impl RequestError {
    fn into_store(self) -> StoreError {
        match self {
            Self::Conflict => StoreError::Unavailable(
                "the object kept changing under concurrent writes".to_owned(),
            ),
            Self::Other(message) => StoreError::Unavailable(message),
        }
    }
}

impl From<RequestError> for StoreError {
    fn from(error: RequestError) -> Self {
        error.into_store()
    }
}

/// A request with [`REQUEST_TIMEOUT`].
async fn timed<T>(
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, RequestError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(kube::Error::Api(status))) if status.is_conflict() => Err(RequestError::Conflict),
        Ok(Err(error)) => Err(RequestError::Other(describe_error(&error))),
        Err(_) => Err(RequestError::Other("request timed out".to_owned())),
    }
}

/// An API error as its status message says it (`configmaps "x" is
/// forbidden: ...`), anything else as the client's error.
fn describe_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// Writes the set and its annotations into `object`.
fn fill(object: &mut ConfigMap, value: &str, record: &Record) {
    object
        .data
        .get_or_insert_with(BTreeMap::new)
        .insert(DATA_KEY.to_owned(), value.to_owned());
    let annotations = object
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    let micros = (record.at_unix * 1e6) as i64;
    if let Ok(at) = k8s_openapi::jiff::Timestamp::from_microsecond(micros) {
        annotations.insert(PUBLISHED_AT.to_owned(), at.to_string());
    }
    annotations.insert(PUBLISHED_BY.to_owned(), record.by.clone());
}

/// The set a ConfigMap holds; no `data.unhealthy` is the empty set.
fn decode(object: &ConfigMap) -> Result<Published, StoreError> {
    let text = object
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map_or("", String::as_str);
    let verdicts = decode_lines(text)?;
    let at_unix = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PUBLISHED_AT))
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| t.as_microsecond() as f64 / 1e6);
    Ok(Published { verdicts, at_unix })
}
