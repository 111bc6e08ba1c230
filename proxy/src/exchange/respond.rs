//! A route's fixed answer: nginx's `return 200 "ok"` (a load balancer's health check on the
//! main port), `return 204`, `return 403`, and `return 444` (close without a word).

use super::{Outcome, Request};
use crate::client::{Client, Next, Own};
use crate::error_pages::Carried;
use crate::http::Method;
use crate::routes::{FixedAnswer, Route};
use crate::worker::Worker;

/// nginx's status for "close the connection, answer nothing".
pub(crate) const CLOSE_SILENTLY: u16 = 444;

/// Sends the route's answer: its body if it has one; without, an error status gets its error
/// page (or short text), any other an empty body.
pub(super) async fn answer(
    client: &Client,
    req: &Request,
    route: &Route,
    fixed: &FixedAnswer,
    worker: &Worker,
) -> Outcome {
    let status = fixed.status;
    if status == CLOSE_SILENTLY {
        return Outcome::new(status, Next::Abort);
    }
    let head_only = req.head.method == Method::Head;
    let error_page = (status >= 400 && fixed.body.is_none())
        .then(|| route.error_pages.get(status))
        .flatten()
        .and_then(|page| Carried::take(page, &worker.budget, head_only));
    let page = match (&fixed.body, &error_page) {
        (Some((content_type, body)), _) => Some((&**content_type, &**body)),
        (None, Some(page)) => Some((page.page().content_type(), page.page().body())),
        (None, None) if status >= 400 => None,
        (None, None) => Some(("text/plain", &[][..])),
    };
    send(client, req, route, (status, None), page, worker).await
}

/// Sends one of ringway's own answers to a request of `route` (a fixed answer, a redirect):
/// `location` if given, the route's response headers if the status takes them, `page` as
/// the body (else the status's short text).
pub(super) async fn send(
    client: &Client,
    req: &Request,
    route: &Route,
    (status, location): (u16, Option<&[u8]>),
    page: Option<(&str, &[u8])>,
    worker: &Worker,
) -> Outcome {
    let added = super::added_headers(route.headers_for(status), worker, client, req);
    let headers: Vec<(&[u8], &[u8])> = location
        .map(|l| (&b"Location"[..], l))
        .into_iter()
        .chain(added.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
        .collect();
    let keep_alive = req.may_keep_alive_unread(worker);
    let own = Own {
        status,
        keep_alive,
        head_only: req.head.method == Method::Head,
        headers: &headers,
        id: &req.request_id,
        page,
        hsts: client.hsts(worker),
    };
    let sent = client.answer(own, route.limits.send_timeout).await;
    Outcome::new(status, Next::after_own_answer(sent, keep_alive))
}
