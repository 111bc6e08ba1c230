//! The supervisor thread: starts the app, waits for it to exit, and starts it again as
//! `restart` says, after a backoff. It is the only thread that forks the app, and it lives
//! until the app is gone: `PR_SET_PDEATHSIG` fires when the forking thread dies.

use std::io;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::{Restart, Shared, process};

/// What the thread runs with.
pub(super) struct Supervisor {
    pub shared: Arc<Shared>,
    pub command: Vec<String>,
    pub restart: Restart,
    /// Gets the first start's outcome, once.
    pub started: Option<mpsc::Sender<io::Result<()>>>,
}

/// How one run of the app ended.
enum Ended {
    Exited(ExitStatus),
    /// It could not be started (say, the program was removed): counts as a failure.
    NotStarted(io::Error),
}

impl Supervisor {
    pub fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            let started_at = Instant::now();
            let ended = match self.start() {
                Some(Ok(child)) => Ended::Exited(self.wait(child)),
                Some(Err(err)) => Ended::NotStarted(err),
                None => return,
            };
            let ran = started_at.elapsed();
            if self.stopping() {
                if let Ended::Exited(status) = ended {
                    tracing::info!("the app exited ({})", process::describe(status));
                }
                return;
            }
            let (restart, what) = match &ended {
                Ended::Exited(status) => (self.restart.wants(*status), process::describe(*status)),
                Ended::NotStarted(err) => (
                    self.restart != Restart::Never,
                    format!("cannot start: {err}"),
                ),
            };
            if !restart {
                let why = format!("{what}; app.restart = {}", self.restart_name());
                tracing::warn!("the app exited ({why}): not started again");
                let mut state = self.shared.state();
                if !state.stopping {
                    state.ended = Some(why);
                }
                return;
            }
            let wait = backoff.after_run(ran);
            // One line per restart, and restarts come at most once per backoff::MAX.
            tracing::warn!(
                "the app exited ({what}) after {}; starting it again in {}",
                seconds(ran),
                seconds(wait)
            );
            if !self.sleep(wait) {
                return;
            }
            self.shared.status.restarts.fetch_add(1, Relaxed);
        }
    }

    /// Starts the app, unless ringway is stopping (`None`). The pid is published under the
    /// lock, so a stop either sees it or happens before the start.
    fn start(&mut self) -> Option<io::Result<Child>> {
        let mut state = self.shared.state();
        if state.stopping {
            return None;
        }
        let spawned = process::spawn(&self.command);
        if let Ok(child) = &spawned {
            state.pid = Some(child.id() as libc::pid_t);
            self.shared.status.up.store(true, Relaxed);
            // The command as a list: one line, however its arguments look.
            tracing::info!(pid = child.id(), command = ?self.command, "app started");
        }
        drop(state);
        // The first start's failure is ringway's failure to start, not a cause to restart.
        if let Some(first) = self.started.take() {
            return match spawned {
                Ok(child) => {
                    let _ = first.send(Ok(()));
                    Some(Ok(child))
                }
                Err(err) => {
                    let _ = first.send(Err(err));
                    None
                }
            };
        }
        Some(spawned)
    }

    /// Waits for the app's first process to exit, kills what is left of its group (workers
    /// that outlived their master would hold the socket), then reaps it, and the group's
    /// orphans if they were handed to ringway.
    fn wait(&self, mut child: Child) -> ExitStatus {
        let pid = child.id() as libc::pid_t;
        // pid 1 (a container's entry point): the container's orphans are ringway's to reap.
        let reap_others = std::process::id() == 1;
        if let Err(err) = process::wait_exited(pid, reap_others) {
            tracing::warn!(error = %err, "waiting for the app failed; reaping it");
        }
        {
            let mut state = self.shared.state();
            process::signal_group(pid, libc::SIGKILL);
            state.pid = None;
            self.shared.status.up.store(false, Relaxed);
        }
        let status = loop {
            match child.wait() {
                Ok(status) => break status,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    // Not expected: the child is ours and not reaped yet. Counted as a
                    // failed run (exit status 255), so on-failure restarts it.
                    tracing::warn!(error = %err, "reaping the app failed");
                    break std::os::unix::process::ExitStatusExt::from_raw(0xff << 8);
                }
            }
        };
        process::reap_orphans(pid);
        status
    }

    fn stopping(&self) -> bool {
        self.shared.state().stopping
    }

    /// Sleeps `wait`, or less if ringway stops meanwhile; returns whether to go on.
    fn sleep(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut state = self.shared.state();
        while !state.stopping {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            state = match self.shared.wake.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        false
    }

    fn restart_name(&self) -> &'static str {
        Restart::NAMES
            .iter()
            .find(|(_, r)| *r == self.restart)
            .map_or("?", |(n, _)| n)
    }
}

/// `1.5s`, `250ms`: short and exact enough for a log line.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
