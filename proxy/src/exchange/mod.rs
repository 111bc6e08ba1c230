//! One request, from its parsed head to its last response byte.
//!
//! [`serve`] refuses what no route may take (TRACE and CONNECT, a Host not served),
//! normalises the path, finds the route (crate::routes), checks the declared body size, the
//! request rate (`limit_req`) and the access rules (`limit_except`, `allow`, `auth_basic`,
//! `auth_request`), and dispatches to the route's handler: an upstream exchange, static
//! files, a fixed answer, `stub_status` or a redirect. Whatever failed before a response began becomes ringway's own
//! answer, through the one table in `crate::fail`. A handler is a sequence of small steps,
//! each returning `Result<_, Fail>`, ending in an [`Outcome`].

mod accel;
mod auth_request;
mod body_out;
mod http_upstream;
mod intercept;
mod log;
mod next_upstream;
mod redirect;
mod relay;
mod respond;
mod static_file;
mod stub_status;
mod upgrade;
mod upstream;

pub(crate) use log::{Arrival, keeps_sent_head, log_unparsed};

use std::borrow::Cow;
use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::access_log::{ReadHeaders, UpstreamBytes, read_header_name};
use crate::auth_basic::Denied;
use crate::buffer::{Body, Buf};
use crate::client::{Client, Next, Own, may_discard};
use crate::config::{MAIN_LOG, SetValues};
use crate::error_pages::{Carried, ErrorPages};
use crate::fail::{Allowed, Fail};
use crate::gzip::GzipRatio;
use crate::http::{BodyFraming, HeaderSpan, Method, RequestHead};
use crate::identity::{RealClient, RequestId, identify};
use crate::limits::{Entry, LimitConnStatus, LimitReqStatus, RequestTicket};
use crate::ratelimit::NamedGate;
use crate::routes::{Access, Action, Found, Route};
use crate::upstream::UpstreamConn;
use crate::uwsgi::normalize_path;
use crate::worker::Worker;

/// How a request ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// The status sent (0 when none could be).
    pub(crate) status: u16,
    /// Time the request spent with the upstream: connected → response head received.
    pub(crate) upstream: Option<Duration>,
    /// What the connection does next.
    pub(crate) next: Next,
    /// The route that served it (`None`: none matched, or it failed before routing).
    pub(crate) route: Option<usize>,
    /// Response body bytes written: what followed the response head, chunk framing
    /// included (nginx's `$body_bytes_sent`). Set by [`serve`].
    pub(crate) body_bytes: u64,
}

/// The status of a request that ended with no answer, as nginx logs it.
const CLIENT_CLOSED: u16 = 499;

impl Outcome {
    /// The status the request is logged and counted under: nginx's 499 when none was sent
    /// (the client went away first).
    pub(crate) fn reported_status(&self) -> u16 {
        match self.status {
            0 => CLIENT_CLOSED,
            status => status,
        }
    }

    /// A request that ended with `status` (0: none sent), the connection doing `next`.
    pub(crate) fn new(status: u16, next: Next) -> Outcome {
        Outcome {
            status,
            upstream: None,
            next,
            route: None,
            body_bytes: 0,
        }
    }
}

/// A request's passage through an upstream server, for the access log (kept in its
/// [`Request`], not in the [`Outcome`]: an idle connection's task holds outcomes, and must
/// stay small).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamCall {
    /// The group (by index) and its server (by index) connected to, or whose connect
    /// failed (u32: a request's future holds this; no configuration has more groups).
    pub(crate) group: u32,
    pub(crate) server: u32,
    /// When the connect began.
    pub(crate) started: Instant,
    /// Time to connect (`None`: it failed).
    pub(crate) connect: Option<Duration>,
    /// From the start of the connect to the upstream's last byte read (`None`: not read to
    /// its end).
    pub(crate) response: Option<Duration>,
    /// The answer head's status (0: no head came) and when it was in, in microseconds from
    /// the start of the connect: kept small, a request's future holds it.
    pub(crate) head_status: u16,
    pub(crate) head_micros: u32,
}

/// The request being served.
#[derive(Debug)]
pub(crate) struct Request {
    /// Its head (spans into `Client::input`).
    pub(crate) head: RequestHead,
    /// Its normalised path: what routes match and PATH_INFO is built from.
    pub(crate) path: Buf,
    /// The connection may serve another request after this one, as things stood when its
    /// head came: the client allows it and the server was not stopping (an answer asks
    /// [`Request::keeps_alive`], which looks at the stop again).
    pub(crate) keep_alive: bool,
    /// The real client: from a trusted proxy's X-Forwarded-For, else the connection's
    /// address (crate::identity). REMOTE_ADDR, the allow lists and the logs use its IP.
    pub(crate) from: RealClient,
    /// The request's ID: a trusted proxy's X-Request-ID, else one made here. It goes to the
    /// app, back in the answer, and to the logs.
    pub(crate) request_id: RequestId,
    /// The upstream it went to, once connected (whatever happens after, an error included).
    pub(crate) upstream: Cell<Option<UpstreamCall>>,
    /// Internal redirects taken so far (X-Accel-Redirect, a static route's fallback).
    pub(crate) redirects: Cell<u8>,
    /// The route an internal redirect landed on (by index: X-Accel-Redirect, an index or a
    /// fallback path in another route): its error pages and headers answer what goes wrong
    /// there, and its `access_log` takes the line, as nginx's location after an internal
    /// redirect. Four bytes, in the padding of the cells around
    /// it: a route past the 65536th keeps the request's own.
    landed: Cell<Option<u16>>,
    /// Bytes of its body read, as sent (chunk framing included): with its head, nginx's
    /// `$request_length`.
    pub(crate) body_taken: Cell<u64>,
    /// Its body was read whole from the client ([`Request::took_body`]).
    body_read: Cell<bool>,
    /// What its route's `auth_request` answered, once asked.
    pub(crate) auth: auth_request::AuthSlot,
    /// What the access log's format names that only the exchange sees.
    pub(crate) for_log: Slot<ForLog>,
    /// How much its answer shrank, once compressed whole (nginx's `$gzip_ratio`).
    pub(crate) gzip_ratio: Cell<Option<GzipRatio>>,
    /// What its route's `limit_req` did with it (nginx's `$limit_req_status`).
    pub(crate) limit_req: Cell<Option<LimitReqStatus>>,
    /// What its route's `limit_conn` did with it (nginx's `$limit_conn_status`).
    pub(crate) limit_conn: Cell<Option<LimitConnStatus>>,
    /// Its Referer is one its route's `referers` do not take (nginx's `$invalid_referer`),
    /// once judged.
    pub(crate) invalid_referer: Cell<Option<bool>>,
    /// Its place under its route's `limit_conn`, given back when the request ends.
    conn_ticket: Slot<RequestTicket>,
}

/// What a request keeps for its log line when the format names it: in one slot, so that
/// each kind kept does not grow every request's future.
#[derive(Debug, Default)]
pub(crate) struct ForLog {
    /// The upstream answer's headers the format names (`$upstream_http_NAME`).
    pub(crate) upstream_headers: Box<ReadHeaders>,
    /// The request's body, when it was held in memory (`$request_body`): a copy, charged
    /// to the memory budget while the request lasts.
    pub(crate) request_body: Option<Buf>,
    /// The upstream answer's head length, when the format shows the bytes to and from the
    /// upstream (`$upstream_bytes_received`, `$upstream_bytes_sent`,
    /// `$upstream_response_length`); then those bytes, once the answer was read to its end.
    pub(crate) upstream_head_len: Option<u64>,
    pub(crate) upstream_bytes: Option<UpstreamBytes>,
}

/// A value a request keeps for a later look (its log line's, a header value's): a `Cell`,
/// 8 bytes in every request's future, taken out for a look and put back.
pub(crate) struct Slot<T>(Cell<Option<Box<T>>>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(Cell::new(None))
    }
}

impl<T> Slot<T> {
    pub(crate) fn take(&self) -> Option<Box<T>> {
        self.0.take()
    }

    pub(crate) fn set(&self, value: Option<Box<T>>) {
        self.0.set(value);
    }

    /// Calls `f` with the value, if there is one.
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let value = self.take();
        let r = f(value.as_deref());
        self.set(value);
        r
    }
}

impl<T> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Request {
    /// Notes the route an internal redirect landed on (`route`, at `index`): its settings
    /// answer for the request from now on, its `send_timeout` too (an HTTP/2 stream's
    /// writes are timed by the connection, which was told the first route's).
    pub(crate) fn land_on(&self, client: &Client, index: usize, route: &Route) {
        self.landed.set(u16::try_from(index).ok());
        (client.stream.get_ref()).routed_with_send_timeout(route.limits.send_timeout);
    }

    /// The route whose settings answer for the request now: the one an internal redirect
    /// landed on, else `route` (its own).
    fn answering<'w>(&self, route: &'w Route, worker: &'w Worker) -> &'w Route {
        (self.landed.get())
            .and_then(|i| worker.config.routes.get(usize::from(i)))
            .unwrap_or(route)
    }

    /// Counts an internal redirect (nginx's URI change); past
    /// [`MAX_INTERNAL_REDIRECTS`](crate::fail::MAX_INTERNAL_REDIRECTS), the request is
    /// going round in a circle.
    pub(crate) fn redirect(&self) -> Result<(), Fail> {
        let taken = self.redirects.get() + 1;
        if taken > crate::fail::MAX_INTERNAL_REDIRECTS {
            return Err(Fail::RedirectCycle);
        }
        self.redirects.set(taken);
        Ok(())
    }

    /// Whether an answer that reads no body can keep the connection: if the body was read
    /// already (by the app, before its X-Accel-Redirect), or the body it leaves unread, if
    /// any, can be dropped after it ([`serve`] does), as nginx discards it.
    fn may_keep_alive_unread(&self, worker: &Worker) -> bool {
        self.keeps_alive(worker) && (self.body_read.get() || may_discard(&self.head))
    }

    /// Whether ringway's own answer to `fail` may keep the connection: a refusal of a
    /// request with nothing left unread, or, as nginx keeps it, an upstream's failure
    /// answered 502, 503 or 504 once nothing of the request is left unread (its body read
    /// whole, or none; found by review: every such answer closed, and the requests
    /// pipelined behind it were lost).
    fn may_keep_alive_after(&self, fail: Fail, worker: &Worker) -> bool {
        if fail.is_clean() {
            return self.may_keep_alive_unread(worker);
        }
        matches!(fail.status(), Some(502..=504))
            && self.keeps_alive(worker)
            && (self.head.body.has_no_bytes() || self.body_read.get())
    }

    /// Whether the answer being written may keep the connection: as its head came, unless
    /// the server began stopping since. nginx decides it when it writes the head (found by
    /// review: an answer after a wait at the upstream promised keep-alive to a client that
    /// the drain then closed on).
    pub(crate) fn keeps_alive(&self, worker: &Worker) -> bool {
        self.keep_alive && !worker.is_stopping()
    }

    /// Who it is from and what it is called.
    fn identity(&self) -> Identity {
        Identity {
            from: self.from,
            request_id: self.request_id,
        }
    }

    /// Notes the upstream connection made for this request: its connect to `server` of `group`, begun at `started`, took `took`
    /// (`None`: it failed, and the request got no server from it).
    fn upstream_connected(
        &self,
        group: usize,
        server: usize,
        started: Instant,
        took: Option<Duration>,
    ) {
        self.upstream.set(Some(UpstreamCall {
            group: u32::try_from(group).unwrap_or(u32::MAX),
            server: u32::try_from(server).unwrap_or(u32::MAX),
            started,
            connect: took,
            response: None,
            head_status: 0,
            head_micros: 0,
        }));
    }

    /// Keeps the headers of the upstream's answer (`headers`, spans into `buf`) that the
    /// access log's format names (`$upstream_http_NAME`), for the request's line.
    fn keep_upstream_headers(&self, worker: &Worker, headers: &[HeaderSpan], buf: &[u8]) {
        let Some(template) = worker.access_log.as_ref().and_then(|log| log.template()) else {
            return;
        };
        if !template.names_upstream_headers() {
            return;
        }
        let kept: Box<ReadHeaders> = headers
            .iter()
            .filter_map(|h| {
                let name = read_header_name(h.name.of(buf));
                template
                    .names_upstream_header(&name)
                    .then(|| (name, Box::from(h.value.of(buf))))
            })
            .collect();
        self.keep_for_log(|log| log.upstream_headers = kept);
    }

    /// Notes the request's body read whole from the client (nothing of the request is
    /// left unread: the connection may serve on after an upstream's failure), and keeps a
    /// copy of it for its log line when the format shows `$request_body` and the body is
    /// held in memory (nginx's rule: a body in a temp file is not shown), and the memory
    /// budget has room for it (found by review: the copies of slow clients' requests were
    /// held past it; nginx shows its body's own buffer).
    pub(crate) fn took_body(&self, worker: &Worker, body: &Body) {
        self.body_read.set(true);
        let Some(bytes) = body.in_memory() else {
            return;
        };
        let shown = worker
            .access_log
            .as_ref()
            .and_then(|log| log.template())
            .is_some_and(|template| template.shows_request_body());
        if !shown {
            return;
        }
        let mut copy = Buf::copy_of(bytes);
        if copy.charge(&worker.budget) {
            self.keep_for_log(|log| log.request_body = Some(copy));
        }
    }

    /// Puts something in the request's log slot.
    fn keep_for_log(&self, keep: impl FnOnce(&mut ForLog)) {
        let mut kept = self.for_log.take().unwrap_or_default();
        keep(&mut kept);
        self.for_log.set(Some(kept));
    }

    /// Notes the upstream's answer head, with its status (and its length, for a format
    /// that shows the upstream's bytes).
    fn upstream_answered(&self, worker: &Worker, status: u16, head_len: usize) {
        if shows_upstream_bytes(worker) {
            self.keep_for_log(|log| log.upstream_head_len = Some(head_len as u64));
        }
        if let Some(mut call) = self.upstream.get() {
            call.head_status = status;
            let micros = call.started.elapsed().as_micros();
            call.head_micros = u32::try_from(micros).unwrap_or(u32::MAX);
            self.upstream.set(Some(call));
        }
    }

    /// Whether the upstream this request went to is an HTTP server (not uwsgi).
    fn upstream_speaks_http(&self, worker: &Worker) -> bool {
        self.upstream
            .get()
            .and_then(|call| worker.upstreams.get(call.group as usize))
            .is_some_and(|group| group.protocol() == crate::config::Protocol::Http)
    }

    /// Notes that `upstream`'s answer was read to its end (it is released next), and the
    /// bytes that went each way, for a format that shows them (its head's length was kept).
    fn upstream_done(&self, upstream: &UpstreamConn) {
        if let Some(mut kept) = self.for_log.take() {
            if let Some(head_len) = kept.upstream_head_len {
                let (received, sent) = upstream.traffic();
                kept.upstream_bytes = Some(UpstreamBytes {
                    received,
                    sent,
                    body: received.saturating_sub(head_len),
                });
            }
            self.for_log.set(Some(kept));
        }
        if let Some(mut call) = self.upstream.get()
            && call.response.is_none()
        {
            call.response = Some(call.started.elapsed());
            self.upstream.set(Some(call));
        }
    }
}

/// Whether the access log's format shows the bytes to and from the upstream.
fn shows_upstream_bytes(worker: &Worker) -> bool {
    worker
        .access_log
        .as_ref()
        .and_then(|log| log.template())
        .is_some_and(|template| template.shows_upstream_bytes())
}

/// A request head as it goes to an upstream: its bytes, its head and header lines parsed
/// from them, and its normalised path. The client's request's, or an auth request's made
/// from it.
#[derive(Clone, Copy)]
pub(super) struct HeadParts<'a> {
    pub(super) input: &'a [u8],
    pub(super) head: &'a RequestHead,
    pub(super) headers: &'a [HeaderSpan],
    pub(super) path: &'a [u8],
}

impl<'a> HeadParts<'a> {
    /// The client's request's, to `target` (its path the one an internal redirect landed
    /// on, if any).
    fn of(client: &'a Client, req: &'a Request, target: &upstream::Target<'a>) -> HeadParts<'a> {
        HeadParts {
            input: &client.input,
            head: &req.head,
            headers: &client.headers,
            path: target.redirected.map_or(&req.path, |r| r.path),
        }
    }
}

/// Serves the request whose head is at the start of `client.input`, and writes its access
/// log line while the head's bytes are still there.
pub(crate) async fn serve(
    client: &mut Client,
    head: RequestHead,
    worker: &Worker,
    arrival: Arrival,
) -> Outcome {
    let mut rest = client.take_rest(head.head_len);
    client.response_starts(log::keeps_sent_head(worker));
    let keep = keeps_alive(&head, worker, arrival);
    let routed = route(client, head, worker, keep);
    let redirect_to = redirects_to_https(client, worker, &routed);
    let head_only = head.method == Method::Head;
    // Matched by reference: moving the request out would give it a second slot in this
    // future's state.
    let mut outcome = match (&routed, redirect_to) {
        (routed, Some((tls_port, status))) => {
            let id = routed.request_id();
            let limit = worker.config.limits.send_timeout;
            let to = (tls_port, worker.config.server_name.as_deref(), status);
            redirect::to_https(client, &head, to, keep, id, (limit, client.hsts(worker))).await
        }
        (Routed::To(req, index, route), None) => {
            client
                .stream
                .get_ref()
                .routed_with_send_timeout(route.limits.send_timeout);
            let mut outcome = handle(client, req, route, *index, &mut rest, worker).await;
            outcome.route = Some(*index);
            outcome
        }
        (Routed::Refused(fail, refused), None) => {
            let fail = *fail;
            let keep = fail.is_clean() && keep && may_discard(&head);
            let scope = OwnAnswers::of_server(worker);
            answer(
                client,
                refused.from,
                fail,
                head_only,
                keep,
                &refused.request_id,
                scope,
                worker,
            )
            .await
        }
    };
    // An answer that kept the connection without reading the body: the body is dropped
    // now (before the log line, whose $request_time includes it, as nginx's), or the
    // connection closes, briefly drained: the drain's bounds are spent (it would be read
    // as the next request).
    if outcome.next == Next::KeepAlive
        && !head.body.has_no_bytes()
        && !matches!(&routed, Routed::To(req, ..) if req.body_read.get())
        && !Box::pin(client.discard_body(head.body, &mut rest)).await
    {
        outcome.next = Next::LingerBriefly;
    }
    outcome.body_bytes = client.body_bytes_sent();
    if let Some(log) = &worker.access_log
        && log::logs_status(worker, outcome.reported_status())
    {
        let subject = match &routed {
            // The route's own file, or nginx's `access_log off` in a location.
            Routed::To(req, _, route) => {
                (req.answering(route, worker).log_to).map(|to| (log::Subject::Routed(req), to))
            }
            Routed::Refused(_, refused) => Some((log::Subject::Refused(refused), MAIN_LOG)),
        };
        if let Some((subject, sink)) = subject.filter(|(_, sink)| log.writes_to(*sink)) {
            log::write(
                log,
                &worker.log_names,
                client,
                Some(&head),
                subject,
                &outcome,
                arrival,
                sink,
            );
        }
    }
    // Whatever followed this request is the start of the next one.
    client.put_back_rest(rest);
    outcome
}

/// The HTTPS port to send a plain request to, and the redirect's status: `redirect_port`,
/// else ringway's TLS port, when `[tls] redirect_http` is on and the request came over plain HTTP, 443 when
/// `redirect_forwarded_http` is on and a trusted proxy says the client used plain HTTP.
/// Every request but an ACME HTTP-01 challenge, which certificate authorities fetch over
/// plain HTTP (nginx users keep a `location /.well-known/acme-challenge/` in their port 80
/// server for it), and one for a Host this server does not serve: its 421 comes first, or
/// the redirect would send browsers to any host a request names (found by review).
fn redirects_to_https(client: &Client, worker: &Worker, routed: &Routed<'_>) -> Option<(u16, u16)> {
    let config = &worker.config;
    let claimed = match config.redirect_forwarded_http {
        Some(status) => forwarded(client, config).map(|scheme| (scheme, status)),
        None => None,
    };
    let to = match claimed {
        // A trusted balancer in front says what the client used: its word decides, or a
        // request it took over HTTPS would be sent round to ringway's TLS port for ever.
        Some((scheme, status)) => (scheme == b"http").then_some((443, status))?,
        None => match config.tls.as_ref() {
            Some(tls) if !client.is_tls() => {
                let status = tls.redirect_http?;
                (tls.redirect_port.or(worker.tls_port)?, status)
            }
            _ => return None,
        },
    };
    let acme = matches!(routed, Routed::To(req, ..) if req.path.starts_with(b"/.well-known/acme-challenge/"));
    let other_host = matches!(routed, Routed::Refused(Fail::MisdirectedHost, _));
    (!acme && !other_host).then_some(to)
}

/// The scheme a trusted proxy in front says the client used, if one says.
fn forwarded(client: &Client, config: &crate::config::Config) -> Option<&'static [u8]> {
    let trusted = client.vouched_for(config);
    crate::identity::forwarded_scheme(&client.input, &client.headers, trusted)
}

/// Where a request goes.
// The ID travels inside, not beside it: a second copy would be held through the whole
// request. Not boxed, though the request is the larger: it is moved once, out of here, and
// a box would be an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Routed<'w> {
    /// To this route (at this index).
    To(Request, usize, &'w Route),
    /// Nowhere: it is answered with this failure, under its ID.
    Refused(Fail, Identity),
}

impl Routed<'_> {
    /// The request's ID, routed or not.
    fn request_id(&self) -> &RequestId {
        match self {
            Routed::To(req, ..) => &req.request_id,
            Routed::Refused(_, refused) => &refused.request_id,
        }
    }
}

/// Who a request refused before it was routed is from, and what it is called: its answer
/// and its log line carry them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub(crate) from: RealClient,
    pub(crate) request_id: RequestId,
}

/// Says who the request is from and what it is called (crate::identity), refuses what no
/// route serves (TRACE and CONNECT, a Host not in `hosts`), normalises the path and finds
/// the route serving it. `keep`: the connection may serve another request after this one.
fn route<'w>(client: &Client, head: RequestHead, worker: &'w Worker, keep: bool) -> Routed<'w> {
    let (from, request_id) = identify(
        &client.input,
        &client.headers,
        (client.peer, client.vouched_for(&worker.config)),
        &worker.config,
        &worker.request_ids,
    );
    let refused = Identity { from, request_id };
    // As nginx: TRACE would echo the request (its cookies) back, and CONNECT asks for a
    // tunnel no route gives.
    if matches!(head.method, Method::Trace | Method::Connect) {
        return Routed::Refused(Fail::MethodNotAllowed(Allowed::Proxied), refused);
    }
    // A Host the configuration does not list: nginx's default server would answer it, and
    // the app would build its links from it (Host header poisoning).
    if !worker
        .config
        .serves_host(head.host.map(|h| h.of(&client.input)))
    {
        return Routed::Refused(Fail::MisdirectedHost, refused);
    }
    let raw = head.path.of(&client.input);
    let mut path = Buf::with_capacity(raw.len().max(1));
    if let Err(err) = normalize_path(raw, &mut path) {
        return Routed::Refused(Fail::Packet(err), refused);
    }
    let req = Request {
        head,
        path,
        keep_alive: keep,
        from,
        request_id,
        upstream: Cell::new(None),
        redirects: Cell::new(0),
        landed: Cell::new(None),
        body_taken: Cell::new(0),
        body_read: Cell::new(false),
        auth: auth_request::AuthSlot::default(),
        for_log: Slot::default(),
        gzip_ratio: Cell::new(None),
        limit_req: Cell::new(None),
        limit_conn: Cell::new(None),
        invalid_referer: Cell::new(None),
        conn_ticket: Slot::default(),
    };
    let routes = &worker.config.routes;
    match routes.find(req.head.host.map(|h| h.of(&client.input)), &req.path) {
        Found::Route(i) | Found::AddSlash(i) => match routes.get(i) {
            Some(route) => Routed::To(req, i, route),
            None => Routed::Refused(Fail::NoRoute, req.identity()),
        },
        Found::Nothing => Routed::Refused(Fail::NoRoute, req.identity()),
    }
}

/// Runs the route's handler.
async fn handle(
    client: &mut Client,
    req: &Request,
    route: &Route,
    index: usize,
    rest: &mut Buf,
    worker: &Worker,
) -> Outcome {
    let head_only = req.head.method == Method::Head;
    // The route's path is this path with a slash added: send the client there (as nginx
    // does, before any access check; the allow list applies where it lands).
    if !route.internal
        && route.path.len() > req.path.len()
        && declared_body_fits(req, route).is_ok()
    {
        return redirect::to_slashed(client, req, route, worker).await;
    }
    let handled = if let Err(fail) = declared_body_fits(req, route) {
        Err(fail)
    } else if route.internal {
        // Reachable only through X-Accel-Redirect.
        Err(Fail::NoRoute)
    } else if let Err(fail) = referer_check(client, req, route) {
        // Before the limits, as nginx's `if ($invalid_referer)` runs in its rewrite phase.
        Err(fail)
    } else if let Err(fail) = limit_req(client, req, route, index, worker).await {
        // Before the allow list, as nginx's limit_req (preaccess phase) runs before `allow`.
        Err(fail)
    } else if let Err(fail) = limit_conn(req, route, index, worker) {
        // After limit_req, as nginx runs its limit_conn: a request held by limit_req is not
        // counted while it waits.
        Err(fail)
    } else if let Err(fail) = access(client, req, route, index, worker, MethodJudged::AsSent).await
    {
        Err(fail)
    } else {
        dispatch(client, req, route, index, rest, worker).await
    };
    match handled {
        Ok(outcome) => outcome,
        Err(fail) => {
            let keep = req.may_keep_alive_after(fail, worker);
            let refusal = auth_request::refusal_headers(req, fail, worker);
            // A refusal `redirect_401` turns into a 302 gets all of the route's headers.
            let status = fail.status().unwrap_or(500);
            let scope = OwnAnswers {
                refusal: &refusal,
                ..OwnAnswers::of_request(
                    req.answering(route, worker),
                    status,
                    (worker, client, req),
                )
            };
            answer(
                client,
                req.from,
                fail,
                head_only,
                keep,
                &req.request_id,
                scope,
                worker,
            )
            .await
        }
    }
}

/// A declared body past the route's limit is refused (413) before anything else, as nginx
/// checks `client_max_body_size` once the location is found (found by review: a password
/// prompt, an auth request or a limit came first, and on routes that read no body, nothing).
/// An internal route is a 404 first.
fn declared_body_fits(req: &Request, route: &Route) -> Result<(), Fail> {
    match req.head.body {
        BodyFraming::Length(n) if !route.internal => {
            upstream::check_body_size(n, route.limits.max_body_size)
        }
        _ => Ok(()),
    }
}

/// The route's `referers` (nginx's `valid_referers` and `if ($invalid_referer) { return
/// 403; }`): the request's first Referer is judged, and the judgement kept for
/// `$invalid_referer` (a dry run's only there). Judged once: the route an internal
/// redirect lands on acts on the first route's judgement, as nginx keeps the variable's
/// value through its redirect.
fn referer_check(client: &Client, req: &Request, route: &Route) -> Result<(), Fail> {
    let Some(check) = &route.referers else {
        return Ok(());
    };
    let invalid = match req.invalid_referer.get() {
        Some(judged) => judged,
        None => {
            let judged = !check.valid.allow(client.request_header(b"referer"));
            req.invalid_referer.set(Some(judged));
            judged
        }
    };
    match invalid && !check.dry_run {
        true => Err(Fail::InvalidReferer(check.status)),
        false => Ok(()),
    }
}

/// The route's `limit_req`: refused past its burst, or held for as long as its bucket says
/// (nginx without `nodelay`), the client watched meanwhile: one that leaves is not passed
/// on (499), as nginx tests the connection while it delays.
async fn limit_req(
    client: &Client,
    req: &Request,
    route: &Route,
    index: usize,
    worker: &Worker,
) -> Result<(), Fail> {
    if route.limit_req.is_none() {
        return Ok(());
    }
    let dry_run = route.limit_req_dry_run;
    let wait = match worker.limits.check_rate(index, req.from.ip, dry_run) {
        Ok(wait) => wait,
        Err(_) if dry_run => {
            req.limit_req.set(Some(LimitReqStatus::RejectedDryRun));
            report_dry_run(req, route, "refused");
            return Ok(());
        }
        Err(retry_after) => {
            req.limit_req.set(Some(LimitReqStatus::Rejected));
            return Err(Fail::RateLimited(retry_after, route.limit_req_status));
        }
    };
    if wait.is_zero() {
        req.limit_req.set(Some(LimitReqStatus::Passed));
        return Ok(());
    }
    if dry_run {
        req.limit_req.set(Some(LimitReqStatus::DelayedDryRun));
        report_dry_run(req, route, "held");
        return Ok(());
    }
    req.limit_req.set(Some(LimitReqStatus::Delayed));
    // Boxed: a request's future stays its size whether or not it is ever delayed.
    Box::pin(async {
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = client.gone_at_once() => Err(Fail::ClientGone),
        }
    })
    .await
}

/// A request `limit_req` lets through only because of its `dry_run`: logged as nginx's
/// "limiting requests, dry run" (a few lines per window; `$limit_req_status` tells each).
fn report_dry_run(req: &Request, route: &Route, would_be: &str) {
    static GATE: NamedGate = NamedGate::info("limit_req dry run");
    if GATE.allow() {
        tracing::info!(
            client = %req.from.ip,
            route = %route.path,
            "limiting requests, dry run: a request over limit_req would have been {would_be}"
        );
    }
}

/// The route's `limit_conn`: the request counted under its client until it ends (its
/// ticket drops with it), or refused when the client has as many on the route at once.
/// A fixed answer or a redirect is not counted: nginx's `return` answers before its
/// `limit_conn` is looked at.
fn limit_conn(req: &Request, route: &Route, index: usize, worker: &Worker) -> Result<(), Fail> {
    let Some(limit) = route.limit_conn else {
        return Ok(());
    };
    if matches!(route.action, Action::Respond(_) | Action::Redirect { .. }) {
        return Ok(());
    }
    let status = match worker.limits.enter(index, req.from.ip, limit) {
        None => return Ok(()),
        Some(Entry::Counted(ticket)) => {
            req.conn_ticket.set(Some(Box::new(ticket)));
            LimitConnStatus::Passed
        }
        Some(Entry::OverDryRun) => {
            report_conn_dry_run(req, route);
            LimitConnStatus::RejectedDryRun
        }
        Some(Entry::Refused) => {
            req.limit_conn.set(Some(LimitConnStatus::Rejected));
            return Err(Fail::ConnLimited(limit.status));
        }
    };
    req.limit_conn.set(Some(status));
    Ok(())
}

/// A request `limit_conn` lets through only because of its `dry_run`: logged as nginx's
/// "limiting connections, dry run" (a few lines per window; `$limit_conn_status` tells
/// each).
fn report_conn_dry_run(req: &Request, route: &Route) {
    static GATE: NamedGate = NamedGate::info("limit_conn dry run");
    if GATE.allow() {
        tracing::info!(
            client = %req.from.ip,
            route = %route.path,
            "limiting connections, dry run: a request over limit_conn would have been refused"
        );
    }
}

/// The method `limit_except` judges a request by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum MethodJudged {
    /// The client's.
    AsSent,
    /// GET (a HEAD stays one): after the app's X-Accel-Redirect nginx makes the request a
    /// GET before it looks for the file.
    AsGet,
}

/// nginx's phases again for the route an internal redirect (X-Accel-Redirect, a fallback)
/// lands on: its `referers`, its `limit_req` and its `limit_conn`, each limit unless one
/// already counted the request (nginx counts a request once), then its access checks
/// (found by review: a limit on an internal route never applied).
pub(super) async fn redirected_to(
    client: &Client,
    req: &Request,
    route: &Route,
    index: usize,
    worker: &Worker,
    method: MethodJudged,
) -> Result<(), Fail> {
    referer_check(client, req, route)?;
    if req.limit_req.get().is_none() {
        limit_req(client, req, route, index, worker).await?;
    }
    if req.limit_conn.get().is_none() {
        limit_conn(req, route, index, worker)?;
    }
    access(client, req, route, index, worker, method).await
}

/// nginx's access phase for a route: its `limit_except`, then its `allow` and `deny`
/// lists ([`Route::access_of`]), its `auth_basic` and its `auth_request`. A method `limit_except` keeps from the client gets
/// 403, as nginx's `deny all` inside it. With `satisfy all` (the default) all must pass,
/// in that order, so a refused address gets 403, not a password prompt, and is never
/// asked of the auth request; with `satisfy any` one is enough: a listed address needs
/// no password, and anyone else is asked for one (401), or by the auth request; refused,
/// the client gets 401 if one of them said so, else 403 (nginx keeps a 401 over a 403).
pub(super) async fn access(
    client: &Client,
    req: &Request,
    route: &Route,
    index: usize,
    worker: &Worker,
    method: MethodJudged,
) -> Result<(), Fail> {
    let sent = req.head.method_span.of(&client.input);
    let method = match method {
        MethodJudged::AsGet if sent != b"HEAD" => b"GET".as_slice(),
        _ => sent,
    };
    if !route.allows_method(method, req.from.ip) {
        return Err(Fail::Forbidden);
    }
    let access = route.access_of(req.from.ip);
    if !route.satisfy_any {
        if access == Access::Denied {
            return Err(Fail::Forbidden);
        }
        authorize(client, route, index).await?;
        return ask_auth_request(client, req, route, worker).await;
    }
    // Only an `allow` entry lets a client in by itself (nginx: no rule, no say).
    if access == Access::Allowed {
        return Ok(());
    }
    // A `respond` or `redirect` route asks no password (`authorize`): that is no password
    // given, not one checked (found by review: with `satisfy any` it let every address
    // past the allow list that `satisfy all` holds it to).
    let asks_password = route.auth.is_some()
        && !matches!(route.action, Action::Respond(_) | Action::Redirect { .. });
    let asks = asks_password || route.auth_request.is_some();
    if !asks {
        return match access {
            Access::Denied => Err(Fail::Forbidden),
            Access::Allowed | Access::NoRule => Ok(()),
        };
    }
    let password = if asks_password {
        authorize(client, route, index).await
    } else {
        Err(Fail::Forbidden)
    };
    let Err(refused) = password else {
        return Ok(());
    };
    // A user file that cannot be read is an error, not a refusal: nginx stops there. A
    // client that left while its password waited is asked nothing more (found by review:
    // its auth subrequest went on).
    if route.auth_request.is_none() || refused.status() == Some(500) || refused == Fail::ClientGone
    {
        return Err(refused);
    }
    match ask_auth_request(client, req, route, worker).await {
        Ok(()) => Ok(()),
        // nginx's `satisfy any` answers a 401 if any check said 401, with every check's
        // challenge: the password prompt's first.
        Err(Fail::AuthDenied(403)) if refused.status() == Some(401) => Err(refused),
        Err(fail @ (Fail::AuthDenied(401) | Fail::AuthRedirect)) => {
            if let Fail::Unauthorized(_, basic) = refused {
                req.auth.challenge_first(basic);
            }
            Err(fail)
        }
        Err(fail) => Err(fail),
    }
}

/// The route's `auth_request`, if it has one. Boxed: the exchange's state must not grow
/// every request's future.
async fn ask_auth_request(
    client: &Client,
    req: &Request,
    route: &Route,
    worker: &Worker,
) -> Result<(), Fail> {
    if route.auth_request.is_none() {
        return Ok(());
    }
    Box::pin(auth_request::check(client, req, route, worker)).await
}

/// The route's `auth_basic`, if it has one, against the request's credentials. A `respond`
/// or `redirect` route answers without asking, as nginx's `return` does (its rewrite
/// phase comes before the access phase).
async fn authorize(client: &Client, route: &Route, index: usize) -> Result<(), Fail> {
    let Some(auth) = route.auth.as_deref() else {
        return Ok(());
    };
    if matches!(route.action, Action::Respond(_) | Action::Redirect { .. }) {
        return Ok(());
    }
    let refused = |denied| Fail::Unauthorized(denied, index);
    // One at most: a second was refused with the head (`http::request`, SENT_ONCE).
    let value = client.request_header(b"authorization");
    auth.check(value, client.gone_at_once())
        .await
        .map_err(|denied| match denied {
            Denied::UserFile(why) => Fail::UserFile(why),
            Denied::ClientGone => Fail::ClientGone,
            Denied::Unchecked => Fail::NoThread,
            denied => refused(denied),
        })
}

/// Hands the request to its route's handler.
async fn dispatch(
    client: &mut Client,
    req: &Request,
    route: &Route,
    index: usize,
    rest: &mut Buf,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    match &route.action {
        Action::Upstream {
            group,
            script_name,
            params,
            upstream_path,
            ..
        } => {
            let target = upstream::Target {
                group: *group,
                script_name: script_name.as_deref(),
                params,
                upstream_path: upstream_path.as_deref(),
                redirected: None,
                route,
            };
            upstream::forward(client, req, &target, rest, worker).await
        }
        Action::Redirect { to, status } => {
            Ok(redirect::answer(client, req, route, (to, *status), worker).await)
        }
        Action::Respond(fixed) => Ok(respond::answer(client, req, route, fixed, worker).await),
        Action::StubStatus => stub_status::answer(client, req, route, worker).await,
        Action::Static(files) => {
            let file = static_file::FileRequest {
                files,
                route_index: index,
                route,
                path: &req.path,
                rel: rel_path(&req.path, route),
                app_headers: &[],
                from_app: false,
                app_query: b"",
                limit_rate: None,
            };
            // Boxed: the upstream exchange is the hot path; a file answer's state must not
            // grow every request's future.
            Box::pin(static_file::serve(client, req, &file, rest, worker)).await
        }
    }
}

/// Whether the connection may serve another request after this one (`arrival` says how
/// many came before it, and whether the connection is past `keepalive_time`): the client
/// allows it, the server is not stopping, keep-alive is on, and the connection has carried
/// neither `keepalive_requests` nor served for `keepalive_time` (nginx's, 1000 and an
/// hour: a client cannot hold one connection, and its place behind a balancer, for ever).
/// `keepalive_timeout = 0` turns it off, as nginx's `keepalive_timeout 0`: every answer
/// says `Connection: close` rather than promising what the idle check would take back at
/// once.
fn keeps_alive(head: &RequestHead, worker: &Worker, arrival: Arrival) -> bool {
    let config = &worker.config;
    head.keep_alive
        && !worker.is_stopping()
        && !config.keepalive_timeout.is_zero()
        && !arrival.aged
        && u64::from(arrival.served) + 1 < config.keepalive_requests
}

/// The part of a normalised path under a static route's root: what follows the route's
/// path, without a leading `/`; for a route serving one file, that file's name.
pub(crate) fn rel_path<'p>(path: &'p [u8], route: &'p Route) -> &'p [u8] {
    if let Action::Static(files) = &route.action
        && let Some(one) = &files.file
    {
        return one.name.as_bytes();
    }
    let rest = path.get(route.path.len()..).unwrap_or_default();
    rest.strip_prefix(b"/").unwrap_or(rest)
}

/// The host a trusted proxy says the client asked it for (its X-Forwarded-Host), for the
/// app's links: one value, a host's syntax, and a host this server and the route serve.
/// Held to `hosts` as the Host itself is, since most load balancers pass a client's own
/// copy on (found by review: a trusted balancer's client could name any host).
pub(crate) fn forwarded_host<'c>(
    client: &'c Client,
    route: &Route,
    worker: &Worker,
) -> Option<&'c [u8]> {
    let config = &worker.config;
    if !client.vouched_for(config) {
        return None;
    }
    let mut values = client
        .headers
        .iter()
        .filter(|h| crate::http::names_header(h.name.of(&client.input), b"x-forwarded-host"))
        .map(|h| h.value.of(&client.input).trim_ascii());
    let host = values.next()?;
    let one = values.next().is_none() && crate::http::is_valid_host(host);
    // A host another route's `hosts` claim is not this route's to put in its links (found
    // by review: a route naming no host took any).
    let served = config.serves_host(Some(host)) && config.routes.serves_host(route, host);
    (one && served).then_some(host)
}

/// What a route says about ringway's own answers on it (before a route is found, the
/// server's settings): how long the client gets to take one, and the headers the answer
/// carries (the route's `response_headers` for its status; before a route, the
/// top-level ones marked `always`).
#[derive(Clone)]
pub(crate) struct OwnAnswers<'a> {
    pub(crate) send_timeout: Duration,
    /// The route's `response_headers` for the answer's status: on an error, those marked
    /// `always`.
    pub(crate) added: Cow<'a, [(String, String)]>,
    /// What an `auth_request` refusal carries: the auth answer's challenges, or where
    /// `redirect_401` sends the client.
    pub(crate) refusal: &'a [(&'static [u8], Box<[u8]>)],
    /// The error pages: the route's, or the top level's.
    pub(crate) pages: &'a ErrorPages,
}

impl<'a> OwnAnswers<'a> {
    /// For a request of `route` answered with `status`: the route's headers for it, their
    /// variables the request's.
    pub(crate) fn of_request(
        route: &'a Route,
        status: u16,
        (worker, client, req): (&Worker, &Client, &Request),
    ) -> Self {
        OwnAnswers {
            send_timeout: route.limits.send_timeout,
            added: added_headers(route.headers_for(status), worker, client, req),
            refusal: &[],
            pages: &route.error_pages,
        }
    }

    /// For a request no route took: the top-level `always` headers, those with variables
    /// left out (there is no request to work them out from, or not one any route read).
    pub(crate) fn of_server(worker: &'a Worker) -> Self {
        OwnAnswers {
            send_timeout: worker.config.limits.send_timeout,
            added: worker
                .config
                .response_headers_always
                .resolve_added(|template, out| {
                    if let Some(text) = template.literal() {
                        out.extend_from_slice(&text);
                    }
                }),
            refusal: &[],
            pages: &worker.config.error_pages,
        }
    }
}

/// The headers `headers` (a route's `response_headers` for an answer's status) add to
/// `req`'s answer, their variables worked out (nginx's `add_header` with variables).
pub(super) fn added_headers<'h>(
    headers: &'h SetValues,
    worker: &Worker,
    client: &Client,
    req: &Request,
) -> Cow<'h, [(String, String)]> {
    headers.resolve_added(|template, out| log::set_value(worker, client, req, None, template, out))
}

/// Reports `fail` and answers it with its status (and the operator's page for that status,
/// if there is one), if the client can still be answered. `keep_alive`: the connection may
/// serve another request after this answer. The answer carries the request's ID, and is
/// written within `send_timeout` (its route's, when it has one).
#[allow(clippy::too_many_arguments)] // the failure, how to answer, whom, under which ID
pub(crate) async fn answer(
    client: &Client,
    from: RealClient,
    fail: Fail,
    head_only: bool,
    keep_alive: bool,
    id: &RequestId,
    scope: OwnAnswers<'_>,
    worker: &Worker,
) -> Outcome {
    fail.report(from, &worker.stats);
    let Some(status) = fail.status() else {
        return Outcome::new(fail.unanswered_status(), Next::Abort);
    };
    if status == respond::CLOSE_SILENTLY {
        // nginx's 444 where a status is the operator's (`limit_req_status 444`): the
        // connection closes without an answer (found by review: a 444 answer was sent).
        return Outcome::new(status, Next::Abort);
    }
    let header = fail.header();
    // The challenge of the route that refused (after an X-Accel-Redirect, the file's).
    let challenge = match fail {
        Fail::Unauthorized(_, route) => worker
            .config
            .routes
            .get(route)
            .and_then(|r| r.auth.as_deref()),
        _ => None,
    }
    .map(|auth| (&b"WWW-Authenticate"[..], auth.challenge().as_bytes()));
    let headers: Vec<(&[u8], &[u8])> = header
        .as_ref()
        .map(|(name, value)| (*name, value.as_bytes()))
        .into_iter()
        .chain(challenge)
        .chain(scope.refusal.iter().map(|(n, v)| (*n, &v[..])))
        .chain(
            scope
                .added
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        )
        .collect();
    let limit = scope.send_timeout;
    // The operator's page for this status, if any (`error_pages`); ringway's short text
    // while the memory budget has no room for a big page's copy.
    let fixed = fail.fixed_body();
    let page = (scope.pages.get(status))
        .filter(|_| fixed.is_none())
        .and_then(|page| Carried::take(page, &worker.budget, head_only));
    let own = Own {
        status,
        keep_alive,
        head_only,
        headers: &headers,
        id,
        page: fixed.or_else(|| {
            page.as_ref()
                .map(|p| (p.page().content_type(), p.page().body()))
        }),
        hsts: client.hsts(worker),
    };
    let sent = client.answer(own, limit).await;
    let next = match (sent, keep_alive, fail.may_linger()) {
        (false, ..) => Next::Abort,
        (true, true, _) => Next::KeepAlive,
        (true, false, true) => Next::Linger,
        (true, false, false) => Next::Close,
    };
    Outcome::new(status, next)
}
