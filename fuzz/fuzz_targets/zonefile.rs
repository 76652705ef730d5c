//! Fuzzes the RFC 1035 §5 zone-file loader (`file` plugin).
//!
//! Proves: any bytes as a zone file for `example.com.` either load or give
//! one error naming the file and, when it names a line, a line inside the
//! file — no panic escapes the loader. `$INCLUDE` follows real paths
//! (depth-limited).

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_fuzz::{last_line, scratch_file};
use signpost_proto::Name;
use std::sync::OnceLock;

fuzz_target!(
    init: {
        // The loader catches a panic of the `domain` scanner and reports it
        // as an error at the entry; libFuzzer's hook would abort on the
        // panic even though it is caught. Print it instead: a panic that
        // escapes `load_zone_file` still aborts (libfuzzer-sys catches it).
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    },
    |data: &[u8]| {
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
    }
);
