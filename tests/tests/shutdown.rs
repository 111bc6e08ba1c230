//! SIGTERM drains: a request in flight completes, then ringway exits 0.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ringway_tests::{App, Conn, Req, Ringway, Uwsgi};

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let uwsgi = Uwsgi::start(App::Raw);
    let mut ringway = Ringway::start(&uwsgi);
    let mut conn = Conn::open(ringway.addr());
    conn.send(&Req::get("/slow?ms=1500").to_bytes())
        .expect("send");
    sleep(Duration::from_millis(300)); // the request is upstream now
    let signalled = Instant::now();
    ringway.sigterm();
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
    assert!(signalled.elapsed() < Duration::from_secs(10));
}
