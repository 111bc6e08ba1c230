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

impl Client {
    /// Reads until `input` holds a complete head. `Ok(None)`: the client closed (or idled
    /// out, or the server is stopping) cleanly between requests. `kept_alive` says a request
    /// was served already, so the wait for the first byte is the keep-alive timeout.
    pub(crate) async fn read_head(
        &mut self,
        worker: &Worker,
        kept_alive: bool,
    ) -> Result<Option<RequestHead>, Fail> {
        let config = &worker.config;
        let limits = Limits {
            max_request_line: config.max_header_size.clamp(1024, 8 * 1024),
            max_head: config.max_header_size,
            max_headers: MAX_REQUEST_HEADERS,
        };
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
                let at =
                    *deadline.get_or_insert_with(|| Instant::now() + config.client_header_timeout);
                at.saturating_duration_since(Instant::now())
            };
            let mut input = std::mem::replace(&mut self.input, Buf::empty());
            if input.capacity() == 0 {
                // Most heads fit in a tiny buffer; a longer one grows it on the next read.
                input = Buf::with_capacity(TINY);
            }
            let Some(read) = self.read_or_stop(input, limit, worker).await else {
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

    /// Reads more of a head, giving up at once when the server starts shutting down: no
    /// request is in flight yet, so nothing is lost, and a drain does not wait for a client
    /// that is slow to send its head. `None` when stopped (the socket's reading side is then
    /// shut down).
    async fn read_or_stop(
        &self,
        input: Buf,
        limit: Duration,
        worker: &Worker,
    ) -> Option<Result<(usize, Buf), IoError>> {
        let mut stop = worker.stop.clone();
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
                // The read op is orphaned by the select: shutting the reading side down
                // completes it.
                Stream::shutdown(&self.stream, Shutdown::Read);
                None
            }
        }
    }
}
