package zfw

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/internal/wire"
	"github.com/zfw-go/zfw/zfw/event"
)

// frameAddrs reads the addresses and ports of a frame Build made.
func frameAddrs(frame []byte) (src, dst netip.AddrPort) {
	ip := frame[14:]
	if ip[0]>>4 == 4 {
		l4 := ip[int(ip[0]&0xf)*4:]
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(l4)),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(l4[2:]))
	}
	l4 := ip[40:]
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[8:24])), binary.BigEndian.Uint16(l4)),
		netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[24:40])), binary.BigEndian.Uint16(l4[2:]))
}

// TestMasquerade runs the egress and ingress programs of a masquerade
// interface (lo here: its addresses 127.0.0.1 and ::1 stand for the
// outside address) and checks rewritten bytes and checksums.
func TestMasquerade(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{Masquerade: true})
	remote4, remote6 := addr("10.60.0.2"), addr("fd00:60::2")
	nat4, nat6 := addr("127.0.0.1"), addr("::1")

	out := func(t *testing.T, s packet.Spec) netip.AddrPort {
		t.Helper()
		res := h.egress(s, 1)
		if res.code != tcNext {
			t.Fatalf("egress code %#x", res.code)
		}
		if !packet.Valid(res.data) {
			t.Errorf("translated packet has a bad checksum")
		}
		src, dst := frameAddrs(res.data)
		if dst != netip.AddrPortFrom(s.Dst, s.DstPort) {
			t.Errorf("destination changed to %s", dst)
		}
		return src
	}
	back := func(t *testing.T, s packet.Spec) netip.AddrPort {
		t.Helper()
		res := h.runFrame(packet.Build(s), 1)
		if res.code != tcOK {
			t.Fatalf("ingress code %d", res.code)
		}
		if !packet.Valid(res.data) {
			t.Errorf("reply translated back has a bad checksum")
		}
		_, dst := frameAddrs(res.data)
		return dst
	}

	for _, tc := range []struct {
		name        string
		proto       uint8
		remote, nat netip.Addr
		c1, c2      netip.Addr
		noChecksum  bool
	}{
		{"IPv4 TCP", packet.TCP, remote4, nat4, addr("10.1.1.5"), addr("10.1.1.6"), false},
		{"IPv4 UDP", packet.UDP, remote4, nat4, addr("10.1.1.5"), addr("10.1.1.6"), false},
		{"IPv4 UDP without checksum", packet.UDP, addr("10.60.0.3"), nat4, addr("10.1.2.5"), addr("10.1.2.6"), true},
		{"IPv6 TCP", packet.TCP, remote6, nat6, addr("fd00:1::5"), addr("fd00:1::6"), false},
		{"IPv6 UDP", packet.UDP, remote6, nat6, addr("fd00:1::5"), addr("fd00:1::6"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := func(c netip.Addr) packet.Spec {
				return packet.Spec{Src: c, Dst: tc.remote, Proto: tc.proto, SrcPort: 40000, DstPort: 443, NoChecksum: tc.noChecksum}
			}
			t1 := out(t, spec(tc.c1))
			if t1 != netip.AddrPortFrom(tc.nat, 40000) {
				t.Errorf("first client translated to %s, want %s:40000 (port kept)", t1, tc.nat)
			}
			t2 := out(t, spec(tc.c2))
			if t2.Addr() != tc.nat || t2.Port() == 40000 {
				t.Errorf("second client translated to %s: want the outside address and another port", t2)
			}
			if again := out(t, spec(tc.c1)); again != t1 {
				t.Errorf("the same flow translated to %s, then %s", t1, again)
			}
			if tc.noChecksum {
				res := h.egress(spec(tc.c1), 1)
				if binary.BigEndian.Uint16(res.data[14+20+6:]) != 0 {
					t.Error("a zero UDP checksum did not stay zero")
				}
			}
			for _, c := range []struct {
				client netip.Addr
				tport  netip.AddrPort
			}{{tc.c1, t1}, {tc.c2, t2}} {
				reply := packet.Spec{Src: tc.remote, Dst: tc.nat, Proto: tc.proto, SrcPort: 443, DstPort: c.tport.Port(), TCPFlags: packet.SYN | packet.ACK, NoChecksum: tc.noChecksum}
				if got := back(t, reply); got != netip.AddrPortFrom(c.client, 40000) {
					t.Errorf("reply to %s translated to %s, want %s:40000", c.tport, got, c.client)
				}
			}
		})
	}
	t.Run("echo requests and their replies", func(t *testing.T) {
		for _, tc := range []struct {
			proto, req, rep uint8
			remote, nat, c  netip.Addr
		}{
			{packet.ICMP, 8, 0, remote4, nat4, addr("10.1.3.5")},
			{packet.ICMPv6, 128, 129, remote6, nat6, addr("fd00:3::5")},
		} {
			res := h.egress(packet.Spec{Src: tc.c, Dst: tc.remote, Proto: tc.proto, ICMPType: tc.req, ICMPSeq: 9}, 1)
			if !packet.Valid(res.data) {
				t.Errorf("%s: translated echo request has a bad checksum", tc.c)
			}
			src, _ := frameAddrs(res.data)
			if src.Addr() != tc.nat {
				t.Errorf("echo request from %s left as %s", tc.c, src)
			}
			id := binary.BigEndian.Uint16(res.data[len(res.data)-4:])
			reply := packet.Build(packet.Spec{Src: tc.remote, Dst: tc.nat, Proto: tc.proto, ICMPType: tc.rep, ICMPSeq: 9})
			binary.BigEndian.PutUint16(reply[len(reply)-4:], id) // the translated id
			if tc.proto == packet.ICMP {
				binary.BigEndian.PutUint16(reply[14+20+2:], 0)
				binary.BigEndian.PutUint16(reply[14+20+2:], packet.Checksum(reply[14+20:]))
			} else {
				seg := append([]byte(nil), reply[14+40:]...)
				seg[2], seg[3] = 0, 0
				binary.BigEndian.PutUint16(reply[14+40+2:], packet.L4Checksum(tc.remote, tc.nat, packet.ICMPv6, seg))
			}
			in := h.runFrame(reply, 1)
			_, dst := frameAddrs(in.data)
			if dst.Addr() != tc.c || binary.BigEndian.Uint16(in.data[len(in.data)-4:]) != 1 {
				t.Errorf("echo reply went to %s id %d, want %s id 1", dst.Addr(), binary.BigEndian.Uint16(in.data[len(in.data)-4:]), tc.c)
			}
			if !packet.Valid(in.data) {
				t.Errorf("%s: echo reply translated back has a bad checksum", tc.c)
			}
		}
	})
	t.Run("echo translations are in icmp_masquerade_map", func(t *testing.T) {
		if n := mapLen(t, h.f.dp.Objects().IcmpMasqueradeMap); n != 2 {
			t.Errorf("icmp_masquerade_map holds %d entries, want 2", n)
		}
	})
	t.Run("the host's own traffic is left alone", func(t *testing.T) {
		s := packet.Spec{Src: nat4, Dst: remote4, Proto: packet.TCP, SrcPort: 50000, DstPort: 443}
		if got := out(t, s); got != netip.AddrPortFrom(nat4, 50000) {
			t.Errorf("translated to %s", got)
		}
	})
	t.Run("an unknown reply is not translated", func(t *testing.T) {
		s := packet.Spec{Src: remote4, Dst: nat4, Proto: packet.UDP, SrcPort: 443, DstPort: 61000}
		if got := back(t, s); got != netip.AddrPortFrom(nat4, 61000) {
			t.Errorf("translated to %s", got)
		}
	})
}

// TestMasqueradeManyFlows: 20,000 concurrent UDP flows from different
// inside clients, all with the same source port, to one remote end: no
// two share a translated tuple, and every reply finds its client.
func TestMasqueradeManyFlows(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{Masquerade: true})
	const flows = 20000
	remote := addr("10.60.0.2")
	clients := make(map[uint16]netip.Addr, flows)
	for i := range flows {
		c := netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})
		res := h.egress(packet.Spec{Src: c, Dst: remote, Proto: packet.UDP, SrcPort: 5000, DstPort: 53}, 1)
		if res.code != tcNext {
			t.Fatalf("flow %d: egress code %#x", i, res.code)
		}
		src, _ := frameAddrs(res.data)
		if prev, dup := clients[src.Port()]; dup {
			t.Fatalf("flows of %s and %s share translated port %d", prev, c, src.Port())
		}
		clients[src.Port()] = c
	}
	for port, c := range clients {
		res := h.runFrame(packet.Build(packet.Spec{Src: remote, Dst: addr("127.0.0.1"), Proto: packet.UDP, SrcPort: 53, DstPort: port}), 1)
		if _, dst := frameAddrs(res.data); dst != netip.AddrPortFrom(c, 5000) {
			t.Fatalf("reply to port %d went to %s, want %s", port, dst, fmt.Sprint(c, ":5000"))
		}
	}
	if st := h.stats(); st.MasqueradeNoPort != 0 {
		t.Errorf("%d packets found no free port", st.MasqueradeNoPort)
	}
}

// TestIdleMasqueradeMappingsAreCollected: the background collector
// removes translations idle past their timeout, in both maps.
func TestIdleMasqueradeMappingsAreCollected(t *testing.T) {
	h := newHarnessWith(t, Options{Timeouts: Timeouts{UDP: time.Millisecond}})
	h.manage("lo", InterfaceSettings{Masquerade: true})
	h.egress(packet.Spec{Src: addr("10.1.1.5"), Dst: addr("10.60.0.2"), Proto: packet.UDP, SrcPort: 5000, DstPort: 53}, 1)
	objs := h.f.dp.Objects()
	// The collector runs every millisecond here and may already have
	// taken the mapping, so the counter, not the map, shows it was made.
	if h.stats().Masqueraded != 1 {
		t.Fatal("no mapping recorded: the datagram was not translated")
	}
	deadline := time.Now().Add(10 * time.Second)
	for mapLen(t, objs.MasqueradeMap)+mapLen(t, objs.MasqueradeReverseMap) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle mapping not collected")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMasqueradeTranslatesICMPErrors: an ICMP error about a masqueraded
// flow reaches the inside client with the flow's own addresses and port,
// in the outer header and in the quoted one, and valid checksums.
func TestMasqueradeTranslatesICMPErrors(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{Masquerade: true})
	hop4, hop6 := addr("10.60.9.9"), addr("fd00:60::9:9")

	for _, tc := range []struct {
		name      string
		out       packet.Spec
		errType   uint8
		hop       netip.Addr
		quoteAll  bool
		portAt    int // of the quoted L4 header: the source port or echo id
		wantPort  uint16
		ipHdrSize int
	}{
		{"IPv4 UDP, port unreachable", packet.Spec{Src: addr("10.1.4.5"), Dst: addr("10.60.0.2"), Proto: packet.UDP, SrcPort: 40000, DstPort: 53}, 3, addr("10.60.0.2"), false, 0, 40000, 20},
		{"IPv4 TCP, time exceeded, whole packet quoted", packet.Spec{Src: addr("10.1.4.5"), Dst: addr("10.60.0.2"), Proto: packet.TCP, SrcPort: 40000, DstPort: 443, Payload: []byte("hello")}, 11, hop4, true, 0, 40000, 20},
		{"IPv4 echo, host unreachable", packet.Spec{Src: addr("10.1.4.5"), Dst: addr("10.60.0.2"), Proto: packet.ICMP, ICMPType: 8}, 3, hop4, false, 4, 1, 20},
		{"IPv6 UDP, port unreachable", packet.Spec{Src: addr("fd00:4::5"), Dst: addr("fd00:60::2"), Proto: packet.UDP, SrcPort: 40000, DstPort: 53}, 1, addr("fd00:60::2"), false, 0, 40000, 40},
		{"IPv6 TCP, packet too big", packet.Spec{Src: addr("fd00:4::5"), Dst: addr("fd00:60::2"), Proto: packet.TCP, SrcPort: 40000, DstPort: 443}, 2, hop6, true, 0, 40000, 40},
		{"IPv6 echo, time exceeded", packet.Spec{Src: addr("fd00:4::5"), Dst: addr("fd00:60::2"), Proto: packet.ICMPv6, ICMPType: 128}, 3, hop6, false, 4, 1, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			translated := h.egress(tc.out, 1).data
			quoted := translated[14:]
			if !tc.quoteAll {
				quoted = quoted[:tc.ipHdrSize+8]
			}
			proto, nat := uint8(packet.ICMP), addr("127.0.0.1")
			if tc.out.Src.Is6() {
				proto, nat = packet.ICMPv6, addr("::1")
			}
			if src := quotedSource(quoted, tc.ipHdrSize, tc.portAt); src.Addr() != nat {
				t.Fatalf("the flow was not masqueraded: left as %s", src)
			}
			icmpErr := packet.Build(packet.Spec{Src: tc.hop, Dst: nat, Proto: proto, ICMPType: tc.errType, Payload: quoted})
			res := h.runFrame(icmpErr, 1)
			if res.code != tcOK {
				t.Fatalf("ingress code %d", res.code)
			}
			outerDst := netip.AddrFrom4([4]byte(res.data[14+16 : 14+20]))
			if tc.out.Src.Is6() {
				outerDst = netip.AddrFrom16([16]byte(res.data[14+24 : 14+40]))
			}
			if outerDst != tc.out.Src {
				t.Errorf("error sent to %s, want the client %s", outerDst, tc.out.Src)
			}
			inner := res.data[14+tc.ipHdrSize+8:]
			if got := quotedSource(inner, tc.ipHdrSize, tc.portAt); got != netip.AddrPortFrom(tc.out.Src, tc.wantPort) {
				t.Errorf("quoted packet from %s, want %s", got, netip.AddrPortFrom(tc.out.Src, tc.wantPort))
			}
			if !packet.Valid(res.data) {
				t.Error("the translated error has a bad IP or ICMP checksum")
			}
			if tc.ipHdrSize == 20 && packet.Checksum(inner[:20]) != 0 {
				t.Error("the quoted IPv4 header has a bad checksum")
			}
		})
	}
	t.Run("an error about an unknown flow is left alone", func(t *testing.T) {
		quoted := packet.Build(packet.Spec{Src: addr("127.0.0.1"), Dst: addr("10.60.0.2"), Proto: packet.UDP, SrcPort: 61001, DstPort: 53})[14 : 14+28]
		frame := packet.Build(packet.Spec{Src: addr("10.60.0.2"), Dst: addr("127.0.0.1"), Proto: packet.ICMP, ICMPType: 3, Payload: quoted})
		res := h.runFrame(frame, 1)
		if res.code != tcOK || string(res.data) != string(frame) {
			t.Errorf("code %d, frame changed: %v", res.code, string(res.data) != string(frame))
		}
	})
}

// quotedSource reads the source address and port (or echo id at portAt)
// of a quoted IP packet.
func quotedSource(ip []byte, hdr, portAt int) netip.AddrPort {
	port := binary.BigEndian.Uint16(ip[hdr+portAt:])
	if hdr == 20 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[8:24])), port)
}

// TestMasqueradeAvoidsPortsOfHostSockets: a flow is never translated onto
// a port where a socket of the host would take its replies.
func TestMasqueradeAvoidsPortsOfHostSockets(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{Masquerade: true})
	remote := addr("10.60.0.2")

	tcpLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	udpConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpConn.Close()

	for _, tc := range []struct {
		name  string
		proto uint8
		port  uint16
	}{
		{"a TCP listener's port", packet.TCP, uint16(tcpLn.Addr().(*net.TCPAddr).Port)},
		{"a bound UDP socket's port", packet.UDP, uint16(udpConn.LocalAddr().(*net.UDPAddr).Port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.egress(packet.Spec{Src: addr("10.1.6.5"), Dst: remote, Proto: tc.proto, SrcPort: tc.port, DstPort: 443}, 1)
			src, _ := frameAddrs(res.data)
			if src.Addr() != addr("127.0.0.1") {
				t.Fatalf("not masqueraded: %s", src)
			}
			if src.Port() == tc.port {
				t.Errorf("translated onto port %d, which a host socket holds", tc.port)
			}
		})
	}
	t.Run("a port no socket holds is kept", func(t *testing.T) {
		res := h.egress(packet.Spec{Src: addr("10.1.6.5"), Dst: remote, Proto: packet.UDP, SrcPort: 40404, DstPort: 443}, 1)
		if src, _ := frameAddrs(res.data); src.Port() != 40404 {
			t.Errorf("translated to %s, want port 40404 kept", src)
		}
	})
}

// TestMasqueradeWithoutAFreePortDropsWithItsOwnReason: when every port
// to a remote end is taken, a new flow there is dropped, counted, and
// reported as a failed translation, not as a malformed packet.
func TestMasqueradeWithoutAFreePortDropsWithItsOwnReason(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{Masquerade: true, Verbose: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.f.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	remote := addr("10.60.0.2")
	k := bpfobj.ZfwMasqKey{Ifindex: 1, Remote: wire.Addr(remote), Rport: wire.Port16(53), Proto: 17, Family: 4}
	v := bpfobj.ZfwMasqValue{Origin: wire.Addr(addr("10.3.0.1")), Oport: wire.Port16(1)}
	m := h.f.dp.Objects().MasqueradeMap
	for p := 1024; p < 65536; p++ {
		k.Tport = wire.Port16(uint16(p))
		if err := m.Update(&k, &v, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	res := h.egress(packet.Spec{Src: addr("10.2.0.1"), Dst: remote, Proto: packet.UDP, SrcPort: 5000, DstPort: 53}, 1)
	if res.code != tcShot {
		t.Fatalf("egress code %#x, want a drop", res.code)
	}
	if st := h.stats(); st.MasqueradeNoPort != 1 {
		t.Errorf("%d packets counted without a free port, want 1", st.MasqueradeNoPort)
	}
	ev := next(t, ch, event.Drop)
	if ev.Reason != event.ReasonMasquerade || !strings.Contains(ev.String(), "masquerade translation failed") {
		t.Errorf("drop event %+v (%s), want a failed translation", ev, ev)
	}
}
