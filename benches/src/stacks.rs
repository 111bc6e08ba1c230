//! The things under test: one uWSGI app server (its workers serve every uWSGI stack), and in
//! front of it ringway, nginx, and uWSGI's own `--http` router; plus uWSGI alone on its
//! `--http-socket` (no proxy). The Granian stacks each run their own Granian (HTTP, the same
//! app and number of workers): ringway and nginx in front of it over keep-alive HTTP/1.1,
//! and Granian alone, the limit.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::load::STATIC_ROUTE;
use crate::proc::Guard;
use crate::sys;
use crate::tls::CertFiles;

const STARTUP: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// uWSGI's listen backlog: the 1000-connection case needs more than the default 100
/// (a full backlog is an immediate 502/503 from the proxies).
const LISTEN_BACKLOG: &str = "1024";

/// Which stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackKind {
    Ringway,
    /// ringway with its access log on (combined, to a file in the run's scratch dir): beside
    /// `ringway` in the same run, what the log costs per request.
    RingwayLog,
    Nginx,
    UwsgiHttp,
    Uwsgi,
    /// ringway → Granian over HTTP/1.1 with an upstream keep-alive pool (`keepalive = 32`).
    RingwayGranian,
    /// nginx `proxy_pass` → Granian, `keepalive 32` in the `upstream` block.
    NginxGranian,
    /// Granian alone: what the proxies in front of it are measured against.
    Granian,
}

impl StackKind {
    /// The stacks a run has unless `--stacks` says otherwise.
    pub const ALL: [StackKind; 7] = [
        StackKind::Ringway,
        StackKind::Nginx,
        StackKind::UwsgiHttp,
        StackKind::Uwsgi,
        StackKind::RingwayGranian,
        StackKind::NginxGranian,
        StackKind::Granian,
    ];

    /// Every stack `--stacks` may name: the default ones and `ringway-log`.
    pub const KNOWN: [StackKind; 8] = [
        StackKind::Ringway,
        StackKind::RingwayLog,
        StackKind::Nginx,
        StackKind::UwsgiHttp,
        StackKind::Uwsgi,
        StackKind::RingwayGranian,
        StackKind::NginxGranian,
        StackKind::Granian,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StackKind::Ringway => "ringway",
            StackKind::RingwayLog => "ringway-log",
            StackKind::Nginx => "nginx",
            StackKind::UwsgiHttp => "uwsgi-http",
            StackKind::Uwsgi => "uwsgi",
            StackKind::RingwayGranian => "ringway-granian",
            StackKind::NginxGranian => "nginx-granian",
            StackKind::Granian => "granian",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        StackKind::KNOWN
            .into_iter()
            .find(|k| k.name() == name)
            .with_context(|| {
                format!(
                    "unknown stack {name:?} (ringway, ringway-log, nginx, uwsgi-http, uwsgi, \
                     ringway-granian, nginx-granian, granian)"
                )
            })
    }

    /// Whether there is a proxy process to account for (uWSGI alone and Granian alone have
    /// none).
    pub fn has_proxy(self) -> bool {
        !matches!(self, StackKind::Uwsgi | StackKind::Granian)
    }

    /// Whether the app runs under Granian (over HTTP) rather than uWSGI.
    pub fn on_granian(self) -> bool {
        matches!(
            self,
            StackKind::RingwayGranian | StackKind::NginxGranian | StackKind::Granian
        )
    }

    /// The stack this one's ×nginx ratios are taken over: nginx in front of the same app
    /// server.
    pub fn reference(self) -> StackKind {
        if self.on_granian() {
            StackKind::NginxGranian
        } else {
            StackKind::Nginx
        }
    }

    /// Whether the TLS cases are run at it: they compare ringway with nginx.
    pub fn serves_tls(self) -> bool {
        matches!(
            self,
            StackKind::Ringway | StackKind::RingwayLog | StackKind::Nginx
        )
    }

    /// Whether the stack compresses the app's answers: ringway and nginx in front of uWSGI,
    /// both with gzip on at level 1 for the app's `application/octet-stream` (the Granian
    /// stacks compare the app path as it is).
    pub fn compresses(self) -> bool {
        self.serves_files()
    }

    /// Whether the stack serves the static files itself: ringway and nginx in front of uWSGI
    /// do; the uWSGI stacks here only run the app, and the Granian stacks, which compare the
    /// upstream protocols, do not repeat the file cases.
    pub fn serves_files(self) -> bool {
        matches!(
            self,
            StackKind::Ringway | StackKind::RingwayLog | StackKind::Nginx
        )
    }
}

impl fmt::Display for StackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which app the workers run.
#[derive(Debug, Clone)]
pub struct App {
    pub file: PathBuf,
    pub callable: String,
}

/// Binaries and knobs the stacks need.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ringway: PathBuf,
    pub nginx: PathBuf,
    pub venv: PathBuf,
    pub ringway_workers: usize,
    /// Run ringway with its metrics endpoint and probes.
    pub ringway_probes: bool,
    pub uwsgi_workers: usize,
    /// CPUs the servers run on (`--pin`), else inherited.
    pub server_cpus: Option<Vec<usize>>,
    /// The harness's RLIMIT_NOFILE, for nginx's worker_rlimit_nofile.
    pub nofile: u64,
    /// Largest request body both proxies accept (ringway `--max-body-size`, nginx
    /// `client_max_body_size`); `None`: 1m, ringway's default.
    pub max_body_size: Option<String>,
    /// A directory both proxies serve on [`STATIC_ROUTE`] (ringway `--static`, nginx `alias`
    /// with the static-file tuning of [`nginx_config`]); `None`: no static route.
    pub static_dir: Option<PathBuf>,
    /// With a certificate, ringway and nginx also listen for TLS and serve it.
    pub tls: Option<CertFiles>,
}

impl Tools {
    fn uwsgi(&self) -> PathBuf {
        self.venv.join("bin").join("uwsgi")
    }

    pub fn granian(&self) -> PathBuf {
        self.venv.join("bin").join("granian")
    }
}

/// A uWSGI master and its workers, or a Granian and its workers. The uWSGI proxies share one
/// uWSGI, on a unix socket; uWSGI alone gets its own (same app, same number of workers) on an
/// `--http-socket`. Each Granian stack gets its own Granian, on a TCP port.
pub struct AppServer {
    guard: Guard,
    /// The uwsgi socket (empty for Granian, which speaks HTTP only).
    pub socket: PathBuf,
    /// The HTTP address: uWSGI alone's, or Granian's.
    pub http: Option<SocketAddr>,
    log: PathBuf,
}

impl AppServer {
    /// The app server behind the proxies: `--socket app.sock`.
    pub fn start(tools: &Tools, app: &App, dir: &Path) -> Result<Self> {
        Self::start_mode(tools, app, dir, false)
    }

    /// uWSGI alone: `--http-socket`. uWSGI 2.0 closes the connection after each answer
    /// without saying so, which a keep-alive client only learns by failing its next
    /// request: `Connection: close` is added to the answers so that wrk reconnects cleanly.
    pub fn start_http(tools: &Tools, app: &App, dir: &Path) -> Result<Self> {
        Self::start_mode(tools, app, dir, true)
    }

    fn start_mode(tools: &Tools, app: &App, dir: &Path, http_alone: bool) -> Result<Self> {
        let name = if http_alone {
            "uwsgi-alone"
        } else {
            "uwsgi-app"
        };
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let chdir = app.file.parent().unwrap_or(Path::new("/"));
        let mut cmd = Command::new(tools.uwsgi());
        cmd.arg("--master")
            .arg("--workers")
            .arg(tools.uwsgi_workers.to_string())
            .args(["--die-on-term", "--need-app", "--disable-logging"])
            .args(["--auto-procname", "--listen", LISTEN_BACKLOG]);
        let http = if http_alone {
            let addr = SocketAddr::from(([127, 0, 0, 1], sys::free_port()?));
            cmd.arg("--http-socket")
                .arg(addr.to_string())
                .args(["--add-header", "Connection: close"]);
            Some(addr)
        } else {
            cmd.arg("--socket").arg(&socket);
            None
        };
        cmd.arg("--wsgi-file")
            .arg(&app.file)
            .arg("--callable")
            .arg(&app.callable)
            .arg("--chdir")
            .arg(chdir)
            .arg("--home")
            .arg(&tools.venv)
            .stdout(Stdio::null())
            .stderr(log_file(&log)?);
        let mut guard = Guard::spawn(name, &mut cmd, tools.server_cpus.clone())?;
        wait_ready(&mut guard, &log, || match http {
            Some(addr) => TcpStream::connect(addr).is_ok(),
            None => UnixStream::connect(&socket).is_ok(),
        })?;
        Ok(Self {
            guard,
            socket,
            http,
            log,
        })
    }

    /// Granian with the app's callable (WSGI interface), `uwsgi_workers` workers, on a free
    /// port of 127.0.0.1, keep-alive on (its default), its access log off (its default), the
    /// same listen backlog as uWSGI. `name` tells the stacks' Granians apart in the scratch
    /// dir.
    pub fn start_granian(tools: &Tools, app: &App, dir: &Path, name: &str) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let module = app
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("no module name in {}", app.file.display()))?;
        let chdir = app.file.parent().unwrap_or(Path::new("/"));
        let addr = SocketAddr::from(([127, 0, 0, 1], sys::free_port()?));
        let mut cmd = Command::new(tools.granian());
        cmd.args(["--interface", "wsgi", "--no-ws", "--log-level", "warning"])
            .arg("--workers")
            .arg(tools.uwsgi_workers.to_string())
            .args(["--backlog", LISTEN_BACKLOG])
            .args(["--host", "127.0.0.1", "--port"])
            .arg(addr.port().to_string())
            .arg("--working-dir")
            .arg(chdir)
            .arg(format!("{module}:{}", app.callable))
            .stdout(Stdio::null())
            .stderr(log_file(&log)?);
        let mut guard = Guard::spawn(name, &mut cmd, tools.server_cpus.clone())?;
        // Granian binds before its workers have loaded the app: ready once one answers.
        wait_ready(&mut guard, &log, || answers_http(addr))?;
        Ok(Self {
            guard,
            socket: PathBuf::new(),
            http: Some(addr),
            log,
        })
    }

    /// The master and its workers.
    pub fn pids(&self) -> Result<Vec<u32>> {
        sys::process_tree(self.guard.pid())
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Stops the app server at once (SIGKILL to its process group), skipping the second its master
    /// takes to stop gracefully.
    pub fn kill(mut self) -> Result<()> {
        self.guard.kill().map(drop)
    }

    /// uWSGI's log (its stderr): what its workers complain about.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// A stack ready to take load.
pub struct Stack {
    pub kind: StackKind,
    pub addr: SocketAddr,
    /// Where it serves TLS (ringway and nginx, when the run has TLS cases).
    pub tls_addr: Option<SocketAddr>,
    /// The proxy's processes (empty for uWSGI alone and Granian alone).
    pub proxy_pids: Vec<u32>,
    guard: Option<Guard>,
    log: Option<PathBuf>,
    /// uWSGI alone and the Granian stacks run their own app server.
    own_app: Option<AppServer>,
}

impl Stack {
    pub fn start(
        kind: StackKind,
        tools: &Tools,
        spec: &App,
        app: &AppServer,
        dir: &Path,
    ) -> Result<Self> {
        let stack = match kind {
            StackKind::Ringway => start_ringway(tools, app, dir, false),
            StackKind::RingwayLog => start_ringway(tools, app, dir, true),
            StackKind::Nginx => start_nginx(tools, app, dir),
            StackKind::RingwayGranian => {
                AppServer::start_granian(tools, spec, dir, "granian-ringway")
                    .and_then(|own| start_ringway_http(tools, own, dir))
            }
            StackKind::NginxGranian => AppServer::start_granian(tools, spec, dir, "granian-nginx")
                .and_then(|own| start_nginx_http(tools, own, dir)),
            StackKind::Granian => AppServer::start_granian(tools, spec, dir, "granian-alone")
                .and_then(|own| {
                    Ok(Stack {
                        kind,
                        addr: own.http.context("Granian has no HTTP address")?,
                        tls_addr: None,
                        proxy_pids: Vec::new(),
                        guard: None,
                        log: Some(own.log.clone()),
                        own_app: Some(own),
                    })
                }),
            StackKind::UwsgiHttp => start_uwsgi_http(tools, app, dir),
            StackKind::Uwsgi => AppServer::start_http(tools, spec, dir).and_then(|own| {
                Ok(Stack {
                    kind,
                    addr: own.http.context("uWSGI alone has no HTTP socket")?,
                    tls_addr: None,
                    proxy_pids: Vec::new(),
                    guard: None,
                    log: Some(own.log.clone()),
                    own_app: Some(own),
                })
            }),
        };
        stack.with_context(|| format!("starting the {kind} stack"))
    }

    /// Looks the proxy's process tree up again (nginx workers, uWSGI's router process).
    pub fn refresh_pids(&mut self) -> Result<()> {
        if let Some(guard) = &mut self.guard {
            if let Some(status) = guard.try_wait()? {
                bail!(
                    "{} exited ({status}); log:\n{}",
                    self.kind,
                    self.log.as_deref().map(tail).unwrap_or_default()
                );
            }
            self.proxy_pids = sys::process_tree(guard.pid())?;
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        self.log.as_deref().map(tail).unwrap_or_default()
    }

    /// The app server's processes that serve this stack: its own for uWSGI alone and the
    /// Granian stacks, else `shared`'s.
    pub fn app_pids(&self, shared: &AppServer) -> Result<Vec<u32>> {
        self.own_app.as_ref().unwrap_or(shared).pids()
    }
}

/// ringway; with `access_log`, its access log on (the `ringway-log` stack), appended to
/// `DIR/ringway-access.log` in nginx's combined format.
fn start_ringway(tools: &Tools, app: &AppServer, dir: &Path, access_log: bool) -> Result<Stack> {
    let kind = if access_log {
        StackKind::RingwayLog
    } else {
        StackKind::Ringway
    };
    let log = dir.join(format!("{kind}.log"));
    let mut cmd = ringway_command(tools, &log)?;
    cmd.arg("--upstream")
        .arg(format!("unix:{}", app.socket.display()));
    let config = dir.join(format!("{kind}.toml"));
    fs::write(&config, RINGWAY_GZIP).with_context(|| format!("write {}", config.display()))?;
    cmd.arg("--config").arg(&config);
    if access_log {
        cmd.arg("--access-log").arg(dir.join("ringway-access.log"));
    }
    if let Some(tls) = &tools.tls {
        // HTTP/2 on, as nginx's `listen ... ssl http2`: only the HTTP/2 case's client offers
        // h2, the other TLS cases' clients offer http/1.1 alone and get it.
        cmd.args(["--tls-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key)
            .arg("--http2");
    }
    if let Some(files) = &tools.static_dir {
        cmd.arg("--static")
            .arg(format!("{STATIC_ROUTE}={}", files.display()));
    }
    spawn_ringway(kind, cmd, tools, log, tools.tls.is_some())
}

/// The config file of ringway's uWSGI stacks: compression as nginx's `gzip on;
/// gzip_types application/octet-stream;` for the app's answers and `gzip_types text/css;`
/// for the files (level 1, both; ringway's `[gzip]` takes both kinds of route).
pub const RINGWAY_GZIP: &str = "[gzip]\ntypes = [\"application/octet-stream\", \"text/css\"]\n";

/// Idle upstream connections ringway and nginx keep per server (ringway: per core too):
/// the issue's `keepalive = 32`, nginx's `keepalive 32`.
pub const UPSTREAM_KEEPALIVE: usize = 32;

/// ringway in front of `granian` over HTTP: an upstream group in a config file (the HTTP
/// servers and the pool are file keys), the same flags as the uWSGI stack otherwise. No TLS
/// and no static route: the Granian stacks compare the app path only.
fn start_ringway_http(tools: &Tools, granian: AppServer, dir: &Path) -> Result<Stack> {
    let kind = StackKind::RingwayGranian;
    let upstream = granian.http.context("Granian has no HTTP address")?;
    let config = dir.join("ringway-granian.toml");
    fs::write(&config, ringway_http_config(upstream))
        .with_context(|| format!("write {}", config.display()))?;
    let log = dir.join(format!("{kind}.log"));
    let mut cmd = ringway_command(tools, &log)?;
    cmd.arg("--config").arg(&config);
    let mut stack = spawn_ringway(kind, cmd, tools, log, false)?;
    stack.own_app = Some(granian);
    Ok(stack)
}

/// The config file of the `ringway-granian` stack: one HTTP upstream group with a
/// keep-alive pool, served on `/`.
pub fn ringway_http_config(upstream: SocketAddr) -> String {
    format!(
        "[upstreams.app]
servers = [\"http://{upstream}\"]
keepalive = {UPSTREAM_KEEPALIVE}

[[routes]]
path = \"/\"
upstream = \"app\"
"
    )
}

/// ringway's command line common to its stacks: listen, workers, metrics, body size, and
/// keep-alive requests raised as nginx's are (a busy keep-alive connection is not closed
/// every 1000 requests).
fn ringway_command(tools: &Tools, log: &Path) -> Result<Command> {
    let mut cmd = Command::new(&tools.ringway);
    cmd.args(["--listen", "127.0.0.1:0"])
        .arg("--workers")
        .arg(tools.ringway_workers.to_string())
        .args(["--keepalive-requests", "1000000"])
        .args([
            "--metrics",
            if tools.ringway_probes {
                "127.0.0.1:0"
            } else {
                "off"
            },
        ])
        .stdout(Stdio::null())
        .stderr(log_file(log)?)
        .env("NO_COLOR", "1");
    if let Some(size) = &tools.max_body_size {
        cmd.arg("--max-body-size").arg(size);
    }
    Ok(cmd)
}

/// Starts ringway and waits for its `listening on` line(s).
fn spawn_ringway(
    kind: StackKind,
    mut cmd: Command,
    tools: &Tools,
    log: PathBuf,
    with_tls: bool,
) -> Result<Stack> {
    let mut guard = Guard::spawn("ringway", &mut cmd, tools.server_cpus.clone())?;
    let mut addr = None;
    let mut tls_addr = None;
    wait_ready(&mut guard, &log, || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        // The https line comes first: both are there once the http one is.
        addr = listening_addr(&text);
        tls_addr = listening_addr_of(&text, "https");
        addr.is_some()
    })?;
    let addr = addr.context("ringway's listening address")?;
    if with_tls && tls_addr.is_none() {
        bail!(
            "ringway logged no `listening on https://` line:\n{}",
            tail(&log)
        );
    }
    let pid = guard.pid();
    Ok(Stack {
        kind,
        addr,
        tls_addr,
        proxy_pids: vec![pid],
        guard: Some(guard),
        log: Some(log),
        own_app: None,
    })
}

/// The address in ringway's `listening on http://IP:PORT` log line.
pub fn listening_addr(log: &str) -> Option<SocketAddr> {
    listening_addr_of(log, "http")
}

/// The address in ringway's `listening on SCHEME://IP:PORT` log line.
pub fn listening_addr_of(log: &str, scheme: &str) -> Option<SocketAddr> {
    let marker = format!("listening on {scheme}://");
    let start = log.find(&marker)? + marker.len();
    let text: String = log[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    text.parse().ok()
}

fn start_nginx(tools: &Tools, app: &AppServer, dir: &Path) -> Result<Stack> {
    let tls_addr = match &tools.tls {
        Some(_) => Some(SocketAddr::from(([127, 0, 0, 1], sys::free_port()?))),
        None => None,
    };
    let tls = tls_addr.zip(tools.tls.as_ref());
    let upstream = NginxUpstream::Uwsgi(&app.socket);
    let mut stack = spawn_nginx(
        StackKind::Nginx,
        tools,
        &dir.join("nginx"),
        &upstream,
        tools.static_dir.as_deref(),
        tls,
    )?;
    stack.tls_addr = tls_addr;
    Ok(stack)
}

/// nginx `proxy_pass` to `granian` (keep-alive HTTP/1.1), no static route, no TLS.
fn start_nginx_http(tools: &Tools, granian: AppServer, dir: &Path) -> Result<Stack> {
    let upstream = NginxUpstream::Http(granian.http.context("Granian has no HTTP address")?);
    let mut stack = spawn_nginx(
        StackKind::NginxGranian,
        tools,
        &dir.join("nginx-granian"),
        &upstream,
        None,
        None,
    )?;
    stack.own_app = Some(granian);
    Ok(stack)
}

/// Writes nginx's config under `ndir`, starts it and waits for its listeners and workers.
fn spawn_nginx(
    kind: StackKind,
    tools: &Tools,
    ndir: &Path,
    upstream: &NginxUpstream,
    static_dir: Option<&Path>,
    tls: Option<(SocketAddr, &CertFiles)>,
) -> Result<Stack> {
    fs::create_dir_all(ndir).with_context(|| format!("create {}", ndir.display()))?;
    let port = sys::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let max_body = tools.max_body_size.as_deref().unwrap_or("1m");
    let conf = nginx_config(
        ndir,
        addr,
        upstream,
        tools.nofile,
        max_body,
        static_dir,
        tls,
    );
    let conf_path = ndir.join("nginx.conf");
    fs::write(&conf_path, conf).with_context(|| format!("write {}", conf_path.display()))?;
    let log = ndir.join("error.log");
    let mut cmd = Command::new(&tools.nginx);
    cmd.arg("-p")
        .arg(ndir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(log_file(&ndir.join("stderr.log"))?);
    let mut guard = Guard::spawn("nginx", &mut cmd, tools.server_cpus.clone())?;
    let tls_addr = tls.map(|(a, _)| a);
    wait_ready(&mut guard, &log, || {
        TcpStream::connect(addr).is_ok() && tls_addr.is_none_or(|t| TcpStream::connect(t).is_ok())
    })?;
    with_forked_workers(kind, addr, guard, log)
}

/// What nginx passes requests to.
pub enum NginxUpstream<'a> {
    /// `uwsgi_pass unix:PATH` with the stock `uwsgi_params`.
    Uwsgi(&'a Path),
    /// `proxy_pass http://app_http` to an `upstream` block with `keepalive 32`, HTTP/1.1,
    /// `Connection ""` and the usual `proxy_set_header` lines, as gunicorn's and Granian's
    /// deployment docs write it.
    Http(SocketAddr),
}

impl NginxUpstream<'_> {
    /// The `upstream` block and proxy buffers of the http block (the HTTP upstream's
    /// buffers tuned as the uwsgi ones are).
    fn http_block(&self) -> String {
        match self {
            NginxUpstream::Uwsgi(_) => String::new(),
            NginxUpstream::Http(addr) => format!(
                "    upstream app_http {{
        server {addr};
        keepalive {UPSTREAM_KEEPALIVE};
    }}
    proxy_buffer_size 16k;
    proxy_buffers 8 16k;
"
            ),
        }
    }

    /// The body of `location /`.
    fn location(&self) -> String {
        match self {
            NginxUpstream::Uwsgi(socket) => format!(
                "            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:{};
            gzip on;
            gzip_types application/octet-stream;
",
                socket.display()
            ),
            NginxUpstream::Http(_) => "            proxy_pass http://app_http;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
"
            .to_owned(),
        }
    }
}

/// nginx as in production, with the tuned buffers of docs/ARCHITECTURE.md: worker_processes auto,
/// its workers pinned as ringway's are (`worker_cpu_affinity auto`), access_log off, the stock uwsgi_params (or, to an HTTP upstream, the `proxy_pass` lines of
/// [`NginxUpstream::Http`]). keepalive_requests is raised, for both proxies, so that neither
/// closes a busy keep-alive connection every 1000 requests (their default). Its temp paths (bodies
/// and answers beyond the buffers) are under `dir`.
///
/// With `static_dir`, nginx also serves that directory on [`STATIC_ROUTE`] (`alias`), tuned
/// as its users tune it for files, in the http block as Debian's stock nginx.conf has them:
/// `sendfile on; tcp_nopush on;` (and the stock mime.types), plus `open_file_cache
/// max=1000;`. These touch no proxied answer: sendfile serves files, and the load cases'
/// answers fit in the uwsgi buffers, so none is sent from a temp file.
///
/// With `tls`, a second server serves HTTPS on its address with the certificate, as a
/// typical production server does (Mozilla's "intermediate" settings, tickets on as
/// ringway has them): TLS 1.2 and 1.3, a shared session cache, session tickets, the
/// client's cipher preference (OpenSSL's default, as in rustls), and HTTP/2 (`http2` on the
/// `listen` line, as ringway's `--http2`: ALPN offers h2, then http/1.1; only the HTTP/2 case
/// offers h2, the others' clients offer http/1.1 alone). It has the static route too, as
/// ringway serves its routes on both listeners.
pub fn nginx_config(
    dir: &Path,
    addr: SocketAddr,
    upstream: &NginxUpstream,
    nofile: u64,
    max_body_size: &str,
    static_dir: Option<&Path>,
    tls: Option<(SocketAddr, &CertFiles)>,
) -> String {
    let d = dir.display();
    let location = upstream.location();
    let upstream_http = upstream.http_block();
    let (files_http, files_location) = match static_dir {
        Some(files) => (
            "    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000;
"
            .to_owned(),
            format!(
                "        location {STATIC_ROUTE} {{
            alias {}/;
            gzip on;
            gzip_types text/css;
        }}
",
                files.display()
            ),
        ),
        None => (String::new(), String::new()),
    };
    // As root, nginx's workers would run as `nobody`, which may not connect to the socket.
    // SAFETY: geteuid takes no arguments and cannot fail.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let connections = (nofile / 2).clamp(1024, 65536);
    let tls_server = match tls {
        Some((tls_addr, files)) => format!(
            "
    server {{
        listen {tls_addr} ssl http2 backlog=4096;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;
        ssl_session_tickets on;
        location / {{
{location}        }}
{files_location}    }}",
            cert = files.cert.display(),
            key = files.key.display()
        ),
        None => String::new(),
    };
    format!(
        "daemon off;
master_process on;
{user}
worker_processes auto;
worker_cpu_affinity auto;
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_body_buffer_size 64k;
    uwsgi_buffer_size 16k;
    uwsgi_buffers 8 16k;
    client_max_body_size {max_body_size};
{upstream_http}{files_http}    server {{
        listen {addr} backlog=4096;
        server_name localhost;
        location / {{
{location}        }}
{files_location}    }}{tls_server}
}}
"
    )
}

fn start_uwsgi_http(tools: &Tools, app: &AppServer, dir: &Path) -> Result<Stack> {
    let port = sys::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = dir.join("uwsgi-http.log");
    let mut cmd = Command::new(tools.uwsgi());
    cmd.args([
        "--master",
        "--die-on-term",
        "--disable-logging",
        "--auto-procname",
    ])
    .args(["--listen", LISTEN_BACKLOG])
    .arg("--http")
    .arg(addr.to_string())
    .arg("--http-to")
    .arg(&app.socket)
    .arg("--http-keepalive")
    .stdout(Stdio::null())
    .stderr(log_file(&log)?);
    let mut guard = Guard::spawn("uWSGI http router", &mut cmd, tools.server_cpus.clone())?;
    wait_ready(&mut guard, &log, || TcpStream::connect(addr).is_ok())?;
    with_forked_workers(StackKind::UwsgiHttp, addr, guard, log)
}

/// A proxy whose master forks its workers after it listens (nginx, uWSGI's router): the
/// stack once the workers are there too, so their CPU and memory are counted.
fn with_forked_workers(
    kind: StackKind,
    addr: SocketAddr,
    guard: Guard,
    log: PathBuf,
) -> Result<Stack> {
    let mut stack = Stack {
        kind,
        addr,
        tls_addr: None,
        proxy_pids: Vec::new(),
        guard: Some(guard),
        log: Some(log),
        own_app: None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        stack.refresh_pids()?;
        if stack.proxy_pids.len() > 1 || Instant::now() > deadline {
            break;
        }
        thread::sleep(POLL);
    }
    Ok(stack)
}

/// Whether an HTTP server at `addr` answers a GET / with a status line.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect(addr) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if conn.set_read_timeout(timeout).is_err()
        || conn
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

fn log_file(path: &Path) -> Result<fs::File> {
    fs::File::create(path).with_context(|| format!("create {}", path.display()))
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn wait_ready(guard: &mut Guard, log: &Path, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Some(status) = guard.try_wait()? {
            bail!("{} exited ({status}); log:\n{}", guard.name, tail(log));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} not ready within {STARTUP:?}; log:\n{}",
                guard.name,
                tail(log)
            );
        }
        thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ringway_address() {
        let log =
            "\u{1b}[32m INFO\u{1b}[0m ringway: listening on http://127.0.0.1:43121 workers=2\n";
        assert_eq!(
            listening_addr(log),
            Some(SocketAddr::from(([127, 0, 0, 1], 43121)))
        );
        assert_eq!(listening_addr("starting"), None);
    }

    #[test]
    fn nginx_config_has_the_tuned_buffers() {
        let conf = nginx_config(
            Path::new("/tmp/x"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            &NginxUpstream::Uwsgi(Path::new("/tmp/x/app.sock")),
            20000,
            "2m",
            None,
            None,
        );
        assert!(!conf.contains("sendfile"), "{conf}");
        assert!(!conf.contains("/files/"), "{conf}");
        for line in [
            "client_body_buffer_size 64k;",
            "uwsgi_buffer_size 16k;",
            "uwsgi_buffers 8 16k;",
            "worker_processes auto;",
            // Pinned, one worker per CPU, as ringway pins its own by default.
            "worker_cpu_affinity auto;",
            "access_log off;",
            "worker_rlimit_nofile 20000;",
            "include /etc/nginx/uwsgi_params;",
            "uwsgi_pass unix:/tmp/x/app.sock;",
            "client_max_body_size 2m;",
            "uwsgi_temp_path /tmp/x/uwsgi;",
        ] {
            assert!(conf.contains(line), "{line} missing");
        }
        assert!(!conf.contains("ssl"), "no TLS server without a certificate");
    }

    #[test]
    fn nginx_proxies_http_with_a_keepalive_upstream() {
        let upstream = NginxUpstream::Http(SocketAddr::from(([127, 0, 0, 1], 8000)));
        let conf = nginx_config(
            Path::new("/tmp/x"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            &upstream,
            20000,
            "1m",
            None,
            None,
        );
        for line in [
            "upstream app_http {",
            "server 127.0.0.1:8000;",
            "keepalive 32;",
            "proxy_pass http://app_http;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_set_header Host $host;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            "proxy_set_header X-Real-IP $remote_addr;",
            "proxy_buffers 8 16k;",
        ] {
            assert!(conf.contains(line), "{line} missing:\n{conf}");
        }
        assert!(!conf.contains("uwsgi_pass"), "{conf}");
        let upstream_block = conf.find("upstream app_http").expect("upstream block");
        let server = conf.find("server {").expect("server block");
        assert!(upstream_block < server, "{conf}");
    }

    #[test]
    fn ringway_granian_config_is_an_http_group_with_a_pool() {
        let conf = ringway_http_config(SocketAddr::from(([127, 0, 0, 1], 8000)));
        let value: toml::Value = toml::from_str(&conf).expect("valid TOML");
        let group = &value["upstreams"]["app"];
        assert_eq!(
            group["servers"].as_array().map(|a| a.len()),
            Some(1),
            "{conf}"
        );
        assert_eq!(group["servers"][0].as_str(), Some("http://127.0.0.1:8000"));
        assert_eq!(group["keepalive"].as_integer(), Some(32));
        assert_eq!(value["routes"][0]["path"].as_str(), Some("/"));
        assert_eq!(value["routes"][0]["upstream"].as_str(), Some("app"));
    }

    #[test]
    fn granian_stacks_are_compared_with_nginx_in_front_of_granian() {
        assert_eq!(
            StackKind::parse("ringway-granian").ok(),
            Some(StackKind::RingwayGranian)
        );
        assert_eq!(
            StackKind::RingwayGranian.reference(),
            StackKind::NginxGranian
        );
        assert_eq!(StackKind::Ringway.reference(), StackKind::Nginx);
        assert!(!StackKind::Granian.has_proxy());
        assert!(StackKind::NginxGranian.has_proxy());
        assert!(!StackKind::RingwayGranian.serves_files());
        assert!(!StackKind::RingwayGranian.serves_tls());
    }

    #[test]
    fn nginx_serves_tls_with_the_certificate() {
        let files = CertFiles {
            cert: PathBuf::from("/tmp/x/c.pem"),
            key: PathBuf::from("/tmp/x/c.key"),
        };
        let conf = nginx_config(
            Path::new("/tmp/x"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            &NginxUpstream::Uwsgi(Path::new("/tmp/x/app.sock")),
            20000,
            "1m",
            None,
            Some((SocketAddr::from(([127, 0, 0, 1], 8443)), &files)),
        );
        for line in [
            "listen 127.0.0.1:8443 ssl http2 backlog=4096;",
            "ssl_certificate /tmp/x/c.pem;",
            "ssl_certificate_key /tmp/x/c.key;",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_session_cache shared:SSL:10m;",
            "ssl_session_tickets on;",
        ] {
            assert!(conf.contains(line), "{line} missing");
        }
        assert_eq!(conf.matches("uwsgi_pass unix:/tmp/x/app.sock;").count(), 2);
    }

    #[test]
    fn finds_ringway_tls_address() {
        let log = "INFO ringway: listening on https://127.0.0.1:8443\n\
                   INFO ringway: listening on http://127.0.0.1:8080 workers=2\n";
        assert_eq!(
            listening_addr_of(log, "https"),
            Some(SocketAddr::from(([127, 0, 0, 1], 8443)))
        );
        assert_eq!(
            listening_addr(log),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
    }

    #[test]
    fn nginx_config_serves_the_static_files_tuned() {
        let conf = nginx_config(
            Path::new("/tmp/x"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            &NginxUpstream::Uwsgi(Path::new("/tmp/x/app.sock")),
            20000,
            "1m",
            Some(Path::new("/tmp/x/files")),
            None,
        );
        for line in [
            "sendfile on;",
            "tcp_nopush on;",
            "open_file_cache max=1000;",
            "include /etc/nginx/mime.types;",
            "location /files/ {",
            "alias /tmp/x/files/;",
            "uwsgi_pass unix:/tmp/x/app.sock;",
        ] {
            assert!(conf.contains(line), "{line} missing:\n{conf}");
        }
        let http = conf.find("http {").expect("http block");
        let server = conf.find("server {").expect("server block");
        let sendfile = conf.find("sendfile on;").expect("sendfile");
        assert!(http < sendfile && sendfile < server, "{conf}");
    }

    #[test]
    fn nginx_serves_the_static_files_over_tls_too() {
        let files = CertFiles {
            cert: PathBuf::from("/tmp/x/c.pem"),
            key: PathBuf::from("/tmp/x/c.key"),
        };
        let conf = nginx_config(
            Path::new("/tmp/x"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            &NginxUpstream::Uwsgi(Path::new("/tmp/x/app.sock")),
            20000,
            "1m",
            Some(Path::new("/tmp/x/files")),
            Some((SocketAddr::from(([127, 0, 0, 1], 8443)), &files)),
        );
        assert_eq!(conf.matches("location /files/ {").count(), 2, "{conf}");
        assert_eq!(conf.matches("uwsgi_pass unix:/tmp/x/app.sock;").count(), 2);
        assert_eq!(conf.matches("sendfile on;").count(), 1, "{conf}");
        assert!(conf.contains("listen 127.0.0.1:8443 ssl http2 backlog=4096;"));
    }
}
