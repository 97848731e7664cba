/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * masquerade.h: source NAT of what leaves a masquerade interface, and the
 * translation back of its replies and of ICMP errors about it.
 */
#ifndef ZFW_MASQUERADE_H
#define ZFW_MASQUERADE_H

#include "maps.h"
#include "steer.h"

/* nat_addr: the interface's first address of the packet's family (the
 * control plane lists global IPv6 addresses before link-local ones). */
static __always_inline bool nat_addr(__u32 ifindex, __u8 family, __u32 *out)
{
	if (family == 4) {
		struct iface_addrs4 *a = bpf_map_lookup_elem(&ifindex_ip_map, &ifindex);

		if (!a || a->count == 0)
			return false;
		out[0] = a->addr[0];
		return true;
	}
	struct iface_addrs6 *a6 = bpf_map_lookup_elem(&ifindex_ip6_map, &ifindex);

	if (!a6 || a6->count == 0)
		return false;
	__builtin_memcpy(out, a6->addr[0], 16);
	return true;
}

static __always_inline bool same_addr(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/*
 * rewrite replaces the packet's source (or destination) address and port,
 * fixing the IPv4 header checksum and the TCP/UDP checksum: the address
 * is part of the pseudo header, the port is not. A UDP checksum of zero
 * (none, IPv4) stays zero.
 */
static __always_inline int rewrite(struct __sk_buff *skb, struct packet *pkt, bool source, const __u32 *addr,
				   __u16 port)
{
	bool icmp = pkt->proto == IPPROTO_ICMP || pkt->proto == IPPROTO_ICMPV6;
	/* An echo's id (at +4) stands for the port; ICMP's checksum is at +2
	 * and, for IPv4 only, covers no pseudo header. */
	__u32 addr_off, port_off = pkt->l4_off + (icmp ? 4 : (source ? 0 : 2));
	__u32 csum_off = pkt->l4_off + (icmp ? 2 : (pkt->proto == IPPROTO_TCP ? 16 : 6));
	__u64 mangle = pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 *old = source ? pkt->saddr : pkt->daddr;
	__u16 *old_port = source ? &pkt->sport : &pkt->dport;
	__u32 new_addr[4];

	__builtin_memcpy(new_addr, addr, 16);
	if (pkt->family == 4) {
		addr_off = pkt->l3_off + (source ? 12 : 16);
		if (old[0] != new_addr[0]) {
			if ((!icmp && bpf_l4_csum_replace(skb, csum_off, old[0], new_addr[0],
							  BPF_F_PSEUDO_HDR | mangle | 4)) ||
			    bpf_l3_csum_replace(skb, pkt->l3_off + 10, old[0], new_addr[0], 4) ||
			    bpf_skb_store_bytes(skb, addr_off, new_addr, 4, 0))
				return -1;
			old[0] = new_addr[0];
		}
	} else {
		addr_off = pkt->l3_off + (source ? 8 : 24);
		if (!same_addr(old, new_addr)) {
			__s64 diff = bpf_csum_diff(old, 16, new_addr, 16, 0);

			if (diff < 0 ||
			    bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangle) ||
			    bpf_skb_store_bytes(skb, addr_off, new_addr, 16, 0))
				return -1;
			__builtin_memcpy(old, new_addr, 16);
		}
	}
	if (*old_port != port) {
		if (bpf_l4_csum_replace(skb, csum_off, *old_port, port, mangle | 2) ||
		    bpf_skb_store_bytes(skb, port_off, &port, 2, 0))
			return -1;
		*old_port = port;
		if (icmp)
			pkt->icmp_id = port;
	}
	return 0;
}

/* masq_map: echo translations live in icmp_masquerade_map, TCP and UDP
 * ones in masquerade_map; both use masq_key, the echo id as the port. */
static __always_inline void *masq_map(const struct packet *pkt)
{
	if (pkt->proto == IPPROTO_ICMP || pkt->proto == IPPROTO_ICMPV6)
		return &icmp_masquerade_map;
	return &masquerade_map;
}

/*
 * host_owns_reply reports whether a socket of this host would take the
 * replies of the flow if it left as nat:tport: one connected to the
 * remote end from that port, or bound to it (a listener, a UDP socket).
 * Translating onto such a port would hand the host's own traffic to the
 * client. Echo ids are not checked (no helper finds ping sockets).
 */
static __always_inline bool host_owns_reply(struct __sk_buff *skb, const struct packet *pkt, const __u32 *nat,
					    __u16 tport)
{
	struct bpf_sock_tuple t = {};
	__u32 len = sock_tuple(&t, pkt->family, pkt->daddr, nat, pkt->dport, tport);
	struct bpf_sock *sk;
	/* Separate paths: the verifier tracks the two socket types apart. */
	if (pkt->proto == IPPROTO_TCP) {
		sk = (struct bpf_sock *)bpf_skc_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return false;
		bpf_sk_release(sk);
		return true;
	}
	if (pkt->proto == IPPROTO_UDP) {
		sk = bpf_sk_lookup_udp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return false;
		bpf_sk_release(sk);
		return true;
	}
	return false;
}

/* masq_port_free: no other translated flow to the same remote end, and no
 * socket of the host, holds k->tport. */
static __always_inline bool masq_port_free(struct __sk_buff *skb, const struct packet *pkt, const __u32 *nat,
					   struct masq_key *k)
{
	return !bpf_map_lookup_elem(masq_map(pkt), k) && !host_owns_reply(skb, pkt, nat, k->tport);
}

/*
 * masq_port picks the translated source port of a new flow: its own port
 * if it is free, else a random free one. Returns 0 when none was found.
 */
static __always_inline __u16 masq_port(struct __sk_buff *skb, const struct packet *pkt, const __u32 *nat,
				       struct masq_key *k)
{
	int i;

	k->tport = pkt->sport;
	if (masq_port_free(skb, pkt, nat, k))
		return k->tport;
#pragma unroll
	for (i = 0; i < ZFW_MASQ_PORT_TRIES; i++) {
		k->tport = bpf_htons(1024 + bpf_get_prandom_u32() % (65536 - 1024));
		if (masq_port_free(skb, pkt, nat, k))
			return k->tport;
	}
	return 0;
}

/* masquerade_out translates a flow leaving a masquerade interface. The
 * host's own traffic (already from the interface address) is left alone.
 * Returns -1 to drop. */
ZFW_STAGE int masquerade_out(struct __sk_buff *skb, struct packet *pkt, __u32 ifindex)
{
	struct masq_reverse_key rk = {};
	struct masq_reverse_value *rv;
	struct masq_key k = {};
	__u32 nat[4] = {};
	__u64 now = bpf_ktime_get_ns();
	__u16 tport;

	if (!pkt || !nat_addr(ifindex, pkt->family, nat) || same_addr(nat, pkt->saddr))
		return 0;
	rk.ifindex = ifindex;
	__builtin_memcpy(rk.origin, pkt->saddr, 16);
	__builtin_memcpy(rk.remote, pkt->daddr, 16);
	rk.oport = pkt->sport;
	rk.rport = pkt->dport;
	rk.proto = pkt->proto;
	rk.family = pkt->family;

	k.ifindex = ifindex;
	__builtin_memcpy(k.remote, pkt->daddr, 16);
	k.rport = pkt->dport;
	k.proto = pkt->proto;
	k.family = pkt->family;

	rv = bpf_map_lookup_elem(&masquerade_reverse_map, &rk);
	if (rv) {
		struct masq_value *mv;

		tport = rv->tport;
		rv->tstamp = now;
		k.tport = tport;
		mv = bpf_map_lookup_elem(masq_map(pkt), &k);
		if (mv)
			mv->tstamp = now;
	} else {
		struct masq_value mv = { .oport = pkt->sport, .tstamp = now };
		struct masq_reverse_value nrv = { .tstamp = now };

		tport = masq_port(skb, pkt, nat, &k);
		if (!tport) {
			count(ZFW_STAT_MASQ_NO_PORT);
			return -1;
		}
		__builtin_memcpy(mv.origin, pkt->saddr, 16);
		nrv.tport = tport;
		if (bpf_map_update_elem(masq_map(pkt), &k, &mv, BPF_NOEXIST) ||
		    bpf_map_update_elem(&masquerade_reverse_map, &rk, &nrv, BPF_ANY)) {
			count(ZFW_STAT_MASQ_NO_PORT);
			return -1;
		}
	}
	if (rewrite(skb, pkt, true, nat, tport))
		return -1;
	count(ZFW_STAT_MASQUERADED);
	return 0;
}

/* masquerade_in translates a reply to a masqueraded flow back to the
 * inside client, before anything else looks at it. */
ZFW_STAGE int masquerade_in(struct __sk_buff *skb, struct packet *pkt, __u32 ifindex)
{
	struct masq_key k = {};
	struct masq_value *mv;
	__u32 nat[4] = {};

	if (!pkt || !nat_addr(ifindex, pkt->family, nat) || !same_addr(nat, pkt->daddr))
		return 0;
	k.ifindex = ifindex;
	__builtin_memcpy(k.remote, pkt->saddr, 16);
	k.rport = pkt->sport;
	k.tport = pkt->dport;
	k.proto = pkt->proto;
	k.family = pkt->family;
	mv = bpf_map_lookup_elem(masq_map(pkt), &k);
	if (!mv)
		return 0;
	mv->tstamp = bpf_ktime_get_ns();
	if (rewrite(skb, pkt, false, mv->origin, mv->oport))
		return -1;
	count(ZFW_STAT_UNMASQUERADED);
	return 0;
}

/* icmp_error: an ICMP or ICMPv6 error, which quotes the head of the
 * packet it answers. */
static __always_inline bool icmp_error(const struct packet *pkt)
{
	__u8 t = pkt->icmp_type;

	if (pkt->proto == IPPROTO_ICMP && pkt->family == 4)
		return t == 3 || t == 11 || t == 12;
	return pkt->proto == IPPROTO_ICMPV6 && pkt->family == 6 && t >= 1 && t <= 4;
}

/* quoted is the head of the packet an ICMP error quotes: a datagram this
 * side sent out, translated. */
struct quoted {
	__u32 src[4];
	__u32 dst[4];
	__u32 ip_off; /* its IP header */
	__u32 l4_off; /* its TCP/UDP/ICMP header */
	__u16 port;   /* its source port (echo: id), the translated one */
	__u16 rport;  /* its destination port (echo: 0) */
	__u8 proto;
	__u8 echo;
};

/*
 * icmp_scratch holds the working state of an ICMP error's translation:
 * a per-CPU map value rather than stack, which the ingress program has
 * little of to spare.
 */
struct icmp_scratch {
	struct quoted q;
	struct masq_key k;
	__u32 nat[4];
	__u32 origin[4];
	__u8 ip[40]; /* the quoted IP header, read as bytes */
	__u8 l4[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icmp_scratch);
} icmp_scratch_map SEC(".maps");

/* read_quoted reads the quoted header behind the ICMP header at pkt->l4_off.
 * Returns false unless it is a first fragment of TCP, UDP or an echo
 * request, with at least 8 bytes of its L4 header quoted. */
static __always_inline bool read_quoted(struct __sk_buff *skb, const struct packet *pkt,
					struct icmp_scratch *sc)
{
	struct quoted *q = &sc->q;
	__u8 *l4 = sc->l4;

	q->ip_off = pkt->l4_off + 8;
	if (q->ip_off > MAX_L4_OFFSET)
		return false;
	if (pkt->family == 4) {
		struct iphdr *ip = (struct iphdr *)sc->ip;

		if (bpf_skb_load_bytes(skb, q->ip_off, ip, sizeof(*ip)) < 0 || ip->version != 4 ||
		    ip->ihl < 5 || (bpf_ntohs(ip->frag_off) & IP_OFFSET))
			return false;
		q->src[0] = ip->saddr;
		q->dst[0] = ip->daddr;
		q->proto = ip->protocol;
		q->l4_off = q->ip_off + ip->ihl * 4;
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)sc->ip;

		if (bpf_skb_load_bytes(skb, q->ip_off, ip6, sizeof(*ip6)) < 0 || ip6->version != 6)
			return false;
		__builtin_memcpy(q->src, &ip6->saddr, 16);
		__builtin_memcpy(q->dst, &ip6->daddr, 16);
		q->proto = ip6->nexthdr; /* extension headers are not followed */
		q->l4_off = q->ip_off + sizeof(*ip6);
	}
	if (q->l4_off > MAX_L4_OFFSET || bpf_skb_load_bytes(skb, q->l4_off, l4, 8) < 0)
		return false;
	if (q->proto == IPPROTO_TCP || q->proto == IPPROTO_UDP) {
		__builtin_memcpy(&q->port, l4, 2);
		__builtin_memcpy(&q->rport, l4 + 2, 2);
		return true;
	}
	if ((q->proto == IPPROTO_ICMP && l4[0] == 8) || (q->proto == IPPROTO_ICMPV6 && l4[0] == 128)) {
		q->echo = 1;
		__builtin_memcpy(&q->port, l4 + 4, 2);
		q->rport = 0;
		return true;
	}
	return false;
}

/*
 * masquerade_icmp_error translates an ICMP error about a masqueraded flow
 * back to the inside client: the outer destination, and the quoted
 * packet's source address and port (or echo id), so the client's stack
 * matches the error to its socket. The ICMP checksum covers the quoted
 * bytes and is updated for each change; so is the quoted IPv4 header's
 * own checksum. The quoted TCP/UDP checksum is left as it is: it covers a
 * datagram the error usually truncates, and no stack verifies it.
 * Returns -1 to drop.
 */
ZFW_STAGE int masquerade_icmp_error(struct __sk_buff *skb, struct packet *pkt, __u32 ifindex)
{
	__u32 csum_off, zero = 0;
	struct icmp_scratch *sc = bpf_map_lookup_elem(&icmp_scratch_map, &zero);
	struct masq_value *mv;
	__u32 *nat, *origin;
	__u16 oport;

	if (!pkt || !sc)
		return 0;
	csum_off = pkt->l4_off + 2;
	__builtin_memset(sc, 0, sizeof(*sc));
	nat = sc->nat;
	origin = sc->origin;
	if (!nat_addr(ifindex, pkt->family, nat) || !same_addr(nat, pkt->daddr) ||
	    !read_quoted(skb, pkt, sc) || !same_addr(nat, sc->q.src))
		return 0;
	sc->k.ifindex = ifindex;
	__builtin_memcpy(sc->k.remote, sc->q.dst, 16);
	sc->k.rport = sc->q.rport;
	sc->k.tport = sc->q.port;
	sc->k.proto = sc->q.proto;
	sc->k.family = pkt->family;
	mv = bpf_map_lookup_elem(sc->q.echo ? (void *)&icmp_masquerade_map : (void *)&masquerade_map, &sc->k);
	if (!mv)
		return 0;
	__builtin_memcpy(origin, mv->origin, 16);
	oport = mv->oport;

	/* The quoted source port or echo id. */
	if (bpf_l4_csum_replace(skb, csum_off, sc->q.port, oport, 2) ||
	    bpf_skb_store_bytes(skb, sc->q.l4_off + (sc->q.echo ? 4 : 0), &oport, 2, 0))
		return -1;
	if (pkt->family == 4) {
		__u16 before, after;

		/* The quoted source address, its header checksum, and both
		 * changes in the ICMP checksum; then the outer destination,
		 * which ICMP's checksum does not cover. */
		if (bpf_skb_load_bytes(skb, sc->q.ip_off + 10, &before, 2) < 0 ||
		    bpf_l3_csum_replace(skb, sc->q.ip_off + 10, nat[0], origin[0], 4) ||
		    bpf_skb_store_bytes(skb, sc->q.ip_off + 12, &origin[0], 4, 0) ||
		    bpf_skb_load_bytes(skb, sc->q.ip_off + 10, &after, 2) < 0 ||
		    bpf_l4_csum_replace(skb, csum_off, nat[0], origin[0], 4) ||
		    bpf_l4_csum_replace(skb, csum_off, before, after, 2) ||
		    bpf_l3_csum_replace(skb, pkt->l3_off + 10, nat[0], origin[0], 4) ||
		    bpf_skb_store_bytes(skb, pkt->l3_off + 16, &origin[0], 4, 0))
			return -1;
	} else {
		/* ICMPv6's checksum covers the quoted source address and, in
		 * its pseudo header, the outer destination: the same change
		 * twice. */
		__s64 diff = bpf_csum_diff(nat, 16, origin, 16, 0);

		if (diff < 0 || bpf_skb_store_bytes(skb, sc->q.ip_off + 8, origin, 16, 0) ||
		    bpf_l4_csum_replace(skb, csum_off, 0, diff, 0) ||
		    bpf_skb_store_bytes(skb, pkt->l3_off + 24, origin, 16, 0) ||
		    bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR))
			return -1;
	}
	__builtin_memcpy(pkt->daddr, origin, 16);
	mv->tstamp = bpf_ktime_get_ns();
	count(ZFW_STAT_UNMASQUERADED);
	return 0;
}

#endif /* ZFW_MASQUERADE_H */
