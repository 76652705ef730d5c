//! Fuzzes the RFC 1035 §5 zone-file loader (`file` plugin).
//!
//! Proves: any bytes as a zone file for `example.com.` either load or give
//! one error naming the file and, when it names a line, a line inside the
//! file — never a panic. `$INCLUDE` follows real paths (depth-limited).

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_fuzz::{last_line, scratch_file};
use signpost_proto::Name;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static APEX: OnceLock<Name> = OnceLock::new();
    let apex = APEX.get_or_init(|| Name::from_ascii("example.com").expect("valid literal"));
    let path = scratch_file("db.example.com");
    std::fs::write(&path, data).expect("scratch write");
    if let Err(error) = signpost_zone::zonefile::load_zone_file(&path, apex) {
        assert!(!error.message.is_empty());
        if let (Some(line), true) = (error.line, error.file == path) {
            assert!(
                (1..=last_line(data)).contains(&line),
                "line {line} outside the file: {error}"
            );
        }
    }
});
