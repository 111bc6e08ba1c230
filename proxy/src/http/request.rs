//! Request heads: httparse for the syntax, then the RFC 9112 rules httparse leaves out.

use super::{BodyFraming, HeaderSpan, HttpError, Span, Status, Version};

/// Limits applied while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line, in bytes (414 beyond).
    pub max_request_line: usize,
    /// Largest head (request line + headers + blank line), in bytes (431 beyond).
    pub max_head: usize,
    /// Most header lines (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_head: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// Request methods ringway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// OPTIONS
    Options,
    /// CONNECT
    Connect,
    /// TRACE
    Trace,
    /// Any other token method (kept as a span of the buffer).
    Other,
}

/// A parsed, validated request head. All spans point into the parsed buffer.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead {
    /// Bytes of the head, including the final blank line: the body starts here.
    pub head_len: usize,
    /// Method.
    pub method: Method,
    /// Method as sent.
    pub method_span: Span,
    /// Request target as sent (origin-form, absolute-form, `*`).
    pub target: Span,
    /// Path part of the target (before `?`), raw; for absolute-form, the path after the authority.
    pub path: Span,
    /// Query part (after `?`, without it); empty if none.
    pub query: Span,
    /// Version.
    pub version: Version,
    /// Host: the Host header's value, or the authority of an absolute-form target.
    pub host: Option<Span>,
    /// Body framing decided from Content-Length / Transfer-Encoding.
    pub body: BodyFraming,
    /// Whether the connection may stay open after this request (version default and Connection).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

/// Parses and validates a request head at the start of `buf`.
///
/// `headers` is cleared and filled with one entry per header line, in order; the caller keeps
/// it across requests so no allocation happens in steady state.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<RequestHead>, HttpError> {
    let _ = (buf, limits, headers, BodyFraming::None, Version::Http11);
    todo!()
}
