//! Upstream (uWSGI) response heads: the status line and headers, and how the body is framed.

use super::{HeaderSpan, HttpError, Span, Status, Version};

/// How the upstream delimits the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body (1xx, 204, 304, or a HEAD request).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed upstream response head.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead {
    /// Bytes of the head including the blank line.
    pub head_len: usize,
    /// Version the upstream spoke.
    pub version: Version,
    /// Status code (100..=999).
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: Span,
    /// Body framing, already taking the request method into account.
    pub framing: ResponseFraming,
}

/// Parses an upstream response head at the start of `buf`. `request_was_head` makes the
/// framing `None` whatever the headers say.
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
    max_headers: usize,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<ResponseHead>, HttpError> {
    let _ = (buf, request_was_head, max_headers, headers, Version::Http11);
    todo!()
}
