//! HTTP/2 clients that misbehave on purpose (`tests/tools/h2_client.py`, on the h2 library):
//! a client that opens no window, one that gives up mid-upload, one that resets a stream
//! while the app works on it (with and without `ignore_client_abort`), a reset flood, more
//! streams than the limit, a request without `:path`. Each ends in a bounded time with the
//! connection or the server still serving, and leaves nothing behind in the app.

use std::process::Command;
use std::time::Duration;

use ringway_tests::log_lines::{UPSTREAM_FORMAT, upstream_line};
use ringway_tests::ringway::RingwayBuilder;
use ringway_tests::tls::{python, run};
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::{App, paths};
use serde_json::Value;

use super::Stack;

/// ringway with HTTP/2 on, in front of the Flask app, with a 1 s `send_timeout` (the bound
/// on a stream whose client opens no window) and the access log on stderr.
fn stack() -> Stack {
    stack_with(|b| b)
}

/// [`stack`], with `more` flags.
fn stack_with(more: impl FnOnce(RingwayBuilder) -> RingwayBuilder) -> Stack {
    let files = paths::workspace_root().join("tests/apps/static");
    Stack::start(App::Flask, "http2 = true", |b| {
        more(
            b.arg("--send-timeout", "1s")
                .arg("--access-log", "stderr")
                .arg("--static", &format!("/static/={}", files.display())),
        )
    })
}

/// [`stack`], with `--ignore-client-abort` when `ignoring`, and a log line that shows the
/// app's side: `$request_uri $status $upstream_status $upstream_response_time`.
fn abort_stack(ignoring: bool) -> Stack {
    stack_with(|b| {
        let b = b.arg("--access-log-format", UPSTREAM_FORMAT);
        if ignoring {
            b.flag("--ignore-client-abort")
        } else {
            b
        }
    })
}

/// Runs one scenario of the hostile client against the stack's TLS port.
fn h2_client(stack: &Stack, scenario: &str, args: &[&str]) -> Value {
    let ran = run(
        Command::new(python())
            .arg(paths::workspace_root().join("tests/tools/h2_client.py"))
            .arg(scenario)
            .args(["--connect", &stack.tls().to_string()])
            .args(["--authority", &format!("a.test:{}", stack.tls().port())])
            .args(args),
        b"",
        Duration::from_secs(40),
    );
    let out = ran.out();
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {}", ran.all()))
}

#[test]
fn a_client_that_opens_no_window_is_reset_after_the_send_timeout_and_its_connection_serves_on() {
    let stack = stack();
    let got = h2_client(
        &stack,
        "stalled-reader",
        &["--path", "/bytes/1000000", "--second-path", "/bytes/7"],
    );
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["data"], 0, "a window of 0 lets no DATA through: {got}");
    assert_eq!(got["reset"], "CANCEL", "{got}");
    let after = got["ended_after"].as_f64().unwrap_or(f64::MAX);
    assert!(
        (0.9..10.0).contains(&after),
        "reset by the 1 s send timeout (got {after} s): {got}"
    );
    assert_eq!(got["goaway"], Value::Null, "only the stream ends: {got}");
    assert_eq!(got["second"]["status"], 200, "{got}");
    assert_eq!(got["second"]["data"], 7, "{got}");
}

/// A stream whose answer waits for the client's window is counted by the connection limits
/// until it ends, as nginx counts it until its request is freed (found by review: its count
/// went with its pipeline, done once the answer was in the pipe, and a client that opened
/// no window held 128 streams' buffers per connection with none counted).
/// The h2 client holding `count` streams for `/bytes/7` open, with no window for their
/// answers, for `seconds` at most; their heads answered.
fn stalled_streams(stack: &Stack, count: u32, seconds: u32) -> crate::HeldH2 {
    let authority = format!("a.test:{}", stack.tls().port());
    let (count, seconds) = (count.to_string(), seconds.to_string());
    let args = [
        "--authority",
        &authority,
        "--path",
        "/bytes/7",
        "--count",
        &count,
        "--timeout",
        &seconds,
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let mut held = crate::HeldH2::scenario("stalled-streams", stack.tls(), &args);
    held.first_answered();
    held
}

#[test]
fn streams_waiting_for_a_window_stay_counted_by_limit_conn() {
    let stack = Stack::start(
        App::Flask,
        "http2 = true\n[[routes]]\npath = \"/bytes/\"\nupstream = \"default\"\n\
         send_timeout = \"6s\"\n",
        |b| b.arg("--limit-conn-per-ip", "2"),
    );
    // Two streams on one connection: its own count and the second stream's.
    let held = stalled_streams(&stack, 2, 5);
    // The answers are in their pipes by now, their pipelines done.
    std::thread::sleep(Duration::from_millis(500));
    let third = h2_client(
        &stack,
        "many-streams",
        &["--path", "/bytes/7", "--count", "1"],
    );
    // A connection over the limit: told to go away at once (its stream's 503 comes after
    // the GOAWAY, which this client takes no frame after), never served.
    assert!(
        third["statuses"]["200"].is_null() && !third["goaway"].is_null(),
        "a third stream is over the limit of 2: {third}"
    );
    drop(held);
}

/// A connection over a connection limit is counted by none, so its stream's 503 is all it
/// is owed: an upload trickled on after that is drained 2 s at most, as a refused HTTP/1.1
/// connection's (found by review: the stream's drain held it the full 30 s).
#[test]
fn a_refused_connections_trickled_upload_is_not_drained_for_long() {
    let stack = stack_with(|b| b.arg("--limit-conn-per-ip", "1"));
    let held = stalled_streams(&stack, 1, 30);
    std::thread::sleep(Duration::from_millis(300));
    let trickled = h2_client(
        &stack,
        "trickled-upload",
        &[
            "--path",
            "/echo",
            "--size",
            "1000",
            "--pause",
            "0.5",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(trickled["status"], 503, "over the limit of 1: {trickled}");
    assert_eq!(trickled["closed"], true, "{trickled}");
    let after = trickled["closed_after"].as_f64().unwrap_or(f64::MAX);
    assert!(after < 8.0, "closed within the brief drain: {trickled}");
    drop(held);
}

/// A route's own `send_timeout` bounds its streams' waits for the client's window, as an
/// HTTP/1.1 answer's waits on its socket (found by review: the server's 1 s reset them).
#[test]
fn a_routes_send_timeout_bounds_its_streams_wait_for_a_window() {
    let files = paths::workspace_root().join("tests/apps/static");
    let stack = Stack::start(
        App::Flask,
        "http2 = true\n[[routes]]\npath = \"/bytes/\"\nupstream = \"default\"\n\
         send_timeout = \"4s\"\n",
        |b| {
            b.arg("--send-timeout", "1s")
                .arg("--static", &format!("/static/={}", files.display()))
        },
    );
    let got = h2_client(
        &stack,
        "stalled-reader",
        &["--path", "/bytes/1000000", "--second-path", "/bytes/7"],
    );
    assert_eq!(got["reset"], "CANCEL", "{got}");
    let after = got["ended_after"].as_f64().unwrap_or(f64::MAX);
    assert!(
        (3.9..10.0).contains(&after),
        "reset by the route's 4 s send timeout (got {after} s): {got}"
    );
    assert_eq!(got["second"]["status"], 200, "{got}");
}

#[test]
fn an_upload_given_up_midway_ends_as_a_client_gone_and_the_connection_serves_on() {
    let stack = stack();
    let got = h2_client(
        &stack,
        "reset-upload",
        &[
            "--path",
            "/echo",
            "--size",
            "1048576",
            "--sent",
            "65536",
            "--second-path",
            "/bytes/7",
        ],
    );
    assert_eq!(got["sent"], 65536, "{got}");
    assert_eq!(got["second"]["status"], 200, "{got}");
    assert_eq!(got["second"]["data"], 7, "{got}");
    // The pipeline sees the stream's end of the pipe close mid-body: the app is never
    // called with a cut body, and the log says the client left there (499, as nginx's
    // "client prematurely closed stream"; found by review: 400, a client error).
    let line = upload_line(&stack);
    assert!(line.contains("\" 499 "), "a cancelled upload: {line}");
}

/// The access log line of the upload to `/echo`, once there is one.
fn upload_line(stack: &Stack) -> String {
    let logged = "\"POST /echo HTTP/2.0\"";
    assert!(
        stack.ringway.wait_for_log(logged, Duration::from_secs(10)),
        "{}",
        stack.ringway.stderr()
    );
    let log = stack.ringway.stderr();
    log.lines()
        .find(|l| l.contains(logged))
        .unwrap_or_default()
        .to_owned()
}

/// A stream's window is 256 KiB (an upload sends that much per round trip, not h2's 64 KiB)
/// and the connection's 8 MiB, so uploads held back do not stall the others (found by
/// review: 16 held uploads closed a 1 MiB connection window).
#[test]
fn an_upload_has_a_window_of_256_kib_and_the_connection_one_of_8_mib() {
    let stack = stack();
    let got = h2_client(&stack, "windows", &["--path", "/bytes/7"]);
    assert_eq!(got["answer"]["status"], 200, "{got}");
    assert_eq!(got["stream"], 256 * 1024, "{got}");
    assert_eq!(got["connection"], 8 * 1024 * 1024, "{got}");
}

/// An upload whose connection is lost midway (no reset, the socket closed) is the client
/// leaving too: 499, as nginx's "client prematurely closed stream" for every stream of a
/// connection that ended (found by review: 400). The close comes half a second after the
/// bytes: one read with them would end the connection before the stream was taken.
#[test]
fn an_upload_whose_connection_is_lost_midway_ends_as_a_client_gone() {
    let stack = stack();
    let got = h2_client(
        &stack,
        "reset-upload",
        &[
            "--path", "/echo", "--size", "1048576", "--sent", "16384", "--pause", "0.5", "--drop",
        ],
    );
    assert_eq!(got["sent"], 16384, "{got}");
    let line = upload_line(&stack);
    assert!(line.contains("\" 499 "), "a lost upload: {line}");
}

/// A stream reset while its request is at the app ends that request at once (the app's
/// answer is not waited for: 499); with `ignore_client_abort` the request runs on, as
/// nginx's does, and is logged with the app's status and time. The connection serves on.
#[test]
fn a_stream_reset_at_the_app_ends_its_request_unless_client_aborts_are_ignored() {
    // Ended at the reset, 0.2 s in; or the app's answer read whole after its 1.5 s.
    for (ignoring, want, times) in [
        (false, (499, None), 0.1..1.0),
        (true, (200, Some(200)), 1.5..5.0),
    ] {
        let stack = abort_stack(ignoring);
        let got = h2_client(
            &stack,
            "reset-waiting",
            &[
                "--path",
                "/slow?ms=1500",
                "--wait",
                "0.2",
                "--second-path",
                "/bytes/7",
            ],
        );
        assert_eq!(got["early"], Value::Null, "reset before any answer: {got}");
        assert_eq!(got["second"]["status"], 200, "{got}");
        assert_eq!(got["second"]["data"], 7, "{got}");
        let mut line = None;
        ringway_tests::wait::poll_until(Duration::from_secs(10), || {
            line = upstream_line(&stack.ringway.stderr(), "/slow?ms=1500");
            line.is_some()
        });
        let Some((status, upstream, time)) = line else {
            panic!("ignoring: {ignoring}, no line:\n{}", stack.ringway.stderr())
        };
        assert!(
            (status, upstream) == want && times.contains(&time),
            "ignoring: {ignoring}: {status} {upstream:?} {time}"
        );
    }
}

/// With `ignore_client_abort`, a stream reset while its request is at the app leaves its
/// request running, and that request keeps its admission and its place among its
/// connection's streams until the app answers, as nginx keeps it: with
/// `limit_conn_per_ip = 2`, two such requests leave no room for a third stream (503),
/// until they end. (Before, the place went with the stream's task: the third stream rode
/// the connection's own admission and was served.)
#[test]
fn a_reset_stream_whose_request_runs_on_keeps_its_admission() {
    let stack = stack_with(|b| {
        b.flag("--ignore-client-abort")
            .arg("--limit-conn-per-ip", "2")
            .arg("--access-log-format", UPSTREAM_FORMAT)
    });
    let got = h2_client(
        &stack,
        "reset-waiting",
        &[
            "--path",
            "/slow?ms=2500",
            "--streams",
            "2",
            "--wait",
            "0.3",
            "--second-path",
            "/bytes/7",
        ],
    );
    assert_eq!(got["early"], Value::Null, "reset before any answer: {got}");
    assert_eq!(got["second"]["status"], 503, "{got}");
    // Both requests were kept at the app: answered, read whole and logged as such.
    let logged = ringway_tests::wait::poll_until(Duration::from_secs(10), || {
        stack
            .ringway
            .stderr()
            .matches("/slow?ms=2500 200 200")
            .count()
            == 2
    });
    assert!(logged, "{}", stack.ringway.stderr());
    // Then their places are free: a new stream is served.
    let fresh = h2_client(
        &stack,
        "many-streams",
        &["--path", "/bytes/7", "--count", "1"],
    );
    assert_eq!(fresh["statuses"]["200"], 1, "{fresh}");
}

/// A stream reset while its request, its body not read yet, is held back by its route's
/// `limit_req` delay ends at once (499), and the app never sees it: the pipe's watch sees
/// the reset although body bytes wait unread (before, they hid it until the delay ran
/// out, a minute here).
#[test]
fn a_stream_reset_while_limit_req_holds_its_request_ends_at_once() {
    let stack = Stack::start(
        App::Flask,
        "http2 = true
         [[routes]]
path = \"/echo\"
upstream = \"default\"
         limit_req = { rate = \"1r/m\", burst = 5, delay = 0 }
         [[routes]]
path = \"/\"
upstream = \"default\"
",
        |b| {
            b.arg("--access-log", "stderr").arg(
                "--access-log-format",
                "$request_method $request_uri $status",
            )
        },
    );
    // The first request passes at once; the next would wait a minute.
    let first = h2_client(&stack, "many-streams", &["--path", "/echo", "--count", "1"]);
    assert_eq!(first["statuses"]["405"], 1, "{first}");
    let started = std::time::Instant::now();
    let got = h2_client(
        &stack,
        "reset-upload",
        &[
            "--path",
            "/echo",
            "--size",
            "100000",
            "--sent",
            "1000",
            "--pause",
            "0.5",
            "--second-path",
            "/bytes/7",
        ],
    );
    assert_eq!(got["second"]["status"], 200, "{got}");
    let logged = stack
        .ringway
        .wait_for_log("POST /echo 499", Duration::from_secs(5));
    assert!(logged, "{}", stack.ringway.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !stack.uwsgi_log().contains("POST /echo"),
        "the app saw the held request:\n{}",
        stack.uwsgi_log()
    );
}

/// The flood is bounded whether or not client aborts are ignored: with them ignored, a
/// reset stream's request runs on, but keeps its place among the connection's 128.
#[test]
fn a_reset_flood_ends_its_connection_and_ringway_serves_the_next_client() {
    for ignoring in [false, true] {
        reset_flood(&abort_stack(ignoring));
    }
}

fn reset_flood(stack: &Stack) {
    let got = h2_client(
        stack,
        "rapid-reset",
        &["--path", "/bytes/7", "--count", "5000", "--timeout", "5"],
    );
    assert_eq!(
        got["closed"], true,
        "the flooding connection is closed: {got}"
    );
    let sent = got["sent"].as_u64().unwrap_or(u64::MAX);
    assert!(
        sent < 5000,
        "closed before the flood was through ({sent} streams): {got}"
    );
    let fresh = h2_client(
        stack,
        "many-streams",
        &["--path", "/bytes/7?fresh", "--count", "1"],
    );
    assert_eq!(fresh["statuses"]["200"], 1, "{fresh}");
    // The streams taken before the flood was seen reached the app at most once each, and
    // each that did is logged by ringway once the app is done with it (a request left
    // running would have no line).
    let at_app = |log: &str| log.matches("GET /bytes/7 ").count();
    let logged = |log: &str| log.lines().filter(|l| l.starts_with("/bytes/7 ")).count();
    let seen_fresh = ringway_tests::wait::poll_until(Duration::from_secs(10), || {
        stack.uwsgi_log().contains("GET /bytes/7?fresh")
    });
    assert!(
        seen_fresh,
        "the fresh request at the app:\n{}",
        stack.uwsgi_log()
    );
    let reached = at_app(&stack.uwsgi_log());
    assert!(
        reached as u64 <= sent,
        "{reached} flood requests reached the app, of {sent} streams"
    );
    let settled = ringway_tests::wait::poll_until(Duration::from_secs(10), || {
        logged(&stack.ringway.stderr()) >= at_app(&stack.uwsgi_log())
    });
    assert!(
        settled,
        "requests at the app without a line: {} at the app, {} logged\n{}",
        at_app(&stack.uwsgi_log()),
        logged(&stack.ringway.stderr()),
        stack.ringway.stderr()
    );
}

/// A stream reset in the same write as its HEADERS never reaches the app, as with nginx,
/// which starts nothing for it (found by review: sent one pair per write, below h2's own
/// flood bound, about half of them went to the app), and such streams count toward
/// `keepalive_requests`: the connection gets its GOAWAY.
#[test]
fn a_stream_reset_with_its_headers_never_reaches_the_app() {
    let stack = stack_with(|b| b.arg("--keepalive-requests", "300"));
    let got = h2_client(
        &stack,
        "rapid-reset",
        &[
            "--path",
            "/bytes/7",
            "--count",
            "299",
            "--batch",
            "1",
            "--timeout",
            "2",
        ],
    );
    assert_eq!(got["sent"], 299, "{got}");
    let fresh = h2_client(
        &stack,
        "many-streams",
        &["--path", "/bytes/7?fresh", "--count", "1"],
    );
    assert_eq!(fresh["statuses"]["200"], 1, "{fresh}");
    let seen_fresh = ringway_tests::wait::poll_until(Duration::from_secs(10), || {
        stack.uwsgi_log().contains("GET /bytes/7?fresh")
    });
    assert!(seen_fresh, "{}", stack.uwsgi_log());
    let reached = stack.uwsgi_log().matches("GET /bytes/7 ").count();
    assert_eq!(
        reached,
        0,
        "reset streams at the app:\n{}",
        stack.uwsgi_log()
    );
    // Past `keepalive_requests`, reset streams included, the connection is told to go.
    let past = h2_client(
        &stack,
        "rapid-reset",
        &[
            "--path",
            "/bytes/7",
            "--count",
            "400",
            "--batch",
            "1",
            "--timeout",
            "2",
        ],
    );
    assert!(past["goaway"].is_string(), "{past}");
}

/// Frames that ask for no request (PRIORITY here; `h2` bounds no PRIORITY or
/// WINDOW_UPDATE frames itself) end the connection once they outweigh its requests 8 to
/// 1 past 1 MiB, as nginx's flood check: 2 million of them (26 MB) are not all read.
#[test]
fn a_priority_flood_ends_its_connection_and_ringway_serves_the_next_client() {
    let stack = stack();
    let got = h2_client(
        &stack,
        "priority-flood",
        &["--count", "2000000", "--timeout", "5"],
    );
    assert_eq!(
        got["closed"], true,
        "the flooding connection is closed: {got}"
    );
    let sent = got["sent"].as_u64().unwrap_or(u64::MAX);
    assert!(
        sent < 2_000_000,
        "closed before the flood was through: {got}"
    );
    assert!(
        stack
            .ringway
            .wait_for_log("HTTP/2 flood", Duration::from_secs(5)),
        "said once: {}",
        stack.ringway.stderr()
    );
    let fresh = h2_client(
        &stack,
        "many-streams",
        &["--path", "/bytes/7", "--count", "1"],
    );
    assert_eq!(fresh["statuses"]["200"], 1, "{fresh}");
}

#[test]
fn streams_past_the_limit_of_128_are_refused_and_the_others_answered() {
    let stack = stack();
    // A file: 128 requests at once to the app would find uWSGI's listen queue full (503,
    // as for 128 HTTP/1.1 clients), which is not what this is about.
    let got = h2_client(
        &stack,
        "many-streams",
        &[
            "--path",
            "/static/style.css",
            "--count",
            "300",
            "--timeout",
            "30",
        ],
    );
    // The client sends all 300 before it reads the server's SETTINGS: h2 refuses what is
    // past the 128 it allows (REFUSED_STREAM: safe to retry), and serves the rest.
    assert_eq!(got["statuses"]["200"], 128, "{got}");
    assert_eq!(got["refused"], 172, "{got}");
    assert_eq!(got["reset"], 0, "{got}");
    assert_eq!(got["unfinished"], 0, "{got}");
}

/// ringway with HTTP/2 on, with `more` flags, in front of a uWSGI whose listen queue takes
/// 128 requests at once (its default, 100, would answer some with 503 at once).
fn stack_taking_128(more: impl FnOnce(RingwayBuilder) -> RingwayBuilder) -> Stack {
    let options = UwsgiOptions {
        listen: Some(256),
        ..UwsgiOptions::new(App::Flask)
    };
    Stack::start_with(options, "http2 = true", more)
}

/// With 128 streams still served (each reset by its client and kept at the app by
/// `ignore_client_abort`), a new stream is refused at once with REFUSED_STREAM (safe to
/// retry) and a log line, as nginx refuses it (found by review: it waited, unseen, until
/// the app was done with the others).
#[test]
fn a_stream_past_128_still_served_is_refused_at_once() {
    let stack = stack_taking_128(|b| {
        b.flag("--ignore-client-abort")
            .arg("--access-log", "stderr")
    });
    let got = h2_client(
        &stack,
        "reset-waiting",
        &[
            "--path",
            "/slow?ms=3000",
            "--streams",
            "128",
            "--wait",
            "0.5",
            "--second-path",
            "/bytes/7",
            "--timeout",
            "2",
        ],
    );
    assert_eq!(got["early"], Value::Null, "reset before any answer: {got}");
    assert_eq!(got["second"]["reset"], "REFUSED_STREAM", "{got}");
    assert!(
        stack.ringway.stderr().contains("HTTP/2 stream refused"),
        "{}",
        stack.ringway.stderr()
    );
}

/// At 128 streams, one the client resets makes room for its next: h2 frees its place at
/// once, ringway's when the stream's task has ended, and a new stream arriving in between
/// waits that moment (100 ms at most) rather than being refused (found by review, from
/// h2's code: a browser cancelling a request at full concurrency could get REFUSED_STREAM
/// for the next). Here the task has always ended first: this pins the outcome, not the
/// race.
#[test]
fn at_128_streams_a_reset_one_makes_room_for_the_next() {
    // The new stream asks for a file: the app's two workers are busy with the others.
    let files = paths::workspace_root().join("tests/apps/static");
    let stack = stack_taking_128(|b| b.arg("--static", &format!("/static/={}", files.display())));
    let css = std::fs::read(files.join("style.css")).expect("style.css");
    let got = h2_client(
        &stack,
        "swap-at-limit",
        &[
            "--path",
            "/slow?ms=3000",
            "--streams",
            "128",
            "--wait",
            "0.5",
            "--second-path",
            "/static/style.css",
            "--timeout",
            "8",
        ],
    );
    assert_eq!(got["early"], 0, "all 128 still served: {got}");
    assert_eq!(got["second"]["status"], 200, "{got}");
    assert_eq!(got["second"]["data"], css.len(), "{got}");
}

#[test]
fn a_connection_limit_counts_open_streams_the_connection_standing_for_its_first() {
    let files = paths::workspace_root().join("tests/apps/static");
    let stack = Stack::start(App::Flask, "http2 = true", |b| {
        b.arg("--limit-conn-per-ip", "1")
            .arg("--static", &format!("/static/={}", files.display()))
    });
    let one = h2_client(
        &stack,
        "many-streams",
        &["--path", "/static/style.css", "--count", "1"],
    );
    assert_eq!(
        one["statuses"]["200"], 1,
        "one stream: within the limit of 1: {one}"
    );
    // Two at once from the one client: the second is over the limit (nginx's `limit_conn`
    // counts HTTP/2 streams), and gets the connection limit's 503.
    let two = h2_client(
        &stack,
        "many-streams",
        &["--path", "/static/style.css", "--count", "2"],
    );
    assert_eq!(two["statuses"]["200"], 1, "{two}");
    assert_eq!(two["statuses"]["503"], 1, "{two}");
}

/// A request without `:path` is malformed (RFC 9113 §8.3.1): its stream is reset (nginx
/// answers 400), and the connection serves on. With a `host` field in place of `:authority`
/// it was served as `GET /`.
#[test]
fn a_request_without_path_is_reset_and_the_connection_serves_on() {
    let stack = stack();
    for without in [&[][..], &["--no-authority"]] {
        let got = h2_client(
            &stack,
            "no-path",
            &[without, &["--second-path", "/bytes/7"]].concat(),
        );
        assert_eq!(
            got["first"]["reset"], "PROTOCOL_ERROR",
            "{without:?}: {got}"
        );
        assert_eq!(got["first"]["status"], Value::Null, "{without:?}: {got}");
        assert_eq!(got["goaway"], Value::Null, "only the stream ends: {got}");
        assert_eq!(got["second"]["status"], 200, "{without:?}: {got}");
        assert_eq!(got["second"]["data"], 7, "{without:?}: {got}");
    }
}
