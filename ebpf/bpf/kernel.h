/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The few kernel structures the probes read, declared by hand for CO-RE.
 *
 * Only the fields that the programs touch are listed. `preserve_access_index`
 * makes clang emit BTF relocations for every access, and the loader (aya)
 * moves each one to the real offset found in /sys/kernel/btf/vmlinux, so the
 * order and offsets here do not matter. Nested anonymous structs in the
 * kernel (mm_struct, sock_common) are matched by field name.
 *
 * Do not replace this with a generated vmlinux.h: it is megabytes of one
 * kernel build's types committed to the tree, and a review cannot see which
 * fields the programs depend on. This file names every one of them.
 */
#ifndef RINGWAY_KERNEL_H
#define RINGWAY_KERNEL_H

#include <linux/types.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef int pid_t;
typedef _Bool bool;

typedef struct {
	int counter;
} atomic_t;

typedef struct {
	s64 counter;
} atomic64_t;

struct in6_addr {
	__u8 s6_addr[16];
};

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

/* The kernel's possible_net_t: the socket's network namespace. */
typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	atomic64_t skc_cookie;
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct {
		atomic_t rmem_alloc;
	} sk_backlog;
	int sk_wmem_queued;
	u32 sk_ack_backlog;
	u32 sk_max_ack_backlog;
} __attribute__((preserve_access_index));

struct tcp_sock {
	u32 srtt_us;
	u32 mdev_us;
	u32 total_retrans;
	u32 segs_in;
	u32 segs_out;
	u64 bytes_acked;
	u64 bytes_received;
} __attribute__((preserve_access_index));

struct percpu_counter {
	s64 count;
} __attribute__((preserve_access_index));

struct task_struct;

struct mm_struct {
	struct percpu_counter rss_stat[4];
	struct task_struct *owner;
} __attribute__((preserve_access_index));

struct task_struct {
	pid_t pid;
	pid_t tgid;
	struct mm_struct *mm;
} __attribute__((preserve_access_index));

struct io_cqe {
	u64 user_data;
} __attribute__((preserve_access_index));

struct io_kiocb {
	u8 opcode;
	struct io_cqe cqe;
} __attribute__((preserve_access_index));

struct io_uring_cqe {
	u64 user_data;
	s32 res;
	u32 flags;
} __attribute__((preserve_access_index));

struct io_ring_ctx;

#endif
