//! The head of a file answer (200, 206, 304), its content type, and which precompressed
//! sibling the client accepts.

use super::decision::{FileMeta, Validators};
use crate::clock::http_date_at;
use crate::config::{CacheFor, Expires};
use crate::http::ascii::push_u64;
use crate::http::{Version, http_date, reason_phrase, write_header};

/// What a file answer's head says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileHead<'a> {
    /// 200, 206 or 304.
    pub(crate) status: u16,
    /// The client's version (for the Connection header).
    pub(crate) client_version: Version,
    /// Content-Type, `None` when the caller's `extra` carries one (X-Accel-Redirect).
    pub(crate) content_type: Option<&'a str>,
    /// Content-Encoding of a precompressed sibling.
    pub(crate) encoding: Option<&'static str>,
    /// The body is compressed on its way out (`[gzip]`), and this is how its length is
    /// told.
    pub(crate) gzipped: Option<Gzipped>,
    /// The file sent.
    pub(crate) meta: FileMeta,
    /// Its validators.
    pub(crate) validators: &'a Validators,
    /// The ETag goes out (nginx's `etag`).
    pub(crate) etag: bool,
    /// The bytes sent, for a 206.
    pub(crate) range: Option<(u64, u64)>,
    /// `expires` and `immutable`.
    pub(crate) cache: Option<(Expires, bool)>,
    /// `Vary: Accept-Encoding` (a route with precompressed siblings, or an answer `[gzip]`
    /// could compress).
    pub(crate) vary: bool,
    /// Keep the connection open.
    pub(crate) keep_alive: bool,
    /// Now, seconds since the epoch (Date and Expires).
    pub(crate) now: u64,
    /// More headers, written as given, in this order: the app's (X-Accel-Redirect), the
    /// request ID, Strict-Transport-Security, the route's `response_headers`. Apart, so
    /// that no request gathers them into a list of its own.
    pub(crate) extra: Extra<'a>,
}

/// The headers of a file answer that do not come from the file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extra<'a> {
    /// Headers an app set on the answer (X-Accel-Redirect), written as given.
    pub(crate) app: &'a [(&'a [u8], &'a [u8])],
    /// X-Request-ID.
    pub(crate) request_id: Option<&'a [u8]>,
    /// Strict-Transport-Security (on TLS connections, when configured).
    pub(crate) hsts: Option<&'a [u8]>,
    /// The route's `response_headers` for the answer's status (`Route::headers_for`).
    pub(crate) route: &'a [(String, String)],
}

/// A file compressed on its way out, as nginx's gzip filter sends it: the file's own
/// length, ranges and strong ETag no longer describe the bytes that go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gzipped {
    /// Compressed whole before the head (a small file): this many bytes.
    Length(u64),
    /// Compressed as it is read: in chunks.
    Chunked,
    /// A HEAD answer: the head GET's would have, whose length is not known.
    Head,
}

impl FileHead<'_> {
    /// Bytes of body this answer carries.
    pub(crate) fn body_len(&self) -> u64 {
        match (self.status, self.range) {
            (304, _) => 0,
            (_, Some((start, end))) => end - start + 1,
            _ => self.meta.size,
        }
    }
}

/// Appends the head.
pub(crate) fn write_file_head(out: &mut Vec<u8>, h: &FileHead<'_>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, h.status.into());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(h.status).unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\nServer: ringway\r\nDate: ");
    out.extend_from_slice(&http_date_at(h.now));
    out.extend_from_slice(b"\r\n");
    if let Some(content_type) = h.content_type.filter(|_| h.status != 304) {
        write_header(out, b"Content-Type", content_type.as_bytes());
    }
    let length = match h.gzipped {
        _ if h.status == 304 => None,
        None => Some(h.body_len()),
        Some(Gzipped::Length(n)) => Some(n),
        Some(Gzipped::Chunked) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            None
        }
        Some(Gzipped::Head) => None,
    };
    if let Some(length) = length {
        out.extend_from_slice(b"Content-Length: ");
        push_u64(out, length);
        out.extend_from_slice(b"\r\n");
    }
    if let Some((start, end)) = h.range {
        out.extend_from_slice(b"Content-Range: bytes ");
        push_u64(out, start);
        out.push(b'-');
        push_u64(out, end);
        out.push(b'/');
        push_u64(out, h.meta.size);
        out.extend_from_slice(b"\r\n");
    }
    // A 304 describes the stored answer by its validators; it has no body to encode.
    let encoding = h.encoding.or(h.gzipped.map(|_| "gzip"));
    if let Some(encoding) = encoding.filter(|_| h.status != 304) {
        write_header(out, b"Content-Encoding", encoding.as_bytes());
    }
    // Never later than the Date (RFC 9110 §8.8.2.1): a file written while the clock ran
    // ahead would have clients revalidate against a date still to come (found by review).
    match h.meta.mtime > h.now {
        true => write_header(out, b"Last-Modified", &http_date_at(h.now)),
        false => write_header(out, b"Last-Modified", h.validators.last_modified()),
    }
    if h.gzipped.is_some() {
        // Compressed bytes are not the file's bytes: the same entity only weakly (nginx
        // weakens the ETag the same way), and no ranges of them.
        if h.etag {
            out.extend_from_slice(b"ETag: W/");
            out.extend_from_slice(h.validators.etag());
            out.extend_from_slice(b"\r\n");
        }
    } else {
        if h.etag {
            write_header(out, b"ETag", h.validators.etag());
        }
        // Not on a 304, which has no body to take ranges of (nginx's not-modified filter
        // clears it; found by review).
        if h.status != 304 {
            out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
        }
    }
    if let Some((cache, until)) = h.cache.and_then(|(e, immutable)| {
        e.at(h.now)
            .map(|(cache, until)| ((cache, immutable), until))
    }) {
        out.extend_from_slice(b"Cache-Control: ");
        push_cache_control(out, cache);
        out.extend_from_slice(b"\r\n");
        write_header(out, b"Expires", &http_date(until));
    }
    if h.vary {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    let extra = &h.extra;
    for (name, value) in extra.app {
        // The app's type of an X-Accel-Redirect file goes as ringway's own would: not on a
        // 304 (nginx clears the type there).
        if h.status == 304 && name.eq_ignore_ascii_case(b"content-type") {
            continue;
        }
        write_header(out, name, value);
    }
    if let Some(id) = extra.request_id {
        write_header(out, b"X-Request-ID", id);
    }
    if let Some(hsts) = extra.hsts {
        write_header(out, b"Strict-Transport-Security", hsts);
    }
    for (name, value) in extra.route {
        write_header(out, name.as_bytes(), value.as_bytes());
    }
    if !h.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if h.client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The value of the `Cache-Control` an `expires` sets (with `immutable` after a max-age).
pub(crate) fn push_cache_control(out: &mut Vec<u8>, (cache, immutable): (CacheFor, bool)) {
    match cache {
        CacheFor::MaxAge(secs) => {
            out.extend_from_slice(b"max-age=");
            push_u64(out, secs);
            if immutable {
                out.extend_from_slice(b", immutable");
            }
        }
        // A stale answer is not immutable.
        CacheFor::NoCache => out.extend_from_slice(b"no-cache"),
    }
}

/// Whether an Accept-Encoding value accepts `coding` (named, or through `*`, with q > 0).
pub(crate) fn accepts(accept_encoding: &[u8], coding: &str) -> bool {
    let mut named = None;
    let mut any = None;
    for item in accept_encoding.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let token = parts.next().map(<[u8]>::trim_ascii).unwrap_or_default();
        // The weight is the one parameter a coding takes (RFC 9110 §12.5.3); anything
        // else, or a weight that is no qvalue (`q=1.5`, `q=inf`), takes the coding out,
        // as nginx reads it.
        let q = parts.try_fold(1000, |_, p| {
            let p = p.trim_ascii();
            let v = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))?;
            qvalue(v)
        });
        let q = q.unwrap_or(0);
        if token.eq_ignore_ascii_case(coding.as_bytes()) {
            named = Some(q);
        } else if token == b"*" {
            any = Some(q);
        }
    }
    named.or(any).is_some_and(|q| q > 0)
}

/// A qvalue (`0`, `0.5`, `1`, `1.000`: RFC 9110 §12.4.2) in thousandths.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.split_first()? {
        (b'0', rest) => (0, rest),
        (b'1', rest) => (1000, rest),
        _ => return None,
    };
    let digits = match fraction {
        [] => return Some(whole),
        [b'.', digits @ ..] if digits.len() <= 3 && digits.iter().all(u8::is_ascii_digit) => digits,
        _ => return None,
    };
    let thousandths = digits
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (whole == 0 || thousandths == 0).then_some(whole + thousandths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding() {
        assert!(accepts(b"gzip, deflate, br", "br"));
        assert!(accepts(b"gzip;q=0.5", "gzip"));
        assert!(!accepts(b"gzip;q=0", "gzip"));
        assert!(!accepts(b"br;q=0, gzip", "br"));
        assert!(accepts(b"*", "br"));
        assert!(!accepts(b"*;q=0", "br"));
        assert!(!accepts(b"*, br;q=0", "br"), "named wins over *");
        assert!(accepts(b"GZIP", "gzip"));
        assert!(!accepts(b"", "gzip"));
        // Only a qvalue weighs a coding, as nginx reads it (found by review).
        assert!(accepts(b"gzip;q=1.000", "gzip"));
        assert!(accepts(b"gzip; q=0.001", "gzip"));
        for refused in [
            &b"gzip;q=1.5"[..],
            b"gzip;q=inf",
            b"gzip;q=1e-9",
            b"gzip;q=0.0000",
            b"gzip;q=.5",
            b"gzip;level=1",
        ] {
            assert!(
                !accepts(refused, "gzip"),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        assert!(!accepts(b"identity", "gzip"));
    }

    #[test]
    fn heads() {
        let meta = FileMeta {
            size: 1000,
            mtime: 784_111_777,
        };
        let head = FileHead {
            status: 206,
            client_version: Version::Http11,
            content_type: Some("text/css; charset=utf-8"),
            encoding: Some("gzip"),
            gzipped: None,
            meta,
            validators: &Validators::of(&meta),
            etag: true,
            range: Some((10, 19)),
            cache: Some((Expires::For(2_592_000), true)),
            vary: true,
            keep_alive: true,
            now: 784_111_777,
            extra: Extra {
                app: &[(b"X-A", b"1")],
                request_id: Some(b"abc"),
                hsts: None,
                route: &[("X-B".to_owned(), "2".to_owned())],
            },
        };
        let mut out = Vec::new();
        write_file_head(&mut out, &head);
        let text = String::from_utf8(out).unwrap();
        for line in [
            "HTTP/1.1 206 Partial Content\r\n",
            "Content-Length: 10\r\n",
            "Content-Range: bytes 10-19/1000\r\n",
            "Content-Encoding: gzip\r\n",
            "ETag: \"2ebc98a1-3e8\"\r\n",
            "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
            "Cache-Control: max-age=2592000, immutable\r\n",
            "Expires: Tue, 06 Dec 1994 08:49:37 GMT\r\n",
            "Vary: Accept-Encoding\r\n",
            "X-A: 1\r\n",
            "X-Request-ID: abc\r\n",
            "X-B: 2\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(text.ends_with("\r\n\r\n") && !text.contains("Connection"));
        // nginx's `etag off`: no ETag, the rest as ever.
        let mut out = Vec::new();
        write_file_head(
            &mut out,
            &FileHead {
                etag: false,
                ..head
            },
        );
        let without = String::from_utf8(out).unwrap();
        assert!(!without.contains("ETag"), "{without}");
        assert!(without.contains("Last-Modified: "), "{without}");
        // nginx's other forms: a negative time, epoch and max.
        for (expires, cache_control, date) in [
            (
                Expires::Stale(1),
                "no-cache",
                "Sun, 06 Nov 1994 08:49:36 GMT",
            ),
            (Expires::Epoch, "no-cache", "Thu, 01 Jan 1970 00:00:01 GMT"),
            (
                Expires::Max,
                "max-age=315360000",
                "Thu, 31 Dec 2037 23:55:55 GMT",
            ),
            (
                Expires::For(0),
                "max-age=0",
                "Sun, 06 Nov 1994 08:49:37 GMT",
            ),
        ] {
            let mut out = Vec::new();
            let head = FileHead {
                cache: Some((expires, false)),
                ..head
            };
            write_file_head(&mut out, &head);
            let text = String::from_utf8(out).unwrap();
            let want = format!("Cache-Control: {cache_control}\r\n");
            assert!(text.contains(&want), "{want:?} in\n{text}");
            let want = format!("Expires: {date}\r\n");
            assert!(text.contains(&want), "{want:?} in\n{text}");
        }
        let mut out = Vec::new();
        write_file_head(
            &mut out,
            &FileHead {
                cache: Some((Expires::Off, true)),
                ..head
            },
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("Cache-Control") && !text.contains("Expires"),
            "{text}"
        );
        let mut out = Vec::new();
        write_file_head(
            &mut out,
            &FileHead {
                status: 304,
                range: None,
                ..head
            },
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Content-Length") && !text.contains("Content-Type"));
        assert!(text.contains("ETag") && text.contains("Cache-Control"));
    }

    /// A file compressed on the way out: its length as compressed (or chunks, or none for
    /// HEAD), a weak ETag, no ranges, as nginx's gzip filter leaves the head.
    #[test]
    fn gzipped_heads() {
        let meta = FileMeta {
            size: 1000,
            mtime: 784_111_777,
        };
        let validators = Validators::of(&meta);
        let head = |gzipped| {
            let mut out = Vec::new();
            write_file_head(
                &mut out,
                &FileHead {
                    status: 200,
                    client_version: Version::Http11,
                    content_type: Some("text/css; charset=utf-8"),
                    encoding: None,
                    gzipped: Some(gzipped),
                    meta,
                    validators: &validators,
                    etag: true,
                    range: None,
                    cache: None,
                    vary: true,
                    keep_alive: true,
                    now: 784_111_777,
                    extra: Extra::default(),
                },
            );
            String::from_utf8(out).unwrap()
        };
        for (gzipped, framing) in [
            (Gzipped::Length(321), Some("Content-Length: 321\r\n")),
            (Gzipped::Chunked, Some("Transfer-Encoding: chunked\r\n")),
            (Gzipped::Head, None),
        ] {
            let text = head(gzipped);
            for line in [
                "Content-Encoding: gzip\r\n",
                "ETag: W/\"2ebc98a1-3e8\"\r\n",
                "Vary: Accept-Encoding\r\n",
            ]
            .into_iter()
            .chain(framing)
            {
                assert!(text.contains(line), "{line:?} in\n{text}");
            }
            assert!(!text.contains("Accept-Ranges"), "{text}");
            assert_eq!(
                text.matches("Content-Length").count() + text.matches("Transfer-Encoding").count(),
                usize::from(framing.is_some()),
                "{text}"
            );
        }
    }
}
