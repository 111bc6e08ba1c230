//! Ending a client connection the right way for how its last request ended.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::{Client, ClientStream};
use crate::buffer::Buf;
use crate::io::{Stream, read_some_by};

/// After an error answer, how long unread request bytes are drained at most before closing,
/// so the kernel does not reset the connection (and destroy the answer) over unread data:
/// nginx's `lingering_time`. A browser still uploading a body refused with 413 finishes
/// sending, and then reads the 413 rather than a reset.
const LINGER: Duration = Duration::from_secs(30);
/// How long a lingering connection may send nothing before it is closed (nginx's
/// `lingering_timeout` is 5 s; 2 s here, as a client that has stopped sending has read its
/// answer or never will).
const LINGER_IDLE: Duration = Duration::from_secs(2);
/// Most bytes drained while lingering.
const LINGER_BYTES: usize = 64 * 1024 * 1024;
/// After the 503 of a connection over a connection limit: a short drain only. Such a
/// connection is not counted against the limits (it was refused), so a full linger would let
/// one client hold thousands of sockets by trickling bytes (found by review).
const REFUSED_LINGER: Duration = LINGER_IDLE;
const REFUSED_LINGER_BYTES: usize = 64 * 1024;
/// Read size while draining.
pub(super) const LINGER_READ: usize = 8 * 1024;

/// What a connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The response was complete and the connection may serve another request.
    KeepAlive,
    /// Close after this response (client asked, framing requires it, or shutting down).
    Close,
    /// An error answer was sent with unread input maybe left: drain, then close.
    Linger,
    /// The 503 of a connection over a connection limit was sent, or a body no answer
    /// needed outlasted the drain's bounds: close, after draining for [`REFUSED_LINGER`] at
    /// most if the client's bytes are waiting.
    LingerBriefly,
    /// The connection is unusable (I/O failure or a response cut short): drop it now.
    Abort,
}

impl Next {
    /// What follows one of ringway's own answers, `sent` whole or not, that promised
    /// `keep_alive`: an unread request body is drained before the close.
    pub(crate) fn after_own_answer(sent: bool, keep_alive: bool) -> Next {
        match (sent, keep_alive) {
            (false, _) => Next::Abort,
            (true, true) => Next::KeepAlive,
            (true, false) => Next::Linger,
        }
    }
}

impl Client {
    /// Ends the connection as `next` says (`KeepAlive` here means the server is stopping).
    /// With `reset_timed_out` (nginx's `reset_timedout_connection`), a connection whose
    /// read or write ran out of time is reset instead: no TLS close_notify or drain is owed
    /// to it.
    pub(crate) async fn finish(&mut self, next: Next, reset_timed_out: bool) {
        if reset_timed_out && self.stream.timed_out() {
            self.reset();
            return;
        }
        if next != Next::Abort {
            self.stream.get_ref().close_notify().await;
        }
        match next {
            // Closing with unread input makes the kernel send a reset, which can destroy the
            // end of our last response in flight: drain first, like nginx's lingering_close.
            Next::KeepAlive | Next::Close if self.has_unread_input() => {
                self.linger(Lingering::Full).await;
            }
            Next::KeepAlive | Next::Close => Stream::shutdown(&self.stream, Shutdown::Write),
            Next::Linger => self.linger(Lingering::Full).await,
            Next::LingerBriefly if self.has_unread_input() => self.linger(Lingering::Brief).await,
            Next::LingerBriefly => Stream::shutdown(&self.stream, Shutdown::Write),
            Next::Abort => Stream::shutdown(&self.stream, Shutdown::Both),
        }
        self.finished = true;
    }

    /// Closes the connection with a reset: the kernel frees at once what it still holds for
    /// a client that stopped reading, instead of keeping the socket to send it. Only the
    /// reading side is shut down first (completing a read still in flight): a FIN sent
    /// now would reach the client before the reset and look like a clean end.
    fn reset(&mut self) {
        self.stream.get_ref().reset_on_close();
        Stream::shutdown(&self.stream, Shutdown::Read);
        self.finished = true;
    }

    /// True if the client sent bytes ringway has not consumed (buffered here, in the TLS
    /// session, or in the kernel's receive queue).
    fn has_unread_input(&self) -> bool {
        if !self.input.is_empty() {
            return true;
        }
        let fd = match self.stream.get_ref() {
            ClientStream::Bridged(pipe) => return pipe.has_unread(),
            // Read from the socket already, it is in no kernel queue (found by review: a
            // pipelined request there went unseen, and the close skipped its linger).
            ClientStream::Tls(tls) if tls.has_buffered() => return true,
            stream => match stream.socket() {
                Some(fd) => fd,
                None => return false,
            },
        };
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the valid pointer; the fd is open while
        // `self.stream` lives.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut pending) };
        rc == 0 && pending > 0
    }

    /// Half-closes, then reads and discards what the client still sends (bounded in time and
    /// bytes), so our answer is not lost to a reset.
    async fn linger(&mut self, lingering: Lingering) {
        let buf = std::mem::replace(&mut self.input, Buf::empty());
        linger_within(&self.stream, buf, lingering).await;
    }
}

/// How long a lingering close may last.
#[derive(Debug, Clone, Copy)]
enum Lingering {
    /// nginx's `lingering_time`: [`LINGER`], [`LINGER_BYTES`].
    Full,
    /// After the 503 of a connection refused by a connection limit: [`REFUSED_LINGER`],
    /// [`REFUSED_LINGER_BYTES`].
    Brief,
}

impl Lingering {
    fn bounds(self) -> LingerBounds {
        let (time, bytes) = match self {
            Lingering::Full => (LINGER, LINGER_BYTES),
            Lingering::Brief => (REFUSED_LINGER, REFUSED_LINGER_BYTES),
        };
        LingerBounds {
            time,
            idle: LINGER_IDLE,
            bytes,
        }
    }
}

/// How long, how quiet and how much a drain of unread request bytes may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LingerBounds {
    /// Longest drain in all.
    pub(crate) time: Duration,
    /// Longest silence.
    pub(crate) idle: Duration,
    /// Most bytes dropped.
    pub(crate) bytes: usize,
}

/// The bounds of a drain after an answer (an HTTP/2 stream's rest of body too): short for a
/// connection a limit `refused`, which no limit counts.
pub(crate) fn linger_bounds(refused: bool) -> LingerBounds {
    if refused {
        Lingering::Brief.bounds()
    } else {
        Lingering::Full.bounds()
    }
}

/// Half-closes `stream`, then reads and discards what the peer still sends (bounded in time,
/// in silence and in bytes) into `buf`, then closes: an answer just written is not lost to
/// a reset over unread bytes.
async fn linger_within<S: Stream>(stream: &S, mut buf: Buf, lingering: Lingering) {
    let LingerBounds { time, idle, bytes } = lingering.bounds();
    Stream::shutdown(stream, Shutdown::Write);
    let deadline = Instant::now() + time;
    let mut drained = 0;
    if buf.capacity() < LINGER_READ {
        buf = Buf::with_capacity(LINGER_READ);
    }
    while drained < bytes {
        buf.clear();
        let left = deadline.saturating_duration_since(Instant::now());
        match read_some_by(stream, buf, LINGER_READ, left.min(idle), Some(deadline)).await {
            Ok((n, b)) if n > 0 => {
                drained += n;
                buf = b;
            }
            Ok(_) | Err(_) => return Stream::shutdown(stream, Shutdown::Both),
        }
    }
    Stream::shutdown(stream, Shutdown::Both);
}
