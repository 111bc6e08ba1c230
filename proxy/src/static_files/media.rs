//! A file's Content-Type: from its extension, by the built-in table (mime_guess's) or a
//! route's own `types` (nginx's `types {}` in a location, which replaces the table it
//! inherits), else the route's `default_type`; `charset=utf-8` on text.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// The type of a file whose extension no table knows, unless a route says otherwise (as
/// nginx's `default_type` in its stock nginx.conf).
const DEFAULT_TYPE: &str = "application/octet-stream";

/// How one static route types its files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MediaTypes {
    /// The route's own table, extension (lower case, without its dot) to media type, in
    /// place of the built-in one: `types = {}` knows no extension (nginx's `types {}`, with
    /// `default_type text/plain` the usual guard on users' uploads). `None`: the built-in.
    pub(crate) own: Option<BTreeMap<String, String>>,
    /// The type of a file whose extension the table does not know [default:
    /// `application/octet-stream`].
    pub(crate) default: Option<String>,
}

impl MediaTypes {
    /// The Content-Type of the file `name` (a path; its last segment's extension counts).
    pub(crate) fn content_type(&self, name: &[u8]) -> Cow<'_, str> {
        let ext = extension(name);
        let known = match &self.own {
            None => builtin_media_type(ext),
            Some(own) => own
                .get(ext.to_ascii_lowercase().as_str())
                .map(String::as_str),
        };
        let media = known.or(self.default.as_deref()).unwrap_or(DEFAULT_TYPE);
        // A type written with its parameters (`text/plain; charset=koi8-r`) is sent as
        // written.
        if media.contains(';') {
            return Cow::Borrowed(media);
        }
        with_charset(media)
    }
}

/// The Content-Type for a file name by the built-in table, with `charset=utf-8` on text.
pub(crate) fn content_type(name: &[u8]) -> Cow<'static, str> {
    let media = builtin_media_type(extension(name)).unwrap_or(DEFAULT_TYPE);
    with_charset(media)
}

/// The extension of the last segment of `name`, without its dot ("" for none, or one that
/// is not UTF-8).
fn extension(name: &[u8]) -> &str {
    name.rsplit(|&b| b == b'/')
        .next()
        .and_then(|file| {
            file.iter()
                .rposition(|&b| b == b'.')
                .map(|dot| &file[dot + 1..])
        })
        .and_then(|ext| std::str::from_utf8(ext).ok())
        .unwrap_or("")
}

/// The built-in table's type for `ext`, if it knows one.
fn builtin_media_type(ext: &str) -> Option<&'static str> {
    common_media_type(ext).or_else(|| mime_guess::from_ext(ext).first_raw())
}

/// `media` with `charset=utf-8` when it is text.
fn with_charset(media: &str) -> Cow<'_, str> {
    // The common text types without an allocation.
    Cow::Borrowed(match media {
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
    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn the_common_types_are_mime_guess_s() {
        for ext in [
            "css", "js", "html", "htm", "json", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp",
            "woff2", "txt",
        ] {
            assert_eq!(
                common_media_type(ext),
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
        assert_eq!(content_type(b"x.PNG"), "image/png");
        let builtin = MediaTypes::default();
        for name in [&b"a/b.css"[..], b"p.png", b"noext", b"x.csv"] {
            assert_eq!(builtin.content_type(name), content_type(name));
        }
    }

    #[test]
    fn a_routes_own_table_replaces_the_built_in_one() {
        // nginx's guard on users' uploads: `types {} default_type text/plain;`.
        let uploads = MediaTypes {
            own: Some(BTreeMap::new()),
            default: Some("text/plain".into()),
        };
        for name in [&b"evil.html"[..], b"x.svg", b"a.js", b"noext"] {
            assert_eq!(uploads.content_type(name), "text/plain; charset=utf-8");
        }
        let own = MediaTypes {
            own: Some(BTreeMap::from([
                ("pdf".to_owned(), "application/pdf".to_owned()),
                ("txt".to_owned(), "text/plain; charset=koi8-r".to_owned()),
                ("log".to_owned(), "text/x-log".to_owned()),
            ])),
            default: None,
        };
        assert_eq!(own.content_type(b"r.PDF"), "application/pdf");
        assert_eq!(own.content_type(b"a.txt"), "text/plain; charset=koi8-r");
        assert_eq!(own.content_type(b"a.log"), "text/x-log; charset=utf-8");
        assert_eq!(own.content_type(b"a.css"), "application/octet-stream");
        // A default beside the built-in table: for what it does not know.
        let with_default = MediaTypes {
            own: None,
            default: Some("text/plain".into()),
        };
        assert_eq!(
            with_default.content_type(b"a.css"),
            "text/css; charset=utf-8"
        );
        assert_eq!(
            with_default.content_type(b"README"),
            "text/plain; charset=utf-8"
        );
    }
}
