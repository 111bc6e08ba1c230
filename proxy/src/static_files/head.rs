//! The head of a file answer (200, 206, 304), its content type, and which precompressed
//! sibling the client accepts.

use std::borrow::Cow;
use std::io::Write;

use super::decision::{FileMeta, Validators};
use crate::clock::http_date_at;
use crate::http::{Version, http_date, reason_phrase};

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
    /// The file sent.
    pub(crate) meta: FileMeta,
    /// Its validators.
    pub(crate) validators: &'a Validators,
    /// The bytes sent, for a 206.
    pub(crate) range: Option<(u64, u64)>,
    /// `expires`: max-age seconds and `immutable`.
    pub(crate) cache: Option<(u64, bool)>,
    /// `Vary: Accept-Encoding` (a route with precompressed siblings).
    pub(crate) vary: bool,
    /// Keep the connection open.
    pub(crate) keep_alive: bool,
    /// Now, seconds since the epoch (Date and Expires).
    pub(crate) now: u64,
    /// More headers, written as given.
    pub(crate) extra: &'a [(&'a [u8], &'a [u8])],
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
    let reason = reason_phrase(h.status).unwrap_or("");
    let _ = write!(
        out,
        "HTTP/1.1 {} {reason}\r\nServer: ringway\r\nDate: ",
        h.status
    );
    out.extend_from_slice(&http_date_at(h.now));
    out.extend_from_slice(b"\r\n");
    if let Some(content_type) = h.content_type.filter(|_| h.status != 304) {
        let _ = write!(out, "Content-Type: {content_type}\r\n");
    }
    if h.status != 304 {
        let _ = write!(out, "Content-Length: {}\r\n", h.body_len());
    }
    if let Some((start, end)) = h.range {
        let _ = write!(
            out,
            "Content-Range: bytes {start}-{end}/{}\r\n",
            h.meta.size
        );
    }
    // A 304 describes the stored answer by its validators; it has no body to encode.
    if let Some(encoding) = h.encoding.filter(|_| h.status != 304) {
        let _ = write!(out, "Content-Encoding: {encoding}\r\n");
    }
    out.extend_from_slice(b"Last-Modified: ");
    out.extend_from_slice(h.validators.last_modified());
    out.extend_from_slice(b"\r\nETag: ");
    out.extend_from_slice(h.validators.etag());
    out.extend_from_slice(b"\r\nAccept-Ranges: bytes\r\n");
    if let Some((max_age, immutable)) = h.cache {
        let immutable = if immutable { ", immutable" } else { "" };
        let _ = write!(
            out,
            "Cache-Control: max-age={max_age}{immutable}\r\nExpires: "
        );
        out.extend_from_slice(&http_date(h.now.saturating_add(max_age)));
        out.extend_from_slice(b"\r\n");
    }
    if h.vary {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    for (name, value) in h.extra {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !h.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if h.client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The Content-Type for a file name, from its extension, with `charset=utf-8` on text.
pub(crate) fn content_type(name: &[u8]) -> Cow<'static, str> {
    let ext = name
        .rsplit(|&b| b == b'/')
        .next()
        .and_then(|file| {
            file.iter()
                .rposition(|&b| b == b'.')
                .map(|dot| &file[dot + 1..])
        })
        .and_then(|ext| std::str::from_utf8(ext).ok())
        .unwrap_or("");
    let media = common_media_type(ext).unwrap_or_else(|| {
        mime_guess::from_ext(ext)
            .first_raw()
            .unwrap_or("application/octet-stream")
    });
    // The common text types without an allocation per request.
    let with_charset = match media {
        "text/css" => "text/css; charset=utf-8",
        "text/html" => "text/html; charset=utf-8",
        "text/plain" => "text/plain; charset=utf-8",
        "text/javascript" => "text/javascript; charset=utf-8",
        "application/javascript" => "application/javascript; charset=utf-8",
        "application/json" => "application/json; charset=utf-8",
        "image/svg+xml" => "image/svg+xml; charset=utf-8",
        "application/xml" => "application/xml; charset=utf-8",
        "application/manifest+json" => "application/manifest+json; charset=utf-8",
        other if other.starts_with("text/") => {
            return Cow::Owned(format!("{other}; charset=utf-8"));
        }
        other => other,
    };
    Cow::Borrowed(with_charset)
}

/// The media types of a site's most served extensions, found without mime_guess's search of
/// its whole table (the same answers as mime_guess; the unit tests compare them).
fn common_media_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "css" => "text/css",
        "js" => "text/javascript",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain",
        _ => return None,
    })
}

/// Whether an Accept-Encoding value accepts `coding` (named, or through `*`, with q > 0).
pub(crate) fn accepts(accept_encoding: &[u8], coding: &str) -> bool {
    let mut named = None;
    let mut any = None;
    for item in accept_encoding.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let token = parts.next().map(<[u8]>::trim_ascii).unwrap_or_default();
        let q = parts
            .filter_map(|p| {
                let p = p.trim_ascii();
                let v = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))?;
                std::str::from_utf8(v).ok()?.trim().parse::<f32>().ok()
            })
            .next()
            .unwrap_or(1.0);
        if token.eq_ignore_ascii_case(coding.as_bytes()) {
            named = Some(q);
        } else if token == b"*" {
            any = Some(q);
        }
    }
    named.or(any).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_types_are_mime_guess_s() {
        for ext in [
            "css", "js", "html", "htm", "json", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp",
            "woff2", "txt",
        ] {
            assert_eq!(
                super::common_media_type(ext),
                mime_guess::from_ext(ext).first_raw(),
                "{ext}"
            );
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(b"a/b.css"), "text/css; charset=utf-8");
        assert_eq!(content_type(b"x.json"), "application/json; charset=utf-8");
        assert_eq!(content_type(b"i.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type(b"p.png"), "image/png");
        assert_eq!(content_type(b"noext"), "application/octet-stream");
        assert_eq!(content_type(b"dir.d/noext"), "application/octet-stream");
        assert_eq!(content_type(b"x.UNKNOWNEXT"), "application/octet-stream");
    }

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
            meta,
            validators: &Validators::of(&meta),
            range: Some((10, 19)),
            cache: Some((2_592_000, true)),
            vary: true,
            keep_alive: true,
            now: 784_111_777,
            extra: &[(b"X-A", b"1")],
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
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(text.ends_with("\r\n\r\n") && !text.contains("Connection"));
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
}
