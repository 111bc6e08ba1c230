//! The request tables of the static-file tests, each request with the answer the contract
//! wants ([`Expect`]) and the shape of the route it goes to. The ringway tests run them
//! against ringway; the parity test runs the same tables through nginx and ringway.
//!
//! Routes the tables assume (both proxies get them, see `static_parity.rs`):
//! - `/static/` on the tree's root, `expires 30d`, `index index.html` ([`STATIC`]);
//! - `/gz/` on the same root, the same, plus gzip siblings ([`GZ`]).
//!
//! The brotli cases ([`brotli_cases`], route `/br/` with `precompressed = ["br", "gzip"]`)
//! are ringway's only: Debian's nginx has `gzip_static` but no brotli module.

use crate::client::{Req, Response};
use crate::static_expect::{Expect, Problem, RouteShape, Served, check};
use crate::static_tree::{self as tree, MTIME, SPARSE_SIZE, SPARSE_TAIL, StaticTree, http_date};

/// 30 days, the `expires` of the table routes.
pub const THIRTY_DAYS: u64 = 30 * 86_400;

/// `/static/`: expires 30d, no precompressed siblings.
pub const STATIC: RouteShape = RouteShape {
    max_age: Some(THIRTY_DAYS),
    immutable: false,
    vary: false,
    app_cache_control: None,
};

/// `/gz/`: expires 30d, gzip siblings (so `Vary: Accept-Encoding`).
pub const GZ: RouteShape = RouteShape {
    vary: true,
    ..STATIC
};

/// `/br/`: like [`GZ`], with `precompressed = ["br", "gzip"]`.
pub const BR: RouteShape = GZ;

/// The Cache-Control the apps' `/report/<name>` sends with its X-Accel-Redirect.
pub const REPORT_CACHE_CONTROL: &str = "private, max-age=60";

/// A file served through X-Accel-Redirect from the internal `/protected/` route: the app's
/// Cache-Control, no `expires` of its own.
pub const ACCEL: RouteShape = RouteShape {
    max_age: None,
    immutable: false,
    vary: false,
    app_cache_control: Some(REPORT_CACHE_CONTROL),
};

/// The start of the body the apps send with X-Accel-Redirect: never to reach a client.
pub const APP_BODY_MARK: &[u8] = b"APP-BODY";

/// One request and what it must get.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique; allowlists name cases by it.
    pub name: &'static str,
    /// The request.
    pub req: Req,
    /// The answer wanted.
    pub expect: Expect,
    /// The route's shape.
    pub shape: RouteShape,
    /// Headers the answer must carry with exactly these values (one each).
    pub headers: Vec<(&'static str, String)>,
}

impl Case {
    fn new(name: &'static str, req: Req, expect: Expect, shape: RouteShape) -> Case {
        Case {
            name,
            req,
            expect,
            shape,
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The request's method.
    pub fn method(&self) -> &str {
        self.req.method()
    }
}

/// `/static/` + `rel`.
fn st(rel: &str) -> String {
    format!("/static/{rel}")
}

/// `/gz/` + `rel`.
fn gz(rel: &str) -> String {
    format!("/gz/{rel}")
}

/// What the plain files are served as: types, names, directories, dotfiles, symlinks,
/// special files, methods.
pub fn file_cases(t: &StaticTree) -> Vec<Case> {
    use tree::*;
    let file = |name, rel: &str| Case::new(name, Req::get(&st(rel)), Expect::file(t, rel), STATIC);
    let missing = |name, target: &str| Case::new(name, Req::get(target), Expect::NotFound, STATIC);
    let not_allowed = |name, req: Req| Case::new(name, req, Expect::MethodNotAllowed, STATIC);
    let slash = |name, rel: &str| {
        Case::new(
            name,
            Req::get(&st(rel)),
            Expect::SlashRedirect(st(rel)),
            STATIC,
        )
    };
    vec![
        file("text", TEXT),
        file("css", CSS),
        file("js", JS),
        file("svg", SVG),
        file("png", PNG),
        file("json", JSON),
        file("unknown extension", UNKNOWN),
        file("no extension", NO_EXTENSION),
        file("empty file", EMPTY),
        Case::new(
            "UTF-8 name, percent-encoded",
            Req::get(&st(UTF8_NAME_ENCODED)),
            Expect::file(t, UTF8_NAME),
            STATIC,
        ),
        Case::new(
            "space in the name, percent-encoded",
            Req::get(&st(SPACE_NAME_ENCODED)),
            Expect::file(t, SPACE_NAME),
            STATIC,
        ),
        missing("a plus is not a space in a path", "/static/a+b.txt"),
        Case::new(
            "the query is not part of the file name",
            Req::get(&format!("{}?v=1234&x", st(TEXT))),
            Expect::file(t, TEXT),
            STATIC,
        ),
        Case::new(
            "dot segments inside the root",
            Req::get("/static/docs/../img/./logo.svg"),
            Expect::file(t, SVG),
            STATIC,
        ),
        Case::new(
            "merged slashes",
            Req::get("/static//docs///guide.txt"),
            Expect::file(t, GUIDE),
            STATIC,
        ),
        Case::new(
            "HEAD",
            Req::new("HEAD", &st(TEXT)),
            Expect::file(t, TEXT),
            STATIC,
        ),
        Case::new(
            "HEAD of the 1 GiB sparse file",
            Req::new("HEAD", &st(SPARSE)),
            Expect::file(t, SPARSE),
            STATIC,
        ),
        Case::new(
            "index of a directory",
            Req::get(&st(&format!("{INDEXED_DIR}/"))),
            Expect::file(t, INDEX),
            STATIC,
        ),
        file("a file next to the index", GUIDE),
        slash("directory without its slash", INDEXED_DIR),
        missing("directory without index", &st(&format!("{BARE_DIR}/"))),
        slash("directory without index, without its slash", BARE_DIR),
        missing("the root without index", "/static/"),
        missing("missing file", "/static/no-such-file.txt"),
        missing("a file with a trailing slash", &st(&format!("{TEXT}/"))),
        missing("dotfile", &st(DOTFILE)),
        missing("file in a dot-directory", &st(DOTDIR_FILE)),
        missing("dot-directory", "/static/.git/"),
        missing("dotfile, dot percent-encoded", "/static/%2eenv"),
        missing(
            "dotfile reached through dot segments",
            "/static/docs/../.env",
        ),
        file("symlink to a file inside the root", LINK_IN_FILE),
        Case::new(
            "index through a symlink to a directory inside the root",
            Req::get(&st(&format!("{LINK_IN_DIR}/"))),
            Expect::file(t, INDEX),
            STATIC,
        ),
        file(
            "file through a symlink to a directory inside the root",
            &format!("{LINK_IN_DIR}/guide.txt"),
        ),
        missing("relative symlink out of the root", &st(LINK_OUT_FILE)),
        missing("absolute symlink out of the root", &st(LINK_OUT_ABSOLUTE)),
        missing(
            "file under a symlink to a directory out of the root",
            &st(&format!("{LINK_OUT_DIR}/page.txt")),
        ),
        missing(
            "symlink climbing out from a subdirectory",
            &st(LINK_OUT_NESTED),
        ),
        missing("dangling symlink", &st(LINK_DANGLING)),
        missing("symlink loop", &st(LINK_LOOP)),
        missing("FIFO", &st(FIFO)),
        missing("unix socket", &st(SOCKET)),
        missing("character device", &st(DEVICE)),
        not_allowed("POST", Req::post(&st(TEXT), b"a=1")),
        not_allowed("PUT", Req::new("PUT", &st(TEXT)).body(b"new contents")),
        not_allowed("DELETE", Req::new("DELETE", &st(TEXT))),
        not_allowed("PATCH", Req::new("PATCH", &st(TEXT)).body(b"x")),
        not_allowed("OPTIONS", Req::new("OPTIONS", &st(TEXT))),
        // nginx's static module takes a POST as far as the file: none is a 404.
        Case::new(
            "POST to a missing file",
            Req::post(&st("missing.css"), b"a=1"),
            Expect::NotFound,
            STATIC,
        ),
        not_allowed(
            "PUT to a missing file",
            Req::new("PUT", &st("missing.css")).body(b"x"),
        ),
    ]
}

/// Conditional requests on `/static/hello.txt`, in the evaluation order of RFC 9110
/// §13.2.2: If-Match, then If-Unmodified-Since (only without If-Match), then If-None-Match,
/// then If-Modified-Since (only without If-None-Match), then Range.
pub fn conditional_cases(t: &StaticTree) -> Vec<Case> {
    let etag = t.etag(tree::TEXT);
    let weak = format!("W/{etag}");
    let other = "\"0-0\"";
    let list = format!("{other}, {etag}");
    let modified = t.last_modified(tree::TEXT);
    let earlier = http_date(MTIME - 86_400);
    let later = http_date(MTIME + 86_400);
    let target = st(tree::TEXT);
    let get = |headers: &[(&str, &str)]| {
        headers
            .iter()
            .fold(Req::get(&target), |r, (k, v)| r.header(k, v))
    };
    let whole = || Expect::file(t, tree::TEXT);
    let not_modified = || Expect::not_modified(t, tree::TEXT);
    let failed = || Expect::PreconditionFailed;
    let case = |name, req, expect| Case::new(name, req, expect, STATIC);
    vec![
        case(
            "If-None-Match: the ETag",
            get(&[("If-None-Match", &etag)]),
            not_modified(),
        ),
        case(
            "If-None-Match: the weak ETag (weak comparison)",
            get(&[("If-None-Match", &weak)]),
            not_modified(),
        ),
        case(
            "If-None-Match: another ETag",
            get(&[("If-None-Match", other)]),
            whole(),
        ),
        case(
            "If-None-Match: a list holding the ETag",
            get(&[("If-None-Match", &list)]),
            not_modified(),
        ),
        case(
            "If-None-Match: *",
            get(&[("If-None-Match", "*")]),
            not_modified(),
        ),
        case(
            "If-Modified-Since: Last-Modified",
            get(&[("If-Modified-Since", &modified)]),
            not_modified(),
        ),
        case(
            "If-Modified-Since: later",
            get(&[("If-Modified-Since", &later)]),
            not_modified(),
        ),
        case(
            "If-Modified-Since: earlier",
            get(&[("If-Modified-Since", &earlier)]),
            whole(),
        ),
        case(
            "If-Modified-Since: not a date (ignored)",
            get(&[("If-Modified-Since", "yesterday")]),
            whole(),
        ),
        case(
            "If-None-Match another + If-Modified-Since current: If-None-Match wins",
            get(&[("If-None-Match", other), ("If-Modified-Since", &modified)]),
            whole(),
        ),
        case(
            "If-None-Match the ETag + If-Modified-Since earlier: If-None-Match wins",
            get(&[("If-None-Match", &etag), ("If-Modified-Since", &earlier)]),
            not_modified(),
        ),
        case(
            "HEAD with If-None-Match: the ETag",
            Req::new("HEAD", &target).header("If-None-Match", &etag),
            not_modified(),
        ),
        case("If-Match: the ETag", get(&[("If-Match", &etag)]), whole()),
        case(
            "If-Match: another ETag",
            get(&[("If-Match", other)]),
            failed(),
        ),
        case(
            "If-Match: the weak ETag (strong comparison)",
            get(&[("If-Match", &weak)]),
            failed(),
        ),
        case("If-Match: *", get(&[("If-Match", "*")]), whole()),
        case(
            "If-Match: a list holding the ETag",
            get(&[("If-Match", &list)]),
            whole(),
        ),
        case(
            "If-Unmodified-Since: Last-Modified",
            get(&[("If-Unmodified-Since", &modified)]),
            whole(),
        ),
        case(
            "If-Unmodified-Since: later",
            get(&[("If-Unmodified-Since", &later)]),
            whole(),
        ),
        case(
            "If-Unmodified-Since: earlier",
            get(&[("If-Unmodified-Since", &earlier)]),
            failed(),
        ),
        case(
            "If-Unmodified-Since: not a date (ignored)",
            get(&[("If-Unmodified-Since", "yesterday")]),
            whole(),
        ),
        case(
            "If-Match the ETag + If-Unmodified-Since earlier: If-Match wins",
            get(&[("If-Match", &etag), ("If-Unmodified-Since", &earlier)]),
            whole(),
        ),
        case(
            "If-Match another + If-None-Match the ETag: If-Match first",
            get(&[("If-Match", other), ("If-None-Match", &etag)]),
            failed(),
        ),
        case(
            "If-Unmodified-Since earlier + If-None-Match the ETag: 412 first",
            get(&[("If-Unmodified-Since", &earlier), ("If-None-Match", &etag)]),
            failed(),
        ),
        case(
            "If-Match the ETag + If-None-Match the ETag",
            get(&[("If-Match", &etag), ("If-None-Match", &etag)]),
            not_modified(),
        ),
        case(
            "If-None-Match the ETag + Range: 304 wins",
            get(&[("If-None-Match", &etag), ("Range", "bytes=0-4")]),
            not_modified(),
        ),
        case(
            "If-Match another + Range: 412 wins",
            get(&[("If-Match", other), ("Range", "bytes=0-4")]),
            failed(),
        ),
        case(
            "If-Match the ETag + Range",
            get(&[("If-Match", &etag), ("Range", "bytes=0-4")]),
            Expect::part(t, tree::TEXT, 0, 4),
        ),
    ]
}

/// Range requests (RFC 9110 §14) on `/static/`, `max_ranges 1` style: one range → 206,
/// several → the whole file.
pub fn range_cases(t: &StaticTree) -> Vec<Case> {
    let etag = t.etag(tree::TEXT);
    let modified = t.last_modified(tree::TEXT);
    let earlier = http_date(MTIME - 86_400);
    let target = st(tree::TEXT);
    let size = t.size(tree::TEXT);
    let ranged = |range: &str| Req::get(&target).header("Range", range);
    let part = |first, last| Expect::part(t, tree::TEXT, first, last);
    let case = |name, req, expect| Case::new(name, req, expect, STATIC);
    let tail_first = SPARSE_SIZE - SPARSE_TAIL as u64;
    let middle = SPARSE_SIZE / 2;
    vec![
        case("bytes=0-4", ranged("bytes=0-4"), part(0, 4)),
        case("bytes=6- (open)", ranged("bytes=6-"), part(6, size - 1)),
        case(
            "bytes=-3 (suffix)",
            ranged("bytes=-3"),
            part(size - 3, size - 1),
        ),
        case(
            "bytes=-100 (suffix longer than the file)",
            ranged("bytes=-100"),
            part(0, size - 1),
        ),
        case(
            "bytes=5-100 (last past the end)",
            ranged("bytes=5-100"),
            part(5, size - 1),
        ),
        case(
            "bytes=12-12 (the last byte)",
            ranged("bytes=12-12"),
            part(12, 12),
        ),
        case(
            "bytes=0-0 (the first byte)",
            ranged("bytes=0-0"),
            part(0, 0),
        ),
        case(
            "bytes=13- (first past the end)",
            ranged("bytes=13-"),
            Expect::unsatisfiable(t, tree::TEXT),
        ),
        case(
            "bytes=100-200",
            ranged("bytes=100-200"),
            Expect::unsatisfiable(t, tree::TEXT),
        ),
        case(
            "bytes=-0 (empty suffix)",
            ranged("bytes=-0"),
            Expect::unsatisfiable(t, tree::TEXT),
        ),
        case(
            "two ranges: the whole file",
            ranged("bytes=0-0,5-6"),
            Expect::file(t, tree::TEXT),
        ),
        case(
            "two overlapping ranges: the whole file",
            ranged("bytes=0-4,0-4"),
            Expect::file(t, tree::TEXT),
        ),
        case(
            "unknown range unit: ignored",
            ranged("items=0-4"),
            Expect::file(t, tree::TEXT),
        ),
        case(
            "bytes=5-3 (malformed)",
            ranged("bytes=5-3"),
            Expect::whole_or_unsatisfiable(t, tree::TEXT),
        ),
        case(
            "bytes=abc (malformed)",
            ranged("bytes=abc"),
            Expect::whole_or_unsatisfiable(t, tree::TEXT),
        ),
        case(
            "bytes=- (malformed)",
            ranged("bytes=-"),
            Expect::whole_or_unsatisfiable(t, tree::TEXT),
        ),
        case(
            "a range of the empty file",
            Req::get(&st(tree::EMPTY)).header("Range", "bytes=0-"),
            Expect::whole_or_unsatisfiable(t, tree::EMPTY),
        ),
        case(
            "If-Range: the ETag",
            ranged("bytes=0-4").header("If-Range", &etag),
            part(0, 4),
        ),
        case(
            "If-Range: a stale ETag",
            ranged("bytes=0-4").header("If-Range", "\"0-0\""),
            Expect::file(t, tree::TEXT),
        ),
        case(
            "If-Range: the weak ETag",
            ranged("bytes=0-4").header("If-Range", &format!("W/{etag}")),
            Expect::file(t, tree::TEXT),
        ),
        case(
            "If-Range: Last-Modified",
            ranged("bytes=0-4").header("If-Range", &modified),
            part(0, 4),
        ),
        case(
            "If-Range: an earlier date",
            ranged("bytes=0-4").header("If-Range", &earlier),
            Expect::file(t, tree::TEXT),
        ),
        case(
            "the end of the 1 GiB sparse file",
            Req::get(&st(tree::SPARSE)).header("Range", &format!("bytes={tail_first}-")),
            Expect::part(t, tree::SPARSE, tail_first, SPARSE_SIZE - 1),
        ),
        case(
            "a suffix of the 1 GiB sparse file",
            Req::get(&st(tree::SPARSE)).header("Range", "bytes=-100"),
            Expect::part(t, tree::SPARSE, SPARSE_SIZE - 100, SPARSE_SIZE - 1),
        ),
        case(
            "the hole in the middle of the 1 GiB sparse file",
            Req::get(&st(tree::SPARSE)).header("Range", &format!("bytes={middle}-{}", middle + 15)),
            Expect::part(t, tree::SPARSE, middle, middle + 15),
        ),
        case(
            "past the end of the 1 GiB sparse file",
            Req::get(&st(tree::SPARSE)).header("Range", &format!("bytes={SPARSE_SIZE}-")),
            Expect::unsatisfiable(t, tree::SPARSE),
        ),
    ]
}

/// Precompressed gzip siblings on `/gz/` (nginx: `gzip_static on; gzip_vary on;`).
pub fn gzip_cases(t: &StaticTree) -> Vec<Case> {
    let css = gz(tree::CSS);
    let accepting = |value: &str| Req::get(&css).header("Accept-Encoding", value);
    let sibling = || Expect::encoded(t, tree::CSS, "gzip");
    let plain = || Expect::file(t, tree::CSS);
    let case = |name, req, expect| Case::new(name, req, expect, GZ);
    vec![
        case("gzip accepted", accepting("gzip"), sibling()),
        case("gzip;q=0.5 accepted", accepting("gzip;q=0.5"), sibling()),
        case(
            "a browser's Accept-Encoding",
            accepting("gzip, deflate, br"),
            sibling(),
        ),
        case("GZIP in capitals", accepting("GZIP"), sibling()),
        case("gzip;q=0 refused", accepting("gzip;q=0"), plain()),
        case("no Accept-Encoding", Req::get(&css), plain()),
        // nginx's gzip_static asks ngx_http_gzip_ok: HTTP/1.1 (gzip_http_version), and no
        // proxy in between while gzip_proxied is off.
        case(
            "HTTP/1.0: the plain file",
            accepting("gzip").http10(),
            plain(),
        ),
        case(
            "through a proxy (Via): the plain file",
            accepting("gzip").header("Via", "1.1 cache"),
            plain(),
        ),
        case("identity only", accepting("identity"), plain()),
        case("deflate only", accepting("deflate"), plain()),
        case(
            "another file with a gzip sibling",
            Req::get(&gz(tree::JS)).header("Accept-Encoding", "gzip"),
            Expect::encoded(t, tree::JS, "gzip"),
        ),
        case(
            "no sibling: the plain file, still with Vary",
            Req::get(&gz(tree::TEXT)).header("Accept-Encoding", "gzip"),
            Expect::file(t, tree::TEXT),
        ),
        case(
            "HEAD of the sibling",
            Req::new("HEAD", &css).header("Accept-Encoding", "gzip"),
            sibling(),
        ),
        case(
            "If-None-Match: the sibling's ETag",
            accepting("gzip").header("If-None-Match", &t.etag(&format!("{}.gz", tree::CSS))),
            Expect::not_modified(t, &format!("{}.gz", tree::CSS)),
        ),
        case(
            "If-None-Match: the plain file's ETag, sibling sent",
            accepting("gzip").header("If-None-Match", &t.etag(tree::CSS)),
            sibling(),
        ),
        case(
            "If-None-Match: the plain file's ETag, plain file wanted",
            Req::get(&css).header("If-None-Match", &t.etag(tree::CSS)),
            Expect::not_modified(t, tree::CSS),
        ),
        case(
            "a range of the sibling",
            accepting("gzip").header("Range", "bytes=0-3"),
            Expect::encoded_part(t, tree::CSS, "gzip", 0, 3),
        ),
    ]
}

/// Brotli and gzip siblings on `/br/` (`precompressed = ["br", "gzip"]`): ringway only.
pub fn brotli_cases(t: &StaticTree) -> Vec<Case> {
    let css = format!("/br/{}", tree::CSS);
    let js = format!("/br/{}", tree::JS);
    let accepting = |target: &str, value: &str| Req::get(target).header("Accept-Encoding", value);
    let case = |name, req, expect| Case::new(name, req, expect, BR);
    let br = || Expect::encoded(t, tree::CSS, "br");
    let gzip = || Expect::encoded(t, tree::CSS, "gzip");
    vec![
        case("br accepted", accepting(&css, "br"), br()),
        case(
            "gzip and br accepted: br first",
            accepting(&css, "gzip, br"),
            br(),
        ),
        case(
            "br;q=0.1 still accepted",
            accepting(&css, "gzip;q=1, br;q=0.1"),
            br(),
        ),
        case(
            "br refused, gzip accepted",
            accepting(&css, "br;q=0, gzip"),
            gzip(),
        ),
        case("gzip only", accepting(&css, "gzip"), gzip()),
        case(
            "both refused",
            accepting(&css, "br;q=0, gzip;q=0"),
            Expect::file(t, tree::CSS),
        ),
        case(
            "nothing accepted",
            Req::get(&css),
            Expect::file(t, tree::CSS),
        ),
        case(
            "br wanted, no .br sibling: gzip",
            accepting(&js, "br, gzip"),
            Expect::encoded(t, tree::JS, "gzip"),
        ),
        case(
            "br wanted, no .br sibling, gzip not accepted: plain",
            accepting(&js, "br"),
            Expect::file(t, tree::JS),
        ),
        case(
            "HEAD of the br sibling",
            Req::new("HEAD", &css).header("Accept-Encoding", "br"),
            br(),
        ),
        case(
            "If-None-Match: the br sibling's ETag",
            accepting(&css, "br").header("If-None-Match", &t.etag(&format!("{}.br", tree::CSS))),
            Expect::not_modified(t, &format!("{}.br", tree::CSS)),
        ),
        case(
            "If-None-Match: the gzip sibling's ETag, br sent",
            accepting(&css, "br, gzip")
                .header("If-None-Match", &t.etag(&format!("{}.gz", tree::CSS))),
            br(),
        ),
    ]
}

/// The X-Accel-Redirect downloads of the Flask demo app's `/report/<name>`: the file from
/// the internal route in place of the app's body, with the app's Content-Type (even where
/// the extension says otherwise: notes.txt goes out as application/pdf), Content-Disposition,
/// Cache-Control and Set-Cookie; conditionals and ranges as on any static file.
pub fn accel_cases(t: &StaticTree) -> Vec<Case> {
    let report = t.private().join(tree::REPORT);
    let as_pdf = |file: std::path::PathBuf, range| {
        Expect::Served(Served {
            file,
            media: &["application/pdf"],
            charset: None,
            coding: None,
            range,
        })
    };
    let kept = |case: Case, name: &str| {
        case.with_header(
            "content-disposition",
            &format!("attachment; filename=\"{name}\""),
        )
        .with_header("set-cookie", &format!("report={name}; HttpOnly; Path=/"))
    };
    let case = |name, req, expect| Case::new(name, req, expect, ACCEL);
    let size = t.private_bytes(tree::REPORT).len() as u64;
    vec![
        kept(
            case(
                "X-Accel-Redirect: the report",
                Req::get("/report/report.pdf"),
                as_pdf(report.clone(), None),
            ),
            "report.pdf",
        ),
        kept(
            case(
                "X-Accel-Redirect: the app's Content-Type wins over the extension's",
                Req::get("/report/notes.txt"),
                as_pdf(t.private().join(tree::NOTES), None),
            ),
            "notes.txt",
        ),
        kept(
            case(
                "X-Accel-Redirect: HEAD",
                Req::new("HEAD", "/report/report.pdf"),
                as_pdf(report.clone(), None),
            ),
            "report.pdf",
        ),
        kept(
            case(
                "X-Accel-Redirect: a range",
                Req::get("/report/report.pdf").header("Range", "bytes=0-7"),
                as_pdf(report.clone(), Some((0, 7))),
            ),
            "report.pdf",
        ),
        case(
            "X-Accel-Redirect: a suffix range",
            Req::get("/report/report.pdf").header("Range", "bytes=-10"),
            as_pdf(report.clone(), Some((size - 10, size - 1))),
        ),
        case(
            "X-Accel-Redirect: If-None-Match",
            Req::get("/report/report.pdf")
                .header("If-None-Match", &crate::static_tree::etag_of(&report)),
            Expect::NotModified(report.clone()),
        ),
        case(
            "X-Accel-Redirect: If-Match fails",
            Req::get("/report/report.pdf").header("If-Match", "\"0-0\""),
            Expect::PreconditionFailed,
        ),
        case(
            "X-Accel-Redirect: a missing file",
            Req::get("/report/no-such-report.pdf"),
            Expect::NotFound,
        ),
        // The app names `/protected/sub%2f%2e%2e%2freport.pdf` (its path, decoded once):
        // `sub/../report.pdf` once decoded, a climb nginx refuses as an unsafe URI.
        case(
            "X-Accel-Redirect: a path that climbs once decoded",
            Req::get("/report/sub%252f%252e%252e%252freport.pdf"),
            Expect::NotFound,
        ),
        // The app names `/protected/100%.txt`: a malformed escape names no file (found by
        // review: ringway answered 502; nginx drops the `%` and looks for `100.txt`, which
        // the tree does not have).
        case(
            "X-Accel-Redirect: a malformed escape",
            Req::get("/report/100%25.txt"),
            Expect::NotFound,
        ),
    ]
}

/// Every way `r` departs from `case`: [`check`], plus the exact headers the case names, and
/// never the app's body.
pub fn check_case(case: &Case, r: &Response) -> Vec<Problem> {
    let mut problems = check(&case.expect, case.method(), r, case.shape);
    for (name, want) in &case.headers {
        let got = r.header_all(name);
        if got.len() != 1 || &got[0] != want {
            problems.push(Problem {
                field: name,
                detail: format!("{got:?}, want {want:?}"),
            });
        }
    }
    if r.body
        .windows(APP_BODY_MARK.len())
        .any(|w| w == APP_BODY_MARK)
    {
        problems.push(Problem {
            field: "body",
            detail: "the app's own body reached the client".to_owned(),
        });
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique() {
        let t = StaticTree::build();
        let all: Vec<Case> = [
            file_cases(&t),
            conditional_cases(&t),
            range_cases(&t),
            gzip_cases(&t),
            brotli_cases(&t),
            accel_cases(&t),
        ]
        .concat();
        let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "case names are unique");
    }
}
