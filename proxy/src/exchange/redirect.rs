//! Redirects: a route's `redirect`, and the slash nginx adds to a prefix route's path.

use super::{Outcome, Request, respond};
use crate::buffer::Buf;
use crate::client::{Client, Next, Own};
use std::io::Write;
use std::net::IpAddr;

use crate::http::{Method, RequestHead, host_without_port, push_escaped, push_path_escaped};
use crate::identity::RequestId;
use crate::routes::{Route, highest_group};
use crate::worker::Worker;
use regex::bytes::Captures;

/// Answers a redirect route: `to`, then the rest of the path after the route's prefix, then
/// the query (nginx `return 301 /new/$1$is_args$args`); on a regex route, `to` may name
/// the pattern's groups instead (`rewrite ^/p/(\d+)$ /product/$1 permanent`).
pub(super) async fn answer(
    client: &Client,
    req: &Request,
    route: &Route,
    (to, status): (&str, u16),
    worker: &Worker,
) -> Outcome {
    let query = req.head.query.of(&client.input);
    let groups = route
        .regex
        .as_ref()
        .filter(|_| highest_group(to).is_some())
        .and_then(|regex| regex.captures(&req.path));
    let location = match groups {
        Some(groups) => with_groups(to.as_bytes(), &groups, query),
        None => {
            let rest = req.path.get(route.path.len()..).unwrap_or_default();
            location(to.as_bytes(), rest, query)
        }
    };
    respond::send(client, req, route, (status, Some(&location)), None, worker).await
}

/// Answers a request for `/api` that only a route `/api/` serves: 301 to `/api/` (and the
/// query), as nginx does for its proxied locations.
pub(super) async fn to_slashed(
    client: &Client,
    req: &Request,
    route: &Route,
    worker: &Worker,
) -> Outcome {
    let location = slashed(&req.path, req.head.query.of(&client.input));
    respond::send(client, req, route, (301, Some(&location)), None, worker).await
}

/// `path` and a slash, percent-encoded where a URL path needs it, then `?query` if any:
/// the path is the decoded one, and a directory's name may hold anything, CR and LF
/// included (found by review: it went into the Location as it was).
fn slashed(path: &[u8], query: &[u8]) -> Buf {
    let mut out = Buf::with_capacity(path.len() * 3 + 1 + query.len() + 1);
    push_path_escaped(&mut out, path);
    out.push(b'/');
    keep_on_this_host(&mut out, b"");
    push_query(&mut out, query, false);
    out
}

/// Answers a plain HTTP request with a redirect of `status` (301 unless configured) to
/// the same URL over HTTPS (nginx's `return 301 https://$host$request_uri;`), the TLS port
/// added unless it is 443. `$host` as nginx has it: the request's host name in lower case,
/// without port or trailing dot, else `server_name`.
pub(super) async fn to_https(
    client: &Client,
    head: &RequestHead,
    (tls_port, server_name, status): (u16, Option<&str>, u16),
    keep_alive: bool,
    id: &RequestId,
    (limit, hsts): (std::time::Duration, Option<&str>),
) -> Outcome {
    let input = &client.input;
    let host = match head.host {
        Some(h) => {
            let name = host_without_port(h.of(input));
            name.strip_suffix(b".").unwrap_or(name)
        }
        None => server_name.unwrap_or_default().as_bytes(),
    };
    let mut location = Buf::with_capacity(56 + host.len() + head.target.of(input).len());
    // Without a host name, the address the client reached.
    let reached = if host.is_empty() {
        client.reached()
    } else {
        client.local
    };
    https_origin(&mut location, host, reached.ip(), tls_port);
    // The path and query as sent (an absolute-form target's scheme and authority dropped).
    let uri = input
        .get(head.path.start as usize..head.target.end as usize)
        .unwrap_or_default();
    if uri.is_empty() || uri.first() != Some(&b'/') {
        location.push(b'/');
    }
    location.extend_from_slice(uri);
    let keep_alive = keep_alive && crate::client::may_discard(head);
    let head_only = head.method == Method::Head;
    let headers: [(&[u8], &[u8]); 1] = [(b"Location", &location)];
    let own = Own {
        status,
        keep_alive,
        head_only,
        headers: &headers,
        id,
        page: None,
        hsts,
    };
    let sent = client.answer(own, limit).await;
    Outcome::new(status, Next::after_own_answer(sent, keep_alive))
}

/// `https://HOST[:PORT]`: `host` in lower case, else the address the client reached, an
/// IPv6 one in brackets; the TLS port unless it is 443.
fn https_origin(out: &mut Vec<u8>, host: &[u8], local: IpAddr, tls_port: u16) {
    out.extend_from_slice(b"https://");
    if !host.is_empty() {
        let start = out.len();
        out.extend_from_slice(host);
        if let Some(written) = out.get_mut(start..) {
            written.make_ascii_lowercase();
        }
    } else {
        // A v4 client of a dual-stack socket reached a v4-mapped address: it asked for the
        // v4 one.
        let _ = match local.to_canonical() {
            IpAddr::V4(ip) => write!(out, "{ip}"),
            IpAddr::V6(ip) => write!(out, "[{ip}]"),
        };
    }
    if tls_port != 443 {
        let _ = write!(out, ":{tls_port}");
    }
}

/// `base`, then `path` percent-encoded where a URL path needs it, then `?query` if any.
fn location(base: &[u8], path: &[u8], query: &[u8]) -> Buf {
    let mut out = Buf::with_capacity(base.len() + path.len() * 3 + query.len() + 1);
    out.extend_from_slice(base);
    push_path_escaped(&mut out, path);
    keep_on_this_host(&mut out, base);
    push_query(&mut out, query, false);
    out
}

/// `to` with each `$1`..`$9` replaced by that group of the path (percent-encoded as a path
/// is, or in `to`'s query as a query's value is; a group that took no part, nothing), then
/// the request's query, after `?`, or after `&` if `to` has a query (as nginx's `rewrite`).
fn with_groups(to: &[u8], groups: &Captures<'_>, query: &[u8]) -> Buf {
    let mut out = Buf::with_capacity(to.len() + groups.get_match().len() * 3 + query.len() + 1);
    let mut rest = to;
    let mut in_query = false;
    while let Some((&b, after)) = rest.split_first() {
        match after.first() {
            Some(&d @ b'1'..=b'9') if b == b'$' => {
                if let Some(group) = groups.get(usize::from(d - b'0')) {
                    if in_query {
                        push_value_escaped(&mut out, group.as_bytes());
                    } else {
                        push_path_escaped(&mut out, group.as_bytes());
                    }
                }
                rest = &after[1..];
            }
            _ => {
                in_query |= b == b'?';
                out.push(b);
                rest = after;
            }
        }
    }
    keep_on_this_host(&mut out, to);
    push_query(&mut out, query, in_query);
    out
}

/// A Location starting with `//` names another host (a scheme-relative URL): one that the
/// request's path made so (`to = "/"` on route `/old`, asked for `/old//evil.example`,
/// or `$1` holding a leading `/`) gets its second slash escaped, and stays on this server.
/// nginx sends absolute Locations, where the same path cannot change the host.
fn keep_on_this_host(out: &mut Buf, to: &[u8]) {
    if out.starts_with(b"//") && !to.starts_with(b"//") {
        out.splice(1..2, *b"%2F");
    }
}

/// `bytes` escaped as a query's value: what would end it or start another (`&`, `=`, `+`,
/// `#`) and what a URL may not hold.
fn push_value_escaped(out: &mut Buf, bytes: &[u8]) {
    push_escaped(out, bytes, |b| {
        b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&b)
    });
}

/// The request's query, after `&` when the Location has one already, else after `?`.
fn push_query(out: &mut Buf, query: &[u8], joined: bool) {
    if !query.is_empty() {
        out.push(if joined { b'&' } else { b'?' });
        out.extend_from_slice(query);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slashed_path_is_escaped_as_a_path() {
        assert_eq!(&slashed(b"/api", b"")[..], b"/api/");
        assert_eq!(
            &slashed(b"/media/a\r\nSet-Cookie: b c", b"q=1")[..],
            b"/media/a%0D%0ASet-Cookie:%20b%20c/?q=1"
        );
    }

    #[test]
    fn groups_go_where_to_names_them_encoded() {
        let regex = crate::routes::PathRegex::new(r"^/p/([^/]+)(/x)?/(.*)$").unwrap();
        // Path, to, query, the Location.
        type Case = (&'static [u8], &'static str, &'static [u8], &'static str);
        let cases: [Case; 6] = [
            (b"/p/42/rest", "/product/$1/$3", b"", "/product/42/rest"),
            // In `to`'s query, a group is a value; the request's query joins with `&`.
            (
                b"/p/a&b=c d/r",
                "/search?tag=$1",
                b"x=1",
                "/search?tag=a%26b%3Dc%20d&x=1",
            ),
            (b"/p/42/x/r", "/a/$2$1", b"q=1", "/a//x42?q=1"),
            // A group that took no part is nothing; a `$` before anything else is a `$`.
            (b"/p/42/r", "/a$2/$1$/$x", b"", "/a/42$/$x"),
            // Decoded bytes go back encoded: no space, CR or LF reaches the header.
            (
                b"/p/a b\r\n\xc3\xa9/?",
                "https://example.com/$1/$3",
                b"",
                "https://example.com/a%20b%0D%0A%C3%A9/%3F",
            ),
            (b"/p/1/", "/$9/$1", b"", "/%2F1"),
        ];
        for (path, to, query, want) in cases {
            let groups = regex.captures(path).unwrap();
            let got = with_groups(to.as_bytes(), &groups, query);
            assert_eq!(String::from_utf8_lossy(&got), want, "{to}");
        }
        // A path cannot make the Location name another host; the operator's `to` can.
        let go = crate::routes::PathRegex::new(r"^/go(.*)$").unwrap();
        let groups = go.captures(b"/go/evil.example").unwrap();
        for (to, want) in [
            ("/$1", "/%2Fevil.example"),
            ("//cdn.example$1", "//cdn.example/evil.example"),
        ] {
            let got = with_groups(to.as_bytes(), &groups, b"");
            assert_eq!(String::from_utf8_lossy(&got), want, "{to}");
        }
        assert_eq!(
            &location(b"/", b"/evil.example", b"")[..],
            b"/%2Fevil.example"
        );
    }

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

    #[test]
    fn https_origins() {
        // Host (without its port), the address reached, the TLS port, the origin.
        let cases: [(&[u8], &str, u16, &str); 7] = [
            (b"example.com", "10.0.0.1", 443, "https://example.com"),
            (b"example.com", "10.0.0.1", 8443, "https://example.com:8443"),
            (b"[::1]", "::1", 8443, "https://[::1]:8443"),
            (b"", "10.0.0.1", 8443, "https://10.0.0.1:8443"),
            (b"", "::1", 8443, "https://[::1]:8443"),
            (b"", "2001:db8::7", 443, "https://[2001:db8::7]"),
            (b"", "::ffff:10.0.0.1", 443, "https://10.0.0.1"),
        ];
        for (host, local, port, want) in cases {
            let mut out = Vec::new();
            https_origin(&mut out, host, local.parse().unwrap(), port);
            assert_eq!(String::from_utf8_lossy(&out), want, "{local}");
        }
    }
}
