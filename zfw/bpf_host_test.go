package zfw

import (
	"encoding/binary"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
)

// frame builds an Ethernet frame of the given type with a zero payload.
func frame(ethertype uint16) []byte {
	b := make([]byte, 60)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], ethertype)
	return b
}

// TestDefaultDenyHostPassthroughs: what a default-deny interface admits
// without a rule, setting by setting, so the host keeps its network.
func TestDefaultDenyHostPassthroughs(t *testing.T) {
	h := newHarness(t)
	lo4, lo6 := addr("127.0.0.1"), addr("::1") // lo's own addresses
	icmp := func(dst string, proto, typ uint8) []byte {
		d := addr(dst)
		src := client4
		if d.Is6() {
			src = client6
		}
		return packet.Build(packet.Spec{Src: src, Dst: d, Proto: proto, ICMPType: typ})
	}
	tcp := func(dst string, sport, dport uint16) []byte {
		s := tcpTo(dst, dport)
		s.SrcPort = sport
		return packet.Build(s)
	}
	udp := func(dst string, sport, dport uint16) []byte {
		s := udpTo(dst, dport)
		s.SrcPort = sport
		return packet.Build(s)
	}
	ssh4 := packet.Build(packet.Spec{Src: client4, Dst: lo4, Proto: packet.TCP, SrcPort: 50000, DstPort: 22})
	ssh6 := packet.Build(packet.Spec{Src: client6, Dst: lo6, Proto: packet.TCP, SrcPort: 50000, DstPort: 22})
	vrrp := packet.Build(packet.Spec{Src: client4, Dst: addr("224.0.0.18"), Proto: packet.VRRP, Payload: make([]byte, 20)})
	gre := packet.Build(packet.Spec{Src: client4, Dst: addr("10.1.1.1"), Proto: packet.GRE, Payload: make([]byte, 20)})

	deny := InterfaceSettings{DefaultDeny: true}
	with := func(f func(*InterfaceSettings)) InterfaceSettings { s := deny; f(&s); return s }
	cases := []struct {
		name     string
		settings InterfaceSettings
		frame    []byte
		want     uint32
	}{
		{"ARP always passes", deny, frame(0x0806), tcOK},
		{"EAPOL dropped by default", deny, frame(0x888e), tcShot},
		{"EAPOL passes when enabled", with(func(s *InterfaceSettings) { s.EAPOL = true }), frame(0x888e), tcOK},
		{"LLDP dropped by default", deny, frame(0x88cc), tcShot},
		{"LLDP passes with PassNonTuple", with(func(s *InterfaceSettings) { s.PassNonTuple = true }), frame(0x88cc), tcOK},
		{"ICMP echo request dropped by default", deny, icmp("10.1.1.1", packet.ICMP, 8), tcShot},
		{"ICMP echo request passes with ICMPEcho", with(func(s *InterfaceSettings) { s.ICMPEcho = true }), icmp("10.1.1.1", packet.ICMP, 8), tcOK},
		{"ICMP echo reply passes with ICMPEcho", with(func(s *InterfaceSettings) { s.ICMPEcho = true }), icmp("10.1.1.1", packet.ICMP, 0), tcOK},
		{"ICMP unreachable always passes", deny, icmp("10.1.1.1", packet.ICMP, 3), tcOK},
		{"ICMP time exceeded always passes", deny, icmp("10.1.1.1", packet.ICMP, 11), tcOK},
		{"ICMP timestamp dropped", deny, icmp("10.1.1.1", packet.ICMP, 13), tcShot},
		{"ICMPv6 neighbour solicitation always passes", deny, icmp("fd00::1", packet.ICMPv6, 135), tcOK},
		{"ICMPv6 router advertisement always passes", deny, icmp("fd00::1", packet.ICMPv6, 134), tcOK},
		{"ICMPv6 packet too big always passes", deny, icmp("fd00::1", packet.ICMPv6, 2), tcOK},
		{"ICMPv6 echo request dropped by default", deny, icmp("fd00::1", packet.ICMPv6, 128), tcShot},
		{"ICMPv6 echo request passes with ICMPEcho", with(func(s *InterfaceSettings) { s.ICMPEcho = true }), icmp("fd00::1", packet.ICMPv6, 128), tcOK},
		{"VRRP dropped by default", deny, vrrp, tcShot},
		{"VRRP passes when enabled", with(func(s *InterfaceSettings) { s.VRRP = true }), vrrp, tcOK},
		{"GRE dropped by default", deny, gre, tcShot},
		{"GRE passes with PassNonTuple", with(func(s *InterfaceSettings) { s.PassNonTuple = true }), gre, tcOK},
		{"DHCP reply always passes", deny, udp("10.1.1.1", 67, 68), tcOK},
		{"DHCPv6 reply always passes", deny, udp("fd00::1", 547, 546), tcOK},
		{"DHCP request to the host is not a reply", deny, udp("10.1.1.1", 68, 67), tcShot},
		{"SSH to an own address passes", deny, ssh4, tcOK},
		{"SSH to an own IPv6 address passes", deny, ssh6, tcOK},
		{"SSH to another address is dropped", deny, tcp("10.1.1.1", 50000, 22), tcShot},
		{"SSH dropped when disabled", with(func(s *InterfaceSettings) { s.DisableSSH = true }), ssh4, tcShot},
		{"IPv6 dropped when disabled, default deny or not", InterfaceSettings{DisableIPv6: true}, icmp("fd00::1", packet.ICMPv6, 135), tcShot},
		{"IPv4 unaffected by DisableIPv6", InterfaceSettings{DisableIPv6: true}, tcp("10.1.1.1", 50000, 80), tcOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			h.manage("lo", tc.settings)
			if res := h.runFrame(tc.frame, 1); res.code != tc.want {
				t.Errorf("code = %d, want %d", res.code, tc.want)
			}
		})
	}

	t.Run("a deny rule closes SSH", func(t *testing.T) {
		h := h.with(t)
		h.manage("lo", deny)
		id := h.add(Rule{Action: Deny, Protocol: intercept.TCP, Destination: pfx("127.0.0.1/32"), Ports: intercept.PortRange{Low: 22, High: 22}})
		defer h.f.Rules().Delete(t.Context(), id)
		if res := h.runFrame(ssh4, 1); res.code != tcShot {
			t.Errorf("code = %d, want drop", res.code)
		}
	})
	t.Run("addresses of lo are known", func(t *testing.T) {
		got, err := h.f.addresses("lo")
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, a := range got {
			found[a.String()] = true
		}
		if !found["127.0.0.1"] || !found["::1"] {
			t.Errorf("lo addresses %v, want 127.0.0.1 and ::1", got)
		}
	})
}
