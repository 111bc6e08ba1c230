//! `#[repr(C)]` mirrors of the structs in `bpf/ringway.h`.
//!
//! `ringway.h` is the one definition; these copies must follow it field by
//! field. The C side asserts sizes and offsets with `_Static_assert`, and the
//! test at the bottom asserts the same numbers here, so a change made on one
//! side only fails a build or a test instead of silently reading garbage.

/// Buckets of every in-kernel log2 histogram (`RW_HIST_BUCKETS`).
pub const HIST_BUCKETS: usize = 40;
/// Opcodes tracked by the io_uring probe (`RW_URING_OPS`).
pub const URING_OPS: u32 = 64;

/// Index of the srtt-at-close histogram (microseconds) in the `hists` map.
pub const HIST_RTT_US: u32 = 0;
/// Index of the connection lifetime histogram (microseconds, rounded up: in nanoseconds
/// its last finite bucket was 275 s, below any keep-alive or WebSocket connection).
pub const HIST_LIFETIME_US: u32 = 1;
/// Index of the bytes-received-per-connection histogram.
pub const HIST_BYTES_IN: u32 = 2;
/// Index of the bytes-sent-and-acked-per-connection histogram.
pub const HIST_BYTES_OUT: u32 = 3;

/// `mm->rss_stat` member: file-backed pages.
pub const MM_FILEPAGES: usize = 0;
/// `mm->rss_stat` member: anonymous pages.
pub const MM_ANONPAGES: usize = 1;
/// `mm->rss_stat` member: swap entries.
pub const MM_SWAPENTS: usize = 2;
/// `mm->rss_stat` member: shared memory pages.
pub const MM_SHMEMPAGES: usize = 3;

/// `struct rw_hist`: one per-CPU log2 histogram.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawHist {
    /// Observations.
    pub count: u64,
    /// Sum of the observed values (probe units).
    pub sum: u64,
    /// Bucket 0: values <= 1; bucket i: (2^(i-1), 2^i]; the last: the rest.
    pub buckets: [u64; HIST_BUCKETS],
}

/// `struct rw_conn`: one accepted TCP connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawConn {
    /// Socket cookie (`SO_COOKIE`).
    pub cookie: u64,
    /// CLOCK_MONOTONIC ns when the handshake completed (entered the accept queue).
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns of the last refresh.
    pub update_ns: u64,
    /// CLOCK_MONOTONIC ns of TCP_CLOSE, 0 while alive.
    pub end_ns: u64,
    /// Bytes sent and acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received from the peer.
    pub bytes_received: u64,
    /// Local address, network order (IPv4: first 4 bytes).
    pub laddr: [u8; 16],
    /// Remote address, network order (IPv4: first 4 bytes).
    pub raddr: [u8; 16],
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// Local port.
    pub lport: u16,
    /// Remote port.
    pub rport: u16,
    /// TCP state (`include/net/tcp_states.h`).
    pub state: u16,
    /// Smoothed RTT, µs.
    pub srtt_us: u32,
    /// RTT variance, µs.
    pub rttvar_us: u32,
    /// Retransmitted segments.
    pub total_retrans: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
    /// Send queue bytes.
    pub sk_wmem_queued: u32,
    /// Receive buffer bytes.
    pub sk_rmem_alloc: u32,
    /// Padding.
    pub _pad: u32,
}

/// `struct rw_uring_start`: an io_uring request in flight.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawUringStart {
    /// Submit time, CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// `IORING_OP_*`.
    pub opcode: u32,
    /// Submitting process.
    pub tgid: u32,
}

/// `struct rw_rss`: the kernel's RSS counters of one watched process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawRss {
    /// Pages per `MM_*` member.
    pub pages: [i64; 4],
    /// CLOCK_MONOTONIC ns of the last rss_stat event.
    pub update_ns: u64,
    /// rss_stat events seen.
    pub events: u64,
}

/// `struct rw_oncpu`: on-CPU time of one watched process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawOnCpu {
    /// Nanoseconds on CPU since watched.
    pub oncpu_ns: u64,
    /// Switch-outs counted.
    pub switches: u64,
}

// SAFETY: plain #[repr(C)] integers and integer arrays with explicit padding:
// every bit pattern is a valid value and there are no implicit padding bytes.
unsafe impl aya::Pod for RawHist {}
// SAFETY: as above (layout pinned by the test below and by ringway.h).
unsafe impl aya::Pod for RawConn {}
// SAFETY: as above.
unsafe impl aya::Pod for RawUringStart {}
// SAFETY: as above.
unsafe impl aya::Pod for RawRss {}
// SAFETY: as above.
unsafe impl aya::Pod for RawOnCpu {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The same numbers as the `_Static_assert`s at the end of bpf/ringway.h.
    #[test]
    fn layouts_match_ringway_h() {
        assert_eq!(size_of::<RawHist>(), 336);
        assert_eq!(size_of::<RawConn>(), 120);
        assert_eq!(offset_of!(RawConn, laddr), 48);
        assert_eq!(offset_of!(RawConn, family), 80);
        assert_eq!(offset_of!(RawConn, srtt_us), 88);
        assert_eq!(offset_of!(RawConn, sk_rmem_alloc), 112);
        assert_eq!(size_of::<RawUringStart>(), 16);
        assert_eq!(size_of::<RawRss>(), 48);
        assert_eq!(offset_of!(RawRss, update_ns), 32);
        assert_eq!(size_of::<RawOnCpu>(), 16);
    }

    /// The asserted numbers really are in ringway.h (so the two lists cannot drift).
    #[test]
    fn ringway_h_asserts_the_same_numbers() {
        let h = include_str!("../bpf/ringway.h");
        for needle in [
            "sizeof(struct rw_hist) == 336",
            "sizeof(struct rw_conn) == 120",
            "offsetof(struct rw_conn, laddr) == 48",
            "offsetof(struct rw_conn, family) == 80",
            "offsetof(struct rw_conn, srtt_us) == 88",
            "offsetof(struct rw_conn, sk_rmem_alloc) == 112",
            "sizeof(struct rw_uring_start) == 16",
            "sizeof(struct rw_rss) == 48",
            "offsetof(struct rw_rss, update_ns) == 32",
            "sizeof(struct rw_oncpu) == 16",
            "#define RW_HIST_BUCKETS 40",
            "#define RW_URING_OPS 64",
        ] {
            assert!(h.contains(needle), "ringway.h lost `{needle}`");
        }
    }
}
