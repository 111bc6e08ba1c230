//! nginx's rewriting of the app's `Set-Cookie` headers, `ngx_http_proxy_rewrite_cookie`:
//! each `Domain` and `Path` attribute through the first rule that matches it
//! (`proxy_cookie_domain`, `proxy_cookie_path`: [`RewriteRules`]), then the cookie's flags
//! (`proxy_cookie_flags`: [`flags`]). A header a rule changed is written again from its
//! parts, `; `-separated, as nginx writes it; one whose first part has no `=`, or that no
//! rule touched, goes as it came.

mod flags;

use std::borrow::Cow;

pub use flags::CookieFlags;

use super::{RewriteRules, Variables};

/// A route's rules for its app's `Set-Cookie` headers.
#[derive(Debug, Clone, Default)]
pub struct CookieRewrite {
    /// `Domain` attributes' (nginx's `proxy_cookie_domain`).
    pub domains: RewriteRules,
    /// `Path` attributes' (nginx's `proxy_cookie_path`).
    pub paths: RewriteRules,
    /// The cookies' flags (nginx's `proxy_cookie_flags`).
    pub flags: CookieFlags,
}

/// A header's parts, as nginx splits them: at each `;`, each `key=value` or a bare key,
/// spaces around both trimmed.
type Parts<'v> = Vec<(Cow<'v, [u8]>, Option<Cow<'v, [u8]>>)>;

impl CookieRewrite {
    /// Whether it has no rule at all (a route with none rewrites nothing).
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.paths.is_empty() && self.flags.is_empty()
    }

    /// The value `Set-Cookie: value` goes out with: `None` when no rule applies (it goes
    /// as it came). `vars` gives the values of the rules' variables.
    pub fn rewrite(&self, value: &[u8], vars: Variables<'_>) -> Option<Vec<u8>> {
        let mut parts = parse(value);
        let (_, first_value) = parts.first()?;
        first_value.as_ref()?;
        let mut changed = false;
        for (key, value) in parts.iter_mut().skip(1) {
            let rules = if key.eq_ignore_ascii_case(b"domain") {
                &self.domains
            } else if key.eq_ignore_ascii_case(b"path") {
                &self.paths
            } else {
                continue;
            };
            if let Some(old) = value
                && let Some(new) = rules.rewrite(old, vars)
            {
                *value = Some(new.into());
                changed = true;
            }
        }
        changed |= self.flags.edit(&mut parts);
        if !changed {
            return None;
        }
        let mut out = Vec::with_capacity(value.len() + 32);
        for (i, (key, value)) in parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(key);
            if let Some(value) = value {
                out.push(b'=');
                out.extend_from_slice(value);
            }
        }
        Some(out)
    }
}

/// `s` without the spaces around it.
fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ').map_or(start, |e| e + 1);
    s.get(start..end.max(start)).unwrap_or_default()
}

fn parse(value: &[u8]) -> Parts<'_> {
    value
        .split(|&b| b == b';')
        .map(|part| match part.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&part[..eq]).into(), Some(trim(&part[eq + 1..]).into())),
            None => (trim(part).into(), None),
        })
        .collect()
}
