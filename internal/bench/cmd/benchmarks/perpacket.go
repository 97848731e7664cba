package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// path is one way through the ingress (or egress) program that the
// per-packet section measures.
type path int

const (
	floorRepeated path = iota
	floorPerCall
	steeredHit
	steeredHitPerCall
	steeredMiss
	passedMiss
	inboundHit
	inboundMiss
	replyHit
	replyMiss
	protectedEstablished
	newTProxy
	newPass
	newDeny
	protectedNew
	masquerade
	numPaths
)

// pathInfo says how a path is measured and which counter proves that
// the packets took it.
type pathInfo struct {
	label string
	// perCall: one run per BPF_PROG_TEST_RUN (new flows, flows cycled
	// to miss the cache, packets the program rewrites); otherwise one
	// packet repeated in the kernel.
	perCall bool
	// established: the packet belongs to a flow already decided (the
	// "within 2x of the floor" goal applies); cacheMiss: one the flow
	// cache does not hold.
	established, cacheMiss bool
	// counter is the Stats counter every measured packet must bump.
	counter func(zfw.Stats) uint64
}

var paths = [numPaths]pathInfo{
	floorRepeated: {label: "empty TC program (floor), one packet repeated"},
	floorPerCall:  {label: "empty TC program (floor), one run per call", perCall: true},
	steeredHit: {label: "established steered TCP (intercept), flow cache hit", established: true,
		counter: func(s zfw.Stats) uint64 { return s.CacheHits }},
	steeredHitPerCall: {label: "established steered TCP (intercept), flow cache hit, to compare with the miss", perCall: true, established: true,
		counter: func(s zfw.Stats) uint64 { return s.CacheHits }},
	steeredMiss: {label: "established steered TCP (intercept), flow cache miss", perCall: true, established: true, cacheMiss: true,
		counter: func(s zfw.Stats) uint64 { return s.PolicyLookups }},
	passedMiss: {label: "established TCP the rules pass (no socket holds its tuple), flow cache miss", perCall: true, established: true, cacheMiss: true,
		counter: func(s zfw.Stats) uint64 { return s.Passed }},
	inboundHit: {label: "established inbound session (fast path, default-deny interface), flow cache hit", established: true,
		counter: func(s zfw.Stats) uint64 { return s.FastPath }},
	inboundMiss: {label: "established inbound session (fast path, default-deny interface), flow cache miss", perCall: true, established: true, cacheMiss: true,
		counter: func(s zfw.Stats) uint64 { return s.FastPath }},
	replyHit: {label: "reply to an outbound session (default-deny interface), flow cache hit", established: true,
		counter: func(s zfw.Stats) uint64 { return s.Replies }},
	replyMiss: {label: "reply to an outbound session (default-deny interface), flow cache miss", perCall: true, established: true, cacheMiss: true,
		counter: func(s zfw.Stats) uint64 { return s.Replies }},
	protectedEstablished: {label: "established steered TCP on a DDoS + OT filtering interface (never cached)", established: true, cacheMiss: true,
		counter: func(s zfw.Stats) uint64 { return s.PolicyLookups }},
	newTProxy: {label: "new flow to a TPROXY intercept, TCP SYN", perCall: true,
		counter: func(s zfw.Stats) uint64 { return s.NoListener }},
	newPass: {label: "new flow, no rule matches, PASS (UDP)", perCall: true,
		counter: func(s zfw.Stats) uint64 { return s.Passed }},
	newDeny: {label: "new flow, no rule matches, DENY (default-deny interface, TCP SYN)", perCall: true,
		counter: func(s zfw.Stats) uint64 { return s.Denied }},
	protectedNew: {label: "new flow to a TPROXY intercept on a DDoS + OT filtering interface, TCP SYN", perCall: true,
		counter: func(s zfw.Stats) uint64 { return s.NoListener }},
	masquerade: {label: "masqueraded packet (egress, mapping exists), UDP", perCall: true,
		counter: func(s zfw.Stats) uint64 { return s.Masqueraded }},
}

// measurement is one path at one intercept count in one family.
type measurement struct {
	t bench.Timing
	// factor: over rounds, the path's time over the empty program's,
	// run the same way in the round just before (zero for the floors).
	factor bench.Spread
	// hits is the share of the measured packets the flow cache decided.
	hits float64
}

// sizeRow describes the dataplane built for one intercept count.
type sizeRow struct {
	intercepts, rules, prefixes4, prefixes6 int
	maxRules, maxPrefixes                   int
	register                                time.Duration
	maps                                    []bench.MapMemory
}

type packetResults struct {
	counts []int
	// m[family][count index][path]
	m        [2][][numPaths]measurement
	sizes    []sizeRow
	verifier []bench.ProgramSize
	// eventsPerSecond delivered to a Go reader.
	eventsPerSecond float64
}

// family is the address plan of one IP family.
type family struct {
	name string
	// client opens flows towards the host; target is an address the
	// pass rule admits on port 80; host is the host's own address on
	// the default-deny interface and server the remote end of its
	// outbound sessions; other matches no rule; routed is a client the
	// host masquerades.
	client, target, host, server, other, routed netip.Addr
	svc                                         func(i int) netip.Addr
}

var families = [2]family{
	{name: "IPv4",
		client: netip.MustParseAddr("192.168.1.2"), target: netip.MustParseAddr("10.250.0.1"),
		host: netip.MustParseAddr("10.251.0.1"), server: netip.MustParseAddr("10.252.0.2"),
		other: netip.MustParseAddr("172.31.0.1"), routed: netip.MustParseAddr("192.168.9.5"),
		svc: bench.HostAddr},
	{name: "IPv6",
		client: netip.MustParseAddr("fd00:192::2"), target: netip.MustParseAddr("fd00:250::1"),
		host: netip.MustParseAddr("fd00:251::1"), server: netip.MustParseAddr("fd00:252::2"),
		other: netip.MustParseAddr("fd00:31::1"), routed: netip.MustParseAddr("fd00:9::5"),
		svc: bench.HostAddr6},
}

// Interfaces of the per-packet namespace, besides lo (a plain
// interface: intercepts only, no default deny).
const (
	ifDefaultDeny = "zfwdd"
	ifMasquerade  = "zfwmq"
	ifProtected   = "zfwpr"
)

var masqueradeAddrs = []string{"10.253.0.1/24", "fd00:253::1/64"}

func perPacket(ctx context.Context, cfg config) (packetResults, error) {
	ns, err := testenv.NewNamespace(benchName())
	if err != nil {
		return packetResults{}, err
	}
	defer ns.Close()
	var res packetResults
	// Everything runs inside the namespace: the dataplane attaches to
	// its interfaces and installs its policy routing there.
	err = ns.Do(func() error {
		// One CPU for every run: the flow cache is per CPU, and a path
		// and the floor it is set against must share the CPU's caches.
		unpin, err := bench.PinThread(0)
		if err != nil {
			return err
		}
		defer unpin()
		ifindex, err := makeInterfaces(ns.Netlink())
		if err != nil {
			return err
		}
		if res.verifier, err = bench.VerifierSizes(); err != nil {
			return err
		}
		empty, err := bench.EmptyProgram()
		if err != nil {
			return fmt.Errorf("load the empty program: %w", err)
		}
		defer empty.Close()
		res.counts = cfg.counts
		for fi := range families {
			res.m[fi] = make([][numPaths]measurement, len(cfg.counts))
		}
		for ci, n := range cfg.counts {
			cfg.log.Infof("per packet: %d intercepts", n)
			dp, size, err := newPacketDataplane(ctx, cfg, n, ifindex)
			if err != nil {
				return fmt.Errorf("%d intercepts: %w", n, err)
			}
			res.sizes = append(res.sizes, size)
			for fi, fam := range families {
				row, err := dp.measureFamily(cfg, fam, n, empty)
				if err != nil {
					dp.close()
					return fmt.Errorf("%d intercepts, %s: %w", n, fam.name, err)
				}
				res.m[fi][ci] = row
			}
			dp.close()
		}
		res.eventsPerSecond, err = eventRate(ctx, cfg)
		return err
	})
	return res, err
}

// makeInterfaces adds the interfaces the per-packet dataplane attaches
// to (the test runs name them by ifindex), each a veth whose peer stays
// unused, and returns their indexes by name, lo included.
func makeInterfaces(h *netlink.Handle) (map[string]int, error) {
	out := map[string]int{"lo": 1}
	for _, name := range []string{ifDefaultDeny, ifMasquerade, ifProtected} {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "-p"}
		if err := h.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("add %s: %w", name, err)
		}
		l, err := h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("find %s: %w", name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("set %s up: %w", name, err)
		}
		out[name] = l.Attrs().Index
	}
	l, err := h.LinkByName(ifMasquerade)
	if err != nil {
		return nil, err
	}
	for _, s := range masqueradeAddrs {
		p := netip.MustParsePrefix(s)
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(l, a); err != nil {
			return nil, fmt.Errorf("address %s on %s: %w", s, ifMasquerade, err)
		}
	}
	return out, nil
}

// packetDataplane is a dataplane holding n intercepts, attached to lo
// and the veths, with its programs open for test runs.
type packetDataplane struct {
	fw      *zfw.Firewall
	in, out *ebpf.Program
	ifindex map[string]int
}

func newPacketDataplane(ctx context.Context, cfg config, n int, ifindex map[string]int) (*packetDataplane, sizeRow, error) {
	ics := bench.Intercepts(n, 20000, 2000)
	size := sizeRow{
		intercepts: n,
		rules:      bench.RuleCount(ics),
		prefixes4:  bench.PrefixKeys(ics, true),
		prefixes6:  bench.PrefixKeys(ics, false),
	}
	// Maps sized to what the intercepts need (plus the pass rules
	// below), so the largest count runs with its maps at capacity.
	size.maxRules = max(size.rules+size.rules/100+16, 1024)
	size.maxPrefixes = max(max(size.prefixes4, size.prefixes6)*101/100+16, 1024)
	pin := benchPin()
	fw, err := zfw.New(zfw.Options{
		PinPath: pin,
		Interfaces: []zfw.Interface{
			{Name: "lo"},
			{Name: ifDefaultDeny, InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true}},
			{Name: ifMasquerade, InterfaceSettings: zfw.InterfaceSettings{Masquerade: true}},
			{Name: ifProtected, InterfaceSettings: zfw.InterfaceSettings{DDoSProtection: true, OTFiltering: true}},
		},
		MaxRules: size.maxRules, MaxPrefixes: size.maxPrefixes,
		// New flows here come from one source: keep it under the ban.
		SYNFlood: ddos.SYNFlood{SYNsPerSecond: 1 << 30},
		Logger:   cfg.log,
	})
	if err != nil {
		return nil, size, err
	}
	dp := &packetDataplane{fw: fw, ifindex: ifindex}
	// One by one, as a tunneler registers services: one Sync of this
	// many is far slower (see the control plane section).
	if size.register, err = bench.Each(ctx, ics, fw.Register); err != nil {
		dp.close()
		return nil, size, fmt.Errorf("register %d intercepts: %w", n, err)
	}
	for _, fam := range families {
		r := zfw.Rule{Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.PrefixFrom(fam.target, fam.target.BitLen()), Ports: intercept.PortRange{Low: 80, High: 80}}
		if _, err := fw.Rules().Add(ctx, r); err != nil {
			dp.close()
			return nil, size, fmt.Errorf("pass rule: %w", err)
		}
	}
	if dp.in, err = bench.AttachedProgram(pin, "lo", "ingress"); err != nil {
		dp.close()
		return nil, size, err
	}
	if dp.out, err = bench.AttachedProgram(pin, "lo", "egress"); err != nil {
		dp.close()
		return nil, size, err
	}
	if size.maps, err = bench.MapsOf(dp.in, dp.out); err != nil {
		dp.close()
		return nil, size, err
	}
	return dp, size, nil
}

func (dp *packetDataplane) close() {
	if dp.in != nil {
		dp.in.Close()
	}
	if dp.out != nil {
		dp.out.Close()
	}
	dp.fw.Close()
}

// measure runs rs.path (rounds of r) against rs.floor in alternating rounds
// and checks that every run of r took the path (its counter grew by at
// least the runs made).
func (dp *packetDataplane) measure(p path, r *bench.Runner, rs roundPair) (measurement, error) {
	runs0 := r.Runs()
	before, err := dp.fw.Stats()
	if err != nil {
		return measurement{}, err
	}
	// The frames built for the path are garbage soon: collect now, so
	// that no collection runs on the other CPU while the path is
	// measured, competing for the caches and memory the CPUs share.
	runtime.GC()
	c, err := bench.Compare(rs.path, rs.floor, rs.rounds)
	if err != nil {
		return measurement{}, fmt.Errorf("%s: %w", paths[p].label, err)
	}
	after, err := dp.fw.Stats()
	if err != nil {
		return measurement{}, err
	}
	runs := r.Runs() - runs0
	if got := paths[p].counter(after) - paths[p].counter(before); got < runs {
		return measurement{}, fmt.Errorf("%s: only %d of %d runs took the path", paths[p].label, got, runs)
	}
	return measurement{t: c.Path, factor: c.Factor, hits: float64(after.FlowCacheHits-before.FlowCacheHits) / float64(runs)}, nil
}

// roundPair is a path's round and the floor's, run the same way, and
// how many of each to run.
type roundPair struct {
	path, floor bench.Round
	rounds      int
}

// measureFamily measures every path for one family on a dataplane with
// n intercepts.
func (dp *packetDataplane) measureFamily(cfg config, fam family, n int, empty *ebpf.Program) ([numPaths]measurement, error) {
	var row [numPaths]measurement
	var err error
	plain := bench.NewRunner(dp.in, dp.ifindex["lo"])
	ddIn := bench.NewRunner(dp.in, dp.ifindex[ifDefaultDeny])
	ddOut := bench.NewRunner(dp.out, dp.ifindex[ifDefaultDeny])
	mqOut := bench.NewRunner(dp.out, dp.ifindex[ifMasquerade])
	prIn := bench.NewRunner(dp.in, dp.ifindex[ifProtected])
	floor := bench.NewRunner(empty, 1)
	// The intercept every steered packet hits: the last one registered.
	svc := fam.svc(n - 1)

	ack := func(src, dst netip.Addr, sport, dport uint16) packet.Spec {
		return packet.Spec{Src: src, Dst: dst, Proto: packet.TCP, SrcPort: sport, DstPort: dport, TCPFlags: packet.ACK}
	}
	steered := ack(fam.client, svc, 40000, 443)
	newSYN := packet.Spec{Src: fam.client, Dst: svc, Proto: packet.TCP, DstPort: 443, TCPFlags: packet.SYN}

	// The floors, measured the two ways the paths are: alone for their
	// rows, and in the rounds between each path's for its factor.
	if row[floorRepeated].t, err = bench.Measure(floor.RepeatedRound(packet.Build(steered), cfg.repeat), cfg.repeatedRounds); err != nil {
		return row, err
	}
	if row[floorPerCall].t, err = bench.Measure(floor.PerCallRound(distinct(newSYN), cfg.perRound), cfg.rounds); err != nil {
		return row, err
	}
	repeated := func(r *bench.Runner, frame []byte) roundPair {
		return roundPair{r.RepeatedRound(frame, cfg.repeat), floor.RepeatedRound(frame, cfg.repeat), cfg.repeatedRounds}
	}
	perCall := func(r *bench.Runner, frame func(i int) []byte) roundPair {
		return roundPair{r.PerCallRound(frame, cfg.perRound), floor.PerCallRound(frame, cfg.perRound), cfg.rounds}
	}
	same := func(frame []byte) func(int) []byte { return func(int) []byte { return frame } }
	cycled := func(frames [][]byte) func(int) []byte {
		return func(i int) []byte { return frames[i%len(frames)] }
	}

	// Steered TCP past its SYN: the first ACK decides the flow from the
	// rules and caches it in the flow cache.
	frame := packet.Build(steered)
	if _, _, err := plain.Run(frame, 1); err != nil {
		return row, err
	}
	if row[steeredHit], err = dp.measure(steeredHit, plain, repeated(plain, frame)); err != nil {
		return row, err
	}
	if row[steeredHitPerCall], err = dp.measure(steeredHitPerCall, plain, perCall(plain, same(frame))); err != nil {
		return row, err
	}
	frames := cycle(cfg.missFlows, func(i int) packet.Spec { return ack(fam.client, svc, uint16(1024+i), 443) })
	if err := warm(plain, frames); err != nil {
		return row, err
	}
	if row[steeredMiss], err = dp.measure(steeredMiss, plain, perCall(plain, cycled(frames))); err != nil {
		return row, err
	}
	// Segments of flows no rule matches, as a router forwards: the
	// rules pass them, and the program asks whether a connection of the
	// host holds the tuple (one steered before a rule change would).
	frames = cycle(cfg.missFlows, func(i int) packet.Spec { return ack(fam.client, fam.other, uint16(1024+i), 5000) })
	if err := warm(plain, frames); err != nil {
		return row, err
	}
	if row[passedMiss], err = dp.measure(passedMiss, plain, perCall(plain, cycled(frames))); err != nil {
		return row, err
	}

	// Inbound sessions admitted by the pass rule on the default-deny
	// interface: handshake, then the client's ACKs take the fast path.
	inbound := func(sport uint16) ([]byte, error) {
		c2s := ack(fam.client, fam.target, sport, 80)
		s2c := ack(fam.target, fam.client, 80, sport)
		syn, synack := c2s, s2c
		syn.TCPFlags, synack.TCPFlags = packet.SYN, packet.SYN|packet.ACK
		return packet.Build(c2s), handshake(ddIn, ddOut, syn, synack)
	}
	if frame, err = inbound(40000); err != nil {
		return row, err
	}
	if row[inboundHit], err = dp.measure(inboundHit, ddIn, repeated(ddIn, frame)); err != nil {
		return row, err
	}
	if frames, err = sessions(cfg.missFlows, func(i int) ([]byte, error) { return inbound(uint16(1024 + i)) }); err != nil {
		return row, err
	}
	if row[inboundMiss], err = dp.measure(inboundMiss, ddIn, perCall(ddIn, cycled(frames))); err != nil {
		return row, err
	}

	// Sessions the host opened through the default-deny interface: the
	// egress program records them, the server's ACKs are replies.
	outbound := func(sport uint16) ([]byte, error) {
		h2s := ack(fam.host, fam.server, sport, 443)
		s2h := ack(fam.server, fam.host, 443, sport)
		syn, synack := h2s, s2h
		syn.TCPFlags, synack.TCPFlags = packet.SYN, packet.SYN|packet.ACK
		return packet.Build(s2h), handshake(ddOut, ddIn, syn, synack)
	}
	if frame, err = outbound(40000); err != nil {
		return row, err
	}
	if row[replyHit], err = dp.measure(replyHit, ddIn, repeated(ddIn, frame)); err != nil {
		return row, err
	}
	if frames, err = sessions(cfg.missFlows, func(i int) ([]byte, error) { return outbound(uint16(1024 + i)) }); err != nil {
		return row, err
	}
	if row[replyMiss], err = dp.measure(replyMiss, ddIn, perCall(ddIn, cycled(frames))); err != nil {
		return row, err
	}

	// The same steered flow on an interface whose per-packet checks
	// (SYN counting, DNP3/Modbus) keep the flow cache out.
	frame = packet.Build(steered)
	if _, _, err := prIn.Run(frame, 1); err != nil {
		return row, err
	}
	if row[protectedEstablished], err = dp.measure(protectedEstablished, prIn, repeated(prIn, frame)); err != nil {
		return row, err
	}

	// New flows: every run a source port not seen before.
	for _, m := range []struct {
		p    path
		r    *bench.Runner
		spec packet.Spec
	}{
		{newTProxy, plain, newSYN},
		{newPass, plain, packet.Spec{Src: fam.client, Dst: fam.other, Proto: packet.UDP, DstPort: 5000}},
		{newDeny, ddIn, packet.Spec{Src: fam.client, Dst: fam.other, Proto: packet.TCP, DstPort: 5000, TCPFlags: packet.SYN}},
		{protectedNew, prIn, newSYN},
	} {
		if row[m.p], err = dp.measure(m.p, m.r, perCall(m.r, distinct(m.spec))); err != nil {
			return row, err
		}
	}

	// A routed client's datagram leaving the masquerading interface:
	// the first run makes the mapping, the measured ones find it. The
	// program rewrites the packet, so every run gets a fresh copy.
	frame = packet.Build(packet.Spec{Src: fam.routed, Dst: fam.server, Proto: packet.UDP, SrcPort: 5000, DstPort: 53})
	if _, _, err := mqOut.Run(frame, 1); err != nil {
		return row, err
	}
	if row[masquerade], err = dp.measure(masquerade, mqOut, perCall(mqOut, same(frame))); err != nil {
		return row, err
	}
	return row, nil
}

// distinct returns frames of spec, each from a source port (and, past
// 65535, a source address) not used before.
func distinct(spec packet.Spec) func(i int) []byte {
	const first, ports = 20000, 65536 - 20000
	base := spec.Src
	return func(i int) []byte {
		s := spec
		s.SrcPort = uint16(first + i%ports)
		s.Src = base
		for range i / ports {
			s.Src = s.Src.Next()
		}
		return packet.Build(s)
	}
}

// cycle builds n frames from spec(i).
func cycle(n int, spec func(i int) packet.Spec) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = packet.Build(spec(i))
	}
	return out
}

// warm runs every frame once, so each flow is decided and remembered.
func warm(r *bench.Runner, frames [][]byte) error {
	for _, f := range frames {
		if _, _, err := r.Run(f, 1); err != nil {
			return err
		}
	}
	return nil
}

// sessions opens n sessions with open and returns the frames that
// continue them.
func sessions(n int, open func(i int) ([]byte, error)) ([][]byte, error) {
	out := make([][]byte, n)
	for i := range out {
		f, err := open(i)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

// handshake runs a TCP handshake: syn through first, the answer synack
// through second, the opener's ACK through first again.
func handshake(first, second *bench.Runner, syn, synack packet.Spec) error {
	a := syn
	a.TCPFlags = packet.ACK
	for _, step := range []struct {
		r    *bench.Runner
		spec packet.Spec
	}{{first, syn}, {second, synack}, {first, a}} {
		if _, _, err := step.r.Run(packet.Build(step.spec), 1); err != nil {
			return err
		}
	}
	return nil
}
