/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ot.h: industrial protocols: DNP3 function codes and direction, Modbus/TCP
 * responses that must answer a request.
 */
#ifndef ZFW_OT_H
#define ZFW_OT_H

#include "maps.h"

#define DNP3_PORT 20000
#define MODBUS_PORT 502

/* payload_at copies n bytes of TCP payload; false if there are fewer. */
static __always_inline bool payload_at(struct __sk_buff *skb, const struct packet *pkt, void *to, __u32 n)
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

#endif /* ZFW_OT_H */
