//! The uwsgi answer's head on an upstream connection, once the packet (header, vars, body)
//! went out (`send`). Building the vars is `crate::uwsgi`'s job; relaying the body to the
//! client is the exchange's.

use std::time::{Duration, Instant};

use super::UpstreamConn;
use crate::buffer::Buf;
use crate::fail::{BadResponse, Fail, Step};
use crate::http::{self, HeaderSpan, HttpError, MAX_RESPONSE_HEAD, ResponseHead, Span, Status};
use crate::io::{IoError, read_some};

/// First read of an upstream response.
const HEAD_READ_SIZE: usize = 16 * 1024;
/// Reads the response head; returns it with the buffer it is at the start of (the bytes
/// after it are the beginning of the body). `headers` is filled with its header spans.
/// `upgrading`: the request asked to switch protocols, so a 101 is its answer (uWSGI's
/// `websocket_handshake`), as nginx's `uwsgi_pass` takes it.
pub(crate) async fn read_response_head(
    conn: &UpstreamConn,
    request_was_head: bool,
    upgrading: bool,
    headers: &mut Vec<HeaderSpan>,
    timeout: Duration,
) -> Result<(ResponseHead, Buf), Fail> {
    let mut resp = Buf::with_capacity(HEAD_READ_SIZE);
    let mut looked = 0;
    // One limit for the whole head, interim ones included, as nginx sets its read timer
    // once for it: a head trickled a byte at a time held its request for as long as it
    // went on (found by review).
    let deadline = Instant::now() + timeout;
    // Interim heads (`100 Continue`, `103 Early Hints`) are dropped, as from an HTTP
    // upstream: the body is sent on past them (`stream::peek_final_answer`).
    let mut interim = 0;
    let mut cgi = false;
    loop {
        read_http2_status_line_as_http11(&mut resp);
        if !cgi && interim == 0 && has_no_status_line(&resp) {
            resp.splice(..0, CGI_STATUS_LINE.iter().copied());
            looked += CGI_STATUS_LINE.len();
            cgi = true;
        }
        if http::head_may_end(&resp, looked) || interim + resp.len() >= MAX_RESPONSE_HEAD {
            let too_large = || {
                let too_large = BadResponse::HeadTooLarge(MAX_RESPONSE_HEAD);
                Err(Fail::UpstreamBadResponse(too_large))
            };
            match http::parse_response(&resp, request_was_head, headers) {
                // A read may take the buffer past the limit: a head that ends there is as
                // large as one that does not end (found by review: one of 79 KiB passed).
                Ok(Status::Complete(head)) if interim + head.head_len > MAX_RESPONSE_HEAD => {
                    return too_large();
                }
                Ok(Status::Complete(_)) if cgi => {
                    let head = read_cgi_head(&mut resp, request_was_head, upgrading, headers)?;
                    return Ok((head, resp));
                }
                Ok(Status::Complete(head)) if head.status >= 200 => return Ok((head, resp)),
                Ok(Status::Complete(head)) if head.status == 101 && upgrading => {
                    return Ok((head, resp));
                }
                // A switch nobody asked for is an answer the client cannot use.
                Ok(Status::Complete(head)) if head.status == 101 => {
                    return Err(Fail::UpstreamBadResponse(BadResponse::Interim(head.status)));
                }
                Ok(Status::Complete(head)) => {
                    interim += head.head_len;
                    resp.drain(..head.head_len);
                    looked = 0;
                    continue;
                }
                Ok(Status::Partial) if interim + resp.len() < MAX_RESPONSE_HEAD => {}
                Ok(Status::Partial) => return too_large(),
                Err(err) => return Err(Fail::UpstreamBadResponse(BadResponse::Head(err))),
            }
        }
        looked = resp.len();
        let left = deadline.saturating_duration_since(Instant::now());
        resp = match read_some(conn, resp, HEAD_READ_SIZE, left).await {
            Ok((0, _)) => return Err(Fail::UpstreamClosed),
            Ok((_, resp)) => resp,
            Err(IoError::Timeout) => return Err(Fail::UpstreamTimeout(Step::ReadingHead)),
            Err(IoError::Failed(kind)) => return Err(Fail::UpstreamIo(Step::ReadingHead, kind)),
        };
    }
}

/// The status line put in front of an answer that has none (see [`read_cgi_head`]); its
/// status code is at [`CGI_STATUS_CODE`].
const CGI_STATUS_LINE: &[u8] = b"HTTP/1.1 200 \r\n";
const CGI_STATUS_CODE: std::ops::Range<usize> = 9..12;

/// Whether the answer begun in `resp` does not start with a status line (`HTTP/`): a
/// CGI-style answer, headers only. Undecided (false) while what came is a prefix of one.
fn has_no_status_line(resp: &[u8]) -> bool {
    const START: &[u8] = b"HTTP/";
    let n = resp.len().min(START.len());
    n > 0 && resp.get(..n) != START.get(..n)
}

/// The head of a CGI-style answer, read as nginx's uwsgi module reads one
/// (`ngx_http_uwsgi_process_header`): the status its `Status` header gives (`404 Not
/// Found`; the first three bytes digits, else 502), else 302 with a `Location`, else 200.
/// The header itself goes on to the client, as from nginx. `resp` starts with
/// [`CGI_STATUS_LINE`] and holds the whole head: the status is written into that line and
/// the head parsed again, so that its framing follows the parser's one rule.
fn read_cgi_head(
    resp: &mut [u8],
    request_was_head: bool,
    upgrading: bool,
    headers: &mut Vec<HeaderSpan>,
) -> Result<ResponseHead, Fail> {
    let bad = || Fail::UpstreamBadResponse(BadResponse::Head(HttpError::BadSyntax));
    let named = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.of(resp).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value)
    };
    let (code, reason): ([u8; 3], Span) = match named("status") {
        Some(value) => {
            let text = value.of(resp);
            let code = text
                .get(..3)
                .and_then(|d| <[u8; 3]>::try_from(d).ok())
                .filter(|d| d.iter().all(u8::is_ascii_digit))
                .ok_or_else(bad)?;
            // A switch the client asked for is its answer, as with a status line (found by
            // review: a 502); any other 1xx is not.
            if code[0] < b'2' && !(upgrading && code == *b"101") {
                let interim = code.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0'));
                return Err(Fail::UpstreamBadResponse(BadResponse::Interim(interim)));
            }
            let after = text.get(3..).unwrap_or_default();
            let phrase = after.iter().position(|&b| b != b' ').unwrap_or(after.len());
            let start = value.start + 3 + phrase as u32;
            (
                code,
                Span {
                    start,
                    end: value.end,
                },
            )
        }
        None if named("location").is_some() => (*b"302", Span::default()),
        None => (*b"200", Span::default()),
    };
    resp.get_mut(CGI_STATUS_CODE)
        .ok_or_else(bad)?
        .copy_from_slice(&code);
    match http::parse_response(resp, request_was_head, headers) {
        Ok(Status::Complete(head)) => Ok(ResponseHead { reason, ..head }),
        _ => Err(bad()),
    }
}

/// uWSGI writes the request's SERVER_PROTOCOL into its status line, so the answer to an
/// HTTP/2 request (SERVER_PROTOCOL `HTTP/2.0`, as nginx sends it) starts `HTTP/2.0 200 OK`.
/// nginx's status line parser takes any `HTTP/x.y`; the rest of such an answer is an
/// HTTP/1.1 answer's (uWSGI frames it so), and it is read as one.
fn read_http2_status_line_as_http11(resp: &mut [u8]) {
    if let Some(version) = resp.get_mut(..9)
        && version == b"HTTP/2.0 "
    {
        version.copy_from_slice(b"HTTP/1.1 ");
    }
}

#[cfg(test)]
mod tests {
    use super::{
        CGI_STATUS_LINE, has_no_status_line, read_cgi_head, read_http2_status_line_as_http11,
    };
    use crate::fail::{BadResponse, Fail};
    use crate::http::{ResponseFraming, Status, Version, parse_response};

    #[test]
    fn an_answer_without_a_status_line_is_told_apart_once_its_first_bytes_say_so() {
        for undecided in [&b""[..], b"H", b"HTT", b"HTTP/", b"HTTP/1.1 200"] {
            assert!(!has_no_status_line(undecided), "{undecided:?}");
        }
        for cgi in [&b"Status: 200"[..], b"C", b"HX", b"HTTPS", b"\r\n"] {
            assert!(has_no_status_line(cgi), "{cgi:?}");
        }
    }

    /// nginx's reading: `Status` (its first three bytes), else 302 with a Location, else
    /// 200; a bad status is a 502, as is an interim one.
    #[test]
    fn a_cgi_style_answer_takes_its_status_as_nginx_does() {
        let read_upgrading = |answer: &str, head_request: bool, upgrading: bool| {
            let mut buf = CGI_STATUS_LINE.to_vec();
            buf.extend_from_slice(answer.as_bytes());
            let mut headers = Vec::new();
            let Ok(Status::Complete(_)) = parse_response(&buf, head_request, &mut headers) else {
                panic!("{answer:?}")
            };
            read_cgi_head(&mut buf, head_request, upgrading, &mut headers).map(|h| {
                (
                    h.status,
                    String::from_utf8_lossy(h.reason.of(&buf)).into_owned(),
                    h.framing,
                )
            })
        };
        let read = |answer: &str, head_request: bool| read_upgrading(answer, head_request, false);
        let until_close = ResponseFraming::UntilClose;
        assert_eq!(
            read("Status: 404 Not Found\r\n\r\n", false),
            Ok((404, "Not Found".to_owned(), until_close))
        );
        assert_eq!(
            read("status: 201\r\n\r\n", false),
            Ok((201, String::new(), until_close))
        );
        assert_eq!(
            read("Location: /x\r\n\r\n", false),
            Ok((302, String::new(), until_close))
        );
        assert_eq!(read("X-A: 1\r\n\r\n", false).map(|h| h.0), Ok(200));
        assert_eq!(
            read("Status: 304\r\nContent-Length: 9\r\n\r\n", false).map(|h| h.2),
            Ok(ResponseFraming::None)
        );
        assert_eq!(
            read("X-A: 1\r\n\r\n", true).map(|h| h.2),
            Ok(ResponseFraming::None)
        );
        assert!(matches!(
            read("Status: 1x0\r\n\r\n", false),
            Err(Fail::UpstreamBadResponse(BadResponse::Head(_)))
        ));
        assert_eq!(
            read("Status: 103\r\n\r\n", false),
            Err(Fail::UpstreamBadResponse(BadResponse::Interim(103)))
        );
        // A 101 only to a request that asked to switch.
        let switch = "Status: 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(read_upgrading(switch, false, true).map(|h| h.0), Ok(101));
        assert_eq!(
            read(switch, false),
            Err(Fail::UpstreamBadResponse(BadResponse::Interim(101)))
        );
    }

    #[test]
    fn an_answer_to_an_http2_request_is_read_as_http11() {
        let mut answer = b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        read_http2_status_line_as_http11(&mut answer);
        let Ok(Status::Complete(head)) = parse_response(&answer, false, &mut Vec::new()) else {
            panic!("{answer:?}")
        };
        assert_eq!((head.version, head.status), (Version::Http11, 200));
        // Only that exact version, at the very start.
        for other in [
            &b"HTTP/2 200 OK\r\n"[..],
            b"HTTP/3.0 200 OK\r\n",
            b"HTTP/2.0",
        ] {
            let mut kept = other.to_vec();
            read_http2_status_line_as_http11(&mut kept);
            assert_eq!(kept, other);
        }
    }
}
