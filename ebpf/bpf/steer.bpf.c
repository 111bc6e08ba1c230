/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Steers each new connection on a listen address to this process's own
 * listeners: the ones in `listeners`, picked by the connection's flow hash.
 *
 * Attached to the address's SO_REUSEPORT group (a group has one program, the
 * last attached), so once a new ringway is listening, an old one beside it
 * (a binary upgrade) gets no new handshakes, and nothing is in flight on its
 * listeners when it closes them. Attached for `migrate` too: a connection
 * still queued on a listener that closes is handed to one of ours (as
 * net.ipv4.tcp_migrate_req=1 would, without the sysctl).
 *
 * A listener of ours that closed is gone from the map: the select fails and
 * the kernel picks by hash among the group's listeners, as with no program.
 * Never SK_DROP: that would refuse the connection.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 1); /* set to the listener count at load */
	__type(key, __u32);
	__type(value, __u32);
} listeners SEC(".maps");

/* How many listeners `listeners` holds: set at load. */
volatile const __u32 listener_count = 1;

SEC("sk_reuseport/migrate")
int steer(struct sk_reuseport_md *md)
{
	__u32 count = listener_count;
	__u32 index;

	if (count == 0)
		return SK_PASS;
	index = md->hash % count;
	bpf_sk_select_reuseport(md, &listeners, &index, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
