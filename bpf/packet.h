/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * packet.h: what every stage shares: the parsed packet, a verdict, the
 * statistics counter, and the TCP and IP constants the stages test.
 */
#ifndef ZFW_PACKET_H
#define ZFW_PACKET_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "zfw.h"

/* TCX return codes; TC_ACT_OK/SHOT keep their clsact meaning. */
#define ZFW_NEXT TC_ACT_UNSPEC

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPV6_FRAG_OFFSET_MASK 0xfff8
#define IPV6_FRAG_MORE 0x0001

/* Furthest header offset the parser accepts: L2 (with two VLAN tags), a
 * 60-byte IPv4 header or IPv6 plus its extension chain. */
#define MAX_L4_OFFSET 1024

/*
 * ZFW_STAGE marks a global function. The verifier checks a global function
 * once, on its own, with its arguments as unknown as any caller could pass
 * them (a pointer may be NULL, a scalar any value), instead of again on
 * every path of the program that reaches it, as it does with inlined and
 * static code. So a program costs the verifier the sum of its stages, not
 * the product of their branches, on any kernel build; each stage costs one
 * call at run time. Every stage checks its pointers before use.
 */
#define ZFW_STAGE __noinline

/* A stage's answer when the packet is not settled yet and the next stage
 * decides (not a TC return code). */
#define ZFW_GO_ON 0x1000

enum parse_result {
	PARSE_TUPLE,    /* TCP/UDP with ports                     */
	PARSE_FRAGMENT, /* TCP/UDP fragment: ports not trustworthy */
	PARSE_OTHER,    /* IP, another protocol                    */
	PARSE_NOT_IP,
	PARSE_MALFORMED,
};

/* struct packet is what parse.h read of a packet, once, for every stage:
 * addresses as on the wire (v4 in word 0), ports in wire order. */
struct packet {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport; /* wire order */
	__u16 dport; /* wire order */
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 tcp_flags;
	__u8 icmp_type; /* ICMP and ICMPv6 */
	__u8 icmp_echo; /* an echo request or reply: id and seq below */
	__u16 icmp_id;  /* wire order */
	__u16 icmp_seq; /* wire order */
	__be16 ethertype;
	__u16 payload_len; /* TCP payload bytes */
	__u16 l3_off;      /* IP header offset  */
	__u8 egress;       /* seen by the egress program */
	__u16 l4_off;      /* TCP/UDP/ICMP header offset */
	__u32 seq;         /* TCP, host order */
	__u32 ack_seq;     /* TCP, host order */
};

struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* What the rules (or a session) decided for a packet. */
struct verdict {
	__u32 rule_id;
	__u16 tproxy_port;
	__u8 action;
	/* A connection steered before a rule change, kept by its socket
	 * (rule_verdict): it opens no session (ingress_apply). */
	__u8 known;
};

/* opens_connection: a TCP SYN without ACK, the first packet of a flow. */
static __always_inline bool opens_connection(const struct packet *pkt)
{
	return pkt->proto == IPPROTO_TCP && (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/*
 * record_verdict leaves the decision in skb->cb, the scratch space TC
 * programs own (the IP layer clears it before use): tests read it back
 * from BPF_PROG_TEST_RUN's context, at the cost of two stores.
 */
static __always_inline void record_verdict(struct __sk_buff *skb, const struct verdict *v)
{
	skb->cb[0] = v->rule_id;
	skb->cb[1] = (__u32)v->action | ((__u32)v->tproxy_port << 16);
}

#endif /* ZFW_PACKET_H */
