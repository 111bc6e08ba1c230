//! Every way a request can fail, and what each failure means: the status the client gets,
//! the metric label it counts under, what happens to the connection, and the log line. This
//! is the one table for all of it; the steps of a request only say *what* failed.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::auth_basic::{Denied, UserFile};
use crate::http::HttpError;
use crate::limits::ConnLimit;
use crate::metrics::{ProxyRejection, UpstreamError, WorkerStats};
use crate::proxy_protocol::ProxyHeaderError;
use crate::ratelimit::{Gate, WINDOW};
use crate::uwsgi::UwsgiError;

/// Which part of a request a client failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The request head.
    Head,
    /// The request body.
    Body,
}

/// What ringway was doing with the upstream when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Sending the request.
    Sending,
    /// Reading the response head.
    ReadingHead,
    /// Relaying the response body.
    Relaying,
}

/// How an upstream broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadResponse {
    /// A malformed response head.
    Head(HttpError),
    /// A 1xx answer (uwsgi has no use for them).
    Interim(u16),
    /// A head larger than the limit.
    HeadTooLarge(usize),
    /// A malformed chunked body.
    Body(HttpError),
    /// An X-Accel-Redirect that names no file route.
    AccelRedirect,
    /// A `101 Switching Protocols` before the server read the whole request body.
    SwitchedEarly,
}

/// Why a request failed. `Copy` and allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The request head broke HTTP's rules.
    Request(HttpError),
    /// The body is larger than `max_body_size` (`declared` when Content-Length said so).
    BodyTooLarge {
        /// The Content-Length, if there was one.
        declared: Option<u64>,
        /// The limit.
        limit: u64,
    },
    /// The request cannot be put in a uwsgi packet (vars too large, bad path).
    Packet(UwsgiError),
    /// No route serves the path.
    NoRoute,
    /// A static route has no file for the path (and no fallback).
    NoFile,
    /// An app's X-Accel-Redirect with no path, a malformed escape, or a `..` segment as
    /// written or once decoded: 404, as nginx refuses an unsafe URI there (a path built from user input must not climb to
    /// another file under the route's root).
    UnsafeAccelRedirect,
    /// The request's Host is not one the configuration's `hosts` lists (or it has none).
    MisdirectedHost,
    /// A method not served there: a static route asked for something other than GET or
    /// HEAD, or TRACE or CONNECT anywhere (nginx refuses them too). The methods allowed.
    MethodNotAllowed(Allowed),
    /// A file's validators fail the request's If-Match / If-Unmodified-Since.
    PreconditionFailed,
    /// The Range asked for lies outside the file (its size).
    RangeNotSatisfiable(u64),
    /// A file could not be read.
    FileRead(io::ErrorKind),
    /// The route's allow list does not hold the client.
    Forbidden,
    /// The `auth_basic` of the route at this index did not let the request in (its
    /// challenge goes in the 401's `WWW-Authenticate`).
    Unauthorized(Denied, usize),
    /// The route's `auth_basic` user file changed into one that cannot be used.
    UserFile(UserFile),
    /// The route's `auth_request` answered 401 or 403: that is the client's answer.
    AuthDenied(u16),
    /// The route's `auth_request` answered 401 and its `redirect_401` sends the client
    /// elsewhere: 302.
    AuthRedirect,
    /// The route's `auth_request` gave no verdict: 500.
    AuthFailed(AuthFailure),
    /// The client was too slow sending the head or the body.
    ClientTimeout(Part),
    /// The client closed its connection (or reset it, in the body) in the middle of the
    /// head or the body.
    ClientClosed(Part),
    /// The client's socket failed.
    ClientIo(io::ErrorKind),
    /// The client stopped taking the response (gone, or too slow for `send_timeout`).
    ClientGone,
    /// Every upstream refused the connection or failed to connect.
    UpstreamRefused,
    /// An upstream's listen backlog is full.
    UpstreamBusy,
    /// Connecting took longer than `upstream_connect_timeout`.
    UpstreamConnectTimeout,
    /// The upstream took longer than `upstream_read_timeout`.
    UpstreamTimeout(Step),
    /// The upstream's socket failed.
    UpstreamIo(Step, io::ErrorKind),
    /// The upstream closed before its response head was complete.
    UpstreamClosed,
    /// The upstream's response broke the protocol.
    UpstreamBadResponse(BadResponse),
    /// The upstream closed before the end of its body.
    UpstreamTruncated,
    /// A temp file could not be created, written or read.
    TempFile(io::ErrorKind),
    /// A plain HTTP request on the TLS port: nginx's 400 with its own words.
    PlainHttpOnTls,
    /// ringway could not open a socket to an upstream: it is out of file descriptors or
    /// kernel memory (the errno), which says nothing of the upstream.
    NoSocket(i32),
    /// The connection is over `max_connections` or `limit_conn_per_ip`: its first request is
    /// refused and the connection closed.
    TooManyConnections(ConnLimit),
    /// The client is over the route's `limit_req`: retry after this many seconds; the
    /// route's status for it (`limit_req.status`, 429 unless set).
    RateLimited(u32, u16),
    /// The client has as many requests on the route at once as its `limit_conn` allows;
    /// the route's status for it (`limit_conn.status`, 503 unless set).
    ConnLimited(u16),
    /// The request's Referer is not one the route's `referers` take (a hotlinked file);
    /// the route's status for it (`referers.status`, 403 unless set).
    InvalidReferer(u16),
    /// Every server of the group is at `max_conns` and its queue is full.
    QueueFull,
    /// The request waited `queue_timeout` for a slot at the group's servers.
    QueueTimeout,
    /// The connection did not start with a valid PROXY protocol header (`proxy_protocol`).
    ProxyHeader(ProxyHeaderError),
    /// No complete PROXY protocol header within `client_header_timeout`.
    ProxyHeaderTimeout,
    /// More than [`MAX_INTERNAL_REDIRECTS`] internal redirects (X-Accel-Redirect, a static
    /// route's fallback) for one request: an app and its routes send it round in a circle.
    RedirectCycle,
    /// The deflate stream of an answer being compressed (`[gzip]`) refused its input.
    Compress,
    /// No thread could be started for blocking work the request needed (a slow password
    /// hash; see `blocking.rs`): a pids limit reached.
    NoThread,
}

/// Why an `auth_request` gave no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// It answered this status, neither 2xx nor 401 nor 403.
    Status(u16),
    /// It got no answer (the upstream's failure is logged on its own).
    NoAnswer,
    /// No route passing requests to an upstream serves its path for this request's Host.
    NoRoute,
}

/// The methods a 405 names in its `Allow` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// A static route's.
    Files,
    /// What ringway passes to an app (all but TRACE and CONNECT).
    Proxied,
    /// The status page's (`stub_status`).
    Status,
}

impl Allowed {
    fn list(self) -> &'static str {
        match self {
            Allowed::Files | Allowed::Status => "GET, HEAD",
            Allowed::Proxied => "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS",
        }
    }
}

/// Internal redirects one request may take, as nginx allows (`NGX_HTTP_MAX_URI_CHANGES`).
pub(crate) const MAX_INTERNAL_REDIRECTS: u8 = 10;

/// How loud a failure is in the log: client mistakes are the client's business (debug or
/// info); an upstream or local failure is the operator's (warn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
}

/// Number of kinds: the gates below have one each.
const KINDS: usize = 43;

impl Fail {
    /// The status the client is answered with, if it can still be answered.
    pub(crate) fn status(self) -> Option<u16> {
        Some(match self {
            Fail::Request(err) => match err {
                HttpError::UriTooLong => 414,
                HttpError::HeadersTooLarge | HttpError::TooManyHeaders => 431,
                HttpError::UnsupportedEncoding => 501,
                HttpError::UnsupportedVersion => 505,
                HttpError::BadSyntax
                | HttpError::LengthAndEncoding
                | HttpError::BadContentLength
                | HttpError::ObsFold
                | HttpError::SpaceBeforeColon
                | HttpError::BareCr
                | HttpError::BadHost
                | HttpError::BadMethod
                | HttpError::RepeatedHeader(_) => 400,
            },
            Fail::BodyTooLarge { .. } => 413,
            Fail::Packet(UwsgiError::VarsTooLarge { .. } | UwsgiError::TooManyVars { .. }) => 431,
            Fail::Packet(UwsgiError::BadPath) | Fail::PlainHttpOnTls => 400,
            Fail::NoRoute | Fail::NoFile | Fail::UnsafeAccelRedirect => 404,
            Fail::Forbidden => 403,
            Fail::Unauthorized(..) => 401,
            Fail::MethodNotAllowed(_) => 405,
            Fail::MisdirectedHost => 421,
            Fail::PreconditionFailed => 412,
            Fail::RangeNotSatisfiable(_) => 416,
            Fail::UserFile(UserFile::Missing) => 403,
            Fail::AuthDenied(status) => status,
            Fail::AuthRedirect => 302,
            Fail::AuthFailed(_) => 500,
            // nginx's for a file it may not open.
            Fail::FileRead(io::ErrorKind::PermissionDenied) => 403,
            Fail::FileRead(_)
            | Fail::RedirectCycle
            | Fail::Compress
            | Fail::NoThread
            | Fail::UserFile(UserFile::Broken) => 500,
            Fail::ClientTimeout(_) => 408,
            // Before any request: there is no one to answer in HTTP, only a socket to close.
            Fail::ClientClosed(_)
            | Fail::ClientIo(_)
            | Fail::ClientGone
            | Fail::ProxyHeader(_)
            | Fail::ProxyHeaderTimeout => return None,
            Fail::UpstreamRefused
            | Fail::UpstreamIo(..)
            | Fail::UpstreamClosed
            | Fail::UpstreamBadResponse(_)
            | Fail::UpstreamTruncated => 502,
            Fail::UpstreamBusy => 503,
            Fail::UpstreamConnectTimeout | Fail::UpstreamTimeout(_) => 504,
            // nginx's when `socket()` fails: no next server, no failure counted against one.
            Fail::TempFile(_) | Fail::NoSocket(_) => 500,
            // As nginx's limit_conn and limit_req answer by default (limit_req with 429
            // here, as its `limit_req_status 429` users set it).
            Fail::TooManyConnections(_) | Fail::QueueFull | Fail::QueueTimeout => 503,
            Fail::RateLimited(_, status)
            | Fail::ConnLimited(status)
            | Fail::InvalidReferer(status) => status,
        })
    }

    /// The status a request that gets no answer is logged and counted under (0: none,
    /// which is nginx's 499): a head or body the client cut short is nginx's 400 (found by
    /// review: a body was 499, a head not logged at all).
    pub(crate) fn unanswered_status(self) -> u16 {
        match self {
            Fail::ClientClosed(_) => 400,
            _ => 0,
        }
    }

    /// The `kind` label of `ringway_upstream_errors_total`, for upstream failures.
    pub(crate) fn upstream_error(self) -> Option<UpstreamError> {
        Some(match self {
            Fail::UpstreamRefused => UpstreamError::Refused,
            Fail::UpstreamBusy => UpstreamError::Busy,
            Fail::UpstreamConnectTimeout => UpstreamError::ConnectTimeout,
            Fail::UpstreamTimeout(_) => UpstreamError::Timeout,
            Fail::UpstreamBadResponse(_) => UpstreamError::BadResponse,
            Fail::UpstreamIo(..) | Fail::UpstreamClosed | Fail::UpstreamTruncated => {
                UpstreamError::Broken
            }
            _ => return None,
        })
    }

    /// The `reason` label of `ringway_proxy_protocol_rejected_total`, for a connection closed
    /// for want of a PROXY header.
    pub(crate) fn proxy_rejection(self) -> Option<ProxyRejection> {
        match self {
            Fail::ProxyHeader(_) => Some(ProxyRejection::Invalid),
            Fail::ProxyHeaderTimeout => Some(ProxyRejection::Timeout),
            _ => None,
        }
    }

    /// Whether this is an answer ringway chose for a request it read whole (a path with no
    /// route or file, a refusal, a precondition): the connection is sound and may serve the
    /// next request, if the request had no body left unread.
    pub(crate) fn is_clean(self) -> bool {
        matches!(
            self,
            Fail::NoRoute
                | Fail::RateLimited(..)
                | Fail::ConnLimited(_)
                | Fail::InvalidReferer(_)
                | Fail::NoFile
                | Fail::Forbidden
                | Fail::Unauthorized(..)
                | Fail::AuthDenied(_)
                | Fail::AuthRedirect
                | Fail::MethodNotAllowed(_)
                | Fail::MisdirectedHost
                | Fail::PreconditionFailed
                | Fail::RangeNotSatisfiable(_)
                | Fail::RedirectCycle
        )
    }

    /// The body the answer always has, whatever the operator's error pages say: nginx's
    /// words to a plain request on its TLS port (its `error_page 497`, not 400's).
    pub(crate) fn fixed_body(self) -> Option<(&'static str, &'static [u8])> {
        match self {
            Fail::PlainHttpOnTls => Some((
                "text/plain",
                b"The plain HTTP request was sent to HTTPS port\n",
            )),
            _ => None,
        }
    }

    /// A header the answer carries besides ringway's usual ones.
    pub(crate) fn header(self) -> Option<(&'static [u8], String)> {
        match self {
            Fail::MethodNotAllowed(allowed) => Some((b"Allow", allowed.list().to_owned())),
            Fail::RangeNotSatisfiable(size) => Some((b"Content-Range", format!("bytes */{size}"))),
            Fail::RateLimited(seconds, _) => Some((b"Retry-After", seconds.to_string())),
            _ => None,
        }
    }

    /// Whether the client's socket may still have unread request bytes worth draining after
    /// the answer: false once its reading side was shut (a read timed out).
    pub(crate) fn may_linger(self) -> bool {
        !matches!(self, Fail::ClientTimeout(_))
    }

    /// This kind's index among the [`KINDS`] gates.
    fn kind(self) -> usize {
        match self {
            Fail::Request(_) => 0,
            Fail::BodyTooLarge { .. } => 1,
            Fail::Packet(UwsgiError::VarsTooLarge { .. } | UwsgiError::TooManyVars { .. }) => 2,
            Fail::Packet(UwsgiError::BadPath) => 3,
            Fail::ClientTimeout(_) => 4,
            Fail::ClientClosed(_) => 5,
            Fail::ClientIo(_) => 6,
            Fail::ClientGone => 7,
            Fail::UpstreamRefused => 8,
            Fail::UpstreamBusy => 9,
            Fail::UpstreamConnectTimeout => 10,
            Fail::UpstreamTimeout(_) => 11,
            Fail::UpstreamIo(..) | Fail::UpstreamClosed => 12,
            Fail::UpstreamBadResponse(_) => 13,
            Fail::UpstreamTruncated => 14,
            Fail::TempFile(_) => 15,
            Fail::NoRoute => 16,
            Fail::Forbidden => 17,
            Fail::NoFile => 18,
            Fail::MethodNotAllowed(_) => 19,
            Fail::PreconditionFailed => 20,
            Fail::RangeNotSatisfiable(_) => 21,
            Fail::FileRead(_) => 22,
            Fail::TooManyConnections(ConnLimit::Process) => 23,
            Fail::TooManyConnections(ConnLimit::PerIp) => 24,
            Fail::RateLimited(..) => 25,
            Fail::QueueFull => 26,
            Fail::QueueTimeout => 27,
            Fail::ProxyHeader(_) => 28,
            Fail::ProxyHeaderTimeout => 29,
            Fail::RedirectCycle => 30,
            Fail::MisdirectedHost => 31,
            Fail::Compress => 32,
            Fail::Unauthorized(..) => 33,
            Fail::UserFile(_) => 34,
            Fail::AuthDenied(_) | Fail::AuthRedirect => 35,
            Fail::AuthFailed(_) => 36,
            Fail::UnsafeAccelRedirect => 37,
            Fail::NoSocket(_) => 38,
            Fail::PlainHttpOnTls => 39,
            Fail::NoThread => 40,
            Fail::ConnLimited(_) => 41,
            Fail::InvalidReferer(_) => 42,
        }
    }

    fn level(self) -> Level {
        match self {
            Fail::ClientClosed(_)
            | Fail::ClientIo(_)
            | Fail::ClientGone
            | Fail::NoRoute
            | Fail::NoFile
            | Fail::MethodNotAllowed(_)
            | Fail::PreconditionFailed
            | Fail::RangeNotSatisfiable(_)
            // A page elsewhere showing the route's image: one line per view would flood.
            | Fail::InvalidReferer(_)
            // Every browser's first request to the route: nothing wrong.
            | Fail::Unauthorized(Denied::NoCredentials, _)
            | Fail::AuthDenied(401)
            | Fail::AuthRedirect => Level::Debug,
            Fail::TooManyConnections(ConnLimit::PerIp)
            | Fail::RateLimited(..)
            | Fail::ConnLimited(_)
            | Fail::Forbidden
            | Fail::Unauthorized(..)
            | Fail::AuthDenied(_)
            | Fail::MisdirectedHost
            | Fail::Request(_)
            | Fail::BodyTooLarge { .. }
            | Fail::Packet(UwsgiError::BadPath)
            | Fail::PlainHttpOnTls
            | Fail::ClientTimeout(_)
            // A client that reached ringway around its load balancer, or a load balancer
            // not set to send the header: worth seeing, not alarming.
            | Fail::ProxyHeader(_)
            | Fail::ProxyHeaderTimeout => Level::Info,
            // The operator's setting is too small for a legitimate request, or the upstream
            // or the disk failed: worth a warning.
            Fail::Packet(UwsgiError::VarsTooLarge { .. } | UwsgiError::TooManyVars { .. })
            | Fail::UpstreamRefused
            | Fail::UpstreamBusy
            | Fail::UpstreamConnectTimeout
            | Fail::UpstreamTimeout(_)
            | Fail::UpstreamIo(..)
            | Fail::UpstreamClosed
            | Fail::UpstreamBadResponse(_)
            | Fail::UpstreamTruncated
            | Fail::TempFile(_)
            | Fail::NoSocket(_)
            | Fail::FileRead(_)
            | Fail::TooManyConnections(ConnLimit::Process)
            | Fail::QueueFull
            | Fail::QueueTimeout
            | Fail::RedirectCycle
            | Fail::Compress
            | Fail::NoThread
            | Fail::UserFile(_)
            | Fail::AuthFailed(_)
            | Fail::UnsafeAccelRedirect => Level::Warn,
        }
    }

    /// Logs a failure the request got past, at `upstream` (another server took it over):
    /// rate-limited with its kind, not counted as the request's.
    pub(crate) fn report_passed_on(self, upstream: &dyn fmt::Display) {
        if GATES[self.kind()].allow() {
            tracing::warn!(%upstream, "{self}; the request goes on to the next server");
        }
    }

    /// Logs a failure ringway worked around, saying `how` (rate-limited per kind): no
    /// status, since the answer did not change for it.
    pub(crate) fn report_worked_around(self, peer: SocketAddr, how: &str) {
        if GATES[self.kind()].allow() {
            tracing::warn!(%peer, "{self}; {how}");
        }
    }

    /// Counts the failure in `stats` and logs it (rate-limited per kind), naming `peer`: the
    /// request's real client once its head was read (behind a trusted proxy, the address
    /// its X-Forwarded-For names, as nginx's realip makes its error lines say), else the
    /// connection's.
    pub(crate) fn report(self, peer: impl fmt::Display, stats: &WorkerStats) {
        if let Some(kind) = self.upstream_error() {
            stats.upstream_error(kind);
        }
        if let Some(reason) = self.proxy_rejection() {
            stats.proxy_rejected(reason);
        }
        let gate = &GATES[self.kind()];
        let level = self.level();
        // Debug lines are off in production; don't spend a gate slot on them.
        if level != Level::Debug && !gate.allow() {
            return;
        }
        let status = self.status().unwrap_or(0);
        match level {
            Level::Debug => tracing::debug!(%peer, status, "{self}"),
            Level::Info => tracing::info!(%peer, status, "{self}"),
            Level::Warn => tracing::warn!(%peer, status, "{self}"),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fail::Request(err) => write!(f, "rejected request: {err}"),
            Fail::BodyTooLarge {
                declared: Some(n),
                limit,
            } => write!(
                f,
                "request body of {n} bytes over --max-body-size ({limit})"
            ),
            Fail::BodyTooLarge {
                declared: None,
                limit,
            } => write!(f, "chunked request body over --max-body-size ({limit})"),
            Fail::Packet(UwsgiError::VarsTooLarge { size, limit }) => write!(
                f,
                "request headers make a uwsgi vars block of {size}+ bytes, over \
                 --upstream-buffer-size ({limit}, uWSGI's buffer-size): answering 431; raise \
                 both if such requests are legitimate"
            ),
            Fail::Packet(UwsgiError::TooManyVars { limit }) => write!(
                f,
                "request headers make a uwsgi packet of more than {limit} vars, which uWSGI \
                 drops unanswered: answering 431"
            ),
            Fail::Packet(UwsgiError::BadPath) => f.write_str("rejected request path"),
            Fail::NoRoute => f.write_str("no route for the path: 404"),
            Fail::MisdirectedHost => f.write_str("a Host this server does not serve: 421"),
            Fail::Compress => f.write_str("compressing the answer failed"),
            Fail::NoThread => f.write_str(
                "no thread could be started for the request's blocking work (a limit on \
                 the number of tasks?): 500",
            ),
            Fail::Forbidden => f.write_str("client refused by the route's allow or deny list: 403"),
            Fail::Unauthorized(denied, _) => f.write_str(match denied {
                Denied::NoCredentials => "no credentials for the route's auth_basic: 401",
                Denied::Malformed => "an Authorization header that is not Basic user:password: 401",
                Denied::UnknownUser => "a user the auth_basic user_file does not list: 401",
                Denied::WrongPassword => "a wrong password for an auth_basic user: 401",
                Denied::UserFile(_) => "the auth_basic user_file cannot be used",
                Denied::ClientGone => "the client left while its password waited to be checked",
                Denied::Unchecked => "no thread could be started to check the password",
            }),
            Fail::UserFile(UserFile::Missing) => {
                f.write_str("the auth_basic user_file is missing: 403")
            }
            Fail::UserFile(UserFile::Broken) => f.write_str(
                "the auth_basic user_file cannot be used (see the error when it was read): 500",
            ),
            Fail::NoFile => f.write_str("no file for the path: 404"),
            Fail::UnsafeAccelRedirect => f.write_str(
                "the app's X-Accel-Redirect has no path or a `..` segment (unsafe): 404",
            ),
            Fail::MethodNotAllowed(Allowed::Files) => {
                f.write_str("files are GET and HEAD only: 405")
            }
            Fail::MethodNotAllowed(Allowed::Proxied) => {
                f.write_str("TRACE and CONNECT are not served: 405")
            }
            Fail::MethodNotAllowed(Allowed::Status) => {
                f.write_str("the status page is GET and HEAD only: 405")
            }
            Fail::PreconditionFailed => f.write_str("file precondition failed: 412"),
            Fail::RangeNotSatisfiable(size) => {
                write!(f, "range outside a file of {size} bytes: 416")
            }
            Fail::FileRead(kind) => write!(f, "opening or reading a file failed: {kind}"),
            Fail::ClientTimeout(part) => write!(f, "client too slow sending the {part}: 408"),
            Fail::ClientClosed(part) => write!(f, "client closed in the middle of the {part}"),
            Fail::ClientIo(kind) => write!(f, "client socket error: {kind}"),
            Fail::ClientGone => f.write_str("client went away during the response"),
            Fail::UpstreamRefused => f.write_str("no upstream reachable: connection refused"),
            Fail::UpstreamBusy => f.write_str("upstream busy: its listen backlog is full"),
            Fail::UpstreamConnectTimeout => f.write_str("upstream connect timed out"),
            Fail::UpstreamTimeout(step) => write!(f, "upstream timed out while {step}"),
            Fail::UpstreamIo(step, kind) => write!(f, "upstream failed while {step}: {kind}"),
            Fail::UpstreamClosed => f.write_str("upstream closed before a complete response head"),
            Fail::UpstreamBadResponse(bad) => write!(f, "bad upstream response: {bad}"),
            Fail::UpstreamTruncated => {
                f.write_str("upstream closed before the end of the response body")
            }
            Fail::TempFile(kind) => write!(f, "temp file failed: {kind}"),
            Fail::PlainHttpOnTls => f.write_str("a plain HTTP request on the TLS port: 400"),
            Fail::NoSocket(errno) => write!(
                f,
                "no socket for the upstream: {} (raise the open files limit, LimitNOFILE)",
                io::Error::from_raw_os_error(errno)
            ),
            Fail::TooManyConnections(ConnLimit::Process) => {
                f.write_str("max_connections reached: 503 on the connection's first request")
            }
            Fail::TooManyConnections(ConnLimit::PerIp) => {
                f.write_str("client over limit_conn_per_ip: 503 on the connection's first request")
            }
            Fail::RateLimited(seconds, status) => {
                write!(
                    f,
                    "client over the route's limit_req: {status}, retry after {seconds}s"
                )
            }
            Fail::ConnLimited(status) => write!(
                f,
                "client has as many requests at once as the route's limit_conn allows: {status}"
            ),
            Fail::InvalidReferer(status) => {
                write!(f, "a Referer the route's referers do not take: {status}")
            }
            Fail::QueueFull => f.write_str(
                "upstream group at max_conns and its queue full: 503 (raise queue, or add \
                 uWSGI workers)",
            ),
            Fail::QueueTimeout => {
                f.write_str("waited queue_timeout for an upstream slot (max_conns): 503")
            }
            Fail::ProxyHeader(err) => write!(
                f,
                "connection closed: proxy_protocol is on and it did not start with a valid \
                 PROXY header ({err})"
            ),
            Fail::ProxyHeaderTimeout => f.write_str(
                "connection closed: proxy_protocol is on and no PROXY header came within \
                 client_header_timeout",
            ),
            Fail::RedirectCycle => write!(
                f,
                "more than {MAX_INTERNAL_REDIRECTS} internal redirects (X-Accel-Redirect, \
                 fallback) for one request: 500; the app and the routes send it in a circle"
            ),
            Fail::AuthDenied(status) => write!(f, "the route's auth_request answered {status}"),
            Fail::AuthRedirect => {
                f.write_str("the route's auth_request answered 401: 302 to its redirect_401")
            }
            Fail::AuthFailed(AuthFailure::Status(status)) => write!(
                f,
                "the route's auth_request answered {status}, not 2xx, 401 or 403: 500"
            ),
            Fail::AuthFailed(AuthFailure::NoAnswer) => {
                f.write_str("the route's auth_request got no answer (see the line before): 500")
            }
            Fail::AuthFailed(AuthFailure::NoRoute) => f.write_str(
                "no route passing requests to an upstream serves the auth_request's path for \
                 this Host: 500",
            ),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Head => "request head",
            Part::Body => "request body",
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Sending => "sending the request",
            Step::ReadingHead => "reading the response head",
            Step::Relaying => "relaying the response",
        })
    }
}

impl fmt::Display for BadResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadResponse::Head(HttpError::TooManyHeaders) => write!(
                f,
                "more than {} header lines",
                crate::http::MAX_RESPONSE_HEADERS
            ),
            BadResponse::Head(err) => write!(f, "malformed head: {err}"),
            BadResponse::Interim(status) => write!(f, "interim status {status}"),
            BadResponse::SwitchedEarly => {
                write!(
                    f,
                    "switched protocols before reading the whole request body"
                )
            }
            BadResponse::HeadTooLarge(limit) => write!(f, "head over {limit} bytes"),
            BadResponse::Body(err) => write!(f, "malformed chunked body: {err}"),
            BadResponse::AccelRedirect => {
                f.write_str("X-Accel-Redirect to a path no static route serves")
            }
        }
    }
}

static GATES: [Gate; KINDS] = [const { Gate::new() }; KINDS];

/// Writes one summary line per kind of failure whose lines were suppressed since the last
/// call; call once per [`WINDOW`].
pub(crate) fn log_suppressed() {
    for (kind, gate) in GATES.iter().enumerate() {
        let n = gate.take_suppressed();
        if n == 0 {
            continue;
        }
        let (example, level) = KIND_NAMES[kind];
        let secs = WINDOW.as_secs();
        match level {
            Level::Warn => {
                tracing::warn!(
                    suppressed = n,
                    "suppressed {n} log lines like \"{example}\" in {secs}s"
                )
            }
            _ => tracing::info!(
                suppressed = n,
                "suppressed {n} log lines like \"{example}\" in {secs}s"
            ),
        }
    }
}

/// What each kind's summary line calls it, and its level.
const KIND_NAMES: [(&str, Level); KINDS] = [
    ("rejected request", Level::Info),
    ("request body over max_body_size", Level::Info),
    ("uwsgi vars block over upstream_buffer_size", Level::Warn),
    ("rejected request path", Level::Info),
    ("client too slow", Level::Info),
    ("client closed mid-request", Level::Debug),
    ("client socket error", Level::Debug),
    ("client went away", Level::Debug),
    ("no upstream reachable", Level::Warn),
    ("upstream busy", Level::Warn),
    ("upstream connect timed out", Level::Warn),
    ("upstream timed out", Level::Warn),
    ("upstream failed", Level::Warn),
    ("bad upstream response", Level::Warn),
    ("upstream closed mid-body", Level::Warn),
    ("temp file failed", Level::Warn),
    ("no route", Level::Debug),
    ("client not allowed", Level::Info),
    ("no file", Level::Debug),
    ("method not allowed", Level::Debug),
    ("file precondition failed", Level::Debug),
    ("range not satisfiable", Level::Debug),
    ("reading a file failed", Level::Warn),
    ("max_connections reached", Level::Warn),
    ("client over limit_conn_per_ip", Level::Info),
    ("client over limit_req", Level::Info),
    ("upstream queue full", Level::Warn),
    ("upstream queue timeout", Level::Warn),
    ("connection without a valid PROXY header", Level::Info),
    ("no PROXY header in time", Level::Info),
    ("internal redirect cycle", Level::Warn),
    ("request for a Host not served", Level::Info),
    ("compressing an answer failed", Level::Warn),
    ("auth_basic refused a user or password", Level::Info),
    ("auth_basic user_file unusable", Level::Warn),
    ("auth_request refused a request", Level::Info),
    ("auth_request gave no verdict", Level::Warn),
    ("X-Accel-Redirect to no safe path", Level::Warn),
    ("no socket for the upstream", Level::Warn),
    ("a plain HTTP request on the TLS port", Level::Info),
    ("no thread for blocking work", Level::Warn),
    ("client over a route's limit_conn", Level::Info),
    ("a Referer the route does not take", Level::Debug),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// One example of each kind, in kind order.
    fn every_kind() -> [Fail; KINDS] {
        let kind = io::ErrorKind::BrokenPipe;
        [
            Fail::Request(HttpError::BadSyntax),
            Fail::BodyTooLarge {
                declared: Some(9),
                limit: 1,
            },
            Fail::Packet(UwsgiError::VarsTooLarge {
                size: 5000,
                limit: 4096,
            }),
            Fail::Packet(UwsgiError::BadPath),
            Fail::ClientTimeout(Part::Head),
            Fail::ClientClosed(Part::Body),
            Fail::ClientIo(kind),
            Fail::ClientGone,
            Fail::UpstreamRefused,
            Fail::UpstreamBusy,
            Fail::UpstreamConnectTimeout,
            Fail::UpstreamTimeout(Step::ReadingHead),
            Fail::UpstreamIo(Step::Sending, kind),
            Fail::UpstreamBadResponse(BadResponse::Interim(100)),
            Fail::UpstreamTruncated,
            Fail::TempFile(io::ErrorKind::StorageFull),
            Fail::NoRoute,
            Fail::Forbidden,
            Fail::NoFile,
            Fail::MethodNotAllowed(Allowed::Proxied),
            Fail::PreconditionFailed,
            Fail::RangeNotSatisfiable(10),
            Fail::FileRead(io::ErrorKind::Other),
            Fail::TooManyConnections(ConnLimit::Process),
            Fail::TooManyConnections(ConnLimit::PerIp),
            Fail::RateLimited(3, 429),
            Fail::QueueFull,
            Fail::QueueTimeout,
            Fail::ProxyHeader(ProxyHeaderError::NotProxy),
            Fail::ProxyHeaderTimeout,
            Fail::RedirectCycle,
            Fail::MisdirectedHost,
            Fail::Compress,
            Fail::Unauthorized(Denied::WrongPassword, 0),
            Fail::UserFile(UserFile::Broken),
            Fail::AuthDenied(403),
            Fail::AuthFailed(AuthFailure::Status(502)),
            Fail::UnsafeAccelRedirect,
            Fail::NoSocket(libc::EMFILE),
            Fail::PlainHttpOnTls,
            Fail::NoThread,
            Fail::ConnLimited(503),
            Fail::InvalidReferer(403),
        ]
    }

    #[test]
    fn status_table() {
        let want: [Option<u16>; KINDS] = [
            Some(400),
            Some(413),
            Some(431),
            Some(400),
            Some(408),
            None,
            None,
            None,
            Some(502),
            Some(503),
            Some(504),
            Some(504),
            Some(502),
            Some(502),
            Some(502),
            Some(500),
            Some(404),
            Some(403),
            Some(404),
            Some(405),
            Some(412),
            Some(416),
            Some(500),
            Some(503),
            Some(503),
            Some(429),
            Some(503),
            Some(503),
            None,
            None,
            Some(500),
            Some(421),
            Some(500),
            Some(401),
            Some(500),
            Some(403),
            Some(500),
            Some(404),
            Some(500),
            Some(400),
            Some(500),
            Some(503),
            Some(403),
        ];
        for (fail, status) in every_kind().into_iter().zip(want) {
            assert_eq!(fail.status(), status, "{fail:?}");
        }
    }

    #[test]
    fn request_errors_statuses() {
        use HttpError::*;
        let table = [
            (BadSyntax, 400),
            (UriTooLong, 414),
            (HeadersTooLarge, 431),
            (TooManyHeaders, 431),
            (LengthAndEncoding, 400),
            (BadContentLength, 400),
            (UnsupportedEncoding, 501),
            (ObsFold, 400),
            (SpaceBeforeColon, 400),
            (BareCr, 400),
            (BadHost, 400),
            (BadMethod, 400),
            (RepeatedHeader("Authorization"), 400),
            (UnsupportedVersion, 505),
        ];
        for (err, status) in table {
            assert_eq!(Fail::Request(err).status(), Some(status), "{err:?}");
        }
    }

    #[test]
    fn kinds_are_dense_and_named_at_their_level() {
        for (i, fail) in every_kind().into_iter().enumerate() {
            assert_eq!(fail.kind(), i, "{fail:?}");
            assert_eq!(KIND_NAMES[i].1, fail.level(), "{fail:?}");
        }
    }

    #[test]
    fn client_errors_never_warn_and_upstream_errors_are_counted() {
        for fail in every_kind() {
            let client_side = matches!(
                fail,
                Fail::Request(_)
                    | Fail::BodyTooLarge { .. }
                    | Fail::Packet(UwsgiError::BadPath)
                    | Fail::ClientTimeout(_)
                    | Fail::ClientClosed(_)
                    | Fail::ClientIo(_)
                    | Fail::ClientGone
                    | Fail::NoRoute
                    | Fail::Forbidden
                    | Fail::Unauthorized(..)
                    | Fail::AuthDenied(_)
                    | Fail::AuthRedirect
                    | Fail::NoFile
                    | Fail::MethodNotAllowed(_)
                    | Fail::MisdirectedHost
                    | Fail::PreconditionFailed
                    | Fail::RangeNotSatisfiable(_)
                    | Fail::TooManyConnections(ConnLimit::PerIp)
                    | Fail::RateLimited(..)
                    | Fail::ConnLimited(_)
                    | Fail::InvalidReferer(_)
                    | Fail::ProxyHeader(_)
                    | Fail::ProxyHeaderTimeout
            );
            if client_side {
                assert_ne!(fail.level(), Level::Warn, "{fail:?}");
            }
            let upstream_side = format!("{fail:?}").starts_with("Upstream");
            assert_eq!(fail.upstream_error().is_some(), upstream_side, "{fail:?}");
        }
        assert_eq!(
            Fail::UpstreamClosed.upstream_error(),
            Some(UpstreamError::Broken)
        );
    }

    #[test]
    fn a_rate_limited_answer_says_when_to_retry() {
        assert_eq!(
            Fail::RateLimited(7, 429).header(),
            Some((&b"Retry-After"[..], "7".to_owned()))
        );
        assert!(Fail::RateLimited(1, 503).is_clean());
        assert!(Fail::ConnLimited(503).is_clean());
        assert_eq!(Fail::ConnLimited(503).header(), None);
        assert_eq!(
            Fail::QueueFull.upstream_error(),
            None,
            "a limit, not a failure"
        );
    }

    #[test]
    fn log_lines_are_precise() {
        let many = Fail::UpstreamBadResponse(BadResponse::Head(HttpError::TooManyHeaders));
        assert_eq!(
            many.to_string(),
            "bad upstream response: more than 512 header lines"
        );
        assert!(
            Fail::ClientTimeout(Part::Body)
                .to_string()
                .contains("request body")
        );
    }
}
