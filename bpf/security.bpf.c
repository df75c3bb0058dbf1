// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * security: privilege, namespace, mount, module, BPF and memfd system calls of container
 * processes, each reported with its arguments and result.
 *
 * Hooks: handlers on tp_btf/sys_enter and tp_btf/sys_exit, run by the syscall dispatcher
 *        (syscall_dispatch.bpf.c) only for the calls of enum security_syscall, which this
 *        collector routes to them; their own table targ_security_calls (filled by the loader)
 *        says which call it is. Entry captures the raw arguments, the caller's euid and the
 *        call's user strings (mount source/target/fstype, memfd name, execveat and chmod
 *        paths, module names and parameters) and the capset header and cap_data; exit adds
 *        the result and streams the call. chmod, fchmod, fchmodat and fchmodat2 are kept only
 *        when the new mode sets S_ISUID or S_ISGID.
 * Maps:  pending_calls (task storage: the thread's call in flight, struct security_call),
 *        security_counts (per-CPU array, slot -> count per enum security_syscall),
 *        events (ring buffer of struct security_event),
 *        the dispatcher's maps (KANARY_SYSCALL_DISPATCH_MAPS()).
 *
 * Strings are read at entry because a successful execveat replaces the memory they live in.
 * A call refused before it ran (seccomp: Docker's default profile answers mount or unshare
 * with EPERM) reaches the exit tracepoint but not the entry one; exit then reads the arguments
 * from the registers, which the kernel has not touched, so refused attempts are reported too.
 */
#include "common.h"

KANARY_RINGBUF();
KANARY_SYSCALL_DISPATCH_MAPS();

#define KANARY_S_ISUID 04000
#define KANARY_S_ISGID 02000

/* Syscall number -> KANARY_SECURITY_CODE(enum security_syscall), 0 for the syscalls not
 * watched; set by the loader. */
const volatile __u8 targ_security_calls[KANARY_SYSCALL_SLOTS] = {};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct security_call);
} pending_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct security_counts);
} security_counts SEC(".maps");

/* How many arguments call `id` takes: the registers past them hold whatever the caller left
 * there, and are reported as 0. */
static __always_inline int nargs_of(__u32 id)
{
	switch (id) {
	case SECURITY_SETUID:
	case SECURITY_SETGID:
	case SECURITY_SETFSUID:
	case SECURITY_SETFSGID:
	case SECURITY_UNSHARE:
		return 1;
	case SECURITY_SETREUID:
	case SECURITY_SETREGID:
	case SECURITY_CAPSET:
	case SECURITY_UMOUNT2:
	case SECURITY_SETNS:
	case SECURITY_DELETE_MODULE:
	case SECURITY_MEMFD_CREATE:
	case SECURITY_CHMOD:
	case SECURITY_FCHMOD:
		return 2;
	case SECURITY_SETRESUID:
	case SECURITY_SETRESGID:
	case SECURITY_BPF:
	case SECURITY_INIT_MODULE:
	case SECURITY_FINIT_MODULE:
	case SECURITY_FCHMODAT:
		return 3;
	case SECURITY_PTRACE:
	case SECURITY_FCHMODAT2:
		return 4;
	default: /* mount, execveat */
		return 5;
	}
}

/* The call's arguments from its registers, those past nargs_of(id) zeroed. Fixed positions
 * rather than a loop on a variable bound, which the verifier would walk once per bound. */
static __always_inline void read_args(struct pt_regs *regs, __u32 id, __u64 *args)
{
	int nargs = nargs_of(id);

	args[0] = PT_REGS_PARM1_SYSCALL(regs);
	args[1] = nargs > 1 ? PT_REGS_PARM2_SYSCALL(regs) : 0;
	args[2] = nargs > 2 ? PT_REGS_PARM3_SYSCALL(regs) : 0;
	args[3] = nargs > 3 ? PT_REGS_PARM4_SYSCALL(regs) : 0;
	args[4] = nargs > 4 ? PT_REGS_PARM5_SYSCALL(regs) : 0;
	args[5] = 0; /* no watched call takes six */
}

/* Which argument holds the call's n-th user string, -1 for none. */
static __always_inline int string_arg(__u32 id, int n)
{
	switch (id) {
	case SECURITY_MOUNT: /* source, target, fstype */
		return n;
	case SECURITY_UMOUNT2:	     /* target */
	case SECURITY_MEMFD_CREATE:  /* name */
	case SECURITY_DELETE_MODULE: /* name */
	case SECURITY_CHMOD:	     /* path */
		return n == 0 ? 0 : -1;
	case SECURITY_EXECVEAT:	    /* path */
	case SECURITY_FINIT_MODULE: /* parameters */
	case SECURITY_FCHMODAT:	    /* path */
	case SECURITY_FCHMODAT2:    /* path */
		return n == 0 ? 1 : -1;
	case SECURITY_INIT_MODULE: /* parameters */
		return n == 0 ? 2 : -1;
	default:
		return -1;
	}
}

/* The chmod family is only of interest when it makes a file set-uid or set-gid. */
static __always_inline bool wanted(__u32 id, const __u64 *args)
{
	switch (id) {
	case SECURITY_CHMOD:
	case SECURITY_FCHMOD:
		return args[1] & (KANARY_S_ISUID | KANARY_S_ISGID);
	case SECURITY_FCHMODAT:
	case SECURITY_FCHMODAT2:
		return args[2] & (KANARY_S_ISUID | KANARY_S_ISGID);
	default:
		return true;
	}
}

/* Fills `call` from the six argument registers, reading the user memory they point to. */
static __always_inline void capture(struct security_call *call, __u32 id, const __u64 *args)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	for (int i = 0; i < 6; i++)
		call->args[i] = args[i];
	call->syscall = id;
	call->euid = BPF_CORE_READ(task, cred, euid.val);
	call->pad = 0;
	for (int n = 0; n < KANARY_SECURITY_STRINGS; n++) {
		int arg = string_arg(id, n);
		char *dst = call->strings + n * KANARY_PATH_MAX;

		/* A failed read leaves the buffer zeroed: an empty string. `arg` is 0..2; the mask
		 * is the bound the verifier needs for the variable stack index. */
		if (arg >= 0)
			bpf_probe_read_user_str(dst, KANARY_PATH_MAX, (const char *)args[arg & 3]);
		else
			dst[0] = 0;
	}
	if (id == SECURITY_CAPSET) {
		/* header {version, pid}, then up to two cap_data structs (version 1 uses one) */
		if (bpf_probe_read_user(&call->data[0], 2 * sizeof(__u32), (const void *)args[0]))
			__builtin_memset(&call->data[0], 0, 2 * sizeof(__u32));
		if (bpf_probe_read_user(&call->data[2], 6 * sizeof(__u32), (const void *)args[1]))
			__builtin_memset(&call->data[2], 0, 6 * sizeof(__u32));
	} else {
		__builtin_memset(call->data, 0, sizeof(call->data));
	}
}

/* What syscall `nr` is as an enum security_syscall, or -1 when it is not watched (or is a 32-bit
 * compat call). */
static __always_inline int watched_call(__u64 nr)
{
	__u8 code = kanary_syscall_code(targ_security_calls, nr);

	if (!code || kanary_compat_syscall())
		return -1;
	return code - KANARY_SECURITY_CODE(0);
}

/* At entry: capture the call into the thread's task storage. */
static __always_inline void security_enter(struct pt_regs *regs, long nr)
{
	int id = watched_call(nr);

	if (id < 0 || !kanary_current_container())
		return;

	__u64 args[6];

	read_args(regs, id, args);
	if (!wanted(id, args))
		return;

	struct security_call *call = bpf_task_storage_get(
		&pending_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!call)
		return;
	capture(call, id, args);
	call->flags = SECURITY_F_PENDING;
}

/* At exit: count the call and stream it with its result. */
static __always_inline void security_exit(struct pt_regs *regs, __u64 nr, long ret)
{
	int id = watched_call(nr);

	if (id < 0)
		return;

	const struct container_slot *c = kanary_current_container();

	if (!c)
		return;

	struct task_struct *task = bpf_get_current_task_btf();
	struct security_call *call = bpf_task_storage_get(&pending_calls, task, 0, 0);

	if (call && (call->flags & SECURITY_F_PENDING) && call->syscall == id) {
		call->flags &= ~SECURITY_F_PENDING;
	} else {
		/* No entry seen: the call was refused before it started (or kanary attached while
		 * it ran). The kernel has not touched its argument registers. */
		__u64 args[6];

		read_args(regs, id, args);
		if (!wanted(id, args))
			return;
		call = bpf_task_storage_get(&pending_calls, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!call)
			return;
		capture(call, id, args);
		call->flags = SECURITY_F_ARGS_AT_EXIT;
	}

	__u32 slot = c->slot;
	struct security_counts *counts = bpf_map_lookup_elem(&security_counts, &slot);

	if (counts)
		counts->n[id & (KANARY_SECURITY_SLOTS - 1)]++;

	struct security_event *e = kanary_reserve(&events, struct security_event, c, EVENT_SECURITY);

	if (!e)
		return;
	e->result = ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel(&e->call, sizeof(e->call), call);
	bpf_ringbuf_submit(e, 0);
}

/* The handlers the dispatcher tail-calls for the syscalls this collector routes to them. */
SEC("tp_btf/sys_enter")
int BPF_PROG(kanary_security_enter, struct pt_regs *regs, long nr)
{
	security_enter(regs, nr);
	return kanary_syscall_next(ctx, nr, enter, SYSCALL_HANDLER_SECURITY);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(kanary_security_exit, struct pt_regs *regs, long ret)
{
	__u64 nr = kanary_exit_syscall_nr(regs);

	security_exit(regs, nr, ret);
	return kanary_syscall_next(ctx, nr, exit, SYSCALL_HANDLER_SECURITY);
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct security_event _security_event_type = {};
struct security_counts _security_counts_type = {};
enum security_syscall _security_syscall_type = SECURITY_SETUID;
