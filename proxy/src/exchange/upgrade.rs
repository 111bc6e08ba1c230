//! A protocol switch (WebSocket and others) through an upstream, HTTP or uwsgi (uWSGI's
//! `websocket_handshake`, as nginx's `uwsgi_pass` relays it): after the server's
//! `101 Switching Protocols`, its head goes to the client as any answer's does (the
//! server's headers minus `X-Accel-*` and hop-by-hop ones but `Upgrade`, ringway's
//! `X-Request-ID`, Server and Date), and the two connections are joined: bytes go both
//! ways as they come, each direction ending with a half-close when its reader reaches end
//! of stream, until both have ended.
//!
//! The joined pair is closed when no byte has gone either way for the route's
//! `upstream_read_timeout` (nginx's `proxy_read_timeout`, which ends idle WebSockets the
//! same way). The bytes go through the client's counted stream, so the connection's byte
//! counts and the access log's `body_bytes_sent` include them.

use std::cell::Cell;
use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::upstream::Answered;
use super::{Outcome, Request};
use crate::access_log::Template;
use crate::buffer::{Buf, SMALL, TINY};
use crate::client::{Client, Next};
use crate::clock::http_date_now;
use crate::fail::Fail;
use crate::http::{ClientFraming, HeaderRewriting, ResponseMeta, Version, write_response_head};
use crate::io::{IoError, Stream, write_all};
use crate::routes::Route;
use crate::upstream::http::wants_upgrade;
use crate::worker::Worker;

/// Read size of a direction that waits: a WebSocket is idle most of its life and its
/// messages are small, so a pair of them holds two tiny buffers, not two bulk reads' worth
/// (nginx holds one `proxy_buffer_size` buffer, 4 KiB, per direction).
const WAITING_READ: usize = TINY;
/// Read size while bytes keep coming (the last read filled its buffer).
const FLOWING_READ: usize = SMALL;

/// Whether the client's request asks to switch protocols, so that its Upgrade goes to the
/// server and a 101 is an answer to it: HTTP/1.1 (HTTP/1.0 has no switch, RFC 9110 §7.8:
/// its Upgrade is dropped as hop-by-hop), an Upgrade that Connection names, not to h2c.
pub(super) fn asked(client: &Client, req: &Request) -> bool {
    req.head.version == Version::Http11 && wants_upgrade(&client.input, &client.headers)
}

/// Sends the 101 to the client and joins the two connections until both directions end
/// or the pair stays idle too long.
pub(super) async fn join(
    client: &mut Client,
    req: &Request,
    route: &Route,
    answered: Answered,
    rest: &mut Buf,
    worker: &Worker,
    group: usize,
) -> Result<Outcome, Fail> {
    let Answered {
        upstream,
        head,
        buf,
        connected,
    } = answered;
    let limits = &route.limits;
    let idle = limits.upstream_read_timeout;
    if let Some(counts) = worker.upstream_conns(group) {
        counts.upgraded.fetch_add(1, Relaxed);
    }
    // What the client sent after its request head is already the new protocol's.
    let early = std::mem::replace(rest, Buf::empty());
    let sent_early = write_all(&upstream, early, 0, limits.upstream_read_timeout).await;
    let mut out = Buf::with_capacity(buf.len() + 128);
    // In a scope of its own: the head's description is not kept in the future.
    {
        let vars = |t: &Template, out: &mut Vec<u8>| {
            super::log::set_value(worker, client, req, None, t, out)
        };
        let meta = ResponseMeta {
            client_version: req.head.version,
            status: head.status,
            reason: head.reason.of(&buf),
            framing: ClientFraming::Switching,
            keep_alive: false,
            date: &http_date_now(),
            extra: &super::added_headers(route.headers_for(head.status), worker, client, req),
            hsts: client.hsts(worker),
            request_id: req.request_id.as_bytes(),
            own_server_and_date: true,
            gzipped: false,
            vary_accept_encoding: false,
            hide: &route.hide_headers,
            charset: None,
            rewrite: route
                .rewrites
                .as_deref()
                .map(|rules| HeaderRewriting { rules, vars: &vars }),
        };
        write_response_head(&mut out, &meta, &buf, &client.response_headers);
    }
    client.head_goes_out(&out);
    // What the server sent after its head is already the new protocol's.
    out.extend_from_slice(buf.get(head.head_len..).unwrap_or_default());
    drop(buf);
    let to_client = write_all(&client.stream, out, 0, limits.send_timeout).await;
    let mut outcome = Outcome::new(101, Next::Close);
    outcome.upstream = Some(connected.elapsed());
    if sent_early.is_err() || to_client.is_err() {
        upstream.close();
        outcome.next = Next::Abort;
        return Ok(outcome);
    }

    let activity = Activity::new();
    let up = pipe(
        &client.stream,
        &upstream,
        &activity,
        limits.upstream_read_timeout,
    );
    let down = pipe(&upstream, &client.stream, &activity, limits.send_timeout);
    // A failure in one direction ends both (the sockets are then shut down, completing the
    // other direction's read).
    let joined = async { tokio::try_join!(up, down).map(drop) };
    let ended = tokio::select! {
        ended = joined => ended,
        () = idle_for(&activity, idle) => Err(IoError::Timeout),
    };
    req.upstream_done(&upstream);
    match ended {
        Ok(()) => upstream.close(),
        Err(err) => {
            tracing::debug!(?err, "joined connection ended");
            // Dropped without close: shut down, which ends any op left on it.
            drop(upstream);
            client.stream.shutdown(Shutdown::Both);
            outcome.next = Next::Abort;
        }
    }
    Ok(outcome)
}

/// When bytes last moved over a joined pair, and how many writes are under way: a write
/// waiting on a slow reader is bounded by its own timeout, which counts its progress, and
/// is not idle time (nginx re-arms its timers on every read and write; found by review: a
/// client draining a large message slowly was cut at `upstream_read_timeout`).
struct Activity {
    last: Cell<Instant>,
    writing: Cell<u8>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            last: Cell::new(Instant::now()),
            writing: Cell::new(0),
        }
    }

    fn moved(&self) {
        self.last.set(Instant::now());
    }
}

/// Copies `from` to `to` until `from` ends, then half-closes `to`; notes each transfer in
/// `activity`. Each read takes a buffer from the thread's pool and gives it back once written:
/// [`WAITING_READ`] bytes while the direction waits, [`FLOWING_READ`] while reads fill.
async fn pipe<A: Stream, B: Stream>(
    from: &A,
    to: &B,
    activity: &Activity,
    write_limit: Duration,
) -> Result<(), IoError> {
    let mut size = WAITING_READ;
    loop {
        // No timeout on the read: the idle watch ends the pair instead (a dropped read would
        // lose what it read).
        let (read, filled) = from.read_append(Buf::with_capacity(size), size).await;
        match read {
            Ok(0) => {
                to.finish_writing().await;
                return Ok(());
            }
            Ok(n) => {
                activity.moved();
                activity.writing.set(activity.writing.get() + 1);
                let written = write_all(to, filled, 0, write_limit).await;
                activity.writing.set(activity.writing.get() - 1);
                written?;
                activity.moved();
                size = if n == size {
                    FLOWING_READ
                } else {
                    WAITING_READ
                };
            }
            Err(e) => return Err(IoError::Failed(e.kind())),
        }
    }
}

/// Ends once nothing has gone either way for `idle`, with no write under way.
async fn idle_for(activity: &Activity, idle: Duration) {
    loop {
        let deadline = if activity.writing.get() > 0 {
            Instant::now() + idle
        } else {
            activity.last.get() + idle
        };
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}
