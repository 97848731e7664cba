/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ddos.h: SYN-flood protection: per-source SYN counts and bans.
 */
#ifndef ZFW_DDOS_H
#define ZFW_DDOS_H

#include "maps.h"

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

/* What SYN-flood protection makes of a packet. */
enum ddos_verdict {
	DDOS_PASS,
	DDOS_BANNED,      /* this SYN put its source over the threshold */
	DDOS_NOT_ALLOWED, /* a protected port, a source not on the allow-list */
};

/*
 * ddos_check judges a connection opened to a protected port (to any port
 * when none is protected). With ports protected and an allow-list, only
 * listed sources get through, and nothing is counted: the C zfw's rule,
 * which gates nothing while no port is protected. Otherwise each source's
 * SYNs are counted per second, and one over the threshold bans it.
 */
static __always_inline int ddos_check(const struct packet *pkt, const struct config *cfg, __u64 now)
{
	struct addr_key k = {};
	struct syn_count *sc;
	__u16 port = bpf_ntohs(pkt->dport);

	if (!opens_connection(pkt))
		return DDOS_PASS;
	if (cfg->protected_ports && !bpf_map_lookup_elem(&ddos_dport_map, &port))
		return DDOS_PASS;
	source_key(pkt, &k);
	if (cfg->protected_ports && cfg->allowed_sources)
		return bpf_map_lookup_elem(&ddos_allow_map, &k) ? DDOS_PASS : DDOS_NOT_ALLOWED;
	sc = bpf_map_lookup_elem(&syn_count_map, &k);
	if (!sc) {
		struct syn_count n = { .window = now, .count = 1 };

		bpf_map_update_elem(&syn_count_map, &k, &n, BPF_ANY);
		return DDOS_PASS;
	}
	if (now - sc->window >= 1000000000ULL) {
		sc->window = now;
		sc->count = 0;
	}
	if (++sc->count <= cfg->syn_per_sec)
		return DDOS_PASS;
	struct ban b = { .until = now + cfg->ban_ns, .since = now };

	bpf_map_update_elem(&ddos_saddr_map, &k, &b, BPF_ANY);
	bpf_map_delete_elem(&syn_count_map, &k);
	count(ZFW_STAT_BANS);
	return DDOS_BANNED;
}

#endif /* ZFW_DDOS_H */
