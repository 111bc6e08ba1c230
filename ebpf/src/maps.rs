//! Typed readers over the probes' maps, returning plain structs in base units.
//!
//! In-kernel histograms are per-CPU log2 arrays: bucket 0 counts values
//! <= 1, bucket i values in (2^(i-1), 2^i], the last bucket the rest. They
//! are summed over CPUs here and handed out as [`Histogram`] (cumulative,
//! seconds or bytes), ready for Prometheus.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aya::Ebpf;
use aya::maps::{HashMap, PerCpuArray};

use crate::probes::{ProbeError, Probes};
use crate::types::*;

/// A histogram in base units, cumulative as Prometheus wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// `(upper bound, observations <= upper bound)`; the last bound is +Inf.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

/// The sums of the in-kernel histograms, kept across reads. Each CPU's sum is a u64 of the
/// histogram's unit that wraps: io_uring latencies in nanoseconds add a second per second
/// per request in flight, and connection lifetimes, when they were in nanoseconds, reached
/// 2^64 in 21 days at 10,000 connections, and an exported `_sum` then fell back (found by
/// review). A read adds each CPU's growth since the last one.
#[derive(Debug, Default)]
pub(crate) struct Sums {
    kept: Mutex<std::collections::HashMap<(&'static str, u32), KeptSum>>,
}

#[derive(Debug, Default)]
struct KeptSum {
    /// Each CPU's raw sum at the last read.
    last: Vec<u64>,
    total: u128,
}

impl Sums {
    /// The sum of histogram `key` since the probes were loaded, given its per-CPU values now.
    fn total(&self, key: (&'static str, u32), cpus: &[RawHist]) -> u128 {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = kept.entry(key).or_default();
        kept.last.resize(cpus.len().max(kept.last.len()), 0);
        for (last, h) in kept.last.iter_mut().zip(cpus) {
            kept.total += u128::from(h.sum.wrapping_sub(*last));
            *last = h.sum;
        }
        kept.total
    }
}

impl Histogram {
    /// From per-CPU raw histograms whose values are `unit` base units each
    /// (1e-6 for µs → s, 1e-9 for ns → s, 1.0 for bytes), their sum `kept` across reads.
    fn from_cpus(cpus: &[RawHist], kept: u128, unit: f64) -> Histogram {
        let mut histogram = Histogram::from_raw(cpus, unit);
        histogram.sum = kept as f64 * unit;
        histogram
    }

    /// From per-CPU raw histograms whose values are `unit` base units each
    /// (1e-6 for µs → s, 1e-9 for ns → s, 1.0 for bytes).
    pub fn from_raw<'a>(cpus: impl IntoIterator<Item = &'a RawHist>, unit: f64) -> Histogram {
        let mut buckets = [0u64; HIST_BUCKETS];
        let (mut sum, mut count) = (0u64, 0u64);
        for h in cpus {
            count += h.count;
            sum = sum.wrapping_add(h.sum);
            for (acc, b) in buckets.iter_mut().zip(h.buckets.iter()) {
                *acc += b;
            }
        }
        Histogram::from_buckets(&buckets, sum, count, unit)
    }

    fn from_buckets(raw: &[u64; HIST_BUCKETS], sum: u64, count: u64, unit: f64) -> Histogram {
        let mut cumulative = 0;
        let buckets = raw
            .iter()
            .enumerate()
            .map(|(i, n)| {
                cumulative += n;
                let bound = if i == HIST_BUCKETS - 1 {
                    f64::INFINITY
                } else {
                    (1u64 << i) as f64 * unit
                };
                (bound, cumulative)
            })
            .collect();
        Histogram {
            buckets,
            sum: sum as f64 * unit,
            count,
        }
    }
}

/// The bucket of a value (same rule as `rw_hist_observe` in bpf/common.h).
pub(crate) fn bucket_of(v: u64) -> usize {
    let b = if v <= 1 {
        0
    } else {
        (64 - (v - 1).leading_zeros()) as usize
    };
    b.min(HIST_BUCKETS - 1)
}

/// A histogram filled from userspace (accept wait).
#[derive(Debug)]
pub(crate) struct AtomicHist {
    buckets: [AtomicU64; HIST_BUCKETS],
    sum: AtomicU64,
    count: AtomicU64,
}

impl Default for AtomicHist {
    fn default() -> Self {
        AtomicHist {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl AtomicHist {
    pub(crate) fn observe(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, unit: f64) -> Histogram {
        let raw = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        Histogram::from_buckets(
            &raw,
            self.sum.load(Ordering::Relaxed),
            self.count.load(Ordering::Relaxed),
            unit,
        )
    }
}

/// One accepted TCP connection, live or closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnStats {
    /// Socket cookie (`getsockopt(SO_COOKIE)` on ringway's fd gives the same number).
    pub cookie: u64,
    /// ringway's side.
    pub local: SocketAddr,
    /// The client.
    pub remote: SocketAddr,
    /// TCP state at the last refresh (`include/net/tcp_states.h`; 7 = closed).
    pub state: u16,
    /// Smoothed RTT, µs (as `tcpi_rtt`, `ss -ti` rtt:X/…).
    pub srtt_us: u32,
    /// RTT variance, µs (as `tcpi_rttvar`).
    pub rttvar_us: u32,
    /// Retransmitted segments (as `tcpi_total_retrans`).
    pub retrans: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
    /// Bytes sent and acknowledged (as `tcpi_bytes_acked`). After a close
    /// whose FIN was acknowledged this is data + 1: the kernel counts
    /// sequence space, and a FIN takes one.
    pub bytes_acked: u64,
    /// Bytes received (as `tcpi_bytes_received`); + 1 for the peer's FIN.
    pub bytes_received: u64,
    /// CLOCK_MONOTONIC ns when the handshake completed.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns of the last refresh (RTT samples, retransmits, state changes).
    pub update_ns: u64,
    /// CLOCK_MONOTONIC ns of the close, for closed connections.
    pub end_ns: Option<u64>,
    /// Send queue bytes (`sk_wmem_queued`).
    pub sk_wmem_queued: u32,
    /// Receive buffer bytes (`sk_rmem_alloc`).
    pub sk_rmem_alloc: u32,
}

impl ConnStats {
    fn from_raw(c: &RawConn) -> ConnStats {
        let addr = |a: &[u8; 16], port: u16| {
            let ip = if c.family == libc::AF_INET6 as u16 {
                IpAddr::V6(Ipv6Addr::from(*a))
            } else {
                IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
            };
            SocketAddr::new(ip, port)
        };
        ConnStats {
            cookie: c.cookie,
            local: addr(&c.laddr, c.lport),
            remote: addr(&c.raddr, c.rport),
            state: c.state,
            srtt_us: c.srtt_us,
            rttvar_us: c.rttvar_us,
            retrans: c.total_retrans,
            segs_in: c.segs_in,
            segs_out: c.segs_out,
            bytes_acked: c.bytes_acked,
            bytes_received: c.bytes_received,
            start_ns: c.start_ns,
            update_ns: c.update_ns,
            end_ns: (c.end_ns != 0).then_some(c.end_ns),
            sk_wmem_queued: c.sk_wmem_queued,
            sk_rmem_alloc: c.sk_rmem_alloc,
        }
    }

    /// Established → close for a closed connection, established → now for a live one.
    pub fn lifetime(&self) -> Duration {
        let end = self.end_ns.unwrap_or_else(monotonic_ns);
        Duration::from_nanos(end.saturating_sub(self.start_ns))
    }
}

/// io_uring latency of one opcode.
#[derive(Clone, Debug, PartialEq)]
pub struct UringOpLatency {
    /// `IORING_OP_*` number.
    pub opcode: u8,
    /// Its name (`"RECV"`, `"SEND"`, …), `"OP_<n>"` when unknown.
    pub name: String,
    /// Submit → complete, seconds; `count` is the number of completions.
    pub latency: Histogram,
}

/// Where an RSS figure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssSource {
    /// The kernel's counters at the last `rss_stat` event.
    Kernel,
    /// /proc/PID/status: no `rss_stat` event since the process was watched
    /// (the tracepoint fires on change only).
    Proc,
}

/// Resident memory of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rss {
    /// file + anon + shmem, bytes (what VmRSS shows).
    pub bytes: u64,
    /// Anonymous memory, bytes.
    pub anon: u64,
    /// File-backed memory, bytes.
    pub file: u64,
    /// Shared memory, bytes.
    pub shmem: u64,
    /// Swapped out, bytes.
    pub swap: u64,
    /// The source.
    pub source: RssSource,
}

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid, owned struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

fn map<'a>(
    ebpf: Option<&'a Ebpf>,
    family: &'static str,
    name: &'static str,
) -> Result<&'a aya::maps::Map, ProbeError> {
    ebpf.ok_or(ProbeError::Down(family))?
        .map(name)
        .ok_or(ProbeError::Down(name))
}

fn per_cpu_hist(
    (ebpf, sums): (Option<&Ebpf>, &Sums),
    family: &'static str,
    name: &'static str,
    index: u32,
    unit: f64,
) -> Result<Histogram, ProbeError> {
    let arr: PerCpuArray<_, RawHist> = PerCpuArray::try_from(map(ebpf, family, name)?)
        .map_err(|source| ProbeError::Map { map: name, source })?;
    let values = arr
        .get(&index, 0)
        .map_err(|source| ProbeError::Map { map: name, source })?;
    let kept = sums.total((name, index), &values);
    Ok(Histogram::from_cpus(&values, kept, unit))
}

impl Probes {
    /// Live connections on the watched ports (closed ones are in [`Probes::closed_conns`]).
    pub fn conn_stats(&self) -> Result<Vec<ConnStats>, ProbeError> {
        let conns: HashMap<_, u64, RawConn> =
            HashMap::try_from(map(self.tcp.as_ref(), "tcp", "conns")?).map_err(|source| {
                ProbeError::Map {
                    map: "conns",
                    source,
                }
            })?;
        // Entries that vanish while iterating (closed meanwhile) are skipped.
        Ok(conns
            .iter()
            .filter_map(|r| r.ok())
            .map(|(_, c)| ConnStats::from_raw(&c))
            .collect())
    }

    /// One live connection by socket cookie.
    pub fn conn(&self, cookie: u64) -> Option<ConnStats> {
        let conns: HashMap<_, u64, RawConn> =
            HashMap::try_from(map(self.tcp.as_ref(), "tcp", "conns").ok()?).ok()?;
        conns.get(&cookie, 0).ok().map(|c| ConnStats::from_raw(&c))
    }

    /// Connections closed since the last call (oldest first), drained from
    /// the ring buffer. Records that found the buffer full are counted in
    /// [`Probes::closed_dropped`]. Takes `&self` (the ring has its own lock),
    /// so readers never need exclusive access to the probes.
    pub fn closed_conns(&self) -> Vec<ConnStats> {
        let mut out = Vec::new();
        let Ok(mut ring) = self.closed.lock() else {
            return out;
        };
        if let Some(ring) = ring.as_mut() {
            while let Some(item) = ring.next() {
                if item.len() >= std::mem::size_of::<RawConn>() {
                    // SAFETY: the record is a `struct rw_conn` written by the probe;
                    // read_unaligned copies it without assuming the ring's alignment.
                    let raw = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<RawConn>()) };
                    out.push(ConnStats::from_raw(&raw));
                }
            }
        }
        out
    }

    /// Closed-connection records lost because nobody drained the ring buffer.
    pub fn closed_dropped(&self) -> u64 {
        let Ok(m) = map(self.tcp.as_ref(), "tcp", "drops") else {
            return 0;
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(m) else {
            return 0;
        };
        arr.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }

    /// srtt of each connection at close, seconds.
    pub fn rtt_histogram(&self) -> Result<Histogram, ProbeError> {
        per_cpu_hist(
            (self.tcp.as_ref(), &self.sums),
            "tcp",
            "hists",
            HIST_RTT_US,
            1e-6,
        )
    }

    /// Handshake → close, seconds. Buckets up to 2^38 µs (about 76 hours), then +Inf.
    pub fn lifetime_histogram(&self) -> Result<Histogram, ProbeError> {
        per_cpu_hist(
            (self.tcp.as_ref(), &self.sums),
            "tcp",
            "hists",
            HIST_LIFETIME_US,
            1e-6,
        )
    }

    /// Bytes received per connection.
    pub fn bytes_in_histogram(&self) -> Result<Histogram, ProbeError> {
        per_cpu_hist(
            (self.tcp.as_ref(), &self.sums),
            "tcp",
            "hists",
            HIST_BYTES_IN,
            1.0,
        )
    }

    /// Bytes sent and acknowledged per connection.
    pub fn bytes_out_histogram(&self) -> Result<Histogram, ProbeError> {
        per_cpu_hist(
            (self.tcp.as_ref(), &self.sums),
            "tcp",
            "hists",
            HIST_BYTES_OUT,
            1.0,
        )
    }

    /// Call when ringway has accepted a connection, with the cookie of the
    /// accepted socket (`getsockopt(fd, SOL_SOCKET, SO_COOKIE)`). Returns how
    /// long it waited in the accept queue (handshake complete → now) and adds
    /// it to [`Probes::accept_wait_histogram`]. None when the connection is
    /// unknown (probe down, port not watched, or born before the probe).
    pub fn accepted(&self, cookie: u64) -> Option<Duration> {
        let c = self.conn(cookie)?;
        let waited = monotonic_ns().saturating_sub(c.start_ns);
        self.accept_wait.observe(waited);
        Some(Duration::from_nanos(waited))
    }

    /// Accept-queue wait, seconds (fed by [`Probes::accepted`]).
    pub fn accept_wait_histogram(&self) -> Histogram {
        self.accept_wait.snapshot(1e-9)
    }

    /// Submit → complete latency per opcode, for opcodes seen at least once.
    pub fn uring_latency_by_opcode(&self) -> Result<Vec<UringOpLatency>, ProbeError> {
        let arr: PerCpuArray<_, RawHist> =
            PerCpuArray::try_from(map(self.uring.as_ref(), "uring", "uring_lat")?).map_err(
                |source| ProbeError::Map {
                    map: "uring_lat",
                    source,
                },
            )?;
        let mut out = Vec::new();
        for op in 0..URING_OPS {
            let values = arr.get(&op, 0).map_err(|source| ProbeError::Map {
                map: "uring_lat",
                source,
            })?;
            let kept = self.sums.total(("uring_lat", op), &values);
            let latency = Histogram::from_cpus(&values, kept, 1e-9);
            if latency.count > 0 {
                let name = uring_op_name(op).map_or_else(|| format!("OP_{op}"), str::to_owned);
                out.push(UringOpLatency {
                    opcode: op as u8,
                    name,
                    latency,
                });
            }
        }
        Ok(out)
    }

    /// Resident memory of a watched process: the kernel's counters from the
    /// last `rss_stat` event, or /proc/PID/status until the first one.
    pub fn rss(&self, pid: u32) -> Option<Rss> {
        if let Some(raw) = self.raw_rss(pid) {
            let b = |m: usize| raw.pages[m].max(0) as u64 * self.page_size;
            let (file, anon, shmem) = (b(MM_FILEPAGES), b(MM_ANONPAGES), b(MM_SHMEMPAGES));
            return Some(Rss {
                bytes: file + anon + shmem,
                anon,
                file,
                shmem,
                swap: b(MM_SWAPENTS),
                source: RssSource::Kernel,
            });
        }
        rss_from_proc(pid)
    }

    fn raw_rss(&self, pid: u32) -> Option<RawRss> {
        let m: HashMap<_, u32, RawRss> =
            HashMap::try_from(map(self.mem.as_ref(), "mem", "rss").ok()?).ok()?;
        m.get(&pid, 0).ok()
    }

    /// Nanoseconds a watched process has spent on CPU since it was watched
    /// (threads summed; the slice running at the time of the call is not in yet).
    pub fn oncpu_ns(&self, pid: u32) -> Option<u64> {
        self.oncpu(pid).map(|o| o.oncpu_ns)
    }

    /// A watched process's on-CPU time and the switch-outs it was summed over.
    pub fn oncpu(&self, pid: u32) -> Option<RawOnCpu> {
        let m: HashMap<_, u32, RawOnCpu> =
            HashMap::try_from(map(self.mem.as_ref(), "mem", "oncpu").ok()?).ok()?;
        m.get(&pid, 0).ok()
    }
}

/// VmRSS and its parts from /proc/PID/status.
pub fn rss_from_proc(pid: u32) -> Option<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    Some(Rss {
        bytes: kib("VmRSS:")?,
        anon: kib("RssAnon:").unwrap_or(0),
        file: kib("RssFile:").unwrap_or(0),
        shmem: kib("RssShmem:").unwrap_or(0),
        swap: kib("VmSwap:").unwrap_or(0),
        source: RssSource::Proc,
    })
}

/// `IORING_OP_*` names, in opcode order (include/uapi/linux/io_uring.h, 6.18).
const URING_OP_NAMES: [&str; 64] = [
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
    "",
];

/// The name of an io_uring opcode.
pub fn uring_op_name(op: u32) -> Option<&'static str> {
    URING_OP_NAMES
        .get(op as usize)
        .copied()
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_the_kernel_rule() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(5), 3);
        assert_eq!(bucket_of(1 << 20), 20);
        assert_eq!(bucket_of((1 << 20) + 1), 21);
        assert_eq!(bucket_of(u64::MAX), HIST_BUCKETS - 1);
    }

    #[test]
    fn histogram_is_cumulative_in_base_units() {
        let mut raw = RawHist {
            count: 3,
            sum: 2_000_006,
            buckets: [0; HIST_BUCKETS],
        };
        raw.buckets[bucket_of(3)] += 2;
        raw.buckets[bucket_of(2_000_000)] += 1;
        let h = Histogram::from_raw([&raw, &raw], 1e-6);
        assert_eq!(h.count, 6);
        assert!((h.sum - 4.000012).abs() < 1e-9);
        assert_eq!(h.buckets.len(), HIST_BUCKETS);
        assert_eq!(h.buckets[2], (4e-6, 4));
        assert_eq!(h.buckets[20].1, 4);
        assert_eq!(h.buckets[21].1, 6);
        assert_eq!(h.buckets.last().map(|b| b.0), Some(f64::INFINITY));
        assert_eq!(h.buckets.last().map(|b| b.1), Some(6));
    }

    /// A per-CPU sum that wraps between two reads still adds its growth: the total never
    /// falls back (two CPUs, one past 2^64 of the histogram's unit).
    #[test]
    fn a_kept_sum_grows_across_a_wrap() {
        let at = |sums: [u64; 2]| {
            sums.map(|sum| RawHist {
                count: 1,
                sum,
                buckets: [0; HIST_BUCKETS],
            })
        };
        let sums = Sums::default();
        let key = ("hists", HIST_LIFETIME_US);
        let near = u64::MAX - 10;
        assert_eq!(sums.total(key, &at([near, 5])), u128::from(near) + 5);
        // CPU 0 adds 20 and wraps; CPU 1 adds 1.
        let total = sums.total(key, &at([9, 6]));
        assert_eq!(total, u128::from(near) + 5 + 21);
        let h = Histogram::from_cpus(&at([9, 6]), total, 1e-9);
        assert!(h.sum > 1.8e10, "{} s", h.sum);
        // Another histogram keeps its own.
        assert_eq!(sums.total(("hists", HIST_RTT_US), &at([3, 4])), 7);
    }

    #[test]
    fn known_opcodes_have_names() {
        assert_eq!(uring_op_name(0), Some("NOP"));
        assert_eq!(uring_op_name(13), Some("ACCEPT"));
        assert_eq!(uring_op_name(26), Some("SEND"));
        assert_eq!(uring_op_name(27), Some("RECV"));
        assert_eq!(uring_op_name(63), None);
    }
}
