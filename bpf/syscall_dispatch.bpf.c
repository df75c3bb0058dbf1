// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * syscall_dispatch: the agent's only programs on the raw syscall tracepoints. Not a collector:
 * it runs the per-syscall handlers of the collectors that have them (syscalls, file, security)
 * for the syscall numbers they want, so that every syscall of every task pays for one program
 * per tracepoint and one table lookup, however many collectors watch syscalls (see "Syscall
 * dispatch" in include/common.h and docs/adr/0005-syscall-dispatch-on-tp-btf.md).
 *
 * Hooks: tp_btf/sys_enter, tp_btf/sys_exit (attached once the first handler is registered).
 * Maps:  syscall_enter_handlers, syscall_exit_handlers (prog arrays indexed by enum
 *        syscall_handler, filled by the loader with the collectors' handler programs),
 *        syscall_routes (which handlers want each syscall number, at entry and at exit).
 *        Every handler object shares these three (KANARY_SYSCALL_DISPATCH_MAPS()).
 *
 * No container filter here: whether a syscall is of interest depends on the handler (the
 * syscalls collector counts every syscall of a container), and each handler filters itself.
 */
#include "common.h"

KANARY_SYSCALL_DISPATCH_MAPS();

SEC("tp_btf/sys_enter")
int BPF_PROG(kanary_dispatch_enter, struct pt_regs *regs, long id)
{
	kanary_syscall_chain(ctx, &syscall_enter_handlers, kanary_syscall_routes(id, enter), -1);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(kanary_dispatch_exit, struct pt_regs *regs, long ret)
{
	kanary_syscall_chain(ctx, &syscall_exit_handlers,
			     kanary_syscall_routes(kanary_exit_syscall_nr(regs), exit), -1);
	return 0;
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct syscall_routes _syscall_routes_type = {};
enum syscall_handler _syscall_handler_type = SYSCALL_HANDLER_SYSCALLS;
