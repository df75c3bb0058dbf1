// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * network: per-container traffic volume, and TCP connects (with their outcome), TCP accepts and
 * UDP connects, de-duplicated in the kernel so a client hammering one server streams one record.
 *
 * Hooks: cgroup_skb/ingress, cgroup_skb/egress (packets and bytes; always allow the packet),
 *        cgroup/connect4, cgroup/connect6 (UDP connect; always allow the call) — all four
 *        attached once to the root of the cgroup v2 hierarchy, where they run for every
 *        descendant, so a new container is covered the moment it exists;
 *        tp_btf/inet_sock_set_state (TCP: CLOSE->SYN_SENT remembers the connecting task,
 *        SYN_SENT->ESTABLISHED is a connect, SYN_SENT->CLOSE a failed connect,
 *        SYN_RECV->ESTABLISHED an accept).
 * Maps:  net_counts (per-CPU array, slot -> struct net_counts),
 *        connecting (socket storage: pid and comm of the task that started a TCP connect, since
 *        its outcome is usually seen in softirq context),
 *        recent_connections (KANARY_DEDUP_MAP, struct connection_key -> when it was last
 *        reported and how often it was seen since),
 *        events (ring buffer of struct connection_event).
 *
 * Attribution is by the socket's cgroup, never the current task's: packets and TCP state
 * changes are mostly processed in softirq context, on behalf of whatever task was interrupted.
 */
#include "common.h"
#include <bpf/bpf_endian.h>

/* uapi socket.h values, which vmlinux.h does not carry. */
#define KANARY_AF_INET 2
#define KANARY_AF_INET6 10

KANARY_RINGBUF();

/* A repeat of a reported connection within this many nanoseconds is only counted. */
const volatile __u64 targ_renotify_ns = 300ULL * 1000000000ULL;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, struct net_counts);
} net_counts SEC(".maps");

/* Who started a TCP connect: the outcome is seen later, usually in softirq context. */
struct connecting_task {
	__u32 pid;
	__u32 tid;
	char comm[KANARY_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct connecting_task);
} connecting SEC(".maps");

KANARY_DEDUP_MAP(recent_connections, struct connection_key);

/* One connection as the handlers see it, before de-duplication. */
struct conn_info {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 protocol;
	__u8 result;
};

/* Counter fields are added atomically: a softirq can interrupt a process-context handler on the
 * same CPU between its load and store (an uncontended atomic on a per-CPU line is cheap). */
static __always_inline struct net_counts *counts_of(__u32 slot)
{
	return bpf_map_lookup_elem(&net_counts, &slot);
}

static __always_inline void count_packet(struct __sk_buff *skb, bool ingress)
{
	const struct container_slot *c = kanary_container_of_cgroup(bpf_skb_cgroup_id(skb));

	if (!c)
		return;

	struct net_counts *n = counts_of(c->slot);

	if (!n)
		return;
	/* A GSO/GRO aggregate stands for gso_segs packets on the wire. */
	__u64 packets = skb->gso_segs ? skb->gso_segs : 1;

	if (ingress) {
		__sync_fetch_and_add(&n->rx_bytes, skb->len);
		__sync_fetch_and_add(&n->rx_packets, packets);
	} else {
		__sync_fetch_and_add(&n->tx_bytes, skb->len);
		__sync_fetch_and_add(&n->tx_packets, packets);
	}
}

SEC("cgroup_skb/ingress")
int kanary_skb_ingress(struct __sk_buff *skb)
{
	count_packet(skb, true);
	return 1; /* observe only: never drop traffic */
}

SEC("cgroup_skb/egress")
int kanary_skb_egress(struct __sk_buff *skb)
{
	count_packet(skb, false);
	return 1;
}

/* De-duplicates and streams one connection. `task` may be NULL: the pid is then unknown (0). */
static __always_inline void report(const struct container_slot *c, __u64 cgroup_id, __u32 kind,
				   const struct conn_info *info, const struct connecting_task *task,
				   bool current_task)
{
	struct connection_key key = {
		.slot = c->slot,
		.kind = kind,
		.protocol = info->protocol,
		.result = info->result,
		.family = info->family,
		/* The service, not the ephemeral port: remote for a connect, local for an accept. */
		.port = kind == EVENT_CONNECT ? info->dport : info->sport,
	};
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 repeats = 0;

	__builtin_memcpy(key.addr, info->daddr, sizeof(key.addr));
	if (!kanary_dedup_report(&recent_connections, &key, now, targ_renotify_ns, c->slot,
				 &repeats))
		return;

	struct connection_event *e = kanary_reserve(&events, struct connection_event, c, kind);

	if (!e)
		return;
	e->hdr.ts_boot_ns = now;
	e->hdr.cgroup_id = cgroup_id;
	e->repeats = repeats;
	__builtin_memcpy(e->src_addr, info->saddr, sizeof(e->src_addr));
	__builtin_memcpy(e->dst_addr, info->daddr, sizeof(e->dst_addr));
	e->src_port = info->sport;
	e->dst_port = info->dport;
	e->family = info->family;
	e->protocol = info->protocol;
	e->result = info->result;
	if (current_task) {
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	} else if (task) {
		e->hdr.pid = task->pid;
		e->hdr.tid = task->tid;
		__builtin_memcpy(e->comm, task->comm, sizeof(e->comm));
	} else {
		/* Softirq or timer context: the current task has nothing to do with it. */
		e->hdr.pid = 0;
		e->hdr.tid = 0;
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	}
	bpf_ringbuf_submit(e, 0);
}

/* The socket's own cgroup v2 id: set when the socket was created and inherited by the children
 * a listener accepts. 0 on kernels before 5.15, whose sock_cgroup_data packed it differently. */
static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return 0;
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

/* Fills the addresses and ports of a TCP socket; false for a family other than IPv4/IPv6. */
static __always_inline bool sock_endpoints(const struct sock *sk, struct conn_info *info)
{
	info->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* inet_sport, not skc_num: closing a socket releases its port and zeroes skc_num before
	 * the SYN_SENT -> CLOSE transition is traced, while inet_sport keeps the port it used. */
	info->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	info->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (info->family == KANARY_AF_INET) {
		bpf_core_read(info->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(info->daddr, 4, &sk->__sk_common.skc_daddr);
		return true;
	}
	if (info->family == KANARY_AF_INET6) {
		bpf_core_read(info->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(info->daddr, 16, &sk->__sk_common.skc_v6_daddr);
		return true;
	}
	return false;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kanary_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	/* Register compares first: most transitions (FIN_WAIT, TIME_WAIT, ...) are not ours, and
	 * they skip the cgroup read and the filter lookup. */
	bool started = oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT;
	bool connected = oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED;
	bool failed = oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE;
	bool accepted = oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED;

	if (!(started || connected || failed || accepted))
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	__u64 cgid = sock_cgroup_id(sk);
	const struct container_slot *c = cgid ? kanary_container_of_cgroup(cgid) : NULL;

	if (!c)
		return 0;

	if (started) {
		/* connect(2) itself, in the connecting task: remember who it is. */
		struct connecting_task *task = bpf_sk_storage_get(&connecting, sk, 0,
								  BPF_SK_STORAGE_GET_F_CREATE);
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		if (!task)
			return 0;
		task->pid = pid_tgid >> 32;
		task->tid = (__u32)pid_tgid;
		bpf_get_current_comm(task->comm, sizeof(task->comm));
		return 0;
	}

	struct net_counts *n = counts_of(c->slot);

	if (n) {
		if (connected)
			__sync_fetch_and_add(&n->connects, 1);
		else if (failed)
			__sync_fetch_and_add(&n->connect_failures, 1);
		else
			__sync_fetch_and_add(&n->accepts, 1);
	}

	struct conn_info info = {
		.protocol = IPPROTO_TCP,
		.result = failed ? KANARY_CONN_FAILED : KANARY_CONN_OK,
	};

	if (!sock_endpoints(sk, &info))
		return 0;
	if (accepted) {
		/* The accepting task is not known until accept(2) returns, later. */
		report(c, cgid, EVENT_ACCEPT, &info, NULL, false);
		return 0;
	}

	struct connecting_task *task = bpf_sk_storage_get(&connecting, sk, 0, 0);
	struct connecting_task copy = {};

	if (task) {
		copy = *task;
		bpf_sk_storage_delete(&connecting, sk);
	}
	report(c, cgid, EVENT_CONNECT, &info, task ? &copy : NULL, false);
	return 0;
}

/* A UDP connect(2): there is no handshake, so success is the call reaching the protocol. */
static __always_inline void udp_connect(struct bpf_sock_addr *ctx, bool v6)
{
	const struct container_slot *c = kanary_current_container();

	/* By protocol, not socket type: ICMP ping sockets are SOCK_DGRAM too. */
	if (!c || ctx->protocol != IPPROTO_UDP)
		return;

	struct net_counts *n = counts_of(c->slot);

	if (n)
		__sync_fetch_and_add(&n->connects, 1);

	struct conn_info info = {
		.protocol = IPPROTO_UDP,
		.result = KANARY_CONN_OK,
		.family = v6 ? KANARY_AF_INET6 : KANARY_AF_INET,
		.dport = bpf_ntohs((__u16)ctx->user_port),
	};
	struct bpf_sock *sk = ctx->sk;

	if (v6) {
		/* Word by word, spelled out: the verifier allows only 32-bit loads of these fields,
		 * at fixed offsets from an unmodified context pointer (a macro or loop doing the
		 * same let clang move the pointer, and the load was refused). */
		__u32 *d = (__u32 *)info.daddr;

		d[0] = ctx->user_ip6[0];
		d[1] = ctx->user_ip6[1];
		d[2] = ctx->user_ip6[2];
		d[3] = ctx->user_ip6[3];
		if (sk) {
			__u32 *s = (__u32 *)info.saddr;

			s[0] = sk->src_ip6[0];
			s[1] = sk->src_ip6[1];
			s[2] = sk->src_ip6[2];
			s[3] = sk->src_ip6[3];
		}
	} else {
		*(__u32 *)info.daddr = ctx->user_ip4;
		if (sk)
			*(__u32 *)info.saddr = sk->src_ip4;
	}
	/* The local address is only known if the socket was bound; otherwise it is all zeros. */
	if (sk)
		info.sport = sk->src_port;
	report(c, bpf_get_current_cgroup_id(), EVENT_CONNECT, &info, NULL, true);
}

SEC("cgroup/connect4")
int kanary_connect4(struct bpf_sock_addr *ctx)
{
	udp_connect(ctx, false);
	return 1; /* observe only: never refuse the call */
}

SEC("cgroup/connect6")
int kanary_connect6(struct bpf_sock_addr *ctx)
{
	udp_connect(ctx, true);
	return 1;
}

/* Forces the shared types into BTF so the skeleton generates their Rust types. */
struct connection_event _connection_event_type = {};
struct connection_key _connection_key_type = {};
struct net_counts _net_counts_type = {};
