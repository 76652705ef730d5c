//! Owned domain names in lower-case wire format, for building data (control plane).

use std::fmt;

/// Longest name in wire format (RFC 1035 §3.1).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §3.1).
pub const MAX_LABEL_LEN: usize = 63;

/// An absolute domain name in uncompressed, lower-case wire format.
///
/// signpost matches names case-insensitively (RFC 4343) by folding ASCII
/// letters once, when the name is built, so lookups compare bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

/// Why text is not a valid domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A label is empty (two dots in a row, or a leading dot).
    #[error("empty label in {0:?}")]
    EmptyLabel(String),
    /// A label is longer than 63 bytes.
    #[error("label longer than 63 bytes in {0:?}")]
    LabelTooLong(String),
    /// The whole name is longer than 255 bytes in wire format.
    #[error("name longer than 255 bytes: {0:?}")]
    TooLong(String),
}

// === impl Name ===

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Self(Box::new([0]))
    }

    /// Parses presentation format; a missing trailing dot is accepted (names are absolute).
    pub fn from_ascii(text: &str) -> Result<Self, NameError> {
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        let mut wire = Vec::with_capacity(trimmed.len() + 2);
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel(text.to_owned()));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong(text.to_owned()));
            }
            wire.push(label.len() as u8);
            wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(text.to_owned()));
        }
        Ok(Self(wire.into_boxed_slice()))
    }

    /// Builds `label.parent`.
    pub fn child(&self, label: &str) -> Result<Self, NameError> {
        if label.is_empty() {
            return Err(NameError::EmptyLabel(label.to_owned()));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong(label.to_owned()));
        }
        let mut wire = Vec::with_capacity(self.0.len() + label.len() + 1);
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        wire.extend_from_slice(&self.0);
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(format!("{label}.{self}")));
        }
        Ok(Self(wire.into_boxed_slice()))
    }

    /// Wraps wire bytes that are already lower-case and well formed (for example a
    /// key taken from [`crate::Query::qname_lower`]). Returns `None` if they are not a name.
    pub fn from_wire(wire: &[u8]) -> Option<Self> {
        let mut at = 0;
        loop {
            let len = *wire.get(at)? as usize;
            if len == 0 {
                return (at + 1 == wire.len() && wire.len() <= MAX_NAME_LEN)
                    .then(|| Self(wire.into()));
            }
            if len > MAX_LABEL_LEN {
                return None;
            }
            at += 1 + len;
        }
    }

    /// The name in wire format, lower case, ending in the root label.
    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The name with its first label removed, or `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        if self.is_root() {
            return None;
        }
        let skip = 1 + self.0[0] as usize;
        Some(Self(self.0[skip..].into()))
    }

    /// The first label, or `None` for the root.
    pub fn first_label(&self) -> Option<&[u8]> {
        self.labels().next()
    }

    /// Iterates over the labels from the leftmost, without the root.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let wire = &self.0;
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = wire[at] as usize;
            if len == 0 {
                return None;
            }
            let label = &wire[at + 1..at + 1 + len];
            at += 1 + len;
            Some(label)
        })
    }

    /// True when `self` equals `zone` or lies below it.
    pub fn is_within(&self, zone: &Self) -> bool {
        is_within_wire(&self.0, &zone.0)
    }
}

/// True when the lower-case wire name `name` equals `zone` or lies below it,
/// comparing on label boundaries.
pub fn is_within_wire(name: &[u8], zone: &[u8]) -> bool {
    if zone.len() > name.len() {
        return false;
    }
    let mut at = 0;
    while name.len() - at > zone.len() {
        at += 1 + name[at] as usize;
    }
    name.len() - at == zone.len() && &name[at..] == zone
}

/// Maps keyed by [`Name`] can be searched with a wire slice (a suffix of
/// another name, say) without allocating: the derived `Hash`, `Eq` and `Ord`
/// of `Name` are those of its wire bytes.
impl std::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lower_case() {
        let name = Name::from_ascii("Kubernetes.Default.svc.cluster.local").unwrap();
        assert_eq!(name.to_string(), "kubernetes.default.svc.cluster.local.");
        assert_eq!(name.label_count(), 5);
        assert_eq!(Name::from_ascii(".").unwrap(), Name::root());
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(
            Name::from_ascii("a..b"),
            Err(NameError::EmptyLabel(_))
        ));
        let long = "a".repeat(64);
        assert!(matches!(
            Name::from_ascii(&long),
            Err(NameError::LabelTooLong(_))
        ));
        let many = ["abcdefghij"; 30].join(".");
        assert!(matches!(
            Name::from_ascii(&many),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn within_compares_whole_labels() {
        let zone = Name::from_ascii("cluster.local").unwrap();
        assert!(
            Name::from_ascii("a.cluster.local")
                .unwrap()
                .is_within(&zone)
        );
        assert!(zone.is_within(&zone));
        assert!(!Name::from_ascii("acluster.local").unwrap().is_within(&zone));
        assert!(Name::from_ascii("x.y").unwrap().is_within(&Name::root()));
    }

    #[test]
    fn parent_and_child_round_trip() {
        let zone = Name::from_ascii("svc.cluster.local").unwrap();
        let child = zone.child("Default").unwrap();
        assert_eq!(child.to_string(), "default.svc.cluster.local.");
        assert_eq!(child.parent().unwrap(), zone);
        assert_eq!(Name::from_wire(child.as_wire()).unwrap(), child);
    }
}
