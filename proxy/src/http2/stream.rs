//! One HTTP/2 stream, served by the HTTP/1.1 pipeline over an in-memory pipe (`pipe.rs`).
//!
//! The pipeline's end of the pipe is a client connection like any other (`conn::serve_bridged`:
//! the real client's address, TLS, the routes, limits, logs and metrics), carrying this one
//! request with `Connection: close`. This end writes the request head and its body, and turns
//! the answer back into HTTP/2: its head into a HEADERS frame, its body (de-chunked) into DATA
//! frames, sent as the client's flow-control window allows. Memory per stream is bounded: one
//! 16 KiB read of the answer is in flight to the client at a time, and a DATA frame of the
//! request goes on to the pipeline before the client's window for the next one is opened.

use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::Request;

use super::pipe::StreamEnd;
use super::request::{BodyOut, Malformed, write_head};
use super::response::response_of;
use super::{Bridge, Open};
use crate::buffer::{Buf, SMALL};
use crate::http::{
    ClientFraming, MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS, Reframer, Status, parse_response_within,
};
use crate::limits::Admission;
use crate::ratelimit::{BURST, NamedGate, WINDOW};

/// Largest answer head the pipeline writes: an upstream's largest, and room for the fields
/// ringway adds.
const MAX_ANSWER_HEAD: usize = MAX_RESPONSE_HEAD + 16 * 1024;

/// Most header lines of an answer head the pipeline writes: an upstream's 512 and room for
/// ringway's own (found by review: an upstream's 511 lines became 515 and the stream was
/// reset, where HTTP/1.1 served them).
const MAX_ANSWER_FIELDS: usize = MAX_RESPONSE_HEADERS + 128;

/// The most a request head counts as carried for the flood check (`session.rs`): what a
/// head with a large cookie or token takes on the wire, where nginx credits the HEADERS
/// frames' own length (a client whose heads are bigger still, with tiny answers, stays
/// well inside the 8 to 1).
const HEAD_CREDIT: usize = 4 * 1024;

/// A request that cannot be written as HTTP/1.1 (reset, as RFC 9113 §8.1.1 asks): logged,
/// a few lines per window, so that a client sending them is seen.
fn report_malformed(bridge: &Bridge, why: Malformed) {
    static GATE: NamedGate = NamedGate::info("HTTP/2 request malformed");
    if GATE.allow() {
        tracing::info!(
            peer = %bridge.peer,
            ?why,
            "HTTP/2 request malformed: stream reset (at most {BURST} such lines per {}s)",
            WINDOW.as_secs()
        );
    }
}

/// Serves one stream to its end; `open` counts it among its connection's streams until
/// both this task and its pipeline have ended.
pub(super) async fn serve(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    bridge: Rc<Bridge>,
    admission: Admission,
    open: Rc<Open>,
) {
    let (parts, mut body) = request.into_parts();
    let mut head = Vec::with_capacity(512);
    let framing = match write_head(&parts, !body.is_end_stream(), &mut head) {
        Ok(framing) => framing,
        Err(why) => {
            report_malformed(&bridge, why);
            respond.send_reset(Reason::PROTOCOL_ERROR);
            return;
        }
    };
    // What HPACK decoded, not what came: a small HEADERS frame can name a 4 KiB table
    // entry many times over, and an uncapped credit would raise the flood allowance by
    // that much (found by review: 512 such frames let 123 MiB of PRIORITY frames through).
    bridge.carried(head.len().min(HEAD_CREDIT));
    let pipeline = bridge.open(admission, head, Rc::clone(&open));
    let is_head = parts.method == http::Method::HEAD;
    let limit = bridge.send_timeout;
    {
        let sending = send_body(&pipeline, framing, &mut body, &bridge);
        let answering = relay_answer(&pipeline, respond, is_head, limit, &bridge);
        tokio::pin!(sending, answering);
        let mut sent = false;
        loop {
            tokio::select! {
                // The body first: one h2 cut (END_STREAM short of its length) ends the
                // request (400) before the answer's side sees the stream reset and goes,
                // which would be taken for the client leaving (499).
                biased;
                () = &mut sending, if !sent => sent = true,
                () = &mut answering => break,
            }
        }
    }
    // The answer is over (or failed): the pipeline reads the end of its request (a
    // lingering read ends) and its writes fail.
    drop(pipeline);
    if !body.is_end_stream() {
        discard_body(&mut body, &bridge).await;
    }
}

/// Reads and drops what is left of a request body the answer did not wait for (a 413, a
/// 405, an app that answered early), as nginx discards it: a client still uploading gets
/// its window opened and ends the stream itself, rather than a reset it may take for a
/// failure. Bounded as the HTTP/1.1 linger is (`client::linger_bounds`): 30 s, 2 s of
/// silence, 64 MiB; 2 s and 64 KiB on a connection a limit refused, which no limit counts
/// (found by review: a trickled body held such a connection for the full 30 s).
async fn discard_body(body: &mut RecvStream, bridge: &Bridge) {
    let bounds = crate::client::linger_bounds(bridge.refused.is_some());
    let deadline = tokio::time::Instant::now() + bounds.time;
    let mut dropped = 0;
    while dropped < bounds.bytes {
        let next = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + bounds.idle),
            body.data(),
        );
        let Ok(Some(Ok(data))) = next.await else {
            return;
        };
        dropped += data.len();
        bridge.carried(data.len());
        let _ = body.flow_control().release_capacity(data.len());
    }
}

/// Writes the request's body into the pipeline (its head is there already). A client that
/// resets its stream midway has left (the pipeline logs 499); a body that breaks h2's rules
/// leaves the pipeline a cut request (400).
///
/// A write waits as long as the pipeline does not read, with no timer, as an HTTP/1.1
/// body waits in its socket: the pipeline reads a body only after `limit_req` and the
/// access checks, and times its own reads (`client_body_timeout`); it ends, and the write
/// fails, on every path. (Found by review: a write timed by `send_timeout` cut an upload
/// that `limit_req` held longer.)
async fn send_body(pipeline: &StreamEnd, framing: BodyOut, body: &mut RecvStream, bridge: &Bridge) {
    if framing == BodyOut::None {
        return;
    }
    let mut left = match framing {
        BodyOut::Length(n) => n,
        _ => u64::MAX,
    };
    let chunked = framing == BodyOut::Chunked;
    // One buffer for every chunk of a body without a length (its size line, data, CRLF).
    let mut chunk = Vec::new();
    while let Some(data) = body.data().await {
        let data = match data {
            Ok(data) => data,
            // A body that broke h2's rules (END_STREAM short of its length, a stream reset
            // by h2 itself): cut short, a 400.
            Err(e) if e.is_reset() && !e.is_remote() => {
                pipeline.end_request();
                return;
            }
            // The client cancelled its upload, or its connection was lost or ended: it
            // left, as nginx logs it (499; found by review: 400, twice).
            Err(_) => {
                pipeline.client_left();
                return;
            }
        };
        let len = data.len();
        bridge.carried(len);
        // h2 holds the DATA frames to the stream's content-length; this keeps a longer
        // body from ever reaching the pipeline as the start of another request.
        if len as u64 > left {
            pipeline.end_request();
            return;
        }
        left -= len as u64;
        let written = if len == 0 {
            Ok(())
        } else if chunked {
            chunk.clear();
            let _ = write!(chunk, "{len:x}\r\n");
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            pipeline.write_all(&chunk).await
        } else {
            pipeline.write_all(&data).await
        };
        if written.is_err() {
            return;
        }
        // The client may send more only once the pipeline has taken this.
        let _ = body.flow_control().release_capacity(len);
    }
    if chunked {
        let _ = pipeline.write_all(b"0\r\n\r\n").await;
    }
}

/// Reads the pipeline's answer and sends it on the stream.
async fn relay_answer(
    pipeline: &StreamEnd,
    mut respond: SendResponse<Bytes>,
    is_head: bool,
    limit: Duration,
    bridge: &Bridge,
) {
    let mut buf = Buf::with_capacity(SMALL);
    // Room for a usual answer's fields, so that parsing them does not grow it field by field.
    let mut fields = Vec::with_capacity(24);
    let head = loop {
        match parse_response_within::<MAX_ANSWER_FIELDS>(&buf, is_head, &mut fields) {
            // An interim answer: the client is sending its body anyway.
            Ok(Status::Complete(head)) if head.status < 200 && head.status != 101 => {
                buf.drain(..head.head_len);
            }
            Ok(Status::Complete(head)) => break head,
            Ok(Status::Partial) if buf.len() < MAX_ANSWER_HEAD => {
                let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
                let read = tokio::select! {
                    read = pipeline.read(&mut buf, SMALL) => read,
                    // The client gave up on the request: the pipeline sees its client
                    // gone, as a plain client's closed socket, and logs 499.
                    _ = reset => return,
                };
                // No answer at all: the pipeline closed without one (a 444).
                if read == 0 {
                    respond.send_reset(Reason::INTERNAL_ERROR);
                    return;
                }
            }
            Ok(Status::Partial) | Err(_) => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
        }
    };
    let Some(response) = response_of(&buf, &head, &fields) else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        return;
    };
    let mut reframer = Reframer::new(head.framing, ClientFraming::UntilClose);
    let bodiless = reframer.is_done();
    let Ok(mut stream) = respond.send_response(response, bodiless) else {
        return;
    };
    // The answer counts as carried too, as nginx counts what it sends: a client downloading
    // much opens its windows with WINDOW_UPDATE frames that carry no request (found by
    // review: a long download would have ended as a flood).
    bridge.carried(head.head_len);
    if bodiless {
        return;
    }
    // The route's `send_timeout` (found by review: the server's was used, whatever the
    // route said), known once its answer's head came.
    let limit = pipeline.send_timeout().unwrap_or(limit);
    let mut out = Vec::new();
    if reframer
        .frame_into(buf.get(head.head_len..).unwrap_or_default(), &mut out)
        .is_err()
    {
        stream.send_reset(Reason::INTERNAL_ERROR);
        return;
    }
    loop {
        // The last piece carries the stream's end (no empty DATA frame of its own).
        let done = reframer.is_done();
        bridge.carried(out.len());
        if (done || !out.is_empty())
            && send_data(
                &mut stream,
                Bytes::from(std::mem::take(&mut out)),
                done,
                limit,
            )
            .await
            .is_err()
        {
            return;
        }
        if done {
            return;
        }
        buf.clear();
        let reset = std::future::poll_fn(|cx| stream.poll_reset(cx));
        let read = tokio::select! {
            read = pipeline.read(&mut buf, SMALL) => read,
            // The client gave up midway (a long or slow answer): the pipeline's writes
            // fail once this end is dropped.
            _ = reset => return,
        };
        let framed = match read {
            0 => reframer.finish(&mut out).map_err(drop),
            _ => reframer.frame_into(&buf, &mut out).map_err(drop),
        };
        if framed.is_err() {
            // Cut short: the client must not take a truncated body for a whole one.
            stream.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    }
}

/// Sends `data` as the stream's flow-control window allows, waiting at most `limit` for the
/// client to open it each time; `end`: these are the answer's last bytes.
async fn send_data(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    limit: Duration,
) -> Result<(), ()> {
    if data.is_empty() {
        // An end takes no window.
        return if end {
            stream.send_data(data, true).map_err(drop)
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let capacity =
            tokio::time::timeout(limit, std::future::poll_fn(|cx| stream.poll_capacity(cx))).await;
        match capacity {
            Ok(Some(Ok(n))) if n > 0 => {
                let piece = data.split_to(n.min(data.len()));
                stream
                    .send_data(piece, end && data.is_empty())
                    .map_err(drop)?;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Err(()),
            Err(_) => {
                stream.send_reset(Reason::CANCEL);
                return Err(());
            }
        }
    }
    Ok(())
}
