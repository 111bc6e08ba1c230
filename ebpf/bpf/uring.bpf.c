// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * io_uring operation latency by opcode for ringway's own rings.
 *
 * tp_btf/io_uring_submit_req runs in the submitting task (the io_uring_enter
 * caller, or the ring's SQPOLL thread, which belongs to the same process), so
 * the tgid filter is exact there; the start is keyed by the kernel's request
 * pointer (struct io_kiocb *), which io_uring_complete reports as well. The
 * completion may run anywhere (io-wq worker, task work, softirq): it is
 * matched through the request pointer only, never through the pid.
 *
 * Multishot requests (accept, recv, poll) post several CQEs with
 * IORING_CQE_F_MORE, but the kernel posts all but the last as auxiliary CQEs
 * (io_req_post_cqe and the like), whose io_uring_complete event carries no
 * request (req == NULL): they match nothing here. A multishot request is
 * measured once, from submit to its final CQE. A CQE with F_MORE that does
 * name its request (SEND_ZC's first, whose notification is another request)
 * restarts the clock instead; the LRU map evicts what is left.
 */
#include "common.h"

#define IORING_CQE_F_MORE (1U << 1)

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Processes whose rings are measured (tgid → 1). Filled by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} watch_tgids SEC(".maps");

/* Requests in flight. LRU: requests that never post a CQE (IOSQE_CQE_SKIP_SUCCESS)
 * are evicted instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rw_uring_start);
} inflight SEC(".maps");

/* Submit → complete latency in nanoseconds, one histogram per opcode. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RW_URING_OPS);
	__type(key, __u32);
	__type(value, struct rw_hist);
} uring_lat SEC(".maps");

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(rw_uring_submit, struct io_kiocb *req)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct rw_uring_start s = {};
	__u64 key = (__u64)req;

	if (!bpf_map_lookup_elem(&watch_tgids, &tgid))
		return 0;
	s.ts_ns = bpf_ktime_get_ns();
	s.opcode = BPF_CORE_READ(req, opcode);
	s.tgid = tgid;
	bpf_map_update_elem(&inflight, &key, &s, BPF_ANY);
	return 0;
}

SEC("tp_btf/io_uring_complete")
int BPF_PROG(rw_uring_complete, struct io_ring_ctx *ring, void *req, struct io_uring_cqe *cqe)
{
	__u64 key = (__u64)req;
	struct rw_uring_start *s;
	struct rw_hist *h;
	__u64 now;
	__u32 op;

	s = bpf_map_lookup_elem(&inflight, &key);
	if (!s)
		return 0;
	now = bpf_ktime_get_ns();
	op = s->opcode;
	if (op >= RW_URING_OPS)
		op = RW_URING_OPS - 1;
	h = bpf_map_lookup_elem(&uring_lat, &op);
	if (h)
		rw_hist_observe(h, now - s->ts_ns);
	if (BPF_CORE_READ(cqe, flags) & IORING_CQE_F_MORE)
		s->ts_ns = now;
	else
		bpf_map_delete_elem(&inflight, &key);
	return 0;
}
