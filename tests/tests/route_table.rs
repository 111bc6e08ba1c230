//! The route table of the config file (`[upstreams.NAME]` groups and `[[routes]]`), end to
//! end: which route a request takes (longest prefix, exact paths, the normalised path), what
//! each route does (mount, allow list, redirect, response headers, its own limits and
//! timeouts, operator params, its group's buffer size), the configurations refused at
//! start-up, and the per-route metrics.
//!
//! Each uWSGI runs with an instance name, so every answer from an app carries `X-Instance`:
//! an answer without it is ringway's own (no upstream was contacted). Requests sent with
//! `X-Dump-Environ: 1` get the environ the app saw, whatever the path. Every refused or
//! failing request is followed by a healthy one that must get 200.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringway_tests::checks::check_echo;
use ringway_tests::client::roundtrip_raw;
use ringway_tests::uwsgi::{INSTANCE_HEADER, UwsgiOptions};
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Req, Response, Ringway, Uwsgi, pattern, roundtrip};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `[upstreams.NAME]` with `uwsgi` as its one server, plus any `extra` lines.
fn group(name: &str, uwsgi: &Uwsgi, extra: &str) -> String {
    format!(
        "[upstreams.{name}]\nservers = [\"{}\"]\n{extra}\n",
        uwsgi.upstream()
    )
}

/// Starts two uWSGIs at once.
fn start_two(first: UwsgiOptions, second: UwsgiOptions) -> (Uwsgi, Uwsgi) {
    let mut both = Uwsgi::start_all(vec![first, second]);
    let second = both.pop().expect("two uWSGIs");
    let first = both.pop().expect("two uWSGIs");
    (first, second)
}

/// The uWSGI instance that answered, or `None` for ringway's own answer.
fn served_by(r: &Response) -> Option<String> {
    r.header(INSTANCE_HEADER)
}

/// `GET target` with `X-Dump-Environ: 1`: any path the app gets answers 200 with its environ.
fn dump(target: &str) -> Req {
    Req::get(target).header("X-Dump-Environ", "1")
}

/// Asserts `target` reached uWSGI `instance` and returns the environ the app saw.
fn environ_via(addr: SocketAddr, target: &str, instance: &str) -> Value {
    let r = roundtrip(addr, &dump(target));
    assert_eq!(
        (r.status, served_by(&r).as_deref()),
        (200, Some(instance)),
        "GET {target} should be served by uWSGI {instance:?}: {r:?}"
    );
    r.json()
}

/// Asserts `r` is ringway's own answer with `status`: no uWSGI was involved.
fn assert_own_answer(r: &Response, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert_eq!(
        served_by(r),
        None,
        "{what}: ringway answers this itself, yet uWSGI {:?} answered: {r:?}",
        served_by(r)
    );
}

/// The repo's check after a refused or failing request: `target` on a new connection gets
/// 200 from uWSGI `instance`.
fn assert_healthy(addr: SocketAddr, target: &str, instance: &str, after: &str) {
    let r = roundtrip(addr, &dump(target));
    assert_eq!(
        (r.status, served_by(&r).as_deref()),
        (200, Some(instance)),
        "healthy GET {target} after {after}: {r:?}"
    );
}

/// After `r` on `conn`: either it said `Connection: close` and the server closes, or the
/// connection is in sync and `next` on it gets 200 (a refused body must not be read as the
/// next request).
fn assert_usable_or_closed(conn: &mut Conn, r: &Response, next: &str, what: &str) {
    if r.says_close() {
        assert!(
            conn.closed_within(Duration::from_secs(3)),
            "{what}: said Connection: close but kept the connection open"
        );
        return;
    }
    conn.send(&dump(next).to_bytes())
        .unwrap_or_else(|e| panic!("{what}: kept alive (no Connection: close) but {e}"));
    let r = conn.read_response().unwrap_or_else(|e| {
        panic!("{what}: no Connection: close, yet the next request got no answer: {e}")
    });
    assert_eq!(
        r.status, 200,
        "{what}: the connection is out of sync afterwards: {r:?}"
    );
}

/// How many lines of uWSGI's request log name `target` (`GET /path => generated ...`).
fn logged_requests(uwsgi: &Uwsgi, target: &str) -> usize {
    let needle = format!(" {target} => ");
    uwsgi.log().matches(&needle).count()
}

/// Percent-decodes `text` (bytes; `%` not followed by two hex digits is kept).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Whether every byte of a Location value is allowed in a URL (RFC 3986: unreserved,
/// reserved, `%`), so no space, control byte or raw non-ASCII byte got through.
fn url_safe(location: &str) -> bool {
    location
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b))
}

// ---------------------------------------------------------------------------------------
// Which route a request takes
// ---------------------------------------------------------------------------------------

#[test]
fn the_longest_matching_prefix_wins_and_exact_routes_match_only_their_path() {
    let (app, api) = start_two(
        UwsgiOptions::named(App::Raw, "app"),
        UwsgiOptions::named(App::Raw, "api"),
    );
    // Shortest first, and the nested prefix before its parent: neither "first match in file
    // order" nor "last match" gives the answers below, only "longest prefix".
    let config = [
        group("app", &app, ""),
        group("api", &api, ""),
        r#"
[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/api/internal/"
upstream = "app"

[[routes]]
path = "/api/"
upstream = "api"

[[routes]]
path = "/environ"
exact = true
upstream = "api"
"#
        .to_owned(),
    ]
    .concat();
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    let table = [
        ("/", "app", "only / matches"),
        ("/api/", "api", "the prefix itself"),
        ("/api/users/7", "api", "under /api/"),
        (
            "/apix",
            "app",
            "a prefix is matched on the path, not on a name",
        ),
        ("/api/internal/", "app", "the longer prefix wins"),
        ("/api/internal/x", "app", "the longer prefix wins"),
        ("/api/internalx", "api", "/api/internal/ needs its slash"),
        ("/environ", "api", "the exact route"),
        ("/environ?q=1", "api", "the query is not part of the path"),
        ("/environ/x", "app", "an exact route matches only its path"),
        ("/environment", "app", "an exact route is no prefix"),
        ("/API/", "app", "paths are case-sensitive"),
    ];
    // A prefix route's path without its slash is sent to the path with it (nginx does this
    // for its proxied locations), with the query kept.
    for (target, location) in [
        ("/api", "/api/"),
        ("/api/internal?q=1", "/api/internal/?q=1"),
    ] {
        let r = roundtrip(addr, &dump(target));
        assert_eq!(r.status, 301, "GET {target}: {r:?}");
        assert_eq!(
            r.header("location").as_deref(),
            Some(location),
            "GET {target}: {r:?}"
        );
    }
    let mut wrong = Vec::new();
    for (target, instance, why) in table {
        let r = roundtrip(addr, &dump(target));
        if (r.status, served_by(&r).as_deref()) != (200, Some(instance)) {
            wrong.push(format!(
                "GET {target}: want 200 from {instance:?} ({why}), got {} from {:?}",
                r.status,
                served_by(&r)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "routing:\n{}\nringway stderr:\n{}",
        wrong.join("\n"),
        ringway.stderr()
    );
    // Without script_name the app gets the whole path: routing does not rewrite it.
    let env = environ_via(addr, "/api/users/7?a=b", "api");
    assert_eq!(env["PATH_INFO"], "/api/users/7", "{env}");
    assert_eq!(env["SCRIPT_NAME"], "", "{env}");
    assert_eq!(env["REQUEST_URI"], "/api/users/7?a=b", "{env}");
}

/// nginx's `server` blocks by `server_name`: the Host picks the routes naming it (an API on
/// its own name, `www` redirected to the bare name), every other Host the routes naming
/// none; an absolute-form target's authority counts as the Host; metrics tell the routes
/// apart by Host.
#[test]
fn the_host_picks_its_routes_as_server_name_picks_an_nginx_server() {
    let (app, api) = start_two(
        UwsgiOptions::named(App::Raw, "app"),
        UwsgiOptions::named(App::Raw, "api"),
    );
    let config = [
        group("app", &app, ""),
        group("api", &api, ""),
        r#"
[[routes]]
path = "/"
upstream = "app"

[[routes]]
hosts = ["api.example.test", "*.api.example.test"]
path = "/"
upstream = "api"

[[routes]]
hosts = ["www.example.test"]
path = "/"
redirect = { to = "https://example.test/" }
"#
        .to_owned(),
    ]
    .concat();
    let ringway = Ringway::with_config(config)
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    let addr = ringway.addr();
    for (host, instance) in [
        ("example.test", "app"),
        ("api.example.test", "api"),
        ("API.Example.Test:8080", "api"),
        ("eu.api.example.test", "api"),
        ("api.example.test.evil", "app"),
        ("127.0.0.1", "app"),
    ] {
        let r = roundtrip(addr, &dump("/x").host(Some(host)));
        assert_eq!(
            (r.status, served_by(&r).as_deref()),
            (200, Some(instance)),
            "Host {host}: {r:?}"
        );
    }
    let r = roundtrip(
        addr,
        &dump("http://api.example.test/x").host(Some("example.test")),
    );
    assert_eq!(
        served_by(&r).as_deref(),
        Some("api"),
        "the authority wins: {r:?}"
    );
    let r = roundtrip(addr, &Req::get("/a/b?c=d").host(Some("www.example.test")));
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://example.test/a/b?c=d")
    );
    // A request is counted once its last byte is written: the test may read the answer
    // first.
    poll_until(Duration::from_secs(5), || {
        roundtrip(ringway.metrics_addr(), &Req::get("/metrics"))
            .text()
            .contains("ringway_requests_total{route=\"www.example.test/\",code=")
    });
    let metrics = roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text();
    for label in ["/", "api.example.test/", "www.example.test/"] {
        let series = format!("ringway_requests_total{{route=\"{label}\",code=");
        assert!(metrics.contains(&series), "{series}:\n{metrics}");
    }
}

/// nginx's `return`: a health check answered on the main port, an empty 204, a refusal
/// with its error page, and 444's silent close; none reaches the app.
#[test]
fn a_respond_route_answers_as_nginx_return_does() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("403.html");
    std::fs::write(&page, "<p>no</p>").expect("page");
    let config = [
        format!("error_pages = {{ 403 = '{}' }}\n", page.display()),
        group("app", &app, ""),
        r#"
[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/health"
exact = true
respond = { status = 200, body = "ok\n" }
response_headers = { "Cache-Control" = "no-store" }

[[routes]]
path = "/preflight/"
respond = { status = 204 }
response_headers = { "Access-Control-Max-Age" = "600" }

[[routes]]
path = "/private/"
respond = { status = 403 }

[[routes]]
path = "/wp-login.php"
exact = true
respond = { status = 444 }
"#
        .to_owned(),
    ]
    .concat();
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    let mut conn = Conn::open(addr);
    for req in [Req::get("/health"), Req::new("HEAD", "/health")] {
        conn.send(&req.to_bytes()).expect("send");
        let r = conn.read_response_to(req.method()).expect("answer");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
        assert_eq!(r.header("content-length").as_deref(), Some("3"));
        let body: &[u8] = if req.method() == "HEAD" { b"" } else { b"ok\n" };
        assert_eq!(r.body, body, "{r:?}");
    }
    // `Content-Length: 0`, which many clients send with every bodiless POST, leaves nothing
    // unread: the connection is kept (it was closed), as nginx keeps it.
    let empty_post = Req::new("POST", "/health").header("Content-Length", "0");
    conn.send(&empty_post.to_bytes()).expect("send");
    let r = conn.read_response().expect("answer");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "{r:?}");
    assert!(!r.says_close(), "kept: {r:?}");
    // A 204 has no body and no length: the next answer on the connection is read right.
    let preflight = Req::new("OPTIONS", "/preflight/x");
    conn.send(&preflight.to_bytes()).expect("send");
    let r = conn.read_response_to(preflight.method()).expect("204");
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("content-length"), None, "{r:?}");
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("600"));
    conn.send(&Req::get("/private/x").to_bytes()).expect("send");
    let r = conn.read_response().expect("403");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, b"<p>no</p>", "the error page: {r:?}");
    for target in ["/health", "/preflight/x", "/private/x"] {
        assert_eq!(
            logged_requests(&app, target),
            0,
            "{target} never reached the app"
        );
    }
    // 444: closed, nothing said.
    let mut silent = Conn::open(addr);
    silent
        .send(&Req::get("/wp-login.php").to_bytes())
        .expect("send");
    assert!(silent.read_response().is_err(), "444 answers nothing");
    assert!(silent.closed_within(Duration::from_secs(5)), "and closes");
}

#[test]
fn a_request_no_route_matches_gets_404_without_reaching_uwsgi() {
    let api = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "api"));
    // No route for `/`: most paths match nothing.
    let config = group("api", &api, "")
        + r#"
[[routes]]
path = "/api/"
upstream = "api"

[[routes]]
path = "/exact"
exact = true
upstream = "api"
"#;
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    let r = roundtrip(addr, &dump("/api"));
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (301, Some("/api/")),
        "GET /api: the slash redirect, as nginx: {r:?}"
    );
    for target in ["/", "/other", "/ap", "/exact/more", "/exactly"] {
        let r = roundtrip(addr, &dump(target));
        assert_own_answer(&r, 404, &format!("GET {target} (no route)"));
        assert_healthy(addr, "/api/", "api", &format!("404 for {target}"));
    }
    // A body sent to nowhere is dealt with too: on the same connection the next request
    // must not start inside it.
    let mut conn = Conn::open(addr);
    conn.send(&Req::post("/other", &pattern(5000)).to_bytes())
        .expect("send");
    let r = conn.read_response().expect("an answer");
    assert_own_answer(&r, 404, "POST /other with a body (no route)");
    assert_usable_or_closed(&mut conn, &r, "/api/", "after POST /other");
    assert_healthy(addr, "/exact", "api", "404s");
    for target in ["/", "/other", "/ap", "/api", "/exact/more", "/exactly"] {
        assert_eq!(
            logged_requests(&api, target),
            0,
            "uWSGI saw GET {target}, which matches no route; its log:\n{}",
            api.log()
        );
    }
}

// ---------------------------------------------------------------------------------------
// allow lists
// ---------------------------------------------------------------------------------------

/// Routes with allow lists, all in front of uWSGI "app": `/admin/` excludes 127.0.0.1.
const ALLOW_ROUTES: &str = r#"
[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/api/"
upstream = "app"

[[routes]]
path = "/admin/"
upstream = "app"
allow = ["10.0.0.0/8"]

[[routes]]
path = "/staff/"
upstream = "app"
allow = ["10.0.0.0/8", "127.0.0.1"]

[[routes]]
path = "/lan/"
upstream = "app"
allow = ["192.168.0.0/16", "127.0.0.0/8"]
"#;

#[test]
fn allow_lists_refuse_unlisted_clients_with_403_and_admit_listed_ones() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let ringway = Ringway::with_config(group("app", &app, "") + ALLOW_ROUTES).start();
    let addr = ringway.addr();
    for target in ["/admin/", "/admin/users?id=1"] {
        let r = roundtrip(addr, &dump(target));
        assert_own_answer(
            &r,
            403,
            &format!("GET {target}: 127.0.0.1 is not in 10.0.0.0/8"),
        );
        assert_healthy(addr, "/", "app", &format!("403 for {target}"));
    }
    environ_via(addr, "/staff/", "app");
    environ_via(addr, "/staff/x", "app");
    environ_via(addr, "/lan/x", "app");
    // `/admin` is not under `/admin/`: as with nginx, it is sent there (where the allow list
    // applies), not served by `/`.
    let r = roundtrip(addr, &dump("/admin"));
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (301, Some("/admin/")),
        "GET /admin: {r:?}"
    );

    // A refused request with a body: the connection stays in sync or is closed.
    let mut conn = Conn::open(addr);
    conn.send(&Req::post("/admin/", &pattern(10_000)).to_bytes())
        .expect("send");
    let r = conn.read_response().expect("an answer");
    assert_own_answer(&r, 403, "POST /admin/ with a 10 kB body");
    assert_usable_or_closed(&mut conn, &r, "/", "after the refused POST");
    assert_healthy(addr, "/", "app", "the refused POST");
    assert_eq!(
        logged_requests(&app, "/admin/"),
        0,
        "a refused client must not reach uWSGI; its log:\n{}",
        app.log()
    );
}

/// nginx's `deny` rules (a block list, `deny all;`, an exception inside a broader range,
/// a hole in an allow list) against nginx's own, from several loopback addresses: the same
/// clients refused, and only those.
#[test]
fn deny_lists_refuse_the_clients_nginx_s_rules_refuse() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let rules = [
        (
            "/block/",
            "deny 127.0.0.5; deny 127.0.1.0/24; allow all;",
            r#"deny = ["127.0.0.5", "127.0.1.0/24"]"#,
        ),
        ("/closed/", "deny all;", r#"deny = ["all"]"#),
        (
            "/exception/",
            "allow 127.0.0.7; deny 127.0.0.0/24; allow all;",
            "allow = [\"127.0.0.7\", \"all\"]\ndeny = [\"127.0.0.0/24\"]",
        ),
        (
            "/hole/",
            "deny 127.0.0.9; allow 127.0.0.0/24; deny all;",
            "allow = [\"127.0.0.0/24\"]\ndeny = [\"127.0.0.9\"]",
        ),
    ];
    let mut routes = String::from("[[routes]]\npath = \"/\"\nupstream = \"app\"\n");
    let mut locations = String::new();
    for (path, nginx, ours) in rules {
        routes += &format!("[[routes]]\npath = \"{path}\"\nupstream = \"app\"\n{ours}\n");
        locations += &format!(
            "location {path} {{ {nginx} {} }}\n",
            ringway_tests::nginx::uwsgi_pass(app.socket())
        );
    }
    let ringway = Ringway::with_config(group("app", &app, "") + &routes).start();
    let nginx = ringway_tests::Nginx::start_with_locations(app.socket(), &locations);
    let status = |from: &str, addr: SocketAddr, path: &str| {
        let mut conn = Conn::open_from(from.parse().expect("an address"), addr);
        conn.send(&dump(path).to_bytes()).expect("send");
        conn.read_response().expect("an answer").status
    };
    const CLIENTS: [&str; 5] = [
        "127.0.0.1",
        "127.0.0.5",
        "127.0.0.7",
        "127.0.0.9",
        "127.0.1.1",
    ];
    let refused = [
        ("/block/", &["127.0.0.5", "127.0.1.1"][..]),
        ("/closed/", &CLIENTS),
        ("/exception/", &["127.0.0.1", "127.0.0.5", "127.0.0.9"]),
        ("/hole/", &["127.0.0.9", "127.0.1.1"]),
    ];
    let mut unlike = Vec::new();
    for (path, denied) in refused {
        for from in CLIENTS {
            let want = if denied.contains(&from) { 403 } else { 200 };
            let got = (
                status(from, nginx.addr(), path),
                status(from, ringway.addr(), path),
            );
            if got != (want, want) {
                unlike.push(format!(
                    "{path} from {from}: want {want}, (nginx, ringway) {got:?}"
                ));
            }
        }
    }
    assert!(unlike.is_empty(), "{}", unlike.join("\n"));
}

#[test]
fn dot_segments_and_escapes_cannot_dodge_an_allow_list() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let ringway = Ringway::with_config(group("app", &app, "") + ALLOW_ROUTES).start();
    let addr = ringway.addr();
    // Each normalises to a path under /admin/ (checked against PATH_INFO as both ringway and
    // nginx build it), so each must meet /admin/'s allow list, not /api/'s or /'s.
    let dodges = [
        "/api/../admin/",
        "/api/%2e%2e/admin/",
        "/api/%2E%2E/admin/x",
        "/api/./../admin/",
        "/api/..%2Fadmin/",
        "/api/x/../../admin/",
        "/x/../admin/",
        "//admin/",
        "/admin%2Fx",
        "/%61dmin/",
        "/admin/.",
        "/staff/../admin/",
    ];
    let mut dodged = Vec::new();
    for target in dodges {
        let r = roundtrip(addr, &dump(target));
        if r.status != 403 || served_by(&r).is_some() {
            let saw = (r.status == 200).then(|| r.json()["PATH_INFO"].clone());
            dodged.push(format!(
                "GET {target}: {} from {:?} (the app saw PATH_INFO {saw:?})",
                r.status,
                served_by(&r)
            ));
        }
        assert_healthy(addr, "/", "app", &format!("GET {target}"));
    }
    assert!(
        dodged.is_empty(),
        "these reached /admin/ past its allow list (want ringway's own 403):\n{}",
        dodged.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------------------

#[test]
fn redirects_keep_the_rest_of_the_path_and_the_query() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let config = group("app", &app, "")
        + r#"
[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/old/"
redirect = { to = "/new/", status = 301 }

[[routes]]
path = "/found/"
redirect = { to = "/elsewhere/", status = 302 }

[[routes]]
path = "/see/"
redirect = { to = "/other/", status = 303 }

[[routes]]
path = "/temp/"
redirect = { to = "/t/", status = 307 }

[[routes]]
path = "/perm/"
redirect = { to = "https://example.com/p/", status = 308 }
"#;
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    let exact = [
        ("/old/a/b?x=1", 301, "/new/a/b?x=1"),
        ("/old/", 301, "/new/"),
        ("/old/a%20b", 301, "/new/a%20b"),
        ("/old/a?x=%20&y", 301, "/new/a?x=%20&y"),
        ("/old/x/../y", 301, "/new/y"),
        ("/found/x", 302, "/elsewhere/x"),
        ("/see/x", 303, "/other/x"),
        ("/temp/x?q", 307, "/t/x?q"),
        // `to` is used as written: absolute stays absolute, relative gets no host.
        ("/perm/x", 308, "https://example.com/p/x"),
    ];
    for (target, status, location) in exact {
        let r = roundtrip(addr, &Req::get(target));
        assert_own_answer(&r, status, &format!("GET {target}"));
        assert_eq!(
            r.header("location").as_deref(),
            Some(location),
            "GET {target}: {r:?}"
        );
        assert_healthy(addr, "/", "app", &format!("the redirect of {target}"));
    }
    // Decoded bytes that are not safe in a URL go out percent-encoded (hex case free), CR LF
    // above all: a raw one would let a client write headers of its own into the answer.
    let encoded = [
        ("/old/caf%C3%A9", "/new/caf\u{e9}"),
        (
            "/old/x%0D%0ASet-Cookie:%20evil=1",
            "/new/x\r\nSet-Cookie: evil=1",
        ),
        ("/old/tab%09and%22quote%22", "/new/tab\tand\"quote\""),
    ];
    for (target, decoded) in encoded {
        let r = roundtrip(addr, &Req::get(target));
        assert_own_answer(&r, 301, &format!("GET {target}"));
        let location = r.header("location").unwrap_or_default();
        assert!(
            url_safe(&location) && percent_decode(&location) == decoded.as_bytes(),
            "GET {target}: want a Location that decodes to {decoded:?} with every unsafe byte \
             percent-encoded, got {location:?}: {r:?}"
        );
        assert!(
            r.header("set-cookie").is_none(),
            "GET {target}: a header came out of the path: {r:?}"
        );
        assert_healthy(addr, "/", "app", &format!("the redirect of {target}"));
    }
    // HEAD gets the same status and Location, without a body.
    let mut conn = Conn::open(addr);
    conn.send(&Req::new("HEAD", "/old/h").to_bytes())
        .expect("send");
    let r = conn.read_response_to("HEAD").expect("an answer");
    assert_own_answer(&r, 301, "HEAD /old/h");
    assert_eq!(r.header("location").as_deref(), Some("/new/h"), "{r:?}");
    assert_usable_or_closed(&mut conn, &r, "/", "after HEAD /old/h");
    // A body sent to a redirect is never read as the next request.
    let mut conn = Conn::open(addr);
    conn.send(&Req::post("/temp/upload", &pattern(20_000)).to_bytes())
        .expect("send");
    let r = conn.read_response().expect("an answer");
    assert_own_answer(&r, 307, "POST /temp/upload with a 20 kB body");
    assert_eq!(r.header("location").as_deref(), Some("/t/upload"), "{r:?}");
    assert_usable_or_closed(&mut conn, &r, "/", "after the redirected POST");
    assert_eq!(
        logged_requests(&app, "/old/a/b?x=1") + logged_requests(&app, "/temp/upload"),
        0,
        "a redirect route contacts no upstream; uWSGI log:\n{}",
        app.log()
    );
}

// ---------------------------------------------------------------------------------------
// response_headers
// ---------------------------------------------------------------------------------------

#[test]
fn response_headers_go_on_their_route_s_success_and_redirect_answers_only() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let config = String::from("max_body_size = \"1k\"\n")
        + &group("app", &app, "")
        + r#"
[[routes]]
path = "/"
upstream = "app"
response_headers = { "X-Frame-Options" = "DENY", "X-Content-Type-Options" = "nosniff" }

[[routes]]
path = "/api/"
upstream = "app"
script_name = "/api"

[[routes]]
path = "/admin/"
upstream = "app"
allow = ["10.0.0.0/8"]
response_headers = { "X-Frame-Options" = "DENY" }

[[routes]]
path = "/old/"
redirect = { to = "/new/", status = 301 }
response_headers = { "X-Frame-Options" = "DENY" }
"#;
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    let added = |r: &Response| {
        (
            r.header_all("x-frame-options"),
            r.header_all("x-content-type-options"),
        )
    };
    let both = (vec!["DENY".to_owned()], vec!["nosniff".to_owned()]);
    let none = (Vec::new(), Vec::new());

    // nginx's add_header (without `always`) list: these get the headers, once each.
    for code in [200, 201, 204, 206, 301, 302, 303, 304, 307, 308] {
        let r = roundtrip(addr, &Req::get(&format!("/status/{code}")));
        assert_eq!(r.status, code, "{r:?}");
        assert_eq!(added(&r), both, "app's {code} on the route `/`: {r:?}");
    }
    let mut conn = Conn::open(addr);
    conn.send(&Req::new("HEAD", "/").to_bytes()).expect("send");
    let r = conn.read_response_to("HEAD").expect("an answer");
    assert_eq!((r.status, added(&r)), (200, both.clone()), "HEAD /: {r:?}");

    // Errors, the app's or ringway's own, do not.
    for code in [400, 404, 418, 500, 503] {
        let r = roundtrip(addr, &Req::get(&format!("/status/{code}")));
        assert_eq!(r.status, code, "{r:?}");
        assert_eq!(added(&r), none, "app's {code}: not on errors: {r:?}");
    }
    let r = roundtrip(addr, &Req::get("/error"));
    assert_eq!((r.status, added(&r)), (502, none.clone()), "502: {r:?}");
    assert_healthy(addr, "/", "app", "the 502");
    let r = roundtrip(addr, &Req::post("/echo", &pattern(2048)));
    assert_eq!(
        (r.status, added(&r)),
        (413, none.clone()),
        "ringway's 413 on `/`: {r:?}"
    );
    assert_healthy(addr, "/", "app", "the 413");
    let r = roundtrip(addr, &Req::get("/admin/"));
    assert_eq!(
        (r.status, added(&r)),
        (403, none.clone()),
        "ringway's 403 on /admin/: {r:?}"
    );
    assert_healthy(addr, "/", "app", "the 403");

    // A redirect route's 301 gets its route's header.
    let r = roundtrip(addr, &Req::get("/old/x"));
    assert_eq!(
        (r.status, added(&r)),
        (301, (vec!["DENY".to_owned()], Vec::new())),
        "/old/'s redirect: {r:?}"
    );

    // Another route's answers never get them.
    for target in ["/api/", "/api/status/200", "/api/status/301"] {
        let r = roundtrip(addr, &Req::get(target));
        assert!(r.status < 400, "{target}: {r:?}");
        assert_eq!(
            added(&r),
            none,
            "{target}: /api/ has no response_headers: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Per-route limits and timeouts
// ---------------------------------------------------------------------------------------

#[test]
fn a_route_s_body_limit_overrides_the_global_one() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let config = String::from("max_body_size = \"1k\"\n")
        + &group("app", &app, "")
        + r#"
[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/upload/"
upstream = "app"
script_name = "/upload"
max_body_size = "100k"

[[routes]]
path = "/tiny/"
upstream = "app"
script_name = "/tiny"
max_body_size = "100"

[[routes]]
path = "/any/"
upstream = "app"
script_name = "/any"
max_body_size = "0"

[[routes]]
path = "/staff/"
upstream = "app"
allow = ["10.0.0.0/8"]

[[routes]]
path = "/fixed/"
respond = { status = 204 }
"#;
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    let body_50k = pattern(50_000);

    // 0 is no limit (nginx's `client_max_body_size 0`): more than the default 1m passes,
    // declared or chunked.
    let body_3m = pattern(3 << 20);
    let r = roundtrip(addr, &Req::post("/any/echo", &body_3m));
    check_echo(&r, &body_3m, "3 MiB to /any/ (max_body_size = 0)");
    let r = roundtrip(
        addr,
        &Req::post("/any/echo", b"").chunked(&[&body_3m[..1 << 20], &body_3m[1 << 20..]]),
    );
    check_echo(&r, &body_3m, "3 MiB chunked to /any/ (max_body_size = 0)");

    let r = roundtrip(addr, &Req::post("/upload/echo", &body_50k));
    check_echo(&r, &body_50k, "50 kB to /upload/ (limit 100k)");
    let r = roundtrip(
        addr,
        &Req::post("/upload/echo", b"").chunked(&[&body_50k[..20_000], &body_50k[20_000..]]),
    );
    check_echo(&r, &body_50k, "50 kB chunked to /upload/ (limit 100k)");
    let r = roundtrip(addr, &Req::post("/echo", &pattern(500)));
    check_echo(&r, &pattern(500), "500 B to / (global limit 1k)");
    let r = roundtrip(addr, &Req::post("/tiny/echo", &pattern(50)));
    check_echo(&r, &pattern(50), "50 B to /tiny/ (limit 100)");

    let refused: [(&str, Req); 8] = [
        ("50 kB to / (global 1k)", Req::post("/echo", &body_50k)),
        // As nginx checks `client_max_body_size` once the location is found: before its
        // access checks, its slash redirect and its `return`.
        (
            "50 kB to a route the client may not use",
            Req::post("/staff/echo", &body_50k),
        ),
        (
            "50 kB to a route's path without its slash",
            Req::post("/staff", &body_50k),
        ),
        (
            "50 kB to a route with a fixed answer",
            Req::post("/fixed/x", &body_50k),
        ),
        (
            "2 kB chunked to / (global 1k)",
            Req::post("/echo", b"").chunked(&[&pattern(1000), &pattern(1000)]),
        ),
        (
            "150 kB to /upload/ (100k)",
            Req::post("/upload/echo", &pattern(150_000)),
        ),
        (
            "200 B to /tiny/ (100)",
            Req::post("/tiny/echo", &pattern(200)),
        ),
        (
            "200 B chunked to /tiny/ (100)",
            Req::post("/tiny/echo", b"").chunked(&[&pattern(150), &pattern(50)]),
        ),
    ];
    for (what, req) in refused {
        let r = roundtrip(addr, &req);
        assert_own_answer(&r, 413, what);
        assert_healthy(addr, "/", "app", what);
    }

    // The route's limit is known from the head: 100-continue for the body /upload/ takes,
    // the final 413 at once for the same body to `/`.
    let head = |target: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            body_50k.len()
        )
    };
    let mut conn = Conn::open(addr);
    conn.send(head("/upload/echo").as_bytes()).expect("send");
    let r = conn.read_response().expect("an interim answer");
    assert_eq!(r.status, 100, "/upload/ takes 50 kB: {r:?}");
    conn.send(&body_50k).expect("send the body");
    let r = conn.read_response().expect("the final answer");
    check_echo(&r, &body_50k, "50 kB after 100-continue to /upload/");
    let mut conn = Conn::open(addr);
    conn.send(head("/echo").as_bytes()).expect("send");
    let r = conn.read_response().expect("an answer");
    assert_own_answer(&r, 413, "Expect: 100-continue with 50 kB to / (global 1k)");
    assert_healthy(addr, "/", "app", "the 413 instead of 100 Continue");
}

#[test]
fn a_route_s_read_timeout_gives_504_there_while_other_routes_wait() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let config = group("app", &app, "")
        + r#"
[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/short/"
upstream = "app"
script_name = "/short"
upstream_read_timeout = "1s"
"#;
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();

    let started = Instant::now();
    let r = roundtrip(addr, &Req::get("/short/slow?ms=3000"));
    let took = started.elapsed();
    assert_own_answer(
        &r,
        504,
        "/short/slow?ms=3000 with the route's 1 s read timeout",
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "the 504 comes after the route's 1 s, not the global 60 s nor the app's 3 s: {took:?}"
    );
    assert_healthy(addr, "/short/", "app", "the 504");

    // The same request on the route without a timeout of its own gets the global 60 s.
    let r = roundtrip(addr, &Req::get("/slow?ms=3000"));
    assert_eq!(
        (r.status, r.text().as_str(), served_by(&r).as_deref()),
        (200, "slept 3000 ms", Some("app")),
        "/slow?ms=3000 on `/`: {r:?}"
    );
    let r = roundtrip(addr, &Req::get("/short/slow?ms=10"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "slept 10 ms"),
        "a fast request on /short/: {r:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Mounts, params, groups
// ---------------------------------------------------------------------------------------

#[test]
fn a_mount_gives_the_app_script_name_and_the_rest_as_path_info() {
    let (flask, raw) = start_two(
        UwsgiOptions::named(App::Flask, "flask"),
        UwsgiOptions::named(App::Raw, "raw"),
    );
    let config = [
        group("flask", &flask, ""),
        group("raw", &raw, ""),
        r#"
[[routes]]
path = "/"
upstream = "flask"

[[routes]]
path = "/api/"
upstream = "flask"
script_name = "/api"

[[routes]]
path = "/raw/"
upstream = "raw"
script_name = "/raw"
"#
        .to_owned(),
    ]
    .concat();
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();

    // As Flask sees it: url_for under the mount.
    let urls = roundtrip(addr, &Req::get("/api/urls"));
    assert_eq!(served_by(&urls).as_deref(), Some("flask"), "{urls:?}");
    let urls = urls.json();
    assert_eq!(urls["relative"], "/api/bytes/7", "{urls}");
    assert_eq!(urls["external"], "http://localhost/api/bytes/7", "{urls}");
    assert_eq!(urls["script_root"], "/api", "{urls}");
    assert_eq!(urls["path"], "/urls", "{urls}");
    assert_eq!(urls["url"], "http://localhost/api/urls", "{urls}");
    // The same app outside the mount.
    let urls = roundtrip(addr, &Req::get("/urls")).json();
    assert_eq!(urls["relative"], "/bytes/7", "{urls}");
    assert_eq!(urls["script_root"], "", "{urls}");
    // Flask routes by PATH_INFO: the app's own routes work under the mount.
    let r = roundtrip(addr, &Req::get("/api/bytes/7"));
    assert_eq!((r.status, r.body.clone()), (200, pattern(7)), "{r:?}");
    let r = roundtrip(addr, &Req::get("/api/"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "/api/ is the app's `/`: {r:?}"
    );

    // The split, as the raw app sees it: PATH_INFO is the normalised path minus the mount.
    let table = [
        ("/raw/", "/", ""),
        ("/raw/environ/x?q=1", "/environ/x", "q=1"),
        ("/raw/./environ", "/environ", ""),
        ("/raw/a/../environ", "/environ", ""),
        ("/raw/environ/a%20b", "/environ/a b", ""),
        ("/raw/%65nviron", "/environ", ""),
        ("/raw//environ", "/environ", ""),
    ];
    for (target, path_info, query) in table {
        let env = environ_via(addr, target, "raw");
        let got = (
            env["SCRIPT_NAME"].as_str(),
            env["PATH_INFO"].as_str(),
            env["QUERY_STRING"].as_str(),
            env["REQUEST_URI"].as_str(),
        );
        assert_eq!(
            got,
            (Some("/raw"), Some(path_info), Some(query), Some(target)),
            "GET {target}: (SCRIPT_NAME, PATH_INFO, QUERY_STRING, REQUEST_URI)"
        );
    }
}

#[test]
fn params_reach_the_app_and_client_headers_never_become_such_vars() {
    let (raw, flask) = start_two(
        UwsgiOptions::named(App::Raw, "raw"),
        UwsgiOptions::named(App::Flask, "flask"),
    );
    let config = [
        group("raw", &raw, ""),
        group("flask", &flask, ""),
        r#"
[[routes]]
path = "/"
upstream = "raw"

[[routes]]
path = "/secure/"
upstream = "raw"
script_name = "/secure"
params = { UWSGI_SCHEME = "https", HTTPS = "on", X_OPERATOR = "set by the operator" }

[[routes]]
path = "/flask/"
upstream = "flask"
script_name = "/flask"
params = { UWSGI_SCHEME = "https" }

[[routes]]
path = "/legacy/"
upstream = "raw"
params = { SCRIPT_NAME = "/legacy-app" }
"#
        .to_owned(),
    ]
    .concat();
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    // Headers a client could hope to turn into the same vars; each value carries a marker.
    let marker = "client-marker";
    let hostile = |target: &str| {
        dump(target)
            .header("UWSGI-Scheme", &format!("http {marker}"))
            .header("Https", &format!("off {marker}"))
            .header("X-Operator", marker)
            .header("X_Operator", &format!("underscore {marker}"))
            .header("Script-Name", &format!("/{marker}"))
            .header("UWSGI-File", &format!("/etc/passwd {marker}"))
            .header("X-Forwarded-Proto", &format!("http {marker}"))
    };
    let leaks = |env: &Value| -> Vec<String> {
        env.as_object()
            .expect("environ object")
            .iter()
            .filter(|(k, v)| {
                !k.starts_with("HTTP_") && v.as_str().is_some_and(|v| v.contains(marker))
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    };

    let r = roundtrip(addr, &hostile("/secure/environ"));
    assert_eq!(served_by(&r).as_deref(), Some("raw"), "{r:?}");
    let env = r.json();
    // What uWSGI makes of them (measured on uWSGI 2.0): UWSGI_SCHEME and HTTPS=on both set
    // wsgi.url_scheme; the vars themselves stay in the environ.
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
    assert_eq!(env["UWSGI_SCHEME"], "https", "{env}");
    assert_eq!(env["HTTPS"], "on", "{env}");
    assert_eq!(env["X_OPERATOR"], "set by the operator", "{env}");
    assert_eq!(
        (&env["SCRIPT_NAME"], &env["PATH_INFO"]),
        (&Value::from("/secure"), &Value::from("/environ")),
        "params come on top of the mount: {env}"
    );
    assert!(
        leaks(&env).is_empty(),
        "client input in non-HTTP_ vars: {:?}",
        leaks(&env)
    );
    assert_eq!(
        env["HTTP_X_OPERATOR"], marker,
        "a plain header stays HTTP_: {env}"
    );

    // Without params the same headers change nothing.
    let r = roundtrip(addr, &hostile("/environ"));
    assert_eq!(served_by(&r).as_deref(), Some("raw"), "{r:?}");
    let env = r.json();
    assert_eq!(env["wsgi.url_scheme"], "http", "{env}");
    assert_eq!(env["SCRIPT_NAME"], "", "{env}");
    for key in ["UWSGI_SCHEME", "HTTPS", "X_OPERATOR", "UWSGI_FILE"] {
        assert_eq!(env.get(key), None, "{key} on a route without params: {env}");
    }
    assert!(
        leaks(&env).is_empty(),
        "client input in non-HTTP_ vars: {:?}",
        leaks(&env)
    );

    // SCRIPT_NAME as a param: the app gets it; PATH_INFO stays whole (no script_name).
    let env = environ_via(addr, "/legacy/x", "raw");
    assert_eq!(
        (&env["SCRIPT_NAME"], &env["PATH_INFO"]),
        (&Value::from("/legacy-app"), &Value::from("/legacy/x")),
        "{env}"
    );

    // Flask behind the https param and a mount builds https URLs under the mount.
    let urls = roundtrip(addr, &Req::get("/flask/urls"));
    assert_eq!(served_by(&urls).as_deref(), Some("flask"), "{urls:?}");
    let urls = urls.json();
    assert_eq!(
        urls["external"], "https://localhost/flask/bytes/7",
        "{urls}"
    );
    assert_eq!(urls["relative"], "/flask/bytes/7", "{urls}");
    assert_eq!(urls["url"], "https://localhost/flask/urls", "{urls}");
}

#[test]
fn each_upstream_group_has_its_own_buffer_size() {
    let mut big = UwsgiOptions::named(App::Raw, "big");
    big.buffer_size = Some(8192);
    let (big, small) = start_two(big, UwsgiOptions::named(App::Raw, "small"));
    let config = [
        group("big", &big, "buffer_size = 8192"),
        group("small", &small, "buffer_size = 4096"),
        r#"
[[routes]]
path = "/"
upstream = "small"

[[routes]]
path = "/big/"
upstream = "big"
script_name = "/big"
"#
        .to_owned(),
    ]
    .concat();
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    let with_header = |target: &str, n: usize| Req::get(target).header("X-Big", &"x".repeat(n));

    let r = roundtrip(addr, &with_header("/big/environ", 5000));
    assert_eq!(
        (r.status, served_by(&r).as_deref()),
        (200, Some("big")),
        "5000 bytes of header fit the 8192 group: {r:?}"
    );
    assert_eq!(r.json()["HTTP_X_BIG"].as_str().map(str::len), Some(5000));

    let r = roundtrip(addr, &with_header("/environ", 5000));
    assert_own_answer(&r, 431, "5000 bytes of header to the 4096 group");
    assert_healthy(addr, "/", "small", "the 431 of the 4096 group");
    let r = roundtrip(addr, &with_header("/big/environ", 9000));
    assert_own_answer(&r, 431, "9000 bytes of header to the 8192 group");
    assert_healthy(addr, "/big/", "big", "the 431 of the 8192 group");

    let r = roundtrip(addr, &with_header("/environ", 1000));
    assert_eq!(
        (r.status, served_by(&r).as_deref()),
        (200, Some("small")),
        "{r:?}"
    );
    // uWSGI drops an over-sized packet with this line: ringway never sent one.
    for uwsgi in [&big, &small] {
        assert!(
            !uwsgi.log().contains("invalid request block size"),
            "uWSGI {:?} got vars over its buffer:\n{}",
            uwsgi.instance(),
            uwsgi.log()
        );
    }
}

#[test]
fn a_group_of_two_servers_shares_the_requests() {
    let mut over_tcp = UwsgiOptions::named(App::Raw, "tcp");
    over_tcp.tcp = true;
    let (tcp, unix) = start_two(over_tcp, UwsgiOptions::named(App::Raw, "unix"));
    let config = format!(
        "[upstreams.pair]\nservers = [\"{}\", \"{}\"]\n\n[[routes]]\npath = \"/\"\nupstream = \"pair\"\n",
        tcp.upstream(),
        unix.upstream()
    );
    let ringway = Ringway::with_config(config).start();
    let mut served = BTreeMap::<String, usize>::new();
    for _ in 0..10 {
        let r = roundtrip(ringway.addr(), &Req::get("/"));
        assert_eq!(r.status, 200, "{r:?}");
        *served.entry(served_by(&r).unwrap_or_default()).or_default() += 1;
    }
    assert!(
        served.get("tcp").is_some_and(|&n| n >= 3) && served.get("unix").is_some_and(|&n| n >= 3),
        "10 requests round robin over a TCP and a unix server: {served:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Refused at start-up
// ---------------------------------------------------------------------------------------

/// A valid configuration the refusal cases break one way each. It also holds the same path
/// twice with different exactness, which is allowed.
fn valid_config(app: &Uwsgi) -> String {
    format!(
        r#"max_body_size = "1m"

[upstreams.app]
servers = ["{}"]
buffer_size = 4096

[[routes]]
path = "/admin/"
upstream = "app"
allow = ["10.0.0.0/8", "127.0.0.1"]
max_body_size = "2m"
upstream_read_timeout = "30s"

[[routes]]
path = "/admin/"
exact = true
upstream = "app"

[[routes]]
path = "/old/"
redirect = {{ to = "/new/", status = 301 }}

[[routes]]
path = "/"
upstream = "app"
"#,
        app.upstream()
    )
}

#[test]
fn bad_route_tables_are_refused_at_start_up_naming_the_key_and_the_file() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let valid = valid_config(&app);
    // The baseline starts and serves, so each refusal below is down to its one change.
    let ringway = Ringway::with_config(valid.clone()).start();
    environ_via(ringway.addr(), "/admin/", "app");
    drop(ringway);

    let replace = |from: &str, to: &str| {
        assert!(valid.contains(from), "test bug: {from:?} not in the config");
        valid.replacen(from, to, 1)
    };
    let append = |routes: &str| format!("{valid}\n{routes}");
    // (what, config, what stderr must name besides the file)
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "an unknown top-level key",
            format!("colour = \"blue\"\n{valid}"),
            vec!["colour"],
        ),
        (
            "an unknown key in an upstream",
            replace("buffer_size = 4096", "buffer_size = 4096\nweight = 3"),
            vec!["weight"],
        ),
        (
            "an unknown key in a route",
            replace("max_body_size = \"2m\"", "max_bodysize = \"2m\""),
            vec!["max_bodysize"],
        ),
        (
            "a route naming an upstream that does not exist",
            append("[[routes]]\npath = \"/ghost/\"\nupstream = \"nowhere\"\n"),
            vec!["nowhere"],
        ),
        (
            "two prefix routes with the same path",
            append(
                "[[routes]]\npath = \"/twice/\"\nupstream = \"app\"\n\n\
                 [[routes]]\npath = \"/twice/\"\nupstream = \"app\"\n",
            ),
            vec!["/twice/"],
        ),
        (
            "two exact routes with the same path",
            append(
                "[[routes]]\npath = \"/once\"\nexact = true\nupstream = \"app\"\n\n\
                 [[routes]]\npath = \"/once\"\nexact = true\nupstream = \"app\"\n",
            ),
            vec!["/once"],
        ),
        (
            "a CIDR with too many bits",
            replace("\"10.0.0.0/8\"", "\"10.0.0.0/33\""),
            vec!["10.0.0.0/33"],
        ),
        (
            "an allow entry that is no address",
            replace("\"127.0.0.1\"", "\"localhost\""),
            vec!["localhost"],
        ),
        (
            "a bad size in a route",
            replace("max_body_size = \"2m\"", "max_body_size = \"2 megs\""),
            vec!["max_body_size", "2 megs"],
        ),
        (
            "a bad buffer_size in an upstream",
            replace("buffer_size = 4096", "buffer_size = \"lots\""),
            vec!["buffer_size", "lots"],
        ),
        (
            "a bad global size",
            replace("max_body_size = \"1m\"", "max_body_size = \"1 meg\""),
            vec!["max_body_size", "1 meg"],
        ),
        (
            "a bad duration in a route",
            replace(
                "upstream_read_timeout = \"30s\"",
                "upstream_read_timeout = \"30 parsecs\"",
            ),
            vec!["upstream_read_timeout", "30 parsecs"],
        ),
        (
            "a route with neither upstream nor redirect",
            append("[[routes]]\npath = \"/lost/\"\n"),
            vec!["upstream", "redirect"],
        ),
    ];
    let mut problems = Vec::new();
    for (what, config, needles) in cases {
        let refusal = Ringway::with_config(config.clone()).start_refused();
        let file = refusal
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut missing: Vec<&str> = needles
            .iter()
            .copied()
            .filter(|n| !refusal.stderr.contains(n))
            .collect();
        if !refusal.stderr.contains(&file) {
            missing.push("the config file's path");
        }
        if refusal.status.success() || !missing.is_empty() {
            problems.push(format!(
                "{what}: exit {:?}, stderr lacks {missing:?}:\n{}",
                refusal.status, refusal.stderr
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} refusals wrong (each must exit non-zero, naming the key and the file):\n\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// One sample of the Prometheus text: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of a Prometheus text exposition (comments skipped).
fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
                None => (series, BTreeMap::new()),
            };
            Some(Sample {
                name: name.to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

/// `a="x",b="y \"q\""` into a map (escapes `\\`, `\"`, `\n` undone).
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

/// Whether `sample` carries every label of `want` with that value (others may be there too).
fn has_labels(sample: &Sample, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v))
}

/// The sum of the samples named `name` whose labels include all of `want`.
fn total(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && has_labels(s, want))
        .map(|s| s.value)
        .sum()
}

fn metrics_addr(log: &str) -> Option<SocketAddr> {
    let rest = log.split("metrics on http://").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

#[test]
fn metrics_count_requests_per_route_and_status_code() {
    let app = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    // No `/` route: some requests match nothing.
    let config = group("app", &app, "")
        + r#"
[[routes]]
path = "/api/"
upstream = "app"
script_name = "/api"

[[routes]]
path = "/app/"
upstream = "app"
script_name = "/app"

[[routes]]
path = "/admin/"
upstream = "app"
allow = ["10.0.0.0/8"]

[[routes]]
path = "/old/"
redirect = { to = "/new/", status = 301 }
"#;
    let ringway = Ringway::with_config(config)
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    let mut metrics = None;
    let found = poll_until(Duration::from_secs(10), || {
        metrics = metrics_addr(&ringway.stderr());
        metrics.is_some()
    });
    assert!(found, "no `metrics on` line:\n{}", ringway.stderr());
    let metrics = metrics.unwrap_or_else(|| unreachable!());
    let addr = ringway.addr();

    // Failed before routing: a second Host header is a 400 from the head alone.
    let r = roundtrip_raw(addr, b"GET /api/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .expect("an answer");
    assert_eq!(r.status, 400, "{r:?}");
    // (route label, code, how many, request); the healthy ones last, after the failures.
    let plan: [(&str, u16, usize, &str); 6] = [
        ("/admin/", 403, 2, "/admin/"),
        ("", 404, 3, "/nowhere"),
        ("/old/", 301, 2, "/old/x"),
        ("/app/", 418, 4, "/app/status/418"),
        ("/app/", 200, 3, "/app/environ"),
        ("/api/", 200, 7, "/api/"),
    ];
    for (_, code, n, target) in plan {
        for _ in 0..n {
            let r = roundtrip(addr, &Req::get(target));
            assert_eq!(r.status, code, "GET {target}: {r:?}");
        }
    }
    let expected: Vec<(&str, u16, usize)> = plan
        .iter()
        .map(|&(route, code, n, _)| (route, code, n))
        .chain([("", 400, 1)])
        .collect();
    let sent: usize = expected.iter().map(|e| e.2).sum();

    // A request is counted just after its last byte is written: wait for the last ones.
    let mut text = String::new();
    let mut samples = Vec::new();
    poll_until(Duration::from_secs(3), || {
        let r = roundtrip(metrics, &Req::get("/metrics"));
        text = r.text();
        samples = parse_samples(&text);
        total(&samples, "ringway_requests_total", &[]) >= sent as f64
    });
    let mut wrong = Vec::new();
    for &(route, code, n) in &expected {
        let code = code.to_string();
        let labels = [("route", route), ("code", code.as_str())];
        let with_le = [labels[0], labels[1], ("le", "+Inf")];
        for (series, got) in [
            (
                "ringway_requests_total",
                total(&samples, "ringway_requests_total", &labels),
            ),
            (
                "ringway_request_duration_seconds_count",
                total(&samples, "ringway_request_duration_seconds_count", &labels),
            ),
            (
                "ringway_request_duration_seconds_bucket{le=\"+Inf\"}",
                total(
                    &samples,
                    "ringway_request_duration_seconds_bucket",
                    &with_le,
                ),
            ),
        ] {
            if got != n as f64 {
                wrong.push(format!(
                    "{series} route={route:?} code={code}: {got}, want {n}"
                ));
            }
        }
        // The buckets of one series grow with `le`.
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| {
                s.name == "ringway_request_duration_seconds_bucket" && has_labels(s, &labels)
            })
            .filter_map(|s| {
                let le = s.labels.get("le")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, s.value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.len() < 2 || buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            wrong.push(format!(
                "route={route:?} code={code}: buckets not a cumulative histogram: {buckets:?}"
            ));
        }
    }
    let counted = total(&samples, "ringway_requests_total", &[]);
    if counted != sent as f64 {
        wrong.push(format!(
            "ringway_requests_total over all labels: {counted}, want the {sent} requests sent"
        ));
    }
    let request_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ringway_requests_total"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\n\nringway_requests_total lines:\n{}",
        wrong.join("\n"),
        request_lines.join("\n")
    );
}

/// The helpers above, checked on their own (they run without ringway's routes).
#[test]
fn the_helpers_decode_and_parse_what_they_claim() {
    assert_eq!(percent_decode("/a%20b%2fc%zz%+1%4"), b"/a b/c%zz%+1%4");
    assert_eq!(percent_decode("/caf%C3%A9"), "/caf\u{e9}".as_bytes());
    assert!(url_safe("/new/x%0D%0ASet-Cookie:%20a=1?q=%20&y"));
    for unsafe_location in ["/new/a b", "/new/x\r\ny", "/new/caf\u{e9}", "/new/\"q\""] {
        assert!(!url_safe(unsafe_location), "{unsafe_location:?}");
    }
    let text = "# HELP ringway_requests_total Requests.\n\
                # TYPE ringway_requests_total counter\n\
                ringway_requests_total{route=\"/api/\",code=\"200\"} 7\n\
                ringway_requests_total{code=\"404\",route=\"\"} 3\n\
                ringway_requests_total{route=\"/a,\\\"b\\\"/\",code=\"200\"} 1\n\
                ringway_request_duration_seconds_sum 0.5\n";
    let samples = parse_samples(text);
    assert_eq!(samples.len(), 4, "{samples:?}");
    assert_eq!(
        total(
            &samples,
            "ringway_requests_total",
            &[("route", "/api/"), ("code", "200")]
        ),
        7.0
    );
    // Label order does not matter; an empty value is a value.
    assert_eq!(
        total(
            &samples,
            "ringway_requests_total",
            &[("route", ""), ("code", "404")]
        ),
        3.0
    );
    assert_eq!(
        total(
            &samples,
            "ringway_requests_total",
            &[("route", "/a,\"b\"/")]
        ),
        1.0
    );
    assert_eq!(
        total(&samples, "ringway_requests_total", &[("code", "200")]),
        8.0
    );
    assert_eq!(
        total(&samples, "ringway_request_duration_seconds_sum", &[]),
        0.5
    );
}

/// nginx's `add_header ... always`: the header goes on every answer, the app's errors and
/// ringway's own refusals too, while one without `always` stays on the successful ones.
/// The app's answers and the 413 are compared with a real nginx configured the same way.
#[test]
fn always_headers_go_on_every_answer_as_nginx_adds_them() {
    let uwsgi = Uwsgi::start(App::Flask);
    let nginx = ringway_tests::Nginx::start_with_server_directives(
        uwsgi.socket(),
        "add_header X-Frame-Options DENY always; add_header X-Content-Type-Options nosniff; \
         client_max_body_size 1k;",
    );
    let ringway = Ringway::with_config(format!(
        "max_body_size = \"1k\"\nupstream = [\"{}\"]\n\
         response_headers = {{ \"X-Frame-Options\" = {{ value = \"DENY\", always = true }}, \
         \"X-Content-Type-Options\" = \"nosniff\" }}\n\
         [[routes]]\npath = \"/admin/\"\nupstream = \"default\"\nallow = [\"10.0.0.0/8\"]\n",
        uwsgi.upstream()
    ))
    .start();
    let added = |r: &Response| {
        (
            r.header_all("x-frame-options").len(),
            r.header_all("x-content-type-options").len(),
        )
    };
    let requests = [
        (Req::get("/status/200"), 200, (1, 1)),
        (Req::get("/status/404"), 404, (1, 0)),
        (Req::get("/status/500"), 500, (1, 0)),
        (Req::get("/status/503"), 503, (1, 0)),
        (Req::post("/echo", &pattern(2048)), 413, (1, 0)),
    ];
    for (req, status, expected) in &requests {
        let ours = roundtrip(ringway.addr(), req);
        let theirs = roundtrip(nginx.addr(), req);
        assert_eq!(
            (ours.status, added(&ours)),
            (*status, *expected),
            "{req:?}: {ours:?}"
        );
        assert_eq!(
            (theirs.status, added(&theirs)),
            (*status, *expected),
            "nginx: {theirs:?}"
        );
    }
    // ringway's own refusals: a route's allow list (the route's `always` headers), and a
    // request it cannot read (the top-level ones: no route made that answer).
    let r = roundtrip(ringway.addr(), &Req::get("/admin/"));
    assert_eq!((r.status, added(&r)), (403, (1, 0)), "{r:?}");
    let r = roundtrip_raw(
        ringway.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    )
    .expect("an answer");
    assert_eq!((r.status, added(&r)), (400, (1, 0)), "{r:?}");
}

/// `hide_headers`, nginx's `uwsgi_hide_header`: the app's header never reaches the client,
/// as nginx hides it; a route's own list replaces the top-level one (`[]`: none hidden).
#[test]
fn hidden_headers_never_reach_the_client_as_with_uwsgi_hide_header() {
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let nginx = ringway_tests::Nginx::start_with_server_directives(
        uwsgi.socket(),
        "uwsgi_hide_header x-instance;",
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\nhide_headers = [\"x-instance\"]\n\
         [[routes]]\npath = \"/status/\"\nupstream = \"default\"\nhide_headers = []\n\
         [[routes]]\npath = \"/report/\"\nupstream = \"default\"\n\
         hide_headers = [\"Set-Cookie\"]\n\
         [[routes]]\npath = \"/protected/\"\nstatic = '{}'\ninternal = true\n",
        uwsgi.upstream(),
        ringway_tests::paths::apps_dir().join("private").display()
    ))
    .start();
    for target in ["/", "/bytes/10", "/nothing-here"] {
        let ours = roundtrip(ringway.addr(), &Req::get(target));
        let theirs = roundtrip(nginx.addr(), &Req::get(target));
        assert_eq!(ours.status, theirs.status, "{target}");
        assert_eq!(ours.header(INSTANCE_HEADER), None, "{target}: {ours:?}");
        assert_eq!(theirs.header(INSTANCE_HEADER), None, "{target}: {theirs:?}");
    }
    // The route's own empty list: nothing hidden there.
    let r = roundtrip(ringway.addr(), &Req::get("/status/200"));
    assert_eq!(served_by(&r).as_deref(), Some("app"), "{r:?}");
    // The app's headers kept with an X-Accel-Redirect file are held to the list too (nginx
    // lets them through there): no cookie, the disposition kept.
    let r = roundtrip(ringway.addr(), &Req::get("/report/report.txt"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("set-cookie"), None, "{r:?}");
    assert!(r.header("content-disposition").is_some(), "{r:?}");
}
