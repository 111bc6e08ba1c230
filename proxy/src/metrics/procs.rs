//! The processes whose memory and CPU the metrics show: ringway itself and the uWSGI
//! processes behind its upstreams, found as the holders of each upstream's listening socket
//! (uWSGI's master opens it and every worker inherits it), read from /proc.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::config::UpstreamAddr;

/// One process's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessFigures {
    /// Process id.
    pub pid: u32,
    /// `ringway`, `uwsgi-master` or `uwsgi-worker`.
    pub role: &'static str,
    /// Resident memory, bytes (VmRSS).
    pub rss_bytes: u64,
    /// CPU time, user + system, seconds.
    pub cpu_seconds: f64,
}

/// Pids of the processes holding the listening sockets of `upstreams`, master first.
pub fn upstream_pids(upstreams: &[UpstreamAddr]) -> Vec<u32> {
    let mut inodes = BTreeSet::new();
    for upstream in upstreams {
        match upstream {
            UpstreamAddr::Unix(path) => inodes.extend(unix_listener_inode(path)),
            UpstreamAddr::Tcp(addr) => inodes.extend(tcp_listener_inode(addr.port())),
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let targets: BTreeSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|pid| holds_any(*pid, &targets))
        .collect();
    pids.sort_unstable();
    pids
}

fn holds_any(pid: u32, targets: &BTreeSet<String>) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .ok()
            .and_then(|l| l.to_str().map(|s| targets.contains(s)))
            .unwrap_or(false)
    })
}

/// Inode of the listening unix socket bound at `path`, from /proc/net/unix.
fn unix_listener_inode(path: &Path) -> Option<u64> {
    let table = fs::read_to_string("/proc/net/unix").ok()?;
    let want = path.to_str()?;
    // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = listening.
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() >= 8 && cols[7] == want && cols[3] == "00010000")
            .then(|| cols[6].parse().ok())?
    })
}

/// Inode of a TCP socket listening on `port`, from /proc/net/tcp and tcp6.
fn tcp_listener_inode(port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|file| {
        let table = fs::read_to_string(file).ok()?;
        table.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ... inode (column 9); st 0A = LISTEN.
            (cols.len() > 9 && cols[1].ends_with(&want) && cols[3] == "0A")
                .then(|| cols[9].parse().ok())?
        })
    })
}

/// Figures for ringway and for `upstream` pids (the lowest pid whose parent is not among
/// them is the master).
pub fn figures(upstream: &[u32]) -> Vec<ProcessFigures> {
    let mut out = Vec::with_capacity(upstream.len() + 1);
    out.extend(read(std::process::id(), "ringway"));
    for &pid in upstream {
        let parent = parent_pid(pid);
        let role = if parent.is_some_and(|p| upstream.contains(&p)) {
            "uwsgi-worker"
        } else {
            "uwsgi-master"
        };
        out.extend(read(pid, role));
    }
    out
}

fn read(pid: u32, role: &'static str) -> Option<ProcessFigures> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(ProcessFigures {
        pid,
        role,
        rss_bytes: rss_kib * 1024,
        cpu_seconds: cpu_seconds(pid)?,
    })
}

/// utime + stime from /proc/PID/stat, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

fn parent_pid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_figures() {
        let me = figures(&[]);
        assert_eq!(me.len(), 1);
        assert_eq!(me[0].pid, std::process::id());
        assert!(me[0].rss_bytes > 0);
    }

    #[test]
    fn finds_a_unix_listeners_inode() {
        let dir = std::env::temp_dir().join(format!("ringway-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("up.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(unix_listener_inode(&path).is_some());
        assert!(unix_listener_inode(&dir.join("other.sock")).is_none());
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
