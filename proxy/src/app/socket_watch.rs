//! Watching that the app's unix socket paths still reach the app.
//!
//! Another process can take a socket path from a running app: an upgrade's new ringway
//! starts its own app there (uWSGI unlinks the file and binds its own), and if that process
//! then fails or is stopped before serving, its app leaves the path naming a socket nothing
//! listens on, or nothing. The old app still runs, unreachable: every request gets 502 and
//! the supervisor, seeing its app alive, never helps (found by review). So once a second
//! the paths are looked at (a `stat`); a path that names another file than the one last
//! seen reaching this app is connected to, and the listener's process group asked of the
//! kernel (`SO_PEERCRED`). Another app there is left alone (the upgrade is under way); no
//! listener at all, where this app listened before, and still none a moment later (an app
//! taking the path unlinks, binds, then listens), means the app lost its socket: its
//! process group is killed, and the supervisor starts it again, which binds the path anew.
//! Only where the supervisor restarts the app (`restart` not `never`). A path that was
//! never this app's (another service's socket) is connected to only when its file changes.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use super::ready::{Identity, identity};
use super::{Shared, process};

/// Time between two looks at the paths.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long after seeing nobody listen the path is looked at again, before the app is
/// taken for lost: an app taking the path has bound and listens by then.
const CONFIRM_AFTER: Duration = Duration::from_millis(200);

/// Who listens on a socket path.
#[derive(Debug, PartialEq, Eq)]
enum Listener {
    /// A process of this process group.
    Group(libc::pid_t),
    /// Someone, but which could not be told (a full backlog, a credential refused).
    Unknown,
    /// Nobody: no file, or a file nothing listens on.
    Nobody,
}

/// What the watch knows of the paths.
#[derive(Default)]
pub(super) struct Reaching {
    /// Per path, the file last seen reaching the app, and the app's pid then.
    ours: HashMap<PathBuf, (Identity, libc::pid_t)>,
    /// Per path never seen reaching the app, the file last looked at (or none).
    others: HashMap<PathBuf, Option<Identity>>,
}

impl Reaching {
    /// The first look, as the app is found ready (so a path taken at once is seen taken).
    pub(super) fn now(shared: &Shared, paths: &[PathBuf]) -> Reaching {
        let mut reaching = Reaching::default();
        if let Some(pid) = shared.state().pid {
            reaching.look(shared, pid, paths);
        }
        reaching
    }

    /// Looks at each path (see the module's doc).
    fn look(&mut self, shared: &Shared, pid: libc::pid_t, paths: &[PathBuf]) {
        for path in paths {
            let now = identity(path);
            let known = self.ours.get(path).filter(|(_, of)| *of == pid).copied();
            if now.is_some() && known.map(|(id, _)| id) == now {
                continue;
            }
            if known.is_none() && self.others.get(path) == Some(&now) {
                continue;
            }
            match listener_of(path) {
                Listener::Group(group) if group == pid => {
                    self.others.remove(path);
                    if let Some(id) = now {
                        self.ours.insert(path.clone(), (id, pid));
                    }
                }
                Listener::Nobody if known.is_some() => {
                    std::thread::sleep(CONFIRM_AFTER);
                    if listener_of(path) == Listener::Nobody {
                        self.ours.remove(path);
                        lost(shared, pid, path);
                    }
                }
                // Someone else's socket (an upgrade's new app while it runs: looked at
                // again every second, as the path was this app's), or nothing yet.
                _ if known.is_some() => {}
                _ => {
                    self.others.insert(path.clone(), now);
                }
            }
        }
    }
}

/// Looks at `paths` once a second until the app is to stop; runs on a thread of its own.
pub(super) fn run(shared: Arc<Shared>, paths: Vec<PathBuf>, mut reaching: Reaching) {
    loop {
        let pid = {
            let state = shared.state();
            if state.stopping {
                return;
            }
            let (state, _) = shared
                .wake
                .wait_timeout(state, LOOK_EVERY)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.stopping {
                return;
            }
            state.pid
        };
        match pid {
            Some(pid) => reaching.look(&shared, pid, &paths),
            None => reaching.ours.clear(),
        }
    }
}

/// The app `pid` lost its socket at `path`: its process group is killed, under the lock (the
/// supervisor clears the pid under it before reaping, so the group is still the app's).
fn lost(shared: &Shared, pid: libc::pid_t, path: &Path) {
    let state = shared.state();
    if state.stopping || state.pid != Some(pid) {
        return;
    }
    tracing::warn!(
        pid,
        socket = %path.display(),
        "the app's socket path no longer reaches it (another process replaced the file, and \
         nothing listens there now): killing the app so that it binds the path again"
    );
    process::signal_group(pid, libc::SIGKILL);
}

/// Who listens on the unix socket at `path`, by process group.
fn listener_of(path: &Path) -> Listener {
    match listening_on(path) {
        Listening::Nobody => Listener::Nobody,
        Listening::Unknown => Listener::Unknown,
        // SAFETY: getpgid takes a plain pid; a pid gone meanwhile gives -1.
        Listening::Pid(pid) => match unsafe { libc::getpgid(pid) } {
            group if group > 0 => Listener::Group(group),
            _ => Listener::Unknown,
        },
    }
}

/// Who listens on a unix socket, as the kernel noted it at its `listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listening {
    /// Nothing: no file, or nothing accepts on it.
    Nobody,
    /// Something accepts (or its backlog is full), and who cannot be told (a process of
    /// another pid namespace, an error).
    Unknown,
    /// This process.
    Pid(libc::pid_t),
}

/// Who listens on the unix socket at `path`: a connect that never waits (a full backlog
/// says nothing), then the listener's credentials (SO_PEERCRED).
pub(super) fn listening_on(path: &Path) -> Listening {
    let Ok(addr) = SockAddr::unix(path) else {
        return Listening::Unknown;
    };
    let Ok(socket) = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None) else {
        return Listening::Unknown;
    };
    if socket.set_nonblocking(true).is_err() {
        return Listening::Unknown;
    }
    match socket.connect(&addr) {
        Ok(()) => {}
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::ECONNREFUSED | libc::ENOENT | libc::ENOTSOCK)
            ) =>
        {
            return Listening::Nobody;
        }
        Err(_) => return Listening::Unknown,
    }
    // SAFETY: ucred is plain data; getsockopt fills at most `len` bytes of it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid fd, and `cred`/`len` point to owned locals of the right size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 || cred.pid <= 0 {
        return Listening::Unknown;
    }
    Listening::Pid(cred.pid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_told_by_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        assert_eq!(listener_of(&path), Listener::Nobody, "no file");
        let listening = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // SAFETY: getpgid(0) is this process's group.
        let own = unsafe { libc::getpgid(0) };
        assert_eq!(listener_of(&path), Listener::Group(own));
        drop(listening);
        assert_eq!(listener_of(&path), Listener::Nobody, "a file left behind");
    }
}
