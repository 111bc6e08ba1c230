//! What a route does to its app's `Set-Cookie`, `Location` and `Refresh` headers: nginx's
//! `proxy_cookie_domain`, `proxy_cookie_path` and `proxy_cookie_flags` ([`CookieRewrite`]),
//! and `proxy_redirect` (`location_rewrite`, [`RewriteRules`] on the `Location` and on the
//! URL of a `Refresh`, as `ngx_http_upstream_rewrite_location` and `_refresh` apply it).

use super::{CookieRewrite, RewriteRules, Variables};

/// A route's rules.
#[derive(Debug, Clone, Default)]
pub struct HeaderRewrite {
    /// For `Set-Cookie`.
    pub cookies: CookieRewrite,
    /// For `Location` and `Refresh` (nginx's `proxy_redirect`).
    pub locations: RewriteRules,
}

impl HeaderRewrite {
    /// Whether it has no rule at all (a route with none rewrites nothing).
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty() && self.locations.is_empty()
    }
}

/// A route's rules, with the request they rewrite for.
#[derive(Clone, Copy)]
pub struct HeaderRewriting<'a> {
    /// The route's rules.
    pub rules: &'a HeaderRewrite,
    /// The values of their variables.
    pub vars: Variables<'a>,
}

impl HeaderRewriting<'_> {
    /// The value the app's header `name: value` goes out with: `None` when no rule
    /// changes it.
    pub fn rewrite(&self, name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        let rules = self.rules;
        if name.eq_ignore_ascii_case(b"set-cookie") {
            rules.cookies.rewrite(value, self.vars)
        } else if name.eq_ignore_ascii_case(b"location") {
            rules.locations.rewrite(value, self.vars)
        } else if name.eq_ignore_ascii_case(b"refresh") {
            // `5; url=/next`: the URL, from the first `url=` in any case on.
            let at = value
                .windows(4)
                .position(|w| w.eq_ignore_ascii_case(b"url="))?
                + 4;
            let (kept, url) = value.split_at(at);
            let url = rules.locations.rewrite(url, self.vars)?;
            Some([kept, &url].concat())
        } else {
            None
        }
    }
}

impl std::fmt::Debug for HeaderRewriting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rules.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(lines: &[&str]) -> HeaderRewrite {
        let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        HeaderRewrite {
            locations: RewriteRules::prefixes(&lines).unwrap(),
            ..HeaderRewrite::default()
        }
    }

    fn rewritten(rules: &HeaderRewrite, name: &str, value: &str) -> Option<String> {
        let vars = |t: &crate::access_log::Template, out: &mut Vec<u8>| {
            assert_eq!(t.text(), "http://$host/");
            out.extend_from_slice(b"http://shop.example.com/")
        };
        let rewriting = HeaderRewriting { rules, vars: &vars };
        rewriting
            .rewrite(name.as_bytes(), value.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    }

    /// nginx's `proxy_redirect`: the Location whole, a Refresh from its `url=` on.
    #[test]
    fn a_location_and_a_refresh_url_are_rewritten_by_the_first_rule_that_matches() {
        let r = rules(&["http://$host/ /api/", "/ /api/", "~*^(.*)$ /never"]);
        assert_eq!(
            rewritten(&r, "Location", "http://shop.example.com/login?next=/").as_deref(),
            Some("/api/login?next=/")
        );
        assert_eq!(
            rewritten(&r, "location", "/login").as_deref(),
            Some("/api/login")
        );
        assert_eq!(
            rewritten(&r, "Refresh", "5; URL=/done").as_deref(),
            Some("5; URL=/api/done"),
            "the url= in any case"
        );
        assert_eq!(
            rewritten(&r, "Location", "https://elsewhere.example/").as_deref(),
            Some("/never"),
            "the regex, last, takes the whole value"
        );
        assert_eq!(rewritten(&r, "Refresh", "5"), None, "no url=: as it came");
        assert_eq!(rewritten(&r, "Content-Location", "/x"), None);
        let none = HeaderRewrite::default();
        assert_eq!(rewritten(&none, "Location", "/x"), None);
    }
}
