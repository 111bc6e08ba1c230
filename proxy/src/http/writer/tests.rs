use super::*;
use crate::http::{Status, parse_response};

/// Parses an upstream head and rewrites it for the client.
fn rewrite(upstream: &[u8], version: Version, framing: ClientFraming, keep_alive: bool) -> String {
    let mut headers = Vec::new();
    let Ok(Status::Complete(h)) = parse_response(upstream, false, 100, &mut headers) else {
        panic!("bad upstream head")
    };
    let mut out = b"existing|".to_vec();
    write_response_head(
        &mut out,
        version,
        h.status,
        h.reason.of(upstream),
        upstream,
        &headers,
        framing,
        keep_alive,
    );
    let s = String::from_utf8(out).unwrap();
    s.strip_prefix("existing|").unwrap().to_string()
}

#[test]
fn hop_by_hop_and_length_are_replaced() {
    let upstream = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\
Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nProxy-Connection: x\r\nTE: trailers\r\n\
Trailer: X\r\nUpgrade: h2c\r\nContent-Length: 99\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Length(5), true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
Content-Length: 5\r\nServer: ringway\r\n\r\n"
    );
}

#[test]
fn chunked_and_close() {
    let upstream = b"HTTP/1.1 201 Created\r\nServer: gunicorn\r\nX-A: 1\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Chunked, false);
    assert_eq!(
        got,
        "HTTP/1.1 201 Created\r\nServer: gunicorn\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\
Connection: close\r\n\r\n"
    );
}

#[test]
fn http10_client_kept_alive_is_told_so() {
    let upstream = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    let got = rewrite(upstream, Version::Http10, ClientFraming::Length(2), true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nServer: ringway\r\n\r\n"
    );
    let got = rewrite(upstream, Version::Http10, ClientFraming::UntilClose, false);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nConnection: close\r\nServer: ringway\r\n\r\n"
    );
}

#[test]
fn no_body_keeps_the_upstream_length() {
    let upstream = b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\nETag: \"x\"\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::None, true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 1234\r\nServer: ringway\r\n\r\n"
    );
    let upstream = b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::None, true);
    assert_eq!(
        got,
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nServer: ringway\r\n\r\n"
    );
}

#[test]
fn no_content_never_carries_a_length() {
    let upstream = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\nX: y\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::None, true);
    assert_eq!(
        got,
        "HTTP/1.1 204 No Content\r\nX: y\r\nServer: ringway\r\n\r\n"
    );
}

#[test]
fn missing_or_unprintable_reason_gets_the_standard_one() {
    let upstream = b"HTTP/1.1 404\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Length(0), true);
    assert!(got.starts_with("HTTP/1.1 404 Not Found\r\n"), "{got}");
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        Version::Http11,
        502,
        b"a\r\nX: injected",
        b"",
        &[],
        ClientFraming::Length(0),
        true,
    );
    assert!(out.starts_with(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"));
    out.clear();
    write_response_head(
        &mut out,
        Version::Http11,
        299,
        b"",
        b"",
        &[],
        ClientFraming::Length(0),
        true,
    );
    assert!(out.starts_with(b"HTTP/1.1 299 \r\n"));
}

#[test]
fn error_responses() {
    let table = [
        (400, "Bad Request"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (408, "Request Timeout"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
        (505, "HTTP Version Not Supported"),
    ];
    for (status, reason) in table {
        let body = format!("{status} {reason}\n");
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nServer: ringway\r\nContent-Type: text/plain\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut out = Vec::new();
        write_error_response(&mut out, status, false, false);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            format!("{head}{body}")
        );
        out.clear();
        write_error_response(&mut out, status, false, true);
        assert_eq!(String::from_utf8(out).unwrap(), head);
        // The response parses back with the right length.
        let mut out = Vec::new();
        write_error_response(&mut out, status, true, false);
        let mut headers = Vec::new();
        let Ok(Status::Complete(h)) = parse_response(&out, false, 100, &mut headers) else {
            panic!()
        };
        assert_eq!(h.status, status);
        assert_eq!(
            h.framing,
            crate::http::ResponseFraming::Length(body.len() as u64)
        );
        assert_eq!(&out[h.head_len..], body.as_bytes());
        assert!(out.windows(22).any(|w| w == b"Connection: keep-alive"));
    }
}

#[test]
fn error_response_for_an_unlisted_status() {
    let mut out = Vec::new();
    write_error_response(&mut out, 599, false, false);
    assert!(out.starts_with(b"HTTP/1.1 599 Error\r\n"));
    assert!(out.ends_with(b"\r\n\r\n599 Error\n"));
}

#[test]
fn chunk_headers_are_lowercase_hex() {
    let mut out = Vec::new();
    for (len, want) in [
        (0, "0\r\n"),
        (10, "a\r\n"),
        (255, "ff\r\n"),
        (4096, "1000\r\n"),
        (0xabcdef, "abcdef\r\n"),
    ] {
        out.clear();
        write_chunk_header(&mut out, len);
        assert_eq!(out, want.as_bytes());
    }
    assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
}

#[test]
fn chunk_writer_and_decoder_agree() {
    let mut wire = Vec::new();
    for piece in [&b"hello "[..], b"", b"world", &[b'x'; 300]] {
        if piece.is_empty() {
            continue;
        }
        write_chunk_header(&mut wire, piece.len());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(LAST_CHUNK);
    let mut out = Vec::new();
    let p = crate::http::ChunkedDecoder::new()
        .decode(&wire, &mut out)
        .unwrap();
    assert!(p.done);
    assert_eq!(p.consumed, wire.len());
    assert_eq!(out.len(), 6 + 5 + 300);
}
