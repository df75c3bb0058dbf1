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

/*
 * De-duplication of streamed events (file.bpf.c's opens, network.bpf.c's connections): an LRU
 * keyed by what makes two events "the same", whose value says when the key was last streamed
 * and how many repeats were folded since. The key must start with the __u32 slot: the agent
 * deletes a recycled slot's keys by it. The loader sizes the map from the config.
 */
struct kanary_seen {
	__u64 reported_ns; /* bpf_ktime_get_boot_ns() of the last streamed event */
	__u64 repeats;	   /* repeats counted, not streamed, since then */
};

#define KANARY_DEDUP_MAP(name, key_type)                                                           \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);                                               \
		__uint(max_entries, 16384);                                                        \
		__type(key, key_type);                                                             \
		__type(value, struct kanary_seen);                                                 \
	} name SEC(".maps")

/*
 * The de-duplication decision for an event with `key` at `now`: true when it is to be streamed,
 * with *repeats set to the repeats folded since its key was last streamed; false when it is a
 * repeat within `renotify_ns` of that, only counted. A known key costs a lock-free lookup and
 * atomics; the LRU's lock is taken only when a key is new. A key that finds no room is streamed
 * anyway (its later repeats will be too) and counted as a map_full drop of `slot`.
 */
static __always_inline bool kanary_dedup_report(void *map, const void *key, __u64 now,
						__u64 renotify_ns, __u32 slot, __u64 *repeats)
{
	struct kanary_seen *seen = bpf_map_lookup_elem(map, key);

	if (seen) {
		__u64 last = seen->reported_ns;
		/* Another CPU may have claimed the report with a slightly later clock: no time has
		 * passed since then. */
		__u64 elapsed = now > last ? now - last : 0;

		if (elapsed < renotify_ns) {
			__sync_fetch_and_add(&seen->repeats, 1);
			return false;
		}
		/* Due again. Only the CPU that moves the timestamp reports it, so two CPUs seeing
		 * the same expired entry do not both stream it. */
		if (__sync_val_compare_and_swap(&seen->reported_ns, last, now) != last) {
			__sync_fetch_and_add(&seen->repeats, 1);
			return false;
		}
		*repeats = __sync_lock_test_and_set(&seen->repeats, 0);
		return true;
	}

	struct kanary_seen fresh = { .reported_ns = now };

	*repeats = 0;
	switch (bpf_map_update_elem(map, key, &fresh, BPF_NOEXIST)) {
	case 0:
		break;
	case -KANARY_EEXIST: /* another CPU inserted and reported the same key just now */
		seen = bpf_map_lookup_elem(map, key);
		if (seen)
			__sync_fetch_and_add(&seen->repeats, 1);
		return false;
	default: /* no memory for the entry: report it undeduplicated, and say so */
		kanary_count_drop(slot, DROP_MAP_FULL);
		break;
	}
	return true;
}

/*
 * Programs on the classic tracepoints of one system call, for calls whose other syscalls must
 * cost nothing: kanary_enter_<name> runs `body` at sys_enter_<name> with `ctx` a
 * struct trace_event_raw_sys_enter * (the arguments in ctx->args[]), kanary_exit_<name> at
 * sys_exit_<name> with `ctx` a struct trace_event_raw_sys_exit * (the result in ctx->ret). The
 * loader turns off the ones whose tracepoint this kernel lacks, by their section prefix.
 */
#define KANARY_SYSCALL_ENTER(name, body)                                                           \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int kanary_enter_##name(struct trace_event_raw_sys_enter *ctx)                             \
	{                                                                                          \
		return body;                                                                       \
	}

#define KANARY_SYSCALL_EXIT(name, body)                                                            \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                 \
	int kanary_exit_##name(struct trace_event_raw_sys_exit *ctx)                               \
	{                                                                                          \
		return body;                                                                       \
	}

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
