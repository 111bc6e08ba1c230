//! The upstream's answer to the client: the head rewritten for the client, then the body
//! re-framed (or compressed, `body_out.rs`) and relayed.
//!
//! When the whole answer came with its head (the common case for small answers), the
//! upstream is closed first, freeing the Python worker, then one write goes out. Otherwise
//! two pumps run in the connection's task: one reads the upstream as fast as it writes into
//! a [`Spool`] (memory, then a temp file), the other writes the spool to the client as fast
//! as it reads. The upstream is closed as soon as its last byte is read, however far behind
//! the client is.

use std::time::Duration;

use super::body_out::{BodyOut, GzipBody};
use super::upstream::Target;
use super::{Outcome, Request, log};
use crate::access_log::Template;
use crate::buffer::{Buf, Spool};
use crate::client::{Client, ClientStream, Next, Pace, write_paced};
use crate::clock::http_date_now;
use crate::config::Limits;
use crate::fail::{BadResponse, Fail, Step};
use crate::gzip::{Answer, Asked, Verdict};
use crate::http::{
    ClientFraming, HeaderRewriting, LAST_CHUNK, Reframer, ResponseFraming, ResponseHead,
    ResponseMeta, Version, write_response_head,
};
use crate::io::{Counted, IoError, Stream, read_some, read_some_eager};
use crate::routes::Route;
use crate::upstream::UpstreamConn;
use crate::worker::Worker;

/// Read size while relaying a body.
const RELAY_READ_SIZE: usize = 64 * 1024;

/// Writes the response whose head is at the start of `buf` (parsed into `head`, its header
/// spans in `client.response_headers`) and relays its body. `Err` only when nothing has been
/// sent yet; a failure after that ends in an `Outcome` that aborts the connection.
pub(super) async fn respond(
    client: &Client,
    req: &Request,
    target: &Target<'_>,
    upstream: UpstreamConn,
    head: ResponseHead,
    buf: Buf,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    let route = target.route;
    let limits = &route.limits;
    // The app's X-Accel-Buffering over the route's `buffering`, as nginx's over its
    // `uwsgi_buffering` / `proxy_buffering`.
    let buffering = head.buffering.unwrap_or(route.buffering);
    // The operator's values (`$uri`, `$args`) as the app was asked: after an internal
    // redirect to a fallback app, what the redirect made of the request, as nginx's.
    let extra = route.headers_for(head.status).resolve_added(|t, out| {
        log::set_value(worker, client, req, target.redirected, t, out);
    });
    let gzip = gzip_verdict(client, req, route, &head, &buf, worker);
    let first = buf.get(head.head_len..).unwrap_or_default();
    // A compressed body is started before the head: a whole one goes with its length.
    // A HEAD answer says `Content-Encoding: gzip` as GET's would, and has nothing to compress.
    let has_body = head.framing != ResponseFraming::None;
    let compressed = match route.gzip.as_deref().filter(|_| gzip.compress && has_body) {
        Some(settings) => GzipBody::start(
            head.framing,
            first,
            settings.level(),
            !buffering,
            &worker.budget,
        )?,
        None => None,
    };
    let (framing, keep_alive) = match &compressed {
        Some(start) => (start.framing, req.keeps_alive(worker)),
        None => ClientFraming::choose(head.framing, req.head.version, req.keeps_alive(worker)),
    };
    let mut out = Buf::with_capacity(buf.len() + 128);
    // In a scope of its own: the head's description is not kept in the request's future
    // across the waits below.
    {
        let vars = |t: &Template, out: &mut Vec<u8>| {
            log::set_value(worker, client, req, target.redirected, t, out);
        };
        let meta = ResponseMeta {
            client_version: req.head.version,
            status: head.status,
            reason: head.reason.of(&buf),
            framing,
            keep_alive,
            date: &http_date_now(),
            extra: &extra,
            hsts: client.hsts(worker),
            request_id: req.request_id.as_bytes(),
            own_server_and_date: req.upstream_speaks_http(worker),
            gzipped: compressed.is_some() || (gzip.compress && !has_body),
            vary_accept_encoding: gzip.vary,
            hide: &route.hide_headers,
            charset: route.charset.as_deref(),
            rewrite: route
                .rewrites
                .as_deref()
                .map(|rules| HeaderRewriting { rules, vars: &vars }),
        };
        write_response_head(&mut out, &meta, &buf, &client.response_headers);
    }
    let body_from = out.len();
    // The app's X-Accel-Limit-Rate over the route's `limit_rate`, as nginx's.
    let pace = Pace::starting(
        &client.stream,
        head.limit_rate.unwrap_or(limits.limit_rate),
        limits.limit_rate_after,
    );
    client.head_goes_out(&out);
    let mut body = match compressed {
        Some(start) => {
            out.extend_from_slice(&start.bytes);
            start.body
        }
        None => {
            let mut reframer = Reframer::new(head.framing, framing);
            reframer
                .frame_into(first, &mut out)
                .map_err(|e| Fail::UpstreamBadResponse(BadResponse::Body(e)))?;
            take_waiting_rest(&upstream, &mut reframer, &mut out, body_from)?;
            BodyOut::Plain(reframer)
        }
    };
    drop(buf);

    let relayed = if body.is_done() {
        // The whole answer is here: free the Python worker (or give the kept connection
        // back) before talking to the client.
        upstream.set_reusable(upstream.is_reusable() && !body.overran());
        req.upstream_done(&upstream);
        upstream.release();
        write_paced(&client.stream, out, 0, limits.send_timeout, pace.as_deref())
            .await
            .map(drop)
            .map_err(client_failed)
    } else {
        // Boxed: only answers longer than their first read get here, and their state (the
        // spool, two pumps) must not weigh on every request's future.
        Box::pin(async {
            // Unbuffered: the app wants the client's pace, with no temp file.
            let file_limit = if buffering {
                limits.max_temp_file_size
            } else {
                0
            };
            let spool = Spool::new(
                limits.response_buffer_size,
                file_limit,
                &worker.budget,
                &worker.config.buffering.temp_dir,
            );
            let relayed = stream_body(
                client,
                req,
                upstream,
                out,
                &mut body,
                &spool,
                limits,
                pace.as_deref(),
            )
            .await;
            if let Some(kind) = spool.take_file_error() {
                Fail::TempFile(kind).report_worked_around(
                    client.peer,
                    "the answer went on at the client's pace, without it",
                );
            }
            relayed
        })
        .await
    };
    req.gzip_ratio.set(body.gzip_ratio());
    let next = match relayed {
        Ok(()) if framing == ClientFraming::UntilClose => Next::Close,
        Ok(()) if keep_alive => Next::KeepAlive,
        Ok(()) => Next::Close,
        Err(fail) => {
            fail.report(req.from, &worker.stats);
            Next::Abort
        }
    };
    Ok(Outcome::new(head.status, next))
}

/// Reads what of the body waits already behind its first piece (an app writes most answers
/// at once) into `out`, behind the head and that piece, up to [`RELAY_READ_SIZE`] bytes of
/// body in all: the answer then goes to the client in one write, as nginx's one `writev`
/// of its buffers sends it, not in a write per read. A failed read fails the answer here,
/// where nothing has been sent yet; nothing waiting, or the end, is left to the relay.
fn take_waiting_rest(
    upstream: &UpstreamConn,
    reframer: &mut Reframer,
    out: &mut Buf,
    body_from: usize,
) -> Result<(), Fail> {
    if reframer.is_done() || body_from < Reframer::PREFIX {
        return Ok(());
    }
    // A client that gets chunks needs room for the chunk's size line in front of the bytes,
    // and for its line end and the last chunk behind them.
    let (front, behind) = if reframer.wraps_pieces() {
        (Reframer::PREFIX, b"\r\n".len() + LAST_CHUNK.len())
    } else {
        (0, 0)
    };
    // Into the room `out` has: growing it would copy what is there and take it out of its
    // pool class.
    let room = RELAY_READ_SIZE
        .saturating_sub(out.len() - body_from)
        .min((out.capacity() - out.len()).saturating_sub(front + behind));
    if room == 0 {
        return Ok(());
    }
    let at = out.len();
    out.resize(at + front, 0);
    let ended = match upstream.read_now(out, room) {
        Some(Ok(n)) if n > 0 => {
            reframer
                .frame_appended(out, at)
                .map_err(|e| Fail::UpstreamBadResponse(BadResponse::Body(e)))?;
            // Drained: the close may be there already.
            n < room && reframer.ends_at_close() && upstream.has_ended()
        }
        Some(Ok(_)) => {
            out.truncate(at);
            true
        }
        None => {
            out.truncate(at);
            false
        }
        Some(Err(e)) => return Err(Fail::UpstreamIo(Step::Relaying, e.kind())),
    };
    // A body that ends at the close (uWSGI's streamed answers) has often ended already:
    // then its last chunk goes in the same write (its room is kept), and no relay is set up.
    // Any other body cut short is left to the relay, which sends what came, as nginx does.
    if ended && reframer.ends_at_close() {
        reframer.finish(out).map_err(|_| Fail::UpstreamTruncated)?;
    }
    Ok(())
}

/// Relays the rest of the body through `spool`: the upstream read as fast as it writes,
/// the client written as fast as it reads (or as `pace` lets it). A client that leaves
/// meanwhile ends it, the upstream connection closed, as nginx's check for a broken
/// connection ends it: an app that pauses between pieces (an event stream, a long poll)
/// would otherwise be found out only at its next write (found by review). Not with the
/// route's `ignore_client_abort`.
#[allow(clippy::too_many_arguments)] // the two ends, the body between them, and its bounds
async fn stream_body(
    client: &Client,
    req: &Request,
    upstream: UpstreamConn,
    first: Buf,
    body: &mut BodyOut,
    spool: &Spool<'_>,
    limits: &Limits,
    pace: Option<&Pace>,
) -> Result<(), Fail> {
    spool.push(first, 0).await;
    // Biased, the client side first: when its write and an upstream read finish together,
    // it is back waiting in `pop` before the piece is pushed, so the piece goes straight out
    // (past the memory budget, a piece pushed while the client side is busy goes to disk).
    let pumps = async {
        tokio::try_join!(
            biased;
            pump_client(&client.stream, spool, limits.send_timeout, pace),
            pump_upstream(upstream, req, spool, body, limits.upstream_read_timeout),
        )
    };
    tokio::select! {
        biased;
        pumps = pumps => pumps.map(drop),
        () = client.gone(limits.ignore_client_abort) => Err(Fail::ClientGone),
    }
}

fn client_failed(err: IoError) -> Fail {
    match err {
        IoError::Timeout => Fail::ClientGone,
        IoError::Failed(kind) => Fail::ClientIo(kind),
    }
}

/// How long a compressed answer's pieces may stay in zlib before they are flushed to the
/// client and its zlib state given back ([`BodyOut::rest`]).
const COMPRESSION_REST_AFTER: Duration = Duration::from_secs(1);

/// What an app sending that much a second keeps its zlib state for: zlib sends a block each
/// time its buffer of 16 K symbols fills (a few tens of KiB of text), so nothing waits long.
const COMPRESSION_KEPT_FROM: usize = 64 * 1024;

/// Reads the upstream's body into the spool until its end, then closes the upstream.
async fn pump_upstream(
    upstream: UpstreamConn,
    req: &Request,
    spool: &Spool<'_>,
    body: &mut BodyOut,
    timeout: Duration,
) -> Result<(), Fail> {
    // When the first piece since the last rest went into zlib, or the answer began: the
    // rest comes a second after it, whether or not the app fell silent (found by review:
    // waiting for a second of silence, an app sending every half second had its pieces held
    // until zlib filled a block, and its zlib state charged to the memory budget for the
    // answer's whole life); unless the app sent at least [`COMPRESSION_KEPT_FROM`] in that
    // second, whose blocks zlib sends on its own, and whose state would otherwise be made
    // anew every second (found by review of that change). The body's first bytes may have
    // come with the head, and gone into zlib already.
    let mut held_since = body.compresses().then(tokio::time::Instant::now);
    let mut held_bytes = 0usize;
    while !body.is_done() {
        let mut buf = Buf::with_capacity(Reframer::PREFIX + RELAY_READ_SIZE + 16);
        buf.resize(Reframer::PREFIX, 0);
        // Eager only once the client side has taken what was queued: a piece read before
        // it ran again would queue behind the last one, and past the memory share go to the
        // temp file. A read op lets it run first.
        let read = async {
            if spool.is_drained() {
                read_some_eager(&upstream, buf, RELAY_READ_SIZE, timeout).await
            } else {
                read_some(&upstream, buf, RELAY_READ_SIZE, timeout).await
            }
        };
        let read = if let Some(since) = held_since {
            // An app streaming slowly (an event stream, a progress page, a slow export) has
            // what zlib holds of it sent, and its zlib state given back until its next
            // piece; one that sends its answer at once keeps it, and compresses as well as
            // nginx.
            tokio::pin!(read);
            tokio::select! {
                biased;
                read = &mut read => read,
                () = tokio::time::sleep_until(since + COMPRESSION_REST_AFTER) => {
                    if held_bytes >= COMPRESSION_KEPT_FROM {
                        held_since = Some(tokio::time::Instant::now());
                    } else {
                        held_since = None;
                        let mut held = Buf::with_capacity(Reframer::PREFIX + 64);
                        body.rest(&mut held)?;
                        if !held.is_empty() {
                            spool.push(held, 0).await;
                        }
                    }
                    held_bytes = 0;
                    read.await
                }
            }
        } else {
            read.await
        };
        match read {
            Ok((0, _)) => {
                let mut tail = Buf::with_capacity(64);
                body.close(&mut tail)?;
                spool.push(tail, 0).await;
            }
            Ok((n, buf)) => {
                let (buf, from) = body.piece(buf)?;
                held_bytes = held_bytes.saturating_add(n);
                if body.compresses() && held_since.is_none() {
                    held_since = Some(tokio::time::Instant::now());
                }
                spool.push(buf, from).await;
            }
            Err(IoError::Timeout) => return Err(Fail::UpstreamTimeout(Step::Relaying)),
            Err(IoError::Failed(kind)) => return Err(Fail::UpstreamIo(Step::Relaying, kind)),
        }
    }
    // The upstream is released here, before the client has necessarily read anything; a
    // kept connection goes back to its pool if its answer ended where its framing said.
    upstream.set_reusable(upstream.is_reusable() && !body.overran());
    req.upstream_done(&upstream);
    upstream.release();
    spool.end();
    Ok(())
}

/// Writes the spool to the client until it is empty and ended.
async fn pump_client(
    client: &Counted<ClientStream>,
    spool: &Spool<'_>,
    timeout: Duration,
    pace: Option<&Pace>,
) -> Result<(), Fail> {
    loop {
        match spool.pop().await {
            Ok(Some((buf, from))) => {
                write_paced(client, buf, from, timeout, pace)
                    .await
                    .map_err(client_failed)?;
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(Fail::TempFile(e.kind())),
        }
    }
}

/// Whether the answer is compressed, and whether it says `Vary: Accept-Encoding`: the
/// route's `[gzip]` settings against the request and the answer's head.
fn gzip_verdict(
    client: &Client,
    req: &Request,
    route: &Route,
    head: &ResponseHead,
    buf: &[u8],
    worker: &Worker,
) -> Verdict {
    let Some(gzip) = route.gzip.as_deref() else {
        return Verdict::default();
    };
    let asked = Asked {
        accept_encoding: client.request_header(b"accept-encoding"),
        http11: req.head.version == Version::Http11,
        via: client.request_header(b"via").is_some(),
        authorization: client.request_header(b"authorization").is_some(),
    };
    // A HEAD answer's Content-Length is GET's: nginx reads it as the length, as here.
    let mut answer = Answer::read(
        head.status,
        head.content_length,
        buf,
        &client.response_headers,
    );
    // An HTTP server's Date is replaced by ringway's, so `proxied = ["expired"]` compares
    // Expires with now, as nginx's proxy_pass, which hides the app's Date (found by review).
    // uWSGI's Date goes on to the client, and counts, as behind nginx's uwsgi_pass.
    if req.upstream_speaks_http(worker) {
        answer.date = None;
    }
    gzip.verdict(&asked, &answer, crate::clock::unix_now())
}
