//! The declaration of every setting: [`Settings`] serves the command line (clap) and the TOML
//! file (serde) alike; [`LimitSettings`] is the part a route may override, declared once and
//! flattened into both the top level and each route.
//!
//! Flags are laid over the file through their serde form (a flag given replaces the file's
//! key), so the structs below are the only list of settings. Because serde cannot refuse
//! unknown keys next to a flattened struct, the file is checked for keys that nothing reads
//! by comparing it with what was read ([`unknown_keys`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::{Args, Parser};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::next_upstream::NextUpstream;
use super::server_addr::{Lookup, ServerAddr};
use super::values::{
    Cidr, ClientRange, Dur, Expires, HostName, KeyExchangeGroup, LogEscape, LogFormat, LogTarget,
    LoggedStatus, MetricsListen, Rate, RealIpHeader, Size, StaticDir, TlsVersion, ToHttps,
    VerifyClient,
};

/// ringway: an HTTP/1.1 front end for uWSGI on io_uring.
///
/// Accepts HTTP/1.1 and 1.0 on one SO_REUSEPORT listener per worker thread and passes each
/// request to uWSGI in the uwsgi protocol, like nginx's `uwsgi_pass`. Every flag can also be
/// given in the `--config` file, under its name in snake_case, except: the TLS flags
/// (`--tls-*`, `--redirect-http`, `--redirect-port`, `--hsts`, `--http2`) are keys of
/// `[tls]`, without the `tls-` prefix (`--tls-cert`/`--tls-key` are the lists `cert` and
/// `key`); `--no-pin-workers`, `--no-real-ip-recursive` and `--no-ebpf` are
/// `pin_workers`, `real_ip_recursive` and `ebpf` set to `false`; `--host` is `hosts`.
/// Upstream groups and routes are file-only.
#[derive(Debug, Default, Parser, Deserialize, Serialize)]
#[command(version, about, long_about = None)]
pub struct Settings {
    /// Address to accept HTTP on [default: 127.0.0.1:8080]. Repeat for several (`0.0.0.0:80`
    /// and `[::]:80`, as nginx's two `listen` lines); in the file, one address or a list.
    /// Port 0 picks a free port. In the file, `listen = []` with `[tls] listen` serves TLS
    /// only (nginx's server with only `listen 443 ssl`).
    #[arg(long, value_name = "ADDR")]
    #[serde(default, deserialize_with = "super::values::optional_addresses")]
    pub listen: Option<Vec<SocketAddr>>,

    /// uWSGI socket: `unix:/path/app.sock`, `IP:PORT` or `NAME:PORT` (resolved at start
    /// and at each reload, every address a server); an HTTP server with `http://` in front
    /// (`http://127.0.0.1:8000`, `http://web:8000`, `http://unix:/run/gunicorn.sock`); then, as on
    /// nginx's `server` line, `weight=N`, `max_fails=N`, `fail_timeout=DURATION`, `backup`
    /// or `down` (`"unix:/b.sock backup"`). Repeat for several (nginx's weighted round robin;
    /// on a connect error the next one is tried). They form the group `default`, served on
    /// route `/` unless a route says otherwise.
    #[arg(long, value_name = "SPEC")]
    #[serde(default)]
    pub upstream: Vec<ServerAddr>,

    /// Worker threads, one io_uring loop each, pinned to a CPU [default: number of CPUs].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Leave one-per-CPU workers to the scheduler instead of pinning each to its CPU (as
    /// nginx's workers without `worker_cpu_affinity`). Set at start; a reload keeps it.
    #[arg(long = "no-pin-workers", num_args = 0, default_missing_value = "false")]
    pub pin_workers: Option<bool>,

    /// uWSGI's `buffer-size`: the largest vars block the upstream accepts. Larger requests get
    /// 431 here instead of being dropped by uWSGI. Groups may set their own [default: 4096].
    #[arg(long, value_name = "BYTES")]
    pub upstream_buffer_size: Option<Size>,

    /// Largest request head: request line plus headers (431 beyond); the request line may
    /// take a quarter of it, at least 8 KiB (414 beyond) [default: 32k, nginx's default
    /// `large_client_header_buffers 4 8k`].
    #[arg(long, value_name = "SIZE")]
    pub max_header_size: Option<Size>,

    /// Memory all buffered bodies and responses may take together; past it they go to temp
    /// files from their first byte [default: 64m].
    #[arg(long, value_name = "SIZE")]
    pub max_buffer_memory: Option<Size>,

    /// Directory for the temp files (anonymous: nothing is left there, even after a crash)
    /// [default: /var/tmp/ringway-UID, created 0700].
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,

    /// Time allowed for a client to send a whole request head (then 408) [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub client_header_timeout: Option<Dur>,

    /// How long an idle keep-alive connection stays open [default: 75s].
    #[arg(long, value_name = "DURATION")]
    pub keepalive_timeout: Option<Dur>,

    /// Requests one client connection may carry; the last one's answer says `Connection:
    /// close` (nginx's `keepalive_requests`) [default: 1000].
    #[arg(long, value_name = "N")]
    pub keepalive_requests: Option<u64>,

    /// How long one client connection serves requests; the first answer after it says
    /// `Connection: close` (nginx's `keepalive_time`; an HTTP/2 connection gets its GOAWAY
    /// with the first stream after it) [default: 1h].
    #[arg(long, value_name = "DURATION")]
    pub keepalive_time: Option<Dur>,

    /// On SIGTERM, SIGINT or SIGQUIT, how long in-flight requests may take to finish
    /// [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<Dur>,

    /// A proxy (IP or CIDR) in front of ringway, whose word is believed: its X-Forwarded-For
    /// (or --real-ip-header) gives the client's address (REMOTE_ADDR: the rightmost entry
    /// not a trusted proxy), and its X-Request-ID, X-Forwarded-Proto, X-Forwarded-Ssl,
    /// -Protocol, -Scheme, -Port, -Prefix, X-Scheme, Front-End-Https, X-Script-Name,
    /// Forwarded, the --real-ip-header and X-Forwarded-Host (a host `hosts` allows) are
    /// kept. Repeatable. From anyone else X-Forwarded-For changes nothing and the others
    /// never reach the app.
    #[arg(long, value_name = "IP[/BITS]")]
    #[serde(default)]
    pub trusted_proxy: Vec<Cidr>,

    /// The header a trusted proxy names the client in (nginx's `real_ip_header`):
    /// `X-Real-IP`, `CF-Connecting-IP`, `True-Client-IP`... [default: X-Forwarded-For]. The
    /// first such header is read as X-Forwarded-For is, from the right.
    #[arg(long, value_name = "NAME")]
    pub real_ip_header: Option<RealIpHeader>,

    /// Walk X-Forwarded-For from the right past every trusted proxy to the first address
    /// that is not one (nginx's `real_ip_recursive on`); `--no-real-ip-recursive` (`false`
    /// in the file) takes its rightmost address, the one the trusted proxy added, as nginx
    /// does without `real_ip_recursive` (its default) [default: true].
    #[arg(
        long = "no-real-ip-recursive",
        num_args = 0,
        default_missing_value = "false"
    )]
    pub real_ip_recursive: Option<bool>,

    /// Behind a TLS-terminating balancer: a request a trusted proxy says came over plain
    /// HTTP (`X-Forwarded-Proto: http`) gets a 301 to the same URL over HTTPS, as nginx's
    /// `if ($http_x_forwarded_proto = "http") { return 301 https://$host$request_uri; }`;
    /// a status instead of `true` (`308`) is that redirect's.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "STATUS")]
    pub redirect_forwarded_http: Option<ToHttps>,

    /// Every connection (on `listen`, and on the TLS listener before its handshake) starts
    /// with a PROXY protocol header, v1 or v2, as a load balancer sends it (HAProxy
    /// `send-proxy`); its source address is the client's (with --trusted-proxy, only from a
    /// peer it lists). A connection without a valid header within --client-header-timeout is
    /// closed.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub proxy_protocol: Option<bool>,

    /// Hand a connection over only once its first bytes arrived (TCP_DEFER_ACCEPT, as
    /// nginx's `listen 80 deferred`), on every listener: one that sends nothing costs no
    /// wake-up and no task, and is handed over with nothing after a second (then
    /// --client-header-timeout runs as for any). Set at start; a reload keeps it.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub listen_deferred: Option<bool>,

    /// Close a connection that timed out reading a request (--client-header-timeout once a
    /// head began, client_body_timeout) or sending an answer (send_timeout) with a reset, as
    /// nginx's `reset_timedout_connection on`: the kernel frees at once what it still held
    /// for a client that stopped reading, instead of keeping the socket to send it. One that
    /// never sent a byte, or idled past keepalive_timeout, is closed as before.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub reset_timedout_connection: Option<bool>,

    /// DOCUMENT_ROOT passed to the app [default: empty].
    #[arg(long, value_name = "PATH")]
    pub document_root: Option<String>,

    /// SERVER_NAME passed to the app [default: the request's Host, without port].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,

    /// A Host this server answers for, as nginx's `server_name` lists them:
    /// `app.example.com`, `*.example.com`, `.example.com` or an IP address. Repeatable. When
    /// set, a request for any other Host (or with none) gets 421 and never reaches the app;
    /// unset, every Host does.
    #[arg(long = "host", value_name = "NAME")]
    #[serde(default)]
    pub hosts: Vec<HostName>,

    /// Forward headers whose names contain `_` (dropped by default: `X_Foo` and `X-Foo` both
    /// become HTTP_X_FOO, which lets a client spoof a header set by a proxy in front).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub allow_underscores_in_headers: Option<bool>,

    /// Address of the metrics endpoint (`/metrics` Prometheus, `/stats` JSON, `/` live page),
    /// or `off` [default: 127.0.0.1:9145; if that port is taken, ringway runs without it].
    #[arg(long, value_name = "ADDR|off")]
    pub metrics: Option<MetricsListen>,

    /// Access log: a file (appended to, created 0640; SIGUSR1 reopens it, for logrotate),
    /// `stderr`, or `off` [default: off].
    #[arg(long, value_name = "PATH|stderr|off")]
    pub access_log: Option<LogTarget>,

    /// Access log line format: `combined` (nginx's, byte for byte), `json` (one object per
    /// line), or a format of one's own with nginx's variables, as its `log_format` writes
    /// one: `'$remote_addr [$time_local] "$request" $status $request_time'`
    /// [default: combined].
    #[arg(long, value_name = "combined|json|FORMAT")]
    pub access_log_format: Option<LogFormat>,

    /// How a format of one's own escapes its values, as nginx's `log_format ... escape=`:
    /// `default` (`\xHH`; `-` for a missing value), `json` (for a JSON template; a missing
    /// value is empty) or `none` [default: default].
    #[arg(long, value_name = "default|json|none")]
    pub access_log_escape: Option<LogEscape>,

    /// The statuses the access log writes lines for, as nginx's `access_log ...
    /// if=$loggable` with a `map $status $loggable`: classes (`4xx`) and statuses (`499`,
    /// nginx's for a client that left first), comma-separated; in the file a list
    /// [default: all].
    #[arg(long, value_name = "STATUSES", value_delimiter = ',')]
    pub access_log_statuses: Option<Vec<LoggedStatus>>,

    /// Serve files from DIR on route PATH (nginx `location PATH { alias DIR; }`), e.g.
    /// `/static/=/srv/app/static`. Repeatable. In the file, `[[routes]]` with `static` say
    /// more (expires, index, precompressed siblings, fallback).
    #[arg(long = "static", value_name = "PATH=DIR")]
    #[serde(default, rename = "static")]
    pub static_dirs: Vec<StaticDir>,

    /// Do not load the eBPF probes (the metrics then show ringway's own figures and /proc).
    /// In the file: `ebpf = false`.
    #[arg(long = "no-ebpf", num_args = 0, default_missing_value = "false")]
    pub ebpf: Option<bool>,

    /// Most client connections open at once, the whole process. A connection past it gets 503
    /// on its first request and is closed (nginx's `worker_connections`, but answered)
    /// [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Most connections open at once from one client IP, the whole process. A connection past
    /// it gets 503 on its first request and is closed (nginx's `limit_conn`) [default: no
    /// limit].
    #[arg(long, value_name = "N")]
    pub limit_conn_per_ip: Option<usize>,

    /// Requests per client IP to the whole server, `{ rate = "10r/s", burst = 20 }`: every
    /// route without a `limit_req` of its own counts in this one table (nginx's `limit_req`
    /// in `server`, which its locations inherit). File only.
    #[arg(skip)]
    pub limit_req: Option<LimitReqSettings>,

    /// The limits and timeouts of a request (a route may override each).
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitSettings,

    /// TLS termination (`[tls]` in the file).
    #[command(flatten)]
    #[serde(default)]
    pub tls: TlsSettings,

    /// Pages for ringway's own error answers, by status (file only: `error_pages = { 502 =
    /// "/srv/errors/502.html" }`, any status from 400 to 599): the file's bytes replace the
    /// short text body (nginx `error_page`). Read at start and again on SIGHUP.
    #[arg(skip)]
    #[serde(default)]
    pub error_pages: BTreeMap<String, PathBuf>,

    /// Headers added to the successful and redirect answers of every route that sets none
    /// of its own (nginx's `add_header` in a `server` block, which a `location`'s own
    /// `add_header` replaces); `{ value = "...", always = true }` adds one to every answer,
    /// errors too (`add_header ... always`). File only.
    #[arg(skip)]
    #[serde(default)]
    pub response_headers: BTreeMap<String, HeaderSetting>,

    /// Headers of the app's answers that never reach the client (nginx's
    /// `uwsgi_hide_header` / `proxy_hide_header` in a `server` block), for every route that
    /// sets none of its own: `["X-Powered-By"]`. File only.
    #[arg(skip)]
    #[serde(default)]
    pub hide_headers: Vec<String>,

    /// The charset added to the app's answers whose Content-Type is one of
    /// `charset_types` and names none (nginx's `charset utf-8;`), on every route that sets
    /// none of its own: `"utf-8"`. Files are labelled `utf-8` by their own rule. File only.
    #[arg(skip)]
    pub charset: Option<String>,

    /// The types `charset` labels (nginx's `charset_types`; `text/html` always among
    /// them, `["*"]` for all) [default: nginx's: `text/html`, `text/xml`, `text/plain`,
    /// `text/vnd.wap.wml`, `application/javascript`, `application/rss+xml`]. File only.
    #[arg(skip)]
    pub charset_types: Option<Vec<String>>,

    /// Flags the app's `Set-Cookie` headers get (nginx's `proxy_cookie_flags`), on every
    /// route that sets none of its own: rules of nginx's arguments, the first naming a
    /// cookie applies, `["~ secure httponly samesite=lax"]`. File only.
    #[arg(skip)]
    #[serde(default)]
    pub cookie_flags: Vec<String>,

    /// What the `Domain` of the app's `Set-Cookie` headers becomes (nginx's
    /// `proxy_cookie_domain`), on every route that sets none of its own: rules of nginx's
    /// arguments, `PATTERN REPLACEMENT`, the first matching a domain applies,
    /// `["localhost example.org"]`, `["~^(.+)\\.internal$ $host"]`. File only.
    #[arg(skip)]
    #[serde(default)]
    pub cookie_domain: Vec<String>,

    /// What the `Path` of the app's `Set-Cookie` headers becomes (nginx's
    /// `proxy_cookie_path`), on every route that sets none of its own: rules of nginx's
    /// arguments, `PATTERN REPLACEMENT`, the first matching a path's start applies,
    /// `["/ /app/"]`. File only.
    #[arg(skip)]
    #[serde(default)]
    pub cookie_path: Vec<String>,

    /// What the app's `Location` headers (and a `Refresh`'s URL) become (nginx's
    /// `proxy_redirect`), on every route that sets none of its own: rules of nginx's
    /// arguments, `PATTERN REPLACEMENT`, the first matching a location's start applies,
    /// `["/ /app/"]`. File only.
    #[arg(skip)]
    #[serde(default)]
    pub location_rewrite: Vec<String>,

    /// Request headers set on what goes to HTTP groups (nginx's `proxy_set_header` with a
    /// fixed value in a `server` block), for every route that sets none of its own:
    /// `{ "X-Script-Name" = "/app" }`; the client's copies and ringway's own are replaced,
    /// an empty value removes the header. File only.
    #[arg(skip)]
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, String>,

    /// HTTP Basic authentication for every route that sets none of its own (nginx's
    /// `auth_basic` and `auth_basic_user_file` in a `server` block): `{ realm = "...",
    /// user_file = "/etc/ringway/htpasswd" }`. File only.
    #[arg(skip)]
    pub auth_basic: Option<AuthBasicSetting>,

    /// Each request asked first of another route, for every route that sets none of its
    /// own (nginx's `auth_request` in a `server` block): `"/oauth2/auth"`, or `{ path =
    /// "...", redirect_401 = "URL" }`. File only.
    #[arg(skip)]
    pub auth_request: Option<AuthRequestSetting>,

    /// Compressing the app's answers and static files as they go out (nginx's `gzip on`
    /// and its `gzip_*` settings; file only: `[gzip]`). Every route to an app or to files
    /// uses it unless it says `gzip = false`.
    #[arg(skip)]
    #[serde(default)]
    pub gzip: Option<GzipSettings>,

    /// Upstream groups, by name (file only: `[upstreams.NAME]`).
    #[arg(skip)]
    #[serde(default)]
    pub upstreams: BTreeMap<String, GroupSettings>,

    /// Routes (file only: `[[routes]]`).
    #[arg(skip)]
    #[serde(default)]
    pub routes: Vec<RouteSettings>,

    /// The app server ringway starts before it accepts, restarts when it dies and stops
    /// after its own drain (file only: `[app]`; supervisord's job).
    #[arg(skip)]
    #[serde(default)]
    pub app: Option<AppSettings>,

    /// TOML file with the same settings (snake_case keys; the TLS ones in `[tls]`); flags
    /// win over it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Check the configuration and exit, binding and starting nothing: the file, the flags,
    /// and the files they name (certificates and keys, error pages, static roots, the
    /// access log). Exits 0 if ringway would start with it, 1 with the error if not
    /// (nginx -t).
    #[arg(long)]
    #[serde(skip)]
    pub check_config: bool,
}

/// The limits and timeouts of one request: global defaults, and per route.
#[derive(Debug, Default, Clone, Args, Deserialize, Serialize)]
pub struct LimitSettings {
    /// Largest request body accepted (413 beyond); 0 is no limit [default: 1m].
    #[arg(long, value_name = "SIZE")]
    pub max_body_size: Option<Size>,

    /// Request body bytes kept in memory; a larger body goes to a temp file [default: 64k].
    #[arg(long, value_name = "SIZE")]
    pub client_body_buffer_size: Option<Size>,

    /// Response bytes kept in memory ahead of a slow client; beyond, they go to a temp file
    /// [default: 64k].
    #[arg(long, value_name = "SIZE")]
    pub response_buffer_size: Option<Size>,

    /// Largest temp file one response may fill ahead of a slow client; past it the upstream
    /// is read at the client's pace. 0 turns response temp files off [default: 1g].
    #[arg(long, value_name = "SIZE")]
    pub max_temp_file_size: Option<Size>,

    /// Time allowed to connect to an upstream (then 504) [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub upstream_connect_timeout: Option<Dur>,

    /// Time allowed between two reads from, or writes to, the upstream (then 504)
    /// [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub upstream_read_timeout: Option<Dur>,

    /// Time allowed between two reads of a request body (then 408) [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub client_body_timeout: Option<Dur>,

    /// Time allowed between two writes to a client before it is dropped [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub send_timeout: Option<Dur>,

    /// Bytes per second one answer goes to its client at, past `limit_rate_after` (nginx's
    /// `limit_rate`); an app's `X-Accel-Limit-Rate` sets its own answer's. 0 is no limit
    /// [default: 0].
    #[arg(long, value_name = "SIZE")]
    pub limit_rate: Option<Size>,

    /// Bytes of an answer sent before `limit_rate` holds it back (nginx's
    /// `limit_rate_after`) [default: 0].
    #[arg(long, value_name = "SIZE")]
    pub limit_rate_after: Option<Size>,

    /// When a request goes on to the group's next server, each tried once (nginx's
    /// `proxy_next_upstream` / `uwsgi_next_upstream`): `error`, `timeout`, `invalid_header`,
    /// `http_500`, `http_502`, `http_503`, `http_504`, `http_403`, `http_404`, `http_429`,
    /// `non_idempotent`, or `off`. In the file, a list [default: error timeout].
    #[arg(long, value_name = "CASES")]
    pub next_upstream: Option<NextUpstream>,

    /// How many servers one request may go to in all, `next_upstream` passing it on
    /// (nginx's `proxy_next_upstream_tries`); 0: each of the group's once [default: 0].
    #[arg(long, value_name = "N")]
    pub next_upstream_tries: Option<u32>,

    /// How long after its first connect a request may still go on to another server
    /// (nginx's `proxy_next_upstream_timeout`); 0: no limit [default: 0].
    #[arg(long, value_name = "DURATION")]
    pub next_upstream_timeout: Option<Dur>,

    /// Keep a request going at the upstream when its client closes the connection before
    /// the answer (nginx's `proxy_ignore_client_abort on` / `uwsgi_ignore_client_abort
    /// on`): the app finishes and answers, and ringway then finds the client gone. By
    /// default the request to the app is ended with the client's.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub ignore_client_abort: Option<bool>,
}

/// TLS termination: `[tls]`.
#[derive(Debug, Default, Clone, Args, Deserialize, Serialize)]
pub struct TlsSettings {
    /// Address to accept HTTPS on, e.g. 0.0.0.0:443 (TLS 1.2 and 1.3); repeat for several.
    /// In the file: `[tls]` `listen`, one address or a list.
    #[arg(id = "tls_listen", long = "tls-listen", value_name = "ADDR")]
    #[serde(default, deserialize_with = "super::values::addresses")]
    pub listen: Vec<SocketAddr>,

    /// Certificates: `certificates = [{ cert = "a.pem", key = "a.key" }, ...]` (file only;
    /// the flags below say the same). The first is the default; SNI picks among them.
    #[arg(skip)]
    #[serde(default)]
    pub certificates: Vec<CertPair>,

    /// A PEM certificate chain (the certificate, then its intermediates). Repeat with
    /// --tls-key for several names.
    #[arg(long = "tls-cert", value_name = "PEM")]
    #[serde(default)]
    pub cert: Vec<PathBuf>,

    /// The PEM private key of the --tls-cert given at the same position (PKCS#8, SEC1 or
    /// PKCS#1; ECDSA or RSA).
    #[arg(long = "tls-key", value_name = "PEM")]
    #[serde(default)]
    pub key: Vec<PathBuf>,

    /// Answer every plain HTTP request with a 301 to https://HOST[:TLS port]/path?query; a
    /// status instead of `true` (`308`, as Mozilla's generator writes it) is the redirect's.
    #[arg(
        long = "redirect-http",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "STATUS"
    )]
    pub redirect_http: Option<ToHttps>,

    /// The port `redirect_http` sends clients to: for TLS reached through a port mapping (a
    /// container's 8443 published as 443, where nginx's `return 301 https://$host...` names
    /// no port); 443 is named as none [default: the first TLS listener's port].
    #[arg(long = "redirect-port", value_name = "PORT")]
    pub redirect_port: Option<u16>,

    /// Strict-Transport-Security value added to every TLS answer, e.g.
    /// "max-age=63072000; includeSubDomains" [default: none].
    #[arg(long = "hsts", value_name = "VALUE")]
    pub hsts: Option<String>,

    /// Time a client has to complete its TLS handshake [default: 10s].
    #[arg(long = "tls-handshake-timeout", value_name = "DURATION")]
    pub handshake_timeout: Option<Dur>,

    /// Offer HTTP/2 to TLS clients (ALPN `h2`, as nginx's `listen 443 ssl http2`); clients
    /// that do not speak it keep HTTP/1.1 [default: false].
    #[arg(long = "http2", num_args = 0, default_missing_value = "true")]
    pub http2: Option<bool>,

    /// TLS versions accepted (nginx's `ssl_protocols`): TLSv1.2, TLSv1.3, comma-separated;
    /// in the file, a list [default: TLSv1.2,TLSv1.3].
    #[arg(long = "tls-protocols", value_name = "VERSIONS", value_delimiter = ',')]
    pub protocols: Option<Vec<TlsVersion>>,

    /// Key exchange groups accepted (nginx's `ssl_ecdh_curve`), OpenSSL's names:
    /// X25519MLKEM768, SecP256r1MLKEM768, X25519, prime256v1, secp384r1; comma-separated, in
    /// the file a list; the client's order picks among them [default:
    /// X25519MLKEM768,X25519,prime256v1,secp384r1].
    #[arg(
        long = "tls-key-exchange-groups",
        value_name = "GROUPS",
        value_delimiter = ','
    )]
    pub key_exchange_groups: Option<Vec<KeyExchangeGroup>>,

    /// Plaintext bytes per TLS record sent (nginx's `ssl_buffer_size`), 512 to 16k: `4k`
    /// lets a browser decrypt the first bytes of a page sooner, for a little more CPU and
    /// a few more bytes per answer [default: 16k].
    #[arg(long = "tls-record-size", value_name = "SIZE")]
    pub record_size: Option<Size>,

    /// Fail the TLS handshake of a client that sends no server name (SNI), or one no
    /// certificate has, instead of serving it the first certificate (nginx's
    /// `ssl_reject_handshake on` in the default server): a scanner that knows only the
    /// address learns no name [default: false].
    #[arg(
        long = "tls-reject-unknown-names",
        num_args = 0,
        default_missing_value = "true"
    )]
    pub reject_unknown_names: Option<bool>,

    /// Resume TLS sessions from stateless tickets as well as from the session cache
    /// (nginx's `ssl_session_tickets`) [default: true].
    #[arg(long = "tls-session-tickets", value_name = "BOOL")]
    pub session_tickets: Option<bool>,

    /// Ask TLS clients for a certificate (nginx's `ssl_verify_client`): `on` (required),
    /// `optional` or `off`; verified against --tls-client-certificate [default: off].
    #[arg(long = "tls-verify-client", value_name = "MODE")]
    pub verify_client: Option<VerifyClient>,

    /// PEM file of the CA certificates client certificates must chain to (nginx's
    /// `ssl_client_certificate`).
    #[arg(long = "tls-client-certificate", value_name = "PEM")]
    pub client_certificate: Option<PathBuf>,

    /// PEM file of certificate revocation lists for client certificates (nginx's
    /// `ssl_crl`).
    #[arg(long = "tls-client-crl", value_name = "PEM")]
    pub client_crl: Option<PathBuf>,

    /// Pass the client's certificate itself to the app (SSL_CLIENT_CERT, or
    /// X-SSL-Client-Cert to an HTTP upstream), as nginx users pass `$ssl_client_raw_cert`;
    /// its subject, issuer, serial and fingerprint always go [default: false].
    #[arg(long = "tls-pass-client-certificate", value_name = "BOOL")]
    pub pass_client_certificate: Option<bool>,
}

/// A certificate and its key: `{ cert = "...", key = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

/// An upstream group: `[upstreams.NAME]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct GroupSettings {
    /// Its servers, tried round robin: uWSGI sockets (`unix:/path`, `IP:PORT`, `NAME:PORT`)
    /// or HTTP servers (`http://IP:PORT`, `http://NAME:PORT`, `http://unix:/path`), not both.
    #[serde(default)]
    pub servers: Vec<ServerAddr>,
    /// Their uWSGI `buffer-size` [default: `upstream_buffer_size`].
    pub buffer_size: Option<Size>,
    /// Requests at each server at once, across all workers (nginx's `server ... max_conns`)
    /// [default: no limit].
    pub max_conns: Option<usize>,
    /// Requests that may wait for a free slot when every server is at `max_conns`; past it,
    /// 503 at once (nginx Plus's `queue`) [default: 0, none wait].
    pub queue: Option<usize>,
    /// Longest wait in the queue; then 503 [default: 60s, as nginx Plus].
    pub queue_timeout: Option<Dur>,
    /// HTTP servers only: idle connections kept open per server and per worker, for the
    /// next requests (nginx's `keepalive`; beyond it, a burst's surplus until unused for a
    /// second); 0 closes each after its answer [default: 32].
    pub keepalive: Option<usize>,
    /// HTTP servers only: an idle kept connection is closed after this (nginx's
    /// `keepalive_timeout` in an `upstream` block) [default: 60s].
    pub keepalive_timeout: Option<Dur>,
    /// HTTP servers only: requests one connection carries; after the last one's answer it
    /// is closed (nginx's `keepalive_requests` in an `upstream` block) [default: 1000].
    pub keepalive_requests: Option<u64>,
    /// HTTP servers only: how long one connection is used; it is closed after the first
    /// answer past this (nginx's `keepalive_time`) [default: 1h].
    pub keepalive_time: Option<Dur>,
    /// How a server is chosen for each request: `round_robin` (by weight), `least_conn`
    /// (the fewest requests in flight for its weight: nginx's `least_conn`, for apps whose
    /// requests take very different times), or `ip_hash` (by the client's address, so that
    /// a client keeps to one server: nginx's `ip_hash`, for an app holding sessions in its
    /// processes, as Socket.IO's long-polling does) [default: round_robin].
    pub balance: Option<String>,
}

/// The app server under ringway's watch: `[app]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AppSettings {
    /// The program and its arguments, run without a shell, e.g. `["uwsgi", "--ini",
    /// "/srv/app/uwsgi.ini"]`.
    #[serde(default)]
    pub command: Vec<String>,
    /// The signal that tells the app to shut down [default: SIGINT, uWSGI's; its SIGTERM
    /// means reload].
    pub stop_signal: Option<String>,
    /// When to start it again after it exits: `on-failure` (a non-zero exit or a signal),
    /// `always`, or `never` [default: on-failure].
    pub restart: Option<String>,
    /// How long the app may take until every upstream accepts connections; then ringway
    /// stops it and exits [default: 60s].
    pub ready_timeout: Option<Dur>,
    /// How long the app may take to exit after `stop_signal` before its whole process group
    /// is killed [default: 10s].
    pub stop_timeout: Option<Dur>,
}

/// A route: `[[routes]]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct RouteSettings {
    /// The Hosts it serves, as an nginx `server` block's `server_name` lists them: a request
    /// whose Host some route names is served by the routes naming it, and by those only;
    /// any other Host by the routes without `hosts` [default: none].
    #[serde(default)]
    pub hosts: Vec<HostName>,
    /// The path it serves: a prefix, or with `exact` only this path.
    pub path: Option<String>,
    /// Only `path` itself (nginx `location =`).
    #[serde(default)]
    pub exact: bool,
    /// Instead of `path`: the paths this pattern matches (nginx `location ~`; `(?i)` in
    /// front for `~*`), tried in the file's order after exact routes and before the longest
    /// prefix route's turn. A file it serves is looked up by the whole path under `static`
    /// (nginx's `root`).
    pub regex: Option<String>,
    /// On a prefix route: when it is a path's longest match, no regex route is tried
    /// (nginx `location ^~`).
    #[serde(default)]
    pub no_regex: bool,
    /// The upstream group it passes requests to.
    pub upstream: Option<String>,
    /// Mount point: SCRIPT_NAME, and the part of the path removed from PATH_INFO.
    pub script_name: Option<String>,
    /// For an HTTP group: what the route's path becomes in the request sent, the rest of
    /// the path after it (nginx's `proxy_pass http://app/;`, the URI after the address):
    /// with `path = "/api/"` and `upstream_path = "/"`, `/api/users` reaches the app as
    /// `/users`.
    pub upstream_path: Option<String>,
    /// Extra uwsgi vars (nginx `uwsgi_param`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Clients allowed (nginx `allow`; everyone else gets 403, as after nginx's `deny
    /// all;`): ranges, or `all`. An empty list is refused: it would read as no restriction.
    #[serde(default)]
    pub allow: Option<Vec<ClientRange>>,
    /// Clients refused with 403 (nginx `deny`; a block list: everyone else gets in unless
    /// `allow` says otherwise): ranges, or `all`. With both, the narrowest entry holding the
    /// client decides, as nginx's first match when the exception comes first.
    #[serde(default)]
    pub deny: Option<Vec<ClientRange>>,
    /// `"any"`: a client in `allow` or one with the `auth_basic` password gets in (nginx
    /// `satisfy any`) [default: "all", both must pass].
    #[serde(default)]
    pub satisfy: Satisfy,
    /// The methods anyone may use; any other only a client in its `allow` (nginx's
    /// `limit_except GET POST { allow ...; deny all; }`): `{ methods = ["GET", "POST"] }`.
    pub limit_except: Option<LimitExceptSettings>,
    /// Answer with a redirect instead (nginx `return 301 URL`).
    pub redirect: Option<RedirectSettings>,
    /// Answer with this status and body instead (nginx `return 200 "ok"`, `return 204`).
    pub respond: Option<RespondSettings>,
    /// Answer with ringway's connection and request counts in nginx's `stub_status` page
    /// format instead, for monitoring agents that read nginx's.
    #[serde(default)]
    pub stub_status: bool,
    /// Headers added to successful and redirect answers (nginx `add_header`); `{ value =
    /// "...", always = true }` to every answer (`add_header ... always`). A route's own
    /// table replaces the top-level one, `{}` adds none [default: the top-level
    /// `response_headers`].
    pub response_headers: Option<BTreeMap<String, HeaderSetting>>,
    /// Headers of the app's answers that never reach the client (nginx's
    /// `uwsgi_hide_header` / `proxy_hide_header`); a route's own list replaces the top-level
    /// one, `[]` hides none [default: the top-level `hide_headers`].
    pub hide_headers: Option<Vec<String>>,
    /// The charset added to the app's answers of `charset_types` that name none (nginx's
    /// `charset`), `"off"` for none [default: the top-level `charset`].
    pub charset: Option<String>,
    /// The types `charset` labels [default: the top-level `charset_types`].
    pub charset_types: Option<Vec<String>>,
    /// Flags the app's `Set-Cookie` headers get (nginx's `proxy_cookie_flags`), in place
    /// of the top level's; `[]` for none [default: the top-level `cookie_flags`].
    pub cookie_flags: Option<Vec<String>>,
    /// What the `Domain` of the app's `Set-Cookie` headers becomes (nginx's
    /// `proxy_cookie_domain`), in place of the top level's; `[]` for none [default: the
    /// top-level `cookie_domain`].
    pub cookie_domain: Option<Vec<String>>,
    /// What the `Path` of the app's `Set-Cookie` headers becomes (nginx's
    /// `proxy_cookie_path`), in place of the top level's; `[]` for none [default: the
    /// top-level `cookie_path`].
    pub cookie_path: Option<Vec<String>>,
    /// What the app's `Location` headers (and a `Refresh`'s URL) become (nginx's
    /// `proxy_redirect`), in place of the top level's; `[]` for none [default: the
    /// top-level `location_rewrite`].
    pub location_rewrite: Option<Vec<String>>,
    /// Request headers set on what goes to an HTTP group (nginx's `proxy_set_header NAME
    /// VALUE`); a route's own table replaces the top-level one, `{}` sets none [default:
    /// the top-level `upstream_headers`].
    pub upstream_headers: Option<BTreeMap<String, String>>,
    /// HTTP Basic authentication (nginx `auth_basic` + `auth_basic_user_file`):
    /// `{ realm = "...", user_file = "..." }`, or `"off"` on a route under a top-level one
    /// [default: the top-level `auth_basic`].
    pub auth_basic: Option<AuthBasicSetting>,
    /// Each request is first asked of the route serving this path, as a GET without a
    /// body (nginx's `auth_request`): a 2xx answer lets it in, 401 and 403 are the
    /// client's answer, anything else is 500. `{ path = "...", redirect_401 = "URL" }`
    /// answers a 302 to URL in place of the 401 (nginx's `error_page 401 =302 URL`);
    /// `"off"` on a route under a top-level one [default: the top-level `auth_request`].
    pub auth_request: Option<AuthRequestSetting>,
    /// Serve files from this directory instead (nginx `alias`).
    #[serde(rename = "static")]
    pub static_dir: Option<PathBuf>,
    /// Cache-Control and Expires on files (nginx `expires`): `30d`, `-1`, `epoch`, `max`,
    /// `off`.
    pub expires: Option<Expires>,
    /// Add `immutable` to Cache-Control (hashed asset names).
    #[serde(default)]
    pub immutable: bool,
    /// `false`: files go without an ETag (nginx's `etag off`), and conditionals on one
    /// (`If-Match`, `If-None-Match`, `If-Range`) find none to match [default: true].
    pub etag: Option<bool>,
    /// Files served for a directory path ending in `/`, the first that is there (nginx's
    /// `index`; no listings, ever): a name or a list of names.
    pub index: Option<IndexNames>,
    /// Precompressed siblings to serve when accepted: `br`, `gzip` (nginx `gzip_static`).
    #[serde(default)]
    pub precompressed: Vec<String>,
    /// Where a path with no file goes: an upstream group (nginx `try_files $uri @app`), or
    /// a path, routed again (`try_files $uri $uri/ /index.html`, a single-page app).
    pub fallback: Option<String>,
    /// Reachable only through X-Accel-Redirect (nginx `internal`).
    #[serde(default)]
    pub internal: bool,
    /// Serve dotfiles and dot-directories (refused by default).
    #[serde(default)]
    pub dotfiles: bool,
    /// The route's own media types, extension to type (`{ pdf = "application/pdf" }`), in
    /// place of the built-in table (nginx's `types` in a location); `{}` knows none, so
    /// that every file is `default_type` (nginx's `types {} default_type text/plain;`, the
    /// guard on users' uploads) [default: the built-in table, nginx's `mime.types`].
    pub types: Option<BTreeMap<String, String>>,
    /// The type of a file whose extension the table does not know (nginx's
    /// `default_type`) [default: application/octet-stream].
    pub default_type: Option<String>,
    /// Requests per client IP: `{ rate = "5r/s", burst = 10 }` (nginx's `limit_req`, with
    /// `nodelay`); past the burst, 429.
    pub limit_req: Option<LimitReqSettings>,
    /// Requests at once per client IP: `{ per_ip = 1 }` (nginx's `limit_conn` in a
    /// `location`); past it, 503.
    pub limit_conn: Option<LimitConnSettings>,
    /// Which pages may refer to the route's files (nginx's `valid_referers` with `if
    /// ($invalid_referer) { return 403; }`): `{ valid = ["none", "blocked", "server_names",
    /// "*.example.com"] }`; any other Referer gets 403 (`status`).
    pub referers: Option<ReferersSettings>,
    /// Answers from the app whose status has an `error_pages` entry carry that page instead
    /// of the app's body (nginx `uwsgi_intercept_errors on`).
    #[serde(default)]
    pub intercept_errors: bool,
    /// This route's own pages, in place of the top level's (nginx's `error_page` in a
    /// `location`, which replaces the server's): `{ 502 = "/srv/api/502.json" }`; `{}` for
    /// none [default: the top-level `error_pages`].
    pub error_pages: Option<BTreeMap<String, PathBuf>>,
    /// `false`: the app's answers and files on this route are sent as they are, `true`:
    /// compressed even without a `[gzip]` section (with its defaults) [default: as
    /// `[gzip]` says].
    pub gzip: Option<bool>,
    /// `false`: the app's answers on this route are relayed at the client's pace, not
    /// buffered (nginx's `uwsgi_buffering off` / `proxy_buffering off`; the app's
    /// `X-Accel-Buffering` still decides per answer) [default: true].
    pub buffering: Option<bool>,
    /// Where this route's requests are logged, in place of the top-level `access_log`
    /// (nginx's `access_log` in a `location`): a file (SIGUSR1 reopens it with the
    /// rest), `stderr`, or `off` for nowhere [default: the top-level `access_log`].
    pub access_log: Option<LogTarget>,
    /// Limits and timeouts for this route.
    #[serde(flatten)]
    pub limits: LimitSettings,
}

/// How a route's `allow` and `auth_basic` combine (nginx's `satisfy`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Satisfy {
    /// Both must let the request in.
    #[default]
    All,
    /// Either lets it in.
    Any,
}

/// `auth_basic`: a realm and an htpasswd file, or `"off"`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AuthBasicSetting {
    /// `"off"` (any other word is refused when the configuration is checked).
    Word(String),
    /// `{ realm = "...", user_file = "..." }`.
    Table(AuthBasicTable),
}

/// `{ realm = "...", user_file = "..." }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthBasicTable {
    /// What the browser shows the user (nginx's `auth_basic "realm"`).
    pub realm: String,
    /// The htpasswd file (nginx's `auth_basic_user_file`), read at start and on reload.
    pub user_file: PathBuf,
}

impl<'de> Deserialize<'de> for AuthBasicSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AuthBasicSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("{ realm = \"...\", user_file = \"...\" }, or \"off\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AuthBasicSetting, E> {
                Ok(AuthBasicSetting::Word(v.to_owned()))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<AuthBasicSetting, M::Error> {
                let table =
                    AuthBasicTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(AuthBasicSetting::Table(table))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `auth_request`: the path asked, or `"off"`; or a table with what a 401 becomes.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AuthRequestSetting {
    /// The path (and query) asked, or `"off"`.
    Word(String),
    /// `{ path = "...", redirect_401 = "URL" }`.
    Table(AuthRequestTable),
}

/// `{ path = "...", redirect_401 = "URL" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRequestTable {
    /// The path (and query) asked: a route passing it to an upstream serves it.
    pub path: String,
    /// Where a 401 sends the client instead, with a 302 (nginx's `error_page 401 =302
    /// URL`): text with variables, `$auth_http_location` for the auth answer's Location
    /// (Authelia), `/oauth2/start?rd=$request_uri` (oauth2-proxy). When it comes out empty,
    /// the 401 goes as it is.
    pub redirect_401: Option<String>,
}

impl<'de> Deserialize<'de> for AuthRequestSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AuthRequestSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a path, { path = \"...\", redirect_401 = \"...\" }, or \"off\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AuthRequestSetting, E> {
                Ok(AuthRequestSetting::Word(v.to_owned()))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<AuthRequestSetting, M::Error> {
                let table = AuthRequestTable::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(AuthRequestSetting::Table(table))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `index`: one file name, or a list of them tried in order (nginx's `index index.html
/// index.htm;`). An empty name or list names none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct IndexNames(pub Vec<String>);

impl<'de> Deserialize<'de> for IndexNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = IndexNames;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a file name, or a list of them, like [\"index.html\", \"index.htm\"]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IndexNames, E> {
                let names = if v.is_empty() {
                    Vec::new()
                } else {
                    vec![v.to_owned()]
                };
                Ok(IndexNames(names))
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<IndexNames, S::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(IndexNames(names))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A `response_headers` value: the header's value (nginx's `add_header NAME VALUE`), or
/// `{ value = "...", always = true }` (`add_header NAME VALUE always`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum HeaderSetting {
    /// Added to successful and redirect answers.
    Value(String),
    /// Added as `always` says.
    Table(HeaderTable),
}

/// `{ value = "...", always = true }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderTable {
    /// The header's value.
    pub value: String,
    /// Added to every answer, errors and ringway's own too [default: false].
    #[serde(default)]
    pub always: bool,
}

/// A string, or a table read as [`HeaderTable`] (whose own errors, an unknown or missing
/// key, reach the operator: an untagged enum would only say that nothing matched).
impl<'de> Deserialize<'de> for HeaderSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HeaderSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a header value, or { value = \"...\", always = true }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HeaderSetting, E> {
                Ok(HeaderSetting::Value(v.to_owned()))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<HeaderSetting, M::Error> {
                let table =
                    HeaderTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(HeaderSetting::Table(table))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl HeaderSetting {
    /// The value, and whether it goes on every answer.
    pub fn parts(&self) -> (&str, bool) {
        match self {
            HeaderSetting::Value(v) => (v, false),
            HeaderSetting::Table(t) => (&t.value, t.always),
        }
    }
}

/// `[gzip]`: the app's answers and static files compressed as nginx's gzip module
/// compresses them.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GzipSettings {
    /// Media types compressed besides `text/html`, which always is (nginx `gzip_types`);
    /// `"*"` for any. Naming one of JavaScript's types names them all, and so for XML's.
    #[serde(default)]
    pub types: Vec<String>,
    /// Answers whose Content-Length is below this go as they are; answers without one are
    /// compressed whatever their size (nginx `gzip_min_length`: `1k` as well as `1024`)
    /// [default: 20].
    pub min_length: Option<Size>,
    /// 1 (fastest) to 9 (smallest) (nginx `gzip_comp_level`) [default: 1].
    pub level: Option<u32>,
    /// `Vary: Accept-Encoding` on every answer that could be compressed, compressed or not
    /// (nginx `gzip_vary on`) [default: false].
    #[serde(default)]
    pub vary: bool,
    /// Which answers to requests through a proxy (with a `Via` header) are compressed:
    /// nginx's `gzip_proxied` flags, `off` (none), `any`, `expired`, `no-cache`,
    /// `no-store`, `private`, `no_last_modified`, `no_etag`, `auth` [default: off].
    #[serde(default)]
    pub proxied: Vec<String>,
}

/// A route's method restriction: `limit_except = { methods = ["GET"], allow = [...] }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitExceptSettings {
    /// Methods every client may use (`GET` lets `HEAD` through too, as in nginx).
    pub methods: Vec<String>,
    /// Clients that may use the others (nginx's `allow` inside; empty: nobody, `deny all`).
    #[serde(default)]
    pub allow: Vec<Cidr>,
}

/// A route's request rate limit: `limit_req = { rate = "5r/s", burst = 10 }`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitReqSettings {
    /// The rate the bucket leaks at: `5r/s`, `30r/m`.
    pub rate: Rate,
    /// Requests beyond the rate taken before refusing [default: 0].
    #[serde(default)]
    pub burst: u32,
    /// Requests beyond the rate served at once; those past it wait until the rate lets
    /// them through (nginx's `delay=N`; `0` is nginx's `limit_req` without `nodelay`)
    /// [default: none: the whole burst at once, nginx's `nodelay`].
    pub delay: Option<u32>,
    /// The refusal's status (nginx's `limit_req_status`), 400 to 599 [default: the top
    /// level's `limit_req.status` (nginx's is inherited on its own), else 429].
    pub status: Option<u16>,
    /// Requests past the limit are counted, logged and shown in `$limit_req_status`
    /// (`REJECTED_DRY_RUN`, `DELAYED_DRY_RUN`), not refused nor held (nginx's
    /// `limit_req_dry_run on`): a limit tried out before it is enforced [default: the top
    /// level's `limit_req.dry_run`, else false].
    pub dry_run: Option<bool>,
}

/// A route's hotlink guard: `referers = { valid = ["none", "blocked", "server_names",
/// "*.example.com"] }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferersSettings {
    /// nginx's `valid_referers` arguments, one string each: `none` (no Referer),
    /// `blocked` (one without `http://` or `https://`), `server_names` (the route's
    /// `hosts`, else the top level's), a host (`example.com`, `*.example.com`,
    /// `.example.com`, `www.example.*`) with an optional path (`example.com/galleries/`),
    /// or `~REGEX` (any case, on the Referer without its scheme).
    pub valid: Vec<String>,
    /// The status a request whose Referer is not valid gets, 400 to 599 (444: the
    /// connection closed without an answer) [default: 403].
    pub status: Option<u16>,
    /// Requests with a Referer the list does not take are served, and shown in
    /// `$invalid_referer` (`1`), not refused: nginx's `valid_referers` with no `if`, a
    /// guard watched before it is enforced [default: false].
    #[serde(default)]
    pub dry_run: bool,
}

/// A route's limit on requests at once per client: `limit_conn = { per_ip = 1 }`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConnSettings {
    /// Requests from one client IP (an IPv6 one by its /64) served on the route at once.
    pub per_ip: usize,
    /// The refusal's status (nginx's `limit_conn_status`), 400 to 599 [default: 503].
    pub status: Option<u16>,
    /// Requests over the limit are counted, logged and shown in `$limit_conn_status`
    /// (`REJECTED_DRY_RUN`), not refused (nginx's `limit_conn_dry_run on`) [default: false].
    #[serde(default)]
    pub dry_run: bool,
}

/// A route's fixed answer: `respond = { status = 200, body = "ok" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSettings {
    /// 200 to 599, but not a redirect (`redirect` says where to); 444 closes the connection
    /// without an answer, as nginx's `return 444`.
    pub status: u16,
    /// The body [default: none; for a status of 400 and up, its error page or short text].
    pub body: Option<String>,
    /// The body's Content-Type [default: text/plain].
    pub content_type: Option<String>,
}

/// A route's redirect: `redirect = { to = "/new/", status = 301 }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSettings {
    /// Where to: a path or a URL; the rest of the request's path and its query follow.
    pub to: String,
    /// 301, 302, 303, 307 or 308 [default: 301].
    pub status: Option<u16>,
}

/// Settings after flags were laid over the file, remembering where each came from.
pub struct Resolved {
    pub(super) settings: Settings,
    pub(super) from_flags: BTreeSet<String>,
    pub(super) file: Option<PathBuf>,
    /// Validated for `--check-config` only: nothing is created (the access log file).
    pub(super) checking: bool,
    /// Who is asked for the addresses of servers written by name.
    pub(super) lookup: Lookup,
}

impl Settings {
    /// Reads the file named by `--config` (if any) and lays these flags over it.
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let file = self.config.clone();
        let from_file = match &file {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        self.resolve_over(from_file, file)
    }

    /// Lays these flags over `from_file`, the settings read from `file`.
    pub(crate) fn resolve_over(
        self,
        from_file: Settings,
        file: Option<PathBuf>,
    ) -> anyhow::Result<Resolved> {
        let flags = serde_json::to_value(&self).context("encoding the flags")?;
        let mut merged = serde_json::to_value(&from_file).context("encoding the file")?;
        let mut from_flags = BTreeSet::new();
        lay_over(&mut merged, &flags, "", &mut from_flags);
        let settings = serde_json::from_value(merged).context("merging flags and file")?;
        Ok(Resolved {
            settings,
            from_flags,
            file,
            checking: false,
            lookup: Lookup::System,
        })
    }
}

/// Lays the flags given (`over`) over the file's settings (`base`), table by table (a flag
/// in `[tls]` replaces that key, not the whole table), noting their dotted keys.
fn lay_over(base: &mut Value, over: &Value, at: &str, given: &mut BTreeSet<String>) {
    let (Some(base), Some(over)) = (base.as_object_mut(), over.as_object()) else {
        return;
    };
    for (key, value) in over {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        match (base.get_mut(key), value) {
            (Some(inner @ Value::Object(_)), Value::Object(_)) => {
                lay_over(inner, value, &path, given);
            }
            _ if is_given(value) => {
                base.insert(key.clone(), value.clone());
                given.insert(path);
            }
            _ => {}
        }
    }
}

/// Whether a flag's serde form says it was given (an absent flag is null, or an empty list).
fn is_given(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        _ => true,
    }
}

fn read_file(path: &Path) -> anyhow::Result<Settings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    parse_file(&text, path)
}

/// The settings in a config file's text (`path` names the file in errors).
pub(crate) fn parse_file(text: &str, path: &Path) -> anyhow::Result<Settings> {
    let in_file = |e: &dyn std::fmt::Display| anyhow!("in config file {}: {e}", path.display());
    let table: toml::Table = toml::from_str(text).map_err(|e| in_file(&e))?;
    let settings: Settings = match toml::from_str(text) {
        Ok(settings) => settings,
        Err(e) => {
            return Err(match misread_key(&table) {
                Some((key, message)) => anyhow!("{key} in {}: {message}", path.display()),
                None => in_file(&e),
            });
        }
    };
    // An empty list would read as no key at all: TLS off. (An empty `listen` is kept as
    // such: no plain listener.)
    let tls_listen = table
        .get("tls")
        .and_then(toml::Value::as_table)
        .and_then(|t| t.get("listen"));
    if tls_listen
        .and_then(toml::Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        return Err(anyhow!(
            "tls.listen in {}: an empty list: give at least one address, or leave the key out",
            path.display()
        ));
    }
    let read = serde_json::to_value(&settings).context("encoding the file")?;
    let raw = serde_json::to_value(&table).context("encoding the file")?;
    if let Some(key) = unknown_keys(&raw, &read, "").into_iter().next() {
        return Err(anyhow!(
            "{key} in {}: unknown key{}",
            path.display(),
            misplaced_tls_key(&key)
        ));
    }
    let mut settings = settings;
    settings.anchor_paths(path.parent().unwrap_or(Path::new("")));
    Ok(settings)
}

impl Settings {
    /// Makes the relative paths a config file names relative to the file's directory, as
    /// nginx reads its own against its configuration prefix: a service runs from `/`, and
    /// `--check-config` run beside the file must see the files the service will (found by
    /// review: it passed, and the service could not start). A flag's path stays the
    /// working directory's, as any command's. The `[app]` command is run as written.
    fn anchor_paths(&mut self, dir: &Path) {
        // An empty path stays empty, for its refusal to say so.
        let anchor = |path: &mut PathBuf| {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = dir.join(&*path);
            }
        };
        let anchor_log = |target: &mut LogTarget| {
            if let LogTarget::File(path) = target {
                anchor(path);
            }
        };
        let anchor_auth = |auth: &mut AuthBasicSetting| {
            if let AuthBasicSetting::Table(table) = auth {
                anchor(&mut table.user_file);
            }
        };
        self.temp_dir.iter_mut().for_each(anchor);
        for files in &mut self.static_dirs {
            anchor(&mut files.dir);
        }
        self.access_log.iter_mut().for_each(anchor_log);
        self.error_pages.values_mut().for_each(anchor);
        self.auth_basic.iter_mut().for_each(anchor_auth);
        let tls = &mut self.tls;
        tls.cert
            .iter_mut()
            .chain(tls.key.iter_mut())
            .for_each(anchor);
        for pair in &mut tls.certificates {
            anchor(&mut pair.cert);
            anchor(&mut pair.key);
        }
        (tls.client_certificate.iter_mut())
            .chain(tls.client_crl.iter_mut())
            .for_each(anchor);
        for route in &mut self.routes {
            route.static_dir.iter_mut().for_each(anchor);
            route.access_log.iter_mut().for_each(anchor_log);
            route.auth_basic.iter_mut().for_each(anchor_auth);
            if let Some(pages) = &mut route.error_pages {
                pages.values_mut().for_each(anchor);
            }
        }
    }
}

/// A hint for a top-level key that is one of `[tls]`'s (nginx has them at the top of a
/// `server` block): where it goes.
fn misplaced_tls_key(key: &str) -> &'static str {
    let tls_keys = serde_json::to_value(TlsSettings::default()).unwrap_or_default();
    match tls_keys.as_object() {
        Some(keys) if keys.contains_key(key) => " (it belongs in the [tls] table)",
        _ => "",
    }
}

/// Which key of a file that does not deserialize holds the bad value, and why: serde's
/// messages lose the key beside a flattened struct, so each key is tried alone (inside its
/// route or group).
fn misread_key(table: &toml::Table) -> Option<(String, String)> {
    use toml::{Table, Value};
    let fails = |probe: Table| {
        Settings::deserialize(probe)
            .err()
            .map(|e| e.message().to_owned())
    };
    for (key, value) in table {
        let alone = Table::from_iter([(key.clone(), value.clone())]);
        let Some(message) = fails(alone) else {
            continue;
        };
        let inner = match (key.as_str(), value) {
            ("routes", Value::Array(routes)) => routes.iter().enumerate().find_map(|(i, r)| {
                let Value::Table(route) = r else { return None };
                route.iter().find_map(|(k, v)| {
                    let one = Table::from_iter([(k.clone(), v.clone())]);
                    let probe =
                        Table::from_iter([("routes".into(), Value::Array(vec![one.into()]))]);
                    fails(probe).map(|m| (format!("routes[{i}].{k}"), m))
                })
            }),
            ("upstreams", Value::Table(groups)) => groups.iter().find_map(|(name, g)| {
                let Value::Table(group) = g else { return None };
                group.iter().find_map(|(k, v)| {
                    let one = Table::from_iter([(k.clone(), v.clone())]);
                    let named = Table::from_iter([(name.clone(), Value::Table(one))]);
                    let probe = Table::from_iter([("upstreams".into(), Value::Table(named))]);
                    fails(probe).map(|m| (format!("upstreams.{name}.{k}"), m))
                })
            }),
            // A table of settings (`[tls]`, `[app]`, `[gzip]`...): the key inside it.
            (table_name, Value::Table(inner)) => inner.iter().find_map(|(k, v)| {
                let one = Table::from_iter([(k.clone(), v.clone())]);
                let probe = Table::from_iter([(table_name.to_owned(), Value::Table(one))]);
                fails(probe).map(|m| (format!("{table_name}.{k}"), m))
            }),
            _ => None,
        };
        return Some(inner.unwrap_or((key.clone(), message)));
    }
    None
}

/// The keys of `raw` (the file as written) that `read` (what the settings read from it,
/// every field present) does not have, as dotted paths (`routes[2].upstrem`).
pub(super) fn unknown_keys(raw: &Value, read: &Value, at: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    match (raw, read) {
        (Value::Object(raw), Value::Object(read)) => {
            for (key, value) in raw {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                match read.get(key) {
                    Some(known) => unknown.extend(unknown_keys(value, known, &path)),
                    None => unknown.push(path),
                }
            }
        }
        (Value::Array(raw), Value::Array(read)) => {
            for (i, (value, known)) in raw.iter().zip(read).enumerate() {
                unknown.extend(unknown_keys(value, known, &format!("{at}[{i}]")));
            }
        }
        // A table read into a non-table (a size from `{...}`) was refused by serde already.
        _ => {}
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_found_at_any_depth() {
        let text = r#"
            listen = "127.0.0.1:1"
            max_body_size = "1m"
            nonsense = 1
            [upstreams.app]
            servers = ["unix:/a"]
            buffersize = 4
            [[routes]]
            path = "/"
            upstream = "app"
            upstrem = "app"
            max_body_size = "2m"
            params = { UWSGI_SCHEME = "https" }
            redirect_ = 1
        "#;
        let table: toml::Table = toml::from_str(text).unwrap();
        let settings: Settings = toml::from_str(text).unwrap();
        let raw = serde_json::to_value(&table).unwrap();
        let read = serde_json::to_value(&settings).unwrap();
        assert_eq!(
            unknown_keys(&raw, &read, ""),
            vec![
                "nonsense",
                "routes[0].redirect_",
                "routes[0].upstrem",
                "upstreams.app.buffersize"
            ]
        );
    }
}
