//! Reading the PROXY protocol header a connection starts with when `proxy_protocol` is on,
//! before anything else (the HTTP request, or the TLS handshake: a load balancer in TCP
//! mode sends the header in front of the ClientHello). The parsing is sans-IO, in
//! `crate::proxy_protocol`; this is the socket side of it.

use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use tokio_uring::net::TcpStream;

use crate::buffer::{Buf, TINY};
use crate::client::DRAIN_IDLE_GRACE;
use crate::fail::Fail;
use crate::io::{IoError, Stream, read_some_kept};
use crate::proxy_protocol::{self, MAX_HEADER, Parsed};
use crate::worker::Worker;

/// The start of a connection, its PROXY header read.
pub(crate) struct Proxied {
    /// The address the connection is from: the header's source, or the TCP peer when the
    /// header names none (v2 LOCAL, v1 UNKNOWN: a load balancer's health check).
    pub(crate) source: SocketAddr,
    /// The header named the source (nginx's `$proxy_protocol_addr` has a value).
    pub(crate) named: bool,
    /// What came after the header in the same reads: the start of the request or of the
    /// TLS handshake.
    pub(crate) rest: Buf,
}

/// Reads the PROXY header at the start of `tcp` (accepted from `peer`) within `limit`.
/// `Ok(None)`: the connection closed before sending a byte, or the server is stopping;
/// nothing to report. `Err`: closed for want of a valid header; the caller reports it. On
/// any `Err` or `None` the socket has nothing in flight.
pub(crate) async fn read_proxy_header(
    tcp: &TcpStream,
    peer: SocketAddr,
    worker: &Worker,
    limit: Duration,
) -> Result<Option<Proxied>, Fail> {
    let deadline = Instant::now() + limit;
    let mut input = Buf::with_capacity(TINY);
    loop {
        match proxy_protocol::parse(&input).map_err(Fail::ProxyHeader)? {
            Parsed::Complete { len, source } => {
                let rest = match input.get(len..) {
                    Some(rest) if !rest.is_empty() => Buf::copy_of(rest),
                    _ => Buf::empty(),
                };
                return Ok(Some(Proxied {
                    source: source.unwrap_or(peer),
                    named: source.is_some(),
                    rest,
                }));
            }
            // The parser refuses anything longer than the longest header; this only guards
            // the reads below against a parser that would not.
            Parsed::Incomplete if input.len() >= MAX_HEADER => {
                return Err(Fail::ProxyHeader(
                    proxy_protocol::ProxyHeaderError::V2TooLong,
                ));
            }
            Parsed::Incomplete => {}
        }
        let limit = deadline.saturating_duration_since(Instant::now());
        // Never more than the longest header can still need: the rest of the connection's
        // bytes are read by the request (or TLS) reader as usual.
        let room = MAX_HEADER - input.len();
        let started = !input.is_empty();
        let read = read_some_kept(tcp, input, room.min(TINY), limit);
        let Some((read, kept)) = read_or_stop(tcp, read, started, worker).await else {
            return Ok(None);
        };
        input = kept;
        match read {
            Ok(0) if input.is_empty() => return Ok(None),
            // Counted with the invalid headers (found by review: it was counted nowhere).
            Ok(0) => {
                return Err(Fail::ProxyHeader(
                    proxy_protocol::ProxyHeaderError::Truncated,
                ));
            }
            Ok(_) => {}
            Err(IoError::Timeout) => return Err(Fail::ProxyHeaderTimeout),
            Err(IoError::Failed(kind)) => return Err(Fail::ClientIo(kind)),
        }
    }
}

/// `read`'s outcome, or `None` when the server stops before a connection that `started`
/// no header sent a byte: as a head's read, given [`DRAIN_IDLE_GRACE`] first (a connection
/// accepted just before the stop is served, as nginx serves it: only idle ones are
/// closed; found by review: its header and request were dropped). One that started its
/// header reads on, within its limit.
async fn read_or_stop(
    tcp: &TcpStream,
    read: impl Future<Output = (Result<usize, IoError>, Buf)>,
    started: bool,
    worker: &Worker,
) -> Option<(Result<usize, IoError>, Buf)> {
    tokio::pin!(read);
    let stop = &worker.stop;
    if !stop.is_set() {
        tokio::select! {
            biased;
            read = &mut read => return Some(read),
            () = stop.wait() => {}
        }
    }
    if started {
        return Some(read.await);
    }
    if let Ok(read) = tokio::time::timeout(DRAIN_IDLE_GRACE, &mut read).await {
        return Some(read);
    }
    // Shutting the reading side down completes the read: bytes that raced in are a header
    // to read on; none, and the connection is done.
    Stream::shutdown(tcp, Shutdown::Read);
    match read.await {
        (Ok(n), input) if n > 0 => Some((Ok(n), input)),
        _ => None,
    }
}
