// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor: an empty program on the same hook kanary's syscalls collector uses
 * (tp_btf/sys_enter, a BTF-enabled raw tracepoint). Whatever it costs per syscall, any
 * syscall-level collector on this hook pays: enabling the tracepoint moves every task onto the
 * syscall slow path, and the kernel calls the program through the tracepoint's trampoline.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tp_btf/sys_enter")
int bench_empty_sys_enter(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
