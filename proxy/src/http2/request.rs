//! An HTTP/2 request as the HTTP/1.1 head the request pipeline reads (pure: no I/O).
//!
//! The `h2` crate has checked the frame layer: pseudo-headers present and in front, names
//! lower-case tokens, no connection-specific fields (RFC 9113 §8.2.2), values without NUL,
//! CR or LF. What is written here goes through ringway's HTTP/1.1 parser again, so every
//! rule of a plain request (Host syntax, header limits, methods, underscores) holds as well.

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Uri};

/// How the request's body reaches the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyOut {
    /// The HEADERS frame ended the stream.
    None,
    /// The client said its length: the DATA frames' bytes as they are, no more than that.
    Length(u64),
    /// No length was said: the DATA frames go as chunks.
    Chunked,
}

/// Why a request cannot be written as HTTP/1.1; answered with a stream reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Malformed {
    /// No `:path` (a CONNECT without one is written, as nginx's HTTP/1.1 CONNECT would be).
    NoPath,
    /// A `content-length` that is not one decimal number (RFC 9113 §8.1.1).
    BadLength,
}

/// Writes the HTTP/1.1 head of `parts` into `out`: the request line with `:path`, `Host`
/// from `:authority` (else the `host` field), the fields as sent but for `host` and
/// `expect`, `cookie` fields joined into one line (RFC 9113 §8.2.3), and `Connection: close`
/// (one request per bridged connection). `has_body` is whether the HEADERS frame left the
/// stream open.
pub(super) fn write_head(
    parts: &Parts,
    has_body: bool,
    out: &mut Vec<u8>,
) -> Result<BodyOut, Malformed> {
    let path = sent_path(&parts.uri);
    let target = match &path {
        Some(path) => path.as_str(),
        None if parts.method == Method::CONNECT => parts.uri.authority().map_or("", |a| a.as_str()),
        None => return Err(Malformed::NoPath),
    };
    if target.is_empty() {
        return Err(Malformed::NoPath);
    }
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let headers = &parts.headers;
    match parts.uri.authority() {
        Some(authority) => {
            let authority = authority.as_str().as_bytes();
            line(out, b"host", authority);
            // A `host` field that says otherwise goes along: the pipeline refuses a second
            // Host with a 400, as nginx refuses an `:authority` and a `Host` that differ
            // (found by review: the field was dropped and the request served).
            for host in headers.get_all(http::header::HOST) {
                if host.as_bytes() != authority {
                    line(out, b"host", host.as_bytes());
                }
            }
        }
        None => {
            for host in headers.get_all(http::header::HOST) {
                line(out, b"host", host.as_bytes());
            }
        }
    }
    let mut cookies = headers.get_all(http::header::COOKIE).iter();
    if let Some(first) = cookies.next() {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(first.as_bytes());
        for more in cookies {
            out.extend_from_slice(b"; ");
            out.extend_from_slice(more.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        // Written above; `expect: 100-continue` would make the pipeline send an interim
        // answer the bridge has no use for (the body comes anyway); `te` may only say
        // `trailers`, which the pipeline drops too.
        if matches!(
            name.as_str(),
            "host" | "cookie" | "expect" | "te" | "content-length"
        ) {
            continue;
        }
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let body = body_out(headers, has_body)?;
    match body {
        BodyOut::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyOut::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyOut::None => {}
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    Ok(body)
}

/// The request target of `uri` if the client sent a `:path`. `h2` gives a request without
/// one (and without `:authority`: with one, `h2` refuses it) an empty path, which
/// `path_and_query()` shows as `/` (found by review: with a `host` field, such a request
/// was served as `GET /`, where nginx answers 400); only `into_parts` tells the two apart.
fn sent_path(uri: &Uri) -> Option<PathAndQuery> {
    uri.clone().into_parts().path_and_query
}

/// The body's framing: a `content-length` the client sent is kept (one value, or the same
/// value repeated), read by the one rule an HTTP/1.1 head's is; without one a body goes
/// chunked.
fn body_out(headers: &HeaderMap, has_body: bool) -> Result<BodyOut, Malformed> {
    let mut length: Option<u64> = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let n = crate::http::parse_length(value.as_bytes()).ok_or(Malformed::BadLength)?;
        if length.is_some_and(|l| l != n) {
            return Err(Malformed::BadLength);
        }
        length = Some(n);
    }
    Ok(match (length, has_body) {
        // A length on a request that ended with its HEADERS: the pipeline must not wait
        // for bytes that cannot come (h2 refuses a non-zero one with no DATA).
        (Some(n), true) => BodyOut::Length(n),
        (Some(0), false) => BodyOut::Length(0),
        (Some(_), false) => return Err(Malformed::BadLength),
        (None, true) => BodyOut::Chunked,
        (None, false) => BodyOut::None,
    })
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(request: http::Request<()>, has_body: bool) -> (Result<BodyOut, Malformed>, String) {
        let (parts, ()) = request.into_parts();
        let mut out = Vec::new();
        let body = write_head(&parts, has_body, &mut out);
        (body, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_get_becomes_a_request_line_host_and_fields() {
        let request = http::Request::get("https://app.test/a/b?q=1")
            .header("accept", "text/html")
            .header("x-many", "1")
            .header("x-many", "2")
            .body(())
            .unwrap();
        let (body, text) = head(request, false);
        assert_eq!(body, Ok(BodyOut::None));
        assert_eq!(
            text,
            "GET /a/b?q=1 HTTP/1.1\r\nhost: app.test\r\naccept: text/html\r\n\
             x-many: 1\r\nx-many: 2\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn a_host_field_that_differs_from_the_authority_makes_a_second_host() {
        let request = http::Request::get("https://app.test/")
            .header("host", "evil.test")
            .body(())
            .unwrap();
        let (_, text) = head(request, false);
        assert!(
            text.contains("host: app.test\r\nhost: evil.test\r\n"),
            "{text}"
        );
        // Which the pipeline's parser refuses (400), as nginx refuses the request.
        let mut buf = text.into_bytes();
        let parsed =
            crate::http::parse_request(&mut buf, &crate::http::Limits::default(), &mut Vec::new());
        assert!(parsed.is_err(), "{parsed:?}");
        // The same value: one Host.
        let request = http::Request::get("https://app.test/")
            .header("host", "app.test")
            .body(())
            .unwrap();
        assert_eq!(head(request, false).1.matches("host: ").count(), 1);
        // Without :authority, the host field is the Host.
        let request = http::Request::get("/")
            .header("host", "b.test")
            .body(())
            .unwrap();
        assert!(head(request, false).1.contains("host: b.test\r\n"));
    }

    #[test]
    fn cookies_are_joined_into_one_line() {
        let request = http::Request::get("https://a.test/")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (_, text) = head(request, false);
        assert!(text.contains("cookie: a=1; b=2\r\n"), "{text}");
        assert_eq!(text.matches("cookie").count(), 1);
    }

    #[test]
    fn a_body_keeps_its_length_or_goes_chunked() {
        let with_length = http::Request::post("https://a.test/up")
            .header("content-length", "5")
            .body(())
            .unwrap();
        let (body, text) = head(with_length, true);
        assert_eq!(body, Ok(BodyOut::Length(5)));
        assert!(text.contains("content-length: 5\r\n"));
        assert!(!text.contains("transfer-encoding"));

        let without = http::Request::post("https://a.test/up").body(()).unwrap();
        let (body, text) = head(without, true);
        assert_eq!(body, Ok(BodyOut::Chunked));
        assert!(text.contains("transfer-encoding: chunked\r\n"));

        let bodiless = http::Request::post("https://a.test/up").body(()).unwrap();
        assert_eq!(head(bodiless, false).0, Ok(BodyOut::None));
    }

    #[test]
    fn a_bad_or_conflicting_length_is_malformed() {
        for values in [
            &["x"][..],
            &["1", "2"],
            &["-1"],
            &["1 "],
            &["99999999999999999999"],
            // Past i64::MAX, which an HTTP/1.1 head refuses too (one rule for both).
            &["9223372036854775808"],
        ] {
            let mut request = http::Request::post("https://a.test/up");
            for v in values {
                request = request.header("content-length", *v);
            }
            let (body, _) = head(request.body(()).unwrap(), true);
            assert_eq!(body, Err(Malformed::BadLength), "{values:?}");
        }
        let same_twice = http::Request::post("https://a.test/up")
            .header("content-length", "3")
            .header("content-length", "3")
            .body(())
            .unwrap();
        assert_eq!(head(same_twice, true).0, Ok(BodyOut::Length(3)));
        // Leading zeros, as an HTTP/1.1 head's are taken, however many.
        let zeros = http::Request::post("https://a.test/up")
            .header("content-length", "000000000000000000003")
            .body(())
            .unwrap();
        assert_eq!(head(zeros, true).0, Ok(BodyOut::Length(3)));
        // A length promised on a stream its HEADERS ended.
        let promised = http::Request::post("https://a.test/up")
            .header("content-length", "3")
            .body(())
            .unwrap();
        assert_eq!(head(promised, false).0, Err(Malformed::BadLength));
    }

    #[test]
    fn expect_and_te_are_not_passed_on() {
        let request = http::Request::post("https://a.test/up")
            .header("expect", "100-continue")
            .header("te", "trailers")
            .header("content-length", "1")
            .body(())
            .unwrap();
        let (_, text) = head(request, true);
        assert!(!text.contains("expect"), "{text}");
        assert!(!text.contains("te:"), "{text}");
    }

    #[test]
    fn a_request_without_path_is_malformed() {
        // As h2 builds it from :method and :scheme alone (it drops a :scheme without an
        // :authority, and refuses an :authority without a :path, as the URI cannot be built).
        let uri = http::Uri::from_parts(http::uri::Parts::default()).unwrap();
        assert_eq!(uri.path_and_query().map(|p| p.as_str()), Some("/"));
        let request = http::Request::get(uri).body(()).unwrap();
        assert_eq!(head(request, false).0, Err(Malformed::NoPath));
        let mut with_authority = http::uri::Parts::default();
        with_authority.scheme = Some(http::uri::Scheme::HTTPS);
        with_authority.authority = Some("a.test".parse().unwrap());
        assert!(http::Uri::from_parts(with_authority).is_err());
        // `:path: /` is a path, with or without an authority.
        for uri in ["https://a.test/", "/"] {
            let request = http::Request::get(uri).body(()).unwrap();
            assert_eq!(head(request, false).0, Ok(BodyOut::None), "{uri}");
        }
    }

    #[test]
    fn connect_names_its_authority() {
        let request = http::Request::connect("a.test:443").body(()).unwrap();
        let (_, text) = head(request, false);
        assert!(
            text.starts_with("CONNECT a.test:443 HTTP/1.1\r\n"),
            "{text}"
        );
    }
}
