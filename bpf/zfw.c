// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * zfw ingress: one TC (TCX) program that parses a packet once, answers from
 * the per-flow verdict cache when it can, otherwise looks the packet up in
 * the rule tables, and then passes, drops or steers it to a transparent
 * listener. Stages are small static functions in packet order.
 */
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

char __license[] SEC("license") = "Dual BSD/GPL";

/* TCX return codes; TC_ACT_OK/SHOT keep their clsact meaning. */
#define ZFW_NEXT TC_ACT_UNSPEC

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPV6_FRAG_OFFSET_MASK 0xfff8
#define IPV6_FRAG_MORE 0x0001

/* Furthest header offset the parser accepts: L2 (with two VLAN tags), a
 * 60-byte IPv4 header or IPv6 plus its extension chain. */
#define MAX_L4_OFFSET 1024

/* ---- maps ---------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct iface_settings);
} diag_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct iface_addrs4);
} ifindex_ip_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct iface_addrs6);
} ifindex_ip6_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_key);
	__type(value, struct prefix_value);
} zt_tproxy_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix6_key);
	__type(value, struct prefix_value);
} zt_tproxy6_map SEC(".maps");

/* Egress rules: the same layout as the ingress rule tables. Their rule
 * blocks share range_map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_key);
	__type(value, struct prefix_value);
} zt_egress_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix6_key);
	__type(value, struct prefix_value);
} zt_egress6_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct prefix_lens);
} prefix_len_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ZFW_MAX_RULES);
	__type(key, __u32);
	__type(value, struct range_entry);
} range_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct if_list);
} if_list_extension_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tproxy_ext_key);
	__type(value, struct service_id);
} tproxy_extension_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZFW_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct rule_record);
} rule_store_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct match_key);
	__type(value, struct match_value);
} matched_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct match6_key);
	__type(value, struct match_value);
} matched6_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ZFW_FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_entry);
} flow_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct tuple_key);
	__type(value, struct tcp_state);
} tcp_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct tuple_key);
	__type(value, struct udp_state);
} udp_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct tuple_key);
	__type(value, struct inbound_state);
} tcp_ingress_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct tuple_key);
	__type(value, struct inbound_state);
} udp_ingress_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MASQ_ENTRIES);
	__type(key, struct masq_key);
	__type(value, struct masq_value);
} masquerade_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct masq_key);
	__type(value, struct masq_value);
} icmp_masquerade_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MASQ_ENTRIES);
	__type(key, struct masq_reverse_key);
	__type(value, struct masq_reverse_value);
} masquerade_reverse_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_MATCH_CACHE);
	__type(key, struct icmp_key);
	__type(value, struct icmp_state);
} icmp_echo_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ZFW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_budget);
} event_budget_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct addr_key);
	__type(value, struct syn_count);
} syn_count_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct addr_key);
	__type(value, struct ban);
} ddos_saddr_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16); /* host order */
	__type(value, __u8);
} ddos_dport_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u8);
	__type(value, __u8);
} dnp3_fcode_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 100000);
	__type(key, struct modbus_key);
	__type(value, __u64);
} modbus_state_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tun_config);
} ifindex_tun_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10000);
	__type(key, struct tun_key);
	__type(value, struct tun_state);
} tun_map SEC(".maps");

/* rule_hits_map: per-CPU count of decisions each rule made, by rule id.
 * The control plane removes a rule's entry with the rule. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, ZFW_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
} rule_hits_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rb_map SEC(".maps");

/*
* The enums and the event of zfw.h reach Go only if BTF describes them, and clang emits
 * an enum's BTF only where a type uses it: this read-only anchor does.
 */
struct enum_anchor {
	enum action action;
	enum iface_flag iface_flag;
	enum range_flag range_flag;
	enum stat stat;
	enum reason reason;
	enum rule_kind rule_kind;
	enum tcp_flag tcp_flag;
	enum event_kind event_kind;
	enum event_version event_version;
	enum track track;
	enum flow_kind flow_kind;
	enum flow_limits flow_limits;
	struct event event;
};
const volatile struct enum_anchor zfw_enums;

/* ---- packet model -------------------------------------------------- */

enum parse_result {
	PARSE_TUPLE,     /* TCP/UDP with ports                     */
	PARSE_FRAGMENT,  /* TCP/UDP fragment: ports not trustworthy */
	PARSE_OTHER,     /* IP, another protocol                    */
	PARSE_NOT_IP,
	PARSE_MALFORMED,
};

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

static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&stats_map, &stat);

	if (v)
		*v += 1; /* per-CPU slot: no atomic needed */
}

/* ---- parse --------------------------------------------------------- */

/* parse_l4 reads ports (and TCP flags) at off. A first fragment carries
 * the L4 header too; the caller decides what a fragment may do. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct packet *pkt,
				    __u32 off, __u32 l4_len, bool fragment)
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

/* parse_ipv6 walks at most ZFW_MAX_IPV6_EXT_HDRS extension headers. */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct packet *pkt, __u32 off)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + off;
	__u32 payload, end;
	bool fragment = false;
	__u8 next;
	int i;

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
	for (i = 0; i < ZFW_MAX_IPV6_EXT_HDRS; i++) {
		__u8 *hdr;

		if (!ipv6_ext_hdr(next))
			break;
		if (off > MAX_L4_OFFSET)
			return PARSE_MALFORMED;
		hdr = data + off;
		if ((void *)(hdr + 8) > data_end)
			return PARSE_MALFORMED;
		if (next == IPPROTO_FRAGMENT) {
			__u16 fo = bpf_ntohs(*(__u16 *)(hdr + 2));

			next = hdr[0];
			off += 8;
			fragment = true;
			if (fo & IPV6_FRAG_OFFSET_MASK) {
				/* Later fragment: what follows is payload. */
				pkt->proto = next;
				if (next != IPPROTO_TCP && next != IPPROTO_UDP)
					return PARSE_OTHER;
				return PARSE_FRAGMENT;
			}
			if (!(fo & IPV6_FRAG_MORE))
				fragment = false; /* atomic fragment (RFC 6946) */
		} else if (next == IPPROTO_AH) {
			next = hdr[0];
			off += ((__u32)hdr[1] + 2) * 4;
		} else {
			next = hdr[0];
			off += ((__u32)hdr[1] + 1) * 8;
		}
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

/* ---- verdict cache ------------------------------------------------- */

static __always_inline void match_keys(const struct packet *pkt, __u32 ifindex,
				       struct match_key *k4, struct match6_key *k6)
{
	if (pkt->family == 4) {
		k4->saddr = pkt->saddr[0];
		k4->daddr = pkt->daddr[0];
		k4->sport = pkt->sport;
		k4->dport = pkt->dport;
		k4->ifindex = ifindex;
		k4->proto = pkt->proto;
	} else {
		__builtin_memcpy(k6->saddr, pkt->saddr, 16);
		__builtin_memcpy(k6->daddr, pkt->daddr, 16);
		k6->sport = pkt->sport;
		k6->dport = pkt->dport;
		k6->ifindex = ifindex;
		k6->proto = pkt->proto;
	}
}

/* ---- policy -------------------------------------------------------- */

struct verdict {
	__u32 rule_id;
	__u16 tproxy_port;
	__u8 action;
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
	/* out. __u8, not bool: clang assumes a loaded bool is 0 or 1 and
	 * returns it as is, which the verifier cannot prove for a callback. */
	__u8 done;
	__u8 any_block;  /* fragment: a candidate that does not pass   */
	__u8 full_pass;  /* fragment: a pass candidate on every port    */
	struct verdict v;
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

/* scan_range is the bpf_loop body: slot i of the current prefix block. */
static long scan_range(__u32 i, void *arg)
{
	struct scan_ctx *c = arg;
	__u32 slot = c->start + i;
	struct range_entry *e = bpf_map_lookup_elem(&range_map, &slot);

	if (!e)
		return 1;
	if (!c->fragment && (c->dport < e->port_low || c->dport > e->port_high))
		return 0;
	if (!src_matches(e, c->src, c->family))
		return 0;
	if (!iface_allowed(e, c->ifindex, c->iface_flags))
		return 0;
	if (c->fragment) {
		/* Port unknown: every candidate counts. Keep scanning. */
		if (e->action != ZFW_ACTION_PASS) {
			c->any_block = 1;
			return 1;
		}
		if (e->port_low <= 1 && e->port_high == 65535)
			c->full_pass = 1;
		return 0;
	}
	c->v.rule_id = e->rule_id;
	c->v.action = e->action;
	c->v.tproxy_port = e->tproxy_port;
	c->done = 1;
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
	bpf_loop(pv->count > ZFW_MAX_RANGES_PER_PREFIX ? ZFW_MAX_RANGES_PER_PREFIX : pv->count,
		 scan_range, c, 0);
	return (c->done != 0 || c->any_block != 0) ? 1 : 0;
}

/*
 * policy_lookup walks the prefix lengths in use for (family, proto),
 * longest first; at each length one hash lookup finds the prefix key, and
 * its rules are scanned in precedence order. The first match wins; a
 * prefix whose rules do not match falls through to the next shorter one.
 */
static __always_inline void policy_lookup(const struct packet *pkt, __u32 ifindex,
					  __u32 iface_flags, bool fragment, bool egress,
					  struct scan_ctx *c)
{
	__u32 lkey = ((__u32)egress << 16) | ((__u32)pkt->family << 8) | pkt->proto;
	struct lens_ctx lc = { .scan = c, .proto = pkt->proto, .egress = egress };
	__u32 n;

	__builtin_memcpy(c->src, pkt->saddr, 16);
	c->ifindex = ifindex;
	c->iface_flags = iface_flags;
	c->dport = bpf_ntohs(pkt->dport);
	c->family = pkt->family;
	c->fragment = fragment;
	lc.lens = bpf_map_lookup_elem(&prefix_len_map, &lkey);
	if (!lc.lens)
		return;
	__builtin_memcpy(lc.daddr, pkt->daddr, 16);
	n = lc.lens->count;
	if (n > sizeof(lc.lens->lens))
		n = sizeof(lc.lens->lens);
	bpf_loop(n, try_length, &lc, 0);
}

/* ---- events -------------------------------------------------------- */

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

static __always_inline void emit(struct __sk_buff *skb, const struct packet *pkt, __u8 kind,
				 __u8 reason, const struct verdict *v, __u8 tracking)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config_map, &zero);
	__u64 now = bpf_ktime_get_ns();
	struct event *ev;

	if (!cfg || !event_allowed(cfg, now))
		return;
	ev = bpf_ringbuf_reserve(&rb_map, sizeof(*ev), 0);
	if (!ev) {
		count(ZFW_STAT_EVENTS_LOST);
		return;
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
	ev->reason = reason;
	ev->tracking = tracking;
	if (v) {
		ev->action = v->action;
		ev->rule_id = v->rule_id;
		ev->tproxy_port = v->tproxy_port;
	}
	/* MACs: frames without a 14-byte header leave them zero. */
	bpf_skb_load_bytes(skb, 0, ev->dmac, 6);
	bpf_skb_load_bytes(skb, 6, ev->smac, 6);
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline int drop(struct __sk_buff *skb, const struct packet *pkt, __u32 iface_flags,
				__u8 reason, const struct verdict *v)
{
	if (iface_flags & ZFW_IFACE_VERBOSE)
		emit(skb, pkt, ZFW_EVENT_DROP, reason, v, 0);
	return TC_ACT_SHOT;
}

/* opens_connection: a TCP SYN without ACK, the first packet of a flow. */
static __always_inline bool opens_connection(const struct packet *pkt)
{
	return pkt->proto == IPPROTO_TCP &&
	       (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
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

/* ---- steering ------------------------------------------------------ */

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
 * tuple_in_use: is the SYN's own tuple held by a socket of an earlier
 * connection? Most often that is the tunneler's side in TIME_WAIT after it
 * closed first, and the client reuses its port. Assigned to the listener,
 * such a SYN would be dropped by the kernel as a duplicate of that socket
 * for as long as it lives (a minute, for TIME_WAIT). Left to the kernel's
 * own lookup, the old socket answers it, the client resets the old socket
 * and its next SYN reaches the listener. A retransmitted SYN finds the
 * request socket its first copy made, which answers it as it should. t is
 * scratch space.
 */
static __always_inline bool tuple_in_use(struct __sk_buff *skb, const struct packet *pkt,
					 struct bpf_sock_tuple *t)
{
	__u32 tlen = sock_tuple(t, pkt->family, pkt->saddr, pkt->daddr, pkt->sport, pkt->dport);
	struct bpf_sock *sk;
	bool in_use;

	sk = (struct bpf_sock *)bpf_skc_lookup_tcp(skb, t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	/* With no socket on the tuple the lookup falls back to a listener on
	 * the original destination, which holds nothing. */
	in_use = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return in_use;
}

/*
 * steer marks the packet so the fwmark rule routes it to local delivery,
 * and for the first packet of a flow assigns it to the listener at the
 * loopback address of its family. Later TCP segments need no lookup: once
 * marked, the kernel finds the accepted socket by its 4-tuple.
 */
static __always_inline int steer(struct __sk_buff *skb, const struct packet *pkt,
				 const struct verdict *v, __u32 mark, __u32 iface_flags)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 tlen;
	long err;

	skb->mark = mark;
	if (pkt->proto == IPPROTO_TCP && !opens_connection(pkt)) {
		count(ZFW_STAT_TPROXY);
		return TC_ACT_OK;
	}
	if (pkt->proto == IPPROTO_TCP && tuple_in_use(skb, pkt, &t)) {
		count(ZFW_STAT_TUPLE_IN_USE);
		return TC_ACT_OK; /* marked: the kernel finds the old socket */
	}
	__builtin_memset(&t, 0, sizeof(t));

	if (pkt->family == 4) {
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = bpf_htons(v->tproxy_port);
		tlen = sizeof(t.ipv4);
	} else {
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = bpf_htons(v->tproxy_port);
		tlen = sizeof(t.ipv6);
	}
	/* TCP and UDP take separate paths: the verifier tracks the two
	 * lookups' socket types apart. */
	if (pkt->proto == IPPROTO_TCP) {
		sk = (struct bpf_sock *)bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
		if (sk && sk->state != BPF_TCP_LISTEN) {
			bpf_sk_release(sk);
			sk = NULL;
		}
	} else {
		sk = bpf_sk_lookup_udp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	}
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
		emit(skb, pkt, ZFW_EVENT_STEER, 0, v, 0);
	return TC_ACT_OK;
}

/*
 * keeps_steering: a TCP connection that was steered stays steered after a
 * rule change, until it closes. Its accepted socket lives on in the
 * tunneler; only new connections (SYNs) see the new rules.
 */
static __always_inline bool keeps_steering(const struct packet *pkt, const struct match_value *mv)
{
	return mv->action == ZFW_ACTION_TPROXY && pkt->proto == IPPROTO_TCP &&
	       !opens_connection(pkt);
}

/* ---- flow cache (struct flow_entry in zfw.h) ------------------------- */

/*
 * Interfaces whose packets the flow cache may decide: none of the per-packet
 * work of DDoS protection, OT filtering, masquerade, tunnel mode or events
 * can be skipped.
 */
#define ZFW_FLOW_UNCACHED (ZFW_IFACE_DDOS | ZFW_IFACE_OT_FILTERING | ZFW_IFACE_MASQUERADE | \
			   ZFW_IFACE_TUNNEL_MODE | ZFW_IFACE_VERBOSE)

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

static __always_inline bool flow_same(const struct flow_entry *e, const struct packet *pkt,
				      __u32 ifindex, bool reverse)
{
	const __u32 *src = flow_src(pkt, reverse), *dst = flow_dst(pkt, reverse);

	if (e->ifindex != ifindex || e->family != pkt->family || e->proto != pkt->proto ||
	    e->sport != (reverse ? pkt->dport : pkt->sport) ||
	    e->dport != (reverse ? pkt->sport : pkt->dport) ||
	    e->saddr[0] != src[0] || e->daddr[0] != dst[0])
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
		return e;
	case ZFW_FLOW_RULE:
		return e->generation == cfg->generation ? e : NULL;
	default:
		return (__u32)now - e->checked < ZFW_FLOW_RECHECK_JIFFIES ? e : NULL;
	}
}

/* flow_remember caches a verdict the slow path just reached for the
 * packet (seen on ingress), on this CPU. */
static __always_inline void flow_remember(const struct packet *pkt, __u32 ifindex,
					  const struct config *cfg, __u8 kind,
					  const struct verdict *v)
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
static __always_inline void flow_forget(const struct packet *pkt, __u32 ifindex,
					const struct config *cfg, bool reverse)
{
	struct forget_ctx c = {
		.pkt = pkt,
		.ifindex = ifindex,
		.slot = flow_slot(pkt, ifindex, reverse),
		.reverse = reverse,
	};

	bpf_loop(cfg->ncpus < ZFW_MAX_CPUS ? cfg->ncpus : ZFW_MAX_CPUS, forget_on_cpu, &c, 0);
}

/*
 * forget_steering: a SYN that is not steered opens a new connection on a
 * tuple that may have been steered before, as when a client reuses its
 * port after the intercept was removed. The old connection's steering
 * (in matched_map and the flow cache, which keep it until it closes
 * whatever the rules) must not carry over to the new connection's later
 * segments. Only a tuple that was steered pays for the flow cache.
 */
static __always_inline void forget_steering(const struct packet *pkt, __u32 ifindex,
					    const struct config *cfg, const struct match_key *k4,
					    const struct match6_key *k6)
{
	long err = pkt->family == 4 ? bpf_map_delete_elem(&matched_map, k4)
				    : bpf_map_delete_elem(&matched6_map, k6);

	if (!err)
		flow_forget(pkt, ifindex, cfg, false);
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

/* ---- host passthroughs (default-deny interfaces) --------------------- */

#define ETH_P_EAPOL_BE bpf_htons(0x888e)
#define IPPROTO_VRRP 112

/* frame_passes: a frame that is not IP, on a default-deny interface. */
static __always_inline bool frame_passes(const struct packet *pkt, __u32 flags)
{
	if (pkt->ethertype == bpf_htons(ETH_P_ARP))
		return true;
	if (pkt->ethertype == ETH_P_EAPOL_BE)
		return flags & ZFW_IFACE_EAPOL;
	return flags & ZFW_IFACE_PASS_NON_TUPLE;
}

/*
 * other_passes: an IP packet that is neither TCP nor UDP, on a
 * default-deny interface. ICMP errors always pass (path MTU discovery and
 * traceroute keep working; the kernel matches them to their sockets), as
 * does IPv6 neighbour and router discovery.
 */
static __always_inline bool other_passes(const struct packet *pkt, __u32 flags)
{
	__u8 t = pkt->icmp_type;

	if (pkt->proto == IPPROTO_ICMP && pkt->family == 4) {
		if (t == 8 || t == 0) /* echo request, reply */
			return flags & ZFW_IFACE_ICMP_ECHO;
		return t == 3 || t == 11 || t == 12; /* unreachable, time exceeded, parameter problem */
	}
	if (pkt->proto == IPPROTO_ICMPV6 && pkt->family == 6) {
		if (t == 128 || t == 129)
			return flags & ZFW_IFACE_ICMP_ECHO;
		return (t >= 1 && t <= 4) || (t >= 133 && t <= 137);
	}
	if (pkt->proto == IPPROTO_VRRP)
		return flags & ZFW_IFACE_VRRP;
	return flags & ZFW_IFACE_PASS_NON_TUPLE;
}

/* own_address reports whether the packet is addressed to one of the
 * interface's own addresses. */
static __always_inline bool own_address(const struct packet *pkt, __u32 ifindex)
{
	int i;

	if (pkt->family == 4) {
		struct iface_addrs4 *a = bpf_map_lookup_elem(&ifindex_ip_map, &ifindex);

		if (!a)
			return false;
		for (i = 0; i < ZFW_MAX_IFACE_ADDRS; i++)
			if (i < a->count && a->addr[i] == pkt->daddr[0])
				return true;
		return false;
	}
	struct iface_addrs6 *a6 = bpf_map_lookup_elem(&ifindex_ip6_map, &ifindex);

	if (!a6)
		return false;
	for (i = 0; i < ZFW_MAX_IFACE_ADDRS; i++)
		if (i < a6->count && a6->addr[i][0] == pkt->daddr[0] && a6->addr[i][1] == pkt->daddr[1] &&
		    a6->addr[i][2] == pkt->daddr[2] && a6->addr[i][3] == pkt->daddr[3])
			return true;
	return false;
}

/*
 * tuple_passes: a TCP or UDP packet no rule matched, on a default-deny
 * interface. DHCP replies pass, and SSH to the interface's own addresses
 * unless disabled: rules come first, so a deny rule can still close it.
 */
static __always_inline bool tuple_passes(const struct packet *pkt, __u32 flags, __u32 ifindex)
{
	if (pkt->proto == IPPROTO_UDP) {
		if (pkt->family == 4)
			return pkt->sport == bpf_htons(67) && pkt->dport == bpf_htons(68);
		return pkt->sport == bpf_htons(547) && pkt->dport == bpf_htons(546);
	}
	if (pkt->dport == bpf_htons(22) && !(flags & ZFW_IFACE_SSH_DISABLE))
		return own_address(pkt, ifindex);
	return false;
}

/* ---- sessions opened outwards (tcp_map, udp_map) -------------------- */

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
static __always_inline void track_outbound(const struct packet *pkt, __u32 ifindex,
					   const struct config *cfg, __u8 *track)
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
static __always_inline bool admit_reply(const struct packet *pkt, __u32 ifindex,
					const struct config *cfg, __u8 *track, __u8 *steady)
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
	return pkt->icmp_echo && ((pkt->family == 4 && pkt->proto == IPPROTO_ICMP && pkt->icmp_type == 8) ||
				  (pkt->family == 6 && pkt->proto == IPPROTO_ICMPV6 && pkt->icmp_type == 128));
}

static __always_inline bool echo_reply(const struct packet *pkt)
{
	return pkt->icmp_echo && ((pkt->family == 4 && pkt->proto == IPPROTO_ICMP && pkt->icmp_type == 0) ||
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

/* ---- masquerade (masquerade_map, masquerade_reverse_map) ------------ */

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
static __always_inline int rewrite(struct __sk_buff *skb, struct packet *pkt, bool source,
				   const __u32 *addr, __u16 port)
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

			if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangle) ||
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
static __always_inline bool host_owns_reply(struct __sk_buff *skb, const struct packet *pkt,
					    const __u32 *nat, __u16 tport)
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
static __always_inline bool masq_port_free(struct __sk_buff *skb, const struct packet *pkt,
					   const __u32 *nat, struct masq_key *k)
{
	return !bpf_map_lookup_elem(masq_map(pkt), k) && !host_owns_reply(skb, pkt, nat, k->tport);
}

/*
 * masq_port picks the translated source port of a new flow: its own port
 * if it is free, else a random free one. Returns 0 when none was found.
 */
static __always_inline __u16 masq_port(struct __sk_buff *skb, const struct packet *pkt,
				       const __u32 *nat, struct masq_key *k)
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
static __always_inline int masquerade_out(struct __sk_buff *skb, struct packet *pkt, __u32 ifindex)
{
	struct masq_reverse_key rk = {};
	struct masq_reverse_value *rv;
	struct masq_key k = {};
	__u32 nat[4] = {};
	__u64 now = bpf_ktime_get_ns();
	__u16 tport;

	if (!nat_addr(ifindex, pkt->family, nat) || same_addr(nat, pkt->saddr))
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
static __always_inline int masquerade_in(struct __sk_buff *skb, struct packet *pkt, __u32 ifindex)
{
	struct masq_key k = {};
	struct masq_value *mv;
	__u32 nat[4] = {};

	if (!nat_addr(ifindex, pkt->family, nat) || !same_addr(nat, pkt->daddr))
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
	__u32 ip_off;  /* its IP header */
	__u32 l4_off;  /* its TCP/UDP/ICMP header */
	__u16 port;    /* its source port (echo: id), the translated one */
	__u16 rport;   /* its destination port (echo: 0) */
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
 * Out of line: its headers would crowd the ingress program's stack.
 * Returns -1 to drop.
 */
static __noinline int masquerade_icmp_error(struct __sk_buff *skb, struct packet *pkt, __u32 ifindex)
{
	__u32 csum_off = pkt->l4_off + 2, zero = 0;
	struct icmp_scratch *sc = bpf_map_lookup_elem(&icmp_scratch_map, &zero);
	struct masq_value *mv;
	__u32 *nat, *origin;
	__u16 oport;

	if (!sc)
		return 0;
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
	mv = bpf_map_lookup_elem(sc->q.echo ? (void *)&icmp_masquerade_map : (void *)&masquerade_map,
				 &sc->k);
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

/* ---- industrial protocols (DNP3, Modbus/TCP) ---------------------- */

#define DNP3_PORT 20000
#define MODBUS_PORT 502

/* payload_at copies n bytes of TCP payload; false if there are fewer. */
static __always_inline bool payload_at(struct __sk_buff *skb, const struct packet *pkt,
				       void *to, __u32 n)
{
	void *data = (void *)(long)skb->data;
	struct tcphdr *th;
	__u32 off;

	if (pkt->payload_len < n || pkt->l4_off > MAX_L4_OFFSET)
		return false;
	th = data + pkt->l4_off;
	if ((void *)(th + 1) > (void *)(long)skb->data_end)
		return false;
	off = pkt->l4_off + th->doff * 4;
	return bpf_skb_load_bytes(skb, off, to, n) == 0;
}

/*
 * dnp3_check: a DNP3 frame (link start 0x05 0x64) to or from port 20000
 * passes only with an allowed application function code (byte 12: after
 * the 10-byte link header, transport and application control), and a
 * frame from the outstation must not have the link DIR bit set.
 */
static __always_inline __u8 dnp3_check(struct __sk_buff *skb, const struct packet *pkt)
{
	__u8 h[13];
	bool from_outstation = pkt->sport == bpf_htons(DNP3_PORT);

	if (!from_outstation && pkt->dport != bpf_htons(DNP3_PORT))
		return 0;
	if (!payload_at(skb, pkt, h, sizeof(h)) || h[0] != 0x05 || h[1] != 0x64)
		return 0; /* not DNP3 (or no application layer): not ours to judge */
	if (from_outstation && (h[3] & 0x80))
		return ZFW_REASON_DNP3_DIRECTION;
	if (!bpf_map_lookup_elem(&dnp3_fcode_map, &h[12]))
		return ZFW_REASON_DNP3_BLOCKED;
	return 0;
}

/* modbus_key_of builds the key of a request (sent to port 502) or of the
 * request a response (from port 502) answers. */
static __always_inline bool modbus_key_of(struct __sk_buff *skb, const struct packet *pkt, __u32 ifindex,
					  bool request, struct modbus_key *k)
{
	__u8 mbap[8]; /* tid(2) protocol(2) length(2) unit(1) function(1) */

	if (!payload_at(skb, pkt, mbap, sizeof(mbap)) || mbap[2] != 0 || mbap[3] != 0)
		return false; /* protocol id 0 is Modbus */
	k->ifindex = ifindex;
	k->family = pkt->family;
	__builtin_memcpy(&k->tid, mbap, 2);
	k->unit = mbap[6];
	k->fcode = mbap[7] & 0x7f; /* exception responses set 0x80 */
	if (request) {
		__builtin_memcpy(k->master, pkt->saddr, 16);
		__builtin_memcpy(k->slave, pkt->daddr, 16);
		k->master_port = pkt->sport;
	} else {
		__builtin_memcpy(k->master, pkt->daddr, 16);
		__builtin_memcpy(k->slave, pkt->saddr, 16);
		k->master_port = pkt->dport;
	}
	return true;
}

/* modbus_response_ok: a Modbus response must answer an outstanding
 * request, once. */
static __always_inline bool modbus_response_ok(struct __sk_buff *skb, const struct packet *pkt, __u32 ifindex)
{
	struct modbus_key k = {};

	if (pkt->sport != bpf_htons(MODBUS_PORT) || !modbus_key_of(skb, pkt, ifindex, false, &k))
		return true;
	return bpf_map_delete_elem(&modbus_state_map, &k) == 0;
}

/* modbus_request records a request leaving for port 502. */
static __always_inline void modbus_request(struct __sk_buff *skb, const struct packet *pkt, __u32 ifindex)
{
	struct modbus_key k = {};
	__u64 now = bpf_ktime_get_ns();

	if (pkt->dport == bpf_htons(MODBUS_PORT) && modbus_key_of(skb, pkt, ifindex, true, &k))
		bpf_map_update_elem(&modbus_state_map, &k, &now, BPF_ANY);
}

/* ---- tunnel mode (ifindex_tun_map, tun_map, zfw_tun_xdp) --------- */

/*
 * tunnel hands an intercepted packet to the Ziti tun: it records where
 * the reply must go, then redirects the packet to the tun's egress (the
 * kernel drops the Ethernet header for an L3 device), where the tunneler
 * reads it. Without a configured tun it returns -1.
 */
static __always_inline int tunnel(struct __sk_buff *skb, const struct packet *pkt)
{
	__u32 zero = 0;
	struct tun_config *tc = bpf_map_lookup_elem(&ifindex_tun_map, &zero);
	struct tun_key k = {};
	struct tun_state st = { .ifindex = skb->ifindex };

	if (!tc || tc->ifindex == 0)
		return -1;
	__builtin_memcpy(k.src, pkt->daddr, 16);
	__builtin_memcpy(k.dst, pkt->saddr, 16);
	k.sport = pkt->dport;
	k.dport = pkt->sport;
	k.proto = pkt->proto;
	k.family = pkt->family;
	st.tstamp = bpf_ktime_get_ns();
	if (bpf_skb_load_bytes(skb, 0, st.our_mac, 6) || bpf_skb_load_bytes(skb, 6, st.client_mac, 6))
		return -1;
	bpf_map_update_elem(&tun_map, &k, &st, BPF_ANY);
	count(ZFW_STAT_TUNNELED);
	return bpf_redirect(tc->ifindex, 0);
}

/* ---- SYN-flood protection ----------------------------------------- */

static __always_inline void source_key(const struct packet *pkt, struct addr_key *k)
{
	__builtin_memcpy(k->addr, pkt->saddr, 16);
	k->family = pkt->family;
}

/* banned: the packet's source is serving a ban. An ended ban is lifted. */
static __always_inline bool banned(const struct packet *pkt, __u64 now)
{
	struct addr_key k = {};
	struct ban *b;

	source_key(pkt, &k);
	b = bpf_map_lookup_elem(&ddos_saddr_map, &k);
	if (!b)
		return false;
	if (now < b->until)
		return true;
	bpf_map_delete_elem(&ddos_saddr_map, &k);
	return false;
}

/* count_syn counts a SYN to a protected port; returns true when it puts
 * its source over the threshold, which bans the source. */
static __always_inline bool count_syn(const struct packet *pkt, const struct config *cfg, __u64 now)
{
	struct addr_key k = {};
	struct syn_count *sc;
	__u16 port = bpf_ntohs(pkt->dport);

	if (!opens_connection(pkt))
		return false;
	if (cfg->protected_ports && !bpf_map_lookup_elem(&ddos_dport_map, &port))
		return false;
	source_key(pkt, &k);
	sc = bpf_map_lookup_elem(&syn_count_map, &k);
	if (!sc) {
		struct syn_count n = { .window = now, .count = 1 };

		bpf_map_update_elem(&syn_count_map, &k, &n, BPF_ANY);
		return false;
	}
	if (now - sc->window >= 1000000000ULL) {
		sc->window = now;
		sc->count = 0;
	}
	if (++sc->count <= cfg->syn_per_sec)
		return false;
	struct ban b = { .until = now + cfg->ban_ns, .since = now };

	bpf_map_update_elem(&ddos_saddr_map, &k, &b, BPF_ANY);
	bpf_map_delete_elem(&syn_count_map, &k);
	count(ZFW_STAT_BANS);
	return true;
}

/* ---- entry --------------------------------------------------------- */

/*
 * ingress_decide is everything the ingress program does for a packet the
 * flow cache did not settle. Its own function so that its scratch state
 * is set up only on this path, not for every cached packet.
 */
static __always_inline int ingress_decide(struct __sk_buff *skb, struct packet *pkt,
					  const struct config *cfg, int kind)
{
	__u32 ifindex = skb->ifindex;
	struct iface_settings *ifs;
	struct scan_ctx c = {};
	struct match_key k4 = {};
	struct match6_key k6 = {};
	struct match_value *cached = NULL, mv = {};
	struct verdict v = {};
	__u32 flags;

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
	switch (kind) {
	case PARSE_NOT_IP:
		count(ZFW_STAT_NOT_IP);
		if ((flags & ZFW_IFACE_DEFAULT_DENY) && !frame_passes(pkt, flags))
			return drop(skb, pkt, flags, ZFW_REASON_DEFAULT_DENY, NULL);
		return TC_ACT_OK;
	case PARSE_MALFORMED:
		count(ZFW_STAT_MALFORMED);
		return drop(skb, pkt, flags, ZFW_REASON_MALFORMED, NULL);
	case PARSE_OTHER:
		count(ZFW_STAT_OTHER_PROTO);
		if ((flags & ZFW_IFACE_MASQUERADE) && echo_reply(pkt) && masquerade_in(skb, pkt, ifindex))
			return drop(skb, pkt, flags, ZFW_REASON_MALFORMED, NULL);
		if ((flags & ZFW_IFACE_MASQUERADE) && icmp_error(pkt) &&
		    masquerade_icmp_error(skb, pkt, ifindex))
			return drop(skb, pkt, flags, ZFW_REASON_MALFORMED, NULL);
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
		policy_lookup(pkt, ifindex, flags, true, false, &c);
		if (!c.any_block && (c.full_pass || !(flags & ZFW_IFACE_DEFAULT_DENY))) {
			v.action = ZFW_ACTION_PASS;
			record_verdict(skb, &v);
			return TC_ACT_OK;
		}
		v.action = ZFW_ACTION_DENY;
		record_verdict(skb, &v);
		return drop(skb, pkt, flags, ZFW_REASON_FRAGMENT, NULL);
	}

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
		__u64 now = bpf_ktime_get_ns();

		if (count_syn(pkt, cfg, now)) {
			if (flags & ZFW_IFACE_VERBOSE)
				emit(skb, pkt, ZFW_EVENT_BAN, ZFW_REASON_BANNED, NULL, 0);
			count(ZFW_STAT_BANNED);
			return drop(skb, pkt, flags, ZFW_REASON_BANNED, NULL);
		}
	}
	if ((flags & ZFW_IFACE_MASQUERADE) && masquerade_in(skb, pkt, ifindex))
		return drop(skb, pkt, flags, ZFW_REASON_MALFORMED, NULL);
	if (flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)) {
		struct session_result sr = {};
		__u8 track, steady;
		bool fast, reply;

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
		/* Copied out of sr: read from the stack at each use instead,
		 * they cost the verifier some 26,000 more instructions. */
		track = sr.track;
		steady = sr.steady;
		if (fast)
			v = sr.v;
		if (steady && !(flags & ZFW_FLOW_UNCACHED) && session_cacheable(pkt, cfg) &&
		    !(fast && v.action == ZFW_ACTION_TPROXY && pkt->proto == IPPROTO_UDP)) {
			struct verdict pass = { .action = ZFW_ACTION_PASS };

			flow_remember(pkt, ifindex, cfg, fast ? ZFW_FLOW_INBOUND : ZFW_FLOW_REPLY,
				      fast ? &v : &pass);
		}

		if (track && (flags & ZFW_IFACE_VERBOSE))
			emit(skb, pkt, ZFW_EVENT_SESSION, 0, fast ? &v : NULL, track);
		if (fast) {
			count(ZFW_STAT_FAST_PATH);
			record_verdict(skb, &v);
			if (v.action == ZFW_ACTION_TPROXY)
				return steer(skb, pkt, &v, cfg->mark, flags);
			return TC_ACT_OK;
		}
		if (reply) {
			count(ZFW_STAT_REPLY);
			v.action = ZFW_ACTION_PASS;
			record_verdict(skb, &v);
			return TC_ACT_OK;
		}
	}

	/*
	 * Only steered TCP connections are remembered in matched_map: their
	 * later segments skip the rule tables and keep their socket across
	 * rule changes. Any other verdict costs less to recompute than a
	 * cache insert (measured: an LRU insert is most of a new flow).
	 */
	if (pkt->proto == IPPROTO_TCP) {
		match_keys(pkt, ifindex, &k4, &k6);
		if (!opens_connection(pkt))
			cached = pkt->family == 4 ? bpf_map_lookup_elem(&matched_map, &k4)
						 : bpf_map_lookup_elem(&matched6_map, &k6);
	}
	if (cached && (cached->generation == cfg->generation || keeps_steering(pkt, cached))) {
		count(ZFW_STAT_CACHE_HIT);
		v.action = cached->action;
		v.rule_id = cached->rule_id;
		v.tproxy_port = cached->tproxy_port;
	} else {
		count(ZFW_STAT_POLICY_LOOKUP);
		policy_lookup(pkt, ifindex, flags, false, false, &c);
		if (c.done) {
			v = c.v;
		} else {
			count(ZFW_STAT_NO_MATCH);
			v.action = ZFW_ACTION_PASS;
			if ((flags & ZFW_IFACE_DEFAULT_DENY) && !tuple_passes(pkt, flags, ifindex))
				v.action = ZFW_ACTION_DENY;
		}
		if (pkt->proto == IPPROTO_TCP && v.action == ZFW_ACTION_TPROXY) {
			mv.generation = cfg->generation;
			mv.rule_id = v.rule_id;
			mv.action = v.action;
			mv.tproxy_port = v.tproxy_port;
			if (pkt->family == 4)
				bpf_map_update_elem(&matched_map, &k4, &mv, BPF_ANY);
			else
				bpf_map_update_elem(&matched6_map, &k6, &mv, BPF_ANY);
		} else if (opens_connection(pkt)) {
			forget_steering(pkt, ifindex, cfg, &k4, &k6);
		}
	}
	record_verdict(skb, &v);
	if (!(flags & ZFW_FLOW_UNCACHED) && !opens_connection(pkt)) {
		if (pkt->proto == IPPROTO_TCP && v.action == ZFW_ACTION_TPROXY)
			flow_remember(pkt, ifindex, cfg, ZFW_FLOW_STEERED, &v);
		else if (v.action != ZFW_ACTION_TPROXY &&
			 !(flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)))
			flow_remember(pkt, ifindex, cfg, ZFW_FLOW_RULE, &v);
	}
	if ((flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)) &&
	    v.action != ZFW_ACTION_DENY && !cached && open_inbound(pkt, ifindex, &v) &&
	    (flags & ZFW_IFACE_VERBOSE))
		emit(skb, pkt, ZFW_EVENT_SESSION, 0, &v, ZFW_TRACK_OPENED_IN);

	switch (v.action) {
	case ZFW_ACTION_TPROXY:
		if (flags & ZFW_IFACE_TUNNEL_MODE) {
			int rc = tunnel(skb, pkt);

			if (rc >= 0)
				return rc;
		}
		return steer(skb, pkt, &v, cfg->mark, flags);
	case ZFW_ACTION_PASS:
		count(ZFW_STAT_PASS);
		return TC_ACT_OK;
	default:
		count(ZFW_STAT_DENY);
		return drop(skb, pkt, flags,
			    v.rule_id ? ZFW_REASON_RULE_DENY : ZFW_REASON_DEFAULT_DENY, &v);
	}
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

/*
 * outbound_allowed: with the outbound filter on, a packet leaving the
 * interface passes if it belongs to a session already opened outwards, or
 * if it opens one that an egress rule passes. Egress rules decide only
 * new flows; no match is a drop.
 */
static __always_inline bool outbound_allowed(const struct packet *pkt, __u32 ifindex, __u32 flags)
{
	struct scan_ctx c = {};
	struct tuple_key k = {};

	if (!opens_connection(pkt)) {
		session_key(pkt, ifindex, true, &k);
		if (bpf_map_lookup_elem(pkt->proto == IPPROTO_TCP ? (void *)&tcp_map : (void *)&udp_map, &k))
			return true;
	}
	policy_lookup(pkt, ifindex, flags, false, true, &c);
	return c.done && c.v.action == ZFW_ACTION_PASS;
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
	struct scan_ctx c = {};
	__u8 track = 0;
	__u32 flags;

	ifs = bpf_map_lookup_elem(&diag_map, &ifindex);
	cfg = bpf_map_lookup_elem(&config_map, &zero);
	if (!ifs || !cfg ||
	    !(ifs->flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER | ZFW_IFACE_MASQUERADE |
			    ZFW_IFACE_OT_FILTERING)))
		return ZFW_NEXT;
	flags = ifs->flags;
	pkt.egress = 1;
	switch (parse_packet(skb, &pkt)) {
	case PARSE_TUPLE:
		if (pkt.tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
			flow_forget(&pkt, ifindex, cfg, true);
		if ((flags & ZFW_IFACE_OT_FILTERING) && pkt.proto == IPPROTO_TCP) {
			__u8 why = dnp3_check(skb, &pkt);

			if (why) {
				count(ZFW_STAT_OT_DROPPED);
				return drop(skb, &pkt, flags, why, NULL);
			}
			modbus_request(skb, &pkt, ifindex);
		}
		if (inbound_reply(&pkt, ifindex, &track)) {
			if (track && (flags & ZFW_IFACE_VERBOSE))
				emit(skb, &pkt, ZFW_EVENT_SESSION, 0, NULL, track);
			break;
		}
		if ((flags & ZFW_IFACE_OUTBOUND_FILTER) && !outbound_allowed(&pkt, ifindex, flags)) {
			count(ZFW_STAT_EGRESS_DENY);
			return drop(skb, &pkt, flags, ZFW_REASON_RULE_DENY, NULL);
		}
		if (flags & (ZFW_IFACE_DEFAULT_DENY | ZFW_IFACE_OUTBOUND_FILTER)) {
			track_outbound(&pkt, ifindex, cfg, &track);
			if (track && (flags & ZFW_IFACE_VERBOSE))
				emit(skb, &pkt, ZFW_EVENT_SESSION, 0, NULL, track);
		}
		if ((flags & ZFW_IFACE_MASQUERADE) && masquerade_out(skb, &pkt, ifindex))
			return drop(skb, &pkt, flags, ZFW_REASON_MALFORMED, NULL);
		break;
	case PARSE_FRAGMENT:
		/* As on ingress: a fragment leaves only if every port would. */
		if (!(flags & ZFW_IFACE_OUTBOUND_FILTER))
			break;
		policy_lookup(&pkt, ifindex, flags, true, true, &c);
		if (c.any_block || !c.full_pass) {
			count(ZFW_STAT_EGRESS_DENY);
			return drop(skb, &pkt, flags, ZFW_REASON_FRAGMENT, NULL);
		}
		break;
	case PARSE_OTHER:
		if (echo_request(&pkt)) {
			struct icmp_key k = {};
			struct icmp_state st = { .tstamp = bpf_ktime_get_ns() };

			echo_key(&pkt, ifindex, true, &k);
			bpf_map_update_elem(&icmp_echo_map, &k, &st, BPF_ANY);
			count(ZFW_STAT_TRACKED);
			if ((flags & ZFW_IFACE_MASQUERADE) && masquerade_out(skb, &pkt, ifindex))
				return drop(skb, &pkt, flags, ZFW_REASON_MALFORMED, NULL);
		}
		break;
	}
	return ZFW_NEXT;
}

/*
 * zfw_tun_xdp runs on the Ziti tun (raw IP, no Ethernet header) on what
 * the tunneler writes back: a reply to a flow tunnel() sent in gets the
 * Ethernet header of the original request, reversed, and leaves through
 * the interface that request came in on. Anything else goes on to the
 * stack.
 */
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
