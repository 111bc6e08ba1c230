use super::*;
use crate::http::CookieRewrite;

/// Cookies rewritten by `domains` and `paths`, each nginx's arguments; `$host` is
/// `www.example.org`.
fn rules(domains: &[&str], paths: &[&str]) -> CookieRewrite {
    let lines = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    CookieRewrite {
        domains: RewriteRules::domains(&lines(domains)).unwrap(),
        paths: RewriteRules::prefixes(&lines(paths)).unwrap(),
        ..CookieRewrite::default()
    }
}

fn rewritten(r: &CookieRewrite, value: &str) -> Option<String> {
    let vars = |t: &Template, out: &mut Vec<u8>| match t.text() {
        "$host" => out.extend_from_slice(b"www.example.org"),
        other => panic!("no value for {other:?}"),
    };
    r.rewrite(value.as_bytes(), &vars)
        .map(|v| String::from_utf8(v).unwrap())
}

/// What nginx 1.22's `ngx_http_proxy_rewrite_domain_handler` does: the whole domain in any
/// case after one leading dot, which stays; the rule's own dots dropped.
#[test]
fn a_domain_is_matched_whole_in_any_case_and_keeps_its_dot() {
    let r = rules(&[".backend.local .example.org", "localhost $host"], &[]);
    assert_eq!(
        rewritten(&r, "id=1; Domain=backend.local; Path=/").as_deref(),
        Some("id=1; Domain=example.org; Path=/")
    );
    assert_eq!(
        rewritten(&r, "id=1;domain=.BACKEND.local").as_deref(),
        Some("id=1; domain=.example.org"),
        "any case; the value's dot kept; written again as nginx writes it"
    );
    assert_eq!(
        rewritten(&r, "id=1; Domain=localhost").as_deref(),
        Some("id=1; Domain=www.example.org"),
        "a variable in the replacement"
    );
    assert_eq!(
        rewritten(&r, "id=1; Domain=sub.backend.local"),
        None,
        "whole"
    );
    assert_eq!(rewritten(&r, "id=1; Domain=backend.local.evil"), None);
    assert_eq!(rewritten(&r, "id=1; Path=/"), None, "no Domain: as it came");
    assert_eq!(rewritten(&r, "broken; Domain=localhost"), None, "no cookie");
    let by_host = rules(&["$host localhost"], &[]);
    assert_eq!(
        rewritten(&by_host, "id=1; Domain=WWW.example.org").as_deref(),
        Some("id=1; Domain=localhost"),
        "a variable in the pattern"
    );
}

/// `ngx_http_proxy_rewrite_complex_handler`: a prefix, case kept; the rest stays.
#[test]
fn a_path_is_matched_by_its_prefix_with_case_kept() {
    let r = rules(&[], &["/api/ /", "/ /app/", "/never /x"]);
    assert_eq!(
        rewritten(&r, "id=1; Path=/api/v1").as_deref(),
        Some("id=1; Path=/v1"),
        "the first rule that matches"
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/").as_deref(),
        Some("id=1; Path=/app/")
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/API/x").as_deref(),
        Some("id=1; Path=/app/API/x"),
        "case kept: /API/ is not /api/"
    );
    assert_eq!(rewritten(&r, "id=1; Path=api"), None);
    assert_eq!(
        rewritten(&r, "a=1; Path=/; path=/api/").as_deref(),
        Some("a=1; Path=/app/; path=/"),
        "each Path attribute"
    );
    let flagged = rules(&[], &["/ \"/; Secure\""]);
    assert_eq!(
        rewritten(&flagged, "id=1; Path=/").as_deref(),
        Some("id=1; Path=\"/; Secure\""),
        "the replacement is the rest of the line, quotes and all"
    );
    let unquoted = rules(&[], &["/   /; Secure; HttpOnly"]);
    assert_eq!(
        rewritten(&unquoted, "id=1; Path=/").as_deref(),
        Some("id=1; Path=/; Secure; HttpOnly"),
        "nginx's `proxy_cookie_path / \"/; Secure; HttpOnly\";` written without the quotes"
    );
}

/// `ngx_http_proxy_rewrite_regex_handler`: anywhere in the value, the whole value
/// replaced, `$N` its groups; a path's `~` minds case and `~*` does not, a domain's never
/// does.
#[test]
fn a_regex_replaces_the_whole_value_with_its_groups() {
    let r = rules(
        &[r"~\.([a-z]+\.internal)$ $1.example.org"],
        &["~^/(v[0-9]+)/ /api/$1/", "~*^/ADMIN(/x)?(y)? /admin$2x"],
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/v2/users; Domain=a.DB.internal").as_deref(),
        Some("id=1; Path=/api/v2/; Domain=DB.internal.example.org")
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/admin/x").as_deref(),
        Some("id=1; Path=/adminx"),
        "`~*` in any case; a group that matched nothing is empty"
    );
    assert_eq!(rewritten(&r, "id=1; Path=/V2/"), None, "`~` minds case");
    let anywhere = rules(&[r"~\.$ $host"], &[]);
    assert_eq!(
        rewritten(&anywhere, "id=1; Domain=example.").as_deref(),
        Some("id=1; Domain=www.example.org")
    );
}

/// `$N` as nginx reads it (one digit; a group the regex lacks is empty), a named group,
/// and a regex on bytes, as nginx's PCRE runs: `.` matches a byte that is not UTF-8, `~*`
/// and `\d` know ASCII only.
#[test]
fn groups_and_bytes_are_read_as_nginx_reads_them() {
    let r = rules(
        &[],
        &[
            "~^/(?<rest>x.*)$ /app/${rest}!$rest",
            "~^/(a)(b)?$ /$12$2$9",
            "~*^/s(.)$ /s/$1",
            r"~^/v(\d)$ /v/$1",
        ],
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/xy").as_deref(),
        Some("id=1; Path=/app/xy!xy")
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/a").as_deref(),
        Some("id=1; Path=/a2"),
        "`$12` is group 1 then `2`; groups it lacks or that matched nothing are empty"
    );
    let latin1 = r.rewrite(b"id=1; Path=/s\xE9", &|_, _| {});
    assert_eq!(
        latin1.as_deref(),
        Some(&b"id=1; Path=/s/\xE9"[..]),
        "any byte"
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/\u{17F}x"),
        None,
        "`~*` folds ASCII letters only (U+017F is no s)"
    );
    assert_eq!(
        rewritten(&r, "id=1; Path=/v\u{663}"),
        None,
        "`\\d` is ASCII"
    );
}

/// Refused as nginx would refuse them, or (`$1` after a pattern without groups, which
/// nginx takes from its location's regex) as ringway cannot honour them.
#[test]
fn rules_that_cannot_be_honoured_are_refused() {
    for (domain, line, why) in [
        (true, "localhost", "PATTERN REPLACEMENT"),
        (false, "", "PATTERN REPLACEMENT"),
        (false, "~( /x", "is no regex"),
        (false, "/ /x$1", "a `~` pattern"),
        (true, "localhost $nosuchvariable", "unknown variable"),
        (false, "/ /\r\nX-Injected: 1", "control character"),
        (true, "a b\u{0}", "control character"),
    ] {
        let lines = [line.to_owned()];
        let err = match domain {
            true => RewriteRules::domains(&lines),
            false => RewriteRules::prefixes(&lines),
        }
        .unwrap_err();
        assert!(err.contains(why), "{line:?}: {err}");
    }
}
