//! Child processes: one-shot commands, long-running services, signals and exit statuses.

use std::env;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often the supervisors look at their children and at Ctrl-C.
pub const POLL: Duration = Duration::from_millis(100);

/// Renders a command the way a person would type it.
pub fn display(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs a command to completion, echoing it first; its output passes through.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    eprintln!("$ {}", display(cmd));
    cmd.status().map_err(|err| spawn_error(cmd, err))
}

/// Like [`status`], but a non-zero exit is an error.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("`{}` {}", display(cmd), describe(status));
    }
    Ok(())
}

/// A readable error for a command that could not start at all.
pub fn spawn_error(cmd: &Command, err: io::Error) -> anyhow::Error {
    let program = cmd.get_program().to_string_lossy();
    if err.kind() == io::ErrorKind::NotFound {
        anyhow::anyhow!("cannot run `{program}`: not found")
    } else {
        anyhow::Error::new(err).context(format!("cannot run `{program}`"))
    }
}

/// "exited with status 3", "was killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// The exit code that passes a child's status on: its own code, 128 + signal, never 0
/// for a failure that happened to exit 0.
pub fn failure_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) if code != 0 => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        _ => 1,
    }
}

/// The exit code that passes a one-shot command's status on (0 on success).
pub fn exit_code(status: ExitStatus) -> u8 {
    if status.success() {
        0
    } else {
        failure_code(status)
    }
}

/// Looks a program up in `$PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Counts the SIGINTs and SIGTERMs that reached xtask.
#[derive(Clone)]
pub struct Interrupt(Arc<AtomicUsize>);

impl Interrupt {
    /// Installs the Ctrl-C (and SIGTERM) handler. From then on those signals no longer kill
    /// xtask: the first has the supervisor shut its children down in order, a second hurries
    /// them ([`Service::stop_unless`]).
    pub fn install() -> Result<Self> {
        let count = Arc::new(AtomicUsize::new(0));
        let handler_count = Arc::clone(&count);
        ctrlc::set_handler(move || {
            handler_count.fetch_add(1, Ordering::SeqCst);
        })
        .context("cannot install the Ctrl-C handler")?;
        Ok(Self(count))
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }

    /// A second signal came: the user will not wait.
    pub fn is_insisted(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 1
    }
}

/// A long-running child (uWSGI, ringway). It runs in its own process group, so a Ctrl-C in
/// the terminal reaches only xtask, which then stops the stack in order (ringway drains
/// first, then uWSGI). If xtask itself dies, the kernel sends the child SIGTERM.
/// Dropping a `Service` that still runs stops it.
pub struct Service {
    pub name: &'static str,
    child: Child,
    grace: Duration,
    exited: Option<ExitStatus>,
}

impl Service {
    /// Starts `cmd` as a service; `grace` is how long it gets between SIGTERM and SIGKILL.
    pub fn spawn(name: &'static str, cmd: &mut Command, grace: Duration) -> Result<Self> {
        eprintln!("$ {}", display(cmd));
        cmd.stdin(Stdio::null()).process_group(0);
        // SAFETY: the closure runs in the forked child before exec and calls only
        // prctl(2), which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|err| spawn_error(cmd, err))?;
        Ok(Self {
            name,
            child,
            grace,
            exited: None,
        })
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status, if the service has ended.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .with_context(|| format!("cannot wait for {}", self.name))?;
        }
        Ok(self.exited)
    }

    /// SIGTERM, wait up to the grace period, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.stop_unless(|| false)
    }

    /// [`Service::stop`], with a second SIGTERM once `hurry` says so (a second Ctrl-C):
    /// ringway then ends its requests in flight at once and stops its app, where a SIGKILL
    /// would leave the app's processes behind.
    pub fn stop_unless(&mut self, hurry: impl Fn() -> bool) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        eprintln!("xtask: stopping {} (SIGTERM)", self.name);
        self.signal(libc::SIGTERM)?;
        let deadline = Instant::now() + self.grace;
        let mut hurried = false;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if !hurried && hurry() {
                hurried = true;
                eprintln!("xtask: stopping {} now (SIGTERM again)", self.name);
                self.signal(libc::SIGTERM)?;
            }
            thread::sleep(POLL);
        }
        eprintln!(
            "xtask: {} still runs {:?} after SIGTERM: SIGKILL",
            self.name, self.grace
        );
        self.child
            .kill()
            .with_context(|| format!("cannot kill {}", self.name))?;
        let status = self
            .child
            .wait()
            .with_context(|| format!("cannot wait for {}", self.name))?;
        self.exited = Some(status);
        Ok(status)
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) takes plain integers; the pid is our own child, not yet reaped
        // (try_wait above saw it running), so it cannot name another process.
        if unsafe { libc::kill(pid, signal) } == -1 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err).with_context(|| format!("cannot signal {}", self.name));
            }
        }
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("xtask: {err:#}");
        }
    }
}

/// Runs `cmd` to completion as [`status`] does, with xtask as the reaper of the orphans of
/// what it starts: the servers a test binary starts in process groups of their own (uWSGI,
/// nginx, ringway) outlive it when Ctrl-C kills it before its guards run, and would load
/// the machine for the next run. They are xtask's once orphaned, and ended when `cmd` is.
/// A Ctrl-C reaches `cmd` from the terminal; one sent to xtask alone is passed on.
pub fn status_ending_orphans(cmd: &mut Command) -> Result<ExitStatus> {
    // SAFETY: prctl(2) with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } == -1 {
        eprintln!(
            "xtask: cannot adopt orphans ({}): servers a test leaves behind are not ended",
            io::Error::last_os_error()
        );
    }
    let interrupt = Interrupt::install()?;
    eprintln!("$ {}", display(cmd));
    let mut child = cmd.spawn().map_err(|err| spawn_error(cmd, err))?;
    let mut passed_on = false;
    let own = libc::pid_t::try_from(child.id()).ok();
    let mut reaped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the command")? {
            break status;
        }
        if reaped.elapsed() >= Duration::from_secs(1) {
            // Orphans that ended meanwhile (a uWSGI worker whose master was killed).
            reap_adopted(own);
            reaped = Instant::now();
        }
        if interrupt.is_set() && !passed_on {
            passed_on = true;
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) on our own child, not yet reaped (try_wait saw it run).
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        }
        thread::sleep(POLL);
    };
    let ended = end_adopted(Duration::from_secs(5));
    if ended > 0 {
        eprintln!("xtask: ended {ended} process(es) the command left behind");
    }
    Ok(status)
}

/// Ends the processes xtask adopted, each with the process group it leads (a uWSGI
/// master's workers): SIGTERM, then SIGKILL after `grace`. Returns how many there were.
fn end_adopted(grace: Duration) -> usize {
    let adopted = adopted_children();
    if adopted.is_empty() {
        return 0;
    }
    let deadline = Instant::now() + grace;
    let mut signal = libc::SIGTERM;
    let mut left = adopted.clone();
    while !left.is_empty() {
        // SAFETY: getpgrp(2) takes nothing.
        let own_group = unsafe { libc::getpgrp() };
        for &(pid, group) in &left {
            let target = if group == pid && group != own_group {
                -group
            } else {
                pid
            };
            // SAFETY: kill(2) takes plain integers; each pid is a child of xtask, not
            // reaped yet, so it names no other process.
            unsafe { libc::kill(target, signal) };
        }
        let wait_until = match signal {
            libc::SIGTERM => deadline,
            _ => Instant::now() + Duration::from_secs(2),
        };
        while !left.is_empty() && Instant::now() < wait_until {
            thread::sleep(Duration::from_millis(50));
            left = adopted_children();
        }
        if signal == libc::SIGKILL {
            break;
        }
        signal = libc::SIGKILL;
    }
    adopted.len()
}

/// xtask's children still running (pid, process group), once those that ended are reaped.
fn adopted_children() -> Vec<(libc::pid_t, libc::pid_t)> {
    reap_adopted(None);
    children()
        .into_iter()
        .filter(|&(_, _, zombie)| !zombie)
        .map(|(pid, group, _)| (pid, group))
        .collect()
}

/// Reaps xtask's children that have ended, but `keep` (which xtask waits for itself).
fn reap_adopted(keep: Option<libc::pid_t>) {
    for (pid, _, zombie) in children() {
        if zombie && Some(pid) != keep {
            let mut status = 0;
            // SAFETY: waitpid(2) on a child of ours, with a valid pointer to a local.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        }
    }
}

/// xtask's children (pid, process group, ended), from /proc: only those still in xtask's
/// session, as a test's servers are; a daemon that made a session of its own (a compiler
/// cache's server, started by a build) left it on purpose and is not xtask's to end.
fn children() -> Vec<(libc::pid_t, libc::pid_t, bool)> {
    let me = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: getsid(2) on ourselves takes nothing and cannot fail.
    let own_session = unsafe { libc::getsid(0) };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command's name, which may hold spaces and parentheses: state,
            // parent, process group, session.
            let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = fields.next()?;
            let parent: libc::pid_t = fields.next()?.parse().ok()?;
            let group: libc::pid_t = fields.next()?.parse().ok()?;
            let session: libc::pid_t = fields.next()?.parse().ok()?;
            let ours = parent == me && (session == own_session || state == "Z");
            ours.then_some((pid, group, state == "Z"))
        })
        .collect()
}
