//! Ownership TXT names: where the TXT describing a record lives.
//!
//! Control plane, pure. external-dns v0.22's mapper (`registry/mapper`):
//! `<prefix><type>-<first label><suffix>.<rest>`, where `%{record_type}` in
//! the prefix or suffix replaces the `<type>-` part, affixes are lower-cased,
//! and a leading `*` label may be replaced (`--txt-wildcard-replacement`).
//! Reading maps a TXT name back to (record name, type), or to a legacy
//! untyped name (type `None`).
//!
//! ```text
//! nginx.example.com A   ──▶ a-nginx.example.com          (defaults)
//!                       ──▶ xyz-a-nginx.example.com      (--txt-prefix=xyz-)
//!                       ──▶ a.nginx.example.com          (--txt-prefix=%{record_type}.)
//!                       ──▶ a-nginx-xyz.example.com      (--txt-suffix=-xyz)
//! ```

use crate::endpoint::RecordType;

const TEMPLATE: &str = "%{record_type}";

/// `--txt-prefix`, `--txt-suffix`, `--txt-wildcard-replacement`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxtNames {
    prefix: String,
    suffix: String,
    wildcard: String,
}

/// Prefix and suffix were both given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("txt-prefix and txt-suffix are mutual exclusive")]
pub struct PrefixAndSuffix;

/// What a TXT name maps back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The record name (lower case).
    pub name: String,
    /// The record type, or `None` for a legacy untyped TXT.
    pub record_type: Option<RecordType>,
}

// === impl TxtNames ===

impl TxtNames {
    /// The mapper for the three flags.
    pub fn new(prefix: &str, suffix: &str, wildcard: &str) -> Result<Self, PrefixAndSuffix> {
        if !prefix.is_empty() && !suffix.is_empty() {
            return Err(PrefixAndSuffix);
        }
        Ok(Self {
            prefix: prefix.to_ascii_lowercase(),
            suffix: suffix.to_ascii_lowercase(),
            wildcard: wildcard.to_ascii_lowercase(),
        })
    }

    /// The wildcard replacement, if any.
    pub fn wildcard(&self) -> &str {
        &self.wildcard
    }

    fn templated(&self) -> bool {
        self.prefix.contains(TEMPLATE) || self.suffix.contains(TEMPLATE)
    }

    /// The TXT name for a record (external-dns `ToTXTName`).
    pub fn txt_name(&self, name: &str, record_type: RecordType) -> String {
        let t = record_type.lower();
        let prefix = self.prefix.replace(TEMPLATE, t);
        let suffix = self.suffix.replace(TEMPLATE, t);
        let (first, rest) = match name.split_once('.') {
            Some((first, rest)) => (first, Some(rest)),
            None => (name, None),
        };
        let first = if first == "*" && !self.wildcard.is_empty() {
            self.wildcard.as_str()
        } else {
            first
        };
        let label = if self.templated() {
            first.to_owned()
        } else {
            format!("{t}-{first}")
        };
        match rest {
            Some(rest) => format!("{prefix}{label}{suffix}.{rest}"),
            None => format!("{prefix}{label}{suffix}"),
        }
    }

    /// The record name and type a TXT name describes (external-dns
    /// `ToEndpointName`), or `None` when it is not one of ours.
    pub fn record_name(&self, txt_name: &str) -> Option<Mapped> {
        let lower = txt_name.trim_end_matches('.').to_ascii_lowercase();
        if self.suffix.is_empty() {
            self.map_prefixed(&lower)
        } else {
            self.map_suffixed(&lower)
        }
    }

    fn map_prefixed(&self, name: &str) -> Option<Mapped> {
        if self.prefix.contains(TEMPLATE) {
            for record_type in RecordType::ALL {
                let prefix = self.prefix.replace(TEMPLATE, record_type.lower());
                if let Some(rest) = name.strip_prefix(&prefix) {
                    return Some(Mapped {
                        name: rest.to_owned(),
                        record_type: Some(record_type),
                    });
                }
            }
            let legacy = self.prefix.replace(TEMPLATE, "");
            return name.strip_prefix(&legacy).map(split_type);
        }
        name.strip_prefix(&self.prefix).map(split_type)
    }

    fn map_suffixed(&self, name: &str) -> Option<Mapped> {
        let dots = self.suffix.matches('.').count();
        let parts: Vec<&str> = name.splitn(dots + 2, '.').collect();
        if parts.len() < dots + 1 {
            return None;
        }
        let label_part = parts[..=dots].join(".");
        let rest = parts.get(dots + 1);
        let with_rest = |label: &str| match rest {
            Some(rest) => format!("{label}.{rest}"),
            None => label.to_owned(),
        };
        if self.suffix.contains(TEMPLATE) {
            for record_type in RecordType::ALL {
                let suffix = self.suffix.replace(TEMPLATE, record_type.lower());
                if let Some(label) = label_part.strip_suffix(&suffix) {
                    return Some(Mapped {
                        name: with_rest(label),
                        record_type: Some(record_type),
                    });
                }
            }
            let legacy = self.suffix.replace(TEMPLATE, "");
            return label_part.strip_suffix(&legacy).map(|label| Mapped {
                name: with_rest(label),
                record_type: None,
            });
        }
        let label = label_part.strip_suffix(&self.suffix)?;
        let mapped = split_type(label);
        Some(Mapped {
            name: with_rest(&mapped.name),
            record_type: mapped.record_type,
        })
    }

    /// The legacy untyped TXT name external-dns up to v0.17 wrote next to the
    /// typed one: the affixes without the template, no type.
    pub fn legacy_name(&self, name: &str) -> String {
        let prefix = self.prefix.replace(TEMPLATE, "");
        let suffix = self.suffix.replace(TEMPLATE, "");
        match name.split_once('.') {
            Some((first, rest)) => format!("{prefix}{first}{suffix}.{rest}"),
            None => format!("{prefix}{name}{suffix}"),
        }
    }
}

/// Splits `<type>-rest` into the type and the rest; any other text is legacy.
fn split_type(text: &str) -> Mapped {
    if let Some((head, rest)) = text.split_once('-')
        && let Some(record_type) = RecordType::ALL.into_iter().find(|t| t.lower() == head)
    {
        return Mapped {
            name: rest.to_owned(),
            record_type: Some(record_type),
        };
    }
    Mapped {
        name: text.to_owned(),
        record_type: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecordType::{A, Aaaa, Cname, Srv};

    /// Notes §5.2: every row of the mapper table, and back (§5.3).
    #[test]
    fn mapper_table() {
        let rows: &[(&str, &str, &str, RecordType, &str, &str)] = &[
            ("", "", "", A, "nginx.example.com", "a-nginx.example.com"),
            (
                "",
                "",
                "",
                Aaaa,
                "nginx.example.com",
                "aaaa-nginx.example.com",
            ),
            (
                "",
                "",
                "",
                Cname,
                "nginx.example.com",
                "cname-nginx.example.com",
            ),
            (
                "xyz-",
                "",
                "",
                A,
                "nginx.example.com",
                "xyz-a-nginx.example.com",
            ),
            (
                "txt.",
                "",
                "",
                A,
                "nginx.example.com",
                "txt.a-nginx.example.com",
            ),
            (
                "%{record_type}-prefix-",
                "",
                "",
                A,
                "nginx.example.com",
                "a-prefix-nginx.example.com",
            ),
            (
                "%{record_type}.",
                "",
                "",
                A,
                "nginx.example.com",
                "a.nginx.example.com",
            ),
            (
                "%{record_type}-abc-.",
                "",
                "",
                Cname,
                "ex.com",
                "cname-abc-.ex.com",
            ),
            (
                "",
                "-xyz",
                "",
                A,
                "nginx.example.com",
                "a-nginx-xyz.example.com",
            ),
            (
                "",
                "-%{record_type}",
                "",
                A,
                "nginx.example.com",
                "nginx-a.example.com",
            ),
            (
                "",
                ".foo.bar",
                "",
                A,
                "example.com",
                "a-example.foo.bar.com",
            ),
            ("", "", "", A, "*.apps.example.com", "a-*.apps.example.com"),
            (
                "",
                "",
                "wildcard",
                A,
                "*.apps.example.com",
                "a-wildcard.apps.example.com",
            ),
            (
                "xyz-",
                "",
                "wc",
                A,
                "*.apps.example.com",
                "xyz-a-wc.apps.example.com",
            ),
            (
                "",
                "",
                "",
                Srv,
                "_web._tcp.web.example.com",
                "srv-_web._tcp.web.example.com",
            ),
            ("", "", "", A, "example.com", "a-example.com"),
        ];
        for (prefix, suffix, wildcard, record_type, name, txt) in rows {
            let names = TxtNames::new(prefix, suffix, wildcard).unwrap();
            assert_eq!(
                names.txt_name(name, *record_type),
                *txt,
                "{prefix:?} {suffix:?} {name}"
            );
            let back = names.record_name(txt).unwrap();
            assert_eq!(back.record_type, Some(*record_type), "{txt}");
            let expected = if name.starts_with("*.") && !wildcard.is_empty() {
                name.replacen('*', wildcard, 1)
            } else {
                (*name).to_owned()
            };
            assert_eq!(back.name, expected, "{txt}");
        }
    }

    /// Legacy untyped TXT names map back without a type.
    #[test]
    fn legacy_names() {
        let names = TxtNames::new("", "", "").unwrap();
        assert_eq!(
            names.record_name("nginx.example.com").unwrap().record_type,
            None
        );
        assert_eq!(names.legacy_name("nginx.example.com"), "nginx.example.com");
        let prefixed = TxtNames::new("xyz-", "", "").unwrap();
        assert_eq!(
            prefixed.legacy_name("nginx.example.com"),
            "xyz-nginx.example.com"
        );
        let back = prefixed.record_name("XYZ-nginx.example.com").unwrap();
        assert_eq!(
            (back.name.as_str(), back.record_type),
            ("nginx.example.com", None)
        );
        assert_eq!(prefixed.record_name("other.example.com"), None);
        assert!(TxtNames::new("a", "b", "").is_err());
    }
}
