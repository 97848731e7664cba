/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tw_note.h: the notes the ingress program leaves for zfw_sk_lookup
 * about SYNs it let an old socket of their tuple settle (tw_note_map).
 */
#ifndef ZFW_TW_NOTE_H
#define ZFW_TW_NOTE_H

#include "maps.h"

/* tw_note_slot spreads tuples over this CPU's notes. */
static __always_inline __u32 tw_note_slot(const struct tw_key *k)
{
	__u32 h = k->saddr[0] * 0x9e3779b1u;

	h ^= k->daddr[0] * 0x85ebca77u;
	h ^= (((__u32)k->sport << 16) | k->dport) * 0xc2b2ae3du;
	h ^= (k->saddr[1] ^ k->saddr[2] ^ k->saddr[3]) * 0x165667b1u;
	h ^= (k->daddr[1] ^ k->daddr[2] ^ k->daddr[3]) * 0xd3a2646cu;
	h ^= h >> 15;
	return h & (ZFW_TW_NOTES - 1);
}

static __always_inline bool tw_key_same(const struct tw_key *a, const struct tw_key *b)
{
	return a->sport == b->sport && a->dport == b->dport && a->family == b->family &&
	       a->saddr[0] == b->saddr[0] && a->saddr[1] == b->saddr[1] && a->saddr[2] == b->saddr[2] &&
	       a->saddr[3] == b->saddr[3] && a->daddr[0] == b->daddr[0] && a->daddr[1] == b->daddr[1] &&
	       a->daddr[2] == b->daddr[2] && a->daddr[3] == b->daddr[3];
}

/* tw_note_put notes k's listener port under the rules of generation. */
static __always_inline void tw_note_put(const struct tw_key *k, __u16 port, __u32 generation)
{
	__u32 slot = tw_note_slot(k);
	struct tw_note *n = bpf_map_lookup_elem(&tw_note_map, &slot);

	if (!n)
		return;
	n->key = *k;
	n->port = port;
	n->generation = generation;
}

/*
 * tw_note_take returns the listener port noted for k (0 if there is none)
 * and the rules' generation it was noted under, and frees its slot.
 */
static __always_inline __u16 tw_note_take(const struct tw_key *k, __u32 *generation)
{
	__u32 slot = tw_note_slot(k);
	struct tw_note *n = bpf_map_lookup_elem(&tw_note_map, &slot);
	__u16 port;

	if (!n || !n->port || !tw_key_same(&n->key, k))
		return 0;
	port = n->port;
	*generation = n->generation;
	n->port = 0;
	return port;
}

#endif /* ZFW_TW_NOTE_H */
