//! Static files served by ringway itself, end to end: a real file tree per test
//! (`ringway_tests::static_tree`), ringway started from a config file with static routes,
//! real uWSGI behind it for the fallbacks and X-Accel-Redirect downloads, and a raw client
//! that checks every header and the exact bytes (`ringway_tests::static_expect`).
//!
//! The request tables (`ringway_tests::static_cases`) are shared with the parity test,
//! which runs them through nginx too; this file adds what nginx cannot show: brotli
//! siblings, Cache-Control durations, `immutable`, `dotfiles`, fallbacks, the internal route,
//! FIFOs that must not block, the memory a slow reader costs, the `--static` flag, the
//! per-route metrics.
//!
//! Routes of [`standard_routes`]: `/static/` (expires 30d, index), `/gz/` (the same, gzip
//! siblings), `/br/` (br and gzip siblings), `/protected/` (internal, the private dir), and
//! `/` to the app.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ringway_tests::client::READ_TIMEOUT;
use ringway_tests::static_cases::{
    ACCEL, Case, STATIC, accel_cases, brotli_cases, check_case, conditional_cases, file_cases,
    gzip_cases, range_cases,
};
use ringway_tests::static_config::{StaticRoute, config_with};
use ringway_tests::static_expect::{Expect, RouteShape, Served, assert_answer, check, media_type};
use ringway_tests::static_tree::{self as tree, StaticTree, parse_http_date};
use ringway_tests::uwsgi::{INSTANCE_HEADER, UwsgiOptions};
use ringway_tests::wait::poll_until;
use ringway_tests::{
    App, Conn, Nginx, Req, Response, Ringway, Uwsgi, pattern, roundtrip, sha256_hex,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A file tree, a named uWSGI (its answers carry `X-Instance: app`) and ringway in front.
struct Stack {
    tree: StaticTree,
    uwsgi: Uwsgi,
    ringway: Ringway,
}

impl Stack {
    fn addr(&self) -> SocketAddr {
        self.ringway.addr()
    }
}

/// The routes the shared tables assume, plus `/br/`.
fn standard_routes(tree: &StaticTree) -> Vec<StaticRoute> {
    vec![
        StaticRoute::new("/static/", &tree.root())
            .expires("30d")
            .index("index.html"),
        StaticRoute::new("/gz/", &tree.root())
            .expires("30d")
            .index("index.html")
            .precompressed(&["gzip"]),
        StaticRoute::new("/br/", &tree.root())
            .expires("30d")
            .index("index.html")
            .precompressed(&["br", "gzip"]),
        StaticRoute::new("/protected/", &tree.private()).internal(),
    ]
}

/// Builds a tree, starts `opts`' uWSGI, and ringway with the standard routes and `extra`
/// (which may use the tree).
fn stack_with(opts: UwsgiOptions, extra: impl FnOnce(&StaticTree) -> Vec<StaticRoute>) -> Stack {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(opts);
    let mut routes = standard_routes(&tree);
    routes.extend(extra(&tree));
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    Stack {
        tree,
        uwsgi,
        ringway,
    }
}

/// The standard stack in front of the raw app.
fn stack() -> Stack {
    stack_with(UwsgiOptions::named(App::Raw, "app"), |_| Vec::new())
}

/// Runs `cases` against ringway, each on a new connection; panics with every failing case.
fn run_table(stack: &Stack, cases: &[Case]) {
    let mut wrong = Vec::new();
    for case in cases {
        let mut conn = Conn::open(stack.addr());
        let r = conn
            .send(&case.req.to_bytes())
            .and_then(|()| conn.read_response_to(case.method()));
        match r {
            Ok(r) => {
                let problems = check_case(case, &r);
                if !problems.is_empty() {
                    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    wrong.push(format!(
                        "[{}] want {:?}\n    {}\n    got {r:?}",
                        case.name,
                        case.expect,
                        list.join("\n    ")
                    ));
                }
            }
            Err(e) => wrong.push(format!("[{}] no answer: {e}", case.name)),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases failed:\n{}\n\nringway's log:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n"),
        stack.ringway.stderr()
    );
}

/// Whether uWSGI answered (the app tags its answers), or ringway itself.
fn served_by_app(r: &Response) -> bool {
    r.header(INSTANCE_HEADER).as_deref() == Some("app")
}

/// The process's resident memory, from `/proc/PID/status`, in bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// Sets SO_RCVBUF, which also stops the kernel from growing it: a client that reads nothing
/// then holds little of the answer in its socket, and the rest has to wait in the server.
fn pin_receive_buffer(stream: &TcpStream, bytes: libc::c_int) {
    // SAFETY: setsockopt on an open socket we own, with a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

/// GET `target` on a new connection must be answered 200 with `body` within `limit`.
fn assert_served_within(addr: SocketAddr, target: &str, body: &[u8], limit: Duration, what: &str) {
    let started = Instant::now();
    let mut conn = Conn::open(addr);
    conn.set_read_timeout(limit + Duration::from_secs(1));
    conn.send(&Req::get(target).to_bytes()).expect("send");
    let r = conn
        .read_response()
        .unwrap_or_else(|e| panic!("{what}: GET {target} got no answer: {e}"));
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, body),
        "{what}: GET {target}: {r:?}"
    );
    assert!(
        took < limit,
        "{what}: GET {target} took {took:?} (limit {limit:?})"
    );
}

// ---------------------------------------------------------------------------------------
// The shared tables
// ---------------------------------------------------------------------------------------

#[test]
fn files_are_served_by_type_with_validators_and_exact_bytes_and_nothing_else_is() {
    let stack = stack();
    run_table(&stack, &file_cases(&stack.tree));
}

#[test]
fn conditional_requests_are_evaluated_in_rfc_9110_order() {
    let stack = stack();
    run_table(&stack, &conditional_cases(&stack.tree));
}

#[test]
fn one_range_gets_206_and_the_rest_get_the_whole_file_or_416() {
    let stack = stack();
    run_table(&stack, &range_cases(&stack.tree));
}

#[test]
fn gzip_siblings_are_served_when_accepted_with_their_own_validators() {
    let stack = stack();
    run_table(&stack, &gzip_cases(&stack.tree));
}

#[test]
fn brotli_is_preferred_then_gzip_then_the_plain_file() {
    let stack = stack();
    run_table(&stack, &brotli_cases(&stack.tree));
}

// ---------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------

/// The headers of an answer that GET and HEAD must share: all but Date and Expires (the
/// clock may tick between the two; Expires is checked to follow Date by the same amount) and
/// X-Request-ID (each request has its own).
fn comparable_headers(r: &Response) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &r.headers {
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "date" | "expires" | "x-request-id") {
            map.entry(name)
                .or_default()
                .push(String::from_utf8_lossy(value).into_owned());
        }
    }
    map
}

fn expires_after_date(r: &Response) -> Option<i64> {
    let date = parse_http_date(&r.header("date")?)?;
    let expires = parse_http_date(&r.header("expires")?)?;
    Some(expires as i64 - date as i64)
}

#[test]
fn head_gets_the_headers_of_get_and_no_body() {
    let stack = stack();
    let targets: [(&str, &[(&str, &str)]); 7] = [
        ("/static/hello.txt", &[]),
        ("/static/img/pixel.png", &[]),
        ("/static/docs/", &[]),
        ("/static/big/sparse.bin", &[]),
        ("/static/hello.txt", &[("Range", "bytes=2-5")]),
        ("/gz/css/site.css", &[("Accept-Encoding", "gzip")]),
        ("/br/css/site.css", &[("Accept-Encoding", "br")]),
    ];
    for (target, headers) in targets {
        let with = |method: &str| {
            headers
                .iter()
                .fold(Req::new(method, target), |r, (k, v)| r.header(k, v))
        };
        let get = if target.ends_with("sparse.bin") {
            // 1 GiB: take the headers of a GET without its body.
            let mut conn = Conn::open(stack.addr());
            conn.send(&with("GET").to_bytes()).expect("send");
            conn.read_response_to("HEAD").expect("GET head")
        } else {
            roundtrip(stack.addr(), &with("GET"))
        };
        let head = roundtrip(stack.addr(), &with("HEAD"));
        assert!(
            matches!(get.status, 200 | 206),
            "GET {target} {headers:?}: {get:?}"
        );
        assert_eq!(
            head.status, get.status,
            "HEAD {target}: {head:?} vs GET {get:?}"
        );
        assert_eq!(
            comparable_headers(&head),
            comparable_headers(&get),
            "HEAD {target} {headers:?} must carry GET's headers"
        );
        assert_eq!(
            expires_after_date(&head),
            expires_after_date(&get),
            "HEAD {target}: Expires - Date"
        );
        assert!(head.body.is_empty(), "HEAD {target}: a body: {head:?}");
        // And the connection is in sync after HEAD: no body bytes were sent after all.
        let mut conn = Conn::open(stack.addr());
        conn.send(
            &[
                with("HEAD").to_bytes(),
                Req::get("/static/hello.txt").to_bytes(),
            ]
            .concat(),
        )
        .expect("send");
        let answers = conn.read_responses(&["HEAD", "GET"]).expect("two answers");
        assert_eq!(
            (answers[1].status, answers[1].body.as_slice()),
            (200, tree::TEXT_BODY),
            "a GET pipelined after HEAD {target}: {answers:?}"
        );
    }
}

#[test]
fn other_methods_get_405_with_allow_and_the_connection_stays_in_sync() {
    let stack = stack();
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let mut conn = Conn::open(stack.addr());
        // A body the server must read past (or close after saying so).
        let req = Req::new(method, "/static/hello.txt").body(&pattern(3000));
        conn.send(&req.to_bytes()).expect("send");
        let r = conn.read_response().expect("an answer");
        assert_answer(&Expect::MethodNotAllowed, method, &r, STATIC, method);
        if r.says_close() {
            assert!(
                conn.closed_within(Duration::from_secs(3)),
                "{method}: said close, stayed open"
            );
            continue;
        }
        conn.send(&Req::get("/static/hello.txt").to_bytes())
            .expect("send the next request");
        let next = conn.read_response().expect("the next answer");
        assert_eq!(
            (next.status, next.body.as_slice()),
            (200, tree::TEXT_BODY),
            "GET after {method}'s 405 on the same connection: {next:?}"
        );
    }
}

#[test]
fn a_get_with_a_body_never_has_that_body_read_as_the_next_request() {
    // A body on a GET served from disk is never read as a request of its own (a smuggled
    // one, behind a proxy that shares connections): as nginx discards it, it is dropped
    // after the answer and the connection serves the next request. The body here asks for
    // a file that is not there: answered, it would be a 404 where the next request gets 200.
    let stack = stack();
    let smuggled = Req::get("/static/missing.txt?smuggled").to_bytes();
    let cases = [
        (
            "Content-Length",
            Req::get("/static/hello.txt").body(&smuggled),
        ),
        (
            "chunked",
            Req::get("/static/hello.txt").chunked(&[&smuggled]),
        ),
    ];
    for (framing, req) in cases {
        let mut conn = Conn::open(stack.addr());
        conn.send(&req.to_bytes()).expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, tree::TEXT_BODY),
            "GET with a {framing} body: {r:?}"
        );
        assert!(!r.says_close(), "{framing}: the connection is kept: {r:?}");
        conn.send(&Req::get("/static/hello.txt").to_bytes())
            .expect("send the next request");
        let next = conn.read_response().expect("the next answer");
        assert_eq!(
            next.status, 200,
            "{framing}: the next request's answer: {next:?}"
        );
        assert_eq!(conn.leftover(), b"", "{framing}: nothing after the answers");
    }
}

// ---------------------------------------------------------------------------------------
// Cache headers, dotfiles, fallback, internal
// ---------------------------------------------------------------------------------------

#[test]
fn expires_takes_s_m_h_d_and_immutable_adds_its_word() {
    let routes = |t: &StaticTree| {
        let root = t.root();
        vec![
            StaticRoute::new("/none/", &root),
            StaticRoute::new("/s90/", &root).expires("90s"),
            StaticRoute::new("/m2/", &root).expires("2m"),
            StaticRoute::new("/h1/", &root).expires("1h"),
            StaticRoute::new("/d7/", &root).expires("7d"),
            StaticRoute::new("/hashed/", &root)
                .expires("365d")
                .immutable(),
        ]
    };
    let stack = stack_with(UwsgiOptions::named(App::Raw, "app"), routes);
    let t = &stack.tree;
    let table: [(&str, Option<u64>, bool); 6] = [
        ("/none/", None, false),
        ("/s90/", Some(90), false),
        ("/m2/", Some(120), false),
        ("/h1/", Some(3600), false),
        ("/d7/", Some(7 * 86_400), false),
        ("/hashed/", Some(365 * 86_400), true),
    ];
    for (prefix, max_age, immutable) in table {
        let shape = RouteShape {
            max_age,
            immutable,
            ..RouteShape::default()
        };
        let target = format!("{prefix}{}", tree::TEXT);
        let r = roundtrip(stack.addr(), &Req::get(&target));
        assert_answer(&Expect::file(t, tree::TEXT), "GET", &r, shape, &target);
        // A 304 carries them too (RFC 9110 §15.4.5).
        let r = roundtrip(
            stack.addr(),
            &Req::get(&target).header("If-None-Match", &t.etag(tree::TEXT)),
        );
        assert_answer(
            &Expect::not_modified(t, tree::TEXT),
            "GET",
            &r,
            shape,
            &format!("{target} If-None-Match"),
        );
    }
}

/// `expires` in nginx's other forms (a negative time, `epoch`, `max`, `0`, `off`): the same
/// Cache-Control and the same Expires (against each answer's Date) as nginx's.
#[test]
fn expires_epoch_max_and_negative_times_are_nginx_s() {
    let forms = [
        ("stale", "-1h"),
        ("epoch", "epoch"),
        ("max", "max"),
        ("zero", "0"),
        ("off", "off"),
    ];
    let stack = stack_with(UwsgiOptions::named(App::Raw, "app"), |t| {
        forms
            .iter()
            .map(|(name, expires)| {
                StaticRoute::new(&format!("/{name}/"), &t.root()).expires(expires)
            })
            .collect()
    });
    let root = stack.tree.root();
    let locations: String = forms
        .iter()
        .map(|(name, expires)| {
            format!(
                "location /{name}/ {{ alias {}/; expires {expires}; }}\n",
                root.display()
            )
        })
        .collect();
    let nginx = Nginx::start_with_locations(stack.uwsgi.socket(), &locations);
    // Expires as seconds from the answer's Date (the fixed dates of epoch and max as they
    // are).
    let cache = |r: &Response| {
        let date = r.header("date").and_then(|d| parse_http_date(&d));
        let expires = r
            .header("expires")
            .map(|e| match (parse_http_date(&e), date) {
                (Some(at), Some(date)) if !e.contains("1970") && !e.contains("2037") => {
                    format!("Date{:+}", at as i64 - date as i64)
                }
                _ => e,
            });
        (r.header_all("cache-control"), expires)
    };
    for (name, _) in forms {
        let target = format!("/{name}/{}", tree::TEXT);
        let ours = roundtrip(stack.addr(), &Req::get(&target));
        let theirs = roundtrip(nginx.addr(), &Req::get(&target));
        assert_eq!((ours.status, theirs.status), (200, 200), "{target}");
        assert_eq!(cache(&ours), cache(&theirs), "{target}: ringway, nginx");
    }
    let stale = roundtrip(stack.addr(), &Req::get(&format!("/stale/{}", tree::TEXT)));
    assert_eq!(
        cache(&stale),
        (vec!["no-cache".to_owned()], Some("Date-3600".to_owned()))
    );
}

#[test]
fn dotfiles_are_served_only_where_the_route_allows_them() {
    let stack = stack_with(UwsgiOptions::named(App::Raw, "app"), |t| {
        vec![StaticRoute::new("/dot/", &t.root()).dotfiles()]
    });
    let t = &stack.tree;
    let shape = RouteShape::default();
    for rel in [tree::DOTFILE, tree::DOTDIR_FILE] {
        let r = roundtrip(stack.addr(), &Req::get(&format!("/dot/{rel}")));
        assert_answer(
            &Expect::file(t, rel),
            "GET",
            &r,
            shape,
            &format!("/dot/{rel}"),
        );
        let r = roundtrip(stack.addr(), &Req::get(&format!("/static/{rel}")));
        assert_answer(
            &Expect::NotFound,
            "GET",
            &r,
            STATIC,
            &format!("/static/{rel}"),
        );
    }
    // dotfiles = true opens dotfiles, not the way out of the root, nor directory listings.
    for target in [
        "/dot/link-to-secret.txt",
        "/dot/.git/",
        "/dot/../secret.txt",
    ] {
        let r = roundtrip(stack.addr(), &Req::get(target));
        assert!(
            matches!(r.status, 400 | 404) && !r.text().contains(t.marker()),
            "{target}: {r:?}"
        );
    }
}

#[test]
fn a_path_with_no_file_falls_back_to_the_app_with_its_full_path() {
    let stack = stack_with(UwsgiOptions::named(App::Raw, "app"), |t| {
        vec![
            StaticRoute::new("/fb/", &t.root())
                .index("index.html")
                .fallback("app"),
        ]
    });
    let t = &stack.tree;
    // Files are still served by ringway.
    for (target, rel) in [("/fb/hello.txt", tree::TEXT), ("/fb/docs/", tree::INDEX)] {
        let r = roundtrip(
            stack.addr(),
            &Req::get(target).header("X-Dump-Environ", "1"),
        );
        assert!(
            !served_by_app(&r),
            "{target} is a file, served by ringway: {r:?}"
        );
        assert_answer(
            &Expect::file(t, rel),
            "GET",
            &r,
            RouteShape::default(),
            target,
        );
    }
    // No file (or a directory without index): the app, with the path as the client sent it.
    let table = [
        ("/fb/no-such-file.css", "/fb/no-such-file.css", ""),
        ("/fb/bare/", "/fb/bare/", ""),
        (
            "/fb/deep/er/path?page=2&q=a%20b",
            "/fb/deep/er/path",
            "page=2&q=a%20b",
        ),
        ("/fb/caf%C3%A9/x", "/fb/caf\u{c3}\u{a9}/x", ""),
    ];
    for (target, path_info, query) in table {
        let r = roundtrip(
            stack.addr(),
            &Req::get(target).header("X-Dump-Environ", "1"),
        );
        assert!(
            r.status == 200 && served_by_app(&r),
            "GET {target} should fall back to the app: {r:?}"
        );
        let env = r.json();
        assert_eq!(
            (env["PATH_INFO"].as_str(), env["QUERY_STRING"].as_str()),
            (Some(path_info), Some(query)),
            "GET {target}: the environ the app saw: {env}"
        );
        assert_eq!(env["REQUEST_METHOD"], "GET", "{env}");
    }
    // A request the app answers with 404 itself still reaches it.
    let r = roundtrip(stack.addr(), &Req::get("/fb/nothing-here"));
    assert!(
        r.status == 404 && served_by_app(&r) && r.text() == "not found",
        "the app's own 404: {r:?}"
    );
}

#[test]
fn other_methods_reach_the_fallback_when_there_is_no_file_and_get_405_on_a_file() {
    // nginx's `location / { try_files $uri @app; }`: a POST to the app behind the files goes
    // through; a POST naming a file gets the static handler's 405.
    let stack = stack_with(UwsgiOptions::named(App::Raw, "app"), |t| {
        vec![StaticRoute::new("/fb/", &t.root()).fallback("app")]
    });
    for method in ["POST", "PUT", "DELETE"] {
        let req = Req::new(method, "/fb/form/submit")
            .header("X-Dump-Environ", "1")
            .body(b"a=1&b=2");
        let r = roundtrip(stack.addr(), &req);
        assert!(
            r.status == 200 && served_by_app(&r),
            "{method} with no file goes to the app: {r:?}"
        );
        let env = r.json();
        assert_eq!(
            (
                env["REQUEST_METHOD"].as_str(),
                env["PATH_INFO"].as_str(),
                env["CONTENT_LENGTH"].as_str()
            ),
            (Some(method), Some("/fb/form/submit"), Some("7")),
            "{env}"
        );
        let mut conn = Conn::open(stack.addr());
        conn.send(&Req::new(method, "/fb/hello.txt").to_bytes())
            .and_then(|()| conn.send(&Req::get("/fb/hello.txt").to_bytes()))
            .unwrap_or_else(|e| panic!("{method}: sending: {e}"));
        let refused = conn.read_response_to(method).expect("an answer");
        assert_eq!(refused.status, 405, "{method} on a file: {refused:?}");
        assert_eq!(refused.header("allow").as_deref(), Some("GET, HEAD"));
        assert!(!served_by_app(&refused), "{refused:?}");
        let next = conn.read_response_to("GET").expect("the next answer");
        assert_eq!(next.body, stack.tree.bytes(tree::TEXT), "{next:?}");
    }
}

/// The app's Set-Cookie kept on a file it hands out gets its route's `cookie_flags`, as
/// nginx rewrites cookies on that path too (found by review: it went out as the app
/// wrote it).
#[test]
fn x_accel_redirect_keeps_the_app_s_cookie_with_its_route_s_flags() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let routes = [StaticRoute::new("/protected/", &tree.private()).internal()];
    let config = format!(
        "cookie_flags = [\"~ secure samesite=strict\"]\n{}",
        config_with(&uwsgi, &routes)
    );
    let ringway = Ringway::with_config(config).start();
    let r = roundtrip(ringway.addr(), &Req::get("/report/report.pdf"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, tree.private_bytes(tree::REPORT), "{r:?}");
    assert_eq!(
        r.header_all("set-cookie"),
        vec!["report=report.pdf; HttpOnly; Path=/; Secure; SameSite=Strict".to_owned()],
        "{r:?}"
    );
}

#[test]
fn x_accel_redirect_after_a_post_sends_the_file() {
    // nginx turns the redirected request into a GET: the app took the POST, the client gets
    // the file.
    let stack = stack();
    let t = &stack.tree;
    let r = roundtrip(stack.addr(), &Req::post("/report/report.pdf", b"form=data"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, t.private_bytes(tree::REPORT), "{r:?}");
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("attachment; filename=\"report.pdf\""),
        "{r:?}"
    );
}

#[test]
fn an_x_accel_redirect_cycle_ends_with_500_after_ten_redirects() {
    // The app redirects to its own path, a file route whose file is missing and which falls
    // back to the app, which redirects again: nginx stops after 10 with a 500.
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let routes = [
        StaticRoute::new("/accel", &tree.root().join("no-such-file"))
            .set("exact", "true")
            .fallback("app"),
        StaticRoute::new("/loop/", &tree.root()).fallback("app"),
    ];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let mut conn = Conn::open(ringway.addr());
    // The redirect names itself, query and all (the fallback app is asked with the
    // redirect's query, as nginx asks it).
    conn.send(&Req::get("/accel?loop=1").to_bytes())
        .and_then(|()| conn.send(&Req::get("/accel?to=/loop/hello.txt").to_bytes()))
        .expect("sending");
    let r = conn.read_response_to("GET").expect("an answer");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(!served_by_app(&r), "ringway's own answer: {r:?}");
    // The log line reaches the harness through a pipe: waited for, not raced.
    let logged = poll_until(Duration::from_secs(5), || {
        ringway.stderr().contains("internal redirects")
    });
    assert!(logged, "the log says why:\n{}", ringway.stderr());
    // The connection carries on: a redirect that ends at a file is served.
    let r = conn.read_response_to("GET").expect("the next answer");
    assert_eq!(r.body, tree.bytes(tree::TEXT), "{r:?}");
    // A POST's body went to the app with the first exchange: its missing file is a 404, not
    // a second trip to the app waiting for a body that was already read.
    let r = roundtrip(
        ringway.addr(),
        &Req::post("/accel?to=/loop/missing", b"a=1&b=2"),
    );
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!served_by_app(&r), "{r:?}");
}

/// A file route's `fallback` app asked after an X-Accel-Redirect gets the path the redirect
/// named, as nginx's internal redirect makes it the request's URI (PATH_INFO; REQUEST_URI
/// stays the client's, nginx's `$request_uri`) and as a GET: it got the client's path, so
/// an app that hands out thumbnails it makes on a miss saw its own `/accel` again (found
/// by review).
#[test]
fn a_fallback_after_x_accel_redirect_is_asked_for_the_path_redirected_to() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    // The operator's params see what the redirect made of the request too, as nginx's
    // variables after its internal redirect.
    let routes = [StaticRoute::new("/environ/", &tree.root())
        .fallback("app")
        .set(
            "params",
            "{ X_URI = \"$uri$is_args$args\", X_METHOD = \"$request_method\", X_REQUEST_URI = \"$request_uri\" }",
        )];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/accel?to=/environ/thumbs/42.jpg"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let environ: serde_json::Value = serde_json::from_slice(&r.body).expect("the environ");
    assert_eq!(environ["PATH_INFO"], "/environ/thumbs/42.jpg", "{environ}");
    assert_eq!(environ["REQUEST_URI"], "/accel?to=/environ/thumbs/42.jpg");
    assert_eq!(environ["REQUEST_METHOD"], "GET", "{environ}");
    // As a GET, whatever the client's method (a bodiless one: a body went to the app),
    // as nginx turns the request into one before it redirects.
    let r = roundtrip(
        ringway.addr(),
        &Req::new("DELETE", "/accel?to=/environ/thumbs/43.jpg"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let environ: serde_json::Value = serde_json::from_slice(&r.body).expect("the environ");
    assert_eq!(environ["PATH_INFO"], "/environ/thumbs/43.jpg", "{environ}");
    assert_eq!(environ["REQUEST_METHOD"], "GET", "{environ}");
    // A HEAD stays one.
    let r = roundtrip(
        ringway.addr(),
        &Req::new("HEAD", "/accel?to=/environ/thumbs/44.jpg"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let environ: serde_json::Value =
        serde_json::from_str(&r.header("x-environ").expect("X-Environ")).expect("the environ");
    assert_eq!(environ["REQUEST_METHOD"], "HEAD", "{environ}");
    // The query is the one the redirect named (none here, the client's gone), as nginx
    // makes the redirected request's args.
    assert_eq!(environ["QUERY_STRING"], "", "{environ}");
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/accel?to=/environ/thumbs/45.jpg%3Fsize%3Dsmall"),
    );
    let environ: serde_json::Value = serde_json::from_slice(&r.body).expect("the environ");
    assert_eq!(environ["PATH_INFO"], "/environ/thumbs/45.jpg", "{environ}");
    assert_eq!(environ["QUERY_STRING"], "size=small", "{environ}");
    assert_eq!(
        environ["X_URI"], "/environ/thumbs/45.jpg?size=small",
        "{environ}"
    );
    assert_eq!(environ["X_METHOD"], "GET", "{environ}");
    assert_eq!(
        environ["X_REQUEST_URI"], "/accel?to=/environ/thumbs/45.jpg%3Fsize%3Dsmall",
        "{environ}"
    );
    // A POST with an empty body goes back to the app too (nothing of it was taken).
    let r = roundtrip(
        ringway.addr(),
        &Req::post("/accel?to=/environ/thumbs/46.jpg", b""),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let environ: serde_json::Value = serde_json::from_slice(&r.body).expect("the environ");
    assert_eq!(environ["PATH_INFO"], "/environ/thumbs/46.jpg", "{environ}");
    assert_eq!(
        (&environ["REQUEST_METHOD"], &environ["X_METHOD"]),
        (&"GET".into(), &"GET".into()),
        "{environ}"
    );
    // Asked for itself, the same route's fallback gets the client's path, as ever.
    let r = roundtrip(ringway.addr(), &Req::get("/environ/x?y=1"));
    let environ: serde_json::Value = serde_json::from_slice(&r.body).expect("the environ");
    assert_eq!(environ["PATH_INFO"], "/environ/x", "{environ}");
    assert_eq!(environ["QUERY_STRING"], "y=1", "{environ}");
}

/// An X-Accel-Redirect that names no path (a query alone) is refused with 404, as nginx
/// refuses it; it served `/` (here, a directory's index) before (found by review).
#[test]
fn an_x_accel_redirect_without_a_path_is_404() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/accel\"\nexact = true\nupstream = \"default\"\n\
         [[routes]]\npath = \"/\"\nstatic = {:?}\nindex = \"{}\"\n",
        uwsgi.upstream(),
        tree.root().display().to_string(),
        tree::TEXT
    ))
    .start();
    let r = roundtrip(ringway.addr(), &Req::get("/accel?to=%3Fx"));
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!served_by_app(&r), "{r:?}");
}

#[test]
fn x_accel_redirect_obeys_the_allow_list_of_the_route_it_lands_on() {
    // nginx runs the access phase again after an internal redirect.
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let routes = [StaticRoute::new("/protected/", &tree.private())
        .internal()
        .set("allow", "[\"10.0.0.0/8\"]")];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let r = roundtrip(ringway.addr(), &Req::get("/report/report.pdf"));
    assert_eq!(r.status, 403, "{r:?}");
    assert!(!r.text().contains(tree.private_marker()), "{r:?}");
}

#[test]
fn a_directory_s_index_is_routed_again_and_checked_by_its_own_route() {
    // nginx's index is an internal redirect: `/site/docs/` becomes `/site/docs/index.html`,
    // which an exact static route of its own (here an allow list the test's client is not
    // in) takes over. An index path that only an app's route takes is served by the
    // directory's route, as before (nginx would pass it to the app).
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let routes = [
        StaticRoute::new("/site/", &tree.root()).index("index.html"),
        StaticRoute::new(&format!("/site/{}", tree::INDEX), &tree.root())
            .set("exact", "true")
            .set("allow", "[\"10.0.0.0/8\"]"),
        StaticRoute::new("/other/", &tree.root()).index("index.html"),
    ];
    let app_route = format!(
        "[[routes]]\npath = \"/other/{}\"\nexact = true\nupstream = \"app\"\n",
        tree::INDEX
    );
    let config = config_with(&uwsgi, &routes) + &app_route;
    let ringway = Ringway::with_config(config).start();
    let index = format!("/site/{}/", tree::INDEXED_DIR);
    let r = roundtrip(ringway.addr(), &Req::get(&index));
    assert_eq!(r.status, 403, "{r:?}");
    let direct = format!("/site/{}", tree::INDEX);
    assert_eq!(roundtrip(ringway.addr(), &Req::get(&direct)).status, 403);
    let other = format!("/other/{}/", tree::INDEXED_DIR);
    let r = roundtrip(ringway.addr(), &Req::get(&other));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        tree.bytes(tree::INDEX),
        "the file, not the app: {r:?}"
    );
}

/// A list of index names is tried in its order, each name missing giving way to the next,
/// as nginx's `index index.html index.htm;` (the list a stock nginx site carries), and
/// both proxies serve the same file for each directory.
#[test]
fn index_names_are_tried_in_order_as_nginx_tries_its_list() {
    let tree = StaticTree::build();
    tree.add_file("both/index.html", b"both: the html one\n");
    tree.add_file("both/index.htm", b"both: the htm one\n");
    tree.add_file("legacy/index.htm", b"legacy: only an htm\n");
    tree.add_file("neither/page.txt", b"no index here\n");
    let uwsgi = Uwsgi::start(App::Raw);
    let routes = [
        StaticRoute::new("/site/", &tree.root()).set("index", "[\"index.html\", \"index.htm\"]")
    ];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let location = format!(
        "location /site/ {{ alias {}/; include /etc/nginx/mime.types; \
         index index.html index.htm; }}",
        tree.root().display()
    );
    let nginx = Nginx::start_with_locations(uwsgi.socket(), &location);
    for (dir, body) in [
        ("both", &b"both: the html one\n"[..]),
        ("legacy", b"legacy: only an htm\n"),
    ] {
        let path = format!("/site/{dir}/");
        for (who, addr) in [("ringway", ringway.addr()), ("nginx", nginx.addr())] {
            let r = roundtrip(addr, &Req::get(&path));
            assert_eq!((r.status, &r.body[..]), (200, body), "{who} {path}: {r:?}");
            let content_type = r.header("content-type").unwrap_or_default();
            assert_eq!(media_type(&content_type).0, "text/html", "{who} {path}");
        }
    }
    // No name there: ringway's 404, where nginx answers 403 (the static parity test's
    // departure for a directory without index).
    let r = roundtrip(ringway.addr(), &Req::get("/site/neither/"));
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!r.text().contains("page.txt"), "no listing: {r:?}");
    assert_eq!(
        roundtrip(nginx.addr(), &Req::get("/site/neither/")).status,
        403
    );
}

#[test]
fn x_accel_redirect_after_a_post_is_judged_a_get_by_limit_except() {
    // nginx makes the redirected request a GET before the file route's access phase: a
    // file route that takes GET only serves what the app hands out after a POST.
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let routes = [StaticRoute::new("/protected/", &tree.private())
        .internal()
        .set("limit_except", "{ methods = [\"GET\"] }")];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let r = roundtrip(
        ringway.addr(),
        &Req::post("/report/report.pdf", b"form=data"),
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", ringway.stderr());
    assert_eq!(r.body, tree.private_bytes(tree::REPORT), "{r:?}");
}

#[test]
fn x_accel_redirect_obeys_the_limit_req_of_the_route_it_lands_on() {
    // nginx runs the preaccess phase again after an internal redirect: the file route's
    // limit counts a request the app's route did not limit.
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let routes = [StaticRoute::new("/protected/", &tree.private())
        .internal()
        .set("limit_req", "{ rate = \"1r/m\" }")];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let r = roundtrip(ringway.addr(), &Req::get("/report/report.pdf"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains(tree.private_marker()), "{r:?}");
    let r = roundtrip(ringway.addr(), &Req::get("/report/report.pdf"));
    assert_eq!(r.status, 429, "{r:?}");
    assert!(!r.text().contains(tree.private_marker()), "{r:?}");
}

#[test]
fn a_replaced_file_is_noticed_once_its_cache_entry_expires() {
    // The open-file cache trusts an entry for one second, then opens the path again.
    let stack = stack();
    let path = stack.tree.root().join("deploy.js");
    std::fs::write(&path, b"old build\n").expect("writing the file");
    let target = "/static/deploy.js";
    let r = roundtrip(stack.addr(), &Req::get(target));
    assert_eq!(r.body, b"old build\n", "{r:?}");
    // A deploy renames the new build into place.
    let next = stack.tree.root().join("deploy.js.new");
    std::fs::write(&next, b"new build, longer\n").expect("writing the new file");
    std::fs::rename(&next, &path).expect("renaming it into place");
    let replaced = Instant::now();
    let mut last = None;
    let changed = poll_until(Duration::from_secs(5), || {
        let r = roundtrip(stack.addr(), &Req::get(target));
        let new = r.body == b"new build, longer\n";
        last = Some(r);
        new
    });
    // Five seconds: the cache's one, with room for a loaded machine.
    assert!(
        changed,
        "still the old file {:?} after the rename: {last:?}",
        replaced.elapsed()
    );
}

/// A file too big to be kept in memory, written in place (`cp` over it, `rsync --inplace`:
/// the same inode), is served as it is now at once, its length and validators with it:
/// never its new bytes under the old length, cached so for the route's whole `expires`.
#[test]
fn a_large_file_written_in_place_is_served_whole_and_new_at_once() {
    let stack = stack();
    let path = stack.tree.root().join("in-place.bin");
    let old = pattern(100 * 1024);
    std::fs::write(&path, &old).expect("writing the file");
    let target = "/static/in-place.bin";
    let r = roundtrip(stack.addr(), &Req::get(target));
    assert!(
        r.status == 200 && r.body == old,
        "the old file: {}",
        r.status
    );
    let etag = r.header("etag");
    // Written over, longer, within the cache's second.
    let new: Vec<u8> = pattern(150 * 1024).iter().map(|b| b ^ 0x55).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("opening it for writing");
    file.write_all(&new).expect("writing over it");
    drop(file);
    let r = roundtrip(stack.addr(), &Req::get(target));
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body.len(), sha256_hex(&r.body)),
        (new.len(), sha256_hex(&new)),
        "the new file whole"
    );
    assert_ne!(r.header("etag"), etag, "with its own ETag");
}

/// Deploys that replace the route's directory: a `current` symlink swapped to a new
/// release (`ln -sfn`), and a new build renamed over the old directory. nginx opens the path
/// at every request; ringway looks at it once a second, so the new files are served within
/// seconds, with no reload.
#[test]
fn a_replaced_root_directory_is_served_without_a_reload() {
    let top = tempfile::tempdir().expect("temp dir");
    // A release with app.js and a file of its own, `own`.
    let release = |name: &str, own: &str, body: &str| {
        let dir = top.path().join(name);
        std::fs::create_dir_all(&dir).expect("release dir");
        std::fs::write(dir.join("app.js"), body).expect("app.js");
        std::fs::write(dir.join(own), body).expect("its own file");
    };
    release("releases/1", "1.css", "one\n");
    let current = top.path().join("current");
    std::os::unix::fs::symlink("releases/1", &current).expect("current -> releases/1");
    release("public", "public.css", "public one\n");
    let uwsgi = Uwsgi::start(App::Raw);
    let routes = [
        StaticRoute::new("/current/", &current),
        StaticRoute::new("/public/", &top.path().join("public")),
        // One file through the symlink (nginx's `location = /app.js { alias ...; }`).
        StaticRoute::new("/app.js", &current.join("app.js")).set("exact", "true"),
    ];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let body = |path: &str| {
        let r = roundtrip(ringway.addr(), &Req::get(path));
        (r.status, r.text())
    };
    assert_eq!(body("/current/app.js"), (200, "one\n".to_owned()));
    assert_eq!(body("/app.js"), (200, "one\n".to_owned()));
    assert_eq!(body("/public/app.js"), (200, "public one\n".to_owned()));

    release("releases/2", "2.css", "two\n");
    std::os::unix::fs::symlink("releases/2", top.path().join("next")).expect("next");
    std::fs::rename(top.path().join("next"), &current).expect("swap current");
    release("build", "build.css", "public two\n");
    std::fs::remove_dir_all(top.path().join("public")).expect("rm -rf public");
    std::fs::rename(top.path().join("build"), top.path().join("public")).expect("mv build");

    let mut last = Vec::new();
    let served = poll_until(Duration::from_secs(5), || {
        last = [
            "/current/app.js",
            "/current/2.css",
            "/public/app.js",
            "/public/build.css",
            "/app.js",
        ]
        .map(body)
        .to_vec();
        last.iter().all(|(status, _)| *status == 200) && last[4].1 == "two\n"
    });
    assert!(served, "the new directories' files: {last:?}");
    assert_eq!(last[0].1, "two\n");
    assert_eq!(last[2].1, "public two\n");
    assert_eq!(last[4].1, "two\n", "the one file, through the new release");
    assert_eq!(body("/current/1.css").0, 404, "the old release's own file");
    assert!(
        ringway.wait_for_log("static root replaced", Duration::from_secs(5)),
        "{}",
        ringway.stderr()
    );
}

#[test]
fn an_internal_route_answers_404_to_every_direct_request() {
    let stack = stack();
    let t = &stack.tree;
    let reqs = [
        Req::get("/protected/report.pdf"),
        Req::get("/protected/notes.txt"),
        Req::get("/protected/"),
        Req::get("/protected/no-such-file"),
        Req::new("HEAD", "/protected/report.pdf"),
        Req::get("/protected/report.pdf").header("Range", "bytes=0-3"),
        Req::get("/protected/report.pdf").header("If-None-Match", "*"),
        Req::get("/protected/report.pdf").header("X-Accel-Redirect", "/protected/report.pdf"),
        Req::get("/protected/%72eport.pdf"),
        Req::get("/static/../protected/report.pdf"),
    ];
    for req in reqs {
        let r = roundtrip(stack.addr(), &req);
        let what = format!("{req:?}");
        assert_answer(&Expect::NotFound, req.method(), &r, STATIC, &what);
        assert!(!r.text().contains(t.private_marker()), "{what}: {r:?}");
        assert!(!served_by_app(&r), "{what}: the app answered: {r:?}");
    }
}

// ---------------------------------------------------------------------------------------
// X-Accel-Redirect
// ---------------------------------------------------------------------------------------

#[test]
fn x_accel_redirect_from_the_flask_app_serves_the_file_with_the_apps_headers() {
    let stack = stack_with(UwsgiOptions::named(App::Flask, "app"), |_| Vec::new());
    // What the app itself answers: the headers ringway must act on, and a body to drop.
    let direct = stack
        .uwsgi
        .get("/report/report.pdf")
        .expect("the app's answer");
    assert_eq!(
        direct.header("x-accel-redirect").as_deref(),
        Some("/protected/report.pdf"),
        "{direct:?}"
    );
    run_table(&stack, &accel_cases(&stack.tree));
}

#[test]
fn x_accel_redirect_without_a_content_type_types_the_file_by_its_extension() {
    // The raw app can leave Content-Type out (only without wsgiref.validate).
    let opts = UwsgiOptions {
        validate: false,
        ..UwsgiOptions::named(App::Raw, "app")
    };
    let stack = stack_with(opts, |_| Vec::new());
    let t = &stack.tree;
    let notes = t.private().join(tree::NOTES);
    let r = roundtrip(stack.addr(), &Req::get("/report/notes.txt?type=none"));
    let expect = Expect::Served(Served {
        file: notes,
        media: &["text/plain"],
        charset: Some("utf-8"),
        coding: None,
        range: None,
    });
    let problems = check(&expect, "GET", &r, ACCEL);
    assert!(
        problems.is_empty(),
        "X-Accel-Redirect with no Content-Type from the app: {problems:?}\n{r:?}"
    );
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("attachment; filename=\"notes.txt\""),
        "{r:?}"
    );
    // With one: the app's wins (the raw app says application/pdf).
    let r = roundtrip(stack.addr(), &Req::get("/report/notes.txt"));
    assert_eq!(
        r.header("content-type")
            .map(|v| media_type(&v).0)
            .as_deref(),
        Some("application/pdf"),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Special files, slow readers
// ---------------------------------------------------------------------------------------

#[test]
fn fifos_sockets_and_devices_get_404_without_blocking_anything() {
    let stack = stack();
    let t = &stack.tree;
    for rel in [tree::FIFO, tree::SOCKET, tree::DEVICE] {
        // The request for the special file, left waiting on its own connection...
        let mut waiting = Conn::open(stack.addr());
        waiting
            .send(&Req::get(&format!("/static/{rel}")).to_bytes())
            .expect("send");
        // ...must not hold up another request on the one worker.
        assert_served_within(
            stack.addr(),
            "/static/hello.txt",
            tree::TEXT_BODY,
            Duration::from_secs(1),
            &format!("while /static/{rel} is being answered"),
        );
        waiting.set_read_timeout(Duration::from_secs(3));
        let r = waiting
            .read_response()
            .unwrap_or_else(|e| panic!("/static/{rel}: no answer within 3 s: {e}"));
        assert_answer(
            &Expect::NotFound,
            "GET",
            &r,
            STATIC,
            &format!("/static/{rel}"),
        );
    }
    // Many at once, on a single worker.
    let waiting: Vec<Conn> = (0..20)
        .map(|_| {
            let mut conn = Conn::open(stack.addr());
            conn.send(&Req::get("/static/fifo").to_bytes())
                .expect("send");
            conn
        })
        .collect();
    assert_served_within(
        stack.addr(),
        "/static/hello.txt",
        tree::TEXT_BODY,
        Duration::from_secs(1),
        "while 20 FIFO requests are in",
    );
    for mut conn in waiting {
        conn.set_read_timeout(Duration::from_secs(3));
        let r = conn.read_response().expect("an answer for the FIFO");
        assert_eq!(r.status, 404, "{r:?}");
    }
    // No descriptor of the FIFO is kept once it was answered: each would be leaked.
    let root = std::fs::canonicalize(t.root()).expect("canonical root");
    let fifo = root.join(tree::FIFO).display().to_string();
    let mut held = Vec::new();
    poll_until(Duration::from_secs(2), || {
        held = stack.ringway.open_files_under(&root);
        held.retain(|f| f.target == fifo);
        held.is_empty()
    });
    assert!(
        held.is_empty(),
        "ringway still holds the FIFO open: {held:?}"
    );
}

/// Opens `n` connections that each ask for `target` and read nothing (their receive buffers
/// pinned small), and returns them.
fn stalled_readers(addr: SocketAddr, target: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut stream = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} to {addr}: {e}"));
            pin_receive_buffer(&stream, 16 * 1024);
            stream
                .set_write_timeout(Some(READ_TIMEOUT))
                .expect("write timeout");
            stream
                .write_all(&Req::get(target).to_bytes())
                .expect("send the request");
            stream
        })
        .collect()
}

const TEN_MIB: usize = 10 << 20;
const SLOW_READERS: usize = 100;
/// How much resident memory 100 stalled 10 MiB downloads may add: a file is read as the
/// socket takes it, not loaded whole (100 × 10 MiB would be a gigabyte).
const SLOW_READER_RSS_LIMIT: u64 = 16 << 20;

/// RSS of `pid` before and after [`SLOW_READERS`] clients stalled on `target` for 2 s.
fn rss_with_slow_readers(addr: SocketAddr, pid: u32, target: &str) -> (u64, u64, Vec<TcpStream>) {
    let before = vm_rss(pid);
    let readers = stalled_readers(addr, target, SLOW_READERS);
    sleep(Duration::from_secs(2));
    let after = vm_rss(pid);
    eprintln!(
        "RSS of {pid} with {SLOW_READERS} stalled readers of {target}: {:.1} → {:.1} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    (before, after, readers)
}

/// Downloads `target` whole and checks it is the 10 MiB pattern.
fn assert_full_download(addr: SocketAddr, target: &str, what: &str) {
    let r = roundtrip(addr, &Req::get(target));
    assert_eq!(r.status, 200, "{what}: {r:?}");
    assert_eq!(
        (r.body.len(), sha256_hex(&r.body)),
        (TEN_MIB, sha256_hex(&pattern(TEN_MIB))),
        "{what}: the 10 MiB file, byte for byte"
    );
}

#[test]
fn a_hundred_slow_readers_of_a_10_mib_file_cost_at_most_16_mib() {
    let stack = stack();
    stack.tree.add_file("big/ten.bin", &pattern(TEN_MIB));
    let target = "/static/big/ten.bin";
    let addr = stack.addr();
    // Warm up: pools and the first file read are in the baseline.
    assert_full_download(addr, target, "warm-up");
    let pid = stack.ringway.pid();
    let (before, after, readers) = rss_with_slow_readers(addr, pid, target);
    // Meanwhile everyone else is served at once.
    assert_served_within(
        addr,
        "/static/hello.txt",
        tree::TEXT_BODY,
        Duration::from_secs(1),
        "with 100 stalled downloads",
    );
    let grown = after.saturating_sub(before);
    assert!(
        grown <= SLOW_READER_RSS_LIMIT,
        "ringway's RSS grew by {:.1} MiB ({:.1} → {:.1} MiB) with {SLOW_READERS} clients \
         stalled on a 10 MiB file; the limit is {} MiB",
        grown as f64 / 1048576.0,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        SLOW_READER_RSS_LIMIT >> 20
    );
    drop(readers);
    assert_served_within(
        addr,
        "/static/hello.txt",
        tree::TEXT_BODY,
        Duration::from_secs(2),
        "after the slow readers closed",
    );
    assert_full_download(addr, target, "after the slow readers closed");
}

/// The same measurement against nginx (`alias`, its default buffers): the reference figure,
/// and proof that the measurement sees the server's memory.
#[test]
fn a_hundred_slow_readers_cost_nginx_little_memory_too() {
    let tree = StaticTree::build();
    tree.add_file("big/ten.bin", &pattern(TEN_MIB));
    let uwsgi = Uwsgi::start(App::Raw);
    let location =
        ringway_tests::static_config::nginx_static_location("/static/", &tree.root(), "");
    let nginx = Nginx::start_with_locations(uwsgi.socket(), &location);
    let target = "/static/big/ten.bin";
    assert_full_download(nginx.addr(), target, "nginx warm-up");
    let (before, after, readers) = rss_with_slow_readers(nginx.addr(), nginx.pid(), target);
    let grown = after.saturating_sub(before);
    assert!(
        grown <= SLOW_READER_RSS_LIMIT,
        "nginx's RSS grew by {:.1} MiB ({:.1} → {:.1} MiB)",
        grown as f64 / 1048576.0,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
    );
    drop(readers);
    assert_full_download(nginx.addr(), target, "nginx after the slow readers closed");
}

// ---------------------------------------------------------------------------------------
// The flag, the metrics
// ---------------------------------------------------------------------------------------

#[test]
fn the_static_flag_serves_a_directory_without_a_config_file() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--static", &format!("/assets/={}", tree.root().display()))
        .arg("--static", &format!("/files/={}", tree.private().display()))
        .start();
    let shape = RouteShape::default();
    let r = roundtrip(ringway.addr(), &Req::get("/assets/hello.txt"));
    assert_answer(
        &Expect::file(&tree, tree::TEXT),
        "GET",
        &r,
        shape,
        "--static /assets/",
    );
    let r = roundtrip(ringway.addr(), &Req::get("/assets/css/site.css"));
    assert_answer(
        &Expect::file(&tree, tree::CSS),
        "GET",
        &r,
        shape,
        "--static, no siblings",
    );
    let r = roundtrip(ringway.addr(), &Req::get("/files/report.pdf"));
    assert_eq!(
        (r.status, r.body),
        (200, tree.private_bytes(tree::REPORT)),
        "the second --static"
    );
    let r = roundtrip(ringway.addr(), &Req::get("/assets/.env"));
    assert_eq!(r.status, 404, "dotfiles stay hidden: {r:?}");
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "the app on /"
    );
}

/// The value of `ringway_requests_total{route=ROUTE,code=CODE}` in Prometheus text.
fn requests_total(text: &str, route: &str, code: u16) -> f64 {
    series_total(text, "ringway_requests_total", route, code)
}

/// The value of `NAME{route=ROUTE,code=CODE}` in Prometheus text.
fn series_total(text: &str, name: &str, route: &str, code: u16) -> f64 {
    let route = format!("route=\"{route}\"");
    let code = format!("code=\"{code}\"");
    let start = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&start))
        .filter(|l| l.contains(&route) && l.contains(&code))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn static_requests_are_counted_under_their_route() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start(App::Raw);
    let config = config_with(&uwsgi, &standard_routes(&tree));
    let ringway = Ringway::with_config(config)
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    let mut metrics = None;
    let found = poll_until(Duration::from_secs(10), || {
        metrics = ringway
            .stderr()
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next()?.parse::<SocketAddr>().ok());
        metrics.is_some()
    });
    assert!(found, "no `metrics on` line:\n{}", ringway.stderr());
    let metrics = metrics.unwrap_or_else(|| unreachable!());
    let addr = ringway.addr();
    let etag = tree.etag(tree::TEXT);
    let plan: Vec<(&str, u16, Req)> = vec![
        ("/static/", 200, Req::get("/static/hello.txt")),
        ("/static/", 200, Req::get("/static/img/logo.svg")),
        ("/static/", 200, Req::new("HEAD", "/static/hello.txt")),
        (
            "/static/",
            206,
            Req::get("/static/hello.txt").header("Range", "bytes=0-1"),
        ),
        (
            "/static/",
            304,
            Req::get("/static/hello.txt").header("If-None-Match", &etag),
        ),
        ("/static/", 404, Req::get("/static/nope")),
        ("/static/", 404, Req::get("/static/.env")),
        ("/static/", 405, Req::new("DELETE", "/static/hello.txt")),
        (
            "/gz/",
            200,
            Req::get("/gz/css/site.css").header("Accept-Encoding", "gzip"),
        ),
    ];
    let mut want: BTreeMap<(&str, u16), f64> = BTreeMap::new();
    // Body bytes the client received (every answer here has a Content-Length).
    let mut want_bytes: BTreeMap<(&str, u16), f64> = BTreeMap::new();
    for (route, code, req) in &plan {
        let r = roundtrip(addr, req);
        assert_eq!(r.status, *code, "{req:?}: {r:?}");
        *want.entry((route, *code)).or_default() += 1.0;
        *want_bytes.entry((route, *code)).or_default() += r.body.len() as f64;
    }
    let mut text = String::new();
    poll_until(Duration::from_secs(3), || {
        text = roundtrip(metrics, &Req::get("/metrics")).text();
        want.iter()
            .all(|(&(route, code), &n)| requests_total(&text, route, code) >= n)
    });
    let bytes = "ringway_response_body_bytes_total";
    let wrong: Vec<String> = want
        .iter()
        .filter_map(|(&(route, code), &n)| {
            let got = requests_total(&text, route, code);
            (got != n).then(|| format!("route={route:?} code={code}: {got}, want {n}"))
        })
        .chain(want_bytes.iter().filter_map(|(&(route, code), &n)| {
            let got = series_total(&text, bytes, route, code);
            (got != n).then(|| format!("{bytes} route={route:?} code={code}: {got}, want {n}"))
        }))
        .collect();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ringway_requests_total") || l.starts_with(bytes))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\n\nthe series:\n{}",
        wrong.join("\n"),
        lines.join("\n")
    );
}

#[test]
fn the_metric_helper_reads_what_it_claims() {
    let text = "ringway_requests_total{route=\"/static/\",code=\"200\"} 3\n\
                ringway_requests_total{code=\"200\",route=\"/static/\"} 1\n\
                ringway_requests_total{route=\"/gz/\",code=\"200\"} 5\n\
                ringway_request_duration_seconds_count{route=\"/static/\",code=\"200\"} 9\n";
    assert_eq!(requests_total(text, "/static/", 200), 4.0);
    assert_eq!(requests_total(text, "/gz/", 200), 5.0);
    assert_eq!(requests_total(text, "/static/", 404), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Large files from a cold and a warm page cache
// ---------------------------------------------------------------------------------------------

/// Drops `path`'s pages from the page cache, so the next read of it comes from the disk.
fn evict_from_page_cache(path: &std::path::Path) {
    let file = std::fs::File::open(path).expect("open the file to evict");
    file.sync_all().expect("sync the file");
    // SAFETY: advice on an open fd; no memory is touched.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise(DONTNEED) on {}", path.display());
}

/// A large body goes out with sendfile where its pages are cached and through a buffer where
/// they are not: every mix gives the same bytes, whole or in a range, and the connection
/// stays in step for the next request.
#[test]
fn large_files_are_exact_from_a_cold_a_partly_warm_and_a_warm_page_cache() {
    const SIZE: usize = 3 << 20;
    let stack = stack();
    stack.tree.add_file("big/three.bin", &pattern(SIZE));
    let target = "/static/big/three.bin";
    let path = stack.tree.path("big/three.bin");
    let whole = pattern(SIZE);
    let addr = stack.addr();
    let range =
        |from: usize, to: usize| Req::get(target).header("Range", &format!("bytes={from}-{to}"));

    // Cold: nothing cached. Then only the range just read is warm; then all of it.
    evict_from_page_cache(&path);
    let r = roundtrip(addr, &range(1_000_000, 2_500_000));
    assert_eq!(r.status, 206, "a range of a cold file: {r:?}");
    assert!(
        r.body == whole[1_000_000..=2_500_000],
        "a range of a cold file, byte for byte"
    );
    for round in ["partly warm", "warm"] {
        let r = roundtrip(addr, &Req::get(target));
        assert_eq!(r.status, 200, "{round}: {r:?}");
        assert_eq!(
            (r.body.len(), sha256_hex(&r.body)),
            (SIZE, sha256_hex(&whole)),
            "{round}: the whole file, byte for byte"
        );
    }

    // Two requests in one write: the second answer starts right after the first body.
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    let mut conn = ringway_tests::client::Conn::new(stream);
    evict_from_page_cache(&path);
    let mut both = range(0, 99_999).to_bytes();
    both.extend_from_slice(&Req::get("/static/hello.txt").to_bytes());
    conn.send(&both).expect("send two requests");
    let answers = conn.read_responses(&["GET", "GET"]).expect("two answers");
    assert_eq!(answers[0].status, 206, "{:?}", answers[0]);
    assert!(
        answers[0].body == whole[..100_000],
        "the first 100000 bytes"
    );
    assert_eq!(
        (answers[1].status, answers[1].body.as_slice()),
        (200, tree::TEXT_BODY)
    );
}

/// nginx's `location = /favicon.ico { alias /srv/app/static/favicon.ico; }`: an exact route
/// whose `static` names a file serves that file, with its type, validators and ranges; a
/// prefix route cannot name a file.
#[test]
fn an_exact_route_serves_the_one_file_its_static_names() {
    let uwsgi = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "app"));
    let dir = tempfile::tempdir().expect("temp dir");
    let icon = dir.path().join("favicon.ico");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1150).collect();
    std::fs::write(&icon, &bytes).expect("icon");
    std::fs::write(dir.path().join("other.txt"), "other").expect("other");
    let config = |exact: bool| {
        format!(
            "upstream = [\"{}\"]\n[[routes]]\npath = \"/favicon.ico\"\nexact = {exact}\n\
             static = '{}'\nexpires = \"7d\"\n",
            uwsgi.upstream(),
            icon.display()
        )
    };
    let ringway = Ringway::with_config(config(true)).start();
    let r = roundtrip(ringway.addr(), &Req::get("/favicon.ico"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, bytes);
    assert_eq!(r.header("content-type").as_deref(), Some("image/x-icon"));
    assert_eq!(r.header("cache-control").as_deref(), Some("max-age=604800"));
    assert!(r.header("etag").is_some(), "{r:?}");
    let ranged = roundtrip(
        ringway.addr(),
        &Req::get("/favicon.ico").header("Range", "bytes=0-9"),
    );
    assert_eq!((ranged.status, &ranged.body[..]), (206, &bytes[..10]));
    // Only that path: the rest goes to the app as before.
    let r = roundtrip(ringway.addr(), &Req::get("/favicon.ico/other.txt"));
    assert!(served_by_app(&r), "{r:?}");

    // A symlink to a file elsewhere: what it points to is served (it was refused beneath
    // the link's own directory, a 404 at every request).
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let target = elsewhere.path().join("robots.txt");
    std::fs::write(&target, "User-agent: *\n").expect("robots");
    let link = dir.path().join("robots.txt");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let linked = format!(
        "upstream = [\"{}\"]\n[[routes]]\npath = \"/robots.txt\"\nexact = true\nstatic = '{}'\n",
        uwsgi.upstream(),
        link.display()
    );
    let with_link = Ringway::with_config(linked).start();
    let r = roundtrip(with_link.addr(), &Req::get("/robots.txt"));
    assert_eq!(
        (r.status, &r.body[..]),
        (200, &b"User-agent: *\n"[..]),
        "{r:?}"
    );

    let refused = Ringway::with_config(config(false)).start_refused();
    assert!(
        refused.stderr.contains("routes[0].static") && refused.stderr.contains("exact = true"),
        "{}",
        refused.stderr
    );
}

/// An exact route's one file as nginx's `alias` serves it (found by review): its own link
/// followed again as a deploy swaps it (it was resolved once, at start), typed by the
/// route's path as nginx types by the request's extension (it was typed by the file's
/// name), and a file missing at start a 404 until it is there (the start was refused, and
/// so was every reload once it went missing).
#[test]
fn an_exact_routes_one_file_follows_its_link_is_typed_by_the_path_and_may_come_later() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("v1.png"), "one").expect("v1");
    std::fs::write(dir.path().join("v2.png"), "two").expect("v2");
    let icon = dir.path().join("icon");
    std::os::unix::fs::symlink("v1.png", &icon).expect("symlink");
    let robots = dir.path().join("robots.txt");
    let routes = [
        StaticRoute::new("/favicon.ico", &icon).set("exact", "true"),
        StaticRoute::new("/robots.txt", &robots).set("exact", "true"),
    ];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let get = |path: &str| roundtrip(ringway.addr(), &Req::get(path));
    let r = get("/favicon.ico");
    assert_eq!((r.status, r.text().as_str()), (200, "one"), "{r:?}");
    assert_eq!(r.header("content-type").as_deref(), Some("image/x-icon"));
    assert_eq!(get("/robots.txt").status, 404);
    assert!(
        ringway.stderr().contains("no such file yet"),
        "{}",
        ringway.stderr()
    );

    std::os::unix::fs::symlink("v2.png", dir.path().join("next")).expect("next");
    std::fs::rename(dir.path().join("next"), &icon).expect("swap the link");
    std::fs::write(&robots, "User-agent: *\n").expect("robots");
    let mut last = None;
    let followed = poll_until(Duration::from_secs(5), || {
        let (icon, robots) = (get("/favicon.ico"), get("/robots.txt"));
        let done = icon.text() == "two" && robots.status == 200;
        last = Some((icon, robots));
        done
    });
    assert!(followed, "{last:?}");

    // A name that was no link at load stays beneath its directory: a link planted there
    // later cannot hand out a file elsewhere (found by review).
    let elsewhere = tempfile::tempdir().expect("temp dir");
    std::fs::write(elsewhere.path().join("secret"), "secret").expect("secret");
    std::os::unix::fs::symlink(elsewhere.path().join("secret"), dir.path().join("planted"))
        .expect("planted");
    std::fs::rename(dir.path().join("planted"), &robots).expect("plant the link");
    let refused = poll_until(Duration::from_secs(5), || get("/robots.txt").status == 404);
    assert!(refused, "{:?}", get("/robots.txt"));
}

/// A route's own `types` and `default_type` against nginx's in a location: `types {}
/// default_type text/plain;`, the guard on users' uploads (an uploaded page or SVG must
/// not run as the site's own), and a table of one's own.
#[test]
fn a_routes_types_and_default_type_are_nginx_s() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["evil.html", "x.svg", "noext", "r.PDF", "a.css"] {
        std::fs::write(dir.path().join(name), b"<script>alert(1)</script>").expect("write");
    }
    let root = dir.path().display();
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]
         servers = [\"{up}\"]
         [[routes]]
         path = \"/uploads/\"
         static = \"{root}\"
         types = {{}}
         default_type = \"text/plain\"
         [[routes]]
         path = \"/own/\"
         static = \"{root}\"
         types = {{ pdf = \"application/pdf\" }}
         default_type = \"application/x-unknown\"
         [[routes]]
         path = \"/\"
         upstream = \"app\"
        ",
        up = uwsgi.upstream()
    ))
    .start();
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "location /uploads/ {{ types {{ }} default_type text/plain; alias {root}/; }}
             location /own/ {{ types {{ application/pdf pdf; }}
                              default_type application/x-unknown; alias {root}/; }}"
        ),
    );
    let cases = [
        ("/uploads/evil.html", "text/plain"),
        ("/uploads/x.svg", "text/plain"),
        ("/uploads/noext", "text/plain"),
        ("/uploads/r.PDF", "text/plain"),
        ("/own/r.PDF", "application/pdf"),
        ("/own/a.css", "application/x-unknown"),
        ("/own/evil.html", "application/x-unknown"),
    ];
    let mut problems = Vec::new();
    for (target, want) in cases {
        for (stack, addr) in [("ringway", ringway.addr()), ("nginx", nginx.addr())] {
            let r = roundtrip(addr, &Req::get(target));
            let got = r.header("content-type").map(|t| media_type(&t).0);
            if r.status != 200 || got.as_deref() != Some(want) {
                problems.push(format!(
                    "{stack} {target}: {} {got:?}, want {want}",
                    r.status
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The built-in types are nginx's `mime.types`: a file nginx sends as
/// `application/octet-stream` (downloaded, never rendered) is not typed as HTML or XML
/// here, where a page of script would run on the site's origin. `.js` is the one
/// documented departure (`text/javascript`, RFC 9239's name).
#[test]
fn files_are_typed_as_nginx_s_mime_types_types_them() {
    let uwsgi = Uwsgi::start(App::Raw);
    let files = tempfile::tempdir().expect("a temp dir");
    let names = [
        "a.hxt", "a.xht", "a.xsl", "a.config", "a.aspx", "a.csv", "a.woff", "a.m3u8", "a.ts",
        "a.bmp", "a.wasm", "a.xml", "a.HTML", "a.svgz", "a.exe", "a.rss", "a.avif", "a.js",
    ];
    for name in names {
        std::fs::write(files.path().join(name), b"<x/>").expect("write a file");
    }
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "location /t/ {{ include /etc/nginx/mime.types; \
             default_type application/octet-stream; alias {}/; }}",
            files.path().display()
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n[[routes]]\npath = \"/t/\"\nstatic = \"{}\"\n",
        uwsgi.upstream(),
        files.path().display()
    ))
    .start();
    let mut problems = Vec::new();
    for name in names {
        let path = format!("/t/{name}");
        let via_nginx = roundtrip(nginx.addr(), &Req::get(&path));
        let via_ringway = roundtrip(ringway.addr(), &Req::get(&path));
        let (theirs, _) = media_type(&via_nginx.header("content-type").unwrap_or_default());
        let (ours, _) = media_type(&via_ringway.header("content-type").unwrap_or_default());
        let departs = name == "a.js"
            && (theirs.as_str(), ours.as_str()) == ("application/javascript", "text/javascript");
        if via_nginx.status != 200 || via_ringway.status != 200 || (theirs != ours && !departs) {
            problems.push(format!(
                "{name}: nginx {} {theirs}, ringway {} {ours}",
                via_nginx.status, via_ringway.status
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// nginx's `etag off`: files go without an ETag, and the conditionals find none to match,
/// as behind nginx: an If-Match naming a tag fails (412), an If-None-Match naming one does
/// not hold (200), `*` matches either, a date still answers 304, an If-Range with a tag
/// gets the whole file.
#[test]
fn etag_false_sends_none_and_conditionals_answer_as_nginx_etag_off() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start(App::Raw);
    let routes = [StaticRoute::new("/site/", &tree.root()).set("etag", "false")];
    let ringway = Ringway::with_config(config_with(&uwsgi, &routes)).start();
    let location = format!(
        "location /site/ {{ alias {}/; include /etc/nginx/mime.types; etag off; }}",
        tree.root().display()
    );
    let nginx = Nginx::start_with_locations(uwsgi.socket(), &location);
    let path = format!("/site/{}", tree::TEXT);
    let plain = roundtrip(ringway.addr(), &Req::get(&path));
    let modified = plain.header("last-modified").expect("Last-Modified");
    let cases: [(&str, &str, u16); 7] = [
        ("", "", 200),
        ("If-Match", "\"abc\"", 412),
        ("If-Match", "*", 200),
        ("If-None-Match", "\"abc\"", 200),
        ("If-None-Match", "*", 304),
        ("If-Modified-Since", &modified, 304),
        ("If-Range", "\"abc\"", 200),
    ];
    for (who, addr) in [("ringway", ringway.addr()), ("nginx", nginx.addr())] {
        for (name, value, status) in cases {
            let mut req = Req::get(&path);
            if !name.is_empty() {
                req = req.header(name, value);
            }
            if name == "If-Range" {
                req = req.header("Range", "bytes=0-1");
            }
            let r = roundtrip(addr, &req);
            assert_eq!(r.status, status, "{who} {name}: {value}: {r:?}");
            assert_eq!(r.header("etag"), None, "{who} {name}: {r:?}");
        }
    }
}
