//! Sending a request to an upstream, either protocol: its head (the uwsgi packet's header
//! and vars, or the HTTP request head), then its buffered body.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use super::UpstreamConn;
use crate::buffer::{Body, Buf, SMALL, TempFile};
use crate::fail::{Fail, Step};
use crate::io::{IoError, write_all, write_all_or_back};

/// Read size while sending a body from its temp file: small, because uWSGI accepts more
/// connections than it has workers, and every request it has not picked up yet holds one
/// such buffer in a blocked write (hundreds of uploads at once must not pin 64 KiB each).
const FILE_READ_SIZE: usize = SMALL;

/// What went out.
pub(crate) struct Sent {
    /// The body, to send again to another server (`None`: a write that failed kept it).
    pub(crate) body: Option<Body>,
    /// All of it: the server read the whole request.
    pub(crate) whole: bool,
}

/// Sends `head`, then the body.
///
/// An app may answer without reading the body (a 403 or 413 to an upload, a redirect). If
/// its answer starts coming while the request is still going out, or if the server stops
/// reading, the rest is not sent and this succeeds: the answer is what the client should
/// get, as from nginx; if there is none, reading the head fails next. Waiting for the
/// whole request to go out first would wait for ever on an answer too large for the
/// socket's buffers, the server's write blocked on ringway's reads and ringway's on the
/// server's.
pub(crate) async fn send_request(
    conn: &UpstreamConn,
    head: Buf,
    body: Body,
    timeout: Duration,
) -> Result<Sent, Fail> {
    let mut send = pin!(send_all(conn, head, body, timeout));
    // Made only once the send has to wait (a large body), and boxed: every request's
    // future stays the size it was without it.
    let mut watch: Option<Pin<Box<dyn Future<Output = ()> + '_>>> = None;
    let sent = poll_fn(|cx| {
        if let Poll::Ready(sent) = send.as_mut().poll(cx) {
            return Poll::Ready(Some(sent));
        }
        let watch = watch.get_or_insert_with(|| Box::pin(conn.answer_started()));
        watch.as_mut().poll(cx).map(|()| None)
    })
    .await;
    sent.unwrap_or_else(|| {
        tracing::debug!("upstream answered before taking the whole request; reading its answer");
        // The send's write op stays in flight with its buffer until the socket is shut
        // down: its body is gone.
        conn.abandon_write();
        Ok(Sent {
            body: None,
            whole: false,
        })
    })
}

async fn send_all(
    conn: &UpstreamConn,
    head: Buf,
    body: Body,
    timeout: Duration,
) -> Result<Sent, Fail> {
    let (sent, body) = match body {
        Body::Absent => (write(conn, head, 0, timeout).await.0, Some(Body::Absent)),
        Body::Memory { mut buf, front } => {
            // The body buffer keeps room for the head in front of it: one write for both.
            let start = front.checked_sub(head.len());
            let (sent, buf) = match start.and_then(|s| Some((s, buf.get_mut(s..front)?))) {
                Some((start, room)) => {
                    room.copy_from_slice(&head);
                    write(conn, buf, start, timeout).await
                }
                None => match write(conn, head, 0, timeout).await {
                    (Ok(()), _) => write(conn, buf, front, timeout).await,
                    (Err(err), _) => (Err(err), Some(buf)),
                },
            };
            (sent, buf.map(|buf| Body::Memory { buf, front }))
        }
        // Boxed: a body in a file is the rare case; its loop's state stays out of every
        // request's future.
        Body::File { file, len } => {
            let sent = Box::pin(send_from_file(conn, head, &file, len, timeout)).await?;
            (sent, Some(Body::File { file, len }))
        }
    };
    match sent {
        Ok(()) => Ok(Sent { body, whole: true }),
        Err(IoError::Failed(kind)) => {
            tracing::debug!(
                ?kind,
                "upstream stopped reading the request; relaying its answer"
            );
            Ok(Sent { body, whole: false })
        }
        Err(IoError::Timeout) => Err(Fail::UpstreamTimeout(Step::Sending)),
    }
}

/// Writes `buf[from..]` within `limit` between two writes, giving the buffer back unless
/// the write timed out (its op may still hold it then).
async fn write(
    conn: &UpstreamConn,
    buf: Buf,
    from: usize,
    limit: Duration,
) -> (Result<(), IoError>, Option<Buf>) {
    match write_all_or_back(conn, buf, from, limit).await {
        Ok(buf) => (Ok(()), Some(buf)),
        Err((err, buf)) => (Err(err), buf),
    }
}

/// Sends the head, then the body from its temp file, a piece at a time. The outer error is
/// the file's (the request cannot be sent whole); the inner one the upstream's.
async fn send_from_file(
    conn: &UpstreamConn,
    head: Buf,
    file: &TempFile,
    len: u64,
    timeout: Duration,
) -> Result<Result<(), IoError>, Fail> {
    let mut chunk = match write_all(conn, head, 0, timeout).await {
        Ok(chunk) => chunk,
        Err(err) => return Ok(Err(err)),
    };
    let mut at = 0;
    while at < len {
        chunk.clear();
        let want = usize::try_from(len - at)
            .unwrap_or(usize::MAX)
            .min(FILE_READ_SIZE);
        let (read, filled) = file.read_at(chunk, want, at).await;
        match read {
            Ok(n) if n > 0 => at += n as u64,
            Ok(_) => return Err(Fail::TempFile(std::io::ErrorKind::UnexpectedEof)),
            Err(e) => return Err(Fail::TempFile(e.kind())),
        }
        chunk = match write_all(conn, filled, 0, timeout).await {
            Ok(chunk) => chunk,
            Err(err) => return Ok(Err(err)),
        };
    }
    Ok(Ok(()))
}
