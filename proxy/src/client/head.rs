//! Reading a request head.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::Client;
use crate::buffer::{Buf, TINY};
use crate::fail::{Fail, Part};
use crate::http::{self, Limits, RequestHead, Status};
use crate::io::{IoError, Stream, read_some};
use crate::worker::Worker;

/// Bytes read from a client at a time while waiting for a head that outgrew its buffer.
const HEAD_READ_SIZE: usize = 8 * 1024;

/// Most header lines a request may have (431 beyond), as nginx's default buffers allow.
const MAX_REQUEST_HEADERS: usize = 100;

/// While the server drains, how long a connection waiting for its next request still has to
/// send it. A keep-alive client sends its next request right after reading an answer: closing
/// its connection in that moment would fail the request it is sending, so it gets this long
/// (and its answer says `Connection: close`); a connection still quiet then is closed. Used
/// here for a connection whose task waits for a head, and by `conn/idle.rs` for the parked.
pub(crate) const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// What a non-blocking read found ([`Client::read_now`]).
pub(crate) enum ReadNow {
    /// Bytes, now in `input`; `more` when they filled the buffer, so that more may wait.
    Bytes { more: bool },
    /// None waiting.
    Nothing,
    /// The client closed its side.
    Closed,
    /// The socket failed.
    Failed(std::io::ErrorKind),
}

impl Client {
    /// Reads what is waiting on a plain socket, without waiting, into a tiny buffer (a
    /// parked keep-alive connection, woken because its socket turned readable). One `recv`:
    /// the bytes are there, so this costs less than an io_uring read and its completion.
    pub(crate) fn read_now(&mut self) -> ReadNow {
        if !self.input.is_empty() {
            return ReadNow::Bytes { more: true };
        }
        let mut input = Buf::with_capacity(TINY);
        let room = input.capacity();
        let read = match self.stream.read_now(&mut input, room) {
            Some(Ok(0)) => ReadNow::Closed,
            Some(Ok(n)) => ReadNow::Bytes { more: n == room },
            Some(Err(e)) => ReadNow::Failed(e.kind()),
            None => ReadNow::Nothing,
        };
        // Nothing read: no buffer kept either.
        self.input = if input.is_empty() {
            Buf::empty()
        } else {
            input
        };
        read
    }

    /// Reads until `input` holds a complete head. `Ok(None)`: the client closed (or idled
    /// out, or the server is stopping) cleanly between requests. `kept_alive` says a request
    /// was served already, so the wait for the first byte is the keep-alive timeout.
    /// `head_timeout` bounds the whole head (the configuration's `client_header_timeout`,
    /// or less for a connection a limit refused).
    pub(crate) async fn read_head(
        &mut self,
        worker: &Worker,
        kept_alive: bool,
        head_timeout: Duration,
    ) -> Result<Option<RequestHead>, Fail> {
        let config = &worker.config;
        let limits = Limits {
            max_request_line: config.max_header_size.clamp(1024, 8 * 1024),
            max_head: config.max_header_size,
            max_headers: MAX_REQUEST_HEADERS,
        };
        if self.headers.capacity() == 0 {
            self.headers.reserve_exact(super::HEADER_SPANS);
        }
        // The head timeout bounds the whole head, not each read: a client trickling a byte
        // at a time must not hold the connection forever.
        let mut deadline = None;
        loop {
            if !self.input.is_empty() {
                match http::parse_request(&mut self.input, &limits, &mut self.headers) {
                    Ok(Status::Complete(head)) => return Ok(Some(head)),
                    Ok(Status::Partial) => {}
                    Err(err) => return Err(Fail::Request(err)),
                }
            }
            let idle = self.input.is_empty();
            let limit = if idle && kept_alive {
                config.keepalive_timeout
            } else {
                let at = *deadline.get_or_insert_with(|| Instant::now() + head_timeout);
                at.saturating_duration_since(Instant::now())
            };
            let mut input = std::mem::replace(&mut self.input, Buf::empty());
            if input.capacity() == 0 {
                // Most heads fit in a tiny buffer; a longer one grows it on the next read.
                input = Buf::with_capacity(TINY);
            }
            let Some(read) = self.read_or_stop(input, limit, idle, worker).await else {
                // Stopping: a TLS session still ends with close_notify (the stop shut only
                // the reading side).
                self.stream.get_ref().close_notify().await;
                self.finished = true;
                return Ok(None);
            };
            match read {
                Ok((0, input)) => {
                    self.input = input;
                    if !idle {
                        return Err(Fail::ClientClosed(Part::Head));
                    }
                    self.finished = true;
                    return Ok(None);
                }
                Ok((_, input)) => self.input = input,
                Err(IoError::Timeout) if idle => {
                    // Idle past the keep-alive timeout: a TLS session ends with close_notify,
                    // as nginx's does (the timeout shut only the reading side).
                    self.stream.get_ref().close_notify().await;
                    self.finished = true;
                    return Ok(None);
                }
                // The timeout shut only the reading side, so the 408 can still go out.
                Err(IoError::Timeout) => return Err(Fail::ClientTimeout(Part::Head)),
                Err(IoError::Failed(kind)) => return Err(Fail::ClientIo(kind)),
            }
        }
    }

    /// Reads more of a head; when the server starts shutting down, an `idle` connection
    /// (no byte of its next request read) is given up [`DRAIN_IDLE_GRACE`] later unless a
    /// request comes, and a head already begun is read on (a request in flight).
    /// `None` when given up (the socket's reading side is then shut down).
    async fn read_or_stop(
        &self,
        input: Buf,
        limit: Duration,
        idle: bool,
        worker: &Worker,
    ) -> Option<Result<(usize, Buf), IoError>> {
        let mut stop = worker.stop.clone();
        // Fill the buffer's room before growing it: a tiny idle buffer stays tiny for a
        // short head.
        let room = match input.capacity() - input.len() {
            0 => HEAD_READ_SIZE,
            room => room,
        };
        let read = read_some(&self.stream, input, room, limit);
        tokio::pin!(read);
        if !*stop.borrow() {
            tokio::select! {
                read = &mut read => return Some(read),
                _ = stop.changed() => {}
            }
        }
        if !idle {
            return Some(read.await);
        }
        // Boxed: the drain's timer must not grow every idle connection's task.
        Box::pin(async move {
            if let Ok(read) = tokio::time::timeout(DRAIN_IDLE_GRACE, &mut read).await {
                return Some(read);
            }
            // Shutting the reading side down completes the read: bytes that raced in are
            // a request to serve still; none, and the connection is done.
            Stream::shutdown(&self.stream, Shutdown::Read);
            match read.await {
                Ok((n, input)) if n > 0 => Some(Ok((n, input))),
                _ => None,
            }
        })
        .await
    }
}
