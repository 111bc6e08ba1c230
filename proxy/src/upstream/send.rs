//! Sending a request to an upstream, either protocol: its head (the uwsgi packet's header
//! and vars, or the HTTP request head), then its buffered body.

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
/// If the server stops reading (an app may answer without reading the body: a 405, a
/// redirect), the rest is not sent and this succeeds: its answer is what the client should
/// get, as from nginx; if it sent none, reading the head fails next.
pub(crate) async fn send_request(
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
