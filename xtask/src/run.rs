//! `cargo xtask run`: the whole stack on this machine, ringway → uWSGI → the demo Flask app.
//! ringway starts uWSGI itself (`[app]` in the config written here), as it would in
//! production: xtask watches ringway only.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::procs::{self, Interrupt, POLL, Service};
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
    /// Serve HTTPS too, with a self-signed certificate for localhost made on first use
    /// (target/run/tls/), and redirect plain HTTP to it.
    #[arg(long)]
    tls: bool,
    /// Port of the HTTPS listener (127.0.0.1), with --tls.
    #[arg(long, default_value_t = 8443)]
    tls_port: u16,
}

/// Why the supervisor stopped watching the stack.
enum Event {
    Interrupted,
    Exited(&'static str, ExitStatus),
}

pub fn run(ws: &Workspace, args: &RunArgs) -> Result<u8> {
    crate::build_ringway(ws, args.release)?;
    let ringway_bin = ws.ringway_bin(args.release);
    let venv = venv::ensure(ws)?;

    let run_dir = ws.run_dir();
    fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let socket = run_dir.join("app.sock");
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        bail!(
            "the socket path {} is longer than a unix socket address allows \
             ({MAX_SOCKET_PATH} bytes): use a shorter CARGO_TARGET_DIR",
            socket.display()
        );
    }
    remove_stale(&socket)?;

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
    let app = uwsgi_argv(ws, &venv, &socket);
    fs::write(&config, demo_config(ws, &socket, &app, tls.as_ref()))
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
        Err(event) => return finish(event, &mut [&mut ringway]),
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
    eprintln!("  Ctrl-C stops ringway, which stops uWSGI after its drain");
    eprintln!();

    let event = watch(&mut [&mut ringway], &interrupt)?;
    finish(event, &mut [&mut ringway])
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

/// The demo's ringway config: uWSGI started and watched by ringway (`[app]`), the app on
/// `/`, its static folder served from disk (as nginx users do with `location /static/`), an
/// internal folder the app's /report route hands out through X-Accel-Redirect, and with
/// `--tls` HTTPS with plain HTTP redirected to it.
fn demo_config(ws: &Workspace, socket: &Path, app: &[String], tls: Option<&DemoTls>) -> String {
    let apps = ws.apps_dir();
    let mut config = format!(
        r#"# Written by `cargo xtask run`: the demo stack's routes.
[upstreams.app]
servers = ["unix:{socket}"]

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
stop_signal = "SIGINT"
"#,
        command = app
            .iter()
            .map(|a| toml_string(a))
            .collect::<Vec<_>>()
            .join(", "),
        socket = socket.display(),
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
"#,
            port = tls.port,
            cert = tls.cert.cert.display(),
            key = tls.cert.key.display(),
        ));
    }
    config
}

/// uWSGI's command line, for `[app]`.
fn uwsgi_argv(ws: &Workspace, venv: &Venv, socket: &Path) -> Vec<String> {
    let apps = ws.apps_dir();
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
    argv.extend(["--chdir".into(), path(&apps)]);
    argv.extend(["--home".into(), path(&venv.dir)]);
    argv
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

/// Stops every service, in the order given, and picks xtask's exit code.
fn finish(event: Event, services: &mut [&mut Service]) -> Result<u8> {
    match &event {
        Event::Interrupted => eprintln!("\nxtask: interrupted: shutting the stack down"),
        Event::Exited(name, status) => {
            eprintln!(
                "xtask: {name} {} unexpectedly: stopping the rest",
                procs::describe(*status)
            );
        }
    }
    for service in services.iter_mut() {
        let status = service.stop()?;
        eprintln!("xtask: {} {}", service.name, procs::describe(status));
    }
    Ok(match event {
        Event::Interrupted => 0,
        Event::Exited(_, status) => procs::failure_code(status),
    })
}

#[cfg(test)]
mod tests {
    use super::listening_url;

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
