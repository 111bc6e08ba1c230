//! The connection driver: one task per client connection, running its requests in order.
//!
//! ```text
//! read head ─▶ check framing/limits ─▶ encode vars ─▶ connect upstream ─▶ send packet + body
//!     ▲                                                                          │
//!     └────────── keep-alive ◀── relay body to client ◀── read response head ◀──┘
//! ```
//!
//! The protocol decisions live in [`crate::http`] and [`crate::uwsgi`]; this module only moves
//! bytes and time. Any timeout shuts the socket down before giving up on it, because a
//! tokio-uring op cannot be cancelled by dropping it ([`io`]). A failure before the response
//! head is sent becomes an HTTP error status for the client; after it, the connection is
//! simply closed, since the client already has a status line.

pub mod io;
mod request;
mod response;

use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio_uring::net::TcpStream;

use self::io::{Counted, IoError, Stream, read_some, write_all};
use crate::http::{self, HeaderSpan, Limits, RequestHead, Status};
use crate::server::Worker;
use crate::{bufpool, metrics};

/// Bytes read from a client at a time while waiting for a head.
const HEAD_READ_SIZE: usize = 8 * 1024;

/// After an error answer, how long unread request bytes are drained before closing, so the
/// kernel does not reset the connection (and destroy the answer) over unread data.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes drained while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// How a request ended, for the keep-alive decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The response was complete and the connection may serve another request.
    KeepAlive,
    /// Close after this response (client asked, framing requires it, or shutting down).
    Close,
    /// An error answer was sent with unread input left: drain, then close.
    Linger,
    /// The connection is unusable (I/O failure or a response cut short): drop it now.
    Abort,
}

/// Serves one accepted client connection until it closes.
pub async fn serve(stream: TcpStream, peer: SocketAddr, worker: Rc<Worker>) {
    let cookie = metrics::accepted(&worker.probes, || socket_cookie(&stream));
    let live_key = worker.stats.open(peer, cookie);
    let mut conn = Conn {
        stream: Counted::new(stream),
        peer,
        worker,
        input: Vec::new(),
        headers: Vec::with_capacity(16),
        response_headers: Vec::new(),
        requests: 0,
        live_key,
        status: 0,
        upstream_time: None,
        finished: false,
    };
    conn.run().await;
}

impl Drop for Conn {
    /// Runs however the task ends, a panic included: no op may be left in flight on the
    /// socket, and the connection leaves the live table.
    fn drop(&mut self) {
        if !self.finished {
            Stream::shutdown(&self.stream, Shutdown::Both);
        }
        bufpool::give(std::mem::take(&mut self.input));
        let (bytes_in, bytes_out) = (self.stream.bytes_read(), self.stream.bytes_written());
        self.worker
            .stats
            .close(self.live_key, self.requests, bytes_in, bytes_out);
    }
}

/// The kernel's socket cookie, the key the eBPF probes file this connection under.
fn socket_cookie(stream: &TcpStream) -> u64 {
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: the fd is open for the duration of the call (`stream` is borrowed) and the
    // out-pointers are valid for the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if rc == 0 { cookie } else { 0 }
}

/// One client connection's state across requests.
struct Conn {
    stream: Counted<TcpStream>,
    peer: SocketAddr,
    worker: Rc<Worker>,
    /// Bytes received and not yet consumed: the next head, maybe more pipelined requests.
    input: Vec<u8>,
    /// Header spans of the current request, reused across requests.
    headers: Vec<HeaderSpan>,
    /// Header spans of the current upstream response, reused across requests.
    response_headers: Vec<HeaderSpan>,
    /// Requests completed on this connection.
    requests: u64,
    /// This connection's key in the worker's live-connection table.
    live_key: usize,
    /// Status sent for the current request (0 until a status line went out).
    status: u16,
    /// Time the current request spent with the upstream, connected → response head.
    upstream_time: Option<Duration>,
    /// The socket was closed on purpose, with nothing in flight.
    finished: bool,
}

impl Conn {
    async fn run(&mut self) {
        loop {
            self.status = 0;
            self.upstream_time = None;
            let started = Instant::now();
            let head = match self.read_head().await {
                Ok(Some(head)) => head,
                Ok(None) => {
                    self.finished = true;
                    return;
                }
                Err(next) => {
                    self.record(started);
                    return self.finish(next).await;
                }
            };
            // A request's time runs from its complete head, as nginx's $request_time
            // runs from its first byte: an idle keep-alive wait is not request time.
            let started = Instant::now();
            // Boxed: the request's state (packet, relay pumps) lives only while a request
            // does, so an idle keep-alive connection's task stays a few hundred bytes.
            let next = Box::pin(self.handle(head)).await;
            self.record(started);
            match next {
                Next::KeepAlive if !self.worker.is_stopping() => continue,
                next => return self.finish(next).await,
            }
        }
    }

    /// Counts the request just ended (if it got a status) in the worker's stats.
    fn record(&mut self, started: Instant) {
        if self.status == 0 {
            return;
        }
        self.requests += 1;
        let stats = &self.worker.stats;
        stats.request_done(self.status, started.elapsed(), self.upstream_time);
        let (bytes_in, bytes_out) = (self.stream.bytes_read(), self.stream.bytes_written());
        stats.progress(self.live_key, self.requests, bytes_in, bytes_out);
    }

    /// Reads until `input` holds a complete head. `Ok(None)`: the client closed (or idled
    /// out) cleanly between requests.
    async fn read_head(&mut self) -> Result<Option<RequestHead>, Next> {
        let config = &self.worker.config;
        let limits = Limits {
            max_request_line: config.max_header_size.clamp(1024, 8 * 1024),
            max_head: config.max_header_size,
            max_headers: 100,
        };
        // The head timeout bounds the whole head, not each read: a client trickling a byte
        // at a time must not hold the connection forever.
        let mut deadline = None;
        loop {
            if !self.input.is_empty() {
                match http::parse_request(&self.input, &limits, &mut self.headers) {
                    Ok(Status::Complete(head)) => return Ok(Some(head)),
                    Ok(Status::Partial) => {}
                    Err(err) => {
                        tracing::info!(peer = %self.peer, status = err.status(), error = %err, "rejected request");
                        return Err(if self.send_error(err.status(), false).await {
                            Next::Linger
                        } else {
                            Next::Abort
                        });
                    }
                }
            }
            let idle = self.input.is_empty();
            let limit = if idle && self.requests > 0 {
                config.keepalive_timeout
            } else {
                let at =
                    *deadline.get_or_insert_with(|| Instant::now() + config.client_header_timeout);
                at.saturating_duration_since(Instant::now())
            };
            let mut input = std::mem::take(&mut self.input);
            if input.capacity() == 0 {
                // Most heads fit in a tiny buffer; a longer one grows it on the next read.
                input = bufpool::take(bufpool::TINY);
            }
            let Some(read) = self.read_or_stop(input, limit).await else {
                return Ok(None);
            };
            match read {
                Ok((0, input)) => {
                    if !idle {
                        tracing::debug!(peer = %self.peer, "client closed in the middle of a head");
                    }
                    self.input = input;
                    return Ok(None);
                }
                Ok((_, input)) => self.input = input,
                Err(IoError::Timeout) if idle => return Ok(None),
                Err(IoError::Timeout) => {
                    tracing::info!(peer = %self.peer, "request head timed out: 408");
                    // The timeout shut only the reading side, so the answer can still go out.
                    self.send_error(408, false).await;
                    return Err(Next::Close);
                }
                Err(IoError::Failed(kind)) => {
                    tracing::debug!(peer = %self.peer, ?kind, "client read failed");
                    return Err(Next::Abort);
                }
            }
        }
    }

    /// Reads more of a head, giving up at once when the server starts shutting down: no
    /// request is in flight yet, so nothing is lost, and a drain does not wait for a client
    /// that is slow to send its head. `None` when stopped (the socket is then shut down).
    async fn read_or_stop(
        &self,
        input: Vec<u8>,
        limit: Duration,
    ) -> Option<Result<(usize, Vec<u8>), IoError>> {
        let mut stop = self.worker.stop.clone();
        if *stop.borrow() {
            return None;
        }
        // Fill the buffer's room before growing it: a tiny idle buffer stays tiny for a
        // short head.
        let room = match input.capacity() - input.len() {
            0 => HEAD_READ_SIZE,
            room => room,
        };
        tokio::select! {
            read = read_some(&self.stream, input, room, limit) => Some(read),
            _ = stop.changed() => {
                // The read op is orphaned by the select: shutting down completes it.
                Stream::shutdown(&self.stream, Shutdown::Both);
                None
            }
        }
    }

    /// Sends a complete error answer (with `Connection: close`); false if it could not be
    /// written.
    async fn send_error(&mut self, status: u16, head_only: bool) -> bool {
        self.status = status;
        let mut out = bufpool::take(256);
        http::write_error_response(&mut out, status, false, head_only);
        match write_all(&self.stream, out, 0, self.worker.config.send_timeout).await {
            Ok(out) => {
                bufpool::give(out);
                true
            }
            Err(_) => false,
        }
    }

    /// Ends the connection as `next` says.
    async fn finish(&mut self, next: Next) {
        match next {
            // Closing with unread input makes the kernel send a reset, which can destroy the
            // end of our last response in flight: drain first, like nginx's lingering_close.
            Next::KeepAlive | Next::Close if self.has_unread_input() => self.linger().await,
            Next::KeepAlive | Next::Close => Stream::shutdown(&self.stream, Shutdown::Write),
            Next::Linger => self.linger().await,
            Next::Abort => Stream::shutdown(&self.stream, Shutdown::Both),
        }
        self.finished = true;
    }

    /// True if the client sent bytes ringway has not consumed (buffered here or in the
    /// kernel's receive queue).
    fn has_unread_input(&self) -> bool {
        if !self.input.is_empty() {
            return true;
        }
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the valid pointer; the fd is open while
        // `self.stream` lives.
        let rc = unsafe {
            libc::ioctl(
                self.stream.get_ref().as_raw_fd(),
                libc::FIONREAD,
                &mut pending,
            )
        };
        rc == 0 && pending > 0
    }

    /// Half-closes, then reads and discards what the client still sends (bounded in time and
    /// bytes), so our answer is not lost to a reset.
    async fn linger(&mut self) {
        Stream::shutdown(&self.stream, Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        let mut buf = std::mem::take(&mut self.input);
        while drained < LINGER_BYTES {
            buf.clear();
            let left = deadline.saturating_duration_since(Instant::now());
            match read_some(&self.stream, buf, HEAD_READ_SIZE, left).await {
                Ok((n, b)) if n > 0 => {
                    drained += n;
                    buf = b;
                }
                Ok((_, b)) => {
                    buf = b;
                    break;
                }
                Err(_) => return,
            }
        }
        self.input = buf;
        Stream::shutdown(&self.stream, Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection costs its task's future plus one tiny read buffer: the request
    /// machinery (relay pumps and all) is boxed per request, so it must not creep back in.
    #[test]
    fn an_idle_connection_is_small() {
        let config =
            crate::config::Config::from_cli(<crate::config::Cli as clap::Parser>::parse_from([
                "ringway",
                "--upstream",
                "unix:/nonexistent",
            ]))
            .unwrap();
        tokio_uring::start(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let local = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(local).unwrap();
            let (_stop, stop) = tokio::sync::watch::channel(false);
            let worker = std::rc::Rc::new(crate::server::Worker {
                upstreams: crate::upstream::Upstreams::new(&config.upstreams),
                config: std::sync::Arc::new(config),
                local,
                stop,
                stats: Default::default(),
                probes: Default::default(),
            });
            let stream = tokio_uring::net::TcpStream::from_std(client);
            let task = super::serve(stream, local, worker);
            let size = std::mem::size_of_val(&task);
            // Measured 1136 bytes (it was 2984 with the request state inline).
            assert!(size <= 1536, "the connection future is {size} bytes");
        });
    }
}
