//! The upstream's answer: uWSGI (the app behind it) writes a response head, and ringway
//! parses it (`http::parse_response`), writes the client's head from it
//! (`http::write_response_head`) and re-frames the body that follows (`http::Reframer`).
//!
//! Checked, for a HEAD and a GET request and for HTTP/1.0 and 1.1 clients: spans inside the
//! head, a framing that follows the headers, prefixes of an accepted head `Partial`; the
//! client's head parses (httparse) to the same status with exactly one framing of the
//! kind chosen and no hop-by-hop header of the app's; the client's body, read by that
//! framing, is the app's body, with its end (or its truncation) kept.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ringway::access_log::Template;
use ringway::http::{
    Charset, ChunkedDecoder, ClientFraming, CookieFlags, CookieRewrite, HeaderRewrite,
    HeaderRewriting, HeaderSpan, MAX_RESPONSE_HEADERS, Reframer, ResponseFraming, ResponseHead,
    ResponseMeta, RewriteRules, Status, Version, parse_response, write_response_head,
};
use ringway_fuzz::{Rng, assert_span_in, list_has, prefix_lengths, random_pieces, show, trim_ows};

const DATE: &[u8] = b"Tue, 01 Dec 2026 22:00:00 GMT";

/// Headers of the app's that never reach the client (the framing ones ringway writes
/// itself are counted apart).
const HIDDEN: [&[u8]; 5] = [
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
];

fuzz_target!(|data: &[u8]| {
    for request_was_head in [false, true] {
        let mut headers = vec![HeaderSpan::default(); 2];
        let Ok(Status::Complete(head)) = parse_response(data, request_was_head, &mut headers)
        else {
            continue;
        };
        check_head(data, &head, &headers, request_was_head);
        for client in [Version::Http10, Version::Http11] {
            relay(data, &head, &headers, client);
        }
    }
});

fn count(buf: &[u8], headers: &[HeaderSpan], name: &[u8]) -> usize {
    headers
        .iter()
        .filter(|h| h.name.of(buf).eq_ignore_ascii_case(name))
        .count()
}

fn check_head(data: &[u8], head: &ResponseHead, headers: &[HeaderSpan], request_was_head: bool) {
    let end = head.head_len;
    assert!(end <= data.len());
    assert!((100..=999).contains(&head.status), "status {}", head.status);
    assert_span_in(head.reason, end, "reason");
    assert!(headers.len() <= MAX_RESPONSE_HEADERS);
    for h in headers {
        assert_span_in(h.name, end, "name");
        assert_span_in(h.value, end, "value");
        assert!(!h.name.is_empty());
    }
    let no_body = request_was_head || head.status < 200 || matches!(head.status, 204 | 304);
    let encodings = count(data, headers, b"transfer-encoding");
    match head.framing {
        ResponseFraming::None => assert!(no_body, "no body for a {}", head.status),
        ResponseFraming::Chunked => {
            assert!(!no_body && encodings >= 1);
            for h in headers {
                if h.name.of(data).eq_ignore_ascii_case(b"transfer-encoding") {
                    let value = h.value.of(data);
                    assert!(
                        value
                            .split(|&b| b == b',')
                            .map(trim_ows)
                            .filter(|c| !c.is_empty())
                            .all(|c| c.eq_ignore_ascii_case(b"chunked"))
                    );
                }
            }
        }
        ResponseFraming::Length(n) => {
            assert!(!no_body && encodings == 0);
            for h in headers {
                if h.name.of(data).eq_ignore_ascii_case(b"content-length") {
                    for element in h.value.of(data).split(|&b| b == b',') {
                        let digits = std::str::from_utf8(trim_ows(element)).unwrap_or("x");
                        assert_eq!(
                            digits.parse::<u64>().ok(),
                            Some(n),
                            "{:?}",
                            show(h.value.of(data))
                        );
                    }
                }
            }
        }
        ResponseFraming::UntilClose => {
            assert!(!no_body && encodings == 0);
            assert_eq!(count(data, headers, b"content-length"), 0);
        }
    }
    let mut rng = Rng::from_input(data);
    for k in prefix_lengths(data, end, &mut rng) {
        let mut spans = Vec::new();
        let prefix = parse_response(&data[..k], request_was_head, &mut spans);
        assert_eq!(
            prefix,
            Ok(Status::Partial),
            "the first {k} bytes of an accepted head"
        );
    }
}

/// The request's ID the client head carries, whatever X-Request-ID the app sent.
const REQUEST_ID: &[u8] = b"0af3c2d1e4b5a69788796a5b4c3d2e1f";

/// The client's head has exactly one X-Request-ID, the request's.
fn check_request_id(out: &[u8]) {
    let ids: Vec<&[u8]> = out
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"x-request-id")
                .then(|| value[1..].trim_ascii())
        })
        .collect();
    assert_eq!(ids, [REQUEST_ID], "X-Request-ID in {}", show(out));
}

/// The app's Set-Cookie, Location and Refresh values are rewritten under these (built once: compiling their
/// regexes per input would be most of a run).
static REWRITE_RULES: LazyLock<HeaderRewrite> = LazyLock::new(|| {
    let lines = |rules: &[&str]| rules.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>();
    let cookies = CookieRewrite {
        domains: RewriteRules::domains(&lines(&[
            r"~^\.?(.*)\.internal$ $1.$host",
            "localhost $host",
        ]))
        .expect("domain rules"),
        paths: RewriteRules::prefixes(&lines(&["/ /app/", "~*^/a(p)?(i)? /$2$1/"]))
            .expect("path rules"),
        flags: CookieFlags::new(&lines(&[
            "~^s nosecure samesite=strict",
            "~ secure httponly samesite=lax",
        ]))
        .expect("flag rules"),
    };
    let locations = RewriteRules::prefixes(&lines(&["/ /app/", "http://$host/ /", "~^(.*)$ $1$1"]))
        .expect("location rules");
    HeaderRewrite { cookies, locations }
});

/// Writes the client's head, re-frames the body that came after the app's head, and reads
/// both back as a client would.
fn relay(data: &[u8], head: &ResponseHead, headers: &[HeaderSpan], client: Version) {
    let (framing, keep_alive) = ClientFraming::choose(head.framing, client, true);
    // A third of the heads go out under nginx's `charset utf-8;`, half under cookie rules
    // (the app's Set-Cookie values rewritten: the head must still read back whole).
    let charset = Charset::new("utf-8", None).ok();
    // `$host` is the client's, which may hold anything a header can.
    let host = |_: &Template, out: &mut Vec<u8>| out.extend_from_slice(b"a;b\r\n\x00c");
    let meta = ResponseMeta {
        client_version: client,
        status: head.status,
        reason: head.reason.of(data),
        framing,
        keep_alive,
        date: DATE,
        extra: &[],
        hsts: None,
        request_id: REQUEST_ID,
        // Both ways: an HTTP app server's Server and Date are replaced, a uwsgi app's kept.
        own_server_and_date: data.len() % 2 == 1,
        gzipped: false,
        vary_accept_encoding: false,
        hide: &[],
        charset: charset.as_ref().filter(|_| data.len() % 3 == 0),
        rewrite: (data.len() % 4 < 2).then_some(HeaderRewriting {
            rules: &REWRITE_RULES,
            vars: &host,
        }),
    };
    let mut out = Vec::new();
    write_response_head(&mut out, &meta, data, headers);
    check_client_head(&out, head.status, framing, keep_alive);
    check_request_id(&out);

    // The body: pieces as reads bring them, some framed in place, some appended.
    let body = &data[head.head_len..];
    let mut rng = Rng::from_input(body);
    let mut reframer = Reframer::new(head.framing, framing);
    let mut sent = Vec::new();
    let mut failed = None;
    for piece in random_pieces(body, &mut rng) {
        let framed = if rng.one_in(2) {
            let mut buf = vec![0xAA; Reframer::PREFIX];
            buf.extend_from_slice(piece);
            reframer
                .frame_in_place(&mut buf)
                .map(|start| sent.extend_from_slice(&buf[start..]))
        } else {
            reframer.frame_into(piece, &mut sent)
        };
        if let Err(err) = framed {
            failed = Some(err);
            break;
        }
        if reframer.is_done() {
            break;
        }
    }
    // What the app meant: its body by its own framing.
    let (meant, meant_complete) = match head.framing {
        ResponseFraming::None => (Vec::new(), true),
        ResponseFraming::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            (body[..n.min(body.len())].to_vec(), body.len() >= n)
        }
        ResponseFraming::UntilClose => (body.to_vec(), true),
        ResponseFraming::Chunked => {
            let mut decoded = Vec::new();
            // Read as ringway reads an app's chunked body (a bare LF after chunk data and
            // long trailers taken, as nginx takes them).
            match ChunkedDecoder::for_answer().decode(body, &mut decoded) {
                Ok(progress) => (decoded, progress.done),
                Err(err) => {
                    assert_eq!(failed, Some(err), "the app's chunked body is invalid");
                    return;
                }
            }
        }
    };
    assert_eq!(failed, None, "re-framing a valid body");
    let finished = reframer.finish(&mut sent).is_ok();
    assert_eq!(finished, meant_complete, "the body's end");

    // What the client reads.
    match framing {
        ClientFraming::None => assert!(sent.is_empty(), "a body where none goes"),
        ClientFraming::Length(n) => {
            assert_eq!(sent, meant);
            assert!(sent.len() as u64 <= n);
        }
        ClientFraming::UntilClose => assert_eq!(sent, meant),
        // `choose` frames answers; a protocol switch is the upgrade path's alone.
        ClientFraming::Switching => unreachable!("choose picked Switching"),
        ClientFraming::Chunked => {
            let mut read = Vec::new();
            let progress = ChunkedDecoder::new().decode(&sent, &mut read);
            let progress = progress.unwrap_or_else(|e| panic!("the client's chunked body: {e}"));
            assert_eq!(read, meant);
            assert_eq!(progress.done, finished, "the last chunk iff the body ended");
            assert_eq!(progress.consumed, sent.len(), "bytes after the last chunk");
        }
    }
}

/// The control bytes an app's header value may hold and ringway passes on, as nginx does
/// (httparse refuses them: the check reads a copy with each made visible).
fn is_passed_control(b: u8) -> bool {
    matches!(b, 0x01..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f)
}

fn check_client_head(out: &[u8], status: u16, framing: ClientFraming, keep_alive: bool) {
    let masked: Vec<u8> = out
        .iter()
        .map(|&b| if is_passed_control(b) { b'!' } else { b })
        .collect();
    let mut slots = vec![httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS + 16];
    let mut res = httparse::Response::new(&mut slots);
    match res.parse(&masked) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "bytes after the head"),
        other => panic!("the client's head does not parse: {other:?}\n{}", show(out)),
    }
    // Control bytes in values only: never in a name.
    for h in res.headers.iter() {
        let at = h.name.as_ptr() as usize - masked.as_ptr() as usize;
        let name = &out[at..at + h.name.len()];
        assert!(
            !name.iter().copied().any(is_passed_control),
            "a control byte in the name {}",
            show(name)
        );
    }
    assert_eq!(res.code, Some(status));
    assert_eq!(res.version, Some(1));
    let named = |name: &[u8]| {
        res.headers
            .iter()
            .filter(|h| h.name.as_bytes().eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect::<Vec<_>>()
    };
    for name in HIDDEN {
        // A 426 names the protocols it asks for (RFC 9110 §15.5.22): its Upgrade goes on.
        if status == 426 && name == b"upgrade" {
            continue;
        }
        assert!(named(name).is_empty(), "{} passed on", show(name));
    }
    assert!(
        !res.headers
            .iter()
            .any(|h| h.name.len() >= 8 && h.name.as_bytes()[..8].eq_ignore_ascii_case(b"x-accel-"))
    );
    let (lengths, encodings) = (named(b"content-length"), named(b"transfer-encoding"));
    match framing {
        ClientFraming::Length(n) => {
            assert_eq!(lengths, [n.to_string().as_bytes()]);
            assert!(encodings.is_empty());
        }
        ClientFraming::Chunked => {
            assert_eq!(encodings, [&b"chunked"[..]]);
            assert!(lengths.is_empty());
        }
        ClientFraming::UntilClose => {
            assert!(lengths.is_empty() && encodings.is_empty());
            assert!(!keep_alive, "a close-delimited body on a kept connection");
        }
        ClientFraming::None => {
            assert!(encodings.is_empty());
            assert!(lengths.len() <= 1);
        }
        ClientFraming::Switching => unreachable!("choose picked Switching"),
    }
    let connection = named(b"connection");
    if !keep_alive {
        assert!(
            connection.iter().any(|v| list_has(v, b"close")),
            "no Connection: close"
        );
    } else {
        assert!(!connection.iter().any(|v| list_has(v, b"close")));
    }
}
