//! The ringway daemon under test: started with `--listen 127.0.0.1:0`, ready when it logs
//! `listening on http://IP:PORT`; its stderr is kept for assertions. A TOML config file, when
//! given, is written to a temp dir of its own and passed with `--config`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::paths;
use crate::uwsgi::Uwsgi;
use crate::wait::{poll_until, send_signal, stop_child};

const START_LIMIT: Duration = Duration::from_secs(15);
const READY_MARK: &str = "listening on http://";
/// The line ringway logs for its TLS listener, before the ready mark.
const TLS_MARK: &str = "listening on https://";
/// The line ringway logs once its metrics endpoint listens.
const METRICS_MARK: &str = "metrics on http://";
/// The config file's name in its temp dir.
const CONFIG_FILE: &str = "ringway.toml";

/// A running ringway; killed and reaped on drop (its config file's temp dir removed).
pub struct Ringway {
    child: Option<Child>,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
    config: Option<ConfigFile>,
}

/// The TOML file given with `--config`, in a temp dir removed on drop.
struct ConfigFile {
    _dir: TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn write(text: &str) -> ConfigFile {
        let dir = tempfile::Builder::new()
            .prefix("ringway-config-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, text).expect("write the config file");
        ConfigFile { _dir: dir, path }
    }
}

/// How a ringway that was expected to refuse its configuration ended.
#[derive(Debug)]
pub struct Refusal {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr (ANSI colours removed).
    pub stderr: String,
    /// The config file it was given (already removed), as the path it was passed under.
    pub config: Option<PathBuf>,
}

/// A ringway process whose stderr is being read line by line.
struct Spawned {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: thread::JoinHandle<()>,
    /// Gets the address of the first `listening on` line; disconnects when stderr closes.
    ready: mpsc::Receiver<SocketAddr>,
}

/// A file a process holds open, as `/proc/PID/fd` shows it.
#[derive(Debug, Clone)]
pub struct OpenFile {
    /// `/proc/PID/fd/N`: opening or stat-ing it reaches the file even once it has no name.
    pub fd: PathBuf,
    /// Where the link points, e.g. `/tmp/dir/#1234 (deleted)`.
    pub target: String,
}

impl OpenFile {
    /// The file's current size (0 once the fd is closed).
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.fd).map_or(0, |m| m.len())
    }
}

/// Command line for [`Ringway`]: the upstreams, a config file, any extra flags.
#[derive(Debug, Clone)]
pub struct RingwayBuilder {
    listen: String,
    /// A command line ringway's is appended to (`ip netns exec NAME`).
    prefix: Vec<String>,
    upstreams: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    workers: u32,
    config: Option<String>,
}

impl RingwayBuilder {
    /// Starts ringway with `--config FILE`, FILE holding `toml`. Flags still given on the
    /// command line (`--listen 127.0.0.1:0`, `--workers`, `--document-root`, `--metrics off`
    /// unless asked otherwise, and whatever [`RingwayBuilder::arg`] adds) win over the file;
    /// no `--upstream` is passed unless [`RingwayBuilder::upstream`] is called, so the file's
    /// upstreams and routes are what ringway serves.
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }

    /// `--listen ADDR` instead of `127.0.0.1:0` (a second ringway on the address of a first,
    /// as a binary upgrade starts it).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr.to_string();
        self
    }

    /// No `--listen`: the config file's `listen = []` leaves ringway TLS only, and it is
    /// ready at its `listening on https://` line ([`Ringway::addr`] is then the TLS address).
    pub fn tls_only(mut self) -> Self {
        self.listen = String::new();
        self
    }

    /// The line that says ringway is ready: the last `listening on` one it logs.
    fn ready_mark(&self) -> &'static str {
        if self.listen.is_empty() {
            TLS_MARK
        } else {
            READY_MARK
        }
    }

    /// Runs ringway in the network namespace `ns` (its address is then reachable only from
    /// there).
    pub fn in_netns(mut self, ns: &crate::netns::NetNs) -> Self {
        self.prefix = ns.prefix();
        self
    }

    /// Runs ringway under `command`, a program that runs the rest of its command line (as
    /// `prlimit --nofile=256:4096` does).
    pub fn under(mut self, command: &[&str]) -> Self {
        self.prefix = command.iter().map(|&a| a.to_owned()).collect();
        self
    }

    /// Adds `--upstream VALUE` (`unix:/path` or `IP:PORT`).
    pub fn upstream(mut self, value: impl Into<String>) -> Self {
        self.upstreams.push(value.into());
        self
    }

    /// Adds a flag and its value, e.g. `.arg("--max-body-size", "1k")`.
    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.args.push(flag.to_owned());
        self.args.push(value.to_owned());
        self
    }

    /// Adds a flag without a value, e.g. `--allow-underscores-in-headers`.
    pub fn flag(mut self, flag: &str) -> Self {
        self.args.push(flag.to_owned());
        self
    }

    /// Sets an environment variable for ringway, e.g. `.env("RUST_LOG", "info")` (otherwise
    /// it inherits the test's environment).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `--workers N` (default 1: the machine is shared).
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n;
        self
    }

    /// The command line, with `--config FILE` when there is a file.
    fn command(&self, config: Option<&Path>) -> Command {
        let bin = paths::ringway_bin();
        let mut cmd = match self.prefix.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&bin);
                cmd
            }
            None => Command::new(&bin),
        };
        if !self.listen.is_empty() {
            cmd.args(["--listen", &self.listen]);
        }
        if let Some(path) = config {
            cmd.arg("--config").arg(path);
        }
        for upstream in &self.upstreams {
            cmd.args(["--upstream", upstream]);
        }
        cmd.args(["--workers", &self.workers.to_string()])
            .arg("--document-root")
            .arg(paths::document_root());
        // The metrics endpoint defaults to a fixed port (and loads the eBPF probes): tests
        // run many ringways at once and use no fixed port, so it is off unless asked for.
        if !self.args.iter().any(|a| a == "--metrics") {
            cmd.args(["--metrics", "off"]);
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: if RINGWAY_BIN is a wrapper, its children die with it.
            .process_group(0);
        cmd
    }

    /// Spawns `cmd` and a thread that collects its stderr and reports the `listening on` line.
    fn spawn(cmd: &mut Command, mark: &'static str) -> Spawned {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {:?}: {e}", cmd.get_program()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready) = mpsc::channel();
        let pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        let reader = thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(pipe).split(b'\n') {
                let Ok(line) = line else { break };
                let line = strip_ansi(&String::from_utf8_lossy(&line));
                // Kept before the address is told, so a test that has it finds the line.
                {
                    let mut all = sink.lock().expect("stderr lock");
                    all.push_str(&line);
                    all.push('\n');
                }
                if let (Some(addr), Some(tx)) = (addr_after(&line, mark), ready_tx.as_ref()) {
                    let _ = tx.send(addr);
                    ready_tx = None;
                }
            }
        });
        Spawned {
            child,
            stderr,
            reader,
            ready,
        }
    }

    /// Starts ringway and waits for its `listening on` line.
    pub fn start(self) -> Ringway {
        let config = self.config.as_deref().map(ConfigFile::write);
        let mut cmd = self.command(config.as_ref().map(|c| c.path.as_path()));
        let Spawned {
            mut child,
            stderr,
            reader,
            ready,
        } = RingwayBuilder::spawn(&mut cmd, self.ready_mark());
        let addr = match ready.recv_timeout(START_LIMIT) {
            Ok(addr) => addr,
            Err(e) => {
                // Stderr closed early: ringway exited (say, on a flag it does not know).
                let what = match e {
                    mpsc::RecvTimeoutError::Disconnected => "exited without".to_owned(),
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("printed no line within {START_LIMIT:?} like")
                    }
                };
                let status = stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), true);
                let _ = reader.join();
                let log = stderr.lock().expect("stderr lock").clone();
                let file = config.as_ref().map_or_else(String::new, |c| {
                    format!(
                        "\nconfig file {}:\n{}",
                        c.path.display(),
                        self.config_text()
                    )
                });
                panic!(
                    "ringway ({}) {what} `{}IP:PORT` (status {status:?}); args {:?}; \
                     stderr:\n{log}{file}",
                    cmd.get_program().to_string_lossy(),
                    self.ready_mark(),
                    cmd.get_args().collect::<Vec<_>>()
                );
            }
        };
        Ringway {
            child: Some(child),
            addr,
            stderr,
            reader: Some(reader),
            config,
        }
    }

    /// Runs ringway expecting it to refuse its configuration: waits up to the start limit for
    /// it to exit, and returns how it ended. Panics if it starts listening instead (it is
    /// killed first) or neither listens nor exits in time.
    pub fn start_refused(self) -> Refusal {
        let config = self.config.as_deref().map(ConfigFile::write);
        let mut cmd = self.command(config.as_ref().map(|c| c.path.as_path()));
        let Spawned {
            mut child,
            stderr,
            reader,
            ready,
        } = RingwayBuilder::spawn(&mut cmd, self.ready_mark());
        let outcome = ready.recv_timeout(START_LIMIT);
        let mut status = None;
        if matches!(outcome, Err(mpsc::RecvTimeoutError::Disconnected)) {
            // Stderr closed: the process is exiting; give it a moment to be reaped.
            poll_until(Duration::from_secs(5), || {
                status = child.try_wait().ok().flatten();
                status.is_some()
            });
        }
        let status = match status {
            Some(status) => status,
            None => {
                stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), true);
                let _ = reader.join();
                let log = stderr.lock().expect("stderr lock").clone();
                let what = match outcome {
                    Ok(addr) => format!("started listening on {addr}"),
                    Err(_) => format!("neither exited nor listened within {START_LIMIT:?}"),
                };
                panic!(
                    "ringway should have refused this configuration but {what}; config:\n{}\n\
                     stderr:\n{log}",
                    self.config_text()
                );
            }
        };
        let _ = reader.join();
        let stderr = stderr.lock().expect("stderr lock").clone();
        Refusal {
            status,
            stderr,
            config: config.as_ref().map(|c| c.path.clone()),
        }
    }

    /// The config file's text, for messages.
    fn config_text(&self) -> &str {
        self.config.as_deref().unwrap_or("(none)")
    }
}

impl Ringway {
    /// A builder with no upstream yet.
    pub fn builder() -> RingwayBuilder {
        RingwayBuilder {
            listen: "127.0.0.1:0".to_owned(),
            prefix: Vec::new(),
            upstreams: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            workers: 1,
            config: None,
        }
    }

    /// ringway started from the TOML config `toml` (see [`RingwayBuilder::config`]).
    pub fn with_config(toml: impl Into<String>) -> RingwayBuilder {
        Ringway::builder().config(toml)
    }

    /// A builder with `uwsgi` as the upstream.
    pub fn with(uwsgi: &Uwsgi) -> RingwayBuilder {
        Ringway::builder().upstream(uwsgi.upstream())
    }

    /// ringway with defaults in front of `uwsgi`.
    pub fn start(uwsgi: &Uwsgi) -> Ringway {
        Ringway::with(uwsgi).start()
    }

    /// Where ringway listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where ringway accepts TLS (`--tls-listen`, `[tls] listen`), from its
    /// `listening on https://IP:PORT` line (logged before the ready line); panics, with the
    /// log, when there is none.
    pub fn tls_addr(&self) -> SocketAddr {
        let log = self.stderr();
        log.lines()
            .find_map(|line| addr_after(line, TLS_MARK))
            .unwrap_or_else(|| panic!("ringway logged no `{TLS_MARK}IP:PORT` line:\n{log}"))
    }

    /// Every address ringway accepts plain HTTP on (`--listen` given `count` times), from
    /// its `listening on http://IP:PORT` lines, in order; waits up to 10 s for them all.
    pub fn addrs(&self, count: usize) -> Vec<SocketAddr> {
        self.logged_addrs(READY_MARK, count)
    }

    /// Every address ringway accepts TLS on (`--tls-listen` given `count` times), as
    /// [`Ringway::addrs`] finds the plain ones.
    pub fn tls_addrs(&self, count: usize) -> Vec<SocketAddr> {
        self.logged_addrs(TLS_MARK, count)
    }

    fn logged_addrs(&self, mark: &str, count: usize) -> Vec<SocketAddr> {
        let mut found = Vec::new();
        poll_until(Duration::from_secs(10), || {
            found = self
                .stderr()
                .lines()
                .filter_map(|line| addr_after(line, mark))
                .collect();
            found.len() >= count
        });
        assert_eq!(found.len(), count, "`{mark}` lines:\n{}", self.stderr());
        found
    }

    /// Where the metrics endpoint listens (`--metrics 127.0.0.1:0`), from its
    /// `metrics on http://IP:PORT/` line, waited for up to 10 s.
    pub fn metrics_addr(&self) -> SocketAddr {
        let mut found = None;
        poll_until(Duration::from_secs(10), || {
            found = self
                .stderr()
                .lines()
                .find_map(|line| addr_after(line, METRICS_MARK));
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "ringway logged no `{METRICS_MARK}IP:PORT/` line:\n{}",
                self.stderr()
            )
        })
    }

    /// The config file ringway was started with, if any (it exists while ringway runs).
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_ref().map(|c| c.path.as_path())
    }

    /// Replaces the config file with `toml`, sends SIGHUP, and waits for ringway's answer:
    /// the log line saying the configuration was reloaded or refused, which is returned.
    /// Panics if ringway was started without a config file, or says nothing within 10 s.
    pub fn reload(&self, toml: &str) -> String {
        const ANSWER: &str = "SIGHUP: configuration ";
        let path = self
            .config_path()
            .expect("ringway was started with a config file");
        std::fs::write(path, toml).expect("rewrite the config file");
        let before = self.stderr().matches(ANSWER).count();
        self.signal(libc::SIGHUP);
        let answered = poll_until(Duration::from_secs(10), || {
            self.stderr().matches(ANSWER).count() > before
        });
        let log = self.stderr();
        assert!(answered, "no answer to SIGHUP within 10 s:\n{log}");
        log.lines()
            .filter(|l| l.contains(ANSWER))
            .nth(before)
            .unwrap_or_default()
            .to_owned()
    }

    /// Everything ringway wrote to stderr so far (ANSI colours removed).
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits up to `limit` for `needle` to appear in stderr.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        poll_until(limit, || self.stderr().contains(needle))
    }

    /// Waits up to `limit` for `needle` to appear `count` times in stderr, and says how
    /// many times it appears then: a line ringway wrote just before answering may reach the
    /// reader of its stderr after the answer reached the test.
    pub fn log_count_after_waiting(&self, needle: &str, count: usize, limit: Duration) -> usize {
        poll_until(limit, || self.stderr().matches(needle).count() >= count);
        self.stderr().matches(needle).count()
    }

    /// Sends SIGTERM now, without waiting.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `signal` now, without waiting (nothing once ringway has been reaped).
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            send_signal(child.id(), signal);
        }
    }

    /// The process id; panics once ringway has exited and been reaped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("ringway is running").id()
    }

    /// ringway's open files that lie in `dir` (from `/proc/PID/fd`), e.g. one whose target
    /// is `DIR/#1234 (deleted)` for an O_TMPFILE file. `dir` should be canonical, as the
    /// kernel reports it. Panics when the list cannot be read (ringway has died): none
    /// would say "holds no file" of a process that holds nothing because it is gone.
    pub fn open_files_under(&self, dir: &Path) -> Vec<OpenFile> {
        let prefix = format!("{}/", dir.display());
        let listed = std::fs::read_dir(format!("/proc/{}/fd", self.pid()));
        let fds = listed.unwrap_or_else(|err| {
            panic!("ringway's open files cannot be listed (has it died?): {err}")
        });
        fds.filter_map(|fd| {
            let fd = fd.ok()?.path();
            let target = std::fs::read_link(&fd).ok()?.to_string_lossy().into_owned();
            target
                .starts_with(&prefix)
                .then_some(OpenFile { fd, target })
        })
        .collect()
    }

    /// Waits up to `limit` for ringway to exit by itself; `None` if it did not (it is then
    /// killed on drop).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let mut status = None;
        poll_until(limit, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
        status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Ringway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(2), true);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The address after `listening on http://` in a log line.
#[cfg(test)]
fn ready_addr(line: &str) -> Option<SocketAddr> {
    addr_after(line, READY_MARK)
}

/// The address right after `mark` in a log line.
fn addr_after(line: &str, mark: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(mark)? + mark.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].trim_end_matches(['.', ':']).parse().ok()
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), in case the log is coloured anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_a_tracing_line() {
        let line =
            "2026-01-01T00:00:00Z  INFO ringway: listening on http://127.0.0.1:41234 workers=1";
        assert_eq!(ready_addr(line), Some("127.0.0.1:41234".parse().unwrap()));
        let coloured =
            strip_ansi("\u{1b}[32m INFO\u{1b}[0m listening on http://127.0.0.1:9\u{1b}[0m");
        assert_eq!(ready_addr(&coloured), Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(
            ready_addr("listening on http://[::1]:80."),
            Some("[::1]:80".parse().unwrap())
        );
        let tls = " INFO ringway: listening on https://127.0.0.1:44321";
        assert_eq!(ready_addr(tls), None, "the TLS line is not the ready line");
        assert_eq!(
            addr_after(tls, TLS_MARK),
            Some("127.0.0.1:44321".parse().unwrap())
        );
        let metrics = "INFO ringway: metrics on http://127.0.0.1:9145/ (Prometheus at /metrics)";
        assert_eq!(
            addr_after(metrics, METRICS_MARK),
            Some("127.0.0.1:9145".parse().unwrap())
        );
    }
}
