//! The things under test: one uWSGI app server (its workers serve every stack), and in front
//! of it ringway, nginx, and uWSGI's own `--http` router; plus uWSGI alone on its
//! `--http-socket` (no proxy).

use std::fmt;
use std::fs;
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
}

impl StackKind {
    /// The stacks a run has unless `--stacks` says otherwise.
    pub const ALL: [StackKind; 4] = [
        StackKind::Ringway,
        StackKind::Nginx,
        StackKind::UwsgiHttp,
        StackKind::Uwsgi,
    ];

    /// Every stack `--stacks` may name: the default ones and `ringway-log`.
    pub const KNOWN: [StackKind; 5] = [
        StackKind::Ringway,
        StackKind::RingwayLog,
        StackKind::Nginx,
        StackKind::UwsgiHttp,
        StackKind::Uwsgi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StackKind::Ringway => "ringway",
            StackKind::RingwayLog => "ringway-log",
            StackKind::Nginx => "nginx",
            StackKind::UwsgiHttp => "uwsgi-http",
            StackKind::Uwsgi => "uwsgi",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        StackKind::KNOWN
            .into_iter()
            .find(|k| k.name() == name)
            .with_context(|| {
                format!("unknown stack {name:?} (ringway, ringway-log, nginx, uwsgi-http, uwsgi)")
            })
    }

    /// Whether there is a proxy process to account for (uWSGI alone has none).
    pub fn has_proxy(self) -> bool {
        self != StackKind::Uwsgi
    }

    /// Whether the TLS cases are run at it: they compare ringway with nginx.
    pub fn serves_tls(self) -> bool {
        matches!(
            self,
            StackKind::Ringway | StackKind::RingwayLog | StackKind::Nginx
        )
    }

    /// Whether the stack serves the static files itself: ringway and nginx do; the uWSGI
    /// stacks here only run the app.
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
}

/// A uWSGI master and its workers. The proxies share one, on a unix socket; uWSGI alone
/// gets its own (same app, same number of workers) on an `--http-socket`.
pub struct AppServer {
    guard: Guard,
    pub socket: PathBuf,
    /// The HTTP socket of the no-proxy baseline.
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

    /// The master and its workers.
    pub fn pids(&self) -> Result<Vec<u32>> {
        sys::process_tree(self.guard.pid())
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Stops uWSGI at once (SIGKILL to its process group), skipping the second its master
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
    /// The proxy's processes (empty for uWSGI alone).
    pub proxy_pids: Vec<u32>,
    guard: Option<Guard>,
    log: Option<PathBuf>,
    /// uWSGI alone runs its own app server.
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

    /// The uWSGI processes that serve this stack: its own for uWSGI alone, else `shared`'s.
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
    let mut cmd = Command::new(&tools.ringway);
    cmd.args(["--listen", "127.0.0.1:0"])
        .arg("--upstream")
        .arg(format!("unix:{}", app.socket.display()))
        .arg("--workers")
        .arg(tools.ringway_workers.to_string())
        .args([
            "--metrics",
            if tools.ringway_probes {
                "127.0.0.1:0"
            } else {
                "off"
            },
        ])
        .stdout(Stdio::null())
        .stderr(log_file(&log)?)
        .env("NO_COLOR", "1");
    if let Some(size) = &tools.max_body_size {
        cmd.arg("--max-body-size").arg(size);
    }
    if access_log {
        cmd.arg("--access-log").arg(dir.join("ringway-access.log"));
    }
    if let Some(tls) = &tools.tls {
        cmd.args(["--tls-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key);
    }
    if let Some(files) = &tools.static_dir {
        cmd.arg("--static")
            .arg(format!("{STATIC_ROUTE}={}", files.display()));
    }
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
    if tools.tls.is_some() && tls_addr.is_none() {
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
    let ndir = dir.join("nginx");
    fs::create_dir_all(&ndir).with_context(|| format!("create {}", ndir.display()))?;
    let port = sys::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let max_body = tools.max_body_size.as_deref().unwrap_or("1m");
    let tls_addr = match &tools.tls {
        Some(_) => Some(SocketAddr::from(([127, 0, 0, 1], sys::free_port()?))),
        None => None,
    };
    let tls = tls_addr.zip(tools.tls.as_ref());
    let conf = nginx_config(
        &ndir,
        addr,
        &app.socket,
        tools.nofile,
        max_body,
        tools.static_dir.as_deref(),
        tls,
    );
    let conf_path = ndir.join("nginx.conf");
    fs::write(&conf_path, conf).with_context(|| format!("write {}", conf_path.display()))?;
    let log = ndir.join("error.log");
    let mut cmd = Command::new(&tools.nginx);
    cmd.arg("-p")
        .arg(&ndir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(log_file(&ndir.join("stderr.log"))?);
    let mut guard = Guard::spawn("nginx", &mut cmd, tools.server_cpus.clone())?;
    wait_ready(&mut guard, &log, || {
        TcpStream::connect(addr).is_ok() && tls_addr.is_none_or(|t| TcpStream::connect(t).is_ok())
    })?;
    let mut stack = with_forked_workers(StackKind::Nginx, addr, guard, log)?;
    stack.tls_addr = tls_addr;
    Ok(stack)
}

/// nginx as in production, with the tuned buffers of docs/ARCHITECTURE.md: worker_processes auto, access_log
/// off, the stock uwsgi_params. keepalive_requests is raised so that nginx, like ringway,
/// does not close a busy keep-alive connection every 1000 requests. Its temp paths (bodies
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
/// client's cipher preference (OpenSSL's default, as in rustls), no HTTP/2 (ringway offers
/// http/1.1 only). It has the static route too, as ringway serves its routes on both
/// listeners.
pub fn nginx_config(
    dir: &Path,
    addr: SocketAddr,
    socket: &Path,
    nofile: u64,
    max_body_size: &str,
    static_dir: Option<&Path>,
    tls: Option<(SocketAddr, &CertFiles)>,
) -> String {
    let d = dir.display();
    let sock = socket.display();
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
        listen {tls_addr} ssl backlog=4096;
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
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:{sock};
        }}
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
{files_http}    server {{
        listen {addr} backlog=4096;
        server_name localhost;
        location / {{
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:{sock};
        }}
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
            Path::new("/tmp/x/app.sock"),
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
    fn nginx_serves_tls_with_the_certificate() {
        let files = CertFiles {
            cert: PathBuf::from("/tmp/x/c.pem"),
            key: PathBuf::from("/tmp/x/c.key"),
        };
        let conf = nginx_config(
            Path::new("/tmp/x"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            Path::new("/tmp/x/app.sock"),
            20000,
            "1m",
            None,
            Some((SocketAddr::from(([127, 0, 0, 1], 8443)), &files)),
        );
        for line in [
            "listen 127.0.0.1:8443 ssl backlog=4096;",
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
            Path::new("/tmp/x/app.sock"),
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
            Path::new("/tmp/x/app.sock"),
            20000,
            "1m",
            Some(Path::new("/tmp/x/files")),
            Some((SocketAddr::from(([127, 0, 0, 1], 8443)), &files)),
        );
        assert_eq!(conf.matches("location /files/ {").count(), 2, "{conf}");
        assert_eq!(conf.matches("uwsgi_pass unix:/tmp/x/app.sock;").count(), 2);
        assert_eq!(conf.matches("sendfile on;").count(), 1, "{conf}");
        assert!(conf.contains("listen 127.0.0.1:8443 ssl backlog=4096;"));
    }
}
