use super::*;
use crate::http::{Status, parse_response};

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

fn meta(status: u16, reason: &[u8], framing: ClientFraming) -> ResponseMeta<'_> {
    ResponseMeta {
        client_version: Version::Http11,
        status,
        reason,
        framing,
        keep_alive: true,
        date: DATE,
        extra: &[],
        hsts: None,
        request_id: b"",
        own_server_and_date: false,
        gzipped: false,
        vary_accept_encoding: false,
        hide: &[],
        charset: None,
        rewrite: None,
    }
}

/// Parses an upstream head and rewrites it for the client.
fn rewrite(upstream: &[u8], version: Version, framing: ClientFraming, keep_alive: bool) -> String {
    let mut headers = Vec::new();
    let Ok(Status::Complete(h)) = parse_response(upstream, false, &mut headers) else {
        panic!("bad upstream head")
    };
    let mut out = b"existing|".to_vec();
    let meta = ResponseMeta {
        client_version: version,
        keep_alive,
        ..meta(h.status, h.reason.of(upstream), framing)
    };
    write_response_head(&mut out, &meta, upstream, &headers);
    let s = String::from_utf8(out).unwrap();
    s.strip_prefix("existing|").unwrap().to_string()
}

#[test]
fn hop_by_hop_and_length_are_replaced() {
    let upstream = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\
Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nProxy-Connection: x\r\nTE: trailers\r\n\
Trailer: X\r\nUpgrade: h2c\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Length(5), true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
Content-Length: 5\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn the_upstream_length_is_replaced_by_the_one_sent() {
    let upstream = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nX-A: 1\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Length(5), true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\nServer: ringway\r\n\
Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn chunked_and_close() {
    let upstream = b"HTTP/1.1 201 Created\r\nServer: gunicorn\r\nX-A: 1\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Chunked, false);
    assert_eq!(
        got,
        "HTTP/1.1 201 Created\r\nServer: gunicorn\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\
Connection: close\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn headers_named_by_connection_and_proxy_instructions_are_dropped() {
    let upstream = b"HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\n\
X-Other: 2\r\nconnection: x-more\r\nX-More: 3\r\nX-Accel-Buffering: no\r\n\
X-Accel-Redirect: /p/f\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Length(0), true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nX-Other: 2\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Content-Length: 0\r\nServer: ringway\r\n\r\n",
        "the upstream's own Date is kept"
    );
}

#[test]
fn http10_client_kept_alive_is_told_so() {
    let upstream = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    let got = rewrite(upstream, Version::Http10, ClientFraming::Length(2), true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
    let got = rewrite(upstream, Version::Http10, ClientFraming::UntilClose, false);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nConnection: close\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn no_body_keeps_the_upstream_length() {
    let upstream = b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\nETag: \"x\"\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::None, true);
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 1234\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
    // A list of equal lengths, read as one, goes out as the one number.
    let upstream = b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::None, true);
    assert!(got.contains("\r\nContent-Length: 5\r\n"), "{got}");
    let upstream = b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::None, true);
    assert_eq!(
        got,
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn no_content_never_carries_a_length() {
    let upstream = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\nX: y\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::None, true);
    assert_eq!(
        got,
        "HTTP/1.1 204 No Content\r\nX: y\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn missing_or_unprintable_reason_gets_the_standard_one() {
    let upstream = b"HTTP/1.1 404\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Length(0), true);
    assert!(got.starts_with("HTTP/1.1 404 Not Found\r\n"), "{got}");
    let mut out = Vec::new();
    let injected = meta(502, b"a\r\nX: injected", ClientFraming::Length(0));
    write_response_head(&mut out, &injected, b"", &[]);
    assert!(out.starts_with(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"));
    out.clear();
    write_response_head(
        &mut out,
        &meta(299, b"", ClientFraming::Length(0)),
        b"",
        &[],
    );
    assert!(out.starts_with(b"HTTP/1.1 299 \r\n"));
}

fn own(status: u16, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let r = OwnResponse {
        status,
        keep_alive,
        head_only,
        date: DATE,
        headers: &[],
        request_id: b"",
    };
    write_own_response(&mut out, &r);
    out
}

#[test]
fn own_responses_carry_extra_headers() {
    let mut out = Vec::new();
    let r = OwnResponse {
        status: 301,
        keep_alive: true,
        head_only: false,
        date: DATE,
        headers: &[(b"Location", b"/new/x?y"), (b"X-Frame-Options", b"DENY")],
        request_id: b"0af3",
    };
    write_own_response(&mut out, &r);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 301 Moved Permanently\r\nServer: ringway\r\nDate: "));
    assert!(
        text.contains("\r\nLocation: /new/x?y\r\nX-Frame-Options: DENY\r\nX-Request-ID: 0af3\r\n"),
        "{text}"
    );
    assert!(text.ends_with("Connection: keep-alive\r\n\r\n301 Moved Permanently\n"));
}

#[test]
fn own_responses_may_carry_a_page() {
    let r = OwnResponse {
        status: 502,
        keep_alive: false,
        head_only: false,
        date: DATE,
        headers: &[],
        request_id: b"",
    };
    let page = b"<h1>Back soon</h1>";
    let mut out = Vec::new();
    write_own_response_with_body(&mut out, &r, "text/html; charset=utf-8", page);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\nServer: ringway\r\nDate: "));
    assert!(
        text.ends_with(
            "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 18\r\n\
             Connection: close\r\n\r\n<h1>Back soon</h1>"
        ),
        "{text}"
    );
    // HEAD: the same length, no body.
    let mut head = Vec::new();
    let r = OwnResponse {
        head_only: true,
        ..r
    };
    write_own_response_with_body(&mut head, &r, "text/html; charset=utf-8", page);
    assert!(head.ends_with(b"Content-Length: 18\r\nConnection: close\r\n\r\n"));
}

#[test]
fn route_headers_follow_the_upstreams() {
    let extra = [("X-Frame-Options".to_owned(), "DENY".to_owned())];
    let mut out = Vec::new();
    let meta = ResponseMeta {
        extra: &extra,
        ..meta(200, b"OK", ClientFraming::Length(0))
    };
    write_response_head(&mut out, &meta, b"", &[]);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nX-Frame-Options: DENY\r\nContent-Length: 0\r\n"));
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
            "HTTP/1.1 {status} {reason}\r\nServer: ringway\r\n\
Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let out = own(status, false, false);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            format!("{head}{body}")
        );
        let out = own(status, false, true);
        assert_eq!(String::from_utf8(out).unwrap(), head);
        // The response parses back with the right length.
        let out = own(status, true, false);
        let mut headers = Vec::new();
        let Ok(Status::Complete(h)) = parse_response(&out, false, &mut headers) else {
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
    let out = own(599, false, false);
    assert!(out.starts_with(b"HTTP/1.1 599 Error\r\n"));
    assert!(out.ends_with(b"\r\n\r\n599 Error\n"));
}

#[test]
fn the_request_id_replaces_the_upstreams() {
    let upstream = b"HTTP/1.1 200 OK\r\nX-Request-ID: from-the-app\r\nx-request-id: again\r\n\
X-A: 1\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Status::Complete(h)) = parse_response(upstream, false, &mut headers) else {
        panic!("bad upstream head")
    };
    let mut out = Vec::new();
    let with_id = ResponseMeta {
        request_id: b"5d41402abc4b2a76b9719d911017c592",
        own_server_and_date: false,
        gzipped: false,
        vary_accept_encoding: false,
        hide: &[],
        charset: None,
        rewrite: None,
        ..meta(h.status, h.reason.of(upstream), ClientFraming::Length(0))
    };
    write_response_head(&mut out, &with_id, upstream, &headers);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-Request-ID: 5d41402abc4b2a76b9719d911017c592\r\n\
Content-Length: 0\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
    // Without an ID, the app's header passes as any other.
    let mut out = Vec::new();
    let without = meta(h.status, h.reason.of(upstream), ClientFraming::Length(0));
    write_response_head(&mut out, &without, upstream, &headers);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("X-Request-ID: from-the-app\r\nx-request-id: again\r\n"),
        "{text}"
    );
}

#[test]
fn an_http_app_servers_server_and_date_are_replaced_a_uwsgi_apps_are_kept() {
    let upstream =
        b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n\
                     X-App: a\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Status::Complete(_)) = parse_response(upstream, false, &mut headers) else {
        panic!("bad upstream head")
    };
    let write = |own: bool| {
        let meta = ResponseMeta {
            own_server_and_date: own,
            gzipped: false,
            vary_accept_encoding: false,
            hide: &[],
            charset: None,
            rewrite: None,
            ..meta(200, b"OK", ClientFraming::Length(0))
        };
        let mut out = Vec::new();
        write_response_head(&mut out, &meta, upstream, &headers);
        String::from_utf8(out).unwrap()
    };
    let http = write(true);
    assert!(
        !http.contains("gunicorn") && !http.contains("2001"),
        "{http}"
    );
    assert!(
        http.contains("Server: ringway\r\n") && http.contains("X-App: a\r\n"),
        "{http}"
    );
    assert!(http.contains(&format!("Date: {}\r\n", std::str::from_utf8(DATE).unwrap())));
    let uwsgi = write(false);
    assert!(
        uwsgi.contains("Server: gunicorn\r\n") && uwsgi.contains("2001"),
        "{uwsgi}"
    );
    assert!(!uwsgi.contains("Server: ringway"), "{uwsgi}");
}

#[test]
fn headers_named_by_connection_among_many_lines_are_dropped() {
    // Up to the 512-line limit: 400 ordinary lines, 100 Connection lines naming 200 of them.
    let mut upstream = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..400 {
        upstream.extend_from_slice(format!("X-H-{i}: {i}\r\n").as_bytes());
    }
    for i in 0..100 {
        let (a, b) = (2 * i, 2 * i + 1);
        upstream.extend_from_slice(format!("Connection: x-h-{a}, X-H-{b}\r\n").as_bytes());
    }
    upstream.extend_from_slice(b"\r\n");
    let got = rewrite(&upstream, Version::Http11, ClientFraming::Length(0), true);
    let mut want = "HTTP/1.1 200 OK\r\n".to_string();
    for i in 200..400 {
        want.push_str(&format!("X-H-{i}: {i}\r\n"));
    }
    want.push_str(
        "Content-Length: 0\r\nServer: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    );
    assert_eq!(got, want);
}

#[test]
fn a_switch_keeps_upgrade_says_connection_upgrade_and_hides_proxy_headers() {
    let upstream =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Accel-Buffering: no\r\nKeep-Alive: 5\r\n\
Content-Length: 0\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Switching, false);
    assert_eq!(
        got,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nConnection: upgrade\r\nServer: ringway\r\n\
Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn a_426_keeps_the_upgrade_it_asks_for() {
    // RFC 9110 §15.5.22: a 426 names the protocols; nginx passes Upgrade on any answer.
    let upstream = b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nContent-Length: 0\r\n\r\n";
    let got = rewrite(upstream, Version::Http11, ClientFraming::Length(0), true);
    assert_eq!(
        got,
        "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\
Server: ringway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
}

#[test]
fn a_compressed_body_gets_its_coding_a_weak_etag_and_no_ranges() {
    let upstream =
        b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nAccept-Ranges: bytes\r\nContent-Length: 99\r\n\r\n";
    let head = |etag: &str| {
        let upstream = String::from_utf8_lossy(upstream).replace("\"v1\"", etag);
        let mut headers = Vec::new();
        let Ok(Status::Complete(h)) = parse_response(upstream.as_bytes(), false, &mut headers)
        else {
            panic!("bad upstream head")
        };
        let mut out = Vec::new();
        let meta = ResponseMeta {
            gzipped: true,
            vary_accept_encoding: true,
            hide: &[],
            charset: None,
            rewrite: None,
            ..meta(
                h.status,
                h.reason.of(upstream.as_bytes()),
                ClientFraming::Chunked,
            )
        };
        write_response_head(&mut out, &meta, upstream.as_bytes(), &headers);
        String::from_utf8(out).unwrap()
    };
    let out = head("\"v1\"");
    assert!(out.contains("ETag: W/\"v1\"\r\n"), "{out}");
    assert!(!out.contains("Accept-Ranges"), "{out}");
    assert!(!out.contains("Content-Length"), "{out}");
    assert!(
        out.contains("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"),
        "{out}"
    );
    assert!(head("W/\"v1\"").contains("ETag: W/\"v1\"\r\n"));
    // Not an entity-tag: dropped, as nginx drops it.
    assert!(!head("v1").contains("ETag"));
}

#[test]
fn hidden_headers_are_left_out_in_any_case() {
    let upstream = b"HTTP/1.1 200 OK\r\nX-Powered-By: PHP\r\nx-powered-by: again\r\nServer: app\r\nX-Kept: k\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Status::Complete(_)) = parse_response(upstream, false, &mut headers) else {
        panic!("bad upstream head")
    };
    let hide = ["x-powered-by".to_owned(), "server".to_owned()];
    let meta = ResponseMeta {
        hide: &hide,
        charset: None,
        rewrite: None,
        ..meta(200, b"OK", ClientFraming::Length(0))
    };
    let mut out = Vec::new();
    write_response_head(&mut out, &meta, upstream, &headers);
    let out = String::from_utf8(out).unwrap_or_default();
    assert!(!out.to_ascii_lowercase().contains("powered"), "{out}");
    assert!(out.contains("X-Kept: k\r\n"), "{out}");
    assert!(
        out.contains("Server: ringway\r\n") && !out.contains("app"),
        "{out}"
    );
}

#[test]
fn a_charset_labels_a_listed_type_in_its_place() {
    let upstream = b"HTTP/1.1 200 OK\r\nX-A: 1\r\ncontent-type: text/html\r\nX-B: 2\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Status::Complete(h)) = parse_response(upstream, false, &mut headers) else {
        panic!("bad upstream head")
    };
    let charset = Charset::new("utf-8", None).unwrap();
    let meta = ResponseMeta {
        charset: Some(&charset),
        rewrite: None,
        ..meta(h.status, h.reason.of(upstream), ClientFraming::Length(0))
    };
    let mut out = Vec::new();
    write_response_head(&mut out, &meta, upstream, &headers);
    let got = String::from_utf8(out).unwrap();
    assert!(
        got.contains("\r\nX-A: 1\r\ncontent-type: text/html; charset=utf-8\r\nX-B: 2\r\n"),
        "{got}"
    );
}
