//! nginx's `charset` (`ngx_http_charset_filter_module`) for the app's answers: a
//! `Content-Type` of one of the listed types that names no charset gets `; charset=NAME`
//! (`text/html` → `text/html; charset=utf-8`), as a raw WSGI app's `text/html` does behind
//! nginx's `charset utf-8;`. Nothing is converted: nginx converts only between charsets a
//! `charset_map` pairs, and without one it labels.

/// nginx's `charset_types` default (`text/html` is always among them, as in nginx).
pub const DEFAULT_TYPES: [&str; 6] = [
    "text/html",
    "text/xml",
    "text/plain",
    "text/vnd.wap.wml",
    "application/javascript",
    "application/rss+xml",
];

/// A charset to label answers with, and the types it labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charset {
    name: String,
    /// Lower case. `None`: every type (`charset_types *`).
    types: Option<Vec<String>>,
}

impl Charset {
    /// `name` for `types` (`None`: nginx's default list; `["*"]`: any type). A name or type
    /// that cannot go in a header is refused.
    pub fn new(name: &str, types: Option<&[String]>) -> Result<Charset, String> {
        Charset::check_name(name)?;
        let types = match types {
            None => Some(DEFAULT_TYPES.iter().map(|t| (*t).to_owned()).collect()),
            Some(listed) if listed.iter().any(|t| t == "*") => None,
            Some(listed) => {
                Charset::check_types(listed)?;
                let mut types = vec!["text/html".to_owned()];
                for t in listed {
                    let t = t.to_ascii_lowercase();
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
                Some(types)
            }
        };
        Ok(Charset {
            name: name.to_owned(),
            types,
        })
    }

    /// Whether `name` can be a charset's in a header: letters, digits and `-_.:+`.
    pub fn check_name(name: &str) -> Result<(), String> {
        let name_ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:+".contains(&b));
        if name_ok {
            Ok(())
        } else {
            Err(format!(
                "{name:?} is not a charset name (letters, digits and `-_.:+`, as utf-8 or \
                 windows-1251)"
            ))
        }
    }

    /// Whether each of `types` is a media type (`type/subtype`) or `*`.
    pub fn check_types(types: &[String]) -> Result<(), String> {
        let token = |s: &str| !s.is_empty() && s.bytes().all(super::is_token);
        match types
            .iter()
            .find(|t| *t != "*" && !t.split_once('/').is_some_and(|(a, b)| token(a) && token(b)))
        {
            Some(t) => Err(format!("{t:?} is not a media type (type/subtype, or *)")),
            None => Ok(()),
        }
    }

    /// The charset to add to an answer of `status` whose `Content-Type` is `value`, if
    /// any: none when it names one already (`charset=` as nginx finds it: after a `;` and
    /// spaces, any case), when the whole value is not one of the types (nginx compares the
    /// value as it is: `text/html; q=1` is not `text/html`), and for a 301 or 302 (nginx
    /// leaves redirects alone).
    pub fn for_answer(&self, status: u16, value: &[u8]) -> Option<&str> {
        if value.is_empty() || status == 301 || status == 302 || names_charset(value) {
            return None;
        }
        let listed = match &self.types {
            None => true,
            Some(types) => types
                .iter()
                .any(|t| value.eq_ignore_ascii_case(t.as_bytes())),
        };
        listed.then_some(self.name.as_str())
    }
}

/// Whether a Content-Type names a charset, read as nginx's `copy_content_type` reads it.
fn names_charset(value: &[u8]) -> bool {
    value.iter().enumerate().any(|(i, &b)| {
        b == b';' && {
            let rest = &value[i + 1..];
            let rest = &rest[rest.iter().take_while(|&&c| c == b' ').count()..];
            rest.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"charset="))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(types: Option<&[&str]>) -> Charset {
        let types: Option<Vec<String>> = types.map(|t| t.iter().map(|s| s.to_string()).collect());
        Charset::new("utf-8", types.as_deref()).unwrap()
    }

    #[test]
    fn listed_types_without_a_charset_are_labelled_as_nginx_labels_them() {
        let c = utf8(None);
        let cases: [(u16, &str, Option<&str>); 14] = [
            (200, "text/html", Some("utf-8")),
            (200, "Text/HTML", Some("utf-8")),
            (404, "text/plain", Some("utf-8")),
            (200, "application/javascript", Some("utf-8")),
            (303, "text/html", Some("utf-8")),
            (301, "text/html", None),
            (302, "text/html", None),
            (200, "text/css", None),
            (200, "application/json", None),
            (200, "text/html; charset=iso-8859-1", None),
            (200, "text/html;CHARSET=\"x\"", None),
            (200, "text/html; q=1", None),
            (200, "text/html;", None),
            (200, "", None),
        ];
        for (status, value, label) in cases {
            assert_eq!(
                c.for_answer(status, value.as_bytes()),
                label,
                "{status} {value}"
            );
        }
    }

    #[test]
    fn charset_types_replace_the_list_but_keep_text_html() {
        let c = utf8(Some(&["application/json", "TEXT/CSS"]));
        assert_eq!(c.for_answer(200, b"application/json"), Some("utf-8"));
        assert_eq!(c.for_answer(200, b"text/css"), Some("utf-8"));
        assert_eq!(c.for_answer(200, b"text/html"), Some("utf-8"));
        assert_eq!(c.for_answer(200, b"text/plain"), None);
        let any = utf8(Some(&["*"]));
        assert_eq!(any.for_answer(200, b"image/png"), Some("utf-8"));
        assert_eq!(any.for_answer(200, b"image/svg+xml; charset=x"), None);
    }

    #[test]
    fn names_and_types_that_cannot_go_in_a_header_are_refused() {
        assert!(Charset::new("utf-8\r\nX: y", None).is_err());
        assert!(Charset::new("", None).is_err());
        assert!(Charset::new("utf 8", None).is_err());
        assert!(Charset::new("windows-1251", None).is_ok());
        for t in ["text", "text/", "/html", "text/ht ml", "text/html/x"] {
            assert!(Charset::new("utf-8", Some(&[t.to_owned()])).is_err(), "{t}");
        }
    }
}
