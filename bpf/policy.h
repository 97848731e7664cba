/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * policy.h: the rule tables: one hash lookup per prefix length in use,
 * then a scan of that prefix's rules in precedence order.
 */
#ifndef ZFW_POLICY_H
#define ZFW_POLICY_H

#include "maps.h"

/* policy_result is what policy_lookup found. __u8, not bool: clang
 * assumes a loaded bool is 0 or 1 and returns it as is, which the
 * verifier cannot prove for a callback. */
struct policy_result {
	struct verdict v;
	__u8 done;      /* a rule matched: v is its verdict            */
	__u8 any_block; /* fragment: a candidate that does not pass   */
	__u8 full_pass; /* fragment: a pass candidate on every port    */
	__u8 pad;
};

/* scan_ctx carries one prefix key's rule block through bpf_loop. */
struct scan_ctx {
	__u32 src[4];
	__u32 start;
	__u32 ifindex;
	__u32 iface_flags;
	__u16 dport; /* host order */
	__u8 family;
	__u8 fragment;
	struct policy_result r; /* out */
};

static __always_inline bool src_matches(const struct range_entry *e, const __u32 *src, __u8 family)
{
	__u32 len = e->src_len;
	int w;

	if (len == 0)
		return true;
	if (family == 4) {
		__u32 mask = bpf_htonl(~0U << (32 - (len > 32 ? 32 : len)));

		return (src[0] & mask) == e->src[0];
	}
#pragma unroll
	for (w = 0; w < 4; w++) {
		__s32 bits = (__s32)len - 32 * w;
		__u32 mask;

		if (bits <= 0)
			break;
		mask = bits >= 32 ? ~0U : bpf_htonl(~0U << (32 - bits));
		if ((src[w] & mask) != e->src[w])
			return false;
	}
	return true;
}

static __always_inline bool iface_allowed(const struct range_entry *e, __u32 ifindex, __u32 iface_flags)
{
	struct if_list *l;
	__u32 id;
	int i;

	if (!(e->flags & ZFW_RANGE_HAS_IFLIST))
		return !(iface_flags & ZFW_IFACE_PER_INTERFACE);
	id = e->rule_id;
	l = bpf_map_lookup_elem(&if_list_extension_map, &id);
	if (!l)
		return false;
#pragma unroll
	for (i = 0; i < ZFW_MAX_RULE_IFACES; i++)
		if (l->ifindex[i] == ifindex)
			return true;
	return false;
}

/* count_hit adds one to a rule's decision count. */
static __always_inline void count_hit(__u32 rule_id)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(&rule_hits_map, &rule_id);

	if (n)
		*n += 1; /* per-CPU slot */
	else
		bpf_map_update_elem(&rule_hits_map, &rule_id, &one, BPF_NOEXIST);
}

/*
 * range_matches: does the rule in slot e apply to the packet described by
 * c (its port, unless a fragment's; its source; its interface)? A global
 * function, so that the verifier checks its branches once rather than for
 * every state the scan loop reaches it in.
 */
ZFW_STAGE int range_matches(const struct range_entry *e, const struct scan_ctx *c)
{
	if (!e || !c)
		return 0;
	if (!c->fragment && (c->dport < e->port_low || c->dport > e->port_high))
		return 0;
	return src_matches(e, c->src, c->family) && iface_allowed(e, c->ifindex, c->iface_flags);
}

/* scan_range is the bpf_loop body: slot i of the current prefix block. */
static long scan_range(__u32 i, void *arg)
{
	struct scan_ctx *c = arg;
	__u32 slot = c->start + i;
	struct range_entry *e = bpf_map_lookup_elem(&range_map, &slot);

	if (!e)
		return 1;
	if (!range_matches(e, c))
		return 0;
	if (c->fragment) {
		/* Port unknown: every candidate counts. Keep scanning. */
		if (e->action != ZFW_ACTION_PASS) {
			c->r.any_block = 1;
			return 1;
		}
		if (e->port_low <= 1 && e->port_high == 65535)
			c->r.full_pass = 1;
		return 0;
	}
	c->r.v.rule_id = e->rule_id;
	c->r.v.action = e->action;
	c->r.v.tproxy_port = e->tproxy_port;
	c->r.done = 1;
	count_hit(e->rule_id);
	return 1;
}

static __always_inline void mask_v6(__u32 *out, const __u32 *addr, __u32 len)
{
	int w;

#pragma unroll
	for (w = 0; w < 4; w++) {
		__s32 bits = (__s32)len - 32 * w;

		if (bits <= 0)
			out[w] = 0;
		else if (bits >= 32)
			out[w] = addr[w];
		else
			out[w] = addr[w] & bpf_htonl(~0U << (32 - bits));
	}
}

/* policy_lookup's how. */
enum policy_how {
	ZFW_POLICY_FRAGMENT = 1 << 0, /* ports unknown: judge every candidate */
	ZFW_POLICY_EGRESS = 1 << 1,   /* the egress rule tables */
};

/* lens_ctx carries the packet through the bpf_loop over prefix lengths. */
struct lens_ctx {
	struct prefix_lens *lens;
	struct scan_ctx *scan;
	__u32 daddr[4];
	__u8 proto;
	__u8 egress; /* look in the egress rule tables */
};

/* try_length is the bpf_loop body over prefix lengths: one hash lookup
 * for the masked destination, then a scan of that prefix's rules. */
static long try_length(__u32 i, void *arg)
{
	struct lens_ctx *lc = arg;
	struct scan_ctx *c = lc->scan;
	struct prefix_value *pv;
	__u32 len;

	if (i >= sizeof(lc->lens->lens))
		return 1;
	len = lc->lens->lens[i];
	if (c->family == 4) {
		struct prefix_key k = {
			.proto = lc->proto,
			.len = len,
			.addr = len ? lc->daddr[0] & bpf_htonl(~0U << (32 - (len > 32 ? 32 : len))) : 0,
		};
		pv = lc->egress ? bpf_map_lookup_elem(&zt_egress_map, &k)
				: bpf_map_lookup_elem(&zt_tproxy_map, &k);
	} else {
		struct prefix6_key k = { .proto = lc->proto, .len = len };

		mask_v6(k.addr, lc->daddr, len);
		pv = lc->egress ? bpf_map_lookup_elem(&zt_egress6_map, &k)
				: bpf_map_lookup_elem(&zt_tproxy6_map, &k);
	}
	if (!pv)
		return 0;
	c->start = pv->start;
	bpf_loop(pv->count > ZFW_MAX_RANGES_PER_PREFIX ? ZFW_MAX_RANGES_PER_PREFIX : pv->count, scan_range, c,
		 0);
	return (c->r.done != 0 || c->r.any_block != 0) ? 1 : 0;
}

/*
 * policy_lookup walks the prefix lengths in use for (family, proto),
 * longest first; at each length one hash lookup finds the prefix key, and
 * its rules are scanned in precedence order. The first match wins; a
 * prefix whose rules do not match falls through to the next shorter one.
 * how: ZFW_POLICY_* bits. The result is in out.
 */
ZFW_STAGE int policy_lookup(const struct packet *pkt, __u32 ifindex, __u32 iface_flags, __u32 how,
			    struct policy_result *out)
{
	__u32 egress = !!(how & ZFW_POLICY_EGRESS);
	/* bpf_loop takes its context only from the stack, so the scan works
	 * on a copy here and hands the result out at the end. */
	struct scan_ctx c = {};
	struct lens_ctx lc = {};
	__u32 lkey, n;

	if (!pkt || !out)
		return 0;
	lkey = (egress << 16) | ((__u32)pkt->family << 8) | pkt->proto;
	lc.scan = &c;
	lc.proto = pkt->proto;
	lc.egress = egress;

	__builtin_memcpy(c.src, pkt->saddr, 16);
	c.ifindex = ifindex;
	c.iface_flags = iface_flags;
	c.dport = bpf_ntohs(pkt->dport);
	c.family = pkt->family;
	c.fragment = !!(how & ZFW_POLICY_FRAGMENT);
	lc.lens = bpf_map_lookup_elem(&prefix_len_map, &lkey);
	if (lc.lens) {
		__builtin_memcpy(lc.daddr, pkt->daddr, 16);
		n = lc.lens->count;
		if (n > sizeof(lc.lens->lens))
			n = sizeof(lc.lens->lens);
		bpf_loop(n, try_length, &lc, 0);
	}
	*out = c.r;
	return 0;
}

#endif /* ZFW_POLICY_H */
