//! One request, from its parsed head to its last response byte.
//!
//! [`serve`] normalises the path, finds the route (crate::routes), checks its allow list,
//! and dispatches to the route's handler: the upstream exchange, or a redirect. Whatever
//! failed before a response began becomes ringway's own answer, through the one table in
//! `crate::fail`. A handler is a sequence of small steps, each returning `Result<_, Fail>`,
//! ending in an [`Outcome`].

mod accel;
mod redirect;
mod relay;
mod static_file;
mod upstream;

use std::time::Duration;

use crate::buffer::Buf;
use crate::client::{Client, Next};
use crate::fail::Fail;
use crate::http::{BodyFraming, Method, RequestHead};
use crate::routes::{Action, Found, Route};
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
}

/// The request being served.
#[derive(Debug)]
pub(crate) struct Request {
    /// Its head (spans into `Client::input`).
    pub(crate) head: RequestHead,
    /// Its normalised path: what routes match and PATH_INFO is built from.
    pub(crate) path: Buf,
    /// The connection may serve another request after this one (the client allows it and
    /// the server is not stopping).
    pub(crate) keep_alive: bool,
}

impl Request {
    /// Whether an answer that reads no body can keep the connection: only if there was no
    /// body to leave unread.
    fn may_keep_alive_unread(&self) -> bool {
        self.keep_alive && self.head.body == BodyFraming::None
    }
}

/// Serves the request whose head is at the start of `client.input`.
pub(crate) async fn serve(client: &mut Client, head: RequestHead, worker: &Worker) -> Outcome {
    let mut rest = client.take_rest(head.head_len);
    let routed = route(client, head, worker);
    if let Some(tls_port) = redirects_to_https(client, worker, &routed) {
        let limit = worker.config.limits.send_timeout;
        let outcome = redirect::to_https(client, &head, tls_port, limit).await;
        client.put_back_rest(rest);
        return outcome;
    }
    let head_only = head.method == Method::Head;
    let outcome = match routed {
        Ok((req, index, route)) => {
            let mut outcome = handle(client, &req, route, index, &mut rest, worker).await;
            outcome.route = Some(index);
            outcome
        }
        Err(fail) => {
            let keep = fail == Fail::NoRoute
                && head.keep_alive
                && head.body == BodyFraming::None
                && !worker.is_stopping();
            answer(client, fail, head_only, keep, worker).await
        }
    };
    // Whatever followed this request is the start of the next one.
    client.put_back_rest(rest);
    outcome
}

/// The TLS port to send a plain request to, when `redirect_http` is on: every request but
/// an ACME HTTP-01 challenge, which certificate authorities fetch over plain HTTP (nginx
/// users keep a `location /.well-known/acme-challenge/` in their port 80 server for it).
fn redirects_to_https(
    client: &Client,
    worker: &Worker,
    routed: &Result<(Request, usize, &Route), Fail>,
) -> Option<u16> {
    let tls = worker.config.tls.as_ref()?;
    if !tls.redirect_http || client.is_tls() {
        return None;
    }
    let acme =
        matches!(routed, Ok((req, ..)) if req.path.starts_with(b"/.well-known/acme-challenge/"));
    (!acme).then_some(worker.tls_local?.port())
}

/// Normalises the path and finds the route serving it (and its index).
fn route<'w>(
    client: &Client,
    head: RequestHead,
    worker: &'w Worker,
) -> Result<(Request, usize, &'w Route), Fail> {
    let raw = head.path.of(&client.input);
    let mut path = Buf::with_capacity(raw.len().max(1));
    normalize_path(raw, &mut path).map_err(Fail::Packet)?;
    let req = Request {
        head,
        path,
        keep_alive: head.keep_alive && !worker.is_stopping(),
    };
    let routes = &worker.config.routes;
    match routes.find(&req.path) {
        Found::Route(i) | Found::AddSlash(i) => match routes.get(i) {
            Some(route) => Ok((req, i, route)),
            None => Err(Fail::NoRoute),
        },
        Found::Nothing => Err(Fail::NoRoute),
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
    // An internal route is reachable only through X-Accel-Redirect.
    if route.internal {
        let keep = req.may_keep_alive_unread();
        return answer(client, Fail::NoRoute, head_only, keep, worker).await;
    }
    // The route's path is this path with a slash added: send the client there (as nginx
    // does, before any access check; the allow list applies where it lands).
    if route.path.len() > req.path.len() {
        return redirect::to_slashed(client, req, route).await;
    }
    if !route.allows(client.peer.ip()) {
        let keep = req.may_keep_alive_unread();
        return answer(client, Fail::Forbidden, head_only, keep, worker).await;
    }
    let handled = match &route.action {
        Action::Upstream {
            group,
            script_name,
            params,
        } => {
            let target = upstream::Target {
                group: *group,
                script_name: script_name.as_deref(),
                params,
                route,
            };
            upstream::forward(client, req, &target, rest, worker).await
        }
        Action::Redirect { to, status } => {
            Ok(redirect::answer(client, req, route, to, *status).await)
        }
        Action::Static(files) => {
            let file = static_file::FileRequest {
                files,
                route_index: index,
                route,
                path: &req.path,
                rel: rel_path(&req.path, route),
                app_headers: &[],
            };
            // Boxed: the upstream exchange is the hot path; a file answer's state must not
            // grow every request's future.
            Box::pin(static_file::serve(client, req, &file, rest, worker)).await
        }
    };
    match handled {
        Ok(outcome) => outcome,
        Err(fail) => {
            let keep = fail.is_clean() && req.may_keep_alive_unread();
            answer(client, fail, head_only, keep, worker).await
        }
    }
}

/// The part of a normalised path under a static route's root: what follows the route's
/// path, without a leading `/`.
pub(crate) fn rel_path<'p>(path: &'p [u8], route: &Route) -> &'p [u8] {
    let rest = path.get(route.path.len()..).unwrap_or_default();
    rest.strip_prefix(b"/").unwrap_or(rest)
}

/// Reports `fail` and answers it with its status, if the client can still be answered.
/// `keep_alive`: the connection may serve another request after this answer.
pub(crate) async fn answer(
    client: &Client,
    fail: Fail,
    head_only: bool,
    keep_alive: bool,
    worker: &Worker,
) -> Outcome {
    fail.report(client.peer, &worker.stats);
    let Some(status) = fail.status() else {
        return Outcome {
            status: 0,
            upstream: None,
            next: Next::Abort,
            route: None,
        };
    };
    let header = fail.header();
    let headers: Vec<(&[u8], &[u8])> = header
        .as_ref()
        .map(|(name, value)| (*name, value.as_bytes()))
        .into_iter()
        .collect();
    let limit = worker.config.limits.send_timeout;
    let sent = client
        .answer(status, keep_alive, head_only, &headers, limit)
        .await;
    let next = match (sent, keep_alive, fail.may_linger()) {
        (false, ..) => Next::Abort,
        (true, true, _) => Next::KeepAlive,
        (true, false, true) => Next::Linger,
        (true, false, false) => Next::Close,
    };
    Outcome {
        status,
        upstream: None,
        next,
        route: None,
    }
}
