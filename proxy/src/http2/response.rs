//! The pipeline's HTTP/1.1 answer head as an HTTP/2 response head (pure: no I/O).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::http::{HeaderSpan, ResponseHead};

/// ringway's X-Request-ID, a new value on every answer.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The response for `head` (parsed from `buf`, its fields in `fields`), without the fields
/// HTTP/2 forbids. `None` for a status HTTP/2 cannot carry (a 101: the pipeline never
/// switches a bridged request, which has no `Upgrade`).
///
/// The values share one copy of the head rather than one allocation each.
pub(super) fn response_of(
    buf: &[u8],
    head: &ResponseHead,
    fields: &[HeaderSpan],
) -> Option<Response<()>> {
    let status = StatusCode::from_u16(head.status)
        .ok()
        .filter(|s| *s != StatusCode::SWITCHING_PROTOCOLS)?;
    let block = Bytes::copy_from_slice(buf.get(..head.head_len).unwrap_or_default());
    let mut headers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = field.name.of(&block);
        // Fields that only mean something to an HTTP/1.1 connection: HTTP/2 forbids them
        // (RFC 9113 §8.2.2), and the body's end is the stream's end.
        if crate::http::is_hop_by_hop(name) {
            continue;
        }
        let value = block.slice(field.value.start as usize..field.value.end as usize);
        let request_id = name.eq_ignore_ascii_case(REQUEST_ID.as_str().as_bytes());
        let name = if request_id {
            Ok(REQUEST_ID)
        } else {
            HeaderName::from_bytes(name)
        };
        // A field that would not convert is left out rather than sent broken: the `http`
        // crate takes no control byte in a value, which an app's answer may hold and an
        // HTTP/1.1 client gets as the app sent it (nginx's HTTP/2 passes it too).
        if let (Ok(name), Ok(mut value)) = (name, HeaderValue::from_maybe_shared(value)) {
            // Never indexed: an HPACK table entry per answer would only push out the
            // fields that repeat.
            value.set_sensitive(request_id);
            headers.append(name, value);
        }
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Status, parse_response};

    fn convert(text: &[u8]) -> Option<Response<()>> {
        let mut fields = Vec::new();
        let Ok(Status::Complete(head)) = parse_response(text, false, &mut fields) else {
            panic!("a head")
        };
        response_of(text, &head, &fields)
    }

    #[test]
    fn connection_fields_are_dropped_and_the_rest_kept() {
        let response = convert(
            b"HTTP/1.1 404 Not Found\r\nServer: ringway\r\nContent-Type: text/plain\r\n\
              Content-Length: 3\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n\
              Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        )
        .unwrap();
        assert_eq!(response.status(), 404);
        let h = response.headers();
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["content-length"], "3");
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        assert!(h.get("connection").is_none());
        assert!(h.get("keep-alive").is_none());
    }

    #[test]
    fn a_chunked_answer_loses_its_transfer_encoding() {
        let response =
            convert(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n").unwrap();
        assert!(response.headers().get("transfer-encoding").is_none());
        assert_eq!(response.headers()["x-a"], "1");
    }

    #[test]
    fn the_request_id_stays_out_of_the_hpack_table_and_the_rest_may_enter_it() {
        let response = convert(
            b"HTTP/1.1 200 OK\r\nX-Request-ID: 5f0c\r\nServer: ringway\r\nX-App: 1\r\n\r\n",
        )
        .unwrap();
        let h = response.headers();
        assert_eq!(h["x-request-id"], "5f0c");
        assert!(h["x-request-id"].is_sensitive());
        assert!(!h["server"].is_sensitive());
        assert!(!h["x-app"].is_sensitive());
    }

    #[test]
    fn switching_protocols_has_no_http2_form() {
        assert!(convert(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n").is_none());
    }
}
