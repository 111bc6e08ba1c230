//! Chunked transfer-coding decoder (RFC 9112 §7.1), incremental and allocation-free.

use super::HttpError;

/// What one call to [`ChunkedDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeProgress {
    /// Input bytes consumed.
    pub consumed: usize,
    /// True once the last chunk and the trailer section have been consumed.
    pub done: bool,
}

/// Decodes a chunked body fed in arbitrary pieces. Chunk extensions are skipped, trailers are
/// read and dropped.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    _state: u8,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes from `input`, appending body data to `out`. Stops at the end of the body (the
    /// rest of `input` is the next message) or when input runs out.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<DecodeProgress, HttpError> {
        let _ = (input, out);
        todo!()
    }
}
