//! Waiting for the app's sockets: ringway accepts only once every upstream accepts
//! connections, so the first request after start is not answered 502.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::UpstreamAddr;
use crate::metrics::connect_upstream;

/// Time between two rounds of connects while waiting.
pub const POLL: Duration = Duration::from_millis(50);

/// The upstreams that have not accepted a connection yet: each as its addresses, one of
/// which accepting is enough (a name's several: the app may listen on 127.0.0.1 alone
/// while `localhost` is also `::1`).
pub struct Waiting {
    left: Vec<Vec<UpstreamAddr>>,
    /// The socket files an app listened on before this one started, by identity. During
    /// an upgrade the old process's app still listens on them: a path counts only once it
    /// names another file, the one the new app bound (found by review: the old app's
    /// socket answered, the new process said it was listening, and requests got 502 once
    /// the old one stopped its app). A file nothing listened on is left by an app that is
    /// gone, and is not noted: its inode may be the new file's (found by review: on ext4 the
    /// app never counted as started after a restart). Nor is one another service listens
    /// on (a uWSGI of its own behind another group): it is no app's to replace, and counts
    /// as it accepts (found by review: every start waited for it, and failed).
    before: Vec<(PathBuf, Identity)>,
}

impl Waiting {
    /// To be made before the app starts: it notes the socket files already there that
    /// an old process's app listens on.
    pub fn new(upstreams: &[Vec<UpstreamAddr>]) -> Waiting {
        Waiting::noting(upstreams, an_old_app_listens)
    }

    /// As [`Waiting::new`], `old_app` telling whether an accepting socket file is an old
    /// app's.
    fn noting(upstreams: &[Vec<UpstreamAddr>], old_app: fn(&Path) -> bool) -> Waiting {
        let before = upstreams
            .iter()
            .flatten()
            .filter_map(|addr| match addr {
                UpstreamAddr::Unix(path) => {
                    let noted = identity(path)?;
                    (connect_upstream(addr).is_ok() && old_app(path)).then(|| (path.clone(), noted))
                }
                UpstreamAddr::Tcp(_) => None,
            })
            .collect();
        Waiting {
            left: upstreams.to_vec(),
            before,
        }
    }

    /// Tries each upstream not yet seen accepting; an upstream that accepted once is done.
    pub fn poll(&mut self) {
        let before = &self.before;
        self.left
            .retain(|addrs| !addrs.iter().any(|addr| accepts(addr, before)));
    }

    pub fn is_done(&self) -> bool {
        self.left.is_empty()
    }

    /// The upstreams still waited for, for a log line.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .left
            .iter()
            .map(|addrs| {
                let each: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                each.join(" or ")
            })
            .collect();
        names.join(" ")
    }
}

/// Whether the app accepts on `addr`: a unix socket file among `before` does not count.
fn accepts(addr: &UpstreamAddr, before: &[(PathBuf, Identity)]) -> bool {
    if let UpstreamAddr::Unix(path) = addr
        && let Some((_, old)) = before.iter().find(|(p, _)| p == path)
        && identity(path) == Some(*old)
    {
        return false;
    }
    connect_upstream(addr).is_ok()
}

/// Whether the process listening on the unix socket at `path` is an app another ringway
/// runs (an old process during a binary upgrade): it, or one of its first ancestors (a
/// shell the app was started through), is a ringway other than this process. A listener
/// in another pid namespace (another container's) is none.
fn an_old_app_listens(path: &Path) -> bool {
    let Some(mut pid) = listener_pid(path) else {
        return false;
    };
    let ours = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
    let me = std::process::id();
    for _ in 0..4 {
        let Some((comm, parent)) = comm_and_parent(pid) else {
            return false;
        };
        if pid != me && !ours.trim().is_empty() && comm == ours.trim() {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

/// The process listening on the unix socket at `path`; `None` when it cannot be told, or
/// is not in this pid namespace.
fn listener_pid(path: &Path) -> Option<u32> {
    match super::socket_watch::listening_on(path) {
        super::socket_watch::Listening::Pid(pid) => u32::try_from(pid).ok(),
        _ => None,
    }
}

/// A process's name (`comm`) and its parent's pid, from `/proc/PID/stat`.
fn comm_and_parent(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE PPID ...`: the name may hold spaces and parentheses.
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, comm) = head.split_once('(')?;
    let parent = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some((comm.to_owned(), parent))
}

/// Which file a path names: its device, inode and change time (an inode number freed and
/// given to a new file gets a new change time).
pub(super) type Identity = (u64, u64, i64, i64);

/// The identity of the file at `path`, if there is one.
pub(super) fn identity(path: &std::path::Path) -> Option<Identity> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn one_address_of_a_name_accepting_is_enough() {
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = UpstreamAddr::Tcp(listening.local_addr().unwrap());
        let closed = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            UpstreamAddr::Tcp(gone.local_addr().unwrap())
        };
        let mut waiting = Waiting::new(&[vec![closed.clone(), open], vec![closed.clone()]]);
        waiting.poll();
        assert!(!waiting.is_done());
        assert_eq!(waiting.describe(), closed.to_string());
        let mut both = Waiting::new(&[vec![closed.clone(), closed.clone()]]);
        both.poll();
        assert_eq!(both.describe(), format!("{closed} or {closed}"));
    }

    /// An old app's socket file, there before the app started, does not count, however
    /// well it accepts; the file the new app binds in its place does.
    #[test]
    fn a_socket_file_there_before_the_start_counts_only_once_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let old = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let addr = vec![UpstreamAddr::Unix(path.clone())];
        let mut waiting = Waiting::noting(std::slice::from_ref(&addr), |_| true);
        waiting.poll();
        assert!(!waiting.is_done(), "the old app's socket");
        std::fs::remove_file(&path).unwrap();
        let _new = std::os::unix::net::UnixListener::bind(&path).unwrap();
        waiting.poll();
        assert!(waiting.is_done(), "the new app's socket");
        drop(old);
        // A file left by an app that is gone (stopped without removing it, or killed):
        // no old app listens on it, so the new app's socket counts even where the file
        // system gives the new file the old one's inode (ext4 does; found by review: the
        // app never counted as started after a restart).
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let mut waiting = Waiting::noting(&[vec![UpstreamAddr::Unix(stale.clone())]], |_| true);
        std::fs::remove_file(&stale).unwrap();
        let _app = std::os::unix::net::UnixListener::bind(&stale).unwrap();
        waiting.poll();
        assert!(
            waiting.is_done(),
            "the new app's socket in a stale one's place"
        );
        // With no file there before, the first that accepts counts.
        let fresh = dir.path().join("fresh.sock");
        let mut waiting = Waiting::new(&[vec![UpstreamAddr::Unix(fresh.clone())]]);
        let _app = std::os::unix::net::UnixListener::bind(&fresh).unwrap();
        waiting.poll();
        assert!(waiting.is_done());
    }

    /// A socket another service listens on (here this test process, no ringway's app)
    /// counts as soon as it accepts: it is no app's to replace.
    #[test]
    fn a_socket_another_service_listens_on_counts_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sock");
        let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(listener_pid(&path), Some(std::process::id()));
        assert!(!an_old_app_listens(&path));
        let mut waiting = Waiting::new(&[vec![UpstreamAddr::Unix(path)]]);
        waiting.poll();
        assert!(waiting.is_done());
        let (comm, parent) = comm_and_parent(std::process::id()).unwrap();
        assert!(!comm.is_empty() && parent > 0, "{comm} {parent}");
    }
}
