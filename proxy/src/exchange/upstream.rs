//! The upstream exchange: the request goes to uWSGI as a uwsgi packet (or to an HTTP server
//! as HTTP/1.1: `http_upstream`), its answer goes to the client. Read top to bottom, it is
//! the whole data path of a proxied request.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::next_upstream::{self, Missed};
use super::{HeadParts, Outcome, Request, accel, intercept, relay};
use super::{http_upstream, upgrade};
use crate::buffer::{Body, Buf};
use crate::client::Client;
use crate::config::{Protocol, SetValues};
use crate::error_pages::Carried;
use crate::fail::{BadResponse, Fail};
use crate::http::{BodyFraming, Method, ResponseHead};
use crate::routes::Route;
use crate::upstream::{
    Attempts, Failover, Reuse, Sent, UpstreamConn, Upstreams, read_response_head, send_request,
};
use crate::uwsgi::{self, RequestEnv};
use crate::worker::Worker;

/// uwsgi packet header: modifier1, datasize (u16), modifier2.
const PACKET_HEADER: usize = 4;

/// Where a route sends its requests.
pub(super) struct Target<'r> {
    /// The upstream group's index.
    pub(super) group: usize,
    /// The mount point (SCRIPT_NAME).
    pub(super) script_name: Option<&'r str>,
    /// The operator's extra vars.
    pub(super) params: &'r SetValues,
    /// For an HTTP group: what the route's path becomes in the request sent (nginx's
    /// `proxy_pass http://app/;`), if anything.
    pub(super) upstream_path: Option<&'r str>,
    /// Where an internal redirect (X-Accel-Redirect, a `fallback` path) sent the request,
    /// when a static route's `fallback` group is asked for it (a thin pointer: every
    /// request's future holds a target).
    pub(super) redirected: Option<&'r Redirected<'r>>,
    /// The route (its limits and response headers).
    pub(super) route: &'r Route,
}

/// What an internal redirect made of a request, as nginx's makes it: a static route's
/// `fallback` app is asked for the path it landed on (PATH_INFO, the request line's path),
/// not the client's.
pub(super) struct Redirected<'r> {
    pub(super) path: &'r [u8],
    /// The app named the path (X-Accel-Redirect), with this query (empty: none): the
    /// request goes with it, not the client's, and as a GET (a HEAD stays one), as nginx
    /// makes the redirected request's args and method; the routes it landed on judged it
    /// so.
    pub(super) by_app: Option<&'r [u8]>,
}

impl Redirected<'_> {
    /// The method sent in place of the request's `method`, if any.
    pub(super) fn method_sent(&self, method: Method) -> Option<&'static [u8]> {
        (self.by_app.is_some() && method != Method::Head).then_some(b"GET")
    }
}

impl Target<'_> {
    /// The method sent in place of the request's `method`, if any.
    pub(super) fn method_sent(&self, method: Method) -> Option<&'static [u8]> {
        self.redirected.and_then(|r| r.method_sent(method))
    }

    /// The method the request goes with: its own, or GET in its place ([`Target::method_sent`]);
    /// what retries are judged by, as nginx judges the request it made a GET.
    pub(super) fn method_of(&self, method: Method) -> Method {
        match self.method_sent(method) {
            Some(_) => Method::Get,
            None => method,
        }
    }

    /// The query sent in place of the request's, if any.
    pub(super) fn query_sent(&self) -> Option<&[u8]> {
        self.redirected.and_then(|r| r.by_app)
    }
}

/// An upstream's answer head, with the connection it came on.
pub(super) struct Answered {
    pub(super) upstream: UpstreamConn,
    pub(super) head: ResponseHead,
    /// The head, and the body's first bytes after it.
    pub(super) buf: Buf,
    /// When the connection was made (or taken from the pool).
    pub(super) connected: Instant,
}

/// What the server answered.
pub(super) enum Exchanged {
    /// An answer, for the client.
    Answer(Answered),
    /// `101 Switching Protocols`: the two connections are to be joined.
    Switching(Answered),
}

impl Exchanged {
    /// `answered`, whose server read the whole request or not (`whole`). A switch before
    /// the whole body went out is refused: the rest of the body would be lost, or reach the
    /// app after the new protocol's first bytes.
    pub(super) fn of(answered: Answered, whole: bool) -> Result<Exchanged, Fail> {
        if answered.head.status != 101 {
            return Ok(Exchanged::Answer(answered));
        }
        if !whole {
            answered.upstream.close();
            return Err(Fail::UpstreamBadResponse(BadResponse::SwitchedEarly));
        }
        Ok(Exchanged::Switching(answered))
    }
}

/// Proxies one request to an upstream and relays its answer.
pub(super) async fn forward(
    client: &mut Client,
    req: &Request,
    target: &Target<'_>,
    rest: &mut Buf,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    // Every way to an upstream (a route's, a static route's fallback) waits from here on:
    // in a task of its own, not in the idle watcher's poll.
    crate::conn::leave_the_watcher().await;
    let group = worker
        .upstreams
        .get(target.group)
        .ok_or(Fail::UpstreamRefused)?;
    let exchanged = match group.protocol() {
        Protocol::Uwsgi => exchange_uwsgi(client, req, target, rest, worker, group).await,
        Protocol::Http => http_upstream::exchange(client, req, target, rest, worker, group).await,
    };
    // Matched through `?`, not as the named `Exchanged` it was: that kept its room (256
    // bytes) in every request's future while the answer was relayed.
    let answered = match exchanged? {
        Exchanged::Answer(answered) => answered,
        // Boxed: a joined connection's state must not grow every request's future.
        Exchanged::Switching(answered) => {
            req.upstream_answered(worker, answered.head.status, answered.head.head_len);
            req.keep_upstream_headers(worker, &client.response_headers, &answered.buf);
            let (route, group) = (target.route, target.group);
            let join = upgrade::join(client, req, route, answered, rest, worker, group);
            return Box::pin(join).await;
        }
    };
    respond(client, req, target, rest, worker, answered).await
}

/// The uwsgi exchange: the request as a uwsgi packet on a new connection, up to the
/// answer's head.
async fn exchange_uwsgi(
    client: &mut Client,
    req: &Request,
    target: &Target<'_>,
    rest: &mut Buf,
    worker: &Worker,
    group: &Upstreams,
) -> Result<Exchanged, Fail> {
    let limits = &target.route.limits;
    let packet_room = PACKET_HEADER + group.buffer_size();

    // With a declared length the vars are known before the body: a request they refuse is
    // refused before its body is read. A chunked body's length is known only at its end.
    let declared = match req.head.body {
        BodyFraming::None => Some(None),
        BodyFraming::Length(n) => Some(Some(n)),
        BodyFraming::Chunked => None,
    };
    if let Some(Some(n)) = declared {
        check_body_size(n, limits.max_body_size)?;
    }
    let upgrading = upgrade::asked(client, req);
    let early_vars = match declared {
        // Kept in a buffer of its own size: a slow upload holds it while its body arrives.
        Some(length) => Some(Buf::copy_of(&encode_vars(
            client,
            req,
            HeadParts::of(client, req, target),
            target,
            length,
            upgrading,
            worker,
        )?)),
        None => None,
    };
    // The whole body before the upstream: a slow upload must hold ringway, not a Python
    // worker.
    // Boxed when there is a body: a GET's future need not carry a body reader's state.
    let body = if req.head.body == BodyFraming::None {
        Body::Absent
    } else {
        Box::pin(client.receive_body(
            &req.head,
            rest,
            limits,
            worker,
            packet_room,
            &req.body_taken,
        ))
        .await?
    };
    req.took_body(worker, &body);
    let vars = match early_vars {
        Some(vars) => vars,
        None => encode_vars(
            client,
            req,
            HeadParts::of(client, req, target),
            target,
            body.len(),
            upgrading,
            worker,
        )?,
    };

    let is_head = req.head.method == Method::Head;
    let timeout = limits.upstream_read_timeout;
    let (mut vars, mut body) = (vars, body);
    let mut attempts = Attempts::default();
    loop {
        let reuse = Reuse::Fresh;
        let (upstream, connected) =
            connect(client, req, target, worker, group, reuse, &mut attempts).await?;
        let mut headers = std::mem::take(&mut client.response_headers);
        let with_upstream = async {
            let sent = send_request(&upstream, vars, body, timeout).await?;
            let answer =
                read_response_head(&upstream, is_head, upgrading, &mut headers, timeout).await;
            Ok::<_, Fail>((sent, answer))
        };
        // A client that leaves meanwhile ends the request: the upstream connection is shut
        // (uWSGI stops writing an answer nobody reads), nothing is answered.
        // The client first: a stream reset while its upstream connected is seen before the
        // request is written, and the app never gets it (an io_uring write, once submitted,
        // goes out even if its future is dropped).
        let answer = tokio::select! {
            biased;
            () = client.gone(target.route.limits.ignore_client_abort) => Err(Fail::ClientGone),
            answer = with_upstream => answer,
        };
        client.response_headers = headers;
        let (Sent { body: kept, whole }, answer) = answer.inspect_err(|fail| {
            // The request did not go out whole (a send that broke or timed out).
            judge(target, group, &upstream, Missed::Fail(*fail), false);
        })?;
        let missed = match &answer {
            Ok((head, _)) => Missed::Status(head.status),
            Err(fail) => Missed::Fail(*fail),
        };
        let goes_on = kept.is_some()
            && pass_on(
                target.method_of(req.head.method),
                target,
                group,
                &upstream,
                &mut attempts,
                missed,
            );
        judge(target, group, &upstream, missed, goes_on);
        if let Some(kept) = kept.filter(|_| goes_on) {
            upstream.close();
            body = kept;
            let parts = HeadParts::of(client, req, target);
            vars = encode_vars(client, req, parts, target, body.len(), upgrading, worker)?;
            continue;
        }
        let (head, buf) = answer?;
        let answered = Answered {
            upstream,
            head,
            buf,
            connected,
        };
        return Exchanged::of(answered, whole);
    }
}

/// Counts what `upstream`'s server made of a request for or against it (nginx's
/// `max_fails`), once `goes_on` says whether the request goes on to another server: a
/// broken connection, a timeout or a bad head always counts as a failure; a status the
/// route's `next_upstream` lists only when the request goes on for it (nginx relays the
/// last server's answer as an answer); anything else is an answer. A request its client
/// ended says nothing of the server.
pub(super) fn judge(
    target: &Target<'_>,
    group: &Upstreams,
    upstream: &UpstreamConn,
    missed: Missed,
    goes_on: bool,
) {
    let failed = missed.is_failure(target.route.limits.next_upstream);
    match missed {
        Missed::Fail(_) if failed => group.failed(upstream.server()),
        Missed::Fail(_) => {}
        Missed::Status(_) if failed && goes_on => group.failed(upstream.server()),
        Missed::Status(_) => group.answered(upstream.server()),
    }
}

/// Whether a request with `method` goes on to another of `group`'s servers after
/// `upstream`'s missed it: the route's `next_upstream` lists the way, the method allows it,
/// a server is left, and neither `next_upstream_tries` nor `next_upstream_timeout` (from
/// the first connect) is spent; `upstream`'s server is then counted as tried.
pub(super) fn pass_on(
    method: Method,
    target: &Target<'_>,
    group: &Upstreams,
    upstream: &UpstreamConn,
    attempts: &mut Attempts,
    missed: Missed,
) -> bool {
    let limits = &target.route.limits;
    let server = upstream.server();
    if !next_upstream::goes_on(limits.next_upstream, method, missed) {
        return false;
    }
    if !attempts.tried.add(server) || !group.has_untried(attempts.tried) {
        return false;
    }
    let bound = Failover::new(
        limits.next_upstream_tries,
        limits.next_upstream_timeout,
        attempts.since(),
    );
    if bound.spent(attempts.tried) {
        return false;
    }
    match (missed, group.server_addr(server)) {
        (Missed::Fail(fail), Some(addr)) => fail.report_passed_on(addr),
        // The app chose that answer: nothing for an operator to see.
        _ => tracing::debug!(?missed, server, "the request goes on to the next server"),
    }
    group.conn_counts().passed_on.fetch_add(1, Relaxed);
    true
}

/// A connection to one of `group`'s servers for `req` (a kept one where `reuse` allows),
/// and when it was had. With `max_conns`, a slot at the group's servers first, waiting in
/// its queue if every server is full; a client that leaves meanwhile leaves the queue.
/// Biased: when a slot is free at once, the client watch is never started. A new
/// connection's connect time goes to the metrics; the request notes its upstream either way.
/// Servers whose connect fails are passed over within the route's `next_upstream_tries`
/// and `next_upstream_timeout`, counted from the request's first connect (once it has a
/// slot).
pub(super) async fn connect(
    client: &Client,
    req: &Request,
    target: &Target<'_>,
    worker: &Worker,
    group: &Upstreams,
    reuse: Reuse,
    attempts: &mut Attempts,
) -> Result<(UpstreamConn, Instant), Fail> {
    // An HTTP/2 stream reset before its request got here (HEADERS and RST_STREAM back to
    // back, the rapid reset attack) costs the app nothing, not even a connect: nginx starts
    // nothing for it (found by review: every such stream opened an upstream connection).
    if client.known_gone(target.route.limits.ignore_client_abort) {
        return Err(Fail::ClientGone);
    }
    let permit = tokio::select! {
        biased;
        permit = group.slot() => permit?,
        () = client.gone(target.route.limits.ignore_client_abort) => return Err(Fail::ClientGone),
    };
    let limits = &target.route.limits;
    let bound = Failover::new(
        limits.next_upstream_tries,
        limits.next_upstream_timeout,
        attempts.connecting(Instant::now()),
    );
    // Timed from the pick of the server that took it, as nginx times each try (found by
    // review: a dead server's connect timeout counted as the next one's connect).
    let connected = group
        .connect(
            permit,
            limits.upstream_connect_timeout,
            reuse,
            attempts,
            bound,
            req.from.ip,
        )
        .await;
    // A server that refused and none after it: the log line names it, as nginx's
    // `$upstream_addr` with the 502 as its `$upstream_status` (found by review: none).
    let refused = attempts.take_last_refusal();
    let (upstream, connecting) = connected.inspect_err(|_| {
        if let Some((server, picked)) = refused {
            req.upstream_connected(target.group, server, picked, None);
        }
    })?;
    let connected = Instant::now();
    if !upstream.is_reused() {
        worker
            .stats
            .upstream_connect
            .observe(connected - connecting);
    }
    req.upstream_connected(
        target.group,
        upstream.server(),
        connecting,
        Some(connected - connecting),
    );
    Ok((upstream, connected))
}

/// The answer's head is in: the operator's error page, the app's file (X-Accel-Redirect),
/// or the answer itself goes to the client.
async fn respond(
    client: &mut Client,
    req: &Request,
    target: &Target<'_>,
    rest: &mut Buf,
    worker: &Worker,
    answered: Answered,
) -> Result<Outcome, Fail> {
    let Answered {
        upstream,
        head,
        buf,
        connected,
    } = answered;
    let upstream_time = connected.elapsed();
    req.upstream_answered(worker, head.status, head.head_len);
    req.keep_upstream_headers(worker, &client.response_headers, &buf);

    // The route shows the operator's page in place of the app's error body, even one
    // that names a file: nginx intercepts before it redirects (found by review).
    if target.route.intercept_errors
        && let Some(page) = target.route.error_pages.get(head.status)
    {
        // The app's body is not read: uWSGI has usually written it all already, and if not,
        // its next write fails at once instead of waiting on ringway.
        req.upstream_done(&upstream);
        upstream.close();
        // While the memory budget has no room for a big page's copy, ringway's short text
        // takes its place: never the app's own error body, which the operator hides.
        let head_only = req.head.method == Method::Head;
        let carried = Carried::take(page, &worker.budget, head_only);
        let mut short_text = Vec::new();
        let body = match &carried {
            Some(carried) => (carried.page().content_type(), carried.page().body()),
            None => {
                crate::http::push_short_text(&mut short_text, head.status);
                ("text/plain", &short_text[..])
            }
        };
        // Boxed: a rare answer's state must not grow every request's future.
        let answer = intercept::respond(client, req, &head, &buf, body, target.route, worker);
        let mut outcome = Box::pin(answer).await?;
        outcome.upstream = Some(upstream_time);
        return Ok(outcome);
    }

    // The app names a file for ringway to send instead of its own body (nginx's
    // X-Accel-Redirect): the upstream is done, the file route does the rest.
    if accel_redirect(client, &buf).is_some() {
        req.upstream_done(&upstream);
        upstream.close();
        // Boxed: a file route may fall back to an upstream, which may redirect again.
        let app_route = target.route;
        let mut outcome =
            Box::pin(accel::serve(client, req, &buf, app_route, rest, worker)).await?;
        outcome.upstream = Some(upstream_time);
        return Ok(outcome);
    }

    let mut outcome = relay::respond(client, req, target, upstream, head, buf, worker).await?;
    outcome.upstream = Some(upstream_time);
    Ok(outcome)
}

/// The value of the response's X-Accel-Redirect header, if it has one.
pub(super) fn accel_redirect<'b>(client: &Client, buf: &'b [u8]) -> Option<&'b [u8]> {
    client
        .response_headers
        .iter()
        .find(|h| h.name.of(buf).eq_ignore_ascii_case(b"x-accel-redirect"))
        .map(|h| h.value.of(buf))
}

/// 413 for a declared body over the limit.
pub(super) fn check_body_size(declared: u64, limit: u64) -> Result<(), Fail> {
    if declared > limit {
        return Err(Fail::BodyTooLarge {
            declared: Some(declared),
            limit,
        });
    }
    Ok(())
}

/// The packet's header and vars block for the head `parts` (the client's request's, or an
/// auth request's made for `req`), for a body of `body_len` bytes (`None`: no body);
/// `upgrading`: the head asks to switch protocols ([`upgrade::asked`]).
pub(super) fn encode_vars(
    client: &Client,
    req: &Request,
    parts: HeadParts<'_>,
    target: &Target<'_>,
    body_len: Option<u64>,
    upgrading: bool,
    worker: &Worker,
) -> Result<Buf, Fail> {
    let config = &worker.config;
    let max_vars = worker
        .upstreams
        .get(target.group)
        .map_or(0, |g| g.buffer_size());
    // The route matched, so a mount point is a prefix of the path (or the path itself).
    let path_info = match target.script_name {
        Some(mount) => parts.path.get(mount.len()..).unwrap_or_default(),
        None => parts.path,
    };
    let params = target.params.resolve(false, |template, out| {
        super::log::set_value(worker, client, req, target.redirected, template, out);
    });
    let env = RequestEnv {
        path_info,
        method: target.method_sent(req.head.method),
        query: target.query_sent(),
        script_name: target.script_name.map(str::as_bytes),
        params: &params,
        client_ip: req.from.ip,
        client_port: req.from.port,
        request_id: req.request_id.as_bytes(),
        // The address reached names the server for a request with neither Host nor
        // `server_name` (SERVER_NAME); otherwise only its port is told.
        local: if req.head.host.is_none() && config.server_name.is_none() {
            client.reached()
        } else {
            client.local
        },
        https: client.is_tls(),
        client_cert: client.cert(config),
        http2: client.is_http2(),
        document_root: &config.document_root,
        server_name: config.server_name.as_deref(),
        trusted_peer: client.vouched_for(config),
        real_ip_header: config.real_ip_header.name().as_bytes(),
        forwarded_host: super::forwarded_host(client, target.route, worker),
        allow_underscores: config.allow_underscores_in_headers,
        upgrading,
    };
    let mut vars = Buf::with_capacity(PACKET_HEADER + max_vars);
    uwsgi::encode_request(
        parts.input,
        parts.head,
        parts.headers,
        &env,
        body_len,
        max_vars,
        &mut vars,
    )
    .map_err(Fail::Packet)?;
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::check_body_size;
    use crate::config::Limits;
    use crate::fail::Fail;

    #[test]
    fn a_declared_body_over_the_limit_is_413_and_no_limit_takes_any() {
        assert!(check_body_size(1 << 20, 1 << 20).is_ok());
        assert!(matches!(
            check_body_size((1 << 20) + 1, 1 << 20),
            Err(Fail::BodyTooLarge {
                declared: Some(_),
                ..
            })
        ));
        for declared in [0, 1 << 40, u64::MAX] {
            assert!(
                check_body_size(declared, Limits::NO_BODY_LIMIT).is_ok(),
                "max_body_size = 0 takes {declared}"
            );
        }
    }
}
