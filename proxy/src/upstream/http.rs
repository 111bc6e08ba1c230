//! The HTTP/1.1 exchange on an upstream connection: the request head ringway writes for an
//! HTTP server (gunicorn, Granian, uvicorn), and the response head read back.
//!
//! The head carries the client's request line target and headers, minus the hop-by-hop
//! ones (RFC 9110 §7.6.1: Connection, the headers it names, Keep-Alive, Proxy-Connection,
//! TE, Trailer, Transfer-Encoding, Upgrade unless upgrading) and those ringway writes
//! itself: Host (the request's authority), Content-Length (the buffered body's), and
//! X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Real-IP, X-Request-ID (a
//! client's copies of these say nothing; a trusted proxy's X-Forwarded-Proto is its word on
//! the scheme, and its X-Forwarded-Host on the host when this server serves that host, as
//! on the uwsgi path). `Expect` is dropped too: the body is sent whole,
//! and the client was already answered `100 Continue` by ringway. `Proxy` never goes
//! (httpoxy: servers make it HTTP_PROXY), nor the other scheme claims servers believe
//! (gunicorn's X-Forwarded-Ssl and X-Forwarded-Protocol) unless a trusted proxy sent them.
//! Header names with an underscore are dropped unless allowed, as for uwsgi: servers fold
//! `X_Foo` and `X-Foo` into one WSGI variable, so one could spoof the other.
//!
//! An upgrade to `h2c` is never passed on (the request goes as a plain one): HTTP/2 in
//! the joined connection would reach the app past the routes, limits and the headers
//! ringway writes. RFC 9113 deprecates that upgrade; WebSocket and others pass.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::UpstreamConn;
use crate::buffer::Buf;
use crate::fail::{BadResponse, Fail, Step};
use crate::http::ascii::{push_ip, push_u64};
use crate::http::{
    self, HeaderSpan, MAX_RESPONSE_HEAD, RequestHead, ResponseHead, Status, write_header,
};
use crate::io::{IoError, read_some};
use crate::tls::ClientCert;

/// First read of an upstream response.
const HEAD_READ_SIZE: usize = 16 * 1024;

/// What ringway says about a request beside the client's headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadEnv<'a> {
    /// The method sent in place of the request's, if any (`GET` after an X-Accel-Redirect,
    /// as nginx makes it).
    pub(crate) method: Option<&'a [u8]>,
    /// The query sent in place of the request's, if any, with `path` (after an
    /// X-Accel-Redirect, the query it named, as nginx makes it).
    pub(crate) query: Option<&'a [u8]>,
    /// The real client address (crate::identity): X-Forwarded-For and X-Real-IP.
    pub(crate) client_ip: IpAddr,
    /// The request's ID: X-Request-ID (none when empty).
    pub(crate) request_id: &'a [u8],
    /// The client came over TLS: X-Forwarded-Proto.
    pub(crate) https: bool,
    /// The client's certificate: X-SSL-Client-Verify and the X-SSL-Client-* headers of a
    /// verified one, in place of any the client sent while certificates are asked for.
    pub(crate) client_cert: ClientCert<'a>,
    /// The connection is from a trusted proxy: its scheme headers are believed.
    pub(crate) trusted_peer: bool,
    /// The header a trusted proxy names the client in (`real_ip_header`, lower case): from
    /// any other peer it is dropped, as X-Real-IP is.
    pub(crate) real_ip_header: &'a [u8],
    /// The host a trusted proxy says the client asked for, when this server serves it
    /// (`exchange::forwarded_host`): X-Forwarded-Host, in place of the Host.
    pub(crate) forwarded_host: Option<&'a [u8]>,
    /// Host when the request had none (an HTTP/1.0 client): the server's name or address.
    pub(crate) default_host: &'a [u8],
    /// Header names with `_` are passed on.
    pub(crate) allow_underscores: bool,
    /// The body's length (`None`: no body).
    pub(crate) body_len: Option<u64>,
    /// The client asks for a protocol switch and the upgrade is passed on.
    pub(crate) upgrade: bool,
    /// The connection may be kept for another request (else `Connection: close`).
    pub(crate) keep_alive: bool,
    /// The target's path in place of the client's: the route's `upstream_path` and the
    /// rest of the normalised path after the route's own (nginx's `proxy_pass http://app/;`).
    pub(crate) path: Option<(&'a [u8], &'a [u8])>,
    /// The operator's headers (nginx's `proxy_set_header`): each replaces the client's
    /// copies and ringway's own of its name; an empty value leaves the header out.
    pub(crate) set: &'a [(String, String)],
}

impl HeadEnv<'_> {
    /// The operator's value for header `name` (lower case), if they set one.
    fn set_value(&self, name: &[u8]) -> Option<&str> {
        self.set
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the operator set header `name` (as the app would read the name: case aside,
    /// a client's `_` standing for `-`, as `http::names_header` reads it).
    fn sets(&self, name: &[u8]) -> bool {
        self.set.iter().any(|(set, _)| {
            set.len() == name.len()
                && set.bytes().zip(name).all(|(s, &c)| {
                    let (s, c) = (s.to_ascii_lowercase(), c.to_ascii_lowercase());
                    s == c || (c == b'_' && s == b'-')
                })
        })
    }
}

/// Headers ringway never copies from the client beside the hop-by-hop ones: those it writes,
/// `Proxy` (httpoxy), and the two gunicorn takes as WSGI's `SCRIPT_NAME` and `PATH_INFO`
/// from a trusted peer, which ringway is (its `forwarder_headers`, where underscores pass:
/// a client's `SCRIPT_NAME: /pub` had `/pub/admin/` served as `/admin/`, past the route
/// guarding it; found by review).
const DROPPED: [&[u8]; 11] = [
    b"content-length",
    b"expect",
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-real-ip",
    b"x-request-id",
    b"proxy",
    b"script-name",
    b"path-info",
];

/// Whether the client asks to switch protocols: an Upgrade header, named by Connection,
/// and not to `h2c` (see the module's note).
pub(crate) fn wants_upgrade(input: &[u8], headers: &[HeaderSpan]) -> bool {
    let has = |name: &[u8], token: Option<&[u8]>| {
        headers.iter().any(|h| {
            h.name.of(input).eq_ignore_ascii_case(name)
                && token.is_none_or(|t| http::list_has(h.value.of(input), t))
        })
    };
    has(b"upgrade", None) && has(b"connection", Some(b"upgrade")) && !has(b"upgrade", Some(b"h2c"))
}

/// The scheme for X-Forwarded-Proto: a trusted proxy's word, else how the client reached
/// ringway.
fn scheme(input: &[u8], headers: &[HeaderSpan], env: &HeadEnv<'_>) -> &'static [u8] {
    let own: &'static [u8] = if env.https { b"https" } else { b"http" };
    crate::identity::forwarded_scheme(input, headers, env.trusted_peer).unwrap_or(own)
}

/// Appends the request head for the request whose head is `head` (spans into `input`) to
/// `out`. Nothing is allocated but `out`'s growth.
pub(crate) fn encode_request_head(
    input: &[u8],
    head: &RequestHead,
    headers: &[HeaderSpan],
    env: &HeadEnv<'_>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(env.method.unwrap_or(head.method_span.of(input)));
    out.push(b' ');
    let target = head.target.of(input);
    if let Some((replacement, rest)) = env.path {
        // As nginx: the normalised path, escaped again, and the query as sent.
        out.extend_from_slice(replacement);
        http::push_path_escaped(out, rest);
        match env.query {
            // An app's header value: a space in it would end the request line.
            Some(query) if !query.is_empty() => {
                out.push(b'?');
                http::push_query_escaped(out, query);
            }
            Some(_) => {}
            None if !head.query.is_empty() => {
                out.push(b'?');
                out.extend_from_slice(head.query.of(input));
            }
            None => {}
        }
    } else if target.first() == Some(&b'/') || target == b"*" {
        // Without its fragment, which is the client's alone (RFC 9110 §4.2.5): the routes
        // saw the path up to it, and an app that takes `/x#/../admin` as a path (uvicorn's
        // h11 does) would serve what no route let through (found by review).
        let origin = target.split(|&b| b == b'#').next().unwrap_or(target);
        out.extend_from_slice(origin);
    } else {
        // Absolute form (`http://host/path?q`): a server is sent the origin form.
        let path = head.path.of(input);
        out.extend_from_slice(if path.is_empty() { b"/" } else { path });
        if !head.query.is_empty() {
            out.push(b'?');
            out.extend_from_slice(head.query.of(input));
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    let host = head.host.map_or(env.default_host, |h| h.of(input));
    // An operator's Host whose variables came out empty keeps the client's.
    let sent_host = env
        .set_value(b"host")
        .filter(|v| !v.is_empty())
        .map_or(host, str::as_bytes);
    out.extend_from_slice(sent_host);
    out.extend_from_slice(b"\r\n");

    let named_by_connection = http::ConnectionNames::gather(input, headers);
    for h in headers {
        let name = h.name.of(input);
        // Matched as the app would see the name (`X_Real_IP` too, where underscores pass).
        let ours = (http::HOP_BY_HOP.iter().chain(&DROPPED)).any(|d| http::names_header(name, d));
        let upgrade = env.upgrade && name.eq_ignore_ascii_case(b"upgrade");
        let unvouched = (crate::identity::is_url_claim(name)
            || crate::http::names_header(name, env.real_ip_header))
            && !crate::identity::vouched(name, env.trusted_peer);
        let cert_claim = env.client_cert.refuses_claim(name, env.trusted_peer);
        // A WebSocket handshake's fields go only with an upgrade, as on the uwsgi path (an
        // old gunicorn reads 8 bytes of body after a `Sec-WebSocket-Key1`, the start of the
        // next request on a kept connection; found by review).
        let handshake = !env.upgrade && http::names_header_prefix(name, b"sec-websocket-");
        if (ours && !upgrade)
            || handshake
            || unvouched
            || cert_claim
            || !http::is_forwardable_name(name, env.allow_underscores)
            || (!upgrade && named_by_connection.contains(name))
            || (!env.set.is_empty() && env.sets(name))
        {
            continue;
        }
        write_header(out, name, h.value.of(input));
    }

    // ringway's own, each unless the operator set it: the client's real address alone
    // (crate::identity resolved any trusted proxies' list already), so that an app that
    // trusts one proxy hop reads it from here.
    let own = |name: &[u8]| env.set.is_empty() || env.set_value(name).is_none();
    if own(b"x-forwarded-for") {
        out.extend_from_slice(b"X-Forwarded-For: ");
        push_ip(out, env.client_ip);
        out.extend_from_slice(b"\r\n");
    }
    if own(b"x-real-ip") {
        out.extend_from_slice(b"X-Real-IP: ");
        push_ip(out, env.client_ip);
        out.extend_from_slice(b"\r\n");
    }
    if own(b"x-forwarded-proto") {
        out.extend_from_slice(b"X-Forwarded-Proto: ");
        out.extend_from_slice(scheme(input, headers, env));
        out.extend_from_slice(b"\r\n");
    }
    if own(b"x-forwarded-host") {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(env.forwarded_host.unwrap_or(host));
        out.extend_from_slice(b"\r\n");
    }
    if !env.request_id.is_empty() && own(b"x-request-id") {
        out.extend_from_slice(b"X-Request-ID: ");
        out.extend_from_slice(env.request_id);
        out.extend_from_slice(b"\r\n");
    }
    for (field, value) in env
        .client_cert
        .drops_claims()
        .then(|| env.client_cert.fields())
        .into_iter()
        .flatten()
    {
        if own(field.header.as_bytes()) {
            out.extend_from_slice(field.header.as_bytes());
            out.extend_from_slice(b": ");
            if field.multiline {
                // As nginx's `$ssl_client_escaped_cert`: a URI component's escapes.
                http::push_escaped(out, value.as_bytes(), |b| {
                    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
                });
            } else {
                out.extend_from_slice(value.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in env.set {
        if !value.is_empty() && !name.eq_ignore_ascii_case("host") {
            write_header(out, name.as_bytes(), value.as_bytes());
        }
    }
    if let Some(len) = env.body_len {
        out.extend_from_slice(b"Content-Length: ");
        push_u64(out, len);
        out.extend_from_slice(b"\r\n");
    }
    if env.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if !env.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether the upstream may be sent another request on this connection once this answer
/// has been read to its end: HTTP/1.1, framed by length or chunks (or bodiless), no
/// `Connection: close`, and not an answer read without the body its head announces (a
/// HEAD's, a 204's or a 304's with a Content-Length over 0 or a Transfer-Encoding: a
/// server that sends that body anyway, in a later segment, would have it read as the next
/// request's answer; found by review), nor a HEAD's with no length at all, whose GET would
/// end at the close (gunicorn streams an app's body after such a head; found by review). (A
/// head framed both ways never gets here: `parse_response` refuses it.)
pub(crate) fn keeps_connection(head: &ResponseHead, buf: &[u8], headers: &[HeaderSpan]) -> bool {
    let named = |name: &'static [u8]| {
        headers
            .iter()
            .filter(move |h| h.name.of(buf).eq_ignore_ascii_case(name))
    };
    let announced_body = head.framing == http::ResponseFraming::None
        && (head.content_length.is_some_and(|n| n > 0)
            || named(b"transfer-encoding").next().is_some()
            || (head.content_length.is_none() && !matches!(head.status, 204 | 304)));
    head.version == http::Version::Http11
        && head.status >= 200
        && head.framing != http::ResponseFraming::UntilClose
        && !announced_body
        && !named(b"connection").any(|h| http::list_has(h.value.of(buf), b"close"))
}

/// Why no response head was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadFailed {
    /// What to answer.
    pub(crate) fail: Fail,
    /// Not one byte came back: the upstream may never have seen the request (a kept
    /// connection it closed meanwhile).
    pub(crate) nothing_back: bool,
}

/// Reads the response head; returns it with the buffer it is at the start of. Interim
/// answers (`100 Continue`, `103 Early Hints`) are skipped, their bytes counted against
/// the head's bound (else a server sending them without end would hold the request past
/// every limit); `101` is returned when `upgrading`, else refused like any other.
pub(crate) async fn read_response_head(
    conn: &UpstreamConn,
    request_was_head: bool,
    upgrading: bool,
    headers: &mut Vec<HeaderSpan>,
    timeout: Duration,
) -> Result<(ResponseHead, Buf), HeadFailed> {
    let mut resp = Buf::with_capacity(HEAD_READ_SIZE);
    let mut any = false;
    let mut interim = 0;
    let failed = |fail, any: bool| HeadFailed {
        fail,
        nothing_back: !any,
    };
    let too_large = || {
        let too_large = BadResponse::HeadTooLarge(MAX_RESPONSE_HEAD);
        failed(Fail::UpstreamBadResponse(too_large), true)
    };
    let mut looked = 0;
    // One limit for the whole head, interim ones included, as nginx sets its read timer
    // once for it: a head trickled a byte at a time held its request for as long as it
    // went on (found by review).
    let deadline = Instant::now() + timeout;
    loop {
        if http::head_may_end(&resp, looked) || interim + resp.len() >= MAX_RESPONSE_HEAD {
            match http::parse_response(&resp, request_was_head, headers) {
                // A read may take the buffer past the limit: a head that ends there is as
                // large as one that does not end (found by review: one of 79 KiB passed).
                Ok(Status::Complete(head)) if interim + head.head_len > MAX_RESPONSE_HEAD => {
                    return Err(too_large());
                }
                Ok(Status::Complete(head)) if head.status >= 200 => return Ok((head, resp)),
                Ok(Status::Complete(head)) if head.status == 101 && upgrading => {
                    return Ok((head, resp));
                }
                Ok(Status::Complete(head)) if head.status != 101 => {
                    interim += head.head_len;
                    if interim >= MAX_RESPONSE_HEAD {
                        return Err(too_large());
                    }
                    resp.drain(..head.head_len);
                    // What follows the interim head is looked at anew.
                    looked = 0;
                    continue;
                }
                Ok(Status::Complete(head)) => {
                    let interim = BadResponse::Interim(head.status);
                    return Err(failed(Fail::UpstreamBadResponse(interim), true));
                }
                Ok(Status::Partial) if interim + resp.len() < MAX_RESPONSE_HEAD => {}
                Ok(Status::Partial) => return Err(too_large()),
                Err(err) => {
                    let bad = Fail::UpstreamBadResponse(BadResponse::Head(err));
                    return Err(failed(bad, true));
                }
            }
        }
        looked = resp.len();
        let left = deadline.saturating_duration_since(Instant::now());
        resp = match read_some(conn, resp, HEAD_READ_SIZE, left).await {
            Ok((0, _)) => return Err(failed(Fail::UpstreamClosed, any)),
            Ok((_, resp)) => resp,
            Err(IoError::Timeout) => {
                return Err(failed(Fail::UpstreamTimeout(Step::ReadingHead), true));
            }
            Err(IoError::Failed(kind)) => {
                return Err(failed(Fail::UpstreamIo(Step::ReadingHead, kind), any));
            }
        };
        any = true;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
