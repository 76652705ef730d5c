//! Parses server block keys (`[dns://]ZONE[:PORT]`) into [`ServerKey`]s.
//!
//! Control plane (configuration loading). Invariant: a returned zone is
//! lower-case and fully qualified (`.` for the root), and a returned port is
//! in `0..=65535`; 0 asks the system for a free port, as CoreDNS's `.:0` does
//! (its own tests run that way), and the log's `listening` line says which.

use crate::{Error, Location, ServerKey};

/// Longest presentation-format name, trailing dot included (RFC 1035 §2.3.4:
/// 255 octets on the wire, which is at most 254 characters plus the root dot).
const MAX_NAME_CHARS: usize = 254;
/// RFC 1035 §2.3.4: "labels 63 octets or less".
const MAX_LABEL_CHARS: usize = 63;

/// Parses one key as written in the Corefile (commas already split off).
pub(crate) fn parse_server_key(text: &str, location: Location) -> Result<ServerKey, Error> {
    let fail = |message: String| Error {
        location: location.clone(),
        message,
    };
    let lower = text.to_ascii_lowercase();
    let rest = match lower.find("://") {
        Some(end) if &lower[..end] == "dns" => &lower[end + 3..],
        Some(end) => {
            return Err(fail(format!(
                "unsupported scheme '{}://' in server key '{text}': only dns:// is supported",
                &lower[..end]
            )));
        }
        None => lower.as_str(),
    };
    let (zone, port) = match rest.rfind(':') {
        Some(colon) => (&rest[..colon], Some(&rest[colon + 1..])),
        None => (rest, None),
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(number) => Some(number),
            Err(_) => {
                return Err(fail(format!(
                    "invalid port '{port}' in server key '{text}': expected a number from 0 to 65535"
                )));
            }
        },
    };
    if zone.contains('/') {
        return Err(fail(format!(
            "reverse zone from CIDR '{zone}' in server key '{text}' is not supported; \
             write the in-addr.arpa or ip6.arpa zone instead"
        )));
    }
    let zone = normalize_zone(zone).map_err(|why| {
        fail(format!(
            "invalid zone '{zone}' in server key '{text}': {why}"
        ))
    })?;
    Ok(ServerKey {
        zone,
        port,
        location,
    })
}

/// Makes `zone` fully qualified and checks its labels.
fn normalize_zone(zone: &str) -> Result<String, &'static str> {
    if zone.is_empty() || zone == "." {
        return Ok(".".to_owned());
    }
    let relative = zone.strip_suffix('.').unwrap_or(zone);
    for label in relative.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.chars().count() > MAX_LABEL_CHARS {
            return Err("label longer than 63 characters");
        }
        if label
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "[]:@\"(){}".contains(c))
        {
            return Err("character not allowed in a zone name");
        }
    }
    let fqdn = format!("{relative}.");
    if fqdn.chars().count() > MAX_NAME_CHARS {
        return Err("name longer than 255 octets");
    }
    Ok(fqdn)
}
