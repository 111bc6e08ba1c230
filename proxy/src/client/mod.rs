//! The client side of a connection: its socket, the bytes it sent that are not consumed yet,
//! and what ringway does with them: read a head, take in a body, answer, close.

mod answer;
mod body;
mod close;
mod discard;
mod head;
mod pace;
mod proxy_header;
mod sendfile;
mod stream;
mod watch;

pub(crate) use answer::Own;
pub(crate) use close::{Next, linger_bounds};
pub(crate) use discard::may_discard;
pub(crate) use head::{DRAIN_IDLE_GRACE, ReadNow};
pub(crate) use pace::{Pace, write_paced};
pub(crate) use proxy_header::{Proxied, read_proxy_header};
pub(crate) use sendfile::{Step, ZeroCopy};
pub(crate) use stream::ClientStream;

use std::cell::Cell;
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use crate::buffer::Buf;
use crate::config::Config;
use crate::http::HeaderSpan;
use crate::io::{Counted, Stream};
use crate::metrics::{Phase, WorkerStats};
use crate::tls::ClientCert;
use crate::worker::Worker;

/// The address a connection on socket `fd`, accepted on `listening`, reached (see
/// [`Client::reached`]).
pub(crate) fn reached_on(fd: std::os::fd::RawFd, listening: SocketAddr) -> SocketAddr {
    if !listening.ip().is_unspecified() {
        return listening;
    }
    // SAFETY: the fd is the connection's socket, open for this borrow's whole (brief) life.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd)
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .unwrap_or(listening)
}

/// Header spans a request's list starts with room for (most requests have fewer).
pub(crate) const HEADER_SPANS: usize = 16;

/// One client connection.
pub(crate) struct Client {
    /// The socket (plain or TLS), counting the plaintext bytes that go through it.
    pub(crate) stream: Counted<ClientStream>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The address the connection came in on (its port is SERVER_PORT).
    pub(crate) local: SocketAddr,
    /// Bytes received and not consumed yet. While a request is served it holds exactly that
    /// request's head (the spans below point into it).
    pub(crate) input: Buf,
    /// Header spans of the current request, reused across requests.
    pub(crate) headers: Vec<HeaderSpan>,
    /// Header spans of the current upstream response, reused across requests.
    pub(crate) response_headers: Vec<HeaderSpan>,
    /// Where the current response's body starts in the count of bytes written: the count
    /// when its head has gone out (see [`Client::body_bytes_sent`]).
    body_from: Cell<u64>,
    /// How far before `body_from` the current response started in the count: its head,
    /// and an interim `100 Continue` before it (see [`Client::bytes_sent`]).
    before_body: Cell<u32>,
    /// The socket was closed on purpose, with nothing in flight.
    finished: bool,
    /// The current request's head came behind the previous one's, read with it (nginx's
    /// `$pipe`).
    pub(crate) pipelined: bool,
    /// `peer` is what the connection's PROXY header named (nginx's `$proxy_protocol_addr`).
    pub(crate) proxied: bool,
    /// The current answer's head as it went out, kept when the access log shows
    /// `$sent_http_NAME` (armed empty by [`Client::response_starts`]).
    sent_head: Cell<Option<Box<SentHead>>>,
    /// What it is doing, for the worker's phase gauges (`stub_status`).
    phase: Phase,
    /// When the current request's first byte was read (or found behind the previous one's):
    /// where nginx's `$request_time` starts, a slow head's time included.
    pub(crate) head_began: Instant,
}

/// An answer's head as it went out, kept for the access log's `$sent_http_NAME`. Boxed in
/// the client: a connection keeps a pointer's worth for it, idle or not.
#[derive(Default)]
pub(crate) struct SentHead(Vec<u8>);

impl SentHead {
    /// The head's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Client {
    /// The current request's first header line named `name` (any case), its value.
    pub(crate) fn request_header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.of(&self.input).eq_ignore_ascii_case(name))
            .map(|h| h.value.of(&self.input))
    }

    /// A client connection accepted from `peer` on `local` (its handshake done, for TLS).
    pub(crate) fn new(stream: ClientStream, peer: SocketAddr, local: SocketAddr) -> Client {
        Client {
            stream: Counted::new(stream),
            peer,
            local,
            input: Buf::empty(),
            headers: Vec::with_capacity(HEADER_SPANS),
            response_headers: Vec::new(),
            body_from: Cell::new(0),
            before_body: Cell::new(0),
            finished: false,
            pipelined: false,
            proxied: false,
            sent_head: Cell::new(None),
            phase: Phase::Uncounted,
            head_began: Instant::now(),
        }
    }

    /// The connection is now doing `phase`, and the worker's gauges say so.
    pub(crate) fn enter(&mut self, phase: Phase, stats: &WorkerStats) {
        stats.phase_changed(self.phase, phase);
        self.phase = phase;
    }

    /// Leaves the worker's gauges: the connection ends.
    pub(crate) fn leave_phases(&mut self, stats: &WorkerStats) {
        self.enter(Phase::Uncounted, stats);
    }

    /// The address the client reached: the listener's, or on a listener on every address
    /// (`0.0.0.0`, `[::]`) the socket's own, asked of the kernel (`getsockname`) only where
    /// it is shown, as nginx asks for `$server_addr` (found by review: the wildcard was
    /// shown). An HTTP/2 stream's was asked once for its connection.
    pub(crate) fn reached(&self) -> SocketAddr {
        match self.stream.get_ref().socket() {
            Some(fd) => reached_on(fd, self.local),
            None => self.local,
        }
    }

    /// Whether the client reached ringway over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.stream.get_ref().is_tls()
    }

    /// The Strict-Transport-Security its answers carry: `worker`'s (the request's
    /// configuration generation), on a TLS connection.
    pub(crate) fn hsts<'w>(&self, worker: &'w Worker) -> Option<&'w str> {
        worker.hsts.as_deref().filter(|_| self.is_tls())
    }

    /// Whether the request came as an HTTP/2 stream.
    pub(crate) fn is_http2(&self) -> bool {
        self.stream.get_ref().is_http2()
    }

    /// What the app is told about the client's certificate under `config`.
    pub(crate) fn cert<'a>(&'a self, config: &Config) -> ClientCert<'a> {
        ClientCert::of(self.stream.get_ref().tls(), config.asks_client_certs())
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

    /// A new response begins: nothing of it is written yet. `keep_head`: its head is kept
    /// for the access log ([`Client::take_sent_head`]).
    pub(crate) fn response_starts(&self, keep_head: bool) {
        self.body_from.set(self.stream.bytes_written());
        self.before_body.set(0);
        let kept = match self.sent_head.take() {
            Some(mut head) if keep_head => {
                head.0.clear();
                Some(head)
            }
            _ if keep_head => Some(Box::default()),
            _ => None,
        };
        self.sent_head.set(kept);
    }

    /// The response head `head` is about to be written: what is written after it is body.
    pub(crate) fn head_goes_out(&self, head: &[u8]) {
        if let Some(mut kept) = self.sent_head.take() {
            kept.0.clear();
            kept.0.extend_from_slice(head);
            self.sent_head.set(Some(kept));
        }
        let start = self.response_start();
        let body_from = self.stream.bytes_written() + head.len() as u64;
        self.body_from.set(body_from);
        let before = body_from.saturating_sub(start);
        self.before_body
            .set(u32::try_from(before).unwrap_or(u32::MAX));
    }

    /// Where the current response starts in the count of bytes written.
    fn response_start(&self) -> u64 {
        self.body_from
            .get()
            .saturating_sub(u64::from(self.before_body.get()))
    }

    /// Bytes of the current response written so far, head and body (nginx's
    /// `$bytes_sent`).
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.stream
            .bytes_written()
            .saturating_sub(self.response_start())
    }

    /// Bytes of the current response's body written so far (0 until its head is out).
    pub(crate) fn body_bytes_sent(&self) -> u64 {
        self.stream
            .bytes_written()
            .saturating_sub(self.body_from.get())
    }

    /// Frees what only a request in progress uses (the header span lists), for a connection
    /// about to wait idle; the next head read sizes them again.
    pub(crate) fn shed_request_state(&mut self) {
        self.headers = Vec::new();
        self.response_headers = Vec::new();
        self.sent_head.set(None);
    }

    /// The current answer's head as it went out, if it was kept and one went out; to be put
    /// back with [`Client::put_back_sent_head`].
    pub(crate) fn take_sent_head(&self) -> Option<Box<SentHead>> {
        self.sent_head.take()
    }

    /// Puts back what [`Client::take_sent_head`] took.
    pub(crate) fn put_back_sent_head(&self, head: Option<Box<SentHead>>) {
        self.sent_head.set(head);
    }

    /// The connection ends with nothing in flight and nothing owed (the client closed it
    /// between requests, or it idled out): dropping it just closes the socket.
    pub(crate) fn ended_idle(&mut self) {
        self.finished = true;
    }

    /// Makes what was left after a request the start of the next one.
    pub(crate) fn put_back_rest(&mut self, rest: Buf) {
        // Nothing left over: no buffer either, as [`Client::take_rest`] leaves it (a body
        // read or dropped from the socket left one behind; found by review: every parked
        // connection kept it).
        self.input = if rest.is_empty() { Buf::empty() } else { rest };
    }

    /// Whether what the connection's requests say about their client (X-Forwarded-For,
    /// X-Forwarded-Proto, X-Request-ID...) is believed: they come from a trusted proxy. With
    /// `proxy_protocol`, only when its header named a client: a balancer's header that named
    /// none (v1 `UNKNOWN`, v2 `LOCAL`, a unix socket's client) relays bytes from a client
    /// nobody vouches for (found by review: its own X-Forwarded-For set REMOTE_ADDR; nginx's
    /// `real_ip_header proxy_protocol` reads no header at all).
    pub(crate) fn vouched_for(&self, config: &Config) -> bool {
        config.is_trusted(self.peer.ip()) && (self.proxied || !config.proxy_protocol)
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
