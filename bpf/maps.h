/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h: every map of the dataplane, by the names operators know from
 * the C zfw (bpftool map dump name tcp_ingress_map), but the scratch space
 * of masquerade.h.
 */
#ifndef ZFW_MAPS_H
#define ZFW_MAPS_H

#include "packet.h"

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
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ZFW_FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_entry);
} flow_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_SESSION_ENTRIES);
	__type(key, struct tuple_key);
	__type(value, struct tcp_state);
} tcp_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_SESSION_ENTRIES);
	__type(key, struct tuple_key);
	__type(value, struct udp_state);
} udp_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_SESSION_ENTRIES);
	__type(key, struct tuple_key);
	__type(value, struct inbound_state);
} tcp_ingress_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZFW_SESSION_ENTRIES);
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
	__uint(max_entries, ZFW_SESSION_ENTRIES);
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
	__uint(max_entries, ZFW_SESSION_ENTRIES);
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

/*
 * SYNs the ingress program left to a socket of an earlier connection on
 * their tuple (the tunneler's side in TIME_WAIT), with their listener
 * port, for zfw_sk_lookup, which hands such a SYN to that listener when
 * the kernel lets the old socket go and looks for one. The kernel does
 * that on the CPU that ran the ingress program, within the same receive
 * batch, so a small per-CPU table indexed by a hash of the tuple holds
 * every note long enough, and the lookup every listener lookup in the
 * namespace makes is one array slot, not a hash-map walk. A note another
 * SYN overwrites first costs that SYN the slower way (see tuple_in_use).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ZFW_TW_NOTES);
	__type(key, __u32);
	__type(value, struct tw_note);
} tw_note_map SEC(".maps");

/* The TPROXY listeners userspace handed over (the sockets its tunneler
 * opened), by family and port: what zfw_sk_lookup can hand SYNs to. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4096);
	__type(key, struct listener_key);
	__type(value, __u64);
} listener_map SEC(".maps");

/* The DDoS allow-list (zfw -y): sources that may open connections to
 * protected ports once any is listed. Written only by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct addr_key);
	__type(value, __u8);
} ddos_allow_map SEC(".maps");

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

/* count adds one to a statistic (enum stat). */
static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&stats_map, &stat);

	if (v)
		*v += 1; /* per-CPU slot: no atomic needed */
}

#endif /* ZFW_MAPS_H */
