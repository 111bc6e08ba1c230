//! nginx's `listen ... deferred` (`listen_deferred`) and `reset_timedout_connection`, seen
//! where they act: in the kernel's sockets (`ss`) and in what the client's socket reads.
//! Each test runs ringway with and without the setting, so it shows what the setting
//! changes and not only that something happened.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::app_server::sockets_at;
use ringway_tests::ringway::RingwayBuilder;
use ringway_tests::{App, Nginx, Req, Ringway, Uwsgi, pattern, roundtrip};

/// A file route over a temp dir holding `big.bin` (`size` bytes), on ringway with `flags`.
fn file_server(size: usize, flags: &[&str]) -> (tempfile::TempDir, Ringway) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("big.bin"), pattern(size)).expect("file");
    let mut builder = files_at(&dir);
    for flag in flags {
        builder = builder.flag(flag);
    }
    (dir, builder.arg("--send-timeout", "1s").start())
}

/// ringway serving `dir` at `/f/` and nothing else.
fn files_at(dir: &tempfile::TempDir) -> RingwayBuilder {
    Ringway::with_config(format!(
        "[[routes]]\npath = \"/f/\"\nstatic = '{}'\n",
        dir.path().display()
    ))
}

/// Polls `ss` until `state` at `port` lists `count` sockets, for up to `limit`; the last list.
fn wait_for_sockets(port: u16, state: &str, count: usize, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = sockets_at(port, state);
        if found.len() == count || start.elapsed() > limit {
            return found;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Reads `conn` to its end: the bytes, and how it ended (`None`: end of stream; the error
/// kind otherwise).
fn read_to_end(conn: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

#[test]
fn a_deferred_listener_hands_a_connection_over_once_it_speaks() {
    for deferred in [false, true] {
        let flags: &[&str] = if deferred {
            &["--listen-deferred"]
        } else {
            &[]
        };
        let (_dir, ringway) = file_server(5, flags);
        let port = ringway.addr().port();

        // A connection that has sent nothing: with `deferred` the kernel holds it (the
        // server's side stays SYN-RECV) and ringway never sees it.
        let mut silent = TcpStream::connect(ringway.addr()).expect("connect");
        thread::sleep(Duration::from_millis(300));
        let (held, accepted) = (
            sockets_at(port, "syn-recv"),
            sockets_at(port, "established"),
        );
        if deferred {
            assert_eq!(held.len(), 1, "held by the kernel: {held:?}");
            assert!(accepted.is_empty(), "handed over already: {accepted:?}");
        } else {
            assert!(held.is_empty(), "{held:?}");
            assert_eq!(accepted.len(), 1, "{accepted:?}");
        }

        // One that speaks is served at once either way.
        let r = roundtrip(ringway.addr(), &Req::get("/f/big.bin"));
        assert_eq!((r.status, &r.body[..]), (200, &pattern(5)[..]), "{r:?}");

        // After about a second the silent one is handed over all the same, and then gets
        // the header timeout of any connection (60 s by default: closed here by the test).
        let accepted = wait_for_sockets(port, "established", 1, Duration::from_secs(5));
        assert_eq!(accepted.len(), 1, "never handed over: {accepted:?}");
        silent
            .write_all(b"GET /f/big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .expect("the late request");
        let (got, end) = read_to_end(&mut silent);
        assert_eq!(end, None, "{}", String::from_utf8_lossy(&got));
        assert!(
            got.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{:?}",
            &got[..got.len().min(200)]
        );
    }
}

/// A client that asks for a large file and reads none of it: its receive buffer, and
/// ringway's send buffer, fill, and the 1 s `send_timeout` runs out.
fn stalled_download(addr: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let mut conn: TcpStream = socket.into();
    conn.write_all(b"GET /f/big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("request");
    conn
}

/// Size of the file a stalled client asks for: far more than both socket buffers hold.
const STALLED_SIZE: usize = 64 << 20;

/// A stalled download from the server at `addr`, whose `send_timeout` is 1 s, ends as
/// `reset_timedout_connection` (`reset`) says.
fn check_stalled_download(addr: SocketAddr, reset: bool) {
    let mut conn = stalled_download(addr);
    // The send timeout runs out a second after the buffers filled: the server's side of the
    // connection leaves `established` then.
    let left = wait_for_sockets(addr.port(), "established", 0, Duration::from_secs(10));
    assert!(left.is_empty(), "the send timeout never ran out: {left:?}");
    let orphans = sockets_at(addr.port(), "fin-wait-1");
    let (got, end) = read_to_end(&mut conn);
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK\r\n") && got.len() < STALLED_SIZE,
        "{} bytes",
        got.len()
    );
    if reset {
        // Closed with a reset: the kernel kept nothing to send, and the client learns the
        // answer was cut short.
        assert!(orphans.is_empty(), "kept to send: {orphans:?}");
        assert_eq!(end, Some(ErrorKind::ConnectionReset), "{} bytes", got.len());
    } else {
        // Closed: the kernel keeps the socket and its unsent bytes for a client that may
        // never read them, and a client that does reads a short answer to a clean end.
        assert_eq!(orphans.len(), 1, "{orphans:?}");
        assert_eq!(end, None, "{} bytes", got.len());
    }
}

#[test]
fn a_timed_out_answer_is_reset_only_with_reset_timedout_connection_as_by_nginx() {
    for reset in [false, true] {
        let flags: &[&str] = if reset {
            &["--reset-timedout-connection"]
        } else {
            &[]
        };
        let (dir, ringway) = file_server(STALLED_SIZE, flags);
        check_stalled_download(ringway.addr(), reset);

        // nginx with the same file, `send_timeout` and setting (its uwsgi_pass is unused).
        let nginx = Nginx::start_with_server_directives(
            Path::new("/nonexistent/app.sock"),
            &format!(
                "send_timeout 1s; reset_timedout_connection {}; location /f/ {{ alias {}/; }}",
                if reset { "on" } else { "off" },
                dir.path().display()
            ),
        );
        check_stalled_download(nginx.addr(), reset);
    }
}

/// A way for a connection to run out of time: its name, what the client sends, how the
/// answer starts (`None`: nothing comes), and how the connection ends (`None`: a clean end).
type Ending = (
    &'static str,
    &'static [u8],
    Option<&'static [u8]>,
    Option<ErrorKind>,
);

/// How each way a connection can run out of time ends, with and without
/// `reset_timedout_connection`: a head or a body that stops coming gets its 408, then a
/// reset when asked; a connection that never sent a byte, and one idle between requests
/// past `keepalive_timeout`, are closed either way (nginx resets neither).
#[test]
fn a_head_or_body_that_times_out_is_reset_and_an_idle_connection_is_not() {
    let uwsgi = Uwsgi::start(App::Raw);
    for reset in [false, true] {
        let mut builder = Ringway::with(&uwsgi)
            .arg("--client-header-timeout", "1s")
            .arg("--client-body-timeout", "1s")
            .arg("--keepalive-timeout", "1s");
        if reset {
            builder = builder.flag("--reset-timedout-connection");
        }
        let ringway = builder.start();
        let reset_if_asked = if reset {
            Some(ErrorKind::ConnectionReset)
        } else {
            None
        };
        let cases: [Ending; 4] = [
            (
                "half a head",
                b"GET /bytes/3 HTTP/1.1\r\nHost: a\r\n",
                Some(b"HTTP/1.1 408 "),
                reset_if_asked,
            ),
            (
                "half a body",
                b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc",
                Some(b"HTTP/1.1 408 "),
                reset_if_asked,
            ),
            ("nothing at all", b"", None, None),
            (
                "one request, then idle",
                b"GET /bytes/3 HTTP/1.1\r\nHost: a\r\n\r\n",
                Some(b"HTTP/1.1 200 OK\r\n"),
                None,
            ),
        ];
        for (name, sent, answer, end) in cases {
            let mut conn = TcpStream::connect(ringway.addr()).expect("connect");
            conn.write_all(sent).expect("send");
            let (got, how) = read_to_end(&mut conn);
            let shown = String::from_utf8_lossy(&got);
            match answer {
                Some(answer) => assert!(got.starts_with(answer), "{name}: {shown}"),
                None => assert!(got.is_empty(), "{name}: {shown}"),
            }
            assert_eq!(how, end, "{name}, reset {reset}: {shown}");
        }
    }
}
