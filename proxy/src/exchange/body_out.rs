//! The app's answer body on its way to the client: re-framed as it came, or compressed
//! (`[gzip]`): the upstream's framing undone, the bytes deflated into one gzip stream, the
//! stream sent in chunks (or, when the whole body came with the head, with a length).

use std::io::Write;

use crate::buffer::Buf;
use crate::fail::{BadResponse, Fail};
use crate::gzip::GzipStream;
use crate::http::{ClientFraming, LAST_CHUNK, Reframer, ResponseFraming};

/// How the rest of a body goes out.
pub(super) enum BodyOut {
    /// As the app sent it, in the client's framing.
    Plain(Reframer),
    /// Compressed, in chunks (boxed: a plain answer's future does not carry zlib's handle).
    Gzip(Box<GzipChunks>),
}

/// A compressed body sent in chunks.
pub(super) struct GzipChunks {
    /// The upstream's framing in, plain body bytes out.
    raw: Reframer,
    stream: GzipStream,
    /// The app asked for its pace (`X-Accel-Buffering: no`): each piece is flushed to the
    /// client as it comes, not kept by zlib until a block fills.
    flush: bool,
}

impl BodyOut {
    /// True once the whole body has been read from the upstream (and what ends it framed).
    pub(super) fn is_done(&self) -> bool {
        match self {
            BodyOut::Plain(reframer) => reframer.is_done(),
            BodyOut::Gzip(gzip) => gzip.raw.is_done(),
        }
    }

    /// True when the upstream sent bytes past the end of its body.
    pub(super) fn overran(&self) -> bool {
        match self {
            BodyOut::Plain(reframer) => reframer.overran(),
            BodyOut::Gzip(gzip) => gzip.raw.overran(),
        }
    }

    /// Frames a piece read into `buf[Reframer::PREFIX..]`; the client bytes are
    /// `buf[from..]` of the buffer returned.
    pub(super) fn piece(&mut self, mut buf: Buf) -> Result<(Buf, usize), Fail> {
        match self {
            BodyOut::Plain(reframer) => {
                let from = reframer.frame_in_place(&mut buf).map_err(bad_body)?;
                Ok((buf, from))
            }
            BodyOut::Gzip(gzip) => {
                let from = gzip.raw.frame_in_place(&mut buf).map_err(bad_body)?;
                let plain = buf.get(from..).unwrap_or_default();
                let mut out = Buf::with_capacity(plain.len() / 2 + 64);
                gzip.deflate(plain, &mut out)?;
                Ok((out, 0))
            }
        }
    }

    /// The upstream closed: that ends a close-delimited body (what ends it for the client
    /// is appended to `out`); any other body was cut short.
    pub(super) fn close(&mut self, out: &mut Buf) -> Result<(), Fail> {
        match self {
            BodyOut::Plain(reframer) => reframer.finish(out).map_err(|_| Fail::UpstreamTruncated),
            BodyOut::Gzip(gzip) => {
                let mut nothing = Vec::new();
                gzip.raw
                    .finish(&mut nothing)
                    .map_err(|_| Fail::UpstreamTruncated)?;
                gzip.end(out)
            }
        }
    }
}

impl GzipChunks {
    /// Starts compressing a body the upstream framed as `upstream`, with `first`: the body
    /// bytes that came with the head. Returns the bytes to send after the head: when the
    /// whole body came with it (the returned body is then done), its whole gzip stream, to
    /// go with its length; else the first chunks.
    pub(super) fn start(
        upstream: ResponseFraming,
        first: &[u8],
        level: u32,
        flush: bool,
    ) -> Result<(Buf, BodyOut), Fail> {
        let mut raw = Reframer::new(upstream, ClientFraming::UntilClose);
        let mut plain = Buf::with_capacity(first.len());
        raw.frame_into(first, &mut plain).map_err(bad_body)?;
        let mut gzip = Box::new(GzipChunks {
            raw,
            stream: GzipStream::new(level, upstream.length()),
            flush,
        });
        let mut out = Buf::with_capacity(plain.len() / 2 + 64);
        if gzip.raw.is_done() {
            gzip.stream.write(&plain, &mut out, false)?;
            gzip.stream.finish(&mut out)?;
        } else {
            gzip.deflate(&plain, &mut out)?;
        }
        Ok((out, BodyOut::Gzip(gzip)))
    }

    /// Compresses `plain` into a chunk appended to `out` (none when zlib kept it all);
    /// once the body's end is in, the stream's end and the last chunk too.
    fn deflate(&mut self, plain: &[u8], out: &mut Buf) -> Result<(), Fail> {
        let at = out.len();
        out.resize(at + Reframer::PREFIX, 0);
        self.stream.write(plain, out, self.flush)?;
        close_chunk(out, at);
        if self.raw.is_done() {
            self.end(out)?;
        }
        Ok(())
    }

    /// The stream's end in a chunk, and the last chunk.
    fn end(&mut self, out: &mut Buf) -> Result<(), Fail> {
        let at = out.len();
        out.resize(at + Reframer::PREFIX, 0);
        self.stream.finish(out)?;
        close_chunk(out, at);
        out.extend_from_slice(LAST_CHUNK);
        Ok(())
    }
}

/// Writes the chunk-size line into the `Reframer::PREFIX` bytes left at `out[at..]` for the
/// data after them, and the chunk's CRLF; an empty chunk (which would end the body) is
/// taken back out.
fn close_chunk(out: &mut Buf, at: usize) {
    let len = out.len() - at - Reframer::PREFIX;
    if len == 0 {
        out.truncate(at);
        return;
    }
    let mut line = [0u8; Reframer::PREFIX];
    let _ = write!(&mut line[..], "{len:08x}\r\n");
    if let Some(room) = out.get_mut(at..at + Reframer::PREFIX) {
        room.copy_from_slice(&line);
    }
    out.extend_from_slice(b"\r\n");
}

fn bad_body(e: crate::http::HttpError) -> Fail {
    Fail::UpstreamBadResponse(BadResponse::Body(e))
}
