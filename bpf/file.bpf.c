// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * file: which files a container opens (de-duplicated in the kernel) and how much it reads and
 * writes.
 *
 * Hooks: handlers on tp_btf/sys_enter and tp_btf/sys_exit, run by the syscall dispatcher
 *        (syscall_dispatch.bpf.c) only for the syscalls this collector routes to them (the
 *        opens); their own table targ_file_calls (enum file_call, filled by the loader) says
 *        which call it is. At entry of open, openat, openat2 and creat the handler remembers
 *        the path pointer and flags of the thread's open; at their exit it reads the path (now
 *        resident: the kernel has just copied it) and the result, counts it and reports it
 *        unless it is a recent repeat.
 *        Reads and writes are not hooked at all: the kernel already counts each thread's
 *        read/write calls and bytes (task I/O accounting, /proc/<pid>/io's syscr, syscw,
 *        rchar, wchar), and an iter/task program the agent runs each interval adds what each
 *        container thread's counters grew by since it last looked; tp_btf/sched_process_exit
 *        does the same for a thread that exits. A read or write costs this collector nothing.
 * Maps:  file_counts (per-CPU array, slot -> struct file_counts),
 *        thread_files (task storage: the open in flight on this thread, and the thread's I/O
 *        counters as last added),
 *        open_dedup (KANARY_DEDUP_MAP, struct open_key -> when it was last reported and the
 *        repeats since; sized by collectors.file.dedup_entries),
 *        key_scratch (per-CPU: the 264-byte key does not fit the 512-byte stack comfortably),
 *        events (ring buffer of struct open_event),
 *        the dispatcher's maps (KANARY_SYSCALL_DISPATCH_MAPS()).
 *
 * A repeat within targ_renotify_ns only bumps the entry's repeat counter (lock-free); the LRU's
 * lock is taken only when a key is new, so a container re-opening the same files costs lookups.
 */
#include "common.h"

KANARY_RINGBUF();
KANARY_SYSCALL_DISPATCH_MAPS();

/* A repeated open is reported again (with its repeat count) after this long; 0: never
 * de-duplicate. */
const volatile __u64 targ_renotify_ns = 300ULL * 1000000000ULL;

/* Syscall number -> enum file_call, 0 for the syscalls not watched; set by the loader. */
const volatile __u8 targ_file_calls[KANARY_SYSCALL_SLOTS] = {};

/* Open flags (uapi asm-generic/fcntl.h, the same on x86_64 and arm64). */
#define KANARY_O_ACCMODE 00000003
#define KANARY_O_WRONLY 00000001
#define KANARY_O_CREAT 00000100
#define KANARY_O_TRUNC 00001000

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct file_counts);
} file_counts SEC(".maps");

/* Set by the loader: CLOCK_BOOTTIME at load, in ns. A thread started before it has I/O counters
 * that predate the agent: its first look only takes them as the starting point. */
const volatile __u64 targ_loaded_boot_ns = 0;

struct thread_file {
	/* The open in flight. */
	__u64 filename; /* user pointer to the path */
	__u64 how;	/* openat2: user pointer to struct open_how (flags are read at exit) */
	__u32 flags;
	__u32 active; /* 1 between entry and exit */
	/* The thread's task I/O counters when they were last added to file_counts. */
	__u64 rchar, wchar, syscr, syscw;
	__u64 io_seen; /* 0 until the first look */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_file);
} thread_files SEC(".maps");

KANARY_DEDUP_MAP(open_dedup, struct open_key);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_key);
} key_scratch SEC(".maps");

static __always_inline void remember_open(__u64 filename, __u64 how, __u32 flags)
{
	if (!kanary_current_container())
		return;

	struct thread_file *p = bpf_task_storage_get(&thread_files, bpf_get_current_task_btf(), 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!p)
		return;
	p->filename = filename;
	p->how = how;
	p->flags = flags;
	p->active = 1;
}

static __always_inline void report_open(long ret)
{
	const struct container_slot *c = kanary_current_container();

	if (!c)
		return;

	struct thread_file *p =
		bpf_task_storage_get(&thread_files, bpf_get_current_task_btf(), 0, 0);

	if (!p || !p->active)
		return;
	p->active = 0;

	__u32 slot = c->slot;
	struct file_counts *counts = bpf_map_lookup_elem(&file_counts, &slot);

	if (counts) {
		counts->opens++;
		if (ret < 0)
			counts->open_failures++;
	}

	__u32 flags = p->flags;

	if (p->how) {
		__u64 how_flags = 0; /* struct open_how starts with its 64-bit flags */

		bpf_probe_read_user(&how_flags, sizeof(how_flags), (const void *)p->how);
		flags = how_flags;
	}

	__u32 zero = 0;
	struct open_key *key = bpf_map_lookup_elem(&key_scratch, &zero);

	if (!key)
		return;
	/* Zero the whole key first: the string read stops at the NUL and the rest is hashed too. */
	__builtin_memset(key, 0, sizeof(*key));
	key->slot = slot;
	key->access = flags & KANARY_O_ACCMODE;
	key->failed = ret < 0;
	bpf_probe_read_user_str(key->path, sizeof(key->path), (const char *)p->filename);

	__u64 repeats = 0;

	if (!kanary_dedup_report(&open_dedup, key, bpf_ktime_get_boot_ns(), targ_renotify_ns, slot,
				 &repeats))
		return;

	struct open_event *e = kanary_reserve(&events, struct open_event, c, EVENT_OPEN);

	if (!e) {
		/* Not streamed: forget the key so the next open of it is reported. */
		bpf_map_delete_elem(&open_dedup, key);
		return;
	}
	e->result = ret;
	e->repeats = repeats;
	e->flags = flags;
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel(e->path, sizeof(e->path), key->path);
	bpf_ringbuf_submit(e, 0);
}

/* Exchanges a last-seen counter for its current value; returns how much it grew. An exchange,
 * so that the interval's iterator and the thread's own exit never both add the same growth. */
static __always_inline __u64 grown(__u64 *seen, __u64 now)
{
	__u64 before = __sync_lock_test_and_set(seen, now);

	return now > before ? now - before : 0;
}

/* Adds what `task`'s read/write counters grew by since the last look to its container's counts
 * (nothing for a task outside the watched containers). */
static __always_inline void add_thread_io(struct task_struct *task)
{
	const struct container_slot *c = kanary_container_of_cgroup(kanary_task_cgroup_id(task));

	if (!c)
		return;

	struct thread_file *t =
		bpf_task_storage_get(&thread_files, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!t)
		return;

	__u64 rchar = BPF_CORE_READ(task, ioac.rchar);
	__u64 wchar = BPF_CORE_READ(task, ioac.wchar);
	__u64 syscr = BPF_CORE_READ(task, ioac.syscr);
	__u64 syscw = BPF_CORE_READ(task, ioac.syscw);

	if (!t->io_seen && __sync_lock_test_and_set(&t->io_seen, 1) == 0 &&
	    BPF_CORE_READ(task, start_boottime) < targ_loaded_boot_ns) {
		/* Counters from before the agent: the starting point, not growth. */
		t->rchar = rchar;
		t->wchar = wchar;
		t->syscr = syscr;
		t->syscw = syscw;
		return;
	}

	__u32 slot = c->slot;
	struct file_counts *counts = bpf_map_lookup_elem(&file_counts, &slot);

	if (!counts)
		return;
	counts->reads += grown(&t->syscr, syscr);
	counts->writes += grown(&t->syscw, syscw);
	counts->read_bytes += grown(&t->rchar, rchar);
	counts->write_bytes += grown(&t->wchar, wchar);
}

/* At entry of an open-family call: remember where its path, open_how and flags are. */
static __always_inline void file_enter(struct pt_regs *regs, long id)
{
	__u8 call = kanary_syscall_code(targ_file_calls, id);

	/* Only the opens have work to do at entry. */
	if (call < FILE_CALL_OPEN || call > FILE_CALL_CREAT || kanary_compat_syscall())
		return;
	switch (call) {
	case FILE_CALL_OPEN: /* open(path, flags, mode) */
		remember_open(PT_REGS_PARM1_SYSCALL(regs), 0, PT_REGS_PARM2_SYSCALL(regs));
		break;
	case FILE_CALL_OPENAT: /* openat(dirfd, path, flags, mode) */
		remember_open(PT_REGS_PARM2_SYSCALL(regs), 0, PT_REGS_PARM3_SYSCALL(regs));
		break;
	case FILE_CALL_OPENAT2: /* openat2(dirfd, path, how, size): flags are in *how */
		remember_open(PT_REGS_PARM2_SYSCALL(regs), PT_REGS_PARM3_SYSCALL(regs), 0);
		break;
	default: /* creat(path, mode) is open(path, O_CREAT | O_WRONLY | O_TRUNC, mode) */
		remember_open(PT_REGS_PARM1_SYSCALL(regs), 0,
			      KANARY_O_CREAT | KANARY_O_WRONLY | KANARY_O_TRUNC);
		break;
	}
}

/* At exit of an open-family call: report it. */
static __always_inline void file_exit(__u64 nr, long ret)
{
	__u8 call = kanary_syscall_code(targ_file_calls, nr);

	if (!call || kanary_compat_syscall())
		return;
	report_open(ret);
}

/* The handlers the dispatcher tail-calls for the syscalls this collector routes to it. */
SEC("tp_btf/sys_enter")
int BPF_PROG(kanary_file_enter, struct pt_regs *regs, long id)
{
	file_enter(regs, id);
	return kanary_syscall_next(ctx, id, enter, SYSCALL_HANDLER_FILE);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(kanary_file_exit, struct pt_regs *regs, long ret)
{
	__u64 nr = kanary_exit_syscall_nr(regs);

	file_exit(nr, ret);
	return kanary_syscall_next(ctx, nr, exit, SYSCALL_HANDLER_FILE);
}

/* Run by the agent each interval: adds every container thread's read/write growth. */
SEC("iter/task")
int kanary_file_io(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (task)
		add_thread_io(task);
	return 0;
}

/* An exiting thread's last growth, which the next interval's iterator would no longer see. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(kanary_file_exit_io, struct task_struct *task)
{
	add_thread_io(bpf_get_current_task_btf());
	return 0;
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct open_event _open_event_type = {};
struct open_key _open_key_type = {};
enum file_call _file_call_type = FILE_CALL_OPEN;
