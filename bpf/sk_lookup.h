/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sk_lookup.h: the listener lookup of SYNs that an old socket of their
 * tuple let go (see remember_tw_steer in steer.h).
 */
#ifndef ZFW_SK_LOOKUP_H
#define ZFW_SK_LOOKUP_H

#include <linux/socket.h>

#include "maps.h"
#include "tw_note.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/*
 * sk_lookup_steer: when the kernel looks for a listener for a TCP SYN
 * whose tuple the ingress program noted, it gets the tunneler's listener
 * of that port from listener_map. Every other lookup goes on as without
 * this program: the program sees all of them in the namespace, so it
 * reads one slot of this CPU's notes and changes nothing else.
 */
static __always_inline int sk_lookup_steer(struct bpf_sk_lookup *ctx)
{
	struct listener_key lk = {};
	struct tw_key k = {};
	struct config *cfg;
	struct bpf_sock *sk;
	__u32 zero = 0, generation = 0;
	long err;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	/* The barriers keep clang from merging the two branches' loads into
	 * one through a computed context pointer, which the verifier
	 * refuses: context fields are read at constant offsets only. */
	if (ctx->family == AF_INET) {
		k.saddr[0] = ctx->remote_ip4;
		k.daddr[0] = ctx->local_ip4;
		k.family = 4;
		asm volatile("" ::: "memory");
	} else if (ctx->family == AF_INET6) {
		__builtin_memcpy(k.saddr, (const void *)ctx->remote_ip6, 16);
		__builtin_memcpy(k.daddr, (const void *)ctx->local_ip6, 16);
		k.family = 6;
		asm volatile("" ::: "memory");
	} else {
		return SK_PASS;
	}
	k.sport = bpf_ntohs(ctx->remote_port);
	k.dport = ctx->local_port;
	/* Most lookups find no note: the config is read only for one. */
	lk.port = tw_note_take(&k, &generation);
	if (!lk.port)
		return SK_PASS;
	cfg = bpf_map_lookup_elem(&config_map, &zero);
	if (!cfg || cfg->generation != generation)
		return SK_PASS; /* decided under other rules */
	lk.family = k.family;
	lk.proto = IPPROTO_TCP;
	sk = bpf_map_lookup_elem(&listener_map, &lk);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		count(ZFW_STAT_ASSIGN_FAILED);
	else
		count(ZFW_STAT_TW_HANDED_OVER);
	return SK_PASS;
}

#endif /* ZFW_SK_LOOKUP_H */
