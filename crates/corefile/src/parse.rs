//! Turns tokens into server blocks, expanding snippets and imports on the way.
//!
//! Control plane (configuration loading). The parser pulls tokens from a stack
//! of [`Frame`]s: the Corefile itself at the bottom, and one frame per active
//! `import` above it. An import splices its tokens in place, exactly as if
//! they had been written there, so braces may open in one frame and close in
//! another (as in CoreDNS).
//!
//! ```text
//! Corefile tokens ─┐
//!   import snip ───┼─▶ Frame(snippet 'snip') ─┐
//!                  │     import b.conf ───────┼─▶ Frame(file b.conf)
//!                  ▼                          ▼
//!             next token ◀─ top frame with tokens left
//! ```
//!
//! Invariants:
//! - recursion depth is bounded by [`MAX_NESTING`]; import depth by
//!   [`MAX_IMPORT_DEPTH`]; imported tokens by [`MAX_IMPORTED_TOKENS`], so no
//!   input can overflow the stack or expand without bound;
//! - a snippet or file is never imported from within its own expansion:
//!   every token belongs to a group (one per file read or snippet expanded)
//!   that records which import created it, and cycle detection walks that
//!   chain from the `import` token upwards;
//! - a structural error that leaves the block structure unknown (a missing
//!   `{` or `}`) stops parsing ([`Fatal`]); every other error is recorded and
//!   parsing goes on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::key::parse_server_key;
use crate::lex::{Kind, Token, lex};
use crate::{Corefile, Directive, Error, Errors, Location, ServerBlock};

/// Deepest nesting of `{ }` blocks, server block included.
const MAX_NESTING: usize = 64;
/// Deepest chain of imports (snippets and files).
const MAX_IMPORT_DEPTH: usize = 64;
/// Most tokens all imports together may add; guards against exponential
/// expansion (a snippet importing another twice, and so on).
const MAX_IMPORTED_TOKENS: usize = 1_000_000;

/// Parsing cannot continue; the reason is already recorded.
struct Fatal;

/// Why a file could not be turned into text.
pub(crate) enum ReadFailure {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not UTF-8; `line` is where the first bad byte is.
    Utf8 { line: u32 },
}

/// Reads `path` as UTF-8 text.
pub(crate) fn read_file(path: &Path) -> Result<String, ReadFailure> {
    let bytes = std::fs::read(path).map_err(ReadFailure::Io)?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let newlines = valid.iter().filter(|&&byte| byte == b'\n').count();
        ReadFailure::Utf8 {
            line: u32::try_from(newlines)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        }
    })
}

/// Message for a file that is not UTF-8.
pub(crate) const NOT_UTF8: &str = "invalid UTF-8: a Corefile must be UTF-8 text";

/// Parses a whole Corefile held in `text`, read from `file`.
pub(crate) fn parse(
    text: &str,
    file: Arc<Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Corefile, Errors> {
    let mut errors = Vec::new();
    let lexed = lex(text, &file, env, &mut errors);
    let origin = std::fs::canonicalize(&file).unwrap_or_else(|_| file.to_path_buf());
    let mut parser = Parser {
        env,
        frames: Vec::new(),
        groups: Vec::new(),
        snippets: HashMap::new(),
        errors,
        aborted: false,
        eof: Location {
            file: Arc::clone(&file),
            line: lexed.last_line,
        },
        imported_tokens: 0,
        blocks: Vec::new(),
    };
    let group = parser.new_group(Origin::Main(origin), None);
    parser.frames.push(Frame {
        tokens: with_group(lexed.tokens, group),
        pending: VecDeque::new(),
        args: Vec::new(),
        import: parser.eof.clone(),
        parent: group,
    });
    // A fatal error is already recorded; what was parsed before it still gets
    // checked below so that its errors are reported too.
    let _ = parser.parse_top();
    let mut errors = parser.errors;
    let blocks = parser.blocks;
    if blocks.is_empty() && errors.is_empty() {
        errors.push(Error {
            location: Location { file, line: 1 },
            message: "no server blocks: expected at least one 'ZONE { ... }' block".to_owned(),
        });
    }
    check_duplicate_keys(&blocks, &mut errors);
    if errors.is_empty() {
        Ok(Corefile { blocks })
    } else {
        // A snippet imported twice reports its problems twice; keep one.
        let mut seen = HashSet::new();
        errors.retain(|error| seen.insert(error.clone()));
        Err(Errors(errors))
    }
}

/// Reports every key that repeats an earlier zone and port.
fn check_duplicate_keys(blocks: &[ServerBlock], errors: &mut Vec<Error>) {
    let mut seen: HashMap<(&str, Option<u16>), &Location> = HashMap::new();
    for key in blocks.iter().flat_map(|block| &block.keys) {
        match seen.get(&(key.zone.as_str(), key.port)) {
            Some(first) => {
                let shown = match key.port {
                    Some(port) => format!("{}:{port}", key.zone),
                    None => key.zone.clone(),
                };
                errors.push(Error {
                    location: key.location.clone(),
                    message: format!("duplicate server key '{shown}': already used at {first}"),
                });
            }
            None => {
                seen.insert((key.zone.as_str(), key.port), &key.location);
            }
        }
    }
}

fn with_group(mut tokens: Vec<Token>, group: u64) -> VecDeque<Token> {
    for token in &mut tokens {
        token.group = group;
    }
    tokens.into()
}

/// What a frame's tokens come from, for cycle detection and messages.
#[derive(Debug, PartialEq, Eq)]
enum Origin {
    /// The Corefile being parsed (canonical path when it exists).
    Main(PathBuf),
    /// A snippet, by name.
    Snippet(String),
    /// An imported file (canonical path).
    File(PathBuf),
}

// === impl Origin ===

impl Origin {
    fn describe(&self) -> String {
        match self {
            Self::Main(path) | Self::File(path) => path.display().to_string(),
            Self::Snippet(name) => format!("snippet '{name}'"),
        }
    }
}

/// One source of tokens on the import stack.
struct Frame {
    tokens: VecDeque<Token>,
    /// Files of a file import still to be read, in order.
    pending: VecDeque<PathBuf>,
    /// Arguments of the import that created this frame.
    args: Vec<String>,
    /// Where the import that created this frame is written.
    import: Location,
    /// The group of that import's `import` token.
    parent: u64,
}

/// Where the tokens of one group come from.
struct Group {
    origin: Origin,
    /// The group of the `import` token that created this one.
    parent: Option<u64>,
}

/// A snippet definition: `(name) { tokens }`.
struct Snippet {
    tokens: Vec<Token>,
    location: Location,
}

struct Parser<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    frames: Vec<Frame>,
    /// Indexed by [`Token::group`].
    groups: Vec<Group>,
    snippets: HashMap<String, Snippet>,
    errors: Vec<Error>,
    /// Set when expansion exceeded its budget; the stream is then empty and
    /// the errors that follow from that are not reported.
    aborted: bool,
    /// Where "end of file" is reported: the last line of the Corefile.
    eof: Location,
    imported_tokens: usize,
    blocks: Vec<ServerBlock>,
}

// === impl Parser ===

impl Parser<'_> {
    fn new_group(&mut self, origin: Origin, parent: Option<u64>) -> u64 {
        let group = u64::try_from(self.groups.len()).unwrap_or(u64::MAX);
        self.groups.push(Group { origin, parent });
        group
    }

    /// The origins from `group` up to the Corefile, innermost first.
    fn ancestry(&self, group: u64) -> Vec<&Origin> {
        let mut origins = Vec::new();
        let mut current = Some(group);
        while let Some(index) = current {
            let Some(info) = usize::try_from(index)
                .ok()
                .and_then(|index| self.groups.get(index))
            else {
                break;
            };
            origins.push(&info.origin);
            current = info.parent;
        }
        origins
    }

    /// "Corefile -> snippet 'a' -> b.conf", for cycle messages.
    fn import_chain(&self, group: u64) -> String {
        let mut origins: Vec<String> = self
            .ancestry(group)
            .iter()
            .map(|origin| origin.describe())
            .collect();
        origins.reverse();
        origins.join(" -> ")
    }

    fn error(&mut self, location: Location, message: impl Into<String>) {
        if !self.aborted {
            self.errors.push(Error {
                location,
                message: message.into(),
            });
        }
    }

    /// Counts `count` more imported tokens; aborts and returns `false` when
    /// the budget is exhausted.
    fn charge(&mut self, count: usize, import: &Location) -> bool {
        self.imported_tokens = self.imported_tokens.saturating_add(count);
        if self.imported_tokens <= MAX_IMPORTED_TOKENS {
            return true;
        }
        self.error(
            import.clone(),
            format!("imports expand to more than {MAX_IMPORTED_TOKENS} tokens; check for snippets that import each other repeatedly"),
        );
        self.aborted = true;
        self.frames.clear();
        false
    }

    // --- token stream ---

    /// The next token, loading pending import files and dropping finished
    /// frames as needed.
    fn peek(&mut self) -> Option<&Token> {
        loop {
            let frame = self.frames.last_mut()?;
            if !frame.tokens.is_empty() {
                break;
            }
            if let Some(path) = frame.pending.pop_front() {
                self.load_file(path);
            } else {
                self.frames.pop();
            }
        }
        self.frames.last().and_then(|frame| frame.tokens.front())
    }

    fn next(&mut self) -> Option<Token> {
        self.peek()?;
        self.frames.last_mut()?.tokens.pop_front()
    }

    /// The next token if it is on the line `previous` ends on.
    fn peek_same_line(&mut self, previous: &Token) -> Option<&Token> {
        self.peek().filter(|next| previous.shares_line_with(next))
    }

    /// Reads an imported file into the top frame.
    fn load_file(&mut self, path: PathBuf) {
        let Some(top) = self.frames.len().checked_sub(1) else {
            return;
        };
        let import = self.frames[top].import.clone();
        let parent = self.frames[top].parent;
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let cycle = self.ancestry(parent).iter().any(|origin| match origin {
            Origin::Main(active) | Origin::File(active) => *active == canonical,
            Origin::Snippet(_) => false,
        });
        if cycle {
            let chain = self.import_chain(parent);
            self.error(
                import,
                format!(
                    "import cycle: '{}' is already being imported ({chain})",
                    path.display()
                ),
            );
            return;
        }
        let file: Arc<Path> = Arc::from(path.as_path());
        let text = match read_file(&path) {
            Ok(text) => text,
            Err(ReadFailure::Io(error)) => {
                self.error(
                    import,
                    format!("cannot read imported file '{}': {error}", path.display()),
                );
                return;
            }
            Err(ReadFailure::Utf8 { line }) => {
                self.error(Location { file, line }, NOT_UTF8);
                return;
            }
        };
        let lexed = lex(&text, &file, self.env, &mut self.errors);
        let group = self.new_group(Origin::File(canonical), Some(parent));
        let args = std::mem::take(&mut self.frames[top].args);
        let tokens = self.substitute_args(lexed.tokens, &args, &import);
        if !self.charge(tokens.len() + 1, &import) {
            return;
        }
        let frame = &mut self.frames[top];
        frame.args = args;
        frame.tokens = with_group(tokens, group);
    }

    /// "line 3" for the Corefile itself, "other.conf:3" for imported files.
    fn position(&self, token: &Token) -> String {
        if token.file == self.eof.file {
            format!("line {}", token.line)
        } else {
            token.location().to_string()
        }
    }

    // --- grammar ---

    /// `file := (import | snippet | server_block)*`
    fn parse_top(&mut self) -> Result<(), Fatal> {
        while let Some(token) = self.next() {
            match token.kind {
                Kind::Close => {
                    self.error(token.location(), "unexpected '}': no block is open here")
                }
                Kind::Open => {
                    self.error(
                        token.location(),
                        "expected a server key such as '.:53' before '{'",
                    );
                    self.check_open_ends_line(&token);
                    self.parse_body(&token, 1)?;
                }
                Kind::Word if token.text == "import" => self.parse_import(&token, 0)?,
                Kind::Word => self.parse_server_block(token)?,
            }
        }
        Ok(())
    }

    /// `server_block := KEY ([,] KEY)* '{' body '}'`, or a snippet definition
    /// `'(' NAME ')' '{' tokens '}'`.
    fn parse_server_block(&mut self, first: Token) -> Result<(), Fatal> {
        let mut expecting_key = first.text.ends_with(',');
        let mut key_tokens = vec![first];
        let open = loop {
            let Some(previous) = key_tokens.last() else {
                return Ok(());
            };
            let shares_line = self
                .peek()
                .is_some_and(|next| previous.shares_line_with(next));
            let Some(next) = self.peek() else {
                let message = if expecting_key {
                    "expected another server key after ',', found end of file".to_owned()
                } else {
                    format!(
                        "expected '{{' to open the server block for {}, found end of file",
                        describe_keys(&key_tokens)
                    )
                };
                self.error(self.eof.clone(), message);
                return Err(Fatal);
            };
            match next.kind {
                Kind::Open => {
                    if expecting_key {
                        let location = next.location();
                        self.error(
                            location,
                            "expected another server key after ',', found '{'; remove the trailing comma",
                        );
                    }
                    let Some(open) = self.next() else {
                        return Err(Fatal);
                    };
                    break open;
                }
                Kind::Word if expecting_key || shares_line => {
                    let Some(key) = self.next() else {
                        return Err(Fatal);
                    };
                    expecting_key = key.text.ends_with(',');
                    key_tokens.push(key);
                }
                Kind::Word | Kind::Close => {
                    let message = format!(
                        "expected '{{' to open the server block for {}, found {}",
                        describe_keys(&key_tokens),
                        next.describe()
                    );
                    let location = next.location();
                    self.error(location, message);
                    return Err(Fatal);
                }
            }
        };
        self.check_open_ends_line(&open);

        let keys: Vec<(&str, &Token)> = key_tokens
            .iter()
            .flat_map(|token| {
                token
                    .text
                    .split(',')
                    .filter(|piece| !piece.is_empty())
                    .map(move |piece| (piece, token))
            })
            .collect();
        let snippet = keys.iter().find_map(|(piece, token)| {
            let name = piece.strip_prefix('(')?.strip_suffix(')')?;
            Some((name.to_owned(), token.location()))
        });
        if let Some((name, location)) = snippet {
            if keys.len() > 1 {
                self.error(
                    location.clone(),
                    format!("snippet definition '({name})' must be the only key before '{{'"),
                );
            }
            let tokens = self.collect_snippet(&name, &open)?;
            self.define_snippet(name, location, tokens, keys.len() == 1);
            return Ok(());
        }
        if keys.is_empty() {
            self.error(
                key_tokens[0].location(),
                "expected a server key such as '.:53' before '{'",
            );
        }
        let mut parsed = Vec::with_capacity(keys.len());
        for (piece, token) in keys {
            match parse_server_key(piece, token.location()) {
                Ok(key) => parsed.push(key),
                Err(error) => self.error(error.location, error.message),
            }
        }
        let directives = self.parse_body(&open, 1)?;
        if !parsed.is_empty() {
            let location = key_tokens[0].location();
            self.blocks.push(ServerBlock {
                keys: parsed,
                directives,
                location,
            });
        }
        Ok(())
    }

    fn define_snippet(&mut self, name: String, location: Location, tokens: Vec<Token>, keep: bool) {
        if name.is_empty() {
            self.error(location, "snippet name between '(' and ')' is empty");
            return;
        }
        if let Some(existing) = self.snippets.get(&name) {
            let message = format!(
                "snippet '{name}' is already defined at {}",
                existing.location
            );
            self.error(location, message);
            return;
        }
        if keep {
            self.snippets.insert(name, Snippet { tokens, location });
        }
    }

    /// Collects a snippet's tokens up to the `}` matching `open`, unparsed.
    fn collect_snippet(&mut self, name: &str, open: &Token) -> Result<Vec<Token>, Fatal> {
        let mut depth = 1_usize;
        let mut tokens = Vec::new();
        loop {
            let Some(token) = self.next() else {
                let message = format!(
                    "expected '}}' to close snippet '({name})' opened at {}, found end of file",
                    self.position(open)
                );
                self.error(self.eof.clone(), message);
                return Err(Fatal);
            };
            match token.kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth -= 1;
                    if depth == 0 {
                        self.check_after_close(&token);
                        return Ok(tokens);
                    }
                }
                Kind::Word => {}
            }
            tokens.push(token);
        }
    }

    /// `body := (import | directive)* '}'`; `open` is the `{` already read.
    fn parse_body(&mut self, open: &Token, depth: usize) -> Result<Vec<Directive>, Fatal> {
        if depth > MAX_NESTING {
            self.error(
                open.location(),
                format!("blocks are nested more than {MAX_NESTING} levels deep"),
            );
            return Err(Fatal);
        }
        let mut directives = Vec::new();
        loop {
            let Some(token) = self.next() else {
                let message = format!(
                    "expected '}}' to close block opened at {}, found end of file",
                    self.position(open)
                );
                self.error(self.eof.clone(), message);
                return Err(Fatal);
            };
            match token.kind {
                Kind::Close => {
                    self.check_after_close(&token);
                    return Ok(directives);
                }
                Kind::Open => {
                    self.error(
                        token.location(),
                        "unexpected '{': a block must follow a directive name on the same line",
                    );
                    self.check_open_ends_line(&token);
                    self.parse_body(&token, depth + 1)?;
                }
                Kind::Word if token.text == "import" => self.parse_import(&token, depth)?,
                Kind::Word => {
                    let directive = self.parse_directive(token, depth)?;
                    directives.push(directive);
                }
            }
        }
    }

    /// `directive := NAME ARG* ['{' body '}']`, all on the name's line.
    fn parse_directive(&mut self, name: Token, depth: usize) -> Result<Directive, Fatal> {
        let location = name.location();
        let mut args = Vec::new();
        let mut block = Vec::new();
        let mut previous = name.clone();
        while let Some(next) = self.peek_same_line(&previous) {
            match next.kind {
                Kind::Close => break,
                Kind::Open => {
                    let Some(open) = self.next() else { break };
                    self.check_open_ends_line(&open);
                    block = self.parse_body(&open, depth + 1)?;
                    break;
                }
                Kind::Word => {
                    let Some(mut arg) = self.next() else { break };
                    args.push(std::mem::take(&mut arg.text));
                    previous = arg;
                }
            }
        }
        Ok(Directive {
            name: name.text,
            args,
            block,
            location,
        })
    }

    /// `import := 'import' PATTERN ARG*`: splices a snippet or files in place.
    fn parse_import(&mut self, keyword: &Token, depth: usize) -> Result<(), Fatal> {
        let mut args = Vec::new();
        let mut previous = keyword.clone();
        while let Some(next) = self.peek_same_line(&previous) {
            match next.kind {
                Kind::Close => break,
                Kind::Open => {
                    let Some(open) = self.next() else { break };
                    self.error(
                        open.location(),
                        "unexpected '{' after import: import takes a snippet name or file pattern and arguments",
                    );
                    self.check_open_ends_line(&open);
                    self.parse_body(&open, depth + 1)?;
                    break;
                }
                Kind::Word => {
                    let Some(mut arg) = self.next() else { break };
                    args.push(std::mem::take(&mut arg.text));
                    previous = arg;
                }
            }
        }
        let import = keyword.location();
        let Some((pattern, args)) = args.split_first() else {
            self.error(
                import,
                "expected a snippet name or file pattern after 'import'",
            );
            return Ok(());
        };
        if self.ancestry(keyword.group).len() > MAX_IMPORT_DEPTH {
            self.error(
                import,
                format!("imports are nested more than {MAX_IMPORT_DEPTH} levels deep"),
            );
            return Ok(());
        }
        if let Some(tokens) = self
            .snippets
            .get(pattern)
            .map(|snippet| snippet.tokens.clone())
        {
            let active = Origin::Snippet(pattern.clone());
            if self.ancestry(keyword.group).contains(&&active) {
                let chain = self.import_chain(keyword.group);
                self.error(
                    import,
                    format!("import cycle: snippet '{pattern}' imports itself ({chain})"),
                );
                return Ok(());
            }
            let tokens = self.substitute_args(tokens, args, &import);
            // Every import costs at least one, so empty snippets cannot
            // expand without bound either.
            if !self.charge(tokens.len() + 1, &import) {
                return Ok(());
            }
            let group = self.new_group(active, Some(keyword.group));
            self.frames.push(Frame {
                tokens: with_group(tokens, group),
                pending: VecDeque::new(),
                args: Vec::new(),
                import,
                parent: keyword.group,
            });
            return Ok(());
        }
        let base = keyword.file.parent().unwrap_or_else(|| Path::new(""));
        let paths = match resolve_files(base, pattern) {
            Ok(paths) => paths,
            Err(message) => {
                self.error(import, message);
                return Ok(());
            }
        };
        self.frames.push(Frame {
            tokens: VecDeque::new(),
            pending: paths.into(),
            args: args.to_vec(),
            import,
            parent: keyword.group,
        });
        Ok(())
    }

    /// Reports a token that follows `{` on its line (other than `}`).
    fn check_open_ends_line(&mut self, open: &Token) {
        let Some(next) = self.peek_same_line(open) else {
            return;
        };
        if next.kind == Kind::Close {
            return;
        }
        let message = format!(
            "expected a new line after '{{', found {}: '{{' must be the last token on its line",
            next.describe()
        );
        let location = next.location();
        self.error(location, message);
    }

    /// Reports a word that follows `}` on its line.
    fn check_after_close(&mut self, close: &Token) {
        let Some(next) = self.peek_same_line(close) else {
            return;
        };
        if next.kind != Kind::Word {
            return;
        }
        let message = format!("expected a new line after '}}', found {}", next.describe());
        let location = next.location();
        self.error(location, message);
    }

    /// Replaces `{args[...]}` placeholders in imported tokens.
    fn substitute_args(
        &mut self,
        tokens: Vec<Token>,
        args: &[String],
        import: &Location,
    ) -> Vec<Token> {
        let mut out = Vec::with_capacity(tokens.len());
        for mut token in tokens {
            if token.kind != Kind::Word || !token.text.contains(ARGS_START) {
                out.push(token);
                continue;
            }
            match expand_args(&token.text, args) {
                Ok(Expansion::One(text)) => {
                    token.text = text;
                    out.push(token);
                }
                Ok(Expansion::Many(values)) => {
                    for value in values {
                        let mut copy = token.clone();
                        copy.text = value;
                        out.push(copy);
                    }
                }
                Err(message) => {
                    let message = format!("{message} (placeholder at {})", token.location());
                    self.error(import.clone(), message);
                    out.push(token);
                }
            }
        }
        out
    }
}

/// "'a', 'b'" for error messages.
fn describe_keys(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|token| format!("'{}'", token.text))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The files an `import` pattern names, relative to `base`.
///
/// A pattern without `*` or `?` must name an existing file. A pattern with
/// them (allowed in the last path component only) may match nothing, as in
/// CoreDNS. Matches are sorted; directories and hidden files are skipped
/// unless the pattern itself starts with `.`.
fn resolve_files(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let is_glob = |text: &str| text.contains(['*', '?']);
    if !is_glob(pattern) {
        let path = base.join(pattern);
        if path.is_file() {
            return Ok(vec![path]);
        }
        return Err(format!(
            "import '{pattern}': no snippet with that name is defined (before this line) and no file '{}' exists",
            path.display()
        ));
    }
    let pattern_path = Path::new(pattern);
    let name = pattern_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = pattern_path.parent().unwrap_or_else(|| Path::new(""));
    if name.is_empty() || is_glob(&parent.to_string_lossy()) {
        return Err(format!(
            "import '{pattern}': '*' and '?' are allowed only in the last path component"
        ));
    }
    let directory = base.join(parent);
    let entries = match std::fs::read_dir(&directory) {
        Ok(entries) => entries,
        // A glob over a directory that does not exist matches nothing, as in
        // CoreDNS (k3s imports /etc/coredns/custom/*.server from an optional mount).
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(pattern, "No files matching import glob pattern");
            return Ok(Vec::new());
        }
        Err(error) => {
            return Err(format!(
                "import '{pattern}': cannot read directory '{}': {error}",
                directory.display()
            ));
        }
    };
    let name: Vec<char> = name.chars().collect();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let file_name: Vec<char> = entry.file_name().to_string_lossy().chars().collect();
            let hidden = file_name.first() == Some(&'.') && name.first() != Some(&'.');
            !hidden && glob_matches(&name, &file_name) && entry.path().is_file()
        })
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    if paths.is_empty() {
        tracing::warn!(pattern, "No files matching import glob pattern");
    }
    Ok(paths)
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and
/// `?` any one character. Iterative, so linear in practice and never deep.
fn glob_matches(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

const ARGS_START: &str = "{args[";

/// An `{args[...]}` placeholder.
enum Placeholder {
    /// `{args[N]}`: one argument.
    Index(usize),
    /// `{args[N:M]}` with either bound optional: a run of arguments.
    Range(Option<usize>, Option<usize>),
}

/// What a token becomes after argument substitution.
enum Expansion {
    /// Still one token.
    One(String),
    /// A range placeholder that was the whole token: one token per argument.
    Many(Vec<String>),
}

/// Parses a placeholder at the start of `text`; returns it and its length.
fn parse_placeholder(text: &str) -> Option<(Placeholder, usize)> {
    let inner_start = ARGS_START.len();
    let rest = text.strip_prefix(ARGS_START)?;
    let end = rest.find("]}")?;
    let inner = &rest[..end];
    let length = inner_start + end + 2;
    let bound = |text: &str| -> Option<Option<usize>> {
        if text.is_empty() {
            Some(None)
        } else {
            text.parse().ok().map(Some)
        }
    };
    let placeholder = match inner.split_once(':') {
        Some((start, stop)) => Placeholder::Range(bound(start)?, bound(stop)?),
        None => Placeholder::Index(inner.parse().ok()?),
    };
    Some((placeholder, length))
}

fn expand_args(text: &str, args: &[String]) -> Result<Expansion, String> {
    let count = args.len();
    if let Some((Placeholder::Range(start, stop), length)) = parse_placeholder(text)
        && length == text.len()
    {
        let start = start.unwrap_or(0);
        let stop = stop.unwrap_or(count);
        if start > stop || stop > count {
            return Err(format!(
                "{text} is out of range: the import has {count} argument(s)"
            ));
        }
        return Ok(Expansion::Many(args[start..stop].to_vec()));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find(ARGS_START) {
        out.push_str(&rest[..position]);
        rest = &rest[position..];
        match parse_placeholder(rest) {
            Some((Placeholder::Index(index), length)) => {
                let Some(value) = args.get(index) else {
                    return Err(format!(
                        "{{args[{index}]}} is out of range: the import has {count} argument(s)"
                    ));
                };
                out.push_str(value);
                rest = &rest[length..];
            }
            Some((Placeholder::Range(..), length)) => {
                return Err(format!(
                    "{} must be a whole token, not part of '{text}'",
                    &rest[..length]
                ));
            }
            None => {
                out.push_str(ARGS_START);
                rest = &rest[ARGS_START.len()..];
            }
        }
    }
    out.push_str(rest);
    Ok(Expansion::One(out))
}
