//! Polling with a deadline: every wait in the harness is bounded.

use std::thread::sleep;
use std::time::{Duration, Instant};

/// Polls `ready` every 20 ms until it returns true or `limit` passes; returns whether it did.
pub fn poll_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to the process `child` (by its id), waits up to `grace` for it to exit, then
/// SIGKILLs it, and — when `group` — also SIGKILLs its whole process group (the guards start
/// uWSGI and nginx in a group of their own, so this reaches only their workers). Always reaps.
pub fn stop_child(
    child: &mut std::process::Child,
    signal: libc::c_int,
    grace: Duration,
    group: bool,
) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        if group {
            kill_group(child.id());
        }
        return Some(status);
    }
    send_signal(child.id(), signal);
    let mut status = None;
    poll_until(grace, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if group {
        kill_group(child.id());
    }
    if status.is_none() {
        let _ = child.kill();
        status = child.wait().ok();
    }
    status
}

/// Sends `signal` to one process we started.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) takes plain integers; the pid is that of a child this harness spawned
    // and has not reaped yet, so it cannot have been reused.
    unsafe {
        libc::kill(pid, signal);
    }
}

fn kill_group(pgid: u32) {
    let pgid = libc::pid_t::try_from(pgid).expect("pid fits pid_t");
    // SAFETY: killpg(2) takes plain integers; the group id is the pid of a child this harness
    // spawned with `process_group(0)`, so the group holds only its processes.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}
