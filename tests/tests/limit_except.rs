//! `limit_except` on a route, as nginx's `limit_except GET POST { deny all; }`: the listed
//! methods (and HEAD with GET) for anyone, the others only for the clients it allows, 403
//! for the rest. ringway and a real nginx given the same requests answer alike.

use ringway_tests::nginx::Nginx;
use ringway_tests::{App, Req, Ringway, Uwsgi, roundtrip};

#[test]
fn methods_outside_limit_except_get_403_as_from_nginx() {
    let uwsgi = Uwsgi::start(App::Raw);
    let socket = uwsgi.socket().display().to_string();
    let location = |path: &str, limit: &str| {
        format!(
            "location {path} {{ include /etc/nginx/uwsgi_params; limit_except {limit} \
             uwsgi_pass unix:{socket}; }}\n"
        )
    };
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &[
            location("/api/", "GET POST { deny all; }"),
            location("/admin/", "GET { allow 127.0.0.1; deny all; }"),
            location("/closed/", "GET { allow 10.0.0.0/8; deny all; }"),
        ]
        .concat(),
    );
    let route = |path: &str, limit: &str| {
        format!("[[routes]]\npath = {path:?}\nupstream = \"default\"\nlimit_except = {limit}\n")
    };
    let ringway = Ringway::with_config(format!(
        "upstream = [{:?}]\n{}",
        uwsgi.upstream(),
        [
            route("/api/", "{ methods = [\"GET\", \"POST\"] }"),
            route(
                "/admin/",
                "{ methods = [\"GET\"], allow = [\"127.0.0.1\"] }"
            ),
            route(
                "/closed/",
                "{ methods = [\"GET\"], allow = [\"10.0.0.0/8\"] }"
            ),
        ]
        .concat()
    ))
    .start();

    let methods = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND",
    ];
    let mut refused = Vec::new();
    for path in ["/api/x", "/admin/x", "/closed/x", "/other"] {
        for method in methods {
            // No body: the app's 404 to a body it does not read is answered differently by
            // the two (nginx's write fails once uWSGI closed), which is not this test's.
            let req = Req::new(method, path);
            let by_nginx = roundtrip(nginx.addr(), &req).status;
            let by_ringway = roundtrip(ringway.addr(), &req).status;
            assert_eq!(
                by_ringway,
                by_nginx,
                "{method} {path}: {}",
                ringway.stderr()
            );
            if by_ringway == 403 {
                refused.push(format!("{method} {path}"));
            }
        }
    }
    // Spelled out too: what the two agreed on is the rule, not a shared mistake.
    let closed: Vec<String> = ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND"]
        .iter()
        .map(|m| format!("{m} /closed/x"))
        .collect();
    let api: Vec<String> = ["PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND"]
        .iter()
        .map(|m| format!("{m} /api/x"))
        .collect();
    assert_eq!(refused, [api, closed].concat());
}
