// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * syscalls: per-container system call counts and sequence features, aggregated in the kernel so
 * the default configuration never streams individual syscalls to user space.
 *
 * Hooks: a handler on tp_btf/sys_enter, run by the syscall dispatcher (syscall_dispatch.bpf.c)
 *        for every syscall of every task, as this collector routes them all to it; the
 *        container filter comes first. tp_btf/sched_process_exit, to hand over an exiting
 *        thread's n-gram counts. iter/task, run by the agent each interval for the threads
 *        that did not hand theirs over themselves.
 * Maps:  syscall_counts (per-CPU array, slot -> counter per syscall number),
 *        thread_syscalls (task storage: the container filter's cached answer for the thread,
 *        its last syscalls, packed 9 bits each, and its own n-gram counts since the last
 *        hand-over, see below),
 *        ngram_counts (hash, (slot, packed n-gram) -> count, atomic adds; drained by the agent
 *        each interval, so its size only has to hold one interval's distinct n-grams; shared
 *        rather than per-CPU so its memory does not grow with the number of CPUs),
 *        ngram_epoch (.bss, written by the agent each interval),
 *        events (ring buffer, trace mode only: struct syscall_event),
 *        the dispatcher's maps (KANARY_SYSCALL_DISPATCH_MAPS()).
 *
 * The per-syscall path does lock-free lookups and in-place increments only, nearly all of them in
 * the thread's own storage; the hash's bucket lock is taken just when an n-gram is first seen in
 * an interval.
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

/*
 * Each thread counts its own n-grams in a small direct-mapped table in its task storage, so that
 * the per-syscall path is a few plain loads and stores in memory no other CPU touches; the shared
 * hash (and its atomic add) is only written when an n-gram is evicted by another that hashes to
 * the same way, when the agent starts a new interval (the thread's first syscall after the agent
 * bumped ngram_epoch hands over its table, or the agent's task iterator does for a thread that
 * made none), when the thread moves to another container, and when the thread exits. Before
 * this table, the shared hash's lookup and atomic add were the largest single cost of a
 * container syscall (docs/adr/0012-per-thread-state-on-the-syscall-path.md).
 */
#define NGRAM_WAYS 32
#define NGRAM_WAY_SHIFT (64 - 5) /* log2(NGRAM_WAYS) bits of a multiplicative hash */

struct thread_syscalls {
	/* The container filter's answer for the thread, valid while the thread is in cgroup
	 * filter_cgroup and filter_epoch (common.h) is filter_epoch_seen - 1; so a new, zeroed
	 * entry never looks valid. Saves the filter's hash lookup on nearly every syscall. */
	__u64 filter_cgroup;
	__u64 filter_epoch_seen;
	struct container_slot container;
	__u32 watched;
	__u32 pad;
	/* n-grams */
	__u64 recent;		     /* the thread's last syscalls, newest in the low bits */
	__u32 filled;		     /* how many of them are valid, capped at targ_ngram_len */
	__u32 slot;		     /* the container the table's counts belong to */
	__u64 epoch;		     /* ngram_epoch when the table was last handed over */
	__u64 grams[NGRAM_WAYS];     /* packed n-gram of each way */
	__u32 counts[NGRAM_WAYS];    /* its count since the last hand-over; 0: way unused */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_syscalls);
} thread_syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ngram_key);
	__type(value, __u64);
} ngram_counts SEC(".maps");

/* Bumped by the agent (through the skeleton's mmapped .bss) before it drains ngram_counts. */
volatile __u64 ngram_epoch;

static __always_inline void hand_over_way(struct thread_syscalls *t, __u32 way)
{
	__u32 n = t->counts[way];

	if (!n)
		return;

	struct ngram_key key = { .slot = t->slot, .ngram = t->grams[way] };

	kanary_hash_add(&ngram_counts, &key, n, t->slot);
	t->counts[way] = 0;
}

/* Moves every count of the thread's table into ngram_counts. */
static __always_inline void hand_over_table(struct thread_syscalls *t)
{
	for (__u32 way = 0; way < NGRAM_WAYS; way++)
		hand_over_way(t, way);
}

/*
 * Marks the table as handed over in the current epoch; false when someone else (the thread
 * itself or the agent's iterator, kanary_ngrams_collect) already did. A compare-and-swap, so that
 * the two never both hand the same counts over.
 */
static __always_inline bool claim_table(struct thread_syscalls *t)
{
	__u64 seen = t->epoch;
	__u64 epoch = ngram_epoch;

	return seen != epoch && __sync_val_compare_and_swap(&t->epoch, seen, epoch) == seen;
}

static __always_inline void count_ngram(struct thread_syscalls *t, const struct container_slot *c,
				       __u32 nr)
{
	if (claim_table(t))
		hand_over_table(t);
	if (t->slot != c->slot) {
		hand_over_table(t);
		t->slot = c->slot;
	}
	t->recent = (t->recent << KANARY_SYSCALL_BITS) | nr;
	if (t->filled < targ_ngram_len)
		t->filled++;
	if (t->filled < targ_ngram_len)
		return;

	__u64 gram = t->recent & targ_ngram_mask;
	__u32 way = (gram * 0x9E3779B97F4A7C15ULL) >> NGRAM_WAY_SHIFT;

	if (t->grams[way] == gram && t->counts[way]) {
		t->counts[way]++;
		return;
	}
	hand_over_way(t, way);
	t->grams[way] = gram;
	t->counts[way] = 1;
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

/* The container filter for the current thread, through the thread's cached answer. */
static __always_inline const struct container_slot *thread_container(struct thread_syscalls *t)
{
	__u32 zero = 0;
	__u64 *epoch = bpf_map_lookup_elem(&filter_epoch, &zero);
	__u64 cgid = bpf_get_current_cgroup_id();

	if (!epoch)
		return kanary_container_of_cgroup(cgid);
	if (t->filter_cgroup != cgid || t->filter_epoch_seen != *epoch + 1) {
		/* The epoch is read before the lookup: a change the lookup misses bumps it again. */
		__u64 seen = *epoch;
		const struct container_slot *c = bpf_map_lookup_elem(&watched_cgroups, &cgid);

		t->watched = c != NULL;
		if (c)
			t->container = *c;
		t->filter_cgroup = cgid;
		t->filter_epoch_seen = seen + 1;
	}
	if (t->watched)
		return &t->container;
	return targ_include_host ? &kanary_host_entry : NULL;
}

static __always_inline void count_syscall(struct pt_regs *regs, long id)
{
	if (id < 0 || id >= KANARY_SYSCALL_SLOTS)
		return;

	/* Created for host threads too: their cached "not watched" is what makes them cheap. */
	struct thread_syscalls *t = bpf_task_storage_get(&thread_syscalls, bpf_get_current_task_btf(),
							 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	const struct container_slot *c = t ? thread_container(t) : kanary_current_container();

	if (!c)
		return;

	__u32 nr = id;
	__u32 slot = c->slot;
	struct syscall_counts *counts = bpf_map_lookup_elem(&syscall_counts, &slot);

	if (counts)
		counts->n[nr & (KANARY_SYSCALL_SLOTS - 1)]++;
	if (targ_ngram_len && t)
		count_ngram(t, c, nr);
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

/* A thread's last n-grams are handed over when it exits, not lost. (This program and the
 * iterator below are attached only with n-grams on.) */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(kanary_ngrams_exit, struct task_struct *task)
{
	struct thread_syscalls *t =
		bpf_task_storage_get(&thread_syscalls, bpf_get_current_task_btf(), 0, 0);

	if (t)
		hand_over_table(t);
	return 0;
}

/*
 * Run by the agent after it bumped ngram_epoch and gave the threads a moment to hand over their
 * tables themselves: hands over the tables of the threads that made no syscall since (blocked in
 * one, or computing), so that an idle thread's counts still land in the interval they were made
 * in. A thread that wakes while its table is handed over here may lose or double-count the
 * increment it makes meanwhile; only the per-syscall path's plain increments keep it cheap.
 */
SEC("iter/task")
int kanary_ngrams_collect(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct thread_syscalls *t;

	if (!task)
		return 0;
	t = bpf_task_storage_get(&thread_syscalls, task, 0, 0);
	if (t && claim_table(t))
		hand_over_table(t);
	return 0;
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct syscall_event _syscall_event_type = {};
struct ngram_key _ngram_key_type = {};
