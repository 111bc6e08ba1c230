//! Route checks any correct proxy in front of the test apps passes: used against nginx (to
//! prove the harness and the apps) and against ringway.

use std::net::SocketAddr;

use std::time::Duration;

use crate::client::{Conn, Framing, Req, Response, roundtrip};
use crate::data::{pattern, sha256_hex};
use crate::paths::App;

/// Asserts every route of the apps through the proxy at `addr` to a uWSGI serving `app`.
pub fn check_routes(addr: SocketAddr, app: App) {
    let r = roundtrip(addr, &Req::get("/"));
    assert_eq!(r.status, 200, "{app:?} GET /: {r:?}");
    assert_eq!(r.body, b"Hello, World!", "{app:?} GET /");
    assert_eq!(r.framing, Framing::Length(13), "{app:?} GET /");

    for n in [0, 1, 4096, 65536] {
        let r = roundtrip(addr, &Req::get(&format!("/bytes/{n}")));
        assert_eq!(r.status, 200, "{app:?} /bytes/{n}");
        assert_eq!(r.framing, Framing::Length(n as u64), "{app:?} /bytes/{n}");
        assert!(r.body == pattern(n), "{app:?} /bytes/{n}: body differs");
    }

    for n in [1, 65536] {
        let r = roundtrip(addr, &Req::get(&format!("/stream/{n}")));
        assert_eq!(r.status, 200, "{app:?} /stream/{n}");
        assert_eq!(
            r.framing,
            Framing::Chunked,
            "{app:?} /stream/{n}: a body without length goes chunked to HTTP/1.1: {:?}",
            r.headers
        );
        assert!(r.body == pattern(n), "{app:?} /stream/{n}: body differs");
    }

    // 65511 is one lazy piece: around it, the pieces' seams.
    for n in [0, 65510, 65511, 65512, 200_000] {
        let r = roundtrip(addr, &Req::get(&format!("/lazy/{n}")));
        assert_eq!(r.status, 200, "{app:?} /lazy/{n}");
        assert_eq!(r.framing, Framing::Length(n as u64), "{app:?} /lazy/{n}");
        assert!(r.body == pattern(n), "{app:?} /lazy/{n}: body differs");
    }

    let body = pattern(1000);
    let r = roundtrip(addr, &Req::post("/echo", &body));
    check_echo(&r, &body, &format!("{app:?} POST /echo"));

    let r = roundtrip(addr, &Req::get("/environ?a=1"));
    assert_eq!(r.status, 200, "{app:?} /environ: {r:?}");
    let env = r.json();
    assert_eq!(env["REQUEST_METHOD"], "GET", "{env}");
    assert_eq!(env["PATH_INFO"], "/environ", "{env}");
    assert_eq!(env["QUERY_STRING"], "a=1", "{env}");
    assert_eq!(env["wsgi.url_scheme"], "http", "{env}");
    assert_eq!(env["HTTP_HOST"], "localhost", "{env}");
    assert!(
        env.get("wsgi.input").is_none(),
        "non-str values are dropped"
    );

    let r = roundtrip(addr, &Req::get("/slow?ms=50"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "slept 50 ms"),
        "{app:?} /slow"
    );

    let r = roundtrip(addr, &Req::get("/error"));
    assert_eq!(
        r.status,
        error_status(app),
        "{app:?} /error: {} {:?}",
        r.status,
        r.text()
    );

    for code in [204, 304] {
        let r = roundtrip(addr, &Req::get(&format!("/status/{code}")));
        assert_eq!(r.status, code, "{app:?} /status/{code}");
        assert!(r.body.is_empty(), "{app:?} /status/{code} has no body");
    }
    let r = roundtrip(addr, &Req::get("/status/418"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (418, "status 418"),
        "{app:?}"
    );

    let r = roundtrip(addr, &Req::get("/set-cookies"));
    assert_eq!(
        r.header_all("set-cookie"),
        ["a=1; Path=/", "b=2; HttpOnly"],
        "{app:?}: Set-Cookie headers stay separate (RFC 6265 3): {r:?}"
    );

    let r = roundtrip(addr, &Req::get("/no/such/route"));
    assert_eq!(r.status, 404, "{app:?} unknown route");
}

/// What a proxy answers for `/error`. Flask turns the exception into its own 500 page; the
/// raw app raises before `start_response`, uWSGI then closes the socket without writing a
/// byte, and the proxy must answer 502 (nginx: "upstream prematurely closed connection").
pub fn error_status(app: App) -> u16 {
    match app {
        App::Flask => 500,
        App::Raw => 502,
    }
}

/// Asserts an `/echo` answer matches `body`.
pub fn check_echo(r: &Response, body: &[u8], what: &str) {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    let echo = r.json();
    assert_eq!(echo["length"], body.len(), "{what}: {echo}");
    assert_eq!(echo["sha256"], sha256_hex(body), "{what}: {echo}");
}

/// After `r` (an error answer, say) on `conn`: either the response said `Connection: close`
/// and the server closes, or the connection is still in sync and serves `GET /`. Closing
/// without saying so, or leaving the rest of a refused body to be read as the next request,
/// fails (RFC 9112 9.6, 9.3).
pub fn check_usable_or_closed(conn: &mut Conn, r: &Response, what: &str) {
    if r.says_close() {
        assert!(
            conn.closed_within(Duration::from_secs(3)),
            "{what}: said Connection: close but kept the connection open"
        );
        return;
    }
    conn.send(&Req::get("/").to_bytes())
        .unwrap_or_else(|e| panic!("{what}: kept alive (no Connection: close) but {e}"));
    let next = conn.read_response().unwrap_or_else(|e| {
        panic!("{what}: no Connection: close, yet the next request got no answer: {e}")
    });
    assert_eq!(
        (next.status, next.text().as_str()),
        (200, "Hello, World!"),
        "{what}: the connection is out of sync after {r:?}"
    );
}

/// Asserts that a plain `GET /` on a new connection is served: the repo's check after every
/// hostile or failing request.
pub fn check_healthy(addr: SocketAddr, after: &str) {
    let r = roundtrip(addr, &Req::get("/"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "healthy request after {after}"
    );
}
