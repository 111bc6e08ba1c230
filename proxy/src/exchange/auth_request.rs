//! nginx's `auth_request`: before a route serves a request, the request is asked of another
//! route, the one serving the auth path (oauth2-proxy's `/oauth2/auth`, Authelia's
//! `/api/authz/auth-request`, an app's own check), and that route's app decides.
//!
//! The auth request is the client's header lines without a body, for the auth path (see
//! `SubHead` for its request line): nginx sends its subrequest with the client's headers
//! too, which is why its users add `proxy_pass_request_body off` and `proxy_set_header
//! Content-Length ""`; here the body and its framing headers never go. It goes through
//! the auth route's upstream group,
//! with that route's `params` or `upstream_headers`, whose variables are the client's
//! request's (`X-Original-URI = "$request_uri"`). As for nginx's subrequests, the auth
//! route's own access checks and rate limit are not applied to it.
//!
//! The answer decides, as nginx's module does: 2xx lets the request in, 401 and 403 are
//! the client's answer (a 401 with the auth answer's `WWW-Authenticate`, or a 302 where
//! `redirect_401` says), anything else, or no answer, is 500. The answer's headers stay
//! with the request, for the `$auth_http_NAME` variables of the protected route's
//! headers, params and log lines (nginx's `auth_request_set`). Its body is not read: a
//! kept HTTP connection goes back to its pool only when the whole answer came with its
//! head.

use super::next_upstream::{Missed, retries_on_new_connection};
use super::upstream::{Target, connect, judge, pass_on};
use super::{HeadParts, Request, Slot};
use crate::access_log::{ReadHeaders, read_header_name};
use crate::buffer::{Body, Buf};
use crate::client::Client;
use crate::config::Protocol;
use crate::fail::{AuthFailure, Fail};
use crate::http::{BodyFraming, HeaderSpan, Method, RequestHead, ResponseFraming, Span, Version};
use crate::routes::{Action, AuthRequest, Found, Route};
use crate::upstream::{Attempts, Reuse, send_request};
use crate::worker::Worker;

/// Where a request keeps what its auth request answered.
pub(crate) type AuthSlot = Slot<AuthAnswer>;

impl Slot<AuthAnswer> {
    /// Puts the `auth_basic` challenge of the route at `index` before the auth answer's
    /// (`satisfy any`: both said 401).
    pub(crate) fn challenge_first(&self, index: usize) {
        if let Some(mut answer) = self.take() {
            answer.basic = Some(index);
            self.set(Some(answer));
        }
    }
}

/// What the last auth request of a request answered.
#[derive(Debug)]
pub(crate) struct AuthAnswer {
    /// Its headers, names in lower case (`$auth_http_NAME`).
    pub(crate) headers: Box<ReadHeaders>,
    /// Its `WWW-Authenticate` values, by the header's own name (`WWW_Authenticate` is
    /// another header, as for nginx).
    challenges: Box<[Box<[u8]>]>,
    /// Where a refused request is sent instead (`redirect_401`), if anywhere.
    pub(crate) location: Option<Box<[u8]>>,
    /// The route whose `auth_basic` challenge goes first on the refusal, if one does.
    basic: Option<usize>,
}

/// The headers a refusal carries besides ringway's own: the auth answer's challenges on a
/// 401, and on the 302 `redirect_401` makes of it, with the place it names.
pub(super) fn refusal_headers(
    req: &Request,
    fail: Fail,
    worker: &Worker,
) -> Vec<(&'static [u8], Box<[u8]>)> {
    req.auth.with(|answer| {
        answer
            .map(|answer| refusal(answer, fail, worker))
            .unwrap_or_default()
    })
}

fn refusal(answer: &AuthAnswer, fail: Fail, worker: &Worker) -> Vec<(&'static [u8], Box<[u8]>)> {
    let basic = answer
        .basic
        .and_then(|index| worker.config.routes.get(index))
        .and_then(|route| route.auth.as_deref())
        .map(|auth| Box::from(auth.challenge().as_bytes()));
    let challenges = basic
        .into_iter()
        .chain(answer.challenges.iter().cloned())
        .map(|value| (&b"WWW-Authenticate"[..], value));
    match fail {
        Fail::AuthDenied(401) => challenges.collect(),
        // nginx's `error_page 401 =302` keeps the challenges the 401 had.
        Fail::AuthRedirect => challenges
            .chain(
                answer
                    .location
                    .iter()
                    .map(|location| (&b"Location"[..], location.clone())),
            )
            .collect(),
        _ => Vec::new(),
    }
}

/// Asks `route`'s auth request, if it has one, whether `req` may pass.
pub(super) async fn check(
    client: &Client,
    req: &Request,
    route: &Route,
    worker: &Worker,
) -> Result<(), Fail> {
    let Some(auth) = &route.auth_request else {
        return Ok(());
    };
    // The answer is waited for: in a task of its own, not in the idle watcher's poll.
    crate::conn::leave_the_watcher().await;
    let host = req.head.host.map(|h| h.of(&client.input));
    let routes = &worker.config.routes;
    let asked = match routes.find(host, auth.path.as_bytes()) {
        Found::Route(index) => routes.get(index),
        Found::AddSlash(_) | Found::Nothing => None,
    };
    let Some(asked) = asked.filter(|r| matches!(r.action, Action::Upstream { .. })) else {
        return Err(Fail::AuthFailed(AuthFailure::NoRoute));
    };
    // The auth request's upstream is not the request's: what the log says of the request's
    // own upstream is put back.
    let own_upstream = req.upstream.take();
    let answer = ask(client, req, auth, asked, worker).await;
    req.upstream.set(own_upstream);
    let (status, answer) = answer?;
    req.auth.set(Some(Box::new(answer)));
    // Worked out with the auth answer's headers in place (`$auth_http_location`).
    let location = match (&auth.redirect_401, status) {
        (Some(template), 401) => {
            let mut out = Vec::new();
            super::log::set_value(worker, client, req, None, template, &mut out);
            // As any header value made of variables: no control character gets through
            // (a `$uri` holds the decoded path).
            let text = crate::config::header_text(&out);
            (!text.is_empty()).then(|| text.into_bytes().into_boxed_slice())
        }
        _ => None,
    };
    let redirect = location.is_some();
    if let Some(mut answer) = req.auth.take() {
        answer.location = location;
        req.auth.set(Some(answer));
    }
    match status {
        200..=299 => Ok(()),
        401 if redirect => Err(Fail::AuthRedirect),
        401 | 403 => Err(Fail::AuthDenied(status)),
        _ => Err(Fail::AuthFailed(AuthFailure::Status(status))),
    }
}

/// The auth request's head, in a buffer of its own: the client's header lines but those
/// that frame a body, after a request line that is the protocol's. To an HTTP server,
/// `GET <auth path> HTTP/1.1`, as nginx's `proxy_pass` sends its subrequests. Through
/// uwsgi, nginx's `uwsgi_params` read the client's request for REQUEST_METHOD and
/// REQUEST_URI (`$request_method` and `$request_uri` are the main request's), and the auth
/// path for PATH_INFO and QUERY_STRING: the same here, so an auth view that looks at the
/// method or the URI sees what it saw behind nginx.
struct SubHead {
    input: Buf,
    head: RequestHead,
    headers: Vec<HeaderSpan>,
    path: Box<[u8]>,
}

/// Request headers that frame or announce a body: the auth request has none.
const BODY_HEADERS: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"expect"];

impl SubHead {
    fn new(client: &Client, req: &Request, auth: &AuthRequest, protocol: Protocol) -> SubHead {
        let from = &client.input[..];
        let mut input = Buf::with_capacity(128 + req.head.head_len + auth.path.len());
        let append = |input: &mut Buf, bytes: &[u8]| {
            let start = input.len();
            input.extend_from_slice(bytes);
            span(start, input.len())
        };
        let (method, method_span, target, path) = match protocol {
            Protocol::Http => {
                let method = append(&mut input, b"GET");
                input.push(b' ');
                let path = append(&mut input, auth.path.as_bytes());
                if !auth.query.is_empty() {
                    input.push(b'?');
                    input.extend_from_slice(auth.query.as_bytes());
                }
                let target = span(path.start as usize, input.len());
                (Method::Get, method, target, path)
            }
            Protocol::Uwsgi => {
                let method = append(&mut input, req.head.method_span.of(from));
                input.push(b' ');
                let path = append(&mut input, req.head.path.of(from));
                let query = from
                    .get(req.head.path.end as usize..req.head.target.end as usize)
                    .unwrap_or_default();
                input.extend_from_slice(query);
                let target = span(path.start as usize, input.len());
                (req.head.method, method, target, path)
            }
        };
        input.extend_from_slice(b" HTTP/1.1\r\n");
        let mut headers = Vec::with_capacity(client.headers.len());
        let mut host = None;
        for h in &client.headers {
            let name = h.name.of(from);
            if BODY_HEADERS.iter().any(|b| name.eq_ignore_ascii_case(b)) {
                continue;
            }
            let name = append(&mut input, name);
            input.extend_from_slice(b": ");
            let value = append(&mut input, h.value.of(from));
            input.extend_from_slice(b"\r\n");
            if host.is_none() && h.name.of(from).eq_ignore_ascii_case(b"host") {
                host = Some(value);
            }
            headers.push(HeaderSpan { name, value });
        }
        input.extend_from_slice(b"\r\n");
        let head_len = input.len();
        // Past the head, where spans can still name them: an absolute-form target's
        // authority, which is the request's host (RFC 9112 §3.2.2), and the auth path's
        // query.
        if let Some(authority) = req.head.host.filter(|h| h.start < req.head.target.end) {
            host = Some(append(&mut input, authority.of(from)));
        }
        let query = match protocol {
            Protocol::Http => span(path.end as usize + 1, target.end as usize),
            Protocol::Uwsgi => append(&mut input, auth.query.as_bytes()),
        };
        let query = if auth.query.is_empty() {
            span(path.end as usize, path.end as usize)
        } else {
            query
        };
        let head = RequestHead {
            head_len,
            method,
            method_span,
            target,
            path,
            query,
            version: Version::Http11,
            host,
            body: BodyFraming::None,
            keep_alive: true,
            expect_continue: false,
        };
        SubHead {
            input,
            head,
            headers,
            path: auth.path.as_bytes().into(),
        }
    }

    fn parts(&self) -> HeadParts<'_> {
        HeadParts {
            input: &self.input,
            head: &self.head,
            headers: &self.headers,
            path: &self.path,
        }
    }
}

fn span(start: usize, end: usize) -> Span {
    Span {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        end: u32::try_from(end).unwrap_or(u32::MAX),
    }
}

/// Sends the auth request `auth` describes to `asked`'s group and reads its answer's head:
/// its status, and its headers for the request to keep. A failure to get one is logged and
/// counted as any upstream failure, and comes back as the auth request's.
async fn ask(
    client: &Client,
    req: &Request,
    auth: &AuthRequest,
    asked: &Route,
    worker: &Worker,
) -> Result<(u16, AuthAnswer), Fail> {
    let Action::Upstream {
        group,
        script_name,
        params,
        upstream_path,
        ..
    } = &asked.action
    else {
        return Err(Fail::AuthFailed(AuthFailure::NoRoute));
    };
    let target = Target {
        group: *group,
        script_name: script_name.as_deref(),
        params,
        upstream_path: upstream_path.as_deref(),
        redirected: None,
        route: asked,
    };
    let group = worker
        .upstreams
        .get(target.group)
        .ok_or(Fail::AuthFailed(AuthFailure::NoRoute))?;
    let protocol = group.protocol();
    let sub = SubHead::new(client, req, auth, protocol);
    let failed = |fail: Fail| {
        if fail == Fail::ClientGone {
            return fail;
        }
        fail.report(req.from, &worker.stats);
        Fail::AuthFailed(AuthFailure::NoAnswer)
    };
    let timeout = asked.limits.upstream_read_timeout;
    // A GET without a body is safe to send again: a kept connection the server closed
    // meanwhile (nothing came back on it) is retried once on a new one if the auth route's
    // `next_upstream` lets a request go on after an error, and a server that
    // failed it passes it on as the auth route's `next_upstream` says, as for the
    // request's own exchange (and nginx's subrequest, a GET).
    let kept = match protocol {
        Protocol::Uwsgi => Reuse::Fresh,
        Protocol::Http => Reuse::Kept { peek: false },
    };
    let mut reuse = kept;
    let mut stale_retried = false;
    let mut attempts = Attempts::default();
    let mut spans = Vec::new();
    let (upstream, head, buf, sent_whole) = loop {
        let head = match protocol {
            Protocol::Uwsgi => {
                let parts = sub.parts();
                super::upstream::encode_vars(client, req, parts, &target, None, false, worker)
                    .map_err(failed)?
            }
            Protocol::Http => super::http_upstream::encode_head(
                client,
                req,
                sub.parts(),
                &target,
                worker,
                None,
                false,
                group,
            ),
        };
        let (upstream, _) = connect(client, req, &target, worker, group, reuse, &mut attempts)
            .await
            .map_err(failed)?;
        let exchange = async {
            // Nothing came back: on a kept connection, most likely one the server closed;
            // but a send that timed out is a server that stopped reading, its failure.
            let sent = send_request(&upstream, head, Body::Absent, timeout)
                .await
                .map_err(|fail| (fail, !matches!(fail, Fail::UpstreamTimeout(_))))?;
            let answer = match protocol {
                Protocol::Uwsgi => crate::upstream::read_response_head(
                    &upstream, false, false, &mut spans, timeout,
                )
                .await
                .map_err(|fail| (fail, false)),
                Protocol::Http => crate::upstream::http::read_response_head(
                    &upstream, false, false, &mut spans, timeout,
                )
                .await
                .map_err(|failed| (failed.fail, failed.nothing_back)),
            };
            answer.map(|(head, buf)| (head, buf, sent.whole))
        };
        let answer = tokio::select! {
            answer = exchange => answer,
            () = client.gone(asked.limits.ignore_client_abort) => return Err(Fail::ClientGone),
        };
        // On a kept connection, a failure with nothing back is most likely the server's
        // close of it meanwhile: not the server's failure.
        let missed = match &answer {
            Ok((head, ..)) => Missed::Status(head.status),
            Err((fail, _)) => Missed::Fail(*fail),
        };
        let stale = matches!(answer, Err((_, true))) && upstream.is_reused();
        if stale
            && !stale_retried
            && retries_on_new_connection(&asked.limits, attempts.since(), Method::Get, missed)
        {
            stale_retried = true;
            reuse = Reuse::Fresh;
            continue;
        }
        let goes_on = pass_on(
            Method::Get,
            &target,
            group,
            &upstream,
            &mut attempts,
            missed,
        );
        if !stale {
            judge(&target, group, &upstream, missed, goes_on);
        }
        if goes_on {
            reuse = kept;
            continue;
        }
        let (head, buf, sent_whole) = answer.map_err(|(fail, _)| failed(fail))?;
        break (upstream, head, buf, sent_whole);
    };
    let headers: Box<ReadHeaders> = spans
        .iter()
        .map(|h| {
            let name = read_header_name(h.name.of(&buf));
            (name, Box::from(h.value.of(&buf)))
        })
        .collect();
    let whole = match head.framing {
        ResponseFraming::None => buf.len() == head.head_len,
        ResponseFraming::Length(n) => buf.len().saturating_sub(head.head_len) as u64 == n,
        ResponseFraming::Chunked | ResponseFraming::UntilClose => false,
    };
    match protocol {
        Protocol::Http => {
            let keeps = crate::upstream::http::keeps_connection(&head, &buf, &spans);
            // A connection the request did not go through whole is not trusted again.
            upstream.set_reusable(sent_whole && whole && keeps);
            upstream.release();
        }
        Protocol::Uwsgi => upstream.close(),
    }
    let challenges = spans
        .iter()
        .filter(|h| h.name.of(&buf).eq_ignore_ascii_case(b"www-authenticate"))
        .map(|h| Box::from(h.value.of(&buf)))
        .collect();
    let answer = AuthAnswer {
        headers,
        challenges,
        location: None,
        basic: None,
    };
    Ok((head.status, answer))
}
