package zfw_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// TestEndToEndHostFirewall: a host whose interface is default-deny
// reaches out (TCP and UDP, both families) and gets its replies, while
// nobody reaches in.
func TestEndToEndHostFirewall(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	var fw *zfw.Firewall
	err := topo.Client.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{
			PinPath:    pinPath(t),
			Interfaces: []zfw.Interface{{Name: topo.ClientIf, InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true}}},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()

	// Plain (not transparent) echo servers in the server namespace.
	serve := func(network, addr string) string {
		var bound string
		err := topo.Server.Do(func() error {
			if network == "udp" {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					return err
				}
				t.Cleanup(func() { pc.Close() })
				bound = pc.LocalAddr().String()
				go func() {
					buf := make([]byte, 1500)
					for {
						n, from, err := pc.ReadFrom(buf)
						if err != nil {
							return
						}
						pc.WriteTo(buf[:n], from)
					}
				}()
				return nil
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			bound = ln.Addr().String()
			testenv.Serve(ln.Accept, func(c net.Conn) { io.Copy(c, c) })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return bound
	}
	for _, dst := range []string{
		serve("tcp", netip.AddrPortFrom(topo.ServerAddr4.Addr(), 0).String()),
		serve("tcp", netip.AddrPortFrom(topo.ServerAddr6.Addr(), 0).String()),
	} {
		c, err := topo.Client.DialTCP(dst, 5*time.Second)
		if err != nil {
			t.Fatalf("outbound TCP to %s: %v", dst, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintln(c, "ping")
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
			t.Errorf("TCP echo from %s: %q, %v", dst, line, err)
		}
		c.Close()
	}
	for _, dst := range []string{
		serve("udp", netip.AddrPortFrom(topo.ServerAddr4.Addr(), 0).String()),
		serve("udp", netip.AddrPortFrom(topo.ServerAddr6.Addr(), 0).String()),
	} {
		got, err := udpAsk(topo.Client, dst, "ping")
		if err != nil || !strings.HasPrefix(got, "ping") {
			t.Errorf("UDP echo from %s: %q, %v", dst, got, err)
		}
	}

	// Inbound: a listener on the client is not reachable from the server.
	var ln net.Listener
	if err := topo.Client.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ":7777")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused(t, topo.Server, netip.AddrPortFrom(topo.ClientAddr4.Addr(), 7777).String(), 2*time.Second, "an unsolicited inbound connection got through a default-deny interface")
	// Inbound, admitted by a rule: works, and takes the fast path.
	if _, err := fw.Rules().Add(context.Background(), zfw.Rule{
		Action: zfw.Pass, Protocol: intercept.TCP,
		Destination: netip.PrefixFrom(topo.ClientAddr4.Addr(), 32),
		Ports:       intercept.PortRange{Low: 7778, High: 7778},
	}); err != nil {
		t.Fatal(err)
	}
	echoTCP(t, topo.Client, "0.0.0.0:7778")
	c, err := topo.Server.DialTCP(netip.AddrPortFrom(topo.ClientAddr4.Addr(), 7778).String(), 5*time.Second)
	if err != nil {
		t.Fatalf("inbound connection a rule admits: %v", err)
	}
	for i := range 3 {
		if _, err := testenv.AskLine(c, fmt.Sprintf("in%d", i)); err != nil {
			t.Fatalf("inbound exchange %d: %v", i, err)
		}
	}
	c.Close()

	st, err := fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Replies == 0 || st.Tracked == 0 || st.FastPath == 0 {
		t.Errorf("stats %+v: want replies admitted by tracked sessions and fast-path packets", st)
	}
}

// TestEndToEndOutboundFilter: an egress deny rule blocks one destination
// while a broader allow passes the rest, for both families.
func TestEndToEndOutboundFilter(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	var fw *zfw.Firewall
	err := topo.Client.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{
			PinPath: pinPath(t),
			Interfaces: []zfw.Interface{{Name: topo.ClientIf, InterfaceSettings: zfw.InterfaceSettings{
				DefaultDeny: true, OutboundFilter: true,
			}}},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	open4 := echoTCP(t, topo.Server, netip.AddrPortFrom(topo.ServerAddr4.Addr(), 0).String())
	shut4 := echoTCP(t, topo.Server, netip.AddrPortFrom(topo.ServerAddr4.Addr(), 0).String())
	open6 := echoTCP(t, topo.Server, netip.AddrPortFrom(topo.ServerAddr6.Addr(), 0).String())
	ctx := context.Background()
	for _, r := range []zfw.Rule{
		{Egress: true, Action: zfw.Pass, Protocol: intercept.TCP, Destination: topo.ServerAddr4.Masked(), Ports: intercept.PortRange{Low: 1, High: 65535}},
		{Egress: true, Action: zfw.Deny, Protocol: intercept.TCP, Destination: netip.PrefixFrom(topo.ServerAddr4.Addr(), 32), Ports: intercept.PortRange{Low: shut4.Port(), High: shut4.Port()}},
		{Egress: true, Action: zfw.Pass, Protocol: intercept.TCP, Destination: topo.ServerAddr6.Masked(), Ports: intercept.PortRange{Low: 1, High: 65535}},
	} {
		if _, err := fw.Rules().Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(topo.ServerAddr4.Addr(), open4.Port()),
		netip.AddrPortFrom(topo.ServerAddr6.Addr(), open6.Port()),
	} {
		c, err := topo.Client.DialTCP(dst.String(), 5*time.Second)
		if err != nil {
			t.Fatalf("allowed destination %s: %v", dst, err)
		}
		if _, err := testenv.AskLine(c, "hi"); err != nil {
			t.Errorf("exchange with %s: %v", dst, err)
		}
		c.Close()
	}
	denied := netip.AddrPortFrom(topo.ServerAddr4.Addr(), shut4.Port()).String()
	refused(t, topo.Client, denied, 2*time.Second, "connection to the denied destination %s succeeded", denied)
	if st, _ := fw.Stats(); st.EgressDenied == 0 {
		t.Errorf("stats %+v: want egress denials", st)
	}
}

// TestEndToEndSteeringOnAFirewalledInterface: intercepts work on a
// default-deny interface, where steered flows become inbound sessions
// whose later packets take the fast path to the socket.
func TestEndToEndSteeringOnAFirewalledInterface(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{Interfaces: []zfw.Interface{{Name: topo.RouterClientIf, InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true}}}})
	tcp := echoTCP(t, topo.Router, "127.0.0.1:0")
	udp := echoUDP(t, topo.Router, "[::1]:0")
	ctx := context.Background()
	if err := r.fw.Register(ctx, tcpIntercept("fw-tcp", "10.93.0.0/24", 8080, tcp)); err != nil {
		t.Fatal(err)
	}
	if err := r.fw.Register(ctx, intercept.Intercept{ServiceID: "fw-udp", Protocols: []intercept.Protocol{intercept.UDP},
		Addresses: []netip.Prefix{netip.MustParsePrefix("fd00:93::/64")}, Ports: []intercept.PortRange{{Low: 53, High: 53}}, TProxyPort: udp.Port()}); err != nil {
		t.Fatal(err)
	}
	c, err := topo.Client.DialTCP("10.93.0.4:8080", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		if got, err := testenv.AskLine(c, fmt.Sprintf("m%d", i)); err != nil || got != fmt.Sprintf("m%d 10.93.0.4:8080", i) {
			t.Fatalf("exchange %d: %q, %v", i, got, err)
		}
	}
	for i := range 3 {
		if got, err := udpAsk(topo.Client, "[fd00:93::4]:53", fmt.Sprintf("q%d", i)); err != nil || !strings.HasPrefix(got, fmt.Sprintf("q%d [fd00:93::4]:53", i)) {
			t.Fatalf("datagram %d: %q, %v", i, got, err)
		}
	}
	st, err := r.fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.FastPath == 0 || st.Steered == 0 {
		t.Errorf("stats %+v: want steered packets on the fast path", st)
	}
	if n, err := r.fw.Sessions().Count(); err != nil || n.InboundTCP == 0 {
		t.Errorf("inbound sessions %+v, %v", n, err)
	}
}
