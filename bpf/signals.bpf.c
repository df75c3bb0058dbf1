// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * signals: crash and kill signals (SIGSEGV, SIGKILL, ...) generated for container processes,
 * as `signal` records and per-container counts by signal.
 *
 * Hook:  tp_btf/signal_generate (in the sender's context: the faulting task itself for a crash,
 *        whoever called kill() otherwise, possibly outside every container).
 * Maps:  signal_counts (per-CPU array, slot -> count per signal number),
 *        events (ring buffer of struct signal_event).
 *
 * Which signals are watched is a loader-set bit mask, so the list lives in one place (Rust).
 */
#include "common.h"

KANARY_RINGBUF();

/* Bit n set: watch signal n. Zero watches nothing. */
const volatile __u32 targ_signal_mask = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct signal_counts);
} signal_counts SEC(".maps");

#define KANARY_SIG_DFL 0 /* sa_handler of the default action */

/*
 * Whether the signal will terminate the task: its default action applies. A handled SIGSEGV is
 * routine for some runtimes (the JVM takes one per implicit null check) and says nothing about a
 * crash, so only signals whose disposition is still the default are reported.
 */
static __always_inline bool takes_default_action(struct task_struct *task, __u32 nr)
{
	struct sighand_struct *sighand = BPF_CORE_READ(task, sighand);
	void *handler = NULL;

	bpf_core_read(&handler, sizeof(handler), &sighand->action[nr - 1].sa.sa_handler);
	return handler == (void *)KANARY_SIG_DFL;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(kanary_signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *task,
	     int group, int result)
{
	/* The sender may be anywhere (the host's docker daemon for `docker kill`): filter on the
	 * receiving task's cgroup, not the current one. */
	__u64 cgid = kanary_task_cgroup_id(task);
	const struct container_slot *c = kanary_container_of_cgroup(cgid);

	/* Unsigned, so one bound check also rejects negative numbers; bit 0 of the mask is never
	 * set. (A separate nr == 0 test would let clang fuse both into a range check the verifier
	 * cannot follow back to the array index.) */
	__u32 nr = sig;

	if (!c || nr >= KANARY_SIGNAL_SLOTS || !(targ_signal_mask & (1U << nr)))
		return 0;
	/* Ignored (e.g. SIGKILL to a namespace's init from inside it) or already pending: nothing
	 * new happens to the task. */
	if (result != TRACE_SIGNAL_DELIVERED && result != TRACE_SIGNAL_LOSE_INFO)
		return 0;
	if (!takes_default_action(task, nr))
		return 0;

	__u32 slot = c->slot;
	struct signal_counts *counts = bpf_map_lookup_elem(&signal_counts, &slot);

	if (counts)
		counts->n[nr]++;

	struct signal_event *e = kanary_reserve(&events, struct signal_event, c, EVENT_SIGNAL);

	if (!e)
		return 0;
	/* kanary_reserve() filled the header from the sender; the record is about the receiver. */
	e->sender_pid = e->hdr.pid;
	e->hdr.cgroup_id = cgid;
	e->hdr.pid = BPF_CORE_READ(task, tgid);
	e->hdr.tid = BPF_CORE_READ(task, pid);
	e->signal = nr;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct signal_event _signal_event_type = {};
struct signal_counts _signal_counts_type = {};
