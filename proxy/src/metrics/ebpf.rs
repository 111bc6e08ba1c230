//! The eBPF figures: loading the probes for this server, and turning what they measured into
//! snapshot parts. Everything here runs on the metrics thread, except [`accepted`], which a
//! worker calls once per connection.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ringway_ebpf::{Config as ProbeConfig, ConnStats, Histogram, Probes, Role};

use super::histogram::HistogramSnapshot;
use crate::config::UpstreamAddr;

/// The probes, once loaded (`None` when disabled, or until loaded). Workers take the read
/// lock once per connection, and so does a scrape; the write lock is taken only to put the
/// probes in and when uWSGI's processes change (a map update each), so no scrape ever makes
/// an accept wait.
pub type ProbeHandle = Arc<RwLock<Option<Probes>>>;

/// Loads the probes for a server listening on `ports` (plain and TLS) and puts them in
/// `handle`.
pub fn load(handle: &ProbeHandle, ports: &[u16], upstreams: &[UpstreamAddr]) {
    let config = ProbeConfig {
        listen_ports: ports.to_vec(),
        proxy_pids: vec![std::process::id()],
        worker_pids: upstream_pids(upstreams),
        cgroup: None,
    };
    let probes = Probes::load(&config);
    // Loading parses the kernel's BTF (megabytes of heap) and frees it; glibc keeps freed
    // heap mapped unless asked to give it back.
    // SAFETY: malloc_trim only releases free heap pages; no pointer is invalidated.
    unsafe { libc::malloc_trim(0) };
    let up: Vec<&str> = probes
        .statuses()
        .iter()
        .filter(|s| s.up)
        .map(|s| s.name)
        .collect();
    tracing::info!(probes = up.join(" "), "eBPF probes attached");
    if let Ok(mut slot) = handle.write() {
        *slot = Some(probes);
    }
}

/// The uWSGI processes behind `upstreams`: each listening socket's owners and descendants.
pub fn upstream_pids(upstreams: &[UpstreamAddr]) -> Vec<u32> {
    let mut pids: Vec<u32> = upstreams
        .iter()
        .filter_map(|u| {
            let target = match u {
                UpstreamAddr::Unix(path) => ringway_ebpf::Upstream::Unix(path.clone()),
                UpstreamAddr::Tcp(addr) => ringway_ebpf::Upstream::Tcp(*addr),
            };
            ringway_ebpf::upstream_pids(&target).ok()
        })
        .flatten()
        .filter(|&pid| pid != std::process::id())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Tells the probes a connection was accepted, so its accept-queue wait is measured; returns
/// its socket cookie (the key of its figures), read by `cookie` only when the probes are
/// loaded, else 0: without probes the syscall is spared.
pub fn accepted(handle: &ProbeHandle, cookie: impl FnOnce() -> u64) -> u64 {
    let Ok(slot) = handle.read() else { return 0 };
    let Some(probes) = slot.as_ref() else {
        return 0;
    };
    let cookie = cookie();
    if cookie != 0 {
        probes.accepted(cookie);
    }
    cookie
}

/// Keeps the probes watching exactly `pids` as uWSGI processes (uWSGI respawns and reloads
/// workers), diffed against what the probes watch: the caller's previous list missed the
/// processes found while the probes loaded, and recorded as watched the ones seen before
/// they were in (found by review). Until the probes are loaded there is nothing to do: their
/// load finds the processes itself, and the next call after it catches up.
pub fn watch_workers(handle: &ProbeHandle, pids: &[u32]) {
    // `pids` is sorted, like the probes' set. The read lock first: most calls change nothing,
    // and the write lock holds up accepts.
    let Ok(slot) = handle.read() else { return };
    if slot
        .as_ref()
        .is_none_or(|probes| probes.workers().iter().eq(pids))
    {
        return;
    }
    drop(slot);
    let Ok(mut slot) = handle.write() else { return };
    let Some(probes) = slot.as_mut() else { return };
    let gone: Vec<u32> = probes
        .workers()
        .iter()
        .filter(|p| !pids.contains(p))
        .copied()
        .collect();
    for pid in gone {
        probes.unwatch_pid(pid);
    }
    for &pid in pids {
        if probes.workers().contains(&pid) {
            continue;
        }
        if let Err(err) = probes.watch_pid(pid, Role::Worker) {
            tracing::debug!(pid, error = %err, "cannot watch uWSGI process");
        }
    }
}

/// A probe's state, for `ringway_ebpf_up` and the page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeRow {
    /// Probe name.
    pub name: &'static str,
    /// Loaded and attached.
    pub up: bool,
    /// Why not, when down.
    pub reason: Option<String>,
    /// What is missing while it is down.
    pub figures: &'static str,
}

/// One io_uring opcode's latency.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UringRow {
    /// Opcode name (`read`, `write_fixed`, `accept`, ...).
    pub op: String,
    /// Submit → complete latency.
    pub latency: HistogramSnapshot,
}

/// The kernel's view of one live client connection.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ConnKernel {
    /// Smoothed RTT, seconds.
    pub srtt_seconds: f64,
    /// RTT variance, seconds.
    pub rttvar_seconds: f64,
    /// Retransmitted segments.
    pub retransmits: u32,
    /// Bytes the client acknowledged.
    pub bytes_acked: u64,
    /// Bytes received from the client.
    pub bytes_received: u64,
    /// Send queue memory (sk_wmem_queued), bytes.
    pub send_buffer_bytes: u32,
    /// Receive queue memory (sk_rmem_alloc), bytes.
    pub receive_buffer_bytes: u32,
}

impl From<&ConnStats> for ConnKernel {
    fn from(c: &ConnStats) -> Self {
        ConnKernel {
            srtt_seconds: f64::from(c.srtt_us) / 1e6,
            rttvar_seconds: f64::from(c.rttvar_us) / 1e6,
            retransmits: c.retrans,
            bytes_acked: c.bytes_acked,
            bytes_received: c.bytes_received,
            send_buffer_bytes: c.sk_wmem_queued,
            receive_buffer_bytes: c.sk_rmem_alloc,
        }
    }
}

/// Everything the probes add to a snapshot.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EbpfFigures {
    /// Each probe's state.
    pub probes: Vec<ProbeRow>,
    /// srtt of client connections at close.
    pub rtt: Option<HistogramSnapshot>,
    /// Client connection lifetimes.
    pub lifetime: Option<HistogramSnapshot>,
    /// Bytes received per client connection.
    pub bytes_in: Option<HistogramSnapshot>,
    /// Bytes sent per client connection.
    pub bytes_out: Option<HistogramSnapshot>,
    /// Time from handshake complete to accepted by ringway.
    pub accept_wait: Option<HistogramSnapshot>,
    /// io_uring latency by opcode.
    pub uring: Vec<UringRow>,
    /// Socket buffer memory of the live client connections: send, receive.
    pub socket_memory: (u64, u64),
    /// Closed-connection records lost because nobody read them in time.
    pub closed_dropped: u64,
    /// Live connections the probes see, by cookie (not serialized: joined into rows).
    #[serde(skip)]
    pub conns: HashMap<u64, ConnKernel>,
}

/// Reads every figure the probes have.
pub fn figures(probes: &Probes) -> EbpfFigures {
    let hist = |h: Result<Histogram, _>| h.ok().map(|h| convert(&h));
    let conns: HashMap<u64, ConnKernel> = probes
        .conn_stats()
        .unwrap_or_default()
        .iter()
        .filter(|c| c.end_ns.is_none())
        .map(|c| (c.cookie, ConnKernel::from(c)))
        .collect();
    // The closed-connection records are not shown yet; reading them keeps the ring buffer
    // from filling and losing newer ones.
    drop(probes.closed_conns());
    let socket_memory = conns.values().fold((0, 0), |(s, r), c| {
        (
            s + u64::from(c.send_buffer_bytes),
            r + u64::from(c.receive_buffer_bytes),
        )
    });
    EbpfFigures {
        probes: probes
            .statuses()
            .iter()
            .map(|s| ProbeRow {
                name: s.name,
                up: s.up,
                reason: s.reason.clone(),
                figures: ringway_ebpf::figures_of(s.name),
            })
            .collect(),
        rtt: hist(probes.rtt_histogram()),
        lifetime: hist(probes.lifetime_histogram()),
        bytes_in: hist(probes.bytes_in_histogram()),
        bytes_out: hist(probes.bytes_out_histogram()),
        accept_wait: probes
            .is_up(ringway_ebpf::probes::PROBE_TCP_RTT)
            .then(|| convert(&probes.accept_wait_histogram())),
        uring: probes
            .uring_latency_by_opcode()
            .unwrap_or_default()
            .into_iter()
            .map(|u| UringRow {
                op: u.name,
                latency: convert(&u.latency),
            })
            .collect(),
        socket_memory,
        closed_dropped: probes.closed_dropped(),
        conns,
    }
}

/// The probes' histogram (cumulative, last bucket +Inf) as a snapshot (per bucket).
pub fn convert(h: &Histogram) -> HistogramSnapshot {
    let n = h.buckets.len();
    let bounds: Vec<f64> = h
        .buckets
        .iter()
        .take(n.saturating_sub(1))
        .map(|b| b.0)
        .collect();
    let mut previous = 0;
    let counts = h
        .buckets
        .iter()
        .map(|&(_, cumulative)| {
            let count = cumulative.saturating_sub(previous);
            previous = cumulative;
            count
        })
        .collect();
    HistogramSnapshot {
        bounds,
        counts,
        sum: h.sum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringway_ebpf::probes::PROBE_ONCPU;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    /// A process that is switched out every 10 ms (its shell waits for each `sleep`).
    fn ticking() -> Child {
        Command::new("sh")
            .args(["-c", "while :; do sleep 0.01; done"])
            .spawn()
            .unwrap()
    }

    /// Whether the probes have an on-CPU figure for `pid` within `wait`.
    fn oncpu_seen(handle: &ProbeHandle, pid: u32, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let seen = handle
                .read()
                .unwrap()
                .as_ref()
                .unwrap()
                .oncpu(pid)
                .is_some();
            if seen || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The workers are diffed against what the probes watch: one seen before the probes were
    /// in is watched once they are, and one the load found is unwatched when it leaves.
    #[test]
    fn workers_are_diffed_against_what_the_probes_watch() {
        let (found_at_load, later) = (ticking(), ticking());
        let (a, b) = (found_at_load.id(), later.id());
        let handle = ProbeHandle::default();
        watch_workers(&handle, &[b]);
        let probes = Probes::load(&ProbeConfig {
            worker_pids: vec![a],
            ..ProbeConfig::default()
        });
        let oncpu_up = probes.is_up(PROBE_ONCPU);
        *handle.write().unwrap() = Some(probes);
        let workers = |handle: &ProbeHandle| -> Vec<u32> {
            let slot = handle.read().unwrap();
            slot.as_ref().unwrap().workers().iter().copied().collect()
        };
        assert_eq!(workers(&handle), [a]);
        let a_seen = oncpu_up && oncpu_seen(&handle, a, Duration::from_secs(2));

        let mut both = [a, b];
        both.sort_unstable();
        watch_workers(&handle, &both);
        assert_eq!(workers(&handle), both);
        watch_workers(&handle, &[b]);
        assert_eq!(workers(&handle), [b]);
        if oncpu_up {
            assert!(a_seen, "the pid given at load is watched");
            // `a` is switched out every 10 ms: a watch left behind would bring its figure back.
            assert!(
                !oncpu_seen(&handle, a, Duration::from_millis(300)),
                "unwatched: its figures are gone for good"
            );
            assert!(
                oncpu_seen(&handle, b, Duration::from_secs(2)),
                "watched after the load"
            );
        }
        for mut child in [found_at_load, later] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    #[test]
    fn converts_cumulative_buckets() {
        let h = Histogram {
            buckets: vec![(0.001, 2), (0.002, 5), (f64::INFINITY, 6)],
            sum: 0.01,
            count: 6,
        };
        let s = convert(&h);
        assert_eq!(s.bounds, vec![0.001, 0.002]);
        assert_eq!(s.counts, vec![2, 3, 1]);
        assert_eq!(s.count(), 6);
    }
}
