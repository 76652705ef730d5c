//! The endpoint: one record set as external-dns models it, shared by sources,
//! the planner, the registry and every provider.
//!
//! Control plane, plain data. Invariants kept by [`Endpoint::new`]: the name
//! has no trailing dot, and targets of types other than TXT, SRV and NAPTR have
//! none either (external-dns v0.22 `endpoint.NewEndpoint`). An endpoint's key
//! is (name, type, set identifier); a TTL of 0 means "not configured" (the
//! provider's default applies).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The label holding the owner id of the instance that owns a record.
pub const OWNER_LABEL: &str = "owner";
/// The label naming the Kubernetes object that wanted a record
/// (`service/<namespace>/<name>`).
pub const RESOURCE_LABEL: &str = "resource";
/// The label on registry TXT endpoints naming the record they describe.
pub const OWNED_RECORD_LABEL: &str = "ownedRecord";
/// In-memory only: the nonce of an encrypted TXT, never serialised.
pub const NONCE_LABEL: &str = "txt-encryption-nonce";
/// The provider-specific property the TXT registry sets on current records
/// whose typed ownership TXT is missing, so the planner rewrites it.
pub const FORCE_UPDATE: &str = "txt/force-update";

/// The record types external-dns knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Name server.
    Ns,
    /// Mail exchange.
    Mx,
    /// Pointer.
    Ptr,
    /// Service location.
    Srv,
    /// Naming authority pointer.
    Naptr,
    /// Text.
    Txt,
    /// Delegation name.
    Dname,
}

/// A record type name external-dns does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record type {0:?}")]
pub struct UnknownRecordType(pub String);

impl RecordType {
    /// Every type, in the order the TXT name mapper tries them (external-dns
    /// v0.22 `registry/mapper`).
    pub const ALL: [Self; 10] = [
        Self::A,
        Self::Aaaa,
        Self::Cname,
        Self::Ns,
        Self::Mx,
        Self::Ptr,
        Self::Srv,
        Self::Naptr,
        Self::Txt,
        Self::Dname,
    ];

    /// The upper-case name (`AAAA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Ns => "NS",
            Self::Mx => "MX",
            Self::Ptr => "PTR",
            Self::Srv => "SRV",
            Self::Naptr => "NAPTR",
            Self::Txt => "TXT",
            Self::Dname => "DNAME",
        }
    }

    /// The lower-case name, as TXT names and metric labels spell it.
    pub fn lower(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::Aaaa => "aaaa",
            Self::Cname => "cname",
            Self::Ns => "ns",
            Self::Mx => "mx",
            Self::Ptr => "ptr",
            Self::Srv => "srv",
            Self::Naptr => "naptr",
            Self::Txt => "txt",
            Self::Dname => "dname",
        }
    }

    /// Whether targets of this type keep a trailing dot.
    fn keeps_trailing_dot(self) -> bool {
        matches!(self, Self::Txt | Self::Srv | Self::Naptr)
    }
}

impl FromStr for RecordType {
    type Err = UnknownRecordType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownRecordType(text.to_owned()))
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record set: name, type, set identifier, TTL, targets, labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Owner name without the trailing dot; case as given.
    pub dns_name: String,
    /// RDATA in presentation form (IP text, host name, `"prio host"` for MX,
    /// `"prio weight port host."` for SRV, quoted text for TXT).
    pub targets: Vec<String>,
    /// The record type.
    pub record_type: RecordType,
    /// Distinguishes record sets with the same name and type; usually empty.
    pub set_identifier: String,
    /// Seconds; 0 means not configured.
    pub ttl: u32,
    /// Labels the TXT registry persists (`owner`, `resource`, ...).
    pub labels: BTreeMap<String, String>,
    /// Per-provider options (`alias`, `coredns/group`, ...), sorted by name;
    /// never persisted.
    pub provider_specific: Vec<(String, String)>,
}

/// The identity of an endpoint: (name, type, set identifier).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// Lower-case name without the trailing dot.
    pub name: String,
    /// The record type.
    pub record_type: RecordType,
    /// The set identifier.
    pub set_identifier: String,
}

// === impl Endpoint ===

impl Endpoint {
    /// An endpoint with trailing dots removed as external-dns does.
    pub fn new(dns_name: &str, record_type: RecordType, targets: Vec<String>) -> Self {
        let targets = if record_type.keeps_trailing_dot() {
            targets
        } else {
            targets
                .into_iter()
                .map(|t| t.strip_suffix('.').map(str::to_owned).unwrap_or(t))
                .collect()
        };
        Self {
            dns_name: dns_name.strip_suffix('.').unwrap_or(dns_name).to_owned(),
            targets,
            record_type,
            set_identifier: String::new(),
            ttl: 0,
            labels: BTreeMap::new(),
            provider_specific: Vec::new(),
        }
    }

    /// Sets the TTL (builder style).
    #[must_use]
    pub fn with_ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets a label (builder style).
    #[must_use]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the set identifier (builder style).
    #[must_use]
    pub fn with_set_identifier(mut self, set_identifier: &str) -> Self {
        set_identifier.clone_into(&mut self.set_identifier);
        self
    }

    /// The key the planner and registry match endpoints by.
    pub fn key(&self) -> EndpointKey {
        EndpointKey {
            name: self.dns_name.to_ascii_lowercase(),
            record_type: self.record_type,
            set_identifier: self.set_identifier.clone(),
        }
    }

    /// The owner label, or "" when there is none.
    pub fn owner(&self) -> &str {
        self.labels.get(OWNER_LABEL).map_or("", String::as_str)
    }

    /// Whether the `owner` label equals `owner_id`.
    pub fn is_owned_by(&self, owner_id: &str) -> bool {
        self.labels.get(OWNER_LABEL).is_some_and(|o| o == owner_id)
    }

    /// A provider-specific property's value.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.provider_specific
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a provider-specific property, keeping them sorted by name.
    pub fn set_property(&mut self, name: &str, value: &str) {
        match self.provider_specific.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => {
                self.provider_specific
                    .push((name.to_owned(), value.to_owned()));
                self.provider_specific.sort();
            }
        }
    }

    /// Whether any dot-separated label of the name exceeds 63 bytes
    /// (RFC 1035 §2.3.4); external-dns never creates such endpoints.
    pub fn has_long_label(&self) -> bool {
        self.dns_name.split('.').any(|label| label.len() > 63)
    }

    /// Why this endpoint is invalid, if it is (external-dns v0.22
    /// `CheckEndpoint`: A/AAAA targets must be addresses of their family, MX
    /// `prio host`, SRV `prio weight port host.`, PTR names in a reverse zone).
    pub fn problem(&self) -> Option<String> {
        if self.targets.is_empty() {
            return Some("no targets".to_owned());
        }
        if self.property("alias").is_some()
            && !matches!(
                self.record_type,
                RecordType::A | RecordType::Aaaa | RecordType::Cname
            )
        {
            return Some(format!("alias on a {} record", self.record_type));
        }
        let alias = self.property("alias") == Some("true");
        for target in &self.targets {
            let bad = match self.record_type {
                RecordType::A if !alias => !matches!(target.parse::<IpAddr>(), Ok(IpAddr::V4(_))),
                RecordType::Aaaa if !alias => {
                    !matches!(target.parse::<IpAddr>(), Ok(IpAddr::V6(_)))
                }
                RecordType::Cname | RecordType::Ns | RecordType::Dname => {
                    target.parse::<IpAddr>().is_ok() || !is_host_name(target)
                }
                RecordType::Mx => {
                    let fields: Vec<&str> = target.split_whitespace().collect();
                    fields.len() != 2 || fields[0].parse::<u16>().is_err()
                }
                RecordType::Srv => {
                    let fields: Vec<&str> = target.split_whitespace().collect();
                    fields.len() != 4
                        || fields[..3].iter().any(|f| f.parse::<u16>().is_err())
                        || !fields[3].ends_with('.')
                }
                RecordType::Ptr => target.is_empty() || target.parse::<IpAddr>().is_ok(),
                _ => false,
            };
            if bad {
                return Some(format!(
                    "target {target:?} is not valid for a {} record",
                    self.record_type
                ));
            }
        }
        if self.record_type == RecordType::Ptr {
            let name = self.dns_name.to_ascii_lowercase();
            let reverse = ["in-addr.arpa", "ip6.arpa"]
                .iter()
                .any(|zone| name.strip_suffix(zone).is_some_and(|r| r.ends_with('.')));
            if !reverse {
                return Some(format!(
                    "PTR name {:?} is not in a reverse zone",
                    self.dns_name
                ));
            }
        }
        None
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.dns_name, self.record_type)?;
        if self.ttl > 0 {
            write!(f, " ttl={}", self.ttl)?;
        }
        if !self.set_identifier.is_empty() {
            write!(f, " set={}", self.set_identifier)?;
        }
        write!(f, " [{}]", self.targets.join(", "))
    }
}

/// Whether `text` is a host name: dot-separated labels of 1 to 63 bytes
/// (RFC 1035 §2.3.4), letters, digits, `-`, `_` and a leading `*` label,
/// at most 253 characters; one trailing dot allowed.
pub fn is_host_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').enumerate().all(|(index, label)| {
        (index == 0 && label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    })
}

/// The type a target calls for: IPv4 ⇒ A, other IP ⇒ AAAA, otherwise CNAME
/// (external-dns `SuitableType`).
pub fn suitable_type(target: &str) -> RecordType {
    match target.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => RecordType::A,
        Ok(IpAddr::V6(_)) => RecordType::Aaaa,
        Err(_) => RecordType::Cname,
    }
}

/// external-dns's target order: IPs by canonical text, other strings raw.
fn target_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x.to_string().cmp(&y.to_string()),
        _ => a.cmp(b),
    }
}

/// Whether two target lists are the same: equal length, and pairwise equal
/// after sorting, IPs by value and names case-insensitively. (external-dns
/// stops at the first differing IP pair; all pairs are compared here.)
pub fn same_targets(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut a: Vec<&String> = a.iter().collect();
    let mut b: Vec<&String> = b.iter().collect();
    a.sort_by(|x, y| target_order(x, y));
    b.sort_by(|x, y| target_order(x, y));
    a.iter().zip(&b).all(|(x, y)| {
        if x.eq_ignore_ascii_case(y) {
            return true;
        }
        match (x.parse::<IpAddr>(), y.parse::<IpAddr>()) {
            (Ok(p), Ok(q)) => p == q,
            _ => false,
        }
    })
}

/// external-dns `Targets.IsLess`: the shorter list first; then at the first
/// differing position IPs before names, lower IPs first (IPv4 before IPv6),
/// names byte-wise.
pub fn targets_less(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    let mut a: Vec<&String> = a.iter().collect();
    let mut b: Vec<&String> = b.iter().collect();
    a.sort();
    b.sort();
    for (x, y) in a.iter().zip(&b) {
        if x == y {
            continue;
        }
        return match (x.parse::<IpAddr>(), y.parse::<IpAddr>()) {
            (Ok(p), Ok(q)) => p < q,
            (Ok(_), Err(_)) => true,
            (Err(_), Ok(_)) => false,
            (Err(_), Err(_)) => x < y,
        };
    }
    false
}

/// Sorts and de-duplicates targets (plain byte order), as the sources do.
pub fn normalise_targets(targets: &mut Vec<String>) {
    targets.sort();
    targets.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// external-dns `NewEndpoint`: trailing dots go, except for TXT/SRV/NAPTR targets.
    #[test]
    fn trailing_dots() {
        let cname = Endpoint::new(
            "a.example.com.",
            RecordType::Cname,
            strings(&["b.example."]),
        );
        assert_eq!(cname.dns_name, "a.example.com");
        assert_eq!(cname.targets, ["b.example"]);
        let srv = Endpoint::new("_x._tcp.a.", RecordType::Srv, strings(&["0 50 80 a."]));
        assert_eq!(srv.targets, ["0 50 80 a."]);
    }

    /// §2.4: IPs compare by value, names case-insensitively, order ignored.
    #[test]
    fn same_and_less() {
        assert!(same_targets(
            &strings(&["2001:DB8::1", "Foo.example"]),
            &strings(&["foo.EXAMPLE", "2001:db8:0:0:0:0:0:1"])
        ));
        assert!(!same_targets(
            &strings(&["1.1.1.1"]),
            &strings(&["1.1.1.2"])
        ));
        assert!(!same_targets(
            &strings(&["1.1.1.1"]),
            &strings(&["1.1.1.1", "1.1.1.2"])
        ));
        assert!(targets_less(
            &strings(&["9.9.9.9"]),
            &strings(&["1.1.1.1", "2.2.2.2"])
        ));
        assert!(targets_less(
            &strings(&["10.0.0.1"]),
            &strings(&["a.example"])
        ));
        assert!(targets_less(
            &strings(&["2.0.0.1"]),
            &strings(&["10.0.0.1"])
        ));
        assert!(targets_less(
            &strings(&["a.example"]),
            &strings(&["b.example"])
        ));
        assert!(!targets_less(
            &strings(&["a.example"]),
            &strings(&["a.example"])
        ));
    }

    /// §2.5: A targets must be IPv4, SRV needs four fields and a dotted host.
    #[test]
    fn validation() {
        assert!(
            Endpoint::new("a", RecordType::A, strings(&["1.2.3.4"]))
                .problem()
                .is_none()
        );
        assert!(
            Endpoint::new("a", RecordType::A, strings(&["::1"]))
                .problem()
                .is_some()
        );
        assert!(
            Endpoint::new("a", RecordType::Cname, strings(&["bad host!"]))
                .problem()
                .is_some()
        );
        assert!(
            Endpoint::new("a", RecordType::Srv, strings(&["0 50 80 a."]))
                .problem()
                .is_none()
        );
        assert!(
            Endpoint::new("a", RecordType::Srv, strings(&["0 50 80 a"]))
                .problem()
                .is_some()
        );
        assert!(is_host_name("*.apps.example.com"));
        assert!(!is_host_name("a..b"));
        assert!(!is_host_name(&"a".repeat(64)));
    }

    #[test]
    fn record_type_names() {
        assert_eq!("aaaa".parse::<RecordType>().unwrap(), RecordType::Aaaa);
        assert!("SOA".parse::<RecordType>().is_err());
        assert_eq!(suitable_type("::ffff:1.2.3.4"), RecordType::Aaaa);
        assert_eq!(suitable_type("lb.example"), RecordType::Cname);
    }
}
