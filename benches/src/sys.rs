//! What the harness reads from and asks of the kernel: /proc accounting (CPU ticks, RSS,
//! process trees), the fd limit, CPU affinity, free ports, scratch directories.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Raises the soft RLIMIT_NOFILE to the hard limit (children inherit it). Returns the new
/// soft limit.
pub fn raise_nofile() -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we pass; raising soft up to hard is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
        }
    }
    Ok(lim.rlim_cur)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind :0, read it, close).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

/// Clock ticks per second for /proc/PID/stat times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf takes an integer and returns one.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// One line of /proc/PID/stat, the fields the harness needs.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime of all threads, in clock ticks.
    pub cpu_ticks: u64,
}

pub fn stat(pid: u32) -> Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    parse_stat(&text).with_context(|| format!("parse /proc/{pid}/stat"))
}

fn parse_stat(text: &str) -> Result<Stat> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let close = text.rfind(')').context("no ')' in stat")?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let get = |field: usize| -> Result<u64> {
        fields
            .get(field - 3)
            .with_context(|| format!("stat field {field} missing"))?
            .parse::<u64>()
            .with_context(|| format!("stat field {field} is not a number"))
    };
    Ok(Stat {
        ppid: u32::try_from(get(4)?).context("ppid")?,
        cpu_ticks: get(14)? + get(15)?,
    })
}

/// VmRSS of a process in bytes (0 for a kernel thread or a process that just ended).
pub fn rss(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// A size line of /proc/PID/status (`key` with its colon), in bytes; 0 if the process is gone.
fn status_bytes(pid: u32, key: &str) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `root` and all its descendants that exist now.
pub fn process_tree(root: u32) -> Result<Vec<u32>> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").context("read /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between readdir and read: skip it.
        if let Ok(stat) = stat(pid) {
            parents.push((pid, stat.ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    Ok(tree)
}

/// CPU ticks (user + sys) summed over `pids`; processes that ended count 0.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| stat(*pid).ok())
        .map(|s| s.cpu_ticks)
        .sum()
}

/// [`cpu_ticks`] of processes that must all be there: `None` once one has ended (its
/// ticks would be lost, and its proxy look cheaper than it was).
pub fn cpu_ticks_of_all(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .map(|pid| stat(*pid).ok().map(|s| s.cpu_ticks))
        .sum()
}

/// VmRSS summed over `pids`, in bytes.
pub fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|pid| rss(*pid)).sum()
}

/// RssAnon summed over `pids`, in bytes: the resident memory that is the processes' own
/// data (heap, stacks), without the pages of mapped files (code), which a process may map
/// and unmap on its own schedule (ringway unmaps them when quiet).
pub fn anon_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|pid| status_bytes(*pid, "RssAnon:")).sum()
}

/// The temp files a set of processes holds: regular files open after their name is gone
/// (O_TMPFILE, or created then unlinked, which is how nginx and ringway spill bodies and
/// answers to disk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TempFiles {
    pub files: usize,
    /// Their sizes summed (st_size; each file counted once however many fds hold it).
    pub bytes: u64,
}

/// What `pids` hold in unlinked regular files now (/proc/PID/fd; processes or fds that go
/// away meanwhile are skipped).
pub fn temp_files(pids: &[u32]) -> TempFiles {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut out = TempFiles::default();
    for pid in pids {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let unlinked = fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().ends_with(" (deleted)"));
            if !unlinked {
                continue;
            }
            // The magic link opens the file itself, name or not.
            let Ok(meta) = fs::metadata(fd.path()) else {
                continue;
            };
            if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                out.files += 1;
                out.bytes += meta.len();
            }
        }
    }
    out
}

/// Bytes an unprivileged process may still write on the filesystem holding `path`.
pub fn free_disk(path: &Path) -> Result<u64> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} holds a NUL byte", path.display()))?;
    // SAFETY: statvfs is plain data; zeroed is valid, and statvfs only writes into it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a NUL-terminated string and `stat` a valid struct, both live for the
    // call.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", path.display()));
    }
    // The field types vary by target (u32 or u64); both fit in u64.
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Number of CPUs this process may run on, and their ids.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads the set within its bounds (i < CPU_SETSIZE).
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Restricts the calling process (or the child, in pre_exec) to `cpus`. Only calls
/// sched_setaffinity, which is async-signal-safe.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu < libc::CPU_SETSIZE as usize {
            // SAFETY: cpu is below CPU_SETSIZE, so CPU_SET stays inside the set.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the caller.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A scratch directory, removed with everything in it on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{nanos:08x}", std::process::id()));
        if path.exists() {
            bail!("{} already exists", path.display());
        }
        fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The three load averages of /proc/loadavg.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Kernel release and the model name of the CPU, for the report.
pub fn machine() -> (String, String) {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    (kernel, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "123 (uWSGI http 1) S 77 123 123 0 -1 4194560 1 0 0 0 250 31 0 0 20 0 1 0 \
                    1 1 1 1 1 1 1 1 1 1 1";
        let stat = parse_stat(line).expect("parse");
        assert_eq!(stat.ppid, 77);
        assert_eq!(stat.cpu_ticks, 281);
    }

    #[test]
    fn an_unlinked_open_file_is_a_temp_file() -> Result<()> {
        let dir = TempDir::new("ringway-bench-sys")?;
        let path = dir.path().join("spill");
        let mut file = fs::File::create(&path)?;
        std::io::Write::write_all(&mut file, &[7u8; 1000])?;
        let me = [std::process::id()];
        let before = temp_files(&me);
        fs::remove_file(&path)?;
        let held = temp_files(&me);
        assert_eq!(held.files, before.files + 1);
        assert!(held.bytes >= before.bytes + 1000);
        drop(file);
        assert_eq!(temp_files(&me), before);
        Ok(())
    }

    #[test]
    fn own_process_is_visible() {
        let me = std::process::id();
        assert!(rss(me) > 0);
        assert!(process_tree(me).expect("tree").contains(&me));
        assert!(free_disk(&std::env::temp_dir()).expect("statvfs") > 0);
    }
}
