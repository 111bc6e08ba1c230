//! A file's Content-Type: from its extension, by the built-in table (nginx's) or a
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

/// The built-in table's type for `ext` (any case, as nginx looks it up), if it knows one.
fn builtin_media_type(ext: &str) -> Option<&'static str> {
    let lower = ext.bytes().map(|b| b.to_ascii_lowercase());
    BUILTIN
        .binary_search_by(|(known, _)| known.bytes().cmp(lower.clone()))
        .ok()
        .and_then(|i| BUILTIN.get(i))
        .map(|&(_, media)| media)
}

/// nginx's `mime.types` (1.22), sorted by extension, so that a file gets the type it got
/// from nginx: a bigger table would type as HTML or XML what nginx sends as
/// `application/octet-stream`, and an upload a site lets through by its extension could
/// then run script in the browser (found by review: mime_guess's table typed `.hxt` as
/// `text/html` and `.xsl` as `text/xml`). Departures: `js` and `mjs` are
/// `text/javascript` (RFC 9239's name; nginx says `application/javascript` and knows no
/// `mjs`), `webmanifest` is `application/manifest+json` (a PWA's manifest).
const BUILTIN: &[(&str, &str)] = &[
    ("3gp", "video/3gpp"),
    ("3gpp", "video/3gpp"),
    ("7z", "application/x-7z-compressed"),
    ("ai", "application/postscript"),
    ("asf", "video/x-ms-asf"),
    ("asx", "video/x-ms-asf"),
    ("atom", "application/atom+xml"),
    ("avi", "video/x-msvideo"),
    ("avif", "image/avif"),
    ("bin", "application/octet-stream"),
    ("bmp", "image/x-ms-bmp"),
    ("cco", "application/x-cocoa"),
    ("crt", "application/x-x509-ca-cert"),
    ("css", "text/css"),
    ("deb", "application/octet-stream"),
    ("der", "application/x-x509-ca-cert"),
    ("dll", "application/octet-stream"),
    ("dmg", "application/octet-stream"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("ear", "application/java-archive"),
    ("eot", "application/vnd.ms-fontobject"),
    ("eps", "application/postscript"),
    ("exe", "application/octet-stream"),
    ("flv", "video/x-flv"),
    ("gif", "image/gif"),
    ("hqx", "application/mac-binhex40"),
    ("htc", "text/x-component"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ico", "image/x-icon"),
    ("img", "application/octet-stream"),
    ("iso", "application/octet-stream"),
    ("jad", "text/vnd.sun.j2me.app-descriptor"),
    ("jar", "application/java-archive"),
    ("jardiff", "application/x-java-archive-diff"),
    ("jng", "image/x-jng"),
    ("jnlp", "application/x-java-jnlp-file"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript"),
    ("json", "application/json"),
    ("kar", "audio/midi"),
    ("kml", "application/vnd.google-earth.kml+xml"),
    ("kmz", "application/vnd.google-earth.kmz"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("m4a", "audio/x-m4a"),
    ("m4v", "video/x-m4v"),
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    ("mjs", "text/javascript"),
    ("mml", "text/mathml"),
    ("mng", "video/x-mng"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("mpeg", "video/mpeg"),
    ("mpg", "video/mpeg"),
    ("msi", "application/octet-stream"),
    ("msm", "application/octet-stream"),
    ("msp", "application/octet-stream"),
    ("odg", "application/vnd.oasis.opendocument.graphics"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ogg", "audio/ogg"),
    ("pdb", "application/x-pilot"),
    ("pdf", "application/pdf"),
    ("pem", "application/x-x509-ca-cert"),
    ("pl", "application/x-perl"),
    ("pm", "application/x-perl"),
    ("png", "image/png"),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("prc", "application/x-pilot"),
    ("ps", "application/postscript"),
    ("ra", "audio/x-realaudio"),
    ("rar", "application/x-rar-compressed"),
    ("rpm", "application/x-redhat-package-manager"),
    ("rss", "application/rss+xml"),
    ("rtf", "application/rtf"),
    ("run", "application/x-makeself"),
    ("sea", "application/x-sea"),
    ("shtml", "text/html"),
    ("sit", "application/x-stuffit"),
    ("svg", "image/svg+xml"),
    ("svgz", "image/svg+xml"),
    ("swf", "application/x-shockwave-flash"),
    ("tcl", "application/x-tcl"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("tk", "application/x-tcl"),
    ("ts", "video/mp2t"),
    ("txt", "text/plain"),
    ("war", "application/java-archive"),
    ("wasm", "application/wasm"),
    ("wbmp", "image/vnd.wap.wbmp"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("wml", "text/vnd.wap.wml"),
    ("wmlc", "application/vnd.wap.wmlc"),
    ("wmv", "video/x-ms-wmv"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xhtml", "application/xhtml+xml"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("xml", "text/xml"),
    ("xpi", "application/x-xpinstall"),
    ("xspf", "application/xspf+xml"),
    ("zip", "application/zip"),
];

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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_is_sorted_and_nginx_s() {
        assert!(
            BUILTIN.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, once each"
        );
        for (ext, media) in [
            ("css", "text/css"),
            ("html", "text/html"),
            ("xml", "text/xml"),
            ("woff", "font/woff"),
            ("m3u8", "application/vnd.apple.mpegurl"),
            ("ts", "video/mp2t"),
            ("bmp", "image/x-ms-bmp"),
            ("wasm", "application/wasm"),
            ("3gp", "video/3gpp"),
            ("js", "text/javascript"),
            ("mjs", "text/javascript"),
        ] {
            assert_eq!(builtin_media_type(ext), Some(media), "{ext}");
        }
        // Types nginx does not know are no type: the default's.
        for ext in ["hxt", "xht", "xsl", "xslt", "config", "aspx", "csv", ""] {
            assert_eq!(builtin_media_type(ext), None, "{ext}");
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
