//! The fuzz targets' way in (`fuzz/`, see its README section) to parts of the daemon that
//! stay private: the route matcher, the static path resolver, the config file, and the
//! request header values read one by one (a file's conditionals and Range, Accept-Encoding,
//! X-Forwarded-For).
//!
//! Not an API: hidden from the documentation, shaped for the fuzz targets, and free to
//! change with them. Everything here calls the daemon's own code: the config's path check,
//! the route table, `rel_path`, the dotfile rule, the index (routed again), the opening
//! beneath a root.
//! Only [`Routes::lookup_file`]'s order of steps is written again, from
//! `exchange/static_file.rs` (which interleaves them with its cache and the answer).

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, Limits, is_normal_path};
use crate::exchange::rel_path;
pub use crate::routes::Found;
use crate::routes::{Action, PathRegex, Route, RouteTable};
/// A static file request's conditional and range header values, and the answer they get.
pub use crate::static_files::{Conditions as FileConditions, Decision as FileAnswer};
use crate::static_files::{
    FileMeta, Opened, Root, StaticRoute, Validators, has_dot_segment, index_rel,
};
use crate::uwsgi::normalize_path;

/// Reads a config file's text as `ringway --config FILE` would, with no other flag.
pub fn config_from_toml(text: &str) -> anyhow::Result<Config> {
    Config::from_file_text(text, Path::new("fuzz.toml"))
}

/// What a route does, for [`Routes::new`].
#[derive(Debug, Clone)]
pub enum RouteKind {
    /// Passes requests to an upstream group.
    Upstream,
    /// Answers with a redirect.
    Redirect,
    /// Serves files from `dir` (opened when the table is built, as at start-up).
    Static {
        /// The route's root directory.
        dir: PathBuf,
        /// Served for a directory path ending in `/`: the first of these that is there.
        index: Vec<String>,
        /// Serve dotfiles and dot-directories.
        dotfiles: bool,
    },
}

/// `pattern` compiled, once per thread: targets that build tables from a few patterns per
/// input spend their time on the table, not on compiling.
fn compiled(pattern: &str) -> Result<PathRegex, String> {
    thread_local! {
        static COMPILED: std::cell::RefCell<std::collections::HashMap<String, PathRegex>> =
            std::cell::RefCell::default();
    }
    COMPILED.with_borrow_mut(|cache| {
        if let Some(regex) = cache.get(pattern) {
            return Ok(regex.clone());
        }
        let regex = PathRegex::new(pattern).map_err(|e| e.to_string())?;
        cache.insert(pattern.to_owned(), regex.clone());
        Ok(regex)
    })
}

/// One route, for [`Routes::new`].
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Its path (`/` for a regex route).
    pub path: String,
    /// Only this path (`location =`).
    pub exact: bool,
    /// Matched by this pattern instead (`location ~`).
    pub regex: Option<String>,
    /// No regex route when it is the longest prefix (`location ^~`).
    pub no_regex: bool,
    /// What it does.
    pub kind: RouteKind,
}

/// A route table, built as the config builds it.
#[derive(Debug)]
pub struct Routes {
    table: RouteTable,
}

/// Which file a request path names under a static route, as the exchange decides it.
#[derive(Debug)]
pub enum FileLookup {
    /// The path does not normalise (400).
    BadPath,
    /// No route serves it, or a route's path with a slash added does (404, or 301).
    NoRoute,
    /// The route found is not a static one.
    NotStatic,
    /// A dotfile or dot-directory on a route that does not serve them (404).
    Hidden,
    /// Nothing servable there, or a directory without its index (404).
    NotFound,
    /// A directory asked for without its trailing slash (301), as nginx sends it.
    AddSlash,
    /// This file, open for reading.
    File {
        /// The route that serves it.
        route: usize,
        /// Its path relative to the route's root.
        rel: Vec<u8>,
        /// The file.
        file: File,
    },
}

impl Routes {
    /// The table the config would build from these routes, or the reason it would refuse
    /// them (a path not in normalised form, the same path twice, a root that cannot be
    /// opened).
    pub fn new(specs: &[RouteSpec]) -> Result<Routes, String> {
        let mut routes = Vec::with_capacity(specs.len());
        for spec in specs {
            if !is_normal_path(&spec.path) {
                return Err(format!("{:?} is not a normalised path", spec.path));
            }
            let regex = match &spec.regex {
                Some(pattern) => Some(compiled(pattern)?),
                None => None,
            };
            if regex.is_some() && (spec.path != "/" || spec.exact || spec.no_regex) {
                return Err("a regex route has the path /, and is neither exact nor ^~".into());
            }
            if spec.exact && spec.no_regex {
                return Err("^~ is for prefix routes".into());
            }
            let taken = routes.iter().any(|r: &Route| {
                r.path == spec.path
                    && r.exact == spec.exact
                    && r.regex.as_ref().map(PathRegex::as_str) == spec.regex.as_deref()
            });
            if taken {
                return Err(format!("{:?} twice", spec.path));
            }
            let action = match &spec.kind {
                RouteKind::Upstream => Action::Upstream {
                    group: 0,
                    script_name: None,
                    params: crate::config::SetValues::NONE,
                    upstream_path: None,
                    upstream_headers: crate::config::SetValues::NONE,
                },
                RouteKind::Redirect => Action::Redirect {
                    to: "/elsewhere/".to_owned(),
                    status: 301,
                },
                RouteKind::Static {
                    dir,
                    index,
                    dotfiles,
                } => Action::Static(StaticRoute {
                    index: index.clone(),
                    dotfiles: *dotfiles,
                    ..StaticRoute::plain(Root::open(dir).map_err(|e| e.to_string())?)
                }),
            };
            routes.push(Route {
                hosts: Vec::new(),
                path: spec.path.clone(),
                exact: spec.exact,
                regex,
                no_regex: spec.no_regex,
                internal: false,
                allow: Vec::new(),
                deny: Vec::new(),
                satisfy_any: false,
                limit_except: None,
                action,
                response_headers: crate::config::SetValues::NONE,
                always_headers: crate::config::SetValues::NONE,
                hide_headers: Vec::new(),
                charset: None,
                rewrites: None,
                limits: any_limits(),
                limit_req: None,
                limit_req_status: 429,
                limit_req_dry_run: false,
                limit_req_shared: false,
                limit_conn: None,
                referers: None,
                intercept_errors: false,
                error_pages: Default::default(),
                log_to: Some(crate::config::MAIN_LOG),
                buffering: true,
                gzip: None,
                auth: None,
                auth_request: None,
            });
        }
        Ok(Routes {
            table: RouteTable::new(routes),
        })
    }

    /// The route for a normalised path.
    pub fn find(&self, path: &[u8]) -> Found {
        self.table.find(None, path)
    }

    /// Whether the route at `index` is a regex route whose pattern matches `path`.
    pub fn pattern_matches(&self, index: usize, path: &[u8]) -> bool {
        self.table
            .get(index)
            .and_then(|r| r.regex.as_ref())
            .is_some_and(|regex| regex.is_match(path))
    }

    /// The path of the route at `index`.
    pub fn path(&self, index: usize) -> Option<&str> {
        self.table.get(index).map(|r| r.path.as_str())
    }

    /// Which file a raw request path names, step by step as `exchange` serves a GET:
    /// normalise, find the route, take the part under its root, refuse dotfiles, open it
    /// beneath the root, and for a directory its index. Blocking (it opens files).
    pub fn lookup_file(&self, raw_path: &[u8]) -> FileLookup {
        let mut path = Vec::with_capacity(raw_path.len().max(1));
        if normalize_path(raw_path, &mut path).is_err() {
            return FileLookup::BadPath;
        }
        self.lookup_normalised(&path, 0)
    }

    /// [`Routes::lookup_file`] from the normalised path on; `redirects` counts the index
    /// paths routed again, as the daemon counts them.
    fn lookup_normalised(&self, path: &[u8], redirects: u8) -> FileLookup {
        let index = match self.table.find(None, path) {
            Found::Route(i) => i,
            Found::AddSlash(_) | Found::Nothing => return FileLookup::NoRoute,
        };
        let Some(route) = self.table.get(index) else {
            return FileLookup::NoRoute;
        };
        // A route whose path is this one with a slash added redirects there.
        if route.path.len() > path.len() {
            return FileLookup::NoRoute;
        }
        let Action::Static(files) = &route.action else {
            return FileLookup::NotStatic;
        };
        let rel = rel_path(path, route);
        match open(files, rel) {
            Err(lookup) => lookup,
            Ok(Opened::File(file, ..)) => FileLookup::File {
                route: index,
                rel: rel.to_vec(),
                file,
            },
            // Nothing served either way: what the fuzz target checks.
            Ok(Opened::NotFound | Opened::Failed(_) | Opened::Short(_)) => FileLookup::NotFound,
            // The index's path is routed again (an internal redirect, as nginx's index).
            Ok(Opened::Directory) if path.ends_with(b"/") => {
                if redirects >= crate::fail::MAX_INTERNAL_REDIRECTS {
                    return FileLookup::NotFound;
                }
                // The first name there, as the daemon's index: a missing one gives way.
                let found = files.index.iter().find(|name| {
                    !matches!(open(files, &index_rel(rel, name)), Ok(Opened::NotFound))
                });
                let Some(name) = found else {
                    return FileLookup::NotFound;
                };
                let mut index_path = path.to_vec();
                index_path.extend_from_slice(name.as_bytes());
                let static_route = match self.table.find(None, &index_path) {
                    Found::Route(i) => self
                        .table
                        .get(i)
                        .is_some_and(|r| matches!(r.action, Action::Static(_))),
                    _ => false,
                };
                if static_route {
                    return self.lookup_normalised(&index_path, redirects + 1);
                }
                // Another kind of route's path: the index is this route's.
                let rel = index_rel(rel, name);
                match open(files, &rel) {
                    Ok(Opened::File(file, ..)) => FileLookup::File {
                        route: index,
                        rel,
                        file,
                    },
                    Ok(_) => FileLookup::NotFound,
                    Err(lookup) => lookup,
                }
            }
            Ok(Opened::Directory) if !files.index.is_empty() || files.fallback.is_none() => {
                FileLookup::AddSlash
            }
            Ok(Opened::Directory) => FileLookup::NotFound,
        }
    }
}

/// Opens `rel` under the route's root, unless it is a dotfile the route does not serve.
fn open(files: &StaticRoute, rel: &[u8]) -> Result<Opened, FileLookup> {
    if !files.dotfiles && has_dot_segment(rel) {
        return Err(FileLookup::Hidden);
    }
    Ok(files.root.open_beneath(rel))
}

/// The answer to a GET for a file of `size` bytes last modified at `mtime`, given the
/// request's conditionals and Range, with the validators the daemon makes for that file.
/// Returns the answer and the file's ETag (quotes included).
pub fn file_answer(c: &FileConditions<'_>, size: u64, mtime: u64) -> (FileAnswer, Vec<u8>) {
    let meta = FileMeta { size, mtime };
    let validators = Validators::of(&meta);
    let answer = crate::static_files::decide(c, &meta, validators.etag());
    (answer, validators.etag().to_vec())
}

/// Whether an Accept-Encoding value lets a static route send the `coding` sibling.
pub fn accepts_encoding(accept_encoding: &[u8], coding: &str) -> bool {
    crate::static_files::accepts(accept_encoding, coding)
}

/// The real client IP and port (when known) of a request on a connection from `conn` with
/// these X-Forwarded-For header values, `is_trusted` telling the trusted proxies, walked past
/// them or not (`real_ip_recursive`).
pub fn real_client_ip(
    conn: SocketAddr,
    forwarded_for: &[&[u8]],
    is_trusted: impl Fn(IpAddr) -> bool,
    recursive: bool,
) -> (IpAddr, Option<u16>) {
    let values = forwarded_for.iter().copied();
    let client = crate::identity::real_client_ip(conn, values, is_trusted, recursive);
    (client.ip, client.port)
}

/// Limits for a route (the matcher and the resolver never read them).
fn any_limits() -> Limits {
    let minute = Duration::from_secs(60);
    Limits {
        max_body_size: 1 << 20,
        client_body_buffer_size: 64 << 10,
        response_buffer_size: 64 << 10,
        max_temp_file_size: 1 << 30,
        limit_rate: 0,
        limit_rate_after: 0,
        upstream_connect_timeout: minute,
        upstream_read_timeout: minute,
        client_body_timeout: minute,
        send_timeout: minute,
        next_upstream: crate::config::NextUpstream::DEFAULT,
        next_upstream_tries: 0,
        next_upstream_timeout: None,
        ignore_client_abort: false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn route(path: &str, exact: bool, kind: RouteKind) -> RouteSpec {
        RouteSpec {
            path: path.to_owned(),
            exact,
            regex: None,
            no_regex: false,
            kind,
        }
    }

    #[test]
    fn routes_are_checked_as_the_config_checks_them() {
        for bad in ["api/", "/a/../b/", "/a//b", "/%61/"] {
            let refused = Routes::new(&[route(bad, false, RouteKind::Upstream)]);
            assert!(refused.is_err(), "{bad}");
        }
        let twice = [
            route("/a/", false, RouteKind::Upstream),
            route("/a/", false, RouteKind::Redirect),
        ];
        assert!(Routes::new(&twice).is_err());
        let routes = Routes::new(&[
            route("/a/", false, RouteKind::Upstream),
            route("/a/", true, RouteKind::Upstream),
        ])
        .unwrap();
        assert_eq!(routes.find(b"/a/"), Found::Route(1));
        assert_eq!(routes.find(b"/a/x"), Found::Route(0));
        assert_eq!(routes.find(b"/a"), Found::AddSlash(0));
        assert_eq!(routes.path(0), Some("/a/"));
    }

    #[test]
    fn a_file_is_looked_up_as_the_exchange_does() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::fs::write(root.join(".env"), b"secret").unwrap();
        std::fs::write(root.join("sub/index.html"), b"index").unwrap();
        std::fs::write(base.path().join("secret"), b"secret").unwrap();
        symlink("../secret", root.join("out")).unwrap();
        let files = |index: &[&str]| RouteKind::Static {
            dir: root.clone(),
            index: index.iter().map(|&name| name.to_owned()).collect(),
            dotfiles: false,
        };
        let routes = Routes::new(&[
            route("/static/", false, files(&["index.htm", "index.html"])),
            route("/files", false, files(&[])),
            route("/app/", false, RouteKind::Upstream),
        ])
        .unwrap();
        let opened = |path: &[u8]| match routes.lookup_file(path) {
            FileLookup::File { rel, .. } => String::from_utf8(rel).unwrap(),
            other => format!("{other:?}"),
        };
        assert_eq!(opened(b"/static/a.txt"), "a.txt");
        assert_eq!(opened(b"/static/%61.txt"), "a.txt");
        assert_eq!(opened(b"/static/sub/"), "sub/index.html");
        assert_eq!(opened(b"/static/sub"), "AddSlash");
        assert_eq!(opened(b"/static/.env"), "Hidden");
        assert_eq!(opened(b"/static/out"), "NotFound");
        assert_eq!(opened(b"/static/../secret"), "NoRoute");
        assert_eq!(opened(b"/../secret"), "BadPath");
        assert_eq!(opened(b"/files../secret"), "Hidden");
        assert_eq!(opened(b"/app/a.txt"), "NotStatic");
        assert_eq!(opened(b"/static"), "NoRoute");
    }
}
