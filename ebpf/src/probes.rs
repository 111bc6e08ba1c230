//! Loading and attaching the probes, one family at a time.
//!
//! Each family (`tcp`, `uring`, `mem`) is its own object and its own
//! [`aya::Ebpf`]; each program in it is attached on its own. Whatever the
//! kernel refuses is recorded as a [`ProbeStatus`] with the reason, logged
//! once with `tracing::warn!` at load, and the rest keeps working: nothing
//! here panics or fails the proxy.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use aya::maps::{Array, HashMap, MapData, RingBuf};
use aya::programs::{BtfTracePoint, CgroupAttachMode, SockOps};
use aya::{Btf, Ebpf, EbpfLoader};

use crate::maps::{AtomicHist, Sums};
use crate::types::{RawOnCpu, RawRss};

/// Probe `tcp_rtt`: the sock_ops program (srtt, rttvar, retransmits, live
/// bytes and socket memory per connection, accept-queue entry time, and the
/// close: lifetime, final bytes, histograms, closed-connection records).
pub const PROBE_TCP_RTT: &str = "tcp_rtt";
/// Probe `tcp_life`: `inet_sock_set_state`, the fallback for connection
/// birth and close (lifetime, final bytes and srtt, histograms, closed
/// records) when `tcp_rtt` is down.
pub const PROBE_TCP_LIFE: &str = "tcp_life";
/// Probe `uring_latency`: io_uring submit → complete latency by opcode.
pub const PROBE_URING: &str = "uring_latency";
/// Probe `rss`: resident memory of the watched processes from `rss_stat`.
pub const PROBE_RSS: &str = "rss";
/// Probe `oncpu`: on-CPU time of the watched processes from `sched_switch`.
pub const PROBE_ONCPU: &str = "oncpu";

/// Every probe, in report order.
pub const ALL_PROBES: [&str; 5] = [
    PROBE_TCP_RTT,
    PROBE_TCP_LIFE,
    PROBE_URING,
    PROBE_RSS,
    PROBE_ONCPU,
];

/// The probes that match processes by tgid, in [`ALL_PROBES`] order.
const PID_KEYED: [&str; 3] = [PROBE_URING, PROBE_RSS, PROBE_ONCPU];

/// The figures a probe provides, for the "missing figures" message.
pub fn figures_of(probe: &str) -> &'static str {
    match probe {
        PROBE_TCP_RTT => "live per-connection srtt/rttvar/retransmits/socket memory, accept wait",
        PROBE_TCP_LIFE => {
            "connection lifetime, bytes in/out and RTT histograms, closed-connection table"
        }
        PROBE_URING => "io_uring latency by opcode",
        PROBE_RSS => "live resident memory (falls back to /proc)",
        PROBE_ONCPU => "on-CPU time of ringway and the workers",
        _ => "",
    }
}

static TCP_OBJ: &[u8] = aya::include_bytes_aligned!("../obj/tcp.bpf.o");
static URING_OBJ: &[u8] = aya::include_bytes_aligned!("../obj/uring.bpf.o");
static MEM_OBJ: &[u8] = aya::include_bytes_aligned!("../obj/mem.bpf.o");

/// What to watch.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Local ports of ringway's listeners: connections accepted on them are measured.
    pub listen_ports: Vec<u16>,
    /// ringway's own processes: io_uring latency, RSS and on-CPU time.
    pub proxy_pids: Vec<u32>,
    /// uWSGI workers: RSS and on-CPU time.
    pub worker_pids: Vec<u32>,
    /// cgroup v2 directory for the sock_ops program; default: the cgroup2
    /// root found in /proc/mounts (every socket on the machine, filtered by port).
    pub cgroup: Option<PathBuf>,
}

/// What a watched process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// ringway itself: its io_uring rings are measured as well.
    Proxy,
    /// An upstream worker: memory and CPU only.
    Worker,
}

/// Whether one probe runs, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeStatus {
    /// One of [`ALL_PROBES`].
    pub name: &'static str,
    /// Loaded and attached.
    pub up: bool,
    /// Why it is down.
    pub reason: Option<String>,
}

/// Errors of the probe handles.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The committed object is empty (see ebpf/README.md).
    #[error("eBPF object {0} was not built (run ebpf/build-objects.sh)")]
    NotBuilt(&'static str),
    /// The family holding this figure is not loaded.
    #[error("probe family {0} is not loaded")]
    Down(&'static str),
    /// A map operation failed.
    #[error("eBPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The error.
        source: aya::maps::MapError,
    },
}

/// The loaded probes. Dropping it detaches everything.
pub struct Probes {
    pub(crate) tcp: Option<Ebpf>,
    pub(crate) uring: Option<Ebpf>,
    pub(crate) mem: Option<Ebpf>,
    pub(crate) closed: Mutex<Option<RingBuf<MapData>>>,
    pub(crate) statuses: Vec<ProbeStatus>,
    /// The pids watched as [`Role::Worker`], those of [`Config::worker_pids`] included: the
    /// caller's list of uWSGI processes is diffed against this, never against its own last
    /// list, which missed the processes the load found (found by review).
    workers: BTreeSet<u32>,
    pub(crate) accept_wait: AtomicHist,
    pub(crate) sums: Sums,
    pub(crate) page_size: u64,
}

impl Probes {
    /// Loads and attaches every probe it can. Never fails: see [`Probes::statuses`].
    pub fn load(config: &Config) -> Probes {
        let mut probes = Probes {
            tcp: None,
            uring: None,
            mem: None,
            closed: Mutex::new(None),
            statuses: Vec::new(),
            workers: config.worker_pids.iter().copied().collect(),
            accept_wait: AtomicHist::default(),
            sums: Sums::default(),
            page_size: page_size(),
        };
        if let Err(reason) = check_privileges() {
            for name in ALL_PROBES {
                probes.down(name, reason.clone());
            }
            probes.warn_missing();
            return probes;
        }
        raise_memlock();
        let btf = Btf::from_sys_fs().map_err(|e| format!("kernel BTF unavailable: {}", chain(&e)));

        probes.load_tcp(config, btf.as_ref());
        match pids_are_the_kernels() {
            Ok(()) => {
                probes.load_uring(config, btf.as_ref());
                probes.load_mem(config, btf.as_ref());
            }
            Err(reason) => PID_KEYED
                .iter()
                .for_each(|n| probes.down(n, reason.clone())),
        }
        probes.warn_missing();
        probes
    }

    /// The state of every probe, in [`ALL_PROBES`] order.
    pub fn statuses(&self) -> &[ProbeStatus] {
        &self.statuses
    }

    /// Whether the named probe is up.
    pub fn is_up(&self, name: &str) -> bool {
        self.statuses.iter().any(|s| s.name == name && s.up)
    }

    /// The pids watched as [`Role::Worker`] (from [`Config::worker_pids`] and
    /// [`Probes::watch_pid`], less those unwatched), whether or not the `mem` family is up.
    pub fn workers(&self) -> &BTreeSet<u32> {
        &self.workers
    }

    /// Starts watching a process (memory and CPU; io_uring too for [`Role::Proxy`]).
    /// Figures of a family that is down are skipped silently (its status says why). A worker
    /// counts in [`Probes::workers`] even when a map refuses it (full): trying again at every
    /// rescan would not make room.
    pub fn watch_pid(&mut self, pid: u32, role: Role) -> Result<(), ProbeError> {
        if role == Role::Worker {
            self.workers.insert(pid);
        }
        if let Some(ebpf) = self.mem.as_mut() {
            watch_mem(ebpf, pid)?;
        }
        if role == Role::Proxy
            && let Some(ebpf) = self.uring.as_mut()
        {
            insert_flag(ebpf, "watch_tgids", pid)?;
        }
        Ok(())
    }

    /// Stops watching a process and forgets its figures.
    pub fn unwatch_pid(&mut self, pid: u32) {
        self.workers.remove(&pid);
        if let Some(ebpf) = self.mem.as_mut() {
            // Absent keys are fine: the value maps only hold pids seen in the kernel.
            let _ = remove_key::<u8>(ebpf, "watch_pids", pid);
            let _ = remove_key::<RawRss>(ebpf, "rss", pid);
            let _ = remove_key::<RawOnCpu>(ebpf, "oncpu", pid);
        }
        if let Some(ebpf) = self.uring.as_mut() {
            let _ = remove_key::<u8>(ebpf, "watch_tgids", pid);
        }
    }

    fn load_tcp(&mut self, config: &Config, btf: Result<&Btf, &String>) {
        let names = [PROBE_TCP_RTT, PROBE_TCP_LIFE];
        let mut ebpf = match open("tcp.bpf.o", TCP_OBJ, btf) {
            Ok(e) => e,
            Err(reason) => return names.iter().for_each(|n| self.down(n, reason.clone())),
        };
        let ports: Result<(), ProbeError> = config
            .listen_ports
            .iter()
            .try_for_each(|p| insert_flag(&mut ebpf, "watch_ports", *p));
        let netns = ports.and_then(|()| watch_own_netns(&mut ebpf));
        if let Err(e) = netns {
            return names.iter().for_each(|n| self.down(n, e.to_string()));
        }
        let sockops = attach_sockops(&mut ebpf, config);
        self.record(PROBE_TCP_RTT, sockops);
        let life = btf
            .map_err(Clone::clone)
            .and_then(|btf| attach_tp_btf(&mut ebpf, "rw_set_state", "inet_sock_set_state", btf));
        self.record(PROBE_TCP_LIFE, life);
        self.closed = Mutex::new(
            ebpf.take_map("closed")
                .and_then(|m| RingBuf::try_from(m).ok()),
        );
        self.tcp = Some(ebpf);
    }

    fn load_uring(&mut self, config: &Config, btf: Result<&Btf, &String>) {
        let mut ebpf = match open("uring.bpf.o", URING_OBJ, btf) {
            Ok(e) => e,
            Err(reason) => return self.down(PROBE_URING, reason),
        };
        let result = (|| {
            for pid in &config.proxy_pids {
                insert_flag(&mut ebpf, "watch_tgids", *pid).map_err(|e| e.to_string())?;
            }
            let btf = btf.map_err(Clone::clone)?;
            attach_tp_btf(&mut ebpf, "rw_uring_submit", "io_uring_submit_req", btf)?;
            attach_tp_btf(&mut ebpf, "rw_uring_complete", "io_uring_complete", btf)
        })();
        self.record(PROBE_URING, result);
        self.uring = Some(ebpf);
    }

    fn load_mem(&mut self, config: &Config, btf: Result<&Btf, &String>) {
        let names = [PROBE_RSS, PROBE_ONCPU];
        let mut ebpf = match open("mem.bpf.o", MEM_OBJ, btf) {
            Ok(e) => e,
            Err(reason) => return names.iter().for_each(|n| self.down(n, reason.clone())),
        };
        let mut pids = config.proxy_pids.iter().chain(&config.worker_pids);
        if let Err(e) = pids.try_for_each(|p| watch_mem(&mut ebpf, *p)) {
            return names.iter().for_each(|n| self.down(n, e.to_string()));
        }
        let btf = btf.map_err(Clone::clone);
        let rss = btf
            .clone()
            .and_then(|b| attach_tp_btf(&mut ebpf, "rw_rss_stat", "rss_stat", b));
        self.record(PROBE_RSS, rss);
        let oncpu =
            btf.and_then(|b| attach_tp_btf(&mut ebpf, "rw_sched_switch", "sched_switch", b));
        self.record(PROBE_ONCPU, oncpu);
        self.mem = Some(ebpf);
    }

    fn record(&mut self, name: &'static str, result: Result<(), String>) {
        match result {
            Ok(()) => self.statuses.push(ProbeStatus {
                name,
                up: true,
                reason: None,
            }),
            Err(reason) => self.down(name, reason),
        }
    }

    fn down(&mut self, name: &'static str, reason: String) {
        self.statuses.push(ProbeStatus {
            name,
            up: false,
            reason: Some(reason),
        });
    }

    /// The one log line per missing probe, at load.
    fn warn_missing(&self) {
        for s in self.statuses.iter().filter(|s| !s.up) {
            tracing::warn!(
                probe = s.name,
                missing = figures_of(s.name),
                reason = s.reason.as_deref().unwrap_or(""),
                "eBPF probe down; its figures are not collected"
            );
        }
    }
}

fn open(name: &'static str, bytes: &[u8], btf: Result<&Btf, &String>) -> Result<Ebpf, String> {
    if bytes.is_empty() {
        return Err(ProbeError::NotBuilt(name).to_string());
    }
    let btf = btf.map_err(Clone::clone)?;
    EbpfLoader::new()
        .btf(Some(btf))
        .load(bytes)
        .map_err(|e| format!("loading {name}: {}", chain(&e)))
}

fn attach_tp_btf(ebpf: &mut Ebpf, prog: &str, tracepoint: &str, btf: &Btf) -> Result<(), String> {
    let program: &mut BtfTracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| format!("program {prog} missing from object"))?
        .try_into()
        .map_err(|e| format!("{prog}: {}", chain(&e)))?;
    program
        .load(tracepoint, btf)
        .map_err(|e| format!("loading {prog} (tp_btf/{tracepoint}): {}", chain(&e)))?;
    program
        .attach()
        .map_err(|e| format!("attaching {prog} (tp_btf/{tracepoint}): {}", chain(&e)))?;
    Ok(())
}

fn attach_sockops(ebpf: &mut Ebpf, config: &Config) -> Result<(), String> {
    if !has_cap(CAP_NET_ADMIN) {
        return Err("sock_ops on a cgroup needs CAP_NET_ADMIN".into());
    }
    let path = match &config.cgroup {
        Some(p) => p.clone(),
        None => {
            crate::mount::cgroup2_root().map_err(|e| format!("finding the cgroup2 mount: {e}"))?
        }
    };
    let cgroup = std::fs::File::open(&path)
        .map_err(|e| format!("opening cgroup {}: {e}", path.display()))?;
    let program: &mut SockOps = ebpf
        .program_mut("rw_sockops")
        .ok_or("program rw_sockops missing from object")?
        .try_into()
        .map_err(|e| format!("rw_sockops: {}", chain(&e)))?;
    program
        .load()
        .map_err(|e| format!("loading rw_sockops: {}", chain(&e)))?;
    // aya attaches through a bpf_link (kernel >= 5.7). Cgroup links always
    // coexist with other programs on the cgroup, and link_create refuses the
    // legacy ALLOW_MULTI flag (EINVAL), so the mode must be the default one.
    program
        .attach(cgroup, CgroupAttachMode::Single)
        .map_err(|e| format!("attaching rw_sockops to {}: {}", path.display(), chain(&e)))?;
    Ok(())
}

/// The inode of the initial pid namespace (`PROC_PID_INIT_INO`, include/linux/proc_ns.h).
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// Whether the pids this process knows (its own, those in /proc) are the tgids the kernel
/// programs compare, which are numbered in the initial pid namespace. In a container they
/// are not: ringway is pid 1 there, which is the host's init to the programs, whose memory,
/// CPU and rings were reported as ringway's, with every probe up (found by review). The
/// probes keyed by pid then stay down, and RSS comes from /proc.
fn pids_are_the_kernels() -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino()) {
        Ok(PROC_PID_INIT_INO) => Ok(()),
        Ok(inode) => Err(format!(
            "in a pid namespace other than the host's (pid:[{inode}], a container): the \
             programs see the host's pids, not this namespace's"
        )),
        Err(e) => Err(format!(
            "cannot tell the pid namespace (/proc/self/ns/pid: {e})"
        )),
    }
}

/// Puts the inode of this process's network namespace in `watch_netns`: the listen ports
/// are ringway's in it only (a container serving on the same port in its own namespace is
/// not ringway's; found by review). Unknown (no /proc): 0, any namespace, as before.
fn watch_own_netns(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    use std::os::unix::fs::MetadataExt;
    let inum = std::fs::metadata("/proc/self/ns/net")
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
        .unwrap_or(0);
    let map = "watch_netns";
    let m = ebpf.map_mut(map).ok_or(ProbeError::Down(map))?;
    let mut array: Array<_, u32> =
        Array::try_from(m).map_err(|source| ProbeError::Map { map, source })?;
    array
        .set(0, inum, 0)
        .map_err(|source| ProbeError::Map { map, source })
}

fn insert_flag<K: aya::Pod>(ebpf: &mut Ebpf, map: &'static str, key: K) -> Result<(), ProbeError> {
    let m = ebpf.map_mut(map).ok_or(ProbeError::Down(map))?;
    let mut hash: HashMap<_, K, u8> =
        HashMap::try_from(m).map_err(|source| ProbeError::Map { map, source })?;
    hash.insert(key, 1, 0)
        .map_err(|source| ProbeError::Map { map, source })
}

/// Memory and CPU of a process: the same whether it is watched at load or later, so that a
/// process the load found has its on-CPU figure from the start as well (0 until it runs).
fn watch_mem(ebpf: &mut Ebpf, pid: u32) -> Result<(), ProbeError> {
    insert_flag(ebpf, "watch_pids", pid)?;
    start_oncpu(ebpf, pid)
}

/// Creates a process's on-CPU entry at zero, so that the probe only ever adds to it (a
/// process watched again keeps its figures).
fn start_oncpu(ebpf: &mut Ebpf, pid: u32) -> Result<(), ProbeError> {
    const NO_EXIST: u64 = 1; // BPF_NOEXIST
    let map = "oncpu";
    let m = ebpf.map_mut(map).ok_or(ProbeError::Down(map))?;
    let mut hash: HashMap<_, u32, RawOnCpu> =
        HashMap::try_from(m).map_err(|source| ProbeError::Map { map, source })?;
    match hash.insert(pid, RawOnCpu::default(), NO_EXIST) {
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
        {
            Ok(())
        }
        other => other.map_err(|source| ProbeError::Map { map, source }),
    }
}

fn remove_key<V: aya::Pod>(ebpf: &mut Ebpf, map: &'static str, key: u32) -> Result<(), ProbeError> {
    let m = ebpf.map_mut(map).ok_or(ProbeError::Down(map))?;
    // aya checks the value size against the map's, so V must be the real type.
    let mut hash: HashMap<_, u32, V> =
        HashMap::try_from(m).map_err(|source| ProbeError::Map { map, source })?;
    hash.remove(&key)
        .map_err(|source| ProbeError::Map { map, source })
}

/// The error and its sources on one line (aya nests the errno deep down).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities from /proc/self/status (no libcap needed).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has_cap(cap: u32) -> bool {
    effective_caps() & (1 << cap) != 0
}

fn check_privileges() -> Result<(), String> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Ok(())
    } else {
        Err("needs root or CAP_BPF+CAP_PERFMON".into())
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones to the
/// memory cgroup. Raising it is harmless either way, and a failure is only
/// worth a debug line (the load that needs it reports its own error).
fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads one valid, initialised rlimit struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if rc != 0 {
        tracing::debug!(
            "setrlimit(RLIMIT_MEMLOCK): {}",
            std::io::Error::last_os_error()
        );
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Probes>();
    }

    #[test]
    fn an_empty_object_is_not_built_not_a_panic() {
        let no_btf = String::from("no BTF in this test");
        let err = open("x.bpf.o", &[], Err(&no_btf)).err().unwrap();
        assert!(err.contains("was not built"), "{err}");
        let err = open("x.bpf.o", b"not an ELF", Err(&no_btf)).err().unwrap();
        assert_eq!(err, no_btf);
    }

    #[test]
    fn the_pid_keyed_probes_are_in_report_order() {
        let order: Vec<&str> = ALL_PROBES
            .into_iter()
            .filter(|p| PID_KEYED.contains(p))
            .collect();
        assert_eq!(order, PID_KEYED);
    }

    #[test]
    fn every_probe_has_figures() {
        assert!(ALL_PROBES.iter().all(|p| !figures_of(p).is_empty()));
    }
}
