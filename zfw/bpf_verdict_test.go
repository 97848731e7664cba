package zfw

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/testenv"
)

var (
	client4 = netip.MustParseAddr("192.168.7.10")
	client6 = netip.MustParseAddr("fd00:7::10")
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func tcpTo(dst string, port uint16) packet.Spec {
	d := addr(dst)
	src := client4
	if d.Is6() {
		src = client6
	}
	return packet.Spec{Src: src, Dst: d, Proto: packet.TCP, SrcPort: 40000, DstPort: port}
}

func udpTo(dst string, port uint16) packet.Spec {
	s := tcpTo(dst, port)
	s.Proto = packet.UDP
	return s
}

func from(s packet.Spec, src string) packet.Spec {
	s.Src = addr(src)
	return s
}

func steer(dst string, low, high, port uint16) Rule {
	return Rule{Action: TProxy, Protocol: intercept.TCP, Destination: pfx(dst), Ports: intercept.PortRange{Low: low, High: high}, TProxyPort: port}
}

func withProto(r Rule, p intercept.Protocol) Rule { r.Protocol = p; return r }
func withSource(r Rule, src string) Rule          { r.Source = pfx(src); return r }
func withAction(r Rule, a Action) Rule            { r.Action = a; return r }

// TestProgramVerdicts runs the ingress program on crafted packets and
// checks the decision it reaches: action, matching rule, mark.
func TestProgramVerdicts(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	other, otherIdx := h.otherIface()
	h.manage(other, InterfaceSettings{})

	type want struct {
		action policy.Action
		rule   int // index into rules; -1 = no rule
		port   uint16
	}
	cases := []struct {
		name    string
		rules   []Rule
		pkt     packet.Spec
		ifindex int
		want    want
	}{
		{
			name:  "exact /32 match steers",
			rules: []Rule{steer("10.9.0.5/32", 8080, 8080, 7001)},
			pkt:   tcpTo("10.9.0.5", 8080),
			want:  want{policy.ActionTProxy, 0, 7001},
		},
		{
			name:  "CIDR match steers",
			rules: []Rule{steer("10.9.0.0/24", 8000, 8100, 7002)},
			pkt:   tcpTo("10.9.0.77", 8050),
			want:  want{policy.ActionTProxy, 0, 7002},
		},
		{
			name:  "port outside the range does not match",
			rules: []Rule{steer("10.9.0.0/24", 8000, 8100, 7002)},
			pkt:   tcpTo("10.9.0.77", 8101),
			want:  want{policy.ActionPass, -1, 0},
		},
		{
			name: "longest prefix without the port falls through to a shorter one",
			rules: []Rule{
				steer("10.9.0.0/16", 443, 443, 7003),
				steer("10.9.0.5/32", 80, 80, 7004),
			},
			pkt:  tcpTo("10.9.0.5", 443),
			want: want{policy.ActionTProxy, 0, 7003},
		},
		{
			name: "longest prefix wins when both match",
			rules: []Rule{
				steer("10.9.0.0/16", 1, 65535, 7003),
				steer("10.9.0.5/32", 80, 80, 7004),
			},
			pkt:  tcpTo("10.9.0.5", 80),
			want: want{policy.ActionTProxy, 1, 7004},
		},
		{
			name:  "source prefix matches its clients",
			rules: []Rule{withSource(steer("10.9.0.0/24", 80, 80, 7005), "192.168.7.0/24")},
			pkt:   tcpTo("10.9.0.1", 80),
			want:  want{policy.ActionTProxy, 0, 7005},
		},
		{
			name:  "source prefix excludes other clients",
			rules: []Rule{withSource(steer("10.9.0.0/24", 80, 80, 7005), "192.168.8.0/24")},
			pkt:   tcpTo("10.9.0.1", 80),
			want:  want{policy.ActionPass, -1, 0},
		},
		{
			name: "longer source prefix wins under one destination",
			rules: []Rule{
				withSource(steer("10.9.0.0/24", 80, 80, 7006), "192.168.0.0/16"),
				withSource(steer("10.9.0.0/24", 80, 80, 7007), "192.168.7.0/24"),
			},
			pkt:  tcpTo("10.9.0.1", 80),
			want: want{policy.ActionTProxy, 1, 7007},
		},
		{
			name: "deny on a longer prefix beats a broader allow",
			rules: []Rule{
				withAction(steer("0.0.0.0/0", 1, 65535, 0), Pass),
				withAction(steer("10.9.0.5/32", 22, 22, 0), Deny),
			},
			pkt:  tcpTo("10.9.0.5", 22),
			want: want{policy.ActionDeny, 1, 0},
		},
		{
			name: "the broader allow still passes other ports",
			rules: []Rule{
				withAction(steer("0.0.0.0/0", 1, 65535, 0), Pass),
				withAction(steer("10.9.0.5/32", 22, 22, 0), Deny),
			},
			pkt:  tcpTo("10.9.0.5", 80),
			want: want{policy.ActionPass, 0, 0},
		},
		{
			name: "same prefix: the rule entered first wins",
			rules: []Rule{
				withAction(steer("10.9.0.5/32", 1, 65535, 0), Pass),
				withAction(steer("10.9.0.5/32", 22, 22, 0), Deny),
			},
			pkt:  tcpTo("10.9.0.5", 22),
			want: want{policy.ActionPass, 0, 0},
		},
		{
			name:  "protocol must match",
			rules: []Rule{steer("10.9.0.5/32", 53, 53, 7008)},
			pkt:   udpTo("10.9.0.5", 53),
			want:  want{policy.ActionPass, -1, 0},
		},
		{
			name:  "UDP rule steers UDP",
			rules: []Rule{withProto(steer("10.9.0.5/32", 53, 53, 7008), intercept.UDP)},
			pkt:   udpTo("10.9.0.5", 53),
			want:  want{policy.ActionTProxy, 0, 7008},
		},
		{
			name:  "IPv6 exact match steers",
			rules: []Rule{steer("fd00:9::5/128", 8080, 8080, 7009)},
			pkt:   tcpTo("fd00:9::5", 8080),
			want:  want{policy.ActionTProxy, 0, 7009},
		},
		{
			name: "IPv6 falls through to a shorter prefix",
			rules: []Rule{
				withProto(steer("fd00:9::/48", 5000, 5999, 7010), intercept.UDP),
				withProto(steer("fd00:9::5/128", 53, 53, 7011), intercept.UDP),
			},
			pkt:  udpTo("fd00:9::5", 5353),
			want: want{policy.ActionTProxy, 0, 7010},
		},
		{
			name:  "IPv6 source prefix",
			rules: []Rule{withSource(steer("fd00:9::/64", 80, 80, 7012), "fd00:7::/64")},
			pkt:   from(tcpTo("fd00:9::1", 80), "fd00:8::10"),
			want:  want{policy.ActionPass, -1, 0},
		},
		{
			name:  "IPv4 rule does not match IPv6",
			rules: []Rule{steer("0.0.0.0/0", 1, 65535, 7013)},
			pkt:   tcpTo("fd00:9::1", 80),
			want:  want{policy.ActionPass, -1, 0},
		},
		{
			name:    "rule for another interface does not apply",
			rules:   []Rule{{Action: TProxy, Protocol: intercept.TCP, Destination: pfx("10.9.0.5/32"), Ports: intercept.PortRange{Low: 80, High: 80}, TProxyPort: 7014, Interfaces: []string{other}}},
			pkt:     tcpTo("10.9.0.5", 80),
			ifindex: 1,
			want:    want{policy.ActionPass, -1, 0},
		},
		{
			name:    "rule for this interface applies",
			rules:   []Rule{{Action: TProxy, Protocol: intercept.TCP, Destination: pfx("10.9.0.5/32"), Ports: intercept.PortRange{Low: 80, High: 80}, TProxyPort: 7014, Interfaces: []string{other}}},
			pkt:     tcpTo("10.9.0.5", 80),
			ifindex: otherIdx,
			want:    want{policy.ActionTProxy, 0, 7014},
		},
		{
			name:  "VLAN-tagged packet is matched like its twin",
			rules: []Rule{steer("10.9.0.5/32", 80, 80, 7015)},
			pkt:   func() packet.Spec { s := tcpTo("10.9.0.5", 80); s.VLANs = []uint16{100, 200}; return s }(),
			want:  want{policy.ActionTProxy, 0, 7015},
		},
		{
			name:  "IPv4 options are parsed, not dropped",
			rules: []Rule{steer("10.9.0.5/32", 80, 80, 7016)},
			pkt: func() packet.Spec {
				s := tcpTo("10.9.0.5", 80)
				s.IPv4Options = []byte{1, 1, 1, 1, 1, 1, 1, 1}
				return s
			}(),
			want: want{policy.ActionTProxy, 0, 7016},
		},
		{
			name:  "IPv6 extension headers are walked",
			rules: []Rule{steer("fd00:9::5/128", 80, 80, 7017)},
			pkt: func() packet.Spec {
				s := tcpTo("fd00:9::5", 80)
				s.IPv6Ext = []uint8{packet.HopOpts, packet.Routing, packet.DstOpts}
				return s
			}(),
			want: want{policy.ActionTProxy, 0, 7017},
		},
		{
			name:  "IPv6 atomic fragment is matched like its twin",
			rules: []Rule{steer("fd00:9::5/128", 80, 80, 7018)},
			pkt:   func() packet.Spec { s := tcpTo("fd00:9::5", 80); s.Fragmented = true; return s }(),
			want:  want{policy.ActionTProxy, 0, 7018},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.f.Rules().Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			var ids []uint32
			for _, r := range tc.rules {
				ids = append(ids, h.add(r))
			}
			ifindex := tc.ifindex
			if ifindex == 0 {
				ifindex = 1
			}
			res := h.run(tc.pkt, ifindex)
			got := res.decision()
			var wantID uint32
			if tc.want.rule >= 0 {
				wantID = ids[tc.want.rule]
			}
			if got.Action != tc.want.action || got.RuleID != wantID || got.TProxyPort != tc.want.port {
				t.Errorf("decision = %+v, want action %v rule %d port %d", got, tc.want.action, wantID, tc.want.port)
			}
			switch tc.want.action {
			case policy.ActionTProxy:
				if res.mark != defaultMark {
					t.Errorf("mark = %#x, want %#x", res.mark, defaultMark)
				}
				// No listener in this namespace: the steer is refused.
				if res.code != tcShot {
					t.Errorf("code = %d, want drop (no listener)", res.code)
				}
			case policy.ActionPass:
				if res.code != tcOK || res.mark != 0 {
					t.Errorf("code = %d mark %#x, want pass unmarked", res.code, res.mark)
				}
			case policy.ActionDeny:
				if res.code != tcShot || res.mark != 0 {
					t.Errorf("code = %d mark %#x, want drop unmarked", res.code, res.mark)
				}
			}
		})
	}
}

// loopbackConnection opens a TCP connection on 127.0.0.1 and returns its
// two ends and the tuple a segment from the client to the server has,
// as a packet spec without flags.
func loopbackConnection(t *testing.T) (client, server net.Conn, seg packet.Spec) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	from := client.LocalAddr().(*net.TCPAddr).AddrPort()
	to := server.LocalAddr().(*net.TCPAddr).AddrPort()
	return client, server, packet.Spec{Src: from.Addr(), Dst: to.Addr(), Proto: packet.TCP,
		SrcPort: from.Port(), DstPort: to.Port()}
}

// TestSteeredConnectionsSurviveRuleChanges: after a rule change, segments
// of a TCP connection that was steered keep reaching its socket: the
// program finds the live connection on their tuple in the kernel's socket
// table, where a tunneler's accepted socket lives on. New connections and
// UDP datagrams follow the new rules, and so does a tuple whose socket is
// gone or only in TIME_WAIT; a deny rule cuts the connection.
func TestSteeredConnectionsSurviveRuleChanges(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	client, server, ack := loopbackConnection(t)
	ack.TCPFlags = packet.ACK
	rule := steer("127.0.0.1/32", ack.DstPort, ack.DstPort, 7300)
	h.add(rule)
	h.add(withProto(steer("127.0.0.1/32", 53, 53, 7301), intercept.UDP))
	dgram := packet.Spec{Src: ack.Src, Dst: ack.Dst, Proto: packet.UDP, SrcPort: 5353, DstPort: 53}
	for _, s := range []packet.Spec{ack, dgram} {
		if res := h.run(s, 1); res.mark != defaultMark {
			t.Fatalf("%v not steered before the change: mark %#x", s.Proto, res.mark)
		}
	}
	if err := h.f.Rules().Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	before := h.stats()
	if res := h.run(ack, 1); res.mark != defaultMark || res.code != tcOK {
		t.Errorf("established segment after the change: code %d mark %#x, want steered", res.code, res.mark)
	}
	if got := h.stats(); got.KeptSteering != before.KeptSteering+1 || got.Steered != before.Steered+1 {
		t.Errorf("KeptSteering %d -> %d, Steered %d -> %d, want +1 each",
			before.KeptSteering, got.KeptSteering, before.Steered, got.Steered)
	}
	if res := h.run(dgram, 1); res.mark != 0 || res.code != tcOK {
		t.Errorf("UDP datagram after the change: code %d mark %#x, want passed unmarked", res.code, res.mark)
	}
	syn := ack
	syn.TCPFlags = packet.SYN
	syn.SrcPort++
	if res := h.run(syn, 1); res.mark != 0 || res.code != tcOK {
		t.Errorf("new connection after the change: code %d mark %#x, want passed unmarked", res.code, res.mark)
	}
	stray := ack
	stray.SrcPort++
	if res := h.run(stray, 1); res.mark != 0 || res.code != tcOK {
		t.Errorf("segment of a tuple no socket holds: code %d mark %#x, want passed unmarked", res.code, res.mark)
	}

	deny := withAction(rule, Deny)
	deny.TProxyPort = 0
	id := h.add(deny)
	if res := h.run(ack, 1); res.code != tcShot {
		t.Errorf("established segment under a deny rule: code %d mark %#x, want dropped", res.code, res.mark)
	}
	if err := h.f.Rules().Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}

	// The server closes first, so its side of the tuple ends in
	// TIME_WAIT: the connection is over, and the tuple is free for a new
	// one that follows the rules.
	server.Close()
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("client read data, want the server's FIN")
	}
	client.Close()
	local := netip.AddrPortFrom(ack.Dst, ack.DstPort)
	remote := netip.AddrPortFrom(ack.Src, ack.SrcPort)
	testenv.WaitFor(t, 10*time.Second, "the server's side in TIME_WAIT", func() bool {
		table, err := os.ReadFile("/proc/thread-self/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		return testenv.InTimeWait(table, local, remote)
	})
	if res := h.run(ack, 1); res.mark != 0 || res.code != tcOK {
		t.Errorf("segment of a tuple in TIME_WAIT: code %d mark %#x, want passed unmarked", res.code, res.mark)
	}
}

// TestAReusedTupleFollowsTheRulesOfItsNewConnection: a client that reuses
// its source port for a new connection after the intercept was removed
// gets the new connection passed, SYN and later segments alike: the old
// connection's steering does not carry over.
func TestAReusedTupleFollowsTheRulesOfItsNewConnection(t *testing.T) {
	stayOnCPU(t)
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	h.add(steer("10.9.0.5/32", 80, 80, 7300))
	ack := tcpTo("10.9.0.5", 80)
	ack.TCPFlags = packet.ACK
	// The old connection's segments: the first decides it from the rules,
	// the second is served by the flow cache.
	for range 2 {
		if res := h.runFrame(packet.Build(ack), 1); res.mark != defaultMark {
			t.Fatalf("old connection not steered: mark %#x", res.mark)
		}
	}
	if err := h.f.Rules().Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	syn := tcpTo("10.9.0.5", 80)
	syn.SrcPort = ack.SrcPort
	if res := h.runFrame(packet.Build(syn), 1); res.mark != 0 || res.code != tcOK {
		t.Fatalf("new connection's SYN: code %d mark %#x, want passed unmarked", res.code, res.mark)
	}
	for i := range 2 {
		if res := h.runFrame(packet.Build(ack), 1); res.mark != 0 || res.code != tcOK {
			t.Errorf("new connection's segment %d: code %d mark %#x, want passed unmarked", i+1, res.code, res.mark)
		}
	}
}
