//! Sans-IO HTTP/1.x: request and response heads, body framing, chunked decoding, re-framing
//! a response body for the client, and response head writing.
//!
//! This module owns the bytes-in, decisions-out part of HTTP. It knows nothing of sockets,
//! runtimes or time: the connection driver feeds it byte slices and acts on what it returns.
//! Parsed heads hold offsets ([`Span`]) into the caller's buffer rather than borrowed
//! slices, so the driver can hand the owned buffer to the kernel while keeping the parse.
//!
//! ```
//! use ringway::http::{BodyFraming, ChunkedDecoder, Limits, Status, parse_request};
//!
//! let buf = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
//!             3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
//! let mut headers = Vec::new();
//! let Ok(Status::Complete(head)) = parse_request(&mut buf.to_vec(), &Limits::default(), &mut headers)
//! else {
//!     panic!("a valid head")
//! };
//! assert_eq!(head.path.of(buf), b"/up");
//! assert_eq!(head.body, BodyFraming::Chunked);
//!
//! let mut body = Vec::new();
//! let progress = ChunkedDecoder::new().decode(&buf[head.head_len..], &mut body)?;
//! assert!(progress.done);
//! assert_eq!(body, b"abc");
//! // What follows the body is the next (pipelined) request.
//! assert_eq!(&buf[head.head_len + progress.consumed..], b"GET / HTTP/1.1\r\n");
//! # Ok::<(), ringway::http::HttpError>(())
//! ```
#![deny(missing_docs)]

pub mod ascii;
mod body;
mod charset;
mod connection_names;
mod cookies;
mod date;
mod error;
mod header_rewrite;
mod invalid_names;
mod reframe;
mod request;
mod response;
mod rewrite_rules;
mod validate;
mod writer;

pub use body::{ChunkedDecoder, DecodeProgress, MAX_EXTENSIONS, MAX_TRAILERS};
pub use charset::Charset;
pub(crate) use connection_names::{ConnectionNames, HOP_BY_HOP, is_hop_by_hop};
pub use cookies::{CookieFlags, CookieRewrite};
pub use date::{HTTP_DATE_LEN, http_date, parse_http_date};
pub use error::HttpError;
pub use header_rewrite::{HeaderRewrite, HeaderRewriting};
pub use reframe::{Reframer, Truncated, write_chunk_size};
pub use request::{Limits, Method, RequestHead, parse_request};
pub use response::{
    MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS, ResponseFraming, ResponseHead, accel_limit_rate,
    parse_response, parse_response_within,
};
pub use rewrite_rules::{RewriteRules, Variables};
pub use validate::host_without_port;
pub(crate) use validate::{
    is_forwardable_name, is_token, is_valid_host, list_elements, list_has, names_header,
    names_header_prefix, parse_length, trim_ows,
};
pub(crate) use writer::write_header;
pub use writer::{
    ClientFraming, LAST_CHUNK, OwnResponse, ResponseMeta, push_short_text, reason_phrase,
    write_own_response, write_own_response_with_body, write_response_head,
};

/// Appends `path` percent-encoded where a URL path needs it (RFC 3986 pchar and `/` pass
/// as they are): a normalised path is decoded, its bytes may be anything, CR and LF
/// included, and it goes into a header or a request line.
pub(crate) fn push_path_escaped(out: &mut Vec<u8>, path: &[u8]) {
    push_escaped(out, path, is_path_char);
}

/// Whether a head whose bytes so far are `buf`, looked at up to `looked` already, may have
/// ended in the bytes since: `\n\n` or `\n\r`, which only the empty line that ends a head
/// makes (the two bytes before `looked` are looked at again: an end may straddle two
/// reads). Parsing an upstream's head only then costs its size once, not once per read (a
/// server writing its head a byte at a time cost the square of its size; found by review).
pub(crate) fn head_may_end(buf: &[u8], looked: usize) -> bool {
    let new = buf.get(looked.saturating_sub(2)..).unwrap_or_default();
    new.windows(2).any(|w| w == b"\n\n" || w == b"\n\r")
}

/// Whether `path` (a request path as sent, percent-escaped) has a dot segment once its
/// escapes are decoded (`%2e%2e` is `..`, `%2f` a separator): `..` only, or `.` too
/// (`climbing_only` false). A malformed escape stays as it is (normalising refuses it).
pub(crate) fn has_dot_segment(path: &[u8], climbing_only: bool) -> bool {
    let is_dot = |segment: &[u8]| segment == b".." || (!climbing_only && segment == b".");
    if !path.contains(&b'%') {
        return path.split(|&b| b == b'/').any(is_dot);
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut rest = path;
    while let Some((&b, tail)) = rest.split_first() {
        let escape = tail
            .get(..2)
            .filter(|_| b == b'%')
            .and_then(|hex| match *hex {
                [hi, lo] => Some((hex_digit(hi)? << 4) | hex_digit(lo)?),
                _ => None,
            });
        match escape {
            Some(byte) => {
                decoded.push(byte);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                decoded.push(b);
                rest = tail;
            }
        }
    }
    decoded.split(|&b| b == b'/').any(is_dot)
}

/// Appends `bytes`, each one `keep` refuses percent-encoded.
pub(crate) fn push_escaped(out: &mut Vec<u8>, bytes: &[u8], keep: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if keep(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Appends `query`, a query as an app wrote it (already escaped where it meant to be),
/// with what a request line cannot carry escaped: spaces, controls, `#` and bytes from
/// 0x80 up. Its own escapes (`%20`) stay as they are.
pub(crate) fn push_query_escaped(out: &mut Vec<u8>, query: &[u8]) {
    push_escaped(out, query, |b| b.is_ascii_graphic() && b != b'#');
}

/// Whether a URL path may hold `b` as it is: RFC 3986's pchar and `/`.
pub(crate) fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// The value of one hexadecimal digit (chunk sizes, percent-escapes).
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Result of feeding a parser: done, or it needs more bytes (which is not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The item is complete.
    Complete(T),
    /// More input is needed; nothing was consumed.
    Partial,
}

/// A byte range `[start, end)` into the buffer a head was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The bytes this span covers in `buf` (the buffer it was parsed from).
    pub fn of<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// True when the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// One header line: name and value as spans into the head's buffer. Values are trimmed of
/// surrounding whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderSpan {
    /// Header name, as sent (case kept).
    pub name: Span,
    /// Header value, trimmed.
    pub value: Span,
}

/// HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl BodyFraming {
    /// Whether the request has no body bytes after its head: none said, or a length of 0.
    /// (An empty chunked body still has its last chunk to read.)
    pub fn has_no_bytes(self) -> bool {
        matches!(self, BodyFraming::None | BodyFraming::Length(0))
    }
}

#[cfg(test)]
mod tests {
    use super::{has_dot_segment, head_may_end};

    #[test]
    fn a_head_may_end_only_where_an_empty_line_may_be() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        // Looked at a byte at a time: only the bytes of the empty line say so.
        let ends: Vec<usize> = (1..=head.len())
            .filter(|&n| head_may_end(&head[..n], n - 1))
            .collect();
        assert_eq!(ends, vec![37, 38]);
        // Straddling two reads, and bare LFs.
        assert!(head_may_end(b"HTTP/1.1 200 OK\r\n\r\n", 18));
        assert!(head_may_end(b"HTTP/1.1 200 OK\n\n", 16));
        assert!(!head_may_end(b"HTTP/1.1 200 OK\r\nX: 1\r\n", 0));
    }

    #[test]
    fn dot_segments_as_written_or_escaped() {
        assert!(has_dot_segment(b"/a/../b", true));
        assert!(has_dot_segment(b"/a/%2E%2e/b", true));
        assert!(has_dot_segment(b"/a/..%2fb", true));
        assert!(!has_dot_segment(b"/a/./b", true));
        assert!(has_dot_segment(b"/a/./b", false));
        assert!(has_dot_segment(b"/a/%2e", false));
        assert!(!has_dot_segment(b"/a/.b/..c/%2e%2ex", false));
        assert!(!has_dot_segment(b"/a/%zz/b", false));
    }
}
