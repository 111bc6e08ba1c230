//! A connection to one upstream, over a unix socket or TCP.

use std::cell::Cell;
use std::net::Shutdown;

use tokio_uring::BufResult;
use tokio_uring::net::{TcpStream, UnixStream};

use crate::buffer::Buf;
use crate::io::Stream;
use crate::limits::Slot;

enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// A connected upstream. Dropped without [`UpstreamConn::close`], it shuts its socket down
/// first, so that an op left in flight on it (a relay dropped mid-read) completes and lets
/// the fd go; a clean close spares that syscall. Either way the server's slot (with
/// `max_conns`) goes back with it: once the answer has been read, not once the client has it.
pub(crate) struct UpstreamConn {
    socket: Socket,
    closed_cleanly: Cell<bool>,
    /// Which server of its group it is connected to (by index).
    server: usize,
    /// The server's slot, held while uWSGI works on this request.
    slot: Option<Slot>,
}

impl UpstreamConn {
    pub(super) fn unix(stream: UnixStream) -> Self {
        Self::new(Socket::Unix(stream))
    }

    pub(super) fn tcp(stream: TcpStream) -> Self {
        Self::new(Socket::Tcp(stream))
    }

    fn new(socket: Socket) -> Self {
        UpstreamConn {
            socket,
            closed_cleanly: Cell::new(false),
            server: 0,
            slot: None,
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
            Socket::Unix(s) => s.read_append(buf, max).await,
            Socket::Tcp(s) => s.read_append(buf, max).await,
        }
    }

    async fn write_from(&self, buf: Buf, from: usize) -> BufResult<(), Buf> {
        match &self.socket {
            Socket::Unix(s) => s.write_from(buf, from).await,
            Socket::Tcp(s) => s.write_from(buf, from).await,
        }
    }

    fn shutdown(&self, how: Shutdown) {
        match &self.socket {
            Socket::Unix(s) => Stream::shutdown(s, how),
            Socket::Tcp(s) => Stream::shutdown(s, how),
        }
    }
}
