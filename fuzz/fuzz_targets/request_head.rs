//! The request head with its checks: `http::parse_request` under the daemon's limits and
//! under tight ones, on any bytes.
//!
//! Beyond "no panic": every span lies inside the head; the head obeys the rules it was
//! checked against (token method, origin- or absolute-form target, Host, one framing); the
//! only change to the buffer is a `HTTP/1.x` minor version served as 1.1; and the verdict
//! does not depend on how the bytes arrive, since the daemon parses again after each read:
//! every prefix of an accepted head is `Partial`, bytes after a head do not change it, and
//! a refused head stays refused however it continues.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::{BodyFraming, HeaderSpan, Limits, Method, RequestHead, Status, Version};
use ringway::http::{HttpError, Span, parse_request};
use ringway_fuzz::{Rng, assert_span_in, is_token, list_has, prefix_lengths, show, trim_ows};

/// The daemon's limits (client/head.rs with the default `max_header_size`), and tight ones
/// that short inputs can reach.
const LIMITS: [Limits; 2] = [
    Limits {
        max_request_line: 8192,
        max_head: 16 * 1024,
        max_headers: 100,
    },
    Limits {
        max_request_line: 40,
        max_head: 160,
        max_headers: 4,
    },
];

/// Ways a refused head could go on: none of them may turn it into an accepted one.
const CONTINUATIONS: [&[u8]; 3] = [b"\r\n", b"\r\n\r\n", b"\r\nHost: a\r\n\r\n"];

fuzz_target!(|data: &[u8]| {
    for limits in &LIMITS {
        check(data, limits);
    }
});

fn parse(
    data: &[u8],
    limits: &Limits,
) -> (
    Vec<u8>,
    Vec<HeaderSpan>,
    Result<Status<RequestHead>, HttpError>,
) {
    let mut buf = data.to_vec();
    let mut headers = vec![HeaderSpan::default(); 3];
    let result = parse_request(&mut buf, limits, &mut headers);
    (buf, headers, result)
}

fn check(data: &[u8], limits: &Limits) {
    let (buf, headers, result) = parse(data, limits);
    check_rewrite(data, &buf);
    match result {
        Ok(Status::Complete(head)) => {
            check_head(&buf, &head, &headers, limits);
            let mut rng = Rng::from_input(data);
            for k in prefix_lengths(data, head.head_len, &mut rng) {
                let (_, _, prefix) = parse(&data[..k], limits);
                assert_eq!(
                    prefix,
                    Ok(Status::Partial),
                    "the first {k} bytes of an accepted head: {:?}",
                    show(&data[..k])
                );
            }
            let (_, alone_headers, alone) = parse(&data[..head.head_len], limits);
            assert_eq!(
                alone,
                Ok(Status::Complete(head)),
                "the head without what follows"
            );
            assert_eq!(alone_headers, headers);
        }
        Ok(Status::Partial) => {
            assert!(headers.is_empty(), "a partial head has no headers yet");
            assert!(
                data.len() <= limits.max_head,
                "{} bytes without a complete head is over max_head",
                data.len()
            );
        }
        Err(err) => {
            for more in CONTINUATIONS {
                let longer = [data, more].concat();
                let (_, _, verdict) = parse(&longer, limits);
                assert!(
                    verdict.is_err(),
                    "refused ({err:?}) but accepted with {:?} after it: {verdict:?}",
                    show(more)
                );
            }
        }
    }
}

/// The only change parse_request makes: a request line's `HTTP/1.x` (x from 2 to 9)
/// becomes `HTTP/1.1`.
fn check_rewrite(data: &[u8], buf: &[u8]) {
    assert_eq!(data.len(), buf.len());
    let changed: Vec<usize> = (0..data.len()).filter(|&i| data[i] != buf[i]).collect();
    match changed[..] {
        [] => {}
        [i] => {
            assert!(
                matches!(data[i], b'2'..=b'9') && buf[i] == b'1',
                "byte {i} changed"
            );
            assert!(
                i >= 7 && &buf[i - 7..i] == b"HTTP/1.",
                "byte {i} is no minor version"
            );
        }
        _ => panic!("bytes {changed:?} changed"),
    }
}

fn check_head(buf: &[u8], head: &RequestHead, headers: &[HeaderSpan], limits: &Limits) {
    let end = head.head_len;
    assert!(end <= buf.len() && end <= limits.max_head, "head_len {end}");
    assert!(buf[..end].ends_with(b"\n\n") || buf[..end].ends_with(b"\n\r\n"));

    // The request line: after any empty lines, and within its limit.
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(end);
    let line_len = buf[lead..end]
        .iter()
        .position(|&b| b == b'\n')
        .expect("a request line");
    let line = &buf[lead..lead + line_len];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    assert!(
        line.len() <= limits.max_request_line,
        "request line of {}",
        line.len()
    );
    let line_end = lead + line.len();

    for (span, what) in [
        (head.method_span, "method"),
        (head.target, "target"),
        (head.path, "path"),
        (head.query, "query"),
    ] {
        assert_span_in(span, line_end, what);
        assert!(
            span.start as usize >= lead,
            "{what} before the request line"
        );
    }
    let method = head.method_span.of(buf);
    assert!(
        !method.is_empty() && method.iter().all(|&b| is_token(b)),
        "method {:?}",
        show(method)
    );
    assert_eq!(Method::from_token(method), head.method);
    assert_eq!(head.method_span.start as usize, lead);

    let target = head.target.of(buf);
    assert!(!target.is_empty());
    let inside = |s: Span| s.start >= head.target.start && s.end <= head.target.end;
    assert!(
        inside(head.path) && inside(head.query),
        "path and query inside the target"
    );
    let path = head.path.of(buf);
    assert!(path.is_empty() || path[0] == b'/', "path {:?}", show(path));
    if target[0] == b'/' {
        assert_eq!(
            head.path.start, head.target.start,
            "origin-form: the path starts the target"
        );
    }
    assert!(!path.contains(&b'?') && !path.contains(&b'#'));
    let query = head.query.of(buf);
    assert!(!query.contains(&b'#'));
    if !query.is_empty() {
        assert_eq!(buf[head.query.start as usize - 1], b'?');
    }
    let version = &buf[line_end - 8..line_end];
    match head.version {
        Version::Http10 => assert_eq!(version, b"HTTP/1.0"),
        Version::Http11 => assert_eq!(version, b"HTTP/1.1"),
    }

    assert!(
        headers.len() <= limits.max_headers.min(128),
        "{} headers",
        headers.len()
    );
    let count = |name: &[u8]| {
        headers
            .iter()
            .filter(|h| h.name.of(buf).eq_ignore_ascii_case(name))
            .count()
    };
    let (lengths, encodings, hosts) = (
        count(b"content-length"),
        count(b"transfer-encoding"),
        count(b"host"),
    );
    let value_of = |name: &[u8]| {
        headers
            .iter()
            .find(|h| h.name.of(buf).eq_ignore_ascii_case(name))
            .map(|h| h.value.of(buf))
    };
    for h in headers {
        assert_span_in(h.name, end, "header name");
        assert_span_in(h.value, end, "header value");
        assert!(
            h.name.start as usize > line_end,
            "a header inside the request line"
        );
        let (name, value) = (h.name.of(buf), h.value.of(buf));
        assert!(
            !name.is_empty() && name.iter().all(|&b| is_token(b)),
            "name {:?}",
            show(name)
        );
        assert!(
            !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)),
            "value {:?}",
            show(value)
        );
        assert_eq!(trim_ows(value), value, "an untrimmed value");
    }

    // Host: required by 1.1, at most one, and safe to hand on.
    assert!(hosts <= 1, "{hosts} Host headers");
    match head.host {
        Some(host) => {
            assert_span_in(host, end, "host");
            let host = host.of(buf);
            assert!(!host.is_empty());
            assert!(
                host.iter()
                    .all(|&b| b > b' ' && b != 0x7f && !b"/\\@".contains(&b))
            );
            assert!(
                !host.windows(2).any(|w| w == b".."),
                "host {:?}",
                show(host)
            );
        }
        None => {
            assert_eq!(
                head.version,
                Version::Http10,
                "a 1.1 request without a host"
            );
            assert_eq!(hosts, 0);
        }
    }

    // One framing, from the one header that decides it.
    match head.body {
        BodyFraming::Chunked => {
            assert_eq!((encodings, lengths), (1, 0));
            assert_eq!(head.version, Version::Http11);
            let te = value_of(b"transfer-encoding").unwrap_or_default();
            assert!(te.eq_ignore_ascii_case(b"chunked"), "TE {:?}", show(te));
        }
        BodyFraming::Length(n) => {
            assert_eq!((encodings, lengths), (0, 1));
            let cl = value_of(b"content-length").unwrap_or_default();
            assert!(
                !cl.is_empty() && cl.iter().all(u8::is_ascii_digit),
                "CL {:?}",
                show(cl)
            );
            let parsed = std::str::from_utf8(cl)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            assert_eq!(parsed, Some(n));
            assert!(n <= i64::MAX as u64);
        }
        BodyFraming::None => assert_eq!((encodings, lengths), (0, 0)),
    }

    // Keep-alive as the version and Connection say.
    let connection = |token: &[u8]| {
        headers.iter().any(|h| {
            h.name.of(buf).eq_ignore_ascii_case(b"connection") && list_has(h.value.of(buf), token)
        })
    };
    if connection(b"close") {
        assert!(!head.keep_alive, "kept alive despite Connection: close");
    }
    if head.version == Version::Http10 {
        assert_eq!(
            head.keep_alive,
            connection(b"keep-alive") && !connection(b"close")
        );
    } else {
        assert_eq!(head.keep_alive, !connection(b"close"));
    }
    if head.expect_continue {
        assert_eq!(head.version, Version::Http11);
        assert!(count(b"expect") >= 1);
    }
}
