//! X-Accel-Redirect: an app answers with the path of a file (usually on an `internal`
//! static route) and ringway sends that file instead of the app's body, keeping the app's
//! Content-Type, Content-Disposition, Cache-Control, Expires and Set-Cookie. The file is
//! served like any other: conditionals and ranges of the original request apply, and the
//! file route's `allow` and `auth_basic`, as nginx runs its access phase again.

use std::borrow::Cow;

use super::static_file::{self, FileRequest, KEPT_FROM_APP};
use super::upstream::accel_redirect;
use super::{Outcome, Request, rel_path};
use crate::access_log::Template;
use crate::buffer::Buf;
use crate::client::Client;
use crate::fail::{BadResponse, Fail};
use crate::http::{HeaderRewriting, accel_limit_rate, has_dot_segment};
use crate::routes::{Action, Found, Route};
use crate::uwsgi::normalize_path;
use crate::worker::Worker;

/// Whether `raw` has a `..` segment, as written or once its escapes are decoded (`%2e%2e`,
/// `..%2f`): nginx's `ngx_http_parse_unsafe_uri` refuses such an X-Accel-Redirect, where
/// resolving it would let a path an app builds from user input (`/protected/` + a name)
/// reach another file under the root.
fn climbs(raw: &[u8]) -> bool {
    has_dot_segment(raw, true)
}

/// Serves the file the upstream answer in `buf` names; the app's headers it keeps leave out
/// those its route (`app_route`) hides, and its Set-Cookies get that route's
/// `cookie_flags`, as nginx rewrites them on this path too.
pub(super) async fn serve(
    client: &mut Client,
    req: &Request,
    buf: &Buf,
    app_route: &Route,
    rest: &mut Buf,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    req.redirect()?;
    let misdirected = Fail::UpstreamBadResponse(BadResponse::AccelRedirect);
    let value = accel_redirect(client, buf).unwrap_or_default();
    // A query after the path has no meaning for a file; a `fallback` app is asked with it.
    let mut halves = value.splitn(2, |&b| b == b'?');
    let raw = halves.next().unwrap_or_default();
    let query = halves.next().unwrap_or_default();
    // No path at all (an empty value, or a query alone) names no file, as nginx's
    // `ngx_http_parse_unsafe_uri` refuses it (found by review: it served `/`).
    if raw.is_empty() || climbs(raw) {
        return Err(Fail::UnsafeAccelRedirect);
    }
    let mut path = Buf::with_capacity(raw.len().max(1));
    // A malformed escape (`100%.txt`) names no file: 404 (found by review: a 502 that
    // counted against the server). nginx drops the lone `%` and looks for `100.txt`: a
    // file the app did not name is not served here.
    normalize_path(raw, &mut path).map_err(|_| Fail::UnsafeAccelRedirect)?;
    let routes = &worker.config.routes;
    // The file is looked for among the routes of the request's own Host.
    let host = req.head.host.map(|h| h.of(&client.input));
    let Found::Route(index) = routes.find(host, &path) else {
        return Err(Fail::NoFile);
    };
    let Some(route) = routes.get(index) else {
        return Err(Fail::NoFile);
    };
    let Action::Static(files) = &route.action else {
        return Err(misdirected);
    };
    req.land_on(client, index, route);
    // nginx runs the preaccess and access phases again after an internal redirect: the
    // route's limit_req, allow list and auth_basic hold for the files an app hands out too
    // (a file route under a top-level password asks for it even when the app's route did
    // not).
    super::redirected_to(
        client,
        req,
        route,
        index,
        worker,
        super::MethodJudged::AsGet,
    )
    .await?;
    // The app's headers ringway keeps, read before the client is lent to the file's answer.
    let headers = std::mem::take(&mut client.response_headers);
    let hidden = &app_route.hide_headers;
    let owned: Vec<(&[u8], Cow<'_, [u8]>)> = headers
        .iter()
        .map(|h| (h.name.of(buf), h.value.of(buf)))
        .filter(|(name, _)| KEPT_FROM_APP.iter().any(|k| name.eq_ignore_ascii_case(k)))
        // Where nginx lets them through (its hide list is not read on this path): a route
        // that hides Set-Cookie means it (found by review).
        .filter(|(name, _)| {
            !hidden
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        })
        // nginx's cookie rewriting runs on this path too (found by review: a session cookie
        // set with a download went out without its flags).
        .map(|(name, value)| {
            let vars = |t: &Template, out: &mut Vec<u8>| {
                super::log::set_value(worker, client, req, None, t, out)
            };
            let rewritten = app_route
                .rewrites
                .as_deref()
                .and_then(|rules| HeaderRewriting { rules, vars: &vars }.rewrite(name, value));
            (name, rewritten.map_or(Cow::Borrowed(value), Cow::Owned))
        })
        .collect();
    let kept: Vec<(&[u8], &[u8])> = owned.iter().map(|(n, v)| (*n, &**v)).collect();
    // The app's X-Accel-Limit-Rate holds for the file it names, as in nginx (the last
    // line it can read).
    let limit_rate = headers
        .iter()
        .rev()
        .filter(|h| h.name.of(buf).eq_ignore_ascii_case(b"x-accel-limit-rate"))
        .find_map(|h| accel_limit_rate(h.value.of(buf)));
    let file = FileRequest {
        files,
        route_index: index,
        route,
        path: &path,
        rel: rel_path(&path, route),
        app_headers: &kept,
        from_app: true,
        app_query: query,
        limit_rate,
    };
    let outcome = static_file::serve(client, req, &file, rest, worker).await;
    drop(kept);
    drop(owned);
    client.response_headers = headers;
    outcome
}

#[cfg(test)]
mod tests {
    use super::climbs;

    #[test]
    fn a_path_that_climbs_as_written_or_decoded_is_unsafe_as_in_nginx() {
        for unsafe_path in [
            &b"/protected/a/../b.pdf"[..],
            b"/protected/..",
            b"/protected/%2e%2e/b.pdf",
            b"/protected/%2E%2e%2fb.pdf",
            b"/protected/a/..%2fb.pdf",
            b"/protected/.%2e/b.pdf",
        ] {
            assert!(
                climbs(unsafe_path),
                "{}",
                String::from_utf8_lossy(unsafe_path)
            );
        }
        for safe in [
            &b"/protected/report.pdf"[..],
            b"/protected/./report.pdf",
            b"/protected/a..b/c",
            b"/protected/...",
            b"/protected/%2e/report.pdf",
            b"/protected/100%",
        ] {
            assert!(!climbs(safe), "{}", String::from_utf8_lossy(safe));
        }
    }
}
