//! The upstream set of one worker: round robin over the configured uWSGI sockets, with
//! failover on connect errors.
//!
//! uWSGI closes every connection after one response (the uwsgi protocol has no keep-alive),
//! so each request connects anew. Connects go through a non-blocking socket2 socket: a uWSGI
//! whose listen backlog is full answers EAGAIN at once, which ringway turns into 503, where a
//! tokio-uring connect would wait forever and could not be cancelled (TOKIO_URING.md §1).
//! After a refused connect an upstream is skipped for [`DOWN_FOR`], like nginx's
//! `max_fails=1 fail_timeout=10s`, unless every upstream is down.

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio_uring::BufResult;
use tokio_uring::buf::Slice;
use tokio_uring::net::{TcpStream, UnixStream};

use crate::config::UpstreamAddr;
use crate::conn::io::Stream;

/// How long an upstream that refused a connection is skipped.
const DOWN_FOR: Duration = Duration::from_secs(10);

/// A connected upstream.
pub enum UpstreamStream {
    /// uWSGI on a unix socket.
    Unix(UnixStream),
    /// uWSGI on TCP.
    Tcp(TcpStream),
}

impl Stream for UpstreamStream {
    async fn read_into(&self, buf: Slice<Vec<u8>>) -> BufResult<usize, Slice<Vec<u8>>> {
        match self {
            UpstreamStream::Unix(s) => s.read_into(buf).await,
            UpstreamStream::Tcp(s) => s.read_into(buf).await,
        }
    }

    async fn write_from(&self, buf: Vec<u8>, from: usize) -> BufResult<(), Vec<u8>> {
        match self {
            UpstreamStream::Unix(s) => s.write_from(buf, from).await,
            UpstreamStream::Tcp(s) => s.write_from(buf, from).await,
        }
    }

    fn shutdown(&self, how: Shutdown) {
        match self {
            UpstreamStream::Unix(s) => Stream::shutdown(s, how),
            UpstreamStream::Tcp(s) => Stream::shutdown(s, how),
        }
    }
}

/// Why no upstream could be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Every upstream refused or failed (502).
    #[error("connection refused or failed")]
    Refused,
    /// An upstream's listen backlog is full (503).
    #[error("upstream busy: listen backlog full")]
    Busy,
    /// The connect did not finish in time (504).
    #[error("connect timed out")]
    Timeout,
}

impl ConnectError {
    /// Status ringway answers with.
    pub fn status(self) -> u16 {
        match self {
            ConnectError::Refused => 502,
            ConnectError::Busy => 503,
            ConnectError::Timeout => 504,
        }
    }
}

struct Member {
    addr: UpstreamAddr,
    down_until: Cell<Option<Instant>>,
}

/// One worker's view of the upstreams (not shared between threads).
pub struct Upstreams {
    members: Vec<Member>,
    next: Cell<usize>,
}

impl Upstreams {
    /// Builds the set from the configured addresses.
    pub fn new(addrs: &[UpstreamAddr]) -> Self {
        let members = addrs
            .iter()
            .map(|addr| Member {
                addr: addr.clone(),
                down_until: Cell::new(None),
            })
            .collect();
        Upstreams {
            members,
            next: Cell::new(0),
        }
    }

    /// Connects to the next upstream in turn, trying the others on failure. Upstreams marked
    /// down are tried last.
    pub async fn connect(&self, limit: Duration) -> Result<UpstreamStream, ConnectError> {
        let n = self.members.len();
        let start = self.next.get();
        self.next.set((start + 1) % n.max(1));
        let now = Instant::now();
        let is_up = |m: &Member| m.down_until.get().is_none_or(|t| t <= now);
        let order = (0..n).map(|i| &self.members[(start + i) % n]);
        let up_first = order
            .clone()
            .filter(|m| is_up(m))
            .chain(order.filter(|m| !is_up(m)));

        let mut worst = ConnectError::Refused;
        for member in up_first {
            match connect_one(&member.addr, limit).await {
                Ok(stream) => {
                    member.down_until.set(None);
                    return Ok(stream);
                }
                Err(err) => {
                    tracing::warn!(upstream = %member.addr, error = %err, "upstream connect failed");
                    let kind = classify(&err);
                    if kind == ConnectError::Refused {
                        member.down_until.set(Some(Instant::now() + DOWN_FOR));
                    }
                    // Busy and timeout say more to the client than refused does.
                    if kind != ConnectError::Refused {
                        worst = kind;
                    }
                }
            }
        }
        Err(worst)
    }
}

fn classify(err: &io::Error) -> ConnectError {
    match err.kind() {
        io::ErrorKind::WouldBlock => ConnectError::Busy,
        io::ErrorKind::TimedOut => ConnectError::Timeout,
        _ => ConnectError::Refused,
    }
}

async fn connect_one(addr: &UpstreamAddr, limit: Duration) -> io::Result<UpstreamStream> {
    match addr {
        UpstreamAddr::Unix(path) => {
            let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
            // A unix connect completes or fails at once; EAGAIN means the backlog is full.
            socket.connect(&SockAddr::unix(path)?)?;
            socket.set_nonblocking(false)?;
            Ok(UpstreamStream::Unix(UnixStream::from_std(socket.into())))
        }
        UpstreamAddr::Tcp(sa) => {
            let kind = Type::STREAM.nonblocking().cloexec();
            let socket = Socket::new(Domain::for_address(*sa), kind, None)?;
            socket.set_nodelay(true)?;
            match socket.connect(&SockAddr::from(*sa)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    // Wait for writability on tokio's reactor: dropping that wait is safe,
                    // unlike dropping an io_uring connect.
                    // SAFETY: the socket owns its fd and is neither closed nor replaced
                    // while registered; `into_inner` deregisters it before it is used again.
                    let fd = unsafe { AsyncFd::register(socket)? };
                    match tokio::time::timeout(limit, fd.writable()).await {
                        Ok(ready) => drop(ready?),
                        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                    }
                    let socket = fd.into_inner();
                    if let Some(e) = socket.take_error()? {
                        return Err(e);
                    }
                    socket.set_nonblocking(false)?;
                    return Ok(UpstreamStream::Tcp(TcpStream::from_std(socket.into())));
                }
                Err(e) => return Err(e),
            }
            socket.set_nonblocking(false)?;
            Ok(UpstreamStream::Tcp(TcpStream::from_std(socket.into())))
        }
    }
}
