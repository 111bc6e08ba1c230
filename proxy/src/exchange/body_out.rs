//! The app's answer body on its way to the client: re-framed as it came, or compressed
//! (`[gzip]`): the upstream's framing undone, the bytes deflated into one gzip stream, sent
//! with its length when the whole body came with the head, else in chunks.

use std::sync::Arc;

use crate::buffer::{Budget, Buf};
use crate::fail::{BadResponse, Fail};
use crate::gzip::{GzipRatio, GzipStream};
use crate::http::{ClientFraming, LAST_CHUNK, Reframer, ResponseFraming, write_chunk_size};

/// How the rest of a body goes out.
pub(super) enum BodyOut {
    /// As the app sent it, in the client's framing.
    Plain(Reframer),
    /// Compressed (boxed: a plain answer's future does not carry zlib's handle).
    Gzip(Box<GzipBody>),
}

/// A body being compressed.
pub(super) struct GzipBody {
    /// The upstream's framing in, plain body bytes out.
    raw: Reframer,
    stream: GzipStream,
    /// The app asked for its pace (`X-Accel-Buffering: no`): each piece is flushed to the
    /// client as it comes, not kept by zlib until a block fills.
    flush: bool,
}

/// A compressed body's start: the bytes to send after the head, and how they are framed.
pub(super) struct GzipStart {
    /// The whole gzip stream (`Length`), or its first chunks (`Chunked`).
    pub(super) bytes: Buf,
    pub(super) framing: ClientFraming,
    pub(super) body: BodyOut,
}

impl BodyOut {
    /// True once the whole body has been read from the upstream (and what ends it framed).
    pub(super) fn is_done(&self) -> bool {
        match self {
            BodyOut::Plain(reframer) => reframer.is_done(),
            BodyOut::Gzip(gzip) => gzip.raw.is_done(),
        }
    }

    /// How much the body shrank, once compressed whole.
    pub(super) fn gzip_ratio(&self) -> Option<GzipRatio> {
        match self {
            BodyOut::Plain(_) => None,
            BodyOut::Gzip(gzip) => gzip.stream.ratio(),
        }
    }

    /// Whether the body is compressed, so that what zlib holds goes out, and its state is
    /// given back, a second after it came ([`BodyOut::rest`]).
    pub(super) fn compresses(&self) -> bool {
        matches!(self, BodyOut::Gzip(_))
    }

    /// Gives a compression's zlib state, and its charge to the memory budget, back until
    /// the app's next piece: an event stream or a slow export may live for hours, and 320 KiB
    /// each of the shared budget would stop compression and memory buffering for everyone
    /// (found by review: 205 of them spent the default 64 MiB; then again for answers not
    /// streamed with `X-Accel-Buffering: no`). A streamed answer's was flushed with its
    /// last piece; another's is flushed into `out` in a chunk first (such an answer is
    /// chunked: its body did not come with its head).
    pub(super) fn rest(&mut self, out: &mut Buf) -> Result<(), Fail> {
        match self {
            BodyOut::Gzip(gzip) if gzip.flush => gzip.stream.rest_after_flush(),
            BodyOut::Gzip(gzip) => park_chunk(&mut gzip.stream, out)?,
            BodyOut::Plain(_) => {}
        }
        Ok(())
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
                let mut out = Buf::with_capacity(Reframer::PREFIX + plain.len() / 2 + 64);
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

impl GzipBody {
    /// Starts compressing a body the upstream framed as `upstream` for an HTTP/1.1 client
    /// (the verdict asks for one: chunks are the only framing of a body whose compressed
    /// length is not known yet), with `first`: the body bytes that came with the head.
    /// `None` when the memory budget cannot take zlib's state: the answer goes as it is.
    pub(super) fn start(
        upstream: ResponseFraming,
        first: &[u8],
        level: u32,
        flush: bool,
        budget: &Arc<Budget>,
    ) -> Result<Option<GzipStart>, Fail> {
        let Some(stream) = GzipStream::new(level, upstream.length(), budget) else {
            return Ok(None);
        };
        let mut raw = Reframer::new(upstream, ClientFraming::UntilClose);
        let mut plain = Buf::with_capacity(first.len());
        raw.frame_into(first, &mut plain).map_err(bad_body)?;
        let mut gzip = Box::new(GzipBody { raw, stream, flush });
        let mut bytes = Buf::with_capacity(Reframer::PREFIX + plain.len() / 2 + 64);
        let framing = if gzip.raw.is_done() {
            gzip.stream.write(&plain, &mut bytes, false)?;
            gzip.stream.finish(&mut bytes)?;
            ClientFraming::Length(bytes.len() as u64)
        } else {
            gzip.deflate(&plain, &mut bytes)?;
            ClientFraming::Chunked
        };
        Ok(Some(GzipStart {
            bytes,
            framing,
            body: BodyOut::Gzip(gzip),
        }))
    }

    /// Compresses `plain` into a chunk appended to `out` (none when zlib kept it all);
    /// once the body's end is in, the stream's end and the last chunk too.
    fn deflate(&mut self, plain: &[u8], out: &mut Buf) -> Result<(), Fail> {
        deflate_chunk(&mut self.stream, plain, out, self.flush)?;
        if self.raw.is_done() {
            self.end(out)?;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Buf) -> Result<(), Fail> {
        end_chunks(&mut self.stream, out)
    }
}

/// Compresses `plain` into a chunk appended to `out` (none when zlib kept it all; `flush`:
/// zlib keeps nothing back).
pub(super) fn deflate_chunk(
    stream: &mut GzipStream,
    plain: &[u8],
    out: &mut Buf,
    flush: bool,
) -> Result<(), Fail> {
    let at = out.len();
    out.resize(at + Reframer::PREFIX, 0);
    stream.write(plain, out, flush)?;
    close_chunk(out, at);
    Ok(())
}

/// What zlib holds, in a chunk, and its state given back ([`GzipStream::park`]): before
/// the client is waited on.
pub(super) fn park_chunk(stream: &mut GzipStream, out: &mut Buf) -> Result<(), Fail> {
    let at = out.len();
    out.resize(at + Reframer::PREFIX, 0);
    stream.park(out)?;
    close_chunk(out, at);
    Ok(())
}

/// The stream's end in a chunk, and the last chunk.
pub(super) fn end_chunks(stream: &mut GzipStream, out: &mut Buf) -> Result<(), Fail> {
    let at = out.len();
    out.resize(at + Reframer::PREFIX, 0);
    stream.finish(out)?;
    close_chunk(out, at);
    out.extend_from_slice(LAST_CHUNK);
    Ok(())
}

/// Completes the chunk whose data follows the `Reframer::PREFIX` bytes of room at
/// `out[at..]`: its size line and CRLF; an empty chunk (which would end the body) is taken
/// back out.
fn close_chunk(out: &mut Buf, at: usize) {
    let len = out.len() - at - Reframer::PREFIX;
    if len == 0 {
        out.truncate(at);
        return;
    }
    write_chunk_size(out, at, len);
    out.extend_from_slice(b"\r\n");
}

fn bad_body(e: crate::http::HttpError) -> Fail {
    Fail::UpstreamBadResponse(BadResponse::Body(e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use std::io::Read;

    use super::*;

    /// The client's bytes of a chunked body, de-chunked.
    fn dechunk(mut wire: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = wire.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&wire[..line_end]).unwrap(), 16).unwrap();
            wire = &wire[line_end + 2..];
            if size == 0 {
                assert_eq!(wire, b"\r\n", "the body ends with the last chunk");
                return body;
            }
            body.extend_from_slice(&wire[..size]);
            assert_eq!(&wire[size..size + 2], b"\r\n");
            wire = &wire[size + 2..];
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut plain)
            .unwrap();
        plain
    }

    /// An upstream body in every framing, cut into pieces at every kind of place, comes
    /// out as one chunked gzip stream of the same bytes.
    #[test]
    fn a_compressed_body_in_any_pieces_is_one_chunked_gzip_stream() {
        let body: Vec<u8> = (0..12_000u32).map(|i| (i % 251) as u8).collect();
        let mut chunked = Vec::new();
        for piece in body.chunks(5_001) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let budget = Arc::new(Budget::new(64 << 20));
        let cases = [
            (ResponseFraming::Chunked, chunked.clone()),
            (ResponseFraming::Length(body.len() as u64), body.clone()),
            (ResponseFraming::UntilClose, body.clone()),
        ];
        for (framing, wire) in cases {
            for first_len in [0, 1, 5, 100, 5_005, 20_000] {
                for piece_len in [1, 4, 999, 5_003, 65_536] {
                    for flush in [false, true] {
                        let first_len = first_len.min(wire.len());
                        let (first, rest) = wire.split_at(first_len);
                        let start = GzipBody::start(framing, first, 2, flush, &budget)
                            .unwrap()
                            .unwrap();
                        let mut out = start.bytes.to_vec();
                        let mut body_out = start.body;
                        if start.framing == ClientFraming::Chunked {
                            for piece in rest.chunks(piece_len) {
                                if body_out.is_done() {
                                    break;
                                }
                                let mut buf = Buf::with_capacity(Reframer::PREFIX + piece.len());
                                buf.resize(Reframer::PREFIX, 0);
                                buf.extend_from_slice(piece);
                                let (buf, from) = body_out.piece(buf).unwrap();
                                out.extend_from_slice(&buf[from..]);
                            }
                            if !body_out.is_done() {
                                let mut tail = Buf::with_capacity(64);
                                body_out.close(&mut tail).unwrap();
                                out.extend_from_slice(&tail);
                            }
                            out = dechunk(&out);
                        }
                        let what = format!("{framing:?} first {first_len} pieces {piece_len}");
                        assert_eq!(gunzip(&out), body, "{what}");
                        assert!(!body_out.overran(), "{what}");
                    }
                }
            }
        }
    }
}
