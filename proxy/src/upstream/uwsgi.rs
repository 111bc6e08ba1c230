//! The uwsgi exchange on an upstream connection: the packet (header, vars, body) goes out,
//! the response head comes back. Building the vars is `crate::uwsgi`'s job; relaying the
//! body to the client is the exchange's.

use std::time::Duration;

use super::UpstreamConn;
use crate::buffer::{Body, Buf, SMALL, TempFile};
use crate::fail::{BadResponse, Fail, Step};
use crate::http::{self, HeaderSpan, ResponseHead, Status};
use crate::io::{IoError, read_some, write_all};

/// First read of an upstream response.
const HEAD_READ_SIZE: usize = 16 * 1024;
/// Largest upstream response head accepted (502 beyond).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Read size while sending a body from its temp file: small, because uWSGI accepts more
/// connections than it has workers, and every request it has not picked up yet holds one
/// such buffer in a blocked write (hundreds of uploads at once must not pin 64 KiB each).
const FILE_READ_SIZE: usize = SMALL;

/// Sends the packet: `vars` (the header and vars block), then the body.
///
/// If uWSGI stops reading (an app may answer without reading the body: a 405, a redirect),
/// the rest is not sent and this succeeds: its answer is what the client should get, as from
/// nginx; if it sent none, reading the head fails next.
pub(crate) async fn send_request(
    conn: &UpstreamConn,
    vars: Buf,
    body: Body,
    timeout: Duration,
) -> Result<(), Fail> {
    let sent = match body {
        Body::Absent => write_all(conn, vars, 0, timeout).await.map(drop),
        Body::Memory { mut buf, front } => {
            // The body buffer keeps room for the vars in front of it: one write for both.
            let start = front.checked_sub(vars.len());
            match start.and_then(|start| Some((start, buf.get_mut(start..front)?))) {
                Some((start, room)) => {
                    room.copy_from_slice(&vars);
                    write_all(conn, buf, start, timeout).await.map(drop)
                }
                None => match write_all(conn, vars, 0, timeout).await {
                    Ok(_) => write_all(conn, buf, front, timeout).await.map(drop),
                    Err(err) => Err(err),
                },
            }
        }
        // Boxed: a body in a file is the rare case; its loop's state stays out of every
        // request's future.
        Body::File { file, len } => {
            Box::pin(send_from_file(conn, vars, &file, len, timeout)).await?
        }
    };
    match sent {
        Ok(()) => Ok(()),
        Err(IoError::Failed(kind)) => {
            tracing::debug!(
                ?kind,
                "upstream stopped reading the request; relaying its answer"
            );
            Ok(())
        }
        Err(IoError::Timeout) => Err(Fail::UpstreamTimeout(Step::Sending)),
    }
}

/// Sends the vars, then the body from its temp file, a piece at a time. The outer error is
/// the file's (the request cannot be sent whole); the inner one the upstream's.
pub(crate) async fn send_from_file(
    conn: &UpstreamConn,
    vars: Buf,
    file: &TempFile,
    len: u64,
    timeout: Duration,
) -> Result<Result<(), IoError>, Fail> {
    let mut chunk = match write_all(conn, vars, 0, timeout).await {
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

/// Reads the response head; returns it with the buffer it is at the start of (the bytes
/// after it are the beginning of the body). `headers` is filled with its header spans.
pub(crate) async fn read_response_head(
    conn: &UpstreamConn,
    request_was_head: bool,
    headers: &mut Vec<HeaderSpan>,
    timeout: Duration,
) -> Result<(ResponseHead, Buf), Fail> {
    let mut resp = Buf::with_capacity(HEAD_READ_SIZE);
    loop {
        match http::parse_response(&resp, request_was_head, headers) {
            Ok(Status::Complete(head)) if head.status >= 200 => return Ok((head, resp)),
            Ok(Status::Complete(head)) => {
                return Err(Fail::UpstreamBadResponse(BadResponse::Interim(head.status)));
            }
            Ok(Status::Partial) if resp.len() < MAX_RESPONSE_HEAD => {}
            Ok(Status::Partial) => {
                let too_large = BadResponse::HeadTooLarge(MAX_RESPONSE_HEAD);
                return Err(Fail::UpstreamBadResponse(too_large));
            }
            Err(err) => return Err(Fail::UpstreamBadResponse(BadResponse::Head(err))),
        }
        resp = match read_some(conn, resp, HEAD_READ_SIZE, timeout).await {
            Ok((0, _)) => return Err(Fail::UpstreamClosed),
            Ok((_, resp)) => resp,
            Err(IoError::Timeout) => return Err(Fail::UpstreamTimeout(Step::ReadingHead)),
            Err(IoError::Failed(kind)) => return Err(Fail::UpstreamIo(Step::ReadingHead, kind)),
        };
    }
}
