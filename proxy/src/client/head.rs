//! Reading a request head.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::Client;
use crate::buffer::{Buf, TINY};
use crate::fail::{Fail, Part};
use crate::http::{self, Limits, RequestHead, Status};
use crate::io::{IoError, Stream, read_some_kept};
use crate::metrics::Phase;
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

/// When a partial head is worth parsing again. httparse starts from the first byte each
/// time, so parsing after every read would cost a client trickling a byte per segment the
/// square of its head's size (at a 1 MiB `max_header_size`, a core for the whole header
/// timeout). A head is parsed when its request line ends (a bad one is refused at once),
/// when the end of the head may have arrived, and when it passes a size limit (refused by
/// the parse): a linear cost, the same verdicts. Empty lines before the request line
/// (which RFC 9112 §2.2 lets a server skip, and httparse and nginx skip) are no line and
/// no head end: trickled in, each would have been parsed again from the first byte (found
/// by review).
#[derive(Default)]
struct ParseGate {
    /// Bytes of the head looked at already.
    seen: usize,
    /// Where the request line starts, once a byte other than an empty line's came.
    start: Option<usize>,
    /// The request line ended.
    line_ended: bool,
    /// The method ended (its space came) or was found bad: no more of it to look at.
    method_looked_at: bool,
}

impl ParseGate {
    fn worth_parsing(&mut self, input: &[u8], limits: &Limits) -> bool {
        if self.start.is_none() {
            let unseen = input.get(self.seen..).unwrap_or_default();
            let line = unseen.iter().position(|&b| b != b'\r' && b != b'\n');
            self.start = line.map(|at| self.seen + at);
        }
        let Some(start) = self.start else {
            // Empty lines only: nothing to parse until they outgrow the head's limit.
            self.seen = input.len();
            return input.len() > limits.max_head;
        };
        // The end of a head (`\n\r\n` or `\n\n`) may straddle the last read.
        let from = self.seen.saturating_sub(2).max(start);
        let new = input.get(from..).unwrap_or_default();
        let first_line_end = !self.line_ended && new.contains(&b'\n');
        let head_end = new.windows(2).any(|w| w == b"\n\n" || w == b"\n\r");
        let line_len = input.len() - start;
        let over_limit = input.len() > limits.max_head
            || (!self.line_ended && !first_line_end && line_len > limits.max_request_line);
        self.line_ended |= first_line_end;
        // A byte no method has (a TLS or SOCKS handshake on the plain port, a binary probe)
        // is refused at once, as nginx's parser refuses it, not after the header timeout
        // (found by review: 408 after waiting for a line end that never came).
        let mut bad_method = false;
        if !self.method_looked_at {
            let method = input.get(self.seen.max(start)..).unwrap_or_default();
            if let Some(&after) = method.iter().find(|&&b| !http::is_token(b)) {
                self.method_looked_at = true;
                bad_method = after != b' ';
            }
        }
        let worth = first_line_end || head_end || over_limit || bad_method;
        self.seen = input.len();
        worth
    }
}

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
            max_request_line: request_line_limit(config.max_header_size),
            max_head: config.max_header_size,
            max_headers: MAX_REQUEST_HEADERS,
        };
        if self.headers.capacity() == 0 {
            self.headers.reserve_exact(super::HEADER_SPANS);
        }
        // The head timeout bounds the whole head, not each read: a client trickling a byte
        // at a time must not hold the connection forever.
        let mut deadline = None;
        let mut gate = ParseGate::default();
        if !self.input.is_empty() {
            self.head_began = Instant::now();
        }
        loop {
            // nginx's stub_status counts a connection as reading from a head's first byte.
            let phase = if self.input.is_empty() {
                Phase::Waiting
            } else {
                Phase::Reading
            };
            self.enter(phase, &worker.stats);
            if gate.worth_parsing(&self.input, &limits) {
                match http::parse_request(&mut self.input, &limits, &mut self.headers) {
                    Ok(Status::Complete(head)) => return Ok(Some(head)),
                    Ok(Status::Partial) => {}
                    Err(err) => return Err(Fail::Request(err)),
                }
            }
            let idle = self.input.is_empty();
            let limit = if idle && kept_alive {
                // The configuration in use: a reload during the last request, whose signal
                // no wait saw, holds this one to the new timeout too (found by review: a
                // lowered timeout left such connections the old one; parked ones had it).
                crate::generation::keepalive_timeout().unwrap_or(config.keepalive_timeout)
            } else {
                let at = *deadline.get_or_insert_with(|| Instant::now() + head_timeout);
                at.saturating_duration_since(Instant::now())
            };
            let mut input = std::mem::replace(&mut self.input, Buf::empty());
            if input.capacity() == 0 {
                // Most heads fit in a tiny buffer; a longer one grows it on the next read.
                input = Buf::with_capacity(TINY);
            }
            let wait = match (idle, kept_alive) {
                (false, _) => Wait::Head,
                (true, false) => Wait::FirstByte,
                (true, true) => Wait::KeptAlive,
            };
            let Some((read, input)) = self.read_or_stop(input, limit, wait, worker).await else {
                // Stopping: a TLS session still ends with close_notify (the stop shut only
                // the reading side).
                self.stream.get_ref().close_notify().await;
                self.finished = true;
                return Ok(None);
            };
            // Kept whatever came: a head cut short is logged with what came of it.
            self.input = input;
            match read {
                Ok(0) => {
                    if !idle {
                        return Err(Fail::ClientClosed(Part::Head));
                    }
                    self.finished = true;
                    return Ok(None);
                }
                Ok(_) if idle => self.head_began = Instant::now(),
                Ok(_) => {}
                Err(IoError::Timeout) if idle => {
                    // Idle past the keep-alive timeout: a TLS session ends with close_notify,
                    // as nginx's does (the timeout shut only the reading side).
                    self.stream.get_ref().close_notify().await;
                    self.finished = true;
                    return Ok(None);
                }
                // The timeout shut only the reading side, so the 408 can still go out.
                Err(IoError::Timeout) => return Err(Fail::ClientTimeout(Part::Head)),
                // A reset in the middle of a head is a head cut short, as for nginx.
                Err(IoError::Failed(_)) if !idle => return Err(Fail::ClientClosed(Part::Head)),
                Err(IoError::Failed(kind)) => return Err(Fail::ClientIo(kind)),
            }
        }
    }

    /// Reads more of a head; when the server starts shutting down, an idle connection (no
    /// byte of its next request read) is given up [`DRAIN_IDLE_GRACE`] later unless a
    /// request comes, and a head already begun is read on (a request in flight). After a
    /// reload, a keep-alive wait ends at the new `keepalive_timeout` at the latest, as a
    /// parked connection's does (`IdleConns::retune`). `None` when given up (the socket's
    /// reading side is then shut down).
    async fn read_or_stop(
        &self,
        input: Buf,
        limit: Duration,
        wait: Wait,
        worker: &Worker,
    ) -> Option<(Result<usize, IoError>, Buf)> {
        let stop = &worker.stop;
        // Fill the buffer's room before growing it: a tiny idle buffer stays tiny for a
        // short head.
        let room = match input.capacity() - input.len() {
            0 => HEAD_READ_SIZE,
            room => room,
        };
        let read = read_some_kept(&self.stream, input, room, limit);
        tokio::pin!(read);
        if !stop.is_set() {
            tokio::select! {
                read = &mut read => return Some(read),
                () = stop.changed() => {}
            }
        }
        // Boxed: what a stop or a reload does must not grow every connection's task.
        Box::pin(self.after_change(read, wait, worker)).await
    }

    /// [`Client::read_or_stop`] once the server began stopping or a reload came, with its
    /// `read` still in flight.
    async fn after_change<F>(
        &self,
        mut read: std::pin::Pin<&mut F>,
        wait: Wait,
        worker: &Worker,
    ) -> Option<(Result<usize, IoError>, Buf)>
    where
        F: Future<Output = (Result<usize, IoError>, Buf)>,
    {
        let stop = &worker.stop;
        let mut grace = DRAIN_IDLE_GRACE;
        while !stop.is_set() {
            if wait == Wait::KeptAlive {
                grace = self.reloaded_grace(worker);
                break;
            }
            // A head, or a first byte: waited for as before, but a first byte under rules
            // that no longer keep the connection is not (found by review: its request was
            // read, then dropped).
            tokio::select! {
                read = read.as_mut() => return Some(read),
                () = stop.changed() => {
                    if wait == Wait::FirstByte && !stop.is_set() && !self.kept_now(worker) {
                        grace = Duration::ZERO;
                        break;
                    }
                }
            }
        }
        if wait == Wait::Head {
            return Some(read.await);
        }
        let mut until = tokio::time::Instant::now() + grace;
        let ended = loop {
            tokio::select! {
                read = tokio::time::timeout_at(until, read.as_mut()) => break read.ok(),
                // Waiting out a reload's keepalive_timeout, the stop's grace still holds,
                // and another reload's rules hold too (found by review: a second reload
                // went unseen by a connection still waiting out the first).
                () = stop.changed(), if !stop.is_set() => {
                    let limit = match stop.is_set() {
                        true => DRAIN_IDLE_GRACE,
                        false => self.reloaded_grace(worker),
                    };
                    until = until.min(tokio::time::Instant::now() + limit);
                }
            }
        };
        if let Some(read) = ended {
            return Some(read);
        }
        // Shutting the reading side down completes the read: bytes that raced in are a
        // request to serve still; none, and the connection is done.
        Stream::shutdown(&self.stream, Shutdown::Read);
        match read.await {
            (Ok(n), input) if n > 0 => Some((Ok(n), input)),
            _ => None,
        }
    }
}

impl Client {
    /// How much longer a kept-alive connection waits for its next request after a reload
    /// (nginx closes its idle connections then): the new `keepalive_timeout`, or nothing for
    /// a connection the new configuration does not keep ([`Client::kept_now`]), closed
    /// before its next request is sent (found by review: that request was read, then
    /// dropped unanswered).
    fn reloaded_grace(&self, worker: &Worker) -> Duration {
        match self.kept_now(worker) {
            true => crate::generation::keepalive_timeout().unwrap_or(DRAIN_IDLE_GRACE),
            false => Duration::ZERO,
        }
    }

    /// Whether the configuration in use keeps this connection, which `worker`'s took: not
    /// a TLS session its client certificate rules do not admit, nor a connection accepted
    /// under the other `proxy_protocol` (asked before each kept-alive request is read, as
    /// `Conn::follow_reload` would close it after).
    pub(crate) fn kept_now(&self, worker: &Worker) -> bool {
        // Asked after every request: no reload since, nothing to look at.
        crate::generation::newer_than(worker).is_none_or(|now| {
            now.config.proxy_protocol == worker.config.proxy_protocol
                && crate::conn::admitted_by(&now, self.stream.get_ref().tls())
        })
    }
}

/// What a head read waits for, which decides how a stop or a reload ends the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The rest of a head begun: read on (a request in flight).
    Head,
    /// A new connection's first byte: given up at a stop, after its grace.
    FirstByte,
    /// The next request of a kept-alive connection: given up at a stop, after its grace,
    /// and held to the new `keepalive_timeout` at a reload.
    KeptAlive,
}

/// The longest request line in a head of at most `max_head` bytes: a quarter of it, at least
/// 8 KiB, never more than the head. nginx's `large_client_header_buffers 4 SIZE` takes a
/// line of one buffer (SIZE) in a head of four: its `max_header_size` (4 × SIZE) gives
/// ringway the same line limit.
fn request_line_limit(max_head: usize) -> usize {
    (max_head / 4).max(8 * 1024).min(max_head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_takes_one_of_nginxs_four_buffers() {
        // `large_client_header_buffers 4 8k` (nginx's default), `4 10k`, `4 16k`.
        assert_eq!(request_line_limit(32 * 1024), 8 * 1024);
        assert_eq!(request_line_limit(40 * 1024), 10 * 1024);
        assert_eq!(request_line_limit(64 * 1024), 16 * 1024);
        // ringway's default head, and heads smaller than the line's floor.
        assert_eq!(request_line_limit(16 * 1024), 8 * 1024);
        assert_eq!(request_line_limit(4 * 1024), 4 * 1024);
    }

    const LIMITS: Limits = Limits {
        max_request_line: 64,
        max_head: 256,
        max_headers: 100,
    };

    /// The reads (byte counts) after which the gate lets `wire`, arriving a byte at a time,
    /// be parsed.
    fn parsed_after(wire: &[u8]) -> Vec<usize> {
        let mut gate = ParseGate::default();
        (1..=wire.len())
            .filter(|&n| gate.worth_parsing(&wire[..n], &LIMITS))
            .collect()
    }

    #[test]
    fn a_head_trickled_in_is_parsed_at_its_request_line_and_its_end_only() {
        let wire = b"GET /a HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: 2\r\n\r\n";
        assert_eq!(parsed_after(wire), vec![17, wire.len() - 1, wire.len()]);
        let bare = b"GET / HTTP/1.1\nHost: h\n\n";
        assert_eq!(parsed_after(bare), vec![15, bare.len()]);
    }

    #[test]
    fn a_head_past_a_limit_is_parsed_so_that_it_is_refused() {
        // A request line with no end: parsed once past max_request_line, and on.
        let long_line = [b'a'; 80];
        assert_eq!(parsed_after(&long_line).first(), Some(&65));
        // Header lines with no empty line: parsed once past max_head.
        let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
        endless.resize(300, b'x');
        let after = parsed_after(&endless);
        assert_eq!(after.first(), Some(&16));
        assert_eq!(after.get(1), Some(&257));
    }

    #[test]
    fn empty_lines_before_the_request_line_are_not_parsed_each() {
        // Trickled in, they never ask for a parse (each did, from the first byte), until
        // they outgrow the head's limit (then refused).
        let blank = b"\r\n".repeat(200);
        assert_eq!(parsed_after(&blank), (257..=400).collect::<Vec<_>>());
        // A request after them: parsed at its request line's end and at its own end.
        let mut wire = b"\r\n\n\r\n".to_vec();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(parsed_after(&wire), vec![21, wire.len() - 1, wire.len()]);
        // Its request line's length counts from its own start.
        let mut long = b"\r\n".repeat(40);
        long.extend_from_slice(&[b'a'; 80]);
        assert_eq!(parsed_after(&long).first(), Some(&(80 + 65)));
    }

    #[test]
    fn a_byte_no_method_has_is_parsed_at_once() {
        // A TLS ClientHello, a SOCKS greeting, a lower bound of junk: no line end needed.
        for junk in [&b"\x16\x03\x01\x02\x00"[..], b"\x05\x01\x00", b"GE\x00"] {
            let mut gate = ParseGate::default();
            assert!(gate.worth_parsing(junk, &LIMITS), "{junk:?}");
        }
        // A method coming a byte at a time, then its space, is no reason to parse; nor is
        // what follows the space, until the line ends.
        let mut gate = ParseGate::default();
        let line = b"PROPFIND /a\x01b";
        for end in 1..=line.len() {
            assert!(!gate.worth_parsing(&line[..end], &LIMITS), "{end}");
        }
        let mut gate = ParseGate::default();
        assert!(!gate.worth_parsing(b"\r\nGET", &LIMITS));
        assert!(gate.worth_parsing(b"\r\nGET\x7f", &LIMITS));
    }

    #[test]
    fn what_is_already_there_is_looked_at_whole() {
        // Pipelined bytes left by the previous request: one look, one parse.
        let mut gate = ParseGate::default();
        assert!(gate.worth_parsing(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", &LIMITS));
        let mut gate = ParseGate::default();
        assert!(!gate.worth_parsing(b"", &LIMITS));
    }
}
