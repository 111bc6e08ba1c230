//! What to answer for a file: the request's conditional and range headers against the
//! file's validators, in the order RFC 9110 §13.2.2 gives, and byte ranges (§14). Pure: the
//! request's header values and the file's size, mtime and ETag in, a decision out.
//!
//! Choices where the RFC leaves room, and how nginx compares: several ranges get the whole
//! file (200), as nginx with `max_ranges 1` (multipart answers cost much and serve little);
//! a malformed Range is ignored (200; nginx answers 416); a range of an empty file gets the
//! empty file (200, as nginx); If-Modified-Since follows the RFC (304 when the file is not
//! newer; nginx's default wants the exact date).

use std::io::Write;

use crate::http::{HTTP_DATE_LEN, http_date, parse_http_date};

/// A file's validators and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileMeta {
    /// Size in bytes.
    pub(crate) size: u64,
    /// Last modification, seconds since the epoch.
    pub(crate) mtime: u64,
}

/// Longest ETag: two quoted 16-digit hex numbers and a dash.
pub(crate) const MAX_ETAG: usize = 2 + 16 + 1 + 16;

impl FileMeta {
    /// The strong ETag, as nginx builds it: `"<mtime hex>-<size hex>"`.
    pub(crate) fn etag(&self) -> ([u8; MAX_ETAG], usize) {
        let mut out = [0u8; MAX_ETAG];
        let mut cursor = &mut out[..];
        let _ = write!(cursor, "\"{:x}-{:x}\"", self.mtime, self.size);
        let len = MAX_ETAG - cursor.len();
        (out, len)
    }

    /// Last-Modified's value.
    pub(crate) fn last_modified(&self) -> [u8; HTTP_DATE_LEN] {
        http_date(self.mtime)
    }
}

/// A file's Last-Modified and ETag, formatted once when it is opened rather than per answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validators {
    last_modified: [u8; HTTP_DATE_LEN],
    etag: [u8; MAX_ETAG],
    etag_len: usize,
}

impl Validators {
    /// The validators of `meta`.
    pub(crate) fn of(meta: &FileMeta) -> Validators {
        let (etag, etag_len) = meta.etag();
        Validators {
            last_modified: meta.last_modified(),
            etag,
            etag_len,
        }
    }

    /// Last-Modified's value.
    pub(crate) fn last_modified(&self) -> &[u8] {
        &self.last_modified
    }

    /// ETag's value, quotes included.
    pub(crate) fn etag(&self) -> &[u8] {
        self.etag.get(..self.etag_len).unwrap_or_default()
    }
}

/// The request's conditional and range header values (each the first such header; list
/// headers repeated are rare enough, and a repeated one only ever makes a match likelier).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// If-Match.
    pub if_match: Option<&'a [u8]>,
    /// If-None-Match.
    pub if_none_match: Option<&'a [u8]>,
    /// If-Modified-Since.
    pub if_modified_since: Option<&'a [u8]>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<&'a [u8]>,
    /// Range.
    pub range: Option<&'a [u8]>,
    /// If-Range.
    pub if_range: Option<&'a [u8]>,
    /// The time of the answer, seconds since the epoch: an If-Modified-Since date later
    /// than it is ignored (RFC 7232 §3.3 calls it invalid), so that a Last-Modified a file
    /// had while the clock ran ahead does not keep its replacement from the client (found
    /// by review). `None`: not compared.
    pub now: Option<u64>,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition failed.
    PreconditionFailed,
    /// 416: the range is outside the file.
    Unsatisfiable,
}

/// Decides the answer to a GET or HEAD for a file with `meta` and the ETag `etag` (its
/// [`Validators::etag`], formatted once per opening rather than per request; empty when
/// the file goes without one, which no entity-tag matches).
pub(crate) fn decide(c: &Conditions<'_>, meta: &FileMeta, etag: &[u8]) -> Decision {
    // 1. If-Match, else 2. If-Unmodified-Since.
    if let Some(list) = c.if_match {
        if !list_matches(list, etag, Compare::Strong) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(date) = c.if_unmodified_since {
        match parse_http_date(date) {
            Some(date) if meta.mtime > date => return Decision::PreconditionFailed,
            // A date that does not parse is ignored (RFC 9110 §13.1.4).
            _ => {}
        }
    }
    // 3. If-None-Match, else 4. If-Modified-Since.
    if let Some(list) = c.if_none_match {
        if list_matches(list, etag, Compare::Weak) {
            return Decision::NotModified;
        }
    } else if let Some(date) = c.if_modified_since
        && parse_http_date(date)
            .is_some_and(|date| meta.mtime <= date && c.now.is_none_or(|now| date <= now))
    {
        return Decision::NotModified;
    }
    // 5. Range, if If-Range (when present) says the client's copy is current. RFC 9110
    // defines ranges for GET only, but a HEAD answer should carry the headers GET's would
    // (§9.3.2): HEAD gets the 206 head too, as from nginx.
    let Some(range) = c.range else {
        return Decision::Full;
    };
    if meta.size == 0 {
        return Decision::Full;
    }
    if let Some(validator) = c.if_range
        && !if_range_holds(validator, etag, meta)
    {
        return Decision::Full;
    }
    match parse_range(range, meta.size) {
        RangeSpec::One { start, end } => Decision::Partial { start, end },
        RangeSpec::Unsatisfiable => Decision::Unsatisfiable,
        RangeSpec::Ignored => Decision::Full,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    Strong,
    Weak,
}

/// Whether the If-Match / If-None-Match value `list` (`*` or entity-tags) matches `etag`.
fn list_matches(list: &[u8], etag: &[u8], compare: Compare) -> bool {
    let list = trim(list);
    if list == b"*" {
        return true;
    }
    if etag.is_empty() {
        return false;
    }
    list.split(|&b| b == b',').map(trim).any(|tag| {
        match (tag.strip_prefix(b"W/"), compare) {
            // A weak tag never matches strongly.
            (Some(_), Compare::Strong) => false,
            (Some(weak), Compare::Weak) => weak == etag,
            (None, _) => tag == etag,
        }
    })
}

/// If-Range: an entity-tag must match strongly, a date must be the file's exact date.
fn if_range_holds(validator: &[u8], etag: &[u8], meta: &FileMeta) -> bool {
    let validator = trim(validator);
    if validator.starts_with(b"\"") || validator.starts_with(b"W/") {
        return !etag.is_empty() && validator == etag;
    }
    parse_http_date(validator) == Some(meta.mtime)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    One { start: u64, end: u64 },
    Unsatisfiable,
    Ignored,
}

/// A Range value for a file of `size` bytes (> 0): one satisfiable range; several, or a
/// malformed value, are ignored (the whole file is sent).
fn parse_range(value: &[u8], size: u64) -> RangeSpec {
    let value = trim(value);
    let Some(unit_end) = value.iter().position(|&b| b == b'=') else {
        return RangeSpec::Ignored;
    };
    let (unit, specs) = (&value[..unit_end], &value[unit_end + 1..]);
    if !trim(unit).eq_ignore_ascii_case(b"bytes") || specs.contains(&b',') {
        return RangeSpec::Ignored;
    }
    let spec = trim(specs);
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeSpec::Ignored;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (
        number(first),
        number(last),
        first.is_empty(),
        last.is_empty(),
    ) {
        // bytes=-N: the last N bytes.
        (None, Some(n), true, false) => match n {
            0 => RangeSpec::Unsatisfiable,
            n => RangeSpec::One {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        },
        // bytes=A- and bytes=A-B.
        (Some(start), last, false, open) if open || last.is_some() => {
            let end = match last {
                Some(last) if last < start => return RangeSpec::Ignored,
                Some(last) => last.min(size - 1),
                None => size - 1,
            };
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::One { start, end }
            }
        }
        _ => RangeSpec::Ignored,
    }
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: FileMeta = FileMeta {
        size: 1000,
        mtime: 784_111_777,
    };
    const ETAG: &[u8] = b"\"2ebc98a1-3e8\"";
    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";
    const EARLIER: &[u8] = b"Sun, 06 Nov 1994 08:49:36 GMT";
    const LATER: &[u8] = b"Sun, 06 Nov 1994 08:49:38 GMT";

    #[test]
    fn without_an_etag_no_entity_tag_matches_as_with_nginx_etag_off() {
        let none =
            |if_match: Option<&[u8]>, if_none_match: Option<&[u8]>, if_range: Option<&[u8]>| {
                let c = Conditions {
                    if_match,
                    if_none_match,
                    range: if_range.map(|_| &b"bytes=0-1"[..]),
                    if_range,
                    ..Conditions::default()
                };
                decide(&c, &META, b"")
            };
        // If-Match: a tag fails (412), `*` holds.
        assert_eq!(
            none(Some(b"\"x\""), None, None),
            Decision::PreconditionFailed
        );
        assert_eq!(none(Some(b"*"), None, None), Decision::Full);
        // If-None-Match: nothing matches (200), `*` does (304); no empty or bare `W/` tag
        // matches the missing one.
        for list in [&b"\"x\""[..], b"W/", b",", b"\"\""] {
            assert_eq!(none(None, Some(list), None), Decision::Full, "{list:?}");
        }
        assert_eq!(none(None, Some(b"*"), None), Decision::NotModified);
        // If-Range with an entity-tag: the whole file.
        assert_eq!(none(None, None, Some(b"W/")), Decision::Full);
        assert_eq!(none(None, None, Some(b"\"\"")), Decision::Full);
    }

    #[test]
    fn etag_as_nginx_builds_it() {
        let (etag, len) = META.etag();
        assert_eq!(&etag[..len], ETAG);
        let (etag, len) = FileMeta {
            size: u64::MAX,
            mtime: u64::MAX,
        }
        .etag();
        assert_eq!(len, MAX_ETAG);
        assert!(etag.starts_with(b"\"ffffffffffffffff-"));
    }

    fn with(f: impl FnOnce(&mut Conditions<'static>)) -> Decision {
        let mut c = Conditions::default();
        f(&mut c);
        decide(&c, &META, Validators::of(&META).etag())
    }

    #[test]
    fn conditionals_in_rfc_order() {
        use Decision::*;
        type Case = (&'static str, Decision, fn(&mut Conditions<'static>));
        let cases: [Case; 20] = [
            ("none", Full, |_| {}),
            ("If-Match ok", Full, |c| c.if_match = Some(ETAG)),
            ("If-Match *", Full, |c| c.if_match = Some(b"*")),
            ("If-Match other", PreconditionFailed, |c| {
                c.if_match = Some(b"\"x\"")
            }),
            ("If-Match weak", PreconditionFailed, |c| {
                c.if_match = Some(b"W/\"2ebc98a1-3e8\"")
            }),
            ("If-Match in a list", Full, |c| {
                c.if_match = Some(b"\"a\", \"2ebc98a1-3e8\"")
            }),
            ("IUS same", Full, |c| c.if_unmodified_since = Some(DATE)),
            ("IUS earlier", PreconditionFailed, |c| {
                c.if_unmodified_since = Some(EARLIER)
            }),
            ("IUS bad date ignored", Full, |c| {
                c.if_unmodified_since = Some(b"yesterday")
            }),
            ("If-Match wins over IUS", Full, |c| {
                c.if_match = Some(ETAG);
                c.if_unmodified_since = Some(EARLIER);
            }),
            ("INM match", NotModified, |c| c.if_none_match = Some(ETAG)),
            ("INM weak match", NotModified, |c| {
                c.if_none_match = Some(b"W/\"2ebc98a1-3e8\"")
            }),
            ("INM *", NotModified, |c| c.if_none_match = Some(b"*")),
            ("INM other", Full, |c| c.if_none_match = Some(b"\"x\"")),
            ("IMS same", NotModified, |c| {
                c.if_modified_since = Some(DATE)
            }),
            ("IMS later", NotModified, |c| {
                c.if_modified_since = Some(LATER)
            }),
            ("IMS earlier", Full, |c| c.if_modified_since = Some(EARLIER)),
            ("IMS later than now: ignored", Full, |c| {
                c.if_modified_since = Some(LATER);
                c.now = Some(META.mtime);
            }),
            ("IMS not later than now", NotModified, |c| {
                c.if_modified_since = Some(DATE);
                c.now = Some(META.mtime);
            }),
            ("INM wins over IMS", Full, |c| {
                c.if_none_match = Some(b"\"x\"");
                c.if_modified_since = Some(LATER);
            }),
        ];
        for (name, want, set) in cases {
            assert_eq!(with(set), want, "{name}");
        }
        // 412 before 304.
        assert_eq!(
            with(|c| {
                c.if_match = Some(b"\"x\"");
                c.if_none_match = Some(ETAG);
            }),
            Decision::PreconditionFailed
        );
        // 304 before ranges.
        assert_eq!(
            with(|c| {
                c.if_none_match = Some(ETAG);
                c.range = Some(b"bytes=0-1");
            }),
            Decision::NotModified
        );
    }

    #[test]
    fn ranges() {
        use Decision::*;
        let cases: [(&str, Decision); 16] = [
            ("bytes=0-99", Partial { start: 0, end: 99 }),
            (
                "bytes=990-",
                Partial {
                    start: 990,
                    end: 999,
                },
            ),
            (
                "bytes=-10",
                Partial {
                    start: 990,
                    end: 999,
                },
            ),
            ("bytes=-5000", Partial { start: 0, end: 999 }),
            (
                "bytes=500-5000",
                Partial {
                    start: 500,
                    end: 999,
                },
            ),
            (
                "bytes=999-999",
                Partial {
                    start: 999,
                    end: 999,
                },
            ),
            ("BYTES=0-0", Partial { start: 0, end: 0 }),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=1000-2000", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=0-1,5-6", Full),
            ("bytes=5-1", Full),
            ("bytes=a-b", Full),
            ("bytes=-", Full),
            ("items=0-1", Full),
            ("bytes 0-1", Full),
        ];
        for (range, want) in cases {
            assert_eq!(with(|c| c.range = Some(range.as_bytes())), want, "{range}");
        }
    }

    #[test]
    fn if_range_and_empty_files() {
        let range = |if_range: &'static [u8]| {
            with(|c| {
                c.range = Some(b"bytes=0-9");
                c.if_range = Some(if_range);
            })
        };
        let partial = Decision::Partial { start: 0, end: 9 };
        assert_eq!(range(ETAG), partial);
        assert_eq!(range(DATE), partial);
        assert_eq!(range(b"\"stale\""), Decision::Full);
        assert_eq!(range(b"W/\"2ebc98a1-3e8\""), Decision::Full, "weak never");
        assert_eq!(range(EARLIER), Decision::Full);
        let c = Conditions {
            range: Some(b"bytes=0-9"),
            ..Conditions::default()
        };
        let empty = FileMeta { size: 0, mtime: 1 };
        assert_eq!(
            decide(&c, &empty, Validators::of(&empty).etag()),
            Decision::Full
        );
    }
}
