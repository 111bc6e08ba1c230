//! Writing response heads and chunk framing for the client.

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

/// Appends a status line and the upstream's headers to `out`, dropping hop-by-hop headers
/// (Connection, Keep-Alive, Transfer-Encoding, Proxy-Connection, TE, Trailer, Upgrade) and
/// Content-Length, then writing the framing headers for `framing` and `Connection: close` or
/// `keep-alive` as `keep_alive` says (HTTP/1.0 clients get `Connection: keep-alive` when kept).
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
    let _ = (
        out,
        client_version,
        status,
        reason,
        upstream_buf,
        headers,
        framing,
        keep_alive,
    );
    todo!()
}

/// Appends a complete error response (status line, `Content-Type: text/plain`,
/// Content-Length, `Connection: close` unless `keep_alive`, `Server: ringway`, short body)
/// for `status`. When `head_only`, the body is omitted but Content-Length still given.
pub fn write_error_response(out: &mut Vec<u8>, status: u16, keep_alive: bool, head_only: bool) {
    let _ = (out, status, keep_alive, head_only);
    todo!()
}

/// Appends the `size-in-hex CRLF` line that opens a chunk of `len` bytes.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    let _ = (out, len);
    todo!()
}
