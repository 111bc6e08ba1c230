//! The reference stack, nginx → uWSGI, through the same harness: proves the harness and the
//! apps without ringway, and pins the facts about nginx 1.22 that docs/ARCHITECTURE.md and the parity
//! allowlist rely on (if the Debian package changes them, these fail first).

use ringway_tests::checks::check_routes;
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::{App, Nginx, Req, Uwsgi, roundtrip};

#[test]
fn nginx_serves_every_route_of_both_apps() {
    for app in App::ALL {
        let uwsgi = Uwsgi::start(app);
        let nginx = Nginx::start(uwsgi.socket());
        check_routes(nginx.addr(), app);
    }
}

#[test]
fn nginx_1_22_facts_the_parity_allowlist_relies_on() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start(uwsgi.socket());
    let addr = nginx.addr();

    // Repeated headers go as repeated vars; uWSGI keeps the last one.
    let env = roundtrip(
        addr,
        &Req::get("/environ")
            .header("Cookie", "a=1")
            .header("Cookie", "b=2")
            .header("X-Multi", "one")
            .header("X-Multi", "two"),
    )
    .json();
    assert_eq!(env["HTTP_COOKIE"], "b=2", "{env}");
    assert_eq!(env["HTTP_X_MULTI"], "two", "{env}");

    // The stock uwsgi_params let a client's X-Forwarded-Proto pick the URL scheme.
    let env = roundtrip(
        addr,
        &Req::get("/environ").header("X-Forwarded-Proto", "https"),
    )
    .json();
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");

    // SERVER_NAME is nginx's server_name; Debian's uwsgi_params send HTTP_HOST as $host
    // (lower-cased, port dropped).
    let env = roundtrip(addr, &Req::get("/environ").host(Some("Example.COM:8080"))).json();
    assert_eq!(env["SERVER_NAME"], "localhost", "{env}");
    assert_eq!(env["HTTP_HOST"], "example.com", "{env}");

    // With the stock uwsgi_params, Content-Length and Content-Type also go out as HTTP_ vars
    // (PEP 3333 forbids them): why Nginx::start adds two lines.
    drop(nginx);
    drop(uwsgi);
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        validate: false,
        ..UwsgiOptions::new(App::Raw)
    });
    let nginx = Nginx::start_stock(uwsgi.socket());
    let addr = nginx.addr();
    let env = roundtrip(
        addr,
        &Req::post("/environ", b"abc").header("Content-Type", "text/plain"),
    )
    .json();
    assert_eq!(env["HTTP_CONTENT_LENGTH"], "3", "{env}");
    assert_eq!(env["HTTP_CONTENT_TYPE"], "text/plain", "{env}");
    assert_eq!(env["CONTENT_LENGTH"], "3", "{env}");

    // A vars block over uWSGI's buffer-size (4096 by default): uWSGI drops it, nginx answers 502.
    let r = roundtrip(
        addr,
        &Req::get("/environ").header("X-Big", &"x".repeat(5000)),
    );
    assert_eq!(r.status, 502, "{r:?}");
}

/// The parity cases themselves are sound: each gets a 200 with an environ through nginx, and
/// two nginx instances agree on everything but the per-listener keys and the per-request ID.
/// (So a parity failure is about ringway, not about the case.)
#[test]
fn every_parity_case_passes_through_nginx() {
    use ringway_tests::parity::{Want, cases, environ_via};
    let uwsgi = Uwsgi::start(App::Raw);
    let a = Nginx::start(uwsgi.socket());
    let b = Nginx::start(uwsgi.socket());
    for case in cases() {
        let one = environ_via(a.addr(), &case).unwrap_or_else(|e| panic!("[{}] {e}", case.name));
        let two = environ_via(b.addr(), &case).unwrap_or_else(|e| panic!("[{}] {e}", case.name));
        for (key, value) in &one {
            match key.as_str() {
                "REMOTE_PORT" | "SERVER_PORT" => {}
                // $request_id: new for every request, so never equal; a request ID both times.
                "HTTP_X_REQUEST_ID" => {
                    for env in [&one, &two] {
                        assert!(Want::RequestId.accepts(env.get(key)), "[{}]", case.name);
                    }
                }
                _ => assert_eq!(Some(value), two.get(key), "[{}] {key}", case.name),
            }
        }
        assert_eq!(one.len(), two.len(), "[{}]", case.name);
    }
}
