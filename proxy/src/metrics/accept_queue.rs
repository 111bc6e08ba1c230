//! The listening sockets' accept queues, read over netlink (sock_diag): no probe and no
//! privilege needed, so they are shown with the eBPF probes off too (found by review: they
//! were shown only with the probes loaded).

/// The accept queues of the listening sockets.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct AcceptQueues {
    /// Connections waiting, summed over the listeners.
    pub depth: u64,
    /// Their capacity, summed.
    pub limit: u64,
    /// The fullest listener's depth over its limit: with one listener per worker, one
    /// stalled worker's full queue refuses its share of new connections while the sums
    /// look low.
    pub fullest: f64,
}

/// The accept queues on `ports`; `None` when they cannot be read.
pub fn accept_queues(ports: &[u16]) -> Option<AcceptQueues> {
    let mut sum = AcceptQueues::default();
    for &port in ports {
        for q in ringway_ebpf::listen_backlog(port).ok()? {
            sum.depth += u64::from(q.depth);
            sum.limit += u64::from(q.limit);
            if q.limit > 0 {
                sum.fullest = sum.fullest.max(f64::from(q.depth) / f64::from(q.limit));
            }
        }
    }
    Some(sum)
}
