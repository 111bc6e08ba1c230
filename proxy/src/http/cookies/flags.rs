//! nginx's `proxy_cookie_flags`: the `Set-Cookie` headers of the cookies a rule names get
//! `Secure`, `HttpOnly` or a `SameSite` added, replaced or taken away, as
//! `ngx_http_proxy_rewrite_cookie_flags` does it: the first rule whose cookie matches (a
//! name, or `~REGEX` on the name, both in any case) applies.

use regex::bytes::{Regex, RegexBuilder};

use super::Parts;

/// A `SameSite` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    fn word(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// What a rule does to one attribute: add it (or set its value), or take it away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit<T> {
    Set(T),
    Remove,
}

/// Which cookies a rule is for.
#[derive(Debug, Clone)]
enum Cookie {
    /// This name, in any case.
    Named(String),
    /// Names this pattern matches (nginx's `~REGEX`).
    Matching(Regex),
}

/// One rule: `COOKIE FLAG...`.
#[derive(Debug, Clone)]
struct Rule {
    cookie: Cookie,
    secure: Option<Edit<()>>,
    http_only: Option<Edit<()>>,
    same_site: Option<Edit<SameSite>>,
}

/// A route's rules, in the configuration's order.
#[derive(Debug, Clone, Default)]
pub struct CookieFlags {
    rules: Vec<Rule>,
}

impl CookieFlags {
    /// The rules of `lines`, each nginx's arguments: `"~ secure httponly"`, `"session
    /// samesite=strict"`, `"~^tracking_ nosecure"`. A flag nginx does not know, two flags
    /// for one attribute, or a line without flags is refused.
    pub fn new(lines: &[String]) -> Result<CookieFlags, String> {
        let rules = lines
            .iter()
            .map(|line| rule(line))
            .collect::<Result<_, _>>()?;
        Ok(CookieFlags { rules })
    }

    /// Whether it has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Edits the parts of a header whose cookie (its first part) a rule names; whether
    /// one did.
    pub(super) fn edit(&self, parts: &mut Parts<'_>) -> bool {
        let Some((name, _)) = parts.first() else {
            return false;
        };
        let rule = self.rules.iter().find(|rule| match &rule.cookie {
            Cookie::Named(n) => n.as_bytes().eq_ignore_ascii_case(name),
            Cookie::Matching(regex) => regex.is_match(name),
        });
        match rule {
            Some(rule) => {
                rule.edit(parts);
                true
            }
            None => false,
        }
    }
}

impl Rule {
    /// nginx's `ngx_http_proxy_edit_cookie_flags`: an attribute there already is kept (a
    /// `SameSite` of another value rewritten), or dropped when the rule removes it; one
    /// the rule adds and that is missing goes at the end.
    fn edit(&self, parts: &mut Parts<'_>) {
        let (mut secure, mut http_only, mut same_site) =
            (self.secure, self.http_only, self.same_site);
        let mut kept = vec![true; parts.len()];
        for (i, (key, value)) in parts.iter_mut().enumerate().skip(1) {
            if key.eq_ignore_ascii_case(b"secure") {
                match secure {
                    Some(Edit::Set(())) => secure = None,
                    Some(Edit::Remove) => kept[i] = false,
                    None => {}
                }
            } else if key.eq_ignore_ascii_case(b"httponly") {
                match http_only {
                    Some(Edit::Set(())) => http_only = None,
                    Some(Edit::Remove) => kept[i] = false,
                    None => {}
                }
            } else if key.eq_ignore_ascii_case(b"samesite") {
                match same_site {
                    Some(Edit::Set(want)) => {
                        same_site = None;
                        let same = value
                            .as_deref()
                            .is_some_and(|v| v.eq_ignore_ascii_case(want.word().as_bytes()));
                        if !same {
                            *key = b"SameSite".as_slice().into();
                            *value = Some(want.word().as_bytes().into());
                        }
                    }
                    Some(Edit::Remove) => kept[i] = false,
                    None => {}
                }
            }
        }
        let mut kept = kept.into_iter();
        parts.retain(|_| kept.next().unwrap_or(true));
        if secure == Some(Edit::Set(())) {
            parts.push((b"Secure".as_slice().into(), None));
        }
        if http_only == Some(Edit::Set(())) {
            parts.push((b"HttpOnly".as_slice().into(), None));
        }
        if let Some(Edit::Set(want)) = same_site {
            parts.push((
                b"SameSite".as_slice().into(),
                Some(want.word().as_bytes().into()),
            ));
        }
    }
}

/// One line: the cookie, then its flags.
fn rule(line: &str) -> Result<Rule, String> {
    let mut words = line.split_whitespace();
    let cookie = match words.next() {
        Some(pattern) if pattern.starts_with('~') => {
            let source = &pattern[1..];
            // Without regard to case, as nginx compiles it (NGX_REGEX_CASELESS), on bytes
            // as its PCRE runs (ASCII letters folded, any byte matched by `.`).
            let regex = RegexBuilder::new(source)
                .unicode(false)
                .case_insensitive(true)
                .build()
                .map_err(|e| format!("{line:?}: {source:?} is no regex: {e}"))?;
            Cookie::Matching(regex)
        }
        Some(name) => Cookie::Named(name.to_owned()),
        None => return Err("an empty rule: write `COOKIE FLAG...` (`~ secure`)".into()),
    };
    let mut rule = Rule {
        cookie,
        secure: None,
        http_only: None,
        same_site: None,
    };
    let mut any = false;
    for flag in words {
        any = true;
        let twice = || format!("{line:?}: {flag:?} sets an attribute another flag already sets");
        let set_once = |slot: &mut Option<Edit<()>>, edit| match slot {
            Some(_) => Err(twice()),
            None => {
                *slot = Some(edit);
                Ok(())
            }
        };
        match flag.to_ascii_lowercase().as_str() {
            "secure" => set_once(&mut rule.secure, Edit::Set(()))?,
            "nosecure" => set_once(&mut rule.secure, Edit::Remove)?,
            "httponly" => set_once(&mut rule.http_only, Edit::Set(()))?,
            "nohttponly" => set_once(&mut rule.http_only, Edit::Remove)?,
            word => {
                let edit = match word {
                    "samesite=strict" => Edit::Set(SameSite::Strict),
                    "samesite=lax" => Edit::Set(SameSite::Lax),
                    "samesite=none" => Edit::Set(SameSite::None),
                    "nosamesite" => Edit::Remove,
                    _ => {
                        return Err(format!(
                            "{line:?}: {flag:?} is not a flag: secure, httponly, \
                             samesite=strict|lax|none, or nosecure, nohttponly, nosamesite"
                        ));
                    }
                };
                if rule.same_site.replace(edit).is_some() {
                    return Err(twice());
                }
            }
        }
    }
    if !any {
        return Err(format!(
            "{line:?} names a cookie and no flag: write `COOKIE FLAG...` (`~ secure`)"
        ));
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::CookieRewrite;

    fn flags(lines: &[&str]) -> CookieRewrite {
        let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        CookieRewrite {
            flags: CookieFlags::new(&lines).unwrap(),
            ..CookieRewrite::default()
        }
    }

    fn rewritten(f: &CookieRewrite, value: &str) -> Option<String> {
        f.rewrite(value.as_bytes(), &|_, _| {})
            .map(|v| String::from_utf8(v).unwrap())
    }

    /// What nginx 1.22's `proxy_cookie_flags` makes of each header (its
    /// `ngx_http_proxy_edit_cookie_flags`, read line by line).
    #[test]
    fn flags_are_added_replaced_and_removed_as_nginx_does() {
        let all = flags(&["~ secure httponly samesite=lax"]);
        assert_eq!(
            rewritten(&all, "id=1; Path=/").as_deref(),
            Some("id=1; Path=/; Secure; HttpOnly; SameSite=Lax")
        );
        assert_eq!(
            rewritten(&all, "id=1;path=/ ;  secure;SameSite=strict").as_deref(),
            Some("id=1; path=/; secure; SameSite=Lax; HttpOnly"),
            "kept where they are, a SameSite of another value rewritten, spaces trimmed"
        );
        assert_eq!(
            rewritten(&all, "id=1; HTTPONLY; samesite=LAX").as_deref(),
            Some("id=1; HTTPONLY; samesite=LAX; Secure"),
            "a SameSite of the same value in any case is kept as written"
        );
        let off = flags(&["~ nosecure nohttponly nosamesite"]);
        assert_eq!(
            rewritten(&off, "id=1; Secure; Path=/; HttpOnly; SameSite=None").as_deref(),
            Some("id=1; Path=/")
        );
        // No value in the first part: not a cookie nginx edits.
        assert_eq!(rewritten(&all, "broken; Path=/"), None);
        assert_eq!(rewritten(&all, ""), None);
    }

    #[test]
    fn the_first_rule_naming_the_cookie_applies() {
        let f = flags(&["Session samesite=strict", "~^track nosecure", "~ secure"]);
        assert_eq!(
            rewritten(&f, "session=abc").as_deref(),
            Some("session=abc; SameSite=Strict"),
            "a name in any case, and only the first rule"
        );
        assert_eq!(
            rewritten(&f, "tracking=1; Secure").as_deref(),
            Some("tracking=1")
        );
        assert_eq!(
            rewritten(&f, "TRACKING=1; Secure").as_deref(),
            Some("TRACKING=1"),
            "a pattern in any case, as nginx compiles it"
        );
        assert_eq!(rewritten(&f, "other=1").as_deref(), Some("other=1; Secure"));
        let named = flags(&["session secure"]);
        assert_eq!(rewritten(&named, "sessionid=1"), None, "a name is whole");
    }

    #[test]
    fn rules_nginx_would_not_take_are_refused() {
        for (line, why) in [
            ("~ secure nosecure", "another flag already sets"),
            ("~ samesite=lax samesite=none", "another flag already sets"),
            ("~ secured", "is not a flag"),
            ("session", "no flag"),
            ("", "an empty rule"),
            ("~( secure", "is no regex"),
        ] {
            let err = CookieFlags::new(&[line.to_owned()]).unwrap_err();
            assert!(err.contains(why), "{line:?}: {err}");
        }
    }
}
