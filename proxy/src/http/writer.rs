//! Writing response heads and chunk framing for the client.
//!
//! This module owns what ringway says to the client about a response: the status line
//! (always `HTTP/1.1`, as nginx does, RFC 9110 §6.2 lets a server send its own version), the
//! upstream headers minus the hop-by-hop ones, the framing headers ringway chose, and its own
//! short error responses. Output is appended to the caller's reused buffer; numbers are
//! formatted with `write!`, which writes straight into the `Vec` without a temporary.

use std::io::Write;

use super::{HeaderSpan, Version};

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
}

/// The last chunk and empty trailer.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Headers never copied from upstream: hop-by-hop (RFC 9110 §7.6.1) plus Content-Length,
/// which ringway writes itself from the framing it chose.
const DROPPED: [&[u8]; 8] = [
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"content-length",
];

/// Appends a status line and the upstream's headers to `out`, dropping hop-by-hop headers
/// (Connection, Keep-Alive, Transfer-Encoding, Proxy-Connection, TE, Trailer, Upgrade) and
/// Content-Length, then writing the framing headers for `framing` and `Connection: close` or
/// `keep-alive` as `keep_alive` says (HTTP/1.0 clients get `Connection: keep-alive` when kept).
///
/// With `ClientFraming::None` the upstream's first Content-Length is kept, so a HEAD answer
/// shows the length GET would have. `Server: ringway` is added only when the upstream sent no
/// Server header. An empty or unprintable `reason` is replaced by the standard phrase.
#[allow(clippy::too_many_arguments)]
pub fn write_response_head(
    out: &mut Vec<u8>,
    client_version: Version,
    status: u16,
    reason: &[u8],
    upstream_buf: &[u8],
    headers: &[HeaderSpan],
    framing: ClientFraming,
    keep_alive: bool,
) {
    let reason_ok = !reason.is_empty()
        && reason
            .iter()
            .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f));
    let _ = write!(out, "HTTP/1.1 {status} ");
    if reason_ok {
        out.extend_from_slice(reason);
    } else {
        out.extend_from_slice(reason_phrase(status).unwrap_or("").as_bytes());
    }
    out.extend_from_slice(b"\r\n");

    let mut has_server = false;
    let mut upstream_length: Option<&[u8]> = None;
    for h in headers {
        let name = h.name.of(upstream_buf);
        let value = h.value.of(upstream_buf);
        if name.eq_ignore_ascii_case(b"content-length") && upstream_length.is_none() {
            upstream_length = Some(value);
        }
        if name.is_empty() || DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            continue;
        }
        has_server |= name.eq_ignore_ascii_case(b"server");
        write_header(out, name, value);
    }

    match framing {
        ClientFraming::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        ClientFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        // A HEAD or 304 answer tells the length a GET would have; a 204 must not have one
        // (RFC 9110 §8.6).
        ClientFraming::None if status != 204 => {
            if let Some(v) = upstream_length {
                write_header(out, b"Content-Length", v);
            }
        }
        ClientFraming::None => {}
        ClientFraming::UntilClose => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if !has_server {
        out.extend_from_slice(b"Server: ringway\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends a complete error response (status line, `Content-Type: text/plain`,
/// Content-Length, `Connection: close` unless `keep_alive`, `Server: ringway`, short body)
/// for `status`. When `head_only`, the body is omitted but Content-Length still given.
///
/// The body is `"<status> <reason>\n"`. When `keep_alive`, `Connection: keep-alive` is sent,
/// which is right for HTTP/1.0 clients and harmless for 1.1 ones (nginx does the same).
pub fn write_error_response(out: &mut Vec<u8>, status: u16, keep_alive: bool, head_only: bool) {
    let reason = reason_phrase(status).unwrap_or("Error");
    // "NNN " + reason + "\n": status codes are three digits once clamped.
    let status = status.clamp(100, 999);
    let body_len = 4 + reason.len() + 1;
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nServer: ringway\r\nContent-Type: text/plain\r\n\
         Content-Length: {body_len}\r\nConnection: {connection}\r\n\r\n"
    );
    if !head_only {
        let _ = writeln!(out, "{status} {reason}");
    }
}

/// Appends the `size-in-hex CRLF` line that opens a chunk of `len` bytes.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
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
#[allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)
mod tests;
