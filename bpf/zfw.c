// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * zfw: the dataplane's three programs and the order of their stages.
 *
 * zfw_ingress (TC, TCX where the kernel has it) parses a packet once,
 * answers from the per-CPU flow cache when it can, and otherwise runs the
 * stages in packet order: interface settings, packets without ports,
 * guards (OT, DDoS, masquerade), sessions, then the rule tables, and
 * passes, drops or steers the packet to a transparent listener.
 * zfw_egress tracks what leaves, filters it and masquerades it; zfw_tun_xdp
 * sends the Ziti tun's replies back out.
 *
 * Each stage lives in the header its name says (parse.h, flow_cache.h,
 * host.h, policy.h, steer.h, tw_note.h, sessions.h, masquerade.h, ddos.h,
 * ot.h, tunnel.h, events.h); shared structs are in include/zfw.h. Stages
 * marked ZFW_STAGE are global functions, verified once each (see packet.h).
 * Parse and the flow cache are inlined into zfw_ingress instead, by
 * measurement: a packet the cache settles then pays no call, and together
 * they cost the verifier some 3,000 instructions of the entry's total
 * (internal/bpfobj's load test prints each function's share when a
 * program goes over its budget).
 *
 * Which features run is decided per packet from the interface's settings
 * (diag_map), not by load-time constants (const volatile): one program
 * serves every interface with whatever settings each has, and settings
 * change live (zfw -e, SetInterface) without reloading or re-verifying
 * anything. Because each feature is its own stage, a feature an interface
 * does not use costs the verifier its one check, not a multiple of the
 * program's paths, and costs a packet one flag test.
 */
#include "packet.h"
#include "maps.h"
#include "parse.h"
#include "events.h"
#include "policy.h"
#include "steer.h"
#include "flow_cache.h"
#include "host.h"
#include "sessions.h"
#include "masquerade.h"
#include "ot.h"
#include "tunnel.h"
#include "ddos.h"
#include "sk_lookup.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* ---- ingress stages ------------------------------------------------- */

/*
 * ingress_untupled decides what has no ports to steer by: frames that are
 * not IP, malformed packets, other IP protocols (ICMP among them) and
 * fragments.
 */
ZFW_STAGE int ingress_untupled(struct __sk_buff *skb, struct packet *pkt, const struct config *cfg, int kind,
			       __u32 flags)
{
	__u32 ifindex = skb->ifindex;
	struct policy_result c = {};
	struct verdict v = {};

	if (!pkt || !cfg)
		return TC_ACT_SHOT;
	switch (kind) {
	case PARSE_NOT_IP:
		count(ZFW_STAT_NOT_IP);
		if ((flags & ZFW_IFACE_DEFAULT_DENY) && !frame_passes(pkt, flags))
			return drop(skb, pkt, flags, ZFW_REASON_DEFAULT_DENY, NULL);
		return TC_ACT_OK;
	case PARSE_OTHER:
		count(ZFW_STAT_OTHER_PROTO);
		if ((flags & ZFW_IFACE_MASQUERADE) && echo_reply(pkt) && masquerade_in(skb, pkt, ifindex))
			return drop(skb, pkt, flags, ZFW_REASON_MASQUERADE, NULL);
		if ((flags & ZFW_IFACE_MASQUERADE) && icmp_error(pkt) &&
		    masquerade_icmp_error(skb, pkt, ifindex))
			return drop(skb, pkt, flags, ZFW_REASON_MASQUERADE, NULL);
		if (!(flags & ZFW_IFACE_DEFAULT_DENY))
			return TC_ACT_OK;
		if (admit_echo_reply(pkt, ifindex, cfg)) {
			count(ZFW_STAT_ECHO_REPLY);
			return TC_ACT_OK;
		}
		if (!other_passes(pkt, flags))
			return drop(skb, pkt, flags, ZFW_REASON_DEFAULT_DENY, NULL);
		return TC_ACT_OK;
	case PARSE_FRAGMENT:
		/*
		 * Ports are unknown (or, in a first fragment, cannot be steered:
		 * a listener cannot receive a partial datagram). A fragment
		 * passes only if its unfragmented twin would pass on every
		 * port; anything else is dropped.
		 */
		count(ZFW_STAT_FRAGMENT);
		policy_lookup(pkt, ifindex, flags, ZFW_POLICY_FRAGMENT, &c);
		if (!c.any_block && (c.full_pass || !(flags & ZFW_IFACE_DEFAULT_DENY))) {
			v.action = ZFW_ACTION_PASS;
			record_verdict(skb, &v);
			return TC_ACT_OK;
		}
		v.action = ZFW_ACTION_DENY;
		record_verdict(skb, &v);
		return drop(skb, pkt, flags, ZFW_REASON_FRAGMENT, NULL);
	default:
		count(ZFW_STAT_MALFORMED);
		return drop(skb, pkt, flags, ZFW_REASON_MALFORMED, NULL);
	}
}

/*
 * ingress_guard runs what an interface asks of a TCP or UDP packet before
 * sessions and rules see it: OT protocol checks, SYN-flood counting, and
 * the translation back of replies to masqueraded flows.
 */
ZFW_STAGE int ingress_guard(struct __sk_buff *skb, struct packet *pkt, const struct config *cfg, __u32 flags)
{
	__u32 ifindex = skb->ifindex;

	if (!pkt || !cfg)
		return TC_ACT_SHOT;
	if ((flags & ZFW_IFACE_OT_FILTERING) && pkt->proto == IPPROTO_TCP) {
		__u8 why = dnp3_check(skb, pkt);

		if (!why && !modbus_response_ok(skb, pkt, ifindex))
			why = ZFW_REASON_MODBUS_UNEXPECTED;
		if (why) {
			count(ZFW_STAT_OT_DROPPED);
			return drop(skb, pkt, flags, why, NULL);
		}
	}
	if (flags & ZFW_IFACE_DDOS) {
		switch (ddos_check(pkt, cfg, bpf_ktime_get_ns())) {
		case DDOS_BANNED:
			if (flags & ZFW_IFACE_VERBOSE)
				emit(skb, pkt, ZFW_EVENT_BAN, ZFW_REASON_BANNED, NULL);
			count(ZFW_STAT_BANNED);
			return drop(skb, pkt, flags, ZFW_REASON_BANNED, NULL);
		case DDOS_NOT_ALLOWED:
			count(ZFW_STAT_NOT_ALLOWED);
			return drop(skb, pkt, flags, ZFW_REASON_NOT_ALLOWED, NULL);
		}
	}
	if ((flags & ZFW_IFACE_MASQUERADE) && masquerade_in(skb, pkt, ifindex))
		return drop(skb, pkt, flags, ZFW_REASON_MASQUERADE, NULL);
	return ZFW_GO_ON;
}

/*
 * ingress_sessions: on an interface that tracks sessions, a packet of a
 * known session gets that session's verdict without a rule lookup.
 */
ZFW_STAGE int ingress_sessions(struct __sk_buff *skb, struct packet *pkt, const struct config *cfg,
			       __u32 flags)
{
	__u32 ifindex = skb->ifindex;
	struct session_result sr = {};
	struct verdict v = {};
	__u8 track, steady;
	bool fast, reply;

	if (!pkt || !cfg)
		return TC_ACT_SHOT;
	if (pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		flow_forget(pkt, ifindex, cfg, false);
	/*
	 * A session's tuple is in one of the two maps: egress records
	 * an outbound session only where no inbound session holds the
	 * tuple, and a packet that either map admits opens nothing. So
	 * the order of the lookups decides what a packet costs, not
	 * its verdict. A reply to an outbound session mostly comes
	 * from a service port to a higher, ephemeral one; a packet of
	 * an inbound session the other way round. The likelier map
	 * goes first, and the other is read only on a miss.
	 */
	if (reply_likely(pkt)) {
		reply = session_reply(pkt, ifindex, cfg, &sr);
		fast = !reply && !sr.track && session_inbound(pkt, ifindex, cfg, &sr);
	} else {
		fast = session_inbound(pkt, ifindex, cfg, &sr);
		reply = !fast && !sr.track && session_reply(pkt, ifindex, cfg, &sr);
	}
	track = sr.track;
	steady = sr.steady;
	if (fast)
		v = sr.v;
	if (steady && !(flags & ZFW_FLOW_UNCACHED) && session_cacheable(pkt, cfg) &&
	    !(fast && v.action == ZFW_ACTION_TPROXY && pkt->proto == IPPROTO_UDP)) {
		struct verdict pass = { .action = ZFW_ACTION_PASS };

		flow_remember(pkt, ifindex, cfg, fast ? ZFW_FLOW_INBOUND : ZFW_FLOW_REPLY, fast ? &v : &pass);
	}

	if (track && (flags & ZFW_IFACE_VERBOSE))
		emit(skb, pkt, ZFW_EVENT_SESSION, track, fast ? &v : NULL);
	if (fast) {
		count(ZFW_STAT_FAST_PATH);
		record_verdict(skb, &v);
		if (v.action == ZFW_ACTION_TPROXY)
			return steer(skb, pkt, &v, cfg, flags);
		return TC_ACT_OK;
	}
	if (reply) {
		count(ZFW_STAT_REPLY);
		v.action = ZFW_ACTION_PASS;
		record_verdict(skb, &v);
		return TC_ACT_OK;
	}
	return ZFW_GO_ON;
}

/*
 * rule_verdict decides a TCP or UDP packet by the rules; the verdict is
 * in v and ingress_apply carries it out. Two stages, not one, so that the
 * rule tables' call chain stays within the kernel's 512 bytes of stack
 * for all frames together.
 *
 * No map remembers steered connections: a later segment the flow cache
 * does not hold is decided by the rules again, which costs less than
 * looking a flow up in a map of its own and, for a new flow, saves the
 * insert (measured: an LRU insert was most of a new flow's cost). Only a
 * segment the rules pass asks the kernel whether a connection of this
 * host holds its tuple, and is then marked for it: one steered before a
 * rule change is kept until it closes, and the host's own is delivered
 * as routing would. A deny rule cuts either like any other connection.
 */
ZFW_STAGE int rule_verdict(struct __sk_buff *skb, const struct packet *pkt, const struct config *cfg,
			   __u32 flags, struct verdict *v)
{
	struct policy_result c = {};
	__u32 ifindex;

	if (!skb || !pkt || !cfg || !v)
		return 0;
	ifindex = skb->ifindex;
	count(ZFW_STAT_POLICY_LOOKUP);
	policy_lookup(pkt, ifindex, flags, 0, &c);
	if (c.done) {
		*v = c.v;
	} else {
		count(ZFW_STAT_NO_MATCH);
		v->action = ZFW_ACTION_PASS;
		if ((flags & ZFW_IFACE_DEFAULT_DENY) && !tuple_passes(pkt, flags, ifindex))
			v->action = ZFW_ACTION_DENY;
	}
	v->known = 0;
	if (v->action == ZFW_ACTION_PASS && pkt->proto == IPPROTO_TCP && !opens_connection(pkt) &&
	    held_by_connection(skb, pkt)) {
		/* Marked, the segment reaches its socket whether that is the
		 * tunneler's (a non-local destination) or the host's own. */
		count(ZFW_STAT_KEPT_STEERING);
		v->action = ZFW_ACTION_TPROXY;
		v->rule_id = 0;
		v->tproxy_port = 0;
		v->known = 1;
	}
	return 0;
}

/* ingress_apply carries out the rules' verdict v on the packet. */
ZFW_STAGE int ingress_apply(struct __sk_buff *skb, const struct packet *pkt, const struct config *cfg,
			    __u32 flags, const struct verdict *v)
{
	__u32 ifindex = skb->ifindex;

	if (!pkt || !cfg || !v)
		return TC_ACT_SHOT;
	record_verdict(skb, v);
	if (!(flags & ZFW_FLOW_UNCACHED) && !opens_connection(pkt)) {
		if (pkt->proto == IPPROTO_TCP && v->action == ZFW_ACTION_TPROXY)
			flow_remember(pkt, ifindex, cfg, ZFW_FLOW_STEERED, v);
		else if (v->action != ZFW_ACTION_TPROXY &&
			 !(flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)))
			flow_remember(pkt, ifindex, cfg, ZFW_FLOW_RULE, v);
	}
	if ((flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)) && v->action != ZFW_ACTION_DENY &&
	    !v->known && open_inbound(pkt, ifindex, v) && (flags & ZFW_IFACE_VERBOSE))
		emit(skb, pkt, ZFW_EVENT_SESSION, ZFW_TRACK_OPENED_IN, v);

	switch (v->action) {
	case ZFW_ACTION_TPROXY:
		if (flags & ZFW_IFACE_TUNNEL_MODE) {
			int rc = tunnel(skb, pkt);

			if (rc >= 0)
				return rc;
		}
		return steer(skb, pkt, v, cfg, flags);
	case ZFW_ACTION_PASS:
		count(ZFW_STAT_PASS);
		return TC_ACT_OK;
	default:
		count(ZFW_STAT_DENY);
		return drop(skb, pkt, flags, v->rule_id ? ZFW_REASON_RULE_DENY : ZFW_REASON_DEFAULT_DENY, v);
	}
}

/*
 * ingress_decide is everything the ingress program does for a packet the
 * flow cache did not settle: the interface's settings, then each stage
 * in turn until one settles the packet.
 */
ZFW_STAGE int ingress_decide(struct __sk_buff *skb, struct packet *pkt, const struct config *cfg, int kind)
{
	__u32 ifindex = skb->ifindex;
	struct iface_settings *ifs;
	struct verdict v = {};
	__u32 flags;
	int rc;

	if (!pkt || !cfg)
		return TC_ACT_SHOT;
	ifs = bpf_map_lookup_elem(&diag_map, &ifindex);
	if (!ifs) {
		count(ZFW_STAT_UNMANAGED);
		return ZFW_NEXT;
	}
	flags = ifs->flags;

	if (pkt->family == 6 && (flags & ZFW_IFACE_IPV6_DISABLE))
		return drop(skb, pkt, flags, ZFW_REASON_DEFAULT_DENY, NULL);
	/* A banned source gets nothing, whatever it sends. */
	if ((flags & ZFW_IFACE_DDOS) && pkt->family && banned(pkt, bpf_ktime_get_ns())) {
		count(ZFW_STAT_BANNED);
		return drop(skb, pkt, flags, ZFW_REASON_BANNED, NULL);
	}
	if (kind != PARSE_TUPLE)
		return ingress_untupled(skb, pkt, cfg, kind, flags);
	if (flags & (ZFW_IFACE_OT_FILTERING | ZFW_IFACE_DDOS | ZFW_IFACE_MASQUERADE)) {
		rc = ingress_guard(skb, pkt, cfg, flags);
		if (rc != ZFW_GO_ON)
			return rc;
	}
	if (flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)) {
		rc = ingress_sessions(skb, pkt, cfg, flags);
		if (rc != ZFW_GO_ON)
			return rc;
	}
	rule_verdict(skb, pkt, cfg, flags, &v);
	return ingress_apply(skb, pkt, cfg, flags, &v);
}

SEC("tc")
int zfw_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct config *cfg;
	struct packet pkt = {};
	int kind;

	cfg = bpf_map_lookup_elem(&config_map, &zero);
	if (!cfg) {
		count(ZFW_STAT_UNMANAGED);
		return ZFW_NEXT;
	}
	kind = parse_packet(skb, &pkt);
	/* Most packets belong to a flow already decided: this CPU's flow
	 * cache settles them before any other map is read. */
	if (kind == PARSE_TUPLE) {
		struct flow_entry *fe = flow_cached(&pkt, skb->ifindex, cfg, bpf_jiffies64());

		if (fe)
			return flow_hit(skb, fe, cfg->mark);
	}
	return ingress_decide(skb, &pkt, cfg, kind);
}

/* ---- egress stages -------------------------------------------------- */

/*
 * outbound_allowed: with the outbound filter on, a packet leaving the
 * interface passes if it belongs to a session already opened outwards, or
 * if it opens one that an egress rule passes. Egress rules decide only
 * new flows; no match is a drop.
 */
static __always_inline bool outbound_allowed(const struct packet *pkt, __u32 ifindex, __u32 flags)
{
	struct policy_result c = {};
	struct tuple_key k = {};

	if (!opens_connection(pkt)) {
		session_key(pkt, ifindex, true, &k);
		if (bpf_map_lookup_elem(pkt->proto == IPPROTO_TCP ? (void *)&tcp_map : (void *)&udp_map, &k))
			return true;
	}
	policy_lookup(pkt, ifindex, flags, ZFW_POLICY_EGRESS, &c);
	return c.done && c.v.action == ZFW_ACTION_PASS;
}

/* egress_tuple: a TCP or UDP packet leaving the interface. */
ZFW_STAGE int egress_tuple(struct __sk_buff *skb, struct packet *pkt, const struct config *cfg, __u32 flags)
{
	__u32 ifindex = skb->ifindex;
	__u8 track = 0;

	if (!pkt || !cfg)
		return TC_ACT_SHOT;
	if (pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		flow_forget(pkt, ifindex, cfg, true);
	if ((flags & ZFW_IFACE_OT_FILTERING) && pkt->proto == IPPROTO_TCP) {
		__u8 why = dnp3_check(skb, pkt);

		if (why) {
			count(ZFW_STAT_OT_DROPPED);
			return drop(skb, pkt, flags, why, NULL);
		}
		modbus_request(skb, pkt, ifindex);
	}
	if (inbound_reply(pkt, ifindex, &track)) {
		if (track && (flags & ZFW_IFACE_VERBOSE))
			emit(skb, pkt, ZFW_EVENT_SESSION, track, NULL);
		return ZFW_NEXT;
	}
	if ((flags & ZFW_IFACE_OUTBOUND_FILTER) && !outbound_allowed(pkt, ifindex, flags)) {
		count(ZFW_STAT_EGRESS_DENY);
		return drop(skb, pkt, flags, ZFW_REASON_RULE_DENY, NULL);
	}
	if (flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)) {
		track_outbound(pkt, ifindex, cfg, &track);
		if (track && (flags & ZFW_IFACE_VERBOSE))
			emit(skb, pkt, ZFW_EVENT_SESSION, track, NULL);
	}
	if ((flags & ZFW_IFACE_MASQUERADE) && masquerade_out(skb, pkt, ifindex))
		return drop(skb, pkt, flags, ZFW_REASON_MASQUERADE, NULL);
	return ZFW_NEXT;
}

/* egress_untupled: a fragment or a packet without ports leaving the
 * interface. */
ZFW_STAGE int egress_untupled(struct __sk_buff *skb, struct packet *pkt, const struct config *cfg, int kind,
			      __u32 flags)
{
	__u32 ifindex = skb->ifindex;
	struct policy_result c = {};

	if (!pkt || !cfg)
		return TC_ACT_SHOT;
	switch (kind) {
	case PARSE_FRAGMENT:
		/* As on ingress: a fragment leaves only if every port would. */
		if (!(flags & ZFW_IFACE_OUTBOUND_FILTER))
			break;
		policy_lookup(pkt, ifindex, flags, ZFW_POLICY_FRAGMENT | ZFW_POLICY_EGRESS, &c);
		if (c.any_block || !c.full_pass) {
			count(ZFW_STAT_EGRESS_DENY);
			return drop(skb, pkt, flags, ZFW_REASON_FRAGMENT, NULL);
		}
		break;
	case PARSE_OTHER:
		if (echo_request(pkt)) {
			struct icmp_key k = {};
			struct icmp_state st = { .tstamp = bpf_ktime_get_ns() };

			echo_key(pkt, ifindex, true, &k);
			bpf_map_update_elem(&icmp_echo_map, &k, &st, BPF_ANY);
			count(ZFW_STAT_TRACKED);
			if ((flags & ZFW_IFACE_MASQUERADE) && masquerade_out(skb, pkt, ifindex))
				return drop(skb, pkt, flags, ZFW_REASON_MASQUERADE, NULL);
		}
		break;
	}
	return ZFW_NEXT;
}

/*
 * zfw_egress runs on interfaces with the host firewall (default deny) or
 * the outbound filter on. It records the sessions opened outwards, so
 * that zfw_ingress admits their replies, advances sessions opened
 * inwards, and with the outbound filter drops new flows no egress rule
 * passes.
 */
SEC("tc")
int zfw_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex, zero = 0;
	struct iface_settings *ifs;
	struct config *cfg;
	struct packet pkt = {};
	__u32 flags;
	int kind;

	ifs = bpf_map_lookup_elem(&diag_map, &ifindex);
	cfg = bpf_map_lookup_elem(&config_map, &zero);
	if (!ifs || !cfg ||
	    !(ifs->flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER | ZFW_IFACE_MASQUERADE |
			    ZFW_IFACE_OT_FILTERING)))
		return ZFW_NEXT;
	flags = ifs->flags;
	pkt.egress = 1;
	kind = parse_packet(skb, &pkt);
	if (kind == PARSE_TUPLE)
		return egress_tuple(skb, &pkt, cfg, flags);
	return egress_untupled(skb, &pkt, cfg, kind, flags);
}

/* ---- the Ziti tun ---------------------------------------------------- */

/*
 * zfw_tun_xdp runs on the Ziti tun (raw IP, no Ethernet header) on what
 * the tunneler writes back: a reply to a flow tunnel() sent in gets the
 * Ethernet header of the original request, reversed, and leaves through
 * the interface that request came in on. Anything else goes on to the
 * stack.
 */
/*
 * zfw_sk_lookup runs where the kernel looks for a listener for a new
 * connection in the namespace (attached to it, not to an interface); see
 * sk_lookup.h.
 */
SEC("sk_lookup")
int zfw_sk_lookup(struct bpf_sk_lookup *ctx)
{
	return sk_lookup_steer(ctx);
}

SEC("xdp")
int zfw_tun_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tun_key k = {};
	struct tun_state *st;
	struct ethhdr *eth;
	__u8 *ip = data;
	__u32 l4;
	__be16 proto;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if ((ip[0] >> 4) == 4) {
		struct iphdr *h = data;

		if ((void *)(h + 1) > data_end || h->ihl < 5)
			return XDP_PASS;
		k.family = 4;
		k.proto = h->protocol;
		k.src[0] = h->saddr;
		k.dst[0] = h->daddr;
		l4 = h->ihl * 4;
		proto = bpf_htons(ETH_P_IP);
	} else if ((ip[0] >> 4) == 6) {
		struct ipv6hdr *h = data;

		if ((void *)(h + 1) > data_end)
			return XDP_PASS;
		k.family = 6;
		k.proto = h->nexthdr; /* no extension headers on replies we build */
		__builtin_memcpy(k.src, &h->saddr, 16);
		__builtin_memcpy(k.dst, &h->daddr, 16);
		l4 = sizeof(*h);
		proto = bpf_htons(ETH_P_IPV6);
	} else {
		return XDP_PASS;
	}
	if (k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP)
		return XDP_PASS;
	if (l4 > 60)
		return XDP_PASS;
	{
		__u16 *ports = data + l4;

		if ((void *)(ports + 2) > data_end)
			return XDP_PASS;
		k.sport = ports[0];
		k.dport = ports[1];
	}
	st = bpf_map_lookup_elem(&tun_map, &k);
	if (!st)
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct ethhdr)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, st->client_mac, 6);
	__builtin_memcpy(eth->h_source, st->our_mac, 6);
	eth->h_proto = proto;
	st->tstamp = bpf_ktime_get_ns();
	count(ZFW_STAT_TUN_RETURNED);
	return bpf_redirect(st->ifindex, 0);
}
