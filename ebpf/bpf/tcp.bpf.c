// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * TCP connections accepted on ringway's listen ports.
 *
 * - sock_ops (cgroup v2): PASSIVE_ESTABLISHED_CB creates the record when the
 *   handshake completes (the moment the connection enters the accept queue)
 *   and turns on the RTT, retransmit and state callbacks for that socket;
 *   every callback refreshes srtt, rttvar, retransmits, bytes and socket
 *   buffer memory from the tcp_sock, and the state callback to TCP_CLOSE
 *   finishes the connection: final figures (like bcc tcplife), histograms,
 *   a record in the `closed` ring buffer, deletion from `conns`.
 * - tp_btf/inet_sock_set_state: the same without sock_ops (not attached, or
 *   refused): creates the record at SYN_RECV -> ESTABLISHED and finishes it
 *   at TCP_CLOSE. With sock_ops up it finds the record already finished.
 *
 * Records are keyed by socket cookie, never by pid: io_uring work runs in
 * kernel threads and softirq context.
 */
#include "common.h"

#define AF_INET 2
#define AF_INET6 10
#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Listen ports to watch (host byte order) → 1. Filled by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} watch_ports SEC(".maps");

/* [0]: the inode of ringway's network namespace (0: any). The ports are
 * ringway's there only: a container serving on the same port in its own
 * namespace is not ringway's. Filled by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} watch_netns SEC(".maps");

/* Live connections by socket cookie. LRU so that a missed close can never
 * fill the map and stop new connections from being measured. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rw_conn);
} conns SEC(".maps");

/* Closed connections, for the per-connection table of recent closes. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} closed SEC(".maps");

/* RW_HIST_* histograms. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RW_HIST_COUNT);
	__type(key, __u32);
	__type(value, struct rw_hist);
} hists SEC(".maps");

/* [0]: closed records dropped because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline bool port_watched(__u16 port)
{
	return bpf_map_lookup_elem(&watch_ports, &port) != NULL;
}

static __always_inline bool netns_watched(struct sock *sk)
{
	__u32 zero = 0;
	__u32 *want = bpf_map_lookup_elem(&watch_netns, &zero);

	return !want || !*want ||
	       BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) == *want;
}

static __always_inline void fill_tuple(struct rw_conn *c, struct sock *sk)
{
	c->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (c->family == AF_INET6) {
		bpf_core_read(c->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(c->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(c->laddr, &l, 4);
		__builtin_memcpy(c->raddr, &r, 4);
	}
}

/* Refresh the counters from the socket; tp and sk are the same object. */
static __always_inline void refresh(struct rw_conn *c, struct tcp_sock *tp, struct sock *sk)
{
	c->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;   /* as tcp_get_info() */
	c->rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2; /* as tcp_get_info() */
	c->total_retrans = BPF_CORE_READ(tp, total_retrans);
	c->segs_in = BPF_CORE_READ(tp, segs_in);
	c->segs_out = BPF_CORE_READ(tp, segs_out);
	c->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	c->bytes_received = BPF_CORE_READ(tp, bytes_received);
	c->sk_wmem_queued = BPF_CORE_READ(sk, sk_wmem_queued);
	c->sk_rmem_alloc = BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter);
	c->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	c->update_ns = bpf_ktime_get_ns();
}

/* Create the record if it is not there yet (both hooks may try). */
static __always_inline struct rw_conn *ensure_conn(__u64 cookie, struct sock *sk)
{
	struct rw_conn *c = bpf_map_lookup_elem(&conns, &cookie);
	struct rw_conn fresh = {};

	if (c)
		return c;
	fresh.cookie = cookie;
	fresh.start_ns = bpf_ktime_get_ns();
	fill_tuple(&fresh, sk);
	bpf_map_update_elem(&conns, &cookie, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &cookie);
}

/* Nanoseconds to microseconds, rounded up: the bucket bounds are whole
 * microseconds, so a lifetime lands in the same bucket as its exact value. */
static __always_inline __u64 ns_to_us_up(__u64 ns)
{
	return (ns + 999) / 1000;
}

/* The connection closes: final figures, histograms, the ring buffer record,
 * and the record leaves the live map. Called by whichever hook sees the
 * close first (the sock_ops state callback runs just before the
 * inet_sock_set_state tracepoint), so each connection is finished once. */
static __always_inline void finish(struct rw_conn *c, __u64 cookie, struct tcp_sock *tp, struct sock *sk)
{
	struct rw_conn *ev;
	struct rw_hist *h;
	__u64 now;
	__u32 k;

	refresh(c, tp, sk);
	now = bpf_ktime_get_ns();
	c->end_ns = now;
	c->state = TCP_CLOSE;

	k = RW_HIST_RTT_US;
	h = bpf_map_lookup_elem(&hists, &k);
	if (h)
		rw_hist_observe(h, c->srtt_us);
	k = RW_HIST_LIFETIME_US;
	h = bpf_map_lookup_elem(&hists, &k);
	if (h)
		rw_hist_observe(h, ns_to_us_up(now - c->start_ns));
	k = RW_HIST_BYTES_IN;
	h = bpf_map_lookup_elem(&hists, &k);
	if (h)
		rw_hist_observe(h, c->bytes_received);
	k = RW_HIST_BYTES_OUT;
	h = bpf_map_lookup_elem(&hists, &k);
	if (h)
		rw_hist_observe(h, c->bytes_acked);

	ev = bpf_ringbuf_reserve(&closed, sizeof(*ev), 0);
	if (ev) {
		__builtin_memcpy(ev, c, sizeof(*ev));
		bpf_ringbuf_submit(ev, 0);
	} else {
		__u32 zero = 0;
		__u64 *d = bpf_map_lookup_elem(&drops, &zero);
		if (d)
			(*d)++;
	}
	bpf_map_delete_elem(&conns, &cookie);
}

SEC("sockops")
int rw_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *bsk;
	struct tcp_sock *tp;
	struct rw_conn *c;
	__u64 cookie;

	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_RTT_CB:
	case BPF_SOCK_OPS_RETRANS_CB:
	case BPF_SOCK_OPS_STATE_CB:
		break;
	default:
		return 1;
	}
	if (!skops->is_fullsock || !port_watched((__u16)skops->local_port))
		return 1;
	bsk = skops->sk;
	if (!bsk)
		return 1;
	tp = bpf_skc_to_tcp_sock(bsk);
	if (!tp || !netns_watched((struct sock *)tp))
		return 1;
	cookie = bpf_get_socket_cookie(skops);

	if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		/* The helper assigns the socket's flags: keep the ones other
		 * sock_ops programs on the cgroup turned on. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					 BPF_SOCK_OPS_RTT_CB_FLAG |
					 BPF_SOCK_OPS_RETRANS_CB_FLAG |
					 BPF_SOCK_OPS_STATE_CB_FLAG);
		c = ensure_conn(cookie, (struct sock *)tp);
	} else {
		c = bpf_map_lookup_elem(&conns, &cookie);
	}
	if (!c)
		return 1;
	if (skops->op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == TCP_CLOSE) {
		finish(c, cookie, tp, (struct sock *)tp);
		return 1;
	}
	refresh(c, tp, (struct sock *)tp);
	/* Since 6.10 RTT_CB passes (mrtt_us, new srtt_us << 3) and runs before
	 * tcp_rtt_estimator() stores that srtt, so tp->srtt_us is still the
	 * previous value here: take the new one from the arguments. Older
	 * kernels pass zeros. */
	if (skops->op == BPF_SOCK_OPS_RTT_CB && skops->args[1])
		c->srtt_us = skops->args[1] >> 3;
	return 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(rw_set_state, const struct sock *csk, const int oldstate, const int newstate)
{
	struct sock *sk = (struct sock *)csk;
	struct rw_conn *c;
	__u64 cookie;

	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

		if ((family == AF_INET || family == AF_INET6) &&
		    port_watched(BPF_CORE_READ(sk, __sk_common.skc_num)) &&
		    netns_watched(sk))
			ensure_conn(bpf_get_socket_cookie(sk), sk);
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;

	/* By now tcp_set_state() has released the port (inet_num is 0), so
	 * the record is found by cookie alone. A socket without a cookie was
	 * never recorded (ensure_conn generated one); reading the field
	 * instead of calling bpf_get_socket_cookie() avoids minting cookies
	 * for every socket on the machine. */
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	c = bpf_map_lookup_elem(&conns, &cookie);
	if (!c)
		return 0; /* not a watched connection, or born before we attached */
	finish(c, cookie, (struct tcp_sock *)sk, sk);
	return 0;
}
