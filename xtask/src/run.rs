//! `cargo xtask run`: the whole stack on this machine, ringway → uWSGI → the demo Flask app,
//! or with `--app-server granian` / `gunicorn` ringway → that HTTP app server (an HTTP
//! upstream group with a keep-alive pool). ringway starts the app server itself (`[app]` in
//! the config written here), as it would in production: xtask watches ringway only.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::procs::{self, Interrupt, POLL, Service};
use crate::system_packages::{self, Need};
use crate::venv::{self, Venv};
use crate::workspace::Workspace;

/// How long ringway may take to say it listens: it starts uWSGI first and waits for its
/// socket (its own `app.ready_timeout` is 60s by default).
const STARTUP: Duration = Duration::from_secs(75);
/// Time between SIGTERM and SIGKILL: ringway drains (--shutdown-timeout, 10s by default),
/// then gives uWSGI up to `app.stop_timeout` (10s by default) to exit.
const RINGWAY_GRACE: Duration = Duration::from_secs(25);
/// sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Port ringway listens on (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of ringway's metrics endpoint (live page, /metrics, /stats) on 127.0.0.1.
    #[arg(long, default_value_t = 9145)]
    metrics_port: u16,
    /// Number of ringway worker threads (ringway's default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Build and run ringway in release mode.
    #[arg(long)]
    release: bool,
    /// Serve HTTPS (and HTTP/2) too, with a self-signed certificate for localhost made on
    /// first use (target/run/tls/), and redirect plain HTTP to it.
    #[arg(long)]
    tls: bool,
    /// Port of the HTTPS listener (127.0.0.1), with --tls.
    #[arg(long, default_value_t = 8443)]
    tls_port: u16,
    /// The app server ringway starts and fronts: uWSGI (uwsgi protocol, unix socket), or
    /// Granian or gunicorn (HTTP/1.1 with a keep-alive pool, on --app-port).
    #[arg(long, value_enum, default_value_t = AppServer::Uwsgi)]
    app_server: AppServer,
    /// Port (127.0.0.1) of the HTTP app server, with --app-server granian or gunicorn.
    #[arg(long, default_value_t = 8000)]
    app_port: u16,
}

/// The app servers `cargo xtask run` can put behind ringway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AppServer {
    Uwsgi,
    Granian,
    Gunicorn,
}

impl AppServer {
    fn name(self) -> &'static str {
        match self {
            AppServer::Uwsgi => "uWSGI",
            AppServer::Granian => "Granian",
            AppServer::Gunicorn => "gunicorn",
        }
    }
}

/// Where ringway reaches the app, and how it is started (`[app]`'s command and stop signal).
struct Upstream {
    /// The group's `servers` entry: `unix:PATH` (uwsgi) or `http://IP:PORT`.
    server: String,
    /// Idle keep-alive connections kept per server and core (HTTP upstreams only).
    keepalive: Option<usize>,
    command: Vec<String>,
    stop_signal: &'static str,
}

/// The demo's upstream pool size, as nginx users write `keepalive 32;`.
const KEEPALIVE: usize = 32;

/// Why the supervisor stopped watching the stack.
enum Event {
    Interrupted,
    Exited(&'static str, ExitStatus),
}

pub fn run(ws: &Workspace, args: &RunArgs) -> Result<u8> {
    system_packages::ensure(&[Need::Run])?;
    crate::build_ringway(ws, args.release)?;
    let ringway_bin = ws.ringway_bin(args.release);
    let venv = venv::ensure(ws)?;

    // ringway starts the app before it binds: a port taken would show only then, as
    // "ringway exited", after uWSGI's start.
    let mut ports = vec![("--port", args.port), ("--metrics-port", args.metrics_port)];
    if args.tls {
        ports.push(("--tls-port", args.tls_port));
    }
    for (flag, port) in ports {
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).with_context(|| {
            format!(
                "127.0.0.1:{port} is taken (is another `cargo xtask run` running?): pick \
                 another {flag}"
            )
        })?;
    }

    let run_dir = ws.run_dir();
    fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let upstream = match args.app_server {
        AppServer::Uwsgi => {
            let socket = run_dir.join("app.sock");
            if socket.as_os_str().len() > MAX_SOCKET_PATH {
                bail!(
                    "the socket path {} is longer than a unix socket address allows \
                     ({MAX_SOCKET_PATH} bytes): use a shorter CARGO_TARGET_DIR",
                    socket.display()
                );
            }
            remove_stale(&socket)?;
            Upstream {
                server: format!("unix:{}", socket.display()),
                keepalive: None,
                command: uwsgi_argv(&ws.apps_dir(), &venv, &socket),
                stop_signal: "SIGINT",
            }
        }
        http => {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.app_port));
            // ringway waits for the app's port to accept: one already taken would pass
            // for the app.
            TcpListener::bind(addr).with_context(|| {
                format!(
                    "{addr} is taken (is another `cargo xtask run` running?): pick another \
                     --app-port"
                )
            })?;
            http_upstream(&ws.apps_dir(), &venv, http, addr)
        }
    };

    // From here on Ctrl-C (and SIGTERM) only set a flag: the stack is stopped in order.
    let interrupt = Interrupt::install()?;

    let tls = if args.tls {
        let cert = crate::demo_cert::ensure(&run_dir.join("tls"))?;
        Some(DemoTls {
            port: args.tls_port,
            cert,
        })
    } else {
        None
    };
    let config = run_dir.join("ringway.toml");
    fs::write(
        &config,
        demo_config(&ws.apps_dir(), &upstream, tls.as_ref()),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;
    let mut cmd = Command::new(&ringway_bin);
    cmd.arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", args.port));
    if let Some(workers) = args.workers {
        cmd.arg("--workers").arg(workers.to_string());
    }
    let metrics = format!("127.0.0.1:{}", args.metrics_port);
    cmd.arg("--metrics").arg(&metrics);
    cmd.stderr(Stdio::piped());
    let mut ringway = Service::spawn("ringway", &mut cmd, RINGWAY_GRACE)?;
    let stderr = ringway
        .child_mut()
        .stderr
        .take()
        .context("ringway's stderr was not piped")?;
    let listening = forward_stderr(stderr);

    let url = match wait_for_listening(&listening, &mut [&mut ringway], &interrupt)? {
        Ok(url) => url,
        Err(event) => return finish(event, &mut [&mut ringway], &interrupt),
    };

    eprintln!();
    eprintln!("ringway is listening on {url}");
    eprintln!("  try: curl {url}/  (the app), curl {url}/static/style.css  (a file, from disk),");
    eprintln!("       curl {url}/report/report.txt  (the app hands the file to ringway)");
    if let Some(tls) = &tls {
        eprintln!(
            "  HTTPS: curl --cacert {} https://localhost:{}/  (plain HTTP redirects there)",
            tls.cert.cert.display(),
            tls.port
        );
    }
    eprintln!("  config: {}", config.display());
    announce_metrics(&metrics);
    eprintln!(
        "  Ctrl-C stops ringway, which stops {} after its drain",
        args.app_server.name()
    );
    eprintln!();

    let event = watch(&mut [&mut ringway], &interrupt)?;
    finish(event, &mut [&mut ringway], &interrupt)
}

/// Where to look at the figures.
fn announce_metrics(addr: &str) {
    eprintln!(
        "  live page: http://{addr}/  (Prometheus: http://{addr}/metrics, JSON: http://{addr}/stats)"
    );
}

/// The demo's HTTPS listener.
struct DemoTls {
    port: u16,
    cert: crate::demo_cert::DemoCert,
}

/// The demo's ringway config: the app server started and watched by ringway (`[app]`), the
/// app on `/` (uwsgi, or HTTP with a keep-alive pool), its static folder served from disk (as nginx users do with `location /static/`), an
/// internal folder the app's /report route hands out through X-Accel-Redirect, and with
/// `--tls` HTTPS with plain HTTP redirected to it.
fn demo_config(apps: &Path, upstream: &Upstream, tls: Option<&DemoTls>) -> String {
    let pool = upstream
        .keepalive
        .map_or(String::new(), |n| format!("keepalive = {n}\n"));
    let mut config = format!(
        r#"# Written by `cargo xtask run`: the demo stack's routes.
[upstreams.app]
servers = [{server}]
{pool}
[[routes]]
path = "/static/"
static = "{static_dir}"
expires = "1h"
precompressed = ["gzip"]

[[routes]]
path = "/protected/"
static = "{private_dir}"
internal = true

[[routes]]
path = "/"
upstream = "app"

[app]
command = [{command}]
stop_signal = "{stop_signal}"
"#,
        command = upstream
            .command
            .iter()
            .map(|a| toml_string(a))
            .collect::<Vec<_>>()
            .join(", "),
        server = toml_string(&upstream.server),
        stop_signal = upstream.stop_signal,
        static_dir = apps.join("static").display(),
        private_dir = apps.join("private").display(),
    );
    if let Some(tls) = tls {
        config.push_str(&format!(
            r#"
[tls]
listen = "127.0.0.1:{port}"
certificates = [{{ cert = "{cert}", key = "{key}" }}]
redirect_http = true
http2 = true
"#,
            port = tls.port,
            cert = tls.cert.cert.display(),
            key = tls.cert.key.display(),
        ));
    }
    config
}

/// uWSGI's command line, for `[app]`.
fn uwsgi_argv(apps: &Path, venv: &Venv, socket: &Path) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    let mut argv = vec![path(&venv.uwsgi())];
    argv.extend(
        [
            "--master",
            "--workers",
            "2",
            "--die-on-term",
            // No --vacuum: during a binary upgrade the old ringway's app would delete the
            // socket file the new one's app has just bound.
            "--need-app",
        ]
        .map(String::from),
    );
    argv.extend(["--socket".into(), path(socket)]);
    argv.extend(["--wsgi-file".into(), path(&apps.join("demo_flask.py"))]);
    argv.extend(["--callable".into(), "app".into()]);
    argv.extend(["--chdir".into(), path(apps)]);
    argv.extend(["--home".into(), path(&venv.dir)]);
    argv
}

/// Granian or gunicorn (threaded workers) serving the demo app over HTTP on `addr`, 2 workers
/// as uWSGI has, and
/// told to trust ringway's X-Forwarded-* headers where the server has a setting for it
/// (gunicorn's `--forwarded-allow-ips`; Granian 2.8 has none on its command line).
/// SIGTERM is both servers' graceful stop.
fn http_upstream(apps: &Path, venv: &Venv, server: AppServer, addr: SocketAddr) -> Upstream {
    let path = |p: &Path| p.display().to_string();
    let mut argv: Vec<String> = match server {
        AppServer::Granian => vec![
            path(&venv.bin("granian")),
            "--interface".into(),
            "wsgi".into(),
            "--workers".into(),
            "2".into(),
            "--host".into(),
            addr.ip().to_string(),
            "--port".into(),
            addr.port().to_string(),
            "--working-dir".into(),
            path(apps),
        ],
        // gthread workers keep connections open (the default sync ones close each after its
        // answer), longer than ringway's keepalive_timeout (60 s) so that ringway closes them.
        _ => vec![
            path(&venv.bin("gunicorn")),
            "--worker-class".into(),
            "gthread".into(),
            "--threads".into(),
            "4".into(),
            "--keep-alive".into(),
            "75".into(),
            "--workers".into(),
            "2".into(),
            "--bind".into(),
            addr.to_string(),
            "--chdir".into(),
            path(apps),
            "--forwarded-allow-ips".into(),
            addr.ip().to_string(),
        ],
    };
    argv.push("demo_flask:app".into());
    Upstream {
        server: format!("http://{addr}"),
        keepalive: Some(KEEPALIVE),
        command: argv,
        stop_signal: "SIGTERM",
    }
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn remove_stale(socket: &Path) -> Result<()> {
    if socket.exists() || socket.symlink_metadata().is_ok() {
        if UnixStream::connect(socket).is_ok() {
            bail!(
                "{} already accepts connections: is another `cargo xtask run` running?",
                socket.display()
            );
        }
        fs::remove_file(socket).with_context(|| format!("cannot remove {}", socket.display()))?;
    }
    Ok(())
}

/// Copies ringway's stderr to ours, line by line, and reports the URL of the first
/// `listening on http://...` line on the returned channel.
fn forward_stderr(stderr: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        let mut announced = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            if !announced && let Some(url) = listening_url(&text) {
                announced = true;
                let _ = tx.send(url);
            }
        }
    });
    rx
}

/// The URL in a `listening on http://IP:PORT` log line (colour codes and all).
fn listening_url(line: &str) -> Option<String> {
    let start = line.find("listening on http://")? + "listening on ".len();
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '\u{1b}' && *c != '"')
        .collect();
    Some(url.trim_end_matches(['/', ',', '.', ';']).to_owned())
}

fn wait_for_listening(
    listening: &mpsc::Receiver<String>,
    services: &mut [&mut Service],
    interrupt: &Interrupt,
) -> Result<Result<String, Event>> {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Some(event) = poll(services, interrupt)? {
            return Ok(Err(event));
        }
        match listening.recv_timeout(POLL) {
            Ok(url) => return Ok(Ok(url)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(POLL),
        }
        if Instant::now() > deadline {
            bail!("ringway did not log `listening on http://...` within {STARTUP:?}");
        }
    }
}

/// Watches the running stack until Ctrl-C or until a service ends.
fn watch(services: &mut [&mut Service], interrupt: &Interrupt) -> Result<Event> {
    loop {
        if let Some(event) = poll(services, interrupt)? {
            return Ok(event);
        }
        thread::sleep(POLL);
    }
}

fn poll(services: &mut [&mut Service], interrupt: &Interrupt) -> Result<Option<Event>> {
    if interrupt.is_set() {
        return Ok(Some(Event::Interrupted));
    }
    for service in services.iter_mut() {
        if let Some(status) = service.try_wait()? {
            return Ok(Some(Event::Exited(service.name, status)));
        }
    }
    Ok(None)
}

/// Stops every service, in the order given, and picks xtask's exit code; a second Ctrl-C
/// has them end what is in flight at once.
fn finish(event: Event, services: &mut [&mut Service], interrupt: &Interrupt) -> Result<u8> {
    match &event {
        Event::Interrupted => {
            eprintln!("\nxtask: interrupted: shutting the stack down (Ctrl-C again: now)")
        }
        Event::Exited(name, status) => {
            eprintln!(
                "xtask: {name} {} unexpectedly: stopping the rest",
                procs::describe(*status)
            );
        }
    }
    for service in services.iter_mut() {
        let status = service.stop_unless(|| interrupt.is_insisted())?;
        eprintln!("xtask: {} {}", service.name, procs::describe(status));
    }
    Ok(match event {
        Event::Interrupted => 0,
        Event::Exited(_, status) => procs::failure_code(status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(config: &str) -> toml::Value {
        toml::from_str(config).unwrap_or_else(|err| panic!("{err}:\n{config}"))
    }

    #[test]
    fn the_uwsgi_demo_is_a_uwsgi_group_that_ringway_starts() {
        let venv = Venv {
            dir: PathBuf::from("/w/target/venv"),
            ours: true,
        };
        let socket = Path::new("/w/target/run/app.sock");
        let upstream = Upstream {
            server: format!("unix:{}", socket.display()),
            keepalive: None,
            command: uwsgi_argv(Path::new("/w/tests/apps"), &venv, socket),
            stop_signal: "SIGINT",
        };
        let config = parse(&demo_config(Path::new("/w/tests/apps"), &upstream, None));
        let group = &config["upstreams"]["app"];
        assert_eq!(
            group["servers"][0].as_str(),
            Some("unix:/w/target/run/app.sock")
        );
        assert!(group.get("keepalive").is_none(), "no pool for uwsgi");
        assert_eq!(
            config["app"]["command"][0].as_str(),
            Some("/w/target/venv/bin/uwsgi")
        );
        assert_eq!(config["app"]["stop_signal"].as_str(), Some("SIGINT"));
    }

    #[test]
    fn the_granian_demo_is_an_http_group_with_a_pool() {
        let venv = Venv {
            dir: PathBuf::from("/w/target/venv"),
            ours: true,
        };
        let apps = Path::new("/w/tests/apps");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8000));
        let upstream = http_upstream(apps, &venv, AppServer::Granian, addr);
        let config = parse(&demo_config(apps, &upstream, None));
        let group = &config["upstreams"]["app"];
        assert_eq!(group["servers"][0].as_str(), Some("http://127.0.0.1:8000"));
        assert_eq!(group["keepalive"].as_integer(), Some(32));
        let command: Vec<&str> = config["app"]["command"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(command[0], "/w/target/venv/bin/granian");
        for pair in [
            ["--interface", "wsgi"],
            ["--port", "8000"],
            ["--workers", "2"],
        ] {
            assert!(
                command.windows(2).any(|w| w == pair),
                "{pair:?} in {command:?}"
            );
        }
        assert_eq!(command.last(), Some(&"demo_flask:app"));
        assert_eq!(config["app"]["stop_signal"].as_str(), Some("SIGTERM"));
        let routes = config["routes"].as_array().map_or(0, |r| r.len());
        assert_eq!(routes, 3, "the static, internal and app routes stay");
    }

    #[test]
    fn the_gunicorn_demo_trusts_ringway_forwarded_headers() {
        let venv = Venv {
            dir: PathBuf::from("/w/target/venv"),
            ours: true,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8001));
        let upstream = http_upstream(Path::new("/w/tests/apps"), &venv, AppServer::Gunicorn, addr);
        assert_eq!(upstream.server, "http://127.0.0.1:8001");
        assert_eq!(upstream.command[0], "/w/target/venv/bin/gunicorn");
        assert!(
            upstream
                .command
                .windows(2)
                .any(|w| w == ["--forwarded-allow-ips", "127.0.0.1"]),
            "{:?}",
            upstream.command
        );
        assert!(
            upstream
                .command
                .windows(2)
                .any(|w| w == ["--bind", "127.0.0.1:8001"])
        );
        assert!(
            upstream
                .command
                .windows(2)
                .any(|w| w == ["--worker-class", "gthread"]),
            "sync workers would close every connection: {:?}",
            upstream.command
        );
    }

    #[test]
    fn finds_the_url_in_log_lines() {
        assert_eq!(
            listening_url("listening on http://127.0.0.1:8080\n").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            listening_url(
                "\u{1b}[2m2026-01-01T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ringway: \
                 listening on http://127.0.0.1:8081\u{1b}[0m"
            )
            .as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(
            listening_url("INFO listening on http://[::1]:80, 2 workers").as_deref(),
            Some("http://[::1]:80")
        );
        assert_eq!(listening_url("starting"), None);
    }
}
