package zfw

import (
	"net/netip"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/zfw/conntrack"
)

// A host on a default-deny interface (lo in these test runs) talking to a
// server: out is what it sends, in what comes back.
var (
	hostAddr   = addr("10.50.0.1")
	serverAddr = addr("10.60.0.2")
	host6      = addr("fd00:50::1")
	server6    = addr("fd00:60::2")
)

type conv struct {
	h          *harness
	host, peer packet.Spec // templates: host->server, server->host
}

func newConv(h *harness, proto uint8, v6 bool) conv {
	src, dst := hostAddr, serverAddr
	if v6 {
		src, dst = host6, server6
	}
	out := packet.Spec{Src: src, Dst: dst, Proto: proto, SrcPort: 40000, DstPort: 443}
	in := packet.Spec{Src: dst, Dst: src, Proto: proto, SrcPort: 443, DstPort: 40000}
	return conv{h: h, host: out, peer: in}
}

func (c conv) out(flags uint8, seq, ack uint32) result {
	s := c.host
	s.TCPFlags, s.Seq, s.Ack = flags, seq, ack
	return c.h.egress(s, 1)
}

func (c conv) in(flags uint8, seq, ack uint32) uint32 {
	s := c.peer
	s.TCPFlags, s.Seq, s.Ack = flags, seq, ack
	return c.h.runFrame(packet.Build(s), 1).code
}

func (c conv) expect(t *testing.T, step string, got, want uint32) {
	t.Helper()
	if got != want {
		t.Errorf("%s: code %d, want %d", step, got, want)
	}
}

// TestSessionsOpenedOutwardAdmitReplies walks TCP through its states and
// checks which replies a default-deny interface admits at each.
func TestSessionsOpenedOutwardAdmitReplies(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	const syn, ack, fin, rst, psh = packet.SYN, packet.ACK, packet.FIN, packet.RST, packet.PSH

	// The dataplane looks up the session map a packet's ports make
	// likelier first (reply_likely): both orders must find the session.
	ports := []struct {
		name         string
		host, server uint16
	}{
		{"from an ephemeral port", 40000, 443},
		{"to a higher port", 1024, 50000},
	}
	for _, v6 := range []bool{false, true} {
		for _, pp := range ports {
			name := "IPv4"
			if v6 {
				name = "IPv6"
			}
			t.Run(name+" handshake, data and close, "+pp.name, func(t *testing.T) {
				c := newConv(h.with(t), packet.TCP, v6)
				c.host.SrcPort, c.host.DstPort = pp.host, pp.server
				c.peer.SrcPort, c.peer.DstPort = pp.server, pp.host
				c.expect(t, "SYN-ACK with no session", c.in(syn|ack, 5000, 1001), tcShot)
				c.expect(t, "ACK for an unseen SYN", c.in(ack, 5001, 1001), tcShot)
				if res := c.out(syn, 1000, 0); res.code != tcNext {
					t.Fatalf("egress dropped or passed a SYN: code %d", res.code)
				}
				c.expect(t, "data before the SYN-ACK", c.in(ack|psh, 5001, 1001), tcShot)
				c.expect(t, "SYN-ACK", c.in(syn|ack, 5000, 1001), tcOK)
				c.out(ack, 1001, 5001)
				c.expect(t, "reply data", c.in(ack|psh, 5001, 1001), tcOK)
				c.expect(t, "a new SYN from the server", c.in(syn, 9000, 0), tcShot)
				// The host closes first: FIN 1001, the server ACKs 1002 and
				// sends its FIN 6001, the host ACKs 6002: the session ends.
				c.out(fin|ack, 1001, 6001)
				c.expect(t, "ACK of the host's FIN", c.in(ack, 6001, 1002), tcOK)
				c.expect(t, "server FIN", c.in(fin|ack, 6001, 1002), tcOK)
				c.out(ack, 1002, 6002)
				c.expect(t, "a packet after the close", c.in(ack, 6002, 1002), tcShot)
			})
		}
	}
	t.Run("server closes first; its final ACK ends the session and passes", func(t *testing.T) {
		c := newConv(h.with(t), packet.TCP, false)
		c.host.SrcPort = 40001
		c.peer.DstPort = 40001
		c.out(syn, 1000, 0)
		c.in(syn|ack, 5000, 1001)
		c.out(ack, 1001, 5001)
		c.expect(t, "server FIN", c.in(fin|ack, 5001, 1001), tcOK)
		c.out(ack, 1001, 5002)
		c.out(fin|ack, 1001, 5002)
		c.expect(t, "server's final ACK", c.in(ack, 5002, 1002), tcOK)
		c.expect(t, "a packet after the close", c.in(ack, 5002, 1002), tcShot)
	})
	t.Run("RST ends the session and passes", func(t *testing.T) {
		c := newConv(h.with(t), packet.TCP, false)
		c.host.SrcPort = 40002
		c.peer.DstPort = 40002
		c.out(syn, 1000, 0)
		c.expect(t, "SYN-ACK", c.in(syn|ack, 5000, 1001), tcOK)
		c.expect(t, "RST", c.in(rst, 5001, 0), tcOK)
		c.expect(t, "a packet after the RST", c.in(ack, 5001, 1001), tcShot)
	})
	t.Run("UDP replies from the addressed port only", func(t *testing.T) {
		c := newConv(h.with(t), packet.UDP, false)
		c.expect(t, "unsolicited datagram", c.in(0, 0, 0), tcShot)
		c.out(0, 0, 0)
		c.expect(t, "reply", c.in(0, 0, 0), tcOK)
		other := c.peer
		other.SrcPort = 444
		if code := h.runFrame(packet.Build(other), 1).code; code != tcShot {
			t.Errorf("datagram from another port: code %d, want drop", code)
		}
	})
	t.Run("sessions are per interface", func(t *testing.T) {
		other, otherIdx := h.otherIface()
		h.manage(other, InterfaceSettings{DefaultDeny: true})
		c := newConv(h.with(t), packet.UDP, false)
		c.host.SrcPort = 40003
		c.peer.DstPort = 40003
		c.out(0, 0, 0) // left through lo
		if code := h.runFrame(packet.Build(c.peer), otherIdx); code.code != tcShot {
			t.Errorf("reply on another interface: code %d, want drop", code.code)
		}
	})
	if st := h.stats(); st.Replies == 0 || st.Tracked == 0 {
		t.Errorf("stats %+v: want replies and tracked packets counted", st)
	}
}

// TestExpiredSessionsAdmitNothing: with timeouts shorter than the gap
// between two test runs, a session has expired by the time its reply
// comes, and it is removed.
func TestExpiredSessionsAdmitNothing(t *testing.T) {
	h := newHarnessWith(t, Options{Timeouts: Timeouts{TCPEstablished: time.Nanosecond, TCPTransitory: time.Nanosecond, UDP: time.Nanosecond}})
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	for _, proto := range []uint8{packet.TCP, packet.UDP} {
		c := newConv(h.with(t), proto, false)
		flags := uint8(packet.SYN)
		reply := uint8(packet.SYN | packet.ACK)
		if proto == packet.UDP {
			flags, reply = 0, 0
		}
		c.out(flags, 1000, 0)
		time.Sleep(time.Millisecond)
		c.expect(t, policy.ProtoName(proto)+" reply to an expired session", c.in(reply, 5000, 1001), tcShot)
	}
	objs := h.f.dp.Objects()
	for name, n := range map[string]int{"tcp_map": mapLen(t, objs.TcpMap), "udp_map": mapLen(t, objs.UdpMap)} {
		if n != 0 {
			t.Errorf("%s holds %d expired sessions, want them removed", name, n)
		}
	}
}

func TestSessionsAPI(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	c := newConv(h, packet.TCP, false)
	c.out(packet.SYN, 1000, 0)
	u := newConv(h, packet.UDP, true)
	u.out(0, 0, 0)

	list, err := h.f.Sessions().List(conntrack.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("%d sessions, want 2: %+v", len(list), list)
	}
	tcp := list[0]
	if tcp.Protocol != intercept.TCP || tcp.State != "opening" || tcp.Interface != "lo" ||
		tcp.Client.String() != "10.50.0.1:40000" || tcp.Server.String() != "10.60.0.2:443" || tcp.Expired {
		t.Errorf("tcp session %+v", tcp)
	}
	c.in(packet.SYN|packet.ACK, 5000, 1001)
	c.out(packet.ACK, 1001, 5001)
	est, _ := h.f.Sessions().List(conntrack.Filter{Protocol: intercept.TCP})
	if len(est) != 1 || est[0].State != "established" {
		t.Errorf("after the handshake: %+v", est)
	}
	if got, _ := h.f.Sessions().List(conntrack.Filter{Address: pfx("fd00::/8")}); len(got) != 1 || got[0].Protocol != intercept.UDP {
		t.Errorf("filter by address: %+v", got)
	}
	cnt, err := h.f.Sessions().Count()
	if err != nil || cnt.TCP != 1 || cnt.UDP != 1 || cnt.MaxTCP == 0 {
		t.Errorf("count %+v, %v", cnt, err)
	}
	n, err := h.f.Sessions().Flush(conntrack.Filter{Protocol: intercept.TCP})
	if err != nil || n != 1 {
		t.Fatalf("flush = %d, %v", n, err)
	}
	c.expect(t, "reply after flush", c.in(packet.ACK, 5001, 1001), tcShot)
}

func TestGarbageCollectionRemovesExpiredSessions(t *testing.T) {
	h := newHarnessWith(t, Options{Timeouts: Timeouts{UDP: time.Millisecond}})
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	u := newConv(h, packet.UDP, false)
	u.out(0, 0, 0)
	c := newConv(h, packet.TCP, false)
	c.out(packet.SYN, 1000, 0)
	// The collector runs every millisecond here (the shortest timeout):
	// the expired UDP session goes, the opening TCP session stays.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, err := h.f.Sessions().List(conntrack.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 1 && left[0].Protocol == intercept.TCP {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions left: %+v; want only the TCP one", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, err := h.f.Sessions().collectGarbage(); err != nil || n != 0 {
		t.Errorf("collected %d more, %v", n, err)
	}
}

// TestEchoRepliesToEchoesSentOut: on a default-deny interface one echo
// reply per echo request sent out gets in; others do not.
func TestEchoRepliesToEchoesSentOut(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	for _, v6 := range []bool{false, true} {
		src, dst, proto, req, rep := hostAddr, serverAddr, uint8(packet.ICMP), uint8(8), uint8(0)
		if v6 {
			src, dst, proto, req, rep = host6, server6, packet.ICMPv6, 128, 129
		}
		reply := func(seq uint16) uint32 {
			return h.runFrame(packet.Build(packet.Spec{Src: dst, Dst: src, Proto: proto, ICMPType: rep, ICMPSeq: seq}), 1).code
		}
		if code := reply(7); code != tcShot {
			t.Errorf("v6=%v unsolicited echo reply: code %d, want drop", v6, code)
		}
		h.egress(packet.Spec{Src: src, Dst: dst, Proto: proto, ICMPType: req, ICMPSeq: 7}, 1)
		if code := reply(8); code != tcShot {
			t.Errorf("v6=%v reply to another sequence: code %d, want drop", v6, code)
		}
		if code := reply(7); code != tcOK {
			t.Errorf("v6=%v reply to the request sent: code %d, want pass", v6, code)
		}
		if code := reply(7); code != tcShot {
			t.Errorf("v6=%v second reply to one request: code %d, want drop", v6, code)
		}
	}
	if st := h.stats(); st.EchoReplies != 2 {
		t.Errorf("echo replies counted %d, want 2", st.EchoReplies)
	}
}

// TestInboundSessionsTakeTheFastPath: on a default-deny interface a flow
// a rule admits becomes a session; its later packets are decided from the
// session, without rules, until it closes.
func TestInboundSessionsTakeTheFastPath(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	const syn, ack, fin, rst = packet.SYN, packet.ACK, packet.FIN, packet.RST
	rule := h.add(withAction(steer("10.50.0.1/32", 80, 80, 0), Pass))
	h.add(withProto(withAction(steer("10.50.0.1/32", 53, 53, 0), Pass), intercept.UDP))

	// The far side (10.60.0.2) opens; the host (10.50.0.1) answers.
	client := packet.Spec{Src: serverAddr, Dst: hostAddr, Proto: packet.TCP, SrcPort: 41000, DstPort: 80}
	server := packet.Spec{Src: hostAddr, Dst: serverAddr, Proto: packet.TCP, SrcPort: 80, DstPort: 41000}
	in := func(flags uint8, seq, ackn uint32) result {
		s := client
		s.TCPFlags, s.Seq, s.Ack = flags, seq, ackn
		return h.runFrame(packet.Build(s), 1)
	}
	out := func(flags uint8, seq, ackn uint32) {
		s := server
		s.TCPFlags, s.Seq, s.Ack = flags, seq, ackn
		h.egress(s, 1)
	}
	fast := func() uint64 { return h.stats().FastPath }

	if res := in(syn, 100, 0); res.code != tcOK || res.decision().RuleID != rule {
		t.Fatalf("SYN admitted by the rule: code %d decision %+v", res.code, res.decision())
	}
	list, _ := h.f.Sessions().List(conntrack.Filter{Direction: conntrack.Inbound})
	if len(list) != 1 || list[0].Client.String() != "10.60.0.2:41000" || list[0].TProxyPort != 0 {
		t.Fatalf("inbound sessions %+v", list)
	}
	out(syn|ack, 500, 101)
	before := fast()
	if res := in(ack, 101, 501); res.code != tcOK || res.decision().RuleID != rule {
		t.Errorf("ACK: code %d decision %+v", res.code, res.decision())
	}
	if fast() != before+1 {
		t.Error("the ACK did not take the fast path")
	}
	if got, _ := h.f.Sessions().List(conntrack.Filter{Direction: conntrack.Inbound}); len(got) != 1 || got[0].State != "established" {
		t.Errorf("after the handshake: %+v", got)
	}
	// The session outlives its rule, as connection tracking does.
	if err := h.f.Rules().Delete(t.Context(), rule); err != nil {
		t.Fatal(err)
	}
	if res := in(ack, 101, 501); res.code != tcOK {
		t.Errorf("established session after its rule went: code %d", res.code)
	}
	// A new connection needs a rule again.
	other := client
	other.SrcPort = 41001
	if res := h.run(other, 1); res.code != tcShot {
		t.Errorf("new connection with the rule gone: code %d", res.code)
	}
	// Close: client FIN, server ACK + FIN, client ACK ends the session.
	in(fin|ack, 101, 501)
	out(ack, 501, 102)
	out(fin|ack, 501, 102)
	in(ack, 102, 502)
	if got, _ := h.f.Sessions().List(conntrack.Filter{Direction: conntrack.Inbound, Protocol: intercept.TCP}); len(got) != 0 {
		t.Errorf("sessions after the close: %+v", got)
	}
	if res := in(ack, 102, 502); res.code != tcShot {
		t.Errorf("segment after the close: code %d", res.code)
	}

	t.Run("RST ends an inbound session", func(t *testing.T) {
		h.add(withAction(steer("10.50.0.1/32", 81, 81, 0), Pass))
		c := client
		c.DstPort, c.SrcPort = 81, 42000
		h.runFrame(packet.Build(c), 1)
		c.TCPFlags = rst
		h.runFrame(packet.Build(c), 1)
		if got, _ := h.f.Sessions().List(conntrack.Filter{Direction: conntrack.Inbound, Protocol: intercept.TCP}); len(got) != 0 {
			t.Errorf("sessions after RST: %+v", got)
		}
	})
	t.Run("UDP", func(t *testing.T) {
		d := packet.Spec{Src: serverAddr, Dst: hostAddr, Proto: packet.UDP, SrcPort: 5000, DstPort: 53}
		if res := h.runFrame(packet.Build(d), 1); res.code != tcOK {
			t.Fatalf("first datagram: code %d", res.code)
		}
		before := fast()
		if res := h.runFrame(packet.Build(d), 1); res.code != tcOK || fast() != before+1 {
			t.Errorf("second datagram: code %d, fast path %d -> %d", res.code, before, fast())
		}
	})
}

// TestSessionsAreFoundWhicheverWayTheirPortsPoint: the dataplane looks up
// first the session map a packet's ports make likelier (a reply to an
// outbound session mostly comes from a lower port to a higher one); a
// session whose ports point the other way must still be found.
func TestSessionsAreFoundWhicheverWayTheirPortsPoint(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true})
	for i, tc := range []struct {
		name               string
		proto              uint8
		inbound            bool   // the peer opens (a rule admits it); else the host
		hostPort, peerPort uint16 // the host's port and the peer's
	}{
		{"TCP inbound, to a lower port", packet.TCP, true, 80, 41000},
		{"TCP inbound, to a higher port", packet.TCP, true, 41000, 80},
		{"UDP inbound, to a lower port", packet.UDP, true, 53, 41000},
		{"UDP inbound, to a higher port", packet.UDP, true, 41000, 53},
		{"UDP reply, to a higher port", packet.UDP, false, 41000, 53},
		{"UDP reply, to a lower port", packet.UDP, false, 53, 41000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			// A peer of its own, so that no other case's session or rule
			// admits its packets.
			peer := netip.AddrFrom4([4]byte{10, 60, 1, byte(i + 1)})
			proto := intercept.TCP
			if tc.proto == packet.UDP {
				proto = intercept.UDP
			}
			if tc.inbound {
				h.add(withSource(withProto(withAction(steer("10.50.0.1/32", tc.hostPort, tc.hostPort, 0), Pass), proto), peer.String()+"/32"))
			}
			in := packet.Spec{Src: peer, Dst: hostAddr, Proto: tc.proto, SrcPort: tc.peerPort, DstPort: tc.hostPort}
			out := packet.Spec{Src: hostAddr, Dst: peer, Proto: tc.proto, SrcPort: tc.hostPort, DstPort: tc.peerPort}
			if tc.proto == packet.TCP {
				in.TCPFlags, out.TCPFlags = packet.SYN, packet.SYN|packet.ACK
			}
			// Open the session: the peer's first packet (admitted by the
			// rule) or the host's.
			if tc.inbound {
				if res := h.run(in, 1); res.code != tcOK {
					t.Fatalf("opening packet: code %d", res.code)
				}
			}
			h.egress(out, 1)
			in.TCPFlags = packet.ACK
			before := h.stats()
			if res := h.run(in, 1); res.code != tcOK {
				t.Fatalf("packet of the session: code %d", res.code)
			}
			after := h.stats()
			if tc.inbound && after.FastPath != before.FastPath+1 {
				t.Errorf("fast path %d → %d: the inbound session was not found", before.FastPath, after.FastPath)
			}
			if !tc.inbound && after.Replies != before.Replies+1 {
				t.Errorf("replies %d → %d: the outbound session was not found", before.Replies, after.Replies)
			}
		})
	}
}

// TestOutboundFilter: with the outbound filter on, new flows leaving need
// an egress rule that passes them; sessions already open keep flowing.
func TestOutboundFilter(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true, OutboundFilter: true})
	allow := h.add(Rule{Egress: true, Action: Pass, Protocol: intercept.TCP, Destination: pfx("10.60.0.0/16"), Ports: intercept.PortRange{Low: 1, High: 65535}})
	h.add(Rule{Egress: true, Action: Deny, Protocol: intercept.TCP, Destination: pfx("10.60.0.5/32"), Ports: intercept.PortRange{Low: 443, High: 443}})
	h.add(Rule{Egress: true, Action: Pass, Protocol: intercept.UDP, Destination: pfx("10.60.0.0/16"), Ports: intercept.PortRange{Low: 53, High: 53}})
	if _, err := h.f.Rules().Add(t.Context(), Rule{Egress: true, Action: TProxy, Protocol: intercept.TCP, Destination: pfx("10.0.0.0/8"), Ports: intercept.PortRange{Low: 1, High: 1}, TProxyPort: 1}); err == nil {
		t.Error("an egress TProxy rule was accepted")
	}

	out := func(dst string, proto uint8, port uint16, flags uint8) uint32 {
		s := packet.Spec{Src: hostAddr, Dst: addr(dst), Proto: proto, SrcPort: 40500, DstPort: port, TCPFlags: flags}
		return h.egress(s, 1).code
	}
	cases := []struct {
		name  string
		dst   string
		proto uint8
		port  uint16
		want  uint32
	}{
		{"allowed by the broad rule", "10.60.0.7", packet.TCP, 443, tcNext},
		{"denied by the longer prefix", "10.60.0.5", packet.TCP, 443, tcShot},
		{"another port of the denied host", "10.60.0.5", packet.TCP, 80, tcNext},
		{"no egress rule", "10.70.0.1", packet.TCP, 80, tcShot},
		{"UDP allowed", "10.60.0.9", packet.UDP, 53, tcNext},
		{"UDP to another port", "10.60.0.9", packet.UDP, 54, tcShot},
	}
	for _, tc := range cases {
		if got := out(tc.dst, tc.proto, tc.port, packet.SYN); got != tc.want {
			t.Errorf("%s: code %#x, want %#x", tc.name, got, tc.want)
		}
	}
	// The allowed session keeps flowing after its rule goes.
	if err := h.f.Rules().Delete(t.Context(), allow); err != nil {
		t.Fatal(err)
	}
	c := newConv(h, packet.TCP, false)
	c.host.Dst, c.peer.Src = addr("10.60.0.7"), addr("10.60.0.7")
	c.host.SrcPort, c.peer.DstPort = 40500, 40500
	c.expect(t, "SYN-ACK of the allowed session", c.in(packet.SYN|packet.ACK, 5000, 1001), tcOK)
	if res := c.out(packet.ACK, 1001, 5001); res.code != tcNext {
		t.Errorf("established session after its rule went: code %#x", res.code)
	}
	if got := out("10.60.0.8", packet.TCP, 443, packet.SYN); got != tcShot {
		t.Errorf("new flow after the rule went: code %#x, want drop", got)
	}
	// Replies of a session opened inwards need no egress rule.
	h.add(withAction(steer("10.50.0.1/32", 22, 22, 0), Pass))
	h.runFrame(packet.Build(packet.Spec{Src: serverAddr, Dst: hostAddr, Proto: packet.TCP, SrcPort: 41000, DstPort: 22, TCPFlags: packet.SYN}), 1)
	if res := h.egress(packet.Spec{Src: hostAddr, Dst: serverAddr, Proto: packet.TCP, SrcPort: 22, DstPort: 41000, TCPFlags: packet.SYN | packet.ACK}, 1); res.code != tcNext {
		t.Errorf("reply of an inbound session: code %#x", res.code)
	}
	if st := h.stats(); st.EgressDenied < 4 {
		t.Errorf("egress denials counted %d, want at least 4", st.EgressDenied)
	}
	egress := 0
	for _, r := range h.f.Rules().List() {
		if r.Egress {
			egress++
		}
	}
	if egress == 0 {
		t.Errorf("the rules list shows no egress rule: %+v", h.f.Rules().List())
	}
}
