// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor of a collector that needs syscall results: empty programs on both tp_btf/sys_enter
 * and tp_btf/sys_exit, the two hooks kanary's default config runs (its file and security
 * collectors read the result of an open or a privileged call at exit). Compared with
 * empty.bpf.c, this is what the exit hook alone costs every syscall.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tp_btf/sys_enter")
int bench_empty_sys_enter(void *ctx)
{
	return 0;
}

SEC("tp_btf/sys_exit")
int bench_empty_sys_exit(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
