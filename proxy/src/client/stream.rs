//! The client's socket: plain TCP, or TLS over it. Everything above reads and writes
//! plaintext through [`Stream`] and does not know which.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use tokio_uring::BufResult;
use tokio_uring::net::TcpStream;
use tokio_util::either::Either;

use crate::buffer::Buf;
use crate::http2::PipelineEnd;
use crate::io::{Progress, Stream};
use crate::tls::{Peer, TlsStream};

/// A client connection's transport.
pub(crate) enum ClientStream {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS.
    Tls(Box<TlsStream>),
    /// One stream of an HTTP/2 connection (over TLS), its request written as HTTP/1.1 into
    /// the other end of an in-memory pipe (http2/).
    Bridged(PipelineEnd),
}

impl ClientStream {
    /// Notes the `send_timeout` of the route a request took: an HTTP/2 stream waits that
    /// long for its client's window (a socket's writes are timed by their caller).
    pub(crate) fn routed_with_send_timeout(&self, limit: Duration) {
        if let ClientStream::Bridged(pipe) = self {
            pipe.set_send_timeout(limit);
        }
    }

    /// Whether the client reached ringway over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls().is_some()
    }

    /// The TLS session's version, cipher and client certificate; `None` for plain HTTP.
    pub(crate) fn tls(&self) -> Option<&Peer> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(s) => Some(s.peer()),
            ClientStream::Bridged(pipe) => Some(pipe.tls()),
        }
    }

    /// Whether the request came as an HTTP/2 stream.
    pub(crate) fn is_http2(&self) -> bool {
        matches!(self, ClientStream::Bridged(_))
    }

    /// Ends a TLS session cleanly (close_notify); nothing to do for plain TCP.
    pub(crate) async fn close_notify(&self) {
        if let ClientStream::Tls(session) = self {
            Box::pin(session.close_notify()).await;
        }
    }

    /// Makes the socket's close a reset (`SO_LINGER` of 0), as nginx's
    /// `reset_timedout_connection` does. An HTTP/2 stream has no socket of its own.
    pub(crate) fn reset_on_close(&self) {
        let Some(fd) = self.socket() else {
            return;
        };
        // SAFETY: the fd is the stream's own socket, open while `self` is borrowed.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if let Err(err) = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(error = %err, "SO_LINGER refused: the timed-out connection is closed, not reset");
        }
    }

    /// A number for the connection, the same for each of its requests and unlike any other
    /// connection's (nginx's `$connection`): its socket's cookie, the key the eBPF probes
    /// file it under; an HTTP/2 stream's is its connection's. `None` if the kernel gave
    /// none.
    pub(crate) fn connection_number(&self) -> Option<u64> {
        let cookie = match self {
            ClientStream::Plain(s) => crate::conn::socket_cookie(s.as_raw_fd()),
            ClientStream::Tls(s) => crate::conn::socket_cookie(s.tcp().as_raw_fd()),
            ClientStream::Bridged(pipe) => pipe.connection_number(),
        };
        (cookie != 0).then_some(cookie)
    }

    /// The socket, if the client has one of its own (an HTTP/2 stream's pipe has none).
    pub(crate) fn socket(&self) -> Option<RawFd> {
        match self {
            ClientStream::Plain(s) => Some(s.as_raw_fd()),
            ClientStream::Tls(s) => Some(s.tcp().as_raw_fd()),
            ClientStream::Bridged(_) => None,
        }
    }
}

// A TLS read or write is a loop of socket ops (records out, records in), a future several
// times the size of a plain one. Boxing it keeps every connection's future, held for its
// whole life, as small as a plain connection needs; a TLS op already pays for a record's
// cipher work, beside which the allocation does not show.
impl Stream for ClientStream {
    // Not async fns: picking the arm's future directly adds no state of its own.
    fn read_append(&self, buf: Buf, max: usize) -> impl Future<Output = BufResult<usize, Buf>> {
        match self {
            ClientStream::Plain(s) => Either::Left(Either::Left(s.read_append(buf, max))),
            ClientStream::Bridged(s) => {
                Either::Left(Either::Right(Box::pin(s.read_append(buf, max))))
            }
            ClientStream::Tls(s) => Either::Right(Box::pin(s.read_append(buf, max))),
        }
    }

    fn write_from(
        &self,
        buf: Buf,
        from: usize,
        progress: &Progress,
    ) -> impl Future<Output = BufResult<(), Buf>> {
        match self {
            ClientStream::Plain(s) => Either::Left(Either::Left(s.write_from(buf, from, progress))),
            ClientStream::Bridged(s) => {
                Either::Left(Either::Right(Box::pin(s.write_from(buf, from, progress))))
            }
            ClientStream::Tls(s) => Either::Right(Box::pin(s.write_from(buf, from, progress))),
        }
    }

    fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
        match self {
            ClientStream::Plain(s) => s.read_now(buf, max),
            ClientStream::Bridged(s) => s.read_now(buf, max),
            ClientStream::Tls(_) => None,
        }
    }

    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write_now(bytes),
            ClientStream::Bridged(s) => s.write_now(bytes),
            ClientStream::Tls(_) => Ok(0),
        }
    }

    fn shutdown(&self, how: Shutdown) {
        match self {
            ClientStream::Plain(s) => Stream::shutdown(s, how),
            ClientStream::Bridged(s) => Stream::shutdown(s, how),
            ClientStream::Tls(s) => Stream::shutdown(&**s, how),
        }
    }

    async fn finish_writing(&self) {
        match self {
            ClientStream::Plain(s) => s.finish_writing().await,
            ClientStream::Bridged(s) => s.finish_writing().await,
            ClientStream::Tls(s) => Box::pin(s.finish_writing()).await,
        }
    }

    fn last_arrival(&self) -> Option<tokio::time::Instant> {
        match self {
            ClientStream::Tls(s) => s.last_arrival(),
            ClientStream::Plain(_) | ClientStream::Bridged(_) => None,
        }
    }
}
