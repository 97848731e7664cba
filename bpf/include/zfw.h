/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * zfw.h: every struct, enum and limit shared between the BPF programs and
 * Go. Go sees these only through bpf2go -type; nothing is mirrored by hand.
 *
 * Byte order: addresses are kept as they appear on the wire (network
 * order); ports in rule entries are host order (the program converts the
 * packet's port once); ports in packet-derived keys (tuple_key) are wire
 * order.
 */
#ifndef ZFW_H
#define ZFW_H

#include <linux/types.h>

/* Capacities. The Go side reads them from the map specs. */
#define ZFW_MAX_RULES 250000          /* range_map slots, both families   */
#define ZFW_MAX_PREFIXES 100000       /* zt_tproxy_map / zt_tproxy6_map   */
#define ZFW_MAX_RANGES_PER_PREFIX 128 /* rules sharing one prefix key     */
#define ZFW_MAX_RULE_IFACES 8         /* if_list_extension_map entries    */
#define ZFW_MAX_IFACES 256            /* diag_map                         */
#define ZFW_SESSION_ENTRIES 65536     /* each session map                 */
#define ZFW_TW_NOTES 64               /* tw_note_map slots per CPU        */
#define ZFW_SERVICE_ID_LEN 32
#define ZFW_SERVICE_NAME_LEN 64
#define ZFW_MAX_IPV6_EXT_HDRS 8 /* longer chains are dropped        */
#define ZFW_MAX_CPUS 1024       /* flow_forget visits at most these  */
#define ZFW_MASQ_ENTRIES 131072 /* masquerade maps                  */
#define ZFW_MASQ_PORT_TRIES 16  /* random picks after a collision   */

/* What a rule does with a matching packet (policy.Action in Go). */
enum action {
	ZFW_ACTION_NONE = 0,
	ZFW_ACTION_PASS = 1,
	ZFW_ACTION_DENY = 2,
	ZFW_ACTION_TPROXY = 3,
};

/* Interface setting bits (diag_map value). */
enum iface_flag {
	/* No rule matched: drop instead of handing the packet to the host. */
	ZFW_IFACE_DEFAULT_DENY = 1 << 0,
	/* Only rules that list this interface apply here. */
	ZFW_IFACE_PER_INTERFACE = 1 << 1,
	/* Emit an event for every drop on this interface. */
	ZFW_IFACE_VERBOSE = 1 << 2,
	/*
	 * What a default-deny interface admits without a rule, so the host
	 * keeps its network. ARP, IPv6 neighbour discovery, DHCP replies and
	 * ICMP errors always pass; these bits add the rest.
	 */
	ZFW_IFACE_ICMP_ECHO = 1 << 3,   /* echo requests and replies   */
	ZFW_IFACE_SSH_DISABLE = 1 << 4, /* no default SSH to own addrs */
	ZFW_IFACE_VRRP = 1 << 5,
	ZFW_IFACE_EAPOL = 1 << 6,
	ZFW_IFACE_PASS_NON_TUPLE = 1 << 7, /* other protocols and frames  */
	/* Drop all IPv6 on this interface, default-deny or not. */
	ZFW_IFACE_IPV6_DISABLE = 1 << 8,
	/* Filter what leaves: new outbound TCP/UDP flows need an egress rule. */
	ZFW_IFACE_OUTBOUND_FILTER = 1 << 9,
	/* Source-NAT what leaves to the interface's first address. */
	ZFW_IFACE_MASQUERADE = 1 << 10,
	/* SYN-flood protection: sources over the SYN rate are banned. */
	ZFW_IFACE_DDOS = 1 << 11,
	/* Industrial protocols: DNP3 function codes, Modbus pairing. */
	ZFW_IFACE_OT_FILTERING = 1 << 12,
	/* Intercepted flows go into the Ziti tun instead of a TPROXY socket. */
	ZFW_IFACE_TUNNEL_MODE = 1 << 13,
};

/* ifindex_tun_map[0]: the Ziti tun interface (ifindex 0 = none) and the
 * range its tunneler hands out addresses from (e.g. 100.64.0.0/10). */
struct tun_config {
	__u32 ifindex;
	__u32 prefix[4];
	__u8 prefix_len;
	__u8 family;
	__u8 pad[2];
};

/*
 * tun_map: flows sent into the tun, keyed by their replies' tuple (src =
 * the service address the client used), so the XDP program on the tun
 * can send each reply straight back out of the interface its request
 * came in on, with the Ethernet addresses that request carried.
 */
struct tun_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct tun_state {
	__u64 tstamp;
	__u32 ifindex; /* where the client is */
	__u8 client_mac[6];
	__u8 our_mac[6];
	__u8 pad[2];
};

/* modbus_state_map: Modbus/TCP requests awaiting their response. */
struct modbus_key {
	__u32 master[4];
	__u32 slave[4];
	__u32 ifindex;
	__u16 master_port; /* wire order */
	__u16 tid;         /* transaction id, wire order */
	__u8 unit;
	__u8 fcode; /* request function code (exception bit clear) */
	__u8 family;
	__u8 pad;
};

/*
 * SYN-flood protection. syn_count_map counts each source's SYNs to
 * protected ports (all ports when ddos_dport_map is empty) in one-second
 * windows; a source over config.syn_per_sec is banned in ddos_saddr_map
 * until its ban ends, and every packet from a banned source is dropped
 * before any other work.
 */
struct addr_key {
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};

struct syn_count {
	__u64 window;
	__u32 count;
	__u32 pad;
};

struct ban {
	__u64 until; /* bpf_ktime_get_ns */
	__u64 since;
};

#define ZFW_MAX_IFACE_ADDRS 16

/* ifindex_ip_map / ifindex_ip6_map: the interface's own addresses, kept
 * current by the control plane from netlink address events. */
struct iface_addrs4 {
	__u32 count;
	__u32 addr[ZFW_MAX_IFACE_ADDRS];
};

struct iface_addrs6 {
	__u32 count;
	__u32 addr[ZFW_MAX_IFACE_ADDRS][4];
};

/* diag_map: ifindex -> settings. An interface without an entry is left
 * alone (the program returns "next"), so a stale attachment is harmless. */
struct iface_settings {
	__u32 flags;
};

/* config_map[0]: process-wide settings written by the loader. */
struct config {
	/* skb->mark put on steered packets; one fwmark rule per family turns it
	 * into local delivery. */
	__u32 mark;
	/* Bumped by userspace after every rule change; cached verdicts of an
	 * older generation are recomputed. */
	__u32 generation;
	/* Session idle timeouts, ns: an expired session admits nothing. */
	__u64 tcp_established_ns; /* established, no FIN yet            */
	__u64 tcp_transitory_ns;  /* opening or closing                  */
	__u64 udp_ns;
	__u64 icmp_echo_ns;    /* an echo request awaiting its reply */
	__u32 events_per_sec;  /* per CPU; beyond it events are counted, not sent */
	__u32 syn_per_sec;     /* SYN-flood threshold per source */
	__u64 ban_ns;          /* how long a flooding source stays banned */
	__u32 protected_ports; /* entries in ddos_dport_map */
	/* Bumped by userspace when interface settings change or sessions are
	 * removed: every flow_cache entry of an older epoch is ignored. */
	__u32 cache_epoch;
	/* Possible CPUs: flow_forget clears a flow from each CPU's cache. */
	__u32 ncpus;
	/* Entries in ddos_allow_map. With any, and ports protected, only the
	 * sources it lists open connections to those ports (the C zfw's DDoS
	 * allow-list) and none is counted for SYN floods. */
	__u32 allowed_sources;
};

/*
 * flow_cache: a per-CPU, direct-mapped cache of the verdicts of flows
 * already decided, in front of every map lookup of the ingress program.
 * A slot is picked by a hash of the packet's tuple and holds one flow; a
 * colliding flow simply takes the slot over. Per CPU, so a slot is never
 * written by two CPUs at once and needs no lock; an array, so a lookup is
 * a few instructions instead of a hash-map walk. The authoritative state
 * stays in the session and verdict maps: a cached entry only lets a packet
 * skip them while nothing it depends on can have changed (see kinds).
 */
enum flow_kind {
	ZFW_FLOW_EMPTY = 0,
	/* A steered TCP connection, valid for one rule generation; after a
	 * change its socket keeps it steered (rule_verdict). */
	ZFW_FLOW_STEERED,
	/* A rule's verdict on a non-tracking interface, valid for one rule
	 * generation. */
	ZFW_FLOW_RULE,
	/* A session opened inwards (tcp_ingress_map/udp_ingress_map) that is
	 * established and not closing, within ZFW_FLOW_RECHECK_JIFFIES of the
	 * last look at the session itself (which refreshed its timestamp). */
	ZFW_FLOW_INBOUND,
	/* A reply of a session opened outwards (tcp_map/udp_map), on the same
	 * terms as ZFW_FLOW_INBOUND. */
	ZFW_FLOW_REPLY,
};

enum flow_limits {
	ZFW_FLOW_CACHE_SLOTS = 4096, /* per CPU; a power of two */
	/* How long a session entry may be served from the cache before the
	 * session map is looked at (and its idle timer refreshed) again:
	 * 64 jiffies is 64 ms at HZ=1000 and 640 ms at HZ=100. Sessions with
	 * a timeout under a second are never cached. */
	ZFW_FLOW_RECHECK_JIFFIES = 64,
};

struct flow_entry {
	__u32 saddr[4]; /* as seen on ingress */
	__u32 daddr[4];
	__u32 ifindex;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u8 kind;   /* enum flow_kind; 0 = empty */
	__u8 action; /* the verdict */
	__u16 tproxy_port;
	__u16 pad;
	__u32 rule_id;
	__u32 epoch;      /* config.cache_epoch when cached */
	__u32 generation; /* config.generation when cached (ZFW_FLOW_RULE) */
	/* Low 32 bits of jiffies at the last look at the session: compared
	 * by wrapping difference, and the entry stays one 64-byte line. */
	__u32 checked;
};

/*
 * Policy lookup. zt_tproxy_map (v4) / zt_tproxy6_map (v6) are hash maps
 * keyed by (protocol, prefix length, masked destination). prefix_len_map
 * lists, per (family, protocol), the prefix lengths that have at least one
 * key, longest first, so a packet costs one hash lookup per length in use
 * (not per rule, not per possible length). A hit yields a contiguous block
 * of range_map slots holding that prefix's rules in precedence order:
 * longest source prefix first, then insertion order.
 */
struct prefix_key {
	__u8 proto;
	__u8 len;
	__u8 pad[2];
	__u32 addr;
};

struct prefix6_key {
	__u8 proto;
	__u8 len;
	__u8 pad[2];
	__u32 addr[4];
};

struct prefix_value {
	__u32 start; /* first range_map slot */
	__u32 count; /* number of slots      */
};

/* prefix_len_map key: (egress << 16) | (family << 8) | proto, family 4 or
 * 6, egress 1 for the egress rule tables. */
struct prefix_lens {
	__u32 count;
	__u8 lens[132]; /* longest first; 129 used at most (v6 /0../128) */
};

enum range_flag {
	/* if_list_extension_map[rule_id] limits the rule to some interfaces. */
	ZFW_RANGE_HAS_IFLIST = 1 << 0,
};

/* range_map slot: one rule under a prefix key. */
struct range_entry {
	__u32 rule_id;
	__u32 src[4]; /* source prefix, masked; v4 uses src[0] */
	__u16 port_low;
	__u16 port_high;
	__u16 tproxy_port;
	__u8 src_len;
	__u8 action;
	__u8 flags;
	__u8 pad[3];
};

/* if_list_extension_map: rule_id -> interfaces the rule applies on. */
struct if_list {
	__u32 ifindex[ZFW_MAX_RULE_IFACES]; /* 0 = unused slot */
};

/* tproxy_extension_map: which service a listener port belongs to. */
struct tproxy_ext_key {
	__u16 tproxy_port;
	__u8 proto;
	__u8 pad;
};

struct service_id {
	char id[ZFW_SERVICE_ID_LEN];
};

/* Who made a rule: Register (an intercept) or the rules API. */
enum rule_kind {
	ZFW_RULE_USER = 0,
	ZFW_RULE_INTERCEPT = 1,
};

/*
 * rule_store_map: the canonical copy of every rule, read only by
 * userspace. A restarted process rebuilds its state from it when it adopts
 * a kept dataplane.
 */
struct rule_record {
	__u64 seq;
	__u32 dst[4];
	__u32 src[4];
	__u32 ifindex[ZFW_MAX_RULE_IFACES];
	__u16 port_low;
	__u16 port_high;
	__u16 tproxy_port;
	__u8 family;
	__u8 proto;
	__u8 dst_len;
	__u8 src_len;
	__u8 action;
	__u8 kind;   /* enum rule_kind */
	__u8 egress; /* an egress rule (zt_egress_map) */
	char service_id[ZFW_SERVICE_ID_LEN];
	char service_name[ZFW_SERVICE_NAME_LEN];
};

/*
 * tcp_map / udp_map: sessions this host (or a client it routes) opened
 * outwards on a default-deny interface, so their replies get in without a
 * rule. The key is always in the initiator's orientation: src is the
 * initiator, dst the responder; the ingress side looks replies up with
 * the addresses and ports swapped.
 */
struct tuple_key {
	__u32 dst[4];
	__u32 src[4];
	__u16 sport;
	__u16 dport;
	__u32 ifindex;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* listener_key names a TPROXY listener userspace handed over to
 * listener_map: its loopback port, family (4 or 6) and protocol. */
struct listener_key {
	__u16 port;
	__u8 family;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
};

/* tw_key is a connection's tuple as its SYN carries it (addresses as on
 * the wire, v4 in word 0; ports in host order). */
struct tw_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 pad[3];
};

/* tw_note is a slot of tw_note_map: a SYN's tuple, its listener port (0:
 * the slot is free) and the rules' generation it was decided under (a
 * later rule change voids it). */
struct tw_note {
	struct tw_key key;
	__u16 port;
	__u16 pad;
	__u32 generation;
};

/* TCP session state bits. */
enum tcp_flag {
	ZFW_TCP_SYN = 1 << 0,      /* initiator sent SYN                  */
	ZFW_TCP_SYN_ACK = 1 << 1,  /* responder answered SYN-ACK          */
	ZFW_TCP_EST = 1 << 2,      /* initiator acknowledged the SYN-ACK  */
	ZFW_TCP_CFIN = 1 << 3,     /* initiator sent FIN (cfin_seq)       */
	ZFW_TCP_SFIN = 1 << 4,     /* responder sent FIN (sfin_seq)       */
	ZFW_TCP_CFIN_ACK = 1 << 5, /* responder acknowledged the FIN      */
	ZFW_TCP_SFIN_ACK = 1 << 6, /* initiator acknowledged the FIN      */
};

struct tcp_state {
	__u64 tstamp; /* last packet either way, bpf_ktime_get_ns */
	__u32 cfin_seq;
	__u32 sfin_seq;
	__u32 flags; /* enum tcp_flag */
	__u32 pad;
};

struct udp_state {
	__u64 tstamp;
};

/*
 * tcp_ingress_map / udp_ingress_map: sessions opened inwards through a
 * default-deny interface and admitted by a rule. The key is oriented like
 * tuple_key (src is the remote initiator). Later packets take the fast
 * path: the stored verdict, no rule lookup; sessions outlive rule changes
 * until they close or expire, as connection tracking does.
 */
struct inbound_state {
	struct tcp_state tcp; /* tstamp is used for UDP too */
	__u32 rule_id;
	__u16 tproxy_port;
	__u8 action;
	__u8 pad;
};

/* icmp_echo_map: echo requests sent out of a default-deny interface; one
 * matching echo reply gets in. Oriented like tuple_key. */
struct icmp_key {
	__u32 dst[4];
	__u32 src[4];
	__u16 id;  /* wire order */
	__u16 seq; /* wire order */
	__u32 ifindex;
	__u8 family;
	__u8 pad[3];
};

struct icmp_state {
	__u64 tstamp;
};

/*
 * masquerade_map: a translated flow as the outside sees it (remote end,
 * translated source port) -> the inside client it stands for.
 * masquerade_reverse_map: the inside client's flow -> its translated port.
 * A flow keeps its source port when no other flow to the same remote end
 * holds it on this interface; otherwise a free one is picked.
 */
struct masq_key {
	__u32 ifindex;
	__u32 remote[4];
	__u16 rport; /* remote port, wire order      */
	__u16 tport; /* translated port, wire order  */
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct masq_value {
	__u32 origin[4]; /* inside client address      */
	__u16 oport;     /* inside client port, wire order */
	__u16 pad;
	__u32 pad2;
	__u64 tstamp; /* last use, for garbage collection */
};

struct masq_reverse_key {
	__u32 ifindex;
	__u32 origin[4];
	__u32 remote[4];
	__u16 oport;
	__u16 rport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct masq_reverse_value {
	__u16 tport;
	__u16 pad;
	__u32 pad2;
	__u64 tstamp;
};

/* stats_map (per-CPU array) indexes. */
enum stat {
	ZFW_STAT_UNMANAGED = 0, /* no diag_map entry                    */
	ZFW_STAT_NOT_IP,        /* ARP and other non-IP frames: passed  */
	ZFW_STAT_MALFORMED,     /* dropped                              */
	ZFW_STAT_FRAGMENT,      /* decided port-agnostically            */
	ZFW_STAT_OTHER_PROTO,   /* IP but neither TCP nor UDP           */
	ZFW_STAT_KEPT_STEERING, /* a connection steered before a rule change */
	ZFW_STAT_POLICY_LOOKUP, /* verdict from the rule tables         */
	ZFW_STAT_NO_MATCH,      /* no rule: interface default applied   */
	ZFW_STAT_PASS,
	ZFW_STAT_DENY,
	ZFW_STAT_TPROXY,         /* steered (marked and, if new, assigned) */
	ZFW_STAT_NO_LISTENER,    /* TPROXY target missing: dropped       */
	ZFW_STAT_ASSIGN_FAILED,  /* bpf_sk_assign refused: dropped       */
	ZFW_STAT_REPLY,          /* admitted as a reply to an outbound session */
	ZFW_STAT_TRACKED,        /* egress packet recorded in a session        */
	ZFW_STAT_ECHO_REPLY,     /* echo reply admitted by icmp_echo_map       */
	ZFW_STAT_FAST_PATH,      /* inbound session packet: no rule lookup     */
	ZFW_STAT_EGRESS_DENY,    /* new outbound flow refused by egress rules  */
	ZFW_STAT_MASQUERADED,    /* packet source-translated on egress         */
	ZFW_STAT_UNMASQUERADED,  /* reply translated back on ingress           */
	ZFW_STAT_MASQ_NO_PORT,   /* no free translated port: dropped           */
	ZFW_STAT_EVENTS_LIMITED, /* events not sent: over the rate limit       */
	ZFW_STAT_EVENTS_LOST,    /* events not sent: ring buffer full          */
	ZFW_STAT_BANNED,         /* dropped: the source is banned              */
	ZFW_STAT_BANS,           /* sources banned for flooding SYNs           */
	ZFW_STAT_OT_DROPPED,     /* DNP3 or Modbus traffic refused             */
	ZFW_STAT_TUNNELED,       /* redirected into the Ziti tun               */
	ZFW_STAT_TUN_RETURNED,   /* tun reply sent back out by XDP             */
	/* Decided from the per-CPU flow cache alone, one counter per outcome
	 * so a cached packet pays one increment (userspace adds them into the
	 * counters of the path each stands for). */
	ZFW_STAT_FLOW_STEERED,        /* steered TCP connection                  */
	ZFW_STAT_FLOW_RULE_PASS,      /* a rule's (or no rule's) pass verdict     */
	ZFW_STAT_FLOW_RULE_DENY,      /* a rule's deny verdict                    */
	ZFW_STAT_FLOW_INBOUND,        /* inbound session, passed                  */
	ZFW_STAT_FLOW_INBOUND_TPROXY, /* inbound session, steered               */
	ZFW_STAT_FLOW_REPLY,          /* reply of a session opened outwards       */
	ZFW_STAT_TUPLE_IN_USE,        /* steered SYN left to an earlier socket of its tuple */
	ZFW_STAT_NOT_ALLOWED,         /* dropped: protected port, source not on the allow-list */
	ZFW_STAT_TW_HANDED_OVER,      /* SYN an old socket let go, handed to its listener */
	ZFW_STAT_MAX,
};

/* Why a packet was dropped (event reason). */
enum reason {
	ZFW_REASON_NONE = 0,
	ZFW_REASON_MALFORMED = 1,
	ZFW_REASON_RULE_DENY = 2,
	ZFW_REASON_DEFAULT_DENY = 3,
	ZFW_REASON_FRAGMENT = 4,
	ZFW_REASON_NO_LISTENER = 5,
	ZFW_REASON_ASSIGN_FAILED = 6,
	ZFW_REASON_BANNED = 7,
	ZFW_REASON_DNP3_BLOCKED = 8,       /* function code not allowed     */
	ZFW_REASON_DNP3_DIRECTION = 9,     /* outstation frame with DIR set */
	ZFW_REASON_MODBUS_UNEXPECTED = 10, /* response to no request    */
	ZFW_REASON_MASQUERADE = 11,        /* translation failed: no free port, or
					* the rewrite of addresses and checksums */
	ZFW_REASON_NOT_ALLOWED = 12,       /* a protected port, and the source
					* is not on the DDoS allow-list */
};

/* The event layout's version (an enum so that Go sees it). */
enum event_version {
	ZFW_EVENT_VERSION = 1,
};

/* What an event reports. */
enum event_kind {
	ZFW_EVENT_DROP = 1,    /* a packet dropped; reason says why      */
	ZFW_EVENT_STEER = 2,   /* a new flow assigned to its listener    */
	ZFW_EVENT_SESSION = 3, /* a session changed state (tracking)     */
	ZFW_EVENT_BAN = 4,     /* a source was banned for flooding SYNs  */
};

/* rb_map record. Versioned: readers check version before the rest. Only
 * interfaces set verbose emit, at most config.events_per_sec per CPU. */
struct event {
	__u8 version;
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 direction; /* 0 ingress, 1 egress */
	__u32 ifindex;
	__u64 tstamp; /* bpf_ktime_get_ns */
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport; /* wire order */
	__u16 dport; /* wire order */
	__u16 tproxy_port;
	__u8 action;
	__u8 reason; /* enum reason, for drops */
	__u32 rule_id;
	__u8 kind; /* enum event_kind */
	__u8 tcp_flags;
	__u8 smac[6];
	__u8 dmac[6];
	__u8 tracking; /* enum track, for session events */
	__u8 pad;
};

/* Session state changes that session events report. */
enum track {
	ZFW_TRACK_OPENED_OUT = 1,  /* opened outwards (egress)        */
	ZFW_TRACK_OPENED_IN = 2,   /* opened inwards, admitted by a rule */
	ZFW_TRACK_ESTABLISHED = 3, /* TCP handshake completed         */
	ZFW_TRACK_CLOSED = 4,      /* both FINs acknowledged          */
	ZFW_TRACK_RESET = 5,       /* RST                             */
	ZFW_TRACK_EXPIRED = 6,     /* idle past its timeout           */
};

/* event_budget: the per-CPU rate limit's current one-second window. */
struct event_budget {
	__u64 window;
	__u32 count;
	__u32 pad;
};

#endif /* ZFW_H */
