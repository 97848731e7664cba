package zfw

import (
	"context"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/internal/wire"
	"github.com/zfw-go/zfw/zfw/conntrack"
)

// flowHit runs spec and reports its code and whether the flow cache
// alone decided it.
func (h *harness) flowHit(spec packet.Spec, ifindex int) (result, bool) {
	h.t.Helper()
	before := h.stats().FlowCacheHits
	res := h.runFrame(packet.Build(spec), ifindex)
	return res, h.stats().FlowCacheHits > before
}

// flowEntries returns, per CPU, the kinds of the flow cache entries whose
// tuple is spec's (as seen on ingress).
func (h *harness) flowEntries(spec packet.Spec, ifindex int) map[int]uint8 {
	h.t.Helper()
	m := h.f.dp.Objects().FlowCache
	src, dst := wire.Addr(spec.Src), wire.Addr(spec.Dst)
	out := map[int]uint8{}
	var per []bpfobj.ZfwFlowEntry
	for slot := uint32(0); slot < m.MaxEntries(); slot++ {
		if err := m.Lookup(slot, &per); err != nil {
			h.t.Fatalf("flow_cache: lookup %d: %v", slot, err)
		}
		for cpu, e := range per {
			if e.Kind != 0 && e.Saddr == src && e.Daddr == dst && e.Ifindex == uint32(ifindex) &&
				e.Sport == wire.Port16(spec.SrcPort) && e.Dport == wire.Port16(spec.DstPort) && e.Proto == spec.Proto {
				out[cpu] = e.Kind
			}
		}
	}
	return out
}

// onCPU runs f on one CPU.
func onCPU(t *testing.T, cpu int, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatalf("pin to CPU %d: %v", cpu, err)
	}
	defer unix.SchedSetaffinity(0, &old)
	f()
}

// stayOnCPU keeps the calling test on CPU 0 until it ends: the flow cache
// is per CPU, so a packet run on another CPU than the one before it
// misses.
func stayOnCPU(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatalf("pin to CPU 0: %v", err)
	}
	t.Cleanup(func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

// TestFlowCacheDecidesRepeatedPackets: after its first packets a flow is
// decided by the per-CPU flow cache, with the verdict the slow path gave.
func TestFlowCacheDecidesRepeatedPackets(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	h.add(Rule{Action: TProxy, Protocol: intercept.TCP, Destination: pfx("10.70.0.1/32"), Ports: intercept.PortRange{Low: 443, High: 443}, TProxyPort: 7000})
	deny := h.add(Rule{Action: Deny, Protocol: intercept.UDP, Destination: pfx("10.70.0.2/32"), Ports: intercept.PortRange{Low: 53, High: 53}})

	for _, tc := range []struct {
		name string
		spec packet.Spec
		code uint32
		want want
	}{
		{"steered TCP connection", packet.Spec{Src: addr("10.9.0.1"), Dst: addr("10.70.0.1"), Proto: packet.TCP, SrcPort: 41000, DstPort: 443, TCPFlags: packet.ACK}, tcOK, want{TProxy, 0, 7000}},
		{"UDP passed with no rule", packet.Spec{Src: addr("10.9.0.1"), Dst: addr("10.70.0.3"), Proto: packet.UDP, SrcPort: 41000, DstPort: 5000}, tcOK, want{Pass, 0, 0}},
		{"UDP denied by a rule", packet.Spec{Src: addr("10.9.0.1"), Dst: addr("10.70.0.2"), Proto: packet.UDP, SrcPort: 41000, DstPort: 53}, tcShot, want{Deny, deny, 0}},
		{"IPv6 TCP passed with no rule", packet.Spec{Src: addr("fd00:9::1"), Dst: addr("fd00:70::3"), Proto: packet.TCP, SrcPort: 41000, DstPort: 80, TCPFlags: packet.ACK}, tcOK, want{Pass, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stayOnCPU(t)
			h := h.with(t)
			first, hit := h.flowHit(tc.spec, 1)
			if hit {
				t.Fatal("the first packet of a flow was decided by the cache")
			}
			second, hit := h.flowHit(tc.spec, 1)
			if !hit {
				t.Fatal("the second packet was not decided by the cache")
			}
			for i, res := range []result{first, second} {
				if res.code != tc.code || res.decision().Action != policy.Action(tc.want.action) || res.decision().TProxyPort != tc.want.port {
					t.Errorf("packet %d: code %d decision %+v, want code %d %+v", i+1, res.code, res.decision(), tc.code, tc.want)
				}
			}
			if tc.want.action == TProxy && second.mark != defaultMark {
				t.Errorf("cached steer: mark %#x, want %#x", second.mark, defaultMark)
			}
		})
	}
}

// want is an expected verdict.
type want struct {
	action Action
	rule   uint32
	port   uint16
}

// TestFlowCacheNeverOutlivesWhatItDependsOn: each change a cached verdict
// depends on makes the next packet take the slow path.
func TestFlowCacheNeverOutlivesWhatItDependsOn(t *testing.T) {
	ctx := context.Background()
	udp := packet.Spec{Src: addr("10.9.0.1"), Dst: addr("10.71.0.1"), Proto: packet.UDP, SrcPort: 42000, DstPort: 5000}

	t.Run("a rule change voids a rule's verdict", func(t *testing.T) {
		stayOnCPU(t)
		h := newHarness(t)
		h.manage("lo", InterfaceSettings{})
		h.flowHit(udp, 1)
		if _, hit := h.flowHit(udp, 1); !hit {
			t.Fatal("not cached")
		}
		h.add(Rule{Action: Deny, Protocol: intercept.UDP, Destination: pfx("10.71.0.1/32"), Ports: intercept.PortRange{Low: 5000, High: 5000}})
		res, hit := h.flowHit(udp, 1)
		if hit || res.code != tcShot {
			t.Errorf("after a deny rule: code %d, cache hit %v; want a drop by the rules", res.code, hit)
		}
	})
	t.Run("interface settings void every entry", func(t *testing.T) {
		stayOnCPU(t)
		h := newHarness(t)
		h.manage("lo", InterfaceSettings{})
		h.flowHit(udp, 1)
		if _, hit := h.flowHit(udp, 1); !hit {
			t.Fatal("not cached")
		}
		if err := h.f.SetInterface(ctx, "lo", InterfaceSettings{DefaultDeny: true}); err != nil {
			t.Fatal(err)
		}
		res, hit := h.flowHit(udp, 1)
		if hit || res.code != tcShot {
			t.Errorf("after default deny: code %d, cache hit %v; want a drop", res.code, hit)
		}
	})
	t.Run("a flushed session is looked up again", func(t *testing.T) {
		stayOnCPU(t)
		h := newHarness(t)
		h.manage("lo", InterfaceSettings{DefaultDeny: true})
		c := newConv(h.with(t), packet.UDP, false)
		c.out(0, 0, 0)
		reply := c.peer
		if res, _ := h.flowHit(reply, 1); res.code != tcOK {
			t.Fatalf("reply: code %d", res.code)
		}
		if res, hit := h.flowHit(reply, 1); res.code != tcOK || !hit {
			t.Fatalf("second reply: code %d, cache hit %v", res.code, hit)
		}
		if n, err := h.f.Sessions().Flush(conntrack.Filter{}); err != nil || n == 0 {
			t.Fatalf("flush: %d, %v", n, err)
		}
		if res, hit := h.flowHit(reply, 1); res.code != tcShot || hit {
			t.Errorf("reply after the flush: code %d, cache hit %v; want a drop", res.code, hit)
		}
	})
	t.Run("sessions with sub-second timeouts are never cached", func(t *testing.T) {
		stayOnCPU(t)
		h := newHarnessWith(t, Options{Timeouts: Timeouts{UDP: 500 * time.Millisecond}})
		h.manage("lo", InterfaceSettings{DefaultDeny: true})
		c := newConv(h.with(t), packet.UDP, false)
		c.out(0, 0, 0)
		h.flowHit(c.peer, 1)
		if _, hit := h.flowHit(c.peer, 1); hit {
			t.Error("a session that may expire within the cache's window was cached")
		}
	})
	t.Run("interfaces with per-packet work are never cached", func(t *testing.T) {
		stayOnCPU(t)
		for _, s := range []InterfaceSettings{{Verbose: true}, {DDoSProtection: true}, {OTFiltering: true}, {Masquerade: true}} {
			h := newHarness(t)
			h.manage("lo", s)
			h.flowHit(udp, 1)
			if _, hit := h.flowHit(udp, 1); hit {
				t.Errorf("%+v: cached", s)
			}
		}
	})
}

// TestFlowCacheForgetsClosingSessionsOnEveryCPU: a FIN or RST in either
// direction clears the flow from every CPU's cache, so the segments that
// close the session reach the state machine wherever they are processed.
func TestFlowCacheForgetsClosingSessionsOnEveryCPU(t *testing.T) {
	const syn, ack, fin, rst = packet.SYN, packet.ACK, packet.FIN, packet.RST
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	last := h.cpus() - 1

	for _, tc := range []struct {
		name  string
		port  uint16
		close func(c conv)
	}{
		{"FIN sent by the host (egress)", 40100, func(c conv) { c.out(fin|ack, 1001, 5001) }},
		{"RST sent by the host (egress)", 40101, func(c conv) { c.out(rst, 1001, 0) }},
		{"FIN from the server (ingress)", 40102, func(c conv) { c.in(fin|ack, 5001, 1001) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConv(h.with(t), packet.TCP, false)
			c.host.SrcPort, c.peer.DstPort = tc.port, tc.port
			reply := c.peer
			reply.TCPFlags, reply.Seq, reply.Ack = ack, 5001, 1001
			onCPU(t, 0, func() {
				c.out(syn, 1000, 0)
				c.expect(t, "SYN-ACK", c.in(syn|ack, 5000, 1001), tcOK)
				c.out(ack, 1001, 5001)
				c.expect(t, "reply", c.in(ack, 5001, 1001), tcOK)
			})
			if kinds := h.flowEntries(reply, 1); kinds[0] != uint8(bpfobj.ZfwFlowKindZFW_FLOW_REPLY) {
				t.Fatalf("after an established reply on CPU 0: cached %v, want a reply entry on CPU 0", kinds)
			}
			onCPU(t, last, func() { tc.close(c) })
			if kinds := h.flowEntries(reply, 1); len(kinds) != 0 {
				t.Errorf("after the close on CPU %d: still cached %v", last, kinds)
			}
		})
	}
}
