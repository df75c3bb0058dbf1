// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * file: which files a container opens (de-duplicated in the kernel) and how much it reads and
 * writes.
 *
 * Hooks: handlers on tp_btf/sys_enter and tp_btf/sys_exit, run by the syscall dispatcher
 *        (syscall_dispatch.bpf.c) only for the syscalls this collector routes to them; their
 *        own table targ_file_calls (enum file_call, filled by the loader) says which call it
 *        is. At entry of open, openat, openat2 and creat the handler remembers the path
 *        pointer and flags of the thread's open; at their exit it reads the path (now
 *        resident: the kernel has just copied it) and the result, counts it and reports it
 *        unless it is a recent repeat. At the exit of read, pread64, readv, preadv, preadv2,
 *        write, pwrite64, writev, pwritev and pwritev2 it counts calls and bytes.
 * Maps:  file_counts (per-CPU array, slot -> struct file_counts),
 *        pending_opens (task storage: the open in flight on this thread),
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

struct pending_open {
	__u64 filename; /* user pointer to the path */
	__u64 how;	/* openat2: user pointer to struct open_how (flags are read at exit) */
	__u32 flags;
	__u32 active; /* 1 between entry and exit */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending_open);
} pending_opens SEC(".maps");

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

	struct pending_open *p = bpf_task_storage_get(&pending_opens, bpf_get_current_task_btf(), 0,
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

	struct pending_open *p =
		bpf_task_storage_get(&pending_opens, bpf_get_current_task_btf(), 0, 0);

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

static __always_inline void count_io(long ret, bool write)
{
	const struct container_slot *c = kanary_current_container();

	if (!c)
		return;

	__u32 slot = c->slot;
	struct file_counts *counts = bpf_map_lookup_elem(&file_counts, &slot);

	if (!counts)
		return;
	if (write) {
		counts->writes++;
		if (ret > 0)
			counts->write_bytes += ret;
	} else {
		counts->reads++;
		if (ret > 0)
			counts->read_bytes += ret;
	}
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

/* At exit: report an open, count a read or a write. */
static __always_inline void file_exit(__u64 nr, long ret)
{
	__u8 call = kanary_syscall_code(targ_file_calls, nr);

	if (!call || kanary_compat_syscall())
		return;
	if (call == FILE_CALL_READ || call == FILE_CALL_WRITE)
		count_io(ret, call == FILE_CALL_WRITE);
	else
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

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct open_event _open_event_type = {};
struct open_key _open_key_type = {};
enum file_call _file_call_type = FILE_CALL_OPEN;
