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
use std::os::fd::{AsRawFd, RawFd};
use std::task::Poll;
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

/// `recv(2)`, made as the system call itself. glibc's `recv` and `send` are thread
/// cancellation points: they enable and then disable asynchronous cancellation around every
/// call, which came to about 1.5% of a worker's CPU serving 1 KiB files (in `perf`), and
/// ringway never cancels a thread. Every argument goes as the `long` the variadic
/// `syscall` reads. Returns what the call does: the byte count, or -1 with errno set.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes.
pub(crate) unsafe fn sys_recv(fd: RawFd, buf: *mut u8, len: usize, flags: libc::c_int) -> isize {
    // SAFETY: the caller's promise on `buf`; no source address is asked for.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            libc::c_long::from(fd),
            buf,
            len,
            libc::c_long::from(flags),
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    n as isize
}

/// `send(2)`, made as the system call itself (see [`sys_recv`]).
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes.
pub(crate) unsafe fn sys_send(fd: RawFd, buf: *const u8, len: usize, flags: libc::c_int) -> isize {
    let no_address: libc::c_long = 0;
    // SAFETY: the caller's promise on `buf`; no destination address is given.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            libc::c_long::from(fd),
            buf,
            len,
            libc::c_long::from(flags),
            std::ptr::null::<libc::sockaddr>(),
            no_address,
        )
    };
    n as isize
}

/// Looks, without waiting and without consuming, at whether the peer of socket `fd` sent
/// bytes or closed: one `recv(MSG_PEEK | MSG_DONTWAIT)`.
pub(crate) fn peek(fd: RawFd) -> Peeked {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open socket of the caller's; recv writes at most one byte into
    // `byte`; MSG_DONTWAIT keeps the call from blocking, MSG_PEEK leaves the data in place.
    let n = unsafe { sys_recv(fd, &raw mut byte, 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
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
    /// Reads what is waiting, without waiting: at most `max` bytes appended to `buf` (which
    /// has room for them), `Some(Ok(0))` at end of stream, `None` when nothing waits or the
    /// stream cannot read that way (TLS: records are opened first). Only while no read op is
    /// in flight on the stream.
    fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
        let _ = (buf, max);
        None
    }
    /// Writes what the socket takes at once, without waiting: the bytes that went, 0 when
    /// its send buffer is full or the stream cannot write that way (TLS: records are sealed
    /// first). Only while no write op is in flight on the stream, or bytes would reorder.
    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        let _ = bytes;
        Ok(0)
    }
    /// Shuts the socket down, completing any op in flight on it.
    fn shutdown(&self, how: Shutdown);
    /// Ends this side's writing, the reading side left open: a half-close (a TLS session
    /// first says close_notify, so that its peer can tell the end from a cut). Only while
    /// no write is in flight on the stream.
    fn finish_writing(&self) -> impl Future<Output = ()> {
        self.shutdown(Shutdown::Write);
        std::future::ready(())
    }
    /// Shuts the socket down because a step on it ran out of time (a client's stream notes
    /// it: `reset_timedout_connection`).
    fn time_out(&self, how: Shutdown) {
        self.shutdown(how);
    }
    /// When bytes last came off the socket, for a stream whose reads wait for more than one
    /// socket read may bring (TLS: a record comes in pieces, and only a whole one opens):
    /// a read waiting on the rest has not idled since then.
    fn last_arrival(&self) -> Option<Instant> {
        None
    }
}

/// One `recv(MSG_DONTWAIT)` on socket `fd` into `buf`'s spare room (at most `max` bytes):
/// `None` when nothing waits.
fn recv_now(fd: RawFd, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
    let len = buf.len();
    let room = max.min(buf.capacity() - len);
    // SAFETY: the pointer and length name the vector's spare capacity, which recv writes at
    // most `room` bytes of; MSG_DONTWAIT keeps it from blocking.
    let n = unsafe { sys_recv(fd, buf.as_mut_ptr().add(len), room, libc::MSG_DONTWAIT) };
    match usize::try_from(n) {
        Ok(n) => {
            // SAFETY: recv initialised the `n` bytes after `len`, within the capacity.
            unsafe { buf.set_len(len + n) };
            Some(Ok(n))
        }
        Err(_) => match io::Error::last_os_error() {
            e if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
            {
                None
            }
            e => Some(Err(e)),
        },
    }
}

/// What a send made without waiting returned: the bytes it took, 0 when the socket's buffer
/// was full (or a signal came first), or its error (errno, read at once).
fn sent_now(n: isize) -> io::Result<usize> {
    if let Ok(n) = usize::try_from(n) {
        return Ok(n);
    }
    let err = io::Error::last_os_error();
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(err),
    }
}

/// One `send(MSG_DONTWAIT)` on socket `fd`: the bytes it took, 0 when its buffer is full.
fn send_now(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `fd` is an open socket of the caller's; send reads at most `bytes.len()`
    // bytes from `bytes`; MSG_DONTWAIT keeps it from blocking, MSG_NOSIGNAL turns a closed
    // peer into EPIPE instead of a signal.
    let n = unsafe {
        sys_send(
            fd,
            bytes.as_ptr(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    sent_now(n)
}

/// One `sendmsg(MSG_DONTWAIT)` of `pieces` on socket `fd`, in order: the bytes it took, 0
/// when its buffer is full. Pieces go from where they are, with no copy into one buffer
/// first (a TLS session's sealed records).
pub(crate) fn send_vectored_now(fd: RawFd, pieces: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no address, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix; sendmsg only reads through it.
    msg.msg_iov = pieces.as_ptr().cast_mut().cast::<libc::iovec>();
    msg.msg_iovlen = pieces.len().min(libc::UIO_MAXIOV as usize);
    // SAFETY: `fd` is an open socket of the caller's; `msg` names `msg_iovlen` valid slices
    // that outlive the call; made as the system call itself (see [`sys_recv`]).
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            libc::c_long::from(fd),
            &raw const msg,
            libc::c_long::from(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL),
        )
    };
    sent_now(n as isize)
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

            fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
                recv_now(self.as_raw_fd(), buf, max)
            }

            fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
                send_now(self.as_raw_fd(), bytes)
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

/// Bytes read and written on a stream, added where each read or write comes back.
#[derive(Default)]
pub(crate) struct ByteCounts {
    read: Cell<u64>,
    written: Cell<u64>,
}

impl ByteCounts {
    /// Bytes read so far.
    pub(crate) fn read(&self) -> u64 {
        self.read.get()
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.get()
    }

    /// Counts what a read returned, when it succeeded.
    pub(crate) fn add_read(&self, n: usize) {
        self.read.set(self.read.get().saturating_add(n as u64));
    }

    /// Counts `n` bytes written.
    pub(crate) fn add_written(&self, n: u64) {
        self.written.set(self.written.get().saturating_add(n));
    }
}

/// A stream that counts the bytes that went through it: one place for the client's byte
/// counts instead of one at every read and write.
pub(crate) struct Counted<S> {
    inner: S,
    counts: ByteCounts,
    /// A read or write on it ran out of time.
    timed_out: Cell<bool>,
}

impl<S> Counted<S> {
    /// Wraps `inner` with zeroed counts.
    pub(crate) fn new(inner: S) -> Self {
        Counted {
            inner,
            counts: ByteCounts::default(),
            timed_out: Cell::new(false),
        }
    }

    /// Whether a read or write on it ran out of time.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.get()
    }

    /// Bytes read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.counts.read()
    }

    /// Bytes written so far.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.counts.written()
    }

    /// Counts bytes written around the stream (sendfile).
    pub(crate) fn add_written(&self, n: u64) {
        self.counts.add_written(n);
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
            self.counts.add_read(n);
        }
        (res, buf)
    }

    async fn write_from(&self, buf: Buf, from: usize, progress: &Progress) -> BufResult<(), Buf> {
        let len = buf.len().saturating_sub(from) as u64;
        let (res, buf) = self.inner.write_from(buf, from, progress).await;
        if res.is_ok() {
            self.counts.add_written(len);
        }
        (res, buf)
    }

    fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
        let read = self.inner.read_now(buf, max);
        if let Some(Ok(n)) = read {
            self.counts.add_read(n);
        }
        read
    }

    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write_now(bytes)?;
        self.counts.add_written(n as u64);
        Ok(n)
    }

    fn shutdown(&self, how: Shutdown) {
        self.inner.shutdown(how);
    }

    fn finish_writing(&self) -> impl Future<Output = ()> {
        self.inner.finish_writing()
    }

    fn time_out(&self, how: Shutdown) {
        self.timed_out.set(true);
        self.inner.time_out(how);
    }

    fn last_arrival(&self) -> Option<Instant> {
        self.inner.last_arrival()
    }
}

/// Reads once, appending at most `max` bytes to `buf` (growing it as needed), within
/// `limit`. `Ok((0, buf))` is end of stream.
///
/// On timeout the socket is shut down for reading only: that completes the orphaned read,
/// and still lets the caller send an answer (408) before closing.
pub(crate) async fn read_some<S: Stream>(
    stream: &S,
    buf: Buf,
    max: usize,
    limit: Duration,
) -> Result<(usize, Buf), IoError> {
    read_some_by(stream, buf, max, limit, None).await
}

/// [`read_some`], ending by `end` at the latest however the bytes trickle in: a drain's
/// total time (nginx's `lingering_time`), which a TLS record sent a byte at a time must not
/// stretch (found by review: each byte re-armed the silence limit, so a refused client held
/// its socket for hours).
pub(crate) async fn read_some_by<S: Stream>(
    stream: &S,
    mut buf: Buf,
    max: usize,
    limit: Duration,
    end: Option<std::time::Instant>,
) -> Result<(usize, Buf), IoError> {
    let end = end.map(Instant::from_std);
    let max = make_room(&mut buf, max);
    // Never offer the kernel more than `max` bytes: a body read must not swallow the next
    // pipelined request, and a full buffer would return 0 and look like EOF.
    let mut read = std::pin::pin!(stream.read_append(buf, max));
    let by_end = |at: Instant| end.map_or(at, |end| at.min(end));
    let mut deadline = by_end(Instant::now() + limit);
    loop {
        match tokio::time::timeout_at(deadline, &mut read).await {
            Ok((Ok(n), buf)) => return Ok((n, buf)),
            Ok((Err(e), _)) => return Err(IoError::Failed(e.kind())),
            Err(_) => match stream.last_arrival() {
                // The limit is between two socket reads, as nginx's timers restart at each
                // read (found by review: over TLS it ran over a whole record, so a slow
                // upload was cut mid-record).
                Some(at) if by_end(at + limit) > Instant::now() => deadline = by_end(at + limit),
                _ => {
                    stream.time_out(Shutdown::Read);
                    return Err(IoError::Timeout);
                }
            },
        }
    }
}

/// [`read_some`], giving the buffer back however the read ends: on timeout the socket's
/// reading side is shut down and the read awaited to its end, so what came before is kept
/// (a head cut short is logged with what came of it, as nginx logs it).
pub(crate) async fn read_some_kept<S: Stream>(
    stream: &S,
    mut buf: Buf,
    max: usize,
    limit: Duration,
) -> (Result<usize, IoError>, Buf) {
    let max = make_room(&mut buf, max);
    let mut read = std::pin::pin!(stream.read_append(buf, max));
    let mut timer = std::pin::pin!(tokio::time::sleep(limit));
    let mut timed_out = false;
    // One future holding the read and its timer, as `timeout`'s does, but the read is
    // polled on to its end after the timer fires.
    let (read, buf) = std::future::poll_fn(|cx| {
        if let Poll::Ready(read) = read.as_mut().poll(cx) {
            return Poll::Ready(read);
        }
        if !timed_out && timer.as_mut().poll(cx).is_ready() {
            timed_out = true;
            // Completes the read (its op wakes this task).
            stream.time_out(Shutdown::Read);
        }
        Poll::Pending
    })
    .await;
    match read {
        // Bytes that raced in with the timer are kept; the request is late all the same.
        _ if timed_out => (Err(IoError::Timeout), buf),
        Ok(n) => (Ok(n), buf),
        Err(e) => (Err(IoError::Failed(e.kind())), buf),
    }
}

/// Grows `buf` so that a read of `max` bytes (at least 1) fits after its contents; the
/// read's size.
fn make_room(buf: &mut Buf, max: usize) -> usize {
    let max = max.max(1);
    if buf.capacity() - buf.len() < max {
        buf.reserve(max);
    }
    max
}

/// [`read_some`] for bytes that are likely waiting already (a body after its head): one
/// non-blocking read first, which then needs no op, no timer and no wake-up.
pub(crate) async fn read_some_eager<S: Stream>(
    stream: &S,
    mut buf: Buf,
    max: usize,
    limit: Duration,
) -> Result<(usize, Buf), IoError> {
    let max = make_room(&mut buf, max);
    match stream.read_now(&mut buf, max) {
        Some(Ok(n)) => {
            // A peer whose bytes always wait must still let the loop's other tasks run.
            tokio::task::consume_budget().await;
            Ok((n, buf))
        }
        Some(Err(e)) => Err(IoError::Failed(e.kind())),
        None => read_some(stream, buf, max, limit).await,
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
    mut from: usize,
    limit: Duration,
) -> Result<Buf, (IoError, Option<Buf>)> {
    if from >= buf.len() {
        return Ok(buf);
    }
    // Most writes fit in the socket's send buffer: made at once, they need no op, no timer
    // and no wake-up. Only the rest, if any, waits in an op.
    match stream.write_now(&buf[from..]) {
        Ok(n) => from += n,
        Err(e) => return Err((IoError::Failed(e.kind()), Some(buf))),
    }
    if from >= buf.len() {
        // A client whose every write goes at once must still let the loop's other tasks run.
        tokio::task::consume_budget().await;
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
                    stream.time_out(Shutdown::Both);
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

    /// A socket whose peer seems to trickle in bytes that never make a whole TLS record:
    /// each look finds an arrival just now.
    struct Trickling(UnixStream);

    impl Stream for Trickling {
        fn read_append(&self, buf: Buf, max: usize) -> impl Future<Output = BufResult<usize, Buf>> {
            self.0.read_append(buf, max)
        }

        fn write_from(
            &self,
            buf: Buf,
            from: usize,
            progress: &Progress,
        ) -> impl Future<Output = BufResult<(), Buf>> {
            self.0.write_from(buf, from, progress)
        }

        fn shutdown(&self, how: Shutdown) {
            Stream::shutdown(&self.0, how);
        }

        fn last_arrival(&self) -> Option<Instant> {
            Some(Instant::now())
        }
    }

    /// Each arrival re-arms the silence limit, but not past the drain's end (found by
    /// review: a TLS record sent a byte at a time held a refused client's socket for hours).
    #[test]
    fn arrivals_do_not_carry_a_read_past_its_end() {
        tokio_uring::start(async {
            let (ours, _theirs) = pair();
            let trickling = Trickling(ours);
            let start = StdInstant::now();
            let end = start + Duration::from_millis(300);
            let read = read_some_by(
                &trickling,
                Buf::empty(),
                64,
                Duration::from_millis(100),
                Some(end),
            );
            assert!(matches!(read.await, Err(IoError::Timeout)));
            let took = start.elapsed();
            assert!(took < Duration::from_secs(2), "the read ran {took:?}");
        });
    }

    #[test]
    fn an_eager_read_takes_what_waits_and_waits_for_the_rest() {
        tokio_uring::start(async {
            let (ours, mut theirs) = pair();
            std::io::Write::write_all(&mut theirs, b"waiting").unwrap();
            let limit = Duration::from_secs(5);
            let (n, buf) = read_some_eager(&ours, Buf::empty(), 64, limit)
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"waiting");
            // Nothing waits now: the read waits in an op until the peer writes.
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                std::io::Write::write_all(&mut theirs, b"later").unwrap();
                theirs
            });
            let (n, buf) = read_some_eager(&ours, buf, 64, limit).await.unwrap();
            assert_eq!(&buf[buf.len() - n..], b"later");
            drop(writer.join().unwrap());
            let (n, _) = read_some_eager(&ours, buf, 64, limit).await.unwrap();
            assert_eq!(n, 0, "end of stream");
        });
    }

    #[test]
    fn a_write_the_socket_takes_whole_needs_no_op_and_the_rest_waits_for_the_reader() {
        tokio_uring::start(async {
            let (ours, mut theirs) = pair();
            let small = Buf::copy_of(b"hello");
            let back = write_all(&ours, small, 0, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(&back[..], b"hello");
            let mut got = [0u8; 5];
            theirs.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
            // 2 MiB is more than a socket buffer takes at once: the rest goes in ops, all of
            // it, in order.
            let reader = std::thread::spawn(move || {
                let mut all = Vec::new();
                theirs.read_to_end(&mut all).unwrap();
                all
            });
            let mut big = piece();
            for (i, byte) in big.iter_mut().enumerate() {
                *byte = (i % 251) as u8;
            }
            let expected = big.to_vec();
            write_all(&ours, big, 0, Duration::from_secs(5))
                .await
                .unwrap();
            Stream::shutdown(&ours, Shutdown::Write);
            assert!(reader.join().unwrap() == expected);
        });
    }

    /// A stream whose one read completes after `takes`, its bytes coming off the socket
    /// every `every` meanwhile (a TLS record in pieces).
    struct Pieces {
        began: Instant,
        takes: Duration,
        every: Duration,
    }

    impl Stream for Pieces {
        async fn read_append(&self, mut buf: Buf, _max: usize) -> BufResult<usize, Buf> {
            tokio::time::sleep_until(self.began + self.takes).await;
            buf.push(1);
            (Ok(1), buf)
        }

        async fn write_from(&self, buf: Buf, _: usize, _: &Progress) -> BufResult<(), Buf> {
            (Ok(()), buf)
        }

        fn shutdown(&self, _: Shutdown) {}

        fn last_arrival(&self) -> Option<Instant> {
            let pieces = self.began.elapsed().as_millis() / self.every.as_millis();
            let at = self.began + self.every * u32::try_from(pieces).unwrap();
            (at > self.began && at < self.began + self.takes).then_some(at)
        }
    }

    #[test]
    fn the_read_limit_is_between_two_arrivals_not_on_the_whole_read() {
        tokio_uring::start(async {
            let pieces = |every| Pieces {
                began: Instant::now(),
                takes: Duration::from_millis(900),
                every,
            };
            let limit = Duration::from_millis(400);
            // Pieces every 150 ms: never 400 ms without one.
            let often = pieces(Duration::from_millis(150));
            let read = read_some(&often, Buf::empty(), 8, limit).await;
            assert_eq!(read.map(|(n, _)| n).ok(), Some(1));
            // Pieces every 500 ms: the first comes after the limit.
            let seldom = pieces(Duration::from_millis(500));
            let read = read_some(&seldom, Buf::empty(), 8, limit).await;
            assert_eq!(read.err(), Some(IoError::Timeout));
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

    #[test]
    fn a_vectored_send_keeps_the_order_and_says_0_when_the_socket_is_full() {
        let (ours, mut theirs) = StdUnixStream::pair().unwrap();
        let pieces = [io::IoSlice::new(b"head "), io::IoSlice::new(b"body")];
        assert_eq!(send_vectored_now(ours.as_raw_fd(), &pieces).unwrap(), 9);
        let mut got = [0; 9];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"head body");

        // Nobody reads: the send buffer fills, and a send then takes nothing, at once.
        let big = vec![7; 64 * 1024];
        let mut sent = 0;
        loop {
            match send_vectored_now(ours.as_raw_fd(), &[io::IoSlice::new(&big)]).unwrap() {
                0 => break,
                n => sent += n,
            }
            assert!(sent < 64 << 20, "the socket never filled");
        }
        assert!(sent > 0);
        drop(theirs);
        let gone = send_vectored_now(ours.as_raw_fd(), &[io::IoSlice::new(b"x")]);
        assert_eq!(gone.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
