//! The client side of a connection through ringway: keep-alive, pipelining, HEAD,
//! `Expect: 100-continue`, chunked uploads, large responses and their framing per version.

use std::net::SocketAddr;
use std::thread::sleep;
use std::time::Duration;

use ringway_tests::checks::{check_echo, check_usable_or_closed};
use ringway_tests::client::roundtrip_raw;
use ringway_tests::{App, Conn, Framing, Nginx, Req, Ringway, Uwsgi, pattern, roundtrip};

fn stack() -> (Uwsgi, Ringway) {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    (uwsgi, ringway)
}

fn send(conn: &mut Conn, req: &Req) -> ringway_tests::Response {
    conn.send(&req.to_bytes()).expect("send");
    conn.read_response_to(req.method()).expect("response")
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (_uwsgi, ringway) = stack();
    let mut conn = Conn::open(ringway.addr());
    for round in 0..3 {
        let r = send(&mut conn, &Req::get("/"));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello, World!"),
            "round {round}"
        );
        assert!(!r.says_close(), "round {round}: {r:?}");
        let body = pattern(3000 + round);
        let r = send(&mut conn, &Req::post("/echo", &body));
        check_echo(&r, &body, &format!("round {round} echo"));
        let r = send(&mut conn, &Req::get("/stream/5000"));
        assert_eq!(r.framing, Framing::Chunked, "round {round}");
        assert!(
            r.body == pattern(5000),
            "round {round}: stream body differs"
        );
        for code in [204, 304] {
            let r = send(&mut conn, &Req::get(&format!("/status/{code}")));
            assert_eq!(r.status, code, "round {round}");
            // RFC 9110 8.6 / RFC 9112 6.1: no body framing on 204, and a 304 carries none
            // of its own; a stray "0\r\n\r\n" would corrupt the next response.
            assert!(
                r.header("transfer-encoding").is_none(),
                "round {round}: {r:?}"
            );
            if code == 204 {
                assert!(r.header("content-length").is_none(), "round {round}: {r:?}");
            }
        }
    }
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(r.text(), "Hello, World!", "after 204/304: {r:?}");
    assert!(
        conn.leftover().is_empty(),
        "no stray bytes: {:?}",
        conn.leftover()
    );
}

#[test]
fn large_request_bodies_reach_the_app_whole() {
    let (_uwsgi, ringway) = stack();
    let addr = ringway.addr();
    let mib = pattern(1024 * 1024);
    // The default --max-body-size is 1m: a body of exactly 1 MiB is within it.
    for n in [64 * 1024 + 1, 512 * 1024, 1024 * 1024] {
        let r = roundtrip(addr, &Req::post("/echo", &mib[..n]));
        check_echo(&r, &mib[..n], &format!("{n}-byte body"));
    }
    let pieces: Vec<&[u8]> = mib[..512 * 1024].chunks(100_000).collect();
    let r = roundtrip(addr, &Req::post("/echo", b"").chunked(&pieces));
    check_echo(&r, &mib[..512 * 1024], "512 KiB chunked body");
}

#[test]
fn concurrent_clients_get_their_own_answers() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).workers(2).start();
    let addr = ringway.addr();
    std::thread::scope(|s| {
        for t in 0..6usize {
            s.spawn(move || {
                let mut conn = Conn::open(addr);
                for i in 0..10usize {
                    let n = 1000 * t + i;
                    let r = send(&mut conn, &Req::get(&format!("/bytes/{n}")));
                    assert!(r.body == pattern(n), "client {t} request {i}: {r:?}");
                    let body = pattern(n + 7);
                    let r = send(&mut conn, &Req::post("/echo", &body));
                    check_echo(&r, &body, &format!("client {t} echo {i}"));
                }
            });
        }
    });
}

#[test]
fn connection_close_and_http_1_0_end_the_connection() {
    let (_uwsgi, ringway) = stack();
    let mut conn = Conn::open(ringway.addr());
    let r = send(&mut conn, &Req::get("/").header("Connection", "close"));
    assert_eq!(r.status, 200);
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "closed after Connection: close"
    );

    let mut conn = Conn::open(ringway.addr());
    let r = send(&mut conn, &Req::get("/").http10());
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "HTTP/1.0 without keep-alive closes"
    );
}

/// An idle connection waits parked until its socket turns readable, and then reads what
/// came in bounded pieces: a burst larger than one read (many pipelined requests, a body
/// followed by the next request) must be read to its end, not left for a readiness edge
/// that never comes again.
#[test]
fn a_burst_after_an_idle_wait_is_read_to_its_end() {
    let (_uwsgi, ringway) = stack();
    let mut conn = Conn::open(ringway.addr());
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(r.status, 200);
    // Idle for a moment, parked; then 60 requests in one write (over 2 KiB).
    sleep(Duration::from_millis(200));
    let burst: Vec<u8> = (0..60)
        .flat_map(|i| Req::get(&format!("/environ?n={i}")).to_bytes())
        .collect();
    assert!(burst.len() > 2048, "{} bytes", burst.len());
    conn.send(&burst).expect("the burst");
    let methods = vec!["GET"; 60];
    let rs = conn.read_responses(&methods).expect("60 answers");
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.json()["QUERY_STRING"], format!("n={i}"), "{r:?}");
    }
    // A body larger than one read, then a request, in one write after another idle wait.
    sleep(Duration::from_millis(200));
    let wire = [
        Req::post("/echo", &pattern(3000)).to_bytes(),
        Req::get("/environ?after=body").to_bytes(),
    ]
    .concat();
    conn.send(&wire).expect("body and request");
    let rs = conn.read_responses(&["POST", "GET"]).expect("two answers");
    check_echo(&rs[0], &pattern(3000), "a body after an idle wait");
    assert_eq!(rs[1].json()["QUERY_STRING"], "after=body", "{:?}", rs[1]);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_uwsgi, ringway) = stack();
    let mut conn = Conn::open(ringway.addr());
    // The first one is slow: a proxy answering in completion order would get this wrong.
    let reqs = [
        Req::get("/slow?ms=300"),
        Req::post("/echo", b"second"),
        Req::get("/environ?third=1"),
    ];
    let wire: Vec<u8> = reqs.iter().flat_map(|r| r.to_bytes()).collect();
    conn.send(&wire).expect("one write of three requests");
    let rs = conn
        .read_responses(&["GET", "POST", "GET"])
        .expect("three responses");
    assert_eq!(rs[0].text(), "slept 300 ms", "{:?}", rs[0]);
    check_echo(&rs[1], b"second", "pipelined echo");
    assert_eq!(rs[2].json()["QUERY_STRING"], "third=1", "{:?}", rs[2]);

    // And again on the same connection, with a HEAD in the middle.
    let wire = [
        Req::get("/bytes/10").to_bytes(),
        Req::new("HEAD", "/bytes/20").to_bytes(),
        Req::get("/stream/30").to_bytes(),
    ]
    .concat();
    conn.send(&wire).expect("second batch");
    let rs = conn
        .read_responses(&["GET", "HEAD", "GET"])
        .expect("three more");
    assert!(rs[0].body == pattern(10));
    assert_eq!((rs[1].status, rs[1].body.len()), (200, 0), "{:?}", rs[1]);
    assert!(rs[2].body == pattern(30), "{:?}", rs[2]);

    // A chunked body and a Content-Length body with the next requests right behind them.
    let wire = [
        Req::post("/echo", b"")
            .chunked(&[b"chunk", b"ed"])
            .to_bytes(),
        Req::post("/echo", b"length").to_bytes(),
        Req::get("/").to_bytes(),
    ]
    .concat();
    conn.send(&wire).expect("third batch");
    let rs = conn
        .read_responses(&["POST", "POST", "GET"])
        .expect("three more");
    check_echo(&rs[0], b"chunked", "pipelined chunked body");
    check_echo(&rs[1], b"length", "pipelined body after a chunked one");
    assert_eq!(rs[2].text(), "Hello, World!", "{:?}", rs[2]);
}

#[test]
fn head_has_headers_no_body_and_the_connection_stays_usable() {
    let (_uwsgi, ringway) = stack();
    let mut conn = Conn::open(ringway.addr());
    let r = send(&mut conn, &Req::new("HEAD", "/bytes/1000"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length").as_deref(), Some("1000"), "{r:?}");
    // The app writes a body for HEAD too (WSGI apps usually do): ringway must drop it, or
    // it would be read as the next response.
    let r = send(&mut conn, &Req::new("HEAD", "/stream/70000"));
    assert_eq!(r.status, 200, "{r:?}");
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "after HEAD: {r:?}"
    );
    assert!(
        conn.leftover().is_empty(),
        "no stray bytes: {:?}",
        conn.leftover()
    );
}

#[test]
fn expect_100_continue_gets_100_before_the_body() {
    let (_uwsgi, ringway) = stack();
    let body = pattern(20_000);
    let mut conn = Conn::open(ringway.addr());
    conn.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .expect("head");
    let interim = conn.read_response().expect("interim response");
    assert_eq!(
        (interim.version, interim.status),
        (1, 100),
        "HTTP/1.1 100 Continue before the body: {interim:?}"
    );
    conn.send(&body).expect("body");
    let r = conn.read_response().expect("final response");
    check_echo(&r, &body, "echo after 100-continue");

    // Same connection, once more, with a chunked body.
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .expect("head");
    let interim = conn.read_response().expect("interim response");
    assert_eq!(interim.status, 100, "{interim:?}");
    conn.send(b"3\r\nabc\r\n0\r\n\r\n").expect("body");
    check_echo(
        &conn.read_response().expect("final"),
        b"abc",
        "chunked after 100",
    );
}

fn check_chunked_upload(addr: SocketAddr, pieces: &[&[u8]]) {
    let body: Vec<u8> = pieces.concat();
    let env = roundtrip(addr, &Req::post("/environ", b"").chunked(pieces)).json();
    assert_eq!(
        env["CONTENT_LENGTH"],
        body.len().to_string(),
        "a chunked body goes upstream with its decoded length: {env}"
    );
    assert!(env.get("HTTP_CONTENT_LENGTH").is_none(), "{env}");
    let r = roundtrip(addr, &Req::post("/echo", b"").chunked(pieces));
    check_echo(
        &r,
        &body,
        &format!("chunked echo of {} pieces", pieces.len()),
    );
}

#[test]
fn chunked_uploads_arrive_whole_with_their_length() {
    let (_uwsgi, ringway) = stack();
    let addr = ringway.addr();
    let big = pattern(200_000);
    check_chunked_upload(addr, &[b"hello"]);
    check_chunked_upload(addr, &[b"a", &big[..1000], &big[..70_000], b"z"]);
    check_chunked_upload(addr, &[&big]);

    // Chunk extensions and a trailer are legal and must not reach the body.
    let mut conn = Conn::open(addr);
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
    )
    .expect("send");
    check_echo(
        &conn.read_response().expect("response"),
        b"hello world",
        "extensions",
    );

    // The body trickles in: head, then each chunk in its own write, split mid-chunk too.
    let mut conn = Conn::open(addr);
    let wire = Req::post("/echo", b"")
        .chunked(&[&big[..3000], &big[..5000]])
        .to_bytes();
    for piece in wire.chunks(1024) {
        conn.send(piece).expect("piece");
        sleep(Duration::from_millis(5));
    }
    let body = [&big[..3000], &big[..5000]].concat();
    check_echo(
        &conn.read_response().expect("response"),
        &body,
        "trickled chunks",
    );
}

#[test]
fn large_responses_are_byte_exact_and_framed_per_version() {
    let (_uwsgi, ringway) = stack();
    let addr = ringway.addr();
    let ten_mib = 10 * 1024 * 1024;
    let expected = pattern(ten_mib);
    for n in [64 * 1024, ten_mib] {
        let r = roundtrip(addr, &Req::get(&format!("/bytes/{n}")));
        assert_eq!(
            (r.status, r.framing),
            (200, Framing::Length(n as u64)),
            "/bytes/{n}"
        );
        assert!(r.body == expected[..n], "/bytes/{n}: body differs");

        let r = roundtrip(addr, &Req::get(&format!("/stream/{n}")));
        assert_eq!(r.status, 200, "/stream/{n}");
        assert_eq!(
            r.framing,
            Framing::Chunked,
            "/stream/{n} has no length: chunked to HTTP/1.1 ({r:?})"
        );
        assert!(r.body == expected[..n], "/stream/{n}: body differs");

        let r = roundtrip(addr, &Req::get(&format!("/stream/{n}")).http10());
        assert_eq!(r.status, 200, "HTTP/1.0 /stream/{n}");
        assert_eq!(
            r.framing,
            Framing::UntilClose,
            "no chunked to an HTTP/1.0 client: the body ends at close ({r:?})"
        );
        assert!(r.header("transfer-encoding").is_none(), "{r:?}");
        assert!(
            r.body == expected[..n],
            "HTTP/1.0 /stream/{n}: body differs"
        );

        let r = roundtrip(addr, &Req::get(&format!("/bytes/{n}")).http10());
        assert_eq!(
            (r.status, r.framing),
            (200, Framing::Length(n as u64)),
            "1.0 /bytes"
        );
        assert!(r.body == expected[..n], "HTTP/1.0 /bytes/{n}: body differs");
    }
}

/// Reads responses until a final (non-1xx) one.
fn final_response(conn: &mut Conn) -> ringway_tests::Response {
    for _ in 0..3 {
        let r = conn.read_response().expect("response");
        if r.status >= 200 {
            return r;
        }
    }
    panic!("more than two interim responses");
}

#[test]
fn expect_100_continue_corners() {
    let (_uwsgi, ringway) = stack();
    // The client does not wait for the 100 and sends the body at once: an interim 100 may
    // or may not come first, the final answer must be right, the connection stays in sync.
    let mut conn = Conn::open(ringway.addr());
    let wire = Req::post("/echo", b"eager")
        .header("Expect", "100-continue")
        .to_bytes();
    conn.send(&wire).expect("send");
    check_echo(
        &final_response(&mut conn),
        b"eager",
        "eager body with Expect",
    );
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(r.text(), "Hello, World!", "in sync after Expect: {r:?}");

    // RFC 9110 10.1.1: no 100 to an HTTP/1.0 client.
    let mut conn = Conn::open(ringway.addr());
    let wire = Req::post("/echo", b"ten")
        .http10()
        .header("Expect", "100-continue")
        .to_bytes();
    conn.send(&wire).expect("send");
    let r = conn.read_response().expect("response");
    assert_ne!(r.status, 100, "no 100 Continue to HTTP/1.0: {r:?}");
    check_echo(&r, b"ten", "HTTP/1.0 with Expect");
}

#[test]
fn a_head_trickling_in_byte_by_byte_is_served() {
    let (_uwsgi, ringway) = stack();
    let mut conn = Conn::open(ringway.addr());
    let wire = Req::post("/echo", b"trickle")
        .header("X-Trickle", "1")
        .to_bytes();
    for byte in &wire {
        conn.send(std::slice::from_ref(byte)).expect("one byte");
        sleep(Duration::from_millis(2));
    }
    check_echo(
        &conn.read_response().expect("response"),
        b"trickle",
        "byte by byte",
    );
}

#[test]
fn http_1_0_keep_alive_is_honoured_or_refused_cleanly() {
    let (_uwsgi, ringway) = stack();
    // A known length: either the server says keep-alive and serves a second request, or it
    // closes. Both are legal; saying one and doing the other is not.
    let mut conn = Conn::open(ringway.addr());
    let req = Req::get("/bytes/10")
        .http10()
        .header("Connection", "keep-alive");
    let r = send(&mut conn, &req);
    assert!(r.body == pattern(10), "{r:?}");
    let kept = r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive"));
    if kept {
        let r = send(&mut conn, &req);
        assert!(
            r.body == pattern(10),
            "second request on a kept 1.0 connection: {r:?}"
        );
    } else {
        assert!(
            conn.closed_within(Duration::from_secs(3)),
            "no Connection: keep-alive in the answer, so the connection must close"
        );
    }

    // No length (streamed body): the end of the body can only be the close.
    let mut conn = Conn::open(ringway.addr());
    let r = send(
        &mut conn,
        &Req::get("/stream/100")
            .http10()
            .header("Connection", "keep-alive"),
    );
    assert_eq!(r.framing, Framing::UntilClose, "{r:?}");
    assert!(r.body == pattern(100), "{r:?}");
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_timeout() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--keepalive-timeout", "300ms")
        .start();
    let mut conn = Conn::open(ringway.addr());
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(r.status, 200);
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "idle connection closed within 3 s of a 300 ms keep-alive timeout"
    );
}

#[test]
fn a_keepalive_timeout_of_0_turns_keep_alive_off() {
    // nginx's `keepalive_timeout 0`: each answer says so, and the connection ends.
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--keepalive-timeout", "0s")
        .start();
    let mut conn = Conn::open(ringway.addr());
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection").as_deref(), Some("close"), "{r:?}");
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "the connection is closed after its answer"
    );
}

/// nginx's `keepalive_time`: a connection serves requests for that long; the first answer
/// after it says `Connection: close` (to the second), and a new connection starts anew.
#[test]
fn keepalive_time_ends_a_connection_after_its_time_as_nginx() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).arg("--keepalive-time", "1s").start();
    let mut conn = Conn::open(ringway.addr());
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!((r.status, r.says_close()), (200, false), "{r:?}");
    sleep(Duration::from_millis(2200));
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection").as_deref(), Some("close"), "{r:?}");
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "closed after it"
    );
    let mut fresh = Conn::open(ringway.addr());
    let r = send(&mut fresh, &Req::get("/"));
    assert_eq!((r.status, r.says_close()), (200, false), "{r:?}");
}

#[test]
fn transfer_coding_names_are_case_insensitive() {
    let (_uwsgi, ringway) = stack();
    let mut conn = Conn::open(ringway.addr());
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\ntransfer-encoding: Chunked\r\n\r\n\
          4\r\ncase\r\n0\r\n\r\n",
    )
    .expect("send");
    check_echo(&conn.read_response().expect("response"), b"case", "Chunked");
}

#[test]
fn error_answers_leave_the_connection_usable_or_closed() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--upstream-read-timeout", "300ms")
        .arg("--max-body-size", "1k")
        .start();
    let addr = ringway.addr();
    let cases = [
        ("app error (uWSGI closes: 502)", Req::get("/error"), 502),
        ("app status 500", Req::get("/status/500"), 500),
        ("upstream timeout", Req::get("/slow?ms=1500"), 504),
        (
            "body over the limit, Content-Length",
            Req::post("/echo", &pattern(4096)),
            413,
        ),
        (
            "body over the limit, chunked",
            Req::post("/echo", b"").chunked(&[&pattern(4096)]),
            413,
        ),
        (
            "vars over the upstream buffer",
            Req::get("/").header("X-Big", &"x".repeat(5000)),
            431,
        ),
    ];
    for (what, req, status) in &cases {
        let mut conn = Conn::open(addr);
        let r = send(&mut conn, req);
        assert_eq!(r.status, *status, "{what}: {r:?}");
        check_usable_or_closed(&mut conn, &r, what);
    }
}

/// A stream that hands out at most 16 KiB per read and pauses before each: a slow reader.
struct Slow(std::net::TcpStream);

impl std::io::Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        sleep(Duration::from_millis(1));
        let n = buf.len().min(16 * 1024);
        self.0.read(&mut buf[..n])
    }
}

impl std::io::Write for Slow {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[test]
fn a_slow_reader_gets_every_byte() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--response-buffer-size", "64k")
        .start();
    let n = 4 * 1024 * 1024;
    for target in [format!("/bytes/{n}"), format!("/stream/{n}")] {
        let stream = std::net::TcpStream::connect(ringway.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut conn = Conn::new(Slow(stream));
        conn.send(&Req::get(&target).to_bytes()).expect("send");
        let r = conn.read_response().expect("response");
        assert_eq!(r.status, 200, "{target}");
        assert!(
            r.body == pattern(n),
            "{target}: body differs under backpressure"
        );
    }
}

#[test]
fn many_idle_connections_do_not_block_service() {
    let (_uwsgi, ringway) = stack();
    let idle: Vec<Conn> = (0..200).map(|_| Conn::open(ringway.addr())).collect();
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "with 200 idle connections open: {r:?}");
    drop(idle);
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "after they all went away: {r:?}");
}

#[test]
fn an_answer_before_the_body_is_read_still_arrives() {
    // The app at / never reads wsgi.input: uWSGI answers and closes while the body is still
    // being sent. The client must get that answer (or a clean 502), never a hang or reset.
    let (_uwsgi, ringway) = stack();
    let body = pattern(512 * 1024);
    let mut conn = Conn::open(ringway.addr());
    let _ = conn.send(&Req::post("/", &body).to_bytes());
    let r = conn.read_response().expect("an answer");
    assert!(
        r.status == 200 && r.text() == "Hello, World!" || r.status == 502,
        "{r:?}"
    );
    check_usable_or_closed(&mut conn, &r, "answer before the body was read");
}

#[test]
fn big_response_headers_pass() {
    let (_uwsgi, ringway) = stack();
    let r = roundtrip(ringway.addr(), &Req::get("/header/8000"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-big").map(|v| v.len()), Some(8000), "{r:?}");
    assert_eq!(r.text(), "ok");
}

/// A GET whose whole head is exactly `total` bytes, padded with an X-Pad header.
fn head_of_size(total: usize) -> (Vec<u8>, usize) {
    let fixed = "GET /environ HTTP/1.1\r\nHost: localhost\r\nX-Pad: \r\n\r\n".len();
    let pad = total - fixed;
    let wire = format!(
        "GET /environ HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(pad)
    );
    assert_eq!(wire.len(), total);
    (wire.into_bytes(), pad)
}

#[test]
fn heads_around_buffer_boundaries() {
    use ringway_tests::uwsgi::UwsgiOptions;
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        buffer_size: Some(65535),
        ..UwsgiOptions::new(App::Raw)
    });
    let ringway = Ringway::with(&uwsgi)
        .arg("--upstream-buffer-size", "65535")
        .arg("--max-header-size", "16k")
        .start();
    let mut conn = Conn::open(ringway.addr());
    for total in [
        1023, 1024, 1025, 4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384,
    ] {
        let (wire, pad) = head_of_size(total);
        conn.send(&wire).expect("send");
        let r = conn.read_response().expect("response");
        assert_eq!(r.status, 200, "{total}-byte head: {r:?}");
        let env = r.json();
        assert_eq!(
            env["HTTP_X_PAD"].as_str().map(str::len),
            Some(pad),
            "{total}-byte head"
        );
    }
    // One byte over --max-header-size.
    let (wire, _) = head_of_size(16385);
    let r = roundtrip_raw(ringway.addr(), &wire).expect("response");
    assert_eq!(r.status, 431, "16385-byte head over a 16k limit: {r:?}");

    // Fifty pipelined requests in one write, answered in order.
    let wire: Vec<u8> = (0..50)
        .flat_map(|i| Req::get(&format!("/bytes/{}", i * 37)).to_bytes())
        .collect();
    let mut conn = Conn::open(ringway.addr());
    conn.send(&wire).expect("send");
    for i in 0..50 {
        let r = conn.read_response().expect("response");
        assert!(r.body == pattern(i * 37), "pipelined response {i}: {r:?}");
    }
}

/// A response on a connection that closes after it must arrive whole even when the client
/// has sent more than ringway read (pipelined requests after `Connection: close`): closing
/// over unread input makes the kernel reset the connection and drop unsent data, so ringway
/// drains first (found by review: 12 KB of 3 MB arrived).
#[test]
fn close_with_unread_input_still_delivers_the_whole_response() {
    use std::io::{Read, Write};
    let (_uwsgi, ringway) = stack();
    let mut s = std::net::TcpStream::connect(ringway.addr()).expect("connect");
    let size = 3_000_000;
    let mut bytes =
        format!("GET /bytes/{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes();
    for _ in 0..500 {
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    s.write_all(&bytes).expect("send");
    // Read late, so the response is still in flight when ringway closes.
    sleep(Duration::from_millis(1500));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("after {} bytes: {e}", got.len()),
        }
    }
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert_eq!(
        got.len() - head_end,
        size,
        "the whole body, then a clean close"
    );
}

#[test]
fn a_connection_carries_keepalive_requests_then_closes() {
    // nginx's keepalive_requests: the last request's answer says close, and the connection
    // ends (a client cannot hold its place behind a balancer for ever). Default 1000.
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--keepalive-requests", "3")
        .start();
    let mut conn = Conn::open(ringway.addr());
    for n in 1..=3 {
        let r = send(&mut conn, &Req::get("/"));
        assert_eq!(r.status, 200, "request {n}: {r:?}");
        assert_eq!(r.says_close(), n == 3, "request {n}: {r:?}");
    }
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "closed after the third answer"
    );
}

#[test]
fn an_upload_over_the_limit_is_read_to_its_end_and_its_413_arrives() {
    // nginx's lingering close: the refused body is read and dropped while the client sends
    // it (up to 30 s), so the client reads the 413 instead of a reset over unread bytes.
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).arg("--max-body-size", "1m").start();
    let mut conn = Conn::open(ringway.addr());
    // Sent whole before reading, as a browser's form upload is.
    let r = send(&mut conn, &Req::post("/echo", &pattern(8 * 1024 * 1024)));
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.says_close(), "{r:?}");
    assert!(conn.closed_within(Duration::from_secs(5)), "then the close");
}

/// A chunk whose size line takes the body past the limit is refused at once, as nginx
/// refuses it (once a byte of its data came): not once that many bytes came, nor at the
/// body timeout when they do not.
#[test]
fn a_chunk_announced_past_the_limit_is_refused_at_its_size_line_as_nginx() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_with_server_directives(uwsgi.socket(), "client_max_body_size 1k;");
    let ringway = Ringway::with(&uwsgi).arg("--max-body-size", "1k").start();
    for (proxy, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
        let mut conn = Conn::open(addr);
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\nx",
        )
        .expect("send");
        let asked = std::time::Instant::now();
        let r = conn
            .read_response()
            .unwrap_or_else(|e| panic!("{proxy}: no answer: {e}"));
        assert_eq!(r.status, 413, "{proxy}: {r:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{proxy}: answered at the size line, not at a timeout: {:?}",
            asked.elapsed()
        );
    }
}

/// As nginx keeps it, a connection whose request the upstream failed (502, 503, 504)
/// serves on once nothing of the request is left unread: a POST's body read whole, or a
/// GET; the requests pipelined behind it are answered too.
#[test]
fn an_upstream_failure_keeps_the_connection_once_the_request_was_read_whole() {
    let ringway = Ringway::with_config("upstream = [\"unix:/nonexistent/app.sock\"]\n").start();
    let mut conn = Conn::open(ringway.addr());
    let post = Req::post("/echo", b"hello").to_bytes();
    let get = Req::get("/").to_bytes();
    conn.send(&[post, get.clone()].concat()).expect("send");
    for asked in ["POST with its body read", "GET pipelined behind it"] {
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 502, "{asked}: {r:?}");
        assert!(!r.says_close(), "{asked}: {r:?}");
    }
    let r = send(&mut conn, &Req::get("/"));
    assert_eq!(r.status, 502, "the connection serves on: {r:?}");
}

/// A refusal that leaves the request's body unread (a 403 from the allow list, a fixed 404,
/// a path no route serves) keeps the connection as nginx keeps it: the body is read and
/// dropped, never parsed as a request of its own, and the next request is answered. A body
/// here is a whole request (a smuggled one): answered, it would be a 200 from the app
/// where the next request asked for a 404.
#[test]
fn a_refusal_drops_the_unread_body_and_keeps_the_connection_as_nginx() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        "location /denied/ { allow 10.0.0.0/8; deny all; }
            location /gone/ { return 404; }",
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/denied/\"\nupstream = \"default\"\nallow = [\"10.0.0.0/8\"]\n\
         [[routes]]\npath = \"/gone/\"\nrespond = {{ status = 404 }}\n",
        uwsgi.upstream()
    ))
    .start();
    let smuggled = Req::get("/app/smuggled").to_bytes();
    let probe = Req::get("/gone/probe");
    let cases = [
        ("403, Content-Length", Req::post("/denied/x", &smuggled)),
        (
            "403, chunked",
            Req::post("/denied/x", b"").chunked(&[&smuggled[..9], &smuggled[9..]]),
        ),
        ("404, Content-Length", Req::post("/gone/x", &smuggled)),
        (
            "404, chunked",
            Req::post("/gone/x", b"").chunked(&[&smuggled]),
        ),
    ];
    for (what, req) in &cases {
        let mut seen = Vec::new();
        for (proxy, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
            let mut conn = Conn::open(addr);
            let r = send(&mut conn, req);
            let next = (!r.says_close()).then(|| send(&mut conn, &probe).status);
            assert_eq!(
                conn.leftover(),
                b"",
                "{proxy}, {what}: nothing after the answers"
            );
            seen.push((r.status, r.says_close(), next));
        }
        assert_eq!(
            seen[1], seen[0],
            "{what}: ringway vs nginx (status, close, next)"
        );
        assert_eq!(
            seen[1].2,
            Some(404),
            "{what}: the next request answered: {seen:?}"
        );
    }
    // The body comes after the answer, in pieces read from the socket, the next request
    // in the last piece's write (chunked, then by length).
    let chunked_head = b"POST /gone/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let length_head = b"POST /gone/x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n";
    let pieces: [(&[u8], [&[u8]; 3]); 2] = [
        (chunked_head, [b"5\r\nhel", b"lo\r\n", b"0\r\n\r\n"]),
        (length_head, [b"hello", b" wor", b"ld!"]),
    ];
    for (head, [first, second, last]) in pieces {
        let mut conn = Conn::open(ringway.addr());
        conn.send(head).expect("send the head");
        let r = conn.read_response().expect("the 404");
        assert!(r.status == 404 && !r.says_close(), "{r:?}");
        conn.send(first).expect("send");
        sleep(Duration::from_millis(50));
        conn.send(second).expect("send");
        sleep(Duration::from_millis(50));
        conn.send(&[last, &probe.to_bytes()].concat())
            .expect("send");
        let next = conn.read_response().expect("the next answer");
        assert_eq!(next.status, 404, "{next:?}");
        assert_eq!(conn.leftover(), b"", "nothing more");
        assert!(!next.says_close(), "{next:?}");
    }
    // A body held back for a 100 Continue the refusal never sends: the client may leave it
    // unsent, so the answer says close (nginx keeps the connection and reads on).
    let mut conn = Conn::open(ringway.addr());
    conn.send(
        b"POST /gone/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .expect("send");
    let r = conn.read_response().expect("the 404");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.says_close(), "{r:?}");
    // A chunked body that never ends: the connection closes after the drain's silence.
    let mut conn = Conn::open(ringway.addr());
    conn.send(b"POST /gone/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        .expect("send");
    let r = conn.read_response().expect("the 404");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        conn.closed_within(Duration::from_secs(5)),
        "closed once the body stalls"
    );
}
