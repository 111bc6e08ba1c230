//! The app's processes: started in a process group of their own, tied to ringway's life,
//! signalled as a group.
//!
//! Never left behind, even when ringway is SIGKILLed:
//! - the app's first process gets `PR_SET_PDEATHSIG` = SIGKILL. The kernel sends it when the
//!   *thread* that forked dies, so only the supervisor thread forks, and it lives until the
//!   app is gone. A uWSGI master's workers die with their master, so they follow it.
//! - the app is the leader of its own process group: whatever it forks (workers, helpers)
//!   is in it unless it moves itself out, and stopping or reaping the app ends with a
//!   SIGKILL to the whole group, so no worker survives its master holding the socket.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};

/// Starts `command` (program and arguments, no shell) as the leader of a new process group,
/// killed if ringway dies. Its stdout and stderr are ringway's.
pub fn spawn(command: &[String]) -> io::Result<Child> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: getpid has no preconditions.
    let ringway = unsafe { libc::getpid() };
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // ringway died between the fork and the prctl: nobody would send the signal.
            if libc::getppid() != ringway {
                libc::_exit(127);
            }
            Ok(())
        });
    }
    // std resets the signal mask and SIGPIPE in the child: ringway's blocked signals
    // (taken by its main thread) are not the app's.
    cmd.spawn()
}

/// Waits until `pid` (a child) has exited, without reaping it: while it is a zombie its pid,
/// and so its process group's id, cannot be taken by another process, so the group can still
/// be signalled safely.
pub fn wait_exited(pid: libc::pid_t) -> io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain data, zeroed is valid; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; P_PID with a pid of our own child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends `signal` to every process of the group `pgid`; a group already gone is no error.
pub fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: killpg takes plain integers. Callers pass the group of a child that has not
    // been reaped yet, so its id cannot name another group.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// How an exit reads in a log line: "exit status 1", "killed by SIGKILL".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
        _ => status.to_string(),
    }
}

/// The signals `stop_signal` may name.
pub const STOP_SIGNALS: [(libc::c_int, &str); 7] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGKILL, "SIGKILL"),
];

/// Signals an app is often ended by, named in the exit's log line.
const FATAL_SIGNALS: [(libc::c_int, &str); 4] = [
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGPIPE, "SIGPIPE"),
];

fn signal_name(signal: libc::c_int) -> String {
    STOP_SIGNALS
        .iter()
        .chain(&FATAL_SIGNALS)
        .find(|(number, _)| *number == signal)
        .map_or_else(
            || format!("signal {signal}"),
            |(_, name)| (*name).to_owned(),
        )
}
