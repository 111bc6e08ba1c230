//! Bad clients on the TLS port: silent or slow handshakes (the timeout), garbage instead of a
//! ClientHello, plain HTTP, a bad record or an alert mid-connection. Each is closed (or
//! answered) and counted, and none disturbs another connection.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::tls::{
    PyOpts, PyTls, client_hello, close_with_junk, curl, curl_target, handshakes, read_until_close,
    s_client, send_raw,
};
use ringway_tests::{App, Conn, Req, pattern};

use crate::Stack;

/// Longest a bad client may stay connected in these tests.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// `GET /` on `conn` (a TLS session through the Python client) answers "Hello, World!".
fn assert_serves(conn: &mut Conn, what: &str) {
    conn.send(&Req::get("/").host(Some("a.test")).to_bytes())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let r = conn
        .read_response()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "{what}"
    );
}

/// A fresh curl request over TLS is served.
fn assert_healthy(stack: &Stack, after: &str) {
    let [resolve, to, url] = curl_target("a.test", stack.tls(), "/");
    let ran = curl(&["--cacert", &stack.ca(), &resolve, &to, &url]);
    assert!(
        ran.status.success(),
        "healthy request after {after}: {ran:?}"
    );
    assert_eq!(ran.out(), "Hello, World!", "after {after}");
}

#[test]
fn a_silent_or_slow_handshake_is_closed_after_the_timeout() {
    let stack = Stack::with_metrics("handshake_timeout = \"1s\"");
    let tls = stack.tls();
    let hello = client_hello(&PyOpts {
        server_name: Some("a.test".to_owned()),
        ..PyOpts::default()
    });
    assert!(
        hello.len() > 100 && hello.starts_with(&[0x16, 0x03]),
        "a ClientHello record: {hello:02x?}"
    );
    let half = &hello[..hello.len() / 2];

    // All at once: each is timed on its own clock.
    let (silent, slow, late) = thread::scope(|s| {
        let silent = s.spawn(|| send_raw(tls, b"", CLOSE_LIMIT));
        let slow = s.spawn(|| send_raw(tls, half, CLOSE_LIMIT));
        // The whole ClientHello, in two parts 300 ms apart: answered, then (as this
        // client never finishes) timed out too.
        let late = s.spawn(|| {
            let started = Instant::now();
            let mut stream = TcpStream::connect(tls).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            stream.write_all(half).expect("first half");
            thread::sleep(Duration::from_millis(300));
            stream.write_all(&hello[half.len()..]).expect("second half");
            let mut outcome = read_until_close(&mut stream, CLOSE_LIMIT);
            outcome.after = started.elapsed();
            outcome
        });
        [silent, slow, late].map(|t| t.join().expect("client thread"))
    })
    .into();
    for (what, outcome) in [
        ("a client that sends nothing", &silent),
        ("a client that sends half a ClientHello", &slow),
        ("a client that never finishes its handshake", &late),
    ] {
        assert!(
            outcome.closed,
            "{what}: closed within {CLOSE_LIMIT:?} of a 1 s handshake timeout: {outcome:?}"
        );
        assert!(
            outcome.after >= Duration::from_millis(900),
            "{what}: closed by the timeout, not before (after {:?})",
            outcome.after
        );
    }
    assert!(silent.received.is_empty(), "{silent:?}");
    assert!(slow.received.is_empty(), "{slow:?}");
    assert!(
        late.received.starts_with(&[0x16, 0x03, 0x03]),
        "a ClientHello split in two is answered (ServerHello): {:02x?}",
        &late.received[..late.received.len().min(16)]
    );

    let text = stack.metrics();
    assert_eq!(handshakes(&text, "timeout", ""), 3.0, "{text}");
    assert_eq!(handshakes(&text, "failed", ""), 0.0, "{text}");
    assert_healthy(&stack, "the timeouts");
    let text = stack.metrics();
    assert_eq!(handshakes(&text, "ok", "TLSv1.3"), 1.0, "{text}");
}

/// Deterministic noise (a linear congruential generator).
fn noise(n: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_F491;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

/// An SSLv2-format ClientHello offering TLS 1.0 (as old clients sent for compatibility):
/// 7 cipher specs, no session id, a 16-byte challenge.
fn sslv2_hello() -> Vec<u8> {
    let mut hello = vec![
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ];
    for spec in 0..7u8 {
        hello.extend_from_slice(&[0x00, 0x00, 0x0a + spec]);
    }
    hello.extend_from_slice(&pattern(16));
    hello
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed_at_once_and_counted() {
    // The default 10 s handshake timeout: a close within 5 s is not the timeout's.
    let stack = Stack::with_metrics("");
    let tls = stack.tls();
    let py = PyTls::open(tls, &PyOpts::verified("a.test", stack.pki.ca()));
    let mut bystander = py.conn();
    assert_serves(&mut bystander, "a session opened first");

    let mut random = noise(512);
    random[0] = 0xa7; // neither a handshake record (0x16) nor an upper-case letter
    let mut absurd = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    absurd.extend_from_slice(&[0x01; 100]);
    // (bytes, whether rustls answers with an alert before the close)
    let cases: [(&str, Vec<u8>, bool); 7] = [
        ("random bytes", random, false),
        ("an SSLv2-format ClientHello", sslv2_hello(), false),
        ("a record header with an absurd length", absurd, true),
        (
            "a handshake record holding a garbled ClientHello",
            vec![0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0xff],
            true,
        ),
        (
            "an alert instead of a hello",
            vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
            false,
        ),
        (
            "a lower-case request line",
            b"get / http/1.1\r\n\r\n".to_vec(),
            false,
        ),
        ("NUL bytes", vec![0; 64], false),
    ];
    for (what, bytes, alert) in &cases {
        let outcome = send_raw(tls, bytes, CLOSE_LIMIT);
        assert!(outcome.closed, "{what}: closed: {outcome:?}");
        assert!(
            outcome.after < Duration::from_secs(3),
            "{what}: closed at once, not by the timeout: {outcome:?}"
        );
        if *alert {
            // A fatal alert record (type 21, level 2), e.g. decode_error.
            let got = &outcome.received;
            assert!(
                got.len() == 7 && got[0] == 0x15 && got[5] == 2,
                "{what}: a fatal alert before the close: {got:02x?}"
            );
        } else {
            assert!(
                outcome.received.is_empty(),
                "{what}: closed without a word: {outcome:?}"
            );
        }
    }

    // An IP address as the SNI (illegal, RFC 6066 §3): the handshake goes on without it.
    let ip_sni = s_client(tls, &["-servername", "127.0.0.1"]);
    assert!(ip_sni.out().contains("BEGIN CERTIFICATE"), "{ip_sni:?}");
    // Not one of these is the operator's problem: no line above debug from the TLS
    // library, which would log each at WARN, unbounded.
    let log = stack.ringway.stderr();
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("rustls"))
        .collect();
    assert!(
        loud.is_empty(),
        "client mistakes logged loud:\n{}",
        loud.join("\n")
    );

    let text = stack.metrics();
    assert_eq!(
        handshakes(&text, "failed", ""),
        cases.len() as f64,
        "{text}"
    );
    assert_eq!(handshakes(&text, "timeout", ""), 0.0, "{text}");
    assert_eq!(handshakes(&text, "plain_http", ""), 0.0, "{text}");
    assert_serves(
        &mut bystander,
        "the session opened first, after the garbage",
    );

    // A client that closes before or during its hello without a word (a load balancer's
    // TCP check, a browser's spare connection) is no failure: counted apart, as nginx
    // logs "client closed connection while SSL handshaking" apart (found by review).
    drop(TcpStream::connect(tls).expect("connect"));
    let hello = client_hello(&PyOpts::verified("a.test", stack.pki.ca()));
    let mut half = TcpStream::connect(tls).expect("connect");
    half.write_all(&hello[..hello.len() / 2])
        .expect("half a hello");
    drop(half);
    let closed = ringway_tests::wait::poll_until(Duration::from_secs(5), || {
        handshakes(&stack.metrics(), "closed", "") == 2.0
    });
    let text = stack.metrics();
    assert!(closed, "{text}");
    assert_eq!(
        handshakes(&text, "failed", ""),
        cases.len() as f64,
        "{text}"
    );
    assert_healthy(&stack, "garbage handshakes");
}

#[test]
fn plain_http_on_the_tls_port_gets_the_nginx_400() {
    let stack = Stack::start(App::Flask, "", |b| {
        super::with_metrics(b).arg("--access-log", "stderr").arg(
            "--access-log-format",
            "line \"$request\" $status $body_bytes_sent",
        )
    });
    let tls = stack.tls();
    let mut conn = Conn::open(tls);
    conn.send(&Req::get("/environ").to_bytes()).expect("send");
    let r = conn.read_response().expect("an answer in plain text");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.text(),
        "The plain HTTP request was sent to HTTPS port\n",
        "{r:?}"
    );
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert!(r.says_close(), "{r:?}");
    assert!(conn.closed_within(CLOSE_LIMIT), "closed after the 400");

    // With a body still arriving: drained, so that the close does not reset the 400 away.
    let mut conn = Conn::open(tls);
    conn.send(&Req::post("/echo", &vec![b'x'; 256 * 1024]).to_bytes())
        .expect("send");
    let r = conn
        .read_response()
        .expect("the 400 despite the unread body");
    assert_eq!(r.status, 400, "{r:?}");

    // As a user would stumble on it.
    let url = format!("http://127.0.0.1:{}/x?y=1", tls.port());
    let ran = curl(&["-w", "|%{http_code}", &url]).success();
    assert_eq!(
        ran.out(),
        "The plain HTTP request was sent to HTTPS port\n|400"
    );
    // Each is read and logged as nginx logs it: the request line, 400.
    let logged = |line: &str| stack.ringway.stderr().lines().any(|l| l == line);
    for line in [
        "line \"GET /environ HTTP/1.1\" 400 46",
        "line \"POST /echo HTTP/1.1\" 400 46",
        "line \"GET /x?y=1 HTTP/1.1\" 400 46",
    ] {
        let seen = ringway_tests::wait::poll_until(Duration::from_secs(5), || logged(line));
        assert!(seen, "no {line:?} in\n{}", stack.ringway.stderr());
    }
    let text = stack.metrics();
    assert_eq!(handshakes(&text, "plain_http", ""), 3.0, "{text}");
    assert_eq!(handshakes(&text, "failed", ""), 0.0, "{text}");
    assert_healthy(&stack, "plain HTTP on the TLS port");
}

#[test]
fn a_bad_record_or_an_alert_mid_connection_closes_that_connection_only() {
    let stack = Stack::plain(App::Raw);
    let open = || {
        let py = PyTls::open(stack.tls(), &PyOpts::verified("a.test", stack.pki.ca()));
        let mut conn = py.conn();
        assert_serves(&mut conn, "a fresh session");
        (py, conn)
    };
    let (_bystander, mut other) = open();

    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&pattern(32));
    let cases: [(&str, Vec<u8>, Option<&str>); 3] = [
        (
            "an application-data record that does not decrypt",
            forged,
            Some("BAD_RECORD_MAC"),
        ),
        (
            "a fatal alert in the clear",
            vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
            None,
        ),
        (
            "a record of an unknown content type",
            vec![0x42, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4],
            None,
        ),
    ];
    for (what, record, alert) in &cases {
        let (mut victim, mut conn) = open();
        victim.inject_raw(record);
        assert!(
            victim.wait_event("raw", CLOSE_LIMIT).is_some(),
            "{what}: the record was written"
        );
        assert!(
            conn.closed_within(CLOSE_LIMIT),
            "{what}: the session is closed"
        );
        let end = victim
            .wait_event("tls_closed", CLOSE_LIMIT)
            .unwrap_or_else(|| panic!("{what}: the client saw the session end"));
        if let Some(alert) = alert {
            assert!(
                end["reason"].as_str().is_some_and(|r| r.contains(alert)),
                "{what}: ringway says {alert}: {end}"
            );
        }
        assert_serves(&mut other, &format!("another session, after {what}"));
    }
    assert_healthy(&stack, "bad records mid-connection");
}

#[test]
fn bytes_after_a_close_notify_end_the_session_and_never_stall_the_worker() {
    // rustls takes nothing more once it has seen close_notify; a read holding close_notify
    // and then more than its 4 KiB bite of anything must end the session, not loop on the
    // rest. One worker: had it stalled, nothing else would be answered.
    let stack = Stack::plain(App::Raw);
    let opts = PyOpts::verified("a.test", stack.pki.ca());
    for (version, junk) in [("1.3", 5000), ("1.3", 12_000), ("1.2", 5000)] {
        let opts = PyOpts {
            tls_min: Some(version),
            tls_max: Some(version),
            ..opts.clone()
        };
        let what = format!("TLS {version}, close_notify and {junk} bytes after it");
        let end = close_with_junk(stack.tls(), &opts, junk, CLOSE_LIMIT.as_secs());
        assert_eq!(end["ok"], true, "{what}: {end}");
        assert_eq!(
            end["closed"], true,
            "{what}: ringway ends the session: {end}"
        );
        assert_healthy(&stack, &what);
    }
}

/// A connection a limit refused gets no longer for its handshake than a plain one gets for
/// its head, and a plain HTTP request on the TLS port from it only a short drain after its
/// 400: it holds no place under the limits (found by review: the full handshake timeout and
/// nginx's 30 s lingering close let one client hold many sockets).
#[test]
fn a_refused_connection_is_held_neither_by_its_handshake_nor_by_a_trickle() {
    let stack = Stack::start(App::Raw, "", |b| b.arg("--limit-conn-per-ip", "1"));
    // The one place, held by a session of the same client.
    let held = PyTls::open(stack.tls(), &PyOpts::verified("a.test", stack.pki.ca()));
    let started = Instant::now();
    let mut silent = Conn::open(stack.tls());
    assert!(
        silent.closed_within(Duration::from_secs(6)),
        "a silent refused connection is closed within seconds, not the 10 s handshake timeout"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let mut trickling = Conn::open(stack.tls());
    trickling
        .send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nx")
        .expect("send");
    let r = trickling.read_response().expect("its 400");
    assert_eq!(r.status, 400, "{r:?}");
    let took = trickling.trickle_until_closed(Duration::from_secs(10));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(6)),
        "closed after {took:?} (None: still open after 10 s)"
    );
    drop(held);
}
