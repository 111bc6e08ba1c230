//! Regex routes against nginx's regex locations: the same server written both ways, each
//! location marked with an `X-Route` header on every answer (`add_header ... always`;
//! ringway's `response_headers` with `always = true`), in front of one uWSGI serving the
//! Flask demo (whose answers carry no mark on either side).
//!
//! ```nginx
//! location /api/        { uwsgi_pass ...; add_header X-Route api always; }
//! location ^~ /media/   { alias MEDIA/;   add_header X-Route media always; }
//! location ~* \.(css|png)$ { root ASSETS; expires 30d; add_header X-Route assets always; }
//! location ~ ^/api/v[0-9]+/ { return 200 "versioned"; add_header X-Route versioned always; }
//! location = /exact.css { return 200 "exact"; add_header X-Route exact always; }
//! location ~ ^/(api|apx)$ { return 200 "bare"; add_header X-Route bare always; }
//! location ~ ^/p/([0-9]+)/?$ { return 301 /product/$1$is_args$args; }
//! location ~ ^/blog/(.+)\.html$ { return 308 /news/$1; }
//! location ~ ^/old/ { return 301 /new$request_uri; }
//! location ~ ^/f/[^/]+/d$ { return 200 "any byte"; add_header X-Route bytes always; }
//! location ^~ /.well-known/ { alias MEDIA/; add_header X-Route acme always; }
//! location ~ /\. { return 403; add_header X-Route dot always; }
//! location / { uwsgi_pass ...; }
//! ```
//!
//! Compared per request: the status, the mark, Location's path, Cache-Control and a success's body; and for
//! each case the route ringway must have taken, so that two proxies routing alike but wrongly
//! cannot agree.

use ringway_tests::client::{Req, Response, roundtrip};
use ringway_tests::nginx::uwsgi_pass;
use ringway_tests::{App, Nginx, Ringway, Uwsgi};

const CSS: &[u8] = b"body { color: #333 }\n";
const PNG: &[u8] = b"\x89PNG not really\n";
const MEDIA_CSS: &[u8] = b"/* media */\n";

/// What the comparison looks at (the body of a success only: the two error pages differ).
fn facts(r: &Response) -> (u16, Option<String>, Option<String>, Option<String>, Vec<u8>) {
    (
        r.status,
        r.header("x-route"),
        // nginx's are absolute (`absolute_redirect on`), ringway's relative.
        r.header("location").map(|l| match l.split_once("://") {
            Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_owned(),
            None => l,
        }),
        r.header("cache-control"),
        if r.status < 300 {
            r.body.clone()
        } else {
            Vec::new()
        },
    )
}

#[test]
fn regex_routes_take_the_requests_nginx_regex_locations_take() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let assets = dir.path().join("assets");
    let media = dir.path().join("media");
    for d in [assets.join("static"), assets.join("img"), media.clone()] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(assets.join("static/site.css"), CSS).expect("write");
    std::fs::write(assets.join("img/logo.PNG"), PNG).expect("write");
    std::fs::write(media.join("a.css"), MEDIA_CSS).expect("write");

    let uwsgi = Uwsgi::start(App::Flask);
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "location /api/ {{ {pass} add_header X-Route api always; }}
            location ^~ /media/ {{ alias {media}/; add_header X-Route media always; }}
            location ~* \\.(css|png)$ {{ root {assets}; expires 30d; add_header X-Route assets always; }}
            location ~ ^/api/v[0-9]+/ {{ return 200 \"versioned\"; add_header X-Route versioned always; }}
            location = /exact.css {{ return 200 \"exact\"; add_header X-Route exact always; }}
            location ~ ^/(api|apx)$ {{ return 200 \"bare\"; add_header X-Route bare always; }}
            location ~ ^/p/([0-9]+)/?$ {{ return 301 /product/$1$is_args$args; }}
            location ~ ^/blog/(.+)\\.html$ {{ return 308 /news/$1; }}
            location ~ ^/old/ {{ return 301 /new$request_uri; }}
            location ~ ^/f/[^/]+/d$ {{ return 200 \"any byte\"; add_header X-Route bytes always; }}
            location ^~ /.well-known/ {{ alias {media}/; add_header X-Route acme always; }}
            location ~ /\\. {{ return 403; add_header X-Route dot always; }}",
            pass = uwsgi_pass(uwsgi.socket()),
            media = media.display(),
            assets = assets.display(),
        ),
    );
    let mark = |name: &str| {
        format!("response_headers = {{ \"X-Route\" = {{ value = \"{name}\", always = true }} }}\n")
    };
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/api/\"\nupstream = \"default\"\n{}\
         [[routes]]\npath = \"/media/\"\nno_regex = true\nstatic = \"{}\"\n{}\
         [[routes]]\nregex = '(?i)\\.(css|png)$'\nstatic = \"{}\"\nexpires = \"30d\"\n{}\
         [[routes]]\nregex = '^/api/v[0-9]+/'\nrespond = {{ status = 200, body = \"versioned\" }}\n{}\
         [[routes]]\npath = \"/exact.css\"\nexact = true\nrespond = {{ status = 200, body = \"exact\" }}\n{}\
         [[routes]]\nregex = '^/(api|apx)$'\nrespond = {{ status = 200, body = \"bare\" }}\n{}\
         [[routes]]\nregex = '^/p/([0-9]+)/?$'\nredirect = {{ to = \"/product/$1\" }}\n\
         [[routes]]\nregex = '^/blog/(.+)\\.html$'\nredirect = {{ to = \"/news/$1\", status = 308 }}\n\
         [[routes]]\nregex = '^/old/'\nredirect = {{ to = \"/new/\" }}\n\
         [[routes]]\nregex = '^/f/[^/]+/d$'\nrespond = {{ status = 200, body = \"any byte\" }}\n{}\
         [[routes]]\npath = \"/.well-known/\"\nno_regex = true\nstatic = \"{}\"\n{}\
         [[routes]]\nregex = '/\\.'\nrespond = {{ status = 403 }}\n{}",
        uwsgi.upstream(),
        mark("api"),
        media.display(),
        mark("media"),
        assets.display(),
        mark("assets"),
        mark("versioned"),
        mark("exact"),
        mark("bare"),
        mark("bytes"),
        media.display(),
        mark("acme"),
        mark("dot"),
    ))
    .start();

    // (request, status ringway must answer, the route that answers: None for the app)
    let cases: [(&str, &str, u16, Option<&str>); 26] = [
        // `location =` before any regex.
        ("GET", "/exact.css", 200, Some("exact")),
        // A regex route serves the whole path under its root.
        ("GET", "/static/site.css", 200, Some("assets")),
        ("HEAD", "/static/site.css", 200, Some("assets")),
        ("GET", "/static/%73ite.css", 200, Some("assets")),
        ("GET", "/static/../static/site.css", 200, Some("assets")),
        // `~*`: case-insensitive.
        ("GET", "/img/logo.PNG", 200, Some("assets")),
        ("GET", "/static/missing.css", 404, Some("assets")),
        ("GET", "/STATIC/SITE.CSS", 404, Some("assets")),
        // `^~`: the longest prefix stops the regexes.
        ("GET", "/media/a.css", 200, Some("media")),
        // A regex wins over the longest prefix, the first in the file's order.
        ("GET", "/api/v2/users", 200, Some("versioned")),
        ("GET", "/api/v2/site.css", 404, Some("assets")),
        ("GET", "/api/page/100", 404, Some("api")),
        // The slash redirect comes before the regexes, even one matching the path.
        ("GET", "/api", 301, Some("api")),
        ("GET", "/apx", 200, Some("bare")),
        // No regex matches: the longest prefix.
        ("GET", "/static/site.css/", 404, None),
        ("GET", "/page/7", 200, None),
        ("GET", "/page/100", 200, None),
        // A redirect names the pattern's groups (nginx `return 301 /product/$1$is_args$args`).
        ("GET", "/p/42", 301, None),
        ("GET", "/p/42/?ref=mail", 301, None),
        ("GET", "/blog/2024/hello.html", 308, None),
        // Without groups in `to`, the whole path follows it (nginx: `/new$request_uri`).
        ("GET", "/old/a/b?x=1", 301, None),
        // Patterns run on bytes, as nginx's PCRE without UTF mode: `[^/]` takes `%FF`.
        ("GET", "/f/%FF%FE/d", 200, Some("bytes")),
        // A static route's slash redirect does not come before the regexes (nginx's
        // `alias` locations have no `auto_redirect`).
        ("GET", "/.well-known", 403, Some("dot")),
        // Nor before a prefix route: the app's `/` takes it (Flask's 404 here).
        ("GET", "/media", 404, None),
        ("GET", "/.well-known/a.css", 200, Some("acme")),
        ("GET", "/.env", 403, Some("dot")),
    ];
    for (method, target, status, route) in cases {
        let name = format!("{method} {target}");
        let req = Req::new(method, target);
        let ours = roundtrip(ringway.addr(), &req);
        let theirs = roundtrip(nginx.addr(), &req);
        assert_eq!(
            facts(&ours),
            facts(&theirs),
            "{name}: ringway (left) and nginx\n{}",
            ringway.stderr()
        );
        assert_eq!(
            (ours.status, ours.header("x-route").as_deref()),
            (status, route),
            "{name}"
        );
    }
}
