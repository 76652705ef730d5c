//! `--fqdn-template`: host names from a Go `text/template` over the object.
//!
//! Control plane, pure. The subset external-dns users write, parsed once at
//! start-up (anything else is a start-up error, never a silent wrong name):
//! text, `{{ .Field.Path }}` (Go field names: `.Name`, `.Namespace`,
//! `.Labels.env`, `.Spec.Type`, matched case-insensitively against the
//! object's JSON), string literals, pipelines with `|`, and the functions
//! `index`, `toLower`, `toUpper`, `trim`, `trimPrefix`, `trimSuffix`,
//! `replace`. Output is split on `,`; each item is trimmed of spaces and one
//! trailing dot, empty items dropped, the rest de-duplicated and sorted
//! (external-dns v0.22 `source/template`). A missing field renders as empty.

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Vec<Command>),
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Field(Vec<String>),
    Literal(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Command {
    Term(Term),
    Call(Function, Vec<Term>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Index,
    ToLower,
    ToUpper,
    Trim,
    TrimPrefix,
    TrimSuffix,
    Replace,
}

/// A template outside the supported subset, or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--fqdn-template: {0}")]
pub struct TemplateError(pub String);

// === impl Template ===

impl Template {
    /// Parses the templates joined with `,` (several flags equal one flag with commas).
    pub fn parse(templates: &[String]) -> Result<Self, TemplateError> {
        let text = templates.join(",");
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| TemplateError("unclosed action".to_owned()))?;
            let mut action = &after[..close];
            if let Some(trimmed) = action.strip_prefix('-') {
                before = before.trim_end();
                action = trimmed;
            }
            let mut next = &after[close + 2..];
            if let Some(trimmed) = action.strip_suffix('-') {
                next = next.trim_start();
                action = trimmed;
            }
            if !before.is_empty() {
                parts.push(Part::Text(before.to_owned()));
            }
            parts.push(Part::Action(pipeline(action.trim())?));
            rest = next;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The host names for `object` (its JSON, with `kind` and `apiVersion`).
    pub fn hostnames(&self, object: &Value) -> Vec<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action(commands) => out.push_str(&run(commands, object)),
            }
        }
        let mut names: Vec<String> = out
            .split(',')
            .map(|item| item.trim())
            .map(|item| item.strip_suffix('.').unwrap_or(item).to_owned())
            .filter(|item| !item.is_empty())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn pipeline(action: &str) -> Result<Vec<Command>, TemplateError> {
    if action.is_empty() {
        return Err(TemplateError("empty action".to_owned()));
    }
    split_pipes(action)
        .into_iter()
        .map(|c| command(c.trim()))
        .collect()
}

/// Splits on `|` outside string literals.
fn split_pipes(action: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in action.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '|' if !quoted => {
                parts.push(&action[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&action[start..]);
    parts
}

fn words(text: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut literal = String::from("\"");
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(escaped) => literal.push(escaped),
                        None => return Err(TemplateError("unterminated string".to_owned())),
                    },
                    Some(other) => literal.push(other),
                    None => return Err(TemplateError("unterminated string".to_owned())),
                }
            }
            out.push(literal);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(word);
        }
    }
    Ok(out)
}

fn term(word: &str) -> Result<Term, TemplateError> {
    if let Some(literal) = word.strip_prefix('"') {
        return Ok(Term::Literal(literal.to_owned()));
    }
    if word == "." {
        return Ok(Term::Field(Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        return Ok(Term::Field(path.split('.').map(str::to_owned).collect()));
    }
    Err(TemplateError(format!(
        "unsupported {word:?} (the supported subset: fields, string literals, index, toLower, toUpper, trim, trimPrefix, trimSuffix, replace)"
    )))
}

fn command(text: &str) -> Result<Command, TemplateError> {
    let words = words(text)?;
    let Some(first) = words.first() else {
        return Err(TemplateError("empty command".to_owned()));
    };
    let function = match first.as_str() {
        "index" => Function::Index,
        "toLower" => Function::ToLower,
        "toUpper" => Function::ToUpper,
        "trim" => Function::Trim,
        "trimPrefix" => Function::TrimPrefix,
        "trimSuffix" => Function::TrimSuffix,
        "replace" => Function::Replace,
        _ if words.len() == 1 => return Ok(Command::Term(term(first)?)),
        other => return Err(TemplateError(format!("unsupported function {other:?}"))),
    };
    let args = words[1..]
        .iter()
        .map(|w| term(w))
        .collect::<Result<_, _>>()?;
    Ok(Command::Call(function, args))
}

fn lookup<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = object;
    for (position, segment) in path.iter().enumerate() {
        let map = current.as_object()?;
        let found = map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(segment))
            .map(|(_, v)| v)
            .or_else(|| {
                // Go embeds ObjectMeta: `.Name` is `.ObjectMeta.Name`.
                (position == 0)
                    .then(|| map.get("metadata"))
                    .flatten()
                    .and_then(|m| m.as_object())
                    .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(segment)))
                    .map(|(_, v)| v)
            })
            .or_else(|| {
                (position == 0 && segment == "ObjectMeta")
                    .then(|| map.get("metadata"))
                    .flatten()
            });
        current = found?;
    }
    Some(current)
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn evaluate(term: &Term, object: &Value) -> Value {
    match term {
        Term::Literal(text) => Value::String(text.clone()),
        Term::Field(path) => lookup(object, path).cloned().unwrap_or(Value::Null),
    }
}

fn run(commands: &[Command], object: &Value) -> String {
    let mut piped: Option<Value> = None;
    for command in commands {
        let value = match command {
            Command::Term(term) => evaluate(term, object),
            Command::Call(function, args) => {
                let mut values: Vec<Value> = args.iter().map(|a| evaluate(a, object)).collect();
                if let Some(previous) = piped.take() {
                    values.push(previous);
                }
                call(*function, &values)
            }
        };
        piped = Some(value);
    }
    text_of(piped.as_ref())
}

fn call(function: Function, args: &[Value]) -> Value {
    let text = |i: usize| text_of(args.get(i));
    let result = match function {
        Function::Index => {
            return args
                .first()
                .and_then(|map| map.get(text(1)))
                .cloned()
                .unwrap_or(Value::Null);
        }
        Function::ToLower => text(0).to_lowercase(),
        Function::ToUpper => text(0).to_uppercase(),
        Function::Trim => text(0).trim().to_owned(),
        Function::TrimPrefix => {
            let (prefix, s) = (text(0), text(1));
            s.strip_prefix(prefix.as_str()).unwrap_or(&s).to_owned()
        }
        Function::TrimSuffix => {
            let (suffix, s) = (text(0), text(1));
            s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_owned()
        }
        Function::Replace => text(2).replace(&text(0), &text(1)),
    };
    Value::String(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object() -> Value {
        json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "Web", "namespace": "shop", "labels": {"env": "prod"},
                         "annotations": {"team/name": "blue"}},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1"}
        })
    }

    fn render(template: &str) -> Vec<String> {
        Template::parse(&[template.to_owned()])
            .unwrap()
            .hostnames(&object())
    }

    /// The common templates of external-dns's docs render as Go would.
    #[test]
    fn common_templates() {
        assert_eq!(render("{{.Name}}.example.com"), ["Web.example.com"]);
        assert_eq!(
            render("{{ .Name | toLower }}.{{ .Namespace }}.example.com."),
            ["web.shop.example.com"]
        );
        assert_eq!(
            render("{{ .Labels.env }}.{{ .Name }}.example.com"),
            ["prod.Web.example.com"]
        );
        assert_eq!(
            render(r#"{{ index .Annotations "team/name" }}.example.com, b.example.com ,"#),
            ["b.example.com", "blue.example.com"]
        );
        assert_eq!(
            render(r#"{{ trimPrefix "W" .Name }}-{{ .Spec.Type | toLower }}.x"#),
            ["eb-loadbalancer.x"]
        );
        assert_eq!(
            render(r#"{{ replace "." "-" .Spec.ClusterIP }}.x"#),
            ["10-0-0-1.x"]
        );
        assert_eq!(render("{{ .Missing }}"), Vec::<String>::new());
        let two = Template::parse(&["{{.Name}}.a".to_owned(), "{{.Name}}.b".to_owned()]).unwrap();
        assert_eq!(two.hostnames(&object()), ["Web.a", "Web.b"]);
    }

    /// Outside the subset is a start-up error.
    #[test]
    fn unsupported() {
        for bad in [
            "{{ if .Name }}x{{ end }}",
            "{{ .Name",
            "{{ printf \"%s\" .Name }}",
            "{{}}",
        ] {
            assert!(Template::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
