//! Errors of the sans-IO HTTP layer, each mapped to the status ringway answers with.

/// Why a request (or an upstream response) was refused. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Malformed request line, header or chunk syntax.
    #[error("malformed message syntax")]
    BadSyntax,
    /// Request line longer than the limit.
    #[error("request line too long")]
    UriTooLong,
    /// Header block larger than the limit or too many header lines.
    #[error("header block too large")]
    HeadersTooLarge,
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
    /// HTTP/1.1 request without Host, or with more than one (RFC 9112 §3.2).
    #[error("missing or repeated Host")]
    BadHost,
    /// HTTP version other than 1.0 or 1.1.
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// Request method not recognised.
    #[error("unsupported method")]
    UnsupportedMethod,
    /// Body larger than the configured limit.
    #[error("body too large")]
    BodyTooLarge,
}

impl HttpError {
    /// The status code ringway answers with for this error.
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadSyntax
            | HttpError::LengthAndEncoding
            | HttpError::BadContentLength
            | HttpError::ObsFold
            | HttpError::SpaceBeforeColon
            | HttpError::BareCr
            | HttpError::BadHost
            | HttpError::UnsupportedMethod => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeadersTooLarge => 431,
            HttpError::UnsupportedEncoding => 501,
            HttpError::UnsupportedVersion => 505,
            HttpError::BodyTooLarge => 413,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)
mod tests {
    use super::HttpError::*;

    #[test]
    fn every_variant_has_its_status() {
        let table = [
            (BadSyntax, 400),
            (UriTooLong, 414),
            (HeadersTooLarge, 431),
            (LengthAndEncoding, 400),
            (BadContentLength, 400),
            (UnsupportedEncoding, 501),
            (ObsFold, 400),
            (SpaceBeforeColon, 400),
            (BareCr, 400),
            (BadHost, 400),
            (UnsupportedVersion, 505),
            (UnsupportedMethod, 400),
            (BodyTooLarge, 413),
        ];
        for (err, status) in table {
            assert_eq!(err.status(), status, "{err:?}");
        }
    }
}
