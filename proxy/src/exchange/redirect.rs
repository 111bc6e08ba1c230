//! Redirects: a route's `redirect`, and the slash nginx adds to a prefix route's path.

use super::{Outcome, Request};
use crate::buffer::Buf;
use crate::client::{Client, Next, Own};
use std::io::Write;

use crate::http::{BodyFraming, Method, RequestHead, host_without_port};
use crate::identity::RequestId;
use crate::routes::Route;

/// Answers a redirect route: `to`, then the rest of the path after the route's prefix, then
/// the query (nginx `return 301 /new/$1$is_args$args`).
pub(super) async fn answer(
    client: &Client,
    req: &Request,
    route: &Route,
    to: &str,
    status: u16,
) -> Outcome {
    let rest = req.path.get(route.path.len()..).unwrap_or_default();
    let location = location(to.as_bytes(), rest, req.head.query.of(&client.input));
    send(client, req, route, status, &location).await
}

/// Answers a request for `/api` that only a route `/api/` serves: 301 to `/api/` (and the
/// query), as nginx does for its proxied locations.
pub(super) async fn to_slashed(client: &Client, req: &Request, route: &Route) -> Outcome {
    let location = location(&req.path, b"/", req.head.query.of(&client.input));
    send(client, req, route, 301, &location).await
}

/// Answers a plain HTTP request with a 301 to the same URL over HTTPS (nginx's
/// `return 301 https://$host$request_uri;`), the TLS port added unless it is 443.
pub(super) async fn to_https(
    client: &Client,
    head: &RequestHead,
    tls_port: u16,
    id: &RequestId,
    limit: std::time::Duration,
) -> Outcome {
    let input = &client.input;
    let host = head
        .host
        .map(|h| host_without_port(h.of(input)))
        .unwrap_or_default();
    let mut location = Buf::with_capacity(16 + host.len() + head.target.of(input).len());
    location.extend_from_slice(b"https://");
    if host.is_empty() {
        let _ = write!(&mut *location, "{}", client.local.ip());
    } else {
        location.extend_from_slice(host);
    }
    if tls_port != 443 {
        let _ = write!(&mut *location, ":{tls_port}");
    }
    // The path and query as sent (an absolute-form target's scheme and authority dropped).
    let uri = input
        .get(head.path.start as usize..head.target.end as usize)
        .unwrap_or_default();
    if uri.is_empty() || uri.first() != Some(&b'/') {
        location.push(b'/');
    }
    location.extend_from_slice(uri);
    let keep_alive = head.keep_alive && head.body == BodyFraming::None;
    let head_only = head.method == Method::Head;
    let headers: [(&[u8], &[u8]); 1] = [(b"Location", &location)];
    let own = Own {
        status: 301,
        keep_alive,
        head_only,
        headers: &headers,
        id,
        page: None,
    };
    let sent = client.answer(own, limit).await;
    let next = match (sent, keep_alive) {
        (false, _) => Next::Abort,
        (true, true) => Next::KeepAlive,
        (true, false) => Next::Linger,
    };
    Outcome::new(301, next)
}

async fn send(
    client: &Client,
    req: &Request,
    route: &Route,
    status: u16,
    location: &[u8],
) -> Outcome {
    let mut headers: Vec<(&[u8], &[u8])> = vec![(b"Location", location)];
    headers.extend(
        route
            .response_headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    let keep_alive = req.may_keep_alive_unread();
    let head_only = req.head.method == Method::Head;
    let limit = route.limits.send_timeout;
    let own = Own {
        status,
        keep_alive,
        head_only,
        headers: &headers,
        id: &req.request_id,
        page: None,
    };
    let sent = client.answer(own, limit).await;
    let next = match (sent, keep_alive) {
        (false, _) => Next::Abort,
        (true, true) => Next::KeepAlive,
        (true, false) => Next::Linger,
    };
    Outcome::new(status, next)
}

/// `base`, then `path` percent-encoded where a URL path needs it, then `?query` if any.
fn location(base: &[u8], path: &[u8], query: &[u8]) -> Buf {
    let mut out = Buf::with_capacity(base.len() + path.len() * 3 + query.len() + 1);
    out.extend_from_slice(base);
    for &b in path {
        if is_path_safe(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    if !query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(query);
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// RFC 3986 pchar and `/`: what a path may hold unescaped.
fn is_path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        // Base, path, query, the Location.
        type Case = (&'static [u8], &'static [u8], &'static [u8], &'static str);
        let cases: [Case; 5] = [
            (b"/new/", b"a/b", b"x=1", "/new/a/b?x=1"),
            (b"/new/", b"", b"", "/new/"),
            (b"/new/", b"a b/\xc3\xa9", b"", "/new/a%20b/%C3%A9"),
            (
                b"https://example.com/",
                b"x?#%",
                b"q",
                "https://example.com/x%3F%23%25?q",
            ),
            (b"/api", b"/", b"a=b&c", "/api/?a=b&c"),
        ];
        for (base, path, query, want) in cases {
            let got = location(base, path, query);
            assert_eq!(String::from_utf8_lossy(&got), want);
        }
    }
}
