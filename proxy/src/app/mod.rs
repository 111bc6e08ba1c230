//! The app server under ringway's watch (`[app]`), the job supervisord does in front of
//! nginx and uWSGI: start it before ringway accepts, wait until its sockets accept, start it
//! again when it dies (with backoff), stop it after ringway's own drain, and never leave it
//! behind. docs/ARCHITECTURE.md, "The app server", draws the whole.
//!
//! One thread (`ringway-app`) forks the app and waits for it; the main thread starts and
//! stops it through [`App`]. The figures for the metrics are two process-wide atomics
//! ([`AppStatus`]).

mod backoff;
mod process;
mod ready;
mod socket_watch;
mod supervisor;

pub(crate) use process::check_program;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::UpstreamAddr;

/// The `[app]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// What tells the app to shut down.
    pub stop_signal: StopSignal,
    /// When it is started again.
    pub restart: Restart,
    /// How long the app may take until every upstream accepts.
    pub ready_timeout: Duration,
    /// How long it may take to exit after `stop_signal`, then its group is SIGKILLed.
    pub stop_timeout: Duration,
}

/// When an app that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// After a non-zero exit or a death by signal.
    OnFailure,
    /// After any exit.
    Always,
    /// Never: ringway serves on, and answers 502 while nothing accepts.
    Never,
}

impl Restart {
    /// The spellings `restart` accepts.
    pub const NAMES: [(&'static str, Restart); 3] = [
        ("on-failure", Restart::OnFailure),
        ("always", Restart::Always),
        ("never", Restart::Never),
    ];

    /// Parses `on-failure`, `always` or `never`.
    pub fn from_name(name: &str) -> Option<Restart> {
        Restart::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
    }

    /// Whether an app that ended with `status` is started again.
    fn wants(self, status: std::process::ExitStatus) -> bool {
        match self {
            Restart::OnFailure => !status.success(),
            Restart::Always => true,
            Restart::Never => false,
        }
    }
}

/// A signal `stop_signal` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal {
    /// Its number.
    pub number: libc::c_int,
    /// Its name (`SIGINT`).
    pub name: &'static str,
}

impl StopSignal {
    /// Parses `SIGINT` or `INT` (any case); `None` for a signal that is not a way to stop.
    pub fn from_name(name: &str) -> Option<StopSignal> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        process::STOP_SIGNALS
            .iter()
            .find(|(_, n)| *n == full)
            .map(|&(number, name)| StopSignal { number, name })
    }

    /// Every name `stop_signal` accepts, for the refusal's text.
    pub fn names() -> String {
        let names: Vec<&str> = process::STOP_SIGNALS.iter().map(|(_, n)| *n).collect();
        names.join(", ")
    }
}

/// The app's figures, for the metrics (`ringway_app_up`, `ringway_app_restarts_total`).
#[derive(Debug, Default)]
pub struct AppStatus {
    restarts: AtomicU64,
    up: AtomicBool,
}

impl AppStatus {
    /// Times the app was started again after it exited.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Relaxed)
    }

    /// Whether the app's process is running now.
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }
}

/// What the main thread and the supervisor thread share.
struct Shared {
    state: Mutex<State>,
    /// Wakes the supervisor out of a backoff wait when the app is to stop.
    wake: Condvar,
    status: Arc<AppStatus>,
}

#[derive(Default)]
struct State {
    /// Set once: the app is not to be started again.
    stopping: bool,
    /// The running app's pid (and process group), while it is not reaped.
    pid: Option<libc::pid_t>,
    /// Why the supervisor gave up (the app exited and is not restarted).
    ended: Option<String>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The app, started and watched. Dropping it stops the app (so an early return from `main`
/// leaves nothing behind); [`App::stop`] does so explicitly, after the drain.
pub struct App {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Watches that the app's socket paths still reach it (`socket_watch`).
    watch: Option<JoinHandle<()>>,
    stop_signal: StopSignal,
    stop_timeout: Duration,
}

impl App {
    /// Starts the app and returns once every upstream in `upstreams` accepts connections.
    /// Fails when the command cannot be started, when the app exits for good first, or at
    /// `ready_timeout`; the app is stopped then.
    pub fn start(config: &AppConfig, upstreams: &[Vec<UpstreamAddr>]) -> anyhow::Result<App> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            status: Arc::default(),
        });
        // Before the app starts: an old app's socket files do not count (see `Waiting`).
        let waiting = ready::Waiting::new(upstreams);
        let (started_tx, started) = mpsc::channel();
        let supervisor = supervisor::Supervisor {
            shared: Arc::clone(&shared),
            command: config.command.clone(),
            restart: config.restart,
            started: Some(started_tx),
        };
        let thread = std::thread::Builder::new()
            .name("ringway-app".into())
            .spawn(move || supervisor.run())
            .context("cannot start the app's supervisor thread")?;
        let mut app = App {
            shared,
            thread: Some(thread),
            watch: None,
            stop_signal: config.stop_signal,
            stop_timeout: config.stop_timeout,
        };
        let program = config.command.first().map_or("", String::as_str);
        match started.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => bail!("app.command: cannot start {program}: {err}"),
            Err(_) => bail!("app.command: the supervisor thread ended before starting {program}"),
        }
        app.wait_ready(waiting, config.ready_timeout)?;
        let paths: Vec<_> = upstreams
            .iter()
            .flatten()
            .filter_map(|addr| match addr {
                UpstreamAddr::Unix(path) => Some(path.clone()),
                UpstreamAddr::Tcp(_) => None,
            })
            .collect();
        // Killing an app that lost its socket helps only if the supervisor starts it again.
        if !paths.is_empty() && config.restart != Restart::Never {
            let shared = Arc::clone(&app.shared);
            let reaching = socket_watch::Reaching::now(&shared, &paths);
            let watch = std::thread::Builder::new()
                .name("ringway-app-socket".into())
                .spawn(move || socket_watch::run(shared, paths, reaching))
                .context("cannot start the app's socket watch")?;
            app.watch = Some(watch);
        }
        Ok(app)
    }

    /// The figures the metrics endpoint reads.
    pub fn status(&self) -> Arc<AppStatus> {
        Arc::clone(&self.shared.status)
    }

    /// Polls the upstreams until each accepts, the app ends for good, or `limit` passes.
    fn wait_ready(&self, mut waiting: ready::Waiting, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        if !waiting.is_done() {
            tracing::info!(
                upstreams = %waiting.describe(),
                "waiting for the app to accept connections"
            );
        }
        loop {
            waiting.poll();
            if waiting.is_done() {
                return Ok(());
            }
            if stop_requested() {
                // ringway is to stop before it ever served: the caller sees the signal
                // pending and stops before binding anything (see `stop_requested`).
                tracing::info!("a stop signal arrived while waiting for the app");
                return Ok(());
            }
            if let Some(why) = self.shared.state().ended.clone() {
                bail!("the app ended before accepting connections ({why})");
            }
            if Instant::now() >= deadline {
                bail!(
                    "app.ready_timeout: {} did not accept connections within {limit:?} (the \
                     app was restarted {} times); stopping the app",
                    waiting.describe(),
                    self.shared.status.restarts()
                );
            }
            std::thread::sleep(ready::POLL);
        }
    }

    /// Stops the app: `stop_signal` to its process group, then up to `stop_timeout` for it
    /// to exit, then SIGKILL to the group. Call it after the server's drain.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let signalled = {
            let mut state = self.shared.state();
            state.stopping = true;
            // Under the lock: the supervisor reaps the app only after clearing `pid`, so
            // the group signalled here is the app's.
            if let Some(pid) = state.pid {
                process::signal_group(pid, self.stop_signal.number);
            }
            state.pid
        };
        self.shared.wake.notify_all();
        if let Some(pid) = signalled {
            tracing::info!(
                pid,
                signal = self.stop_signal.name,
                "stopping the app: {} sent to its process group",
                self.stop_signal.name
            );
        }
        let deadline = Instant::now() + self.stop_timeout;
        // A stop signal sent while the app stops asks for it now, as a second one asks
        // ringway's drain to end now (found by review: it waited out `stop_timeout`). One
        // already waiting (the stop that cut a start short) is the first.
        let pending_before = stop_requested();
        let mut hurried = false;
        while !thread.is_finished() && Instant::now() < deadline {
            if !pending_before && stop_requested() {
                hurried = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !thread.is_finished() {
            let state = self.shared.state();
            if let Some(pid) = state.pid {
                if hurried {
                    tracing::warn!(pid, "another stop signal: killing the app's process group");
                } else {
                    tracing::warn!(
                        pid,
                        "the app did not exit within app.stop_timeout ({:?}); killing its \
                         process group",
                        self.stop_timeout
                    );
                }
                process::signal_group(pid, libc::SIGKILL);
            }
        }
        // The leader exits at once after a SIGKILL; the supervisor then reaps it and ends.
        let _ = thread.join();
        // Woken with the supervisor, it ends as soon as it sees `stopping`.
        if let Some(watch) = self.watch.take() {
            let _ = watch.join();
        }
    }
}

/// Whether SIGTERM, SIGINT or SIGQUIT waits to be taken. They are blocked in every thread
/// (the main thread takes them with `sigtimedwait` once serving), so one sent while the app
/// starts stays pending: seen here without taking it, it cuts the wait short, and the start
/// ends there, before any listener is bound or steered to and before "listening" is
/// logged (found by review: an upgrade's new process took connections from the old one and
/// said it was listening, its app not up).
pub fn stop_requested() -> bool {
    // SAFETY: sigset_t is plain data; sigpending fills it before it is read.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pending` is a valid sigset_t to write to.
    if unsafe { libc::sigpending(&mut pending) } != 0 {
        return false;
    }
    [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT]
        .iter()
        // SAFETY: `pending` was initialised by sigpending; the signals are valid numbers.
        .any(|&signal| unsafe { libc::sigismember(&pending, signal) } == 1)
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_by_name() {
        for name in ["SIGINT", "INT", "sigint", " int "] {
            assert_eq!(
                StopSignal::from_name(name).map(|s| s.number),
                Some(libc::SIGINT),
                "{name}"
            );
        }
        assert_eq!(
            StopSignal::from_name("QUIT").map(|s| s.name),
            Some("SIGQUIT")
        );
        // Not ways to stop: SIGSTOP pauses, SIGCHLD is ignored, numbers are not names.
        for name in ["SIGSTOP", "CHLD", "2", "", "SIG"] {
            assert!(StopSignal::from_name(name).is_none(), "{name}");
        }
    }

    #[test]
    fn restart_policies() {
        use std::os::unix::process::ExitStatusExt;
        let clean = std::process::ExitStatus::from_raw(0);
        let failed = std::process::ExitStatus::from_raw(1 << 8);
        let killed = std::process::ExitStatus::from_raw(libc::SIGKILL);
        assert!(!Restart::OnFailure.wants(clean));
        assert!(Restart::OnFailure.wants(failed) && Restart::OnFailure.wants(killed));
        assert!(Restart::Always.wants(clean) && Restart::Always.wants(killed));
        assert!(!Restart::Never.wants(failed) && !Restart::Never.wants(killed));
        assert_eq!(Restart::from_name("on-failure"), Some(Restart::OnFailure));
        assert_eq!(Restart::from_name("On-Failure"), None);
    }
}
