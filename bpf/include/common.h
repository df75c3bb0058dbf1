/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Included by every collector: kernel types, libbpf helpers, the shared container filter and
 * the loss counters. Each collector object gets its own copy of these map definitions; the
 * loader makes the filter maps one kernel map for all (reuse_fd) and keeps `drops` per collector.
 */
#pragma once
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "types.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Sizes below are placeholders: the loader sets every max_entries from the config before load. */

/* cgroup id -> container slot. Filled in the kernel at cgroup_mkdir (containers.bpf.c) and by
 * the agent for containers that existed before it started. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct container_slot);
} watched_cgroups SEC(".maps");

/* Loss counters of this collector, per slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct drop_counts);
} drops SEC(".maps");

/* Set by the loader: also watch host (non-container) processes, under slot 0. */
const volatile bool targ_include_host = false;

static const struct container_slot kanary_host_entry = { .slot = KANARY_HOST_SLOT };

/* The filter every handler starts with: NULL means "not ours, return now". */
static __always_inline const struct container_slot *kanary_container_of_cgroup(__u64 cgid)
{
	const struct container_slot *c = bpf_map_lookup_elem(&watched_cgroups, &cgid);

	if (c)
		return c;
	return targ_include_host ? &kanary_host_entry : NULL;
}

/* A task's cgroup on the v2 hierarchy: what bpf_get_current_cgroup_id() returns for current.
 * For hooks whose subject is not the current task (a forked child, a signal's receiver). */
static __always_inline __u64 kanary_task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline const struct container_slot *kanary_current_container(void)
{
	return kanary_container_of_cgroup(bpf_get_current_cgroup_id());
}

/* errno values (uapi asm-generic/errno-base.h), which vmlinux.h does not carry. */
#define KANARY_E2BIG 7
#define KANARY_EEXIST 17

enum drop_reason { DROP_RINGBUF, DROP_MAP_FULL };

static __always_inline void kanary_count_drop(__u32 slot, enum drop_reason reason)
{
	struct drop_counts *d = bpf_map_lookup_elem(&drops, &slot);

	if (!d)
		return;
	if (reason == DROP_RINGBUF)
		d->ringbuf_full++;
	else
		d->map_full++;
}

/* Declares this collector's ring buffer; the loader sizes it from the config. */
#define KANARY_RINGBUF()                                                                           \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                                \
		__uint(max_entries, 256 * 1024);                                                   \
	} events SEC(".maps")

/* Reserves a record and fills its header; counts the loss when the buffer is full. */
#define kanary_reserve(rb, type, c, event_kind)                                                   \
	({                                                                                         \
		type *__e = bpf_ringbuf_reserve(rb, sizeof(type), 0);                              \
		if (__e) {                                                                         \
			__u64 __pid_tgid = bpf_get_current_pid_tgid();                             \
			__e->hdr.ts_boot_ns = bpf_ktime_get_boot_ns();                             \
			__e->hdr.cgroup_id = bpf_get_current_cgroup_id();                          \
			__e->hdr.slot = (c)->slot;                                                 \
			__e->hdr.kind = (event_kind);                                              \
			__e->hdr.pid = __pid_tgid >> 32;                                           \
			__e->hdr.tid = (__u32)__pid_tgid;                                          \
		} else {                                                                           \
			kanary_count_drop((c)->slot, DROP_RINGBUF);                                \
		}                                                                                  \
		__e;                                                                               \
	})

/* Adds `delta` to a hash-map counter found with a lock-free lookup (atomically: the map may be
 * shared by all CPUs); inserting a missing key is the only path that takes the map's bucket
 * lock. Counts a map_full drop when there is no room. */
static __always_inline void kanary_hash_add(void *map, const void *key, __u64 delta, __u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(map, key);

	if (v) {
		__sync_fetch_and_add(v, delta);
		return;
	}
	switch (bpf_map_update_elem(map, key, &delta, BPF_NOEXIST)) {
	case -KANARY_EEXIST: /* another CPU inserted it first: add to that entry */
		v = bpf_map_lookup_elem(map, key);
		if (v)
			__sync_fetch_and_add(v, delta);
		break;
	case -KANARY_E2BIG:
		kanary_count_drop(slot, DROP_MAP_FULL);
		break;
	}
}
