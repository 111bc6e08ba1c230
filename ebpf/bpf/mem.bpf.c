// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Memory and CPU of the watched processes (ringway and the uWSGI workers).
 *
 * - tp_btf/rss_stat fires on every change of one of an mm's RSS counters.
 *   The program finds the process the mm belongs to (the current task if it
 *   is its mm, else mm->owner, once that task has the mm: not during the
 *   fork that makes it) and, for a watched tgid, copies all four
 *   counters of that mm (the same percpu_counter_read_positive() value the
 *   tracepoint itself prints). RSS = file + anon + shmem pages.
 * - tp_btf/sched_switch: time between switch-in and switch-out of every
 *   thread of a watched process, summed per tgid.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Processes to watch (tgid → 1). Filled by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} watch_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct rw_rss);
} rss SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct rw_oncpu);
} oncpu SEC(".maps");

/* When the task on each CPU was switched in: a task's slice on a CPU runs from one
 * sched_switch there to the next, whoever it is, so one slot per CPU says when the
 * outgoing task came in. A per-CPU slot is written in place: nothing can fail or
 * contend, where a hash of threads' start times lost a whole slice to an update that
 * failed (seen once in CI: 283 ms counted of 470). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} switched_in SEC(".maps");

static __always_inline bool watched(__u32 tgid)
{
	return bpf_map_lookup_elem(&watch_pids, &tgid) != NULL;
}

static __always_inline __s64 counter(struct mm_struct *mm, int i)
{
	__s64 v = 0;

	switch (i) {
	case 0: v = BPF_CORE_READ(mm, rss_stat[0].count); break;
	case 1: v = BPF_CORE_READ(mm, rss_stat[1].count); break;
	case 2: v = BPF_CORE_READ(mm, rss_stat[2].count); break;
	case 3: v = BPF_CORE_READ(mm, rss_stat[3].count); break;
	}
	return v < 0 ? 0 : v;
}

SEC("tp_btf/rss_stat")
int BPF_PROG(rw_rss_stat, struct mm_struct *mm, int member)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	struct rw_rss r = {}, *old;
	__u32 tgid;

	if (BPF_CORE_READ(cur, mm) == mm) {
		tgid = bpf_get_current_pid_tgid() >> 32;
	} else {
		struct task_struct *owner = NULL;

		if (bpf_core_field_exists(mm->owner))
			owner = BPF_CORE_READ(mm, owner);
		/* A fork fills the child's new mm while the parent runs, and
		 * the child still carries the parent's tgid then: until the
		 * owner has this mm as its own, the figures are nobody's yet.
		 * (The same holds of an mm torn down after its task left it.) */
		if (!owner || BPF_CORE_READ(owner, mm) != mm)
			return 0;
		tgid = BPF_CORE_READ(owner, tgid);
	}
	if (!watched(tgid))
		return 0;

	r.pages[RW_MM_FILEPAGES] = counter(mm, RW_MM_FILEPAGES);
	r.pages[RW_MM_ANONPAGES] = counter(mm, RW_MM_ANONPAGES);
	r.pages[RW_MM_SWAPENTS] = counter(mm, RW_MM_SWAPENTS);
	r.pages[RW_MM_SHMEMPAGES] = counter(mm, RW_MM_SHMEMPAGES);
	r.update_ns = bpf_ktime_get_ns();
	old = bpf_map_lookup_elem(&rss, &tgid);
	r.events = old ? old->events + 1 : 1;
	bpf_map_update_elem(&rss, &tgid, &r, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(rw_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 slot = 0;
	__u64 *since = bpf_map_lookup_elem(&switched_in, &slot);
	__u32 tgid = BPF_CORE_READ(prev, tgid);

	if (!since)
		return 0;
	/* 0: no switch seen on this CPU since the program was attached. */
	if (*since && tgid && watched(tgid)) {
		/* Userspace creates the entry when it starts watching (this is the fallback). */
		struct rw_oncpu *o = bpf_map_lookup_elem(&oncpu, &tgid);

		if (!o) {
			struct rw_oncpu zero = {};

			bpf_map_update_elem(&oncpu, &tgid, &zero, BPF_NOEXIST);
			o = bpf_map_lookup_elem(&oncpu, &tgid);
		}
		if (o) {
			__sync_fetch_and_add(&o->oncpu_ns, now - *since);
			__sync_fetch_and_add(&o->switches, 1);
		}
	}
	*since = now;
	return 0;
}
