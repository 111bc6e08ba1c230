//! A uWSGI master with its workers, serving one of the test apps on a unix socket in its own
//! temp dir (or on a free TCP port of 127.0.0.1). Several can run side by side, each named
//! (the apps then tag every answer with `X-Instance: NAME`).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::client::{Conn, READ_TIMEOUT, Response};
use crate::paths::{self, App};
use crate::wait::{poll_until, stop_child};

/// How long uWSGI may take to load the app and accept on its socket.
const START_LIMIT: Duration = Duration::from_secs(30);
/// The response header the apps add when uWSGI runs with an instance name.
pub const INSTANCE_HEADER: &str = "X-Instance";

/// A running uWSGI; killed (with its workers) and reaped on drop, temp dir removed.
pub struct Uwsgi {
    child: Child,
    socket: PathBuf,
    /// Set when uWSGI listens on TCP instead of the unix socket.
    tcp: Option<SocketAddr>,
    log: PathBuf,
    dir: TempDir,
    instance: Option<String>,
    /// What it was started with, to start it again the same way.
    opts: UwsgiOptions,
}

/// Options for [`Uwsgi::start_with`].
#[derive(Debug, Clone)]
pub struct UwsgiOptions {
    /// The app to serve.
    pub app: App,
    /// `--workers`.
    pub workers: u32,
    /// `--buffer-size` (uWSGI's default is 4096).
    pub buffer_size: Option<u32>,
    /// Run the app under `wsgiref.validate` (RINGWAY_VALIDATE=1); on by default.
    pub validate: bool,
    /// `--listen` (the socket's backlog; uWSGI's default is 100).
    pub listen: Option<u32>,
    /// Listen on a free TCP port of 127.0.0.1 instead of a unix socket.
    pub tcp: bool,
    /// `--socket-timeout` in seconds. uWSGI's default of 4 s also bounds a blocked write:
    /// a worker whose answer nobody reads for 4 s drops it and moves on, which would hide
    /// whether the proxy in front frees it.
    pub socket_timeout: Option<u32>,
    /// A name given to the app as RINGWAY_INSTANCE: every answer then carries
    /// `X-Instance: NAME` ([`INSTANCE_HEADER`]), so a test can tell which uWSGI served it.
    pub instance: Option<String>,
    /// Mount points (`/api`) of the same app, with `--manage-script-name`: uWSGI then splits
    /// a PATH_INFO under a mount point into SCRIPT_NAME and the rest itself. That is what
    /// nginx's `uwsgi_modifier1 30` mounts need under Python 3, where uWSGI's own
    /// modifier 30 handling leaves PATH_INFO whole (it only rewrites bytes values, and
    /// Python 3 environ values are str).
    pub mounts: Vec<String>,
}

impl UwsgiOptions {
    /// Two workers, default buffer size, validator on.
    pub fn new(app: App) -> Self {
        UwsgiOptions {
            app,
            workers: 2,
            buffer_size: None,
            validate: true,
            listen: None,
            tcp: false,
            socket_timeout: None,
            instance: None,
            mounts: Vec::new(),
        }
    }

    /// Two workers, default buffer size, validator on, answers tagged `X-Instance: name`.
    pub fn named(app: App, name: &str) -> Self {
        UwsgiOptions {
            instance: Some(name.to_owned()),
            ..UwsgiOptions::new(app)
        }
    }
}

impl Uwsgi {
    /// Starts `app` with two workers and waits until the socket accepts.
    pub fn start(app: App) -> Uwsgi {
        Uwsgi::start_with(UwsgiOptions::new(app))
    }

    /// Starts several uWSGIs at once (their apps load in parallel) and waits until each
    /// accepts; in the order given.
    pub fn start_all(all: Vec<UwsgiOptions>) -> Vec<Uwsgi> {
        std::thread::scope(|scope| {
            let starting: Vec<_> = all
                .into_iter()
                .map(|opts| scope.spawn(move || Uwsgi::start_with(opts)))
                .collect();
            starting
                .into_iter()
                .map(|s| s.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }

    /// Starts uWSGI with `opts` and waits until the socket accepts.
    pub fn start_with(opts: UwsgiOptions) -> Uwsgi {
        let dir = tempfile::Builder::new()
            .prefix("ringway-uwsgi-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("app.sock");
        let tcp = opts.tcp.then(|| {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
        });
        let log = dir.path().join("uwsgi.log");
        let child = spawn(&opts, &socket, tcp, &log);
        let mut uwsgi = Uwsgi {
            child,
            socket,
            tcp,
            log,
            dir,
            instance: opts.instance.clone(),
            opts,
        };
        uwsgi.wait_ready();
        uwsgi
    }

    fn wait_ready(&mut self) {
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
            panic!("uWSGI exited at start ({status}); log:\n{}", self.log());
        }
        assert!(
            ready,
            "uWSGI did not accept on {} within {START_LIMIT:?}; log:\n{}",
            self.socket.display(),
            self.log()
        );
    }

    /// Kills the master and its workers at once (SIGKILL, as a crash would): nothing accepts
    /// on its socket any more until [`Uwsgi::restart`].
    pub fn kill(&mut self) {
        stop_child(&mut self.child, libc::SIGKILL, Duration::from_secs(5), true);
        // The workers hold the listening socket too, and die a moment after the master.
        let gone = poll_until(START_LIMIT, || match self.tcp {
            Some(addr) => TcpStream::connect(addr).is_err(),
            None => UnixStream::connect(&self.socket).is_err(),
        });
        assert!(gone, "uWSGI's socket still accepts after the kill");
    }

    /// Starts it again after [`Uwsgi::kill`], on the same socket (or port) with the same
    /// options, and waits until it accepts.
    pub fn restart(&mut self) {
        assert!(
            !matches!(self.child.try_wait(), Ok(None)),
            "restart: uWSGI is still running"
        );
        self.child = spawn(&self.opts, &self.socket, self.tcp, &self.log);
        self.wait_ready();
    }

    /// The unix socket path (panics for a TCP uWSGI).
    pub fn socket(&self) -> &Path {
        assert!(self.tcp.is_none(), "this uWSGI listens on TCP");
        &self.socket
    }

    /// The socket as ringway's `--upstream` value: `unix:/path` or `127.0.0.1:PORT`.
    pub fn upstream(&self) -> String {
        match self.tcp {
            Some(addr) => addr.to_string(),
            None => format!("unix:{}", self.socket.display()),
        }
    }

    /// The instance name its answers carry in `X-Instance`, if it was given one.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The temp dir this uWSGI lives in (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends one uwsgi packet (`vars`, then `body`) straight to the socket, as a proxy would,
    /// and reads uWSGI's answer (plain HTTP, ended by the close).
    pub fn request(&self, vars: &[(&str, &str)], body: &[u8]) -> io::Result<Response> {
        let stream = UnixStream::connect(self.socket())?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        let mut conn = Conn::new(stream);
        let mut packet = encode_packet(vars);
        packet.extend_from_slice(body);
        conn.send(&packet)?;
        conn.read_response()
    }

    /// `GET path` straight to the socket with the vars a proxy would send at least: what
    /// the app answers before any proxy touches it.
    pub fn get(&self, path: &str) -> io::Result<Response> {
        let (path_info, query) = path.split_once('?').unwrap_or((path, ""));
        let vars = [
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", path),
            ("PATH_INFO", path_info),
            ("QUERY_STRING", query),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_HOST", "localhost"),
        ];
        self.request(&vars, b"")
    }

    /// uWSGI's log so far (stdout and stderr), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts the uWSGI master of `opts` on `socket` (or `tcp`), its output appended to `log`.
fn spawn(opts: &UwsgiOptions, socket: &Path, tcp: Option<SocketAddr>, log: &Path) -> Child {
    // Appended to: a restarted uWSGI's log follows the first one's.
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("uwsgi log file");
    let command = command_line(opts, socket, tcp);
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup log"))
        .stderr(log_file)
        .process_group(0);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", command.program.display()))
}

/// How the suite runs uWSGI: the program, its arguments and the environment it needs.
#[derive(Debug, Clone)]
pub struct UwsgiCommand {
    /// The uWSGI binary of the test venv.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<std::ffi::OsString>,
    /// Variables the apps read.
    pub env: Vec<(String, String)>,
}

impl UwsgiCommand {
    /// The program and its arguments as text, e.g. for ringway's `[app] command`.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_str().expect("a UTF-8 path").to_owned())
            .collect()
    }
}

/// The command line of a uWSGI master serving `opts` on `socket` (or `tcp`): what the
/// suite's [`Uwsgi`] runs, and what a test hands ringway's `[app]` to run.
pub fn command_line(opts: &UwsgiOptions, socket: &Path, tcp: Option<SocketAddr>) -> UwsgiCommand {
    let venv = paths::venv();
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut arg = |a: &dyn AsRef<std::ffi::OsStr>| args.push(a.as_ref().to_owned());
    arg(&"--socket");
    match tcp {
        Some(addr) => arg(&addr.to_string()),
        None => arg(&socket),
    }
    for a in ["--master", "--die-on-term", "--need-app", "--strict"] {
        arg(&a);
    }
    arg(&"--workers");
    arg(&opts.workers.to_string());
    arg(&"--virtualenv");
    arg(&venv);
    arg(&"--wsgi-file");
    arg(&opts.app.file());
    arg(&"--chdir");
    arg(&paths::apps_dir());
    if let Some(backlog) = opts.listen {
        arg(&"--listen");
        arg(&backlog.to_string());
    }
    if let Some(size) = opts.buffer_size {
        arg(&"--buffer-size");
        arg(&size.to_string());
    }
    if let Some(seconds) = opts.socket_timeout {
        arg(&"--socket-timeout");
        arg(&seconds.to_string());
    }
    if !opts.mounts.is_empty() {
        arg(&"--manage-script-name");
    }
    for mount in &opts.mounts {
        let mut spec = std::ffi::OsString::from(format!("{mount}="));
        spec.push(opts.app.file());
        arg(&"--mount");
        arg(&spec);
    }
    let mut env = vec![
        (
            "RINGWAY_VALIDATE".to_owned(),
            if opts.validate { "1" } else { "0" }.to_owned(),
        ),
        ("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned()),
    ];
    if let Some(name) = &opts.instance {
        env.push(("RINGWAY_INSTANCE".to_owned(), name.clone()));
    }
    UwsgiCommand {
        program: paths::uwsgi_bin(),
        args,
        env,
    }
}

/// A uwsgi request packet: `modifier1 0 | u16 LE vars size | modifier2 0`, then each var as
/// `u16 LE key length, key, u16 LE value length, value`. Panics past the 64 KiB the size
/// field can say.
pub fn encode_packet(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (key, value) in vars {
        for part in [key, value] {
            let len = u16::try_from(part.len()).expect("var under 64 KiB");
            block.extend_from_slice(&len.to_le_bytes());
            block.extend_from_slice(part.as_bytes());
        }
    }
    let size = u16::try_from(block.len()).expect("vars block under 64 KiB");
    let mut packet = vec![0u8];
    packet.extend_from_slice(&size.to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    packet
}

impl Drop for Uwsgi {
    fn drop(&mut self) {
        // SIGINT makes the master kill its workers at once; then the group is SIGKILLed in
        // case a worker lingers.
        stop_child(&mut self.child, libc::SIGINT, Duration::from_secs(5), true);
    }
}
