/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * flow_cache.h: the per-CPU cache of decided flows (struct flow_entry in
 * zfw.h) that settles most packets before any other map is read.
 */
#ifndef ZFW_FLOW_CACHE_H
#define ZFW_FLOW_CACHE_H

#include "maps.h"

/*
 * Interfaces whose packets the flow cache may decide: none of the per-packet
 * work of DDoS protection, OT filtering, masquerade, tunnel mode or events
 * can be skipped.
 */
#define ZFW_FLOW_UNCACHED                                                                         \
	(ZFW_IFACE_DDOS | ZFW_IFACE_OT_FILTERING | ZFW_IFACE_MASQUERADE | ZFW_IFACE_TUNNEL_MODE | \
	 ZFW_IFACE_VERBOSE)

/*
 * A flow is named by its tuple as seen on ingress: a packet seen on egress
 * (reverse) is read back to front, so both directions name the same entry.
 * The helpers below read the packet in place rather than copy the tuple:
 * the ingress program's stack is close to the verifier's limit.
 */
static __always_inline const __u32 *flow_src(const struct packet *pkt, bool reverse)
{
	return reverse ? pkt->daddr : pkt->saddr;
}

static __always_inline const __u32 *flow_dst(const struct packet *pkt, bool reverse)
{
	return reverse ? pkt->saddr : pkt->daddr;
}

/* flow_slot spreads flows over the cache with a cheap multiplicative
 * mix; a collision costs one slow-path packet, never a wrong verdict,
 * because a hit compares the whole tuple. */
static __always_inline __u32 flow_slot(const struct packet *pkt, __u32 ifindex, bool reverse)
{
	const __u32 *src = flow_src(pkt, reverse), *dst = flow_dst(pkt, reverse);
	__u16 sport = reverse ? pkt->dport : pkt->sport;
	__u16 dport = reverse ? pkt->sport : pkt->dport;
	__u32 h = src[0] * 0x9e3779b1u;

	h ^= dst[0] * 0x85ebca77u;
	h ^= (((__u32)sport << 16) | dport) * 0xc2b2ae3du;
	h ^= (ifindex ^ ((__u32)pkt->proto << 24)) * 0x27d4eb2fu;
	if (pkt->family == 6) {
		h ^= (src[1] ^ src[2] ^ src[3]) * 0x165667b1u;
		h ^= (dst[1] ^ dst[2] ^ dst[3]) * 0xd3a2646cu;
	}
	h ^= h >> 15;
	return h & (ZFW_FLOW_CACHE_SLOTS - 1);
}

static __always_inline bool flow_same(const struct flow_entry *e, const struct packet *pkt, __u32 ifindex,
				      bool reverse)
{
	const __u32 *src = flow_src(pkt, reverse), *dst = flow_dst(pkt, reverse);

	if (e->ifindex != ifindex || e->family != pkt->family || e->proto != pkt->proto ||
	    e->sport != (reverse ? pkt->dport : pkt->sport) ||
	    e->dport != (reverse ? pkt->sport : pkt->dport) || e->saddr[0] != src[0] || e->daddr[0] != dst[0])
		return false;
	if (pkt->family == 4)
		return true;
	return e->saddr[1] == src[1] && e->saddr[2] == src[2] && e->saddr[3] == src[3] &&
	       e->daddr[1] == dst[1] && e->daddr[2] == dst[2] && e->daddr[3] == dst[3];
}

/*
 * flow_cached returns this CPU's entry for the packet if it may decide it
 * now: the same tuple, the current epoch, and still within its kind's
 * terms. A SYN, FIN or RST never takes the cache: each may change a
 * session or open a new flow.
 */
static __always_inline struct flow_entry *flow_cached(const struct packet *pkt, __u32 ifindex,
						      const struct config *cfg, __u64 now)
{
	struct flow_entry *e;
	__u32 slot;

	if (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST))
		return NULL;
	slot = flow_slot(pkt, ifindex, false);
	e = bpf_map_lookup_elem(&flow_cache, &slot);
	if (!e || !e->kind || e->epoch != cfg->cache_epoch || !flow_same(e, pkt, ifindex, false))
		return NULL;
	switch (e->kind) {
	case ZFW_FLOW_STEERED:
	case ZFW_FLOW_RULE:
		/* Decided by the rules: after a change the slow path decides
		 * again, and a steered connection is kept by its socket
		 * (rule_verdict). */
		return e->generation == cfg->generation ? e : NULL;
	default:
		return (__u32)now - e->checked < ZFW_FLOW_RECHECK_JIFFIES ? e : NULL;
	}
}

/* flow_remember caches a verdict the slow path just reached for the
 * packet (seen on ingress), on this CPU. */
static __always_inline void flow_remember(const struct packet *pkt, __u32 ifindex, const struct config *cfg,
					  __u8 kind, const struct verdict *v)
{
	struct flow_entry *e;
	__u32 slot;

	if (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST))
		return;
	slot = flow_slot(pkt, ifindex, false);
	e = bpf_map_lookup_elem(&flow_cache, &slot);
	if (!e)
		return;
	__builtin_memcpy(e->saddr, pkt->saddr, 16);
	__builtin_memcpy(e->daddr, pkt->daddr, 16);
	e->ifindex = ifindex;
	e->sport = pkt->sport;
	e->dport = pkt->dport;
	e->family = pkt->family;
	e->proto = pkt->proto;
	e->kind = kind;
	e->action = v->action;
	e->tproxy_port = v->tproxy_port;
	e->rule_id = v->rule_id;
	e->epoch = cfg->cache_epoch;
	e->generation = cfg->generation;
	e->checked = (__u32)bpf_jiffies64();
}

/*
 * session_cacheable: a session may be served from the cache only if it
 * cannot expire while cached, which ZFW_FLOW_RECHECK_JIFFIES (at most
 * 0.64 s, at HZ=100) guarantees for timeouts of a second or more.
 */
static __always_inline bool session_cacheable(const struct packet *pkt, const struct config *cfg)
{
	__u64 timeout = pkt->proto == IPPROTO_TCP ? cfg->tcp_established_ns : cfg->udp_ns;

	return timeout >= 1000000000ULL;
}

struct forget_ctx {
	const struct packet *pkt;
	__u32 ifindex;
	__u32 slot;
	__u8 reverse;
};

static long forget_on_cpu(__u32 cpu, void *arg)
{
	struct forget_ctx *c = arg;
	struct flow_entry *e = bpf_map_lookup_percpu_elem(&flow_cache, &c->slot, cpu);

	if (e && e->kind && flow_same(e, c->pkt, c->ifindex, c->reverse))
		e->kind = ZFW_FLOW_EMPTY;
	return 0;
}

/*
 * flow_forget empties a flow's slot on every CPU: a FIN or RST, seen in
 * either direction, changes its session, and a later segment on another
 * CPU must not be decided from that CPU's older copy. reverse: the packet
 * was seen on egress.
 */
static __always_inline void flow_forget(const struct packet *pkt, __u32 ifindex, const struct config *cfg,
					bool reverse)
{
	struct forget_ctx c = {
		.pkt = pkt,
		.ifindex = ifindex,
		.slot = flow_slot(pkt, ifindex, reverse),
		.reverse = reverse,
	};

	bpf_loop(cfg->ncpus < ZFW_MAX_CPUS ? cfg->ncpus : ZFW_MAX_CPUS, forget_on_cpu, &c, 0);
}

/* flow_hit applies a cached verdict, with one counter for its outcome. */
static __always_inline int flow_hit(struct __sk_buff *skb, const struct flow_entry *e, __u32 mark)
{
	struct verdict v = { .rule_id = e->rule_id, .tproxy_port = e->tproxy_port, .action = e->action };

	record_verdict(skb, &v);
	if (e->kind == ZFW_FLOW_REPLY) {
		count(ZFW_STAT_FLOW_REPLY);
		return TC_ACT_OK;
	}
	switch (v.action) {
	case ZFW_ACTION_TPROXY:
		/* Only TCP past its SYN is cached: the mark alone delivers it
		 * to its accepted socket. */
		skb->mark = mark;
		count(e->kind == ZFW_FLOW_INBOUND ? ZFW_STAT_FLOW_INBOUND_TPROXY : ZFW_STAT_FLOW_STEERED);
		return TC_ACT_OK;
	case ZFW_ACTION_PASS:
		count(e->kind == ZFW_FLOW_INBOUND ? ZFW_STAT_FLOW_INBOUND : ZFW_STAT_FLOW_RULE_PASS);
		return TC_ACT_OK;
	default:
		count(ZFW_STAT_FLOW_RULE_DENY);
		return TC_ACT_SHOT;
	}
}

#endif /* ZFW_FLOW_CACHE_H */
