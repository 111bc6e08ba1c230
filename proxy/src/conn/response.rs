//! The upstream's answer: read its head, write the client's head, relay the body.
//!
//! The body is relayed by two pumps joined in the connection's task: one reads the upstream
//! into pooled buffers, up to `--response-buffer-size` ahead of the client; the other writes
//! them to the client. So a Python worker is released as soon as it has answered, however
//! slowly the client reads (what nginx's `uwsgi_buffering` does, in memory).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::Shutdown;
use std::time::Instant;

use tokio::sync::Notify;

use super::io::{Counted, IoError, Stream, read_some, write_all};
use super::request::RequestInfo;
use super::{Conn, Next};
use crate::bufpool;
use crate::http::{
    self, ChunkedDecoder, ClientFraming, HttpError, Method, ResponseFraming, ResponseHead, Status,
    Version,
};
use crate::metrics::UpstreamError;
use crate::upstream::UpstreamStream;

/// First read of an upstream response.
const HEAD_READ_SIZE: usize = 16 * 1024;
/// Largest upstream response head accepted (502 beyond).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most upstream header lines accepted.
const MAX_RESPONSE_HEADERS: usize = 100;
/// Read size while relaying a body.
const RELAY_READ_SIZE: usize = 64 * 1024;
/// Pieces smaller than this are copied out of their read buffer before being queued.
const SMALL_PIECE: usize = 4096;
/// Room kept in front of relayed data for a chunk-size line (`%08x\r\n`): leading zeros are
/// legal in chunk-size, and a fixed width lets the line be written in place, without a copy.
const CHUNK_PREFIX: usize = 10;

impl Conn {
    /// Reads the upstream's response and relays it to the client.
    pub(super) async fn relay(
        &mut self,
        upstream: UpstreamStream,
        req: RequestInfo,
        connected: Instant,
    ) -> Next {
        let upstream = ShutOnDrop(Some(upstream));
        let worker = self.worker.clone();
        let config = &worker.config;
        let is_head = req.head.method == Method::Head;

        // Reused across the connection's requests; an error path below just drops it.
        let mut headers = std::mem::take(&mut self.response_headers);
        headers.clear();
        let mut resp = bufpool::take(HEAD_READ_SIZE);
        let head = loop {
            match http::parse_response(&resp, is_head, MAX_RESPONSE_HEADERS, &mut headers) {
                Ok(Status::Complete(head)) if head.status >= 200 => break head,
                Ok(Status::Complete(head)) => {
                    tracing::warn!(
                        status = head.status,
                        "upstream sent an interim response: 502"
                    );
                    return self.bad_upstream(UpstreamError::BadResponse, &req).await;
                }
                Ok(Status::Partial) if resp.len() < MAX_RESPONSE_HEAD => {}
                Ok(Status::Partial) => {
                    tracing::warn!("upstream response head over {MAX_RESPONSE_HEAD} bytes: 502");
                    return self.bad_upstream(UpstreamError::BadResponse, &req).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "malformed upstream response head: 502");
                    return self.bad_upstream(UpstreamError::BadResponse, &req).await;
                }
            }
            resp = match read_some(
                upstream.get(),
                resp,
                HEAD_READ_SIZE,
                config.upstream_read_timeout,
            )
            .await
            {
                Ok((0, _)) => {
                    tracing::warn!("upstream closed before a complete response head: 502");
                    return self.bad_upstream(UpstreamError::Broken, &req).await;
                }
                Ok((_, resp)) => resp,
                Err(err) => {
                    return self
                        .upstream_failed(err, &req.head, "reading the response head")
                        .await;
                }
            };
        };

        self.upstream_time = Some(connected.elapsed());
        self.status = head.status;
        let client_chunked = req.head.version == Version::Http11;
        let (framing, mut keep_alive) = match head.framing {
            ResponseFraming::None => (ClientFraming::None, req.keep_alive),
            ResponseFraming::Length(n) => (ClientFraming::Length(n), req.keep_alive),
            ResponseFraming::Chunked | ResponseFraming::UntilClose if client_chunked => {
                (ClientFraming::Chunked, req.keep_alive)
            }
            ResponseFraming::Chunked | ResponseFraming::UntilClose => {
                (ClientFraming::UntilClose, false)
            }
        };
        keep_alive &= !worker.is_stopping();

        let mut out = bufpool::take(head.head_len + resp.len() + 64);
        http::write_response_head(
            &mut out,
            req.head.version,
            head.status,
            head.reason.of(&resp),
            &resp,
            &headers,
            framing,
            keep_alive,
        );
        self.response_headers = headers;
        let mut reframe = Reframe::new(&head, framing);
        let fed = reframe.feed(&resp[head.head_len..], &mut out);
        bufpool::give(resp);
        if let Err(err) = fed {
            tracing::warn!(error = %err, "malformed upstream body: 502");
            bufpool::give(out);
            return self.bad_upstream(UpstreamError::BadResponse, &req).await;
        }

        let result = if reframe.done {
            // The whole answer is here: free the Python worker before talking to the client.
            upstream.close();
            write_all(&self.stream, out, 0, config.send_timeout)
                .await
                .map(bufpool::give)
                .map_err(Failure::Client)
        } else {
            let pipe = Pipe::new(out, config.response_buffer_size);
            let pumps = tokio::try_join!(
                pump_upstream(upstream, &pipe, &mut reframe, config.upstream_read_timeout),
                pump_client(&self.stream, &pipe, config.send_timeout),
            );
            pipe.recycle();
            pumps.map(|_| ())
        };
        match result {
            Ok(()) if framing == ClientFraming::UntilClose => Next::Close,
            Ok(()) if keep_alive => Next::KeepAlive,
            Ok(()) => Next::Close,
            Err(Failure::Client(err)) => {
                tracing::debug!(peer = %self.peer, error = %err, "client went away during the response");
                Next::Abort
            }
            Err(Failure::Upstream(err)) => {
                worker.stats.upstream_error(match err {
                    UpstreamFailure::Io(IoError::Timeout) => UpstreamError::Timeout,
                    UpstreamFailure::Chunked(_) => UpstreamError::BadResponse,
                    UpstreamFailure::Io(_) | UpstreamFailure::Truncated => UpstreamError::Broken,
                });
                tracing::warn!(peer = %self.peer, error = %err, "upstream failed mid-response; closing the client connection");
                Next::Abort
            }
        }
    }
}

impl Conn {
    /// Answers 502 for an upstream that broke the protocol before its head was relayed.
    async fn bad_upstream(&mut self, kind: UpstreamError, req: &RequestInfo) -> Next {
        self.worker.stats.upstream_error(kind);
        self.reject(502, &req.head).await
    }
}

/// Shuts an upstream socket down when dropped, so that a pump dropped with a read in flight
/// completes that read (TOKIO_URING.md §1). [`ShutOnDrop::close`] is the clean end, with
/// nothing in flight: a plain close, one syscall less per request.
struct ShutOnDrop(Option<UpstreamStream>);

impl ShutOnDrop {
    fn get(&self) -> &UpstreamStream {
        // Only `close` (which consumes self) takes the stream out.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("upstream used after close"))
    }

    fn close(mut self) {
        drop(self.0.take());
    }
}

impl Drop for ShutOnDrop {
    fn drop(&mut self) {
        if let Some(upstream) = &self.0 {
            Stream::shutdown(upstream, Shutdown::Both);
        }
    }
}

/// What ended a relay early.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("client: {0}")]
    Client(IoError),
    #[error("upstream: {0}")]
    Upstream(UpstreamFailure),
}

#[derive(Debug, thiserror::Error)]
enum UpstreamFailure {
    #[error("{0}")]
    Io(IoError),
    #[error("closed before the end of the body")]
    Truncated,
    #[error("bad chunked body: {0}")]
    Chunked(HttpError),
}

/// Turns upstream body bytes into client body bytes.
struct Reframe {
    source: Source,
    client_chunked: bool,
    done: bool,
}

enum Source {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl Reframe {
    fn new(head: &ResponseHead, framing: ClientFraming) -> Self {
        let (source, done) = match head.framing {
            ResponseFraming::None => (Source::Length(0), true),
            ResponseFraming::Length(n) => (Source::Length(n), n == 0),
            ResponseFraming::Chunked => (Source::Chunked(ChunkedDecoder::new()), false),
            ResponseFraming::UntilClose => (Source::UntilClose, false),
        };
        Reframe {
            source,
            client_chunked: framing == ClientFraming::Chunked,
            done,
        }
    }

    /// True when bytes read from upstream can go to the client as they are.
    fn is_passthrough(&self) -> bool {
        matches!(self.source, Source::Length(_))
            || (matches!(self.source, Source::UntilClose) && !self.client_chunked)
    }

    /// Appends the client form of `input` to `out`.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        if self.done || input.is_empty() {
            return Ok(());
        }
        match &mut self.source {
            Source::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                *left -= take as u64;
                self.done = *left == 0;
            }
            Source::UntilClose => self.emit(input, out),
            Source::Chunked(decoder) => {
                let mut plain = bufpool::take(input.len());
                let progress = decoder
                    .decode(input, &mut plain)
                    .map_err(UpstreamFailure::Chunked)?;
                self.emit(&plain, out);
                bufpool::give(plain);
                if progress.done {
                    self.finish(out);
                }
            }
        }
        Ok(())
    }

    fn emit(&self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if self.client_chunked {
            http::write_chunk_header(out, data.len());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(data);
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.client_chunked {
            out.extend_from_slice(http::LAST_CHUNK);
        }
        self.done = true;
    }

    /// The upstream closed: the end of an until-close body, or a truncation.
    fn eof(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        match self.source {
            _ if self.done => Ok(()),
            Source::UntilClose => {
                self.finish(out);
                Ok(())
            }
            Source::Length(_) | Source::Chunked(_) => Err(UpstreamFailure::Truncated),
        }
    }

    /// Turns one upstream read (its data at `buf[CHUNK_PREFIX..]`) into client bytes, in
    /// place when the framing allows: returns the buffer and where the client bytes start.
    fn frame_read(&mut self, mut buf: Vec<u8>) -> Result<(Vec<u8>, usize), UpstreamFailure> {
        let data_len = buf.len() - CHUNK_PREFIX;
        if self.is_passthrough() {
            if let Source::Length(left) = &mut self.source {
                let take = data_len.min(usize::try_from(*left).unwrap_or(usize::MAX));
                buf.truncate(CHUNK_PREFIX + take);
                *left -= take as u64;
                self.done = *left == 0;
            }
            return Ok((buf, CHUNK_PREFIX));
        }
        if matches!(self.source, Source::UntilClose) {
            // Chunked to the client: write a fixed-width size line into the room left for it.
            let mut line = [0u8; CHUNK_PREFIX];
            let mut cursor = &mut line[..];
            let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{data_len:08x}\r\n"));
            buf[..CHUNK_PREFIX].copy_from_slice(&line);
            buf.extend_from_slice(b"\r\n");
            return Ok((buf, 0));
        }
        let mut out = bufpool::take(data_len + 32);
        let fed = self.feed(&buf[CHUNK_PREFIX..], &mut out);
        bufpool::give(buf);
        fed.map(|()| (out, 0))
    }
}

/// Buffers between the two pumps.
struct Pipe {
    /// Buffers with the offset their client bytes start at.
    queue: RefCell<VecDeque<(Vec<u8>, usize)>>,
    queued: Cell<usize>,
    limit: usize,
    ended: Cell<bool>,
    data: Notify,
    space: Notify,
}

impl Pipe {
    fn new(first: Vec<u8>, limit: usize) -> Self {
        let pipe = Pipe {
            queue: RefCell::new(VecDeque::with_capacity(4)),
            queued: Cell::new(0),
            limit,
            ended: Cell::new(false),
            data: Notify::new(),
            space: Notify::new(),
        };
        pipe.push(first, 0);
        pipe
    }

    /// Queues `buf[from..]`. Memory is what counts against the limit, not data: an upstream
    /// writing a few bytes at a time must not queue thousands of mostly empty buffers, so
    /// small pieces are first copied into buffers of their own size.
    fn push(&self, buf: Vec<u8>, from: usize) {
        if buf.len() <= from {
            bufpool::give(buf);
            return;
        }
        let (buf, from) = if buf.len() - from < SMALL_PIECE && buf.capacity() > 2 * SMALL_PIECE {
            let small = buf[from..].to_vec();
            bufpool::give(buf);
            (small, 0)
        } else {
            (buf, from)
        };
        self.queued.set(self.queued.get() + buf.capacity());
        self.queue.borrow_mut().push_back((buf, from));
        self.data.notify_one();
    }

    fn pop(&self) -> Option<(Vec<u8>, usize)> {
        let (buf, from) = self.queue.borrow_mut().pop_front()?;
        self.queued
            .set(self.queued.get().saturating_sub(buf.capacity()));
        self.space.notify_one();
        Some((buf, from))
    }

    fn recycle(&self) {
        for (buf, _) in self.queue.borrow_mut().drain(..) {
            bufpool::give(buf);
        }
    }
}

async fn pump_upstream(
    upstream: ShutOnDrop,
    pipe: &Pipe,
    reframe: &mut Reframe,
    timeout: std::time::Duration,
) -> Result<(), Failure> {
    let fail = Failure::Upstream;
    while !reframe.done {
        while pipe.queued.get() >= pipe.limit {
            pipe.space.notified().await;
        }
        let mut buf = bufpool::take(CHUNK_PREFIX + RELAY_READ_SIZE + 2);
        buf.resize(CHUNK_PREFIX, 0);
        match read_some(upstream.get(), buf, RELAY_READ_SIZE, timeout).await {
            Ok((0, buf)) => {
                bufpool::give(buf);
                let mut tail = bufpool::take(16);
                reframe.eof(&mut tail).map_err(fail)?;
                pipe.push(tail, 0);
            }
            Ok((_, buf)) => {
                let (buf, from) = reframe.frame_read(buf).map_err(fail)?;
                pipe.push(buf, from);
            }
            Err(err) => return Err(fail(UpstreamFailure::Io(err))),
        }
    }
    // The upstream is released here, before the client has necessarily read anything.
    upstream.close();
    pipe.ended.set(true);
    pipe.data.notify_one();
    Ok(())
}

async fn pump_client(
    client: &Counted<tokio_uring::net::TcpStream>,
    pipe: &Pipe,
    timeout: std::time::Duration,
) -> Result<(), Failure> {
    loop {
        match pipe.pop() {
            Some((buf, from)) => {
                let buf = write_all(client, buf, from, timeout)
                    .await
                    .map_err(Failure::Client)?;
                bufpool::give(buf);
            }
            None if pipe.ended.get() => return Ok(()),
            None => pipe.data.notified().await,
        }
    }
}
