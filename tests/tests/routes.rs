//! Every route of both apps through ringway to real uWSGI: the same checks nginx passes in
//! `nginx_stack.rs`.

use ringway_tests::checks::check_routes;
use ringway_tests::{App, Ringway, Uwsgi};

#[test]
fn ringway_serves_every_route_of_the_raw_app() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).workers(2).start();
    check_routes(ringway.addr(), App::Raw);
}

#[test]
fn ringway_serves_every_route_of_the_flask_app() {
    let uwsgi = Uwsgi::start(App::Flask);
    let ringway = Ringway::start(&uwsgi);
    check_routes(ringway.addr(), App::Flask);
}

#[test]
fn ringway_reaches_uwsgi_over_tcp() {
    use ringway_tests::uwsgi::UwsgiOptions;
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        tcp: true,
        ..UwsgiOptions::new(App::Raw)
    });
    assert!(!uwsgi.upstream().starts_with("unix:"));
    let ringway = Ringway::start(&uwsgi);
    check_routes(ringway.addr(), App::Raw);
    let env = ringway_tests::roundtrip(ringway.addr(), &ringway_tests::Req::get("/environ")).json();
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1", "{env}");
}
