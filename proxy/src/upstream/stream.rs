//! A connection to one upstream, over a unix socket or TCP.

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use tokio_uring::BufResult;
use tokio_uring::net::{TcpStream, UnixStream};

use crate::buffer::Buf;
use crate::clock::Coarse;
use crate::http::MAX_RESPONSE_HEAD;
use crate::io::{ByteCounts, Peeked, Progress, Stream, peek, sys_recv};
use crate::limits::Slot;

use super::balance::Busy;
use super::pool::ServerPool;

/// An upstream socket: what an idle kept connection is.
pub(crate) struct Socket {
    /// A kept (HTTP) connection's readiness on Tokio's reactor, registered for its whole
    /// life. Declared before the stream so that it is deregistered before the fd closes
    /// (and its number can be reused).
    readiness: Option<AsyncFd<SocketFd>>,
    stream: Kind,
    /// A kept connection's requests so far, this one included, and when it was opened
    /// (milliseconds on the coarse clock; 0: not yet counted): a pool keeps it for
    /// `keepalive_requests` requests within `keepalive_time`.
    requests: u32,
    opened_ms: u64,
}

enum Kind {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Socket {
    fn fd(&self) -> RawFd {
        match &self.stream {
            Kind::Unix(s) => s.as_raw_fd(),
            Kind::Tcp(s) => s.as_raw_fd(),
        }
    }

    /// Whether a kept connection still looks open: no end of stream and no stray bytes
    /// waiting. Nothing the reactor saw since its last read is enough where the request
    /// can be sent again (`peek: false`): nginx knows no more, and a connection the server
    /// closed after that shows as a failed send, then the request goes again. Otherwise
    /// one non-blocking peek looks at the socket itself.
    pub(super) fn looks_open(&self, peek: bool) -> bool {
        let Some(readiness) = &self.readiness else {
            return looks_open(self.fd());
        };
        let mut cx = Context::from_waker(Waker::noop());
        match readiness.poll_read_ready(&mut cx) {
            Poll::Pending => !peek || looks_open(self.fd()),
            Poll::Ready(Ok(mut guard)) => {
                let open = looks_open(self.fd());
                if open {
                    // What woke it was read before it went back: nothing waits now.
                    guard.clear_ready();
                }
                open
            }
            Poll::Ready(Err(_)) => false,
        }
    }
}

/// A kept socket's fd as Tokio's reactor sees it (owned by the [`Socket`] beside it,
/// which outlives the registration).
struct SocketFd(RawFd);

impl AsRawFd for SocketFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
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
    /// The request counted in flight to its server (`least_conn`).
    busy: Option<Busy>,
    /// HTTP: the pool it goes back to.
    pool: Option<Pool>,
    /// The answer allows another request on this connection (HTTP/1.1, framed, no close).
    reusable: Cell<bool>,
    /// It came from the pool (it served a request before).
    reused: bool,
    /// A write op on it was left in flight ([`UpstreamConn::abandon_write`]).
    write_abandoned: Cell<bool>,
    /// Bytes read from and written to the server for this request (nginx's
    /// `$upstream_bytes_received` and `$upstream_bytes_sent`): a kept socket goes back to
    /// its pool without them.
    counts: ByteCounts,
}

impl UpstreamConn {
    /// Whether the server has closed its side with nothing left unread: one non-blocking
    /// peek, which takes nothing.
    pub(crate) fn has_ended(&self) -> bool {
        self.socket
            .as_ref()
            .is_some_and(|socket| matches!(crate::io::peek(socket.fd()), crate::io::Peeked::Closed))
    }

    pub(super) fn unix(stream: UnixStream) -> Self {
        Self::new(Socket {
            readiness: None,
            stream: Kind::Unix(stream),
            requests: 0,
            opened_ms: 0,
        })
    }

    pub(super) fn tcp(stream: TcpStream) -> Self {
        Self::new(Socket {
            readiness: None,
            stream: Kind::Tcp(stream),
            requests: 0,
            opened_ms: 0,
        })
    }

    pub(super) fn new(socket: Socket) -> Self {
        UpstreamConn {
            socket: Some(socket),
            closed_cleanly: Cell::new(false),
            server: 0,
            slot: None,
            busy: None,
            pool: None,
            reusable: Cell::new(false),
            reused: false,
            write_abandoned: Cell::new(false),
            counts: ByteCounts::default(),
        }
    }

    /// The same connection, carrying one more request and going back to `pool` after a
    /// clean answer; `reused` if it came from there. A kept connection waits for its
    /// answers on Tokio's reactor, then reads them with a non-blocking `recv`: one
    /// registration for its life, where an io_uring read per answer cost the ring's
    /// submission, its task work and a second wake of the loop (see docs/ARCHITECTURE.md,
    /// "HTTP upstreams").
    pub(super) fn kept_in(mut self, pool: Pool, reused: bool) -> Self {
        self.pool = Some(pool);
        self.reused = reused;
        if let Some(socket) = &mut self.socket {
            socket.requests = socket.requests.saturating_add(1);
            if socket.opened_ms == 0 {
                socket.opened_ms = Coarse::now().millis();
            }
        }
        if let Some(socket) = &mut self.socket
            && socket.readiness.is_none()
        {
            // SAFETY: the fd is the socket's, open; the registration is stored beside it
            // and dropped first (field order), so it never outlives the fd.
            match unsafe {
                AsyncFd::register_with_interest(SocketFd(socket.fd()), Interest::READABLE)
            } {
                Ok(readiness) => socket.readiness = Some(readiness),
                // It still works through io_uring reads, and is peeked at before reuse.
                Err(err) => tracing::debug!(error = %err, "upstream readiness registration failed"),
            }
        }
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
        if !self.reusable.get() || self.write_abandoned.get() {
            return;
        }
        if let (Some(pool), Some(socket)) = (self.pool.take(), self.socket.take()) {
            let now = Instant::now();
            let open_for = Coarse::now().millis().saturating_sub(socket.opened_ms);
            // Past `keepalive_requests` or `keepalive_time`, the socket closes here.
            if pool.keeps_after(socket.requests, Duration::from_millis(open_for)) {
                pool.put(socket, now);
            }
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

    /// Keeps the server's slot (`max_conns`) and its count of this request (`least_conn`)
    /// until the request is done with this connection: it closes, or goes back to its pool.
    pub(super) fn hold(&mut self, slot: Option<Slot>, busy: Option<Busy>) {
        self.slot = slot;
        self.busy = busy;
    }

    /// Closes the connection with nothing in flight on it: the upstream is done with us.
    pub(crate) fn close(self) {
        self.closed_cleanly.set(true);
    }

    /// Resolves once the server has sent bytes while the request is still going out (an
    /// answer that does not wait for the whole body: a 403 or 413 to an upload), reading
    /// none of them. Never resolves on an end of stream or an error: the send fails on
    /// those by itself. A kept connection waits on its own registration; another one is
    /// registered for the wait only, so a request that goes out at once, never waiting,
    /// costs no registration.
    pub(crate) async fn answer_started(&self) {
        let Some(socket) = &self.socket else {
            return std::future::pending().await;
        };
        let fd = socket.fd();
        let registered;
        let readiness = match &socket.readiness {
            Some(readiness) => readiness,
            None => {
                // SAFETY: the fd stays open and the same socket for the registration's
                // life: it lives in this future, which borrows the connection that owns
                // the fd.
                let made =
                    unsafe { AsyncFd::register_with_interest(SocketFd(fd), Interest::READABLE) };
                let Ok(made) = made else {
                    return std::future::pending().await;
                };
                registered = made;
                &registered
            }
        };
        loop {
            let Ok(mut ready) = readiness.readable().await else {
                return std::future::pending().await;
            };
            match peek_final_answer(fd) {
                // Left ready: the head's read finds the bytes at once.
                Peeked::Bytes => return,
                Peeked::Closed | Peeked::Failed => return std::future::pending().await,
                Peeked::Nothing => ready.clear_ready(),
            }
        }
    }

    /// Notes that a write was left in flight (the server answered before taking the whole
    /// request): the socket is shut down when the connection goes, so that the op ends, and
    /// the connection is never kept.
    pub(crate) fn abandon_write(&self) {
        self.write_abandoned.set(true);
        self.reusable.set(false);
    }
}

impl Drop for UpstreamConn {
    fn drop(&mut self) {
        if !self.closed_cleanly.get() || self.write_abandoned.get() {
            self.shutdown(Shutdown::Both);
        }
    }
}

impl Stream for UpstreamConn {
    async fn read_append(&self, buf: Buf, max: usize) -> BufResult<usize, Buf> {
        let (read, buf) = self.read_append_uncounted(buf, max).await;
        if let Ok(n) = read {
            self.counts.add_read(n);
        }
        (read, buf)
    }

    async fn write_from(&self, buf: Buf, from: usize, progress: &Progress) -> BufResult<(), Buf> {
        let len = buf.len().saturating_sub(from);
        let (written, buf) = match &self.socket {
            Some(socket) => socket.stream.write_from(buf, from, progress).await,
            None => (Err(not_connected()), buf),
        };
        if written.is_ok() {
            self.counts.add_written(len as u64);
        }
        (written, buf)
    }

    fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
        let read = match &self.socket {
            Some(socket) => socket.stream.read_now(buf, max),
            None => Some(Err(not_connected())),
        };
        if let Some(Ok(n)) = read {
            self.counts.add_read(n);
        }
        read
    }

    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        let written = match &self.socket {
            Some(socket) => socket.stream.write_now(bytes),
            None => Err(not_connected()),
        };
        if let Ok(n) = written {
            self.counts.add_written(n as u64);
        }
        written
    }

    fn shutdown(&self, how: Shutdown) {
        if let Some(socket) = &self.socket {
            Stream::shutdown(&socket.stream, how);
        }
    }
}

impl UpstreamConn {
    /// Bytes read from the server and written to it for this request so far.
    pub(crate) fn traffic(&self) -> (u64, u64) {
        (self.counts.read(), self.counts.written())
    }

    /// A read, as [`Stream::read_append`] without the count: a kept connection waits on
    /// its own registration and reads with a non-blocking `recv`; another through an op.
    async fn read_append_uncounted(&self, mut buf: Buf, max: usize) -> BufResult<usize, Buf> {
        let Some(socket) = &self.socket else {
            return (Err(not_connected()), buf);
        };
        let Some(readiness) = &socket.readiness else {
            return socket.stream.read_append(buf, max).await;
        };
        loop {
            let mut guard = match readiness.readable().await {
                Ok(guard) => guard,
                Err(e) => return (Err(e), buf),
            };
            let room = max.min(buf.capacity() - buf.len());
            match socket.stream.read_now(&mut buf, max) {
                Some(Ok(n)) => {
                    // A short read emptied the socket: the next bytes bring a new event.
                    if n < room {
                        guard.clear_ready();
                    }
                    return (Ok(n), buf);
                }
                Some(Err(e)) => return (Err(e), buf),
                None => guard.clear_ready(),
            }
        }
    }
}

fn not_connected() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

/// The socket itself, through io_uring ops and non-blocking calls.
impl Stream for Kind {
    async fn read_append(&self, buf: Buf, max: usize) -> BufResult<usize, Buf> {
        match self {
            Kind::Unix(s) => s.read_append(buf, max).await,
            Kind::Tcp(s) => s.read_append(buf, max).await,
        }
    }

    async fn write_from(&self, buf: Buf, from: usize, progress: &Progress) -> BufResult<(), Buf> {
        match self {
            Kind::Unix(s) => s.write_from(buf, from, progress).await,
            Kind::Tcp(s) => s.write_from(buf, from, progress).await,
        }
    }

    fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
        match self {
            Kind::Unix(s) => s.read_now(buf, max),
            Kind::Tcp(s) => s.read_now(buf, max),
        }
    }

    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Kind::Unix(s) => s.write_now(bytes),
            Kind::Tcp(s) => s.write_now(bytes),
        }
    }

    fn shutdown(&self, how: Shutdown) {
        match self {
            Kind::Unix(s) => Stream::shutdown(s, how),
            Kind::Tcp(s) => Stream::shutdown(s, how),
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

/// Bytes the early-answer watch looks at first: room for a few interim heads.
const INTERIM_PEEK: usize = 2048;

/// [`peek`], where interim answers (`100 Continue` unasked, `103 Early Hints`) are not an
/// answer: a server that sends one before it has read the request's body goes on reading
/// it, so the body must go on being sent (found by review: the send was given up, and the
/// server waited for the rest of the body until the read timeout). `Bytes` once a final
/// answer's first byte is there; the interim heads are left in place for the head's read
/// to skip. A look full of interim heads is taken again as large as a head may be (found by
/// review: 2 KiB of `Link` lines in a `103` gave the body up).
fn peek_final_answer(fd: RawFd) -> Peeked {
    let mut first = [0u8; INTERIM_PEEK];
    match peek_past_interim_heads(fd, &mut first) {
        Some(peeked) => peeked,
        // Rare: one allocation, on the watch's path only.
        None => peek_past_interim_heads(fd, &mut vec![0u8; MAX_RESPONSE_HEAD])
            // Interim heads past the head's bound: the head's read refuses them.
            .unwrap_or(Peeked::Bytes),
    }
}

/// One look at what `fd` holds, into `buf`: `None` when it filled `buf` with interim heads.
fn peek_past_interim_heads(fd: RawFd, buf: &mut [u8]) -> Option<Peeked> {
    // SAFETY: `fd` is an open socket of the caller's; recv writes at most `buf.len()`
    // bytes into `buf`; MSG_DONTWAIT keeps it from blocking, MSG_PEEK leaves the bytes.
    let n = unsafe {
        sys_recv(
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return Some(peek(fd));
    };
    if n == 0 {
        return Some(Peeked::Closed);
    }
    Some(match past_interim_heads(buf.get(..n).unwrap_or_default()) {
        Some(rest) if !rest.is_empty() => Peeked::Bytes,
        _ if n == buf.len() => return None,
        // Interim heads only, the last one maybe not whole yet.
        _ => Peeked::Nothing,
    })
}

/// What follows the complete interim heads `bytes` starts with; `None` when an interim
/// head is not complete yet, or its status line not far enough to tell (the empty rest:
/// nothing after them). Status lines and line ends are taken as the head's parser takes
/// them: several spaces before the status, bare LF line ends.
fn past_interim_heads(mut bytes: &[u8]) -> Option<&[u8]> {
    while is_interim(bytes)? {
        let end = head_len(bytes)?;
        bytes = bytes.get(end..).unwrap_or_default();
    }
    Some(bytes)
}

/// Whether `bytes` start with an interim (1xx but 101) status line; `None` when they stop
/// before its status. uWSGI answers an HTTP/2 request's SERVER_PROTOCOL, `HTTP/2.0`, in its
/// status lines.
fn is_interim(bytes: &[u8]) -> Option<bool> {
    const VERSIONS: [&[u8]; 3] = [b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0"];
    let known = |version: &[u8]| {
        let n = bytes.len().min(version.len());
        bytes.get(..n) == version.get(..n)
    };
    if bytes.is_empty() || !VERSIONS.into_iter().any(known) {
        return Some(false);
    }
    let after = bytes.get(b"HTTP/1.1".len()..)?;
    let status = after.iter().position(|&b| b != b' ')?;
    if status == 0 || after.get(status) != Some(&b'1') {
        return Some(false);
    }
    // A 101 is no interim answer: it is the switch, final whatever follows it (found by
    // review: a bare 101 kept the body going out, and the switch was joined).
    Some(after.get(status..status + 3)? != b"101")
}

/// The length of the head `bytes` starts with, up to its empty line (CRLF or bare LF ends).
fn head_len(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(at, _)| match bytes.get(at + 1..) {
            Some([b'\n', ..]) => Some(at + 2),
            Some([b'\r', b'\n', ..]) => Some(at + 3),
            _ => None,
        })
}

#[cfg(test)]
mod interim_tests {
    use super::past_interim_heads;

    #[test]
    fn interim_heads_are_skipped_and_a_final_one_is_found() {
        let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n";
        assert_eq!(past_interim_heads(hints), Some(&b""[..]));
        let mut two = hints.repeat(2);
        two.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(past_interim_heads(&two), Some(&b"HTTP/1.1 200 OK\r\n"[..]));
        assert_eq!(past_interim_heads(b"HTTP/1.1 100 Continue\r\n"), None);
        assert_eq!(
            past_interim_heads(b"HTTP/1.1 413 "),
            Some(&b"HTTP/1.1 413 "[..])
        );
        assert_eq!(past_interim_heads(b"HT"), None, "too short to tell");
        assert_eq!(past_interim_heads(b"HTTP/1.1 "), None, "too short to tell");
        assert_eq!(past_interim_heads(b"junk"), Some(&b"junk"[..]));
        // As the head's parser takes them (found by review: taken as final answers).
        let spaced = b"HTTP/1.1  100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(
            past_interim_heads(spaced),
            Some(&b"HTTP/1.1 200 OK\r\n"[..])
        );
        let bare_lf = b"HTTP/1.1 103 Early Hints\nLink: </a.css>\n\nHTTP/1.1 413 ";
        assert_eq!(past_interim_heads(bare_lf), Some(&b"HTTP/1.1 413 "[..]));
        assert_eq!(past_interim_heads(b"HTTP/1.1 100 Continue\n"), None);
        assert_eq!(
            past_interim_heads(b"HTTP/1.1 100 Continue\r\n\r"),
            None,
            "an empty line not whole yet"
        );
        // A 101 is the switch, final with nothing after it.
        let switch = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(past_interim_heads(switch), Some(&switch[..]));
        assert_eq!(
            past_interim_heads(b"HTTP/1.1 10"),
            None,
            "too short to tell"
        );
        // uWSGI's answer to an HTTP/2 request names the request's protocol.
        let to_h2 = b"HTTP/2.0 103 Early Hints\r\n\r\nHTTP/2.0 200 OK\r\n";
        assert_eq!(past_interim_heads(to_h2), Some(&b"HTTP/2.0 200 OK\r\n"[..]));
    }
}
