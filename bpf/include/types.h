/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of every struct shared by kernel and user space.
 * Fixed-width fields only: the Rust side decodes these through the skeleton-generated types,
 * never through a hand-written copy.
 */
#pragma once

/* Slot 0 stands for "the host" (only used when host processes are watched); containers get 1.. */
#define KANARY_HOST_SLOT 0
/* Syscall numbers are masked to 9 bits: every x86_64 and arm64 syscall is below 512. */
#define KANARY_SYSCALL_BITS 9
#define KANARY_SYSCALL_SLOTS (1 << KANARY_SYSCALL_BITS)
#define KANARY_PATH_MAX 256
#define KANARY_ARGV_MAX 256
#define KANARY_COMM_LEN 16
#define KANARY_MAX_TRACEPOINT_COUNTERS 32

/* Value of the shared container filter map, keyed by cgroup id. */
struct container_slot {
	__u32 slot;
	__u32 flags; /* CONTAINER_F_* */
};
#define CONTAINER_F_CHILD 1 /* a sub-cgroup of a container: same slot, not its own container */
#define CONTAINER_F_TRACE 2 /* stream every raw syscall of this container (trace mode) */
/* The agent is over its CPU budget because of this container: its records are not streamed
 * (counted as throttled drops); in-kernel aggregates are kept. Set by the agent on every entry
 * of the slot; new sub-cgroups inherit it. */
#define CONTAINER_F_THROTTLED 4

/* Per-collector, per-slot loss counters (per-CPU array indexed by slot). */
struct drop_counts {
	__u64 ringbuf_full; /* an event could not be reserved in the ring buffer */
	__u64 map_full;	    /* an aggregation or de-duplication map had no room */
	__u64 throttled;    /* an event not streamed: its container is throttled (CPU budget) */
};

/* Every ring-buffer record starts with this header. */
struct event_header {
	__u64 ts_boot_ns; /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;
	__u32 slot;
	__u32 kind; /* EVENT_* */
	__u32 pid;  /* tgid */
	__u32 tid;
};

enum event_kind {
	EVENT_CGROUP_MKDIR = 1,
	EVENT_CGROUP_RMDIR = 2,
	EVENT_SYSCALL = 3,
	EVENT_EXEC = 4,
	EVENT_FORK = 5,
	EVENT_EXIT = 6,
	EVENT_OPEN = 7,
	EVENT_CONNECT = 8,
	EVENT_ACCEPT = 9,
	EVENT_SECURITY = 10,
	EVENT_SIGNAL = 11,
};

/* containers.bpf.c: a cgroup appeared or went away on the cgroup v2 hierarchy. */
struct cgroup_event {
	struct event_header hdr;
	__u64 parent_cgroup_id;
	__u32 flags;	  /* CONTAINER_F_* of the new entry */
	__u32 slot_error; /* 1: the cgroup looked like a container but no slot was free */
	char path[KANARY_PATH_MAX];
};

/* syscalls.bpf.c, trace mode only: one raw system call. */
struct syscall_event {
	struct event_header hdr;
	__u64 nr;
	__u64 args[6];
};

/* Per-container, per-syscall counters (per-CPU array indexed by slot). */
struct syscall_counts {
	__u64 n[KANARY_SYSCALL_SLOTS];
};

/* Per-container n-gram counter key: the last n syscall numbers packed 9 bits each (n <= 7). */
struct ngram_key {
	__u32 slot;
	__u32 pad;
	__u64 ngram;
};

/* network.bpf.c: per-container traffic and connection counters (per-CPU array indexed by slot). */
struct net_counts {
	__u64 rx_bytes;	  /* IP bytes received by the container's sockets */
	__u64 tx_bytes;	  /* IP bytes sent */
	__u64 rx_packets; /* packets received (GRO/GSO aggregates count their segments) */
	__u64 tx_packets;
	__u64 connects;		/* TCP connects established + UDP sockets connected */
	__u64 connect_failures; /* TCP connects that went from SYN_SENT back to CLOSE */
	__u64 accepts;		/* TCP connections accepted (SYN_RECV -> ESTABLISHED) */
};

#define KANARY_CONN_OK 0
#define KANARY_CONN_FAILED 1

/* network.bpf.c: one connect (EVENT_CONNECT) or accept (EVENT_ACCEPT). Addresses are in
 * network byte order (IPv4 in the first 4 bytes), ports in host byte order. */
struct connection_event {
	struct event_header hdr; /* cgroup_id: the socket's cgroup; pid 0: not known */
	__u64 repeats;		 /* identical connections folded into this one since the last report */
	__u8 src_addr[16];	 /* local */
	__u8 dst_addr[16];	 /* remote */
	__u16 src_port;
	__u16 dst_port;
	__u16 family;  /* AF_INET (2) or AF_INET6 (10) */
	__u8 protocol; /* IPPROTO_TCP (6) or IPPROTO_UDP (17) */
	__u8 result;   /* KANARY_CONN_* */
	char comm[KANARY_COMM_LEN];
};

/* network.bpf.c: key of the connection de-duplication LRU. No implicit padding: the kernel
 * hashes every byte. */
struct connection_key {
	__u32 slot;
	__u8 kind;     /* EVENT_CONNECT or EVENT_ACCEPT */
	__u8 protocol; /* IPPROTO_* */
	__u8 result;   /* KANARY_CONN_* */
	__u8 family;   /* AF_INET or AF_INET6 */
	__u8 addr[16]; /* the peer's address */
	__u16 port;    /* the remote port of a connect, the local port of an accept */
	__u16 pad;
};

/* tracepoints.bpf.c: per-container counters of the tracepoints declared in
 * [[collectors.tracepoint]], indexed by the counter's position in the config (per-CPU array
 * indexed by slot). */
struct tracepoint_counts {
	__u64 n[KANARY_MAX_TRACEPOINT_COUNTERS];
};

/* process.bpf.c: a successful exec. The header's pid/tid are the task after the exec. */
struct exec_event {
	struct event_header hdr;
	__u32 ppid; /* real parent's tgid */
	__u32 uid;  /* real uid and gid, as seen from the initial user namespace */
	__u32 gid;
	__u32 argv_len;	 /* bytes of argv[] copied: NUL-separated arguments */
	__u32 argv_full; /* bytes of argv[] the process has (arg_end - arg_start) */
	__u32 pad;
	char comm[KANARY_COMM_LEN];
	char parent_comm[KANARY_COMM_LEN];
	char path[KANARY_PATH_MAX]; /* bprm->filename: the file as passed to exec */
	char argv[KANARY_ARGV_MAX];
};

/* process.bpf.c: a new process (never a new thread). The header's pid/tid and cgroup are the
 * child's, so it is attributed to the container it was created in. */
struct fork_event {
	struct event_header hdr;
	__u32 ppid; /* the child's real parent's tgid */
	__u32 pad;
	char parent_comm[KANARY_COMM_LEN];
};

/* process.bpf.c: the last thread of a process exited. */
struct exit_event {
	struct event_header hdr;
	__u32 status; /* wait(2) status: exit code << 8, or the terminating signal in the low 7 bits */
	__u32 pad;
	char comm[KANARY_COMM_LEN];
};

/* process.bpf.c: per-container lifecycle counters (per-CPU array indexed by slot). */
struct process_counts {
	__u64 execs;
	__u64 forks;   /* new processes */
	__u64 threads; /* new threads */
	__u64 exits;   /* processes whose last thread exited */
};

/* signals.bpf.c: a crash or kill signal generated for a container task. The header describes
 * the receiving task (pid, tid, cgroup), not the sender. */
struct signal_event {
	struct event_header hdr;
	__u32 signal;
	__u32 sender_pid; /* tgid of the task that raised it: the receiver itself for faults */
	char comm[KANARY_COMM_LEN]; /* the receiver's */
};

/* signals.bpf.c: per-container counts indexed by signal number (per-CPU array by slot). */
#define KANARY_SIGNAL_SLOTS 32
struct signal_counts {
	__u64 n[KANARY_SIGNAL_SLOTS];
};

/* file.bpf.c: per-container file activity counters (per-CPU array indexed by slot). */
struct file_counts {
	__u64 opens;	     /* open, openat, openat2 and creat calls that returned */
	__u64 open_failures; /* of those, the ones that returned an error */
	/* The kernel's task I/O accounting (/proc/<pid>/io), summed over the container's threads: */
	__u64 reads;	     /* syscr: read-family calls (read, pread64, readv, ..., sendfile) */
	__u64 writes;	     /* syscw: write-family calls */
	__u64 read_bytes;    /* rchar: bytes those calls read */
	__u64 write_bytes;   /* wchar: bytes those calls wrote */
};

/* file.bpf.c: key of the open de-duplication LRU. The path is zero-padded after its NUL and
 * there is no implicit padding, because the kernel hashes and compares every byte. */
struct open_key {
	__u32 slot;
	__u8 access; /* flags & O_ACCMODE */
	__u8 failed; /* 1: the open returned an error */
	__u16 pad;
	char path[KANARY_PATH_MAX];
};

/* file.bpf.c: an open reported for the first time, or again after renotify_after (EVENT_OPEN). */
struct open_event {
	struct event_header hdr;
	__s64 result;	/* the file descriptor, or -errno */
	__u64 repeats;	/* identical opens folded into this one since it was last reported */
	__u32 flags;	/* open flags as passed (O_CREAT | O_WRONLY | O_TRUNC for creat) */
	__u32 pad;
	char comm[KANARY_COMM_LEN];
	char path[KANARY_PATH_MAX]; /* as passed to the syscall, cut at KANARY_PATH_MAX - 1 bytes */
};

/* file.bpf.c: what its syscall table (targ_file_calls, filled by the loader) says a syscall
 * number is; 0 is "not watched". */
enum file_call {
	FILE_CALL_OPEN = 1,    /* open(path, flags, mode) */
	FILE_CALL_OPENAT = 2,  /* openat(dirfd, path, flags, mode) */
	FILE_CALL_OPENAT2 = 3, /* openat2(dirfd, path, how, size) */
	FILE_CALL_CREAT = 4,   /* creat(path, mode) */
};

/* security.bpf.c: the watched system calls, numbered by kanary rather than by the architecture
 * (user space names them from this order; do not reorder). */
enum security_syscall {
	SECURITY_SETUID = 0,
	SECURITY_SETGID = 1,
	SECURITY_SETREUID = 2,
	SECURITY_SETREGID = 3,
	SECURITY_SETRESUID = 4,
	SECURITY_SETRESGID = 5,
	SECURITY_SETFSUID = 6,
	SECURITY_SETFSGID = 7,
	SECURITY_CAPSET = 8,
	SECURITY_PTRACE = 9,
	SECURITY_MOUNT = 10,
	SECURITY_UMOUNT2 = 11,
	SECURITY_UNSHARE = 12,
	SECURITY_SETNS = 13,
	SECURITY_BPF = 14,
	SECURITY_INIT_MODULE = 15,
	SECURITY_FINIT_MODULE = 16,
	SECURITY_DELETE_MODULE = 17,
	SECURITY_MEMFD_CREATE = 18,
	SECURITY_EXECVEAT = 19,
	SECURITY_CHMOD = 20,
	SECURITY_FCHMOD = 21,
	SECURITY_FCHMODAT = 22,
	SECURITY_FCHMODAT2 = 23,
	SECURITY_SYSCALL_COUNT = 24,
};
/* security.bpf.c's syscall table (targ_security_calls, filled by the loader) holds a watched
 * call's enum security_syscall + 1, because 0 is "not watched". */
#define KANARY_SECURITY_CODE(id) ((id) + 1)
#define KANARY_SECURITY_SLOTS 32 /* counters per container: room for SECURITY_SYSCALL_COUNT */
#define KANARY_SECURITY_STRINGS 3 /* user strings captured per call (mount: source, target, fstype) */

#define SECURITY_F_PENDING 1	   /* (task storage only) captured at entry, exit not seen yet */
#define SECURITY_F_ARGS_AT_EXIT 2  /* no entry was seen (e.g. seccomp refused the call before it
				    * ran): the arguments were read from the registers at exit */

/* security.bpf.c: one call's arguments, captured at entry into task storage and copied whole
 * into the event at exit. */
struct security_call {
	__u64 args[6]; /* the raw argument registers */
	__u32 syscall; /* enum security_syscall */
	__u32 euid;    /* the caller's effective uid at entry (initial user namespace) */
	__u32 flags;   /* SECURITY_F_* */
	__u32 pad;
	/* capset only: the user header {version, pid} then both user cap_data structs
	 * {effective, permitted, inheritable} as the caller passed them. */
	__u32 data[8];
	/* The call's string arguments, KANARY_PATH_MAX bytes each, NUL-terminated, in the order
	 * user space decodes them (one flat array: the skeleton generator handles no 2-D ones). */
	char strings[KANARY_SECURITY_STRINGS * KANARY_PATH_MAX];
};

/* security.bpf.c: a watched system call returned (EVENT_SECURITY). */
struct security_event {
	struct event_header hdr;
	__s64 result; /* return value, -errno on failure */
	char comm[KANARY_COMM_LEN];
	struct security_call call;
};

/* security.bpf.c: per-container counts indexed by enum security_syscall (per-CPU array by
 * slot). */
struct security_counts {
	__u64 n[KANARY_SECURITY_SLOTS];
};

/* syscall_dispatch.bpf.c: the collectors whose per-syscall programs the one dispatcher per raw
 * syscall tracepoint tail-calls, by their index in its prog arrays. For a syscall several of
 * them want, they run in this order. */
enum syscall_handler {
	SYSCALL_HANDLER_SYSCALLS = 0,
	SYSCALL_HANDLER_FILE = 1,
	SYSCALL_HANDLER_SECURITY = 2,
	SYSCALL_HANDLER_COUNT = 3,
};

/* syscall_dispatch.bpf.c: which handlers want each syscall number, one bit
 * (1 << enum syscall_handler) each, at entry and at exit. Set by the loader as handlers
 * register (the one entry of the syscall_routes array). */
struct syscall_routes {
	__u8 enter[KANARY_SYSCALL_SLOTS];
	__u8 exit[KANARY_SYSCALL_SLOTS];
};
