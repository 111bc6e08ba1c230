//! uWSGI spoken to directly in its own protocol, as a proxy does: proves the apps and the
//! packet layout, and pins the uWSGI 2.0 facts ringway is built on (docs/ARCHITECTURE.md).

use std::time::Duration;

use ringway_tests::uwsgi::{UwsgiOptions, encode_packet};
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Framing, Uwsgi, pattern, sha256_hex};

fn vars<'a>(
    method: &'a str,
    path: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("REQUEST_METHOD", method),
        ("PATH_INFO", path),
        ("REQUEST_URI", path),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "direct"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "localhost"),
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn the_packet_layout_is_little_endian_sizes() {
    assert_eq!(
        encode_packet(&[("AB", "xyz")]),
        [0, 9, 0, 0, 2, 0, b'A', b'B', 3, 0, b'x', b'y', b'z']
    );
}

#[test]
fn uwsgi_answers_a_hand_made_packet_for_both_apps() {
    for app in App::ALL {
        let uwsgi = Uwsgi::start(app);
        let r = uwsgi
            .request(&vars("GET", "/", &[]), b"")
            .unwrap_or_else(|e| panic!("{app:?}: {e}\n{}", uwsgi.log()));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello, World!"),
            "{app:?}"
        );

        // The answer is plain HTTP; without a length the body ends with the close.
        let r = uwsgi
            .request(&vars("GET", "/stream/1000", &[]), b"")
            .expect("stream");
        assert_eq!(r.framing, Framing::UntilClose, "{app:?}: {r:?}");
        assert!(r.body == pattern(1000), "{app:?}");

        let body = pattern(5000);
        let r = uwsgi
            .request(&vars("POST", "/echo", &[("CONTENT_LENGTH", "5000")]), &body)
            .expect("echo");
        assert_eq!(r.json()["sha256"], sha256_hex(&body), "{app:?}: {r:?}");

        let env = uwsgi
            .request(&vars("GET", "/environ", &[("HTTP_X_PROBE", "1")]), b"")
            .expect("environ")
            .json();
        assert_eq!(env["SERVER_NAME"], "direct", "{app:?}: {env}");
        assert_eq!(env["HTTP_X_PROBE"], "1", "{app:?}: {env}");
        assert_eq!(env["wsgi.url_scheme"], "http", "{app:?}: {env}");
    }
}

#[test]
fn uwsgi_drops_a_vars_block_over_its_buffer_size_with_only_a_log_line() {
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        workers: 1,
        ..UwsgiOptions::new(App::Raw)
    });
    let big = "x".repeat(5000);
    let result = uwsgi.request(&vars("GET", "/", &[("HTTP_X_BIG", &big)]), b"");
    assert!(
        result.is_err(),
        "no answer at all for a 5000-byte block with buffer-size 4096: {result:?}"
    );
    assert!(
        poll_until(Duration::from_secs(5), || uwsgi
            .log()
            .contains("invalid request block size")),
        "uWSGI says why only in its log:\n{}",
        uwsgi.log()
    );
}
