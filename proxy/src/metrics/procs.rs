//! The processes whose memory and CPU the metrics show: ringway itself and the uWSGI
//! processes behind its upstreams (found by `ringway_ebpf::upstream_pids`: the owners of each
//! upstream's listening socket and their descendants). Figures come from the eBPF probes
//! when they run (`rss_stat`, `sched_switch`), else from /proc.

use std::fs;

use ringway_ebpf::{Probes, RssSource};

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
    // The probes answer from /proc themselves until the first rss_stat event: the source
    // is theirs to tell (every figure was labelled `ebpf` once; found by review).
    let (rss_bytes, rss_source) = match probes.and_then(|p| p.rss(pid)) {
        Some(rss) => (rss.bytes, source_label(rss.source)),
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

/// `rss_source` as the metrics show it.
fn source_label(source: RssSource) -> &'static str {
    match source {
        RssSource::Kernel => "ebpf",
        RssSource::Proc => "proc",
    }
}

/// VmRSS from /proc/PID/status, bytes.
fn proc_rss(pid: u32) -> Option<u64> {
    // Its Name line may not be UTF-8 (see `stat_fields`).
    let status = fs::read(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = String::from_utf8_lossy(&status)
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

/// The fields of /proc/PID/stat after the command name (which may hold spaces, parens and
/// bytes that are not UTF-8: a title cut at the kernel's 15 bytes inside a character, which
/// made the process look gone at every scrape; found by review).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.iter().rposition(|&b| b == b')')? + 2;
    let rest = std::str::from_utf8(stat.get(after_name..)?).ok()?;
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

    /// A pid the probes do not watch (or watch without an rss_stat event yet) is read from
    /// /proc by the probes themselves, and says so: only the kernel's counters are `ebpf`.
    #[test]
    fn rss_read_from_proc_by_the_probes_says_proc() {
        let probes = Probes::load(&ringway_ebpf::Config::default());
        let me = figures(&[], Some(&probes));
        assert_eq!(me.len(), 1);
        assert_eq!(me[0].rss_source, "proc", "{:?}", me[0]);
        assert!(me[0].rss_bytes > 0);
    }

    #[test]
    fn a_process_whose_name_is_not_utf8_is_read() {
        use std::io::BufRead;
        // A name cut inside a character, as a title cut at 15 bytes may be.
        let script = "import ctypes, time\n\
                      ctypes.CDLL(None).prctl(15, b'worker-caf\\xc3', 0, 0, 0)\n\
                      print('named', flush=True)\n\
                      time.sleep(5)\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "named");
        let stat = fs::read(format!("/proc/{}/stat", child.id())).unwrap();
        assert!(std::str::from_utf8(&stat).is_err(), "the name is not UTF-8");
        let (fields, rss) = (stat_fields(child.id()), proc_rss(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            fields.and_then(|f| f.get(1).cloned()),
            Some(std::process::id().to_string())
        );
        assert!(rss.is_some_and(|b| b > 0));
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
