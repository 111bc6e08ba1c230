//! The bytes between an HTTP/2 stream and the HTTP/1.1 pipeline serving it: two bounded
//! in-memory lanes on the worker's thread, one each way, in place of a socket pair (which
//! cost a `socketpair`, two closes and four system calls per request, and wake-ups through
//! the kernel). The pipeline's end ([`PipelineEnd`]) is a client stream like a socket, with
//! a socket's ends: end of stream once the other side is done, a broken pipe once it is gone.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_uring::BufResult;

use crate::buffer::Buf;
use crate::io::{Progress, Stream};
use crate::tls::Peer;

/// Bytes a lane holds unread at most: its writer waits for room beyond that. Two pooled
/// reads' worth: h2 holds up to 16 KiB more of a stream's answer, the pipeline one piece.
const LANE: usize = 32 * 1024;
/// The most a lane's vector holds: half a lane taken (see [`Lane::take`]), a lane unread.
const HELD_MAX: usize = LANE + LANE / 2;

/// One direction: a writer appends, a reader takes from the front.
#[derive(Default)]
struct Lane {
    bytes: RefCell<Vec<u8>>,
    /// Bytes at the front already taken.
    taken: Cell<usize>,
    /// The writer is done: once the bytes are taken, the reader sees the end.
    ended: Cell<bool>,
    /// The reader is gone: writes fail, and reads find the end.
    abandoned: Cell<bool>,
    /// Bytes or the end came (one reader waits at a time).
    readable: Notify,
    /// Room came, or the reader left (one writer waits at a time).
    writable: Notify,
}

impl Lane {
    /// Appends what fits of `bytes`: how much that was (0: full).
    fn push(&self, bytes: &[u8]) -> io::Result<usize> {
        if self.abandoned.get() || self.ended.get() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut held = self.bytes.borrow_mut();
        let room = LANE.saturating_sub(held.len() - self.taken.get());
        let n = room.min(bytes.len());
        if n > 0 {
            // Grown by powers of two, as a vector grows, but never past the most it can
            // hold (half a lane taken and not yet moved out, a lane unread).
            let len = held.len();
            let wanted = (len + n).next_power_of_two().min(HELD_MAX);
            held.reserve_exact(wanted.saturating_sub(len));
            held.extend_from_slice(&bytes[..n]);
            self.readable.notify_one();
        }
        Ok(n)
    }

    /// Moves up to `max` waiting bytes to the end of `out`: `Some(0)` at the end of the
    /// stream, `None` when nothing waits yet.
    fn take(&self, out: &mut Vec<u8>, max: usize) -> Option<usize> {
        let mut held = self.bytes.borrow_mut();
        let from = self.taken.get();
        let n = (held.len() - from).min(max);
        if n == 0 {
            // A reader that gave up (its side shut down) reads the end, as from a socket.
            return (self.ended.get() || self.abandoned.get()).then_some(0);
        }
        out.extend_from_slice(&held[from..from + n]);
        if from + n == held.len() {
            held.clear();
            self.taken.set(0);
        } else if from + n >= LANE / 2 {
            // A reader that never catches up whole must not let the taken front grow with
            // the stream: what is left moves to the front (at most a lane's worth).
            held.drain(..from + n);
            self.taken.set(0);
        } else {
            self.taken.set(from + n);
        }
        self.writable.notify_one();
        Some(n)
    }

    fn is_empty(&self) -> bool {
        self.bytes.borrow().len() == self.taken.get()
    }

    /// The writer is done.
    fn end(&self) {
        self.ended.set(true);
        self.readable.notify_one();
    }

    /// The reader is gone.
    fn abandon(&self) {
        self.abandoned.set(true);
        self.writable.notify_one();
        self.readable.notify_one();
    }

    async fn read(&self, out: &mut Vec<u8>, max: usize) -> usize {
        loop {
            if let Some(n) = self.take(out, max) {
                return n;
            }
            self.readable.notified().await;
        }
    }

    async fn write_all(&self, bytes: &[u8], progress: &Progress) -> io::Result<()> {
        let mut at = 0;
        while at < bytes.len() {
            match self.push(&bytes[at..])? {
                0 => self.writable.notified().await,
                n => {
                    at += n;
                    if at < bytes.len() {
                        progress.made();
                    }
                }
            }
        }
        Ok(())
    }
}

struct Pipe {
    /// The request: the stream writes, the pipeline reads.
    request: Lane,
    /// The answer: the pipeline writes, the stream reads.
    answer: Lane,
    /// The connection's TLS session, as a socket's peer is known on its end.
    tls: Peer,
    /// The connection's socket cookie (0: none), for `$connection`.
    connection: u64,
    /// Told (every waiter) when the stream's end goes: the client reset it, or its
    /// connection ended.
    stream_gone: Notify,
    /// The client reset the stream, or the stream's end went (its connection ended) before
    /// the request was whole: a body cut so is the client leaving (nginx's 499), not a
    /// request cut short for breaking h2's rules (400).
    left: Cell<bool>,
    /// The `send_timeout` of the request's route, once routed: how long the stream waits
    /// for the client's window before it is reset.
    send_timeout: Cell<Option<Duration>>,
}

/// A new pipe for a stream of the TLS session `tls` on the connection whose socket cookie is
/// `connection`, its request lane holding `head` already (the head is not copied again):
/// the stream's end and the pipeline's.
pub(super) fn pipe(tls: Peer, connection: u64, head: Vec<u8>) -> (StreamEnd, PipelineEnd) {
    let pipe = Rc::new(Pipe {
        request: Lane {
            bytes: RefCell::new(head),
            ..Lane::default()
        },
        answer: Lane::default(),
        tls,
        connection,
        stream_gone: Notify::new(),
        left: Cell::new(false),
        send_timeout: Cell::new(None),
    });
    (StreamEnd(Rc::clone(&pipe)), PipelineEnd(pipe))
}

/// The HTTP/2 stream's end: writes the request, reads the answer.
pub(super) struct StreamEnd(Rc<Pipe>);

impl StreamEnd {
    /// Writes all of `bytes`, waiting for room; fails once the pipeline is gone.
    pub(super) async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        self.0.request.write_all(bytes, &Progress::default()).await
    }

    /// Reads up to `max` answer bytes into `out`; 0 at the end of the answer.
    pub(super) async fn read(&self, out: &mut Vec<u8>, max: usize) -> usize {
        self.0.answer.read(out, max).await
    }

    /// The request is cut short (a body longer than its length): the pipeline reads the
    /// end.
    pub(super) fn end_request(&self) {
        self.0.request.end();
    }

    /// The client reset the stream: the pipeline reads the end, and takes it for the
    /// client leaving.
    pub(super) fn client_left(&self) {
        self.0.left.set(true);
        self.0.request.end();
    }

    /// The `send_timeout` of the request's route, once the pipeline has routed it.
    pub(super) fn send_timeout(&self) -> Option<Duration> {
        self.0.send_timeout.get()
    }
}

impl Drop for StreamEnd {
    /// The client's side is gone as a closed socket is: the pipeline reads the end and its
    /// writes fail.
    fn drop(&mut self) {
        // Gone while the request was still being written (its connection ended, the stream
        // was reset): the client left. A request already ended (whole, or cut for breaking
        // h2's rules) stays as it was (found by review: a body h2 cut short, whose stream
        // end then went, was logged 499 where nginx logs 400).
        if !self.0.request.ended.get() {
            self.0.left.set(true);
        }
        self.0.request.end();
        self.0.answer.abandon();
        self.0.stream_gone.notify_waiters();
    }
}

/// The pipeline's end: a client stream (`ClientStream::Bridged`).
pub(crate) struct PipelineEnd(Rc<Pipe>);

impl PipelineEnd {
    /// Sets the `send_timeout` of the request's route, for the stream's waits on the
    /// client's window.
    pub(crate) fn set_send_timeout(&self, limit: Duration) {
        self.0.send_timeout.set(Some(limit));
    }

    /// The version, cipher and client certificate of the connection's TLS session.
    pub(crate) fn tls(&self) -> &Peer {
        &self.0.tls
    }

    /// The connection's socket cookie (0: none).
    pub(crate) fn connection_number(&self) -> u64 {
        self.0.connection
    }

    /// Whether the client reset the stream, or its connection ended.
    pub(crate) fn client_left(&self) -> bool {
        self.0.left.get()
    }

    /// Whether request bytes wait unread (a socket's `FIONREAD`).
    pub(crate) fn has_unread(&self) -> bool {
        !self.0.request.is_empty()
    }

    /// Whether the stream's side is gone now (as [`PipelineEnd::gone`] would resolve).
    pub(crate) fn is_gone(&self) -> bool {
        let request = &self.0.request;
        request.ended.get() && request.is_empty() || self.0.answer.abandoned.get()
    }

    /// Resolves once the stream's side is gone (the client reset it, or its connection
    /// ended): the pipeline's "client gone".
    pub(crate) async fn gone(&self) {
        let request = &self.0.request;
        loop {
            if self.is_gone() {
                return;
            }
            if !request.is_empty() {
                // Bytes wait: this stream's body (a pipe carries one request, never a
                // pipelined next one), which says nothing of the client, and which the
                // pipeline reads (its lane's wake-ups are its own). Only the stream's end
                // ends this wait (found by review: a reset went unseen while a body
                // waited behind an auth request or a limit_req delay). No task runs
                // between the look above and the wait's first poll.
                self.0.stream_gone.notified().await;
                continue;
            }
            request.readable.notified().await;
        }
    }
}

impl Drop for PipelineEnd {
    fn drop(&mut self) {
        self.0.answer.end();
        self.0.request.abandon();
    }
}

impl Stream for PipelineEnd {
    async fn read_append(&self, mut buf: Buf, max: usize) -> BufResult<usize, Buf> {
        let n = self.0.request.read(&mut buf, max).await;
        (Ok(n), buf)
    }

    async fn write_from(&self, buf: Buf, from: usize, progress: &Progress) -> BufResult<(), Buf> {
        let res = self
            .0
            .answer
            .write_all(buf.get(from..).unwrap_or_default(), progress)
            .await;
        (res, buf)
    }

    fn read_now(&self, buf: &mut Buf, max: usize) -> Option<io::Result<usize>> {
        self.0.request.take(buf, max).map(Ok)
    }

    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        self.0.answer.push(bytes)
    }

    fn shutdown(&self, how: Shutdown) {
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.0.answer.end();
        }
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.0.request.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_go_through_in_order_and_the_end_follows_them() {
        let (stream, pipeline) = pipe(Peer::default(), 0, Vec::new());
        let lane = &stream.0.request;
        assert_eq!(lane.push(b"GET / ").unwrap(), 6);
        assert_eq!(lane.push(b"HTTP/1.1").unwrap(), 8);
        lane.end();
        let mut out = Vec::new();
        assert_eq!(lane.take(&mut out, 4), Some(4));
        assert!(pipeline.has_unread());
        assert_eq!(lane.take(&mut out, 100), Some(10));
        assert_eq!(out, b"GET / HTTP/1.1");
        assert_eq!(lane.take(&mut out, 100), Some(0), "then the end");
    }

    #[test]
    fn a_head_given_at_the_start_is_read_first() {
        let (stream, pipeline) = pipe(Peer::default(), 0, b"GET / HTTP/1.1\r\n\r\n".to_vec());
        assert!(pipeline.has_unread());
        assert_eq!(stream.0.request.push(b"body").unwrap(), 4);
        let mut out = Vec::new();
        assert_eq!(pipeline.0.request.take(&mut out, 100), Some(22));
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\nbody");
    }

    #[test]
    fn a_full_lane_takes_nothing_more_until_read() {
        let (stream, _pipeline) = pipe(Peer::default(), 0, Vec::new());
        let lane = &stream.0.answer;
        let big = vec![7u8; LANE + 10];
        assert_eq!(lane.push(&big).unwrap(), LANE);
        assert_eq!(lane.push(b"x").unwrap(), 0);
        let mut out = Vec::new();
        assert_eq!(lane.take(&mut out, 1000), Some(1000));
        assert_eq!(lane.push(&big).unwrap(), 1000);
        assert_eq!(lane.take(&mut out, usize::MAX), Some(LANE));
        assert_eq!(lane.take(&mut out, 1), None, "empty, not ended");
    }

    #[test]
    fn a_lane_read_in_pieces_stays_its_size_whatever_goes_through() {
        let (stream, _pipeline) = pipe(Peer::default(), 0, Vec::new());
        let lane = &stream.0.answer;
        let piece = vec![1u8; 10_000];
        let mut out = Vec::new();
        // The writer refills as soon as there is room; the reader never takes all.
        for _ in 0..1000 {
            while lane.push(&piece).unwrap() > 0 {}
            out.clear();
            assert_eq!(lane.take(&mut out, 7_000), Some(7_000));
        }
        let held = lane.bytes.borrow();
        assert!(
            held.capacity() <= HELD_MAX,
            "{} bytes held",
            held.capacity()
        );
        assert!(held.len() - lane.taken.get() <= LANE);
    }

    #[test]
    fn a_dropped_end_is_a_closed_socket_to_the_other() {
        let (stream, pipeline) = pipe(Peer::default(), 0, Vec::new());
        drop(stream);
        let mut out = Vec::new();
        assert_eq!(pipeline.0.request.take(&mut out, 10), Some(0), "the end");
        assert_eq!(
            pipeline
                .write_now(b"HTTP/1.1 200 OK\r\n")
                .unwrap_err()
                .kind(),
            io::ErrorKind::BrokenPipe
        );

        let (stream, pipeline) = pipe(Peer::default(), 0, Vec::new());
        pipeline.write_now(b"HTTP/1.1 200").unwrap();
        drop(pipeline);
        let mut out = Vec::new();
        assert_eq!(stream.0.answer.take(&mut out, 100), Some(12));
        assert_eq!(stream.0.answer.take(&mut out, 100), Some(0));
        assert!(stream.0.request.push(b"x").is_err());
    }
}
