//! A request one server of a group failed goes on to the next as nginx's
//! `uwsgi_next_upstream` / `proxy_next_upstream` sends it: two real uWSGIs named `a` and
//! `b` (`/fail-in/a` fails in `a` only), ringway and nginx in front of the pair, the same
//! answers from both, request by request. Each case starts fresh proxies: a server that
//! failed is skipped for 10 s after (nginx's `max_fails=1 fail_timeout=10s`), which the
//! sequences show.

use std::time::Duration;

use ringway_tests::app_server::AppServer;
use ringway_tests::nginx::Nginx;
use ringway_tests::uwsgi::{INSTANCE_HEADER, UwsgiOptions};
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Req, Ringway, Uwsgi, roundtrip};

/// uWSGIs `a` and `b`, in that order.
fn pair() -> Vec<Uwsgi> {
    let named = |name: &str| {
        let mut opts = UwsgiOptions::new(App::Raw);
        opts.instance = Some(name.to_owned());
        opts
    };
    Uwsgi::start_all(vec![named("a"), named("b")])
}

/// ringway with one worker (one round robin, as nginx's one worker process) in front of
/// `servers`, the route `/` carrying `route` (TOML lines).
fn ringway(servers: &[String], route: &str) -> Ringway {
    let servers: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    Ringway::with_config(format!(
        "[upstreams.app]\nservers = [{}]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n{route}\n",
        servers.join(", ")
    ))
    .workers(1)
    .arg("--metrics", "127.0.0.1:0")
    .start()
}

/// What a client saw: the status, which server answered, the body.
type Seen = (u16, Option<String>, String);

fn send_all(addr: std::net::SocketAddr, reqs: &[Req]) -> Vec<Seen> {
    reqs.iter()
        .map(|req| {
            let r = roundtrip(addr, req);
            let body = if r.status < 500 || r.header(INSTANCE_HEADER).is_some() {
                r.text()
            } else {
                // The proxy's own error page: its wording is the proxy's.
                String::new()
            };
            (r.status, r.header(INSTANCE_HEADER), body)
        })
        .collect()
}

fn seen(status: u16, instance: Option<&str>, body: &str) -> Seen {
    (status, instance.map(str::to_owned), body.to_owned())
}

/// `n` answers of `b`'s.
fn served_by_b(n: usize) -> Vec<Seen> {
    vec![seen(200, Some("b"), "served"); n]
}

/// ringway's count of requests passed on, for the group `app`.
fn passed_on(ringway: &Ringway) -> u64 {
    let text = roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text();
    let series = "ringway_upstream_requests_passed_on_total{upstream=\"app\"} ";
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

/// One case: the same requests through ringway (route lines `route`) and nginx (location
/// lines `nginx`), each fresh; both must see `expected`. Returns ringway's passed-on count.
fn case(uwsgis: &[Uwsgi], route: &str, nginx: &str, reqs: &[Req], expected: &[Seen]) -> u64 {
    let servers: Vec<String> = uwsgis.iter().map(Uwsgi::upstream).collect();
    let sockets: Vec<&std::path::Path> = uwsgis.iter().map(Uwsgi::socket).collect();
    let reference = Nginx::start_uwsgi_group(&sockets, nginx);
    let by_nginx = send_all(reference.addr(), reqs);
    assert_eq!(
        by_nginx,
        expected,
        "nginx with {nginx:?}; its error log:\n{}",
        reference.error_log()
    );
    let proxy = ringway(&servers, route);
    let by_ringway = send_all(proxy.addr(), reqs);
    assert_eq!(
        by_ringway,
        expected,
        "ringway with {route:?}: {}",
        proxy.stderr()
    );
    passed_on(&proxy)
}

#[test]
fn a_failed_request_goes_on_to_the_next_uwsgi_as_in_nginx() {
    let uwsgis = pair();
    let get = |target: &str| Req::get(target);
    let b_served = seen(200, Some("b"), "served");

    // nginx's default, `error timeout`: `a` closes without an answer, the GET goes on to
    // `b`; `a` is then skipped.
    let gets = vec![get("/fail-in/a"); 3];
    let moved = case(&uwsgis, "", "", &gets, &served_by_b(3));
    assert_eq!(moved, 1, "the first GET went on from a to b");

    // A POST that reached `a` may have run there: 502, never sent again. `a` counts as
    // failed all the same, so the next ones go to `b`.
    let posts = vec![Req::post("/fail-in/a", b"x=1"); 3];
    let expected = [seen(502, None, ""), b_served.clone(), b_served.clone()];
    assert_eq!(case(&uwsgis, "", "", &posts, &expected), 0);

    // `non_idempotent` sends it on too.
    let route = "next_upstream = [\"error\", \"timeout\", \"non_idempotent\"]";
    let nginx = "uwsgi_next_upstream error timeout non_idempotent;";
    assert_eq!(case(&uwsgis, route, nginx, &posts[..1], &served_by_b(1)), 1);

    // Off: the client gets the 502; `a` is still skipped after it.
    let route = "next_upstream = \"off\"";
    let nginx = "uwsgi_next_upstream off;";
    let expected = [seen(502, None, ""), b_served.clone(), b_served.clone()];
    assert_eq!(case(&uwsgis, route, nginx, &gets, &expected), 0);

    // A status is no failure unless listed: round robin goes on alternating.
    let unavailable = get("/fail-in/a?how=status&code=503");
    let a_503 = seen(503, Some("a"), "failed with 503");
    let reqs = vec![unavailable.clone(); 4];
    let expected = [a_503.clone(), b_served.clone(), a_503, b_served.clone()];
    assert_eq!(case(&uwsgis, "", "", &reqs, &expected), 0);
    // Listed, it goes on (and `a` is skipped after it).
    let route = "next_upstream = [\"error\", \"timeout\", \"http_503\"]";
    let nginx = "uwsgi_next_upstream error timeout http_503;";
    assert_eq!(case(&uwsgis, route, nginx, &reqs, &served_by_b(4)), 1);

    // A large upload (in a temp file) answered 503 before `a` took it: the body is still
    // whole for `b`, which answers too before taking it. (nginx 1.22 answers 502 here: its
    // write fails when uWSGI closes after answering, an error at both servers.)
    let upload = ringway_tests::pattern(900_000);
    let put = Req::new("PUT", "/fail-in/a?how=status&code=503").body(&upload);
    let servers: Vec<String> = uwsgis.iter().map(Uwsgi::upstream).collect();
    let proxy = ringway(&servers, route);
    assert_eq!(send_all(proxy.addr(), &[put]), served_by_b(1));
    assert_eq!(passed_on(&proxy), 1);

    // Every server fails: the last one's answer is the client's.
    let both = vec![get("/status/503")];
    let expected = [seen(503, Some("b"), "status 503")];
    assert_eq!(case(&uwsgis, route, nginx, &both, &expected), 1);
    assert_eq!(
        case(&uwsgis, "", "", &[get("/error")], &[seen(502, None, "")]),
        1
    );

    // A server slower than the read timeout: the GET goes on.
    let slow = vec![get("/fail-in/a?how=sleep&ms=3000")];
    let route = "upstream_read_timeout = \"1s\"";
    let nginx = "uwsgi_read_timeout 1s;";
    assert_eq!(case(&uwsgis, route, nginx, &slow, &served_by_b(1)), 1);
}

#[test]
fn a_request_goes_on_to_the_next_http_server() {
    let servers = AppServer::named_gunicorns(&["a", "b"]);
    let upstreams: Vec<String> = servers.iter().map(AppServer::upstream).collect();

    // `a`'s worker dies mid-request: the GET goes on to `b`, a POST gets 502.
    let proxy = ringway(&upstreams, "");
    let died = send_all(proxy.addr(), &[Req::get("/fail-in/a?how=exit")]);
    assert_eq!(died, served_by_b(1));
    assert_eq!(passed_on(&proxy), 1);
    wait_serving(&servers[0]);

    let proxy = ringway(&upstreams, "");
    let posted = send_all(proxy.addr(), &[Req::post("/fail-in/a?how=exit", b"x")]);
    assert_eq!(posted, [seen(502, None, "")]);
    assert_eq!(passed_on(&proxy), 0);
    wait_serving(&servers[0]);

    // A listed status goes on (the connection it came on is closed, not kept).
    let route = "next_upstream = [\"error\", \"timeout\", \"http_502\"]";
    let proxy = ringway(&upstreams, route);
    let bad_gateway = vec![Req::get("/fail-in/a?how=status&code=502"); 3];
    assert_eq!(send_all(proxy.addr(), &bad_gateway), served_by_b(3));
    assert_eq!(passed_on(&proxy), 1);
}

/// Waits until gunicorn has started a new worker in place of the one that died.
fn wait_serving(server: &AppServer) {
    let up = poll_until(Duration::from_secs(30), || {
        std::net::TcpStream::connect(server.addr())
            .map(ringway_tests::Conn::new)
            .and_then(|mut conn| {
                conn.send(&Req::get("/").to_bytes())?;
                conn.read_response()
            })
            .is_ok_and(|r| r.status == 200)
    });
    assert!(up, "gunicorn did not start a new worker: {}", server.log());
}

/// A server whose connect fails is a try, as in nginx: `next_upstream_tries` and
/// `next_upstream_timeout` bound the servers a request waits on before its 504 (found by
/// review: with every server dropping connects, each request waited out every one).
#[test]
fn failed_connects_count_against_next_upstream_tries_and_timeout() {
    let holes = [
        ringway_tests::client::blackhole(),
        ringway_tests::client::blackhole(),
        ringway_tests::client::blackhole(),
    ];
    let servers: Vec<String> = holes.iter().map(|h| h.2.to_string()).collect();
    for (bound, least, most) in [
        ("next_upstream_tries = 1", 900, 1900),
        ("next_upstream_timeout = \"1500ms\"", 1900, 2900),
        ("", 2900, 6000),
    ] {
        let ringway = ringway(
            &servers,
            &format!("upstream_connect_timeout = \"1s\"\n{bound}"),
        );
        let started = std::time::Instant::now();
        let r = roundtrip(ringway.addr(), &Req::get("/"));
        let took = started.elapsed().as_millis();
        assert_eq!(r.status, 504, "{bound:?}: {r:?}");
        assert!(
            (least..most).contains(&took),
            "{bound:?}: answered after {took} ms, {least} to {most} expected (1 s per server)"
        );
    }
}
