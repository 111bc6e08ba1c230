//! Behind a TLS-terminating balancer, a request its plain port passed on is redirected to
//! HTTPS (`redirect_forwarded_http`), as nginx users write
//! `if ($http_x_forwarded_proto = "http") { return 301 https://$host$request_uri; }`:
//! ringway beside a real nginx with that line, then a real HAProxy in front.

use ringway_tests::haproxy::{Haproxy, Mode};
use ringway_tests::nginx::Nginx;
use ringway_tests::{App, Req, Response, Ringway, Uwsgi, roundtrip};

/// What a client saw: the status and the Location.
fn seen(r: &Response) -> (u16, Option<String>) {
    (r.status, r.header("location"))
}

/// ringway trusting `trusted`, its `server_name` nginx's in the tests (`localhost`), and
/// `extra` TOML lines.
fn ringway_with(uwsgi: &Uwsgi, trusted: &str, extra: &str) -> Ringway {
    Ringway::with_config(format!(
        "upstream = [{:?}]\ntrusted_proxy = [{trusted:?}]\nredirect_forwarded_http = true\n\
         server_name = \"localhost\"\n{extra}",
        uwsgi.upstream()
    ))
    .start()
}

fn ringway(uwsgi: &Uwsgi, trusted: &str) -> Ringway {
    ringway_with(uwsgi, trusted, "")
}

#[test]
fn a_request_the_balancer_took_over_http_is_redirected_as_by_nginx() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_uwsgi_group(
        &[uwsgi.socket()],
        "if ($http_x_forwarded_proto = \"http\") { return 301 https://$host$request_uri; }",
    );
    let proxy = ringway(&uwsgi, "127.0.0.1");
    let plain = |req: Req| req.header("X-Forwarded-Proto", "http");
    let reqs = [
        plain(Req::get("/a/b?x=1&y=%20")).host(Some("app.example")),
        plain(Req::get("/")).host(Some("app.example:8080")),
        plain(Req::get("/caf%C3%A9/..%2f?q")).host(Some("app.example")),
        plain(Req::new("HEAD", "/h")).host(Some("app.example")),
        plain(Req::post("/form", b"a=1")).host(Some("app.example")),
        // `$host` is lower case, without a trailing dot; without a Host, the server's name.
        plain(Req::get("/Up")).host(Some("App.Example.:80")),
        plain(Req::get("/old").http10()).host(None),
        Req::get("/").header("X-Forwarded-Proto", "https"),
        Req::get("/"),
    ];
    let expected_redirects = [
        "https://app.example/a/b?x=1&y=%20",
        "https://app.example/",
        "https://app.example/caf%C3%A9/..%2f?q",
        "https://app.example/h",
        "https://app.example/form",
        "https://app.example/Up",
        "https://localhost/old",
    ];
    for (i, req) in reqs.iter().enumerate() {
        let by_nginx = seen(&roundtrip(nginx.addr(), req));
        let by_ringway = seen(&roundtrip(proxy.addr(), req));
        assert_eq!(by_ringway, by_nginx, "{req:?}: {}", proxy.stderr());
        match expected_redirects.get(i) {
            Some(to) => assert_eq!(by_ringway, (301, Some((*to).to_owned())), "{req:?}"),
            None => assert_eq!(by_ringway, (200, None), "{req:?}: the app answers"),
        }
    }

    // From a peer that is not a trusted proxy the header is anybody's: not believed.
    let untrusting = ringway(&uwsgi, "10.0.0.0/8");
    let r = roundtrip(untrusting.addr(), &reqs[1]);
    assert_eq!(seen(&r), (200, None), "{}", untrusting.stderr());
}

/// Mozilla's generator writes `return 308 https://$host$request_uri;` now: a POST keeps
/// its method and body through a 308. The same status from ringway, for every method.
#[test]
fn a_redirect_of_another_status_is_nginx_s_return_308() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_uwsgi_group(
        &[uwsgi.socket()],
        "if ($http_x_forwarded_proto = \"http\") { return 308 https://$host$request_uri; }",
    );
    let proxy = Ringway::with_config(format!(
        "upstream = [{:?}]\ntrusted_proxy = [\"127.0.0.1\"]\nredirect_forwarded_http = 308\n",
        uwsgi.upstream()
    ))
    .start();
    let plain = |req: Req| {
        req.header("X-Forwarded-Proto", "http")
            .host(Some("app.example"))
    };
    for req in [
        plain(Req::post("/form?x=1", b"a=1")),
        plain(Req::get("/")),
        plain(Req::new("HEAD", "/h")),
    ] {
        let by_ringway = seen(&roundtrip(proxy.addr(), &req));
        assert_eq!(by_ringway, seen(&roundtrip(nginx.addr(), &req)), "{req:?}");
        assert_eq!(by_ringway.0, 308, "{req:?}");
    }
}

#[test]
fn behind_haproxys_plain_port_every_request_goes_to_https() {
    let uwsgi = Uwsgi::start(App::Raw);
    let proxy = ringway(&uwsgi, "127.0.0.1");
    let haproxy = Haproxy::start(Mode::HttpPlainPort, proxy.addr());
    // HAProxy sets X-Forwarded-Proto over the client's own `https`.
    let req = Req::get("/login?next=/")
        .host(Some("app.example"))
        .header("X-Forwarded-Proto", "https");
    let r = roundtrip(haproxy.addr(), &req);
    let to = Some("https://app.example/login?next=/".to_owned());
    assert_eq!(seen(&r), (301, to), "{}\n{}", haproxy.log(), proxy.stderr());
    // An ACME challenge on the plain port still reaches the server (ringway's exemption,
    // as for `[tls] redirect_http`): the app answers it here.
    let acme = Req::get("/.well-known/acme-challenge/token").host(Some("app.example"));
    assert_eq!(roundtrip(haproxy.addr(), &acme).status, 404);
}

/// With ringway's own TLS listener redirecting too (`[tls] redirect_http`), the balancer's
/// word decides on the plain port: a request it took over HTTPS is served, not sent round
/// to ringway's TLS port (a loop for the client), and one it took over HTTP goes to 443.
#[test]
fn the_balancers_word_decides_beside_ringways_own_redirect() {
    let uwsgi = Uwsgi::start(App::Raw);
    let pki = ringway_tests::tls::Pki::new();
    let leaf = pki.issue("a", &["a.test"], 0xA1, (2030, 1, 1));
    let tls = ringway_tests::tls::tls_toml(&[&leaf], "redirect_http = true");
    let proxy = ringway_with(&uwsgi, "127.0.0.1", &tls);
    let via = |proto: &str| {
        let req = Req::get("/")
            .host(Some("a.test"))
            .header("X-Forwarded-Proto", proto);
        seen(&roundtrip(proxy.addr(), &req))
    };
    assert_eq!(via("https"), (200, None), "{}", proxy.stderr());
    assert_eq!(via("http"), (301, Some("https://a.test/".to_owned())));
    // No word from the balancer: ringway's own redirect, to its TLS port.
    let r = roundtrip(proxy.addr(), &Req::get("/").host(Some("a.test")));
    assert_eq!(r.status, 301);
    let location = r.header("location").unwrap_or_default();
    assert!(location.starts_with("https://a.test:"), "{location}");
}
