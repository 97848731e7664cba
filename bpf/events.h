/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * events.h: the ring buffer of drops, steers, session changes and bans,
 * rate-limited in the kernel.
 */
#ifndef ZFW_EVENTS_H
#define ZFW_EVENTS_H

#include "maps.h"

/* event_allowed is the kernel-side rate limit: a flood cannot make the
 * ring buffer, and the reader behind it, eat the host. */
static __always_inline bool event_allowed(const struct config *cfg, __u64 now)
{
	__u32 zero = 0;
	struct event_budget *b = bpf_map_lookup_elem(&event_budget_map, &zero);

	if (!b)
		return false;
	if (now - b->window >= 1000000000ULL) {
		b->window = now;
		b->count = 0;
	}
	if (b->count >= cfg->events_per_sec) {
		count(ZFW_STAT_EVENTS_LIMITED);
		return false;
	}
	b->count++;
	return true;
}

/*
 * emit sends an event of kind about pkt. detail is the session change
 * (enum track) of a session event and the reason (enum reason) of any
 * other; v, which may be NULL, is the verdict. (One argument for both:
 * a BPF call takes five.)
 */
ZFW_STAGE int emit(struct __sk_buff *skb, const struct packet *pkt, __u8 kind, __u8 detail,
		   const struct verdict *v)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config_map, &zero);
	__u64 now = bpf_ktime_get_ns();
	struct event *ev;

	if (!pkt || !cfg || !event_allowed(cfg, now))
		return 0;
	ev = bpf_ringbuf_reserve(&rb_map, sizeof(*ev), 0);
	if (!ev) {
		count(ZFW_STAT_EVENTS_LOST);
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->version = ZFW_EVENT_VERSION;
	ev->kind = kind;
	ev->family = pkt->family;
	ev->proto = pkt->proto;
	ev->direction = pkt->egress;
	ev->ifindex = skb->ifindex;
	ev->tstamp = now;
	__builtin_memcpy(ev->saddr, pkt->saddr, 16);
	__builtin_memcpy(ev->daddr, pkt->daddr, 16);
	ev->sport = pkt->sport;
	ev->dport = pkt->dport;
	ev->tcp_flags = pkt->tcp_flags;
	if (kind == ZFW_EVENT_SESSION)
		ev->tracking = detail;
	else
		ev->reason = detail;
	if (v) {
		ev->action = v->action;
		ev->rule_id = v->rule_id;
		ev->tproxy_port = v->tproxy_port;
	}
	/* MACs: frames without a 14-byte header leave them zero. */
	bpf_skb_load_bytes(skb, 0, ev->dmac, 6);
	bpf_skb_load_bytes(skb, 6, ev->smac, 6);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __always_inline int drop(struct __sk_buff *skb, const struct packet *pkt, __u32 iface_flags,
				__u8 reason, const struct verdict *v)
{
	if (iface_flags & ZFW_IFACE_VERBOSE)
		emit(skb, pkt, ZFW_EVENT_DROP, reason, v);
	return TC_ACT_SHOT;
}

#endif /* ZFW_EVENTS_H */
