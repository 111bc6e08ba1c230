//! A request body as ringway holds it until the upstream can take it: in memory, or in a
//! temp file.

use super::{Buf, TempFile};

/// A whole request body, read before the upstream is contacted.
pub(crate) enum Body {
    /// The request has no body (no Content-Length, no Transfer-Encoding).
    Absent,
    /// In memory at `buf[front..]`. `buf[..front]` is room for the uwsgi packet's header and
    /// vars, so the packet and its body go upstream in one write.
    Memory {
        /// The buffer.
        buf: Buf,
        /// Where the body starts.
        front: usize,
    },
    /// In an anonymous temp file, `len` bytes from offset 0.
    File {
        /// The file.
        file: TempFile,
        /// The body's length.
        len: u64,
    },
}

impl Body {
    /// The body's length, as CONTENT_LENGTH says it (`None`: no body at all).
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Body::Absent => None,
            Body::Memory { buf, front } => Some(buf.len().saturating_sub(*front) as u64),
            Body::File { len, .. } => Some(*len),
        }
    }

    /// The body's bytes, when it is held in memory.
    pub(crate) fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Body::Memory { buf, front } => buf.get(*front..),
            Body::Absent | Body::File { .. } => None,
        }
    }
}
