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
