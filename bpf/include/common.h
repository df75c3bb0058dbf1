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

/* Bumped by the agent after each change it makes to watched_cgroups: a value cached from the
 * filter (syscalls.bpf.c keeps one per thread, keyed by cgroup id) is valid while this is
 * unchanged. The kernel's own changes need no bump: it adds a cgroup when it is created, before
 * any thread can be in it, and removes it when no thread is, and cgroup ids are never reused. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} filter_epoch SEC(".maps");

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

enum drop_reason { DROP_RINGBUF, DROP_MAP_FULL, DROP_THROTTLED };

static __always_inline void kanary_count_drop(__u32 slot, enum drop_reason reason)
{
	struct drop_counts *d = bpf_map_lookup_elem(&drops, &slot);

	if (!d)
		return;
	if (reason == DROP_RINGBUF)
		d->ringbuf_full++;
	else if (reason == DROP_THROTTLED)
		d->throttled++;
	else
		d->map_full++;
}

/* Declares this collector's ring buffer; the loader sizes it from the config. */
#define KANARY_RINGBUF()                                                                           \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                                \
		__uint(max_entries, 256 * 1024);                                                   \
	} events SEC(".maps")

/* Reserves a record and fills its header; counts the loss when the buffer is full. A throttled
 * container (the agent is over its CPU budget because of it) gets no record, counted as a
 * throttled drop: checked first, so a storm costs the ring buffer and the agent nothing. */
#define kanary_reserve(rb, type, c, event_kind)                                                   \
	({                                                                                         \
		type *__e = NULL;                                                                  \
		if ((c)->flags & CONTAINER_F_THROTTLED)                                            \
			kanary_count_drop((c)->slot, DROP_THROTTLED);                              \
		else if ((__e = bpf_ringbuf_reserve(rb, sizeof(type), 0))) {                       \
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
 * Syscall dispatch. A program on a raw syscall tracepoint (tp_btf/sys_enter, tp_btf/sys_exit)
 * runs for every syscall of every task, host included, and every further program on the same
 * tracepoint costs each syscall ~40 ns more here: the kernel then calls them through a loop of
 * indirect calls instead of one direct call. Classic syscalls:sys_{enter,exit}_<name>
 * tracepoints are no way out: enabling any of them runs the perf syscall handlers on every
 * syscall too. (Measurements: docs/adr/0005-syscall-dispatch-on-tp-btf.md.)
 *
 * So the agent attaches exactly one program to each of the two (syscall_dispatch.bpf.c). The
 * collectors that work per syscall load handler programs, SEC("tp_btf/sys_enter") or
 * SEC("tp_btf/sys_exit") but never attached, which the loader puts in the prog arrays below at
 * the index of their enum syscall_handler, and name the syscall numbers they want in
 * syscall_routes (syscall_dispatch.rs). The dispatcher looks the number up first and tail-calls
 * only the handlers that want it, each a direct jump: a syscall nobody watches costs one array
 * lookup. A handler ends with kanary_syscall_next() so the handlers after it still run.
 *
 * A handler object declares these maps with KANARY_SYSCALL_DISPATCH_MAPS(); the loader makes
 * its copies the dispatcher's (reuse_fd), like the container filter.
 */
#define KANARY_SYSCALL_DISPATCH_MAPS()                                                             \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_PROG_ARRAY);                                             \
		__uint(max_entries, SYSCALL_HANDLER_COUNT);                                        \
		__type(key, __u32);                                                                \
		__type(value, __u32);                                                              \
	} syscall_enter_handlers SEC(".maps");                                                     \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_PROG_ARRAY);                                             \
		__uint(max_entries, SYSCALL_HANDLER_COUNT);                                        \
		__type(key, __u32);                                                                \
		__type(value, __u32);                                                              \
	} syscall_exit_handlers SEC(".maps");                                                      \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(max_entries, 1);                                                            \
		__type(key, __u32);                                                                \
		__type(value, struct syscall_routes);                                              \
	} syscall_routes SEC(".maps")

/* The handlers (bits of enum syscall_handler) that want syscall `nr` at entry or at exit. An
 * array lookup the verifier inlines: no helper call. */
#define kanary_syscall_routes(nr, at)                                                              \
	({                                                                                         \
		__u32 __zero = 0;                                                                  \
		__u64 __nr = (nr);                                                                 \
		struct syscall_routes *__r = bpf_map_lookup_elem(&syscall_routes, &__zero);        \
		__r && __nr < KANARY_SYSCALL_SLOTS ? __r->at[__nr] : 0;                            \
	})

/* Runs the first handler after handler `after` (-1: from the start) that `routes` names, by a
 * tail call into `handlers`, which does not return; returns when there is none, or when a
 * named handler's slot is empty. One constant index per handler, so that the JIT makes each
 * tail call a direct jump. */
#define kanary_syscall_chain(ctx, handlers, routes, after)                                         \
	({                                                                                         \
		__u8 __routes = (routes);                                                          \
		if ((after) < SYSCALL_HANDLER_SYSCALLS &&                                          \
		    (__routes & (1 << SYSCALL_HANDLER_SYSCALLS)))                                  \
			bpf_tail_call_static(ctx, handlers, SYSCALL_HANDLER_SYSCALLS);             \
		if ((after) < SYSCALL_HANDLER_FILE && (__routes & (1 << SYSCALL_HANDLER_FILE)))    \
			bpf_tail_call_static(ctx, handlers, SYSCALL_HANDLER_FILE);                 \
		if ((after) < SYSCALL_HANDLER_SECURITY &&                                          \
		    (__routes & (1 << SYSCALL_HANDLER_SECURITY)))                                  \
			bpf_tail_call_static(ctx, handlers, SYSCALL_HANDLER_SECURITY);             \
	})

/* How a handler of `self` for syscall `nr` ends, at entry (enter) or at exit (exit): the
 * handlers after it that want the syscall still run. Evaluates to 0, the program's result. */
#define kanary_syscall_next(ctx, nr, at, self)                                                     \
	({                                                                                         \
		kanary_syscall_chain(ctx, &syscall_##at##_handlers, kanary_syscall_routes(nr, at),  \
				     self);                                                        \
		0;                                                                                 \
	})

/*
 * A handler's own table: `const volatile __u8 <table>[KANARY_SYSCALL_SLOTS]`, filled by the
 * loader (syscall_dispatch::syscall_table), whose entry `nr` is the collector's code for that
 * syscall, 0 for the ones it does not watch.
 */
static __always_inline __u8 kanary_syscall_code(const volatile __u8 *table, __u64 nr)
{
	return nr < KANARY_SYSCALL_SLOTS ? table[nr] : 0;
}

/*
 * The number of the syscall that `regs` (tp_btf/sys_exit's first argument) belongs to: the exit
 * tracepoint passes only the registers and the result. orig_ax is what the kernel's own
 * syscall_get_nr() reads, -1 when no syscall is in progress. A direct load: tp_btf arguments are
 * BTF pointers, relocated by CO-RE like BPF_CORE_READ but without its helper call, which matters
 * on a path every syscall takes. (x86_64 only, like the vendored vmlinux.h.) The arguments are
 * read the same way, with libbpf's PT_REGS_PARMn_SYSCALL(regs).
 */
#define kanary_exit_syscall_nr(regs) ((regs)->orig_ax)

/* x86 TS_COMPAT (arch/x86/include/asm/thread_info.h): the thread's current syscall came in
 * through a 32-bit entry (int 0x80, sysenter). */
#define KANARY_TS_COMPAT 0x0002

/*
 * True when the current syscall is a 32-bit compat one, whose number comes from another table
 * (ia32 5 is open, x86_64 5 is fstat): the raw tracepoints pass those numbers as they are, so a
 * handler that decodes x86_64 numbers must skip them, as the kernel's syscalls:* tracepoints
 * do. Called only after the routes and the handler's table said the number is watched.
 */
static __always_inline bool kanary_compat_syscall(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return task->thread_info.status & KANARY_TS_COMPAT;
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
