// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * process: the lifecycle of container processes, as records (exec, fork, exit) and as
 * per-container counters.
 *
 * Hooks:  tp_btf/sched_process_exec (in the task that exec'd, after the new image is set up),
 *         tp_btf/sched_process_fork (in the parent, once the child is fully created),
 *         tp_btf/sched_process_exit (in every exiting thread).
 * Maps:   process_counts (per-CPU array, slot -> struct process_counts),
 *         events (ring buffer of struct exec_event, fork_event and exit_event).
 *
 * A new thread is counted but not streamed; only a whole process exiting is reported.
 */
#include "common.h"

KANARY_RINGBUF();

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct process_counts);
} process_counts SEC(".maps");


static __always_inline struct process_counts *counts_of(const struct container_slot *c)
{
	__u32 slot = c->slot;

	return bpf_map_lookup_elem(&process_counts, &slot);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(kanary_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	const struct container_slot *c = kanary_current_container();

	if (!c)
		return 0;

	struct process_counts *counts = counts_of(c);

	if (counts)
		counts->execs++;

	struct exec_event *e = kanary_reserve(&events, struct exec_event, c, EVENT_EXEC);

	if (!e)
		return 0;

	struct task_struct *parent = BPF_CORE_READ(p, real_parent);
	__u64 uid_gid = bpf_get_current_uid_gid();

	e->ppid = BPF_CORE_READ(parent, tgid);
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	BPF_CORE_READ_STR_INTO(&e->parent_comm, parent, comm);
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename));

	/* The new image's argument strings were just copied onto its stack, so the pages are
	 * present and a non-faulting user read succeeds. Only the first KANARY_ARGV_MAX bytes are
	 * kept; argv_full tells user space how much there was. */
	unsigned long arg_start = BPF_CORE_READ(p, mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(p, mm, arg_end);
	__u64 full = arg_end > arg_start ? arg_end - arg_start : 0;
	__u32 len = full < KANARY_ARGV_MAX ? full : KANARY_ARGV_MAX;

	e->argv_full = full;
	e->argv_len = 0;
	e->pad = 0;
	if (len && !bpf_probe_read_user(e->argv, len, (const void *)arg_start))
		e->argv_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(kanary_fork, struct task_struct *parent, struct task_struct *child)
{
	/* Attributed to the child's cgroup: with clone3(CLONE_INTO_CGROUP) a runtime outside the
	 * container creates the container's first process directly inside it. */
	__u64 cgid = kanary_task_cgroup_id(child);
	const struct container_slot *c = kanary_container_of_cgroup(cgid);

	if (!c)
		return 0;

	__u32 pid = BPF_CORE_READ(child, pid);
	__u32 tgid = BPF_CORE_READ(child, tgid);
	struct process_counts *counts = counts_of(c);

	/* A new thread joins its creator's thread group (its tgid is not its own id). */
	if (pid != tgid) {
		if (counts)
			counts->threads++;
		return 0;
	}
	if (counts)
		counts->forks++;

	struct fork_event *e = kanary_reserve(&events, struct fork_event, c, EVENT_FORK);

	if (!e)
		return 0;

	/* The record is about the child: its ids and cgroup, not the forking task's. */
	struct task_struct *real_parent = BPF_CORE_READ(child, real_parent);

	e->hdr.cgroup_id = cgid;
	e->hdr.pid = tgid;
	e->hdr.tid = pid;
	e->ppid = BPF_CORE_READ(real_parent, tgid);
	e->pad = 0;
	BPF_CORE_READ_STR_INTO(&e->parent_comm, real_parent, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The 6.16+ prototype, which passes group_dead; older kernels pass only the task. */
typedef void (*btf_trace_sched_process_exit___group_dead)(void *, struct task_struct *, bool);

/*
 * Whether the exiting thread is the last one of its process. do_exit() decides this itself
 * (group_dead = the atomic decrement of signal->live reaching 0) and, since 6.16, passes it to
 * the tracepoint. Testing pid == tgid instead would be wrong: a leader can exit before its other
 * threads (it then lingers as a zombie) and the process lives on. On older kernels signal->live
 * is read back instead; two threads exiting at the very same time may then both see 0, which at
 * worst reports one exit twice.
 */
static __always_inline bool exit_is_group_dead(unsigned long long *ctx, struct task_struct *p)
{
	if (bpf_core_type_matches(btf_trace_sched_process_exit___group_dead))
		return (bool)ctx[1];
	return BPF_CORE_READ(p, signal, live.counter) == 0;
}

SEC("tp_btf/sched_process_exit")
int kanary_exit(unsigned long long *ctx)
{
	const struct container_slot *c = kanary_current_container();

	if (!c)
		return 0;

	struct task_struct *p = (struct task_struct *)ctx[0];

	if (!exit_is_group_dead(ctx, p))
		return 0;

	struct process_counts *counts = counts_of(c);

	if (counts)
		counts->exits++;

	struct exit_event *e = kanary_reserve(&events, struct exit_event, c, EVENT_EXIT);

	if (!e)
		return 0;
	/* In every exit_group() and fatal-signal path each thread exits with the group's code, so
	 * the last thread's exit_code is the process's wait status. */
	e->status = BPF_CORE_READ(p, exit_code);
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct exec_event _exec_event_type = {};
struct fork_event _fork_event_type = {};
struct exit_event _exit_event_type = {};
struct process_counts _process_counts_type = {};
