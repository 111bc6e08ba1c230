//! Re-framing a response body for the client: the upstream's framing (length, chunked, or
//! until close) in, the framing chosen for the client out.
//!
//! The choice is [`ClientFraming::choose`]: a length is kept; a body without one goes chunked
//! to an HTTP/1.1 client and close-delimited to an HTTP/1.0 one. [`Reframer`] then turns each
//! piece of upstream body into client bytes, in place where it can: a piece read into a
//! buffer after [`Reframer::PREFIX`] bytes of room gets its chunk-size line written into that
//! room, so relaying a body costs no copy.

use std::io::Write;

use super::{ChunkedDecoder, ClientFraming, HttpError, LAST_CHUNK, ResponseFraming, Version};

impl ClientFraming {
    /// How to frame a body that the upstream framed as `upstream` for a client speaking
    /// `client`, and whether the connection can then stay open (`keep_alive`: whether it
    /// could otherwise).
    pub fn choose(upstream: ResponseFraming, client: Version, keep_alive: bool) -> (Self, bool) {
        match upstream {
            ResponseFraming::None => (ClientFraming::None, keep_alive),
            ResponseFraming::Length(n) => (ClientFraming::Length(n), keep_alive),
            ResponseFraming::Chunked | ResponseFraming::UntilClose => match client {
                Version::Http11 => (ClientFraming::Chunked, keep_alive),
                Version::Http10 => (ClientFraming::UntilClose, false),
            },
        }
    }
}

/// The upstream ended a body it had not finished (short of its length, or mid-chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream closed before the end of the body")]
pub struct Truncated;

/// Turns upstream body bytes into client body bytes.
#[derive(Debug)]
pub struct Reframer {
    source: Source,
    chunked_out: bool,
    done: bool,
    /// Bytes came after the end of the body: the connection is out of step with its
    /// framing, and must not carry another request.
    overran: bool,
}

#[derive(Debug)]
enum Source {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl Reframer {
    /// Room to leave in front of a piece given to [`Reframer::frame_in_place`]: a chunk-size
    /// line of fixed width (`%08x\r\n`; leading zeros are legal in chunk-size).
    pub const PREFIX: usize = 10;

    /// A reframer for a body the upstream framed as `upstream`, sent to the client as
    /// `client` (from [`ClientFraming::choose`]).
    pub fn new(upstream: ResponseFraming, client: ClientFraming) -> Reframer {
        let (source, done) = match upstream {
            ResponseFraming::None => (Source::Length(0), true),
            ResponseFraming::Length(n) => (Source::Length(n), n == 0),
            ResponseFraming::Chunked => (Source::Chunked(ChunkedDecoder::for_answer()), false),
            ResponseFraming::UntilClose => (Source::UntilClose, false),
        };
        Reframer {
            source,
            chunked_out: client == ClientFraming::Chunked,
            done,
            overran: false,
        }
    }

    /// True once the whole body has been framed: nothing more is to be read upstream.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// True when the upstream sent bytes past the end of its body (they were dropped).
    pub fn overran(&self) -> bool {
        self.overran
    }

    /// Frames the piece at `buf[PREFIX..]` where it is. Returns the offset in `buf` where
    /// the client bytes start; they end at `buf.len()`. Bytes the upstream sent past the end
    /// of its body are dropped.
    pub fn frame_in_place(&mut self, buf: &mut Vec<u8>) -> Result<usize, HttpError> {
        self.frame_at(buf, 0)
    }

    /// Frames `piece` (body bytes that came with the head), appending the client bytes to
    /// `out`.
    pub fn frame_into(&mut self, piece: &[u8], out: &mut Vec<u8>) -> Result<(), HttpError> {
        let at = out.len();
        out.resize(at + Self::PREFIX, 0);
        out.extend_from_slice(piece);
        let start = self.frame_at(out, at)?;
        out.drain(at..start);
        Ok(())
    }

    /// Whether the upstream's body ends only when it closes.
    pub fn ends_at_close(&self) -> bool {
        matches!(self.source, Source::UntilClose)
    }

    /// Whether each piece gets bytes around it for the client (chunk-size lines), so that
    /// it must come with room in front ([`Reframer::frame_into`]).
    pub fn wraps_pieces(&self) -> bool {
        self.chunked_out
    }

    /// Frames body bytes appended to `buf` behind its first `at` bytes, where they are; the
    /// bytes in front are not touched. For a client that gets chunks
    /// ([`Reframer::wraps_pieces`]), the bytes start at `at + PREFIX`: the room in front of
    /// them takes their chunk-size line (and goes again if nothing was framed). Otherwise
    /// they start at `at`, behind at least [`Reframer::PREFIX`] bytes.
    pub fn frame_appended(&mut self, buf: &mut Vec<u8>, at: usize) -> Result<(), HttpError> {
        if self.chunked_out {
            let start = self.frame_at(buf, at)?;
            buf.drain(at..start);
            return Ok(());
        }
        debug_assert!(at >= Self::PREFIX);
        self.frame_at(buf, at.saturating_sub(Self::PREFIX))
            .map(drop)
    }

    /// The upstream closed. That ends a close-delimited body (the last chunk is appended to
    /// `out` for a chunked client); any other unfinished body was truncated.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Truncated> {
        if self.done {
            return Ok(());
        }
        match self.source {
            Source::UntilClose => {
                if self.chunked_out {
                    out.extend_from_slice(LAST_CHUNK);
                }
                self.done = true;
                Ok(())
            }
            Source::Length(_) | Source::Chunked(_) => Err(Truncated),
        }
    }

    /// Frames `buf[at + PREFIX..]`, using `buf[at..at + PREFIX]` as room for a chunk-size
    /// line; returns where the client bytes start.
    fn frame_at(&mut self, buf: &mut Vec<u8>, at: usize) -> Result<usize, HttpError> {
        let data = at + Self::PREFIX;
        if self.done {
            self.overran |= buf.len() > data;
            buf.truncate(data);
            return Ok(data);
        }
        let len = match &mut self.source {
            Source::Length(left) => {
                let len = buf
                    .len()
                    .saturating_sub(data)
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= len as u64;
                self.done = *left == 0;
                self.overran |= buf.len() > data + len;
                // A length-framed body keeps its length: nothing to add around it.
                buf.truncate(data + len);
                return Ok(data);
            }
            Source::UntilClose => buf.len().saturating_sub(data),
            Source::Chunked(decoder) => {
                let (len, progress) =
                    decoder.decode_in_place(buf.get_mut(data..).unwrap_or_default())?;
                self.done = progress.done;
                self.overran |= progress.consumed < buf.len().saturating_sub(data);
                len
            }
        };
        buf.truncate(data + len);
        if !self.chunked_out {
            return Ok(data);
        }
        let mut start = data;
        if len > 0 {
            write_chunk_size(buf, at, len);
            buf.extend_from_slice(b"\r\n");
            start = at;
        }
        if self.done {
            buf.extend_from_slice(LAST_CHUNK);
        }
        Ok(start)
    }
}

/// Writes the chunk-size line of a chunk of `len` bytes into the [`Reframer::PREFIX`]
/// bytes of room at `buf[at..]`. A piece is at most a read's size, far below the 4 GiB the
/// fixed width can say.
pub fn write_chunk_size(buf: &mut [u8], at: usize, len: usize) {
    debug_assert!(len <= u32::MAX as usize, "a chunk of {len} bytes");
    let mut line = [0u8; Reframer::PREFIX];
    let _ = write!(&mut line[..], "{len:08x}\r\n");
    if let Some(room) = buf.get_mut(at..at + Reframer::PREFIX) {
        room.copy_from_slice(&line);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn bytes_past_the_end_of_the_body_are_noted() {
        let frame = |upstream, pieces: &[&[u8]]| {
            let mut r = Reframer::new(upstream, ClientFraming::Chunked);
            let mut out = Vec::new();
            for piece in pieces {
                r.frame_into(piece, &mut out).unwrap();
            }
            (r.is_done(), r.overran())
        };
        let length = ResponseFraming::Length(2);
        assert_eq!(frame(length, &[b"o", b"k"]), (true, false));
        assert_eq!(frame(length, &[b"ok!"]), (true, true));
        assert_eq!(frame(length, &[b"ok", b"!"]), (true, true));
        let chunked = ResponseFraming::Chunked;
        assert_eq!(frame(chunked, &[b"2\r\nok\r\n0\r\n\r\n"]), (true, false));
        assert_eq!(frame(chunked, &[b"2\r\nok\r\n0\r\n\r\nHTTP"]), (true, true));
        assert_eq!(frame(ResponseFraming::None, &[b""]), (true, false));
        assert_eq!(frame(ResponseFraming::None, &[b"x"]), (true, true));
    }

    #[test]
    fn client_framing_table() {
        use ClientFraming as C;
        use ResponseFraming as R;
        use Version::{Http10, Http11};
        let table = [
            (R::None, Http11, true, C::None, true),
            (R::None, Http10, true, C::None, true),
            (R::Length(5), Http11, true, C::Length(5), true),
            (R::Length(5), Http10, false, C::Length(5), false),
            (R::Chunked, Http11, true, C::Chunked, true),
            (R::Chunked, Http10, true, C::UntilClose, false),
            (R::UntilClose, Http11, true, C::Chunked, true),
            (R::UntilClose, Http11, false, C::Chunked, false),
            (R::UntilClose, Http10, true, C::UntilClose, false),
        ];
        for (upstream, version, keep, want, want_keep) in table {
            assert_eq!(
                ClientFraming::choose(upstream, version, keep),
                (want, want_keep),
                "{upstream:?} {version:?} keep-alive {keep}"
            );
        }
    }

    /// Frames `pieces` one read at a time, as the relay does, then the upstream's close.
    fn relay(upstream: ResponseFraming, client: ClientFraming, pieces: &[&[u8]]) -> Vec<u8> {
        let mut r = Reframer::new(upstream, client);
        let mut out = Vec::new();
        for piece in pieces {
            let mut buf = vec![0xAA; Reframer::PREFIX];
            buf.extend_from_slice(piece);
            let start = r.frame_in_place(&mut buf).unwrap();
            out.extend_from_slice(&buf[start..]);
        }
        r.finish(&mut out).unwrap();
        out
    }

    /// Upstream framing, client framing, the reads, what the client gets.
    type Case = (
        ResponseFraming,
        ClientFraming,
        &'static [&'static [u8]],
        &'static [u8],
    );

    #[test]
    fn in_place_table() {
        use ClientFraming as C;
        use ResponseFraming as R;
        let cases: [Case; 8] = [
            (R::Length(5), C::Length(5), &[b"hel", b"lo"], b"hello"),
            (R::Length(5), C::Length(5), &[b"hello, extra"], b"hello"),
            (R::Length(0), C::Length(0), &[b"junk"], b""),
            (R::UntilClose, C::UntilClose, &[b"ab", b"c"], b"abc"),
            (
                R::UntilClose,
                C::Chunked,
                &[b"ab", b"", b"cde"],
                b"00000002\r\nab\r\n00000003\r\ncde\r\n0\r\n\r\n",
            ),
            (
                R::Chunked,
                C::Chunked,
                &[b"3\r\nab", b"c\r\n0\r\n\r\n"],
                b"00000002\r\nab\r\n00000001\r\nc\r\n0\r\n\r\n",
            ),
            (
                R::Chunked,
                C::UntilClose,
                &[b"3\r\nabc\r\n0\r\n", b"\r\n"],
                b"abc",
            ),
            (R::None, C::None, &[b"x"], b""),
        ];
        for (upstream, client, pieces, want) in cases {
            assert_eq!(
                String::from_utf8_lossy(&relay(upstream, client, pieces)),
                String::from_utf8_lossy(want),
                "{upstream:?} -> {client:?}, {pieces:?}"
            );
        }
    }

    #[test]
    fn frame_appended_frames_in_place_and_leaves_what_is_in_front() {
        let mut r = Reframer::new(ResponseFraming::Length(6), ClientFraming::Length(6));
        assert!(!r.wraps_pieces());
        let mut out = b"HEAD\r\n\r\n".to_vec();
        r.frame_into(b"ab", &mut out).unwrap();
        out.extend_from_slice(b"cdefXX");
        r.frame_appended(&mut out, 10).unwrap();
        assert_eq!(out, b"HEAD\r\n\r\nabcdef");
        assert!(r.is_done() && r.overran());

        let mut r = Reframer::new(ResponseFraming::Chunked, ClientFraming::UntilClose);
        let mut out = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        out.extend_from_slice(b"3\r\nabc\r\n0\r\n\r\n");
        r.frame_appended(&mut out, 19).unwrap();
        assert_eq!(out, b"HTTP/1.0 200 OK\r\n\r\nabc");
        assert!(r.is_done() && !r.overran());

        // A chunked client: the room left in front of the bytes takes their size line.
        let mut r = Reframer::new(ResponseFraming::UntilClose, ClientFraming::Chunked);
        assert!(r.wraps_pieces());
        let mut out = b"HEAD\r\n\r\n".to_vec();
        r.frame_into(b"ab", &mut out).unwrap();
        let at = out.len();
        out.resize(at + Reframer::PREFIX, 0);
        out.extend_from_slice(b"cdef");
        r.frame_appended(&mut out, at).unwrap();
        assert_eq!(out, b"HEAD\r\n\r\n00000002\r\nab\r\n00000004\r\ncdef\r\n");

        // Chunks in, chunks out, the body's end among the appended bytes.
        let mut r = Reframer::new(ResponseFraming::Chunked, ClientFraming::Chunked);
        let mut out = b"H".to_vec();
        r.frame_into(b"2\r\nab\r\n", &mut out).unwrap();
        let at = out.len();
        out.resize(at + Reframer::PREFIX, 0);
        out.extend_from_slice(b"1\r\nc\r\n0\r\n\r\n");
        r.frame_appended(&mut out, at).unwrap();
        assert_eq!(out, b"H00000002\r\nab\r\n00000001\r\nc\r\n0\r\n\r\n");
        assert!(r.is_done() && !r.overran());

        // Only framing came (a chunk's size line, no data yet): the room goes again.
        let mut r = Reframer::new(ResponseFraming::Chunked, ClientFraming::Chunked);
        let mut out = b"H".to_vec();
        let at = out.len();
        out.resize(at + Reframer::PREFIX, 0);
        out.extend_from_slice(b"5\r\n");
        r.frame_appended(&mut out, at).unwrap();
        assert_eq!(out, b"H");
        assert!(!r.is_done());
    }

    #[test]
    fn frame_into_appends_after_what_is_there() {
        let mut r = Reframer::new(ResponseFraming::UntilClose, ClientFraming::Chunked);
        let mut out = b"HEAD\r\n\r\n".to_vec();
        r.frame_into(b"hi", &mut out).unwrap();
        assert_eq!(out, b"HEAD\r\n\r\n00000002\r\nhi\r\n");
        let mut r = Reframer::new(ResponseFraming::Length(2), ClientFraming::Length(2));
        let mut out = b"H".to_vec();
        r.frame_into(b"hiya", &mut out).unwrap();
        assert_eq!(out, b"Hhi");
        assert!(r.is_done());
    }

    #[test]
    fn done_when_the_body_ends_and_truncation_is_detected() {
        let mut r = Reframer::new(ResponseFraming::Length(4), ClientFraming::Length(4));
        let mut out = Vec::new();
        r.frame_into(b"ab", &mut out).unwrap();
        assert!(!r.is_done());
        assert_eq!(r.finish(&mut out), Err(Truncated));

        let mut r = Reframer::new(ResponseFraming::Chunked, ClientFraming::Chunked);
        r.frame_into(b"5\r\nab", &mut out).unwrap();
        assert_eq!(r.finish(&mut out), Err(Truncated));

        let mut r = Reframer::new(ResponseFraming::Chunked, ClientFraming::Chunked);
        let mut out = Vec::new();
        r.frame_into(b"0\r\n\r\n", &mut out).unwrap();
        assert!(r.is_done());
        assert_eq!(out, LAST_CHUNK);
    }

    #[test]
    fn bad_chunked_upstream_body_is_an_error() {
        let mut r = Reframer::new(ResponseFraming::Chunked, ClientFraming::Chunked);
        let mut buf = vec![0; Reframer::PREFIX];
        buf.extend_from_slice(b"zz\r\n");
        assert_eq!(r.frame_in_place(&mut buf), Err(HttpError::BadSyntax));
    }

    #[test]
    fn every_split_of_a_chunked_body_gives_the_same_bytes() {
        let body: &[u8] = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: 1\r\n\r\n";
        for cut in 0..=body.len() {
            let out = relay(
                ResponseFraming::Chunked,
                ClientFraming::UntilClose,
                &[&body[..cut], &body[cut..]],
            );
            assert_eq!(out, b"Wikipedia", "cut at {cut}");
        }
    }
}
