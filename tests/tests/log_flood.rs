//! Per-request log lines are rate-limited: a flood of bad requests or of upstream failures
//! gives a bounded log (the first lines in full, then `suppressed` summaries with a count),
//! and a client's mistake is never a warning.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ringway_tests::client::READ_TIMEOUT;
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Ringway, Uwsgi};

/// What "bounded" means: a flood of thousands of lines would be far past it, a handful of
/// full lines plus summaries far under.
const MAX_LINES: usize = 200;
/// Client threads sending the flood (the machine has two CPUs, ringway one worker).
const CLIENTS: usize = 4;
/// How long a summary may take to appear once the flood is over (the interval is
/// ringway's business; this is only a safety limit).
const SUMMARY_LIMIT: Duration = Duration::from_secs(30);

/// Sends `wire` on a new connection and returns the answer, read until ringway closes.
fn one_shot(addr: SocketAddr, wire: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    stream.write_all(wire).expect("send");
    let mut answer = Vec::new();
    // A reset after the answer is as good as a close.
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Sends `wire` `count` times, each on its own connection, from [`CLIENTS`] threads;
/// asserts each answer starts with `status_line`. Returns how long it took.
fn flood(addr: SocketAddr, wire: &[u8], count: usize, status_line: &str) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            s.spawn(move || {
                for i in (client..count).step_by(CLIENTS) {
                    let answer = one_shot(addr, wire);
                    assert!(
                        answer.starts_with(status_line.as_bytes()),
                        "request {i}: want {status_line:?}, got {:?}",
                        String::from_utf8_lossy(&answer[..answer.len().min(200)])
                    );
                }
            });
        }
    });
    started.elapsed()
}

/// Whether `line` is a summary: it says `suppressed` and gives a count (a positive number
/// past the leading timestamp; the wording around it is ringway's choice).
fn is_summary(line: &str) -> bool {
    let message = line.split_once(' ').map_or("", |(_timestamp, rest)| rest);
    message.contains("suppressed")
        && message
            .split(|c: char| !c.is_ascii_digit())
            .any(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
}

/// Asserts the log stayed bounded through a flood of `count` requests, then waits for a
/// `suppressed` summary, sending one more `wire` now and then in case summaries are written
/// when the next line is due rather than on a timer.
fn assert_bounded_and_summarized(
    ringway: &Ringway,
    wire: &[u8],
    count: usize,
    took: Duration,
    what: &str,
) {
    sleep(Duration::from_millis(200)); // the last lines of the flood are written
    let lines = ringway.stderr().lines().count();
    assert!(
        lines < MAX_LINES,
        "{count} requests in {took:?} left {lines} log lines (want under {MAX_LINES}); the \
         last ones:\n{}",
        tail(&ringway.stderr(), 10)
    );
    let summarized = poll_until(SUMMARY_LIMIT, || {
        if ringway.stderr().lines().any(is_summary) {
            return true;
        }
        one_shot(ringway.addr(), wire);
        sleep(Duration::from_millis(250));
        false
    });
    assert!(
        summarized,
        "no line with `suppressed` and a count within {SUMMARY_LIMIT:?} of a flood of \
         {count} {what}; stderr:\n{}",
        tail(&ringway.stderr(), 20)
    );
    let lines = ringway.stderr().lines().count();
    assert!(
        lines < MAX_LINES,
        "{lines} log lines after the summary (want under {MAX_LINES}):\n{}",
        tail(&ringway.stderr(), 10)
    );
}

#[test]
fn a_summary_line_needs_the_word_and_a_count() {
    let at = "2026-01-01T00:00:00.000000Z";
    assert!(is_summary(&format!(
        "{at}  INFO ringway::log: 1234 similar lines suppressed"
    )));
    assert!(is_summary(&format!(
        "{at}  WARN ringway: suppressed=17 what=\"upstream\""
    )));
    assert!(!is_summary(&format!(
        "{at}  INFO ringway: lines suppressed"
    )));
    assert!(!is_summary(&format!(
        "{at}  INFO ringway: rejected request status=400"
    )));
}

/// The last `n` lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Asserts no line of `log` from line `from` on is a warning or an error.
fn assert_no_warnings_since(log: &str, from: usize, what: &str) {
    let warned: Vec<&str> = log
        .lines()
        .skip(from)
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    assert!(
        warned.is_empty(),
        "{what}: {} lines at WARN or ERROR (client errors log at debug or info), the first:\n{}",
        warned.len(),
        warned[..warned.len().min(5)].join("\n")
    );
}

/// 20,000 malformed request lines: a bounded log, and not one warning (the client's
/// mistake is not the operator's problem). Client errors may log at debug, in which case
/// an info log has nothing to summarize; if they log at info, a summary must say how many
/// were left out.
#[test]
fn a_flood_of_bad_requests_gives_a_bounded_log_without_warnings() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).env("RUST_LOG", "info").start();
    let wire = b"GARBAGE\r\n\r\n";
    let count = 20_000;
    let at_start = ringway.stderr().lines().count();
    let took = flood(ringway.addr(), wire, count, "HTTP/1.1 400 ");
    assert_no_warnings_since(&ringway.stderr(), at_start, "the flood");
    if ringway.stderr().lines().count() > at_start {
        assert_bounded_and_summarized(&ringway, wire, count, took, "bad requests");
    }
    assert_no_warnings_since(&ringway.stderr(), at_start, "the flood and the summary");
}

/// 5,000 requests while uWSGI is down (a socket file nobody listens on): 502 each, a
/// bounded log and a `suppressed` summary.
#[test]
fn a_flood_of_upstream_failures_gives_a_bounded_log_with_a_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    let ringway = Ringway::builder()
        .upstream(format!("unix:{}", stale.display()))
        .env("RUST_LOG", "info")
        .start();
    let wire = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let count = 5_000;
    let took = flood(ringway.addr(), wire, count, "HTTP/1.1 502 ");
    assert_bounded_and_summarized(&ringway, wire, count, took, "upstream failures");
}
