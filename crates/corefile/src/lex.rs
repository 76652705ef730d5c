//! Splits Corefile text into tokens and expands environment placeholders.
//!
//! Control plane (configuration loading). Pure: no I/O. Follows the lexical
//! rules of CoreDNS's Caddyfile-v1 dialect:
//!
//! - tokens are separated by whitespace; `\r` is ignored, `\n` ends a line;
//! - `#` outside quotes starts a comment that runs to the end of the line,
//!   even in the middle of a word (as in CoreDNS);
//! - a token that starts with `"` is quoted: it may contain whitespace, `#` and
//!   newlines, `\"` stands for `"`, and every other backslash is kept, so
//!   regular expressions survive unchanged;
//! - outside quotes, a backslash before whitespace, `#`, `"`, `{` or `}` makes
//!   that character literal; any other backslash is kept as written;
//! - an unquoted, unescaped `{` or `}` is a brace; `{}` is an empty block.
//!
//! Invariant: every token records the line it starts on and the line it ends on
//! (they differ only for quoted tokens that span lines), so callers can decide
//! which tokens share a line.

use std::path::Path;
use std::sync::Arc;

use crate::{Error, Location};

/// What a token means to the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any word, quoted or not.
    Word,
    /// A structural `{`.
    Open,
    /// A structural `}`.
    Close,
}

/// One token with its position.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) text: String,
    pub(crate) file: Arc<Path>,
    /// Line the token starts on (1-based).
    pub(crate) line: u32,
    /// Line the token ends on; later than `line` only for multi-line quotes.
    pub(crate) end_line: u32,
    /// Identifies the token stream (file or import) the token was read from.
    /// Tokens from different streams are never on the same line.
    pub(crate) group: u64,
}

// === impl Token ===

impl Token {
    /// Where the token starts.
    pub(crate) fn location(&self) -> Location {
        Location {
            file: Arc::clone(&self.file),
            line: self.line,
        }
    }

    /// Whether `next` starts on the line this token ends on.
    pub(crate) fn shares_line_with(&self, next: &Self) -> bool {
        self.group == next.group && self.file == next.file && next.line == self.end_line
    }

    /// How the token is shown in error messages.
    pub(crate) fn describe(&self) -> String {
        match self.kind {
            Kind::Open => "'{'".to_owned(),
            Kind::Close => "'}'".to_owned(),
            Kind::Word => format!("'{}'", self.text),
        }
    }
}

/// The tokens of one file and the line the file ends on.
pub(crate) struct Lexed {
    pub(crate) tokens: Vec<Token>,
    /// The last line of the file, used to report "end of file" errors.
    pub(crate) last_line: u32,
}

/// Tokenizes `text`, expanding `{$NAME}` and `{%NAME%}` through `env`.
///
/// Problems (an unterminated quote) are pushed onto `errors`; the tokens read
/// so far are still returned.
pub(crate) fn lex(
    text: &str,
    file: &Arc<Path>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<Error>,
) -> Lexed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lexer = Lexer {
        chars: text.chars().peekable(),
        line: 1,
        file,
        tokens: Vec::new(),
    };
    lexer.run(errors);
    let mut last_line = lexer.line;
    if text.ends_with('\n') && last_line > 1 {
        last_line -= 1;
    }
    let mut tokens = lexer.tokens;
    tokens.retain_mut(|token| {
        if token.kind != Kind::Word {
            return true;
        }
        let Some(expanded) = expand_env(&token.text, env) else {
            return true;
        };
        // CoreDNS replaces an unset variable with nothing; a token that
        // consisted only of unset variables disappears.
        if expanded.is_empty() {
            return false;
        }
        token.text = expanded;
        true
    });
    Lexed { tokens, last_line }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    file: &'a Arc<Path>,
    tokens: Vec<Token>,
}

// === impl Lexer ===

impl Lexer<'_> {
    fn run(&mut self, errors: &mut Vec<Error>) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                self.chars.next();
                self.line = self.line.saturating_add(1);
            } else if c.is_whitespace() {
                self.chars.next();
            } else if c == '#' {
                self.skip_comment();
            } else if c == '"' {
                self.chars.next();
                self.quoted(errors);
            } else {
                self.unquoted();
            }
        }
    }

    fn skip_comment(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                return;
            }
            self.chars.next();
        }
    }

    fn push(&mut self, kind: Kind, text: String, line: u32) {
        self.tokens.push(Token {
            kind,
            text,
            file: Arc::clone(self.file),
            line,
            end_line: self.line,
            group: 0,
        });
    }

    /// Reads a quoted token; the opening quote is already consumed.
    fn quoted(&mut self, errors: &mut Vec<Error>) {
        let start = self.line;
        let mut text = String::new();
        loop {
            let Some(c) = self.chars.next() else {
                errors.push(Error {
                    location: Location {
                        file: Arc::clone(self.file),
                        line: start,
                    },
                    message:
                        "unterminated quoted string: expected a closing '\"' before end of file"
                            .to_owned(),
                });
                self.push(Kind::Word, text, start);
                return;
            };
            match c {
                '"' => break,
                '\\' if self.chars.peek() == Some(&'"') => {
                    self.chars.next();
                    text.push('"');
                }
                '\\' => {
                    // Only `\"` is an escape inside quotes (CoreDNS); keep the
                    // backslash and the character after it.
                    text.push('\\');
                    if let Some(next) = self.chars.next() {
                        if next == '\n' {
                            self.line = self.line.saturating_add(1);
                        }
                        text.push(next);
                    }
                }
                '\n' => {
                    self.line = self.line.saturating_add(1);
                    text.push('\n');
                }
                _ => text.push(c),
            }
        }
        self.push(Kind::Word, text, start);
    }

    /// Reads an unquoted token starting at the current character.
    fn unquoted(&mut self) {
        let mut text = String::new();
        let mut escaped = false;
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == '#' {
                break;
            }
            self.chars.next();
            if c == '\\' {
                match self.chars.peek() {
                    Some(&next)
                        if next != '\n' && (next.is_whitespace() || "#\"{}".contains(next)) =>
                    {
                        self.chars.next();
                        text.push(next);
                        escaped = true;
                    }
                    _ => text.push('\\'),
                }
            } else {
                text.push(c);
            }
        }
        let line = self.line;
        match (escaped, text.as_str()) {
            (false, "{") => self.push(Kind::Open, text, line),
            (false, "}") => self.push(Kind::Close, text, line),
            (false, "{}") => {
                self.push(Kind::Open, "{".to_owned(), line);
                self.push(Kind::Close, "}".to_owned(), line);
            }
            _ => self.push(Kind::Word, text, line),
        }
    }
}

/// Replaces `{$NAME}` and `{%NAME%}` in `text`; `None` when there is none.
///
/// Unset variables become the empty string, as in CoreDNS. Values are not
/// expanded again. A placeholder with an empty name or whitespace in its name
/// is left as written.
fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if !text.contains("{$") && !text.contains("{%") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let found = if let Some(body) = after.strip_prefix("{$") {
            body.find('}').map(|end| (&body[..end], 2 + end + 1))
        } else if let Some(body) = after.strip_prefix("{%") {
            body.find("%}").map(|end| (&body[..end], 2 + end + 2))
        } else {
            None
        };
        match found {
            Some((name, consumed))
                if !name.is_empty() && !name.chars().any(char::is_whitespace) =>
            {
                out.push_str(&env(name).unwrap_or_default());
                rest = &after[consumed..];
                changed = true;
            }
            _ => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}
