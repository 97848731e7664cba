/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h: Ethernet (two VLAN tags at most), IPv4, IPv6 with its
 * extension headers, TCP, UDP and the ICMP type, into struct packet.
 */
#ifndef ZFW_PARSE_H
#define ZFW_PARSE_H

#include "packet.h"

/* parse_l4 reads ports (and TCP flags) at off. A first fragment carries
 * the L4 header too; the caller decides what a fragment may do. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct packet *pkt, __u32 off, __u32 l4_len,
				    bool fragment)
{
	pkt->l4_off = off;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (off > MAX_L4_OFFSET)
		return PARSE_MALFORMED;

	if (pkt->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + off;

		if ((void *)(th + 1) > data_end || l4_len < sizeof(*th))
			return PARSE_MALFORMED;
		if (th->doff < 5)
			return PARSE_MALFORMED;
		pkt->sport = th->source;
		pkt->dport = th->dest;
		pkt->tcp_flags = ((__u8 *)th)[13];
		pkt->seq = bpf_ntohl(th->seq);
		pkt->ack_seq = bpf_ntohl(th->ack_seq);
		if (l4_len < th->doff * 4U)
			return PARSE_MALFORMED;
		pkt->payload_len = l4_len - th->doff * 4U;
	} else {
		struct udphdr *uh = data + off;

		if ((void *)(uh + 1) > data_end || l4_len < sizeof(*uh))
			return PARSE_MALFORMED;
		/* The UDP length covers the whole datagram, not one fragment. */
		if (!fragment && bpf_ntohs(uh->len) < sizeof(*uh))
			return PARSE_MALFORMED;
		pkt->sport = uh->source;
		pkt->dport = uh->dest;
	}
	if (pkt->dport == 0)
		return PARSE_MALFORMED;
	return fragment ? PARSE_FRAGMENT : PARSE_TUPLE;
}

/* peek_icmp reads the type of an ICMP or ICMPv6 header at off, and the
 * id and sequence of an echo. ICMP is rare enough for a helper copy. */
static __always_inline void peek_icmp_type(struct __sk_buff *skb, struct packet *pkt, __u32 off)
{
	__u8 h[8];

	if (off > MAX_L4_OFFSET)
		return;
	if (bpf_skb_load_bytes(skb, off, h, 1) < 0)
		return;
	pkt->icmp_type = h[0];
	pkt->l4_off = off;
	if (h[0] != 8 && h[0] != 0 && h[0] != 128 && h[0] != 129)
		return;
	if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) < 0)
		return;
	pkt->icmp_echo = 1;
	pkt->l4_off = off;
	__builtin_memcpy(&pkt->icmp_id, h + 4, 2);
	__builtin_memcpy(&pkt->icmp_seq, h + 6, 2);
	/* For masquerade an echo's id plays the part of a port: the
	 * requester's source port, the replier's destination port. */
	if (h[0] == 8 || h[0] == 128)
		pkt->sport = pkt->icmp_id;
	else
		pkt->dport = pkt->icmp_id;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct packet *pkt, __u32 off)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + off;
	__u32 hlen, tot;
	__u16 frag;

	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (tot < hlen)
		return PARSE_MALFORMED;

	pkt->family = 4;
	pkt->proto = ip->protocol;
	pkt->saddr[0] = ip->saddr;
	pkt->daddr[0] = ip->daddr;

	frag = bpf_ntohs(ip->frag_off);
	if (pkt->proto != IPPROTO_TCP && pkt->proto != IPPROTO_UDP) {
		if (pkt->proto == IPPROTO_ICMP && !(frag & IP_OFFSET))
			peek_icmp_type(skb, pkt, off + hlen);
		return PARSE_OTHER;
	}

	if (frag & IP_OFFSET)
		return PARSE_FRAGMENT; /* no L4 header in this packet */
	return parse_l4(skb, pkt, off + hlen, tot - hlen, frag & IP_MF);
}

/* ipv6_ext_hdr: the extension headers parse_ipv6 walks past. */
static __always_inline bool ipv6_ext_hdr(__u8 next)
{
	return next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
	       next == IPPROTO_FRAGMENT || next == IPPROTO_AH;
}

/* ext_walk carries the walk over IPv6 extension headers through bpf_loop. */
struct ext_walk {
	struct __sk_buff *skb;
	__u32 off;     /* the header at hand */
	__u8 next;     /* its type */
	__u8 fragment; /* behind a fragment header (not an atomic one) */
	__u8 done;     /* PARSE_* + 1 when the walk decided the packet */
	__u8 pad;
};

/*
 * ext_step is the bpf_loop body: it steps over one extension header. A
 * loop body is verified once; unrolled, or as a bounded loop, the walk
 * cost the verifier every combination of header kinds over eight headers,
 * most of the ingress program's budget.
 */
static long ext_step(__u32 i, void *arg)
{
	struct ext_walk *w = arg;
	void *data = (void *)(long)w->skb->data;
	void *data_end = (void *)(long)w->skb->data_end;
	__u32 off = w->off;
	__u8 *hdr;

	if (!ipv6_ext_hdr(w->next))
		return 1;
	if (off > MAX_L4_OFFSET) {
		w->done = PARSE_MALFORMED + 1;
		return 1;
	}
	hdr = data + off;
	if ((void *)(hdr + 8) > data_end) {
		w->done = PARSE_MALFORMED + 1;
		return 1;
	}
	if (w->next == IPPROTO_FRAGMENT) {
		__u16 fo = bpf_ntohs(*(__u16 *)(hdr + 2));

		w->next = hdr[0];
		w->off = off + 8;
		w->fragment = 1;
		if (fo & IPV6_FRAG_OFFSET_MASK) {
			/* Later fragment: what follows is payload. */
			w->done = (w->next == IPPROTO_TCP || w->next == IPPROTO_UDP ? PARSE_FRAGMENT
										    : PARSE_OTHER) +
				  1;
			return 1;
		}
		if (!(fo & IPV6_FRAG_MORE))
			w->fragment = 0; /* atomic fragment (RFC 6946) */
	} else if (w->next == IPPROTO_AH) {
		w->next = hdr[0];
		w->off = off + ((__u32)hdr[1] + 2) * 4;
	} else {
		w->next = hdr[0];
		w->off = off + ((__u32)hdr[1] + 1) * 8;
	}
	return 0;
}

/* parse_ipv6 walks at most ZFW_MAX_IPV6_EXT_HDRS extension headers. */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct packet *pkt, __u32 off)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + off;
	__u32 payload, end;
	struct ext_walk w = {};
	bool fragment;
	__u8 next;

	if ((void *)(ip6 + 1) > data_end)
		return PARSE_MALFORMED;
	if (ip6->version != 6)
		return PARSE_MALFORMED;

	pkt->family = 6;
	__builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
	__builtin_memcpy(pkt->daddr, &ip6->daddr, 16);
	payload = bpf_ntohs(ip6->payload_len);
	off += sizeof(*ip6);
	end = off + payload;
	next = ip6->nexthdr;

	/* Most packets carry TCP or UDP right after the fixed header. */
	if (next == IPPROTO_TCP || next == IPPROTO_UDP) {
		pkt->proto = next;
		return parse_l4(skb, pkt, off, payload, false);
	}
	w.skb = skb;
	w.off = off;
	w.next = next;
	bpf_loop(ZFW_MAX_IPV6_EXT_HDRS, ext_step, &w, 0);
	next = w.next;
	off = w.off;
	fragment = w.fragment;
	if (w.done) {
		if (w.done == PARSE_MALFORMED + 1)
			return PARSE_MALFORMED;
		pkt->proto = next;
		return w.done - 1;
	}
	if (ipv6_ext_hdr(next))
		return PARSE_MALFORMED; /* chain longer than we walk */

	pkt->proto = next;
	if (next != IPPROTO_TCP && next != IPPROTO_UDP) {
		if (next == IPPROTO_ICMPV6 && !fragment)
			peek_icmp_type(skb, pkt, off);
		return PARSE_OTHER;
	}
	if (off > end)
		return PARSE_MALFORMED;
	return parse_l4(skb, pkt, off, end - off, fragment);
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return PARSE_MALFORMED;
	proto = eth->h_proto;

#pragma unroll
	for (i = 0; i < 2; i++) {
		struct vlan_tag *tag;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		tag = data + off;
		if ((void *)(tag + 1) > data_end)
			return PARSE_MALFORMED;
		proto = tag->encap_proto;
		off += sizeof(*tag);
	}

	pkt->ethertype = proto;
	pkt->l3_off = off;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, pkt, off);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, pkt, off);
	return PARSE_NOT_IP;
}

#endif /* ZFW_PARSE_H */
