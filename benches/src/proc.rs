//! Child processes the harness starts: each in its own process group, killed by the kernel
//! if the harness dies (PR_SET_PDEATHSIG), and stopped and reaped when its guard drops.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Renders a command the way a person would type it.
pub fn display(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Sets up `cmd` to run in its own process group, die with the harness, and (if given) on
/// `cpus` only.
pub fn prepare(cmd: &mut Command, cpus: Option<Vec<usize>>) {
    cmd.stdin(Stdio::null()).process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2) and
    // sched_setaffinity(2), which are async-signal-safe; it reads only the moved-in vector.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            if let Some(cpus) = &cpus {
                crate::sys::set_affinity(cpus)?;
            }
            Ok(())
        });
    }
}

/// A long-running child: SIGTERM on drop, SIGKILL to its whole group after `grace`.
pub struct Guard {
    pub name: String,
    child: Child,
    grace: Duration,
    exited: Option<ExitStatus>,
}

impl Guard {
    pub fn spawn(name: &str, cmd: &mut Command, cpus: Option<Vec<usize>>) -> Result<Self> {
        prepare(cmd, cpus);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: `{}`", display(cmd)))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            grace: Duration::from_secs(5),
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status if the child has ended (reaps it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .with_context(|| format!("wait for {}", self.name))?;
        }
        Ok(self.exited)
    }

    /// Whether the child has ended, without reaping it: while it is an unreaped zombie its
    /// pid, which is also its process group id, cannot name anyone else.
    fn ended_unreaped(&self) -> bool {
        let pid: libc::id_t = self.child.id();
        // SAFETY: siginfo_t is plain data; zeroed is valid, and waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with WNOWAIT leaves it waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read for a SIGCHLD siginfo filled by waitid; it stays 0
        // when the child has not changed state.
        rc != 0 || unsafe { info.si_pid() } != 0
    }

    /// SIGTERM, wait up to the grace period, SIGKILL what is left of the process group (the
    /// leader still unreaped, so the group id is still ours), then reap.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline && !self.ended_unreaped() {
            thread::sleep(Duration::from_millis(20));
        }
        if !self.ended_unreaped() {
            eprintln!("bench: {} still runs after SIGTERM: SIGKILL", self.name);
        }
        self.kill_group();
        let status = self
            .child
            .wait()
            .with_context(|| format!("wait for {}", self.name))?;
        self.exited = Some(status);
        Ok(status)
    }

    /// SIGKILL the whole process group and reap: for a child whose shutdown is of no
    /// interest (uWSGI, whose master takes a second to stop gracefully).
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        // Not reaped yet (`exited` is set on reaping): the group id is still ours.
        self.kill_group();
        let status = self
            .child
            .wait()
            .with_context(|| format!("wait for {}", self.name))?;
        self.exited = Some(status);
        Ok(status)
    }

    fn signal(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) takes plain integers; the pid is our own unreaped child.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// SIGKILL the child's process group (workers of a master that ended). Called only while
    /// the leader is unreaped.
    fn kill_group(&self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group we created for
            // this child (process_group(0) makes its pid the group id); its leader is not
            // reaped yet, so the id cannot have been reused.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("bench: stopping {}: {err:#}", self.name);
        }
    }
}
