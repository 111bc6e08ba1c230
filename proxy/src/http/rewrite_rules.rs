//! nginx's rewriting of a value in the app's answer by rules, `PATTERN REPLACEMENT`
//! (`ngx_http_proxy_rewrite_t`): the first rule that matches the value makes it, as
//! nginx's handlers (`ngx_http_proxy_rewrite_domain_handler`, `_complex_handler`,
//! `_regex_handler`) match:
//!
//! - a domain rule's text (`proxy_cookie_domain`) is the whole value, in any case, after
//!   one leading `.` (which the value keeps); a leading `.` on either side of the rule is
//!   dropped, as nginx drops it (`.example.com` is `example.com`);
//! - a prefix rule's text (`proxy_cookie_path`, `proxy_redirect`) is a prefix of the value,
//!   case kept; that prefix is replaced;
//! - `~REGEX` matches anywhere in the value (a domain rule's in any case, a prefix rule's
//!   in any case with `~*`), and the whole value is replaced, `$1` to `$9` being its
//!   groups.
//!
//! Both sides may hold variables (`$host`), read for the request being answered.

use std::borrow::Cow;
use std::sync::Arc;

use regex::bytes::{Captures, Regex, RegexBuilder};

use crate::access_log::Template;

/// Appends the value of a rule's variables (`$host`) for the request being answered.
pub type Variables<'a> = &'a dyn Fn(&Template, &mut Vec<u8>);

/// A value's rules, in the configuration's order.
#[derive(Debug, Clone, Default)]
pub struct RewriteRules {
    rules: Vec<Rule>,
}

/// `PATTERN REPLACEMENT`.
#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    replacement: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// A domain: the whole value, in any case, after one leading `.`.
    Domain(Text),
    /// A prefix of the value, case kept.
    Prefix(Text),
    /// `~REGEX`: anywhere in the value, which it replaces whole.
    Regex(Regex),
}

/// Text, with or without variables.
#[derive(Debug, Clone)]
enum Text {
    Fixed(Vec<u8>),
    Vars(Arc<Template>),
}

/// A piece of a replacement.
#[derive(Debug, Clone)]
enum Piece {
    Text(Text),
    /// A group of the rule's regex (`$1`); empty when it matched nothing.
    Group(usize),
}

/// How a rule's text matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Domain,
    Prefix,
}

impl RewriteRules {
    /// Domain rules, each nginx's `proxy_cookie_domain` arguments: `"localhost
    /// example.org"`, `"~\.internal$ $host"`.
    pub fn domains(lines: &[String]) -> Result<RewriteRules, String> {
        RewriteRules::parse(lines, Kind::Domain)
    }

    /// Prefix rules, each nginx's `proxy_cookie_path` or `proxy_redirect` arguments: `"/
    /// /app/"`, `"~*^/(.*)$ /app/$1"`.
    pub fn prefixes(lines: &[String]) -> Result<RewriteRules, String> {
        RewriteRules::parse(lines, Kind::Prefix)
    }

    fn parse(lines: &[String], kind: Kind) -> Result<RewriteRules, String> {
        let rules = lines
            .iter()
            .map(|line| rule(line, kind))
            .collect::<Result<_, _>>()?;
        Ok(RewriteRules { rules })
    }

    /// Whether it has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `value` as the first rule matching it makes it; `None` when none does.
    pub fn rewrite(&self, value: &[u8], vars: Variables<'_>) -> Option<Vec<u8>> {
        self.rules.iter().find_map(|rule| rule.rewrite(value, vars))
    }
}

impl Rule {
    fn rewrite(&self, value: &[u8], vars: Variables<'_>) -> Option<Vec<u8>> {
        // Nothing allocated for a rule that does not match (most, per attribute).
        let mut out = Vec::new();
        match &self.pattern {
            Pattern::Domain(text) => {
                let dot = usize::from(value.first() == Some(&b'.'));
                let (kept, domain) = value.split_at(dot);
                if !domain.eq_ignore_ascii_case(&text.value(vars)) {
                    return None;
                }
                out.extend_from_slice(kept);
                self.write_replacement(&mut out, None, vars);
            }
            Pattern::Prefix(text) => {
                let rest = value.strip_prefix(&*text.value(vars))?;
                self.write_replacement(&mut out, None, vars);
                out.extend_from_slice(rest);
            }
            Pattern::Regex(regex) => {
                let groups = regex.captures(value)?;
                self.write_replacement(&mut out, Some(&groups), vars);
            }
        }
        Some(out)
    }

    fn write_replacement(
        &self,
        out: &mut Vec<u8>,
        groups: Option<&Captures<'_>>,
        vars: Variables<'_>,
    ) {
        for piece in &self.replacement {
            match piece {
                Piece::Text(text) => out.extend_from_slice(&text.value(vars)),
                Piece::Group(n) => {
                    if let Some(group) = groups.and_then(|g| g.get(*n)) {
                        out.extend_from_slice(group.as_bytes());
                    }
                }
            }
        }
    }
}

impl Text {
    /// `text` as written, its variables read per request.
    fn parse(text: &str) -> Result<Text, String> {
        if !text.contains('$') {
            return Ok(Text::Fixed(text.as_bytes().to_vec()));
        }
        let template = Template::parse_value(text)?;
        Ok(match template.literal() {
            Some(fixed) => Text::Fixed(fixed),
            None => Text::Vars(Arc::new(template)),
        })
    }

    /// Its value for the request being answered: a variable's bytes a header cannot carry
    /// escaped, as a header value's are.
    fn value(&self, vars: Variables<'_>) -> Cow<'_, [u8]> {
        match self {
            Text::Fixed(bytes) => Cow::Borrowed(bytes),
            Text::Vars(template) => {
                let mut raw = Vec::new();
                vars(template, &mut raw);
                Cow::Owned(crate::config::header_text(&raw).into_bytes())
            }
        }
    }
}

/// One line: the pattern, whitespace, the replacement (the rest of the line, which may
/// hold spaces: nginx's quoted `"/; Secure"`).
fn rule(line: &str, kind: Kind) -> Result<Rule, String> {
    let example = match kind {
        Kind::Domain => "`localhost example.org`",
        Kind::Prefix => "`/ /app/`",
    };
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{line:?} holds a control character, which no header can carry"
        ));
    }
    // Split at spaces and tabs only, as nginx's arguments are.
    let blank = |c: char| c == ' ' || c == '\t';
    let Some((pattern, replacement)) = line.trim_matches(blank).split_once(blank) else {
        return Err(format!(
            "{line:?}: write `PATTERN REPLACEMENT` ({example}); `[]` for no rule"
        ));
    };
    let replacement = replacement.trim_start_matches(blank);
    let pattern = match pattern.strip_prefix('~') {
        Some(regex) => {
            // A prefix rule's `~*` is in any case; a domain rule's `~` always is (nginx's).
            let (source, caseless) = match (kind, regex.strip_prefix('*')) {
                (Kind::Prefix, Some(source)) => (source, true),
                (Kind::Prefix, None) => (regex, false),
                (Kind::Domain, _) => (regex, true),
            };
            // On bytes, as nginx's PCRE runs without its UTF mode: `.` matches any byte
            // of a value that is not UTF-8, and `~*` folds ASCII letters only.
            let regex = RegexBuilder::new(source)
                .unicode(false)
                .case_insensitive(caseless)
                .build()
                .map_err(|e| format!("{line:?}: {source:?} is no regex: {e}"))?;
            Pattern::Regex(regex)
        }
        None if kind == Kind::Domain => {
            let domain = pattern.strip_prefix('.').unwrap_or(pattern);
            Pattern::Domain(Text::parse(domain)?)
        }
        None => Pattern::Prefix(Text::parse(pattern)?),
    };
    let replacement = match pattern {
        Pattern::Domain(_) => replacement.strip_prefix('.').unwrap_or(replacement),
        _ => replacement,
    };
    let regex = match &pattern {
        Pattern::Regex(regex) => Some(regex),
        _ => None,
    };
    let replacement = pieces(line, replacement, regex)?;
    Ok(Rule {
        pattern,
        replacement,
    })
}

/// A replacement's text and variables, and its groups of the rule's `regex`: `$1` to `$9`
/// (one digit, as nginx reads them; a group the regex lacks, or that matched nothing,
/// is empty) and a named group's `$name` or `${name}`. A rule without a regex has no
/// groups: its nginx `$1` would be its location's, which ringway's routes do not pass on.
fn pieces(line: &str, replacement: &str, regex: Option<&Regex>) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text_from = 0;
    let bytes = replacement.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some((group, len)) = group_at(&bytes[i..], regex) else {
            i += 1;
            continue;
        };
        let Some(n) = group else {
            return Err(format!(
                "{line:?}: {} names a group of a `~` pattern, and this one is none",
                &replacement[i..i + len]
            ));
        };
        if text_from < i {
            pieces.push(Piece::Text(Text::parse(&replacement[text_from..i])?));
        }
        pieces.push(Piece::Group(n));
        i += len;
        text_from = i;
    }
    if text_from < bytes.len() {
        pieces.push(Piece::Text(Text::parse(&replacement[text_from..])?));
    }
    Ok(pieces)
}

/// The group `at` starts with a reference to, and the reference's length: `Some(None)` for
/// a `$1` with no regex to name a group of; `None` when it starts with none.
fn group_at(at: &[u8], regex: Option<&Regex>) -> Option<(Option<usize>, usize)> {
    let after = at.strip_prefix(b"$")?;
    if let Some(&digit @ b'1'..=b'9') = after.first() {
        return Some((regex.map(|_| usize::from(digit - b'0')), 2));
    }
    let regex = regex?;
    let (name, len) = match after.strip_prefix(b"{") {
        Some(braced) => {
            let end = braced.iter().position(|&b| b == b'}')?;
            (&braced[..end], end + 3)
        }
        None => {
            let end = after
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .unwrap_or(after.len());
            (&after[..end], end + 1)
        }
    };
    let index = regex
        .capture_names()
        .position(|n| n.is_some_and(|n| n.as_bytes() == name))?;
    Some((Some(index), len))
}

#[cfg(test)]
mod tests;
