//! Unit tests for the Corefile parser.
//!
//! Syntax follows CoreDNS's Corefile documentation
//! (https://coredns.io/manual/toc/#configuration) and the Caddyfile v1 lexer
//! it is built on. Error tests assert the exact `file:line: message` text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Corefile, Directive, Error, Errors, Location, parse_file, parse_str};

fn no_env(_: &str) -> Option<String> {
    None
}

fn test_env(name: &str) -> Option<String> {
    match name {
        "ZONE" => Some("example.org".to_owned()),
        "PORT" => Some("1053".to_owned()),
        "UPSTREAM" => Some("10.0.0.1".to_owned()),
        "SPACED" => Some("a b".to_owned()),
        _ => None,
    }
}

fn parse(text: &str) -> Corefile {
    parse_str(text, Path::new("Corefile"), &test_env)
        .unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}\ninput:\n{text}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse_str(text, Path::new("Corefile"), &test_env) {
        Ok(corefile) => panic!("expected errors, parsed {corefile:#?}\ninput:\n{text}"),
        Err(Errors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The directive as `name arg arg`, for compact assertions.
fn line(directive: &Directive) -> String {
    std::iter::once(directive.name.as_str())
        .chain(directive.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn lines(directives: &[Directive]) -> Vec<String> {
    directives.iter().map(line).collect()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("signpost-corefile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// === realistic input ===

/// The Corefile that kubeadm installs for CoreDNS.
const KUBERNETES_COREFILE: &str = "\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
        success 9984 30
        denial 9984 30
        prefetch 10 60s
    }
    loop
    reload
    loadbalance
}
";

#[test]
fn parses_kubeadm_corefile() {
    let corefile = parse(KUBERNETES_COREFILE);
    assert_eq!(corefile.blocks.len(), 1);
    let block = &corefile.blocks[0];
    assert_eq!(block.keys.len(), 1);
    assert_eq!(block.keys[0].zone, ".");
    assert_eq!(block.keys[0].port, Some(53));
    assert_eq!(block.location.line, 1);
    assert_eq!(
        lines(&block.directives),
        [
            "errors",
            "health",
            "ready",
            "kubernetes cluster.local in-addr.arpa ip6.arpa",
            "prometheus :9153",
            "forward . /etc/resolv.conf",
            "cache 30",
            "loop",
            "reload",
            "loadbalance",
        ]
    );
    let health = &block.directives[1];
    assert_eq!(lines(&health.block), ["lameduck 5s"]);
    assert_eq!(health.block[0].location.line, 4);
    let kubernetes = &block.directives[3];
    assert_eq!(
        lines(&kubernetes.block),
        [
            "pods insecure",
            "fallthrough in-addr.arpa ip6.arpa",
            "ttl 30"
        ]
    );
    assert_eq!(kubernetes.location().line, 7);
    assert_eq!(kubernetes.block[2].location.line, 10);
    let cache = &block.directives[6];
    assert_eq!(cache.arg(0), Some("30"));
    assert_eq!(
        lines(&cache.block),
        ["success 9984 30", "denial 9984 30", "prefetch 10 60s"]
    );
    assert_eq!(block.directives[9].location.line, 23);
    assert!(block.directives[9].block.is_empty());
    assert_eq!(block.directives_named("cache").count(), 1);
    assert_eq!(kubernetes.block_directives("ttl").count(), 1);
}

#[test]
fn parses_several_server_blocks() {
    let corefile =
        parse("example.org {\n    file db.example.org\n}\n\n.:53 {\n    forward . 8.8.8.8\n}\n");
    assert_eq!(corefile.blocks.len(), 2);
    assert_eq!(corefile.blocks[0].keys[0].zone, "example.org.");
    assert_eq!(corefile.blocks[0].keys[0].port, None);
    assert_eq!(corefile.blocks[1].location.line, 5);
    assert_eq!(lines(&corefile.blocks[1].directives), ["forward . 8.8.8.8"]);
}

// === server keys ===

#[test]
fn normalizes_key_forms() {
    let corefile = parse(
        ". {\n}\n.:54 {\n}\n:55 {\n}\ncluster.local:5353 {\n}\ndns://.:1053 {\n}\nExample.ORG. {\n}\nDNS://foo.bar {\n}\n",
    );
    let keys: Vec<(String, Option<u16>)> = corefile
        .blocks
        .iter()
        .map(|block| (block.keys[0].zone.clone(), block.keys[0].port))
        .collect();
    assert_eq!(
        keys,
        [
            (".".to_owned(), None),
            (".".to_owned(), Some(54)),
            (".".to_owned(), Some(55)),
            ("cluster.local.".to_owned(), Some(5353)),
            (".".to_owned(), Some(1053)),
            ("example.org.".to_owned(), None),
            ("foo.bar.".to_owned(), None),
        ]
    );
}

#[test]
fn keys_separated_by_spaces_and_commas() {
    let corefile = parse("a.org b.org,c.org , d.org:53 {\n}\n");
    let zones: Vec<&str> = corefile.blocks[0]
        .keys
        .iter()
        .map(|key| key.zone.as_str())
        .collect();
    assert_eq!(zones, ["a.org.", "b.org.", "c.org.", "d.org."]);
    assert_eq!(corefile.blocks[0].keys[3].port, Some(53));
}

#[test]
fn trailing_comma_continues_keys_on_next_line() {
    let corefile = parse("a.org,\nb.org,\n  c.org {\n    whoami\n}\n");
    let block = &corefile.blocks[0];
    let lines: Vec<u32> = block.keys.iter().map(|key| key.location.line).collect();
    assert_eq!(lines, [1, 2, 3]);
    assert_eq!(block.keys[2].zone, "c.org.");
    assert_eq!(block.directives[0].location.line, 4);
}

#[test]
fn open_brace_may_follow_keys_on_next_line() {
    // Caddyfile v1 accepts the server block's `{` on the line after the keys.
    let corefile = parse("example.org\n{\n    whoami\n}\n");
    assert_eq!(lines(&corefile.blocks[0].directives), ["whoami"]);
}

#[test]
fn rejects_unsupported_schemes() {
    assert_eq!(
        errors(". {\n}\ntls://example.org {\n}\ngrpc://b.org https://c.org {\n}\n"),
        [
            "Corefile:3: unsupported scheme 'tls://' in server key 'tls://example.org': only dns:// is supported",
            "Corefile:5: unsupported scheme 'grpc://' in server key 'grpc://b.org': only dns:// is supported",
            "Corefile:5: unsupported scheme 'https://' in server key 'https://c.org': only dns:// is supported",
        ]
    );
}

#[test]
fn rejects_bad_ports() {
    assert_eq!(
        errors(". {\n}\n.:65536 {\n}\na.org:dns {\n}\nb.org: {\n}\n"),
        [
            "Corefile:3: invalid port '65536' in server key '.:65536': expected a number from 0 to 65535",
            "Corefile:5: invalid port 'dns' in server key 'a.org:dns': expected a number from 0 to 65535",
            "Corefile:7: invalid port '' in server key 'b.org:': expected a number from 0 to 65535",
        ]
    );
}

/// CoreDNS reads `.:0` as "any free port" (`plugin.SplitHostPort` takes any
/// number; its own integration tests start servers on `:0`), so signpost
/// accepts it too: the system picks the port when the listener binds.
#[test]
fn port_zero_means_any_free_port() {
    let corefile = parse(".:0 {\n}\nexample.org:0 {\n}\n");
    let ports: Vec<Option<u16>> = corefile
        .blocks
        .iter()
        .flat_map(|b| b.keys.iter().map(|k| k.port))
        .collect();
    assert_eq!(ports, [Some(0), Some(0)]);
}

#[test]
fn rejects_cidr_keys_and_bad_zones() {
    assert_eq!(
        errors("10.0.0.0/24 {\n}\na..b {\n}\n"),
        [
            "Corefile:1: reverse zone from CIDR '10.0.0.0/24' in server key '10.0.0.0/24' is not supported; write the in-addr.arpa or ip6.arpa zone instead",
            "Corefile:3: invalid zone 'a..b' in server key 'a..b': empty label",
        ]
    );
}

#[test]
fn rejects_duplicate_keys_naming_both_lines() {
    assert_eq!(
        errors("example.org:53 {\n}\n\n. EXAMPLE.org.:53 {\n}\n"),
        ["Corefile:4: duplicate server key 'example.org.:53': already used at Corefile:1"]
    );
    assert_eq!(
        errors(". . {\n}\n"),
        ["Corefile:1: duplicate server key '.': already used at Corefile:1"]
    );
}

#[test]
fn keys_without_and_with_port_are_distinct() {
    // The default port is the caller's choice, so `.` and `.:53` may coexist.
    let corefile = parse(". {\n}\n.:53 {\n}\n");
    assert_eq!(corefile.blocks.len(), 2);
}

// === lexical rules ===

#[test]
fn comments_are_ignored_outside_quotes() {
    let corefile = parse(
        "# header\n. { # trailing\n    # whole line\n    log \"a # not a comment\" b#c d\n}\n",
    );
    let directive = &corefile.blocks[0].directives[0];
    assert_eq!(directive.args, ["a # not a comment", "b"]);
    assert_eq!(directive.location.line, 4);
}

#[test]
fn quoted_token_spans_lines_and_keeps_line_numbers() {
    let corefile = parse(". {\n    template \"line one\nline two\" x\n    next\n}\n");
    let directives = &corefile.blocks[0].directives;
    assert_eq!(directives[0].args, ["line one\nline two", "x"]);
    assert_eq!(directives[0].location.line, 2);
    assert_eq!(directives[1].name, "next");
    assert_eq!(directives[1].location.line, 4);
}

#[test]
fn quoted_escapes_keep_other_backslashes() {
    // CoreDNS: only `\"` is an escape inside quotes, so regexes survive.
    let corefile =
        parse(". {\n    rewrite name regex \"(.*)\\.example\\.org\" \"say \\\"hi\\\"\" \"\"\n}\n");
    assert_eq!(
        corefile.blocks[0].directives[0].args,
        ["name", "regex", "(.*)\\.example\\.org", "say \"hi\"", ""]
    );
}

#[test]
fn unquoted_backslash_escapes() {
    let corefile = parse(". {\n    log a\\ b \\#c \\{ d\\.e \\\"q\n}\n");
    assert_eq!(
        corefile.blocks[0].directives[0].args,
        ["a b", "#c", "{", "d\\.e", "\"q"]
    );
}

#[test]
fn quoted_braces_are_arguments() {
    let corefile = parse(". {\n    log \"{\" \"}\"\n    answer {{ .Name }}\n}\n");
    let directives = &corefile.blocks[0].directives;
    assert_eq!(directives[0].args, ["{", "}"]);
    assert!(directives[0].block.is_empty());
    assert_eq!(directives[1].args, ["{{", ".Name", "}}"]);
}

#[test]
fn crlf_line_endings() {
    let corefile =
        parse(".:53 {\r\n    errors\r\n    cache 30 {\r\n        success 1\r\n    }\r\n}\r\n");
    let directives = &corefile.blocks[0].directives;
    assert_eq!(lines(directives), ["errors", "cache 30"]);
    assert_eq!(directives[1].block[0].location.line, 4);
}

#[test]
fn rejects_unterminated_quote() {
    assert_eq!(
        errors(". {\n    log \"abc\n}\n"),
        [
            "Corefile:2: unterminated quoted string: expected a closing '\"' before end of file",
            "Corefile:3: expected '}' to close block opened at line 1, found end of file",
        ]
    );
}

// === blocks ===

#[test]
fn nested_blocks_nest_generically() {
    let corefile =
        parse(". {\n    a 1 {\n        b 2 {\n            c 3\n        }\n        d\n    }\n}\n");
    let a = &corefile.blocks[0].directives[0];
    assert_eq!(line(a), "a 1");
    assert_eq!(lines(&a.block), ["b 2", "d"]);
    assert_eq!(lines(&a.block[0].block), ["c 3"]);
    assert_eq!(a.block[0].block[0].location.line, 4);
}

#[test]
fn empty_blocks() {
    let corefile = parse(". {}\nexample.org { }\nb.org {\n    health {}\n}\n");
    assert_eq!(corefile.blocks.len(), 3);
    assert!(corefile.blocks[0].directives.is_empty());
    assert_eq!(lines(&corefile.blocks[2].directives), ["health"]);
}

#[test]
fn close_brace_may_end_a_directive_line() {
    let corefile = parse(". {\n    health {\n        lameduck 5s }\n    ready }\n");
    let directives = &corefile.blocks[0].directives;
    assert_eq!(lines(directives), ["health", "ready"]);
    assert_eq!(lines(&directives[0].block), ["lameduck 5s"]);
}

#[test]
fn rejects_tokens_after_open_brace() {
    assert_eq!(
        errors(". {\n    health { lameduck 5s }\n}\n"),
        [
            "Corefile:2: expected a new line after '{', found 'lameduck': '{' must be the last token on its line"
        ]
    );
    assert_eq!(
        errors(". { errors\n}\n"),
        [
            "Corefile:1: expected a new line after '{', found 'errors': '{' must be the last token on its line"
        ]
    );
}

#[test]
fn rejects_tokens_after_close_brace() {
    assert_eq!(
        errors(". {\n    health {\n    } ready\n}\n"),
        ["Corefile:3: expected a new line after '}', found 'ready'"]
    );
}

#[test]
fn rejects_unclosed_block_at_end_of_file() {
    assert_eq!(
        errors(
            ".:53 {\n    errors\n    cache 30 {\n        success 9984 30\n    \n    log\n    reload\n"
        ),
        ["Corefile:7: expected '}' to close block opened at line 3, found end of file"]
    );
}

#[test]
fn rejects_unexpected_close_brace() {
    assert_eq!(
        errors(". {\n    errors\n}\n}\nexample.org {\n}\n"),
        ["Corefile:4: unexpected '}': no block is open here"]
    );
}

#[test]
fn rejects_missing_open_brace() {
    assert_eq!(
        errors(".:53\n    errors\n"),
        ["Corefile:2: expected '{' to open the server block for '.:53', found 'errors'"]
    );
    assert_eq!(
        errors("a.org b.org"),
        [
            "Corefile:1: expected '{' to open the server block for 'a.org' 'b.org', found end of file"
        ]
    );
    assert_eq!(
        errors("a.org,\n"),
        ["Corefile:1: expected another server key after ',', found end of file"]
    );
}

#[test]
fn rejects_brace_without_directive() {
    assert_eq!(
        errors(". {\n    {\n        log\n    }\n}\n{\n}\n"),
        [
            "Corefile:2: unexpected '{': a block must follow a directive name on the same line",
            "Corefile:6: expected a server key such as '.:53' before '{'",
        ]
    );
}

#[test]
fn rejects_empty_input() {
    let expected = ["Corefile:1: no server blocks: expected at least one 'ZONE { ... }' block"];
    assert_eq!(errors(""), expected);
    assert_eq!(errors("# only a comment\n\n"), expected);
    assert_eq!(errors("(snippet) {\n    log\n}\n"), expected);
}

#[test]
fn reports_all_errors_at_once() {
    let text = "\
.:65536 {
    errors
}
tls://example.org {
    import missing
    health { lameduck 5s
    }
}
.:53 {
}
.:53 {
}
";
    assert_eq!(
        errors(text),
        [
            "Corefile:1: invalid port '65536' in server key '.:65536': expected a number from 0 to 65535",
            "Corefile:4: unsupported scheme 'tls://' in server key 'tls://example.org': only dns:// is supported",
            "Corefile:5: import 'missing': no snippet with that name is defined (before this line) and no file 'missing' exists",
            "Corefile:6: expected a new line after '{', found 'lameduck': '{' must be the last token on its line",
            "Corefile:11: duplicate server key '.:53': already used at Corefile:9",
        ]
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut text = String::from(". {\n");
    for _ in 0..10_000 {
        text.push_str("a {\n");
    }
    let errors = errors(&text);
    assert_eq!(
        errors,
        ["Corefile:65: blocks are nested more than 64 levels deep"]
    );
}

// === environment ===

#[test]
fn substitutes_environment_in_args_and_keys() {
    let corefile = parse(
        "{$ZONE}:{$PORT} {\n    forward . {$UPSTREAM}:53 {%UPSTREAM%}\n    log {$SPACED}\n}\n",
    );
    let block = &corefile.blocks[0];
    assert_eq!(block.keys[0].zone, "example.org.");
    assert_eq!(block.keys[0].port, Some(1053));
    assert_eq!(block.directives[0].args, [".", "10.0.0.1:53", "10.0.0.1"]);
    assert_eq!(block.directives[1].args, ["a b"]);
}

#[test]
fn unset_environment_is_empty_and_empty_tokens_vanish() {
    let corefile =
        parse(". {\n    forward . {$UNSET} x{$UNSET}y {%UNSET%} \"\"\n    {$UNSET}\n}\n");
    let directives = &corefile.blocks[0].directives;
    assert_eq!(directives.len(), 1);
    assert_eq!(directives[0].args, [".", "xy", ""]);
}

#[test]
fn malformed_placeholders_stay_literal() {
    let corefile = parse(". {\n    log {$} {$A B} {$OPEN {%X}\n}\n");
    assert_eq!(
        corefile.blocks[0].directives[0].args,
        ["{$}", "{$A", "B}", "{$OPEN", "{%X}"]
    );
}

// === snippets ===

#[test]
fn snippet_imported_in_block_and_at_top_level() {
    let corefile = parse(
        "(common) {\n    errors\n    cache 30 {\n        success 10\n    }\n}\n(server) {\n    example.org {\n        import common\n    }\n}\n.:53 {\n    import common\n    log\n}\nimport server\n",
    );
    assert_eq!(corefile.blocks.len(), 2);
    let first = &corefile.blocks[0];
    assert_eq!(lines(&first.directives), ["errors", "cache 30", "log"]);
    // Imported directives keep the line where the snippet wrote them.
    assert_eq!(first.directives[0].location.line, 2);
    assert_eq!(first.directives[2].location.line, 14);
    assert_eq!(lines(&first.directives[1].block), ["success 10"]);
    let second = &corefile.blocks[1];
    assert_eq!(second.keys[0].zone, "example.org.");
    assert_eq!(lines(&second.directives), ["errors", "cache 30"]);
}

#[test]
fn snippet_arguments() {
    let corefile = parse(
        "(fwd) {\n    forward {args[0]} {args[1]}\n    all {args[:]}\n    rest {args[1:]}\n    x{args[0]}y\n}\n. {\n    import fwd . 8.8.8.8 1.1.1.1\n}\n",
    );
    assert_eq!(
        lines(&corefile.blocks[0].directives),
        [
            "forward . 8.8.8.8",
            "all . 8.8.8.8 1.1.1.1",
            "rest 8.8.8.8 1.1.1.1",
            "x.y"
        ]
    );
}

#[test]
fn snippet_argument_out_of_range() {
    assert_eq!(
        errors("(fwd) {\n    forward {args[1]}\n}\n. {\n    import fwd .\n}\n"),
        [
            "Corefile:5: {args[1]} is out of range: the import has 1 argument(s) (placeholder at Corefile:2)"
        ]
    );
}

#[test]
fn snippet_importing_snippet() {
    let corefile = parse(
        "(inner) {\n    log {args[0]}\n}\n(outer) {\n    import inner {args[0]}\n    errors\n}\n. {\n    import outer stdout\n}\n",
    );
    assert_eq!(
        lines(&corefile.blocks[0].directives),
        ["log stdout", "errors"]
    );
}

#[test]
fn rejects_snippet_cycles() {
    assert_eq!(
        errors("(a) {\n    import b\n}\n(b) {\n    import a\n}\n. {\n    import a\n}\n"),
        [
            "Corefile:5: import cycle: snippet 'a' imports itself (Corefile -> snippet 'a' -> snippet 'b')"
        ]
    );
}

#[test]
fn rejects_undefined_and_redefined_snippets() {
    assert_eq!(
        errors(
            ". {\n    import later\n}\n(later) {\n}\n(later) {\n}\n(x) y {\n}\nexample.org {\n    import\n}\n"
        ),
        [
            "Corefile:2: import 'later': no snippet with that name is defined (before this line) and no file 'later' exists",
            "Corefile:6: snippet 'later' is already defined at Corefile:4",
            "Corefile:8: snippet definition '(x)' must be the only key before '{'",
            "Corefile:11: expected a snippet name or file pattern after 'import'",
        ]
    );
}

#[test]
fn exponential_imports_are_bounded() {
    for body in ["a b c d e f g h", ""] {
        assert_exponential_imports_bounded(body);
    }
}

fn assert_exponential_imports_bounded(body: &str) {
    let mut text = format!("(s0) {{\n    {body}\n}}\n");
    for level in 1..40 {
        let previous = level - 1;
        text.push_str(&format!(
            "(s{level}) {{\n    import s{previous}\n    import s{previous}\n}}\n"
        ));
    }
    text.push_str(". {\n    import s39\n}\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("imports expand to more than 1000000 tokens"),
        "{errors:?}"
    );
}

// === file imports ===

#[test]
fn imports_file_relative_to_importing_file() {
    let dir = TempDir::new("relative");
    dir.write("conf/extra.conf", "log\nimport more/last.conf\n");
    dir.write("conf/more/last.conf", "whoami\n");
    let main = dir.write(
        "Corefile",
        ".:53 {\n    errors\n    import conf/extra.conf\n    reload\n}\n",
    );
    let corefile = parse_file(&main, &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    let directives = &corefile.blocks[0].directives;
    assert_eq!(lines(directives), ["errors", "log", "whoami", "reload"]);
    assert_eq!(
        directives[2].location.file.as_ref(),
        dir.0.join("conf/more/last.conf")
    );
    assert_eq!(directives[2].location.line, 1);
}

#[test]
fn errors_in_imported_file_name_that_file() {
    let dir = TempDir::new("imported-errors");
    dir.write("bad.conf", "# comment\nexample.org:99999 {\n}\n");
    let main = dir.write("Corefile", ". {\n}\nimport bad.conf\n");
    let Err(Errors(errors)) = parse_file(&main, &no_env) else {
        panic!("expected errors");
    };
    let bad = dir.0.join("bad.conf");
    assert_eq!(
        errors,
        [Error {
            location: Location {
                file: Arc::from(bad.as_path()),
                line: 2,
            },
            message: "invalid port '99999' in server key 'example.org:99999': expected a number from 0 to 65535".to_owned(),
        }]
    );
}

#[test]
fn glob_import_in_order() {
    let dir = TempDir::new("glob");
    dir.write("zones/b.server", "b.org {\n    log\n}\n");
    dir.write("zones/a.server", "a.org {\n    whoami\n}\n");
    dir.write("zones/ignored.txt", "garbage {\n");
    dir.write("zones/.hidden.server", "garbage {\n");
    let main = dir.write(
        "Corefile",
        ". {\n}\nimport zones/*.server\nimport none/*.x\n",
    );
    // `none/` does not exist: like Go's filepath.Glob (which CoreDNS's import
    // uses and which ignores such errors), the glob matches nothing; k3s's
    // Corefile imports /etc/coredns/custom/*.server from an optional mount.
    let corefile = parse_file(&main, &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(corefile.blocks.len(), 3);

    let main = dir.write(
        "Corefile",
        ". {\n}\nimport zones/*.server\nimport zones/*.none\n",
    );
    let corefile = parse_file(&main, &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    let zones: Vec<&str> = corefile
        .blocks
        .iter()
        .map(|block| block.keys[0].zone.as_str())
        .collect();
    assert_eq!(zones, [".", "a.org.", "b.org."]);
}

#[test]
fn rejects_file_import_cycles() {
    let dir = TempDir::new("cycle");
    dir.write("a.conf", "import b.conf\n");
    dir.write("b.conf", "log\nimport a.conf\n");
    let main = dir.write("Corefile", ". {\n    import a.conf\n}\nimport Corefile\n");
    let Err(Errors(errors)) = parse_file(&main, &no_env) else {
        panic!("expected errors");
    };
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let b = dir.0.join("b.conf");
    assert!(
        messages[0].starts_with(&format!(
            "{}:2: import cycle: '{}' is already being imported (",
            b.display(),
            dir.0.join("a.conf").display()
        )),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with(&format!("{}:4: import cycle:", main.display())),
        "{messages:?}"
    );
}

#[test]
fn import_args_apply_to_files() {
    let dir = TempDir::new("file-args");
    dir.write("fwd.conf", "forward . {args[0]}\n");
    let main = dir.write("Corefile", ". {\n    import fwd.conf 9.9.9.9\n}\n");
    let corefile = parse_file(&main, &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(lines(&corefile.blocks[0].directives), ["forward . 9.9.9.9"]);
}

// === files and reporting ===

#[test]
fn parse_file_reports_unreadable_and_non_utf8_files() {
    let dir = TempDir::new("unreadable");
    let missing = dir.0.join("missing");
    let Err(Errors(errors)) = parse_file(&missing, &no_env) else {
        panic!("expected errors");
    };
    assert_eq!(errors[0].location.line, 0);
    assert!(errors[0].message.starts_with("cannot read file: "));

    let binary = dir.0.join("binary");
    std::fs::write(&binary, b". {\n    log \xff\n}\n").expect("write");
    let Err(Errors(errors)) = parse_file(&binary, &no_env) else {
        panic!("expected errors");
    };
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:2: invalid UTF-8: a Corefile must be UTF-8 text",
            binary.display()
        )
    );
}

#[test]
fn errors_display_one_per_line() {
    let error = |line: u32, message: &str| Error {
        location: Location {
            file: Arc::from(Path::new("dir/Corefile")),
            line,
        },
        message: message.to_owned(),
    };
    let errors = Errors(vec![error(3, "first"), error(7, "second")]);
    assert_eq!(
        errors.to_string(),
        "dir/Corefile:3: first\ndir/Corefile:7: second"
    );
    assert_eq!(errors.0[0].location.to_string(), "dir/Corefile:3");
    let _: &dyn std::error::Error = &errors;
}

/// Feeds random byte soup and grammar-shaped noise; the parser must never
/// panic, hang or overflow the stack.
#[test]
fn random_input_never_panics() {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "{}",
        "\n",
        " ",
        "\t",
        "\"",
        "\\",
        "#",
        ",",
        ":",
        "(",
        ")",
        ".",
        ":53",
        "import",
        "(s)",
        "s",
        "{$ZONE}",
        "{$",
        "{%UNSET%}",
        "{args[0]}",
        "{args[:]}",
        "{args[",
        "dns://",
        "tls://",
        "a.org",
        "log",
        "*",
        "\r\n",
        "é",
        "99999",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        // Knuth's MMIX LCG; the high bits are the useful ones.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let file = Path::new("/nonexistent-signpost-dir/Corefile");
    for round in 0..3_000 {
        let length = next() % 200;
        let mut text = String::new();
        for _ in 0..length {
            if round % 3 == 0 {
                let byte = u8::try_from(next() % 128).unwrap_or(b' ');
                text.push(char::from(byte));
            } else {
                text.push_str(PIECES[next() % PIECES.len()]);
            }
        }
        let _ = parse_str(&text, file, &test_env);
    }
}

#[test]
fn import_inside_nested_block() {
    let corefile = parse(
        "(opts) {\n    ttl 30\n}\n. {\n    kubernetes cluster.local {\n        import opts\n        pods insecure\n    }\n}\n",
    );
    let kubernetes = &corefile.blocks[0].directives[0];
    assert_eq!(lines(&kubernetes.block), ["ttl 30", "pods insecure"]);
}

#[test]
fn snippet_error_imported_twice_is_reported_once() {
    assert_eq!(
        errors(
            "(bad) {\n    health { lameduck 5s\n    }\n}\n. {\n    import bad\n    import bad\n}\n"
        ),
        [
            "Corefile:2: expected a new line after '{', found 'lameduck': '{' must be the last token on its line"
        ]
    );
}
