//! Taking in a request body, whole, before the upstream is contacted: a client that uploads
//! slowly holds ringway's memory or disk, never one of the few Python workers (nginx buffers
//! request bodies for the same reason).
//!
//! A body is kept in memory up to `client_body_buffer_size` while the memory budget has room
//! (see `buffer::spill`), else in an anonymous temp file. A body with a Content-Length is read
//! straight into its final place; a chunked one is decoded as it arrives, starting in memory
//! and moving to a file once it outgrows it.

use std::cell::Cell;
use std::sync::Arc;

use super::Client;
use crate::buffer::{Body, Budget, Buf, LARGE, Place, SMALL, TINY, TempFile, body_place};
use crate::config::Limits;
use crate::fail::{Fail, Part};
use crate::http::{BodyFraming, ChunkedDecoder, DecodeProgress, HttpError, RequestHead};
use crate::io::{IoError, read_some_eager};
use crate::worker::Worker;

/// Largest read of a body.
const BODY_READ_SIZE: usize = 64 * 1024;

impl Client {
    /// Reads the body of the request `head` (its first bytes may already be in `rest`; bytes
    /// after it stay there). An in-memory body is placed after `room` bytes kept free for the
    /// upstream packet's header. A declared length has been checked against `max_body_size`;
    /// a chunked body is checked as it arrives. `taken` is told the bytes of the body as
    /// sent (chunk framing included; part of nginx's `$request_length`), even when it fails.
    pub(crate) async fn receive_body(
        &mut self,
        head: &RequestHead,
        rest: &mut Buf,
        limits: &Limits,
        worker: &Worker,
        room: usize,
        taken: &Cell<u64>,
    ) -> Result<Body, Fail> {
        let consumed = |client: &Client, rest: &Buf| {
            client.stream.bytes_read().saturating_sub(rest.len() as u64)
        };
        let before = consumed(self, rest);
        // A block, so that a failure too is counted.
        let body = async {
            match head.body {
                BodyFraming::None => Ok(Body::Absent),
                BodyFraming::Length(n) => {
                    let sink = Sink::open(n, room, limits, worker).await?;
                    self.receive_length(sink, n, head.expect_continue, rest, limits)
                        .await
                }
                BodyFraming::Chunked => {
                    let sink = Sink::open(0, room, limits, worker).await?;
                    self.receive_chunked(sink, head.expect_continue, rest, limits, worker)
                        .await
                }
            }
        }
        .await;
        taken.set(consumed(self, rest).saturating_sub(before));
        body
    }

    async fn receive_length(
        &mut self,
        mut sink: Sink,
        length: u64,
        expect_continue: bool,
        rest: &mut Buf,
        limits: &Limits,
    ) -> Result<Body, Fail> {
        // Bounded by max_body_size, checked before this is called.
        let have = rest
            .len()
            .min(usize::try_from(length).unwrap_or(usize::MAX));
        sink.append(rest.get(..have).unwrap_or_default()).await?;
        rest.drain(..have);
        let mut left = length - have as u64;
        if left > 0 && expect_continue && !self.send_continue(limits.send_timeout).await {
            return Err(Fail::ClientGone);
        }
        let timeout = limits.client_body_timeout;
        let mut read_buf = Buf::empty();
        while left > 0 {
            // Reading at most what is left keeps a pipelined next request out of the body.
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(BODY_READ_SIZE);
            let n = match &mut sink {
                Sink::Memory { buf, .. } => {
                    let taken = std::mem::replace(buf, Buf::empty());
                    let (n, filled) =
                        self.body_read(read_some_eager(&self.stream, taken, want, timeout).await)?;
                    *buf = filled;
                    n
                }
                Sink::File { .. } => {
                    let taken = std::mem::replace(&mut read_buf, Buf::empty());
                    let taken = fresh_read_buffer(taken);
                    // Within the buffer: read_some would grow it to `want`.
                    let want = want.min(taken.capacity());
                    let read = read_some_eager(&self.stream, taken, want, timeout).await;
                    let (n, filled) = self.body_read(read)?;
                    read_buf = sink.write_out(filled).await?;
                    n
                }
            };
            left -= n as u64;
        }
        Ok(sink.into_body())
    }

    async fn receive_chunked(
        &mut self,
        mut sink: Sink,
        expect_continue: bool,
        rest: &mut Buf,
        limits: &Limits,
        worker: &Worker,
    ) -> Result<Body, Fail> {
        let mut decoder = ChunkedDecoder::new();
        let mut asked_continue = false;
        let mut last_read = BODY_READ_SIZE;
        loop {
            if !rest.is_empty() {
                let progress = sink.decode(&mut decoder, rest).await?;
                rest.drain(..progress.consumed);
                // A chunk's size line that takes the body past the limit is refused at
                // once, as nginx refuses it ("client intended to send too large chunked
                // body"), not once that many bytes came (or the client went quiet).
                if sink.len().saturating_add(decoder.announced()) > limits.max_body_size {
                    return Err(Fail::BodyTooLarge {
                        declared: None,
                        limit: limits.max_body_size,
                    });
                }
                sink.spill_if_over(limits.client_body_buffer_size, worker)
                    .await?;
                if progress.done {
                    return Ok(sink.into_body());
                }
            }
            if expect_continue && !asked_continue {
                asked_continue = true;
                if !self.send_continue(limits.send_timeout).await {
                    return Err(Fail::ClientGone);
                }
            }
            // What is left of `rest` is an unfinished chunk line; most often nothing.
            let mut buf = std::mem::replace(rest, Buf::empty());
            let want = read_size(last_read, BODY_READ_SIZE);
            if buf.is_empty() && class(buf.capacity()) != class(want) {
                buf = Buf::with_capacity(want);
            }
            let room = want.min(BODY_READ_SIZE);
            let read = read_some_eager(&self.stream, buf, room, limits.client_body_timeout);
            let (n, filled) = self.body_read(read.await)?;
            last_read = n;
            *rest = filled;
        }
    }
}

impl Client {
    /// The outcome of a body read, as a failure of the client's where it failed: an HTTP/2
    /// stream the client reset (or whose connection ended) mid-body left, as nginx logs it
    /// (499), where a cut HTTP/1.1 body is a close (400).
    fn body_read(&self, read: Result<(usize, Buf), IoError>) -> Result<(usize, Buf), Fail> {
        client_read(read).map_err(|fail| match (fail, self.stream.get_ref()) {
            (Fail::ClientClosed(Part::Body), super::ClientStream::Bridged(pipe))
                if pipe.client_left() =>
            {
                Fail::ClientGone
            }
            (fail, _) => fail,
        })
    }
}

/// The outcome of a body read, as a failure of the client's where it failed.
fn client_read(read: Result<(usize, Buf), IoError>) -> Result<(usize, Buf), Fail> {
    match read {
        Ok((0, _)) => Err(Fail::ClientClosed(Part::Body)),
        Ok(read) => Ok(read),
        Err(IoError::Timeout) => Err(Fail::ClientTimeout(Part::Body)),
        // A reset is a close, as nginx counts it (400, logged without an answer).
        Err(IoError::Failed(_)) => Err(Fail::ClientClosed(Part::Body)),
    }
}

/// The buffer for the next read of a body going to a file (see [`read_size`]).
fn fresh_read_buffer(mut last: Buf) -> Buf {
    let want = read_size(last.len(), last.capacity());
    if last.capacity() > 0 && class(last.capacity()) == class(want) {
        last.clear();
        return last;
    }
    Buf::with_capacity(want)
}

/// How large the next body read's buffer should be, given that the last read got `got`
/// bytes into `capacity`: [`SMALL`] while reads come back full (a fast client: what nginx's
/// default body buffer is too; many uploads at once must not each pin 64 KiB), else about
/// twice what the last read got, so a client trickling its upload pins little memory while
/// its read waits.
fn read_size(got: usize, capacity: usize) -> usize {
    if capacity > 0 && got >= capacity {
        SMALL
    } else {
        (2 * got).clamp(TINY, SMALL)
    }
}

/// The pool class a capacity falls in.
fn class(capacity: usize) -> usize {
    match capacity {
        c if c <= TINY => TINY,
        c if c <= SMALL => SMALL,
        _ => LARGE,
    }
}

/// Where body bytes go as they arrive.
enum Sink {
    /// In memory, after `front` bytes of room.
    Memory {
        buf: Buf,
        front: usize,
        budget: Arc<Budget>,
    },
    /// In a temp file, `len` bytes so far.
    File { file: TempFile, len: u64 },
}

impl Sink {
    /// A sink for a body of `size` bytes (for a chunked body: 0, all that is known yet).
    async fn open(size: u64, room: usize, limits: &Limits, worker: &Worker) -> Result<Sink, Fail> {
        let spent = worker.budget.is_spent();
        if body_place(size, limits.client_body_buffer_size, spent) == Place::Memory {
            let want = room.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
            // The budget is asked before the memory is taken (found by review: many heads
            // declaring large bodies each cost an allocation the budget then refused).
            if let Some(mut buf) = Buf::charged(want, &worker.budget) {
                buf.resize(room, 0);
                return Ok(Sink::Memory {
                    buf,
                    front: room,
                    budget: Arc::clone(&worker.budget),
                });
            }
        }
        Ok(Sink::File {
            file: create(worker).await?,
            len: 0,
        })
    }

    /// Body bytes so far.
    fn len(&self) -> u64 {
        match self {
            Sink::Memory { buf, front, .. } => buf.len().saturating_sub(*front) as u64,
            Sink::File { len, .. } => *len,
        }
    }

    /// Appends `bytes`.
    async fn append(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        if bytes.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Memory { buf, .. } => {
                buf.extend_from_slice(bytes);
                Ok(())
            }
            Sink::File { .. } => self.write_out(Buf::copy_of(bytes)).await.map(drop),
        }
    }

    /// Writes `data` at the end of the file (a file sink only) and returns the buffer.
    async fn write_out(&mut self, data: Buf) -> Result<Buf, Fail> {
        let Sink::File { file, len } = self else {
            return Ok(data);
        };
        let n = data.len() as u64;
        let (res, data) = file.write_all_at(data, 0, *len).await;
        res.map_err(|e| Fail::TempFile(e.kind()))?;
        *len += n;
        Ok(data)
    }

    /// Decodes chunked bytes from `input` into the sink.
    async fn decode(
        &mut self,
        decoder: &mut ChunkedDecoder,
        input: &[u8],
    ) -> Result<DecodeProgress, Fail> {
        let bad = |e: HttpError| Fail::Request(e);
        match self {
            Sink::Memory { buf, .. } => decoder.decode(input, buf).map_err(bad),
            Sink::File { .. } => {
                let mut plain = Buf::with_capacity(input.len());
                let progress = decoder.decode(input, &mut plain).map_err(bad)?;
                self.write_out(plain).await?;
                Ok(progress)
            }
        }
    }

    /// Moves an in-memory body to a temp file once it holds more than `limit` bytes or the
    /// budget refuses its growth.
    async fn spill_if_over(&mut self, limit: usize, worker: &Worker) -> Result<(), Fail> {
        let Sink::Memory { buf, front, budget } = self else {
            return Ok(());
        };
        if buf.len() - *front <= limit && buf.charge(budget) {
            return Ok(());
        }
        let front = *front;
        let len = buf.len().saturating_sub(front) as u64;
        let data = std::mem::replace(buf, Buf::empty());
        let file = create(worker).await?;
        let (res, _) = file.write_all_at(data, front, 0).await;
        res.map_err(|e| Fail::TempFile(e.kind()))?;
        *self = Sink::File { file, len };
        Ok(())
    }

    fn into_body(self) -> Body {
        match self {
            Sink::Memory { buf, front, .. } => Body::Memory { buf, front },
            Sink::File { file, len } => Body::File { file, len },
        }
    }
}

async fn create(worker: &Worker) -> Result<TempFile, Fail> {
    TempFile::create(&worker.config.buffering.temp_dir)
        .await
        .map_err(|e| Fail::TempFile(e.kind()))
}
