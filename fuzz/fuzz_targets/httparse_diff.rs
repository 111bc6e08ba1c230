//! Differential: every request head ringway accepts, httparse (on its own, default
//! settings) parses to the same method, target, version and headers, and to the same end;
//! one with header names httparse refuses, httparse ignoring invalid header lines parses so.
//!
//! ringway serves `HTTP/1.2`–`HTTP/1.9` as 1.1 by rewriting the minor digit in its buffer;
//! httparse refuses those, so for them it is given the rewritten buffer. ringway takes, as
//! nginx does, bytes from 0x80 up in the target and control bytes other than NUL, CR and LF
//! in a header value, which httparse refuses: httparse is given them replaced by bytes it
//! takes (the offsets stay), and the originals are checked to be nowhere else.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::{Limits, Status, Version, parse_request};
use ringway_fuzz::show;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let mut spans = Vec::new();
    let Ok(Status::Complete(head)) = parse_request(&mut buf, &Limits::default(), &mut spans) else {
        return;
    };
    let refuses_version = |bytes: &[u8]| {
        let mut slots = [httparse::EMPTY_HEADER; 256];
        let parsed = httparse::Request::new(&mut slots).parse(bytes);
        matches!(parsed, Err(httparse::Error::Version))
    };
    let input = if buf != data && refuses_version(&masked(data).0) {
        &buf[..]
    } else {
        data
    };
    let (input, masked_at) = masked(input);
    let input = &input[..];
    let original = buf.clone();
    let (buf, _) = masked(&buf);
    // Where the masked bytes were: in the target, or in a value that is not the Host's.
    let within = |span: ringway::http::Span, at: usize| {
        (span.start as usize..span.end as usize).contains(&at)
    };
    for &at in masked_at.iter().filter(|&&at| at < head.head_len) {
        let shown = show(&original[..head.head_len]);
        assert!(
            !head.host.is_some_and(|host| within(host, at)),
            "a masked byte in the host of {shown:?}"
        );
        if original[at] >= 0x80 {
            assert!(
                within(head.target, at),
                "a byte out of the target in {shown:?}"
            );
        }
    }
    // A head ringway took although a default parse refused a name: ringway dropped the
    // lines whose names have printable non-token characters, as nginx does; httparse's
    // lenient mode drops those lines too (and more, which ringway refuses).
    let mut strict_slots = [httparse::EMPTY_HEADER; 256];
    let dropped_names = matches!(
        httparse::Request::new(&mut strict_slots).parse(input),
        Err(httparse::Error::HeaderName)
    );
    let mut config = httparse::ParserConfig::default();
    config.ignore_invalid_headers_in_requests(dropped_names);
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut slots);
    let parsed = config.parse_request(&mut req, input);
    let shown = show(&original[..head.head_len]);
    match parsed {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.head_len, "head end: {shown:?}"),
        other => panic!("httparse: {other:?} where ringway accepted {shown:?}"),
    }
    assert_eq!(
        req.method.map(str::as_bytes),
        Some(head.method_span.of(&buf)),
        "{shown:?}"
    );
    assert_eq!(
        req.path.map(str::as_bytes),
        Some(head.target.of(&buf)),
        "{shown:?}"
    );
    let version = match head.version {
        Version::Http10 => 0,
        Version::Http11 => 1,
    };
    assert_eq!(req.version, Some(version), "{shown:?}");
    let theirs: Vec<(&[u8], &[u8])> = req
        .headers
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect();
    let ours: Vec<(&[u8], &[u8])> = spans
        .iter()
        .map(|h| (h.name.of(&buf), h.value.of(&buf)))
        .collect();
    assert_eq!(ours, theirs, "headers of {shown:?}");
    if dropped_names {
        // Checked apart from httparse: every line ringway dropped is one nginx drops.
        let kept: Vec<usize> = spans.iter().map(|h| h.name.start as usize).collect();
        let head = &buf[..head.head_len];
        let mut at = 0;
        let mut request_line_seen = false;
        for line in head.split(|&b| b == b'\n') {
            let start = at;
            at += line.len() + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !request_line_seen {
                request_line_seen = !line.is_empty();
                continue;
            }
            if line.is_empty() {
                break;
            }
            if kept.contains(&start) {
                continue;
            }
            assert!(droppable(line), "dropped {:?} of {shown:?}", show(line));
        }
    }
});

/// `head` with each byte from 0x80 up in its request line replaced by `x` and each control
/// byte other than NUL, CR and LF after a header line's colon by `!`, and where they were.
fn masked(head: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let line_end = head[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |lf| start + lf);
    let mut out = head.to_vec();
    let mut at = Vec::new();
    let mut in_value = false;
    for (i, b) in out.iter_mut().enumerate() {
        if i < line_end {
            if *b >= 0x80 {
                *b = b'x';
                at.push(i);
            }
            continue;
        }
        match *b {
            b'\n' => in_value = false,
            b':' => in_value = true,
            0x01..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f if in_value => {
                *b = b'!';
                at.push(i);
            }
            _ => {}
        }
    }
    (out, at)
}

/// A header line nginx's `ignore_invalid_headers` drops: a name of printable characters
/// with one no token has, a colon, a value of field characters.
fn droppable(line: &[u8]) -> bool {
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    let printable = |b: u8| (0x21..=0x7e).contains(&b) || b >= 0x80;
    let token = |b: u8| b.is_ascii_alphanumeric() || TCHAR.contains(&b);
    !name.is_empty()
        && name.iter().all(|&b| printable(b))
        && name.iter().any(|&b| !token(b))
        && value
            .iter()
            .all(|&b| b == b'\t' || b == b' ' || printable(b))
}
