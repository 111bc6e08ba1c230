//! The operator's error pages (`error_pages`, nginx's `error_page`): ringway's own answers
//! with a listed status carry the page, typed by its extension; a route with
//! `intercept_errors` also puts it in place of the app's error bodies (nginx's
//! `uwsgi_intercept_errors on`), keeping the app's status (and a 401's challenge, as nginx)
//! and leaving uWSGI free; SIGHUP reads the pages again (with the whole configuration); a page that
//! cannot be read stops ringway at start, and makes a reload refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::{App, Conn, Req, Response, Ringway, Uwsgi, roundtrip};
use socket2::{Domain, SockAddr, Socket, Type};
use tempfile::TempDir;

const PAGE_404: &str = "<!doctype html><h1>Nothing here</h1>\n";
const PAGE_500: &str = "<!doctype html><h1>Something broke</h1>\n";
const PAGE_502: &str = "<!doctype html><h1>Back in a minute</h1>\n";
const PAGE_503: &str = "{\"error\": \"busy, try again\"}\n";
const PAGE_504: &str = "<!doctype html><h1>That took too long</h1>\n";
const HTML: &str = "text/html; charset=utf-8";

/// A directory of pages, and the `error_pages = { ... }` line naming them.
fn pages(pages: &[(u16, &str, &str)]) -> (TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("ringway-pages-")
        .tempdir()
        .expect("temp dir");
    let mut entries = Vec::new();
    for (status, name, text) in pages {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write a page");
        entries.push(format!("{status} = \"{}\"", path.display()));
    }
    let line = format!("error_pages = {{ {} }}\n", entries.join(", "));
    (dir, line)
}

/// A unix socket whose listen backlog is full (the listener never accepts): a connect to
/// it fails with EAGAIN, as to a uWSGI whose backlog is. Keep the sockets alive.
fn full_backlog(path: &Path) -> (Socket, Vec<Socket>) {
    let addr = SockAddr::unix(path).expect("socket path");
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    listener.bind(&addr).expect("bind");
    listener.listen(0).expect("listen");
    let mut queued = Vec::new();
    loop {
        let client = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None).expect("socket");
        match client.connect(&addr) {
            Ok(()) => queued.push(client),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 1000, "the backlog never filled");
    }
    (listener, queued)
}

/// Sends `HEAD target` and reads everything until ringway closes: the head and whatever
/// follows it.
fn head_to_close(addr: std::net::SocketAddr, target: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = Req::new("HEAD", target).header("Connection", "close");
    stream.write_all(&req.to_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read to the close");
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_page(r: &Response, status: u16, page: &str, content_type: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.text(), page, "{r:?}");
    assert_eq!(
        r.header_all("content-type"),
        vec![content_type.to_owned()],
        "{r:?}"
    );
    assert_eq!(
        r.header_all("content-length"),
        vec![page.len().to_string()],
        "{r:?}"
    );
}

#[test]
fn ringways_own_404_502_503_and_504_carry_the_pages() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (_pages, error_pages) = pages(&[
        (404, "404.html", PAGE_404),
        (502, "502.html", PAGE_502),
        (503, "503.json", PAGE_503),
        (504, "504.html", PAGE_504),
    ]);
    let sockets = tempfile::tempdir().expect("temp dir");
    let gone = sockets.path().join("gone.sock");
    let busy = sockets.path().join("busy.sock");
    let _backlog = full_backlog(&busy);
    let config = format!(
        "{error_pages}\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [upstreams.gone]\nservers = [\"unix:{}\"]\n\
         [upstreams.busy]\nservers = [\"unix:{}\"]\n\
         [[routes]]\npath = \"/app/\"\nupstream = \"app\"\nscript_name = \"/app\"\n\
         upstream_read_timeout = \"1s\"\n\
         [[routes]]\npath = \"/gone/\"\nupstream = \"gone\"\n\
         [[routes]]\npath = \"/busy/\"\nupstream = \"busy\"\n",
        uwsgi.upstream(),
        gone.display(),
        busy.display()
    );
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();

    // 502: nothing listens.
    assert_page(&roundtrip(addr, &Req::get("/gone/x")), 502, PAGE_502, HTML);
    // 503: the upstream's backlog is full. The type follows the file's extension.
    assert_page(
        &roundtrip(addr, &Req::get("/busy/x")),
        503,
        PAGE_503,
        "application/json; charset=utf-8",
    );
    // 504: the app takes longer than the route's upstream_read_timeout.
    assert_page(
        &roundtrip(addr, &Req::get("/app/slow?ms=3000")),
        504,
        PAGE_504,
        HTML,
    );

    // 404: no route. The connection stays usable: the page's length frames it.
    let mut conn = Conn::open(addr);
    conn.send(&Req::get("/nowhere").to_bytes()).expect("send");
    assert_page(&conn.read_response().expect("404"), 404, PAGE_404, HTML);
    conn.send(&Req::get("/app/").to_bytes()).expect("send");
    let r = conn.read_response().expect("the next request");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "{r:?}"
    );

    // HEAD: the page's length, no page.
    let head = head_to_close(addr, "/gone/x");
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head:?}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", PAGE_502.len())),
        "{head:?}"
    );
    assert!(
        head.ends_with("\r\n\r\n"),
        "no body after the head: {head:?}"
    );

    // A status with no page keeps ringway's short text.
    let mut conn = Conn::open(addr);
    conn.send(b"GET /app/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .expect("send");
    let r = conn.read_response().expect("400");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400 Bad Request\n"),
        "{r:?}"
    );
}

/// A route's own `error_pages` replace the top level's there (nginx's `error_page` in a
/// `location`): a JSON 502 for the API, the HTML one elsewhere, none on a route with `{}`;
/// its `intercept_errors` takes its own pages; a page that cannot be read names its route.
#[test]
fn a_route_s_own_pages_replace_the_top_level_s_there() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (_top, top_pages) = pages(&[(502, "502.html", PAGE_502)]);
    let api_json = "{\"error\": \"the API is down\"}\n";
    let (_api, api_pages) = pages(&[
        (502, "api502.json", api_json),
        (500, "api500.json", api_json),
    ]);
    let sockets = tempfile::tempdir().expect("temp dir");
    let gone = sockets.path().join("gone.sock");
    let route_pages = |line: &str| line.trim_end().to_owned();
    let config = format!(
        "{top_pages}\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [upstreams.gone]\nservers = [\"unix:{}\"]\n\
         [[routes]]\npath = \"/api/\"\nupstream = \"gone\"\n{}\n\
         [[routes]]\npath = \"/plain/\"\nupstream = \"gone\"\nerror_pages = {{}}\n\
         [[routes]]\npath = \"/site/\"\nupstream = \"gone\"\n\
         [[routes]]\npath = \"/app/\"\nupstream = \"app\"\nscript_name = \"/app\"\n\
         intercept_errors = true\n{}\n",
        uwsgi.upstream(),
        gone.display(),
        route_pages(&api_pages),
        route_pages(&api_pages),
    );
    let ringway = Ringway::with_config(config.clone()).start();
    let addr = ringway.addr();
    let json = "application/json; charset=utf-8";
    assert_page(&roundtrip(addr, &Req::get("/api/x")), 502, api_json, json);
    assert_page(&roundtrip(addr, &Req::get("/site/x")), 502, PAGE_502, HTML);
    let r = roundtrip(addr, &Req::get("/plain/x"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (502, "502 Bad Gateway\n"),
        "{r:?}"
    );
    // The app's own 500 on an intercepting route: the route's page.
    assert_page(
        &roundtrip(addr, &Req::get("/app/status/500")),
        500,
        api_json,
        json,
    );

    let missing = config.replace("api500.json", "nowhere.json");
    let refused = Ringway::with_config(missing).start_refused();
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("routes[0].error_pages.500 (path \"/api/\")"),
        "{}",
        refused.stderr
    );
}

/// An app's error answer carrying X-Accel-Redirect gets the operator's page on a route
/// that intercepts errors, as nginx intercepts before it redirects (found by review: the
/// file was served); elsewhere the file is.
#[test]
fn an_intercepted_error_wins_over_the_apps_x_accel_redirect() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (_pages, error_pages) = pages(&[(500, "500.html", PAGE_500)]);
    let files = tempfile::tempdir().expect("temp dir");
    std::fs::write(files.path().join("f.txt"), b"the file").expect("write");
    let config = format!(
        "{error_pages}\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/on/\"\nupstream = \"app\"\nscript_name = \"/on\"\n\
         intercept_errors = true\n\
         [[routes]]\npath = \"/files/\"\nstatic = {:?}\ninternal = true\n",
        uwsgi.upstream(),
        files.path().display().to_string()
    );
    let ringway = Ringway::with_config(config).start();
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/on/accel?to=/files/f.txt&status=500"),
    );
    assert_page(&r, 500, PAGE_500, HTML);
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/accel?to=/files/f.txt&status=500"),
    );
    assert_eq!(r.text(), "the file", "{r:?}");
}

/// What goes wrong on the route an app's X-Accel-Redirect lands on is answered with that
/// route's page, as nginx answers with the `error_page` of the location its internal
/// redirect ended in; the app's route keeps its own for its own errors.
#[test]
fn an_x_accel_redirect_s_errors_get_the_page_of_the_route_it_lands_on() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (_top, top_pages) = pages(&[(404, "404.html", PAGE_404)]);
    let (_files, file_pages) = pages(&[(404, "404.json", "{\"error\": \"no such file\"}\n")]);
    let files = tempfile::tempdir().expect("temp dir");
    std::fs::write(files.path().join("f.txt"), b"the file").expect("write");
    let config = format!(
        "{top_pages}\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\nintercept_errors = true\n\
         response_headers = {{ X-Route = {{ value = \"app\", always = true }} }}\n\
         [[routes]]\npath = \"/files/\"\nstatic = {:?}\ninternal = true\n\
         response_headers = {{ X-Route = {{ value = \"files\", always = true }} }}\n\
         {file_pages}",
        uwsgi.upstream(),
        files.path().display().to_string()
    );
    let ringway = Ringway::with_config(config).start();
    let r = roundtrip(ringway.addr(), &Req::get("/accel?to=/files/missing.txt"));
    assert_page(
        &r,
        404,
        "{\"error\": \"no such file\"}\n",
        "application/json; charset=utf-8",
    );
    assert_eq!(r.header_all("x-route"), ["files"], "{r:?}");
    let r = roundtrip(ringway.addr(), &Req::get("/status/404"));
    assert_page(&r, 404, PAGE_404, HTML);
    assert_eq!(r.header_all("x-route"), ["app"], "{r:?}");
    let r = roundtrip(ringway.addr(), &Req::get("/accel?to=/files/f.txt"));
    assert_eq!(r.text(), "the file", "{r:?}");
}

#[test]
fn intercept_errors_replaces_the_apps_error_bodies_on_its_routes_only() {
    // One worker that would wait a minute on a blocked write: a body ringway left unread
    // would hold it, and the requests after it would time out.
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        workers: 1,
        socket_timeout: Some(60),
        ..UwsgiOptions::named(App::Raw, "one")
    });
    let (_pages, error_pages) = pages(&[(500, "500.html", PAGE_500), (502, "502.html", PAGE_502)]);
    let config = format!(
        "{error_pages}\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/on/\"\nupstream = \"app\"\nscript_name = \"/on\"\n\
         intercept_errors = true\n",
        uwsgi.upstream()
    );
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();

    // Off: the app's own bodies.
    for code in [500, 502] {
        let r = roundtrip(addr, &Req::get(&format!("/status/{code}")));
        assert_eq!(r.status, code, "{r:?}");
        assert_eq!(r.text(), format!("status {code}"), "{r:?}");
        assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    }

    // On: the page, with the app's status and reason but none of its headers (nginx
    // keeps only a 401's challenge); twice on one connection, then another request, so
    // the framing is right.
    let mut conn = Conn::open(addr);
    for _ in 0..2 {
        conn.send(&Req::get("/on/status/500").to_bytes())
            .expect("send");
        let r = conn.read_response().expect("the intercepted answer");
        assert_page(&r, 500, PAGE_500, HTML);
        assert_eq!(r.reason, "Internal Server Error");
        assert_eq!(r.header("x-instance"), None, "the app's header: {r:?}");
        assert!(!r.says_close(), "{r:?}");
    }
    conn.send(&Req::get("/on/").to_bytes()).expect("send");
    let r = conn.read_response().expect("a request after");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "{r:?}"
    );
    assert_page(
        &roundtrip(addr, &Req::get("/on/status/502")),
        502,
        PAGE_502,
        HTML,
    );
    // A status with no page passes through.
    let r = roundtrip(addr, &Req::get("/on/status/418"));
    assert_eq!((r.status, r.text().as_str()), (418, "status 418"), "{r:?}");

    // A 4 MB error body the page replaces: uWSGI's one worker is not left writing it.
    assert_page(
        &roundtrip(addr, &Req::get("/on/status/500?bytes=4000000")),
        500,
        PAGE_500,
        HTML,
    );
    for _ in 0..3 {
        let r = roundtrip(addr, &Req::get("/on/"));
        assert_eq!(r.status, 200, "the worker is free: {r:?}\n{}", uwsgi.log());
    }

    // HEAD: the page's length, no page.
    let head = head_to_close(addr, "/on/status/500");
    assert!(head.starts_with("HTTP/1.1 500 "), "{head:?}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", PAGE_500.len())),
        "{head:?}"
    );
    assert!(
        head.ends_with("\r\n\r\n"),
        "no body after the head: {head:?}"
    );

    // ringway's own 502 (the app closed without an answer) has the page on every route.
    for path in ["/error", "/on/error"] {
        assert_page(&roundtrip(addr, &Req::get(path)), 502, PAGE_502, HTML);
    }
}

/// Waits until ringway's log has `needle` at least `count` times.
fn wait_for_lines(ringway: &Ringway, needle: &str, count: usize) {
    let seen = ringway.log_count_after_waiting(needle, count, Duration::from_secs(10));
    assert!(
        seen >= count,
        "{count}× `{needle}` in the log:\n{}",
        ringway.stderr()
    );
}

#[test]
fn sighup_rereads_a_changed_page_and_keeps_the_old_one_when_it_cannot() {
    let (pages, error_pages) = pages(&[(502, "502.html", "first\n")]);
    let page: PathBuf = pages.path().join("502.html");
    let sockets = tempfile::tempdir().expect("temp dir");
    let gone = sockets.path().join("gone.sock");
    let config = format!("{error_pages}upstream = [\"unix:{}\"]\n", gone.display());
    let ringway = Ringway::with_config(config).start();
    let addr = ringway.addr();
    assert_page(&roundtrip(addr, &Req::get("/")), 502, "first\n", HTML);

    // Changed on disk: the answers keep the page read at start until SIGHUP.
    std::fs::write(&page, "second\n").expect("rewrite the page");
    assert_page(&roundtrip(addr, &Req::get("/")), 502, "first\n", HTML);
    ringway.signal(libc::SIGHUP);
    wait_for_lines(&ringway, "SIGHUP: configuration reloaded", 1);
    assert_page(&roundtrip(addr, &Req::get("/")), 502, "second\n", HTML);

    // Gone: the configuration is refused, the page in memory stays, and the log says why.
    std::fs::remove_file(&page).expect("remove the page");
    ringway.signal(libc::SIGHUP);
    wait_for_lines(
        &ringway,
        "SIGHUP: configuration refused, the old one stays",
        1,
    );
    let log = ringway.stderr();
    assert!(
        log.contains(&page.display().to_string()),
        "names the file: {log}"
    );
    assert_eq!(
        log.matches("SIGHUP: configuration reloaded").count(),
        1,
        "not said for a failed reload: {log}"
    );
    assert_page(&roundtrip(addr, &Req::get("/")), 502, "second\n", HTML);
}

#[test]
fn a_page_that_cannot_be_read_stops_ringway_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("502.html");
    let config = format!(
        "upstream = [\"unix:/nonexistent.sock\"]\nerror_pages = {{ 502 = \"{}\" }}\n",
        missing.display()
    );
    let refused = Ringway::with_config(config).start_refused();
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.stderr.contains("error_pages.502")
            && refused.stderr.contains(&missing.display().to_string())
            && refused.stderr.contains("cannot read it"),
        "names the key and the file: {}",
        refused.stderr
    );
}
