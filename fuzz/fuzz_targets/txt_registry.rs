//! Fuzzes what `signpost sync` reads back from a zone it shares: TXT
//! registry values (external-dns's `heritage=...` labels, plain or AES-GCM
//! encrypted) and registry record names (typed `a-`, prefix/suffix,
//! `%{record_type}`, wildcard replacement).
//!
//! Proves: none of these panic on any text; labels that parse serialise and
//! parse back to the same labels when the format can carry them (no `,` or
//! `"` in keys and values, no `=` in keys: `labels::unrepresentable`); a
//! decrypted value is what was encrypted (the key is the one of external-dns's
//! documented example, so the starting corpus holds a real encrypted value).

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_sync::registry::crypto::AesKey;
use signpost_sync::registry::labels;
use signpost_sync::registry::names::TxtNames;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = labels::parse(&text) {
        let again = labels::parse(&labels::serialise(&parsed)).expect("serialised labels parse");
        // The format has no escapes: only labels without ',' and '"' (and keys
        // without '=') can read back as written; signpost writes no others.
        let representable = parsed.iter().all(|(key, value)| {
            labels::unrepresentable(key).is_none()
                && !key.contains('=')
                && labels::unrepresentable(value).is_none()
        });
        if representable {
            assert_eq!(again, parsed, "labels do not round-trip: {text:?}");
        }
    }

    static KEY: OnceLock<AesKey> = OnceLock::new();
    let key =
        KEY.get_or_init(|| AesKey::parse("passphrasewhichneedstobe32bytes!").expect("32-byte key"));
    let _ = key.decrypt(&text);
    let sealed = key.encrypt(&text, None);
    let (opened, _nonce) = key.decrypt(&sealed).expect("own ciphertext decrypts");
    assert_eq!(opened, text);

    static NAMES: OnceLock<[TxtNames; 3]> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        [
            TxtNames::new("", "", "").expect("no affixes"),
            TxtNames::new("%{record_type}-txt.", "", "wildcard").expect("a prefix"),
            TxtNames::new("", "-own", "").expect("a suffix"),
        ]
    });
    for scheme in names {
        let _ = scheme.record_name(&text);
        let _ = scheme.legacy_name(&text);
    }
});
