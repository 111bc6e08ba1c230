//! An app's error answer replaced by the operator's page (a route's `intercept_errors`,
//! nginx's `uwsgi_intercept_errors on` with `error_page`): the app's status goes out with
//! the page, and of its headers only a 401's `WWW-Authenticate`, as from nginx. The rest
//! were the app's error answer's: its cookies, caching and content security policy would
//! otherwise apply to the operator's page (found by review).
//!
//! The upstream connection is closed without reading the rest of the app's body: uWSGI has
//! usually written it all already, and if not its next write fails at once, so the Python
//! worker is never left waiting on ringway.

use super::{Outcome, OwnAnswers, Request};
use crate::buffer::Buf;
use crate::client::{Client, Next};
use crate::clock::http_date_now;
use crate::fail::Fail;
use crate::http::{ClientFraming, HeaderSpan, Method, ResponseHead, ResponseMeta};
use crate::io::{IoError, write_all};
use crate::routes::Route;
use crate::worker::Worker;

/// Sends `page` (of `content_type`) in place of the body of the app's answer whose head is at the start of
/// `buf` (its header spans in `client.response_headers`); the caller has closed the
/// upstream connection.
pub(super) async fn respond(
    client: &Client,
    req: &Request,
    head: &ResponseHead,
    buf: &[u8],
    (content_type, page): (&str, &[u8]),
    route: &Route,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    let scope = OwnAnswers::of_request(route, head.status, (worker, client, req));
    let kept: Vec<HeaderSpan> = client
        .response_headers
        .iter()
        .copied()
        .filter(|h| goes_with_the_page(head.status, h.name.of(buf)))
        .collect();
    // The page's type, and the route's headers marked `always` (an error answer gets no
    // other).
    let content_type = ("Content-Type".to_owned(), content_type.to_owned());
    let extra: Vec<(String, String)> = std::iter::once(content_type)
        .chain(scope.added.iter().cloned())
        .collect();
    let keep_alive = req.keeps_alive(worker);
    let meta = ResponseMeta {
        client_version: req.head.version,
        status: head.status,
        reason: head.reason.of(buf),
        framing: ClientFraming::Length(page.len() as u64),
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
        rewrite: None,
    };
    let head_only = req.head.method == Method::Head;
    let body = if head_only { &[][..] } else { page };
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
            fail.report(req.from, &worker.stats);
            Next::Abort
        }
    };
    Ok(Outcome::new(head.status, next))
}

/// Whether an app's header goes out with the page in place of its answer: only a 401's
/// challenge (nginx's `ngx_http_upstream_intercept_errors` copies nothing else).
fn goes_with_the_page(status: u16, name: &[u8]) -> bool {
    status == 401 && name.eq_ignore_ascii_case(b"www-authenticate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_401_s_challenge_goes_with_the_page() {
        assert!(goes_with_the_page(401, b"WWW-Authenticate"));
        assert!(goes_with_the_page(401, b"www-authenticate"));
        assert!(!goes_with_the_page(403, b"WWW-Authenticate"));
        for name in [
            "Content-Type",
            "Content-Length",
            "Set-Cookie",
            "Cache-Control",
            "Content-Security-Policy",
            "Retry-After",
            "Location",
        ] {
            assert!(!goes_with_the_page(500, name.as_bytes()), "{name}");
            assert!(!goes_with_the_page(401, name.as_bytes()), "{name}");
        }
    }
}
