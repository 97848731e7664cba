package main

import (
	"bytes"
	"fmt"
	"time"

	"github.com/zfw-go/zfw/internal/bench"
)

// writeWhy explains the numbers, and for every goal this run missed,
// what the design does and what it would need. Figures quoted are this
// run's IPv4 medians.
func writeWhy(b *bytes.Buffer, cfg config, r results, goals []goal) {
	p := r.packets
	first, last := 0, len(p.counts)-1
	at := func(ci int, q path) time.Duration { return p.m[0][ci][q].t.Median }
	above := func(ci int, q path) int64 { return (at(ci, q) - at(ci, floorOf(q))).Nanoseconds() }

	fmt.Fprintf(b, "## Why the numbers look like this\n\n")
	fmt.Fprintf(b, "### Per packet\n\n")
	fmt.Fprintf(b, "- **The floors.** The empty program costs %d ns a run when the kernel repeats one packet (the test-run loop and the program call), and %d ns when each run is its own BPF_PROG_TEST_RUN: the kernel's timer reads around a single run and caches the syscall left cold. Per-call rows carry that overhead too, which is why they are set against the per-call floor. Per-call rows depend on the machine more than repeated ones: on a machine of the same kind whose CPU had no PCID under page-table isolation (kernel 6.18.44-fc-v1045, the same hit and new-flow paths; see issue 11), the per-call cache hit read 2.2–2.4x and new flows at 250,000 intercepts 2.12x of 1. The likely cause, not proven: there every syscall flushes the TLB, so each per-call run meets every page it touches cold, while repeated rows, and packets of a real NAPI batch, keep their TLB entries.\n",
		at(first, floorRepeated).Nanoseconds(), at(first, floorPerCall).Nanoseconds())
	fmt.Fprintf(b, "- **Established, flow cache hit** (%d ns above the floor at %s, %d ns at %s): the packet is parsed, the config read, its flow hashed to one slot of a per-CPU array (no hash-map walk, no lock) and the tuple compared; then the path's counters are bumped and the verdict applied (the steering mark, or pass). Nothing here depends on the number of intercepts, so the columns stay flat. What is left above the floor is the parse (Ethernet, VLAN tags, IP, TCP or UDP, read in place), the hash and three array lookups, each a few inlined instructions: the config, the slot (one 64-byte entry) and one per-CPU counter for the outcome.\n",
		above(first, steeredHit), intercepts(p.counts[first]), above(last, steeredHit), intercepts(p.counts[last]))
	fmt.Fprintf(b, "- **Established, flow cache miss.** The same steered flow run once per call costs %d ns when the cache holds it and %d ns when it does not, so a miss adds %d ns: the interface settings (`diag_map`), the rules' verdict (the policy lookup a new flow makes: no map remembers steered connections, whose sockets keep them steered across rule changes) and the rewrite of the cache slot. A segment the rules pass pays a socket lookup of its tuple on top (%d ns, no socket holding it, as for traffic a router forwards): a connection steered before a rule change is found that way and kept. An inbound session's miss reads `tcp_ingress_map`, a reply's `tcp_map`, and both update the session's state and timestamp; the packet's ports choose which map is read first (a reply mostly goes from a service port to a higher, ephemeral one), and the other is read only on a miss. Replies cost %d ns. These maps are large and the cycled flows' entries are cold, so each lookup is a cache miss to memory, as it is on a busy host. "+
		"Misses happen to a flow's first packets after its SYN, when more flows than the cache's %s slots per CPU are active at once (a colliding flow takes the slot), every %d jiffies for sessions (the cache goes back to the session to refresh its idle timer), after a rule change for rule verdicts, and after interface settings change or sessions are flushed (the cache epoch).\n",
		at(first, steeredHitPerCall).Nanoseconds(), at(first, steeredMiss).Nanoseconds(), (at(first, steeredMiss) - at(first, steeredHitPerCall)).Nanoseconds(),
		at(first, passedMiss).Nanoseconds(),
		at(first, replyMiss).Nanoseconds(), count(flowCacheSlots), 64)
	fmt.Fprintf(b, "- **DDoS protection and OT filtering** keep the flow cache out (their checks are per packet): an established packet there pays the ban lookup, the SYN counter, the DNP3/Modbus checks and the policy lookup (%d ns above the floor).\n",
		above(first, protectedEstablished))
	fmt.Fprintf(b, "- **New flows** cost one hash lookup per prefix length in use for the packet's family and protocol (`prefix_len_map`, kept by the control plane), longest first, then a scan of the matching prefix's rules, which sit in consecutive `range_map` slots. With 1 intercept one length is in use (/32, or /128); from 50 intercepts on two (/32 and /24, /128 and /120), so a packet that matches nothing (PASS, DENY) makes two lookups, a packet to a /32 intercept one. The count of lookups does not grow with the intercepts; the tables do: at %s intercepts `zt_tproxy_map` holds %s keys per family, whose buckets no longer stay in the CPU's caches, so each lookup becomes a memory access.\n",
		count(p.counts[last]), count(p.sizes[last].prefixes4))
	fmt.Fprintf(b, "- **A new flow to an intercept** (%d ns above the floor) inserts nothing (no map remembers steered connections) and makes one socket lookup (`bpf_skc_lookup_tcp`) of the flow's own tuple, which a socket of an earlier connection may still hold (then the SYN is left to it: see `Stats.TupleInUse`), and one of the listener the owner handed over (`listener_map`); here there is none, so it is counted and dropped (`bpf_sk_assign` is refused under test runs anyway). **DENY** on a default-deny interface checks the passthroughs (SSH to the interface's own addresses) before dropping. **PASS** on a plain interface is the policy lookup alone.\n",
		above(first, newTProxy))
	fmt.Fprintf(b, "- **Masquerade** runs on egress: the translation lookup in `masquerade_map`, the address and port rewrite and the checksum updates; the flow cache does not serve masquerading interfaces.\n")
	fmt.Fprintf(b, "- **Verifier**: each stage of a program (the interface settings, packets without ports, the OT/DDoS/masquerade guards, sessions, the rule verdict and its application, steering, events, the policy lookup and its rule match) is a global function, which the verifier checks once on its own instead of on every path that reaches it, and the walk over IPv6 extension headers is a `bpf_loop` body, checked once instead of for every combination of header kinds. So `zfw_ingress` costs the verifier %s instructions for a program of %s, against a budget of 250,000 that a test holds every program to (a quarter of the kernel's limit), and loads in well under a second on this machine, once per `New`. The kernel matrix (`make test-kernels`) holds every program to the same budget on each kernel it boots.\n\n",
		verified(p, "zfw_ingress"), instructions(p, "zfw_ingress"))

	fmt.Fprintf(b, "### End to end\n\n")
	writeWhyEndToEnd(b, r.e2e)
	fmt.Fprintf(b, "### Control plane\n\n")
	writeWhyControl(b, r.control)

	var misses []string
	for _, g := range goals {
		if !g.met {
			misses = append(misses, g.id)
		}
	}
	if len(misses) == 0 {
		fmt.Fprintf(b, "### Goals\n\nEvery goal was met in this run.\n")
		return
	}
	fmt.Fprintf(b, "### Goals missed, and what they would need\n\n")
	registration := false
	for _, id := range misses {
		switch id {
		case goalEstablishedHit:
			fmt.Fprintf(b, "- **Established within 2x (cache hit).** The hit path does no hash lookup already; what remains is the parse, the hash and three array lookups. Closer to the floor would need less parsing (an XDP program could hand the parsed tuple to TC in packet metadata) or no program on established packets at all (see the next point).\n")
		case goalEstablishedMiss:
			fmt.Fprintf(b, "- **Established within 2x without the flow cache.** The design meets the 2x goal through the cache; a packet the cache does not hold pays at least one hash lookup on cold memory: the rules' for a steered connection (no map of its own: its socket keeps it steered across rule changes), its session's on a default-deny interface, and a socket lookup for a segment the rules pass. Being within 2x without any lookup would need steering that established packets never meet: a `sk_lookup` program (as cloudflare/tubular does) runs only for new connections and unconnected UDP, but it needs the intercepted prefixes routed locally (the per-service routes zfw avoids); with one fwmark rule instead, an unmarked established segment reaches its socket only while the input route the kernel cached in the socket is valid, and any route change in the namespace voids it. Sessions on default-deny interfaces would still need their state somewhere the packet finds without a hash (e.g. socket-local storage once the socket is known, which TC ingress does not have yet).\n")
		case goalNewFlowScaling:
			fmt.Fprintf(b, "- **New flows at %s intercepts within 1.5x of 1.** Lookups per packet are constant (one per prefix length in use); what grows is the memory they touch: at 1 intercept the prefix map and rule block sit in L1, at %s the hash buckets and entries are cache misses. Staying within 1.5x would need fewer or smaller touches per new flow: one prefix key for both protocols (halving the table), a smaller value so a bucket's entries share a cache line, or a per-length presence bitmap consulted before each hash lookup so that lengths with no match cost no memory access.\n",
				count(p.counts[last]), count(p.counts[last]))
		case goalEndToEnd:
			fmt.Fprintf(b, "- **End to end within 90%% of no interception.** See *End to end* above for what an intercepted connection pays that a plain one does not.\n")
		case goalRegister10k, goalRegister100k:
			if registration {
				continue // one paragraph covers both counts
			}
			registration = true
			fmt.Fprintf(b, "- **Registration time.** Registering is a handful of map updates per rule (see *Control plane*); on a machine this slow or this loaded it would need fewer of them: one prefix key for both protocols, or batched map updates (`BPF_MAP_UPDATE_BATCH`) for a Sync.\n")
		}
	}
	fmt.Fprintln(b)
}

func verified(p packetResults, name string) string {
	for _, s := range p.verifier {
		if s.Name == name {
			return count(s.Verified)
		}
	}
	return "?"
}

func instructions(p packetResults, name string) string {
	for _, s := range p.verifier {
		if s.Name == name {
			return count(s.Instructions)
		}
	}
	return "?"
}

func writeWhyEndToEnd(b *bytes.Buffer, e e2eResults) {
	fmt.Fprintf(b, "- An intercepted connection pays, on top of a plain one: the ingress program on every packet (a flow-cache hit after the SYN), a socket lookup and `bpf_sk_assign` for the SYN, and policy routing: with any `ip rule` installed the kernel walks the rule list on every route lookup instead of going straight to the main table. The TPROXY listener accepts connections addressed to a non-local address, which the plain listener does not need. The server closes first, so the router holds each connection's tuple in TIME_WAIT for a minute and the client soon reuses such tuples: the kernel hands a SYN that a TIME_WAIT socket accepts as a new connection to the listener of the SYN's destination, which for an intercepted address does not exist; zfw's `sk_lookup` program hands it to the TPROXY listener instead (`Stats.TupleHandedOver`), so it is not answered with an ACK, reset and sent again (issue 14: 1,606 SYN retransmissions over 8,599 connections before). The retransmitted column shows what is left. iptables TPROXY pays the same policy routing and, instead of the BPF program, walks the mangle chain rule by rule for every packet, not only for the SYN: its cost grows with the number of rules in front of the matching one.\n")
	fmt.Fprintf(b, "- The rates are those of Go clients and a Go server on the same two cores as the kernel's forwarding; connection setup and teardown dominate the connections/s test, the copy of data the throughput test. Both share the cores with the other work on this machine, which is why each configuration is measured between two measurements of the limit and set against them, and the rounds interleave the configurations; a single stream's rate varies by about a fifth from one stream to the next, whatever its length, so each throughput figure is the mean of several streams; that mean still varies by about a tenth, so a ratio within ten points of 100%% is within the noise.\n\n")
}

func writeWhyControl(b *bytes.Buffer, c controlResults) {
	fmt.Fprintf(b, "- `Register` compiles one intercept to its rules (one per protocol, address and port range), writes them make-before-break (the rule values and `range_map` blocks before the prefix keys that point at them) and updates `prefix_len_map` and `tproxy_extension_map`: a handful of map updates per rule, so registering one by one grows about linearly with the intercepts.\n")
	var shared []controlRow
	for _, r := range c.rows {
		if r.ports == 1 {
			shared = append(shared, r)
		}
	}
	if len(shared) > 1 {
		a, z := shared[0], shared[len(shared)-1]
		per := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }
		fmt.Fprintf(b, "- `Sync` diffs the desired set against the registered one and applies the difference as one change, make-before-break like `Register`, with the change's rules indexed by id. Per intercept it took %.0f µs at %s intercepts and %.0f µs at %s (Register, one by one: %.0f and %.0f µs): both grow about linearly with the rules (%s at %s intercepts). What rises per intercept at the larger counts is the cost of map updates in bigger hash tables and of the Go maps that mirror them.\n",
			per(a.syncAdd.Median, a.intercepts), count(a.intercepts), per(z.syncAdd.Median, z.intercepts), count(z.intercepts),
			per(a.register.Median, a.intercepts), per(z.register.Median, z.intercepts), count(bench.RuleCount(bench.Intercepts(z.intercepts, 1, 1))), count(z.intercepts))
	}
	fmt.Fprintf(b, "- With a TPROXY port each, a Register that names a port first also looks for the port's listener (one `sock_diag` lookup in the dataplane's namespace) to hand it over to the dataplane; ports still without one are looked for again each second, in one listing of the namespace's sockets whatever their number.\n")
	fmt.Fprintf(b, "- The kernel memory that grows with the intercepts is in the maps created without preallocation (the prefix maps, `rule_store_map`, `tproxy_extension_map`, `rule_hits_map`, which is per CPU), plus `range_map`, which is preallocated to `MaxRules` up front. Most of an empty dataplane's memory is the preallocated session, masquerade and flow-cache maps, which do not depend on the intercepts.\n\n")
}
