/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The one definition of everything the probes share with userspace: map
 * keys, map values and ring buffer records. ebpf/src/types.rs mirrors each
 * struct as #[repr(C)]; the sizes and offsets asserted at the bottom of this
 * file are asserted again in types.rs, so a change on one side that is not
 * made on the other fails the build (C) or the tests (Rust).
 *
 * All fields are naturally aligned and padding is explicit, so the layout
 * is the same for clang -target bpf and for x86_64 Rust.
 */
#ifndef RINGWAY_H
#define RINGWAY_H

#include <linux/types.h>

/* log2 histogram: bucket 0 counts values <= 1, bucket i (1..N-2) values in
 * (2^(i-1), 2^i], the last bucket everything larger (Prometheus +Inf). */
#define RW_HIST_BUCKETS 40

/* io_uring opcodes are < 64 on 6.18 (IORING_OP_LAST is 59); larger ones
 * are counted under RW_URING_OPS - 1. */
#define RW_URING_OPS 64

/* Index of each histogram in the tcp `hists` per-CPU array. */
#define RW_HIST_RTT_US 0        /* srtt of each connection at close, microseconds */
/* established → close, microseconds: in nanoseconds the last finite bucket
 * (2^38) was 275 s and every keep-alive or WebSocket connection went to +Inf;
 * in microseconds it is 2^38 us, about 76 hours. */
#define RW_HIST_LIFETIME_US 1
#define RW_HIST_BYTES_IN 2      /* bytes received per connection */
#define RW_HIST_BYTES_OUT 3     /* bytes sent and acknowledged per connection */
#define RW_HIST_COUNT 4

/* Index of each member of mm->rss_stat (enum in include/linux/mm_types_task.h). */
#define RW_MM_FILEPAGES 0
#define RW_MM_ANONPAGES 1
#define RW_MM_SWAPENTS 2
#define RW_MM_SHMEMPAGES 3

struct rw_hist {
	__u64 count;
	__u64 sum;
	__u64 buckets[RW_HIST_BUCKETS];
};

/* One TCP connection accepted on a watched port, keyed by socket cookie in
 * the `conns` map; the same record goes to the `closed` ring buffer at
 * TCP_CLOSE with end_ns set. Addresses are in network byte order (IPv4 in
 * the first 4 bytes), ports in host byte order. */
struct rw_conn {
	__u64 cookie;
	__u64 start_ns;       /* 3-way handshake complete: entered the accept queue */
	__u64 update_ns;      /* last time any field was refreshed */
	__u64 end_ns;         /* TCP_CLOSE; 0 while alive */
	__u64 bytes_acked;    /* sent by us and acknowledged by the peer */
	__u64 bytes_received; /* received from the peer */
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 family;         /* AF_INET or AF_INET6 */
	__u16 lport;
	__u16 rport;
	__u16 state;          /* TCP_* as in include/net/tcp_states.h */
	__u32 srtt_us;        /* smoothed RTT, microseconds (tcpi_rtt) */
	__u32 rttvar_us;      /* RTT variance, microseconds (tcpi_rttvar) */
	__u32 total_retrans;  /* retransmitted segments (tcpi_total_retrans) */
	__u32 segs_in;
	__u32 segs_out;
	__u32 sk_wmem_queued; /* send buffer bytes queued */
	__u32 sk_rmem_alloc;  /* receive buffer bytes allocated */
	__u32 _pad;
};

/* Start of one io_uring request, keyed by the kernel's io_kiocb pointer. */
struct rw_uring_start {
	__u64 ts_ns;
	__u32 opcode;
	__u32 tgid;
};

/* Resident memory of one watched process (keyed by tgid): the kernel's own
 * per-mm counters, in pages, read at the last kmem:rss_stat event. */
struct rw_rss {
	__s64 pages[4]; /* RW_MM_* */
	__u64 update_ns;
	__u64 events;
};

/* On-CPU time of one watched process (keyed by tgid), summed over threads. */
struct rw_oncpu {
	__u64 oncpu_ns;
	__u64 switches;
};

#if defined(__clang__) || defined(__GNUC__)
_Static_assert(sizeof(struct rw_hist) == 336, "rw_hist size");
_Static_assert(sizeof(struct rw_conn) == 120, "rw_conn size");
_Static_assert(__builtin_offsetof(struct rw_conn, laddr) == 48, "rw_conn.laddr");
_Static_assert(__builtin_offsetof(struct rw_conn, family) == 80, "rw_conn.family");
_Static_assert(__builtin_offsetof(struct rw_conn, srtt_us) == 88, "rw_conn.srtt_us");
_Static_assert(__builtin_offsetof(struct rw_conn, sk_rmem_alloc) == 112, "rw_conn.sk_rmem_alloc");
_Static_assert(sizeof(struct rw_uring_start) == 16, "rw_uring_start size");
_Static_assert(sizeof(struct rw_rss) == 48, "rw_rss size");
_Static_assert(__builtin_offsetof(struct rw_rss, update_ns) == 32, "rw_rss.update_ns");
_Static_assert(sizeof(struct rw_oncpu) == 16, "rw_oncpu size");
#endif

#endif
