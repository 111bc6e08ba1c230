//! Signals besides SIGTERM (shutdown.rs has those tests): SIGINT and SIGQUIT drain like
//! SIGTERM; SIGHUP reloads the configuration (reload.rs has what a reload changes) and a
//! request in flight completes across it; SIGUSR1 without an access log file (access_log.rs
//! has the reopening) and SIGUSR2 (nginx's upgrade signal) are logged as changing nothing;
//! none ever stops ringway.

use std::thread::sleep;
use std::time::Duration;

use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Req, Ringway, Uwsgi, roundtrip};

/// Time for an in-flight `/slow` request to be upstream before the signal.
const UPSTREAM_BY_NOW: Duration = Duration::from_millis(300);

/// Starts `GET /slow?ms=1000` and returns its connection once the request is upstream.
fn request_in_flight(ringway: &Ringway) -> Conn {
    let mut conn = Conn::open(ringway.addr());
    conn.send(&Req::get("/slow?ms=1000").to_bytes())
        .expect("send");
    sleep(UPSTREAM_BY_NOW);
    conn
}

fn assert_slow_request_completes(conn: &mut Conn, ringway: &Ringway, what: &str) {
    let r = conn.read_response().unwrap_or_else(|e| {
        panic!(
            "{what}: the request in flight did not complete ({e}); stderr:\n{}",
            ringway.stderr()
        )
    });
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "slept 1000 ms"),
        "{what}: {r:?}"
    );
}

/// `signal` drains: the request in flight completes, a new connection is not served, and
/// ringway exits 0.
fn assert_graceful_drain(signal: libc::c_int, name: &str) {
    let uwsgi = Uwsgi::start(App::Raw);
    let mut ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    let mut in_flight = request_in_flight(&ringway);
    ringway.signal(signal);

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
            "a connection opened after {name} is not served: {answer:?}"
        );
    }

    assert_slow_request_completes(&mut in_flight, &ringway, &format!("after {name}"));
    let status = ringway
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "ringway still running 10 s after {name}:\n{}",
                ringway.stderr()
            )
        });
    assert!(
        status.success(),
        "{name}: exit status {status} (a graceful stop exits 0); stderr:\n{}",
        ringway.stderr()
    );
}

#[test]
fn sigint_drains_then_exits_0() {
    assert_graceful_drain(libc::SIGINT, "SIGINT");
}

#[test]
fn sigquit_drains_then_exits_0() {
    assert_graceful_drain(libc::SIGQUIT, "SIGQUIT");
}

/// How many stderr lines name `name` and say `what`.
fn lines_saying(ringway: &Ringway, name: &str, what: &str) -> usize {
    ringway
        .stderr()
        .lines()
        .filter(|line| line.contains(name) && line.contains(what))
        .count()
}

/// `signal` is logged (a line naming it and saying `what`) and ignored: sent twice (a
/// handler that resets itself would let the second one kill), ringway keeps running, a
/// request in flight completes, and a new one is served.
fn assert_logged_and_ignored(signal: libc::c_int, name: &str, what: &str) {
    let uwsgi = Uwsgi::start(App::Raw);
    let mut ringway = Ringway::start(&uwsgi);
    let mut in_flight = request_in_flight(&ringway);
    for round in 1..=2 {
        ringway.signal(signal);
        // Until the line for this round shows (or the signal killed ringway).
        poll_until(Duration::from_secs(5), || {
            lines_saying(&ringway, name, what) >= round || !ringway.is_running()
        });
        if let Some(status) = ringway.wait_exit(Duration::ZERO) {
            panic!(
                "{name} #{round} stopped ringway ({status}); it must log and keep serving. \
                 stderr:\n{}",
                ringway.stderr()
            );
        }
    }
    assert!(
        lines_saying(&ringway, name, what) >= 1,
        "no log line with `{name}` and `{what}`; stderr:\n{}",
        ringway.stderr()
    );
    assert_slow_request_completes(&mut in_flight, &ringway, &format!("across {name}"));
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "a new request after {name}: {r:?}"
    );
    assert!(ringway.is_running(), "still running after {name}");
}

#[test]
fn sighup_reloads_and_keeps_serving() {
    assert_logged_and_ignored(libc::SIGHUP, "SIGHUP", "configuration reloaded");
}

/// No access log file: nothing to reopen.
#[test]
fn sigusr1_without_a_log_file_is_logged_and_ignored() {
    assert_logged_and_ignored(libc::SIGUSR1, "SIGUSR1", "no access log file to reopen");
}

/// nginx's binary upgrade signal: ringway's upgrade is a new process, so it is only logged
/// (its default action would end the process at once).
#[test]
fn sigusr2_is_logged_and_ignored() {
    assert_logged_and_ignored(libc::SIGUSR2, "SIGUSR2", "nothing changed");
}

/// Under a service manager (`Type=notify`, `$NOTIFY_SOCKET`), ringway says when it is
/// ready, reloading and stopping, as sd_notify(3) says it: `systemctl start` then waits for
/// the listeners and fails with the start (found by review: the unit's `Type=exec` called a
/// start that failed a success).
#[test]
fn a_service_manager_is_told_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let manager = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
    manager
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let next = || {
        let mut buf = [0u8; 512];
        let n = manager.recv(&mut buf).expect("a message within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let uwsgi = Uwsgi::start(App::Raw);
    let config = format!("upstream = [\"{}\"]\n", uwsgi.upstream());
    let ringway = Ringway::with_config(config.clone())
        .env("NOTIFY_SOCKET", &path.display().to_string())
        .start();
    let ready = next();
    assert_eq!(
        ready,
        format!("READY=1\nMAINPID={}", ringway.pid()),
        "{}",
        ringway.stderr()
    );
    assert_eq!(roundtrip(ringway.addr(), &Req::get("/")).status, 200);
    ringway.reload(&config);
    assert!(next().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(next(), "READY=1\nSTATUS=serving");
    ringway.reload("not toml [");
    assert!(next().starts_with("RELOADING=1\n"));
    let refused = next();
    assert!(
        refused.starts_with("READY=1\nSTATUS=reload refused, the old configuration serves: "),
        "{refused}"
    );
    ringway.sigterm();
    assert_eq!(next(), "STOPPING=1");
}
