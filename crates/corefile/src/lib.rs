//! Parser for CoreDNS's Corefile format (the Caddyfile-v1 dialect).
//!
//! Control plane (configuration loading). Pure syntax: this crate knows nothing
//! about what a directive means; it produces a tree of [`ServerBlock`]s and
//! [`Directive`]s for the plugins to interpret, and gives them one [`toolkit`]
//! (error collection, Go durations, zones, addresses) to read their options.
//!
//! ```text
//! .:53, example.org {            ServerBlock { keys: [".":53, "example.org.":None]
//!     errors                        directives: [errors,
//!     cache 30 {                                 cache ["30"] { success ["9984", "30"] }]
//!         success 9984 30         }
//!     }
//! }
//! ```
//!
//! Supported syntax:
//!
//! - comments (`#`), quoted tokens with `\"`, backslash escapes in words
//!   (see the `lex` module for the exact rules);
//! - server keys `[dns://]ZONE[:PORT]` separated by spaces or commas, with a
//!   trailing comma continuing the list on the next line;
//! - nested directive blocks of any depth, one directive per line;
//! - `{$NAME}` and `{%NAME%}` environment placeholders anywhere in a token;
//! - snippets `(name) { ... }` and `import NAME_OR_GLOB [ARGS...]`, with
//!   `{args[N]}`, `{args[N:M]}` and `{args[:]}` placeholders.
//!
//! Invariants: every [`Error`] carries the file and line it is about, and
//! parsing continues past recoverable errors so that [`Errors`] lists every
//! problem found in one run. Parsing never panics and is bounded in depth and
//! size, whatever the input.

mod duration;
mod key;
mod lex;
mod parse;
#[cfg(test)]
mod tests;
pub mod toolkit;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A parsed Corefile: its server blocks in the order they appear.
///
/// Snippets and imports are already expanded; they leave no trace here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corefile {
    /// Server blocks, in file order. Never empty after a successful parse.
    pub blocks: Vec<ServerBlock>,
}

/// One server block: `KEY[, KEY...] { DIRECTIVES }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    /// The zones (and optional ports) this block serves; at least one.
    pub keys: Vec<ServerKey>,
    /// The directives inside the braces, in order.
    pub directives: Vec<Directive>,
    /// Where the first key is written.
    pub location: Location,
}

/// One server block key such as `.:53` or `cluster.local`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKey {
    /// The zone, lower-case and fully qualified: `.` for the root,
    /// `cluster.local.` for `cluster.local`.
    pub zone: String,
    /// The port written after the zone, if any (`0..=65535`; 0 means any
    /// free port, chosen when the listener binds). Choosing a default is up
    /// to the caller.
    pub port: Option<u16>,
    /// Where the key is written.
    pub location: Location,
}

/// One directive line, with the nested block that follows it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The first token of the line, such as `forward`.
    pub name: String,
    /// The remaining tokens of the line, before any `{`.
    pub args: Vec<String>,
    /// The directives inside the `{ }` that ends the line; empty without one.
    pub block: Vec<Self>,
    /// Where the directive name is written.
    pub location: Location,
}

// === impl Directive ===

impl Directive {
    /// Where the directive name is written.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The argument at `index`, if present.
    pub fn arg(&self, index: usize) -> Option<&str> {
        self.args.get(index).map(String::as_str)
    }

    /// The directives of the nested block named `name`, in order.
    pub fn block_directives<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Self> + 'a {
        self.block
            .iter()
            .filter(move |directive| directive.name == name)
    }
}

// === impl ServerBlock ===

impl ServerBlock {
    /// The directives named `name`, in order.
    pub fn directives_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Directive> + 'a {
        self.directives
            .iter()
            .filter(move |directive| directive.name == name)
    }
}

/// A position in a Corefile or in a file it imports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as given to the parser or joined onto the importing file's
    /// directory.
    pub file: Arc<Path>,
    /// The 1-based line; 0 when the problem concerns the whole file (for
    /// example, it could not be read).
    pub line: u32,
}

// === impl Location ===

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One problem found in a Corefile. Not retryable: the file must be fixed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{location}: {message}")]
pub struct Error {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong, lower-case, usually saying what was expected.
    pub message: String,
}

/// Every problem found in a Corefile, in the order found. Never empty when
/// returned as an error; plugins collect into an empty one ([`Default`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

// === impl Errors ===

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// Reads and parses the Corefile at `path`.
///
/// `env` looks up environment variables for `{$NAME}` and `{%NAME%}`; pass
/// `&|name| std::env::var(name).ok()` for the process environment. Imports
/// are resolved relative to the directory of the file that contains them.
pub fn parse_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Corefile, Errors> {
    let file: Arc<Path> = Arc::from(path);
    let failure = |line: u32, message: String| {
        Errors(vec![Error {
            location: Location {
                file: Arc::clone(&file),
                line,
            },
            message,
        }])
    };
    let text = match parse::read_file(path) {
        Ok(text) => text,
        Err(parse::ReadFailure::Io(error)) => {
            return Err(failure(0, format!("cannot read file: {error}")));
        }
        Err(parse::ReadFailure::Utf8 { line }) => {
            return Err(failure(line, parse::NOT_UTF8.to_owned()));
        }
    };
    parse::parse(&text, Arc::clone(&file), env)
}

/// Parses Corefile `text` as if it had been read from `file`.
///
/// `file` names the text in error messages and is the base for relative
/// imports; it need not exist.
///
/// ```
/// let corefile = signpost_corefile::parse_str(
///     ".:53 {\n    forward . 8.8.8.8\n}\n",
///     std::path::Path::new("Corefile"),
///     &|_| None,
/// )
/// .unwrap();
/// assert_eq!(corefile.blocks[0].keys[0].port, Some(53));
/// assert_eq!(corefile.blocks[0].directives[0].args, [".", "8.8.8.8"]);
/// ```
pub fn parse_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Corefile, Errors> {
    parse::parse(text, Arc::from(file), env)
}
