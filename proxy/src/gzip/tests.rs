//! The decision against nginx's gzip module, check by check.

use super::*;

fn settings(types: &[&str], proxied: &[&str]) -> Gzip {
    Gzip::from_settings(&GzipSettings {
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        min_length: Some(crate::config::Size(20)),
        level: Some(1),
        vary: true,
        proxied: proxied.iter().map(|p| (*p).to_owned()).collect(),
    })
    .unwrap()
}

fn browser() -> Asked<'static> {
    Asked {
        accept_encoding: Some(b"gzip, deflate, br"),
        http11: true,
        via: false,
        authorization: false,
    }
}

fn json(length: Option<u64>) -> Answer<'static> {
    Answer {
        status: 200,
        length,
        content_type: Some(b"application/json"),
        ..Answer::default()
    }
}

const NOW: u64 = 1_800_000_000;

#[test]
fn the_answer_decides_first_and_no_vary_when_it_cannot_be_compressed() {
    let gzip = settings(&["application/json"], &[]);
    let yes = Verdict {
        compress: true,
        vary: true,
    };
    let untouched = Verdict::default();
    let cases: [(&str, Answer<'static>, Verdict); 11] = [
        ("json", json(Some(100)), yes),
        ("no length (chunked)", json(None), yes),
        ("at min_length", json(Some(20)), yes),
        ("below min_length", json(Some(19)), untouched),
        (
            "403",
            Answer {
                status: 403,
                ..json(None)
            },
            yes,
        ),
        (
            "404",
            Answer {
                status: 404,
                ..json(None)
            },
            yes,
        ),
        (
            "500",
            Answer {
                status: 500,
                ..json(None)
            },
            untouched,
        ),
        (
            "201",
            Answer {
                status: 201,
                ..json(None)
            },
            untouched,
        ),
        (
            "already encoded",
            Answer {
                content_encoding: Some(b"br"),
                ..json(None)
            },
            untouched,
        ),
        (
            "an empty Content-Encoding is none",
            Answer {
                content_encoding: Some(b" "),
                ..json(None)
            },
            yes,
        ),
        (
            "no Content-Type",
            Answer {
                content_type: None,
                ..json(None)
            },
            untouched,
        ),
    ];
    for (what, answer, expected) in cases {
        assert_eq!(gzip.verdict(&browser(), &answer, NOW), expected, "{what}");
    }
}

#[test]
fn types_are_media_types_without_parameters_and_text_html_always() {
    let gzip = settings(&["Application/JSON"], &[]);
    let typed = |t: &'static [u8]| Answer {
        content_type: Some(t),
        ..json(None)
    };
    let compress = |a: &Answer<'_>| gzip.verdict(&browser(), a, NOW).compress;
    assert!(compress(&typed(b"application/json; charset=utf-8")));
    assert!(compress(&typed(b"application/json;charset=\"utf-8\"")));
    // nginx cuts a charset parameter only: any other keeps the type from matching.
    assert!(!compress(&typed(b"application/json; v=2")));
    assert!(!compress(&typed(b"application/json; v=2; charset=utf-8")));
    assert!(compress(&typed(b"APPLICATION/json")));
    assert!(compress(&typed(b"text/html; charset=utf-8")));
    assert!(!compress(&typed(b"text/css")));
    assert!(!compress(&typed(b"application/json-patch")));
    assert!(!compress(&typed(b"; charset=utf-8")));
    // One type under several names: nginx's name for it matches ringway's files' too.
    let js = settings(&["application/javascript", "text/xml"], &[]);
    let js_compresses = |t: &'static [u8]| js.verdict(&browser(), &typed(t), NOW).compress;
    assert!(js_compresses(b"text/javascript; charset=utf-8"));
    assert!(js_compresses(b"application/x-javascript"));
    assert!(js_compresses(b"application/xml"));
    assert!(!js_compresses(b"application/json"));
    let any = settings(&["*"], &[]);
    assert!(
        any.verdict(&browser(), &typed(b"image/svg+xml"), NOW)
            .compress
    );
    let untyped = Answer {
        content_type: None,
        ..json(None)
    };
    assert!(
        any.verdict(&browser(), &untyped, NOW).compress,
        "nginx's \"*\" takes an answer without a Content-Type"
    );
}

#[test]
fn the_client_must_accept_gzip_over_http_1_1() {
    let gzip = settings(&["application/json"], &[]);
    let asked = |ae: Option<&'static [u8]>, http11| Asked {
        accept_encoding: ae,
        http11,
        ..browser()
    };
    let verdict = |a: &Asked<'_>| gzip.verdict(a, &json(None), NOW);
    assert!(verdict(&asked(Some(b"gzip"), true)).compress);
    assert!(verdict(&asked(Some(b"deflate, GZIP;q=0.5"), true)).compress);
    // Vary all the same: the answer depends on the header.
    for refused in [
        asked(None, true),
        asked(Some(b"br"), true),
        asked(Some(b"gzip;q=0"), true),
        asked(Some(b"gzip"), false),
    ] {
        assert_eq!(
            verdict(&refused),
            Verdict {
                compress: false,
                vary: true
            },
            "{refused:?}"
        );
    }
}

#[test]
fn through_a_proxy_only_what_proxied_lets_through() {
    let via = Asked {
        via: true,
        ..browser()
    };
    let compress = |proxied: &[&str], asked: &Asked<'_>, answer: &Answer<'_>| {
        settings(&["application/json"], proxied)
            .verdict(asked, answer, NOW)
            .compress
    };
    let plain = json(None);
    assert!(!compress(&[], &via, &plain), "off by default");
    assert!(!compress(&["off"], &via, &plain));
    assert!(compress(&["any"], &via, &plain));
    // auth: only with an Authorization header.
    let authorized = Asked {
        authorization: true,
        ..via
    };
    assert!(compress(&["auth"], &authorized, &plain));
    // expired: an Expires in the past (by the answer's Date, else now) lets it through; a
    // future one, an invalid one, or the flag missing does not.
    let expires = |e: &'static [u8], d: Option<&'static [u8]>| Answer {
        expires: Some(e),
        date: d,
        ..json(None)
    };
    let past = expires(b"Thu, 01 Jan 1970 00:00:00 GMT", None);
    let future = expires(b"Fri, 01 Jan 2100 00:00:00 GMT", None);
    assert!(compress(&["expired"], &via, &past));
    assert!(!compress(&["expired"], &via, &future));
    assert!(!compress(&["expired"], &via, &expires(b"0", None)));
    assert!(
        !compress(&["no-cache"], &via, &past),
        "Expires decides alone"
    );
    let dated = expires(
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        Some(b"Sun, 06 Nov 1994 08:49:38 GMT"),
    );
    assert!(compress(&["expired"], &via, &dated));
    // Cache-Control: the listed directives let it through; its presence alone stops it.
    let cc = |no_cache, no_store, private| Answer {
        cache_control: Some(CacheControl {
            no_cache,
            no_store,
            private,
        }),
        ..json(None)
    };
    assert!(compress(&["no-cache"], &via, &cc(true, false, false)));
    assert!(compress(&["no-store"], &via, &cc(false, true, false)));
    assert!(compress(&["private"], &via, &cc(false, false, true)));
    assert!(!compress(&["no-cache"], &via, &cc(false, true, true)));
    assert!(!compress(&["no_etag"], &via, &cc(false, false, false)));
    // Neither Expires nor Cache-Control: through unless a validator the flags name is there.
    let lm = Answer {
        last_modified: true,
        ..json(None)
    };
    let etag = Answer {
        etag: true,
        ..json(None)
    };
    assert!(compress(&["no_last_modified"], &via, &plain));
    assert!(!compress(&["no_last_modified"], &via, &lm));
    assert!(compress(&["no_last_modified"], &via, &etag));
    assert!(!compress(&["no_etag"], &via, &etag));
    assert!(compress(&["expired"], &via, &plain), "nginx's fall-through");
}

#[test]
fn the_answer_head_is_read_for_what_the_decision_needs() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: max-age=0, \
                 Private, no-cache=\"Set-Cookie\"\r\nETag: \"x\"\r\nExpires: 0\r\nDate: y\r\n\r\n";
    let mut spans = Vec::new();
    let Ok(crate::http::Status::Complete(_)) = crate::http::parse_response(head, false, &mut spans)
    else {
        panic!("a head")
    };
    let answer = Answer::read(200, Some(5), head, &spans);
    assert_eq!(answer.content_type, Some(&b"text/html"[..]));
    assert_eq!(
        answer.cache_control,
        Some(CacheControl {
            no_cache: false,
            no_store: false,
            private: true
        })
    );
    assert!(answer.etag && !answer.last_modified);
    assert_eq!(answer.expires, Some(&b"0"[..]));
    assert_eq!(answer.date, Some(&b"y"[..]));
}

#[test]
fn settings_are_checked() {
    let check = |s: GzipSettings| Gzip::from_settings(&s).map(|_| ()).map_err(|(k, _)| k);
    assert_eq!(check(GzipSettings::default()), Ok(()));
    assert_eq!(
        Gzip::from_settings(&GzipSettings::default()),
        Ok(Gzip::default())
    );
    let level = |n| GzipSettings {
        level: Some(n),
        ..GzipSettings::default()
    };
    assert_eq!(check(level(0)), Err("level"));
    assert_eq!(check(level(10)), Err("level"));
    assert_eq!(check(level(9)), Ok(()));
    let types = |t: &str| GzipSettings {
        types: vec![t.to_owned()],
        ..GzipSettings::default()
    };
    assert_eq!(check(types("text/css; charset=utf-8")), Err("types"));
    assert_eq!(check(types("text")), Err("types"));
    assert_eq!(check(types("text/*")), Err("types"));
    assert_eq!(check(types("image/svg+xml")), Ok(()));
    let proxied = |p: &[&str]| GzipSettings {
        proxied: p.iter().map(|s| (*s).to_owned()).collect(),
        ..GzipSettings::default()
    };
    assert_eq!(check(proxied(&["off", "any"])), Err("proxied"));
    assert_eq!(check(proxied(&["no_cache"])), Err("proxied"));
    assert_eq!(
        check(proxied(&[
            "expired", "no-cache", "no-store", "private", "auth"
        ])),
        Ok(())
    );
}

/// Found by review: an empty first Content-Encoding hid the coding after it.
#[test]
fn any_content_encoding_line_with_a_coding_counts() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: \r\n\
                 Content-Encoding: br\r\n\r\n";
    let mut spans = Vec::new();
    let Ok(crate::http::Status::Complete(_)) = crate::http::parse_response(head, false, &mut spans)
    else {
        panic!("a head")
    };
    let answer = Answer::read(200, Some(5), head, &spans);
    assert_eq!(answer.content_encoding, Some(&b"br"[..]));
}

#[test]
fn the_ratio_is_written_and_rounded_as_nginx_writes_it() {
    let shown = |plain, member| GzipRatio::of(plain, member).map(|r| r.to_string());
    assert_eq!(shown(17, 8).as_deref(), Some("2.13"), "2.125 rounds up");
    assert_eq!(shown(2124, 1000).as_deref(), Some("2.12"));
    assert_eq!(shown(1, 3).as_deref(), Some("0.33"));
    assert_eq!(shown(99_996, 1000).as_deref(), Some("100.00"), "the carry");
    assert_eq!(shown(0, 2).as_deref(), Some("0.00"), "an empty body");
    assert_eq!(shown(5, 0), None, "nothing made: no ratio");
}

#[test]
fn a_finished_stream_knows_its_ratio() {
    let plain = b"ratio ".repeat(1000);
    let mut stream = GzipStream::unheld(1, Some(plain.len() as u64));
    let mut out = Vec::new();
    stream.write(&plain, &mut out, false).unwrap();
    assert_eq!(stream.ratio(), None, "not before its end");
    stream.finish(&mut out).unwrap();
    // The whole member counts, its header and trailer included, as in nginx.
    assert_eq!(
        stream.ratio(),
        GzipRatio::of(plain.len() as u64, out.len() as u64)
    );
}
