/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * host.h: what a default-deny interface admits without a rule so that the
 * host keeps its network.
 */
#ifndef ZFW_HOST_H
#define ZFW_HOST_H

#include "maps.h"

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

#endif /* ZFW_HOST_H */
