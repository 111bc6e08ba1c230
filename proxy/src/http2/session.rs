//! The TLS session as the byte stream the `h2` crate drives (Tokio's `AsyncRead` and
//! `AsyncWrite`), on the same io_uring reads and writes as an HTTP/1.1 session.
//!
//! tokio-uring's operations own their buffers and are futures of their own, where `h2`
//! polls a stream: each direction keeps at most one operation in flight, boxed, and a write
//! is taken whole at once (its bytes copied into a pooled buffer) and reported done when
//! the next write or flush finds it finished. A write that moves nothing for
//! `send_timeout` fails, and the socket is shut down, as a plain client's.

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::buffer::{Buf, SMALL, TINY};
use crate::io::{Counted, IoError, Stream, write_all};
use crate::ratelimit::{BURST, NamedGate, WINDOW};
use crate::tls::TlsStream;

type Op<T> = Pin<Box<dyn Future<Output = T>>>;

/// One HTTP/2 connection's TLS session, counting its plaintext bytes.
pub(super) struct SessionIo {
    tls: Rc<Counted<TlsStream>>,
    send_timeout: Duration,
    /// The read in flight, if any.
    reading: Option<Op<(io::Result<usize>, Buf)>>,
    /// Its size: a tiny read while the client is quiet (an idle connection waits with
    /// 1 KiB, as an idle HTTP/1.1 session does), a bulk one after a read came back full.
    read_size: usize,
    /// Plaintext read and not yet taken by `h2`: `unread[taken..]`.
    unread: Buf,
    taken: usize,
    /// The write in flight, if any: it took all its bytes when it was started.
    writing: Option<Op<Result<(), IoError>>>,
    /// The session failed or the peer closed it: nothing more is read.
    ended: bool,
    /// Plaintext bytes read, and the bytes the streams carried (requests' heads and
    /// bodies, and answers', counted by the streams): see [`FLOOD_ALLOWANCE`].
    total: u64,
    payload: Rc<Cell<u64>>,
}

/// A connection that has sent more than 8 times what its streams carried (requests and
/// answers, as nginx counts), past this, is flooding (frames that ask for no request: PRIORITY, WINDOW_UPDATE, SETTINGS, PING,
/// empty DATA): it is closed, as nginx's `http2 flood detected` closes it. `h2` bounds some
/// of these frames itself, not PRIORITY or WINDOW_UPDATE (found by review: 35 million
/// PRIORITY frames kept a worker busy for 5 s).
const FLOOD_ALLOWANCE: u64 = 1024 * 1024;

/// Whether `total` bytes read, of which `payload` carried requests, is a flood.
fn is_flood(total: u64, payload: u64) -> bool {
    total / 8 > payload.saturating_add(FLOOD_ALLOWANCE)
}

impl SessionIo {
    /// `payload`: the bytes of requests the connection's streams took, counted by them.
    pub(super) fn new(
        tls: Rc<Counted<TlsStream>>,
        send_timeout: Duration,
        payload: Rc<Cell<u64>>,
    ) -> SessionIo {
        SessionIo {
            tls,
            send_timeout,
            reading: None,
            read_size: TINY,
            unread: Buf::empty(),
            taken: 0,
            writing: None,
            ended: false,
            total: 0,
            payload,
        }
    }

    /// Waits for the write in flight, if any, to end.
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(write) = self.writing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let res = ready!(write.as_mut().poll(cx));
        self.writing = None;
        Poll::Ready(res.map_err(|err| match err {
            IoError::Timeout => io::ErrorKind::TimedOut.into(),
            IoError::Failed(kind) => kind.into(),
        }))
    }
}

impl AsyncRead for SessionIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.taken < this.unread.len() {
                let waiting = &this.unread[this.taken..];
                let n = waiting.len().min(out.remaining());
                out.put_slice(&waiting[..n]);
                this.taken += n;
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            let read = this.reading.get_or_insert_with(|| {
                let tls = Rc::clone(&this.tls);
                let size = this.read_size;
                // What was read before is all taken: its buffer goes back to the pool now,
                // not after the next read (which may wait for as long as the client idles).
                this.unread = Buf::empty();
                Box::pin(async move { tls.read_append(Buf::with_capacity(size), size).await })
            });
            let (res, buf) = ready!(read.as_mut().poll(cx));
            this.reading = None;
            this.unread = buf;
            this.taken = 0;
            match res {
                Ok(0) => this.ended = true,
                Ok(n) => {
                    this.read_size = if n == this.read_size { SMALL } else { TINY };
                    this.total += n as u64;
                    if is_flood(this.total, this.payload.get()) {
                        this.ended = true;
                        this.unread = Buf::empty();
                        report_flood(this.total, this.payload.get());
                        return Poll::Ready(Err(io::Error::other("HTTP/2 flood")));
                    }
                }
                Err(err) => {
                    this.ended = true;
                    return Poll::Ready(Err(err));
                }
            }
        }
    }
}

impl AsyncWrite for SessionIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_written(cx))?;
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let tls = Rc::clone(&this.tls);
        let buf = Buf::copy_of(bytes);
        let limit = this.send_timeout;
        this.writing = Some(Box::pin(async move {
            write_all(&*tls, buf, 0, limit).await.map(drop)
        }));
        // Started at once: a write that goes whole into the socket finishes here.
        if let Some(write) = this.writing.as_mut()
            && let Poll::Ready(res) = write.as_mut().poll(cx)
        {
            this.writing = None;
            if let Err(IoError::Failed(kind)) = res {
                return Poll::Ready(Err(kind.into()));
            }
            if let Err(IoError::Timeout) = res {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
        }
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx)
    }
}

impl Drop for SessionIo {
    /// A dropped tokio-uring op is not cancelled: an op still in flight is completed by
    /// shutting the socket down (the connection is over when its stream is dropped).
    fn drop(&mut self) {
        if self.reading.is_some() || self.writing.is_some() {
            Stream::shutdown(&*self.tls, Shutdown::Both);
        }
    }
}

/// Logs a flood, a few lines per window: each flooding connection is one a client can open
/// again and again (found by review: a line each).
fn report_flood(read: u64, requests: u64) {
    static GATE: NamedGate = NamedGate::info("HTTP/2 flood");
    if GATE.allow() {
        tracing::info!(
            read,
            requests,
            "HTTP/2 flood: frames that carry no request; connection closed (at most {BURST} \
             such lines per {}s)",
            WINDOW.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_flood;

    #[test]
    fn a_flood_is_eight_times_the_requests_past_a_mebibyte() {
        assert!(!is_flood(8 << 20, 0), "8 MiB of frames alone: not yet");
        assert!(is_flood((8 << 20) + 8, 0));
        assert!(!is_flood(80 << 20, 9 << 20), "a large upload is no flood");
    }
}
