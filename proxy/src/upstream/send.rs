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
    /// The body, to send again to another server (`None`: a body in memory that a write
    /// left in flight, or one that timed out, kept).
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
    let memory = match body {
        Body::Absent => None,
        Body::Memory { buf, front } => Some((buf, front)),
        // Boxed: a body in a file is the rare case; its loop's state stays out of every
        // request's future.
        Body::File { file, len } => {
            return Box::pin(send_with_file(conn, head, file, len, timeout)).await;
        }
    };
    let send = pin!(send_from_memory(conn, head, memory, timeout));
    match watched(conn, send).await {
        Some((sent, body)) => outcome(sent, body),
        // The send's write op stays in flight with its buffer until the socket is shut
        // down: a body in memory is gone.
        None => Ok(answered_early(conn, None)),
    }
}

/// [`send_request`] for a body in a file, which stays here: an early answer leaves it whole
/// for the next server.
async fn send_with_file(
    conn: &UpstreamConn,
    head: Buf,
    file: TempFile,
    len: u64,
    timeout: Duration,
) -> Result<Sent, Fail> {
    let sent = {
        let send = pin!(send_from_file(conn, head, &file, len, timeout));
        watched(conn, send).await
    };
    let body = Some(Body::File { file, len });
    match sent {
        Some(sent) => outcome(sent?, body),
        None => Ok(answered_early(conn, body)),
    }
}

/// `send`'s outcome, or `None` when the server's answer started first. The watch is made
/// only once the send has to wait (a large body), and boxed; the send is the caller's,
/// pinned where it is (moved into this future, it would take room twice in every
/// request's).
fn watched<'a, F: Future>(
    conn: &'a UpstreamConn,
    mut send: Pin<&'a mut F>,
) -> impl Future<Output = Option<F::Output>> + 'a {
    let mut watch: Option<Pin<Box<dyn Future<Output = ()> + 'a>>> = None;
    poll_fn(move |cx| {
        if let Poll::Ready(sent) = send.as_mut().poll(cx) {
            return Poll::Ready(Some(sent));
        }
        let watch = watch.get_or_insert_with(|| Box::pin(conn.answer_started()));
        watch.as_mut().poll(cx).map(|()| None)
    })
}

/// The server answered before the request went out whole: the send's write op is left in
/// flight, and the connection shut down when it goes.
fn answered_early(conn: &UpstreamConn, body: Option<Body>) -> Sent {
    tracing::debug!("upstream answered before taking the whole request; reading its answer");
    conn.abandon_write();
    Sent { body, whole: false }
}

/// What a send that ran to its end says: all went, the server stopped reading (its answer
/// is read next), or a write timed out.
fn outcome(sent: Result<(), IoError>, body: Option<Body>) -> Result<Sent, Fail> {
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

/// The head, then a body in memory (`buf[front..]`, with room in front of it for the head:
/// one write for both), if any; the body back unless a write timed out with it.
async fn send_from_memory(
    conn: &UpstreamConn,
    head: Buf,
    memory: Option<(Buf, usize)>,
    timeout: Duration,
) -> (Result<(), IoError>, Option<Body>) {
    let Some((mut buf, front)) = memory else {
        return (write(conn, head, 0, timeout).await.0, Some(Body::Absent));
    };
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
