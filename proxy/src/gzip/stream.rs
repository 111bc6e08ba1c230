//! A gzip stream (RFC 1952) made as the body goes: zlib's raw deflate between the 10-byte
//! header nginx writes and the CRC-32 and length trailer.

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::fail::Fail;

/// The header: no name, no time, "Unix", as nginx's gzip module writes it.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// Output room asked for at least, per call into zlib.
const MIN_ROOM: usize = 4096;

/// One body's compression.
pub(crate) struct GzipStream {
    deflate: Compress,
    crc: crc32fast::Hasher,
    header_written: bool,
}

impl GzipStream {
    /// A stream at `level` (1 fastest to 9 smallest) for a body of `length` bytes when
    /// known: a short body gets a smaller window, as nginx sizes it (zlib's memory for a
    /// stream is mostly the window: 256 KiB at full size).
    pub(crate) fn new(level: u32, length: Option<u64>) -> GzipStream {
        GzipStream {
            deflate: Compress::new_with_window_bits(
                Compression::new(level),
                false,
                window_bits(length),
            ),
            crc: crc32fast::Hasher::new(),
            header_written: false,
        }
    }

    /// Compresses `input`, appending what zlib gives back to `out`. With `flush`, all of
    /// it is in `out` on return (a sync flush: the client can decode it at once, for an
    /// answer the app streams with `X-Accel-Buffering: no`); otherwise zlib keeps what does
    /// not yet fill a block.
    pub(crate) fn write(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        flush: bool,
    ) -> Result<(), Fail> {
        self.header(out);
        self.crc.update(input);
        let mode = if flush {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        self.run(input, out, mode).map(drop)
    }

    /// Ends the stream: what zlib still holds, then the trailer.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Fail> {
        self.header(out);
        while self.run(&[], out, FlushCompress::Finish)? != Status::StreamEnd {}
        let crc = self.crc.clone().finalize();
        out.extend_from_slice(&crc.to_le_bytes());
        // ISIZE: the input's length modulo 2^32 (RFC 1952).
        out.extend_from_slice(&(self.deflate.total_in() as u32).to_le_bytes());
        Ok(())
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(&HEADER);
            self.header_written = true;
        }
    }

    /// Feeds all of `input` to zlib in `mode`, growing `out` as it fills; returns once
    /// zlib stopped with room to spare in `out` (so it holds nothing it could give now).
    fn run(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        mode: FlushCompress,
    ) -> Result<Status, Fail> {
        let mut fed = 0;
        loop {
            if out.capacity() - out.len() < MIN_ROOM {
                out.reserve(MIN_ROOM.max((input.len() - fed) / 2));
            }
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input.get(fed..).unwrap_or_default(), out, mode)
                .map_err(|_| Fail::Compress)?;
            fed += usize::try_from(self.deflate.total_in() - before).unwrap_or(usize::MAX);
            let all_fed = fed >= input.len();
            let room_left = out.len() < out.capacity();
            if status == Status::StreamEnd || (all_fed && room_left) {
                return Ok(status);
            }
        }
    }
}

/// zlib's window for a body of `length` bytes: the full 32 KiB (15 bits) unless the body
/// fits a smaller one, down to 512 bytes (9 bits): nginx's rule (`ngx_http_gzip_filter`).
fn window_bits(length: Option<u64>) -> u8 {
    let mut bits = 15u8;
    if let Some(len) = length.filter(|&n| n > 0) {
        while bits > 9 && len < (1u64 << (bits - 1)) - 262 {
            bits -= 1;
        }
    }
    bits
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut plain)
            .unwrap();
        plain
    }

    #[test]
    fn a_body_in_pieces_is_one_gzip_stream() {
        let body: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for level in [1, 6, 9] {
            for piece in [1, 100, 65_536, body.len()] {
                let mut stream = GzipStream::new(level, None);
                let mut out = Vec::new();
                for part in body.chunks(piece) {
                    stream.write(part, &mut out, false).unwrap();
                }
                stream.finish(&mut out).unwrap();
                assert_eq!(gunzip(&out), body, "level {level}, pieces of {piece}");
                assert_eq!(out[..10], HEADER);
            }
        }
    }

    #[test]
    fn a_short_body_gets_a_small_window_and_still_decodes() {
        assert_eq!(window_bits(None), 15);
        assert_eq!(window_bits(Some(0)), 15);
        assert_eq!(window_bits(Some(100)), 9);
        assert_eq!(window_bits(Some(5000)), 13);
        assert_eq!(window_bits(Some(16_384 - 262)), 15);
        assert_eq!(window_bits(Some(16_383 - 262)), 14);
        assert_eq!(window_bits(Some(1 << 20)), 15);
        for len in [1usize, 300, 5000, 40_000] {
            let body: Vec<u8> = (0..len).map(|i| (i % 7) as u8 + b'a').collect();
            let mut stream = GzipStream::new(1, Some(len as u64));
            let mut out = Vec::new();
            stream.write(&body, &mut out, false).unwrap();
            stream.finish(&mut out).unwrap();
            assert_eq!(gunzip(&out), body, "{len}");
        }
    }

    #[test]
    fn an_empty_body_is_a_valid_stream() {
        let mut stream = GzipStream::new(1, None);
        let mut out = Vec::new();
        stream.finish(&mut out).unwrap();
        assert_eq!(gunzip(&out), b"");
    }

    #[test]
    fn a_flushed_piece_decodes_before_the_end() {
        let mut stream = GzipStream::new(1, None);
        let mut out = Vec::new();
        stream
            .write(b"data: first event\n\n", &mut out, true)
            .unwrap();
        // A decoder given what was sent so far gets the whole piece (the stream is open).
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        std::io::Write::write_all(&mut decoder, &out).unwrap();
        std::io::Write::flush(&mut decoder).unwrap();
        assert_eq!(decoder.get_ref().as_slice(), b"data: first event\n\n");
    }
}
