//! Upstream failures and limits: dead or slow uWSGI, vars over uWSGI's buffer, bodies over
//! the limit, and a set of upstreams with a dead member.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use ringway_tests::checks::check_echo;
use ringway_tests::log_lines::{UPSTREAM_FORMAT, upstream_line};
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::wait::poll_until;
use ringway_tests::websocket::{
    assert_switch_refused, client_frame, server_frame, upgrade_with_body, websocket_to,
};
use ringway_tests::{App, Conn, Nginx, Req, Ringway, Uwsgi, pattern, roundtrip};

#[test]
fn upstream_down_gives_502() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No file at all, and a stale socket file nobody listens on (ECONNREFUSED).
    let missing = dir.path().join("missing.sock");
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    for path in [missing, stale] {
        let ringway = Ringway::builder()
            .upstream(format!("unix:{}", path.display()))
            .start();
        for round in 0..2 {
            let started = Instant::now();
            let r = roundtrip(ringway.addr(), &Req::get("/"));
            assert_eq!(r.status, 502, "{} round {round}: {r:?}", path.display());
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "502 comes at once"
            );
        }
    }
}

/// uWSGI reads at most 128 vars from a packet (its default `max-vars`) and closes the
/// connection unanswered past that, whatever their size: a request that would make more gets
/// ringway's 431 (not a 502 from a server taken for failed).
#[test]
fn more_vars_than_uwsgi_takes_give_431() {
    let uwsgi = Uwsgi::start(App::Raw);
    let params: Vec<String> = (0..20).map(|i| format!("P{i} = \"{i}\"")).collect();
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\nupstream_buffer_size = \"32k\"\n\
         [[routes]]\npath = \"/\"\nupstream = \"default\"\nparams = {{ {} }}\n",
        uwsgi.upstream(),
        params.join(", ")
    ))
    .start();
    let many = (0..99).fold(Req::get("/environ"), |req, i| {
        req.header(&format!("X-H{i}"), "v")
    });
    let r = roundtrip(ringway.addr(), &many);
    assert_eq!(r.status, 431, "not uWSGI's silent close, a 502: {r:?}");
    assert!(
        ringway.wait_for_log("more than 128 vars", Duration::from_secs(5)),
        "the log says why; stderr:\n{}",
        ringway.stderr()
    );
    let few = (0..60).fold(Req::get("/environ"), |req, i| {
        req.header(&format!("X-H{i}"), "v")
    });
    let env = roundtrip(ringway.addr(), &few).json();
    assert_eq!(env["HTTP_X_H59"], "v", "fewer vars reach the app: {env}");
}

/// An app that echoes a client's `%01` into a header value is answered as nginx answers
/// it (its parser refuses only NUL, CR and LF there), not with a 502: otherwise any client
/// could fail its requests at will and strike the servers.
#[test]
fn control_bytes_in_an_answers_header_value_pass() {
    // wsgiref.validate refuses such a header; uWSGI itself passes it.
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        validate: false,
        ..UwsgiOptions::new(App::Raw)
    });
    let ringway = Ringway::with(&uwsgi).start();
    // Read raw: the test client's parser refuses control bytes as httparse does.
    let mut conn = TcpStream::connect(ringway.addr()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    conn.write_all(b"GET /reflect?/a%01b%7Fc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 302 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let sent: &[u8] = b"Location: /a\x01b\x7fc\r\n";
    assert!(
        answer.windows(sent.len()).any(|w| w == sent),
        "the value as the app sent it: {:?}",
        String::from_utf8_lossy(&answer)
    );
    let r = roundtrip(ringway.addr(), &Req::get("/reflect?/a%00b"));
    assert_eq!(r.status, 502, "NUL stays refused, as in nginx: {r:?}");
}

/// uWSGI's own WebSocket (`uwsgi.websocket_handshake`) works through a uwsgi group as
/// behind nginx's `uwsgi_pass`, which joins the connections after the app's 101 with no
/// setting: the handshake reaches the app, the 101 the client, and frames go both ways
/// until the client closes.
#[test]
fn a_websocket_through_uwsgi_as_behind_nginx() {
    // The handshake answers outside start_response, which wsgiref.validate refuses.
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        validate: false,
        ..UwsgiOptions::new(App::Raw)
    });
    let ringway = Ringway::with(&uwsgi)
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    let nginx = Nginx::start(uwsgi.socket());
    for (proxy, addr) in [("ringway", ringway.addr()), ("nginx", nginx.addr())] {
        let (mut stream, _) = websocket_to(addr, "/websocket");
        for message in ["hello", "through a uwsgi socket"] {
            stream
                .write_all(&client_frame(0x1, message.as_bytes()))
                .expect("text frame");
            assert_eq!(
                server_frame(&mut stream),
                (0x1, message.as_bytes().to_vec()),
                "{proxy}"
            );
        }
        // uWSGI's websocket_send answers in text frames.
        let large = "larger than a read of a waiting tunnel ".repeat(1500);
        stream
            .write_all(&client_frame(0x1, large.as_bytes()))
            .expect("a large frame");
        assert!(
            server_frame(&mut stream) == (0x1, large.into_bytes()),
            "{proxy}"
        );
        // The client closes: the app's loop ends, uWSGI closes, and so does the proxy.
        stream
            .write_all(&client_frame(0x8, &1000u16.to_be_bytes()))
            .expect("close frame");
        let mut rest = Vec::new();
        let ended = stream.read_to_end(&mut rest);
        assert!(ended.is_ok(), "{proxy}: {ended:?}");
    }
    let metrics = roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "ringway_upstream_upgrades_total{upstream=\"default\"} 1"),
        "{metrics}"
    );
}

/// Only a request that asks to switch protocols (HTTP/1.1, its `Connection` naming
/// `Upgrade`) carries a handshake to a uwsgi app: another request's key would have the app
/// answer a 101 its client cannot take (a 502 then). nginx passes them all on.
#[test]
fn a_websocket_handshake_reaches_a_uwsgi_app_only_in_an_upgrade_request() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).start();
    let handshake = |req: Req| {
        req.header("Upgrade", "websocket")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", "13")
    };
    let not_asking = [
        handshake(Req::get("/environ")),
        handshake(Req::get("/environ").header("Connection", "keep-alive")),
        handshake(Req::get("/environ").header("Connection", "Upgrade")).http10(),
        Req::get("/environ")
            .header("Connection", "Upgrade")
            .header("Upgrade", "h2c")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    for req in not_asking {
        let env = roundtrip(ringway.addr(), &req).json();
        for var in [
            "HTTP_UPGRADE",
            "HTTP_SEC_WEBSOCKET_KEY",
            "HTTP_SEC_WEBSOCKET_VERSION",
        ] {
            assert!(env.get(var).is_none(), "{var}: {env}");
        }
    }
    // Asking, to a path that answers as any other: the app sees the handshake, answers
    // 200, and the connection goes on as HTTP.
    let env = roundtrip(
        ringway.addr(),
        &handshake(Req::get("/environ").header("Connection", "Upgrade")),
    )
    .json();
    assert_eq!(env["HTTP_UPGRADE"], "websocket", "{env}");
    assert_eq!(
        env["HTTP_SEC_WEBSOCKET_KEY"], "dGhlIHNhbXBsZSBub25jZQ==",
        "{env}"
    );
}

/// A uwsgi server that answers every connection with `answer`, after reading its packet.
fn scripted_uwsgi(dir: &std::path::Path, answer: &'static [u8]) -> String {
    scripted_uwsgi_holding(dir, answer, Duration::ZERO)
}

/// As [`scripted_uwsgi`], keeping each connection open `hold` after its answer, reading
/// nothing more (the request's body, if any, left unread).
fn scripted_uwsgi_holding(dir: &std::path::Path, answer: &'static [u8], hold: Duration) -> String {
    let path = dir.join("scripted.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            if read_packet(&mut conn) && conn.write_all(answer).is_ok() {
                std::thread::sleep(hold);
            }
        }
    });
    format!("unix:{}", path.display())
}

/// Reads a uwsgi packet's header and vars from `conn` (its body, if any, is left); false if
/// the connection ended first.
fn read_packet(conn: &mut std::os::unix::net::UnixStream) -> bool {
    let mut header = [0u8; 4];
    if conn.read_exact(&mut header).is_err() {
        return false;
    }
    let mut vars = vec![0u8; usize::from(u16::from_le_bytes([header[1], header[2]]))];
    conn.read_exact(&mut vars).is_ok()
}

/// The whole head of an answer has `upstream_read_timeout`, not each piece of it, as nginx
/// sets its timer once for the head: an app trickling it a byte at a time held its request
/// (and a connection to it) for as long as it went on (found by review).
#[test]
fn a_head_trickled_a_byte_at_a_time_times_out_as_a_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trickle.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            if !read_packet(&mut conn) {
                continue;
            }
            for byte in b"HTTP/1.1 200 OK\r\nX-Trickled: yes\r\n\r\nok" {
                std::thread::sleep(Duration::from_millis(100));
                if conn.write_all(&[*byte]).is_err() {
                    break;
                }
            }
        }
    });
    let ringway = Ringway::builder()
        .upstream(format!("unix:{}", path.display()))
        .arg("--upstream-read-timeout", "500ms")
        .start();
    let started = Instant::now();
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took < Duration::from_secs(2),
        "504 after 500 ms: took {took:?}"
    );
}

/// A uwsgi server that switches protocols before it read the whole request body gets no
/// tunnel, as an HTTP one (found by review: untested through uwsgi): a 502.
#[test]
fn a_uwsgi_switch_before_the_whole_body_went_out_is_a_502() {
    const BODY: usize = 32 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = scripted_uwsgi_holding(
        dir.path(),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\n\r\nnew protocol",
        Duration::from_secs(10),
    );
    let ringway = Ringway::builder()
        .upstream(upstream)
        .arg("--max-body-size", "64m")
        .start();
    let answer = upgrade_with_body(ringway.addr(), BODY);
    assert_switch_refused(&answer, &ringway.stderr());
}

/// Interim heads from a uwsgi server are dropped, as from an HTTP one (the body is sent
/// on past them).
#[test]
fn interim_heads_from_a_uwsgi_server_are_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = scripted_uwsgi(
        dir.path(),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let ringway = Ringway::builder().upstream(upstream).start();
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
}

/// A uwsgi answer without a status line, CGI's way (headers only, a `Status` header or a
/// `Location`), as nginx's uwsgi module reads it: the same status and body through both
/// (it was a 502 from ringway).
#[test]
fn a_cgi_style_uwsgi_answer_is_read_as_nginx_reads_it() {
    let cases: [(&'static [u8], u16, &str); 4] = [
        (
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing",
            404,
            "missing",
        ),
        (
            b"Location: /elsewhere\r\nContent-Length: 0\r\n\r\n",
            302,
            "",
        ),
        (b"Content-Type: text/plain\r\n\r\nplain", 200, "plain"),
        (b"Status: abc\r\n\r\n", 502, ""),
    ];
    for (answer, status, body) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let upstream = scripted_uwsgi(dir.path(), answer);
        let ringway = Ringway::builder().upstream(upstream).start();
        let nginx = Nginx::start(&dir.path().join("scripted.sock"));
        let shown = String::from_utf8_lossy(answer);
        for (side, addr) in [("ringway", ringway.addr()), ("nginx", nginx.addr())] {
            let r = roundtrip(addr, &Req::get("/"));
            assert_eq!(r.status, status, "{side}, {shown:?}: {r:?}");
            if status != 502 {
                assert_eq!(r.text(), body, "{side}, {shown:?}");
            }
        }
    }
}

#[test]
fn upstream_slower_than_the_read_timeout_gives_504() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--upstream-read-timeout", "200ms")
        .start();
    let started = Instant::now();
    let r = roundtrip(ringway.addr(), &Req::get("/slow?ms=2000"));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took < Duration::from_millis(1500),
        "504 after about 200 ms, not when the app is done: took {took:?}"
    );
    let r = roundtrip(ringway.addr(), &Req::get("/slow?ms=10"));
    assert_eq!(r.status, 200, "a fast request still works: {r:?}");
}

#[test]
fn vars_over_the_upstream_buffer_give_431_and_name_the_setting() {
    let uwsgi = Uwsgi::start(App::Raw); // uWSGI's default buffer-size: 4096
    let ringway = Ringway::with(&uwsgi)
        .arg("--upstream-buffer-size", "4096")
        .start();
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/environ").header("X-Big", &"x".repeat(5000)),
    );
    assert_eq!(r.status, 431, "not the 502 nginx gives: {r:?}");
    assert!(
        ringway.wait_for_log("upstream-buffer-size", Duration::from_secs(5)),
        "the log tells which setting to raise; stderr:\n{}",
        ringway.stderr()
    );
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/environ").header("X-Big", &"x".repeat(1000)),
    );
    assert_eq!(r.status, 200, "a smaller header fits: {r:?}");
    drop(ringway);
    drop(uwsgi);

    // Both sides raised: the same header goes through whole.
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        buffer_size: Some(32768),
        ..UwsgiOptions::new(App::Raw)
    });
    let ringway = Ringway::with(&uwsgi)
        .arg("--upstream-buffer-size", "32k")
        .start();
    let env = roundtrip(
        ringway.addr(),
        &Req::get("/environ").header("X-Big", &"x".repeat(5000)),
    )
    .json();
    assert_eq!(
        env["HTTP_X_BIG"].as_str().map(str::len),
        Some(5000),
        "{env}"
    );
}

#[test]
fn bodies_over_the_limit_give_413() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).arg("--max-body-size", "1k").start();
    let addr = ringway.addr();
    let big = pattern(2048);
    let r = roundtrip(addr, &Req::post("/echo", &big));
    assert_eq!(r.status, 413, "Content-Length over the limit: {r:?}");
    let r = roundtrip(
        addr,
        &Req::post("/echo", b"").chunked(&[&big[..1000], &big[1000..]]),
    );
    assert_eq!(r.status, 413, "chunked body over the limit: {r:?}");

    // With Expect: 100-continue the final status comes instead of the 100.
    let mut conn = Conn::open(addr);
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
          Content-Length: 2048\r\n\r\n",
    )
    .expect("send");
    let r = conn.read_response().expect("response");
    assert_eq!(
        r.status, 413,
        "no 100 Continue for a body that will be refused: {r:?}"
    );

    let r = roundtrip(addr, &Req::post("/echo", &big[..1000]));
    check_echo(&r, &big[..1000], "a body under the limit");
    let r = roundtrip(addr, &Req::post("/echo", b"").chunked(&[&big[..1024]]));
    check_echo(&r, &big[..1024], "a chunked body at the limit");
}

#[test]
fn a_dead_upstream_among_two_costs_no_request() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dead = "unix:/nonexistent/ringway-test.sock";
    for order in [
        [dead.to_owned(), uwsgi.upstream()],
        [uwsgi.upstream(), dead.to_owned()],
    ] {
        let ringway = Ringway::builder()
            .upstream(&order[0])
            .upstream(&order[1])
            .arg("--metrics", "127.0.0.1:0")
            .flag("--no-ebpf")
            .start();
        for i in 0..20 {
            let r = roundtrip(ringway.addr(), &Req::get("/"));
            assert_eq!(r.status, 200, "request {i} with upstreams {order:?}: {r:?}");
        }
        // No request failed, but the dead server is seen: its refused connects are counted
        // (once per worker and few seconds it is skipped, so at least once in all).
        let metrics = roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text();
        let value = |series: &str| {
            metrics
                .lines()
                .find_map(|l| {
                    l.strip_prefix(series)?
                        .strip_prefix(' ')?
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no {series}:\n{metrics}"))
        };
        let failed = value("ringway_upstream_connect_failures_total{upstream=\"default\"}");
        assert!(failed >= 1.0, "{order:?}: {failed} connect failures");
        let refused = value("ringway_upstream_errors_total{kind=\"refused\"}");
        assert_eq!(refused, 0.0, "no request failed");
    }
}

#[test]
fn a_full_upstream_backlog_gives_503_at_once() {
    // One worker and a backlog of 1: while the worker sleeps, a couple of connections wait in
    // the backlog and further connects fail at once (EAGAIN on a unix socket).
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        workers: 1,
        listen: Some(1),
        ..UwsgiOptions::new(App::Raw)
    });
    let ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    let results: Vec<(u16, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(30 * i));
                    let started = Instant::now();
                    let r = roundtrip(addr, &Req::get("/slow?ms=1000"));
                    (r.status, started.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert!(
        results
            .iter()
            .all(|(status, _)| [200, 503].contains(status)),
        "only 200 or 503: {results:?}"
    );
    assert!(results.iter().any(|(s, _)| *s == 200), "{results:?}");
    assert!(results.iter().any(|(s, _)| *s == 503), "{results:?}");
    for (status, took) in &results {
        if *status == 503 {
            assert!(
                *took < Duration::from_millis(900),
                "503 comes at once: {results:?}"
            );
        }
    }
    let r = roundtrip(addr, &Req::get("/"));
    assert_eq!(r.status, 200, "served again once the backlog drains: {r:?}");
}

#[test]
fn a_response_cut_short_upstream_is_cut_short_downstream() {
    // The app promises 2n bytes and sends n: the client must see the connection end early
    // (so it knows the body is incomplete), not a padded body, not a hang.
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    for n in [100, 300_000] {
        let mut conn = Conn::open(ringway.addr());
        conn.send(&Req::get(&format!("/truncated/{n}")).to_bytes())
            .expect("send");
        let started = Instant::now();
        let outcome = conn.read_response();
        match outcome {
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof,
                "{n}: closed early, not left hanging: {e}"
            ),
            Ok(r) => assert_eq!(r.status, 502, "{n}: a complete-looking body: {r:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{n}");
    }
    assert_eq!(roundtrip(ringway.addr(), &Req::get("/")).status, 200);
}

/// An app that answers an upload without reading it (a 403 or a 413 page, here 400 KB) has
/// its whole answer relayed, as nginx relays it: the answer fills the socket's buffers before
/// the body has gone out, so a proxy that sends the whole body before it reads waits on the
/// app while the app waits on it (found by review: uWSGI gave up after its socket timeout,
/// 4 s, and the client got a cut answer).
#[test]
fn an_answer_before_the_whole_upload_is_relayed_whole() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start(uwsgi.socket());
    let ringway = Ringway::start(&uwsgi);
    let upload = pattern(900_000);
    for (proxy, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
        let started = Instant::now();
        let r = roundtrip(addr, &Req::post("/bytes/400000", &upload));
        assert_eq!(r.status, 200, "{proxy}: {r:?}");
        assert!(
            r.body == pattern(400_000),
            "{proxy}: {} bytes",
            r.body.len()
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{proxy}: took {:?}",
            started.elapsed()
        );
    }
    // The upstream connection was left with a write in flight: it ends, nothing leaks, the
    // next requests are served.
    let r = roundtrip(ringway.addr(), &Req::post("/echo", &upload[..1000]));
    check_echo(&r, &upload[..1000], "after the early answer");
}

/// A client trickling its body must hold ringway's memory, not a Python worker: with every
/// uWSGI worker's worth of slow uploads in progress, a plain request is still served at once
/// (found by review: the body used to be streamed to an already connected worker).
#[test]
fn slow_uploads_do_not_hold_the_python_workers() {
    let mut opts = UwsgiOptions::new(App::Raw);
    opts.workers = 2;
    let uwsgi = Uwsgi::start_with(opts);
    let ringway = Ringway::start(&uwsgi);
    let mut uploads: Vec<Conn> = (0..3)
        .map(|_| {
            let mut c = Conn::open(ringway.addr());
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
                .expect("send");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a GET waited {:?} behind slow uploads",
        started.elapsed()
    );
    // The uploads still complete once their bodies arrive.
    for c in &mut uploads {
        c.send(&[b'x'; 997]).expect("rest of the body");
        let r = c.read_response().expect("answer");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["length"], 1000);
    }
}

#[test]
fn a_server_written_by_name_and_a_unix_triple_slash_reach_uwsgi() {
    // Docker Compose configs name their app by service (`server web:3031;`), the uWSGI
    // tutorial writes `unix:///path`: nginx takes both, and so does ringway.
    let tcp = Uwsgi::start_with(UwsgiOptions {
        tcp: true,
        ..UwsgiOptions::new(App::Raw)
    });
    let named = tcp.upstream().replace("127.0.0.1", "localhost");
    let unix = Uwsgi::start(App::Raw);
    let triple = format!("unix://{}", unix.socket().display());
    for upstream in [named, triple] {
        let ringway = Ringway::builder().upstream(&upstream).start();
        for i in 0..4 {
            let r = roundtrip(ringway.addr(), &Req::post("/echo", b"by name"));
            check_echo(&r, b"by name", &format!("{upstream}, request {i}"));
        }
    }
}

/// Sends `path` to `addr` and closes the connection 100 ms later, before any answer.
fn abandon(addr: SocketAddr, path: &str) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    std::thread::sleep(Duration::from_millis(100));
}

/// nginx's `uwsgi_ignore_client_abort on`, per route. A client that leaves before its
/// answer ends the request at uWSGI by default: uWSGI then writes its answer to a closed
/// socket and logs a broken pipe. With the setting the app's answer is read whole, logged
/// with its upstream status and time, and uWSGI logs no error: as behind nginx, each way.
/// A client that only half-closes (sends its request, then shuts its sending side) still
/// gets its answer.
#[test]
fn ignore_client_abort_keeps_the_request_at_uwsgi_when_its_client_leaves() {
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        workers: 4,
        ..UwsgiOptions::new(App::Raw)
    });
    let nginx_default = Nginx::start(uwsgi.socket());
    let nginx_ignoring =
        Nginx::start_with_server_directives(uwsgi.socket(), "uwsgi_ignore_client_abort on;");
    let ringway = Ringway::with_config(format!(
        "upstream = [{:?}]\naccess_log = \"stderr\"\n\
         access_log_format = '{UPSTREAM_FORMAT}'\n\
         [[routes]]\npath = \"/kept/\"\nupstream = \"default\"\nscript_name = \"/kept\"\n\
         ignore_client_abort = true\n\
         [[routes]]\npath = \"/\"\nupstream = \"default\"\n",
        uwsgi.upstream()
    ))
    .start();
    let cases = [
        (nginx_default.addr(), "/slow", "nginx-default", false),
        (nginx_ignoring.addr(), "/slow", "nginx-ignoring", true),
        (ringway.addr(), "/slow", "ringway-default", false),
        (ringway.addr(), "/kept/slow", "ringway-ignoring", true),
    ];
    for (addr, path, by, _) in cases {
        abandon(addr, &format!("{path}?ms=1500&by={by}"));
    }
    let finished = poll_until(Duration::from_secs(10), || {
        uwsgi.log().matches(" => generated ").count() >= cases.len()
    });
    assert!(finished, "uWSGI finished 4 requests:\n{}", uwsgi.log());
    let log = uwsgi.log();
    for (_, path, by, ignored) in cases {
        let request = format!("GET {path}?ms=1500&by={by}");
        let broken = log.contains(&format!(
            "Broken pipe [core/writer.c line 306] during {request}"
        ));
        let whole = log.contains(&format!("{request} => generated 13 bytes"));
        assert_eq!(
            (broken, whole),
            (!ignored, ignored),
            "{by}: uWSGI's broken pipe and whole answer:\n{log}"
        );
    }
    let logged = |uri: &str| {
        let mut line = None;
        poll_until(Duration::from_secs(5), || {
            line = upstream_line(&ringway.stderr(), uri);
            line.is_some()
        });
        line.unwrap_or_else(|| panic!("no line for {uri}:\n{}", ringway.stderr()))
    };
    // Ended once the watch, 100 ms on, saw the client gone: long before the app's answer.
    let (status, upstream, time) = logged("/slow?ms=1500&by=ringway-default");
    assert!(
        (status, upstream) == (499, None) && (0.05..1.0).contains(&time),
        "{status} {upstream:?} {time}"
    );
    // The app's answer, read whole after its 1.5 s.
    let (status, upstream, time) = logged("/kept/slow?ms=1500&by=ringway-ignoring");
    assert!(
        (status, upstream) == (200, Some(200)) && (1.5..5.0).contains(&time),
        "{status} {upstream:?} {time}"
    );
    for (proxy, addr, path) in [
        ("nginx", nginx_ignoring.addr(), "/slow"),
        ("ringway", ringway.addr(), "/kept/slow"),
    ] {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(format!("GET {path}?ms=1200 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .expect("send");
        s.shutdown(Shutdown::Write).expect("half-close");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("slept 1200 ms"),
            "{proxy}, half-closed client: {answer}"
        );
    }
}

/// An app that pauses between pieces of its answer (an event stream, a long poll): a
/// client that leaves during a pause ends the request at once, the upstream connection
/// closed, as nginx ends it; the app finds out at its next write (uWSGI logs the broken
/// pipe), not ringway at the client's. Logged with the status sent (200), as by nginx.
#[test]
fn a_client_that_leaves_while_the_app_pauses_its_answer_ends_the_request() {
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        workers: 4,
        ..UwsgiOptions::new(App::Raw)
    });
    // Unbuffered, or nginx holds the first event back (ringway relays each piece as it
    // comes either way); nginx watches its client the same in both modes.
    let pass = ringway_tests::nginx::uwsgi_pass(uwsgi.socket());
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!("location /paced {{ uwsgi_buffering off; {pass} }}"),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [{:?}]\naccess_log = \"stderr\"\naccess_log_format = '$request_uri $status'\n",
        uwsgi.upstream()
    ))
    .start();
    let gates = tempfile::tempdir().expect("temp dir");
    let gate = |by: &str| gates.path().join(by);
    for (by, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
        let mut conn = Conn::open(addr);
        let target = format!("/paced?gate={}", gate(by).display());
        conn.send(&Req::get(&target).to_bytes()).expect("send");
        while !String::from_utf8_lossy(conn.leftover()).contains("data: first") {
            let have = conn.leftover().len();
            conn.read_at_least(have + 1)
                .unwrap_or_else(|e| panic!("{by}: the first event: {e}"));
        }
        drop(conn);
    }
    // Ended while the app still waits for its gate: logged, and nothing more read.
    let target = format!("/paced?gate={}", gate("ringway").display());
    let logged = poll_until(Duration::from_secs(5), || {
        ringway.stderr().contains(&format!("{target} 200"))
    });
    assert!(logged, "no line for {target}:\n{}", ringway.stderr());
    for by in ["nginx", "ringway"] {
        std::fs::write(gate(by), b"").expect("open the gate");
    }
    let broken = |by: &str| {
        let log = uwsgi.log();
        log.lines().any(|l| {
            l.contains("Broken pipe")
                && l.contains(&format!("GET /paced?gate={}", gate(by).display()))
        })
    };
    let both = poll_until(Duration::from_secs(10), || {
        broken("nginx") && broken("ringway")
    });
    assert!(
        both,
        "uWSGI wrote the second event into a closed connection behind both:\n{}",
        uwsgi.log()
    );
}
