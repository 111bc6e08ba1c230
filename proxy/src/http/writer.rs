//! Writing response heads for the client, and ringway's own error answers.
//!
//! This module owns what ringway says to the client about a response: the status line
//! (always `HTTP/1.1`, as nginx does, RFC 9110 §6.2 lets a server send its own version), the
//! upstream headers minus the hop-by-hop ones, the framing headers ringway chose, and its own
//! short error responses. Output is appended to the caller's reused buffer; numbers are
//! formatted with `write!`, which writes straight into the `Vec` without a temporary.

use std::io::Write;

use super::ascii::push_u64;
use super::{Charset, ConnectionNames, HeaderRewriting, HeaderSpan, Version};

/// How ringway frames the body it sends to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body follows (HEAD, 204, 304); any Content-Length from upstream is kept as is.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients only).
    Chunked,
    /// Body ends when ringway closes the connection.
    UntilClose,
    /// A `101 Switching Protocols`: the connection becomes the upgraded protocol's, so the
    /// upstream's `Upgrade` stays and `Connection: upgrade` is sent.
    Switching,
}

/// The last chunk and empty trailer.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Instructions from the app to the proxy (X-Accel-Buffering, X-Accel-Redirect, ...): acted
/// on by ringway, never shown to the client, as nginx hides them.
const PROXY_ONLY_PREFIX: &[u8] = b"x-accel-";

/// What ringway says about a response beside the upstream's own headers.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta<'a> {
    /// The client's HTTP version.
    pub client_version: Version,
    /// Status code.
    pub status: u16,
    /// Reason phrase from upstream (replaced by the standard one if empty or unprintable).
    pub reason: &'a [u8],
    /// How ringway frames the body.
    pub framing: ClientFraming,
    /// Whether the connection stays open after this response.
    pub keep_alive: bool,
    /// The current IMF-fixdate, sent as `Date` if the upstream sent none.
    pub date: &'a [u8],
    /// Headers added after the upstream's (a route's `response_headers`).
    pub extra: &'a [(String, String)],
    /// Strict-Transport-Security, on a TLS connection that sends it (unless the upstream
    /// sent its own).
    pub hsts: Option<&'a str>,
    /// The request's ID, sent as `X-Request-ID` in place of any the upstream sent (none
    /// when empty): the ID the app was given, the logs and the client all see one value.
    pub request_id: &'a [u8],
    /// The upstream's own Server and Date are replaced by ringway's: an HTTP app server's,
    /// as nginx's proxy module hides them (gunicorn and Granian name themselves). A uwsgi
    /// app's are passed on, as nginx's uwsgi module does.
    pub own_server_and_date: bool,
    /// ringway compresses the body (`[gzip]`): `Content-Encoding: gzip` is added, and as
    /// nginx's gzip module does, the upstream's ETag is made weak (the bytes differ from
    /// the ones it names) and its Accept-Ranges dropped (ranges are not served on them).
    pub gzipped: bool,
    /// `Vary: Accept-Encoding` is added (nginx `gzip_vary`).
    pub vary_accept_encoding: bool,
    /// The upstream's headers not passed on (a route's `hide_headers`, in lower case).
    pub hide: &'a [String],
    /// The charset a Content-Type of the listed types that names none gets (the route's
    /// `charset`, nginx's).
    pub charset: Option<&'a Charset>,
    /// The route's `cookie_domain`, `cookie_path`, `cookie_flags` and `location_rewrite`
    /// (nginx's `proxy_cookie_*` and `proxy_redirect`), for its `Set-Cookie`, `Location`
    /// and `Refresh` headers.
    pub rewrite: Option<HeaderRewriting<'a>>,
}

/// The response header carrying the request's ID.
const REQUEST_ID: &[u8] = b"X-Request-ID";

/// Appends a status line and the upstream's headers to `out`, then the framing headers for
/// `meta.framing` and `Connection: close` or `keep-alive` as `meta.keep_alive` says (HTTP/1.0
/// clients get `Connection: keep-alive` when kept).
///
/// Dropped from the upstream's headers: hop-by-hop ones (Connection, Keep-Alive,
/// Transfer-Encoding, Proxy-Connection, TE, Trailer, Upgrade), the headers the upstream's
/// Connection header names (RFC 9110 §7.6.1), `X-Accel-*` instructions, and Content-Length.
/// With `ClientFraming::None` the upstream's first Content-Length is kept, so a HEAD answer
/// shows the length GET would have. `Server: ringway` and `Date` are added only when the
/// upstream sent none.
pub fn write_response_head(
    out: &mut Vec<u8>,
    meta: &ResponseMeta<'_>,
    upstream_buf: &[u8],
    headers: &[HeaderSpan],
) {
    let reason = meta.reason;
    let reason_ok = !reason.is_empty()
        && reason
            .iter()
            .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f));
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, meta.status.into());
    out.push(b' ');
    if reason_ok {
        out.extend_from_slice(reason);
    } else {
        out.extend_from_slice(reason_phrase(meta.status).unwrap_or("").as_bytes());
    }
    out.extend_from_slice(b"\r\n");

    let named_by_connection = ConnectionNames::gather(upstream_buf, headers);
    let (mut has_server, mut has_date, mut has_hsts) = (false, false, false);
    let mut upstream_length: Option<&[u8]> = None;
    for h in headers {
        let name = h.name.of(upstream_buf);
        let value = h.value.of(upstream_buf);
        if name.eq_ignore_ascii_case(b"content-length") && upstream_length.is_none() {
            upstream_length = Some(value);
        }
        let proxy_only = name
            .get(..PROXY_ONLY_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PROXY_ONLY_PREFIX));
        let replaced = (!meta.request_id.is_empty() && name.eq_ignore_ascii_case(REQUEST_ID))
            || (meta.own_server_and_date
                && (name.eq_ignore_ascii_case(b"server") || name.eq_ignore_ascii_case(b"date")));
        // The protocols a 101 switches to, or a 426 asks for (RFC 9110 §15.5.22: it must
        // name them; nginx passes Upgrade on any answer).
        let switching_to = (meta.framing == ClientFraming::Switching || meta.status == 426)
            && name.eq_ignore_ascii_case(b"upgrade");
        // Content-Length too: ringway writes it from the framing it chose.
        let hop_by_hop = super::is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || named_by_connection.contains(name);
        let hidden = meta
            .hide
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()));
        if name.is_empty() || proxy_only || replaced || hidden || (hop_by_hop && !switching_to) {
            continue;
        }
        has_server |= name.eq_ignore_ascii_case(b"server");
        has_date |= name.eq_ignore_ascii_case(b"date");
        has_hsts |= name.eq_ignore_ascii_case(b"strict-transport-security");
        if meta.gzipped && name.eq_ignore_ascii_case(b"accept-ranges") {
            continue;
        }
        if meta.gzipped && name.eq_ignore_ascii_case(b"etag") {
            write_weak_etag(out, name, value);
            continue;
        }
        if let Some(rewrite) = &meta.rewrite
            && let Some(value) = rewrite.rewrite(name, value)
        {
            write_header(out, name, &value);
            continue;
        }
        if let Some(charset) = meta.charset
            && name.eq_ignore_ascii_case(b"content-type")
            && let Some(label) = charset.for_answer(meta.status, value)
        {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"; charset=");
            out.extend_from_slice(label.as_bytes());
            out.extend_from_slice(b"\r\n");
            continue;
        }
        write_header(out, name, value);
    }
    if meta.gzipped {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    if meta.vary_accept_encoding {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    for (name, value) in meta.extra {
        write_header(out, name.as_bytes(), value.as_bytes());
    }
    if let Some(hsts) = meta.hsts.filter(|_| !has_hsts) {
        write_header(out, b"Strict-Transport-Security", hsts.as_bytes());
    }
    if !meta.request_id.is_empty() {
        write_header(out, REQUEST_ID, meta.request_id);
    }

    match meta.framing {
        ClientFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ClientFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        // A HEAD or 304 answer tells the length a GET would have; a 204 must not have one
        // (RFC 9110 §8.6), nor one that GET would send compressed (its length is unknown).
        ClientFraming::None if meta.status != 204 && !meta.gzipped => {
            if let Some(v) = upstream_length {
                // A list of equal lengths (`5, 5`, read as one: the parser refuses others)
                // goes out as the one number, as RFC 9112 §6.3 asks (found by review).
                let first = v.split(|&b| b == b',').next().unwrap_or(v).trim_ascii();
                write_header(out, b"Content-Length", first);
            }
        }
        ClientFraming::None | ClientFraming::UntilClose | ClientFraming::Switching => {}
    }
    if meta.framing == ClientFraming::Switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if !meta.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if meta.client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if !has_server {
        out.extend_from_slice(b"Server: ringway\r\n");
    }
    if !has_date {
        write_header(out, b"Date", meta.date);
    }
    out.extend_from_slice(b"\r\n");
}

/// An ETag for bytes ringway changed: a strong one made weak, a weak one kept, anything
/// else (not an entity-tag) dropped, as nginx's `ngx_http_weak_etag` does.
fn write_weak_etag(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let tag = super::trim_ows(value);
    if tag.starts_with(b"W/") {
        write_header(out, name, tag);
    } else if tag.starts_with(b"\"") {
        out.extend_from_slice(name);
        out.extend_from_slice(b": W/");
        out.extend_from_slice(tag);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends one header line, `name: value`.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One of ringway's own answers: an error, a redirect, a refusal.
#[derive(Debug, Clone, Copy)]
pub struct OwnResponse<'a> {
    /// Status code.
    pub status: u16,
    /// Keep the connection open after it (`Connection: keep-alive`, else `close`).
    pub keep_alive: bool,
    /// Leave the body out (a HEAD request); Content-Length is still given.
    pub head_only: bool,
    /// The current IMF-fixdate.
    pub date: &'a [u8],
    /// More headers (Location, the route's `response_headers`), written as given.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// The request's ID, sent as `X-Request-ID` (none when empty).
    pub request_id: &'a [u8],
}

/// Appends a complete response of ringway's own: status line, `Server: ringway`, `Date`,
/// the extra headers, `Content-Type: text/plain`, Content-Length, Connection, and the body
/// `"<status> <reason>\n"`. `Connection: keep-alive` is right for HTTP/1.0 clients and
/// harmless for 1.1 ones (nginx does the same). Returns the length of the head (what was
/// appended before the body).
pub fn write_own_response(out: &mut Vec<u8>, r: &OwnResponse<'_>) -> usize {
    let reason = reason_phrase(r.status).unwrap_or("Error");
    // "NNN " + reason + "\n": status codes are three digits once clamped.
    let head_len = write_own_head(out, r, "text/plain", 4 + reason.len() + 1);
    if !r.head_only && !is_bodiless(r.status) {
        push_short_text(out, r.status);
    }
    head_len
}

/// Appends the body of ringway's own answer with `status` when no page replaces it:
/// `NNN Reason` and a newline.
pub fn push_short_text(out: &mut Vec<u8>, status: u16) {
    let reason = reason_phrase(status).unwrap_or("Error");
    let _ = writeln!(out, "{} {reason}", status.clamp(100, 999));
}

/// 204 and 304 answers have no body, and so no Content-Type or Content-Length (RFC 9110
/// §8.6, §15.3.5).
fn is_bodiless(status: u16) -> bool {
    matches!(status, 204 | 304)
}

/// Appends a response of ringway's own, as [`write_own_response`] does, with `body` (an
/// operator's error page) of type `content_type` in place of the short text. Returns the
/// length of the head.
pub fn write_own_response_with_body(
    out: &mut Vec<u8>,
    r: &OwnResponse<'_>,
    content_type: &str,
    body: &[u8],
) -> usize {
    let head_len = write_own_head(out, r, content_type, body.len());
    if !r.head_only && !is_bodiless(r.status) {
        out.extend_from_slice(body);
    }
    head_len
}

/// Appends the head of one of ringway's own answers, for a body of `body_len` bytes, and
/// returns its length.
fn write_own_head(
    out: &mut Vec<u8>,
    r: &OwnResponse<'_>,
    content_type: &str,
    body_len: usize,
) -> usize {
    let before = out.len();
    let reason = reason_phrase(r.status).unwrap_or("Error");
    let status = r.status.clamp(100, 999);
    let connection = if r.keep_alive { "keep-alive" } else { "close" };
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\nServer: ringway\r\n");
    write_header(out, b"Date", r.date);
    for (name, value) in r.headers {
        write_header(out, name, value);
    }
    if !r.request_id.is_empty() {
        write_header(out, REQUEST_ID, r.request_id);
    }
    if !is_bodiless(r.status) {
        let _ = write!(
            out,
            "Content-Type: {content_type}\r\nContent-Length: {body_len}\r\n"
        );
    }
    let _ = write!(out, "Connection: {connection}\r\n\r\n");
    out.len() - before
}

/// The standard reason phrase for `status` (RFC 9110 §15 and the common extensions), if
/// there is one.
pub fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
