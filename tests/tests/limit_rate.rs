//! `limit_rate` and `limit_rate_after` (nginx's): an answer held to a number of bytes per
//! second once its first bytes are out, for files (sendfile and buffered) and the app's
//! answers, and the app's own `X-Accel-Limit-Rate` over the route's, on its answer and on
//! the file its X-Accel-Redirect names. Real ringway, real uWSGI, real sockets, and nginx
//! with the same rate beside it.
//!
//! A rate is a floor on the time an answer takes: each test checks that floor (the bytes past
//! the first step, an eighth of a second's worth, divided by the rate), and a ceiling three
//! times as far, which only a pace gone wrong (waiting far longer than its bytes need) comes
//! near.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::{App, Nginx, Req, Response, Ringway, Uwsgi, pattern, roundtrip};

/// 256 KiB per second: the rate most tests use.
const RATE: usize = 256 * 1024;
/// Three seconds' worth.
const SIZE: usize = 3 * RATE;
/// The least time an answer of `SIZE` bytes at `RATE` takes.
const FLOOR: Duration = floor(SIZE, RATE);

/// The least time `bytes` take at `rate`: all but the first step, an eighth of a second's
/// worth (an answer's head counts too, so it takes a little more).
const fn floor(bytes: usize, rate: usize) -> Duration {
    Duration::from_millis(((bytes - rate / 8) * 1000 / rate) as u64)
}

/// Fetches `target`, timing it.
fn timed(ringway: &Ringway, target: &str) -> (Response, Duration) {
    let start = Instant::now();
    let r = roundtrip(ringway.addr(), &Req::get(target));
    (r, start.elapsed())
}

/// The answer was the whole body, held to the pace: no faster than `floor`, and not far
/// slower.
fn paced(r: &Response, took: Duration, body: &[u8], floor: Duration) {
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == body, "the body differs ({} bytes)", r.body.len());
    assert!(
        took >= floor,
        "took {took:?}, less than the rate allows ({floor:?})"
    );
    assert!(
        took < floor * 3,
        "took {took:?}, far more than the rate needs"
    );
}

/// The answer was the whole body, with no pace holding it back: quicker than half of what
/// the pace would take at the least (a second was the bound, tight for a debug build on a
/// loaded CI machine).
fn unpaced(r: &Response, took: Duration, body: &[u8]) {
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == body, "the body differs ({} bytes)", r.body.len());
    assert!(took < FLOOR / 2, "took {took:?}: held back");
}

fn file_dir(name: &str, body: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join(name), body).expect("file");
    dir
}

fn static_route(path: &str, root: &Path, extra: &str) -> String {
    format!(
        "[[routes]]\npath = \"{path}\"\nstatic = '{}'\n{extra}",
        root.display()
    )
}

#[test]
fn a_file_goes_at_its_route_s_rate_after_limit_rate_after() {
    let body = pattern(SIZE);
    let dir = file_dir("big.bin", &body);
    // The top-level rate holds for every route that says none.
    let ringway = Ringway::with_config(format!(
        "limit_rate = \"{}k\"\n{}{}{}",
        RATE / 1024,
        static_route("/files/", dir.path(), ""),
        static_route(
            "/early/",
            dir.path(),
            &format!("limit_rate_after = {SIZE}\n")
        ),
        static_route("/free/", dir.path(), "limit_rate = 0\n"),
    ))
    .start();

    // Twice: the second from the page cache, by sendfile.
    for _ in 0..2 {
        let (r, took) = timed(&ringway, "/files/big.bin");
        paced(&r, took, &body, FLOOR);
    }
    // A range is an answer of its own: its bytes are paced from its start.
    let start = Instant::now();
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/files/big.bin").header("Range", &format!("bytes={RATE}-")),
    );
    assert_eq!(r.status, 206, "{r:?}");
    assert!(r.body == body[RATE..], "the range differs");
    let took = start.elapsed();
    let least = floor(SIZE - RATE, RATE);
    assert!(
        took >= least,
        "a range took {took:?}, less than the rate allows ({least:?})"
    );

    let (r, took) = timed(&ringway, "/early/big.bin");
    unpaced(&r, took, &body);
    let (r, took) = timed(&ringway, "/free/big.bin");
    unpaced(&r, took, &body);
}

#[test]
fn an_app_s_answer_is_paced_while_its_worker_is_already_free() {
    // One worker: a request served while the paced answer is still going out shows that
    // ringway took the whole answer first (memory, then a temp file), as nginx does.
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        workers: 1,
        ..UwsgiOptions::new(App::Raw)
    });
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"default\"\n\
         limit_rate = \"{}k\"\n",
        uwsgi.upstream(),
        RATE / 1024
    ))
    .start();
    let addr = ringway.addr();
    let download = thread::spawn(move || {
        let start = Instant::now();
        let r = roundtrip(addr, &Req::get(&format!("/bytes/{SIZE}")));
        (r, start.elapsed())
    });
    thread::sleep(Duration::from_millis(500));
    let r = roundtrip(addr, &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"Hello, World!");
    assert!(
        !download.is_finished(),
        "the paced answer was over before the second request"
    );
    let (r, took) = download.join().expect("download");
    paced(&r, took, &pattern(SIZE), FLOOR);
}

#[test]
fn the_app_s_x_accel_limit_rate_overrides_the_route_s() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"default\"\n\
         [[routes]]\npath = \"/held/\"\nupstream = \"default\"\nlimit_rate = \"16k\"\n\
         script_name = \"/held\"\n",
        uwsgi.upstream()
    ))
    .start();
    let body = pattern(SIZE);

    let (r, took) = timed(&ringway, &format!("/limited/{SIZE}?rate={RATE}"));
    paced(&r, took, &body, FLOOR);
    // An instruction to the proxy, not for the client.
    assert_eq!(r.header("x-accel-limit-rate"), None, "{r:?}");

    // 0 lifts the route's limit for this answer, as in nginx.
    let (r, took) = timed(&ringway, &format!("/held/limited/{SIZE}?rate=0"));
    unpaced(&r, took, &body);
    // What nginx does not read as a number changes nothing: the route's 16k holds.
    let (r, took) = timed(&ringway, "/held/limited/32768?rate=1m");
    paced(&r, took, &pattern(32768), floor(32768, 16 * 1024));
}

#[test]
fn an_x_accel_redirect_s_file_goes_at_the_app_s_rate_as_from_nginx() {
    let body = pattern(SIZE);
    let dir = file_dir("big.bin", &body);
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"default\"\n{}",
        uwsgi.upstream(),
        static_route("/protected/", dir.path(), "internal = true\n"),
    ))
    .start();
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "location /protected/ {{ internal; alias {}/; }}",
            dir.path().display()
        ),
    );

    // The same floor holds for both: nginx's pace is the rate from the first byte too.
    for addr in [ringway.addr(), nginx.addr()] {
        let start = Instant::now();
        let target = format!("/accel?to=/protected/big.bin&rate={RATE}");
        let r = roundtrip(addr, &Req::get(&target));
        paced(&r, start.elapsed(), &body, FLOOR);
        assert_eq!(r.header("x-accel-limit-rate"), None, "{r:?}");
    }
    let (r, took) = timed(&ringway, "/accel?to=/protected/big.bin");
    unpaced(&r, took, &body);
}
