// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tracepoints: per-container counters of arbitrary kernel tracepoints declared in the config
 * ([[collectors.tracepoint]]), with no code per tracepoint.
 *
 * Hook:  tracepoint/<category>/<event>: ONE generic program, attached by the loader once per
 *        declared tracepoint with the counter's index in the config as its BPF cookie.
 * Maps:  tracepoint_counts (per-CPU array, slot -> struct tracepoint_counts).
 * No events: counting is all there is.
 *
 * The counter is attributed to the cgroup of the task running when the tracepoint fires. For
 * tracepoints that fire in process context on behalf of that task (sched:sched_process_fork,
 * syscalls:*, most block:* and sock:* submissions) that is the right container; for ones that
 * fire in softirq or timer context (tcp:tcp_retransmit_skb from the retransmit timer, most
 * net:* receive events) it is whichever task the CPU happened to interrupt, often none of ours
 * (then nothing is counted) or an unrelated container.
 */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct tracepoint_counts);
} tracepoint_counts SEC(".maps");

/* Bare "tracepoint" section: libbpf does not auto-attach it; the loader attaches it per
 * declared tracepoint with its cookie. The context layout differs per tracepoint and is never
 * read. */
SEC("tracepoint")
int kanary_tracepoint(void *ctx)
{
	const struct container_slot *c = kanary_current_container();

	if (!c)
		return 0;

	__u64 index = bpf_get_attach_cookie(ctx);

	if (index >= KANARY_MAX_TRACEPOINT_COUNTERS)
		return 0;

	__u32 slot = c->slot;
	struct tracepoint_counts *counts = bpf_map_lookup_elem(&tracepoint_counts, &slot);

	if (counts)
		counts->n[index]++;
	return 0;
}
