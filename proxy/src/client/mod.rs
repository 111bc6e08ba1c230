//! The client side of a connection: its socket, the bytes it sent that are not consumed yet,
//! and what ringway does with them: read a head, take in a body, answer, close.

mod answer;
mod body;
mod close;
mod head;
mod watch;

pub(crate) use close::Next;

use std::net::{Shutdown, SocketAddr};

use tokio_uring::net::TcpStream;

use crate::buffer::Buf;
use crate::http::HeaderSpan;
use crate::io::{Counted, Stream};

/// One client connection.
pub(crate) struct Client {
    /// The socket, counting the bytes that go through it.
    pub(crate) stream: Counted<TcpStream>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Bytes received and not consumed yet. While a request is served it holds exactly that
    /// request's head (the spans below point into it).
    pub(crate) input: Buf,
    /// Header spans of the current request, reused across requests.
    pub(crate) headers: Vec<HeaderSpan>,
    /// Header spans of the current upstream response, reused across requests.
    pub(crate) response_headers: Vec<HeaderSpan>,
    /// The socket was closed on purpose, with nothing in flight.
    finished: bool,
}

impl Client {
    /// A client connection just accepted from `peer`.
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr) -> Client {
        Client {
            stream: Counted::new(stream),
            peer,
            input: Buf::empty(),
            headers: Vec::with_capacity(16),
            response_headers: Vec::new(),
            finished: false,
        }
    }

    /// Moves the bytes after the current request's head out of `input` (they are its body,
    /// maybe more requests), leaving the head alone in `input`.
    pub(crate) fn take_rest(&mut self, head_len: usize) -> Buf {
        let leftover = self.input.get(head_len..).unwrap_or_default();
        // Nothing left over (the usual case): no buffer either, so an idle keep-alive
        // connection holds none until its next read.
        let rest = if leftover.is_empty() {
            Buf::empty()
        } else {
            Buf::copy_of(leftover)
        };
        self.input.truncate(head_len);
        rest
    }

    /// Makes what was left after a request the start of the next one.
    pub(crate) fn put_back_rest(&mut self, rest: Buf) {
        self.input = rest;
    }
}

impl Drop for Client {
    /// Runs however the connection ends, a panic included: no op may be left in flight on
    /// the socket.
    fn drop(&mut self) {
        if !self.finished {
            Stream::shutdown(&self.stream, Shutdown::Both);
        }
    }
}
