//! Chunked transfer-coding decoder (RFC 9112 §7.1), incremental and allocation-free.
//!
//! The decoder owns only the chunked syntax: it copies chunk data to the caller's buffer and
//! stops right after the body, so pipelined bytes stay with the caller. It does not enforce
//! the body size limit: the driver watches `out.len()` and answers 413 itself.
//!
//! Line endings: the chunk-size line and trailer lines may end in CRLF or a bare LF (as
//! httparse and nginx accept for head lines); the CRLF after a request's chunk data is
//! required exactly, since a missing one means the size and the data disagree (an answer's
//! may be a bare LF, as nginx takes it from an upstream: ringway frames the body anew). A
//! chunk size has at most 16 hex digits (leading zeros count) and at most 2^63 - 1 (nginx's
//! `off_t`); extensions, and any whitespace after a size, are skipped but may not exceed
//! [`MAX_EXTENSIONS`] bytes in the whole body of a request, or in one size line of an
//! answer; a request's trailers [`MAX_TRAILERS`] (an answer's are skipped, bare CR aside,
//! as nginx skips them).

use super::validate::MAX_LENGTH;
use super::{HttpError, hex_digit};

/// Most bytes of chunk extensions (and whitespace after chunk sizes) skipped over one
/// request's body: they are never used, and a bound stops a client from streaming them
/// forever, as they add nothing to the body its size limit watches. An answer's body has
/// no size limit to dodge (a server may stream for ever anyway): the bound is per size line
/// there, and a long stream whose chunks carry extensions is relayed whole, as by nginx.
pub const MAX_EXTENSIONS: usize = 4096;
/// Most bytes of trailer section read and dropped over one request's body. An answer's
/// trailers are skipped without a bound or a check of their bytes (a bare CR aside), as
/// nginx skips them: a long or odd trailer line cut an answer whose whole body had been
/// relayed (found by review, twice).
pub const MAX_TRAILERS: usize = 8192;
const MAX_SIZE_DIGITS: u8 = 16;

/// What one call to [`ChunkedDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeProgress {
    /// Input bytes consumed.
    pub consumed: usize,
    /// True once the last chunk and the trailer section have been consumed.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` so far.
    #[default]
    Size,
    /// Whitespace after the size: only more whitespace, `;` or the line end may follow.
    SizeSpace,
    /// Skipping `;ext` up to the line end.
    Extension,
    /// Saw CR at the end of the size line.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Saw CR inside or at the end of a trailer line.
    TrailerLf {
        /// The CR ended an empty line: the LF ends the body.
        last: bool,
    },
    /// Body complete.
    Done,
}

/// Decodes a chunked body fed in arbitrary pieces. Chunk extensions are skipped, trailers are
/// read and dropped.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: State,
    /// Size being read, then data bytes still to copy.
    remaining: u64,
    digits: u8,
    extension_bytes: usize,
    /// An upstream's answer: the extension bound counts per line, not over the body, its
    /// trailers are skipped unchecked (but for a bare CR, as nginx refuses it too), and a
    /// bare LF may end a chunk's data.
    answer: bool,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a request's body.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder at the start of an answer's body (from an upstream).
    pub fn for_answer() -> Self {
        ChunkedDecoder {
            answer: true,
            ..Self::default()
        }
    }

    /// The current chunk's data bytes still to come, as far as its size line has told
    /// (while the size is read, what its digits so far say: never more than it will be).
    /// With the data decoded so far, what the body will at least hold.
    pub fn announced(&self) -> u64 {
        match self.state {
            State::Size | State::SizeSpace | State::Extension | State::SizeLf | State::Data => {
                self.remaining
            }
            _ => 0,
        }
    }

    /// Whether the body's end (its last chunk and trailer) has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending body data to `out`. Stops at the end of the body (the
    /// rest of `input` is the next message) or when input runs out.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<DecodeProgress, HttpError> {
        let start = out.len();
        out.extend_from_slice(input);
        let decoded = self.decode_in_place(out.get_mut(start..).unwrap_or_default());
        let (produced, progress) = match decoded {
            Ok(ok) => ok,
            Err(err) => {
                out.truncate(start);
                return Err(err);
            }
        };
        out.truncate(start + produced);
        Ok(progress)
    }

    /// Decodes the body bytes in `buf` where they are: the data is moved to the front of
    /// `buf` (decoded data never outgrows the encoded bytes it came from). Returns how many
    /// bytes of data are now at `buf[..n]`, and what was consumed; bytes after the end of the
    /// body are left untouched past the consumed count.
    pub fn decode_in_place(
        &mut self,
        buf: &mut [u8],
    ) -> Result<(usize, DecodeProgress), HttpError> {
        let mut pos = 0;
        let mut produced = 0;
        while pos < buf.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - pos);
                buf.copy_within(pos..pos + take, produced);
                pos += take;
                produced += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = buf.get(pos).copied().unwrap_or_default();
            pos += 1;
            self.step(b)?;
        }
        let progress = DecodeProgress {
            consumed: pos,
            done: self.state == State::Done,
        };
        Ok((produced, progress))
    }

    /// One byte of framing (everything but chunk data).
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        self.state = match self.state {
            State::Size => match hex_digit(b) {
                Some(v) => {
                    if self.digits == MAX_SIZE_DIGITS {
                        return Err(HttpError::BadSyntax);
                    }
                    self.digits += 1;
                    self.remaining = (self.remaining << 4) | u64::from(v);
                    if self.remaining > MAX_LENGTH {
                        return Err(HttpError::BadSyntax);
                    }
                    State::Size
                }
                None if self.digits == 0 => return Err(HttpError::BadSyntax),
                None => self.after_size(b)?,
            },
            State::SizeSpace => self.after_size(b)?,
            State::Extension => match b {
                b'\r' => State::SizeLf,
                b'\n' => self.size_line_done(),
                b'\t' | b' '..=0x7e | 0x80..=0xff => {
                    self.skip_extension_byte()?;
                    State::Extension
                }
                _ => return Err(HttpError::BadSyntax),
            },
            State::SizeLf => match b {
                b'\n' => self.size_line_done(),
                _ => return Err(HttpError::BareCr),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                b'\n' if self.answer => self.start_size(),
                _ => return Err(HttpError::BadSyntax),
            },
            State::DataLf => match b {
                b'\n' => self.start_size(),
                _ => return Err(HttpError::BadSyntax),
            },
            State::TrailerStart => match b {
                b'\r' => State::TrailerLf { last: true },
                b'\n' => State::Done,
                _ => self.trailer_byte(b)?,
            },
            State::Trailer => match b {
                b'\r' => State::TrailerLf { last: false },
                b'\n' => self.next_trailer(),
                _ => self.trailer_byte(b)?,
            },
            State::TrailerLf { last } => match (b, last) {
                (b'\n', true) => State::Done,
                (b'\n', false) => self.next_trailer(),
                _ => return Err(HttpError::BareCr),
            },
            // Handled by the caller; listed so the match stays total.
            State::Data | State::Done => self.state,
        };
        Ok(())
    }

    /// A byte after at least one size digit that is not a digit.
    fn after_size(&mut self, b: u8) -> Result<State, HttpError> {
        Ok(match b {
            b' ' | b'\t' => {
                self.skip_extension_byte()?;
                State::SizeSpace
            }
            b';' => {
                self.skip_extension_byte()?;
                State::Extension
            }
            b'\r' => State::SizeLf,
            b'\n' => self.size_line_done(),
            _ => return Err(HttpError::BadSyntax),
        })
    }

    /// Counts one skipped byte of a size line against [`MAX_EXTENSIONS`].
    fn skip_extension_byte(&mut self) -> Result<(), HttpError> {
        self.extension_bytes += 1;
        if self.extension_bytes > MAX_EXTENSIONS {
            return Err(HttpError::BadSyntax);
        }
        Ok(())
    }

    fn size_line_done(&mut self) -> State {
        if self.remaining == 0 {
            State::TrailerStart
        } else {
            State::Data
        }
    }

    fn start_size(&mut self) -> State {
        self.remaining = 0;
        self.digits = 0;
        if self.answer {
            self.extension_bytes = 0;
        }
        State::Size
    }

    fn next_trailer(&mut self) -> State {
        State::TrailerStart
    }

    fn trailer_byte(&mut self, b: u8) -> Result<State, HttpError> {
        if self.answer {
            return Ok(State::Trailer);
        }
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILERS || !(b == b'\t' || b >= b' ') || b == 0x7f {
            return Err(HttpError::BadSyntax);
        }
        Ok(State::Trailer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
