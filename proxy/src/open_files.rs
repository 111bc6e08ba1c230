//! The process's limit of open files (`RLIMIT_NOFILE`), raised at start.
//!
//! Each client connection holds a descriptor, each request at an app one more, and files,
//! temp files and the file cache theirs. A shell or a container often starts a process
//! with a soft limit of 1024 and a hard one far above (systemd's default: 1024 and
//! 524288), so that programs which can use more raise it themselves, as nginx does with
//! `worker_rlimit_nofile` and Go's runtime does for every program: ringway raises its soft
//! limit to the hard one. The app `[app]` starts gets back the soft limit ringway was
//! started with (a Python program may still use `select()`, which breaks past fd 1023).

use std::io;
use std::sync::OnceLock;

/// The limit ringway was started with, once [`raise`] read it.
static STARTED_WITH: OnceLock<libc::rlimit> = OnceLock::new();

/// The soft limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub before: u64,
    pub after: u64,
}

/// Raises the soft limit of open files to the hard one; returns both soft values. Called
/// once, at start, before the app is started (which gets the first limit back).
pub fn raise() -> io::Result<Raised> {
    let started = get()?;
    let _ = STARTED_WITH.set(started);
    let before = started.rlim_cur;
    if before >= started.rlim_max {
        return Ok(Raised {
            before,
            after: before,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: started.rlim_max,
        rlim_max: started.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit for the call to read.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Raised {
        before,
        after: raised.rlim_cur,
    })
}

/// The limit ringway was started with (`None` before [`raise`]), for the app's processes.
pub fn started_with() -> Option<libc::rlimit> {
    STARTED_WITH.get().copied()
}

/// Sets the limit of open files to `limit`: in a forked child before exec (a single system
/// call, async-signal-safe, allocating nothing).
///
/// # Safety
/// As any call in a `pre_exec` closure: the caller runs it where only async-signal-safe
/// functions may be called, and `setrlimit` is one.
pub unsafe fn restore(limit: &libc::rlimit) -> io::Result<()> {
    // SAFETY: `limit` is a valid rlimit for the call to read.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}
