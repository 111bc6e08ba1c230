//! One request: body framing and limits, the uwsgi packet, sending it upstream.
//!
//! During a request `Conn::input` holds exactly the parsed head (the vars are encoded from
//! its spans); the bytes received after the head move to a second buffer, `rest`, that the
//! body is read from. What remains of `rest` when the request is done (pipelined requests)
//! becomes the next `input`.

use std::time::Instant;

use super::io::{IoError, read_some, write_all};
use super::{Conn, Next};
use crate::bufpool;
use crate::http::{BodyFraming, ChunkedDecoder, Method, RequestHead};
use crate::metrics::UpstreamError;
use crate::upstream::ConnectError;
use crate::uwsgi::{self, RequestEnv, UwsgiError};

/// Largest read while streaming a request body upstream.
const BODY_READ_SIZE: usize = 64 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the response side needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestInfo {
    pub head: RequestHead,
    /// The client may keep the connection (it asked, and we are not stopping).
    pub keep_alive: bool,
}

impl Conn {
    /// Serves the request whose head is at the start of `self.input`.
    pub(super) async fn handle(&mut self, head: RequestHead) -> Next {
        // No leftover (the usual case): no buffer either, so an idle keep-alive connection
        // holds none until its next read.
        let leftover = &self.input[head.head_len..];
        let mut rest = if leftover.is_empty() {
            Vec::new()
        } else {
            bufpool::take(leftover.len())
        };
        rest.extend_from_slice(leftover);
        self.input.truncate(head.head_len);

        let next = self.forward(head, &mut rest).await;

        // Whatever followed this request is the start of the next one.
        std::mem::swap(&mut self.input, &mut rest);
        bufpool::give(rest);
        next
    }

    async fn forward(&mut self, head: RequestHead, rest: &mut Vec<u8>) -> Next {
        let worker = self.worker.clone();
        let config = &worker.config;
        let info = RequestInfo {
            head,
            keep_alive: head.keep_alive && !worker.is_stopping(),
        };

        // A chunked body must be read whole first: its length goes into CONTENT_LENGTH.
        let chunked_body = match head.body {
            BodyFraming::Length(n) if n > config.max_body_size => {
                tracing::info!(peer = %self.peer, length = n, limit = config.max_body_size,
                    "request body over --max-body-size: 413");
                return self.reject(413, &head).await;
            }
            BodyFraming::Chunked => match self.read_chunked(&head, rest).await {
                Ok(body) => Some(body),
                Err(next) => return next,
            },
            _ => None,
        };
        let content_length = match (&chunked_body, head.body) {
            (Some(body), _) => Some(body.len() as u64),
            (None, BodyFraming::Length(n)) => Some(n),
            (None, _) => None,
        };

        let body_now = chunked_body.as_ref().map_or(rest.len(), Vec::len);
        let mut packet = bufpool::take(config.upstream_buffer_size + 4 + body_now);
        let env = RequestEnv {
            peer: self.peer,
            local: worker.local,
            https: false,
            document_root: &config.document_root,
            server_name: config.server_name.as_deref(),
            trusted_peer: config.is_trusted(self.peer.ip()),
            allow_underscores: config.allow_underscores_in_headers,
        };
        let encoded = uwsgi::encode_request(
            &self.input,
            &head,
            &self.headers,
            &env,
            content_length,
            config.upstream_buffer_size,
            &mut packet,
        );
        if let Err(err) = encoded {
            match err {
                UwsgiError::VarsTooLarge { size, limit } => tracing::warn!(
                    peer = %self.peer, size, limit,
                    "request headers make a uwsgi vars block larger than --upstream-buffer-size \
                     (uWSGI's buffer-size); answering 431. Raise both if such requests are legitimate"
                ),
                UwsgiError::BadPath => {
                    tracing::info!(peer = %self.peer, error = %err, "rejected request path")
                }
            }
            bufpool::give(packet);
            return self.reject(err.status(), &head).await;
        }

        // The body goes in the same write as the vars, read whole first: a client that sends
        // its body slowly must hold ringway's memory, not one of the few Python workers
        // (nginx buffers request bodies for the same reason).
        match (chunked_body, head.body) {
            (Some(body), _) => {
                packet.extend_from_slice(&body);
                bufpool::give(body);
            }
            (None, BodyFraming::Length(n)) => {
                if let Err(next) = self.read_body(&head, n, rest, &mut packet).await {
                    bufpool::give(packet);
                    return next;
                }
            }
            _ => {}
        }

        let connecting = Instant::now();
        let upstream = match worker
            .upstreams
            .connect(config.upstream_connect_timeout)
            .await
        {
            Ok(upstream) => upstream,
            Err(err) => {
                worker.stats.upstream_error(match err {
                    ConnectError::Refused => UpstreamError::Refused,
                    ConnectError::Busy => UpstreamError::Busy,
                    ConnectError::Timeout => UpstreamError::ConnectTimeout,
                });
                tracing::warn!(peer = %self.peer, error = %err, "no upstream reachable");
                bufpool::give(packet);
                return self.reject(err.status(), &head).await;
            }
        };
        let connected = Instant::now();
        worker
            .stats
            .upstream_connect
            .observe(connected - connecting);
        match write_all(&upstream, packet, 0, config.upstream_read_timeout).await {
            Ok(packet) => bufpool::give(packet),
            // uWSGI stopped reading: an app may answer without reading the body (a 405, a
            // redirect), and uWSGI then closes. Its answer is what the client should get, as
            // from nginx; if there is none, the relay answers 502.
            Err(IoError::Failed(kind)) => {
                tracing::debug!(peer = %self.peer, ?kind, "upstream stopped reading the request; relaying its answer");
            }
            Err(err) => {
                return self
                    .upstream_failed(err, &head, "sending the request")
                    .await;
            }
        }
        self.relay(upstream, info, connected).await
    }

    /// Appends a `length`-byte body to `packet`: what already arrived in `rest`, then reads
    /// (after a 100 Continue if the client waits for one). Bytes after the body stay in `rest`.
    async fn read_body(
        &mut self,
        head: &RequestHead,
        length: u64,
        rest: &mut Vec<u8>,
        packet: &mut Vec<u8>,
    ) -> Result<(), Next> {
        // Bounded by --max-body-size, checked before this is called.
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let have = rest.len().min(length);
        packet.reserve_exact(length);
        packet.extend_from_slice(&rest[..have]);
        rest.drain(..have);
        let mut left = length - have;
        if left > 0 && head.expect_continue && !self.send_continue().await {
            return Err(Next::Abort);
        }
        let timeout = self.worker.config.client_body_timeout;
        while left > 0 {
            let buf = std::mem::take(packet);
            // Reading at most what is left keeps a pipelined next request out of the body.
            *packet = match read_some(&self.stream, buf, left.min(BODY_READ_SIZE), timeout).await {
                Ok((0, _)) => {
                    tracing::info!(peer = %self.peer, left, "client closed in the middle of a body");
                    return Err(Next::Abort);
                }
                Ok((n, buf)) => {
                    left -= n;
                    buf
                }
                Err(err) => return Err(self.client_body_failed(err).await),
            };
        }
        Ok(())
    }

    /// Reads a whole chunked body into a pooled buffer, within the body limit. Bytes after it
    /// stay in `rest`.
    async fn read_chunked(
        &mut self,
        head: &RequestHead,
        rest: &mut Vec<u8>,
    ) -> Result<Vec<u8>, Next> {
        let config = &self.worker.config;
        let limit = config.max_body_size;
        let timeout = config.client_body_timeout;
        let mut decoder = ChunkedDecoder::new();
        let mut body = bufpool::take(bufpool::SMALL);
        let mut asked_continue = false;
        loop {
            let progress = match decoder.decode(rest, &mut body) {
                Ok(progress) => progress,
                Err(err) => {
                    tracing::info!(peer = %self.peer, error = %err, "bad chunked body: 400");
                    return Err(self.reject(err.status(), head).await);
                }
            };
            rest.drain(..progress.consumed);
            if body.len() as u64 > limit {
                tracing::info!(peer = %self.peer, limit, "chunked body over --max-body-size: 413");
                return Err(self.reject(413, head).await);
            }
            if progress.done {
                return Ok(body);
            }
            if head.expect_continue && !asked_continue {
                asked_continue = true;
                if !self.send_continue().await {
                    return Err(Next::Abort);
                }
            }
            let mut buf = std::mem::take(rest);
            if buf.capacity() == 0 {
                buf = bufpool::take(BODY_READ_SIZE);
            }
            match read_some(&self.stream, buf, BODY_READ_SIZE, timeout).await {
                Ok((0, _)) => {
                    tracing::info!(peer = %self.peer, "client closed in the middle of a chunked body");
                    return Err(Next::Abort);
                }
                Ok((_, buf)) => *rest = buf,
                Err(err) => return Err(self.client_body_failed(err).await),
            }
        }
    }

    async fn send_continue(&mut self) -> bool {
        let mut out = bufpool::take(CONTINUE.len());
        out.extend_from_slice(CONTINUE);
        match write_all(&self.stream, out, 0, self.worker.config.send_timeout).await {
            Ok(out) => {
                bufpool::give(out);
                true
            }
            Err(_) => false,
        }
    }

    async fn client_body_failed(&mut self, err: IoError) -> Next {
        match err {
            IoError::Timeout => {
                tracing::info!(peer = %self.peer, "request body timed out: 408");
                self.send_error(408, false).await;
                Next::Close
            }
            IoError::Failed(kind) => {
                tracing::debug!(peer = %self.peer, ?kind, "client read failed");
                Next::Abort
            }
        }
    }

    /// Maps an upstream I/O failure before the response head to 504 (timeout) or 502.
    pub(super) async fn upstream_failed(
        &mut self,
        err: IoError,
        head: &RequestHead,
        doing: &str,
    ) -> Next {
        let (status, kind) = match err {
            IoError::Timeout => (504, UpstreamError::Timeout),
            IoError::Failed(_) => (502, UpstreamError::Broken),
        };
        self.worker.stats.upstream_error(kind);
        tracing::warn!(peer = %self.peer, error = %err, status, "upstream failed while {doing}");
        self.reject(status, head).await
    }

    /// Answers `status` and ends the connection (draining what the client still sends).
    pub(super) async fn reject(&mut self, status: u16, head: &RequestHead) -> Next {
        if self.send_error(status, head.method == Method::Head).await {
            Next::Linger
        } else {
            Next::Abort
        }
    }
}
