//! Alertmanager's matcher syntax, as `amtool` and Alertmanager's own
//! configuration write it: `name="value"`, `name!="value"`, `name=~"regex"`,
//! `name!~"regex"`, several of them separated by commas and optionally
//! wrapped in braces (`{severity="critical", alertname=~"Disk.*"}`).
//!
//! Values may be quoted (with `\"`, `\\` and `\n` escapes; any other
//! backslash is literal, as in Alertmanager) or bare. One configuration
//! entry is a [`MatcherSet`]: its matchers must all match (AND). Regular
//! expressions are not evaluated here: the gate sends matchers to
//! Alertmanager, which evaluates them with its own (RE2, anchored) engine,
//! so the semantics are exactly Alertmanager's. This module only checks
//! what it can without a regex engine (balanced groups and classes).
//!
//! This module uses nothing else of the crate: the configuration's
//! validation calls it.

use std::fmt;

/// Placeholders allowed in `alerts.block_on`, `alerts.ignore` and
/// `alerts.block_if`: what identifies this node.
/// (`alerts.silence_during_reboot` takes every placeholder of the reboot
/// command.)
pub const GATE_PLACEHOLDERS: [&str; 2] = ["RC_NODE_NAME", "RC_BOOT_ID"];

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    Ne,
    /// `=~`: matches the (anchored) regular expression.
    Re,
    /// `!~`: does not match the (anchored) regular expression.
    NotRe,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        }
    }

    /// Whether the value is a regular expression.
    pub fn is_regex(self) -> bool {
        matches!(self, Op::Re | Op::NotRe)
    }

    /// Whether a match selects (`=`, `=~`) rather than excludes.
    pub fn is_equal(self) -> bool {
        matches!(self, Op::Eq | Op::Re)
    }
}

/// One matcher: a label name, an operator and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: Op,
    /// The value or regular expression, unescaped.
    pub value: String,
}

/// Matchers that must all match (one configuration entry).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatcherSet(pub Vec<Matcher>);

impl fmt::Display for Matcher {
    /// The canonical form, which Alertmanager parses back to the same matcher.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for ch in self.value.chars() {
            match ch {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for MatcherSet {
    /// `{a="b", c=~"d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl Matcher {
    /// This matcher as a silence matcher of Alertmanager's v2 API.
    pub fn api_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "value": self.value,
            "isRegex": self.op.is_regex(),
            "isEqual": self.op.is_equal(),
        })
    }
}

impl MatcherSet {
    /// A copy with `${NAME}` placeholders in every value replaced from
    /// `vars`; in regular expressions the inserted text is escaped, so a
    /// node name `web-1.dc` matches itself and not `web-1xdc`.
    pub fn expand(&self, vars: &[(String, String)]) -> MatcherSet {
        MatcherSet(
            self.0
                .iter()
                .map(|m| Matcher {
                    name: m.name.clone(),
                    op: m.op,
                    value: expand_placeholders(&m.value, vars, m.op.is_regex()),
                })
                .collect(),
        )
    }
}

/// Replaces `${NAME}` in `text` with the value of `NAME` in `vars`
/// (regex-escaped when `regex`); unknown names stay as written.
pub fn expand_placeholders(text: &str, vars: &[(String, String)], regex: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| k == name) {
            Some((_, v)) if regex => out.push_str(&regex_escape(v)),
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[start..start + 3 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Escapes the characters RE2 gives a meaning to.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Parses a list of matchers (`a="b", c!~"d"`, braces optional).
pub fn parse_set(text: &str) -> Result<MatcherSet, String> {
    let trimmed = text.trim();
    let inner = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
        (Some(rest), true) => &rest[..rest.len() - 1],
        (None, false) => trimmed,
        (Some(_), false) => return Err("a '{' without its closing '}'".into()),
        (None, true) => return Err("a '}' without its opening '{'".into()),
    };
    let tokens = split_outside_quotes(inner)?;
    let mut set = Vec::new();
    let last = tokens.len().saturating_sub(1);
    for (i, token) in tokens.iter().enumerate() {
        let t = token.trim();
        if t.is_empty() {
            // One trailing comma is allowed, as in Alertmanager.
            if i == last && i > 0 {
                continue;
            }
            return Err(if tokens.len() == 1 {
                "no matcher (write e.g. severity=\"critical\")".into()
            } else {
                format!("matcher {} is empty (two commas in a row?)", i + 1)
            });
        }
        set.push(parse_one(t).map_err(|e| {
            if tokens.len() > 1 {
                format!("matcher {} ({t}): {e}", i + 1)
            } else {
                e
            }
        })?);
    }
    Ok(MatcherSet(set))
}

/// Parses each entry of a configuration list; problems name the entry
/// (`alerts.block_on[1]: …`). Entries must not be empty sets.
pub fn parse_entries(path: &str, entries: &[String]) -> Result<Vec<MatcherSet>, Vec<String>> {
    let mut sets = Vec::new();
    let mut problems = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match parse_set(e) {
            Ok(s) => sets.push(s),
            Err(msg) => problems.push(format!("{path}[{i}]: {msg} in {e:?}")),
        }
    }
    if problems.is_empty() {
        Ok(sets)
    } else {
        Err(problems)
    }
}

/// Splits on commas that are not inside a quoted value.
fn split_outside_quotes(s: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut token = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for ch in s.chars() {
        match ch {
            ',' if !quoted => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            '\\' => {
                escaped = !escaped;
                token.push(ch);
                continue;
            }
            _ => {}
        }
        escaped = false;
        token.push(ch);
    }
    if quoted {
        return Err("a quoted value is not closed (missing '\"')".into());
    }
    tokens.push(token);
    Ok(tokens)
}

/// Parses one matcher: name, operator, value.
fn parse_one(s: &str) -> Result<Matcher, String> {
    let name_end = s
        .char_indices()
        .find(|&(i, c)| {
            !(c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        })
        .map_or(s.len(), |(i, _)| i);
    let name = &s[..name_end];
    if name.is_empty() {
        return Err(format!(
            "{s:?} does not start with a label name (letters, digits, '_' or ':', not a digit first)"
        ));
    }
    let rest = s[name_end..].trim_start();
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (Op::Re, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (Op::NotRe, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (Op::Ne, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (Op::Eq, r)
    } else {
        return Err(format!(
            "expected =, !=, =~ or !~ after the label name {name:?}"
        ));
    };
    let raw = rest.trim();
    let value = match raw.strip_prefix('"') {
        Some(q) => unescape(q, true)?,
        None => unescape(raw, false)?,
    };
    if op.is_regex() {
        check_regex(&value)?;
    }
    Ok(Matcher {
        name: name.to_string(),
        op,
        value,
    })
}

/// Unescapes a value (`\"`, `\\`, `\n`; any other backslash is literal).
/// A quoted value's opening quote is already consumed and its closing quote
/// must be the last character; a bare value must hold no quote at all.
fn unescape(v: &str, quoted: bool) -> Result<String, String> {
    const UNCLOSED: &str = "a quoted value is not closed (missing '\"')";
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(c @ ('"' | '\\')) => out.push(c),
                // A spurious escape is a literal backslash (Alertmanager's rule).
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None if quoted => return Err(UNCLOSED.into()),
                None => out.push('\\'),
            },
            '"' if !quoted => {
                return Err(format!(
                    "value {v:?} has a '\"' but does not start with one (quote the whole value)"
                ));
            }
            '"' if chars.peek().is_none() => return Ok(out),
            '"' => {
                let after: String = chars.collect();
                return Err(format!(
                    "unexpected {after:?} after the closing '\"' (escape an inner quote as \\\")"
                ));
            }
            c => out.push(c),
        }
    }
    if quoted {
        Err(UNCLOSED.into())
    } else {
        Ok(out)
    }
}

/// What can be checked of a regular expression without an engine: groups
/// and character classes are closed, and it does not end in a lone `\`.
fn check_regex(re: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut chars = re.chars();
    let mut in_class = false;
    while let Some(ch) = chars.next() {
        match ch {
            // The escaped character is skipped, whatever it is.
            '\\' => match chars.next() {
                Some(_) => {}
                None => {
                    return Err(format!(
                        "regular expression {re:?} ends in a lone backslash"
                    ));
                }
            },
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '[' => {
                in_class = true;
                // A ']' right after '[' or '[^' is a literal member.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else {
                    usize::from(rest.starts_with(']'))
                };
                for _ in 0..skip {
                    chars.next();
                }
            }
            '(' => depth += 1,
            ')' if depth == 0 => {
                return Err(format!(
                    "regular expression {re:?} has a ')' without its '('"
                ));
            }
            ')' => depth -= 1,
            _ => {}
        }
    }
    if in_class {
        return Err(format!("regular expression {re:?} has an unclosed '['"));
    }
    if depth > 0 {
        return Err(format!("regular expression {re:?} has an unclosed '('"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: Op, value: &str) -> Matcher {
        Matcher {
            name: name.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn parses_every_operator_quoted_and_bare() {
        let cases = [
            ("severity=\"critical\"", m("severity", Op::Eq, "critical")),
            ("severity = critical", m("severity", Op::Eq, "critical")),
            ("env!=\"prod\"", m("env", Op::Ne, "prod")),
            ("alertname=~\"Disk.*\"", m("alertname", Op::Re, "Disk.*")),
            ("job!~node|blackbox", m("job", Op::NotRe, "node|blackbox")),
            ("team=\"\"", m("team", Op::Eq, "")),
            ("team=", m("team", Op::Eq, "")),
            ("__name__:x=1", m("__name__:x", Op::Eq, "1")),
        ];
        for (text, want) in cases {
            assert_eq!(parse_set(text), Ok(MatcherSet(vec![want])), "{text}");
        }
    }

    #[test]
    fn parses_lists_with_braces_commas_and_escapes() {
        let s = parse_set(
            r#"{ msg="She said: \"Hi, all\"", path=~"C:\\temp\.d", nl="a\nb", odd="\d", }"#,
        )
        .unwrap();
        assert_eq!(
            s.0,
            [
                m("msg", Op::Eq, "She said: \"Hi, all\""),
                m("path", Op::Re, "C:\\temp\\.d"),
                m("nl", Op::Eq, "a\nb"),
                m("odd", Op::Eq, "\\d"),
            ]
        );
        assert_eq!(parse_set("a=b,c!=d").unwrap().0.len(), 2);
    }

    #[test]
    fn canonical_form_parses_back_to_the_same_set() {
        for text in [
            r#"{msg="She said: \"Hi, all\"", nl="a\nb", p=~"x\\y"}"#,
            "a=b, c!~\"d|e\", f=\"\"",
        ] {
            let s = parse_set(text).unwrap();
            assert_eq!(parse_set(&s.to_string()), Ok(s.clone()), "{s}");
        }
        assert_eq!(
            parse_set("a=b , c=~d").unwrap().to_string(),
            "{a=\"b\", c=~\"d\"}"
        );
    }

    #[test]
    fn rejects_what_alertmanager_would_reject_with_a_reason() {
        let cases = [
            ("", "no matcher"),
            ("{}", "no matcher"),
            ("severity", "expected =, !=, =~ or !~"),
            ("=x", "does not start with a label name"),
            ("1abc=x", "does not start with a label name"),
            ("a=\"b", "not closed"),
            ("a=\"b\"c", "after the closing"),
            ("a=b\"c\"", "does not start with one"),
            ("{a=b", "without its closing"),
            ("a=b}", "without its opening"),
            ("a=b,,c=d", "matcher 2 is empty"),
            ("a=~\"(x\"", "unclosed '('"),
            ("a=~\"x)\"", "without its '('"),
            ("a=~\"[x\"", "unclosed '['"),
            ("a!~\"x\\\\\\\"", "not closed"),
        ];
        for (text, want) in cases {
            match parse_set(text) {
                Ok(s) => panic!("{text:?} parsed as {s:?}"),
                Err(e) => assert!(e.contains(want), "{text:?}: {e}"),
            }
        }
        // `a==b` is `a` equal to "=b" in Alertmanager too.
        assert_eq!(parse_set("a==b").unwrap().0, [m("a", Op::Eq, "=b")]);
    }

    #[test]
    fn regex_checks_know_classes_and_escapes() {
        for ok in ["[]a]", "[^]a]", "a\\(", "(a|b)+[)(]", "x{2}"] {
            assert_eq!(check_regex(ok), Ok(()), "{ok}");
        }
        assert!(check_regex("a\\").is_err());
    }

    #[test]
    fn entries_are_reported_with_their_config_path() {
        let entries = vec![
            "severity=\"critical\"".to_string(),
            "bogus".to_string(),
            "a=~\"(\"".to_string(),
        ];
        let problems = parse_entries("alerts.block_on", &entries).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("alerts.block_on[1]: expected =, !=, =~ or !~"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("alerts.block_on[2]: regular expression"),
            "{problems:?}"
        );
        assert_eq!(
            parse_entries("x", &entries[..1]).unwrap()[0].0[0],
            m("severity", Op::Eq, "critical")
        );
    }

    #[test]
    fn placeholders_expand_and_are_escaped_in_regexes() {
        let vars = vec![("RC_NODE_NAME".to_string(), "web-1.dc".to_string())];
        let s =
            parse_set(r#"instance=~"${RC_NODE_NAME}(:.*)?", node="${RC_NODE_NAME}", x="${NOPE}""#)
                .unwrap()
                .expand(&vars);
        assert_eq!(s.0[0].value, "web-1\\.dc(:.*)?");
        assert_eq!(s.0[1].value, "web-1.dc");
        assert_eq!(s.0[2].value, "${NOPE}");
        assert_eq!(expand_placeholders("a${", &vars, false), "a${");
    }

    #[test]
    fn api_json_carries_the_operator_flags() {
        let j = m("a", Op::NotRe, "b").api_json();
        assert_eq!(j["isRegex"], true);
        assert_eq!(j["isEqual"], false);
        let j = m("a", Op::Eq, "b").api_json();
        assert_eq!(j["isRegex"], false);
        assert_eq!(j["isEqual"], true);
    }
}
