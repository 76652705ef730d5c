//! The ownership TXT value: labels written as
//! `"heritage=external-dns,external-dns/<key>=<value>,..."`.
//!
//! Control plane, pure. Format of external-dns v0.22 (`endpoint/labels.go`):
//! the first token is `heritage=external-dns`, then one token per label in
//! byte order of the key, joined by `,`, the whole wrapped in double quotes.
//! On read the quotes are trimmed, tokens without `=` ignored, each token split
//! at its first `=` (values may contain `=`), and keys without the
//! `external-dns/` prefix ignored. The in-memory nonce label is never written.
//!
//! The format has no escapes: a key or value with `,` or `"` in it does not
//! read back as written (a `,` starts a new token, and every `"` at either end
//! of the string is trimmed), and neither does a key with `=`. The labels
//! signpost writes are its owner id, which start-up checks with
//! [`unrepresentable`], and `resource` values built from Kubernetes object
//! names, which cannot hold those characters.

use crate::endpoint::NONCE_LABEL;
use std::collections::BTreeMap;

const HERITAGE: &str = "external-dns";
const KEY_PREFIX: &str = "external-dns/";

/// A TXT value that is not an ownership record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid heritage")]
pub struct InvalidHeritage;

/// The label string without quotes.
pub fn serialise(labels: &BTreeMap<String, String>) -> String {
    let mut text = format!("heritage={HERITAGE}");
    for (key, value) in labels {
        if key == NONCE_LABEL {
            continue;
        }
        text.push(',');
        text.push_str(KEY_PREFIX);
        text.push_str(key);
        text.push('=');
        text.push_str(value);
    }
    text
}

/// The label string wrapped in double quotes, as it is written to a zone.
pub fn serialise_quoted(labels: &BTreeMap<String, String>) -> String {
    format!("\"{}\"", serialise(labels))
}

/// Why `value` cannot be a label value that reads back as written, if it cannot.
pub fn unrepresentable(value: &str) -> Option<&'static str> {
    if value.contains(',') {
        Some("',' separates labels in the ownership TXT value")
    } else if value.contains('"') {
        Some("'\"' quotes the ownership TXT value")
    } else {
        None
    }
}

/// Removes one pair of surrounding double quotes, if present.
pub fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// Parses a label string, quoted or not.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, InvalidHeritage> {
    let text = text.trim_matches('"');
    let mut labels = BTreeMap::new();
    let mut heritage = false;
    for token in text.split(',') {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        if key == "heritage" {
            if value != HERITAGE {
                return Err(InvalidHeritage);
            }
            heritage = true;
            continue;
        }
        if let Some(key) = key.strip_prefix(KEY_PREFIX) {
            labels.insert(key.to_owned(), value.to_owned());
        }
    }
    if heritage {
        Ok(labels)
    } else {
        Err(InvalidHeritage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Notes §10.1: the exact string, round trips with and without quotes,
    /// `=` inside values, foreign heritage.
    #[test]
    fn format_and_parse() {
        let owned = labels(&[("resource", "service/default/nginx"), ("owner", "default")]);
        let text = serialise_quoted(&owned);
        assert_eq!(
            text,
            "\"heritage=external-dns,external-dns/owner=default,external-dns/resource=service/default/nginx\""
        );
        assert_eq!(parse(&text).unwrap(), owned);
        assert_eq!(parse(unquote(&text)).unwrap(), owned);
        let with_equals = labels(&[("owner", "a=b")]);
        assert_eq!(parse(&serialise(&with_equals)).unwrap(), with_equals);
        assert_eq!(
            parse("heritage=other,external-dns/owner=x"),
            Err(InvalidHeritage)
        );
        assert_eq!(parse("v=spf1 -all"), Err(InvalidHeritage));
        let nonce = labels(&[("owner", "o"), (NONCE_LABEL, "abc")]);
        assert_eq!(
            serialise(&nonce),
            "heritage=external-dns,external-dns/owner=o"
        );
        assert_eq!(
            parse("heritage=external-dns,junk,other/x=1,external-dns/owner=o").unwrap(),
            labels(&[("owner", "o")])
        );
    }

    /// Found by fuzzing (`fuzz/corpus/txt_registry/crash-6e5c...`): a value with
    /// `"` at its end or a `,` inside does not read back, so such values are
    /// named unrepresentable, and every representable one round-trips.
    #[test]
    fn unrepresentable_values_are_named() {
        let quoted = labels(&[("owner", "defa\"\""), ("zz", "x\"")]);
        assert_ne!(parse(&serialise(&quoted)).unwrap(), quoted);
        assert!(unrepresentable("x\"").is_some());
        assert!(unrepresentable("a,b").is_some());
        let comma = labels(&[("owner", "a,b")]);
        assert_ne!(parse(&serialise(&comma)).unwrap(), comma);
        for value in ["default", "a=b", "service/default/nginx", "x y", "\0", "é"] {
            assert_eq!(unrepresentable(value), None, "{value:?}");
            let one = labels(&[("owner", value), ("resource", value)]);
            assert_eq!(parse(&serialise(&one)).unwrap(), one, "{value:?}");
        }
    }
}
