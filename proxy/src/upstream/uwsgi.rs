//! The uwsgi answer's head on an upstream connection, once the packet (header, vars, body)
//! went out (`send`). Building the vars is `crate::uwsgi`'s job; relaying the body to the
//! client is the exchange's.

use std::time::Duration;

use super::UpstreamConn;
use crate::buffer::Buf;
use crate::fail::{BadResponse, Fail, Step};
use crate::http::{self, HeaderSpan, MAX_RESPONSE_HEAD, ResponseHead, Status};
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
    // Interim heads (`100 Continue`, `103 Early Hints`) are dropped, as from an HTTP
    // upstream: the body is sent on past them (`stream::peek_final_answer`).
    let mut interim = 0;
    loop {
        read_http2_status_line_as_http11(&mut resp);
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
        resp = match read_some(conn, resp, HEAD_READ_SIZE, timeout).await {
            Ok((0, _)) => return Err(Fail::UpstreamClosed),
            Ok((_, resp)) => resp,
            Err(IoError::Timeout) => return Err(Fail::UpstreamTimeout(Step::ReadingHead)),
            Err(IoError::Failed(kind)) => return Err(Fail::UpstreamIo(Step::ReadingHead, kind)),
        };
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
    use super::read_http2_status_line_as_http11;
    use crate::http::{Status, Version, parse_response};

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
