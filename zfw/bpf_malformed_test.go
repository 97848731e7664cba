package zfw

import (
	"encoding/binary"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
)

// TestProgramDropsMalformedPackets: a packet the parser cannot trust is
// dropped, even where its well-formed twin would be steered or passed.
func TestProgramDropsMalformedPackets(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	h.add(steer("10.9.0.5/32", 80, 80, 7100))
	h.add(steer("fd00:9::5/128", 80, 80, 7100))
	h.add(withProto(steer("10.9.0.5/32", 53, 53, 7101), intercept.UDP))

	const eth = 14
	v4 := func() []byte { return packet.Build(tcpTo("10.9.0.5", 80)) }
	v6 := func() []byte { return packet.Build(tcpTo("fd00:9::5", 80)) }
	// BPF_PROG_TEST_RUN refuses frames that end inside the fixed IPv4 or
	// IPv6 header, so those truncations cannot be run here; the parser's
	// bounds checks on them are enforced by the verifier.
	cases := []struct {
		name  string
		frame func() []byte
	}{
		{"IPv4 IHL below 5", func() []byte { b := v4(); b[eth] = 0x44; return b }},
		{"IPv4 version not 4", func() []byte { b := v4(); b[eth] = 0x55; return b }},
		{"IPv4 total length below the header", func() []byte {
			b := v4()
			binary.BigEndian.PutUint16(b[eth+2:], 12)
			return b
		}},
		{"IPv4 total length shorter than the TCP header", func() []byte {
			b := v4()
			binary.BigEndian.PutUint16(b[eth+2:], 30)
			return b
		}},
		{"IPv4 options run past the packet", func() []byte { b := v4()[:eth+40]; b[eth] = 0x4f; return b }},
		{"TCP header cut short", func() []byte { return v4()[:eth+20+10] }},
		{"TCP data offset below 5", func() []byte { b := v4(); b[eth+20+12] = 0x40; return b }},
		{"TCP destination port 0", func() []byte { b := v4(); b[eth+20+2], b[eth+20+3] = 0, 0; return b }},
		{"UDP length below 8", func() []byte {
			b := packet.Build(udpTo("10.9.0.5", 53))
			binary.BigEndian.PutUint16(b[eth+20+4:], 4)
			return b
		}},
		{"UDP header cut short", func() []byte { return packet.Build(udpTo("10.9.0.5", 53))[:eth+20+6] }},
		{"IPv6 version not 6", func() []byte { b := v6(); b[eth] = 0x40; return b }},
		{"IPv6 extension header cut short", func() []byte {
			s := tcpTo("fd00:9::5", 80)
			s.IPv6Ext = []uint8{packet.HopOpts}
			return packet.Build(s)[:eth+40+4]
		}},
		{"IPv6 extension chain longer than walked", func() []byte {
			s := tcpTo("fd00:9::5", 80)
			s.IPv6Ext = []uint8{0, 60, 60, 60, 60, 60, 60, 60, 60}
			return packet.Build(s)
		}},
		{"IPv6 payload length shorter than the TCP header", func() []byte {
			b := v6()
			binary.BigEndian.PutUint16(b[eth+4:], 8)
			return b
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			before := h.stats().Malformed
			res := h.runFrame(tc.frame(), 1)
			if res.code != tcShot {
				t.Errorf("code = %d, want drop", res.code)
			}
			if res.mark != 0 {
				t.Errorf("mark = %#x, want none", res.mark)
			}
			if got := h.stats().Malformed; got != before+1 {
				t.Errorf("malformed counter %d -> %d, want +1", before, got)
			}
		})
	}

	t.Run("twins are steered", func(t *testing.T) {
		for _, frame := range [][]byte{v4(), v6()} {
			if res := h.runFrame(frame, 1); res.mark != defaultMark {
				t.Errorf("well-formed twin not steered: code %d mark %#x", res.code, res.mark)
			}
		}
	})
}

// TestProgramFragments: a fragment passes only if its unfragmented twin
// would pass on every port; it is never steered.
func TestProgramFragments(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	other, _ := h.otherIface()
	h.manage(other, InterfaceSettings{DefaultDeny: true})
	h.add(steer("10.9.0.0/24", 80, 80, 7200))
	h.add(steer("fd00:9::/64", 80, 80, 7200))
	h.add(withAction(steer("10.8.0.0/16", 1, 65535, 0), Pass))
	h.add(withAction(steer("10.7.0.0/16", 1000, 2000, 0), Pass))

	frag := func(s packet.Spec, offset uint16, more bool) packet.Spec {
		s.FragOffset, s.MoreFragments = offset, more
		return s
	}
	cases := []struct {
		name    string
		pkt     packet.Spec
		ifindex int
		want    uint32
	}{
		{"first IPv4 fragment to a steered prefix", frag(tcpTo("10.9.0.5", 80), 0, true), 1, tcShot},
		{"later IPv4 fragment to a steered prefix", frag(tcpTo("10.9.0.5", 80), 100, false), 1, tcShot},
		{"first IPv6 fragment to a steered prefix", frag(tcpTo("fd00:9::5", 80), 0, true), 1, tcShot},
		{"later IPv6 fragment to a steered prefix", frag(tcpTo("fd00:9::5", 80), 100, true), 1, tcShot},
		{"fragment to an unruled address passes by default", frag(udpTo("10.6.0.1", 5000), 50, false), 1, tcOK},
		{"fragment to an unruled address on a default-deny interface", frag(udpTo("10.6.0.1", 5000), 50, false), -1, tcShot},
		{"fragment under an all-ports pass rule on a default-deny interface", frag(tcpTo("10.8.0.1", 5000), 50, false), -1, tcOK},
		{"fragment under a partial pass rule on a default-deny interface", frag(tcpTo("10.7.0.1", 1500), 50, false), -1, tcShot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ifindex := tc.ifindex
			if ifindex < 0 {
				ifindex = h.ifaces[other]
			}
			before := h.stats().Fragments
			res := h.run(tc.pkt, ifindex)
			if res.code != tc.want || res.mark != 0 {
				t.Errorf("code = %d mark %#x, want %d unmarked", res.code, res.mark, tc.want)
			}
			if got := h.stats().Fragments; got != before+1 {
				t.Errorf("fragment counter %d -> %d, want +1", before, got)
			}
		})
	}
}

// TestProgramOtherTraffic covers what is not TCP or UDP, and interfaces
// the firewall does not manage.
func TestProgramOtherTraffic(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	other, otherIdx := h.otherIface()
	h.manage(other, InterfaceSettings{DefaultDeny: true})

	arp := make([]byte, 42)
	copy(arp, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06})
	icmp := packet.Build(packet.Spec{Src: client4, Dst: addr("10.9.0.5"), Proto: packet.ICMP, ICMPType: 8})
	cases := []struct {
		name    string
		frame   []byte
		ifindex int
		want    uint32
	}{
		{"ARP passes", arp, otherIdx, tcOK},
		{"ICMP passes by default", icmp, 1, tcOK},
		{"ICMP dropped on a default-deny interface", icmp, otherIdx, tcShot},
		{"TCP with no rule dropped on a default-deny interface", packet.Build(tcpTo("10.9.0.5", 80)), otherIdx, tcShot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if res := h.runFrame(tc.frame, tc.ifindex); res.code != tc.want {
				t.Errorf("code = %d, want %d", res.code, tc.want)
			}
		})
	}
	t.Run("unmanaged interface is left to the next program", func(t *testing.T) {
		h.f.mu.Lock()
		err := h.f.tbl.Maps.Diag.Delete(uint32(otherIdx))
		delete(h.f.ifaces, other)
		h.f.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if res := h.runFrame(packet.Build(tcpTo("10.9.0.5", 80)), otherIdx); res.code != tcNext {
			t.Errorf("code = %#x, want TC_ACT_UNSPEC", res.code)
		}
	})
}
