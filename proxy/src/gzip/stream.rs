//! A gzip stream (RFC 1952) made as the body goes: zlib's raw deflate between the 10-byte
//! header nginx writes and the CRC-32 and length trailer.
//!
//! zlib's state for a stream is up to ~300 KiB (the window, the hash chains, the pending
//! output). Made and freed per answer, it cost an allocation of that size, its page faults
//! and its zeroing each time; so each worker thread keeps the states its finished streams
//! leave ([`IDLE`]) and resets one for its next answer with the same level and window.

use std::cell::RefCell;
use std::sync::Arc;

use flate2::{Compress, Compression, FlushCompress, Status};

use super::GzipRatio;
use crate::buffer::Budget;
use crate::fail::Fail;

/// Idle deflate states a worker keeps, at most (one per answer it compresses at once).
const IDLE_KEPT: usize = 4;

thread_local! {
    /// This thread's idle deflate states, with their level and window bits.
    static IDLE: RefCell<Vec<(u32, u8, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's idle deflate states (a worker gone quiet gives its memory back).
pub(crate) fn release_idle() {
    let _ = IDLE.try_with(|idle| idle.borrow_mut().clear());
}

/// A deflate state at `level` with `bits` of window: an idle one of this thread's, reset,
/// or a new one.
fn take_deflate(level: u32, bits: u8) -> Compress {
    let kept = IDLE
        .try_with(|idle| {
            let mut idle = idle.borrow_mut();
            let at = idle
                .iter()
                .position(|(l, b, _)| (*l, *b) == (level, bits))?;
            Some(idle.swap_remove(at).2)
        })
        .ok()
        .flatten();
    match kept {
        Some(mut deflate) => {
            deflate.reset();
            deflate
        }
        None => Compress::new_with_window_bits(Compression::new(level), false, bits),
    }
}

/// The header: no name, no time, "Unix", as nginx's gzip module writes it.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// A gzip member's bytes around its deflate stream: the header, and the trailer (CRC-32
/// and ISIZE).
const FRAMING: u64 = HEADER.len() as u64 + 8;

/// Output room asked for at least, per call into zlib (a flushed event is tens of bytes).
const MIN_ROOM: usize = 64;

/// zlib-rs's hash table and pending output, whatever the window: 64 Ki two-byte heads and
/// 64 KiB.
const STATE_BESIDE_WINDOW: usize = 192 * 1024;

/// One body's compression.
pub(crate) struct GzipStream {
    /// There until the stream ends (or is dropped): then it goes to the thread's idle ones.
    deflate: Option<Compress>,
    level: u32,
    bits: u8,
    crc: crc32fast::Hasher,
    /// Bytes compressed so far (the trailer's ISIZE): a parked stream's states are fresh.
    total_in: u64,
    /// Deflate's bytes so far (the gzip header and trailer not counted), for the ratio.
    total_out: u64,
    /// The trailer is written: the stream takes nothing more.
    finished: bool,
    header_written: bool,
    /// The buffer memory budget zlib's state is charged to (`None`: an unheld stream's),
    /// and what is charged now (0 while the stream has no state: rested, or ended).
    budget: Option<Arc<Budget>>,
    charged: usize,
}

impl Drop for GzipStream {
    fn drop(&mut self) {
        self.retire();
    }
}

impl GzipStream {
    /// A stream at `level` (1 fastest to 9 smallest) for a body of `length` bytes when
    /// known (a short body gets a smaller window, as nginx sizes it), its state charged to
    /// `budget`; `None` when the budget cannot take it (the answer then goes as it is, as a
    /// buffered one goes to a temp file).
    pub(crate) fn new(level: u32, length: Option<u64>, budget: &Arc<Budget>) -> Option<GzipStream> {
        let bits = window_bits(length);
        let bytes = state_bytes(bits);
        if !budget.try_reserve(bytes) {
            return None;
        }
        let mut stream = GzipStream::unheld(level, length);
        stream.deflate = Some(take_deflate(level, bits));
        stream.budget = Some(Arc::clone(budget));
        stream.charged = bytes;
        Some(stream)
    }

    /// A stream that takes a zlib state only while it compresses: its owner calls
    /// [`GzipStream::park`] before anything that may wait long (a client reading slowly),
    /// so a worker holds a state only for the answers it is compressing at that moment,
    /// however many wait on their clients. Not charged to a budget for that reason.
    pub(crate) fn unheld(level: u32, length: Option<u64>) -> GzipStream {
        GzipStream {
            deflate: None,
            level,
            bits: window_bits(length),
            budget: None,
            charged: 0,
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            total_out: 0,
            finished: false,
            header_written: false,
        }
    }

    /// Flushes what zlib holds into `out` (a sync flush: the output so far ends on a byte
    /// boundary, with no block left open) and gives its state back. The next write goes on
    /// with a fresh state: the stream stays one valid deflate stream, but the bytes after
    /// the park cannot refer back to those before (about 2% more output with a park every
    /// 64 KiB of input, on large CSS and JavaScript).
    pub(crate) fn park(&mut self, out: &mut Vec<u8>) -> Result<(), Fail> {
        if self.deflate.is_some() {
            self.run(&[], out, FlushCompress::Sync)?;
            self.retire();
        }
        Ok(())
    }

    /// Gives zlib's state (and its charge) back right after a flushed write, when nothing
    /// is held; the next write takes a fresh state, as after a [`GzipStream::park`].
    pub(crate) fn rest_after_flush(&mut self) {
        self.retire();
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
        self.total_in += input.len() as u64;
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
        out.extend_from_slice(&(self.total_in as u32).to_le_bytes());
        self.finished = true;
        self.retire();
        Ok(())
    }

    /// How much the body shrank, once the stream has ended (nginx's `$gzip_ratio`).
    pub(crate) fn ratio(&self) -> Option<GzipRatio> {
        if self.finished {
            GzipRatio::of(self.total_in, self.total_out + FRAMING)
        } else {
            None
        }
    }

    /// Gives zlib's state back (to this thread's idle ones, its charge to the budget): at
    /// the stream's end (or a park), not when the answer has gone out to a slow client.
    fn retire(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(std::mem::take(&mut self.charged));
        }
        let Some(deflate) = self.deflate.take() else {
            return;
        };
        let _ = IDLE.try_with(|idle| {
            let mut idle = idle.borrow_mut();
            if idle.len() < IDLE_KEPT {
                idle.push((self.level, self.bits, deflate));
            }
        });
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
        if self.finished {
            // A stream used after its end would append stray bytes after the trailer.
            return Err(Fail::Compress);
        }
        if self.deflate.is_none()
            && let Some(budget) = &self.budget
        {
            // A rested stream takes a state again only as the budget allows; meanwhile its
            // pieces go as stored blocks, which need none (the output is byte-aligned after
            // the flush it rested on).
            let bytes = state_bytes(self.bits);
            if !budget.try_reserve(bytes) {
                return Ok(self.stored(input, out, mode));
            }
            self.charged = bytes;
        }
        let (level, bits) = (self.level, self.bits);
        let deflate = self
            .deflate
            .get_or_insert_with(|| take_deflate(level, bits));
        let mut fed = 0;
        let start = out.len();
        loop {
            if out.capacity() - out.len() < MIN_ROOM {
                // Deflate rarely makes more than it takes; half is the usual first guess.
                out.reserve(MIN_ROOM.max((input.len() - fed) / 2));
            }
            let before = deflate.total_in();
            let status = deflate
                .compress_vec(input.get(fed..).unwrap_or_default(), out, mode)
                .map_err(|_| Fail::Compress)?;
            fed += usize::try_from(deflate.total_in() - before).unwrap_or(usize::MAX);
            let all_fed = fed >= input.len();
            let room_left = out.len() < out.capacity();
            if status == Status::StreamEnd || (all_fed && room_left) {
                self.total_out += (out.len() - start) as u64;
                return Ok(status);
            }
        }
    }
}

impl GzipStream {
    /// `input` as stored (uncompressed) deflate blocks, and with `Finish` an empty final one.
    fn stored(&mut self, input: &[u8], out: &mut Vec<u8>, mode: FlushCompress) -> Status {
        let start = out.len();
        for block in input.chunks(usize::from(u16::MAX)) {
            // BFINAL 0, BTYPE 00, then the byte-aligned length and its complement.
            let len = block.len() as u16;
            out.push(0);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        let status = if mode == FlushCompress::Finish {
            out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
            Status::StreamEnd
        } else {
            Status::Ok
        };
        self.total_out += (out.len() - start) as u64;
        status
    }
}

/// What a stream's zlib state takes with a window of `bits`: the window twice (the data
/// and its hash chain links), and the rest.
fn state_bytes(bits: u8) -> usize {
    4 * (1usize << bits) + STATE_BESIDE_WINDOW
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

    fn budget() -> Arc<Budget> {
        Arc::new(Budget::new(64 << 20))
    }

    #[test]
    fn a_stream_is_charged_to_the_budget_while_it_lives() {
        let budget = Arc::new(Budget::new(state_bytes(15) + state_bytes(9)));
        let big = GzipStream::new(1, None, &budget).unwrap();
        let small = GzipStream::new(1, Some(100), &budget).unwrap();
        assert!(GzipStream::new(1, Some(100), &budget).is_none(), "spent");
        drop(big);
        let mut small = small;
        small.finish(&mut Vec::new()).unwrap();
        assert_eq!(budget.used(), 0, "given back at the stream's end");
        drop(small);
        assert_eq!(budget.used(), 0);
        assert!(GzipStream::new(1, None, &budget).is_some());
    }

    /// A streamed answer rests between its flushed pieces: no state, no charge, and still
    /// one gzip stream whose every piece decodes as it comes.
    #[test]
    fn a_stream_resting_between_flushed_pieces_holds_nothing() {
        let budget = budget();
        let mut stream = GzipStream::new(6, None, &budget).unwrap();
        let mut out = Vec::new();
        for event in 0..5 {
            stream
                .write(
                    format!("data: event {event}\n\n").as_bytes(),
                    &mut out,
                    true,
                )
                .unwrap();
            stream.rest_after_flush();
            assert_eq!(budget.used(), 0, "resting, after event {event}");
            assert!(stream.deflate.is_none());
        }
        stream.finish(&mut out).unwrap();
        let expected: String = (0..5).map(|e| format!("data: event {e}\n\n")).collect();
        assert_eq!(gunzip(&out), expected.as_bytes());
    }

    /// A rested stream pays into the budget again when it takes a state back; while the
    /// budget has no room, its pieces go as stored blocks, and it is still one stream.
    #[test]
    fn a_rested_stream_is_charged_again_or_stores() {
        let budget = Arc::new(Budget::new(state_bytes(15)));
        let mut resting = GzipStream::new(6, None, &budget).unwrap();
        let mut out = Vec::new();
        resting.write(b"first ", &mut out, true).unwrap();
        resting.rest_after_flush();
        assert_eq!(budget.used(), 0);
        let mut other = GzipStream::new(6, None, &budget).unwrap();
        resting.write(b"second ", &mut out, true).unwrap();
        assert_eq!(budget.used(), state_bytes(15), "the other's only: stored");
        assert!(resting.deflate.is_none());
        other.finish(&mut Vec::new()).unwrap();
        resting.write(b"third", &mut out, true).unwrap();
        assert_eq!(budget.used(), state_bytes(15), "charged again");
        resting.finish(&mut out).unwrap();
        assert_eq!(budget.used(), 0);
        assert_eq!(gunzip(&out), b"first second third");
        // Stored to the very end, too.
        let mut resting = GzipStream::new(6, None, &budget).unwrap();
        let mut out = Vec::new();
        resting.write(b"first ", &mut out, true).unwrap();
        resting.rest_after_flush();
        let _other = GzipStream::new(6, None, &budget).unwrap();
        resting.write(&vec![b'x'; 70_000], &mut out, true).unwrap();
        resting.finish(&mut out).unwrap();
        let mut want = b"first ".to_vec();
        want.extend(vec![b'x'; 70_000]);
        assert_eq!(gunzip(&out), want);
    }

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
                let mut stream = GzipStream::new(level, None, &budget()).unwrap();
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

    /// Parked between pieces, a stream holds no zlib state and is still one gzip stream
    /// of the whole body, at every level and piece size, with parks anywhere.
    #[test]
    fn a_parked_stream_holds_no_state_and_stays_one_stream() {
        let body: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for level in [2, 9] {
            for piece in [999, 65_536, body.len()] {
                let mut stream = GzipStream::unheld(level, Some(body.len() as u64));
                assert!(stream.deflate.is_none(), "no state before it compresses");
                let mut out = Vec::new();
                for (i, part) in body.chunks(piece).enumerate() {
                    stream.write(part, &mut out, false).unwrap();
                    if i % 3 != 1 {
                        stream.park(&mut out).unwrap();
                        assert!(stream.deflate.is_none(), "parked: the state given back");
                    }
                }
                stream.finish(&mut out).unwrap();
                assert_eq!(gunzip(&out), body, "level {level}, pieces of {piece}");
            }
        }
        // Nothing written since the last park: the stream's end alone.
        let mut stream = GzipStream::unheld(2, None);
        let mut out = Vec::new();
        stream.write(b"abc", &mut out, false).unwrap();
        stream.park(&mut out).unwrap();
        stream.park(&mut out).unwrap();
        stream.finish(&mut out).unwrap();
        assert_eq!(gunzip(&out), b"abc");
        // After its end, a stream takes nothing more.
        assert!(stream.write(b"x", &mut out, false).is_err());
        assert!(stream.finish(&mut out).is_err());
        assert_eq!(gunzip(&out), b"abc", "nothing appended");
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
            let mut stream = GzipStream::new(1, Some(len as u64), &budget()).unwrap();
            let mut out = Vec::new();
            stream.write(&body, &mut out, false).unwrap();
            stream.finish(&mut out).unwrap();
            assert_eq!(gunzip(&out), body, "{len}");
        }
    }

    #[test]
    fn a_state_a_finished_stream_left_serves_the_next_one() {
        release_idle();
        let mut outs = Vec::new();
        for body in [&b"first answer, first answer"[..], b"second", b""] {
            let mut stream = GzipStream::new(1, None, &budget()).unwrap();
            let mut out = Vec::new();
            stream.write(body, &mut out, false).unwrap();
            stream.finish(&mut out).unwrap();
            assert_eq!(gunzip(&out), body);
            outs.push(out);
        }
        assert_eq!(
            IDLE.with(|idle| idle.borrow().len()),
            1,
            "one state, reused"
        );
        let streams: Vec<GzipStream> = (0..IDLE_KEPT + 2)
            .map(|_| GzipStream::new(1, None, &budget()).unwrap())
            .collect();
        drop(streams);
        assert_eq!(IDLE.with(|idle| idle.borrow().len()), IDLE_KEPT, "bounded");
        release_idle();
        assert_eq!(IDLE.with(|idle| idle.borrow().len()), 0);
    }

    #[test]
    fn an_empty_body_is_a_valid_stream() {
        let mut stream = GzipStream::new(1, None, &budget()).unwrap();
        let mut out = Vec::new();
        stream.finish(&mut out).unwrap();
        assert_eq!(gunzip(&out), b"");
    }

    #[test]
    fn a_flushed_piece_decodes_before_the_end() {
        let mut stream = GzipStream::new(1, None, &budget()).unwrap();
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
