use super::*;

fn referers(words: &[&str], server_names: &[&str]) -> ValidReferers {
    let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    let names: Vec<HostName> = server_names.iter().map(|n| n.parse().unwrap()).collect();
    ValidReferers::new(&words, &names).unwrap()
}

fn allows(r: &ValidReferers, referer: Option<&str>) -> bool {
    r.allow(referer.map(str::as_bytes))
}

/// nginx 1.22's `ngx_http_referer_variable`, case by case.
#[test]
fn referers_are_judged_as_nginx_judges_them() {
    let r = referers(
        &[
            "none",
            "blocked",
            "server_names",
            "*.cdn.example",
            "partner.example/shop/",
        ],
        &["example.com", ".example.org"],
    );
    assert!(allows(&r, None), "none");
    assert!(allows(&r, Some("XXXXXXXXXXXXXXX")), "blocked: no scheme");
    assert!(
        allows(&r, Some("http://i.r")),
        "blocked: shorter than http://i.ru"
    );
    assert!(
        allows(&r, Some("HTTPS://Example.COM:8443/page")),
        "any case, a port"
    );
    assert!(
        allows(&r, Some("http://example.org")),
        ".example.org: the name itself"
    );
    assert!(
        allows(&r, Some("http://www.example.org/")),
        "and names under it"
    );
    assert!(
        allows(&r, Some("https://a.b.cdn.example/x")),
        "*.: any depth"
    );
    assert!(
        !allows(&r, Some("https://cdn.example/x")),
        "*.: not the name itself"
    );
    assert!(
        !allows(&r, Some("https://www.example.com/")),
        "an exact name is exact"
    );
    assert!(!allows(&r, Some("https://evil.com/?example.com")));
    assert!(!allows(&r, Some("https://example.com.evil.com/")));
    assert!(
        allows(&r, Some("http://partner.example/shop/item")),
        "a URI part"
    );
    assert!(
        allows(&r, Some("http://partner.example:81/shop/")),
        "after the port"
    );
    assert!(
        !allows(&r, Some("http://partner.example/Shop/")),
        "the path minds case"
    );
    assert!(
        !allows(&r, Some("http://partner.example/")),
        "not under the URI part"
    );
    assert!(
        allows(&r, Some("ftp://example.com/")),
        "not http(s): blocked"
    );
    let strict = referers(&["example.com"], &[]);
    assert!(
        !allows(&strict, None),
        "no none: a request without Referer is invalid"
    );
    assert!(!allows(&strict, Some("XXXXXXXXXXXX")), "no blocked");
    assert!(!allows(&strict, Some("ftp://example.com/")), "no blocked");
    let any = referers(&["*.com", "~a"], &[]);
    let host = |len: usize| format!("http://{}.com/", "a".repeat(len - 4));
    assert!(allows(&any, Some(&host(256))), "a host of 256 bytes");
    assert!(
        !allows(&any, Some(&host(257))),
        "one past 256 bytes: invalid, no name nor regex tried"
    );
}

#[test]
fn a_host_is_looked_up_exact_then_by_the_longest_wildcard_then_regexes() {
    let r = referers(
        &[
            "*.example.com",
            "*.img.example.com/pics/",
            "www.example.*",
            r"~\.google\.",
            "site.example.com/only/",
        ],
        &[],
    );
    assert!(allows(&r, Some("http://a.example.com/")));
    assert!(
        !allows(&r, Some("http://a.img.example.com/other")),
        "the longest wildcard decides, its URI part holds"
    );
    assert!(allows(&r, Some("http://a.img.example.com/pics/1")));
    assert!(
        !allows(&r, Some("http://site.example.com/x")),
        "an exact name before a wildcard, and no falling back to it"
    );
    assert!(
        allows(&r, Some("http://www.example.co.uk/")),
        "a tail wildcard"
    );
    assert!(!allows(&r, Some("http://www.example/")));
    assert!(
        allows(&r, Some("http://www.example./")),
        "an empty label after a tail wildcard, as nginx's hash finds it"
    );
    assert!(
        allows(&r, Some("http://.example.com/")),
        "an empty label before a head wildcard"
    );
    let both = referers(&["*.example.com/a/", "www.example.*"], &[]);
    assert!(
        !allows(&both, Some("http://www.example.com/b/")),
        "a head wildcard before a tail one, its URI part holding"
    );
    assert!(allows(&both, Some("http://www.example.com/a/x")));
    let odd = referers(&["example.com.", "example.com:8080"], &[]);
    assert!(
        allows(&odd, Some("http://example.com./")),
        "a name nginx takes as it is"
    );
    assert!(
        !allows(&odd, Some("http://example.com:8080/")),
        "a port in a name never matches, as in nginx"
    );
    assert!(
        allows(&r, Some("https://www.GOOGLE.de/search")),
        "a regex, any case"
    );
    assert!(
        allows(&r, Some("https://evil.com/www.google.x")),
        "a regex sees the whole Referer after its scheme, as nginx's does"
    );
}

#[test]
fn lists_nginx_refuses_are_refused() {
    for (words, server_names, why) in [
        (&["none", "blocked"][..], &[][..], "without a host name"),
        (
            &["none", r"~\.google\."][..],
            &[][..],
            "without a host name",
        ),
        (&["server_names"][..], &[][..], "set no `hosts`"),
        (
            &["example.com", "EXAMPLE.com/x/"][..],
            &[][..],
            "another referer names",
        ),
        (&["ex*mple.com"][..], &[][..], "is not a referer"),
        (&["*"][..], &[][..], "is not a referer"),
        (&["~"][..], &[][..], "an empty regex"),
        (&["~("][..], &[][..], "is no regex"),
        (&[""][..], &[][..], "an empty referer"),
        (&[][..], &[][..], "an empty list"),
        (&["a..b.com"][..], &[][..], "is not a referer"),
        (&[".example.*"][..], &[][..], "is not a referer"),
    ] {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let names: Vec<HostName> = server_names
            .iter()
            .map(|n: &&str| n.parse().unwrap())
            .collect();
        let err = ValidReferers::new(&words, &names).unwrap_err();
        assert!(err.contains(why), "{words:?}: {err}");
    }
    let r = referers(&["server_names", "example.com/x/"], &["example.com"]);
    assert!(
        !allows(&r, Some("http://example.com/y")),
        "a name given as a referer keeps its URI part over the same server name"
    );
}
