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
    // ringway raised its own limit of open files; the app gets the one it was started with.
    let open_files = crate::open_files::started_with();
    let mut cmd = Command::new(program);
    // The service manager's socket is ringway's to tell: an app server that would tell it
    // too (uWSGI, gunicorn do) is refused there, a warning in the journal each time.
    cmd.args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .env_remove("NOTIFY_SOCKET");
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (sigemptyset, pthread_sigmask, signal, setrlimit, prctl,
    // getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // std passes the signal mask on to the child, and ringway blocks its stop signals
            // in every thread (its main thread takes them): unblocked, or the app would never
            // see `stop_signal`. uWSGI clears its mask itself; gunicorn or a shell do not.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            // A signal ignored where ringway was started (`nohup`, `cmd &` from a script:
            // SIGHUP, SIGINT) stays ignored across exec: an app that sets no handler of its
            // own would never see its `stop_signal`, and be killed at `stop_timeout` (found
            // by review). The app starts with the dispositions of a fresh process.
            for signal in APP_SIGNALS {
                libc::signal(signal, libc::SIG_DFL);
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(limit) = &open_files {
                crate::open_files::restore(limit)?;
            }
            // ringway died between the fork and the prctl: nobody would send the signal.
            if libc::getppid() != ringway {
                libc::_exit(127);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The signals the app gets back at their default disposition (the stop signals an app
/// may be sent, and those a launcher commonly ignores).
const APP_SIGNALS: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
];

/// Whether `program` can be started as [`spawn`] starts it (execvp): a path to an
/// executable file, or a name found so in `PATH`.
pub(crate) fn check_program(program: &str) -> Result<(), String> {
    let runnable = |path: &std::path::Path| {
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: `c_path` is a valid NUL-terminated string for the call's duration.
        path.is_file() && unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } == 0
    };
    if program.contains('/') {
        return if runnable(std::path::Path::new(program)) {
            Ok(())
        } else {
            Err(format!("{program} is not an executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| runnable(&dir.join(program))) {
        Ok(())
    } else {
        Err(format!("{program} is not found in PATH"))
    }
}

/// Waits until `pid` (a child) has exited, without reaping it: while it is a zombie its pid,
/// and so its process group's id, cannot be taken by another process, so the group can still
/// be signalled safely.
///
/// With `reap_others` (ringway is pid 1, as in a container without an init), any other
/// child that dies meanwhile is reaped: the kernel hands pid 1 every orphan of the
/// container (a process an app worker started and left behind, a daemonized helper), and
/// nothing else would ever reap them. Each is seen without being reaped first, so the app's
/// own exit is never taken from this wait.
pub fn wait_exited(pid: libc::pid_t, reap_others: bool) -> io::Result<()> {
    let (which, id) = if reap_others {
        (libc::P_ALL, 0)
    } else {
        (libc::P_PID, pid as libc::id_t)
    };
    loop {
        // SAFETY: siginfo_t is plain data, zeroed is valid; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; P_PID names a child of ours, P_ALL any.
        let rc = unsafe { libc::waitid(which, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
            continue;
        }
        // SAFETY: waitid filled `info` for an exited child: si_pid is set.
        let exited = unsafe { info.si_pid() };
        if exited == pid || !reap_others {
            return Ok(());
        }
        let mut status = 0;
        // SAFETY: waitpid writes into a valid int; `exited` is a zombie child of ours
        // (seen above, not reaped since: no other thread reaps it), so its pid is not reused.
        unsafe { libc::waitpid(exited, &mut status, libc::WNOHANG) };
    }
}

/// Reaps the processes of the group `pgid` that became ringway's children: when the app's
/// first process dies before its workers, the kernel hands them to the nearest subreaper or
/// to pid 1, and in a container pid 1 is often ringway itself. Killed by the group's SIGKILL,
/// they would stay zombies for ever. Waits 1 s at most (a process in uninterruptible sleep
/// may take its time to die); none left, or none of them ringway's, returns at once.
pub fn reap_orphans(pgid: libc::pid_t) {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid int. The leader is reaped already;
        // the group's id stays taken while any member lives, so -pgid names only the app's.
        let reaped = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        match reaped {
            pid if pid > 0 => {}
            // Some still live: they were SIGKILLed, so not for long.
            0 if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            0 => return,
            // ECHILD: none (left) of ours.
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The processes of group `pgid`, zombies included.
    fn in_group(pgid: libc::pid_t) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(2).map(str::to_owned))
                        == Some(pgid.to_string())
                })
            })
            .count()
    }

    #[test]
    fn orphans_handed_to_ringway_are_reaped() {
        // As pid 1 in a container would be: this test process gets the group's orphans.
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only changes this process's attribute.
        let subreaper = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(subreaper, 0);
        // The leader starts a worker and dies first, as a killed uWSGI master does.
        let mut leader = Command::new("/bin/sh")
            .args(["-c", "sleep 30 & echo started"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as libc::pid_t;
        let mut line = String::new();
        io::BufRead::read_line(
            &mut io::BufReader::new(leader.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(leader.wait().unwrap().success());
        signal_group(pgid, libc::SIGKILL);
        reap_orphans(pgid);
        assert_eq!(in_group(pgid), 0, "no process of the group, zombie or not");
    }
}
