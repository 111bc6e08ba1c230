//! The route table: which route serves a request, decided on its normalised path (the path
//! PATH_INFO is built from: percent-decoded, dot segments resolved), so that no spelling of a
//! path (`/api/../admin/`, `/api/%2e%2e/admin/`) reaches a route other than the one it names.
//!
//! First the request's Host picks a set of routes, as it picks an nginx `server` block: the
//! routes whose `hosts` name it, if any does, else the routes without `hosts`. Within that
//! set, matching follows nginx's `location`: an exact route (`location = /x`) wins; then a
//! request for an upstream prefix route's path without its trailing slash (`/api` for
//! `/api/`), when no route matches it, is redirected to the path with the slash (nginx's
//! `auto_redirect`, which its proxied locations have), so the app's relative links work;
//! then, unless the longest matching prefix route says `no_regex` (`location ^~`), the
//! first regex route in the file's order whose pattern matches (`location ~`); else that
//! longest prefix route, or a static route's slash redirect.

use std::net::IpAddr;
use std::sync::Arc;

use crate::access_log::Template;
use crate::auth_basic::BasicAuth;
use crate::config::{Cidr, ClientRange, HostName, Limits, SetValues};
use crate::error_pages::ErrorPages;
use crate::gzip::Gzip;
use crate::http::{Charset, HeaderRewrite};
use crate::limits::{RateLimit, RequestLimit};
use crate::referers::RefererCheck;
use crate::static_files::{Fallback, StaticRoute};

/// nginx's `auth_request`: the request each request is first asked as, and what a 401
/// becomes.
#[derive(Debug)]
pub(crate) struct AuthRequest {
    /// The path asked, normalised (what routes match, and PATH_INFO).
    pub(crate) path: Box<str>,
    /// Its query, without the `?` (empty: none).
    pub(crate) query: Box<str>,
    /// A 401 answered as a 302 to this, when it comes out non-empty.
    pub(crate) redirect_401: Option<Arc<Template>>,
}

/// nginx's `limit_except`: methods anyone may use, and who may use the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitExcept {
    /// As sent (methods are case-sensitive); `HEAD` is here when `GET` is.
    pub(crate) methods: Vec<String>,
    /// Clients that may use any other (empty: none, nginx's `deny all`).
    pub(crate) allow: Vec<Cidr>,
}

/// What a route's `allow` and `deny` say of a client (nginx's access module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// An `allow` entry holds it: enough by itself under `satisfy = "any"`.
    Allowed,
    /// A `deny` entry holds it, or it is outside the `allow` list: 403 unless `satisfy =
    /// "any"` lets a password in.
    Denied,
    /// No entry says anything (no lists, or a `deny` list it is not in): the other checks
    /// decide.
    NoRule,
}

/// One route.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The Hosts it serves (empty: those no route names).
    pub(crate) hosts: Vec<HostName>,
    /// The path it matches (the `route` label of its metrics).
    pub(crate) path: String,
    /// Only this exact path, not what lies under it.
    pub(crate) exact: bool,
    /// Matched by this pattern instead of by its path (nginx `location ~`). Its `path` is
    /// then `/`: a file or a redirect takes the whole path (nginx's `root`).
    pub(crate) regex: Option<PathRegex>,
    /// When this prefix route is the longest match, no regex route is tried (nginx
    /// `location ^~`).
    pub(crate) no_regex: bool,
    /// Reachable only through X-Accel-Redirect: direct requests get 404.
    pub(crate) internal: bool,
    /// Clients allowed (nginx's `allow`; with none, everyone not denied).
    pub(crate) allow: Vec<ClientRange>,
    /// Clients refused (nginx's `deny`).
    pub(crate) deny: Vec<ClientRange>,
    /// `allow` or `auth_basic` lets a request in, not both needed (nginx `satisfy any`).
    pub(crate) satisfy_any: bool,
    /// Methods anyone may use, the others only some clients (nginx `limit_except`).
    pub(crate) limit_except: Option<Box<LimitExcept>>,
    /// What it does.
    pub(crate) action: Action,
    /// Headers added to its successful and redirect answers (nginx `add_header`), the
    /// `always` ones among them.
    pub(crate) response_headers: SetValues,
    /// Its headers marked `always`: added to every answer (`add_header ... always`).
    pub(crate) always_headers: SetValues,
    /// Headers of the app's answers not passed on (nginx `uwsgi_hide_header`), in lower
    /// case.
    pub(crate) hide_headers: Vec<String>,
    /// The charset the app's answers of the listed types are labelled with (nginx's
    /// `charset`), if any.
    pub(crate) charset: Option<Arc<Charset>>,
    /// What its app's `Set-Cookie`, `Location` and `Refresh` headers get (nginx's
    /// `proxy_cookie_*` and `proxy_redirect`), if anything.
    pub(crate) rewrites: Option<Arc<HeaderRewrite>>,
    /// Its limits and timeouts.
    pub(crate) limits: Limits,
    /// Requests per client IP (nginx's `limit_req`), if limited.
    pub(crate) limit_req: Option<RateLimit>,
    /// The status of a request over `limit_req` (nginx's `limit_req_status`).
    pub(crate) limit_req_status: u16,
    /// Which Referers may ask for it (nginx's `valid_referers`), if it says.
    pub(crate) referers: Option<Arc<RefererCheck>>,
    /// `limit_req` only counts and logs (nginx's `limit_req_dry_run`).
    pub(crate) limit_req_dry_run: bool,
    /// Its `limit_req` is the top level's, whose one table every such route counts in.
    pub(crate) limit_req_shared: bool,
    /// Requests at once per client IP (nginx's `limit_conn` in a location), if limited.
    pub(crate) limit_conn: Option<RequestLimit>,
    /// The app's answers with a status that has an error page get the page instead of the
    /// app's body (nginx `uwsgi_intercept_errors on`).
    pub(crate) intercept_errors: bool,
    /// Its error pages: its own, or the top level's (the same `Arc`).
    pub(crate) error_pages: Arc<ErrorPages>,
    /// Where its requests' lines go: an index into the access log's sinks (the top
    /// level's, which may be off, or the route's own file); `None` for nowhere (nginx's
    /// `access_log off` in a location).
    pub(crate) log_to: Option<usize>,
    /// The app's answers are buffered (memory, then a temp file) so that a slow client does
    /// not hold the app; false: relayed at the client's pace (nginx's `proxy_buffering
    /// off`). The app's `X-Accel-Buffering` overrides it per answer.
    pub(crate) buffering: bool,
    /// How the app's answers on it are compressed, if they are.
    pub(crate) gzip: Option<Arc<Gzip>>,
    /// Who may use it (nginx's `auth_basic`), if not everyone.
    pub(crate) auth: Option<Arc<BasicAuth>>,
    /// Where each request is first asked whether it may pass (nginx's `auth_request`).
    pub(crate) auth_request: Option<Arc<AuthRequest>>,
}

/// What a route does with a request.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Pass it to an upstream group.
    Upstream {
        /// Index of the group in the configuration.
        group: usize,
        /// SCRIPT_NAME: the mount point, removed from the front of PATH_INFO.
        script_name: Option<String>,
        /// Extra uwsgi vars set by the operator; they replace ringway's own of the same name.
        params: SetValues,
        /// For an HTTP group: what the route's path becomes in the request sent (nginx's
        /// `proxy_pass http://app/;`).
        upstream_path: Option<String>,
        /// For an HTTP group: headers set on the request sent (nginx's `proxy_set_header`),
        /// an empty value removing one.
        upstream_headers: SetValues,
    },
    /// Serve files from a directory.
    Static(StaticRoute),
    /// Answer with this status and body (nginx `return 200 "ok"`).
    Respond(FixedAnswer),
    /// Answer with the connection and request counts in nginx's `stub_status` format.
    StubStatus,
    /// Answer with a redirect to `to` followed by the rest of the path and the query; on a
    /// regex route whose `to` names its groups (`$1`..`$9`), to `to` with them in place,
    /// then the query.
    Redirect {
        /// Where to.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
    },
}

/// A route's fixed answer.
#[derive(Debug, Clone)]
pub(crate) struct FixedAnswer {
    /// Its status (444: close without answering).
    pub(crate) status: u16,
    /// Its body and that body's Content-Type, if it has one of its own.
    pub(crate) body: Option<(Box<str>, Box<[u8]>)>,
}

/// A regex route's pattern, matched against the normalised path.
#[derive(Clone)]
pub(crate) struct PathRegex(regex::bytes::Regex);

impl PathRegex {
    /// The pattern `source` (the `regex` crate's syntax; `(?i)` for nginx's `~*`), on bytes
    /// as nginx's PCRE runs without its UTF mode: a normalised path may hold any byte
    /// (`%FF`), and `.` or `[^/]` must match it, or a path could slip past a pattern that
    /// guards it. `(?i)` then folds ASCII letters only, as PCRE's does.
    pub(crate) fn new(source: &str) -> Result<PathRegex, regex::Error> {
        regex::bytes::RegexBuilder::new(source)
            .unicode(false)
            .build()
            .map(PathRegex)
    }

    /// Whether it matches somewhere in `path` (anchor it with `^` or `$`, as in nginx).
    pub(crate) fn is_match(&self, path: &[u8]) -> bool {
        self.0.is_match(path) || before_a_final_newline(path).is_some_and(|p| self.0.is_match(p))
    }

    /// Its groups as found in `path` (`None`: it does not match).
    pub(crate) fn captures<'p>(&self, path: &'p [u8]) -> Option<regex::bytes::Captures<'p>> {
        self.0
            .captures(path)
            .or_else(|| before_a_final_newline(path).and_then(|p| self.0.captures(p)))
    }

    /// How many groups it has (`$1` to `$N` can name them).
    pub(crate) fn groups(&self) -> usize {
        self.0.captures_len().saturating_sub(1)
    }

    /// The pattern, as written.
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// `path` without its last byte when that is a newline (a decoded `%0A`). PCRE's `$`
/// matches there too, where the `regex` crate's matches only at the very end: without this,
/// `/secret%0A` would miss nginx's `location ~ ^/secret$` and its guard, and reach an app
/// whose router (Python's `re.match`) reads it as `/secret`.
fn before_a_final_newline(path: &[u8]) -> Option<&[u8]> {
    path.strip_suffix(b"\n")
}

/// The highest `$1`..`$9` a redirect's `to` names, if it names one.
pub(crate) fn highest_group(to: &str) -> Option<usize> {
    to.as_bytes()
        .windows(2)
        .filter_map(|w| match w {
            [b'$', d @ b'1'..=b'9'] => Some(usize::from(d - b'0')),
            _ => None,
        })
        .max()
}

impl std::fmt::Debug for PathRegex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "~{}", self.0.as_str())
    }
}

/// The result of looking a path up (public for the fuzz targets, through `crate::fuzzing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The route at this index serves it.
    Route(usize),
    /// The path is a prefix route's path without its trailing slash: redirect to it (the
    /// route at this index).
    AddSlash(usize),
    /// No route serves it: 404.
    Nothing,
}

/// The configured routes, in the order they were given.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
    /// Indexes of the prefix routes, longest path first.
    by_length: Vec<usize>,
    /// Indexes of the regex routes, in configuration order.
    regexes: Vec<usize>,
    /// Indexes of the exact upstream routes whose path ends in `/` (nginx redirects their
    /// path without it).
    exact_slashed: Vec<usize>,
    /// Whether a route names Hosts (without, the Host is not looked at).
    by_host: bool,
}

impl RouteTable {
    /// A table of these routes (paths are checked for duplicates by the config).
    pub(crate) fn new(routes: Vec<Route>) -> RouteTable {
        let (regexes, mut by_length): (Vec<usize>, Vec<usize>) = (0..routes.len())
            .filter(|&i| !routes[i].exact)
            .partition(|&i| routes[i].regex.is_some());
        by_length.sort_by_key(|&i| std::cmp::Reverse(routes[i].path.len()));
        let by_host = routes.iter().any(|r| !r.hosts.is_empty());
        let exact_slashed = (0..routes.len())
            .filter(|&i| {
                let r = &routes[i];
                r.exact
                    && r.path.len() > 1
                    && r.path.ends_with('/')
                    && matches!(r.action, Action::Upstream { .. })
            })
            .collect();
        RouteTable {
            routes,
            by_length,
            regexes,
            exact_slashed,
            by_host,
        }
    }

    /// Which routes a request for `host` may take: the Host's own routes if some route
    /// names it, else those naming no Host. Of the names that match it, the closest
    /// decides, as nginx picks one `server` block: an exact name, else the longest wildcard
    /// (found by review: a `*.example.com` route served `admin.example.com` beside, or
    /// instead of, that name's own routes and their access rules).
    fn serving<'t>(&'t self, host: Option<&'t [u8]>) -> impl Fn(&Route) -> bool + 't {
        let closest = host.filter(|_| self.by_host).and_then(|h| {
            self.routes
                .iter()
                .flat_map(|r| &r.hosts)
                .filter_map(|n| n.how_named(h))
                .max()
        });
        move |r: &Route| match (self.by_host, closest, host) {
            (false, ..) => true,
            (true, Some(closest), Some(h)) => {
                r.hosts.iter().any(|n| n.how_named(h) == Some(closest))
            }
            (true, ..) => r.hosts.is_empty(),
        }
    }

    /// Whether `route` is among those a request for `host` may take (a trusted proxy's
    /// X-Forwarded-Host is held to it as the Host is).
    pub(crate) fn serves_host(&self, route: &Route, host: &[u8]) -> bool {
        self.serving(Some(host))(route)
    }

    /// The route for a request for `host` (its Host, or its absolute-form authority) and
    /// a normalised path.
    pub(crate) fn find(&self, host: Option<&[u8]>, path: &[u8]) -> Found {
        let server = self.serving(host);
        if let Some(i) = self
            .routes
            .iter()
            .position(|r| r.exact && r.path.as_bytes() == path && server(r))
        {
            return Found::Route(i);
        }
        let mut prefixes = self
            .by_length
            .iter()
            .copied()
            .filter(|&i| server(&self.routes[i]));
        let prefix = prefixes
            .clone()
            .find(|&i| path.starts_with(self.routes[i].path.as_bytes()));
        let names_with_a_slash = |route: &Route| {
            route.path.len() > 1 && route.path.strip_suffix('/').map(str::as_bytes) == Some(path)
        };
        let slashed = |kind: fn(&Action) -> bool| {
            let routes = &self.routes;
            move |&i: &usize| kind(&routes[i].action) && names_with_a_slash(&routes[i])
        };
        let proxied = |a: &Action| matches!(a, Action::Upstream { .. });
        let proxied_slash = prefixes
            .clone()
            .find(slashed(proxied))
            // An exact proxied route too, as nginx's `location = /api/ { uwsgi_pass ...; }`
            // redirects `/api` (found by review), before a static prefix route of that path.
            .or_else(|| {
                self.exact_slashed.iter().copied().find(|&i| {
                    let r = &self.routes[i];
                    server(r) && names_with_a_slash(r)
                })
            });
        let static_slash = prefixes.find(slashed(|a| matches!(a, Action::Static(_))));
        // A route whose path is this very path serves it.
        let served_as_is = prefix.is_some_and(|i| self.routes[i].path.len() == path.len());
        // As nginx's `auto_redirect`, which only its proxied locations have: decided before
        // any regex is tried.
        if let Some(i) = proxied_slash.filter(|_| !served_as_is) {
            return Found::AddSlash(i);
        }
        let longest = prefix;
        if !longest.is_some_and(|i| self.routes[i].no_regex)
            && let Some(i) = self.regexes.iter().copied().find(|&i| {
                let route = &self.routes[i];
                server(route) && route.regex.as_ref().is_some_and(|r| r.is_match(path))
            })
        {
            return Found::Route(i);
        }
        // A static route's slash only where no route serves the path: nginx's `alias`
        // location has no auto_redirect, so the path goes to a location it matches (the
        // app's `/`, which may have a view of that name; found by review: an internal
        // route's path without its slash was a 404 there).
        match (longest, static_slash) {
            (Some(i), _) => Found::Route(i),
            (None, Some(i)) => Found::AddSlash(i),
            (None, None) => Found::Nothing,
        }
    }

    /// The route at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    /// Every route, in configuration order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Sends each route's log lines where `place` says, given where they went: a reload
    /// keeps the process's log files, and its routes write to those.
    pub(crate) fn retarget_logs(&mut self, place: impl Fn(usize) -> Option<usize>) {
        for route in &mut self.routes {
            route.log_to = route.log_to.and_then(&place);
        }
    }

    /// Whether a route passes requests to the group at `group`, or a static route falls
    /// back to it: a group none names takes no request.
    pub(crate) fn sends_to(&self, group: usize) -> bool {
        self.routes.iter().any(|route| match &route.action {
            Action::Upstream { group: g, .. } => *g == group,
            Action::Static(files) => {
                matches!(&files.fallback, Some(Fallback::Group { group: g, .. }) if *g == group)
            }
            _ => false,
        })
    }
}

impl Route {
    /// Its `route` label in the metrics: the path, `=path` for an exact route (nginx's
    /// `location =`), so a prefix and an exact route on one path stay apart, `~pattern` for a
    /// regex route; behind its first Host when it names Hosts (`api.example.com/`,
    /// `=api.example.com/x`, `api.example.com~\.css$`).
    pub(crate) fn label(&self) -> String {
        let host = self
            .hosts
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        match &self.regex {
            Some(regex) => format!("{host}~{}", regex.as_str()),
            None if self.exact => format!("={host}{}", self.path),
            None => format!("{host}{}", self.path),
        }
    }

    /// What the route's `allow` and `deny` say of a client at `ip`. The narrowest entry
    /// holding it decides (an exception inside a broader range of the other list, which
    /// nginx's first match honours when written first, as it must be to matter); a tie
    /// denies; a client in neither list is denied when there is an `allow` list (nginx's
    /// closing `deny all;`).
    pub(crate) fn access_of(&self, ip: IpAddr) -> Access {
        let narrowest = |list: &[ClientRange]| {
            list.iter()
                .filter(|range| range.contains(ip))
                .map(ClientRange::prefix_len)
                .max()
        };
        match (narrowest(&self.allow), narrowest(&self.deny)) {
            (Some(allowed), Some(denied)) if allowed > denied => Access::Allowed,
            (_, Some(_)) => Access::Denied,
            (Some(_), None) => Access::Allowed,
            (None, None) if self.allow.is_empty() => Access::NoRule,
            (None, None) => Access::Denied,
        }
    }

    /// Whether a client at `ip` may use `method` (as sent) here, as far as `limit_except`
    /// says.
    pub(crate) fn allows_method(&self, method: &[u8], ip: IpAddr) -> bool {
        self.limit_except.as_deref().is_none_or(|limit| {
            limit.methods.iter().any(|m| m.as_bytes() == method)
                || limit.allow.iter().any(|c| c.contains(ip))
        })
    }

    /// The headers an answer with `status` gets: all of `response_headers` on successful
    /// and redirect answers (nginx's `add_header`), the `always` ones on any other.
    pub(crate) fn headers_for(&self, status: u16) -> &SetValues {
        if matches!(
            status,
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        ) {
            &self.response_headers
        } else {
            &self.always_headers
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Limits;
    use std::time::Duration;

    pub(crate) fn limits() -> Limits {
        let t = Duration::from_secs(60);
        Limits {
            max_body_size: 1 << 20,
            client_body_buffer_size: 64 << 10,
            response_buffer_size: 64 << 10,
            max_temp_file_size: 1 << 30,
            limit_rate: 0,
            limit_rate_after: 0,
            upstream_connect_timeout: t,
            upstream_read_timeout: t,
            client_body_timeout: t,
            send_timeout: t,
            next_upstream: crate::config::NextUpstream::DEFAULT,
            next_upstream_tries: 0,
            next_upstream_timeout: None,
            ignore_client_abort: false,
        }
    }

    fn route(path: &str, exact: bool, action: Action) -> Route {
        Route {
            hosts: Vec::new(),
            path: path.to_owned(),
            exact,
            regex: None,
            no_regex: false,
            internal: false,
            allow: Vec::new(),
            deny: Vec::new(),
            satisfy_any: false,
            limit_except: None,
            action,
            response_headers: SetValues::NONE,
            always_headers: SetValues::NONE,
            hide_headers: Vec::new(),
            charset: None,
            rewrites: None,
            limits: limits(),
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
        }
    }

    fn upstream() -> Action {
        Action::Upstream {
            group: 0,
            script_name: None,
            params: SetValues::NONE,
            upstream_path: None,
            upstream_headers: SetValues::NONE,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("/", false, upstream()),
            route("/api/", false, upstream()),
            route("/api/v2/", false, upstream()),
            route("/environ", true, upstream()),
            route(
                "/old/",
                false,
                Action::Redirect {
                    to: "/new/".into(),
                    status: 301,
                },
            ),
            route("/static", false, upstream()),
        ])
    }

    /// nginx's `server` blocks: the Host picks the routes naming it, else those naming none;
    /// within them, paths match as ever, and a path the Host's routes lack is not looked for
    /// among the others.
    #[test]
    fn the_host_picks_its_routes_as_server_name_picks_a_server() {
        let named = |hosts: &[&str], path: &str, exact: bool| Route {
            hosts: hosts.iter().map(|h| h.parse().unwrap()).collect(),
            ..route(path, exact, upstream())
        };
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            route("/static/", false, upstream()),
            named(&["api.example.com"], "/", false),
            named(&["api.example.com", "*.api.example.com"], "/v2/", false),
            named(&["www.example.com"], "/", false),
            named(&["api.example.com"], "/health", true),
        ]);
        let cases: [(Option<&str>, &str, Found); 14] = [
            (None, "/x", Found::Route(0)),
            (Some("example.com"), "/x", Found::Route(0)),
            (Some("example.com"), "/static/a.css", Found::Route(1)),
            (Some("api.example.com"), "/x", Found::Route(2)),
            (Some("API.Example.COM:8080"), "/x", Found::Route(2)),
            (Some("api.example.com."), "/x", Found::Route(2)),
            (Some("api.example.com"), "/v2/users", Found::Route(3)),
            (Some("api.example.com"), "/v2", Found::AddSlash(3)),
            (Some("api.example.com"), "/health", Found::Route(5)),
            // Not the default routes' /static/: that Host's routes have none.
            (Some("api.example.com"), "/static/a.css", Found::Route(2)),
            (Some("eu.api.example.com"), "/v2/x", Found::Route(3)),
            (Some("eu.api.example.com"), "/x", Found::Nothing),
            (Some("www.example.com"), "/anything", Found::Route(4)),
            (Some("other.test"), "/health", Found::Route(0)),
        ];
        for (host, path, want) in cases {
            assert_eq!(
                t.find(host.map(str::as_bytes), path.as_bytes()),
                want,
                "{host:?} {path}"
            );
        }
        // A host another route names is not the default routes' (a trusted proxy's
        // X-Forwarded-Host is held to this, as the Host).
        let serves = |i: usize, host: &str| t.serves_host(&t.routes[i], host.as_bytes());
        assert!(serves(0, "other.test") && serves(0, "example.com"));
        assert!(!serves(0, "api.example.com") && !serves(0, "www.example.com"));
        assert!(serves(2, "api.example.com") && serves(3, "eu.api.example.com"));
        assert!(!serves(2, "www.example.com") && !serves(4, "api.example.com"));
        let labels: Vec<String> = t.iter().map(Route::label).collect();
        assert_eq!(
            labels,
            [
                "/",
                "/static/",
                "api.example.com/",
                "api.example.com/v2/",
                "www.example.com/",
                "=api.example.com/health"
            ]
        );
    }

    /// Of the names that match a Host, the closest picks its routes, as nginx picks one
    /// `server`: `admin.example.com`'s own, never a `*.example.com` route beside them
    /// (whatever the order or the paths), and the longest wildcard over a shorter one.
    #[test]
    fn the_closest_name_picks_the_routes_as_nginx_picks_a_server() {
        let named = |hosts: &[&str], path: &str| Route {
            hosts: hosts.iter().map(|h| h.parse().unwrap()).collect(),
            ..route(path, false, upstream())
        };
        let t = RouteTable::new(vec![
            named(&["*.example.com"], "/"),
            named(&["*.example.com"], "/api/"),
            named(&["admin.example.com"], "/"),
            named(&[".eu.example.com"], "/"),
        ]);
        let cases = [
            ("admin.example.com", "/api/x", Found::Route(2)),
            ("admin.example.com", "/", Found::Route(2)),
            ("shop.example.com", "/api/x", Found::Route(1)),
            ("shop.example.com", "/", Found::Route(0)),
            ("eu.example.com", "/api/x", Found::Route(3)),
            ("fr.eu.example.com", "/api/x", Found::Route(3)),
        ];
        for (host, path, want) in cases {
            assert_eq!(
                t.find(Some(host.as_bytes()), path.as_bytes()),
                want,
                "{host} {path}"
            );
        }
    }

    /// A fixed answer, like a redirect, is no place to send `/x` to `/x/`: nginx's `return`
    /// in `location /x/` does not catch `/x`.
    #[test]
    fn a_respond_route_gets_no_slash_redirect() {
        let fixed = Action::Respond(FixedAnswer {
            status: 444,
            body: None,
        });
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            route("/blocked/", false, fixed),
        ]);
        assert_eq!(t.find(None, b"/blocked"), Found::Route(0));
        assert_eq!(t.find(None, b"/blocked/x"), Found::Route(1));
    }

    #[test]
    fn exact_then_longest_prefix() {
        let t = table();
        let cases: [(&str, Found); 12] = [
            ("/", Found::Route(0)),
            ("/x", Found::Route(0)),
            ("/api/", Found::Route(1)),
            ("/api/users", Found::Route(1)),
            ("/api/v2/", Found::Route(2)),
            ("/api/v2/x/y", Found::Route(2)),
            ("/api/v2", Found::AddSlash(2)),
            ("/api", Found::AddSlash(1)),
            ("/environ", Found::Route(3)),
            ("/environ/x", Found::Route(0)),
            ("/old/a/b", Found::Route(4)),
            ("/staticfile", Found::Route(5)),
        ];
        for (path, want) in cases {
            assert_eq!(t.find(None, path.as_bytes()), want, "{path}");
        }
    }

    #[test]
    fn no_route_is_nothing_and_redirect_routes_get_no_slash_redirect() {
        let t = RouteTable::new(vec![
            route("/api/", false, upstream()),
            route(
                "/old/",
                false,
                Action::Redirect {
                    to: "/new/".into(),
                    status: 301,
                },
            ),
        ]);
        assert_eq!(t.find(None, b"/"), Found::Nothing);
        assert_eq!(t.find(None, b"/apix"), Found::Nothing);
        assert_eq!(t.find(None, b"/old"), Found::Nothing);
    }

    #[test]
    fn a_route_for_the_path_itself_wins_over_the_slash_redirect() {
        let t = RouteTable::new(vec![
            route("/api/", false, upstream()),
            route("/api", true, upstream()),
        ]);
        assert_eq!(t.find(None, b"/api"), Found::Route(1));
        let t = RouteTable::new(vec![
            route("/api/", false, upstream()),
            route("/api", false, upstream()),
        ]);
        assert_eq!(t.find(None, b"/api"), Found::Route(1));
        assert_eq!(t.find(None, b"/api/x"), Found::Route(0));
    }

    fn regex(pattern: &str) -> Route {
        Route {
            regex: Some(PathRegex::new(pattern).unwrap()),
            ..route("/", false, upstream())
        }
    }

    /// nginx's order: `location =`, then the slash redirect, then (unless the longest
    /// matching prefix is `^~`) the first `location ~` in the file's order, then the longest
    /// prefix.
    #[test]
    fn regex_routes_come_after_exact_ones_and_before_the_longest_prefix() {
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            route("/api/", false, upstream()),
            Route {
                no_regex: true,
                ..route("/media/", false, upstream())
            },
            regex(r"(?i)\.(css|png)$"),
            regex(r"^/api/v[0-9]+/"),
            route("/exact.css", true, upstream()),
            regex(r"\.png$"),
            regex(r"^/(api|apx)$"),
        ]);
        let cases: [(&str, Found); 14] = [
            ("/exact.css", Found::Route(5)),
            ("/a.css", Found::Route(3)),
            ("/A.CsS", Found::Route(3)),
            ("/deep/down/b.png", Found::Route(3)),
            ("/a.css/", Found::Route(0)),
            ("/media/a.css", Found::Route(2)),
            ("/media", Found::AddSlash(2)),
            ("/api/v2/users", Found::Route(4)),
            ("/api/v2/a.css", Found::Route(3)),
            ("/api/users", Found::Route(1)),
            // The slash redirect is decided before any regex, as nginx's auto redirect.
            ("/api", Found::AddSlash(1)),
            ("/apx", Found::Route(7)),
            ("/", Found::Route(0)),
            ("/other", Found::Route(0)),
        ];
        for (path, want) in cases {
            assert_eq!(t.find(None, path.as_bytes()), want, "{path}");
        }
        // Any byte a decoded path may hold is a byte to `.` and `[^/]`, as in nginx's PCRE;
        // `(?i)` folds ASCII only.
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            regex(r"^/private/.*\.bak$"),
            regex(r"^/f/[^/]+/d$"),
            regex(r"(?i)\.js$"),
        ]);
        assert_eq!(t.find(None, b"/private/\xffx.bak"), Found::Route(1));
        assert_eq!(t.find(None, b"/f/\xff\xfe/d"), Found::Route(2));
        assert_eq!(t.find(None, b"/a.JS"), Found::Route(3));
        assert_eq!(t.find(None, "/a.j\u{17f}".as_bytes()), Found::Route(0));
        // An exact proxied route ending in `/` redirects its path without the slash, as
        // nginx's exact location with `uwsgi_pass` does; a prefix route of that very path
        // serves it instead.
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            route("/eq/", true, upstream()),
            route("/both/", true, upstream()),
            route("/both", false, upstream()),
        ]);
        assert_eq!(t.find(None, b"/eq"), Found::AddSlash(1));
        assert_eq!(t.find(None, b"/eq/"), Found::Route(1));
        assert_eq!(t.find(None, b"/both"), Found::Route(3));
        // PCRE's `$` matches before a final newline (a decoded `%0A`) too: a guarded regex
        // route keeps such a path, as nginx's location does.
        let t = RouteTable::new(vec![route("/", false, upstream()), regex(r"^/secret$")]);
        assert_eq!(t.find(None, b"/secret\n"), Found::Route(1));
        assert_eq!(t.find(None, b"/secret\n\n"), Found::Route(0));
        assert_eq!(t.find(None, b"/secretx"), Found::Route(0));
        let groups = PathRegex::new(r"^/p/([0-9]+)/?$").unwrap();
        let found = groups.captures(b"/p/42\n").unwrap();
        assert_eq!(found.get(1).map(|g| g.as_bytes()), Some(&b"42"[..]));
        // A static route's slash redirect comes after the regexes and the prefix routes
        // (nginx's alias and root locations have no auto_redirect), an upstream route's
        // before.
        let files = |path: &str| {
            let root = crate::static_files::Root::open(std::path::Path::new("/")).unwrap();
            route(path, false, Action::Static(StaticRoute::plain(root)))
        };
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            Route {
                no_regex: true,
                ..files("/.well-known/")
            },
            files("/assets/"),
            regex(r"/\."),
        ]);
        assert_eq!(t.find(None, b"/.well-known"), Found::Route(3));
        assert_eq!(t.find(None, b"/.well-known/x"), Found::Route(1));
        assert_eq!(t.find(None, b"/assets"), Found::Route(0), "the app's");
        let t = RouteTable::new(vec![files("/assets/"), files("/other/")]);
        assert_eq!(
            t.find(None, b"/assets"),
            Found::AddSlash(0),
            "no route takes it"
        );
        // An exact proxied route's slash beats a static prefix route of the same path, and
        // any regex, as nginx's exact location with `uwsgi_pass`.
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            route("/x/", true, upstream()),
            files("/x/"),
            regex(r"^/x$"),
        ]);
        assert_eq!(t.find(None, b"/x"), Found::AddSlash(1));
        // Without a prefix route to fall back on, a path no regex matches has no route.
        let t = RouteTable::new(vec![regex(r"\.css$")]);
        assert_eq!(t.find(None, b"/a.css"), Found::Route(0));
        assert_eq!(t.find(None, b"/a.js"), Found::Nothing);
        let labels: Vec<String> = RouteTable::new(vec![
            regex(r"\.css$"),
            Route {
                hosts: vec!["api.example.com".parse().unwrap()],
                ..regex(r"^/v[0-9]/")
            },
        ])
        .iter()
        .map(Route::label)
        .collect();
        assert_eq!(labels, [r"~\.css$", "api.example.com~^/v[0-9]/"]);
    }

    /// A regex route serves the Hosts it names, as any route: another Host's regex routes
    /// are not tried.
    #[test]
    fn a_regex_route_belongs_to_its_hosts() {
        let t = RouteTable::new(vec![
            route("/", false, upstream()),
            Route {
                hosts: vec!["api.example.com".parse().unwrap()],
                ..route("/", false, upstream())
            },
            Route {
                hosts: vec!["api.example.com".parse().unwrap()],
                ..regex(r"\.json$")
            },
        ]);
        assert_eq!(
            t.find(Some(b"api.example.com"), b"/a.json"),
            Found::Route(2)
        );
        assert_eq!(t.find(Some(b"example.com"), b"/a.json"), Found::Route(0));
        assert_eq!(t.find(None, b"/a.json"), Found::Route(0));
    }

    #[test]
    fn every_spelling_of_a_path_meets_the_same_route() {
        // What the table is given is the normalised path: the spellings below all normalise
        // to /admin/x, so none of them can reach /api/ and dodge /admin/'s allow list.
        let t = RouteTable::new(vec![
            route("/api/", false, upstream()),
            Route {
                allow: vec!["10.0.0.0/8".parse().unwrap()],
                ..route("/admin/", false, upstream())
            },
        ]);
        for raw in [
            "/api/../admin/x",
            "/api/%2e%2e/admin/x",
            "/api/.%2E/admin/x",
            "/api/..%2fadmin/x",
            "//api//..//admin/x",
        ] {
            let mut path = Vec::new();
            crate::uwsgi::normalize_path(raw.as_bytes(), &mut path).unwrap();
            let Found::Route(i) = t.find(None, &path) else {
                panic!("{raw}: no route")
            };
            let route = t.get(i).unwrap();
            assert_eq!(route.path, "/admin/", "{raw}");
            let access = |ip: &str| route.access_of(ip.parse().unwrap());
            assert_eq!(access("127.0.0.1"), Access::Denied, "{raw}");
            assert_eq!(access("10.1.2.3"), Access::Allowed, "{raw}");
        }
    }
}
