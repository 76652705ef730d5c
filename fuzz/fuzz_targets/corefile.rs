//! Fuzzes the Corefile reader and the plugin configuration built from it
//! (`signpost dns` and `reload`).
//!
//! Proves: any text (as UTF-8, lossily) either parses or gives errors, and
//! a parsed Corefile either builds a configuration or gives errors — never
//! a panic; every error, of the parser or of a plugin, names `Corefile` at
//! a line inside the text (or another file, when an `import` read one).
//! Environment substitution sees no variables; `import` reads real paths,
//! so the fuzzer runs in the `fuzz/` directory with nothing surprising in it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_corefile::Errors;
use signpost_fuzz::last_line;
use std::path::Path;

fn check(errors: &Errors, file: &Path, text: &str) {
    assert!(!errors.0.is_empty(), "an error value without errors");
    let last = last_line(text.as_bytes());
    for error in &errors.0 {
        if &*error.location.file == file {
            assert!(
                (1..=last).contains(&error.location.line),
                "line {} outside 1..={last}: {error}\n{text:?}",
                error.location.line
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let file = Path::new("Corefile");
    match signpost_corefile::parse_str(&text, file, &|_| None) {
        Ok(corefile) => {
            if let Err(errors) = signpost_dns::config::Config::from_corefile(&corefile) {
                check(&errors, file, &text);
            }
        }
        Err(errors) => check(&errors, file, &text),
    }
});
