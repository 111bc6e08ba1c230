//! An app's error answer replaced by the operator's page (a route's `intercept_errors`,
//! nginx's `uwsgi_intercept_errors on` with `error_page`): the app's status and headers go
//! out, minus those describing its body, followed by the page instead of that body.
//!
//! The upstream connection is closed without reading the rest of the app's body: uWSGI has
//! usually written it all already, and if not its next write fails at once, so the Python
//! worker is never left waiting on ringway.

use super::{Outcome, OwnAnswers, Request};
use crate::buffer::Buf;
use crate::client::{Client, Next};
use crate::clock::http_date_now;
use crate::error_pages::Page;
use crate::fail::Fail;
use crate::http::{ClientFraming, HeaderSpan, Method, ResponseHead, ResponseMeta};
use crate::io::{IoError, write_all};
use crate::routes::Route;
use crate::worker::Worker;

/// Sends `page` in place of the body of the app's answer whose head is at the start of
/// `buf` (its header spans in `client.response_headers`); the caller has closed the
/// upstream connection.
pub(super) async fn respond(
    client: &Client,
    req: &Request,
    head: &ResponseHead,
    buf: &[u8],
    page: &Page,
    route: &Route,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    let scope = OwnAnswers::of_request(route, head.status, (worker, client, req));
    let kept: Vec<HeaderSpan> = client
        .response_headers
        .iter()
        .copied()
        .filter(|h| !describes_body(h.name.of(buf)))
        .collect();
    // The page's type, and the route's headers marked `always` (an error answer gets no
    // other).
    let content_type = ("Content-Type".to_owned(), page.content_type().to_owned());
    let extra: Vec<(String, String)> = std::iter::once(content_type)
        .chain(scope.added.iter().cloned())
        .collect();
    let keep_alive = req.keep_alive && !worker.is_stopping();
    let meta = ResponseMeta {
        client_version: req.head.version,
        status: head.status,
        reason: head.reason.of(buf),
        framing: ClientFraming::Length(page.body().len() as u64),
        keep_alive,
        date: &http_date_now(),
        extra: &extra,
        hsts: client.hsts(worker),
        request_id: req.request_id.as_bytes(),
        own_server_and_date: req.upstream_speaks_http(worker),
        gzipped: false,
        vary_accept_encoding: false,
        hide: &route.hide_headers,
        charset: None,
    };
    let head_only = req.head.method == Method::Head;
    let body = if head_only { &[][..] } else { page.body() };
    let mut out = Buf::with_capacity(buf.len() + 128 + body.len());
    crate::http::write_response_head(&mut out, &meta, buf, &kept);
    // The page is the body the client gets (and the access log counts).
    client.head_goes_out(&out);
    out.extend_from_slice(body);
    let next = match write_all(&client.stream, out, 0, scope.send_timeout).await {
        Ok(_) if keep_alive => Next::KeepAlive,
        Ok(_) => Next::Close,
        Err(err) => {
            let fail = match err {
                IoError::Timeout => Fail::ClientGone,
                IoError::Failed(kind) => Fail::ClientIo(kind),
            };
            fail.report(client.peer, &worker.stats);
            Next::Abort
        }
    };
    Ok(Outcome::new(head.status, next))
}

/// Whether an app's header describes the body the page replaces (its type, length,
/// encoding, range, validators), so it must not go out with the page. Others (Set-Cookie,
/// Retry-After, WWW-Authenticate, Content-Security-Policy, ...) stay.
fn describes_body(name: &[u8]) -> bool {
    const ABOUT_THE_BODY: [&[u8]; 11] = [
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"content-range",
        b"content-language",
        b"content-location",
        b"content-disposition",
        b"content-md5",
        b"etag",
        b"last-modified",
        b"accept-ranges",
    ];
    ABOUT_THE_BODY.iter().any(|n| name.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_about_the_apps_body_are_dropped() {
        for name in [
            "Content-Type",
            "content-length",
            "Content-Encoding",
            "Content-Range",
            "Content-Language",
            "Content-Disposition",
            "ETag",
            "Last-Modified",
            "Accept-Ranges",
        ] {
            assert!(describes_body(name.as_bytes()), "{name}");
        }
        for name in [
            "Set-Cookie",
            "Retry-After",
            "WWW-Authenticate",
            "Cache-Control",
            "X-Request-ID",
            "Content-Security-Policy",
        ] {
            assert!(!describes_body(name.as_bytes()), "{name}");
        }
    }
}
