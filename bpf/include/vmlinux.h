/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Selects the vendored, per-architecture kernel type dump (bpftool btf dump). CO-RE relocates
 * every field access at load time, so one header serves every kernel of that architecture. */
#pragma once
#if defined(__TARGET_ARCH_x86)
#include "../vmlinux/x86_64/vmlinux.h"
#else
#error "kanary vendors vmlinux.h for x86_64 only; add bpf/vmlinux/<arch>/vmlinux.h (bpftool btf dump file /sys/kernel/btf/vmlinux format c)"
#endif
