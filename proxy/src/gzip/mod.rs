//! Compressing the app's answers and files as they go out, as nginx's gzip module does (`gzip on`
//! with `gzip_types`, `gzip_min_length`, `gzip_comp_level`, `gzip_vary`, `gzip_proxied`,
//! and its default `gzip_http_version 1.1`).
//!
//! Whether an answer is compressed is a pure function of the settings, the request and the
//! answer's head ([`Gzip::verdict`], nginx's order of checks); the compressing is
//! [`GzipStream`], and `exchange/body_out.rs` frames what it makes (for files,
//! `exchange/static_file.rs`).

mod stream;

pub(crate) use stream::{GzipStream, release_idle};

use crate::config::GzipSettings;
use crate::http::{HeaderSpan, list_elements, parse_http_date, trim_ows};

/// nginx's `gzip_min_length` default.
const DEFAULT_MIN_LENGTH: u64 = 20;
/// nginx's `gzip_comp_level` default: zlib's fastest.
const DEFAULT_LEVEL: u32 = 1;

/// Names of one type: listing one lists them all. nginx's `mime.types` says
/// `application/javascript` and `text/xml` where ringway's files (and Python's `mimetypes`)
/// may say `text/javascript` and `application/xml`: a `gzip_types` line copied from an
/// nginx config must still match them.
const SAME_TYPE: [&[&str]; 2] = [
    &[
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
    ],
    &["text/xml", "application/xml"],
];

/// How much a body shrank, as nginx's `$gzip_ratio` says it: its plain bytes over the gzip
/// member's (header and trailer included: nginx's zlib writes them and counts them), in
/// hundredths rounded as nginx rounds them.
// Hundredths plus one, so that an `Option` of it takes 4 bytes: a request's future holds
// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GzipRatio(std::num::NonZeroU32);

impl GzipRatio {
    /// The ratio of `plain` bytes to the `member` bytes made of them; `None` for none.
    pub(crate) fn of(plain: u64, member: u64) -> Option<GzipRatio> {
        if member == 0 {
            return None;
        }
        // nginx (`ngx_http_gzip_ratio_variable`): the whole part and two decimals, the
        // second rounded on the third (2.125 to 2.13).
        let mut whole = plain / member;
        let mut hundredths = plain.saturating_mul(100) / member % 100;
        if plain.saturating_mul(1000) / member % 10 > 4 {
            hundredths += 1;
            if hundredths > 99 {
                whole += 1;
                hundredths = 0;
            }
        }
        let total = whole.saturating_mul(100).saturating_add(hundredths);
        let total = u32::try_from(total).unwrap_or(u32::MAX - 1);
        Some(GzipRatio(std::num::NonZeroU32::MIN.saturating_add(total)))
    }
}

impl std::fmt::Display for GzipRatio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hundredths = self.0.get() - 1;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

/// The validated `[gzip]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gzip {
    /// Media types compressed, lower case; `text/html` always among them.
    types: Vec<String>,
    /// `"*"` was listed: any type.
    any_type: bool,
    min_length: u64,
    level: u32,
    vary: bool,
    proxied: Proxied,
}

/// Which answers to requests that came through a proxy (with a `Via` header) are
/// compressed: nginx's `gzip_proxied` flags. None set: `off`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Proxied {
    any: bool,
    expired: bool,
    no_cache: bool,
    no_store: bool,
    private: bool,
    no_last_modified: bool,
    no_etag: bool,
    auth: bool,
}

/// What the request says about compression.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Asked<'a> {
    pub(crate) accept_encoding: Option<&'a [u8]>,
    /// HTTP/1.1 (nginx's `gzip_http_version 1.1`: a 1.0 client gets the answer as it is).
    pub(crate) http11: bool,
    /// It came through a proxy (`Via`).
    pub(crate) via: bool,
    pub(crate) authorization: bool,
}

/// What the answer's head says about compression.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answer<'a> {
    pub(crate) status: u16,
    /// The Content-Length, when it said one.
    pub(crate) length: Option<u64>,
    pub(crate) content_type: Option<&'a [u8]>,
    pub(crate) content_encoding: Option<&'a [u8]>,
    pub(crate) expires: Option<&'a [u8]>,
    pub(crate) date: Option<&'a [u8]>,
    /// Cache-Control lists `no-cache`, `no-store`, `private`; whether there was one at all.
    pub(crate) cache_control: Option<CacheControl>,
    pub(crate) last_modified: bool,
    pub(crate) etag: bool,
}

/// The Cache-Control directives `gzip_proxied` looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheControl {
    no_cache: bool,
    no_store: bool,
    private: bool,
}

impl CacheControl {
    /// Adds the directives of one Cache-Control header's `value`.
    pub(crate) fn add(&mut self, value: &[u8]) {
        // Bare directives only, as nginx looks for them: `no-cache="Set-Cookie"` is not
        // `no-cache`.
        for directive in list_elements(value) {
            self.no_cache |= directive.eq_ignore_ascii_case(b"no-cache");
            self.no_store |= directive.eq_ignore_ascii_case(b"no-store");
            self.private |= directive.eq_ignore_ascii_case(b"private");
        }
    }
}

/// The outcome for one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Compress it (Content-Encoding: gzip).
    pub(crate) compress: bool,
    /// Add `Vary: Accept-Encoding`: compressed or not, the answer is one a cache must keep
    /// apart by Accept-Encoding.
    pub(crate) vary: bool,
}

impl Default for Gzip {
    /// nginx's defaults: `text/html` only, from 20 bytes, level 1, no Vary, `proxied` off.
    fn default() -> Gzip {
        Gzip {
            types: vec!["text/html".to_owned()],
            any_type: false,
            min_length: DEFAULT_MIN_LENGTH,
            level: DEFAULT_LEVEL,
            vary: false,
            proxied: Proxied::default(),
        }
    }
}

impl Gzip {
    /// The settings checked; `Err` names the key and what is wrong.
    pub(crate) fn from_settings(s: &GzipSettings) -> Result<Gzip, (&'static str, String)> {
        let Gzip {
            mut types,
            mut any_type,
            ..
        } = Gzip::default();
        for t in &s.types {
            let t = t.trim().to_ascii_lowercase();
            if t == "*" {
                any_type = true;
            } else if t.contains('*') {
                return Err((
                    "types",
                    format!("{t:?}: a wildcard only stands alone (\"*\"); list each type"),
                ));
            } else if is_media_type(&t) {
                if !types.contains(&t) {
                    types.push(t);
                }
            } else {
                return Err((
                    "types",
                    format!("{t:?} is not a media type (type/subtype, no parameters) nor \"*\""),
                ));
            }
        }
        for names in SAME_TYPE {
            if names.iter().any(|n| types.iter().any(|t| t == n)) {
                for n in names {
                    if !types.iter().any(|t| t == n) {
                        types.push((*n).to_owned());
                    }
                }
            }
        }
        let level = s.level.unwrap_or(DEFAULT_LEVEL);
        if !(1..=9).contains(&level) {
            return Err(("level", format!("{level} is not from 1 to 9")));
        }
        Ok(Gzip {
            types,
            any_type,
            min_length: s.min_length.map_or(DEFAULT_MIN_LENGTH, |n| n.0),
            level,
            vary: s.vary,
            proxied: Proxied::parse(&s.proxied).map_err(|m| ("proxied", m))?,
        })
    }

    /// The compression level, 1 to 9, as zlib-rs is to be asked for it: nginx's level 1
    /// (zlib's `deflate_fast`) is zlib-rs's 2; zlib-rs's own 1 is a faster algorithm with
    /// fixed Huffman codes whose output is about a quarter larger than nginx's.
    pub(crate) fn level(&self) -> u32 {
        self.level.max(2)
    }

    /// Whether to compress the answer, and whether to say `Vary: Accept-Encoding`; `now`:
    /// seconds since the epoch (for `proxied = ["expired"]`).
    pub(crate) fn verdict(&self, asked: &Asked<'_>, answer: &Answer<'_>, now: u64) -> Verdict {
        // nginx's header filter: these leave the answer as it is, with no Vary. A HEAD
        // answer is decided as GET's, as nginx does: it says what GET's would say.
        let compressible = matches!(answer.status, 200 | 403 | 404)
            && answer
                .content_encoding
                .is_none_or(|e| trim_ows(e).is_empty())
            && answer.length.is_none_or(|n| n >= self.min_length)
            && self.takes_type(answer.content_type);
        if !compressible {
            return Verdict::default();
        }
        Verdict {
            compress: self.client_takes_it(asked, answer, now),
            vary: self.vary,
        }
    }

    fn takes_type(&self, content_type: Option<&[u8]>) -> bool {
        // As nginx: "*" takes any answer, one without a Content-Type too; a listed type
        // needs one.
        if self.any_type {
            return true;
        }
        let Some(media) = content_type.map(media_type).filter(|m| !m.is_empty()) else {
            return false;
        };
        self.types
            .iter()
            .any(|t| t.as_bytes().eq_ignore_ascii_case(media))
    }

    /// nginx's `ngx_http_gzip_ok` for `gzip_static on`, which asks it before any answer
    /// header is set: a `.gz` sibling goes to an HTTP/1.1 client that accepts gzip and
    /// came directly, or through a proxy when `proxied` is on at all (`gzip` is the route's
    /// settings; none: nginx's defaults, `proxied` off).
    pub(crate) fn takes_a_gzipped_file(gzip: Option<&Gzip>, asked: &Asked<'_>) -> bool {
        match gzip {
            Some(gzip) => gzip.client_takes_it(asked, &Answer::default(), 0),
            None => {
                asked.http11
                    && !asked.via
                    && asked
                        .accept_encoding
                        .is_some_and(|ae| crate::static_files::accepts(ae, "gzip"))
            }
        }
    }

    /// nginx's `ngx_http_gzip_ok`: the client accepts gzip, speaks HTTP/1.1, and either came
    /// directly or through a proxy that `proxied` lets through for this answer.
    fn client_takes_it(&self, asked: &Asked<'_>, answer: &Answer<'_>, now: u64) -> bool {
        let accepts = asked
            .accept_encoding
            .is_some_and(|ae| crate::static_files::accepts(ae, "gzip"));
        if !accepts || !asked.http11 {
            return false;
        }
        if !asked.via {
            return true;
        }
        let p = self.proxied;
        if p == Proxied::default() {
            return false; // `off`
        }
        if p.any || (p.auth && asked.authorization) {
            return true;
        }
        if let Some(expires) = answer.expires {
            // An answer already stale may be compressed, a cacheable one not; stale as of
            // its own Date when it has one, as nginx reads it.
            let date = answer.date.map_or(Some(now), parse_http_date);
            return p.expired
                && parse_http_date(expires)
                    .zip(date)
                    .is_some_and(|(at, date)| at < date);
        }
        if let Some(cc) = answer.cache_control {
            return (p.no_cache && cc.no_cache)
                || (p.no_store && cc.no_store)
                || (p.private && cc.private);
        }
        if p.no_last_modified && answer.last_modified {
            return false;
        }
        // nginx's own fall-through: no Expires, no Cache-Control, and no validator the
        // flags object to.
        !(p.no_etag && answer.etag)
    }
}

impl Proxied {
    fn parse(flags: &[String]) -> Result<Proxied, String> {
        let mut p = Proxied::default();
        let mut off = false;
        for flag in flags {
            match flag.as_str() {
                f if crate::config::is_off(f) => off = true,
                "any" => p.any = true,
                "expired" => p.expired = true,
                "no-cache" => p.no_cache = true,
                "no-store" => p.no_store = true,
                "private" => p.private = true,
                "no_last_modified" => p.no_last_modified = true,
                "no_etag" => p.no_etag = true,
                "auth" => p.auth = true,
                other => {
                    return Err(format!(
                        "{other:?} is none of off, any, expired, no-cache, no-store, private, \
                         no_last_modified, no_etag, auth (nginx's gzip_proxied)"
                    ));
                }
            }
        }
        if off && p != Proxied::default() {
            return Err("\"off\" goes alone".to_owned());
        }
        Ok(p)
    }
}

impl<'a> Answer<'a> {
    /// The facts of an answer head: `headers` are spans into `buf`.
    pub(crate) fn read(
        status: u16,
        length: Option<u64>,
        buf: &'a [u8],
        headers: &[HeaderSpan],
    ) -> Answer<'a> {
        let mut answer = Answer {
            status,
            length,
            ..Answer::default()
        };
        for h in headers {
            let name = h.name.of(buf);
            let value = h.value.of(buf);
            if name.eq_ignore_ascii_case(b"content-type") {
                answer.content_type.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"content-encoding") {
                // Any line naming a coding counts: an empty first one hid a `br` after it,
                // and the answer was compressed twice (found by review).
                if answer
                    .content_encoding
                    .is_none_or(|e| trim_ows(e).is_empty())
                {
                    answer.content_encoding = Some(value);
                }
            } else if name.eq_ignore_ascii_case(b"expires") {
                answer.expires.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"date") {
                answer.date.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"cache-control") {
                answer.cache_control.get_or_insert_default().add(value);
            } else if name.eq_ignore_ascii_case(b"last-modified") {
                answer.last_modified = true;
            } else if name.eq_ignore_ascii_case(b"etag") {
                answer.etag = true;
            }
        }
        answer
    }
}

/// The part of a Content-Type value nginx matches `gzip_types` against: the value without
/// a `charset` parameter and what follows it (`text/html; charset=utf-8` is `text/html`),
/// any other parameter kept (`text/html; q=1` matches no listed type), as
/// `ngx_http_upstream_copy_content_type` cuts it.
fn media_type(value: &[u8]) -> &[u8] {
    let mut from = 0;
    while let Some(semi) = value
        .get(from..)
        .and_then(|v| v.iter().position(|&b| b == b';'))
    {
        let at = from + semi;
        let rest = value.get(at + 1..).unwrap_or_default();
        let spaces = rest.iter().take_while(|&&b| b == b' ').count();
        let param = rest.get(spaces..).unwrap_or_default();
        if param
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"charset="))
        {
            return trim_ows(value.get(..at).unwrap_or_default());
        }
        from = at + 1;
    }
    trim_ows(value)
}

/// `type/subtype`, both tokens.
fn is_media_type(t: &str) -> bool {
    let mut parts = t.split('/');
    let token =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(crate::http::is_token));
    token(parts.next()) && token(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
