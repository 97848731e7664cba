/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * steer.h: delivery of intercepted flows to the tunneler's listener.
 */
#ifndef ZFW_STEER_H
#define ZFW_STEER_H

#include "events.h"
#include "tw_note.h"

/* sock_tuple fills t for a socket lookup in family and returns the
 * length of its part of the union. */
static __always_inline __u32 sock_tuple(struct bpf_sock_tuple *t, __u8 family, const __u32 *saddr,
					const __u32 *daddr, __u16 sport, __u16 dport)
{
	if (family == 4) {
		t->ipv4.saddr = saddr[0];
		t->ipv4.daddr = daddr[0];
		t->ipv4.sport = sport;
		t->ipv4.dport = dport;
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, saddr, 16);
	__builtin_memcpy(t->ipv6.daddr, daddr, 16);
	t->ipv6.sport = sport;
	t->ipv6.dport = dport;
	return sizeof(t->ipv6);
}

/*
 * tuple_owner returns the state (BPF_TCP_*) of the socket that holds the
 * packet's tuple in this namespace, or -1 if none does. With no socket on
 * the tuple the lookup falls back to a listener on the packet's
 * destination, which holds nothing: callers treat BPF_TCP_LISTEN as no
 * owner. t is scratch space.
 */
static __always_inline int tuple_owner(struct __sk_buff *skb, const struct packet *pkt,
				       struct bpf_sock_tuple *t)
{
	__u32 tlen = sock_tuple(t, pkt->family, pkt->saddr, pkt->daddr, pkt->sport, pkt->dport);
	struct bpf_sock *sk;
	int state;

	sk = (struct bpf_sock *)bpf_skc_lookup_tcp(skb, t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return -1;
	state = sk->state;
	bpf_sk_release(sk);
	return state;
}

/*
 * tuple_in_use: is the SYN's own tuple held by a socket of an earlier
 * connection? Most often that is the tunneler's side in TIME_WAIT after it
 * closed first, and the client reuses its port. Assigned to the listener,
 * such a SYN would be dropped by the kernel as a duplicate of that socket
 * for as long as it lives (a minute, for TIME_WAIT). Left to the kernel's
 * own lookup, the old socket takes it: in TIME_WAIT it lets itself go for
 * a SYN that may open a new connection and looks up a listener on the
 * SYN's destination, where zfw_sk_lookup hands it the tunneler's
 * (remember_tw_steer). Otherwise the old socket answers with an ACK, the
 * client resets it and its next SYN reaches the listener. A retransmitted
 * SYN finds the request socket its first copy made, which answers it as
 * it should. t is scratch space.
 */
static __always_inline bool tuple_in_use(struct __sk_buff *skb, const struct packet *pkt,
					 struct bpf_sock_tuple *t)
{
	int state = tuple_owner(skb, pkt, t);

	return state >= 0 && state != BPF_TCP_LISTEN;
}

/*
 * held_by_connection: does a live connection of this host hold the TCP
 * segment's tuple? A connection steered under earlier rules is one: its
 * accepted socket lives on in the tunneler until it closes, so its
 * segments must still be delivered to it (marked) after the intercept
 * changed or went. The kernel's socket table is the record of which
 * connections were steered, so no map remembers them per flow, and a new
 * flow costs no insert. A socket in TIME_WAIT is over: a new connection
 * reusing the tuple follows its own rules.
 */
static __always_inline bool held_by_connection(struct __sk_buff *skb, const struct packet *pkt)
{
	struct bpf_sock_tuple t = {};
	int state = tuple_owner(skb, pkt, &t);

	return state >= 0 && state != BPF_TCP_LISTEN && state != BPF_TCP_TIME_WAIT;
}

/*
 * remember_tw_steer notes the listener of a SYN left to an old socket of
 * its tuple. The kernel gives such a SYN to the old socket; when that is
 * in TIME_WAIT and the SYN may open a new connection, the kernel lets the
 * old socket go and looks up a listener on the SYN's destination, which
 * runs zfw_sk_lookup, which finds the note. Without it no listener is on
 * that address, the old socket answers with an ACK, and the client must
 * reset it and send its SYN again.
 */
static __always_inline void remember_tw_steer(const struct packet *pkt, __u16 tproxy_port, __u32 generation)
{
	struct tw_key k = {
		.sport = bpf_ntohs(pkt->sport),
		.dport = bpf_ntohs(pkt->dport),
		.family = pkt->family,
	};

	__builtin_memcpy(k.saddr, pkt->saddr, 16);
	__builtin_memcpy(k.daddr, pkt->daddr, 16);
	tw_note_put(&k, tproxy_port, generation);
}

/*
 * steer marks the packet so the fwmark rule routes it to local delivery,
 * and for the first packet of a flow assigns it to its listener: the
 * socket userspace handed over for the rule's port, protocol and family
 * (listener_map), and no other, so that a process that binds the port
 * while the tunneler is down receives nothing (the packet is dropped and
 * counted as without a listener). Later TCP segments need no lookup:
 * once marked, the kernel finds the accepted socket by its 4-tuple.
 */
ZFW_STAGE int steer(struct __sk_buff *skb, const struct packet *pkt, const struct verdict *v,
		    const struct config *cfg, __u32 iface_flags)
{
	struct bpf_sock_tuple t = {};
	struct listener_key lk = {};
	struct bpf_sock *sk;
	long err;

	if (!pkt || !v || !cfg)
		return TC_ACT_SHOT;
	skb->mark = cfg->mark;
	if (pkt->proto == IPPROTO_TCP && !opens_connection(pkt)) {
		count(ZFW_STAT_TPROXY);
		return TC_ACT_OK;
	}
	if (pkt->proto == IPPROTO_TCP && tuple_in_use(skb, pkt, &t)) {
		count(ZFW_STAT_TUPLE_IN_USE);
		remember_tw_steer(pkt, v->tproxy_port, cfg->generation);
		return TC_ACT_OK; /* marked: the kernel finds the old socket */
	}
	lk.port = v->tproxy_port;
	lk.family = pkt->family;
	lk.proto = pkt->proto;
	sk = bpf_map_lookup_elem(&listener_map, &lk);
	if (!sk) {
		count(ZFW_STAT_NO_LISTENER);
		return drop(skb, pkt, iface_flags, ZFW_REASON_NO_LISTENER, v);
	}
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		count(ZFW_STAT_ASSIGN_FAILED);
		return drop(skb, pkt, iface_flags, ZFW_REASON_ASSIGN_FAILED, v);
	}
	count(ZFW_STAT_TPROXY);
	if (iface_flags & ZFW_IFACE_VERBOSE)
		emit(skb, pkt, ZFW_EVENT_STEER, 0, v);
	return TC_ACT_OK;
}

#endif /* ZFW_STEER_H */
