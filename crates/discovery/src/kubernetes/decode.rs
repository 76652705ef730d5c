//! One listed or watched object, decoded once from its JSON text into its
//! typed form, or kept as undecodable with only its metadata.
//!
//! Control plane, on each watch's task. The watcher deserializes list pages
//! and watch events straight into [`Lenient`]: each object's text is cut out
//! of the page ([`RawValue`], no tree built) and parsed into the typed
//! `k8s-openapi` object once. An object that does not decode is parsed again
//! for its metadata alone (its key and `resourceVersion`, which the watcher
//! needs), so one bad object never fails the page it came in.
//!
//! ```text
//!  list page / watch line ──▶ items[i] text (RawValue) ──▶ K ──────────────▶ Decoded(K)
//!                                                 └─ error ─▶ metadata only ─▶ Undecodable
//! ```
//!
//! The object's text is cut out only when the JSON parser reads it directly:
//! a list's `items`, and a watch event whose `type` comes before its `object`,
//! which is how the API server writes every event (`metav1.WatchEvent`'s field
//! order). An event written the other way round (a proxy that sorts keys)
//! fails to decode as a whole; the watch then lists again after a backoff
//! (`watch` in the parent module), so no change is lost, only delayed.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A watched object of type `K`, or the metadata of one that did not decode.
#[derive(Clone, Debug)]
pub(super) enum Lenient<K> {
    Decoded(K),
    Undecodable {
        metadata: Box<ObjectMeta>,
        error: String,
    },
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Self::from_text(text.get()))
    }
}

impl<K: DeserializeOwned> Lenient<K> {
    fn from_text(text: &str) -> Self {
        match serde_json::from_str::<K>(text) {
            Ok(object) => Self::Decoded(object),
            Err(error) => {
                // Only what names the object and what the watcher tracks, so
                // a bad label or timestamp does not also lose its key.
                #[derive(Default, Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Key {
                    name: Option<String>,
                    namespace: Option<String>,
                    resource_version: Option<String>,
                }
                #[derive(Deserialize)]
                struct MetadataOnly {
                    #[serde(default)]
                    metadata: Key,
                }
                let key = serde_json::from_str::<MetadataOnly>(text)
                    .map(|m| m.metadata)
                    .unwrap_or_default();
                let metadata = Box::new(ObjectMeta {
                    name: key.name,
                    namespace: key.namespace,
                    resource_version: key.resource_version,
                    ..ObjectMeta::default()
                });
                Self::Undecodable {
                    metadata,
                    error: error.to_string(),
                }
            }
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Decoded(object) => object.meta(),
            Self::Undecodable { metadata, .. } => metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Decoded(object) => object.meta_mut(),
            Self::Undecodable { metadata, .. } => metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::core::ObjectList;
    use kube::core::WatchEvent;

    fn key<K: Resource<DynamicType = ()>>(object: &Lenient<K>) -> (Option<&str>, Option<&str>) {
        let meta = object.meta();
        (meta.namespace.as_deref(), meta.name.as_deref())
    }

    /// A list page with one object that does not decode keeps the others,
    /// and the bad one still names itself and its resourceVersion.
    #[test]
    fn a_bad_item_does_not_fail_its_page() {
        let page = r#"{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1",
            "metadata":{"resourceVersion":"7"},
            "items":[
              {"metadata":{"name":"a","namespace":"n","resourceVersion":"5"},"addressType":"IPv4",
               "endpoints":[{"addresses":["10.0.0.1"]}]},
              {"metadata":{"name":"b","namespace":"n","resourceVersion":"6"},"addressType":"IPv4",
               "endpoints":"not a list"}
            ]}"#;
        let list: ObjectList<Lenient<EndpointSlice>> = serde_json::from_str(page).unwrap();
        assert_eq!(list.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(list.items.len(), 2);
        match &list.items[0] {
            Lenient::Decoded(slice) => {
                assert_eq!(slice.endpoints[0].addresses, ["10.0.0.1"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(key(&list.items[1]), (Some("n"), Some("b")));
        assert_eq!(list.items[1].meta().resource_version.as_deref(), Some("6"));
        match &list.items[1] {
            Lenient::Undecodable { error, .. } => {
                assert!(error.contains("invalid type"), "{error}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Watch events as the API server writes them (`type` first), bookmarks
    /// (which carry no object of ours) and errors still decode.
    #[test]
    fn watch_events_decode() {
        let added = r#"{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n"},"addressType":"IPv4","endpoints":[]}}"#;
        match serde_json::from_str::<WatchEvent<Lenient<EndpointSlice>>>(added).unwrap() {
            WatchEvent::Added(object) => assert_eq!(key(&object), (Some("n"), Some("a"))),
            other => panic!("{other:?}"),
        }
        let broken = r#"{"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":"n"},"addressType":7}}"#;
        match serde_json::from_str::<WatchEvent<Lenient<EndpointSlice>>>(broken).unwrap() {
            WatchEvent::Modified(Lenient::Undecodable { metadata, .. }) => {
                assert_eq!(metadata.name.as_deref(), Some("a"));
            }
            other => panic!("{other:?}"),
        }
        let bookmark = r#"{"object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"9"}},"type":"BOOKMARK"}"#;
        assert!(matches!(
            serde_json::from_str::<WatchEvent<Lenient<EndpointSlice>>>(bookmark).unwrap(),
            WatchEvent::Bookmark(_)
        ));
        let error = r#"{"object":{"kind":"Status","apiVersion":"v1","status":"Failure","code":410,"reason":"Expired","message":"too old"},"type":"ERROR"}"#;
        assert!(matches!(
            serde_json::from_str::<WatchEvent<Lenient<EndpointSlice>>>(error).unwrap(),
            WatchEvent::Error(status) if status.code == 410
        ));
    }

    /// A bad value elsewhere in the metadata (a label that is not a string)
    /// still leaves the object its key and resourceVersion.
    #[test]
    fn bad_metadata_keeps_the_key() {
        let page = r#"{"metadata":{},"items":[{"metadata":{"name":"a","namespace":"n",
            "resourceVersion":"4","labels":{"x":7}},"addressType":"IPv4","endpoints":[]}]}"#;
        let list: ObjectList<Lenient<EndpointSlice>> = serde_json::from_str(page).unwrap();
        assert!(matches!(list.items[0], Lenient::Undecodable { .. }));
        assert_eq!(key(&list.items[0]), (Some("n"), Some("a")));
        assert_eq!(list.items[0].meta().resource_version.as_deref(), Some("4"));
    }

    /// An object that is not even an object with metadata is kept with empty
    /// metadata rather than failing the page.
    #[test]
    fn an_item_without_usable_metadata_is_kept_empty() {
        let page = r#"{"metadata":{},"items":[{"metadata":"x"}, 3]}"#;
        let list: ObjectList<Lenient<EndpointSlice>> = serde_json::from_str(page).unwrap();
        assert_eq!(list.items.len(), 2);
        assert!(list.items.iter().all(|item| key(item) == (None, None)));
    }
}
