//! What a static route must answer, as data: an [`Expect`] per request, and [`check`], which
//! lists every way an answer departs from it, one [`Problem`] per header or property, so a
//! parity test can tell which departures of nginx's are known (its allowlist names fields).
//!
//! The rules are the static-file contract: Content-Type from the extension (`charset=utf-8` on
//! text types), the ETag nginx builds, Last-Modified, `Accept-Ranges: bytes` on every file
//! answer, Content-Range on 206 and 416, `Cache-Control: max-age=N` and an Expires N seconds
//! after Date when the route sets `expires`, `Vary: Accept-Encoding` on every answer of a
//! route with precompressed siblings, the exact bytes, and no body for HEAD and 304.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::client::{Framing, Response};
use crate::data::sha256_hex;
use crate::static_tree::{StaticTree, etag_of, last_modified_of, parse_http_date};

/// What a route's configuration shows in its answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteShape {
    /// `expires`, in seconds: `Cache-Control: max-age=N` and Expires = Date + N.
    pub max_age: Option<u64>,
    /// `immutable = true`: `, immutable` after max-age.
    pub immutable: bool,
    /// `precompressed` is set: `Vary: Accept-Encoding` on every answer.
    pub vary: bool,
    /// The Cache-Control the app sent with X-Accel-Redirect: kept as it is, and no Expires
    /// added (the internal route sets no `expires`).
    pub app_cache_control: Option<&'static str>,
}

/// A file answer: which file went out, as what, and which part of it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The file whose bytes and validators go out (a sibling for a precompressed answer).
    pub file: PathBuf,
    /// The acceptable media types (more than one where registries disagree, e.g. `.js`).
    pub media: &'static [&'static str],
    /// The charset parameter wanted, if any.
    pub charset: Option<&'static str>,
    /// Content-Encoding, for a precompressed sibling.
    pub coding: Option<&'static str>,
    /// `(first, last)` for a 206, inclusive.
    pub range: Option<(u64, u64)>,
}

/// The answer wanted for one request.
#[derive(Debug, Clone)]
pub enum Expect {
    /// 200 (or 206 with a range) with a file.
    Served(Served),
    /// 304 for this file (its ETag), no body.
    NotModified(PathBuf),
    /// 412.
    PreconditionFailed,
    /// 416 with `Content-Range: bytes */SIZE` of this file.
    Unsatisfiable(PathBuf),
    /// Either the whole file (200) or 416: a Range header a server may ignore or reject
    /// (malformed, or any range of an empty file).
    WholeOrUnsatisfiable(Served),
    /// 404.
    NotFound,
    /// 405 with `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// A directory asked for without its slash: 301 to `path/`, as nginx answers, index or
    /// not.
    SlashRedirect(String),
}

impl Expect {
    /// The whole file `rel` under the tree's root, typed by its extension.
    pub fn file(tree: &StaticTree, rel: &str) -> Expect {
        Expect::Served(served(tree.path(rel), rel))
    }

    /// Bytes `first..=last` of `rel`.
    pub fn part(tree: &StaticTree, rel: &str, first: u64, last: u64) -> Expect {
        Expect::Served(Served {
            range: Some((first, last)),
            ..served(tree.path(rel), rel)
        })
    }

    /// The precompressed sibling of `rel` for `coding` (`gzip` → `rel.gz`, `br` → `rel.br`),
    /// typed as `rel`.
    pub fn encoded(tree: &StaticTree, rel: &str, coding: &'static str) -> Expect {
        Expect::Served(encoded(tree, rel, coding))
    }

    /// Bytes `first..=last` of the sibling of `rel` for `coding`.
    pub fn encoded_part(
        tree: &StaticTree,
        rel: &str,
        coding: &'static str,
        first: u64,
        last: u64,
    ) -> Expect {
        Expect::Served(Served {
            range: Some((first, last)),
            ..encoded(tree, rel, coding)
        })
    }

    /// 304 for `rel` (the file whose validators the request matched).
    pub fn not_modified(tree: &StaticTree, rel: &str) -> Expect {
        Expect::NotModified(tree.path(rel))
    }

    /// 416 for `rel`.
    pub fn unsatisfiable(tree: &StaticTree, rel: &str) -> Expect {
        Expect::Unsatisfiable(tree.path(rel))
    }

    /// The whole of `rel` or 416.
    pub fn whole_or_unsatisfiable(tree: &StaticTree, rel: &str) -> Expect {
        Expect::WholeOrUnsatisfiable(served(tree.path(rel), rel))
    }

    /// The status this expectation names first (for messages and scopes).
    pub fn status(&self) -> u16 {
        match self {
            Expect::Served(s) if s.range.is_some() => 206,
            Expect::Served(_) | Expect::WholeOrUnsatisfiable(_) => 200,
            Expect::NotModified(_) => 304,
            Expect::PreconditionFailed => 412,
            Expect::Unsatisfiable(_) => 416,
            Expect::NotFound => 404,
            Expect::MethodNotAllowed => 405,
            Expect::SlashRedirect(_) => 301,
        }
    }
}

fn served(file: PathBuf, name: &str) -> Served {
    let (media, charset) = media_for(name);
    Served {
        file,
        media,
        charset,
        coding: None,
        range: None,
    }
}

fn encoded(tree: &StaticTree, rel: &str, coding: &'static str) -> Served {
    let suffix = match coding {
        "gzip" => "gz",
        "br" => "br",
        other => panic!("no sibling suffix for coding {other:?}"),
    };
    Served {
        coding: Some(coding),
        ..served(tree.path(&format!("{rel}.{suffix}")), rel)
    }
}

/// The media types a file named `name` may be served as, and the charset wanted: ringway's
/// table is nginx's mime.types but for `.js` (RFC 9239 made `text/javascript` the standard;
/// nginx 1.22 still says `application/javascript`) and the `.mjs` and `.webmanifest` it
/// adds (no test tree holds such a file). Text types carry `charset=utf-8`.
pub fn media_for(name: &str) -> (&'static [&'static str], Option<&'static str>) {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let extension = match file_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    };
    const UTF8: Option<&str> = Some("utf-8");
    match extension.as_str() {
        "txt" => (&["text/plain"], UTF8),
        "css" => (&["text/css"], UTF8),
        "html" => (&["text/html"], UTF8),
        "js" => (&["text/javascript", "application/javascript"], UTF8),
        "json" => (&["application/json"], UTF8),
        "svg" => (&["image/svg+xml"], UTF8),
        "png" => (&["image/png"], None),
        "pdf" => (&["application/pdf"], None),
        _ => (&["application/octet-stream"], None),
    }
}

/// One way an answer departs from its [`Expect`]: the field (a header's lowercase name, or
/// `status`, `body`, `charset`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which field.
    pub field: &'static str,
    /// What was found and what was wanted.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}

/// The media type of a Content-Type value (lowercase, no parameters) and its charset
/// parameter (lowercase, unquoted), if any.
pub fn media_type(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    });
    (essence, charset)
}

/// The comma-separated tokens of every `name` header, trimmed and lowercased.
pub fn tokens(r: &Response, name: &str) -> Vec<String> {
    r.header_all(name)
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// Bytes `first..=last` of `path` (read with a seek: the sparse file is 1 GiB).
pub fn read_range(path: &Path, first: u64, last: u64) -> Vec<u8> {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.seek(SeekFrom::Start(first)).expect("seek");
    let len = usize::try_from(last + 1 - first).expect("range fits memory");
    let mut bytes = vec![0; len];
    file.read_exact(&mut bytes).expect("read the range");
    bytes
}

/// Every way `r`, the answer to a `method` request, departs from `expect` on a route of
/// `shape`. Empty: the answer is right.
pub fn check(expect: &Expect, method: &str, r: &Response, shape: RouteShape) -> Vec<Problem> {
    let mut problems = Problems::default();
    let head = method.eq_ignore_ascii_case("HEAD");
    for (name, _) in &r.headers {
        if name.to_ascii_lowercase().starts_with("x-accel-") {
            problems.add("x-accel", format!("{name} reached the client"));
        }
    }
    match expect {
        Expect::Served(s) => check_served(&mut problems, s, head, r, shape),
        Expect::WholeOrUnsatisfiable(s) => {
            if r.status == 416 {
                check_unsatisfiable(&mut problems, &s.file, r);
            } else {
                let whole = Served {
                    range: None,
                    ..s.clone()
                };
                check_served(&mut problems, &whole, head, r, shape);
            }
        }
        Expect::NotModified(file) => {
            problems.status(r, &[304]);
            if !r.body.is_empty() || r.framing != Framing::NoBody {
                problems.add("body", format!("a 304 has no body, got {:?}", r.framing));
            }
            problems.exact(r, "etag", Some(&etag_of(file)));
            problems.absent(r, "content-range");
            // nginx's not-modified filter clears them: they describe a body.
            problems.absent(r, "accept-ranges");
            problems.absent(r, "content-type");
            check_vary(&mut problems, r, shape);
            check_cache(&mut problems, r, shape);
        }
        Expect::PreconditionFailed => {
            problems.status(r, &[412]);
            problems.absent(r, "content-range");
        }
        Expect::Unsatisfiable(file) => check_unsatisfiable(&mut problems, file, r),
        Expect::NotFound => problems.status(r, &[404]),
        Expect::MethodNotAllowed => {
            problems.status(r, &[405]);
            let allow: BTreeSet<String> = tokens(r, "allow").into_iter().collect();
            let want: BTreeSet<String> = ["get", "head"].map(String::from).into();
            if allow != want {
                problems.add(
                    "allow",
                    format!("{:?}, want GET, HEAD", r.header_all("allow")),
                );
            }
        }
        Expect::SlashRedirect(path) => {
            problems.status(r, &[301]);
            let want = format!("{path}/");
            match r.header("location") {
                Some(l) if l.ends_with(&want) => {}
                other => problems.add("location", format!("{other:?}, want …{want}")),
            }
        }
    }
    problems.0
}

fn check_unsatisfiable(problems: &mut Problems, file: &Path, r: &Response) {
    problems.status(r, &[416]);
    let size = std::fs::metadata(file).expect("stat").len();
    problems.exact(r, "content-range", Some(&format!("bytes */{size}")));
}

fn check_served(problems: &mut Problems, s: &Served, head: bool, r: &Response, shape: RouteShape) {
    let size = std::fs::metadata(&s.file).expect("stat").len();
    let (first, last) = s.range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { last + 1 - first };
    problems.status(r, &[if s.range.is_some() { 206 } else { 200 }]);
    match r.header("content-type").map(|v| media_type(&v)) {
        Some((media, charset)) => {
            if !s.media.contains(&media.as_str()) {
                problems.add(
                    "content-type",
                    format!("{media:?}, want one of {:?}", s.media),
                );
            }
            if charset.as_deref() != s.charset {
                problems.add("charset", format!("{charset:?}, want {:?}", s.charset));
            }
        }
        None => problems.add("content-type", "missing".to_owned()),
    }
    problems.exact(r, "content-length", Some(&length.to_string()));
    let range = s.range.map(|(a, b)| format!("bytes {a}-{b}/{size}"));
    problems.exact(r, "content-range", range.as_deref());
    problems.exact(r, "etag", Some(&etag_of(&s.file)));
    problems.exact(r, "last-modified", Some(&last_modified_of(&s.file)));
    problems.exact(r, "accept-ranges", Some("bytes"));
    problems.exact(r, "content-encoding", s.coding);
    check_vary(problems, r, shape);
    check_cache(problems, r, shape);
    if head {
        if !r.body.is_empty() {
            problems.add("body", format!("HEAD got {} body bytes", r.body.len()));
        }
    } else if r.status == 200 || r.status == 206 {
        let want = if length == 0 {
            Vec::new()
        } else {
            read_range(&s.file, first, last)
        };
        if r.body != want {
            let at = r.body.iter().zip(&want).position(|(a, b)| a != b);
            problems.add(
                "body",
                format!(
                    "{} bytes (sha256 {}), want {} bytes of {} (sha256 {}); first difference at {at:?}",
                    r.body.len(),
                    sha256_hex(&r.body),
                    want.len(),
                    s.file.display(),
                    sha256_hex(&want)
                ),
            );
        }
    }
}

fn check_vary(problems: &mut Problems, r: &Response, shape: RouteShape) {
    let varies = tokens(r, "vary").iter().any(|t| t == "accept-encoding");
    if varies != shape.vary {
        let want = if shape.vary { "with" } else { "without" };
        problems.add(
            "vary",
            format!("{:?}, want {want} Accept-Encoding", r.header_all("vary")),
        );
    }
}

/// Cache-Control and Expires as the route's `expires` / `immutable` say (or as the app sent
/// them, for X-Accel-Redirect).
fn check_cache(problems: &mut Problems, r: &Response, shape: RouteShape) {
    if let Some(app) = shape.app_cache_control {
        let want: Vec<String> = app
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        if tokens(r, "cache-control") != want {
            problems.add(
                "cache-control",
                format!(
                    "{:?}, want the app's {app:?}",
                    r.header_all("cache-control")
                ),
            );
        }
        problems.absent(r, "expires");
        return;
    }
    let Some(max_age) = shape.max_age else {
        problems.absent(r, "cache-control");
        problems.absent(r, "expires");
        return;
    };
    let mut want = vec![format!("max-age={max_age}")];
    if shape.immutable {
        want.push("immutable".to_owned());
    }
    let got = tokens(r, "cache-control");
    if got != want {
        problems.add(
            "cache-control",
            format!(
                "{:?}, want {:?}",
                r.header_all("cache-control"),
                want.join(", ")
            ),
        );
    }
    let date = r.header("date").and_then(|d| parse_http_date(&d));
    let expires = r.header("expires").and_then(|d| parse_http_date(&d));
    match (date, expires) {
        (Some(date), Some(expires)) if expires.abs_diff(date + max_age) <= 1 => {}
        _ => problems.add(
            "expires",
            format!(
                "{:?} with Date {:?}, want Date + {max_age} s",
                r.header("expires"),
                r.header("date")
            ),
        ),
    }
}

/// The problems found so far, with small helpers to add them.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: &'static str, detail: String) {
        self.0.push(Problem { field, detail });
    }

    fn status(&mut self, r: &Response, want: &[u16]) {
        if !want.contains(&r.status) {
            self.add("status", format!("{}, want {want:?}", r.status));
        }
    }

    /// Header `name` has exactly the value `want` (`None`: absent), and only one.
    fn exact(&mut self, r: &Response, name: &'static str, want: Option<&str>) {
        let got = r.header_all(name);
        let ok = match want {
            Some(want) => got.len() == 1 && got[0] == want,
            None => got.is_empty(),
        };
        if !ok {
            self.add(name, format!("{got:?}, want {want:?}"));
        }
    }

    fn absent(&mut self, r: &Response, name: &'static str) {
        self.exact(r, name, None);
    }
}

/// Panics with every problem of `r` against `expect`, the request and the answer.
pub fn assert_answer(expect: &Expect, method: &str, r: &Response, shape: RouteShape, what: &str) {
    let problems = check(expect, method, r, shape);
    assert!(
        problems.is_empty(),
        "{what}: want {expect:?}\n  {}\ngot {r:?}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_parse_with_their_charset() {
        assert_eq!(
            media_type("Text/Plain; Charset=\"UTF-8\""),
            ("text/plain".to_owned(), Some("utf-8".to_owned()))
        );
        assert_eq!(media_type("image/png"), ("image/png".to_owned(), None));
        assert_eq!(media_for("a/b.TXT").0, ["text/plain"]);
        assert_eq!(media_for(".env").0, ["application/octet-stream"]);
        assert_eq!(media_for("data/README").0, ["application/octet-stream"]);
    }
}
