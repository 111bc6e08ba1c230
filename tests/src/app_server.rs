//! A Python HTTP server (gunicorn or Granian, from the test venv) serving one of the test
//! apps, on a free TCP port of 127.0.0.1 or on a unix socket in its own temp dir: the other
//! side of ringway's HTTP upstreams. Killed with its workers and reaped on drop.
//!
//! The WSGI apps run with `RINGWAY_PROXY_FIX=1` (Werkzeug's ProxyFix, trusting one proxy),
//! so that the environ shows the client's address, scheme and host as ringway forwarded
//! them.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::paths::{self, App};
use crate::wait::{poll_until, stop_child};

/// How long a server may take to load its app and accept.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// gunicorn, gthread workers (its sync workers close every connection: no keep-alive).
    Gunicorn,
    /// Granian, WSGI interface.
    Granian,
}

/// What it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// One of the WSGI test apps.
    Wsgi(App),
    /// `ws_echo.py`, the raw ASGI WebSocket echo (Granian only).
    WsEcho,
    /// `http_echo.py`: answers with what it received (method, target, headers, body length,
    /// remote address), for the nginx `proxy_pass` parity test.
    HttpEcho,
}

/// Where it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A free port of 127.0.0.1.
    Tcp,
    /// A unix socket in the server's temp dir.
    Unix,
}

/// A running app server; killed with its workers and reaped on drop.
pub struct AppServer {
    child: Child,
    tcp: Option<SocketAddr>,
    socket: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl AppServer {
    /// One gunicorn per name, each serving the raw app on TCP with one worker and answering
    /// with `X-Instance: NAME` (tests with several servers tell them apart so).
    pub fn named_gunicorns(names: &[&str]) -> Vec<AppServer> {
        names
            .iter()
            .map(|name| {
                let wsgi = Served::Wsgi(crate::App::Raw);
                AppServer::start_named(Server::Gunicorn, wsgi, Listen::Tcp, 1, Some(name))
            })
            .collect()
    }

    /// Starts `server` serving `served` on `listen`, with `workers` processes, and waits
    /// until it answers.
    pub fn start(server: Server, served: Served, listen: Listen, workers: u32) -> AppServer {
        AppServer::start_named(server, served, listen, workers, None)
    }

    /// [`AppServer::start`], with `instance` given to the app as RINGWAY_INSTANCE: the test
    /// apps then tag every answer with `X-Instance: NAME`, and `/fail-in/NAME` fails there.
    pub fn start_named(
        server: Server,
        served: Served,
        listen: Listen,
        workers: u32,
        instance: Option<&str>,
    ) -> AppServer {
        let dir = tempfile::Builder::new()
            .prefix("ringway-appserver-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("app.sock");
        let tcp = (listen == Listen::Tcp).then(|| {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
        });
        let log = dir.path().join("server.log");
        let log_file = File::create(&log).expect("log file");
        let venv = paths::venv();
        let target = match served {
            Served::Wsgi(app) => format!("{}:application", module(app)),
            Served::WsEcho => "ws_echo:app".to_owned(),
            Served::HttpEcho => "http_echo:application".to_owned(),
        };
        let mut cmd = match server {
            Server::Gunicorn => {
                let mut cmd = Command::new(venv.join("bin/gunicorn"));
                let bind = match tcp {
                    Some(addr) => addr.to_string(),
                    None => format!("unix:{}", socket.display()),
                };
                // Keep-alive longer than ringway's keepalive_timeout: the proxy, not the
                // server, should be the side that closes an idle connection.
                cmd.args([
                    "--bind",
                    &bind,
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "8",
                ])
                .args(["--keep-alive", "75", "--workers", &workers.to_string()])
                .arg("--chdir")
                .arg(paths::apps_dir())
                .arg(&target);
                cmd
            }
            Server::Granian => {
                let mut cmd = Command::new(venv.join("bin/granian"));
                let interface = match served {
                    Served::Wsgi(_) | Served::HttpEcho => "wsgi",
                    Served::WsEcho => "asgi",
                };
                cmd.args(["--interface", interface, "--http", "1"])
                    .args(["--workers", &workers.to_string()])
                    .arg("--working-dir")
                    .arg(paths::apps_dir());
                match tcp {
                    Some(addr) => cmd
                        .args(["--host", "127.0.0.1"])
                        .args(["--port", &addr.port().to_string()]),
                    None => cmd.arg("--uds").arg(&socket),
                };
                cmd.arg(&target);
                cmd
            }
        };
        if let Some(name) = instance {
            cmd.env("RINGWAY_INSTANCE", name);
        }
        cmd.env("RINGWAY_VALIDATE", "0")
            .env("RINGWAY_PROXY_FIX", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(paths::apps_dir())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {server:?}: {e}"));
        let mut started = AppServer {
            child,
            tcp,
            socket,
            log,
            _dir: dir,
        };
        started.wait_ready(server);
        started
    }

    fn wait_ready(&mut self, server: Server) {
        let mut exited = None;
        let ready = poll_until(START_LIMIT, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return true;
            }
            match self.tcp {
                Some(addr) => TcpStream::connect(addr).is_ok(),
                None => UnixStream::connect(&self.socket).is_ok(),
            }
        });
        if let Some(status) = exited {
            panic!(
                "{server:?} exited at start ({status}); log:\n{}",
                self.log()
            );
        }
        assert!(
            ready,
            "{server:?} did not accept within {START_LIMIT:?}; log:\n{}",
            self.log()
        );
    }

    /// The server as an entry of ringway's `servers`: `http://127.0.0.1:PORT` or
    /// `http://unix:/path`.
    pub fn upstream(&self) -> String {
        match self.tcp {
            Some(addr) => format!("http://{addr}"),
            None => format!("http://unix:{}", self.socket.display()),
        }
    }

    /// Its TCP address (panics for a unix socket).
    pub fn addr(&self) -> SocketAddr {
        self.tcp.expect("this server listens on a unix socket")
    }

    /// Its output so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5), true);
    }
}

/// The Python module of a test app.
fn module(app: App) -> &'static str {
    match app {
        App::Raw => "raw_wsgi",
        App::Flask => "demo_flask",
    }
}

/// The connections established at local port `port` (the server's side of them), as `ss`
/// lists them: what an upstream sees of a proxy's keep-alive pool.
pub fn established_at(port: u16) -> Vec<String> {
    sockets_at(port, "established")
}

/// The TCP sockets at local port `port` in `state` (`ss`'s names: `established`,
/// `syn-recv`, `fin-wait-1`...), a line each as `ss` lists them.
pub fn sockets_at(port: u16, state: &str) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-Htn", "state", state])
        .arg(format!("( sport = :{port} )"))
        .output()
        .expect("running ss (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}
