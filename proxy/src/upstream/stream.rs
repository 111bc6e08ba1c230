//! A connection to one upstream, over a unix socket or TCP.

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use tokio_uring::BufResult;
use tokio_uring::net::{TcpStream, UnixStream};

use crate::buffer::Buf;
use crate::io::{Peeked, Progress, Stream, peek};
use crate::limits::Slot;

use super::pool::ServerPool;

/// An upstream socket: what an idle kept connection is.
pub(crate) enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Socket {
    /// Whether a kept connection still looks open: no end of stream and no stray bytes
    /// waiting (one non-blocking peek, before each reuse).
    pub(super) fn looks_open(&self) -> bool {
        match self {
            Socket::Unix(s) => looks_open(s.as_raw_fd()),
            Socket::Tcp(s) => looks_open(s.as_raw_fd()),
        }
    }
}

/// Whether the connected socket `fd` has neither reached end of stream nor has bytes
/// waiting: nothing from the peer is due on an idle HTTP connection.
fn looks_open(fd: RawFd) -> bool {
    peek(fd) == Peeked::Nothing
}

/// The pool an HTTP connection goes back to.
pub(crate) type Pool = Rc<ServerPool<Socket>>;

/// A connected upstream. Dropped without [`UpstreamConn::close`], it shuts its socket down
/// first, so that an op left in flight on it (a relay dropped mid-read) completes and lets
/// the fd go; a clean close spares that syscall. Either way the server's slot (with
/// `max_conns`) goes back with it: once the answer has been read, not once the client has it.
///
/// An HTTP connection whose answer was read to its clean end goes back to its server's pool
/// instead ([`UpstreamConn::release`]).
pub(crate) struct UpstreamConn {
    /// Always there but while being handed back to the pool.
    socket: Option<Socket>,
    closed_cleanly: Cell<bool>,
    /// Which server of its group it is connected to (by index).
    server: usize,
    /// The server's slot, held while uWSGI works on this request.
    slot: Option<Slot>,
    /// HTTP: the pool it goes back to.
    pool: Option<Pool>,
    /// The answer allows another request on this connection (HTTP/1.1, framed, no close).
    reusable: Cell<bool>,
    /// It came from the pool (it served a request before).
    reused: bool,
}

impl UpstreamConn {
    pub(super) fn unix(stream: UnixStream) -> Self {
        Self::new(Socket::Unix(stream))
    }

    pub(super) fn tcp(stream: TcpStream) -> Self {
        Self::new(Socket::Tcp(stream))
    }

    pub(super) fn new(socket: Socket) -> Self {
        UpstreamConn {
            socket: Some(socket),
            closed_cleanly: Cell::new(false),
            server: 0,
            slot: None,
            pool: None,
            reusable: Cell::new(false),
            reused: false,
        }
    }

    /// The same connection, going back to `pool` after a clean answer; `reused` if it
    /// came from there.
    pub(super) fn kept_in(mut self, pool: Pool, reused: bool) -> Self {
        self.pool = Some(pool);
        self.reused = reused;
        self
    }

    /// Whether it came from the pool: it may have been closed by the server meanwhile.
    pub(crate) fn is_reused(&self) -> bool {
        self.reused
    }

    /// Whether it may carry another request once its answer has been read.
    pub(crate) fn is_reusable(&self) -> bool {
        self.reusable.get()
    }

    /// Notes whether the answer being read allows another request on this connection.
    pub(crate) fn set_reusable(&self, reusable: bool) {
        self.reusable.set(reusable);
    }

    /// The answer was read to its end, nothing more: an HTTP connection that may serve
    /// another request goes back to its pool, anything else is closed.
    pub(crate) fn release(mut self) {
        self.closed_cleanly.set(true);
        if !self.reusable.get() {
            return;
        }
        if let (Some(pool), Some(socket)) = (self.pool.take(), self.socket.take()) {
            pool.put(socket, Instant::now());
        }
    }

    /// The same connection, noted as made to server `index` of its group.
    pub(super) fn at_server(mut self, index: usize) -> Self {
        self.server = index;
        self
    }

    /// Which server of its group it is connected to (by index).
    pub(crate) fn server(&self) -> usize {
        self.server
    }

    /// Keeps the server's slot until this connection closes.
    pub(super) fn hold(&mut self, slot: Option<Slot>) {
        self.slot = slot;
    }

    /// Closes the connection with nothing in flight on it: the upstream is done with us.
    pub(crate) fn close(self) {
        self.closed_cleanly.set(true);
    }
}

impl Drop for UpstreamConn {
    fn drop(&mut self) {
        if !self.closed_cleanly.get() {
            self.shutdown(Shutdown::Both);
        }
    }
}

impl Stream for UpstreamConn {
    async fn read_append(&self, buf: Buf, max: usize) -> BufResult<usize, Buf> {
        match &self.socket {
            Some(Socket::Unix(s)) => s.read_append(buf, max).await,
            Some(Socket::Tcp(s)) => s.read_append(buf, max).await,
            None => (Err(io::ErrorKind::NotConnected.into()), buf),
        }
    }

    async fn write_from(&self, buf: Buf, from: usize, progress: &Progress) -> BufResult<(), Buf> {
        match &self.socket {
            Some(Socket::Unix(s)) => s.write_from(buf, from, progress).await,
            Some(Socket::Tcp(s)) => s.write_from(buf, from, progress).await,
            None => (Err(io::ErrorKind::NotConnected.into()), buf),
        }
    }

    fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
        match &self.socket {
            Some(Socket::Unix(s)) => s.read_now(buf, max),
            Some(Socket::Tcp(s)) => s.read_now(buf, max),
            None => Some(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        match &self.socket {
            Some(Socket::Unix(s)) => s.write_now(bytes),
            Some(Socket::Tcp(s)) => s.write_now(bytes),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn shutdown(&self, how: Shutdown) {
        match &self.socket {
            Some(Socket::Unix(s)) => Stream::shutdown(s, how),
            Some(Socket::Tcp(s)) => Stream::shutdown(s, how),
            None => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::looks_open;

    #[test]
    fn a_kept_socket_looks_open_until_the_peer_closes_or_says_something() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut theirs, _) = listener.accept().unwrap();
        assert!(looks_open(ours.as_raw_fd()));
        theirs.write_all(b"x").unwrap();
        // Loopback delivers at once; wait for it without sleeping.
        ours.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut peek = [0u8; 1];
        assert_eq!(ours.peek(&mut peek).unwrap(), 1);
        assert!(!looks_open(ours.as_raw_fd()), "stray bytes");

        let other = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        drop(theirs);
        other
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(other.peek(&mut peek).unwrap(), 0);
        assert!(!looks_open(other.as_raw_fd()), "closed by the peer");
    }
}
