// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * syscalls: per-container system call counts and sequence features, aggregated in the kernel so
 * the default configuration never streams individual syscalls to user space.
 *
 * Hook:  a handler on tp_btf/sys_enter, run by the syscall dispatcher (syscall_dispatch.bpf.c)
 *        for every syscall of every task, as this collector routes them all to it; the
 *        container filter comes first.
 * Maps:  syscall_counts (per-CPU array, slot -> counter per syscall number),
 *        thread_windows (task storage: the thread's last syscalls, packed 9 bits each),
 *        ngram_counts (hash, (slot, packed n-gram) -> count, atomic adds; drained by the agent
 *        each interval, so its size only has to hold one interval's distinct n-grams; shared
 *        rather than per-CPU so its memory does not grow with the number of CPUs),
 *        events (ring buffer, trace mode only: struct syscall_event),
 *        the dispatcher's maps (KANARY_SYSCALL_DISPATCH_MAPS()).
 *
 * The per-syscall path does lock-free lookups and in-place increments only; the hash's bucket
 * lock is taken just when an n-gram is first seen in an interval.
 */
#include "common.h"

KANARY_RINGBUF();
KANARY_SYSCALL_DISPATCH_MAPS();

/* n-gram length (2..7); 0 turns sequence features off. */
const volatile __u32 targ_ngram_len = 3;
/* The low 9 * targ_ngram_len bits. */
const volatile __u64 targ_ngram_mask = (1ULL << 27) - 1;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct syscall_counts);
} syscall_counts SEC(".maps");

struct thread_window {
	__u64 packed; /* the thread's last syscalls, newest in the low bits */
	__u32 filled; /* how many of them are valid, capped at targ_ngram_len */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_window);
} thread_windows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ngram_key);
	__type(value, __u64);
} ngram_counts SEC(".maps");

static __always_inline void count_ngram(const struct container_slot *c, __u32 nr)
{
	struct thread_window *w = bpf_task_storage_get(&thread_windows, bpf_get_current_task_btf(), 0,
						       BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!w)
		return;
	w->packed = (w->packed << KANARY_SYSCALL_BITS) | nr;
	if (w->filled < targ_ngram_len)
		w->filled++;
	if (w->filled < targ_ngram_len)
		return;

	struct ngram_key key = { .slot = c->slot, .ngram = w->packed & targ_ngram_mask };

	kanary_hash_add(&ngram_counts, &key, 1, c->slot);
}

static __always_inline void trace_syscall(const struct container_slot *c, struct pt_regs *regs,
					  __u32 nr)
{
	struct syscall_event *e = kanary_reserve(&events, struct syscall_event, c, EVENT_SYSCALL);

	if (!e)
		return;
	e->nr = nr;
	e->args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	e->args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	e->args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	e->args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
	e->args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
	e->args[5] = PT_REGS_PARM6_CORE_SYSCALL(regs);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void count_syscall(struct pt_regs *regs, long id)
{
	const struct container_slot *c = kanary_current_container();

	if (!c || id < 0 || id >= KANARY_SYSCALL_SLOTS)
		return;

	__u32 nr = id;
	__u32 slot = c->slot;
	struct syscall_counts *counts = bpf_map_lookup_elem(&syscall_counts, &slot);

	if (counts)
		counts->n[nr & (KANARY_SYSCALL_SLOTS - 1)]++;
	if (targ_ngram_len)
		count_ngram(c, nr);
	if (c->flags & CONTAINER_F_TRACE)
		trace_syscall(c, regs, nr);
}

/* The handler the dispatcher tail-calls for every syscall. */
SEC("tp_btf/sys_enter")
int BPF_PROG(kanary_sys_enter, struct pt_regs *regs, long id)
{
	count_syscall(regs, id);
	return kanary_syscall_next(ctx, id, enter, SYSCALL_HANDLER_SYSCALLS);
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct syscall_event _syscall_event_type = {};
struct ngram_key _ngram_key_type = {};
