//! The HTTP exchange: the request goes to an HTTP/1.1 server (gunicorn, Granian, uvicorn)
//! on a kept connection when there is one, up to the answer's head; the rest (the app's
//! file, the operator's error page, relaying the body) is the uwsgi path's.
//!
//! A kept connection the server closed meanwhile fails before any byte of the answer comes
//! back (a write error, or end of stream or a reset on the first read). The request is then
//! sent again, once, on a new connection, if that is safe: it had no body, or its method is
//! idempotent (RFC 9110 §9.2.2). Otherwise it is answered 502, as nginx does; such requests
//! take a kept connection only after a non-blocking peek says it is still open.

use std::time::Duration;

use super::Request;
use super::upstream::{Answered, Target, check_body_size, connect};
use crate::buffer::{Body, Buf};
use crate::client::Client;
use crate::fail::{Fail, Step};
use crate::http::{BodyFraming, Method, Version};
use crate::io::{IoError, write_all_or_back};
use crate::upstream::http::{
    HeadEnv, encode_request_head, keeps_connection, read_response_head, wants_upgrade,
};
use crate::upstream::{Reuse, UpstreamConn, Upstreams, send_from_file};
use crate::worker::Worker;

/// What the server answered.
pub(super) enum Exchanged {
    /// An answer, for the client.
    Answer(Answered),
    /// `101 Switching Protocols`: the two connections are to be joined.
    Switching(Answered),
}

/// Sends the request and reads the answer's head, retrying once on a new connection when a
/// kept one turns out closed and the request is safe to send again.
pub(super) async fn exchange(
    client: &mut Client,
    req: &Request,
    target: &Target<'_>,
    rest: &mut Buf,
    worker: &Worker,
    group: &Upstreams,
) -> Result<Exchanged, Fail> {
    let limits = &target.route.limits;
    if let BodyFraming::Length(n) = req.head.body {
        check_body_size(n, limits.max_body_size)?;
    }
    // The whole body before the upstream, as for uwsgi: a slow upload holds ringway, not a
    // Python worker. Room is kept in front of it for the request head: one write for both.
    let room = group.buffer_size();
    let mut body = if req.head.body == BodyFraming::None {
        Body::Absent
    } else {
        Box::pin(client.receive_body(&req.head, rest, limits, worker, room)).await?
    };
    // HTTP/1.0 has no protocol switch (RFC 9110 §7.8): its Upgrade is dropped as hop-by-hop.
    let upgrading =
        req.head.version == Version::Http11 && wants_upgrade(&client.input, &client.headers);
    // As nginx: only an idempotent method is sent again once it may have reached the app
    // (a bodiless POST may have run). A kept connection the server had closed is found out
    // before anything is sent when the loop has seen it turn readable; a request that
    // cannot go again also peeks at the socket first. The retry covers the moment between
    // that look and the request's arrival.
    let retry_safe = !upgrading && is_idempotent(req.head.method);
    let mut reuse = Reuse::Kept { peek: !retry_safe };
    loop {
        let (upstream, connected) = connect(client, req, target, worker, group, reuse).await?;
        let head = encode_head(client, req, target, worker, &body, upgrading, group);
        let is_head = req.head.method == Method::Head;
        let mut headers = std::mem::take(&mut client.response_headers);
        let timeout = limits.upstream_read_timeout;
        let with_upstream = async {
            let (kept, sent_whole) = send(&upstream, head, body, timeout).await?;
            let answer =
                read_response_head(&upstream, is_head, upgrading, &mut headers, timeout).await;
            Ok::<_, Fail>((kept, sent_whole, answer))
        };
        let sent = tokio::select! {
            sent = with_upstream => sent,
            () = client.gone() => Err(Fail::ClientGone),
        };
        client.response_headers = headers;
        let (kept, sent_whole, answer) = sent?;
        match answer {
            Ok((head, buf)) => {
                let switching = head.status == 101;
                // A connection the request did not go through whole is not trusted again.
                upstream.set_reusable(
                    sent_whole
                        && !switching
                        && keeps_connection(&head, &buf, &client.response_headers),
                );
                let answered = Answered {
                    upstream,
                    head,
                    buf,
                    connected,
                };
                return Ok(if switching {
                    Exchanged::Switching(answered)
                } else {
                    Exchanged::Answer(answered)
                });
            }
            Err(failed) => {
                let again = failed.nothing_back && upstream.is_reused() && retry_safe;
                match kept {
                    Some(kept) if again => {
                        tracing::debug!(fail = ?failed.fail, "kept upstream connection was closed; retrying on a new one");
                        body = kept;
                        reuse = Reuse::Fresh;
                    }
                    _ => return Err(failed.fail),
                }
            }
        }
    }
}

/// Safe to send twice (RFC 9110 §9.2.2): the server's state ends the same.
fn is_idempotent(method: Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace
    )
}

/// The request head, in a pooled buffer.
fn encode_head(
    client: &Client,
    req: &Request,
    target: &Target<'_>,
    worker: &Worker,
    body: &Body,
    upgrading: bool,
    group: &Upstreams,
) -> Buf {
    let config = &worker.config;
    // Only an HTTP/1.0 request may come without a Host: name the server then.
    let local;
    let default_host = match (&config.server_name, req.head.host) {
        (_, Some(_)) => &b""[..],
        (Some(name), None) => name.as_bytes(),
        (None, None) => {
            local = client.local.to_string();
            local.as_bytes()
        }
    };
    let env = HeadEnv {
        client_ip: req.client_ip,
        request_id: req.request_id.as_bytes(),
        https: client.is_tls(),
        trusted_peer: config.is_trusted(client.peer.ip()),
        default_host,
        allow_underscores: config.allow_underscores_in_headers,
        body_len: body.len(),
        upgrade: upgrading,
        keep_alive: group.keeps_connections(),
        path: target.upstream_path.map(|replacement| {
            let rest = req.path.get(target.route.path.len()..).unwrap_or_default();
            (replacement.as_bytes(), rest)
        }),
    };
    let mut head = Buf::with_capacity(group.buffer_size());
    encode_request_head(&client.input, &req.head, &client.headers, &env, &mut head);
    head
}

/// Sends the head, then the body; gives the body back for a retry (`None`: it could not
/// be kept), and whether all of it went out. A server that stops reading is not an error
/// here: its answer (or its silence) is read next, as on the uwsgi path.
async fn send(
    conn: &UpstreamConn,
    head: Buf,
    body: Body,
    timeout: Duration,
) -> Result<(Option<Body>, bool), Fail> {
    let (sent, kept) = match body {
        Body::Absent => (write(conn, head, 0, timeout).await.0, Some(Body::Absent)),
        Body::Memory { mut buf, front } => {
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
        // Boxed: a body in a file is the rare case.
        Body::File { file, len } => {
            let sent = Box::pin(send_from_file(conn, head, &file, len, timeout)).await?;
            (sent, Some(Body::File { file, len }))
        }
    };
    match sent {
        Ok(()) => Ok((kept, true)),
        Err(IoError::Failed(kind)) => {
            tracing::debug!(?kind, "upstream stopped reading the request");
            Ok((kept, false))
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
