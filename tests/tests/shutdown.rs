//! SIGTERM drains: a request in flight completes, idle keep-alive connections and new
//! connections do not hold the exit up, then ringway exits 0.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::websocket::websocket_to;
use ringway_tests::{App, Conn, Req, Ringway, Uwsgi};

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let uwsgi = Uwsgi::start(App::Raw);
    let mut ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();

    // An idle keep-alive connection: it must not keep ringway alive.
    let mut idle = Conn::open(addr);
    idle.send(&Req::get("/").to_bytes()).expect("send");
    assert_eq!(idle.read_response().expect("idle's response").status, 200);

    let mut conn = Conn::open(addr);
    conn.send(&Req::get("/slow?ms=1500").to_bytes())
        .expect("send");
    sleep(Duration::from_millis(300)); // the request is upstream now
    let signalled = Instant::now();
    ringway.sigterm();

    // While draining, a new connection is refused, or closed without an answer.
    sleep(Duration::from_millis(200));
    if let Some(mut late) = Conn::open_or_refused(addr) {
        late.set_read_timeout(Duration::from_secs(2));
        let _ = late.send(&Req::get("/").to_bytes());
        // Closed or reset: a connection left hanging unanswered is no refusal.
        let answer = late.read_response();
        assert!(
            answer
                .as_ref()
                .is_err_and(|e| !ringway_tests::client::is_timeout(e)),
            "a connection opened after SIGTERM is not served: {answer:?}"
        );
    }

    let r = conn
        .read_response()
        .expect("the request in flight completes");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "slept 1500 ms"),
        "{r:?}"
    );
    let status = ringway
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "ringway still running 10 s after SIGTERM:\n{}",
                ringway.stderr()
            )
        });
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        ringway.stderr()
    );
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "exit soon after the last request, idle connections notwithstanding: {took:?}"
    );
    assert!(
        idle.closed_within(Duration::from_secs(1)),
        "the idle connection was closed"
    );
}

#[test]
fn a_shutdown_timeout_raised_by_a_reload_is_the_one_the_drain_gets() {
    let uwsgi = Uwsgi::start(App::Raw);
    let config = |timeout: &str| {
        format!(
            "shutdown_timeout = \"{timeout}\"\nupstream = [\"{}\"]\n",
            uwsgi.upstream()
        )
    };
    let mut ringway = Ringway::with_config(config("1s")).start();
    let line = ringway.reload(&config("8s"));
    assert!(line.contains("configuration reloaded"), "{line}");
    // Longer than the first timeout and the main thread's 2 s backstop after it.
    let mut conn = Conn::open(ringway.addr());
    conn.send(&Req::get("/slow?ms=4500").to_bytes())
        .expect("send");
    sleep(Duration::from_millis(300));
    ringway.sigterm();
    let r = conn
        .read_response()
        .expect("the answer, within the new timeout");
    assert_eq!(r.text(), "slept 4500 ms");
    let status = ringway
        .wait_exit(Duration::from_secs(10))
        .expect("ringway exits after the drain");
    assert!(status.success(), "{status}");
}

/// A connection accepted just before the stop, its PROXY header not sent yet, is not idle:
/// as a plain connection's first request, it has a second's grace to send the header and
/// its request is served (found by review: it was closed the moment the stop began, its
/// load balancer's header and request dropped), as nginx serves a connection that is not
/// keep-alive idle.
#[test]
fn a_connection_sending_its_proxy_header_as_the_stop_begins_is_served() {
    let uwsgi = Uwsgi::start(App::Raw);
    let mut ringway = Ringway::with(&uwsgi).flag("--proxy-protocol").start();
    let addr = ringway.addr();
    // A request in flight keeps the worker draining past the grace.
    let mut busy = Conn::open(addr);
    busy.send(b"PROXY TCP4 192.0.2.1 127.0.0.1 5555 80\r\n")
        .expect("send");
    busy.send(&Req::get("/slow?ms=2000").to_bytes())
        .expect("send");
    let mut late = Conn::open(addr);
    sleep(Duration::from_millis(300));
    ringway.sigterm();
    sleep(Duration::from_millis(300));
    late.send(b"PROXY TCP4 192.0.2.2 127.0.0.1 5556 80\r\n")
        .expect("send");
    late.send(&Req::get("/bytes/5").to_bytes()).expect("send");
    let r = late
        .read_response()
        .unwrap_or_else(|e| panic!("no answer: {e}\n{}", ringway.stderr()));
    assert_eq!((r.status, r.body.len()), (200, 5), "{r:?}");
    assert!(r.says_close(), "the server is stopping: {r:?}");
    let r = busy.read_response().expect("the request in flight");
    assert_eq!(r.status, 200, "{r:?}");
    let status = ringway.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", ringway.stderr());
}

/// Whether an answer keeps the connection is decided as its head is written, as nginx's
/// header filter decides it: one that waited across the start of a stop (here a
/// `limit_req` delay) says `Connection: close` (found by review: it promised keep-alive
/// to a client the drain then closed on).
#[test]
fn an_answer_written_after_the_stop_began_says_close() {
    let mut ringway = Ringway::with_config(
        "[[routes]]\npath = \"/r\"\nrespond = { status = 200, body = \"ok\" }\n\
         limit_req = { rate = \"1r/s\", burst = 5, delay = 0 }\n",
    )
    .start();
    let addr = ringway.addr();
    let mut first = Conn::open(addr);
    first.send(&Req::get("/r").to_bytes()).expect("send");
    let r = first.read_response().expect("the first answer");
    assert!(!r.says_close(), "before the stop: {r:?}");
    // The next is delayed a second by limit_req; the stop begins meanwhile.
    let mut delayed = Conn::open(addr);
    delayed.send(&Req::get("/r").to_bytes()).expect("send");
    sleep(Duration::from_millis(300));
    ringway.sigterm();
    let r = delayed.read_response().expect("the delayed answer");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.says_close(), "written after the stop began: {r:?}");
    let status = ringway.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", ringway.stderr());
}

/// A second stop signal ends the drain at once, as a second Ctrl-C is meant to (nginx's
/// TERM and INT are a fast stop): the request in flight is cut, and logged, and the
/// process exits 0.
#[test]
fn a_second_stop_signal_ends_the_drain_at_once() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let access = dir.path().join("access.log");
    let mut ringway = Ringway::with(&uwsgi)
        .arg("--shutdown-timeout", "30s")
        .arg("--access-log", &access.display().to_string())
        .arg("--access-log-format", "$request $status")
        .start();
    let mut conn = Conn::open(ringway.addr());
    conn.send(&Req::get("/slow?ms=8000").to_bytes())
        .expect("send");
    sleep(Duration::from_millis(300));
    ringway.sigterm();
    sleep(Duration::from_millis(500));
    assert!(
        ringway.wait_exit(Duration::from_millis(100)).is_none(),
        "one signal drains: the request in flight keeps it running"
    );
    let signalled = Instant::now();
    ringway.signal(libc::SIGINT);
    let status = ringway.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        ringway.stderr()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "{:?}",
        signalled.elapsed()
    );
    let log = ringway.stderr();
    assert!(
        log.contains("stopped at once, by a second stop signal"),
        "{log}"
    );
    assert!(
        conn.read_response().is_err(),
        "the request in flight was cut"
    );
    assert_eq!(
        std::fs::read_to_string(&access).expect("the access log"),
        "GET /slow?ms=8000 HTTP/1.1 499\n"
    );
}

/// What `shutdown_timeout` cuts is logged, as nginx's `worker_shutdown_timeout` finalizes
/// the requests it cuts: a request still at its app as its client's leaving (499), a
/// WebSocket as the 101 it was (found by review: neither had a line).
#[test]
fn what_the_shutdown_timeout_cuts_is_logged() {
    // The WebSocket's handshake answers outside start_response, which wsgiref.validate
    // refuses.
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        validate: false,
        ..UwsgiOptions::new(App::Raw)
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let mut ringway = Ringway::with_config(format!(
        "shutdown_timeout = \"1s\"\nupstream = [\"{}\"]\naccess_log = {:?}\n\
         access_log_format = '$request $status'\n",
        uwsgi.upstream(),
        log.display().to_string()
    ))
    .start();
    let mut slow = Conn::open(ringway.addr());
    slow.send(&Req::get("/slow?ms=8000").to_bytes())
        .expect("send");
    let (mut websocket, _) = websocket_to(ringway.addr(), "/websocket");
    sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    ringway.sigterm();
    let status = ringway.wait_exit(Duration::from_secs(6));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        ringway.stderr()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    assert!(slow.read_response().is_err(), "the slow request was cut");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut websocket, &mut rest);
    let mut lines: Vec<String> = std::fs::read_to_string(&log)
        .expect("the access log")
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "GET /slow?ms=8000 HTTP/1.1 499",
            "GET /websocket HTTP/1.1 101"
        ],
        "{}",
        ringway.stderr()
    );
}
