//! The processes whose memory and CPU the metrics show: ringway itself and the uWSGI
//! processes behind its upstreams (found by `ringway_ebpf::upstream_pids`: the owners of each
//! upstream's listening socket and their descendants). Figures come from the eBPF probes
//! when they run (`rss_stat`, `sched_switch`), else from /proc.

use std::fs;

use ringway_ebpf::Probes;

/// One process's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessFigures {
    /// Process id.
    pub pid: u32,
    /// `ringway`, `uwsgi-master` or `uwsgi-worker`.
    pub role: &'static str,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Where `rss_bytes` comes from: `ebpf` (kmem:rss_stat) or `proc` (/proc/PID/status).
    pub rss_source: &'static str,
    /// CPU time, user + system, seconds (/proc/PID/stat).
    pub cpu_seconds: f64,
    /// On-CPU time measured by the `oncpu` probe since it started watching, seconds.
    pub oncpu_seconds: Option<f64>,
}

/// Figures for ringway and for the `upstream` pids. A pid whose parent is among them is a
/// worker; the others are masters.
pub fn figures(upstream: &[u32], probes: Option<&Probes>) -> Vec<ProcessFigures> {
    let mut out = Vec::with_capacity(upstream.len() + 1);
    out.extend(read(std::process::id(), "ringway", probes));
    for &pid in upstream {
        let role = if parent_pid(pid).is_some_and(|p| upstream.contains(&p)) {
            "uwsgi-worker"
        } else {
            "uwsgi-master"
        };
        out.extend(read(pid, role, probes));
    }
    out
}

fn read(pid: u32, role: &'static str, probes: Option<&Probes>) -> Option<ProcessFigures> {
    let cpu_seconds = cpu_seconds(pid)?;
    let kernel_rss = probes.and_then(|p| p.rss_bytes(pid));
    let (rss_bytes, rss_source) = match kernel_rss {
        Some(bytes) => (bytes, "ebpf"),
        None => (proc_rss(pid)?, "proc"),
    };
    let oncpu_seconds = probes
        .and_then(|p| p.oncpu_ns(pid))
        .map(|ns| ns as f64 / 1e9);
    Some(ProcessFigures {
        pid,
        role,
        rss_bytes,
        rss_source,
        cpu_seconds,
        oncpu_seconds,
    })
}

/// VmRSS from /proc/PID/status, bytes.
fn proc_rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// utime + stime from /proc/PID/stat, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let fields = stat_fields(pid)?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

fn parent_pid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The fields of /proc/PID/stat after the command name (which may hold spaces and parens).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_figures() {
        let me = figures(&[], None);
        assert_eq!(me.len(), 1);
        assert_eq!(me[0].pid, std::process::id());
        assert_eq!(me[0].rss_source, "proc");
        assert!(me[0].rss_bytes > 0);
    }

    #[test]
    fn roles_follow_parentage() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        // This test process plays the master: the child is its worker.
        let figures = figures(&[me, child.id()], None);
        child.kill().unwrap();
        child.wait().unwrap();
        let role = |pid| {
            figures
                .iter()
                .find(|f| f.pid == pid && f.role != "ringway")
                .map(|f| f.role)
        };
        assert_eq!(role(me), Some("uwsgi-master"));
        assert_eq!(role(child.id()), Some("uwsgi-worker"));
    }
}
