//! From settings to the runtime configuration: defaults filled in, every value checked, the
//! upstream groups and the route table built. An error names the flag, or the key (with its
//! place, `routes[2].upstream`) and the file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;

use super::next_upstream::NextUpstream;
use super::server_addr::{Lookup, Protocol, ServerAddr, ServerAt};
use super::settings::{
    AppSettings, AuthBasicSetting, AuthRequestSetting, GroupSettings, HeaderSetting,
    LimitConnSettings, LimitExceptSettings, LimitReqSettings, LimitSettings, ReferersSettings,
    Resolved, RespondSettings, RouteSettings, Satisfy, Settings, TlsSettings,
};
use super::values::{
    Cidr, ClientRange, Dur, Expires, HostName, KeyExchangeGroup, LogEscape, LogFormat, LogTarget,
    LoggedStatuses, MetricsListen, REDIRECT_STATUSES, RealIpHeader, Size, TlsVersion, VerifyClient,
    is_off,
};
use super::{
    AccessLogConfig, Balance, Buffering, Config, ConnLimits, DEFAULT_METRICS, Group, GroupServer,
    KeepAlive, Limits, LogSink, MAIN_LOG, MAX_GROUP_SERVERS, OpenedFile, SetValues, SlotLimits,
};
use crate::access_log::Template;
use crate::app::{AppConfig, Restart, StopSignal};
use crate::auth_basic::BasicAuth;
use crate::error_pages::{ErrorPages, STATUSES};
use crate::gzip::Gzip;
use crate::http::{Charset, CookieFlags, CookieRewrite, HeaderRewrite, RewriteRules};
use crate::limits::{RateLimit, RequestLimit};
use crate::referers::{RefererCheck, ValidReferers};
use crate::routes::{
    Action, AuthRequest, FixedAnswer, Found, LimitExcept, PathRegex, Route, RouteTable,
    highest_group,
};
use crate::static_files::{Encoding, Fallback, MediaTypes, OneFile, Root, StaticRoute};
use crate::tls::{CertFiles, ClientAuth, TlsConfig};

/// The longest `app.ready_timeout` and `app.stop_timeout`: beyond, a typo (`60m` for `60s`).
const APP_TIMEOUT_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where plain HTTP is accepted when no `listen` is given.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// An address (other than one with port 0, which picks a port of its own) listed twice.
fn given_twice(addresses: &[SocketAddr]) -> Option<SocketAddr> {
    let mut seen = BTreeSet::new();
    addresses
        .iter()
        .copied()
        .find(|addr| addr.port() != 0 && !seen.insert(*addr))
}

/// The group the `upstream` key (and `--upstream` flags) make.
const DEFAULT_GROUP: &str = "default";

/// A refusal's status when a route's `limit_req` names none: 429 Too Many Requests, where
/// nginx's `limit_req_status` defaults to 503 (`status = 503` in `limit_req` keeps nginx's).
const LIMIT_REQ_STATUS: u16 = 429;

impl Resolved {
    /// An error about the top-level `key`, naming the flag or the file it came from.
    fn invalid(&self, key: &str, message: &str) -> anyhow::Error {
        match &self.file {
            Some(file) if !self.from_flags.contains(key) => {
                anyhow!("{key} in {}: {message}", file.display())
            }
            _ => anyhow!("--{}: {message}", key.replace('_', "-")),
        }
    }

    /// An error about a file-only key (`routes[2].upstream`); a route's is named by its
    /// path too, as counting to the third `[[routes]]` of thirty is easy to get wrong.
    fn invalid_in_file(&self, key: &str, message: &str) -> anyhow::Error {
        let route = self.route_named_by(key).unwrap_or_default();
        match &self.file {
            Some(file) => anyhow!("{key}{route} in {}: {message}", file.display()),
            None => anyhow!("{key}{route}: {message}"),
        }
    }

    /// ` (path "/static/")` for a key in `routes[N]`.
    fn route_named_by(&self, key: &str) -> Option<String> {
        let (index, _) = key.strip_prefix("routes[")?.split_once(']')?;
        let route = self.settings.routes.get(index.parse::<usize>().ok()?)?;
        match (&route.path, &route.regex) {
            (Some(path), _) => Some(format!(" (path {path:?})")),
            (None, Some(regex)) => Some(format!(" (regex {regex:?})")),
            (None, None) => None,
        }
    }

    /// Checks every setting and fills in the defaults.
    pub fn validate(self) -> anyhow::Result<Config> {
        let s = &self.settings;
        let workers = s
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 {
            return Err(self.invalid("workers", "must be at least 1"));
        }
        let upstream_buffer_size = s.upstream_buffer_size.unwrap_or(Size(4096));
        let upstream_buffer_size = self.size_in(
            "upstream_buffer_size",
            upstream_buffer_size,
            BUFFER_SIZES,
            |key, message| self.invalid(key, message),
        )?;
        let max_header_size = self.size_in(
            "max_header_size",
            // nginx's default `large_client_header_buffers 4 8k`: a head nginx takes
            // without a directive is taken without a setting (found by review: 16k, so
            // heads of 16 to 32 KiB, big cookies, got 431 after a migration).
            s.max_header_size.unwrap_or(Size::kib(32)),
            1024..=1 << 20,
            |key, message| self.invalid(key, message),
        )?;
        let max_buffer_memory = self.size_in(
            "max_buffer_memory",
            s.max_buffer_memory.unwrap_or(Size::mib(64)),
            0..=1 << 40,
            |key, message| self.invalid(key, message),
        )?;
        let limits = self.limits(&s.limits, "", &|key, message| self.invalid(key, message))?;
        let connections = self.connection_limits()?;
        let groups = self.groups(upstream_buffer_size)?;
        // As on a route to a uwsgi group (found by review: taken, and sent nowhere).
        if !s.upstream_headers.is_empty() && groups.iter().all(|g| g.protocol != Protocol::Http) {
            return Err(self.invalid_in_file(
                "upstream_headers",
                "applies to HTTP groups, and every group here speaks uwsgi: set \
                 `params = { HTTP_X_NAME = \"...\" }` in the routes instead",
            ));
        }
        let error_pages = Arc::new(self.error_pages(&s.error_pages, "error_pages")?);
        // The top-level headers: inherited by the routes without their own; the `always`
        // ones also on the answers no route makes.
        let top_headers = response_headers(&s.response_headers)
            .map_err(|(name, m)| self.invalid_in_file(&format!("response_headers.{name}"), &m))?;
        let routes = self.routes(&groups, limits, &error_pages, &top_headers)?;
        let dur = |d: Option<Dur>, default: u64| d.unwrap_or(Dur::secs(default)).0;
        let config = Config {
            // `listen = []`: TLS only (checked in `check_addresses`).
            listen: match s.listen.as_deref() {
                None => vec![DEFAULT_LISTEN],
                Some(all) => match given_twice(all) {
                    Some(addr) => {
                        return Err(self.invalid("listen", &format!("{addr} is given twice")));
                    }
                    None => all.to_vec(),
                },
            },
            workers,
            pin_workers: s.pin_workers.unwrap_or(true),
            groups,
            routes,
            limits,
            max_header_size,
            client_header_timeout: nonzero_timeout(
                "client_header_timeout",
                s.client_header_timeout,
                60,
                &|key, message| self.invalid(key, message),
            )?,
            keepalive_timeout: dur(s.keepalive_timeout, 75),
            keepalive_requests: match s.keepalive_requests {
                None => 1000,
                Some(0) => {
                    return Err(self.invalid(
                        "keepalive_requests",
                        "must be at least 1 (keepalive_timeout = 0 turns keep-alive off)",
                    ));
                }
                Some(n) => n,
            },
            keepalive_time: nonzero_timeout(
                "keepalive_time",
                s.keepalive_time,
                3600,
                &|key, message| self.invalid(key, message),
            )?,
            shutdown_timeout: dur(s.shutdown_timeout, 10),
            buffering: Buffering {
                max_buffer_memory,
                temp_dir: self.temp_dir()?,
            },
            connections,
            trusted_proxies: s.trusted_proxy.clone(),
            real_ip_header: self.real_ip_header()?,
            real_ip_recursive: self.real_ip_recursive()?,
            upstream_headers: upstream_headers(&s.upstream_headers).map_err(|(name, m)| {
                self.invalid_in_file(&format!("upstream_headers.{name}"), &m)
            })?,
            redirect_forwarded_http: self.redirect_forwarded_http()?,
            proxy_protocol: s.proxy_protocol.unwrap_or(false),
            listen_deferred: s.listen_deferred.unwrap_or(false),
            reset_timedout_connection: s.reset_timedout_connection.unwrap_or(false),
            document_root: s.document_root.clone().unwrap_or_default(),
            server_name: self.server_name()?,
            hosts: s.hosts.clone(),
            allow_underscores_in_headers: s.allow_underscores_in_headers.unwrap_or(false),
            metrics: (s.metrics.clone()).unwrap_or(MetricsListen::Default(DEFAULT_METRICS)),
            ebpf: s.ebpf.unwrap_or(true),
            tls: self.tls()?,
            access_log: self.access_log()?,
            error_pages,
            response_headers_always: top_headers.always,
            app: self.app()?,
        };
        self.check_addresses(&config)?;
        self.check_app_protocol(&config)?;
        if let Some((key, why)) = config.first_misfit_page(config.buffering.max_buffer_memory) {
            return Err(self.invalid_in_file(&key, &why));
        }
        Ok(config)
    }

    /// The plain, TLS and metrics listeners each need a port of their own: bound with
    /// SO_REUSEPORT, two of them on one port would both bind, and the kernel would spread
    /// connections over both (TLS read as HTTP, scrapes answered by the proxy).
    fn check_addresses(&self, config: &Config) -> anyhow::Result<()> {
        if config.listen.is_empty() {
            match &config.tls {
                None => {
                    return Err(self.invalid(
                        "listen",
                        "an empty list, and no [tls] listen: ringway would listen nowhere \
                         (an empty `listen` is for a server that speaks only TLS)",
                    ));
                }
                Some(tls) if tls.redirect_http.is_some() => {
                    return Err(self.tls_invalid(
                        "redirect_http",
                        "redirects plain HTTP to HTTPS, and `listen = []` takes no plain HTTP: \
                         give `listen` the address to redirect from",
                    ));
                }
                Some(_) => {}
            }
        }
        let tls = config.tls.as_ref().map_or(&[][..], |t| &t.listen);
        // An IPv6 listener is bound IPV6_V6ONLY: `[::]:80` and `0.0.0.0:80` do not meet.
        let clash = |a: SocketAddr, b: SocketAddr| {
            a.port() == b.port()
                && a.port() != 0
                && a.is_ipv4() == b.is_ipv4()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        };
        let meets = |a: SocketAddr, all: &[SocketAddr]| all.iter().copied().find(|&b| clash(a, b));
        if let Some((tls, plain)) = tls
            .iter()
            .find_map(|&t| meets(t, &config.listen).map(|p| (t, p)))
        {
            return Err(self.tls_invalid(
                "listen",
                &format!("{tls} takes the port of `listen` ({plain}): give TLS a port of its own"),
            ));
        }
        let taken: Vec<SocketAddr> = config.listen.iter().chain(tls).copied().collect();
        let metrics = config.metrics.addresses();
        if let Some((i, one)) = metrics
            .iter()
            .enumerate()
            .find(|&(i, &m)| meets(m, &metrics[i + 1..]).is_some())
        {
            let other = meets(*one, &metrics[i + 1..]).unwrap_or(*one);
            return Err(self.invalid(
                "metrics",
                &format!("{one} and {other} are one socket: list each address once"),
            ));
        }
        if let Some((metrics, other)) = metrics
            .iter()
            .find_map(|&m| meets(m, &taken).map(|a| (m, a)))
        {
            return Err(self.invalid(
                "metrics",
                &format!("{metrics} takes the port of a listener ({other}): give it its own"),
            ));
        }
        Ok(())
    }

    /// The error pages of `pages` (the top level's, or a route's, named `at`), their
    /// files read now: a page that cannot be served stops ringway at start-up, not at the
    /// first error.
    fn error_pages(
        &self,
        pages: &BTreeMap<String, PathBuf>,
        at: &str,
    ) -> anyhow::Result<ErrorPages> {
        let mut files = Vec::with_capacity(pages.len());
        for (key, file) in pages {
            let status = key
                .parse::<u16>()
                .ok()
                .filter(|status| STATUSES.contains(status))
                .ok_or_else(|| {
                    self.invalid_in_file(
                        &format!("{at}.{key}"),
                        "not an error status: pages are for statuses 400 to 599",
                    )
                })?;
            if let Some(instead) = never_paged(status) {
                return Err(self.invalid_in_file(&format!("{at}.{key}"), instead));
            }
            files.push((status, file.clone()));
        }
        ErrorPages::load(files)
            .map_err(|err| self.invalid_in_file(&format!("{at}.{}", err.status), &err.to_string()))
    }

    /// An `[app]` that runs an HTTP server (gunicorn, Granian, uvicorn...) on the address
    /// of a routed group that speaks uwsgi: its readiness check passes (it only connects),
    /// then every request is uwsgi bytes an HTTP server cannot read (found by review:
    /// nginx's `server unix:/tmp/gunicorn.sock;` copied as a uwsgi server). uWSGI speaks
    /// both, and a uwsgi group elsewhere (a uWSGI of its own) may stand beside the app.
    fn check_app_protocol(&self, config: &Config) -> anyhow::Result<()> {
        let Some(app) = &config.app else {
            return Ok(());
        };
        let Some(server) = http_app_server(&app.command) else {
            return Ok(());
        };
        let uwsgi = (config.groups.iter().enumerate()).find(|(at, g)| {
            g.protocol == Protocol::Uwsgi
                && config.routes.sends_to(*at)
                && (g.servers.iter()).any(|s| names_address(&app.command, &s.addr))
        });
        match uwsgi {
            Some((_, group)) => Err(self.invalid_in_file(
                "app.command",
                &format!(
                    "runs {server}, an HTTP server, and group {:?} sends it uwsgi: write its \
                     servers as http://unix:/path or http://host:port",
                    group.name
                ),
            )),
            None => Ok(()),
        }
    }

    /// The app server, when `[app]` is given.
    fn app(&self) -> anyhow::Result<Option<AppConfig>> {
        let Some(app) = &self.settings.app else {
            return Ok(None);
        };
        let invalid =
            |key: &str, message: &str| self.invalid_in_file(&format!("app.{key}"), message);
        app_config(app, invalid).map(Some)
    }

    /// The header naming the client: another than X-Forwarded-For only with a proxy to
    /// believe it from, or the setting would change nothing, silently.
    fn real_ip_header(&self) -> anyhow::Result<RealIpHeader> {
        let s = &self.settings;
        let header = s.real_ip_header.clone().unwrap_or_default();
        if header != RealIpHeader::ForwardedFor && s.trusted_proxy.is_empty() {
            return Err(self.invalid(
                "real_ip_header",
                "is read only from a trusted_proxy, and none is set",
            ));
        }
        Ok(header)
    }

    /// Whether the client is sought past every trusted proxy: a setting only with a proxy to
    /// believe. A trusted range that holds every address makes the walk's answer whatever
    /// the client wrote first: said at start.
    fn real_ip_recursive(&self) -> anyhow::Result<bool> {
        let s = &self.settings;
        if s.real_ip_recursive.is_some() && s.trusted_proxy.is_empty() {
            return Err(self.invalid(
                "real_ip_recursive",
                "walks what a trusted_proxy says, and none is set",
            ));
        }
        let recursive = s.real_ip_recursive.unwrap_or(true);
        if recursive && s.trusted_proxy.iter().any(Cidr::holds_everyone) {
            tracing::warn!(
                "trusted_proxy trusts every address: a client names its own address in \
                 X-Forwarded-For; set real_ip_recursive = false to take the address your \
                 balancer adds"
            );
        }
        Ok(recursive)
    }

    /// Whether a trusted proxy's `X-Forwarded-Proto: http` redirects, with which status:
    /// only with a proxy to believe it from, or the setting would change nothing, silently.
    fn redirect_forwarded_http(&self) -> anyhow::Result<Option<u16>> {
        let s = &self.settings;
        let on = s.redirect_forwarded_http.and_then(|r| r.0);
        if on.is_some() && s.trusted_proxy.is_empty() {
            return Err(self.invalid(
                "redirect_forwarded_http",
                "reads X-Forwarded-Proto, believed only from a trusted_proxy, and none is set",
            ));
        }
        Ok(on)
    }

    /// `temp_dir`: an empty path would be taken as `.` by `--check-config` and refused by
    /// the start (found by review).
    fn temp_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.settings.temp_dir {
            None => Ok(default_temp_dir()),
            Some(dir) if dir.as_os_str().is_empty() => Err(self.invalid(
                "temp_dir",
                "is empty: name a directory, or leave the key out for /var/tmp/ringway-UID",
            )),
            Some(dir) => Ok(dir.clone()),
        }
    }

    /// `server_name`, as a Host names it (lower case, an IPv6 address in brackets): it goes
    /// into the Host of a request that came without one, SERVER_NAME and the HTTPS
    /// redirect's Location, so anything but one name or address could add a header or
    /// change the URL (found by review: it was taken as written, CR LF too).
    fn server_name(&self) -> anyhow::Result<Option<String>> {
        let Some(name) = &self.settings.server_name else {
            return Ok(None);
        };
        let refuse = |message: &str| Err(self.invalid("server_name", message));
        if name.trim().is_empty() {
            return refuse(
                "is empty: leave it out, and SERVER_NAME is the request's Host (the address \
                 reached for a request without one)",
            );
        }
        if name.trim().contains([' ', '\t']) {
            return refuse(&format!(
                "{name:?} is more than one name: server_name is the one SERVER_NAME (and the \
                 Host of a request without one); a list of the names a server answers for \
                 belongs in `hosts`"
            ));
        }
        if name.trim() == "_" {
            return refuse(
                "\"_\" is nginx's catch-all, not a name: leave server_name (and `hosts`) out, \
                 and every Host is served",
            );
        }
        match name.parse::<HostName>() {
            Ok(HostName::Exact(host)) => Ok(Some(host)),
            Ok(_) => refuse(&format!(
                "{name:?} is a wildcard: server_name is one name (SERVER_NAME); the names a \
                 server answers for belong in `hosts`"
            )),
            Err(_) => refuse(&format!(
                "{name:?} is not a host name (app.example.com) or an IP address"
            )),
        }
    }

    /// The access log, unless nothing is logged: the top level's place, then the places
    /// routes name ([`route_log_places`]). Each file is opened now, so that a path ringway
    /// cannot write to is refused at start rather than found out at the first request.
    fn access_log(&self) -> anyhow::Result<Option<AccessLogConfig>> {
        let s = &self.settings;
        let format = self.access_log_format()?;
        let main = s.access_log.clone().unwrap_or(LogTarget::Off);
        let places = route_log_places(&s.routes, &main);
        if main == LogTarget::Off && places.is_empty() {
            return Ok(None);
        }
        let mut sinks = vec![self.log_sink(main, None)?];
        for (route, target) in places {
            sinks.push(self.log_sink(target, Some(route))?);
        }
        let statuses = match &s.access_log_statuses {
            None => LoggedStatuses::ALL,
            Some(list) if list.is_empty() => {
                return Err(self.invalid(
                    "access_log_statuses",
                    "an empty list would log nothing: leave it out to log every request, or \
                     set access_log = \"off\"",
                ));
            }
            Some(list) => LoggedStatuses::of(list),
        };
        if self.checking {
            return Ok(None);
        }
        Ok(Some(AccessLogConfig {
            format,
            statuses,
            sinks,
        }))
    }

    /// Where `target` sends lines: the top level's `access_log`, or that of the route at
    /// this index; a file opened (or, checking the configuration, only checked).
    fn log_sink(&self, target: LogTarget, route: Option<usize>) -> anyhow::Result<LogSink> {
        let refuse = |message: &str| match route {
            None => self.invalid("access_log", message),
            Some(i) => self.invalid_in_file(&format!("routes[{i}].access_log"), message),
        };
        let cannot = |path: &Path, e: std::io::Error| {
            refuse(&format!(
                "cannot open {} for appending: {e}",
                path.display()
            ))
        };
        Ok(match target {
            LogTarget::Off => LogSink::Off,
            LogTarget::Stderr => LogSink::Stderr,
            LogTarget::File(path) if self.checking => {
                crate::access_log::check_file(&path).map_err(|e| cannot(&path, e))?;
                LogSink::Off
            }
            LogTarget::File(path) => {
                let file = crate::access_log::open_file(&path).map_err(|e| cannot(&path, e))?;
                LogSink::File {
                    path,
                    opened: OpenedFile::new(file),
                }
            }
            LogTarget::Syslog(target) => {
                let addr = target
                    .resolve()
                    .map_err(|e| refuse(&format!("{target}: cannot resolve the server: {e}")))?;
                LogSink::Syslog { target, addr }
            }
        })
    }

    /// The line format, a custom one with its `access_log_escape`.
    fn access_log_format(&self) -> anyhow::Result<LogFormat> {
        let s = &self.settings;
        let format = s.access_log_format.clone().unwrap_or(LogFormat::Combined);
        // `default` changes nothing whatever the format: the file may say it.
        let Some(escape) = s.access_log_escape.filter(|e| *e != LogEscape::Default) else {
            return Ok(format);
        };
        match format {
            LogFormat::Custom(template) => Ok(LogFormat::Custom(Arc::new(
                Template::clone(&template).escaped(escape),
            ))),
            _ => Err(self.invalid(
                "access_log_escape",
                "applies to a format of one's own (`access_log_format = '$remote_addr ...'`); \
                 combined and json escape as they must",
            )),
        }
    }

    /// TLS, when `tls.listen` is set; certificates from the file's list, then the flags'.
    fn tls(&self) -> anyhow::Result<Option<TlsConfig>> {
        let t = &self.settings.tls;
        if t.cert.len() != t.key.len() {
            return Err(anyhow!(
                "--tls-cert and --tls-key (tls.cert, tls.key) come in pairs: {} certificates, \
                 {} keys",
                t.cert.len(),
                t.key.len()
            ));
        }
        // Both lists in the file: one would go unread, and with it the certificate meant as
        // the default (found by review: `cert` and `key` replaced `certificates` silently).
        let pairs_in_file = (!t.cert.is_empty() && !self.from_flags.contains("tls.cert"))
            || (!t.key.is_empty() && !self.from_flags.contains("tls.key"));
        if pairs_in_file && !t.certificates.is_empty() {
            return Err(self.invalid_in_file(
                "tls.certificates",
                "tls.cert and tls.key name certificates too, and one of the two lists would \
                 go unread: give them all in `certificates = [{ cert = \"...\", key = \
                 \"...\" }, ...]`",
            ));
        }
        // Pairs given by flags replace the file's `certificates`, as a flag wins over the
        // file (found by review: they were added after them, and the file's default
        // certificate stayed the one served).
        let certificates: Vec<CertFiles> = if t.cert.is_empty() {
            t.certificates
                .iter()
                .map(|c| CertFiles {
                    cert: c.cert.clone(),
                    key: c.key.clone(),
                })
                .collect()
        } else {
            t.cert
                .iter()
                .zip(&t.key)
                .map(|(cert, key)| CertFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                })
                .collect()
        };
        if t.listen.is_empty() {
            if !certificates.is_empty()
                || t.redirect_http.is_some_and(|r| r.0.is_some())
                || t.redirect_port.is_some()
                || t.hsts.is_some()
                || t.http2.unwrap_or(false)
                || t.protocols.is_some()
                || t.key_exchange_groups.is_some()
                || t.reject_unknown_names.is_some()
                || t.record_size.is_some()
                || t.session_tickets.is_some()
                || t.verify_client.is_some()
                || t.client_certificate.is_some()
                || t.client_crl.is_some()
                || t.pass_client_certificate.is_some()
                || t.handshake_timeout.is_some()
            {
                return Err(self.invalid_in_file(
                    "tls.listen",
                    "TLS settings were given but no address to accept TLS on \
                     (--tls-listen, or `listen` in [tls])",
                ));
            }
            return Ok(None);
        }
        if let Some(addr) = given_twice(&t.listen) {
            return Err(self.tls_invalid("listen", &format!("{addr} is given twice")));
        }
        if certificates.is_empty() {
            return Err(self.invalid_in_file(
                "tls.certificates",
                "TLS needs a certificate (--tls-cert and --tls-key, or `certificates` in [tls])",
            ));
        }
        // The expiry metric tells certificates apart by their file.
        let mut files = BTreeSet::new();
        if let Some(twice) = certificates.iter().find(|c| !files.insert(&c.cert)) {
            return Err(self.invalid_in_file(
                "tls.certificates",
                &format!(
                    "{} is given twice (in the file's list or the --tls-cert flags): give each \
                     certificate once",
                    twice.cert.display()
                ),
            ));
        }
        if let Some(hsts) = &t.hsts
            && !is_header_value(hsts)
        {
            return Err(self.tls_invalid("hsts", "must be printable text on one line"));
        }
        let mut protocols = t
            .protocols
            .clone()
            .unwrap_or_else(|| vec![TlsVersion::Tls12, TlsVersion::Tls13]);
        protocols.sort_unstable();
        protocols.dedup();
        if protocols.is_empty() {
            return Err(self.tls_invalid(
                "protocols",
                "names no version: give TLSv1.2, TLSv1.3 or both",
            ));
        }
        let key_exchange_groups = self.key_exchange_groups(&protocols)?;
        Ok(Some(TlsConfig {
            protocols,
            key_exchange_groups,
            reject_unknown_names: t.reject_unknown_names.unwrap_or(false),
            record_size: t
                .record_size
                .map(|size| {
                    let invalid = |key: &str, message: &str| self.tls_invalid(key, message);
                    self.size_in("record_size", size, 512..=16384, invalid)
                })
                .transpose()?,
            session_tickets: t.session_tickets.unwrap_or(true),
            client_auth: self.client_auth()?,
            listen: t.listen.clone(),
            certificates,
            redirect_http: t.redirect_http.and_then(|r| r.0),
            redirect_port: self.redirect_port()?,
            hsts: t.hsts.clone(),
            http2: t.http2.unwrap_or(false),
            handshake_timeout: nonzero_timeout(
                "tls.handshake_timeout",
                t.handshake_timeout,
                10,
                &|key, message| {
                    if self.from_flags.contains(key) {
                        anyhow!("--tls-handshake-timeout: {message}")
                    } else {
                        self.invalid_in_file(key, message)
                    }
                },
            )?,
        }))
    }

    /// `[tls] redirect_port`: a port, and only beside `redirect_http`, which it is for.
    fn redirect_port(&self) -> anyhow::Result<Option<u16>> {
        let t = &self.settings.tls;
        let invalid = |message: &str| self.tls_invalid("redirect_port", message);
        match t.redirect_port {
            Some(0) => Err(invalid("a port is 1 to 65535")),
            Some(_) if t.redirect_http.is_none_or(|r| r.0.is_none()) => Err(invalid(
                "names the port of `redirect_http`'s redirect, which is off",
            )),
            port => Ok(port),
        }
    }

    /// The key exchange groups, in the order given, once each; each version accepted must
    /// have one it can use (the post-quantum hybrids are TLS 1.3 only).
    fn key_exchange_groups(
        &self,
        protocols: &[TlsVersion],
    ) -> anyhow::Result<Vec<KeyExchangeGroup>> {
        let Some(given) = &self.settings.tls.key_exchange_groups else {
            return Ok(KeyExchangeGroup::DEFAULT.to_vec());
        };
        let mut groups = Vec::with_capacity(given.len());
        for group in given {
            if !groups.contains(group) {
                groups.push(*group);
            }
        }
        if groups.is_empty() {
            return Err(self.tls_invalid(
                "key_exchange_groups",
                "names no group: give X25519MLKEM768, X25519, prime256v1 or secp384r1 (or \
                 leave the setting out for all four)",
            ));
        }
        if protocols.contains(&TlsVersion::Tls12) && !groups.iter().any(|g| g.usable_with_tls12()) {
            return Err(self.tls_invalid(
                "key_exchange_groups",
                "has no group TLS 1.2 can use (the post-quantum hybrids are TLS 1.3 only): add \
                 X25519, prime256v1 or secp384r1, or accept TLSv1.3 alone",
            ));
        }
        Ok(groups)
    }

    /// Client certificates: asked for when `verify_client` is on or optional, checked
    /// against `client_certificate` (and `client_crl`). An explicit `off` (a flag over the
    /// file, say) leaves the files unused, as nginx's `ssl_verify_client off` does.
    fn client_auth(&self) -> anyhow::Result<Option<ClientAuth>> {
        let t = &self.settings.tls;
        let required = match t.verify_client {
            Some(VerifyClient::On) => true,
            Some(VerifyClient::Optional) => false,
            Some(VerifyClient::Off) => return Ok(None),
            None => {
                let given = [
                    ("client_certificate", t.client_certificate.is_some()),
                    ("client_crl", t.client_crl.is_some()),
                    (
                        "pass_client_certificate",
                        t.pass_client_certificate.is_some(),
                    ),
                ];
                return match given.iter().find(|(_, given)| *given) {
                    None => Ok(None),
                    Some((key, _)) => Err(self.tls_invalid(
                        key,
                        "is used only with verify_client = \"on\" or \"optional\" (nginx's \
                         ssl_verify_client, off by default)",
                    )),
                };
            }
        };
        let Some(authorities) = t.client_certificate.clone() else {
            return Err(self.tls_invalid(
                "verify_client",
                "needs client_certificate: the PEM file of the CAs client certificates chain \
                 to (nginx's ssl_client_certificate)",
            ));
        };
        Ok(Some(ClientAuth {
            authorities,
            revoked: t.client_crl.clone(),
            required,
            pass_pem: t.pass_client_certificate.unwrap_or(false),
        }))
    }

    /// An error about a `[tls]` key, named as its flag when a flag gave it (`--tls-KEY`).
    fn tls_invalid(&self, key: &str, message: &str) -> anyhow::Error {
        let in_file = format!("tls.{key}");
        match tls_flag(key) {
            Some(flag) if self.from_flags.contains(&in_file) => anyhow!("{flag}: {message}"),
            _ => self.invalid_in_file(&in_file, message),
        }
    }

    /// `max_connections` and `limit_conn_per_ip`: absent is no limit, 0 is refused (it would
    /// refuse every connection).
    fn connection_limits(&self) -> anyhow::Result<ConnLimits> {
        let s = &self.settings;
        let count = |key: &str, value: Option<usize>| {
            value
                .map(|n| count_in(key, n, COUNTS, |k, m| self.invalid(k, m)))
                .transpose()
        };
        Ok(ConnLimits {
            max_connections: count("max_connections", s.max_connections)?,
            per_ip: count("limit_conn_per_ip", s.limit_conn_per_ip)?,
        })
    }

    /// A group's `max_conns`, `queue` and `queue_timeout` (`None`: no `max_conns`, no limit).
    fn slot_limits(&self, group: &GroupSettings, at: &str) -> anyhow::Result<Option<SlotLimits>> {
        let invalid =
            |key: &str, message: &str| self.invalid_in_file(&format!("{at}.{key}"), message);
        let Some(max_conns) = group.max_conns else {
            let stray = [
                ("queue", group.queue.is_some()),
                ("queue_timeout", group.queue_timeout.is_some()),
            ];
            if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    key,
                    "a queue needs `max_conns`: requests wait for a slot only when servers have \
                     a limit",
                ));
            }
            return Ok(None);
        };
        let max_conns = count_in("max_conns", max_conns, MAX_CONNS, invalid)?;
        let queue = count_in("queue", group.queue.unwrap_or(0), QUEUE, invalid)?;
        let queue_timeout = group.queue_timeout.unwrap_or(Dur::secs(60)).0;
        if queue_timeout.is_zero() {
            return Err(invalid(
                "queue_timeout",
                "must be longer than 0 (for no waiting at all, set `queue = 0`)",
            ));
        }
        Ok(Some(SlotLimits {
            max_conns,
            queue,
            queue_timeout,
        }))
    }

    /// A group's `keepalive`, `keepalive_timeout`, `keepalive_requests` and
    /// `keepalive_time`: HTTP groups only (uwsgi has no keep-alive: uWSGI closes every
    /// connection after its answer).
    fn keepalive(
        &self,
        group: &GroupSettings,
        protocol: Protocol,
        at: &str,
    ) -> anyhow::Result<KeepAlive> {
        let invalid =
            |key: &str, message: &str| self.invalid_in_file(&format!("{at}.{key}"), message);
        if protocol == Protocol::Uwsgi {
            let stray = [
                ("keepalive", group.keepalive.is_some()),
                ("keepalive_timeout", group.keepalive_timeout.is_some()),
                ("keepalive_requests", group.keepalive_requests.is_some()),
                ("keepalive_time", group.keepalive_time.is_some()),
            ];
            if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    key,
                    "only HTTP servers (`http://...`) keep connections open: uWSGI closes \
                     each one after its answer",
                ));
            }
            return Ok(KeepAlive {
                idle: 0,
                ..DEFAULT_KEEPALIVE
            });
        }
        let idle = count_in(
            "keepalive",
            group.keepalive.unwrap_or(DEFAULT_KEEPALIVE.idle),
            KEEPALIVE,
            invalid,
        )?;
        let longer_than_0 = |key: &str, value: Option<Dur>, default: std::time::Duration| {
            let value = value.map_or(default, |d| d.0);
            if value.is_zero() {
                return Err(invalid(
                    key,
                    "must be longer than 0 (to keep no connection, set `keepalive = 0`)",
                ));
            }
            Ok(value)
        };
        let requests = match group.keepalive_requests {
            None => DEFAULT_KEEPALIVE.requests,
            Some(0) => {
                return Err(invalid(
                    "keepalive_requests",
                    "must be at least 1 (to keep no connection, set `keepalive = 0`)",
                ));
            }
            Some(n) => n,
        };
        Ok(KeepAlive {
            idle,
            timeout: longer_than_0(
                "keepalive_timeout",
                group.keepalive_timeout,
                DEFAULT_KEEPALIVE.timeout,
            )?,
            requests,
            time: longer_than_0(
                "keepalive_time",
                group.keepalive_time,
                DEFAULT_KEEPALIVE.time,
            )?,
        })
    }

    /// `value` as bytes, if in `range`.
    fn size_in(
        &self,
        key: &str,
        value: Size,
        range: RangeInclusive<u64>,
        invalid: impl Fn(&str, &str) -> anyhow::Error,
    ) -> anyhow::Result<usize> {
        if range.contains(&value.0) {
            return Ok(value.bytes());
        }
        let (lo, hi) = (range.start(), range.end());
        Err(invalid(
            key,
            &format!("{} is out of range: must be between {lo} and {hi}", value.0),
        ))
    }

    /// A request's limits: `own` over the defaults. `at` prefixes keys in messages.
    fn limits(
        &self,
        own: &LimitSettings,
        at: &str,
        invalid: &dyn Fn(&str, &str) -> anyhow::Error,
    ) -> anyhow::Result<Limits> {
        let key = |name: &str| format!("{at}{name}");
        let size = |name: &str, value: Option<Size>, default: Size, range| {
            self.size_in(&key(name), value.unwrap_or(default), range, invalid)
        };
        let timeout = |name: &str, value: Option<Dur>, default: u64| {
            nonzero_timeout(&key(name), value, default, invalid)
        };
        Ok(Limits {
            // 0 is no limit, as nginx's `client_max_body_size 0`: a body past
            // client_body_buffer_size goes to a temp file, so memory stays bounded.
            max_body_size: match own.max_body_size.unwrap_or(Size::mib(1)).0 {
                0 => Limits::NO_BODY_LIMIT,
                n => n,
            },
            client_body_buffer_size: size(
                "client_body_buffer_size",
                own.client_body_buffer_size,
                Size::kib(64),
                1024..=1 << 30,
            )?,
            response_buffer_size: size(
                "response_buffer_size",
                own.response_buffer_size,
                Size::kib(64),
                4096..=1 << 30,
            )?,
            max_temp_file_size: own.max_temp_file_size.unwrap_or(Size(1 << 30)).0,
            upstream_connect_timeout: timeout(
                "upstream_connect_timeout",
                own.upstream_connect_timeout,
                5,
            )?,
            upstream_read_timeout: timeout("upstream_read_timeout", own.upstream_read_timeout, 60)?,
            client_body_timeout: timeout("client_body_timeout", own.client_body_timeout, 60)?,
            send_timeout: timeout("send_timeout", own.send_timeout, 60)?,
            limit_rate: own.limit_rate.map_or(0, |s| s.0),
            limit_rate_after: own.limit_rate_after.map_or(0, |s| s.0),
            next_upstream: own.next_upstream.unwrap_or(NextUpstream::DEFAULT),
            next_upstream_tries: own.next_upstream_tries.unwrap_or(0),
            next_upstream_timeout: own
                .next_upstream_timeout
                .map(|d| d.0)
                .filter(|d| !d.is_zero()),
            ignore_client_abort: own.ignore_client_abort.unwrap_or(false),
        })
    }

    /// The upstream groups: `default` from the `upstream` key, then `[upstreams.NAME]`.
    fn groups(&self, default_buffer_size: usize) -> anyhow::Result<Vec<Group>> {
        let s = &self.settings;
        let mut groups = Vec::new();
        if !s.upstream.is_empty() {
            if s.upstreams.contains_key(DEFAULT_GROUP) {
                return Err(self.invalid_in_file(
                    "upstreams.default",
                    "`default` is the group of the `upstream` key (or --upstream flags): \
                     give one or the other",
                ));
            }
            let protocol = one_protocol(&s.upstream).map_err(|m| self.invalid("upstream", &m))?;
            groups.push(Group {
                name: DEFAULT_GROUP.to_owned(),
                servers: group_servers(&s.upstream, self.lookup)
                    .map_err(|m| self.invalid("upstream", &m))?,
                protocol,
                buffer_size: default_buffer_size,
                keepalive: DEFAULT_KEEPALIVE,
                slots: None,
                balance: Balance::RoundRobin,
            });
        }
        for (name, group) in &s.upstreams {
            let at = format!("upstreams.{name}");
            if group.servers.is_empty() {
                return Err(self.invalid_in_file(&format!("{at}.servers"), "no server given"));
            }
            let buffer_size = match group.buffer_size {
                Some(size) => {
                    self.size_in(&format!("{at}.buffer_size"), size, BUFFER_SIZES, |k, m| {
                        self.invalid_in_file(k, m)
                    })?
                }
                None => default_buffer_size,
            };
            let protocol = one_protocol(&group.servers)
                .map_err(|m| self.invalid_in_file(&format!("{at}.servers"), &m))?;
            let keepalive = self.keepalive(group, protocol, &at)?;
            let servers = group_servers(&group.servers, self.lookup)
                .map_err(|m| self.invalid_in_file(&format!("{at}.servers"), &m))?;
            let balance = balance(group.balance.as_deref(), &servers)
                .map_err(|m| self.invalid_in_file(&format!("{at}.balance"), &m))?;
            groups.push(Group {
                name: name.clone(),
                servers,
                protocol,
                buffer_size,
                keepalive,
                slots: self.slot_limits(group, &at)?,
                balance,
            });
        }
        if groups.is_empty() && s.routes.is_empty() {
            return Err(anyhow!(
                "no upstream given: pass --upstream unix:/path/app.sock (or host:port), \
                 or `upstream = [...]` or `[upstreams.NAME]` and `[[routes]]` in the config file"
            ));
        }
        Ok(groups)
    }

    /// The route table: the `[[routes]]`, then `/` → `default` unless a route serves `/`.
    fn routes(
        &self,
        groups: &[Group],
        defaults: Limits,
        error_pages: &Arc<ErrorPages>,
        inherited: &AddedHeaders,
    ) -> anyhow::Result<RouteTable> {
        let s = &self.settings;
        let mut routes = Vec::with_capacity(s.routes.len() + 1);
        let mut seen = BTreeSet::new();
        let top_hidden = hidden_headers(&s.hide_headers)
            .map_err(|name| self.invalid_in_file("hide_headers", &hidden_rule(name)))?;
        let top_charset = self
            .charset(s.charset.as_deref(), s.charset_types.as_deref())
            .map_err(|(key, m)| self.invalid_in_file(key, &m))?;
        let top_rewrites = header_rewrite(&RewriteLines::top(s))
            .map_err(|(key, m)| self.invalid_in_file(key, &m))?;
        let gzip = match &s.gzip {
            Some(settings) => Some(Arc::new(
                Gzip::from_settings(settings)
                    .map_err(|(key, m)| self.invalid_in_file(&format!("gzip.{key}"), &m))?,
            )),
            None => None,
        };
        let auth = match &s.auth_basic {
            Some(setting) => self.auth_basic(setting, "auth_basic")?,
            None => None,
        };
        let auth_request = match &s.auth_request {
            Some(setting) => self.auth_request(setting, "auth_request")?,
            None => None,
        };
        let log_places =
            route_log_places(&s.routes, s.access_log.as_ref().unwrap_or(&LogTarget::Off));
        let top_limit_req = match &s.limit_req {
            Some(limit) => {
                let checked =
                    rate_limit(limit).map_err(|(key, m)| self.invalid_in_file(key, &m))?;
                Some((limit, checked))
            }
            None => None,
        };
        let top = TopLevel {
            auth: auth.as_ref(),
            limit_req: top_limit_req,
            auth_request: auth_request.as_ref(),
            error_pages,
            rewrites: top_rewrites.as_ref(),
            log_places: &log_places,
        };
        // A route the configuration implies (a `--static` directory, `/` to the default
        // group): the top level's settings, nothing of its own.
        let implicit = |path: String, action: Action| Route {
            hosts: Vec::new(),
            path,
            exact: false,
            regex: None,
            no_regex: false,
            internal: false,
            allow: Vec::new(),
            deny: Vec::new(),
            satisfy_any: false,
            limit_except: None,
            action,
            response_headers: inherited.all.clone(),
            always_headers: inherited.always.clone(),
            hide_headers: top_hidden.clone(),
            charset: top_charset.clone(),
            rewrites: top_rewrites.clone(),
            limits: defaults,
            limit_req: top.limit_req.map(|(_, limit)| limit),
            limit_req_status: limit_req_status(None, top.limit_req),
            limit_req_dry_run: limit_req_dry_run(None, top.limit_req),
            limit_req_shared: top.limit_req.is_some(),
            limit_conn: None,
            referers: None,
            intercept_errors: false,
            error_pages: Arc::clone(error_pages),
            log_to: Some(MAIN_LOG),
            buffering: true,
            gzip: gzip.clone(),
            auth: auth.clone(),
            auth_request: auth_request.clone(),
        };
        for (i, route) in s.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            let built = self.route(route, &at, groups, inherited, gzip.as_ref(), top)?;
            if built.intercept_errors && built.error_pages.is_empty() {
                return Err(self.invalid_in_file(
                    &format!("{at}.intercept_errors"),
                    "no `error_pages` are configured for the route: there is nothing to put \
                     in place of the app's error answers",
                ));
            }
            // One route per path and Host: two naming one Host (or none) on one path would
            // leave one unreachable.
            // Each Host as it matches, so that `.example.com` (the name and the names
            // under it) clashes with `example.com` and with `*.example.com` (found by
            // review: two spellings of one name slipped past, and one route was dead).
            let named: Vec<(String, &HostName)> = built
                .hosts
                .iter()
                .flat_map(|h| match h {
                    HostName::Exact(name) => vec![(name.clone(), h)],
                    HostName::Under(suffix) => vec![(format!("*{suffix}"), h)],
                    HostName::AndUnder(name) => {
                        vec![(name.clone(), h), (format!("*.{name}"), h)]
                    }
                })
                .collect();
            // Checked before the other routes', which would blame a route that is not there.
            let mut own = BTreeMap::new();
            for (host, written) in &named {
                if let Some(first) = own.insert(host, written) {
                    let spellings = if first == written {
                        String::new()
                    } else {
                        format!(" ({:?} and {:?})", first.to_string(), written.to_string())
                    };
                    return Err(self.invalid_in_file(
                        &format!("{at}.hosts"),
                        &format!("names {host:?} twice{spellings}: give each Host once"),
                    ));
                }
            }
            let hosts: Vec<Option<String>> = if named.is_empty() {
                vec![None]
            } else {
                named.into_iter().map(|(host, _)| Some(host)).collect()
            };
            let matched = match &built.regex {
                Some(regex) => format!("~{}", regex.as_str()),
                None => built.path.clone(),
            };
            let mut clash = false;
            for host in hosts {
                clash |= !seen.insert((host, matched.clone(), built.exact));
            }
            if clash {
                let (key, what) = match &built.regex {
                    Some(_) => ("regex", "pattern"),
                    None => ("path", "path"),
                };
                return Err(self.invalid_in_file(
                    &format!("{at}.{key}"),
                    &format!("another route for its Hosts has the {what} {matched:?} already"),
                ));
            }
            routes.push(built);
        }
        for (i, dir) in s.static_dirs.iter().enumerate() {
            let key = format!("static[{i}]");
            if !is_normal_path(&dir.path) {
                return Err(self.invalid(
                    "static",
                    &format!("{:?} is not a normalised path", dir.path),
                ));
            }
            if !seen.insert((None, dir.path.clone(), false)) {
                return Err(self.invalid(
                    "static",
                    &format!("another route has the path {:?} already", dir.path),
                ));
            }
            let files = RouteSettings::default();
            let files = static_route(&files, &dir.dir, groups)
                .map_err(|(_, m)| self.invalid("static", &format!("{key}: {m}")))?;
            routes.push(implicit(dir.path.clone(), Action::Static(files)));
        }
        let default_group = groups.iter().position(|g| g.name == DEFAULT_GROUP);
        if let Some(group) = default_group
            && !seen.contains(&(None, "/".to_owned(), false))
        {
            let action = Action::Upstream {
                group,
                script_name: None,
                params: SetValues::NONE,
                upstream_path: None,
                upstream_headers: match groups[group].protocol {
                    Protocol::Http => {
                        upstream_headers(&self.settings.upstream_headers).unwrap_or_default()
                    }
                    Protocol::Uwsgi => SetValues::NONE,
                },
            };
            routes.push(implicit("/".to_owned(), action));
        }
        let table = RouteTable::new(routes);
        self.check_auth_requests(&table)?;
        self.check_fallback_paths(&table)?;
        self.check_internal_reachable(&table)?;
        self.check_route_hosts(&table)?;
        Ok(table)
    }

    /// With top-level `hosts`, a request for any other Host gets 421 before routing: a
    /// route's Host none of them names could never be reached (found by review: it was
    /// taken, where nginx's `server_name` is the one list).
    fn check_route_hosts(&self, table: &RouteTable) -> anyhow::Result<()> {
        let served = &self.settings.hosts;
        if served.is_empty() {
            return Ok(());
        }
        for (i, route) in table.iter().enumerate() {
            if let Some(lost) = route
                .hosts
                .iter()
                .find(|h| !served.iter().any(|s| s.overlaps(h)))
            {
                return Err(self.invalid_in_file(
                    &format!("routes[{i}].hosts"),
                    &format!(
                        "{lost} is named by none of the top-level `hosts`, so its requests \
                         get 421 before any route: add it there too"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An `internal` route is reached only from inside: X-Accel-Redirect and a static
    /// route's `fallback_path` serve files, `auth_request` asks an app. One that answers
    /// itself, or an app route no `auth_request` names, answers every request 404 and
    /// nothing else (found by review: it was taken).
    fn check_internal_reachable(&self, table: &RouteTable) -> anyhow::Result<()> {
        for (i, route) in table.iter().enumerate() {
            if !route.internal {
                continue;
            }
            let reachable = match route.action {
                Action::Static(_) => true,
                Action::Upstream { .. } => table.iter().any(|asking| {
                    let Some(auth) = &asking.auth_request else {
                        return false;
                    };
                    // A name each of its Hosts covers.
                    let hosts: Vec<Option<String>> = match asking.hosts.as_slice() {
                        [] => vec![None],
                        named => named.iter().map(|h| Some(h.sample())).collect(),
                    };
                    hosts.iter().any(|host| {
                        let host = host.as_deref().map(str::as_bytes);
                        matches!(table.find(host, auth.path.as_bytes()), Found::Route(at) if at == i)
                    })
                }),
                _ => false,
            };
            if !reachable {
                let what = match route.action {
                    Action::Upstream { .. } => "an app route that no auth_request names",
                    _ => "a route that answers itself",
                };
                return Err(self.invalid_in_file(
                    &format!("routes[{i}].internal"),
                    &format!(
                        "{what} cannot be reached from inside (X-Accel-Redirect and \
                         fallback_path serve files, auth_request asks an app): it would \
                         answer every request 404"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Each route's `auth_request` names a path a route passing requests to an upstream
    /// serves, for every Host the route serves.
    fn check_auth_requests(&self, table: &RouteTable) -> anyhow::Result<()> {
        for (i, route) in table.iter().enumerate() {
            let Some(auth) = &route.auth_request else {
                continue;
            };
            // The `[[routes]]` come first in the table, in the file's order.
            let key = match self.settings.routes.get(i) {
                Some(own) if own.auth_request.is_some() => format!("routes[{i}].auth_request"),
                _ => "auth_request".to_owned(),
            };
            for (host, shown) in hosts_of(route, table) {
                let found =
                    match table.find(host.as_deref().map(str::as_bytes), auth.path.as_bytes()) {
                        Found::Route(at) => table.get(at),
                        Found::AddSlash(_) | Found::Nothing => None,
                    };
                let asks_app = found.is_some_and(|r| matches!(r.action, Action::Upstream { .. }));
                if !asks_app {
                    let whose = host.map_or(String::new(), |_| format!(" for the Host {shown}"));
                    return Err(self.invalid_in_file(
                        &key,
                        &format!(
                            "no route passing requests to an upstream serves {:?}{whose}: \
                             the auth request goes to an app (an `internal` route is fine)",
                            auth.path
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A static route's `fallback` path is served from disk by the static route it has
    /// under each Host the route serves (found by review: one an app's route has was taken,
    /// and every missing file was 404 where nginx's `try_files` passes it to the app).
    fn check_fallback_paths(&self, table: &RouteTable) -> anyhow::Result<()> {
        for (i, route) in table.iter().enumerate() {
            let Action::Static(files) = &route.action else {
                continue;
            };
            let Some(Fallback::Path(path)) = &files.fallback else {
                continue;
            };
            for (host, shown) in hosts_of(route, table) {
                let found = match table.find(host.as_deref().map(str::as_bytes), path.as_bytes()) {
                    Found::Route(at) => table.get(at),
                    Found::AddSlash(_) | Found::Nothing => None,
                };
                if !found.is_some_and(|r| matches!(r.action, Action::Static(_))) {
                    let whose = host.map_or(String::new(), |_| format!(" for the Host {shown}"));
                    return Err(self.invalid_in_file(
                        &format!("routes[{i}].fallback"),
                        &format!(
                            "no static route serves {path:?}{whose}: a fallback path is a \
                             file's (the app's routes take `fallback = \"GROUP\"`)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// nginx's `charset` and `charset_types`, each inherited on its own: `name` and
    /// `types` (a route's own, or the top level's themselves) are checked, then each that
    /// is missing taken from the top level; `"off"`, or no `charset` at all, labels
    /// nothing (a `charset_types` with no `charset` is taken, as nginx takes it). An error
    /// names its key.
    fn charset(
        &self,
        name: Option<&str>,
        types: Option<&[String]>,
    ) -> Result<Option<Arc<Charset>>, (&'static str, String)> {
        if let Some(name) = name.filter(|n| !is_off(n)) {
            Charset::check_name(name).map_err(|m| ("charset", m))?;
        }
        if let Some(types) = types {
            Charset::check_types(types).map_err(|m| ("charset_types", m))?;
        }
        let name = name.or(self.settings.charset.as_deref());
        let types = types.or(self.settings.charset_types.as_deref());
        match name {
            None => Ok(None),
            Some(name) if is_off(name) => Ok(None),
            // What is left to fail is the top level's, checked before any route.
            Some(name) => Charset::new(name, types)
                .map(|charset| Some(Arc::new(charset)))
                .map_err(|m| ("charset", m)),
        }
    }

    /// The request headers a route sets on what goes to `group` (nginx's
    /// `proxy_set_header`): its own table, else the top-level one; none for a uwsgi group.
    fn route_upstream_headers(
        &self,
        route: &RouteSettings,
        group: &Group,
        invalid: &impl Fn(&str, &str) -> anyhow::Error,
    ) -> anyhow::Result<SetValues> {
        Ok(match &route.upstream_headers {
            Some(_) if group.protocol != Protocol::Http => {
                return Err(invalid(
                    "upstream_headers",
                    &format!(
                        "applies to an HTTP group, and {:?} speaks uwsgi: set \
                         `params = {{ HTTP_X_NAME = \"...\" }}` there",
                        group.name
                    ),
                ));
            }
            Some(own) => upstream_headers(own)
                .map_err(|(header, m)| invalid(&format!("upstream_headers.{header}"), &m))?,
            None if group.protocol == Protocol::Http => {
                upstream_headers(&self.settings.upstream_headers).unwrap_or_default()
            }
            None => SetValues::NONE,
        })
    }

    /// A `[[routes]]` entry at `at`; `inherited`: the top-level response headers, its own
    /// when it sets none; `gzip`: the `[gzip]` section's compression, if there is one;
    /// `top`: the top-level `auth_basic`, `auth_request` and error pages.
    fn route(
        &self,
        route: &RouteSettings,
        at: &str,
        groups: &[Group],
        inherited: &AddedHeaders,
        gzip: Option<&Arc<Gzip>>,
        top: TopLevel<'_>,
    ) -> anyhow::Result<Route> {
        let invalid =
            |key: &str, message: &str| self.invalid_in_file(&format!("{at}.{key}"), message);
        let (path, regex) = match (&route.path, &route.regex) {
            (Some(path), None) => (path.clone(), None),
            // A regex route's path is `/`: what it serves is named by the whole path.
            (None, Some(pattern)) => {
                let regex = PathRegex::new(pattern)
                    .map_err(|e| invalid("regex", &format!("{pattern:?}: {e}")))?;
                ("/".to_owned(), Some(regex))
            }
            (None, None) => {
                return Err(invalid("path", "every route needs a `path` (or a `regex`)"));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "regex",
                    "a route matches by its `path` or by a `regex`, not both",
                ));
            }
        };
        if regex.is_none() && !is_normal_path(&path) {
            return Err(invalid(
                "path",
                &format!(
                    "{path:?} is not a normalised path (it must start with `/`, without `.`, `..`, `//` or `%` escapes)"
                ),
            ));
        }
        if regex.is_some() && route.exact {
            return Err(invalid(
                "exact",
                "applies to a `path`: a regex route matches by its pattern",
            ));
        }
        if route.no_regex && (route.exact || regex.is_some()) {
            return Err(invalid(
                "no_regex",
                "applies to a prefix route (nginx's `location ^~`), not an exact or regex one",
            ));
        }
        let kinds = (
            &route.upstream,
            &route.redirect,
            &route.static_dir,
            &route.respond,
        );
        let action = match kinds {
            (None, None, None, None) if route.stub_status => Action::StubStatus,
            _ if route.stub_status => {
                return Err(invalid(
                    "stub_status",
                    "a route has one of `upstream`, `redirect`, `static`, `respond` and \
                     `stub_status`, not several",
                ));
            }
            (Some(name), None, None, None) => {
                let group = group_index(groups, name).map_err(|m| invalid("upstream", &m))?;
                if let Some(key) = uwsgi_only_key(route, groups[group].protocol) {
                    return Err(invalid(
                        key,
                        &format!(
                            "sets uwsgi vars, and the group {name:?} speaks HTTP: set the app \
                             server's own root path instead (gunicorn's SCRIPT_NAME environment \
                             variable, Granian's --url-path-prefix)"
                        ),
                    ));
                }
                let script_name = match &route.script_name {
                    Some(_) if regex.is_some() => {
                        return Err(invalid(
                            "script_name",
                            "a regex route has no path to mount the app on: give the mount \
                             a prefix route",
                        ));
                    }
                    Some(mount) => Some(
                        check_mount(mount, &path, route.exact)
                            .map_err(|m| invalid("script_name", &m))?,
                    ),
                    None => None,
                };
                let params = route_params(route, &invalid)?;
                let upstream_path = match &route.upstream_path {
                    Some(_) if groups[group].protocol != Protocol::Http => {
                        return Err(invalid(
                            "upstream_path",
                            &format!(
                                "applies to an HTTP group (nginx's `proxy_pass http://app/;`), \
                                 and {name:?} speaks uwsgi: mount the app with `script_name`"
                            ),
                        ));
                    }
                    // nginx refuses a URI in `proxy_pass` in a regex location too.
                    Some(_) if regex.is_some() => {
                        return Err(invalid(
                            "upstream_path",
                            "a regex route has no path prefix to replace",
                        ));
                    }
                    // It goes into the request line as it is.
                    Some(replacement)
                        if !is_normal_path(replacement)
                            || !replacement.bytes().all(crate::http::is_path_char) =>
                    {
                        return Err(invalid(
                            "upstream_path",
                            &format!(
                                "{replacement:?} is not a normalised path (it must start with \
                                 `/`, without `.`, `..`, `//`, `%` escapes, spaces, `?`, `#` \
                                 or control characters)"
                            ),
                        ));
                    }
                    other => other.clone(),
                };
                let upstream_headers =
                    self.route_upstream_headers(route, &groups[group], &invalid)?;
                Action::Upstream {
                    group,
                    script_name,
                    params,
                    upstream_path,
                    upstream_headers,
                }
            }
            (None, Some(redirect), None, None) => {
                let status = redirect.status.unwrap_or(301);
                if !REDIRECT_STATUSES.contains(&status) {
                    return Err(invalid(
                        "redirect.status",
                        &format!("{status} is not a redirect status (301, 302, 303, 307 or 308)"),
                    ));
                }
                if !is_header_value(&redirect.to) || redirect.to.is_empty() {
                    return Err(invalid("redirect.to", "must be a non-empty path or URL"));
                }
                if let Some(variable) = nginx_variable(&redirect.to, b"0_{") {
                    return Err(invalid(
                        "redirect.to",
                        &format!(
                            "{:?} names {variable}, and `to` takes only a regex route's \
                             groups, `$1` to `$9` (it is sent as written otherwise): the \
                             request's path and query follow `to` already, as \
                             `$request_uri` would give them, and a host is written whole",
                            redirect.to
                        ),
                    ));
                }
                // A group in the host, or right after it, can name another host
                // (`$1` = `@evil.example`, `evil.com/`): the host must be written whole.
                let before_groups = first_group_at(&redirect.to)
                    .map_or(redirect.to.as_str(), |at| &redirect.to[..at]);
                if before_groups.len() < redirect.to.len() && ends_in_its_host(before_groups) {
                    return Err(invalid(
                        "redirect.to",
                        &format!(
                            "{:?} puts a regex group in its host or right after it, where \
                             the request's path could name another host: write the host \
                             whole and then a slash before any group",
                            redirect.to
                        ),
                    ));
                }
                if highest_group(&redirect.to).is_none() && ends_in_its_host(&redirect.to) {
                    return Err(invalid(
                        "redirect.to",
                        &format!(
                            "{:?} ends in its host: write it with a path ({:?}). The rest of \
                             the request's path follows `to`, and without a slash it would \
                             lengthen the host (`/@evil.example` would send clients to \
                             evil.example)",
                            redirect.to,
                            format!("{}/", redirect.to)
                        ),
                    ));
                }
                let groups = regex.as_ref().map_or(0, PathRegex::groups);
                if let Some(named) = highest_group(&redirect.to)
                    && named > groups
                {
                    let why = match &regex {
                        Some(_) => format!("names ${named}, and the regex has {groups} group(s)"),
                        None => format!(
                            "names ${named}: groups come from a regex route's pattern \
                             (`regex` instead of `path`)"
                        ),
                    };
                    return Err(invalid("redirect.to", &why));
                }
                Action::Redirect {
                    to: redirect.to.clone(),
                    status,
                }
            }
            (None, None, Some(dir), None) => {
                let mut files =
                    static_route(route, dir, groups).map_err(|(key, m)| invalid(key, &m))?;
                if let Some(Fallback::Group {
                    group,
                    params,
                    upstream_headers,
                }) = &mut files.fallback
                {
                    let group = &groups[*group];
                    if let Some(key) = uwsgi_only_key(route, group.protocol) {
                        return Err(invalid(
                            key,
                            &format!(
                                "sets uwsgi vars, and the fallback group {:?} speaks HTTP: \
                                 set `upstream_headers` instead",
                                group.name
                            ),
                        ));
                    }
                    *params = route_params(route, &invalid)?;
                    *upstream_headers = self.route_upstream_headers(route, group, &invalid)?;
                }
                Action::Static(files)
            }
            (None, None, None, Some(respond)) => {
                Action::Respond(fixed_answer(respond).map_err(|(key, m)| invalid(key, &m))?)
            }
            (None, None, None, None) => {
                return Err(invalid(
                    "upstream",
                    "a route needs `upstream`, `redirect`, `static`, `respond` or `stub_status`",
                ));
            }
            _ => {
                return Err(invalid(
                    "upstream",
                    "a route has one of `upstream`, `redirect`, `static`, `respond` and \
                     `stub_status`, not several",
                ));
            }
        };
        if let Some(key) = misplaced_key(route, &action) {
            return Err(invalid(key, "does not apply to this kind of route"));
        }
        if let Some(key) = unchecked_auth(route, &action) {
            return Err(invalid(
                key,
                "is never checked on a `respond` or `redirect` route (its answer comes first, \
                 as nginx's `return` comes before its access checks): protect a route that \
                 reaches the app or files, or leave it out",
            ));
        }
        if route.allow.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                "allow",
                "an empty list would let every client in: leave the key out for no \
                 restriction, or list who may use the route",
            ));
        }
        if route.deny.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                "deny",
                "an empty list refuses no one: leave the key out, or list who is refused",
            ));
        }
        if let Some(both) = in_both(route.allow.as_deref(), route.deny.as_deref()) {
            return Err(invalid(
                "deny",
                &format!(
                    "{both} is in `allow` too: one of them must go (nginx would take the \
                     first it reads)"
                ),
            ));
        }
        // nginx's inheritance, for both: a location's own lines replace the server's.
        let hide_headers = match &route.hide_headers {
            Some(own) => {
                hidden_headers(own).map_err(|name| invalid("hide_headers", &hidden_rule(name)))?
            }
            None => hidden_headers(&self.settings.hide_headers).unwrap_or_default(),
        };
        let charset = self
            .charset(route.charset.as_deref(), route.charset_types.as_deref())
            .map_err(|(key, m)| invalid(key, &m))?;
        let rewrites = match RewriteLines::of_route(route, &self.settings) {
            None => top.rewrites.cloned(),
            Some(lines) => header_rewrite(&lines).map_err(|(key, m)| invalid(key, &m))?,
        };
        // `{}` adds none (found by review: it was taken as no table of the route's own).
        let response_headers = match &route.response_headers {
            None => inherited.clone(),
            Some(own) => response_headers(own)
                .map_err(|(name, m)| invalid(&format!("response_headers.{name}"), &m))?,
        };
        let own = overlay(&self.settings.limits, &route.limits)?;
        let limits = self.limits(&own, &format!("{at}."), &|key, message| {
            self.invalid_in_file(key, message)
        })?;
        // Its own, or the top level's (nginx's locations inherit the server's `limit_req`
        // unless they set one), counted in the top level's one table; not for a fixed
        // answer or a redirect, which nginx's `return` gives before `limit_req` is looked
        // at (a load balancer's health check must not meet a site's limit).
        let answers_first = matches!(action, Action::Respond(_) | Action::Redirect { .. });
        let inherited = top.limit_req.filter(|_| !answers_first);
        let (limit_req, limit_req_shared) = match &route.limit_req {
            Some(limit) => (
                Some(rate_limit(limit).map_err(|(key, m)| invalid(key, &m))?),
                false,
            ),
            None => (inherited.map(|(_, limit)| limit), inherited.is_some()),
        };
        let limit_conn = match &route.limit_conn {
            Some(limit) => Some(request_limit(limit).map_err(|(key, m)| invalid(key, &m))?),
            None => None,
        };
        let server_names = match route.hosts.is_empty() {
            true => &self.settings.hosts,
            false => &route.hosts,
        };
        let referers = match &route.referers {
            Some(setting) => Some(Arc::new(
                referers(setting, server_names).map_err(|(key, m)| invalid(key, &m))?,
            )),
            None => None,
        };
        let log_to = match &route.access_log {
            None => Some(MAIN_LOG),
            Some(LogTarget::Off) => None,
            Some(target) => Some(
                top.log_places
                    .iter()
                    .position(|(_, place)| place == target)
                    .map_or(MAIN_LOG, |i| i + 1),
            ),
        };
        let gzip = match route.gzip {
            _ if !compressible(&action) => None,
            None => gzip.cloned(),
            Some(false) => None,
            Some(true) => Some(gzip.cloned().unwrap_or_default()),
        };
        // As nginx's: a location's own auth_basic replaces the server's; `off` removes it.
        let auth = match &route.auth_basic {
            None => top.auth.cloned(),
            Some(setting) => self.auth_basic(setting, &format!("{at}.auth_basic"))?,
        };
        // The same for auth_request; a fixed answer or a redirect goes before any access
        // check (nginx's `return`), so nothing is asked for it.
        let auth_request = match &route.auth_request {
            _ if matches!(action, Action::Respond(_) | Action::Redirect { .. }) => None,
            None => top.auth_request.cloned(),
            Some(setting) => self.auth_request(setting, &format!("{at}.auth_request"))?,
        };
        Ok(Route {
            hosts: route.hosts.clone(),
            path,
            exact: route.exact,
            regex,
            no_regex: route.no_regex,
            internal: route.internal,
            allow: route.allow.clone().unwrap_or_default(),
            deny: route.deny.clone().unwrap_or_default(),
            satisfy_any: route.satisfy == Satisfy::Any,
            limit_except: self.limit_except(route.limit_except.as_ref(), at)?,
            action,
            response_headers: response_headers.all,
            always_headers: response_headers.always,
            hide_headers,
            charset,
            rewrites,
            limits,
            limit_req,
            limit_req_status: limit_req_status(route.limit_req.as_ref(), top.limit_req),
            limit_req_dry_run: limit_req_dry_run(route.limit_req.as_ref(), top.limit_req),
            limit_req_shared,
            limit_conn,
            referers,
            intercept_errors: route.intercept_errors,
            error_pages: match &route.error_pages {
                Some(own) => Arc::new(self.error_pages(own, &format!("{at}.error_pages"))?),
                None => Arc::clone(top.error_pages),
            },
            log_to,
            buffering: route.buffering.unwrap_or(true),
            gzip,
            auth,
            auth_request,
        })
    }

    /// A route's `limit_except` (at `at`): nginx's methods, upper case, at least one; `GET`
    /// brings `HEAD`, as in nginx.
    fn limit_except(
        &self,
        setting: Option<&LimitExceptSettings>,
        at: &str,
    ) -> anyhow::Result<Option<Box<LimitExcept>>> {
        let Some(setting) = setting else {
            return Ok(None);
        };
        let key = format!("{at}.limit_except.methods");
        if setting.methods.is_empty() {
            return Err(
                self.invalid_in_file(&key, "no method given: every method would be limited")
            );
        }
        let mut methods = Vec::new();
        for method in &setting.methods {
            if !LIMIT_EXCEPT_METHODS.contains(&method.as_str()) {
                return Err(self.invalid_in_file(
                    &key,
                    &format!(
                        "{method:?} is not a method limit_except takes: {}",
                        LIMIT_EXCEPT_METHODS.join(", ")
                    ),
                ));
            }
            methods.push(method.clone());
            if method == "GET" {
                methods.push("HEAD".to_owned());
            }
        }
        methods.sort();
        methods.dedup();
        Ok(Some(Box::new(LimitExcept {
            methods,
            allow: setting.allow.clone(),
        })))
    }

    /// An `auth_request` setting at `key`: the path asked and what a 401 becomes, or `None`
    /// for `"off"`.
    fn auth_request(
        &self,
        setting: &AuthRequestSetting,
        key: &str,
    ) -> anyhow::Result<Option<Arc<AuthRequest>>> {
        let (uri, redirect_401) = match setting {
            AuthRequestSetting::Word(word) if is_off(word) => return Ok(None),
            AuthRequestSetting::Word(uri) => (uri, None),
            AuthRequestSetting::Table(table) => (&table.path, table.redirect_401.as_deref()),
        };
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        // It goes in a request line as written: visible ASCII, and a path as routes see it.
        let visible = uri.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
        if !visible || !is_normal_path(path) {
            return Err(self.invalid_in_file(
                key,
                &format!(
                    "{uri:?}: expected a normalised path (`/auth`, `/oauth2/auth?x=1`: starting \
                     with `/`, no `..`, `//` or escapes, no spaces), a table, or \"off\""
                ),
            ));
        }
        let redirect_401 = match redirect_401 {
            Some(text) => {
                Some(Arc::new(Template::parse_value(text).map_err(|m| {
                    self.invalid_in_file(&format!("{key}.redirect_401"), &m)
                })?))
            }
            None => None,
        };
        Ok(Some(Arc::new(AuthRequest {
            path: path.into(),
            query: query.into(),
            redirect_401,
        })))
    }

    /// An `auth_basic` setting at `key`: its users loaded, or `None` for `"off"`.
    fn auth_basic(
        &self,
        setting: &AuthBasicSetting,
        key: &str,
    ) -> anyhow::Result<Option<Arc<BasicAuth>>> {
        match setting {
            AuthBasicSetting::Word(word) if is_off(word) => Ok(None),
            AuthBasicSetting::Word(word) => Err(self.invalid_in_file(
                key,
                &format!(
                    "{word:?}: expected {{ realm = \"...\", user_file = \"...\" }} or \"off\""
                ),
            )),
            AuthBasicSetting::Table(table) => BasicAuth::load(&table.realm, &table.user_file)
                .map(|auth| Some(Arc::new(auth)))
                .map_err(|m| self.invalid_in_file(key, &m)),
        }
    }
}

/// The top-level settings a route inherits unless it sets its own: its access checks, its
/// error pages and its cookie flags.
#[derive(Clone, Copy)]
struct TopLevel<'a> {
    auth: Option<&'a Arc<BasicAuth>>,
    /// The top level's `limit_req`, checked, for the routes without their own.
    limit_req: Option<(&'a LimitReqSettings, RateLimit)>,
    auth_request: Option<&'a Arc<AuthRequest>>,
    error_pages: &'a Arc<ErrorPages>,
    rewrites: Option<&'a Arc<HeaderRewrite>>,
    /// The places routes send their lines to ([`route_log_places`]); a route that names
    /// none of them sends its lines to the top level's log.
    log_places: &'a [(usize, LogTarget)],
}

/// The places the routes' own `access_log`s name (a file, or stderr), each once, with the
/// first route naming it: their lines go there, in place of the top level's log (nginx's
/// `access_log` in a `location`). A route naming the top level's own place (`main`) writes
/// to that log: one place, one sink, so a worker's lines there stay in its order.
fn route_log_places(routes: &[RouteSettings], main: &LogTarget) -> Vec<(usize, LogTarget)> {
    let mut places: Vec<(usize, LogTarget)> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        match &route.access_log {
            None | Some(LogTarget::Off) => {}
            Some(target) if target == main => {}
            Some(target) if places.iter().any(|(_, place)| place == target) => {}
            Some(target) => places.push((i, target.clone())),
        }
    }
    places
}

/// The rules for the app's `Set-Cookie`, `Location` and `Refresh` headers, each key's own
/// or inherited (nginx inherits each `proxy_cookie_*` directive and `proxy_redirect` on
/// its own).
struct RewriteLines<'a> {
    cookie_domain: &'a [String],
    cookie_path: &'a [String],
    cookie_flags: &'a [String],
    location_rewrite: &'a [String],
}

impl<'a> RewriteLines<'a> {
    fn top(s: &'a Settings) -> RewriteLines<'a> {
        RewriteLines {
            cookie_domain: &s.cookie_domain,
            cookie_path: &s.cookie_path,
            cookie_flags: &s.cookie_flags,
            location_rewrite: &s.location_rewrite,
        }
    }

    /// A route's, when it sets any of its own (else it shares the top level's).
    fn of_route(route: &'a RouteSettings, s: &'a Settings) -> Option<RewriteLines<'a>> {
        let own = [
            &route.cookie_domain,
            &route.cookie_path,
            &route.cookie_flags,
            &route.location_rewrite,
        ];
        if own.iter().all(|key| key.is_none()) {
            return None;
        }
        let top = RewriteLines::top(s);
        Some(RewriteLines {
            cookie_domain: route.cookie_domain.as_deref().unwrap_or(top.cookie_domain),
            cookie_path: route.cookie_path.as_deref().unwrap_or(top.cookie_path),
            cookie_flags: route.cookie_flags.as_deref().unwrap_or(top.cookie_flags),
            location_rewrite: route
                .location_rewrite
                .as_deref()
                .unwrap_or(top.location_rewrite),
        })
    }
}

/// The rules of `lines`, none when there are none; an error names the key whose rule is
/// wrong.
fn header_rewrite(
    lines: &RewriteLines<'_>,
) -> Result<Option<Arc<HeaderRewrite>>, (&'static str, String)> {
    let cookies = CookieRewrite {
        domains: RewriteRules::domains(lines.cookie_domain).map_err(|m| ("cookie_domain", m))?,
        paths: RewriteRules::prefixes(lines.cookie_path).map_err(|m| ("cookie_path", m))?,
        flags: CookieFlags::new(lines.cookie_flags).map_err(|m| ("cookie_flags", m))?,
    };
    let rules = HeaderRewrite {
        cookies,
        locations: location_rules(lines.location_rewrite).map_err(|m| ("location_rewrite", m))?,
    };
    Ok((!rules.is_empty()).then(|| Arc::new(rules)))
}

/// `location_rewrite`'s rules. nginx's `default` (its `proxy_pass` URL replaced by the
/// location's path) has nothing to match here: an HTTP group is sent the client's Host,
/// so the absolute URLs an app writes name the client's host already.
fn location_rules(lines: &[String]) -> Result<RewriteRules, String> {
    if lines.iter().any(|line| line.trim() == "default") {
        return Err(
            "`default` has no counterpart: the app is sent the client's Host, so \
                    its absolute URLs name it already; write the rule \
                    (`\"http://$host/ /app/\"`, `\"/ /app/\"`)"
                .into(),
        );
    }
    RewriteRules::prefixes(lines)
}

/// What a header given in the configuration must be.
const HEADER_RULE: &str = "header names are tokens, values printable text on one line";

/// A `hide_headers` list checked: each a header name, in lower case; or the first that is
/// not one.
fn hidden_headers(names: &[String]) -> Result<Vec<String>, &str> {
    names
        .iter()
        .map(|name| {
            let is_name = !name.is_empty() && name.bytes().all(crate::http::is_token);
            if is_name {
                Ok(name.to_ascii_lowercase())
            } else {
                Err(name.as_str())
            }
        })
        .collect()
}

fn hidden_rule(name: &str) -> String {
    format!("{name:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
}

/// The Hosts a path reached from `route` may be looked up under: each it names, and each
/// name other routes name that it covers (a wildcard's subdomain with routes of its own
/// looks among those; a wildcard is looked up by a name under it), with the name shown for
/// it; `None` for a route of every Host.
fn hosts_of(route: &Route, table: &RouteTable) -> Vec<(Option<String>, String)> {
    let mut hosts: Vec<(Option<String>, String)> = match route.hosts.as_slice() {
        [] => vec![(None, String::new())],
        named => named
            .iter()
            .map(|h| (Some(h.to_string()), h.to_string()))
            .collect(),
    };
    for other in table.iter().flat_map(|r| &r.hosts) {
        for sample in other.samples() {
            if route.hosts.iter().any(|h| h.matches(sample.as_bytes())) {
                hosts.push((Some(sample), other.to_string()));
            }
        }
    }
    hosts
}

/// A `response_headers` table checked: every header, and the `always` ones apart.
#[derive(Debug, Clone, Default)]
struct AddedHeaders {
    all: SetValues,
    always: SetValues,
}

/// `headers` checked, in order; the name of the first bad one and what is wrong otherwise.
/// Values may hold variables (nginx's `add_header X $var`), those known before the answer.
fn response_headers(
    headers: &BTreeMap<String, HeaderSetting>,
) -> Result<AddedHeaders, (String, String)> {
    let (mut all, mut always) = (Vec::new(), Vec::new());
    for (name, setting) in headers {
        let (value, is_always) = setting.parts();
        if !is_header_name(name) || !is_header_value(value) {
            return Err((name.clone(), HEADER_RULE.to_owned()));
        }
        // ringway frames its answers itself: a value (a client's, through a variable)
        // could put a connection out of step.
        if is_unsettable(name) {
            return Err((
                name.clone(),
                "framing and hop-by-hop headers are ringway's own to write".to_owned(),
            ));
        }
        // As nginx's `add_header X "";`: no header.
        if value.is_empty() {
            continue;
        }
        let header = (name.clone(), value.to_owned());
        if is_always {
            always.push(header.clone());
        }
        all.push(header);
    }
    Ok(AddedHeaders {
        all: SetValues::new(all)?,
        always: SetValues::new(always)?,
    })
}

/// Where `to` first names a group (`$1` to `$9`), if it does.
fn first_group_at(to: &str) -> Option<usize> {
    to.as_bytes()
        .windows(2)
        .position(|w| matches!(w, [b'$', b'1'..=b'9']))
}

/// The first `$` followed by a letter or one of `also` in `text`, with that name: nginx
/// expands such a variable in a `return`, where ringway would send it as written (found
/// by review: `to = "https://$host/"` sent `Location: https://$host/...`).
fn nginx_variable<'t>(text: &'t str, also: &[u8]) -> Option<&'t str> {
    let at = text
        .as_bytes()
        .windows(2)
        .position(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || also.contains(&w[1])))?;
    let name = text.get(at + 1..).unwrap_or_default();
    let len = name
        .bytes()
        .take_while(|&b| b.is_ascii_alphanumeric() || b"_{}".contains(&b))
        .count();
    text.get(at..at + 1 + len)
}

/// Whether a redirect's `to` is an absolute URL (or a scheme-relative one) with nothing
/// after its host: a request's path appended to it would lengthen the host (found by
/// review: `https://example.com` and `/@evil.example` made `https://example.com@evil.example`).
/// An empty `to` (the part of one before its first group) counts: a group there could
/// name any site.
fn ends_in_its_host(to: &str) -> bool {
    if to.is_empty() {
        return true;
    }
    let after_scheme = to
        .split_once("://")
        .map(|(_, rest)| rest)
        .or_else(|| to.strip_prefix("//"));
    after_scheme.is_some_and(|rest| !rest.contains('/'))
}

/// The flag that sets `[tls]`'s `key`, as its declaration spells it (`--tls-listen`,
/// `--redirect-http`, `--hsts`); none for a key only the file has (found by review: an
/// error named `--tls-redirect-http`, which does not exist).
pub(super) fn tls_flag(key: &str) -> Option<String> {
    let flags = <TlsSettings as clap::Args>::augment_args(clap::Command::new("tls"));
    let prefixed = format!("tls_{key}");
    flags
        .get_arguments()
        .find(|arg| arg.get_id() == key || arg.get_id() == prefixed.as_str())
        .and_then(|arg| arg.get_long())
        .map(|long| format!("--{long}"))
}

/// The file served for a directory when a static route names none, as nginx's `index`.
const DEFAULT_INDEX: &str = "index.html";

/// A route's `respond`, checked. Errors name the key they are about.
fn fixed_answer(respond: &RespondSettings) -> Result<FixedAnswer, (&'static str, String)> {
    let status = respond.status;
    if !(200..=599).contains(&status) || REDIRECT_STATUSES.contains(&status) {
        return Err((
            "respond.status",
            format!("{status}: a status from 200 to 599, redirects aside (`redirect` has those)"),
        ));
    }
    let content_type = respond.content_type.as_deref().unwrap_or("text/plain");
    if !is_header_value(content_type) || content_type.is_empty() {
        return Err((
            "respond.content_type",
            "must be printable text on one line".into(),
        ));
    }
    let body = match &respond.body {
        Some(_) if matches!(status, 204 | 205 | 304 | 444) => {
            return Err(("respond.body", format!("a {status} answer has no body")));
        }
        Some(body) => {
            if let Some(variable) = nginx_variable(body, b"0123456789_{") {
                return Err((
                    "respond.body",
                    format!(
                        "names {variable}, which nginx's `return` would expand and ringway \
                         sends as written: `body` takes no variables"
                    ),
                ));
            }
            Some((content_type.into(), body.as_bytes().into()))
        }
        None if respond.content_type.is_some() => {
            return Err((
                "respond.content_type",
                "is the type of `body`, which is not set".into(),
            ));
        }
        None => None,
    };
    Ok(FixedAnswer { status, body })
}

/// `index`'s names, each one file name, as nginx's `index index.html index.htm;` is a list.
fn index_names(names: &[String]) -> Result<Vec<String>, String> {
    for name in names {
        // nginx's `index index.html index.htm;` copied whole into one string would be a
        // file called `index.html index.htm`, and every directory a 404 (found by review).
        if name.contains(char::is_whitespace) {
            return Err(format!(
                "{name:?} must be one file name: nginx's `index` list is a list here, like \
                 [\"index.html\", \"index.htm\"]"
            ));
        }
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(format!(
                "{name:?} must be a file name, like \"index.html\" (`index = \"\"` names \
                 none; for an absolute path, see `fallback`)"
            ));
        }
    }
    Ok(names.to_vec())
}

/// The index of the group called `name`.
fn group_index(groups: &[Group], name: &str) -> Result<usize, String> {
    groups.iter().position(|g| g.name == name).ok_or_else(|| {
        let known: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        format!("no upstream group {name:?} (groups: {})", known.join(", "))
    })
}

/// A static route's settings: the root opened now (a missing directory stops ringway at
/// start-up, not at the first request). Errors name the key they are about.
fn static_route(
    route: &RouteSettings,
    dir: &std::path::Path,
    groups: &[Group],
) -> Result<StaticRoute, (&'static str, String)> {
    if route.immutable
        && matches!(
            route.expires,
            Some(Expires::Stale(_) | Expires::Epoch | Expires::Off) | None
        )
    {
        return Err((
            "immutable",
            "adds to a max-age: it needs an `expires` time (30d, max), not none, a negative \
             one or epoch"
                .into(),
        ));
    }
    // An exact route may name one file: its directory is the root, its name the one file,
    // both as written, so that a swapped `current` symlink on the way, and the file's own
    // link, are followed at each look as nginx follows them at each request (found by
    // review: a symlinked file was resolved once, at load). Its type comes from the
    // route's path, as nginx types by the request's extension. A file missing at load is a
    // 404 until it is there, as with nginx: not a start, or every later reload, refused.
    let route_path = route.path.as_deref().unwrap_or_default();
    let names_one_file = |meta: &std::io::Result<std::fs::Metadata>| match meta {
        Ok(meta) => meta.is_file(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound && !route_path.ends_with('/'),
    };
    let (root, file) = match (route.exact, std::fs::metadata(dir)) {
        (true, meta) if names_one_file(&meta) => {
            if route.index.as_ref().is_some_and(|i| !i.0.is_empty()) {
                return Err(("index", "a route serving one file has no index".into()));
            }
            let name = dir.file_name().and_then(|n| n.to_str());
            let parent = match dir.parent() {
                Some(p) if p.as_os_str().is_empty() => std::path::Path::new("."),
                Some(p) => p,
                None => return Err(("static", format!("{} names no file", dir.display()))),
            };
            let Some(name) = name else {
                return Err(("static", format!("{} names no file", dir.display())));
            };
            if meta.is_err() {
                tracing::warn!(
                    route = %route_path,
                    file = %dir.display(),
                    "no such file yet: the route answers 404 until there is one"
                );
            }
            // A link the configuration names is followed wherever it points, as nginx
            // follows it; a name that was a file (or nothing) at load stays beneath its
            // directory: a link planted there later cannot hand out another file.
            let is_link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_symlink());
            let root = Root::open_for_one_file(parent, is_link).map_err(|e| {
                (
                    "static",
                    format!("cannot open the directory {}: {e}", parent.display()),
                )
            })?;
            // A path ending in `/` names no type: the file's own name does.
            let typed_as = match route_path.rsplit('/').next() {
                Some(last) if !last.is_empty() => last,
                _ => name,
            };
            let file = OneFile {
                name: name.to_owned(),
                typed_as: typed_as.to_owned(),
            };
            (root, Some(file))
        }
        (false, Ok(meta)) if meta.is_file() => {
            return Err((
                "static",
                format!(
                    "{} is a file: a route serving one file needs `exact = true`",
                    dir.display()
                ),
            ));
        }
        _ => {
            let root = Root::open(dir).map_err(|e| {
                (
                    "static",
                    format!("cannot open the directory {}: {e}", dir.display()),
                )
            })?;
            (root, None)
        }
    };
    let precompressed = route
        .precompressed
        .iter()
        .map(|name| match name.as_str() {
            "br" => Ok(Encoding::Brotli),
            "gzip" => Ok(Encoding::Gzip),
            other => Err((
                "precompressed",
                format!("{other:?}: expected \"br\" or \"gzip\""),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // nginx's `index` is `index.html` unless a config says otherwise (found by review: a
    // docs site behind an `alias` lost every directory URL after a migration). Beside a
    // fallback (`try_files $uri @app`, `try_files $uri /index.html`, whose `$uri` takes
    // files only) nginx never uses it: `/` goes to the app, or the page.
    let index = match &route.index {
        None if file.is_some() || route.fallback.is_some() => Vec::new(),
        None => vec![DEFAULT_INDEX.to_owned()],
        Some(names) => index_names(&names.0).map_err(|m| ("index", m))?,
    };
    let fallback = match &route.fallback {
        Some(path) if path.starts_with('/') => {
            if !is_normal_path(path) || path.contains('?') {
                return Err((
                    "fallback",
                    format!(
                        "{path:?} must be a normalised path without a query, like \"/index.html\""
                    ),
                ));
            }
            Some(Fallback::Path(path.clone()))
        }
        // The vars and headers are the route's (`Validator::fallback_sets`).
        Some(name) => Some(Fallback::Group {
            group: group_index(groups, name).map_err(|m| ("fallback", m))?,
            params: SetValues::NONE,
            upstream_headers: SetValues::NONE,
        }),
        None => None,
    };
    Ok(StaticRoute {
        root: Arc::new(root),
        expires: route.expires.filter(|e| *e != Expires::Off),
        immutable: route.immutable,
        etag: route.etag.unwrap_or(true),
        index,
        precompressed,
        fallback,
        dotfiles: route.dotfiles,
        file,
        types: media_types(route)?,
    })
}

/// A group's `balance`; `ip_hash` takes no backup server, as nginx's refuses one (a client
/// belongs to one server, and its hash would not move to a backup).
fn balance(given: Option<&str>, servers: &[GroupServer]) -> Result<Balance, String> {
    let balance = match given {
        None | Some("round_robin") => Balance::RoundRobin,
        Some("ip_hash") => Balance::IpHash,
        Some("least_conn") => Balance::LeastConn,
        Some(other) => {
            return Err(format!(
                "{other:?}: expected \"round_robin\", \"least_conn\" or \"ip_hash\""
            ));
        }
    };
    if balance == Balance::IpHash && servers.iter().any(|s| s.options.backup) {
        return Err("ip_hash takes no `backup` server, as nginx's".into());
    }
    Ok(balance)
}

/// A static route's `types` and `default_type`: extensions without their dot (kept in lower
/// case, as nginx looks them up), each type a `type/subtype` a header can carry.
fn media_types(route: &RouteSettings) -> Result<MediaTypes, (&'static str, String)> {
    let is_media_type = |t: &str| {
        let essence = t.split(';').next().unwrap_or_default().trim();
        is_header_value(t)
            && t.trim() == t
            && essence
                .split_once('/')
                .is_some_and(|(a, b)| is_header_name(a) && is_header_name(b))
    };
    let own = match &route.types {
        None => None,
        Some(types) => {
            let mut own = BTreeMap::new();
            for (ext, media) in types {
                let lower = ext.to_ascii_lowercase();
                if ext.is_empty() || ext.contains(['.', '/']) || !is_header_name(ext) {
                    return Err((
                        "types",
                        format!("{ext:?}: an extension, without its dot (\"pdf\")"),
                    ));
                }
                if !is_media_type(media) {
                    return Err((
                        "types",
                        format!("{ext}: {media:?} is not a media type (\"application/pdf\")"),
                    ));
                }
                if own.insert(lower, media.clone()).is_some() {
                    return Err(("types", format!("{ext:?} is given twice, in two cases")));
                }
            }
            Some(own)
        }
    };
    if let Some(default) = &route.default_type
        && !is_media_type(default)
    {
        return Err((
            "default_type",
            format!("{default:?} is not a media type (\"text/plain\")"),
        ));
    }
    Ok(MediaTypes {
        own,
        default: route.default_type.clone(),
    })
}

/// A route's `params` (uwsgi vars), checked.
fn route_params(
    route: &RouteSettings,
    invalid: &impl Fn(&str, &str) -> anyhow::Error,
) -> anyhow::Result<SetValues> {
    let params = route
        .params
        .iter()
        .map(|(name, value)| {
            check_param(name, value)
                .map(|()| (name.clone(), value.clone()))
                .map_err(|m| invalid(&format!("params.{name}"), &m))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    SetValues::new(params).map_err(|(name, m)| invalid(&format!("params.{name}"), &m))
}

/// A key set on a route whose kind has no use for it.
fn misplaced_key(route: &RouteSettings, action: &Action) -> Option<&'static str> {
    let is_static = matches!(action, Action::Static(_));
    let is_upstream = matches!(action, Action::Upstream { .. });
    // Only an app's answers can be intercepted; only an app's and files compressed.
    if route.intercept_errors && !reaches_app(action) {
        return Some("intercept_errors");
    }
    if route.buffering.is_some() && !reaches_app(action) {
        return Some("buffering");
    }
    if route.charset.is_some() && !reaches_app(action) {
        return Some("charset");
    }
    if route.charset_types.is_some() && !reaches_app(action) {
        return Some("charset_types");
    }
    for (key, set) in [
        ("cookie_flags", route.cookie_flags.is_some()),
        ("cookie_domain", route.cookie_domain.is_some()),
        ("cookie_path", route.cookie_path.is_some()),
        ("location_rewrite", route.location_rewrite.is_some()),
    ] {
        if set && !reaches_app(action) {
            return Some(key);
        }
    }
    if route.gzip.is_some() && !compressible(action) {
        return Some("gzip");
    }
    let static_only = [
        ("expires", route.expires.is_some()),
        ("immutable", route.immutable),
        ("etag", route.etag.is_some()),
        ("index", route.index.is_some()),
        ("precompressed", !route.precompressed.is_empty()),
        ("fallback", route.fallback.is_some()),
        ("dotfiles", route.dotfiles),
        ("types", route.types.is_some()),
        ("default_type", route.default_type.is_some()),
    ];
    let upstream_only = [
        ("script_name", route.script_name.is_some()),
        ("upstream_path", route.upstream_path.is_some()),
    ];
    // A static route's fallback to a group sends them too.
    let to_app_only = [
        ("params", !route.params.is_empty()),
        ("upstream_headers", route.upstream_headers.is_some()),
    ];
    static_only
        .iter()
        .filter(|_| !is_static)
        .chain(upstream_only.iter().filter(|_| !is_upstream))
        .chain(to_app_only.iter().filter(|_| !reaches_app(action)))
        .find(|(_, set)| *set)
        .map(|(key, _)| *key)
}

/// A route's own `auth_basic` or `auth_request` where it would never be asked for: a fixed
/// answer or a redirect is made before any access check (`"off"` is harmless).
fn unchecked_auth(route: &RouteSettings, action: &Action) -> Option<&'static str> {
    if !matches!(action, Action::Respond(_) | Action::Redirect { .. }) {
        return None;
    }
    let basic = route
        .auth_basic
        .as_ref()
        .is_some_and(|a| !matches!(a, AuthBasicSetting::Word(word) if is_off(word)));
    let request = route
        .auth_request
        .as_ref()
        .is_some_and(|a| !matches!(a, AuthRequestSetting::Word(word) if is_off(word)));
    [("auth_basic", basic), ("auth_request", request)]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(key, _)| key)
}

/// An entry of `allow` that `deny` has as well (`all` and a `/0` are the same range for
/// the clients of its family), which the narrowest-entry rule cannot decide.
fn in_both(allow: Option<&[ClientRange]>, deny: Option<&[ClientRange]>) -> Option<ClientRange> {
    let (allow, deny) = (allow?, deny?);
    allow.iter().copied().find(|a| {
        deny.iter().any(|d| match (a, d) {
            (ClientRange::Range(a), ClientRange::Range(b)) => a == b,
            _ => a.prefix_len() == 0 && d.prefix_len() == 0,
        })
    })
}

/// Whether `[gzip]` compresses a route's answers: an app's and files, as nginx's gzip
/// filter takes both (not a `respond` body or a redirect).
fn compressible(action: &Action) -> bool {
    matches!(action, Action::Upstream { .. } | Action::Static(_))
}

/// Whether a route's requests can reach an app: an upstream route's, or a static route's
/// through its fallback.
fn reaches_app(action: &Action) -> bool {
    matches!(action, Action::Upstream { .. })
        || matches!(action, Action::Static(files) if matches!(files.fallback, Some(Fallback::Group { .. })))
}

/// `script_name` or `params` on a route to an HTTP group: both are uwsgi vars, and an
/// HTTP request has no place for them (refused, as `keepalive` is on a uwsgi group).
fn uwsgi_only_key(route: &RouteSettings, protocol: Protocol) -> Option<&'static str> {
    if protocol != Protocol::Http {
        return None;
    }
    [
        ("script_name", route.script_name.is_some()),
        ("params", !route.params.is_empty()),
    ]
    .iter()
    .find(|(_, set)| *set)
    .map(|(key, _)| *key)
}

/// A timeout, `default` seconds if unset; 0 is refused, since everything it bounds would
/// time out at once. (Not for the timeouts where 0 means something: `keepalive_timeout`,
/// an idle kept-alive connection closed at once; `shutdown_timeout`, stop at once;
/// `next_upstream_timeout`, no bound.)
fn nonzero_timeout(
    key: &str,
    value: Option<Dur>,
    default: u64,
    invalid: &dyn Fn(&str, &str) -> anyhow::Error,
) -> anyhow::Result<std::time::Duration> {
    let timeout = value.unwrap_or(Dur::secs(default)).0;
    if timeout.is_zero() {
        return Err(invalid(
            key,
            "must be longer than 0: everything it bounds would time out at once",
        ));
    }
    Ok(timeout)
}

/// `count` if in `range`; otherwise an error naming `key`.
fn count_in(
    key: &str,
    count: usize,
    range: RangeInclusive<usize>,
    invalid: impl Fn(&str, &str) -> anyhow::Error,
) -> anyhow::Result<usize> {
    if range.contains(&count) {
        return Ok(count);
    }
    let (lo, hi) = (range.start(), range.end());
    Err(invalid(
        key,
        &format!("{count} is out of range: must be between {lo} and {hi}"),
    ))
}

/// The protocol every server of a group speaks; an error when they differ.
/// The methods nginx's `limit_except` takes.
const LIMIT_EXCEPT_METHODS: [&str; 14] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
    "PATCH",
];

/// A group's servers as written, held to nginx's rules: at least one not a backup, and at
/// most [`MAX_GROUP_SERVERS`].
fn group_servers(servers: &[ServerAddr], lookup: Lookup) -> Result<Vec<GroupServer>, String> {
    if servers.len() > MAX_GROUP_SERVERS {
        return Err(format!(
            "{} servers: a group holds at most {MAX_GROUP_SERVERS}",
            servers.len()
        ));
    }
    if servers.iter().all(|s| s.options.backup) {
        return Err(
            "every server is a backup: backups take requests only when the others \
                    cannot, so at least one must not be"
                .to_owned(),
        );
    }
    let mut resolved = Vec::with_capacity(servers.len());
    for server in servers {
        let name: Option<Arc<str>> = match &server.at {
            ServerAt::Name { .. } => Some(server.at.to_string().into()),
            ServerAt::Addr(_) => None,
        };
        for addr in server.at.resolve(lookup)? {
            resolved.push(GroupServer {
                addr,
                name: name.clone(),
                options: server.options,
            });
        }
    }
    if resolved.len() > MAX_GROUP_SERVERS {
        return Err(format!(
            "{} servers once names are resolved: a group holds at most {MAX_GROUP_SERVERS}",
            resolved.len()
        ));
    }
    Ok(resolved)
}

fn one_protocol(servers: &[ServerAddr]) -> Result<Protocol, String> {
    let Some(first) = servers.first() else {
        return Ok(Protocol::Uwsgi);
    };
    match servers.iter().find(|s| s.protocol != first.protocol) {
        None => Ok(first.protocol),
        Some(other) => Err(format!(
            "{first} and {other} speak different protocols (uwsgi and HTTP): a group is one \
             or the other; make two groups"
        )),
    }
}

/// An HTTP group's keep-alive by default. nginx's `keepalive` has no default; 32 is the
/// value its documentation shows, and enough for a worker that keeps about that many
/// requests in flight to one server. The rest are nginx's defaults for an `upstream` block
/// (`keepalive_timeout 60s`, `keepalive_requests 1000`, `keepalive_time 1h`).
const DEFAULT_KEEPALIVE: KeepAlive = KeepAlive {
    idle: 32,
    timeout: std::time::Duration::from_secs(60),
    requests: 1000,
    time: std::time::Duration::from_secs(3600),
};
/// `keepalive`: each kept connection is a socket (and a Python server's connection).
const KEEPALIVE: RangeInclusive<usize> = 0..=10_000;

/// `max_connections`, `limit_conn_per_ip`: 0 would refuse everyone.
const COUNTS: RangeInclusive<usize> = 1..=100_000_000;
/// `max_conns` per server: uWSGI's workers plus a little, a few thousand at most.
const MAX_CONNS: RangeInclusive<usize> = 1..=100_000;
/// `queue`: each waiting request holds a connection and its body.
const QUEUE: RangeInclusive<usize> = 0..=1_000_000;
/// `limit_req.burst`.
const BURST: RangeInclusive<u32> = 0..=1_000_000;
/// `limit_req.rate`, in thousandths of a request per second: from 1r/m to 1,000,000r/s.
const RATES: RangeInclusive<u64> = 16..=1_000_000_000;

/// The status of a request over a route's `limit_req` (`own`, else the top level's): its
/// own `status`, else the top level's, as nginx's `limit_req_status` is inherited on its
/// own.
fn limit_req_status(
    own: Option<&LimitReqSettings>,
    top: Option<(&LimitReqSettings, RateLimit)>,
) -> u16 {
    let top = top.and_then(|(settings, _)| settings.status);
    own.and_then(|l| l.status)
        .or(top)
        .unwrap_or(LIMIT_REQ_STATUS)
}

/// Whether a route's `limit_req` only counts: its own `dry_run`, else the top level's, as
/// nginx's `limit_req_dry_run` is inherited on its own.
fn limit_req_dry_run(
    own: Option<&LimitReqSettings>,
    top: Option<(&LimitReqSettings, RateLimit)>,
) -> bool {
    let top = top.and_then(|(settings, _)| settings.dry_run);
    own.and_then(|l| l.dry_run).or(top).unwrap_or(false)
}

/// A route's `limit_req`, checked. Errors name the key under `limit_req`.
fn rate_limit(limit: &LimitReqSettings) -> Result<RateLimit, (&'static str, String)> {
    let rate = limit.rate.milli_per_second();
    if !RATES.contains(&rate) {
        return Err((
            "limit_req.rate",
            format!(
                "{} is out of range: must be between 1r/m and 1000000r/s",
                limit.rate
            ),
        ));
    }
    if !BURST.contains(&limit.burst) {
        return Err((
            "limit_req.burst",
            format!(
                "{} is out of range: must be between 0 and 1000000",
                limit.burst
            ),
        ));
    }
    if let Some(delay) = limit.delay.filter(|d| !BURST.contains(d)) {
        return Err((
            "limit_req.delay",
            format!("{delay} is out of range: must be between 0 and 1000000"),
        ));
    }
    if limit.status.is_some_and(|s| !(400..=599).contains(&s)) {
        return Err((
            "limit_req.status",
            "must be an error status, 400 to 599".to_owned(),
        ));
    }
    Ok(RateLimit::new(rate, limit.burst, limit.delay))
}

/// The status of a request whose Referer a route's `referers` does not take, unless it
/// names one: the `return 403;` nginx's `if ($invalid_referer)` idiom writes.
const INVALID_REFERER_STATUS: u16 = 403;

/// A route's `referers`, checked. Errors name the key under `referers`.
fn referers(
    setting: &ReferersSettings,
    server_names: &[HostName],
) -> Result<RefererCheck, (&'static str, String)> {
    let valid =
        ValidReferers::new(&setting.valid, server_names).map_err(|m| ("referers.valid", m))?;
    if setting.status.is_some_and(|s| !(400..=599).contains(&s)) {
        return Err((
            "referers.status",
            "must be an error status, 400 to 599".to_owned(),
        ));
    }
    Ok(RefererCheck {
        valid,
        status: setting.status.unwrap_or(INVALID_REFERER_STATUS),
        dry_run: setting.dry_run,
    })
}

/// A refusal's status when a route's `limit_conn` names none: nginx's `limit_conn_status`.
const LIMIT_CONN_STATUS: u16 = 503;

/// A route's `limit_conn`, checked. Errors name the key under `limit_conn`.
fn request_limit(limit: &LimitConnSettings) -> Result<RequestLimit, (&'static str, String)> {
    if !COUNTS.contains(&limit.per_ip) {
        return Err((
            "limit_conn.per_ip",
            format!(
                "{} is out of range: must be between {} and {}",
                limit.per_ip,
                COUNTS.start(),
                COUNTS.end()
            ),
        ));
    }
    if limit.status.is_some_and(|s| !(400..=599).contains(&s)) {
        return Err((
            "limit_conn.status",
            "must be an error status, 400 to 599".to_owned(),
        ));
    }
    Ok(RequestLimit {
        per_ip: limit.per_ip,
        status: limit.status.unwrap_or(LIMIT_CONN_STATUS),
        dry_run: limit.dry_run,
    })
}

/// uWSGI's buffer-size range (its own maximum is 65535).
const BUFFER_SIZES: RangeInclusive<u64> = 4..=65535;

/// A route's limits: the ones it sets, over the global ones (through their serde form, so
/// no list of fields is kept here).
fn overlay(global: &LimitSettings, route: &LimitSettings) -> anyhow::Result<LimitSettings> {
    let mut merged = serde_json::to_value(global)?;
    let own = serde_json::to_value(route)?;
    if let (Some(merged), Some(own)) = (merged.as_object_mut(), own.as_object()) {
        for (key, value) in own {
            if !value.is_null() {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(serde_json::from_value(merged)?)
}

/// True if `path` is what normalisation would make of it: route paths are matched against
/// normalised request paths, so any other spelling would never match.
pub(crate) fn is_normal_path(path: &str) -> bool {
    let mut normal = Vec::new();
    !path.contains('%')
        && crate::uwsgi::normalize_path(path.as_bytes(), &mut normal).is_ok()
        && normal == path.as_bytes()
}

/// A mount point: `/x` or `/x/y`, the route's path or a prefix of it ending at a `/`.
/// A prefix route mounted at its own path must end in `/`: `path = "/api"` also matches
/// `/apix`, whose PATH_INFO would be `x` (not a path).
fn check_mount(mount: &str, path: &str, exact: bool) -> Result<String, String> {
    let clean = is_normal_path(mount) && mount.len() > 1 && !mount.ends_with('/');
    if !clean {
        return Err(format!(
            "{mount:?} must be a path like \"/api\" (starting with `/`, not ending with one)"
        ));
    }
    let covers = path == mount || path.strip_prefix(mount).is_some_and(|r| r.starts_with('/'));
    if !covers {
        return Err(format!(
            "{mount:?} is not a prefix of the route's path {path:?}: PATH_INFO could not start after it"
        ));
    }
    if path == mount && !exact {
        return Err(format!(
            "the prefix route {path:?} also matches {path}x, whose PATH_INFO would be \"x\": \
             write `path = \"{path}/\"` (a request for {path} is redirected to {path}/), or \
             `exact = true`"
        ));
    }
    Ok(mount.to_owned())
}

/// An operator's uwsgi var: a non-empty name of printable ASCII, within uwsgi's u16 lengths.
fn check_param(name: &str, value: &str) -> Result<(), String> {
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if name.is_empty() || !printable(name) {
        return Err("a var name is printable ASCII without spaces".into());
    }
    if name.len() > 65535 || value.len() > 65535 {
        return Err("too long for the uwsgi protocol".into());
    }
    // The body's length as ringway read it (a chunked body's decoded length): nginx's
    // `uwsgi_param CONTENT_LENGTH $content_length` copied here would say the header, empty
    // for every chunked upload, and the app would read no body (found by review).
    if name == "CONTENT_LENGTH" {
        return Err(
            "CONTENT_LENGTH is the length of the body ringway read and sends; \
                    leave it out (as nginx's uwsgi_params line, it is built in)"
                .into(),
        );
    }
    Ok(())
}

/// Whether header `name` is one ringway frames or hops by itself (Content-Length, Expect and
/// the hop-by-hop ones): an operator's value would break the request or the answer.
fn is_unsettable(name: &str) -> bool {
    let name = name.as_bytes();
    crate::http::is_hop_by_hop(name)
        || name.eq_ignore_ascii_case(b"content-length")
        || name.eq_ignore_ascii_case(b"expect")
}

/// `upstream_headers` as written: each a header name and a value a header line can carry
/// (empty: the header removed), none of those ringway frames the request with, and a Host
/// not empty. The error names the header.
fn upstream_headers(set: &BTreeMap<String, String>) -> Result<SetValues, (String, String)> {
    let pairs = set
        .iter()
        .map(|(name, value)| {
            let refuse = |m: &str| Err((name.clone(), m.to_owned()));
            let lower = name.to_ascii_lowercase();
            if !is_header_name(name) {
                return refuse("not a header name");
            }
            if is_unsettable(name) {
                return refuse("framing and hop-by-hop headers are ringway's own to write");
            }
            if !is_header_value(value) || value.trim() != value {
                return refuse("not a header value (control characters, or spaces at an end)");
            }
            if lower == "host" && value.is_empty() {
                return refuse("an HTTP/1.1 request needs a Host");
            }
            Ok((name.clone(), value.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    SetValues::new(pairs)
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(crate::http::is_token)
}

fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

/// `/var/tmp/ringway-UID`: /var/tmp survives reboots but is meant for such files, and the
/// uid keeps two users' ringways apart.
fn default_temp_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!("/var/tmp/ringway-{uid}"))
}

/// The HTTP-only app server a command runs, if it is one of the usual ones, run as itself or
/// as `python -m NAME`.
fn http_app_server(command: &[String]) -> Option<&'static str> {
    const HTTP_ONLY: [&str; 5] = ["gunicorn", "granian", "uvicorn", "hypercorn", "daphne"];
    let name = |arg: &str| {
        let base = arg.rsplit('/').next().unwrap_or(arg);
        HTTP_ONLY.into_iter().find(|known| *known == base)
    };
    match command {
        [program, ..] if name(program).is_some() => name(program),
        [program, dash_m, module, ..] if program.contains("python") && dash_m == "-m" => {
            name(module)
        }
        _ => None,
    }
}

/// Whether an HTTP app server run as `command` listens on `addr`: a unix socket it binds
/// (`--bind unix:PATH`, `--uds PATH`), or, for a server on this host, a port it binds
/// (`--bind HOST:PORT`, `--port PORT`, each also as `--opt=VALUE` or `-bVALUE`), or port
/// 8000 when it names none, the default of gunicorn, Granian, uvicorn, hypercorn and daphne.
fn names_address(command: &[String], addr: &super::UpstreamAddr) -> bool {
    use super::UpstreamAddr;
    let mut binds = Vec::new();
    let mut args = command.iter().skip(1);
    while let Some(arg) = args.next() {
        let (option, inline) = match arg.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value)),
            _ => match arg.as_bytes() {
                [b'-', b'b' | b'p', _, ..] if !arg.starts_with("--") => {
                    (&arg[..2], Some(&arg[2..]))
                }
                _ => (arg.as_str(), None),
            },
        };
        if matches!(option, "--bind" | "-b" | "--port" | "-p" | "--uds")
            && let Some(value) = inline.or_else(|| args.next().map(String::as_str))
        {
            binds.push(value);
        }
    }
    match addr {
        UpstreamAddr::Unix(path) => {
            let path = path.to_string_lossy();
            binds
                .iter()
                .any(|bind| bind.strip_prefix("unix:").unwrap_or(bind) == path)
        }
        UpstreamAddr::Tcp(socket) if socket.ip().is_loopback() || socket.ip().is_unspecified() => {
            let port = socket.port().to_string();
            let named = |bind: &&str| {
                *bind == port || bind.rsplit_once(':').is_some_and(|(_, p)| p == port)
            };
            binds.iter().any(named) || (binds.is_empty() && socket.port() == 8000)
        }
        UpstreamAddr::Tcp(_) => false,
    }
}

/// `[app]`, checked; `invalid` names the key in the refusal.
fn app_config(
    app: &AppSettings,
    invalid: impl Fn(&str, &str) -> anyhow::Error,
) -> anyhow::Result<AppConfig> {
    match app.command.first() {
        None => {
            return Err(invalid(
                "command",
                "must name the program to run, e.g. [\"uwsgi\", \"--ini\", \"uwsgi.ini\"]",
            ));
        }
        Some(program) if program.is_empty() => {
            return Err(invalid("command", "the program's name is empty"));
        }
        Some(_) => {}
    }
    if app.command.iter().any(|arg| arg.contains('\0')) {
        return Err(invalid("command", "an argument holds a NUL byte"));
    }
    let stop_signal = match &app.stop_signal {
        None => StopSignal::from_name("SIGINT"),
        Some(name) => StopSignal::from_name(name),
    }
    .ok_or_else(|| {
        invalid(
            "stop_signal",
            &format!("expected one of {}", StopSignal::names()),
        )
    })?;
    let restart = match &app.restart {
        None => Some(Restart::OnFailure),
        Some(name) => Restart::from_name(name),
    }
    .ok_or_else(|| invalid("restart", "expected on-failure, always or never"))?;
    let ready_timeout = app.ready_timeout.unwrap_or(Dur::secs(60)).0;
    if ready_timeout.is_zero() {
        return Err(invalid(
            "ready_timeout",
            "must be longer than 0: the app needs a moment to open its socket",
        ));
    }
    let stop_timeout = app.stop_timeout.unwrap_or(Dur::secs(10)).0;
    for (key, value) in [
        ("ready_timeout", ready_timeout),
        ("stop_timeout", stop_timeout),
    ] {
        if value > APP_TIMEOUT_MAX {
            return Err(invalid(key, "must be at most 1h"));
        }
    }
    Ok(AppConfig {
        command: app.command.clone(),
        stop_signal,
        restart,
        ready_timeout,
        stop_timeout,
    })
}

/// Why a page for `status` would never be sent, for statuses nginx pages and ringway
/// answers otherwise (found by review: such a page was taken and never used).
fn never_paged(status: u16) -> Option<&'static str> {
    match status {
        444 => Some("444 closes the connection without an answer: no page goes with it"),
        494 => Some(
            "ringway answers a head over max_header_size with 431 (nginx's 494 becomes 400): \
             key the page 431",
        ),
        495 | 496 => Some(
            "a client certificate that is missing or fails verification fails the TLS \
             handshake in ringway: there is no answer to carry a page",
        ),
        497 => Some(
            "a plain HTTP request on the TLS port gets nginx's fixed words, with no page \
             (redirect_http sends plain requests to HTTPS)",
        ),
        _ => None,
    }
}
