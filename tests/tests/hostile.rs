//! Hostile and malformed requests (docs/ARCHITECTURE.md, security rules): each gets its exact status and
//! a closed connection, and a healthy request on a new connection works right after.

use std::net::SocketAddr;
use std::thread::sleep;
use std::time::Duration;

use ringway_tests::client::roundtrip_raw;
use ringway_tests::{App, Conn, Nginx, Req, Ringway, Uwsgi, roundtrip};

const CLOSE_LIMIT: Duration = Duration::from_secs(3);

fn assert_healthy(addr: SocketAddr, after: &str) {
    let r = roundtrip(addr, &Req::get("/"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "healthy request after {after}"
    );
}

/// Sends `wire` on a new connection, expects `status`, then a close, then a healthy request.
fn expect_refusal(addr: SocketAddr, name: &str, wire: &[u8], status: u16) {
    let mut conn = Conn::open(addr);
    // The server may answer and close before reading all of a huge head: a failed write is
    // fine as long as the answer is there.
    let _ = conn.send(wire);
    let r = conn
        .read_response()
        .unwrap_or_else(|e| panic!("{name}: no response ({e})"));
    assert_eq!(r.status, status, "{name}: {r:?}");
    assert!(
        conn.closed_within(CLOSE_LIMIT),
        "{name}: the connection is closed after the error"
    );
    assert_healthy(addr, name);
}

#[test]
fn malformed_requests_get_their_exact_status() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    let long_target = format!("/{}", "a".repeat(9 * 1024));
    let many_headers: String = (0..20)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "v".repeat(1000)))
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "Content-Length with Transfer-Encoding",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "two different Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
              Content-Length: 6\r\n\r\nhello!"
                .to_vec(),
            400,
        ),
        (
            "Content-Length list",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\nhello!"
                .to_vec(),
            400,
        ),
        (
            "negative Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "space before colon",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Space : a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bare CR in a value",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Cr: a\rb\r\n\r\n".to_vec(),
            400,
        ),
        (
            "missing Host on HTTP/1.1",
            b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two Host headers",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: example.com\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad chunk size",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
              zz\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "Transfer-Encoding gzip",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            501,
        ),
        (
            "9 KiB request line",
            format!("GET {long_target} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes(),
            414,
        ),
        (
            "20 KiB of headers",
            format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
    ];
    for (name, wire, status) in &cases {
        expect_refusal(addr, name, wire, *status);
    }

    // More framing errors, where RFC 9112 leaves a choice between statuses.
    let more: [(&str, &[u8], &[u16]); 9] = [
        (
            "whitespace before the first header line",
            b"GET / HTTP/1.1\r\n Host: localhost\r\n\r\n",
            &[400],
        ),
        (
            "a space in a header name",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX Y: 1\r\n\r\n",
            &[400],
        ),
        (
            "a control character in a header name",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX\x01Y: 1\r\n\r\n",
            &[400],
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\0b\r\n\r\n",
            &[400],
        ),
        (
            "Content-Length with a sign",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
            &[400],
        ),
        (
            "chunk size overflowing 64 bits",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
              fffffffffffffffffff\r\nx\r\n0\r\n\r\n",
            &[400, 413],
        ),
        (
            "chunk data without its CRLF",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhelloX0\r\n\r\n",
            &[400],
        ),
        (
            "space inside the request line",
            b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n",
            &[400],
        ),
        (
            "HTTP/2.0 on an HTTP/1 connection",
            b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n",
            &[400, 505],
        ),
    ];
    for (name, wire, statuses) in more {
        let mut conn = Conn::open(addr);
        let _ = conn.send(wire);
        let r = conn
            .read_response()
            .unwrap_or_else(|e| panic!("{name}: no response ({e})"));
        assert!(
            statuses.contains(&r.status),
            "{name}: want {statuses:?}, got {r:?}"
        );
        assert!(
            conn.closed_within(CLOSE_LIMIT),
            "{name}: closed after the error"
        );
        assert_healthy(addr, name);
    }

    // nginx's ignore_invalid_headers: a line whose name has a printable character no token
    // has is dropped, the request served and the connection kept.
    let mut conn = Conn::open(addr);
    for _ in 0..2 {
        conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nX(Y): 1\r\n\r\n")
            .expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 200, "a dropped header line: {r:?}");
    }

    // Not framing errors, so the connection may stay open; the status is what matters.
    let bad_paths: [(&str, &[u8]); 3] = [
        (
            "encoded NUL in the path",
            b"GET /environ/%00 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        (
            "path above the root",
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        (
            "encoded path above the root",
            b"GET /%2e%2e/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
    ];
    for (name, wire) in bad_paths {
        let r = roundtrip_raw(addr, wire).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status, 400, "{name}: {r:?}");
        assert_healthy(addr, name);
    }
}

#[test]
fn a_slow_body_is_cut_off() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--client-body-timeout", "300ms")
        .start();
    let mut conn = Conn::open(ringway.addr());
    conn.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nonly ten b")
        .expect("head and part of the body");
    assert_408_or_closed(&mut conn, "body");
    assert_healthy(ringway.addr(), "slow body");
}

#[test]
fn clients_that_vanish_do_not_hurt_the_next_one() {
    let uwsgi = Uwsgi::start(App::Raw);
    let mut ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    let vanishing: Vec<(&str, Vec<u8>)> = vec![
        (
            "gone mid-download",
            Req::get(&format!("/bytes/{}", 10 * 1024 * 1024)).to_bytes(),
        ),
        (
            "gone mid-upload",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nabc".to_vec(),
        ),
        (
            "gone mid-chunk",
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
              100\r\nabc"
                .to_vec(),
        ),
        (
            "gone while upstream works",
            Req::get("/slow?ms=300").to_bytes(),
        ),
        (
            "gone mid-head",
            b"GET /environ HTTP/1.1\r\nHost: loc".to_vec(),
        ),
    ];
    for (name, wire) in &vanishing {
        let mut conn = Conn::open(addr);
        conn.send(wire).expect("send");
        sleep(Duration::from_millis(100));
        drop(conn);
        assert_healthy(addr, name);
    }
    sleep(Duration::from_millis(400)); // the abandoned /slow is over
    assert_healthy(addr, "all of them");
    assert!(
        ringway.is_running(),
        "ringway survived:\n{}",
        ringway.stderr()
    );
}

#[test]
fn a_slow_head_is_cut_off() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--client-header-timeout", "300ms")
        .start();
    let mut conn = Conn::open(ringway.addr());
    conn.send(b"GET / HTTP/1.1\r\nHost: loc")
        .expect("half a head");
    assert_408_or_closed(&mut conn, "header");
    assert_healthy(ringway.addr(), "slow head");
}

#[test]
fn client_headers_never_become_privileged_vars() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();

    // X_Foo and X-Foo both map to HTTP_X_FOO: the underscore one is dropped.
    let env = roundtrip(addr, &Req::get("/environ").header("X_Foo", "1")).json();
    assert!(
        env.get("HTTP_X_FOO").is_none(),
        "underscore header dropped: {env}"
    );
    let env = roundtrip(
        addr,
        &Req::get("/environ")
            .header("X-Foo", "real")
            .header("X_Foo", "spoof"),
    )
    .json();
    assert_eq!(env["HTTP_X_FOO"], "real", "{env}");

    // X-Forwarded-Proto / -Ssl from an untrusted client do not make the request https.
    let env = roundtrip(
        addr,
        &Req::get("/environ")
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Ssl", "on")
            .header("Forwarded", "for=6.6.6.6;proto=https"),
    )
    .json();
    assert_eq!(env["wsgi.url_scheme"], "http", "{env}");
    assert!(env.get("HTTPS").is_none(), "{env}");
    assert!(env.get("HTTP_X_FORWARDED_PROTO").is_none(), "{env}");
    assert!(env.get("HTTP_X_FORWARDED_SSL").is_none(), "{env}");
    assert!(env.get("HTTP_FORWARDED").is_none(), "{env}");

    // uWSGI's magic vars cannot be named by a header, with a dash or an underscore.
    let env = roundtrip(
        addr,
        &Req::get("/environ")
            .header("UWSGI-FILE", "/etc/passwd")
            .header("UWSGI_FILE", "/etc/passwd")
            .header("UWSGI_SETENV", "PWNED=1")
            .header("Uwsgi-Chdir", "/"),
    )
    .json();
    let map = env.as_object().expect("environ object");
    for key in map.keys() {
        assert!(
            !key.to_ascii_uppercase().starts_with("UWSGI_"),
            "a client header became {key}: {env}"
        );
    }
    assert_eq!(
        env["HTTP_UWSGI_FILE"], "/etc/passwd",
        "dash form stays an HTTP_ var"
    );
    assert_eq!(env["HTTP_UWSGI_CHDIR"], "/", "{env}");
    assert!(
        env.get("HTTP_UWSGI_SETENV").is_none(),
        "underscore form dropped: {env}"
    );
    assert!(env.get("PWNED").is_none(), "{env}");
    assert_healthy(addr, "magic var headers");
}

#[test]
fn a_trusted_proxy_may_set_the_scheme() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--trusted-proxy", "127.0.0.1")
        .start();
    let env = roundtrip(
        ringway.addr(),
        &Req::get("/environ").header("X-Forwarded-Proto", "https"),
    )
    .json();
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "https", "{env}");
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
}

/// After a `what` timeout of 300 ms: a 408 and a close, or a close, within 3 s; not still open.
fn assert_408_or_closed(conn: &mut Conn, what: &str) {
    conn.set_read_timeout(Duration::from_secs(3));
    match conn.read_response() {
        Ok(r) => {
            assert_eq!(r.status, 408, "{r:?}");
            assert!(conn.closed_within(CLOSE_LIMIT), "closed after 408");
        }
        Err(e) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof,
            "closed (or 408) within 3 s of a 300 ms {what} timeout, not still open: {e}"
        ),
    }
}

/// A header that names one thing (a credential, a validator, a range, an expectation) sent
/// twice gets 400 from both, as nginx's "client sent duplicate header line"; headers that
/// are lists, or that nginx takes twice, go through from both.
#[test]
fn a_repeated_credential_or_validator_is_refused_as_nginx_refuses_it() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let nginx = Nginx::start(uwsgi.socket());
    let once = [
        "Authorization: Basic YTpi",
        "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
        "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
        "If-Match: \"x\"",
        "If-None-Match: \"x\"",
        "If-Range: \"x\"",
        "Content-Range: bytes 0-1/2",
        "Expect: 100-continue",
    ];
    let lists = [
        "Cookie: a=1",
        "X-Forwarded-For: 192.0.2.1",
        "Accept: */*",
        "Range: bytes=0-1",
    ];
    for (lines, status) in once
        .iter()
        .map(|l| (l, 400))
        .chain(lists.iter().map(|l| (l, 200)))
    {
        let wire = format!("GET / HTTP/1.1\r\nHost: localhost\r\n{lines}\r\n{lines}\r\n\r\n");
        for (who, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
            let r = roundtrip_raw(addr, wire.as_bytes())
                .unwrap_or_else(|e| panic!("{who}, {lines} twice: {e}"));
            assert_eq!(r.status, status, "{who}, {lines} twice: {r:?}");
        }
    }
    assert!(
        ringway.wait_for_log("repeated Authorization header", Duration::from_secs(5)),
        "the refusal is logged, naming the header: {}",
        ringway.stderr()
    );
}

/// A body's framing said in ways nginx refuses gets nginx's status: Transfer-Encoding twice
/// is a duplicate header (400), a coding other than chunked is 501 whatever else the head
/// says, chunked with a Content-Length is 400, and a bad Content-Length is 400 before the
/// coding is looked at.
#[test]
fn a_body_framed_the_ways_nginx_refuses_gets_its_status() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let nginx = Nginx::start(uwsgi.socket());
    let cases: [(&str, u16); 5] = [
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            400,
        ),
        ("Transfer-Encoding: gzip\r\nContent-Length: 5", 501),
        ("Content-Length: 5\r\nTransfer-Encoding: gzip", 501),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400),
        ("Transfer-Encoding: gzip\r\nContent-Length: x", 400),
    ];
    for (lines, status) in cases {
        let wire = format!("POST /echo HTTP/1.1\r\nHost: localhost\r\n{lines}\r\n\r\nhello");
        for (who, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
            let r = roundtrip_raw(addr, wire.as_bytes())
                .unwrap_or_else(|e| panic!("{who}, {lines:?}: {e}"));
            assert_eq!(r.status, status, "{who}, {lines:?}: {r:?}");
        }
    }
}
