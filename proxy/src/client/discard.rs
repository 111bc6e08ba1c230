//! Reading and dropping a request body that its answer did not need (a refusal, a file from
//! disk, a redirect), so that the connection serves the client's next request, as nginx's
//! discarded body keeps it. Read as a next request instead, the body would smuggle one in;
//! closing instead costs the client a new connection (and a TLS handshake) per refusal.

use std::time::Instant;

use super::Client;
use super::close::{LINGER_READ, linger_bounds};
use crate::buffer::Buf;
use crate::http::{BodyFraming, ChunkedDecoder, RequestHead};
use crate::io::read_some_by;

/// Whether an answer that leaves the body of the request `head` unread may keep the
/// connection, its body dropped after the answer: a declared length within what a drain
/// takes at most (a chunked body's end is learnt only by reading it; one that runs longer
/// ends the connection). Not a body the client holds back for a `100 Continue` it will not
/// get: told the final answer, it may leave it unsent, and its next request would be taken
/// for that body, so the answer says `Connection: close` (as Go's server does; nginx keeps
/// the connection and reads on).
pub(crate) fn may_discard(head: &RequestHead) -> bool {
    match head.body {
        BodyFraming::None | BodyFraming::Length(0) => true,
        _ if head.expect_continue => false,
        BodyFraming::Chunked => true,
        BodyFraming::Length(n) => n <= linger_bounds(false).bytes as u64,
    }
}

impl Client {
    /// Reads and drops a body of `framing` the answer left unread, starting with its bytes
    /// in `rest`, within a drain's bounds (nginx's `lingering_time` and
    /// `lingering_timeout`). True if the body ended: `rest` then holds what follows it
    /// (a pipelined next request). False if the client went quiet, closed, sent a
    /// malformed chunk or more than the bounds allow: the connection is to close.
    pub(crate) async fn discard_body(&self, framing: BodyFraming, rest: &mut Buf) -> bool {
        let bounds = linger_bounds(false);
        let deadline = Instant::now() + bounds.time;
        let mut body = match framing {
            BodyFraming::None => return true,
            BodyFraming::Length(n) => Unread::Length(n),
            BodyFraming::Chunked => Unread::Chunked(ChunkedDecoder::new()),
        };
        let mut dropped = 0;
        loop {
            let Some(taken) = body.drop_from(rest) else {
                return false;
            };
            dropped += taken;
            if body.ended() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if dropped > bounds.bytes || left.is_zero() {
                return false;
            }
            let mut buf = std::mem::replace(rest, Buf::empty());
            buf.clear();
            let read = read_some_by(
                &self.stream,
                buf,
                LINGER_READ,
                left.min(bounds.idle),
                Some(deadline),
            );
            match read.await {
                Ok((n, filled)) if n > 0 => *rest = filled,
                Ok(_) | Err(_) => return false,
            }
        }
    }
}

/// What is left of a body being dropped.
enum Unread {
    /// This many bytes.
    Length(u64),
    /// Chunks up to the last one and its trailer.
    Chunked(ChunkedDecoder),
}

impl Unread {
    /// Drops the body's bytes at the start of `input`, leaving what follows the body there.
    /// How many were dropped; `None` if they are no valid chunked body.
    fn drop_from(&mut self, input: &mut Buf) -> Option<usize> {
        let taken = match self {
            Unread::Length(left) => {
                let taken = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= taken as u64;
                taken
            }
            Unread::Chunked(decoder) => decoder.decode_in_place(input).ok()?.1.consumed,
        };
        input.drain(..taken);
        Some(taken)
    }

    fn ended(&self) -> bool {
        match self {
            Unread::Length(left) => *left == 0,
            Unread::Chunked(decoder) => decoder.is_done(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Unread;
    use crate::buffer::Buf;
    use crate::http::ChunkedDecoder;

    #[test]
    fn a_length_is_dropped_and_what_follows_stays() {
        let mut body = Unread::Length(5);
        let mut input = Buf::copy_of(b"abc");
        assert_eq!(body.drop_from(&mut input), Some(3));
        assert!(!body.ended());
        let mut input = Buf::copy_of(b"deGET / HTTP/1.1\r\n");
        assert_eq!(body.drop_from(&mut input), Some(2));
        assert!(body.ended());
        assert_eq!(&input[..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn chunks_are_dropped_to_their_end_in_pieces() {
        let mut body = Unread::Chunked(ChunkedDecoder::new());
        let mut input = Buf::copy_of(b"3\r\nab");
        assert_eq!(body.drop_from(&mut input), Some(5));
        assert!(!body.ended() && input.is_empty());
        let mut input = Buf::copy_of(b"c\r\n0\r\n\r\nGET /next");
        assert_eq!(body.drop_from(&mut input), Some(8));
        assert!(body.ended());
        assert_eq!(&input[..], b"GET /next");
    }

    #[test]
    fn a_malformed_chunk_is_no_body_to_drop() {
        let mut body = Unread::Chunked(ChunkedDecoder::new());
        let mut input = Buf::copy_of(b"zz\r\n");
        assert_eq!(body.drop_from(&mut input), None);
    }
}
