//! Headers and params the operator sets (`upstream_headers`, `params`: nginx's
//! `proxy_set_header` and `uwsgi_param`): fixed text, or text with nginx's variables
//! (`$server_port`, `t=${msec}`), worked out for each request from the same variables as
//! the access log's.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;

use crate::access_log::Template;

/// Names and values, in order; some values hold variables.
#[derive(Debug, Clone, Default)]
pub struct SetValues {
    /// Each name and its value as written.
    pairs: Vec<(String, String)>,
    /// The values with variables: their index in `pairs`, their template.
    templates: Vec<(usize, Arc<Template>)>,
}

/// The same names and values as written (the templates are read from them).
impl PartialEq for SetValues {
    fn eq(&self, other: &SetValues) -> bool {
        self.pairs == other.pairs
    }
}

impl Eq for SetValues {}

impl SetValues {
    /// None at all.
    pub(crate) const NONE: SetValues = SetValues {
        pairs: Vec::new(),
        templates: Vec::new(),
    };

    /// Reads each value; one with a `$` is a template of the variables known before the
    /// answer. The error names the pair whose value is wrong.
    pub(crate) fn new(pairs: Vec<(String, String)>) -> Result<SetValues, (String, String)> {
        let mut templates = Vec::new();
        for (i, (name, value)) in pairs.iter().enumerate() {
            if value.contains('$') {
                let template = Template::parse_value(value).map_err(|m| (name.clone(), m))?;
                templates.push((i, Arc::new(template)));
            }
        }
        if !templates.is_empty() {
            // A value's `$msec` or `$time_local` converts times on a worker: the time zone
            // is read here, off the event loops, even with the access log off.
            crate::access_log::load_time_zone();
        }
        Ok(SetValues { pairs, templates })
    }

    /// The pairs for one request: as written when no value holds a variable, else with
    /// each template's value from `value` (which appends it to the buffer it is given).
    /// A value's bytes that a header could not carry (control characters, from a decoded
    /// `$uri`, say) are percent-escaped when `for_headers`.
    pub(crate) fn resolve(
        &self,
        for_headers: bool,
        mut value: impl FnMut(&Template, &mut Vec<u8>),
    ) -> Cow<'_, [(String, String)]> {
        if self.templates.is_empty() {
            return Cow::Borrowed(&self.pairs);
        }
        let mut pairs = self.pairs.clone();
        let mut out = Vec::new();
        for (i, template) in &self.templates {
            out.clear();
            value(template, &mut out);
            if let Some((_, slot)) = pairs.get_mut(*i) {
                *slot = text_of(&out, for_headers);
            }
        }
        Cow::Owned(pairs)
    }

    /// The headers an answer carries (nginx's `add_header`), as [`SetValues::resolve`]
    /// works them out for headers; a value that comes out empty leaves its header out, as
    /// nginx's does.
    pub(crate) fn resolve_added(
        &self,
        value: impl FnMut(&Template, &mut Vec<u8>),
    ) -> Cow<'_, [(String, String)]> {
        match self.resolve(true, value) {
            Cow::Borrowed(fixed) => Cow::Borrowed(fixed),
            Cow::Owned(mut pairs) => {
                pairs.retain(|(_, value)| !value.is_empty());
                Cow::Owned(pairs)
            }
        }
    }
}

/// `bytes`, a header value made of variables, as text a header can carry (see
/// [`text_of`]).
pub(crate) fn header_text(bytes: &[u8]) -> String {
    text_of(bytes, true)
}

/// `bytes` as text: bytes that are not UTF-8, and for a header control characters, as
/// `%XX` escapes.
fn text_of(bytes: &[u8], for_headers: bool) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if for_headers && (c.is_control() && c != '\t') {
                let mut bytes = [0u8; 4];
                for &b in c.encode_utf8(&mut bytes).as_bytes() {
                    push_escape(&mut text, b);
                }
            } else {
                text.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_escape(&mut text, b);
        }
    }
    text
}

fn push_escape(text: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    text.push('%');
    text.push(char::from(HEX[usize::from(b >> 4)]));
    text.push(char::from(HEX[usize::from(b & 15)]));
}

impl Deref for SetValues {
    type Target = [(String, String)];

    /// The pairs as written (a template's value as its text).
    fn deref(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use crate::access_log::line;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fixed_values_are_lent_and_templates_worked_out() {
        let fixed = SetValues::new(pairs(&[("X-A", "1")])).unwrap();
        assert!(matches!(fixed.resolve(true, |_, _| {}), Cow::Borrowed(_)));
        let set = SetValues::new(pairs(&[("X-A", "1"), ("X-Port", "p=$server_port")])).unwrap();
        let resolved = set.resolve(true, |_, out| {
            out.extend_from_slice(b"p=80\r\n\xff\xc2\x85\xc3\xa9");
        });
        let want = pairs(&[("X-A", "1"), ("X-Port", "p=80%0D%0A%FF%C2%85\u{e9}")]);
        assert_eq!(
            &*resolved,
            &want[..],
            "a control's every byte, other text as it is"
        );
        let resolved = set.resolve(false, |_, out| out.extend_from_slice(b"a\nb"));
        assert_eq!(
            resolved[1].1, "a\nb",
            "a param may hold any byte but invalid UTF-8"
        );
        assert_eq!(set[1].1, "p=$server_port", "as written");
    }

    #[test]
    fn a_wrong_variable_names_its_pair() {
        let err = SetValues::new(pairs(&[("X-T", "$request_time")])).unwrap_err();
        assert_eq!(err.0, "X-T");
        assert!(err.1.contains("for log lines only"), "{}", err.1);
        let err = SetValues::new(pairs(&[("X-U", "$nope")])).unwrap_err();
        assert!(err.1.contains("unknown variable (not shown"), "{}", err.1);
        assert!(!err.1.contains("nope"), "a value is not shown: {}", err.1);
        let err = SetValues::new(pairs(&[("X-K", "abc$def")])).unwrap_err();
        assert!(err.1.contains("written `$$`"), "{}", err.1);
        assert!(
            !err.1.contains("$request_time"),
            "only what a value may hold: {}",
            err.1
        );
        let literal = SetValues::new(pairs(&[("X-K", "abc$$def")])).unwrap();
        let resolved = literal.resolve(true, |t, out| t.write_value(out, &line::sample()));
        assert_eq!(resolved[0].1, "abc$def");
    }
}
