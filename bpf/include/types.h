/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of every struct shared by kernel and user space.
 * Fixed-width fields only: the Rust side decodes these through the skeleton-generated types,
 * never through a hand-written copy.
 */
#pragma once

/* Slot 0 stands for "the host" (only used when host processes are watched); containers get 1.. */
#define KANARY_HOST_SLOT 0
/* Syscall numbers are masked to 9 bits: every x86_64 and arm64 syscall is below 512. */
#define KANARY_SYSCALL_BITS 9
#define KANARY_SYSCALL_SLOTS (1 << KANARY_SYSCALL_BITS)
#define KANARY_PATH_MAX 256
#define KANARY_ARGV_MAX 256
#define KANARY_COMM_LEN 16
#define KANARY_MAX_TRACEPOINT_COUNTERS 32

/* Value of the shared container filter map, keyed by cgroup id. */
struct container_slot {
	__u32 slot;
	__u32 flags; /* CONTAINER_F_* */
};
#define CONTAINER_F_CHILD 1 /* a sub-cgroup of a container: same slot, not its own container */
#define CONTAINER_F_TRACE 2 /* stream every raw syscall of this container (trace mode) */

/* Per-collector, per-slot loss counters (per-CPU array indexed by slot). */
struct drop_counts {
	__u64 ringbuf_full; /* an event could not be reserved in the ring buffer */
	__u64 map_full;	    /* an aggregation or de-duplication map had no room */
};

/* Every ring-buffer record starts with this header. */
struct event_header {
	__u64 ts_boot_ns; /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;
	__u32 slot;
	__u32 kind; /* EVENT_* */
	__u32 pid;  /* tgid */
	__u32 tid;
};

enum event_kind {
	EVENT_CGROUP_MKDIR = 1,
	EVENT_CGROUP_RMDIR = 2,
	EVENT_SYSCALL = 3,
	EVENT_EXEC = 4,
	EVENT_FORK = 5,
	EVENT_EXIT = 6,
	EVENT_OPEN = 7,
	EVENT_CONNECT = 8,
	EVENT_ACCEPT = 9,
	EVENT_SECURITY = 10,
};

/* containers.bpf.c: a cgroup appeared or went away on the cgroup v2 hierarchy. */
struct cgroup_event {
	struct event_header hdr;
	__u64 parent_cgroup_id;
	__u32 flags;	  /* CONTAINER_F_* of the new entry */
	__u32 slot_error; /* 1: the cgroup looked like a container but no slot was free */
	char path[KANARY_PATH_MAX];
};

/* syscalls.bpf.c, trace mode only: one raw system call. */
struct syscall_event {
	struct event_header hdr;
	__u64 nr;
	__u64 args[6];
};

/* Per-container, per-syscall counters (per-CPU array indexed by slot). */
struct syscall_counts {
	__u64 n[KANARY_SYSCALL_SLOTS];
};

/* Per-container n-gram counter key: the last n syscall numbers packed 9 bits each (n <= 7). */
struct ngram_key {
	__u32 slot;
	__u32 pad;
	__u64 ngram;
};
