//! Static files, served as nginx serves them: `alias`, `expires`, `gzip_static`, byte ranges,
//! conditional requests, `try_files ... @app` and `X-Accel-Redirect`.
//!
//! The decision (which status, which bytes) is pure (`decision.rs`); opening is safe against
//! every escape from the root and never blocks the event loop (`open.rs`, `cache.rs`); the
//! head is written by `head.rs`. Sending a file is the exchange's job
//! (`exchange/static_file.rs`).

mod cache;
mod decision;
mod head;
mod media;
mod open;

use std::sync::Arc;

use crate::config::Expires;

pub(crate) use cache::{CachedFile, FileCache, Kept, Lookup};
pub use decision::{Conditions, Decision};
pub(crate) use decision::{FileMeta, Validators, decide};
pub(crate) use head::{Extra, FileHead, Gzipped, accepts, push_cache_control, write_file_head};
pub(crate) use media::{MediaTypes, content_type};
pub(crate) use open::{Opened, Root, has_dot_segment, index_rel};

/// A precompressed sibling a route may serve (nginx's `gzip_static`, and brotli).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `name.br`, `Content-Encoding: br`.
    Brotli,
    /// `name.gz`, `Content-Encoding: gzip`.
    Gzip,
}

impl Encoding {
    /// The coding's name in Accept-Encoding and Content-Encoding.
    pub(crate) fn coding(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The sibling file's suffix.
    pub(crate) fn suffix(self) -> &'static [u8] {
        match self {
            Encoding::Brotli => b".br",
            Encoding::Gzip => b".gz",
        }
    }
}

/// Where a static route sends a path it has no file for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// To this upstream group (`try_files $uri @app`), with the static route's own uwsgi
    /// vars or request headers (those of nginx's `location @app`): an app that reads an
    /// identity from them must not get the client's copy.
    Group {
        group: usize,
        params: crate::config::SetValues,
        upstream_headers: crate::config::SetValues,
    },
    /// To this path, routed again (`try_files $uri $uri/ /index.html`: a single-page app's
    /// one page for every path of its own).
    Path(String),
}

/// A route that serves files from a directory.
#[derive(Debug, Clone)]
pub(crate) struct StaticRoute {
    /// The directory (`alias`): the rest of the path after the route's is looked up in it.
    pub(crate) root: Arc<Root>,
    /// Cache-Control and Expires (nginx `expires`); none when `None`.
    pub(crate) expires: Option<Expires>,
    /// `immutable` in Cache-Control.
    pub(crate) immutable: bool,
    /// Files carry an ETag (nginx's `etag`, on by default).
    pub(crate) etag: bool,
    /// Served for a directory path ending in `/`: the first of these names that is there.
    pub(crate) index: Vec<String>,
    /// Precompressed siblings, in order of preference.
    pub(crate) precompressed: Vec<Encoding>,
    /// Where a path without a file goes.
    pub(crate) fallback: Option<Fallback>,
    /// Serve dotfiles and dot-directories.
    pub(crate) dotfiles: bool,
    /// The one file of `root` an exact route serves when its `static` names a file
    /// (`location = /favicon.ico { alias .../favicon.ico; }`).
    pub(crate) file: Option<OneFile>,
    /// How its files are typed (`types`, `default_type`).
    pub(crate) types: MediaTypes,
}

/// The one file an exact route serves.
#[derive(Debug, Clone)]
pub(crate) struct OneFile {
    /// Its name in the route's directory, as the configuration writes it (a symlink is
    /// followed wherever it points: no part of it comes from a client).
    pub(crate) name: String,
    /// The name its type comes from: the last segment of the route's path, as nginx
    /// types a file by the request's extension (`/sitemap.xml` served from `sitemap`).
    pub(crate) typed_as: String,
}

impl StaticRoute {
    /// The files of `root` and nothing more (nginx's bare `alias`): no expiry, index,
    /// siblings, fallback or dotfiles, the built-in types.
    pub(crate) fn plain(root: Root) -> StaticRoute {
        StaticRoute {
            root: Arc::new(root),
            expires: None,
            immutable: false,
            etag: true,
            index: Vec::new(),
            precompressed: Vec::new(),
            fallback: None,
            dotfiles: false,
            file: None,
            types: MediaTypes::default(),
        }
    }
}
