//! Errors of the sans-IO HTTP layer. Which status each one answers with is decided with every
//! other failure, in the one table, `crate::fail` (`Fail::status`).

/// Why a request (or an upstream response) was refused. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Malformed request line, header or chunk syntax.
    #[error("malformed message syntax")]
    BadSyntax,
    /// Request line longer than the limit.
    #[error("request line too long")]
    UriTooLong,
    /// Header block larger than the limit.
    #[error("header block too large")]
    HeadersTooLarge,
    /// More header lines than the limit.
    #[error("too many header lines")]
    TooManyHeaders,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.1).
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndEncoding,
    /// Content-Length not a valid number, or several that disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// A Transfer-Encoding other than `chunked` (RFC 9112 §6.1: 501).
    #[error("unsupported Transfer-Encoding")]
    UnsupportedEncoding,
    /// Obsolete line folding (RFC 9112 §5.2).
    #[error("obsolete line folding")]
    ObsFold,
    /// Whitespace between a header name and the colon (RFC 9112 §5.1).
    #[error("whitespace before colon")]
    SpaceBeforeColon,
    /// A CR not followed by LF (RFC 9112 §2.2).
    #[error("bare CR")]
    BareCr,
    /// HTTP/1.1 request without Host, or with more than one, or an invalid one (RFC 9112 §3.2).
    #[error("missing, repeated or invalid Host")]
    BadHost,
    /// A method with other characters than `A`-`Z`, `_` and `-` (nginx's rule: `get`,
    /// `trace` are not GET and TRACE to ringway, but may be to the app).
    #[error("method not in upper case")]
    BadMethod,
    /// HTTP version other than 1.x.
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// A header that names one thing sent twice (nginx's "client sent duplicate header
    /// line"): which of the two a check read and which the app reads could differ.
    #[error("repeated {0} header")]
    RepeatedHeader(&'static str),
}
