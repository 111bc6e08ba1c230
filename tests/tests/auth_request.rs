//! `auth_request` against nginx's: each request to a protected route is first asked of
//! the demo app's `/auth/check` (its token decides), through uWSGI and through gunicorn,
//! with nginx configured as its users configure it (`auth_request`, `auth_request_set`
//! into a header or a param, `error_page 401 =302 $login`, the body left out of the
//! subrequest). Compared per request: the status, `WWW-Authenticate` and `Location`, and
//! on a 200 what the app was told (the user the auth check named, whatever the client
//! claimed) and what the auth check saw; and for each case what ringway must answer, so
//! two proxies letting everyone in cannot agree.

use std::path::Path;

use ringway_tests::app_server::{AppServer, Listen, Served, Server};
use ringway_tests::client::{Conn, Req, Response, roundtrip};
use ringway_tests::nginx::{PROXY_PASS_LINES, uwsgi_pass};
use ringway_tests::{App, Nginx, Ringway, Uwsgi};

/// A request, and the status ringway must answer it with.
struct Case {
    name: &'static str,
    req: Req,
    want: u16,
}

fn cases() -> Vec<Case> {
    let token = |req: Req, token: &str| req.header("X-Token", token);
    vec![
        Case {
            name: "no token",
            req: Req::get("/environ/a?b=1"),
            want: 401,
        },
        Case {
            name: "HEAD, no token",
            req: Req::new("HEAD", "/environ/a"),
            want: 401,
        },
        Case {
            name: "a good token",
            req: token(Req::get("/environ/a?b=1"), "alice"),
            want: 200,
        },
        Case {
            name: "a good token in a cookie",
            req: Req::get("/environ/c").header("Cookie", "x=1; token=alice"),
            want: 200,
        },
        Case {
            name: "a good token and a user the client claims",
            req: token(Req::get("/environ/d"), "alice").header("X-User", "mallory"),
            want: 200,
        },
        Case {
            name: "no token and a user the client claims",
            req: Req::get("/environ/d").header("X-User", "alice"),
            want: 401,
        },
        Case {
            name: "a POST with a body: asked without it",
            req: token(Req::post("/environ/e", &[b'x'; 3000]), "alice"),
            want: 200,
        },
        Case {
            name: "a POST without a token: refused before its body is read",
            req: Req::post("/environ/e", &[b'x'; 3000]),
            want: 401,
        },
        Case {
            name: "a banned token",
            req: token(Req::get("/environ/f"), "banned"),
            want: 403,
        },
        Case {
            name: "the check fails",
            req: token(Req::get("/environ/g"), "broken"),
            want: 500,
        },
        Case {
            name: "401 sent to the login page",
            req: Req::get("/page/100?x=%2F"),
            want: 302,
        },
        Case {
            name: "a good token past the login redirect",
            req: token(Req::get("/page/100"), "alice"),
            want: 200,
        },
        Case {
            name: "the check itself, asked by a client",
            req: Req::get("/auth/check"),
            want: 404,
        },
        Case {
            name: "an open route",
            req: Req::get("/bytes/10"),
            want: 200,
        },
        Case {
            name: "satisfy any: a listed address is not asked",
            req: Req::get("/stream/10"),
            want: 200,
        },
        Case {
            name: "satisfy any: another is asked, and refused",
            req: Req::get("/status/200"),
            want: 401,
        },
        Case {
            name: "satisfy any: another is asked, and let in",
            req: token(Req::get("/status/200"), "alice"),
            want: 200,
        },
        Case {
            name: "satisfy any with a password too: both challenges",
            req: Req::get("/header/10"),
            want: 401,
        },
        Case {
            name: "satisfy any with a password too: the password lets in",
            req: Req::get("/header/10").header("Authorization", "Basic YW5uOnNlY3JldA=="),
            want: 200,
        },
        Case {
            name: "satisfy any with a password too: the token lets in",
            req: token(Req::get("/header/10"), "alice"),
            want: 200,
        },
    ]
}

/// Routes where `satisfy = "any"` lets a listed address in unasked (`/stream/`), asks
/// any other (`/status/`), or asks for a password (the users in `htpasswd`) or the check
/// (`/header/`), passing to `group`.
fn satisfy_any(group: &str, htpasswd: &Path) -> String {
    format!(
        "[[routes]]\npath = \"/stream/\"\nupstream = \"{group}\"\nsatisfy = \"any\"\n\
         allow = [\"127.0.0.1/32\"]\nauth_request = \"/auth/check\"\n\
         [[routes]]\npath = \"/status/\"\nupstream = \"{group}\"\nsatisfy = \"any\"\n\
         allow = [\"10.0.0.0/8\"]\nauth_request = \"/auth/check\"\n\
         [[routes]]\npath = \"/header/\"\nupstream = \"{group}\"\nsatisfy = \"any\"\n\
         allow = [\"10.0.0.0/8\"]\nauth_request = \"/auth/check\"\n\
         auth_basic = {{ realm = \"Staff\", user_file = \"{}\" }}\n",
        htpasswd.display()
    )
}

/// nginx's lines for the same routes, each passing with `pass`.
fn satisfy_any_nginx(pass: &str, htpasswd: &Path) -> String {
    format!(
        "location /stream/ {{
            satisfy any; allow 127.0.0.1; deny all;
            auth_request /auth/check;
            {pass}
        }}
        location /status/ {{
            satisfy any; allow 10.0.0.0/8; deny all;
            auth_request /auth/check;
            {pass}
        }}
        location /header/ {{
            satisfy any; allow 10.0.0.0/8; deny all;
            auth_basic \"Staff\"; auth_basic_user_file {};
            auth_request /auth/check;
            {pass}
        }}",
        htpasswd.display()
    )
}

/// A user file with `ann`, password `secret`.
fn users() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, "ann:{PLAIN}secret\n").expect("write the users");
    (dir, file)
}

/// What the app was told, and what the auth check saw, on a 200 from `/environ`.
fn told(r: &Response) -> (String, String) {
    let env = r.json();
    let text = |key: &str| env[key].as_str().unwrap_or("<none>").to_owned();
    (text("HTTP_X_USER"), text("HTTP_X_AUTH_SEEN"))
}

/// Sends every case to both; they must agree, and ringway must answer what the case says.
fn same_answers(nginx: &Nginx, ringway: &Ringway, through: &str) {
    for case in cases() {
        let name = format!("{through}: {}", case.name);
        let theirs = roundtrip(nginx.addr(), &case.req);
        let ours = roundtrip(ringway.addr(), &case.req);
        let shown = |r: &Response| {
            let challenges = r.header_all("www-authenticate");
            let cookies = r.header_all("set-cookie");
            let added = r.header("x-fixed");
            (r.status, challenges, r.header("location"), cookies, added)
        };
        assert_eq!(
            shown(&ours),
            shown(&theirs),
            "{name}: ringway (left) and nginx\n{}",
            ringway.stderr()
        );
        assert_eq!(ours.status, case.want, "{name}: {ours:?}");
        if case.want == 200 && case.req.target().starts_with("/environ") {
            let (user, seen) = told(&ours);
            assert_eq!(user, "alice", "{name}: the user the check named");
            assert_eq!(
                ours.header_all("set-cookie"),
                ["session=refreshed; Path=/"],
                "{name}: the check's cookie passed on"
            );
            assert_eq!((user, seen.clone()), told(&theirs), "{name}");
            let seen: serde_json::Value = serde_json::from_str(&seen).expect("X-Auth-Seen");
            assert_eq!(seen["body"], 0, "{name}: no body is sent to the check");
            assert_eq!(seen["content_length"], "", "{name}: nor its length");
            assert_eq!(seen["uri"], case.req.target(), "{name}: X-Original-URI");
        }
        if case.want == 401 {
            assert_eq!(
                ours.header_all("www-authenticate")
                    .last()
                    .map(String::as_str),
                Some("Bearer realm=\"demo\""),
                "{name}: the check's challenge"
            );
        }
    }
}

#[test]
fn uwsgi_auth_requests_answer_as_nginx_s() {
    let (_users, htpasswd) = users();
    let uwsgi = Uwsgi::start(App::Flask);
    let pass = uwsgi_pass(uwsgi.socket());
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "location = /auth/check {{
                internal;
                {pass}
                uwsgi_pass_request_body off;
                uwsgi_param CONTENT_LENGTH \"\";
                uwsgi_param HTTP_X_ORIGINAL_URI $request_uri;
            }}
            location /environ {{
                auth_request /auth/check;
                auth_request_set $user $upstream_http_x_auth_user;
                auth_request_set $seen $upstream_http_x_auth_seen;
                auth_request_set $auth_cookie $upstream_http_set_cookie;
                add_header Set-Cookie $auth_cookie;
                {pass}
                uwsgi_param HTTP_X_USER $user;
                uwsgi_param HTTP_X_AUTH_SEEN $seen;
            }}
            {}
            location /page/ {{
                auth_request /auth/check;
                auth_request_set $login $upstream_http_location;
                error_page 401 =302 $login;
                add_header X-Fixed yes;
                {pass}
            }}",
            satisfy_any_nginx(&pass, &htpasswd)
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/auth/check\"\nexact = true\nupstream = \"default\"\n\
         internal = true\nparams = {{ HTTP_X_ORIGINAL_URI = \"$request_uri\" }}\n\
         [[routes]]\npath = \"/environ\"\nupstream = \"default\"\n\
         auth_request = \"/auth/check\"\n\
         params = {{ HTTP_X_USER = \"$auth_http_x_auth_user\", \
         HTTP_X_AUTH_SEEN = \"$auth_http_x_auth_seen\" }}\n\
         response_headers = {{ Set-Cookie = \"$auth_http_set_cookie\" }}\n\
         [[routes]]\npath = \"/page/\"\nupstream = \"default\"\n\
         auth_request = {{ path = \"/auth/check\", redirect_401 = \"$auth_http_location\" }}\n\
         response_headers = {{ X-Fixed = \"yes\" }}\n\
         {}",
        uwsgi.upstream(),
        satisfy_any("default", &htpasswd)
    ))
    .start();
    same_answers(&nginx, &ringway, "uwsgi");

    // Through uwsgi, nginx's params give the check the client's method and URI, with the
    // auth path as PATH_INFO.
    let r = roundtrip(
        ringway.addr(),
        &Req::post("/environ/h?q=1", b"abc").header("X-Token", "alice"),
    );
    let (_, seen) = told(&r);
    let seen: serde_json::Value = serde_json::from_str(&seen).expect("X-Auth-Seen");
    assert_eq!(seen["method"], "POST", "{r:?}");
}

#[test]
fn http_auth_requests_answer_as_nginx_s() {
    let (_users, htpasswd) = users();
    let server = AppServer::start(Server::Gunicorn, Served::Wsgi(App::Flask), Listen::Tcp, 2);
    let nginx = Nginx::start_proxy_pass_with_locations(
        server.addr(),
        &format!(
            "location = /auth/check {{
                internal;
                {PROXY_PASS_LINES}
                proxy_pass_request_body off;
                proxy_set_header Content-Length \"\";
                proxy_set_header X-Original-URI $request_uri;
            }}
            location /environ {{
                auth_request /auth/check;
                auth_request_set $user $upstream_http_x_auth_user;
                auth_request_set $seen $upstream_http_x_auth_seen;
                auth_request_set $auth_cookie $upstream_http_set_cookie;
                add_header Set-Cookie $auth_cookie;
                {PROXY_PASS_LINES}
                proxy_set_header X-User $user;
                proxy_set_header X-Auth-Seen $seen;
            }}
            {}
            location /page/ {{
                auth_request /auth/check;
                auth_request_set $login $upstream_http_location;
                error_page 401 =302 $login;
                add_header X-Fixed yes;
                {PROXY_PASS_LINES}
            }}",
            satisfy_any_nginx(PROXY_PASS_LINES, &htpasswd)
        ),
    );
    let ringway = Ringway::with_config(format!(
        "[upstreams.web]\nservers = [\"{}\"]\nkeepalive = 8\n\
         [[routes]]\npath = \"/\"\nupstream = \"web\"\n\
         [[routes]]\npath = \"/auth/check\"\nexact = true\nupstream = \"web\"\n\
         internal = true\nupstream_headers = {{ X-Original-URI = \"$request_uri\" }}\n\
         [[routes]]\npath = \"/environ\"\nupstream = \"web\"\n\
         auth_request = \"/auth/check\"\n\
         upstream_headers = {{ X-User = \"$auth_http_x_auth_user\", \
         X-Auth-Seen = \"$auth_http_x_auth_seen\" }}\n\
         response_headers = {{ Set-Cookie = \"$auth_http_set_cookie\" }}\n\
         [[routes]]\npath = \"/page/\"\nupstream = \"web\"\n\
         auth_request = {{ path = \"/auth/check\", redirect_401 = \"$auth_http_location\" }}\n\
         response_headers = {{ X-Fixed = \"yes\" }}\n\
         {}",
        server.upstream(),
        satisfy_any("web", &htpasswd)
    ))
    .start();
    same_answers(&nginx, &ringway, "http");

    // To an HTTP server the check is a GET, as nginx's `proxy_pass` sends it; the
    // connection it went on serves the next requests (its answer came whole with its head).
    let mut conn = Conn::open(ringway.addr());
    for i in 0..5 {
        let req = Req::post("/environ/i", b"abc").header("X-Token", "alice");
        conn.send(&req.to_bytes()).expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        let (_, seen) = told(&r);
        let seen: serde_json::Value = serde_json::from_str(&seen).expect("X-Auth-Seen");
        assert_eq!(seen["method"], "GET", "{r:?}");
    }
}

/// The check's server is down: 500, and a line that says why.
#[test]
fn an_auth_request_without_an_answer_is_500() {
    let uwsgi = Uwsgi::start(App::Flask);
    let dir = tempfile::tempdir().expect("a temp dir");
    let gone = dir.path().join("gone.sock");
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [upstreams.auth]\nservers = [\"unix:{}\"]\n\
         [[routes]]\npath = \"/auth/\"\nupstream = \"auth\"\ninternal = true\n\
         [[routes]]\npath = \"/environ\"\nupstream = \"default\"\n\
         auth_request = \"/auth/check\"\n",
        uwsgi.upstream(),
        gone.display()
    ))
    .start();
    let r = roundtrip(ringway.addr(), &Req::get("/environ"));
    assert_eq!(r.status, 500, "{r:?}");
    assert!(
        ringway.wait_for_log(
            "auth_request got no answer",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        ringway.stderr()
    );
}

/// A server of the check's group that takes the connection and closes it: the auth request
/// goes on to the next server, as the route's own requests do (`next_upstream`'s default
/// `error`), and as nginx's subrequest does.
#[test]
fn an_auth_request_a_server_failed_goes_on_to_the_next() {
    let uwsgi = Uwsgi::start(App::Flask);
    let dir = tempfile::tempdir().expect("a temp dir");
    let closing = dir.path().join("closing.sock");
    let listener = std::os::unix::net::UnixListener::bind(&closing).expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [upstreams.auth]\nservers = [\"unix:{}\", \"{}\"]\n\
         [[routes]]\npath = \"/auth/\"\nupstream = \"auth\"\ninternal = true\n\
         [[routes]]\npath = \"/environ\"\nupstream = \"default\"\n\
         auth_request = \"/auth/check\"\n",
        uwsgi.upstream(),
        closing.display(),
        uwsgi.upstream()
    ))
    .start();
    for i in 0..4 {
        let r = roundtrip(
            ringway.addr(),
            &Req::get("/environ").header("X-Token", "alice"),
        );
        assert_eq!(r.status, 200, "request {i}: {r:?}\n{}", ringway.stderr());
    }
}

/// A static route under an `auth_request` that falls back to the app: the user the check
/// named reaches the app through the route's own params (nginx's `location @app` lines),
/// never the one the client claims; through uWSGI and through gunicorn.
#[test]
fn a_static_route_s_fallback_gives_the_app_the_checked_user() {
    let files = tempfile::tempdir().expect("a temp dir");
    let uwsgi = Uwsgi::start(App::Flask);
    let server = AppServer::start(Server::Gunicorn, Served::Wsgi(App::Flask), Listen::Tcp, 1);
    let route = |group: &str, sets: &str| {
        format!(
            "[[routes]]\npath = \"/auth/check\"\nexact = true\nupstream = \"{group}\"\n\
             internal = true\n\
             [[routes]]\npath = \"/environ\"\nstatic = \"{}\"\nfallback = \"{group}\"\n\
             auth_request = \"/auth/check\"\n{sets}\n",
            files.path().display()
        )
    };
    let through_uwsgi = route(
        "default",
        "params = { HTTP_X_USER = \"$auth_http_x_auth_user\" }",
    );
    let through_http = route(
        "web",
        "upstream_headers = { X-User = \"$auth_http_x_auth_user\" }",
    );
    for (name, config) in [
        (
            "uwsgi",
            format!("upstream = [\"{}\"]\n{through_uwsgi}", uwsgi.upstream()),
        ),
        (
            "http",
            format!(
                "[upstreams.web]\nservers = [\"{}\"]\n{through_http}",
                server.upstream()
            ),
        ),
    ] {
        let ringway = Ringway::with_config(config).start();
        let claims = Req::get("/environ/x")
            .header("X-Token", "alice")
            .header("X-User", "mallory");
        let r = roundtrip(ringway.addr(), &claims);
        assert_eq!(r.status, 200, "{name}: {r:?}\n{}", ringway.stderr());
        assert_eq!(told(&r).0, "alice", "{name}: the user the check named");
        let r = roundtrip(
            ringway.addr(),
            &Req::get("/environ/x").header("X-User", "alice"),
        );
        assert_eq!(r.status, 401, "{name}: no token");
    }
}
