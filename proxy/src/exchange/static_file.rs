//! Serving a file from a static route: the file the path names under the route's root, or
//! the file an app named with `X-Accel-Redirect`, read top to bottom: which file (index,
//! precompressed sibling, fallback), what to answer (conditionals, ranges), then the head and
//! the bytes.

use std::cell::Cell;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tokio_uring::fs::File;

use super::body_out::{deflate_chunk, end_chunks, park_chunk};
use super::{Outcome, Request, upstream};
use crate::buffer::{Buf, LARGE, SMALL, read_at};
use crate::client::{Client, Next, Pace, Step, ZeroCopy, write_paced};
use crate::fail::{Allowed, Fail};
use crate::filesystem::Filesystem;
use crate::gzip::{Answer, Asked, CacheControl, Gzip, GzipRatio, GzipStream, Verdict};
use crate::http::{Method, Version, http_date};
use crate::io::{IoError, Stream};
use crate::routes::{Action, Found, Route};
use crate::static_files::{
    CachedFile, Conditions, Decision, Encoding, Extra, Fallback, FileHead, FileMeta, Gzipped, Kept,
    Lookup, StaticRoute, accepts, decide, has_dot_segment, index_rel, push_cache_control,
    write_file_head,
};
use crate::worker::Worker;

/// Bodies up to this size go out in the same write as the head.
const INLINE: usize = SMALL;

/// How file bodies go out. ringway's way is [`SendWay::BySize`]; the other two exist so
/// that `cargo xtask bench` can measure each way at every size (`RINGWAY_STATIC_SEND=copy`
/// or `sendfile` in ringway's environment, read once), which is how the sizes were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendWay {
    /// Up to [`INLINE`] bytes: the cached bytes (or a read) in the head's write; above:
    /// sendfile where it can, else reads into a pooled buffer.
    BySize,
    /// Every body read into a pooled buffer through io_uring, then written.
    Copy,
    /// Every body with sendfile where it can.
    Sendfile,
}

fn send_way() -> SendWay {
    static WAY: OnceLock<SendWay> = OnceLock::new();
    *WAY.get_or_init(|| match std::env::var("RINGWAY_STATIC_SEND").as_deref() {
        Ok("copy") => SendWay::Copy,
        Ok("sendfile") => SendWay::Sendfile,
        _ => SendWay::BySize,
    })
}

/// The app's headers kept on a file an `X-Accel-Redirect` named, as nginx keeps them.
pub(super) const KEPT_FROM_APP: [&[u8]; 5] = [
    b"content-type",
    b"content-disposition",
    b"cache-control",
    b"expires",
    b"set-cookie",
];

/// A file to serve, and how it was asked for.
pub(super) struct FileRequest<'a> {
    /// The static route's settings.
    pub(super) files: &'a StaticRoute,
    /// The route's index (the open-file cache's key).
    pub(super) route_index: usize,
    /// The route (its response headers).
    pub(super) route: &'a Route,
    /// The whole normalised path (the request's, or the X-Accel-Redirect's).
    pub(super) path: &'a [u8],
    /// The path under the root (normalised, without a leading `/`).
    pub(super) rel: &'a [u8],
    /// Headers an app set on the answer (X-Accel-Redirect), written as given.
    pub(super) app_headers: &'a [(&'a [u8], &'a [u8])],
    /// An app named the file (X-Accel-Redirect): it is sent whatever the request's method,
    /// as nginx turns the redirected request into a GET (a HEAD stays a HEAD).
    pub(super) from_app: bool,
    /// The query the app's X-Accel-Redirect named after its path (empty: none): a
    /// `fallback` app is asked with it, as nginx makes it the redirected request's args.
    pub(super) app_query: &'a [u8],
    /// The app's `X-Accel-Limit-Rate`, over the route's `limit_rate`.
    pub(super) limit_rate: Option<u64>,
}

/// How a file's bytes go out: how long a write may wait for the client, and the pace
/// `limit_rate` holds them to.
struct Outgoing {
    timeout: Duration,
    pace: Option<Box<Pace>>,
}

/// Serves the file `f` names, its directory's index, its fallback, or 404.
pub(super) async fn serve(
    client: &mut Client,
    req: &Request,
    f: &FileRequest<'_>,
    rest: &mut Buf,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    let readable = f.from_app || matches!(req.head.method, Method::Get | Method::Head);
    let files = f.files;
    // As `try_files $uri @app`: another method than GET or HEAD still goes to the app
    // when there is no file (a POST to the app behind `location /`); without an app to
    // fall back to, or on a file, it is refused. A POST is looked up first, as nginx's
    // static module does: no file is a 404 (found by review: 405).
    let to_app = matches!(files.fallback, Some(Fallback::Group { .. }));
    if !readable && !to_app && req.head.method != Method::Post {
        return Err(Fail::MethodNotAllowed(Allowed::Files));
    }
    let found = if !files.dotfiles && has_dot_segment(f.rel) {
        Lookup::NotFound
    } else {
        match look_up(client, f.route_index, files, f.rel, worker).await? {
            Lookup::Directory if f.path.ends_with(b"/") => {
                match index_of(client, f, worker).await? {
                    // nginx's index is an internal redirect: the index's path is routed
                    // again, so a static route of its own (an exact one, a regex) and
                    // that route's access checks apply to it (found by review: they were
                    // skipped). A path another kind of route takes (an app's `/`) is
                    // served here as before: nginx would hand it to that route, ringway
                    // never did.
                    Some((name, rel)) => {
                        let mut path = f.path.to_vec();
                        path.extend_from_slice(name.as_bytes());
                        if let found @ Some(_) = static_route_of(client, req, &path, worker) {
                            let rerouted =
                                fallback_path(client, req, f, &path, found, rest, worker);
                            return Box::pin(rerouted).await;
                        }
                        let here = FileRequest { rel: &rel, ..*f };
                        return Box::pin(serve(client, req, &here, rest, worker)).await;
                    }
                    None => Lookup::NotFound,
                }
            }
            // The client asked for the directory without its slash: send it there (nginx's
            // static module does, index or not), unless the path came from an app
            // (X-Accel-Redirect) or a fallback takes what has no file (a `try_files`, whose
            // `$uri` is a file).
            Lookup::Directory
                if !f.from_app
                    && f.path == &req.path[..]
                    && (!files.index.is_empty() || files.fallback.is_none()) =>
            {
                return Ok(super::redirect::to_slashed(client, req, f.route, worker).await);
            }
            Lookup::Directory => Lookup::NotFound,
            found => found,
        }
    };
    // The app already took the request's body: a request that had one cannot go to the
    // fallback again (there is no body left to send it with). An empty one (a browser's
    // bodiless POST says `Content-Length: 0`) is sent again as it was.
    let body_taken = f.from_app && !req.head.body.has_no_bytes();
    let Lookup::File(found) = found else {
        return match &files.fallback {
            Some(Fallback::Group { group, params, .. }) if !body_taken => {
                req.redirect()?;
                let redirected = upstream::Redirected {
                    path: f.path,
                    by_app: f.from_app.then_some(f.app_query),
                };
                let target = upstream::Target {
                    group: *group,
                    script_name: None,
                    params,
                    upstream_path: None,
                    // The client's own path needs no saying (the app then gets its
                    // target as sent).
                    redirected: (f.path != &req.path[..] || f.from_app).then_some(&redirected),
                    route: f.route,
                };
                upstream::forward(client, req, &target, rest, worker).await
            }
            // Boxed: routed again, the path may come back here.
            Some(Fallback::Path(path)) => {
                let path = path.as_bytes();
                let found = static_route_of(client, req, path, worker);
                Box::pin(fallback_path(client, req, f, path, found, rest, worker)).await
            }
            _ => match found {
                Lookup::Failed(kind) => Err(Fail::FileRead(kind)),
                _ => Err(Fail::NoFile),
            },
        };
    };
    if !readable {
        return Err(Fail::MethodNotAllowed(Allowed::Files));
    }
    // The type is the file's own, also when a compressed sibling goes out.
    let content_type = found.content_type.clone();
    let (found, encoding) = precompressed(client, req, f, worker, found).await;
    answer(client, req, f, &found, &content_type, encoding, worker).await
}

/// What `rel` is under the route's root: kept in the worker's open-file cache, or opened.
async fn look_up(
    client: &Client,
    route_index: usize,
    files: &StaticRoute,
    rel: &[u8],
    worker: &Worker,
) -> Result<Lookup, Fail> {
    let cache = &worker.files;
    if let Some(found) = cache.reused(route_index, rel) {
        return Ok(found);
    }
    // An open waits on the disk (or for a place among the worker's opens): a client that
    // leaves meanwhile is let go, the open going on without it (found by review: on a
    // stuck disk, connections piled up behind the opens). Biased: the open is polled
    // first, so its guard (which lets the next request open the file if this one leaves)
    // exists before the client is looked at.
    tokio::select! {
        biased;
        found = cache.open_anew(route_index, files, rel) => Ok(found),
        () = client.gone(false) => Err(Fail::ClientGone),
    }
}

/// The first of the route's index names that is there in the directory `f` names, as
/// nginx's `index` tries its list: a name not found gives way to the next; anything else
/// (a file, a directory, a failure to open) is that name's to answer: the name, and its
/// path under the root. `None` when no name is there.
async fn index_of<'f>(
    client: &Client,
    f: &FileRequest<'f>,
    worker: &Worker,
) -> Result<Option<(&'f str, Vec<u8>)>, Fail> {
    for name in &f.files.index {
        let rel = index_rel(f.rel, name);
        if !matches!(
            look_up(client, f.route_index, f.files, &rel, worker).await?,
            Lookup::NotFound
        ) {
            return Ok(Some((name, rel)));
        }
    }
    Ok(None)
}

/// The path a static route falls back to (`try_files $uri $uri/ /index.html`), routed again
/// as nginx routes an internal redirect: counted against the request's redirects (a path
/// that falls back to itself ends in a 500, as in nginx), and under its own route's access
/// rules when that is another route. `found` is the static route the path has
/// ([`static_route_of`]); none is 404.
async fn fallback_path(
    client: &mut Client,
    req: &Request,
    f: &FileRequest<'_>,
    path: &[u8],
    found: Option<(usize, &Route, &StaticRoute)>,
    rest: &mut Buf,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    req.redirect()?;
    let Some((index, route, files)) = found else {
        return Err(Fail::NoFile);
    };
    if index != f.route_index {
        req.land_on(client, index, route);
        // A path the app named is judged as nginx's GET still.
        let method = if f.from_app {
            super::MethodJudged::AsGet
        } else {
            super::MethodJudged::AsSent
        };
        super::redirected_to(client, req, route, index, worker, method).await?;
    }
    let file = FileRequest {
        files,
        route_index: index,
        route,
        path,
        rel: super::rel_path(path, route),
        ..*f
    };
    serve(client, req, &file, rest, worker).await
}

/// The static route `path` has among the routes of the request's Host: its index, the
/// route and its files.
fn static_route_of<'w>(
    client: &Client,
    req: &Request,
    path: &[u8],
    worker: &'w Worker,
) -> Option<(usize, &'w Route, &'w StaticRoute)> {
    let routes = &worker.config.routes;
    let host = req.head.host.map(|h| h.of(&client.input));
    let Found::Route(index) = routes.find(host, path) else {
        return None;
    };
    let route = routes.get(index)?;
    match &route.action {
        Action::Static(files) => Some((index, route, files)),
        _ => None,
    }
}

/// The best precompressed sibling the client accepts, or the file itself. A `.gz` sibling
/// is checked as nginx's `gzip_static on` checks it (HTTP/1.1, `Via` and the route's
/// `proxied`; found by review: an HTTP/1.0 client or a proxy got it); a `.br` one, as
/// ngx_brotli's `brotli_static on`, by Accept-Encoding alone.
async fn precompressed(
    client: &Client,
    req: &Request,
    f: &FileRequest<'_>,
    worker: &Worker,
    file: CachedFile,
) -> (CachedFile, Option<&'static str>) {
    let accepted = client.request_header(b"accept-encoding");
    if let Some(accepted) = accepted {
        for encoding in &f.files.precompressed {
            if !accepts(accepted, encoding.coding()) {
                continue;
            }
            if *encoding == Encoding::Gzip
                && !Gzip::takes_a_gzipped_file(f.route.gzip.as_deref(), &asked_of(client, req))
            {
                continue;
            }
            let mut sibling = f.rel.to_vec();
            sibling.extend_from_slice(encoding.suffix());
            let cache = &worker.files;
            if let Lookup::File(sibling) = cache.open(f.route_index, f.files, &sibling).await {
                return (sibling, Some(encoding.coding()));
            }
        }
    }
    (file, None)
}

/// What the request says about compression.
fn asked_of<'a>(client: &'a Client, req: &Request) -> Asked<'a> {
    Asked {
        accept_encoding: client.request_header(b"accept-encoding"),
        http11: req.head.version == Version::Http11,
        via: client.request_header(b"via").is_some(),
        authorization: client.request_header(b"authorization").is_some(),
    }
}

/// Decides and sends the answer for `file`.
async fn answer(
    client: &Client,
    req: &Request,
    f: &FileRequest<'_>,
    found: &CachedFile,
    content_type: &str,
    encoding: Option<&'static str>,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    let meta = found.meta;
    let is_head = req.head.method == Method::Head;
    let files = f.files;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let gzip = f.route.gzip.as_deref();
    let verdict = gzip.map_or_else(Verdict::default, |gzip| {
        gzip_verdict(gzip, client, req, f, content_type, encoding, &meta, now)
    });
    // As nginx's gzip filter, which runs before its range filter: an answer to be
    // compressed has no length the ranges could be of, so a Range is not looked at.
    let ranges = !verdict.compress;
    let conditions = Conditions {
        if_match: client.request_header(b"if-match"),
        if_none_match: client.request_header(b"if-none-match"),
        if_modified_since: client.request_header(b"if-modified-since"),
        if_unmodified_since: client.request_header(b"if-unmodified-since"),
        range: client.request_header(b"range").filter(|_| ranges),
        if_range: client.request_header(b"if-range").filter(|_| ranges),
        now: Some(now),
    };
    // `etag = false`: none to match, as nginx's `etag off` leaves its not-modified filter.
    let etag = if files.etag {
        found.validators.etag()
    } else {
        b""
    };
    let (status, range) = match decide(&conditions, &meta, etag) {
        Decision::Full => (200, None),
        Decision::Partial { start, end } => (206, Some((start, end))),
        Decision::NotModified => (304, None),
        Decision::PreconditionFailed => return Err(Fail::PreconditionFailed),
        Decision::Unsatisfiable => return Err(Fail::RangeNotSatisfiable(meta.size)),
    };
    let app_sets = |name: &[u8]| {
        f.app_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let added = super::added_headers(f.route.headers_for(status), worker, client, req);
    let extra = Extra {
        app: f.app_headers,
        request_id: Some(req.request_id.as_bytes()),
        hsts: client.hsts(worker).map(str::as_bytes),
        route: &added,
    };
    // A GET with a body (Content-Length or chunked) served from disk leaves that body unread:
    // it is dropped after the answer, or, too long to drop, the connection ends. Through
    // X-Accel-Redirect the app has read the body already.
    let keep_alive = if f.from_app {
        req.keeps_alive(worker)
    } else {
        req.may_keep_alive_unread(worker)
    };
    // A small file's compressed body is had before the head, which says its length.
    let mut compressed = None;
    let gzipped = match gzip.filter(|_| verdict.compress && status == 200) {
        None => None,
        Some(_) if is_head => Some(Gzipped::Head),
        Some(gzip) => {
            let body = compress(found, gzip)?;
            let framing = body.framing();
            compressed = Some(body);
            Some(framing)
        }
    };
    let head = FileHead {
        status,
        client_version: req.head.version,
        content_type: (!app_sets(b"content-type")).then_some(content_type),
        encoding,
        gzipped,
        meta,
        validators: &found.validators,
        etag: files.etag,
        range,
        cache: files
            .expires
            // An app that set either has said how long the answer keeps: one of each only.
            .filter(|_| !app_sets(b"cache-control") && !app_sets(b"expires"))
            .map(|e| (e, files.immutable)),
        // nginx adds gzip's Vary while the status is still 200: to a 206 too, not to a
        // 304 (nor to 412, 416: ringway's own error answers carry no Vary, where nginx's
        // 416 does).
        vary: !files.precompressed.is_empty() || (verdict.vary && status != 304),
        keep_alive,
        now,
        extra,
    };
    let body = if is_head { 0 } else { head.body_len() };
    let inline = usize::try_from(body)
        .ok()
        .filter(|&n| n <= INLINE)
        .unwrap_or(0);
    let mut out = Buf::with_capacity(512 + inline);
    write_file_head(&mut out, &head);
    client.head_goes_out(&out);
    let start = range.map_or(0, |(start, _)| start);
    let written = client.stream.bytes_written();
    let limits = &f.route.limits;
    let to = Outgoing {
        timeout: limits.send_timeout,
        pace: Pace::starting(
            &client.stream,
            f.limit_rate.unwrap_or(limits.limit_rate),
            limits.limit_rate_after,
        ),
    };
    let sent = match compressed {
        None => send(client, out, found, start, body, &to).await,
        Some(Compressed::Whole(kept)) => {
            if let Some((_, bytes)) = &*kept.gzipped.borrow() {
                out.extend_from_slice(bytes);
                let plain = kept.plain.len() as u64;
                req.gzip_ratio.set(GzipRatio::of(plain, bytes.len() as u64));
            }
            write(client, out, 0, &to).await.map(drop)
        }
        Some(Compressed::Stream(stream)) => {
            send_gzipped(client, out, found, stream, body, &to, &req.gzip_ratio).await
        }
    };
    let next = match sent {
        Ok(()) if keep_alive => Next::KeepAlive,
        // The unread body is drained before the close, so no reset cuts the answer short.
        Ok(()) if req.keep_alive && !f.from_app && !req.head.body.has_no_bytes() => Next::Linger,
        Ok(()) => Next::Close,
        // Nothing went out (a small file's read failed before its head's write): the
        // client can still have its 500.
        Err(fail) if client.stream.bytes_written() == written => return Err(fail),
        Err(fail) => {
            fail.report(req.from, &worker.stats);
            Next::Abort
        }
    };
    Ok(Outcome::new(status, next))
}

/// Whether the file is compressed on its way out, as nginx's gzip filter decides for a
/// 200 with its headers: the type the answer says (the app's, through X-Accel-Redirect),
/// the file's size, no precompressed sibling sent; Cache-Control and Expires as they will
/// go out (for `proxied`).
#[allow(clippy::too_many_arguments)] // the request, the file and what decides about both
fn gzip_verdict(
    gzip: &Gzip,
    client: &Client,
    req: &Request,
    f: &FileRequest<'_>,
    content_type: &str,
    encoding: Option<&'static str>,
    meta: &FileMeta,
    now: u64,
) -> Verdict {
    let app = |name: &[u8]| {
        f.app_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let own_cache = f
        .files
        .expires
        .filter(|_| app(b"cache-control").is_none() && app(b"expires").is_none())
        .and_then(|e| e.at(now));
    let own_expires = own_cache.map(|(_, until)| http_date(until));
    let mut own_value = Vec::new();
    let cache_control = match (app(b"cache-control"), own_cache) {
        (Some(value), _) => Some(value),
        (None, Some((cache, _))) => {
            push_cache_control(&mut own_value, (cache, f.files.immutable));
            Some(&own_value[..])
        }
        (None, None) => None,
    }
    .map(|value| {
        let mut cc = CacheControl::default();
        cc.add(value);
        cc
    });
    let asked = asked_of(client, req);
    let answer = Answer {
        status: 200,
        length: Some(meta.size),
        content_type: Some(app(b"content-type").unwrap_or(content_type.as_bytes())),
        content_encoding: encoding.map(str::as_bytes),
        expires: app(b"expires").or(own_expires.as_ref().map(|d| &d[..])),
        date: None,
        cache_control,
        // nginx's static module sets the Last-Modified time, not the header, when its gzip
        // filter looks: `proxied = ["no_last_modified"]` compresses files, as there.
        last_modified: false,
        // `etag = false` leaves none for `proxied = ["no_etag"]` to see, as nginx's `etag off`.
        etag: f.files.etag,
    };
    gzip.verdict(&asked, &answer, now)
}

/// A file's body, compressed.
enum Compressed {
    /// A small file's, whole: in its entry, at the route's level.
    Whole(Rc<Kept>),
    /// Any other: compressed as it is read.
    Stream(GzipStream),
}

impl Compressed {
    fn framing(&self) -> Gzipped {
        match self {
            Compressed::Whole(kept) => Gzipped::Length(
                kept.gzipped
                    .borrow()
                    .as_ref()
                    .map_or(0, |(_, bytes)| bytes.len() as u64),
            ),
            Compressed::Stream(_) => Gzipped::Chunked,
        }
    }
}

/// The file's body compressed at `gzip`'s level: a small file's whole (made by the first
/// request that asks, then kept with its entry), any other's as it is read.
fn compress(found: &CachedFile, gzip: &Gzip) -> Result<Compressed, Fail> {
    let level = gzip.level();
    let Some(kept) = found
        .bytes
        .as_ref()
        .filter(|_| send_way() == SendWay::BySize)
    else {
        return Ok(Compressed::Stream(GzipStream::unheld(
            level,
            Some(found.meta.size),
        )));
    };
    let made = kept
        .gzipped
        .borrow()
        .as_ref()
        .is_some_and(|(at, _)| *at == level);
    if !made {
        let plain = &kept.plain;
        let mut stream = GzipStream::unheld(level, Some(plain.len() as u64));
        let mut bytes = Vec::with_capacity(plain.len() / 2 + 64);
        stream.write(plain, &mut bytes, false)?;
        stream.finish(&mut bytes)?;
        *kept.gzipped.borrow_mut() = Some((level, bytes.into_boxed_slice()));
    }
    Ok(Compressed::Whole(Rc::clone(kept)))
}

/// Writes `out` (the head), then the `len` bytes of `file` compressed by `stream`, in
/// chunks, one pooled buffer of the file at a time. zlib's state is parked before each
/// write, so it is held only while a piece is compressed, never across a wait: a slow
/// reader holds the compressed bytes not yet sent and nothing else, and a burst of
/// downloads does not hold a state each (nginx's gzip holds one per answer until its end).
/// The price: each 66 KiB piece starts with no history, about 2% more bytes on large CSS
/// and JavaScript than one unbroken stream.
async fn send_gzipped(
    client: &Client,
    mut out: Buf,
    found: &CachedFile,
    mut stream: GzipStream,
    len: u64,
    to: &Outgoing,
    ratio: &Cell<Option<GzipRatio>>,
) -> Result<(), Fail> {
    let file = &*found.file;
    let mut at = 0;
    loop {
        if at < len {
            let plain = fill(Buf::with_capacity(LARGE), file, &mut at, len).await?;
            deflate_chunk(&mut stream, &plain, &mut out, false)?;
        }
        if at >= len {
            end_chunks(&mut stream, &mut out)?;
            ratio.set(stream.ratio());
        } else {
            park_chunk(&mut stream, &mut out)?;
        }
        out = write(client, out, 0, to).await?;
        out.clear();
        if at >= len {
            return Ok(());
        }
    }
}

/// Writes `out` (the head), then `len` bytes of `file` from `start`: in the same write when
/// they fit in [`INLINE`] bytes; else with sendfile from the page cache on a plain connection
/// (see client/sendfile.rs), and otherwise (TLS, pages not cached) one pooled buffer at a
/// time, so a slow reader holds one buffer, not the file.
async fn send(
    client: &Client,
    mut out: Buf,
    found: &CachedFile,
    start: u64,
    len: u64,
    to: &Outgoing,
) -> Result<(), Fail> {
    let file: &File = &found.file;
    let end = start + len;
    let mut at = start;
    let way = send_way();
    let kept = found
        .bytes
        .as_deref()
        .map(|kept| &kept.plain[..])
        .filter(|_| way == SendWay::BySize)
        .and_then(|bytes| {
            let range = usize::try_from(start).ok()?..usize::try_from(end).ok()?;
            bytes.get(range)
        });
    let small = len <= INLINE as u64;
    if let Some(kept) = kept.filter(|_| small) {
        out.extend_from_slice(kept);
        at = end;
    } else if small && way != SendWay::Sendfile {
        out = fill(out, file, &mut at, end).await?;
    } else if way != SendWay::Copy
        // Not from NFS or FUSE: sendfile there may wait on the server or the daemon (a
        // revalidation), and the event loop with it; io_uring's reads do not (found by
        // review).
        && found.filesystem().is_local()
        && let Some(zero_copy) = client.zero_copy()
    {
        let on = (file, found.filesystem());
        return send_zero_copy(client, zero_copy, out, on, start, end, to).await;
    }
    loop {
        out = write(client, out, 0, to).await?;
        if at >= end {
            return Ok(());
        }
        out = next_chunk(out, file, &mut at, end).await?;
    }
}

/// [`send`] on a plain connection: sendfile while the pages are cached and the socket takes
/// them, a readiness wait while it does not, and a copied chunk where the cache misses.
async fn send_zero_copy(
    client: &Client,
    mut zero_copy: ZeroCopy,
    mut out: Buf,
    (file, filesystem): (&File, Filesystem),
    mut at: u64,
    end: u64,
    to: &Outgoing,
) -> Result<(), Fail> {
    // Paced, the head goes through the pace too, not ahead of the file's first bytes.
    let head_sent = match to.pace {
        Some(_) => 0,
        None => zero_copy.send_head(&out),
    };
    client.stream.add_written(head_sent as u64);
    out = write(client, out, head_sent, to).await?;
    let fd = file.as_raw_fd();
    while at < end {
        let until = match &to.pace {
            Some(pace) => at + pace.allow(&client.stream, end - at).await,
            None => end,
        };
        let step = zero_copy
            .send(fd, filesystem, at, until)
            .map_err(|e| Fail::ClientIo(e.kind()))?;
        let copy = match step {
            Step::Sent(0) => return Err(Fail::FileRead(std::io::ErrorKind::UnexpectedEof)),
            Step::Sent(n) => {
                at += n;
                client.stream.add_written(n);
                // A reader fast enough that sendfile never waits must not keep the loop's
                // other connections waiting.
                tokio::task::consume_budget().await;
                false
            }
            Step::Full => !zero_copy
                .writable(to.timeout)
                .await
                .map_err(|e| write_failure(client, e))?,
            Step::NotCached | Step::Unsupported => true,
        };
        if copy {
            // Through a buffer: io_uring reads the pages in (off the thread) and waits for
            // the socket, which must be blocking again for that.
            zero_copy.before_ops();
            out = next_chunk(out, file, &mut at, end).await?;
            out = write(client, out, 0, to).await?;
        }
    }
    Ok(())
}

/// Writes `out[from..]` to the client.
async fn write(client: &Client, out: Buf, from: usize, to: &Outgoing) -> Result<Buf, Fail> {
    write_paced(&client.stream, out, from, to.timeout, to.pace.as_deref())
        .await
        .map_err(|e| write_failure(client, e))
}

fn write_failure(client: &Client, e: IoError) -> Fail {
    match e {
        IoError::Timeout => {
            Stream::time_out(&client.stream, Shutdown::Both);
            Fail::ClientGone
        }
        IoError::Failed(kind) => Fail::ClientIo(kind),
    }
}

/// The file's next chunk, in a large buffer.
async fn next_chunk(mut out: Buf, file: &File, at: &mut u64, end: u64) -> Result<Buf, Fail> {
    if out.capacity() < LARGE {
        out = Buf::with_capacity(LARGE);
    }
    out.clear();
    fill(out, file, at, end).await
}

/// Appends the file's next bytes (up to its end, at most a large buffer's worth) to `out`.
async fn fill(out: Buf, file: &File, at: &mut u64, end: u64) -> Result<Buf, Fail> {
    let want = usize::try_from(end - *at)
        .unwrap_or(usize::MAX)
        .min(LARGE - out.len().min(LARGE));
    if want == 0 {
        return Ok(out);
    }
    let (read, out) = read_at(file, out, want, *at).await;
    match read {
        Ok(n) if n > 0 => {
            *at += n as u64;
            Ok(out)
        }
        // The file shrank since it was opened.
        Ok(_) => Err(Fail::FileRead(std::io::ErrorKind::UnexpectedEof)),
        Err(e) => Err(Fail::FileRead(e.kind())),
    }
}
