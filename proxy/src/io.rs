//! Timed socket I/O over tokio-uring, done the one safe way; used by the client side
//! (`conn`) and the upstream side (`upstream`) alike.
//!
//! Dropping a tokio-uring op does not cancel it: the kernel keeps the buffer and the fd until
//! the op completes (docs/ARCHITECTURE.md, "Cancellation"). So every timeout here ends with a
//! `shutdown` of the socket, which completes the orphaned op at once and lets the fd and
//! buffer go; the caller must then give the connection up. A buffer lent to an op that timed
//! out goes back to its pool when that op completes.

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::time::Duration;

use tokio::time::Instant;
use tokio_uring::BufResult;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::{TcpStream, UnixStream};

use crate::buffer::Buf;

/// Why an I/O step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IoError {
    /// No progress within the allowed time; the socket has been shut down.
    #[error("timed out")]
    Timeout,
    /// The socket failed.
    #[error("socket error: {0}")]
    Failed(io::ErrorKind),
}

/// What a non-blocking one-byte peek at a connected socket found ([`peek`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peeked {
    /// Bytes are waiting (left in place).
    Bytes,
    /// None yet: the peer is quiet.
    Nothing,
    /// The peer closed its side.
    Closed,
    /// The socket failed.
    Failed,
}

/// Looks, without waiting and without consuming, at whether the peer of socket `fd` sent
/// bytes or closed: one `recv(MSG_PEEK | MSG_DONTWAIT)`.
pub(crate) fn peek(fd: std::os::fd::RawFd) -> Peeked {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open socket of the caller's; recv writes at most one byte into
    // `byte`; MSG_DONTWAIT keeps the call from blocking, MSG_PEEK leaves the data in place.
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Peeked::Closed,
        n if n > 0 => Peeked::Bytes,
        _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => Peeked::Nothing,
        _ => Peeked::Failed,
    }
}

/// When a write last moved some bytes with more still to go: lets [`write_all`] restart its
/// timer on progress, so that its limit is a limit between two writes that move bytes
/// (nginx's `send_timeout`), not on the whole piece. A write that goes out in one op (the
/// common case) never touches it.
#[derive(Debug, Default)]
pub(crate) struct Progress(Cell<Option<Instant>>);

impl Progress {
    /// Notes that bytes moved just now.
    pub(crate) fn made(&self) {
        self.0.set(Some(Instant::now()));
    }

    fn last(&self) -> Option<Instant> {
        self.0.get()
    }
}

/// A byte stream: the client's TCP socket (plain or TLS) or an upstream's.
pub(crate) trait Stream {
    /// Reads at most `max` bytes, appending them to `buf`, which has room for them.
    fn read_append(&self, buf: Buf, max: usize) -> impl Future<Output = BufResult<usize, Buf>>;
    /// Writes all of `buf[from..]`, noting in `progress` each op that moved bytes while more
    /// remained.
    fn write_from(
        &self,
        buf: Buf,
        from: usize,
        progress: &Progress,
    ) -> impl Future<Output = BufResult<(), Buf>>;
    /// Shuts the socket down, completing any op in flight on it.
    fn shutdown(&self, how: Shutdown);
}

macro_rules! impl_stream {
    ($ty:ty) => {
        impl Stream for $ty {
            async fn read_append(&self, buf: Buf, max: usize) -> BufResult<usize, Buf> {
                let len = buf.len();
                let (res, window) = self.read(buf.slice(len..len + max)).await;
                (res, window.into_inner())
            }

            async fn write_from(
                &self,
                mut buf: Buf,
                mut from: usize,
                progress: &Progress,
            ) -> BufResult<(), Buf> {
                // tokio-uring's write_all, with the progress noted between ops.
                let end = buf.len();
                while from < end {
                    let (res, slice) = self.write(buf.slice(from..end)).submit().await;
                    buf = slice.into_inner();
                    match res {
                        Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                        Ok(n) => {
                            from += n;
                            if from < end {
                                progress.made();
                            }
                        }
                        Err(e) => return (Err(e), buf),
                    }
                }
                (Ok(()), buf)
            }

            fn shutdown(&self, how: Shutdown) {
                // The socket may already be gone on the peer's side; nothing to do then.
                let _ = <$ty>::shutdown(self, how);
            }
        }
    };
}

impl_stream!(TcpStream);
impl_stream!(UnixStream);

/// A stream that counts the bytes that went through it: one place for the client's byte
/// counts instead of one at every read and write.
pub(crate) struct Counted<S> {
    inner: S,
    read: Cell<u64>,
    written: Cell<u64>,
}

impl<S> Counted<S> {
    /// Wraps `inner` with zeroed counts.
    pub(crate) fn new(inner: S) -> Self {
        Counted {
            inner,
            read: Cell::new(0),
            written: Cell::new(0),
        }
    }

    /// Bytes read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read.get()
    }

    /// Bytes written so far.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.written.get()
    }

    /// Counts bytes read around the stream (a non-blocking `recv`).
    pub(crate) fn add_read(&self, n: u64) {
        self.read.set(self.read.get() + n);
    }

    /// Counts bytes written around the stream (sendfile).
    pub(crate) fn add_written(&self, n: u64) {
        self.written.set(self.written.get() + n);
    }

    /// The wrapped stream.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Stream> Stream for Counted<S> {
    async fn read_append(&self, buf: Buf, max: usize) -> BufResult<usize, Buf> {
        let (res, buf) = self.inner.read_append(buf, max).await;
        if let Ok(n) = res {
            self.read.set(self.read.get() + n as u64);
        }
        (res, buf)
    }

    async fn write_from(&self, buf: Buf, from: usize, progress: &Progress) -> BufResult<(), Buf> {
        let len = buf.len().saturating_sub(from) as u64;
        let (res, buf) = self.inner.write_from(buf, from, progress).await;
        if res.is_ok() {
            self.written.set(self.written.get() + len);
        }
        (res, buf)
    }

    fn shutdown(&self, how: Shutdown) {
        self.inner.shutdown(how);
    }
}

/// Reads once, appending at most `max` bytes to `buf` (growing it as needed), within
/// `limit`. `Ok((0, buf))` is end of stream.
///
/// On timeout the socket is shut down for reading only: that completes the orphaned read,
/// and still lets the caller send an answer (408) before closing.
pub(crate) async fn read_some<S: Stream>(
    stream: &S,
    mut buf: Buf,
    max: usize,
    limit: Duration,
) -> Result<(usize, Buf), IoError> {
    let max = max.max(1);
    if buf.capacity() - buf.len() < max {
        buf.reserve(max);
    }
    // Never offer the kernel more than `max` bytes: a body read must not swallow the next
    // pipelined request, and a full buffer would return 0 and look like EOF.
    match tokio::time::timeout(limit, stream.read_append(buf, max)).await {
        Ok((Ok(n), buf)) => Ok((n, buf)),
        Ok((Err(e), _)) => Err(IoError::Failed(e.kind())),
        Err(_) => {
            stream.shutdown(Shutdown::Read);
            Err(IoError::Timeout)
        }
    }
}

/// Writes `buf[from..]` and returns the buffer, giving up when `limit` passes without the
/// peer taking a byte: the timer restarts whenever a write op moved some (nginx's
/// `send_timeout`: "between two successive write operations"), so a slow reader that keeps
/// reading is never cut off in the middle of a large piece.
pub(crate) async fn write_all<S: Stream>(
    stream: &S,
    buf: Buf,
    from: usize,
    limit: Duration,
) -> Result<Buf, IoError> {
    write_all_or_back(stream, buf, from, limit)
        .await
        .map_err(|(err, _)| err)
}

/// [`write_all`], giving the buffer back on failure too, unless the write timed out (its op
/// may still hold the buffer then).
pub(crate) async fn write_all_or_back<S: Stream>(
    stream: &S,
    buf: Buf,
    from: usize,
    limit: Duration,
) -> Result<Buf, (IoError, Option<Buf>)> {
    if from >= buf.len() {
        return Ok(buf);
    }
    let progress = Progress::default();
    let mut write = std::pin::pin!(stream.write_from(buf, from, &progress));
    let mut deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, write.as_mut()).await {
            Ok((Ok(()), buf)) => return Ok(buf),
            Ok((Err(e), buf)) => return Err((IoError::Failed(e.kind()), Some(buf))),
            Err(_) => match progress.last() {
                Some(moved) if moved + limit > deadline => deadline = moved + limit,
                _ => {
                    stream.shutdown(Shutdown::Both);
                    return Err((IoError::Timeout, None));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixStream as StdUnixStream;
    use std::time::Instant as StdInstant;

    use super::*;

    const PIECE: usize = 2 << 20;

    /// A socket pair: the uring end to write, the std end for a reader thread.
    fn pair() -> (UnixStream, StdUnixStream) {
        let (ours, theirs) = StdUnixStream::pair().unwrap();
        (UnixStream::from_std(ours), theirs)
    }

    fn piece() -> Buf {
        let mut buf = Buf::with_capacity(PIECE);
        buf.resize(PIECE, 7);
        buf
    }

    #[test]
    fn the_limit_is_between_two_writes_not_on_the_whole_piece() {
        // The reader takes 16 KiB every 20 ms: the 2 MiB piece needs far longer than the
        // limit, but no gap between two writes comes near it.
        let limit = Duration::from_secs(1);
        tokio_uring::start(async {
            let (ours, mut theirs) = pair();
            let reader = std::thread::spawn(move || {
                let mut chunk = vec![0; 16 * 1024];
                let mut total = 0;
                while total < PIECE {
                    std::thread::sleep(Duration::from_millis(20));
                    total += theirs.read(&mut chunk).unwrap();
                }
                total
            });
            let start = StdInstant::now();
            let written = write_all(&ours, piece(), 0, limit).await;
            assert!(written.is_ok(), "{:?}", written.err());
            assert!(
                start.elapsed() > limit,
                "the reader was slower than the limit"
            );
            assert_eq!(reader.join().unwrap(), PIECE);
        });
    }

    #[test]
    fn a_reader_that_stops_is_dropped_after_the_limit() {
        tokio_uring::start(async {
            let (ours, mut theirs) = pair();
            let mut chunk = vec![0; 16 * 1024];
            let (written, ()) = tokio::join!(
                write_all(&ours, piece(), 0, Duration::from_millis(300)),
                async {
                    // Take a little, then nothing more.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    theirs.read_exact(&mut chunk).unwrap();
                }
            );
            assert_eq!(written.err(), Some(IoError::Timeout));
        });
    }
}
