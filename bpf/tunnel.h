/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tunnel.h: tunnel mode: intercepted flows go into the Ziti tun, and
 * zfw_tun_xdp sends their replies back out where they came from.
 */
#ifndef ZFW_TUNNEL_H
#define ZFW_TUNNEL_H

#include "maps.h"

/*
 * tunnel hands an intercepted packet to the Ziti tun: it records where
 * the reply must go, then redirects the packet to the tun's egress (the
 * kernel drops the Ethernet header for an L3 device), where the tunneler
 * reads it. Without a configured tun it returns -1.
 */
ZFW_STAGE int tunnel(struct __sk_buff *skb, const struct packet *pkt)
{
	__u32 zero = 0;
	struct tun_config *tc = bpf_map_lookup_elem(&ifindex_tun_map, &zero);
	struct tun_key k = {};
	struct tun_state st = { .ifindex = skb->ifindex };

	if (!pkt || !tc || tc->ifindex == 0)
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

#endif /* ZFW_TUNNEL_H */
