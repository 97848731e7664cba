/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sessions.h: connection tracking: sessions opened outwards (tcp_map,
 * udp_map), inwards (tcp_ingress_map, udp_ingress_map), and echo requests
 * (icmp_echo_map).
 */
#ifndef ZFW_SESSIONS_H
#define ZFW_SESSIONS_H

#include "maps.h"

/* session_key builds the initiator-oriented key: as seen on egress
 * (outbound), or from a reply seen on ingress. */
static __always_inline void session_key(const struct packet *pkt, __u32 ifindex, bool outbound,
					struct tuple_key *k)
{
	k->ifindex = ifindex;
	k->proto = pkt->proto;
	k->family = pkt->family;
	if (outbound) {
		__builtin_memcpy(k->src, pkt->saddr, 16);
		__builtin_memcpy(k->dst, pkt->daddr, 16);
		k->sport = pkt->sport;
		k->dport = pkt->dport;
	} else {
		__builtin_memcpy(k->src, pkt->daddr, 16);
		__builtin_memcpy(k->dst, pkt->saddr, 16);
		k->sport = pkt->dport;
		k->dport = pkt->sport;
	}
}

/* tcp_steady: established and not closing, so a plain segment changes
 * nothing but the idle timer; such a session may be served from the flow
 * cache. */
static __always_inline bool tcp_steady(__u32 flags)
{
	return (flags & ZFW_TCP_EST) && !(flags & (ZFW_TCP_CFIN | ZFW_TCP_SFIN));
}

/* tcp_timeout: established sessions idle long; opening and closing ones
 * do not. */
static __always_inline __u64 tcp_timeout(const struct config *cfg, __u32 flags)
{
	if (tcp_steady(flags))
		return cfg->tcp_established_ns;
	return cfg->tcp_transitory_ns;
}

#define ZFW_TCP_CLOSED (ZFW_TCP_CFIN | ZFW_TCP_SFIN | ZFW_TCP_CFIN_ACK | ZFW_TCP_SFIN_ACK)

/* transition names what a TCP step did to a session, for events. */
static __always_inline __u8 transition(__u32 before, __u32 after, bool closed, const struct packet *pkt)
{
	if (closed)
		return (pkt->tcp_flags & TCP_FLAG_RST) ? ZFW_TRACK_RESET : ZFW_TRACK_CLOSED;
	if (!(before & ZFW_TCP_EST) && (after & ZFW_TCP_EST))
		return ZFW_TRACK_ESTABLISHED;
	return 0;
}

/*
 * The TCP state machine, one step per segment, from the side that opened
 * the session (initiator) or the side that answered (responder). Each
 * returns false for a segment the session does not admit and true when it
 * does; *closed is set once both FINs are acknowledged or on RST.
 */
static __always_inline bool tcp_initiator(struct tcp_state *st, const struct packet *pkt, bool *closed)
{
	__u8 f = pkt->tcp_flags;

	if (f & TCP_FLAG_RST) {
		*closed = true;
		return true;
	}
	if ((f & TCP_FLAG_ACK) && (st->flags & ZFW_TCP_SYN_ACK))
		st->flags |= ZFW_TCP_EST;
	if ((f & TCP_FLAG_ACK) && (st->flags & ZFW_TCP_SFIN) && pkt->ack_seq == st->sfin_seq + 1)
		st->flags |= ZFW_TCP_SFIN_ACK;
	if (f & TCP_FLAG_FIN) {
		st->flags |= ZFW_TCP_CFIN;
		st->cfin_seq = pkt->seq + pkt->payload_len;
	}
	*closed = (st->flags & ZFW_TCP_CLOSED) == ZFW_TCP_CLOSED;
	return true;
}

static __always_inline bool tcp_responder(struct tcp_state *st, const struct packet *pkt, bool *closed)
{
	__u8 f = pkt->tcp_flags;

	if (f & TCP_FLAG_RST) {
		*closed = true;
		return true;
	}
	if ((f & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK)) {
		if (!(st->flags & ZFW_TCP_SYN))
			return false;
		st->flags |= ZFW_TCP_SYN_ACK;
		return true;
	}
	if (!(st->flags & ZFW_TCP_SYN_ACK) || (f & TCP_FLAG_SYN))
		return false; /* nothing but the SYN-ACK before the handshake */
	if ((f & TCP_FLAG_ACK) && (st->flags & ZFW_TCP_CFIN) && pkt->ack_seq == st->cfin_seq + 1)
		st->flags |= ZFW_TCP_CFIN_ACK;
	if (f & TCP_FLAG_FIN) {
		st->flags |= ZFW_TCP_SFIN;
		st->sfin_seq = pkt->seq + pkt->payload_len;
	}
	*closed = (st->flags & ZFW_TCP_CLOSED) == ZFW_TCP_CLOSED;
	return true;
}

/*
 * track_outbound runs on egress of a default-deny interface: a SYN opens
 * a TCP session (a new SYN restarts it), later segments advance it; every
 * UDP datagram opens or refreshes one. Segments of sessions this side did
 * not open (replies of local servers) are not recorded here.
 */
static __always_inline void track_outbound(const struct packet *pkt, __u32 ifindex, const struct config *cfg,
					   __u8 *track)
{
	struct tuple_key k = {};
	__u64 now = bpf_ktime_get_ns();
	struct tcp_state *st;
	bool closed = false;
	__u32 before;

	session_key(pkt, ifindex, true, &k);
	if (pkt->proto == IPPROTO_UDP) {
		struct udp_state *cur = bpf_map_lookup_elem(&udp_map, &k);
		struct udp_state us = { .tstamp = now };

		/* Refresh in place: an insert costs several lookups. */
		count(ZFW_STAT_TRACKED);
		if (cur) {
			cur->tstamp = now;
			return;
		}
		bpf_map_update_elem(&udp_map, &k, &us, BPF_ANY);
		*track = ZFW_TRACK_OPENED_OUT;
		return;
	}
	if (opens_connection(pkt)) {
		struct tcp_state ts = { .tstamp = now, .flags = ZFW_TCP_SYN };

		bpf_map_update_elem(&tcp_map, &k, &ts, BPF_ANY);
		count(ZFW_STAT_TRACKED);
		*track = ZFW_TRACK_OPENED_OUT;
		return;
	}
	st = bpf_map_lookup_elem(&tcp_map, &k);
	if (!st)
		return;
	if (now - st->tstamp > tcp_timeout(cfg, st->flags)) {
		bpf_map_delete_elem(&tcp_map, &k);
		*track = ZFW_TRACK_EXPIRED;
		return;
	}
	count(ZFW_STAT_TRACKED);
	st->tstamp = now;
	before = st->flags;
	tcp_initiator(st, pkt, &closed);
	*track = transition(before, st->flags, closed, pkt);
	if (closed)
		bpf_map_delete_elem(&tcp_map, &k);
}

/*
 * admit_reply runs on ingress of a default-deny interface before any
 * rule: a packet of a session this side opened passes. An expired
 * session admits nothing (and is removed); before the handshake only the
 * SYN-ACK gets in; a RST ends the session and passes, so the host learns.
 */
static __always_inline bool admit_reply(const struct packet *pkt, __u32 ifindex, const struct config *cfg,
					__u8 *track, __u8 *steady)
{
	struct tuple_key k = {};
	__u64 now = bpf_ktime_get_ns();
	struct tcp_state *st;
	bool closed = false;
	__u32 before;

	session_key(pkt, ifindex, false, &k);
	if (pkt->proto == IPPROTO_UDP) {
		struct udp_state *us = bpf_map_lookup_elem(&udp_map, &k);

		if (!us)
			return false;
		if (now - us->tstamp > cfg->udp_ns) {
			bpf_map_delete_elem(&udp_map, &k);
			*track = ZFW_TRACK_EXPIRED;
			return false;
		}
		us->tstamp = now;
		*steady = 1;
		return true;
	}
	st = bpf_map_lookup_elem(&tcp_map, &k);
	if (!st)
		return false;
	if (now - st->tstamp > tcp_timeout(cfg, st->flags)) {
		bpf_map_delete_elem(&tcp_map, &k);
		*track = ZFW_TRACK_EXPIRED;
		return false;
	}
	before = st->flags;
	if (!tcp_responder(st, pkt, &closed))
		return false;
	st->tstamp = now;
	*track = transition(before, st->flags, closed, pkt);
	*steady = !closed && tcp_steady(st->flags);
	if (closed)
		bpf_map_delete_elem(&tcp_map, &k);
	return true;
}

/* ---- sessions opened inwards (tcp_ingress_map, udp_ingress_map) ----- */

static __always_inline void *inbound_map(const struct packet *pkt)
{
	return pkt->proto == IPPROTO_TCP ? (void *)&tcp_ingress_map : (void *)&udp_ingress_map;
}

/*
 * inbound_fast_path: a packet of a session opened inwards gets the
 * session's verdict without a rule lookup. A SYN re-opens the flow and so
 * goes through the rules again. Returns false when there is no usable
 * session.
 */
static __always_inline bool inbound_fast_path(const struct packet *pkt, __u32 ifindex,
					      const struct config *cfg, struct verdict *v, __u8 *track,
					      __u8 *steady)
{
	struct tuple_key k = {};
	struct inbound_state *st;
	__u64 now = bpf_ktime_get_ns();
	bool closed = false;
	__u64 timeout;
	__u32 before;

	if (opens_connection(pkt))
		return false;
	session_key(pkt, ifindex, true, &k);
	st = bpf_map_lookup_elem(inbound_map(pkt), &k);
	if (!st)
		return false;
	timeout = pkt->proto == IPPROTO_UDP ? cfg->udp_ns : tcp_timeout(cfg, st->tcp.flags);
	if (now - st->tcp.tstamp > timeout) {
		bpf_map_delete_elem(inbound_map(pkt), &k);
		*track = ZFW_TRACK_EXPIRED;
		return false;
	}
	st->tcp.tstamp = now;
	v->action = st->action;
	v->rule_id = st->rule_id;
	v->tproxy_port = st->tproxy_port;
	if (pkt->proto == IPPROTO_TCP) {
		before = st->tcp.flags;
		tcp_initiator(&st->tcp, pkt, &closed);
		*track = transition(before, st->tcp.flags, closed, pkt);
		*steady = !closed && tcp_steady(st->tcp.flags);
		if (closed)
			bpf_map_delete_elem(&tcp_ingress_map, &k);
		return true;
	}
	*steady = 1;
	return true;
}

/* reply_likely: the packet goes from a lower port to a higher one, as a
 * reply from a service to a client's ephemeral port does. */
static __always_inline bool reply_likely(const struct packet *pkt)
{
	return bpf_ntohs(pkt->dport) > bpf_ntohs(pkt->sport);
}

/* session_result is what session_reply and session_inbound found. */
struct session_result {
	struct verdict v; /* session_inbound: the session's verdict */
	__u8 track;       /* a ZFW_TRACK_* change of the session, or 0 */
	__u8 steady;      /* the session may be served from the flow cache */
};

/*
 * session_reply and session_inbound are admit_reply and inbound_fast_path
 * as global functions: the verifier checks each once, on its own, rather
 * than again on every path of zfw_ingress that reaches it. Arguments of a
 * global function may be NULL as far as the verifier knows.
 */
__noinline int session_reply(const struct packet *pkt, __u32 ifindex, const struct config *cfg,
			     struct session_result *r)
{
	if (!pkt || !cfg || !r)
		return 0;
	return admit_reply(pkt, ifindex, cfg, &r->track, &r->steady);
}

__noinline int session_inbound(const struct packet *pkt, __u32 ifindex, const struct config *cfg,
			       struct session_result *r)
{
	if (!pkt || !cfg || !r)
		return 0;
	return inbound_fast_path(pkt, ifindex, cfg, &r->v, &r->track, &r->steady);
}

/* open_inbound records a session a rule admitted on its first packet. */
static __always_inline bool open_inbound(const struct packet *pkt, __u32 ifindex, const struct verdict *v)
{
	struct tuple_key k = {};
	struct inbound_state st = {
		.tcp = { .tstamp = bpf_ktime_get_ns(), .flags = ZFW_TCP_SYN },
		.rule_id = v->rule_id,
		.tproxy_port = v->tproxy_port,
		.action = v->action,
	};

	if (pkt->proto == IPPROTO_TCP && !opens_connection(pkt))
		return false; /* mid-stream TCP opens nothing */
	session_key(pkt, ifindex, true, &k);
	return bpf_map_update_elem(inbound_map(pkt), &k, &st, BPF_ANY) == 0;
}

/*
 * inbound_reply runs on egress: a packet the local side sends in a
 * session opened inwards advances its state. Returns true if it was one.
 */
static __always_inline bool inbound_reply(const struct packet *pkt, __u32 ifindex, __u8 *track)
{
	struct tuple_key k = {};
	struct inbound_state *st;
	bool closed = false;
	__u32 before;

	session_key(pkt, ifindex, false, &k);
	st = bpf_map_lookup_elem(inbound_map(pkt), &k);
	if (!st)
		return false;
	st->tcp.tstamp = bpf_ktime_get_ns();
	if (pkt->proto == IPPROTO_TCP) {
		before = st->tcp.flags;
		tcp_responder(&st->tcp, pkt, &closed);
		*track = transition(before, st->tcp.flags, closed, pkt);
		if (closed)
			bpf_map_delete_elem(&tcp_ingress_map, &k);
	}
	return true;
}

/* echo_key builds the icmp_echo_map key of a request (outbound) or of
 * the request a reply answers. */
static __always_inline void echo_key(const struct packet *pkt, __u32 ifindex, bool outbound,
				     struct icmp_key *k)
{
	k->ifindex = ifindex;
	k->family = pkt->family;
	k->id = pkt->icmp_id;
	k->seq = pkt->icmp_seq;
	if (outbound) {
		__builtin_memcpy(k->src, pkt->saddr, 16);
		__builtin_memcpy(k->dst, pkt->daddr, 16);
	} else {
		__builtin_memcpy(k->src, pkt->daddr, 16);
		__builtin_memcpy(k->dst, pkt->saddr, 16);
	}
}

static __always_inline bool echo_request(const struct packet *pkt)
{
	return pkt->icmp_echo &&
	       ((pkt->family == 4 && pkt->proto == IPPROTO_ICMP && pkt->icmp_type == 8) ||
		(pkt->family == 6 && pkt->proto == IPPROTO_ICMPV6 && pkt->icmp_type == 128));
}

static __always_inline bool echo_reply(const struct packet *pkt)
{
	return pkt->icmp_echo &&
	       ((pkt->family == 4 && pkt->proto == IPPROTO_ICMP && pkt->icmp_type == 0) ||
		(pkt->family == 6 && pkt->proto == IPPROTO_ICMPV6 && pkt->icmp_type == 129));
}

/* admit_echo_reply: one reply per request sent out, while fresh. */
static __always_inline bool admit_echo_reply(const struct packet *pkt, __u32 ifindex,
					     const struct config *cfg)
{
	struct icmp_key k = {};
	struct icmp_state *st;
	bool fresh;

	if (!echo_reply(pkt))
		return false;
	echo_key(pkt, ifindex, false, &k);
	st = bpf_map_lookup_elem(&icmp_echo_map, &k);
	if (!st)
		return false;
	fresh = bpf_ktime_get_ns() - st->tstamp <= cfg->icmp_echo_ns;
	bpf_map_delete_elem(&icmp_echo_map, &k);
	return fresh;
}

#endif /* ZFW_SESSIONS_H */
