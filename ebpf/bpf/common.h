/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Helpers shared by the probe programs (no shared data layouts here: those
 * live in ringway.h). */
#ifndef RINGWAY_COMMON_H
#define RINGWAY_COMMON_H

#include "kernel.h"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "ringway.h"

/* ceil(log2(v)) for v >= 2, 0 for v <= 1, without loops. */
static __always_inline __u32 rw_log2_ceil(__u64 v)
{
	__u32 r = 0, shift;

	if (v <= 1)
		return 0;
	v--;
	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r + 1;
}

static __always_inline void rw_hist_observe(struct rw_hist *h, __u64 v)
{
	__u32 b = rw_log2_ceil(v);

	if (b >= RW_HIST_BUCKETS)
		b = RW_HIST_BUCKETS - 1;
	/* Per-CPU values: no atomics needed; userspace sums the CPUs. */
	h->count++;
	h->sum += v;
	h->buckets[b]++;
}

#endif
