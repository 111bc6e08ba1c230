//! The HTTP exchange: the request goes to an HTTP/1.1 server (gunicorn, Granian, uvicorn)
//! on a kept connection when there is one, up to the answer's head; the rest (the app's
//! file, the operator's error page, relaying the body) is the uwsgi path's.
//!
//! A kept connection the server closed meanwhile fails before any byte of the answer comes
//! back (a write error, or end of stream or a reset on the first read). The request is then
//! sent again, once, on a new connection, if the route's `next_upstream` lets it go on
//! after an error (its method idempotent, RFC 9110 §9.2.2, or `non_idempotent` listed),
//! within `next_upstream_timeout`. Otherwise it is answered 502, as nginx does; such requests take a kept
//! connection only after a non-blocking peek says it is still open. Beyond that, a request
//! a server failed goes on to the next as the route's `next_upstream` says
//! (`next_upstream.rs`).

use std::net::IpAddr;

use super::next_upstream::{Missed, is_idempotent, retries_on_new_connection};
use super::upgrade;
use super::upstream::{Answered, Exchanged, Target, check_body_size, connect, judge, pass_on};
use super::{HeadParts, Request};
use crate::buffer::{Body, Buf};
use crate::client::Client;
use crate::fail::Fail;
use crate::http::{BodyFraming, Method, has_dot_segment};
use crate::routes::Action;
use crate::static_files::Fallback;
use crate::upstream::http::{HeadEnv, encode_request_head, keeps_connection, read_response_head};
use crate::upstream::{Attempts, Reuse, Sent, Upstreams, send_request};
use crate::worker::Worker;

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
        Box::pin(client.receive_body(&req.head, rest, limits, worker, room, &req.body_taken))
            .await?
    };
    req.took_body(worker, &body);
    let upgrading = upgrade::asked(client, req);
    // As nginx: only an idempotent method is sent again once it may have reached the app
    // (a bodiless POST may have run), unless `next_upstream` lists `non_idempotent`, and
    // only if it lists `error`. A kept connection the server had closed is found out
    // before anything is sent when the loop has seen it turn readable; a request that
    // cannot go again also peeks at the socket first. The retry covers the moment between
    // that look and the request's arrival. An upgrade request is no exception: nothing
    // has switched before its 101, and the client's bytes after its head wait for that
    // (found by review: a WebSocket's GET on a kept connection closed meanwhile got 502).
    let method = target.method_of(req.head.method);
    let retry_safe = is_idempotent(method);
    let mut reuse = Reuse::Kept { peek: !retry_safe };
    let mut attempts = Attempts::default();
    let mut stale_retried = false;
    loop {
        let (upstream, connected) =
            connect(client, req, target, worker, group, reuse, &mut attempts).await?;
        let parts = HeadParts::of(client, req, target);
        let head = encode_head(
            client,
            req,
            parts,
            target,
            worker,
            body.len(),
            upgrading,
            group,
        );
        let is_head = req.head.method == Method::Head;
        let mut headers = std::mem::take(&mut client.response_headers);
        let timeout = limits.upstream_read_timeout;
        let with_upstream = async {
            let sent = send_request(&upstream, head, body, timeout).await?;
            let answer =
                read_response_head(&upstream, is_head, upgrading, &mut headers, timeout).await;
            Ok::<_, Fail>((sent, answer))
        };
        // The client first, as on the uwsgi path (`upstream::exchange_uwsgi`): a stream reset
        // meanwhile is seen before the request is written.
        let sent = tokio::select! {
            biased;
            () = client.gone(limits.ignore_client_abort) => Err(Fail::ClientGone),
            sent = with_upstream => sent,
        };
        client.response_headers = headers;
        let (Sent { body: kept, whole }, answer) = sent.inspect_err(|fail| {
            // The request did not go out whole. A send that broke comes back as a part
            // sent, not here; a send that timed out is a server that stopped reading, on a
            // kept connection as on a new one (found by review: never counted on a kept
            // one), and counts against it as in nginx.
            if !upstream.is_reused() || matches!(fail, Fail::UpstreamTimeout(_)) {
                judge(target, group, &upstream, Missed::Fail(*fail), false);
            }
        })?;
        let missed = match &answer {
            Ok((head, _)) => Missed::Status(head.status),
            Err(failed) => Missed::Fail(failed.fail),
        };
        // A kept connection the server closed meanwhile is no failure of the server's,
        // whatever the request (found by review: a POST's counted, and with `max_fails = 1`
        // a healthy server went out of turn over its own idle timeout); only a request
        // safe to send again is sent again.
        let closed_meanwhile =
            matches!(&answer, Err(failed) if failed.nothing_back) && upstream.is_reused();
        let stale = closed_meanwhile
            && !stale_retried
            && retries_on_new_connection(limits, attempts.since(), method, missed);
        let goes_on = !stale
            && kept.is_some()
            && pass_on(method, target, group, &upstream, &mut attempts, missed);
        if !closed_meanwhile {
            judge(target, group, &upstream, missed, goes_on);
        }
        if let Some(kept) = kept {
            if stale {
                stale_retried = true;
                tracing::debug!(
                    ?missed,
                    "kept upstream connection was closed; retrying on a new one"
                );
                body = kept;
                reuse = Reuse::Fresh;
                continue;
            }
            if goes_on {
                upstream.close();
                body = kept;
                reuse = Reuse::Kept { peek: !retry_safe };
                continue;
            }
        }
        let (head, buf) = answer.map_err(|failed| failed.fail)?;
        let switching = head.status == 101;
        // A connection the request did not go through whole is not trusted again.
        upstream.set_reusable(
            whole && !switching && keeps_connection(&head, &buf, &client.response_headers),
        );
        let answered = Answered {
            upstream,
            head,
            buf,
            connected,
        };
        return Exchanged::of(answered, whole);
    }
}

/// The request head for the head `parts` (the client's request's, or an auth request's
/// made for `req`), with a body of `body_len` bytes (`None`: none), in a pooled buffer.
#[allow(clippy::too_many_arguments)] // the request, its head, where it goes and how
pub(super) fn encode_head(
    client: &Client,
    req: &Request,
    parts: HeadParts<'_>,
    target: &Target<'_>,
    worker: &Worker,
    body_len: Option<u64>,
    upgrading: bool,
    group: &Upstreams,
) -> Buf {
    let config = &worker.config;
    // Only an HTTP/1.0 request may come without a Host: name the server then.
    let local;
    let default_host = match (&config.server_name, parts.head.host) {
        (_, Some(_)) => &b""[..],
        (Some(name), None) => name.as_bytes(),
        // The address reached, without an IPv6 scope (`%2` is no part of a Host; found by
        // review), as the uwsgi SERVER_NAME is made.
        (None, None) => {
            let reached = client.reached();
            local = match reached.ip().to_canonical() {
                IpAddr::V4(ip) => format!("{ip}:{}", reached.port()),
                IpAddr::V6(ip) => format!("[{ip}]:{}", reached.port()),
            };
            local.as_bytes()
        }
    };
    // Read from the route, not carried in the `Target`: a request's future holds that.
    let set = match &target.route.action {
        Action::Upstream {
            upstream_headers, ..
        } => upstream_headers,
        Action::Static(files) => match &files.fallback {
            Some(Fallback::Group {
                upstream_headers, ..
            }) => upstream_headers,
            _ => &worker.config.upstream_headers,
        },
        _ => &worker.config.upstream_headers,
    };
    let set = set.resolve(true, |template, out| {
        super::log::set_value(worker, client, req, target.redirected, template, out);
    });
    let env = HeadEnv {
        method: target.method_sent(req.head.method),
        query: target.query_sent(),
        client_ip: req.from.ip,
        request_id: req.request_id.as_bytes(),
        https: client.is_tls(),
        client_cert: client.cert(config),
        trusted_peer: client.vouched_for(config),
        real_ip_header: config.real_ip_header.name().as_bytes(),
        forwarded_host: super::forwarded_host(client, target.route, worker),
        default_host,
        allow_underscores: config.allow_underscores_in_headers,
        body_len,
        upgrade: upgrading,
        keep_alive: group.keeps_connections(),
        path: match target.upstream_path {
            Some(replacement) => {
                let rest = parts
                    .path
                    .get(target.route.path.len()..)
                    .unwrap_or_default();
                Some((replacement.as_bytes(), rest))
            }
            // Dot segments, as written or escaped: the app gets the path the routes and
            // their access rules saw, as a uwsgi app gets PATH_INFO. Sent as it came, the
            // `/admin/..%2Fpublic` a `/public` route let through would reach an app that
            // routes `/admin/../public` itself under `/admin/` (found by review; nginx's
            // `proxy_pass` without a URI sends it as it came: stricter on purpose).
            None if has_dot_segment(parts.head.path.of(parts.input), false) => {
                Some((&b""[..], parts.path))
            }
            None if target.redirected.is_some() => Some((&b""[..], parts.path)),
            None => None,
        },
        set: &set,
    };
    let mut head = Buf::with_capacity(group.buffer_size());
    encode_request_head(parts.input, parts.head, parts.headers, &env, &mut head);
    head
}
