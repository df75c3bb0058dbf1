// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * containers: keeps the shared container filter (watched_cgroups) up to date from inside the
 * kernel, so a container is watched before its first process runs (filling the map from the
 * runtime's API after the fact misses the entrypoint's first exec).
 *
 * Hooks: tp_btf/cgroup_mkdir, tp_btf/cgroup_rmdir (cgroup v2 hierarchy only).
 * Maps:  watched_cgroups (shared), free_slots (queue of container slots, filled by the agent),
 *        events (ring buffer of struct cgroup_event).
 *
 * A new cgroup is a container when its directory name holds a 64-hex-digit id, which covers
 * Docker (docker/<id>, docker-<id>.scope), containerd and Kubernetes (cri-containerd-<id>.scope,
 * kubepods/.../<id>), CRI-O (crio-<id>.scope) and podman (libpod-<id>.scope). Sub-cgroups of a
 * watched cgroup inherit its slot, so processes a container moves into its own children stay
 * attributed to it, and its flags (trace mode, throttling), so a container cannot leave either by
 * making a sub-cgroup.
 */
#include "common.h"

KANARY_RINGBUF();

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 256);
	__type(value, __u32);
} free_slots SEC(".maps");

#define CONTAINER_ID_LEN 64
#define NAME_SCAN_MAX 128

static __always_inline bool is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

static __always_inline bool has_suffix(const char *name, int len, const char *suffix, int suffix_len)
{
	if (len < suffix_len)
		return false;
	for (int i = 0; i < suffix_len; i++)
		if (name[(len - suffix_len + i) & (NAME_SCAN_MAX - 1)] != suffix[i])
			return false;
	return true;
}

/*
 * True when the name ends in a 64-hex-digit id, optionally followed by ".scope": the shape of
 * every runtime's container cgroup. A fixed-position check (no running state across
 * iterations) keeps the verifier's work linear.
 */
static __always_inline bool name_has_container_id(const char *name, int len)
{
	int end = has_suffix(name, len, ".scope", 6) ? len - 6 : len;
	int start = end - CONTAINER_ID_LEN;

	if (start < 0)
		return false;
	for (int i = 0; i < CONTAINER_ID_LEN; i++)
		if (!is_hex(name[(start + i) & (NAME_SCAN_MAX - 1)]))
			return false;
	return start == 0 || !is_hex(name[(start - 1) & (NAME_SCAN_MAX - 1)]);
}

/* Per-CPU scratch: the cgroup name is too large for the 512-byte BPF stack with the event. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[NAME_SCAN_MAX]);
} name_scratch SEC(".maps");

/* Streams a cgroup event about `cgid`, under the slot and flags of its filter entry. */
static __always_inline void report_cgroup(__u32 kind, __u64 cgid,
					  const struct container_slot *entry, __u64 parent_id,
					  __u32 slot_error, const char *path)
{
	/* Lifecycle events are never throttled: the agent must see a throttled container stop. */
	struct container_slot unthrottled = { .slot = entry->slot };
	struct cgroup_event *e = kanary_reserve(&events, struct cgroup_event, &unthrottled, kind);

	if (!e)
		return;
	/* About the cgroup, not the task that made it. A removal has no task of interest: a
	 * cgroup is removed once empty, by whoever manages it. */
	e->hdr.cgroup_id = cgid;
	if (kind == EVENT_CGROUP_RMDIR) {
		e->hdr.pid = 0;
		e->hdr.tid = 0;
	}
	e->parent_cgroup_id = parent_id;
	e->flags = entry->flags;
	e->slot_error = slot_error;
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), path);
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(kanary_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	/* Only the v2 (default) hierarchy: its ids are what bpf_get_current_cgroup_id() returns. */
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;

	__u64 cgid = BPF_CORE_READ(cgrp, kn, id);
	struct cgroup *parent = BPF_CORE_READ(cgrp, self.parent, cgroup);
	__u64 parent_id = parent ? BPF_CORE_READ(parent, kn, id) : 0;
	struct container_slot entry = {};
	__u32 slot_error = 0;
	const struct container_slot *parent_entry = bpf_map_lookup_elem(&watched_cgroups, &parent_id);

	if (parent_entry) {
		entry.slot = parent_entry->slot;
		entry.flags = parent_entry->flags | CONTAINER_F_CHILD;
	} else {
		__u32 zero = 0;
		char *name = bpf_map_lookup_elem(&name_scratch, &zero);

		if (!name)
			return 0;
		long len = bpf_probe_read_kernel_str(name, NAME_SCAN_MAX, BPF_CORE_READ(cgrp, kn, name));

		if (len <= 0 || !name_has_container_id(name, len - 1))
			return 0;
		if (bpf_map_pop_elem(&free_slots, &entry.slot))
			slot_error = 1;
	}
	if (!slot_error && bpf_map_update_elem(&watched_cgroups, &cgid, &entry, BPF_ANY)) {
		/* The filter map is full: hand the slot back and report it. */
		if (!parent_entry)
			bpf_map_push_elem(&free_slots, &entry.slot, BPF_ANY);
		slot_error = 1;
	}
	if (slot_error)
		kanary_count_drop(KANARY_HOST_SLOT, DROP_MAP_FULL);
	report_cgroup(EVENT_CGROUP_MKDIR, cgid, &entry, parent_id, slot_error, path);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(kanary_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;

	__u64 cgid = BPF_CORE_READ(cgrp, kn, id);
	struct container_slot *entry = bpf_map_lookup_elem(&watched_cgroups, &cgid);

	if (!entry)
		return 0;

	struct container_slot gone = *entry;

	/* No process can run in a removed cgroup, so the filter entry goes now; the agent recycles
	 * the slot after its final read of the slot's counters. */
	bpf_map_delete_elem(&watched_cgroups, &cgid);
	report_cgroup(EVENT_CGROUP_RMDIR, cgid, &gone, 0, 0, path);
	return 0;
}

/* Forces struct cgroup_event into BTF so the skeleton generates its Rust type. */
struct cgroup_event _cgroup_event_type = {};
