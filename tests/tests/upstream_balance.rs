//! A group's servers take requests as nginx's `upstream` block gives them out: `weight`,
//! `backup`, `down`, `max_fails` and `fail_timeout` on each `server` line. Three real uWSGIs
//! named `a`, `b` and `c` (`/fail-in/a` fails in `a` only), ringway (one worker) and nginx
//! (one worker process) in front of them, the same answers from both, request by request;
//! each case starts both proxies fresh.

use ringway_tests::nginx::Nginx;
use ringway_tests::uwsgi::{INSTANCE_HEADER, UwsgiOptions};
use ringway_tests::{App, Req, Ringway, Uwsgi, roundtrip};

/// What a client saw: the status, which server answered (none: the proxy's own error).
type Seen = (u16, Option<String>);

fn trio() -> Vec<Uwsgi> {
    let named = |name: &str| {
        let mut opts = UwsgiOptions::new(App::Raw);
        opts.instance = Some(name.to_owned());
        opts
    };
    Uwsgi::start_all(vec![named("a"), named("b"), named("c")])
}

fn send_all(addr: std::net::SocketAddr, reqs: &[Req]) -> Vec<Seen> {
    reqs.iter()
        .map(|req| {
            let r = roundtrip(addr, req);
            (r.status, r.header(INSTANCE_HEADER))
        })
        .collect()
}

fn by(instances: &str) -> Vec<Seen> {
    instances
        .split_whitespace()
        .map(|i| match i {
            "502" => (502, None),
            "504" => (504, None),
            // `503a`: a's own 503.
            _ if i.starts_with("503") => (503, Some(i[3..].to_owned())),
            name => (200, Some(name.to_owned())),
        })
        .collect()
}

/// nginx (`server` lines with `params[i]`, location lines `nginx`) and ringway (`servers`
/// with the same options, route lines `route`) in front of `uwsgis`.
fn proxies(uwsgis: &[Uwsgi], params: &[&str], (route, nginx): (&str, &str)) -> (Nginx, Ringway) {
    let servers: Vec<(&std::path::Path, &str)> = uwsgis
        .iter()
        .zip(params)
        .map(|(u, p)| (u.socket(), *p))
        .collect();
    let reference = Nginx::start_uwsgi_group_with(&servers, nginx);
    let servers: Vec<String> = uwsgis
        .iter()
        .zip(params)
        .map(|(u, p)| format!("{:?}", format!("{} {p}", u.upstream()).trim()))
        .collect();
    let proxy = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [{}]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n{route}\n",
        servers.join(", ")
    ))
    .workers(1)
    .start();
    (reference, proxy)
}

/// Sends `reqs` through both proxies; each must see `expected`, written as `by` reads it.
fn through_both(both: &(Nginx, Ringway), reqs: &[Req], expected: &str, params: &[&str]) {
    let (reference, proxy) = both;
    let expected = by(expected);
    assert_eq!(
        send_all(reference.addr(), reqs),
        expected,
        "nginx with {params:?}; its error log:\n{}",
        reference.error_log()
    );
    assert_eq!(
        send_all(proxy.addr(), reqs),
        expected,
        "ringway with {params:?}: {}",
        proxy.stderr()
    );
}

/// `reqs` through fresh proxies (see [`proxies`]).
fn case(uwsgis: &[Uwsgi], params: &[&str], lines: (&str, &str), reqs: &[Req], expected: &str) {
    through_both(&proxies(uwsgis, params, lines), reqs, expected, params);
}

const DEFAULTS: (&str, &str) = ("", "");

#[test]
fn servers_take_turns_by_weight_as_in_nginx() {
    let uwsgis = trio();
    let gets = vec![Req::get("/"); 14];
    // nginx's smooth weighted round robin: a's five turns spread between b's and c's.
    let expected = "a a b a c a a a a b a c a a";
    case(&uwsgis, &["weight=5", "", ""], DEFAULTS, &gets, expected);
    case(
        &uwsgis,
        &["", "weight=2", ""],
        DEFAULTS,
        &gets[..8],
        "b a c b b a c b",
    );
    // A server marked down takes nothing.
    case(&uwsgis, &["down", "", ""], DEFAULTS, &gets[..4], "b c b c");
}

#[test]
fn a_backup_takes_requests_only_when_no_primary_can() {
    let uwsgis = trio();
    let backup = ["", "", "backup"];
    case(
        &uwsgis,
        &backup,
        DEFAULTS,
        &vec![Req::get("/"); 4],
        "a b a b",
    );
    // `a` fails a request (it goes on to `b`), then `b` does (no primary is left: it goes
    // on to the backup); both out of turn, the backup takes the next ones.
    let reqs = [
        Req::get("/fail-in/a"),
        Req::get("/fail-in/b"),
        Req::get("/"),
        Req::get("/"),
    ];
    case(&uwsgis, &backup, DEFAULTS, &reqs, "b c c c");
    // One primary and a backup: the primary's failure counts (nginx clears `single` when
    // there are backups), and the backup takes the next ones at once (found by review:
    // each went to the primary first).
    let reqs = [Req::get("/fail-in/a"), Req::get("/"), Req::get("/")];
    case(&uwsgis[..2], &["", "backup"], DEFAULTS, &reqs, "b b b");
}

#[test]
fn max_fails_and_fail_timeout_decide_when_a_server_is_out_of_turn() {
    let uwsgis = trio();
    let two = &uwsgis[..2];
    let off = ("next_upstream = \"off\"", "uwsgi_next_upstream off;");
    let fails = vec![Req::get("/fail-in/a"); 6];
    // nginx's default, max_fails=1: `a` is out after its first failure.
    case(two, &["", ""], off, &fails, "502 b b b b b");
    // Two failures within fail_timeout take it out.
    case(two, &["max_fails=2", ""], off, &fails, "502 b 502 b b b");
    // max_fails=0: never out of turn.
    case(two, &["max_fails=0", ""], off, &fails, "502 b 502 b 502 b");
    // A listed status counts only when the request goes on for it: a POST's 503 is the
    // client's answer, and `a` stays in turn.
    let listed = (
        "next_upstream = [\"error\", \"timeout\", \"http_503\"]",
        "uwsgi_next_upstream error timeout http_503;",
    );
    let posts = vec![Req::post("/fail-in/a?how=status&code=503", b"x"); 4];
    case(two, &["", ""], listed, &posts, "503a b 503a b");
    let gets = vec![Req::get("/fail-in/a?how=status&code=503"); 3];
    case(two, &["", ""], listed, &gets, "b b b");
    // fail_timeout=1s: out for a second after its failure (nginx counts whole seconds:
    // two are waited), then back in turn, its weight regained a step a turn.
    let params = ["fail_timeout=1s", ""];
    let both = proxies(two, &params, off);
    through_both(&both, &fails[..2], "502 b", &params);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    through_both(&both, &fails[..4], "b b 502 b", &params);
}

/// A server whose connect failed is not tried again for that request: when the next one
/// answers with a status the request would go on for, no server is left and that answer is
/// the client's, as from nginx (found by review: ringway went back to the refusing server
/// and answered 502, the answer in hand lost).
#[test]
fn a_server_whose_connect_failed_is_not_tried_again_for_the_request() {
    let mut uwsgis = trio();
    let listed = (
        "next_upstream = [\"error\", \"timeout\", \"http_503\"]",
        "uwsgi_next_upstream error timeout http_503;",
    );
    let params = ["", ""];
    let both = proxies(&uwsgis[..2], &params, listed);
    uwsgis[0].kill();
    // `a`'s turn first: its connect is refused, `b` answers 503.
    through_both(&both, &[Req::get("/status/503")], "503b", &params);
}

/// The same turns over HTTP servers, whose connections are kept: a kept connection is
/// taken from the server whose turn it is, never in place of the turn.
#[test]
fn http_servers_take_turns_by_weight_over_kept_connections() {
    use ringway_tests::app_server::AppServer;
    let servers = AppServer::named_gunicorns(&["a", "b"]);
    let upstreams: Vec<String> = servers.iter().map(AppServer::upstream).collect();
    let proxy = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [\"{} weight=3\", \"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        upstreams[0], upstreams[1]
    ))
    .workers(1)
    .arg("--metrics", "127.0.0.1:0")
    .start();
    // Twice round: the second on the connections the first left open.
    let seen = send_all(proxy.addr(), &vec![Req::get("/"); 8]);
    assert_eq!(seen, by("a a b a a a b a"), "{}", proxy.stderr());
    let metrics = roundtrip(proxy.metrics_addr(), &Req::get("/metrics")).text();
    let series = "ringway_upstream_connections_reused_total{upstream=\"app\"} ";
    let reused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
    assert!(reused >= 6, "{reused} requests on kept connections");
}

#[test]
fn next_upstream_tries_and_timeout_bound_the_moves_as_in_nginx() {
    let uwsgis = trio();
    let all = ["", "", ""];
    // Every server answers 503, listed: the request goes round them all, or two.
    let unavailable = [Req::get("/status/503")];
    let listed = (
        "next_upstream = [\"error\", \"timeout\", \"http_503\"]",
        "uwsgi_next_upstream error timeout http_503;",
    );
    case(&uwsgis, &all, listed, &unavailable, "503c");
    let two_tries = (
        "next_upstream = [\"error\", \"timeout\", \"http_503\"]\nnext_upstream_tries = 2",
        "uwsgi_next_upstream error timeout http_503; uwsgi_next_upstream_tries 2;",
    );
    case(&uwsgis, &all, two_tries, &unavailable, "503b");
    // `a` is slower than the read timeout: with a second to move in, the time is spent.
    let slow = [Req::get("/fail-in/a?how=sleep&ms=1500")];
    let timed = (
        "upstream_read_timeout = \"1s\"\nnext_upstream_timeout = \"1s\"",
        "uwsgi_read_timeout 1s; uwsgi_next_upstream_timeout 1s;",
    );
    case(&uwsgis, &all, timed, &slow, "504");
    let untimed = ("upstream_read_timeout = \"1s\"", "uwsgi_read_timeout 1s;");
    case(&uwsgis, &all, untimed, &slow, "b");
}

/// `balance = "ip_hash"` against nginx's `ip_hash`: clients named by a trusted proxy's
/// X-Forwarded-For (IPv4 by their first three bytes, IPv6 whole) land on the server nginx
/// sends them to, weights counted, and keep to it; a server marked down, or whose connect
/// fails, passes its clients on by hashing again, as nginx's.
#[test]
fn ip_hash_sends_each_client_where_nginx_sends_it() {
    let uwsgis = trio();
    let clients: Vec<String> = (0..24)
        .map(|i| format!("198.51.{i}.{}", 200 - i))
        .chain((0..8).map(|i| format!("2001:db8:{i:x}::{:x}", i * 7 + 1)))
        .collect();
    let reqs: Vec<Req> = clients
        .iter()
        .map(|c| Req::get("/").header("X-Forwarded-For", c))
        .collect();
    let realip = "set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;";
    let route = "[[routes]]\npath = \"/\"\nupstream = \"app\"\n";
    for params in [["", "", ""], ["", "weight=3", ""], ["", "down", ""]] {
        let servers: Vec<(&std::path::Path, &str)> = uwsgis
            .iter()
            .zip(params)
            .map(|(u, p)| (u.socket(), p))
            .collect();
        let nginx = Nginx::start_uwsgi_group_balanced(&servers, "ip_hash;", realip);
        let listed: Vec<String> = uwsgis
            .iter()
            .zip(params)
            .map(|(u, p)| format!("{:?}", format!("{} {p}", u.upstream()).trim()))
            .collect();
        let ringway = Ringway::with_config(format!(
            "trusted_proxy = [\"127.0.0.1\"]\n[upstreams.app]\nservers = [{}]\n\
             balance = \"ip_hash\"\n{route}",
            listed.join(", ")
        ))
        .workers(1)
        .start();
        let by_nginx = send_all(nginx.addr(), &reqs);
        assert_eq!(
            send_all(ringway.addr(), &reqs),
            by_nginx,
            "{params:?}: ringway, then nginx"
        );
        // Spread over the servers that take requests, and the same again.
        let used: std::collections::BTreeSet<_> = by_nginx.iter().map(|s| s.1.clone()).collect();
        let taking = params.iter().filter(|p| !p.contains("down")).count();
        assert_eq!(used.len(), taking, "{params:?}: {by_nginx:?}");
        assert_eq!(
            send_all(ringway.addr(), &reqs),
            by_nginx,
            "{params:?}: kept to"
        );
    }

    // A server that refuses its connects: its clients go where hashing again sends them
    // (the first of them after the failed connect, the rest at once: out of turn).
    let dead = uwsgis[0].socket().with_file_name("no-such-app.sock");
    let servers = [
        (dead.as_path(), ""),
        (uwsgis[1].socket(), ""),
        (uwsgis[2].socket(), ""),
    ];
    let nginx = Nginx::start_uwsgi_group_balanced(&servers, "ip_hash;", realip);
    let ringway = Ringway::with_config(format!(
        "trusted_proxy = [\"127.0.0.1\"]\n[upstreams.app]\nservers = [\"unix:{}\", \"{}\", \"{}\"]\n\
         balance = \"ip_hash\"\n{route}",
        dead.display(),
        uwsgis[1].upstream(),
        uwsgis[2].upstream()
    ))
    .workers(1)
    .start();
    let by_nginx = send_all(nginx.addr(), &reqs);
    assert!(by_nginx.iter().all(|s| s.0 == 200), "{by_nginx:?}");
    assert_eq!(
        send_all(ringway.addr(), &reqs),
        by_nginx,
        "a dead server: ringway, then nginx"
    );
}

/// `balance = "least_conn"` sends each request where nginx's `least_conn` sends it: to the
/// server with the fewest requests in flight, round robin among equals. Two slow requests
/// hold `a` and `b`; the quick ones after them all go to `c`.
#[test]
fn least_conn_sends_requests_where_nginx_sends_them() {
    let uwsgis = trio();
    let servers: Vec<(&std::path::Path, &str)> = uwsgis.iter().map(|u| (u.socket(), "")).collect();
    let nginx = Nginx::start_uwsgi_group_balanced(&servers, "least_conn;", "");
    let listed: Vec<String> = uwsgis
        .iter()
        .map(|u| format!("{:?}", u.upstream()))
        .collect();
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [{}]\nbalance = \"least_conn\"\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        listed.join(", ")
    ))
    .workers(1)
    .start();
    let mut idle = Vec::new();
    for (proxy, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
        let slow: Vec<_> = (0..2)
            .map(|_| {
                let held = std::thread::spawn(move || send_all(addr, &[Req::get("/slow?ms=2000")]));
                // Each at its server before the next request is picked for.
                std::thread::sleep(std::time::Duration::from_millis(300));
                held
            })
            .collect();
        let quick = send_all(addr, &vec![Req::get("/"); 4]);
        let slow: Vec<Seen> = slow
            .into_iter()
            .flat_map(|held| held.join().expect("the slow request"))
            .collect();
        assert_eq!(slow, by("a b"), "{proxy}: the slow requests");
        assert_eq!(
            quick,
            by("c c c c"),
            "{proxy}: the quick ones, while a and b are busy"
        );
        // Nothing in flight any more: the round robin's turns, where they stood.
        idle.push(send_all(addr, &vec![Req::get("/"); 4]));
    }
    assert_eq!(idle[1], idle[0], "all idle: ringway's, then nginx's");
}
