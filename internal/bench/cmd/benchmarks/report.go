package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zfw-go/zfw/internal/bench"
)

// report renders BENCHMARKS.md.
func report(cfg config, r results) []byte {
	var b bytes.Buffer
	writeHeader(&b, cfg, r.machine)
	g := evaluateGoals(cfg, r)
	writeGoals(&b, g)
	writePerPacket(&b, cfg, r.packets)
	writeEndToEnd(&b, cfg, r.e2e)
	writeControlPlane(&b, r.control, r.packets)
	writeZiti(&b, r.ziti)
	writeKernels(&b, cfg, r.kernels)
	writeWhy(&b, cfg, r, g)
	return b.Bytes()
}

func writeHeader(b *bytes.Buffer, cfg config, m machine) {
	fmt.Fprintf(b, "# Benchmarks\n\n")
	fmt.Fprintf(b, "Written by `make bench` (`go run ./internal/bench/cmd/benchmarks -o BENCHMARKS.md`) from one run; do not edit by hand.\n\n")
	if cfg.quick {
		fmt.Fprintf(b, "**This is a `-quick` smoke run: few rounds, small counts. Its numbers are not for comparison.**\n\n")
	}
	fmt.Fprintf(b, "| | |\n|---|---|\n")
	fmt.Fprintf(b, "| date | %s |\n| commit | %s |\n| machine | %s |\n| kernel | %s |\n| CPU | %s (%d cores) |\n| Go | %s |\n\n",
		m.date, m.commit, m.host, m.kernel, m.cpu, m.cores, m.goVersion)
}

// ns formats a timing as "median [min–max]" in nanoseconds.
func ns(t bench.Timing) string {
	return fmt.Sprintf("%d [%d–%d]", t.Median.Nanoseconds(), t.Min.Nanoseconds(), t.Max.Nanoseconds())
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func count(n int) string {
	s := fmt.Sprint(n)
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, out...), ",")
}

// intercepts is "1 intercept", "1,000 intercepts".
func intercepts(n int) string {
	if n == 1 {
		return "1 intercept"
	}
	return count(n) + " intercepts"
}

func mib(bytes int64) string {
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}

// floorOf is the floor a path is compared with: the empty program
// measured the same way.
func floorOf(p path) path {
	if paths[p].perCall {
		return floorPerCall
	}
	return floorRepeated
}

func writePerPacket(b *bytes.Buffer, cfg config, res packetResults) {
	fmt.Fprintf(b, "## Per packet (BPF_PROG_TEST_RUN)\n\n")
	fmt.Fprintf(b, "Nanoseconds per packet in the kernel, median over rounds [min–max] (%d rounds of a repeated row, %d of a per-call row). The factor is the path's time over the empty TC program's: every round of a path follows a round of the empty program run the same way on the same frames, and the factor is the median over rounds of the two's ratio, so a slow moment of the shared machine weighs on both sides of it. All runs are made from one thread pinned to one CPU. The floor rows are the empty program measured alone at the start of each column. "+
		"*Repeated* rows run one packet %s times per round inside one BPF_PROG_TEST_RUN; *per call* rows run each packet once per BPF_PROG_TEST_RUN, %s per round, which adds the kernel's timer reads and a cold cache to every packet, so they are compared with the empty program run once per call. "+
		"The flow cache column is the share of the measured packets the per-CPU flow cache decided (over all counts), read from `Stats.FlowCacheHits`; every row also checks that each packet bumped its path's counter. "+
		"Cache-miss rows cycle through %s established flows, more than the %s slots per CPU of the direct-mapped flow cache, so each packet finds its slot taken by another flow.\n\n",
		cfg.repeatedRounds, cfg.rounds, count(cfg.repeat), count(cfg.perRound), count(cfg.missFlows), count(flowCacheSlots))
	fmt.Fprintf(b, "The dataplane holds *n* intercepts (`internal/bench.Intercepts`): each covers TCP and UDP on one IPv4 /32 and one IPv6 /128, port 443; every 50th adds an IPv4 /24 and an IPv6 /120 on ports 8000-8099 (which, above 32,768 intercepts, overlap other intercepts' hosts); every 200th adds ports 440-450, overlapping its own 443. Steered packets go to the last intercept registered. "+
		"It is attached to lo (intercepts only), a default-deny interface with one pass rule (inbound sessions; the host's outbound sessions), a masquerading interface, and an interface with DDoS protection and OT filtering; the test runs name the interface through the `__sk_buff` context's ifindex.\n\n")
	for fi, fam := range families {
		fmt.Fprintf(b, "### %s\n\n| path | how |", fam.name)
		for _, n := range res.counts {
			fmt.Fprintf(b, " %s |", intercepts(n))
		}
		fmt.Fprintf(b, " flow cache |\n|---|---|")
		for range res.counts {
			fmt.Fprintf(b, "---|")
		}
		fmt.Fprintf(b, "---|\n")
		for p := range numPaths {
			how := "repeated"
			if paths[p].perCall {
				how = "per call"
			}
			fmt.Fprintf(b, "| %s | %s |", paths[p].label, how)
			lo, hi := 1.0, 0.0
			for ci := range res.counts {
				m := res.m[fi][ci][p]
				if p == floorRepeated || p == floorPerCall {
					fmt.Fprintf(b, " %s |", ns(m.t))
					continue
				}
				fmt.Fprintf(b, " %s · **%.1fx** |", ns(m.t), m.factor.Median)
				lo, hi = min(lo, m.hits), max(hi, m.hits)
			}
			switch {
			case p == floorRepeated || p == floorPerCall:
				fmt.Fprintf(b, " |\n")
			case hi-lo < 0.005:
				fmt.Fprintf(b, " %.0f%% |\n", 100*hi)
			default:
				fmt.Fprintf(b, " %.0f–%.0f%% |\n", 100*lo, 100*hi)
			}
		}
		fmt.Fprintln(b)
	}
	fmt.Fprintf(b, "### Dataplane per intercept count\n\nMaps sized to the intercepts (`MaxRules`, `MaxPrefixes` just above what they need, so the largest count runs with its maps at capacity). Kernel map memory is the sum of every map's `memlock` (fdinfo): preallocated maps (`range_map`, the session and cache maps) count their capacity, the others what they hold.\n\n")
	fmt.Fprintf(b, "| intercepts | rules | prefix keys IPv4 / IPv6 | MaxRules / MaxPrefixes | Register, one by one | kernel map memory | of which range_map |\n|---|---|---|---|---|---|---|\n")
	for _, s := range res.sizes {
		var rangeMap uint64
		for _, m := range s.maps {
			if m.Name == "range_map" {
				rangeMap = m.Bytes
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s / %s | %s / %s | %s | %s | %s |\n", count(s.intercepts), count(s.rules), count(s.prefixes4), count(s.prefixes6),
			count(s.maxRules), count(s.maxPrefixes), s.register.Round(time.Millisecond), mib(int64(bench.TotalBytes(s.maps))), mib(int64(rangeMap)))
	}
	fmt.Fprintf(b, "\n### Verifier\n\nInstructions the verifier processed to load each program (the kernel's `verified_insns`), next to the program's length.\n\n| program | instructions | verified instructions |\n|---|---|---|\n")
	for _, p := range res.verifier {
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", p.Name, count(p.Instructions), count(p.Verified))
	}
	fmt.Fprintf(b, "\nEvents: %s events per second reached a Go reader of `fw.Events` (drops on a verbose default-deny interface, offered as fast as test runs make them, the kernel rate limit above the offered rate).\n\n", count(int(res.eventsPerSecond)))
}

func writeEndToEnd(b *bytes.Buffer, cfg config, res e2eResults) {
	clients := make([]string, len(cfg.e2eClients))
	for i, c := range cfg.e2eClients {
		clients[i] = strconv.Itoa(c)
	}
	fmt.Fprintf(b, "## End to end (network namespaces, veth)\n\n")
	fmt.Fprintf(b, "A client namespace connects through a veth to a TPROXY listener (`tproxy.ListenTCP` on 127.0.0.1) in the router namespace; both ends are Go (`internal/bench`: load clients, server). "+
		"*Connections per second*: %s concurrent clients, %s each, each client connecting, sending one %d-byte request and reading the %d-byte response, after which the server closes (its side of each connection stays in TIME_WAIT, and the client reuses such tuples); *latency* is one connection's, from the dial to the response read and the connection closed (p50, p99 of each round, median over rounds); *retransmitted* counts the segments the client's and the router's TCP stacks retransmitted (`RetransSegs`), per 1,000 connections over all rounds. *Throughput*: one TCP stream at a time, counted by the receiver: the mean rate of %d streams of %s, one after the other (the rate of a single stream varies by about a fifth from one stream to the next, however long it runs); the sending and the receiving thread are pinned to different CPUs, so that where the scheduler puts them does not decide the rate. "+
		"*No interception* is a plain listener on the router's own address: the limit of this machine for the same client and server code. "+
		"*zfw* is the dataplane attached with default options (`zfw.Interface{Name: …}`) on the router's client-facing interface, with *n* intercepts registered one by one (`Register`), all on the one TPROXY port; the client connects to the last one's address. "+
		"*iptables TPROXY* is how OpenZiti's Go tunneler intercepts without a diverter: one mangle rule per intercept (`-p tcp -d ADDR --dport PORT -j TPROXY --on-ip 127.0.0.1 --on-port PORT --tproxy-mark 0x1/0x1`, the intercept's first IPv4 address and port range; the tunneler adds one per address, protocol and range, so real chains are longer) in a chain jumped to from PREROUTING, plus `ip rule fwmark 0x1/0x1 lookup 100` and `ip route add local 0.0.0.0/0 dev lo table 100`, all inside the router namespace. "+
		"The tested service's rule is the **last** of the chain (the worst case of the linear scan; the tunneler inserts new rules at the top, so the oldest service is last). "+
		"Median of %d rounds [min–max] (the limit's rows: of all its measurements). Within a round the limit is measured before and after each configuration, and the rounds interleave the configurations; the ratio is the median over rounds of the configuration's result over the mean of the limit's just before and just after it. Client, router and server share the machine's %d cores.\n\n",
		strings.Join(clients, ", "), cfg.e2eDuration, bench.MessageSize, bench.MessageSize, cfg.e2eStreams, cfg.streamDuration(), cfg.e2eRounds, describeMachine().cores)
	fmt.Fprintf(b, "| configuration | clients | connections/s | of the limit | latency p50 | latency p99 | retransmitted per 1,000 connections |\n|---|---|---|---|---|---|---|\n")
	for _, r := range res.rows {
		for _, c := range r.conns {
			fmt.Fprintf(b, "| %s | %d | %s [%s–%s] | %.0f%% | %s | %s | %.1f |\n", r.setup, c.clients,
				count(int(c.rate.Median)), count(int(c.rate.Min)), count(int(c.rate.Max)), 100*c.ratio,
				latency(c.p50), latency(c.p99), c.retransPer1000)
		}
	}
	fmt.Fprintf(b, "\n| configuration | Gbit/s, one stream | of the limit |\n|---|---|---|\n")
	for _, r := range res.rows {
		fmt.Fprintf(b, "| %s | %.2f [%.2f–%.2f] | %.0f%% |\n", r.setup, r.bits.Median/1e9, r.bits.Min/1e9, r.bits.Max/1e9, 100*r.bitsRatio)
	}
	fmt.Fprintln(b)
}

// latency writes a connection's latency in microseconds.
func latency(d time.Duration) string {
	return count(int(d.Microseconds())) + " µs"
}

func writeControlPlane(b *bytes.Buffer, res controlResults, packets packetResults) {
	fmt.Fprintf(b, "## Control plane\n\n")
	fmt.Fprintf(b, "Each round on a fresh dataplane (maps sized for the intercepts), attached with default options to the client-facing interface of a router namespace: register the intercepts one by one through `Firewall.Register` (as a tunneler does when services arrive), unregister them one by one, then `Sync` from none to all and from all to none. The intercepts share one TPROXY port (as OpenZiti's tunnelers have them), or have one each (at most %s ports, shared beyond); only ports without a listener here, so every port's listener is looked for. *Per intercept* is Register's time over the count: flat if Register scales linearly. Median [min–max] of the rounds shown.\n\n", count(maxPorts))
	fmt.Fprintf(b, "| intercepts | TPROXY ports | rounds | Register, one by one | per intercept | Unregister, one by one | Sync, none to all | Sync, all to none |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.rows {
		fmt.Fprintf(b, "| %s | %s | %d | %s | %.0f µs | %s | %s | %s |\n", count(r.intercepts), count(r.ports), r.rounds, dur(r.register),
			float64(r.register.Median.Microseconds())/float64(r.intercepts), dur(r.unregister), dur(r.syncAdd), dur(r.syncRemove))
	}
	fmt.Fprintf(b, "\nMemory that registering the intercepts added (first round, one shared TPROXY port): the Go heap still held after garbage collection, and the kernel maps' memory (fdinfo `memlock`).\n\n| intercepts | Go heap | per 10,000 intercepts | kernel maps | per 10,000 intercepts |\n|---|---|---|---|---|\n")
	for _, r := range res.rows {
		if r.ports != 1 {
			continue // the same rules; the ports do not change the memory much
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", count(r.intercepts), mib(r.heapBytes), mib(r.heapBytes*10000/int64(r.intercepts)), mib(r.mapBytes), mib(r.mapBytes*10000/int64(r.intercepts)))
	}
	total := bench.TotalBytes(res.defaultMaps)
	fmt.Fprintf(b, "\nAn empty dataplane with the default capacities (250,000 rules, 100,000 prefixes per family) takes %s of kernel memory; the largest maps:\n\n| map | max entries | memory |\n|---|---|---|\n", mib(int64(total)))
	for i, m := range res.defaultMaps {
		if i == 8 {
			break
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", m.Name, count(m.MaxEntries), mib(int64(m.Bytes)))
	}
	if n := len(packets.sizes); n > 0 {
		s := packets.sizes[n-1]
		fmt.Fprintf(b, "\nAt capacity: the per-packet dataplane with %s intercepts (%s rules, maps sized to hold them) takes %s (see *Dataplane per intercept count*).\n",
			count(s.intercepts), count(s.rules), mib(int64(bench.TotalBytes(s.maps))))
	}
	fmt.Fprintln(b)
}

func dur(t bench.Timing) string {
	r := func(d time.Duration) time.Duration {
		if d >= time.Second {
			return d.Round(10 * time.Millisecond)
		}
		return d.Round(time.Millisecond)
	}
	if t.Min == t.Max {
		return r(t.Median).String()
	}
	return fmt.Sprintf("%s [%s–%s]", r(t.Median), r(t.Min), r(t.Max))
}
