//! Configuration: every setting is declared once, in [`Settings`] (settings.rs), which serves
//! both the command line (clap) and the TOML file (serde). Flags win over the file, the file
//! over the defaults; validate.rs then checks everything once, at start-up, into the
//! [`Config`] that the workers share read-only. An error names the flag, or the key and the
//! file, it comes from.

mod next_upstream;
mod server_addr;
mod server_options;
mod set_values;
mod settings;
mod validate;
mod values;

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;

pub use next_upstream::NextUpstream;
pub(crate) use server_addr::system_lookup;
pub use server_addr::{Protocol, ServerAddr, ServerAt};
pub use server_options::ServerOptions;
pub use set_values::SetValues;
pub(crate) use set_values::header_text;
pub use settings::{
    AppSettings, GroupSettings, GzipSettings, HeaderSetting, HeaderTable, LimitConnSettings,
    LimitExceptSettings, LimitReqSettings, LimitSettings, RedirectSettings, ReferersSettings,
    Resolved, RespondSettings, RouteSettings, Settings,
};
pub(crate) use validate::is_normal_path;
pub(crate) use values::is_off;
pub use values::{
    CacheFor, Cidr, ClientRange, DEFAULT_METRICS, Dur, Expires, HostName, KeyExchangeGroup,
    LogEscape, LogFormat, LogTarget, LoggedStatus, LoggedStatuses, MetricsListen, Rate,
    RealIpHeader, Size, StaticDir, TlsVersion, ToHttps, UpstreamAddr, VerifyClient,
};

use crate::access_log::{SyslogAddr, SyslogTarget};
use crate::app::AppConfig;
use crate::error_pages::ErrorPages;
use crate::routes::RouteTable;
use crate::tls::TlsConfig;

/// Resolved settings, shared read-only by all workers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen addresses, at least one (a port may be 0 until bound).
    pub listen: Vec<SocketAddr>,
    /// Worker threads.
    pub workers: usize,
    /// One worker per allowed CPU is pinned to its CPU (`pin_workers`, true by default).
    pub pin_workers: bool,
    /// Upstream groups (routes refer to them by index).
    pub groups: Vec<Group>,
    /// The routes.
    pub(crate) routes: RouteTable,
    /// The global limits and timeouts: routes start from them; requests that fail before a
    /// route is known (a bad head) are answered within them.
    pub limits: Limits,
    /// Largest request head.
    pub max_header_size: usize,
    /// Request head timeout.
    pub client_header_timeout: Duration,
    /// Idle keep-alive timeout.
    pub keepalive_timeout: Duration,
    /// Requests one client connection may carry (at least 1).
    pub keepalive_requests: u64,
    /// How long one client connection serves requests (to the second, over 0).
    pub keepalive_time: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
    /// Memory budget and temp files, process-wide.
    pub buffering: Buffering,
    /// Open connections allowed, process-wide.
    pub connections: ConnLimits,
    /// Proxies whose X-Forwarded-For, X-Request-ID and X-Forwarded-Proto/Ssl are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The header of theirs that names the client.
    pub real_ip_header: RealIpHeader,
    /// That header is walked past every trusted proxy (else its rightmost address is the
    /// client).
    pub real_ip_recursive: bool,
    /// Request headers set on what goes to HTTP groups, for routes without their own (and
    /// a static route's fallback group).
    pub upstream_headers: SetValues,
    /// A request they say came over plain HTTP is redirected to HTTPS with this status.
    pub redirect_forwarded_http: Option<u16>,
    /// Connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Listeners hand a connection over once its first bytes came (TCP_DEFER_ACCEPT).
    pub listen_deferred: bool,
    /// A connection that timed out is reset rather than closed.
    pub reset_timedout_connection: bool,
    /// DOCUMENT_ROOT.
    pub document_root: String,
    /// SERVER_NAME override.
    pub server_name: Option<String>,
    /// The Hosts served (empty: any).
    pub hosts: Vec<HostName>,
    /// Keep headers with `_` in their names.
    pub allow_underscores_in_headers: bool,
    /// The metrics endpoint.
    pub metrics: MetricsListen,
    /// Load the eBPF probes (with the metrics endpoint on).
    pub ebpf: bool,
    /// TLS termination, when `tls.listen` is set.
    pub tls: Option<TlsConfig>,
    /// The error pages (`error_pages`), shared with `main`, which reloads them on SIGHUP.
    pub error_pages: Arc<ErrorPages>,
    /// The top-level `response_headers` marked `always`: on ringway's answers that no
    /// route made (a request it could not read, no route for the path, a refused Host).
    pub response_headers_always: SetValues,
    /// The access log, when on.
    pub access_log: Option<AccessLogConfig>,
    /// The app server ringway starts and watches (`[app]`), when configured.
    pub app: Option<AppConfig>,
}

/// The access log: its format and where it goes.
#[derive(Debug, Clone)]
pub struct AccessLogConfig {
    /// The line format.
    pub format: LogFormat,
    /// The statuses lines are written for.
    pub statuses: LoggedStatuses,
    /// Where the lines go: first the top level's `access_log` ([`LogSink::Off`] when only
    /// routes have one), then each place a route's own `access_log` names, once each, in
    /// the order of the routes. A route knows its place's index ([`MAIN_LOG`] for the
    /// first).
    pub sinks: Vec<LogSink>,
}

/// The index of the top level's access log among [`AccessLogConfig::sinks`].
pub const MAIN_LOG: usize = 0;

/// Where access log lines go.
#[derive(Debug, Clone)]
pub enum LogSink {
    /// Nowhere: the top level's, when only routes log.
    Off,
    /// ringway's stderr.
    Stderr,
    /// A file, opened (appending) when the configuration was checked.
    File {
        /// Its path (opened again on SIGUSR1).
        path: PathBuf,
        /// The file opened at start, until the server takes it.
        opened: OpenedFile,
    },
    /// A syslog server, its name resolved when the configuration was read.
    Syslog {
        target: SyslogTarget,
        addr: SyslogAddr,
    },
}

impl LogSink {
    /// Whether it names the same place as `other` (a file by its path, a syslog server by
    /// its line).
    pub fn same_place(&self, other: &LogSink) -> bool {
        match (self, other) {
            (LogSink::Off, LogSink::Off) | (LogSink::Stderr, LogSink::Stderr) => true,
            (LogSink::File { path: a, .. }, LogSink::File { path: b, .. }) => a == b,
            // By what the file says: a name that resolves to another address at a reload
            // is still the place the process sends to (found by review).
            (LogSink::Syslog { target: a, .. }, LogSink::Syslog { target: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// A file opened while the configuration was checked (so a path that cannot be opened is
/// refused at start), handed over once to whoever writes it: the configuration, which lives
/// as long as the process, must not keep a rotated-away file open.
#[derive(Debug, Clone)]
pub struct OpenedFile(Arc<Mutex<Option<File>>>);

impl OpenedFile {
    /// Holds `file` until it is taken.
    pub fn new(file: File) -> OpenedFile {
        OpenedFile(Arc::new(Mutex::new(Some(file))))
    }

    /// The file, the first time (`None` afterwards).
    pub fn take(&self) -> Option<File> {
        self.0.lock().ok().and_then(|mut f| f.take())
    }
}

/// An upstream group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name (`default` for the `--upstream` flags).
    pub name: String,
    /// Its servers (at most [`MAX_GROUP_SERVERS`]).
    pub servers: Vec<GroupServer>,
    /// What its servers speak (one protocol per group).
    pub protocol: Protocol,
    /// Their uWSGI buffer-size: the largest vars block (for HTTP: the room kept in front of
    /// a buffered body for the request head).
    pub buffer_size: usize,
    /// How connections are kept open between requests (HTTP only).
    pub keepalive: KeepAlive,
    /// Requests at each server at once, and the queue for a free slot (`None`: no limit).
    pub slots: Option<SlotLimits>,
    /// How a server is chosen for each request.
    pub balance: Balance,
}

/// How a group's server is chosen for a request (nginx's balancing methods in an `upstream`
/// block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Weighted round robin, nginx's default.
    #[default]
    RoundRobin,
    /// By the real client's address, so that a client keeps to one server (nginx's
    /// `ip_hash`: an IPv4 address's first three bytes, or a whole IPv6 one).
    IpHash,
    /// To the server with the fewest requests in flight for its weight, round robin among
    /// equals (nginx's `least_conn`; in each worker, as nginx's without a `zone`).
    LeastConn,
}

impl Group {
    /// Its servers that take requests (not marked `down`).
    pub fn taking_servers(&self) -> usize {
        self.servers.iter().filter(|s| !s.options.down).count()
    }
}

/// How an HTTP group keeps connections to its servers open between requests: nginx's
/// `keepalive`, `keepalive_timeout`, `keepalive_requests` and `keepalive_time` in an
/// `upstream` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle connections kept per server and per worker (0: none kept).
    pub idle: usize,
    /// How long an idle kept connection stays open.
    pub timeout: Duration,
    /// Requests one connection carries; after the last one's answer it is closed.
    pub requests: u64,
    /// How long one connection is used; the first answer after it is its last.
    pub time: Duration,
}

/// One server of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupServer {
    /// Its socket.
    pub addr: UpstreamAddr,
    /// The host name and port it was written as (`web:8000`), when it was: the addresses
    /// of one name are alternatives, one of which accepting is enough at start.
    pub name: Option<Arc<str>>,
    /// Its weight, failure accounting, backup or down.
    pub options: ServerOptions,
}

/// The most servers a group holds: a request's tried servers fit one 64-bit word, as
/// nginx's `tried` bitmap for groups of that size.
pub const MAX_GROUP_SERVERS: usize = 64;

/// An upstream group's slots: `max_conns` per server, and the queue in front of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    /// Requests at one server at once, across all workers.
    pub max_conns: usize,
    /// Requests that may wait for a slot (0: none wait).
    pub queue: usize,
    /// Longest wait for a slot.
    pub queue_timeout: Duration,
}

/// Open client connections allowed, the whole process (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnLimits {
    /// All connections together (`max_connections`).
    pub max_connections: Option<usize>,
    /// Connections from one client IP (`limit_conn_per_ip`).
    pub per_ip: Option<usize>,
}

/// The limits and timeouts of one request (per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (`NO_BODY_LIMIT` for `max_body_size = 0`).
    pub max_body_size: u64,
    /// Request body bytes kept in memory before a temp file takes over.
    pub client_body_buffer_size: usize,
    /// Response bytes kept in memory ahead of the client.
    pub response_buffer_size: usize,
    /// Largest response temp file (0: none).
    pub max_temp_file_size: u64,
    /// Upstream connect timeout.
    pub upstream_connect_timeout: Duration,
    /// Upstream read/write timeout.
    pub upstream_read_timeout: Duration,
    /// Request body read timeout.
    pub client_body_timeout: Duration,
    /// Client write timeout.
    pub send_timeout: Duration,
    /// Bytes per second an answer goes out at (0: no limit).
    pub limit_rate: u64,
    /// Bytes of an answer sent before `limit_rate` applies.
    pub limit_rate_after: u64,
    /// What sends a request on to the group's next server.
    pub next_upstream: NextUpstream,
    /// Servers one request may go to in all (0: each of the group's once).
    pub next_upstream_tries: u32,
    /// How long after its first connect a request may still go on (`None`: no limit).
    pub next_upstream_timeout: Option<Duration>,
    /// Whether a request stays at the upstream when its client leaves before the answer.
    pub ignore_client_abort: bool,
}

impl Limits {
    /// `max_body_size` when set to 0: no body is larger.
    pub const NO_BODY_LIMIT: u64 = u64::MAX;
}

/// Where buffered bytes may go, process-wide.
#[derive(Debug, Clone)]
pub struct Buffering {
    /// Memory all buffered bodies and responses may take together.
    pub max_buffer_memory: usize,
    /// Directory of the anonymous temp files.
    pub temp_dir: PathBuf,
}

impl Config {
    /// Reads these flags (and the file they name) into a checked configuration.
    pub fn from_settings(flags: Settings) -> anyhow::Result<Config> {
        flags.resolve()?.validate()
    }

    /// Checks these flags (and the file they name) as a start would, creating nothing: an
    /// access log file that does not exist yet is not made (`--check-config`, which may run
    /// as root, must not leave one the service's user cannot write), nor is the temp
    /// directory; the app's program is looked for, not started.
    pub fn check(flags: Settings) -> anyhow::Result<Config> {
        let mut resolved = flags.resolve()?;
        resolved.checking = true;
        let config = resolved.validate()?;
        crate::buffer::check_dir(&config.buffering.temp_dir).context("temp_dir")?;
        if let Some(program) = config.app.as_ref().and_then(|app| app.command.first()) {
            crate::app::check_program(program).map_err(|e| anyhow!("app.command: {e}"))?;
        }
        Ok(config)
    }

    /// Reads a command line (and the file it names) into a checked configuration.
    pub fn from_args<I, T>(args: I) -> anyhow::Result<Config>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let flags = Settings::try_parse_from(args).map_err(|e| anyhow!(e.to_string()))?;
        Config::from_settings(flags)
    }

    /// Reads a config file's text, as `--config FILE` with no other flag would (`file`
    /// names it in errors), asking no resolver for server names (the fuzzer's, tests').
    pub(crate) fn from_file_text(text: &str, file: &std::path::Path) -> anyhow::Result<Config> {
        let from_file = settings::parse_file(text, file)?;
        let mut resolved = Settings::default().resolve_over(from_file, Some(file.to_owned()))?;
        resolved.lookup = server_addr::Lookup::Offline;
        resolved.validate()
    }

    /// Whether a request for `host` (its Host, or its absolute-form authority) is served:
    /// any is, unless `hosts` lists them.
    pub fn serves_host(&self, host: Option<&[u8]>) -> bool {
        self.hosts.is_empty() || host.is_some_and(|h| self.hosts.iter().any(|n| n.matches(h)))
    }

    /// True if `peer` is a trusted proxy (`trusted_proxy`).
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }

    /// Whether TLS clients are asked for a certificate (`[tls] verify_client`).
    pub fn asks_client_certs(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.client_auth.is_some())
    }

    /// The routes' metric labels, by index: the path, `=path` for an exact route.
    pub fn route_labels(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.label()).collect()
    }

    /// The first error page no answer could carry while `max_buffer_memory` is `budget`:
    /// the key naming it, and why (the top level's pages, then each route's own).
    pub(crate) fn first_misfit_page(&self, budget: usize) -> Option<(String, String)> {
        if let Some((status, why)) = self.error_pages.first_misfit(budget) {
            return Some((format!("error_pages.{status}"), why));
        }
        self.routes
            .iter()
            .filter(|route| !Arc::ptr_eq(&route.error_pages, &self.error_pages))
            .find_map(|route| {
                let (status, why) = route.error_pages.first_misfit(budget)?;
                Some((
                    format!("error_pages.{status} (route {})", route.label()),
                    why,
                ))
            })
    }

    /// Every upstream socket of every group (to find the uWSGI processes behind them).
    pub fn all_servers(&self) -> Vec<UpstreamAddr> {
        let mut all: Vec<UpstreamAddr> = Vec::new();
        for server in self.groups.iter().flat_map(|g| &g.servers) {
            if !all.contains(&server.addr) {
                all.push(server.addr.clone());
            }
        }
        all
    }

    /// What the app must accept on before ringway does (`[app]`): each server as written,
    /// as the addresses any one of which accepting will do (a name's several, or a single
    /// address), once each. A server marked `down` takes no requests and is not waited for
    /// (found by review: ringway never started, as nginx never contacts one), nor a group no
    /// route sends requests to (as `/readyz` does not wait for it).
    pub fn servers_as_written(&self) -> Vec<Vec<UpstreamAddr>> {
        let mut written: Vec<Vec<UpstreamAddr>> = Vec::new();
        let routed = (self.groups.iter().enumerate()).filter(|(at, _)| self.routes.sends_to(*at));
        for (_, group) in routed {
            let mut seen: Vec<(&Option<Arc<str>>, Vec<UpstreamAddr>)> = Vec::new();
            for server in group.servers.iter().filter(|s| !s.options.down) {
                match seen
                    .iter_mut()
                    .find(|(name, _)| server.name.is_some() && *name == &server.name)
                {
                    Some((_, addrs)) => addrs.push(server.addr.clone()),
                    None => seen.push((&server.name, vec![server.addr.clone()])),
                }
            }
            for (_, addrs) in seen {
                if !written.contains(&addrs) {
                    written.push(addrs);
                }
            }
        }
        written
    }
}

#[cfg(test)]
mod tests;
